//! The policy's vocabulary: settings, what is known about a task, samples, task states,
//! the actions the supervisor carries out and the notes worth telling a person.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::reason::{BrakeWhy, PauseCause, PauseWhy, Reason};
use crate::units::Bytes;

/// Index of a task in the list given to [`Policy::new`](super::Policy::new).
pub type TaskId = usize;

/// Settings, all resolved to bytes and durations by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--mem`: the most the running tasks' trees may hold together.
    pub budget: Bytes,
    /// Host headroom kept free: admission needs `available − reserve` to fit the task.
    pub reserve: Bytes,
    /// When available headroom falls below this, the brake stops the newest task.
    pub brake_level: Bytes,
    /// When available falls below this, the brake kills at once (no grace).
    pub hard_level: Bytes,
    /// `-j`: most tasks running at once.
    pub max_jobs: usize,
    /// `--estimate`: the peak assumed for a task before anything is measured.
    pub estimate: Option<Bytes>,
    /// `--task-mem`: a task whose tree exceeds this fails as over cap.
    pub task_cap: Option<Bytes>,
    /// `--timeout`: a task running longer fails as timed out.
    pub timeout: Option<Duration>,
    /// `--grace`: time between TERM and KILL.
    pub grace: Duration,
    /// `--retries`: extra attempts for ordinary failures (not brakes).
    pub retries: u32,
    /// Admission pauses while PSI `full avg10` (percent) is at or above this.
    pub psi_full_pause: f64,
    /// After this many brakes a task runs alone; if it is braked alone it fails.
    pub max_brakes: u32,
    /// Pause (SIGSTOP) a growing task before braking when memory nears the limit
    /// (`policy/suspend.rs`); false with `--no-pause`, or where the executor cannot pause.
    pub pause: bool,
}

/// What the policy knows about a task before it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSpec {
    /// Numeric values from the task's parameters/argv, in a fixed order for the sweep
    /// (same length for every task of a sweep, `NaN` where a task has none).
    pub features: Vec<f64>,
    /// A peak known from an earlier run (journal): a lower bound for its prediction.
    pub lower_bound: Option<Bytes>,
    /// Attempts already used in earlier runs (journal), counted against `--retries`.
    pub prior_attempts: u32,
}

/// One observation of memory, taken by the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Effective available headroom now (the probe's `available`).
    pub available: Bytes,
    /// PSI `full avg10` in percent, when known.
    pub psi_full_avg10: Option<f64>,
    /// Memory of each running task: what its tree holds, shared pages once, plus its
    /// /dev/shm files (the supervisor's one measure).
    pub tasks: Vec<(TaskId, Bytes)>,
    /// How many more tasks `/dev/shm` can take at the largest shared-memory use measured so
    /// far, beside what the running tasks are still expected to add (the supervisor's
    /// judgement); `None` while no task used it. While anything runs, admission starts at
    /// most this many tasks until the next sample.
    pub shm_room_for: Option<usize>,
    /// Free space in `/dev/shm`, where known. Memory is plentiful for unknown tasks only when
    /// `/dev/shm` could also take `-j` of them at the plausible size: a task may put all of
    /// its memory there (a SharedMemory pool), and a full `/dev/shm` is a SIGBUS, not a
    /// brake.
    pub shm_free: Option<Bytes>,
    /// CPU time (user and system) each running task's tree has used so far, where the
    /// supervisor reads it: a task that uses none for a while is asleep, and stopping it
    /// costs nothing ([`park`](super::park)). Tasks not listed are never taken as asleep.
    pub cpu: Vec<(TaskId, Duration)>,
}

/// Why ramguard stops a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Memory ran short; the task is requeued, not failed.
    Brake,
    /// The tree exceeded `--task-mem`.
    OverCap,
    /// The task ran longer than `--timeout`.
    Timeout,
    /// ramguard was interrupted (Ctrl-C / SIGTERM).
    Interrupt,
    /// The task ran longer than `--max-age` (recycled, see [`recycle`](super::recycle)).
    MaxAge,
}

/// SIGKILL on Linux: what the kernel's OOM killer sends, and ramguard's last word.
pub const SIGKILL: i32 = 9;
/// SIGBUS on Linux: what a process gets writing to a full `/dev/shm` mapping.
pub const SIGBUS: i32 = 7;
/// SIGTERM on Linux.
pub const SIGTERM: i32 = 15;

