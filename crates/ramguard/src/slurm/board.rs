//! What the Slurm executor and the Slurm sink share: the jobs in flight and ended, and the
//! names of every job's files.
//!
//! The executor ([`super::cluster`]) submits, cancels and polls and fills the board; the
//! sink ([`super::sink`]) journals and prints from it (a job's id, its `--mem`, the journal
//! row of its attempt). Both run on the drive loop's one thread, one after the other, so a
//! `RefCell` borrow never outlives a call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use ramguard_core::policy::{ExitClass, TaskId};
use ramguard_core::tasks::TaskDef;
use ramguard_core::Bytes;

use super::job::{JobExit, Progress};
use super::poll::SlurmState;

/// The board, shared by the executor and the sink.
pub type Shared = Rc<RefCell<Board>>;

/// Jobs in flight, ended, and closed by the policy's verdict.
#[derive(Debug, Default)]
pub struct Board {
    pub flights: HashMap<TaskId, Flight>,
    /// Ended, waiting for the policy's verdict.
    pub ended: HashMap<TaskId, Ended>,
    /// Given a verdict, waiting for the sink to journal it.
    pub closed: HashMap<TaskId, Ended>,
}

/// A job in flight.
#[derive(Debug, Default)]
pub struct Flight {
    pub job: u64,
    pub journal_attempt: u32,
    /// The attempt number in the job's file names (an adopted job keeps its own).
    pub files_attempt: u32,
    /// The journal's row for the attempt, once the sink has journaled its start.
    pub attempt_id: i64,
    pub dir: PathBuf,
    pub requested: Bytes,
    pub time: Option<(Duration, bool)>,
    /// Models' observations when it was sized (0: a cold guess).
    pub learned_from: usize,
    /// Sized by a memory kill's measurement.
    pub escalated: bool,
    /// Taken over from a submitter that died, not submitted by this run.
    pub adopted: bool,
    /// The last timeline row already in the journal.
    pub journaled_t_ms: Option<u64>,
    pub progress: Progress,
    /// Why ramguard cancelled it, if it did.
    pub cancelled: bool,
    /// When sacct first called it ended while its exit file was missing.
    pub ended_seen: Option<Duration>,
}

/// A job that ended.
#[derive(Debug)]
pub struct Ended {
    pub flight: Flight,
    pub state: SlurmState,
    pub exit: Option<JobExit>,
    /// A class and reason that say more than the policy can know.
    pub class: Option<ExitClass>,
    pub reason: Option<String>,
}

/// The names of the sweep's tasks and of their files.
#[derive(Debug)]
pub struct Names<'a> {
    pub sweep: &'a str,
    pub tasks: &'a [TaskDef],
    /// Policy task id → index into `tasks`.
    pub todo: &'a [usize],
    /// Attempts of earlier runs, per policy task id.
    pub prior_attempts: Vec<u32>,
    /// The log folder, absolute (the jobs run elsewhere).
    pub abs_log_dir: PathBuf,
    /// `<journal dir>/slurm/<sweep>/`, where the jobs' directories are.
    pub root: PathBuf,
}

impl Names<'_> {
    /// The task's definition.
    pub fn def(&self, task: TaskId) -> &TaskDef {
        &self.tasks[self.todo[task]]
    }

    /// The name of task `i`'s job directories and log files: a hash of its identity, the
    /// same in every run (as the local run's logs), never its position.
    pub fn stem(&self, i: usize) -> String {
        crate::logs::file_stem(self.sweep, &self.tasks[i].key)
    }

    /// The journal's attempt number of the policy's `attempt` of `task`.
    pub fn journal_attempt(&self, task: TaskId, attempt: u32) -> u32 {
        self.prior_attempts[task] + attempt
    }

    /// Where the task writes its result for the attempt named `files_attempt`.
    pub fn result(&self, task: TaskId, files_attempt: u32) -> PathBuf {
        let stem = self.stem(self.todo[task]);
        self.abs_log_dir
            .join(format!("{stem}.{files_attempt}.result.json"))
    }

    /// The task's stdout or stderr (`ext` "out" or "err") for an attempt.
    pub fn log(&self, task: TaskId, files_attempt: u32, ext: &str) -> PathBuf {
        let stem = self.stem(self.todo[task]);
        self.abs_log_dir
            .join(format!("{stem}.{files_attempt}.{ext}"))
    }

    /// A job directory's name for an attempt.
    pub fn job_dir(&self, task: TaskId, files_attempt: u32) -> PathBuf {
        let stem = self.stem(self.todo[task]);
        self.root.join(format!("{stem}.{files_attempt}"))
    }

    /// `#N params`, for progress lines.
    pub fn label(&self, task: TaskId) -> String {
        let i = self.todo[task];
        let d = &self.tasks[i];
        let text = if d.params.is_empty() || d.params.iter().all(|(k, _)| k == "#") {
            shell_words::join(&d.argv)
        } else {
            d.params
                .iter()
                .filter(|(k, _)| k != "#")
                .map(|(k, v)| match k.parse::<usize>() {
                    Ok(_) => v.clone(),
                    Err(_) => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!("#{} {}", i + 1, text.chars().take(60).collect::<String>())
    }
}

/// One timestamped progress line on stderr, unless `quiet`.
pub fn say(quiet: bool, text: &str) {
    if quiet {
        return;
    }
    use std::io::Write;
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{ts} {text}");
}

/// A path made absolute against the working directory.
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}
