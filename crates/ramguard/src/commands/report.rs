//! `ramguard report [SWEEP] [--html FILE] [--json]`: what happened in a sweep, why, and what
//! to change.
//!
//! Reads the journal only (safe beside a live run) and, for /dev/shm leftovers and the CPU
//! count, this host. The [`model`] gathers the figures once; the terminal form prints the key
//! figures, a memory chart and the findings; `--json` the same as one object; `--html` one
//! self-contained page (no script, no network: SVG drawn here) with the Gantt of attempts,
//! memory over time per lane against the budget, per-task timelines, peaks against each
//! numeric parameter and each kind, waste and the findings.

use crate::report_model as model;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::journal::display::{bytes, duration_ms, unix_ms};
use crate::journal::{self, Journal};
use crate::probe::{self, Root};
use crate::render::{html, terminal, text};
use crate::Outcome;

/// Version of the `report --json` output.
pub const REPORT_SCHEMA: u32 = 1;

/// What happened in a sweep and what to change: findings with fixes, key figures, charts.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The sweep; without it, the only one or the one run last.
    #[arg(value_name = "SWEEP")]
    pub sweep: Option<String>,

    /// Write one self-contained HTML page (no network, opens offline) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Print one JSON object (with a "schema" field) instead of the summary.
    #[arg(long)]
    pub json: bool,

    /// The journal file [default: $RAMGUARD_JOURNAL, else ./.ramguard/journal.db].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
}

/// Reads what `report` needs of this host; a probe failure only loses those findings.
fn host_side() -> model::HostSide {
    let root = Root::host();
    let cpus = probe::report(&root).map_or(1, |r| r.cpus.usable);
    // A leftover is a file nothing has open or mapped any more.
    let in_use = shm_in_use();
    let shm = probe::shm::files(&root)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| !in_use.contains(&f.name))
        .map(|f| (f.name, f.allocated, f.mtime, f.uid))
        .collect();
    model::HostSide {
        cpus,
        shm,
        uid: rustix::process::getuid().as_raw(),
        now_unix_ms: crate::supervisor::unix_ms(),
    }
}

/// Names of the /dev/shm files some process has open or mapped (those this user may see).
fn shm_in_use() -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return names;
    };
    let mut add = |path: &str| {
        if let Some(name) = path.strip_prefix("/dev/shm/") {
            names.insert(name.trim_end_matches(" (deleted)").to_string());
        }
    };
    for p in procs.flatten() {
        let dir = p.path();
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
            for fd in fds.flatten() {
                if let Ok(t) = std::fs::read_link(fd.path()) {
                    add(&t.to_string_lossy());
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(dir.join("maps")) {
            for line in maps.lines() {
                if let Some(i) = line.find("/dev/shm/") {
                    add(&line[i..]);
                }
            }
        }
    }
    names
}

pub fn run(args: &ReportArgs) -> Result<Outcome> {
    if let Some(p) = &args.html {
        check_writable(p)?;
    }
    let path = journal::resolve_path(args.journal.as_deref());
    let journal = Journal::open_existing(&path)?;
    let sweep = journal.resolve_sweep(args.sweep.as_deref())?;
    let m = model::build(&journal, sweep, &host_side())?;
    if let Some(p) = &args.html {
        write_atomic(p, html::report(&m).as_bytes())?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &to_json(&m))?;
        writeln!(out)?;
    } else {
        out.write_all(text(&m).as_bytes())?;
        if let Some(p) = &args.html {
            writeln!(out, "html report: {}", p.display())?;
        }
    }
    Ok(Outcome::Success)
}

/// Refuses an HTML path whose directory does not exist, before anything is read or written.
fn check_writable(p: &Path) -> Result<()> {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!(
            "cannot write {}: directory {} does not exist",
            p.display(),
            dir.display()
        );
    }
    if p.is_dir() {
        anyhow::bail!("cannot write {}: it is a directory", p.display());
    }
    Ok(())
}

