//! `ramguard probe` end to end: every captured fixture host gives its expected answer, the
//! live machine agrees with `/proc/meminfo`, and bad input is one line and exit 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn ramguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ramguard"))
}

fn hosts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts")
}

fn probe_json(args: &[&str]) -> Value {
    let out = ramguard()
        .arg("probe")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "probe {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe --json prints one JSON object")
}

/// Asserts a command failed with exit 2 and exactly one line on stderr; returns that line.
fn one_line_exit_2(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_string()
}

#[test]
fn every_fixture_host_gives_its_expected_answer() {
    let mut seen = 0;
    for entry in std::fs::read_dir(hosts_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let expected_path = dir.join("expected.json");
        if !expected_path.exists() {
            continue;
        }
        seen += 1;
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let want: Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
        let got = probe_json(&["--root", dir.to_str().unwrap()]);
        assert_eq!(got["schema"], 1, "{name}");
        let m = &got["memory"];
        assert_eq!(m["limit"], want["limit"], "{name}: limit");
        assert_eq!(
            m["limit_source"], want["limit_source"],
            "{name}: limit source"
        );
        assert_eq!(m["available"], want["available"], "{name}: available");
        assert_eq!(
            m["available_source"], want["available_source"],
            "{name}: available source"
        );
        assert_eq!(
            m["cgroup"]["version"], want["cgroup_version"],
            "{name}: cgroup version"
        );
        let psi_file = got["psi"].get("source").map(|s| s["file"].clone());
        assert_eq!(
            psi_file.unwrap_or(Value::Null),
            want["psi_source"],
            "{name}: PSI source"
        );
        assert_eq!(got["cpus"]["usable"], want["cpus"], "{name}: usable CPUs");
        assert_eq!(got["swap"]["total"], want["swap_total"], "{name}: swap");
        assert_eq!(got["swap"]["zram"], want["zram"], "{name}: zram");
        assert_eq!(
            got["shm"]["size"], want["shm_size"],
            "{name}: /dev/shm size"
        );
    }
    assert!(seen >= 7, "only {seen} fixture hosts found");
}

#[test]
fn pi_without_memory_controller_says_so() {
    let dir = hosts_dir().join("pi4-4gb-zram-no-psi");
    let got = probe_json(&["--root", dir.to_str().unwrap()]);
    assert_eq!(got["memory"]["cgroup"]["memory_controller"], false);
    let out = ramguard()
        .args(["probe", "--root"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memory controller disabled"), "{text}");
    assert!(text.contains("zram"), "{text}");
    assert!(text.contains("pressure      unavailable"), "{text}");
}

#[test]
fn human_summary_names_every_source() {
    let dir = hosts_dir().join("v2-slurm-step-parent-limit");
    let out = ramguard()
        .args(["probe", "--root"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "16 GiB  from /sys/fs/cgroup/system.slice/slurmstepd.scope/job_4242/step_0/memory.max"
        ),
        "{text}"
    );
    assert!(text.contains("job_4242/memory.current"), "{text}");
    assert!(text.contains("quota 4.00 CPUs"), "{text}");
}

fn meminfo_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn live_host_agrees_with_meminfo() {
    let before = meminfo_kib("MemAvailable") * 1024;
    let got = probe_json(&[]);
    let after = meminfo_kib("MemAvailable") * 1024;
    let m = &got["memory"];
    let total = meminfo_kib("MemTotal") * 1024;
    assert_eq!(m["total"].as_u64(), Some(total));
    let limit = m["limit"].as_u64().unwrap();
    assert!(limit <= total);
    let limited = m["cgroup"]["levels"]
        .as_array()
        .is_some_and(|ls| ls.iter().any(|l| !l["limit"].is_null()));
    if !limited {
        // This machine: the v1 memory cgroup is found and unlimited, so RAM is the limit.
        assert_eq!(limit, total);
        assert_eq!(m["limit_source"]["kind"], "meminfo");
        assert_eq!(m["available_source"]["kind"], "meminfo");
        let avail = m["available"].as_u64().unwrap() as f64;
        let (lo, hi) = (before.min(after) as f64, before.max(after) as f64);
        assert!(
            avail >= lo * 0.98 && avail <= hi * 1.02,
            "available {avail} not within 2% of MemAvailable {before}..{after}"
        );
    }
    let cpus = got["cpus"]["usable"].as_u64().unwrap();
    let parallelism = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(cpus, parallelism, "usable CPUs disagree with std's view");
}

#[test]
fn nonexistent_root_is_one_line_exit_2() {
    let out = ramguard()
        .args(["probe", "--root", "/no/such/dir"])
        .output()
        .unwrap();
    let line = one_line_exit_2(&out);
    assert!(
        line.contains("/no/such/dir") && line.contains("does not exist"),
        "{line}"
    );
}

#[test]
fn unreadable_file_is_one_line_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    // /proc/meminfo as a directory cannot be read by anyone, root included.
    std::fs::create_dir_all(tmp.path().join("proc/meminfo")).unwrap();
    let out = ramguard()
        .args(["probe", "--root"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let line = one_line_exit_2(&out);
    assert!(line.contains("proc/meminfo"), "{line}");
}

#[test]
fn malformed_file_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("proc")).unwrap();
    std::fs::write(tmp.path().join("proc/meminfo"), "MemTotal: lots\n").unwrap();
    let out = ramguard()
        .args(["probe", "--root"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let line = one_line_exit_2(&out);
    assert!(line.contains("proc/meminfo"), "{line}");
}

#[test]
fn bad_size_and_duration_are_one_line_exit_2() {
    let out = ramguard()
        .args(["probe", "--resolve", "12X"])
        .output()
        .unwrap();
    let line = one_line_exit_2(&out);
    assert!(line.contains("'12X'") && line.contains("512M"), "{line}");
    let out = ramguard()
        .args(["probe", "--resolve", "150%"])
        .output()
        .unwrap();
    one_line_exit_2(&out);
    let out = ramguard()
        .args(["probe", "--watch", "3parsecs"])
        .output()
        .unwrap();
    let line = one_line_exit_2(&out);
    assert!(
        line.contains("'3parsecs'") && line.contains("30s"),
        "{line}"
    );
}

#[test]
fn resolve_shows_a_share_of_the_effective_limit() {
    let dir = hosts_dir().join("container-cgroupns-root");
    let got = probe_json(&[
        "--root",
        dir.to_str().unwrap(),
        "--resolve",
        "50%",
        "--resolve",
        "1.5GiB",
    ]);
    assert_eq!(got["resolved"][0]["bytes"], 1u64 << 30);
    assert_eq!(got["resolved"][1]["bytes"], 3u64 << 29);
}

#[test]
fn watch_prints_count_lines() {
    let dir = hosts_dir().join("v1-limit-on-leaf");
    let out = ramguard()
        .args(["probe", "--watch", "10ms", "--count", "3", "--root"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("available    768 MiB of      4 GiB"),
        "{text}"
    );
}
