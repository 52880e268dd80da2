//! What a Slurm job's end means for its task: pure, from what Slurm said (sacct's state),
//! what ramguard did (cancelled it or not), what the wrapper wrote and slurmstepd's stderr.
//!
//! The policy gets an [`Exit`] it understands; where Slurm knows more than a local exit can
//! say (a time limit, a node failure), the verdict also names the class and reason to
//! journal. A memory kill — OUT_OF_MEMORY, or the `jobacct_gather` enforcer's "exceeded
//! memory limit" with FAILED or CANCELLED — is an OOM kill whose next `--mem` comes from
//! [`escalation`]; at the `--task-mem` cap it is a failure over the cap instead.

use std::time::Duration;

use ramguard_core::policy::{Ending, Exit, ExitClass, SIGKILL, SIGTERM};
use ramguard_core::units::format_duration;
use ramguard_core::Bytes;

use super::job::{JobExit, Progress};
use super::poll::{self, JobState, SlurmState};
use super::submit;
use crate::journal::MemSample;

/// Everything known about one job once Slurm reports it ended.
#[derive(Debug)]
pub struct JobEnd<'a> {
    pub state: &'a JobState,
    /// The job's `--mem`.
    pub requested: Bytes,
    /// ramguard cancelled it (Ctrl-C, a brake over `--mem`).
    pub cancelled: bool,
    /// Its `--time`, and whether the user set it (`--timeout`) or ramguard learned it.
    pub time: Option<(Duration, bool)>,
    /// The wrapper's last figures (from `exit.json`, else `progress.json`).
    pub progress: Progress,
    pub exit: Option<&'a JobExit>,
    /// Slurm's stderr of the job (slurmstepd's messages).
    pub slurm_err: &'a str,
    pub timeline: &'a [MemSample],
    pub task_mem: Option<Bytes>,
}

/// The policy's input, and what the journal should say beyond it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub exit: Exit,
    /// A class to journal instead of the policy's.
    pub class: Option<ExitClass>,
    /// A reason to journal instead of the policy's.
    pub reason: Option<String>,
    /// What the next job of this task must ask for at least (after a memory kill).
    pub escalate_to: Option<Bytes>,
    /// The learned time limit was too short: resubmit without one.
    pub drop_learned_time: bool,
}

fn killed(peak: Bytes, signal: i32) -> Exit {
    Exit {
        ending: Ending::Signaled { signal },
        peak,
    }
}

fn oom_killed(peak: Bytes) -> Exit {
    Exit {
        ending: Ending::OomKilled,
        peak,
    }
}

