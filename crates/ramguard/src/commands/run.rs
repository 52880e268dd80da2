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
use crate::render::notes::Words;
use crate::supervisor::{
    self, tree::TreeMemory, Finished, HostWatch, Launch, RunEnd, Sink, Snapshot, Supervisor,
};
use crate::sweep_file;
use crate::Outcome;

mod danger;
mod host_trace;
mod leak;
pub(crate) mod logs;
mod naming;
mod progress;
pub(crate) mod restart;
mod text;
mod validate;

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
/// product of the `:::` lists; `:::: FILE` reads values one a line, `:::+`/`::::+` link a
/// list to the previous one), `--grid NAME=V1,V2 -- CMD {NAME}`, `--tasks FILE`,
/// `--repeat N -- CMD`, or a sweep file `ramguard run sweep.toml`. A lone `-- CMD ARGS`
/// takes values from stdin when it is a pipe or a file, and runs once otherwise.
///
/// A closed stdout or stderr (`| head`) or a hangup (SIGHUP) stops the printing, never the
/// sweep.
#[derive(Debug, clap::Args)]
#[command(after_long_help = restart::TASK_ENV_HELP)]
pub struct RunArgs {
    /// A sweep file (TOML): name, command template, grid or task list, options.
    #[arg(value_name = "SWEEP.toml")]
    pub sweep_file: Option<PathBuf>,

    /// The command template and, after `:::`, the values (GNU parallel's convention;
    /// also `::::`, `:::+`, `::::+`). Placeholders: `{}`, `{1}`, `{NAME}`, `{#}` (task
    /// number), and the path parts `{.}` `{/}` `{//}` `{/.}` (also `{1.}`, `{NAME/}`, ..).
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
    /// when given, else the effective limit), at least 256 MiB, at most 25%, and always
    /// above the brake]. Tasks are paused as available memory nears it; the brake fires
    /// lower, at half of it or just above the host's danger line (a watchdog's min-memory,
    /// earlyoom's threshold, else 256 MiB on all but tiny machines), whichever is higher:
    /// `--dry-run` shows the levels and where they come from.
    #[arg(long, value_name = "SIZE|PCT", value_parser = parse_size_spec)]
    pub reserve: Option<SizeSpec>,

    /// Peak memory to assume for a task before any has been measured.
    #[arg(long, value_name = "SIZE", value_parser = parse_abs_size)]
    pub estimate: Option<Bytes>,

    /// Kill a task whose memory exceeds SIZE (failed: over cap). A task's memory is what
    /// its process tree holds (shared pages once) plus the /dev/shm files it created.
    #[arg(long, value_name = "SIZE", value_parser = parse_abs_size)]
    pub task_mem: Option<Bytes>,

    /// Also remove the /dev/shm files a task created and left behind when it ended by
    /// itself (files of tasks ramguard stops are always removed once no process holds them).
    #[arg(long)]
    pub shm_cleanup: bool,

    /// Kill a task that runs longer than DUR (failed: timed out); time it spends paused for
    /// memory does not count.
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub timeout: Option<Duration>,

    /// Time between TERM and KILL when ramguard stops a task [default: 10s].
    #[arg(long, value_name = "DUR", value_parser = parse_dur)]
    pub grace: Option<Duration>,

    /// Extra attempts for a task whose attempt ended in one of `--retry-on`'s endings (by
    /// default a nonzero exit or a foreign signal); brakes, kernel OOM kills and
    /// `--recycle` restarts never count [default: 0].
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    #[command(flatten)]
    pub restart: restart::RestartArgs,

    /// Threads for BLAS/OpenMP/etc. in every task, at least 1 (OMP_NUM_THREADS and nine more); if you
    /// exported any of them, the ones you did not export follow your value [default: 1].
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

    /// Directory for each attempt's stdout/stderr, `<id>.<attempt>.{out,err}` (`<id>`: a
    /// short hash of the task's identity, the same in every run), each created when the
    /// attempt first writes to it; folders ramguard creates are 0700, files 0600
    /// [default: .ramguard/logs/<sweep>].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// The sweep's name in the journal [default: the sweep file's name, else the sweep that
    /// runs this command, else one derived from the script: `train`, `train-2`, ..].
    #[arg(long)]
    pub name: Option<String>,

    /// Forget this sweep's journal entries and start over (also lets a chosen --name move
    /// to another command).
    #[arg(long)]
    pub fresh: bool,

