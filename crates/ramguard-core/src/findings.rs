//! Leak detection and the findings `report` shows, computed from recorded facts.
//!
//! Theory of operation: a task's memory is a timeline of `(ms since start, bytes)` points.
//! A task *leaks* when, after its ramp, memory keeps rising along a straight line. The ramp
//! is found by the best two-piece linear fit (each piece fitted by least squares, the split
//! chosen to minimise the total squared error), with the task's start `(0, 0)` as the first
//! point (a task holds nothing before it starts, so an allocation made before the first
//! sample still shows as a steep first piece). It is a leak when the second piece rises
//! clearly slower than the ramp or its line meets t = 0 well above zero (either way the ramp
//! ended, possibly before a late first sample), fits its points well, is still
//! rising over its last third, and has risen by a noticeable amount over a noticeable time.
//! A ramp that simply has not ended yet (one straight line from zero) is not a leak.
//!
//! [`LeakWatch`] applies the same test while a task runs, on a bounded, max-preserving copy
//! of its timeline, so that `run` can flag a leak before the task reaches its cap.
//! [`findings`] turns a sweep's facts into findings with fixes. Everything here is pure: no
//! clock, no I/O; the caller reads the journal and `/dev/shm`.

use std::time::Duration;

use serde::Serialize;

use crate::units::Bytes;

/// Least time the rising piece must span before a leak is called.
pub const LEAK_MIN_SPAN: Duration = Duration::from_secs(2);
/// Least points in the rising piece.
pub const LEAK_MIN_POINTS: usize = 6;
/// Least rise over the rising piece, absolute.
pub const LEAK_MIN_RISE: Bytes = Bytes(16 << 20);
/// Least rise over the rising piece, as a share of the level where it starts.
pub const LEAK_MIN_RISE_SHARE: f64 = 0.05;
/// The rising piece must be at most this share of the ramp's slope (a real knee).
pub const LEAK_KNEE: f64 = 0.5;
/// A climb whose line meets t = 0 at this share of its starting level or more came after a
/// ramp (one that ended before the first sample).
pub const LEAK_JUMP_SHARE: f64 = 0.25;
/// Least coefficient of determination of the rising piece's line.
pub const LEAK_MIN_R2: f64 = 0.8;

/// A straight line fitted by least squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Change of y per unit of x.
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// Coefficient of determination, 0…1 (1 when every point is on the line).
    pub r2: f64,
    /// Sum of squared residuals.
    pub sse: f64,
}

/// Running sums of a point set, so that any contiguous range is fitted in O(1).
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
    yy: f64,
}

impl Sums {
    fn add(self, x: f64, y: f64) -> Sums {
        Sums {
            n: self.n + 1.0,
            x: self.x + x,
            y: self.y + y,
            xx: self.xx + x * x,
            xy: self.xy + x * y,
            yy: self.yy + y * y,
        }
    }

    fn minus(self, o: Sums) -> Sums {
        Sums {
            n: self.n - o.n,
            x: self.x - o.x,
            y: self.y - o.y,
            xx: self.xx - o.xx,
            xy: self.xy - o.xy,
            yy: self.yy - o.yy,
        }
    }

    fn line(self) -> Option<Line> {
        if self.n < 2.0 {
            return None;
        }
        let sxx = self.xx - self.x * self.x / self.n;
        let sxy = self.xy - self.x * self.y / self.n;
        let syy = (self.yy - self.y * self.y / self.n).max(0.0);
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let intercept = (self.y - slope * self.x) / self.n;
        let sse = (syy - slope * sxy).max(0.0);
        let r2 = if syy > 0.0 { 1.0 - sse / syy } else { 1.0 };
        Some(Line {
            slope,
            intercept,
            r2: r2.clamp(0.0, 1.0),
            sse,
        })
    }
}

/// Fits a line through `(x, y)` points; `None` with fewer than two distinct x.
pub fn fit_line(points: &[(f64, f64)]) -> Option<Line> {
    points
        .iter()
        .fold(Sums::default(), |s, &(x, y)| s.add(x, y))
        .line()
}

/// A task whose memory keeps rising after its ramp.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Leak {
    /// Growth after the ramp, in bytes per second.
    pub bytes_per_sec: f64,
    /// When the ramp ended (ms since the task started).
    pub since_ms: u64,
    /// The last point's time (ms since start).
    pub at_ms: u64,
    /// Memory at the last point.
    pub current: Bytes,
    /// How well a line fits the growth after the ramp, 0…1.
    pub r2: f64,
}

