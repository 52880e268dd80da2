//! The `ramguard` binary: parse the command line, run one command, turn the outcome into an
//! exit code. Everything else lives in the library so integration tests can reach it.

use std::process::ExitCode;

fn main() -> ExitCode {
    ramguard::main()
}
