//! The supervisor: the local executor, which does what the policy decides on this host,
//! and nothing clever.
//!
//! It owns the side effects the pure policy (`ramguard_core::policy`) must not have: it
//! spawns attempts ([`spawn`]), follows their process trees and measures them ([`tree`]),
//! samples the host through the probe's fast path, sends TERM and KILL to whole trees,
//! reaps every child (ramguard is a child subreaper, so orphans come back to it), and reads
//! the evidence that classifies an exit (kernel OOM-kill counter, `/dev/shm` fullness). It
//! implements [`Executor`]; the loop that feeds the policy and reports to the [`Sink`] is
//! [`crate::executor::drive`]. A task that fails is data handed to the sink, never an
//! `Err`; an `Err` means ramguard itself cannot go on (journal unwritable), and every
//! running tree is killed before it is returned.
//!
//! Sampling adapts its interval to how fast memory fills; [`Executor::wait`] sleeps until
//! the next sample, the policy's wake-up, a child's exit or a signal (a self-pipe written
//! by the SIGCHLD/SIGINT/SIGTERM handlers).

pub mod host;
mod latency;
pub mod measure;
pub mod pause;
pub mod sentinel;
pub mod shm;
pub mod spawn;
pub mod tree;
mod wake;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ramguard_core::policy::pace::{self, Pacer};
use ramguard_core::policy::{Config, Ending, Exit, ExitClass, Policy, Sample, StopReason, TaskId};
use ramguard_core::Bytes;
use rustix::process::Signal;

pub use host::HostWatch;
pub use spawn::{thread_caps, Launch, THREAD_VARS};
use tree::Trees;
use wake::Wake;

use crate::executor::{Executor, Load, Sampled, Spawned, Start, Stop, Verdict};
pub use crate::executor::{Finished, RunEnd, Sink, Snapshot};
use crate::probe::Root;

/// How long processes left after a task's root exited get to finish after a TERM (Python's
/// resource tracker unlinks leaked segments once the last worker is gone).
const LEFTOVER_GRACE: Duration = Duration::from_millis(300);
/// How often process trees are walked for new descendants.
const DISCOVER_EVERY: Duration = Duration::from_millis(200);

/// One attempt in flight.
#[derive(Debug)]
struct Attempt {
    started: Duration,
    current: Bytes,
    peak: Bytes,
    peak_rss: Bytes,
    peak_pss: Option<Bytes>,
    peak_shm: Bytes,
    /// The part of `peak_shm` in named `/dev/shm` files (memfd does not fill /dev/shm).
    peak_dev_shm: Bytes,
    peak_virt: Bytes,
    /// ramguard sent it TERM or KILL (brake, cap, timeout, interrupt).
    stopped: bool,
    shm: shm::Settled,
    /// The SIGBUS reason with the hint that fits, worked out when it was reaped.
    bus_reason: Option<String>,
    oom_kills_at_start: Option<u64>,
    spawn_error: Option<String>,
    /// How it ended: the wait status when reaped, refined with the evidence once.
    exit: Option<Ending>,
    leftovers: usize,
}

/// The local executor: runs each attempt as a process tree on this host.
#[derive(Debug)]
pub struct Supervisor {
    /// Kills every marked process if ramguard dies; finished on drop.
    sentinel: Option<sentinel::Sentinel>,
    host: HostWatch,
    trees: Trees,
    running: HashMap<TaskId, Attempt>,
    start: Instant,
    /// SIGCHLD, SIGINT and SIGTERM wake [`Executor::wait`]; interrupts are counted.
    wake: Wake,
    /// The last sample's time, host headroom and tasks' total.
    last_available: Option<(Duration, Bytes, Bytes)>,
    /// How often to sample (`policy::pace`, the rule the simulator replays); made at the
    /// first sample, when `-j` is known.
    pacer: Option<Pacer>,
    last_discover: Option<Duration>,
    /// The signal that asks a task to stop (`--stop-signal`); KILL follows after the grace.
    stop_signal: Signal,
    /// The tasks' `/dev/shm` files.
    shm: shm::ShmWatch,
    /// Remove the shm files a task leaves even when it ended by itself (`--shm-cleanup`).
    shm_cleanup: bool,
    /// The most /dev/shm any finished attempt held: what admission expects a task to need.
    shm_expected: Bytes,
    pauses: pause::Pauses,
    /// Attempts reaped (or that could not start) whose endings the policy has not had yet.
    ended: Vec<(TaskId, Exit)>,
}

