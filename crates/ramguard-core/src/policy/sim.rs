//! A simulated host and simulated time that drive the real [`Policy`], quinn-style.
//!
//! Each task follows a scripted memory trace per attempt (piecewise linear, ending in an
//! exit); the host's available memory is `capacity − external − Σ task memory`. [`Sim::step`]
//! jumps to the next wake-up (the policy's [`Policy::poll_timeout`], the next scripted exit,
//! or the next sample tick), delivers exits, samples, drains actions and executes them the
//! way the supervisor would: Start spawns at once, Term makes a task exit after its scripted
//! `term_delay` (or never, if it ignores TERM), Kill ends it at once, Pause freezes a task's
//! trace where it is (memory held, its clock stopped) until Resume. If tasks ever hold more
//! than the capacity, the simulated kernel OOM-kills the task with the highest
//! `oom_score_adj`, as Linux would.
//!
//! **CPU contention** (opt-in, [`Host::cpu`]): growing memory costs CPU (the kernel zeroes
//! every page a task touches first). When the tasks that grow at an instant would need more
//! CPU than the host has, each of them advances through its trace only at the share it
//! gets, so its ramp, and everything after it, ends later; holding memory costs nothing.
//! On the 2-CPU development host a ramp of 1 GiB costs about 0.35 s of CPU
//! (`/usr/bin/time memhog --peak 1G --ramp 3s`), and real runs of the benchmark's mixes took
//! longer than their ideal twins because several large ramps ran at once.
//!
//! While it runs, the harness checks invariants independently of the policy and records
//! violations in the [`Report`]: a Start only when the task fits (recomputed from the
//! harness's own view), Kill only after Term, Finished only after an exit, at most one final
//! verdict per task, Pause only of a running task and Resume only of a paused one, and never
//! every running task paused once an instant has been handled. `plan`/`simulate` can replay recorded traces through this same code.
//! Pure: no clock, no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use super::pace::{self, Pacer};
use super::{
    Action, Config, Ending, Exit, ExitClass, Note, Policy, Sample, TaskId, TaskState, SIGKILL,
    SIGTERM,
};
use crate::units::Bytes;

mod world;
pub use world::{Cpu, End, Host, Report, Script, SimTask, Sleep};

#[derive(Debug, Clone)]
struct Run {
    started: Duration,
    script: Script,
    adj: i32,
    peak: Bytes,
    mem: Bytes,
    term_at: Option<Duration>,
    kill_at: Option<Duration>,
    oom: bool,
    /// Paused since then (SIGSTOP): its trace's clock stands still, but for a sleep on the
    /// wall clock, which runs on to its end.
    paused_since: Option<Duration>,
    /// Where in its trace it was when paused.
    paused_age: Duration,
    /// Time paused before `paused_since`.
    paused_total: Duration,
    /// Time its trace stood still for want of CPU ([`Host::cpu`]).
    slowed: Duration,
}

impl Run {
    /// Where the attempt is in its script: time since start, paused time and time lost to
    /// CPU contention excluded.
    fn age(&self, now: Duration) -> Duration {
        let paused = self.paused_total
            + self.slowed
            + self
                .paused_since
                .map_or(Duration::ZERO, |p| self.stood_still(now.saturating_sub(p)));
        now.saturating_sub(self.started).saturating_sub(paused)
    }

    /// Of a pause that has lasted `span`, the time its trace stood still: all of it, less
    /// what a sleep on the wall clock ran on meanwhile.
    fn stood_still(&self, span: Duration) -> Duration {
        span.saturating_sub(self.script.sleep_left(self.paused_age))
    }

    /// CPU time used up to `now`: its time in its trace, less its sleeps.
    fn cpu(&self, now: Duration) -> Duration {
        let age = self.age(now);
        age.saturating_sub(self.script.asleep_before(age))
    }

