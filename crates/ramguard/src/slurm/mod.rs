//! The Slurm executor: every admitted task becomes an `sbatch` job sized from learned peaks.
//!
//! # Theory of operation
//! The same pure [`Policy`] that drives the local supervisor decides here, through the same
//! loop ([`crate::executor::drive`]), and the same journal records; only the acting
//! differs: [`cluster::Cluster`] is the executor (sbatch, scancel, sacct),
//! [`sink::SlurmSink`] journals and prints, and the two share the jobs on a
//! [`board::Board`]. A `Start` becomes an `sbatch --parsable` job whose `--mem` is the
//! predicted peak plus a margin, `Term`/`Kill` become `scancel`, and the exits fed back
//! come from Slurm's accounting plus what the job's wrapper measured:
//!
//! - **Sizing.** `--mem` = predicted × (1 + [`MEM_MARGIN`]) + the wrapper's own overhead,
//!   measured from finished jobs (the job's peak less the task's; [`DEFAULT_OVERHEAD`]
//!   until one finished). With nothing learned and no `--estimate`, the first job asks for
//!   [`COLD_REQUEST`]. `--cpus-per-task` is `--threads`; `--time` is `--timeout`, else
//!   five times the learned duration (at least ten minutes), else the partition's default.
//! - **Measuring.** Inside the job, `ramguard __job` ([`job`]) runs the task and writes its
//!   true peak (sampled fast, PSS-corrected, never below `ru_maxrss`; the job cgroup's
//!   peak where the job has one) to the job's directory on the shared filesystem. sacct's
//!   MaxRSS is sampled every 30 s and misses tmpfs, so it is not used.
//! - **Polling** ([`poll`]): one `sacct` for every job in flight per `--slurm-poll`
//!   interval (1 s while cancellations are pending), never one per job. The progress files
//!   are read every tick and fed to the policy as samples, so cold start settles as it does
//!   locally.
//! - **States.** COMPLETED/FAILED take the task's code from the wrapper. OUT_OF_MEMORY, or
//!   slurmstepd's "exceeded memory limit" (the `jobacct_gather` enforcer reports FAILED or
//!   CANCELLED) is an OOM kill: requeued with its measured peak as lower bound, so the next
//!   job asks for what it was seen to need, not a doubling. TIMEOUT is a timeout under
//!   `--timeout`; past a learned limit it is resubmitted without one. NODE_FAIL, PREEMPTED
//!   and BOOT_FAIL requeue (journaled as braked: not the task's fault, no retry spent).
//!   CANCELLED by someone else is a signal, as locally.
//! - **Ctrl-C** (SIGINT/SIGTERM): one `scancel` for all jobs in flight; they are journaled
//!   interrupted once Slurm reports them ended, and ramguard returns only when `squeue`
//!   lists none of them. A rerun resumes; jobs a submitter that died left behind are found
//!   through their directories and adopted (still running or ended meanwhile) when their
//!   task comes up, so nothing runs twice.

pub mod board;
pub mod cluster;
pub mod job;
pub mod poll;
pub mod sink;
pub mod submit;
pub mod verdict;

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ramguard_core::policy::Policy;
use ramguard_core::tasks::TaskDef;
use ramguard_core::Bytes;
use serde_json::json;

use crate::cli::run::{Progress as ProgressMode, RunArgs};
use crate::executor::RunEnd;
use crate::journal::{Journal, MemSample, SweepHandle};
use crate::settings::Settings;
use crate::Outcome;

use board::{absolute, say, Names, Shared};
use cluster::Cluster;
use sink::SlurmSink;

pub use crate::cli::run::Executor;

