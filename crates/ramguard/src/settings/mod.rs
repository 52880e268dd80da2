//! `run`'s settings: what the user typed ([`RunArgs`], a sweep file's options) resolved
//! against the probed host. This is where `80%` becomes bytes, the reserve and brake levels
//! are placed above the host's killers, and defaults (`-j` = usable CPUs, `--grace 10s`)
//! are filled in.
//!
//! The result is ONE [`policy::Config`](Config), the very value the policy admits with,
//! plus the facts only shown or journaled (the effective limit and its source, the danger
//! line, thread caps, restart flags). Nothing is copied field by field after this: the
//! supervisor, the printer and the Slurm executor read `Settings::policy`.
//!
//! This module reads no file and starts nothing; it only checks the values and says, in
//! one `error:` line, what to change.

pub mod danger;
pub mod restart;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use ramguard_core::policy::Config;
use ramguard_core::Bytes;
use serde::Serialize;

use crate::cli::run::{Executor, RunArgs};
use crate::probe::HostReport;
use crate::supervisor::spawn::ThreadCaps;
use crate::sweep_file::SweepOptions;

pub use danger::Danger;
pub use restart::RestartSettings;

/// Jobs in flight on a Slurm cluster without `-j`.
pub const DEFAULT_IN_FLIGHT: usize = 32;

/// `--grace` when neither the command line nor the sweep file gives one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Admission pauses while PSI `full avg10` is at or above this (percent).
pub const PSI_FULL_PAUSE: f64 = 10.0;
/// Brakes of one task before it runs alone (and fails if braked alone).
pub const MAX_BRAKES: u32 = 3;

/// The settings of one run, after resolving against the host.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What the policy decides with: budget, reserve, brake and hard levels, `-j`,
    /// `--estimate`, `--task-mem`, `--timeout`, `--grace`, `--retries`.
    pub policy: Config,
    /// `--threads` as resolved; `None` with `--no-thread-caps`.
    pub threads: Option<u32>,
    /// The thread variables a task gets, and every one of them as a task sees it.
    pub thread_caps: ThreadCaps,
    /// `--recycle`, `--max-age`, `--retry-on`, `--stop-signal`.
    pub restart: RestartSettings,
    /// The effective memory limit and the file it came from.
    pub effective_limit: Bytes,
    pub limit_source: String,
    /// The danger line the levels sit above, and the host's killers.
    pub danger: Danger,
    /// True if and only if the user bounded the budget (`--mem`) or the jobs (`-j`):
    /// on a cluster only a bound the user chose applies.
    mem_given: bool,
    jobs_given: bool,
}

impl Settings {
    /// The policy's configuration for `executor`: the local one as resolved, or for a
    /// cluster, where Slurm decides where a job fits, no local budget (unless `--mem` bounds
    /// the jobs in flight together), `-j` jobs in flight ([`DEFAULT_IN_FLIGHT`] unless
    /// given), no policy timeout (Slurm's `--time` enforces it; pending time must not
    /// count) and no cap (the job's `--mem` is the cap).
    pub fn policy_for(&self, executor: Executor) -> Config {
        match executor {
            Executor::Local => self.policy.clone(),
            Executor::Slurm => Config {
                budget: if self.mem_given {
                    self.policy.budget
                } else {
                    Bytes(u64::MAX / 4)
                },
                reserve: Bytes::ZERO,
                brake_level: Bytes::ZERO,
                hard_level: Bytes::ZERO,
                max_jobs: if self.jobs_given {
                    self.policy.max_jobs
                } else {
                    DEFAULT_IN_FLIGHT
                },
                task_cap: None,
                timeout: None,
                psi_full_pause: f64::INFINITY,
                // Each memory kill asks for more by measurement; a task growing fast may
                // need a few before one job holds its whole peak.
                max_brakes: 6,
                // A job on another node cannot be paused from here (`scontrol suspend` is an
                // operator's command): its memory is braked or capped instead.
                pause: false,
                ..self.policy.clone()
            },
        }
    }

