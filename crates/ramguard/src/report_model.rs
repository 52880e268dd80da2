//! What `report` shows, gathered once from the journal: attempts laid out in lanes (the
//! Gantt), memory per lane in time bins (the stacked chart), per-task timelines for the
//! tasks worth a look, leaks, peaks against numeric parameters and kinds with the fitted
//! prediction, waste, and the findings. Every renderer (terminal, JSON, HTML) reads this model only.
//!
//! Bounded for big sweeps: time is cut into [`BINS`] bins, at most [`SERIES`] per-task
//! timelines are kept, and timelines are streamed from the journal one attempt at a time.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use ramguard_core::findings::{
    self, detect_leak, detect_running_leak, Finding, Leak, SweepFacts, TaskFacts,
};
use ramguard_core::policy::predict::{Model as FitModel, Side};
use ramguard_core::tasks::{self, Column, FeatureTable, TaskDef};
use ramguard_core::units::{parse_duration, parse_size};
use ramguard_core::Bytes;
use serde::Serialize;

use crate::journal::read::{EventRow, SweepInfo};
use crate::journal::report::{AttemptRow, TaskRow};
use crate::journal::Journal;

/// Time bins of the memory chart.
pub const BINS: usize = 600;
/// Most per-task timelines kept.
pub const SERIES: usize = 120;
/// Most points kept per parameter plot.
pub const PLOT_POINTS: usize = 2_000;

/// One attempt, placed on the time axis and in a lane.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub id: i64,
    pub key: String,
    pub label: String,
    pub attempt: u32,
    /// Start and end in ms since the sweep's first start.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Exit class, or `running`.
    pub class: String,
    pub reason: String,
    pub peak: Option<u64>,
    /// Row of the Gantt: lanes never hold two attempts at once.
    pub lane: usize,
    /// When the attempt's tree was paused, (start, end) in ms since the sweep's first start.
    pub paused: Vec<(u64, u64)>,
}

/// A task's memory timeline worth showing on its own.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSeries {
    pub attempt_id: i64,
    pub label: String,
    pub class: String,
    pub peak: Option<u64>,
    /// (ms since the attempt started, bytes).
    pub points: Vec<(u64, u64)>,
    pub leak: Option<Leak>,
}

/// A leaking attempt and when it would reach its limits.
#[derive(Debug, Clone, Serialize)]
pub struct LeakRow {
    pub task: String,
    pub label: String,
    pub attempt: u32,
    /// Still running when the report was made.
    pub running: bool,
    #[serde(flatten)]
    pub leak: Leak,
    /// Seconds from the last sample until `--task-mem` at this slope.
    pub to_cap_s: Option<f64>,
    /// Seconds from the last sample until the whole budget at this slope.
    pub to_budget_s: f64,
}

/// Peaks of done tasks against one parameter: a numeric one, or a kind named by a value
/// (`--model resnet18`).
#[derive(Debug, Clone, Serialize)]
pub struct ParamPlot {
    pub name: String,
    /// How the values were written: `bytes` (sizes), `seconds` (durations) or empty.
    pub unit: &'static str,
    /// (parameter value, observed peak, fitted prediction); for a kind, the value is the
    /// kind's index in `levels`.
    pub points: Vec<(f64, u64, Option<f64>)>,
    /// A kind's values, in order of first appearance; empty for a numeric parameter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    /// Each kind's done tasks and their peaks, from every task (the points may be thinned);
    /// empty for a numeric parameter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_kind: Vec<KindPeaks>,
}

/// The peaks of one kind's done tasks.
#[derive(Debug, Clone, Serialize)]
pub struct KindPeaks {
    pub kind: String,
    pub done: usize,
    pub p50: u64,
    pub max: u64,
}

