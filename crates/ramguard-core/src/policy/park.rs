//! Parking: stopping a task that sleeps before its climb, where stopping it costs nothing.
//!
//! Many tasks wait before they allocate: on a lock, a download, a queue, a `sleep`. A task
//! that idles far below its predicted peak counts at what it holds, and admission keeps the
//! largest of such tasks' jumps free once ([`admission`](super::admission), "Idle tasks"):
//! any one of them may jump at any moment. Two jumping at once was the bet that failed: the
//! second was paused part-way up, holding memory, and braked if the first needed it.
//!
//! A task that has used no CPU for [`ASLEEP_AFTER`] (its tree's user and system time, read
//! by the supervisor, grew by at most [`CPU_SLACK`]) is **asleep**. Stopping an asleep task
//! (SIGSTOP of its tree) costs it nothing: a sleep's clock runs on while the task is
//! stopped, and a lock or a download it waits for is as far along when it is continued. It
//! cannot climb while stopped. So at each sample the tasks that count as idle, and the
//! parked ones, are taken oldest first (tasks that cannot be parked, because they work,
//! before all others), and each keeps running, or is resumed, while half its jump fits in
//! the room the running tasks' projection leaves under the limit, less the whole jumps of
//! those before it; an asleep one for which that no longer holds is **parked**. A parked
//! task counts at what it holds; its jump is among those admission keeps free. It is
//! resumed, oldest first, as soon as half its jump fits beside the jumps of the idle tasks
//! that run.
//!
//! **Half a jump** ([`JUMP_SHARE`]). A jump that has not happened yet is sized by a
//! prediction (early in a sweep, the plausible 1 GiB; later, the learned peak with its
//! margin) and timed by nothing. Waiting for room for all of it kept tasks stopped after
//! their sleeps had ended, while the real jump was smaller than predicted or another
//! task's end, a moment later, would have made the room. A task resumed on half its jump
//! climbs at the rate its pages are faulted in; if memory nears the limit before it is
//! done, [`suspend`](super::suspend) pauses it part-way and resumes it when room returns,
//! and the brake takes it only where memory must come back. On the emulated 4 GiB
//! machine (`bench/sweep_bench.py --issue12`, eight `idle` seeds, each beside the build
//! before) it was faster on all eight: median 2.36× → 2.10× the lower bound, lowest
//! MemAvailable 629 → 362 MiB (the brake's line is 384 MiB there), brakes 0 → 2. The
//! simulated twins disagree: eight `idle` mixes 1.82× → 1.86× (ideal host), 1.93× → 1.91×
//! (2 CPUs), 2.37× → 2.45× (emulated host), brakes 0 → 1, 2, 6; BENCHMARKS.md has both.
//!
//! What it changes elsewhere:
//! - **Cold starts.** An asleep task that has used less than [`BEGUN_CPU`] in all waits to
//!   begin: what it holds says nothing of its peak. It is not learned from as settled (the
//!   next unknown tasks were predicted at the 5 MiB of a sleeping shell, started together and
//!   jumped to their gigabytes beside each other), and it does not hold back other unknown
//!   tasks: it counts as idle at the plausible size, and is parked where its jump does not fit.
//! - **Quiet newcomers.** Once [`SLEEPY_AFTER`] finished tasks, and [`SLEEPY_SHARE`] of
//!   those with a quiet start, were seen asleep in it, a newcomer with a learned quiet start
//!   starts counted at what it holds meanwhile however many share the jump kept free, and
//!   however short its quiet start on its run clock (parking shortens it): it will sleep, and
//!   be parked before its jump if that does not fit. So only what it holds must fit, beside
//!   the jumps of idle tasks that work; neither its own jump nor those of tasks asleep or
//!   parked need room now ([`Policy::jump_parkable`]). Until it is seen asleep (or has run
//!   [`IDLE_AFTER`](super::admission::IDLE_AFTER)), its jump takes no room from older
//!   sleepers here either: before, a newcomer not yet seen asleep came first, and the big
//!   sleeper beside it, whose sleep had ended, was parked for it. A 2.4 GiB sleeper that
//!   had to find room for its jump waited for another's 2.4 GiB peak to end and then slept
//!   alone; it now sleeps beside that peak (a test in `tests/policy_suspend.rs`: 13.4 s →
//!   10.1 s). Only one such newcomer at a time is not yet seen asleep. The eight simulated
//!   `idle` mixes went from 1.95× to 1.83× the lower bound (2 CPUs: 2.09× → 1.93×), 16
//!   seeds nobody tuned on (9–24) from 1.79× to 1.70× (1.97× → 1.81×); no brake more, and
//!   the other mixes do not sleep and do not change.
//!
//! Rules that keep it safe and moving:
//! - One parked task is resumed per sample: its jump is seen before the next one's. (Early
//!   in a sweep the model, from one or two finished tasks, predicted 411 MiB for every
//!   task; six parked ones were resumed at once, jumped to 1.1–2.6 GiB, and one was braked.)
//! - A parked task overtaken by `-j` younger ones goes first: none goes before it, and no
//!   newcomer starts, until half its jump fits (as for the head of the queue).
//! - The last task that runs is never parked, and with every running task paused or
//!   parked, the oldest parked one runs (no deadlock).
//! - A parked task is not paused for memory nor braked for what it holds
//!   ([`suspend`](super::suspend)); the brake takes one only when nothing else can stop.
//! - Its paused time counts toward neither `--timeout` nor its learned durations, like any
//!   pause.
//! - Without CPU figures (an executor that cannot read them) no task is asleep, and nothing
//!   is parked.

