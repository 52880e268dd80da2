//! `ramguard report`: findings, leaks and key figures from a real sweep's journal.

mod common;

use common::{memhog, stderr, stdout, Work};
use serde_json::Value;

const MIB: f64 = 1024.0 * 1024.0;

/// Two tasks: one holds 48 MiB, one ramps to 48 MiB and then leaks 40 MiB/s for 6 s (long
/// enough for a dozen journaled samples after the ramp even on a busy machine).
fn leaky_sweep(work: &Work) {
    let hog = memhog();
    let out = work.run(&[
        "run",
        "--mem",
        "1G",
        "-j",
        "2",
        "--estimate",
        "300M",
        "--task-mem",
        "600M",
        "--progress",
        "none",
        "--",
        hog.to_str().unwrap(),
        "--peak",
        "48M",
        "--ramp",
        "200ms",
        "--hold",
        "6s",
        "--leak",
        "{1}",
        ":::",
        "0",
        "40M",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_leaking_task_is_flagged_in_report_json_with_its_slope_and_time_to_its_cap() {
    let work = Work::new();
    leaky_sweep(&work);
    let out = work.run(&["report", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["schema"], 1);
    let leaks = v["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "only the leaking task: {leaks:?}");
    let l = &leaks[0];
    assert!(l["label"].as_str().unwrap().contains("40M"), "{l}");
    let rate = l["bytes_per_sec"].as_f64().unwrap() / MIB;
    assert!((rate - 40.0).abs() < 8.0, "slope {rate:.1} MiB/s");
    // About 48 + 240 MiB at the end; the 600 MiB cap is some 8 s further at 40 MiB/s.
    let to_cap = l["to_cap_s"].as_f64().unwrap();
    assert!((4.0..=14.0).contains(&to_cap), "to cap {to_cap:.1} s");
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings[0]["kind"], "leak", "{findings:?}");
    assert!(findings[0]["fix"].as_str().unwrap().contains("--recycle"));
    assert_eq!(v["counts"]["done"], 2);
    assert_eq!(v["max_running"], 2);
    assert!(v["peak_used"].as_u64().unwrap() as f64 / MIB > 150.0);
    // The run journaled the host's available memory while it ran.
    assert!(
        v["host_available_min"].as_u64().unwrap() > 0,
        "{}",
        v["host_available_min"]
    );
}

#[test]
fn the_terminal_report_gives_key_figures_a_chart_and_findings_with_fixes() {
    let work = Work::new();
    leaky_sweep(&work);
    let out = work.run(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "sweep 'memhog': 2 tasks — 2 done",
        "at most 2 at once (-j 2)",
        "of the 1 GiB budget",
        "exits   done 2",
        "waste   0.0 task-seconds",
        "leak    40M (attempt 1): +",
        "dashed: the budget",
        "findings:",
        "[problem] 1 task(s) kept growing after their ramp",
        "fix: ",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

/// A sweep whose memory is set by a name (`--model small|large`) gets its peaks by kind:
/// one line of the terminal report, a list in `--json`, a column per kind in the HTML.
#[test]
fn peaks_are_reported_by_kind_when_a_name_sets_them() {
    let work = Work::new();
    let script = format!(
        "case $1 in small) p=24M;; *) p=80M;; esac\nexec {} --peak $p --hold 0.2\n",
        memhog().display()
    );
    std::fs::write(work.path().join("kind.sh"), script).unwrap();
    let out = work.run(&[
        "run",
        "--mem",
        "1G",
        "-j",
        "2",
        "--progress",
        "none",
        "--grid",
        "model=small,large",
        "--grid",
        "seed=1..3",
        "--",
        "sh",
        "kind.sh",
        "{model}",
        "{seed}",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = work.run(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("kinds   model: "))
        .unwrap_or_else(|| panic!("no kinds line in:\n{text}"));
    assert!(
        line.contains("small p50 2") && line.contains("(3 done); large p50 8"),
        "{line}"
    );

    let out = work.run(&["report", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kinds = &v["kinds"][0];
    assert_eq!(kinds["param"], "model", "{v}");
    let mib = |k: usize| kinds["kinds"][k]["max"].as_f64().unwrap() / MIB;
    assert_eq!(kinds["kinds"][0]["kind"], "small");
    assert_eq!(kinds["kinds"][1]["done"], 3);
    assert!(mib(0) < 40.0 && mib(1) > 75.0, "{kinds}");

    let out = work.run(&["report", "--html", "r.html"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(work.path().join("r.html")).unwrap();
    for want in [
        r#"aria-label="peak against model""#,
        r#"class="kind""#,
        ">small</text>",
        ">large</text>",
        "model = large: peak 8",
    ] {
        assert!(html.contains(want), "the page lacks {want}");
    }
}

#[test]
fn report_refuses_a_bad_sweep_name_or_html_path_and_writes_nothing() {
    let work = Work::new();
    let out = work.run(&["report"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: no journal"),
        "{}",
        stderr(&out)
    );
    leaky_sweep(&work);
    let out = work.run(&["report", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no sweep named 'nosuch'"));
    let out = work.run(&["report", "--html", "missing-dir/r.html"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(!work.path().join("missing-dir").exists());
}

/// Removes a /dev/shm file on drop, so a failing test leaves nothing behind.
struct ShmGuard(std::path::PathBuf);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_dev_shm_file_a_task_left_behind_is_a_finding_with_a_fix() {
    let work = Work::new();
    let name = format!("ramguard-report-test-{}", std::process::id());
    let _guard = ShmGuard(std::path::PathBuf::from("/dev/shm").join(&name));
    let hog = memhog();
    let out = work.run(&[
        "run",
        "--progress",
        "none",
        "--",
        hog.to_str().unwrap(),
        "--peak",
        "8M",
        "--shm",
        "8M",
        "--shm-name",
        &name,
        "--shm-keep",
        "--hold",
        "{}",
        ":::",
        "100ms",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = work.run(&["report", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "shm_leftovers")
        .unwrap_or_else(|| panic!("no shm finding: {}", v["findings"]));
    assert!(f["evidence"].as_str().unwrap().contains(&name), "{f}");
    assert!(f["fix"].as_str().unwrap().contains("unlink"), "{f}");
}
