//! `ramguard status`, `results` and `list` end to end: a journal is written through the
//! journal API (as `ramguard run` would), then the binary reads it with `--journal`.
//! Human output is snapshotted with times, durations and paths masked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ramguard::journal::{fingerprint, AttemptEnd, Journal, MemSample, NewTask, SweepSpec};
use ramguard_core::policy::{Ending, ExitClass};
use serde_json::{json, Value};

fn ramguard(journal: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ramguard"))
        .args(args)
        .arg("--journal")
        .arg(journal)
        .env_remove("RAMGUARD_JOURNAL")
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts exit 2 with exactly one `error:` line on stderr; returns it.
fn one_line_exit_2(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

fn spec(name: &str, template: &str) -> SweepSpec {
    let settings = json!({"jobs": 2});
    SweepSpec {
        name: name.into(),
        fingerprint: fingerprint(template, &settings),
        template: template.into(),
        settings,
    }
}

fn end(class: &str, peak: u64, dur: u64, requeued: bool, result: Option<&str>) -> AttemptEnd {
    AttemptEnd {
        ended_unix_ms: 1_763_900_100_000,
        duration_ms: dur,
        peak_rss: peak,
        peak_pss: None,
        peak: None,
        peak_shm: None,
        peak_virt: None,
        shm_left: None,
        shm_removed: None,
        class: ExitClass::parse(class).expect("a known exit class"),
        ending: match class {
            "done" => Some(Ending::Exited { code: 0 }),
            "failed" => Some(Ending::Exited { code: 3 }),
            "braked" => Some(Ending::Signaled { signal: 15 }),
            _ => None,
        },
        reason: match class {
            "done" => "exited 0".into(),
            "failed" => "exited with code 3".into(),
            _ => "braked: available memory fell below 300 MiB".into(),
        },
        requeued,
        result: result.map(str::to_string),
    }
}

/// A sweep of six tasks: three done (one with a result that is not JSON), one failed,
/// one requeued by a brake, one left running when its supervisor went away.
fn build(path: &Path, name: &str) {
    let mut j = Journal::open(path).unwrap();
    let sw = j
        .begin_sweep(
            &spec(name, "python t3b.py --lam {lam} --beta {beta}"),
            false,
        )
        .unwrap();
    let params = [
        ("0", "3.0"),
        ("1e-10", "3.0"),
        ("0", "3.1"),
        ("1e-10", "3.1"),
        ("0", "3.2"),
        ("1e-10", "3.2"),
    ];
    let tasks: Vec<NewTask> = params
        .iter()
        .map(|(l, b)| NewTask {
            key: format!("beta={b},lam={l}"),
            params: json!({"lam": l, "beta": b}),
            argv: vec![
                "python".into(),
                "t3b.py".into(),
                l.to_string(),
                b.to_string(),
            ],
        })
        .collect();
    j.sync_tasks(&sw, &tasks).unwrap();
    let t0 = 1_763_900_000_000;
    let results = [
        Some(r#"{"sharpe": 1.25, "trades": 40}"#),
        Some(r#"{"sharpe": 0.5, "trades": 12, "notes": "low, slow"}"#),
        Some("sharpe=2"),
    ];
    for (i, r) in results.iter().enumerate() {
        let a = j
            .attempt_started(&sw, &tasks[i].key, 1, 2000 + i as u32, t0)
            .unwrap();
        j.attempt_finished(
            a,
            &end("done", (200 + 100 * i as u64) << 20, 4000, false, *r),
        )
        .unwrap();
    }
    let a = j.attempt_started(&sw, &tasks[3].key, 1, 2003, t0).unwrap();
    j.attempt_finished(a, &end("failed", 64 << 20, 1500, false, None))
        .unwrap();
    let a = j.attempt_started(&sw, &tasks[4].key, 1, 2004, t0).unwrap();
    j.attempt_finished(a, &end("braked", 2 << 30, 9000, true, None))
        .unwrap();
    j.event(&sw, t0 + 9000, "brake", &json!({"task": tasks[4].key}))
        .unwrap();
    j.event(
        &sw,
        t0 + 9001,
        "learned_peak",
        &json!({"bytes": 450u64 << 20}),
    )
    .unwrap();
    let a = j.attempt_started(&sw, &tasks[5].key, 1, 2005, t0).unwrap();
    j.add_samples(
        a,
        &[MemSample {
            t_ms: 500,
            rss: 120 << 20,
            pss: Some(100 << 20),
            ..Default::default()
        }],
    )
    .unwrap();
    j.commit().unwrap();
}

fn journal_with(names: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("journal.db");
    for n in names {
        build(&p, n);
    }
    (d, p)
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({filters => vec![
            (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "[TIME]"),
            (r"\b\d+d\d{2}h\b", "[DUR]"),
        ]}, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

#[test]
fn status_shows_counts_running_tasks_peaks_and_eta() {
    let (_d, p) = journal_with(&["lam"]);
    let text = stdout_ok(&ramguard(&p, &["status"]));
    snapshot!("status_human", text);
}

#[test]
fn status_json_carries_a_schema_and_the_counts() {
    let (_d, p) = journal_with(&["lam"]);
    let v: Value = serde_json::from_str(&stdout_ok(&ramguard(&p, &["status", "--json"]))).unwrap();
    assert_eq!(v["schema"], json!(1));
    assert_eq!(
        v["counts"],
        json!({"total": 6, "queued": 1, "running": 1, "done": 3, "failed": 1, "interrupted": 0})
    );
    assert_eq!(v["running"][0]["task"], json!("beta=3.2,lam=1e-10"));
    assert_eq!(v["running"][0]["rss"], json!(120u64 << 20));
    assert_eq!(v["stale_running"], json!(true), "nobody holds the sweep");
    assert_eq!(v["learned_peak"], json!(450u64 << 20));
    assert_eq!(v["mean_duration_ms"], json!(4000));
    // 2 remaining (1 queued + 1 running), 1 running job: 4 s × 2 ÷ 1.
    assert_eq!(v["eta_ms"], json!(8000));
    assert_eq!(v["exit_classes"]["braked"], json!(1));
    assert_eq!(v["events"]["brake"], json!(1));
}

#[test]
fn results_table_csv_and_json() {
    let (_d, p) = journal_with(&["lam"]);
    let table = ramguard(&p, &["results"]);
    snapshot!("results_table", stdout_ok(&table));
    let stderr = String::from_utf8_lossy(&table.stderr);
    assert!(
        stderr.contains("1 task(s) wrote a result file that is not valid JSON"),
        "{stderr}"
    );

    let csv = stdout_ok(&ramguard(&p, &["results", "--format", "csv"]));
    snapshot!("results_csv", csv.clone());
    let header = csv.lines().next().unwrap();
    // Columns in the order the template uses the params (regression: beta came first).
    assert!(
        header.starts_with("task,lam,beta,state,attempts,peak_bytes,duration_s,exit"),
        "{header}"
    );
    assert!(
        header.contains("result.sharpe") && header.contains("result.notes"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.contains("\"low, slow\""), "CSV quotes commas");

    let v: Value = serde_json::from_str(&stdout_ok(&ramguard(&p, &["results", "--json"]))).unwrap();
    assert_eq!(v["schema"], json!(1));
    assert_eq!(v["sweep"], json!("lam"));
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6);
    assert_eq!(tasks[0]["params"], json!({"lam": "0", "beta": "3.0"}));
    assert_eq!(tasks[0]["result"]["sharpe"], json!(1.25));
    assert_eq!(tasks[0]["peak"], json!(200u64 << 20));
    assert_eq!(tasks[2]["result_raw"], json!("sharpe=2"));
    assert_eq!(tasks[4]["state"], json!("queued"));
    assert_eq!(tasks[4]["exit"], json!("braked"));
}

#[test]
fn list_shows_every_sweep() {
    let (_d, p) = journal_with(&["lam", "beta-only"]);
    snapshot!("list_human", stdout_ok(&ramguard(&p, &["list"])));
    let v: Value = serde_json::from_str(&stdout_ok(&ramguard(&p, &["list", "--json"]))).unwrap();
    assert_eq!(v["schema"], json!(1));
    let names: Vec<&str> = v["sweeps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta-only", "lam"]);
    assert_eq!(v["sweeps"][1]["counts"]["done"], json!(3));
}

#[test]
fn with_several_sweeps_the_latest_is_shown_and_unknown_names_list_the_known() {
    let (_d, p) = journal_with(&["lam", "beta-only"]);
    for cmd in ["status", "results"] {
        // Several sweeps of one script are routine: without a name, the one run last,
        // and stderr says which (it used to refuse, breaking `results > out.csv`).
        let out = ramguard(&p, &[cmd]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains("showing sweep 'beta-only', the latest run of 2")
                && err.contains("(beta-only, lam)"),
            "{err}"
        );
        let line = one_line_exit_2(&ramguard(&p, &[cmd, "nope"]));
        assert!(line.contains("no sweep named 'nope'"), "{line}");
        assert!(line.contains("known sweeps: beta-only, lam"), "{line}");
    }
    let v: Value = serde_json::from_str(&stdout_ok(&ramguard(
        &p,
        &["status", "beta-only", "--json"],
    )))
    .unwrap();
    assert_eq!(v["sweep"]["name"], json!("beta-only"));
    let v: Value =
        serde_json::from_str(&stdout_ok(&ramguard(&p, &["status", "lam", "--json"]))).unwrap();
    assert_eq!(v["sweep"]["name"], json!("lam"));
}

#[test]
fn a_missing_journal_says_to_run_first_and_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nothing-here.db");
    for cmd in ["status", "results", "list"] {
        let line = one_line_exit_2(&ramguard(&p, &[cmd]));
        assert!(
            line.contains(&format!("no journal at {}", p.display())),
            "{line}"
        );
        assert!(line.contains("run `ramguard run` first"), "{line}");
    }
    assert!(std::fs::read_dir(d.path()).unwrap().next().is_none());
}

#[test]
fn the_journal_env_var_is_honoured() {
    let (_d, p) = journal_with(&["lam"]);
    let out = Command::new(env!("CARGO_BIN_EXE_ramguard"))
        .args(["list", "--json"])
        .env("RAMGUARD_JOURNAL", &p)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    assert_eq!(v["sweeps"][0]["name"], json!("lam"));
}

/// Regression: a truncated journal must be refused in one line and never "repaired".
#[test]
fn corrupt_and_truncated_journals_are_refused_and_left_untouched() {
    let (d, p) = journal_with(&["lam"]);
    let full = std::fs::read(&p).unwrap();
    assert!(
        !d.path().join("journal.db-wal").exists(),
        "closed cleanly, WAL checkpointed"
    );

    let truncated = d.path().join("truncated.db");
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let garbage = d.path().join("garbage.db");
    std::fs::write(&garbage, vec![0xA5u8; 8192]).unwrap();
    let empty = d.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    for bad in [&truncated, &garbage, &empty] {
        let before = std::fs::read(bad).unwrap();
        for cmd in ["status", "results", "list"] {
            let line = one_line_exit_2(&ramguard(bad, &[cmd]));
            assert!(line.contains(&bad.display().to_string()), "{line}");
        }
        assert_eq!(
            std::fs::read(bad).unwrap(),
            before,
            "{} was modified",
            bad.display()
        );
    }
}

#[test]
fn the_v1_fixture_reads_through_every_command() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("v1.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/journals/v1.db"),
        &p,
    )
    .unwrap();
    let v: Value = serde_json::from_str(&stdout_ok(&ramguard(&p, &["status", "--json"]))).unwrap();
    assert_eq!(v["counts"]["total"], json!(4));
    let csv = stdout_ok(&ramguard(&p, &["results", "--format", "csv"]));
    assert!(csv.contains("result.sharpe"), "{csv}");
    stdout_ok(&ramguard(&p, &["list"]));
}

/// SHA-256 of a file, hex.
fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reading an old journal must not upgrade it: a migrated file is refused by the older
/// ramguard that wrote it. Only `run` (a writer) migrates.
#[test]
fn read_only_commands_leave_an_old_writable_journal_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("v1.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/journals/v1.db"),
        &p,
    )
    .unwrap();
    let before = sha256(&p);
    let commands: [&[&str]; 7] = [
        &["status", "--json"],
        &["status"],
        &["results", "--format", "csv"],
        &["list"],
        &["report", "--json"],
        &["report"],
        &["plan", "--mem", "1G", "--json"],
    ];
    for args in commands {
        let out = ramguard(&p, args);
        stdout_ok(&out);
        assert_eq!(
            sha256(&p),
            before,
            "`ramguard {}` changed the journal",
            args.join(" ")
        );
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["v1.db"], "`ramguard {}` left files", args.join(" "));
    }
    let version = |p: &Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&p), 1);
    // A run is a writer: it upgrades the journal to today's schema.
    let out = Command::new(env!("CARGO_BIN_EXE_ramguard"))
        .args(["run", "--progress", "none", "--journal"])
        .arg(&p)
        .args(["--", "true"])
        .current_dir(d.path())
        .env_remove("RAMGUARD_JOURNAL")
        .output()
        .unwrap();
    stdout_ok(&out);
    assert_eq!(version(&p), i64::from(ramguard::journal::SCHEMA_VERSION));
}
