//! `run`'s display: a progress bar with a memory gauge on a terminal, timestamped lines
//! otherwise, and the lines that always show. It only prints what it is given; the journal
//! is written (and committed) before anything reaches it.

use std::io::{IsTerminal, Write};

use ramguard_core::Bytes;

use crate::cli::run::Progress;
use crate::executor::Snapshot;

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
#[derive(Debug)]
pub struct Printer {
    bar: Option<indicatif::ProgressBar>,
    /// Plain timestamped lines (no bar): progress lines are shown too.
    pub plain: bool,
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
    pub fn new(mode: Progress, total: usize, done: usize, budget: Bytes) -> Printer {
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
    pub fn line(&self, text: &str) {
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
    pub fn event(&self, text: &str) {
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

    pub fn update(&self, s: &Snapshot, finished: usize) {
        if !self.alive() {
            return;
        }
        if let Some(pb) = &self.bar {
            pb.set_position((self.base + finished) as u64);
            pb.set_message(super::run::progress_message(s, self.budget));
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.bar {
            if self.alive() {
                pb.finish_and_clear();
            }
        }
    }
}
