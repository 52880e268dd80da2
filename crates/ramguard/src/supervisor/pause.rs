//! Pausing and resuming a task's whole process tree: the supervisor's side of the policy's
//! suspend lever (`ramguard_core::policy::suspend`).
//!
//! A pause sends SIGSTOP to the task's process group and to every process of its tree that
//! ramguard has seen (descendants that changed group included); a resume sends SIGCONT the
//! same way. Stopped processes keep their memory and cannot be told apart from running ones
//! by the reaper (`wait4` without `WUNTRACED` does not report stops), so nothing else in
//! the supervisor changes. SIGKILL ends a stopped process at once; SIGTERM waits for
//! SIGCONT, which is why the policy resumes a paused task right after telling it to stop.
//! Here only the bookkeeping of when each pause began, for the progress display; the policy
//! owns what paused time means (`--timeout`, learned durations).

use std::collections::HashMap;
use std::time::Duration;

use ramguard_core::policy::TaskId;
use rustix::process::Signal;

use super::tree::Trees;

/// Tasks paused now, with when each pause began.
#[derive(Debug, Default)]
pub struct Pauses {
    since: HashMap<TaskId, Duration>,
}

impl Pauses {
    /// Stops the task's tree where it is.
    pub fn pause(&mut self, trees: &mut Trees, task: TaskId, now: Duration) {
        trees.signal(task, Signal::STOP);
        self.since.entry(task).or_insert(now);
    }

    /// Lets the task's tree run again; returns how long it was paused.
    pub fn resume(&mut self, trees: &mut Trees, task: TaskId, now: Duration) -> Duration {
        trees.signal(task, Signal::CONT);
        self.since
            .remove(&task)
            .map_or(Duration::ZERO, |s| now.saturating_sub(s))
    }

    /// The task's attempt ended: it is no longer paused, whatever its tree's state.
    pub fn forget(&mut self, task: TaskId) {
        self.since.remove(&task);
    }

    /// How many tasks are paused now.
    pub fn count(&self) -> usize {
        self.since.len()
    }
}
