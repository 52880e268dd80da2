//! Scenario tests of how the policy stops tasks and judges their endings: PSI, timeouts,
//! caps, Ctrl-C, retries, kernel OOM kills and SIGBUS, the brake under memory taken by
//! others. Driven in simulated time by `ramguard_core::policy::sim`, with the helpers
//! of `common/`; every run also checks the harness's invariants.

mod common;

use common::*;

use ramguard_core::policy::sim::{End, Script, Sim, SimTask};
use ramguard_core::policy::{
    Action, BrakeWhy, Config, ExitClass, Note, PauseWhy, Reason, StopReason, TaskId, TaskState,
};
use std::time::Duration;

#[test]
fn psi_pauses_admission_once_and_resumes() {
    let cfg = Config {
        max_jobs: 1,
        estimate: Some(gib(0.5)),
        ..config()
    };
    let mut h = host();
    h.psi = vec![(secs(0.0), 0.0), (secs(1.0), 60.0), (secs(6.0), 5.0)];
    let (sim, report) = run(cfg, h, (0..4).map(|_| ramp(0.2, 0.5, 1.0)).collect());
    assert_clean(&report);
    all_done(&sim, 4);
    let paused: Vec<_> = sim
        .log()
        .iter()
        .filter(|(_, a)| matches!(a, Action::Note(Note::Paused { .. })))
        .collect();
    assert_eq!(paused.len(), 1, "{paused:?}");
    let resumed: Vec<Duration> = sim
        .log()
        .iter()
        .filter(|(_, a)| matches!(a, Action::Note(Note::Resumed)))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(resumed, vec![secs(6.0)]);
    let s = starts(&sim);
    assert!(
        s.iter().all(|(t, _, _)| *t < secs(1.0) || *t >= secs(6.0)),
        "{s:?}"
    );
    if let Action::Note(Note::Paused { why }) = &paused[0].1 {
        assert!(
            matches!(why, PauseWhy::Pressure { avg10, .. } if (avg10 - 60.0).abs() < 0.05),
            "{why:?}"
        );
    }
}

#[test]
fn timeout_terms_then_kills_after_grace() {
    let cfg = Config {
        timeout: Some(secs(3.0)),
        grace: secs(2.0),
        ..config()
    };
    let stubborn = SimTask::new(Script::ramp(gib(0.1), secs(1.0), secs(100.0), 0).ignoring_term());
    let (sim, report) = run(cfg, host(), vec![stubborn]);
    assert_clean(&report);
    let term = sim
        .log()
        .iter()
        .find(|(_, a)| {
            matches!(
                a,
                Action::Term {
                    reason: StopReason::Timeout,
                    ..
                }
            )
        })
        .unwrap()
        .0;
    let kill = sim
        .log()
        .iter()
        .find(|(_, a)| {
            matches!(
                a,
                Action::Kill {
                    reason: StopReason::Timeout,
                    ..
                }
            )
        })
        .unwrap()
        .0;
    assert_eq!(term, secs(3.0));
    assert_eq!(kill, secs(5.0));
    let v = verdicts(&sim, 0);
    assert_eq!(
        v,
        vec![(
            ExitClass::TimedOut,
            false,
            Reason::TimedOut { limit: secs(3.0) }
        )]
    );
}

#[test]
fn over_cap_task_fails_and_others_finish() {
    let cfg = Config {
        task_cap: Some(gib(1.0)),
        estimate: Some(gib(0.5)),
        ..config()
    };
    let (sim, report) = run(cfg, host(), vec![ramp(2.0, 2.0, 1.0), ramp(0.5, 1.0, 1.0)]);
    assert_clean(&report);
    let v = verdicts(&sim, 0);
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].0, v[0].1), (ExitClass::OverCap, false));
    assert!(
        matches!(&v[0].2, Reason::OverCap { cap, .. } if *cap == gib(1.0)),
        "{:?}",
        v[0].2
    );
    assert!(matches!(sim.policy().state(1), TaskState::Done { .. }));
}

#[test]
fn interrupt_terms_running_tasks_and_admits_nothing_more() {
    let cfg = Config {
        max_jobs: 3,
        estimate: Some(gib(0.5)),
        ..config()
    };
    let mut sim = Sim::new(cfg, host(), (0..6).map(|_| ramp(0.4, 1.0, 10.0)).collect());
    sim.interrupt_at(secs(2.0));
    let report = sim.drive();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(sim.policy().is_finished());
    assert!(starts(&sim).iter().all(|s| s.0 < secs(2.0)));
    for id in 0..3 {
        assert_eq!(
            verdicts(&sim, id),
            vec![(
                ExitClass::Interrupted,
                false,
                Reason::Interrupted { during: None }
            )]
        );
    }
    for id in 3..6 {
        assert!(matches!(sim.policy().state(id), TaskState::Queued { .. }));
    }
}

