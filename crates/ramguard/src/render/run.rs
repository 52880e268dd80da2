//! `run`'s words: the start, end, note and summary lines, the progress bar's message, the
//! summary JSON and `--dry-run`'s listing. Figures come in already measured and journaled;
//! nothing here reads the journal or the host, so every line can be checked in a test.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use ramguard_core::policy::{ExitClass, Note};
use ramguard_core::tasks::TaskDef;
use ramguard_core::units::format_duration;
use ramguard_core::Bytes;
use serde_json::json;

use super::text;
use crate::executor::{Finished, Snapshot};
use crate::settings::{RestartSettings, Settings};
use crate::supervisor::shm::TaskFile;
use crate::words::Words;

/// What a run tallied for its summary.
#[derive(Debug, Default)]
pub struct RunStats {
    pub done: usize,
    pub failed: usize,
    /// Per task that failed in this run: label, reason and class; where its stderr would be.
    pub failures: Vec<(String, PathBuf)>,
    pub braked: usize,
    /// Restarts by `--recycle`.
    pub recycled: usize,
    pub peak_used: Bytes,
    /// Processes killed because they outlived their task's first process, and in how many
    /// tasks.
    pub leftovers: usize,
    pub leftover_tasks: usize,
    /// /dev/shm files tasks left behind (task label, files), and how many ramguard removed.
    pub shm_left: Vec<(String, Vec<TaskFile>)>,
    pub shm_removed: usize,
    /// Pauses (SIGSTOP for memory) and the time tasks spent paused, summed.
    pub pauses: usize,
    pub paused: Duration,
}

