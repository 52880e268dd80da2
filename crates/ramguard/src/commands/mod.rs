//! One file per subcommand; [`Cli`] is the table of them and [`dispatch`] routes the parsed
//! command line to one.

pub mod doctor;
pub mod list;
pub mod plan;
pub mod probe;
pub mod record;
pub mod report;
pub mod results;
pub mod run;
pub mod status;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::Outcome;

/// Makes memory-hungry parallel batch work finish.
///
/// ramguard admits a task only when its predicted peak fits in memory, brakes before the
/// kernel's OOM killer strikes, journals every result so a rerun resumes, and explains what
/// happened.
#[derive(Debug, Parser)]
#[command(
    name = "ramguard",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a sweep: admit each task only when its predicted peak memory fits.
    Run(Box<crate::cli::run::RunArgs>),
    /// Show a sweep's progress: counts by state, running tasks, learned peak, ETA.
    Status(status::StatusArgs),
    /// Export one row per task: params, state, peak, duration, exit class, result.
    Results(results::ResultsArgs),
    /// List the sweeps in the journal.
    List(list::ListArgs),
    /// Find what on this machine will hurt a memory-hungry batch, and say how to fix it.
    Doctor(doctor::DoctorArgs),
    /// Show the memory this process may use and where each figure comes from.
    ///
    /// Reports the effective memory limit (the smallest of RAM and every cgroup limit from
    /// this process's cgroup up to the root), the headroom left under it, swap and zram,
    /// /dev/shm, memory pressure (PSI) and usable CPUs.
    Probe(crate::cli::ProbeArgs),
    /// Run one command and profile its process tree's memory: peak, per process, VIRT vs
    /// what is really held, /dev/shm, a chart (`--json` for the timeline).
    Record(record::RecordArgs),
    /// What happened in a sweep, why, and what to change: findings with fixes, key figures,
    /// and with `--html` one self-contained page of charts.
    Report(report::ReportArgs),
    /// Replay a recorded sweep with another budget: predicted makespan, peak, brakes and
    /// pauses, and a budget table for 4, 8, 16 and 32 GiB machines.
    Plan(plan::PlanArgs),
    /// Internal: kills a dead run's tasks (started by `ramguard run`).
    #[command(name = "__sentinel", hide = true)]
    Sentinel { nonce: String },
    /// Internal: runs one task inside a Slurm job (submitted by `ramguard run --executor slurm`).
    #[command(name = "__job", hide = true)]
    Job { spec: PathBuf },
}

/// Runs the command the user asked for.
pub fn dispatch(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Results(args) => results::run(&args),
        Command::List(args) => list::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Probe(args) => probe::run(&args),
        Command::Job { spec } => std::process::exit(crate::slurm::job::run(&spec)?.into()),
        Command::Record(args) => record::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Sentinel { nonce } => {
            crate::supervisor::sentinel::run(&nonce)?;
            Ok(Outcome::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
