//! Peak prediction: what a task will need at its highest, learned from what finished.
//!
//! Three sources, best first:
//! 1. **Features.** When at least two finished tasks have distinct values of some numeric
//!    feature, fit `peak = a + b·x` by least squares on each feature and keep the one that
//!    explains the peaks best (highest R², at least [`MIN_R2`]). A task is predicted from its
//!    own feature value: the fit plus two residual standard deviations, plus the margin.
//!    Extrapolating linearly is deliberate: a 10-year backtest after 1- and 2-year ones must
//!    be predicted large (seed 001: 1 year → 234 MB, 10 years → 2.2 GB), so it is not
//!    admitted beside others. The fit never predicts below the smallest peak seen.
//! 2. **Quantile.** Otherwise the [`QUANTILE`] of finished peaks plus the margin.
//! 3. **Estimate.** `--estimate`, until anything has been measured.
//!
//! With none of these the prediction is unknown and the policy's cold start takes over.
//! Only peaks of tasks that finished normally are learned: a braked or OOM-killed attempt's
//! peak is a lower bound for that task, not a sample of what tasks need.
//! Pure arithmetic; no clock, no I/O.

use crate::units::Bytes;

/// Quantile of finished peaks used as the typical peak.
pub const QUANTILE: f64 = 0.9;
/// Safety margin added to every learned prediction.
pub const MARGIN: f64 = 0.10;
/// Least coefficient of determination for a feature fit to be trusted over the quantile.
pub const MIN_R2: f64 = 0.5;

/// A linear fit of peak against one feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Index of the feature in [`crate::policy::TaskSpec::features`].
    pub feature: usize,
    /// Peak in bytes at feature value 0.
    pub intercept: f64,
    /// Bytes per unit of the feature.
    pub slope: f64,
    /// Residual standard deviation in bytes.
    pub resid_sd: f64,
    /// Coefficient of determination, 0…1.
    pub r2: f64,
}

/// Learns peaks from finished tasks and predicts new ones.
#[derive(Debug, Clone, Default)]
pub struct Predictor {
    estimate: Option<Bytes>,
    observations: Vec<(Vec<f64>, Bytes)>,
    fit: Option<Fit>,
}

impl Predictor {
    /// A predictor that falls back to `estimate` until something is measured.
    pub fn new(estimate: Option<Bytes>) -> Predictor {
        Predictor {
            estimate,
            observations: Vec::new(),
            fit: None,
        }
    }

    /// Records the peak of a task that finished normally.
    pub fn observe(&mut self, features: &[f64], peak: Bytes) {
        self.observations.push((features.to_vec(), peak));
        self.fit = best_fit(&self.observations);
    }

    /// How many peaks have been learned.
    pub fn observed(&self) -> usize {
        self.observations.len()
    }

    /// The feature fit in use, if any feature explains the peaks.
    pub fn fit(&self) -> Option<Fit> {
        self.fit
    }

    /// The typical peak: a high quantile of learned peaks plus the margin, else the estimate.
    pub fn typical(&self) -> Option<Bytes> {
        if self.observations.is_empty() {
            return self.estimate;
        }
        let mut peaks: Vec<u64> = self.observations.iter().map(|(_, p)| p.get()).collect();
        peaks.sort_unstable();
        // Nearest-rank quantile: with few samples this is the maximum, as it should be.
        let rank = ((QUANTILE * peaks.len() as f64).ceil() as usize).clamp(1, peaks.len());
        Some(Bytes(peaks[rank - 1]).scale(1.0 + MARGIN))
    }

