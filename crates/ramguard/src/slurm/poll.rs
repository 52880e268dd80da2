//! Asking Slurm about the jobs in flight: one `sacct` call for all of them per interval
//! (never one per job), and `squeue` to confirm that none is left in the queue.

use std::collections::HashMap;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A job's state as Slurm reports it (the first word of sacct's `State`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlurmState {
    Pending,
    Running,
    /// Still in the queue in some other transient state (COMPLETING, CONFIGURING, ...).
    Busy(String),
    Completed,
    Failed,
    OutOfMemory,
    Timeout,
    Cancelled,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    /// A terminal state ramguard has no special meaning for.
    Other(String),
}

impl SlurmState {
    /// Parses sacct's or squeue's state text (`CANCELLED by 0`, `OUT_OF_MEMORY`, `CD`).
    pub fn parse(s: &str) -> SlurmState {
        let word = s
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match word {
            "PENDING" | "PD" | "REQUEUED" | "RQ" | "SUSPENDED" | "S" => SlurmState::Pending,
            "RUNNING" | "R" => SlurmState::Running,
            "COMPLETED" | "CD" => SlurmState::Completed,
            "FAILED" | "F" => SlurmState::Failed,
            "OUT_OF_MEMORY" | "OOM" => SlurmState::OutOfMemory,
            "TIMEOUT" | "TO" => SlurmState::Timeout,
            "CANCELLED" | "CA" => SlurmState::Cancelled,
            "NODE_FAIL" | "NF" => SlurmState::NodeFail,
            "PREEMPTED" | "PR" => SlurmState::Preempted,
            "BOOT_FAIL" | "BF" => SlurmState::BootFail,
            "DEADLINE" | "DL" => SlurmState::Deadline,
            "COMPLETING" | "CG" | "CONFIGURING" | "CF" | "RESIZING" | "RS" | "REQUEUE_HOLD"
            | "REQUEUE_FED" | "SIGNALING" | "SE" | "STAGE_OUT" | "SO" | "STOPPED" | "ST"
            | "RESV_DEL_HOLD" => SlurmState::Busy(word.to_string()),
            other => SlurmState::Other(other.to_string()),
        }
    }

    /// Returns true if and only if the job has ended and will not run again by itself.
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            SlurmState::Pending | SlurmState::Running | SlurmState::Busy(_)
        )
    }

    /// The state's name as Slurm spells it.
    pub fn name(&self) -> &str {
        match self {
            SlurmState::Pending => "PENDING",
            SlurmState::Running => "RUNNING",
            SlurmState::Busy(s) | SlurmState::Other(s) => s,
            SlurmState::Completed => "COMPLETED",
            SlurmState::Failed => "FAILED",
            SlurmState::OutOfMemory => "OUT_OF_MEMORY",
            SlurmState::Timeout => "TIMEOUT",
            SlurmState::Cancelled => "CANCELLED",
            SlurmState::NodeFail => "NODE_FAIL",
            SlurmState::Preempted => "PREEMPTED",
            SlurmState::BootFail => "BOOT_FAIL",
            SlurmState::Deadline => "DEADLINE",
        }
    }
}

/// One job's line of `sacct -X -P -o JobIDRaw,State,ExitCode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub job: u64,
    pub state: SlurmState,
    /// The batch script's exit code and the signal that ended it (`ExitCode` is `code:sig`).
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Parses `sacct -n -X -P -o JobIDRaw,State,ExitCode` output; lines it cannot read are
/// skipped (sacct prints array and step lines in forms ramguard never asks for).
pub fn parse_sacct(text: &str) -> Vec<JobState> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split('|');
            let job = f.next()?.trim().parse().ok()?;
            let state = SlurmState::parse(f.next()?);
            let (code, signal) = match f.next().and_then(|e| e.trim().split_once(':')) {
                Some((c, s)) => (c.parse().ok(), s.parse().ok().filter(|&s: &i32| s != 0)),
                None => (None, None),
            };
            Some(JobState {
                job,
                state,
                code,
                signal,
            })
        })
        .collect()
}

