//! Random sweeps through the simulated host: whatever the traces, every task gets exactly
//! one final verdict, the policy never starts a task that does not fit, never kills before
//! TERM, never stalls, and — as long as tasks grow no faster than the brake can react to —
//! the simulated kernel never has to OOM-kill anything.
//!
//! The growth bound is 300 MiB/s per task (up to 9 tasks: ~135 MiB per 50 ms sample against
//! a 512 MiB brake level); 20 000 cases are clean. At 1 GiB/s per task proptest finds runs
//! where the kernel strikes before the brake can, which no sampling policy can prevent; the
//! scenario test `when_growth_outruns_the_brake_…` checks that even then the kernel's victim
//! is the newest task and it is requeued.

use std::time::Duration;

use proptest::prelude::*;
use ramguard_core::policy::sim::{End, Host, Script, Sim, SimTask};
use ramguard_core::policy::{Config, TaskState};
use ramguard_core::Bytes;

const MIB: u64 = 1 << 20;

fn mib(x: u64) -> Bytes {
    Bytes(x * MIB)
}

/// One attempt: a peak, a ramp no faster than `max_rate_mib` MiB/s, a hold, an end.
fn script(max_rate_mib: u64) -> impl Strategy<Value = Script> {
    (
        50u64..3000,
        0u64..10_000,
        0u64..8_000,
        prop_oneof![
            8 => Just(End::Code(0)),
            1 => Just(End::Code(1)),
            1 => Just(End::Signal(11)),
            1 => Just(End::OomKilled),
            1 => Just(End::ShmFull),
        ],
        prop_oneof![4 => (0u64..500).prop_map(Some), 1 => Just(None)],
    )
        .prop_map(move |(peak, ramp_ms, hold_ms, end, term)| {
            // Ramp at least as long as the rate limit needs.
            let min_ramp = peak * 1000 / max_rate_mib;
            let ramp = Duration::from_millis(ramp_ms.max(min_ramp));
            let mut s = Script::ramp(mib(peak), ramp, Duration::from_millis(hold_ms), 0);
            s.end = end;
            s.term_delay = term.map(Duration::from_millis);
            s
        })
}

fn task(max_rate_mib: u64) -> impl Strategy<Value = SimTask> {
    (
        prop::collection::vec(script(max_rate_mib), 1..3),
        prop::option::of(0.0f64..20.0),
    )
        .prop_map(|(scripts, feature)| {
            let mut t = SimTask {
                spec: Default::default(),
                scripts,
            };
            t.spec.features = vec![feature.unwrap_or(f64::NAN)];
            t
        })
}

fn config() -> impl Strategy<Value = Config> {
    (
        1usize..9,
        prop::option::of(50u64..2000),
        0u32..3,
        2048u64..8192,
        prop::option::of(500u64..4000),
        prop::option::of(1u64..30),
        0u32..4,
        any::<bool>(),
    )
        .prop_map(
            |(jobs, estimate, retries, budget, cap, timeout, max_brakes, pause)| Config {
                budget: mib(budget),
                reserve: mib(256),
                brake_level: mib(512),
                hard_level: mib(128),
                max_jobs: jobs,
                estimate: estimate.map(mib),
                task_cap: cap.map(mib),
                timeout: timeout.map(Duration::from_secs),
                grace: Duration::from_secs(3),
                retries,
                psi_full_pause: 40.0,
                max_brakes,
                pause,
            },
        )
}

/// 32 cases keep the suite fast; `PROPTEST_CASES=2000` searches deeper.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn invariants_hold_for_random_sweeps(
        cfg in config(),
        tasks in prop::collection::vec(task(300), 1..10),
    ) {
        let n = tasks.len();
        let mut sim = Sim::new(cfg, Host::new(mib(8192)), tasks);
        let report = sim.drive();
        prop_assert!(report.violations.is_empty(), "{:#?}", report.violations);
        prop_assert_eq!(report.kernel_oom_kills, 0);
        prop_assert!(sim.policy().is_finished());
        for id in 0..n {
            let final_state = matches!(
                sim.policy().state(id),
                TaskState::Done { .. } | TaskState::Failed { .. }
            );
            prop_assert!(final_state);
        }
    }

    #[test]
    fn interrupt_always_ends_with_nothing_running(
        cfg in config(),
        tasks in prop::collection::vec(task(300), 1..8),
        at_ms in 0u64..20_000,
    ) {
        let mut sim = Sim::new(cfg, Host::new(mib(8192)), tasks);
        sim.interrupt_at(Duration::from_millis(at_ms));
        let report = sim.drive();
        prop_assert!(report.violations.is_empty(), "{:#?}", report.violations);
        prop_assert!(sim.policy().is_finished());
        prop_assert!(report.finals.iter().all(|&n| n <= 1));
    }
}