    /// Every thread variable as a task sees it.
    pub fn thread_env(&self) -> &BTreeMap<String, String> {
        &self.thread_caps.applied
    }
}

/// Resolves the options (command line over sweep file over defaults) against the probed
/// host.
pub fn resolve(args: &RunArgs, file: &SweepOptions, report: &HostReport) -> Result<Settings> {
    let limit = report.memory.effective.limit;
    let mem = args.mem.or(file.mem);
    let base = mem.map_or(limit, |m| m.resolve(limit));
    let user_reserve = args.reserve.or(file.reserve).map(|r| r.resolve(base));
    // Above every killer the host has (a watchdog's min-memory, earlyoom), or a floor.
    let danger = Danger::resolve(report, base, user_reserve);
    let levels = danger.levels;
    let budget = match mem {
        Some(m) => m.resolve(limit),
        None => limit.saturating_sub(levels.reserve),
    };
    if budget == Bytes::ZERO {
        bail!(
            "the memory budget resolves to 0 bytes (limit {limit}, reserve {}): lower --reserve or raise --mem",
            levels.reserve
        );
    }
    if budget > limit {
        bail!(
            "--mem {budget} is more than the effective memory limit {limit} (from {})",
            report.memory.effective.limit_source.file
        );
    }
    let jobs_given = args.jobs.or(file.jobs);
    let jobs = jobs_given.unwrap_or(report.cpus.usable as usize);
    if jobs == 0 {
        bail!("-j/--jobs must be at least 1");
    }
    let threads = if args.no_thread_caps {
        None
    } else {
        Some(args.threads.or(file.threads).unwrap_or(1))
    };
    if threads == Some(0) {
        bail!("--threads must be at least 1 (tasks would get OMP_NUM_THREADS=0); hint: pass --no-thread-caps to leave the variables alone");
    }
    let thread_caps =
        crate::supervisor::thread_caps(threads, args.threads.or(file.threads).is_some());
    let task_cap = args.task_mem.or(file.task_mem);
    let retries = args.retries.or(file.retries).unwrap_or(0);
    Ok(Settings {
        policy: Config {
            budget,
            reserve: levels.reserve,
            brake_level: levels.brake,
            hard_level: levels.hard,
            max_jobs: jobs,
            estimate: args.estimate.or(file.estimate),
            task_cap,
            timeout: args.timeout.or(file.timeout),
            grace: args.grace.or(file.grace).unwrap_or(DEFAULT_GRACE),
            retries,
            psi_full_pause: PSI_FULL_PAUSE,
            max_brakes: MAX_BRAKES,
            pause: !args.no_pause,
        },
        threads,
        thread_caps,
        restart: restart::resolve(&args.restart, file, task_cap.is_some(), retries)?,
        effective_limit: limit,
        limit_source: report.memory.effective.limit_source.file.clone(),
        danger,
        mem_given: mem.is_some(),
        jobs_given: jobs_given.is_some(),
    })
}

/// The settings as journaled with the sweep and shown by `--dry-run --json`. The keys are
/// a stable format (`plan` reads them back from old journals): keep them.
impl Serialize for Settings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Recorded<'a> {
            jobs: usize,
            budget: Bytes,
            reserve: Bytes,
            brake_level: Bytes,
            hard_level: Bytes,
            estimate: Option<Bytes>,
            task_mem: Option<Bytes>,
            timeout: Option<f64>,
            grace: f64,
            retries: u32,
            pause: bool,
            threads: Option<u32>,
            thread_env: &'a BTreeMap<String, String>,
            #[serde(flatten)]
            restart: &'a RestartSettings,
            effective_limit: Bytes,
            limit_source: &'a str,
            danger: &'a Danger,
        }
        let p = &self.policy;
        Recorded {
            jobs: p.max_jobs,
            budget: p.budget,
            reserve: p.reserve,
            brake_level: p.brake_level,
            hard_level: p.hard_level,
            estimate: p.estimate,
            task_mem: p.task_cap,
            timeout: p.timeout.map(|d| d.as_secs_f64()),
            grace: p.grace.as_secs_f64(),
            retries: p.retries,
            pause: p.pause,
            threads: self.threads,
            thread_env: self.thread_env(),
            restart: &self.restart,
            effective_limit: self.effective_limit,
            limit_source: &self.limit_source,
            danger: &self.danger,
        }
        .serialize(s)
    }
}

