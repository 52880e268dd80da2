//! The report as one self-contained HTML page: inline CSS and SVG, no script, no fonts or
//! images to fetch, so it opens offline and makes no request. Its size is bounded by the
//! model's bins and caps, not by the number of tasks.

use std::fmt::Write as _;

use ramguard_core::Bytes;

use crate::journal::display::{duration_ms, unix_ms};
use crate::render::svg::{self, class_colour, esc};
use crate::report_model::Model;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}
.figs td:first-child{color:#666}.finding{border-left:4px solid #999;padding:6px 10px;margin:8px 0;background:#fafafa}
.finding.problem{border-color:#d62728}.finding.warning{border-color:#ff7f0e}.finding.info{border-color:#1f77b4}
.fix{color:#2a6a2a}.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
details{margin:4px 0}summary{cursor:pointer;font-size:13px}.muted{color:#777;font-size:12px}
svg text{font-family:inherit}
";

/// Renders the whole page.
pub fn report(m: &Model) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ramguard report: {}</title><style>{STYLE}</style></head><body>",
        esc(&m.sweep.name)
    );
    let c = &m.sweep.counts;
    let _ = write!(
        h,
        "<h1>ramguard report: {}</h1><div class=\"muted\">{}</div>",
        esc(&m.sweep.name),
        esc(&m.sweep.template)
    );
    // Key figures.
    h.push_str("<h2 id=\"figures\">Key figures</h2><table class=\"figs\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    };
    row(
        "tasks",
        format!(
            "{} — {} done, {} failed, {} running, {} queued, {} interrupted",
            c.total, c.done, c.failed, c.running, c.queued, c.interrupted
        ),
    );
    row(
        "attempts",
        format!(
            "{} from {} over {}",
            m.attempts.len(),
            unix_ms(m.t0_unix_ms),
            duration_ms(m.span_ms)
        ),
    );
    row(
        "settings",
        format!(
            "budget {}, -j {}, task cap {}, threads {}",
            m.budget,
            m.jobs,
            m.task_cap.map_or("none".into(), |b| b.to_string()),
            m.threads.map_or("not capped".into(), |t| t.to_string())
        ),
    );
    row(
        "memory",
        format!(
            "running tasks held at most {} at once; at most {} tasks ran at once",
            m.facts.peak_used, m.lanes
        ),
    );
    if !m.peaks.is_empty() {
        let q = |f: f64| Bytes(m.peaks[((m.peaks.len() - 1) as f64 * f).round() as usize]);
        row(
            "peaks (done)",
            format!("p50 {}, p95 {}, max {}", q(0.5), q(0.95), q(1.0)),
        );
    }
    row(
        "exit classes",
        m.classes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row("waste", m.waste_line());
    h.push_str("</table>");

    // Findings.
    h.push_str("<h2 id=\"findings\">Findings and fixes</h2>");
    if m.findings.is_empty() {
        h.push_str("<p>Nothing to change: no leak, no task near its cap, no waste.</p>");
    }
    for f in &m.findings {
        let sev = format!("{:?}", f.severity).to_lowercase();
        let _ = write!(
            h,
            "<div class=\"finding {sev}\" data-kind=\"{}\"><b>{sev}: {}</b><div>{}</div><div class=\"fix\">fix: {}</div></div>",
            f.kind,
            esc(&f.title),
            esc(&f.evidence),
            esc(&f.fix)
        );
    }
    if !m.leaks.is_empty() {
        h.push_str("<table><tr><th>leaking task</th><th>attempt</th><th>growth</th><th>since</th><th>now</th><th>reaches cap in</th><th>reaches budget in</th></tr>");
        for l in &m.leaks {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}{}</td><td>{:.1} MiB/s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&l.label),
                l.attempt,
                if l.running { " (running)" } else { "" },
                l.leak.mib_per_sec(),
                duration_ms(l.leak.since_ms),
                l.leak.current,
                l.to_cap_s.map_or("-".into(), secs),
                secs(l.to_budget_s)
            );
        }
        h.push_str("</table>");
    }

    // Gantt.
    h.push_str("<h2 id=\"timeline\">Attempts over time</h2><div class=\"legend\">");
    for class in [
        "done",
        "failed",
        "braked",
        "over_cap",
        "timed_out",
        "oom_killed",
        "shm_bus",
        "signaled",
        "interrupted",
        "running",
    ] {
        let _ = write!(
            h,
            "<span><i style=\"background:{}\"></i>{class}</span>",
            class_colour(class)
        );
    }
    h.push_str("<span><i style=\"background:#4c9a2a;opacity:.4\"></i>task paused (its bar paled)</span><span><i style=\"background:#999;opacity:.4\"></i>admission paused</span><span><i style=\"background:#d62728;width:2px\"></i>brake</span></div>");
    h.push_str(&svg::gantt(m));

    // Memory.
    h.push_str("<h2 id=\"memory-over-time\">Memory of running tasks over time</h2><p class=\"muted\">Stacked by lane (one running task per lane at a time), against the budget.</p>");
    h.push_str(&svg::memory(m));

    // Peaks against parameters.
    if !m.params.is_empty() {
        h.push_str("<h2 id=\"peaks\">Peak against each parameter</h2><p class=\"muted\">Each numeric parameter, and each one whose values name kinds (<code>--model small</code>: a column per kind). Filled: observed peak of a done task. Hollow: the prediction fitted from all of them (what ramguard would predict for that task).</p>");
        for p in &m.params {
            h.push_str(&svg::scatter(p));
        }
    }

    // Per-task timelines.
    if !m.series.is_empty() {
        let _ = write!(
            h,
            "<h2 id=\"tasks\">Per-task timelines</h2><p class=\"muted\">{} of {} attempts: leaks first, then the largest peaks and those that did not end done. Open one to see it.</p>",
            m.series.len(),
            m.attempts.len()
        );
        for s in &m.series {
            let _ = write!(
                h,
                "<details{}><summary>{} — {}, peak {}{}</summary>{}</details>",
                if s.leak.is_some() {
                    " class=\"leak\""
                } else {
                    ""
                },
                esc(&s.label),
                esc(&s.class),
                s.peak.map_or("-".into(), |p| Bytes(p).to_string()),
                s.leak.map_or(String::new(), |l| format!(
                    " — leaking {:.1} MiB/s",
                    l.mib_per_sec()
                )),
                svg::sparkline(s, m.task_cap)
            );
        }
    }
    h.push_str("<p class=\"muted\">Made by ramguard report. This page is self-contained: no script, no network.</p></body></html>\n");
    h
}

/// Seconds as the one duration formatter writes them (`45s`, `3m05s`).
fn secs(t: f64) -> String {
    duration_ms((t.max(0.0) * 1000.0) as u64)
}
