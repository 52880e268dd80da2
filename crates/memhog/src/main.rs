//! `memhog`: a deterministic memory workload for ramguard's tests and
//! benchmarks.
//!
//! # Theory of operation
//!
//! memhog is a single-threaded program that walks through a fixed sequence
//! of phases, each controlled by a flag, and uses no randomness, so the same
//! command line always produces the same memory shape over time:
//!
//! 1. **Setup.** SIGTERM and SIGINT get a handler that only sets a flag
//!    (SIGTERM is ignored instead under `--ignore-term`). Every sleep is cut
//!    into slices of at most 10 ms and every touch loop checks the flag once
//!    per MiB, so a termination request is noticed promptly. memhog then
//!    cleans up (kills its `--children`, unlinks its `--shm` file unless
//!    `--shm-keep`) and dies by that same signal, resetting it to its default
//!    action first. Then the `--print-env` lines and the `--stdout-lines` are
//!    printed to stdout.
//! 2. **Escapee** (`--escapee`). A double fork: the intermediate child exits
//!    at once, the grandchild calls `setsid()` (so it leaves memhog's session
//!    and process group, like a daemon escaping its supervisor), sends its
//!    pid back through a pipe, points its stdio at /dev/null (unless
//!    `--escapee-keep-stdio`), allocates and touches its own memory and
//!    sleeps. memhog waits for the pid before going on, writes it to
//!    `--pid-file` atomically and never kills the escapee itself. This
//!    happens before the peak is allocated, so the escapee shares none of it.
//! 3. **Shared memory** (`--shm`). A file in `--shm-dir` (a tmpfs, normally
//!    /dev/shm) is created, sized with ftruncate, mapped `MAP_SHARED` and
//!    every page written, so tmpfs really allocates it. On a full tmpfs the
//!    write raises SIGBUS, which memhog deliberately does not catch.
//! 4. **Ramp** (`--peak`, `--ramp`). One private anonymous mapping of the
//!    peak size is made resident by writing a nonzero byte into every page.
//!    Without a ramp that happens at once; with one it happens in equal
//!    steps, one every max(10 ms, time to grow 1 MiB), so resident memory
//!    follows a staircase under the straight line from 0 to the peak.
//!    The ramp and the hold are timed by the time memhog *ran*: an interval
//!    in which it was stopped and continued (SIGSTOP, SIGCONT) counts for at
//!    most 10 ms, so a paused memhog, like real work, ends that much later
//!    (`--wall-clock` restores the wall-time schedule, under which a pause
//!    cost nothing).
//! 5. **Children** (`--children`). Right after the peak, N children are
//!    forked. They share the parent's pages copy-on-write and never write
//!    them, so the sum of everyone's RSS overcounts the real use while the
//!    sum of PSS does not. They stay in memhog's process group, die with
//!    the parent (`PR_SET_PDEATHSIG` = SIGKILL) and otherwise sleep in
//!    `pause()`.
//! 6. **Hold** (`--hold`, `--leak`, `--hold-cpu`). memhog sleeps at the
//!    peak; with a leak it maps and touches `--leak` more bytes per second of
//!    hold, in 10 ms ticks. With `--hold-cpu` it computes (spins) that share
//!    of each tick instead of sleeping it, as working code does: a process
//!    that uses no CPU looks asleep to a supervisor that reads its CPU time.
//! 7. **Teardown.** Children are killed (SIGKILL) and reaped, the shm file
//!    is unlinked unless `--shm-keep`, the `--result` is written to the file
//!    named by `$RAMGUARD_RESULT`, and memhog exits with `--exit` or dies by
//!    `--signal`.
//!
//! Sizes accept `4096` (bytes), binary `100K`, `512M`, `2G`, `1T`, `300MiB`,
//! `1.5GiB` (powers of 1024) and decimal `1KB`, `2MB`, `1GB` (powers of
//! 1000). Durations accept `250ms`, `30s`, `10m`, `1h`, `1h30m` or a plain
//! number of seconds such as `0.5`. Bad values are usage errors (exit 2).

mod sys;
mod units;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;

use sys::{Fork, Mapping, Terminated};
use units::fmt_size;

