//! What the journal knows about an attempt's environment: the thread variables
//! (`OMP_NUM_THREADS` and its family) each attempt ran with, written once when it starts and
//! read by `results`, and how each task's previous attempt ended, which a rerun hands to the
//! next attempt (`RAMGUARD_PREVIOUS_END`). A journal older than schema v3 has no thread
//! column until it is migrated; reading one then finds nothing rather than failing.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use rusqlite::params;

use super::Journal;

/// The family as one task saw it: variable → value.
pub type ThreadEnv = BTreeMap<String, String>;

impl Journal {
    /// Records the thread variables of an attempt (in the current group).
    pub fn attempt_threads(&mut self, attempt_id: i64, applied: &ThreadEnv) -> Result<()> {
        let text = serde_json::to_string(applied)?;
        self.conn
            .prepare_cached("UPDATE attempts SET threads = ?2 WHERE id = ?1")?
            .execute(params![attempt_id, text])
            .with_context(|| format!("cannot write journal {}", self.path.display()))?;
        Ok(())
    }

    /// The thread variables of each task's latest attempt, by task key (tasks whose latest
    /// attempt recorded none are absent).
    pub fn threads_by_task(&self, sweep_id: i64) -> Result<HashMap<String, ThreadEnv>> {
        let has_column: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('attempts') WHERE name = 'threads'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .unwrap_or(false);
        let mut out = HashMap::new();
        if !has_column {
            return Ok(out);
        }
        // One primary-key lookup per task, through its last attempt.
        let mut stmt = self.conn.prepare(
            "SELECT t.key, a.threads FROM tasks t JOIN attempts a ON a.id = t.last_attempt_id
             WHERE t.sweep_id = ?1 AND a.threads IS NOT NULL",
        )?;
        let rows = stmt.query_map([sweep_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (key, text) = row?;
            if let Ok(env) = serde_json::from_str::<ThreadEnv>(&text) {
                out.insert(key, env);
            }
        }
        Ok(out)
    }
}

/// How an attempt ended, as the next attempt of the task is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The exit class (`braked`, `over_cap`, `failed`, ...).
    pub class: String,
    /// The one-line reason.
    pub reason: String,
    /// The attempt's peak RSS in bytes, when measured.
    pub peak: Option<u64>,
}

impl Journal {
    /// How each task's latest attempt ended, by task key (tasks never started, or whose
    /// latest attempt has no ending, are absent).
    pub fn last_endings(&self, sweep_id: i64) -> Result<HashMap<String, Ending>> {
        let mut stmt = self.conn.prepare(
            "SELECT t.key, a.class, coalesce(a.reason, ''), a.peak_rss
             FROM tasks t JOIN attempts a ON a.id = t.last_attempt_id
             WHERE t.sweep_id = ?1 AND a.class IS NOT NULL",
        )?;
        let rows = stmt.query_map([sweep_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Ending {
                    class: r.get(1)?,
                    reason: r.get(2)?,
                    peak: r.get::<_, Option<i64>>(3)?.map(|p| p.max(0) as u64),
                },
            ))
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let (key, ending) = row?;
            out.insert(key, ending);
        }
        Ok(out)
    }
}

/// The family in a few characters: `1` when every variable has one value, else each
/// variable that differs from the most common value as `NAME=value`.
pub fn compact(env: &ThreadEnv) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in env.values() {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let Some((common, _)) = counts.iter().max_by_key(|(_, n)| **n) else {
        return String::new();
    };
    let odd: Vec<String> = env
        .iter()
        .filter(|(_, v)| v.as_str() != *common)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if odd.is_empty() {
        common.to_string()
    } else {
        format!("{common} but {}", odd.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_names_only_the_odd_ones_out() {
        let mut env: ThreadEnv = ["A", "B", "C"]
            .iter()
            .map(|k| (k.to_string(), "3".to_string()))
            .collect();
        assert_eq!(compact(&env), "3");
        env.insert("B".into(), "1".into());
        assert_eq!(compact(&env), "3 but B=1");
        assert_eq!(compact(&ThreadEnv::new()), "");
    }
}
