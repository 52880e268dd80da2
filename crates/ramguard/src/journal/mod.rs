//! The crash-proof journal: one SQLite file (WAL mode) holding sweeps, tasks, attempts,
//! downsampled memory timelines, events and results. It is the single source of truth for
//! resuming: rerunning a sweep reads it and runs only what is not done.
//!
//! # Theory of operation
//! - **Where**: `--journal PATH`, else `$RAMGUARD_JOURNAL`, else `./.ramguard/journal.db`
//!   ([`default_path`]). The directory is created (mode 0700) only if its parent exists; the
//!   file is created mode 0600 (SQLite gives its `-wal`/`-shm` files the same mode).
//! - **Identity**: a sweep is its name plus a [`fingerprint`] of its command template and the
//!   settings that change what tasks do. Without `--name` the fingerprint finds the sweep
//!   and a new command gets a new name ([`identity`]), so different commands never collide;
//!   a name reused for another fingerprint is refused unless `fresh`. A task is its identity
//!   key (canonical params or rendered argv), unique within its sweep, so reordering the
//!   inputs does not redo work. Each run of a sweep gets a number, and every task it asked
//!   for is marked with it: `results` and `status` show the latest run's tasks by default.
//! - **Writes are grouped**: every write method runs inside one open write transaction,
//!   begun lazily; [`Journal::commit`] ends it. Nothing is visible to readers or durable before
//!   `commit` returns Ok, so the supervisor reports a completion only after that. Another
//!   writer on the same file (a supervisor of another sweep) waits while a group is open
//!   (busy timeout [`BUSY_TIMEOUT`]), so callers commit at least every few hundred ms.
//! - **Durability**: `journal_mode=WAL`; [`Journal::commit`] fsyncs the WAL (the connection
//!   runs at `synchronous=NORMAL`; `commit` syncs the `-wal` file's data itself).
//!   A process crash (SIGKILL, panic, OOM kill of ramguard itself) loses only the group not
//!   yet committed; a power cut or kernel crash loses the same and nothing more, because the
//!   WAL is on disk before `commit` returns. (`synchronous=NORMAL` alone would let a power
//!   cut lose the last committed groups, which would break "reported means durable".)
//!   Group commits keep the fsync cost per group, not per task: see the report's figures.
//!   [`Journal::commit_for_crash`] is the cheaper step between: committed without an fsync,
//!   so a crash of ramguard loses nothing of it (the WAL is in the page cache) but a power
//!   cut might; the next [`Journal::commit`] fsyncs the WAL and with it everything before.
//!   `run` uses it before starting a task (a finished task must not rerun because the next
//!   start crashed ramguard) and prints a completion only after a full commit.
//! - **Interrupted work**: an attempt row with no exit class is running. When its supervisor
//!   is gone (we hold the sweep lock, so it must be), [`Journal::recover_interrupted`] closes
//!   it as `interrupted`, makes its task rerun, and returns its pid for the caller to kill.
//! - **One supervisor per sweep**: [`Journal::begin_sweep`] takes an exclusive flock on
//!   `<journal>.<name-hash>.lock` (see [`lock`]), held by the [`SweepHandle`].
//! - **Faults**: a corrupt, truncated or foreign file is refused and never rewritten; a newer
//!   schema is refused; a failed commit (disk full) returns Err and rolls the group back.
//! - **Old journals**: `run` migrates them on disk ([`schema`], one transaction per step);
//!   `status`, `results`, `list`, `report` and `plan` read a migrated copy in memory and leave
//!   the file byte for byte as it was, so the older ramguard that wrote it still opens it.
//!
//! Reading for `status`, `results`, `list` lives in [`read`]; those never take the lock and
//! see only committed groups (WAL readers do not block the writer).
//!
//! Where things are: this file holds the vocabulary (rows, samples, [`AttemptEnd`]) and the
//! write group; `open.rs` opens a journal for writing or reading; `sweeps.rs` writes sweeps
//! and their task sets; `attempts.rs` writes attempts, their timelines and events;
//! [`schema`] holds the tables and their migrations.

