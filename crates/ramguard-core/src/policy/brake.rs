//! Stopping tasks: the brake, `--task-mem` caps, TERM then KILL.
//!
//! When available falls below `brake_level`, or the running trees hold more than the budget, the
//! newest running task that is not already stopping gets TERM (and KILL after `grace`, or at once
//! while available is below `hard_level` or once it has grown by more than
//! [`STILL_GROWING`](super::STILL_GROWING) since TERM: a task that ignores TERM must not take three
//! times the budget during the grace; the same holds for `--task-mem`). It fires once, then waits:
//! no second victim while one is still stopping; if memory is still short after the victim was
//! reaped, the next sample brakes the next newest. A braked (or kernel-OOM-killed) task is requeued
//! with its peak as lower bound without spending `--retries`; after `max_brakes` it runs alone, and
//! braked alone at that point it fails with how much it needed. `oom_score_adj` rises with start
//! order (100 + 50 × rank, at most 1000) so that the kernel, if it strikes first, picks the same
//! task the brake would.

use std::time::Duration;

use super::{
    Action, BrakeCause, BrakeWhy, Note, Policy, StopReason, Stopping, TaskId, TaskState,
    STILL_GROWING,
};
use crate::units::Bytes;

impl Policy {
    /// Sends TERM to a running task and remembers why and when.
    pub(super) fn stop(&mut self, now: Duration, id: TaskId, reason: StopReason) {
        if let TaskState::Running {
            stopping, current, ..
        } = &mut self.tasks[id]
        {
            *stopping = Some(Stopping {
                reason,
                at: now,
                held: *current,
                killed: false,
                brake: None,
            });
            self.actions.push_back(Action::Term { task: id, reason });
            // A stopped tree acts on TERM only once it runs again.
            self.resume(now, id);
        }
    }

    /// Sends TERM to a running task for the brake, and remembers the cause.
    pub(super) fn brake(&mut self, now: Duration, id: TaskId, cause: BrakeCause) {
        self.stop(now, id, StopReason::Brake);
        if let TaskState::Running {
            stopping: Some(s), ..
        } = &mut self.tasks[id]
        {
            s.brake = Some(cause);
        }
    }

    /// Returns true if and only if a task stopped for memory keeps growing after TERM: it is
    /// not shutting down, and the grace would only let it take more.
    pub(super) fn grows_after_term(&self, id: TaskId, reason: StopReason) -> bool {
        let memory = matches!(reason, StopReason::Brake | StopReason::OverCap);
        let grew = match &self.tasks[id] {
            TaskState::Running {
                current,
                stopping: Some(s),
                ..
            } => current.get() > s.held.get() + STILL_GROWING.get(),
            _ => false,
        };
        memory && grew
    }

    /// Stops tasks whose tree exceeds `--task-mem`.
    pub(super) fn check_caps(&mut self, now: Duration) {
        let Some(cap) = self.config.task_cap else {
            return;
        };
        let over: Vec<TaskId> = self
            .running_ids()
            .filter(|&id| {
                self.stopping(id).is_none()
                    && matches!(self.tasks[id], TaskState::Running { current, .. } if current > cap)
            })
            .collect();
        for id in over {
            self.stop(now, id, StopReason::OverCap);
        }
    }

    /// Fires the brake on the newest task when memory is short, once per response.
    pub(super) fn check_brake(&mut self, now: Duration, available: Bytes) {
        let running: Vec<TaskId> = self.running_ids().collect();
        let held: Bytes = running
            .iter()
            .map(|&id| match self.tasks[id] {
                TaskState::Running { current, .. } => current,
                _ => Bytes::ZERO,
            })
            .sum();
        let why = if available < self.config.brake_level {
            BrakeWhy::LowMemory {
                available,
                level: self.config.brake_level,
            }
        } else if held > self.config.budget {
            BrakeWhy::OverBudget {
                held,
                budget: self.config.budget,
            }
        } else {
            return;
        };
        // Wait for the previous victim to be reaped before judging memory again.
        if running
            .iter()
            .any(|&id| matches!(self.stopping(id), Some((StopReason::Brake, _))))
        {
            return;
        }
        let Some(victim) = running
            .iter()
            .copied()
            .filter(|&id| self.stopping(id).is_none())
            // A parked task holds little and takes nothing more: the others go first.
            .max_by_key(|&id| (!self.is_parked(id), self.facts(id).seq))
        else {
            return;
        };
        let alone = running.len() == 1;
        self.brake(
            now,
            victim,
            BrakeCause {
                why: why.clone(),
                alone,
            },
        );
        self.actions
            .push_back(Action::Note(Note::Brake { task: victim, why }));
    }
}
