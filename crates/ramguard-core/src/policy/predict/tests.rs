// One parameter's kinds are one range of columns: `[0..3]` is meant.
#![allow(clippy::single_range_in_vec_init)]

use super::*;

const MB: u64 = 1_000_000;

fn peak(p: u64) -> Observation {
    Observation {
        peak: Bytes(p),
        duration: None,
        time_to_peak: None,
        quiet: None,
    }
}

#[test]
fn estimate_until_measured_then_quantile_with_margin() {
    let mut p = Predictor::new(Some(Bytes(500 * MB)));
    assert_eq!(p.predict(&[]), Some(Bytes(500 * MB)));
    p.observe(&[], peak(100 * MB));
    p.observe(&[], peak(200 * MB));
    assert_eq!(p.predict(&[]), Some(Bytes(220 * MB)));
}

#[test]
fn unknown_without_estimate_or_data() {
    let p = Predictor::new(None);
    assert_eq!(p.predict(&[1.0]), None);
    assert_eq!(p.duration(&[1.0]), None);
    assert_eq!(p.time_to_peak(&[1.0]), None);
}

#[test]
fn backtest_years_extrapolate_to_a_large_peak() {
    // Seed 001: 1 year → 234 MB, 2 years → ~450 MB; 10 years must come out ≥ 2 GB.
    let mut p = Predictor::new(None);
    p.observe(&[1.0, 10.0], peak(234 * MB));
    p.observe(&[2.0, 10.0], peak(452 * MB));
    let ten = p.predict(&[10.0, 10.0]).unwrap();
    assert!(ten.get() >= 2_200 * MB, "{ten}");
    let one = p.predict(&[1.0, 10.0]).unwrap();
    assert!(one.get() < 300 * MB, "{one}");
    assert_eq!(p.peaks().fit().unwrap().features, vec![0]);
}

#[test]
fn feature_that_explains_nothing_falls_back_to_quantile() {
    let mut p = Predictor::new(None);
    p.observe(&[1.0], peak(100 * MB));
    p.observe(&[2.0], peak(100 * MB));
    p.observe(&[3.0], peak(100 * MB));
    assert!(p.peaks().fit().is_none());
    assert_eq!(p.predict(&[50.0]), Some(Bytes(110 * MB)));
}

#[test]
fn nan_features_are_ignored() {
    let mut p = Predictor::new(None);
    p.observe(&[f64::NAN], peak(100 * MB));
    p.observe(&[f64::NAN], peak(300 * MB));
    assert!(p.peaks().fit().is_none());
    assert_eq!(p.predict(&[f64::NAN]), Some(Bytes(330 * MB)));
}

#[test]
fn duration_of_years_times_symbols_needs_both_features() {
    // duration = 2 s + 3 s per year + 5 s per symbol, over a 3 × 3 grid.
    let mut m = Model::new(Side::Upper);
    for years in [1.0, 2.0, 3.0] {
        for symbols in [1.0, 4.0, 9.0] {
            m.observe(&[years, 7.0, symbols], 2.0 + 3.0 * years + 5.0 * symbols);
        }
    }
    let fit = m.fit().unwrap();
    assert_eq!(fit.features, vec![2, 0], "{fit:?}");
    assert!(fit.r2 > 0.999, "{fit:?}");
    // Nine observations, three per coefficient: the fit's own deviations carry its
    // uncertainty, and the margin shrinks to FIT_MARGIN.
    let d = m.predict(&[10.0, 7.0, 2.0]).unwrap();
    assert!((d - 42.0 * (1.0 + FIT_MARGIN)).abs() < 0.01, "{d}");
}

#[test]
fn a_collinear_feature_adds_nothing() {
    let mut m = Model::new(Side::Upper);
    for x in 1..=9 {
        let x = f64::from(x);
        m.observe(&[x, 2.0 * x, (x * 7.0) % 5.0], 10.0 * x);
    }
    assert_eq!(m.fit().unwrap().features.len(), 1);
}

#[test]
fn lower_side_errs_early() {
    // Times to peak 4 s and 8 s at ramps 4 and 8: a ramp of 6 is predicted at 5.4 s.
    let mut m = Model::new(Side::Lower);
    m.observe(&[4.0], 4.0);
    m.observe(&[8.0], 8.0);
    let t = m.predict(&[6.0]).unwrap();
    assert!((t - 5.4).abs() < 1e-9, "{t}");
    // Without features: the low quantile, minus the margin.
    let mut q = Model::new(Side::Lower);
    for y in [3.0, 5.0, 9.0] {
        q.observe(&[], y);
    }
    assert!((q.predict(&[]).unwrap() - 2.7).abs() < 1e-9);
}