/// Writes a file through a temporary beside it, so a failure leaves no half-written page.
fn write_atomic(p: &Path, data: &[u8]) -> Result<()> {
    let tmp = p.with_extension("html.tmp");
    std::fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, p).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}", p.display())
    })
}

fn to_json(m: &model::Model) -> serde_json::Value {
    json!({
        "schema": REPORT_SCHEMA,
        "sweep": m.sweep.name,
        "template": m.sweep.template,
        "counts": m.sweep.counts,
        "budget": m.budget,
        "jobs": m.jobs,
        "task_mem": m.task_cap,
        "started_unix_ms": m.t0_unix_ms,
        "span_ms": m.span_ms,
        "attempts": m.attempts.len(),
        "classes": m.classes.iter().map(|(c, n)| json!({"class": c, "attempts": n})).collect::<Vec<_>>(),
        "peak_used": m.facts.peak_used,
        "host_available_min": m.host_available.iter().flatten().min(),
        "max_running": m.lanes,
        "memory_bound_share": m.facts.memory_bound_share,
        "peaks": {
            "count": m.peaks.len(),
            "p50": model::quantile(&m.peaks, 0.5),
            "p95": model::quantile(&m.peaks, 0.95),
            "max": m.peaks.last(),
        },
        "waste": {
            "task_seconds": m.wasted_secs,
            "of_total_task_seconds": m.total_secs,
            "brakes": m.brakes.len(),
            "pauses": m.facts.task_pauses,
            "paused_ms": m.paused_ms,
            "admission_pauses": m.facts.pauses,
        },
        "kinds": m.params.iter().filter(|p| !p.by_kind.is_empty()).map(|p| json!({"param": p.name, "kinds": p.by_kind})).collect::<Vec<_>>(),
        "leaks": m.leaks,
        "findings": m.findings,
    })
}

fn text(m: &model::Model) -> String {
    let mut s = String::new();
    let c = &m.sweep.counts;
    s.push_str(&format!(
        "sweep '{}': {} tasks — {} done, {} failed, {} running, {} queued, {} interrupted\n",
        m.sweep.name, c.total, c.done, c.failed, c.running, c.queued, c.interrupted
    ));
    if m.attempts.is_empty() {
        s.push_str("nothing has run yet\n");
        return s;
    }
    s.push_str(&format!(
        "ran     {} attempts from {} over {}; at most {} at once (-j {})\n",
        m.attempts.len(),
        unix_ms(m.t0_unix_ms),
        duration_ms(m.span_ms),
        m.lanes,
        m.jobs
    ));
    let share = if m.budget.get() > 0 {
        m.facts.peak_used.get() as f64 / m.budget.get() as f64 * 100.0
    } else {
        0.0
    };
    s.push_str(&format!(
        "memory  running tasks held at most {} of the {} budget ({share:.0}%){}\n",
        m.facts.peak_used,
        m.budget,
        m.task_cap
            .map_or(String::new(), |c| format!("; --task-mem {c}"))
    ));
    if !m.peaks.is_empty() {
        s.push_str(&format!(
            "peaks   p50 {}, p95 {}, max {} (done tasks)\n",
            bytes(model::quantile(&m.peaks, 0.5).unwrap_or(0)),
            bytes(model::quantile(&m.peaks, 0.95).unwrap_or(0)),
            bytes(*m.peaks.last().unwrap_or(&0)),
        ));
    }
    for p in m.params.iter().filter(|p| !p.by_kind.is_empty()) {
        let kinds: Vec<String> = p
            .by_kind
            .iter()
            .map(|k| {
                format!(
                    "{} p50 {}, max {} ({} done)",
                    text::escape(&k.kind),
                    bytes(k.p50),
                    bytes(k.max),
                    k.done
                )
            })
            .collect();
        s.push_str(&format!(
            "kinds   {}: {}\n",
            text::escape(&p.name),
            kinds.join("; ")
        ));
    }
    s.push_str(&format!(
        "exits   {}\n",
        m.classes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s.push_str(&format!("waste   {}\n", m.waste_line()));
    for l in &m.leaks {
        s.push_str(&format!(
            "leak    {} (attempt {}{}): +{:.1} MiB/s since {}, {} at {}; {}\n",
            l.label,
            l.attempt,
            if l.running { ", running" } else { "" },
            l.leak.mib_per_sec(),
            duration_ms(l.leak.since_ms),
            l.leak.current,
            duration_ms(l.leak.at_ms),
            match l.to_cap_s {
                Some(t) => format!("reaches its cap {} later", secs(t)),
                None => format!("reaches the budget {} later", secs(l.to_budget_s)),
            }
        ));
    }
    let pts: Vec<(f64, u64)> = m
        .total_mem
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64 * m.bin_ms / 1000.0, v))
        .collect();
    s.push_str("memory of running tasks over time (dashed: the budget):\n");
    s.push_str(&terminal::chart(&pts, 60, 8, Some(m.budget)));
    if m.findings.is_empty() {
        s.push_str("findings: none — nothing to change\n");
    } else {
        s.push_str("findings:\n");
        for f in &m.findings {
            let sev = format!("{:?}", f.severity).to_lowercase();
            s.push_str(&format!("  [{sev}] {}\n", f.title));
            s.push_str(&format!("      evidence: {}\n", f.evidence));
            s.push_str(&format!("      fix: {}\n", f.fix));
        }
    }
    s
}

