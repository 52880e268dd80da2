//! Prediction: what a task will need at its highest, and when, learned from what finished.
//!
//! Six quantities are learned from every task that finished normally, each by its own
//! [`Model`]: the **peak** (bytes), the **duration** (seconds), the **time to peak**
//! (seconds from start until the tree first held 95% of its peak), the time it ran
//! **after its peak** (duration less time to peak), and its **quiet start**: how long its
//! memory stood still before its climb to the peak (seconds, safe when low) and what it
//! held meanwhile (bytes, safe when high). Admission uses the peak to reserve
//! memory and the others to know when a running task's memory will be given back and how
//! fast a new one will claim its own (see the policy's module doc). The time after the peak
//! tells when a task that holds its peak ends, where its duration does not: a task that
//! waits or computes a varying time before it allocates (an import, a download, a fit on a
//! sample) often holds its arrays for a time its command line does tell. The quiet start
//! lets such a task start beside a big one that sleeps (admission's "Quiet starts").
//!
//! Each model has three sources, best first:
//! 1. **Features.** A least-squares fit `y = c₀ + Σ cⱼ·xⱼ` on up to [`MAX_FEATURES`] numeric
//!    features, chosen forward: the single feature that explains `y` best (R² at least
//!    [`MIN_R2`]), then another only while it halves what is left unexplained (adjusted R²,
//!    [`MIN_GAIN`]) and the fit rests on three observations per coefficient (counted on
//!    the tasks that have every feature it uses: four tasks with an option the others
//!    lack fitted three features exactly, and every other task fell back to the quantile
//!    the four had inflated). A task is predicted from its own values,
//!    two residual standard deviations toward the safe side, and the margin ([`MARGIN`],
//!    or [`FIT_MARGIN`] once the fit rests on three observations per coefficient, when its
//!    residual deviations measure how far tasks stray from it). Extrapolating
//!    linearly is deliberate: a 10-year backtest after 1- and 2-year ones must be predicted
//!    large (seed 001: 1 year → 234 MB, 10 years → 2.2 GB), so it is not admitted beside
//!    others. Two features are needed as often as one: a backtest's duration grows with
//!    years *and* symbols, a trial's with epochs and folds. With few observations many
//!    features fit by chance (two points fit any column, `--seed` included): every single
//!    feature within [`RIVAL_GAP`] of the best is kept as a rival and the safest of their
//!    predictions is taken; chance fits drop out as observations accumulate. A rival must
//!    also leave no more than [`RIVAL_UNEXPLAINED`] times what the best leaves unexplained
//!    (plus [`RIVAL_NOISE`]): beside an exact fit, a near one is chance. Nor is a fit a
//!    rival that left out, as an outlier, a point the best fit kept: it matched the best
//!    only on fewer points (a slope per kind of the index, through three large tasks once
//!    it left out a small one, predicted a large task of 593 MiB at 4.7 GiB; twins of the
//!    benchmark's `kindsize` mix, seeds 1–16, on the emulated 4 GiB machine: 2.67 → 2.63×
//!    their lower bounds). With two
//!    observations, where every feature fits exactly, only lines that pass near the origin
//!    ([`ORIGIN`]) are believed when there are any: memory grows with a size from near
//!    nothing, and the wildest chance line is otherwise the safest (40 simulated mixes,
//!    27 never tuned on, whichever order the features come in: median 1.99 → 1.96× the
//!    lower bound, mean 2.02 → 1.98×, worst 2.43 → 2.38×). A rival speaks
//!    only for a task whose value of its feature lies within the range it was fitted on,
//!    widened by that range's width on each side: three tasks whose hold times of 1.2–3.8 s
//!    happened to follow their peaks predicted a 200 MiB task holding 8 s at 7.6 GiB, and it
//!    ran alone. The range is that of the points the rival kept, not of those it left
//!    out as outliers: a slope per kind of the index, fitted by chance on two large tasks
//!    once it left out a third, spoke for a large task at an index as far beyond the two
//!    as the third lay before them, and predicted it at 5.3 GiB (true 0.58). Until three
//!    values are known, no prediction goes beyond the range seen toward the unsafe side,
//!    nor from a fit that uses a feature which took fewer than three distinct values (a
//!    line through two values of `--epochs` fell through zero at a third and predicted a
//!    2.7 GiB task at 40 MB; the simulated `kindmix` shape, on the emulated machine: 3.01 →
//!    2.95× its lower bound, brakes 12 → 6; `tail` brakes 22 → 13 over the three hosts,
//!    1.20 | 1.26 | 1.37 → 1.20 | 1.25 | 1.39×; no other twin moved by more than 0.001).
//!    One task that behaves unlike the rest (a leak, a retry storm) must not spoil every
//!    prediction after it: from six observations on, a point farther than [`OUTLIER`]
//!    residual deviations from the fit of the others is left out, up to a fifth of the
//!    points (one at a time for the first [`ONE_BY_ONE`], the rest at once: a fit each
//!    made a sweep of 10,000 trivial tasks cost ramguard 12.3 s of CPU, now 7.3 s), and
//!    every feature is judged (ranked by R²) on its fit without its own
//!    outliers: judged with them, a task that leaked from 200 MiB to 1.37 GiB made `--peak`
//!    explain less than `--ramp` did, and the fit went to `--ramp` (the simulated `leak`
//!    mixes, cold: median 2.16 → 2.03× the lower bound). The quantile still sees them.
//!    A peak is never predicted below [`PEAK_FLOOR`] of the least seen: a line may fall
//!    through zero beyond the tasks it saw. A kind named by a value (`--model resnet18`)
//!    is one 0/1 feature per value (`tasks::feature_table`, which says which features are
//!    kinds); a task of a kind no observation had reads 0 in every column a fit uses, as the
//!    kinds the fit left out do, so no fit that uses a kind speaks for it
//!    ([`Model::of_an_unseen_kind`]). A parameter's kinds enter a fit together, one
//!    coefficient for each kind observed but the most observed one, never one kind against
//!    all the others: taken a column at a time, the fit chose "small or not" and put the one
//!    medium task seen among the large ones, so a real `kinds` run predicted its medium
//!    tasks at 2.9 GB, the large kind's peak, after one of 1.1 GB, and ran them one at a
//!    time. Candidates are ranked by adjusted R², so a parameter's kinds pay for their
//!    coefficients, and a feature only a few tasks have pays for its few rows. A kind
//!    also has its **own model**, learned from its tasks alone, which predicts its tasks
//!    once it rests on [`KIND_ALONE`] of them: kinds added to a line shift it, they do
//!    not change how memory grows with a size, and a model that grows 2.5 MiB a row where
//!    another grows 0.5 is what a sweep over `--model` and `--rows` needs (the simulated
//!    `kindsize` shape of `bench/shapes.py`). It predicts them sooner where the fit
//!    left out most of the kind's tasks as outliers: two large tasks among nine small
//!    ones lay far off the small ones' line, were left out, and the fit, which then no
//!    longer needed the kind, predicted a large task of 2 GB at 555 MB. With both, the
//!    `kindsize` shape (seeds 1–3; ideal host | 2 CPUs | the emulated 4 GiB machine of
//!    `tests/policy_mixes.rs`) took 2.06 | 2.22 | 2.61× its lower bound instead of
//!    2.47 | 2.56 | 3.03×, with 2 | 2 | 2 brakes instead of 4 | 5 | 1. Before a kind has
//!    its own model, a **slope per kind** does its work within the one fit: for each
//!    parameter's kinds and each feature that is no kind, one column per kind whose tasks
//!    gave the feature, holding its value where a task is of that kind and 0 where it is
//!    not, taken together as one candidate from [`SLOPES_FROM`] observations per
//!    coefficient on. Alone, it must halve what the parameter's kinds leave unexplained,
//!    and what the feature alone does (adjusted R², as a second feature must; the slopes
//!    sum to the feature, so they always explain as much), both judged on every row with
//!    no outlier left out: an index or a seed fits a slope per kind by chance as easily as
//!    a size does, and a fit of many columns leaves out its worst points more easily. A
//!    rival slope per kind speaks only for a task whose value lies near those of its own
//!    kind's tasks. In the twin of the benchmark's `kindsize` mix (`bench/sweep_bench.py`,
//!    16 tasks), with four tasks of each kind done, a shift per kind predicted every small
//!    task at 1.7 GB (true 0.4–0.6) and they ran one at a time. With slopes per kind,
//!    seeds 1–8 took 2.24 | 2.67× their lower bounds (ideal host | the emulated 4 GiB
//!    machine) instead of 2.86 | 3.33×, and seeds 9–16, never tuned on, 2.13 | 2.66×
//!    instead of 2.90 | 3.06×; the `kindsize` shape of `tests/policy_mixes.rs` (ideal |
//!    2 CPUs | emulated) 1.95 | 2.07 | 2.38× instead of 2.06 | 2.22 | 2.61×. The `kinds`
//!    mix, whose only number is the index, is unchanged (2.15 | 2.66×).
//! 2. **Quantile.** Otherwise [`QUANTILE`] of what was observed (its mirror for a lower
//!    bound), with the margin.
//! 3. **Estimate.** `--estimate`, for the peak only, until anything has been measured.
//!
//! "The safe side" depends on the quantity: a peak or a duration is safe when predicted high
//! ([`Side::Upper`]), a time to peak when predicted low ([`Side::Lower`]: a task that grows
//! faster than assumed is the danger). Only tasks that finished normally are learned: a
//! braked or OOM-killed attempt's peak is a lower bound for that task, not a sample of what
//! tasks need. Pure arithmetic; no clock, no I/O.