mod attempts;
pub mod display;
pub mod identity;
pub mod lock;
mod open;
pub mod progress;
pub mod read;
pub mod readonly;
pub mod report;
pub mod schema;
mod sweeps;
pub mod task_env;
pub mod timeline;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use ramguard_core::policy::{Ending, ExitClass};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use schema::SCHEMA_VERSION;

use lock::SweepLock;
use timeline::Timeline;

/// The environment variable naming the journal file (overridden by `--journal`).
pub const JOURNAL_ENV: &str = "RAMGUARD_JOURNAL";

/// How long a writer waits for another writer's group before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The journal path used when `--journal` is not given: `$RAMGUARD_JOURNAL`, else
/// `./.ramguard/journal.db`.
pub fn default_path() -> PathBuf {
    match std::env::var_os(JOURNAL_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(".ramguard").join("journal.db"),
    }
}

/// Resolves a command's `--journal` option against [`default_path`].
pub fn resolve_path(arg: Option<&Path>) -> PathBuf {
    arg.map_or_else(default_path, Path::to_path_buf)
}

/// A stable hex SHA-256 of a command template and the settings that change what tasks do.
///
/// Object keys are sorted before hashing, so the same settings always give the same value.
pub fn fingerprint(template: &str, settings: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(b"ramguard-fingerprint-v1\0");
    h.update(template.as_bytes());
    h.update(b"\0");
    h.update(canonical_json(settings).as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Serializes JSON with object keys sorted at every level.
pub fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(a) => {
            let body: Vec<String> = a.iter().map(canonical_json).collect();
            format!("[{}]", body.join(","))
        }
        other => other.to_string(),
    }
}

/// What identifies a sweep and what its tasks do.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    /// The sweep's name (`--name`, the sweep file's name, or derived from the command).
    pub name: String,
    /// [`fingerprint`] of `template` and `settings`.
    pub fingerprint: String,
    /// The command template as the user wrote it, for display.
    pub template: String,
    /// Settings that change what tasks do (and `jobs`, used for the ETA if present).
    pub settings: serde_json::Value,
}

/// What a finished task of an earlier run teaches the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    /// The task's identity key.
    pub key: String,
    /// Its peak in bytes.
    pub peak: u64,
    /// How long its finishing attempt ran.
    pub duration_ms: Option<u64>,
    /// When that attempt's timeline first reached 95% of the peak.
    pub time_to_peak_ms: Option<u64>,
    /// Its quiet start, in time run: how long its memory stood still before its climb to
    /// the peak, and the most it held until then (milliseconds, bytes); `None` when its
    /// timeline is too coarse to tell ([`quiet_start_of_samples`]).
    ///
    /// [`quiet_start_of_samples`]: ramguard_core::policy::quiet_start_of_samples
    pub quiet: Option<(u64, u64)>,
}

/// A sweep being run; holds its lock until dropped.
#[derive(Debug)]
pub struct SweepHandle {
    /// The sweep's row id.
    pub id: i64,
    /// The sweep's name.
    pub name: String,
    /// This run's number within the sweep (1 for its first run under schema v2).
    pub run: i64,
    lock: SweepLock,
}

impl SweepHandle {
    /// The lock file held for this sweep.
    pub fn lock_path(&self) -> &Path {
        self.lock.path()
    }
}

/// A task as the task source produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The task's identity key, unique within its sweep.
    pub key: String,
    /// The task's parameters: a JSON object (named) or array (positional).
    pub params: serde_json::Value,
    /// The rendered command line.
    pub argv: Vec<String>,
}

/// A task's state as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStateRow {
    /// Waiting to run (never run, or requeued after a brake).
    Queued,
    /// An attempt is running (or was, when its supervisor died).
    Running,
    /// Finished successfully.
    Done,
    /// Its last attempt failed (and it was not requeued).
    Failed,
    /// Its supervisor died or was stopped while it ran; it runs again next time.
    Interrupted,
}

