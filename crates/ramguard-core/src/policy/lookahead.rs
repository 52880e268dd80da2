//! Ordering the queue by playing it ahead: once every waiting task's peak, time to peak and
//! duration are predicted, the order admission takes them in is chosen by replaying the
//! rest of the sweep on those predictions.
//!
//! A fixed rule (big first, then longest) leaves memory idle that another order fills: on
//! the benchmark's 13 mixes a scheduler that knows every task and takes them greedily in
//! the best of 64 orders finishes in 1.39× the fluid bound, against 1.46× in queue order and
//! 1.47× big-and-long first (`bench/packing_bounds.py --issue12`); no single rule wins on
//! every mix. So the policy tries orders: the rule's own, three others (largest peak,
//! longest, largest peak × duration first), then, [`PASSES`] times, each of the first
//! [`DEPTH`] tasks moved to the front of the best order so far. Each order is replayed by
//! a small list scheduler on the predictions: the running tasks as their projected curves,
//! each waiting task admitted in that order as soon as the projection with it stays within
//! the limit (the admission rule of [`super::project`]), at most `-j` at once. The order
//! with the earliest predicted end wins if it beats the rule's by more than [`GAIN`]
//! (predictions are not exact; an order chosen for a gain smaller than their error is a
//! coin toss).
//!
//! A plan computes at most [`BUDGET`] curve values (a few milliseconds; the orders it has
//! no budget left for are not tried), and is made again only when the model has learned a
//! quarter more than when it was made ([`Policy::candidates`](super::Policy)); in between,
//! its order stands for the tasks still waiting.

use super::project::{self, Curve};
use super::{Policy, TaskId};

/// How many waiting tasks the replay orders; the rest keep the rule's order behind them.
pub const DEPTH: usize = 24;
/// How often each task of the best order so far is tried at its front.
pub const PASSES: usize = 2;
/// How much earlier a planned order must end than the rule's to be taken.
pub const GAIN: f64 = 0.01;
/// How many curve values one plan may compute in all (a curve at a corner counts one):
/// a few milliseconds, so that planning never holds up the supervisor's sampling for long
/// (with -j 64 an unbounded plan took some 50 ms; on the 13 simulated mixes this budget
/// chooses the same orders as none). Orders not replayed within it are not tried, and the
/// best so far stands.
pub const BUDGET: u64 = 400_000;

/// A task in the replay: its projected curve as seen when it starts, `start` seconds from
/// now; its end is known.
#[derive(Debug, Clone, Copy)]
struct Planned {
    start: f64,
    curve: Curve,
}

impl Planned {
    /// The task's projected curve as seen from `t`, not before its start.
    fn seen_from(&self, t: f64) -> Curve {
        let dt = t - self.start;
        Curve {
            now: self.curve.at(dt),
            peak: self.curve.peak,
            ramp: (self.curve.ramp - dt).max(0.0),
            end: self.curve.end.map(|e| e - dt),
        }
    }

    /// When it ends, in seconds from now.
    fn end(&self) -> f64 {
        self.start + self.curve.end.unwrap_or(f64::INFINITY)
    }

    /// When it reaches its peak, in seconds from now.
    fn peak_at(&self) -> f64 {
        self.start + self.curve.ramp
    }
}

/// A waiting task's predictions: peak (bytes), time to peak and duration (seconds).
#[derive(Debug, Clone, Copy)]
struct Waiting {
    peak: f64,
    to_peak: f64,
    duration: f64,
}

/// When the last task of `order` is predicted to end, admitted greedily in that order
/// beside the `running` ones within `limit`, at most `jobs` at once; infinite when `work`
/// (curve values computed, added to as it goes) passes [`BUDGET`] first.
fn replay(running: &[Planned], order: &[Waiting], limit: f64, jobs: usize, work: &mut u64) -> f64 {
    let mut active: Vec<Planned> = running.to_vec();
    let mut pending: Vec<Waiting> = order.to_vec();
    let mut last = active.iter().map(Planned::end).fold(0.0, f64::max);
    let mut t = 0.0;
    while !pending.is_empty() {
        active.retain(|p| p.end() > t);
        let mut i = 0;
        while i < pending.len() && active.len() < jobs {
            let w = pending[i];
            // A newcomer is judged as never ending, as admission judges it.
            let newcomer = Curve {
                now: 0.0,
                peak: w.peak,
                ramp: w.to_peak,
                end: None,
            };
            let mut curves: Vec<Curve> = active.iter().map(|p| p.seen_from(t)).collect();
            curves.push(newcomer);
            *work += (curves.len() * (2 * curves.len() + 1)) as u64;
            if *work > BUDGET {
                return f64::INFINITY;
            }
            if active.is_empty() || project::highest(&curves) <= limit {
                active.push(Planned {
                    start: t,
                    curve: Curve {
                        end: Some(w.duration),
                        ..newcomer
                    },
                });
                last = f64::max(last, t + w.duration);
                pending.remove(i);
            } else {
                i += 1;
            }
        }
        // The next moment the projection changes: an end, or a ramp reaching its peak.
        let next = active
            .iter()
            .flat_map(|p| [p.end(), p.peak_at()])
            .filter(|&x| x > t)
            .fold(f64::INFINITY, f64::min);
        if !next.is_finite() {
            break;
        }
        t = next;
    }
    last
}

