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
use crate::probe::{self, Root};
use crate::render::printer::Printer;
use crate::render::run::{self as lines, Summary};
use crate::settings::{self, Settings};
use crate::supervisor::RunEnd;
use crate::Outcome;

mod host_trace;
mod leak;
mod local;
pub(crate) mod logs;
mod naming;
mod prepare;
mod progress;
pub(crate) mod restart;
mod scripted;
mod sink;
mod sweep;
mod validate;

pub fn run(args: &RunArgs) -> Result<Outcome> {
    crate::slurm::check_args(args)?;
    let mut sweep = sweep::build(args)?;
    let root = Root::host();
    let report = probe::report(&root)?;
    let settings = settings::resolve(args, &sweep.file_options, &report)?;
    // Every input is checked before the journal or any folder is created or changed.
    validate::name(&sweep.name)?;
    validate::settings(&settings.policy)?;
    validate::commands(&sweep.tasks)?;
    if args.dry_run {
        return dry_run(args, &mut sweep, &settings);
    }

    let prep = prepare::prepare(args, &mut sweep, &settings)?;
    let total = sweep.tasks.len();
    let (already_done, already_failed) = prep.already;
    if args.executor == Executor::Slurm {
        return crate::slurm::run(crate::slurm::SlurmRun {
            args,
            settings: &settings,
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
        });
    }

    let printer = Printer::new(args.progress, total, already_done, settings.policy.budget);
    if let Some((taken, other)) = &prep.name_taken {
        printer.line(&format!(
            "new sweep '{}': '{taken}' runs another command ({other}); see `ramguard list`",
            sweep.name
        ));
    }
    if let Some(w) = &settings.thread_caps.warning {
        printer.line(&format!("warning: {w}"));
    }
    printer.line(&lines::opening_line(
        &sweep.name,
        total,
        prep.already,
        prep.todo.len(),
        &settings,
    ));
    let journal = prep.journal_path.display().to_string();
    let (stats, end, printer) =
        local::execute(args, &sweep, &settings, prep, (root, &report), printer)?;

    let summary = Summary {
        sweep: &sweep.name,
        total,
        done: already_done + stats.done,
        failed: stats.failed + already_failed,
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
    Ok(if summary.interrupted {
        Outcome::Interrupted
    } else if summary.failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
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