impl Supervisor {
    /// Makes ramguard a child subreaper so no descendant of a task can escape it, and
    /// installs the SIGCHLD/SIGINT/SIGTERM handlers that wake the loop.
    pub fn new(host: HostWatch) -> Result<Supervisor> {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .context("cannot become a child subreaper (prctl PR_SET_CHILD_SUBREAPER)")?;
        // The loop's thread runs as soon as it is woken, not behind the tasks it refills.
        latency::shorten_slice();
        let nonce = format!("{}-{}", std::process::id(), unix_ms());
        let sentinel = sentinel::Sentinel::start(&nonce)?;
        let mut trees = Trees::new(nonce);
        trees.spare(sentinel.pid());
        Ok(Supervisor {
            sentinel: Some(sentinel),
            host,
            trees,
            running: HashMap::new(),
            start: Instant::now(),
            wake: Wake::install()?,
            last_available: None,
            pacer: None,
            last_discover: None,
            shm: shm::ShmWatch::new(Root::host()),
            shm_cleanup: false,
            shm_expected: Bytes::ZERO,
            stop_signal: Signal::TERM,
            pauses: pause::Pauses::default(),
            ended: Vec::new(),
        })
    }

    /// Sets the signal that asks a task to stop (default SIGTERM).
    pub fn set_stop_signal(&mut self, signal: Signal) {
        self.stop_signal = signal;
    }

    /// Removes the `/dev/shm` files a task created and left even when it ended by itself.
    pub fn set_shm_cleanup(&mut self, on: bool) {
        self.shm_cleanup = on;
    }

    /// The environment token that marks a task's processes.
    pub fn token(&self, task: TaskId) -> String {
        self.trees.token(task)
    }

    /// Runs `policy` until every task is final, or until an interrupt has stopped everything.
    pub fn run(&mut self, policy: &mut Policy, sink: &mut dyn Sink) -> Result<RunEnd> {
        crate::executor::drive(policy, self, sink)
    }

    /// Reaps every exited child; task roots' endings are queued for the policy.
    fn reap_children(&mut self, now: Duration) {
        // Every exit first, then one read of ramguard's children for the whole batch: the
        // kernel reparents a root's orphans before the root can be reaped.
        let batch: Vec<Reaped> = std::iter::from_fn(reap_one).collect();
        if batch.is_empty() {
            return;
        }
        let children = self.trees.my_children();
        for reaped in batch {
            match self.trees.task_of_root(reaped.pid) {
                Some(task) => {
                    // Evidence first: leftovers (Python's resource tracker) may free /dev/shm.
                    let bus =
                        (reaped.signal == Some(libc::SIGBUS)).then(|| self.bus_evidence(now, task));
                    if let Some(a) = self.running.get_mut(&task) {
                        a.exit = Some(Ending::from_status(reaped.code, reaped.signal));
                        // The kernel's high-water mark catches peaks between samples; it is
                        // one process's RSS (the largest of the tree), which the tree holds.
                        a.peak_rss = a.peak_rss.max(reaped.max_rss);
                        a.peak = a.peak.max(reaped.max_rss);
                        a.bus_reason = bus;
                        // What admission expects a task to put in /dev/shm must not wait for
                        // the verdict: a sample taken between this reap and the verdict sees
                        // neither this attempt nor its use, and would let -j tasks start at
                        // once (shm_room_for None) where only one fits.
                        self.shm_expected = self.shm_expected.max(a.peak_dev_shm);
                    }
                    // No process outlives its task: what its root left behind (even
                    // reparented to us, in another session) is killed now, and reported.
                    // Leftovers of a task with shm files first get a grace to clean up
                    // (Python's resource tracker; the loop waits for it, so only then).
                    if self.shm.allocated(task) > Bytes::ZERO {
                        self.trees.adopt_orphans(task, &children);
                        shm::stop_leftovers(&mut self.trees, task, LEFTOVER_GRACE);
                    }
                    let leftovers = self.trees.kill_leftovers(task, &children);
                    if let Some(s) = &mut self.sentinel {
                        s.track(reaped.pid, false);
                    }
                    let remove =
                        self.shm_cleanup || self.running.get(&task).is_some_and(|a| a.stopped);
                    let settled = self.shm.settle(task, remove);
                    if let Some(a) = self.running.get_mut(&task) {
                        a.leftovers += leftovers;
                        a.shm = settled;
                    }
                    self.finish(now, task);
                }
                None if self
                    .sentinel
                    .as_ref()
                    .is_some_and(|s| s.pid() == reaped.pid) =>
                {
                    // Killed by someone: without it a SIGKILL of ramguard would leave the
                    // tasks running. A new one is told every running root.
                    self.sentinel = self.sentinel.take().and_then(|s| s.restart().ok());
                    if let Some(s) = &mut self.sentinel {
                        self.trees.spare(s.pid());
                        for pid in self.trees.roots() {
                            s.track(pid, true);
                        }
                    }
                }
                None => self.trees.forget_pid(reaped.pid),
            }
        }
        // Reaped roots leave the sentinel's list now, before their pids can be reused.
        if let Some(s) = &mut self.sentinel {
            s.flush();
        }
    }