#[test]
fn one_leaking_task_does_not_spoil_the_fit() {
    // Peaks follow --peak exactly, except one task that leaked to 6× its size.
    let mut m = Model::new(Side::Upper);
    for (i, size) in [100.0, 300.0, 200.0, 500.0, 400.0, 250.0, 350.0]
        .iter()
        .enumerate()
    {
        let y = if i == 3 { 6.0 * size } else { *size };
        m.observe(&[*size], y);
    }
    let fit = m.fit().unwrap();
    assert!((fit.slopes[0] - 1.0).abs() < 1e-9, "{fit:?}");
    let p = m.predict(&[300.0]).unwrap();
    assert!((p - 300.0 * (1.0 + FIT_MARGIN)).abs() < 1e-6, "{p}");
    // The quantile still remembers it.
    assert!(m.typical().unwrap() >= 3000.0);
}

#[test]
fn a_leaking_task_does_not_hand_the_fit_to_a_feature_that_has_nothing_to_do_with_memory() {
    // The simulated `leak` mix, seed 3: features --peak, --ramp (s), --hold (s), the task's
    // index and --leak (per second, given to the leaking task only); peaks follow --peak
    // exactly, except the task that starts at 200 MiB and leaks to 1.37 GiB. With it,
    // --peak explained less than --ramp did (R² 0.60), the fit went to --ramp, and a
    // 1.08 GiB task was predicted at 2.04 GiB, a 3.15 GiB one at 4.38 GiB: the big tasks
    // ran alone at the end of the sweep. Each feature is now judged without its outliers.
    let no = f64::NAN;
    let gib = |x: f64| x * (1u64 << 30) as f64;
    let task = |peak: f64, ramp: f64, hold: f64, index: f64| [gib(peak), ramp, hold, index, no];
    let mut m = Model::new(Side::Upper);
    let seen = [
        task(1.30859375, 1.49, 2.06, 2.0),
        task(0.5634765625, 4.27, 1.17, 0.0),
        task(0.2763671875, 3.59, 3.05, 1.0),
        task(1.841796875, 2.2, 1.61, 13.0),
        task(0.5546875, 2.95, 2.92, 15.0),
        task(0.25, 3.22, 3.32, 10.0),
        task(0.34375, 3.82, 1.31, 5.0),
        task(0.5498046875, 2.97, 2.15, 6.0),
    ];
    for features in seen {
        m.observe(&features, features[0]);
    }
    let leaker = [gib(0.1953125), 1.0, 8.0, 8.0, 157_286_400.0];
    m.observe(&leaker, gib(1.3671875));
    assert_eq!(m.fit().unwrap().features, [0], "{:?}", m.fit());
    for waiting in [
        task(1.080078125, 2.38, 1.69, 9.0),
        task(3.1494140625, 3.04, 1.32, 12.0),
    ] {
        let p = m.predict(&waiting).unwrap();
        let want = waiting[0] * (1.0 + FIT_MARGIN);
        assert!(
            (p / want - 1.0).abs() < 0.01,
            "{} predicted {p}",
            waiting[0]
        );
    }
}

#[test]
fn a_rival_does_not_speak_far_beyond_the_values_it_was_fitted_on() {
    // Features: --peak, --hold. Three tasks whose hold times happen to rise with their
    // peaks: hold is a rival of peak. A task holding 8 s (far beyond 1.2–3.8 s) with a
    // peak of 200 is predicted by its peak, not at the rival's extrapolation; one
    // holding 4 s (within reach of what was seen) still gets the safer rival.
    // (The peaks do not follow --peak exactly: against an exact fit, see below, hold would
    // be no rival at all.)
    let mut m = Model::new(Side::Upper);
    m.observe(&[1145.0, 2.35], 1200.0);
    m.observe(&[2779.0, 3.83], 2700.0);
    m.observe(&[278.0, 1.18], 300.0);
    assert_eq!(m.rivals.len(), 1, "{:?}", m.rivals);
    // By hold it would be 6,400; by peak about 250, widened for the noise and the margin.
    let far = m.predict(&[200.0, 8.0]).unwrap();
    assert!(far < 600.0, "{far}");
    let near = m.predict(&[200.0, 4.0]).unwrap();
    assert!(near > 2000.0, "{near}");
}