use std::time::Duration;

use super::{PauseCause, Policy, TaskId};
use crate::units::Bytes;

/// How long a task must use no CPU to count as asleep.
pub const ASLEEP_AFTER: Duration = Duration::from_millis(500);
/// CPU time a sleeping task may use and still count as asleep: two clock ticks, for a
/// timer or a runtime's housekeeping.
pub const CPU_SLACK: Duration = Duration::from_millis(20);
/// An asleep task that has used less CPU than this in all has not begun its work: what it
/// holds says nothing of its peak (`sh -c 'sleep 5; exec job'` uses a few milliseconds).
pub const BEGUN_CPU: Duration = Duration::from_millis(100);

/// The share of an asleep or parked task's jump that must fit for it to run or be resumed
/// (module doc, "Half a jump").
pub const JUMP_SHARE: f64 = 0.5;

/// Of the finished tasks whose memory stood still a while before their climb (a quiet start
/// of [`IDLE_AFTER`](super::admission::IDLE_AFTER) or more), how many were seen asleep
/// meanwhile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleepers {
    pub quiet: u32,
    pub slept: u32,
}

/// A sweep's tasks sleep in their quiet starts once this many did, and at least
/// [`SLEEPY_SHARE`] of those with one.
const SLEEPY_AFTER: u32 = 3;
const SLEEPY_SHARE: f64 = 0.8;

impl Policy {
    /// Returns true if and only if the sweep's finished tasks slept in their quiet starts
    /// ([`SLEEPY_AFTER`], [`SLEEPY_SHARE`]): a newcomer like them is parked before it
    /// jumps if its jump does not fit, so it may start counted at what it holds meanwhile
    /// however many others share the room kept for jumps.
    pub(super) fn sleepy(&self) -> bool {
        let Sleepers { quiet, slept } = self.sleepers;
        slept >= SLEEPY_AFTER && f64::from(slept) >= f64::from(quiet) * SLEEPY_SHARE
    }

    /// Records each running task's CPU time from a sample: the moment it last used CPU
    /// worth counting. A paused task uses none; its mark stays as it was.
    pub(super) fn note_cpu(&mut self, now: Duration, cpu: &[(TaskId, Duration)]) {
        for &(id, used) in cpu {
            if self.is_paused(id) {
                continue;
            }
            let Some(f) = self.facts_mut(id) else {
                continue;
            };
            match f.busy {
                // A tree whose CPU time went down lost a process: it did something.
                Some((_, seen)) if used >= seen && used <= seen + CPU_SLACK => {}
                _ => f.busy = Some((now, used)),
            }
        }
    }

    /// Returns true if and only if a running task that is not paused has used no CPU
    /// worth counting for [`ASLEEP_AFTER`].
    pub fn is_asleep(&self, task: TaskId, now: Duration) -> bool {
        !self.is_paused(task)
            && self
                .facts(task)
                .busy
                .is_some_and(|(at, _)| now.saturating_sub(at) >= ASLEEP_AFTER)
    }

    /// Returns true if and only if a running task is asleep or parked and has used less
    /// than [`BEGUN_CPU`] in all: it waits to begin, and its memory standing still is no
    /// sign of its peak. Such a cold task is not learned from as settled, and does not
    /// hold back other unknown tasks: it counts as idle, and is parked before it jumps
    /// where its jump does not fit.
    pub fn waits_to_begin(&self, task: TaskId, now: Duration) -> bool {
        (self.is_asleep(task, now) || self.is_parked(task))
            && self
                .facts(task)
                .busy
                .is_some_and(|(_, used)| used < BEGUN_CPU)
    }

