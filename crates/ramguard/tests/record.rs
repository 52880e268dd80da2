//! `ramguard record` on the memhog workload, whose memory is known in advance.

mod common;

use std::time::Duration;

use common::{memhog, stderr, stdout, wait_until, Work};
use serde_json::Value;

const MIB: f64 = 1024.0 * 1024.0;

fn record_json(work: &Work, hog: &[&str]) -> Value {
    let hog_bin = memhog();
    let mut args = vec!["record", "--json", "--", hog_bin.to_str().unwrap()];
    args.extend_from_slice(hog);
    let out = work.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("one JSON object")
}

fn mib(v: &Value) -> f64 {
    v.as_u64().expect("a byte count") as f64 / MIB
}

#[test]
fn the_peak_is_what_the_tree_held_with_shared_pages_once_and_virt_apart() {
    let work = Work::new();
    // 160 MiB shared copy-on-write by a parent and two children: the tree holds 160 MiB,
    // summed RSS says 480.
    let v = record_json(
        &work,
        &[
            "--peak",
            "160M",
            "--ramp",
            "200ms",
            "--hold",
            "800ms",
            "--children",
            "2",
        ],
    );
    assert_eq!(v["schema"], 1);
    assert_eq!(v["exit"]["code"], 0);
    let peak = &v["peak"];
    let held = mib(&peak["held"]);
    assert!(
        (160.0..=160.0 * 1.05).contains(&held),
        "peak held {held:.1} MiB, expected within 5% of 160"
    );
    assert_eq!(peak["processes"], 3);
    assert!(
        mib(&peak["rss"]) > 2.5 * 160.0,
        "summed RSS {}",
        peak["rss"]
    );
    assert!(mib(&peak["virt"]) >= held, "VIRT is reported on its own");
    let words = v["virt_explained"].as_str().unwrap();
    assert!(words.contains("not memory they used"), "{words}");
    assert!(words.contains("overcounts"), "{words}");
    let procs = v["peak_processes"].as_array().unwrap();
    assert_eq!(procs.len(), 3);
    assert!(procs[0]["command"].as_str().unwrap().contains("memhog"));
    // The timeline: ordered, starting small, reaching the peak.
    let tl = v["timeline"].as_array().unwrap();
    assert!(tl.len() >= 10, "{} points", tl.len());
    let times: Vec<u64> = tl.iter().map(|t| t["t_ms"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(mib(&tl[0]["held"]) < 100.0);
    let top = tl.iter().map(|t| mib(&t["held"])).fold(0.0, f64::max);
    assert!(top >= 160.0, "timeline top {top:.1}");
    // Each tick has every process, whose command is named once.
    let last = tl
        .iter()
        .rev()
        .find(|t| t["processes"] == 3)
        .expect("a tick of 3");
    let procs = last["procs"].as_array().unwrap();
    assert_eq!(procs.len(), 3);
    for p in procs {
        let pid = p["pid"].as_u64().unwrap().to_string();
        assert!(v["commands"][&pid].as_str().unwrap().contains("memhog"));
        assert!(p["rss"].as_u64().unwrap() >= p["pss"].as_u64().unwrap());
    }
}

#[test]
fn a_single_process_peak_matches_the_kernel_and_the_summary_says_so_in_words() {
    let work = Work::new();
    let hog = memhog();
    let out = work.run(&[
        "record",
        "-o",
        "rec.json",
        "--",
        hog.to_str().unwrap(),
        "--peak",
        "96M",
        "--ramp",
        "300ms",
        "--hold",
        "500ms",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("peak    "), "{text}");
    assert!(text.contains("VIRT"), "{text}");
    assert!(text.contains("largest at the peak:"), "{text}");
    assert!(text.contains("held over time:"), "{text}");
    assert!(text.contains('█'), "a chart: {text}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("rec.json")).unwrap())
            .unwrap();
    let held = mib(&v["peak"]["held"]);
    let kernel = mib(&v["ru_maxrss"]);
    assert!((96.0..=96.0 * 1.05).contains(&held), "held {held:.1}");
    assert!(
        held >= kernel - 0.5,
        "held {held:.1} below the kernel's {kernel:.1}"
    );
}

/// Removes a /dev/shm file on drop, so a failing test leaves nothing behind.
struct ShmGuard(std::path::PathBuf);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn shared_memory_counts_once_and_a_file_left_behind_is_reported() {
    let work = Work::new();
    let name = format!("ramguard-record-test-{}", std::process::id());
    let _guard = ShmGuard(std::path::PathBuf::from("/dev/shm").join(&name));
    let v = record_json(
        &work,
        &[
            "--peak",
            "32M",
            "--shm",
            "16M",
            "--shm-name",
            &name,
            "--shm-keep",
            "--hold",
            "600ms",
        ],
    );
    // memhog itself holds a few MiB (binary, libc, stack: 3.8 MiB in a debug build) before
    // it allocates anything; the 32 MiB + 16 MiB it was asked for, counted once, sit on
    // top of that (counting the segment twice would give 64 MiB).
    let base = mib(&record_json(&work, &["--peak", "0", "--hold", "600ms"])["peak"]["held"]);
    let held = mib(&v["peak"]["held"]);
    assert!(
        (held - base - 48.0).abs() <= 48.0 * 0.08,
        "held {held:.1} over memhog's own {base:.1}"
    );
    assert!(mib(&v["peak"]["shm"]) >= 16.0);
    let left = v["shm_leftovers"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0]["path"].as_str().unwrap().ends_with(&name));
}

#[test]
fn an_escaped_daemon_is_measured_and_stopped_afterwards() {
    let work = Work::new();
    let pid_file = work.path().join("escapee.pid");
    let v = record_json(
        &work,
        &[
            "--peak",
            "16M",
            "--escapee",
            "48M",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--hold",
            "600ms",
        ],
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = common::PidGuard(vec![pid]);
    assert!(mib(&v["peak"]["held"]) >= 64.0, "{}", v["peak"]);
    assert_eq!(v["leftover_processes_stopped"], 1);
    assert!(
        wait_until(Duration::from_secs(5), || !common::alive(pid)),
        "the escapee outlived the recording"
    );
}

#[test]
fn bad_usage_is_one_error_line_and_exit_2() {
    let work = Work::new();
    let out = work.run(&["record"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error:"), "{}", stderr(&out));
    let out = work.run(&["record", "--", "/nonexistent/command"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot run '/nonexistent/command'"), "{err}");
    let out = work.run(&["record", "--interval", "0s", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_failing_command_makes_record_exit_1_with_its_code() {
    let work = Work::new();
    let v = {
        let hog = memhog();
        let out = work.run(&[
            "record",
            "--json",
            "--",
            hog.to_str().unwrap(),
            "--peak",
            "8M",
            "--exit",
            "3",
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()
    };
    assert_eq!(v["exit"]["code"], 3);
}

#[test]
fn more_threads_than_twice_the_cpus_are_named_with_the_thread_cap_fix() {
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    }
    let work = Work::new();
    let out = work.run(&[
        "record",
        "--json",
        "--",
        "python3",
        "-c",
        "import os, threading, time\n\
         n = 3 * len(os.sched_getaffinity(0)) + 2\n\
         ts = [threading.Thread(target=time.sleep, args=(0.8,)) for _ in range(n)]\n\
         [t.start() for t in ts]; [t.join() for t in ts]",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let cpus = v["cpus"].as_u64().unwrap();
    assert!(
        v["max_threads"].as_u64().unwrap() > 2 * cpus,
        "{}",
        v["max_threads"]
    );
    let note = v["threads_note"].as_str().expect("a threads note");
    assert!(note.contains("OMP_NUM_THREADS=1"), "{note}");
}

#[test]
fn ctrl_c_stops_the_command_and_record_reports_what_it_saw_with_exit_130() {
    use std::os::unix::process::CommandExt;
    let work = Work::new();
    let hog = memhog();
    let child = work
        .ramguard()
        .args([
            "record",
            "--",
            hog.to_str().unwrap(),
            "--peak",
            "24M",
            "--hold",
            "30s",
        ])
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    // Kills record if the test fails early; its command dies with it (PDEATHSIG).
    let mut guard = common::PidGuard(vec![pid]);
    // Wait for the command to be running under record.
    let started = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .is_ok_and(|c| !c.trim().is_empty())
    });
    assert!(started);
    // Ctrl-C on a terminal: SIGINT to the whole foreground process group.
    let pg = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process_group(pg, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    // Reaped: its pid may be reused, so the guard must not kill it any more.
    guard.0.clear();
    assert_eq!(out.status.code(), Some(130));
    let text = stdout(&out);
    assert!(text.contains("(interrupted)"), "{text}");
    assert!(text.contains("peak    "), "{text}");
}

#[test]
fn a_memfd_the_command_writes_is_held_as_run_counts_it() {
    // 64 MiB written into a memfd and never mapped: no RSS and no file in /dev/shm, but
    // memory all the same. `run` counts it (memory_truth's memfd test); record measures a
    // tree by the same definition, so it must too (it used to report only python itself).
    let work = Work::new();
    let script = work.path().join("memfd.py");
    std::fs::write(&script, include_str!("scripts/memfd_write.py")).unwrap();
    let out = work.run(&[
        "record",
        "--json",
        "--",
        "python3",
        script.to_str().unwrap(),
        "64",
        "0.5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    let held = mib(&v["peak"]["held"]);
    let rss = mib(&v["peak"]["rss"]);
    assert!(held >= 64.0, "held {held:.1} MiB, rss {rss:.1} MiB");
    assert!(
        rss < 64.0,
        "the memfd is not resident in any mapping: rss {rss:.1} MiB"
    );
    assert!(mib(&v["peak"]["shm"]) >= 64.0, "{}", v["peak"]);
}
