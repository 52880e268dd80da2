//! `ramguard run`: build the task list, resolve settings against the probed host, open the
//! journal, and hand the sweep to the supervisor.
//!
//! What the user typed ([`RunArgs`]) stays apart from what it resolves to ([`Settings`]):
//! sizes like `80%` become bytes only here, after probing. Nothing runs, and the journal is
//! not touched, until every input has been checked; a bad input is one `error:` line, exit 2.
//! The journal is the source of truth: a completion is committed (the supervisor flushes the
//! sink) before it is printed, and a rerun of the same command runs only what is not done.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use ramguard_core::policy::predict::Observation;
use ramguard_core::policy::{Config, ExitClass, Note, Policy, TaskId, TaskSpec};
use ramguard_core::tasks::{self, TaskDef, Template};
use ramguard_core::units::{format_duration, parse_duration, parse_size, SizeSpec};
use ramguard_core::Bytes;
use serde_json::json;

use crate::cli::{parse_interval, parse_size_spec};
use crate::journal::{self, AttemptEnd, Journal, MemSample, NewTask, SweepHandle, SweepSpec};
use crate::probe::{self, Root};
use crate::supervisor::{
    self, tree::TreeMemory, Finished, HostWatch, Launch, RunEnd, Sink, Snapshot, Supervisor,
};
use crate::sweep_file;
use crate::Outcome;

mod host_trace;
mod leak;
mod logs;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    Bar,
    /// One timestamped line per start, finish and brake.
    Plain,
    None,
}

/// Run a sweep, admitting each task only when its predicted peak memory fits.
///
/// Exactly one task source: `-- CMD ARGS ::: V1 V2 ...` (GNU parallel style, cartesian
/// product of the `:::` lists), `--grid NAME=V1,V2 -- CMD {NAME}`, `--tasks FILE`,
/// `--repeat N -- CMD`, or a sweep file `ramguard run sweep.toml`. A lone `-- CMD ARGS`
/// runs once.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A sweep file (TOML): name, command template, grid or task list, options.
    #[arg(value_name = "SWEEP.toml")]
    pub sweep_file: Option<PathBuf>,

    /// The command template and, after `:::`, the values (GNU parallel's convention).
    /// Placeholders: `{}`, `{1}`, `{NAME}`, `{#}` (task number).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,

    /// A parameter axis: `NAME=V1,V2,...` or `NAME=START..STOP:STEP`; repeat for more axes.
    #[arg(long, value_name = "NAME=VALUES")]
    pub grid: Vec<String>,

    /// One task a line (`-` for stdin): a command line, or a JSON object of params for the
    /// `-- CMD` template. `#` comments and blank lines are skipped.
    #[arg(long, value_name = "FILE")]
    pub tasks: Option<String>,

    /// Run the command N times (`{#}` is 1..N): e.g. Optuna workers.
    #[arg(long, value_name = "N")]
    pub repeat: Option<usize>,

    /// Run each task through `sh -c`, with every substituted value quoted.
    #[arg(long)]
    pub shell: bool,

    /// Print the tasks and the resolved settings; run nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Most tasks running at once [default: usable CPUs].
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Memory budget for all running tasks together: a size or a share of the effective
    /// limit [default: effective limit minus the reserve].
    #[arg(long, value_name = "SIZE|PCT", value_parser = parse_size_spec)]
    pub mem: Option<SizeSpec>,

    /// Headroom kept free for everything else [default: 10% of the budget base (`--mem`
    /// when given, else the effective limit), at least 256 MiB, at most 25%]. The brake
    /// fires when available memory falls to half of it (but not below 256 MiB when the
    /// reserve is at least that).
    #[arg(long, value_name = "SIZE|PCT", value_parser = parse_size_spec)]
    pub reserve: Option<SizeSpec>,

    /// Peak memory to assume for a task before any has been measured.
    #[arg(long, value_name = "SIZE", value_parser = parse_abs_size)]
    pub estimate: Option<Bytes>,

    /// Kill a task whose process tree exceeds SIZE (failed: over cap).
    #[arg(long, value_name = "SIZE", value_parser = parse_abs_size)]
    pub task_mem: Option<Bytes>,

    /// Kill a task that runs longer than DUR (failed: timed out).
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub timeout: Option<Duration>,

    /// Time between TERM and KILL when ramguard stops a task [default: 10s].
    #[arg(long, value_name = "DUR", value_parser = parse_dur)]
    pub grace: Option<Duration>,

    /// Extra attempts for ordinary failures (brakes never count) [default: 0].
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    /// Threads for BLAS/OpenMP/etc. in every task, unless you exported a value [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "no_thread_caps")]
    pub threads: Option<u32>,

    /// Do not set OMP_NUM_THREADS and friends.
    #[arg(long)]
    pub no_thread_caps: bool,

    /// Print the final summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Progress display.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,

    /// Directory for each attempt's stdout/stderr, `<task>.<attempt>.{out,err}`, each
    /// created when the attempt first writes to it [default: .ramguard/logs/<sweep>].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// The sweep's name in the journal [default: from the sweep file or the command].
    #[arg(long)]
    pub name: Option<String>,

    /// Forget this sweep's journal entries and start over.
    #[arg(long)]
    pub fresh: bool,

    /// On a rerun, leave tasks that failed before alone.
    #[arg(long)]
    pub skip_failed: bool,

    /// The journal file [default: ./.ramguard/journal.db].
    #[arg(long, value_name = "PATH", env = "RAMGUARD_JOURNAL")]
    pub journal: Option<PathBuf>,
}

