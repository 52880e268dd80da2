//! Read-side queries for `report` and `plan`: every attempt of a sweep, every task, and the
//! memory timelines, streamed one attempt at a time so that a 100,000-task sweep is read
//! without holding all its samples at once. Reads only; never takes a sweep lock.

use anyhow::{Context, Result};

use rusqlite::params;

use super::{schema, to_i64, to_u64, Journal, MemSample, SweepHandle};

/// One attempt, with its task's identity.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    /// Row id.
    pub id: i64,
    /// The task's position in the sweep (0-based).
    pub seq: u64,
    /// The task's identity key.
    pub key: String,
    /// Attempt number (1-based, across runs).
    pub attempt: u32,
    pub started_unix_ms: i64,
    /// `None` while running (or when its supervisor died).
    pub ended_unix_ms: Option<i64>,
    pub duration_ms: Option<u64>,
    /// Peak PSS where measured, else peak RSS.
    pub peak: Option<u64>,
    /// The last sampled memory of an open attempt (PSS where measured, else RSS).
    pub last: Option<u64>,
    /// When that last sample was taken, in ms since the attempt started.
    pub last_t_ms: Option<u64>,
    /// Exit class; `None` while running.
    pub class: Option<String>,
    pub reason: Option<String>,
    /// Went back to the queue (a brake).
    pub requeued: bool,
}

/// One task as `report` and `plan` need it.
#[derive(Debug, Clone)]
pub struct TaskRow {
    /// Position in the sweep (0-based).
    pub seq: u64,
    pub key: String,
    /// Params as given (an object, or the argv array).
    pub params: serde_json::Value,
    pub argv: Vec<String>,
    pub state: String,
    /// Its peak when done, in bytes.
    pub peak: Option<u64>,
    /// The attempt that decided its state.
    pub last_attempt_id: Option<i64>,
}

