//! `ramguard plan`: replaying a recorded sweep through the policy predicts a real rerun.

mod common;

use std::time::Instant;

use common::{memhog, stderr, stdout, Work};
use serde_json::Value;

/// Twelve tasks of 96–368 MiB ramping over 0.2–0.7 s and holding 1–3 s: the first scenario
/// of `bench/plan_accuracy.py` ("shrink to a third", seed 1). A sweep of few, fast-ramping,
/// alike tasks is a poor test of `plan`: whether the policy pauses or brakes one of them
/// there turns on a few milliseconds, and one brake moves the makespan by a third.
const TASKS: [(&str, &str, &str); 12] = [
    ("160M", "0.68s", "2.14s"),
    ("128M", "0.5s", "1.51s"),
    ("320M", "0.43s", "1.94s"),
    ("192M", "0.22s", "1.19s"),
    ("288M", "0.66s", "1.87s"),
    ("96M", "0.36s", "2.39s"),
    ("208M", "0.26s", "2.18s"),
    ("256M", "0.22s", "1.06s"),
    ("368M", "0.73s", "1.02s"),
    ("192M", "0.64s", "2.94s"),
    ("352M", "0.46s", "1.44s"),
    ("336M", "0.41s", "2.11s"),
];

/// Writes the sweep's task file (one memhog command a line) and returns its path.
fn tasks_file(work: &Work, hog: &str) -> String {
    let text: String = TASKS
        .iter()
        .enumerate()
        .map(|(i, (peak, ramp, hold))| {
            format!("{hog} --peak {peak} --ramp {ramp} --hold {hold} --result {i}\n")
        })
        .collect();
    let path = work.path().join("tasks.txt");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn sweep_args<'a>(tasks: &'a str, mem: &'a str, name: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--name",
        name,
        "--mem",
        mem,
        "-j",
        "4",
        "--progress",
        "none",
        "--tasks",
        tasks,
    ]
}

#[test]
fn plan_predicts_the_makespan_of_a_real_rerun_with_a_smaller_budget() {
    let work = Work::new();
    let hog = memhog();
    let tasks = tasks_file(&work, hog.to_str().unwrap());
    let out = work.run(&sweep_args(&tasks, "2G", "recorded"));
    assert!(out.status.success(), "{}", stderr(&out));

    let out = work.run(&["plan", "recorded", "--mem", "700M", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["tasks"], 12);
    let predicted = v["predicted"]["makespan_s"].as_f64().unwrap();
    assert!(v["predicted"]["max_running"].as_u64().unwrap() <= 4);
    let table = v["table"].as_array().unwrap();
    assert_eq!(table.len(), 4);
    assert_eq!(table[0]["machine"].as_u64().unwrap(), 4 << 30);
    // 4 GiB holds all four -j slots of these tasks: it finishes no later than 700 MiB.
    assert!(table[0]["makespan_s"].as_f64().unwrap() <= predicted);
    assert!(table[0]["fit_at_once"].as_u64().unwrap() >= 8);

    let started = Instant::now();
    let out = work.run(&sweep_args(&tasks, "700M", "rerun"));
    assert!(out.status.success(), "{}", stderr(&out));
    let real = started.elapsed().as_secs_f64();
    let err = (predicted - real).abs() / real;
    assert!(
        err <= 0.35,
        "predicted {predicted:.1} s, the real rerun took {real:.1} s ({:.0}% off)",
        err * 100.0
    );
}

#[test]
fn plan_prints_the_budget_table_and_refuses_bad_input() {
    let work = Work::new();
    let out = work.run(&["plan", "--mem", "1G"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: no journal"),
        "{}",
        stderr(&out)
    );
    let hog = memhog();
    let out = work.run(&[
        "run",
        "--progress",
        "none",
        "--",
        hog.to_str().unwrap(),
        "--peak",
        "{}",
        "--hold",
        "200ms",
        ":::",
        "32M",
        "64M",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = work.run(&["plan", "--mem", "80%"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must be a size"), "{}", stderr(&out));
    let out = work.run(&["plan", "--mem", "1G", "-j", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = work.run(&["plan", "--mem", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    let out = work.run(&["plan", "--mem", "1G"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "at --mem 1 GiB -j",
        "budget table",
        "4 GiB",
        "32 GiB",
        "makespan",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
}