use std::ops::Range;
use std::time::Duration;

use crate::units::Bytes;

/// Quantile of observations used as the typical value (1 − this for a lower bound).
pub const QUANTILE: f64 = 0.9;
/// Safety margin added to every learned prediction (taken off a lower bound).
pub const MARGIN: f64 = 0.10;
/// Least coefficient of determination for a feature fit to be trusted over the quantile.
pub const MIN_R2: f64 = 0.5;
/// Most features one fit combines.
pub const MAX_FEATURES: usize = 3;
/// Single features whose R² is within this of the best one's are rivals: with few
/// observations several explain them equally well (two points fit any feature), and the
/// prediction takes the safest of them.
pub const RIVAL_GAP: f64 = 0.05;
/// Another feature joins a fit only if it leaves at most this share of the unexplained
/// variance (1 − adjusted R²) unexplained.
pub const MIN_GAIN: f64 = 0.5;
/// Margin on a feature fit's prediction once it rests on three observations per coefficient:
/// its two residual deviations then carry its uncertainty (simulated mixes: 2.21 → 2.14×
/// the lower bound with [`MARGIN`] kept until then, no brake added).
pub const FIT_MARGIN: f64 = 0.03;
/// Durations learned before any is predicted: one finished task says little about how long
/// the next runs, and an expected end that comes too early lets admission overcommit.
pub const MIN_DURATIONS: usize = 3;
/// A peak is never predicted below this share of the least peak seen. A fit extrapolated
/// beyond the tasks it saw can fall through zero (a line through peaks that fell by chance
/// with a feature predicted a task of the simulated `uniform` shape, 1.2–1.9 GiB, at 0 B), yet a sweep
/// run largest first must predict its small tasks well below anything seen so far: at 0.9,
/// as durations are floored, the simulated largest-first sweeps (`bench/shapes.py`
/// `largest`: 3 GiB down to 150 MiB) took 1.66 → 1.71× their bounds on the ideal host and
/// 1.68 → 1.76× on 2 CPUs; at a quarter, 1.65 and 1.67×, and every other twin unchanged.
pub const PEAK_FLOOR: f64 = 0.25;
/// A point this many residual deviations from the fit of the others is left out of it.
pub const OUTLIER: f64 = 5.0;
/// With two observations, a line whose value at 0 lies within this share of the mean value
/// seen counts as through the origin (see `through_the_origin`).
pub const ORIGIN: f64 = 0.5;
/// A rival may leave at most this many times the best fit's unexplained share (1 − R²)
/// unexplained, plus [`RIVAL_NOISE`]: against three points exactly on a line, a feature
/// with R² 0.988 is no rival (it predicted a 200 MiB task at 3 GiB, which then ran alone).
pub const RIVAL_UNEXPLAINED: f64 = 4.0;
/// The unexplained share any rival may have beyond [`RIVAL_UNEXPLAINED`]'s.
pub const RIVAL_NOISE: f64 = 0.005;

/// Which way a prediction errs when unsure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Too high is safe (peaks, durations).
    Upper,
    /// Too low is safe (time to peak).
    Lower,
}

/// A linear fit of a quantity against one or more features.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Indexes of the features in [`crate::policy::TaskSpec::features`], in fit order; past
    /// a task's own, a model's slopes per kind (read them through [`Model::fitted`]).
    pub features: Vec<usize>,
    /// Value at all features 0.
    pub intercept: f64,
    /// Change per unit of each feature, in the order of `features`.
    pub slopes: Vec<f64>,
    /// Residual standard deviation.
    pub resid_sd: f64,
    /// Coefficient of determination, 0…1.
    pub r2: f64,
    /// Rows fitted.
    pub rows: usize,
    /// The mean of each feature over the fitted rows, in the order of `features`.
    pub means: Vec<f64>,
    /// The inverse of the features' centred cross products (`(XᵀX)⁻¹`).
    pub inverse: Vec<Vec<f64>>,
    /// The observations left out as outliers (their indexes in the model's).
    pub left_out: Vec<usize>,
    /// The fit uses a feature, no kind, that took fewer than three distinct values: it
    /// may not predict beyond what was seen (module doc). Set by the model.
    pub two_valued: bool,
}