    /// On a rerun, leave tasks that failed before alone.
    #[arg(long)]
    pub skip_failed: bool,

    /// The journal file [default: ./.ramguard/journal.db].
    #[arg(long, value_name = "PATH", env = "RAMGUARD_JOURNAL")]
    pub journal: Option<PathBuf>,

    /// Where tasks run: here, or each as a Slurm job (`sbatch`) whose `--mem` is sized
    /// from the learned peaks. With slurm, `-j` bounds the jobs in flight (32 unless
    /// given), and this ramguard binary and the working directory must be at the same
    /// paths on the compute nodes (a shared filesystem).
    #[arg(long, value_enum, default_value_t = crate::slurm::Executor::Local)]
    pub executor: crate::slurm::Executor,

    /// With `--executor slurm`: the partition to submit to [default: Slurm's default].
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,

    /// With `--executor slurm`: one more argument for every `sbatch` (repeat for more), as
    /// `--slurm-arg=--qos=low`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub slurm_arg: Vec<String>,

    /// With `--executor slurm`: how often to ask Slurm (one `sacct` for all jobs in
    /// flight) [default: 5s].
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub slurm_poll: Option<Duration>,
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
    /// Every thread variable as a task sees it.
    pub thread_env: std::collections::BTreeMap<String, String>,
    #[serde(skip)]
    pub thread_caps: supervisor::spawn::ThreadCaps,
    #[serde(flatten)]
    pub restart: restart::RestartSettings,
    pub effective_limit: Bytes,
    pub limit_source: String,
    /// The danger line the levels sit above, and the host's killers.
    pub danger: danger::Danger,
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
    /// The name the user chose, else the one derived from the command (the journal may
    /// suffix it, `train-2`, when another command holds it).
    name: String,
    /// True if and only if the user chose the name (`--name`, a sweep file's `name`).
    chosen: bool,
    template: String,
    tasks: Vec<TaskDef>,
    /// Param names in the order the user wrote them, for the columns of `results`.
    param_order: Vec<String>,
    file_options: sweep_file::SweepOptions,
}

