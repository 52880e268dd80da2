//! What a simulation is made of: scripted attempts ([`Script`], [`End`]), tasks
//! ([`SimTask`]), the machine ([`Host`], [`Cpu`]), and what a run measured ([`Report`]).

use std::time::Duration;

use super::super::{Ending, TaskSpec};
use crate::units::Bytes;

/// How a scripted attempt ends when nobody stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Exits with this code.
    Code(i32),
    /// Dies of this signal (sent by nobody in ramguard).
    Signal(i32),
    /// The kernel OOM-killed it (the supervisor saw the oom_kill counter move).
    OomKilled,
    /// SIGBUS with /dev/shm full.
    ShmFull,
}

impl End {
    /// How the executor reports this end.
    pub fn ending(self) -> Ending {
        match self {
            End::Code(code) => Ending::Exited { code },
            End::Signal(signal) => Ending::Signaled { signal },
            End::OomKilled => Ending::OomKilled,
            End::ShmFull => Ending::ShmFull,
        }
    }
}

/// One attempt's memory over time since its start, and how it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// `(age, memory)` points, linearly interpolated; the attempt ends at the last age.
    pub points: Vec<(Duration, Bytes)>,
    /// The natural end at the last point.
    pub end: End,
    /// How long after TERM it exits; `None` ignores TERM (only KILL ends it).
    pub term_delay: Option<Duration>,
    /// Stretches of the trace in which it uses no CPU, in order.
    pub sleeps: Vec<Sleep>,
}

/// A stretch of a trace in which the task uses no CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sleep {
    /// Where in the trace it starts and ends.
    pub from: Duration,
    pub until: Duration,
    /// Its clock runs on while the task is stopped (a `sleep`, a wait on something
    /// outside); otherwise it stands still, like work (memhog's hold, timed by the time it
    /// ran).
    pub wall_clock: bool,
}

impl Script {
    /// Grows linearly from nothing to `peak` over `ramp`, holds `hold`, exits with `code`.
    pub fn ramp(peak: Bytes, ramp: Duration, hold: Duration, code: i32) -> Script {
        Script {
            points: vec![
                (Duration::ZERO, Bytes::ZERO),
                (ramp, peak),
                (ramp + hold, peak),
            ],
            end: End::Code(code),
            term_delay: Some(Duration::from_millis(100)),
            sleeps: Vec::new(),
        }
    }

    /// The same trace, using no CPU from `from` to `until`; see [`Sleep::wall_clock`].
    pub fn asleep(mut self, from: Duration, until: Duration, wall_clock: bool) -> Script {
        self.sleeps.push(Sleep {
            from,
            until,
            wall_clock,
        });
        self
    }

    /// How much of the trace up to `age` it spends asleep.
    pub fn asleep_before(&self, age: Duration) -> Duration {
        self.sleeps
            .iter()
            .map(|s| age.min(s.until).saturating_sub(s.from))
            .sum()
    }

    /// At `age`, how long its sleep on the wall clock runs on (what a stop costs it
    /// nothing of); zero outside such a sleep.
    pub fn sleep_left(&self, age: Duration) -> Duration {
        self.sleeps
            .iter()
            .find(|s| s.wall_clock && s.from <= age && age < s.until)
            .map_or(Duration::ZERO, |s| s.until - age)
    }

    /// The same trace ending differently.
    pub fn ending(mut self, end: End) -> Script {
        self.end = end;
        self
    }

    /// The same trace ignoring TERM.
    pub fn ignoring_term(mut self) -> Script {
        self.term_delay = None;
        self
    }

    /// Memory at `age`, interpolated between points.
    pub fn memory_at(&self, age: Duration) -> Bytes {
        let mut prev = (Duration::ZERO, Bytes::ZERO);
        for &(t, m) in &self.points {
            if age <= t {
                let span = t.saturating_sub(prev.0).as_secs_f64();
                if span <= 0.0 {
                    return m;
                }
                let f = age.saturating_sub(prev.0).as_secs_f64() / span;
                let v = prev.1.get() as f64 + (m.get() as f64 - prev.1.get() as f64) * f;
                return Bytes(v.max(0.0) as u64);
            }
            prev = (t, m);
        }
        prev.1
    }

    /// When the attempt ends by itself.
    pub fn length(&self) -> Duration {
        self.points.last().map_or(Duration::ZERO, |p| p.0)
    }
}

/// A simulated task: what the policy knows, and what each attempt will do.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTask {
    /// What the policy is told about the task.
    pub spec: TaskSpec,
    /// Attempt `k` (0-based within this run) follows `scripts[min(k, len − 1)]`.
    pub scripts: Vec<Script>,
}

impl SimTask {
    /// A task that does the same thing on every attempt.
    pub fn new(script: Script) -> SimTask {
        SimTask {
            spec: TaskSpec::default(),
            scripts: vec![script],
        }
    }

    /// The same task with these features.
    pub fn features(mut self, features: Vec<f64>) -> SimTask {
        self.spec.features = features;
        self
    }
}

/// The simulated machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Memory the tasks and everything else share.
    pub capacity: Bytes,
    /// Memory held outside the sweep, as a step function of time.
    pub external: Vec<(Duration, Bytes)>,
    /// PSI `full avg10`, as a step function of time.
    pub psi: Vec<(Duration, f64)>,
    /// CPUs and what growing memory costs on them; `None`: growth is free (ideal host).
    pub cpu: Option<Cpu>,
}

/// What the simulated host's CPUs can do for growing tasks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpu {
    /// CPUs the tasks share.
    pub cpus: f64,
    /// CPU-seconds a task spends per GiB its memory grows.
    pub secs_per_gib: f64,
}

impl Host {
    /// A quiet host of this size.
    pub fn new(capacity: Bytes) -> Host {
        Host {
            capacity,
            external: Vec::new(),
            psi: Vec::new(),
            cpu: None,
        }
    }

    /// The same host with CPUs that growing memory must share.
    pub fn with_cpu(mut self, cpus: f64, secs_per_gib: f64) -> Host {
        self.cpu = Some(Cpu { cpus, secs_per_gib });
        self
    }

    pub(super) fn external_at(&self, t: Duration) -> Bytes {
        step_at(&self.external, t).unwrap_or_default()
    }

    pub(super) fn psi_at(&self, t: Duration) -> Option<f64> {
        step_at(&self.psi, t)
    }
}

fn step_at<T: Copy>(steps: &[(Duration, T)], t: Duration) -> Option<T> {
    steps.iter().take_while(|s| s.0 <= t).last().map(|s| s.1)
}

/// What a simulated run measured, and what went wrong.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Time when the policy was finished and nothing ran.
    pub makespan: Duration,
    /// Task-seconds of attempts that ended braked or OOM-killed, paused time excluded: work
    /// thrown away.
    pub braked_seconds: f64,
    /// Brake notes emitted.
    pub brakes: u32,
    /// Tasks the simulated kernel OOM-killed because memory ran out.
    pub kernel_oom_kills: u32,
    /// Most tasks running at once.
    pub max_running: usize,
    /// Lowest available memory any sample saw (the host's capacity before the first).
    pub min_available: Bytes,
    /// Task-seconds of running, summed over every sample interval: ÷ makespan is the
    /// average number of tasks running at once.
    pub task_seconds: f64,
    /// Pause actions executed.
    pub pauses: u32,
    /// Task-seconds spent paused.
    pub paused_seconds: f64,
    /// Final verdicts (Finished not requeued, or Fail) per task.
    pub finals: Vec<u32>,
    /// Invariant violations, in words; empty when all held.
    pub violations: Vec<String>,
}
