//! What a running sweep's supervisor last said about its progress, and its pauses, read
//! back from the journal's events for `status`.
//!
//! `ramguard run` journals a `progress` event when the reason fewer than `-j` tasks run
//! changes, when the number of paused tasks changes, and every [`PROGRESS_EVERY_MS`]
//! otherwise: the ETA from learned durations (absent while there is no basis), the reason,
//! and how many run and are paused. Each pause and resume is a `task_paused` /
//! `task_resumed` event naming the task (the latter with how long it was paused).

use std::collections::BTreeSet;

use serde::Serialize;

use super::read::EventRow;

/// At most this long between two `progress` events while nothing else changes.
pub const PROGRESS_EVERY_MS: i64 = 30_000;

/// The sweep's progress as the journal tells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// When the last `progress` event was written.
    pub at_unix_ms: Option<i64>,
    /// Its ETA (ms from then), when the supervisor had a basis for one.
    pub eta_ms: Option<u64>,
    /// Why fewer than `-j` tasks ran then, in words.
    pub why: Option<String>,
    /// Tasks paused and not resumed since, by task key: paused now if the supervisor runs.
    pub paused_now: Vec<String>,
    /// Pauses over the sweep's life, and the time tasks spent paused in all.
    pub pauses: u64,
    pub paused_ms: u64,
}

/// Folds a sweep's events (oldest first) into its progress.
pub fn summarize(events: &[EventRow]) -> Progress {
    let mut p = Progress::default();
    let mut paused: BTreeSet<String> = BTreeSet::new();
    let key = |e: &EventRow| {
        e.detail
            .get("task")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string()
    };
    for e in events {
        match e.kind.as_str() {
            "progress" => {
                p.at_unix_ms = Some(e.unix_ms);
                p.eta_ms = e.detail.get("eta_ms").and_then(|v| v.as_u64());
                p.why = e
                    .detail
                    .get("why")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
            }
            "task_paused" => {
                p.pauses += 1;
                paused.insert(key(e));
            }
            "task_resumed" => {
                p.paused_ms += e
                    .detail
                    .get("paused_ms")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                paused.remove(&key(e));
            }
            _ => {}
        }
    }
    p.paused_now = paused.into_iter().collect();
    p
}

/// Lines for `status`: the running supervisor's ETA and reason (only while it runs), and
/// the sweep's pauses.
pub fn render(p: &Progress, supervisor_alive: bool, now_unix_ms: i64) -> String {
    let mut s = String::new();
    let ms = |v: u64| ramguard_core::units::format_duration(std::time::Duration::from_millis(v));
    if let (true, Some(at)) = (supervisor_alive, p.at_unix_ms) {
        let ago = u64::try_from(now_unix_ms - at).unwrap_or(0);
        match p.eta_ms {
            Some(eta) => s.push_str(&format!(
                "eta now    ~{} from learned durations (the running ramguard, {} ago)\n",
                ms(eta.saturating_sub(ago)),
                ms(ago)
            )),
            None => s.push_str("eta now    unknown: no durations learned yet\n"),
        }
        if let Some(why) = &p.why {
            s.push_str(&format!("why        fewer than -j run: {why}\n"));
        }
    }
    if p.pauses > 0 {
        let now = match (supervisor_alive, p.paused_now.len()) {
            (true, n) if n > 0 => format!("{n} paused now ({}); ", p.paused_now.join(", ")),
            _ => String::new(),
        };
        s.push_str(&format!(
            "paused     {now}{} pause(s), {} paused in all\n",
            p.pauses,
            ms(p.paused_ms)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev(ms: i64, kind: &str, detail: serde_json::Value) -> EventRow {
        EventRow {
            unix_ms: ms,
            kind: kind.to_string(),
            detail,
        }
    }

    #[test]
    fn pauses_resumes_and_the_last_progress_are_folded() {
        let events = [
            ev(
                1,
                "progress",
                json!({ "eta_ms": null, "why": "cold start" }),
            ),
            ev(2, "task_paused", json!({ "task": "a", "why": "x" })),
            ev(3, "task_paused", json!({ "task": "b", "why": "x" })),
            ev(4, "task_resumed", json!({ "task": "a", "paused_ms": 1500 })),
            ev(5, "progress", json!({ "eta_ms": 60000, "why": null })),
        ];
        let p = summarize(&events);
        assert_eq!(p.at_unix_ms, Some(5));
        assert_eq!(p.eta_ms, Some(60000));
        assert_eq!(p.why, None);
        assert_eq!(p.paused_now, ["b"]);
        assert_eq!((p.pauses, p.paused_ms), (2, 1500));
    }
}