pub fn run(args: &RunArgs) -> Result<Outcome> {
    crate::slurm::check_args(args)?;
    let mut sweep = build_sweep(args)?;
    let root = Root::host();
    let report = probe::report(&root)?;
    let settings = resolve(args, &sweep.file_options, &report)?;
    // Every input is checked before the journal or any folder is created or changed.
    validate::name(&sweep.name)?;
    validate::settings(settings.task_mem)?;
    validate::commands(&sweep.tasks)?;
    if args.dry_run {
        // The name this run would get, read from the journal without writing to it.
        let path = args.journal.clone().unwrap_or_else(journal::default_path);
        let fp = journal::fingerprint(&sweep.template, &json!({ "shell": args.shell }));
        let chosen = sweep.chosen.then_some(sweep.name.as_str());
        if let Some(choice) =
            journal::identity::peek_name(&path, chosen, &sweep.name, &fp, &sweep.template)
        {
            sweep.name = choice.name;
        }
        dry_run(args, &sweep, &settings)?;
        return Ok(Outcome::Success);
    }

    // The journal: identity, lock, resume.
    let journal_path = args.journal.clone().unwrap_or_else(journal::default_path);
    validate::journal(&journal_path)?;
    validate::log_dir(
        &args
            .log_dir
            .clone()
            .unwrap_or_else(|| default_log_dir(&journal_path, &sweep.name)),
        args.log_dir.is_some(),
    )?;
    let mut journal = Journal::open(&journal_path)?;
    let fingerprint = journal::fingerprint(&sweep.template, &json!({ "shell": args.shell }));
    let choice = journal.choose_name(
        sweep.chosen.then_some(sweep.name.as_str()),
        &sweep.name,
        &fingerprint,
        &sweep.template,
    )?;
    sweep.name = choice.name.clone();
    let spec = SweepSpec {
        name: sweep.name.clone(),
        fingerprint,
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
    journal.set_param_order(&handle, &sweep.param_order)?;
    journal.commit()?;

    // Every finished task of the sweep teaches, those of earlier runs with other values too:
    // their features are read from their identity keys beside this run's tasks, so that the
    // columns line up.
    let learned = journal.learned_history(&handle)?;
    let current: std::collections::HashSet<&str> =
        sweep.tasks.iter().map(|t| t.key.as_str()).collect();
    let mut known: Vec<TaskDef> = sweep.tasks.clone();
    known.extend(
        learned
            .iter()
            .filter(|l| !current.contains(l.key.as_str()))
            .filter_map(|l| TaskDef::from_key(&l.key)),
    );
    let known_features = tasks::features(&known);
    let features = &known_features[..sweep.tasks.len()];
    let feature_of: HashMap<&str, &Vec<f64>> = known
        .iter()
        .zip(&known_features)
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
    let config = match args.executor {
        crate::slurm::Executor::Local => policy_config(&settings),
        crate::slurm::Executor::Slurm => crate::slurm::policy_config(&settings, args),
    };
    let mut policy =
        Policy::new(config, specs).with_restarts(restart::policy_restarts(&settings.restart));
    let history: Vec<(Vec<f64>, Observation)> = learned
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
    // How each task's last attempt ended, for `RAMGUARD_PREVIOUS_END` on its next one.
    let endings = journal.last_endings(handle.id)?;
    let sink_previous: HashMap<TaskId, journal::task_env::Ending> = todo
        .iter()
        .enumerate()
        .filter_map(|(id, &i)| Some((id, endings.get(&sweep.tasks[i].key)?.clone())))
        .collect();

    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| default_log_dir(&journal_path, &sweep.name));
    // Private: 0700 whatever the umask; ramguard's own default folder is tightened too.
    if args.journal.is_none() {
        // `./.ramguard` is ramguard's own: private even if an older version made it 0755.
        if let Some(own) = journal_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            logs::private_dir(own, true)
                .with_context(|| format!("cannot create directory {}", own.display()))?;
        }
    }
    if args.log_dir.is_none() {
        if let Some(logs_root) = log_dir.parent() {
            logs::private_dir(logs_root, true)
                .with_context(|| format!("cannot create log directory {}", logs_root.display()))?;
        }
    }
    logs::private_dir(&log_dir, args.log_dir.is_none())
        .with_context(|| format!("cannot create log directory {}", log_dir.display()))?;
    if args.executor == crate::slurm::Executor::Slurm {
        return crate::slurm::run(crate::slurm::SlurmRun {
            args,
            settings: &settings,
            sweep: &sweep.name,
            journal_path: &journal_path,
            journal,
            handle,
            tasks: &sweep.tasks,
            features,
            todo: &todo,
            prior_attempts: todo.iter().map(|&i| records[i].attempts).collect(),
            policy,
            log_dir: &log_dir,
            already: (already_done, already_failed),
        });
    }

    let total = sweep.tasks.len();
    let printer = Printer::new(args.progress, total, already_done, settings.budget);
    if let Some((taken, other)) = &choice.taken {
        printer.line(&format!(
            "new sweep '{}': '{taken}' runs another command ({other}); see `ramguard list`",
            sweep.name
        ));
    }
    if let Some(w) = &settings.thread_caps.warning {
        printer.line(&format!("warning: {w}"));
    }
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
        thread_env: settings.thread_caps.env.clone(),
        threads_applied: settings.thread_env.clone(),
        previous: sink_previous,
        restart: settings.restart.clone(),
        grace: settings.grace,
        python_hint_due: args.repeat.is_some(),
        printer,
        progress: progress::ProgressLog::default(),
        pending: Vec::new(),
        stats: Stats::default(),
        samples: HashMap::new(),
        last_commit: Duration::ZERO,
        completions_pending: false,
        leaks: leak::Leaks::new(settings.budget, settings.task_mem),
        host_trace: host_trace::HostTrace::default(),
    };
    let mut sup = Supervisor::new(HostWatch::new(root, &report))?;
    sup.set_stop_signal(settings.restart.stop_signal.0);
    sup.set_shm_cleanup(args.shm_cleanup);
    let end = sup.run(&mut policy, &mut sink)?;
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
        "recycled": stats.recycled,
        "pauses": stats.pauses,
        "paused_ms": stats.paused.as_millis() as u64,
        "interrupted": interrupted,
        "peak_used": stats.peak_used,
        "leftovers_killed": stats.leftovers,
        "shm_removed": stats.shm_removed,
        "shm_left": stats.shm_left.iter().map(|(task, files)| json!({"task": task, "files": files})).collect::<Vec<_>>(),
        "budget": settings.budget,
        "journal": journal_path.display().to_string(),
    });
    if args.json {
        // A closed stdout loses the summary, not the outcome: the exit code still tells.
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut out, &summary).map(|()| writeln!(out));
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
    if stats.recycled > 0 {
        line.push_str(&format!(", {} recycle(s)", stats.recycled));
    }
    if stats.leftovers > 0 {
        line.push_str(&format!(
            "; killed {} leftover process(es) of {} task(s) after their first process exited",
            stats.leftovers, stats.leftover_tasks
        ));
    }
    if stats.pauses > 0 {
        line.push_str(&format!(
            ", {} pause(s) ({} paused in all)",
            stats.pauses,
            format_duration(stats.paused)
        ));
    }
    if interrupted {
        line.push_str(&format!(
            "; interrupted with {not_run} not done (rerun the same command to resume)"
        ));
    }
    line.push_str(&format!("; results: ramguard results {}", sweep.name));
    for (label, files) in &stats.shm_left {
        sink.printer.line(&format!(
            "shm {label} left {} in /dev/shm; rerun with --shm-cleanup to remove such files",
            files_words(files)
        ));
    }
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
    base.join("logs").join(logs::dir_name(sweep))
}

