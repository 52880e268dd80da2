//! The Slurm run's [`Sink`]: journals every job's attempt and prints one line per event.
//!
//! A job's start (`slurm_submit` or `slurm_adopt` event) is committed as soon as it is
//! submitted, so a submitter that dies finds it again; the job's timeline (what its wrapper
//! wrote) is copied into the journal about once a second and in full when it ends; every
//! ending is journaled with Slurm's state beside the reason. The jobs themselves are on
//! the shared [`Board`](super::board::Board) the executor fills.

use std::os::fd::OwnedFd;
use std::time::Duration;

use anyhow::{Context, Result};
use ramguard_core::policy::{ExitClass, Note, TaskId};
use ramguard_core::units::format_duration;
use ramguard_core::Bytes;
use serde_json::json;

use super::board::{say, Flight, Names, Shared};
use super::{job, read_timeline, submit};
use crate::executor::{Finished, Sink, Snapshot};
use crate::journal::{AttemptEnd, Journal, MemSample, SweepHandle};
use crate::supervisor::spawn::Launch;
use crate::supervisor::tree::TreeMemory;
use crate::supervisor::unix_ms;
use crate::words::Words;

/// Finished tasks after which a job's size counts as learned, for the ratio summary.
const WARMUP: usize = 3;

/// One finished job, for the summary.
#[derive(Debug, serde::Serialize)]
pub struct JobRow {
    task: usize,
    attempt: u32,
    job: u64,
    state: String,
    class: String,
    requested: u64,
    peak: u64,
    job_peak: u64,
    learned_from: usize,
    /// Sized by a memory kill's measurement rather than by the model.
    escalated: bool,
}

/// Journal and progress lines of a Slurm run.
#[derive(Debug)]
pub struct SlurmSink<'a> {
    pub names: &'a Names<'a>,
    pub journal: Journal,
    pub handle: SweepHandle,
    pub board: Shared,
    pub thread_env: Vec<(String, String)>,
    /// `--estimate`, named when a job is sized from it.
    pub estimate: Option<Bytes>,
    pub quiet: bool,
    /// When the jobs' timelines were last copied to the journal.
    pub timelines_at: Option<Duration>,
    pub rows: Vec<JobRow>,
    pub done: usize,
    pub failed: usize,
    pub requeued: usize,
    pub failures: Vec<String>,
}

impl SlurmSink<'_> {
    fn line(&self, text: &str) {
        say(self.quiet, text);
    }

    fn key(&self, task: TaskId) -> &str {
        &self.names.def(task).key
    }

    /// Requested ÷ true peak over the jobs that finished: the sizing's cost in idle memory.
    pub fn ratio_summary(&self) -> serde_json::Value {
        let ratio = |r: &JobRow| r.requested as f64 / r.peak.max(1) as f64;
        let done: Vec<&JobRow> = self
            .rows
            .iter()
            .filter(|r| r.class == "done" && !r.escalated)
            .collect();
        let escalated: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.class == "done" && r.escalated)
            .map(ratio)
            .collect();
        let warm: Vec<f64> = done
            .iter()
            .filter(|r| r.learned_from >= WARMUP)
            .map(|r| ratio(r))
            .collect();
        let cold: Vec<f64> = done
            .iter()
            .filter(|r| r.learned_from < WARMUP)
            .map(|r| ratio(r))
            .collect();
        let max = |v: &[f64]| {
            v.iter()
                .copied()
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        };
        let median = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            s.get(s.len() / 2).copied()
        };
        let text = max(&warm).map(|m| {
            format!(
                "slurm: requested --mem / true peak after the first {WARMUP} tasks: median {:.2}x, max {m:.2}x over {} job(s){}",
                median(&warm).unwrap_or(m),
                warm.len(),
                max(&cold).map_or(String::new(), |c| format!(" (before: up to {c:.2}x)"))
            )
        });
        json!({
            "warmup_tasks": WARMUP,
            "after_warmup_jobs": warm.len(),
            "after_warmup_max": max(&warm),
            "after_warmup_median": median(&warm),
            "before_warmup_max": max(&cold),
            "escalated_max": max(&escalated),
            "text": text,
        })
    }
}

/// The job's output goes to files named in its spec on the shared filesystem; the launch's
/// descriptors are not used.
fn dev_null() -> Result<OwnedFd> {
    Ok(std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .context("cannot open /dev/null")?
        .into())
}