    /// Works out an exited attempt's ending from its wait status and the evidence, once,
    /// and queues it for the policy.
    fn finish(&mut self, now: Duration, task: TaskId) {
        let Some(a) = self.running.get(&task) else {
            return;
        };
        let status = a.exit.unwrap_or(Ending::Unknown);
        let (before, peak) = (a.oom_kills_at_start, a.peak);
        let ending = match status.signal() {
            Some(libc::SIGBUS) if a.bus_reason.as_ref().is_some_and(|r| !r.is_empty()) => {
                Ending::ShmFull
            }
            // Only a SIGKILL can be the kernel's: read the counter only then.
            Some(libc::SIGKILL)
                if matches!(
                    (before, self.host.oom_kills(now)),
                    (Some(before), Some(after)) if after > before
                ) =>
            {
                Ending::OomKilled
            }
            _ => status,
        };
        if let Some(a) = self.running.get_mut(&task) {
            a.exit = Some(ending);
        }
        self.trees.remove(task);
        self.ended.push((task, Exit { ending, peak }));
    }

    /// Measures host and trees; works out the next sampling interval.
    fn sample_all(&mut self, now: Duration, cfg: &Config) -> Result<Sampled> {
        let available = self.host.available()?;
        let psi = self.host.psi_full();
        // Walking every tree costs more than reading statm; new descendants are rare and
        // orphans stay below their root (a subreaper), so the walk runs at most every
        // DISCOVER_EVERY.
        if self
            .last_discover
            .is_none_or(|t| now.saturating_sub(t) >= DISCOVER_EVERY)
        {
            self.trees.discover();
            self.last_discover = Some(now);
        }
        let mut tasks = Vec::with_capacity(self.running.len());
        let mut trees = Vec::with_capacity(self.running.len());
        let mut cpu = Vec::with_capacity(self.running.len());
        let ids: Vec<TaskId> = self.running.keys().copied().collect();
        self.shm.scan(now, &self.trees, &ids);
        let mut used = Bytes::ZERO;
        let mut running_shm = Vec::with_capacity(ids.len());
        for task in ids {
            let dev_shm = self.shm.allocated(task);
            let mem = self.trees.measure(task, now, dev_shm);
            if let Some(a) = self.running.get_mut(&task) {
                if a.exit.is_some() {
                    continue;
                }
                a.current = mem.used;
                a.peak = a.peak.max(mem.used);
                a.peak_rss = a.peak_rss.max(mem.rss);
                if let Some(p) = mem.pss {
                    a.peak_pss = Some(a.peak_pss.unwrap_or_default().max(p));
                }
                a.peak_shm = a.peak_shm.max(mem.shm);
                a.peak_dev_shm = a.peak_dev_shm.max(dev_shm);
                running_shm.push(dev_shm);
                a.peak_virt = a.peak_virt.max(mem.virt);
                used += mem.used;
                tasks.push((task, mem.used));
                cpu.extend(self.trees.cpu_time(task, now).map(|c| (task, c)));
                trees.push((task, mem));
            }
        }
        let largest = tasks.iter().map(|&(_, m)| m).max().unwrap_or_default();
        let sample = Sample {
            available,
            psi_full_avg10: psi,
            tasks,
            shm_room_for: self.host.shm_size.and_then(|size| {
                let expected = running_shm.iter().fold(self.shm_expected, |e, &s| e.max(s));
                shm::room_for(size, self.shm.total(), expected, &running_shm)
            }),
            shm_free: self.host.shm_free(),
            cpu,
        };
        // Adaptive interval (`policy::pace`, the rule the simulator replays).
        let headroom = pace::headroom(cfg, available, used, largest);
        self.last_available = Some((now, available, used));
        let cpus = self
            .host
            .cpus
            .min(u32::try_from(cfg.max_jobs).unwrap_or(u32::MAX));
        let next = self
            .pacer
            .get_or_insert_with(|| Pacer::new(cpus))
            .next(now, available, used, headroom);
        Ok(Sampled {
            sample,
            trees,
            next,
        })
    }

