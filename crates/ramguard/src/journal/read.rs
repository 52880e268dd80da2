//! Read-side queries for `status`, `results`, `list` (and later `report`).
//!
//! A sweep's counts, `status` and `results` cover the task set of its latest run by default
//! (what the user last asked for); the `_scoped` variants with `all` cover every task ever
//! run under the sweep.
//!
//! These only read, never take a sweep lock, and see only committed groups, so they run
//! safely beside a live `ramguard run` (WAL readers do not block the writer). Counting uses
//! `GROUP BY` over the `(sweep_id, state)` index, so `status` on 100,000 tasks touches the
//! index only; running attempts are found through a partial index on open attempts.

use anyhow::{bail, Context, Result};
use rusqlite::params;
use serde::Serialize;

use super::{lock, schema, to_u64, Journal, MemSample, TaskStateRow};

/// How many tasks of a sweep are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Tasks in every state.
    pub total: u64,
    /// Waiting to run.
    pub queued: u64,
    /// Running now (or when the supervisor died).
    pub running: u64,
    /// Finished successfully.
    pub done: u64,
    /// Failed for good.
    pub failed: u64,
    /// Interrupted; they run again next time.
    pub interrupted: u64,
}

impl StateCounts {
    fn add(&mut self, state: &str, n: u64) {
        match TaskStateRow::parse(state) {
            Some(TaskStateRow::Queued) => self.queued += n,
            Some(TaskStateRow::Running) => self.running += n,
            Some(TaskStateRow::Done) => self.done += n,
            Some(TaskStateRow::Failed) => self.failed += n,
            Some(TaskStateRow::Interrupted) => self.interrupted += n,
            None => {}
        }
        self.total += n;
    }

    /// Tasks a rerun would still run (failed ones excluded).
    pub fn remaining(&self) -> u64 {
        self.queued + self.running + self.interrupted
    }
}

/// A sweep as listed.
#[derive(Debug, Clone, Serialize)]
pub struct SweepInfo {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Fingerprint of template and settings.
    pub fingerprint: String,
    /// Command template.
    pub template: String,
    /// Settings as stored.
    pub settings: serde_json::Value,
    /// When first run.
    pub created_unix_ms: i64,
    /// When last (re)started.
    pub updated_unix_ms: i64,
    /// How many runs the sweep has had (0 for a sweep last run by a schema v1 ramguard).
    pub runs: i64,
    /// Param names in the order they were written, when known.
    pub param_order: Vec<String>,
    /// Tasks of the latest run, by state.
    pub counts: StateCounts,
    /// Every task ever run under the sweep, by state.
    pub counts_all: StateCounts,
}

/// A running attempt, as of its last committed sample.
#[derive(Debug, Clone, Serialize)]
pub struct RunningTask {
    /// The task's key.
    pub task: String,
    /// Attempt number.
    pub attempt: u32,
    /// The task's pid.
    pub pid: u32,
    /// The supervisor that started it.
    pub supervisor_pid: u32,
    /// Start time.
    pub started_unix_ms: i64,
    /// Last sampled RSS, in bytes.
    pub rss: Option<u64>,
    /// Last sampled PSS, in bytes.
    pub pss: Option<u64>,
    /// Peak RSS so far, in bytes.
    pub peak_rss: Option<u64>,
    /// Last sampled memory (the one measure), in bytes.
    pub used: Option<u64>,
    /// Peak so far (the one measure), in bytes.
    pub peak: Option<u64>,
}

/// Peaks observed on done tasks.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PeakStats {
    /// Done tasks with a peak.
    pub count: u64,
    /// Median, in bytes.
    pub p50: Option<u64>,
    /// 95th percentile, in bytes.
    pub p95: Option<u64>,
    /// Largest, in bytes.
    pub max: Option<u64>,
}

/// Everything `status` shows about one sweep.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The sweep.
    pub sweep: SweepInfo,
    /// Open attempts, oldest first.
    pub running: Vec<RunningTask>,
    /// Pid in the sweep's lock file and whether it is alive.
    pub supervisor: Option<(u32, bool)>,
    /// Peaks of done tasks.
    pub peaks: PeakStats,
    /// The latest `learned_peak` event's `bytes`, if the supervisor journaled one.
    pub learned_peak: Option<u64>,
    /// Mean duration of done attempts, in ms.
    pub mean_duration_ms: Option<u64>,
    /// Attempts by exit class (all attempts, including requeued ones).
    pub classes: Vec<(String, u64)>,
    /// Events by kind.
    pub events: Vec<(String, u64)>,
}

