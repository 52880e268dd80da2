//! The admission/brake policy: a pure state machine, driven like quinn-proto.
//!
//! Inputs are samples (memory of the host and of each running task's tree) and exits, each
//! stamped with `now` (time since the run started, supplied by the caller). Outputs are
//! [`Action`]s polled with [`Policy::poll_action`], and [`Policy::poll_timeout`] says when
//! the policy next wants to be asked even if nothing happens. No clock, no I/O, no processes:
//! [`sim`] drives the very same code with scripted memory traces in simulated time.
//!
//! # Admission
//! A queued task is started only while fewer than `max_jobs` run, PSI `full avg10` is below
//! `psi_full_pause`, and, with no time known about any task, its predicted peak fits in
//!
//! ```text
//! min(available − reserve, budget − Σ current) − Σ_running max(0, predicted_i − current_i)
//! ```
//!
//! The last term reserves every running task's *future* growth: tasks start small and grow,
//! which defeats a free-memory check at start time. A task started since the last sample has
//! `current = 0`, so it is reserved in full; memory freed by an exit is credited at once.
//!
//! **Looking ahead.** Once tasks have finished, the model also knows how long a task runs
//! and how soon it reaches its peak (both per task from its features, see [`predict`]).
//! Each running task then becomes a curve ([`project`]): from what it holds now up to its
//! predicted peak by its expected time to peak, held until its expected end, then nothing;
//! the newcomer likewise from zero, with no end. A task is admitted when the highest point
//! of the sum of the curves stays within `min(available − reserve + Σ current, budget)`.
//! This lets a task that needs a long ramp start while a big one is finishing instead of
//! after it. Every estimate errs toward the safe side (durations high, times to peak low,
//! each with two residual deviations and the margin). A task that outlives its expected end
//! counts as never ending; one that climbs past its predicted peak is projected to keep
//! climbing at its recent rate for [`RUNAWAY_HORIZON`], with no end; cold-started tasks have
//! no curve but their peak. Suspend ([`suspend`]) catches a bet that fails, the brake what
//! the model still gets wrong. Measured in simulated time on the benchmark's 36-task sweep
//! (`tests/policy_sim.rs::bench_sweep_*`): 86.6 s with peak reservations alone, 69.8 s
//! looking ahead (leaky variant 112.6 → 78.9 s), 70.7 s with longest-first ordering and
//! suspend (leaky 71.9 s), for a lower bound of 40.3 s and 52.8 s for a scheduler that
//! knows every task's exact curve in advance; 0 brakes in each.
//!
//! Queue order is task order, or longest expected first once durations are learned per
//! task ([`order`]). A task that does not fit may be overtaken by a smaller one
//! later in the queue (backfill, looking at most [`BACKFILL_WINDOW`] tasks deep), but only `max(max_jobs, 1)` times for the same head of the
//! queue: after that nothing more is admitted until the head fits, so running tasks drain and
//! a big task is never starved by a stream of small ones. When nothing runs, the head needs
//! only its measured lower bound to fit (the model may over-predict; the brake corrects), so
//! a sweep never stalls on a wrong prediction. Predictions above the budget are thereby run
//! alone; only a *measured* lower bound above the budget fails a task without starting.
//!
//! # Prediction
//! See [`predict`]: per-task from numeric features when they explain the finished peaks,
//! else a high quantile of finished peaks plus a margin, else `--estimate`; never below the
//! task's lower bound (its peak when braked or OOM-killed, or from the journal). A running
//! task's prediction is `max(prediction, peak so far)` and is refreshed when the model learns.
//!
//! **Plentiful memory** (nothing known, but the limit holds `-j` tasks at a plausible
//! [`order::COLD_PLAUSIBLE`] each): every slot starts at once, no settle window; suspend and
//! the brake correct a task that turns out larger ([`order`]).
//!
//! **Cold start** (no estimate, nothing finished, memory not plentiful): one task is
//! admitted first. More are
//! admitted only when every cold-started running task has *settled* (its peak grew by at most
//! 5% over the last [`SETTLE_WINDOW`]), each predicted as the largest peak seen in this run
//! plus the margin; the brake corrects what this gets wrong. Settled tasks' peaks are also
//! learned provisionally (until [`PROVISIONAL_UNTIL`] tasks have finished), so per-task
//! predictions start before anything ends. The trade-off is makespan
//! against wasted (braked) work and against leaning on the brake at all. Measured in
//! simulated time by `tests/policy_sim.rs::cold_start_tradeoff` (8 GiB host, 6 GiB budget,
//! 512 MiB brake level, `-j 8`, 8 identical tasks; tasks exit 100 ms after TERM):
//!
//! | workload                         | strategy            | makespan | braked task-s | brakes |
//! |----------------------------------|---------------------|---------:|--------------:|-------:|
//! | ramp 10 s to 1 GiB, hold 20 s    | cold start          |   71.8 s |           0   |      0 |
//! |                                  | `--estimate` right  |   60.0 s |           0   |      0 |
//! |                                  | `-j 1`              |  240.0 s |           0   |      0 |
//! |                                  | `--estimate` 10× low|   66.2 s |          20.4 |      3 |
//! | ramp 25 s to 1.5 GiB, hold 5 s   | cold start          |  106.0 s |           0   |      0 |
//! |                                  | `--estimate` right  |   90.0 s |           0   |      0 |
//! |                                  | `-j 1`              |  240.0 s |           0   |      0 |
//! |                                  | `--estimate` 10× low|   83.2 s |          57.2 |      4 |
//!
//! Cold start costs about one ramp plus the settle window (+18–20%) and never brakes;
//! admitting blind now pauses the newest tasks as memory nears the limit and brakes paused
//! ones only when their memory is needed (braked task-s count work thrown away, paused
//! time excluded). Before suspend, blind admission took 60.0 s (16.4 task-s thrown away, 2
//! brakes) and 79.4 s (64.0, 4): pausing made the early-peak workload slower and more
//! wasteful (every task was paused at about 70% of its peak, so paused tasks held memory
//! the others needed) and the late-peak one slower but less wasteful. It is still a guess
//! the brake has to correct.
//! Anything finished replaces the guess with the learned model.
//!
//! # Suspend
//! See [`suspend`]: when the running tasks' projected memory exceeds the limit and memory
//! actually approaches it, the newest task still growing is paused (SIGSTOP of its tree),
//! and resumed, oldest first, when the projection with it fits again; paused time counts
//! neither toward `--timeout` nor toward learned durations. The oldest running task is never
//! paused, and if every running task is paused the oldest is resumed. A paused task whose
//! memory the others need is braked before the brake level.
//!
//! # Brake
//! When available falls below `brake_level`, or the running trees hold more than the
//! budget, the newest running task that is not already stopping gets TERM (and KILL after
//! `grace`, or at once while available is below `hard_level` or once it has grown by more
//! than [`STILL_GROWING`] since TERM: a task that ignores TERM must not take three times the
//! budget during the grace; the same holds for `--task-mem`). It fires once, then waits:
//! no second victim while one is still stopping; if memory is still short after the victim
//! was reaped, the next sample brakes the next newest. A braked (or kernel-OOM-killed) task
//! is requeued with its peak as lower bound without spending `--retries`; after `max_brakes`
//! it runs alone, and braked alone at that point it fails with how much it needed.
//! `oom_score_adj` rises with start order (100 + 50 × rank, at most 1000) so that the
//! kernel, if it strikes first, picks the same task the brake would.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::Bytes;

