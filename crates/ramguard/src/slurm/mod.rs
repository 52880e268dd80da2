//! The Slurm executor: every admitted task becomes an `sbatch` job sized from learned peaks.
//!
//! # Theory of operation
//! The same pure [`Policy`] that drives the local supervisor decides here, and the same
//! journal records; only the acting differs. A `Start` becomes an `sbatch --parsable` job
//! whose `--mem` is the predicted peak plus a margin, `Term`/`Kill` become `scancel`, and
//! the exits fed back come from Slurm's accounting plus what the job's wrapper measured:
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

pub mod job;
pub mod poll;
pub mod submit;
pub mod verdict;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ramguard_core::policy::{Action, ExitClass, Note, Policy, Sample, TaskId};
use ramguard_core::tasks::TaskDef;
use ramguard_core::units::format_duration;
use ramguard_core::Bytes;
use serde_json::json;

use crate::cli::run::{Progress as ProgressMode, RunArgs};
use crate::journal::{AttemptEnd, Journal, MemSample, SweepHandle};
use crate::render::notes::Words;
use crate::settings::Settings;
use crate::supervisor;
use crate::Outcome;

use job::{JobExit, JobSpec, Progress};
use poll::SlurmState;

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
const TICK: Duration = Duration::from_millis(200);
/// How long to wait for a finished job's `exit.json` to show on the shared filesystem.
const EXIT_FILE_WAIT: Duration = Duration::from_secs(10);

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

/// A job in flight.
#[derive(Debug)]
struct Flight {
    job: u64,
    journal_attempt: u32,
    /// The attempt number in the job's file names (an adopted job keeps its own).
    files_attempt: u32,
    attempt_id: i64,
    dir: PathBuf,
    requested: Bytes,
    time: Option<(Duration, bool)>,
    /// Models' observations when it was sized (0: a cold guess).
    learned_from: usize,
    /// Sized by a memory kill's measurement.
    escalated: bool,
    /// The last timeline row already in the journal.
    journaled_t_ms: Option<u64>,
    progress: Progress,
    /// Why ramguard cancelled it, if it did.
    cancelled: bool,
    /// When sacct first called it ended while its exit file was missing.
    ended_seen: Option<Duration>,
}

/// A job a submitter that died left in the queue, still running the task it was given.
#[derive(Debug)]
struct Leftover {
    job: u64,
    dir: PathBuf,
    files_attempt: u32,
    requested: Bytes,
}

/// A job that ended, waiting for the policy's verdict.
#[derive(Debug)]
struct Ended {
    flight: Flight,
    state: SlurmState,
    exit: Option<JobExit>,
    /// A class and reason that say more than the policy can know.
    class: Option<ExitClass>,
    reason: Option<String>,
}

/// One finished job, for the summary.
#[derive(Debug, serde::Serialize)]
struct JobRow {
    task: usize,
    attempt: u32,
    job: u64,
    state: String,
    class: String,
    requested: u64,
    peak: u64,
    job_peak: u64,
    learned_from: usize,
    /// Sized by a memory kill's measurement rather than by the model.
    escalated: bool,
}

