//! `ramguard __job SPEC.json`: the wrapper that runs one task inside a Slurm job.
//!
//! The submitting ramguard writes a [`JobSpec`] into the job's directory (on the shared
//! filesystem) and submits a batch script that `exec`s this wrapper, so Slurm's accounting
//! sees the wrapper and the task and nothing else. The wrapper starts the task in its own
//! process group with the thread caps and `$RAMGUARD_RESULT`, measures its tree the way
//! the local supervisor does (summed statm RSS, PSS-corrected for multi-process trees), and
//! writes into the job directory:
//!
//! - `progress.json`, rewritten atomically whenever the peak grows and at least once a
//!   second: what the tree holds now and its peak so far. A job the memory enforcer kills
//!   leaves its last peak here, which is what the submitter escalates by.
//! - `timeline.tsv`: `t_ms rss pss` rows, one every 50 ms for the first two seconds, then
//!   at most one every 250 ms.
//! - `exit.json` once the task ended: its exit code or signal, its peak, and the job's peak
//!   (task plus this wrapper, or the job cgroup's `memory.peak` where readable).
//!
//! SIGTERM or SIGINT (scancel) are passed on to the task's process group. The wrapper
//! exits with the task's code (128 + signal when a signal killed it).

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ramguard_core::Bytes;
use serde::{Deserialize, Serialize};

use crate::probe::process::ProcReader;
use crate::probe::Root;
use crate::supervisor::tree::{Trees, TOKEN_VAR};

/// What the submitter asks the wrapper to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The task's command line.
    pub argv: Vec<String>,
    /// Variables added to the job's environment (thread caps, `RAMGUARD_*`).
    pub env: Vec<(String, String)>,
    /// Where the task's stdout and stderr go (removed again if left empty).
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The task's memory so far, rewritten while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Milliseconds since the task started.
    pub t_ms: u64,
    /// What the task's tree holds now (PSS-corrected).
    pub current: u64,
    /// The highest `current` so far.
    pub peak: u64,
    /// The highest summed RSS of the tree so far.
    pub peak_rss: u64,
    /// The highest tree PSS so far, when the tree had several processes.
    pub peak_pss: Option<u64>,
    /// The highest memory of the whole job as Slurm counts it: the tree plus the wrapper.
    pub job_peak: u64,
}

/// How the task ended, written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// The memory figures at the end (peaks never below the kernel's `ru_maxrss`).
    pub progress: Progress,
    /// The job cgroup's own peak, when the job has a cgroup of its own and it is readable.
    pub cgroup_peak: Option<u64>,
    /// Where `progress.peak` came from, in words.
    pub peak_source: String,
    /// The wrapper got SIGTERM or SIGINT (scancel, a time limit, preemption) and passed it on.
    #[serde(default)]
    pub stopped: bool,
}

pub const SPEC: &str = "spec.json";
pub const PROGRESS: &str = "progress.json";
pub const TIMELINE: &str = "timeline.tsv";
pub const EXIT: &str = "exit.json";

/// Shortest interval between two timeline rows.
const TIMELINE_STEP: Duration = Duration::from_millis(250);
/// Longest interval between two rewrites of `progress.json`.
const PROGRESS_STEP: Duration = Duration::from_secs(1);

