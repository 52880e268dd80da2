//! The bad-input corpus (issue 19): every case exits 2 with one `error:` line (and at most
//! one `hint:` line), and leaves the work directory byte-identical — an existing journal
//! with results, its logs, and every other file — checked by hashing every file, name and
//! mode before and after. A new bad input found in the wild is one more row here.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use sha2::{Digest, Sha256};

/// Path → (mode, SHA-256 of the content, or "dir") for everything under `root`.
fn snapshot(root: &Path) -> BTreeMap<String, (u32, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.insert(rel, (mode, "dir".to_string()));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let hash: String = Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.insert(rel, (mode, hash));
            }
        }
    }
    out
}

/// The fixtures: a journal with a finished sweep and its logs, and the files cases point at.
fn fixture() -> Work {
    let w = Work::new();
    let out = w.run(&[
        "run",
        "--progress",
        "none",
        "--name",
        "base",
        "--",
        "sh",
        "-c",
        "echo out-{}; echo '{{\"v\":1}}' > \"$RAMGUARD_RESULT\"",
        ":::",
        "a",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let p = w.path();
    std::fs::write(p.join("afile"), "not a folder\n").unwrap();
    std::fs::write(p.join("empty.db"), "").unwrap();
    std::fs::create_dir(p.join("adir")).unwrap();
    std::fs::write(p.join("nul.txt"), "echo a\0b\n").unwrap();
    std::fs::write(p.join("big.txt"), format!("{}\n", "x".repeat(1 << 20))).unwrap();
    std::fs::write(p.join("noexec.sh"), "echo hi\n").unwrap();
    std::fs::write(p.join("bad.jsonl"), "{\"x\": 1}\n{bad json\n").unwrap();
    std::fs::write(p.join("bad.toml"), "not toml = = \n").unwrap();
    // A SQLite database that is not a journal.
    rusqlite::Connection::open(p.join("other.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    std::fs::write(
        p.join("recycle.toml"),
        "command = [\"true\"]\nrepeat = 1\n[options]\ntask_mem = \"1G\"\nrecycle = 99999999999\n",
    )
    .unwrap();
    std::fs::write(
        p.join("scalar.toml"),
        "command = [\"echo\", \"{lam}\"]\n[grid]\nlam = \"0,1e-10\"\n",
    )
    .unwrap();
    w
}

#[test]
fn every_bad_input_exits_2_with_one_line_and_changes_nothing() {
    let w = fixture();
    let j = w.journal().display().to_string();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // Issue 19, item 3: these used to change the journal or wipe results first.
        (
            "--fresh with a --log-dir that is a file",
            vec![
                "run",
                "--fresh",
                "--name",
                "base",
                "--log-dir",
                "afile",
                "--",
                "sh",
                "-c",
                "echo out-{}; echo '{{\"v\":1}}' > \"$RAMGUARD_RESULT\"",
                ":::",
                "a",
                "b",
            ],
        ),
        ("an empty --name", vec!["run", "--name", "", "--", "true"]),
        (
            "a --name with a newline",
            vec!["run", "--name", "a\nb", "--", "true"],
        ),
        (
            "a --log-dir below a file",
            vec!["run", "--log-dir", "afile/sub", "--", "true"],
        ),
        ("a NUL byte in a task", vec!["run", "--tasks", "nul.txt"]),
        (
            "a 1 MB argument",
            vec!["run", "--tasks", "big.txt", "--", "echo", "{}"],
        ),
        (
            "a missing command",
            vec!["run", "--", "no-such-command-ramguard-19", "{}", ":::", "a"],
        ),
        (
            "a missing command by path",
            vec!["run", "--", "./no-such-script.sh", "{}", ":::", "a"],
        ),
        (
            "a command that is not executable",
            vec!["run", "--", "./noexec.sh", "{}", ":::", "a"],
        ),
        // Item 6.
        (
            "an empty journal file",
            vec!["run", "--journal", "empty.db", "--", "true"],
        ),
        (
            "a journal that is a folder",
            vec!["run", "--journal", "adir", "--", "true"],
        ),
        (
            "a journal two folders deep in nothing",
            vec!["run", "--journal", "no/such/dir/j.db", "--", "true"],
        ),
        ("--threads 0", vec!["run", "--threads", "0", "--", "true"]),
        ("a TOML scalar as a grid axis", vec!["run", "scalar.toml"]),
        ("a negative -j", vec!["run", "-j", "-1", "--", "true"]),
        // Earlier cases, kept.
        (
            "a bad size",
            vec!["run", "--mem", "12X", "--", "true", ":::", "a"],
        ),
        (
            "a bad duration",
            vec!["run", "--timeout", "soon", "--", "true", ":::", "a"],
        ),
        ("--repeat 0", vec!["run", "--repeat", "0", "--", "true"]),
        (
            "an open range",
            vec!["run", "--grid", "x=1..", "--", "echo", "{x}"],
        ),
        (
            "an unknown placeholder",
            vec!["run", "--", "echo", "{nope}", ":::", "a"],
        ),
        (
            "a budget over the limit",
            vec!["run", "--mem", "1T", "--", "true", ":::", "a"],
        ),
        (
            "a missing tasks file",
            vec!["run", "--tasks", "missing.txt"],
        ),
        (
            "two task sources",
            vec!["run", "--repeat", "2", "--", "echo", "{}", ":::", "a"],
        ),
        ("nothing to run", vec!["run"]),
        ("-j 0", vec!["run", "-j", "0", "--", "true"]),
        ("--mem 0", vec!["run", "--mem", "0", "--", "true"]),
        (
            "--reserve over 100%",
            vec!["run", "--reserve", "200%", "--", "true"],
        ),
        ("--task-mem 0", vec!["run", "--task-mem", "0", "--", "true"]),
        ("--timeout 0", vec!["run", "--timeout", "0", "--", "true"]),
        (
            "--retries not a number",
            vec!["run", "--retries", "abc", "--", "true"],
        ),
        (
            "a grid axis given twice",
            vec![
                "run", "--grid", "x=1,2", "--grid", "x=3", "--", "echo", "{x}",
            ],
        ),
        (
            "a grid axis without a name",
            vec!["run", "--grid", "=1,2", "--", "echo", "{x}"],
        ),
        (
            "a grid axis without values",
            vec!["run", "--grid", "x=", "--", "echo", "{x}"],
        ),
        (
            "an empty ::: list",
            vec!["run", "--", "echo", "{1}", "{2}", ":::", "a", ":::"],
        ),
        (
            "a bad JSON line in --tasks",
            vec!["run", "--tasks", "bad.jsonl", "--", "echo", "{x}"],
        ),
        ("a sweep file that is not TOML", vec!["run", "bad.toml"]),
        ("a missing sweep file", vec!["run", "missing.toml"]),
        (
            "a SQLite file that is not a journal",
            vec!["run", "--journal", "other.db", "--", "true"],
        ),
        // Issue 17's small bugs.
        ("--estimate 0", vec!["run", "--estimate", "0", "--", "true"]),
        (
            "--retry-on without --retries",
            vec!["run", "--retry-on", "timeout", "--", "true"],
        ),
        (
            "--recycle 3 with a space",
            vec!["run", "--task-mem", "1G", "--recycle", "3", "--", "true"],
        ),
        (
            "a sweep file's recycle too large",
            vec!["run", "recycle.toml"],
        ),
        ("a missing sweep", vec!["results", "no-such-sweep"]),
        ("status of a missing sweep", vec!["status", "no-such-sweep"]),
        // The line names what is missing (it once ended at "were not provided:").
        ("plan without --mem", vec!["plan", "base"]),
    ];
    let before = snapshot(w.path());
    assert!(before.contains_key("journal.db"), "{before:?}");
    let mut failures = Vec::new();
    for (what, args) in &cases {
        let out = w.run(args);
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let one_line = lines
            .first()
            .is_some_and(|l| l.starts_with("error: ") && !l.trim_end().ends_with(':'))
            && lines.len() <= 2
            && lines.get(1).is_none_or(|l| l.starts_with("hint: "));
        if out.status.code() != Some(2) || !one_line {
            failures.push(format!(
                "{what}: exit {:?}, stderr:\n{err}",
                out.status.code()
            ));
        }
        let after = snapshot(w.path());
        if after != before {
            let changed: Vec<_> = after
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
                .collect();
            failures.push(format!("{what}: changed {changed:?}"));
            break;
        }
    }
    assert!(failures.is_empty(), "journal {j}:\n{}", failures.join("\n"));
}

/// The errors of issue 17's small bugs say what to write instead.
#[test]
fn small_bugs_of_issue_17_say_what_to_write() {
    let w = fixture();
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["run", "--estimate", "0", "--", "true"],
            &["--estimate must be more than 0"],
        ),
        (
            &["run", "--retry-on", "timeout", "--", "true"],
            &["--retry-on timeout", "--retries"],
        ),
        (
            &["run", "--task-mem", "1G", "--recycle", "3", "--", "true"],
            &["--recycle=3"],
        ),
        (
            &["run", "recycle.toml"],
            &["recycle = 99999999999: must be at most 4294967295"],
        ),
    ];
    for (args, words) in cases {
        let out = w.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for word in words {
            assert!(err.contains(word), "{args:?}: {err}");
        }
    }
}
