//! One file per subcommand; [`dispatch`] routes the parsed command line to it.

pub mod probe;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::Outcome;

/// Runs the command the user asked for.
pub fn dispatch(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Probe(args) => probe::run(&args),
    }
}
