//! Recycling and retries: what becomes of a task after ramguard stopped it at its cap
//! (`--task-mem`), its age (`--max-age`) or its timeout, or after it failed on its own.
//!
//! **Recycling** (`--recycle`) is seed 003's watchdog: a long-lived worker that leaks is
//! restarted when it reaches its cap or its age, instead of failing. A restart is not a
//! failure and spends no `--retries`; at most `per_minute` restarts of one task fit in any
//! [`RECYCLE_WINDOW`], since a task that hits its cap within seconds of every start is not
//! leaking slowly but simply too big, and restarting it forever would hide that.
//!
//! **Retries** (`--retries N --retry-on ...`) re-run an attempt whose ending is in the
//! chosen set ([`RetryOn`]; by default an exit with a nonzero code or a death by a signal
//! nobody in ramguard sent). Brakes and kernel OOM kills are never retries: the task was
//! not at fault, it is requeued with its peak as lower bound (see the parent module).
//!
//! Pure like the rest of the policy: the time of each restart comes in as `now`.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::time::Duration;

use super::{ExitClass, Policy, Reason, TaskId};

/// The window over which restarts of one task are counted against the limit.
pub const RECYCLE_WINDOW: Duration = Duration::from_secs(60);
/// Restarts of one task allowed per [`RECYCLE_WINDOW`] when `--recycle` gives no number.
pub const DEFAULT_RECYCLES_PER_MINUTE: u32 = 5;

/// Which endings `--retries` retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// Exited with a nonzero code.
    pub failed: bool,
    /// Killed by a signal nobody in ramguard sent.
    pub signaled: bool,
    /// Stopped for exceeding `--task-mem` (when not recycled).
    pub over_cap: bool,
    /// Stopped for exceeding `--timeout`.
    pub timeout: bool,
    /// SIGBUS with `/dev/shm` full.
    pub shm_bus: bool,
}

impl Default for RetryOn {
    /// Ordinary failures: a nonzero exit or a foreign signal.
    fn default() -> RetryOn {
        RetryOn {
            failed: true,
            signaled: true,
            over_cap: false,
            timeout: false,
            shm_bus: false,
        }
    }
}

impl RetryOn {
    /// The names `--retry-on` accepts, besides `none`.
    pub const NAMES: [&'static str; 5] = ["failed", "signaled", "over-cap", "timeout", "shm-bus"];

    /// Returns true if and only if `--retries` re-runs an attempt that ended this way.
    pub fn covers(&self, class: ExitClass) -> bool {
        match class {
            ExitClass::Failed => self.failed,
            ExitClass::Signaled => self.signaled,
            ExitClass::OverCap => self.over_cap,
            ExitClass::TimedOut => self.timeout,
            ExitClass::ShmBus => self.shm_bus,
            _ => false,
        }
    }

    /// The chosen endings by name, in [`RetryOn::NAMES`] order.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.failed,
            self.signaled,
            self.over_cap,
            self.timeout,
            self.shm_bus,
        ];
        Self::NAMES
            .iter()
            .zip(on)
            .filter_map(|(n, on)| on.then_some(*n))
            .collect()
    }
}

impl FromStr for RetryOn {
    type Err = String;

    /// Parses `failed,over-cap,timeout` (any of [`RetryOn::NAMES`]) or `none`.
    fn from_str(s: &str) -> Result<RetryOn, String> {
        let mut r = RetryOn {
            failed: false,
            signaled: false,
            over_cap: false,
            timeout: false,
            shm_bus: false,
        };
        for word in s.split(',').map(str::trim) {
            match word.replace('_', "-").as_str() {
                "failed" => r.failed = true,
                "signaled" | "signalled" => r.signaled = true,
                "over-cap" => r.over_cap = true,
                "timeout" | "timed-out" => r.timeout = true,
                "shm-bus" => r.shm_bus = true,
                "none" if s.trim() == "none" => {}
                _ => {
                    return Err(format!(
                    "unknown ending '{word}' in '{s}': use a comma-separated list of {} (or none)",
                    Self::NAMES.join(", ")
                ))
                }
            }
        }
        Ok(r)
    }
}