#[test]
fn a_feature_that_explains_far_less_than_an_exact_fit_is_no_rival() {
    // The same tasks, each peaking exactly at its --peak: three points on a line through
    // the origin do not happen by chance, and hold's R² of 0.988 leaves twelve times
    // more unexplained than that. Regression: a 200 MiB task holding 4 s was predicted at
    // hold's 3 GiB and ran alone.
    let mut m = Model::new(Side::Upper);
    m.observe(&[1145.0, 2.35], 1145.0);
    m.observe(&[2779.0, 3.83], 2779.0);
    m.observe(&[278.0, 1.18], 278.0);
    assert!(m.rivals.is_empty(), "{:?}", m.rivals);
    let p = m.predict(&[200.0, 4.0]).unwrap();
    assert!(p < 300.0, "{p}");
}

#[test]
fn with_two_tasks_the_lines_through_the_origin_are_believed() {
    // --ramp 3.54 → 2.6 GiB and --ramp 1.24 → 154 MiB fit a line that is -1.2 GiB at 0;
    // --peak fits one through the origin. With two points every feature fits; the wild
    // line predicted 7.7 GiB for a task of `--hold 1.11` in the benchmark's `big` mix.
    let mut m = Model::new(Side::Upper);
    m.observe(&[2669.0, 3.54, 1.49, 0.0], 2669.0);
    m.observe(&[154.0, 1.24, 1.68, 2.0], 154.0);
    let small = m.predict(&[478.0, 1.69, 1.11, 3.0]).unwrap();
    assert!(small < 600.0, "{small}");
    let big = m.predict(&[2646.0, 5.81, 1.72, 1.0]).unwrap();
    assert!(big > 2646.0 && big < 3200.0, "{big}");
}

#[test]
fn a_seed_column_that_fits_two_points_by_chance_is_not_trusted() {
    // Features: --peak as a size, --seed. Two points fit both perfectly.
    let mut m = Model::new(Side::Upper);
    m.observe(&[1500.0, 7.0], 1500.0);
    m.observe(&[700.0, 3.0], 700.0);
    // By --peak, a 100 MB task; by --seed 9, 1900. The safer wins.
    assert!((m.predict(&[100.0, 9.0]).unwrap() - 1900.0 * 1.1).abs() < 1e-6);
    // More tasks: the seed stops explaining anything, the size alone predicts.
    for (size, seed) in [(300.0, 8.0), (1200.0, 1.0), (500.0, 6.0), (900.0, 2.0)] {
        m.observe(&[size, seed], size);
    }
    assert!(m.rivals.is_empty(), "{:?}", m.rivals);
    let p = m.predict(&[100.0, 9.0]).unwrap();
    assert!((p - 100.0 * (1.0 + FIT_MARGIN)).abs() < 1e-6, "{p}");
}

#[test]
fn many_observations_keep_the_quantile_on_the_safe_side_between_refits() {
    let mut m = Model::new(Side::Upper);
    for i in 0..1000 {
        m.observe(&[], f64::from(i % 100));
    }
    // p90 is 89; values seen since the last refit may have pushed it up to 99.
    let t = m.typical().unwrap();
    assert!((89.0 * 1.1..=99.0 * 1.1 + 1e-9).contains(&t), "{t}");
    // One huge value right after a refit counts at once, if only until the next.
    m.observe(&[], 10_000.0);
    assert!(m.typical().unwrap() >= 10_000.0);
    for i in 0..100 {
        m.observe(&[], f64::from(i % 100));
    }
    assert!(
        m.typical().unwrap() <= 99.0 * 1.1 + 1e-9,
        "{:?}",
        m.typical()
    );
}

#[test]
fn solve_refuses_a_singular_system() {
    assert_eq!(solve(vec![vec![1.0, 2.0, 3.0], vec![2.0, 4.0, 6.0]]), None);
    let x = solve(vec![vec![2.0, 1.0, 5.0], vec![1.0, 3.0, 10.0]]).unwrap();
    assert!(
        (x[0] - 1.0).abs() < 1e-12 && (x[1] - 3.0).abs() < 1e-12,
        "{x:?}"
    );
}