    /// Bytes per second its trace grows at `now` (0 while paused, holding or shrinking).
    fn growth(&self, now: Duration) -> f64 {
        if self.paused_since.is_some() || self.term_at.is_some() {
            return 0.0;
        }
        let age = self.age(now);
        let mut prev = (Duration::ZERO, Bytes::ZERO);
        for &(t, m) in &self.script.points {
            if age < t {
                let span = t.saturating_sub(prev.0).as_secs_f64();
                let rise = m.get() as f64 - prev.1.get() as f64;
                return if span > 0.0 {
                    (rise / span).max(0.0)
                } else {
                    0.0
                };
            }
            prev = (t, m);
        }
        0.0
    }

    fn exit_time(&self) -> Duration {
        // A stopped process does not end by itself, nor act on TERM; only KILL ends it.
        let mut t = match self.paused_since {
            Some(_) => Duration::MAX,
            None => self.started + self.paused_total + self.slowed + self.script.length(),
        };
        if let (Some(term), Some(d), None) =
            (self.term_at, self.script.term_delay, self.paused_since)
        {
            t = t.min(term + d);
        }
        if let Some(k) = self.kill_at {
            t = t.min(k);
        }
        t
    }
}

/// The harness: a policy, a host and tasks, in simulated time.
#[derive(Debug)]
pub struct Sim {
    policy: Policy,
    host: Host,
    tasks: Vec<SimTask>,
    attempts: Vec<usize>,
    runs: BTreeMap<TaskId, Run>,
    /// Exited but not yet given a verdict: start time of the attempt and its time paused.
    awaiting: BTreeMap<TaskId, (Duration, Duration)>,
    now: Duration,
    tick: Duration,
    /// Sampling like the supervisor ([`Sim::sampling_like_the_supervisor`]): the fill rate
    /// seen, until when the fast floor holds, and the last sample (time, available, used).
    adaptive: Option<Adaptive>,
    interrupt_at: Option<Duration>,
    interrupted: bool,
    primed: bool,
    view_available: Bytes,
    view_mem: BTreeMap<TaskId, Bytes>,
    log: Vec<(Duration, Action)>,
    report: Report,
}

/// The supervisor's adaptive sampling, replayed through the same rule (`policy::pace`).
#[derive(Debug, Clone, Copy)]
struct Adaptive {
    pacer: Pacer,
    next: Duration,
}

/// Simulated time after which [`Sim::drive`] gives up: the policy is stuck.
pub const SIM_LIMIT: Duration = Duration::from_secs(24 * 3600);

impl Sim {
    /// A harness sampling every 50 ms (see [`Sim::sampling_like_the_supervisor`]).
    pub fn new(config: Config, host: Host, tasks: Vec<SimTask>) -> Sim {
        let specs = tasks.iter().map(|t| t.spec.clone()).collect();
        let n = tasks.len();
        let capacity = host.capacity;
        Sim {
            policy: Policy::new(config, specs),
            view_available: capacity,
            host,
            tasks,
            attempts: vec![0; n],
            runs: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            now: Duration::ZERO,
            tick: Duration::from_millis(50),
            adaptive: None,
            interrupt_at: None,
            interrupted: false,
            primed: false,
            view_mem: BTreeMap::new(),
            log: Vec::new(),
            report: Report {
                finals: vec![0; n],
                min_available: capacity,
                ..Report::default()
            },
        }
    }

    /// Tells the policy which features are kinds ([`Policy::with_kinds`]).
    pub fn with_kinds(mut self, kinds: &[std::ops::Range<usize>]) -> Sim {
        self.policy = self.policy.with_kinds(kinds);
        self
    }

    /// The same harness sampling as the supervisor does, instead of every 50 ms: from 500 ms
    /// apart while memory is far from the lines down to 2 ms while it races toward them.
    pub fn sampling_like_the_supervisor(mut self) -> Sim {
        // An ideal host lets every running task fill at once.
        let jobs = u32::try_from(self.policy.config().max_jobs).unwrap_or(u32::MAX);
        let cpus = self
            .host
            .cpu
            .map_or(jobs, |c| (c.cpus.ceil() as u32).min(jobs));
        self.adaptive = Some(Adaptive {
            pacer: Pacer::new(cpus),
            next: Duration::ZERO,
        });
        self
    }