impl Fit {
    /// How much wider than the residual deviation the prediction interval is for a task
    /// with these features: `√(1 + 1/n + dᵀ(XᵀX)⁻¹d)`, with `d` its distance from the
    /// fitted features' means. About 1 near the middle of what was seen; it grows the
    /// farther a task lies outside (a line through three scattered points, extrapolated as
    /// far again, predicted a 3 GiB task at 0 B).
    pub fn leverage(&self, features: &[f64]) -> Option<f64> {
        if self.rows == 0 || self.inverse.len() != self.features.len() {
            return None;
        }
        let d: Vec<f64> = self
            .features
            .iter()
            .zip(&self.means)
            .map(|(&f, m)| features.get(f).map(|x| x - m))
            .collect::<Option<_>>()?;
        let mut q = 0.0;
        for (i, row) in self.inverse.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                q += d[i] * a * d[j];
            }
        }
        let h = 1.0 + 1.0 / self.rows as f64 + q.max(0.0);
        h.is_finite().then(|| h.sqrt())
    }

    /// The fitted value for these features; `None` if one of the fit's features is missing.
    pub fn value(&self, features: &[f64]) -> Option<f64> {
        let mut y = self.intercept;
        for (&f, &b) in self.features.iter().zip(&self.slopes) {
            let x = *features.get(f)?;
            if !x.is_finite() {
                return None;
            }
            y += b * x;
        }
        Some(y)
    }
}

/// Learns one quantity from finished tasks and predicts it for others.
#[derive(Debug, Clone)]
pub struct Model {
    side: Side,
    observations: Vec<(Vec<f64>, f64)>,
    fit: Option<Fit>,
    /// Other single features that explain the values about as well as the best one.
    rivals: Vec<Fit>,
    /// The lowest and highest value seen in each of each rival's columns, in the order of
    /// `rivals` (a slope per kind: among the kind's tasks).
    rival_ranges: Vec<Vec<(f64, f64)>>,
    /// [`QUANTILE`] of the observations (its mirror for a lower bound), without margin;
    /// cached because admission asks for it for every queued task it considers.
    quantile: Option<f64>,
    /// The smallest and largest value learned, kept as they come: admission asks for them
    /// for every queued task it considers (a scan each made 1,000 trivial tasks spend a
    /// third of ramguard's CPU time there).
    range: Option<(f64, f64)>,
    /// Observations when the fit was last made.
    fitted_at: usize,
    /// The features that are kinds (one 0/1 column per value of a parameter read by name,
    /// `--model resnet18`; see `tasks::feature_table`), each with how many observations
    /// were of that kind. A task of a kind no observation had reads 0 wherever a fit looks,
    /// as the kinds the fit left out do.
    kinds: Vec<(usize, usize)>,
    /// The kinds' columns, one range per parameter: a fit takes a parameter's kinds
    /// together (module doc), never one kind against all the others.
    groups: Vec<Range<usize>>,
    /// A model of each kind's own observations, by the kind's column (module doc).
    by_kind: Vec<(usize, Model)>,
    /// The kinds (their columns) most of whose observations the fit left out as outliers:
    /// it does not speak for them.
    left_out: Vec<usize>,
    /// A slope per kind: for each parameter's kinds and each feature that is no kind, the
    /// feature's value where a task is of the kind and 0 where it is not, as (the
    /// feature's column, the kind's column), one extra column each after the task's own
    /// (module doc). Set at the first observation of a model with kinds and own models.
    slopes_by_kind: Vec<(usize, usize)>,
    /// How many observations had a value in each column of `slopes_by_kind`, in its order:
    /// a kind whose tasks never give the feature has a column of zeros, no slope.
    slope_values: Vec<usize>,
    /// How many columns a task's own features have; the columns of `slopes_by_kind` follow.
    width: usize,
}

/// Observations of a kind from which its own model predicts its tasks (module doc): three
/// per coefficient of a line, as a fit of several features needs.
pub const KIND_ALONE: usize = 6;

/// Observations per coefficient (the intercept and a slope per kind) from which a slope
/// per kind is tried (module doc). At 2, two kinds waited for six tasks, and in between a
/// shift per kind, whose residual deviation came from the large kind's spread of sizes,
/// predicted small tasks of 0.2–0.6 GiB at 2.1 GiB and they ran alone (a real run of the
/// benchmark's `kindsize` seed 4). At 1.5, twins of that mix (seeds 1–16, ideal host |
/// the emulated 4 GiB machine) took 2.18 | 2.63× → 2.16 | 2.58× their lower bounds, the
/// simulated `kindmix` shape 2.13 | 2.37 | 2.99× → 2.04 | 2.20 | 2.76× (ideal | 2 CPUs |
/// emulated). The cost: with eight kinds that do not matter, slopes are chosen by chance
/// after 16 tasks in 88 sweeps of 200 (none at 2), overpredicting by up to 1.61× (1.32×).
pub const SLOPES_FROM: f64 = 1.5;

/// Up to this many observations, every one refits.
const REFIT_ALWAYS: usize = 64;
/// Beyond that, a refit waits until observations grew by this share.
const REFIT_GROWTH: f64 = 0.05;

impl Model {
    /// A model that knows nothing yet.
    pub fn new(side: Side) -> Model {
        Model {
            side,
            observations: Vec::new(),
            fit: None,
            rivals: Vec::new(),
            rival_ranges: Vec::new(),
            quantile: None,
            range: None,
            fitted_at: 0,
            kinds: Vec::new(),
            groups: Vec::new(),
            by_kind: Vec::new(),
            left_out: Vec::new(),
            slopes_by_kind: Vec::new(),
            slope_values: Vec::new(),
            width: 0,
        }
    }

    /// Tells which features are kinds, one range of columns per parameter (see `kinds`);
    /// before anything is observed.
    pub fn set_kinds(&mut self, kinds: &[Range<usize>]) {
        self.by_kind = kinds
            .iter()
            .flat_map(|r| r.clone())
            .map(|f| {
                let mut m = Model::new(self.side);
                m.set_kinds_only(kinds);
                (f, m)
            })
            .collect();
        self.set_kinds_only(kinds);
    }

    /// [`Model::set_kinds`] without a model per kind (a kind's own model has none).
    fn set_kinds_only(&mut self, kinds: &[Range<usize>]) {
        self.groups = kinds.iter().filter(|r| !r.is_empty()).cloned().collect();
        self.kinds = kinds
            .iter()
            .flat_map(|r| r.clone())
            .map(|f| (f, 0))
            .collect();
    }

    /// How many observations were of kind `f`.
    fn observed_of_kind(&self, f: usize) -> usize {
        self.kinds.iter().find(|k| k.0 == f).map_or(0, |k| k.1)
    }