impl Leak {
    /// How long from the last point until memory reaches `limit` at this slope; zero if it
    /// already has.
    pub fn time_to(&self, limit: Bytes) -> Duration {
        if self.current >= limit || self.bytes_per_sec <= 0.0 {
            return Duration::ZERO;
        }
        let secs = (limit.get() - self.current.get()) as f64 / self.bytes_per_sec;
        Duration::from_secs_f64(secs.min(1e9))
    }

    /// The rate in MiB/s, for display.
    pub fn mib_per_sec(&self) -> f64 {
        self.bytes_per_sec / f64::from(1u32 << 20)
    }
}

/// Looks for a leak in a timeline of `(ms since start, bytes)` points, oldest first.
///
/// Returns `Some` if and only if memory rose steeply (the ramp), then kept rising along a
/// line at most [`LEAK_KNEE`] of the ramp's slope, for at least [`LEAK_MIN_SPAN`] and
/// [`LEAK_MIN_POINTS`], by at least [`LEAK_MIN_RISE`] (and [`LEAK_MIN_RISE_SHARE`] of its
/// level), with R² of at least [`LEAK_MIN_R2`], and is still rising over its last third.
pub fn detect_leak(points: &[(u64, u64)]) -> Option<Leak> {
    // The task starts holding nothing; a sample at t = 0 replaces this origin.
    let mut pts: Vec<(f64, f64)> = Vec::with_capacity(points.len() + 1);
    if points.first().is_none_or(|p| p.0 > 0) {
        pts.push((0.0, 0.0));
    }
    pts.extend(points.iter().map(|&(t, b)| (t as f64 / 1000.0, b as f64)));
    let n = pts.len();
    if n < LEAK_MIN_POINTS + 2 {
        return None;
    }
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(Sums::default());
    for &(x, y) in &pts {
        let last = *prefix.last().unwrap_or(&Sums::default());
        prefix.push(last.add(x, y));
    }
    let all = prefix[n];
    // Best split k: the ramp is pts[..k], the rest pts[k..]; each piece has 2+ points. The
    // split is chosen freely and the rest judged afterwards: forcing LEAK_MIN_POINTS into
    // the rest would move the split back into a ramp that levelled off only lately, and
    // the ramp's end would read as a climb.
    let mut best: Option<(f64, usize, Line, Line)> = None;
    for (k, &head) in prefix.iter().enumerate().take(n - 1).skip(2) {
        let (Some(a), Some(b)) = (head.line(), all.minus(head).line()) else {
            continue;
        };
        let sse = a.sse + b.sse;
        if best.as_ref().is_none_or(|(s, ..)| sse < *s) {
            best = Some((sse, k, a, b));
        }
    }
    let (_, k, ramp, rest) = best?;
    let tail = &pts[k..];
    if tail.len() < LEAK_MIN_POINTS {
        return None;
    }
    let (t0, t1) = (tail[0].0, tail[tail.len() - 1].0);
    let span = t1 - t0;
    if span < LEAK_MIN_SPAN.as_secs_f64() || rest.slope <= 0.0 {
        return None;
    }
    let start_level = (rest.intercept + rest.slope * t0).max(0.0);
    // The ramp ended: the climb is clearly slower than the ramp was, or, when the ramp was
    // over before the first sample, the climb's line starts well above zero (a task that
    // merely ramps slowly from nothing has its line through the origin).
    let knee = ramp.slope > 0.0 && rest.slope <= LEAK_KNEE * ramp.slope;
    let jumped = rest.intercept >= LEAK_MIN_RISE.get() as f64
        && rest.intercept >= LEAK_JUMP_SHARE * start_level;
    if !knee && !jumped {
        return None;
    }
    if rest.r2 < LEAK_MIN_R2 {
        return None;
    }
    let rise = rest.slope * span;
    if rise < LEAK_MIN_RISE.get() as f64 || rise < LEAK_MIN_RISE_SHARE * start_level {
        return None;
    }
    // Still rising now: the last third of the piece has a clearly positive slope too.
    let third = &tail[tail.len() - (tail.len() / 3).max(3)..];
    let recent = fit_line(third)?;
    if recent.slope < 0.3 * rest.slope {
        return None;
    }
    let last = points.last()?;
    Some(Leak {
        bytes_per_sec: rest.slope,
        since_ms: (t0 * 1000.0).round() as u64,
        at_ms: last.0,
        current: Bytes(last.1),
        r2: rest.r2,
    })
}

