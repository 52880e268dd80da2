//! The executor seam: where the pure policy's decisions meet whatever runs the tasks.
//!
//! An [`Executor`] starts an attempt, signals, pauses and resumes its whole tree, samples
//! the host and every running tree, reports how each attempt ended, and sleeps until the
//! next event. The local supervisor (`crate::supervisor::Supervisor`: fork/exec, `/proc`
//! trees, `wait4`) is one implementation; [`script::Script`] is a deterministic double with
//! a clock of its own, for tests of the policy and of `run`'s output. [`drive`] is the one
//! loop that connects them: executor news in, the policy's actions out, everything
//! reported to a [`Sink`] (the journal and the printer).
//!
//! Nothing here reads a file or starts a process; the executor does that. The loop owns
//! only the order of things: reap → sample → feed the policy → execute its actions →
//! flush the sink (the journal's group commit happens before anything is printed) → wait.

pub mod attempt;
pub mod script;

use std::time::Duration;

use anyhow::Result;
use ramguard_core::policy::{
    Action, Config, Ending, Exit, ExitClass, Note, Policy, Sample, TaskId,
};
use ramguard_core::Bytes;

pub use attempt::{Launch, Settled, TaskFile, TreeMemory};

use crate::words::Words;

/// A task attempt that ended, with everything the journal and the printer need.
#[derive(Debug, Clone)]
pub struct Finished {
    pub task: TaskId,
    pub attempt: u32,
    pub class: ExitClass,
    pub requeued: bool,
    pub reason: String,
    /// How its process ended, as the executor saw it; `None` if no ending was seen.
    pub ending: Option<Ending>,
    pub duration: Duration,
    pub peak: Bytes,
    pub peak_rss: Bytes,
    pub peak_pss: Option<Bytes>,
    /// Processes of the task still alive when its first process exited, killed then.
    pub leftovers: usize,
    /// The largest allocated size of the task's `/dev/shm` files.
    pub peak_shm: Bytes,
    /// The largest summed virtual size (not memory; recorded because users confuse them).
    pub peak_virt: Bytes,
    /// What became of the task's `/dev/shm` files.
    pub shm: Settled,
}

impl Finished {
    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        self.ending.and_then(Ending::code)
    }

    /// The signal that killed it, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.ending.and_then(Ending::signal)
    }
}

/// A snapshot for progress displays.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub running: usize,
    pub used: Bytes,
    pub available: Bytes,
    /// Running tasks paused (SIGSTOP) for memory.
    pub paused: usize,
    /// When the sweep should end, from learned durations; `None` until there is a basis.
    pub eta: Option<Duration>,
    /// Why fewer than `-j` tasks run while tasks wait.
    pub short: Option<String>,
    /// Nothing runs and nothing is left to start: the sink commits everything now.
    pub finished: bool,
}

/// Where the supervisor reports. Implemented by `ramguard run` over the journal and printer.
pub trait Sink {
    /// The command line and files for an attempt that is about to start.
    fn launch(&mut self, now: Duration, task: TaskId, attempt: u32) -> Result<Launch>;
    /// The attempt started as `pid`.
    fn started(
        &mut self,
        now: Duration,
        task: TaskId,
        attempt: u32,
        pid: u32,
        predicted: Bytes,
    ) -> Result<()>;
    /// A memory sample of a running attempt.
    fn sample(&mut self, now: Duration, task: TaskId, memory: &TreeMemory) -> Result<()>;
    /// An attempt ended; buffered until [`Sink::flush`].
    fn finished(&mut self, now: Duration, fin: &Finished) -> Result<()>;
    /// A task fails without starting.
    fn failed_unstarted(&mut self, now: Duration, task: TaskId, reason: &str) -> Result<()>;
    /// Something the policy noted (brake, pause, learned peak).
    fn note(&mut self, now: Duration, note: &Note) -> Result<()>;
    /// Makes what is due durable, then reports it. A sink may hold completions back for a
    /// short group-commit window; it must commit everything once `snapshot.finished`.
    fn flush(&mut self, now: Duration, snapshot: &Snapshot) -> Result<()>;
    /// When the sink next wants [`Sink::flush`] called even if nothing happens.
    fn next_flush(&self) -> Option<Duration> {
        None
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every task reached a final state.
    Completed,
    /// Ctrl-C or SIGTERM: running tasks were stopped.
    Interrupted,
}

/// How ramguard asks a task to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The polite signal (`--stop-signal`, default SIGTERM); KILL follows after the grace.
    Ask,
    /// SIGKILL to the whole tree.
    Kill,
}

