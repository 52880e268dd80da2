//! Integration tests for the `memhog` binary.
//!
//! Every spawned process is owned by a [`Guard`] that SIGKILLs it (and any
//! escapee pid it knows about) on drop, so nothing outlives a failing test.
//! Nothing sleeps a fixed time to let things settle: conditions are polled
//! with a deadline.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const DEADLINE: Duration = Duration::from_secs(5);

fn memhog() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memhog"));
    cmd.env_remove("RAMGUARD_RESULT");
    cmd
}

fn run(args: &[&str]) -> Output {
    memhog().args(args).output().expect("running memhog")
}

/// Owns a spawned memhog; kills it (and the escapee named in `pid_file`,
/// if any) when dropped.
struct Guard {
    child: Child,
    pid_file: Option<PathBuf>,
}

impl Guard {
    fn spawn(args: &[&str]) -> Self {
        Self::spawn_cmd(memhog().args(args))
    }

    fn spawn_cmd(cmd: &mut Command) -> Self {
        let child = cmd.spawn().expect("spawning memhog");
        Self {
            child,
            pid_file: None,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for exit, with a deadline.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "memhog did not exit in time");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = self.pid_file.as_deref().and_then(read_pid) {
            kill_escapee(pid);
        }
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// SIGKILLs `pid` if it is still a memhog process (guards against pid
/// reuse), then waits for it to disappear or become a zombie.
fn kill_escapee(pid: i32) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    if exe.is_ok_and(|p| p == Path::new(env!("CARGO_BIN_EXE_memhog"))) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        poll(|| !is_alive(pid));
    }
}

/// Polls `cond` every 5 ms until it holds or [`DEADLINE`] passes.
fn poll(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}

/// RSS in bytes from /proc/PID/statm, or 0 if unreadable.
fn rss(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_size())
}

/// PSS in bytes from /proc/PID/smaps_rollup.
fn pss(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .expect("Pss line");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Fields of /proc/PID/stat after the command name: index 0 is the state
/// (field 3), 1 ppid, 2 pgrp, 3 session (field 6), ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn is_alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn peak_is_resident_during_hold() {
    let mut g = Guard::spawn(&["--peak", "32M", "--hold", "1s"]);
    let pid = g.pid();
    assert!(
        poll(|| rss(pid) >= 30 * MIB),
        "RSS stayed at {} bytes",
        rss(pid)
    );
    assert_eq!(g.wait(DEADLINE).code(), Some(0));
}