/// Reads a job's end.
pub fn verdict(j: &JobEnd) -> Verdict {
    // Accounting may say only FAILED or CANCELLED where slurmstepd said why, or nothing
    // at all (a job cancelled before accounting heard of it).
    let said = match j.state.state {
        SlurmState::Failed | SlurmState::Cancelled | SlurmState::Other(_) => {
            poll::stepd_reason(j.slurm_err)
        }
        _ => None,
    };
    let st = &JobState {
        state: said.unwrap_or_else(|| j.state.state.clone()),
        ..j.state.clone()
    };
    let peak = Bytes(j.progress.peak);
    let mut v = Verdict {
        exit: killed(peak, SIGKILL),
        class: None,
        reason: None,
        escalate_to: None,
        drop_learned_time: false,
    };
    let memory_kill = st.state == SlurmState::OutOfMemory
        || (!j.cancelled && poll::says_memory_exceeded(j.slurm_err));
    if memory_kill {
        if j.task_mem.is_some_and(|c| j.requested >= c) {
            v.class = Some(ExitClass::OverCap);
            v.reason = Some(format!(
                "used {peak}, over the per-task cap {} (--task-mem; Slurm: {})",
                j.requested,
                st.state.name()
            ));
            return v;
        }
        let lived = Duration::from_millis(j.progress.t_ms);
        let need = escalation(peak, lived, j.timeline);
        v.escalate_to = Some(need);
        v.reason = Some(format!(
            "went past its --mem {} at {peak} (Slurm: {}){}",
            submit::mem_arg(j.requested),
            st.state.name(),
            if need > peak {
                format!("; still growing when killed: next asks for {need}")
            } else {
                String::new()
            }
        ));
        v.exit = oom_killed(peak);
        return v;
    }
    match &st.state {
        SlurmState::Timeout | SlurmState::Deadline => match j.time {
            Some((t, false)) => {
                // Not the task's fault: the limit was ramguard's guess.
                v.drop_learned_time = true;
                v.class = Some(ExitClass::Braked);
                v.reason = Some(format!(
                    "ran past the time limit ramguard learned ({}); resubmitted without one",
                    submit::time_arg(t)
                ));
                v.exit = oom_killed(peak);
            }
            _ => {
                v.class = Some(ExitClass::TimedOut);
                v.reason = Some(format!(
                    "ran past its Slurm time limit{} (Slurm: {})",
                    j.time.map_or(String::new(), |(t, _)| format!(
                        " {} (--timeout)",
                        format_duration(t)
                    )),
                    st.state.name()
                ));
            }
        },
        SlurmState::NodeFail | SlurmState::Preempted | SlurmState::BootFail => {
            v.class = Some(ExitClass::Braked);
            v.reason = Some(format!(
                "Slurm: {}; requeued (not the task's fault)",
                st.state.name()
            ));
            v.exit = oom_killed(peak);
        }
        // A foreign scancel reads CANCELLED, or FAILED when the task died of the TERM
        // the wrapper passed on before Slurm marked the job.
        _ if !j.cancelled
            && (st.state == SlurmState::Cancelled || j.exit.is_some_and(|e| e.stopped)) =>
        {
            v.reason = Some("cancelled outside ramguard (scancel)".to_string());
            v.exit = killed(peak, SIGTERM);
        }
        _ => match j.exit {
            Some(e) => {
                v.exit = Exit {
                    ending: Ending::from_status(e.code, e.signal),
                    peak,
                };
            }
            None if j.cancelled => v.exit = killed(peak, SIGTERM),
            None => {
                let why = j
                    .slurm_err
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                v.reason = Some(format!(
                    "the job ended before the task did (Slurm: {}, exit {}:{}){}",
                    st.state.name(),
                    st.code.unwrap_or(0),
                    st.signal.unwrap_or(0),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    }
                ));
                v.exit = Exit {
                    ending: Ending::Exited {
                        code: st.code.filter(|&c| c != 0).unwrap_or(1),
                    },
                    peak,
                };
            }
        },
    }
    v
}

/// A killed task that grew by more than 5% in this last stretch of its life was still
/// growing.
const GROWTH_WINDOW: Duration = Duration::from_millis(300);
/// How far ahead a killed task's last growth rate is extrapolated.
const GROWTH_AHEAD: Duration = Duration::from_millis(500);