pub mod eta;
pub mod levels;
pub mod order;
pub mod predict;
pub mod project;
pub mod recycle;
pub mod sim;
pub mod suspend;

use predict::{Observation, Predictor};
use project::Curve;

/// Index of a task in the list given to [`Policy::new`].
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
    /// The task ran longer than `--max-age` (recycled, see [`recycle`]).
    MaxAge,
}

/// How a task's process ended, as the supervisor saw it (before the policy's verdict).
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    /// Exit code when it exited.
    pub code: Option<i32>,
    /// Signal number when a signal killed it.
    pub signal: Option<i32>,
    /// The kernel OOM-killed something in the task's tree during this attempt.
    pub oom_killed: bool,
    /// SIGBUS while `/dev/shm` was nearly full.
    pub shm_full: bool,
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
    Queued {
        attempt: u32,
        lower_bound: Option<Bytes>,
        brakes: u32,
    },
    /// Running; `stopping` is set once TERM was sent.
    Running {
        attempt: u32,
        started: Duration,
        current: Bytes,
        peak: Bytes,
        predicted: Bytes,
        brakes: u32,
        stopping: Option<(StopReason, Duration)>,
    },
    /// Finished with exit code 0; its peak has been learned.
    Done { peak: Bytes, duration: Duration },
    /// Failed for good (or interrupted); `reason` is one line a person reads.
    Failed { class: ExitClass, reason: String },
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
    /// and stops growing (see [`suspend`]).
    Pause { task: TaskId },
    /// Let a paused tree run again (SIGCONT).
    Resume { task: TaskId },
    /// An attempt ended with this verdict (after [`Policy::handle_exit`]).
    Finished {
        task: TaskId,
        attempt: u32,
        class: ExitClass,
        /// Requeued for another attempt (brake, OOM, retry).
        requeued: bool,
        /// One line a person reads: "exit code 3", "needs 5.1 GiB, budget 4 GiB".
        reason: String,
        peak: Bytes,
    },
    /// A task can never run: fails without starting (too big to fit even alone).
    Fail { task: TaskId, reason: String },
    /// Something worth a journal event and a progress line.
    Note(Note),
}

/// Events worth telling the user about that need no action from the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Admission paused (PSI, or nothing fits right now while tasks run).
    Paused { why: String },
    /// Admission resumed after a pause.
    Resumed,
    /// The learned typical peak changed noticeably.
    LearnedPeak { peak: Bytes },
    /// The brake fired: the reason in words.
    Brake { task: TaskId, why: String },
    /// A running task was paused (SIGSTOP) so that others' growth fits: the reason in words.
    TaskPaused { task: TaskId, why: String },
    /// A paused task runs again after being paused for `paused_for`.
    TaskResumed { task: TaskId, paused_for: Duration },
}

/// How long a cold-started task's peak must stay within [`SETTLE_GROWTH`] before more
/// unknown tasks are admitted beside it.
pub const SETTLE_WINDOW: Duration = Duration::from_secs(2);
/// Relative growth of a peak that counts as "still growing".
pub const SETTLE_GROWTH: f64 = 0.05;
/// How many queued tasks, from the head, admission considers at each decision.
pub const BACKFILL_WINDOW: usize = 256;
/// A task stopped for memory that grows by more than this after TERM is killed at once.
pub const STILL_GROWING: Bytes = Bytes(32 << 20);
/// Until this many tasks have finished, settled running tasks' peaks are learned too.
pub const PROVISIONAL_UNTIL: usize = 8;
/// How far ahead a task climbing past its prediction is assumed to keep climbing, when it
/// has no expected end.
pub const RUNAWAY_HORIZON: Duration = Duration::from_secs(10);
/// Relative growth of a peak worth a point in a task's climb record.
pub(crate) const CLIMB_STEP: f64 = 0.02;
/// Share of its final peak at which a task counts as having reached it.
const NEAR_PEAK: f64 = 0.95;
/// A learned typical peak that moves by more than this share is announced.
const LEARNED_NOTE_CHANGE: f64 = 0.10;
/// Smallest typical peak, and change of it, worth a LearnedPeak note.
const LEARNED_NOTE_MIN: u64 = 8 << 20;

