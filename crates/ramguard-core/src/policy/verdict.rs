//! Verdicts: how an ended attempt is classified, and whether it is requeued or failed.
//!
//! [`Policy::handle_exit`](super::Policy::handle_exit) is the one place an attempt's ending becomes
//! an [`ExitClass`](super::ExitClass) and a reason: a task ramguard stopped is judged by why it was
//! stopped, one that ended on its own by its exit status and the kernel's evidence (OOM kill, full
//! `/dev/shm`). Braked and OOM-killed tasks are requeued with their peak as lower bound; ordinary
//! failures spend `--retries` ([`recycle`](super::recycle)).

use std::time::Duration;

use super::predict::Observation;
use super::{Action, Exit, ExitClass, Policy, StopReason, Stopping, TaskId, TaskState, NEAR_PEAK};
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
        let cause = stopping.as_ref().and_then(|s| s.brake.as_ref());
        let (class, requeued, reason) = match stopping.as_ref().map(|s| s.reason) {
            Some(StopReason::Brake) => {
                let why = format!("braked at {peak}: {}", cause.map_or("", |c| &c.why));
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
                let time_to_peak = facts
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

    /// Requeues a braked or OOM-killed task with its peak as lower bound, or fails it when it
    /// was stopped while running alone after `max_brakes`.
    pub(super) fn brake_verdict(
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
        let braked_alone = matches!(
            &self.tasks[id],
            TaskState::Running { stopping: Some(Stopping { brake: Some(c), .. }), .. } if c.alone
        );
        let alone =
            braked_alone || (class == ExitClass::OomKilled && self.running_ids().all(|r| r == id));
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
        reason: String,
    ) -> (ExitClass, bool, String) {
        let failed = TaskState::Failed {
            class,
            reason: reason.clone(),
        };
        self.set_state(id, failed);
        (class, false, reason)
    }
}
