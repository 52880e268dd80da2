//! A scripted executor: the test double behind the [`Executor`] seam.
//!
//! No process is started and no clock is read. Each task's attempts follow the same
//! scripts the policy simulator uses ([`Script`]: a memory trace, linearly interpolated,
//! and how it ends), attempt `k` of a task following `scripts[min(k, len − 1)]`. Time is
//! simulated: [`Executor::wait`] jumps to the next scripted exit, interrupt or timeout.
//! The host holds `capacity`; available memory is `capacity − Σ task memory`. TERM (the
//! polite stop) ends an attempt after its script's `term_delay` (never, if it ignores
//! TERM), KILL at once; a paused attempt's trace stands still and it acts on TERM only once
//! resumed. Everything the executor was told is kept in order ([`Scripted::told`]) so
//! tests can assert on it; the same script gives the same run, byte for byte.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Result;
use ramguard_core::policy::{Config, Ending, Exit, Sample, TaskId, SIGKILL, SIGTERM};
use ramguard_core::Bytes;

pub use ramguard_core::policy::sim::{End, Script};

use super::{Executor, Finished, Load, Sampled, Spawned, Start, Stop, Verdict};
use crate::executor::attempt::Launch;
use crate::executor::attempt::TreeMemory;

/// Simulated time after which [`Scripted::wait`] gives up: the run is stuck.
pub const SCRIPT_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// What the executor was told to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    /// Start an attempt with this command line (the pid it was given).
    Spawn {
        task: TaskId,
        attempt: u32,
        pid: u32,
        argv: Vec<String>,
    },
    /// Stop a task's tree.
    Stop { task: TaskId, how: Stop },
    /// Pause a task's tree.
    Pause { task: TaskId },
    /// Resume a task's tree.
    Resume { task: TaskId },
    /// Kill everything.
    KillAll,
}

/// One attempt in flight.
#[derive(Debug, Clone)]
struct Run {
    started: Duration,
    script: Script,
    current: Bytes,
    peak: Bytes,
    /// When the polite stop takes effect, if asked.
    term_at: Option<Duration>,
    kill_at: Option<Duration>,
    paused_since: Option<Duration>,
    paused_total: Duration,
    /// The ending, once it happened; the attempt stays here until the policy's verdict.
    exit: Option<Ending>,
    /// Why it could not start.
    spawn_error: Option<String>,
}

impl Run {
    fn age(&self, now: Duration) -> Duration {
        let paused = self.paused_total
            + self
                .paused_since
                .map_or(Duration::ZERO, |p| now.saturating_sub(p));
        now.saturating_sub(self.started).saturating_sub(paused)
    }

    /// When the attempt ends and how, as things stand.
    fn ending(&self) -> (Duration, Ending) {
        let mut best = (Duration::MAX, Ending::Unknown);
        if self.paused_since.is_none() {
            let natural = self.started + self.paused_total + self.script.length();
            best = (natural, self.script.end.ending());
            if let (Some(t), Some(d)) = (self.term_at, self.script.term_delay) {
                if t + d < best.0 {
                    best = (t + d, Ending::Signaled { signal: SIGTERM });
                }
            }
        }
        if let Some(k) = self.kill_at {
            if k <= best.0 {
                best = (k, Ending::Signaled { signal: SIGKILL });
            }
        }
        best
    }

    /// The highest memory of the trace up to `age`, as the kernel's high-water mark would
    /// have it.
    fn peak_until(&self, age: Duration) -> Bytes {
        self.script
            .points
            .iter()
            .take_while(|p| p.0 <= age)
            .map(|p| p.1)
            .fold(self.script.memory_at(age), Bytes::max)
    }
}

/// The scripted executor.
#[derive(Debug, Clone)]
pub struct Scripted {
    clock: Duration,
    capacity: Bytes,
    tick: Duration,
    scripts: HashMap<TaskId, Vec<Script>>,
    default: Script,
    unstartable: HashMap<TaskId, String>,
    interrupts: Vec<Duration>,
    spawns: HashMap<TaskId, usize>,
    running: BTreeMap<TaskId, Run>,
    told: Vec<(Duration, Told)>,
    next_pid: u32,
}

