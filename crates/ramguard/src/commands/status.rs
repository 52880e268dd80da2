//! `ramguard status [SWEEP]`: a sweep's progress read from the journal — counts by state,
//! running tasks with their memory, peaks learned so far, and an ETA.
//!
//! Counts, peaks and durations cover the tasks of the sweep's latest run (`--all`: every task
//! ever run under it); a line says how many older tasks the journal keeps besides.
//!
//! It reads only (never takes the sweep lock), so it is safe while `ramguard run` is going;
//! it sees what the run has committed. The ETA is mean done-attempt duration × remaining
//! tasks ÷ jobs, where jobs is the number running now, else the sweep's `jobs` setting,
//! else 1.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::journal::display::{bytes, duration_ms, opt_bytes, table, unix_ms};
use crate::journal::read::StatusReport;
use crate::journal::{self, Journal};
use crate::Outcome;

/// Version of the `status --json` output.
pub const STATUS_SCHEMA: u32 = 1;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The sweep to show; without it, the only one or the one run last.
    #[arg(value_name = "SWEEP")]
    pub sweep: Option<String>,

    /// Print one JSON object (with a "schema" field) instead of the summary.
    #[arg(long)]
    pub json: bool,

    /// Count every task ever run under the sweep, not only those its latest run asked for.
    #[arg(long)]
    pub all: bool,

    /// The journal file [default: $RAMGUARD_JOURNAL, else ./.ramguard/journal.db].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
}