impl Sink for SlurmSink<'_> {
    fn launch(&mut self, _now: Duration, task: TaskId, attempt: u32) -> Result<Launch> {
        let ja = self.names.journal_attempt(task, attempt);
        let mut env = self.thread_env.clone();
        let result = self.names.result(task, ja);
        env.push(("RAMGUARD_RESULT".into(), result.display().to_string()));
        env.push((
            "RAMGUARD_TASK".into(),
            (self.names.todo[task] + 1).to_string(),
        ));
        env.push(("RAMGUARD_ATTEMPT".into(), ja.to_string()));
        Ok(Launch {
            argv: self.names.def(task).argv.clone(),
            env,
            stdout: dev_null()?,
            stderr: dev_null()?,
        })
    }

    fn started(
        &mut self,
        _now: Duration,
        task: TaskId,
        attempt: u32,
        _pid: u32,
        predicted: Bytes,
    ) -> Result<()> {
        let key = self.key(task).to_string();
        let board = self.board.clone();
        let mut board = board.borrow_mut();
        let f = board
            .flights
            .get_mut(&task)
            .context("a started job is in flight")?;
        let ja = f.journal_attempt;
        f.attempt_id = self
            .journal
            .attempt_started(&self.handle, &key, ja, 0, unix_ms())?;
        let (job, requested) = (f.job, f.requested);
        if f.adopted {
            self.journal.event(
                &self.handle,
                unix_ms(),
                "slurm_adopt",
                &json!({ "task": key, "attempt": ja, "job": job, "mem": requested }),
            )?;
            self.journal.commit()?;
            self.line(&format!(
                "adopt   {}  job {job} (submitted by an earlier run), --mem {}",
                self.names.label(task),
                submit::mem_arg(requested)
            ));
            return Ok(());
        }
        self.journal.event(
            &self.handle,
            unix_ms(),
            "slurm_submit",
            &json!({ "task": key, "attempt": ja, "job": job, "mem": requested, "predicted": predicted }),
        )?;
        // A crash right after this must find the job: durable before anything else.
        self.journal.commit()?;
        let retry = if attempt > 1 {
            format!(" (attempt {ja})")
        } else {
            String::new()
        };
        self.line(&format!(
            "submit  {}{retry}  job {job}, --mem {} ({}){}",
            self.names.label(task),
            submit::mem_arg(requested),
            if predicted == Bytes::ZERO {
                match self.estimate {
                    Some(_) => "--estimate".to_string(),
                    None => "nothing learned yet".to_string(),
                }
            } else {
                format!("predicted {predicted}")
            },
            f.time.map_or(String::new(), |(t, _)| format!(
                ", --time {}",
                submit::time_arg(t)
            ))
        ));
        Ok(())
    }

    fn sample(&mut self, now: Duration, task: TaskId, _memory: &TreeMemory) -> Result<()> {
        // The timelines go to the journal about once a second, so `status` shows them.
        let due = match self.timelines_at {
            Some(t) if t == now => true,
            Some(t) => now.saturating_sub(t) >= Duration::from_secs(1),
            None => now >= Duration::from_secs(1),
        };
        if !due {
            return Ok(());
        }
        self.timelines_at = Some(now);
        if let Some(f) = self.board.borrow_mut().flights.get_mut(&task) {
            journal_new_rows(&mut self.journal, f)?;
        }
        Ok(())
    }

    fn finished(&mut self, _now: Duration, fin: &Finished) -> Result<()> {
        let Some(mut e) = self.board.borrow_mut().closed.remove(&fin.task) else {
            return Ok(());
        };
        journal_new_rows(&mut self.journal, &mut e.flight)?;
        let f = &e.flight;
        let (task, class, reason, peak) = (fin.task, fin.class, &fin.reason, fin.peak);
        let result = std::fs::read_to_string(self.names.result(task, f.files_attempt)).ok();
        let p = f.progress;
        let duration_ms = fin.duration.as_millis() as u64;
        let full_reason = format!("{reason} [Slurm job {}: {}]", f.job, e.state.name());
        self.journal.attempt_finished(
            f.attempt_id,
            &AttemptEnd {
                ended_unix_ms: unix_ms(),
                duration_ms,
                peak_rss: p.peak_rss,
                peak_pss: p.peak_pss,
                peak: Some(p.peak),
                peak_shm: None,
                peak_virt: None,
                shm_left: None,
                shm_removed: None,
                class,
                ending: fin.ending,
                reason: full_reason,
                requeued: fin.requeued,
                result,
            },
        )?;
        self.journal.commit()?;
        let _ = std::fs::write(f.dir.join("journaled"), "");
        self.rows.push(JobRow {
            task: self.names.todo[task] + 1,
            attempt: f.journal_attempt,
            job: f.job,
            state: e.state.name().to_string(),
            class: class.as_str().to_string(),
            requested: f.requested.get(),
            peak: peak.get(),
            job_peak: p.job_peak,
            learned_from: f.learned_from,
            escalated: f.escalated,
        });
        let label = self.names.label(task);
        let dur = format_duration(fin.duration);
        let verb = match (class, fin.requeued) {
            (ExitClass::Done, _) => {
                self.done += 1;
                "done   "
            }
            (ExitClass::Interrupted, _) => "stopped",
            (_, true) => {
                self.requeued += 1;
                "requeue"
            }
            (_, false) => {
                self.failed += 1;
                self.failures
                    .push(format!("{label}: {reason} ({})", class.as_str()));
                "failed "
            }
        };
        let detail = if class == ExitClass::Done {
            let ratio = f.requested.get() as f64 / peak.get().max(1) as f64;
            format!(
                "{dur} peak {peak}, asked {} ({ratio:.2}x)",
                submit::mem_arg(f.requested)
            )
        } else {
            format!("{reason} (after {dur}, peak {peak})")
        };
        self.line(&format!("{verb} {label}  job {}  {detail}", f.job));
        Ok(())
    }

    fn failed_unstarted(&mut self, _now: Duration, task: TaskId, reason: &str) -> Result<()> {
        let key = self.key(task).to_string();
        let ja = self.names.journal_attempt(task, 1);
        let id = self
            .journal
            .attempt_started(&self.handle, &key, ja, 0, unix_ms())?;
        self.journal.attempt_finished(
            id,
            &AttemptEnd {
                ended_unix_ms: unix_ms(),
                duration_ms: 0,
                peak_rss: 0,
                peak_pss: None,
                peak: None,
                peak_shm: None,
                peak_virt: None,
                shm_left: None,
                shm_removed: None,
                class: ExitClass::Failed,
                ending: None,
                reason: reason.to_string(),
                requeued: false,
                result: None,
            },
        )?;
        self.failed += 1;
        let label = self.names.label(task);
        self.failures.push(format!("{label}: {reason}"));
        self.line(&format!("failed  {label}  {reason}"));
        Ok(())
    }

    fn note(&mut self, _now: Duration, note: &Note) -> Result<()> {
        let (kind, detail, line) = match note {
            Note::Paused { why } => (
                "paused",
                json!({ "why": why.words() }),
                format!("pause   {}", why.words()),
            ),
            Note::Resumed => ("resumed", json!({}), "resume  submitting again".to_string()),
            Note::LearnedPeak { peak } => (
                "learned_peak",
                json!({ "peak": peak }),
                format!("learn   typical peak now {peak}"),
            ),
            Note::TaskPaused { task, why } => (
                "task_paused",
                json!({ "task": self.key(*task), "why": why.words() }),
                format!("wait    {}  {}", self.names.label(*task), why.words()),
            ),
            Note::TaskResumed { task, .. } => (
                "task_resumed",
                json!({ "task": self.key(*task) }),
                format!("go on   {}", self.names.label(*task)),
            ),
            Note::Brake { task, why } => (
                "brake",
                json!({ "task": self.key(*task), "why": why.words() }),
                format!("cancel  {}  {}", self.names.label(*task), why.words()),
            ),
        };
        self.journal.event(&self.handle, unix_ms(), kind, &detail)?;
        self.line(&line);
        Ok(())
    }

    fn flush(&mut self, _now: Duration, _snapshot: &Snapshot) -> Result<()> {
        self.journal.commit()
    }
}

/// Copies the rows of a job's timeline that the journal does not have yet.
fn journal_new_rows(journal: &mut Journal, f: &mut Flight) -> Result<()> {
    let rows: Vec<MemSample> = read_timeline(&f.dir.join(job::TIMELINE))
        .into_iter()
        .filter(|r| f.journaled_t_ms.is_none_or(|t| r.t_ms > t))
        .collect();
    if let Some(last) = rows.last() {
        f.journaled_t_ms = Some(last.t_ms);
        journal.add_samples(f.attempt_id, &rows)?;
    }
    Ok(())
}