#[test]
fn two_features_of_very_different_scales_are_combined() {
    // Memory grows with --rows (millions) and with --epochs (a handful): y = 40 B a row
    // plus 20 MB an epoch (--rows alone explains 93%). The singularity test compared each
    // pivot with the largest cross product, so a feature in the units (variance ~1) beside
    // one in the millions (variance ~10¹⁴) counted as a combination of the other, and
    // --epochs was never added.
    let mut m = Model::new(Side::Upper);
    let rows = [
        1e6, 4e6, 2e6, 8e6, 3e6, 6e6, 5e6, 7e6, 2.5e6, 9e6, 1.5e6, 4.5e6,
    ];
    let epochs = [1.0, 3.0, 5.0, 2.0, 4.0, 1.0, 3.0, 5.0, 2.0, 4.0, 3.0, 1.0];
    let y = |r: f64, e: f64| 40.0 * r + 2e7 * e;
    for (&r, &e) in rows.iter().zip(&epochs) {
        m.observe(&[r, e], y(r, e));
    }
    let fit = m.fit().unwrap();
    let mut features = fit.features.clone();
    features.sort_unstable();
    assert_eq!(features, [0, 1], "{fit:?}");
    let p = m.predict(&[5e6, 6.0]).unwrap();
    let want = y(5e6, 6.0) * (1.0 + FIT_MARGIN);
    assert!((p / want - 1.0).abs() < 1e-3, "{p} against {want}");
}

#[test]
fn a_duration_fit_falling_toward_zero_never_predicts_less_than_the_shortest_seen() {
    // Three tasks whose durations happened to fall with their index: the fit is exact and
    // reaches 0 s at index 3.
    let mut p = Predictor::new(None);
    for (i, secs) in [(0.0, 6.0), (1.0, 4.0), (2.0, 2.0)] {
        let obs = Observation {
            peak: Bytes(100 * MB),
            duration: Some(Duration::from_secs_f64(secs)),
            time_to_peak: None,
            quiet: None,
        };
        p.observe(&[i], obs);
    }
    assert_eq!(p.duration(&[0.0]), Some(Duration::from_secs_f64(6.6)));
    for i in [3.0, 5.0, 12.0] {
        let d = p.duration(&[i]).unwrap();
        assert_eq!(d, Duration::from_secs_f64(1.8), "index {i}");
    }
}

#[test]
fn a_quiet_start_is_predicted_short_and_large_once_three_are_known() {
    let mut p = Predictor::new(None);
    let quiet = |secs: u64, mb: u64| Observation {
        quiet: Some((Duration::from_secs(secs), Bytes(mb * MB))),
        ..peak(1000 * MB)
    };
    p.observe(&[], quiet(4, 100));
    p.observe(&[], quiet(2, 200));
    assert_eq!(p.quiet(&[]), None, "two are not enough");
    p.observe(&[], quiet(6, 150));
    // The shortest of three (the low quantile) and the largest, each with the margin.
    let (time, held) = p.quiet(&[]).expect("three are known");
    assert_eq!(time, Duration::from_secs_f64(2.0 * (1.0 - MARGIN)));
    assert_eq!(held, Bytes((200.0 * MB as f64 * (1.0 + MARGIN)) as u64));
    // A task that climbed from its start teaches a quiet start of nothing.
    p.observe(&[], quiet(0, 0));
    assert_eq!(p.quiet(&[]).map(|q| q.0), Some(Duration::ZERO));
}

#[test]
fn a_feature_few_tasks_have_adds_no_coefficients_beyond_their_rows() {
    // Twelve tasks peak at 2 MB per unit of size; four also leak (a third feature only they
    // have) and peak at size + 20 × leak − 3 × hold. Their four rows fit three features
    // exactly, but four observations are no basis for four coefficients: a fit may use
    // another feature only where it rests on three rows per coefficient.
    let mut p = Predictor::new(None);
    for i in 0..12 {
        let size = 100.0 + 10.0 * i as f64;
        let hold = (i % 5) as f64;
        p.observe(&[size, hold, f64::NAN], peak(2 * size as u64 * MB));
    }
    for (size, hold, leak) in [
        (100.0, 1.0, 10.0),
        (150.0, 4.0, 30.0),
        (90.0, 2.0, 25.0),
        (300.0, 3.0, 12.0),
    ] {
        let y = size + 20.0 * leak - 3.0 * hold;
        p.observe(&[size, hold, leak], peak(y as u64 * MB));
    }
    let fit = p.peaks().fit().expect("a fit");
    assert!(
        fit.rows >= 3 * (fit.features.len() + 1) || fit.features.len() == 1,
        "{} features on {} rows: {fit:?}",
        fit.features.len(),
        fit.rows
    );
}

