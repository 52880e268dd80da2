//! What ramguard does to go as fast as `xargs -P` on trivial tasks must not show in the
//! tasks themselves: the supervisor's thread asks the scheduler for a short slice (so it
//! refills slots as soon as it is woken), and its tasks must not inherit it.

mod common;

use common::*;

/// The `se.slice` line of a `/proc/PID/sched` text, in nanoseconds.
fn slice_of(sched: &str) -> Option<u64> {
    sched
        .lines()
        .find(|l| l.starts_with("se.slice"))?
        .rsplit(':')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn tasks_run_with_the_default_scheduler_slice_not_the_supervisors_short_one() {
    // The test's own thread has the default slice (kernels without EEVDF slices or
    // without /proc/PID/sched have nothing to compare).
    let Some(default) = std::fs::read_to_string("/proc/thread-self/sched")
        .ok()
        .as_deref()
        .and_then(slice_of)
    else {
        return;
    };
    let w = Work::new();
    let out = w.run(&[
        "run",
        "--log-dir",
        "logs",
        "--progress",
        "none",
        "--",
        "cat",
        "/proc/self/sched",
    ]);
    assert!(out.status.success(), "run failed: {}", stderr(&out));
    let log = std::fs::read_to_string(only_file(&w.path().join("logs"), ".1.out")).unwrap();
    assert_eq!(
        slice_of(&log),
        Some(default),
        "the task ran with another slice than the default:\n{log}"
    );
}