/// Everything `report` shows.
#[derive(Debug, Clone)]
pub struct Model {
    pub sweep: SweepInfo,
    pub budget: Bytes,
    pub jobs: usize,
    pub task_cap: Option<Bytes>,
    pub threads: Option<u32>,
    pub effective_limit: Option<Bytes>,
    pub t0_unix_ms: i64,
    pub span_ms: u64,
    pub attempts: Vec<AttemptView>,
    pub lanes: usize,
    pub bin_ms: f64,
    /// Memory per lane per bin (the highest sample in the bin).
    pub lane_mem: Vec<Vec<u64>>,
    /// Σ over lanes per bin.
    pub total_mem: Vec<u64>,
    /// The host's lowest available memory per bin, where the run journaled it.
    pub host_available: Vec<Option<u64>>,
    /// Admission pauses, (start, end) in ms since the first start.
    pub pauses: Vec<(u64, u64)>,
    /// Time tasks spent paused (their trees stopped), summed over the sweep.
    pub paused_ms: u64,
    /// Brakes, ms since the first start.
    pub brakes: Vec<u64>,
    pub series: Vec<TaskSeries>,
    pub leaks: Vec<LeakRow>,
    pub params: Vec<ParamPlot>,
    pub classes: Vec<(String, u64)>,
    pub wasted_secs: f64,
    pub total_secs: f64,
    pub peaks: Vec<u64>,
    pub facts: SweepFacts,
    pub findings: Vec<Finding>,
}

/// What `report` reads from the host it runs on (the shell supplies it).
#[derive(Debug, Clone, Default)]
pub struct HostSide {
    pub cpus: u32,
    /// /dev/shm files: (name, bytes allocated, mtime in Unix seconds, owner uid).
    pub shm: Vec<(String, Bytes, i64, u32)>,
    pub uid: u32,
    pub now_unix_ms: i64,
}

/// Exit classes whose task-time is lost.
const WASTED: [&str; 6] = [
    "braked",
    "oom_killed",
    "over_cap",
    "timed_out",
    "interrupted",
    "shm_bus",
];

/// A short label for a task: `k=v …` of its params, else its command line.
pub fn label(params: &serde_json::Value, argv: &[String]) -> String {
    let text = match params {
        serde_json::Value::Object(m) if m.keys().any(|k| k != "#") => m
            .iter()
            .filter(|(k, _)| k.as_str() != "#")
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                if k.parse::<usize>().is_ok() {
                    v
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => shell_words::join(argv),
    };
    let mut t: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        t.push('…');
    }
    t
}

/// A parameter value as a number: plain, a size (`512M`) or a duration (`30s`), with the
/// unit it was written in.
fn numeric_unit(v: &str) -> Option<(f64, &'static str)> {
    if let Ok(x) = v.parse::<f64>() {
        return x.is_finite().then_some((x, ""));
    }
    if let Ok(b) = parse_size(v) {
        return Some((b.get() as f64, "bytes"));
    }
    parse_duration(v).ok().map(|d| (d.as_secs_f64(), "seconds"))
}

