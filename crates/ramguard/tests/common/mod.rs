//! Shared helpers for tests that run real processes: the binaries, a temporary work
//! directory, and guards that kill what a test started even when an assertion fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub fn ramguard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ramguard"))
}

/// The memhog workload, built beside ramguard (built on demand when only this package's
/// tests were compiled).
pub fn memhog() -> PathBuf {
    let path = ramguard_bin().with_file_name("memhog");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "memhog"])
            .status()
            .expect("cargo build -p memhog");
        assert!(status.success(), "building memhog failed");
    }
    path
}

/// A temporary directory holding the journal and logs of one test.
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn new() -> Work {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal.db")
    }

    /// `ramguard ARGS` in this directory, with the journal and logs inside it.
    pub fn ramguard(&self) -> Command {
        let mut c = Command::new(ramguard_bin());
        // A lone `-- CMD` reads values from a piped stdin (GNU parallel's habit): tests
        // give it none unless they ask.
        c.current_dir(self.path())
            .stdin(std::process::Stdio::null())
            .env("RAMGUARD_JOURNAL", self.journal())
            .env_remove("OMP_NUM_THREADS");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.ramguard().args(args).output().unwrap()
    }
}

/// Kills a spawned child (and its process group) on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        kill(self.0.id());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills pids read later (escapees) on drop.
#[derive(Default)]
pub struct PidGuard(pub Vec<u32>);

impl Drop for PidGuard {
    fn drop(&mut self) {
        for pid in &self.0 {
            if alive(*pid) {
                kill(*pid);
            }
        }
    }
}

/// SIGKILL to a pid we started.
pub fn kill(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Returns true if and only if the pid exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The one file in `dir` whose name ends with `suffix` (logs are named by task identity,
/// `<id>.<attempt>.out`, so a one-task sweep's log is found by its attempt and stream).
pub fn only_file(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "files ending {suffix} in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

/// The JSON summary `run --progress json` prints as its last line of stdout.
pub fn summary(out: &Output) -> serde_json::Value {
    let text = stdout(out);
    let last = text
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no JSON summary; stderr: {}", stderr(out)));
    serde_json::from_str(last).unwrap()
}

/// The tasks of `ramguard results --format json EXTRA…` in the work directory.
pub fn results_json(w: &Work, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["results", "--format", "json"];
    args.extend_from_slice(extra);
    let out = w.run(&args);
    assert!(out.status.success(), "results failed: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["tasks"].as_array().cloned().unwrap_or_default()
}
