//! A hidden test seam: `ramguard run --scripted FILE` runs the sweep on the scripted
//! executor (`executor::script::Scripted`) instead of the local supervisor. Everything else
//! is the real `run`: settings, the journal, the sink, the printer. No process is started;
//! time is simulated, so the same file gives the same output, and `run`'s progress lines
//! can be snapshot-tested (`tests/run_snapshots.rs`).
//!
//! The file is JSON:
//!
//! ```json
//! { "capacity": "4G", "tick": "100ms", "interrupt_at": ["3s"],
//!   "tasks": { "2": [ { "peak": "1G", "ramp": "1s", "hold": "2s", "exit": 0 } ] },
//!   "unstartable": { "3": "no such program" } }
//! ```
//!
//! `tasks` is keyed by the task's number in the sweep (from 1); attempt `k` follows the
//! `k`-th script, the last one repeating. A script is a ramp from nothing to `peak` over
//! `ramp`, held `hold`, or explicit `points` (`[["0s", "0"], ["1s", "1G"]]`), and ends with
//! `exit` (a code, default 0), `signal`, `oom` or `shm_full`; `ignore_term` makes only KILL
//! end it. Tasks without a script hold 10 MiB for 100 ms and exit 0.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ramguard_core::units::{parse_duration, parse_size};
use ramguard_core::Bytes;
use serde::Deserialize;

use crate::executor::script::{End, Script, Scripted};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    capacity: String,
    #[serde(default)]
    tick: Option<String>,
    #[serde(default)]
    interrupt_at: Vec<String>,
    #[serde(default)]
    tasks: BTreeMap<usize, Vec<Attempt>>,
    #[serde(default)]
    unstartable: BTreeMap<usize, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attempt {
    #[serde(default)]
    peak: Option<String>,
    #[serde(default)]
    ramp: Option<String>,
    #[serde(default)]
    hold: Option<String>,
    #[serde(default)]
    points: Vec<(String, String)>,
    #[serde(default)]
    exit: Option<i32>,
    #[serde(default)]
    signal: Option<i32>,
    #[serde(default)]
    oom: bool,
    #[serde(default)]
    shm_full: bool,
    #[serde(default)]
    ignore_term: bool,
}

fn size(s: &str) -> Result<Bytes> {
    parse_size(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn dur(s: &str) -> Result<Duration> {
    parse_duration(s).map_err(|e| anyhow::anyhow!("{e}"))
}

impl Attempt {
    fn script(&self) -> Result<Script> {
        let mut script = if self.points.is_empty() {
            let peak = size(self.peak.as_deref().unwrap_or("10M"))?;
            let ramp = dur(self.ramp.as_deref().unwrap_or("100ms"))?;
            let hold = dur(self.hold.as_deref().unwrap_or("0s"))?;
            Script::ramp(peak, ramp, hold, 0)
        } else {
            let points = self
                .points
                .iter()
                .map(|(t, m)| Ok((dur(t)?, size(m)?)))
                .collect::<Result<Vec<_>>>()?;
            Script {
                points,
                ..Script::ramp(Bytes::ZERO, Duration::ZERO, Duration::ZERO, 0)
            }
        };
        let ends = [
            self.exit.is_some(),
            self.signal.is_some(),
            self.oom,
            self.shm_full,
        ];
        if ends.iter().filter(|e| **e).count() > 1 {
            bail!("a script ends one way: exit, signal, oom or shm_full");
        }
        script = script.ending(match (self.exit, self.signal) {
            (Some(code), _) => End::Code(code),
            (_, Some(sig)) => End::Signal(sig),
            _ if self.oom => End::OomKilled,
            _ if self.shm_full => End::ShmFull,
            _ => End::Code(0),
        });
        if self.ignore_term {
            script = script.ignoring_term();
        }
        Ok(script)
    }
}

/// The scripted executor `path` describes, for a run whose policy task ids map to the
/// sweep's tasks through `todo` (policy id → index into the sweep's tasks).
pub(crate) fn load(path: &Path, todo: &[usize]) -> Result<Scripted> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the script {}", path.display()))?;
    let spec: Spec = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid script", path.display()))?;
    let id_of = |n: usize| todo.iter().position(|&i| i + 1 == n);
    let mut exec = Scripted::new(size(&spec.capacity)?);
    if let Some(tick) = &spec.tick {
        exec = exec.tick(dur(tick)?);
    }
    for at in &spec.interrupt_at {
        exec = exec.interrupt_at(dur(at)?);
    }
    for (n, attempts) in &spec.tasks {
        let scripts = attempts
            .iter()
            .map(Attempt::script)
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("{}: task {n}", path.display()))?;
        if scripts.is_empty() {
            bail!("{}: task {n} has no script", path.display());
        }
        // A task done in an earlier run is not in this run's policy.
        if let Some(id) = id_of(*n) {
            exec = exec.task(id, scripts);
        }
    }
    for (n, error) in &spec.unstartable {
        if let Some(id) = id_of(*n) {
            exec = exec.unstartable(id, error);
        }
    }
    Ok(exec)
}
