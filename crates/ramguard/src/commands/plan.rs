//! `ramguard plan [SWEEP] --mem SIZE [-j N]`: replay a recorded sweep on a machine of
//! another size, through the very policy `run` uses (`policy::sim`), and print the budget
//! table seed 002 worked out by hand — computed from what was measured.
//!
//! Every task becomes a scripted trace: the memory timeline journaled for its deciding
//! attempt (done, else its latest), ending as it ended, over the time it took (an attempt
//! too short to have been sampled holds its peak throughout). Tasks never
//! run are assumed to be like the task with the median peak. The simulated machine holds
//! the budget plus the reserve `run` would keep (so the budget, not the host, binds, as on a
//! real rerun with `--mem`); the policy starts cold, as a rerun in a fresh journal or on
//! another machine would. What the simulation does not model: CPU contention between tasks
//! (a task runs as long as it did when recorded) and other programs' memory.

use ramguard_core::policy::levels::levels;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ramguard_core::policy::sim::{End, Host, Script, Sim, SimTask};
use ramguard_core::policy::{Action, Config, Note, TaskSpec, TaskState};
use ramguard_core::units::SizeSpec;
use ramguard_core::Bytes;
use serde::Serialize;
use serde_json::json;

use crate::cli::parse_size_spec;
use crate::journal::display::duration_ms;
use crate::journal::report::{AttemptRow, TaskRow};
use crate::journal::{self, Journal, MemSample};
use crate::report_model as model;
use crate::Outcome;

/// Version of the `plan --json` output.
pub const PLAN_SCHEMA: u32 = 1;
/// Machine sizes of the budget table.
const TABLE_GIB: [u64; 4] = [4, 8, 16, 32];
/// Most simulation steps before `plan` gives up (a stuck or gigantic replay).
const MAX_STEPS: u64 = 50_000_000;

/// Replay a recorded sweep with another memory budget (and -j): predicted makespan, peak,
/// brakes and pauses, and a table for 4, 8, 16 and 32 GiB machines.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The sweep; without it, the only one or the one run last.
    #[arg(value_name = "SWEEP")]
    pub sweep: Option<String>,

    /// The memory budget to plan for (`--mem` of the rerun), like `4G` or `1.5GiB`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_spec)]
    pub mem: SizeSpec,

    /// Most tasks at once [default: the recorded run's -j].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,

    /// Print one JSON object (with a "schema" field) instead of the summary.
    #[arg(long)]
    pub json: bool,

    /// The journal file [default: $RAMGUARD_JOURNAL, else ./.ramguard/journal.db].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
}

/// What one replay predicts.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The budget replayed (`--mem`).
    pub budget: Bytes,
    /// The machine simulated: budget plus reserve, or the table's size.
    pub machine: Bytes,
    pub jobs: usize,
    pub makespan_s: f64,
    /// Most memory the running tasks held at once.
    pub peak: Bytes,
    pub max_running: usize,
    pub brakes: u32,
    pub pauses: u32,
    pub kernel_oom_kills: u32,
    /// Task-seconds lost to brakes and kills.
    pub braked_seconds: f64,
    /// Tasks that could not run at this size (too big even alone) or failed.
    pub failed: usize,
    /// How many tasks of the p95 peak the budget holds side by side.
    pub fit_at_once: u64,
}

/// The recorded sweep, ready to replay.
struct Recorded {
    tasks: Vec<SimTask>,
    /// Which of the tasks' features are kinds (`tasks::FeatureTable::kinds`).
    kinds: Vec<std::ops::Range<usize>>,
    base: Config,
    /// Never-run tasks that were given a typical task's trace.
    assumed: usize,
    /// Tasks whose recorded attempt failed by itself (so the replay fails them too).
    failing: usize,
    p95_peak: u64,
    makespan_ms: u64,
    recorded_budget: Bytes,
    recorded_jobs: usize,
}