/// Bookkeeping per task that the public state does not carry.
#[derive(Debug, Clone, Default)]
struct Aux {
    /// Start order of the current attempt; the brake stops the highest.
    seq: u64,
    /// Rank for `oom_score_adj` among tasks running together.
    rank: u32,
    /// KILL was sent for the current attempt.
    killed: bool,
    /// Ordinary failures so far (journal's prior attempts included), against `--retries`.
    failures: u32,
    /// Highest lower bound known: journal, brakes, OOM kills.
    lower_bound: Option<Bytes>,
    /// Started with no prediction at all (cold start).
    cold: bool,
    /// Peak when it last grew by more than [`SETTLE_GROWTH`], and when.
    settle_ref: Bytes,
    grown_at: Duration,
    /// `(age, peak)` each time the peak grew by more than [`CLIMB_STEP`]: when it got near
    /// its final peak is learned from this.
    climb: Vec<(Duration, Bytes)>,
    /// The brake stopped it while nothing else ran.
    braked_alone: bool,
    /// What it held when TERM was sent.
    term_current: Bytes,
    /// Why the brake stopped it, in words.
    brake_why: String,
    /// Paused (SIGSTOP) since then; `None` while it runs.
    paused_since: Option<Duration>,
    /// Time this attempt spent paused before `paused_since`.
    paused_total: Duration,
    /// How fast it grew (bytes/s) when last paused: what it resumes at.
    paused_rate: f64,
}

/// Why admission is held back, for the Paused/Resumed notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    Psi,
    Stalled,
}

/// The policy machine.
#[derive(Debug, Clone)]
pub struct Policy {
    config: Config,
    tasks: Vec<TaskState>,
    specs: Vec<TaskSpec>,
    aux: Vec<Aux>,
    predictor: Predictor,
    /// The predictor plus the peaks of running tasks that have settled, while fewer than
    /// [`PROVISIONAL_UNTIL`] tasks have finished; and which (task, peak) pairs it holds.
    provisional: Option<(Predictor, Vec<(TaskId, Bytes)>)>,
    actions: VecDeque<Action>,
    /// Available headroom from the last sample plus memory freed by exits since.
    available: Option<Bytes>,
    psi: Option<f64>,
    /// The last sample's [`Sample::shm_room_for`], and how many tasks started since.
    shm_room_for: Option<usize>,
    shm_started: usize,
    /// The last sample's [`Sample::shm_free`].
    shm_free: Option<Bytes>,
    paused: Option<Pause>,
    interrupted: bool,
    next_seq: u64,
    /// Largest peak any attempt reached in this run: the cold-start guess.
    largest_seen: Bytes,
    noted_typical: Option<Bytes>,
    /// The head of the queue and how often smaller tasks overtook it.
    head: Option<(TaskId, u32)>,
    /// Queued tasks in queue order, and running ones: kept beside `tasks` so that no
    /// decision scans a 100,000-task sweep.
    queued: BTreeSet<TaskId>,
    running: BTreeSet<TaskId>,
    /// Queued tasks whose lower bound may have grown past the budget since last checked.
    recheck: Vec<TaskId>,
    /// `--recycle`, `--max-age`, `--retry-on` and the restarts so far ([`recycle`]).
    restarts: recycle::Restarts,
    /// Why fewer than `max_jobs` tasks run while tasks wait, as of the last admission.
    short: Option<eta::Short>,
}

impl Policy {
    /// Every task starts queued (or as the spec says from a previous run).
    pub fn new(config: Config, specs: Vec<TaskSpec>) -> Policy {
        let n = specs.len();
        let recheck: Vec<TaskId> = (0..n)
            .filter(|&id| specs[id].lower_bound.is_some())
            .collect();
        let tasks = specs
            .iter()
            .map(|s| TaskState::Queued {
                attempt: s.prior_attempts + 1,
                lower_bound: s.lower_bound,
                brakes: 0,
            })
            .collect();
        let aux = specs
            .iter()
            .map(|s| Aux {
                failures: s.prior_attempts,
                lower_bound: s.lower_bound,
                ..Aux::default()
            })
            .collect();
        Policy {
            predictor: Predictor::new(config.estimate),
            provisional: None,
            config,
            tasks,
            specs,
            aux,
            actions: VecDeque::new(),
            available: None,
            psi: None,
            shm_room_for: None,
            shm_free: None,
            shm_started: 0,
            paused: None,
            interrupted: false,
            next_seq: 0,
            largest_seen: Bytes::ZERO,
            noted_typical: None,
            head: None,
            queued: (0..n).collect(),
            running: BTreeSet::new(),
            recheck,
            restarts: recycle::Restarts::default(),
            short: None,
        }
    }

    /// What finished tasks of earlier runs of the sweep showed (journal), to learn from
    /// before starting: a resumed sweep admits as well as the run it resumes.
    pub fn learn_from_history(&mut self, observations: &[(Vec<f64>, Observation)]) {
        for (features, obs) in observations {
            self.predictor.observe(features, *obs);
        }
        self.note_learned();
    }

    /// Feeds a memory sample.
    pub fn handle_sample(&mut self, now: Duration, sample: &Sample) {
        self.available = Some(sample.available);
        self.psi = sample.psi_full_avg10;
        self.shm_room_for = sample.shm_room_for;
        self.shm_free = sample.shm_free;
        self.shm_started = 0;
        for &(id, mem) in &sample.tasks {
            let Some(TaskState::Running {
                started,
                current,
                peak,
                predicted,
                ..
            }) = self.tasks.get_mut(id)
            else {
                continue;
            };
            let age = now.saturating_sub(*started);
            *current = mem;
            *peak = (*peak).max(mem);
            *predicted = (*predicted).max(*peak);
            let peak = *peak;
            self.largest_seen = self.largest_seen.max(peak);
            let aux = &mut self.aux[id];
            if aux
                .climb
                .last()
                .is_none_or(|&(_, p)| peak > p.scale(1.0 + CLIMB_STEP))
            {
                aux.climb.push((age, peak));
            }
            if peak > aux.settle_ref.scale(1.0 + SETTLE_GROWTH) {
                aux.settle_ref = peak;
                aux.grown_at = now;
            }
        }
        self.learn_provisionally(now);
        self.check_caps(now);
        self.check_brake(now, sample.available);
        self.check_suspend(now);
        self.check_psi();
    }

