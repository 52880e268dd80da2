//! One measure of a task's memory, on real Python processes (stdlib only): a fork pool over a
//! shared segment is measured at what its tree holds, not its summed RSS; a short task is
//! recorded at what it held; `/dev/shm` files count against `--task-mem` and are removed when
//! ramguard stops their task; SIGBUS on a full `/dev/shm` gets the hint that fits.
//!
//! Every segment and file has a name unique to the test run, and each test removes what it
//! created even when it fails. The SIGBUS test fills a 16 MiB tmpfs mounted on `/dev/shm`
//! inside a private mount namespace (`unshare -m`), never the host's `/dev/shm`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const MIB: f64 = (1u64 << 20) as f64;

/// A name no other test run uses.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("ramguard-test-{tag}-{}-{nanos}", std::process::id())
}

/// Removes `/dev/shm/NAME` on drop: only the file this test created.
struct ShmGuard(PathBuf);

impl ShmGuard {
    fn new(name: &str) -> ShmGuard {
        ShmGuard(Path::new("/dev/shm").join(name))
    }
}

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes a test script into the work directory and returns its path.
fn script(w: &Work, name: &str, text: &str) -> String {
    let p = w.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn python() -> &'static str {
    "python3"
}

/// The size in a progress line's "peak 347.4 MiB", in bytes.
fn peak_in_line(line: &str) -> f64 {
    let rest = line.split("peak ").nth(1).expect("a peak in the line");
    let mut it = rest.split_whitespace();
    let n: f64 = it.next().unwrap().parse().unwrap();
    let unit = it.next().unwrap().trim_end_matches([')', ',', ';']);
    n * match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => MIB,
        "GiB" => MIB * 1024.0,
        u => panic!("unit {u} in {line}"),
    }
}