/// Named values of a task: its params, or its `--flag value` pairs.
fn named_values(t: &TaskRow) -> Vec<(String, String)> {
    if let serde_json::Value::Object(m) = &t.params {
        return m
            .iter()
            .filter(|(k, _)| k.as_str() != "#")
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect();
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.argv.len() {
        let a = &t.argv[i];
        if let Some(flag) = a.strip_prefix("--") {
            if let Some((k, v)) = flag.split_once('=') {
                out.push((format!("--{k}"), v.to_string()));
            } else if let Some(v) = t.argv.get(i + 1).filter(|v| !v.starts_with("--")) {
                out.push((a.clone(), v.clone()));
                i += 1;
            }
        }
        i += 1;
    }
    out
}

fn task_def(t: &TaskRow) -> TaskDef {
    let params = match &t.params {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    TaskDef::new(params, t.argv.clone())
}

/// Features of each task, as `run` computes them for prediction, with which are kinds.
pub fn feature_table(tasks: &[TaskRow]) -> FeatureTable {
    let defs: Vec<TaskDef> = tasks.iter().map(task_def).collect();
    tasks::feature_table(&defs)
}

fn setting_bytes(s: &serde_json::Value, k: &str) -> Option<Bytes> {
    s.get(k).and_then(serde_json::Value::as_u64).map(Bytes)
}

/// Places attempts in lanes: the first lane free at each start, oldest start first.
fn assign_lanes(spans: &[(u64, u64)]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans[i]);
    let mut lane_end: Vec<u64> = Vec::new();
    let mut lanes = vec![0; spans.len()];
    for i in order {
        let (s, e) = spans[i];
        let lane = match lane_end.iter().position(|&end| end <= s) {
            Some(l) => l,
            None => {
                lane_end.push(0);
                lane_end.len() - 1
            }
        };
        lane_end[lane] = e.max(s + 1);
        lanes[i] = lane;
    }
    let n = lane_end.len();
    (lanes, n)
}

/// Builds the model of one sweep.
pub fn build(journal: &Journal, sweep: SweepInfo, host: &HostSide) -> Result<Model> {
    let settings = &sweep.settings;
    let budget = setting_bytes(settings, "budget").unwrap_or_default();
    let jobs = settings
        .get("jobs")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1) as usize;
    let task_cap = setting_bytes(settings, "task_mem");
    let threads = settings
        .get("threads")
        .and_then(serde_json::Value::as_u64)
        .map(|t| t as u32);
    let effective_limit = setting_bytes(settings, "effective_limit");

    let rows: Vec<AttemptRow> = journal.attempt_rows(sweep.id)?;
    let tasks: Vec<TaskRow> = journal.task_rows(sweep.id)?;
    let events: Vec<EventRow> = journal.events(sweep.id)?;
    let labels: HashMap<&str, String> = tasks
        .iter()
        .map(|t| (t.key.as_str(), label(&t.params, &t.argv)))
        .collect();

    let t0 = rows.iter().map(|a| a.started_unix_ms).min().unwrap_or(0);
    let end_of = |a: &AttemptRow| -> i64 {
        match (a.ended_unix_ms, a.class.as_deref()) {
            (Some(e), _) => e,
            _ => a.started_unix_ms + a.last_t_ms.unwrap_or(0) as i64,
        }
    };
    let spans: Vec<(u64, u64)> = rows
        .iter()
        .map(|a| {
            let s = (a.started_unix_ms - t0).max(0) as u64;
            (s, ((end_of(a) - t0).max(0) as u64).max(s))
        })
        .collect();
    let span_ms = spans.iter().map(|s| s.1).max().unwrap_or(0).max(1);
    let (lane_of, lanes) = assign_lanes(&spans);
    let mut attempts: Vec<AttemptView> = rows
        .iter()
        .zip(&spans)
        .zip(&lane_of)
        .map(|((a, &(s, e)), &lane)| AttemptView {
            id: a.id,
            key: a.key.clone(),
            label: labels.get(a.key.as_str()).cloned().unwrap_or_default(),
            attempt: a.attempt,
            start_ms: s,
            end_ms: e,
            class: a.class.clone().unwrap_or_else(|| "running".into()),
            reason: a.reason.clone().unwrap_or_default(),
            peak: a.peak,
            lane,
            paused: Vec::new(),
        })
        .collect();
    mark_pauses(&mut attempts, &events, t0);
    let index: HashMap<i64, usize> = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id, i))
        .collect();

    // Timelines worth keeping whole: the largest peaks, and every attempt that did not end
    // done (leaks are added as they are found).
    let mut keep: HashSet<i64> = HashSet::new();
    {
        let mut by_peak: Vec<&AttemptView> = attempts.iter().collect();
        by_peak.sort_by_key(|a| std::cmp::Reverse(a.peak.unwrap_or(0)));
        for a in attempts
            .iter()
            .filter(|a| a.class != "done")
            .take(SERIES / 2)
        {
            keep.insert(a.id);
        }
        for a in by_peak.iter().take(SERIES / 2) {
            keep.insert(a.id);
        }
    }

    let bin_ms = span_ms as f64 / BINS as f64;
    let bin_of = |ms: u64| ((ms as f64 / bin_ms) as usize).min(BINS - 1);
    let mut lane_mem = vec![vec![0u64; BINS]; lanes];
    let mut series: Vec<TaskSeries> = Vec::new();
    let mut leaks: Vec<LeakRow> = Vec::new();
    let cap = task_cap;
    journal.for_each_timeline(sweep.id, |id, samples| {
        let Some(&i) = index.get(&id) else { return };
        let a = &attempts[i];
        let pts: Vec<(u64, u64)> = samples
            .iter()
            .map(|s| (s.t_ms, s.pss.unwrap_or(s.rss)))
            .collect();
        // Memory per lane and bin: each sample holds until the next.
        let lm = &mut lane_mem[a.lane];
        for (j, &(t, v)) in pts.iter().enumerate() {
            let from = bin_of(a.start_ms + t);
            let to = pts
                .get(j + 1)
                .map_or(bin_of(a.end_ms), |n| bin_of(a.start_ms + n.0));
            for cell in &mut lm[from..=to.max(from)] {
                *cell = (*cell).max(v);
            }
        }
        // A running task's ramp may not have ended: judged as `run` and `status` judge it.
        let leak = match a.class == "running" {
            true => detect_running_leak(&pts),
            false => detect_leak(&pts),
        };
        if let Some(l) = leak {
            leaks.push(LeakRow {
                task: a.key.clone(),
                label: a.label.clone(),
                attempt: a.attempt,
                running: a.class == "running",
                leak: l,
                to_cap_s: cap.map(|c| l.time_to(c).as_secs_f64()),
                to_budget_s: l.time_to(budget).as_secs_f64(),
            });
        }
        if (keep.contains(&id) || leak.is_some()) && series.len() < SERIES * 2 {
            series.push(TaskSeries {
                attempt_id: id,
                label: a.label.clone(),
                class: a.class.clone(),
                peak: a.peak,
                points: pts,
                leak,
            });
        }
    })?;
    series.sort_by_key(|s| (s.leak.is_none(), std::cmp::Reverse(s.peak.unwrap_or(0))));
    series.truncate(SERIES);
    let total_mem: Vec<u64> = (0..BINS)
        .map(|b| lane_mem.iter().map(|l| l[b]).sum())
        .collect();
    let mut host_available: Vec<Option<u64>> = vec![None; BINS];
    for (ms, avail) in journal.host_samples(sweep.id, t0, t0 + span_ms as i64)? {
        let cell = &mut host_available[bin_of((ms - t0).max(0) as u64)];
        *cell = Some(cell.map_or(avail, |c| c.min(avail)));
    }

    // Occupancy: how many lanes hold an attempt in each bin, and until when tasks waited.
    let mut running = vec![0usize; BINS];
    for a in &attempts {
        for r in &mut running[bin_of(a.start_ms)..=bin_of(a.end_ms)] {
            *r += 1;
        }
    }
    let last_start_bin = attempts
        .iter()
        .map(|a| bin_of(a.start_ms))
        .max()
        .unwrap_or(0);
    let short = running[..last_start_bin]
        .iter()
        .filter(|&&r| r < jobs)
        .count();
    let memory_bound_share = if last_start_bin > 0 {
        short as f64 / last_start_bin as f64
    } else {
        0.0
    };

    let rel = |ms: i64| (ms - t0).max(0) as u64;
    let mut pauses = Vec::new();
    let mut open: Option<u64> = None;
    let mut brakes = Vec::new();
    for e in &events {
        match e.kind.as_str() {
            "paused" => {
                open.get_or_insert(rel(e.unix_ms));
            }
            "resumed" => {
                if let Some(s) = open.take() {
                    pauses.push((s, rel(e.unix_ms)));
                }
            }
            "brake" => brakes.push(rel(e.unix_ms)),
            _ => {}
        }
    }
    if let Some(s) = open {
        pauses.push((s, span_ms));
    }
    let n_pauses = events.iter().filter(|e| e.kind == "paused").count() as u64;
    let task_pauses = crate::journal::progress::summarize(&events);

    let mut classes: HashMap<String, u64> = HashMap::new();
    let (mut wasted, mut total) = (0.0, 0.0);
    for a in &attempts {
        *classes.entry(a.class.clone()).or_default() += 1;
        let secs = (a.end_ms - a.start_ms) as f64 / 1000.0;
        total += secs;
        if WASTED.contains(&a.class.as_str()) {
            wasted += secs;
        }
    }
    let mut classes: Vec<(String, u64)> = classes.into_iter().collect();
    classes.sort_by_key(|c| std::cmp::Reverse(c.1));

    let params = param_plots(&tasks);
    let mut peaks: Vec<u64> = tasks
        .iter()
        .filter(|t| t.state == "done")
        .filter_map(|t| t.peak)
        .collect();
    peaks.sort_unstable();

    // The latest leak per task counts.
    let leak_of: HashMap<&str, Leak> = leaks.iter().map(|l| (l.task.as_str(), l.leak)).collect();
    // A task without a done peak counts with its attempts' highest.
    let mut attempt_peak: HashMap<&str, u64> = HashMap::new();
    for a in &attempts {
        let p = attempt_peak.entry(a.key.as_str()).or_default();
        *p = (*p).max(a.peak.unwrap_or(0));
    }
    let task_facts: Vec<TaskFacts> = tasks
        .iter()
        .map(|t| TaskFacts {
            label: labels.get(t.key.as_str()).cloned().unwrap_or_default(),
            key: t.key.clone(),
            peak: Bytes(
                t.peak
                    .or_else(|| attempt_peak.get(t.key.as_str()).copied())
                    .unwrap_or(0),
            ),
            leak: leak_of.get(t.key.as_str()).copied(),
        })
        .collect();
    let t_end_s = (t0 + span_ms as i64) / 1000 + 60;
    let shm_leftovers = host
        .shm
        .iter()
        .filter(|(_, _, mtime, uid)| *uid == host.uid && *mtime >= t0 / 1000 && *mtime <= t_end_s)
        .map(|(n, b, _, _)| (n.clone(), *b))
        .collect();
    let facts = SweepFacts {
        budget,
        jobs,
        task_cap,
        threads,
        cpus: host.cpus,
        tasks: task_facts,
        peak_used: Bytes(total_mem.iter().copied().max().unwrap_or(0)),
        max_running: lanes,
        memory_bound_share,
        pauses: n_pauses,
        task_pauses: task_pauses.pauses,
        brakes: brakes.len() as u64,
        oom_kills: classes
            .iter()
            .find(|c| c.0 == "oom_killed")
            .map_or(0, |c| c.1),
        wasted_secs: wasted,
        total_secs: total,
        shm_leftovers,
    };
    let findings = findings::findings(&facts);
    Ok(Model {
        sweep,
        budget,
        jobs,
        task_cap,
        threads,
        effective_limit,
        t0_unix_ms: t0,
        span_ms,
        attempts,
        lanes,
        bin_ms,
        lane_mem,
        total_mem,
        host_available,
        pauses,
        paused_ms: task_pauses.paused_ms,
        brakes,
        series,
        leaks,
        params,
        classes,
        wasted_secs: wasted,
        total_secs: total,
        peaks,
        facts,
        findings,
    })
}

