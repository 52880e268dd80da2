//! The Slurm executor: the policy's actions as `sbatch` and `scancel`, Slurm's news as
//! endings, behind the same [`Executor`] seam as the local supervisor.
//!
//! `spawn` submits (or adopts a job an earlier submitter left running), `stop` batches one
//! `scancel` for all jobs of a pass (sent in `wait`), `sample` reads what the jobs'
//! wrappers measured, `reap` asks `sacct` about every job in flight once per poll
//! interval and turns each ended job into an [`Exit`] through [`verdict`]. Pause and resume
//! do nothing: a job on another node cannot be paused from here, and its memory is its own
//! `--mem`. It journals nothing; the sink does, from the shared [`Board`](super::board::Board).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ramguard_core::policy::{Config, Ending, Exit, ExitClass, Policy, Sample, TaskId};
use ramguard_core::Bytes;

use super::board::{say, Ended, Flight, Names, Shared};
use super::job::{self, JobExit, JobSpec, Progress};
use super::poll::{self, SlurmState};
use super::{read_json, read_timeline, safe_name, submit, verdict};
use super::{COLD_REQUEST, DEFAULT_OVERHEAD, EXIT_FILE_WAIT, MEM_MARGIN, TICK};
use crate::cli::run::RunArgs;
use crate::executor::{Executor, Finished, Load, Sampled, Spawned, Start, Stop, Verdict};
use crate::settings::Settings;
use crate::supervisor::spawn::Launch;
use crate::supervisor::tree::TreeMemory;

/// A job a submitter that died left in the queue, still running the task it was given.
#[derive(Debug)]
struct Leftover {
    job: u64,
    dir: PathBuf,
    files_attempt: u32,
    requested: Bytes,
}

/// The Slurm executor.
#[derive(Debug)]
pub struct Cluster<'a> {
    names: &'a Names<'a>,
    args: &'a RunArgs,
    settings: &'a Settings,
    /// Numeric features of every task of the sweep (index into `tasks`).
    features: &'a [Vec<f64>],
    board: Shared,
    start: Instant,
    exe: PathBuf,
    cwd: PathBuf,
    /// Set by SIGINT/SIGTERM.
    stop: Arc<AtomicBool>,
    interrupted: bool,
    poll_every: Duration,
    last_poll: Option<Duration>,
    /// Jobs to `scancel` (and to `scancel --signal=KILL`) at the end of this pass.
    cancel: Vec<u64>,
    kill: Vec<u64>,
    /// Tasks resubmitted without a learned time limit after going past one.
    no_learned_time: Vec<bool>,
    /// What a task killed for its memory was seen to need (more than its peak when it
    /// was still growing at the kill).
    escalate: Vec<Option<Bytes>>,
    overhead: Option<Bytes>,
    /// Jobs an earlier run left running, adopted when the policy starts their task.
    adopt: HashMap<TaskId, Leftover>,
    submitted: Vec<u64>,
    quiet: bool,
    sacct_warned: bool,
}

