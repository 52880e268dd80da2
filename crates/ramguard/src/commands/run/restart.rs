//! `run`'s flags for how a stopped or failed task carries on — `--recycle`, `--max-age`,
//! `--retry-on`, `--stop-signal` — and the environment that tells a task which attempt it
//! is and why the previous one ended, so that any framework (Optuna, Ray Tune, a plain
//! script) can act on it. The decisions themselves are the policy's
//! (`ramguard_core::policy::recycle`); this module only parses, resolves and names things.
//!
//! # Task environment
//! Every attempt gets, besides the thread caps:
//!
//! | variable | value |
//! | --- | --- |
//! | `RAMGUARD_TASK` | the task's number in the sweep, from 1 |
//! | `RAMGUARD_ATTEMPT` | this attempt's number for the task, from 1, counting earlier runs |
//! | `RAMGUARD_RESULT` | a file where the task may write one JSON object that ramguard keeps |
//! | `RAMGUARD_PREVIOUS_END` | how the task's previous attempt ended (`braked`, `over_cap`, `max_age`, `timed_out`, `oom_killed`, `failed`, `signaled`, `shm_bus`, `interrupted`); unset on a first attempt |
//! | `RAMGUARD_PREVIOUS_REASON` | that ending in words (`used 1.2 GiB, over the per-task cap ...`) |
//! | `RAMGUARD_PREVIOUS_PEAK` | the previous attempt's peak RSS (its whole process tree), in bytes |
//! | `RAMGUARD_STOP_SIGNAL` | the signal ramguard sends first when it stops the task (`TERM`, or `--stop-signal`) |
//! | `RAMGUARD_GRACE` | seconds between that signal and SIGKILL (`--grace`) |

use std::time::Duration;

use anyhow::{bail, Result};
use ramguard_core::policy::recycle::RetryOn;
use rustix::process::Signal;

use crate::cli::parse_interval;
use crate::journal::task_env::Ending;

/// The task environment, for the end of `ramguard run --help` (the module doc's table).
pub const TASK_ENV_HELP: &str = "\
Every task's environment also holds:
  RAMGUARD_TASK             the task's number in the sweep, from 1
  RAMGUARD_ATTEMPT          this attempt's number for the task, from 1, counting earlier runs
  RAMGUARD_RESULT           a file where the task may write one JSON object that ramguard keeps
  RAMGUARD_PREVIOUS_END     how the previous attempt ended: braked, oom_killed, over_cap, max_age,
                            timed_out, failed, signaled, shm_bus, interrupted (unset at first)
  RAMGUARD_PREVIOUS_REASON  the same in words
  RAMGUARD_PREVIOUS_PEAK    the previous attempt's peak RSS (its whole process tree), in bytes
  RAMGUARD_STOP_SIGNAL      the signal ramguard sends first to stop the task (--stop-signal)
  RAMGUARD_GRACE            seconds from that signal to SIGKILL (--grace)
  OMP_NUM_THREADS and nine more thread variables (--threads)";

/// The flags, as typed.
#[derive(Debug, Clone, clap::Args)]
pub struct RestartArgs {
    /// Restart a task stopped at its cap (`--task-mem`) or age (`--max-age`) instead of
    /// failing it, as a watchdog restarts a leaking worker; restarts spend no `--retries`.
    /// N is the most restarts of one task per minute (a task that hits its cap faster is
    /// too big, not leaking, and fails) [default: 5].
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true,
          default_missing_value = "5", value_parser = clap::value_parser!(u32).range(1..))]
    pub recycle: Option<u32>,

    /// With `--recycle`: stop and restart a task once it has run for DUR (like `60m`).
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub max_age: Option<Duration>,

    /// Which endings `--retries` retries, comma-separated: failed (nonzero exit), signaled
    /// (killed by a signal ramguard did not send), over-cap, timeout, shm-bus; or none.
    /// Brakes and kernel OOM kills never count: those tasks are requeued anyway
    /// [default: failed,signaled].
    #[arg(long, value_name = "ENDINGS", value_parser = parse_retry_on)]
    pub retry_on: Option<RetryOn>,

    /// The signal that asks a task to stop (brake, cap, age, timeout, Ctrl-C); SIGKILL
    /// follows after `--grace`. `INT` makes Python raise KeyboardInterrupt, which Optuna
    /// and most frameworks record as a failed trial [default: TERM].
    #[arg(long, value_name = "SIG", value_parser = parse_stop_signal)]
    pub stop_signal: Option<StopSignal>,
}

/// A signal that may ask a task to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal(pub Signal);

impl StopSignal {
    const CHOICES: [(&'static str, Signal); 6] = [
        ("TERM", Signal::TERM),
        ("INT", Signal::INT),
        ("HUP", Signal::HUP),
        ("QUIT", Signal::QUIT),
        ("USR1", Signal::USR1),
        ("USR2", Signal::USR2),
    ];

    /// The signal's name without `SIG`.
    pub fn name(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, s)| *s == self.0)
            .map_or("TERM", |(n, _)| n)
    }

    /// The signal's number.
    pub fn number(self) -> i32 {
        self.0.as_raw()
    }
}