/// What starting an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Spawned {
    /// It runs as this pid (or job id).
    Running { pid: u32 },
    /// It could not start; this is its ending, handed to the policy at once.
    Failed(Exit),
}

/// One sample: the host and every running tree.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// What the policy is told.
    pub sample: Sample,
    /// Each running tree's memory in full, for the sink (journal timelines).
    pub trees: Vec<(TaskId, TreeMemory)>,
    /// When the executor wants to sample next, from now.
    pub next: Duration,
}

/// The policy's verdict on an attempt, for [`Executor::ended`] to complete with evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub task: TaskId,
    pub attempt: u32,
    pub class: ExitClass,
    pub requeued: bool,
    pub reason: String,
    pub peak: Bytes,
}

/// An attempt the policy admitted.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    pub task: TaskId,
    pub attempt: u32,
    /// The peak the policy expects; a cluster sizes the job's memory request from it.
    pub predicted: Bytes,
    /// Rises with start order, so that the kernel's OOM killer picks the brake's victim.
    pub oom_score_adj: i32,
    /// The policy as it stands, for executors that size a request from what it learned.
    pub policy: &'a Policy,
}

/// What the drive loop needs from whatever runs tasks.
pub trait Executor {
    /// Time since the run began, on the executor's clock.
    fn now(&self) -> Duration;
    /// How many interrupts (Ctrl-C, SIGTERM) have arrived so far.
    fn interrupts(&mut self) -> usize;
    /// Starts the attempt the policy admitted, as `launch` says.
    fn spawn(&mut self, now: Duration, start: &Start<'_>, launch: Launch) -> Result<Spawned>;
    /// Asks the task's whole tree to stop, or kills it.
    fn stop(&mut self, now: Duration, task: TaskId, how: Stop);
    /// Stops the task's tree where it is (it keeps its memory).
    fn pause(&mut self, now: Duration, task: TaskId);
    /// Lets a paused tree run again.
    fn resume(&mut self, now: Duration, task: TaskId);
    /// SIGKILL to everything running: on errors and on a second interrupt.
    fn kill_all(&mut self);
    /// The attempts that ended since the last call, as the executor saw them end.
    fn reap(&mut self, now: Duration) -> Result<Vec<(TaskId, Exit)>>;
    /// Measures the host and every running tree.
    fn sample(&mut self, now: Duration, config: &Config) -> Result<Sampled>;
    /// The policy closed the task's attempt: the whole record, with the executor's evidence.
    fn ended(&mut self, now: Duration, verdict: Verdict) -> Finished;
    /// Running attempts, what they hold, available headroom and how many are paused.
    fn load(&self) -> Load;
    /// Sends what was batched this pass (a cluster cancels all its jobs at once), then
    /// sleeps until something happens (an exit, a signal) or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> Result<()>;
}

/// What is running now, for the progress display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub running: usize,
    pub used: Bytes,
    pub available: Bytes,
    pub paused: usize,
}

/// How often the ETA and the reason fewer than `-j` run are worked out for the display.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs the policy to the end of the sweep through `exec`, reporting to `sink`.
///
/// On an error every running task is killed before it is returned.
pub fn drive(policy: &mut Policy, exec: &mut dyn Executor, sink: &mut dyn Sink) -> Result<RunEnd> {
    let mut progress = None;
    let result = drive_loop(policy, exec, sink, &mut progress);
    if result.is_err() {
        exec.kill_all();
    }
    result
}

/// The last ETA and "why fewer than -j", and when they were computed.
type Progress = Option<(Duration, Option<Duration>, Option<String>)>;