    /// Interrupts the run (Ctrl-C) at this simulated time.
    pub fn interrupt_at(&mut self, t: Duration) {
        self.interrupt_at = Some(t);
    }

    /// The policy under test.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy under test, to seed it (e.g. `learn_from_history`) before driving.
    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }

    /// Every action with the time it was polled.
    pub fn log(&self) -> &[(Duration, Action)] {
        &self.log
    }

    /// Simulated time now.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Returns true if and only if the policy is finished and nothing runs.
    pub fn finished(&self) -> bool {
        self.policy.is_finished() && self.runs.is_empty()
    }

    /// Advances to the next wake-up and handles it; returns false once finished.
    pub fn step(&mut self) -> bool {
        if !self.primed {
            // The supervisor samples and drains once before it first sleeps.
            self.primed = true;
            self.sample_and_drain();
        }
        if self.finished() {
            return false;
        }
        let tick = self.adaptive.map_or(self.tick, |a| a.next);
        let mut next = self.now + tick;
        if let Some(p) = self.policy.poll_timeout(self.now) {
            next = next.min(p.max(self.now));
        }
        let speed = self.cpu_share();
        for (id, run) in &self.runs {
            let share = speed.get(id).copied().unwrap_or(1.0);
            let later = |d: Duration| d.div_f64(share);
            let age = run.age(self.now);
            let natural = run.exit_time();
            match run.paused_since {
                // A slowed trace reaches its end later than its clock says now.
                None if share < 1.0 && natural.saturating_sub(self.now) > Duration::ZERO => {
                    let left = run.script.length().saturating_sub(age);
                    next = next.min(self.now + later(left));
                }
                _ => next = next.min(natural.max(self.now)),
            }
            // The next corner of the trace: a ramp that ends between ticks is seen at once.
            if let Some(&(t, _)) = run.script.points.iter().find(|p| p.0 > age) {
                if run.paused_since.is_none() {
                    next = next.min(self.now + later(t - age));
                }
            }
        }
        if let Some(i) = self.interrupt_at.filter(|_| !self.interrupted) {
            next = next.min(i.max(self.now));
        }
        let span = next.saturating_sub(self.now).as_secs_f64();
        for (id, share) in speed {
            if let Some(run) = self.runs.get_mut(&id) {
                run.slowed += Duration::from_secs_f64(span * (1.0 - share));
            }
        }
        self.report.task_seconds += self.runs.len() as f64 * span;
        let paused = self.runs.values().filter(|r| r.paused_since.is_some());
        self.report.paused_seconds += paused.count() as f64 * span;
        self.now = next;
        self.deliver_exits();
        if self.interrupt_at.is_some_and(|i| i <= self.now) && !self.interrupted {
            self.interrupted = true;
            self.policy.interrupt(self.now);
        }
        self.kernel();
        self.sample_and_drain();
        // Never deadlock: something that runs is not paused once an instant is handled.
        if !self.runs.is_empty() && self.runs.values().all(|r| r.paused_since.is_some()) {
            self.violation(format!("every running task is paused at {:?}", self.now));
        }
        !self.finished()
    }

    /// Steps until finished, then checks the end-of-run invariants; returns the report.
    pub fn drive(&mut self) -> Report {
        let mut same_time = 0;
        loop {
            let before = self.now;
            if !self.step() {
                break;
            }
            same_time = if self.now == before { same_time + 1 } else { 0 };
            assert!(same_time < 10_000, "policy spins at {:?}", self.now);
            assert!(self.now < SIM_LIMIT, "policy stuck: {:#?}", self.policy);
        }
        self.report.makespan = self.now;
        for (id, &n) in self.report.finals.iter().enumerate() {
            let state = self.policy.state(id);
            if self.interrupted {
                if n > 1 {
                    self.report
                        .violations
                        .push(format!("task {id}: {n} final verdicts"));
                }
            } else if n != 1 || !matches!(state, TaskState::Done { .. } | TaskState::Failed { .. })
            {
                self.report
                    .violations
                    .push(format!("task {id}: {n} final verdicts, state {state:?}"));
            }
        }
        self.report.clone()
    }

    /// The share of its own pace each growing task gets when their growth needs more CPU
    /// than the host has ([`Host::cpu`]); tasks not listed run at full pace.
    fn cpu_share(&self) -> BTreeMap<TaskId, f64> {
        let Some(cpu) = self.host.cpu else {
            return BTreeMap::new();
        };
        let per_byte = cpu.secs_per_gib / (1u64 << 30) as f64;
        let growing: Vec<(TaskId, f64)> = self
            .runs
            .iter()
            .map(|(&id, r)| (id, r.growth(self.now)))
            .filter(|&(_, g)| g > 0.0)
            .collect();
        let need: f64 = growing.iter().map(|&(_, g)| g * per_byte).sum();
        if need <= cpu.cpus {
            return BTreeMap::new();
        }
        let share = cpu.cpus / need;
        growing.into_iter().map(|(id, _)| (id, share)).collect()
    }

    fn memory(&self) -> Bytes {
        self.runs.values().map(|r| r.mem).sum::<Bytes>() + self.host.external_at(self.now)
    }

    /// Hands every attempt whose time is up to the policy.
    fn deliver_exits(&mut self) {
        loop {
            let due = self
                .runs
                .iter()
                .filter(|(_, r)| r.exit_time() <= self.now)
                .min_by_key(|(_, r)| r.exit_time())
                .map(|(&id, _)| id);
            let Some(id) = due else { break };
            let Some(run) = self.runs.remove(&id) else {
                break;
            };
            let natural = run.exit_time()
                == run.started + run.paused_total + run.slowed + run.script.length()
                && run.kill_at.is_none_or(|k| k > run.exit_time());
            let last = run.script.memory_at(run.age(run.exit_time()));
            let peak = run.peak.max(last);
            let ending = if run.oom {
                Ending::OomKilled
            } else if run.kill_at.is_some_and(|k| k <= run.exit_time()) {
                Ending::Signaled { signal: SIGKILL }
            } else if natural {
                run.script.end.ending()
            } else {
                Ending::Signaled { signal: SIGTERM }
            };
            let exit = Exit { ending, peak };
            self.view_available = self.view_available.saturating_add(run.mem);
            self.view_mem.remove(&id);
            self.awaiting.insert(id, (run.started, run.paused_total));
            self.policy.handle_exit(self.now, id, &exit);
        }
    }

    /// The simulated kernel: when memory runs out, kill the highest `oom_score_adj`.
    fn kernel(&mut self) {
        let now = self.now;
        for run in self.runs.values_mut() {
            // A task that acts on TERM allocates no more once it has it: it exits within
            // its delay, holding what it had (one that ignores TERM goes on along its
            // trace). A stopped task braked is sent TERM and then continued, and with
            // TERM's default action it dies before it runs again; a handler that sets a
            // flag stops a loop at its next check. Following the trace after TERM had a
            // task braked mid-jump (paused at 1.04 GiB of a 2 GiB jump traced in 0.1 s)
            // fault in 770 MiB more before it exited, and the simulated kernel OOM-killed
            // five others (`tasks_idle_at_startup_then_jumping_together_...`).
            let exiting = run.term_at.is_some() && run.script.term_delay.is_some();
            if !exiting {
                run.mem = run.script.memory_at(run.age(now));
            }
            run.peak = run.peak.max(run.mem);
        }
        while self.memory() > self.host.capacity {
            let victim = self
                .runs
                .iter()
                .filter(|(_, r)| !r.oom)
                .max_by_key(|(_, r)| (r.adj, r.started))
                .map(|(&id, _)| id);
            let Some(id) = victim else { break };
            self.report.kernel_oom_kills += 1;
            if let Some(r) = self.runs.get_mut(&id) {
                r.oom = true;
                r.kill_at = Some(now);
                r.mem = Bytes::ZERO;
            }
        }
        self.deliver_exits();
    }

    /// Samples the host and tasks, then executes the policy's actions.
    fn sample_and_drain(&mut self) {
        let used = self.memory();
        let available = self.host.capacity.saturating_sub(used);
        let tasks: Vec<(TaskId, Bytes)> = self.runs.iter().map(|(&id, r)| (id, r.mem)).collect();
        self.view_available = available;
        self.report.min_available = self.report.min_available.min(available);
        self.view_mem = tasks.iter().copied().collect();
        self.policy.handle_sample(
            self.now,
            &Sample {
                available,
                psi_full_avg10: self.host.psi_at(self.now),
                cpu: self
                    .runs
                    .iter()
                    .map(|(&id, r)| (id, r.cpu(self.now)))
                    .collect(),
                tasks,
                shm_room_for: None,
                shm_free: None,
            },
        );
        while let Some(action) = self.policy.poll_action(self.now) {
            self.execute(&action);
            self.log.push((self.now, action));
        }
        if let Some(mut a) = self.adaptive {
            let cfg = self.policy.config();
            let used = self.runs.values().map(|r| r.mem).sum::<Bytes>();
            let largest = self.runs.values().map(|r| r.mem).max().unwrap_or_default();
            let headroom = pace::headroom(cfg, available, used, largest);
            a.next = a.pacer.next(self.now, available, used, headroom);
            self.adaptive = Some(a);
        }
    }

    fn execute(&mut self, action: &Action) {
        let now = self.now;
        match action {
            Action::Start {
                task,
                predicted,
                oom_score_adj,
                ..
            } => {
                self.check_fits(*task, *predicted);
                if self.runs.contains_key(task) || self.awaiting.contains_key(task) {
                    self.violation(format!("task {task} started twice"));
                }
                let k = self.attempts[*task];
                self.attempts[*task] += 1;
                let scripts = &self.tasks[*task].scripts;
                let script = scripts[k.min(scripts.len() - 1)].clone();
                self.runs.insert(
                    *task,
                    Run {
                        started: now,
                        script,
                        adj: *oom_score_adj,
                        peak: Bytes::ZERO,
                        mem: Bytes::ZERO,
                        term_at: None,
                        kill_at: None,
                        oom: false,
                        paused_since: None,
                        paused_age: Duration::ZERO,
                        paused_total: Duration::ZERO,
                        slowed: Duration::ZERO,
                    },
                );
                self.view_mem.insert(*task, Bytes::ZERO);
                self.report.max_running = self.report.max_running.max(self.runs.len());
            }
            Action::Term { task, .. } => match self.runs.get_mut(task) {
                Some(r) => {
                    r.term_at.get_or_insert(now);
                }
                None => self.violation(format!("TERM to task {task}, which is not running")),
            },
            Action::Pause { task } => match self.runs.get_mut(task) {
                Some(r) if r.paused_since.is_none() && r.term_at.is_none() => {
                    r.paused_age = r.age(now);
                    r.paused_since = Some(now);
                    self.report.pauses += 1;
                }
                Some(_) => self.violation(format!("Pause of task {task}, paused or stopping")),
                None => self.violation(format!("Pause of task {task}, which is not running")),
            },
            Action::Resume { task } => match self.runs.get_mut(task) {
                Some(r) => match r.paused_since {
                    Some(since) => {
                        r.paused_total += r.stood_still(now.saturating_sub(since));
                        r.paused_since = None;
                    }
                    None => self.violation(format!("Resume of task {task}, which is not paused")),
                },
                None => self.violation(format!("Resume of task {task}, which is not running")),
            },
            Action::Kill { task, .. } => match self.runs.get_mut(task) {
                Some(r) if r.term_at.is_some() => {
                    r.kill_at.get_or_insert(now);
                }
                Some(_) => self.violation(format!("KILL before TERM to task {task}")),
                None => self.violation(format!("KILL to task {task}, which is not running")),
            },
            Action::Finished {
                task,
                class,
                requeued,
                ..
            } => {
                let Some((started, paused)) = self.awaiting.remove(task) else {
                    self.violation(format!("Finished for task {task} without an exit"));
                    return;
                };
                if matches!(class, ExitClass::Braked | ExitClass::OomKilled) {
                    let ran = now.saturating_sub(started).saturating_sub(paused);
                    self.report.braked_seconds += ran.as_secs_f64();
                }
                if !requeued {
                    self.report.finals[*task] += 1;
                }
            }
            Action::Fail { task, .. } => {
                if self.runs.contains_key(task) {
                    self.violation(format!("Fail for running task {task}"));
                }
                self.report.finals[*task] += 1;
            }
            Action::Note(Note::Brake { .. }) => self.report.brakes += 1,
            Action::Note(_) => {}
        }
    }

    /// Checks, from the harness's own view, that a started task fit (module doc of policy):
    /// once every running task with an expected end has ended, the rest at their predicted
    /// peaks and the newcomer at its own must fit in the headroom above the reserve. A task
    /// idling far below its peak, and a newcomer admitted in its quiet start, count at what
    /// they hold, plus the largest of their jumps.
    fn check_fits(&mut self, task: TaskId, predicted: Bytes) {
        let others: Vec<TaskId> = self.runs.keys().copied().collect();
        if others.is_empty() {
            return; // alone: only its lower bound must fit, checked by the budget rule
        }
        let cfg = self.policy.config().clone();
        let current: Bytes = others
            .iter()
            .map(|id| self.view_mem.get(id).copied().unwrap_or_default())
            .sum();
        // In a sleepy sweep, a newcomer left to parking needs only what it holds to fit
        // beside the jumps of idle tasks that work: parking stops the others before theirs.
        let parks = self.policy.jump_left_to_parking(task, self.now);
        let mut jump = Bytes::ZERO;
        let staying: Bytes = others
            .iter()
            .filter(|&&id| self.policy.expected_end(id, self.now).is_none())
            .map(|&id| {
                let cur = self.view_mem.get(&id).copied().unwrap_or_default();
                let at_peak = self.policy.predicted(id).max(cur);
                match self.policy.idle_jump(id, self.now) {
                    Some(j) => {
                        if !(parks && self.policy.jump_parkable(id, self.now)) {
                            jump = jump.max(j);
                        }
                        at_peak.saturating_sub(j)
                    }
                    None => at_peak,
                }
            })
            .sum::<Bytes>()
            .saturating_add(jump);
        let limit = self
            .view_available
            .saturating_sub(cfg.reserve)
            .saturating_add(current)
            .min(cfg.budget);
        // A task admitted in its quiet start counts at what it holds meanwhile, its jump
        // sharing the one kept free; in a sleepy sweep, its jump is parking's.
        let (predicted, staying) = match self.policy.idle_jump(task, self.now) {
            Some(j) if parks => (predicted.saturating_sub(j), staying),
            Some(j) => (
                predicted.saturating_sub(j),
                staying.saturating_sub(jump).saturating_add(jump.max(j)),
            ),
            None => (predicted, staying),
        };
        if predicted.saturating_add(staying) > limit {
            self.violation(format!(
                "task {task} started at {:?} predicted {predicted} beside {staying} that \
                 stays, limit {limit}",
                self.now
            ));
        }
    }

    fn violation(&mut self, what: String) {
        self.report.violations.push(what);
    }
}