/// Peaks of done tasks against each numeric parameter and each kind, with the policy's
/// fitted prediction.
fn param_plots(tasks: &[TaskRow]) -> Vec<ParamPlot> {
    let table = feature_table(tasks);
    let feats = &table.rows;
    let mut fit = FitModel::new(Side::Upper);
    fit.set_kinds(&table.kinds());
    for (t, f) in tasks.iter().zip(feats) {
        if let (true, Some(p)) = (t.state == "done", t.peak) {
            fit.observe(f, p as f64);
        }
    }
    let predicted: Vec<Option<f64>> = feats.iter().map(|f| fit.fitted(f)).collect();
    let named: Vec<Vec<(String, String)>> = tasks.iter().map(named_values).collect();
    let mut names: Vec<String> = Vec::new();
    for n in named.iter().flatten() {
        if !names.contains(&n.0) {
            names.push(n.0.clone());
        }
    }
    let mut plots = Vec::new();
    for name in names {
        let mut points = Vec::new();
        let mut numeric_all = true;
        let mut unit = "";
        for (i, t) in tasks.iter().enumerate() {
            let Some((_, v)) = named[i].iter().find(|(k, _)| *k == name) else {
                continue;
            };
            let Some((x, u)) = numeric_unit(v) else {
                numeric_all = false;
                break;
            };
            if !u.is_empty() {
                unit = u;
            }
            if let (true, Some(p)) = (t.state == "done", t.peak) {
                points.push((x, p, predicted[i]));
            }
        }
        let distinct: HashSet<u64> = points.iter().map(|p| p.0.to_bits()).collect();
        if !numeric_all || distinct.len() < 2 {
            continue;
        }
        let points = thinned(points);
        let name = if name.parse::<usize>().is_ok() {
            format!("value {name}")
        } else {
            name
        };
        plots.push(ParamPlot {
            name,
            unit,
            points,
            levels: Vec::new(),
            by_kind: Vec::new(),
        });
    }
    plots.extend(kind_plots(tasks, &table, &predicted));
    plots
}

