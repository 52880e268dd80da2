//! `ramguard list`: the sweeps in the journal, with task counts by state.
//!
//! Counts are of each sweep's latest run (what `results` and `status` show by default);
//! TASKS adds `(+N)` for tasks kept from earlier runs. A sweep without `--name` is named
//! after its script (`train`, `train-2` for another command of the same script), and the
//! COMMAND column tells them apart.
//!
//! Reads only; safe while a run is going.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::journal::display::{table, unix_ms};
use crate::journal::{self, Journal};
use crate::Outcome;

/// Version of the `list --json` output.
pub const LIST_SCHEMA: u32 = 1;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print one JSON object (with a "schema" field) instead of the table.
    #[arg(long)]
    pub json: bool,

    /// The journal file [default: $RAMGUARD_JOURNAL, else ./.ramguard/journal.db].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
}

/// Lists the sweeps.
pub fn run(args: &ListArgs) -> Result<Outcome> {
    let path = journal::resolve_path(args.journal.as_deref());
    let j = Journal::open_existing(&path)?;
    let sweeps = j.sweeps()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<_> = sweeps
            .iter()
            .map(|s| {
                json!({
                    "name": s.name, "fingerprint": s.fingerprint, "template": s.template,
                    "created_unix_ms": s.created_unix_ms, "updated_unix_ms": s.updated_unix_ms,
                    "counts": s.counts,
                    "counts_all": s.counts_all,
                })
            })
            .collect();
        let v =
            json!({"schema": LIST_SCHEMA, "journal": path.display().to_string(), "sweeps": list});
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else if sweeps.is_empty() {
        writeln!(out, "no sweeps in {} yet", path.display())?;
    } else {
        let header: Vec<String> = [
            "SWEEP",
            "TASKS",
            "DONE",
            "FAILED",
            "RUNNING",
            "LEFT",
            "LAST RUN (UTC)",
            "COMMAND",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect();
        let rows: Vec<Vec<String>> = sweeps
            .iter()
            .map(|s| {
                let older = s.counts_all.total.saturating_sub(s.counts.total);
                let tasks = match older {
                    0 => s.counts.total.to_string(),
                    n => format!("{} (+{n})", s.counts.total),
                };
                vec![
                    s.name.clone(),
                    tasks,
                    s.counts.done.to_string(),
                    s.counts.failed.to_string(),
                    s.counts.running.to_string(),
                    (s.counts.queued + s.counts.interrupted).to_string(),
                    unix_ms(s.updated_unix_ms),
                    s.template.clone(),
                ]
            })
            .collect();
        out.write_all(table(&header, &rows).as_bytes())?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}
