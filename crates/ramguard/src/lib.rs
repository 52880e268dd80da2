//! ramguard: makes memory-hungry parallel batch work finish.
//!
//! The crate is the shell around `ramguard-core`: [`probe`] reads facts from `/proc` and the
//! cgroup filesystems, [`commands`] holds one file per subcommand, and [`cli`] is what the
//! user typed. `main` is the whole pipeline: parse, dispatch, map the outcome to an exit code
//! (0 all done, 1 some tasks failed, 2 bad usage or input, 130 interrupted).

pub mod cli;
pub mod commands;
pub mod doctor;
pub mod executor;
pub mod journal;
pub mod logs;
pub mod probe;
pub mod render;
pub mod report_model;
pub mod settings;
pub mod slurm;
pub mod supervisor;
pub mod sweep_file;
pub mod words;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// How a command ended, folded into the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done.
    Success,
    /// The command ran, but some tasks failed.
    SomeFailed,
    /// Ctrl-C or SIGTERM stopped the command.
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::SomeFailed => ExitCode::from(1),
            Outcome::Interrupted => ExitCode::from(130),
        }
    }
}

/// Exit code for bad usage or input, and for any error that stops a command before it acts.
pub const EXIT_USAGE: u8 = 2;

/// Runs ramguard with the process's arguments.
pub fn main() -> ExitCode {
    let args = match commands::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return cli::report_clap_error(e),
    };
    match commands::dispatch(args) {
        Ok(outcome) => outcome.exit_code(),
        // `ramguard probe | head` closing the pipe early is not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let mut stderr = std::io::stderr().lock();
            // `{:#}` joins the context chain on one line: "cannot read /x: Permission denied".
            let _ = writeln!(stderr, "error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = match c.downcast_ref::<std::io::Error>() {
            Some(io) => Some(io.kind()),
            None => c
                .downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind()),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