/// Most points a [`LeakWatch`] keeps; beyond, neighbours are merged (by their maximum).
pub const WATCH_POINTS: usize = 240;
/// Raw samples closer than this to the last kept point are merged into it.
pub const WATCH_STEP_MS: u64 = 100;
/// A running task is re-examined at most this often.
pub const WATCH_CHECK_MS: u64 = 1000;

/// Watches one running attempt for a leak, on a bounded copy of its timeline.
#[derive(Debug, Clone)]
pub struct LeakWatch {
    points: Vec<(u64, u64)>,
    /// When the slot the last point stands for began.
    slot_ms: u64,
    step_ms: u64,
    last_check_ms: Option<u64>,
    flagged: Option<Leak>,
}

impl Default for LeakWatch {
    fn default() -> LeakWatch {
        LeakWatch::new()
    }
}

impl LeakWatch {
    /// A watch for an attempt that just started.
    pub fn new() -> LeakWatch {
        LeakWatch {
            points: Vec::new(),
            slot_ms: 0,
            step_ms: WATCH_STEP_MS,
            last_check_ms: None,
            flagged: None,
        }
    }

    /// Adds a sample (ms since the attempt started, bytes); returns the leak the first time
    /// one is detected, and `None` before and after.
    pub fn push(&mut self, t_ms: u64, bytes: u64) -> Option<Leak> {
        match self.points.last_mut() {
            Some(last) if t_ms < self.slot_ms + self.step_ms => {
                if bytes >= last.1 {
                    *last = (t_ms, bytes);
                }
            }
            _ => {
                self.slot_ms = t_ms;
                self.points.push((t_ms, bytes));
            }
        }
        if self.points.len() > WATCH_POINTS {
            self.points = self
                .points
                .chunks(2)
                .map(|c| *c.iter().max_by_key(|p| p.1).unwrap_or(&c[0]))
                .collect();
            self.step_ms = self.step_ms.saturating_mul(2);
        }
        if self.flagged.is_some()
            || self
                .last_check_ms
                .is_some_and(|c| t_ms < c + WATCH_CHECK_MS)
        {
            return None;
        }
        self.last_check_ms = Some(t_ms);
        let leak = detect_leak(&self.points)?;
        self.flagged = Some(leak);
        Some(leak)
    }

