//! Starting one attempt of a task: its own process group, `PR_SET_PDEATHSIG` so it dies with
//! ramguard, stdout/stderr to its own files, the thread caps and ramguard's variables in its
//! environment, and `oom_score_adj` set from the policy's rank.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use rustix::process::{getppid, set_parent_process_death_signal, Pid, Signal};

/// Environment variables that cap the threads of BLAS, OpenMP and friends.
pub const THREAD_VARS: &[&str] = &[
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "JULIA_NUM_THREADS",
];

/// Everything needed to start one attempt.
#[derive(Debug, Clone)]
pub struct Launch {
    pub argv: Vec<String>,
    /// Extra environment, applied after the thread caps.
    pub env: Vec<(String, String)>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The thread-cap variables to set: every one the user has not exported already.
pub fn thread_caps(threads: Option<u32>) -> Vec<(String, String)> {
    let Some(n) = threads else {
        return Vec::new();
    };
    THREAD_VARS
        .iter()
        .filter(|v| std::env::var_os(v).is_none())
        .map(|v| (v.to_string(), n.to_string()))
        .collect()
}

/// Spawns the attempt and returns its pid. The child leads its own process group.
pub fn spawn(launch: &Launch) -> Result<u32> {
    let (program, args) = launch.argv.split_first().context("empty command line")?;
    let stdout = File::create(&launch.stdout)
        .with_context(|| format!("cannot create {}", launch.stdout.display()))?;
    let stderr = File::create(&launch.stderr)
        .with_context(|| format!("cannot create {}", launch.stderr.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let parent = rustix::process::getpid();
    // SAFETY: the closure only makes raw syscalls (prctl, getppid), which are
    // async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // ramguard may have died between fork and prctl: then nobody would kill us.
            if getppid() != Some(parent) {
                // Failing pre_exec makes the child _exit without running the command.
                return Err(std::io::Error::from_raw_os_error(3));
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start '{program}'"))?;
    Ok(child.id())
}

/// Raises the kernel's OOM preference for a process; failures only cost precision.
pub fn set_oom_score_adj(pid: u32, adj: i32) {
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string());
}

/// Returns true if and only if `pid` names a live process (or a zombie not yet reaped).
pub fn alive(pid: u32) -> bool {
    Pid::from_raw(pid as i32).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}