#[test]
fn a_line_that_falls_beyond_what_it_saw_does_not_predict_a_peak_of_nothing() {
    // Five tasks of 1.2-1.9 GB whose peaks happen to fall with their index: the line
    // through them reaches zero at index 10. Task 20 is not predicted below a quarter of
    // the least peak seen; a task the fit saw keeps its prediction.
    let mut p = Predictor::new(None);
    for (i, y) in [1900, 1750, 1600, 1450, 1200].into_iter().enumerate() {
        p.observe(&[i as f64], peak(y * MB));
    }
    assert!(p.peaks().fit().is_some(), "the index explains the peaks");
    let far = p.predict(&[20.0]).expect("a prediction").get();
    assert!(far >= 300 * MB, "task 20 predicted at {far} B");
    let seen = p.predict(&[1.0]).expect("a prediction").get();
    assert!(seen >= 1750 * MB, "task 1 predicted at {seen} B");
}

#[test]
fn kinds_are_told_apart_but_an_unseen_kind_is_not_read_as_one_left_out() {
    // `--model small|large|huge`, one 0/1 column each (tasks::features), and an index.
    // Six small tasks of ~300 MB and three large of ~2.5 GB finished; no huge one did.
    let mut p = Predictor::new(None);
    p.set_kinds(&[0..3]);
    for i in 0..9 {
        let (kind, y) = match i % 3 {
            2 => ([0.0, 1.0, 0.0], 2500 + 10 * i),
            _ => ([1.0, 0.0, 0.0], 300 + 5 * i),
        };
        p.observe(&[kind[0], kind[1], kind[2], i as f64], peak(y * MB));
    }
    let small = p.predict(&[1.0, 0.0, 0.0, 9.0]).unwrap().get();
    assert!(
        (300 * MB..600 * MB).contains(&small),
        "a small task predicted at {small} B, not from its kind"
    );
    // A huge task reads 0 in the small and large columns, as a large one does not and a
    // small one does not either: the fit would place it wherever the left-out kinds lie.
    let huge = p.predict(&[0.0, 0.0, 1.0, 9.0]).unwrap().get();
    let typical = p.typical().unwrap().get();
    assert!(
        huge >= typical,
        "a huge task predicted at {huge} B, below {typical} B"
    );
}

#[test]
fn a_parameters_kinds_are_fitted_together_not_one_against_the_rest() {
    // `--model small|medium|large --index N`, in the order a real `kinds` run finished
    // (bench/sweep_bench.py, seed 1): one medium task among seven. Taken one column at a
    // time, the fit chose "small or not" and predicted the medium kind at the large one's
    // peak, 2.9 GB, so two medium tasks never ran together where they fit.
    let mut p = Predictor::new(None);
    p.set_kinds(&[0..3]);
    let kind = |k: usize| [0.0, 1.0, 2.0].map(|c| f64::from(u8::from(c == k as f64)));
    let done = [
        (2, 1097),
        (0, 303),
        (1, 2651),
        (0, 216),
        (1, 2538),
        (1, 2408),
        (1, 2674),
    ];
    for (i, &(k, y)) in done.iter().enumerate() {
        let [a, b, c] = kind(k);
        p.observe(&[a, b, c, i as f64], peak(y * MB));
    }
    p.observe(&[1.0, 0.0, 0.0, 7.0], peak(316 * MB));
    let predict = |k: usize| {
        let [a, b, c] = kind(k);
        p.predict(&[a, b, c, 9.0]).unwrap().get() / MB
    };
    let (small, medium, large) = (predict(0), predict(2), predict(1));
    assert!(
        (1097..2000).contains(&medium),
        "a medium task predicted at {medium} MB after one of 1097 MB"
    );
    assert!((316..700).contains(&small), "a small task at {small} MB");
    assert!(large >= 2674, "a large task at {large} MB");
}

/// `--model small|large --rows N --index I`: 100 MB plus 0.5 MB a row for a small task,
/// 2.5 MB for a large one (the `kindsize` shape of bench/shapes.py).
fn kind_and_rows(large: bool, rows: f64, index: usize) -> Vec<f64> {
    vec![
        f64::from(u8::from(!large)),
        f64::from(u8::from(large)),
        rows,
        index as f64,
    ]
}

