//! Unit tests that call the policy's interface directly, the way the supervisor does, for
//! contracts the simulated scenarios (`tests/policy_sim.rs`) do not pin one call at a time.

use super::predict::Observation;
use super::*;

const MIB: u64 = 1 << 20;

fn mib(x: u64) -> Bytes {
    Bytes(x * MIB)
}

fn peak_only(peak: Bytes) -> Observation {
    Observation {
        peak,
        duration: None,
        time_to_peak: None,
        quiet: None,
    }
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn config() -> Config {
    Config {
        budget: mib(4096),
        reserve: mib(256),
        brake_level: mib(400),
        hard_level: mib(100),
        max_jobs: 4,
        estimate: Some(mib(1024)),
        task_cap: None,
        timeout: None,
        grace: ms(5000),
        retries: 0,
        psi_full_pause: 40.0,
        max_brakes: 3,
        pause: true,
    }
}

fn policy(n: usize, config: Config) -> Policy {
    Policy::new(config, vec![TaskSpec::default(); n])
}

fn drain(p: &mut Policy, now: Duration) -> Vec<Action> {
    std::iter::from_fn(|| p.poll_action(now)).collect()
}

fn sample(available: u64, tasks: &[(TaskId, u64)]) -> Sample {
    Sample {
        available: mib(available),
        psi_full_avg10: None,
        tasks: tasks.iter().map(|&(t, m)| (t, mib(m))).collect(),
        shm_room_for: None,
        shm_free: None,
        cpu: Vec::new(),
    }
}

fn started(actions: &[Action]) -> Vec<TaskId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { task, .. } => Some(*task),
            _ => None,
        })
        .collect()
}

fn exit(code: i32, peak: u64) -> Exit {
    Exit {
        ending: Ending::Exited { code },
        peak: mib(peak),
    }
}

#[test]
fn nothing_starts_before_the_first_sample() {
    let mut p = policy(2, config());
    assert_eq!(drain(&mut p, ms(0)), vec![]);
    p.handle_sample(ms(0), &sample(8192, &[]));
    assert_eq!(started(&drain(&mut p, ms(0))), vec![0, 1]);
}

#[test]
fn admission_reserves_growth_of_running_tasks() {
    // 4 GiB budget, 1 GiB estimate: four fit at once; a fifth waits although the running
    // tasks use only 100 MiB each so far.
    let mut p = policy(5, config());
    p.handle_sample(ms(0), &sample(8192, &[]));
    assert_eq!(started(&drain(&mut p, ms(0))).len(), 4);
    p.handle_sample(
        ms(50),
        &sample(7800, &[(0, 100), (1, 100), (2, 100), (3, 100)]),
    );
    assert_eq!(started(&drain(&mut p, ms(50))), Vec::<TaskId>::new());
    assert_eq!(p.room(), Some(i128::from(mib(4096 - 4 * 1024).get())));
}

#[test]
fn brake_terms_newest_names_the_levels_and_kills_below_hard_level() {
    let mut p = policy(2, config());
    p.handle_sample(ms(0), &sample(8192, &[]));
    drain(&mut p, ms(0));
    p.handle_sample(ms(50), &sample(180, &[(0, 1500), (1, 1200)]));
    let a = drain(&mut p, ms(50));
    assert_eq!(
        a,
        vec![
            Action::Term {
                task: 1,
                reason: StopReason::Brake
            },
            Action::Note(Note::Brake {
                task: 1,
                why: BrakeWhy::LowMemory {
                    available: mib(180),
                    level: mib(400)
                }
            }),
        ]
    );
    // Still short, victim not reaped: no second victim. Below the hard level: KILL now.
    p.handle_sample(ms(100), &sample(90, &[(0, 1500), (1, 1300)]));
    assert_eq!(
        drain(&mut p, ms(100)),
        vec![Action::Kill {
            task: 1,
            reason: StopReason::Brake
        }]
    );
    p.handle_exit(ms(120), 1, &exit(0, 1300));
    let a = drain(&mut p, ms(120));
    assert_eq!(
        a[0],
        Action::Finished {
            task: 1,
            attempt: 1,
            class: ExitClass::Braked,
            requeued: true,
            reason: Reason::Braked {
                peak: mib(1300),
                why: BrakeWhy::LowMemory {
                    available: mib(180),
                    level: mib(400)
                }
            },
            peak: mib(1300),
        }
    );
    assert_eq!(
        p.state(1),
        &TaskState::Queued {
            attempt: 2,
            brakes: 1
        }
    );
    assert_eq!(p.lower_bound(1), Some(mib(1300)));
}

#[test]
fn grace_expiry_is_announced_by_poll_timeout_then_kill() {
    let mut p = policy(
        1,
        Config {
            timeout: Some(ms(1000)),
            ..config()
        },
    );
    p.handle_sample(ms(0), &sample(8192, &[]));
    drain(&mut p, ms(0));
    assert_eq!(p.poll_timeout(ms(0)), Some(ms(1000)));
    assert_eq!(
        drain(&mut p, ms(1000)),
        vec![Action::Term {
            task: 0,
            reason: StopReason::Timeout
        }]
    );
    assert_eq!(p.poll_timeout(ms(1000)), Some(ms(6000)));
    assert_eq!(drain(&mut p, ms(5999)), vec![]);
    assert_eq!(
        drain(&mut p, ms(6000)),
        vec![Action::Kill {
            task: 0,
            reason: StopReason::Timeout
        }]
    );
    assert_eq!(p.poll_timeout(ms(6000)), None);
}

