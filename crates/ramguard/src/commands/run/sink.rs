//! The journal, the log pump and the printer behind the local supervisor ([`RunSink`], the
//! supervisor's `Sink`): each attempt's files and environment, its start and end journaled,
//! its memory timeline downsampled into the journal, policy notes as events. A completion
//! is committed before it is printed and before the next task starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use ramguard_core::policy::{ExitClass, Note, TaskId};
use ramguard_core::tasks::TaskDef;
use ramguard_core::Bytes;
use serde_json::json;

use super::{host_trace, leak, progress, restart};
use crate::executor::{Finished, Sink, Snapshot};
use crate::journal::{self, AttemptEnd, Journal, MemSample, SweepHandle};
use crate::logs;
use crate::render::printer::Printer;
use crate::render::run::{self as lines, EndVerb, RunStats};
use crate::settings::RestartSettings;
use crate::supervisor::{self, tree::TreeMemory, Launch};
use crate::words::Words;

/// The journal, the log pump and the printer behind the supervisor.
#[derive(Debug)]
pub(crate) struct RunSink<'a> {
    pub(crate) logs: logs::Logs,
    pub(crate) journal: Journal,
    pub(crate) handle: SweepHandle,
    pub(crate) tasks: &'a [TaskDef],
    /// Policy task id → index into `tasks`.
    pub(crate) todo: &'a [usize],
    /// Attempts recorded in earlier runs, per policy task id.
    pub(crate) prior_attempts: Vec<u32>,
    pub(crate) attempt_ids: HashMap<(TaskId, u32), i64>,
    pub(crate) log_dir: PathBuf,
    /// `log_dir` made absolute once, for `$RAMGUARD_RESULT` (tasks may change directory).
    pub(crate) abs_log_dir: PathBuf,
    pub(crate) thread_env: Vec<(String, String)>,
    /// Every thread variable as a task sees it, recorded per attempt.
    pub(crate) threads_applied: journal::task_env::ThreadEnv,
    /// How each task's latest attempt ended (this run or the journal's).
    pub(crate) previous: HashMap<TaskId, journal::task_env::Ending>,
    pub(crate) restart: RestartSettings,
    pub(crate) grace: Duration,
    /// The hint about Python workers dying of SIGTERM is still to be given (`--repeat`
    /// sweeps: N workers of one command, as Optuna's worker mode runs).
    pub(crate) python_hint_due: bool,
    pub(crate) printer: Printer,
    pub(crate) progress: progress::ProgressLog,
    pub(crate) pending: Vec<String>,
    pub(crate) stats: RunStats,
    /// Per running task: its memory timeline, written to the journal at most every
    /// [`TIMELINE_STEP`] (the highest figures in between are kept, so peaks survive).
    pub(crate) samples: HashMap<TaskId, Timeline>,
    /// When the journal was last committed, and whether completions wait to be reported.
    pub(crate) last_commit: Duration,
    pub(crate) completions_pending: bool,
    /// Completions written to the open group and not committed at all yet (not even
    /// [`Journal::commit_for_crash`]): the next start commits them first.
    pub(crate) uncommitted: bool,
    /// Leak watches of the running attempts.
    pub(crate) leaks: leak::Leaks,
    /// When the host's available memory was last journaled.
    pub(crate) host_trace: host_trace::HostTrace,
}

/// Shortest interval between two timeline rows of one attempt in the journal.
const TIMELINE_STEP: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeline {
    attempt_id: i64,
    started: Duration,
    last_written: Option<Duration>,
    /// The highest figures since the last row, and when the highest memory was seen.
    pending: Option<(Duration, MemSample)>,
}

impl Timeline {
    fn take_row(&mut self) -> Option<MemSample> {
        let (at, row) = self.pending.take()?;
        self.last_written = Some(at);
        Some(MemSample {
            t_ms: at.saturating_sub(self.started).as_millis() as u64,
            ..row
        })
    }
}

/// What a failed commit stops the run with.
const COMMIT_FAILED: &str =
    "cannot commit to the journal (disk full?); stopped: what was committed is kept, rerun to resume";

/// Starts and samples are committed at least this often, so `status` sees them.
const BACKGROUND_COMMIT: Duration = Duration::from_secs(1);
/// Completions are made durable (and then printed) at most this often: one fsync per tick
/// cost 1–1.5 ms on the loop that starts the next tasks, a third of the time of a sweep of
/// 1,000 one-millisecond tasks. A task's line waits at most this long. Before any start they
/// are committed for a crash ([`Journal::commit_for_crash`]); a completion followed by no
/// start waits in the open group, and a crash then reruns it, as for any group not yet
/// committed.
const COMPLETION_COMMIT: Duration = Duration::from_millis(50);