fn parse_abs_size(s: &str) -> Result<Bytes, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// The settings after resolving against the host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub jobs: usize,
    pub budget: Bytes,
    pub reserve: Bytes,
    pub brake_level: Bytes,
    pub hard_level: Bytes,
    pub estimate: Option<Bytes>,
    pub task_mem: Option<Bytes>,
    #[serde(serialize_with = "ser_opt_dur")]
    pub timeout: Option<Duration>,
    #[serde(serialize_with = "ser_dur")]
    pub grace: Duration,
    pub retries: u32,
    pub threads: Option<u32>,
    pub effective_limit: Bytes,
    pub limit_source: String,
}

fn ser_dur<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_dur<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// The sweep to run: its tasks, template, name and options from a sweep file.
struct Sweep {
    name: String,
    template: String,
    tasks: Vec<TaskDef>,
    file_options: sweep_file::SweepOptions,
}

pub fn run(args: &RunArgs) -> Result<Outcome> {
    let sweep = build_sweep(args)?;
    let root = Root::host();
    let report = probe::report(&root)?;
    let settings = resolve(args, &sweep.file_options, &report)?;
    if args.dry_run {
        dry_run(args, &sweep, &settings)?;
        return Ok(Outcome::Success);
    }

    // The journal: identity, lock, resume.
    let journal_path = args.journal.clone().unwrap_or_else(journal::default_path);
    let mut journal = Journal::open(&journal_path)?;
    let spec = SweepSpec {
        name: sweep.name.clone(),
        fingerprint: journal::fingerprint(&sweep.template, &json!({ "shell": args.shell })),
        template: sweep.template.clone(),
        settings: serde_json::to_value(&settings)?,
    };
    let handle = journal.begin_sweep(&spec, args.fresh)?;
    for orphan in journal.recover_interrupted(&handle)? {
        kill_orphan(orphan.pid);
    }
    let new_tasks: Vec<NewTask> = sweep
        .tasks
        .iter()
        .map(|t| NewTask {
            key: t.key.clone(),
            params: params_json(t),
            argv: t.argv.clone(),
        })
        .collect();
    let records = journal.sync_tasks(&handle, &new_tasks)?;
    journal.commit()?;

    let features = tasks::features(&sweep.tasks);
    let feature_of: HashMap<&str, &Vec<f64>> = sweep
        .tasks
        .iter()
        .zip(&features)
        .map(|(t, f)| (t.key.as_str(), f))
        .collect();
    let mut todo: Vec<usize> = Vec::new();
    let mut already_done = 0usize;
    let mut already_failed = 0usize;
    for (i, rec) in records.iter().enumerate() {
        match rec.state {
            journal::TaskStateRow::Done => already_done += 1,
            journal::TaskStateRow::Failed if args.skip_failed => already_failed += 1,
            _ => todo.push(i),
        }
    }
    let specs: Vec<TaskSpec> = todo
        .iter()
        .map(|&i| TaskSpec {
            features: features[i].clone(),
            lower_bound: records[i].lower_bound.map(Bytes),
            prior_attempts: 0,
        })
        .collect();
    let mut policy = Policy::new(policy_config(&settings), specs);
    let history: Vec<(Vec<f64>, Observation)> = journal
        .learned_history(&handle)?
        .into_iter()
        .filter_map(|l| {
            let obs = Observation {
                peak: Bytes(l.peak),
                duration: l.duration_ms.map(Duration::from_millis),
                time_to_peak: l.time_to_peak_ms.map(Duration::from_millis),
            };
            Some((feature_of.get(l.key.as_str())?.to_vec(), obs))
        })
        .collect();
    policy.learn_from_history(&history);

    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| default_log_dir(&journal_path, &sweep.name));
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create log directory {}", log_dir.display()))?;

    let total = sweep.tasks.len();
    let printer = Printer::new(args.progress, total, already_done, settings.budget);
    if already_done > 0 || already_failed > 0 {
        printer.line(&format!(
            "resuming sweep '{}': {already_done} of {total} done already{}; {} to run",
            sweep.name,
            if already_failed > 0 {
                format!(", {already_failed} failed left alone (--skip-failed)")
            } else {
                String::new()
            },
            todo.len()
        ));
    } else {
        printer.line(&format!(
            "sweep '{}': {} tasks, budget {}, -j {} (limit {} from {})",
            sweep.name,
            total,
            settings.budget,
            settings.jobs,
            settings.effective_limit,
            settings.limit_source
        ));
    }

    let mut sink = RunSink {
        logs: logs::Logs::start()?,
        journal,
        handle,
        tasks: &sweep.tasks,
        todo: &todo,
        prior_attempts: todo.iter().map(|&i| records[i].attempts).collect(),
        attempt_ids: HashMap::new(),
        abs_log_dir: absolute(&log_dir),
        log_dir,
        thread_env: supervisor::thread_caps(settings.threads),
        printer,
        pending: Vec::new(),
        stats: Stats::default(),
        samples: HashMap::new(),
        last_commit: Duration::ZERO,
        completions_pending: false,
        leaks: leak::Leaks::new(settings.budget, settings.task_mem),
        host_trace: host_trace::HostTrace::default(),
    };
    let mut sup = Supervisor::new(policy, HostWatch::new(root, &report))?;
    let end = sup.run(&mut sink)?;
    drop(sup);
    // Every task is gone: the logs are complete once the pump has drained their pipes.
    sink.logs.finish();
    sink.printer.finish();

    let stats = &sink.stats;
    let done = already_done + stats.done;
    let failed = stats.failed + already_failed;
    let interrupted = end == RunEnd::Interrupted;
    let not_run = total.saturating_sub(done + failed);
    let summary = json!({
        "schema": 1,
        "sweep": sweep.name,
        "tasks": total,
        "done": done,
        "failed": failed,
        "not_run": not_run,
        "braked": stats.braked,
        "interrupted": interrupted,
        "peak_used": stats.peak_used,
        "budget": settings.budget,
        "journal": journal_path.display().to_string(),
    });
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    }
    const SHOWN: usize = 10;
    // The log pump has finished: a stderr file exists if and only if the task wrote to it.
    for (what, err) in stats.failures.iter().take(SHOWN) {
        let stderr = match err.exists() {
            true => format!("stderr in {}", err.display()),
            false => "it wrote nothing to stderr".to_string(),
        };
        sink.printer.line(&format!("failed {what} — {stderr}"));
    }
    if stats.failures.len() > SHOWN {
        sink.printer.line(&format!(
            "... and {} more failures: ramguard results {} --format table",
            stats.failures.len() - SHOWN,
            sweep.name
        ));
    }
    let mut line = format!(
        "{done} of {total} done, {failed} failed, {} brake(s)",
        stats.braked
    );
    if interrupted {
        line.push_str(&format!(
            "; interrupted with {not_run} not done (rerun the same command to resume)"
        ));
    }
    line.push_str(&format!("; results: ramguard results {}", sweep.name));
    sink.printer.line(&line);
    Ok(if interrupted {
        Outcome::Interrupted
    } else if failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}

