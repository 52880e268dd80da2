//! Suspend: the policy's middle lever, between refusing a task and braking one.
//!
//! Admission may bet (look-ahead on expected ends, cold tasks started together when memory looks
//! plentiful). When a bet fails, the running tasks' projected memory climbs toward the limit of
//! admission (`min(available − reserve + Σ current, budget)`). Then the newest task that is still
//! growing, fast enough that pausing it stops the excess over the next horizon ("How far ahead",
//! below) if any is (pausing a 278 MiB task beside a 2.7 GiB one that climbs does not help; the
//! simulated `ramp` seed 1 went from 2.01× to 1.69× its lower bound), is **paused**. Of tasks
//! started in the same instant (the cold start's), the fastest grower counts as the newest: the
//! order they were admitted in says nothing, and pausing a 440 MiB task at its peak beside a
//! 2.7 GiB one still climbing stopped little growth, held its memory, and ended in a brake (40
//! simulated mixes, cold: median 1.97 → 1.91× the lower bound, 47 → 23 brakes; on 2 CPUs 1.96×
//! either way, 30 → 24 brakes). A paused task (SIGSTOP of its whole tree) keeps its memory and the
//! work it did, and stops taking more. Paused tasks are resumed, oldest first, as soon as the
//! projection with them running fits again, or as soon as what the tasks hold plus one horizon of
//! growth, the resumed one's included, leaves three [`APPROACH`] shares of the limit free: pausing
//! again is cheap, and a projection that only says "later" is no reason to keep a task stopped (the
//! pause rule below acts on it again when memory actually nears the limit).
//!
//! The projection is the admission's ([`super::project`]): every running task as a curve
//! to its predicted peak and its expected end, a task still climbing extended by what it
//! would take at its recent rate over the horizon, a paused or stopping task flat at what it
//! holds. A task is paused only when the projection exceeds the limit *and* memory actually
//! approaches it (what tasks hold plus a horizon of growth is within [`APPROACH`] of the
//! limit): a projection that only says "later" is left to time. A task
//! whose peak the model knows grows at most to that peak within the horizon: a task that
//! took 2.5 GiB in 0.2 s beside a sleeping one was paused at its peak, its pace carried a
//! second further, and braked when the other woke (40 simulated mixes: mean 1.909× →
//! 1.898× the lower bound, 2 CPUs 1.929× → 1.921×, brakes 14 → 14 and 21 → 20).
//!
//! How far ahead "soon" looks depends on how fast the tasks grow together. Slow growers are
//! looked ahead [`PAUSE_HORIZON`]: a second of their growth is a small share of the limit,
//! and the cushion it leaves keeps paused tasks from being braked. Fast growers are looked
//! ahead only as far as takes them [`GROWTH_SHARE`] of the limit, and never less than
//! [`MIN_PAUSE_HORIZON`]: a second of a 1 GiB/s ramp is 30% of a 3.5 GiB limit, so a task
//! nearing the top of its ramp was paused for memory it never took. (In a real `kinds` run,
//! a 1.1 GiB task was paused 60 MiB short of its peak beside a paused 2.6 GiB one; both
//! waited 2 s while a 300 MiB task ran alone, and the first was braked.) The same horizon
//! decides resuming, so that the hysteresis between the two stays in their thresholds.
//! Figures: BENCHMARKS.md, "A shorter look-ahead for fast growers".
//!
//! Rules that keep it safe and moving:
//! - The oldest task that runs is never paused: something always makes progress. Of tasks
//!   started in the same instant, the oldest is one that does not grow, if the first
//!   admitted of them does.
//! - If every running task is paused, one is resumed at once (no deadlock): the oldest whose
//!   projection fits beside the others held where they are, else the oldest. (A 2.6 GiB task
//!   paused mid-jump was resumed before a paused 1.3 GiB one near its end, and grew until the
//!   second was braked with 11 s of work; the 8 simulated `idle` mixes: worst 3.74× → 3.30×
//!   the lower bound, mean 2.53× → 2.48×.)
//! - Paused tasks hold memory. When the tasks that run still grow and available has
//!   already fallen below the reserve, or pausing more cannot make the projection fit,
//!   that memory must come back: the newest paused task is braked (TERM, requeued with its
//!   peak as lower bound, retries not spent), before the brake level is reached. So is the
//!   newest of several paused tasks once it has waited longer than it ran, and at least
//!   the settle window: its work is cheaper to redo than its memory is to keep from the
//!   others. (Without the settle window a task paused a quarter second after it started
//!   was braked half a second later: six tasks of 150–350 MiB ramping in 0.5 s under
//!   `--mem 1G -j 4` took 2 brakes and 6.4 s simulated, now none and 6.0 s.)
//! - **Probing.** A paused task waits for the projection to fit, and the projection counts
//!   every task at its predicted peak, a cold one at its plausible size, whether or not it
//!   will ever take it. So while nothing else grows, the oldest paused task is resumed to
//!   probe what memory is actually left, if a [`PROBE_HORIZON`] of its growth fits below
//!   two [`APPROACH`] shares of the limit. Until it is paused again, its growth is looked
//!   ahead only that long, and it is paused two shares below the limit instead of one: it
//!   then holds less than makes paused memory due back (the brake above). In the twin of
//!   the benchmark's `late` seed 29 on the emulated machine, a 2.6 GiB cold task was paused
//!   at 2.3 GiB beside four quiet ones counted at 1 GiB each and waited 7.5 s, then ended
//!   at 16.5 s; probing, it ended at 9.7 s (47.2 → 43.1 s). Figures: BENCHMARKS.md,
//!   "Probing what memory is left".
//! - A paused task's paused time counts neither toward `--timeout` nor toward its learned
//!   duration and time to peak; its expected end moves by as much. Its growth is timed on
//!   the same clock: once resumed, it grows as it did when paused, not as a task that was
//!   quiet for as long as it was stopped. (Timed by the wall clock, a task resumed beside
//!   others looked quiet, so the next paused one was resumed at once too and all of them were
//!   paused again a moment later; 40 simulated mixes: 22 → 14 brakes on the ideal host,
//!   25 → 20 on 2 CPUs, mean 1.963× → 1.941× the lower bound on 2 CPUs.)

