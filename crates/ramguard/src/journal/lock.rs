//! One supervisor per sweep: an exclusive `flock` on `<journal>.<name-hash>.lock`, where
//! the hash is the first 16 hex digits of SHA-256 of the sweep's name (names may hold any
//! character). Keyed by name, not row id, so the lock is taken before the journal is written
//! at all: a second `ramguard run` is refused at once even while the first holds an open
//! write group.
//!
//! flock is released by the kernel when the holder dies, even by SIGKILL, so a stale lock
//! cannot outlive its process (unlike a pid row in the database). The file holds the
//! holder's pid as text so that the second `ramguard run` can name it; the pid is cleared
//! when the lock is released normally. Readers (`status`) never take the lock: they read the
//! pid and check whether that process is alive, which is only advice.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};

/// The lock file of sweep `sweep_name` beside the journal at `journal`.
pub fn lock_path(journal: &Path, sweep_name: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(sweep_name.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut name = journal
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{hash}.lock"));
    journal.with_file_name(name)
}

/// Holds a sweep's lock until dropped.
#[derive(Debug)]
pub struct SweepLock {
    file: File,
    path: PathBuf,
}

impl SweepLock {
    /// Takes the lock without waiting, or fails naming the pid that holds it.
    pub fn acquire(journal: &Path, sweep_name: &str) -> Result<SweepLock> {
        let path = lock_path(journal, sweep_name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let holder = read_pid(&mut file);
                let who =
                    holder.map_or_else(|| "another process".to_string(), |p| format!("pid {p}"));
                bail!(
                    "sweep '{sweep_name}' is already being run by {who} (lock {}); hint: wait \
                     for it, watch it with `ramguard status {sweep_name}`, or stop it first",
                    path.display()
                );
            }
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .with_context(|| format!("cannot write lock file {}", path.display()))?;
        Ok(SweepLock { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SweepLock {
    fn drop(&mut self) {
        // Clear the pid while still holding the lock, so `status` never names a finished run.
        let _ = self.file.set_len(0);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// The pid written in a sweep's lock file, if any (advisory: the process may be gone).
pub fn recorded_holder(journal: &Path, sweep_name: &str) -> Option<u32> {
    let mut f = File::open(lock_path(journal, sweep_name)).ok()?;
    read_pid(&mut f)
}

/// Returns true if and only if a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}
