//! The words for what the policy reports as data: why an attempt ended, why a task failed,
//! why the brake fired or admission paused.
//!
//! The pure policy (`ramguard_core::policy::reason`) states facts — sizes, limits,
//! durations, what caused what — and never names a flag. This is the one place that turns
//! them into the lines a person reads in progress output, `status`, `results` and the
//! journal, and the one place a hint (`hint: raise --mem`) names the flag to change. It
//! sits beside `render` (not in it) because the executor's loop words the verdicts it hands
//! to the journal, and render already depends on the executor's types.
//! Journal rows keep the words as they were written.

use ramguard_core::policy::eta::Short;
use ramguard_core::policy::{BrakeWhy, PauseCause, PauseWhy, Projection, Reason};
use ramguard_core::units::format_duration;

/// A policy fact that reads as one line.
pub trait Words {
    /// The line a person reads, with the flag to change where one helps.
    fn words(&self) -> String;
}

impl Words for Reason {
    fn words(&self) -> String {
        match self {
            Reason::Done => "done".to_string(),
            Reason::ExitCode(code) => format!("exit code {code}"),
            Reason::Signal(sig) => format!("killed by signal {sig}"),
            Reason::NoStatus => "ended without an exit status".to_string(),
            Reason::ShmFull => "bus error (SIGBUS) with /dev/shm full: shared memory ran out \
                                (hint: free /dev/shm or lower -j)"
                .to_string(),
            Reason::OomKilled { peak } => format!("killed by the kernel's OOM killer at {peak}"),
            Reason::Braked { peak, why } => format!("braked at {peak}: {}", why.words()),
            Reason::OverCap { peak, cap } => {
                format!("used {peak}, over the per-task cap {cap} (--task-mem)")
            }
            Reason::TimedOut { limit } => format!(
                "ran longer than the {} timeout (--timeout)",
                format_duration(*limit)
            ),
            Reason::MaxAge { limit } => format!("older than {} (--max-age)", format_duration(*limit)),
            Reason::Interrupted { during: None } => "interrupted".to_string(),
            Reason::Interrupted { during: Some(r) } => format!("interrupted; {}", r.words()),
            Reason::TooBigAlone { peak, then } => format!(
                "needs more than {peak}, which does not fit even running alone ({})",
                then.words()
            ),
            Reason::OverBudget { needs, budget } => {
                format!("needs at least {needs}, more than the {budget} budget (hint: raise --mem)")
            }
            Reason::Recycled { cause, restart } => {
                format!("{}; recycled (restart {restart})", cause.words())
            }
            Reason::NotRecycled { cause, limit } => format!(
                "{}; not recycled: restarted {limit} time(s) in the last minute already \
                 (--recycle={limit}), too fast for a slow leak (hint: raise --task-mem or --max-age)",
                cause.words()
            ),
        }
    }
}

impl Words for BrakeWhy {
    fn words(&self) -> String {
        match self {
            BrakeWhy::LowMemory { available, level } => {
                format!("available {available} below the brake level {level}")
            }
            BrakeWhy::OverBudget { held, budget } => {
                format!("tasks hold {held}, over the {budget} budget")
            }
            BrakeWhy::PausedNeeded(Projection { need, limit }) => format!(
                "paused while the running tasks needed its memory ({need} of the {limit} they may hold)"
            ),
            BrakeWhy::WaitedLongerThanItRan { waited, ran } => format!(
                "paused {} after running {}: cheaper to redo than to keep its memory from the others",
                format_duration(*waited),
                format_duration(*ran)
            ),
        }
    }
}

impl Words for PauseWhy {
    fn words(&self) -> String {
        match self {
            PauseWhy::Pressure { avg10, limit } => {
                format!("memory pressure: PSI full avg10 {avg10:.1}% at or above {limit}%")
            }
            PauseWhy::NothingFits { available, reserve } => format!(
                "waiting for memory: nothing fits in {available} available (reserve {reserve})"
            ),
        }
    }
}

/// Why a running task was paused.
impl Words for Projection {
    fn words(&self) -> String {
        let Projection { need, limit } = self;
        format!("running tasks would need {need} of the {limit} they may hold")
    }
}

/// Why a running task was paused.
impl Words for PauseCause {
    fn words(&self) -> String {
        match self {
            PauseCause::Projection(p) => p.words(),
            PauseCause::Asleep { jump, room } => {
                format!(
                    "asleep, stopped until half its jump of {jump} fits ({room} left for jumps)"
                )
            }
        }
    }
}

