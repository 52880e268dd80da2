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
//! - **Durability**: `journal_mode=WAL`, `synchronous=FULL`. Each commit fsyncs the WAL.
//!   A process crash (SIGKILL, panic, OOM kill of ramguard itself) loses only the group not
//!   yet committed; a power cut or kernel crash loses the same and nothing more, because the
//!   WAL is on disk before `commit` returns. (With `synchronous=NORMAL` a power cut could
//!   also lose the last committed groups, which would break "reported means durable".)
//!   Group commits keep the fsync cost per group, not per task: see the report's figures.
//! - **Interrupted work**: an attempt row with no exit class is running. When its supervisor
//!   is gone (we hold the sweep lock, so it must be), [`Journal::recover_interrupted`] closes
//!   it as `interrupted`, makes its task rerun, and returns its pid for the caller to kill.
//! - **One supervisor per sweep**: [`Journal::begin_sweep`] takes an exclusive flock on
//!   `<journal>.<name-hash>.lock` (see [`lock`]), held by the [`SweepHandle`].
//! - **Faults**: a corrupt, truncated or foreign file is refused and never rewritten; a newer
//!   schema is refused; a failed commit (disk full) returns Err and rolls the group back.
//!
//! Reading for `status`, `results`, `list` lives in [`read`]; those never take the lock and
//! see only committed groups (WAL readers do not block the writer).

