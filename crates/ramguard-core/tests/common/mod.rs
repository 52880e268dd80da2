//! Helpers shared by the policy scenario tests (`policy_sim.rs`, `policy_verdicts.rs`,
//! `policy_suspend.rs`): an 8 GiB host, a default configuration, ramps, and readers of
//! the action log.

#![allow(dead_code)] // each test binary uses some of them

use std::time::Duration;

use ramguard_core::policy::predict::Observation;
use ramguard_core::policy::sim::{Host, Report, Script, Sim, SimTask};
use ramguard_core::policy::{Action, Config, ExitClass, Reason, TaskId, TaskState};
use ramguard_core::Bytes;

pub const GIB: f64 = (1u64 << 30) as f64;

pub fn gib(x: f64) -> Bytes {
    Bytes((x * GIB) as u64)
}

pub fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

/// What an older journal row teaches: a peak, no times.
pub fn peak_only(x: f64) -> Observation {
    Observation {
        peak: gib(x),
        duration: None,
        time_to_peak: None,
        quiet: None,
    }
}

/// An 8 GiB host with a 6 GiB budget, -j 8, brake at 512 MiB, no estimate.
pub fn config() -> Config {
    Config {
        budget: gib(6.0),
        reserve: gib(0.25),
        brake_level: gib(0.5),
        hard_level: gib(0.125),
        max_jobs: 8,
        estimate: None,
        task_cap: None,
        timeout: None,
        grace: secs(5.0),
        retries: 0,
        psi_full_pause: 40.0,
        max_brakes: 3,
        pause: true,
    }
}

pub fn host() -> Host {
    Host::new(gib(8.0))
}

pub fn ramp(peak: f64, ramp_s: f64, hold_s: f64) -> SimTask {
    SimTask::new(Script::ramp(gib(peak), secs(ramp_s), secs(hold_s), 0))
}

pub fn run(config: Config, host: Host, tasks: Vec<SimTask>) -> (Sim, Report) {
    let mut sim = Sim::new(config, host, tasks);
    let report = sim.drive();
    (sim, report)
}

pub fn assert_clean(report: &Report) {
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.kernel_oom_kills, 0, "simulated kernel OOM kill");
}

pub fn starts(sim: &Sim) -> Vec<(Duration, TaskId, Bytes)> {
    sim.log()
        .iter()
        .filter_map(|(t, a)| match a {
            Action::Start {
                task, predicted, ..
            } => Some((*t, *task, *predicted)),
            _ => None,
        })
        .collect()
}

pub fn verdicts(sim: &Sim, task: TaskId) -> Vec<(ExitClass, bool, Reason)> {
    sim.log()
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Finished {
                task: t,
                class,
                requeued,
                reason,
                ..
            } if *t == task => Some((*class, *requeued, reason.clone())),
            _ => None,
        })
        .collect()
}

/// When a task was paused and when resumed, from the action log.
pub fn pauses_of(sim: &Sim, task: TaskId) -> (Vec<Duration>, Vec<Duration>) {
    let (mut paused, mut resumed) = (Vec::new(), Vec::new());
    for (t, a) in sim.log() {
        match a {
            Action::Pause { task: p } if *p == task => paused.push(*t),
            Action::Resume { task: r } if *r == task => resumed.push(*t),
            _ => {}
        }
    }
    (paused, resumed)
}

pub fn all_done(sim: &Sim, n: usize) {
    for id in 0..n {
        assert!(
            matches!(sim.policy().state(id), TaskState::Done { .. }),
            "task {id}: {:?}",
            sim.policy().state(id)
        );
    }
}