    /// What a fit may take in one step (module doc): each feature that is no kind alone,
    /// each parameter's kinds together, every kind observed but the most observed one (the
    /// one the others are measured against: a kind no row has is a column of zeros, and the
    /// kinds of one task sum to one), and a slope per kind of each feature that is no kind.
    fn candidates(&self) -> Vec<Candidate> {
        let width = match self.slopes_by_kind.is_empty() {
            true => self.observations.iter().map(|(f, _)| f.len()).max(),
            false => Some(self.width),
        };
        // In column order, a parameter's kinds where its first column is: between fits
        // that explain alike, the first stands.
        let mut candidates: Vec<Candidate> = (0..width.unwrap_or(0))
            .filter_map(|f| {
                let Some(group) = self.groups.iter().find(|g| g.contains(&f)) else {
                    return Some(Candidate::of(vec![f]));
                };
                if f != group.start {
                    return None;
                }
                let seen: Vec<(usize, usize)> = group
                    .clone()
                    .map(|f| (f, self.observed_of_kind(f)))
                    .filter(|&(_, n)| n > 0)
                    .collect();
                let &(base, _) = seen.iter().rev().max_by_key(|&&(_, n)| n)?;
                let levels: Vec<usize> = seen
                    .iter()
                    .map(|&(f, _)| f)
                    .filter(|&f| f != base)
                    .collect();
                (!levels.is_empty()).then_some(Candidate::of(levels))
            })
            .collect();
        // A slope per kind of a parameter, for each feature that is no kind: the columns of
        // the kinds observed, once two are, from SLOPES_FROM observations per coefficient.
        let mut i = 0;
        while i < self.slopes_by_kind.len() {
            let (feature, kind) = self.slopes_by_kind[i];
            let group = self.groups.iter().find(|g| g.contains(&kind));
            let block: Vec<usize> = (i..self.slopes_by_kind.len())
                .take_while(|&c| {
                    let (f, k) = self.slopes_by_kind[c];
                    f == feature && group.is_some_and(|g| g.contains(&k))
                })
                .collect();
            i += block.len().max(1);
            let seen: Vec<usize> = block
                .into_iter()
                .filter(|&c| self.slope_values[c] > 0)
                .map(|c| self.width + c)
                .collect();
            let coefficients = (seen.len() + 1) as f64;
            if seen.len() >= 2 && self.observations.len() as f64 >= SLOPES_FROM * coefficients {
                // The slopes sum to the feature: they must halve what it leaves unexplained,
                // as well as what the kinds do.
                let refines = candidates
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        c.columns == [feature] || group.is_some_and(|g| g.contains(&c.columns[0]))
                    })
                    .map(|(j, _)| j)
                    .collect();
                candidates.push(Candidate {
                    columns: seen,
                    refines,
                });
            }
        }
        candidates
    }

    /// A task's features as the fits see them: its own, then a slope per kind
    /// (`slopes_by_kind`).
    fn expanded(&self, features: &[f64]) -> Vec<f64> {
        let mut all = features.to_vec();
        if self.slopes_by_kind.is_empty() {
            return all;
        }
        all.resize(self.width, f64::NAN);
        all.extend(
            self.slopes_by_kind
                .iter()
                .map(|&(f, k)| match features.get(k) {
                    Some(&1.0) => features.get(f).copied().unwrap_or(f64::NAN),
                    Some(&0.0) => 0.0,
                    _ => f64::NAN,
                }),
        );
        all
    }

    /// Sets `slopes_by_kind` from the first observation's width: a model with kinds and
    /// own models (not a kind's own model, whose tasks are all of one kind).
    fn set_slopes_by_kind(&mut self, width: usize) {
        if self.by_kind.is_empty() || !self.observations.is_empty() {
            return;
        }
        // Past every kind's column, whatever the first task gave.
        let kinds_end = self.groups.iter().map(|g| g.end).max().unwrap_or(0);
        self.width = width.max(kinds_end);
        let plain: Vec<usize> = (0..self.width)
            .filter(|f| !self.groups.iter().any(|g| g.contains(f)))
            .collect();
        self.slopes_by_kind = self
            .groups
            .iter()
            .flat_map(|g| {
                plain
                    .iter()
                    .flat_map(move |&f| g.clone().map(move |k| (f, k)))
            })
            .collect();
        self.slope_values = vec![0; self.slopes_by_kind.len()];
    }

    /// Records one observed value.
    pub fn observe(&mut self, features: &[f64], y: f64) {
        if !y.is_finite() {
            return;
        }
        self.set_slopes_by_kind(features.len());
        let all = self.expanded(features);
        for (n, x) in self.slope_values.iter_mut().zip(&all[self.width..]) {
            *n += usize::from(x.is_finite() && *x != 0.0);
        }
        self.observations.push((all, y));
        for (f, n) in &mut self.kinds {
            *n += usize::from(of_kind(features, *f));
        }
        for (f, m) in &mut self.by_kind {
            if of_kind(features, *f) {
                m.observe(features, y);
            }
        }
        self.range = Some(self.range.map_or((y, y), |(lo, hi)| (lo.min(y), hi.max(y))));
        // A fit (and the quantile's sort) costs O(n) per feature tried: with many
        // observations, refit only when they have grown by REFIT_GROWTH, so a sweep of
        // 100,000 tasks stays O(n log n).
        let n = self.observations.len();
        if n <= REFIT_ALWAYS || n as f64 >= self.fitted_at as f64 * (1.0 + REFIT_GROWTH) {
            (self.fit, self.rivals) = best_fit(&self.observations, &self.candidates());
            self.left_out = self.kinds_left_out();
            self.rival_ranges = self
                .rivals
                .iter()
                .map(|r| {
                    let out = mask(&r.left_out, n);
                    r.features
                        .iter()
                        .map(|&c| self.column_range(c, &out))
                        .collect()
                })
                .collect();
            let two_valued: Vec<bool> = self
                .fit
                .iter()
                .chain(&self.rivals)
                .map(|f| self.uses_a_two_valued_feature(f))
                .collect();
            for (f, two) in self.fit.iter_mut().chain(&mut self.rivals).zip(two_valued) {
                f.two_valued = two;
            }
            self.quantile = self.quantile_of_all();
            self.fitted_at = n;
        } else {
            // Between refits the quantile only moves toward the safe side.
            self.quantile = self.quantile.map(|q| self.safer(q, y));
        }
    }

    /// The kinds most of whose observations the fit left out as outliers.
    fn kinds_left_out(&self) -> Vec<usize> {
        let Some(fit) = &self.fit else {
            return Vec::new();
        };
        let of = |f: usize, i: usize| of_kind(&self.observations[i].0, f);
        self.kinds
            .iter()
            .filter(|&&(f, all)| {
                let out = fit.left_out.iter().filter(|&&i| of(f, i)).count();
                out > 0 && 2 * out >= all
            })
            .map(|&(f, _)| f)
            .collect()
    }

    /// How many values have been learned.
    pub fn observed(&self) -> usize {
        self.observations.len()
    }

    /// The feature fit in use, if features explain the values.
    pub fn fit(&self) -> Option<&Fit> {
        self.fit.as_ref()
    }

    /// The quantile of learned values toward the safe side, with the margin.
    pub fn typical(&self) -> Option<f64> {
        self.quantile.map(|y| self.with_margin(y))
    }

    /// The quantile of all observations (nearest rank: with few samples, the extreme).
    fn quantile_of_all(&self) -> Option<f64> {
        let mut ys: Vec<f64> = self.observations.iter().map(|o| o.1).collect();
        ys.sort_unstable_by(f64::total_cmp);
        let q = match self.side {
            Side::Upper => QUANTILE,
            Side::Lower => 1.0 - QUANTILE,
        };
        let rank = ((q * ys.len() as f64).ceil() as usize).clamp(1, ys.len());
        ys.get(rank - 1).copied()
    }

    /// The value predicted for a task with these features; `None` while nothing is known.
    pub fn predict(&self, features: &[f64]) -> Option<f64> {
        // A kind's own model, once it has enough of the kind, or where the fit left the
        // kind out (module doc).
        let own = self
            .by_kind
            .iter()
            .filter(|(f, m)| {
                of_kind(features, *f) && (m.observed() >= KIND_ALONE || self.left_out.contains(f))
            })
            .filter_map(|(_, m)| m.predict(features))
            .reduce(|a, b| self.safer(a, b));
        if own.is_some() {
            return own;
        }
        let all = self.expanded(features);
        let features = all.as_slice();
        let mut safest: Option<f64> = None;
        // A rival is a single feature that fits by chance as well as the best one; it
        // speaks for a task near the values it was fitted on, not far beyond them (a slope
        // per kind: near those of the task's kind).
        let near = |i: usize| {
            self.rivals[i]
                .features
                .iter()
                .zip(&self.rival_ranges[i])
                .filter(|&(&c, _)| self.of_its_kind(c, features))
                .all(|(&c, &(lo, hi))| {
                    let x = features.get(c).copied();
                    x.is_some_and(|x| x >= lo - (hi - lo) && x <= hi + (hi - lo))
                })
        };
        let rivals = (0..self.rivals.len()).filter(|&i| near(i));
        // A task of a kind nothing observed had: no fit on kinds speaks for it.
        let unseen = self.of_an_unseen_kind(features);
        let speaks = |fit: &&Fit| !unseen || !fit.features.iter().any(|&f| self.is_kind(f));
        for fit in self
            .fit
            .iter()
            .chain(rivals.map(|i| &self.rivals[i]))
            .filter(speaks)
        {
            let Some(y) = fit.value(features) else {
                continue;
            };
            let spread = 2.0 * fit.resid_sd * fit.leverage(features).unwrap_or(1.0);
            let mut y = match self.side {
                Side::Upper => y + spread,
                Side::Lower => y - spread,
            };
            // A fit through two points, or through two values of a feature, may dip
            // anywhere: not beyond what was seen, then.
            if self.observations.len() < 3 || fit.two_valued {
                y = match self.side {
                    Side::Upper => y.max(self.range.map_or(0.0, |r| r.0)),
                    Side::Lower => y.min(self.range.map_or(0.0, |r| r.1)),
                };
            }
            let y = self.fit_margin(fit, y);
            safest = Some(safest.map_or(y, |s| self.safer(s, y)));
        }
        safest.or_else(|| self.typical())
    }

    /// Returns true if and only if feature `f` is a kind, or a slope per kind.
    fn is_kind(&self, f: usize) -> bool {
        self.kinds.iter().any(|&(k, _)| k == f) || self.kind_of_slope(f).is_some()
    }

    /// Returns true if and only if `fit` uses a feature, no kind, that took fewer than three
    /// distinct values: a line through two values of a feature says nothing of a third.
    fn uses_a_two_valued_feature(&self, fit: &Fit) -> bool {
        fit.features
            .iter()
            .filter(|&&f| !self.is_kind(f))
            .any(|&f| {
                let mut seen: Vec<f64> = Vec::with_capacity(3);
                for x in self.observations.iter().filter_map(|(xs, _)| xs.get(f)) {
                    if x.is_finite() && !seen.contains(x) {
                        seen.push(*x);
                        if seen.len() == 3 {
                            return false;
                        }
                    }
                }
                true
            })
    }

    /// The kind's column whose slope column `c` is, if it is one (`slopes_by_kind`).
    fn kind_of_slope(&self, c: usize) -> Option<usize> {
        let i = c.checked_sub(self.width)?;
        self.slopes_by_kind.get(i).map(|&(_, k)| k)
    }

    /// Returns true unless column `c` is a slope of a kind the task (its expanded
    /// features) is not of.
    fn of_its_kind(&self, c: usize, features: &[f64]) -> bool {
        self.kind_of_slope(c).is_none_or(|k| of_kind(features, k))
    }

    /// The lowest and highest value in column `c` of the observations not flagged in `out`
    /// (a fit's left-out points, [`mask`]); of a slope per kind, among the kind's tasks.
    fn column_range(&self, c: usize, out: &[bool]) -> (f64, f64) {
        self.observations
            .iter()
            .zip(out)
            .filter(|&((xs, _), &left)| !left && self.of_its_kind(c, xs))
            .filter_map(|((xs, _), _)| xs.get(c).copied())
            .filter(|x| x.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            })
    }

    /// The fit's value for a task with these features, without spread or margin; `None`
    /// without a fit.
    pub fn fitted(&self, features: &[f64]) -> Option<f64> {
        self.fit.as_ref()?.value(&self.expanded(features))
    }

    /// Returns true if and only if the task is of a kind no observation had.
    pub fn of_an_unseen_kind(&self, features: &[f64]) -> bool {
        self.unseen_kinds().any(|f| of_kind(features, f))
    }

    /// The columns of the kinds no observation had.
    pub fn unseen_kinds(&self) -> impl Iterator<Item = usize> + '_ {
        self.kinds.iter().filter(|k| k.1 == 0).map(|k| k.0)
    }

    /// The margin on a fit's prediction: [`FIT_MARGIN`] once it rests on three observations
    /// per coefficient, so that its residual deviations (two of which are already added)
    /// measure how far tasks stray from it; [`MARGIN`] before.
    fn fit_margin(&self, fit: &Fit, y: f64) -> f64 {
        if fit.rows < 3 * (fit.features.len() + 1) {
            return self.with_margin(y);
        }
        match self.side {
            Side::Upper => y * (1.0 + FIT_MARGIN),
            Side::Lower => (y * (1.0 - FIT_MARGIN)).max(0.0),
        }
    }

    /// The safer of two predictions.
    fn safer(&self, a: f64, b: f64) -> f64 {
        match self.side {
            Side::Upper => a.max(b),
            Side::Lower => a.min(b),
        }
    }

    /// The smallest value learned; `None` while nothing is.
    pub fn least(&self) -> Option<f64> {
        self.range.map(|r| r.0)
    }

    fn with_margin(&self, y: f64) -> f64 {
        match self.side {
            Side::Upper => y * (1.0 + MARGIN),
            Side::Lower => (y * (1.0 - MARGIN)).max(0.0),
        }
    }
}

