//! Random memory traces against the leak detector: a ramp that levels off (with noise) is
//! never a leak; a ramp followed by a steady climb always is, with about its slope.

use proptest::prelude::*;
use ramguard_core::findings::detect_leak;

const MIB: f64 = 1024.0 * 1024.0;

/// Samples every `step` ms of a ramp to `peak` over `ramp_ms`, then `leak` bytes/s, with a
/// deterministic relative noise of up to `noise`.
fn trace(
    peak: f64,
    ramp_ms: u64,
    leak: f64,
    until_ms: u64,
    step: u64,
    noise: f64,
    seed: u64,
) -> Vec<(u64, u64)> {
    let mut x = seed | 1;
    (1..=until_ms / step)
        .map(|i| {
            let t = i * step;
            let base = if t < ramp_ms {
                peak * t as f64 / ramp_ms as f64
            } else {
                peak + leak * (t - ramp_ms) as f64 / 1000.0
            };
            // xorshift: reproducible noise in [-1, 1).
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = (x % 2000) as f64 / 1000.0 - 1.0;
            (t, (base * (1.0 + noise * r)).max(0.0) as u64)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_ramp_that_levels_off_is_never_a_leak(
        peak_mib in 16.0f64..4096.0,
        ramp_ms in 100u64..8_000,
        hold_ms in 0u64..60_000,
        step in prop::sample::select(vec![20u64, 100, 250, 500]),
        noise in 0.0f64..0.03,
        seed in any::<u64>(),
    ) {
        let pts = trace(peak_mib * MIB, ramp_ms, 0.0, ramp_ms + hold_ms, step, noise, seed);
        prop_assert_eq!(detect_leak(&pts), None);
    }

    #[test]
    fn a_steady_climb_after_a_ramp_is_always_a_leak(
        peak_mib in 32.0f64..2048.0,
        ramp_ms in 100u64..2_000,
        climb_s in 4u64..60,
        step in prop::sample::select(vec![20u64, 100, 250, 500]),
        rate_share in 0.02f64..0.3,
        noise in 0.0f64..0.005,
        seed in any::<u64>(),
    ) {
        // Climbing at a share of the ramp's own rate, by at least 20% of the peak overall.
        let ramp_rate = peak_mib * MIB / (ramp_ms as f64 / 1000.0);
        let leak = (ramp_rate * rate_share).max(0.2 * peak_mib * MIB / climb_s as f64).max(16.0 * MIB);
        prop_assume!(leak <= 0.45 * ramp_rate);
        // The ramp must be seen: with no sample inside it (32 MiB in 100 ms sampled every
        // 500 ms, then 94.5 MiB/s), a small ramp and a steep climb are one straight line
        // from zero, which nothing can tell from a slow ramp.
        prop_assume!(step < ramp_ms);
        let pts = trace(peak_mib * MIB, ramp_ms, leak, ramp_ms + climb_s * 1000, step, noise, seed);
        let found = detect_leak(&pts);
        prop_assert!(found.is_some(), "missed a climb of {:.1} MiB/s", leak / MIB);
        let got = found.unwrap().bytes_per_sec;
        prop_assert!((got - leak).abs() / leak < 0.1, "slope {:.1} vs {:.1} MiB/s", got / MIB, leak / MIB);
    }
}