impl Scripted {
    /// A host with `capacity` for the tasks, sampled every 100 ms; a task without a script
    /// holds 10 MiB for 100 ms and exits 0.
    pub fn new(capacity: Bytes) -> Scripted {
        Scripted {
            clock: Duration::ZERO,
            capacity,
            tick: Duration::from_millis(100),
            scripts: HashMap::new(),
            default: Script::ramp(
                Bytes::from_mib(10),
                Duration::from_millis(50),
                Duration::from_millis(50),
                0,
            ),
            unstartable: HashMap::new(),
            interrupts: Vec::new(),
            spawns: HashMap::new(),
            running: BTreeMap::new(),
            told: Vec::new(),
            next_pid: 1000,
        }
    }

    /// The task's attempts follow these scripts (the last one repeats).
    pub fn task(mut self, task: TaskId, scripts: Vec<Script>) -> Scripted {
        assert!(!scripts.is_empty(), "a task needs at least one script");
        self.scripts.insert(task, scripts);
        self
    }

    /// The task's command cannot be started (as a missing program): `error` is the reason.
    pub fn unstartable(mut self, task: TaskId, error: &str) -> Scripted {
        self.unstartable.insert(task, error.to_string());
        self
    }

    /// Ctrl-C arrives at this simulated time (call twice for a second Ctrl-C).
    pub fn interrupt_at(mut self, at: Duration) -> Scripted {
        self.interrupts.push(at);
        self
    }

    /// Samples every `tick` instead of 100 ms.
    pub fn tick(mut self, tick: Duration) -> Scripted {
        self.tick = tick;
        self
    }

    /// Everything the executor was told, with the simulated time.
    pub fn told(&self) -> &[(Duration, Told)] {
        &self.told
    }
}

impl Executor for Scripted {
    fn now(&self) -> Duration {
        self.clock
    }

    fn interrupts(&mut self) -> usize {
        self.interrupts.iter().filter(|&&t| t <= self.clock).count()
    }

