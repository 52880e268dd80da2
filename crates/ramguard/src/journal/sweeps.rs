//! Writing sweeps and their task sets: begin (or resume) a sweep under its lock, journal the
//! tasks of this run, and close what a dead supervisor left running.

use anyhow::{bail, Context, Result};
use rusqlite::params;

use super::lock::SweepLock;
use super::{
    canonical_json, now_unix_ms, schema, to_u64, Journal, NewTask, Orphan, SweepHandle, SweepSpec,
    TaskRecord, TaskStateRow,
};

impl Journal {
    /// Starts (or resumes) a sweep: refuses a changed fingerprint unless `fresh`, takes the
    /// sweep's lock, and with `fresh` deletes its tasks, attempts and events first.
    pub fn begin_sweep(&mut self, spec: &SweepSpec, fresh: bool) -> Result<SweepHandle> {
        if spec.name.trim().is_empty() {
            bail!("sweep name is empty; hint: pass --name NAME");
        }
        self.commit()?;
        // Lock first: another supervisor's open group would make any write wait.
        let lock = SweepLock::acquire(&self.path, &spec.name)?;
        let now = now_unix_ms();
        let settings = canonical_json(&spec.settings);
        self.group()?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO sweeps (name, fingerprint, template, settings, created_unix_ms, updated_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![spec.name, spec.fingerprint, spec.template, settings, now],
            )
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        let (id, old_fp, old_template, runs): (i64, String, String, i64) = self
            .conn
            .query_row(
                "SELECT id, fingerprint, template, runs FROM sweeps WHERE name = ?1",
                [&spec.name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .with_context(|| schema::corrupt_context(&self.shown()))?;
        self.commit()?;
        // A sweep journaled before schema v2 has a fingerprint of other settings (-j,
        // --threads): the same command adopts it, and the update below rewrites it.
        let legacy = runs == 0 && old_template == spec.template;
        if old_fp != spec.fingerprint && !fresh && !legacy && old_template == spec.template {
            bail!(
                "sweep '{}' in {} runs `{}` with other settings (--shell); hint: choose another \
                 --name, leave --name out, or pass --fresh to replace that sweep's results",
                spec.name,
                self.shown(),
                old_template
            );
        }
        if old_fp != spec.fingerprint && !fresh && !legacy {
            bail!(
                "sweep '{}' in {} runs another command: `{}`, not `{}`; hint: choose another \
                 --name for this one, leave --name out (ramguard then names a sweep after its \
                 command), or pass --fresh to replace that sweep's results",
                spec.name,
                self.shown(),
                old_template,
                spec.template
            );
        }
        self.group()?;
        if fresh {
            // Samples cascade from attempts; delete children first so the cascade is small.
            self.conn.execute(
                "DELETE FROM samples WHERE attempt_id IN (SELECT id FROM attempts WHERE sweep_id = ?1)",
                [id],
            )?;
            self.conn
                .execute("DELETE FROM attempts WHERE sweep_id = ?1", [id])?;
            self.conn
                .execute("DELETE FROM tasks WHERE sweep_id = ?1", [id])?;
            self.conn
                .execute("DELETE FROM events WHERE sweep_id = ?1", [id])?;
            self.task_ids.retain(|(sweep, _), _| *sweep != id);
        }
        self.conn
            .execute(
                "UPDATE sweeps SET fingerprint = ?2, template = ?3, settings = ?4, updated_unix_ms = ?5, runs = runs + 1 WHERE id = ?1",
                params![id, spec.fingerprint, spec.template, settings, now],
            )
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        let run: i64 = self
            .conn
            .query_row("SELECT runs FROM sweeps WHERE id = ?1", [id], |r| r.get(0))?;
        self.commit()?;
        Ok(SweepHandle {
            id,
            name: spec.name.clone(),
            run,
            lock,
        })
    }

    /// Inserts the tasks not yet journaled (by key), marks every task given as part of this
    /// run's task set, and returns every task's record, in the order given. Commits.
    pub fn sync_tasks(
        &mut self,
        sweep: &SweepHandle,
        tasks: &[NewTask],
    ) -> Result<Vec<TaskRecord>> {
        self.group()?;
        let shown = self.shown();
        let next_seq: i64 = self.conn.query_row(
            "SELECT coalesce(max(seq), -1) + 1 FROM tasks WHERE sweep_id = ?1",
            [sweep.id],
            |r| r.get(0),
        )?;
        let mut out = Vec::with_capacity(tasks.len());
        let mut ids = Vec::with_capacity(tasks.len());
        {
            let mut insert = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO tasks (sweep_id, key, seq, params, argv, state, last_run) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
            )?;
            let mut mark = self.conn.prepare_cached(
                "UPDATE tasks SET last_run = ?3 WHERE sweep_id = ?1 AND key = ?2 AND last_run != ?3",
            )?;
            let mut select = self.conn.prepare_cached(
                "SELECT state, attempts, peak, lower_bound, id FROM tasks WHERE sweep_id = ?1 AND key = ?2",
            )?;
            for (i, t) in tasks.iter().enumerate() {
                let argv = serde_json::to_string(&t.argv)?;
                insert
                    .execute(params![
                        sweep.id,
                        t.key,
                        next_seq + i as i64,
                        t.params.to_string(),
                        argv,
                        sweep.run
                    ])
                    .with_context(|| format!("cannot write journal {shown}"))?;
                mark.execute(params![sweep.id, t.key, sweep.run])
                    .with_context(|| format!("cannot write journal {shown}"))?;
                let (rec, id) = select.query_row(params![sweep.id, t.key], |r| {
                    let state: String = r.get(0)?;
                    let rec = TaskRecord {
                        key: t.key.clone(),
                        state: TaskStateRow::parse(&state).unwrap_or(TaskStateRow::Queued),
                        attempts: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        peak: to_u64(r.get(2)?),
                        lower_bound: to_u64(r.get(3)?),
                    };
                    Ok((rec, r.get::<_, i64>(4)?))
                })?;
                out.push(rec);
                ids.push(id);
            }
        }
        self.commit()?;
        for (t, id) in tasks.iter().zip(ids) {
            self.task_ids.insert((sweep.id, t.key.clone()), id);
        }
        Ok(out)
    }

    /// Closes attempts left running by a dead supervisor as `interrupted`, makes their tasks
    /// run again, and returns their pids for the caller to kill. Commits.
    pub fn recover_interrupted(&mut self, sweep: &SweepHandle) -> Result<Vec<Orphan>> {
        self.group()?;
        let now = now_unix_ms();
        let rows: Vec<(i64, i64, String, i64, i64, i64)> = {
            let mut st = self.conn.prepare(
                "SELECT a.id, a.task_id, t.key, a.pid, a.started_unix_ms, a.supervisor_pid
                 FROM attempts a JOIN tasks t ON t.id = a.task_id
                 WHERE a.sweep_id = ?1 AND a.class IS NULL ORDER BY a.id",
            )?;
            let it = st.query_map([sweep.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            it.collect::<rusqlite::Result<_>>()?
        };
        let mut orphans = Vec::with_capacity(rows.len());
        for (attempt_id, task_id, key, pid, started, sup) in rows {
            let peak: Option<i64> = self.conn.query_row(
                "SELECT max(rss) FROM samples WHERE attempt_id = ?1",
                [attempt_id],
                |r| r.get(0),
            )?;
            self.conn.execute(
                "UPDATE attempts SET class = 'interrupted', ended_unix_ms = ?2,
                   duration_ms = max(0, ?2 - started_unix_ms),
                   peak_rss = coalesce(peak_rss, ?3),
                   reason = ?4 WHERE id = ?1",
                params![
                    attempt_id,
                    now,
                    peak,
                    format!("ramguard (pid {sup}) stopped while the task ran")
                ],
            )?;
            self.conn.execute(
                "UPDATE tasks SET state = 'interrupted' WHERE id = ?1 AND state = 'running'",
                [task_id],
            )?;
            self.timelines.remove(&attempt_id);
            self.attempt_tasks.remove(&attempt_id);
            orphans.push(Orphan {
                task_key: key,
                pid: u32::try_from(pid).unwrap_or(0),
                started_unix_ms: started,
            });
        }
        // A task marked running with no open attempt (crash between writes is impossible in
        // one transaction, but be forgiving) is interrupted too.
        self.conn.execute(
            "UPDATE tasks SET state = 'interrupted' WHERE sweep_id = ?1 AND state = 'running'
               AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.task_id = tasks.id AND a.class IS NULL)",
            [sweep.id],
        )?;
        self.commit()?;
        Ok(orphans)
    }
}