#[test]
fn a_kind_the_fit_left_out_as_outliers_is_predicted_from_its_own_tasks() {
    // Seed 2, in the order the simulated run finished them: nine small tasks, then two
    // large ones. Far off the small ones' line, both were left out as outliers, and the
    // fit on the rows alone predicted task 17, large, 2004 MiB, at 529 MiB (MiB: the
    // outliers are judged at the edge, and the run's own units decide it).
    let mut p = Predictor::new(None);
    p.set_kinds(&[0..2]);
    let done = [
        (1, false, 800., 486),
        (0, false, 1000., 596),
        (2, false, 600., 400),
        (5, false, 600., 389),
        (6, false, 800., 492),
        (3, false, 1000., 583),
        (4, false, 600., 405),
        (8, false, 1000., 609),
        (12, true, 1000., 2592),
        (9, false, 200., 201),
        (10, true, 200., 609),
    ];
    for (i, large, rows, y) in done {
        p.observe(&kind_and_rows(large, rows, i), peak(y << 20));
    }
    let large = p.predict(&kind_and_rows(true, 800.0, 17)).unwrap().get() >> 20;
    assert!(
        large >= 2004,
        "a large task of 2004 MiB predicted at {large} MiB"
    );
    let small = p.predict(&kind_and_rows(false, 200.0, 7)).unwrap().get() >> 20;
    assert!(
        small < 400,
        "a small task of 200 MiB predicted at {small} MiB"
    );
}

#[test]
fn a_kind_with_enough_tasks_is_predicted_by_its_own_model() {
    // Memory grows with the rows five times as fast for a large task: a line with a shift
    // per kind fits neither, and its spread made a small task of 200 rows 3.4 times too big.
    let mut p = Predictor::new(None);
    p.set_kinds(&[0..2]);
    for i in 0..16 {
        let (large, rows) = (i % 2 == 1, 200.0 * (1 + (i / 2) % 5) as f64);
        let per_row = if large { 2.5 } else { 0.5 };
        let jitter = 1.0 + 0.02 * ((i * 7) % 5) as f64;
        let y = ((100.0 + rows * per_row) * jitter) as u64;
        p.observe(&kind_and_rows(large, rows, i), peak(y * MB));
    }
    for (large, rows, truth) in [(false, 200.0, 200.0), (true, 1000.0, 2600.0)] {
        let got = p.predict(&kind_and_rows(large, rows, 16)).unwrap().get() as f64 / MB as f64;
        assert!(
            (truth..=1.3 * truth).contains(&got),
            "large {large}, {rows} rows: {got:.0} MB predicted, {truth:.0} MB true"
        );
    }
}

#[test]
fn many_outliers_are_all_left_out_past_the_first_ones() {
    // 2,000 tasks on a line, 50 of them wild (a retry storm): more than are left out one
    // at a time, fewer than a fifth. The rest go at once, and the line stands.
    let mut m = Model::new(Side::Upper);
    for i in 0..2000 {
        let x = (i % 50) as f64;
        let y = match i % 40 {
            3 => 5000.0,
            _ => 100.0 * x + 50.0 + (i % 3) as f64,
        };
        m.observe(&[x], y);
    }
    let fit = m.fit().expect("a fit");
    // Every wild one the last refit saw (refits wait for 5% more), and nothing else.
    assert!(
        fit.left_out.len() > ONE_BY_ONE,
        "left out: {:?}",
        fit.left_out
    );
    assert!(
        fit.left_out.iter().all(|i| i % 40 == 3),
        "{:?}",
        fit.left_out
    );
    let y = m.predict(&[10.0]).unwrap();
    assert!((1050.0..1100.0).contains(&y), "predicted {y} for 1051");
}

/// Seed 4 of the benchmark's `kindsize` mix (`bench/sweep_bench.py`): its tasks as (index,
/// large, rows, peak in MiB).
const KINDSIZE_4: [(usize, bool, f64, u64); 16] = [
    (0, true, 400., 1102),
    (1, false, 1000., 590),
    (2, true, 800., 2045),
    (3, true, 1000., 2640),
    (4, false, 800., 508),
    (5, false, 1000., 610),
    (6, true, 200., 593),
    (7, false, 800., 485),
    (8, true, 200., 581),
    (9, false, 1000., 571),
    (10, true, 800., 2109),
    (11, false, 600., 385),
    (12, true, 600., 1567),
    (13, true, 800., 1995),
    (14, true, 600., 1590),
    (15, false, 200., 196),
];

/// A predictor that saw these tasks of [`KINDSIZE_4`], in this order.
fn kindsize_4_after(done: &[usize]) -> Predictor {
    let mut p = Predictor::new(None);
    p.set_kinds(&[0..2]);
    for &i in done {
        let (_, large, rows, y) = KINDSIZE_4[i];
        p.observe(&kind_and_rows(large, rows, i), peak(y << 20));
    }
    p
}