    /// Completes the policy's verdict on an attempt with what was seen of it.
    fn record(&mut self, now: Duration, v: Verdict) -> Finished {
        self.pauses.forget(v.task);
        let a = self.running.remove(&v.task);
        if let Some(a) = &a {
            self.shm_expected = self.shm_expected.max(a.peak_dev_shm);
        }
        let reason = match a.as_ref().and_then(|a| a.spawn_error.clone()) {
            Some(e) => e,
            None if v.class == ExitClass::ShmBus => a
                .as_ref()
                .and_then(|a| a.bus_reason.clone())
                .unwrap_or(v.reason),
            None => v.reason,
        };
        Finished {
            task: v.task,
            attempt: v.attempt,
            class: v.class,
            requeued: v.requeued,
            reason,
            ending: a.as_ref().and_then(|a| a.exit),
            duration: a
                .as_ref()
                .map_or(Duration::ZERO, |a| now.saturating_sub(a.started)),
            peak: v.peak,
            peak_rss: a.as_ref().map_or(v.peak, |a| a.peak_rss),
            peak_pss: a.as_ref().and_then(|a| a.peak_pss),
            leftovers: a.as_ref().map_or(0, |a| a.leftovers),
            peak_shm: a.as_ref().map_or(Bytes::ZERO, |a| a.peak_shm),
            peak_virt: a.as_ref().map_or(Bytes::ZERO, |a| a.peak_virt),
            shm: a.map(|a| a.shm).unwrap_or_default(),
        }
    }

    fn start_task(
        &mut self,
        now: Duration,
        task: TaskId,
        mut launch: Launch,
        oom_score_adj: i32,
    ) -> Spawned {
        launch
            .env
            .push((tree::TOKEN_VAR.to_string(), self.trees.token(task)));
        let mut attempt_state = Attempt {
            started: now,
            current: Bytes::ZERO,
            peak: Bytes::ZERO,
            peak_rss: Bytes::ZERO,
            peak_pss: None,
            peak_shm: Bytes::ZERO,
            peak_dev_shm: Bytes::ZERO,
            peak_virt: Bytes::ZERO,
            stopped: false,
            shm: shm::Settled::default(),
            bus_reason: None,
            oom_kills_at_start: self.host.oom_kills(now),
            spawn_error: None,
            exit: None,
            leftovers: 0,
        };
        match spawn::spawn(&launch) {
            Ok(pid) => {
                spawn::set_oom_score_adj(pid, oom_score_adj);
                if let Some(s) = &mut self.sentinel {
                    s.track(pid, true);
                }
                self.trees.add(task, pid);
                self.running.insert(task, attempt_state);
                Spawned::Running { pid }
            }
            Err(e) => {
                // A command that cannot start is a failed attempt (exit 127 as a shell
                // would say), not a reason to stop the sweep.
                attempt_state.spawn_error = Some(format!("{e:#}"));
                let ending = Ending::Exited { code: 127 };
                attempt_state.exit = Some(ending);
                self.running.insert(task, attempt_state);
                Spawned::Failed(Exit {
                    ending,
                    peak: Bytes::ZERO,
                })
            }
        }
    }

    /// Notes that ramguard stopped the task, so its shm files are removed when it is gone.
    fn mark_stopped(&mut self, task: TaskId) {
        if let Some(a) = self.running.get_mut(&task) {
            a.stopped = true;
        }
    }

    /// After a SIGBUS: the reason with its hint when `/dev/shm` is nearly full, else an
    /// empty string (an ordinary signal death).
    fn bus_evidence(&mut self, now: Duration, task: TaskId) -> String {
        let ids: Vec<TaskId> = self.running.keys().copied().collect();
        self.shm.scan(now, &self.trees, &ids);
        if !self.host.shm_nearly_full() {
            return String::new();
        }
        let total = crate::probe::shm::usage(&self.host.root)
            .map(|(u, _)| u)
            .unwrap_or_else(|_| self.shm.total());
        // A segment filled and died on within one tick was never seen held; a new file
        // nobody holds that appeared while this task ran alone can only be this task's.
        let mine = self.shm.allocated(task) + self.shm.unattributed_of(task);
        shm::bus_reason(mine, total, self.host.shm_size)
    }