/// Why fewer than `-j` tasks run while tasks wait.
impl Words for Short {
    fn words(&self) -> String {
        match self {
            Short::Memory { next, room } => {
                format!("waiting for memory (next needs {next}, {room} free for it)")
            }
            Short::Paused(n) => format!("{n} paused for memory"),
            Short::ColdStart => "cold start (waiting for the first peaks to settle)".to_string(),
            Short::Alone => "a task braked repeatedly runs alone".to_string(),
            Short::Psi => "memory pressure (PSI)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ramguard_core::Bytes;

    use super::*;

    const MIB: u64 = 1 << 20;

    fn mib(x: u64) -> Bytes {
        Bytes(x * MIB)
    }

    fn braked() -> Reason {
        Reason::Braked {
            peak: mib(1300),
            why: BrakeWhy::LowMemory {
                available: mib(180),
                level: mib(400),
            },
        }
    }

    /// The lines users and the journal have always seen, word for word.
    #[test]
    fn reasons_read_as_they_always_did() {
        let cases: Vec<(Reason, &str)> = vec![
            (Reason::Done, "done"),
            (Reason::ExitCode(3), "exit code 3"),
            (Reason::Signal(11), "killed by signal 11"),
            (Reason::NoStatus, "ended without an exit status"),
            (
                Reason::ShmFull,
                "bus error (SIGBUS) with /dev/shm full: shared memory ran out \
                 (hint: free /dev/shm or lower -j)",
            ),
            (
                Reason::OomKilled { peak: mib(1024) },
                "killed by the kernel's OOM killer at 1 GiB",
            ),
            (
                braked(),
                "braked at 1.3 GiB: available 180 MiB below the brake level 400 MiB",
            ),
            (
                Reason::OverCap {
                    peak: mib(1500),
                    cap: mib(1024),
                },
                "used 1.5 GiB, over the per-task cap 1 GiB (--task-mem)",
            ),
            (
                Reason::TimedOut {
                    limit: Duration::from_secs(3),
                },
                "ran longer than the 3s timeout (--timeout)",
            ),
            (
                Reason::MaxAge {
                    limit: Duration::from_secs(3600),
                },
                "older than 1h00m (--max-age)",
            ),
            (Reason::Interrupted { during: None }, "interrupted"),
            (
                Reason::Interrupted {
                    during: Some(Box::new(Reason::OomKilled { peak: mib(512) })),
                },
                "interrupted; killed by the kernel's OOM killer at 512 MiB",
            ),
            (
                Reason::TooBigAlone {
                    peak: mib(6144),
                    then: Box::new(braked()),
                },
                "needs more than 6 GiB, which does not fit even running alone \
                 (braked at 1.3 GiB: available 180 MiB below the brake level 400 MiB)",
            ),
            (
                Reason::OverBudget {
                    needs: mib(10 << 10),
                    budget: mib(6 << 10),
                },
                "needs at least 10 GiB, more than the 6 GiB budget (hint: raise --mem)",
            ),
            (
                Reason::Recycled {
                    cause: Box::new(Reason::OverCap {
                        peak: mib(120),
                        cap: mib(100),
                    }),
                    restart: 2,
                },
                "used 120 MiB, over the per-task cap 100 MiB (--task-mem); recycled (restart 2)",
            ),
            (
                Reason::NotRecycled {
                    cause: Box::new(Reason::MaxAge {
                        limit: Duration::from_secs(60),
                    }),
                    limit: 3,
                },
                "older than 1m00s (--max-age); not recycled: restarted 3 time(s) in the last \
                 minute already (--recycle=3), too fast for a slow leak \
                 (hint: raise --task-mem or --max-age)",
            ),
        ];
        for (reason, want) in cases {
            assert_eq!(reason.words(), want, "{reason:?}");
        }
    }

    #[test]
    fn why_fewer_run_reads_as_it_always_did() {
        let memory = Short::Memory {
            next: mib(1536),
            room: mib(512),
        };
        assert_eq!(
            memory.words(),
            "waiting for memory (next needs 1.5 GiB, 512 MiB free for it)"
        );
        assert_eq!(Short::Paused(2).words(), "2 paused for memory");
        assert_eq!(Short::Psi.words(), "memory pressure (PSI)");
    }

    #[test]
    fn notes_read_as_they_always_did() {
        assert_eq!(
            PauseWhy::Pressure {
                avg10: 60.0,
                limit: 40.0
            }
            .words(),
            "memory pressure: PSI full avg10 60.0% at or above 40%"
        );
        assert_eq!(
            PauseWhy::NothingFits {
                available: mib(2000),
                reserve: mib(256)
            }
            .words(),
            "waiting for memory: nothing fits in 2 GiB available (reserve 256 MiB)"
        );
        let squeeze = Projection {
            need: mib(5632),
            limit: mib(5120),
        };
        assert_eq!(
            squeeze.words(),
            "running tasks would need 5.5 GiB of the 5 GiB they may hold"
        );
        assert_eq!(
            PauseCause::Projection(squeeze).words(),
            "running tasks would need 5.5 GiB of the 5 GiB they may hold"
        );
        assert_eq!(
            PauseCause::Asleep {
                jump: mib(2560),
                room: mib(1024)
            }
            .words(),
            "asleep, stopped until half its jump of 2.5 GiB fits (1 GiB left for jumps)"
        );
        assert_eq!(
            BrakeWhy::PausedNeeded(squeeze).words(),
            "paused while the running tasks needed its memory (5.5 GiB of the 5 GiB they may hold)"
        );
        assert_eq!(
            BrakeWhy::WaitedLongerThanItRan {
                waited: Duration::from_secs(3),
                ran: Duration::from_millis(1500),
            }
            .words(),
            "paused 3s after running 1.5s: cheaper to redo than to keep its memory from the others"
        );
        assert_eq!(
            BrakeWhy::OverBudget {
                held: mib(7168),
                budget: mib(6144)
            }
            .words(),
            "tasks hold 7 GiB, over the 6 GiB budget"
        );
    }
}
