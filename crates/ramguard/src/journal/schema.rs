//! The journal's on-disk schema and its migrations.
//!
//! The schema version lives in `PRAGMA user_version`; `PRAGMA application_id` marks the file
//! as a ramguard journal so that some other SQLite database passed by mistake is refused
//! instead of being written into. [`MIGRATIONS`]`[i]` turns version `i` into version `i + 1`;
//! each runs in one transaction together with the version bump, so a crash mid-migration
//! leaves the old version intact. Migrations are append-only: never edit a released one
//! (the v1 fixture in `tests/fixtures/journals/` must keep opening).
//!
//! Nothing here decides policy; it only knows tables, indexes and versions.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

/// The schema version this ramguard writes; older journals are migrated up to it.
pub const SCHEMA_VERSION: u32 = 5;

/// `PRAGMA application_id` of a ramguard journal: the bytes "rmgd".
pub const APPLICATION_ID: i32 = 0x726d_6764;

/// Version 0 → 1: the first schema.
const V1: &str = r#"
CREATE TABLE sweeps (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    fingerprint      TEXT    NOT NULL,
    template         TEXT    NOT NULL,
    settings         TEXT    NOT NULL,
    created_unix_ms  INTEGER NOT NULL,
    updated_unix_ms  INTEGER NOT NULL
);
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY,
    sweep_id         INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    key              TEXT    NOT NULL,
    seq              INTEGER NOT NULL,
    params           TEXT    NOT NULL,
    argv             TEXT    NOT NULL,
    state            TEXT    NOT NULL
        CHECK (state IN ('queued', 'running', 'done', 'failed', 'interrupted')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    peak             INTEGER,
    lower_bound      INTEGER,
    last_attempt_id  INTEGER,
    UNIQUE (sweep_id, key)
);
CREATE INDEX tasks_by_state ON tasks (sweep_id, state);
CREATE INDEX tasks_by_seq ON tasks (sweep_id, seq);
CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    sweep_id         INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    task_id          INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    pid              INTEGER NOT NULL,
    supervisor_pid   INTEGER NOT NULL,
    started_unix_ms  INTEGER NOT NULL,
    last_t_ms        INTEGER,
    last_rss         INTEGER,
    last_pss         INTEGER,
    ended_unix_ms    INTEGER,
    duration_ms      INTEGER,
    peak_rss         INTEGER,
    peak_pss         INTEGER,
    class            TEXT,
    code             INTEGER,
    signal           INTEGER,
    reason           TEXT,
    requeued         INTEGER NOT NULL DEFAULT 0,
    result           TEXT,
    result_raw       TEXT,
    result_warning   TEXT
);
CREATE INDEX attempts_by_task ON attempts (task_id);
CREATE INDEX attempts_running ON attempts (sweep_id) WHERE class IS NULL;
CREATE INDEX attempts_by_class ON attempts (sweep_id, class);
CREATE TABLE samples (
    attempt_id       INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    t_ms             INTEGER NOT NULL,
    rss              INTEGER NOT NULL,
    pss              INTEGER
);
CREATE INDEX samples_by_attempt ON samples (attempt_id, t_ms);
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    sweep_id         INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    unix_ms          INTEGER NOT NULL,
    kind             TEXT    NOT NULL,
    detail           TEXT    NOT NULL
);
CREATE INDEX events_by_sweep ON events (sweep_id, kind, unix_ms);
"#;

/// Version 1 → 2: which tasks the latest run of a sweep asked for, and the order its
/// params were written in. A v1 journal's tasks all count as its latest run (run 0), and
/// its params keep the order of the template's placeholders. Keys of the earliest journals
/// (`beta=3.0 lam=0`) become today's identity (the canonical JSON of the params, which
/// those journals stored sorted and compact; the argv for tasks without params), so their
/// tasks are found again.
const V2: &str = r#"
ALTER TABLE sweeps ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sweeps ADD COLUMN param_order TEXT;
ALTER TABLE tasks ADD COLUMN last_run INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_by_run ON tasks (sweep_id, last_run, state);
CREATE INDEX sweeps_by_fingerprint ON sweeps (fingerprint);
UPDATE tasks SET key = params
 WHERE substr(key, 1, 1) NOT IN ('{', '[') AND params LIKE '{%' AND params <> '{}';
