//! Scenario tests of the admission/brake policy, driven in simulated time by
//! `ramguard_core::policy::sim`. Each asserts what a user would notice: what ran together,
//! what was stopped and why, what failed with which reason. Every run also checks the
//! harness's invariants (start only when it fits, one final verdict per task, no simulated
//! kernel OOM kill).

mod common;

use common::*;

use ramguard_core::policy::sim::{Host, Report, Script, Sim, SimTask};
use ramguard_core::policy::{
    Action, Config, ExitClass, Note, Reason, StopReason, TaskId, TaskState,
};
use ramguard_core::Bytes;
use std::time::Duration;

#[test]
fn tasks_that_fit_run_in_parallel_up_to_jobs() {
    let cfg = Config {
        max_jobs: 3,
        estimate: Some(gib(0.6)),
        ..config()
    };
    let (sim, report) = run(cfg, host(), (0..6).map(|_| ramp(0.5, 1.0, 2.0)).collect());
    assert_clean(&report);
    all_done(&sim, 6);
    assert_eq!(report.max_running, 3);
    assert_eq!(report.brakes, 0);
    // Two waves of three tasks of 3 s each.
    assert!(report.makespan < secs(6.5), "{:?}", report.makespan);
    // The first three start together at once.
    let s = starts(&sim);
    assert!(s[..3].iter().all(|(t, _, _)| *t == Duration::ZERO));
}

#[test]
fn reservations_stop_ramping_tasks_from_overcommitting() {
    // Each task starts near zero and grows to 1.8 GiB over 10 s. A free-memory check at
    // start time would admit all 8 at t=0 (8 GiB free) and end at 14 GiB; reserving the
    // predicted growth admits 3 (3 × 2 GiB = 6 GiB budget).
    let cfg = Config {
        estimate: Some(gib(2.0)),
        ..config()
    };
    let (sim, report) = run(cfg, host(), (0..8).map(|_| ramp(1.8, 10.0, 1.0)).collect());
    assert_clean(&report);
    all_done(&sim, 8);
    assert_eq!(report.brakes, 0);
    // Later tasks start only as earlier ones finish, not while they are still small.
    let s = starts(&sim);
    assert!(s[..3].iter().all(|(t, _, _)| *t == Duration::ZERO), "{s:?}");
    assert!(s[3].0 >= secs(11.0), "{:?}", s[3]);
    // Once three have finished, the model knows a task runs about 1.5 s after its peak:
    // a fourth may start, near zero, beside three that hold their peaks and are about to
    // end (its ramp takes 10 s), but never a fourth beside three that still grow.
    assert!(report.max_running <= 4, "{}", report.max_running);
    assert!(s[6].0 >= secs(21.0), "{s:?}");
}

#[test]
fn leaky_task_is_paused_until_the_others_finish_then_completes_without_a_brake() {
    // Until the suspend lever, this task was braked at 4.6 GiB and rerun from the start
    // after the others (makespan 32.0 s, 9.2 task-s thrown away); now it waits, paused,
    // holding what it has, and goes on when they end (24.2 s, nothing thrown away).
    let cfg = Config {
        estimate: Some(gib(0.5)),
        ..config()
    };
    let mut tasks: Vec<SimTask> = (0..3).map(|_| ramp(0.5, 1.0, 20.0)).collect();
    tasks.push(ramp(5.0, 10.0, 1.0)); // needs 5 GiB, estimated at 0.5 GiB
    let (sim, report) = run(cfg, host(), tasks);
    assert_clean(&report);
    all_done(&sim, 4);
    assert_eq!(verdicts(&sim, 3), [(ExitClass::Done, false, Reason::Done)]);
    assert_eq!(report.brakes, 0);
    let (paused, resumed) = pauses_of(&sim, 3);
    assert_eq!(paused.len(), 1, "{paused:?}");
    // Resumed only once the others ended (t = 21 s) made room.
    assert!(resumed[0] >= secs(21.0), "{resumed:?}");
    assert!(report.makespan < secs(25.0), "{:?}", report.makespan);
}