use std::time::Duration;

use super::project::{self, Curve};
use super::{
    Action, BrakeCause, BrakeWhy, Note, PauseCause, Policy, Projection, StopReason, TaskId,
    TaskState, CLIMB_STEP, SETTLE_WINDOW,
};
use crate::units::Bytes;

/// How far ahead a climbing task's recent growth rate is extended when deciding to pause,
/// while what the running tasks would take in that time is at most [`GROWTH_SHARE`] of the
/// limit.
pub const PAUSE_HORIZON: Duration = Duration::from_secs(1);
/// The shortest horizon: tasks that together grow fast are looked ahead only as far as
/// takes them [`GROWTH_SHARE`] of the limit, but never less than this.
pub const MIN_PAUSE_HORIZON: Duration = Duration::from_millis(500);
/// How much of the limit the look-ahead of fast growers covers (module doc).
pub const GROWTH_SHARE: f64 = 0.10;
/// A task counts as still growing for at least this long after its peak last grew.
pub const QUIET_GRACE: Duration = Duration::from_millis(250);
/// Memory approaches the limit when what tasks hold (plus a horizon of growth) is
/// within this share of it.
pub const APPROACH: f64 = 0.05;
/// How far ahead a probing task's growth is extended (module doc, "Probing"): about
/// what a sample takes to come while memory races, with room to spare.
pub const PROBE_HORIZON: Duration = Duration::from_millis(250);

impl Policy {
    /// Returns true if and only if the task is running and paused.
    pub fn is_paused(&self, task: TaskId) -> bool {
        self.facts(task).paused_since.is_some()
    }

    /// Total time the task's current attempt has spent paused, up to `now`.
    pub fn paused_for(&self, task: TaskId, now: Duration) -> Duration {
        let a = self.facts(task);
        a.paused_total
            + a.paused_since
                .map_or(Duration::ZERO, |s| now.saturating_sub(s))
    }

    /// How many running tasks are paused now.
    pub fn paused_count(&self) -> usize {
        self.running
            .iter()
            .filter(|&&id| self.is_paused(id))
            .count()
    }

