//! Which queued tasks admission considers, in which order, and when memory is plentiful.
//!
//! **Longest first.** Once durations or peaks are learned per task from its features, the
//! candidates are taken big first, then longest expected first (longest-processing-time
//! first), then larger predicted peak, then queue order: the big, long tasks start early
//! instead of leaving a one-at-a-time tail at the end (a 1..10-year backtest sweep
//! otherwise ran its six largest tasks last). *Big* is a predicted peak above half the
//! limit: no two of them ever run together, so their durations add up to a chain no
//! schedule can shorten, and it must start early (the simulated mixes: median 2.00 →
//! 1.96× the lower bound; `ramp` seed 2 ran its three big tasks one after another at the
//! end, 2.10 → 1.95×). Without a per-task fit every task is predicted alike and the queue
//! order stands.
//! Once every waiting task's peak and duration are predicted, the
//! [`lookahead`](super::lookahead) may take them in another order: the one that ends
//! soonest when the rest of the sweep is replayed on the predictions.
//!
//! **Scouts.** Where the command line names kinds (`--model resnet18`), a task of a kind no
//! finished task had is predicted from the other kinds' peaks ([`predict`](super::predict)),
//! which says little: after a few medium and large tasks, a small one is predicted at a
//! large one's size and runs alone. So the first waiting task of each kind that no task
//! finished and none that runs has goes first, in queue order, however deep in the queue it
//! waits: the cold start takes one task of each kind before a second of any, and a kind is
//! learned while the others are. In the twin of the benchmark's `kinds` seed 10 (three
//! kinds; the ideal host | the emulated 4 GiB machine of `tests/policy_mixes.rs`), the cold
//! start took two medium tasks and a large one, and the first small task ran alone,
//! predicted at 3 GiB, at 20 s: 39.4 | 44.4 s, now 32.8 | 38.5 s.
//!
//! **Plentiful.** With nothing known about the tasks, the budget is plentiful when it holds
//! `-j` tasks at [`COLD_PLAUSIBLE`] each (or at the largest peak seen, with the margin, if
//! that is more). Then unknown tasks start together, each reserving that size, with no
//! settle window (long-lived workers never settle); suspend and the brake correct a task
//! that turns out larger. `/dev/shm` must hold as much, where its free space is known: a
//! task may keep all its memory there, and a full `/dev/shm` is a SIGBUS, which no pause
//! or brake can catch (a 64 MiB container `/dev/shm` keeps the cold start cautious, so a
//! task's shm use is measured before others start beside it).
//!
//! **Partly plentiful.** When the limit holds fewer than `-j` unknown tasks at that size
//! plus the margin, that many start together (`cold_slots`), each reserving the
//! plausible size; more unknown tasks wait until those have settled, as in the cautious
//! cold start (module doc of the policy), which is what remains when the limit holds only
//! one. On the benchmark's emulated 4 GiB machine (limit 3.5 GiB) three start at once
//! instead of one: the thirteen simulated mixes (`tests/policy_mixes.rs`) went from a
//! median of 2.14× to 1.98× the lower bound, with 5 brakes instead of 25. A task larger than
//! the plausible size is paused, and braked if the others need its memory.

use std::time::Duration;

use super::{predict, Policy, TaskId, BACKFILL_WINDOW};
use crate::units::Bytes;

/// The peak an unknown task is assumed to reach when judging whether memory is plentiful:
/// most Python sweep tasks in the stories peak between 0.2 and 2 GiB. Never more than
/// `--task-mem`: no task lives above it.
pub const COLD_PLAUSIBLE: Bytes = Bytes(1 << 30);

/// How many unknown tasks of a plausible size `each` start together in `room` (module doc):
/// as many as it holds at that size plus the margin, at least one, at most `jobs`.
pub fn cold_slots(room: Bytes, each: Bytes, jobs: usize) -> usize {
    let each = each.scale(1.0 + predict::MARGIN).get().max(1);
    (room.get() / each).clamp(1, jobs.max(1) as u64) as usize
}

impl Policy {
    /// The queued tasks admission looks at, best first (module doc), in the order the
    /// [`lookahead`](super::lookahead) planned once everything waiting is predicted. The
    /// plan is made again when the model has learned a quarter more than when it was made
    /// (on every observation early on); in between, its order stands for the tasks still
    /// waiting, the rule's order behind them.
    pub(super) fn candidates(&mut self, now: Duration) -> Vec<TaskId> {
        let order = self.ordered_candidates(now);
        self.scouts_first(order)
    }