    /// Feeds the end of a task's process (after the supervisor reaped it).
    pub fn handle_exit(&mut self, now: Duration, task: TaskId, exit: &Exit) {
        let Some(TaskState::Running {
            attempt,
            started,
            current,
            peak,
            brakes,
            stopping,
            ..
        }) = self.tasks.get(task).cloned()
        else {
            return;
        };
        let peak = peak.max(exit.peak);
        self.largest_seen = self.largest_seen.max(peak);
        if let Some(a) = self.available.as_mut() {
            *a = a.saturating_add(current);
        }
        let next = attempt + 1;
        let (class, requeued, reason) = match stopping.map(|s| s.0) {
            Some(StopReason::Brake) => {
                let why = format!("braked at {peak}: {}", self.aux[task].brake_why);
                self.brake_verdict(task, ExitClass::Braked, next, brakes, peak, why)
            }
            Some(StopReason::OverCap) => {
                let cap = self.config.task_cap.unwrap_or_default();
                let reason = format!("used {peak}, over the per-task cap {cap} (--task-mem)");
                self.stopped_verdict(now, task, ExitClass::OverCap, next, brakes, reason)
            }
            Some(StopReason::Timeout) => {
                let t = self.config.timeout.unwrap_or_default();
                let reason = format!(
                    "ran longer than the {} timeout (--timeout)",
                    crate::units::format_duration(t)
                );
                self.stopped_verdict(now, task, ExitClass::TimedOut, next, brakes, reason)
            }
            Some(StopReason::MaxAge) => {
                let age = crate::units::format_duration(self.restarts.max_age.unwrap_or_default());
                let reason = format!("older than {age} (--max-age)");
                self.stopped_verdict(now, task, ExitClass::MaxAge, next, brakes, reason)
            }
            Some(StopReason::Interrupt) => {
                self.fail(task, ExitClass::Interrupted, "interrupted".to_string())
            }
            None if exit.code == Some(0) => {
                // Paused time is not the task's: learn what it takes to run.
                let duration = now
                    .saturating_sub(started)
                    .saturating_sub(self.paused_for(task, now));
                let near = peak.scale(NEAR_PEAK);
                let time_to_peak = self.aux[task]
                    .climb
                    .iter()
                    .find(|&&(_, p)| p >= near)
                    .map_or(duration, |&(age, _)| age);
                let obs = Observation {
                    peak,
                    duration: Some(duration),
                    time_to_peak: Some(time_to_peak),
                };
                let features = self.specs[task].features.clone();
                self.predictor.observe(&features, obs);
                self.set_state(task, TaskState::Done { peak, duration });
                self.note_learned();
                self.refresh_running_predictions();
                (ExitClass::Done, false, "done".to_string())
            }
            None if exit.oom_killed => {
                let why = format!("killed by the kernel's OOM killer at {peak}");
                self.brake_verdict(task, ExitClass::OomKilled, next, brakes, peak, why)
            }
            None if exit.shm_full => self.retry_or_fail(
                task,
                ExitClass::ShmBus,
                next,
                brakes,
                "bus error (SIGBUS) with /dev/shm full: shared memory ran out \
                 (hint: free /dev/shm or lower -j)"
                    .to_string(),
            ),
            None => {
                let (class, reason) = match (exit.signal, exit.code) {
                    (Some(sig), _) => (ExitClass::Signaled, format!("killed by signal {sig}")),
                    (None, Some(code)) => (ExitClass::Failed, format!("exit code {code}")),
                    (None, None) => (ExitClass::Failed, "ended without an exit status".into()),
                };
                self.retry_or_fail(task, class, next, brakes, reason)
            }
        };
        self.actions.push_back(Action::Finished {
            task,
            attempt,
            class,
            requeued,
            reason,
            peak,
        });
    }

    /// Stop admitting and stop every running task (Ctrl-C, SIGTERM).
    pub fn interrupt(&mut self, now: Duration) {
        self.interrupted = true;
        let ids: Vec<TaskId> = self.running_ids().collect();
        for id in ids {
            if self.stopping(id).is_none() {
                self.stop(now, id, StopReason::Interrupt);
            }
        }
    }

    /// The next thing to do, if any. Call until it returns `None`.
    pub fn poll_action(&mut self, now: Duration) -> Option<Action> {
        if self.actions.is_empty() {
            self.decide(now);
        }
        self.actions.pop_front()
    }

    /// When the policy next wants a sample or a call, even if nothing happens.
    pub fn poll_timeout(&self, now: Duration) -> Option<Duration> {
        if !self.actions.is_empty() {
            return Some(now);
        }
        let mut next: Option<Duration> = None;
        let mut want = |t: Duration| next = Some(next.map_or(t, |n: Duration| n.min(t)));
        // Coldness is the same for every task (nothing learned, no estimate): ask the head.
        let cold_waiting =
            !self.interrupted && self.queued.first().is_some_and(|&id| self.is_cold(id));
        for id in self.running_ids() {
            let TaskState::Running {
                started, stopping, ..
            } = &self.tasks[id]
            else {
                continue;
            };
            match stopping {
                Some((_, at)) if !self.aux[id].killed => want(*at + self.config.grace),
                Some(_) => {}
                None => {
                    if let Some(t) = self.config.timeout.filter(|_| !self.is_paused(id)) {
                        want(*started + self.paused_for(id, now) + t);
                    }
                    if let Some(a) = self.restarts.max_age {
                        want(*started + a);
                    }
                    let settles = self.aux[id].grown_at + SETTLE_WINDOW;
                    // Once settled, only a sample or an exit can change the verdict.
                    if cold_waiting && self.aux[id].cold && settles > now {
                        want(settles);
                    }
                }
            }
        }
        next
    }

    /// Returns true if and only if every task is done or failed (or, after an interrupt,
    /// nothing is running any more).
    pub fn is_finished(&self) -> bool {
        if self.interrupted {
            return self.running_ids().next().is_none();
        }
        self.queued.is_empty() && self.running.is_empty()
    }

    /// The task's current state.
    pub fn state(&self, task: TaskId) -> &TaskState {
        &self.tasks[task]
    }