/// A deterministic memory workload for ramguard's tests and benchmarks.
///
/// memhog grows its resident memory to --peak (over --ramp), optionally
/// forks copy-on-write children, an escaping grandchild and a shared-memory
/// file, holds for --hold while leaking --leak per second, then exits with
/// --exit or dies by --signal. Run with --help for the details of every
/// flag.
///
/// SIZE: 4096 (bytes), 100K, 512M, 2G, 1T, 300MiB, 1.5GiB (powers of 1024),
/// 1KB, 2MB, 1GB, 1TB (powers of 1000).
///
/// DUR: 250ms, 30s, 10m, 1h, 1h30m, or a plain number of seconds (0.5).
#[derive(Debug, Parser)]
#[command(name = "memhog", version, max_term_width = 100)]
struct Cli {
    /// Resident memory to reach, in a private anonymous mapping whose every
    /// page is written (so it really counts in RSS).
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = units::parse_size)]
    peak: u64,

    /// Time to grow from 0 to --peak, linearly in steps (one step every
    /// 10 ms or every 1 MiB, whichever is coarser). 0 = all at once.
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = units::parse_duration)]
    ramp: Duration,

    /// Time to stay at the peak after the ramp (after forking --children).
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = units::parse_duration)]
    hold: Duration,

    /// Schedule --ramp and --hold by wall-clock time: time spent stopped
    /// (SIGSTOP) then counts, and a memhog continued after a pause catches up
    /// at once and ends on time. By default only the time memhog ran counts,
    /// as with real work, which makes no progress while stopped.
    #[arg(long)]
    wall_clock: bool,

    /// During --hold, keep allocating and touching this much more memory
    /// per second (a steady leak, in 10 ms ticks).
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = units::parse_size)]
    leak: u64,

    /// During --hold, compute (spin) this percentage of each 10 ms tick
    /// instead of sleeping it, as work does (0-100).
    #[arg(long, value_name = "PERCENT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    hold_cpu: u8,

    /// Exit status at the end.
    #[arg(long = "exit", value_name = "CODE", default_value_t = 0)]
    exit_code: u8,

    /// Instead of exiting, die by this signal at the end (name such as
    /// KILL, SEGV, BUS, TERM, with or without SIG, or a number such as 9).
    /// Its handler is reset to the default and core dumps are disabled
    /// first, so the process really dies by it. Signals whose default action
    /// does not terminate (CHLD, CONT, STOP, TSTP, TTIN, TTOU, URG, WINCH)
    /// are rejected.
    #[arg(long, value_name = "NAME|NUM", value_parser = units::parse_fatal_signal)]
    signal: Option<i32>,

    /// Fork N children right after reaching the peak. They share the peak
    /// copy-on-write and never write it (so summed RSS overcounts while PSS
    /// does not), stay in memhog's process group, die with the parent
    /// (PR_SET_PDEATHSIG=SIGKILL) and are killed and reaped when the hold
    /// ends.
    #[arg(long, value_name = "N", default_value_t = 0)]
    children: u32,

    /// Double-fork a grandchild that calls setsid() (escaping memhog's
    /// session and process group), allocates and touches SIZE and sleeps
    /// for --escapee-hold. memhog never kills it. Its stdio is redirected
    /// to /dev/null unless --escapee-keep-stdio.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    escapee: Option<u64>,

    /// How long the --escapee lives after touching its memory.
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = units::parse_duration)]
    escapee_hold: Duration,

    /// Let the --escapee keep memhog's stdin/stdout/stderr (e.g. to test a
    /// runner whose log pipe is held open by an escaped process).
    #[arg(long, requires = "escapee")]
    escapee_keep_stdio: bool,

    /// Write the --escapee's pid (decimal, newline-terminated) to PATH,
    /// atomically (a temporary file renamed into place).
    #[arg(long, value_name = "PATH", requires = "escapee")]
    pid_file: Option<PathBuf>,

    /// Create a file of SIZE in --shm-dir and write every page of it
    /// through a shared mapping, keeping it mapped until the end. On a full
    /// tmpfs this dies by SIGBUS, deliberately. The file is unlinked at the
    /// end (also on SIGTERM/SIGINT) unless --shm-keep.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    shm: Option<u64>,

    /// File name for --shm [default: memhog-<pid>].
    #[arg(long, value_name = "NAME", requires = "shm")]
    shm_name: Option<String>,

    /// Directory for --shm.
    #[arg(long, value_name = "DIR", default_value = "/dev/shm", requires = "shm")]
    shm_dir: PathBuf,

    /// Leave the --shm file in place at exit.
    #[arg(long, requires = "shm")]
    shm_keep: bool,

    /// At the end, write this JSON text to the file named by
    /// $RAMGUARD_RESULT (nothing is written if that is unset). The text
    /// must be valid JSON.
    #[arg(long, value_name = "JSON", value_parser = parse_json, conflicts_with = "result_raw")]
    result: Option<String>,

    /// Like --result but writes TEXT verbatim, without checking that it is
    /// JSON (to test handling of invalid results).
    #[arg(long, value_name = "TEXT")]
    result_raw: Option<String>,

    /// At startup, print `VAR=value` (or `VAR=<unset>`) to stdout.
    /// Repeatable.
    #[arg(long, value_name = "VAR")]
    print_env: Vec<OsString>,

    /// Ignore SIGTERM (to test TERM-then-KILL escalation). Children and the
    /// escapee ignore it too.
    #[arg(long)]
    ignore_term: bool,

    /// Print progress lines (peak reached, children forked, escapee pid,
    /// ...) to stderr.
    #[arg(long, short)]
    verbose: bool,

    /// Print N numbered lines to stdout at startup (for log tests).
    #[arg(long, value_name = "N", default_value_t = 0)]
    stdout_lines: u64,
}

