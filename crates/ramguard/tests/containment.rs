//! Containment without the task's cooperation (issue 19): a daemon that double-forks, calls
//! `setsid` and starts with an empty environment (`env -i`, so it carries no ramguard token)
//! is still its task's: counted in its peak, killed with it after `--timeout` and
//! `--task-mem`, and gone when ramguard itself is SIGKILLed. Every test kills what it
//! started, by pid, even when it fails; conditions are awaited with deadlines.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A task whose first process starts a double-forked, setsid'd, empty-environment daemon
/// holding `daemon_mem` (it ignores SIGTERM), writes the daemon's pid to `pid_file`, then
/// sleeps for a minute.
fn daemonizing_task(pid_file: &Path, daemon_mem: &str) -> Vec<String> {
    let hog = memhog();
    let tmp = pid_file.with_extension("tmp");
    let inner = format!(
        "echo $$ > {tmp}; /bin/mv {tmp} {pid}; exec {hog} --peak {daemon_mem} --hold 1h --ignore-term",
        tmp = tmp.display(),
        pid = pid_file.display(),
        hog = hog.display(),
    );
    let script = format!(
        "/usr/bin/env -i /usr/bin/setsid -f /bin/sh -c {}; exec sleep 60",
        shell_words::quote(&inner)
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn only_result(w: &Work) -> Value {
    let out = w.run(&["results", "--format", "json"]);
    assert!(out.status.success(), "results failed: {}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["tasks"][0].clone()
}

/// Runs `ramguard run ARGS -- TASK` to its end (failing after a deadline rather than
/// hanging), killing the daemon afterwards in any case.
fn run_with_daemon(
    w: &Work,
    args: &[&str],
    daemon_mem: &str,
) -> (std::process::Output, u32, PidGuard) {
    let pid_file = w.path().join("daemon.pid");
    let task = daemonizing_task(&pid_file, daemon_mem);
    let (out_path, err_path) = (w.path().join("run.out"), w.path().join("run.err"));
    let child = w
        .ramguard()
        .args(["run", "--progress", "plain", "--json"])
        .args(args)
        .arg("--")
        .args(&task)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut run = ChildGuard(child);
    let mut guard = PidGuard::default();
    let mut status = None;
    let ended = wait_until(Duration::from_secs(30), || {
        status = run.0.try_wait().unwrap();
        status.is_some()
    });
    if let Ok(text) = std::fs::read_to_string(&pid_file) {
        guard.0.push(text.trim().parse().unwrap());
    }
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(ended, "run waited for the daemon\n{err}");
    let out = std::process::Output {
        status: status.unwrap(),
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: err.into_bytes(),
    };
    let daemon = read_pid(&pid_file);
    (out, daemon, guard)
}

#[test]
fn an_empty_environment_setsid_daemon_is_counted_and_killed_at_the_timeout() {
    let w = Work::new();
    let (out, daemon, _guard) =
        run_with_daemon(&w, &["--timeout", "2s", "--grace", "300ms"], "120M");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        wait_until(Duration::from_secs(3), || !alive(daemon)),
        "daemon {daemon} outlived the --timeout kill\n{err}"
    );
    let r = only_result(&w);
    assert_eq!(r["exit"], "timed_out", "{r}");
    // The daemon's 120 MiB is the task's: its peak counts it.
    let peak = r["peak"].as_u64().unwrap();
    assert!(
        peak >= 110 << 20,
        "peak {peak} leaves the daemon out\n{err}"
    );
    // It ignored SIGTERM, so it outlived the first process: that is said, not hidden.
    assert!(
        err.contains("killed 1 leftover process(es)"),
        "no word of the leftover\n{err}"
    );
    let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(summary["leftovers_killed"], 1, "{summary}");
    // And journaled as an event.
    let status = w.run(&["status"]);
    assert!(
        stdout(&status).contains("leftovers_killed 1"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn an_empty_environment_setsid_daemon_counts_toward_the_task_cap() {
    let w = Work::new();
    let (out, daemon, _guard) =
        run_with_daemon(&w, &["--task-mem", "64M", "--grace", "300ms"], "120M");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        wait_until(Duration::from_secs(3), || !alive(daemon)),
        "daemon {daemon} outlived the --task-mem kill\n{err}"
    );
    let r = only_result(&w);
    assert_eq!(r["exit"], "over_cap", "{r}");
}

#[test]
fn an_empty_environment_setsid_daemon_dies_when_ramguard_is_sigkilled() {
    let w = Work::new();
    let pid_file = w.path().join("daemon.pid");
    let task = daemonizing_task(&pid_file, "16M");
    let child = w
        .ramguard()
        .args(["run", "--progress", "plain", "--"])
        .args(&task)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let mut pids = PidGuard::default();
    let mut lines = BufReader::new(guard.0.stderr.take().unwrap()).lines();
    let root: u32 = loop {
        let line = lines.next().expect("ramguard ended early").unwrap();
        if let Some(rest) = line.split(" pid ").nth(1) {
            break rest.split(',').next().unwrap().trim().parse().unwrap();
        }
    };
    pids.0.push(root);
    assert!(wait_until(Duration::from_secs(5), || pid_file.exists()));
    let daemon = read_pid(&pid_file);
    pids.0.push(daemon);
    // At once: ramguard may not even have walked the tree since the daemon appeared.
    guard.0.kill().unwrap();
    guard.0.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || !alive(daemon)),
        "daemon {daemon} outlived a SIGKILLed ramguard"
    );
    assert!(
        wait_until(Duration::from_secs(3), || !alive(root)),
        "task root {root} outlived a SIGKILLed ramguard"
    );
}

#[test]
fn twenty_empty_environment_daemons_die_with_a_sigkilled_ramguard() {
    // Issue 19: after ramguard was SIGKILLed, 50 children started with an empty environment
    // were still alive. Twenty here, each setsid'd and double-forked by `setsid -f`.
    let w = Work::new();
    let pids_file = w.path().join("pids");
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
         /usr/bin/env -i /usr/bin/setsid -f /bin/sh -c 'echo $$ >> {p}; exec sleep 300'; \
         done; exec sleep 60",
        p = pids_file.display()
    );
    let child = w
        .ramguard()
        .args(["run", "--progress", "plain", "--", "/bin/sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let mut pids = PidGuard::default();
    let _stderr = guard.0.stderr.take();
    let read = |pids: &mut PidGuard| -> usize {
        let text = std::fs::read_to_string(&pids_file).unwrap_or_default();
        pids.0 = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        pids.0.len()
    };
    assert!(
        wait_until(Duration::from_secs(10), || read(&mut pids) == 20),
        "only {} daemons started",
        read(&mut pids)
    );
    guard.0.kill().unwrap();
    guard.0.wait().unwrap();
    let survivors = || {
        pids.0
            .iter()
            .copied()
            .filter(|p| alive(*p))
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(3), || survivors().is_empty()),
        "survived a SIGKILLed ramguard: {:?}",
        survivors()
    );
}

/// The children of `pid` whose command line contains `needle`.
fn children_running(pid: u32, needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for child in text
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let cmd = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(needle) && alive(child) {
                out.push(child);
            }
        }
    }
    out
}

#[test]
fn a_killed_sentinel_is_replaced_so_a_later_sigkill_still_takes_the_daemon() {
    let w = Work::new();
    let pid_file = w.path().join("daemon.pid");
    let task = daemonizing_task(&pid_file, "16M");
    let child = w
        .ramguard()
        .args(["run", "--progress", "none", "--"])
        .args(&task)
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let mut pids = PidGuard::default();
    let ramguard = guard.0.id();
    assert!(wait_until(Duration::from_secs(5), || pid_file.exists()));
    let daemon = read_pid(&pid_file);
    pids.0.push(daemon);
    let mut first = Vec::new();
    assert!(wait_until(Duration::from_secs(3), || {
        first = children_running(ramguard, "__sentinel");
        first.len() == 1
    }));
    kill(first[0]);
    let mut second = Vec::new();
    assert!(
        wait_until(Duration::from_secs(3), || {
            second = children_running(ramguard, "__sentinel");
            second.len() == 1 && second != first
        }),
        "no new sentinel after {first:?} was killed: {second:?}"
    );
    pids.0.extend(&second);
    guard.0.kill().unwrap();
    guard.0.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || !alive(daemon)),
        "daemon {daemon} outlived ramguard after its first sentinel was killed"
    );
}