/// Shows the sweep's progress.
pub fn run(args: &StatusArgs) -> Result<Outcome> {
    let path = journal::resolve_path(args.journal.as_deref());
    let j = Journal::open_existing(&path)?;
    let sweep = j.resolve_sweep(args.sweep.as_deref())?;
    let report = j.status_scoped(&sweep, args.all)?;
    let progress = journal::progress::summarize(&j.events(sweep.id)?);
    let alive = matches!(report.supervisor, Some((_, true)));
    let leaks = crate::commands::report::running_leaks(&j, &sweep)?;
    let now = now_unix_ms();
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = to_json(&report, &path, now);
        v["progress"] = json!(progress);
        v["leaks"] = json!(leaks);
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        out.write_all(render(&report, now).as_bytes())?;
        out.write_all(journal::progress::render(&progress, alive, now).as_bytes())?;
        out.write_all(crate::commands::report::leak_lines(&leaks).as_bytes())?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The jobs figure the ETA divides by.
fn jobs(r: &StatusReport) -> u64 {
    if !r.running.is_empty() {
        return r.running.len() as u64;
    }
    r.sweep
        .settings
        .get("jobs")
        .and_then(serde_json::Value::as_u64)
        .filter(|&j| j > 0)
        .unwrap_or(1)
}

/// Estimated time to finish, in ms, when a mean duration is known and work remains.
fn eta_ms(r: &StatusReport) -> Option<u64> {
    let remaining = r.sweep.counts.remaining();
    let mean = r.mean_duration_ms?;
    (remaining > 0).then(|| mean.saturating_mul(remaining) / jobs(r))
}

/// True if the journal shows running attempts but their supervisor is gone.
fn stale(r: &StatusReport) -> bool {
    !r.running.is_empty() && !matches!(r.supervisor, Some((_, true)))
}

fn to_json(r: &StatusReport, path: &std::path::Path, now: i64) -> serde_json::Value {
    let running: Vec<_> = r
        .running
        .iter()
        .map(|t| {
            json!({
                "task": t.task, "attempt": t.attempt, "pid": t.pid,
                "started_unix_ms": t.started_unix_ms,
                "elapsed_ms": (now - t.started_unix_ms).max(0),
                "mem": t.used.or(t.pss).or(t.rss), "peak": t.peak.or(t.peak_rss),
                "rss": t.rss, "pss": t.pss, "peak_rss": t.peak_rss,
            })
        })
        .collect();
    json!({
        "schema": STATUS_SCHEMA,
        "journal": path.display().to_string(),
        "sweep": {
            "name": r.sweep.name, "fingerprint": r.sweep.fingerprint,
            "template": r.sweep.template,
            "created_unix_ms": r.sweep.created_unix_ms,
            "updated_unix_ms": r.sweep.updated_unix_ms,
        },
        "counts": r.sweep.counts,
        "counts_all": r.sweep.counts_all,
        "supervisor": r.supervisor.map(|(pid, alive)| json!({"pid": pid, "alive": alive})),
        "stale_running": stale(r),
        "running": running,
        "peaks": r.peaks,
        "learned_peak": r.learned_peak,
        "mean_duration_ms": r.mean_duration_ms,
        "eta_ms": eta_ms(r),
        "exit_classes": counts_obj(&r.classes),
        "events": counts_obj(&r.events),
    })
}

/// `[(name, n)]` as a JSON object `{name: n}`.
fn counts_obj(pairs: &[(String, u64)]) -> serde_json::Value {
    pairs
        .iter()
        .map(|(k, n)| (k.clone(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The human summary.
fn render(r: &StatusReport, now: i64) -> String {
    let c = &r.sweep.counts;
    let mut s = String::new();
    s.push_str(&format!(
        "sweep      {}  (fingerprint {}, first run {} UTC)\n",
        r.sweep.name,
        &r.sweep.fingerprint[..r.sweep.fingerprint.len().min(12)],
        unix_ms(r.sweep.created_unix_ms)
    ));
    s.push_str(&format!("command    {}\n", r.sweep.template));
    s.push_str(&format!(
        "tasks      {} total: {} done, {} failed, {} running, {} queued, {} interrupted\n",
        c.total, c.done, c.failed, c.running, c.queued, c.interrupted
    ));
    let older = r.sweep.counts_all.total.saturating_sub(c.total);
    if older > 0 {
        s.push_str(&format!(
            "           (the latest run's tasks; {older} more from earlier runs: --all)\n"
        ));
    }
    match r.supervisor {
        Some((pid, true)) => s.push_str(&format!("supervisor pid {pid} is running\n")),
        Some((pid, false)) => s.push_str(&format!(
            "supervisor none (pid {pid} is gone: rerun `ramguard run` to resume)\n"
        )),
        None => s.push_str("supervisor none\n"),
    }
    if r.peaks.count > 0 {
        s.push_str(&format!(
            "peaks      {} done: median {}, p95 {}, max {}\n",
            r.peaks.count,
            opt_bytes(r.peaks.p50),
            opt_bytes(r.peaks.p95),
            opt_bytes(r.peaks.max)
        ));
    }
    if let Some(lp) = r.learned_peak {
        s.push_str(&format!("learned    predicted peak {}\n", bytes(lp)));
    }
    if !r.classes.is_empty() {
        let parts: Vec<String> = r.classes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        s.push_str(&format!("attempts   {}\n", parts.join(", ")));
    }
    if !r.events.is_empty() {
        let parts: Vec<String> = r.events.iter().map(|(k, n)| format!("{k} {n}")).collect();
        s.push_str(&format!("events     {}\n", parts.join(", ")));
    }
    match (eta_ms(r), r.mean_duration_ms) {
        (Some(eta), Some(mean)) => s.push_str(&format!(
            "eta        ~{} ({} mean × {} remaining ÷ {} jobs)\n",
            duration_ms(eta),
            duration_ms(mean),
            c.remaining(),
            jobs(r)
        )),
        _ if c.remaining() == 0 => s.push_str("eta        nothing left to run\n"),
        _ => s.push_str("eta        unknown until a task finishes\n"),
    }
    if !r.running.is_empty() {
        if stale(r) {
            s.push_str(
                "\nrunning when ramguard stopped (they run again on the next `ramguard run`):\n",
            );
        } else {
            s.push_str("\nrunning:\n");
        }
        let header: Vec<String> = [
            "TASK", "ATTEMPT", "PID", "ELAPSED", "MEM", "RSS", "PSS", "PEAK",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect();
        let rows: Vec<Vec<String>> = r
            .running
            .iter()
            .map(|t| {
                vec![
                    t.task.clone(),
                    t.attempt.to_string(),
                    t.pid.to_string(),
                    duration_ms(u64::try_from(now - t.started_unix_ms).unwrap_or(0)),
                    // MEM and PEAK are the one measure; RSS and PSS explain it.
                    opt_bytes(t.used.or(t.pss).or(t.rss)),
                    opt_bytes(t.rss),
                    opt_bytes(t.pss),
                    opt_bytes(t.peak.or(t.peak_rss)),
                ]
            })
            .collect();
        for line in table(&header, &rows).lines() {
            s.push_str("  ");
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}
