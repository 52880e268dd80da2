//! The simulator's twin of `bench/sweep_bench.py --issue12`'s mixes: the very task lists the
//! benchmark runs, plus seeds nobody tuned on (13 mixes in `bench/mixes.json`, and 40 in
//! `bench/mixes40.json` to judge a policy change on, both written by `--write-mixes`; the
//! commands are in `bench/README.md`), through the real policy
//! in simulated time, configured as `ramguard run --mem 4G -j 8` on a machine with 4 GiB
//! available (levels from `policy::levels`: reserve 512 MiB, brake 384 MiB, hard 320 MiB).
//! The referee's floor (256 MiB) must never be crossed, no task may be OOM-killed by the
//! simulated kernel, and every task must finish; the makespans against each mix's lower
//! bound are printed (`-- --nocapture`) for BENCHMARKS.md. The `idle` mixes
//! (`bench/mixes-idle.json`) have each task sleep at a few MiB before its ramp; the `late`
//! ones (`bench/mixes-late.json`) work at 60–200 MiB instead, and a pause stops that work as
//! it stops the ramp (the simulator's scripts run on the task's run clock); the `heavy` ones
//! (`bench/mixes-heavy.json`) work at 30–60% of their peaks, faulted in at [`FAULT_IN`].
//! Shapes nobody tuned on (`bench/mixes-shapes.json`) face the same assertions. Each mix runs
//! three times: on an ideal host (ramps take their nominal time, freed memory shows at
//! once); on one whose 2 CPUs must fault every page in ([`CONTENDED`]): several large ramps
//! at once then stretch, as they do on the 2-CPU development host, and bets on when a task
//! peaks fail; and on the benchmark's emulated 4 GiB machine as its real runs show it
//! ([`EMULATED`]: faulting in costs twice the CPU, its memory reclaimed from page cache),
//! the host whose figures come closest to the real runs'. All sample as
//! the supervisor does (`Sim::sampling_like_the_supervisor`: up to 500 ms apart while memory
//! is far from the lines, down to 2 ms while it races); sampling every 50 ms instead gives
//! 1.97× where this gives 2.01× (median, ideal host).

use std::ops::Range;
use std::time::Duration;

use ramguard_core::policy::levels::levels;
use ramguard_core::policy::sim::{Host, Report, Script, Sim, SimTask};
use ramguard_core::policy::{Action, Config, TaskState};
use ramguard_core::Bytes;

const MIXES: &str = include_str!("../../../bench/mixes.json");
/// 40 mixes (`ramp` seeds 1–20, `big` 1–12, `leak` 1–8): what a change to the policy is
/// judged on before the real benchmark (BENCHMARKS.md quotes their medians).
const MIXES_40: &str = include_str!("../../../bench/mixes40.json");
/// 8 `idle` mixes (seeds 1–8): tasks that wait at a few MiB, then take their peak at once.
const MIXES_IDLE: &str = include_str!("../../../bench/mixes-idle.json");
/// 8 `late` mixes (seeds 1–8): the idle shape, but the time before the peak is work at
/// 60–200 MiB (a first memhog holding it on its run clock).
const MIXES_LATE: &str = include_str!("../../../bench/mixes-late.json");
/// 8 `heavy` mixes (seeds 1–8): the late shape, but the work before the peak holds 30–60%
/// of it (a task that loads its data, then builds a larger array from it).
const MIXES_HEAVY: &str = include_str!("../../../bench/mixes-heavy.json");
/// 8 `kinds` mixes (seeds 1–8): tasks of three kinds whose command lines name only the kind
/// and the index (`--model large --index 7`), as a training sweep over models does.
const MIXES_KINDS: &str = include_str!("../../../bench/mixes-kinds.json");
/// Shapes nobody tuned on (`bench/shapes.py`, seeds 1–3 each): a few huge tasks, many
/// tiny ones, several leaks, all alike at a third to a half of the machine, one long big
/// task last in the queue, sleepers that jump to a few MiB or to most of the machine, and
/// a sweep run largest first, tasks of three kinds told apart only by the kind's name, and
/// kinds that set how fast memory grows with a size (`kindsize`: two kinds and rows;
/// `kindmix`: three kinds, rows, and epochs that set only how long a task holds).
const MIXES_SHAPES: &str = include_str!("../../../bench/mixes-shapes.json");
/// Seconds per GiB a working task takes to fault its work memory in: a fast machine's rate
/// (this VM's memhog takes 0.45 s per GiB, 2.8 s under the benchmark's ballast). Taken at
/// once instead, no supervisor could see it come: the `heavy` twins then cross the floor
/// even with the provisional floor of `learn.rs`, while none of 34 real runs of ramguard on
/// `heavy` did (377 MiB left at the lowest, the floor is 256 MiB).
const FAULT_IN: f64 = 0.1;
/// What a task holds while it sleeps before its ramp (`sh -c 'sleep …; exec memhog …'`).
const ASLEEP: Bytes = Bytes(3 << 20);

