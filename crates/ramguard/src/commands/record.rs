//! `ramguard record -- CMD ARGS…`: run one command and profile its whole process tree's
//! memory ("profile before optimizing"). No sweep, no journal.
//!
//! The command runs as a child (in ramguard's process group, so Ctrl-C reaches it; with
//! `PR_SET_PDEATHSIG`, so it dies if ramguard is killed); ramguard is a child subreaper, so
//! a process that escapes by double-forking is still measured. Every `--interval` the
//! [`sampler`] measures each process; the timeline (the tree's totals and every process's
//! figures per tick) is kept in memory, bounded: beyond [`MAX_TICKS`] neighbours merge,
//! keeping the higher. At the end: the peak of what the
//! tree held and when, the largest processes at that moment, VIRT against what was really
//! resident, any /dev/shm files left behind, and a chart; `--json` prints it all, timeline
//! included. Processes of the tree still running when the command's first process exits are
//! stopped (TERM, then KILL), so nothing outlives the recording.

mod sampler;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ramguard_core::profile::{threads_in_words, virt_in_words, Proc, Tick};
use ramguard_core::Bytes;
use serde_json::json;

use crate::cli::parse_interval;
use crate::render::terminal;
use crate::Outcome;

/// Most timeline points kept.
pub const MAX_TICKS: usize = 10_000;
/// Processes shown at the peak.
const TOP: usize = 8;
/// How long leftover processes get after TERM before KILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

/// Run one command and profile its process tree's memory: peak, per-process figures, VIRT
/// against what is really held, /dev/shm, and a chart.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Print one JSON object (with a "schema" field) holding the summary and the whole
    /// timeline, instead of the summary. The command's own stdout then goes to stderr.
    #[arg(long)]
    pub json: bool,

    /// Also write that JSON object to FILE.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Time between two measurements (like `20ms`, `250ms`, `1s`).
    #[arg(long, value_name = "DUR", default_value = "50ms", value_parser = parse_interval)]
    pub interval: Duration,

    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// One process's figures at one tick (its command is in the top-level `commands` map).
#[derive(Debug, Clone, serde::Serialize)]
struct ProcFigures {
    pid: u32,
    rss: Bytes,
    pss: Bytes,
    uss: Bytes,
    virt: Bytes,
    swap: Bytes,
}

/// One tick of the timeline: the tree's totals and every process.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    #[serde(flatten)]
    tick: Tick,
    procs: Vec<ProcFigures>,
}