/// The state of every given job that Slurm's accounting knows, with one `sacct` call.
/// A job submitted a moment ago may not be there yet.
pub fn sacct(jobs: &[u64]) -> Result<HashMap<u64, JobState>> {
    if jobs.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = jobs.iter().map(u64::to_string).collect();
    let out = Command::new("sacct")
        .args(["-n", "-X", "-P", "-o", "JobIDRaw,State,ExitCode", "-j"])
        .arg(ids.join(","))
        .output()
        .context("cannot run sacct")?;
    if !out.status.success() {
        bail!(
            "sacct failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    Ok(parse_sacct(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .map(|s| (s.job, s))
        .collect())
}

/// Which of the given jobs are still in Slurm's queue (one `squeue` call for this user's
/// jobs).
pub fn still_queued(jobs: &[u64]) -> Result<Vec<u64>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let out = Command::new("squeue")
        .args(["-h", "--me", "-o", "%A"])
        .output()
        .context("cannot run squeue")?;
    if !out.status.success() {
        bail!(
            "squeue failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    let queued: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    Ok(jobs
        .iter()
        .copied()
        .filter(|j| queued.contains(j))
        .collect())
}

/// Returns true if and only if slurmstepd's messages in a job's stderr say it killed the
/// job for exceeding its memory (the `jobacct_gather` enforcer reports FAILED or
/// CANCELLED, not OUT_OF_MEMORY, for what the cgroup plugins report as OUT_OF_MEMORY).
pub fn says_memory_exceeded(slurm_stderr: &str) -> bool {
    slurm_stderr.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("exceeded job memory limit")
            || l.contains("exceeded memory limit")
            || l.contains("oom-kill")
            || l.contains("out-of-memory")
    })
}

/// The reason slurmstepd gave for cancelling a job (`*** JOB 7 ON n1 CANCELLED AT ...
/// DUE TO TIME LIMIT ***`), for when accounting says only FAILED or CANCELLED, or does not
/// know the job yet. A cancel with no reason (`scancel`) reads CANCELLED.
pub fn stepd_reason(slurm_stderr: &str) -> Option<SlurmState> {
    slurm_stderr.lines().find_map(|l| {
        if !l.contains("***") {
            return None;
        }
        if l.contains("DUE TO TIME LIMIT") {
            Some(SlurmState::Timeout)
        } else if l.contains("DUE TO PREEMPTION") {
            Some(SlurmState::Preempted)
        } else if l.contains("DUE TO NODE FAILURE") {
            Some(SlurmState::NodeFail)
        } else if l.contains(" CANCELLED AT ") && !l.contains(" DUE TO ") {
            Some(SlurmState::Cancelled)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sacct_lines_parse_with_codes_and_signals() {
        let text = "1|FAILED|0:9\n2|COMPLETED|0:0\n3|CANCELLED by 0|0:15\n4|OUT_OF_MEMORY|0:125\n\
                    5|PENDING|0:0\n6|TIMEOUT|0:0\n7|NODE_FAIL|1:0\nbad line\n";
        let s = parse_sacct(text);
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].state, SlurmState::Failed);
        assert_eq!((s[0].code, s[0].signal), (Some(0), Some(9)));
        assert_eq!((s[1].code, s[1].signal), (Some(0), None));
        assert_eq!(s[2].state, SlurmState::Cancelled);
        assert_eq!(s[3].state, SlurmState::OutOfMemory);
        assert!(!s[4].state.is_terminal());
        assert_eq!(s[5].state, SlurmState::Timeout);
        assert_eq!(s[6].state, SlurmState::NodeFail);
        assert!(s[6].state.is_terminal());
    }

    #[test]
    fn unknown_and_transient_states() {
        assert!(!SlurmState::parse("COMPLETING").is_terminal());
        assert!(!SlurmState::parse("RUNNING").is_terminal());
        assert_eq!(
            SlurmState::parse("SPECIAL_EXIT"),
            SlurmState::Other("SPECIAL_EXIT".into())
        );
        assert!(SlurmState::parse("SPECIAL_EXIT").is_terminal());
        assert_eq!(SlurmState::parse("CANCELLED+"), SlurmState::Cancelled);
    }

    #[test]
    fn stepd_says_why_it_cancelled() {
        let err = "slurmstepd: error: *** JOB 263 ON vm CANCELLED AT 2026-11-26T13:01:17 DUE TO TIME LIMIT ***\n";
        assert_eq!(stepd_reason(err), Some(SlurmState::Timeout));
        let err = "slurmstepd: error: *** JOB 9 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO PREEMPTION ***";
        assert_eq!(stepd_reason(err), Some(SlurmState::Preempted));
        let err = "slurmstepd: error: *** JOB 1 ON vm CANCELLED AT 2026-11-26T12:39:42 ***";
        assert_eq!(stepd_reason(err), Some(SlurmState::Cancelled));
        let err = "slurmstepd: error: *** JOB 2 ON vm CANCELLED AT 2026-11-26T12:39:42 DUE TO SOMETHING NEW ***";
        assert_eq!(stepd_reason(err), None);
        assert_eq!(stepd_reason("srun: error: task 0 exited\n"), None);
    }

    #[test]
    fn memory_kill_is_read_from_slurmstepd_messages() {
        let err = "slurmstepd-vm: error: StepId=1.batch exceeded memory limit (320118784 > 104857600), being killed\n";
        assert!(says_memory_exceeded(err));
        assert!(says_memory_exceeded(
            "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=5.batch"
        ));
        assert!(!says_memory_exceeded("Traceback: MemoryErrorless\n"));
    }
}
