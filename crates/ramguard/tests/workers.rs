//! Long-lived workers and what a task is told: `--recycle` restarting a leaking worker at
//! its cap, the environment that says which attempt this is and why the previous one
//! ended, `--stop-signal`, and the thread variables as one family. Real processes (memhog,
//! sh), small budgets; every run ends by itself and ramguard kills what it started.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Writes a shell script that appends what ramguard told it to `env.log`, then runs `body`.
fn script(w: &Work, body: &str) -> PathBuf {
    let path = w.path().join("task.sh");
    let log = w.path().join("env.log");
    let text = format!(
        "#!/bin/sh\n\
         echo \"task=$1 attempt=$RAMGUARD_ATTEMPT previous=${{RAMGUARD_PREVIOUS_END:-none}} \
         reason=$RAMGUARD_PREVIOUS_REASON stop=$RAMGUARD_STOP_SIGNAL\" >> '{}'\n{body}\n",
        log.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn env_log(w: &Work) -> Vec<String> {
    std::fs::read_to_string(w.path().join("env.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_leaking_worker_is_recycled_at_its_cap_several_times_then_finishes() {
    let w = Work::new();
    let hog = memhog();
    // A worker that holds 16 MiB and leaks 64 MiB/s: it reaches the 48 MiB cap about half
    // a second after each start. Its fourth start finds its work done and exits 0.
    let task = script(
        &w,
        &format!(
            "[ \"$RAMGUARD_ATTEMPT\" -ge 4 ] && exit 0\n\
             exec '{}' --peak 16M --hold 60s --leak 64M",
            hog.display()
        ),
    );
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "--recycle",
        "--task-mem",
        "48M",
        "--grace",
        "1s",
        "--",
        "sh",
        s(&task),
        "worker",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let sum = summary(&out);
    assert_eq!(sum["done"], 1, "{sum}\n{err}");
    assert_eq!(sum["failed"], 0, "{sum}\n{err}");
    assert_eq!(sum["recycled"], 3, "{sum}\n{err}");
    assert_eq!(err.matches("recycle ").count(), 3, "{err}");
    assert!(
        err.contains("1 recycle(s)") || err.contains("3 recycle(s)"),
        "{err}"
    );
    let log = env_log(&w);
    assert_eq!(log.len(), 4, "{log:?}");
    for line in &log[1..] {
        assert!(line.contains("previous=over_cap"), "{log:?}");
        assert!(line.contains("over the per-task cap 48 MiB"), "{log:?}");
    }
    let tasks = results_json(&w, &[]);
    assert_eq!(tasks[0]["attempts"], 4, "{tasks:?}");
    assert_eq!(tasks[0]["state"], "done");
}

#[test]
fn a_worker_past_its_max_age_is_restarted() {
    let w = Work::new();
    let task = script(
        &w,
        "[ \"$RAMGUARD_ATTEMPT\" -ge 3 ] && exit 0\nsleep 30 &\nwait",
    );
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "none",
        "--recycle",
        "--max-age",
        "400ms",
        "--grace",
        "1s",
        "--",
        "sh",
        s(&task),
        "worker",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let sum = summary(&out);
    assert_eq!(sum["recycled"], 2, "{sum}\n{err}");
    let log = env_log(&w);
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[1].contains("previous=max_age reason=older than 400ms (--max-age)"),
        "{log:?}"
    );

    // Bad input: one line, exit 2, no journal.
    let w = Work::new();
    let out = w.run(&["run", "--max-age", "1h", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs --recycle"), "{err}");
    assert!(!w.journal().exists());
}

#[test]
fn recycling_stops_at_the_per_minute_limit_and_the_task_fails_saying_why() {
    let w = Work::new();
    let hog = memhog();
    let task = script(
        &w,
        &format!("exec '{}' --peak 16M --hold 60s --leak 64M", hog.display()),
    );
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "--recycle=2",
        "--task-mem",
        "48M",
        "--grace",
        "1s",
        "--",
        "sh",
        s(&task),
        "worker",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let sum = summary(&out);
    assert_eq!(
        (sum["failed"].as_u64(), sum["recycled"].as_u64()),
        (Some(1), Some(2)),
        "{sum}"
    );
    assert!(err.contains("--recycle=2"), "{err}");
    assert_eq!(env_log(&w).len(), 3);
}

#[test]
fn a_braked_and_requeued_task_sees_why_its_previous_attempt_ended() {
    let w = Work::new();
    let hog = memhog();
    // Two tasks that each grow to 90 MiB, started together on a lying estimate under a
    // 100 MiB budget: the newer one is paused, but the older one needs the memory it holds,
    // so the brake stops it and it runs again after the other.
    let task = script(
        &w,
        &format!("exec '{}' --peak 90M --ramp 1s --hold 300ms", hog.display()),
    );
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "-j",
        "2",
        "--mem",
        "100M",
        "--reserve",
        "16M",
        "--estimate",
        "10M",
        "--grace",
        "500ms",
        "--",
        "sh",
        s(&task),
        "{}",
        ":::",
        "a",
        "b",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let sum = summary(&out);
    assert!(
        sum["braked"].as_u64().unwrap() >= 1,
        "no brake: {sum}\n{err}"
    );
    let log = env_log(&w);
    let again: Vec<&String> = log.iter().filter(|l| !l.contains("attempt=1 ")).collect();
    assert!(!again.is_empty(), "{log:?}");
    for line in again {
        assert!(line.contains("previous=braked"), "{log:?}");
        assert!(line.contains("reason=braked at"), "{log:?}");
    }
    assert!(log.iter().all(|l| l.contains("stop=TERM")), "{log:?}");
}

#[test]
fn a_failed_task_retried_on_a_rerun_is_told_how_the_last_run_ended() {
    let w = Work::new();
    let task = script(&w, "exit 3");
    let args = [
        "run",
        "--progress",
        "none",
        "--retries",
        "1",
        "--",
        "sh",
        s(&task),
        "x",
    ];
    let out = w.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A rerun runs the failed task again (with its retries); its first attempt there,
    // attempt 3, hears about attempt 2 from the journal.
    let out = w.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log = env_log(&w);
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log[0].contains("attempt=1 previous=none"), "{log:?}");
    assert!(
        log[1].contains("attempt=2 previous=failed reason=exit code 3"),
        "{log:?}"
    );
    assert!(
        log[2].contains("attempt=3 previous=failed reason=exit code 3"),
        "{log:?}"
    );
}

#[test]
fn retry_on_decides_which_endings_retries_cover() {
    let w = Work::new();
    let task = script(&w, "sleep 30");
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "none",
        "--timeout",
        "300ms",
        "--grace",
        "200ms",
        "--retries",
        "1",
        "--retry-on",
        "timeout",
        "--",
        "sh",
        s(&task),
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log = env_log(&w);
    assert_eq!(log.len(), 2, "a timeout is retried once: {log:?}");
    assert!(log[1].contains("previous=timed_out"), "{log:?}");

    // By default a timeout is not retried.
    let w = Work::new();
    let task = script(&w, "sleep 30");
    let out = w.run(&[
        "run",
        "--progress",
        "none",
        "--timeout",
        "300ms",
        "--grace",
        "200ms",
        "--retries",
        "1",
        "--",
        "sh",
        s(&task),
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(env_log(&w).len(), 1);

    let out = w.run(&["run", "--retry-on", "failed,oom", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error:") && err.contains("'oom'"), "{err}");
}

#[test]
fn stop_signal_int_reaches_the_task_which_may_clean_up() {
    let w = Work::new();
    let done = w.path().join("cleaned");
    let task = script(
        &w,
        &format!(
            "trap 'echo cleaned-up > \"{}\"; exit 3' INT\nsleep 30 &\nwait",
            done.display()
        ),
    );
    let out = w.run(&[
        "run",
        "--progress",
        "none",
        "--timeout",
        "500ms",
        "--grace",
        "5s",
        "--stop-signal",
        "INT",
        "--",
        "sh",
        s(&task),
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default().trim(),
        "cleaned-up",
        "the task never saw SIGINT"
    );
    assert!(env_log(&w)[0].contains("stop=INT"));
    let tasks = results_json(&w, &[]);
    assert_eq!(tasks[0]["exit"], "timed_out", "{tasks:?}");
}

#[test]
fn python_workers_killed_by_term_get_one_hint_about_trials_left_running() {
    let w = Work::new();
    let py = "import time, sys; time.sleep(30)";
    let out = w.run(&[
        "run",
        "--progress",
        "plain",
        "--repeat",
        "2",
        "-j",
        "2",
        "--timeout",
        "300ms",
        "--grace",
        "1s",
        "--",
        "python3",
        "-c",
        py,
        "{#}",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("hint: a Python task died of SIGTERM").count(),
        1,
        "{err}"
    );
    assert!(err.contains("--stop-signal INT"), "{err}");
}

#[test]
fn an_exported_omp_num_threads_reaches_every_thread_variable() {
    let w = Work::new();
    let hog = memhog();
    const VARS: [&str; 10] = [
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "BLIS_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "RAYON_NUM_THREADS",
        "POLARS_MAX_THREADS",
        "JULIA_NUM_THREADS",
    ];
    let mut args: Vec<String> = ["run", "--progress", "none", "--", s(&hog)]
        .iter()
        .map(|a| a.to_string())
        .collect();
    for v in VARS {
        args.push("--print-env".into());
        args.push(v.into());
    }
    let mut cmd = w.ramguard();
    for v in VARS {
        cmd.env_remove(v);
    }
    cmd.env("OMP_NUM_THREADS", "3");
    let out = cmd.args(&args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(common::only_file(&w.path().join("logs/memhog"), ".1.out"))
        .unwrap();
    for v in VARS {
        assert!(
            log.contains(&format!("{v}=3\n")),
            "{v} did not follow: {log}"
        );
    }
    // The values applied are recorded per task.
    let tasks = results_json(&w, &[]);
    let threads = &tasks[0]["threads"];
    for v in VARS {
        assert_eq!(threads[v], "3", "{threads}");
    }
    let table = w.run(&["results"]);
    let text = stdout(&table);
    assert!(text.lines().next().unwrap().contains("threads"), "{text}");

    // --dry-run shows the family before anything runs.
    let mut c = w.ramguard();
    for v in VARS {
        c.env_remove(v);
    }
    let dry = c
        .env("OMP_NUM_THREADS", "3")
        .args(["run", "--dry-run", "--threads", "2", "--", "true"])
        .output()
        .unwrap();
    let text = stdout(&dry);
    assert!(text.contains("3 in all 10 thread variables"), "{text}");
    assert!(text.contains("--threads 2 gives way"), "{text}");
}

#[test]
fn a_sweep_file_sets_recycling_retries_and_the_stop_signal() {
    let w = Work::new();
    let file = w.path().join("workers.toml");
    std::fs::write(
        &file,
        "command = [\"python\", \"worker.py\"]\nrepeat = 2\n\n[options]\ntask_mem = \"8G\"\n\
         recycle = 3\nmax_age = \"60m\"\nretry_on = [\"failed\", \"timeout\"]\nretries = 1\n\
         stop_signal = \"INT\"\n",
    )
    .unwrap();
    let out = w.run(&["run", "--dry-run", s(&file)]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("1 retries on failed,timeout; recycle at the cap or after 1h00m, at most 3/min; stop with SIGINT"),
        "{text}"
    );
    // The command line wins over the file.
    let out = w.run(&["run", "--dry-run", "--stop-signal", "HUP", s(&file)]);
    assert!(
        stdout(&out).contains("stop with SIGHUP"),
        "{}",
        stdout(&out)
    );

    std::fs::write(
        &file,
        "command = [\"true\"]\nrepeat = 1\n\n[options]\nstop_signal = \"KILL\"\n",
    )
    .unwrap();
    let out = w.run(&["run", "--dry-run", s(&file)]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("line 5") && err.contains("stop_signal"),
        "{err}"
    );
}