#[test]
fn ordinary_failures_are_retried_then_fail() {
    let cfg = Config {
        retries: 2,
        estimate: Some(gib(0.2)),
        ..config()
    };
    let flaky = SimTask {
        spec: Default::default(),
        scripts: vec![
            Script::ramp(gib(0.1), secs(0.5), secs(0.5), 3),
            Script::ramp(gib(0.1), secs(0.5), secs(0.5), 0).ending(End::Signal(11)),
            Script::ramp(gib(0.1), secs(0.5), secs(0.5), 0),
        ],
    };
    let broken = SimTask::new(Script::ramp(gib(0.1), secs(0.5), secs(0.5), 1));
    let (sim, report) = run(cfg, host(), vec![flaky, broken]);
    assert_clean(&report);
    let v: Vec<_> = verdicts(&sim, 0)
        .into_iter()
        .map(|v| (v.0, v.1, v.2))
        .collect();
    assert_eq!(
        v,
        vec![
            (ExitClass::Failed, true, Reason::ExitCode(3)),
            (ExitClass::Signaled, true, Reason::Signal(11)),
            (ExitClass::Done, false, Reason::Done),
        ]
    );
    let b = verdicts(&sim, 1);
    assert_eq!(b.len(), 3, "1 attempt + 2 retries");
    assert_eq!((b[2].0, b[2].1), (ExitClass::Failed, false));
}

#[test]
fn oom_killed_exit_is_requeued_with_a_lower_bound_without_spending_retries() {
    let cfg = Config {
        retries: 0,
        estimate: Some(gib(0.2)),
        ..config()
    };
    let task = SimTask {
        spec: Default::default(),
        scripts: vec![
            Script::ramp(gib(1.0), secs(1.0), secs(0.5), 0).ending(End::OomKilled),
            Script::ramp(gib(1.0), secs(1.0), secs(0.5), 0),
        ],
    };
    let (sim, report) = run(cfg, host(), vec![task]);
    assert_clean(&report);
    let v = verdicts(&sim, 0);
    assert_eq!((v[0].0, v[0].1), (ExitClass::OomKilled, true));
    assert!(
        matches!(&v[0].2, Reason::OomKilled { peak } if *peak >= gib(0.95) && *peak < gib(1.05)),
        "{:?}",
        v[0].2
    );
    assert_eq!(v[1].0, ExitClass::Done);
    let s = starts(&sim);
    assert!(s[1].2 >= gib(1.0), "second attempt predicted {}", s[1].2);
}

#[test]
fn sigbus_with_full_shm_fails_naming_dev_shm() {
    let t = SimTask::new(Script::ramp(gib(0.1), secs(0.5), secs(0.5), 0).ending(End::ShmFull));
    let (sim, report) = run(config(), host(), vec![t]);
    assert_clean(&report);
    let v = verdicts(&sim, 0);
    assert_eq!((v[0].0, v[0].1), (ExitClass::ShmBus, false));
    assert_eq!(v[0].2, Reason::ShmFull);
}

#[test]
fn oom_score_adj_rises_with_start_order() {
    let cfg = Config {
        estimate: Some(gib(0.2)),
        max_jobs: 4,
        ..config()
    };
    let (sim, _) = run(cfg, host(), (0..4).map(|_| ramp(0.1, 1.0, 1.0)).collect());
    let adj: Vec<i32> = sim
        .log()
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Start { oom_score_adj, .. } => Some(*oom_score_adj),
            _ => None,
        })
        .collect();
    assert_eq!(adj, vec![100, 150, 200, 250]);
}

#[test]
fn big_task_at_the_head_is_not_starved_by_small_ones() {
    // -j 2, 4 GiB budget: a 3 GiB task waits behind a running 1.5 GiB one; small tasks
    // may overtake it only twice, then admission holds until the big one fits.
    let cfg = Config {
        budget: gib(4.0),
        max_jobs: 2,
        estimate: Some(gib(0.5)),
        ..config()
    };
    let mut tasks = vec![ramp(1.5, 0.5, 3.0)];
    let mut big = ramp(3.0, 1.0, 1.0);
    big.spec.lower_bound = Some(gib(3.0));
    tasks.push(big);
    tasks.extend((0..10).map(|_| ramp(0.4, 0.5, 1.0)));
    let (sim, report) = run(cfg, host(), tasks);
    assert_clean(&report);
    all_done(&sim, 12);
    let order: Vec<TaskId> = starts(&sim).into_iter().map(|s| s.1).collect();
    let big_at = order.iter().position(|&t| t == 1).unwrap();
    assert!(
        big_at <= 4,
        "big task started as number {big_at}: {order:?}"
    );
}