    /// The settings the policy was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The peak the policy would predict for a task now.
    pub fn predicted(&self, task: TaskId) -> Bytes {
        match &self.tasks[task] {
            TaskState::Running { predicted, .. } => *predicted,
            TaskState::Done { peak, .. } => *peak,
            _ => self
                .model_prediction(task)
                .unwrap_or_else(|| self.cold_guess(task)),
        }
    }

    /// What has been learned about peaks so far.
    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    /// The room admission would offer a task now (see the module doc); `None` before the
    /// first sample. Negative when running tasks' reservations already exceed the headroom.
    pub fn room(&self) -> Option<i128> {
        // min(available − reserve, budget − Σ current) − Σ (predicted − current)⁺ is the
        // limit less what every running task holds or has reserved.
        let held: i128 = self.running_ids().map(|id| self.held_at_peak(id)).sum();
        Some(self.limit()? - held)
    }

    /// When a running task is expected to end (start plus its predicted duration), while
    /// that is still ahead, its peak is known and it keeps within it; `None` otherwise.
    pub fn expected_end(&self, task: TaskId, now: Duration) -> Option<Duration> {
        let TaskState::Running {
            started, stopping, ..
        } = &self.tasks[task]
        else {
            return None;
        };
        // A task climbing past its prediction proves the model wrong about it; a paused one
        // ends only after it runs again.
        if stopping.is_some()
            || self.aux[task].cold
            || self.is_paused(task)
            || self.runaway_rate(task, now).is_some()
        {
            return None;
        }
        let started = *started + self.paused_for(task, now);
        let end = started + self.predictor.duration(&self.specs[task].features)?;
        (end > now).then_some(end)
    }

    /// The memory running tasks may hold together from now on: the headroom above the
    /// reserve plus what they hold, and never more than the budget.
    fn limit(&self) -> Option<i128> {
        let available = i128::from(self.available?.get());
        let held: i128 = self
            .running_ids()
            .map(|id| match &self.tasks[id] {
                TaskState::Running { current, .. } => i128::from(current.get()),
                _ => 0,
            })
            .sum();
        let host = available - i128::from(self.config.reserve.get()) + held;
        Some(host.min(i128::from(self.config.budget.get())))
    }

    /// What a running task holds or has reserved: the larger of its current memory and its
    /// predicted peak.
    fn held_at_peak(&self, id: TaskId) -> i128 {
        match &self.tasks[id] {
            TaskState::Running {
                current, predicted, ..
            } => i128::from((*predicted).max(*current).get()),
            _ => 0,
        }
    }

    /// Like [`Policy::room`], but counting only running tasks with no expected end: an
    /// upper bound on what admission can ever offer until something changes.
    fn room_ahead(&self, now: Duration) -> Option<i128> {
        let staying: i128 = self
            .running_ids()
            .filter(|&id| self.expected_end(id, now).is_none())
            .map(|id| self.held_at_peak(id))
            .sum();
        Some(self.limit()? - staying)
    }

    /// How soon a task may reach its peak at the earliest; `None` for a cold-started one.
    fn time_to_peak(&self, id: TaskId, cold: bool) -> Option<Duration> {
        match cold {
            true => None,
            false => self.predictor.time_to_peak(&self.specs[id].features),
        }
    }

    /// A running task's expected memory from now on (see [`project`]).
    fn curve(&self, now: Duration, id: TaskId) -> Option<Curve> {
        let TaskState::Running {
            started,
            current,
            predicted,
            ..
        } = &self.tasks[id]
        else {
            return None;
        };
        let secs_from_now = |t: Duration| t.saturating_sub(now).as_secs_f64();
        if let Some(rate) = self.runaway_rate(id, now) {
            // Past its prediction and still climbing: the model is wrong about this one,
            // its expected end included. Assume it climbs as fast for RUNAWAY_HORIZON and
            // holds what it gets.
            let horizon = RUNAWAY_HORIZON.as_secs_f64();
            return Some(Curve {
                now: current.get() as f64,
                peak: current.get() as f64 + rate * horizon,
                ramp: horizon,
                end: None,
            });
        }
        let ramp = self.time_to_peak(id, self.aux[id].cold);
        // A paused task reserves its whole peak: it climbs again as soon as it is resumed.
        let started = *started + self.paused_for(id, now);
        let ramp = ramp.filter(|_| !self.is_paused(id));
        Some(Curve {
            now: current.get() as f64,
            peak: predicted.get() as f64,
            ramp: ramp.map_or(0.0, |r| secs_from_now(started + r)),
            end: self.expected_end(id, now).map(secs_from_now),
        })
    }

    /// How fast (bytes/s) a running task climbs past what the model predicted for it, over
    /// the last [`SETTLE_WINDOW`]; `None` while it stays within its prediction or is flat.
    fn runaway_rate(&self, id: TaskId, now: Duration) -> Option<f64> {
        let TaskState::Running {
            started, current, ..
        } = &self.tasks[id]
        else {
            return None;
        };
        let model = self.model_prediction(id)?;
        if *current <= model {
            return None;
        }
        let age = now.saturating_sub(*started);
        let climb = &self.aux[id].climb;
        let &(last_age, last) = climb.last()?;
        if age.saturating_sub(last_age) > SETTLE_WINDOW {
            return None; // it stopped climbing
        }
        let since = age.saturating_sub(SETTLE_WINDOW);
        let &(from_age, from) = climb.iter().find(|c| c.0 >= since)?;
        let span = last_age.saturating_sub(from_age).as_secs_f64();
        let rate = last.get().saturating_sub(from.get()) as f64 / span;
        (span > 0.0 && rate > 0.0).then_some(rate)
    }

    /// Returns true if and only if the running tasks' projected memory plus this task's,
    /// started now, stays within [`Policy::limit`] from now on (module doc, "Admission").
    fn fits_ahead(&self, now: Duration, id: TaskId, predicted: Bytes, cold: bool) -> bool {
        let Some(limit) = self.limit() else {
            return false;
        };
        let ramp = self.time_to_peak(id, cold);
        let mut curves: Vec<Curve> = self
            .running_ids()
            .filter_map(|r| self.curve(now, r))
            .collect();
        curves.push(Curve {
            now: 0.0,
            peak: predicted.get() as f64,
            ramp: ramp.map_or(0.0, |r| r.as_secs_f64()),
            end: None,
        });
        project::highest(&curves) <= limit as f64
    }