/// What one finished task teaches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Highest memory of its tree.
    pub peak: Bytes,
    /// Start to exit; `None` when unknown (peaks from an older journal).
    pub duration: Option<Duration>,
    /// Start until the tree first held 95% of its peak.
    pub time_to_peak: Option<Duration>,
    /// Its quiet start, if it had one: how long it ran before its last climb to the peak
    /// while its memory stood still, and the most it held until then
    /// ([`AttemptFacts::quiet`](super::AttemptFacts::quiet)); `(0, 0)` for a task that
    /// climbed from the start, `None` when unknown.
    pub quiet: Option<(Duration, Bytes)>,
}

/// Learns peaks, durations and times to peak from finished tasks.
#[derive(Debug, Clone)]
pub struct Predictor {
    estimate: Option<Bytes>,
    peak: Model,
    duration: Model,
    time_to_peak: Model,
    /// Duration less time to peak: how long a task runs once it holds its peak.
    after_peak: Model,
    /// How long a task waits or works at a small size before it climbs to its peak.
    quiet_time: Model,
    /// What it holds while it does.
    quiet_level: Model,
}

impl Default for Predictor {
    fn default() -> Predictor {
        Predictor::new(None)
    }
}

impl Predictor {
    /// A predictor that falls back to `estimate` for peaks until something is measured.
    pub fn new(estimate: Option<Bytes>) -> Predictor {
        Predictor {
            estimate,
            peak: Model::new(Side::Upper),
            duration: Model::new(Side::Upper),
            time_to_peak: Model::new(Side::Lower),
            after_peak: Model::new(Side::Upper),
            quiet_time: Model::new(Side::Lower),
            quiet_level: Model::new(Side::Upper),
        }
    }