struct Runner<'a> {
    r: SlurmRun<'a>,
    start: Instant,
    root: PathBuf,
    exe: PathBuf,
    cwd: PathBuf,
    abs_log_dir: PathBuf,
    thread_env: Vec<(String, String)>,
    flights: HashMap<TaskId, Flight>,
    ended: HashMap<TaskId, Ended>,
    /// Tasks resubmitted without a learned time limit after going past one.
    no_learned_time: Vec<bool>,
    /// What a task killed for its memory was seen to need (more than its peak when it
    /// was still growing at the kill).
    escalate: Vec<Option<Bytes>>,
    overhead: Option<Bytes>,
    /// Jobs an earlier run left running, adopted when the policy starts their task.
    adopt: HashMap<TaskId, Leftover>,
    submitted: Vec<u64>,
    /// When the jobs' timelines were last copied to the journal.
    timelines_at: Duration,
    rows: Vec<JobRow>,
    done: usize,
    failed: usize,
    requeued: usize,
    failures: Vec<String>,
    quiet: bool,
    sacct_warned: bool,
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
    let exe = std::env::current_exe().context("cannot find the ramguard binary for the jobs")?;
    let n = r.todo.len();
    let mut me = Runner {
        start: Instant::now(),
        exe,
        cwd: std::env::current_dir().context("cannot read the working directory")?,
        abs_log_dir: absolute(r.log_dir),
        thread_env: r.settings.thread_caps.env.clone(),
        flights: HashMap::new(),
        ended: HashMap::new(),
        no_learned_time: vec![false; n],
        escalate: vec![None; n],
        overhead: None,
        adopt: HashMap::new(),
        submitted: Vec::new(),
        timelines_at: Duration::ZERO,
        rows: Vec::new(),
        done: 0,
        failed: 0,
        requeued: 0,
        failures: Vec::new(),
        quiet: r.args.progress == ProgressMode::None,
        sacct_warned: false,
        root,
        r,
    };
    me.find_leftovers()?;
    let total = me.r.tasks.len();
    let (done_before, failed_before) = me.r.already;
    me.line(&format!(
        "sweep '{}' on Slurm: {total} tasks, {} to run, up to {} jobs in flight{}",
        me.r.sweep,
        n,
        me.r.policy.config().max_jobs,
        match done_before {
            0 => String::new(),
            d => format!(" ({d} done already)"),
        }
    ));
    let interrupted = me.drive()?;

    let done = done_before + me.done;
    let failed = failed_before + me.failed;
    let not_run = total.saturating_sub(done + failed);
    let ratio = me.ratio_summary();
    if let Some(text) = ratio.get("text").and_then(|t| t.as_str()) {
        me.line(text);
    }
    if me.r.args.json {
        let summary = json!({
            "schema": 1,
            "executor": "slurm",
            "sweep": me.r.sweep,
            "tasks": total,
            "done": done,
            "failed": failed,
            "not_run": not_run,
            "braked": me.requeued,
            "interrupted": interrupted,
            "journal": me.r.journal_path.display().to_string(),
            "slurm": { "jobs": me.rows, "mem_ratio": ratio },
        });
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut out, &summary).map(|()| writeln!(out));
    }
    for f in me.failures.iter().take(10) {
        me.line(&format!("failed {f}"));
    }
    let mut line = format!(
        "{done} of {total} done, {failed} failed, {} requeued",
        me.requeued
    );
    if interrupted {
        line.push_str(&format!(
            "; interrupted with {not_run} not done, no job left in the queue (rerun the same command to resume)"
        ));
    }
    line.push_str(&format!("; results: ramguard results {}", me.r.sweep));
    me.line(&line);
    Ok(if interrupted {
        Outcome::Interrupted
    } else if failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}

