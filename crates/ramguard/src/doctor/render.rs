//! The human form of a [`Diagnosis`]: a header with the effective limit, then one compact
//! block per finding, most severe first (title line with severity and id, evidence lines
//! with the file each number came from, a `fix:` line), then what could not be told.
//!
//! Long lines are left to the terminal to wrap: evidence must stay greppable and paths
//! must stay whole.

use std::fmt::Write as _;

use super::{Diagnosis, Severity};

/// Renders the report as text.
pub fn render(d: &Diagnosis) -> String {
    let mut s = String::new();
    match &d.host {
        Some(h) => {
            let e = &h.memory.effective;
            let _ = writeln!(
                s,
                "ramguard doctor: {} — memory limit {} (from {}), {} available, {} RAM, {} usable CPU(s)",
                d.root, e.limit, e.limit_source.file, e.available, h.memory.total, h.cpus.usable
            );
        }
        None => {
            let _ = writeln!(s, "ramguard doctor: {} — memory limit unknown", d.root);
        }
    }
    let count = |sev| d.findings.iter().filter(|f| f.severity == sev).count();
    let _ = writeln!(
        s,
        "{} finding(s): {} critical, {} warn, {} info",
        d.findings.len(),
        count(Severity::Critical),
        count(Severity::Warn),
        count(Severity::Info)
    );
    for f in &d.findings {
        let _ = writeln!(s);
        let _ = writeln!(s, "{:<8} {}  {}", f.severity.as_str(), f.id, f.title);
        let width = f
            .evidence
            .iter()
            .map(|e| e.fact.chars().count())
            .max()
            .unwrap_or(0)
            .min(32);
        for e in &f.evidence {
            let _ = writeln!(
                s,
                "         {:<width$}  {}  [{}]",
                e.fact, e.value, e.source
            );
        }
        let _ = writeln!(s, "         fix: {}", f.fix);
    }
    if !d.could_not_tell.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "could not tell:");
        for u in &d.could_not_tell {
            let _ = writeln!(s, "         {}: {}", u.check, u.why);
        }
    }
    s
}