    /// Records what a task that finished normally did.
    pub fn observe(&mut self, features: &[f64], obs: Observation) {
        self.peak.observe(features, obs.peak.get() as f64);
        if let Some(d) = obs.duration {
            self.duration.observe(features, d.as_secs_f64());
        }
        if let Some(t) = obs.time_to_peak {
            self.time_to_peak.observe(features, t.as_secs_f64());
        }
        if let (Some(d), Some(t)) = (obs.duration, obs.time_to_peak) {
            self.after_peak
                .observe(features, d.saturating_sub(t).as_secs_f64());
        }
        if let Some((t, held)) = obs.quiet {
            self.quiet_time.observe(features, t.as_secs_f64());
            self.quiet_level.observe(features, held.get() as f64);
        }
    }

    /// How many peaks have been learned.
    pub fn observed(&self) -> usize {
        self.peak.observed()
    }

    /// The peak model.
    pub fn peaks(&self) -> &Model {
        &self.peak
    }

    /// The typical peak: a high quantile of learned peaks plus the margin, else the estimate.
    pub fn typical(&self) -> Option<Bytes> {
        self.peak.typical().map(to_bytes).or(self.estimate)
    }

    /// The peak predicted for a task with these features; `None` while nothing is known.
    /// Never below [`PEAK_FLOOR`] of the least peak seen (see there).
    pub fn predict(&self, features: &[f64]) -> Option<Bytes> {
        let Some(y) = self.peak.predict(features) else {
            return self.estimate;
        };
        let floor = self.peak.least().unwrap_or(0.0) * PEAK_FLOOR;
        Some(to_bytes(y.max(floor)))
    }

    /// Tells every model which features are kinds (one 0/1 column per value of a parameter
    /// read by name, one range per parameter; `tasks::feature_table`); before anything is
    /// observed.
    pub fn set_kinds(&mut self, kinds: &[Range<usize>]) {
        for m in [
            &mut self.peak,
            &mut self.duration,
            &mut self.time_to_peak,
            &mut self.after_peak,
            &mut self.quiet_time,
            &mut self.quiet_level,
        ] {
            m.set_kinds(kinds);
        }
    }

    /// How long a task with these features is expected to run at most; `None` until
    /// [`MIN_DURATIONS`] durations are known. Never shorter than the shortest seen, less
    /// the margin: a fit through the first few durations may fall toward zero beyond them
    /// (three tasks whose durations happened to fall with their index predicted the next
    /// thirteen at 0 s, which the ETA showed as "eta 186ms" for 20 s of work, and the
    /// look-ahead planned with).
    pub fn duration(&self, features: &[f64]) -> Option<Duration> {
        longest(&self.duration, features)
    }

    /// Returns true if and only if durations are learned and predicted per task from its
    /// features, so that tasks can be told apart by how long they run.
    pub fn per_task_durations(&self) -> bool {
        self.duration.observed() >= MIN_DURATIONS && self.duration.fit().is_some()
    }

    /// How soon a task with these features may reach its peak at the earliest.
    pub fn time_to_peak(&self, features: &[f64]) -> Option<Duration> {
        self.time_to_peak.predict(features).map(to_duration)
    }

    /// How long a task with these features runs at most once it holds its peak; `None`
    /// until [`MIN_DURATIONS`] are known, and never shorter than the shortest seen, less the
    /// margin, as a duration. A task that waits or computes a varying time before it
    /// allocates has a duration its features do not tell, but often a hold that they do.
    pub fn after_peak(&self, features: &[f64]) -> Option<Duration> {
        longest(&self.after_peak, features)
    }

    /// How long a task with these features stays quiet at the least, and what it holds
    /// meanwhile at the most; `None` until [`MIN_DURATIONS`] quiet starts are known. A task
    /// that imports, downloads or computes on a small sample before it allocates its arrays
    /// needs its peak only later.
    pub fn quiet(&self, features: &[f64]) -> Option<(Duration, Bytes)> {
        if self.quiet_time.observed() < MIN_DURATIONS {
            return None;
        }
        let time = self.quiet_time.predict(features)?;
        let held = self.quiet_level.predict(features)?;
        Some((to_duration(time), to_bytes(held)))
    }
}

/// Returns true if and only if a task's features mark it of the kind in `column`: a kind is
/// a 0/1 column, 1 for the tasks of that kind.
pub(super) fn of_kind(features: &[f64], column: usize) -> bool {
    features.get(column) == Some(&1.0)
}

/// A time a task takes at most (the model's upper side), once [`MIN_DURATIONS`] are known;
/// never below the shortest seen, less the margin (see [`Predictor::duration`]).
fn longest(model: &Model, features: &[f64]) -> Option<Duration> {
    if model.observed() < MIN_DURATIONS {
        return None;
    }
    let floor = model.least()? * (1.0 - MARGIN);
    let y = model.predict(features)?;
    Some(to_duration(y.max(floor)))
}

fn to_bytes(y: f64) -> Bytes {
    // `as` saturates, so a huge extrapolation becomes u64::MAX, not garbage.
    Bytes(y.max(0.0) as u64)
}

fn to_duration(y: f64) -> Duration {
    Duration::try_from_secs_f64(y.max(0.0)).unwrap_or(Duration::MAX)
}

/// What a fit may take in one step: a feature, a parameter's kinds, or a slope per kind.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    /// The columns it adds.
    columns: Vec<usize>,
    /// The candidates (their indexes) a slope per kind must better alone: it must halve
    /// what each leaves unexplained, the kinds whose slopes these are and the feature
    /// they are slopes of (module doc).
    refines: Vec<usize>,
}

impl Candidate {
    fn of(columns: Vec<usize>) -> Candidate {
        Candidate {
            columns,
            refines: Vec::new(),
        }
    }
}