/// How an attempt's process ended, with the evidence the executor read right after it
/// ended: produced once, by the executor, and judged by the policy
/// ([`Policy::handle_exit`](super::Policy::handle_exit)). Each variant can only say what
/// is possible: an exit has a code and no signal, an OOM kill is a SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Exited with this code (0: success; 127: the command could not be started).
    Exited { code: i32 },
    /// Killed by this signal, with no evidence of the kernel's OOM killer or a full
    /// `/dev/shm` (ramguard's own TERM and KILL end here too).
    Signaled { signal: i32 },
    /// SIGKILL while the kernel's OOM-kill counter moved during the attempt.
    OomKilled,
    /// SIGBUS while `/dev/shm` was nearly full.
    ShmFull,
    /// Ended with neither an exit code nor a signal the executor could read.
    Unknown,
}

impl Ending {
    /// The ending of a wait status as `(code, signal)`, with no further evidence.
    pub fn from_status(code: Option<i32>, signal: Option<i32>) -> Ending {
        match (code, signal) {
            (_, Some(signal)) => Ending::Signaled { signal },
            (Some(code), None) => Ending::Exited { code },
            (None, None) => Ending::Unknown,
        }
    }

    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            Ending::Exited { code } => Some(code),
            _ => None,
        }
    }

    /// The signal that killed it, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            Ending::Signaled { signal } => Some(signal),
            Ending::OomKilled => Some(SIGKILL),
            Ending::ShmFull => Some(SIGBUS),
            Ending::Exited { .. } | Ending::Unknown => None,
        }
    }
}

/// How a task's process ended, as the executor saw it (before the policy's verdict).
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub ending: Ending,
    /// Highest memory of the tree seen during the attempt.
    pub peak: Bytes,
}

/// The verdict on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitClass {
    /// Exited with code 0.
    Done,
    /// Exited with a nonzero code.
    Failed,
    /// Killed by a signal nobody in ramguard sent.
    Signaled,
    /// Stopped for exceeding `--task-mem`.
    OverCap,
    /// Stopped for exceeding `--timeout`.
    TimedOut,
    /// Stopped by the brake and requeued.
    Braked,
    /// Killed by the kernel's OOM killer.
    OomKilled,
    /// SIGBUS with `/dev/shm` nearly full.
    ShmBus,
    /// Stopped because ramguard was interrupted; runs again next time.
    Interrupted,
    /// Stopped for running longer than `--max-age`.
    MaxAge,
}

impl ExitClass {
    /// Every class, in declaration order.
    pub const ALL: [ExitClass; 10] = [
        ExitClass::Done,
        ExitClass::Failed,
        ExitClass::Signaled,
        ExitClass::OverCap,
        ExitClass::TimedOut,
        ExitClass::Braked,
        ExitClass::OomKilled,
        ExitClass::ShmBus,
        ExitClass::Interrupted,
        ExitClass::MaxAge,
    ];

    /// The class named `name` in the journal (the inverse of [`ExitClass::as_str`]).
    pub fn parse(name: &str) -> Option<ExitClass> {
        ExitClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The class's name in the journal and in JSON (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            ExitClass::Done => "done",
            ExitClass::Failed => "failed",
            ExitClass::Signaled => "signaled",
            ExitClass::OverCap => "over_cap",
            ExitClass::TimedOut => "timed_out",
            ExitClass::Braked => "braked",
            ExitClass::OomKilled => "oom_killed",
            ExitClass::ShmBus => "shm_bus",
            ExitClass::Interrupted => "interrupted",
            ExitClass::MaxAge => "max_age",
        }
    }
}

/// A task's state; each state carries its data.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    /// Waiting for room.
    Queued { attempt: u32, brakes: u32 },
    /// Running; `stopping` is set once TERM was sent.
    Running {
        attempt: u32,
        started: Duration,
        current: Bytes,
        peak: Bytes,
        predicted: Bytes,
        brakes: u32,
        stopping: Option<Stopping>,
        /// What the policy tracks about this attempt (boxed: most tasks are not running).
        facts: Box<AttemptFacts>,
    },
    /// Finished with exit code 0; its peak has been learned.
    Done { peak: Bytes, duration: Duration },
    /// Failed for good (or interrupted), and why.
    Failed { class: ExitClass, reason: Reason },
}

