//! What ramguard does to go as fast as `xargs -P` on trivial tasks must not show in the
//! tasks themselves: the supervisor's thread asks the scheduler for a short slice (so it
//! refills slots as soon as it is woken), and its tasks must not inherit it, while they
//! still inherit ramguard's nice value as they always did.

mod common;

use common::*;

/// The value of a `name : value` line of a `/proc/PID/sched` text.
fn field(sched: &str, name: &str) -> Option<u64> {
    sched
        .lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))?
        .rsplit(':')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn tasks_run_with_the_default_scheduler_slice_and_ramguards_nice_value() {
    // The test's own thread has the default slice (kernels without EEVDF slices or
    // without /proc/PID/sched have nothing to compare).
    let Ok(own) = std::fs::read_to_string("/proc/thread-self/sched") else {
        return;
    };
    let (Some(default), Some(prio)) = (field(&own, "se.slice"), field(&own, "prio")) else {
        return;
    };
    let w = Work::new();
    // Started at a lower priority, as `nice ramguard run ...` would be.
    let out = std::process::Command::new("nice")
        .args(["-n", "3"])
        .arg(ramguard_bin())
        .args(["run", "--log-dir", "logs", "--progress", "none", "--"])
        .args(["cat", "/proc/self/sched"])
        .current_dir(w.path())
        .stdin(std::process::Stdio::null())
        .env("RAMGUARD_JOURNAL", w.journal())
        .output()
        .unwrap();
    assert!(out.status.success(), "run failed: {}", stderr(&out));
    let log = std::fs::read_to_string(only_file(&w.path().join("logs"), ".1.out")).unwrap();
    assert_eq!(
        field(&log, "se.slice"),
        Some(default),
        "the task ran with another slice than the default:\n{log}"
    );
    assert_eq!(
        field(&log, "prio"),
        Some((prio + 3).min(139)),
        "the task lost the nice value ramguard ran with:\n{log}"
    );
}
