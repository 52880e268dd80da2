//! Bounded, shape-preserving memory timelines.
//!
//! A task that runs for a day sampled every 100 ms would produce 864,000 samples; the journal
//! keeps at most [`MAX_POINTS`] per attempt. Every sample is kept until the cap; then pairs
//! of neighbouring points are merged (keeping the larger of each figure, at the time of the
//! larger one measure of memory, `used`) and each later point stands for twice as many raw
//! samples. Merging by max means a spike is never averaged away: the timeline's maximum is
//! always the attempt's true peak.
//!
//! A sample records the one measure (`used`: private pages, shared pages once, plus the
//! task's /dev/shm files) and, separately, summed RSS, PSS, shm and VIRT. Only `used` is
//! the task's memory; the others explain it (seed 001 read VIRT as memory).
//!
//! [`Timeline`] also tracks which points are already in the database, so that between
//! halvings only new points are inserted and a halving rewrites the whole (small) series.

use super::MemSample;

/// The most points kept per attempt.
pub const MAX_POINTS: usize = 200;

/// The downsampled timeline of one running attempt, and what of it is persisted.
#[derive(Debug, Clone)]
pub struct Timeline {
    points: Vec<MemSample>,
    /// Raw samples per point; doubles at every halving.
    stride: u64,
    /// The point being built from fewer than `stride` raw samples.
    pending: Option<(MemSample, u64)>,
    /// `points[..persisted]` are in the database as they are now.
    persisted: usize,
    /// A halving happened: the database copy must be rewritten.
    rewrite: bool,
    /// The most recent raw sample.
    pub last: Option<MemSample>,
    /// The largest RSS seen.
    pub peak_rss: u64,
    /// The largest PSS seen, if any PSS was measured.
    pub peak_pss: Option<u64>,
    /// The largest of the one measure seen (the attempt's peak so far).
    pub peak_used: Option<u64>,
    /// The largest /dev/shm allocation seen.
    pub peak_shm: Option<u64>,
    /// The largest VIRT seen.
    pub peak_virt: Option<u64>,
}

/// The larger of two optional figures.
fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

impl Default for Timeline {
    fn default() -> Timeline {
        Timeline::new()
    }
}

/// Merges two points, keeping the maxima and the time of the larger memory (`used`, or RSS
/// in samples without it).
fn merge(a: MemSample, b: MemSample) -> MemSample {
    let key = |s: &MemSample| s.used.unwrap_or(s.rss);
    let t_ms = if key(&b) > key(&a) { b.t_ms } else { a.t_ms };
    MemSample {
        t_ms,
        rss: a.rss.max(b.rss),
        pss: max_opt(a.pss, b.pss),
        used: max_opt(a.used, b.used),
        shm: max_opt(a.shm, b.shm),
        virt: max_opt(a.virt, b.virt),
    }
}

impl Timeline {
    /// An empty timeline whose database copy (if any) must be replaced at the next flush.
    pub fn new() -> Timeline {
        Timeline {
            points: Vec::new(),
            stride: 1,
            pending: None,
            persisted: 0,
            rewrite: true,
            last: None,
            peak_rss: 0,
            peak_pss: None,
            peak_used: None,
            peak_shm: None,
            peak_virt: None,
        }
    }

    /// An empty timeline of an attempt that has no rows yet (just inserted): its first
    /// flush need not delete anything.
    pub fn fresh() -> Timeline {
        Timeline {
            rewrite: false,
            ..Timeline::new()
        }
    }

    /// Adds one raw sample.
    pub fn push(&mut self, s: MemSample) {
        self.last = Some(s);
        self.peak_rss = self.peak_rss.max(s.rss);
        self.peak_pss = max_opt(self.peak_pss, s.pss);
        self.peak_used = max_opt(self.peak_used, s.used);
        self.peak_shm = max_opt(self.peak_shm, s.shm);
        self.peak_virt = max_opt(self.peak_virt, s.virt);
        let (acc, n) = match self.pending.take() {
            Some((acc, n)) => (merge(acc, s), n + 1),
            None => (s, 1),
        };
        if n < self.stride {
            self.pending = Some((acc, n));
            return;
        }
        self.points.push(acc);
        if self.points.len() >= MAX_POINTS {
            self.halve();
        }
    }