/// Builds the task list from exactly one source.
fn build_sweep(args: &RunArgs) -> Result<Sweep> {
    let (template_args, inputs) = tasks::split_inputs(&args.command)?;
    let sources = [
        args.sweep_file.is_some(),
        !inputs.is_empty(),
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
        let chosen = args.name.clone().or(file.name.clone());
        let name = chosen.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into())
        });
        // A sweep file's params come sorted; its template says the order they are used in.
        let order = param_order(Some(&file.template), &file.tasks);
        return finish_sweep(
            (name, chosen.is_some()),
            file.template.display(),
            file.tasks,
            order,
            file.options,
        );
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
    let mut lists = if inputs.is_empty() {
        None
    } else {
        Some(read_inputs(&inputs)?)
    };
    let wants_values = template
        .as_ref()
        .is_some_and(|t| t.placeholders().iter().any(|p| p != tasks::SEQ));
    // GNU parallel's habit: with no other source, values come from stdin when it is a pipe
    // or a file. A terminal or /dev/null — or an empty pipe, as cron gives, when the
    // command has no placeholder to fill — leaves a lone command to run once.
    if n_sources == 0 && stdin_has_data() {
        let stdin = read_inputs(&[tasks::Input {
            source: tasks::InputSource::File("-".into()),
            linked: false,
        }])?;
        if !stdin[0].values.is_empty() {
            lists = Some(stdin);
        } else if wants_values {
            bail!("no tasks: stdin is empty; give values on stdin, or after `:::` or `::::`");
        }
    }
    let (defs, ordered) = if let Some(lists) = lists {
        (
            tasks::linked_product(need("`:::`")?, &lists, args.shell)?,
            true,
        )
    } else if !args.grid.is_empty() {
        let axes = args
            .grid
            .iter()
            .map(|g| tasks::parse_grid(g))
            .collect::<Result<Vec<_>, _>>()?;
        (tasks::grid(need("--grid")?, &axes, args.shell)?, true)
    } else if let Some(file) = &args.tasks {
        let text = read_tasks_file(file)?;
        let defs = tasks::from_lines(&text, template.as_ref(), args.shell)
            .map_err(|e| anyhow::anyhow!("{}: {e}", if file == "-" { "stdin" } else { file }))?;
        (defs, false)
    } else {
        // A lone `-- CMD ARGS` is one task: supervised, capped and journaled like any other.
        if args.repeat.is_none() && wants_values {
            bail!(
                "the command has placeholders but no values: give them after `:::`, with \
                 `:::: FILE`, or on stdin (a pipe or a file)"
            );
        }
        let n = args.repeat.unwrap_or(1);
        if n == 0 {
            bail!("--repeat must be at least 1");
        }
        (tasks::repeat(need("--repeat")?, n, args.shell)?, true)
    };
    let template_text = match &template {
        Some(t) => t.display(),
        // Raw command lines have no template: the file they come from is the sweep.
        None => format!(
            "tasks from {}",
            args.tasks.as_deref().map_or("-".into(), |f| Path::new(f)
                .components()
                .collect::<PathBuf>()
                .display()
                .to_string())
        ),
    };
    let chosen = args.name.is_some();
    let name = args.name.clone().unwrap_or_else(|| {
        naming::derive_name(template.as_ref().map(|_| template_args.as_slice()), &defs)
    });
    // Grid axes and `:::` lists keep the order they were typed in; JSON lines come sorted,
    // so the template's placeholders give their order.
    let order = param_order(template.as_ref().filter(|_| !ordered), &defs);
    finish_sweep(
        (name, chosen),
        template_text,
        defs,
        order,
        sweep_file::SweepOptions::default(),
    )
}

