//! The sentinel: a tiny process that outlives a killed ramguard just long enough to kill its
//! tasks.
//!
//! `ramguard run` starts `ramguard __sentinel NONCE` (its own process group, so Ctrl-C does
//! not reach it) with a pipe on its stdin that only ramguard holds. ramguard writes `+PID`
//! when a task's root starts and `-PID` once it has reaped it. When the pipe reaches
//! end-of-file — ramguard exited, normally or by SIGKILL — the sentinel sweeps and exits.
//!
//! The lines are sent in batches ([`Sentinel::flush`]): a write per line woke the sentinel
//! (and let it preempt ramguard) several times per task, a tenth of ramguard's own time on a
//! sweep of trivial tasks. The supervisor flushes `-PID` lines as soon as a batch of reaps is
//! done (a pid the sentinel still believed in could be reused by then) and `+PID` lines
//! before it sleeps; a root started and not yet announced when ramguard dies carries this
//! run's token, which the sweep looks for anyway.
//!
//! The sweep does not need the tasks' cooperation. Every task root is the subreaper of its own
//! tree (see `spawn.rs`) and, unlike with `PR_SET_PDEATHSIG`, is not killed by the kernel when
//! ramguard dies, so the whole tree — daemons that double-forked, called `setsid` or cleared
//! their environment included — is still below the root when the sentinel looks. The roots
//! are the pids ramguard announced plus any process carrying this run's
//! `RAMGUARD_TASK_TOKEN` (a root started just before ramguard died). The sentinel freezes each
//! tree with SIGSTOP, walks it again until nothing new appears (a frozen process cannot fork),
//! then SIGKILLs every process and each root's process group. A normal run leaves nothing for
//! it to find. A sentinel that dies during the run (someone killed it) is reaped by ramguard,
//! which starts a new one and tells it every running root.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result};
use rustix::process::{kill_process, kill_process_group, Pid, Signal};

use super::tree::token_of;
use crate::probe::process::ProcReader;
use crate::probe::Root;

/// The running sentinel; dropping it closes the pipe, which tells it to sweep.
#[derive(Debug)]
pub struct Sentinel {
    child: Child,
    stdin: Option<ChildStdin>,
    nonce: String,
    /// Lines not written yet.
    pending: Vec<u8>,
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
        Ok(Sentinel {
            child,
            stdin,
            nonce: nonce.to_string(),
            pending: Vec::new(),
        })
    }

    /// Starts a new sentinel for the same run after this one died (it was reaped).
    pub fn restart(mut self) -> Result<Sentinel> {
        self.stdin.take();
        let nonce = self.nonce.clone();
        Sentinel::start(&nonce)
    }

    /// The sentinel's pid (a child of ramguard that belongs to no task).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells the sentinel a task root started (`true`) or was reaped (`false`), at the next
    /// [`Sentinel::flush`].
    pub fn track(&mut self, pid: u32, running: bool) {
        if self.stdin.is_some() {
            let sign = if running { '+' } else { '-' };
            let _ = writeln!(self.pending, "{sign}{pid}");
        }
    }

    /// Sends the lines tracked since the last flush, in one write.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(&self.pending);
        }
        self.pending.clear();
    }

    /// Closes the pipe and waits for the sentinel's sweep to finish.
    pub fn finish(mut self) {
        self.flush();
        self.stdin.take();
        let _ = self.child.wait();
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        // A reaped pid the sentinel still believed in would be swept, whoever has it now.
        self.flush();
        self.stdin.take();
    }
}

/// The sentinel's body: follow the announced roots until end-of-file, then kill every tree.
pub fn run(nonce: &str) -> Result<()> {
    let mut roots: BTreeSet<u32> = BTreeSet::new();
    let stdin = std::io::stdin().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { break };
        let (sign, pid) = line.split_at(line.len().min(1));
        match (sign, pid.parse::<u32>()) {
            ("+", Ok(pid)) => {
                roots.insert(pid);
            }
            ("-", Ok(pid)) => {
                roots.remove(&pid);
            }
            _ => {}
        }
    }
    roots.extend(marked(nonce));
    sweep(&roots);
    Ok(())
}

/// Freezes the trees below `roots` until a walk finds nothing new, then kills them all.
pub fn sweep(roots: &BTreeSet<u32>) -> usize {
    let reader = ProcReader::new(Root::host());
    let me = std::process::id();
    let stopped = super::tree::freeze(64, |stopped| {
        let mut found: BTreeSet<u32> = BTreeSet::new();
        for &root in roots.iter().chain(stopped.iter()) {
            found.extend(reader.tree(root).unwrap_or_default());
        }
        found.remove(&me);
        found.into_iter().collect()
    });
    for &root in roots {
        if let Some(p) = Pid::from_raw(root as i32) {
            let _ = kill_process_group(p, Signal::KILL);
        }
    }
    stopped
        .iter()
        .filter(|&&pid| {
            Pid::from_raw(pid as i32).is_some_and(|p| kill_process(p, Signal::KILL).is_ok())
        })
        .count()
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