/// A running task whose memory keeps rising after its ramp, for `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunningLeak {
    pub task: String,
    pub attempt: u32,
    #[serde(flatten)]
    pub leak: ramguard_core::findings::Leak,
    /// Seconds from the last sample until `--task-mem` at this slope.
    pub to_cap_s: Option<f64>,
    /// Seconds from the last sample until the budget at this slope.
    pub to_budget_s: f64,
}

/// Leaks among a sweep's running attempts, from their journaled timelines.
pub fn running_leaks(
    j: &Journal,
    sweep: &crate::journal::read::SweepInfo,
) -> Result<Vec<RunningLeak>> {
    let setting = |k: &str| {
        sweep
            .settings
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .map(ramguard_core::Bytes)
    };
    let (budget, cap) = (setting("budget").unwrap_or_default(), setting("task_mem"));
    let mut out = Vec::new();
    for (id, task, attempt) in j.open_attempts(sweep.id)? {
        let pts: Vec<(u64, u64)> = j.timeline(id)?.iter().map(|s| (s.t_ms, s.held())).collect();
        if let Some(l) = ramguard_core::findings::detect_running_leak(&pts) {
            out.push(RunningLeak {
                task,
                attempt,
                leak: l,
                to_cap_s: cap.map(|c| l.time_to(c).as_secs_f64()),
                to_budget_s: l.time_to(budget).as_secs_f64(),
            });
        }
    }
    Ok(out)
}

/// `status`'s lines for leaking running tasks (empty when there are none).
pub fn leak_lines(leaks: &[RunningLeak]) -> String {
    let mut s = String::new();
    for l in leaks {
        s.push_str(&format!(
            "leaking    {} (attempt {}): +{:.1} MiB/s after its ramp, {} now; {}\n",
            l.task,
            l.attempt,
            l.leak.mib_per_sec(),
            l.leak.current,
            match l.to_cap_s {
                Some(t) => format!("reaches its cap in {}", secs(t)),
                None => format!("reaches the budget in {}", secs(l.to_budget_s)),
            }
        ));
    }
    s
}

/// Seconds as the one duration formatter writes them (`45s`, `3m05s`).
fn secs(t: f64) -> String {
    duration_ms((t.max(0.0) * 1000.0) as u64)
}