#[test]
fn every_task_gets_exactly_one_verdict_in_a_mixed_sweep() {
    let cfg = Config {
        retries: 1,
        estimate: Some(gib(0.6)),
        task_cap: Some(gib(3.0)),
        timeout: Some(secs(30.0)),
        ..config()
    };
    let mut tasks: Vec<SimTask> = (0..10)
        .map(|i| ramp(0.3 + 0.2 * i as f64, 2.0, 3.0))
        .collect();
    tasks.push(SimTask::new(Script::ramp(
        gib(0.2),
        secs(1.0),
        secs(1.0),
        2,
    )));
    tasks.push(ramp(3.5, 3.0, 1.0));
    tasks.push(SimTask::new(
        Script::ramp(gib(0.1), secs(1.0), secs(60.0), 0).ignoring_term(),
    ));
    let (sim, report) = run(cfg, host(), tasks);
    assert_clean(&report);
    assert!(report.finals.iter().all(|&n| n == 1), "{:?}", report.finals);
    assert!(sim.policy().is_finished());
}

#[test]
fn when_growth_outruns_the_brake_the_kernel_kills_the_newest_and_it_is_requeued() {
    // Eight tasks estimated at 100 MiB grow to 3 GiB in 40 ms: faster than any sampling
    // can pause or brake (at half a second, pausing now catches them: see the next test).
    // The simulated kernel kills by oom_score_adj, i.e. the newest, which is the same
    // choice the brake makes; those attempts are requeued, not failed.
    let cfg = Config {
        budget: gib(8.0),
        estimate: Some(gib(0.1)),
        ..config()
    };
    let (sim, report) = run(cfg, host(), (0..8).map(|_| ramp(3.0, 0.04, 1.0)).collect());
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.kernel_oom_kills > 0);
    all_done(&sim, 8);
    let killed: Vec<(TaskId, bool)> = sim
        .log()
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Finished {
                task,
                class: ExitClass::OomKilled,
                requeued,
                ..
            } => Some((*task, *requeued)),
            _ => None,
        })
        .collect();
    assert!(!killed.is_empty(), "an OOM-killed verdict");
    // The kernel takes the newest first: the oldest task is never its victim, and every
    // victim is requeued.
    assert!(
        killed.iter().all(|&(t, requeued)| t > 0 && requeued),
        "{killed:?}"
    );
    assert!(killed.iter().any(|&(t, _)| t == 7), "{killed:?}");
}

#[test]
fn growth_the_brake_alone_could_not_outrun_is_paused_before_the_kernel_strikes() {
    // The same eight tasks reaching 3 GiB in half a second: before the suspend lever the
    // kernel OOM-killed six of them; now the newest are paused within a sample and braked
    // young, and the kernel kills nothing.
    let cfg = Config {
        budget: gib(8.0),
        estimate: Some(gib(0.1)),
        ..config()
    };
    let (sim, report) = run(cfg, host(), (0..8).map(|_| ramp(3.0, 0.5, 1.0)).collect());
    assert_clean(&report);
    all_done(&sim, 8);
    assert!(report.pauses > 0);
    assert!(report.braked_seconds < 2.0, "{}", report.braked_seconds);
}

#[test]
fn memory_taken_by_something_else_brakes_newest_first_and_work_resumes_later() {
    // Three 1 GiB tasks run; another program takes 4.8 GiB at 3 s, 5.6 GiB at 5 s, and
    // quits at 20 s. Each step leaves less than the 512 MiB brake level, so the brake stops
    // the newest task each time, one victim per step.
    let cfg = Config {
        estimate: Some(gib(1.1)),
        ..config()
    };
    let mut h = host();
    h.external = vec![
        (secs(0.0), gib(0.0)),
        (secs(3.0), gib(4.8)),
        (secs(5.0), gib(5.6)),
        (secs(20.0), gib(0.0)),
    ];
    let (sim, report) = run(cfg, h, (0..3).map(|_| ramp(1.0, 1.0, 10.0)).collect());
    assert_clean(&report);
    all_done(&sim, 3);
    let victims: Vec<TaskId> = sim
        .log()
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Note(Note::Brake { task, why }) => {
                assert!(
                    matches!(why, BrakeWhy::LowMemory { level, .. } if *level == gib(0.5)),
                    "{why:?}"
                );
                Some(*task)
            }
            _ => None,
        })
        .collect();
    assert_eq!(victims, vec![2, 1]);
    // Victims restart only when room appears: the first when task 0 finishes at 11 s
    // (2.4 GiB free beside 5.6 GiB), the second once the other program quits at 20 s.
    let restarts: Vec<Duration> = starts(&sim).iter().skip(3).map(|s| s.0).collect();
    assert_eq!(restarts, vec![secs(11.0), secs(20.0)]);
    assert_eq!(report.brakes, 2);
}