/// The `q` quantile of sorted values, the nearest rank; `None` for none.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    sorted
        .get(((sorted.len() - 1) as f64 * q).round() as usize)
        .copied()
}

/// At most [`PLOT_POINTS`] of `points`, evenly taken.
fn thinned<T>(points: Vec<T>) -> Vec<T> {
    let step = points.len().div_ceil(PLOT_POINTS).max(1);
    points.into_iter().step_by(step).collect()
}

/// Peaks of done tasks by kind, for each parameter whose values name kinds.
fn kind_plots(
    tasks: &[TaskRow],
    table: &FeatureTable,
    predicted: &[Option<f64>],
) -> Vec<ParamPlot> {
    let mut plots = Vec::new();
    for (name, column, cols) in table.columns() {
        let Column::Levels(levels) = column else {
            continue;
        };
        let points: Vec<(f64, u64, Option<f64>)> = tasks
            .iter()
            .zip(&table.rows)
            .zip(predicted)
            .filter_map(|((t, row), &pred)| {
                let peak = t.peak.filter(|_| t.state == "done")?;
                let kind = cols.clone().position(|c| row.get(c) == Some(&1.0))?;
                Some((kind as f64, peak, pred))
            })
            .collect();
        let by_kind = levels
            .iter()
            .enumerate()
            .filter_map(|(k, kind)| {
                let mut peaks: Vec<u64> = points
                    .iter()
                    .filter(|p| p.0 == k as f64)
                    .map(|p| p.1)
                    .collect();
                peaks.sort_unstable();
                Some(KindPeaks {
                    kind: kind.clone(),
                    done: peaks.len(),
                    p50: quantile(&peaks, 0.5)?,
                    max: *peaks.last()?,
                })
            })
            .collect();
        let points = thinned(points);
        if !points.is_empty() {
            plots.push(ParamPlot {
                name: name.to_string(),
                unit: "",
                points,
                levels: levels.clone(),
                by_kind,
            });
        }
    }
    plots
}

