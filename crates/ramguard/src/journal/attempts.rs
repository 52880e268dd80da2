//! Writing attempts: their start, downsampled memory timelines, their end (with the task's
//! state, peak and result), sweep events, and what finished attempts teach the policy.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use ramguard_core::policy::{quiet_start_of_samples, Ending, ExitClass};
use ramguard_core::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use super::timeline::Timeline;
use super::{schema, to_i64, AttemptEnd, Journal, Learned, MemSample, SweepHandle, TaskStateRow};

impl Journal {
    /// Journals the start of an attempt (in the current group) and returns its id.
    pub fn attempt_started(
        &mut self,
        sweep: &SweepHandle,
        task_key: &str,
        attempt: u32,
        pid: u32,
        started_unix_ms: i64,
    ) -> Result<i64> {
        self.group()?;
        let task_id: i64 = match self.task_ids.get(&(sweep.id, task_key.to_string())) {
            Some(&id) => id,
            None => self
                .conn
                .prepare_cached("SELECT id FROM tasks WHERE sweep_id = ?1 AND key = ?2")?
                .query_row(params![sweep.id, task_key], |r| r.get(0))
                .optional()?
                .with_context(|| {
                    format!(
                        "task '{task_key}' is not in sweep '{}' (call sync_tasks first)",
                        sweep.name
                    )
                })?,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO attempts (sweep_id, task_id, attempt, pid, supervisor_pid, started_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                sweep.id,
                task_id,
                attempt,
                pid,
                std::process::id(),
                started_unix_ms
            ])
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        let id = self.conn.last_insert_rowid();
        // The task's row says so when the group ends, or when the attempt does.
        if let Some(earlier) = self.running_marks.insert(task_id, id) {
            // Another attempt of the task started in this group and never ended here
            // (it cannot be: attempts of one task do not overlap); count it all the same.
            self.set_running(task_id, earlier)?;
        }
        self.timelines.insert(id, Timeline::fresh());
        self.attempt_tasks.insert(id, task_id);
        Ok(id)
    }