/// CPUs and CPU-seconds per GiB of growth of the contended host: 0.35 s per GiB measured
/// for memhog's ramp on the idle development host (`/usr/bin/time memhog --peak 1G --ramp
/// 3s`), raised for the benchmark's referee, ramguard's own reads and whatever else runs.
/// It matters where many tasks ramp at once: the twin of `ramp` seed 2 (eight started
/// together) takes 2.61× its bound instead of 2.43×, the real no-ballast runs 2.49–2.72×
/// (`sweep_bench.py --no-ballast`, same policy). The rest of the gap between real and
/// simulated runs (`ramp` seed 1: 2.12–2.32× against 1.95×) is not CPU.
const CONTENDED: (f64, f64) = (2.0, 1.0);

/// The benchmark's emulated 4 GiB machine as its real runs show it: the ballast leaves
/// page cache to reclaim, and a 2.84 GiB task took 9.5 s from its resume to its end against
/// 3.2 s of ramp and hold (about 470 MiB/s faulted in). At 2.2 CPU-seconds per GiB on 2 CPUs
/// the twins of `idle` seeds 1, 2, 6, 9, 10 and 11 take 2.29, 2.56, 2.21, 2.50, 2.03 and
/// 1.68× their bounds, the real runs 2.25–2.45, 2.62–2.82, 2.08–2.17, 2.23, 1.96 and 1.63×
/// (`bench/results-20261127-1316.md`, `-1333.md`, `-1357.md`); seed 3 is the outlier, 2.09
/// against 2.98×. The other two hosts promise about 1.4× less than the real runs give.
const EMULATED: (f64, f64) = (2.0, 2.2);

const GIB: f64 = (1u64 << 30) as f64;

fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

/// One task of a mix: `idle` seconds at `before` (asleep in `sleep` at [`ASLEEP`], or
/// working at that size), then a memhog ramping to `peak` over `ramp`, holding for `hold`
/// while it leaks `leak` bytes per second.
fn task(idx: usize, row: &[serde_json::Value], idle: f64, before: Bytes) -> SimTask {
    let num = |i: usize| row[i].as_f64().expect("a number");
    let (peak, ramp, hold, leak) = (num(0), num(1), num(2), num(3));
    let mut script = Script::ramp(Bytes(peak as u64), secs(ramp), secs(hold), 0);
    if leak > 0.0 {
        script.points = vec![
            (Duration::ZERO, Bytes::ZERO),
            (secs(ramp), Bytes(peak as u64)),
            (secs(ramp + hold), Bytes((peak + leak * hold) as u64)),
        ];
    }
    if idle > 0.0 {
        let late = |(t, m): (Duration, Bytes)| (t + secs(idle), m.max(before));
        let ramped: Vec<_> = script.points.iter().copied().map(late).collect();
        // A sleeping task holds its few MiB from the start; a working one faults its work
        // memory in first.
        let fault_in = secs(before.get() as f64 / GIB * FAULT_IN);
        let first = match before == ASLEEP {
            true => vec![(Duration::ZERO, before)],
            false => vec![(Duration::ZERO, ASLEEP), (fault_in, before)],
        };
        script.points = first.into_iter().chain(ramped).collect();
        if before == ASLEEP {
            script = script.asleep(Duration::ZERO, secs(idle), true);
        }
    }
    // The numbers on the task's command line, in order, as ramguard reads them.
    let features = vec![
        peak,
        ramp,
        hold,
        idx as f64,
        if leak > 0.0 { leak } else { f64::NAN },
    ];
    SimTask::new(script).features(features)
}

/// The features of task `i` of a mix whose command lines name only a kind, its rows and
/// epochs if the mix has them, and an index (`train --model large --rows 400 --index 7`):
/// one 0/1 column per kind, as `tasks::features` reads a kind named by a value, then the
/// numbers.
fn kind_features(m: &serde_json::Value, i: usize) -> Vec<f64> {
    let kind = |j: usize| m["kinds"][j].as_u64().expect("a kind");
    let mut f: Vec<f64> = (0..kind_count(m))
        .map(|k| f64::from(u8::from(k == kind(i) as usize)))
        .collect();
    for numbers in ["rows", "epochs"] {
        if let Some(values) = m[numbers].as_array() {
            f.push(values[i].as_f64().expect("a number"));
        }
    }
    f.push(i as f64);
    f
}

/// How many kinds a mix's tasks are of; 0 for a mix without kinds.
fn kind_count(m: &serde_json::Value) -> usize {
    m["kinds"].as_array().map_or(0, |k| {
        k.iter()
            .filter_map(|v| v.as_u64())
            .max()
            .map_or(0, |n| n as usize + 1)
    })
}