/// Asserts that, once the tasks `done` finished in that order, each of `tasks` is predicted
/// at its true peak or above, and at most `most` times it.
fn predicted_near_truth(done: &[usize], tasks: &[usize], most: f64) {
    let p = kindsize_4_after(done);
    for &i in tasks {
        let (_, large, rows, truth) = KINDSIZE_4[i];
        let got = p.predict(&kind_and_rows(large, rows, i)).unwrap().get() >> 20;
        assert!(
            got >= truth && got as f64 <= truth as f64 * most,
            "task {i} (large {large}, {rows} rows): {got} MiB predicted, {truth} MiB true"
        );
    }
}

#[test]
fn a_slope_per_kind_is_learned_before_each_kind_has_its_own_model() {
    // The order the simulated run finished them in. With four tasks of each kind, neither
    // had its own model yet; a shift per kind fitted neither, and its spread predicted
    // every small task at 1.7 GB (true: 0.4-0.5), so they ran one at a time.
    predicted_near_truth(&[0, 1, 2, 3, 15, 9, 5], &[4, 7, 11, 12, 14], 1.4);
}

#[test]
fn two_kinds_get_their_slopes_after_five_tasks() {
    // A real run (05:35) finished 1,0,2,3,15 first: three large tasks, two small. A shift
    // per kind took its spread from the large tasks' sizes and predicted every small task
    // at 2192 MiB (true: 196-610); the next one ran alone for 5 s.
    predicted_near_truth(&[1, 0, 2, 3, 15], &[4, 5, 7, 9, 11], 1.5);
}

#[test]
fn a_rival_slope_per_kind_speaks_only_near_the_values_of_its_kind() {
    // After six tasks the index, by chance, fitted a slope per kind nearly as well as the
    // rows did. The large tasks seen had indexes 0-3: extrapolated to index 10, that rival
    // predicted a large task of 2109 MiB at 7167 MiB, and it ran alone.
    predicted_near_truth(&[0, 1, 2, 3, 15, 9], &[10], 1.3);
}

#[test]
fn a_rival_is_near_only_the_values_it_was_fitted_on_not_those_it_left_out() {
    // The finish order of a real run (seed 4, 2026-11-28 05:27). After six tasks a slope
    // per kind of the index fitted by chance once it left out the first large task (index
    // 0) as an outlier: the two large tasks it kept, indexes 2 and 3, made its line. Its
    // range still counted index 0, so index 6 was "near", and a large task of 593 MiB was
    // predicted at 5463 MiB. The best fit kept index 0, so that rival is now no rival at
    // all; `a_rival_is_not_near_a_value_only_its_left_out_point_had` guards the range.
    predicted_near_truth(&[0, 1, 2, 3, 9, 5], &[6], 1.5);
}

#[test]
fn a_rival_that_left_out_a_point_the_best_fit_kept_is_no_rival() {
    // The finish order of another real run of seed 4 (05:35). After six tasks a slope per
    // kind of the index matched the rows' fit only by leaving out a small task the rows'
    // fit explained. Its line through the large tasks at indexes 0, 2 and 3 predicted a
    // large task of 593 MiB at index 6 at 4.7 GiB.
    predicted_near_truth(&[1, 0, 2, 3, 15, 11], &[6], 1.5);
}

#[test]
fn a_slope_per_kind_is_not_chosen_where_the_kinds_do_not_matter() {
    // Eight kinds that do not matter; the peak is 2 MB a row, ±20%. The slopes of the rows
    // per kind sum to the rows: they always explain at least as much, and were chosen over
    // the rows alone 163 times in 200 such sweeps, overpredicting by up to 2.5 times.
    let mut p = Predictor::new(None);
    p.set_kinds(&[0..8]);
    let mut seed = 7u64;
    let mut noise = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        0.8 + 0.4 * ((seed >> 33) as f64 / (1u64 << 31) as f64)
    };
    let features = |kind: usize, rows: f64| {
        let mut f: Vec<f64> = (0..8).map(|k| f64::from(u8::from(k == kind))).collect();
        f.push(rows);
        f
    };
    for i in 0..40 {
        let rows = 100.0 * (1 + (i * 7) % 10) as f64;
        p.observe(
            &features(i % 8, rows),
            peak((2.0 * rows * noise()) as u64 * MB),
        );
    }
    let fit = p.peaks().fit().expect("the rows explain the peaks");
    assert_eq!(fit.features, [8], "{fit:?}");
}

