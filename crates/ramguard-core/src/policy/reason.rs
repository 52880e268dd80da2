//! Why things happened, as data: the policy states the facts (sizes, limits, durations,
//! what caused what) and the binary chooses the words, flag names and hints
//! (`ramguard::words`). The journal keeps the words as they were written, so a
//! wording change never rewrites history, and the core never names a command-line flag.

use std::time::Duration;

use crate::units::Bytes;

/// Why an attempt ended as it did, or why a task failed without starting.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Exited with code 0.
    Done,
    /// Exited with this nonzero code.
    ExitCode(i32),
    /// Killed by this signal, which nobody in ramguard sent.
    Signal(i32),
    /// Reaped without an exit code or a signal.
    NoStatus,
    /// SIGBUS while `/dev/shm` was nearly full.
    ShmFull,
    /// The kernel's OOM killer struck the task's tree at this peak.
    OomKilled { peak: Bytes },
    /// The brake stopped it at this peak.
    Braked { peak: Bytes, why: BrakeWhy },
    /// Its tree held `peak`, over the per-task cap.
    OverCap { peak: Bytes, cap: Bytes },
    /// It ran longer than the timeout.
    TimedOut { limit: Duration },
    /// It ran longer than the maximum age (recycling).
    MaxAge { limit: Duration },
    /// ramguard was interrupted; `during` is what the attempt was already ending for.
    Interrupted { during: Option<Box<Reason>> },
    /// Braked or OOM-killed while it ran alone after the most brakes allowed: it needs more
    /// than `peak` and cannot fit.
    TooBigAlone { peak: Bytes, then: Box<Reason> },
    /// Its measured lower bound exceeds the budget: it fails without starting.
    OverBudget { needs: Bytes, budget: Bytes },
    /// Ended for `cause` and restarted by recycling (the `restart`-th time).
    Recycled { cause: Box<Reason>, restart: u32 },
    /// Ended for `cause`, not restarted: it was recycled `limit` times within a minute.
    NotRecycled { cause: Box<Reason>, limit: u32 },
}

/// Why the brake stopped a task.
#[derive(Debug, Clone, PartialEq)]
pub enum BrakeWhy {
    /// Available memory fell below the brake level.
    LowMemory { available: Bytes, level: Bytes },
    /// The running tasks together held more than the budget.
    OverBudget { held: Bytes, budget: Bytes },
    /// The task was paused, and the running tasks needed its memory.
    PausedNeeded(Projection),
    /// The newest of several paused tasks had waited longer than it ran: redoing its work
    /// costs less than keeping its memory from the others.
    WaitedLongerThanItRan { waited: Duration, ran: Duration },
}

/// Why admission is paused.
#[derive(Debug, Clone, PartialEq)]
pub enum PauseWhy {
    /// PSI `full avg10` (percent) is at or above the threshold.
    Pressure { avg10: f64, limit: f64 },
    /// Nothing fits in what is available although nothing runs.
    NothingFits { available: Bytes, reserve: Bytes },
}

/// Why a running task was paused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PauseCause {
    /// Without the pause the running tasks would need more than they may hold
    /// ([`suspend`](super::suspend)).
    Projection(Projection),
    /// It was asleep, and its jump to its predicted peak did not fit in the `room` left for
    /// the jumps of idle tasks ([`park`](super::park)).
    Asleep { jump: Bytes, room: Bytes },
}

/// What the running tasks would need, projected, against the `limit` they may hold together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub need: Bytes,
    pub limit: Bytes,
}