/// The restart settings and what has been restarted so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restarts {
    /// `--recycle`: restarts of one task allowed per minute; `None` when off.
    pub recycle: Option<u32>,
    /// `--max-age`: a task running longer is stopped (and recycled).
    pub max_age: Option<Duration>,
    /// `--retry-on`.
    pub retry_on: RetryOn,
    /// When each task was last restarted, within the window.
    recent: HashMap<TaskId, VecDeque<Duration>>,
    /// Restarts per task in this run.
    counts: HashMap<TaskId, u32>,
}

impl Restarts {
    pub fn new(recycle: Option<u32>, max_age: Option<Duration>, retry_on: RetryOn) -> Restarts {
        Restarts {
            recycle,
            max_age,
            retry_on,
            ..Restarts::default()
        }
    }

    /// How often a task was recycled in this run.
    pub fn recycles(&self, task: TaskId) -> u32 {
        self.counts.get(&task).copied().unwrap_or(0)
    }

    /// How many restarts happened in this run, all tasks together.
    pub fn total(&self) -> u32 {
        self.counts.values().sum()
    }
}

impl Policy {
    /// Sets how stopped and failed tasks are restarted (default: no recycling, `--retries`
    /// covers ordinary failures).
    pub fn with_restarts(mut self, restarts: Restarts) -> Policy {
        self.restarts = restarts;
        self
    }

    /// The restart settings and counts.
    pub fn restarts(&self) -> &Restarts {
        &self.restarts
    }

    /// The verdict on a task ramguard stopped at its cap, age or timeout: recycled when
    /// `--recycle` covers it and the limit allows, else retried or failed.
    pub(super) fn stopped_verdict(
        &mut self,
        now: Duration,
        id: TaskId,
        class: ExitClass,
        next: u32,
        brakes: u32,
        reason: Reason,
    ) -> (ExitClass, bool, Reason) {
        let recyclable = matches!(class, ExitClass::OverCap | ExitClass::MaxAge);
        if let (true, Some(limit), false) = (recyclable, self.restarts.recycle, self.interrupted) {
            let recent = self.restarts.recent.entry(id).or_default();
            while recent
                .front()
                .is_some_and(|&t| now.saturating_sub(t) >= RECYCLE_WINDOW)
            {
                recent.pop_front();
            }
            if recent.len() < limit as usize {
                recent.push_back(now);
                let n = self.restarts.counts.entry(id).or_default();
                *n += 1;
                let reason = Reason::Recycled {
                    cause: Box::new(reason),
                    restart: *n,
                };
                self.requeue(id, next, brakes);
                return (class, true, reason);
            }
            // Past the limit the task is too big rather than leaking; `--retries` with
            // `--retry-on over-cap` still gets its say.
            let reason = Reason::NotRecycled {
                cause: Box::new(reason),
                limit,
            };
            return self.retry_or_fail(id, class, next, brakes, reason);
        }
        self.retry_or_fail(id, class, next, brakes, reason)
    }