pub fn run(args: &PlanArgs) -> Result<Outcome> {
    let mem = match args.mem {
        SizeSpec::Absolute(b) if b.get() > 0 => b,
        SizeSpec::Absolute(_) => bail!("--mem must be more than 0 bytes"),
        SizeSpec::Percent(_) => bail!(
            "--mem for plan must be a size such as 4G (a percentage means nothing for another \
             machine)"
        ),
    };
    if args.jobs == Some(0) {
        bail!("-j/--jobs must be at least 1");
    }
    let path = journal::resolve_path(args.journal.as_deref());
    let j = Journal::open_existing(&path)?;
    let sweep = j.resolve_sweep(args.sweep.as_deref())?;
    let rec = recorded(&j, &sweep)?;
    if rec.tasks.is_empty() {
        bail!(
            "sweep '{}' has no recorded timelines yet: run it first (`ramguard run`)",
            sweep.name
        );
    }
    let jobs = args.jobs.unwrap_or(rec.recorded_jobs);
    let main = replay(&rec, mem, None, jobs)?;
    let mut table = Vec::new();
    for gib in TABLE_GIB {
        let machine = Bytes(gib << 30);
        let budget = machine.saturating_sub(default_reserve(machine));
        table.push(replay(&rec, budget, Some(machine), jobs)?);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = json!({
            "schema": PLAN_SCHEMA,
            "sweep": sweep.name,
            "tasks": rec.tasks.len(),
            "assumed_typical": rec.assumed,
            "failed_when_recorded": rec.failing,
            "recorded": {
                "makespan_s": rec.makespan_ms as f64 / 1000.0,
                "budget": rec.recorded_budget,
                "jobs": rec.recorded_jobs,
            },
            "p95_peak": rec.p95_peak,
            "predicted": main,
            "table": table,
        });
        serde_json::to_writer(&mut out, &v)?;
        writeln!(out)?;
    } else {
        let secs = |s: f64| duration_ms((s * 1000.0) as u64);
        writeln!(
            out,
            "plan    sweep '{}': {} tasks replayed from their recorded memory timelines{}",
            sweep.name,
            rec.tasks.len(),
            if rec.assumed > 0 {
                format!(" ({} never ran: assumed typical)", rec.assumed)
            } else {
                String::new()
            }
        )?;
        writeln!(
            out,
            "recorded {} at --mem {} -j {}",
            duration_ms(rec.makespan_ms),
            rec.recorded_budget,
            rec.recorded_jobs
        )?;
        writeln!(
            out,
            "at --mem {} -j {}: makespan {}, peak {} held, at most {} at once, {} brake(s), {} \
             pause(s){}",
            main.budget,
            main.jobs,
            secs(main.makespan_s),
            main.peak,
            main.max_running,
            main.brakes,
            main.pauses,
            if main.failed > 0 {
                format!(
                    ", {} task(s) fail ({} failed by themselves when recorded; the rest are \
                     over their cap or too big to fit)",
                    main.failed, rec.failing
                )
            } else {
                String::new()
            }
        )?;
        writeln!(
            out,
            "\nbudget table (p95 peak {}; budget = machine − the reserve `run` keeps; -j {jobs}):",
            Bytes(rec.p95_peak)
        )?;
        let header: Vec<String> = [
            "machine", "budget", "fit", "at once", "makespan", "peak", "brakes", "fails",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect();
        let rows: Vec<Vec<String>> = table
            .iter()
            .map(|p| {
                vec![
                    p.machine.to_string(),
                    p.budget.to_string(),
                    p.fit_at_once.to_string(),
                    p.max_running.to_string(),
                    secs(p.makespan_s),
                    p.peak.to_string(),
                    p.brakes.to_string(),
                    p.failed.to_string(),
                ]
            })
            .collect();
        for line in crate::journal::display::table(&header, &rows).lines() {
            writeln!(out, "  {line}")?;
        }
        writeln!(
            out,
            "\n`fit` is how many p95-sized tasks the budget holds side by side; `at once` what \
             the replay actually ran together (also bound by -j)."
        )?;
    }
    Ok(Outcome::Success)
}

/// The reserve `run` keeps under a budget base (the policy's own levels, no host killer).
fn default_reserve(base: Bytes) -> Bytes {
    levels(base, None, None).reserve
}

/// The policy settings `run --mem budget` would resolve: the levels from the same
/// `policy::levels` that `run` uses (on a host with no killer above the floor).
fn config_for(base: &Config, budget: Bytes, jobs: usize) -> Config {
    let l = levels(budget, None, None);
    Config {
        budget,
        reserve: l.reserve,
        brake_level: l.brake,
        hard_level: l.hard,
        max_jobs: jobs,
        ..base.clone()
    }
}

/// Replays the recorded tasks at `budget` on a machine of `machine` (default: budget plus
/// reserve).
fn replay(
    rec: &Recorded,
    budget: Bytes,
    machine: Option<Bytes>,
    jobs: usize,
) -> Result<Prediction> {
    let cfg = config_for(&rec.base, budget, jobs);
    let capacity = machine.unwrap_or(budget.saturating_add(cfg.reserve));
    let mut sim = Sim::new(cfg, Host::new(capacity), rec.tasks.clone()).with_kinds(&rec.kinds);
    let mut steps = 0u64;
    while sim.step() {
        steps += 1;
        if steps > MAX_STEPS {
            bail!(
                "the replay at --mem {budget} did not finish after {MAX_STEPS} steps ({} of \
                 simulated time)",
                duration_ms(sim.now().as_millis() as u64)
            );
        }
    }
    let report = sim.drive();
    let pauses = sim
        .log()
        .iter()
        .filter(|(_, a)| matches!(a, Action::Note(Note::Paused { .. })))
        .count() as u32;
    let failed = (0..rec.tasks.len())
        .filter(|&i| matches!(sim.policy().state(i), TaskState::Failed { .. }))
        .count();
    Ok(Prediction {
        budget,
        machine: capacity,
        jobs,
        makespan_s: report.makespan.as_secs_f64(),
        peak: capacity.saturating_sub(report.min_available),
        max_running: report.max_running,
        brakes: report.brakes,
        pauses,
        kernel_oom_kills: report.kernel_oom_kills,
        braked_seconds: report.braked_seconds,
        failed,
        fit_at_once: budget.get().checked_div(rec.p95_peak).unwrap_or(0),
    })
}

/// Turns an attempt's journaled timeline into a script that ends as the attempt ended.
fn script(a: &AttemptRow, samples: &[MemSample]) -> Script {
    let end_ms = a
        .duration_ms
        .or(a.last_t_ms)
        .unwrap_or(0)
        .max(samples.last().map_or(0, |s| s.t_ms))
        .max(1);
    let mut points: Vec<(Duration, Bytes)> = Vec::with_capacity(samples.len() + 1);
    for s in samples {
        let t = Duration::from_millis(s.t_ms);
        let v = Bytes(s.held());
        if points.last().is_some_and(|p| p.0 >= t) {
            continue;
        }
        points.push((t, v));
    }
    let last = points.last().map_or(Bytes(a.peak.unwrap_or(0)), |p| p.1);
    let end_t = Duration::from_millis(end_ms);
    if points.last().is_none_or(|p| p.0 < end_t) {
        points.push((end_t, last));
    }
    let end = match a.class.as_deref() {
        Some("done") | None => End::Code(0),
        // Stopped at a cap or timeout: the replayed policy stops it the same way, so its
        // trace carries on climbing as it was when stopped.
        Some("over_cap") | Some("timed_out") | Some("braked") | Some("interrupted") => End::Code(0),
        Some("oom_killed") => End::OomKilled,
        Some("shm_bus") => End::ShmFull,
        _ => End::Code(1),
    };
    Script {
        points,
        end,
        term_delay: Some(Duration::from_millis(100)),
        sleeps: Vec::new(),
    }
}

/// Reads the sweep's tasks and timelines into replayable form.
fn recorded(j: &Journal, sweep: &journal::read::SweepInfo) -> Result<Recorded> {
    let tasks: Vec<TaskRow> = j.task_rows(sweep.id)?;
    let attempts: Vec<AttemptRow> = j.attempt_rows(sweep.id)?;
    // The deciding attempt per task: its last_attempt_id, else its latest.
    let mut chosen: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let by_id: std::collections::HashMap<i64, usize> = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id, i))
        .collect();
    let mut latest: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, a) in attempts.iter().enumerate() {
        let e = latest.entry(a.key.as_str()).or_insert(i);
        if attempts[*e].id < a.id {
            *e = i;
        }
    }
    for (ti, t) in tasks.iter().enumerate() {
        let pick = t
            .last_attempt_id
            .and_then(|id| by_id.get(&id).copied())
            .or_else(|| latest.get(t.key.as_str()).copied());
        if let Some(i) = pick {
            chosen.insert(attempts[i].id, ti);
        }
    }
    let mut scripts: Vec<Option<Script>> = vec![None; tasks.len()];
    j.for_each_timeline(sweep.id, |id, samples| {
        if let Some(&ti) = chosen.get(&id) {
            if let Some(&ai) = by_id.get(&id) {
                scripts[ti] = Some(script(&attempts[ai], samples));
            }
        }
    })
    .context("cannot read the recorded timelines")?;
    // An attempt too short to be sampled has only its peak and duration: it is assumed to
    // hold its peak throughout.
    for (&id, &ti) in &chosen {
        let a = &attempts[by_id[&id]];
        if let (None, Some(peak)) = (&scripts[ti], a.peak) {
            let held = MemSample {
                t_ms: 0,
                rss: peak,
                used: Some(peak),
                ..Default::default()
            };
            scripts[ti] = Some(script(a, &[held]));
        }
    }
    let peak_of = |s: &Script| s.points.iter().map(|p| p.1).max().unwrap_or_default();
    let mut known: Vec<&Script> = scripts.iter().flatten().collect();
    known.sort_by_key(|s| peak_of(s));
    let typical = known.get(known.len() / 2).map(|s| (*s).clone());
    let p95_peak = known
        .get(((known.len().max(1) - 1) as f64 * 0.95).round() as usize)
        .map_or(0, |s| peak_of(s).get());
    let table = model::feature_table(&tasks);
    let kinds = table.kinds();
    let features = table.rows;
    let mut assumed = 0;
    let failing = scripts
        .iter()
        .flatten()
        .filter(|s| s.end != End::Code(0))
        .count();
    let mut sim_tasks = Vec::new();
    for (i, s) in scripts.into_iter().enumerate() {
        let script = match (s, &typical) {
            (Some(s), _) => s,
            (None, Some(t)) => {
                assumed += 1;
                t.clone()
            }
            (None, None) => continue,
        };
        sim_tasks.push(SimTask {
            spec: TaskSpec {
                features: features.get(i).cloned().unwrap_or_default(),
                ..TaskSpec::default()
            },
            scripts: vec![script],
        });
    }
    let base = crate::settings::recorded_policy(&sweep.settings);
    let (recorded_budget, recorded_jobs) = (base.budget, base.max_jobs);
    let t0 = attempts
        .iter()
        .map(|a| a.started_unix_ms)
        .min()
        .unwrap_or(0);
    let t1 = attempts
        .iter()
        .map(|a| {
            a.ended_unix_ms
                .unwrap_or(a.started_unix_ms + a.last_t_ms.unwrap_or(0) as i64)
        })
        .max()
        .unwrap_or(t0);
    Ok(Recorded {
        tasks: sim_tasks,
        kinds,
        base,
        assumed,
        failing,
        p95_peak,
        makespan_ms: (t1 - t0).max(0) as u64,
        recorded_budget,
        recorded_jobs,
    })
}