UPDATE tasks SET key = argv
 WHERE substr(key, 1, 1) NOT IN ('{', '[') AND (params IS NULL OR params = '{}');
"#;

/// Version 2 → 3: the thread variables each attempt ran with (JSON object), so that
/// `results` shows what a task really got.
const V3: &str = "ALTER TABLE attempts ADD COLUMN threads TEXT;";

/// Version 3 → 4: one measure of a task's memory (`peak`, `used`: private pages, shared pages
/// once, plus its /dev/shm files), recorded beside RSS, PSS, shm and VIRT; the /dev/shm
/// files an attempt left or that ramguard removed (JSON lists of `{name, allocated}`).
const V4: &str = r#"
ALTER TABLE attempts ADD COLUMN peak INTEGER;
ALTER TABLE attempts ADD COLUMN peak_shm INTEGER;
ALTER TABLE attempts ADD COLUMN peak_virt INTEGER;
ALTER TABLE attempts ADD COLUMN last_used INTEGER;
ALTER TABLE attempts ADD COLUMN shm_left TEXT;
ALTER TABLE attempts ADD COLUMN shm_removed TEXT;
ALTER TABLE samples ADD COLUMN used INTEGER;
ALTER TABLE samples ADD COLUMN shm INTEGER;
ALTER TABLE samples ADD COLUMN virt INTEGER;
"#;

/// Version 4 → 5: the host's available memory during runs, for `report`'s memory chart.
const V5: &str = r#"
CREATE TABLE host_samples (
    sweep_id         INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    unix_ms          INTEGER NOT NULL,
    available        INTEGER NOT NULL,
    used             INTEGER NOT NULL
);
CREATE INDEX host_samples_by_sweep ON host_samples (sweep_id, unix_ms);
"#;

/// `MIGRATIONS[i]` upgrades a journal from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// Reads the journal's schema version.
pub fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// Refuses a file that is not a ramguard journal or was written by a newer ramguard.
///
/// Returns the version found. Reads only; writes nothing.
pub fn check(conn: &Connection, path_shown: &str) -> Result<u32> {
    let v = version(conn).with_context(|| corrupt_context(path_shown))?;
    if v > SCHEMA_VERSION {
        bail!(
            "journal {path_shown} was written by a newer ramguard (schema v{v}; this ramguard \
             reads up to v{SCHEMA_VERSION}); hint: upgrade ramguard, or pass --journal to use \
             another journal"
        );
    }
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .with_context(|| corrupt_context(path_shown))?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .with_context(|| corrupt_context(path_shown))?;
    if (v == 0 && objects > 0) || (v > 0 && app != APPLICATION_ID) {
        bail!(
            "{path_shown} is a SQLite database but not a ramguard journal; it was left \
             untouched; hint: pass --journal with another path"
        );
    }
    Ok(v)
}

/// Brings the schema up to [`SCHEMA_VERSION`], one transaction per step.
pub fn migrate(conn: &mut Connection, path_shown: &str) -> Result<()> {
    let mut v = check(conn, path_shown)?;
    while (v as usize) < MIGRATIONS.len() {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .with_context(|| format!("cannot migrate journal {path_shown}"))?;
        // Re-read inside the write lock: another process may have migrated meanwhile.
        let now = version(&tx).with_context(|| corrupt_context(path_shown))?;
        if now != v {
            v = now;
            continue;
        }
        tx.execute_batch(MIGRATIONS[v as usize])
            .with_context(|| format!("cannot migrate journal {path_shown} to v{}", v + 1))?;
        tx.pragma_update(None, "user_version", v + 1)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()
            .with_context(|| format!("cannot migrate journal {path_shown} to v{}", v + 1))?;
        v += 1;
    }
    Ok(())
}

/// The context attached to any failure to read a journal's structure.
pub fn corrupt_context(path_shown: &str) -> String {
    format!(
        "cannot read journal {path_shown} (corrupt or not a journal? it was left untouched; \
         hint: move it aside and rerun, or pass --journal)"
    )
}
