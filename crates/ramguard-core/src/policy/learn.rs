//! Prediction glue: what the policy predicts for a task, and what it learns as tasks run.
//!
//! See [`predict`](super::predict): per-task from numeric features when they explain the finished
//! peaks, else a high quantile of finished peaks plus a margin, else `--estimate`; never below the
//! task's lower bound (its peak when braked or OOM-killed, or from the journal). A running task's
//! prediction is `max(prediction, peak so far)` and is refreshed when the model learns.
//!
//! **Plentiful memory** (nothing known, but the limit holds `-j` tasks at a plausible
//! [`order::COLD_PLAUSIBLE`](super::order::COLD_PLAUSIBLE) each): every slot starts at once, no
//! settle window; suspend and the brake correct a task that turns out larger
//! ([`order`](super::order)).
//!
//! **Cold start** (no estimate, nothing finished, memory not plentiful): as many unknown tasks
//! start together as the limit holds at the plausible size plus the margin
//! ([`Policy::cold_slots`](super::Policy), at least one; three of the benchmark's emulated 4 GiB
//! machine), each reserving that size. More are admitted only when every cold-started running task
//! has *settled* (its peak grew by at most 5% over the last [`SETTLE_WINDOW`](super::SETTLE_WINDOW)),
//! each predicted as the largest peak seen in this run plus the margin; suspend and the brake
//! correct what this gets wrong. Settled tasks' peaks are also learned provisionally (until
//! [`PROVISIONAL_UNTIL`](super::PROVISIONAL_UNTIL) tasks have finished), so per-task predictions
//! start before anything ends. A settled peak is only a lower bound of the task's own: once the
//! finished tasks alone explain their peaks by a feature, the provisional model never predicts
//! below that fit (three finished `idle` tasks fitted `--peak` exactly, and five more sleeping
//! at 3 MiB made the provisional model predict 0 bytes for a 2 GiB task, which was started
//! beside three others). Until a task has finished, a settled peak is a lower bound of that
//! task's own and nothing more: any other task is predicted at least at the plausible size
//! (or `--estimate`). Tasks that work at a small size before they allocate look settled too:
//! three working at 150 MiB made the next five unknown tasks predicted at 177 MiB, all
//! started at once and jumped to 1.5 GiB beside the first three (a test in
//! `tests/policy_suspend.rs`: 3 brakes, now 1). On 16 simulated `late` mixes (seeds 1–16;
//! ideal host | 2 CPUs | the emulated 4 GiB machine of `tests/policy_mixes.rs`) the means
//! went from 2.62× to 2.50× the lower bound | 2.72× → 2.68× | 3.28× → 3.07×, and brakes from
//! 46 to 25 | 44 → 23 | 50 → 24; `idle`, the 40 and the 13 moved by 0.01× at most. After
//! the first finish and before the finished tasks fit a feature, a task that has not settled
//! itself is predicted at least at what the finished ones alone predict (their quantile plus
//! the margin): tasks that work at 30–60% of their peaks before they allocate settle there,
//! and the provisional fit through them ran through nothing, so five tasks of the simulated
//! `heavy` seed 1 started at once predicted at 0 bytes (a simulated kernel OOM kill;
//! `late` seed 6 did the same once its work memory was faulted in rather than there at
//! once). The trade-off is makespan against wasted (braked) work and against
//! leaning on the brake at all. Measured in simulated time by
//! `tests/policy_sim.rs::cold_start_tradeoff` (8 GiB host, 6 GiB budget, 512 MiB brake level,
//! `-j 8`, 8 identical tasks; tasks exit 100 ms after TERM):
//!
//! | workload                         | strategy            | makespan | braked task-s | brakes |
//! |----------------------------------|---------------------|---------:|--------------:|-------:|
//! | ramp 10 s to 1 GiB, hold 20 s    | cold start          |   60.0 s |           0   |      0 |
//! |                                  | `--estimate` right  |   60.0 s |           0   |      0 |
//! |                                  | `-j 1`              |  240.0 s |           0   |      0 |
//! |                                  | `--estimate` 10× low|   65.8 s |          20.4 |      3 |
//! | ramp 25 s to 1.5 GiB, hold 5 s   | cold start          |   83.8 s |          19.1 |      1 |
//! |                                  | `--estimate` right  |   87.0 s |           0   |      0 |
//! |                                  | `-j 1`              |  240.0 s |           0   |      0 |
//! |                                  | `--estimate` 10× low|   74.7 s |          35.3 |      3 |
//!
//! Starting one unknown task alone until it settled cost about one ramp plus the settle window
//! (71.8 s and 106.0 s, no brake). Five plausible-sized tasks at once now match the right
//! estimate where tasks are that size, and where they are half as large again the newest are
//! paused as memory nears the limit, one is braked when the others need its memory, and the
//! sweep still ends sooner than with the right estimate (which never overcommits). Admitting
//! blind (an estimate 10× low) pauses the newest tasks as memory nears the limit and brakes paused
//! ones only when their memory is needed (braked task-s count work thrown away, paused time
//! excluded); before suspend it took 60.0 s (16.4 task-s thrown away, 2 brakes) and 79.4 s (64.0,
//! 4). It is still a guess the brake has to correct. Anything finished replaces the guess with the
//! learned model.
//!
//! **Kinds.** A kind named on the command line (`--model resnet18`) is one 0/1 feature per
//! value ([`with_kinds`](Policy::with_kinds) says which). A task of a kind no finished task
//! had is predicted at the quantile of all finished peaks, as every task was before kinds
//! were read: no fit that uses a kind speaks for it ([`predict`](super::predict)). On the
//! simulated `kinds` shape (`bench/shapes.py`: three kinds of 200–400 MiB, 0.9–1.3 GiB and
//! 2.2–2.8 GiB named on the command line and nothing else; seeds 1–3; on the ideal host,
//! 2 CPUs and the emulated 4 GiB machine), reading kinds took the means from 3.73, 3.76 and
//! 4.25× the lower bound to 2.24, 2.20 and 2.85×; brakes 9, 1 and 4 became 7, 1 and 3.
//! Predicting such a task at least at the plausible size, as before anything finished, was
//! tried: 2.23, 2.25 and 2.76×, but brakes 12, 6 and 5 and a lowest MemAvailable of 336 MiB
//! instead of 514, so it was dropped. A parameter's kinds are fitted together
//! ([`predict`](super::predict)): taken one column at a time, a medium kind seen once was
//! predicted at the large kind's peak. Together, the same shape went to 1.99, 2.01 and
//! 2.60× (brakes 4, 2 and 4), and the `kinds` mixes of `tests/policy_mixes.rs` from 2.27,
//! 2.37 and 2.80× to 2.15, 2.22 and 2.65×. A kind with six finished tasks is predicted by
//! its own model, and one the fit left out as outliers by its own tasks at once
//! ([`predict`](super::predict)): where a kind sets how fast memory grows with a size
//! (`bench/shapes.py` `kindsize`), 2.47, 2.56 and 3.03× became 2.06, 2.22 and 2.61×.