fn params_json(t: &TaskDef) -> serde_json::Value {
    if t.params.is_empty() {
        json!(t.argv)
    } else {
        serde_json::Value::Object(
            t.params
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        )
    }
}

/// Kills a process left by a ramguard that died, but only if it carries a task token.
fn kill_orphan(pid: u32) {
    if supervisor::tree::token_of(pid).is_some() {
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
}

fn default_log_dir(journal_path: &Path, sweep: &str) -> PathBuf {
    let base = journal_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let safe: String = sweep
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join("logs").join(safe)
}

/// Builds the task list from exactly one source.
fn build_sweep(args: &RunArgs) -> Result<Sweep> {
    let (template_args, lists) = tasks::split_lists(&args.command);
    let sources = [
        args.sweep_file.is_some(),
        !lists.is_empty(),
        !args.grid.is_empty(),
        args.tasks.is_some(),
        args.repeat.is_some(),
    ];
    let n_sources = sources.iter().filter(|s| **s).count();
    if n_sources > 1 {
        bail!(
            "give exactly one task source: a sweep file, `::: values`, --grid, --tasks or --repeat"
        );
    }
    if let Some(path) = &args.sweep_file {
        if !args.command.is_empty() {
            bail!(
                "a sweep file carries its own command; drop the `-- {}`",
                args.command.join(" ")
            );
        }
        let file = sweep_file::load(path)?;
        let name = args.name.clone().or(file.name.clone()).unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into())
        });
        return finish_sweep(name, file.template.display(), file.tasks, file.options);
    }
    if n_sources == 0 && args.command.is_empty() {
        bail!("nothing to run: give `-- CMD ARGS ::: VALUES`, --grid, --tasks FILE, --repeat N or a sweep file (see ramguard run --help)");
    }
    let template = if template_args.is_empty() {
        None
    } else {
        Some(Template::parse(&template_args)?)
    };
    let need = |what: &str| -> Result<&Template> {
        template
            .as_ref()
            .with_context(|| format!("{what} needs a command: add `-- CMD ARGS`"))
    };
    let defs = if !lists.is_empty() {
        tasks::cartesian(need("`:::`")?, &lists, args.shell)?
    } else if !args.grid.is_empty() {
        let axes = args
            .grid
            .iter()
            .map(|g| tasks::parse_grid(g))
            .collect::<Result<Vec<_>, _>>()?;
        tasks::grid(need("--grid")?, &axes, args.shell)?
    } else if let Some(file) = &args.tasks {
        let text = read_tasks_file(file)?;
        tasks::from_lines(&text, template.as_ref(), args.shell)
            .map_err(|e| anyhow::anyhow!("{}: {e}", if file == "-" { "stdin" } else { file }))?
    } else {
        // A lone `-- CMD ARGS` is one task: supervised, capped and journaled like any other.
        let n = args.repeat.unwrap_or(1);
        if n == 0 {
            bail!("--repeat must be at least 1");
        }
        tasks::repeat(need("--repeat")?, n, args.shell)?
    };
    let template_text = match &template {
        Some(t) => t.display(),
        None => format!("tasks from {}", args.tasks.as_deref().unwrap_or("-")),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| derive_name(template.as_ref().map(|_| template_args.as_slice()), &defs));
    finish_sweep(
        name,
        template_text,
        defs,
        sweep_file::SweepOptions::default(),
    )
}