    /// [`Policy::candidates`] before the scouts go first.
    fn ordered_candidates(&mut self, now: Duration) -> Vec<TaskId> {
        let ids = self.ruled_candidates();
        let provisional = self.provisional.as_ref().map_or(0, |p| p.0.observed());
        let learned = self.predictor.observed() + provisional;
        if let Some((at, order)) = &self.plan {
            if learned < (*at + 1).max(at.saturating_mul(5) / 4) {
                let planned: Vec<TaskId> = order
                    .iter()
                    .copied()
                    .filter(|id| self.queued.contains(id))
                    .collect();
                if !planned.is_empty() {
                    let rest = ids.iter().copied().filter(|id| !planned.contains(id));
                    return planned.iter().copied().chain(rest).collect();
                }
            }
        }
        let order = self.planned_order(now, ids);
        let depth = order.len().min(super::lookahead::DEPTH);
        self.plan = Some((learned, order[..depth].to_vec()));
        order
    }

    /// Puts first, in queue order, a scout of each kind that no task finished and none that
    /// runs has: the first waiting task of that kind, however deep in the queue (module
    /// doc, "Scouts").
    fn scouts_first(&self, mut order: Vec<TaskId>) -> Vec<TaskId> {
        let mut wanted: Vec<usize> = self.predictor.peaks().unseen_kinds().collect();
        wanted.retain(|&k| {
            !self
                .running_ids()
                .any(|id| predict::of_kind(&self.specs[id].features, k))
        });
        if wanted.is_empty() {
            return order;
        }
        let mut scouts = Vec::new();
        for &id in &self.queued {
            let features = &self.specs[id].features;
            if wanted.iter().any(|&k| predict::of_kind(features, k)) {
                wanted.retain(|&k| !predict::of_kind(features, k));
                scouts.push(id);
                if wanted.is_empty() {
                    break;
                }
            }
        }
        order.retain(|id| !scouts.contains(id));
        scouts.extend(order);
        scouts
    }

    /// The queued tasks in the order of the module doc's rule.
    fn ruled_candidates(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.queued.iter().copied().take(BACKFILL_WINDOW).collect();
        let per_task_peaks = self.predictor.peaks().fit().is_some();
        if !self.predictor.per_task_durations() && !per_task_peaks {
            return ids;
        }
        let half = self.limit().unwrap_or(0).max(0) / 2;
        let key = |id: TaskId| {
            let d = self.predictor.duration(&self.specs[id].features);
            let p = self.model_prediction(id).unwrap_or_default();
            let big = per_task_peaks && i128::from(p.get()) > half;
            (big, d.unwrap_or_default(), p)
        };
        // Stable: equal predictions keep queue order.
        ids.sort_by_cached_key(|&id| std::cmp::Reverse(key(id)));
        ids
    }

    /// Returns true if and only if the limit holds `-j` unknown tasks at a plausible size.
    pub(super) fn plentiful(&self) -> bool {
        let Some(limit) = self.limit() else {
            return false;
        };
        let each = self.plausible_cold_size();
        let need = i128::from(each.get()) * self.config.max_jobs.max(1) as i128;
        let shm_holds = self
            .shm_free
            .is_none_or(|free| i128::from(free.get()) >= need);
        need <= limit && shm_holds
    }

    /// How many unknown tasks may start together before any has settled: as many as the
    /// limit (and `/dev/shm`, where its free space is known) holds at the plausible size
    /// plus the margin, at least one, at most `-j`.
    pub(super) fn cold_slots(&self) -> usize {
        let Some(limit) = self.limit() else {
            return 1;
        };
        let room = Bytes(limit.clamp(0, i128::from(u64::MAX)) as u64);
        let shm = self.shm_free.unwrap_or(Bytes(u64::MAX));
        cold_slots(
            room.min(shm),
            self.plausible_cold_size(),
            self.config.max_jobs,
        )
    }

    /// What an unknown task reserves when memory is plentiful, or when it starts in one of
    /// the `cold_slots`.
    pub(super) fn plausible_cold(&self, id: TaskId) -> Bytes {
        let lb = self.aux[id].lower_bound.unwrap_or_default();
        self.plausible_cold_size().max(lb)
    }

    fn plausible_cold_size(&self) -> Bytes {
        self.within_cap(
            self.largest_seen
                .scale(1.0 + predict::MARGIN)
                .max(COLD_PLAUSIBLE),
        )
    }
}