#[test]
fn brake_stops_one_victim_at_a_time_newest_first() {
    // Four tasks estimated small all grow to 3 GiB at once: 12 GiB on an 8 GiB host.
    let cfg = Config {
        estimate: Some(gib(0.5)),
        budget: gib(7.5),
        ..config()
    };
    let (sim, report) = run(cfg, host(), (0..4).map(|_| ramp(3.0, 8.0, 2.0)).collect());
    assert_clean(&report);
    all_done(&sim, 4);
    // Between a brake's TERM and its victim's verdict no second task is braked.
    let mut pending: Option<TaskId> = None;
    let mut victims = Vec::new();
    for (_, a) in sim.log() {
        match a {
            Action::Term {
                task,
                reason: StopReason::Brake,
            } => {
                assert!(pending.is_none(), "second brake while {pending:?} stops");
                pending = Some(*task);
                victims.push(*task);
            }
            Action::Finished { task, .. } if pending == Some(*task) => pending = None,
            _ => {}
        }
    }
    // The newest (last started) task is the first victim, and it was paused first: the
    // cheaper lever comes before the brake (before suspend, tasks 3 then 2 were braked,
    // 11.9 task-s thrown away; now only 3, 6.9 task-s).
    assert_eq!(victims.first(), Some(&3));
    let first_pause = pauses_of(&sim, 3).0[0];
    let first_brake = sim
        .log()
        .iter()
        .find(|(_, a)| matches!(a, Action::Term { task: 3, .. }))
        .map(|(t, _)| *t);
    assert!(
        Some(first_pause) < first_brake,
        "{first_pause:?} {first_brake:?}"
    );
    assert!(report.braked_seconds < 11.9, "{}", report.braked_seconds);
}

#[test]
fn brake_kills_at_once_below_the_hard_level_when_term_is_ignored() {
    let cfg = Config {
        estimate: Some(gib(0.5)),
        grace: secs(30.0),
        ..config()
    };
    let mut tasks = vec![ramp(1.0, 0.5, 20.0)];
    // Grows fast and ignores TERM: the grace would let it fill the host.
    tasks.push(SimTask::new(
        Script::ramp(gib(7.5), secs(4.0), secs(1.0), 0).ignoring_term(),
    ));
    tasks[1]
        .scripts
        .push(Script::ramp(gib(0.5), secs(1.0), secs(1.0), 0));
    let (sim, report) = run(cfg, host(), tasks);
    assert_clean(&report);
    let kill = sim
        .log()
        .iter()
        .find(|(_, a)| matches!(a, Action::Kill { task: 1, .. }))
        .expect("KILL sent");
    let term = sim
        .log()
        .iter()
        .find(|(_, a)| matches!(a, Action::Term { task: 1, .. }))
        .unwrap();
    assert!(
        kill.0 - term.0 < secs(2.0),
        "killed long after TERM: {:?}",
        kill.0
    );
    assert_eq!(verdicts(&sim, 1)[0].0, ExitClass::Braked);
}

