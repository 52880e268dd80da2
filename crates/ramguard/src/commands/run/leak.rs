//! Leak flags while a sweep runs: one [`LeakWatch`] per running attempt; the first time a
//! task's memory is seen to keep rising after its ramp, `run` prints one line and journals a
//! `leak` event with the slope and when, at that rate, the task reaches its cap and the
//! budget (so `status` and `report` can show it too).

use std::collections::HashMap;
use std::time::Duration;

use ramguard_core::findings::{Leak, LeakWatch};

use ramguard_core::policy::TaskId;
use ramguard_core::units::format_duration;
use ramguard_core::Bytes;
use serde_json::json;

/// The leak watches of a run's running attempts.
#[derive(Debug)]
pub struct Leaks {
    watches: HashMap<TaskId, LeakWatch>,
    budget: Bytes,
    cap: Option<Bytes>,
}

/// A leak just found: the line to print and the event's detail.
#[derive(Debug, Clone)]
pub struct Flag {
    pub line: String,
    pub detail: serde_json::Value,
}

impl Leaks {
    pub fn new(budget: Bytes, cap: Option<Bytes>) -> Leaks {
        Leaks {
            watches: HashMap::new(),
            budget,
            cap,
        }
    }

    /// Feeds one sample of a running attempt (`age` since it started); returns a flag the
    /// first time its memory is seen leaking.
    pub fn sample(&mut self, task: TaskId, age: Duration, used: Bytes) -> Option<Flag> {
        let w = self.watches.entry(task).or_default();
        let leak = w.push(age.as_millis() as u64, used.get())?;
        Some(self.flag(&leak))
    }

    /// Forgets a task's attempt (it ended); its next attempt is watched afresh.
    pub fn finished(&mut self, task: TaskId) {
        self.watches.remove(&task);
    }

    fn flag(&self, l: &Leak) -> Flag {
        let to_budget = l.time_to(self.budget);
        let to_cap = self.cap.map(|c| l.time_to(c));
        let when = match (self.cap, to_cap) {
            (Some(c), Some(t)) => format!("reaches its cap {c} in {}", format_duration(t)),
            _ => format!(
                "reaches the budget {} in {}",
                self.budget,
                format_duration(to_budget)
            ),
        };
        Flag {
            line: format!(
                "memory keeps rising after its ramp: +{:.1} MiB/s, {} now; {when}",
                l.mib_per_sec(),
                l.current
            ),
            detail: json!({
                "bytes_per_sec": l.bytes_per_sec,
                "since_ms": l.since_ms,
                "at_ms": l.at_ms,
                "current": l.current,
                "to_cap_s": to_cap.map(|t| t.as_secs_f64()),
                "to_budget_s": to_budget.as_secs_f64(),
            }),
        }
    }
}