impl RunSink<'_> {
    fn def(&self, task: TaskId) -> &TaskDef {
        &self.tasks[self.todo[task]]
    }

    fn journal_attempt(&self, task: TaskId, attempt: u32) -> u32 {
        self.prior_attempts[task] + attempt
    }

    fn label(&self, task: TaskId) -> String {
        lines::label(self.todo[task] + 1, self.def(task))
    }

    /// An attempt's files, named by the task's identity (never its position in this run).
    fn files(&self, task: TaskId, attempt: u32) -> (PathBuf, PathBuf, PathBuf) {
        let n = logs::file_stem(&self.handle.name, &self.def(task).key);
        let a = self.journal_attempt(task, attempt);
        (
            self.log_dir.join(format!("{n}.{a}.out")),
            self.log_dir.join(format!("{n}.{a}.err")),
            self.log_dir.join(format!("{n}.{a}.result.json")),
        )
    }
}

impl Sink for RunSink<'_> {
    fn launch(&mut self, now: Duration, task: TaskId, attempt: u32) -> Result<Launch> {
        // A finished task must be committed before anything new starts: a start is when
        // memory is riskiest, and a crash then must not make the rerun repeat it. Within
        // the group-commit window that commit does not wait for the disk (an fsync before
        // every start cost a third of a sweep of one-millisecond tasks), and the completion
        // is printed after the next full commit; otherwise it is a full commit, printed now.
        if self.completions_pending && now.saturating_sub(self.last_commit) >= COMPLETION_COMMIT {
            self.commit(now)?;
        } else if self.uncommitted {
            self.journal.commit_for_crash().context(COMMIT_FAILED)?;
            self.uncommitted = false;
        }
        let (stdout, stderr, result) = self.files(task, attempt);
        // A result file from an earlier run (before --fresh) must not pass for this one's.
        let _ = std::fs::remove_file(&result);
        let mut env = self.thread_env.clone();
        let result_name = result.file_name().unwrap_or_default();
        env.push((
            "RAMGUARD_RESULT".into(),
            self.abs_log_dir.join(result_name).display().to_string(),
        ));
        env.push(("RAMGUARD_TASK".into(), (self.todo[task] + 1).to_string()));
        env.push((
            "RAMGUARD_ATTEMPT".into(),
            self.journal_attempt(task, attempt).to_string(),
        ));
        env.extend(restart::task_env(
            self.previous.get(&task),
            &self.restart,
            self.grace,
        ));
        Ok(Launch {
            argv: self.def(task).argv.clone(),
            env,
            stdout: self.logs.capture(stdout)?,
            stderr: self.logs.capture(stderr)?,
        })
    }

    fn started(
        &mut self,
        now: Duration,
        task: TaskId,
        attempt: u32,
        pid: u32,
        predicted: Bytes,
    ) -> Result<()> {
        let key = self.def(task).key.clone();
        let a = self.journal_attempt(task, attempt);
        let id = self
            .journal
            .attempt_started(&self.handle, &key, a, pid, supervisor::unix_ms())?;
        self.samples.insert(
            task,
            Timeline {
                attempt_id: id,
                started: now,
                last_written: None,
                pending: None,
            },
        );
        self.attempt_ids.insert((task, attempt), id);
        if !self.threads_applied.is_empty() {
            self.journal.attempt_threads(id, &self.threads_applied)?;
        }
        let line = lines::start_line(&self.label(task), attempt, a, pid, predicted);
        // Behind lines that wait for a commit, so that a retry never prints its start
        // before the end of the attempt it retries.
        if self.pending.is_empty() {
            self.printer.event(&line);
        } else {
            self.pending.push(line);
        }
        Ok(())
    }

    fn sample(&mut self, now: Duration, task: TaskId, memory: &TreeMemory) -> Result<()> {
        let Some(t) = self.samples.get_mut(&task) else {
            return Ok(());
        };
        let row = MemSample {
            t_ms: 0,
            rss: memory.rss.get(),
            pss: memory.pss.map(Bytes::get),
            used: Some(memory.used.get()),
            shm: Some(memory.shm.get()),
            virt: Some(memory.virt.get()),
        };
        t.pending = Some(match t.pending {
            Some((at, p)) => {
                let at = if row.used > p.used { now } else { at };
                (
                    at,
                    MemSample {
                        t_ms: 0,
                        rss: p.rss.max(row.rss),
                        pss: p.pss.max(row.pss),
                        used: p.used.max(row.used),
                        shm: p.shm.max(row.shm),
                        virt: p.virt.max(row.virt),
                    },
                )
            }
            None => (now, row),
        });
        let due = t
            .last_written
            .is_none_or(|w| now.saturating_sub(w) >= TIMELINE_STEP);
        let age = now.saturating_sub(t.started);
        if due {
            let id = t.attempt_id;
            if let Some(row) = t.take_row() {
                self.journal.add_samples(id, &[row])?;
            }
        }
        if let Some(flag) = self.leaks.sample(task, age, memory.used) {
            let detail = json!({ "task": self.def(task).key, "leak": flag.detail });
            self.journal
                .event(&self.handle, supervisor::unix_ms(), "leak", &detail)?;
            self.printer
                .event(&lines::leak_line(&self.label(task), &flag.line));
        }
        Ok(())
    }

    fn finished(&mut self, _now: Duration, fin: &Finished) -> Result<()> {
        self.leaks.finished(fin.task);
        if let Some(mut t) = self.samples.remove(&fin.task) {
            if let Some(row) = t.take_row() {
                self.journal.add_samples(t.attempt_id, &[row])?;
            }
        }
        let (_, _, result_path) = self.files(fin.task, fin.attempt);
        let result = std::fs::read_to_string(&result_path).ok();
        logs::make_private(&result_path);
        let Some(id) = self.attempt_ids.remove(&(fin.task, fin.attempt)) else {
            // Never started (spawn failed before a pid existed): record it as an attempt.
            let key = self.def(fin.task).key.clone();
            let a = self.journal_attempt(fin.task, fin.attempt);
            let id =
                self.journal
                    .attempt_started(&self.handle, &key, a, 0, supervisor::unix_ms())?;
            return self.finish_attempt(id, fin, result);
        };
        self.finish_attempt(id, fin, result)
    }

    fn failed_unstarted(&mut self, _now: Duration, task: TaskId, reason: &str) -> Result<()> {
        let key = self.def(task).key.clone();
        let id = self.journal.attempt_started(
            &self.handle,
            &key,
            self.journal_attempt(task, 1),
            0,
            supervisor::unix_ms(),
        )?;
        let fin = Finished {
            task,
            attempt: 1,
            class: ExitClass::Failed,
            requeued: false,
            reason: reason.to_string(),
            ending: None,
            duration: Duration::ZERO,
            peak: Bytes::ZERO,
            peak_rss: Bytes::ZERO,
            peak_pss: None,
            leftovers: 0,
            peak_shm: Bytes::ZERO,
            peak_virt: Bytes::ZERO,
            shm: Default::default(),
        };
        self.finish_attempt(id, &fin, None)
    }

    fn next_flush(&self) -> Option<Duration> {
        let every = if self.completions_pending {
            COMPLETION_COMMIT
        } else {
            BACKGROUND_COMMIT
        };
        Some(self.last_commit + every)
    }

    fn note(&mut self, _now: Duration, note: &Note) -> Result<()> {
        let (kind, detail) = match note {
            Note::Paused { why } => ("paused", json!({ "why": why.words() })),
            Note::Resumed => ("resumed", json!({})),
            Note::LearnedPeak { peak } => ("learned_peak", json!({ "peak": peak })),
            Note::Brake { task, why } => (
                "brake",
                json!({ "task": self.def(*task).key, "why": why.words() }),
            ),
            Note::TaskPaused { task, why } => {
                self.stats.pauses += 1;
                (
                    "task_paused",
                    json!({ "task": self.def(*task).key, "why": why.words() }),
                )
            }
            Note::TaskResumed { task, paused_for } => {
                self.stats.paused += *paused_for;
                (
                    "task_resumed",
                    json!({ "task": self.def(*task).key, "paused_ms": paused_for.as_millis() as u64 }),
                )
            }
        };
        self.journal
            .event(&self.handle, supervisor::unix_ms(), kind, &detail)?;
        self.pending
            .push(lines::note_line(note, |task| self.label(task)));
        Ok(())
    }

    fn flush(&mut self, now: Duration, snapshot: &Snapshot) -> Result<()> {
        if let Some(due) = self.progress.due(now, snapshot) {
            let at = supervisor::unix_ms();
            self.journal
                .event(&self.handle, at, "progress", &due.detail)?;
            if let Some(line) = due.line.filter(|_| self.printer.plain) {
                self.pending.push(line);
            }
        }
        self.host_trace
            .sample(&mut self.journal, &self.handle, now, snapshot)?;
        let since = now.saturating_sub(self.last_commit);
        // Completions share a commit (at most one per COMPLETION_COMMIT); starts and
        // samples ride along, or go in the background commit so that `status` sees them.
        let due = if self.completions_pending {
            COMPLETION_COMMIT
        } else {
            BACKGROUND_COMMIT
        };
        if since >= due || snapshot.finished {
            self.commit(now)?;
        }
        self.stats.peak_used = self.stats.peak_used.max(snapshot.used);
        self.printer
            .update(snapshot, self.stats.done + self.stats.failed);
        Ok(())
    }
}