#[test]
fn a_kind_whose_tasks_lack_a_size_leaves_the_other_kinds_their_slopes() {
    // `--model a|b|c --rows N`, where the tasks of kind c load no rows and take no
    // `--rows`: its slope column was all zeros, the slopes of a and b could not be fitted,
    // and the fit stayed on the kinds alone.
    let mut p = Predictor::new(None);
    p.set_kinds(&[0..3]);
    let features = |kind: usize, rows: f64| {
        let mut f: Vec<f64> = (0..3).map(|k| f64::from(u8::from(k == kind))).collect();
        f.push(if kind == 2 { f64::NAN } else { rows });
        f
    };
    let truth = |kind: usize, rows: f64| match kind {
        0 => 100.0 + 0.5 * rows,
        1 => 100.0 + 2.5 * rows,
        _ => 100.0,
    };
    for i in 0..12 {
        let (kind, rows) = (i % 3, 200.0 * (1 + i % 5) as f64);
        p.observe(&features(kind, rows), peak(truth(kind, rows) as u64 * MB));
    }
    for (kind, rows) in [(0, 1000.0), (1, 200.0)] {
        let got = p.predict(&features(kind, rows)).unwrap().get() as f64 / MB as f64;
        let want = truth(kind, rows);
        assert!(
            (want..=1.2 * want).contains(&got),
            "kind {kind}, {rows} rows: {got:.0} MB predicted, {want:.0} MB true"
        );
    }
}

#[test]
fn a_first_task_short_of_the_kinds_columns_does_not_shift_the_slopes_onto_them() {
    // Slope columns follow every kind's column, whatever width the first task gave.
    let mut m = Model::new(Side::Upper);
    m.set_kinds(&[1..3]);
    m.observe(&[5.0, 1.0], 10.0);
    assert!(m.width >= 3, "slope columns start at {}", m.width);
}

#[test]
fn a_line_through_two_values_of_a_feature_predicts_nothing_below_what_was_seen() {
    // Seed 1 of the `kindmix` shape (`bench/shapes.py`): `--arch a|b|c --rows N --epochs E
    // --index I`, whose epochs set only how long a task holds its peak. After three tasks,
    // of 2, 3 and 3 epochs, a line through the epochs fell through zero at 1 epoch, and a
    // 2.7 GiB task of an arch nothing had finished was predicted at 40 MB, a quarter of the
    // least peak seen; it was paused and braked.
    let features = |arch: usize, rows: f64, epochs: f64, index: usize| {
        let mut f: Vec<f64> = (0..3).map(|k| f64::from(u8::from(k == arch))).collect();
        f.extend([rows, epochs, index as f64]);
        f
    };
    let mut p = Predictor::new(None);
    p.set_kinds(&[0..3]);
    p.observe(&features(0, 250.0, 2.0, 0), peak(154 << 20));
    p.observe(&features(1, 250.0, 3.0, 2), peak(392 << 20));
    p.observe(&features(0, 1000.0, 3.0, 1), peak(362 << 20));
    for (arch, rows, index) in [(2, 1250.0, 5), (1, 750.0, 17)] {
        let got = p.predict(&features(arch, rows, 1.0, index)).unwrap().get() >> 20;
        assert!(got >= 154, "arch {arch}, 1 epoch: {got} MiB predicted");
    }
}

#[test]
fn a_rival_is_not_near_a_value_only_its_left_out_point_had() {
    // Two features fit seven tasks alike; an eighth, far off both lines (a retry storm),
    // is left out by both, so the second stays a rival. Its value of the rival's feature,
    // 0, lay below the kept ones (1.1-7.0): counted in the rival's range, it made 13.6
    // "near", and the rival predicted 1432 where the kept points say about 400. (The
    // replay of seed 4 that first showed this is `a_rival_is_near_only_the_values_…`;
    // there the best fit kept the point, which now also drops the rival.)
    let mut m = Model::new(Side::Upper);
    let jitter = [0.1, -0.1, 0.05, -0.05, 0.08, -0.08, 0.0];
    for (i, j) in jitter.iter().enumerate() {
        let x = (i + 1) as f64;
        m.observe(&[x, x + j], 100.0 * x + 30.0 * j);
    }
    m.observe(&[4.0, 0.0], 5000.0);
    assert_eq!(m.fit().expect("a fit").left_out, [7]);
    assert_eq!(m.rivals.len(), 1, "{:?}", m.rivals);
    assert_eq!(m.rivals[0].left_out, [7]);
    let got = m.predict(&[4.0, 13.6]).unwrap();
    assert!(
        got < 600.0,
        "{got:.0} predicted where the best fit says about 400"
    );
}