/// Param names (without `#`) in the order the template uses them, if given, then in order
/// of first appearance in the tasks.
fn param_order(template: Option<&Template>, defs: &[TaskDef]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let used = template.map(Template::placeholders).unwrap_or_default();
    let all_names = defs.iter().flat_map(|t| t.params.iter().map(|(k, _)| k));
    for name in used.iter().chain(all_names) {
        let known = defs.iter().any(|t| t.param(name).is_some());
        if known && name != tasks::SEQ && !order.contains(name) {
            order.push(name.clone());
        }
        if order.len() > 64 {
            break;
        }
    }
    order
}

/// Returns true if and only if stdin is a pipe or a regular file (not a terminal, not
/// /dev/null, not closed).
fn stdin_has_data() -> bool {
    use rustix::fs::FileType;
    rustix::fs::fstat(std::io::stdin()).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Fifo | FileType::RegularFile
        )
    })
}

/// Reads the values of every `::::` file (`-` is stdin) and names each source for errors.
fn read_inputs(inputs: &[tasks::Input]) -> Result<Vec<tasks::ValueList>> {
    let mut n_typed = 0;
    inputs
        .iter()
        .map(|input| {
            let (values, origin) = match &input.source {
                tasks::InputSource::Values(v) => {
                    n_typed += 1;
                    (v.clone(), format!("::: list {n_typed}"))
                }
                tasks::InputSource::File(f) => {
                    let (text, origin) = if f == "-" {
                        (read_tasks_file(f)?, "stdin".to_string())
                    } else {
                        let text = std::fs::read_to_string(f)
                            .with_context(|| format!("cannot read input file {f} (after ::::)"))?;
                        (text, format!("input file {f}"))
                    };
                    (tasks::values_of_text(&text), origin)
                }
            };
            Ok(tasks::ValueList {
                values,
                linked: input.linked,
                origin,
            })
        })
        .collect()
}

