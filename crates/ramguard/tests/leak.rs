//! A leaking task is flagged by `run` (and `status`) while it runs, before it reaches its cap.

mod common;

use common::{memhog, stderr, stdout, Work};

#[test]
fn run_flags_a_leaking_task_before_it_hits_its_cap() {
    let work = Work::new();
    let hog = memhog();
    // Ramps to 64 MiB, then leaks 40 MiB/s: it reaches the 400 MiB cap after some 9 s.
    let out = work.run(&[
        "run",
        "--mem",
        "1G",
        "--task-mem",
        "400M",
        "--progress",
        "plain",
        "--",
        hog.to_str().unwrap(),
        "--peak",
        "64M",
        "--ramp",
        "300ms",
        "--hold",
        "12s",
        "--leak",
        "{1}",
        ":::",
        "40M",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    let leak = lines
        .iter()
        .position(|l| l.contains("leak    #1 40M"))
        .unwrap_or_else(|| panic!("no leak line:\n{err}"));
    let capped = lines
        .iter()
        .position(|l| l.contains("failed") && l.contains("#1 40M") && l.contains("cap"))
        .unwrap_or_else(|| panic!("the leaking task was not stopped at its cap:\n{err}"));
    assert!(leak < capped, "flagged after the cap:\n{err}");
    let line = lines[leak];
    assert!(
        line.contains("memory keeps rising after its ramp"),
        "{line}"
    );
    assert!(line.contains("reaches its cap 400 MiB in"), "{line}");
    let rate: f64 = line
        .split("+")
        .nth(1)
        .and_then(|r| r.split(" MiB/s").next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line}"));
    assert!((30.0..=50.0).contains(&rate), "{line}");
    assert!(
        !err.contains("leak    #2"),
        "the steady task is not a leak:\n{err}"
    );
    // The flag is journaled, so report (and status) see it too.
    let out = work.run(&["report", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["leaks"].as_array().unwrap().len(), 1, "{}", v["leaks"]);
}

#[test]
fn status_shows_a_running_task_leaking_with_its_time_to_the_cap() {
    let work = Work::new();
    let hog = memhog();
    let child = work
        .ramguard()
        .args([
            "run",
            "--mem",
            "1G",
            "--task-mem",
            "400M",
            "--progress",
            "none",
            "--",
            hog.to_str().unwrap(),
            "--peak",
            "64M",
            "--ramp",
            "300ms",
            "--hold",
            "20s",
            "--leak",
            "40M",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut run = common::ChildGuard(child);
    let mut seen = None;
    let found = common::wait_until(std::time::Duration::from_secs(15), || {
        if matches!(run.0.try_wait(), Ok(Some(_))) {
            return true;
        }
        let out = work.run(&["status", "--json"]);
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&stdout(&out)) else {
            return false;
        };
        let leaks = v["leaks"].as_array().cloned().unwrap_or_default();
        if leaks.is_empty() {
            return false;
        }
        seen = Some((leaks[0].clone(), work.run(&["status"])));
        true
    });
    assert!(found);
    let (leak, text) = seen.expect("status showed no leak before the run ended");
    assert_eq!(leak["attempt"], 1);
    let to_cap = leak["to_cap_s"].as_f64().unwrap();
    assert!(to_cap > 0.0 && to_cap < 12.0, "{leak}");
    let text = stdout(&text);
    assert!(text.contains("leaking    "), "{text}");
    assert!(text.contains("reaches its cap in"), "{text}");
    let _ = run.0.kill();
}