    /// SIGKILL to every tree we know; used on errors and on a second interrupt.
    fn kill_everything(&mut self) {
        let tasks: Vec<TaskId> = self.running.keys().copied().collect();
        for task in tasks {
            self.mark_stopped(task);
            self.trees.signal(task, Signal::KILL);
        }
        for pid in self.trees.all_pids() {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
    }
}

impl Executor for Supervisor {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn interrupts(&mut self) -> usize {
        self.wake.interrupts()
    }

    fn spawn(&mut self, now: Duration, start: &Start<'_>, launch: Launch) -> Result<Spawned> {
        Ok(self.start_task(now, start.task, launch, start.oom_score_adj))
    }

    fn stop(&mut self, _now: Duration, task: TaskId, how: Stop) {
        self.mark_stopped(task);
        let signal = match how {
            Stop::Ask => self.stop_signal,
            Stop::Kill => Signal::KILL,
        };
        self.trees.signal(task, signal);
    }

    fn pause(&mut self, now: Duration, task: TaskId) {
        self.pauses.pause(&mut self.trees, task, now);
    }

    fn resume(&mut self, now: Duration, task: TaskId) {
        self.pauses.resume(&mut self.trees, task, now);
    }

    fn kill_all(&mut self) {
        self.kill_everything();
    }

    fn reap(&mut self, now: Duration) -> Result<Vec<(TaskId, Exit)>> {
        self.reap_children(now);
        Ok(std::mem::take(&mut self.ended))
    }

    fn sample(&mut self, now: Duration, config: &Config) -> Result<Sampled> {
        self.sample_all(now, config)
    }

    fn ended(&mut self, now: Duration, verdict: Verdict) -> Finished {
        self.record(now, verdict)
    }

    fn load(&self) -> Load {
        Load {
            running: self.running.len(),
            used: self.running.values().map(|a| a.current).sum(),
            available: self.last_available.map(|(_, a, _)| a).unwrap_or_default(),
            paused: self.pauses.count(),
        }
    }

    fn wait(&mut self, timeout: Duration) -> Result<()> {
        // Roots started this pass are announced once, before the sleep.
        if let Some(s) = &mut self.sentinel {
            s.flush();
        }
        // An attempt that ended without a child to reap (it could not start) is news now.
        if !self.running.values().any(|a| a.exit.is_some()) {
            self.wake.wait(timeout);
        }
        Ok(())
    }
}

impl Drop for Supervisor {
    /// Whatever happens (panic, early return), no task outlives the supervisor.
    fn drop(&mut self) {
        if !self.running.is_empty() {
            self.kill_everything();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match reap_status() {
                    ReapStatus::Reaped => continue,
                    ReapStatus::NoneYet => std::thread::sleep(Duration::from_millis(5)),
                    ReapStatus::NoChildren => break,
                }
            }
            // Killed by ramguard: the shm files they created go too.
            let tasks: Vec<TaskId> = self.running.keys().copied().collect();
            for task in tasks {
                self.shm.settle(task, true);
            }
        }
        if let Some(s) = self.sentinel.take() {
            s.finish();
        }
    }
}

/// One reaped child.
#[derive(Debug, Clone, Copy)]
struct Reaped {
    pid: u32,
    code: Option<i32>,
    signal: Option<i32>,
    /// The child's own peak RSS (`ru_maxrss`), measured by the kernel.
    max_rss: Bytes,
}

/// Reaps one exited child of any process group without blocking.
///
/// `wait4` is called through libc because it alone returns the child's `ru_maxrss`, the
/// exact peak of a task that lived less than one sample interval.
fn reap_one() -> Option<Reaped> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for writes for the duration of the call.
    let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut usage) };
    if pid <= 0 {
        return None;
    }
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Some(Reaped {
        pid: pid as u32,
        code,
        signal,
        max_rss: Bytes::from_kib(usage.ru_maxrss.max(0) as u64),
    })
}

enum ReapStatus {
    Reaped,
    NoneYet,
    NoChildren,
}

fn reap_status() -> ReapStatus {
    let mut status: libc::c_int = 0;
    // SAFETY: the status pointer is valid for writes; rusage is not requested.
    let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, std::ptr::null_mut()) };
    match pid {
        p if p > 0 => ReapStatus::Reaped,
        0 => ReapStatus::NoneYet,
        _ => ReapStatus::NoChildren,
    }
}

/// Milliseconds since the Unix epoch, for journal timestamps.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Words for a stop reason, for progress lines.
pub fn stop_words(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Brake => "brake",
        StopReason::OverCap => "over cap",
        StopReason::Timeout => "timeout",
        StopReason::Interrupt => "interrupt",
        StopReason::MaxAge => "max age",
    }
}
