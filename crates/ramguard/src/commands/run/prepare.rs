//! The journal side of a run, before anything executes: choose the sweep's name (a new
//! command never takes another's), take the lock, close what a dead ramguard left open,
//! sync the task list, and build the policy with what earlier runs taught. Also the
//! private log folders. Whichever executor runs the sweep gets a [`Prepared`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use ramguard_core::policy::predict::Observation;
use ramguard_core::policy::{Policy, TaskId, TaskSpec};
use ramguard_core::tasks::{self, TaskDef};
use ramguard_core::Bytes;
use serde_json::json;

use super::sweep::{params_json, Sweep};
use crate::cli::run::RunArgs;
use crate::journal::{self, task_env::Ending, Journal, NewTask, SweepHandle, SweepSpec};
use crate::logs;
use crate::settings::Settings;
use crate::supervisor;

/// The journaled sweep, ready to execute.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub journal: Journal,
    pub handle: SweepHandle,
    pub journal_path: PathBuf,
    pub log_dir: PathBuf,
    /// Policy task id → index into the sweep's tasks.
    pub todo: Vec<usize>,
    /// Attempts recorded in earlier runs, per policy task id.
    pub prior_attempts: Vec<u32>,
    /// Numeric features of every task of the sweep (index into its tasks).
    pub features: Vec<Vec<f64>>,
    /// Tasks done, and failed ones left alone (`--skip-failed`), before this run.
    pub already: (usize, usize),
    /// How each task's last attempt ended, for `RAMGUARD_PREVIOUS_END` on its next one.
    pub previous: HashMap<TaskId, Ending>,
    /// When the derived name was taken by another command: that name and its command.
    pub name_taken: Option<(String, String)>,
    pub policy: Policy,
}

/// The journal file: `--journal`, `$RAMGUARD_JOURNAL`, else `./.ramguard/journal.db`.
pub(crate) fn journal_path(args: &RunArgs) -> PathBuf {
    args.journal.clone().unwrap_or_else(journal::default_path)
}

/// The fingerprint of the sweep's command, by which a rerun finds it.
pub(crate) fn fingerprint(args: &RunArgs, sweep: &Sweep) -> String {
    journal::fingerprint(&sweep.template, &json!({ "shell": args.shell }))
}

/// `--log-dir`, else `logs/<sweep>` beside the journal.
pub(crate) fn log_dir(args: &RunArgs, journal_path: &Path, sweep: &str) -> PathBuf {
    args.log_dir.clone().unwrap_or_else(|| {
        let base = journal_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        base.join("logs").join(logs::dir_name(sweep))
    })
}

/// Opens the journal and journals the sweep (its final name is set in `sweep`), then builds
/// the policy for `config`.
pub(crate) fn prepare(args: &RunArgs, sweep: &mut Sweep, settings: &Settings) -> Result<Prepared> {
    let journal_path = journal_path(args);
    super::validate::journal(&journal_path)?;
    super::validate::log_dir(
        &log_dir(args, &journal_path, &sweep.name),
        args.log_dir.is_some(),
    )?;
    let mut journal = Journal::open(&journal_path)?;
    let fingerprint = fingerprint(args, sweep);
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
        settings: serde_json::to_value(settings)?,
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
    let current: HashSet<&str> = sweep.tasks.iter().map(|t| t.key.as_str()).collect();
    let mut known: Vec<TaskDef> = sweep.tasks.clone();
    known.extend(
        learned
            .iter()
            .filter(|l| !current.contains(l.key.as_str()))
            .filter_map(|l| TaskDef::from_key(&l.key)),
    );
    let table = tasks::feature_table(&known);
    let kinds = table.kinds();
    let known_features = table.rows;
    let features = known_features[..sweep.tasks.len()].to_vec();
    let feature_of: HashMap<&str, &Vec<f64>> = known
        .iter()
        .zip(&known_features)
        .map(|(t, f)| (t.key.as_str(), f))
        .collect();
    let mut todo: Vec<usize> = Vec::new();
    let (mut already_done, mut already_failed) = (0usize, 0usize);
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
    let mut policy = Policy::new(settings.policy_for(args.executor), specs)
        .with_restarts(settings.restart.policy_restarts())
        .with_kinds(&kinds);
    let history: Vec<(Vec<f64>, Observation)> = learned
        .into_iter()
        .filter_map(|l| {
            let obs = Observation {
                peak: Bytes(l.peak),
                duration: l.duration_ms.map(Duration::from_millis),
                time_to_peak: l.time_to_peak_ms.map(Duration::from_millis),
                quiet: l
                    .quiet
                    .map(|(t, held)| (Duration::from_millis(t), Bytes(held))),
            };
            Some((feature_of.get(l.key.as_str())?.to_vec(), obs))
        })
        .collect();
    policy.learn_from_history(&history);
    let endings = journal.last_endings(handle.id)?;
    let previous: HashMap<TaskId, Ending> = todo
        .iter()
        .enumerate()
        .filter_map(|(id, &i)| Some((id, endings.get(&sweep.tasks[i].key)?.clone())))
        .collect();

    let log_dir = log_dir(args, &journal_path, &sweep.name);
    make_folders(args, &journal_path, &log_dir)?;
    Ok(Prepared {
        journal,
        handle,
        log_dir,
        journal_path,
        prior_attempts: todo.iter().map(|&i| records[i].attempts).collect(),
        todo,
        features,
        already: (already_done, already_failed),
        previous,
        name_taken: choice.taken,
        policy,
    })
}

/// Creates the log folder, private (0700 whatever the umask); ramguard's own default
/// folders are tightened too.
fn make_folders(args: &RunArgs, journal_path: &Path, log_dir: &Path) -> Result<()> {
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
    logs::private_dir(log_dir, args.log_dir.is_none())
        .with_context(|| format!("cannot create log directory {}", log_dir.display()))
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