    /// The peak predicted for a task with these features; `None` while nothing is known.
    pub fn predict(&self, features: &[f64]) -> Option<Bytes> {
        if let Some(fit) = self.fit {
            if let Some(&x) = features.get(fit.feature) {
                if x.is_finite() {
                    let floor = self
                        .observations
                        .iter()
                        .map(|(_, p)| p.get())
                        .min()
                        .unwrap_or(0) as f64;
                    let y = (fit.intercept + fit.slope * x + 2.0 * fit.resid_sd).max(floor);
                    // `as` saturates, so a huge extrapolation becomes u64::MAX, not garbage.
                    return Some(Bytes(y as u64).scale(1.0 + MARGIN));
                }
            }
        }
        self.typical()
    }
}

/// Fits peak against each feature and returns the best fit, if any is good enough.
fn best_fit(obs: &[(Vec<f64>, Bytes)]) -> Option<Fit> {
    let width = obs.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    let mut best: Option<Fit> = None;
    for feature in 0..width {
        let pts: Vec<(f64, f64)> = obs
            .iter()
            .filter_map(|(f, p)| {
                let x = *f.get(feature)?;
                x.is_finite().then_some((x, p.get() as f64))
            })
            .collect();
        let Some(fit) = fit_line(feature, &pts) else {
            continue;
        };
        if fit.r2 >= MIN_R2 && best.is_none_or(|b| fit.r2 > b.r2) {
            best = Some(fit);
        }
    }
    best
}

/// Ordinary least squares of y on x; `None` unless x takes at least two distinct values.
fn fit_line(feature: usize, pts: &[(f64, f64)]) -> Option<Fit> {
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= f64::EPSILON * mx.abs().max(1.0) {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = pts
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    // Identical peaks everywhere: the feature explains nothing, the quantile does as well.
    let r2 = if syy > 0.0 { 1.0 - sse / syy } else { 0.0 };
    let dof = (pts.len().saturating_sub(2)).max(1) as f64;
    Some(Fit {
        feature,
        intercept,
        slope,
        resid_sd: (sse / dof).sqrt(),
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    #[test]
    fn estimate_until_measured_then_quantile_with_margin() {
        let mut p = Predictor::new(Some(Bytes(500 * MB)));
        assert_eq!(p.predict(&[]), Some(Bytes(500 * MB)));
        p.observe(&[], Bytes(100 * MB));
        p.observe(&[], Bytes(200 * MB));
        assert_eq!(p.predict(&[]), Some(Bytes(220 * MB)));
    }

    #[test]
    fn unknown_without_estimate_or_data() {
        assert_eq!(Predictor::new(None).predict(&[1.0]), None);
    }

    #[test]
    fn backtest_years_extrapolate_to_a_large_peak() {
        // Seed 001: 1 year → 234 MB, 2 years → ~450 MB; 10 years must come out ≥ 2 GB.
        let mut p = Predictor::new(None);
        p.observe(&[1.0, 10.0], Bytes(234 * MB));
        p.observe(&[2.0, 10.0], Bytes(452 * MB));
        let ten = p.predict(&[10.0, 10.0]).unwrap();
        assert!(ten.get() >= 2_200 * MB, "{ten}");
        let one = p.predict(&[1.0, 10.0]).unwrap();
        assert!(one.get() < 300 * MB, "{one}");
        assert_eq!(p.fit().unwrap().feature, 0);
    }

    #[test]
    fn feature_that_explains_nothing_falls_back_to_quantile() {
        let mut p = Predictor::new(None);
        p.observe(&[1.0], Bytes(100 * MB));
        p.observe(&[2.0], Bytes(100 * MB));
        p.observe(&[3.0], Bytes(100 * MB));
        assert!(p.fit().is_none());
        assert_eq!(p.predict(&[50.0]), Some(Bytes(110 * MB)));
    }

    #[test]
    fn nan_features_are_ignored() {
        let mut p = Predictor::new(None);
        p.observe(&[f64::NAN], Bytes(100 * MB));
        p.observe(&[f64::NAN], Bytes(300 * MB));
        assert!(p.fit().is_none());
        assert_eq!(p.predict(&[f64::NAN]), Some(Bytes(330 * MB)));
    }
}