/// Puts each task pause (a `task_paused` event, until its `task_resumed` or the attempt's
/// end) on the attempt of that task that was running then.
fn mark_pauses(attempts: &mut [AttemptView], events: &[EventRow], t0: i64) {
    let mut open: HashMap<String, u64> = HashMap::new();
    let mut closed: Vec<(String, u64, u64)> = Vec::new();
    for e in events {
        let Some(key) = e.detail.get("task").and_then(|v| v.as_str()) else {
            continue;
        };
        let t = (e.unix_ms - t0).max(0) as u64;
        match e.kind.as_str() {
            "task_paused" => {
                open.insert(key.to_string(), t);
            }
            "task_resumed" => {
                if let Some(s) = open.remove(key) {
                    closed.push((key.to_string(), s, t));
                }
            }
            _ => {}
        }
    }
    closed.extend(open.into_iter().map(|(k, s)| (k, s, u64::MAX)));
    for (key, s, e) in closed {
        if let Some(a) = attempts
            .iter_mut()
            .find(|a| a.key == key && a.start_ms <= s && s <= a.end_ms)
        {
            a.paused.push((s, e.min(a.end_ms)));
        }
    }
}

impl Model {
    /// The waste line of the text and HTML reports: time lost, brakes, and pauses (tasks
    /// paused near the limit, with their time; admission pauses when there were any).
    pub fn waste_line(&self) -> String {
        let mut s = format!(
            "{:.1} task-seconds lost to brakes, kills, caps and timeouts ({:.0}% of {:.1}); \
             {} brake(s), {} pause(s)",
            self.wasted_secs,
            if self.total_secs > 0.0 {
                self.wasted_secs / self.total_secs * 100.0
            } else {
                0.0
            },
            self.total_secs,
            self.brakes.len(),
            self.facts.task_pauses,
        );
        if self.facts.task_pauses > 0 {
            s.push_str(&format!(
                " ({} paused in all)",
                ramguard_core::units::format_duration(std::time::Duration::from_millis(
                    self.paused_ms
                ))
            ));
        }
        if self.facts.pauses > 0 {
            s.push_str(&format!(", {} admission pause(s)", self.facts.pauses));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_never_overlap_and_reuse_freed_rows() {
        let spans = [(0, 10), (0, 5), (5, 8), (10, 20), (6, 12)];
        let (lanes, n) = assign_lanes(&spans);
        assert_eq!(n, 3);
        for i in 0..spans.len() {
            for j in 0..i {
                if lanes[i] == lanes[j] {
                    let (a, b) = (spans[i], spans[j]);
                    assert!(a.1 <= b.0 || b.1 <= a.0, "{a:?} and {b:?} share a lane");
                }
            }
        }
    }

    #[test]
    fn numbers_sizes_and_durations_are_numeric() {
        assert_eq!(numeric_unit("3.5"), Some((3.5, "")));
        assert_eq!(numeric_unit("1M"), Some((1048576.0, "bytes")));
        assert_eq!(numeric_unit("2s"), Some((2.0, "seconds")));
        assert_eq!(numeric_unit("abc"), None);
    }
}
