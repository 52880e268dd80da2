//! `--recycle`, `--max-age`, `--retry-on` and `--stop-signal`, resolved over a sweep
//! file's options and checked against each other. The decisions themselves are the
//! policy's (`ramguard_core::policy::recycle`); the task environment that tells an attempt
//! how the previous one ended is `commands::run::restart`'s.

use std::time::Duration;

use anyhow::{bail, Result};
use ramguard_core::policy::recycle::{Restarts, RetryOn};
use rustix::process::Signal;

use crate::cli::run::{RestartArgs, StopSignal};
use crate::sweep_file::SweepOptions;

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

impl RestartSettings {
    /// The policy's restart rules.
    pub fn policy_restarts(&self) -> Restarts {
        Restarts::new(self.recycle, self.max_age, self.retry_on)
    }
}

/// Resolves the flags over a sweep file's options; `has_cap` says whether a `--task-mem`
/// applies, `retries` is `--retries` as resolved.
pub fn resolve(
    args: &RestartArgs,
    file: &SweepOptions,
    has_cap: bool,
    retries: u32,
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
    if let Some(on) = args.retry_on.filter(|on| !on.names().is_empty()) {
        if retries == 0 {
            bail!(
                "--retry-on {} has no effect without --retries: it only says which endings the \
                 extra attempts cover; add --retries N (e.g. --retries 1) or drop --retry-on",
                on.names().join(",")
            );
        }
    }
    Ok(RestartSettings {
        recycle: args.recycle,
        max_age: args.max_age,
        retry_on: args.retry_on.unwrap_or_default(),
        stop_signal: args.stop_signal.unwrap_or(StopSignal(Signal::TERM)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        r: RestartArgs,
    }

    #[test]
    fn a_bare_recycle_allows_the_policys_default_restarts_per_minute() {
        let t = T::try_parse_from(["t", "--recycle"]).unwrap();
        assert_eq!(
            t.r.recycle,
            Some(ramguard_core::policy::recycle::DEFAULT_RECYCLES_PER_MINUTE)
        );
        let t = T::try_parse_from(["t", "--recycle=2"]).unwrap();
        assert_eq!(t.r.recycle, Some(2));
        assert!(T::try_parse_from(["t", "--recycle=0"]).is_err());
        let t = T::try_parse_from(["t", "--max-age", "1h"]).unwrap();
        let none = SweepOptions::default();
        let e = resolve(&t.r, &none, false, 0).unwrap_err().to_string();
        assert!(e.contains("needs --recycle"), "{e}");
        let t = T::try_parse_from(["t", "--recycle"]).unwrap();
        let e = resolve(&t.r, &none, false, 0).unwrap_err().to_string();
        assert!(e.contains("--task-mem"), "{e}");
        assert!(resolve(&t.r, &none, true, 0).is_ok());
    }

    #[test]
    fn retry_on_without_retries_is_refused_not_ignored() {
        let none = SweepOptions::default();
        let t = T::try_parse_from(["t", "--retry-on", "timeout"]).unwrap();
        let e = resolve(&t.r, &none, false, 0).unwrap_err().to_string();
        assert!(
            e.contains("--retry-on timeout") && e.contains("--retries"),
            "{e}"
        );
        assert!(resolve(&t.r, &none, false, 1).is_ok());
        // `none` retries nothing, with or without --retries.
        let t = T::try_parse_from(["t", "--retry-on", "none"]).unwrap();
        assert!(resolve(&t.r, &none, false, 0).is_ok());
    }
}