/// Runs the task described by `spec_path`; returns the exit code for the job.
pub fn run(spec_path: &Path) -> Result<u8> {
    let text = std::fs::read_to_string(spec_path)
        .with_context(|| format!("cannot read job spec {}", spec_path.display()))?;
    let spec: JobSpec = serde_json::from_str(&text)
        .with_context(|| format!("job spec {} is not valid", spec_path.display()))?;
    let dir = spec_path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let Some((program, args)) = spec.argv.split_first() else {
        anyhow::bail!("job spec {} has an empty command", spec_path.display());
    };

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    // Orphans of the task come back here, so they are measured and stopped with it.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));

    let nonce = format!("job-{}", std::process::id());
    let mut trees = Trees::new(nonce);
    let open = |p: &Path| {
        std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(TOKEN_VAR, trees.token(0))
        .stdin(Stdio::null())
        .stdout(open(&spec.stdout)?)
        .stderr(open(&spec.stderr)?)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pid = child.id();
    trees.add(0, pid);
    let started = Instant::now();
    let reader = ProcReader::new(Root::host());
    let own_pid = std::process::id();

    let mut progress = Progress::default();
    let mut timeline = std::fs::File::create(dir.join(TIMELINE))?;
    let mut last_row: Option<Duration> = None;
    let mut last_written: Option<(Duration, u64)> = None;
    let mut term_sent = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let now = started.elapsed();
        if stop.load(Ordering::Relaxed) && !term_sent {
            term_sent = true;
            trees.signal(0, rustix::process::Signal::TERM);
        }
        trees.discover();
        let m = trees.measure(0, now, Bytes::ZERO);
        let own = reader
            .statm(own_pid)
            .ok()
            .flatten()
            .map_or(Bytes::ZERO, |s| s.rss);
        progress.t_ms = now.as_millis() as u64;
        progress.current = m.used.get();
        progress.peak = progress.peak.max(m.used.get());
        progress.peak_rss = progress.peak_rss.max(m.rss.get());
        if let Some(p) = m.pss {
            progress.peak_pss = Some(progress.peak_pss.unwrap_or(0).max(p.get()));
        }
        progress.job_peak = progress.job_peak.max(m.rss.get() + own.get());
        // Finer while young: how fast a task grew before a kill is read off these rows.
        let step = if now < Duration::from_secs(2) {
            TIMELINE_STEP / 5
        } else {
            TIMELINE_STEP
        };
        if last_row.is_none_or(|t| now.saturating_sub(t) >= step) {
            last_row = Some(now);
            let pss = m.pss.map_or(String::from("-"), |p| p.get().to_string());
            let _ = writeln!(timeline, "{} {} {pss}", progress.t_ms, m.rss.get());
        }
        let grew = last_written.is_none_or(|(_, p)| progress.peak > p);
        let stale = last_written.is_none_or(|(t, _)| now.saturating_sub(t) >= PROGRESS_STEP);
        if grew || stale {
            write_atomic(&dir.join(PROGRESS), &serde_json::to_vec(&progress)?)?;
            last_written = Some((now, progress.peak));
        }
        // Fast at first, when most tasks grow; then five times a second.
        let tick = if now < Duration::from_secs(2) {
            20
        } else {
            200
        };
        std::thread::sleep(Duration::from_millis(tick));
    };
    let duration = started.elapsed();
    // Leftovers of the tree (daemons the task started) do not outlive the job step.
    trees.signal(0, rustix::process::Signal::KILL);

    // The kernel's own high-water mark of the largest reaped child.
    let maxrss = rusage_children_maxrss();
    progress.peak_rss = progress.peak_rss.max(maxrss);
    if progress.peak_pss.is_none() {
        progress.peak = progress.peak.max(maxrss);
    }
    progress.t_ms = duration.as_millis() as u64;
    progress.current = 0;
    let cgroup_peak = job_cgroup_peak();
    let peak_source = match cgroup_peak {
        Some(_) => "job cgroup memory.peak".to_string(),
        None => "sampled by ramguard inside the job (statm, smaps_rollup, ru_maxrss)".to_string(),
    };
    if let Some(cg) = cgroup_peak {
        progress.job_peak = progress.job_peak.max(cg);
    }
    for p in [&spec.stdout, &spec.stderr] {
        if std::fs::metadata(p).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(p);
        }
    }
    let exit = JobExit {
        code: status.code(),
        signal: status.signal(),
        duration_ms: duration.as_millis() as u64,
        progress,
        cgroup_peak,
        peak_source,
        // Slurm signals every process of the step: the task may die of it before the
        // loop above passed it on.
        stopped: stop.load(Ordering::Relaxed),
    };
    write_atomic(&dir.join(PROGRESS), &serde_json::to_vec(&progress)?)?;
    write_atomic(&dir.join(EXIT), &serde_json::to_vec_pretty(&exit)?)?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + s).unwrap_or(255),
        _ => 1,
    })
}

/// Writes a file so that a reader never sees it half written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn rusage_children_maxrss() -> u64 {
    // SAFETY: getrusage only writes into the struct it is given.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) == 0 {
            u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024
        } else {
            0
        }
    }
}

/// The peak of the job's own memory cgroup, if the job has one (a cgroup path naming
/// `job_<SLURM_JOB_ID>`, as the cgroup plugins create) and it is readable.
fn job_cgroup_peak() -> Option<u64> {
    let job = std::env::var("SLURM_JOB_ID").ok()?;
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    job_cgroup_files(&text, &job)
        .into_iter()
        .find_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok())
}

/// The peak files to try for the job's cgroup, from `/proc/self/cgroup`'s text; none when
/// the process's cgroup is not the job's (the host's own must not be read as the job's).
pub fn job_cgroup_files(proc_cgroup: &str, job: &str) -> Vec<PathBuf> {
    let marker = format!("job_{job}");
    let mut out = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // Up to the job's own level: the step's cgroup below it sees only the step.
        let Some(end) = path
            .match_indices(&marker)
            .map(|(i, _)| i + marker.len())
            .find(|&e| path[e..].is_empty() || path[e..].starts_with('/'))
        else {
            continue;
        };
        let job_path = path[..end].trim_start_matches('/');
        if controllers.is_empty() {
            out.push(
                Path::new("/sys/fs/cgroup")
                    .join(job_path)
                    .join("memory.peak"),
            );
        } else if controllers.split(',').any(|c| c == "memory") {
            out.push(
                Path::new("/sys/fs/cgroup/memory")
                    .join(job_path)
                    .join("memory.max_usage_in_bytes"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_cgroup_is_found_only_on_the_jobs_own_path() {
        let v2 = "0::/system.slice/slurmstepd.scope/job_42/step_batch/user/task_0\n";
        assert_eq!(
            job_cgroup_files(v2, "42"),
            vec![PathBuf::from(
                "/sys/fs/cgroup/system.slice/slurmstepd.scope/job_42/memory.peak"
            )]
        );
        let v1 = "12:memory:/slurm/uid_0/job_7/step_batch\n3:cpu,cpuacct:/slurm/uid_0/job_7\n";
        assert_eq!(
            job_cgroup_files(v1, "7"),
            vec![PathBuf::from(
                "/sys/fs/cgroup/memory/slurm/uid_0/job_7/memory.max_usage_in_bytes"
            )]
        );
        // The host's cgroup (task/none, proctrack/linuxproc) is not the job's.
        assert!(job_cgroup_files("0::/user.slice/session-3.scope\n", "42").is_empty());
        assert!(job_cgroup_files("0::/x/job_421/step_0\n", "42").is_empty());
    }
}