/// A running task ramguard has sent TERM: why, when, and what is known since.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopping {
    pub reason: StopReason,
    /// When TERM was sent.
    pub at: Duration,
    /// What the tree held when TERM was sent.
    pub held: Bytes,
    /// KILL was sent too.
    pub killed: bool,
    /// Why the brake stopped it; `Some` if and only if `reason` is [`StopReason::Brake`].
    pub brake: Option<BrakeCause>,
}

/// Why the brake stopped a task.
#[derive(Debug, Clone, PartialEq)]
pub struct BrakeCause {
    /// What made the brake fire.
    pub why: BrakeWhy,
    /// Nothing else ran: braked alone after `max_brakes`, the task fails instead of requeuing.
    pub alone: bool,
}

/// How long a task's memory must stand still for the time before it to count as a quiet
/// start ([`AttemptFacts::quiet`]): as long as a running task must before it counts as idle.
pub const QUIET_GAP: Duration = super::admission::IDLE_AFTER;

/// A task's quiet start before it climbed to `peak`, from its climb (`(time run, peak so
/// far)` each time its peak grew by more than a small step, 2%): the time
/// of the first climb after the last time its memory stood still for [`QUIET_GAP`] or longer
/// (from its start, or between two climbs) before it first held 95% of `peak`, and what it
/// held until then; `(0, 0)` when it never stood still that long on its way up.
pub fn quiet_start(climb: &[(Duration, Bytes)], peak: Bytes) -> (Duration, Bytes) {
    let top = climb
        .iter()
        .position(|&(_, p)| p >= peak.scale(super::NEAR_PEAK))
        .map_or(climb.len(), |i| i + 1);
    let steps: Vec<(Duration, Bytes)> = std::iter::once((Duration::ZERO, Bytes::ZERO))
        .chain(climb[..top].iter().copied())
        .collect();
    steps
        .windows(2)
        .rev()
        .find(|w| w[1].0.saturating_sub(w[0].0) >= QUIET_GAP)
        .map_or((Duration::ZERO, Bytes::ZERO), |w| (w[1].0, w[0].1))
}

/// A finished attempt's quiet start (see [`quiet_start`]) from its memory samples
/// (`(time run, bytes)`, in order), as the journal keeps them; `None` when they are too
/// far apart before its peak to tell a stand-still from a gap between samples (more than
/// half of [`QUIET_GAP`]: the journal thins a long attempt's samples).
pub fn quiet_start_of_samples(
    samples: &[(Duration, Bytes)],
    peak: Bytes,
) -> Option<(Duration, Bytes)> {
    let mut climb: Vec<(Duration, Bytes)> = Vec::new();
    let mut last = Duration::ZERO;
    let mut highest = Bytes::ZERO;
    for &(t, mem) in samples {
        if highest >= peak.scale(super::NEAR_PEAK) {
            break;
        }
        if t.saturating_sub(last) > QUIET_GAP / 2 {
            return None;
        }
        last = t;
        highest = highest.max(mem);
        climb_to(&mut climb, t, highest);
    }
    Some(quiet_start(&climb, peak))
}

/// Records in a climb (see [`AttemptFacts::climb`]) that the peak was `peak` at `age`, if
/// it grew by more than [`CLIMB_STEP`](super::CLIMB_STEP) since the last step (or this is
/// the first).
pub(super) fn climb_to(climb: &mut Vec<(Duration, Bytes)>, age: Duration, peak: Bytes) {
    if climb
        .last()
        .is_none_or(|&(_, p)| peak > p.scale(1.0 + super::CLIMB_STEP))
    {
        climb.push((age, peak));
    }
}