#[test]
fn an_exit_for_a_task_that_is_not_running_is_ignored() {
    let mut p = policy(1, config());
    p.handle_exit(ms(0), 0, &exit(0, 10));
    assert_eq!(drain(&mut p, ms(0)), vec![]);
    assert!(matches!(p.state(0), TaskState::Queued { .. }));
}

#[test]
fn learned_peak_is_announced_only_when_it_moves_by_more_than_ten_percent() {
    let mut p = policy(
        3,
        Config {
            estimate: None,
            ..config()
        },
    );
    p.learn_from_history(&[(vec![], peak_only(mib(1000)))]);
    let notes = |a: Vec<Action>| -> Vec<Action> {
        a.into_iter()
            .filter(|a| matches!(a, Action::Note(Note::LearnedPeak { .. })))
            .collect()
    };
    assert_eq!(
        notes(drain(&mut p, ms(0))),
        vec![Action::Note(Note::LearnedPeak { peak: mib(1100) })]
    );
    p.learn_from_history(&[(vec![], peak_only(mib(1050)))]);
    assert_eq!(notes(drain(&mut p, ms(0))), vec![]);
    p.learn_from_history(&[(vec![], peak_only(mib(2000)))]);
    assert_eq!(notes(drain(&mut p, ms(0))).len(), 1);
}

#[test]
fn nothing_fits_while_nothing_runs_pauses_once_and_resumes() {
    let spec = TaskSpec {
        lower_bound: Some(mib(3000)),
        ..TaskSpec::default()
    };
    let mut p = Policy::new(config(), vec![spec]);
    p.handle_sample(ms(0), &sample(2000, &[]));
    let a = drain(&mut p, ms(0));
    assert!(
        matches!(
            &a[..],
            [Action::Note(Note::Paused {
                why: PauseWhy::NothingFits { .. }
            })]
        ),
        "{a:?}"
    );
    p.handle_sample(ms(50), &sample(2000, &[]));
    assert_eq!(drain(&mut p, ms(50)), vec![]);
    p.handle_sample(ms(100), &sample(8000, &[]));
    let a = drain(&mut p, ms(100));
    assert_eq!(a[0], Action::Note(Note::Resumed));
    assert_eq!(started(&a), vec![0]);
}

#[test]
fn journal_attempts_count_against_retries() {
    let spec = TaskSpec {
        prior_attempts: 2,
        ..TaskSpec::default()
    };
    let mut p = Policy::new(
        Config {
            retries: 2,
            ..config()
        },
        vec![spec],
    );
    p.handle_sample(ms(0), &sample(8192, &[]));
    let a = drain(&mut p, ms(0));
    assert!(matches!(a[0], Action::Start { attempt: 3, .. }), "{a:?}");
    p.handle_exit(ms(10), 0, &exit(4, 1));
    let a = drain(&mut p, ms(10));
    assert!(
        matches!(
            &a[0],
            Action::Finished {
                class: ExitClass::Failed,
                requeued: false,
                ..
            }
        ),
        "{a:?}"
    );
    assert!(p.is_finished());
}

#[test]
fn running_prediction_grows_with_the_observed_peak() {
    let mut p = policy(1, config());
    p.handle_sample(ms(0), &sample(8192, &[]));
    drain(&mut p, ms(0));
    assert_eq!(p.predicted(0), mib(1024));
    p.handle_sample(ms(50), &sample(6000, &[(0, 1500)]));
    assert_eq!(p.predicted(0), mib(1500));
    p.handle_sample(ms(100), &sample(6500, &[(0, 900)]));
    assert_eq!(p.predicted(0), mib(1500));
}

#[test]
fn interrupt_finishes_once_nothing_runs() {
    let mut p = policy(
        3,
        Config {
            max_jobs: 1,
            ..config()
        },
    );
    p.handle_sample(ms(0), &sample(8192, &[]));
    drain(&mut p, ms(0));
    p.interrupt(ms(10));
    assert_eq!(
        drain(&mut p, ms(10)),
        vec![Action::Term {
            task: 0,
            reason: StopReason::Interrupt
        }]
    );
    assert!(!p.is_finished());
    p.handle_exit(ms(20), 0, &exit(143, 5));
    let a = drain(&mut p, ms(20));
    assert!(
        matches!(
            &a[..],
            [Action::Finished {
                class: ExitClass::Interrupted,
                requeued: false,
                ..
            }]
        ),
        "{a:?}"
    );
    assert!(p.is_finished());
}