impl<'a> Cluster<'a> {
    /// Sets up the executor and finds the jobs an earlier submitter left behind.
    pub fn new(
        names: &'a Names<'a>,
        args: &'a RunArgs,
        settings: &'a Settings,
        features: &'a [Vec<f64>],
        board: Shared,
        quiet: bool,
    ) -> Result<Cluster<'a>> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        let n = names.todo.len();
        let mut me = Cluster {
            names,
            args,
            settings,
            features,
            board,
            start: Instant::now(),
            exe: std::env::current_exe().context("cannot find the ramguard binary for the jobs")?,
            cwd: std::env::current_dir().context("cannot read the working directory")?,
            stop,
            interrupted: false,
            poll_every: args.slurm_poll.unwrap_or(super::DEFAULT_POLL),
            last_poll: None,
            cancel: Vec::new(),
            kill: Vec::new(),
            no_learned_time: vec![false; n],
            escalate: vec![None; n],
            overhead: None,
            adopt: HashMap::new(),
            submitted: Vec::new(),
            quiet,
            sacct_warned: false,
        };
        me.find_leftovers()?;
        Ok(me)
    }

    fn line(&self, text: &str) {
        say(self.quiet, text);
    }

    /// After the loop: nothing of this run stays queued (cancelled jobs are waited for
    /// until `squeue` lists none of them when the run was interrupted).
    pub fn finish(&mut self, interrupted: bool) -> Result<()> {
        self.send_cancels()?;
        self.cancel_unadopted();
        if interrupted {
            self.wait_gone(&self.submitted);
        }
        Ok(())
    }

    /// Finds jobs a submitter that died left behind (their attempts were journaled
    /// interrupted): a job of its task's very command, still running or ended meanwhile, is
    /// adopted when the policy starts that task again, so no work is done twice; any other
    /// (the task list changed, or the task is done) is cancelled.
    fn find_leftovers(&mut self) -> Result<()> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.names.root)?.flatten() {
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

    /// The task (policy id) and attempt a leftover job directory `<stem>.<attempt>` runs, if
    /// that task is still to run here with the very command the job was given.
    fn adoptable(&self, dir: &Path) -> Option<(TaskId, u32)> {
        let name = dir.file_name()?.to_str()?;
        let (stem, a) = name.split_once('.')?;
        let a: u32 = a.parse().ok()?;
        let n = self.names;
        let task = n.todo.iter().position(|&i| n.stem(i) == stem)?;
        let spec: JobSpec = read_json(&dir.join(job::SPEC))?;
        (spec.argv == n.def(task).argv).then_some((task, a))
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

    /// One `scancel` for the jobs to cancel, one for those to kill.
    fn send_cancels(&mut self) -> Result<()> {
        let (cancel, kill) = (
            std::mem::take(&mut self.cancel),
            std::mem::take(&mut self.kill),
        );
        submit::scancel(&cancel, false)?;
        submit::scancel(&kill, true)
    }

    /// The `--mem` to ask for a task the policy predicts at `predicted`.
    fn mem_request(&self, task: TaskId, predicted: Bytes) -> Bytes {
        let base = if predicted == Bytes::ZERO {
            self.settings.policy.estimate.unwrap_or(COLD_REQUEST)
        } else {
            predicted
        };
        let base = base.max(self.escalate[task].unwrap_or_default());
        let overhead = self.overhead.unwrap_or(DEFAULT_OVERHEAD);
        let mut mem = base.scale(1.0 + MEM_MARGIN).saturating_add(overhead);
        if let Some(cap) = self.settings.policy.task_cap {
            mem = mem.min(cap);
        }
        mem
    }

    /// The job's time limit and whether the user set it (`--timeout`) or it was learned.
    fn time_limit(&self, task: TaskId, policy: &Policy) -> Option<(Duration, bool)> {
        if let Some(t) = self.settings.policy.timeout {
            return Some((t, true));
        }
        if self.no_learned_time[task] {
            return None;
        }
        let features = &self.features[self.names.todo[task]];
        let d = policy.predictor().duration(features)?;
        Some(((d * 5).max(Duration::from_secs(600)), false))
    }

    fn submit(&mut self, s: &Start<'_>, launch: Launch) -> Result<u64> {
        let (task, n) = (s.task, self.names.todo[s.task] + 1);
        let ja = self.names.journal_attempt(task, s.attempt);
        let dir = self.names.job_dir(task, ja);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create job directory {}", dir.display()))?;
        let _ = std::fs::remove_file(self.names.result(task, ja));
        let spec = JobSpec {
            argv: launch.argv,
            env: launch.env,
            stdout: self.names.log(task, ja, "out"),
            stderr: self.names.log(task, ja, "err"),
        };
        let spec_path = dir.join(job::SPEC);
        job::write_atomic(&spec_path, &serde_json::to_vec_pretty(&spec)?)?;
        let requested = self.mem_request(task, s.predicted);
        let time = self.time_limit(task, s.policy);
        let sub = submit::Submission {
            name: format!("rg-{}-{n}", safe_name(self.names.sweep)),
            dir: dir.clone(),
            mem: requested,
            cpus: self.settings.threads.unwrap_or(1),
            time: time.map(|t| t.0),
            partition: self.args.partition.as_deref(),
            extra: &self.args.slurm_arg,
            chdir: &self.cwd,
            exe: &self.exe,
        };
        let job = submit::submit(&sub, &spec_path)?;
        std::fs::write(dir.join("jobid"), job.to_string())?;
        std::fs::write(dir.join("mem"), requested.get().to_string())?;
        self.submitted.push(job);
        self.board.borrow_mut().flights.insert(
            task,
            Flight {
                job,
                journal_attempt: ja,
                files_attempt: ja,
                dir,
                requested,
                time,
                learned_from: s.policy.predictor().observed(),
                escalated: self.escalate[task].is_some(),
                ..Flight::default()
            },
        );
        Ok(job)
    }

    /// Takes over a job an earlier run left running, instead of submitting the task again.
    fn adopt_job(&mut self, s: &Start<'_>, l: Leftover) -> u64 {
        self.submitted.push(l.job);
        self.board.borrow_mut().flights.insert(
            s.task,
            Flight {
                job: l.job,
                journal_attempt: self.names.journal_attempt(s.task, s.attempt),
                files_attempt: l.files_attempt,
                dir: l.dir,
                requested: l.requested,
                learned_from: s.policy.predictor().observed(),
                adopted: true,
                ..Flight::default()
            },
        );
        l.job
    }

    /// One `sacct` for every job in flight; ended jobs' endings for the policy.
    fn poll(&mut self, now: Duration) -> Result<Vec<(TaskId, Exit)>> {
        let jobs: Vec<u64> = self
            .board
            .borrow()
            .flights
            .values()
            .map(|f| f.job)
            .collect();
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
                for f in self.board.borrow().flights.values() {
                    if unknown.contains(&f.job) && !queued.contains(&f.job) {
                        states.insert(f.job, gone_state(f));
                    }
                }
            }
        }
        let mut ended = Vec::new();
        let ids: Vec<TaskId> = self.board.borrow().flights.keys().copied().collect();
        for task in ids {
            let mut board = self.board.borrow_mut();
            let Some(f) = board.flights.get_mut(&task) else {
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
            let mut f = board.flights.remove(&task).expect("in flight");
            drop(board);
            if let Some(p) = read_json::<Progress>(&f.dir.join(job::PROGRESS)) {
                f.progress = p;
            }
            if let Some(e) = &exit {
                f.progress = e.progress;
            }
            ended.push((task, self.job_ended(task, f, st.clone(), exit)));
        }
        Ok(ended)
    }

    /// Turns a job's end into the policy's input, keeping what only Slurm knows.
    fn job_ended(
        &mut self,
        task: TaskId,
        f: Flight,
        st: poll::JobState,
        exit: Option<JobExit>,
    ) -> Exit {
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
            task_mem: self.settings.policy.task_cap,
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
        self.board.borrow_mut().ended.insert(
            task,
            Ended {
                flight: f,
                state: st.state,
                exit,
                class: v.class,
                reason: v.reason,
            },
        );
        v.exit
    }
}