    fn halve(&mut self) {
        self.points = self
            .points
            .chunks(2)
            .map(|c| c.iter().copied().reduce(merge).unwrap_or(c[0]))
            .collect();
        self.stride = self.stride.saturating_mul(2);
        self.persisted = 0;
        self.rewrite = true;
    }

    /// Moves the partial point (if any) into the series; called when the attempt ends.
    pub fn finish(&mut self) {
        if let Some((acc, _)) = self.pending.take() {
            self.points.push(acc);
        }
    }

    /// Returns what to write: `(replace_all, points_to_insert)`, and marks them persisted.
    pub fn take_unpersisted(&mut self) -> (bool, &[MemSample]) {
        let replace = std::mem::take(&mut self.rewrite);
        let from = if replace { 0 } else { self.persisted };
        self.persisted = self.points.len();
        (replace, &self.points[from..])
    }

    /// The points kept so far (without the partial one).
    pub fn points(&self) -> &[MemSample] {
        &self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: u64, rss: u64) -> MemSample {
        MemSample {
            t_ms: t,
            rss,
            ..MemSample::default()
        }
    }

    #[test]
    fn keeps_every_sample_below_the_cap() {
        let mut tl = Timeline::new();
        for i in 0..150 {
            tl.push(s(i * 10, i));
        }
        tl.finish();
        assert_eq!(tl.points().len(), 150);
        assert_eq!(tl.points()[42], s(420, 42));
    }

    #[test]
    fn a_long_run_stays_bounded_and_keeps_its_spike() {
        let mut tl = Timeline::new();
        for i in 0..100_000u64 {
            let rss = if i == 77_777 { 9_000 } else { 100 + i % 7 };
            tl.push(s(i, rss));
        }
        tl.finish();
        let pts = tl.points();
        assert!(pts.len() <= MAX_POINTS + 1, "{} points", pts.len());
        assert!(pts.len() >= MAX_POINTS / 2);
        let spike = pts.iter().max_by_key(|p| p.rss).unwrap();
        assert_eq!(spike.rss, 9_000);
        assert_eq!(spike.t_ms, 77_777, "the spike stays at its time");
        assert!(pts.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
        assert_eq!(tl.peak_rss, 9_000);
    }

    #[test]
    fn the_peak_is_the_one_measure_not_rss_and_is_kept_with_its_time() {
        // A fork pool: summed RSS is large while what the tree holds is not.
        let mut tl = Timeline::new();
        let p = |t, rss, used, shm, virt| MemSample {
            t_ms: t,
            rss,
            pss: Some(used),
            used: Some(used),
            shm: Some(shm),
            virt: Some(virt),
        };
        tl.push(p(0, 3_000, 700, 600, 9_000));
        tl.push(p(10, 3_100, 770, 600, 9_100));
        for i in 2..1_000 {
            tl.push(p(i * 10, 3_200, 500, 600, 9_000));
        }
        tl.finish();
        assert_eq!(tl.peak_used, Some(770));
        assert_eq!(tl.peak_rss, 3_200);
        assert_eq!(tl.peak_shm, Some(600));
        assert_eq!(tl.peak_virt, Some(9_100));
        let top = tl.points().iter().max_by_key(|s| s.used).unwrap();
        assert_eq!(top.used, Some(770));
        assert_eq!(top.t_ms, 10, "the point keeps the time of the larger used");
    }

    #[test]
    fn persistence_bookkeeping_inserts_only_new_points_until_a_halving() {
        let mut tl = Timeline::new();
        tl.push(s(0, 1));
        let (replace, pts) = tl.take_unpersisted();
        assert!(replace);
        assert_eq!(pts.len(), 1);
        tl.push(s(1, 2));
        tl.push(s(2, 3));
        let (replace, pts) = tl.take_unpersisted();
        assert!(!replace);
        assert_eq!(pts, &[s(1, 2), s(2, 3)]);
        for i in 3..MAX_POINTS as u64 {
            tl.push(s(i, 1));
        }
        let (replace, pts) = tl.take_unpersisted();
        assert!(replace, "halving rewrites");
        assert_eq!(pts.len(), MAX_POINTS / 2);
    }
}
