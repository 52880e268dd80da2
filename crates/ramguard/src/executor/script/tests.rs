//! The policy driven end to end through the drive loop and the scripted executor.

use std::os::fd::OwnedFd;
use std::time::Duration;

use anyhow::Result;
use ramguard_core::policy::{Config, ExitClass, Note, Policy, TaskId, TaskSpec};
use ramguard_core::Bytes;

use super::{End, Script, Scripted, Told};
use crate::executor::attempt::Launch;
use crate::executor::attempt::TreeMemory;
use crate::executor::{drive, Finished, RunEnd, Sink, Snapshot, Stop};

const GIB: f64 = (1u64 << 30) as f64;

fn gib(x: f64) -> Bytes {
    Bytes((x * GIB) as u64)
}

fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

/// An 8 GiB host with a 6 GiB budget, -j 8, brake at 512 MiB, no estimate.
fn config() -> Config {
    Config {
        budget: gib(6.0),
        reserve: gib(0.25),
        brake_level: gib(0.5),
        hard_level: gib(0.125),
        max_jobs: 8,
        estimate: None,
        task_cap: None,
        timeout: None,
        grace: secs(5.0),
        retries: 0,
        psi_full_pause: 40.0,
        max_brakes: 3,
        pause: true,
    }
}

/// Records what the drive loop reports, and checks on every sample that the tasks never
/// held more than the host has.
#[derive(Default)]
struct Recorder {
    lines: Vec<String>,
    finished: Vec<Finished>,
    held: Bytes,
    most_held: Bytes,
    flushes: usize,
}

impl Recorder {
    fn finals(&self, task: TaskId) -> Vec<(ExitClass, bool)> {
        self.finished
            .iter()
            .filter(|f| f.task == task)
            .map(|f| (f.class, f.requeued))
            .collect()
    }
}

fn dev_null() -> OwnedFd {
    std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null opens")
        .into()
}

impl Sink for Recorder {
    fn launch(&mut self, _now: Duration, task: TaskId, attempt: u32) -> Result<Launch> {
        Ok(Launch {
            argv: vec!["task".into(), task.to_string(), attempt.to_string()],
            env: Vec::new(),
            stdout: dev_null(),
            stderr: dev_null(),
        })
    }

    fn started(
        &mut self,
        now: Duration,
        task: TaskId,
        attempt: u32,
        pid: u32,
        _predicted: Bytes,
    ) -> Result<()> {
        self.lines
            .push(format!("{now:?} start {task}#{attempt} pid {pid}"));
        Ok(())
    }

    fn sample(&mut self, _now: Duration, _task: TaskId, memory: &TreeMemory) -> Result<()> {
        self.held += memory.used;
        Ok(())
    }

    fn finished(&mut self, now: Duration, fin: &Finished) -> Result<()> {
        self.lines.push(format!(
            "{now:?} {}#{} {} requeued={} code={:?} signal={:?} reason={}",
            fin.task,
            fin.attempt,
            fin.class.as_str(),
            fin.requeued,
            fin.code(),
            fin.signal(),
            fin.reason
        ));
        self.finished.push(fin.clone());
        Ok(())
    }

    fn failed_unstarted(&mut self, now: Duration, task: TaskId, reason: &str) -> Result<()> {
        self.lines
            .push(format!("{now:?} {task} cannot run: {reason}"));
        Ok(())
    }

    fn note(&mut self, now: Duration, note: &Note) -> Result<()> {
        self.lines.push(format!("{now:?} note {note:?}"));
        Ok(())
    }

    fn flush(&mut self, _now: Duration, snapshot: &Snapshot) -> Result<()> {
        self.most_held = self.most_held.max(self.held);
        self.held = Bytes::ZERO;
        assert!(snapshot.paused <= snapshot.running, "{snapshot:?}");
        self.flushes += 1;
        Ok(())
    }
}

fn run(config: Config, exec: &mut Scripted, n: usize) -> (RunEnd, Recorder) {
    let mut policy = Policy::new(config, vec![TaskSpec::default(); n]);
    let mut sink = Recorder::default();
    let end = drive(&mut policy, exec, &mut sink).expect("the run completes");
    (end, sink)
}

fn ramp(peak: f64, ramp_s: f64, hold_s: f64) -> Script {
    Script::ramp(gib(peak), secs(ramp_s), secs(hold_s), 0)
}

#[test]
fn tasks_too_big_together_are_paused_then_braked_and_all_finish() {
    // Four tasks estimated small all grow to 3 GiB at once: 12 GiB on an 8 GiB host.
    let cfg = Config {
        estimate: Some(gib(0.5)),
        budget: gib(7.5),
        ..config()
    };
    let mut exec = Scripted::new(gib(8.0));
    for task in 0..4 {
        exec = exec.task(task, vec![ramp(3.0, 8.0, 2.0)]);
    }
    let (end, sink) = run(cfg, &mut exec, 4);
    assert_eq!(end, RunEnd::Completed);
    for task in 0..4 {
        let finals = sink.finals(task);
        assert_eq!(finals.last(), Some(&(ExitClass::Done, false)), "{task}");
    }
    // The newest task is the brake's first victim, requeued, and it was paused first: the
    // cheaper lever before the brake.
    assert_eq!(
        sink.finals(3)[0],
        (ExitClass::Braked, true),
        "{:#?}",
        sink.lines
    );
    let told = exec.told();
    let first = |want: &dyn Fn(&Told) -> bool| told.iter().position(|(_, t)| want(t));
    let pause = first(&|t| *t == Told::Pause { task: 3 }).expect("task 3 paused");
    let stop = first(&|t| {
        *t == Told::Stop {
            task: 3,
            how: Stop::Ask,
        }
    })
    .expect("task 3 braked");
    assert!(pause < stop, "{told:#?}");
    // The brake held the tasks below the host's 8 GiB on every sample.
    assert!(sink.most_held <= gib(8.0), "{:?}", sink.most_held);
    assert!(sink.most_held > gib(5.0), "{:?}", sink.most_held);
}

