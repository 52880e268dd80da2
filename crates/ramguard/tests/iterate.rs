//! Iterating as people do (issue 15): several sweeps of one script in one directory, grids
//! that grow and shrink, results of what was just run, output cut short by `| head` or a
//! closed terminal, GNU parallel's input conventions, and a journal from an older ramguard.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{stderr, stdout, wait_until, ChildGuard, Work};
use serde_json::Value;

/// A training script that records its arguments as its result.
const TRAIN: &str = r#"import json, os, sys
with open(os.environ["RAMGUARD_RESULT"], "w") as f:
    json.dump({"argv": sys.argv[1:]}, f)
"#;

fn work() -> Work {
    let w = Work::new();
    std::fs::write(w.path().join("train.py"), TRAIN).unwrap();
    w
}

/// Runs ramguard with plain progress; asserts it exited 0 and returns its stderr.
fn ok(w: &Work, args: &[&str]) -> String {
    let mut all = vec!["run", "--progress", "plain", "-j", "2"];
    all.extend_from_slice(args);
    let out = w.run(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "ramguard {all:?}: {}",
        stderr(&out)
    );
    stderr(&out)
}

/// How many tasks a run started.
fn starts(log: &str) -> usize {
    // `<time> start   #1 ...`; a progress line may say "cold start" too (a slow machine).
    log.lines()
        .filter(|l| {
            l.split_once(' ')
                .is_some_and(|(_, e)| e.starts_with("start "))
        })
        .count()
}

fn results(w: &Work, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["results", "--json"];
    args.extend_from_slice(extra);
    let out = w.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["tasks"].as_array().unwrap().clone()
}