fn finish_sweep(
    name: String,
    template: String,
    tasks: Vec<TaskDef>,
    file_options: sweep_file::SweepOptions,
) -> Result<Sweep> {
    if tasks.is_empty() {
        bail!("no tasks to run");
    }
    if let Some(key) = tasks::first_duplicate(&tasks) {
        bail!("two tasks have the same identity {key}: each task must differ in its parameters");
    }
    Ok(Sweep {
        name,
        template,
        tasks,
        file_options,
    })
}

fn read_tasks_file(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read tasks from stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read tasks file {file}"))
}

/// A name a person recognises: the script's stem (`python t3b.py` → `t3b`).
fn derive_name(template: Option<&[String]>, tasks: &[TaskDef]) -> String {
    const INTERPRETERS: &[&str] = &[
        "python", "python3", "python2", "Rscript", "julia", "node", "bash", "sh", "uv", "run",
        "-m", "-u",
    ];
    let argv: Vec<String> = match template {
        Some(t) => t.to_vec(),
        None => tasks.first().map(|t| t.argv.clone()).unwrap_or_default(),
    };
    let pick = argv
        .iter()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .find(|a| {
            !a.is_empty()
                && !a.starts_with('-')
                && !INTERPRETERS.contains(&a.as_str())
                && !a.contains('{')
        })
        .or_else(|| argv.first().cloned())
        .unwrap_or_else(|| "sweep".into());
    let stem = Path::new(&pick)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(pick);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Resolves the options (CLI over sweep file over defaults) against the probed host.
fn resolve(
    args: &RunArgs,
    file: &sweep_file::SweepOptions,
    report: &probe::HostReport,
) -> Result<Settings> {
    let limit = report.memory.effective.limit;
    let mem = args.mem.or(file.mem);
    let base = mem.map_or(limit, |m| m.resolve(limit));
    let reserve = args
        .reserve
        .or(file.reserve)
        .map_or_else(|| default_reserve(base), |r| r.resolve(base));
    let budget = match mem {
        Some(m) => m.resolve(limit),
        None => limit.saturating_sub(reserve),
    };
    if budget == Bytes::ZERO {
        bail!("the memory budget resolves to 0 bytes (limit {limit}, reserve {reserve}): lower --reserve or raise --mem");
    }
    if budget > limit {
        bail!(
            "--mem {budget} is more than the effective memory limit {limit} (from {})",
            report.memory.effective.limit_source.file
        );
    }
    let jobs = args
        .jobs
        .or(file.jobs)
        .unwrap_or(report.cpus.usable as usize);
    if jobs == 0 {
        bail!("-j/--jobs must be at least 1");
    }
    let threads = if args.no_thread_caps {
        None
    } else {
        Some(args.threads.or(file.threads).unwrap_or(1))
    };
    // Half the reserve, but not below 256 MiB where the reserve allows: a small machine
    // has daemons (a watchdog's min-memory, earlyoom) that act at about that line.
    let brake_level = reserve.scale(0.5).max(FLOOR.min(reserve));
    Ok(Settings {
        jobs,
        budget,
        reserve,
        brake_level,
        hard_level: brake_level.scale(0.5),
        estimate: args.estimate.or(file.estimate),
        task_mem: args.task_mem.or(file.task_mem),
        timeout: args.timeout.or(file.timeout),
        grace: args.grace.or(file.grace).unwrap_or(Duration::from_secs(10)),
        retries: args.retries.or(file.retries).unwrap_or(0),
        threads,
        effective_limit: limit,
        limit_source: report.memory.effective.limit_source.file.clone(),
    })
}

/// The least headroom worth keeping and braking at, where the budget allows it.
const FLOOR: Bytes = Bytes(256 << 20);

/// The default reserve: 10% of the budget base, at least 256 MiB, at most a quarter of it.
fn default_reserve(base: Bytes) -> Bytes {
    base.scale(0.10).max(FLOOR).min(base.scale(0.25))
}

fn policy_config(s: &Settings) -> Config {
    Config {
        budget: s.budget,
        reserve: s.reserve,
        brake_level: s.brake_level,
        hard_level: s.hard_level,
        max_jobs: s.jobs,
        estimate: s.estimate,
        task_cap: s.task_mem,
        timeout: s.timeout,
        grace: s.grace,
        retries: s.retries,
        psi_full_pause: 10.0,
        max_brakes: 3,
    }
}

fn dry_run(args: &RunArgs, sweep: &Sweep, s: &Settings) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let tasks: Vec<_> = sweep
            .tasks
            .iter()
            .map(|t| json!({ "key": t.key, "params": params_json(t), "argv": t.argv }))
            .collect();
        let v = json!({ "schema": 1, "sweep": sweep.name, "template": sweep.template, "settings": s, "tasks": tasks });
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "sweep      {}", sweep.name)?;
    writeln!(out, "command    {}", sweep.template)?;
    writeln!(
        out,
        "limit      {} (from {})",
        s.effective_limit, s.limit_source
    )?;
    writeln!(
        out,
        "budget     {}   reserve {}   brake below {} available",
        s.budget, s.reserve, s.brake_level
    )?;
    writeln!(out, "jobs       {}", s.jobs)?;
    writeln!(
        out,
        "estimate   {}   task cap {}   timeout {}   grace {}   retries {}",
        s.estimate.map_or("learned".into(), |b| b.to_string()),
        s.task_mem.map_or("none".into(), |b| b.to_string()),
        s.timeout.map_or("none".into(), format_duration),
        format_duration(s.grace),
        s.retries
    )?;
    writeln!(
        out,
        "threads    {}",
        s.threads.map_or("not capped".into(), |n| format!(
            "{n} (OMP_NUM_THREADS and {} others, unless exported)",
            supervisor::THREAD_VARS.len() - 1
        ))
    )?;
    writeln!(out, "tasks      {}", sweep.tasks.len())?;
    for (i, t) in sweep.tasks.iter().enumerate() {
        writeln!(out, "  {:>4}  {}", i + 1, shell_words::join(&t.argv))?;
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Stats {
    done: usize,
    failed: usize,
    /// Per task that failed in this run: label, reason and class; where its stderr would be.
    failures: Vec<(String, PathBuf)>,
    braked: usize,
    peak_used: Bytes,
}

/// The journal, the log pump and the printer behind the supervisor.
struct RunSink<'a> {
    logs: logs::Logs,
    journal: Journal,
    handle: SweepHandle,
    tasks: &'a [TaskDef],
    /// Policy task id → index into `tasks`.
    todo: &'a [usize],
    /// Attempts recorded in earlier runs, per policy task id.
    prior_attempts: Vec<u32>,
    attempt_ids: HashMap<(TaskId, u32), i64>,
    log_dir: PathBuf,
    /// `log_dir` made absolute once, for `$RAMGUARD_RESULT` (tasks may change directory).
    abs_log_dir: PathBuf,
    thread_env: Vec<(String, String)>,
    printer: Printer,
    pending: Vec<String>,
    stats: Stats,
    /// Per running task: its memory timeline, written to the journal at most every
    /// [`TIMELINE_STEP`] (the highest figures in between are kept, so peaks survive).
    samples: HashMap<TaskId, Timeline>,
    /// When the journal was last committed, and whether completions wait to be reported.
    last_commit: Duration,
    completions_pending: bool,
    /// Leak watches of the running attempts.
    leaks: leak::Leaks,
    /// When the host's available memory was last journaled.
    host_trace: host_trace::HostTrace,
}