/// Chooses features forward (module doc) from `candidates` and returns the fit, if any is
/// good enough.
fn best_fit(obs: &[(Vec<f64>, f64)], candidates: &[Candidate]) -> (Option<Fit>, Vec<Fit>) {
    // Kinds taken together spend a coefficient per kind: judged as they explain what is
    // left once that is paid for.
    let score = |f: &Fit| adjusted_r2(f.r2, f.rows, f.features.len());
    // Judged on the same rows, outliers and all: a fit of many columns leaves out its
    // worst points more easily than the one it must better (a slope for each of eight
    // kinds that did not matter, through 20 tasks, left one out and was chosen over the
    // rows alone 64 times in 200). Judged first, as it is the cheaper.
    // Each once: a parameter's kinds are refined by the slopes of every feature.
    let refined = |i: usize| candidates.iter().any(|c| c.refines.contains(&i));
    let unexplained: Vec<Option<f64>> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (!c.refines.is_empty() || refined(i))
                .then(|| fit_linear(obs, &c.columns).map_or(1.0, |f| 1.0 - score(&f)))
        })
        .collect();
    let betters = |i: usize| {
        let mine = unexplained[i].unwrap_or(1.0);
        candidates[i]
            .refines
            .iter()
            .all(|&r| mine <= MIN_GAIN * unexplained[r].unwrap_or(1.0))
    };
    let mut singles: Vec<Fit> = candidates
        .iter()
        .enumerate()
        .filter(|&(i, _)| betters(i))
        .filter_map(|(_, c)| robust(obs, fit_linear(obs, &c.columns)?))
        .filter(|fit| fit.r2 >= MIN_R2)
        .collect();
    singles.sort_by(|a, b| score(b).total_cmp(&score(a)));
    if obs.len() < 3 {
        singles = through_the_origin(obs, singles);
    }
    let Some(mut best) = singles.first().cloned() else {
        return (None, Vec::new());
    };
    let best_out = mask(&best.left_out, obs.len());
    let rivals: Vec<Fit> = singles
        .into_iter()
        .skip(1)
        .take_while(|fit| {
            fit.r2 >= best.r2 - RIVAL_GAP
                && 1.0 - fit.r2 <= RIVAL_UNEXPLAINED * (1.0 - best.r2) + RIVAL_NOISE
        })
        // On fewer points than the best, a match is no rival (module doc).
        .filter(|fit| fit.left_out.iter().all(|&i| best_out.get(i) == Some(&true)))
        .collect();
    while best.features.len() < MAX_FEATURES && best.r2 < 1.0 - 1e-9 {
        let mut better: Option<Fit> = None;
        for c in candidates
            .iter()
            .filter(|c| c.columns.iter().all(|f| !best.features.contains(f)))
        {
            let mut chosen = best.features.clone();
            chosen.extend(&c.columns);
            let Some(fit) = fit_linear(obs, &chosen).and_then(|fit| robust(obs, fit)) else {
                continue;
            };
            // Counted on the rows each fit rests on: a feature only some tasks have (an
            // option the others lack) leaves a fit on those few.
            let before = 1.0 - adjusted_r2(best.r2, best.rows, best.features.len());
            let after = 1.0 - adjusted_r2(fit.r2, fit.rows, chosen.len());
            if fit.rows >= 3 * (chosen.len() + 1)
                && after <= MIN_GAIN * before
                && better.as_ref().is_none_or(|b| fit.r2 > b.r2)
            {
                better = Some(fit);
            }
        }
        match better {
            Some(fit) => best = fit,
            None => break,
        }
    }
    (Some(best), rivals)
}

/// With two observations every feature that differs fits them exactly, and the safest of
/// those lines is usually the wildest extrapolation of a feature that has nothing to do
/// with memory (`--hold 1.49` → 2.6 GiB and `--hold 1.68` → 154 MiB predicted 7.7 GiB for
/// `--hold 1.11`). What memory does follow grows with a size from near nothing: the lines
/// whose value at 0 is small against what was seen (within [`ORIGIN`] of the mean) are
/// kept, nearest the origin first; if none is, all of them are.
fn through_the_origin(obs: &[(Vec<f64>, f64)], singles: Vec<Fit>) -> Vec<Fit> {
    let mean = obs.iter().map(|o| o.1.abs()).sum::<f64>() / obs.len().max(1) as f64;
    let off = |f: &Fit| f.intercept.abs() / mean.max(f64::MIN_POSITIVE);
    let mut near: Vec<Fit> = singles
        .iter()
        .filter(|f| off(f) <= ORIGIN)
        .cloned()
        .collect();
    if near.is_empty() {
        return singles;
    }
    near.sort_by(|a, b| off(a).total_cmp(&off(b)));
    near
}

/// `indexes` as one flag per observation: a lookup in a list of a fifth of 100,000
/// observations, for each of them, would cost seconds.
fn mask(indexes: &[usize], n: usize) -> Vec<bool> {
    let mut flags = vec![false; n];
    for &i in indexes {
        if let Some(f) = flags.get_mut(i) {
            *f = true;
        }
    }
    flags
}

fn adjusted_r2(r2: f64, n: usize, k: usize) -> f64 {
    if n <= k + 1 {
        return r2;
    }
    1.0 - (1.0 - r2) * (n - 1) as f64 / (n - k - 1) as f64
}

/// The observations that have every chosen feature, as (those features' values, y).
fn rows_with(obs: &[(Vec<f64>, f64)], features: &[usize]) -> Vec<(Vec<f64>, f64)> {
    obs.iter()
        .filter_map(|(f, y)| Some((chosen(f, features)?, *y)))
        .collect()
}

/// [`rows_with`], with each row's index among the observations.
fn indexed_rows(obs: &[(Vec<f64>, f64)], features: &[usize]) -> (Vec<usize>, Vec<(Vec<f64>, f64)>) {
    obs.iter()
        .enumerate()
        .filter_map(|(i, (f, y))| Some((i, (chosen(f, features)?, *y))))
        .unzip()
}

/// The chosen features' values of one observation; `None` if one is missing.
fn chosen(values: &[f64], features: &[usize]) -> Option<Vec<f64>> {
    features
        .iter()
        .map(|&i| values.get(i).copied().filter(|x| x.is_finite()))
        .collect()
}

/// Ordinary least squares of y on the chosen features, over the observations that have all
/// of them; `None` unless there are more observations than features and the features vary
/// independently of each other.
fn fit_linear(obs: &[(Vec<f64>, f64)], features: &[usize]) -> Option<Fit> {
    fit_rows(&rows_with(obs, features), features)
}

/// Outliers left out one at a time, each judged on the fit of the others; the rest of the
/// fifth at once. One at a time costs a fit per point: on a sweep of trivial tasks, whose
/// durations have a long tail, leaving out up to a fifth of them one by one made ramguard's
/// own CPU time grow with the square of the tasks (10,000 `true`: 10.9 s, now 5.9 s;
/// 20,000: 35.4 s, now 12.3 s).
pub const ONE_BY_ONE: usize = 32;

