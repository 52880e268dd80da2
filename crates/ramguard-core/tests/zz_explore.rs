use ramguard_core::policy::levels::levels;
use ramguard_core::policy::predict::Observation;
use ramguard_core::policy::sim::{Host, Script, Sim, SimTask};
use ramguard_core::policy::{Action, Config};
use ramguard_core::Bytes;
use std::time::Duration;
fn mixes() -> String {
    std::fs::read_to_string(std::env::var("MIXES").unwrap_or("../../bench/mixes.json".into()))
        .unwrap()
}
fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}
#[test]
fn explore() {
    let want = std::env::var("MIX").ok();
    let v: serde_json::Value = serde_json::from_str(&mixes()).unwrap();
    let target = Bytes(v["target"].as_u64().unwrap());
    let mut cold = vec![];
    let mut warm = vec![];
    for m in v["mixes"].as_array().unwrap() {
        let name = format!("{}-{}", m["mix"].as_str().unwrap(), m["seed"]);
        if want.as_ref().is_some_and(|w| *w != name) {
            continue;
        }
        let rows = m["tasks (peak, ramp s, hold s, leak per s)"]
            .as_array()
            .unwrap();
        let bound = m["bound_s"].as_f64().unwrap();
        let mut tasks = vec![];
        let mut hist = vec![];
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_array().unwrap();
            let num = |k: usize| r[k].as_f64().unwrap();
            let (peak, ramp, hold, leak) = (num(0), num(1), num(2), num(3));
            let mut script = Script::ramp(Bytes(peak as u64), secs(ramp), secs(hold), 0);
            if leak > 0.0 {
                script.points = vec![
                    (Duration::ZERO, Bytes::ZERO),
                    (secs(ramp), Bytes(peak as u64)),
                    (secs(ramp + hold), Bytes((peak + leak * hold) as u64)),
                ];
            }
            let mut f = vec![
                peak,
                ramp,
                hold,
                i as f64,
                if leak > 0.0 { leak } else { f64::NAN },
            ];
            if std::env::var_os("REV").is_some() {
                f.rotate_left(1);
            }
            hist.push((
                f.clone(),
                Observation {
                    peak: Bytes((peak + leak * hold) as u64),
                    duration: Some(secs(ramp + hold)),
                    time_to_peak: Some(secs(if leak > 0.0 { ramp + hold } else { ramp * 0.95 })),
                },
            ));
            tasks.push(SimTask::new(script).features(f));
        }
        for with_history in [false, true] {
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
            let mut sim =
                Sim::new(cfg, Host::new(target), tasks.clone()).sampling_like_the_supervisor();
            if with_history {
                sim.policy_mut().learn_from_history(&hist);
            }
            let r = sim.drive();
            if want.is_some() {
                for (t, a) in sim.log() {
                    match a {
                        Action::Note(_) => {}
                        a => println!("{:6.2} {:?}", t.as_secs_f64(), a),
                    }
                }
            }
            let ratio = r.makespan.as_secs_f64() / bound;
            println!(
                "{name} history={with_history}: {ratio:.2} brakes {} pauses {}",
                r.brakes, r.pauses
            );
            if with_history {
                warm.push(ratio)
            } else {
                cold.push(ratio)
            }
        }
    }
    cold.sort_by(f64::total_cmp);
    warm.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "median cold {:.3} warm {:.3} mean cold {:.3} warm {:.3} worst cold {:.2}",
        cold[cold.len() / 2],
        warm[warm.len() / 2],
        mean(&cold),
        mean(&warm),
        cold[cold.len() - 1]
    );
}