#[test]
fn endings_are_classified_from_what_the_executor_saw() {
    let cfg = Config {
        estimate: Some(gib(0.5)),
        ..config()
    };
    let small = || ramp(0.25, 1.0, 0.5);
    let mut exec = Scripted::new(gib(8.0))
        .task(0, vec![small()])
        .task(1, vec![small().ending(End::Code(3))])
        .task(2, vec![small().ending(End::Signal(11))])
        .task(3, vec![small().ending(End::OomKilled), small()])
        .unstartable(4, "cannot run `nosuch`: No such file or directory");
    let (end, sink) = run(cfg, &mut exec, 5);
    assert_eq!(end, RunEnd::Completed);
    let first = |task| sink.finished.iter().find(|f| f.task == task).unwrap();
    assert_eq!(first(0).class, ExitClass::Done);
    assert_eq!(
        (first(1).class, first(1).code()),
        (ExitClass::Failed, Some(3))
    );
    assert_eq!(first(1).reason, "exit code 3");
    assert_eq!(
        (first(2).class, first(2).signal()),
        (ExitClass::Signaled, Some(11))
    );
    assert_eq!(first(3).class, ExitClass::OomKilled);
    assert_eq!(first(3).peak, gib(0.25));
    assert_eq!(
        sink.finals(3).last(),
        Some(&(ExitClass::Done, false)),
        "an OOM kill is requeued: {:#?}",
        sink.lines
    );
    assert_eq!(
        (first(4).class, first(4).code()),
        (ExitClass::Failed, Some(127))
    );
    assert_eq!(
        first(4).reason,
        "cannot run `nosuch`: No such file or directory"
    );
    // Every task but the unstartable one was spawned as a process of its own.
    let spawned = exec
        .told()
        .iter()
        .filter(|(_, t)| matches!(t, Told::Spawn { .. }))
        .count();
    assert_eq!(spawned, 5, "{:#?}", exec.told());
}

#[test]
fn ctrl_c_stops_the_running_tasks_and_the_run_ends_interrupted() {
    let cfg = Config {
        estimate: Some(gib(0.5)),
        max_jobs: 2,
        ..config()
    };
    let mut exec = Scripted::new(gib(8.0)).interrupt_at(secs(3.0));
    for task in 0..4 {
        exec = exec.task(task, vec![ramp(0.5, 2.0, 60.0)]);
    }
    let (end, sink) = run(cfg, &mut exec, 4);
    assert_eq!(end, RunEnd::Interrupted);
    // The two that ran were asked to stop once, and journaled as interrupted; the two
    // that waited never started.
    for task in 0..2 {
        assert_eq!(sink.finals(task), vec![(ExitClass::Interrupted, false)]);
    }
    for task in 2..4 {
        assert!(sink.finals(task).is_empty(), "{:#?}", sink.lines);
    }
    let stops: Vec<_> = exec
        .told()
        .iter()
        .filter(|(_, t)| matches!(t, Told::Stop { .. }))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(stops, vec![secs(3.0), secs(3.0)]);
}

#[test]
fn the_same_script_gives_the_same_run() {
    let script = || {
        let mut exec = Scripted::new(gib(4.0));
        for task in 0..6 {
            exec = exec.task(task, vec![ramp(0.4 + 0.3 * task as f64, 3.0, 1.0)]);
        }
        exec
    };
    let (_, a) = run(config(), &mut script(), 6);
    let (_, b) = run(config(), &mut script(), 6);
    assert_eq!(a.lines, b.lines);
    assert!(a.lines.len() >= 12, "{:#?}", a.lines);
}

#[test]
fn a_second_ctrl_c_kills_tasks_that_ignore_the_first() {
    // Both tasks ignore TERM; the grace is long. The first Ctrl-C asks them to stop, the
    // second kills everything at once instead of waiting out the grace.
    let cfg = Config {
        estimate: Some(gib(0.5)),
        grace: secs(30.0),
        ..config()
    };
    let stubborn = || ramp(0.5, 1.0, 600.0).ignoring_term();
    let mut exec = Scripted::new(gib(8.0))
        .task(0, vec![stubborn()])
        .task(1, vec![stubborn()])
        .interrupt_at(secs(2.0))
        .interrupt_at(secs(3.0));
    let (end, sink) = run(cfg, &mut exec, 2);
    assert_eq!(end, RunEnd::Interrupted);
    let killed_all = exec
        .told()
        .iter()
        .find(|(_, t)| *t == Told::KillAll)
        .map(|(at, _)| *at);
    assert_eq!(killed_all, Some(secs(3.0)), "{:#?}", exec.told());
    for task in 0..2 {
        let fin = sink.finished.iter().find(|f| f.task == task).unwrap();
        assert_eq!(fin.class, ExitClass::Interrupted);
        assert_eq!(fin.signal(), Some(9), "{:#?}", sink.lines);
        assert_eq!(fin.duration, secs(3.0));
    }
}
