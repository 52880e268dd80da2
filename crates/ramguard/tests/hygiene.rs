//! Hygiene (issue 19): logs named by task identity so runs never overwrite or delete another
//! task's files, and everything ramguard writes private (directories 0700, files 0600)
//! whatever the umask.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn two_runs_of_one_sweep_keep_both_tasks_logs() {
    // Regression: logs were named by position in the run (`1.1.err`), so the second run's
    // x=4 overwrote x=2's stderr, and a silent task deleted another task's file.
    let w = Work::new();
    let run = |value: &str| {
        w.run(&[
            "run",
            "--progress",
            "plain",
            "--name",
            "logs",
            "--",
            "sh",
            "-c",
            "echo out-{} ; [ {} = 5 ] || echo err-{} >&2; exit 1",
            ":::",
            value,
        ])
    };
    let first = run("2");
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let second = run("4");
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    // A silent task (x=5, no stderr) comes third: it must not remove anyone's .err file.
    let third = run("5");
    assert_eq!(third.status.code(), Some(1), "{}", stderr(&third));

    let dir = w.path().join("logs/logs");
    let errs: Vec<String> = files_ending(&dir, ".err")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let mut errs_sorted = errs.clone();
    errs_sorted.sort();
    assert_eq!(
        errs_sorted,
        ["err-2\n", "err-4\n"],
        "{:?}",
        files_ending(&dir, "")
    );
    assert_eq!(files_ending(&dir, ".out").len(), 3);
    // Each run's failure line points at its own task's file.
    for (out, want) in [(&first, "err-2\n"), (&second, "err-4\n")] {
        let err = stderr(out);
        let line = err.lines().find(|l| l.contains("stderr in ")).unwrap();
        let path = line.split("stderr in ").nth(1).unwrap().trim();
        assert_eq!(std::fs::read_to_string(path).unwrap(), want, "{line}");
    }
    // Names carry the task's identity as a hash, never a parameter value.
    for p in files_ending(&dir, "") {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let mut parts = name.splitn(3, '.');
        let (id, attempt, kind) = (parts.next(), parts.next(), parts.next());
        assert!(
            id.is_some_and(|i| i.len() == 12 && i.chars().all(|c| c.is_ascii_hexdigit()))
                && attempt.is_some_and(|a| a.parse::<u32>().is_ok())
                && matches!(kind, Some("out" | "err" | "result.json")),
            "{name}"
        );
    }

    // The same task in a later run gets the same name, its next attempt number.
    let again = run("2");
    assert_eq!(again.status.code(), Some(1));
    let twos: Vec<_> = files_ending(&dir, ".err")
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).unwrap() == "err-2\n")
        .collect();
    assert_eq!(
        twos.len(),
        2,
        "attempts 1 and 2 of x=2 kept apart: {twos:?}"
    );
    let stem = |p: &Path| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .split('.')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(stem(&twos[0]), stem(&twos[1]));
}

#[test]
fn everything_ramguard_writes_is_private_under_a_permissive_umask() {
    let w = Work::new();
    // `.ramguard` left world-readable by an older version; umask 000 for the run itself.
    std::fs::create_dir(w.path().join(".ramguard")).unwrap();
    std::fs::set_permissions(
        w.path().join(".ramguard"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let script = "echo secret-{}; echo oops >&2; echo '{{\"v\":1}}' > \"$RAMGUARD_RESULT\"";
    let out = std::process::Command::new("/bin/sh")
        .current_dir(w.path())
        .env_remove("RAMGUARD_JOURNAL")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(ramguard_bin())
        .args([
            "run",
            "--progress",
            "none",
            "--name",
            "priv",
            "--",
            "sh",
            "-c",
            script,
            ":::",
            "t",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let own = w.path().join(".ramguard");
    assert_eq!(mode(&own), 0o700, ".ramguard");
    assert_eq!(mode(&own.join("logs")), 0o700, ".ramguard/logs");
    assert_eq!(
        mode(&own.join("logs/priv")),
        0o700,
        "the sweep's log folder"
    );
    assert_eq!(mode(&own.join("journal.db")), 0o600, "journal");
    for suffix in [".1.out", ".1.err", ".1.result.json"] {
        let f = only_file(&own.join("logs/priv"), suffix);
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    for entry in std::fs::read_dir(&own).unwrap().flatten() {
        let p = entry.path();
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
    }

    // --journal and --log-dir elsewhere: every directory ramguard creates is 0700.
    let journal = w.path().join("j/deep/journal.db");
    let logs = w.path().join("l/a/b");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    let out = std::process::Command::new("/bin/sh")
        .current_dir(w.path())
        .env_remove("RAMGUARD_JOURNAL")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(ramguard_bin())
        .args(["run", "--progress", "none", "--journal"])
        .arg(&journal)
        .arg("--log-dir")
        .arg(&logs)
        .args(["--", "sh", "-c", "echo hi-{}", ":::", "u"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for d in ["l", "l/a", "l/a/b"] {
        assert_eq!(mode(&w.path().join(d)), 0o700, "{d}");
    }
    assert_eq!(mode(&only_file(&logs, ".1.out")), 0o600);
    assert_eq!(mode(&journal), 0o600);
}

#[test]
fn a_value_with_a_newline_is_printed_escaped_and_cannot_fake_a_line() {
    // Regression: values were printed raw, so a value could fake a `done` line.
    let w = Work::new();
    let forged = "v\n2026-01-01T00:00:00Z done    #9 forged  0.1s peak 1 MiB";
    let out = w.run(&[
        "run",
        "--progress",
        "plain",
        "--",
        "echo",
        "{}",
        ":::",
        forged,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dry = w.run(&["run", "--dry-run", "--", "echo", "{}", ":::", forged]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    for text in [stderr(&out), stdout(&dry)] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("forged")).collect();
        assert!(!lines.is_empty(), "{text}");
        for l in lines {
            assert!(l.contains("v\\n2026"), "printed raw: {l}\n{text}");
        }
    }
    // The task itself got the value intact.
    let log = std::fs::read_to_string(only_file(&w.path().join("logs/echo"), ".1.out")).unwrap();
    assert_eq!(log, format!("{forged}\n"));
}
