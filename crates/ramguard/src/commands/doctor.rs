//! `ramguard doctor`: finds what on this host will hurt a memory-hungry batch (a small
//! cgroup limit, no swap, a tiny or unbounded /dev/shm, leaked segments, strict overcommit,
//! past OOM kills, daemons that kill or reboot on low memory, ...) and says how to fix each.
//!
//! The checks are in [`crate::doctor`]; this file only picks the root and the output form.
//! Findings are not failures: the command exits 0 whenever it ran.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use crate::doctor::{self, Context};
use crate::probe::Root;
use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print one JSON object (with a "schema" field) instead of the report.
    #[arg(long)]
    pub json: bool,

    /// Read the host's files under DIR instead of `/` (a captured tree); a file missing
    /// there only means the checks that need it say they could not tell.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// Runs every check and prints the findings, most severe first.
pub fn run(args: &DoctorArgs) -> Result<Outcome> {
    let (root, ctx) = match &args.root {
        Some(dir) => {
            let root = Root::at(dir)?;
            let ctx = Context::for_tree(&root);
            (root, ctx)
        }
        None => (Root::host(), Context::live()),
    };
    let diagnosis = doctor::diagnose(&root, &ctx);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &diagnosis)?;
        writeln!(out)?;
    } else {
        out.write_all(doctor::render::render(&diagnosis).as_bytes())?;
    }
    Ok(Outcome::Success)
}
