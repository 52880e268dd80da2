//! `ramguard run --executor slurm` end to end on a real Slurm cluster (`.ci/slurm.sh` starts
//! a single-node one: memory enforced by `jobacct_gather/linux` + `OverMemoryKill`).
//!
//! Without a cluster (sinfo fails) every test here prints why and passes as skipped;
//! under `CI=true` they fail instead, so CI cannot go green without running them. Each
//! test uses its own sweep name, so job names (`rg-<sweep>-<n>`) tell its jobs apart from
//! those of tests running beside it, and cancels whatever it left in the queue.
//!
//! Measured on the CI cluster (4 CPUs, 3 GiB, 1 s accounting): see the figures the sizing
//! test prints (`requested / true peak`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Returns true if a Slurm cluster answers; otherwise says why the test is skipped (and
/// fails under CI, where `.ci/run` starts one).
fn slurm_or_skip(test: &str) -> bool {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if ok {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: no Slurm cluster reachable (sinfo failed) under CI=true; .ci/slurm.sh should have started one");
    }
    eprintln!(
        "skipping {test}: no Slurm cluster reachable (sinfo failed); start one with `bash .ci/slurm.sh start`"
    );
    false
}

/// A sweep name no other test run on the same cluster uses: the jobs are named after the
/// sweep, and the tests find (and cancel) their jobs by the prefix `rg-<sweep>-`, so two
/// checkouts testing at once on one cluster must not see each other's jobs (`t-states_42`
/// is not matched by `rg-t-states-`).
fn unique_sweep(base: &str) -> String {
    format!("{base}_{}", std::process::id())
}

/// Jobs of this sweep still in Slurm's queue.
fn queued(sweep: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%A %j %T"])
        .output()
        .unwrap();
    let prefix = format!("rg-{sweep}-");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(str::to_string)
        .collect()
}

/// Cancels this sweep's jobs on drop, whatever the test's outcome.
struct JobsGuard(String);

impl Drop for JobsGuard {
    fn drop(&mut self) {
        let ids: Vec<String> = queued(&self.0)
            .iter()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("scancel").args(&ids).status();
        }
    }
}

fn results(w: &Work, sweep: &str) -> Vec<Value> {
    let out = w.run(&["results", sweep, "--format", "json"]);
    assert!(out.status.success(), "results failed: {}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["tasks"].as_array().cloned().unwrap()
}

/// A task script whose memory its parameter does not reveal (so no model can guess it):
/// `big` needs 600 MiB, the others about 200 MiB (±2%). It writes a result.
fn hog_script(dir: &Path) -> PathBuf {
    let path = dir.join("hog.sh");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in big) peak=600M ;; b) peak=204M ;; c) peak=196M ;; *) peak=200M ;; esac\n\
         exec {} --peak $peak --hold \"${{HOLD:-2s}}\" --result \"{{\\\"name\\\": \\\"$1\\\"}}\"\n",
        memhog().display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// A shim directory that logs every `sacct` call's arguments before running the real one.
