//! The admission/brake policy: a pure state machine, driven like quinn-proto.
//!
//! Inputs are samples (memory of the host and of each running task's tree) and exits, each
//! stamped with `now` (time since the run started, supplied by the caller). Outputs are
//! [`Action`]s polled with [`Policy::poll_action`], and [`Policy::poll_timeout`] says when
//! the policy next wants to be asked even if nothing happens. No clock, no I/O, no processes:
//! [`sim`] drives the very same code with scripted memory traces in simulated time.
//!
//! The machine is split by concern, each file read in one sitting:
//! - `types.rs`: the vocabulary — settings, task specs, samples, states, actions, notes;
//! - `admission.rs`: when a queued task may start (room, curves, backfill, stalls);
//! - `brake.rs`: stopping tasks for memory, caps and time (TERM, then KILL);
//! - [`suspend`]: pausing the newest growing task instead of braking it;
//! - [`park`]: stopping asleep tasks before they jump, where their jumps do not fit;
//! - `verdict.rs`: how an ended attempt is classified, requeued or failed;
//! - `learn.rs`: prediction glue — the model, cold start, provisional learning;
//! - [`predict`], [`project`], [`order`], [`levels`], [`eta`], [`recycle`], [`sim`]: the
//!   models and tools those use.
//!
//! # Suspend
//! See [`suspend`]: when the running tasks' projected memory exceeds the limit and memory
//! actually approaches it, the newest task still growing is paused (SIGSTOP of its tree),
//! and resumed, oldest first, when the projection with it fits again; paused time counts
//! neither toward `--timeout` nor toward learned durations. The oldest running task is never
//! paused, and if every running task is paused the oldest is resumed. A paused task whose
//! memory the others need is braked before the brake level.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::units::Bytes;

mod admission;
mod brake;
pub mod eta;
mod learn;
pub mod levels;
pub mod lookahead;
pub mod order;
pub mod pace;
pub mod park;
pub mod predict;
pub mod project;
pub mod reason;
pub mod recycle;
pub mod sim;
pub mod suspend;
mod types;
mod verdict;

pub use reason::{BrakeWhy, PauseCause, PauseWhy, Projection, Reason};
use types::climb_to;
pub use types::{quiet_start, quiet_start_of_samples, QUIET_GAP};
pub use types::{
    Action, AttemptFacts, BrakeCause, Config, Ending, Exit, ExitClass, Note, Sample, StopReason,
    Stopping, TaskId, TaskSpec, TaskState, SIGBUS, SIGKILL, SIGTERM,
};

use predict::Predictor;

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

/// What the policy knows about a task across its attempts (the current attempt's facts
/// live in [`TaskState::Running`]).
#[derive(Debug, Clone, Default)]
struct Aux {
    /// Ordinary failures so far (journal's prior attempts included), against `--retries`.
    failures: u32,
    /// Highest lower bound known: journal, brakes, OOM kills.
    lower_bound: Option<Bytes>,
}

