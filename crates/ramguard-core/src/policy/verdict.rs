//! Verdicts: how an ended attempt is classified, and whether it is requeued or failed.
//!
//! [`Policy::handle_exit`](super::Policy::handle_exit) is the one place an attempt's ending becomes
//! an [`ExitClass`](super::ExitClass) and a reason: a task ramguard stopped is judged by why it was
//! stopped, one that ended on its own by its exit status and the kernel's evidence (OOM kill, full
//! `/dev/shm`). Braked and OOM-killed tasks are requeued with their peak as lower bound; ordinary
//! failures spend `--retries` ([`recycle`](super::recycle)).

use std::time::Duration;

use super::admission::IDLE_AFTER;
use super::predict::Observation;
use super::{
    Action, BrakeWhy, Ending, Exit, ExitClass, Policy, Reason, StopReason, Stopping, TaskId,
    TaskState, NEAR_PEAK,
};
use crate::units::Bytes;

impl Policy {
    /// Feeds the end of a task's process (after the supervisor reaped it).
    pub fn handle_exit(&mut self, now: Duration, task: TaskId, exit: &Exit) {
        let Some(TaskState::Running {
            attempt,
            started,
            current,
            peak,
            brakes,
            stopping,
            facts,
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
        let (class, requeued, reason) = match stopping.map(|s| (s.reason, s.brake)) {
            Some((StopReason::Brake, cause)) => {
                // brake() always records its cause; the level is the fallback's best guess.
                let why = cause.map_or(
                    BrakeWhy::LowMemory {
                        available: self.available.unwrap_or_default(),
                        level: self.config.brake_level,
                    },
                    |c| c.why,
                );
                let why = Reason::Braked { peak, why };
                self.brake_verdict(task, ExitClass::Braked, next, brakes, peak, why)
            }
            Some((StopReason::OverCap, _)) => {
                let cap = self.config.task_cap.unwrap_or_default();
                let reason = Reason::OverCap { peak, cap };
                self.stopped_verdict(now, task, ExitClass::OverCap, next, brakes, reason)
            }
            Some((StopReason::Timeout, _)) => {
                let limit = self.config.timeout.unwrap_or_default();
                let reason = Reason::TimedOut { limit };
                self.stopped_verdict(now, task, ExitClass::TimedOut, next, brakes, reason)
            }
            Some((StopReason::MaxAge, _)) => {
                let limit = self.restarts.max_age.unwrap_or_default();
                let reason = Reason::MaxAge { limit };
                self.stopped_verdict(now, task, ExitClass::MaxAge, next, brakes, reason)
            }
            Some((StopReason::Interrupt, _)) => {
                let reason = Reason::Interrupted { during: None };
                self.fail(task, ExitClass::Interrupted, reason)
            }
            None if exit.ending == Ending::Exited { code: 0 } => {
                // Paused time is not the task's: learn what it takes to run.
                let duration = now
                    .saturating_sub(started)
                    .saturating_sub(self.paused_for(task, now));
                let time_to_peak = facts.reached(peak.scale(NEAR_PEAK)).unwrap_or(duration);
                let quiet = facts.quiet(peak);
                if quiet.0 >= IDLE_AFTER {
                    self.sleepers.quiet += 1;
                    self.sleepers.slept += u32::from(facts.slept);
                }
                let obs = Observation {
                    peak,
                    duration: Some(duration),
                    time_to_peak: Some(time_to_peak),
                    quiet: Some(quiet),
                };
                let features = self.specs[task].features.clone();
                self.predictor.observe(&features, obs);
                self.set_state(task, TaskState::Done { peak, duration });
                self.note_learned();
                self.refresh_running_predictions();
                (ExitClass::Done, false, Reason::Done)
            }
            None if exit.ending == Ending::OomKilled => {
                let why = Reason::OomKilled { peak };
                self.brake_verdict(task, ExitClass::OomKilled, next, brakes, peak, why)
            }
            None if exit.ending == Ending::ShmFull => {
                self.retry_or_fail(task, ExitClass::ShmBus, next, brakes, Reason::ShmFull)
            }
            None => {
                let (class, reason) = match exit.ending {
                    Ending::Signaled { signal } => (ExitClass::Signaled, Reason::Signal(signal)),
                    Ending::Exited { code } => (ExitClass::Failed, Reason::ExitCode(code)),
                    // Judged above; listed so a new ending cannot slip past unjudged.
                    Ending::OomKilled | Ending::ShmFull | Ending::Unknown => {
                        (ExitClass::Failed, Reason::NoStatus)
                    }
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

    /// Requeues a braked or OOM-killed task with its peak as lower bound, or fails it when it
    /// was stopped while running alone after `max_brakes`.
    pub(super) fn brake_verdict(
        &mut self,
        id: TaskId,
        class: ExitClass,
        next: u32,
        brakes: u32,
        peak: Bytes,
        why: Reason,
    ) -> (ExitClass, bool, Reason) {
        let brakes = brakes + 1;
        let lb = self.aux[id].lower_bound.unwrap_or_default().max(peak);
        self.aux[id].lower_bound = Some(lb);
        let braked_alone = matches!(
            &self.tasks[id],
            TaskState::Running { stopping: Some(Stopping { brake: Some(c), .. }), .. } if c.alone
        );
        let alone =
            braked_alone || (class == ExitClass::OomKilled && self.running_ids().all(|r| r == id));
        if alone && brakes >= self.config.max_brakes && !self.interrupted {
            let then = Box::new(why);
            return self.fail(id, class, Reason::TooBigAlone { peak, then });
        }
        if self.interrupted {
            let during = Some(Box::new(why));
            return self.fail(id, ExitClass::Interrupted, Reason::Interrupted { during });
        }
        self.requeue(id, next, brakes);
        (class, true, why)
    }

    /// Puts a task back in the queue for another attempt.
    pub(super) fn requeue(&mut self, id: TaskId, attempt: u32, brakes: u32) {
        let queued = TaskState::Queued { attempt, brakes };
        self.set_state(id, queued);
        self.recheck.push(id);
    }

    /// Marks a task failed for good.
    pub(super) fn fail(
        &mut self,
        id: TaskId,
        class: ExitClass,
        reason: Reason,
    ) -> (ExitClass, bool, Reason) {
        let failed = TaskState::Failed {
            class,
            reason: reason.clone(),
        };
        self.set_state(id, failed);
        (class, false, reason)
    }
}