    /// The leak flagged so far, if any.
    pub fn flagged(&self) -> Option<&Leak> {
        self.flagged.as_ref()
    }
}

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
    /// Admission pauses journaled.
    pub pauses: u64,
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
            evidence: format!("{} brake(s), {} pause(s)", f.brakes, f.pauses),
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
                "fewer than -j {} ran {:.0}% of the time although the budget was never near full",
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
                "memory held tasks back {:.0}% of the time: fewer than -j {} could run",
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
        Some(t) if f.cpus > 0 && t as usize * f.jobs > f.cpus as usize * 2 => out.push(Finding {
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
        }),
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

    /// A ramp to `peak` over `ramp_ms`, then `leak` bytes/s, sampled every `step` ms.
    fn trace(peak: u64, ramp_ms: u64, leak: u64, until_ms: u64, step: u64) -> Vec<(u64, u64)> {
        (1..=until_ms / step)
            .map(|i| {
                let t = i * step;
                let m = if t < ramp_ms {
                    peak * t / ramp_ms
                } else {
                    peak + leak * (t - ramp_ms) / 1000
                };
                (t, m)
            })
            .collect()
    }

    #[test]
    fn a_line_through_its_points_fits_exactly() {
        let l = fit_line(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((l.slope - 2.0).abs() < 1e-9);
        assert!((l.intercept - 1.0).abs() < 1e-9);
        assert!((l.r2 - 1.0).abs() < 1e-9);
        assert!(fit_line(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }

    #[test]
    fn a_steady_climb_after_the_ramp_is_a_leak_with_its_slope() {
        let pts = trace(200 * MIB, 500, 20 * MIB, 5000, 100);
        let leak = detect_leak(&pts).expect("leak");
        assert!(
            (leak.mib_per_sec() - 20.0).abs() < 1.0,
            "{}",
            leak.mib_per_sec()
        );
        assert!(leak.since_ms >= 400 && leak.since_ms <= 700, "{leak:?}");
        // 290 MiB at 5 s; a 400 MiB cap is 110 MiB away: 5.5 s.
        let eta = leak.time_to(Bytes(400 * MIB)).as_secs_f64();
        assert!((eta - 5.5).abs() < 0.5, "{eta}");
    }

    #[test]
    fn an_allocation_before_the_first_sample_still_counts_as_the_ramp() {
        let pts: Vec<(u64, u64)> = (1..=40)
            .map(|i| (i * 100, 300 * MIB + i * 2 * MIB))
            .collect();
        assert!(detect_leak(&pts).is_some());
    }

    #[test]
    fn a_ramp_over_before_a_late_first_sample_still_counts() {
        // First seen at 1 s: 48 MiB allocated in 0.2 s, then 40 MiB/s. The ramp's slope
        // from the origin (70 MiB/s) is not twice the climb's, but the climb's line starts
        // at some 40 MiB, not at zero.
        let pts: Vec<(u64, u64)> = (0..12)
            .map(|i| {
                let t = 1000 + i * 450;
                (t, 48 * MIB + 40 * MIB * (t - 200) / 1000)
            })
            .collect();
        let leak = detect_leak(&pts).expect("leak");
        assert!((leak.mib_per_sec() - 40.0).abs() < 1.0, "{leak:?}");
    }

    #[test]
    fn a_plateau_is_not_a_leak() {
        let pts = trace(200 * MIB, 500, 0, 10_000, 100);
        assert_eq!(detect_leak(&pts), None);
    }

    #[test]
    fn a_ramp_that_has_not_ended_is_not_a_leak() {
        let pts = trace(1000 * MIB, 20_000, 0, 8_000, 100);
        assert_eq!(detect_leak(&pts), None);
    }

    #[test]
    fn noise_and_sawtooth_around_a_plateau_are_not_a_leak() {
        let pts: Vec<(u64, u64)> = (1..=100)
            .map(|i| {
                let t = i * 100;
                let m = if t < 500 {
                    t * MIB / 5
                } else {
                    100 * MIB + (i % 7) * 3 * MIB
                };
                (t, m)
            })
            .collect();
        assert_eq!(detect_leak(&pts), None);
    }

    #[test]
    fn a_tiny_or_short_creep_is_not_a_leak() {
        // 1 MiB/s over 8 s is 8 MiB: under the least rise.
        assert_eq!(detect_leak(&trace(200 * MIB, 500, MIB, 8_000, 100)), None);
        // A fast climb, but only 1 s after the ramp.
        assert_eq!(
            detect_leak(&trace(200 * MIB, 500, 50 * MIB, 1_500, 100)),
            None
        );
    }

    #[test]
    fn growth_that_stopped_is_not_flagged_at_the_end() {
        let mut pts = trace(100 * MIB, 300, 30 * MIB, 4_000, 100);
        let top = pts.last().unwrap().1;
        pts.extend((41..=80).map(|i| (i * 100, top)));
        assert_eq!(detect_leak(&pts), None);
    }

    #[test]
    fn the_watch_flags_once_and_early() {
        let mut w = LeakWatch::new();
        let mut first = None;
        let mut count = 0;
        for (t, m) in trace(64 * MIB, 300, 40 * MIB, 20_000, 20) {
            if let Some(l) = w.push(t, m) {
                count += 1;
                first.get_or_insert((t, l));
            }
        }
        assert_eq!(count, 1);
        let (t, l) = first.unwrap();
        assert!(t <= 4_000, "flagged at {t} ms");
        assert!((l.mib_per_sec() - 40.0).abs() < 3.0, "{l:?}");
        assert!(w.flagged().is_some());
    }

    #[test]
    fn the_watch_stays_bounded_on_a_long_run() {
        let mut w = LeakWatch::new();
        for i in 0..200_000u64 {
            w.push(i * 10, 100 * MIB);
        }
        assert!(w.points.len() <= WATCH_POINTS);
        assert!(w.flagged().is_none());
    }

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
            shm_leftovers: vec![("psm_1".into(), Bytes(10 * MIB))],
            ..SweepFacts::default()
        };
        let kinds: Vec<&str> = findings(&facts).iter().map(|x| x.kind).collect();
        assert_eq!(kinds, ["budget_binding", "threads", "shm_leftovers"]);
    }
}
