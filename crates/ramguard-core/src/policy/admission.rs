//! Admission: when a queued task may start, and why it waits when it may not.
//!
//! A queued task is started only while fewer than `max_jobs` run, PSI `full avg10` is below
//! `psi_full_pause`, and, with no time known about any task, its predicted peak fits in
//!
//! ```text
//! min(available − reserve, budget − Σ current) − Σ_running max(0, predicted_i − current_i)
//! ```
//!
//! The last term reserves every running task's *future* growth: tasks start small and grow, which
//! defeats a free-memory check at start time. A task started since the last sample has `current =
//! 0`, so it is reserved in full; memory freed by an exit is credited at once.
//!
//! **Looking ahead.** Once tasks have finished, the model also knows how long a task runs and how
//! soon it reaches its peak (both per task from its features, see [`predict`](super::predict)).
//! Each running task then becomes a curve ([`project`](super::project)): from what it holds now up
//! to its predicted peak by its expected time to peak, held until its expected end, then nothing;
//! the newcomer likewise from zero, with no end. A task is admitted when the highest point of the
//! sum of the curves stays within `min(available − reserve + Σ current, budget)`. This lets a task
//! that needs a long ramp start while a big one is finishing instead of after it. Every estimate
//! errs toward the safe side (durations high, times to peak low, each with two residual deviations
//! and the margin). A task that holds its peak (it stopped growing at [`PEAKED`] of its
//! prediction or more) ends, at the latest, when it reached it plus what tasks run after
//! their peaks, if that is sooner: on the simulated `late` mixes (tasks work 2–8 s at
//! 60–200 MiB, then take their peaks; `bench/mixes-late.json`) the mean went from 2.99× to
//! 2.80× the lower bound (2 CPUs: 3.06× → 2.93×), `idle` 2.41× → 2.31× (2.80× → 2.61×), the
//! 40 others 1.94× → 1.91× (1.94× → 1.93×); brakes over the 56 mixes 46 → 46 (2 CPUs: 58 →
//! 60), the same lowest available. A task that outlives its expected end counts as never ending; one that climbs
//! past its predicted peak is projected to keep climbing at its recent rate for
//! [`RUNAWAY_HORIZON`](super::RUNAWAY_HORIZON), with no end; cold-started tasks have no curve but
//! their peak. Suspend ([`suspend`](super::suspend)) catches a bet that fails, the brake what the
//! model still gets wrong. Measured in simulated time on the benchmark's 36-task sweep
//! (`tests/policy_sim.rs::bench_sweep_*`): 86.6 s with peak reservations alone, 69.8 s looking
//! ahead (leaky variant 112.6 → 78.9 s), 70.7 s with longest-first ordering and suspend (leaky 71.9
//! s), for a lower bound of 40.3 s and 52.8 s for a scheduler that knows every task's exact curve
//! in advance; 0 brakes in each.
//!
//! **Idle tasks.** A running task that has run [`IDLE_AFTER`], does not grow and holds at most
//! [`IDLE_SHARE`] of its predicted peak (one that sleeps, waits on a lock or reads before it
//! allocates) counts at what it holds, and the largest of such tasks' jumps to their peaks is
//! kept free once: any one of them may jump at any moment and fits; a second jumping at the same
//! time is paused as memory nears the limit ([`suspend`](super::suspend)). A newcomer still
//! reserves its whole predicted peak. On the eight simulated `idle` mixes
//! (`bench/mixes-idle.json`: tasks sleep 2–8 s at 3 MiB, then take 0.25–3.2 GiB in 0.1–0.4 s)
//! the mean went from 2.78× to 2.55× the lower bound (2 CPUs: 2.95× → 2.86×; with every task's
//! history, 2.82× → 2.58× and 3.05× → 2.60×); the 40 other mixes never idle and do not change.
//! Where tasks like it stay quiet for [`IDLE_AFTER`] or longer before they climb (their history
//! says so, "Quiet starts" below), a task idles up to [`QUIET_SHARE`] of its predicted peak: the
//! low side of the quiet time learned falls short of many tasks' own, and one still working at
//! its quiet size past it has not climbed yet. At [`IDLE_SHARE`], in the twin of the benchmark's
//! `late` seed 35 (the emulated 4 GiB machine), five small tasks working at 70–180 MiB, a tenth
//! to two fifths of their peaks, counted at 3.4 GiB together, and a 450 MiB task whose own 7.9 s
//! of work would have outlasted all five waited until 24.6 s of a 36.5 s run.
//!
//! **Quiet starts.** Many tasks import, download, or compute on a small sample before they allocate
//! their arrays. The model learns from each finished task how long its memory stood still before
//! its climb to the peak, and what it held meanwhile
//! ([`AttemptFacts::quiet`](super::AttemptFacts::quiet); a resumed sweep reads it off the journal's
//! timelines, [`quiet_start_of_samples`](super::quiet_start_of_samples)). When history says tasks
//! like this one stay quiet for at least [`IDLE_AFTER`] (the low side of that time), at no more
//! than [`QUIET_SHARE`] of the predicted peak, a running task counts as idle during that time, at
//! the most it holds meanwhile. A newcomer is counted the same way from its start, so its jump
//! shares the one kept free, not a second one. Two rules limit how many jumps share it: only one
//! task admitted this way may be younger than [`IDLE_AFTER`], and a newcomer is admitted this way
//! only while fewer than [`QUIET_SHARING`] running tasks count as idle. A second jump at the same
//! time is paused as memory nears the limit, and braked if the first needs what it took. A task
//! that took its peak beside an idle one is not paused for it: a task whose peak the model knows is
//! not projected past it ([`suspend`](super::suspend)). On the eight simulated `late` mixes, the
//! mean went from 2.81× to 2.70× the lower bound (2 CPUs: 2.93× → 2.78×; with every task's history,
//! 2.78× → 2.36× and 2.99× → 2.58×). The `idle` mixes did not change cold (2.31× → 2.33×, 2 CPUs
//! 2.61× → 2.62×), but with history went from 2.43× to 2.13× (2.75× → 2.49×). Brakes went up: cold
//! 32 → 40 (2 CPUs 39 → 48), with history 12 → 15 (17 → 25). The lowest available moved by 4 MiB at
//! most. Without the sharing limit the makespans were lower still, but brakes doubled (with
//! history, `idle` 9 → 41). Pausing each such task before its predicted climb, until its peak
//! fitted, made no brakes on `idle` with history, but was slower than before on `idle` (2.31× →
//! 2.41×): a task stopped at its earliest predicted climb waits out a quiet time it could have
//! used. Where the tasks are seen to *sleep* in their quiet starts, stopping costs nothing,
//! and a newcomer's jump is left to parking instead ([`park`](super::park), "Quiet
//! newcomers").
//!
//! A newcomer admitted in its quiet start jumps no sooner than that quiet start may end, so
//! its own jump must fit only from then on: a task expected to end before then gives its
//! room back first (the other idle tasks' jumps must still fit from now on). Kept free from
//! the start, the jump of a big task made it wait for the big one before it to end, though
//! its own quiet seconds would have covered that one's last: in a real `late` seed 30 run,
//! six tasks of 1.9–3.3 GiB each ran nearly alone, quiet start included (71.9 s, 4.97×
//! the lower bound). On the eight simulated `late` mixes the mean went from 2.46× to 2.34×
//! (2 CPUs 2.69× → 2.63×, the emulated machine 3.26× → 3.05×), on eight untuned ones
//! (seeds 9–13 and 27–29) 2.55× → 2.26× (2.72× → 2.48×, 3.15× → 2.96×), `heavy` 2.35× →
//! 2.29×; no other mix moved by more than 0.02×. The pause rule counts a task in its quiet
//! start as admission does, at the most it holds meanwhile ([`suspend`](super::suspend)):
//! projected along its whole ramp instead, such a newcomer was paused as it faulted in its
//! first 150 MiB.
//!
//! **Jumps left to the pause.** A newcomer with a learned quiet start whose jump does not fit even
//! then may start all the same where tasks work before they climb ([`Policy::jump_left_to_pause`]):
//! what it holds meanwhile must fit beside the running tasks and the largest idle jump, nothing may
//! be paused, and no other task admitted so may still wait to jump (never with `--no-pause`). If
//! its jump does not fit when it comes, the pause stops it as it climbs
//! ([`suspend`](super::suspend)) and resumes it when room returns; it has done its work meanwhile
//! instead of waiting in the queue. (Where tasks sleep, parking does this.) The low side of a
//! learned quiet time is short of many tasks' own (2.4 s learned where the `late` tasks work
//! 2–8 s), so the timed jump above still kept such newcomers waiting. With the idle share above, on
//! the simulated mixes (ideal host | 2 CPUs | the emulated 4 GiB machine of
//! `tests/policy_mixes.rs`): 14 held-out `late`, `heavy` and `idle` seeds (30–36, 30–33, 30–32)
//! went from 2.19 | 2.41 | 2.77× the lower bound to 2.18 | 2.29 | 2.63×, eight untuned `late` seeds
//! from 2.26 | 2.48 | 2.96× to 2.27 | 2.43 | 2.83×, `heavy` seeds 1–8 from 2.29 | 2.43 | 2.70× to
//! 2.24 | 2.37 | 2.55×; every twin together 0.997 | 0.997 | 0.994 of before (geometric mean),
//! brakes 61 | 71 | 65 → 62 | 73 | 70. The idle share alone gave 0.996 | 0.998 | 0.996, this rule
//! alone 1.002 | 1.003 | 0.998. Real runs beside the build before: BENCHMARKS.md.
//!
//! Queue order is task order, or longest expected first once durations are learned per task
//! ([`order`](super::order)). A task that does not fit may be overtaken by a smaller one later in
//! the queue (backfill, looking at most [`BACKFILL_WINDOW`](super::BACKFILL_WINDOW) tasks deep),
//! freely only `max(max_jobs, 1)` times for the same head of the queue: after that, only by a task
//! that does not delay the head ([`Policy::spares_the_head`]): one predicted to end before the
//! running tasks' expected ends leave the head room, or that fits beside the head then (EASY
//! backfilling, as batch schedulers do), so a big task is never starved by a stream of small ones.
//! Where the head's room never comes in the projection (a running task with no expected end),
//! nothing more overtakes it; a task whose duration is not predicted yet, only if it fits beside
//! it. Stopping after `max_jobs`
//! overtakes left a slot empty for 14 s in `tests/policy_sim.rs`
//! (`a_head_that_waits_is_not_delayed_but_not_idled_for_either`: 46 → 40 s) and in a real
//! `kinds` run (2.1 GiB free for 1.5 s, small tasks waiting); the simulated mixes barely
//! changed (their heads are seldom overtaken eight times). When nothing runs, the head needs only its measured lower bound to fit (the model
//! may over-predict; the brake corrects), so a sweep never stalls on a wrong prediction.
//! Predictions above the budget are thereby run alone; only a *measured* lower bound above the
//! budget fails a task without starting.