impl Row {
    fn new(tick: &Tick, procs: &[Proc]) -> Row {
        Row {
            tick: tick.clone(),
            procs: procs
                .iter()
                .map(|p| ProcFigures {
                    pid: p.pid,
                    rss: p.rss,
                    pss: p.pss,
                    uss: p.uss,
                    virt: p.virt,
                    swap: p.swap,
                })
                .collect(),
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct ExitInfo {
    code: Option<i32>,
    signal: Option<i32>,
}

pub fn run(args: &RecordArgs) -> Result<Outcome> {
    // Refuse a bad -o path before running anything; the file is written only at the end.
    if let Some(p) = &args.output {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if p.is_dir() {
            anyhow::bail!("cannot write {}: it is a directory", p.display());
        }
        if !dir.is_dir() {
            anyhow::bail!(
                "cannot write {}: directory {} does not exist",
                p.display(),
                dir.display()
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install a signal handler")?;
    }
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("cannot become a child subreaper (prctl PR_SET_CHILD_SUBREAPER)")?;

    let mut cmd = std::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    if args.json {
        // Keep stdout for the JSON: the command's output goes to stderr.
        cmd.stdout(std::io::stderr());
    }
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run '{}'", args.command[0]))?;
    let root = child.id();
    // The child is reaped below with wait4 (for its rusage), never through `child`.
    drop(child);

    let mut sampler = sampler::Sampler::new();
    let mut timeline: Vec<Row> = Vec::new();
    let mut commands: std::collections::BTreeMap<u32, String> = Default::default();
    let mut peak: Option<(Tick, Vec<Proc>)> = None;
    let mut exit: Option<ExitInfo> = None;
    let mut interrupted = false;
    let mut forwarded = false;
    while exit.is_none() {
        let t_ms = start.elapsed().as_millis() as u64;
        let (tick, procs) = sampler.sample(t_ms);
        for p in &procs {
            commands.insert(p.pid, p.command.clone());
        }
        let row = Row::new(&tick, &procs);
        if peak.as_ref().is_none_or(|(p, _)| tick.held > p.held) {
            // A new peak must hold on a second reading: a process exiting mid-read (its
            // pages unshared from the others) can inflate one reading of PSS.
            let (again, again_procs) = sampler.sample(start.elapsed().as_millis() as u64);
            let confirmed = if again.held < tick.held {
                (again, again_procs)
            } else {
                (tick.clone(), procs)
            };
            if peak.as_ref().is_none_or(|(p, _)| confirmed.0.held > p.held) {
                peak = Some(confirmed);
            }
        }
        push_bounded(&mut timeline, row);
        exit = reap(root);
        if exit.is_some() {
            break;
        }
        if stop.load(Ordering::Relaxed) && !forwarded {
            // Ctrl-C reached the command too (same process group); a SIGTERM sent to
            // ramguard alone is passed on.
            interrupted = true;
            forwarded = true;
            signal_pid(root, rustix::process::Signal::TERM);
        }
        std::thread::sleep(args.interval);
    }
    // Ctrl-C reaches the command first: it may be gone before the loop saw the flag.
    interrupted |= stop.load(Ordering::Relaxed);
    let duration_ms = start.elapsed().as_millis() as u64;
    let leftovers = stop_leftovers(&sampler);
    let shm_left = sampler.shm_remaining();
    let ru_maxrss = children_maxrss();
    let exit = exit.unwrap_or(ExitInfo {
        code: None,
        signal: None,
    });

    let (peak_tick, mut peak_procs) =
        peak.unwrap_or_else(|| (Tick::of(0, &[], Bytes::ZERO), vec![]));
    peak_procs.sort_by_key(|p| std::cmp::Reverse(p.pss));
    // One process alone: what the kernel saw as its highest RSS is a floor for the peak.
    let mut held_peak = peak_tick.held;
    if timeline.iter().all(|r| r.tick.processes <= 1) {
        held_peak = held_peak.max(ru_maxrss);
    }
    // Threads against CPUs, at the tick with the most threads.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let busiest = timeline.iter().map(|r| &r.tick).max_by_key(|t| t.threads);
    let threads_note = busiest.and_then(|t| threads_in_words(t.threads, t.processes, cpus));
    let summary = json!({
        "schema": 1,
        "command": args.command,
        "exit": exit,
        "interrupted": interrupted,
        "duration_ms": duration_ms,
        "interval_ms": args.interval.as_millis() as u64,
        "peak": {
            "held": held_peak,
            "t_ms": peak_tick.t_ms,
            "rss": peak_tick.rss,
            "pss": peak_tick.pss,
            "uss": peak_tick.uss,
            "virt": peak_tick.virt,
            "swap": peak_tick.swap,
            "shm": peak_tick.shm,
            "processes": peak_tick.processes,
        },
        "peak_processes": peak_procs.iter().take(TOP).collect::<Vec<_>>(),
        "max_virt": timeline.iter().map(|r| r.tick.virt).max().unwrap_or_default(),
        "ru_maxrss": ru_maxrss,
        "virt_explained": virt_in_words(peak_tick.virt, held_peak, peak_tick.rss),
        "max_threads": busiest.map_or(0, |t| t.threads),
        "cpus": cpus,
        "threads_note": threads_note,
        "leftover_processes_stopped": leftovers,
        "shm_leftovers": shm_left,
        "commands": commands,
        "timeline": timeline,
    });
    if let Some(path) = &args.output {
        let text = serde_json::to_string(&summary)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        let text = summary_text(
            args,
            exit,
            interrupted,
            duration_ms,
            held_peak,
            &peak_tick,
            &peak_procs,
            &timeline,
            leftovers,
            &shm_left,
            threads_note.as_deref(),
        );
        out.write_all(text.as_bytes())?;
    }
    Ok(if interrupted {
        Outcome::Interrupted
    } else if exit.code == Some(0) {
        Outcome::Success
    } else {
        Outcome::SomeFailed
    })
}

/// Appends a tick; past [`MAX_TICKS`], merges neighbours keeping the one that held more.
fn push_bounded(timeline: &mut Vec<Row>, row: Row) {
    timeline.push(row);
    if timeline.len() >= MAX_TICKS {
        let merged: Vec<Row> = timeline
            .chunks(2)
            .filter_map(|c| c.iter().max_by_key(|r| r.tick.held).cloned())
            .collect();
        *timeline = merged;
    }
}

/// Reaps every exited child (orphans come to us as subreaper); returns the root's exit.
fn reap(root: u32) -> Option<ExitInfo> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: plain syscall with valid out-pointers.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        if pid as u32 == root {
            found = Some(if libc::WIFEXITED(status) {
                ExitInfo {
                    code: Some(libc::WEXITSTATUS(status)),
                    signal: None,
                }
            } else {
                ExitInfo {
                    code: None,
                    signal: Some(libc::WTERMSIG(status)),
                }
            });
        }
    }
    found
}

/// The largest RSS any reaped descendant reached, as the kernel counted it.
fn children_maxrss() -> Bytes {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return Bytes::ZERO;
    }
    Bytes::from_kib(u64::try_from(ru.ru_maxrss).unwrap_or(0))
}

fn signal_pid(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Stops what is left of the tree once its first process has exited: TERM, then KILL after
/// [`LEFTOVER_GRACE`]; returns how many processes there were.
fn stop_leftovers(sampler: &sampler::Sampler) -> usize {
    let left = sampler.pids();
    if left.is_empty() {
        return 0;
    }
    for &p in &left {
        signal_pid(p, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + LEFTOVER_GRACE;
    while Instant::now() < deadline {
        reap(0);
        if sampler.pids().is_empty() {
            return left.len();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in sampler.pids() {
        signal_pid(p, rustix::process::Signal::KILL);
    }
    let deadline = Instant::now() + LEFTOVER_GRACE;
    while Instant::now() < deadline && !sampler.pids().is_empty() {
        reap(0);
        std::thread::sleep(Duration::from_millis(10));
    }
    reap(0);
    left.len()
}

#[allow(clippy::too_many_arguments)]
fn summary_text(
    args: &RecordArgs,
    exit: ExitInfo,
    interrupted: bool,
    duration_ms: u64,
    held_peak: Bytes,
    peak: &Tick,
    procs: &[Proc],
    timeline: &[Row],
    leftovers: usize,
    shm_left: &[sampler::ShmSeen],
    threads_note: Option<&str>,
) -> String {
    let mut s = String::new();
    let how = match (exit.code, exit.signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended".to_string(),
    };
    s.push_str(&format!(
        "record  {} — {how} after {}{}\n",
        shell_words::join(&args.command),
        crate::journal::display::duration_ms(duration_ms),
        if interrupted { " (interrupted)" } else { "" }
    ));
    s.push_str(&format!(
        "peak    {held_peak} held at {} by {} process(es): PSS {} (shared pages counted \
         once), /dev/shm {}\n",
        crate::journal::display::duration_ms(peak.t_ms),
        peak.processes,
        peak.pss,
        peak.shm
    ));
    s.push_str(&format!(
        "        RSS summed {}, USS (private only) {}, swap {}\n",
        peak.rss, peak.uss, peak.swap
    ));
    s.push_str(&format!(
        "VIRT    {}\n",
        virt_in_words(peak.virt, held_peak, peak.rss)
    ));
    if let Some(note) = threads_note {
        s.push_str(&format!("threads {note}\n"));
    }
    if !procs.is_empty() {
        s.push_str("largest at the peak:\n");
        let header: Vec<String> = ["pid", "PSS", "RSS", "USS", "VIRT", "swap", "command"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let rows: Vec<Vec<String>> = procs
            .iter()
            .take(TOP)
            .map(|p| {
                vec![
                    p.pid.to_string(),
                    p.pss.to_string(),
                    p.rss.to_string(),
                    p.uss.to_string(),
                    p.virt.to_string(),
                    p.swap.to_string(),
                    p.command.clone(),
                ]
            })
            .collect();
        for line in crate::journal::display::table(&header, &rows).lines() {
            s.push_str(&format!("  {line}\n"));
        }
        if procs.len() > TOP {
            s.push_str(&format!("  ... and {} more\n", procs.len() - TOP));
        }
    }
    if leftovers > 0 {
        s.push_str(&format!(
            "note    {leftovers} process(es) of the tree were still running when the command \
             exited; they were stopped\n"
        ));
    }
    for f in shm_left {
        s.push_str(&format!(
            "note    {} ({}) was left in /dev/shm: it holds memory until removed\n",
            f.path.display(),
            f.allocated
        ));
    }
    let pts: Vec<(f64, u64)> = timeline
        .iter()
        .map(|r| (r.tick.t_ms as f64 / 1000.0, r.tick.held.get()))
        .collect();
    if pts.len() >= 2 {
        s.push_str("held over time:\n");
        s.push_str(&terminal::chart(&pts, 60, 8, None));
    }
    s
}