impl Runner<'_> {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{ts} {text}");
    }

    fn label(&self, task: TaskId) -> String {
        let i = self.r.todo[task];
        let d = &self.r.tasks[i];
        let text = if d.params.is_empty() || d.params.iter().all(|(k, _)| k == "#") {
            shell_words::join(&d.argv)
        } else {
            d.params
                .iter()
                .filter(|(k, _)| k != "#")
                .map(|(k, v)| match k.parse::<usize>() {
                    Ok(_) => v.clone(),
                    Err(_) => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!("#{} {}", i + 1, text.chars().take(60).collect::<String>())
    }

    /// Finds jobs a submitter that died left behind (their attempts were journaled
    /// interrupted): a job of its task's very command, still running or ended meanwhile, is
    /// adopted when the policy starts that task again, so no work is done twice; any other
    /// (the task list changed, or the task is done) is cancelled.
    fn find_leftovers(&mut self) -> Result<()> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.root)?.flatten() {
            let dir = entry.path();
            if dir.join("journaled").exists() {
                continue;
            }
            if let Some(id) = std::fs::read_to_string(dir.join("jobid"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
            {
                found.push((id, dir));
            }
        }
        let ids: Vec<u64> = found.iter().map(|(j, _)| *j).collect();
        let queued = poll::still_queued(&ids)?;
        let mut cancel = Vec::new();
        for (job, dir) in found {
            // One that ended meanwhile is adopted too: its result is in its directory.
            match self.adoptable(&dir) {
                Some((task, files_attempt)) if !self.adopt.contains_key(&task) => {
                    let requested = std::fs::read_to_string(dir.join("mem"))
                        .ok()
                        .and_then(|t| t.trim().parse().ok())
                        .map_or(Bytes::ZERO, Bytes);
                    self.adopt.insert(
                        task,
                        Leftover {
                            job,
                            dir,
                            files_attempt,
                            requested,
                        },
                    );
                }
                _ => {
                    let _ = std::fs::write(dir.join("journaled"), "");
                    if queued.contains(&job) {
                        cancel.push(job);
                    }
                }
            }
        }
        if !self.adopt.is_empty() {
            self.line(&format!(
                "adopting {} job(s) of an earlier run that stopped",
                self.adopt.len()
            ));
        }
        if !cancel.is_empty() {
            submit::scancel(&cancel, false)?;
            self.line(&format!(
                "cancelled {} job(s) left in the queue by an earlier run that stopped: {}",
                cancel.len(),
                cancel
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
            self.wait_gone(&cancel);
        }
        Ok(())
    }

    /// The name of task `i`'s job directories and log files: a hash of its identity, the
    /// same in every run (as the local run's logs), never its position.
    fn stem(&self, i: usize) -> String {
        crate::commands::run::logs::file_stem(self.r.sweep, &self.r.tasks[i].key)
    }

    /// The task (policy id) and attempt a leftover job directory `<stem>.<attempt>` runs, if
    /// that task is still to run here with the very command the job was given.
    fn adoptable(&self, dir: &Path) -> Option<(TaskId, u32)> {
        let name = dir.file_name()?.to_str()?;
        let (stem, a) = name.split_once('.')?;
        let a: u32 = a.parse().ok()?;
        let task = self.r.todo.iter().position(|&i| self.stem(i) == stem)?;
        let index = self.r.todo[task];
        let spec: JobSpec = read_json(&dir.join(job::SPEC))?;
        (spec.argv == self.r.tasks[index].argv).then_some((task, a))
    }

    /// Cancels leftover jobs that were never adopted (the run ended or was interrupted
    /// before their task came up).
    fn cancel_unadopted(&mut self) {
        let jobs: Vec<u64> = self.adopt.drain().map(|(_, l)| l.job).collect();
        if !jobs.is_empty() {
            let _ = submit::scancel(&jobs, false);
            self.submitted.extend(jobs);
        }
    }

    /// Waits (at most a minute) until `squeue` lists none of the jobs.
    fn wait_gone(&self, jobs: &[u64]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match poll::still_queued(jobs) {
                Ok(left) if left.is_empty() => return,
                Ok(left) => {
                    let _ = submit::scancel(&left, false);
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.line("warning: some cancelled jobs still show in squeue after a minute");
    }

    /// The loop: policy actions out, Slurm's and the wrappers' news in. Returns whether the
    /// run was interrupted.
    fn drive(&mut self) -> Result<bool> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        let poll_every = self.r.args.slurm_poll.unwrap_or(DEFAULT_POLL);
        let mut interrupted = false;
        let mut last_poll: Option<Duration> = None;
        let result = (|| -> Result<()> {
            loop {
                let now = self.now();
                if stop.load(Ordering::Relaxed) && !interrupted {
                    interrupted = true;
                    self.line(&format!(
                        "interrupted: cancelling {} job(s) in flight",
                        self.flights.len()
                    ));
                    self.r.policy.interrupt(now);
                }
                let mut cancel = Vec::new();
                let mut kill = Vec::new();
                while let Some(action) = self.r.policy.poll_action(now) {
                    match action {
                        Action::Start {
                            task,
                            attempt,
                            predicted,
                            ..
                        } => self.submit(task, attempt, predicted)?,
                        // A job on another node cannot be paused from here (`scontrol
                        // suspend` is an operator's command); memory is the job's own
                        // `--mem`, so the policy's correction is a cancel and a resubmit.
                        Action::Pause { .. } | Action::Resume { .. } => {}
                        Action::Term { task, .. } | Action::Kill { task, .. } => {
                            if let Some(f) = self.flights.get_mut(&task) {
                                let again = f.cancelled;
                                f.cancelled = true;
                                if again {
                                    kill.push(f.job)
                                } else {
                                    cancel.push(f.job)
                                }
                            }
                        }
                        Action::Finished {
                            task,
                            attempt,
                            class,
                            requeued,
                            reason,
                            peak,
                        } => self.finished(task, attempt, class, requeued, reason.words(), peak)?,
                        Action::Fail { task, reason } => {
                            self.fail_unstarted(task, &reason.words())?
                        }
                        Action::Note(note) => self.note(&note)?,
                    }
                }
                submit::scancel(&cancel, false)?;
                submit::scancel(&kill, true)?;
                self.r.journal.commit()?;
                if self.r.policy.is_finished() && self.flights.is_empty() {
                    return Ok(());
                }
                self.sample(now)?;
                let cancelling = self.flights.values().any(|f| f.cancelled);
                let every = if cancelling {
                    poll_every.min(Duration::from_secs(1))
                } else {
                    poll_every
                };
                if !self.flights.is_empty()
                    && last_poll.is_none_or(|t| now.saturating_sub(t) >= every)
                {
                    last_poll = Some(now);
                    self.poll(now)?;
                }
                std::thread::sleep(TICK);
            }
        })();
        self.cancel_unadopted();
        if let Err(e) = result {
            // Nothing of this run stays queued behind an error.
            let jobs: Vec<u64> = self.flights.values().map(|f| f.job).collect();
            let _ = submit::scancel(&jobs, false);
            self.wait_gone(&jobs);
            return Err(e);
        }
        if interrupted {
            self.wait_gone(&self.submitted);
        }
        Ok(interrupted)
    }

    /// The `--mem` to ask for a task the policy predicts at `predicted`.
    fn mem_request(&self, task: TaskId, predicted: Bytes) -> Bytes {
        let base = if predicted == Bytes::ZERO {
            self.r.settings.policy.estimate.unwrap_or(COLD_REQUEST)
        } else {
            predicted
        };
        let base = base.max(self.escalate[task].unwrap_or_default());
        let overhead = self.overhead.unwrap_or(DEFAULT_OVERHEAD);
        let mut mem = base.scale(1.0 + MEM_MARGIN).saturating_add(overhead);
        if let Some(cap) = self.r.settings.policy.task_cap {
            mem = mem.min(cap);
        }
        mem
    }

    /// The job's time limit and whether the user set it (`--timeout`) or it was learned.
    fn time_limit(&self, task: TaskId) -> Option<(Duration, bool)> {
        if let Some(t) = self.r.settings.policy.timeout {
            return Some((t, true));
        }
        if self.no_learned_time[task] {
            return None;
        }
        let features = &self.r.features[self.r.todo[task]];
        let d = self.r.policy.predictor().duration(features)?;
        Some(((d * 5).max(Duration::from_secs(600)), false))
    }

    fn submit(&mut self, task: TaskId, attempt: u32, predicted: Bytes) -> Result<()> {
        let i = self.r.todo[task];
        let n = i + 1;
        let stem = self.stem(i);
        let ja = self.r.prior_attempts[task] + attempt;
        if let Some(l) = self.adopt.remove(&task) {
            return self.adopt_job(task, ja, l);
        }
        let dir = self.root.join(format!("{stem}.{ja}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create job directory {}", dir.display()))?;
        let result = self.abs_log_dir.join(format!("{stem}.{ja}.result.json"));
        let _ = std::fs::remove_file(&result);
        let mut env = self.thread_env.clone();
        env.push(("RAMGUARD_RESULT".into(), result.display().to_string()));
        env.push(("RAMGUARD_TASK".into(), n.to_string()));
        env.push(("RAMGUARD_ATTEMPT".into(), ja.to_string()));
        let spec = JobSpec {
            argv: self.r.tasks[i].argv.clone(),
            env,
            stdout: self.abs_log_dir.join(format!("{stem}.{ja}.out")),
            stderr: self.abs_log_dir.join(format!("{stem}.{ja}.err")),
        };
        let spec_path = dir.join(job::SPEC);
        job::write_atomic(&spec_path, &serde_json::to_vec_pretty(&spec)?)?;
        let requested = self.mem_request(task, predicted);
        let time = self.time_limit(task);
        let sub = submit::Submission {
            name: format!("rg-{}-{n}", safe_name(self.r.sweep)),
            dir: dir.clone(),
            mem: requested,
            cpus: self.r.settings.threads.unwrap_or(1),
            time: time.map(|t| t.0),
            partition: self.r.args.partition.as_deref(),
            extra: &self.r.args.slurm_arg,
            chdir: &self.cwd,
            exe: &self.exe,
        };
        let job = submit::submit(&sub, &spec_path)?;
        std::fs::write(dir.join("jobid"), job.to_string())?;
        std::fs::write(dir.join("mem"), requested.get().to_string())?;
        self.submitted.push(job);
        let key = self.r.tasks[i].key.clone();
        let attempt_id =
            self.r
                .journal
                .attempt_started(&self.r.handle, &key, ja, 0, supervisor::unix_ms())?;
        self.r.journal.event(
            &self.r.handle,
            supervisor::unix_ms(),
            "slurm_submit",
            &json!({ "task": key, "attempt": ja, "job": job, "mem": requested, "predicted": predicted }),
        )?;
        // A crash right after this must find the job: durable before anything else.
        self.r.journal.commit()?;
        let learned_from = self.r.policy.predictor().observed();
        let retry = if attempt > 1 {
            format!(" (attempt {ja})")
        } else {
            String::new()
        };
        self.line(&format!(
            "submit  {}{retry}  job {job}, --mem {} ({}){}",
            self.label(task),
            submit::mem_arg(requested),
            if predicted == Bytes::ZERO {
                match self.r.settings.policy.estimate {
                    Some(_) => "--estimate".to_string(),
                    None => "nothing learned yet".to_string(),
                }
            } else {
                format!("predicted {predicted}")
            },
            time.map_or(String::new(), |(t, _)| format!(
                ", --time {}",
                submit::time_arg(t)
            ))
        ));
        self.flights.insert(
            task,
            Flight {
                job,
                journal_attempt: ja,
                files_attempt: ja,
                attempt_id,
                dir,
                requested,
                time,
                learned_from,
                escalated: self.escalate[task].is_some(),
                journaled_t_ms: None,
                progress: Progress::default(),
                cancelled: false,
                ended_seen: None,
            },
        );
        Ok(())
    }

    /// Takes over a job an earlier run left running, instead of submitting the task again.
    fn adopt_job(&mut self, task: TaskId, ja: u32, l: Leftover) -> Result<()> {
        let key = self.r.tasks[self.r.todo[task]].key.clone();
        let attempt_id =
            self.r
                .journal
                .attempt_started(&self.r.handle, &key, ja, 0, supervisor::unix_ms())?;
        self.r.journal.event(
            &self.r.handle,
            supervisor::unix_ms(),
            "slurm_adopt",
            &json!({ "task": key, "attempt": ja, "job": l.job, "mem": l.requested }),
        )?;
        self.r.journal.commit()?;
        self.submitted.push(l.job);
        self.line(&format!(
            "adopt   {}  job {} (submitted by an earlier run), --mem {}",
            self.label(task),
            l.job,
            submit::mem_arg(l.requested)
        ));
        self.flights.insert(
            task,
            Flight {
                job: l.job,
                journal_attempt: ja,
                files_attempt: l.files_attempt,
                attempt_id,
                dir: l.dir,
                requested: l.requested,
                time: None,
                learned_from: self.r.policy.predictor().observed(),
                escalated: false,
                journaled_t_ms: None,
                progress: Progress::default(),
                cancelled: false,
                ended_seen: None,
            },
        );
        Ok(())
    }

    /// Feeds what the wrappers measured so far to the policy.
    fn sample(&mut self, now: Duration) -> Result<()> {
        let mut tasks = Vec::with_capacity(self.flights.len());
        // The timelines go to the journal about once a second, so `status` shows them.
        let journal_rows = now.saturating_sub(self.timelines_at) >= Duration::from_secs(1);
        if journal_rows {
            self.timelines_at = now;
        }
        for (&task, f) in self.flights.iter_mut() {
            if let Some(p) = read_json::<Progress>(&f.dir.join(job::PROGRESS)) {
                f.progress = p;
            }
            tasks.push((task, Bytes(f.progress.current)));
            if journal_rows {
                journal_new_rows(&mut self.r.journal, f)?;
            }
        }
        let sample = Sample {
            available: Bytes(u64::MAX / 4),
            psi_full_avg10: None,
            tasks,
            shm_room_for: None,
            shm_free: None,
        };
        self.r.policy.handle_sample(now, &sample);
        Ok(())
    }

    /// One `sacct` for every job in flight; ended jobs go to the policy.
    fn poll(&mut self, now: Duration) -> Result<()> {
        let jobs: Vec<u64> = self.flights.values().map(|f| f.job).collect();
        let mut states = match poll::sacct(&jobs) {
            Ok(s) => s,
            Err(e) => {
                if !self.sacct_warned {
                    self.sacct_warned = true;
                    self.line(&format!(
                        "warning: {e:#}; falling back to squeue and the jobs' own exit files"
                    ));
                }
                HashMap::new()
            }
        };
        // Jobs accounting does not know (no slurmdbd, or it lags): one squeue for all of
        // them; one that left the queue ended as its wrapper's files say.
        let unknown: Vec<u64> = jobs
            .iter()
            .copied()
            .filter(|j| !states.contains_key(j))
            .collect();
        if !unknown.is_empty() {
            if let Ok(queued) = poll::still_queued(&unknown) {
                for f in self.flights.values() {
                    if unknown.contains(&f.job) && !queued.contains(&f.job) {
                        states.insert(f.job, gone_state(f));
                    }
                }
            }
        }
        let ids: Vec<TaskId> = self.flights.keys().copied().collect();
        for task in ids {
            let Some(f) = self.flights.get_mut(&task) else {
                continue;
            };
            let Some(st) = states.get(&f.job) else {
                continue;
            };
            if !st.state.is_terminal() {
                continue;
            }
            let exit: Option<JobExit> = read_json(&f.dir.join(job::EXIT));
            let needs_exit = matches!(st.state, SlurmState::Completed | SlurmState::Failed);
            if exit.is_none() && needs_exit {
                let seen = *f.ended_seen.get_or_insert(now);
                let slurm_err =
                    std::fs::read_to_string(f.dir.join("slurm.err")).unwrap_or_default();
                if !poll::says_memory_exceeded(&slurm_err)
                    && now.saturating_sub(seen) < EXIT_FILE_WAIT
                {
                    continue;
                }
            }
            let mut f = self.flights.remove(&task).expect("in flight");
            if let Some(p) = read_json::<Progress>(&f.dir.join(job::PROGRESS)) {
                f.progress = p;
            }
            if let Some(e) = &exit {
                f.progress = e.progress;
            }
            self.job_ended(now, task, f, st.clone(), exit);
        }
        Ok(())
    }

    /// Turns a job's end into the policy's input, keeping what only Slurm knows.
    fn job_ended(
        &mut self,
        now: Duration,
        task: TaskId,
        f: Flight,
        st: poll::JobState,
        exit: Option<JobExit>,
    ) {
        let slurm_err = std::fs::read_to_string(f.dir.join("slurm.err")).unwrap_or_default();
        let timeline = read_timeline(&f.dir.join(job::TIMELINE));
        let v = verdict::verdict(&verdict::JobEnd {
            state: &st,
            requested: f.requested,
            cancelled: f.cancelled,
            time: f.time,
            progress: f.progress,
            exit: exit.as_ref(),
            slurm_err: &slurm_err,
            timeline: &timeline,
            task_mem: self.r.settings.policy.task_cap,
        });
        if let Some(need) = v.escalate_to {
            self.escalate[task] = Some(need);
        }
        if v.drop_learned_time {
            self.no_learned_time[task] = true;
        }
        if let Some(e) = &exit {
            if e.progress.job_peak > e.progress.peak {
                let o = Bytes(e.progress.job_peak - e.progress.peak);
                self.overhead = Some(self.overhead.map_or(o, |x| x.max(o)));
            }
        }
        self.r.policy.handle_exit(now, task, &v.exit);
        self.ended.insert(
            task,
            Ended {
                flight: f,
                state: st.state,
                exit,
                class: v.class,
                reason: v.reason,
            },
        );
    }

    fn finished(
        &mut self,
        task: TaskId,
        _attempt: u32,
        class: ExitClass,
        requeued: bool,
        reason: String,
        peak: Bytes,
    ) -> Result<()> {
        let Some(mut e) = self.ended.remove(&task) else {
            return Ok(());
        };
        journal_new_rows(&mut self.r.journal, &mut e.flight)?;
        let f = &e.flight;
        // An interrupt is the policy's to name; otherwise what Slurm said wins.
        let (class, reason) = if class == ExitClass::Interrupted {
            (class, reason)
        } else {
            (e.class.unwrap_or(class), e.reason.clone().unwrap_or(reason))
        };
        let i = self.r.todo[task];
        let result = std::fs::read_to_string(self.abs_log_dir.join(format!(
            "{}.{}.result.json",
            self.stem(i),
            f.files_attempt
        )))
        .ok();
        let p = f.progress;
        let duration_ms = e.exit.as_ref().map_or(p.t_ms, |x| x.duration_ms);
        let full_reason = format!("{reason} [Slurm job {}: {}]", f.job, e.state.name());
        self.r.journal.attempt_finished(
            f.attempt_id,
            &AttemptEnd {
                ended_unix_ms: supervisor::unix_ms(),
                duration_ms,
                peak_rss: p.peak_rss,
                peak_pss: p.peak_pss,
                peak: Some(p.peak),
                peak_shm: None,
                peak_virt: None,
                shm_left: None,
                shm_removed: None,
                class: class.as_str().to_string(),
                code: e.exit.as_ref().and_then(|x| x.code),
                signal: e.exit.as_ref().and_then(|x| x.signal),
                reason: full_reason,
                requeued,
                result,
            },
        )?;
        self.r.journal.commit()?;
        let _ = std::fs::write(f.dir.join("journaled"), "");
        self.rows.push(JobRow {
            task: i + 1,
            attempt: f.journal_attempt,
            job: f.job,
            state: e.state.name().to_string(),
            class: class.as_str().to_string(),
            requested: f.requested.get(),
            peak: peak.get(),
            job_peak: p.job_peak,
            learned_from: f.learned_from,
            escalated: f.escalated,
        });
        let label = self.label(task);
        let dur = format_duration(Duration::from_millis(duration_ms));
        let verb = match (class, requeued) {
            (ExitClass::Done, _) => {
                self.done += 1;
                "done   "
            }
            (ExitClass::Interrupted, _) => "stopped",
            (_, true) => {
                self.requeued += 1;
                "requeue"
            }
            (_, false) => {
                self.failed += 1;
                self.failures
                    .push(format!("{label}: {reason} ({})", class.as_str()));
                "failed "
            }
        };
        let detail = if class == ExitClass::Done {
            let ratio = f.requested.get() as f64 / peak.get().max(1) as f64;
            format!(
                "{dur} peak {peak}, asked {} ({ratio:.2}x)",
                submit::mem_arg(f.requested)
            )
        } else {
            format!("{reason} (after {dur}, peak {peak})")
        };
        self.line(&format!("{verb} {label}  job {}  {detail}", f.job));
        Ok(())
    }

    fn fail_unstarted(&mut self, task: TaskId, reason: &str) -> Result<()> {
        let i = self.r.todo[task];
        let key = self.r.tasks[i].key.clone();
        let ja = self.r.prior_attempts[task] + 1;
        let id =
            self.r
                .journal
                .attempt_started(&self.r.handle, &key, ja, 0, supervisor::unix_ms())?;
        self.r.journal.attempt_finished(
            id,
            &AttemptEnd {
                ended_unix_ms: supervisor::unix_ms(),
                duration_ms: 0,
                peak_rss: 0,
                peak_pss: None,
                peak: None,
                peak_shm: None,
                peak_virt: None,
                shm_left: None,
                shm_removed: None,
                class: ExitClass::Failed.as_str().to_string(),
                code: None,
                signal: None,
                reason: reason.to_string(),
                requeued: false,
                result: None,
            },
        )?;
        self.failed += 1;
        let label = self.label(task);
        self.failures.push(format!("{label}: {reason}"));
        self.line(&format!("failed  {label}  {reason}"));
        Ok(())
    }

    fn note(&mut self, note: &Note) -> Result<()> {
        let (kind, detail, line) = match note {
            Note::Paused { why } => (
                "paused",
                json!({ "why": why.words() }),
                format!("pause   {}", why.words()),
            ),
            Note::Resumed => ("resumed", json!({}), "resume  submitting again".to_string()),
            Note::LearnedPeak { peak } => (
                "learned_peak",
                json!({ "peak": peak }),
                format!("learn   typical peak now {peak}"),
            ),
            Note::TaskPaused { task, why } => (
                "task_paused",
                json!({ "task": self.r.tasks[self.r.todo[*task]].key, "why": why.words() }),
                format!("wait    {}  {}", self.label(*task), why.words()),
            ),
            Note::TaskResumed { task, .. } => (
                "task_resumed",
                json!({ "task": self.r.tasks[self.r.todo[*task]].key }),
                format!("go on   {}", self.label(*task)),
            ),
            Note::Brake { task, why } => (
                "brake",
                json!({ "task": self.r.tasks[self.r.todo[*task]].key, "why": why.words() }),
                format!("cancel  {}  {}", self.label(*task), why.words()),
            ),
        };
        self.r
            .journal
            .event(&self.r.handle, supervisor::unix_ms(), kind, &detail)?;
        self.line(&line);
        Ok(())
    }

    /// Requested ÷ true peak over the jobs that finished: the sizing's cost in idle memory.
    fn ratio_summary(&self) -> serde_json::Value {
        let ratio = |r: &JobRow| r.requested as f64 / r.peak.max(1) as f64;
        let done: Vec<&JobRow> = self
            .rows
            .iter()
            .filter(|r| r.class == "done" && !r.escalated)
            .collect();
        let escalated: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.class == "done" && r.escalated)
            .map(ratio)
            .collect();
        let warm: Vec<f64> = done
            .iter()
            .filter(|r| r.learned_from >= WARMUP)
            .map(|r| ratio(r))
            .collect();
        let cold: Vec<f64> = done
            .iter()
            .filter(|r| r.learned_from < WARMUP)
            .map(|r| ratio(r))
            .collect();
        let max = |v: &[f64]| {
            v.iter()
                .copied()
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        };
        let median = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            s.get(s.len() / 2).copied()
        };
        let text = max(&warm).map(|m| {
            format!(
                "slurm: requested --mem / true peak after the first {WARMUP} tasks: median {:.2}x, max {m:.2}x over {} job(s){}",
                median(&warm).unwrap_or(m),
                warm.len(),
                max(&cold).map_or(String::new(), |c| format!(" (before: up to {c:.2}x)"))
            )
        });
        json!({
            "warmup_tasks": WARMUP,
            "after_warmup_jobs": warm.len(),
            "after_warmup_max": max(&warm),
            "after_warmup_median": median(&warm),
            "before_warmup_max": max(&cold),
            "escalated_max": max(&escalated),
            "text": text,
        })
    }
}

/// The end of a job that left the queue while accounting did not know it, read from what
/// its wrapper and slurmstepd wrote.
fn gone_state(f: &Flight) -> poll::JobState {
    let exit: Option<JobExit> = read_json(&f.dir.join(job::EXIT));
    let slurm_err = std::fs::read_to_string(f.dir.join("slurm.err")).unwrap_or_default();
    let state = match &exit {
        Some(e) if e.code == Some(0) => SlurmState::Completed,
        Some(_) => SlurmState::Failed,
        None if poll::says_memory_exceeded(&slurm_err) => SlurmState::OutOfMemory,
        None if f.cancelled => SlurmState::Cancelled,
        None => SlurmState::Other("LEFT_QUEUE".into()),
    };
    poll::JobState {
        job: f.job,
        state,
        code: exit.as_ref().and_then(|e| e.code),
        signal: exit.as_ref().and_then(|e| e.signal),
    }
}

/// Finished tasks after which a job's size counts as learned, for the ratio summary.
const WARMUP: usize = 3;

/// Copies the rows of a job's timeline that the journal does not have yet.
fn journal_new_rows(journal: &mut Journal, f: &mut Flight) -> Result<()> {
    let rows: Vec<MemSample> = read_timeline(&f.dir.join(job::TIMELINE))
        .into_iter()
        .filter(|r| f.journaled_t_ms.is_none_or(|t| r.t_ms > t))
        .collect();
    if let Some(last) = rows.last() {
        f.journaled_t_ms = Some(last.t_ms);
        journal.add_samples(f.attempt_id, &rows)?;
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Reads the wrapper's `t_ms rss pss` rows.
fn read_timeline(path: &Path) -> Vec<MemSample> {
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

fn safe_name(s: &str) -> String {
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

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
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