/// Each task's recorded argv, as one line, sorted.
fn argv_lines(tasks: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = tasks
        .iter()
        .map(|t| {
            t["result"]["argv"]
                .as_array()
                .unwrap_or_else(|| panic!("no result in {t}"))
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    out.sort();
    out
}

fn list_names(w: &Work) -> Vec<(String, String)> {
    let out = w.run(&["list", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["sweeps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["template"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn two_task_files_of_one_script_in_one_directory_both_run() {
    let w = work();
    std::fs::write(
        w.path().join("a.tasks"),
        "python3 train.py --lam 1\npython3 train.py --lam 2\n",
    )
    .unwrap();
    std::fs::write(w.path().join("b.tasks"), "python3 train.py --lam 3\n").unwrap();
    let first = ok(&w, &["--tasks", "a.tasks"]);
    assert_eq!(starts(&first), 2, "{first}");
    // Regression: this run was refused, exit 2, "was run with another command".
    let second = ok(&w, &["--tasks", "b.tasks"]);
    assert_eq!(starts(&second), 1, "{second}");
    assert!(second.contains("new sweep 'train-2'"), "{second}");
    assert_eq!(
        list_names(&w),
        [
            ("train".to_string(), "tasks from a.tasks".to_string()),
            ("train-2".to_string(), "tasks from b.tasks".to_string()),
        ]
    );
    assert_eq!(argv_lines(&results(&w, &["train"])), ["--lam 1", "--lam 2"]);
    assert_eq!(argv_lines(&results(&w, &["train-2"])), ["--lam 3"]);
    // Each file reruns as itself: nothing left to do.
    let again = ok(&w, &["--tasks", "a.tasks"]);
    assert_eq!(starts(&again), 0, "{again}");
    assert!(
        again.contains("resuming sweep 'train': 2 of 2 done"),
        "{again}"
    );
}

#[test]
fn a_task_file_spelled_another_way_resumes_its_sweep() {
    let w = work();
    std::fs::write(
        w.path().join("a.tasks"),
        "python3 train.py --lam 1\npython3 train.py --lam 2\n",
    )
    .unwrap();
    std::fs::create_dir(w.path().join("sub")).unwrap();
    let first = ok(&w, &["--tasks", "./a.tasks"]);
    assert_eq!(starts(&first), 2, "{first}");
    let absolute = w.path().join("a.tasks");
    // Regression: each spelling was a new sweep (train-2, train-3) and ran everything again.
    for spelling in ["a.tasks", absolute.to_str().unwrap(), "sub/../a.tasks"] {
        let again = ok(&w, &["--tasks", spelling]);
        assert_eq!(starts(&again), 0, "{spelling}: {again}");
        assert!(
            again.contains("resuming sweep 'train': 2 of 2 done"),
            "{spelling}: {again}"
        );
    }
    assert_eq!(
        list_names(&w),
        [("train".to_string(), "tasks from a.tasks".to_string())]
    );
}

#[test]
fn grids_of_one_script_coexist_grow_shrink_and_reorder() {
    let w = work();
    let grid = |values: &str| -> Vec<String> {
        [
            "--grid",
            &format!("lam={values}"),
            "--",
            "python3",
            "train.py",
            "--lam",
            "{lam}",
        ]
        .map(str::to_string)
        .to_vec()
    };
    let run = |args: Vec<String>| ok(&w, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(starts(&run(grid("1,2"))), 2);
    // A third sweep with another grid (another command) runs beside it.
    let other = ok(
        &w,
        &[
            "--grid", "lam=1", "--grid", "beta=3,4", "--", "python3", "train.py", "--lam", "{lam}",
            "--beta", "{beta}",
        ],
    );
    assert_eq!(starts(&other), 2, "{other}");
    assert_eq!(list_names(&w).len(), 2);
    // Extended: only the new point runs.
    let extended = run(grid("1,2,3"));
    assert_eq!(starts(&extended), 1, "{extended}");
    assert!(extended.contains("lam=3"), "{extended}");
    // Reordered: nothing reruns.
    assert_eq!(starts(&run(grid("3,1,2"))), 0);
    // A smaller grid: results show that grid; --all the union of every grid run.
    assert_eq!(starts(&run(grid("2,3"))), 0);
    assert_eq!(argv_lines(&results(&w, &["train"])), ["--lam 2", "--lam 3"]);
    assert_eq!(
        argv_lines(&results(&w, &["train", "--all"])),
        ["--lam 1", "--lam 2", "--lam 3"]
    );
    let status = w.run(&["status", "train", "--json"]);
    let st: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(st["counts"]["total"], 2);
    assert_eq!(st["counts_all"]["total"], 3);
    let human = stdout(&w.run(&["status", "train"]));
    assert!(human.contains("1 more from earlier runs: --all"), "{human}");
    let table = stdout(&w.run(&["list"]));
    assert!(table.contains("2 (+1)"), "{table}");
}

#[test]
fn csv_columns_come_in_the_order_the_params_were_written() {
    let w = work();
    ok(
        &w,
        &[
            "--grid",
            "lam=0,1e-10",
            "--grid",
            "beta=3.0",
            "--",
            "python3",
            "train.py",
            "--lam",
            "{lam}",
            "--beta",
            "{beta}",
        ],
    );
    let out = w.run(&["results", "--format", "csv"]);
    let header = stdout(&out).lines().next().unwrap().to_string();
    assert!(
        header.starts_with("task,lam,beta,state,"),
        "regression: beta came before lam: {header}"
    );
}

#[test]
fn a_chosen_name_reused_for_another_command_is_refused_naming_both() {
    let w = work();
    ok(
        &w,
        &["--name", "exp", "--", "python3", "train.py", ":::", "a"],
    );
    let out = w.run(&[
        "run", "--name", "exp", "--", "python3", "train.py", "--v", "{1}", ":::", "b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: sweep 'exp'"), "{err}");
    assert!(
        err.contains("`python3 train.py`") && err.contains("`python3 train.py --v {1}`"),
        "{err}"
    );
    assert!(err.contains("--name") && err.contains("--fresh"), "{err}");
    assert_eq!(list_names(&w).len(), 1);
    assert_eq!(results(&w, &["exp"]).len(), 1);
}

#[test]
fn a_run_piped_into_head_still_finishes_every_task() {
    let w = work();
    let (reader, writer) = std::io::pipe().unwrap();
    let writer2 = writer.try_clone().unwrap();
    let values: Vec<String> = (1..=6).map(|i| format!("0.{i}")).collect();
    let mut args = vec![
        "run",
        "--progress",
        "plain",
        "-j",
        "2",
        "--json",
        "--",
        "sleep",
    ];
    args.push(":::");
    args.extend(values.iter().map(String::as_str));
    let child = w
        .ramguard()
        .args(&args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    // `| head -1`: read one line, then close the pipe while the sweep goes on.
    let mut first = String::new();
    BufReader::new(reader).read_line(&mut first).unwrap();
    assert!(first.contains("sweep"), "{first}");
    let status = wait_until(Duration::from_secs(60), || {
        matches!(guard.0.try_wait(), Ok(Some(_)))
    });
    assert!(status, "ramguard did not finish");
    let code = guard.0.wait().unwrap().code();
    // Regression: ramguard died of its first write after the close and every task with it.
    assert_eq!(code, Some(0));
    let tasks = results(&w, &[]);
    assert_eq!(tasks.len(), 6);
    assert!(tasks.iter().all(|t| t["state"] == "done"), "{tasks:?}");
}

#[test]
fn sighup_stops_neither_the_sweep_nor_its_log_to_a_pipe() {
    let w = work();
    let child = w
        .ramguard()
        .args([
            "run",
            "--progress",
            "plain",
            "-j",
            "1",
            "--",
            "sleep",
            ":::",
            "0.3",
            "0.4",
            "0.5",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let mut lines = BufReader::new(guard.0.stderr.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains(" start   #"));
    assert!(started);
    // The terminal goes away: a hangup for ramguard (tasks lead their own groups).
    let pid = rustix::process::Pid::from_raw(guard.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let code = guard.0.wait().unwrap().code();
    assert_eq!(code, Some(0), "after SIGHUP: {rest:?}");
    // stderr is a pipe, not the terminal that hung up (`> run.log 2>&1 &`, then log out):
    // the log goes on to the summary (regression: it used to stop at the hangup).
    assert!(rest.iter().any(|l| l.contains(" done ")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("3 of 3 done")), "{rest:?}");
    let tasks = results(&w, &[]);
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|t| t["state"] == "done"), "{tasks:?}");
}

/// What GNU parallel prints for `parallel -k echo ARGS`, if it is installed.
fn gnu_parallel(args: &[&str], dir: &Path, stdin: Option<&str>) -> Option<Vec<String>> {
    let mut c = Command::new("parallel");
    c.args(["--will-cite", "-k", "echo"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().ok()?;
    let mut input = child.stdin.take()?;
    input.write_all(stdin.unwrap_or("").as_bytes()).ok()?;
    drop(input);
    let out = child.wait_with_output().ok()?;
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    lines.sort();
    Some(lines)
}

/// Runs `python3 train.py ARGS` through ramguard and returns each task's argv, sorted.
fn through_ramguard(w: &Work, args: &[&str], stdin: Option<&str>) -> Vec<String> {
    let mut all = vec!["run", "--progress", "none", "--", "python3", "train.py"];
    all.extend_from_slice(args);
    let mut c = w.ramguard();
    c.args(&all).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        let mut input = child.stdin.take().unwrap();
        input.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{all:?}: {}", stderr(&out));
    let sweep = list_names(w)
        .into_iter()
        .find(|(_, t)| *t == template_of(args))
        .map(|(n, _)| n)
        .unwrap();
    argv_lines(&results(w, &[&sweep]))
}

/// The sweep's template for `python3 train.py ARGS ::: ...`.
fn template_of(args: &[&str]) -> String {
    ["python3", "train.py"]
        .iter()
        .chain(args.iter().take_while(|a| !a.starts_with(":::")))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Examples from GNU parallel's manual, each checked against the output it documents and,
/// where GNU parallel is installed, against what it prints.
#[test]
fn gnu_parallel_input_conventions_behave_as_its_manual_says() {
    let w = work();
    std::fs::write(w.path().join("inputs.txt"), "in1\nin2\n").unwrap();
    std::fs::write(w.path().join("b.txt"), "x\ny\n").unwrap();
    let cases: Vec<(Vec<&str>, Option<&str>, Vec<&str>)> = vec![
        // `::::` reads values from a file and mixes with `:::`.
        (
            vec!["{1}", "{2}", ":::", "x", "y", "::::", "inputs.txt"],
            None,
            vec!["x in1", "x in2", "y in1", "y in2"],
        ),
        // Every file after `::::` is a source of its own.
        (
            vec!["::::", "inputs.txt", "b.txt"],
            None,
            vec!["in1 x", "in1 y", "in2 x", "in2 y"],
        ),
        // `:::+` links to the previous list.
        (
            vec![":::", "a", "b", "c", ":::+", "1", "2", "3"],
            None,
            vec!["a 1", "b 2", "c 3"],
        ),
        // The manual's `::: a b c :::+ 1 2 3 ::: X Y :::+ 11 22`.
        (
            vec![
                ":::", "a", "b", "c", ":::+", "1", "2", "3", ":::", "X", "Y", ":::+", "11", "22",
            ],
            None,
            vec![
                "a 1 X 11", "a 1 Y 22", "b 2 X 11", "b 2 Y 22", "c 3 X 11", "c 3 Y 22",
            ],
        ),
        // `::::+` links files.
        (
            vec!["::::", "inputs.txt", "::::+", "b.txt"],
            None,
            vec!["in1 x", "in2 y"],
        ),
        // Path placeholders, as the manual describes each.
        (
            vec![
                "{.}",
                "{/}",
                "{//}",
                "{/.}",
                ":::",
                "subdir/foo.jpg",
                "sub.dir/bar",
            ],
            None,
            vec![
                "sub.dir/bar bar sub.dir bar",
                "subdir/foo foo.jpg subdir foo",
            ],
        ),
        // Values from stdin when no other source is given.
        (vec![], Some("p\nq\n"), vec!["p", "q"]),
    ];
    for (args, stdin, want) in cases {
        let got = through_ramguard(&w, &args, stdin);
        assert_eq!(got, want, "ramguard run -- python3 train.py {args:?}");
        if let Some(gnu) = gnu_parallel(&args, w.path(), stdin) {
            assert_eq!(got, gnu, "GNU parallel disagrees on {args:?}");
        }
    }
}

/// The schema v1 fixture, with a sweep of this command half done as a v1 ramguard left
/// it, opens, migrates and resumes: only what is not done runs.
#[test]
fn an_old_journal_opens_migrates_and_resumes() {
    let w = work();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/journals/v1.db");
    std::fs::copy(&fixture, w.journal()).unwrap();
    let template = "python3 train.py --lam {lam}";
    let fp = ramguard::journal::fingerprint(template, &serde_json::json!({"shell": false}));
    {
        let c = rusqlite::Connection::open(w.journal()).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1, "the fixture is a v1 journal");
        c.execute(
            "INSERT INTO sweeps (name, fingerprint, template, settings, created_unix_ms, updated_unix_ms)
             VALUES ('train', ?1, ?2, '{}', 1763900000000, 1763900000000)",
            [&fp, template],
        )
        .unwrap();
        let id = c.last_insert_rowid();
        for (seq, lam, state) in [(0, "1", "done"), (1, "2", "queued")] {
            c.execute(
                "INSERT INTO tasks (sweep_id, key, seq, params, argv, state, attempts, peak)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![
                    id,
                    format!(r#"{{"lam":"{lam}"}}"#),
                    seq,
                    format!(r#"{{"lam":"{lam}"}}"#),
                    format!(r#"["python3","train.py","--lam","{lam}"]"#),
                    state,
                    i64::from(state == "done"),
                    (state == "done").then_some(20i64 << 20),
                ],
            )
            .unwrap();
        }
    }
    let log = ok(
        &w,
        &[
            "--grid",
            "lam=1,2,3",
            "--",
            "python3",
            "train.py",
            "--lam",
            "{lam}",
        ],
    );
    assert!(log.contains("resuming sweep 'train': 1 of 3 done"), "{log}");
    assert_eq!(starts(&log), 2, "{log}");
    let c = rusqlite::Connection::open(w.journal()).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, ramguard::journal::SCHEMA_VERSION as i64);
    let tasks = results(&w, &["train"]);
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|t| t["state"] == "done"), "{tasks:?}");
    // The fixture's own sweep still reads, every task of it, in its template's order.
    let old = w.run(&["results", "lam-sweep", "--format", "csv"]);
    assert_eq!(old.status.code(), Some(0), "{}", stderr(&old));
    let text = stdout(&old);
    assert!(text.starts_with("task,lam,beta,"), "{text}");
    assert_eq!(text.lines().count(), 5, "{text}");
}

/// A sweep journaled under schema v1 is resumed by its own command: its fingerprint was made
/// from other settings (-j, --threads), so it is found by its template and adopted, and only
/// what is not done runs (regression: the rerun used to start a new sweep and run all four).
#[test]
fn the_v1_fixtures_own_sweep_resumes_under_its_command() {
    use std::os::unix::fs::PermissionsExt;
    let w = Work::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/journals/v1.db");
    std::fs::copy(&fixture, w.journal()).unwrap();
    // The fixture's command is `python t3b.py ...`: a `python` that only records its args.
    let bin = w.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let py = bin.join("python");
    std::fs::write(&py, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = w
        .ramguard()
        .env("PATH", path)
        .args([
            "run",
            "--progress",
            "plain",
            "-j",
            "2",
            "--grid",
            "lam=0,1e-10",
            "--grid",
            "beta=3.0,3.1",
            "--",
            "python",
            "t3b.py",
            "--lam",
            "{lam}",
            "--beta",
            "{beta}",
        ])
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("resuming sweep 'lam-sweep'"), "{log}");
    // One task was done; the failed one and the two queued ones run.
    assert_eq!(starts(&log), 3, "{log}");
    let list = w.run(&["list", "--json"]);
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["sweeps"].as_array().map(Vec::len), Some(1), "{v}");
    let tasks = results(&w, &["lam-sweep"]);
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    assert!(tasks.iter().all(|t| t["state"] == "done"), "{tasks:?}");
}

/// Without `--name` the command finds its sweep; a new command of the same script gets the
/// next free suffix; a chosen name is taken as given.
#[test]
fn sweep_names_follow_the_command() {
    use ramguard::journal::{fingerprint, Journal, SweepSpec};
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("journal.db");
    let mut j = Journal::open(&path).unwrap();
    let fp = |t: &str| fingerprint(t, &serde_json::json!({"shell": false}));
    let begin = |j: &mut Journal, name: &str, t: &str| {
        let spec = SweepSpec {
            name: name.into(),
            fingerprint: fp(t),
            template: t.into(),
            settings: serde_json::json!({}),
        };
        drop(j.begin_sweep(&spec, false).unwrap());
    };
    let a = "python3 train.py --lam {lam}";
    let b = "python3 train.py --beta {beta}";
    let c = j.choose_name(None, "train", &fp(a), a).unwrap();
    assert_eq!(
        (c.name.as_str(), c.new, c.taken.is_none()),
        ("train", true, true)
    );
    begin(&mut j, "train", a);
    // Someone chose `train-2` by hand for yet another command.
    begin(&mut j, "train-2", "python3 train.py {1}");
    let c = j.choose_name(None, "train", &fp(b), b).unwrap();
    assert_eq!(c.name, "train-3");
    assert_eq!(c.taken, Some(("train".to_string(), a.to_string())));
    begin(&mut j, "train-3", b);
    // The same command, in any later run, finds its sweep.
    assert_eq!(
        j.choose_name(None, "train", &fp(b), b).unwrap().name,
        "train-3"
    );
    assert_eq!(
        j.choose_name(None, "train", &fp(a), a).unwrap().name,
        "train"
    );
    // A chosen name is the user's word, new or not.
    let c = j.choose_name(Some("exp"), "train", &fp(a), a).unwrap();
    assert_eq!((c.name.as_str(), c.new), ("exp", true));
    // A dry run reads the same answer without writing.
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    let peek = ramguard::journal::identity::peek_name(&path, None, "train", &fp(b), b).unwrap();
    assert_eq!(peek.name, "train-3");
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );
}

#[test]
fn a_dry_run_shows_the_name_the_run_will_use() {
    let w = work();
    ok(
        &w,
        &["--", "python3", "train.py", "--lam", "{1}", ":::", "1"],
    );
    let out = w.run(&[
        "run",
        "--dry-run",
        "--",
        "python3",
        "train.py",
        "--beta",
        "{1}",
        ":::",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("sweep      train-2\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(list_names(&w).len(), 1, "a dry run writes nothing");
}

/// Stdin is a source only when it holds values: an empty pipe (cron) leaves a command
/// without placeholders to run once, and refuses one that needs values.
#[test]
fn an_empty_stdin_runs_a_lone_command_once_and_refuses_placeholders() {
    let w = work();
    let run = |args: &[&str]| {
        let mut c = w.ramguard();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    };
    let out = run(&["run", "--", "python3", "train.py", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(argv_lines(&results(&w, &[])), ["--once"]);
    let out = run(&["run", "--", "python3", "train.py", "{}"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "error: no tasks: stdin is empty; give values on stdin, or after `:::` or `::::`"
    );
    assert_eq!(list_names(&w).len(), 1, "the refusal wrote nothing");
}

/// A pipe on stdin that stays open and silent (a notebook, a CI step) would hang a lone
/// command without a word: ramguard says what it waits for, and goes on when it closes.
#[test]
fn a_silent_open_stdin_is_named_and_closing_it_runs_the_command() {
    let w = work();
    let mut c = w.ramguard();
    c.args([
        "run",
        "--progress",
        "plain",
        "--",
        "python3",
        "train.py",
        "--once",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = ChildGuard(c.spawn().unwrap());
    let input = child.0.stdin.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ramguard said nothing while it waited on stdin");
    assert!(
        first.starts_with("ramguard: waiting for the tasks' values on stdin")
            && first.contains("< /dev/null"),
        "{first}"
    );
    drop(input);
    assert!(
        wait_until(Duration::from_secs(30), || matches!(
            child.0.try_wait(),
            Ok(Some(_))
        )),
        "closing stdin did not let the run go on"
    );
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(child.0.wait().unwrap().code(), Some(0), "{rest:?}");
    assert_eq!(argv_lines(&results(&w, &[])), ["--once"]);
}

/// Under `nohup` (SIGHUP ignored) tasks keep ignoring SIGHUP, as they did before ramguard
/// handled it; started normally they get the default disposition, not ramguard's handler.
#[test]
fn tasks_inherit_nohup_and_nothing_else() {
    let w = work();
    let hup_ignored = |nohup: bool| -> bool {
        let _ = std::fs::remove_file(w.path().join("sigign.txt"));
        let mut c = if nohup {
            let mut c = Command::new("nohup");
            c.arg(common::ramguard_bin());
            c
        } else {
            let mut c = Command::new(common::ramguard_bin());
            // Started normally, whatever this test process inherited (a CI runner under
            // nohup ignores SIGHUP, and so would everything it starts).
            // SAFETY: signal() is async-signal-safe; nothing else runs in the child.
            unsafe {
                c.pre_exec(|| {
                    libc::signal(libc::SIGHUP, libc::SIG_DFL);
                    Ok(())
                });
            }
            c
        };
        let out = c
            .current_dir(w.path())
            .env("RAMGUARD_JOURNAL", w.journal())
            .stdin(Stdio::null())
            .args([
                "run",
                "--fresh",
                "--progress",
                "none",
                "--",
                "sh",
                "-c",
                "grep SigIgn /proc/$$/status > sigign.txt",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = std::fs::read_to_string(w.path().join("sigign.txt")).unwrap();
        let mask = u64::from_str_radix(text.split_whitespace().nth(1).unwrap(), 16).unwrap();
        mask & 1 == 1 // bit 0 is signal 1, SIGHUP
    };
    assert!(hup_ignored(true), "a task under nohup ignores SIGHUP");
    assert!(
        !hup_ignored(false),
        "a task does not inherit a handler as 'ignored'"
    );
}
