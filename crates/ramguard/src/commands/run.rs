//! `ramguard run`, as a pipeline: what the user typed ([`RunArgs`], `cli::run`) → the
//! sweep's tasks ([`sweep`]) → the settings resolved against the probed host
//! (`crate::settings`: one `policy::Config`) → every input checked ([`validate`]) → the
//! journal opened and the policy built ([`prepare`]) → executed (here by the local
//! supervisor, [`local`], or as Slurm jobs) → rendered (`crate::render`: progress, lines,
//! the summary and its JSON).
//!
//! Nothing runs, and the journal is not touched, until every input has been checked; a bad
//! input is one `error:` line, exit 2. The journal is the source of truth: a completion is
//! committed (the supervisor flushes the sink) before it is printed, and a rerun of the
//! same command runs only what is not done.

use std::io::Write;

use anyhow::Result;

use crate::cli::run::{Executor, RunArgs};
use crate::executor::RunEnd;
use crate::probe::{self, Root};
use crate::render::printer::Printer;
use crate::render::run::{self as lines, Summary};
use crate::settings::{self, Settings};
use crate::Outcome;

mod host_trace;
mod leak;
mod local;
mod naming;
mod prepare;
mod progress;
pub(crate) mod restart;
mod scripted;
mod sink;
mod sweep;
mod validate;

pub fn run(args: &RunArgs) -> Result<Outcome> {
    // What the user asked for: the tasks, and the settings resolved against this host.
    crate::slurm::check_args(args)?;
    let mut sweep = sweep::build(args)?;
    let root = Root::host();
    let report = probe::report(&root)?;
    let settings = settings::resolve(args, &sweep.file_options, &report)?;
    // Every input is checked before the journal or any folder is created or changed.
    validate::name(&sweep.name)?;
    validate::settings(&settings.policy)?;
    validate::commands(&sweep.tasks)?;
    if let Some(script) = &args.scripted {
        scripted::load(script, &[])?; // a bad script is refused before the journal is touched
    }
    if args.dry_run {
        return dry_run(args, &mut sweep, &settings);
    }
    // The journal: the sweep's name, the lock, what is left to run, the policy.
    let prep = prepare::prepare(args, &mut sweep, &settings)?;
    if args.executor == Executor::Slurm {
        return on_slurm(args, &sweep, &settings, prep);
    }
    // Execute here, then render the summary.
    let printer = Printer::new(
        args.progress,
        sweep.tasks.len(),
        prep.already.0,
        settings.policy.budget,
    );
    for line in lines::opening(
        &sweep.name,
        sweep.tasks.len(),
        (prep.already, prep.todo.len()),
        prep.name_taken.as_ref(),
        &settings,
    ) {
        printer.line(&line);
    }
    let (already, journal) = (prep.already, prep.journal_path.display().to_string());
    let (stats, end, printer) =
        local::execute(args, &sweep, &settings, prep, (root, &report), printer)?;
    let summary = Summary {
        sweep: &sweep.name,
        total: sweep.tasks.len(),
        done: already.0 + stats.done,
        failed: stats.failed + already.1,
        interrupted: end == RunEnd::Interrupted,
        stats: &stats,
        budget: settings.policy.budget,
        journal,
    };
    if args.json {
        // A closed stdout loses the summary, not the outcome: the exit code still tells.
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut out, &summary.json()).map(|()| writeln!(out));
    }
    for line in summary.lines() {
        printer.line(&line);
    }
    Ok(summary.outcome())
}

/// Hands the prepared sweep to the Slurm executor.
fn on_slurm(
    args: &RunArgs,
    sweep: &sweep::Sweep,
    settings: &Settings,
    prep: prepare::Prepared,
) -> Result<Outcome> {
    crate::slurm::run(crate::slurm::SlurmRun {
        args,
        settings,
        sweep: &sweep.name,
        journal_path: &prep.journal_path,
        journal: prep.journal,
        handle: prep.handle,
        tasks: &sweep.tasks,
        features: &prep.features,
        todo: &prep.todo,
        prior_attempts: prep.prior_attempts,
        policy: prep.policy,
        log_dir: &prep.log_dir,
        already: prep.already,
    })
}

/// `--dry-run`: the name this run would get, read from the journal without writing to it,
/// then the tasks and settings.
fn dry_run(args: &RunArgs, sweep: &mut sweep::Sweep, settings: &Settings) -> Result<Outcome> {
    let path = prepare::journal_path(args);
    let fp = prepare::fingerprint(args, sweep);
    let chosen = sweep.chosen.then_some(sweep.name.as_str());
    if let Some(choice) =
        crate::journal::identity::peek_name(&path, chosen, &sweep.name, &fp, &sweep.template)
    {
        sweep.name = choice.name;
    }
    let params: Vec<_> = sweep.tasks.iter().map(sweep::params_json).collect();
    lines::dry_run(
        &mut std::io::stdout().lock(),
        args.json,
        (&sweep.name, &sweep.template),
        &sweep.tasks,
        &params,
        settings,
    )?;
    Ok(Outcome::Success)
}
