//! Executes a prepared sweep on this machine: the journal sink over the local supervisor.
//! [`drive`] is the one call that runs the supervisor, so another executor plugs in there.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use ramguard_core::policy::Policy;

use super::prepare::Prepared;
use super::sink::{absolute, RunSink};
use super::sweep::Sweep;
use super::{host_trace, leak, progress};
use crate::cli::run::RunArgs;
use crate::executor::RunEnd;
use crate::logs;
use crate::probe::{HostReport, Root};
use crate::render::printer::Printer;
use crate::render::run::RunStats;
use crate::settings::Settings;
use crate::supervisor::{HostWatch, Supervisor};

/// Runs every task of `prep` under the local supervisor; returns what was tallied and how
/// the run ended, and the printer for the closing lines. The logs are complete and the
/// progress bar is cleared on return.
pub(crate) fn execute(
    args: &RunArgs,
    sweep: &Sweep,
    settings: &Settings,
    prep: Prepared,
    (root, report): (Root, &HostReport),
    printer: Printer,
) -> Result<(RunStats, RunEnd, Printer)> {
    let mut sink = RunSink {
        logs: logs::Logs::start()?,
        journal: prep.journal,
        handle: prep.handle,
        tasks: &sweep.tasks,
        todo: &prep.todo,
        prior_attempts: prep.prior_attempts,
        attempt_ids: HashMap::new(),
        abs_log_dir: absolute(&prep.log_dir),
        log_dir: prep.log_dir,
        thread_env: settings.thread_caps.env.clone(),
        threads_applied: settings.thread_env().clone(),
        previous: prep.previous,
        restart: settings.restart.clone(),
        grace: settings.policy.grace,
        python_hint_due: args.repeat.is_some(),
        printer,
        progress: progress::ProgressLog::default(),
        pending: Vec::new(),
        stats: RunStats::default(),
        samples: HashMap::new(),
        last_commit: Duration::ZERO,
        completions_pending: false,
        uncommitted: false,
        leaks: leak::Leaks::new(settings.policy.budget, settings.policy.task_cap),
        host_trace: host_trace::HostTrace::default(),
    };
    let end = match &args.scripted {
        Some(file) => {
            let mut exec = super::scripted::load(file, &prep.todo)?;
            let mut policy = prep.policy;
            crate::executor::drive(&mut policy, &mut exec, &mut sink)?
        }
        None => drive(
            prep.policy,
            HostWatch::new(root, report),
            args,
            settings,
            &mut sink,
        )?,
    };
    // Every task is gone: the logs are complete once the pump has drained their pipes.
    sink.logs.finish();
    sink.printer.finish();
    Ok((sink.stats, end, sink.printer))
}

/// Drives the local supervisor until every task reached a final state, or Ctrl-C.
fn drive(
    mut policy: Policy,
    host: HostWatch,
    args: &RunArgs,
    settings: &Settings,
    sink: &mut RunSink,
) -> Result<RunEnd> {
    let mut sup = Supervisor::new(host)?;
    sup.set_stop_signal(settings.restart.stop_signal.0);
    sup.set_shm_cleanup(args.shm_cleanup);
    sup.run(&mut policy, sink)
}
