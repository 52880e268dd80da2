//! Where the running tasks' memory is heading: each task as a simple curve over the time
//! ahead, and the highest their sum will reach.
//!
//! A task's curve starts at what it holds now, grows linearly to its predicted peak by the
//! time it is expected to reach it, holds there, and drops to nothing when the task is
//! expected to end. A task with no expected end holds its peak forever; a task with no known
//! ramp reaches its peak at once. With neither known for any task, the highest sum is just
//! the sum of the peaks, and admission is the plain reservation rule of the policy's module
//! doc. The sum of such curves is piecewise linear, so its maximum is at a corner: now, a
//! ramp's end, or the last instant before a task ends. Pure arithmetic, seconds from now.

/// One task's expected memory over the time ahead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Curve {
    /// Bytes held now.
    pub now: f64,
    /// Bytes at the peak (at least `now`).
    pub peak: f64,
    /// Seconds from now until the peak is reached (0: at once).
    pub ramp: f64,
    /// Seconds from now until the task ends and gives its memory back; `None`: never.
    pub end: Option<f64>,
}

impl Curve {
    /// Bytes held `t` seconds from now; a task still counts at the instant it ends.
    pub fn at(&self, t: f64) -> f64 {
        if self.end.is_some_and(|e| t > e) {
            return 0.0;
        }
        if t >= self.ramp || self.ramp <= 0.0 {
            return self.peak.max(self.now);
        }
        self.now + (self.peak - self.now).max(0.0) * t / self.ramp
    }
}

/// The highest total the curves reach at any time from now on.
pub fn highest(curves: &[Curve]) -> f64 {
    highest_from(curves, 0.0)
}

/// The highest total the curves reach at any time from `from` seconds on.
pub fn highest_from(curves: &[Curve], from: f64) -> f64 {
    let corners = curves
        .iter()
        .flat_map(|c| [c.ramp.max(0.0), c.end.unwrap_or(0.0).max(0.0)])
        .filter(|&t| t >= from)
        .chain([from]);
    let at_corners = corners
        .map(|t| curves.iter().map(|c| c.at(t)).sum::<f64>())
        .fold(0.0, f64::max);
    // Long after every expected end, what never ends is still there.
    let forever: f64 = curves
        .iter()
        .filter(|c| c.end.is_none())
        .map(|c| c.peak.max(c.now))
        .sum();
    at_corners.max(forever)
}

/// Seconds from now after which the curves' total stays at or below `level` for good: now,
/// or just after one of them ends; `None` if it never does.
pub fn below_from(curves: &[Curve], level: f64) -> Option<f64> {
    let mut times: Vec<f64> = curves
        .iter()
        .filter_map(|c| c.end)
        .map(|e| e.max(0.0) + ENDED)
        .chain([0.0])
        .collect();
    times.sort_by(f64::total_cmp);
    times
        .into_iter()
        .find(|&t| highest_from(curves, t) <= level)
}

/// How long after its expected end a task counts as gone ([`Curve::at`] still counts it at
/// that instant).
const ENDED: f64 = 1e-6;

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(now: f64, peak: f64, ramp: f64, end: Option<f64>) -> Curve {
        Curve {
            now,
            peak,
            ramp,
            end,
        }
    }

    #[test]
    fn without_times_it_is_the_sum_of_peaks() {
        let cs = [curve(1.0, 5.0, 0.0, None), curve(0.0, 3.0, 0.0, None)];
        assert_eq!(highest(&cs), 8.0);
    }

    #[test]
    fn a_task_ending_before_a_newcomer_peaks_makes_room() {
        // 5 held until t = 2; the newcomer ramps to 6 over 4 s: at t = 2 it holds 3 → 8.
        let old = curve(5.0, 5.0, 0.0, Some(2.0));
        let new = curve(0.0, 6.0, 4.0, None);
        assert_eq!(highest(&[old, new]), 8.0);
        // Had the old task no expected end, both peaks would count.
        assert_eq!(highest(&[curve(5.0, 5.0, 0.0, None), new]), 11.0);
    }

    #[test]
    fn the_maximum_can_sit_at_a_ramp_end() {
        // Two ramps ending at t = 1 and t = 3; the first ends at t = 4.
        let a = curve(0.0, 4.0, 1.0, Some(4.0));
        let b = curve(0.0, 6.0, 3.0, None);
        assert_eq!(highest(&[a, b]), 10.0);
        let a_early = curve(0.0, 4.0, 1.0, Some(1.5));
        // At t = 1.5: 4 + 3 = 7; later only b's 6.
        assert_eq!(highest(&[a_early, b]), 7.0);
    }

    #[test]
    fn the_total_falls_below_a_level_once_enough_tasks_end() {
        // 5 until t = 2, 4 until t = 6, 3 for good.
        let cs = [
            curve(5.0, 5.0, 0.0, Some(2.0)),
            curve(4.0, 4.0, 0.0, Some(6.0)),
            curve(3.0, 3.0, 0.0, None),
        ];
        assert_eq!(below_from(&cs, 12.0), Some(0.0));
        assert!(below_from(&cs, 7.0).is_some_and(|t| (t - 2.0).abs() < 1e-3));
        assert!(below_from(&cs, 3.0).is_some_and(|t| (t - 6.0).abs() < 1e-3));
        assert_eq!(below_from(&cs, 2.0), None);
        // From t = 2 on, only the last two count, and a ramp ahead counts at its end.
        assert_eq!(highest_from(&cs, 3.0), 7.0);
        assert_eq!(highest_from(&[curve(0.0, 6.0, 4.0, None)], 1.0), 6.0);
    }

    #[test]
    fn memory_above_the_predicted_peak_counts_as_held() {
        assert_eq!(curve(7.0, 5.0, 2.0, None).at(1.0), 7.0);
        assert_eq!(highest(&[curve(7.0, 5.0, 2.0, None)]), 7.0);
    }
}