/// A task as the lines name it: `#3 lam=0.1 beta=3` (its number in the sweep, its params,
/// else its command line), escaped and cut to 60 characters.
pub fn label(number: usize, def: &TaskDef) -> String {
    let text = if def.params.is_empty() || def.params.iter().all(|(k, _)| k == "#") {
        shell_words::join(&def.argv)
    } else {
        def.params
            .iter()
            .filter(|(k, _)| k != "#")
            .map(|(k, v)| {
                if k.parse::<usize>().is_ok() {
                    v.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text: String = text::escape(&text).chars().take(60).collect();
    format!("#{number} {text}")
}

/// `start   #3 x=1 (attempt 2)  pid 123, predicted 1.2 GiB`.
pub fn start_line(
    label: &str,
    attempt: u32,
    journal_attempt: u32,
    pid: u32,
    predicted: Bytes,
) -> String {
    let retry = if attempt > 1 {
        format!(" (attempt {journal_attempt})")
    } else {
        String::new()
    };
    // Nothing measured and no --estimate: say so rather than "predicted 0 B".
    let predicted = if predicted == Bytes::ZERO {
        "nothing predicted yet".to_string()
    } else {
        format!("predicted {predicted}")
    };
    format!("start   {label}{retry}  pid {pid}, {predicted}")
}

/// What an attempt's end means for the task, as the end line's verb says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndVerb {
    Done,
    /// Braked or OOM-killed, requeued without spending a retry.
    Requeue,
    /// Interrupted (Ctrl-C); runs again next time.
    Stopped,
    /// Restarted by `--recycle` at its cap or age.
    Recycle,
    /// Another attempt under `--retries`.
    Retry,
    Failed,
}

impl EndVerb {
    /// The verb for an ending; `recycling` says whether `--recycle` is on.
    pub fn of(class: ExitClass, requeued: bool, recycling: bool) -> EndVerb {
        match (class, requeued) {
            (ExitClass::Done, _) => EndVerb::Done,
            (ExitClass::Braked, true) | (ExitClass::OomKilled, true) => EndVerb::Requeue,
            (ExitClass::Interrupted, _) => EndVerb::Stopped,
            (ExitClass::OverCap | ExitClass::MaxAge, true) if recycling => EndVerb::Recycle,
            (_, true) => EndVerb::Retry,
            (_, false) => EndVerb::Failed,
        }
    }

    /// The verb, padded to the column of the other lines.
    pub fn word(self) -> &'static str {
        match self {
            EndVerb::Done => "done   ",
            EndVerb::Requeue => "requeue",
            EndVerb::Stopped => "stopped",
            EndVerb::Recycle => "recycle",
            EndVerb::Retry => "retry  ",
            EndVerb::Failed => "failed ",
        }
    }
}

/// `done    #3 x=1  2.1s peak 1.2 GiB`, or for any other ending its reason, duration and
/// peak; leftover processes killed are appended.
pub fn end_line(verb: EndVerb, label: &str, fin: &Finished) -> String {
    let mut detail = if fin.class == ExitClass::Done {
        format!("{} peak {}", format_duration(fin.duration), fin.peak)
    } else {
        format!(
            "{} (after {}, peak {})",
            fin.reason,
            format_duration(fin.duration),
            fin.peak
        )
    };
    if fin.leftovers > 0 {
        detail.push_str(&format!(
            "; killed {} leftover process(es) it left running",
            fin.leftovers
        ));
    }
    format!("{} {label}  {detail}", verb.word())
}

/// `shm     #3 x=1  removed 2 files (600 MiB): a, b from /dev/shm`.
pub fn shm_removed_line(label: &str, files: &[TaskFile]) -> String {
    format!(
        "shm     {label}  removed {} from /dev/shm",
        files_words(files)
    )
}

/// `shm     #3 x=1  left 1 file (...) in /dev/shm (--shm-cleanup removes them)`.
pub fn shm_left_line(label: &str, files: &[TaskFile]) -> String {
    format!(
        "shm     {label}  left {} in /dev/shm (--shm-cleanup removes them)",
        files_words(files)
    )
}

/// The line for something the policy noted; `label` names a task.
pub fn note_line(note: &Note, label: impl Fn(usize) -> String) -> String {
    match note {
        Note::Paused { why } => format!("pause   admission paused: {}", why.words()),
        Note::Resumed => "resume  admission resumed".to_string(),
        Note::LearnedPeak { peak } => format!("learn   typical peak now {peak}"),
        Note::Brake { task, why } => format!("brake   {}  {}", label(*task), why.words()),
        Note::TaskPaused { task, why } => format!("pause   {}  {}", label(*task), why.words()),
        Note::TaskResumed { task, paused_for } => format!(
            "resume  {}  after {} paused",
            label(*task),
            format_duration(*paused_for)
        ),
    }
}

/// `leak    #3 x=1  <what the leak watch saw>`.
pub fn leak_line(label: &str, what: &str) -> String {
    format!("leak    {label}  {what}")
}

/// "2 files (600 MiB): a, b".
pub fn files_words(files: &[TaskFile]) -> String {
    let total: Bytes = files.iter().map(|f| f.allocated).sum();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    format!(
        "{} file{} ({total}): {}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

/// The progress bar's message: what runs, memory, the ETA from learned durations ("unknown"
/// until there is a basis) and why fewer than `-j` run.
pub fn progress_message(s: &Snapshot, budget: Bytes) -> String {
    let mut m = format!("{} running", s.running);
    if s.paused > 0 {
        m.push_str(&format!(" ({} paused)", s.paused));
    }
    m.push_str(&format!(
        "  mem {} / {budget}  available {}  eta {}",
        s.used,
        s.available,
        s.eta.map_or("unknown".to_string(), format_duration)
    ));
    if let Some(why) = &s.short {
        m.push_str(&format!("  ({why})"));
    }
    m
}

/// The first lines of a run: a derived name that had to move aside, a thread-cap
/// warning, and what is resumed or what starts with which budget. `already` is (done,
/// failed and left alone) before this run, `to_run` what this run will run.
pub fn opening(
    sweep: &str,
    total: usize,
    ((done, failed), to_run): ((usize, usize), usize),
    name_taken: Option<&(String, String)>,
    s: &Settings,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((taken, other)) = name_taken {
        out.push(format!(
            "new sweep '{sweep}': '{taken}' runs another command ({other}); see `ramguard list`"
        ));
    }
    if let Some(w) = &s.thread_caps.warning {
        out.push(format!("warning: {w}"));
    }
    out.push(if done > 0 || failed > 0 {
        format!(
            "resuming sweep '{sweep}': {done} of {total} done already{}; {to_run} to run",
            if failed > 0 {
                format!(", {failed} failed left alone (--skip-failed)")
            } else {
                String::new()
            },
        )
    } else {
        format!(
            "sweep '{sweep}': {total} tasks, budget {}, -j {} (limit {} from {})",
            s.policy.budget, s.policy.max_jobs, s.effective_limit, s.limit_source
        )
    });
    out
}

/// How a run ended, for its summary.
#[derive(Debug)]
pub struct Summary<'a> {
    pub sweep: &'a str,
    pub total: usize,
    /// Done and failed, this run's and earlier runs' (those left alone by --skip-failed).
    pub done: usize,
    pub failed: usize,
    pub interrupted: bool,
    pub stats: &'a RunStats,
    pub budget: Bytes,
    pub journal: String,
}

/// Failures listed one a line at the end of a run; the rest are counted.
const FAILURES_SHOWN: usize = 10;

impl Summary<'_> {
    /// The exit code's meaning: interrupted, some tasks failed, or all done.
    pub fn outcome(&self) -> crate::Outcome {
        if self.interrupted {
            crate::Outcome::Interrupted
        } else if self.failed > 0 {
            crate::Outcome::SomeFailed
        } else {
            crate::Outcome::Success
        }
    }

    fn not_run(&self) -> usize {
        self.total.saturating_sub(self.done + self.failed)
    }

    /// The `--json` summary (schema 1).
    pub fn json(&self) -> serde_json::Value {
        let st = self.stats;
        json!({
            "schema": 1,
            "sweep": self.sweep,
            "tasks": self.total,
            "done": self.done,
            "failed": self.failed,
            "not_run": self.not_run(),
            "braked": st.braked,
            "recycled": st.recycled,
            "pauses": st.pauses,
            "paused_ms": st.paused.as_millis() as u64,
            "interrupted": self.interrupted,
            "peak_used": st.peak_used,
            "leftovers_killed": st.leftovers,
            "shm_removed": st.shm_removed,
            "shm_left": st.shm_left.iter().map(|(task, files)| json!({"task": task, "files": files})).collect::<Vec<_>>(),
            "budget": self.budget,
            "journal": self.journal,
        })
    }

    /// The closing lines: failures (with where their stderr is), leftover /dev/shm files,
    /// and the one-line tally. Call once the log pump has finished, so that a stderr file
    /// exists if and only if the task wrote to it.
    pub fn lines(&self) -> Vec<String> {
        let st = self.stats;
        let mut out = Vec::new();
        for (what, err) in st.failures.iter().take(FAILURES_SHOWN) {
            let stderr = match err.exists() {
                true => format!("stderr in {}", err.display()),
                false => "it wrote nothing to stderr".to_string(),
            };
            out.push(format!("failed {what} — {stderr}"));
        }
        if st.failures.len() > FAILURES_SHOWN {
            out.push(format!(
                "... and {} more failures: ramguard results {} --format table",
                st.failures.len() - FAILURES_SHOWN,
                self.sweep
            ));
        }
        let (done, total, failed) = (self.done, self.total, self.failed);
        let mut line = format!(
            "{done} of {total} done, {failed} failed, {} brake(s)",
            st.braked
        );
        if st.recycled > 0 {
            line.push_str(&format!(", {} recycle(s)", st.recycled));
        }
        if st.leftovers > 0 {
            line.push_str(&format!(
                "; killed {} leftover process(es) of {} task(s) after their first process exited",
                st.leftovers, st.leftover_tasks
            ));
        }
        if st.pauses > 0 {
            line.push_str(&format!(
                ", {} pause(s) ({} paused in all)",
                st.pauses,
                format_duration(st.paused)
            ));
        }
        if self.interrupted {
            line.push_str(&format!(
                "; interrupted with {} not done (rerun the same command to resume)",
                self.not_run()
            ));
        }
        line.push_str(&format!("; results: ramguard results {}", self.sweep));
        for (label, files) in &st.shm_left {
            out.push(format!(
                "shm {label} left {} in /dev/shm; rerun with --shm-cleanup to remove such files",
                files_words(files)
            ));
        }
        out.push(line);
        out
    }
}

/// `--dry-run`: the tasks and the resolved settings, as text or (`json`) one JSON object.
pub fn dry_run(
    out: &mut impl Write,
    json: bool,
    (sweep, template): (&str, &str),
    tasks: &[TaskDef],
    params: &[serde_json::Value],
    s: &Settings,
) -> Result<()> {
    if json {
        let tasks: Vec<_> = tasks
            .iter()
            .zip(params)
            .map(|(t, params)| json!({ "key": t.key, "params": params, "argv": t.argv }))
            .collect();
        let v = json!({ "schema": 1, "sweep": sweep, "template": template, "settings": s, "tasks": tasks });
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
        return Ok(());
    }
    let p = &s.policy;
    writeln!(out, "sweep      {sweep}")?;
    writeln!(out, "command    {template}")?;
    writeln!(
        out,
        "limit      {} (from {})",
        s.effective_limit, s.limit_source
    )?;
    writeln!(
        out,
        "budget     {}   reserve {}   brake below {} available",
        p.budget, p.reserve, p.brake_level
    )?;
    for line in s.danger.describe() {
        writeln!(out, "{line}")?;
    }
    let pause = if p.pause {
        "a growing task is paused (SIGSTOP) as memory nears the limit, resumed when it fits"
    } else {
        "never (--no-pause): the brake stops and requeues instead"
    };
    writeln!(out, "pause      {pause}")?;
    writeln!(out, "jobs       {}", p.max_jobs)?;
    let room = p.budget.min(s.effective_limit.saturating_sub(p.reserve));
    let start = cold_start_line(room, p.max_jobs, p.estimate.is_some());
    writeln!(out, "{start}")?;
    writeln!(
        out,
        "estimate   {}   task cap {}   timeout {}   grace {}   retries {}",
        p.estimate.map_or("learned".into(), |b| b.to_string()),
        p.task_cap.map_or("none".into(), |b| b.to_string()),
        p.timeout.map_or("none".into(), format_duration),
        format_duration(p.grace),
        p.retries
    )?;
    writeln!(out, "learns     {}", learns_line(tasks))?;
    writeln!(out, "threads    {}", threads_line(s))?;
    writeln!(out, "restarts   {}", restarts_line(&s.restart, p.retries))?;
    writeln!(out, "tasks      {}", tasks.len())?;
    for (i, t) in tasks.iter().enumerate() {
        writeln!(
            out,
            "  {:>4}  {}",
            i + 1,
            text::escape(&shell_words::join(&t.argv))
        )?;
    }
    Ok(())
}

/// The `--dry-run` line that says what peaks and durations are predicted from: the
/// parameters that vary between tasks, read as numbers, sizes, durations or kinds
/// (`tasks::feature_table`), or nothing, when every task is predicted alike.
pub fn learns_line(tasks: &[TaskDef]) -> String {
    use ramguard_core::tasks::{feature_table, Column, Reading};
    let table = feature_table(tasks);
    let varies = |col: usize| {
        let mut values = table
            .rows
            .iter()
            .filter_map(|r| r.get(col))
            .filter(|x| x.is_finite());
        values
            .next()
            .is_some_and(|first| values.any(|x| x != first))
    };
    let mut read = Vec::new();
    for (name, c, cols) in table.columns() {
        match c {
            Column::Numeric(r) => {
                let how = match r {
                    Reading::Number => "number",
                    Reading::Size => "size",
                    Reading::Duration => "duration",
                };
                if varies(cols.start) {
                    read.push(format!("{name} ({how})"));
                }
            }
            Column::Levels(levels) => read.push(match levels.len() {
                ..=4 => format!("{name} (kinds {})", levels.join(", ")),
                n => format!("{name} ({n} kinds)"),
            }),
        }
    }
    if read.is_empty() {
        return "one prediction for every task: no number, size, duration or kind on the \
                command lines tells them apart"
            .to_string();
    }
    format!("per task, from {}", read.join(", "))
}

/// The `--dry-run` line that says how unknown tasks will start: all `-j` at once when the
/// memory tasks may hold (`room`: the budget, or less if the host has less above the
/// reserve) holds `-j` tasks of a plausible size, else as many as it holds (at least one)
/// and more as their peaks settle (the policy's cold start).
pub fn cold_start_line(room: Bytes, jobs: usize, estimate: bool) -> String {
    use ramguard_core::policy::order::{cold_slots, COLD_PLAUSIBLE};
    if estimate {
        return "start      as many as fit at --estimate each, up to -j".to_string();
    }
    let need = COLD_PLAUSIBLE.get().saturating_mul(jobs as u64);
    if need <= room.get() {
        format!(
            "start      all {jobs} at once: {room} holds {jobs} tasks of {COLD_PLAUSIBLE} (no settle window)"
        )
    } else {
        match cold_slots(room, COLD_PLAUSIBLE, jobs) {
            1 => format!(
                "start      one first, more as its peak settles: {room} does not hold {jobs} tasks of {COLD_PLAUSIBLE}"
            ),
            n => format!(
                "start      {n} at once, more as their peaks settle: {room} holds {n} tasks of {COLD_PLAUSIBLE} (with the margin), not {jobs}"
            ),
        }
    }
}

/// The `--dry-run` line for the thread caps: the values every task will see, where they
/// come from, and the warning if the family disagrees.
pub fn threads_line(s: &Settings) -> String {
    let thread_env = s.thread_env();
    let exported: Vec<String> = thread_env
        .iter()
        .filter(|(k, _)| !s.thread_caps.env.iter().any(|(e, _)| e == *k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut line = match (s.threads, thread_env.is_empty()) {
        (None, true) => return "not capped (--no-thread-caps)".to_string(),
        (None, false) => format!(
            "not capped (--no-thread-caps); exported: {}",
            exported.join(" ")
        ),
        (Some(_), _) => format!(
            "{} in all {} thread variables (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ...){}",
            crate::journal::task_env::compact(thread_env),
            thread_env.len(),
            if exported.is_empty() {
                String::new()
            } else {
                format!("; following your export of {}", exported.join(" "))
            }
        ),
    };
    if let Some(w) = &s.thread_caps.warning {
        line.push_str(&format!("\n           warning: {w}"));
    }
    line
}

/// The `--dry-run` line for retries, recycling and the stop signal.
pub fn restarts_line(s: &RestartSettings, retries: u32) -> String {
    let on = s.retry_on.names();
    let retry = match (retries, on.is_empty()) {
        (0, _) | (_, true) => "no retries".to_string(),
        (n, false) => format!("{n} retries on {}", on.join(",")),
    };
    let recycle = match (s.recycle, s.max_age) {
        (None, _) => "no recycling".to_string(),
        (Some(n), None) => format!("recycle at the cap, at most {n}/min"),
        (Some(n), Some(age)) => format!(
            "recycle at the cap or after {}, at most {n}/min",
            format_duration(age)
        ),
    };
    format!(
        "{retry}; {recycle}; stop with SIG{} then KILL after the grace",
        s.stop_signal.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_says_how_to_resume_and_maps_to_the_exit_code() {
        let stats = RunStats {
            done: 2,
            failed: 1,
            braked: 1,
            pauses: 2,
            paused: Duration::from_millis(1500),
            failures: vec![("#3 x=1: exit code 3 (failed)".into(), "/nonexistent".into())],
            ..RunStats::default()
        };
        let s = Summary {
            sweep: "fit",
            total: 5,
            done: 2,
            failed: 1,
            interrupted: true,
            stats: &stats,
            budget: Bytes(1 << 30),
            journal: "j.db".into(),
        };
        let lines = s.lines();
        assert_eq!(
            lines,
            [
                "failed #3 x=1: exit code 3 (failed) — it wrote nothing to stderr",
                "2 of 5 done, 1 failed, 1 brake(s), 2 pause(s) (1.5s paused in all); \
                 interrupted with 2 not done (rerun the same command to resume); \
                 results: ramguard results fit",
            ]
        );
        assert_eq!(s.outcome(), crate::Outcome::Interrupted);
        assert_eq!(s.json()["not_run"], 2);
    }

    #[test]
    fn a_start_line_never_says_predicted_0_b() {
        let line = start_line("#1 a", 1, 1, 42, Bytes::ZERO);
        assert_eq!(line, "start   #1 a  pid 42, nothing predicted yet");
        let line = start_line("#1 a", 2, 3, 42, Bytes(3 << 29));
        assert_eq!(line, "start   #1 a (attempt 3)  pid 42, predicted 1.5 GiB");
    }

    #[test]
    fn end_verbs_line_up_and_recycling_names_its_restarts() {
        assert_eq!(
            EndVerb::of(ExitClass::OverCap, true, true),
            EndVerb::Recycle
        );
        assert_eq!(EndVerb::of(ExitClass::OverCap, true, false), EndVerb::Retry);
        assert_eq!(
            EndVerb::of(ExitClass::Braked, true, false),
            EndVerb::Requeue
        );
        assert_eq!(EndVerb::of(ExitClass::Failed, false, true), EndVerb::Failed);
        for v in [
            EndVerb::Done,
            EndVerb::Requeue,
            EndVerb::Stopped,
            EndVerb::Retry,
        ] {
            assert_eq!(v.word().len(), 7);
        }
    }
}