    /// Pauses, resumes or brakes a paused task as the module doc says; called per sample.
    pub(super) fn check_suspend(&mut self, now: Duration) {
        if self.interrupted || !self.config.pause {
            return;
        }
        let Some(limit) = self.limit() else { return };
        let limit = limit as f64;
        // Parked tasks are parking's to resume ([`park`](super::park)).
        let live: Vec<TaskId> =
            self.by_start_order(|p, id| p.stopping(id).is_none() && !p.is_parked(id));
        let mut active: Vec<TaskId> = live
            .iter()
            .copied()
            .filter(|&id| !self.is_paused(id))
            .collect();
        let mut paused: Vec<TaskId> = live
            .iter()
            .copied()
            .filter(|&id| self.is_paused(id))
            .collect();
        if active.is_empty() {
            // Never deadlock: with nothing else running, the oldest paused task whose
            // projection fits runs, else the oldest (module doc).
            let fits = paused.iter().copied().find(|&id| {
                self.pressure(now, &[id], self.horizon(now, &[id], limit), limit)
                    .0
                    <= limit
            });
            if let Some(first) = fits.or(paused.first().copied()) {
                self.resume(now, first);
            }
            return;
        }
        self.protect_a_quiet_twin(now, &mut active);
        let mut paused_now = false;
        loop {
            let horizon = self.horizon(now, &active, limit);
            let (projected, soon) = self.pressure(now, &active, horizon, limit);
            if projected <= limit || soon < limit * (1.0 - APPROACH) {
                break;
            }
            // The newest task still growing fast enough that pausing it stops the excess
            // (else the newest still growing); the oldest one that runs is never paused.
            // Tasks started together are equally new: the fastest of them goes first.
            let mut growing: Vec<(TaskId, f64)> = active[1.min(active.len())..]
                .iter()
                .rev()
                .filter_map(|&id| self.growth_rate(id, now).map(|r| (id, r)))
                .collect();
            growing.sort_by(|a, b| {
                let started = |id| self.started_at(id);
                started(b.0).cmp(&started(a.0)).then(b.1.total_cmp(&a.1))
            });
            let excess = soon - limit * (1.0 - APPROACH);
            let enough = growing
                .iter()
                .find(|&&(_, r)| r * horizon >= excess)
                .or(growing.first())
                .map(|&(id, _)| id);
            let Some(victim) = enough else {
                // Pausing cannot help any more: what runs needs what paused tasks hold,
                // once memory is actually near the limit (a projection alone is no reason
                // to throw work away).
                let held: f64 = self
                    .running_ids()
                    .map(|id| self.current(id).get() as f64)
                    .sum();
                if held >= limit * (1.0 - APPROACH) {
                    self.brake_paused(now, &paused, needed(projected, limit));
                }
                return;
            };
            let why = Projection {
                need: Bytes(projected.max(0.0) as u64),
                limit: Bytes(limit.max(0.0) as u64),
            };
            self.pause(now, victim, PauseCause::Projection(why));
            active.retain(|&id| id != victim);
            paused.push(victim);
            paused_now = true;
        }
        let paused: Vec<TaskId> = self.by_start_order(|p, id| {
            p.stopping(id).is_none() && p.is_paused(id) && !p.is_parked(id) && !active.contains(&id)
        });
        if paused_now || paused.is_empty() {
            return;
        }
        let held: f64 = self
            .running_ids()
            .map(|id| self.current(id).get() as f64)
            .sum();
        let braking = self
            .running_ids()
            .any(|id| matches!(self.stopping(id), Some((StopReason::Brake, _))));
        let growing = active.iter().any(|&id| self.growth_rate(id, now).is_some());
        if held > limit && growing && !braking {
            // Memory must come back: what runs grows past the reserve while paused tasks
            // hold memory.
            self.brake_paused(now, &paused, needed(held, limit));
            return;
        }
        // Resume the oldest paused tasks while the projection with them fits, or memory in
        // the next horizon leaves room to spare, so that a resumed task is not paused again
        // at once.
        let mut waiting = paused.as_slice();
        while let Some((&id, rest)) = waiting.split_first() {
            let mut with = active.clone();
            with.push(id);
            // While others still grow (one just resumed included), a resumed task is looked
            // ahead the longest horizon.
            let others_grow = active.iter().any(|&a| self.pace_of(a, now).is_some());
            let horizon = match others_grow {
                true => PAUSE_HORIZON.as_secs_f64(),
                false => self.horizon(now, &with, limit),
            };
            let (projected, soon) = self.pressure(now, &with, horizon, limit);
            let fits = projected <= limit * (1.0 - 2.0 * APPROACH)
                || soon <= limit * (1.0 - 3.0 * APPROACH);
            // With nothing else growing, the oldest paused task probes what memory is left
            // (module doc, "Probing").
            let oldest = waiting.len() == paused.len();
            let probe = !fits && oldest && !others_grow && self.may_probe(now, id, held, limit);
            if !fits && !probe {
                break;
            }
            self.resume(now, id);
            if let Some(f) = self.facts_mut(id) {
                f.probing = probe;
            }
            active = with;
            waiting = rest;
        }
        // Paused tasks that wait on each other: once the newest has waited longer than it
        // ran (and a settle window: a moment's wait is no reason to throw work away),
        // redoing its work costs less than its memory kept from the others.
        if let [_, .., newest] = waiting {
            let ran = self.elapsed_running(*newest, now);
            let waited = now.saturating_sub(self.facts(*newest).paused_since.unwrap_or(now));
            if waited > ran.max(SETTLE_WINDOW) && !braking {
                let why = BrakeWhy::WaitedLongerThanItRan { waited, ran };
                self.brake_paused(now, waiting, why);
            }
        }
    }