fn parse_json(s: &str) -> Result<String, String> {
    serde_json::from_str::<serde_json::Value>(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not valid JSON: {e}"))
}

/// Environment variable naming the file that receives `--result`.
const RESULT_ENV: &str = "RAMGUARD_RESULT";

/// Why the workload stopped before the normal end.
#[derive(Debug)]
enum Stop {
    Terminated(Terminated),
    Error(anyhow::Error),
}

impl From<Terminated> for Stop {
    fn from(t: Terminated) -> Self {
        Stop::Terminated(t)
    }
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Error(e)
    }
}

/// Everything that must be undone at the end, whatever way it comes.
#[derive(Debug, Default)]
struct Resources {
    verbose: bool,
    children: Vec<libc::pid_t>,
    shm_path: Option<PathBuf>,
    shm_keep: bool,
    shm_map: Option<Mapping>,
    peak_map: Option<Mapping>,
    leaks: Vec<Mapping>,
}

impl Resources {
    fn log(&self, msg: std::fmt::Arguments<'_>) {
        if self.verbose {
            let pid = std::process::id();
            let _ = writeln!(std::io::stderr(), "memhog[{pid}]: {msg}");
        }
    }

    /// Kills and reaps the children and removes the shm file (unless kept).
    fn teardown(&mut self) {
        let children = std::mem::take(&mut self.children);
        for &pid in &children {
            if let Err(e) = sys::kill_and_reap(pid) {
                self.log(format_args!("could not reap child {pid}: {e}"));
            }
        }
        if !children.is_empty() {
            self.log(format_args!("killed {} children", children.len()));
        }
        self.shm_map = None;
        if let Some(path) = self.shm_path.take() {
            if self.shm_keep {
                self.log(format_args!("keeping {}", path.display()));
            } else if let Err(e) = std::fs::remove_file(&path) {
                let _ = writeln!(
                    std::io::stderr(),
                    "memhog: cannot remove {}: {e}",
                    path.display()
                );
            } else {
                self.log(format_args!("removed {}", path.display()));
            }
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let mut res = Resources {
        verbose: cli.verbose,
        shm_keep: cli.shm_keep,
        ..Resources::default()
    };
    let outcome = run(&cli, &mut res);
    res.teardown();
    match outcome {
        Ok(()) => {}
        Err(Stop::Terminated(Terminated(sig))) => {
            res.log(format_args!("terminated by signal {sig}"));
            sys::die_by_signal(sig);
            std::process::exit(128 + sig);
        }
        Err(Stop::Error(e)) => {
            let _ = writeln!(std::io::stderr(), "memhog: error: {e:#}");
            std::process::exit(1);
        }
    }
    if let Err(e) = write_result(&cli) {
        let _ = writeln!(std::io::stderr(), "memhog: error: {e:#}");
        std::process::exit(1);
    }
    let _ = std::io::stdout().flush();
    if let Some(sig) = cli.signal {
        res.log(format_args!("raising signal {sig}"));
        drop(res);
        sys::die_by_signal(sig);
        // Still alive: the signal's default action does not terminate.
        let name = units::signal_name(sig).unwrap_or("?");
        let _ = writeln!(
            std::io::stderr(),
            "memhog: signal {sig} (SIG{name}) did not terminate the process; exiting with {}",
            128 + sig
        );
        std::process::exit(128 + sig);
    }
    res.log(format_args!("exiting with status {}", cli.exit_code));
    drop(res);
    std::process::exit(i32::from(cli.exit_code));
}

/// The workload proper: every phase up to the end of the hold.
fn run(cli: &Cli, res: &mut Resources) -> Result<(), Stop> {
    sys::install_term_handlers(cli.ignore_term).context("installing signal handlers")?;
    sys::install_cont_handler().context("installing signal handlers")?;
    print_startup_lines(cli);

    if let Some(size) = cli.escapee {
        let size = usize::try_from(size).context("--escapee too large")?;
        let pid = sys::spawn_escapee(sys::EscapeeSpec {
            size,
            hold: cli.escapee_hold,
            keep_stdio: cli.escapee_keep_stdio,
            ignore_term: cli.ignore_term,
        })
        .context("spawning the escapee")?;
        if let Some(path) = &cli.pid_file {
            write_atomically(path, format!("{pid}\n").as_bytes())
                .with_context(|| format!("writing pid file {}", path.display()))?;
        }
        res.log(format_args!(
            "escapee pid {pid} ({})",
            fmt_size(size as u64)
        ));
    }
    sys::check_terminated()?;

    if let Some(size) = cli.shm {
        fill_shm(cli, size, res)?;
    }

    ramp_to_peak(cli, res)?;

    let parent = rustix::process::getpid().as_raw_nonzero().get();
    for _ in 0..cli.children {
        match sys::fork().context("forking a child")? {
            Fork::Child => sys::child_main(parent, cli.ignore_term),
            Fork::Parent(pid) => res.children.push(pid),
        }
    }
    if cli.children > 0 {
        res.log(format_args!("forked children {:?}", res.children));
    }

    hold(cli, res)?;
    Ok(())
}

fn print_startup_lines(cli: &Cli) {
    let mut out = std::io::stdout().lock();
    for var in &cli.print_env {
        let name = var.to_string_lossy();
        let _ = match std::env::var_os(var) {
            Some(value) => writeln!(out, "{name}={}", value.to_string_lossy()),
            None => writeln!(out, "{name}=<unset>"),
        };
    }
    for i in 1..=cli.stdout_lines {
        let _ = writeln!(out, "memhog line {i} of {}", cli.stdout_lines);
    }
    let _ = out.flush();
}

fn fill_shm(cli: &Cli, size: u64, res: &mut Resources) -> Result<(), Stop> {
    let name = cli
        .shm_name
        .clone()
        .unwrap_or_else(|| format!("memhog-{}", std::process::id()));
    let path = cli.shm_dir.join(&name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    // From here on teardown removes it.
    res.shm_path = Some(path.clone());
    file.set_len(size)
        .with_context(|| format!("sizing {} to {size} bytes", path.display()))?;
    let len = usize::try_from(size).context("--shm too large")?;
    let map =
        Mapping::shared_file(&file, len).with_context(|| format!("mapping {}", path.display()))?;
    let map = res.shm_map.insert(map);
    map.touch_all()?;
    res.log(format_args!(
        "filled {} with {}",
        path.display(),
        fmt_size(size)
    ));
    Ok(())
}

fn ramp_to_peak(cli: &Cli, res: &mut Resources) -> Result<(), Stop> {
    let peak = usize::try_from(cli.peak).context("--peak too large")?;
    if peak == 0 {
        return Ok(());
    }
    let mut clock = sys::RunClock::start(cli.wall_clock);
    let map = res.peak_map.insert(
        Mapping::anonymous(peak)
            .with_context(|| format!("mapping {} for --peak", fmt_size(cli.peak)))?,
    );
    let ramp_nanos = cli.ramp.as_nanos();
    if ramp_nanos == 0 {
        map.touch_all()?;
    } else {
        let steps = ramp_steps(cli.peak, cli.ramp);
        for i in 1..=steps {
            let at = ramp_nanos * u128::from(i) / u128::from(steps);
            clock.sleep_until(Duration::from_nanos(at as u64))?;
            let target = u128::from(cli.peak) * u128::from(i) / u128::from(steps);
            map.touch_to(target as usize)?;
        }
    }
    let len = map.len();
    res.log(format_args!(
        "reached peak {} in {:.3}s",
        fmt_size(len as u64),
        clock.now().as_secs_f64()
    ));
    Ok(())
}

/// Number of equal ramp steps: one every 10 ms or every MiB, whichever is
/// coarser (fewer steps), and at least one.
fn ramp_steps(peak: u64, ramp: Duration) -> u64 {
    let by_size = peak.div_ceil(1 << 20);
    let by_time = (ramp.as_nanos() / sys::SLICE.as_nanos()).min(u128::from(u64::MAX)) as u64;
    by_size.min(by_time).max(1)
}

fn hold(cli: &Cli, res: &mut Resources) -> Result<(), Stop> {
    if cli.hold.is_zero() {
        return Ok(());
    }
    res.log(format_args!(
        "holding for {:.3}s, leaking {}/s",
        cli.hold.as_secs_f64(),
        fmt_size(cli.leak)
    ));
    let mut clock = sys::RunClock::start(cli.wall_clock);
    let page = sys::page_size() as u64;
    let mut leaked: u64 = 0;
    let end = cli.hold;
    loop {
        sys::check_terminated()?;
        let now = clock.now().min(end);
        if cli.leak > 0 {
            let elapsed = now.as_nanos();
            let due = (u128::from(cli.leak) * elapsed / 1_000_000_000) as u64;
            // Leak in whole pages; the remainder is leaked at the end.
            if due >= leaked + page || (now >= end && due > leaked) {
                let len = sys::round_up_to_page(due - leaked);
                let mut map = Mapping::anonymous(len as usize)
                    .with_context(|| format!("mapping {} for --leak", fmt_size(len)))?;
                map.touch_all()?;
                res.leaks.push(map);
                leaked += len;
            }
        }
        if now >= end {
            break;
        }
        let tick_end = (now + sys::SLICE).min(end);
        if cli.hold_cpu > 0 {
            let busy = now + sys::SLICE * u32::from(cli.hold_cpu) / 100;
            while clock.now() < busy.min(tick_end) {
                std::hint::spin_loop();
            }
        }
        clock.sleep_until(tick_end)?;
    }
    if cli.leak > 0 {
        res.log(format_args!("hold done, leaked {}", fmt_size(leaked)));
    } else {
        res.log(format_args!("hold done"));
    }
    Ok(())
}

fn write_result(cli: &Cli) -> Result<()> {
    let Some(text) = cli.result.as_ref().or(cli.result_raw.as_ref()) else {
        return Ok(());
    };
    let Some(path) = std::env::var_os(RESULT_ENV) else {
        return Ok(());
    };
    std::fs::write(&path, text)
        .with_context(|| format!("writing result to {}", Path::new(&path).display()))
}

/// Writes `data` to a temporary file next to `path` and renames it into
/// place, so readers never see a partial file.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ramp_step_counts() {
        // 64 MiB over 1 s: MiB steps (64) are coarser than 10 ms (100).
        assert_eq!(ramp_steps(64 << 20, Duration::from_secs(1)), 64);
        // 1 GiB over 1 s: 10 ms steps (100) are coarser than MiB (1024).
        assert_eq!(ramp_steps(1 << 30, Duration::from_secs(1)), 100);
        // Tiny: still one step.
        assert_eq!(ramp_steps(4096, Duration::from_millis(1)), 1);
        assert_eq!(ramp_steps(4096, Duration::from_secs(10)), 1);
    }

    #[test]
    fn rejects_bad_json_result() {
        assert!(Cli::try_parse_from(["memhog", "--result", "{bad"]).is_err());
        assert!(Cli::try_parse_from(["memhog", "--result", r#"{"x":1}"#]).is_ok());
        assert!(Cli::try_parse_from(["memhog", "--result-raw", "{bad"]).is_ok());
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = std::env::temp_dir().join(format!("memhog-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pid");
        write_atomically(&path, b"1\n").unwrap();
        write_atomically(&path, b"22\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"22\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