/// The policy's configuration as a sweep's journaled settings recorded it (the keys of
/// [`Settings`]'s `Serialize`), for `plan`'s replay; a key an old journal lacks takes its
/// default.
pub fn recorded_policy(recorded: &serde_json::Value) -> Config {
    let bytes = |k: &str| {
        recorded
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .map(Bytes)
    };
    let secs = |k: &str| {
        recorded
            .get(k)
            .and_then(serde_json::Value::as_f64)
            .map(Duration::from_secs_f64)
    };
    let count = |k: &str| recorded.get(k).and_then(serde_json::Value::as_u64);
    Config {
        budget: bytes("budget").unwrap_or_default(),
        reserve: bytes("reserve").unwrap_or_default(),
        brake_level: bytes("brake_level").unwrap_or_default(),
        hard_level: bytes("hard_level").unwrap_or_default(),
        max_jobs: count("jobs").unwrap_or(1).max(1) as usize,
        estimate: bytes("estimate"),
        task_cap: bytes("task_mem"),
        timeout: secs("timeout"),
        grace: secs("grace").unwrap_or(DEFAULT_GRACE),
        retries: count("retries").unwrap_or(0) as u32,
        psi_full_pause: PSI_FULL_PAUSE,
        max_brakes: MAX_BRAKES,
        pause: recorded
            .get("pause")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{self, Root};
    use clap::Parser;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    fn resolved(args: &[&str]) -> Settings {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hosts/pi4-4gb-zram-no-psi");
        let report = probe::report(&Root::at(dir).unwrap()).unwrap();
        let t = T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap();
        resolve(&t.run, &SweepOptions::default(), &report).unwrap()
    }

    #[test]
    fn mem_becomes_the_policys_budget_and_plan_reads_back_the_same_config() {
        let s = resolved(&[
            "--mem",
            "2G",
            "-j",
            "3",
            "--estimate",
            "300M",
            "--task-mem",
            "1G",
            "--timeout",
            "90s",
            "--grace",
            "2s",
            "--retries",
            "2",
        ]);
        assert_eq!(s.policy.budget, Bytes(2 << 30));
        assert_eq!(s.policy.max_jobs, 3);
        let recorded = serde_json::to_value(&s).unwrap();
        let back = recorded_policy(&recorded);
        assert_eq!(format!("{back:?}"), format!("{:?}", s.policy));
        // The journaled keys are a stable format.
        for key in [
            "budget",
            "reserve",
            "brake_level",
            "hard_level",
            "jobs",
            "task_mem",
        ] {
            assert!(recorded.get(key).is_some(), "{key}: {recorded}");
        }
    }

    #[test]
    fn a_cluster_keeps_only_the_bounds_the_user_chose() {
        let s = resolved(&["--estimate", "300M", "--task-mem", "1G"]);
        let c = s.policy_for(Executor::Slurm);
        assert_eq!(c.max_jobs, DEFAULT_IN_FLIGHT);
        assert!(c.budget > Bytes(1 << 50), "{c:?}");
        assert_eq!(
            (c.task_cap, c.timeout, c.estimate),
            (None, None, s.policy.estimate)
        );
        let s = resolved(&["--mem", "2G", "-j", "5"]);
        let c = s.policy_for(Executor::Slurm);
        assert_eq!((c.budget, c.max_jobs), (Bytes(2 << 30), 5));
    }
}
