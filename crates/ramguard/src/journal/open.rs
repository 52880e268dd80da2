//! Opening a journal: for writing (`run`: create, check, migrate, WAL) or for reading
//! (`status`, `results`, `list`, `report`, `plan`).

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

use super::{readonly, schema, Journal, BUSY_TIMEOUT, SCHEMA_VERSION};

impl Journal {
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
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .with_context(|| format!("cannot configure journal {shown}"))?;
        schema::migrate(&mut conn, &shown)?;
        Ok(Journal::with_conn(conn, path))
    }

    /// Opens an existing journal for reading (`status`, `results`, `list`, `report`, `plan`);
    /// never creates or changes a file: a journal from an older ramguard is read through a
    /// migrated copy in memory.
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
            if schema::check(&conn, &shown)? < SCHEMA_VERSION {
                return Ok(Journal::with_conn(migrated_copy(&conn, &shown)?, path));
            }
            return Ok(Journal::with_conn(conn, path));
        }
        // Peek without writing. An older journal is read through a migrated copy in memory
        // and left byte for byte as it was: the older ramguard that wrote it refuses a
        // migrated file. Only a writer (`run`) upgrades it.
        let peek = readonly::open(path).with_context(|| format!("cannot open journal {shown}"))?;
        if schema::check(&peek, &shown)? < SCHEMA_VERSION {
            let copy = migrated_copy(&peek, &shown)?;
            return Ok(Journal::with_conn(copy, path));
        }
        drop(peek);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .or_else(|_| {
                Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
            })
            .with_context(|| format!("cannot open journal {shown}"))?;
        schema::check(&conn, &shown)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Journal::with_conn(conn, path))
    }
}

/// An in-memory copy of the journal behind `source`, migrated to today's schema.
fn migrated_copy(source: &Connection, shown: &str) -> Result<Connection> {
    let mut copy = Connection::open_in_memory()
        .with_context(|| format!("cannot read journal {shown}: no memory for a copy"))?;
    Backup::new(source, &mut copy)
        .and_then(|b| b.run_to_completion(i32::MAX, Duration::ZERO, None))
        .with_context(|| schema::corrupt_context(shown))?;
    schema::migrate(&mut copy, shown)?;
    Ok(copy)
}
