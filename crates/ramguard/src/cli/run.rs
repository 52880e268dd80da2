//! What the user typed for `ramguard run`, as clap derive types: [`RunArgs`] and the flags it
//! flattens. Nothing here probes the host or resolves a default (`crate::settings` does);
//! nothing here imports a command, so `commands::run` depends on this module and never the
//! other way round.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use ramguard_core::policy::recycle::RetryOn;
use ramguard_core::units::{parse_duration, parse_size, SizeSpec};
use ramguard_core::Bytes;
use rustix::process::Signal;

use super::{parse_interval, parse_size_spec};

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
#[command(after_long_help = TASK_ENV_HELP)]
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
    /// `-- CMD` template. `#` comments and blank lines are skipped. A command line with
    /// shell syntax (`>`, `|`, `;`, `&&`, `$VAR`, a glob) runs through `sh -c`, as GNU
    /// parallel runs every line; a plain one runs as its words, without a shell.
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

    /// Peak memory to assume for a task before any has been measured (more than 0).
    #[arg(long, value_name = "SIZE", value_parser = parse_abs_size)]
    pub estimate: Option<Bytes>,

    /// Kill a task whose memory exceeds SIZE (failed: over cap). A task's memory is what
    /// its process tree holds (shared pages once) plus the /dev/shm files it created. No
    /// task is assumed to need more than SIZE, so the first tasks start together sooner.
    #[arg(long, value_name = "SIZE", value_parser = parse_abs_size)]
    pub task_mem: Option<Bytes>,

    /// Never pause (SIGSTOP) a task for memory, nor one asleep until half its jump fits: brake
    /// (stop and requeue) instead. For tasks that must not be stopped for a while: network
    /// clients with timeouts, MPI ranks, GPU jobs.
    #[arg(long)]
    pub no_pause: bool,

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
    pub restart: RestartArgs,

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
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,

    /// With `--executor slurm`: the partition to submit to [default: Slurm's default].
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,

    /// With `--executor slurm`: one more argument for every `sbatch` (repeat for more), as
    /// `--slurm-arg=--qos=low`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub slurm_arg: Vec<String>,

    /// Testing only: run the sweep on the scripted executor this JSON file describes
    /// (simulated time, no process started; `commands/run/scripted.rs`).
    #[arg(long, value_name = "FILE", hide = true, conflicts_with = "executor")]
    pub scripted: Option<PathBuf>,

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

/// The task environment, for the end of `ramguard run --help` (the module doc's table).
pub const TASK_ENV_HELP: &str = "\
Every task's environment also holds:
  RAMGUARD_TASK             the task's number in the sweep, from 1
  RAMGUARD_ATTEMPT          this attempt's number for the task, from 1, counting earlier runs
  RAMGUARD_RESULT           a file where the task may write one JSON object that ramguard keeps
  RAMGUARD_PREVIOUS_END     how the previous attempt ended: braked, oom_killed, over_cap, max_age,
                            timed_out, failed, signaled, shm_bus, interrupted (unset at first)
  RAMGUARD_PREVIOUS_REASON  the same in words
  RAMGUARD_PREVIOUS_PEAK    the previous attempt's peak RSS (its whole process tree), in bytes
  RAMGUARD_STOP_SIGNAL      the signal ramguard sends first to stop the task (--stop-signal)
  RAMGUARD_GRACE            seconds from that signal to SIGKILL (--grace)
  OMP_NUM_THREADS and nine more thread variables (--threads)";

/// The flags, as typed.
#[derive(Debug, Clone, clap::Args)]
pub struct RestartArgs {
    /// Restart a task stopped at its cap (`--task-mem`) or age (`--max-age`) instead of
    /// failing it, as a watchdog restarts a leaking worker; restarts spend no `--retries`.
    /// N (written `--recycle=N`) is the most restarts of one task per minute (a task that
    /// hits its cap faster is too big, not leaking, and fails, or is retried if
    /// `--retry-on over-cap` covers it) [default: 5].
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true,
          default_missing_value = "5", value_parser = clap::value_parser!(u32).range(1..))]
    pub recycle: Option<u32>,

    /// With `--recycle`: stop and restart a task once it has run for DUR (like `60m`).
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub max_age: Option<Duration>,

    /// Which endings `--retries` retries, comma-separated: failed (nonzero exit), signaled
    /// (killed by a signal ramguard did not send), over-cap, timeout, shm-bus; or none.
    /// Brakes and kernel OOM kills never count: those tasks are requeued anyway. Needs
    /// `--retries N` [default: failed,signaled].
    #[arg(long, value_name = "ENDINGS", value_parser = parse_retry_on)]
    pub retry_on: Option<RetryOn>,

    /// The signal that asks a task to stop (brake, cap, age, timeout, Ctrl-C); SIGKILL
    /// follows after `--grace`. `INT` makes Python raise KeyboardInterrupt, which Optuna
    /// and most frameworks record as a failed trial [default: TERM].
    #[arg(long, value_name = "SIG", value_parser = parse_stop_signal)]
    pub stop_signal: Option<StopSignal>,
}

/// A signal that may ask a task to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal(pub Signal);

impl StopSignal {
    const CHOICES: [(&'static str, Signal); 6] = [
        ("TERM", Signal::TERM),
        ("INT", Signal::INT),
        ("HUP", Signal::HUP),
        ("QUIT", Signal::QUIT),
        ("USR1", Signal::USR1),
        ("USR2", Signal::USR2),
    ];

    /// The signal's name without `SIG`.
    pub fn name(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, s)| *s == self.0)
            .map_or("TERM", |(n, _)| n)
    }

    /// The signal's number.
    pub fn number(self) -> i32 {
        self.0.as_raw()
    }
}

impl serde::Serialize for StopSignal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Parses `TERM`, `SIGINT`, `int`, `15`, ... (the signals in [`StopSignal`]'s choices).
pub fn parse_stop_signal(s: &str) -> Result<StopSignal, String> {
    let upper = s.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    StopSignal::CHOICES
        .iter()
        .find(|(n, sig)| *n == name || name.parse::<i32>().ok() == Some(sig.as_raw()))
        .map(|(_, sig)| StopSignal(*sig))
        .ok_or_else(|| {
            format!(
                "invalid stop signal '{s}': use one of {} (SIGKILL always follows after --grace)",
                StopSignal::CHOICES.map(|c| c.0).join(", ")
            )
        })
}

fn parse_retry_on(s: &str) -> Result<RetryOn, String> {
    s.parse()
}

/// Where tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    /// On this machine, under ramguard's own supervisor.
    Local,
    /// Each task an `sbatch` job on a Slurm cluster.
    Slurm,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_parse_by_name_or_number_and_nothing_else() {
        assert_eq!(parse_stop_signal("int").unwrap().name(), "INT");
        assert_eq!(parse_stop_signal("SIGUSR1").unwrap().name(), "USR1");
        assert_eq!(parse_stop_signal("15").unwrap().name(), "TERM");
        let e = parse_stop_signal("KILL").unwrap_err();
        assert!(e.contains("'KILL'") && e.contains("TERM, INT"), "{e}");
        assert!(parse_stop_signal("STOP").is_err());
    }
}
