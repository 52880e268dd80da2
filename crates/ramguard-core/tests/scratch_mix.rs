use ramguard_core::policy::levels::levels;
use ramguard_core::policy::sim::{Host, Script, Sim, SimTask};
use ramguard_core::policy::{Action, Config};
use ramguard_core::Bytes;
use std::time::Duration;
const MIXES: &str = include_str!("../../../bench/mixes.json");
fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}
#[test]
fn trace() {
    let v: serde_json::Value = serde_json::from_str(MIXES).unwrap();
    let target = Bytes(v["target"].as_u64().unwrap());
    let which: usize = std::env::var("MIX")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(1);
    let m = &v["mixes"][which];
    let rows = m["tasks (peak, ramp s, hold s, leak per s)"]
        .as_array()
        .unwrap();
    let tasks: Vec<SimTask> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.as_array().unwrap();
            let n = |k: usize| r[k].as_f64().unwrap();
            let mut s = Script::ramp(Bytes(n(0) as u64), secs(n(1)), secs(n(2)), 0);
            if n(3) > 0.0 {
                s.points = vec![
                    (Duration::ZERO, Bytes::ZERO),
                    (secs(n(1)), Bytes(n(0) as u64)),
                    (secs(n(1) + n(2)), Bytes((n(0) + n(3) * n(2)) as u64)),
                ];
            }
            SimTask::new(s).features(vec![
                n(0),
                n(1),
                n(2),
                i as f64,
                if n(3) > 0.0 { n(3) } else { f64::NAN },
            ])
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        println!("task {i}: {:?}", r);
    }
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
    };
    let mut sim = Sim::new(cfg, Host::new(target), tasks);
    let r = sim.drive();
    for (t, a) in sim.log() {
        match a {
            Action::Start {
                task, predicted, ..
            } => println!("{:6.2} start {task} pred {predicted}", t.as_secs_f64()),
            Action::Finished {
                task, class, peak, ..
            } => println!("{:6.2} fin {task} {class:?} {peak}", t.as_secs_f64()),
            Action::Pause { task } => println!("{:6.2} pause {task}", t.as_secs_f64()),
            Action::Resume { task } => println!("{:6.2} resume {task}", t.as_secs_f64()),
            Action::Term { task, .. } => println!("{:6.2} term {task}", t.as_secs_f64()),
            _ => {}
        }
    }
    println!("makespan {:?} bound {}", r.makespan, m["bound_s"]);
}