/// Share added to the predicted peak for `--mem`. The prediction already carries the
/// policy's 10%; this covers the enforcer's view of RSS against ramguard's. Measured on
/// the CI cluster (`tests/slurm.rs`, ~200 MiB tasks): 1.19× the true peak after warm-up.
pub const MEM_MARGIN: f64 = 0.02;
/// The wrapper's own memory, assumed until a finished job measured it.
pub const DEFAULT_OVERHEAD: Bytes = Bytes(16 << 20);
/// `--mem` for a job when nothing is known about its peak and no `--estimate` was given.
pub const COLD_REQUEST: Bytes = Bytes(1 << 30);
pub use crate::settings::DEFAULT_IN_FLIGHT;
/// Default interval between two `sacct` calls.
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);
/// The supervisor's tick: progress files read, policy asked.
pub(crate) const TICK: Duration = Duration::from_millis(200);
/// How long to wait for a finished job's `exit.json` to show on the shared filesystem.
pub(crate) const EXIT_FILE_WAIT: Duration = Duration::from_secs(10);

/// Refuses Slurm options without `--executor slurm` (before anything is written).
pub fn check_args(args: &RunArgs) -> Result<()> {
    if args.executor == Executor::Local {
        let given = [
            (args.partition.is_some(), "--partition"),
            (!args.slurm_arg.is_empty(), "--slurm-arg"),
            (args.slurm_poll.is_some(), "--slurm-poll"),
        ];
        if let Some((_, flag)) = given.iter().find(|(g, _)| *g) {
            bail!("{flag} needs --executor slurm");
        }
    } else if !args.dry_run {
        check_cluster(args.partition.as_deref())?;
        check_sbatch_args(&args.slurm_arg, args.partition.as_deref())?;
    }
    Ok(())
}

/// Lets `sbatch --test-only` judge the user's `--slurm-arg`s before anything is written.
fn check_sbatch_args(extra: &[String], partition: Option<&str>) -> Result<()> {
    if extra.is_empty() {
        return Ok(());
    }
    let mut cmd = std::process::Command::new("sbatch");
    cmd.args(["--test-only", "--wrap=true"]);
    if let Some(p) = partition {
        cmd.arg(format!("--partition={p}"));
    }
    let out = cmd
        .args(extra)
        .output()
        .context("cannot run sbatch (is Slurm installed and on PATH?)")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "sbatch refuses --slurm-arg {}: {}",
            extra.join(" "),
            err.lines().next().unwrap_or("").trim()
        );
    }
    Ok(())
}

