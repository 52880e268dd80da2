//! A journal the user can read but not write (issue 19, item 4): another user's 0644 file in
//! a folder they cannot write, and a read-only mount. `status`, `results` and `list` read it;
//! nothing is created or changed; `run` refuses it with one line, exit 2.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn finished_sweep(w: &Work) {
    let out = w.run(&[
        "run",
        "--progress",
        "none",
        "--name",
        "ro",
        "--",
        "sh",
        "-c",
        "echo {}",
        ":::",
        "a",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn listing(dir: &Path) -> Vec<(String, u64, u32)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.len(),
                m.permissions().mode(),
            )
        })
        .collect();
    v.sort();
    v
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `ramguard ARGS --journal J` as a user who may read the journal but not write it: as root,
/// the `nobody` user on a 0644 journal in a 0755 folder; otherwise ourselves on a 0444
/// journal in a 0555 folder.
fn as_reader(w: &Work, args: &[&str]) -> Output {
    let j = w.journal();
    if is_root() {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(ramguard_bin())
            .arg(args[0])
            .arg("--journal")
            .arg(&j)
            .args(&args[1..])
            .current_dir("/")
            .output()
            .expect("setpriv")
    } else {
        w.ramguard()
            .args(args)
            .arg("--journal")
            .arg(&j)
            .output()
            .unwrap()
    }
}

#[test]
fn status_results_and_list_read_a_journal_the_user_cannot_write() {
    let w = Work::new();
    finished_sweep(&w);
    let dir = w.path();
    let (dir_mode, file_mode) = if is_root() {
        (0o755, 0o644)
    } else {
        (0o555, 0o444)
    };
    std::fs::set_permissions(w.journal(), std::fs::Permissions::from_mode(file_mode)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
    let before = listing(dir);
    let status = as_reader(&w, &["status", "ro"]);
    let results = as_reader(&w, &["results", "ro", "--format", "json"]);
    let list = as_reader(&w, &["list"]);
    let run = as_reader(
        &w,
        &[
            "run", "--name", "ro", "--", "sh", "-c", "echo {}", ":::", "c",
        ],
    );
    let after = listing(dir);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    assert_eq!(status.status.code(), Some(0), "status: {}", stderr(&status));
    assert!(stdout(&status).contains("2 done"), "{}", stdout(&status));
    assert_eq!(
        results.status.code(),
        Some(0),
        "results: {}",
        stderr(&results)
    );
    let v: serde_json::Value = serde_json::from_slice(&results.stdout).unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(list.status.code(), Some(0), "list: {}", stderr(&list));
    assert!(stdout(&list).contains("ro"), "{}", stdout(&list));
    for o in [&status, &results, &list] {
        assert!(!stderr(o).contains("corrupt"), "{}", stderr(o));
    }
    // `run` must write: one line, exit 2, and nothing changed.
    assert_eq!(run.status.code(), Some(2), "run: {}", stderr(&run));
    assert_eq!(stderr(&run).lines().count(), 1, "{}", stderr(&run));
    assert!(stderr(&run).contains("read-only"), "{}", stderr(&run));
    assert_eq!(before, after, "the folder changed");
}

#[test]
fn status_and_results_read_a_journal_on_a_read_only_mount() {
    if !is_root() {
        eprintln!("skipped: a private read-only bind mount needs root (CI runs as root)");
        return;
    }
    let w = Work::new();
    finished_sweep(&w);
    let dir = w.path().display().to_string();
    let script = format!(
        "mount --bind {dir} {dir} && mount -o remount,bind,ro {dir} && \"$0\" status ro --journal {dir}/journal.db && \"$0\" results ro --journal {dir}/journal.db"
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .arg(ramguard_bin())
        .output()
        .expect("unshare");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 done"), "{}", stdout(&out));
    assert!(stdout(&out).contains("done"), "{}", stdout(&out));
}

/// An old journal the user cannot write is read through a migrated copy in memory, as a
/// writable one is: it used to be refused ("cannot be upgraded").
#[test]
fn an_old_journal_the_user_cannot_write_is_read_without_upgrading() {
    let w = Work::new();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/journals/v1.db"),
        w.journal(),
    )
    .unwrap();
    let dir = w.path();
    let (dir_mode, file_mode) = if is_root() {
        (0o755, 0o644)
    } else {
        (0o555, 0o444)
    };
    std::fs::set_permissions(w.journal(), std::fs::Permissions::from_mode(file_mode)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
    let before = listing(dir);
    let status = as_reader(&w, &["status", "--json"]);
    let after = listing(dir);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(status.status.code(), Some(0), "status: {}", stderr(&status));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["counts"]["total"], 4, "{v}");
    assert_eq!(before, after, "the folder changed");
}