/// CPU time (user + system) a process has used, from its `stat`.
fn cpu_seconds(pid: i32) -> f64 {
    let f = stat_fields(pid).expect("a live process");
    // stat_fields starts at the state (field 3): utime is field 14, stime 15.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
fn a_hold_that_computes_uses_cpu_and_a_plain_one_sleeps() {
    let mut working = Guard::spawn(&["--peak", "4M", "--hold", "1500ms", "--hold-cpu", "50"]);
    let mut sleeping = Guard::spawn(&["--peak", "4M", "--hold", "1500ms"]);
    let (w, s) = (working.pid(), sleeping.pid());
    std::thread::sleep(Duration::from_millis(1200));
    let (w_cpu, s_cpu) = (cpu_seconds(w), cpu_seconds(s));
    assert_eq!(working.wait(DEADLINE).code(), Some(0));
    assert_eq!(sleeping.wait(DEADLINE).code(), Some(0));
    // Half of each tick over about a second; a loaded machine may give it less.
    assert!(w_cpu >= 0.2, "the computing hold used {w_cpu} s of CPU");
    assert!(s_cpu <= 0.05, "the sleeping hold used {s_cpu} s of CPU");
    assert_eq!(run(&["--hold-cpu", "101"]).status.code(), Some(2));
}

#[test]
fn ramp_takes_its_time_and_leak_grows() {
    let start = Instant::now();
    let mut g = Guard::spawn(&[
        "--peak", "8M", "--ramp", "300ms", "--hold", "1s", "--leak", "16M",
    ]);
    let pid = g.pid();
    // 8 MiB peak plus at least 4 MiB of leak (reached ~250 ms into the hold).
    assert!(poll(|| rss(pid) >= 12 * MIB), "RSS {}", rss(pid));
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(g.wait(DEADLINE).code(), Some(0));
    assert!(start.elapsed() >= Duration::from_millis(1300));
}

/// Stops a memhog ramping 16 MiB over 3 s once its RSS reaches 6 MiB (some 0.7 s into the
/// ramp: the binary alone holds about 2 MiB, so a lower mark could be met before the ramp
/// began), for 2 s, continues it, and returns how long it took to end after that.
fn ends_after_a_pause(extra: &[&str]) -> Duration {
    let mut args = vec!["--peak", "16M", "--ramp", "3s", "--hold", "100ms"];
    args.extend_from_slice(extra);
    let mut g = Guard::spawn(&args);
    let pid = g.pid();
    assert!(poll(|| rss(pid) >= 6 * MIB), "RSS {}", rss(pid));
    // SAFETY: plain kill(2) on the child this test owns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    assert!(poll(|| stat_fields(pid).is_some_and(|f| f[0] == "T")));
    // The pause being measured.
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let continued = Instant::now();
    assert_eq!(g.wait(DEADLINE).code(), Some(0));
    continued.elapsed()
}

#[test]
fn a_paused_memhog_resumes_where_it_stopped_as_real_work_does() {
    // About 2.4 s of ramp and hold are left when it is stopped; they are still left when it
    // is continued.
    let left = ends_after_a_pause(&[]);
    assert!(
        left >= Duration::from_millis(1500),
        "ended {left:?} after SIGCONT"
    );
    // On the wall-clock schedule the ramp was nearly due: it caught up at once, finished
    // some 0.3 s later and held 0.1 s.
    let left = ends_after_a_pause(&["--wall-clock"]);
    assert!(
        left < Duration::from_millis(1000),
        "ended {left:?} after SIGCONT"
    );
}

#[test]
fn exit_code_and_signal() {
    assert_eq!(run(&["--exit", "3"]).status.code(), Some(3));
    assert_eq!(run(&[]).status.code(), Some(0));
    let killed = run(&["--signal", "KILL"]).status;
    assert_eq!(killed.signal(), Some(9), "{killed:?}");
    let segv = run(&["--signal", "SEGV"]).status;
    assert_eq!(segv.signal(), Some(libc::SIGSEGV), "{segv:?}");
    assert!(!segv.core_dumped());
    assert_eq!(run(&["--signal", "15"]).status.signal(), Some(15));
}

#[test]
fn result_json_is_written_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");

    let out = memhog()
        .args(["--result", r#"{"x":1}"#])
        .env("RAMGUARD_RESULT", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(value, serde_json::json!({"x": 1}));

    std::fs::remove_file(&path).unwrap();
    let out = memhog()
        .args(["--result", "not json"])
        .env("RAMGUARD_RESULT", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!path.exists());

    let out = memhog()
        .args(["--result-raw", "not json", "--exit", "4"])
        .env("RAMGUARD_RESULT", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");

    // Without RAMGUARD_RESULT nothing is written and nothing fails.
    assert!(run(&["--result", "[1,2]"]).status.success());
}

#[test]
fn children_share_pages_copy_on_write() {
    let g = Guard::spawn(&["--children", "2", "--peak", "32M", "--hold", "1s"]);
    let pid = g.pid();
    assert!(
        poll(|| {
            let kids = children_of(pid);
            kids.len() == 2 && kids.iter().all(|&k| rss(k) >= 30 * MIB)
        }),
        "children {:?}",
        children_of(pid)
    );
    let kids = children_of(pid);
    // Children stay in the parent's process group.
    let pgrp = &stat_fields(pid).unwrap()[2];
    for &k in &kids {
        assert_eq!(&stat_fields(k).unwrap()[2], pgrp);
    }
    let all: Vec<i32> = std::iter::once(pid).chain(kids.iter().copied()).collect();
    let rss_sum: u64 = all.iter().map(|&p| rss(p)).sum();
    let pss_sum: u64 = all.iter().map(|&p| pss(p)).sum();
    assert!(
        rss_sum * 2 > pss_sum * 3,
        "RSS sum {rss_sum} vs PSS sum {pss_sum}"
    );
    // Killing the parent takes the children with it (PDEATHSIG).
    drop(g);
    for &k in &kids {
        assert!(poll(|| !is_alive(k)), "child {k} outlived its parent");
    }
}

#[test]
fn children_are_reaped_when_hold_ends() {
    let mut g = Guard::spawn(&["--children", "2", "--hold", "300ms"]);
    let pid = g.pid();
    assert!(poll(|| children_of(pid).len() == 2));
    let kids = children_of(pid);
    assert_eq!(g.wait(DEADLINE).code(), Some(0));
    for &k in &kids {
        assert!(poll(|| !is_alive(k)), "child {k} outlived the hold");
    }
}

#[test]
fn escapee_leaves_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("escapee.pid");
    let mut g = Guard::spawn_cmd(
        memhog()
            .args([
                "--escapee",
                "8M",
                "--escapee-hold",
                "2s",
                "--verbose",
                "--pid-file",
            ])
            .arg(&pid_file)
            .stderr(Stdio::piped()),
    );
    g.pid_file = Some(pid_file.clone());
    assert_eq!(g.wait(DEADLINE).code(), Some(0));
    let escapee = read_pid(&pid_file).expect("pid file");
    let mut stderr = String::new();
    std::io::Read::read_to_string(g.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!("escapee pid {escapee}")),
        "{stderr}"
    );

    let fields = stat_fields(escapee).expect("escapee exists");
    let session: i32 = fields[3].parse().unwrap();
    // SAFETY: getsid has no memory-safety preconditions.
    let our_session = unsafe { libc::getsid(0) };
    assert_ne!(session, our_session);
    assert_eq!(session, escapee, "escapee should lead its own session");
    assert!(
        poll(|| rss(escapee) >= 7 * MIB),
        "escapee RSS {}",
        rss(escapee)
    );
    kill_escapee(escapee);
    assert!(!is_alive(escapee));
}

#[test]
fn shm_file_is_filled_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let mut g = Guard::spawn_cmd(
        memhog()
            .args([
                "--shm",
                "8M",
                "--shm-name",
                "seg",
                "--hold",
                "1s",
                "--shm-dir",
            ])
            .arg(dir.path()),
    );
    assert!(
        poll(|| std::fs::metadata(&path).is_ok_and(|m| m.len() == 8 * MIB)),
        "shm file missing or wrong size"
    );
    assert_eq!(g.wait(DEADLINE).code(), Some(0));
    assert!(!path.exists(), "shm file left behind");
}

#[test]
fn shm_keep_leaves_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = memhog()
        .args([
            "--shm",
            "1M",
            "--shm-name",
            "kept",
            "--shm-keep",
            "--shm-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let meta = std::fs::metadata(dir.path().join("kept")).unwrap();
    assert_eq!(meta.len(), MIB);
}

#[test]
fn sigterm_cleans_up_and_dies_by_term() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let mut g = Guard::spawn_cmd(
        memhog()
            .args(["--shm", "1M", "--shm-name", "seg", "--children", "1"])
            .args(["--hold", "2s", "--shm-dir"])
            .arg(dir.path()),
    );
    let pid = g.pid();
    assert!(poll(|| children_of(pid).len() == 1));
    let kids = children_of(pid);
    assert!(path.exists());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = g.wait(Duration::from_secs(1));
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!path.exists(), "shm file left behind after SIGTERM");
    assert!(!is_alive(kids[0]));
}