    fn spawn(&mut self, now: Duration, start: &Start<'_>, launch: Launch) -> Result<Spawned> {
        let (task, attempt) = (start.task, start.attempt);
        let k = self.spawns.entry(task).or_insert(0);
        let script = match self.scripts.get(&task) {
            Some(s) => s[(*k).min(s.len() - 1)].clone(),
            None => self.default.clone(),
        };
        *k += 1;
        let mut run = Run {
            started: now,
            script,
            current: Bytes::ZERO,
            peak: Bytes::ZERO,
            term_at: None,
            kill_at: None,
            paused_since: None,
            paused_total: Duration::ZERO,
            exit: None,
            spawn_error: None,
        };
        if let Some(error) = self.unstartable.get(&task) {
            let ending = Ending::Exited { code: 127 };
            run.spawn_error = Some(error.clone());
            run.exit = Some(ending);
            self.running.insert(task, run);
            return Ok(Spawned::Failed(Exit {
                ending,
                peak: Bytes::ZERO,
            }));
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        self.told.push((
            now,
            Told::Spawn {
                task,
                attempt,
                pid,
                argv: launch.argv,
            },
        ));
        self.running.insert(task, run);
        Ok(Spawned::Running { pid })
    }

    fn stop(&mut self, now: Duration, task: TaskId, how: Stop) {
        self.told.push((now, Told::Stop { task, how }));
        if let Some(run) = self.running.get_mut(&task) {
            match how {
                Stop::Ask => run.term_at = Some(run.term_at.unwrap_or(now)),
                Stop::Kill => run.kill_at = Some(run.kill_at.unwrap_or(now)),
            }
        }
    }

    fn pause(&mut self, now: Duration, task: TaskId) {
        self.told.push((now, Told::Pause { task }));
        if let Some(run) = self.running.get_mut(&task) {
            run.paused_since.get_or_insert(now);
        }
    }

    fn resume(&mut self, now: Duration, task: TaskId) {
        self.told.push((now, Told::Resume { task }));
        if let Some(run) = self.running.get_mut(&task) {
            if let Some(since) = run.paused_since.take() {
                run.paused_total += now.saturating_sub(since);
                // TERM waited for SIGCONT: it acts from now.
                if let Some(t) = &mut run.term_at {
                    *t = (*t).max(now);
                }
            }
        }
    }

    fn kill_all(&mut self) {
        let now = self.clock;
        self.told.push((now, Told::KillAll));
        for run in self.running.values_mut() {
            run.kill_at.get_or_insert(now);
        }
    }

    fn reap(&mut self, now: Duration) -> Result<Vec<(TaskId, Exit)>> {
        let mut ended = Vec::new();
        for (&task, run) in &mut self.running {
            if run.exit.is_some() {
                continue;
            }
            let (at, ending) = run.ending();
            if at > now {
                continue;
            }
            run.peak = run.peak.max(run.peak_until(run.age(at)));
            run.current = Bytes::ZERO;
            run.exit = Some(ending);
            let peak = run.peak;
            ended.push((task, Exit { ending, peak }));
        }
        Ok(ended)
    }

    fn sample(&mut self, now: Duration, _config: &Config) -> Result<Sampled> {
        let mut tasks = Vec::new();
        let mut trees = Vec::new();
        let mut used = Bytes::ZERO;
        for (&task, run) in &mut self.running {
            if run.exit.is_some() {
                continue;
            }
            let mem = run.script.memory_at(run.age(now));
            run.current = mem;
            run.peak = run.peak.max(mem);
            used += mem;
            tasks.push((task, mem));
            trees.push((
                task,
                TreeMemory {
                    used: mem,
                    rss: mem,
                    processes: 1,
                    ..TreeMemory::default()
                },
            ));
        }
        Ok(Sampled {
            sample: Sample {
                available: self.capacity.saturating_sub(used),
                psi_full_avg10: None,
                tasks,
                shm_room_for: None,
                shm_free: None,
                cpu: Vec::new(),
            },
            trees,
            next: self.tick,
        })
    }

    fn ended(&mut self, now: Duration, v: Verdict) -> Finished {
        let run = self.running.remove(&v.task);
        Finished {
            task: v.task,
            attempt: v.attempt,
            class: v.class,
            requeued: v.requeued,
            reason: run
                .as_ref()
                .and_then(|r| r.spawn_error.clone())
                .unwrap_or(v.reason),
            ending: run.as_ref().and_then(|r| r.exit),
            duration: run
                .as_ref()
                .map_or(Duration::ZERO, |r| now.saturating_sub(r.started)),
            peak: v.peak,
            peak_rss: run.as_ref().map_or(v.peak, |r| r.peak),
            peak_pss: None,
            leftovers: 0,
            peak_shm: Bytes::ZERO,
            peak_virt: Bytes::ZERO,
            shm: Default::default(),
        }
    }

    fn load(&self) -> Load {
        Load {
            running: self.running.len(),
            used: self.running.values().map(|r| r.current).sum(),
            available: self
                .capacity
                .saturating_sub(self.running.values().map(|r| r.current).sum()),
            paused: self
                .running
                .values()
                .filter(|r| r.paused_since.is_some())
                .count(),
        }
    }

    fn wait(&mut self, timeout: Duration) -> Result<()> {
        if self.running.values().any(|r| r.exit.is_some()) {
            return Ok(());
        }
        let mut until = self.clock + timeout.max(Duration::from_millis(1));
        for run in self.running.values() {
            until = until.min(run.ending().0.max(self.clock));
        }
        for &t in &self.interrupts {
            if t > self.clock {
                until = until.min(t);
            }
        }
        assert!(
            until <= SCRIPT_LIMIT,
            "the scripted run did not finish within {SCRIPT_LIMIT:?} of simulated time"
        );
        self.clock = until;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