    // ---- decisions -------------------------------------------------------------------

    /// Emits whatever is due now: kills after grace, timeouts, fails and admissions.
    fn decide(&mut self, now: Duration) {
        let hard = self.available.is_some_and(|a| a < self.config.hard_level);
        let ids: Vec<TaskId> = self.running_ids().collect();
        for id in ids {
            match self.stopping(id) {
                Some((reason, at)) if !self.aux[id].killed => {
                    if hard || self.grows_after_term(id, reason) || now >= at + self.config.grace {
                        self.aux[id].killed = true;
                        self.actions.push_back(Action::Kill { task: id, reason });
                    }
                }
                Some(_) => {}
                None => {
                    let started = match &self.tasks[id] {
                        TaskState::Running { started, .. } => *started,
                        _ => continue,
                    };
                    // Paused time does not count toward --timeout.
                    let started = started + self.paused_for(id, now);
                    if self.is_paused(id) {
                        continue;
                    }
                    if self.config.timeout.is_some_and(|t| now >= started + t) {
                        self.stop(now, id, StopReason::Timeout);
                    } else if self.restarts.max_age.is_some_and(|a| now >= started + a) {
                        self.stop(now, id, StopReason::MaxAge);
                    }
                }
            }
        }
        if self.interrupted {
            return;
        }
        self.fail_impossible();
        self.admit(now);
    }

    /// Fails queued tasks whose measured lower bound exceeds the budget: they can never fit.
    fn fail_impossible(&mut self) {
        for id in std::mem::take(&mut self.recheck) {
            let TaskState::Queued { brakes, .. } = self.tasks[id] else {
                continue;
            };
            let Some(lb) = self.aux[id].lower_bound else {
                continue;
            };
            if lb > self.config.budget {
                let class = if brakes > 0 {
                    ExitClass::Braked
                } else {
                    ExitClass::Failed
                };
                let reason = format!(
                    "needs at least {lb}, more than the {} budget (hint: raise --mem)",
                    self.config.budget
                );
                let failed = TaskState::Failed {
                    class,
                    reason: reason.clone(),
                };
                self.set_state(id, failed);
                self.actions.push_back(Action::Fail { task: id, reason });
            }
        }
    }

    /// Starts queued tasks while they fit (module doc, "Admission").
    fn admit(&mut self, now: Duration) {
        self.short = None;
        if self.queued.is_empty() || self.running.len() >= self.config.max_jobs.max(1) {
            return;
        }
        if self.paused == Some(Pause::Psi) || self.available.is_none() {
            self.short = self.available.map(|_| eta::Short::Psi);
            return;
        }
        loop {
            let running: Vec<TaskId> = self.running_ids().collect();
            if running.len() >= self.config.max_jobs.max(1) {
                self.short = None;
                return;
            }
            if running
                .iter()
                .any(|&id| self.must_run_alone(self.running_brakes(id)))
            {
                self.short = Some(eta::Short::Alone);
                return; // a task that must run alone is running
            }
            if !running.is_empty() && self.shm_room_for.is_some_and(|n| self.shm_started >= n) {
                return; // another task's shared memory would not fit in /dev/shm
            }
            let Some(room) = self.room() else { return };
            // The most any newcomer could get once every expected end has passed; a cheap
            // first test before projecting curves.
            let room_ahead = self.room_ahead(now).unwrap_or(room);
            let cold_settled = running
                .iter()
                .all(|&id| !self.aux[id].cold || self.is_settled(id, now));
            // With room for -j tasks at any plausible size, unknown tasks start together.
            let plentiful = self.plentiful();
            // Backfill looks this deep into the queue at most: with a full machine, every
            // tick would otherwise predict every queued task. Longest expected first.
            let queued: Vec<TaskId> = self.candidates();
            let Some(&head) = queued.first() else {
                self.set_stalled(false);
                return;
            };
            if self.head.is_none_or(|(h, _)| h != head) {
                self.head = Some((head, 0));
            }
            let mut head_blocked = false;
            let mut chosen = None;
            for &id in &queued {
                let lower = self.aux[id].lower_bound.unwrap_or_default();
                let alone = self.must_run_alone(self.queued_brakes(id));
                let model = self.model_prediction(id);
                let (predicted, cold) = match model {
                    Some(p) => (p, false),
                    None if plentiful => (self.plausible_cold(id), true),
                    None => (self.cold_guess(id), true),
                };
                // Unknown tasks wait beside cold-started ones that still grow, unless memory
                // is plentiful.
                let cold_blocked = cold && !cold_settled && !plentiful;
                let fits = if running.is_empty() {
                    i128::from(lower.get()) <= room
                } else if alone || cold_blocked || i128::from(predicted.get()) > room_ahead {
                    false
                } else {
                    self.fits_ahead(now, id, predicted, cold)
                };
                if fits {
                    chosen = Some((id, predicted, cold));
                    break;
                }
                if id == head {
                    head_blocked = true;
                    let overtaken = self.head.map_or(0, |h| h.1);
                    if !running.is_empty()
                        && !cold_blocked
                        && overtaken as usize >= self.config.max_jobs.max(1)
                    {
                        break; // stop backfilling: let the head have the room as it frees
                    }
                }
            }
            let Some((id, predicted, cold)) = chosen else {
                self.short = Some(self.why_short(now, head, room));
                self.set_stalled(running.is_empty());
                return;
            };
            if head_blocked && id != head {
                if let Some(h) = self.head.as_mut() {
                    h.1 += 1;
                }
            }
            self.set_stalled(false);
            self.shm_started += 1;
            self.start(now, id, predicted, cold);
        }
    }