    /// Requeues a failed attempt when `--retry-on` covers its ending and `--retries` are
    /// left; otherwise fails the task for good.
    pub(super) fn retry_or_fail(
        &mut self,
        id: TaskId,
        class: ExitClass,
        next: u32,
        brakes: u32,
        reason: Reason,
    ) -> (ExitClass, bool, Reason) {
        if self.restarts.retry_on.covers(class) {
            self.aux[id].failures += 1;
            if self.aux[id].failures <= self.config.retries && !self.interrupted {
                self.requeue(id, next, brakes);
                return (class, true, reason);
            }
        }
        self.fail(id, class, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{
        Action, Config, Ending, Exit, Sample, StopReason, TaskSpec, TaskState, SIGTERM,
    };
    use crate::units::Bytes;

    const MIB: u64 = 1 << 20;

    fn config(cap: u64) -> Config {
        Config {
            budget: Bytes(4096 * MIB),
            reserve: Bytes(256 * MIB),
            brake_level: Bytes(400 * MIB),
            hard_level: Bytes(100 * MIB),
            max_jobs: 1,
            estimate: Some(Bytes(64 * MIB)),
            task_cap: Some(Bytes(cap * MIB)),
            timeout: None,
            grace: Duration::from_secs(5),
            retries: 0,
            psi_full_pause: 40.0,
            max_brakes: 3,
            pause: true,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn drain(p: &mut Policy, now: Duration) -> Vec<Action> {
        std::iter::from_fn(|| p.poll_action(now)).collect()
    }

    fn sample(p: &mut Policy, now: Duration, mem: u64) {
        let tasks = match p.state(0) {
            TaskState::Running { .. } => vec![(0, Bytes(mem * MIB))],
            _ => vec![],
        };
        let s = Sample {
            available: Bytes(8192 * MIB),
            psi_full_avg10: None,
            tasks,
            shm_room_for: None,
            shm_free: None,
            cpu: Vec::new(),
        };
        p.handle_sample(now, &s);
    }

    fn term_exit(peak: u64) -> Exit {
        Exit {
            ending: Ending::Signaled { signal: SIGTERM },
            peak: Bytes(peak * MIB),
        }
    }

    /// Starts the task, lets it grow past its 100 MiB cap and exit on TERM; returns the
    /// verdict.
    fn one_cycle(p: &mut Policy, t: Duration) -> (ExitClass, bool, Reason) {
        // A recycled task restarts in the same drain that reports its end.
        if !matches!(p.state(0), TaskState::Running { .. }) {
            sample(p, t, 0);
            assert!(drain(p, t)
                .iter()
                .any(|a| matches!(a, Action::Start { task: 0, .. })));
        }
        sample(p, t + secs(1), 120);
        let actions = drain(p, t + secs(1));
        assert!(actions.contains(&Action::Term {
            task: 0,
            reason: StopReason::OverCap
        }));
        p.handle_exit(t + secs(2), 0, &term_exit(120));
        drain(p, t + secs(2))
            .into_iter()
            .find_map(|a| match a {
                Action::Finished {
                    class,
                    requeued,
                    reason,
                    ..
                } => Some((class, requeued, reason)),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_worker_over_its_cap_is_recycled_until_the_per_minute_limit() {
        let mut p = Policy::new(config(100), vec![TaskSpec::default()])
            .with_restarts(Restarts::new(Some(3), None, RetryOn::default()));
        for n in 1..=3 {
            let (class, requeued, reason) = one_cycle(&mut p, secs(3 * n));
            assert_eq!((class, requeued), (ExitClass::OverCap, true), "{reason:?}");
            assert!(
                matches!(reason, Reason::Recycled { restart, .. } if restart == n as u32),
                "{reason:?}"
            );
        }
        assert_eq!(p.restarts().recycles(0), 3);
        // A fourth cap within the minute: too fast for a leak, it fails.
        let (class, requeued, reason) = one_cycle(&mut p, secs(12));
        assert_eq!((class, requeued), (ExitClass::OverCap, false));
        assert!(
            matches!(reason, Reason::NotRecycled { limit: 3, .. }),
            "{reason:?}"
        );
        assert!(p.is_finished());
    }

    #[test]
    fn restarts_older_than_the_window_do_not_count() {
        let mut p = Policy::new(config(100), vec![TaskSpec::default()])
            .with_restarts(Restarts::new(Some(1), None, RetryOn::default()));
        assert!(one_cycle(&mut p, secs(0)).1);
        assert!(
            one_cycle(&mut p, secs(61)).1,
            "a minute later it may restart again"
        );
        assert!(!one_cycle(&mut p, secs(70)).1);
    }

    /// One task capped at 100 MiB, `--retries 1 --retry-on over-cap`, and `--recycle=N`.
    fn one_retry_on_over_cap(recycle: Option<u32>) -> Policy {
        let retry: RetryOn = "over-cap".parse().unwrap();
        Policy::new(
            Config {
                retries: 1,
                ..config(100)
            },
            vec![TaskSpec::default()],
        )
        .with_restarts(Restarts::new(recycle, None, retry))
    }

    #[test]
    fn without_recycle_a_capped_task_fails_unless_retry_on_covers_it() {
        let mut p = Policy::new(config(100), vec![TaskSpec::default()]);
        assert!(!one_cycle(&mut p, secs(0)).1);

        let mut p = one_retry_on_over_cap(None);
        assert!(one_cycle(&mut p, secs(0)).1, "the one retry");
        assert!(!one_cycle(&mut p, secs(5)).1, "retries spent");
    }

    #[test]
    fn past_the_recycle_limit_retry_on_over_cap_spends_the_retries() {
        let mut p = one_retry_on_over_cap(Some(1));
        assert!(matches!(
            one_cycle(&mut p, secs(0)),
            (_, true, Reason::Recycled { .. })
        ));
        // Regression: past the limit it failed at once, its retry never used.
        let (class, requeued, reason) = one_cycle(&mut p, secs(5));
        assert_eq!((class, requeued), (ExitClass::OverCap, true), "{reason:?}");
        assert!(matches!(reason, Reason::NotRecycled { limit: 1, .. }));
        assert!(!one_cycle(&mut p, secs(10)).1, "retries spent");
        assert!(p.is_finished());
    }

    proptest::proptest! {
        /// Whatever the pace of cap hits, no task is restarted more than `limit` times in
        /// any window of a minute, and it fails exactly when one more restart would break
        /// that.
        #[test]
        fn restarts_never_exceed_the_limit_in_any_minute(
            limit in 1u32..5,
            gaps in proptest::collection::vec(3u64..40, 1..30),
        ) {
            let mut p = Policy::new(config(100), vec![TaskSpec::default()]).with_restarts(
                Restarts::new(Some(limit), None, RetryOn::default()),
            );
            let mut t = Duration::ZERO;
            let mut restarts: Vec<Duration> = Vec::new();
            for gap in gaps {
                t += secs(gap);
                let (_, requeued, _) = one_cycle(&mut p, t);
                let end = t + secs(2);
                let in_window = restarts
                    .iter()
                    .filter(|&&r| end.saturating_sub(r) < RECYCLE_WINDOW)
                    .count();
                proptest::prop_assert_eq!(requeued, in_window < limit as usize);
                if !requeued {
                    proptest::prop_assert!(p.is_finished());
                    break;
                }
                restarts.push(end);
            }
            proptest::prop_assert_eq!(p.restarts().recycles(0) as usize, restarts.len());
        }
    }

    #[test]
    fn max_age_stops_and_recycles_a_worker() {
        let mut p = Policy::new(config(1000), vec![TaskSpec::default()])
            .with_restarts(Restarts::new(Some(5), Some(secs(60)), RetryOn::default()));
        sample(&mut p, secs(0), 0);
        drain(&mut p, secs(0));
        assert_eq!(p.poll_timeout(secs(1)), Some(secs(60)));
        assert!(drain(&mut p, secs(59)).is_empty());
        assert_eq!(
            drain(&mut p, secs(60)),
            vec![Action::Term {
                task: 0,
                reason: StopReason::MaxAge
            }]
        );
        p.handle_exit(secs(61), 0, &term_exit(10));
        let fin = drain(&mut p, secs(61));
        assert!(
            fin.iter().any(|a| matches!(
                a,
                Action::Finished {
                    class: ExitClass::MaxAge,
                    requeued: true,
                    ..
                }
            )),
            "{fin:?}"
        );
        assert!(
            fin.iter().any(|a| matches!(
                a,
                Action::Start {
                    task: 0,
                    attempt: 2,
                    ..
                }
            )),
            "restarted at once: {fin:?}"
        );
    }

    #[test]
    fn retry_on_parses_lists_and_refuses_unknown_endings() {
        let r: RetryOn = "failed,over-cap,timeout".parse().unwrap();
        assert!(r.covers(ExitClass::Failed) && r.covers(ExitClass::OverCap));
        assert!(r.covers(ExitClass::TimedOut) && !r.covers(ExitClass::Signaled));
        assert_eq!(r.names(), ["failed", "over-cap", "timeout"]);
        let none: RetryOn = "none".parse().unwrap();
        assert!(none.names().is_empty());
        assert!(!none.covers(ExitClass::Braked));
        let e = "failed,oom".parse::<RetryOn>().unwrap_err();
        assert!(e.contains("'oom'") && e.contains("over-cap"), "{e}");
        assert!("failed,none".parse::<RetryOn>().is_err());
        assert_eq!(RetryOn::default().names(), ["failed", "signaled"]);
    }
}