/// Shortest interval between two timeline rows of one attempt in the journal.
const TIMELINE_STEP: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
struct Timeline {
    attempt_id: i64,
    started: Duration,
    last_written: Option<Duration>,
    /// The highest RSS and PSS since the last row, and when the RSS was seen.
    pending: Option<(Duration, u64, Option<u64>)>,
}

impl Timeline {
    fn take_row(&mut self) -> Option<MemSample> {
        let (at, rss, pss) = self.pending.take()?;
        self.last_written = Some(at);
        Some(MemSample {
            t_ms: at.saturating_sub(self.started).as_millis() as u64,
            rss,
            pss,
        })
    }
}

/// Starts and samples are committed at least this often, so `status` sees them.
const BACKGROUND_COMMIT: Duration = Duration::from_secs(1);

impl RunSink<'_> {
    fn def(&self, task: TaskId) -> &TaskDef {
        &self.tasks[self.todo[task]]
    }

    fn journal_attempt(&self, task: TaskId, attempt: u32) -> u32 {
        self.prior_attempts[task] + attempt
    }

    fn label(&self, task: TaskId) -> String {
        let d = self.def(task);
        let text = if d.params.is_empty() || d.params.iter().all(|(k, _)| k == "#") {
            shell_words::join(&d.argv)
        } else {
            d.params
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
        let text: String = text.chars().take(60).collect();
        format!("#{} {text}", self.todo[task] + 1)
    }

    fn files(&self, task: TaskId, attempt: u32) -> (PathBuf, PathBuf, PathBuf) {
        let n = self.todo[task] + 1;
        let a = self.journal_attempt(task, attempt);
        (
            self.log_dir.join(format!("{n}.{a}.out")),
            self.log_dir.join(format!("{n}.{a}.err")),
            self.log_dir.join(format!("{n}.{a}.result.json")),
        )
    }
}

