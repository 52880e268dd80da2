//! One file per subcommand; [`dispatch`] routes the parsed command line to it.

pub mod doctor;
pub mod list;
pub mod plan;
pub mod probe;
pub mod record;
pub mod report;
pub mod results;
pub mod run;
pub mod status;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::Outcome;

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
