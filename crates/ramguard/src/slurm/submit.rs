//! Submitting one task as an `sbatch --parsable` job, and cancelling jobs (`scancel`).
//!
//! Every job gets a directory of its own on the shared filesystem, holding the batch script
//! (which `exec`s `ramguard __job`, so Slurm counts no shell beside the task), the job spec,
//! Slurm's own stdout/stderr of the job (`slurm.out`, `slurm.err`: where slurmstepd says
//! why it killed a step) and what the wrapper writes back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ramguard_core::Bytes;

/// One job to submit.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The job's name in `squeue`.
    pub name: String,
    /// The job's directory (absolute): script, spec, Slurm's logs, the wrapper's output.
    pub dir: PathBuf,
    /// `--mem`.
    pub mem: Bytes,
    /// `--cpus-per-task`.
    pub cpus: u32,
    /// `--time`, if any.
    pub time: Option<Duration>,
    /// `--partition`, if any.
    pub partition: Option<&'a str>,
    /// The user's extra `sbatch` arguments, passed as given (after ramguard's own).
    pub extra: &'a [String],
    /// The job's working directory (the submitter's).
    pub chdir: &'a Path,
    /// The ramguard binary the job runs.
    pub exe: &'a Path,
}

/// `--mem` in whole MiB, rounded up (Slurm's `M` is MiB).
pub fn mem_arg(mem: Bytes) -> String {
    format!("{}M", mem.get().div_ceil(1 << 20).max(1))
}

/// `--time` as `minutes:seconds`, at least one minute (Slurm enforces whole minutes).
pub fn time_arg(t: Duration) -> String {
    let secs = t.as_secs().max(60);
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// The batch script: `exec` the wrapper, so the job step is the wrapper and the task only.
pub fn script(exe: &Path, spec: &Path) -> String {
    format!(
        "#!/bin/sh\n# Written by ramguard: runs one task and measures its peak memory.\nexec {} __job {}\n",
        shell_words::quote(&exe.display().to_string()),
        shell_words::quote(&spec.display().to_string())
    )
}

/// The arguments to `sbatch` for a submission, script path last.
pub fn sbatch_args(s: &Submission, script: &Path) -> Vec<String> {
    let mut a = vec![
        "--parsable".to_string(),
        format!("--job-name={}", s.name),
        format!("--mem={}", mem_arg(s.mem)),
        format!("--cpus-per-task={}", s.cpus.max(1)),
        "--ntasks=1".to_string(),
        format!("--chdir={}", s.chdir.display()),
        format!("--output={}", s.dir.join("slurm.out").display()),
        format!("--error={}", s.dir.join("slurm.err").display()),
    ];
    if let Some(t) = s.time {
        a.push(format!("--time={}", time_arg(t)));
    }
    if let Some(p) = s.partition {
        a.push(format!("--partition={p}"));
    }
    a.extend(s.extra.iter().cloned());
    a.push(script.display().to_string());
    a
}

/// Parses `sbatch --parsable` output: `JOBID` or `JOBID;CLUSTER`.
pub fn parse_parsable(out: &str) -> Result<u64> {
    let line = out.lines().map(str::trim).rfind(|l| !l.is_empty());
    line.and_then(|l| l.split(';').next())
        .and_then(|id| id.trim().parse().ok())
        .with_context(|| format!("sbatch printed no job id (got '{}')", out.trim()))
}

/// Submits the job whose spec is already in `s.dir`; returns the job id.
pub fn submit(s: &Submission, spec: &Path) -> Result<u64> {
    let script_path = s.dir.join("job.sh");
    std::fs::write(&script_path, script(s.exe, spec))
        .with_context(|| format!("cannot write {}", script_path.display()))?;
    let out = Command::new("sbatch")
        .args(sbatch_args(s, &script_path))
        .output()
        .context("cannot run sbatch (is Slurm installed and on PATH?)")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "sbatch refused the job: {}",
            err.lines().next().unwrap_or("").trim()
        );
    }
    parse_parsable(&String::from_utf8_lossy(&out.stdout))
}

/// Cancels jobs with one `scancel` call; `kill` sends SIGKILL to their steps instead of
/// Slurm's TERM, wait, KILL.
pub fn scancel(jobs: &[u64], kill: bool) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("scancel");
    if kill {
        cmd.arg("--signal=KILL").arg("--full");
    }
    let out = cmd
        .args(jobs.iter().map(u64::to_string))
        .output()
        .context("cannot run scancel")?;
    // A job that ended meanwhile makes scancel complain; that is not a failure here.
    let _ = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_is_whole_mib_rounded_up() {
        assert_eq!(mem_arg(Bytes(1)), "1M");
        assert_eq!(mem_arg(Bytes(256 << 20)), "256M");
        assert_eq!(mem_arg(Bytes((256 << 20) + 1)), "257M");
    }

    #[test]
    fn time_is_minutes_and_seconds_at_least_a_minute() {
        assert_eq!(time_arg(Duration::from_secs(5)), "1:00");
        assert_eq!(time_arg(Duration::from_secs(90)), "1:30");
        assert_eq!(time_arg(Duration::from_secs(7200)), "120:00");
    }

    #[test]
    fn parsable_output_with_or_without_cluster() {
        assert_eq!(parse_parsable("1234\n").unwrap(), 1234);
        assert_eq!(parse_parsable("77;cluster-a\n").unwrap(), 77);
        assert!(parse_parsable("Submitted batch job 5\n").is_err());
        assert!(parse_parsable("").is_err());
    }

    #[test]
    fn script_execs_the_wrapper_with_quoted_paths() {
        let s = script(
            Path::new("/opt/my tools/ramguard"),
            Path::new("/j/1.1/spec.json"),
        );
        assert!(s.contains("exec '/opt/my tools/ramguard' __job /j/1.1/spec.json\n"));
    }

    #[test]
    fn user_arguments_come_after_ramguards_own() {
        let extra = vec!["--qos=low".to_string()];
        let s = Submission {
            name: "rg-x-1".into(),
            dir: PathBuf::from("/j/1.1"),
            mem: Bytes(300 << 20),
            cpus: 2,
            time: Some(Duration::from_secs(600)),
            partition: Some("debug"),
            extra: &extra,
            chdir: Path::new("/w"),
            exe: Path::new("/bin/ramguard"),
        };
        let a = sbatch_args(&s, Path::new("/j/1.1/job.sh"));
        assert_eq!(a[0], "--parsable");
        assert!(a.contains(&"--mem=300M".to_string()));
        assert!(a.contains(&"--cpus-per-task=2".to_string()));
        assert!(a.contains(&"--time=10:00".to_string()));
        assert!(a.contains(&"--partition=debug".to_string()));
        assert_eq!(a[a.len() - 2], "--qos=low");
        assert_eq!(a[a.len() - 1], "/j/1.1/job.sh");
    }
}