/// What a task killed for exceeding its `--mem` is seen to need: its measured peak when it
/// had stopped growing; when it was still growing, its peak plus another half second at
/// its last measured rate (at most 75% more), and at least 25% more — so that an enforcer that kills at the
/// limit (cgroups) or a sample late (jobacct) does not make each attempt die a little
/// higher. The floor makes repeated kills grow the ask geometrically, never by a fixed
/// guess.
pub fn escalation(peak: Bytes, lived: Duration, timeline: &[MemSample]) -> Bytes {
    let end = lived
        .max(Duration::from_millis(timeline.last().map_or(0, |s| s.t_ms)))
        .as_millis() as u64;
    let cut = end.saturating_sub(GROWTH_WINDOW.as_millis() as u64);
    let (t_then, then) = timeline
        .iter()
        .rev()
        .find(|s| s.t_ms <= cut)
        .map_or((0, 0), |s| (s.t_ms, s.rss));
    let growth = peak.get().saturating_sub(then);
    if growth as f64 <= peak.get() as f64 * 0.05 {
        return peak;
    }
    let rate = growth as f64 / (end.saturating_sub(t_then).max(100) as f64 / 1000.0);
    let ahead = Bytes((rate * GROWTH_AHEAD.as_secs_f64()) as u64).min(peak.scale(0.75));
    peak.saturating_add(ahead).max(peak.scale(1.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(points: &[(u64, u64)]) -> Vec<MemSample> {
        points
            .iter()
            .map(|&(t_ms, mib)| MemSample {
                t_ms,
                rss: mib << 20,
                pss: None,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn a_task_killed_at_its_plateau_asks_for_its_peak() {
        let tl = rows(&[(0, 10), (500, 300), (1000, 300), (2000, 300), (3000, 300)]);
        let need = escalation(Bytes(300 << 20), Duration::from_millis(3100), &tl);
        assert_eq!(need, Bytes(300 << 20));
        // Reached in its first quarter second, held until killed at 0.7 s.
        let tl = rows(&[(0, 0), (250, 604), (500, 604)]);
        let need = escalation(Bytes(604 << 20), Duration::from_millis(700), &tl);
        assert_eq!(need, Bytes(604 << 20));
    }

    #[test]
    fn a_task_killed_while_growing_asks_for_half_a_second_more_of_growth() {
        // 100 MiB/s, killed at 300 MiB: 50 MiB more is less than the 25% floor.
        let tl = rows(&[(0, 0), (1000, 100), (2000, 200), (2500, 250), (3000, 300)]);
        let need = escalation(Bytes(300 << 20), Duration::from_millis(3000), &tl);
        assert_eq!(need, Bytes(375 << 20));
        // 200 MiB/s when killed at 400 MiB: 100 MiB more.
        let tl = rows(&[(0, 0), (1000, 200), (1700, 340), (2000, 400)]);
        let need = escalation(Bytes(400 << 20), Duration::from_millis(2000), &tl);
        assert_eq!(need, Bytes(500 << 20));
        // Growing at ~820 MiB/s when killed at 488 MiB: 410 MiB more would be over 75%.
        let tl = rows(&[(0, 0), (250, 200), (500, 488)]);
        let need = escalation(Bytes(488 << 20), Duration::from_millis(600), &tl);
        assert_eq!(need, Bytes(488 << 20).scale(1.75));
    }

    fn state(state: &str, code: i32, signal: i32) -> JobState {
        JobState {
            job: 1,
            state: SlurmState::parse(state),
            code: Some(code),
            signal: (signal != 0).then_some(signal),
        }
    }

    fn progress(peak_mib: u64) -> Progress {
        Progress {
            t_ms: 5000,
            peak: peak_mib << 20,
            peak_rss: peak_mib << 20,
            ..Progress::default()
        }
    }

    fn end<'a>(st: &'a JobState, exit: Option<&'a JobExit>, err: &'a str) -> JobEnd<'a> {
        JobEnd {
            state: st,
            requested: Bytes(300 << 20),
            cancelled: false,
            time: None,
            progress: progress(200),
            exit,
            slurm_err: err,
            timeline: &[],
            task_mem: None,
        }
    }

    fn job_exit(code: Option<i32>, signal: Option<i32>) -> JobExit {
        JobExit {
            code,
            signal,
            duration_ms: 5000,
            progress: progress(200),
            cgroup_peak: None,
            peak_source: "sampled".into(),
            stopped: false,
        }
    }

    #[test]
    fn completed_and_failed_take_the_tasks_own_code() {
        let ok = job_exit(Some(0), None);
        let st = state("COMPLETED", 0, 0);
        let v = verdict(&end(&st, Some(&ok), ""));
        assert_eq!(v.exit.ending.code(), Some(0));
        assert_eq!((v.class, v.reason), (None, None));
        let bad = job_exit(Some(3), None);
        let st = state("FAILED", 3, 0);
        let v = verdict(&end(&st, Some(&bad), ""));
        assert_eq!(v.exit.ending.code(), Some(3));
        assert_ne!(v.exit.ending, Ending::OomKilled);
    }

    #[test]
    fn out_of_memory_and_the_enforcers_message_are_oom_kills_that_escalate() {
        let st = state("OUT_OF_MEMORY", 0, 125);
        let plateau = rows(&[(0, 0), (1000, 200), (4000, 200), (5000, 200)]);
        let mut e = end(&st, None, "");
        e.timeline = &plateau;
        let v = verdict(&e);
        assert_eq!(v.exit.ending, Ending::OomKilled);
        assert_eq!(v.exit.peak, Bytes(200 << 20));
        assert_eq!(v.escalate_to, Some(Bytes(200 << 20)), "plateau: its peak");
        // No timeline: whether it was still growing is unknown, so 25% more.
        let v = verdict(&end(&st, None, ""));
        assert_eq!(v.escalate_to, Some(Bytes(250 << 20)));
        // jobacct_gather + OverMemoryKill: FAILED 0:9 and slurmstepd's line.
        let st = state("FAILED", 0, 9);
        let err = "slurmstepd: error: StepId=9.batch exceeded memory limit (1 > 0), being killed\n";
        let v = verdict(&end(&st, None, err));
        assert_eq!(v.exit.ending, Ending::OomKilled);
        assert!(v
            .reason
            .unwrap()
            .starts_with("went past its --mem 300M at 200 MiB"));
    }

    #[test]
    fn a_memory_kill_at_the_task_cap_fails_over_the_cap() {
        let st = state("OUT_OF_MEMORY", 0, 0);
        let mut e = end(&st, None, "");
        e.task_mem = Some(Bytes(300 << 20));
        let v = verdict(&e);
        assert_eq!(v.class, Some(ExitClass::OverCap));
        assert_ne!(v.exit.ending, Ending::OomKilled);
        assert_eq!(v.escalate_to, None);
    }

    #[test]
    fn timeouts_fail_under_the_users_limit_and_requeue_under_a_learned_one() {
        let st = state("TIMEOUT", 0, 0);
        let mut e = end(&st, None, "");
        e.time = Some((Duration::from_secs(600), true));
        let v = verdict(&e);
        assert_eq!(v.class, Some(ExitClass::TimedOut));
        assert_ne!(
            v.exit.ending,
            Ending::OomKilled,
            "not requeued by the policy"
        );
        let reason = v.reason.unwrap();
        assert!(reason.contains("(--timeout) (Slurm: TIMEOUT)"), "{reason}");
        e.time = Some((Duration::from_secs(600), false));
        let v = verdict(&e);
        assert_eq!(v.class, Some(ExitClass::Braked));
        assert_eq!(
            v.exit.ending,
            Ending::OomKilled,
            "requeued without spending a retry"
        );
        assert!(v.drop_learned_time);
    }

    #[test]
    fn a_time_limit_that_accounting_calls_failed_is_still_a_timeout() {
        let st = state("FAILED", 143, 0);
        let err = "slurmstepd: error: *** JOB 5 ON vm CANCELLED AT 2026-11-26T13:01:17 DUE TO TIME LIMIT ***\n";
        let mut stopped = job_exit(None, Some(15));
        stopped.stopped = true;
        let mut e = end(&st, Some(&stopped), err);
        e.time = Some((Duration::from_secs(60), true));
        let v = verdict(&e);
        assert_eq!(v.class, Some(ExitClass::TimedOut));
    }

    #[test]
    fn node_failures_and_preemption_requeue() {
        for s in ["NODE_FAIL", "PREEMPTED", "BOOT_FAIL"] {
            let st = state(s, 0, 0);
            let v = verdict(&end(&st, None, ""));
            assert_eq!(v.class, Some(ExitClass::Braked), "{s}");
            assert_eq!(v.exit.ending, Ending::OomKilled, "{s}: requeued");
            assert!(v.reason.unwrap().contains(s));
        }
    }

    #[test]
    fn cancellations_are_ramguards_or_someone_elses() {
        let st = state("CANCELLED by 0", 0, 15);
        let v = verdict(&end(&st, None, ""));
        assert_eq!(v.exit.ending.signal(), Some(15));
        assert_eq!(
            v.reason.as_deref(),
            Some("cancelled outside ramguard (scancel)")
        );
        // The task died of the TERM first: FAILED, but the wrapper says it was stopped.
        let mut stopped = job_exit(None, Some(15));
        stopped.stopped = true;
        let failed = state("FAILED", 143, 0);
        let v = verdict(&end(&failed, Some(&stopped), ""));
        assert_eq!(
            v.reason.as_deref(),
            Some("cancelled outside ramguard (scancel)")
        );
        // Cancelled before the task started and before accounting knew the job: only
        // slurmstepd's line says so.
        let gone = state("LEFT_QUEUE", 0, 0);
        let err = "slurmstepd-vm: error: *** JOB 94 ON vm CANCELLED AT 2026-11-27T15:51:54 ***\n";
        let v = verdict(&end(&gone, None, err));
        assert_eq!(v.exit.ending.signal(), Some(15));
        assert_eq!(
            v.reason.as_deref(),
            Some("cancelled outside ramguard (scancel)")
        );
        let mut e = end(&st, None, "");
        e.cancelled = true;
        let v = verdict(&e);
        assert_eq!(v.exit.ending.signal(), Some(15));
        assert_eq!(v.reason, None, "the policy names its own stop");
        // A memory message in a job ramguard cancelled is not a memory kill.
        e.slurm_err = "exceeded memory limit";
        assert_ne!(verdict(&e).exit.ending, Ending::OomKilled);
    }

    #[test]
    fn a_job_that_died_before_its_task_says_what_slurm_said() {
        let st = state("FAILED", 127, 0);
        let err = "/bin/sh: 2: exec: /gone/ramguard: not found\n";
        let v = verdict(&end(&st, None, err));
        assert_eq!(v.exit.ending.code(), Some(127));
        let reason = v.reason.unwrap();
        assert!(reason.contains("Slurm: FAILED, exit 127:0"), "{reason}");
        assert!(reason.contains("/gone/ramguard: not found"), "{reason}");
    }
}