    /// Moves a queued task to running and emits its Start.
    fn start(&mut self, now: Duration, id: TaskId, predicted: Bytes, cold: bool) {
        let TaskState::Queued {
            attempt, brakes, ..
        } = self.tasks[id]
        else {
            return;
        };
        let rank = self
            .running_ids()
            .map(|r| self.aux[r].rank + 1)
            .max()
            .unwrap_or(0);
        let oom_score_adj = (100 + 50 * rank.min(18) as i32).min(1000);
        self.next_seq += 1;
        let aux = &mut self.aux[id];
        aux.seq = self.next_seq;
        aux.rank = rank;
        aux.killed = false;
        aux.cold = cold;
        aux.settle_ref = Bytes::ZERO;
        aux.grown_at = now;
        aux.climb.clear();
        aux.braked_alone = false;
        aux.paused_since = None;
        aux.paused_total = Duration::ZERO;
        self.set_state(
            id,
            TaskState::Running {
                attempt,
                started: now,
                current: Bytes::ZERO,
                peak: Bytes::ZERO,
                predicted,
                brakes,
                stopping: None,
            },
        );
        self.actions.push_back(Action::Start {
            task: id,
            attempt,
            predicted,
            oom_score_adj,
        });
    }

    /// Sends TERM to a running task and remembers why and when.
    fn stop(&mut self, now: Duration, id: TaskId, reason: StopReason) {
        if let TaskState::Running {
            stopping, current, ..
        } = &mut self.tasks[id]
        {
            *stopping = Some((reason, now));
            self.aux[id].term_current = *current;
            self.actions.push_back(Action::Term { task: id, reason });
            // A stopped tree acts on TERM only once it runs again.
            self.resume(now, id);
        }
    }

    /// Returns true if and only if a task stopped for memory keeps growing after TERM: it is
    /// not shutting down, and the grace would only let it take more.
    fn grows_after_term(&self, id: TaskId, reason: StopReason) -> bool {
        let memory = matches!(reason, StopReason::Brake | StopReason::OverCap);
        let grew = match &self.tasks[id] {
            TaskState::Running { current, .. } => {
                current.get() > self.aux[id].term_current.get() + STILL_GROWING.get()
            }
            _ => false,
        };
        memory && grew
    }

    /// Stops tasks whose tree exceeds `--task-mem`.
    fn check_caps(&mut self, now: Duration) {
        let Some(cap) = self.config.task_cap else {
            return;
        };
        let over: Vec<TaskId> = self
            .running_ids()
            .filter(|&id| {
                self.stopping(id).is_none()
                    && matches!(self.tasks[id], TaskState::Running { current, .. } if current > cap)
            })
            .collect();
        for id in over {
            self.stop(now, id, StopReason::OverCap);
        }
    }

    /// Fires the brake on the newest task when memory is short, once per response.
    fn check_brake(&mut self, now: Duration, available: Bytes) {
        let running: Vec<TaskId> = self.running_ids().collect();
        let held: Bytes = running
            .iter()
            .map(|&id| match self.tasks[id] {
                TaskState::Running { current, .. } => current,
                _ => Bytes::ZERO,
            })
            .sum();
        let why = if available < self.config.brake_level {
            format!(
                "available {available} below the brake level {}",
                self.config.brake_level
            )
        } else if held > self.config.budget {
            format!("tasks hold {held}, over the {} budget", self.config.budget)
        } else {
            return;
        };
        // Wait for the previous victim to be reaped before judging memory again.
        if running
            .iter()
            .any(|&id| matches!(self.stopping(id), Some((StopReason::Brake, _))))
        {
            return;
        }
        let Some(victim) = running
            .iter()
            .copied()
            .filter(|&id| self.stopping(id).is_none())
            .max_by_key(|&id| self.aux[id].seq)
        else {
            return;
        };
        self.aux[victim].braked_alone = running.len() == 1;
        self.aux[victim].brake_why = why.clone();
        self.stop(now, victim, StopReason::Brake);
        self.actions
            .push_back(Action::Note(Note::Brake { task: victim, why }));
    }

    /// Pauses admission while PSI `full avg10` is at or above the threshold.
    fn check_psi(&mut self) {
        let limit = self.config.psi_full_pause;
        let high = limit > 0.0 && self.psi.is_some_and(|p| p >= limit);
        match (high, self.paused) {
            (true, Some(Pause::Psi)) | (false, None) | (false, Some(Pause::Stalled)) => {}
            (true, _) => {
                self.paused = Some(Pause::Psi);
                let why = format!(
                    "memory pressure: PSI full avg10 {:.1}% at or above {limit}%",
                    self.psi.unwrap_or_default()
                );
                self.actions.push_back(Action::Note(Note::Paused { why }));
            }
            (false, Some(Pause::Psi)) => {
                self.paused = None;
                self.actions.push_back(Action::Note(Note::Resumed));
            }
        }
    }

    /// Announces (once) that nothing can start although nothing runs, and when that ends.
    fn set_stalled(&mut self, stalled: bool) {
        match (stalled, self.paused) {
            (true, None) => {
                self.paused = Some(Pause::Stalled);
                let why = format!(
                    "waiting for memory: nothing fits in {} available (reserve {})",
                    self.available.unwrap_or_default(),
                    self.config.reserve
                );
                self.actions.push_back(Action::Note(Note::Paused { why }));
            }
            (false, Some(Pause::Stalled)) => {
                self.paused = None;
                self.actions.push_back(Action::Note(Note::Resumed));
            }
            _ => {}
        }
    }

    // ---- verdicts ----------------------------------------------------------------------

    /// Requeues a braked or OOM-killed task with its peak as lower bound, or fails it when it
    /// was stopped while running alone after `max_brakes`.
    fn brake_verdict(
        &mut self,
        id: TaskId,
        class: ExitClass,
        next: u32,
        brakes: u32,
        peak: Bytes,
        why: String,
    ) -> (ExitClass, bool, String) {
        let brakes = brakes + 1;
        let lb = self.aux[id].lower_bound.unwrap_or_default().max(peak);
        self.aux[id].lower_bound = Some(lb);
        let alone = self.aux[id].braked_alone
            || (class == ExitClass::OomKilled && self.running_ids().all(|r| r == id));
        if alone && brakes >= self.config.max_brakes && !self.interrupted {
            let reason =
                format!("needs more than {peak}, which does not fit even running alone ({why})");
            return self.fail(id, class, reason);
        }
        if self.interrupted {
            return self.fail(id, ExitClass::Interrupted, format!("interrupted; {why}"));
        }
        self.requeue(id, next, brakes);
        (class, true, why)
    }