fn sacct_shim(dir: &Path) -> (PathBuf, PathBuf) {
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v sacct"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = dir.join("shim");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("sacct.log");
    std::fs::write(
        bin.join("sacct"),
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
            log.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("sacct"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (PathBuf::from(path), log)
}

#[test]
fn a_sweep_through_slurm_sizes_jobs_from_peaks_and_escalates_an_underpredicted_task() {
    if !slurm_or_skip(
        "a_sweep_through_slurm_sizes_jobs_from_peaks_and_escalates_an_underpredicted_task",
    ) {
        return;
    }
    let w = Work::new();
    let sweep = &unique_sweep("t-sizing");
    let sweep = sweep.as_str();
    let _guard = JobsGuard(sweep.into());
    let hog = hog_script(w.path());
    let (path, sacct_log) = sacct_shim(w.path());
    let out = w
        .ramguard()
        .env("PATH", &path)
        .args([
            "run",
            "--executor",
            "slurm",
            "--slurm-poll",
            "1s",
            "-j",
            "3",
            "--name",
            sweep,
            "--json",
            "--progress",
            "plain",
            "--",
        ])
        .arg(&hog)
        .args([
            "{}", ":::", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "big",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    let s = summary(&out);
    assert_eq!(s["done"], 12, "{s}");
    assert_eq!(s["failed"], 0);

    // Every task once, results in the local journal; only `big` took a second job.
    let rows = results(&w, sweep);
    assert_eq!(rows.len(), 12);
    for r in &rows {
        assert_eq!(r["state"], "done", "{r}");
        let name = r["result"]["name"].as_str().unwrap_or_default();
        let expected_attempts = if name == "big" { 2 } else { 1 };
        assert_eq!(r["attempts"], expected_attempts, "{r}");
    }

    // The escalation: one memory kill of `big` (last, so that its peak does not raise the
    // p90 that sizes the others), resubmitted with its measured peak (not a
    // doubling of what it asked), then done.
    let jobs = s["slurm"]["jobs"].as_array().unwrap();
    let big: Vec<&Value> = jobs.iter().filter(|j| j["task"] == 12).collect();
    assert_eq!(big.len(), 2, "{big:?}");
    assert_eq!(big[0]["class"], "oom_killed", "{big:?}");
    assert_eq!(big[1]["class"], "done");
    let first_ask = big[0]["requested"].as_u64().unwrap();
    let second_ask = big[1]["requested"].as_u64().unwrap();
    let peak = big[1]["peak"].as_u64().unwrap();
    assert!(
        first_ask < 600 << 20,
        "big was not under-predicted: {first_ask}"
    );
    // Measured, not doubled: the first kill's peak (plus, if it was still growing, half a
    // second more of its growth: at least 25%, at most 75%).
    assert!(
        second_ask >= peak,
        "escalated ask {second_ask} below the peak {peak}"
    );
    let killed_at = big[0]["peak"].as_u64().unwrap();
    eprintln!(
        "big: asked {} MiB, killed at {} MiB; asked {} MiB, done at {} MiB",
        first_ask >> 20,
        killed_at >> 20,
        second_ask >> 20,
        peak >> 20
    );
    assert!(
        (second_ask as f64) <= 1.02 * 1.75 * killed_at as f64 + (32 << 20) as f64,
        "escalated by more than it was seen to need: {second_ask} after a kill at {killed_at}"
    );
    assert!(err.contains("went past its --mem"), "{err}");

    // Sizing: after the first few tasks, what a job sized by the model asks is within 1.3x
    // its true peak (escalated jobs are reported apart).
    let ratio = &s["slurm"]["mem_ratio"];
    eprintln!("requested / true peak: {ratio}");
    let max = ratio["after_warmup_max"]
        .as_f64()
        .expect("jobs sized after warm-up");
    assert!(
        max <= 1.3,
        "requested / true peak after warm-up {max} > 1.3"
    );
    assert!(ratio["after_warmup_jobs"].as_u64().unwrap() >= 3, "{ratio}");

    // Polling respects the cluster: one sacct per interval for every job in flight.
    let calls = std::fs::read_to_string(&sacct_log).unwrap();
    let ids_per_call: Vec<usize> = calls
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|ids| ids.split(',').count())
        .collect();
    assert!(
        ids_per_call.iter().any(|&n| n >= 2),
        "no sacct call asked about several jobs: {calls}"
    );
    let elapsed_s = jobs.len() as f64; // a bound only; the real check is per-call batching
    assert!(!ids_per_call.is_empty(), "{elapsed_s}");
    assert!(queued(sweep).is_empty());
}

#[test]
fn ctrl_c_cancels_the_jobs_in_flight_and_a_rerun_resumes() {
    if !slurm_or_skip("ctrl_c_cancels_the_jobs_in_flight_and_a_rerun_resumes") {
        return;
    }
    let w = Work::new();
    let sweep = &unique_sweep("t-ctrlc");
    let sweep = sweep.as_str();
    let _guard = JobsGuard(sweep.into());
    let hog = hog_script(w.path());
    let hold = w.path().join("hold");
    std::fs::write(&hold, "120s").unwrap();
    // The same command both times; how long tasks hold comes from a file the test changes.
    let run = |w: &Work| {
        let mut c = w.ramguard();
        c.env("HOLD_FILE", &hold)
            .args([
                "run",
                "--executor",
                "slurm",
                "--slurm-poll",
                "1s",
                "-j",
                "2",
                "--estimate",
                "300M",
                "--name",
                sweep,
                "--json",
                "--progress",
                "plain",
                "--",
                "sh",
                "-c",
            ])
            .arg(format!(
                "HOLD=$(cat \"$HOLD_FILE\") exec {} \"$0\"",
                hog.display()
            ))
            .args(["{}", ":::", "a", "b", "c"]);
        c
    };
    let child = run(&w)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let guard = ChildGuard(child);
    assert!(
        wait_until(Duration::from_secs(60), || {
            queued(sweep)
                .iter()
                .filter(|l| l.ends_with("RUNNING"))
                .count()
                == 2
        }),
        "two jobs never ran: {:?}",
        queued(sweep)
    );
    // `status` on the submitting host sees the jobs' memory as their wrappers measure it.
    let running_rss = || -> Vec<u64> {
        let out = w.run(&["status", sweep, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["running"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["rss"].as_u64()).collect())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            let rss = running_rss();
            rss.len() == 2 && rss.iter().all(|&r| r >= 150 << 20)
        }),
        "status never showed both jobs' memory: {:?}",
        running_rss()
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = wait_output(guard, Duration::from_secs(90));
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(130), "{err}");
    // Ctrl-C leaves no job in the queue.
    assert!(
        queued(sweep).is_empty(),
        "left in the queue: {:?}",
        queued(sweep)
    );
    let s = summary(&out);
    assert_eq!(s["interrupted"], true);
    let rows = results(&w, sweep);
    let interrupted = rows.iter().filter(|r| r["state"] == "interrupted").count();
    assert_eq!(interrupted, 2, "{rows:?}");

    // The rerun runs everything that is not done, and nothing twice.
    std::fs::write(&hold, "1s").unwrap();
    let out = run(&w).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = results(&w, sweep);
    assert!(rows.iter().all(|r| r["state"] == "done"), "{rows:?}");
    assert!(queued(sweep).is_empty());
}

#[test]
fn a_rerun_adopts_the_jobs_of_a_killed_submitter_instead_of_running_them_twice() {
    if !slurm_or_skip("a_rerun_adopts_the_jobs_of_a_killed_submitter_instead_of_running_them_twice")
    {
        return;
    }
    let w = Work::new();
    let sweep = &unique_sweep("t-adopt");
    let sweep = sweep.as_str();
    let _guard = JobsGuard(sweep.into());
    let hog = hog_script(w.path());
    let run = |w: &Work| {
        let mut c = w.ramguard();
        c.env("HOLD", "6s").args([
            "run",
            "--executor",
            "slurm",
            "--slurm-poll",
            "1s",
            "-j",
            "2",
            "--estimate",
            "300M",
            "--name",
            sweep,
            "--progress",
            "plain",
            "--",
        ]);
        c.arg(&hog).args(["{}", ":::", "a", "b", "c"]);
        c
    };
    let child = run(&w)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(child);
    assert!(wait_until(Duration::from_secs(60), || {
        queued(sweep)
            .iter()
            .filter(|l| l.ends_with("RUNNING"))
            .count()
            == 2
    }));
    let jobs: Vec<String> = queued(sweep)
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    drop(guard); // SIGKILL: nothing cancels the jobs
    assert_eq!(
        queued(sweep).len(),
        2,
        "the jobs should outlive a killed submitter"
    );

    let out = run(&w).output().unwrap();
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("adopting 2 job(s) of an earlier run"), "{err}");
    for job in &jobs {
        assert!(
            err.contains(&format!("job {job} (submitted by an earlier run)")),
            "{err}"
        );
    }
    // Only the task that never started is submitted.
    assert_eq!(
        err.lines().filter(|l| l.contains(" submit ")).count(),
        1,
        "{err}"
    );
    let rows = results(&w, sweep);
    assert!(rows.iter().all(|r| r["state"] == "done"), "{rows:?}");
    // Results of adopted jobs come back too.
    assert!(
        rows.iter().all(|r| r["result"]["name"].is_string()),
        "{rows:?}"
    );
    assert!(queued(sweep).is_empty());
}

#[test]
fn slurm_ends_map_to_exit_classes_a_foreign_scancel_and_a_timeout() {
    if !slurm_or_skip("slurm_ends_map_to_exit_classes_a_foreign_scancel_and_a_timeout") {
        return;
    }
    let w = Work::new();
    let sweep = &unique_sweep("t-states");
    let sweep = sweep.as_str();
    let _guard = JobsGuard(sweep.into());
    // `cancel` holds until the test cancels it; `slow` outlives its one-minute --time.
    let child = w
        .ramguard()
        .args([
            "run",
            "--executor",
            "slurm",
            "--slurm-poll",
            "1s",
            "--estimate",
            "64M",
            "--timeout",
            "1m",
            "--name",
            sweep,
            "--json",
            "--progress",
            "plain",
            "--",
        ])
        .arg(memhog())
        .args(["--peak", "8M", "--hold", "{}", ":::", "300s", "301s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = ChildGuard(child);
    assert!(wait_until(Duration::from_secs(60), || {
        queued(sweep)
            .iter()
            .filter(|l| l.ends_with("RUNNING"))
            .count()
            == 2
    }));
    let first = queued(sweep)
        .iter()
        .find(|l| l.contains(&format!("rg-{sweep}-1 ")))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap();
    assert!(Command::new("scancel")
        .arg(&first)
        .status()
        .unwrap()
        .success());
    // Slurm checks time limits about every 30 s: the other ends within two minutes or so.
    let out = wait_output(guard, Duration::from_secs(200));
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    let rows = results(&w, sweep);
    let by = |v: &str| {
        rows.iter()
            .find(|r| r["params"]["1"] == v)
            .unwrap_or_else(|| panic!("{rows:?}"))
            .clone()
    };
    let cancelled = by("300s");
    assert_eq!(cancelled["state"], "failed");
    assert_eq!(cancelled["exit"], "signaled", "{cancelled}");
    assert!(
        cancelled["reason"]
            .as_str()
            .unwrap()
            .contains("cancelled outside ramguard"),
        "{cancelled}"
    );
    let slow = by("301s");
    assert_eq!(slow["exit"], "timed_out", "{slow}");
    assert!(
        slow["reason"].as_str().unwrap().contains("Slurm: TIMEOUT"),
        "{slow}"
    );
    // A timed-out job may still be listed as COMPLETING for a moment after sacct says
    // TIMEOUT (slurmd is still killing its steps): it leaves the queue by itself.
    assert!(
        wait_until(Duration::from_secs(30), || queued(sweep).is_empty()),
        "{:?}",
        queued(sweep)
    );
}

#[test]
fn without_accounting_jobs_end_by_squeue_and_their_exit_files() {
    if !slurm_or_skip("without_accounting_jobs_end_by_squeue_and_their_exit_files") {
        return;
    }
    let w = Work::new();
    let sweep = &unique_sweep("t-nosacct");
    let sweep = sweep.as_str();
    let _guard = JobsGuard(sweep.into());
    // A cluster without slurmdbd: sacct fails.
    let bin = w.path().join("shim");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("sacct"),
        "#!/bin/sh\necho 'sacct: error: Problem talking to the database' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("sacct"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = w
        .ramguard()
        .env("PATH", path)
        .args([
            "run",
            "--executor",
            "slurm",
            "--slurm-poll",
            "1s",
            "--estimate",
            "100M",
            "--name",
            sweep,
            "--progress",
            "plain",
            "--",
            "sh",
            "-c",
            "exit $0",
            ":::",
            "0",
            "3",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("falling back to squeue"), "{err}");
    let rows = results(&w, sweep);
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["params"]["1"].as_str().unwrap_or("?"),
                r["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(states.contains(&("0", "done")), "{rows:?}");
    assert!(states.contains(&("3", "failed")), "{rows:?}");
    let failed = rows.iter().find(|r| r["state"] == "failed").unwrap();
    assert_eq!(failed["code"], 3, "{failed}");
}

#[test]
fn an_unknown_partition_is_one_error_line_and_writes_nothing() {
    if !slurm_or_skip("an_unknown_partition_is_one_error_line_and_writes_nothing") {
        return;
    }
    let w = Work::new();
    let out = w.run(&[
        "run",
        "--executor",
        "slurm",
        "--partition",
        "no-such-part",
        "--",
        "true",
        "{}",
        ":::",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: --partition no-such-part: no such partition"),
        "{err}"
    );
    assert!(!w.journal().exists());
}

#[test]
fn an_argument_sbatch_refuses_is_one_error_line_and_writes_nothing() {
    if !slurm_or_skip("an_argument_sbatch_refuses_is_one_error_line_and_writes_nothing") {
        return;
    }
    let w = Work::new();
    let out = w.run(&[
        "run",
        "--executor",
        "slurm",
        "--slurm-arg=--no-such-option",
        "--",
        "true",
        "{}",
        ":::",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: sbatch refuses --slurm-arg --no-such-option: "),
        "{err}"
    );
    assert!(!w.journal().exists());
}

#[test]
fn slurm_flags_without_the_slurm_executor_are_refused() {
    let w = Work::new();
    let out = w.run(&["run", "--partition", "debug", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "error: --partition needs --executor slurm"
    );
    assert!(!w.journal().exists());
}

/// Waits for a child to exit (at most `limit`), then collects its output.
fn wait_output(mut guard: ChildGuard, limit: Duration) -> std::process::Output {
    let ok = wait_until(limit, || matches!(guard.0.try_wait(), Ok(Some(_))));
    assert!(ok, "ramguard did not exit within {limit:?}");
    let child = std::mem::replace(&mut guard.0, Command::new("true").spawn().unwrap());
    child.wait_with_output().unwrap()
}
