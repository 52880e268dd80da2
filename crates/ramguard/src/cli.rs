//! What the user typed, as clap derive types. Nothing here probes the host or resolves a
//! default: values stay as written (`80%` stays a share) until a command resolves them
//! against what the probe found (ripgrep's low-level/high-level split). Nothing here
//! imports a command: commands depend on `cli`, never the other way round (the table of
//! subcommands, `commands::Cli`, lives beside the dispatch).
//!
//! Size and duration arguments are parsed here with the core's parsers, so a bad value is
//! refused before anything runs, with a message naming the value and the accepted forms.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

pub mod run;
use ramguard_core::units::{parse_duration, SizeSpec};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Print one JSON object (with a "schema" field) instead of the summary.
    #[arg(long)]
    pub json: bool,

    /// Read the host's files under DIR instead of `/` (a captured tree, for tests and for
    /// inspecting another machine's copy).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Also show what a size such as `80%`, `4G` or `1.5GiB` means on this host, as
    /// `--mem` and `--reserve` would resolve it (repeatable).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_spec)]
    pub resolve: Vec<SizeSpec>,

    /// Keep watching: print the limit, available memory and pressure every DUR (like
    /// `250ms`, `2s`) until interrupted or `--count` lines were printed.
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub watch: Option<Duration>,

    /// With `--watch`, stop after N lines.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
}

/// Parses `512M`, `2G`, `1.5GiB`, `1073741824` or `80%`.
pub fn parse_size_spec(s: &str) -> Result<SizeSpec, String> {
    s.parse::<SizeSpec>().map_err(|e| e.to_string())
}

/// Parses a duration for a polling interval; zero would spin, so it is refused.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("invalid interval '{s}': must be more than zero"));
    }
    Ok(d)
}

/// Prints a clap error the ramguard way and returns its exit code: help and version go to
/// stdout in full; a usage error is one line on stderr (what is wrong, where), exit 2.
pub fn report_clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(if e.exit_code() == 0 {
                0
            } else {
                crate::EXIT_USAGE
            })
        }
        _ => {
            let rendered = e.render().to_string();
            let first = error_line(&rendered);
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{first}");
            // Clap's own tip ("a similar argument exists") is worth keeping; usage is not.
            for line in rendered
                .lines()
                .filter(|l| l.trim_start().starts_with("tip:"))
            {
                let tip = line.trim_start().trim_start_matches("tip: ");
                // In `run`, `--` starts the task's command: clap's "use '-- -1'" is wrong.
                let tip = match run_dash_tip(tip) {
                    Some(better) => better,
                    None => tip.to_string(),
                };
                let _ = writeln!(stderr, "hint: {tip}");
            }
            ExitCode::from(crate::EXIT_USAGE)
        }
    }
}

/// The one line of a rendered clap error: its first line, with the indented list that
/// follows a line ending in ':' (the missing arguments) joined onto it.
fn error_line(rendered: &str) -> String {
    let mut lines = rendered.lines().skip_while(|l| l.trim().is_empty());
    let Some(first) = lines.next() else {
        return "error: invalid arguments".into();
    };
    if !first.trim_end().ends_with(':') {
        return first.to_string();
    }
    let listed: Vec<&str> = lines
        .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    format!("{} {}", first.trim_end(), listed.join(", "))
}

/// For `ramguard run`, a replacement for clap's "to pass '-1' as a value, use '-- -1'".
fn run_dash_tip(tip: &str) -> Option<String> {
    if std::env::args().nth(1).as_deref() != Some("run") {
        return None;
    }
    let value = tip.strip_prefix("to pass '")?.split('\'').next()?;
    tip.contains("use '-- ").then(|| {
        format!(
            "'{value}' is not a valid value there (counts, sizes and durations are not \
             negative); `--` starts the command to run"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_interval_is_refused() {
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
    }
}