impl serde::Serialize for StopSignal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Parses `TERM`, `SIGINT`, `int`, `15`, ... (the signals in [`StopSignal`]'s choices).
pub fn parse_stop_signal(s: &str) -> Result<StopSignal, String> {
    let upper = s.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    StopSignal::CHOICES
        .iter()
        .find(|(n, sig)| *n == name || name.parse::<i32>().ok() == Some(sig.as_raw()))
        .map(|(_, sig)| StopSignal(*sig))
        .ok_or_else(|| {
            format!(
                "invalid stop signal '{s}': use one of {} (SIGKILL always follows after --grace)",
                StopSignal::CHOICES.map(|c| c.0).join(", ")
            )
        })
}

fn parse_retry_on(s: &str) -> Result<RetryOn, String> {
    s.parse()
}

/// The flags, resolved (recorded with the sweep's settings).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestartSettings {
    /// Restarts of one task allowed per minute; `None` when `--recycle` is off.
    pub recycle: Option<u32>,
    #[serde(serialize_with = "ser_opt_secs")]
    pub max_age: Option<Duration>,
    #[serde(serialize_with = "ser_retry_on")]
    pub retry_on: RetryOn,
    pub stop_signal: StopSignal,
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

fn ser_retry_on<S: serde::Serializer>(r: &RetryOn, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.names())
}

/// Resolves the flags over a sweep file's options; `has_cap` says whether a `--task-mem`
/// applies.
pub fn resolve(
    args: &RestartArgs,
    file: &crate::sweep_file::SweepOptions,
    has_cap: bool,
) -> Result<RestartSettings> {
    let args = RestartArgs {
        recycle: args.recycle.or(file.recycle),
        max_age: args.max_age.or(file.max_age),
        retry_on: args.retry_on.or(file.retry_on),
        stop_signal: args.stop_signal.or(file.stop_signal),
    };
    if args.max_age.is_some() && args.recycle.is_none() {
        bail!("--max-age restarts a worker at that age and needs --recycle (to fail a task that runs too long, use --timeout)");
    }
    if args.recycle.is_some() && !has_cap && args.max_age.is_none() {
        bail!("--recycle restarts a task at its cap or age: give --task-mem SIZE or --max-age DUR with it");
    }
    Ok(RestartSettings {
        recycle: args.recycle,
        max_age: args.max_age,
        retry_on: args.retry_on.unwrap_or_default(),
        stop_signal: args.stop_signal.unwrap_or(StopSignal(Signal::TERM)),
    })
}

/// The policy's restart settings.
pub fn policy_restarts(s: &RestartSettings) -> ramguard_core::policy::recycle::Restarts {
    ramguard_core::policy::recycle::Restarts::new(s.recycle, s.max_age, s.retry_on)
}

/// The variables that tell an attempt how the previous one ended and how it will be asked
/// to stop (module doc).
pub fn task_env(
    previous: Option<&Ending>,
    s: &RestartSettings,
    grace: Duration,
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "RAMGUARD_STOP_SIGNAL".to_string(),
            s.stop_signal.name().to_string(),
        ),
        (
            "RAMGUARD_GRACE".to_string(),
            format!("{}", grace.as_secs_f64()),
        ),
    ];
    if let Some(p) = previous {
        env.push(("RAMGUARD_PREVIOUS_END".into(), p.class.clone()));
        env.push(("RAMGUARD_PREVIOUS_REASON".into(), p.reason.clone()));
        if let Some(peak) = p.peak {
            env.push(("RAMGUARD_PREVIOUS_PEAK".into(), peak.to_string()));
        }
    }
    env
}