#[test]
fn poll_timeout_never_returns_a_settle_deadline_in_the_past() {
    // Regression: once a cold-started task had settled but the next unknown task still did
    // not fit, poll_timeout returned the past settle deadline and the caller spun.
    let mut p = policy(
        2,
        Config {
            estimate: None,
            budget: mib(1500),
            ..config()
        },
    );
    p.handle_sample(ms(0), &sample(8192, &[]));
    assert_eq!(started(&drain(&mut p, ms(0))), vec![0]);
    p.handle_sample(ms(100), &sample(7000, &[(0, 1000)]));
    drain(&mut p, ms(100));
    assert_eq!(p.poll_timeout(ms(100)), Some(ms(2100)));
    // Settled at 2.1 s, but 1000 MiB + a 1100 MiB guess exceed the 1500 MiB budget.
    p.handle_sample(ms(3000), &sample(7000, &[(0, 1000)]));
    assert_eq!(started(&drain(&mut p, ms(3000))), Vec::<TaskId>::new());
    assert_eq!(p.poll_timeout(ms(3000)), None);
}

#[test]
fn dev_shm_room_limits_admission_while_a_task_runs_but_never_starves_the_queue() {
    let mut p = policy(4, config());
    let mut full = sample(8192, &[]);
    full.shm_room_for = Some(0);
    p.handle_sample(ms(0), &full);
    let first = started(&drain(&mut p, ms(0)));
    assert_eq!(
        first.len(),
        1,
        "with nothing running, one task may try alone"
    );
    let mut full = sample(8192, &[(first[0], 100)]);
    full.shm_room_for = Some(0);
    for t in 1..20 {
        p.handle_sample(ms(100 * t), &full);
        assert!(
            started(&drain(&mut p, ms(100 * t))).is_empty(),
            "admitted beside a running task while /dev/shm was full"
        );
    }
    // Room for one more: one starts in this sample, not every task that fits in memory.
    let mut one = sample(8192, &[(first[0], 100)]);
    one.shm_room_for = Some(1);
    p.handle_sample(ms(2000), &one);
    assert_eq!(started(&drain(&mut p, ms(2000))).len(), 1);
}

#[test]
fn tasks_sleeping_at_a_few_mib_do_not_pull_a_fitted_prediction_down() {
    // Regression: three finished tasks fit `--peak` exactly; three running ones, sleeping
    // at 3 MiB before they allocate, looked settled, and the provisional model that learned
    // their 3 MiB predicted a 2 GiB task far below what it needs.
    let size = |x: f64| TaskSpec {
        features: vec![x],
        ..TaskSpec::default()
    };
    let specs = vec![size(2100.0), size(2400.0), size(2700.0), size(2000.0)];
    let config = Config {
        budget: mib(12288),
        max_jobs: 3,
        estimate: None,
        ..config()
    };
    let mut p = Policy::new(config, specs);
    let finished: Vec<(Vec<f64>, Observation)> = [300.0, 600.0, 900.0]
        .iter()
        .map(|&x| (vec![x], peak_only(Bytes((x * MIB as f64) as u64))))
        .collect();
    p.learn_from_history(&finished);
    let fitted = p.predicted(3);
    assert!(fitted >= mib(2000), "{fitted}");
    p.handle_sample(ms(0), &sample(16384, &[]));
    let mut first = started(&drain(&mut p, ms(0)));
    first.sort_unstable();
    assert_eq!(first, vec![0, 1, 2], "the three largest start first");
    for t in (100..=4000).step_by(100) {
        p.handle_sample(ms(t), &sample(16000, &[(0, 3), (1, 3), (2, 3)]));
        drain(&mut p, ms(t));
    }
    assert!(p.predicted(3) >= fitted, "{} < {fitted}", p.predicted(3));
}

#[test]
fn a_quiet_start_is_the_last_stand_still_before_the_climb() {
    let at = |s: f64, m: u64| (Duration::from_secs_f64(s), mib(m));
    let facts = |climb: Vec<(Duration, Bytes)>| AttemptFacts {
        climb,
        ..AttemptFacts::default()
    };
    // Asleep at 5 MiB until 4 s, then 1 GiB.
    let sleeper = facts(vec![at(0.05, 5), at(4.0, 300), at(4.1, 1024)]);
    assert_eq!(sleeper.quiet(mib(1024)), at(4.0, 5));
    // Works at 200 MiB for 3 s, stands still again at 600 MiB for 2 s, then climbs: the last
    // stand-still before the peak counts.
    let worker = facts(vec![
        at(0.05, 100),
        at(0.1, 200),
        at(3.1, 600),
        at(5.1, 1000),
        at(5.2, 1024),
    ]);
    assert_eq!(worker.quiet(mib(1024)), at(5.1, 600));
    // A steady ramp, and a stand-still only after the peak was reached: none.
    let ramp = facts(vec![
        at(0.05, 100),
        at(0.5, 500),
        at(0.9, 1000),
        at(7.0, 1024),
    ]);
    assert_eq!(ramp.quiet(mib(1024)), at(0.0, 0));
    // Nothing measured for 1.5 s (a sleep before exec): quiet at nothing.
    let late = facts(vec![at(1.5, 1024)]);
    assert_eq!(late.quiet(mib(1024)), at(1.5, 0));
    assert_eq!(facts(vec![]).quiet(mib(1)), at(0.0, 0));
}