impl TaskStateRow {
    /// All states, in display order.
    pub const ALL: [TaskStateRow; 5] = [
        TaskStateRow::Done,
        TaskStateRow::Failed,
        TaskStateRow::Running,
        TaskStateRow::Queued,
        TaskStateRow::Interrupted,
    ];

    /// The name stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStateRow::Queued => "queued",
            TaskStateRow::Running => "running",
            TaskStateRow::Done => "done",
            TaskStateRow::Failed => "failed",
            TaskStateRow::Interrupted => "interrupted",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<TaskStateRow> {
        TaskStateRow::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A task as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// The task's identity key.
    pub key: String,
    /// Its state.
    pub state: TaskStateRow,
    /// How many attempts were started (brake requeues included).
    pub attempts: u32,
    /// Its peak memory when done (PSS if measured, else RSS), in bytes.
    pub peak: Option<u64>,
    /// A peak it is known to reach (set when braked or OOM-killed), in bytes.
    pub lower_bound: Option<u64>,
}

/// A process left running by a dead supervisor, for the caller to kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The task it ran.
    pub task_key: String,
    /// The task's pid, which led its own process group (so also its pgid).
    pub pid: u32,
    /// When it was started; compare with the process's start time before killing, since
    /// the pid may have been reused.
    pub started_unix_ms: i64,
}

/// One memory sample of a running attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemSample {
    /// Milliseconds since the attempt started.
    pub t_ms: u64,
    /// Resident set size of the task's process tree, in bytes.
    pub rss: u64,
    /// Proportional set size of the tree, in bytes, when measured.
    pub pss: Option<u64>,
    /// The one measure of the task's memory (private, shared once, plus its /dev/shm
    /// files), in bytes; absent in journals before schema v4.
    #[serde(default)]
    pub used: Option<u64>,
    /// Allocated bytes of the task's /dev/shm files.
    #[serde(default)]
    pub shm: Option<u64>,
    /// Summed virtual size (address space, not memory).
    #[serde(default)]
    pub virt: Option<u64>,
}