/// The facts read for a task that is not running.
static IDLE: AttemptFacts = AttemptFacts::IDLE;

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
    /// How many observations the model held when [`lookahead`] last ordered the queue, and
    /// the head of that order.
    plan: Option<(usize, Vec<TaskId>)>,
    /// Of the finished tasks with a quiet start, how many slept in it ([`park`]).
    sleepers: park::Sleepers,
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
                brakes: 0,
            })
            .collect();
        let aux = specs
            .iter()
            .map(|s| Aux {
                failures: s.prior_attempts,
                lower_bound: s.lower_bound,
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
            plan: None,
            sleepers: park::Sleepers::default(),
        }
    }

    /// Feeds a memory sample.
    pub fn handle_sample(&mut self, now: Duration, sample: &Sample) {
        self.available = Some(sample.available);
        self.psi = sample.psi_full_avg10;
        self.shm_room_for = sample.shm_room_for;
        self.shm_free = sample.shm_free;
        self.shm_started = 0;
        self.note_cpu(now, &sample.cpu);
        for &(id, mem) in &sample.tasks {
            // A task's climb is timed on the clock it runs on: paused time is not its own.
            let age = self.elapsed_running(id, now);
            let Some(TaskState::Running {
                current,
                peak,
                predicted,
                facts,
                ..
            }) = self.tasks.get_mut(id)
            else {
                continue;
            };
            *current = mem;
            *peak = (*peak).max(mem);
            *predicted = (*predicted).max(*peak);
            let peak = *peak;
            self.largest_seen = self.largest_seen.max(peak);
            climb_to(&mut facts.climb, age, peak);
            if peak > facts.settle_ref.scale(1.0 + SETTLE_GROWTH) {
                facts.settle_ref = peak;
                facts.grown_at = now;
            }
        }
        self.learn_provisionally(now);
        self.check_caps(now);
        self.check_brake(now, sample.available);
        self.check_suspend(now);
        self.check_parking(now);
        self.check_psi();
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
                started,
                stopping,
                facts,
                ..
            } = &self.tasks[id]
            else {
                continue;
            };
            match stopping {
                Some(s) if !s.killed => want(s.at + self.config.grace),
                Some(_) => {}
                None => {
                    if let Some(t) = self.config.timeout.filter(|_| !self.is_paused(id)) {
                        want(*started + self.paused_for(id, now) + t);
                    }
                    if let Some(a) = self.restarts.max_age {
                        want(*started + a);
                    }
                    let settles = facts.grown_at + SETTLE_WINDOW;
                    // Once settled, only a sample or an exit can change the verdict.
                    if cold_waiting && facts.cold && settles > now {
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

    /// The least a task is known to need: from the journal, or its peak when braked or
    /// OOM-killed; `None` while nothing is known.
    pub fn lower_bound(&self, task: TaskId) -> Option<Bytes> {
        self.aux[task].lower_bound
    }

    /// What has been learned about peaks so far.
    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    // ---- decisions -------------------------------------------------------------------

    /// Emits whatever is due now: kills after grace, timeouts, fails and admissions.
    fn decide(&mut self, now: Duration) {
        let hard = self.available.is_some_and(|a| a < self.config.hard_level);
        let ids: Vec<TaskId> = self.running_ids().collect();
        for id in ids {
            match self.stopping(id) {
                Some((reason, at)) if !self.killed(id) => {
                    if hard || self.grows_after_term(id, reason) || now >= at + self.config.grace {
                        if let TaskState::Running {
                            stopping: Some(s), ..
                        } = &mut self.tasks[id]
                        {
                            s.killed = true;
                        }
                        self.actions.push_back(Action::Kill { task: id, reason });
                    }
                }
                Some(_) => {}
                None => {
                    let Some(started) = self.started_at(id) else {
                        continue;
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

    // ---- small accessors ---------------------------------------------------------------

    fn running_ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.running.iter().copied()
    }

    fn stopping(&self, id: TaskId) -> Option<(StopReason, Duration)> {
        match &self.tasks[id] {
            TaskState::Running { stopping, .. } => stopping.as_ref().map(|s| (s.reason, s.at)),
            _ => None,
        }
    }

    /// Returns true if and only if KILL was sent to the task's current attempt.
    fn killed(&self, id: TaskId) -> bool {
        matches!(&self.tasks[id], TaskState::Running { stopping: Some(s), .. } if s.killed)
    }

    /// The facts of a running task's current attempt; [`AttemptFacts::IDLE`] for any other.
    fn facts(&self, id: TaskId) -> &AttemptFacts {
        match &self.tasks[id] {
            TaskState::Running { facts, .. } => facts,
            _ => &IDLE,
        }
    }

    /// The facts of a running task's current attempt; `None` for any other task.
    fn facts_mut(&mut self, id: TaskId) -> Option<&mut AttemptFacts> {
        match &mut self.tasks[id] {
            TaskState::Running { facts, .. } => Some(facts),
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