#[test]
fn a_fork_pool_over_one_segment_runs_under_a_budget_its_summed_rss_exceeds() {
    let w = Work::new();
    let seg = unique("pool");
    let _shm = ShmGuard::new(&seg);
    let pool = script(&w, "pool.py", include_str!("scripts/pool_over_segment.py"));
    // 300 MiB read by four forked workers: summed RSS about 1.6 GiB, PSS about 350 MiB.
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "--mem",
        "900M",
        "--",
        python(),
        &pool,
        "300",
        &seg,
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    let s = summary(&out);
    assert_eq!(s["braked"], 0, "{err}");
    assert!(!err.contains("brake   "), "{err}");

    let tasks = results_json(&w, &[]);
    let result = &tasks[0]["result"];
    let tree_pss = result["tree_pss"].as_f64().unwrap();
    let tree_rss = result["tree_rss"].as_f64().unwrap();
    assert!(
        tree_rss > 900.0 * MIB,
        "the workload must make summed RSS exceed the budget: {result}"
    );
    assert!(tree_pss < 700.0 * MIB, "{result}");

    // One peak everywhere: the run's line, results, status, within 15% of the tree's PSS.
    let line = err.lines().find(|l| l.contains("done    #1")).unwrap();
    let status = w.run(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let peaks = [
        ("run line", peak_in_line(line)),
        ("results", tasks[0]["peak"].as_f64().unwrap()),
        ("status", status["peaks"]["max"].as_f64().unwrap()),
    ];
    eprintln!(
        "tree PSS {:.1} MiB, summed RSS {:.1} MiB; peaks: {}",
        tree_pss / MIB,
        tree_rss / MIB,
        peaks
            .iter()
            .map(|(w, p)| format!("{w} {:.1} MiB", p / MIB))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (what, peak) in peaks {
        let off = (peak - tree_pss).abs() / tree_pss;
        assert!(
            off <= 0.15,
            "{what} peak {:.1} MiB is {:.0}% off the tree's PSS {:.1} MiB (summed RSS {:.1} MiB)",
            peak / MIB,
            off * 100.0,
            tree_pss / MIB,
            tree_rss / MIB
        );
    }
    // RSS, shm and VIRT are recorded beside the peak, each under its own name.
    let parts = &tasks[0]["peak_parts"];
    let part = |k: &str| {
        parts[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {parts}"))
    };
    assert!(
        part("rss") > 3.0 * tree_pss,
        "summed RSS is kept apart: {parts}"
    );
    assert!((part("shm") - 300.0 * MIB).abs() < 8.0 * MIB, "{parts}");
    assert!(part("virt") > part("rss"), "{parts}");
    assert!(!Path::new("/dev/shm").join(&seg).exists());
}

#[test]
fn a_short_task_that_allocates_late_is_recorded_at_what_it_held() {
    let w = Work::new();
    let late = script(&w, "late.py", include_str!("scripts/late_alloc.py"));
    // `sh -c '…; true'` keeps a two-process tree, whose PSS used to win over ru_maxrss.
    let cmd = format!("{} {late} {{}}; true", python());
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "-j",
        "1",
        "--",
        "sh",
        "-c",
        &cmd,
        ":::",
        "200",
        "201",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    for t in results_json(&w, &[]) {
        let peak = t["peak"].as_f64().unwrap();
        assert!(
            peak >= 200.0 * MIB,
            "recorded at {:.1} MiB, held 200 MiB: {t}",
            peak / MIB
        );
    }
    // The second task is predicted from the first one's true peak.
    let start2 = err
        .lines()
        .find(|l| l.contains("start   #2"))
        .unwrap_or_else(|| panic!("{err}"));
    let predicted = peak_in_line(&start2.replace("predicted", "peak"));
    assert!(predicted >= 190.0 * MIB, "{start2}");
}

#[test]
fn a_task_writing_into_dev_shm_is_stopped_at_its_task_mem_and_its_file_removed() {
    let w = Work::new();
    let name = unique("write");
    let _shm = ShmGuard::new(&name);
    let path = format!("/dev/shm/{name}");
    let writer = script(&w, "write.py", include_str!("scripts/shm_write.py"));
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "--task-mem",
        "200M",
        "--mem",
        "400M",
        "--grace",
        "1s",
        "--",
        python(),
        &writer,
        &path,
        "504",
        "5",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let tasks = results_json(&w, &[]);
    assert_eq!(tasks[0]["exit"], "over_cap", "{tasks:?}\n{err}");
    let peak = tasks[0]["peak"].as_f64().unwrap();
    assert!(
        (200.0 * MIB..300.0 * MIB).contains(&peak),
        "peak {:.1} MiB: the file is the task's memory and the cap stops it near 200 MiB\n{err}",
        peak / MIB
    );
    assert!(
        !Path::new(&path).exists(),
        "ramguard stopped the task but left {path}\n{err}"
    );
    assert!(err.contains("removed 1 file"), "{err}");
}

#[test]
fn a_capped_python_shared_memory_task_leaves_nothing_in_dev_shm() {
    let w = Work::new();
    let name = unique("seg");
    let _shm = ShmGuard::new(&name);
    let seg = script(&w, "seg.py", include_str!("scripts/shm_segment.py"));
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "--task-mem",
        "150M",
        "--grace",
        "1s",
        "--",
        python(),
        &seg,
        &name,
        "400",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let tasks = results_json(&w, &[]);
    assert_eq!(tasks[0]["exit"], "over_cap", "{tasks:?}\n{err}");
    assert!(
        !Path::new("/dev/shm").join(&name).exists(),
        "the capped task's segment {name} is still in /dev/shm\n{err}"
    );
    assert!(tasks[0].get("shm_left").is_none(), "{tasks:?}");
}

#[test]
fn a_task_that_leaves_a_file_is_reported_and_shm_cleanup_removes_it() {
    let w = Work::new();
    let kept = unique("kept");
    let cleaned = unique("cleaned");
    let (_g1, _g2) = (ShmGuard::new(&kept), ShmGuard::new(&cleaned));
    let writer = script(&w, "write.py", include_str!("scripts/shm_write.py"));
    let kept_path = format!("/dev/shm/{kept}");
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "--name",
        "kept",
        "--",
        python(),
        &writer,
        &kept_path,
        "16",
        "1.5",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(
        Path::new(&kept_path).exists(),
        "a task that ended by itself keeps its file"
    );
    assert!(
        err.contains(&kept) && err.contains("--shm-cleanup"),
        "{err}"
    );
    let s = summary(&out);
    assert_eq!(s["shm_left"][0]["files"][0]["name"], kept.as_str(), "{s}");
    let tasks = results_json(&w, &["kept"]);
    assert_eq!(tasks[0]["shm_left"][0]["name"], kept.as_str(), "{tasks:?}");
    let table = w.run(&["results", "kept", "--format", "table"]);
    assert!(
        stdout(&table).contains("left 1 file in /dev/shm"),
        "{}",
        stdout(&table)
    );

    let cleaned_path = format!("/dev/shm/{cleaned}");
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "--name",
        "cleaned",
        "--shm-cleanup",
        "--",
        python(),
        &writer,
        &cleaned_path,
        "16",
        "1.5",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(!Path::new(&cleaned_path).exists(), "{}", stderr(&out));
    assert!(
        Path::new(&kept_path).exists(),
        "a file of another sweep is never touched"
    );
}

/// Runs `ramguard ARGS` inside a private mount namespace with a tmpfs of `size` on
/// `/dev/shm`; `None` when this machine does not allow it.
fn in_small_shm(w: &Work, size: &str, args: &[&str]) -> Option<std::process::Output> {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!("mount -t tmpfs -o size={size} tmpfs /dev/shm"))
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: `unshare -m` with a tmpfs on /dev/shm is not permitted here");
        return None;
    }
    let mut c = Command::new("unshare");
    c.args(["-m", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={size} tmpfs /dev/shm && exec \"$0\" \"$@\""
        ))
        .arg(ramguard_bin())
        .args(args)
        .current_dir(w.path())
        .env("RAMGUARD_JOURNAL", w.journal());
    Some(c.output().unwrap())
}

#[test]
fn sigbus_on_a_small_dev_shm_says_the_task_alone_needs_more_than_it_holds() {
    let w = Work::new();
    let bus = script(&w, "bus.py", include_str!("scripts/shm_bus.py"));
    let name = unique("bus");
    let Some(out) = in_small_shm(
        &w,
        "16m",
        &[
            "run",
            "--json",
            "--progress",
            "plain",
            "--",
            python(),
            &bus,
            &name,
            "32",
        ],
    ) else {
        return;
    };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let tasks = results_json(&w, &[]);
    assert_eq!(tasks[0]["exit"], "shm_bus", "{tasks:?}\n{err}");
    let reason = tasks[0]["reason"].as_str().unwrap();
    assert!(reason.contains("this task alone"), "{reason}");
    assert!(!reason.contains("lower -j"), "{reason}");
    assert!(
        !Path::new("/dev/shm").join(&name).exists(),
        "the host's /dev/shm was touched"
    );
}

#[test]
fn sigbus_when_tasks_fill_dev_shm_together_says_run_fewer() {
    let w = Work::new();
    let seg = script(&w, "seg.py", include_str!("scripts/shm_segment.py"));
    let a = unique("together-a");
    let b = unique("together-b");
    // Two tasks of 40 MiB each on a 64 MiB /dev/shm: either fits alone, not both. With
    // --estimate both start at once, before any shm use is measured (so admission cannot
    // know to keep them apart), and fill /dev/shm together.
    let Some(out) = in_small_shm(
        &w,
        "64m",
        &[
            "run",
            "--json",
            "--progress",
            "plain",
            "-j",
            "2",
            "--estimate",
            "50M",
            "--timeout",
            "8s",
            "--grace",
            "1s",
            "--",
            python(),
            &seg,
            "{}",
            "40",
            ":::",
            &a,
            &b,
        ],
    ) else {
        return;
    };
    let err = stderr(&out);
    let tasks = results_json(&w, &[]);
    let bus: Vec<&Value> = tasks.iter().filter(|t| t["exit"] == "shm_bus").collect();
    assert!(!bus.is_empty(), "{tasks:?}\n{err}");
    let reason = bus[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("together") && reason.contains("lower -j"),
        "{reason}"
    );
}

#[test]
fn admission_waits_for_room_in_dev_shm_so_tasks_that_fit_alone_never_sigbus() {
    let w = Work::new();
    let seg = script(&w, "seg.py", include_str!("scripts/shm_segment.py"));
    let names: Vec<String> = (0..3).map(|i| unique(&format!("room-{i}"))).collect();
    // Three tasks of 40 MiB each on a 64 MiB /dev/shm, -j 3 and memory for all: only
    // /dev/shm's free space can keep them apart.
    let mut args = vec![
        "run",
        "--json",
        "--progress",
        "plain",
        "-j",
        "3",
        "--",
        python(),
        &seg,
        "{}",
        "40",
        "1",
        ":::",
    ];
    args.extend(names.iter().map(String::as_str));
    let Some(out) = in_small_shm(&w, "64m", &args) else {
        return;
    };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    let tasks = results_json(&w, &[]);
    assert!(
        tasks.iter().all(|t| t["exit"] == "done"),
        "{tasks:?}\n{err}"
    );
}

#[test]
fn a_braked_shared_memory_task_leaves_no_segment_and_its_retry_can_create_it_again() {
    let w = Work::new();
    let seg = script(&w, "seg.py", include_str!("scripts/shm_segment.py"));
    let names: Vec<String> = (0..2).map(|i| unique(&format!("brake-{i}"))).collect();
    let _guards: Vec<ShmGuard> = names.iter().map(|n| ShmGuard::new(n)).collect();
    // Two tasks of 160 MiB of SharedMemory, both started at once (--estimate) under a
    // 300 MiB budget: the newest is braked (`--no-pause`: pausing it instead, which the
    // policy does when it catches the climb early enough, would leave nothing to test).
    // Its retry creates the same segment name, which fails (FileExistsError) if the braked
    // attempt's segment was left behind.
    let mut args = vec![
        "run",
        "--no-pause",
        "--json",
        "--progress",
        "plain",
        "-j",
        "2",
        "--mem",
        "300M",
        "--estimate",
        "100M",
        "--grace",
        "1s",
        "--",
        python(),
        &seg,
        "{}",
        "160",
        "1",
        ":::",
    ];
    args.extend(names.iter().map(String::as_str));
    let out = w.run(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    let s = summary(&out);
    assert!(
        s["braked"].as_u64().unwrap() >= 1,
        "no brake happened: {err}"
    );
    let tasks = results_json(&w, &[]);
    assert!(
        tasks.iter().all(|t| t["exit"] == "done"),
        "{tasks:?}\n{err}"
    );
    for n in &names {
        assert!(
            !Path::new("/dev/shm").join(n).exists(),
            "{n} left behind\n{err}"
        );
    }
}

#[test]
fn a_memfd_the_task_writes_is_its_memory() {
    let w = Work::new();
    let memfd = script(&w, "memfd.py", include_str!("scripts/memfd_write.py"));
    // 160 MiB written into a memfd and never mapped: no RSS, no file in /dev/shm.
    let out = w.run(&[
        "run",
        "--json",
        "--progress",
        "plain",
        "--task-mem",
        "100M",
        "--grace",
        "1s",
        "--",
        python(),
        &memfd,
        "160",
        "4",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let tasks = results_json(&w, &[]);
    assert_eq!(tasks[0]["exit"], "over_cap", "{tasks:?}\n{err}");
}