impl MemSample {
    /// What the task held at this sample: the one measure where journaled (schema v4 on),
    /// else the best figure an older journal has (PSS, then RSS).
    pub fn held(&self) -> u64 {
        self.used.or(self.pss).unwrap_or(self.rss)
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEnd {
    /// Wall-clock end time.
    pub ended_unix_ms: i64,
    /// Run time in milliseconds.
    pub duration_ms: u64,
    /// Peak RSS of the tree, in bytes.
    pub peak_rss: u64,
    /// Peak PSS of the tree, in bytes, when measured.
    pub peak_pss: Option<u64>,
    /// The attempt's peak: the highest of the one measure of its memory, in bytes. When
    /// absent, the task's peak falls back to PSS, else RSS.
    pub peak: Option<u64>,
    /// Largest allocated size of its /dev/shm files, in bytes.
    pub peak_shm: Option<u64>,
    /// Largest summed virtual size, in bytes.
    pub peak_virt: Option<u64>,
    /// /dev/shm files it left behind, as JSON (`[{"name":…,"allocated":…}]`).
    pub shm_left: Option<String>,
    /// /dev/shm files ramguard removed after it, as JSON.
    pub shm_removed: Option<String>,
    /// Exit class, journaled as its stable name (`ExitClass::as_str`).
    pub class: ExitClass,
    /// How its process ended, as the executor saw it (journaled as the exit code and the
    /// terminating signal); `None` if it never ran or no ending was seen.
    pub ending: Option<Ending>,
    /// Human-readable reason.
    pub reason: String,
    /// True if the task goes back to the queue (a brake), not counting as a failure.
    pub requeued: bool,
    /// Raw text of the `$RAMGUARD_RESULT` file, if the task wrote one.
    pub result: Option<String>,
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    /// A write transaction (the current group) is open.
    in_group: bool,
    /// Timelines of attempts started through this handle and not yet finished.
    timelines: HashMap<i64, Timeline>,
    /// Row ids of tasks by (sweep id, key), filled by [`Journal::sync_tasks`], so that
    /// starting an attempt needs no lookup.
    task_ids: HashMap<(i64, String), i64>,
    /// The task row of every attempt started through this handle and not yet finished.
    attempt_tasks: HashMap<i64, i64>,
    /// Groups were committed for a crash only since the last fsync of the WAL.
    unsynced: bool,
    /// Tasks whose attempt started in the open group and whose row does not say so yet
    /// (task row id → attempt row id): see [`Journal::mark_running`].
    running_marks: HashMap<i64, i64>,
}

/// Converts a byte count or duration for storage (SQLite integers are i64).
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Reads an optional non-negative integer column.
fn to_u64(v: Option<i64>) -> Option<u64> {
    v.map(|x| u64::try_from(x).unwrap_or(0))
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Journal {
    /// A journal around an open connection, with no write group and nothing cached.
    fn with_conn(conn: Connection, path: &Path) -> Journal {
        Journal {
            conn,
            path: path.to_path_buf(),
            in_group: false,
            timelines: HashMap::new(),
            task_ids: HashMap::new(),
            attempt_tasks: HashMap::new(),
            unsynced: false,
            running_marks: HashMap::new(),
        }
    }

    /// The journal's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Opens the current group (write transaction) if none is open.
    fn group(&mut self) -> Result<()> {
        if !self.in_group {
            self.conn
                .prepare_cached("BEGIN IMMEDIATE")
                .and_then(|mut st| st.execute([]))
                .with_context(|| format!("cannot write journal {}", self.shown()))?;
            self.in_group = true;
        }
        Ok(())
    }

    /// Makes everything written since the last commit durable; on failure (disk full, I/O
    /// error) the group is rolled back and the error returned.
    pub fn commit(&mut self) -> Result<()> {
        self.end_group()?;
        if !self.unsynced {
            return Ok(());
        }
        // The connection runs at synchronous=NORMAL: a commit reaches the WAL file but not
        // the disk. Syncing the WAL file makes every frame in it durable, which is what a
        // commit at FULL would have done (sync_data on any descriptor of the file).
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        match std::fs::File::open(&wal) {
            Ok(f) => f.sync_data().with_context(|| self.commit_failed())?,
            // No WAL: a checkpoint moved everything into the database, and at NORMAL a
            // checkpoint syncs it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot sync journal {}", self.shown()))
            }
        }
        self.unsynced = false;
        Ok(())
    }

    /// Ends the current group so that a crash of this process loses none of it, without
    /// waiting for the disk (no fsync): a power cut may still lose it until the next
    /// [`Journal::commit`]. Errors as [`Journal::commit`].
    pub fn commit_for_crash(&mut self) -> Result<()> {
        self.end_group()
    }

    /// Commits the current group at synchronous=NORMAL (no fsync).
    fn end_group(&mut self) -> Result<()> {
        if !self.in_group {
            return Ok(());
        }
        self.in_group = false;
        let committed = self.mark_running().and_then(|()| {
            self.conn
                .prepare_cached("COMMIT")
                .and_then(|mut st| st.execute([]))
        });
        if let Err(e) = committed {
            self.running_marks.clear();
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e).with_context(|| self.commit_failed());
        }
        self.unsynced = true;
        Ok(())
    }

    fn commit_failed(&self) -> String {
        format!(
            "cannot commit to journal {} (disk full?); the last results were not saved",
            self.shown()
        )
    }

    /// Abandons the current group, if any.
    pub fn rollback(&mut self) {
        self.running_marks.clear();
        if self.in_group {
            self.in_group = false;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // An uncommitted group is abandoned, exactly as a crash would.
        self.rollback();
    }
}