#[test]
fn print_env_and_stdout_lines() {
    let out = memhog()
        .args([
            "--print-env",
            "OMP_NUM_THREADS",
            "--print-env",
            "MEMHOG_UNSET_VAR",
        ])
        .args(["--stdout-lines", "3"])
        .env("OMP_NUM_THREADS", "3")
        .env_remove("MEMHOG_UNSET_VAR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "OMP_NUM_THREADS=3",
            "MEMHOG_UNSET_VAR=<unset>",
            "memhog line 1 of 3",
            "memhog line 2 of 3",
            "memhog line 3 of 3",
        ]
    );
}

#[test]
fn bad_values_are_usage_errors() {
    for args in [
        &["--peak", "12X"][..],
        &["--hold", "5parsecs"],
        &["--signal", "NOPE"],
        &["--signal", "STOP"],
        &["--exit", "256"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(args[1]), "{args:?}: {stderr}");
    }
}

#[test]
fn ignore_term_needs_kill() {
    let mut g = Guard::spawn_cmd(
        memhog()
            .args(["--ignore-term", "--hold", "2s", "--stdout-lines", "1"])
            .stdout(Stdio::piped()),
    );
    // The line is printed after the disposition is set: wait for it.
    let mut line = String::new();
    BufReader::new(g.child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "memhog line 1 of 1\n");
    let pid = g.pid();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        assert!(g.child.try_wait().unwrap().is_none(), "died of SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(g.wait(DEADLINE).signal(), Some(9));
}

#[test]
fn help_documents_every_flag() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--peak",
        "--ramp",
        "--hold",
        "--leak",
        "--exit",
        "--signal",
        "--children",
        "--escapee",
        "--escapee-hold",
        "--pid-file",
        "--shm",
        "--shm-name",
        "--shm-dir",
        "--shm-keep",
        "--result",
        "--result-raw",
        "--print-env",
        "--ignore-term",
        "--wall-clock",
        "--verbose",
        "--stdout-lines",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