use std::time::Duration;

use super::project::{self, Curve};
use super::{
    eta, Action, AttemptFacts, ExitClass, Note, Pause, PauseWhy, Policy, Reason, TaskId, TaskState,
    NEAR_PEAK, RUNAWAY_HORIZON, SETTLE_WINDOW,
};
use crate::units::Bytes;

/// A running task idles when it holds at most this share of its predicted peak, has run at
/// least [`IDLE_AFTER`] and does not grow (module doc, "Idle tasks").
pub const IDLE_SHARE: f64 = 0.1;
/// How long a task runs before it may count as idle: its first samples show whether it
/// grows (0.5 s gave the same simulated makespans, 2 s lost 0.1–0.3× on the `idle` mixes).
pub const IDLE_AFTER: Duration = Duration::from_secs(1);
/// A task's quiet start counts only where it holds at most this share of its predicted
/// peak meanwhile (module doc, "Quiet starts").
pub const QUIET_SHARE: f64 = 0.5;
/// A newcomer is admitted in its quiet start only while fewer running tasks than this
/// count as idle: each more sharing the one jump kept free makes two jumps at once likelier
/// (module doc, "Quiet starts").
pub const QUIET_SHARING: usize = 2;
/// A task that stopped growing at this share of its predicted peak or more holds its peak
/// (the prediction carries a margin): its end is then its time to peak plus what tasks run
/// after their peaks.
pub const PEAKED: f64 = 0.8;