    /// Adds memory samples to a running attempt's timeline (in the current group),
    /// downsampled to at most [`timeline::MAX_POINTS`] rows.
    pub fn add_samples(&mut self, attempt_id: i64, samples: &[MemSample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.group()?;
        let tl = self.timelines.entry(attempt_id).or_default();
        for s in samples {
            tl.push(*s);
        }
        Self::flush_timeline(&self.conn, attempt_id, tl)
            .with_context(|| format!("cannot write journal {}", self.path.display()))
    }

    pub(super) fn flush_timeline(
        conn: &Connection,
        attempt_id: i64,
        tl: &mut Timeline,
    ) -> rusqlite::Result<()> {
        let last = tl.last;
        let (peak_rss, peak_pss) = (tl.peak_rss, tl.peak_pss);
        let (peak_used, peak_shm, peak_virt) = (tl.peak_used, tl.peak_shm, tl.peak_virt);
        let (replace, pts) = tl.take_unpersisted();
        if replace {
            conn.prepare_cached("DELETE FROM samples WHERE attempt_id = ?1")?
                .execute([attempt_id])?;
        }
        let mut ins = conn.prepare_cached(
            "INSERT INTO samples (attempt_id, t_ms, rss, pss, used, shm, virt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for p in pts {
            ins.execute(params![
                attempt_id,
                to_i64(p.t_ms),
                to_i64(p.rss),
                p.pss.map(to_i64),
                p.used.map(to_i64),
                p.shm.map(to_i64),
                p.virt.map(to_i64)
            ])?;
        }
        if let Some(l) = last {
            conn.prepare_cached(
                "UPDATE attempts SET last_t_ms = ?2, last_rss = ?3, last_pss = ?4,
                   peak_rss = max(coalesce(peak_rss, 0), ?5),
                   peak_pss = CASE WHEN ?6 IS NULL THEN peak_pss ELSE max(coalesce(peak_pss, 0), ?6) END,
                   last_used = ?7,
                   peak = CASE WHEN ?8 IS NULL THEN peak ELSE max(coalesce(peak, 0), ?8) END,
                   peak_shm = CASE WHEN ?9 IS NULL THEN peak_shm ELSE max(coalesce(peak_shm, 0), ?9) END,
                   peak_virt = CASE WHEN ?10 IS NULL THEN peak_virt ELSE max(coalesce(peak_virt, 0), ?10) END
                 WHERE id = ?1 AND class IS NULL",
            )?
            .execute(params![
                attempt_id,
                to_i64(l.t_ms),
                to_i64(l.rss),
                l.pss.map(to_i64),
                to_i64(peak_rss),
                peak_pss.map(to_i64),
                l.used.map(to_i64),
                peak_used.map(to_i64),
                peak_shm.map(to_i64),
                peak_virt.map(to_i64)
            ])?;
        }
        Ok(())
    }

    /// Journals how an attempt ended (in the current group) and moves its task to its next
    /// state: done → done; requeued → queued; interrupted → interrupted; otherwise failed.
    pub fn attempt_finished(&mut self, attempt_id: i64, end: &AttemptEnd) -> Result<()> {
        self.group()?;
        let shown = self.shown();
        if let Some(mut tl) = self.timelines.remove(&attempt_id) {
            tl.finish();
            Self::flush_timeline(&self.conn, attempt_id, &mut tl)
                .with_context(|| format!("cannot write journal {shown}"))?;
        }
        let (result, raw, warning) = match &end.result {
            None => (None, None, None),
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => (Some(v.to_string()), None, None),
                Err(e) => (
                    None,
                    Some(text.clone()),
                    Some(format!("result file is not valid JSON ({e}); kept as text")),
                ),
            },
        };
        let task_id: i64 = match self.attempt_tasks.remove(&attempt_id) {
            Some(id) => id,
            None => self
                .conn
                .prepare_cached("SELECT task_id FROM attempts WHERE id = ?1")?
                .query_row([attempt_id], |r| r.get(0))
                .optional()?
                .with_context(|| format!("no attempt {attempt_id} in journal {shown}"))?,
        };
        self.conn
            .prepare_cached(
                "UPDATE attempts SET ended_unix_ms = ?2, duration_ms = ?3,
                   peak_rss = max(coalesce(peak_rss, 0), ?4),
                   peak_pss = CASE WHEN ?5 IS NULL THEN peak_pss ELSE max(coalesce(peak_pss, 0), ?5) END,
                   class = ?6, code = ?7, signal = ?8, reason = ?9, requeued = ?10,
                   result = ?11, result_raw = ?12, result_warning = ?13,
                   peak = CASE WHEN ?14 IS NULL THEN peak ELSE max(coalesce(peak, 0), ?14) END,
                   peak_shm = CASE WHEN ?15 IS NULL THEN peak_shm ELSE max(coalesce(peak_shm, 0), ?15) END,
                   peak_virt = CASE WHEN ?16 IS NULL THEN peak_virt ELSE max(coalesce(peak_virt, 0), ?16) END,
                   shm_left = ?17, shm_removed = ?18
                 WHERE id = ?1",
            )?
            .execute(params![
                attempt_id,
                end.ended_unix_ms,
                to_i64(end.duration_ms),
                to_i64(end.peak_rss),
                end.peak_pss.map(to_i64),
                end.class.as_str(),
                end.ending.and_then(Ending::code),
                end.ending.and_then(Ending::signal),
                end.reason,
                end.requeued,
                result,
                raw,
                warning,
                end.peak.map(to_i64),
                end.peak_shm.map(to_i64),
                end.peak_virt.map(to_i64),
                end.shm_left,
                end.shm_removed
            ])
            .with_context(|| format!("cannot write journal {shown}"))?;
        // One peak: the attempt's own measure; PSS or RSS only for callers that have none.
        let peak = to_i64(end.peak.unwrap_or(end.peak_pss.unwrap_or(end.peak_rss)));
        let state = if end.class == ExitClass::Done {
            TaskStateRow::Done
        } else if end.class == ExitClass::Interrupted {
            TaskStateRow::Interrupted
        } else if end.requeued {
            TaskStateRow::Queued
        } else {
            TaskStateRow::Failed
        };
        let bound = matches!(end.class, ExitClass::Braked | ExitClass::OomKilled);
        // Started in this group: the start's update of the task row comes along.
        let started = match self.running_marks.get(&task_id) {
            Some(&id) if id == attempt_id => self.running_marks.remove(&task_id),
            _ => None,
        };
        self.conn
            .prepare_cached(
                "UPDATE tasks SET state = ?2,
                   peak = CASE WHEN ?2 = 'done' THEN ?3 ELSE peak END,
                   lower_bound = CASE WHEN ?4 THEN max(coalesce(lower_bound, 0), ?3) ELSE lower_bound END,
                   attempts = attempts + (?5 IS NOT NULL),
                   last_attempt_id = coalesce(?5, last_attempt_id)
                 WHERE id = ?1",
            )?
            .execute(params![task_id, state.as_str(), peak, bound, started])?;
        Ok(())
    }