/// The `--dry-run` line for the thread caps: the values every task will see, where they
/// come from, and the warning if the family disagrees.
pub fn threads_line(s: &super::Settings) -> String {
    let exported: Vec<String> = s
        .thread_env
        .iter()
        .filter(|(k, _)| !s.thread_caps.env.iter().any(|(e, _)| e == *k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut line = match (s.threads, s.thread_env.is_empty()) {
        (None, true) => return "not capped (--no-thread-caps)".to_string(),
        (None, false) => format!(
            "not capped (--no-thread-caps); exported: {}",
            exported.join(" ")
        ),
        (Some(_), _) => format!(
            "{} in all {} thread variables (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ...){}",
            crate::journal::task_env::compact(&s.thread_env),
            s.thread_env.len(),
            if exported.is_empty() {
                String::new()
            } else {
                format!("; following your export of {}", exported.join(" "))
            }
        ),
    };
    if let Some(w) = &s.thread_caps.warning {
        line.push_str(&format!("\n           warning: {w}"));
    }
    line
}

/// The `--dry-run` line for retries, recycling and the stop signal.
pub fn restarts_line(s: &RestartSettings, retries: u32) -> String {
    let on = s.retry_on.names();
    let retry = match (retries, on.is_empty()) {
        (0, _) | (_, true) => "no retries".to_string(),
        (n, false) => format!("{n} retries on {}", on.join(",")),
    };
    let recycle = match (s.recycle, s.max_age) {
        (None, _) => "no recycling".to_string(),
        (Some(n), None) => format!("recycle at the cap, at most {n}/min"),
        (Some(n), Some(age)) => format!(
            "recycle at the cap or after {}, at most {n}/min",
            ramguard_core::units::format_duration(age)
        ),
    };
    format!(
        "{retry}; {recycle}; stop with SIG{} then KILL after the grace",
        s.stop_signal.name()
    )
}

/// Returns true if and only if an attempt that ramguard stopped died of the default stop
/// signal without handling it while running Python: a worker that runs several trials
/// (Optuna's worker mode) then leaves its current trial RUNNING.
pub fn unhandled_python_stop(argv: &[String], class: &str, signal: Option<i32>) -> bool {
    let stopped = matches!(class, "braked" | "over_cap" | "max_age" | "timed_out");
    let python = argv.iter().take(3).any(|a| {
        let base = a.rsplit('/').next().unwrap_or(a);
        base.starts_with("python") || base.ends_with(".py")
    });
    stopped && python && signal == Some(Signal::TERM.as_raw())
}

/// The hint given, once per `--repeat` run, when [`unhandled_python_stop`] holds.
pub const PYTHON_STOP_HINT: &str =
    "a Python task died of SIGTERM without handling it; a trial it was running (Optuna's \
worker mode, JournalStorage) stays RUNNING that way. Pass `--stop-signal INT` so Python raises \
KeyboardInterrupt and the framework marks the trial failed, or run one trial per process with \
its parameters given by ramguard (ask, run, tell: see examples/optuna)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_recycle_allows_the_policys_default_restarts_per_minute() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            r: RestartArgs,
        }
        let t = T::try_parse_from(["t", "--recycle"]).unwrap();
        assert_eq!(
            t.r.recycle,
            Some(ramguard_core::policy::recycle::DEFAULT_RECYCLES_PER_MINUTE)
        );
        let t = T::try_parse_from(["t", "--recycle=2"]).unwrap();
        assert_eq!(t.r.recycle, Some(2));
        assert!(T::try_parse_from(["t", "--recycle=0"]).is_err());
        let t = T::try_parse_from(["t", "--max-age", "1h"]).unwrap();
        let none = crate::sweep_file::SweepOptions::default();
        let e = resolve(&t.r, &none, false).unwrap_err().to_string();
        assert!(e.contains("needs --recycle"), "{e}");
        let t = T::try_parse_from(["t", "--recycle"]).unwrap();
        let e = resolve(&t.r, &none, false).unwrap_err().to_string();
        assert!(e.contains("--task-mem"), "{e}");
        assert!(resolve(&t.r, &none, true).is_ok());
    }

    #[test]
    fn stop_signals_parse_by_name_or_number_and_nothing_else() {
        assert_eq!(parse_stop_signal("int").unwrap().name(), "INT");
        assert_eq!(parse_stop_signal("SIGUSR1").unwrap().name(), "USR1");
        assert_eq!(parse_stop_signal("15").unwrap().name(), "TERM");
        let e = parse_stop_signal("KILL").unwrap_err();
        assert!(e.contains("'KILL'") && e.contains("TERM, INT"), "{e}");
        assert!(parse_stop_signal("STOP").is_err());
    }

    #[test]
    fn the_previous_ending_reaches_the_next_attempt() {
        let s = RestartSettings {
            recycle: None,
            max_age: None,
            retry_on: RetryOn::default(),
            stop_signal: StopSignal(Signal::INT),
        };
        let first = task_env(None, &s, Duration::from_secs(10));
        assert!(first.contains(&("RAMGUARD_STOP_SIGNAL".into(), "INT".into())));
        assert!(!first.iter().any(|(k, _)| k == "RAMGUARD_PREVIOUS_END"));
        let ending = Ending {
            class: "braked".into(),
            reason: "braked at 1 GiB".into(),
            peak: Some(1 << 30),
        };
        let next = task_env(Some(&ending), &s, Duration::from_millis(1500));
        assert!(next.contains(&("RAMGUARD_PREVIOUS_END".into(), "braked".into())));
        assert!(next.contains(&("RAMGUARD_PREVIOUS_PEAK".into(), "1073741824".into())));
        assert!(next.contains(&("RAMGUARD_GRACE".into(), "1.5".into())));
    }

    #[test]
    fn the_python_hint_needs_a_stop_by_ramguard_and_an_unhandled_term() {
        let py = vec!["python3".to_string(), "worker.py".to_string()];
        assert!(unhandled_python_stop(&py, "braked", Some(15)));
        assert!(!unhandled_python_stop(&py, "braked", Some(2)));
        assert!(!unhandled_python_stop(&py, "failed", Some(15)));
        let sh = vec!["sh".to_string(), "-c".to_string(), "x".to_string()];
        assert!(!unhandled_python_stop(&sh, "over_cap", Some(15)));
    }
}