impl Executor for Cluster<'_> {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn interrupts(&mut self) -> usize {
        if self.stop.load(Ordering::Relaxed) && !self.interrupted {
            self.interrupted = true;
            self.line(&format!(
                "interrupted: cancelling {} job(s) in flight",
                self.board.borrow().flights.len()
            ));
        }
        usize::from(self.interrupted)
    }

    fn spawn(&mut self, _now: Duration, start: &Start<'_>, launch: Launch) -> Result<Spawned> {
        let job = match self.adopt.remove(&start.task) {
            Some(l) => self.adopt_job(start, l),
            None => self.submit(start, launch)?,
        };
        Ok(Spawned::Running {
            pid: u32::try_from(job).unwrap_or(u32::MAX),
        })
    }

    fn stop(&mut self, _now: Duration, task: TaskId, _how: Stop) {
        // The first stop of a job is a cancel (Slurm sends TERM, then KILL after its
        // KillWait); a second is a KILL at once.
        if let Some(f) = self.board.borrow_mut().flights.get_mut(&task) {
            let again = f.cancelled;
            f.cancelled = true;
            if again {
                self.kill.push(f.job)
            } else {
                self.cancel.push(f.job)
            }
        }
    }

    // A job on another node cannot be paused from here (`scontrol suspend` is an operator's
    // command); memory is the job's own `--mem`, so the policy's correction is a cancel and
    // a resubmit.
    fn pause(&mut self, _now: Duration, _task: TaskId) {}

    fn resume(&mut self, _now: Duration, _task: TaskId) {}

    fn kill_all(&mut self) {
        // Nothing of this run stays queued behind an error.
        self.cancel_unadopted();
        let jobs: Vec<u64> = self
            .board
            .borrow()
            .flights
            .values()
            .map(|f| f.job)
            .collect();
        let _ = submit::scancel(&jobs, false);
        self.wait_gone(&jobs);
    }

    fn reap(&mut self, now: Duration) -> Result<Vec<(TaskId, Exit)>> {
        let (in_flight, cancelling) = {
            let board = self.board.borrow();
            let cancelling = board.flights.values().any(|f| f.cancelled);
            (!board.flights.is_empty(), cancelling)
        };
        let every = if cancelling {
            self.poll_every.min(Duration::from_secs(1))
        } else {
            self.poll_every
        };
        if !in_flight
            || self
                .last_poll
                .is_some_and(|t| now.saturating_sub(t) < every)
        {
            return Ok(Vec::new());
        }
        self.last_poll = Some(now);
        self.poll(now)
    }

    fn sample(&mut self, _now: Duration, _config: &Config) -> Result<Sampled> {
        let mut board = self.board.borrow_mut();
        let mut tasks = Vec::with_capacity(board.flights.len());
        let mut trees = Vec::with_capacity(board.flights.len());
        for (&task, f) in board.flights.iter_mut() {
            if let Some(p) = read_json::<Progress>(&f.dir.join(job::PROGRESS)) {
                f.progress = p;
            }
            let used = Bytes(f.progress.current);
            tasks.push((task, used));
            trees.push((
                task,
                TreeMemory {
                    used,
                    processes: 1,
                    ..TreeMemory::default()
                },
            ));
        }
        Ok(Sampled {
            sample: Sample {
                available: Bytes(u64::MAX / 4),
                psi_full_avg10: None,
                tasks,
                shm_room_for: None,
                shm_free: None,
                cpu: Vec::new(),
            },
            trees,
            next: TICK,
        })
    }

    fn ended(&mut self, _now: Duration, v: Verdict) -> Finished {
        let mut board = self.board.borrow_mut();
        let e = board.ended.remove(&v.task);
        // An interrupt is the policy's to name; otherwise what Slurm said wins.
        let (class, reason) = match &e {
            Some(e) if v.class != ExitClass::Interrupted => (
                e.class.unwrap_or(v.class),
                e.reason.clone().unwrap_or(v.reason),
            ),
            _ => (v.class, v.reason),
        };
        let p = e.as_ref().map(|e| e.flight.progress).unwrap_or_default();
        let exit = e.as_ref().and_then(|e| e.exit.as_ref());
        let fin = Finished {
            task: v.task,
            attempt: v.attempt,
            class,
            requeued: v.requeued,
            reason,
            // The task's own status, as the wrapper saw it (the policy's input may be a
            // memory kill that the task itself saw as a SIGKILL).
            ending: exit.map(|x| Ending::from_status(x.code, x.signal)),
            duration: Duration::from_millis(exit.map_or(p.t_ms, |x| x.duration_ms)),
            peak: v.peak,
            peak_rss: Bytes(p.peak_rss),
            peak_pss: p.peak_pss.map(Bytes),
            leftovers: 0,
            peak_shm: Bytes::ZERO,
            peak_virt: Bytes::ZERO,
            shm: Default::default(),
        };
        if let Some(e) = e {
            board.closed.insert(v.task, e);
        }
        fin
    }

    fn load(&self) -> Load {
        let board = self.board.borrow();
        Load {
            running: board.flights.len() + board.ended.len(),
            used: board
                .flights
                .values()
                .map(|f| Bytes(f.progress.current))
                .sum(),
            available: Bytes(u64::MAX / 4),
            paused: 0,
        }
    }

    fn wait(&mut self, timeout: Duration) -> Result<()> {
        self.send_cancels()?;
        std::thread::sleep(timeout.clamp(Duration::from_millis(1), TICK));
        Ok(())
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
        // Cancelled before the wrapper ran: slurmstepd still says so.
        None => poll::stepd_reason(&slurm_err).unwrap_or(SlurmState::Other("LEFT_QUEUE".into())),
    };
    poll::JobState {
        job: f.job,
        state,
        code: exit.as_ref().and_then(|e| e.code),
        signal: exit.as_ref().and_then(|e| e.signal),
    }
}