    /// Brakes the newest paused task (once per response): the running tasks need the
    /// memory it holds.
    fn brake_paused(&mut self, now: Duration, paused: &[TaskId], why: BrakeWhy) {
        let braking = self
            .running_ids()
            .any(|id| matches!(self.stopping(id), Some((StopReason::Brake, _))));
        let newest = paused.iter().copied().max_by_key(|&id| self.facts(id).seq);
        let Some(victim) = newest.filter(|_| !braking) else {
            return;
        };
        let cause = BrakeCause {
            why: why.clone(),
            alone: false,
        };
        self.brake(now, victim, cause);
        self.actions
            .push_back(Action::Note(Note::Brake { task: victim, why }));
    }

    /// The highest projected total of the running tasks, with `active` running and every
    /// other task flat at what it holds (one in its quiet start at the most it holds
    /// meanwhile, as admission counts it); and what they hold plus `horizon` seconds of the
    /// active ones' growth ([`Policy::horizon`]); `limit` is [`Policy::limit`].
    fn pressure(&self, now: Duration, active: &[TaskId], horizon: f64, limit: f64) -> (f64, f64) {
        let mut curves = Vec::new();
        let mut soon = 0.0;
        for id in self.running_ids() {
            let current = self.current(id).get() as f64;
            soon += current;
            if !active.contains(&id) {
                curves.push(Curve {
                    now: current,
                    peak: current,
                    ramp: 0.0,
                    end: None,
                });
                continue;
            }
            let Some(mut curve) = self.curve(now, id) else {
                continue;
            };
            if let Some(hold) = self.idle_hold(id, now) {
                // Counted as admission counts it, at what it holds in its quiet start.
                let hold = (hold.get() as f64).max(current);
                curve.now = hold;
                curve.peak = hold;
                curve.ramp = 0.0;
            }
            if self.runaway_rate(id, now).is_some() {
                // Admission extrapolates a runaway far ahead; pausing looks one horizon ahead.
                curve.peak = current;
                curve.ramp = 0.0;
            }
            if let Some(rate) = self.pace_of(id, now) {
                // A probing task is looked ahead a moment, and stopped a share of the limit
                // early: paused again, it holds less than makes its memory due back.
                let probing = self.facts(id).probing;
                let horizon = match probing {
                    true => horizon.min(PROBE_HORIZON.as_secs_f64()),
                    false => horizon,
                };
                if probing {
                    soon += limit * APPROACH;
                }
                // No task grows past --task-mem: it is stopped there.
                let grown = self.within_cap_f(current + rate * horizon).max(current);
                // Growth within a learned prediction was reserved at admission, and stops
                // there; an unknown or runaway task is projected to keep its pace.
                let unknown = self.facts(id).cold
                    || self
                        .model_prediction(id)
                        .is_none_or(|p| current > p.get() as f64);
                if unknown {
                    curve.peak = curve.peak.max(grown);
                    soon += grown - current;
                } else {
                    soon += grown.min(curve.peak).max(current) - current;
                }
            }
            curves.push(curve);
        }
        (project::highest(&curves), soon)
    }

