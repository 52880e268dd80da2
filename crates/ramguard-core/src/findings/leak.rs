//! Leak detection: does a task's memory keep rising after its ramp?
//!
//! Theory of operation: a task's memory is a timeline of `(ms since start, bytes)` points.
//! A task *leaks* when, after its ramp, memory keeps rising along a straight line. The ramp
//! is found by the best two-piece linear fit (each piece fitted by least squares, the split
//! chosen to minimise the total squared *relative* error, because memory's jitter grows with
//! its level), with the task's start `(0, 0)` as the first point (a task holds nothing
//! before it starts, so an allocation made before the first sample still shows as a steep
//! first piece). It is a leak when the second piece rises clearly slower than the ramp or,
//! when the ramp was over before the first samples, its line meets t = 0 well above zero;
//! fits its points well; is still rising over its last third; has risen by a noticeable
//! amount over a noticeable time; and its rise stands out of its own noise (a t test on its
//! slope, and a recent rise of several residual deviations, not carried by one point).
//! A ramp that simply has not ended yet (one straight line from zero) is not a leak, nor is
//! a noisy plateau whose jitter happens to line up.
//!
//! [`LeakWatch`] applies the same test, stricter, while a task runs, on a bounded,
//! max-preserving copy of its timeline, so that `run` can flag a leak before the task
//! reaches its cap.

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
/// While a task runs, the climb must be at most this share of the ramp's rate, and of its
/// mean rate up to the climb, in either case (see [`LeakWatch`]).
pub const LEAK_LIVE_KNEE: f64 = 0.25;
/// A climb whose line meets t = 0 at this share of its starting level or more, with every
/// sample before it at this share or more, came after a ramp (one that ended before the
/// first sample). At 0.25, and without the second condition, a ramp whose first 150 ms ran
/// at full speed and the rest at about half (a CPU shared by more tasks) was taken for
/// one: its first sample at 2 MiB, its line meeting t = 0 at 18 MiB.
pub const LEAK_JUMP_SHARE: f64 = 0.4;
/// ... but only when the ramp was not seen: at most this many points (the origin included)
/// come before the climb. A ramp seen rising is judged by its slope alone.
pub const LEAK_JUMP_HEAD: usize = 3;
/// Least coefficient of determination of the rising piece's line.
pub const LEAK_MIN_R2: f64 = 0.8;
/// The rise over the rising piece's last third must be at least this many times the
/// residual noise (standard deviation about its line).
pub const LEAK_NOISE: f64 = 4.0;
/// Last samples below this share of the highest before them are the task's teardown (it
/// frees its memory as it exits or is killed) and are left out. A sample taken while a
/// 290 MiB task was freeing its memory read 253 MiB, 87% of its top: at 80% here, it was
/// kept, its "last third" stopped rising, and `report` missed a 40 MiB/s leak (it failed
/// a CI run). Jittered timelines of that task (random sample times 20–800 ms apart,
/// ±1% noise, a final sample anywhere below the top half of the time): 738 misses in
/// 20,000 at 80%, 4 at 98%; plateaus of 50–550 MiB with up to ±3% jitter: no leak called
/// in 20,000 either way.
pub const LEAK_TEARDOWN: f64 = 0.98;
/// Choosing where the ramp ends, points weigh by 1 / (level + this share of the highest)².
pub const LEAK_WEIGHT_FLOOR: f64 = 0.05;

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
    /// How many points.
    count: f64,
    /// Their total weight (the count when unweighted).
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
            count: self.count + 1.0,
            n: self.n + 1.0,
            x: self.x + x,
            y: self.y + y,
            xx: self.xx + x * x,
            xy: self.xy + x * y,
            yy: self.yy + y * y,
        }
    }

    /// Adds a point that counts `w` times.
    fn add_weighted(self, x: f64, y: f64, w: f64) -> Sums {
        Sums {
            count: self.count + 1.0,
            n: self.n + w,
            x: self.x + w * x,
            y: self.y + w * y,
            xx: self.xx + w * x * x,
            xy: self.xy + w * x * y,
            yy: self.yy + w * y * y,
        }
    }

    fn minus(self, o: Sums) -> Sums {
        Sums {
            count: self.count - o.count,
            n: self.n - o.n,
            x: self.x - o.x,
            y: self.y - o.y,
            xx: self.xx - o.xx,
            xy: self.xy - o.xy,
            yy: self.yy - o.yy,
        }
    }

    fn line(self) -> Option<Line> {
        if self.count < 2.0 {
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
    detect(points, false)
}

/// [`detect_leak`] for a task that is still running, whose ramp may not have ended: the
/// stricter form [`LeakWatch`] uses (its doc says why).
pub fn detect_running_leak(points: &[(u64, u64)]) -> Option<Leak> {
    detect(points, true)
}

/// [`detect_leak`], or, `live`, its stricter form for a task that is still running.
fn detect(points: &[(u64, u64)], live: bool) -> Option<Leak> {
    // A task that exits or is killed frees its memory: a last sample taken meanwhile is
    // the teardown, not the trend.
    let mut points = points;
    while let [rest @ .., last] = points {
        let top = rest.iter().map(|p| p.1).max().unwrap_or(0);
        if (last.1 as f64) >= LEAK_TEARDOWN * top as f64 {
            break;
        }
        points = rest;
    }
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
    // Relative errors choose the split: memory's noise grows with its level, so an absolute
    // fit lets the jitter of a high climb outweigh the kink of a low ramp.
    let floor = pts.iter().map(|p| p.1).fold(0.0, f64::max) * LEAK_WEIGHT_FLOOR;
    let floor = floor.max(1.0);
    for &(x, y) in &pts {
        let last = *prefix.last().unwrap_or(&Sums::default());
        prefix.push(last.add_weighted(x, y, 1.0 / (y.max(0.0) + floor).powi(2)));
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
    let (_, k, _, _) = best?;
    let (ramp, rest) = (fit_line(&pts[..k])?, fit_line(&pts[k..])?);
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
    // The ramp ended: the climb is clearly slower than the ramp was, both by the ramp's
    // fitted slope and by its mean rate up to its last point (one fast sample at the
    // start tilts a short ramp's line); or, when the ramp was over before the first
    // sample, the climb's line starts well above zero (a task that merely ramps slowly
    // from nothing has its line through the origin), and so does every sample before it.
    let knee_share = if live { LEAK_LIVE_KNEE } else { LEAK_KNEE };
    let (end_t, end_level) = pts[k - 1];
    let slower = rest.slope * end_t <= knee_share * end_level;
    // A ramp seen by one sample alone may be a process's baseline: then the climb's line
    // must meet t = 0 well above zero, as after a jump (a task at 3.4 MiB after 68 ms,
    // then ramping slowly from nothing on a shared CPU, read as a fast ramp and a climb
    // after it; `tests/findings_props.rs` failed 3 runs in 40 so).
    let seen = k >= 3 || rest.intercept >= LEAK_MIN_RISE.get() as f64;
    let knee = seen && ramp.slope > 0.0 && rest.slope <= knee_share * ramp.slope && slower;
    let jumped = k <= LEAK_JUMP_HEAD
        && (slower || !live)
        && pts[1..k]
            .iter()
            .all(|p| p.1 >= LEAK_JUMP_SHARE * start_level)
        && rest.intercept >= LEAK_MIN_RISE.get() as f64
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
    // The climb must stand out of the noise: its slope is that many standard errors above
    // zero (a one-sided t test at 1 in 10,000), and so is its recent rise. A few jittery
    // points along a plateau can line up into a slope; they cannot do both.
    let dof = tail.len() - 2;
    let noise = (rest.sse / dof as f64).sqrt();
    let sxx: f64 = {
        let mean = tail.iter().map(|p| p.0).sum::<f64>() / tail.len() as f64;
        tail.iter().map(|p| (p.0 - mean).powi(2)).sum()
    };
    if rest.slope * sxx.sqrt() < t_critical(dof) * noise {
        return None;
    }
    // Nor may one point carry it: the ramp's last sample, left at the climb's start, tilts a
    // short plateau's line.
    if fit_line(&tail[1..]).is_none_or(|l| l.slope < 0.5 * rest.slope) {
        return None;
    }
    let recent_rise = recent.slope * (third[third.len() - 1].0 - third[0].0);
    if recent_rise < LEAK_NOISE * noise {
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

/// The one-sided 99.99% quantile of Student's t distribution with `dof` degrees of freedom
/// (rounded up; from the standard table).
fn t_critical(dof: usize) -> f64 {
    const TABLE: [(usize, f64); 12] = [
        (1, 3184.0),
        (2, 70.8),
        (3, 22.3),
        (4, 13.1),
        (5, 9.7),
        (6, 8.1),
        (7, 7.2),
        (8, 6.5),
        (10, 5.7),
        (15, 4.9),
        (20, 4.6),
        (30, 4.4),
    ];
    TABLE
        .iter()
        .rev()
        .find(|&&(d, _)| d <= dof)
        .map_or(f64::INFINITY, |&(_, t)| t)
        .max(3.8)
}

/// Most points a [`LeakWatch`] keeps; beyond, neighbours are merged (by their maximum).
pub const WATCH_POINTS: usize = 240;
/// Raw samples closer than this to the last kept point are merged into it.
pub const WATCH_STEP_MS: u64 = 100;
/// A running task is re-examined at most this often.
pub const WATCH_CHECK_MS: u64 = 1000;

/// Watches one running attempt for a leak, on a bounded copy of its timeline.
///
/// A running task's ramp may not have ended: without a plateau to tell them apart, a ramp
/// whose first moments ran at full speed and the rest at the pace of a shared CPU looks
/// like a ramp and a climb. So the watch calls a leak only for a climb at most
/// [`LEAK_LIVE_KNEE`] of the ramp's rate (by its fitted slope and by its mean rate), in
/// both of [`detect_leak`]'s cases; `report` judges the whole timeline afterwards with
/// [`LEAK_KNEE`]. Linear ramps of 0.1–3 GiB over 0.5–4.5 s, sampled every 20–100 ms,
/// progressing only while on a CPU (four patterns, on for 10–350 ms and off for 10–300 ms
/// at a time; 5,000 ramps each): 0.9–18% were flagged before, 0–1.1% now
/// (`tests/findings_props.rs`).
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
        let leak = detect(&self.points, true)?;
        self.flagged = Some(leak);
        Some(leak)
    }

    /// The leak flagged so far, if any.
    pub fn flagged(&self) -> Option<&Leak> {
        self.flagged.as_ref()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A ramp to `peak` over `ramp_ms`, then `leak` bytes/s, sampled every `step` ms.
    pub(in crate::findings) fn trace(
        peak: u64,
        ramp_ms: u64,
        leak: u64,
        until_ms: u64,
        step: u64,
    ) -> Vec<(u64, u64)> {
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
    fn a_sample_taken_while_the_task_frees_its_memory_does_not_hide_the_leak() {
        // 48 MiB in 200 ms, then +40 MiB/s; the last sample (253 MiB after 282 MiB) was
        // taken as the task exited and freed its memory.
        let mib = [
            (28, 10),
            (290, 62),
            (554, 73),
            (1074, 94),
            (1446, 108),
            (1711, 119),
            (2307, 142),
            (2720, 160),
            (3274, 181),
            (3784, 201),
            (4333, 222),
            (4906, 246),
            (5214, 261),
            (5793, 282),
            (6353, 253),
        ];
        let pts: Vec<(u64, u64)> = mib.iter().map(|&(t, m)| (t, m * MIB)).collect();
        let leak = detect_leak(&pts).expect("leak");
        let rate = leak.mib_per_sec();
        assert!((rate - 40.0).abs() < 3.0, "{rate} MiB/s");
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
}