    /// Returns true if and only if a cold task waits to begin and will be parked before it
    /// jumps where its jump does not fit: it holds back no other unknown task. Not with
    /// pausing off (`--no-pause`), where nothing is parked.
    pub(super) fn holds_back_nothing(&self, task: TaskId, now: Duration) -> bool {
        self.config.pause && self.waits_to_begin(task, now)
    }

    /// Returns true if and only if a running task was admitted in a sleepy sweep's quiet
    /// start without room kept for its jump, and is not yet seen asleep: it is parked
    /// before that jump once it is, if the jump does not fit then.
    pub fn jump_left_to_parking(&self, task: TaskId, now: Duration) -> bool {
        self.facts(task).jump_to_park && self.unconfirmed(task, now)
    }

    /// Returns true if and only if parking stops a running task before its jump where that
    /// does not fit: it is parked, asleep, or [left to parking](Self::jump_left_to_parking).
    pub fn jump_parkable(&self, task: TaskId, now: Duration) -> bool {
        self.is_parked(task) || self.is_asleep(task, now) || self.jump_left_to_parking(task, now)
    }

    /// Returns true if and only if a running task is parked: paused while asleep, until
    /// half its jump fits.
    pub fn is_parked(&self, task: TaskId) -> bool {
        let f = self.facts(task);
        f.parked && f.paused_since.is_some()
    }

    /// Parks asleep tasks whose jumps no longer fit and resumes parked ones whose jumps do
    /// (module doc); called per sample.
    pub(super) fn check_parking(&mut self, now: Duration) {
        if self.interrupted || !self.config.pause {
            return;
        }
        let Some(limit) = self.limit() else { return };
        let (highest, jumps) = self.projection(now, None);
        let mut room = limit as f64 - highest;
        let mut order: Vec<(TaskId, f64, bool)> = jumps
            .into_iter()
            .filter(|&(id, _)| self.stopping(id).is_none())
            // Admitted without room for its jump, it is parked once seen asleep if its jump
            // does not fit then; until then its jump is not another's to make room for.
            .filter(|&(id, _)| !self.jump_left_to_parking(id, now))
            .map(|(id, j)| (id, j, self.is_parked(id) || self.is_asleep(id, now)))
            .collect();
        for &(id, _, free) in &order {
            if let Some(f) = self.facts_mut(id).filter(|_| free) {
                f.slept = true;
            }
        }
        order.sort_by_key(|&(id, _, free)| (free, self.facts(id).seq));
        // Tasks that run and will not be parked: never park the last of them.
        let mut running = self
            .running_ids()
            .filter(|&id| !self.is_paused(id) && self.stopping(id).is_none())
            .count();
        // Parked tasks whose jumps do not fit yet, and whether one of them was overtaken
        // often enough that no younger one may go first any more.
        let mut waiting: Vec<TaskId> = Vec::new();
        let mut blocked = false;
        // One parked task is resumed per sample: its jump is seen before the next one's, and
        // jumps predicted early in a sweep may be far too small.
        let mut resumed = false;
        for (id, jump, free) in order {
            let parked = self.is_parked(id);
            // Half its jump must fit; the room is charged all of it (module doc, "Half a
            // jump").
            let fits = jump * JUMP_SHARE <= room;
            if !free || (fits && !(parked && (blocked || resumed))) {
                room -= jump;
                if parked {
                    self.resume(now, id);
                    resumed = true;
                    running += 1;
                    for &w in &waiting {
                        if let Some(f) = self.facts_mut(w) {
                            f.overtaken += 1;
                        }
                    }
                }
            } else if parked {
                blocked |= self.overtaken_enough(id);
                waiting.push(id);
            } else if running > 1 {
                let why = PauseCause::Asleep {
                    jump: Bytes(jump as u64),
                    room: Bytes(room.max(0.0) as u64),
                };
                self.pause(now, id, why);
                running -= 1;
            }
        }
        if running == 0 {
            // Never deadlock: with nothing else running, the oldest parked task runs.
            let oldest = self
                .running_ids()
                .filter(|&id| self.is_parked(id))
                .min_by_key(|&id| self.facts(id).seq);
            if let Some(id) = oldest {
                self.resume(now, id);
            }
        }
    }

    /// Returns true if and only if a parked task was overtaken by younger ones as often as
    /// `max_jobs`: from then on none goes before it, and no newcomer starts, until its jump
    /// fits (as for the head of the queue, admission's module doc), so that a big task is
    /// not left to the end by a stream of small ones.
    pub(super) fn overtaken_enough(&self, id: TaskId) -> bool {
        self.is_parked(id) && self.facts(id).overtaken as usize >= self.config.max_jobs.max(1)
    }
}
