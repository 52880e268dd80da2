//! `run`'s plain progress output, snapshot-tested (insta). The sweep runs on the scripted
//! executor (`--scripted FILE`, hidden: simulated time, no process started), so the lines
//! are the same on every machine; everything else is the real `run` — settings, journal,
//! sink, printer. Filters mask the wall-clock timestamps and the host's memory limit.

mod common;

use common::*;

/// Runs `echo {} ::: a b c` with `--progress plain` on the scripted executor `script`
/// (JSON), returning stderr with the exit code appended.
fn plain_run(w: &Work, script: &str, flags: &[&str]) -> String {
    std::fs::write(w.path().join("script.json"), script).unwrap();
    let mut args = vec!["run", "--progress", "plain", "--scripted", "script.json"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "echo", "{}", ":::", "a", "b", "c"]);
    let out = w.run(&args);
    format!("{}exit {:?}\n", stderr(&out), out.status.code())
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({filters => vec![
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z ", "[TIME] "),
            (r"\(limit [^)]* from [^)]*\)", "(limit [HOST])"),
        ]}, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

#[test]
fn every_task_done() {
    let w = Work::new();
    let script = r#"{ "capacity": "4G",
        "tasks": { "1": [ {"peak": "200M", "ramp": "1s", "hold": "1s"} ],
                   "2": [ {"peak": "300M", "ramp": "1s", "hold": "2s"} ],
                   "3": [ {"peak": "250M", "ramp": "500ms", "hold": "1s"} ] } }"#;
    let text = plain_run(&w, script, &["--mem", "2G", "-j", "2"]);
    snapshot!("all_done", &text);
    // The same script gives the same run, line for line.
    let again = plain_run(&w, script, &["--mem", "2G", "-j", "2", "--fresh"]);
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.splitn(2, 'Z').last().unwrap_or(l).to_string())
            .collect()
    };
    assert_eq!(strip(&text), strip(&again));
}

#[test]
fn a_brake_requeues_the_newest_task_which_then_finishes() {
    let w = Work::new();
    let jump = r#"{"points": [["0s", "0"], ["150ms", "1200M"], ["3s", "1200M"]]}"#;
    let script = format!(r#"{{ "capacity": "4G", "tasks": {{ "1": [{jump}], "2": [{jump}] }} }}"#);
    let text = plain_run(&w, &script, &["--mem", "2G", "-j", "2"]);
    assert!(text.contains("1 brake(s)"), "{text}");
    snapshot!("brake_and_retry", &text);
}

#[test]
fn a_task_over_its_cap_fails() {
    let w = Work::new();
    let script = r#"{ "capacity": "4G",
        "tasks": { "2": [ {"peak": "600M", "ramp": "1s", "hold": "2s"} ] } }"#;
    let text = plain_run(
        &w,
        script,
        &["--mem", "2G", "-j", "2", "--task-mem", "400M"],
    );
    assert!(text.ends_with("exit Some(1)\n"), "{text}");
    snapshot!("over_cap", &text);
}

#[test]
fn a_task_is_paused_for_memory_and_resumed() {
    // a and b, started together at the plausible 1 GiB, climb to 2.2 GiB together under a
    // 2 GiB budget: b is paused. While a holds its peak and nothing else grows, b is resumed
    // to probe what is left and paused again short of the limit; it is resumed for good
    // when a ends. c, 300 MiB, probes likewise beside b's peak and ends before b.
    let w = Work::new();
    let script = r#"{ "capacity": "4G",
        "tasks": { "1": [ {"peak": "900M", "ramp": "1s", "hold": "1s"} ],
                   "2": [ {"peak": "1300M", "ramp": "1s", "hold": "2s"} ],
                   "3": [ {"peak": "300M", "ramp": "500ms", "hold": "1s"} ] } }"#;
    let text = plain_run(&w, script, &["--mem", "2G", "-j", "2"]);
    let order = ["pause   #2 b", "done    #1 a", "resume  #2 b"];
    let at: Vec<Option<usize>> = order.iter().map(|l| text.rfind(l)).collect();
    assert!(at.iter().all(Option::is_some) && at.is_sorted(), "{text}");
    let (c, b) = (text.find("done    #3 c"), text.find("done    #2 b"));
    assert!(matches!((c, b), (Some(c), Some(b)) if c < b), "{text}");
    assert!(text.contains("0 brake(s), 3 pause(s)"), "{text}");
    snapshot!("pause_resume", &text);
}

#[test]
fn a_failing_task_is_retried_then_fails() {
    let w = Work::new();
    let script = r#"{ "capacity": "4G",
        "tasks": { "2": [ {"peak": "100M", "ramp": "500ms", "hold": "500ms", "exit": 3} ] } }"#;
    let text = plain_run(&w, script, &["--mem", "2G", "-j", "2", "--retries", "1"]);
    assert!(text.ends_with("exit Some(1)\n"), "{text}");
    snapshot!("failure_retried", &text);
}

#[test]
fn a_retry_started_within_the_commit_window_prints_after_the_attempt_it_retries() {
    // b fails 20 ms after a's completion was committed: its retry starts inside the 50 ms
    // window in which completions wait for their durable commit. The retry's start line
    // must still come after b's own "retry" line, not before it.
    let w = Work::new();
    let script = r#"{ "capacity": "4G",
        "tasks": { "2": [ {"peak": "10M", "ramp": "60ms", "hold": "60ms", "exit": 3} ] } }"#;
    let text = plain_run(&w, script, &["--mem", "2G", "-j", "2", "--retries", "1"]);
    let retry = text.find("retry   #2 b").expect(&text);
    let restart = text.find("start   #2 b (attempt 2)").expect(&text);
    assert!(retry < restart, "{text}");
}

#[test]
fn ctrl_c_stops_the_running_tasks() {
    let w = Work::new();
    let script = r#"{ "capacity": "4G", "interrupt_at": ["1500ms"],
        "tasks": { "1": [ {"peak": "200M", "ramp": "1s", "hold": "5s"} ],
                   "2": [ {"peak": "200M", "ramp": "1s", "hold": "5s"} ] } }"#;
    let text = plain_run(&w, script, &["--mem", "2G", "-j", "2"]);
    assert!(text.ends_with("exit Some(130)\n"), "{text}");
    snapshot!("interrupted", &text);
}

#[test]
fn a_bad_script_is_refused_before_the_journal_is_touched() {
    let w = Work::new();
    std::fs::write(w.path().join("script.json"), r#"{ "capacity": "lots" }"#).unwrap();
    let out = w.run(&["run", "--scripted", "script.json", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(!w.journal().exists());
}