    /// How fast a task grows, in bytes a second, for the projection: a paused task being
    /// considered for resuming grows as it did when paused.
    fn pace_of(&self, id: TaskId, now: Duration) -> Option<f64> {
        match self.is_paused(id) {
            true => Some(self.facts(id).paused_rate).filter(|&r| r > 0.0),
            false => self.growth_rate(id, now),
        }
    }

    /// Returns true if and only if paused task `id`, resumed, may grow for a
    /// [`PROBE_HORIZON`] at the pace it was paused at and still leave two [`APPROACH`]
    /// shares of the limit free, what the running tasks hold being `held`.
    fn may_probe(&self, now: Duration, id: TaskId, held: f64, limit: f64) -> bool {
        let rate = self.pace_of(id, now).unwrap_or(0.0);
        held + rate * PROBE_HORIZON.as_secs_f64() <= limit * (1.0 - 2.0 * APPROACH)
    }

    /// How far ahead, in seconds, `active` tasks' growth is extended: [`PAUSE_HORIZON`],
    /// shortened to what takes them [`GROWTH_SHARE`] of the limit together, but never below
    /// [`MIN_PAUSE_HORIZON`] (module doc).
    fn horizon(&self, now: Duration, active: &[TaskId], limit: f64) -> f64 {
        let rate: f64 = active.iter().filter_map(|&id| self.pace_of(id, now)).sum();
        let (longest, shortest) = (PAUSE_HORIZON.as_secs_f64(), MIN_PAUSE_HORIZON.as_secs_f64());
        if rate <= 0.0 {
            return longest;
        }
        (GROWTH_SHARE * limit / rate).clamp(shortest, longest)
    }

    /// Puts first, among the running tasks started at the same instant as the oldest, one
    /// that does not grow, when the oldest does: the task that is never paused is then one
    /// that is sure to make progress, and the growing one of the pair can be paused. Tasks
    /// admitted together are equally old; when the first admitted of them was the one to
    /// outgrow its prediction, the others were braked instead (a 60 MiB task braked after
    /// 2.8 s so that a leaking twin started in the same instant could go on).
    fn protect_a_quiet_twin(&self, now: Duration, active: &mut [TaskId]) {
        let Some(&oldest) = active.first() else {
            return;
        };
        if self.growth_rate(oldest, now).is_none() {
            return;
        }
        let twin = active.iter().position(|&id| {
            self.started_at(id) == self.started_at(oldest) && self.growth_rate(id, now).is_none()
        });
        if let Some(i) = twin {
            active[..=i].rotate_right(1);
        }
    }