/// What the policy tracks about a running attempt beyond what the supervisor measures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttemptFacts {
    /// Start order; the brake stops the highest.
    pub seq: u64,
    /// Rank for `oom_score_adj` among tasks running together.
    pub rank: u32,
    /// Started with no prediction at all (cold start).
    pub cold: bool,
    /// Peak when it last grew by more than [`SETTLE_GROWTH`](super::SETTLE_GROWTH).
    pub settle_ref: Bytes,
    /// When the peak last grew by that much.
    pub grown_at: Duration,
    /// `(age, peak)` each time the peak grew by more than a small step, the age in time run
    /// (paused time excluded): when it got near its final peak is learned from this.
    pub climb: Vec<(Duration, Bytes)>,
    /// Paused (SIGSTOP) since then; `None` while it runs.
    pub paused_since: Option<Duration>,
    /// Time this attempt spent paused before `paused_since`.
    pub paused_total: Duration,
    /// How fast it grew (bytes/s) when last paused: what it resumes at.
    pub paused_rate: f64,
    /// Resumed to probe what memory is left while nothing else grew: its growth is looked
    /// ahead only [`PROBE_HORIZON`](super::suspend::PROBE_HORIZON), until it is paused
    /// again ([`suspend`](super::suspend), "Probing").
    pub probing: bool,
    /// Admitted in its quiet start: counted at what it holds meanwhile from the first
    /// instant, not only after it has idled a second (admission's module doc, "Quiet
    /// starts").
    pub quiet: bool,
    /// Admitted in its quiet start without room for its jump: parking (in a sleepy sweep)
    /// or the pause (where tasks work before they climb) is to stop it at that jump if it
    /// does not fit then ([`park`](super::park), admission's "Jumps left to the pause").
    pub jump_to_park: bool,
    /// When the task last used CPU worth counting, and its CPU time then; `None` until
    /// its CPU time is known ([`park`](super::park)).
    pub busy: Option<(Duration, Duration)>,
    /// Paused while asleep, until half its jump fits ([`park`](super::park)).
    pub parked: bool,
    /// Was asleep while it idled ([`park`](super::park)).
    pub slept: bool,
    /// How often a younger parked task was resumed while this one stayed parked.
    pub overtaken: u32,
}

impl AttemptFacts {
    /// When (in time run) the attempt's peak first reached `level`, if it has.
    pub fn reached(&self, level: Bytes) -> Option<Duration> {
        self.climb
            .iter()
            .find(|&&(_, p)| p >= level)
            .map(|&(age, _)| age)
    }

    /// The attempt's quiet start before it climbed to `peak` (see [`quiet_start`]).
    pub fn quiet(&self, peak: Bytes) -> (Duration, Bytes) {
        quiet_start(&self.climb, peak)
    }

    /// The facts of a task that is not running: never paused, nothing climbed.
    pub const IDLE: AttemptFacts = AttemptFacts {
        seq: 0,
        rank: 0,
        cold: false,
        settle_ref: Bytes::ZERO,
        grown_at: Duration::ZERO,
        climb: Vec::new(),
        paused_since: None,
        paused_total: Duration::ZERO,
        paused_rate: 0.0,
        probing: false,
        quiet: false,
        jump_to_park: false,
        busy: None,
        parked: false,
        slept: false,
        overtaken: 0,
    };
}

/// What the supervisor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a task; `oom_score_adj` rises with start order.
    Start {
        task: TaskId,
        attempt: u32,
        predicted: Bytes,
        oom_score_adj: i32,
    },
    /// Send SIGTERM to the task's whole tree.
    Term { task: TaskId, reason: StopReason },
    /// Send SIGKILL to the task's whole tree.
    Kill { task: TaskId, reason: StopReason },
    /// Stop the task's whole tree in place (SIGSTOP): it keeps its memory and its work,
    /// and stops growing (see [`suspend`](super::suspend)).
    Pause { task: TaskId },
    /// Let a paused tree run again (SIGCONT).
    Resume { task: TaskId },
    /// An attempt ended with this verdict (after [`Policy::handle_exit`](super::Policy::handle_exit)).
    Finished {
        task: TaskId,
        attempt: u32,
        class: ExitClass,
        /// Requeued for another attempt (brake, OOM, retry).
        requeued: bool,
        /// Why, as data (the binary words it: "exit code 3").
        reason: Reason,
        peak: Bytes,
    },
    /// A task can never run: fails without starting (too big to fit even alone).
    Fail { task: TaskId, reason: Reason },
    /// Something worth a journal event and a progress line.
    Note(Note),
}

/// Events worth telling the user about that need no action from the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Admission paused (PSI, or nothing fits right now while tasks run).
    Paused { why: PauseWhy },
    /// Admission resumed after a pause.
    Resumed,
    /// The learned typical peak changed noticeably.
    LearnedPeak { peak: Bytes },
    /// The brake fired, and why.
    Brake { task: TaskId, why: BrakeWhy },
    /// A running task was paused (SIGSTOP): so that others' growth fits, or, asleep, until
    /// half its jump fits.
    TaskPaused { task: TaskId, why: PauseCause },
    /// A paused task runs again after being paused for `paused_for`.
    TaskResumed { task: TaskId, paused_for: Duration },
}