impl Sink for RunSink<'_> {
    fn launch(&mut self, now: Duration, task: TaskId, attempt: u32) -> Result<Launch> {
        // A finished task must be durable before anything new starts: a crash right after
        // this start must not make the rerun repeat it.
        if self.completions_pending {
            self.commit(now)?;
        }
        let (stdout, stderr, result) = self.files(task, attempt);
        // A result file from an earlier run (before --fresh) must not pass for this one's.
        let _ = std::fs::remove_file(&result);
        let mut env = self.thread_env.clone();
        let result_name = result.file_name().unwrap_or_default();
        env.push((
            "RAMGUARD_RESULT".into(),
            self.abs_log_dir.join(result_name).display().to_string(),
        ));
        env.push(("RAMGUARD_TASK".into(), (self.todo[task] + 1).to_string()));
        env.push((
            "RAMGUARD_ATTEMPT".into(),
            self.journal_attempt(task, attempt).to_string(),
        ));
        Ok(Launch {
            argv: self.def(task).argv.clone(),
            env,
            stdout: self.logs.capture(stdout)?,
            stderr: self.logs.capture(stderr)?,
        })
    }

    fn started(
        &mut self,
        now: Duration,
        task: TaskId,
        attempt: u32,
        pid: u32,
        predicted: Bytes,
    ) -> Result<()> {
        let key = self.def(task).key.clone();
        let a = self.journal_attempt(task, attempt);
        let id = self
            .journal
            .attempt_started(&self.handle, &key, a, pid, supervisor::unix_ms())?;
        self.samples.insert(
            task,
            Timeline {
                attempt_id: id,
                started: now,
                last_written: None,
                pending: None,
            },
        );
        self.attempt_ids.insert((task, attempt), id);
        let retry = if attempt > 1 {
            format!(" (attempt {a})")
        } else {
            String::new()
        };
        let line = format!(
            "start   {}{retry}  pid {pid}, predicted {predicted}",
            self.label(task)
        );
        self.printer.event(&line);
        Ok(())
    }

    fn sample(&mut self, now: Duration, task: TaskId, memory: &TreeMemory) -> Result<()> {
        let Some(t) = self.samples.get_mut(&task) else {
            return Ok(());
        };
        let (rss, pss) = (memory.rss.get(), memory.pss.map(Bytes::get));
        t.pending = Some(match t.pending {
            Some((at, r, p)) if r >= rss => (at, r, p.max(pss)),
            Some((_, _, p)) => (now, rss, p.max(pss)),
            None => (now, rss, pss),
        });
        let due = t
            .last_written
            .is_none_or(|w| now.saturating_sub(w) >= TIMELINE_STEP);
        let age = now.saturating_sub(t.started);
        if due {
            let id = t.attempt_id;
            if let Some(row) = t.take_row() {
                self.journal.add_samples(id, &[row])?;
            }
        }
        if let Some(flag) = self.leaks.sample(task, age, memory.used) {
            let detail = json!({ "task": self.def(task).key, "leak": flag.detail });
            self.journal
                .event(&self.handle, supervisor::unix_ms(), "leak", &detail)?;
            self.printer
                .event(&format!("leak    {}  {}", self.label(task), flag.line));
        }
        Ok(())
    }

    fn finished(&mut self, _now: Duration, fin: &Finished) -> Result<()> {
        self.leaks.finished(fin.task);
        if let Some(mut t) = self.samples.remove(&fin.task) {
            if let Some(row) = t.take_row() {
                self.journal.add_samples(t.attempt_id, &[row])?;
            }
        }
        let (_, _, result_path) = self.files(fin.task, fin.attempt);
        let result = std::fs::read_to_string(&result_path).ok();
        let Some(id) = self.attempt_ids.remove(&(fin.task, fin.attempt)) else {
            // Never started (spawn failed before a pid existed): record it as an attempt.
            let key = self.def(fin.task).key.clone();
            let a = self.journal_attempt(fin.task, fin.attempt);
            let id =
                self.journal
                    .attempt_started(&self.handle, &key, a, 0, supervisor::unix_ms())?;
            return self.finish_attempt(id, fin, result);
        };
        self.finish_attempt(id, fin, result)
    }

    fn failed_unstarted(&mut self, _now: Duration, task: TaskId, reason: &str) -> Result<()> {
        let key = self.def(task).key.clone();
        let id = self.journal.attempt_started(
            &self.handle,
            &key,
            self.journal_attempt(task, 1),
            0,
            supervisor::unix_ms(),
        )?;
        let fin = Finished {
            task,
            attempt: 1,
            class: ExitClass::Failed,
            requeued: false,
            reason: reason.to_string(),
            code: None,
            signal: None,
            duration: Duration::ZERO,
            peak: Bytes::ZERO,
            peak_rss: Bytes::ZERO,
            peak_pss: None,
        };
        self.finish_attempt(id, &fin, None)
    }

    fn next_flush(&self) -> Option<Duration> {
        Some(self.last_commit + BACKGROUND_COMMIT)
    }

    fn note(&mut self, _now: Duration, note: &Note) -> Result<()> {
        let (kind, detail, line) = match note {
            Note::Paused { why } => (
                "paused",
                json!({ "why": why }),
                format!("pause   admission paused: {why}"),
            ),
            Note::Resumed => (
                "resumed",
                json!({}),
                "resume  admission resumed".to_string(),
            ),
            Note::LearnedPeak { peak } => (
                "learned_peak",
                json!({ "peak": peak }),
                format!("learn   typical peak now {peak}"),
            ),
            Note::Brake { task, why } => (
                "brake",
                json!({ "task": self.def(*task).key, "why": why }),
                format!("brake   {}  {why}", self.label(*task)),
            ),
        };
        self.journal
            .event(&self.handle, supervisor::unix_ms(), kind, &detail)?;
        self.pending.push(line);
        Ok(())
    }

    fn flush(&mut self, now: Duration, snapshot: &Snapshot) -> Result<()> {
        self.host_trace
            .sample(&mut self.journal, &self.handle, now, snapshot)?;
        let since = now.saturating_sub(self.last_commit);
        // Completions of one tick share a commit; starts and samples ride along, or go
        // in the background commit so that `status` sees them.
        if self.completions_pending || since >= BACKGROUND_COMMIT || snapshot.running == 0 {
            self.commit(now)?;
        }
        self.stats.peak_used = self.stats.peak_used.max(snapshot.used);
        self.printer
            .update(snapshot, self.stats.done + self.stats.failed);
        Ok(())
    }
}