use std::time::Duration;

use super::predict::{self, Observation};
use super::{
    Action, Note, Policy, TaskId, TaskState, LEARNED_NOTE_CHANGE, LEARNED_NOTE_MIN,
    PROVISIONAL_UNTIL, SETTLE_WINDOW,
};
use crate::units::Bytes;

impl Policy {
    /// Tells the predictor which features are kinds (one 0/1 column per value of a parameter
    /// read by name; `tasks::feature_table`), before anything is learned: module doc,
    /// "Kinds".
    pub fn with_kinds(mut self, kinds: &[std::ops::Range<usize>]) -> Policy {
        self.predictor.set_kinds(kinds);
        self
    }

    /// What finished tasks of earlier runs of the sweep showed (journal), to learn from
    /// before starting: a resumed sweep admits as well as the run it resumes.
    pub fn learn_from_history(&mut self, observations: &[(Vec<f64>, Observation)]) {
        for (features, obs) in observations {
            self.predictor.observe(features, *obs);
        }
        self.note_learned();
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

    /// The model's prediction for a task, never below its lower bound; `None` when cold.
    pub(super) fn model_prediction(&self, id: TaskId) -> Option<Bytes> {
        let lb = self.aux[id].lower_bound.unwrap_or_default();
        let features = &self.specs[id].features;
        let predicted = match &self.provisional {
            Some((p, settled)) if self.provisional_is_current(p, settled) => {
                let provisional = p.predict(features);
                // Settled peaks are lower bounds: never below a fit of finished tasks.
                match self.predictor.peaks().fit() {
                    Some(_) => provisional.max(self.predictor.predict(features)),
                    None if settled.iter().any(|&(s, _)| s == id) => provisional,
                    // A settled peak says little of another task's: tasks that work at a
                    // share of their peaks before they allocate look settled too (module
                    // doc, "Cold start"). Before anything finished, the plausible size;
                    // after, what the finished tasks alone say (their quantile): the
                    // provisional fit can run through nothing.
                    None if self.predictor.observed() == 0 => {
                        let floor = self.config.estimate.unwrap_or(self.plausible_cold(id));
                        provisional.map(|v| v.max(floor))
                    }
                    None => provisional.max(self.predictor.predict(features)),
                }
            }
            _ => self.predictor.predict(features),
        };
        predicted.map(|p| self.within_cap(p.max(lb)))
    }

    /// A peak to reserve, never above `--task-mem`: a task is stopped there, so memory
    /// reserved beyond it is never used (a prediction extrapolated to 3 GiB for a task
    /// capped at 1 GiB kept two others waiting for nothing).
    pub(super) fn within_cap(&self, peak: Bytes) -> Bytes {
        self.config.task_cap.map_or(peak, |cap| peak.min(cap))
    }

    /// [`Policy::within_cap`] for projected bytes.
    pub(super) fn within_cap_f(&self, bytes: f64) -> f64 {
        self.config
            .task_cap
            .map_or(bytes, |cap| bytes.min(cap.get() as f64))
    }

    /// Early in a sweep, learns the peaks of running tasks that have settled as if they had
    /// finished: a task that loads its data in a minute and then computes for an hour tells
    /// what it needs long before it ends. What finishes replaces these guesses.
    pub(super) fn learn_provisionally(&mut self, now: Duration) {
        if self.predictor.observed() >= PROVISIONAL_UNTIL {
            self.provisional = None;
            return;
        }
        let settled: Vec<(TaskId, Bytes)> = self
            .running_ids()
            .filter(|&id| {
                self.stopping(id).is_none()
                    && self.is_settled(id, now)
                    && !self.waits_to_begin(id, now)
            })
            .filter_map(|id| match &self.tasks[id] {
                TaskState::Running { peak, .. } if *peak > Bytes::ZERO => Some((id, *peak)),
                _ => None,
            })
            .collect();
        let current = self
            .provisional
            .as_ref()
            .map_or(settled.is_empty(), |(p, held)| {
                held.as_slice() == settled.as_slice() && self.provisional_is_current(p, held)
            });
        if current {
            return;
        }
        self.provisional = (!settled.is_empty()).then(|| {
            let mut model = self.predictor.clone();
            for &(id, peak) in &settled {
                let obs = Observation {
                    peak,
                    duration: None,
                    time_to_peak: None,
                    quiet: None,
                };
                model.observe(&self.specs[id].features, obs);
            }
            (model, settled)
        });
        self.refresh_running_predictions();
    }

    /// Returns true if and only if a provisional model still holds everything that finished:
    /// one built before a task finished knows less than the predictor (a late-peaking task
    /// braked at 1.7 GiB was restarted beside another after a finished one had shown
    /// 2.7 GiB, and braked again).
    fn provisional_is_current(
        &self,
        model: &predict::Predictor,
        settled: &[(TaskId, Bytes)],
    ) -> bool {
        let finished = self.predictor.observed();
        finished < PROVISIONAL_UNTIL && model.observed() == finished + settled.len()
    }

    /// The cold-start guess: the largest peak seen in this run plus the margin.
    pub(super) fn cold_guess(&self, id: TaskId) -> Bytes {
        let lb = self.aux[id].lower_bound.unwrap_or_default();
        self.within_cap(self.largest_seen.scale(1.0 + predict::MARGIN).max(lb))
    }

    /// Returns true if and only if nothing about the task's peak is known but its bound.
    pub(super) fn is_cold(&self, id: TaskId) -> bool {
        self.model_prediction(id).is_none()
    }

    /// Returns true if and only if the task's peak has not grown noticeably for a while.
    pub(super) fn is_settled(&self, id: TaskId, now: Duration) -> bool {
        // A paused task does not grow, which says nothing about its peak.
        !self.is_paused(id) && now.saturating_sub(self.facts(id).grown_at) >= SETTLE_WINDOW
    }

    /// Re-predicts running tasks after the model learned something.
    pub(super) fn refresh_running_predictions(&mut self) {
        let ids: Vec<TaskId> = self.running_ids().collect();
        for id in ids {
            let Some(p) = self.model_prediction(id) else {
                continue;
            };
            if let TaskState::Running {
                peak,
                predicted,
                facts,
                ..
            } = &mut self.tasks[id]
            {
                *predicted = p.max(*peak);
                facts.cold = false;
            }
        }
    }

    /// Emits LearnedPeak when the typical peak moved by more than 10% and 8 MiB.
    pub(super) fn note_learned(&mut self) {
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
}