    /// Journals a sweep event (brake, pause, learned-peak change…) in the current group.
    pub fn event(
        &mut self,
        sweep: &SweepHandle,
        unix_ms: i64,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.group()?;
        self.conn
            .prepare_cached(
                "INSERT INTO events (sweep_id, unix_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![sweep.id, unix_ms, kind, detail.to_string()])
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        Ok(())
    }

    /// What the sweep's done tasks showed (peak, duration, time to peak, quiet start), in
    /// task order, for the policy to learn from. Times are in time run, as the policy learns
    /// them live: the attempt's paused time (its `task_resumed` events) is taken off each.
    pub fn learned_history(&mut self, sweep: &SweepHandle) -> Result<Vec<Learned>> {
        let mut st = self.conn.prepare_cached(
            "SELECT t.key, t.peak, a.duration_ms, a.started_unix_ms, a.ended_unix_ms, a.id
               FROM tasks t LEFT JOIN attempts a ON a.id = t.last_attempt_id
              WHERE t.sweep_id = ?1 AND t.state = 'done' AND t.peak IS NOT NULL
              ORDER BY t.seq",
        )?;
        let ms = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        let rows = st
            .query_map([sweep.id], |r| {
                let learned = Learned {
                    key: r.get(0)?,
                    peak: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    duration_ms: ms(r.get(2)?),
                    time_to_peak_ms: None,
                    quiet: None,
                };
                Ok((
                    learned,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| schema::corrupt_context(&self.shown()))?;
        // Each pause ends in a `task_resumed` event naming the task and how long it lasted; a
        // pause ends before the attempt does, and no sample reaches a new peak while paused.
        let mut pauses: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for e in self.events(sweep.id)? {
            let task = e.detail.get("task").and_then(|v| v.as_str());
            let lasted = e.detail.get("paused_ms").and_then(|v| v.as_i64());
            if let (true, Some(task), Some(lasted)) = (e.kind == "task_resumed", task, lasted) {
                pauses
                    .entry(task.to_string())
                    .or_default()
                    .push((e.unix_ms, lasted));
            }
        }
        let clocks: Vec<RunClock> = rows
            .iter()
            .map(|(l, started, ended, _)| RunClock {
                started: *started,
                ended: *ended,
                pauses: pauses.get(&l.key).map(Vec::as_slice),
            })
            .collect();
        let by_attempt: HashMap<i64, usize> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((r.3?, i)))
            .collect();
        let mut out: Vec<Learned> = rows.into_iter().map(|r| r.0).collect();
        // The timelines, one attempt after another in a single pass; one is held at a time.
        let mut st = self.conn.prepare_cached(
            "SELECT s.attempt_id, s.t_ms, coalesce(s.used, s.pss, s.rss)
               FROM tasks t JOIN samples s ON s.attempt_id = t.last_attempt_id
              WHERE t.sweep_id = ?1 AND t.state = 'done' AND t.peak IS NOT NULL
              ORDER BY s.attempt_id, s.t_ms, s.rowid",
        )?;
        let points = st.query_map([sweep.id], |r| {
            let n = |i: usize| r.get::<_, i64>(i);
            Ok((
                n(0)?,
                u64::try_from(n(1)?).unwrap_or(0),
                u64::try_from(n(2)?).unwrap_or(0),
            ))
        })?;
        let mut learn = |attempt: i64, timeline: &[(u64, u64)]| {
            if let Some(&i) = by_attempt.get(&attempt) {
                learn_timeline(&mut out[i], &clocks[i], timeline);
            }
        };
        let mut timeline: Vec<(u64, u64)> = Vec::new();
        let mut current = None;
        for point in points {
            let (attempt, t, used) =
                point.with_context(|| schema::corrupt_context(&self.shown()))?;
            if current != Some(attempt) {
                if let Some(done) = current {
                    learn(done, &timeline);
                }
                timeline.clear();
                current = Some(attempt);
            }
            timeline.push((t, used));
        }
        if let Some(done) = current {
            learn(done, &timeline);
        }
        for (l, clock) in out.iter_mut().zip(&clocks) {
            l.duration_ms = l.duration_ms.map(|d| clock.run(d));
        }
        Ok(out)
    }

    /// Marks the tasks whose attempts started in this group as running, inside the group,
    /// just before it is committed.
    ///
    /// A started attempt's row is written at once (its id names its timeline); its task's
    /// row (state, attempts, last attempt) waits until the group ends, because no reader
    /// sees the group before then: a task that also ends within the group gets its whole
    /// update in one statement ([`Journal::attempt_finished`]). That statement per start
    /// was a tenth of the supervisor's time on a sweep of trivial tasks.
    pub(super) fn mark_running(&mut self) -> rusqlite::Result<()> {
        if self.running_marks.is_empty() {
            return Ok(());
        }
        for (&task_id, &attempt_id) in &self.running_marks {
            self.set_running(task_id, attempt_id)?;
        }
        self.running_marks.clear();
        Ok(())
    }

    /// Marks a task running with one more attempt, the given one last.
    fn set_running(&self, task_id: i64, attempt_id: i64) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE tasks SET state = 'running', attempts = attempts + 1, last_attempt_id = ?2 WHERE id = ?1",
            )?
            .execute(params![task_id, attempt_id])
            .map(drop)
    }

    /// Test seam: caps the database size in pages, to provoke "disk full" on commit.
    #[doc(hidden)]
    pub fn limit_pages_for_tests(&mut self, pages: u64) -> Result<()> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }
}