impl RunSink<'_> {
    /// Commits the journal, then prints what waited for it.
    fn commit(&mut self, now: Duration) -> Result<()> {
        // Durable first, then reported.
        self.journal.commit().context(COMMIT_FAILED)?;
        self.last_commit = now;
        self.completions_pending = false;
        self.uncommitted = false;
        for line in self.pending.drain(..) {
            self.printer.event(&line);
        }
        Ok(())
    }

    fn finish_attempt(&mut self, id: i64, fin: &Finished, result: Option<String>) -> Result<()> {
        let class = fin.class.as_str();
        self.journal.attempt_finished(
            id,
            &AttemptEnd {
                ended_unix_ms: supervisor::unix_ms(),
                duration_ms: fin.duration.as_millis() as u64,
                peak_rss: fin.peak_rss.get(),
                peak_pss: fin.peak_pss.map(|p| p.get()),
                peak: Some(fin.peak.get()),
                peak_shm: Some(fin.peak_shm.get()),
                peak_virt: Some(fin.peak_virt.get()),
                shm_left: files_json(&fin.shm.left),
                shm_removed: files_json(&fin.shm.removed),
                class: fin.class,
                ending: fin.ending,
                reason: fin.reason.clone(),
                requeued: fin.requeued,
                result,
            },
        )?;
        self.previous.insert(
            fin.task,
            journal::task_env::Ending {
                class: class.to_string(),
                reason: fin.reason.clone(),
                peak: Some(fin.peak_rss.get()),
            },
        );
        if self.python_hint_due
            && restart::unhandled_python_stop(&self.def(fin.task).argv, class, fin.signal())
            && self.restart.stop_signal.number() == 15
        {
            self.python_hint_due = false;
            self.printer
                .line(&format!("hint: {}", restart::PYTHON_STOP_HINT));
        }
        let verb = EndVerb::of(fin.class, fin.requeued, self.restart.recycle.is_some());
        match verb {
            EndVerb::Done => self.stats.done += 1,
            EndVerb::Requeue => self.stats.braked += 1,
            EndVerb::Recycle => self.stats.recycled += 1,
            EndVerb::Failed => {
                self.stats.failed += 1;
                let (_, err, _) = self.files(fin.task, fin.attempt);
                let what = format!("{}: {} ({})", self.label(fin.task), fin.reason, class);
                self.stats.failures.push((what, err));
            }
            EndVerb::Stopped | EndVerb::Retry => {}
        }
        if fin.leftovers > 0 {
            self.stats.leftovers += fin.leftovers;
            self.stats.leftover_tasks += 1;
            self.journal.event(
                &self.handle,
                supervisor::unix_ms(),
                "leftovers_killed",
                &json!({
                    "task": self.def(fin.task).key,
                    "attempt": self.journal_attempt(fin.task, fin.attempt),
                    "processes": fin.leftovers,
                }),
            )?;
        }
        let label = self.label(fin.task);
        self.pending.push(lines::end_line(verb, &label, fin));
        if !fin.shm.removed.is_empty() {
            self.stats.shm_removed += fin.shm.removed.len();
            self.pending
                .push(lines::shm_removed_line(&label, &fin.shm.removed));
        }
        if !fin.shm.left.is_empty() {
            self.pending
                .push(lines::shm_left_line(&label, &fin.shm.left));
            self.stats.shm_left.push((label, fin.shm.left.clone()));
        }
        self.completions_pending = true;
        self.uncommitted = true;
        Ok(())
    }
}

/// A list of shm files as JSON for the journal, or nothing when there are none.
fn files_json(files: &[supervisor::shm::TaskFile]) -> Option<String> {
    (!files.is_empty()).then(|| json!(files).to_string())
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}