#[test]
fn task_too_big_to_ever_fit_fails_without_starting() {
    let mut big = ramp(1.0, 1.0, 1.0);
    big.spec.lower_bound = Some(gib(10.0));
    let (sim, report) = run(config(), host(), vec![big, ramp(0.5, 1.0, 1.0)]);
    assert_clean(&report);
    let fail = sim
        .log()
        .iter()
        .find_map(|(_, a)| match a {
            Action::Fail { task: 0, reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("Fail for task 0");
    assert_eq!(
        fail,
        Reason::OverBudget {
            needs: gib(10.0),
            budget: gib(6.0)
        }
    );
    assert!(starts(&sim).iter().all(|s| s.1 != 0));
    assert!(matches!(sim.policy().state(1), TaskState::Done { .. }));
}

#[test]
fn task_that_outgrows_the_budget_alone_fails_naming_its_size() {
    let cfg = Config {
        max_brakes: 1,
        pause: true,
        ..config()
    };
    let (sim, report) = run(cfg, host(), vec![ramp(7.0, 7.0, 1.0)]);
    assert_clean(&report);
    let v = verdicts(&sim, 0);
    let last = v.last().unwrap();
    assert_eq!((last.0, last.1), (ExitClass::Braked, false));
    assert!(
        matches!(&last.2, Reason::TooBigAlone { peak, .. } if *peak >= gib(6.0) && *peak < gib(7.0)),
        "{:?}",
        last.2
    );
    assert!(matches!(
        sim.policy().state(0),
        TaskState::Failed {
            class: ExitClass::Braked,
            ..
        }
    ));
}

#[test]
fn cold_start_admits_what_fits_at_a_plausible_size_then_widens_as_peaks_settle() {
    let (sim, report) = run(
        config(),
        host(),
        (0..7).map(|_| ramp(1.0, 4.0, 10.0)).collect(),
    );
    assert_clean(&report);
    all_done(&sim, 7);
    let s = starts(&sim);
    // The 6 GiB budget holds five unknown tasks at a plausible 1 GiB plus the margin: they
    // start together, each reserving that size.
    assert!(s[..5].iter().all(|s| s.0 == Duration::ZERO), "{s:?}");
    assert!(s[..5].iter().all(|s| s.2 == gib(1.0)), "{s:?}");
    // The next waits for them to stop growing (~4 s ramp, then 2 s of no growth above 5%),
    // predicted at the seen peak plus margin.
    assert!(s[5].0 >= secs(5.5), "{:?}", s[5]);
    assert!(s[5].2 >= gib(1.0), "{}", s[5].2);
    assert_eq!(report.brakes, 0);
}

#[test]
fn cold_start_with_room_for_one_admits_one_then_widens() {
    // A 1.5 GiB budget holds one unknown task at the plausible size: the first runs alone
    // until its peak settles, then others are admitted at what it showed.
    let cfg = Config {
        budget: gib(1.5),
        ..config()
    };
    let (sim, report) = run(cfg, host(), (0..4).map(|_| ramp(0.3, 4.0, 10.0)).collect());
    assert_clean(&report);
    all_done(&sim, 4);
    let s = starts(&sim);
    assert_eq!(s[0].0, Duration::ZERO);
    assert!(s[1].0 >= secs(5.5), "{:?}", s[1]);
    assert!(report.max_running >= 3, "{}", report.max_running);
    assert_eq!(report.brakes, 0);
}

/// Runs one workload under four strategies; returns (cold, estimate, serial, blind).
fn strategies(tasks: &dyn Fn() -> Vec<SimTask>, peak: f64) -> [Report; 4] {
    let (_, cold) = run(config(), host(), tasks());
    let informed = Config {
        estimate: Some(gib(peak * 1.1)),
        ..config()
    };
    let (_, known) = run(informed, host(), tasks());
    let serial = Config {
        max_jobs: 1,
        ..config()
    };
    let (_, one) = run(serial, host(), tasks());
    // Blind: an estimate ten times too small admits everything at once; the brake cleans up.
    let blind = Config {
        estimate: Some(gib(peak / 10.0)),
        ..config()
    };
    let (_, blind) = run(blind, host(), tasks());
    [cold, known, one, blind]
}

#[test]
fn cold_start_tradeoff() {
    // The module doc's table comes from this test's output (`-- --nocapture`).
    let workloads: [(&str, f64, f64, f64); 2] = [
        ("early peak", 1.0, 10.0, 20.0),
        ("late peak", 1.5, 25.0, 5.0),
    ];
    for (name, peak, ramp_s, hold_s) in workloads {
        let tasks =
            move || -> Vec<SimTask> { (0..8).map(|_| ramp(peak, ramp_s, hold_s)).collect() };
        let [cold, known, one, blind] = strategies(&tasks, peak);
        for (strategy, r) in [
            ("cold start", &cold),
            ("--estimate right", &known),
            ("-j 1", &one),
            ("--estimate 10x low", &blind),
        ] {
            assert!(
                r.violations.is_empty(),
                "{name} {strategy}: {:#?}",
                r.violations
            );
            println!(
                "{name:10} {strategy:18}: makespan {:6.1} s, braked {:5.1} task-s, brakes {}, \
                 kernel OOM kills {}",
                r.makespan.as_secs_f64(),
                r.braked_seconds,
                r.brakes,
                r.kernel_oom_kills
            );
        }
        assert_clean(&cold);
        assert_clean(&known);
        // Tasks of the plausible size start together without a brake; half as large again,
        // the newest are paused and one is braked, which is still no slower than knowing.
        assert!(cold.brakes <= 1, "{name}");
        assert!(cold.makespan < one.makespan / 2, "{name}");
        assert!(cold.makespan <= known.makespan, "{name}");
        // Cold start costs about one ramp plus the settle window plus a partial wave.
        assert!(
            cold.makespan <= known.makespan + secs(ramp_s + hold_s + 5.0),
            "{name}"
        );
        assert!(blind.brakes > 0 && blind.braked_seconds > 0.0, "{name}");
    }
}

#[test]
fn big_tasks_predicted_from_features_do_not_run_together() {
    // Seed 001: a backtest's peak grows with its years. After 1- and 2-year tasks, the
    // 10-year ones are predicted at ~2.5 GiB each and a 4 GiB budget holds only one.
    let cfg = Config {
        budget: gib(4.0),
        max_jobs: 4,
        estimate: Some(gib(0.3)),
        ..config()
    };
    let per_year = 0.23;
    let years = [1.0, 2.0, 1.0, 2.0, 10.0, 10.0, 10.0, 1.0];
    let tasks: Vec<SimTask> = years
        .iter()
        .map(|&y| ramp(per_year * y, 1.0, 2.0).features(vec![y, 10.0]))
        .collect();
    let (sim, report) = run(cfg, host(), tasks);
    assert_clean(&report);
    all_done(&sim, years.len());
    assert_eq!(report.brakes, 0);
    let big: Vec<TaskId> = (0..years.len()).filter(|&i| years[i] == 10.0).collect();
    for &(t, id, predicted) in &starts(&sim) {
        if big.contains(&id) {
            assert!(predicted >= gib(2.3), "task {id} predicted {predicted}");
            // No other big task is still running when this one can have grown to half its
            // peak (its ramp takes 1 s): a big task may start only as another is ending.
            let overlapping = big.iter().filter(|&&b| b != id).any(|&b| {
                let ran = sim
                    .log()
                    .iter()
                    .any(|(s, a)| matches!(a, Action::Start { task, .. } if *task == b) && *s <= t);
                let ended = sim.log().iter().any(|(s, a)| {
                    matches!(a, Action::Finished { task, .. } if *task == b) && *s <= t + secs(0.5)
                });
                ran && !ended
            });
            assert!(!overlapping, "big task {id} started beside another big one");
        }
    }
    // The small task queued after the big ones backfills beside them.
    let last = starts(&sim).into_iter().find(|s| s.1 == 7).unwrap();
    let first_big_done = sim
        .log()
        .iter()
        .find(|(_, a)| matches!(a, Action::Finished { task: 6, .. }))
        .unwrap()
        .0;
    assert!(
        last.0 < first_big_done,
        "small task waited for the last big one"
    );
}

#[test]
fn history_seeds_the_feature_model_before_anything_runs() {
    let cfg = Config {
        budget: gib(4.0),
        ..config()
    };
    let tasks = vec![
        ramp(2.3, 1.0, 2.0).features(vec![10.0]),
        ramp(2.3, 1.0, 2.0).features(vec![10.0]),
    ];
    let mut sim = Sim::new(cfg, host(), tasks);
    sim.policy_mut()
        .learn_from_history(&[(vec![1.0], peak_only(0.23)), (vec![2.0], peak_only(0.46))]);
    let report = sim.drive();
    assert_clean(&report);
    assert_eq!(report.max_running, 1);
    assert!(sim
        .log()
        .iter()
        .any(|(_, a)| matches!(a, Action::Note(Note::LearnedPeak { .. }))));
}

/// The 36 tasks of `bench/sweep_bench.py --target 4G` (seed 2): peak MiB, ramp s, hold s.
const BENCH_SWEEP: [(u64, f64, f64); 36] = [
    (1507, 1.19, 1.55),
    (1394, 5.6, 5.1),
    (703, 4.43, 5.13),
    (198, 9.1, 2.3),
    (1290, 3.95, 3.83),
    (106, 4.24, 3.8),
    (322, 5.51, 3.32),
    (105, 2.83, 3.4),
    (899, 5.09, 5.68),
    (1426, 8.81, 2.74),
    (1422, 5.23, 1.37),
    (1085, 8.1, 3.71),
    (665, 6.44, 1.93),
    (815, 4.97, 1.63),
    (1246, 7.21, 2.17),
    (643, 2.59, 2.3),
    (483, 7.0, 6.8),
    (1164, 9.86, 4.59),
    (658, 6.65, 3.82),
    (151, 6.7, 1.96),
    (437, 8.74, 3.92),
    (1101, 4.95, 6.73),
    (536, 3.71, 1.24),
    (230, 6.52, 6.58),
    (320, 5.15, 2.35),
    (190, 2.83, 1.4),
    (338, 1.61, 0.72),
    (163, 5.82, 6.75),
    (272, 2.93, 4.09),
    (1079, 1.33, 1.14),
    (771, 1.86, 1.61),
    (212, 8.32, 3.64),
    (1404, 9.01, 4.2),
    (512, 5.58, 5.01),
    (211, 6.03, 7.34),
    (596, 3.98, 4.72),
];

/// The benchmark's sweep in simulated time: `ramguard run --mem 4G -j 8` on a machine
/// with 4 GiB available (reserve 410 MiB, brake 256 MiB, hard 128 MiB, grace 10 s), the
/// tasks' command lines giving `--peak`, `--ramp`, `--hold` and `--result` as features.
/// With `leak`, task 18 is replaced by one that reaches 200 MiB in 1 s and then leaks
/// 100 MiB/s for 10 s (its command line has one more flag, `--leak 100M`).
fn bench_sweep(leak: bool) -> (Report, f64) {
    let (sim, bound) = bench_sweep_sim(leak);
    (sim.1, bound)
}

fn bench_sweep_sim(leak: bool) -> ((Sim, Report), f64) {
    const MIB: u64 = 1 << 20;
    let cfg = Config {
        budget: gib(4.0),
        reserve: Bytes(410 * MIB),
        brake_level: Bytes(256 * MIB),
        hard_level: Bytes(128 * MIB),
        grace: secs(10.0),
        psi_full_pause: 10.0,
        ..config()
    };
    let mut area = 0.0;
    let mut work = 0.0;
    let tasks: Vec<SimTask> = BENCH_SWEEP
        .iter()
        .enumerate()
        .map(|(i, &(peak, ramp_s, hold_s))| {
            let mut features = vec![(peak * MIB) as f64, ramp_s, hold_s, i as f64, f64::NAN];
            let mut script = Script::ramp(Bytes(peak * MIB), secs(ramp_s), secs(hold_s), 0);
            let (mut p, mut r, mut h) = ((peak * MIB) as f64, ramp_s, hold_s);
            if leak && i == 18 {
                (p, r, h) = ((200 * MIB) as f64, 1.0, 10.0);
                features = vec![p, r, h, i as f64, (100 * MIB) as f64];
                script.points = vec![
                    (Duration::ZERO, Bytes::ZERO),
                    (secs(1.0), Bytes(200 * MIB)),
                    (secs(11.0), Bytes(1200 * MIB)),
                ];
                area += p + (1000 * MIB) as f64 * 10.0 / 2.0;
            }
            area += p * (r / 2.0 + h);
            work += r + h;
            SimTask::new(script).features(features)
        })
        .collect();
    let usable = (4.0 - 0.25) * GIB;
    let bound = (area / usable).max(work / 8.0);
    (run(cfg, Host::new(gib(4.0)), tasks), bound)
}

#[test]
fn bench_sweep_packs_within_reach_of_the_lower_bound() {
    // The simulated twin of `bench/sweep_bench.py`'s sweep section (`-- --nocapture`).
    for leak in [false, true] {
        let (r, bound) = bench_sweep(leak);
        let makespan = r.makespan.as_secs_f64();
        println!(
            "bench sweep{}: makespan {makespan:.1} s = {:.2}× the bound {bound:.1} s, \
             {:.1} tasks at once on average (most {}), brakes {}, braked {:.1} task-s, \
             pauses {} ({:.1} task-s), lowest available {}",
            if leak { " (leak)" } else { "" },
            makespan / bound,
            r.task_seconds / makespan,
            r.max_running,
            r.brakes,
            r.braked_seconds,
            r.pauses,
            r.paused_seconds,
            r.min_available,
        );
        assert_clean(&r);
        assert!(r.min_available >= Bytes(256 << 20), "{}", r.min_available);
    }
}

#[test]
fn tasks_that_slow_down_after_being_learned_are_caught_not_oom_killed() {
    // The first tasks teach an 8 s duration; from task 4 on every task ramps and holds
    // twice as long (the machine got busier), so every expected end comes too early.
    let tasks: Vec<SimTask> = (0..16)
        .map(|i| {
            let slow = if i < 4 { 1.0 } else { 2.0 };
            ramp(1.0, 4.0 * slow, 4.0 * slow)
        })
        .collect();
    let (sim, report) = run(config(), host(), tasks);
    assert_clean(&report);
    all_done(&sim, 16);
    println!(
        "slowed down: makespan {:.1} s, brakes {}, braked {:.1} task-s, lowest available {}",
        report.makespan.as_secs_f64(),
        report.brakes,
        report.braked_seconds,
        report.min_available
    );
    // Over budget once the slow tasks outlive their expected ends: the brake stops the
    // newest, and from then on the overrunning tasks count as never ending.
    assert!(report.brakes <= 2, "{} brakes", report.brakes);
    assert!(report.min_available >= gib(0.4), "{}", report.min_available);
}

#[test]
fn a_braked_task_that_ignores_term_and_keeps_growing_is_killed_before_the_grace() {
    // Seen on a real host: `memhog --ignore-term --peak 1500M` under `--mem 512M` held
    // 1.5 GiB for the whole 10 s grace. Growing after TERM now earns KILL at once.
    let cfg = Config {
        budget: gib(0.5),
        grace: secs(10.0),
        max_jobs: 1,
        ..config()
    };
    let hog = Script::ramp(gib(1.5), secs(3.0), secs(5.0), 0).ignoring_term();
    let (sim, report) = run(cfg, host(), vec![SimTask::new(hog)]);
    assert_clean(&report);
    let at = |pred: &dyn Fn(&Action) -> bool| {
        sim.log()
            .iter()
            .find(|(_, a)| pred(a))
            .map(|(t, _)| *t)
            .unwrap()
    };
    let term = at(&|a| matches!(a, Action::Term { .. }));
    let kill = at(&|a| matches!(a, Action::Kill { .. }));
    // 32 MiB more at 0.5 GiB/s is 62 ms; the harness samples every 50 ms.
    assert!(
        kill - term <= secs(0.2),
        "TERM at {term:?}, KILL at {kill:?}"
    );
    assert!(
        matches!(verdicts(&sim, 0)[0].2, Reason::Braked { .. }),
        "{:?}",
        verdicts(&sim, 0)
    );
}

#[test]
fn a_braked_task_that_shuts_down_slowly_keeps_its_grace() {
    // A task that stops growing on TERM and takes 3 s to save its state is not killed.
    let cfg = Config {
        budget: gib(0.5),
        grace: secs(10.0),
        max_jobs: 1,
        ..config()
    };
    let mut slow = Script::ramp(gib(1.5), secs(3.0), secs(5.0), 0);
    slow.term_delay = Some(secs(3.0));
    // Memory stays flat from TERM on: the trace holds what it had at the brake.
    slow.points = vec![
        (Duration::ZERO, Bytes::ZERO),
        (secs(1.1), gib(0.55)),
        (secs(8.0), gib(0.55)),
    ];
    let (sim, report) = run(cfg, host(), vec![SimTask::new(slow)]);
    assert_clean(&report);
    assert!(
        !sim.log()
            .iter()
            .any(|(_, a)| matches!(a, Action::Kill { .. })),
        "killed though it stopped growing"
    );
}

/// Decision cost on a large sweep (`--ignored`, a measurement, not run by CI): 30,000 tiny
/// tasks at `-j 8`. Each decision used to scan every task's state and predict every queued
/// task; now it walks the running set and at most `BACKFILL_WINDOW` queued tasks.
#[test]
#[ignore]
fn large_sweep_decision_cost() {
    let cfg = Config {
        estimate: Some(gib(0.01)),
        ..config()
    };
    let n = 30_000;
    let tasks: Vec<SimTask> = (0..n).map(|_| ramp(0.01, 0.01, 0.01)).collect();
    let t = std::time::Instant::now();
    let (sim, report) = run(cfg, host(), tasks);
    println!(
        "{n} tasks: policy and harness {:.2} s of CPU for {:.0} s simulated",
        t.elapsed().as_secs_f64(),
        report.makespan.as_secs_f64()
    );
    assert_clean(&report);
    all_done(&sim, n);
}

#[test]
fn a_slow_ramping_task_starts_while_a_big_one_is_finishing() {
    // Two 3 GiB tasks never fit a 4 GiB budget together at their peaks, but one that takes
    // 10 s to grow can start before the other ends: once three durations are known, each
    // next task starts before the previous one has finished.
    let cfg = Config {
        budget: gib(4.0),
        estimate: Some(gib(3.0)),
        ..config()
    };
    let tasks: Vec<SimTask> = (0..6).map(|_| ramp(3.0, 10.0, 2.0)).collect();
    let (sim, report) = run(cfg, host(), tasks);
    assert_clean(&report);
    all_done(&sim, 6);
    assert_eq!(report.brakes, 0);
    let finished = |task: TaskId| {
        sim.log()
            .iter()
            .find(|(_, a)| matches!(a, Action::Finished { task: t, .. } if *t == task))
            .map(|(t, _)| *t)
            .unwrap()
    };
    let started: Vec<(Duration, TaskId, Bytes)> = starts(&sim);
    for w in started.windows(2).skip(3) {
        let ((_, before, _), (at, next, _)) = (w[0], w[1]);
        assert!(
            at < finished(before),
            "task {next} started at {at:?}, after task {before} finished at {:?}",
            finished(before)
        );
    }
}

#[test]
fn ramps_stretch_when_growing_tasks_share_too_few_cpus() {
    // Two tasks known to peak at 1 GiB ramp there in 1 s and hold it for 1 s. Faulting in
    // 1 GiB costs 1 CPU-second here, so both at once need 2 CPUs: on a 1-CPU host each gets
    // half, its ramp takes 2 s, and what follows (the hold, the exit) comes that much later.
    // Holding memory costs no CPU. On an ideal host both end at 2 s.
    let tasks = || {
        (0..2)
            .map(|_| ramp(1.0, 1.0, 1.0).features(vec![1.0]))
            .collect::<Vec<_>>()
    };
    let cfg = Config {
        estimate: Some(gib(1.2)),
        ..config()
    };
    let (_, ideal) = run(cfg.clone(), host(), tasks());
    assert_clean(&ideal);
    assert_eq!(ideal.makespan, secs(2.0));
    let (sim, slow) = run(cfg, host().with_cpu(1.0, 1.0), tasks());
    assert_clean(&slow);
    all_done(&sim, 2);
    assert_eq!(starts(&sim).len(), 2);
    let ms = slow.makespan.as_secs_f64();
    assert!((ms - 3.0).abs() < 0.01, "{ms}");
    // Each ran a second longer than on the ideal host.
    assert!(slow.task_seconds > ideal.task_seconds + 1.9, "{slow:?}");
}

#[test]
fn a_head_that_waits_is_not_delayed_but_not_idled_for_either() {
    // `--mem 4G -j 3`, everything known from an earlier run (features: peak GiB, seconds).
    // The longest task (1.6 GiB, 30 s) and a 20 s one of 1.5 GiB start; the next, another
    // of 1.5 GiB, waits for room until the 20 s one ends. Twenty 2 s tasks of 0.3 GiB may
    // overtake it: once -j times for nothing, then only while they end before it would fit
    // anyway, or fit beside it. They used to stop after three, leaving a slot empty for
    // 14 s, and ran one at a time at the end: 46 s, where the 1.5 GiB tasks' chain takes 40.
    let cfg = Config {
        budget: gib(4.0),
        reserve: gib(0.25),
        max_jobs: 3,
        ..config()
    };
    let mut rows = vec![(1.6, 30.0), (1.5, 20.0), (1.5, 20.0)];
    rows.extend([(0.3, 2.0); 20]);
    let tasks: Vec<SimTask> = rows
        .iter()
        .map(|&(p, d)| ramp(p, 0.2, d - 0.2).features(vec![p, d]))
        .collect();
    let mut sim = Sim::new(cfg, host(), tasks);
    let seen = |p: f64, d: f64| {
        (
            vec![p, d],
            ramguard_core::policy::predict::Observation {
                peak: gib(p),
                duration: Some(secs(d)),
                time_to_peak: Some(secs(0.2)),
                quiet: None,
            },
        )
    };
    sim.policy_mut().learn_from_history(&[
        seen(1.6, 30.0),
        seen(1.5, 20.0),
        seen(0.3, 2.0),
        seen(0.4, 3.0),
    ]);
    let report = sim.drive();
    assert_clean(&report);
    all_done(&sim, rows.len());
    // The second 1.5 GiB task still starts when the first ends, not later.
    let started = |task: TaskId| {
        starts(&sim)
            .iter()
            .find(|s| s.1 == task)
            .map(|s| s.0)
            .unwrap()
    };
    assert!(started(2) <= started(1) + secs(20.5), "{:?}", started(2));
    // The small tasks filled the third slot meanwhile.
    let small_by_20 = starts(&sim)
        .iter()
        .filter(|s| s.1 >= 3 && s.0 < secs(20.0))
        .count();
    println!(
        "makespan {:?}, {small_by_20} small tasks started before 20 s",
        report.makespan
    );
    assert!(
        small_by_20 >= 9,
        "{small_by_20} small tasks started before 20 s"
    );
    assert!(report.makespan < secs(42.0), "{:?}", report.makespan);
}
