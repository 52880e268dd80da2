//! When `run` journals a `progress` event (for `status`) and prints a progress line in
//! plain mode: when the reason fewer than `-j` tasks run changes, when the number of paused
//! tasks changes, and otherwise every `journal::progress::PROGRESS_EVERY_MS` (journal only).

use std::time::Duration;

use serde_json::json;

use crate::executor::Snapshot;
use crate::journal::progress::PROGRESS_EVERY_MS;

/// What was last journaled.
#[derive(Debug, Default)]
pub struct ProgressLog {
    last: Option<(Duration, Option<String>, usize)>,
}

/// A progress event due now: its detail, and a line for plain mode if something changed.
pub struct Due {
    pub detail: serde_json::Value,
    pub line: Option<String>,
}

impl ProgressLog {
    /// Returns the event due now, if any.
    pub fn due(&mut self, now: Duration, s: &Snapshot) -> Option<Due> {
        let changed = self
            .last
            .as_ref()
            .is_none_or(|(_, why, paused)| *why != s.short || *paused != s.paused);
        let every = Duration::from_millis(PROGRESS_EVERY_MS as u64);
        let stale = self
            .last
            .as_ref()
            .is_none_or(|(at, _, _)| now.saturating_sub(*at) >= every);
        if !changed && !stale {
            return None;
        }
        self.last = Some((now, s.short.clone(), s.paused));
        let eta_ms = s.eta.map(|e| e.as_millis() as u64);
        let detail = json!({
            "eta_ms": eta_ms,
            "why": s.short,
            "running": s.running,
            "paused": s.paused,
        });
        let line = changed.then(|| {
            let mut l = format!("progress {} running", s.running);
            if s.paused > 0 {
                l.push_str(&format!(" ({} paused)", s.paused));
            }
            let eta = s
                .eta
                .map_or("unknown".to_string(), ramguard_core::units::format_duration);
            l.push_str(&format!(", eta {eta}"));
            if let Some(why) = &s.short {
                l.push_str(&format!(": {why}"));
            }
            l
        });
        Some(Due { detail, line })
    }
}