/// Fails early, with what to do, when no Slurm answers here or the partition is unknown.
fn check_cluster(partition: Option<&str>) -> Result<()> {
    let out = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%P"])
        .output();
    let parts = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => bail!(
            "no Slurm cluster answers here (sinfo: {}); hint: run on a login node, or drop --executor slurm",
            String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").trim()
        ),
        Err(_) => bail!(
            "--executor slurm needs Slurm's commands (sbatch, sacct, squeue, scancel) on PATH; sinfo was not found"
        ),
    };
    if let Some(p) = partition {
        let known: Vec<&str> = parts
            .lines()
            .map(|l| l.trim().trim_end_matches('*'))
            .collect();
        if !known.contains(&p) {
            bail!(
                "--partition {p}: no such partition (Slurm has: {})",
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// Everything `ramguard run` prepared: the journaled sweep, its tasks, the policy.
#[derive(Debug)]
pub struct SlurmRun<'a> {
    pub args: &'a RunArgs,
    pub settings: &'a Settings,
    pub sweep: &'a str,
    pub journal_path: &'a Path,
    pub journal: Journal,
    pub handle: SweepHandle,
    pub tasks: &'a [TaskDef],
    /// Numeric features of every task of the sweep (index into `tasks`).
    pub features: &'a [Vec<f64>],
    /// Policy task id → index into `tasks`.
    pub todo: &'a [usize],
    /// Attempts of earlier runs, per policy task id.
    pub prior_attempts: Vec<u32>,
    pub policy: Policy,
    pub log_dir: &'a Path,
    /// Tasks done, and failed ones left alone, before this run.
    pub already: (usize, usize),
}

/// Runs the sweep's remaining tasks as Slurm jobs.
pub fn run(r: SlurmRun) -> Result<Outcome> {
    let root = absolute(
        &r.journal_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("slurm")
            .join(safe_name(r.sweep)),
    );
    // Like the journal's: the specs hold the tasks' environment.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .with_context(|| format!("cannot create job directory {}", root.display()))?;
    let names = Names {
        sweep: r.sweep,
        tasks: r.tasks,
        todo: r.todo,
        prior_attempts: r.prior_attempts,
        abs_log_dir: absolute(r.log_dir),
        root,
    };
    let quiet = r.args.progress == ProgressMode::None;
    let board = Shared::default();
    let mut cluster = Cluster::new(&names, r.args, r.settings, r.features, board.clone(), quiet)?;
    let mut sink = SlurmSink {
        names: &names,
        journal: r.journal,
        handle: r.handle,
        board,
        thread_env: r.settings.thread_caps.env.clone(),
        estimate: r.settings.policy.estimate,
        quiet,
        timelines_at: None,
        rows: Vec::new(),
        done: 0,
        failed: 0,
        requeued: 0,
        failures: Vec::new(),
    };
    let mut policy = r.policy;
    let total = names.tasks.len();
    let (done_before, failed_before) = r.already;
    say(
        quiet,
        &format!(
            "sweep '{}' on Slurm: {total} tasks, {} to run, up to {} jobs in flight{}",
            names.sweep,
            names.todo.len(),
            policy.config().max_jobs,
            match done_before {
                0 => String::new(),
                d => format!(" ({d} done already)"),
            }
        ),
    );
    let end = crate::executor::drive(&mut policy, &mut cluster, &mut sink)?;
    let interrupted = end == RunEnd::Interrupted;
    cluster.finish(interrupted)?;

    let done = done_before + sink.done;
    let failed = failed_before + sink.failed;
    let not_run = total.saturating_sub(done + failed);
    let ratio = sink.ratio_summary();
    if let Some(text) = ratio.get("text").and_then(|t| t.as_str()) {
        say(quiet, text);
    }
    if r.args.json {
        let summary = json!({
            "schema": 1,
            "executor": "slurm",
            "sweep": names.sweep,
            "tasks": total,
            "done": done,
            "failed": failed,
            "not_run": not_run,
            "braked": sink.requeued,
            "interrupted": interrupted,
            "journal": r.journal_path.display().to_string(),
            "slurm": { "jobs": sink.rows, "mem_ratio": ratio },
        });
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut out, &summary).map(|()| writeln!(out));
    }
    for f in sink.failures.iter().take(10) {
        say(quiet, &format!("failed {f}"));
    }
    let mut line = format!(
        "{done} of {total} done, {failed} failed, {} requeued",
        sink.requeued
    );
    if interrupted {
        line.push_str(&format!(
            "; interrupted with {not_run} not done, no job left in the queue (rerun the same command to resume)"
        ));
    }
    line.push_str(&format!("; results: ramguard results {}", names.sweep));
    say(quiet, &line);
    Ok(if interrupted {
        Outcome::Interrupted
    } else if failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Reads the wrapper's `t_ms rss pss` rows.
pub(crate) fn read_timeline(path: &Path) -> Vec<MemSample> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let t_ms = f.next()?.parse().ok()?;
            let rss = f.next()?.parse().ok()?;
            let pss = f.next().and_then(|p| p.parse().ok());
            Some(MemSample {
                t_ms,
                rss,
                pss,
                ..Default::default()
            })
        })
        .collect()
}

pub(crate) fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_rows_parse_with_and_without_pss() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tsv");
        std::fs::write(&p, "0 100 -\n250 2000 1500\ngarbage\n").unwrap();
        let rows = read_timeline(&p);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].pss, None);
        assert_eq!(rows[1].pss, Some(1500));
    }
}
