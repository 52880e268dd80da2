//! What the user is told while a sweep runs: when it should end, and why fewer than `-j`
//! tasks run.
//!
//! **ETA.** From what is known, never from a mean of what finished: each running task's
//! predicted duration less what it has run (paused time excluded; for one that holds its
//! peak, what tasks run after their peaks, if that is sooner), each queued task's own
//! predicted duration (per task from its features, see [`super::predict`]; never below the
//! shortest duration seen, less the margin), laid out on as many slots as run at once
//! (list scheduling: the next task goes to the slot that frees first). The slots are `-j`,
//! fewer when the limit holds fewer tasks at the mean predicted peak of the waiting tasks,
//! and never fewer than run now. (At the typical peak, a high quantile, three big tasks
//! among ten made the ETA run every task one at a time: 36–40 s for a sweep that ends in
//! 12 s. On the 40 simulated mixes, sampled once a second, the ETA is off by a median
//! factor of 1.23, 2.04 at the 90th percentile; 1.28 and 2.17 before.) `None` ("unknown")
//! until durations have been learned ([`super::predict::MIN_DURATIONS`] finished tasks, or
//! the journal's).
//!
//! **Why fewer than `-j`.** Admission records why it stopped while tasks wait ([`Short`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::{Policy, TaskId};
use crate::units::Bytes;

/// Queued tasks whose durations are predicted one by one for the ETA; the rest of the
/// queue counts at their mean.
pub const ETA_WINDOW: usize = 1024;

/// Why fewer than `-j` tasks run while tasks wait (worded by the binary).
#[derive(Debug, Clone, PartialEq)]
pub enum Short {
    /// The next task does not fit in the room left beside the running tasks.
    Memory { next: Bytes, room: Bytes },
    /// Running tasks are paused to let others finish.
    Paused(usize),
    /// Nothing is known about the tasks yet: more start once the first stop growing.
    ColdStart,
    /// A task braked too often runs alone.
    Alone,
    /// The kernel reports memory pressure (PSI).
    Psi,
}

impl Policy {
    /// Why fewer than `-j` tasks run while tasks wait, as of the last decision; `None` when
    /// `-j` run or nothing waits.
    pub fn short(&self) -> Option<&Short> {
        self.short.as_ref()
    }

    /// The reason admission found nothing to start, with `head` first in line.
    pub(super) fn why_short(&self, now: Duration, head: TaskId, room: i128) -> Short {
        let paused = self.paused_count();
        if paused > 0 {
            return Short::Paused(paused);
        }
        let cold = self.model_prediction(head).is_none();
        let settled = self
            .running_ids()
            .all(|id| !self.facts(id).cold || self.is_settled(id, now));
        if cold && !settled && !self.plentiful() {
            return Short::ColdStart;
        }
        // What is free now may be spoken for by a running task still growing, and what an
        // idle task holds is not all it will take: the room at the running tasks' projected
        // highest point, counted as admission counts it, is what a newcomer can count on.
        let room = self
            .limit()
            .map_or(room, |limit| limit - self.projected_highest(now) as i128);
        Short::Memory {
            next: self.predicted(head),
            room: Bytes(room.max(0) as u64),
        }
    }

    /// When the sweep should end, as an offset from `now`; `None` until durations have
    /// been learned.
    pub fn eta(&self, now: Duration) -> Option<Duration> {
        // No basis: nothing learned about durations.
        self.predictor.duration(&[])?;
        // Never shorter than the shortest seen, less the margin (`Predictor::duration`).
        let duration = |id: TaskId| self.predictor.duration(&self.specs[id].features);
        let mut slots: BinaryHeap<Reverse<Duration>> = BinaryHeap::new();
        for id in self.running_ids() {
            // A task that holds its peak ends by what tasks run after their peaks, if sooner.
            let left = match self.expected_end(id, now) {
                Some(end) => end.saturating_sub(now),
                None => duration(id)
                    .unwrap_or_default()
                    .saturating_sub(self.elapsed_running(id, now)),
            };
            slots.push(Reverse(left));
        }
        let jobs = self.config.max_jobs.max(1);
        // How many run at once on average: the limit over the mean predicted peak of what
        // waits (the typical peak, a high quantile, for a task with no prediction of its own).
        let (sum, count) = self
            .queued
            .iter()
            .take(ETA_WINDOW)
            .filter_map(|&id| self.model_prediction(id).or(self.predictor.typical()))
            .fold((0.0, 0usize), |(sum, n), p| (sum + p.get() as f64, n + 1));
        let mean = sum / count.max(1) as f64;
        let fit = match (mean, self.limit()) {
            (p, Some(limit)) if p >= 1.0 => (limit.max(0) as f64 / p) as usize,
            _ => jobs,
        };
        let width = fit.clamp(1, jobs).max(slots.len());
        while slots.len() < width {
            slots.push(Reverse(Duration::ZERO));
        }
        let mut known = Duration::ZERO;
        let mut counted = 0u32;
        for id in self.queued.iter().copied().take(ETA_WINDOW) {
            let d = duration(id).unwrap_or_default();
            known += d;
            counted += 1;
            let Reverse(free) = slots.pop().unwrap_or(Reverse(Duration::ZERO));
            slots.push(Reverse(free + d));
        }
        let mut end = slots.iter().map(|r| r.0).max().unwrap_or_default();
        let rest = self.queued.len().saturating_sub(ETA_WINDOW);
        if rest > 0 && counted > 0 {
            end += (known / counted) * rest as u32 / width as u32;
        }
        Some(end)
    }
}
