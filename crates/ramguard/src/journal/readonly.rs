//! Opening a journal the user may read but not write: another user's 0644 file, a folder
//! they cannot write in, a read-only mount.
//!
//! A WAL-mode database normally needs its `-shm` file, which SQLite creates beside the
//! journal, so a plain read-only open fails with "attempt to write a readonly database" and
//! the journal looked corrupt. Here the journal is opened `mode=ro` first (works when the
//! `-shm` already exists and is readable: a run is going on, or the owner left it), then
//! `immutable=1`, which reads the main file without locks or `-shm`. With no `-wal` file
//! there is nothing beyond the main file, so it is read `immutable=1` at once: a read
//! creates no file beside the journal. ramguard's runs
//! checkpoint the WAL into the main file when they close, so a finished sweep reads whole;
//! commits of a run still going on may be missing from what is shown.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use rustix::fs::{access, Access};

/// Returns true if and only if this process may write the journal and create its `-wal`
/// and `-shm` files beside it.
pub fn writable(path: &Path) -> bool {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    access(path, Access::READ_OK | Access::WRITE_OK).is_ok()
        && access(dir, Access::WRITE_OK | Access::EXEC_OK).is_ok()
}

/// Opens the journal for reading only, never creating or changing a file.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = |query: &str| format!("file:{}?{query}", encode(path));
    // Without a `-wal` file the main file holds every commit: read it as it is, creating
    // no `-wal`/`-shm` beside it (a read must leave the folder as it found it).
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if !Path::new(&wal).exists() {
        return Connection::open_with_flags(uri("mode=ro&immutable=1"), flags);
    }
    let conn = Connection::open_with_flags(uri("mode=ro"), flags)?;
    if conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok()
    {
        return Ok(conn);
    }
    drop(conn);
    Connection::open_with_flags(uri("mode=ro&immutable=1"), flags)
}

/// The path as a URI path: `%`, `?` and `#` (and anything not printable ASCII) escaped.
fn encode(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'?' | b'#') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_escape_what_sqlite_would_read_as_query_or_fragment() {
        assert_eq!(encode(Path::new("/a b/j?.db#1%")), "/a%20b/j%3F.db%231%25");
    }
}