impl Policy {
    /// `ids` (the rule's order) reordered by replaying the sweep ahead (module doc); as
    /// they are when some prediction is missing.
    pub(super) fn planned_order(&self, now: std::time::Duration, ids: Vec<TaskId>) -> Vec<TaskId> {
        if ids.len() < 2 {
            return ids;
        }
        let Some(limit) = self.limit() else {
            return ids;
        };
        let mut running = Vec::new();
        for id in self.running_ids() {
            let Some(c) = self.curve(now, id) else {
                return ids;
            };
            if c.end.is_none() {
                return ids; // a task with no expected end: nothing to plan around
            }
            running.push(Planned {
                start: 0.0,
                curve: c,
            });
        }
        let depth = ids.len().min(DEPTH);
        let mut window = Vec::with_capacity(depth);
        for &id in &ids[..depth] {
            let features = &self.specs[id].features;
            let (Some(peak), Some(duration)) =
                (self.model_prediction(id), self.predictor.duration(features))
            else {
                return ids;
            };
            let to_peak = self.predictor.time_to_peak(features).unwrap_or_default();
            window.push(Waiting {
                peak: peak.get() as f64,
                to_peak: to_peak.as_secs_f64(),
                duration: duration.as_secs_f64(),
            });
        }
        let limit = limit as f64;
        let jobs = self.config.max_jobs.max(1);
        let mut work = 0;
        let mut cost = |order: &[usize]| {
            let w: Vec<Waiting> = order.iter().map(|&i| window[i]).collect();
            replay(&running, &w, limit, jobs, &mut work)
        };
        let rule: Vec<usize> = (0..depth).collect();
        let by = |key: &dyn Fn(&Waiting) -> f64| {
            let mut o = rule.clone();
            o.sort_by(|&a, &b| key(&window[b]).total_cmp(&key(&window[a])));
            o
        };
        let rule_cost = cost(&rule);
        if !rule_cost.is_finite() {
            return ids; // the rule's order alone did not fit in the budget
        }
        let mut best = (rule_cost, rule.clone());
        for o in [
            by(&|w| w.peak),
            by(&|w| w.duration),
            by(&|w| w.peak * w.duration),
        ] {
            let c = cost(&o);
            if c < best.0 {
                best = (c, o);
            }
        }
        for _ in 0..PASSES {
            let mut improved = false;
            for i in 1..depth {
                let mut o = best.1.clone();
                let moved = o.remove(i);
                o.insert(0, moved);
                let c = cost(&o);
                if c < best.0 {
                    best = (c, o);
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
        if best.0 >= rule_cost * (1.0 - GAIN) {
            return ids;
        }
        let mut out: Vec<TaskId> = best.1.iter().map(|&i| ids[i]).collect();
        out.extend_from_slice(&ids[depth..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = (1u64 << 30) as f64;

    fn waiting(peak: f64, duration: f64) -> Waiting {
        Waiting {
            peak: peak * GIB,
            to_peak: 0.0,
            duration,
        }
    }

    #[test]
    fn the_replay_admits_in_order_within_the_limit() {
        let (a, b, c, d) = (
            waiting(6.0, 6.0),
            waiting(3.0, 5.0),
            waiting(8.0, 5.0),
            waiting(2.0, 7.0),
        );
        // The rule's order: 6 beside 2, then 8 at 6 s, then 3 alone at 11 s.
        assert_eq!(replay(&[], &[a, c, d, b], 10.0 * GIB, 8, &mut 0), 16.0);
        // 8 beside 2 first; 6 at 5 s, 3 beside it when 2 ends at 7 s.
        assert_eq!(replay(&[], &[c, a, b, d], 10.0 * GIB, 8, &mut 0), 12.0);
        // -j 1: one after another whatever the memory.
        assert_eq!(replay(&[], &[b, d], 100.0 * GIB, 1, &mut 0), 12.0);
        // With the plan's budget spent, nothing more is replayed.
        let mut spent = BUDGET;
        assert_eq!(
            replay(&[], &[a, c], 10.0 * GIB, 8, &mut spent),
            f64::INFINITY
        );
    }

    #[test]
    fn the_replay_waits_for_running_tasks_and_ramps() {
        // A running 8 GiB task ends in 4 s: a 6 GiB task that peaks within 2 s waits for
        // that end.
        let running = Planned {
            start: 0.0,
            curve: Curve {
                now: 8.0 * GIB,
                peak: 8.0 * GIB,
                ramp: 0.0,
                end: Some(4.0),
            },
        };
        let ramping = Waiting {
            peak: 6.0 * GIB,
            to_peak: 2.0,
            duration: 3.0,
        };
        let end = replay(&[running], &[ramping], 10.0 * GIB, 8, &mut 0);
        assert_eq!(end, 7.0, "it waited for the end");
        // A 5 GiB task with a 10 s ramp starts at once beside it: it holds 2 GiB when the
        // running task ends.
        let slow = Waiting {
            peak: 5.0 * GIB,
            to_peak: 10.0,
            duration: 12.0,
        };
        assert_eq!(replay(&[running], &[slow], 10.0 * GIB, 8, &mut 0), 12.0);
    }
}