    /// Puts a task back in the queue for another attempt.
    fn requeue(&mut self, id: TaskId, attempt: u32, brakes: u32) {
        let queued = TaskState::Queued {
            attempt,
            lower_bound: self.aux[id].lower_bound,
            brakes,
        };
        self.set_state(id, queued);
        self.recheck.push(id);
    }

    /// The one place a task changes state: keeps the queued and running sets true.
    fn set_state(&mut self, id: TaskId, state: TaskState) {
        self.queued.remove(&id);
        self.running.remove(&id);
        match state {
            TaskState::Queued { .. } => self.queued.insert(id),
            TaskState::Running { .. } => self.running.insert(id),
            _ => false,
        };
        self.tasks[id] = state;
    }

    /// Marks a task failed for good.
    fn fail(&mut self, id: TaskId, class: ExitClass, reason: String) -> (ExitClass, bool, String) {
        let failed = TaskState::Failed {
            class,
            reason: reason.clone(),
        };
        self.set_state(id, failed);
        (class, false, reason)
    }

    // ---- prediction --------------------------------------------------------------------

    /// The model's prediction for a task, never below its lower bound; `None` when cold.
    fn model_prediction(&self, id: TaskId) -> Option<Bytes> {
        let lb = self.aux[id].lower_bound.unwrap_or_default();
        let model = match &self.provisional {
            Some((p, _)) if self.predictor.observed() < PROVISIONAL_UNTIL => p,
            _ => &self.predictor,
        };
        model.predict(&self.specs[id].features).map(|p| p.max(lb))
    }

    /// Early in a sweep, learns the peaks of running tasks that have settled as if they had
    /// finished: a task that loads its data in a minute and then computes for an hour tells
    /// what it needs long before it ends. What finishes replaces these guesses.
    fn learn_provisionally(&mut self, now: Duration) {
        if self.predictor.observed() >= PROVISIONAL_UNTIL {
            self.provisional = None;
            return;
        }
        let settled: Vec<(TaskId, Bytes)> = self
            .running_ids()
            .filter(|&id| self.stopping(id).is_none() && self.is_settled(id, now))
            .filter_map(|id| match &self.tasks[id] {
                TaskState::Running { peak, .. } if *peak > Bytes::ZERO => Some((id, *peak)),
                _ => None,
            })
            .collect();
        let held = self.provisional.as_ref().map(|p| p.1.as_slice());
        if held.unwrap_or_default() == settled.as_slice() {
            return;
        }
        self.provisional = (!settled.is_empty()).then(|| {
            let mut model = self.predictor.clone();
            for &(id, peak) in &settled {
                let obs = Observation {
                    peak,
                    duration: None,
                    time_to_peak: None,
                };
                model.observe(&self.specs[id].features, obs);
            }
            (model, settled)
        });
        self.refresh_running_predictions();
    }

    /// The cold-start guess: the largest peak seen in this run plus the margin.
    fn cold_guess(&self, id: TaskId) -> Bytes {
        let lb = self.aux[id].lower_bound.unwrap_or_default();
        self.largest_seen.scale(1.0 + predict::MARGIN).max(lb)
    }

    /// Returns true if and only if nothing about the task's peak is known but its bound.
    fn is_cold(&self, id: TaskId) -> bool {
        self.model_prediction(id).is_none()
    }

    /// Returns true if and only if the task's peak has not grown noticeably for a while.
    fn is_settled(&self, id: TaskId, now: Duration) -> bool {
        // A paused task does not grow, which says nothing about its peak.
        !self.is_paused(id) && now.saturating_sub(self.aux[id].grown_at) >= SETTLE_WINDOW
    }

    /// Re-predicts running tasks after the model learned something.
    fn refresh_running_predictions(&mut self) {
        let ids: Vec<TaskId> = self.running_ids().collect();
        for id in ids {
            let Some(p) = self.model_prediction(id) else {
                continue;
            };
            if let TaskState::Running {
                peak, predicted, ..
            } = &mut self.tasks[id]
            {
                *predicted = p.max(*peak);
            }
            self.aux[id].cold = false;
        }
    }

    /// Emits LearnedPeak when the typical peak moved by more than 10% and 8 MiB.
    fn note_learned(&mut self) {
        if self.predictor.observed() == 0 {
            return;
        }
        let Some(t) = self.predictor.typical() else {
            return;
        };
        // Relative and absolute: 1.4 → 1.6 MiB is not news worth a line.
        let moved = self.noted_typical.is_none_or(|old| {
            let change = (t.get() as f64 - old.get() as f64).abs();
            change / old.get().max(1) as f64 > LEARNED_NOTE_CHANGE
                && change >= LEARNED_NOTE_MIN as f64
        }) && t.get() >= LEARNED_NOTE_MIN;
        if moved {
            self.noted_typical = Some(t);
            self.actions
                .push_back(Action::Note(Note::LearnedPeak { peak: t }));
        }
    }

    // ---- small accessors ---------------------------------------------------------------

    fn running_ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.running.iter().copied()
    }

    fn stopping(&self, id: TaskId) -> Option<(StopReason, Duration)> {
        match &self.tasks[id] {
            TaskState::Running { stopping, .. } => *stopping,
            _ => None,
        }
    }

    /// Returns true if and only if a task braked this often must run alone.
    fn must_run_alone(&self, brakes: u32) -> bool {
        brakes > 0 && brakes >= self.config.max_brakes
    }

    fn running_brakes(&self, id: TaskId) -> u32 {
        match &self.tasks[id] {
            TaskState::Running { brakes, .. } => *brakes,
            _ => 0,
        }
    }

    fn queued_brakes(&self, id: TaskId) -> u32 {
        match &self.tasks[id] {
            TaskState::Queued { brakes, .. } => *brakes,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests;