fn simulate(host: Host, tasks: Vec<SimTask>, kinds: &[Range<usize>]) -> (Sim, Report) {
    let target = host.capacity;
    let l = levels(target, None, None);
    let cfg = Config {
        budget: target,
        reserve: l.reserve,
        brake_level: l.brake,
        hard_level: l.hard,
        max_jobs: 8,
        estimate: None,
        task_cap: None,
        timeout: None,
        grace: secs(10.0),
        retries: 0,
        psi_full_pause: 10.0,
        max_brakes: 3,
        pause: true,
    };
    let mut sim = Sim::new(cfg, host, tasks)
        .with_kinds(kinds)
        .sampling_like_the_supervisor();
    let report = sim.drive();
    (sim, report)
}

#[test]
fn the_benchmark_mixes_never_cross_the_referees_floor() {
    replay_all(MIXES);
}

#[test]
fn forty_mixes_never_cross_the_referees_floor() {
    replay_all(MIXES_40);
}

#[test]
fn idle_mixes_never_cross_the_referees_floor() {
    replay_all(MIXES_IDLE);
}

#[test]
fn late_mixes_never_cross_the_referees_floor() {
    replay_all(MIXES_LATE);
}

#[test]
fn heavy_mixes_never_cross_the_referees_floor() {
    replay_all(MIXES_HEAVY);
}

#[test]
fn kinds_mixes_never_cross_the_referees_floor() {
    replay_all(MIXES_KINDS);
}

#[test]
fn unseen_shapes_never_cross_the_referees_floor() {
    replay_all(MIXES_SHAPES);
}

/// Replays every mix of a `--write-mixes` file on each host and prints the medians.
fn replay_all(json: &str) {
    let v: serde_json::Value = serde_json::from_str(json).expect("a --write-mixes file");
    let target = Bytes(v["target"].as_u64().unwrap());
    let floor = Bytes(v["floor"].as_u64().unwrap());
    let mixes = v["mixes"].as_array().unwrap();
    assert!(!mixes.is_empty());
    for (name, host) in [
        ("ideal host", Host::new(target)),
        (
            "2 CPUs faulting pages in",
            Host::new(target).with_cpu(CONTENDED.0, CONTENDED.1),
        ),
        (
            "the emulated 4 GiB machine",
            Host::new(target).with_cpu(EMULATED.0, EMULATED.1),
        ),
    ] {
        println!("{name}:");
        let mut ratios = Vec::new();
        for m in mixes {
            ratios.push(replay(m, host.clone(), floor));
        }
        ratios.sort_by(f64::total_cmp);
        let mid = ratios.len() / 2;
        let median = match ratios.len() % 2 {
            1 => ratios[mid],
            _ => (ratios[mid - 1] + ratios[mid]) / 2.0,
        };
        println!("median {median:.2}× the bound");
    }
}

/// Runs one mix through the policy on `host`, checks it ended safely, and returns its
/// makespan ÷ its lower bound.
fn replay(m: &serde_json::Value, host: Host, floor: Bytes) -> f64 {
    let rows = m["tasks (peak, ramp s, hold s, leak per s)"]
        .as_array()
        .unwrap();
    let tasks: Vec<SimTask> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let idle = m["idle s"]
                .as_array()
                .map_or(0.0, |a| a[i].as_f64().unwrap());
            let before = m["idle MiB"]
                .as_array()
                .map_or(ASLEEP, |a| Bytes(a[i].as_u64().unwrap() << 20));
            let t = task(i, r.as_array().unwrap(), idle, before);
            match m["kinds"].as_array() {
                Some(_) => t.features(kind_features(m, i)),
                None => t,
            }
        })
        .collect();
    let n = tasks.len();
    let bound = m["bound_s"].as_f64().unwrap();
    // The kinds' columns come first (`kind_features`), one parameter's.
    #[allow(clippy::single_range_in_vec_init)]
    let kinds: Vec<Range<usize>> = match kind_count(m) {
        0 => Vec::new(),
        n => vec![0..n],
    };
    let (sim, r) = simulate(host, tasks, &kinds);
    let ratio = r.makespan.as_secs_f64() / bound;
    println!(
        "{} seed {}: makespan {:.1} s = {:.2}× the bound {bound:.1} s, {:.1} at once on \
         average, brakes {} ({:.1} task-s thrown away), pauses {} ({:.1} task-s), lowest \
         available {}",
        m["mix"].as_str().unwrap(),
        m["seed"],
        r.makespan.as_secs_f64(),
        ratio,
        r.task_seconds / r.makespan.as_secs_f64(),
        r.brakes,
        r.braked_seconds,
        r.pauses,
        r.paused_seconds,
        r.min_available
    );
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert_eq!(r.kernel_oom_kills, 0);
    assert!(
        r.min_available >= floor,
        "{} below {floor}",
        r.min_available
    );
    // Whatever the model knows, no task starts reserving nothing.
    for (t, a) in sim.log() {
        if let Action::Start {
            task, predicted, ..
        } = a
        {
            assert!(
                *predicted > Bytes::ZERO,
                "task {task} started at {t:?} predicted at 0"
            );
        }
    }
    for id in 0..n {
        assert!(
            matches!(sim.policy().state(id), TaskState::Done { .. }),
            "task {id}: {:?}",
            sim.policy().state(id)
        );
    }
    ratio
}
