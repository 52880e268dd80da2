//! What `report` finds in a sweep, and the fix for each: computed from recorded facts.
//!
//! [`findings`] turns a sweep's facts (per task: peak, leak; per sweep: budget, caps,
//! threads, `/dev/shm` leftovers) into findings with fixes. Leak detection, the one finding
//! that reads a timeline, lives in [`leak`]. Everything here is pure: no clock, no I/O;
//! the caller reads the journal and `/dev/shm`.

pub mod leak;

pub use leak::{
    detect_leak, detect_running_leak, fit_line, Leak, LeakWatch, Line, LEAK_JUMP_HEAD,
    LEAK_JUMP_SHARE, LEAK_KNEE, LEAK_LIVE_KNEE, LEAK_MIN_POINTS, LEAK_MIN_R2, LEAK_MIN_RISE,
    LEAK_MIN_RISE_SHARE, LEAK_MIN_SPAN, LEAK_NOISE, LEAK_TEARDOWN, LEAK_WEIGHT_FLOOR,
    WATCH_CHECK_MS, WATCH_POINTS, WATCH_STEP_MS,
};

use serde::Serialize;

use crate::units::Bytes;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Costs time or memory.
    Warning,
    /// Loses work or results.
    Problem,
}

/// One finding: what was seen, the evidence, and what to change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// A stable identifier (`leak`, `near_cap`, `budget_not_binding`…).
    pub kind: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// One line saying what was found.
    pub title: String,
    /// The figures behind it.
    pub evidence: String,
    /// What to change.
    pub fix: String,
    /// The tasks it concerns (keys), at most a few.
    pub tasks: Vec<String>,
}

/// What one task did, as far as findings care.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFacts {
    /// A short label for the task (its parameters).
    pub label: String,
    /// Its identity key.
    pub key: String,
    /// Its highest memory.
    pub peak: Bytes,
    /// A leak seen in its last attempt.
    pub leak: Option<Leak>,
}

/// A sweep's facts, as read from the journal and the host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepFacts {
    /// `--mem` of the last run.
    pub budget: Bytes,
    /// `-j` of the last run.
    pub jobs: usize,
    /// `--task-mem`, if set.
    pub task_cap: Option<Bytes>,
    /// `--threads` of the last run; `None` when thread caps were off.
    pub threads: Option<u32>,
    /// CPUs usable here.
    pub cpus: u32,
    /// The tasks.
    pub tasks: Vec<TaskFacts>,
    /// Highest Σ memory of running tasks at any time.
    pub peak_used: Bytes,
    /// Most tasks running at once.
    pub max_running: usize,
    /// Share of the time tasks waited in the queue while fewer than `-j` ran (0…1).
    pub memory_bound_share: f64,
    /// Admission pauses journaled (pressure stall: no new task started for a while).
    pub pauses: u64,
    /// Tasks paused (their trees stopped) because memory neared the limit.
    pub task_pauses: u64,
    /// Brakes journaled.
    pub brakes: u64,
    /// Attempts the kernel OOM-killed.
    pub oom_kills: u64,
    /// Task-seconds lost to brakes, kills, caps and timeouts.
    pub wasted_secs: f64,
    /// Task-seconds of all attempts.
    pub total_secs: f64,
    /// Files in /dev/shm changed during the sweep, still there, and open or mapped by no
    /// process: (name, bytes).
    pub shm_leftovers: Vec<(String, Bytes)>,
}

/// Share of the cap at which a task counts as near it.
pub const NEAR_CAP: f64 = 0.9;
/// Below this share of the budget, with `-j` always full, the budget never bound.
pub const NOT_BINDING: f64 = 0.6;
/// Above this share of the time, memory (not `-j`) held tasks back.
pub const ALWAYS_BINDING: f64 = 0.5;
/// Findings list at most this many tasks each.
const SHOWN_TASKS: usize = 5;

fn shown(tasks: &[&TaskFacts]) -> Vec<String> {
    tasks
        .iter()
        .take(SHOWN_TASKS)
        .map(|t| t.key.clone())
        .collect()
}

fn labels(tasks: &[&TaskFacts]) -> String {
    let mut s: Vec<String> = tasks
        .iter()
        .take(SHOWN_TASKS)
        .map(|t| t.label.clone())
        .collect();
    if tasks.len() > SHOWN_TASKS {
        s.push(format!("and {} more", tasks.len() - SHOWN_TASKS));
    }
    s.join(", ")
}

