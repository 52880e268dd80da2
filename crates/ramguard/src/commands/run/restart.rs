//! `run`'s flags for how a stopped or failed task carries on — `--recycle`, `--max-age`,
//! `--retry-on`, `--stop-signal` — and the environment that tells a task which attempt it
//! is and why the previous one ended, so that any framework (Optuna, Ray Tune, a plain
//! script) can act on it. The flags are parsed in `cli::run` and resolved in
//! `settings::restart`; the decisions are the policy's (`ramguard_core::policy::recycle`);
//! this module only names things.
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

use rustix::process::Signal;

use crate::journal::task_env::Ending;

use crate::settings::RestartSettings;

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
    fn the_previous_ending_reaches_the_next_attempt() {
        let s = RestartSettings {
            recycle: None,
            max_age: None,
            retry_on: ramguard_core::policy::recycle::RetryOn::default(),
            stop_signal: crate::cli::run::StopSignal(Signal::INT),
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