impl Journal {
    /// Every attempt of the sweep, oldest first.
    pub fn attempt_rows(&self, sweep_id: i64) -> Result<Vec<AttemptRow>> {
        let ctx = schema::corrupt_context(&self.path.display().to_string());
        let mut st = self
            .conn
            .prepare(
                "SELECT a.id, t.seq, t.key, a.attempt, a.started_unix_ms, a.ended_unix_ms,
                        a.duration_ms, coalesce(a.peak_pss, a.peak_rss),
                        coalesce(a.last_pss, a.last_rss), a.class, a.reason, a.requeued,
                        a.last_t_ms
                   FROM attempts a JOIN tasks t ON t.id = a.task_id
                  WHERE a.sweep_id = ?1 ORDER BY a.started_unix_ms, a.id",
            )
            .with_context(|| ctx.clone())?;
        let rows = st
            .query_map([sweep_id], |r| {
                Ok(AttemptRow {
                    id: r.get(0)?,
                    seq: to_u64(r.get(1)?).unwrap_or(0),
                    key: r.get(2)?,
                    attempt: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    started_unix_ms: r.get(4)?,
                    ended_unix_ms: r.get(5)?,
                    duration_ms: to_u64(r.get(6)?),
                    peak: to_u64(r.get(7)?),
                    last: to_u64(r.get(8)?),
                    class: r.get(9)?,
                    reason: r.get(10)?,
                    requeued: r.get::<_, i64>(11)? != 0,
                    last_t_ms: to_u64(r.get(12)?),
                })
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .with_context(|| ctx.clone())?;
        Ok(rows)
    }

    /// Every task of the sweep, in sweep order.
    pub fn task_rows(&self, sweep_id: i64) -> Result<Vec<TaskRow>> {
        let ctx = schema::corrupt_context(&self.path.display().to_string());
        let mut st = self
            .conn
            .prepare(
                "SELECT seq, key, params, argv, state, peak, last_attempt_id
                   FROM tasks WHERE sweep_id = ?1 ORDER BY seq",
            )
            .with_context(|| ctx.clone())?;
        let rows = st
            .query_map([sweep_id], |r| {
                let params: String = r.get(2)?;
                let argv: String = r.get(3)?;
                Ok(TaskRow {
                    seq: to_u64(r.get(0)?).unwrap_or(0),
                    key: r.get(1)?,
                    params: serde_json::from_str(&params)
                        .unwrap_or(serde_json::Value::String(params)),
                    argv: serde_json::from_str(&argv).unwrap_or_default(),
                    state: r.get(4)?,
                    peak: to_u64(r.get(5)?),
                    last_attempt_id: r.get(6)?,
                })
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .with_context(|| ctx.clone())?;
        Ok(rows)
    }

    /// Calls `f` with each attempt's timeline (ordered by time), attempt by attempt.
    pub fn for_each_timeline(
        &self,
        sweep_id: i64,
        mut f: impl FnMut(i64, &[MemSample]),
    ) -> Result<()> {
        let ctx = schema::corrupt_context(&self.path.display().to_string());
        let mut st = self
            .conn
            .prepare(
                "SELECT s.attempt_id, s.t_ms, s.rss, s.pss, s.used FROM samples s
                   JOIN attempts a ON a.id = s.attempt_id
                  WHERE a.sweep_id = ?1 ORDER BY s.attempt_id, s.t_ms, s.rowid",
            )
            .with_context(|| ctx.clone())?;
        let mut rows = st.query([sweep_id]).with_context(|| ctx.clone())?;
        let mut current: Option<i64> = None;
        let mut buf: Vec<MemSample> = Vec::new();
        while let Some(r) = rows.next().with_context(|| ctx.clone())? {
            let id: i64 = r.get(0).with_context(|| ctx.clone())?;
            if current != Some(id) {
                if let Some(prev) = current {
                    f(prev, &buf);
                }
                buf.clear();
                current = Some(id);
            }
            buf.push(MemSample {
                t_ms: to_u64(r.get(1).with_context(|| ctx.clone())?).unwrap_or(0),
                rss: to_u64(r.get(2).with_context(|| ctx.clone())?).unwrap_or(0),
                pss: to_u64(r.get(3).with_context(|| ctx.clone())?),
                used: to_u64(r.get(4).with_context(|| ctx.clone())?),
                ..Default::default()
            });
        }
        if let Some(prev) = current {
            f(prev, &buf);
        }
        Ok(())
    }
}

impl Journal {
    /// The open attempts of a sweep (running, or left by a dead supervisor): row id, task
    /// key and attempt number. Uses the partial index on open attempts.
    pub fn open_attempts(&self, sweep_id: i64) -> Result<Vec<(i64, String, u32)>> {
        let ctx = schema::corrupt_context(&self.path.display().to_string());
        let mut st = self
            .conn
            .prepare(
                "SELECT a.id, t.key, a.attempt FROM attempts a JOIN tasks t ON t.id = a.task_id
                  WHERE a.sweep_id = ?1 AND a.class IS NULL ORDER BY a.started_unix_ms, a.id",
            )
            .with_context(|| ctx.clone())?;
        let rows = st
            .query_map([sweep_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                ))
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .with_context(|| ctx.clone())?;
        Ok(rows)
    }
}

impl Journal {
    /// Journals the host's available memory and what the running tasks held, in the
    /// current group (schema v2).
    pub fn host_sample(
        &mut self,
        sweep: &SweepHandle,
        unix_ms: i64,
        available: u64,
        used: u64,
    ) -> Result<()> {
        self.group()?;
        self.conn
            .prepare_cached(
                "INSERT INTO host_samples (sweep_id, unix_ms, available, used) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![sweep.id, unix_ms, to_i64(available), to_i64(used)])
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        Ok(())
    }

    /// The host's available memory between two times: `(unix ms, available bytes)`.
    pub fn host_samples(&self, sweep_id: i64, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, u64)>> {
        let ctx = schema::corrupt_context(&self.path.display().to_string());
        let mut st = self
            .conn
            .prepare(
                "SELECT unix_ms, available FROM host_samples
                  WHERE sweep_id = ?1 AND unix_ms BETWEEN ?2 AND ?3 ORDER BY unix_ms",
            )
            .with_context(|| ctx.clone())?;
        let rows = st
            .query_map(params![sweep_id, from_ms, to_ms], |r| {
                Ok((r.get(0)?, to_u64(r.get(1)?).unwrap_or(0)))
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .with_context(|| ctx.clone())?;
        Ok(rows)
    }
}