pub mod display;
pub mod identity;
pub mod lock;
pub mod progress;
pub mod read;
pub mod readonly;
pub mod report;
pub mod schema;
pub mod task_env;
pub mod timeline;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ramguard_core::policy::{Ending, ExitClass};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
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
        }
    }

    /// Opens the journal for writing, creating it if missing (directory 0700 if its parent
    /// exists, file 0600), migrating it, and switching it to WAL.
    pub fn open(path: &Path) -> Result<Journal> {
        let shown = path.display().to_string();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            // Two runs started at once both see no directory: the loser's EEXIST is fine.
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
                    _ => Err(e),
                })
                .with_context(|| {
                    format!(
                        "cannot create journal directory {} for {shown}; hint: create it or \
                         pass --journal with a path in an existing directory",
                        dir.display()
                    )
                })?;
        }
        let exists = path.exists();
        if !exists {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map(drop)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .with_context(|| format!("cannot create journal {shown}"))?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("cannot open journal {shown}"))?;
        schema::check(&conn, &shown)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if exists {
            // A damaged file is refused before anything is written to it (a write could
            // otherwise be checkpointed over it). Runs once per `ramguard run`.
            let verdict: String = conn
                .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
                .with_context(|| schema::corrupt_context(&shown))?;
            if verdict != "ok" {
                bail!("{}: {verdict}", schema::corrupt_context(&shown));
            }
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .with_context(|| schema::corrupt_context(&shown))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!("journal {shown} cannot use WAL mode (got '{mode}'); hint: put it on a local filesystem");
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .with_context(|| format!("cannot configure journal {shown}"))?;
        schema::migrate(&mut conn, &shown)?;
        Ok(Journal::with_conn(conn, path))
    }

    /// Opens an existing journal for reading (`status`, `results`, `list`); never creates,
    /// but migrates a journal from an older ramguard.
    pub fn open_existing(path: &Path) -> Result<Journal> {
        let shown = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.len() > 0 => {}
            Ok(m) if m.is_file() => {
                bail!("journal {shown} is empty (truncated?); it was left untouched; hint: move it aside and rerun `ramguard run`")
            }
            Ok(_) => bail!("journal {shown} is not a file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("no journal at {shown}: run `ramguard run` first (or pass --journal)")
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read journal {shown}")),
        }
        if !readonly::writable(path) {
            // Readable but not writable (another user's journal, a read-only mount): read
            // it as it is; never "corrupt", never migrated.
            let conn =
                readonly::open(path).with_context(|| format!("cannot open journal {shown}"))?;
            let v = schema::check(&conn, &shown)?;
            if v < SCHEMA_VERSION {
                bail!("journal {shown} was written by an older ramguard (schema v{v}) and is read-only here, so it cannot be upgraded; hint: open it once as its owner, or copy it");
            }
            return Ok(Journal::with_conn(conn, path));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)
            .or_else(|_| {
                Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
            })
            .with_context(|| format!("cannot open journal {shown}"))?;
        let v = schema::check(&conn, &shown)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if v < SCHEMA_VERSION {
            // Old journals keep opening: each migration step is one transaction.
            schema::migrate(&mut conn, &shown)?;
        }
        Ok(Journal::with_conn(conn, path))
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
        if !self.in_group {
            return Ok(());
        }
        self.in_group = false;
        let committed = self
            .conn
            .prepare_cached("COMMIT")
            .and_then(|mut st| st.execute([]));
        if let Err(e) = committed {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e).with_context(|| {
                format!(
                    "cannot commit to journal {} (disk full?); the last results were not saved",
                    self.shown()
                )
            });
        }
        Ok(())
    }

    /// Abandons the current group, if any.
    pub fn rollback(&mut self) {
        if self.in_group {
            self.in_group = false;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Starts (or resumes) a sweep: refuses a changed fingerprint unless `fresh`, takes the
    /// sweep's lock, and with `fresh` deletes its tasks, attempts and events first.
    pub fn begin_sweep(&mut self, spec: &SweepSpec, fresh: bool) -> Result<SweepHandle> {
        if spec.name.trim().is_empty() {
            bail!("sweep name is empty; hint: pass --name NAME");
        }
        self.commit()?;
        // Lock first: another supervisor's open group would make any write wait.
        let lock = SweepLock::acquire(&self.path, &spec.name)?;
        let now = now_unix_ms();
        let settings = canonical_json(&spec.settings);
        self.group()?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO sweeps (name, fingerprint, template, settings, created_unix_ms, updated_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![spec.name, spec.fingerprint, spec.template, settings, now],
            )
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        let (id, old_fp, old_template, runs): (i64, String, String, i64) = self
            .conn
            .query_row(
                "SELECT id, fingerprint, template, runs FROM sweeps WHERE name = ?1",
                [&spec.name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .with_context(|| schema::corrupt_context(&self.shown()))?;
        self.commit()?;
        // A sweep journaled before schema v2 has a fingerprint of other settings (-j,
        // --threads): the same command adopts it, and the update below rewrites it.
        let legacy = runs == 0 && old_template == spec.template;
        if old_fp != spec.fingerprint && !fresh && !legacy && old_template == spec.template {
            bail!(
                "sweep '{}' in {} runs `{}` with other settings (--shell); hint: choose another \
                 --name, leave --name out, or pass --fresh to replace that sweep's results",
                spec.name,
                self.shown(),
                old_template
            );
        }
        if old_fp != spec.fingerprint && !fresh && !legacy {
            bail!(
                "sweep '{}' in {} runs another command: `{}`, not `{}`; hint: choose another \
                 --name for this one, leave --name out (ramguard then names a sweep after its \
                 command), or pass --fresh to replace that sweep's results",
                spec.name,
                self.shown(),
                old_template,
                spec.template
            );
        }
        self.group()?;
        if fresh {
            // Samples cascade from attempts; delete children first so the cascade is small.
            self.conn.execute(
                "DELETE FROM samples WHERE attempt_id IN (SELECT id FROM attempts WHERE sweep_id = ?1)",
                [id],
            )?;
            self.conn
                .execute("DELETE FROM attempts WHERE sweep_id = ?1", [id])?;
            self.conn
                .execute("DELETE FROM tasks WHERE sweep_id = ?1", [id])?;
            self.conn
                .execute("DELETE FROM events WHERE sweep_id = ?1", [id])?;
            self.task_ids.retain(|(sweep, _), _| *sweep != id);
        }
        self.conn
            .execute(
                "UPDATE sweeps SET fingerprint = ?2, template = ?3, settings = ?4, updated_unix_ms = ?5, runs = runs + 1 WHERE id = ?1",
                params![id, spec.fingerprint, spec.template, settings, now],
            )
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        let run: i64 = self
            .conn
            .query_row("SELECT runs FROM sweeps WHERE id = ?1", [id], |r| r.get(0))?;
        self.commit()?;
        Ok(SweepHandle {
            id,
            name: spec.name.clone(),
            run,
            lock,
        })
    }

    /// Inserts the tasks not yet journaled (by key), marks every task given as part of this
    /// run's task set, and returns every task's record, in the order given. Commits.
    pub fn sync_tasks(
        &mut self,
        sweep: &SweepHandle,
        tasks: &[NewTask],
    ) -> Result<Vec<TaskRecord>> {
        self.group()?;
        let shown = self.shown();
        let next_seq: i64 = self.conn.query_row(
            "SELECT coalesce(max(seq), -1) + 1 FROM tasks WHERE sweep_id = ?1",
            [sweep.id],
            |r| r.get(0),
        )?;
        let mut out = Vec::with_capacity(tasks.len());
        let mut ids = Vec::with_capacity(tasks.len());
        {
            let mut insert = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO tasks (sweep_id, key, seq, params, argv, state, last_run) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
            )?;
            let mut mark = self.conn.prepare_cached(
                "UPDATE tasks SET last_run = ?3 WHERE sweep_id = ?1 AND key = ?2 AND last_run != ?3",
            )?;
            let mut select = self.conn.prepare_cached(
                "SELECT state, attempts, peak, lower_bound, id FROM tasks WHERE sweep_id = ?1 AND key = ?2",
            )?;
            for (i, t) in tasks.iter().enumerate() {
                let argv = serde_json::to_string(&t.argv)?;
                insert
                    .execute(params![
                        sweep.id,
                        t.key,
                        next_seq + i as i64,
                        t.params.to_string(),
                        argv,
                        sweep.run
                    ])
                    .with_context(|| format!("cannot write journal {shown}"))?;
                mark.execute(params![sweep.id, t.key, sweep.run])
                    .with_context(|| format!("cannot write journal {shown}"))?;
                let (rec, id) = select.query_row(params![sweep.id, t.key], |r| {
                    let state: String = r.get(0)?;
                    let rec = TaskRecord {
                        key: t.key.clone(),
                        state: TaskStateRow::parse(&state).unwrap_or(TaskStateRow::Queued),
                        attempts: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        peak: to_u64(r.get(2)?),
                        lower_bound: to_u64(r.get(3)?),
                    };
                    Ok((rec, r.get::<_, i64>(4)?))
                })?;
                out.push(rec);
                ids.push(id);
            }
        }
        self.commit()?;
        for (t, id) in tasks.iter().zip(ids) {
            self.task_ids.insert((sweep.id, t.key.clone()), id);
        }
        Ok(out)
    }

    /// Closes attempts left running by a dead supervisor as `interrupted`, makes their tasks
    /// run again, and returns their pids for the caller to kill. Commits.
    pub fn recover_interrupted(&mut self, sweep: &SweepHandle) -> Result<Vec<Orphan>> {
        self.group()?;
        let now = now_unix_ms();
        let rows: Vec<(i64, i64, String, i64, i64, i64)> = {
            let mut st = self.conn.prepare(
                "SELECT a.id, a.task_id, t.key, a.pid, a.started_unix_ms, a.supervisor_pid
                 FROM attempts a JOIN tasks t ON t.id = a.task_id
                 WHERE a.sweep_id = ?1 AND a.class IS NULL ORDER BY a.id",
            )?;
            let it = st.query_map([sweep.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            it.collect::<rusqlite::Result<_>>()?
        };
        let mut orphans = Vec::with_capacity(rows.len());
        for (attempt_id, task_id, key, pid, started, sup) in rows {
            let peak: Option<i64> = self.conn.query_row(
                "SELECT max(rss) FROM samples WHERE attempt_id = ?1",
                [attempt_id],
                |r| r.get(0),
            )?;
            self.conn.execute(
                "UPDATE attempts SET class = 'interrupted', ended_unix_ms = ?2,
                   duration_ms = max(0, ?2 - started_unix_ms),
                   peak_rss = coalesce(peak_rss, ?3),
                   reason = ?4 WHERE id = ?1",
                params![
                    attempt_id,
                    now,
                    peak,
                    format!("ramguard (pid {sup}) stopped while the task ran")
                ],
            )?;
            self.conn.execute(
                "UPDATE tasks SET state = 'interrupted' WHERE id = ?1 AND state = 'running'",
                [task_id],
            )?;
            self.timelines.remove(&attempt_id);
            self.attempt_tasks.remove(&attempt_id);
            orphans.push(Orphan {
                task_key: key,
                pid: u32::try_from(pid).unwrap_or(0),
                started_unix_ms: started,
            });
        }
        // A task marked running with no open attempt (crash between writes is impossible in
        // one transaction, but be forgiving) is interrupted too.
        self.conn.execute(
            "UPDATE tasks SET state = 'interrupted' WHERE sweep_id = ?1 AND state = 'running'
               AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.task_id = tasks.id AND a.class IS NULL)",
            [sweep.id],
        )?;
        self.commit()?;
        Ok(orphans)
    }

    /// Journals the start of an attempt (in the current group) and returns its id.
    pub fn attempt_started(
        &mut self,
        sweep: &SweepHandle,
        task_key: &str,
        attempt: u32,
        pid: u32,
        started_unix_ms: i64,
    ) -> Result<i64> {
        self.group()?;
        let task_id: i64 = match self.task_ids.get(&(sweep.id, task_key.to_string())) {
            Some(&id) => id,
            None => self
                .conn
                .prepare_cached("SELECT id FROM tasks WHERE sweep_id = ?1 AND key = ?2")?
                .query_row(params![sweep.id, task_key], |r| r.get(0))
                .optional()?
                .with_context(|| {
                    format!(
                        "task '{task_key}' is not in sweep '{}' (call sync_tasks first)",
                        sweep.name
                    )
                })?,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO attempts (sweep_id, task_id, attempt, pid, supervisor_pid, started_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                sweep.id,
                task_id,
                attempt,
                pid,
                std::process::id(),
                started_unix_ms
            ])
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        let id = self.conn.last_insert_rowid();
        self.conn
            .prepare_cached(
                "UPDATE tasks SET state = 'running', attempts = attempts + 1, last_attempt_id = ?2 WHERE id = ?1",
            )?
            .execute(params![task_id, id])?;
        self.timelines.insert(id, Timeline::fresh());
        self.attempt_tasks.insert(id, task_id);
        Ok(id)
    }

    /// Adds memory samples to a running attempt's timeline (in the current group),
    /// downsampled to at most [`timeline::MAX_POINTS`] rows.
    pub fn add_samples(&mut self, attempt_id: i64, samples: &[MemSample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.group()?;
        let tl = self.timelines.entry(attempt_id).or_default();
        for s in samples {
            tl.push(*s);
        }
        Self::flush_timeline(&self.conn, attempt_id, tl)
            .with_context(|| format!("cannot write journal {}", self.path.display()))
    }

    fn flush_timeline(
        conn: &Connection,
        attempt_id: i64,
        tl: &mut Timeline,
    ) -> rusqlite::Result<()> {
        let last = tl.last;
        let (peak_rss, peak_pss) = (tl.peak_rss, tl.peak_pss);
        let (peak_used, peak_shm, peak_virt) = (tl.peak_used, tl.peak_shm, tl.peak_virt);
        let (replace, pts) = tl.take_unpersisted();
        if replace {
            conn.prepare_cached("DELETE FROM samples WHERE attempt_id = ?1")?
                .execute([attempt_id])?;
        }
        let mut ins = conn.prepare_cached(
            "INSERT INTO samples (attempt_id, t_ms, rss, pss, used, shm, virt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for p in pts {
            ins.execute(params![
                attempt_id,
                to_i64(p.t_ms),
                to_i64(p.rss),
                p.pss.map(to_i64),
                p.used.map(to_i64),
                p.shm.map(to_i64),
                p.virt.map(to_i64)
            ])?;
        }
        if let Some(l) = last {
            conn.prepare_cached(
                "UPDATE attempts SET last_t_ms = ?2, last_rss = ?3, last_pss = ?4,
                   peak_rss = max(coalesce(peak_rss, 0), ?5),
                   peak_pss = CASE WHEN ?6 IS NULL THEN peak_pss ELSE max(coalesce(peak_pss, 0), ?6) END,
                   last_used = ?7,
                   peak = CASE WHEN ?8 IS NULL THEN peak ELSE max(coalesce(peak, 0), ?8) END,
                   peak_shm = CASE WHEN ?9 IS NULL THEN peak_shm ELSE max(coalesce(peak_shm, 0), ?9) END,
                   peak_virt = CASE WHEN ?10 IS NULL THEN peak_virt ELSE max(coalesce(peak_virt, 0), ?10) END
                 WHERE id = ?1 AND class IS NULL",
            )?
            .execute(params![
                attempt_id,
                to_i64(l.t_ms),
                to_i64(l.rss),
                l.pss.map(to_i64),
                to_i64(peak_rss),
                peak_pss.map(to_i64),
                l.used.map(to_i64),
                peak_used.map(to_i64),
                peak_shm.map(to_i64),
                peak_virt.map(to_i64)
            ])?;
        }
        Ok(())
    }

    /// Journals how an attempt ended (in the current group) and moves its task to its next
    /// state: done → done; requeued → queued; interrupted → interrupted; otherwise failed.
    pub fn attempt_finished(&mut self, attempt_id: i64, end: &AttemptEnd) -> Result<()> {
        self.group()?;
        let shown = self.shown();
        if let Some(mut tl) = self.timelines.remove(&attempt_id) {
            tl.finish();
            Self::flush_timeline(&self.conn, attempt_id, &mut tl)
                .with_context(|| format!("cannot write journal {shown}"))?;
        }
        let (result, raw, warning) = match &end.result {
            None => (None, None, None),
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => (Some(v.to_string()), None, None),
                Err(e) => (
                    None,
                    Some(text.clone()),
                    Some(format!("result file is not valid JSON ({e}); kept as text")),
                ),
            },
        };
        let task_id: i64 = match self.attempt_tasks.remove(&attempt_id) {
            Some(id) => id,
            None => self
                .conn
                .prepare_cached("SELECT task_id FROM attempts WHERE id = ?1")?
                .query_row([attempt_id], |r| r.get(0))
                .optional()?
                .with_context(|| format!("no attempt {attempt_id} in journal {shown}"))?,
        };
        self.conn
            .prepare_cached(
                "UPDATE attempts SET ended_unix_ms = ?2, duration_ms = ?3,
                   peak_rss = max(coalesce(peak_rss, 0), ?4),
                   peak_pss = CASE WHEN ?5 IS NULL THEN peak_pss ELSE max(coalesce(peak_pss, 0), ?5) END,
                   class = ?6, code = ?7, signal = ?8, reason = ?9, requeued = ?10,
                   result = ?11, result_raw = ?12, result_warning = ?13,
                   peak = CASE WHEN ?14 IS NULL THEN peak ELSE max(coalesce(peak, 0), ?14) END,
                   peak_shm = CASE WHEN ?15 IS NULL THEN peak_shm ELSE max(coalesce(peak_shm, 0), ?15) END,
                   peak_virt = CASE WHEN ?16 IS NULL THEN peak_virt ELSE max(coalesce(peak_virt, 0), ?16) END,
                   shm_left = ?17, shm_removed = ?18
                 WHERE id = ?1",
            )?
            .execute(params![
                attempt_id,
                end.ended_unix_ms,
                to_i64(end.duration_ms),
                to_i64(end.peak_rss),
                end.peak_pss.map(to_i64),
                end.class.as_str(),
                end.ending.and_then(Ending::code),
                end.ending.and_then(Ending::signal),
                end.reason,
                end.requeued,
                result,
                raw,
                warning,
                end.peak.map(to_i64),
                end.peak_shm.map(to_i64),
                end.peak_virt.map(to_i64),
                end.shm_left,
                end.shm_removed
            ])
            .with_context(|| format!("cannot write journal {shown}"))?;
        // One peak: the attempt's own measure; PSS or RSS only for callers that have none.
        let peak = to_i64(end.peak.unwrap_or(end.peak_pss.unwrap_or(end.peak_rss)));
        let state = if end.class == ExitClass::Done {
            TaskStateRow::Done
        } else if end.class == ExitClass::Interrupted {
            TaskStateRow::Interrupted
        } else if end.requeued {
            TaskStateRow::Queued
        } else {
            TaskStateRow::Failed
        };
        let bound = matches!(end.class, ExitClass::Braked | ExitClass::OomKilled);
        self.conn
            .prepare_cached(
                "UPDATE tasks SET state = ?2,
                   peak = CASE WHEN ?2 = 'done' THEN ?3 ELSE peak END,
                   lower_bound = CASE WHEN ?4 THEN max(coalesce(lower_bound, 0), ?3) ELSE lower_bound END
                 WHERE id = ?1",
            )?
            .execute(params![task_id, state.as_str(), peak, bound])?;
        Ok(())
    }

    /// Journals a sweep event (brake, pause, learned-peak change…) in the current group.
    pub fn event(
        &mut self,
        sweep: &SweepHandle,
        unix_ms: i64,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.group()?;
        self.conn
            .prepare_cached(
                "INSERT INTO events (sweep_id, unix_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![sweep.id, unix_ms, kind, detail.to_string()])
            .with_context(|| format!("cannot write journal {}", self.shown()))?;
        Ok(())
    }

    /// What the sweep's done tasks showed (peak, duration, time to peak), in task order, for
    /// the policy to learn from.
    pub fn learned_history(&mut self, sweep: &SweepHandle) -> Result<Vec<Learned>> {
        // The time to peak is read off the attempt's timeline: its first sample at 95% of
        // the peak (what the policy learns live; samples hold PSS where it was refreshed).
        let mut st = self.conn.prepare_cached(
            "SELECT t.key, t.peak, a.duration_ms,
                    (SELECT min(s.t_ms) FROM samples s
                      WHERE s.attempt_id = a.id AND coalesce(s.used, s.pss, s.rss) >= t.peak * 0.95)
               FROM tasks t LEFT JOIN attempts a ON a.id = t.last_attempt_id
              WHERE t.sweep_id = ?1 AND t.state = 'done' AND t.peak IS NOT NULL
              ORDER BY t.seq",
        )?;
        let ms = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        let rows = st
            .query_map([sweep.id], |r| {
                Ok(Learned {
                    key: r.get(0)?,
                    peak: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    duration_ms: ms(r.get(2)?),
                    time_to_peak_ms: ms(r.get(3)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| schema::corrupt_context(&self.shown()))?;
        Ok(rows)
    }

    /// Test seam: caps the database size in pages, to provoke "disk full" on commit.
    #[doc(hidden)]
    pub fn limit_pages_for_tests(&mut self, pages: u64) -> Result<()> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // An uncommitted group is abandoned, exactly as a crash would.
        self.rollback();
    }
}