impl RunSink<'_> {
    /// Commits the journal, then prints what waited for it.
    fn commit(&mut self, now: Duration) -> Result<()> {
        // Durable first, then reported.
        self.journal.commit().context(
            "cannot commit to the journal (disk full?); stopped: what was committed is kept, rerun to resume",
        )?;
        self.last_commit = now;
        self.completions_pending = false;
        for line in self.pending.drain(..) {
            self.printer.event(&line);
        }
        Ok(())
    }

    fn finish_attempt(&mut self, id: i64, fin: &Finished, result: Option<String>) -> Result<()> {
        let class = fin.class.as_str();
        self.journal.attempt_finished(
            id,
            &AttemptEnd {
                ended_unix_ms: supervisor::unix_ms(),
                duration_ms: fin.duration.as_millis() as u64,
                peak_rss: fin.peak_rss.get(),
                peak_pss: fin.peak_pss.map(|p| p.get()),
                class: class.to_string(),
                code: fin.code,
                signal: fin.signal,
                reason: fin.reason.clone(),
                requeued: fin.requeued,
                result,
            },
        )?;
        let verb = match (fin.class, fin.requeued) {
            (ExitClass::Done, _) => {
                self.stats.done += 1;
                "done   "
            }
            (ExitClass::Braked, true) | (ExitClass::OomKilled, true) => {
                self.stats.braked += 1;
                "requeue"
            }
            (ExitClass::Interrupted, _) => "stopped",
            (_, true) => "retry  ",
            (_, false) => {
                self.stats.failed += 1;
                let (_, err, _) = self.files(fin.task, fin.attempt);
                let what = format!("{}: {} ({})", self.label(fin.task), fin.reason, class);
                self.stats.failures.push((what, err));
                "failed "
            }
        };
        let detail = if fin.class == ExitClass::Done {
            format!("{} peak {}", format_duration(fin.duration), fin.peak)
        } else {
            format!(
                "{} (after {}, peak {})",
                fin.reason,
                format_duration(fin.duration),
                fin.peak
            )
        };
        self.pending
            .push(format!("{verb} {}  {detail}", self.label(fin.task)));
        self.completions_pending = true;
        Ok(())
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}