fn drive_loop(
    policy: &mut Policy,
    exec: &mut dyn Executor,
    sink: &mut dyn Sink,
    progress: &mut Progress,
) -> Result<RunEnd> {
    let mut interrupts_seen = 0;
    let mut next_sample = Duration::ZERO;
    loop {
        let now = exec.now();
        let interrupts = exec.interrupts();
        if interrupts > interrupts_seen {
            if interrupts_seen == 0 {
                policy.interrupt(now);
            } else {
                // A second Ctrl-C: no more grace.
                exec.kill_all();
            }
            interrupts_seen = interrupts;
        }
        for (task, exit) in exec.reap(now)? {
            policy.handle_exit(now, task, &exit);
        }
        if now >= next_sample {
            let sampled = exec.sample(now, policy.config())?;
            for (task, memory) in &sampled.trees {
                sink.sample(now, *task, memory)?;
            }
            policy.handle_sample(now, &sampled.sample);
            next_sample = now + sampled.next;
        }
        execute(policy, exec, sink, now)?;
        let snapshot = snapshot(policy, exec, progress);
        sink.flush(now, &snapshot)?;
        if exec.load().running == 0 && policy.is_finished() {
            return Ok(if interrupts_seen > 0 {
                RunEnd::Interrupted
            } else {
                RunEnd::Completed
            });
        }
        let now = exec.now();
        let mut until = next_sample;
        if let Some(t) = policy.poll_timeout(now) {
            until = until.min(t);
        }
        if let Some(t) = sink.next_flush() {
            until = until.min(t);
        }
        exec.wait(until.saturating_sub(now))?;
    }
}

/// Executes the policy's actions.
fn execute(
    policy: &mut Policy,
    exec: &mut dyn Executor,
    sink: &mut dyn Sink,
    now: Duration,
) -> Result<()> {
    while let Some(action) = policy.poll_action(now) {
        match action {
            Action::Start {
                task,
                attempt,
                predicted,
                oom_score_adj,
            } => {
                let launch = sink.launch(now, task, attempt)?;
                let start = Start {
                    task,
                    attempt,
                    predicted,
                    oom_score_adj,
                    policy,
                };
                match exec.spawn(now, &start, launch)? {
                    Spawned::Running { pid } => sink.started(now, task, attempt, pid, predicted)?,
                    Spawned::Failed(exit) => policy.handle_exit(now, task, &exit),
                }
            }
            Action::Term { task, .. } => exec.stop(now, task, Stop::Ask),
            Action::Kill { task, .. } => exec.stop(now, task, Stop::Kill),
            Action::Pause { task } => exec.pause(now, task),
            Action::Resume { task } => exec.resume(now, task),
            Action::Finished {
                task,
                attempt,
                class,
                requeued,
                reason,
                peak,
            } => {
                let fin = exec.ended(
                    now,
                    Verdict {
                        task,
                        attempt,
                        class,
                        requeued,
                        reason: reason.words(),
                        peak,
                    },
                );
                sink.finished(now, &fin)?;
            }
            Action::Fail { task, reason } => sink.failed_unstarted(now, task, &reason.words())?,
            Action::Note(note) => sink.note(now, &note)?,
        }
    }
    Ok(())
}

fn snapshot(policy: &Policy, exec: &dyn Executor, progress: &mut Progress) -> Snapshot {
    let now = exec.now();
    // The ETA predicts up to a thousand queued tasks: a few times a second is enough.
    let stale = progress
        .as_ref()
        .is_none_or(|p| now.saturating_sub(p.0) >= PROGRESS_EVERY);
    if stale {
        let eta = policy.eta(now);
        let short = policy.short().map(Words::words);
        *progress = Some((now, eta, short));
    }
    let (at, eta, short) = progress.clone().unwrap_or_default();
    let load = exec.load();
    Snapshot {
        running: load.running,
        used: load.used,
        available: load.available,
        paused: load.paused,
        eta: eta.map(|e| e.saturating_sub(now.saturating_sub(at))),
        short,
        finished: load.running == 0 && policy.is_finished(),
    }
}