/// An attempt's start and end (unix ms) and its task's pauses (`(resumed at, lasted)`, unix
/// ms and ms), to read times off its timeline in time run.
struct RunClock<'a> {
    started: Option<i64>,
    ended: Option<i64>,
    pauses: Option<&'a [(i64, i64)]>,
}

impl RunClock<'_> {
    /// `t_ms` after the attempt's start, less the pauses that ended by then.
    fn run(&self, t_ms: u64) -> u64 {
        let (Some(started), Some(ended), Some(pauses)) = (self.started, self.ended, self.pauses)
        else {
            return t_ms;
        };
        let until = started.saturating_add(i64::try_from(t_ms).unwrap_or(i64::MAX));
        let paused: i64 = pauses
            .iter()
            .filter(|p| p.0 >= started && p.0 <= until.min(ended))
            .map(|p| p.1)
            .sum();
        t_ms.saturating_sub(u64::try_from(paused.max(0)).unwrap_or(0))
    }
}

/// What a done attempt's timeline (`(t_ms, used)`, in order) teaches: its time to peak (its
/// first sample at 95% of the peak, what the policy learns live; samples hold PSS where it
/// was refreshed) and its quiet start, both in time run.
fn learn_timeline(l: &mut Learned, clock: &RunClock, timeline: &[(u64, u64)]) {
    let near = l.peak as f64 * 0.95;
    l.time_to_peak_ms = timeline
        .iter()
        .find(|&&(_, used)| used as f64 >= near)
        .map(|&(t, _)| clock.run(t));
    // A pause is no stand-still: the quiet start is read on the clock the task ran on.
    let samples: Vec<(Duration, Bytes)> = timeline
        .iter()
        .map(|&(t, used)| (Duration::from_millis(clock.run(t)), Bytes(used)))
        .collect();
    l.quiet = quiet_start_of_samples(&samples, Bytes(l.peak))
        .map(|(t, held)| (u64::try_from(t.as_millis()).unwrap_or(u64::MAX), held.get()));
}