    /// Running tasks matching `keep`, oldest start first.
    fn by_start_order(&self, keep: impl Fn(&Policy, TaskId) -> bool) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.running_ids().filter(|&id| keep(self, id)).collect();
        ids.sort_by_key(|&id| self.facts(id).seq);
        ids
    }

    /// When a running task started; `None` for one that does not run.
    pub(super) fn started_at(&self, id: TaskId) -> Option<Duration> {
        match &self.tasks[id] {
            TaskState::Running { started, .. } => Some(*started),
            _ => None,
        }
    }

    /// How long a running task has run, paused time excluded.
    pub(super) fn elapsed_running(&self, id: TaskId, now: Duration) -> Duration {
        match &self.tasks[id] {
            TaskState::Running { started, .. } => now
                .saturating_sub(*started)
                .saturating_sub(self.paused_for(id, now)),
            _ => Duration::ZERO,
        }
    }

    /// Bytes a running task held at the last sample.
    fn current(&self, id: TaskId) -> Bytes {
        match &self.tasks[id] {
            TaskState::Running { current, .. } => *current,
            _ => Bytes::ZERO,
        }
    }

    /// How fast (bytes/s) a running, unpaused task's peak grew over the last
    /// [`SETTLE_WINDOW`] it ran; `None` when it did not grow in that window.
    pub(super) fn growth_rate(&self, id: TaskId, now: Duration) -> Option<f64> {
        if !matches!(self.tasks[id], TaskState::Running { .. }) || self.is_paused(id) {
            return None;
        }
        // In time run: a task just resumed grows as it did when paused, not as one quiet
        // for as long as it was stopped.
        let age = self.elapsed_running(id, now);
        let climb = &self.facts(id).climb;
        let &(last_age, last) = climb.last()?;
        if age.saturating_sub(last_age) > SETTLE_WINDOW {
            return None;
        }
        let since = age.saturating_sub(SETTLE_WINDOW);
        // Measured between samples, never from the start: a process that maps its first
        // 20 MiB in its first 50 ms is not growing at 400 MiB/s.
        let (base_age, base) = climb
            .iter()
            .rev()
            .find(|c| c.0 <= since && c.0 < last_age)
            .or_else(|| climb.first().filter(|c| c.0 < last_age))
            .copied()?;
        let span = last_age.saturating_sub(base_age).as_secs_f64();
        let rate = last.get().saturating_sub(base.get()) as f64 / span;
        if !(span > 0.0 && rate > 0.0) {
            return None;
        }
        // Still growing only if the next climb step is not long overdue at that rate: a
        // task that ramped fast and then held is not growing a second after.
        let step = last.get() as f64 * CLIMB_STEP / rate;
        let quiet = age.saturating_sub(last_age).as_secs_f64();
        (quiet <= (3.0 * step).max(QUIET_GRACE.as_secs_f64())).then_some(rate)
    }

    /// Pauses a running task and says why; one paused asleep is parked
    /// ([`park`](super::park)).
    pub(super) fn pause(&mut self, now: Duration, id: TaskId, why: PauseCause) {
        if self.is_paused(id) {
            return;
        }
        let rate = self.growth_rate(id, now).unwrap_or(0.0);
        if let Some(f) = self.facts_mut(id) {
            f.paused_rate = rate;
            f.paused_since = Some(now);
            f.probing = false;
            f.parked = matches!(why, PauseCause::Asleep { .. });
        }
        self.actions.push_back(Action::Pause { task: id });
        self.actions
            .push_back(Action::Note(Note::TaskPaused { task: id, why }));
    }

    /// Resumes a paused task and notes for how long it was paused.
    pub(super) fn resume(&mut self, now: Duration, id: TaskId) {
        if let Some(paused_for) = self.unpause(now, id) {
            self.actions.push_back(Action::Note(Note::TaskResumed {
                task: id,
                paused_for,
            }));
        }
    }

    /// Lets a paused task run again (before TERM, too: a stopped tree acts on it only once
    /// it runs); returns how long this pause lasted.
    fn unpause(&mut self, now: Duration, id: TaskId) -> Option<Duration> {
        let f = self.facts_mut(id)?;
        let since = f.paused_since.take()?;
        let lasted = now.saturating_sub(since);
        f.paused_total += lasted;
        // A task paused while it grew is asleep again only after it has used no CPU for a
        // while since it runs; a parked one slept before and used none since, and stays
        // asleep until a sample says otherwise (else it would count as working and take
        // the room of older sleepers: parked and resumed by turns).
        if !std::mem::take(&mut f.parked) {
            if let Some(busy) = f.busy.as_mut() {
                busy.0 = now;
            }
        }
        self.actions.push_back(Action::Resume { task: id });
        Some(lasted)
    }
}

/// Why a paused task is braked when the running tasks need `need` of the `limit` they may
/// hold.
fn needed(need: f64, limit: f64) -> BrakeWhy {
    BrakeWhy::PausedNeeded(Projection {
        need: Bytes(need.max(0.0) as u64),
        limit: Bytes(limit.max(0.0) as u64),
    })
}