/// The chosen fit made again without its outliers (module doc): while the point farthest
/// from the fit lies more than [`OUTLIER`] residual deviations from the fit of the others
/// (a deleted residual, so one wild point cannot hide by dragging the line toward itself).
/// After [`ONE_BY_ONE`] of them, every point that far from the fit left is left out at once,
/// up to the fifth.
fn robust(obs: &[(Vec<f64>, f64)], mut fit: Fit) -> Option<Fit> {
    // Each row's index among the observations, for the fit to say which it left out.
    let (mut index, mut rows) = indexed_rows(obs, &fit.features);
    let mut left_out = Vec::new();
    let most = rows.len() / 5;
    for step in 0..most {
        if rows.len() < 6 {
            break;
        }
        if step == ONE_BY_ONE {
            return Some(the_rest_at_once(rows, index, fit, left_out, most - step));
        }
        let worst = (0..rows.len())
            .max_by(|&a, &b| {
                let r = |i: usize| (rows[i].1 - fit.at(&rows[i].0)).abs();
                r(a).total_cmp(&r(b))
            })
            .unwrap_or(0);
        // Taken out for the refit; the loop ends at once if it stays (no copy of the rows).
        let (xs, y) = rows.remove(worst);
        let Some(refit) = fit_rows(&rows, &fit.features) else {
            break;
        };
        if (y - refit.at(&xs)).abs() <= OUTLIER * outlier_scale(&rows, &refit) {
            break;
        }
        fit = refit;
        left_out.push(index.remove(worst));
    }
    fit.left_out = left_out;
    Some(fit)
}

/// One residual deviation of `fit` over `rows`, for [`OUTLIER`]: with near-perfect fits, at
/// least 1% of the typical value.
fn outlier_scale(rows: &[(Vec<f64>, f64)], fit: &Fit) -> f64 {
    let typical = rows.iter().map(|r| r.1.abs()).sum::<f64>() / rows.len().max(1) as f64;
    fit.resid_sd.max(0.01 * typical)
}

/// [`robust`] past [`ONE_BY_ONE`] outliers: the `most` points farthest from `fit`, of those
/// more than [`OUTLIER`] residual deviations from it, left out together and the fit made
/// once more; `fit` as it is when nothing is that far or the refit fails.
fn the_rest_at_once(
    rows: Vec<(Vec<f64>, f64)>,
    index: Vec<usize>,
    mut fit: Fit,
    mut left_out: Vec<usize>,
    most: usize,
) -> Fit {
    let scale = outlier_scale(&rows, &fit);
    let off = |r: &(Vec<f64>, f64)| (r.1 - fit.at(&r.0)).abs();
    let mut far: Vec<usize> = (0..rows.len())
        .filter(|&i| off(&rows[i]) > OUTLIER * scale)
        .collect();
    far.sort_by(|&a, &b| off(&rows[b]).total_cmp(&off(&rows[a])));
    far.truncate(most);
    if !far.is_empty() {
        let mut keep = vec![true; rows.len()];
        for &i in &far {
            keep[i] = false;
        }
        let kept: Vec<(Vec<f64>, f64)> = (0..rows.len())
            .filter(|&i| keep[i])
            .map(|i| rows[i].clone())
            .collect();
        if let Some(refit) = fit_rows(&kept, &fit.features) {
            fit = refit;
            left_out.extend(far.iter().map(|&i| index[i]));
        }
    }
    fit.left_out = left_out;
    fit
}

/// Ordinary least squares over rows that hold exactly the chosen features' values.
fn fit_rows(rows: &[(Vec<f64>, f64)], features: &[usize]) -> Option<Fit> {
    let k = features.len();
    if rows.len() < k + 1 {
        return None;
    }
    let n = rows.len() as f64;
    // Centre the columns (the intercept drops out) and scale each to unit deviation: a
    // feature in the millions beside one in the units otherwise looks singular to the
    // solver (its pivot test compares every column with the largest), and the smaller was
    // never combined with the larger.
    let mean_x: Vec<f64> = (0..k)
        .map(|j| rows.iter().map(|r| r.0[j]).sum::<f64>() / n)
        .collect();
    let sd_x: Vec<f64> = (0..k)
        .map(|j| {
            (rows
                .iter()
                .map(|r| (r.0[j] - mean_x[j]).powi(2))
                .sum::<f64>()
                / n)
                .sqrt()
        })
        .collect();
    if sd_x.iter().any(|&sd| !(sd > 0.0 && sd.is_finite())) {
        return None; // a constant feature explains nothing
    }
    let z = |xs: &[f64], j: usize| (xs[j] - mean_x[j]) / sd_x[j];
    let mean_y = rows.iter().map(|r| r.1).sum::<f64>() / n;
    let mut a = vec![vec![0.0; k + 1]; k];
    for (xs, y) in rows {
        let zs: Vec<f64> = (0..k).map(|j| z(xs, j)).collect();
        for (row, xi) in a.iter_mut().zip(&zs) {
            for (cell, xj) in row.iter_mut().zip(&zs) {
                *cell += xi * xj;
            }
            row[k] += xi * (y - mean_y);
        }
    }
    // The inverse of the cross products, column by column, for the leverage (back in the
    // features' own units).
    let inverse: Vec<Vec<f64>> = (0..k)
        .map(|j| {
            let mut e = a.clone();
            for (i, row) in e.iter_mut().enumerate() {
                row[k] = if i == j { 1.0 } else { 0.0 };
            }
            let column = solve(e)?;
            Some(
                column
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v / (sd_x[i] * sd_x[j]))
                    .collect(),
            )
        })
        .collect::<Option<_>>()?;
    let slopes: Vec<f64> = solve(a)?.iter().zip(&sd_x).map(|(b, sd)| b / sd).collect();
    let intercept = mean_y - slopes.iter().zip(&mean_x).map(|(b, m)| b * m).sum::<f64>();
    let mut fit = Fit {
        features: features.to_vec(),
        intercept,
        slopes,
        resid_sd: 0.0,
        r2: 0.0,
        rows: rows.len(),
        means: mean_x,
        inverse,
        left_out: Vec::new(),
        two_valued: false,
    };
    let sse: f64 = rows.iter().map(|(xs, y)| (y - fit.at(xs)).powi(2)).sum();
    let syy: f64 = rows.iter().map(|r| (r.1 - mean_y).powi(2)).sum();
    // Identical values everywhere: the features explain nothing, the quantile does as well.
    fit.r2 = if syy > 0.0 { 1.0 - sse / syy } else { 0.0 };
    let dof = rows.len().saturating_sub(k + 1).max(1) as f64;
    fit.resid_sd = (sse / dof).sqrt();
    Some(fit)
}

/// Solves the `k × (k+1)` augmented system by Gaussian elimination with partial pivoting;
/// `None` when it is singular (a feature constant, or a combination of the others).
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let k = a.len();
    let scale = a
        .iter()
        .enumerate()
        .map(|(i, row)| row[i].abs())
        .fold(0.0, f64::max);
    for col in 0..k {
        let pivot = (col..k).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() <= 1e-9 * scale.max(f64::MIN_POSITIVE) {
            return None;
        }
        a.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for row in lower.iter_mut() {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
        }
    }
    let mut x = vec![0.0; k];
    for row in (0..k).rev() {
        let s: f64 = (row + 1..k).map(|c| a[row][c] * x[c]).sum();
        x[row] = (a[row][k] - s) / a[row][row];
    }
    Some(x)
}

impl Fit {
    /// The fitted value for the fit's own features, in fit order.
    fn at(&self, xs: &[f64]) -> f64 {
        self.intercept + self.slopes.iter().zip(xs).map(|(b, x)| b * x).sum::<f64>()
    }
}

#[cfg(test)]
mod tests;
