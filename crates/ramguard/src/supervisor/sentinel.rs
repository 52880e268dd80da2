//! The sentinel: a tiny process that outlives a killed ramguard just long enough to kill its
//! tasks.
//!
//! `PR_SET_PDEATHSIG` reaches only a task's first process; workers it forked and daemons it
//! left behind would survive a SIGKILLed ramguard. So `ramguard run` starts
//! `ramguard __sentinel NONCE` (its own process group, so Ctrl-C does not reach it) with a
//! pipe on its stdin that only ramguard holds. When the pipe reaches end-of-file — ramguard
//! exited, normally or not — the sentinel kills every process whose environment carries
//! `RAMGUARD_TASK_TOKEN=NONCE:…`, the mark every task and all its descendants inherit, and
//! exits. A normal run leaves nothing for it to find.

use std::io::Read;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result};
use rustix::process::{kill_process, kill_process_group, Pid, Signal};

use super::tree::token_of;

/// The running sentinel; dropping it closes the pipe, which tells it to sweep.
#[derive(Debug)]
pub struct Sentinel {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Sentinel {
    /// Starts `ramguard __sentinel NONCE`.
    pub fn start(nonce: &str) -> Result<Sentinel> {
        let exe = std::env::current_exe().context("cannot find the ramguard executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("__sentinel")
            .arg(nonce)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().context("cannot start the ramguard sentinel")?;
        let stdin = child.stdin.take();
        Ok(Sentinel { child, stdin })
    }

    /// Closes the pipe and waits for the sentinel's sweep to finish.
    pub fn finish(mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.stdin.take();
    }
}

/// The sentinel's body: wait for end-of-file on stdin, then kill every marked process.
pub fn run(nonce: &str) -> Result<()> {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    // Twice: a process forking while we scan is caught the second time.
    for _ in 0..2 {
        for pid in marked(nonce) {
            if let Some(p) = Pid::from_raw(pid as i32) {
                let _ = kill_process_group(p, Signal::KILL);
                let _ = kill_process(p, Signal::KILL);
            }
        }
    }
    Ok(())
}

/// Processes whose environment carries this run's token.
pub fn marked(nonce: &str) -> Vec<u32> {
    let prefix = format!("{nonce}:");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| token_of(pid).is_some_and(|t| t.starts_with(&prefix)))
        .collect()
}
