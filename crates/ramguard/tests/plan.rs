//! `ramguard plan`: replaying a recorded sweep through the policy predicts a real rerun.

mod common;

use std::time::Instant;

use common::{memhog, stderr, stdout, Work};
use serde_json::Value;

/// Six tasks of 150/250/350 MiB holding 1 or 2 s.
fn sweep_args<'a>(hog: &'a str, mem: &'a str, name: &'a str) -> Vec<&'a str> {
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
        "--",
        hog,
        "--peak",
        "{1}",
        "--ramp",
        "500ms",
        "--hold",
        "{2}",
        ":::",
        "150M",
        "250M",
        "350M",
        ":::",
        "1s",
        "2s",
    ]
}

#[test]
fn plan_predicts_the_makespan_of_a_real_rerun_with_a_smaller_budget() {
    let work = Work::new();
    let hog = memhog();
    let hog = hog.to_str().unwrap();
    let out = work.run(&sweep_args(hog, "1G", "recorded"));
    assert!(out.status.success(), "{}", stderr(&out));

    let out = work.run(&["plan", "recorded", "--mem", "600M", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["tasks"], 6);
    let predicted = v["predicted"]["makespan_s"].as_f64().unwrap();
    assert!(v["predicted"]["max_running"].as_u64().unwrap() <= 3);
    let table = v["table"].as_array().unwrap();
    assert_eq!(table.len(), 4);
    assert_eq!(table[0]["machine"].as_u64().unwrap(), 4 << 30);
    // 4 GiB holds all four -j slots of these tasks: it finishes no later than 600 MiB.
    assert!(table[0]["makespan_s"].as_f64().unwrap() <= predicted);
    assert!(table[0]["fit_at_once"].as_u64().unwrap() >= 9);

    let started = Instant::now();
    let out = work.run(&sweep_args(hog, "600M", "rerun"));
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