fn finish_sweep(
    (name, chosen): (String, bool),
    template: String,
    tasks: Vec<TaskDef>,
    param_order: Vec<String>,
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
        chosen,
        template,
        tasks,
        param_order,
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

/// Resolves the options (CLI over sweep file over defaults) against the probed host.
fn resolve(
    args: &RunArgs,
    file: &sweep_file::SweepOptions,
    report: &probe::HostReport,
) -> Result<Settings> {
    let limit = report.memory.effective.limit;
    let mem = args.mem.or(file.mem);
    let base = mem.map_or(limit, |m| m.resolve(limit));
    let user_reserve = args.reserve.or(file.reserve).map(|r| r.resolve(base));
    let danger = danger::Danger::resolve(report, base, user_reserve);
    let reserve = danger.levels.reserve;
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
    if threads == Some(0) {
        bail!("--threads must be at least 1 (tasks would get OMP_NUM_THREADS=0); hint: pass --no-thread-caps to leave the variables alone");
    }
    // Above every killer the host has (a watchdog's min-memory, earlyoom), or a floor.
    let brake_level = danger.levels.brake;
    let thread_caps = supervisor::thread_caps(threads, args.threads.or(file.threads).is_some());
    let task_mem = args.task_mem.or(file.task_mem);
    Ok(Settings {
        jobs,
        budget,
        reserve,
        brake_level,
        hard_level: danger.levels.hard,
        danger,
        estimate: args.estimate.or(file.estimate),
        task_mem: args.task_mem.or(file.task_mem),
        timeout: args.timeout.or(file.timeout),
        grace: args.grace.or(file.grace).unwrap_or(Duration::from_secs(10)),
        retries: args.retries.or(file.retries).unwrap_or(0),
        threads,
        thread_env: thread_caps.applied.clone(),
        thread_caps,
        restart: restart::resolve(&args.restart, file, task_mem.is_some())?,
        effective_limit: limit,
        limit_source: report.memory.effective.limit_source.file.clone(),
    })
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
    for line in s.danger.describe() {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "jobs       {}", s.jobs)?;
    let room = s.budget.min(s.effective_limit.saturating_sub(s.reserve));
    let start = progress::cold_start_line(room, s.jobs, s.estimate.is_some());
    writeln!(out, "{start}")?;
    writeln!(
        out,
        "estimate   {}   task cap {}   timeout {}   grace {}   retries {}",
        s.estimate.map_or("learned".into(), |b| b.to_string()),
        s.task_mem.map_or("none".into(), |b| b.to_string()),
        s.timeout.map_or("none".into(), format_duration),
        format_duration(s.grace),
        s.retries
    )?;
    writeln!(out, "threads    {}", restart::threads_line(s))?;
    writeln!(
        out,
        "restarts   {}",
        restart::restarts_line(&s.restart, s.retries)
    )?;
    writeln!(out, "tasks      {}", sweep.tasks.len())?;
    for (i, t) in sweep.tasks.iter().enumerate() {
        writeln!(
            out,
            "  {:>4}  {}",
            i + 1,
            text::escape(&shell_words::join(&t.argv))
        )?;
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
    /// Restarts by `--recycle`.
    recycled: usize,
    peak_used: Bytes,
    /// Processes killed because they outlived their task's first process, and in how many
    /// tasks.
    leftovers: usize,
    leftover_tasks: usize,
    /// /dev/shm files tasks left behind (task label, files), and how many ramguard removed.
    shm_left: Vec<(String, Vec<supervisor::shm::TaskFile>)>,
    shm_removed: usize,
    /// Pauses (SIGSTOP for memory) and the time tasks spent paused, summed.
    pauses: usize,
    paused: Duration,
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
    /// Every thread variable as a task sees it, recorded per attempt.
    threads_applied: journal::task_env::ThreadEnv,
    /// How each task's latest attempt ended (this run or the journal's).
    previous: HashMap<TaskId, journal::task_env::Ending>,
    restart: restart::RestartSettings,
    grace: Duration,
    /// The hint about Python workers dying of SIGTERM is still to be given (`--repeat`
    /// sweeps: N workers of one command, as Optuna's worker mode runs).
    python_hint_due: bool,
    printer: Printer,
    progress: progress::ProgressLog,
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
    /// The highest figures since the last row, and when the highest memory was seen.
    pending: Option<(Duration, MemSample)>,
}

impl Timeline {
    fn take_row(&mut self) -> Option<MemSample> {
        let (at, row) = self.pending.take()?;
        self.last_written = Some(at);
        Some(MemSample {
            t_ms: at.saturating_sub(self.started).as_millis() as u64,
            ..row
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
        let text: String = text::escape(&text).chars().take(60).collect();
        format!("#{} {text}", self.todo[task] + 1)
    }

    /// An attempt's files, named by the task's identity (never its position in this run).
    fn files(&self, task: TaskId, attempt: u32) -> (PathBuf, PathBuf, PathBuf) {
        let n = logs::file_stem(&self.handle.name, &self.def(task).key);
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
        env.extend(restart::task_env(
            self.previous.get(&task),
            &self.restart,
            self.grace,
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
        if !self.threads_applied.is_empty() {
            self.journal.attempt_threads(id, &self.threads_applied)?;
        }
        let retry = if attempt > 1 {
            format!(" (attempt {a})")
        } else {
            String::new()
        };
        // Nothing measured and no --estimate: say so rather than "predicted 0 B".
        let predicted = if predicted == Bytes::ZERO {
            "nothing predicted yet".to_string()
        } else {
            format!("predicted {predicted}")
        };
        let line = format!(
            "start   {}{retry}  pid {pid}, {predicted}",
            self.label(task)
        );
        self.printer.event(&line);
        Ok(())
    }

    fn sample(&mut self, now: Duration, task: TaskId, memory: &TreeMemory) -> Result<()> {
        let Some(t) = self.samples.get_mut(&task) else {
            return Ok(());
        };
        let row = MemSample {
            t_ms: 0,
            rss: memory.rss.get(),
            pss: memory.pss.map(Bytes::get),
            used: Some(memory.used.get()),
            shm: Some(memory.shm.get()),
            virt: Some(memory.virt.get()),
        };
        t.pending = Some(match t.pending {
            Some((at, p)) => {
                let at = if row.used > p.used { now } else { at };
                (
                    at,
                    MemSample {
                        t_ms: 0,
                        rss: p.rss.max(row.rss),
                        pss: p.pss.max(row.pss),
                        used: p.used.max(row.used),
                        shm: p.shm.max(row.shm),
                        virt: p.virt.max(row.virt),
                    },
                )
            }
            None => (now, row),
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
        logs::make_private(&result_path);
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
            ending: None,
            duration: Duration::ZERO,
            peak: Bytes::ZERO,
            peak_rss: Bytes::ZERO,
            peak_pss: None,
            leftovers: 0,
            peak_shm: Bytes::ZERO,
            peak_virt: Bytes::ZERO,
            shm: Default::default(),
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
                json!({ "why": why.words() }),
                format!("pause   admission paused: {}", why.words()),
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
                json!({ "task": self.def(*task).key, "why": why.words() }),
                format!("brake   {}  {}", self.label(*task), why.words()),
            ),
            Note::TaskPaused { task, why } => {
                self.stats.pauses += 1;
                (
                    "task_paused",
                    json!({ "task": self.def(*task).key, "why": why.words() }),
                    format!("pause   {}  {}", self.label(*task), why.words()),
                )
            }
            Note::TaskResumed { task, paused_for } => {
                self.stats.paused += *paused_for;
                (
                    "task_resumed",
                    json!({ "task": self.def(*task).key, "paused_ms": paused_for.as_millis() as u64 }),
                    format!(
                        "resume  {}  after {} paused",
                        self.label(*task),
                        format_duration(*paused_for)
                    ),
                )
            }
        };
        self.journal
            .event(&self.handle, supervisor::unix_ms(), kind, &detail)?;
        self.pending.push(line);
        Ok(())
    }

    fn flush(&mut self, now: Duration, snapshot: &Snapshot) -> Result<()> {
        if let Some(due) = self.progress.due(now, snapshot) {
            let at = supervisor::unix_ms();
            self.journal
                .event(&self.handle, at, "progress", &due.detail)?;
            if let Some(line) = due.line.filter(|_| self.printer.plain) {
                self.pending.push(line);
            }
        }
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
                peak: Some(fin.peak.get()),
                peak_shm: Some(fin.peak_shm.get()),
                peak_virt: Some(fin.peak_virt.get()),
                shm_left: files_json(&fin.shm.left),
                shm_removed: files_json(&fin.shm.removed),
                class: fin.class,
                ending: fin.ending,
                reason: fin.reason.clone(),
                requeued: fin.requeued,
                result,
            },
        )?;
        self.previous.insert(
            fin.task,
            journal::task_env::Ending {
                class: class.to_string(),
                reason: fin.reason.clone(),
                peak: Some(fin.peak_rss.get()),
            },
        );
        if self.python_hint_due
            && restart::unhandled_python_stop(&self.def(fin.task).argv, class, fin.signal())
            && self.restart.stop_signal.number() == 15
        {
            self.python_hint_due = false;
            self.printer
                .line(&format!("hint: {}", restart::PYTHON_STOP_HINT));
        }
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
            (ExitClass::OverCap | ExitClass::MaxAge, true) if self.restart.recycle.is_some() => {
                self.stats.recycled += 1;
                "recycle"
            }
            (_, true) => "retry  ",
            (_, false) => {
                self.stats.failed += 1;
                let (_, err, _) = self.files(fin.task, fin.attempt);
                let what = format!("{}: {} ({})", self.label(fin.task), fin.reason, class);
                self.stats.failures.push((what, err));
                "failed "
            }
        };
        if fin.leftovers > 0 {
            self.stats.leftovers += fin.leftovers;
            self.stats.leftover_tasks += 1;
            self.journal.event(
                &self.handle,
                supervisor::unix_ms(),
                "leftovers_killed",
                &json!({
                    "task": self.def(fin.task).key,
                    "attempt": self.journal_attempt(fin.task, fin.attempt),
                    "processes": fin.leftovers,
                }),
            )?;
        }
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
        self.pending
            .push(format!("{verb} {}  {detail}", self.label(fin.task)));
        if !fin.shm.removed.is_empty() {
            self.stats.shm_removed += fin.shm.removed.len();
            self.pending.push(format!(
                "shm     {}  removed {} from /dev/shm",
                self.label(fin.task),
                files_words(&fin.shm.removed)
            ));
        }
        if !fin.shm.left.is_empty() {
            self.pending.push(format!(
                "shm     {}  left {} in /dev/shm (--shm-cleanup removes them)",
                self.label(fin.task),
                files_words(&fin.shm.left)
            ));
            self.stats
                .shm_left
                .push((self.label(fin.task), fin.shm.left.clone()));
        }
        self.completions_pending = true;
        Ok(())
    }
}

/// A list of shm files as JSON for the journal, or nothing when there are none.
fn files_json(files: &[supervisor::shm::TaskFile]) -> Option<String> {
    (!files.is_empty()).then(|| json!(files).to_string())
}

/// "2 files (600 MiB): a, b".
fn files_words(files: &[supervisor::shm::TaskFile]) -> String {
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
fn progress_message(s: &Snapshot, budget: Bytes) -> String {
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

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}

/// Returns true if and only if SIGHUP is ignored (ramguard was started under `nohup`).
fn sighup_ignored() -> bool {
    // SAFETY: with a null new action, sigaction only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Progress: a bar with a memory gauge on a terminal, timestamped lines otherwise.
///
/// Losing the display never stops the work: a write to a closed pipe (`| head`) or a hung-up
/// terminal fails quietly and printing stops for the rest of the run, while the supervisor
/// goes on and the journal keeps every result. SIGHUP (a closed terminal or ssh session)
/// is taken the way `nohup` takes it: ramguard keeps supervising, and stops printing if
/// stderr is that terminal (to a file or pipe it goes on printing);
/// Ctrl-C or SIGTERM stop a run.
struct Printer {
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    budget: Bytes,
    /// Tasks done before this run started.
    base: usize,
    /// Set once a write to stderr failed or SIGHUP arrived: nothing more is printed.
    lost: std::cell::Cell<bool>,
    hangup: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// stderr is a terminal: only then does a hangup mean the display is gone (a run
    /// started with `> run.log 2>&1 &` keeps logging after its terminal closes).
    tty: bool,
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
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} done  {msg}")
            {
                pb.set_style(style);
            }
            pb
        });
        let hangup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The handler only sets a flag; tasks get the default disposition back at exec.
        // Under `nohup` SIGHUP is already ignored, and tasks inherit that: leave it so.
        if !sighup_ignored() {
            let _ = signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone());
        }
        Printer {
            bar,
            plain,
            budget,
            base: done,
            lost: std::cell::Cell::new(false),
            hangup,
            tty,
        }
    }

    /// Returns true if and only if the display is still there to print to.
    fn alive(&self) -> bool {
        if self.lost.get() {
            return false;
        }
        if self.tty && self.hangup.load(std::sync::atomic::Ordering::Relaxed) {
            self.lose();
            return false;
        }
        true
    }

    /// Stops printing for good (and stops the bar drawing to a terminal that is gone).
    fn lose(&self) {
        self.lost.set(true);
        if let Some(pb) = &self.bar {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
    }

    /// Writes one line to stderr; a failed write means the display is gone.
    fn write(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        if writeln!(err, "{text}").and_then(|()| err.flush()).is_err() {
            self.lose();
        }
    }

    /// A line that always shows (start-of-run, summary).
    fn line(&self, text: &str) {
        if !self.alive() {
            return;
        }
        match &self.bar {
            // A bar drawn to no terminal is hidden and would swallow the line.
            Some(pb) if !pb.is_hidden() => pb.println(format!("ramguard: {text}")),
            _ => self.write(&format!("ramguard: {text}")),
        }
    }

    /// A start/finish/brake line: on the bar's scrollback, or timestamped in plain mode.
    fn event(&self, text: &str) {
        if !self.alive() {
            return;
        }
        if let Some(pb) = &self.bar {
            pb.println(text);
        } else if self.plain {
            let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            self.write(&format!("{ts} {text}"));
        }
    }

    fn update(&self, s: &Snapshot, finished: usize) {
        if !self.alive() {
            return;
        }
        if let Some(pb) = &self.bar {
            pb.set_position((self.base + finished) as u64);
            pb.set_message(progress_message(s, self.budget));
        }
    }

    fn finish(&self) {
        if let Some(pb) = &self.bar {
            if self.alive() {
                pb.finish_and_clear();
            }
        }
    }
}