/// One task's row for `results`.
#[derive(Debug, Clone)]
pub struct ResultRow {
    /// Identity key.
    pub key: String,
    /// Params as given (object or array).
    pub params: serde_json::Value,
    /// State.
    pub state: String,
    /// Attempts started.
    pub attempts: u32,
    /// Peak: the done peak, else the last attempt's peak (its RSS in journals before v2).
    pub peak: Option<u64>,
    /// Last attempt's duration.
    pub duration_ms: Option<u64>,
    /// Last attempt's exit class.
    pub class: Option<String>,
    /// Exit code.
    pub code: Option<i32>,
    /// Signal.
    pub signal: Option<i32>,
    /// Reason.
    pub reason: Option<String>,
    /// Parsed result JSON.
    pub result: Option<serde_json::Value>,
    /// Raw result text when it was not valid JSON.
    pub result_raw: Option<String>,
    /// Warning about the result.
    pub result_warning: Option<String>,
    /// /dev/shm files the last attempt left behind (`[{"name", "allocated"}]`).
    pub shm_left: Option<serde_json::Value>,
    /// The last attempt's figures behind its peak, each when recorded.
    pub peak_parts: PeakParts,
}

/// What a peak is made of, recorded separately (seed 001 read VIRT as memory), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PeakParts {
    /// Largest summed RSS (overcounts pages shared between the tree's processes).
    pub rss: Option<u64>,
    /// Largest summed PSS.
    pub pss: Option<u64>,
    /// Largest allocated size of its /dev/shm files.
    pub shm: Option<u64>,
    /// Largest summed virtual size: address space, not memory.
    pub virt: Option<u64>,
}

/// One journaled event.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    /// When.
    pub unix_ms: i64,
    /// Kind (brake, pause, learned_peak…).
    pub kind: String,
    /// Detail object.
    pub detail: serde_json::Value,
}

/// SQL true for a task `t` of sweep `?1` in scope: every task when `?2` (all) is true, else
/// those the sweep's latest run asked for.
const IN_SCOPE: &str = "(?2 OR t.last_run = (SELECT runs FROM sweeps WHERE id = ?1))";

fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied()
}

impl Journal {
    fn ctx(&self) -> String {
        schema::corrupt_context(&self.path.display().to_string())
    }