/// Progress: a bar with a memory gauge on a terminal, timestamped lines otherwise.
struct Printer {
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    budget: Bytes,
    /// Tasks done before this run started.
    base: usize,
}

impl Printer {
    fn new(mode: Progress, total: usize, done: usize, budget: Bytes) -> Printer {
        let tty = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            Progress::None => (false, false),
            Progress::Plain => (false, true),
            Progress::Bar => (true, false),
            Progress::Auto => (tty, !tty),
        };
        let bar = bar.then(|| {
            let pb = indicatif::ProgressBar::new(total as u64);
            pb.set_position(done as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} done  {msg}  eta {eta}",
            ) {
                pb.set_style(style);
            }
            pb
        });
        Printer {
            bar,
            plain,
            budget,
            base: done,
        }
    }

    /// A line that always shows (start-of-run, summary).
    fn line(&self, text: &str) {
        match &self.bar {
            // A bar drawn to no terminal is hidden and would swallow the line.
            Some(pb) if !pb.is_hidden() => pb.println(format!("ramguard: {text}")),
            _ => eprintln!("ramguard: {text}"),
        }
    }

    /// A start/finish/brake line: on the bar's scrollback, or timestamped in plain mode.
    fn event(&self, text: &str) {
        if let Some(pb) = &self.bar {
            pb.println(text);
        } else if self.plain {
            let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            eprintln!("{ts} {text}");
        }
    }

    fn update(&self, s: &Snapshot, finished: usize) {
        if let Some(pb) = &self.bar {
            pb.set_position((self.base + finished) as u64);
            pb.set_message(format!(
                "{} running  mem {} / {}  available {}",
                s.running, s.used, self.budget, s.available
            ));
        }
    }

    fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}