/// When the queue's head would fit, for the tasks that may still overtake it
/// ([`Policy::head_room`]).
pub(super) struct HeadRoom {
    /// The limit less the head's peak: what everything else may hold from `at` on.
    level: f64,
    /// Seconds from now after which the running tasks stay within `level`.
    at: f64,
    /// The running tasks' curves.
    running: Vec<Curve>,
}

impl Policy {
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
            || self.facts(task).cold
            || self.is_paused(task)
            || self.runaway_rate(task, now).is_some()
        {
            return None;
        }
        let started = *started + self.paused_for(task, now);
        let features = &self.specs[task].features;
        let mut end = started + self.predictor.duration(features)?;
        // Once it holds its peak and no longer grows, it ends within what tasks run after
        // their peaks: a task that waits or computes a varying time first has a duration
        // the model cannot tell, and a hold it can.
        if let Some(age) = self.peaked_at(task, now) {
            if let Some(after) = self.predictor.after_peak(features) {
                end = end.min(started + age + after);
            }
        }
        (end > now).then_some(end)
    }

    /// When (in time run) a running task reached the peak it holds, if it has: it has
    /// stopped growing, at [`PEAKED`] of its predicted peak or more.
    fn peaked_at(&self, task: TaskId, now: Duration) -> Option<Duration> {
        let TaskState::Running {
            peak, predicted, ..
        } = &self.tasks[task]
        else {
            return None;
        };
        if (peak.get() as f64) < predicted.get() as f64 * PEAKED
            || self.growth_rate(task, now).is_some()
        {
            return None;
        }
        self.facts(task).reached(peak.scale(NEAR_PEAK))
    }

    /// The memory running tasks may hold together from now on: the headroom above the
    /// reserve plus what they hold, and never more than the budget.
    pub(super) fn limit(&self) -> Option<i128> {
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
    pub(super) fn held_at_peak(&self, id: TaskId) -> i128 {
        match &self.tasks[id] {
            TaskState::Running {
                current, predicted, ..
            } => i128::from((*predicted).max(*current).get()),
            _ => 0,
        }
    }

    /// Like [`Policy::room`], but counting only running tasks with no expected end: an
    /// upper bound on what admission can ever offer until something changes.
    pub(super) fn room_ahead(&self, now: Duration) -> Option<i128> {
        let mut jump = 0;
        let staying: i128 = self
            .running_ids()
            .filter(|&id| self.expected_end(id, now).is_none())
            .map(|id| match self.idle_jump(id, now) {
                Some(j) => {
                    jump = jump.max(i128::from(j.get()));
                    self.held_at_peak(id) - i128::from(j.get())
                }
                None => self.held_at_peak(id),
            })
            .sum();
        Some(self.limit()? - staying - jump)
    }

    /// For a running task that idles far below its predicted peak (module doc, "Idle
    /// tasks"), the jump to its peak it has yet to make; `None` for any other task.
    pub(super) fn idle_jump(&self, id: TaskId, now: Duration) -> Option<Bytes> {
        let hold = self.idle_hold(id, now)?;
        Some(self.predicted(id).saturating_sub(hold))
    }

    /// What a running task that idles far below its predicted peak counts as holding;
    /// `None` for a task that does not idle. A task idles in its quiet start, while its
    /// history says it stays small (it was admitted so, or has run [`IDLE_AFTER`] within
    /// that size), and counts at the most it may hold meanwhile; or when it has run at
    /// least [`IDLE_AFTER`], does not grow and holds at most [`IDLE_SHARE`] of its
    /// predicted peak ([`QUIET_SHARE`] where tasks like it stay quiet that long before they
    /// climb), and counts at what it holds.
    pub(super) fn idle_hold(&self, id: TaskId, now: Duration) -> Option<Bytes> {
        let TaskState::Running {
            current,
            predicted,
            stopping: None,
            facts,
            ..
        } = &self.tasks[id]
        else {
            return None;
        };
        if self.is_paused(id) {
            // A parked task climbs only once resumed, and is resumed where its jump fits.
            return self.is_parked(id).then_some(*current);
        }
        let age = self.elapsed_running(id, now);
        let quiet = !facts.cold && (facts.quiet || age >= IDLE_AFTER);
        let learned = self.predictor.quiet(&self.specs[id].features);
        if let Some((until, held)) = self.learned_quiet_start(learned, *predicted) {
            if quiet && age < until && *current <= held {
                return Some(held);
            }
        }
        // Tasks like it work quiet before they climb, longer than the low side of that
        // time for some: one still that small has not climbed yet.
        let share = match learned {
            Some((until, _)) if !facts.cold && until >= IDLE_AFTER => QUIET_SHARE,
            _ => IDLE_SHARE,
        };
        let idle = (age >= IDLE_AFTER || self.is_asleep(id, now))
            && (current.get() as f64) <= predicted.get() as f64 * share
            && self.growth_rate(id, now).is_none();
        idle.then_some(*current)
    }

    /// How long a task with this predicted peak stays quiet at the least, and what it holds
    /// meanwhile at the most, when its history says it stays quiet for [`IDLE_AFTER`] or
    /// longer at no more than [`QUIET_SHARE`] of that peak (module doc, "Quiet starts").
    pub(super) fn quiet_start(&self, id: TaskId, predicted: Bytes) -> Option<(Duration, Bytes)> {
        self.learned_quiet_start(self.predictor.quiet(&self.specs[id].features), predicted)
    }

    /// [`Policy::quiet_start`] from what the predictor learned of tasks like it.
    fn learned_quiet_start(
        &self,
        learned: Option<(Duration, Bytes)>,
        predicted: Bytes,
    ) -> Option<(Duration, Bytes)> {
        let (until, held) = learned?;
        let small = held.get() as f64 <= predicted.get() as f64 * QUIET_SHARE;
        if self.sleepy() {
            // Its tasks sleep before they climb, and are parked before they jump where the
            // jump does not fit: how long they stayed quiet on their run clocks (which
            // parking shortens) matters only until one can be seen asleep.
            return (small && held > Bytes::ZERO).then_some((until.max(IDLE_AFTER), held));
        }
        (until >= IDLE_AFTER && small).then_some((until, held))
    }

    /// Returns true if and only if a task admitted in its quiet start has run less than
    /// [`IDLE_AFTER`] and is not seen asleep: until then, no other is admitted so (module
    /// doc, "Quiet starts").
    fn quiet_unconfirmed(&self, now: Duration) -> bool {
        self.running_ids().any(|r| self.unconfirmed(r, now))
    }

    /// Returns true if and only if a running task was admitted in its quiet start, has run
    /// less than [`IDLE_AFTER`] and is not seen asleep.
    pub(super) fn unconfirmed(&self, id: TaskId, now: Duration) -> bool {
        self.facts(id).quiet
            && self.elapsed_running(id, now) < IDLE_AFTER
            && !self.is_asleep(id, now)
            && !self.is_parked(id)
    }

    /// How long a task started now stays quiet at the least and what it would count as
    /// holding meanwhile (the most it holds), if it is admitted in its quiet start; `None`
    /// if it is not.
    pub(super) fn quiet_newcomer(
        &self,
        now: Duration,
        id: TaskId,
        predicted: Bytes,
        cold: bool,
    ) -> Option<(Duration, Bytes)> {
        if cold || self.quiet_unconfirmed(now) {
            return None;
        }
        // Like the tasks before it, a newcomer of a sweep whose tasks sleep will sleep, and
        // be parked before its jump if that does not fit ([`park`](super::park)): however
        // many share the jump kept free.
        if !self.sleepy() {
            let sharing = self
                .running_ids()
                .filter(|&r| !self.is_parked(r) && self.idle_hold(r, now).is_some())
                .count();
            if sharing >= QUIET_SHARING {
                return None;
            }
        }
        self.quiet_start(id, predicted)
    }

    /// How soon a task may reach its peak at the earliest; `None` for a cold-started one.
    pub(super) fn time_to_peak(&self, id: TaskId, cold: bool) -> Option<Duration> {
        match cold {
            true => None,
            false => self.predictor.time_to_peak(&self.specs[id].features),
        }
    }

    /// A running task's expected memory from now on (see [`project`]).
    pub(super) fn curve(&self, now: Duration, id: TaskId) -> Option<Curve> {
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
                peak: self
                    .within_cap_f(current.get() as f64 + rate * horizon)
                    .max(current.get() as f64),
                ramp: horizon,
                end: None,
            });
        }
        let ramp = self.time_to_peak(id, self.facts(id).cold);
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
    pub(super) fn runaway_rate(&self, id: TaskId, now: Duration) -> Option<f64> {
        let TaskState::Running { current, .. } = &self.tasks[id] else {
            return None;
        };
        let model = self.model_prediction(id)?;
        if *current <= model {
            return None;
        }
        let age = self.elapsed_running(id, now);
        let climb = &self.facts(id).climb;
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
    /// started now, stays within [`Policy::limit`] from now on (module doc, "Admission");
    /// `quiet` is how long it stays quiet and what it would count as holding meanwhile, if
    /// admitted in its quiet start ([`Policy::quiet_newcomer`]).
    pub(super) fn fits_ahead(
        &self,
        now: Duration,
        id: TaskId,
        predicted: Bytes,
        cold: bool,
        quiet: Option<(Duration, Bytes)>,
    ) -> bool {
        let Some(limit) = self.limit() else {
            return false;
        };
        let ramp = self.time_to_peak(id, cold);
        let mut newcomer = Curve {
            now: 0.0,
            peak: predicted.get() as f64,
            ramp: ramp.map_or(0.0, |r| r.as_secs_f64()),
            end: None,
        };
        // Its jump to its peak, kept free with the idle tasks' (none for a task that climbs
        // from its start: its whole curve is projected).
        let mut own_jump = 0.0;
        let mut sleepy = false;
        if let Some((_, held)) = quiet {
            // Counted as it will be once it runs: at what it holds while quiet, its jump
            // to its peak in the one kept free.
            let held = held.get() as f64;
            own_jump = newcomer.peak - held;
            newcomer = Curve {
                now: held,
                peak: held,
                ramp: 0.0,
                end: None,
            };
            sleepy = self.sleepy();
        }
        let (curves, jumps) = self.projected_curves(now, Some(newcomer));
        let highest = project::highest(&curves);
        let limit = limit as f64;
        if sleepy {
            // Like the tasks before it, it will sleep and be parked before its jump where
            // that does not fit then, as will the others asleep: only what it holds must
            // fit, beside the jumps of idle tasks that work ([`park`](super::park)).
            let jump = jumps
                .iter()
                .filter(|&&(r, _)| !self.jump_parkable(r, now))
                .map(|&(_, j)| j)
                .fold(0.0, f64::max);
            return highest + jump <= limit;
        }
        let others = jumps.iter().map(|&(_, j)| j).fold(0.0, f64::max);
        if highest + others > limit {
            return false;
        }
        // Its own jump comes no sooner than its quiet start ends: by then, tasks expected to
        // end have given their memory back (module doc, "Quiet starts").
        let quiet_for = quiet.map_or(0.0, |(until, _)| until.as_secs_f64());
        project::highest_from(&curves, quiet_for) + others.max(own_jump) <= limit
    }

    /// Returns true if and only if a newcomer whose jump does not fit may start all the
    /// same, its jump left to the pause (module doc, "Jumps left to the pause"): tasks like
    /// it stay quiet for [`IDLE_AFTER`] at the least, what it holds meanwhile fits beside the
    /// running tasks and the largest of the idle ones' jumps, nothing is paused, no quiet
    /// newcomer is younger than [`IDLE_AFTER`], and no other task admitted so has yet to
    /// jump. Never with `--no-pause`: the brake would have to stop it instead.
    pub(super) fn jump_left_to_pause(&self, now: Duration, id: TaskId, predicted: Bytes) -> bool {
        if !self.config.pause
            || self.sleepy()
            || self.quiet_unconfirmed(now)
            || self.paused_count() > 0
        {
            return false;
        }
        let waiting_to_jump = |r: TaskId| {
            self.facts(r).jump_to_park
                && (self.idle_hold(r, now).is_some() || self.elapsed_running(r, now) < IDLE_AFTER)
        };
        if self.running_ids().any(waiting_to_jump) {
            return false;
        }
        let (Some(limit), Some((_, held))) = (self.limit(), self.quiet_start(id, predicted)) else {
            return false;
        };
        // Counted flat at what it holds, it adds that much to every point of the projection.
        self.projected_highest(now) + held.get() as f64 <= limit as f64
    }

    /// When the queue's head, of peak `head`, would fit: the first time ahead after which
    /// the running tasks' memory stays at or below the limit less its peak (their expected
    /// ends); `None` if that time never comes in the projection, or before the first sample.
    pub(super) fn head_room(&self, now: Duration, head: f64) -> Option<HeadRoom> {
        let level = self.limit()? as f64 - head;
        let running: Vec<Curve> = self
            .running_ids()
            .filter_map(|r| self.curve(now, r))
            .collect();
        let at = project::below_from(&running, level)?;
        Some(HeadRoom { level, at, running })
    }

    /// Returns true if and only if starting `id` now leaves the head its room when it would
    /// otherwise fit ([`Policy::head_room`]): `id` has ended by then (its predicted duration
    /// at most) or fits beside the head (module doc, "backfill"). A task whose duration is
    /// not predicted yet never ends, in this test.
    pub(super) fn spares_the_head(&self, head: &HeadRoom, id: TaskId, predicted: Bytes) -> bool {
        let newcomer = Curve {
            now: 0.0,
            peak: predicted.get() as f64,
            ramp: 0.0,
            end: self
                .predictor
                .duration(&self.specs[id].features)
                .map(|d| d.as_secs_f64()),
        };
        let mut curves = head.running.clone();
        curves.push(newcomer);
        project::highest_from(&curves, head.at) <= head.level
    }

    /// The highest point of the running tasks' projected memory from now on. Tasks idling
    /// far below their peaks count at what they hold, plus room for the largest of their
    /// jumps: one may jump at any moment, and a second one to jump is paused as memory
    /// nears the limit (module doc, "Idle tasks"), or parked before it jumps
    /// ([`park`](super::park)).
    pub(super) fn projected_highest(&self, now: Duration) -> f64 {
        let (highest, jumps) = self.projection(now, None);
        highest + jumps.iter().map(|&(_, j)| j).fold(0.0, f64::max)
    }

    /// The highest point of the running tasks' projected memory from now on (and a
    /// newcomer's, if one is given), idle and parked tasks flat at what they count as
    /// holding; and each such task's jump to its peak, yet to be made.
    pub(super) fn projection(
        &self,
        now: Duration,
        newcomer: Option<Curve>,
    ) -> (f64, Vec<(TaskId, f64)>) {
        let (curves, jumps) = self.projected_curves(now, newcomer);
        (project::highest(&curves), jumps)
    }

    /// The curves whose highest point [`Policy::projection`] gives, and the jumps.
    fn projected_curves(
        &self,
        now: Duration,
        newcomer: Option<Curve>,
    ) -> (Vec<Curve>, Vec<(TaskId, f64)>) {
        let mut jumps = Vec::new();
        let mut curves: Vec<Curve> = Vec::with_capacity(self.running.len() + 1);
        for r in self.running_ids() {
            let Some(mut c) = self.curve(now, r) else {
                continue;
            };
            if let Some(hold) = self.idle_hold(r, now) {
                let hold = hold.get() as f64;
                jumps.push((r, (c.peak - hold).max(0.0)));
                c.now = hold;
                c.peak = hold;
                c.ramp = 0.0;
            }
            curves.push(c);
        }
        curves.extend(newcomer);
        (curves, jumps)
    }

    /// Fails queued tasks whose measured lower bound exceeds the budget: they can never fit.
    pub(super) fn fail_impossible(&mut self) {
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
                let reason = Reason::OverBudget {
                    needs: lb,
                    budget: self.config.budget,
                };
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
    pub(super) fn admit(&mut self, now: Duration) {
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
            if running.iter().any(|&id| self.overtaken_enough(id)) {
                // A parked task overtaken too often goes first ([`park`](super::park)).
                self.short = Some(eta::Short::Paused(self.paused_count()));
                return;
            }
            let Some(room) = self.room() else { return };
            // The most any newcomer could get once every expected end has passed; a cheap
            // first test before projecting curves.
            let room_ahead = self.room_ahead(now).unwrap_or(room);
            let cold_settled = running.iter().all(|&id| {
                // One that waits to begin has not settled, whatever its memory did.
                let settled = self.is_settled(id, now) && !self.waits_to_begin(id, now);
                !self.facts(id).cold || settled || self.holds_back_nothing(id, now)
            });
            // With room for -j tasks at any plausible size, unknown tasks start together; with
            // room for fewer, that many ([`order`](super::order)).
            let plentiful = self.plentiful();
            // A cold task that waits to begin holds back nothing: it is parked before it
            // jumps where its jump does not fit ([`park`](super::park)).
            let cold_running = running
                .iter()
                .filter(|&&r| self.facts(r).cold && !self.holds_back_nothing(r, now))
                .count();
            let partly = cold_running < self.cold_slots();
            // Backfill looks this deep into the queue at most: with a full machine, every
            // tick would otherwise predict every queued task. Longest expected first.
            let queued: Vec<TaskId> = self.candidates(now);
            let Some(&head) = queued.first() else {
                self.set_stalled(false);
                return;
            };
            if self.head.is_none_or(|(h, _)| h != head) {
                self.head = Some((head, 0));
            }
            let mut head_blocked = false;
            // Once the head was overtaken enough: when and how much room it needs, which
            // every later start must leave it (module doc, "backfill").
            let mut spare: Option<HeadRoom> = None;
            let mut chosen = None;
            for &id in &queued {
                let lower = self.aux[id].lower_bound.unwrap_or_default();
                let alone = self.must_run_alone(self.queued_brakes(id));
                let model = self.model_prediction(id);
                let (predicted, cold) = match model {
                    Some(p) => (p, false),
                    None if plentiful || partly => (self.plausible_cold(id), true),
                    None => (self.cold_guess(id), true),
                };
                // Unknown tasks wait beside cold-started ones that still grow, unless memory
                // is plentiful or holds more of them.
                let cold_blocked = cold && !cold_settled && !plentiful && !partly;
                let quiet = self.quiet_newcomer(now, id, predicted, cold);
                let fits = if running.is_empty() {
                    i128::from(lower.get()) <= room
                } else if alone
                    || cold_blocked
                    || (i128::from(predicted.get()) > room_ahead
                        // A quiet newcomer counts at what it holds meanwhile, its jump in
                        // the one kept free: the cheap test, at its whole peak, is no test.
                        && quiet.is_none())
                {
                    false
                } else {
                    self.fits_ahead(now, id, predicted, cold, quiet)
                        && spare
                            .as_ref()
                            .is_none_or(|h| self.spares_the_head(h, id, predicted))
                };
                if fits {
                    let to_park = quiet.is_some() && self.sleepy();
                    chosen = Some((id, predicted, cold, quiet.is_some(), to_park));
                    break;
                }
                if !running.is_empty()
                    && !alone
                    && !cold
                    && !cold_blocked
                    && spare.is_none()
                    && self.jump_left_to_pause(now, id, predicted)
                {
                    chosen = Some((id, predicted, cold, true, true));
                    break;
                }
                if id == head {
                    head_blocked = true;
                    let overtaken = self.head.map_or(0, |h| h.1);
                    if !running.is_empty()
                        && !cold_blocked
                        && overtaken as usize >= self.config.max_jobs.max(1)
                    {
                        // From now on, only what does not delay the head; nothing, where it
                        // needs the whole machine as it frees or its room never comes.
                        spare = match alone {
                            true => None,
                            false => self.head_room(now, predicted.get() as f64),
                        };
                        if spare.is_none() {
                            break;
                        }
                    }
                }
            }
            let Some((id, predicted, cold, quiet, jump_to_park)) = chosen else {
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
            self.start(now, id, predicted, cold, quiet, jump_to_park);
        }
    }

    /// Moves a queued task to running and emits its Start; `quiet`: admitted in its quiet
    /// start ([`Policy::quiet_newcomer`]); `jump_to_park`: without room for its jump
    /// ([`AttemptFacts::jump_to_park`]).
    pub(super) fn start(
        &mut self,
        now: Duration,
        id: TaskId,
        predicted: Bytes,
        cold: bool,
        quiet: bool,
        jump_to_park: bool,
    ) {
        let TaskState::Queued {
            attempt, brakes, ..
        } = self.tasks[id]
        else {
            return;
        };
        let rank = self
            .running_ids()
            .map(|r| self.facts(r).rank + 1)
            .max()
            .unwrap_or(0);
        let oom_score_adj = (100 + 50 * rank.min(18) as i32).min(1000);
        self.next_seq += 1;
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
                facts: Box::new(AttemptFacts {
                    seq: self.next_seq,
                    rank,
                    cold,
                    quiet,
                    jump_to_park,
                    grown_at: now,
                    ..AttemptFacts::default()
                }),
            },
        );
        self.actions.push_back(Action::Start {
            task: id,
            attempt,
            predicted,
            oom_score_adj,
        });
    }

    /// Pauses admission while PSI `full avg10` is at or above the threshold.
    pub(super) fn check_psi(&mut self) {
        let limit = self.config.psi_full_pause;
        let high = limit > 0.0 && self.psi.is_some_and(|p| p >= limit);
        match (high, self.paused) {
            (true, Some(Pause::Psi)) | (false, None) | (false, Some(Pause::Stalled)) => {}
            (true, _) => {
                self.paused = Some(Pause::Psi);
                let why = PauseWhy::Pressure {
                    avg10: self.psi.unwrap_or_default(),
                    limit,
                };
                self.actions.push_back(Action::Note(Note::Paused { why }));
            }
            (false, Some(Pause::Psi)) => {
                self.paused = None;
                self.actions.push_back(Action::Note(Note::Resumed));
            }
        }
    }

    /// Announces (once) that nothing can start although nothing runs, and when that ends.
    pub(super) fn set_stalled(&mut self, stalled: bool) {
        match (stalled, self.paused) {
            (true, None) => {
                self.paused = Some(Pause::Stalled);
                let why = PauseWhy::NothingFits {
                    available: self.available.unwrap_or_default(),
                    reserve: self.config.reserve,
                };
                self.actions.push_back(Action::Note(Note::Paused { why }));
            }
            (false, Some(Pause::Stalled)) => {
                self.paused = None;
                self.actions.push_back(Action::Note(Note::Resumed));
            }
            _ => {}
        }
    }
}