    /// Every sweep with its counts, by name.
    pub fn sweeps(&self) -> Result<Vec<SweepInfo>> {
        let ctx = self.ctx();
        let mut st = self
            .conn
            .prepare("SELECT id, name, fingerprint, template, settings, created_unix_ms, updated_unix_ms, runs, param_order FROM sweeps ORDER BY name")
            .with_context(|| ctx.clone())?;
        let mut sweeps: Vec<SweepInfo> = st
            .query_map([], |r| {
                let settings: String = r.get(4)?;
                let order: Option<String> = r.get(8)?;
                Ok(SweepInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    fingerprint: r.get(2)?,
                    template: r.get(3)?,
                    settings: serde_json::from_str(&settings).unwrap_or(serde_json::Value::Null),
                    created_unix_ms: r.get(5)?,
                    updated_unix_ms: r.get(6)?,
                    runs: r.get(7)?,
                    param_order: order
                        .and_then(|o| serde_json::from_str(&o).ok())
                        .unwrap_or_default(),
                    counts: StateCounts::default(),
                    counts_all: StateCounts::default(),
                })
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .with_context(|| ctx.clone())?;
        let mut st = self
            .conn
            .prepare(
                "SELECT t.sweep_id, t.state, t.last_run = s.runs, count(*)
                 FROM tasks t JOIN sweeps s ON s.id = t.sweep_id
                 GROUP BY t.sweep_id, t.last_run = s.runs, t.state",
            )
            .with_context(|| ctx.clone())?;
        let counts = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .with_context(|| ctx.clone())?;
        for (id, state, latest, n) in counts {
            if let Some(s) = sweeps.iter_mut().find(|s| s.id == id) {
                let n = u64::try_from(n).unwrap_or(0);
                s.counts_all.add(&state, n);
                if latest {
                    s.counts.add(&state, n);
                }
            }
        }
        Ok(sweeps)
    }

    /// Finds the sweep a command names; without a name, the only one, or the one run last
    /// (saying so on stderr).
    pub fn resolve_sweep(&self, name: Option<&str>) -> Result<SweepInfo> {
        let sweeps = self.sweeps()?;
        let shown = self.path.display();
        let names = || {
            sweeps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            Some(n) => match sweeps.iter().find(|s| s.name == n) {
                Some(s) => Ok(s.clone()),
                None if sweeps.is_empty() => {
                    bail!("no sweep named '{n}' in journal {shown}: it has no sweeps yet")
                }
                None => bail!(
                    "no sweep named '{n}' in journal {shown}; known sweeps: {}",
                    names()
                ),
            },
            None => match sweeps.len() {
                0 => bail!("journal {shown} has no sweeps yet: run `ramguard run` first"),
                1 => Ok(sweeps[0].clone()),
                n => {
                    // Several sweeps of one script are routine (`train`, `train-2`): the one
                    // run last is what the user means, and stderr says which it is.
                    let last = sweeps
                        .iter()
                        .max_by_key(|s| (s.updated_unix_ms, s.id))
                        .expect("n > 1 sweeps");
                    eprintln!(
                        "ramguard: showing sweep '{}', the latest run of {n} in {shown} ({}); \
                         name one to see another",
                        last.name,
                        names()
                    );
                    Ok(last.clone())
                }
            },
        }
    }

    /// Gathers what `status` shows about a sweep's latest run.
    pub fn status(&self, sweep: &SweepInfo) -> Result<StatusReport> {
        self.status_scoped(sweep, false)
    }

    /// Gathers what `status` shows: peaks, durations and exit classes of the latest run's
    /// tasks, or of every task ever run under the sweep when `all`. Running attempts and
    /// events are the sweep's whatever the scope; with `all` the counts are `counts_all`.
    pub fn status_scoped(&self, sweep: &SweepInfo, all: bool) -> Result<StatusReport> {
        let ctx = self.ctx();
        let mut sweep = sweep.clone();
        if all {
            sweep.counts = sweep.counts_all;
        }
        let sweep = &sweep;
        let running = self
            .conn
            .prepare(
                "SELECT t.key, a.attempt, a.pid, a.supervisor_pid, a.started_unix_ms, a.last_rss, a.last_pss, a.peak_rss,
                        a.last_used, a.peak
                 FROM attempts a JOIN tasks t ON t.id = a.task_id
                 WHERE a.sweep_id = ?1 AND a.class IS NULL ORDER BY a.started_unix_ms, a.id",
            )
            .and_then(|mut st| {
                st.query_map([sweep.id], |r| {
                    Ok(RunningTask {
                        task: r.get(0)?,
                        attempt: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        pid: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        supervisor_pid: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                        started_unix_ms: r.get(4)?,
                        rss: to_u64(r.get(5)?),
                        pss: to_u64(r.get(6)?),
                        peak_rss: to_u64(r.get(7)?),
                        used: to_u64(r.get(8)?),
                        peak: to_u64(r.get(9)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .with_context(|| ctx.clone())?;
        let mut peaks: Vec<u64> = self
            .conn
            .prepare(&format!("SELECT peak FROM tasks t WHERE sweep_id = ?1 AND state = 'done' AND peak IS NOT NULL AND {IN_SCOPE}"))
            .and_then(|mut st| {
                st.query_map(params![sweep.id, all], |r| r.get::<_, i64>(0))?
                    .map(|r| r.map(|p| u64::try_from(p).unwrap_or(0)))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .with_context(|| ctx.clone())?;
        peaks.sort_unstable();
        let peak_stats = PeakStats {
            count: peaks.len() as u64,
            p50: quantile(&peaks, 0.5),
            p95: quantile(&peaks, 0.95),
            max: peaks.last().copied(),
        };
        let mean: Option<f64> = self
            .conn
            .query_row(
                &format!("SELECT avg(a.duration_ms) FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE a.sweep_id = ?1 AND a.class = 'done' AND {IN_SCOPE}"),
                params![sweep.id, all],
                |r| r.get(0),
            )
            .with_context(|| ctx.clone())?;
        let classes = self.grouped(
            &format!("SELECT a.class, count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE a.sweep_id = ?1 AND a.class IS NOT NULL AND {IN_SCOPE} GROUP BY a.class ORDER BY a.class"),
            params![sweep.id, all],
        )?;
        let events = self.grouped(
            "SELECT kind, count(*) FROM events WHERE sweep_id = ?1 GROUP BY kind ORDER BY kind",
            params![sweep.id],
        )?;
        let learned: Option<String> = self
            .conn
            .query_row(
                "SELECT detail FROM events WHERE sweep_id = ?1 AND kind = 'learned_peak' ORDER BY unix_ms DESC, id DESC LIMIT 1",
                [sweep.id],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .with_context(|| ctx.clone())?;
        let learned_peak = learned
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|v| v.get("bytes").and_then(serde_json::Value::as_u64));
        let supervisor =
            lock::recorded_holder(&self.path, &sweep.name).map(|p| (p, lock::pid_alive(p)));
        Ok(StatusReport {
            sweep: sweep.clone(),
            running,
            supervisor,
            peaks: peak_stats,
            learned_peak,
            mean_duration_ms: mean.map(|m| m.round().max(0.0) as u64),
            classes,
            events,
        })
    }

    fn grouped(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<(String, u64)>> {
        self.conn
            .prepare(sql)
            .and_then(|mut st| {
                st.query_map(args, |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .with_context(|| self.ctx())
    }

    /// Calls `f` with one row per task ever run under the sweep, in task order.
    pub fn for_each_result(
        &self,
        sweep_id: i64,
        f: impl FnMut(ResultRow) -> Result<()>,
    ) -> Result<()> {
        self.for_each_result_scoped(sweep_id, true, f)
    }

    /// Calls `f` with one row per task of the sweep's latest run (every task ever run
    /// under it when `all`), in task order.
    pub fn for_each_result_scoped(
        &self,
        sweep_id: i64,
        all: bool,
        mut f: impl FnMut(ResultRow) -> Result<()>,
    ) -> Result<()> {
        let ctx = self.ctx();
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT t.key, t.params, t.state, t.attempts, t.peak, a.peak_rss, a.duration_ms, a.class,
                        a.code, a.signal, a.reason, a.result, a.result_raw, a.result_warning,
                        a.peak, a.shm_left, a.peak_pss, a.peak_shm, a.peak_virt
                 FROM tasks t LEFT JOIN attempts a ON a.id = t.last_attempt_id
                 WHERE t.sweep_id = ?1 AND {IN_SCOPE} ORDER BY t.seq",
            ))
            .with_context(|| ctx.clone())?;
        let mut rows = st
            .query(params![sweep_id, all])
            .with_context(|| ctx.clone())?;
        while let Some(r) = rows.next().with_context(|| ctx.clone())? {
            let row = (|| -> rusqlite::Result<ResultRow> {
                let params: String = r.get(1)?;
                let result: Option<String> = r.get(11)?;
                Ok(ResultRow {
                    key: r.get(0)?,
                    params: serde_json::from_str(&params)
                        .unwrap_or(serde_json::Value::String(params)),
                    state: r.get(2)?,
                    attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    peak: to_u64(r.get(4)?)
                        .or(to_u64(r.get(14)?))
                        .or(to_u64(r.get(5)?)),
                    duration_ms: to_u64(r.get(6)?),
                    class: r.get(7)?,
                    code: r.get(8)?,
                    signal: r.get(9)?,
                    reason: r.get(10)?,
                    result: result.and_then(|s| serde_json::from_str(&s).ok()),
                    result_raw: r.get(12)?,
                    result_warning: r.get(13)?,
                    shm_left: r
                        .get::<_, Option<String>>(15)?
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .filter(|v: &serde_json::Value| {
                            v.as_array().is_some_and(|a| !a.is_empty())
                        }),
                    peak_parts: PeakParts {
                        rss: to_u64(r.get(5)?),
                        pss: to_u64(r.get(16)?),
                        shm: to_u64(r.get(17)?),
                        virt: to_u64(r.get(18)?),
                    },
                })
            })()
            .with_context(|| ctx.clone())?;
            f(row)?;
        }
        Ok(())
    }

    /// The downsampled memory timeline of an attempt.
    pub fn timeline(&self, attempt_id: i64) -> Result<Vec<MemSample>> {
        self.conn
            .prepare_cached(
                "SELECT t_ms, rss, pss, used, shm, virt FROM samples WHERE attempt_id = ?1 ORDER BY t_ms, rowid",
            )
            .and_then(|mut st| {
                st.query_map([attempt_id], |r| {
                    Ok(MemSample {
                        t_ms: to_u64(r.get(0)?).unwrap_or(0),
                        rss: to_u64(r.get(1)?).unwrap_or(0),
                        pss: to_u64(r.get(2)?),
                        used: to_u64(r.get(3)?),
                        shm: to_u64(r.get(4)?),
                        virt: to_u64(r.get(5)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .with_context(|| self.ctx())
    }

    /// A sweep's events, oldest first.
    pub fn events(&self, sweep_id: i64) -> Result<Vec<EventRow>> {
        self.conn
            .prepare(
                "SELECT unix_ms, kind, detail FROM events WHERE sweep_id = ?1 ORDER BY unix_ms, id",
            )
            .and_then(|mut st| {
                st.query_map([sweep_id], |r| {
                    let d: String = r.get(2)?;
                    Ok(EventRow {
                        unix_ms: r.get(0)?,
                        kind: r.get(1)?,
                        detail: serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d)),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .with_context(|| self.ctx())
    }
}