/// The findings about a sweep, most severe first.
pub fn findings(f: &SweepFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let leaking: Vec<&TaskFacts> = f.tasks.iter().filter(|t| t.leak.is_some()).collect();
    if !leaking.is_empty() {
        let worst = leaking
            .iter()
            .filter_map(|t| t.leak.map(|l| (t, l)))
            .max_by(|a, b| a.1.bytes_per_sec.total_cmp(&b.1.bytes_per_sec));
        if let Some((t, l)) = worst {
            let limit = f.task_cap.unwrap_or(f.budget);
            let which = if f.task_cap.is_some() {
                "its cap"
            } else {
                "the budget"
            };
            out.push(Finding {
                kind: "leak",
                severity: Severity::Problem,
                title: format!(
                    "{} task(s) kept growing after their ramp: a leak ({})",
                    leaking.len(),
                    labels(&leaking)
                ),
                evidence: format!(
                    "{} grew {:.1} MiB/s from {:.1} s on, reaching {} at {:.1} s; at that rate it \
                     reaches {which} ({limit}) {:.0} s later",
                    t.label,
                    l.mib_per_sec(),
                    l.since_ms as f64 / 1000.0,
                    l.current,
                    l.at_ms as f64 / 1000.0,
                    l.time_to(limit).as_secs_f64()
                ),
                fix: "free what each iteration allocates (caches, lists of results, figures); or \
                      restart long-lived workers before they grow too large: --recycle with \
                      --task-mem (Pool(maxtasksperchild=...) in Python)"
                    .into(),
                tasks: shown(&leaking),
            });
        }
    }
    if f.oom_kills > 0 {
        out.push(Finding {
            kind: "oom_killed",
            severity: Severity::Problem,
            title: format!("the kernel's OOM killer stopped {} attempt(s)", f.oom_kills),
            evidence: "the kernel's oom_kill counter moved while they ran".into(),
            fix: "lower --mem so that the brake acts before the kernel does, or stop what else \
                  uses memory on this machine"
                .into(),
            tasks: Vec::new(),
        });
    }
    if let Some(cap) = f.task_cap {
        let near: Vec<&TaskFacts> = f
            .tasks
            .iter()
            .filter(|t| t.peak.get() as f64 >= NEAR_CAP * cap.get() as f64)
            .collect();
        if !near.is_empty() {
            out.push(Finding {
                kind: "near_cap",
                severity: Severity::Warning,
                title: format!(
                    "{} task(s) came within {:.0}% of --task-mem {cap} ({})",
                    near.len(),
                    (1.0 - NEAR_CAP) * 100.0,
                    labels(&near)
                ),
                evidence: format!(
                    "highest peak {}",
                    near.iter().map(|t| t.peak).max().unwrap_or_default()
                ),
                fix: format!(
                    "raise --task-mem above {} if these peaks are expected; otherwise they are \
                     the next to fail as over cap",
                    near.iter()
                        .map(|t| t.peak)
                        .max()
                        .unwrap_or_default()
                        .scale(1.2)
                ),
                tasks: shown(&near),
            });
        }
    }
    if f.brakes > 0 || f.wasted_secs > 0.0 {
        let share = if f.total_secs > 0.0 {
            f.wasted_secs / f.total_secs * 100.0
        } else {
            0.0
        };
        out.push(Finding {
            kind: "waste",
            severity: if share >= 10.0 {
                Severity::Warning
            } else {
                Severity::Info
            },
            title: format!(
                "{:.0} task-seconds ({share:.0}% of all) were lost to brakes, kills, caps and \
                 timeouts",
                f.wasted_secs
            ),
            evidence: format!("{} brake(s), {} task pause(s)", f.brakes, f.task_pauses),
            fix: if f.brakes > 0 {
                "brakes mean tasks were admitted on a prediction that proved too small: give \
                 --estimate for the first tasks, or lower -j"
                    .into()
            } else {
                "the time went to tasks stopped at --task-mem or --timeout (or interrupted): \
                 raise the cap for tasks that legitimately need more, or fix what makes them \
                 grow"
                    .into()
            },
            tasks: Vec::new(),
        });
    }
    let peak_share = if f.budget.get() > 0 {
        f.peak_used.get() as f64 / f.budget.get() as f64
    } else {
        0.0
    };
    let typical = {
        let mut p: Vec<u64> = f.tasks.iter().map(|t| t.peak.get()).collect();
        p.sort_unstable();
        p.get(p.len().saturating_sub(1) * 9 / 10)
            .copied()
            .unwrap_or(0)
    };
    if f.jobs > 0
        && f.max_running >= f.jobs
        && f.memory_bound_share < ALWAYS_BINDING
        && peak_share < NOT_BINDING
        && f.pauses == 0
        && f.task_pauses == 0
        && f.brakes == 0
        && f.tasks.len() > f.jobs
    {
        let fit = f
            .budget
            .get()
            .checked_div(typical)
            .map_or(f.jobs * 2, |n| n as usize);
        let suggest = fit.min(f.jobs * 4).max(f.jobs + 1);
        out.push(Finding {
            kind: "budget_not_binding",
            severity: Severity::Info,
            title: format!(
                "the memory budget never limited the sweep: -j {} did",
                f.jobs
            ),
            evidence: format!(
                "running tasks held at most {} of the {} budget ({:.0}%); p90 peak {}",
                f.peak_used,
                f.budget,
                peak_share * 100.0,
                Bytes(typical)
            ),
            fix: format!(
                "raise -j (to about {suggest}) if the CPUs are not busy ({} usable here); \
                 ramguard still admits only what fits",
                f.cpus
            ),
            tasks: Vec::new(),
        });
    }
    let held_back = f.memory_bound_share >= ALWAYS_BINDING;
    if held_back && peak_share < NOT_BINDING && f.pauses == 0 {
        out.push(Finding {
            kind: "cautious_admission",
            severity: Severity::Info,
            title: format!(
                "fewer than -j {} ran {:.0}% of the time until the last task started, although the \
                 budget was never near full",
                f.jobs,
                f.memory_bound_share * 100.0
            ),
            evidence: format!(
                "running tasks held at most {} of the {} budget ({:.0}%); until peaks are \
                 measured, ramguard admits unknown tasks cautiously",
                f.peak_used,
                f.budget,
                peak_share * 100.0
            ),
            fix: "rerun: learned peaks are kept in the journal; or give --estimate SIZE (the \
                  peak you expect) so the first tasks start together"
                .into(),
            tasks: Vec::new(),
        });
    } else if held_back {
        out.push(Finding {
            kind: "budget_binding",
            severity: Severity::Warning,
            title: format!(
                "memory held tasks back {:.0}% of the time until the last task started: fewer than \
                 -j {} could run",
                f.memory_bound_share * 100.0,
                f.jobs
            ),
            evidence: format!(
                "at most {} ran at once; running tasks held up to {} of the {} budget",
                f.max_running, f.peak_used, f.budget
            ),
            fix: "raise --mem if this machine has more to give, run on a larger machine \
                  (`ramguard plan --mem SIZE` predicts how long), or shrink each task's peak \
                  (load fewer columns or symbols, float32)"
                .into(),
            tasks: Vec::new(),
        });
    }
    match f.threads {
        None if f.jobs > 1 => out.push(Finding {
            kind: "threads",
            severity: Severity::Warning,
            title: "thread caps were off (--no-thread-caps) with several tasks at once".into(),
            evidence: format!(
                "-j {} tasks, each free to start a BLAS/OpenMP thread per CPU ({} CPUs): up to \
                 {} threads",
                f.jobs,
                f.cpus,
                f.jobs * f.cpus as usize
            ),
            fix: "drop --no-thread-caps (ramguard sets OMP_NUM_THREADS and its family to \
                  --threads, default 1)"
                .into(),
            tasks: Vec::new(),
        }),
        // One thread per task already: the tasks themselves outnumber the CPUs. Each then
        // runs slower and holds its memory longer, which only pays when tasks wait on I/O.
        Some(1) if f.cpus > 0 && f.max_running > f.cpus as usize * 2 => out.push(Finding {
            kind: "threads",
            severity: Severity::Warning,
            title: format!(
                "more tasks than CPUs: -j {} single-threaded tasks on {} CPUs",
                f.jobs, f.cpus
            ),
            evidence: format!(
                "up to {} tasks ran at once and shared {} CPUs: each ran slower and held its \
                 memory longer",
                f.max_running, f.cpus
            ),
            fix: format!(
                "use -j {} unless the tasks mostly wait on disk or network",
                f.cpus
            ),
            tasks: Vec::new(),
        }),
        Some(t) if t > 1 && f.cpus > 0 && t as usize * f.jobs > f.cpus as usize * 2 => {
            out.push(Finding {
                kind: "threads",
                severity: Severity::Warning,
                title: format!(
                    "threads oversubscribe the CPUs: -j {} × --threads {t} on {} CPUs",
                    f.jobs, f.cpus
                ),
                evidence: format!(
                    "{} threads compete for {} CPUs; every thread's buffers cost memory too",
                    t as usize * f.jobs,
                    f.cpus
                ),
                fix: format!(
                    "use --threads 1 (or -j {} with --threads {t})",
                    (f.cpus / t).max(1)
                ),
                tasks: Vec::new(),
            })
        }
        _ => {}
    }
    if !f.shm_leftovers.is_empty() {
        let total: Bytes = f.shm_leftovers.iter().map(|s| s.1).sum();
        out.push(Finding {
            kind: "shm_leftovers",
            severity: Severity::Warning,
            title: format!(
                "{} file(s) in /dev/shm appeared during the sweep, are still there and \
                 nothing has them open ({total})",
                f.shm_leftovers.len()
            ),
            evidence: f
                .shm_leftovers
                .iter()
                .take(SHOWN_TASKS)
                .map(|(n, b)| format!("/dev/shm/{n} ({b})"))
                .collect::<Vec<_>>()
                .join(", "),
            fix: "they hold memory until removed: `rm` them once nothing uses them, and call \
                  SharedMemory.unlink() (or shm_unlink) in the tasks"
                .into(),
            tasks: Vec::new(),
        });
    }
    out.sort_by_key(|x| std::cmp::Reverse(x.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    use super::leak::tests::trace;

    fn task(label: &str, peak: u64, leak: Option<Leak>) -> TaskFacts {
        TaskFacts {
            label: label.into(),
            key: label.into(),
            peak: Bytes(peak),
            leak,
        }
    }

    #[test]
    fn findings_name_the_leak_the_cap_and_the_idle_budget() {
        let leak = detect_leak(&trace(200 * MIB, 500, 20 * MIB, 5000, 100));
        let facts = SweepFacts {
            budget: Bytes(4096 * MIB),
            jobs: 2,
            task_cap: Some(Bytes(300 * MIB)),
            threads: Some(1),
            cpus: 4,
            tasks: vec![
                task("a", 100 * MIB, None),
                task("b", 290 * MIB, leak),
                task("c", 100 * MIB, None),
            ],
            peak_used: Bytes(400 * MIB),
            max_running: 2,
            ..SweepFacts::default()
        };
        let f = findings(&facts);
        let kinds: Vec<&str> = f.iter().map(|x| x.kind).collect();
        assert_eq!(kinds, ["leak", "near_cap", "budget_not_binding"]);
        assert!(f[0].evidence.contains("20.0 MiB/s"), "{}", f[0].evidence);
        assert_eq!(f[0].tasks, ["b"]);
        assert!(f[2].fix.contains("raise -j"));
    }

    #[test]
    fn a_budget_that_paused_tasks_is_not_called_never_limiting() {
        // -j always full and the budget far from full on the samples, but tasks were
        // paused as memory neared the limit: the budget did limit the sweep.
        let facts = SweepFacts {
            budget: Bytes(4096 * MIB),
            jobs: 2,
            cpus: 2,
            tasks: (0..4)
                .map(|i| task(&format!("t{i}"), 500 * MIB, None))
                .collect(),
            peak_used: Bytes(1000 * MIB),
            max_running: 2,
            memory_bound_share: 0.1,
            ..SweepFacts::default()
        };
        let kinds = |f: &SweepFacts| -> Vec<&str> { findings(f).iter().map(|x| x.kind).collect() };
        assert!(kinds(&facts).contains(&"budget_not_binding"));
        let paused = SweepFacts {
            task_pauses: 2,
            ..facts
        };
        assert!(!kinds(&paused).contains(&"budget_not_binding"));
    }

    #[test]
    fn findings_name_a_binding_budget_threads_and_shm_leftovers() {
        let facts = SweepFacts {
            budget: Bytes(1024 * MIB),
            jobs: 4,
            threads: None,
            cpus: 2,
            tasks: vec![task("a", 500 * MIB, None)],
            peak_used: Bytes(1000 * MIB),
            max_running: 2,
            memory_bound_share: 0.8,
            pauses: 3,
            task_pauses: 0,
            shm_leftovers: vec![("psm_1".into(), Bytes(10 * MIB))],
            ..SweepFacts::default()
        };
        let kinds: Vec<&str> = findings(&facts).iter().map(|x| x.kind).collect();
        assert_eq!(kinds, ["budget_binding", "threads", "shm_leftovers"]);
    }

    #[test]
    fn single_threaded_tasks_on_too_few_cpus_are_told_to_lower_j_not_to_set_threads_1() {
        // The report said "use --threads 1" to a sweep that already ran with --threads 1.
        let facts = |threads, max_running| SweepFacts {
            jobs: 8,
            threads: Some(threads),
            cpus: 2,
            max_running,
            ..SweepFacts::default()
        };
        let threads = |f: &SweepFacts| findings(f).into_iter().find(|x| x.kind == "threads");
        let one = threads(&facts(1, 5)).expect("5 tasks on 2 CPUs");
        assert!(one.title.contains("more tasks than CPUs"), "{}", one.title);
        assert_eq!(
            one.fix,
            "use -j 2 unless the tasks mostly wait on disk or network"
        );
        // Memory let only 3 run at once: nothing was oversubscribed.
        assert!(threads(&facts(1, 3)).is_none());
        let four = threads(&facts(4, 3)).expect("8 × 4 threads on 2 CPUs");
        assert!(four.fix.starts_with("use --threads 1"), "{}", four.fix);
    }
}
