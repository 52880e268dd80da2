//! Attempts' stdout and stderr, written to their log files by one pump thread.
//!
//! Creating two files per attempt on the supervisor's thread was the largest single cost of
//! a trivial task (BENCHMARKS.md, "Overhead"): an ext4 inode allocation can take from 0.1 ms
//! to over 1 ms when many files were deleted recently, and the supervisor's loop is serial.
//! So each stream is a pipe: [`Logs::capture`] only makes the pipe (no filesystem work) and
//! hands back its write end for the child; the pump thread creates the file on the stream's
//! first bytes and appends what arrives until end of file (the task and every descendant
//! closed it). A stream that stays silent leaves no file: a sweep of a thousand quiet tasks
//! does not leave two thousand empty files, and creating them cost a third of the
//! supervisor's time per trivial task on this host's ext4 (BENCHMARKS.md, "Overhead").
//! A full pipe blocks the writer, as a slow disk would; nothing is buffered beyond the pipe.
//!
//! Names and modes: an attempt's files are named by its task's *identity* (a short hash of
//! the sweep's name and the task's key, [`file_stem`]) and its attempt number in the journal,
//! `<id>.<attempt>.{out,err,result.json}`: the same task gets the same name in every run,
//! another task never does, and no parameter value (a token, a path) appears in a file or
//! folder name. Directories ramguard creates are 0700 and files 0600 whatever the umask
//! ([`private_dir`], [`private_file`]), so logs that print secrets stay the user's.
//!
//! Ownership: the supervisor thread creates pipes and sends the read end, tagged with an id,
//! over a channel *before* registering it with epoll, so the pump always finds the stream an
//! event names. Only the pump thread touches the files. [`Logs::finish`] waits (bounded) for
//! every stream to reach end of file, so logs are complete when `ramguard run` prints its
//! summary.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};

/// The epoll id of the eventfd that asks the pump to finish.
const FINISH: u64 = u64::MAX;

/// How long [`Logs::finish`] waits for streams still open (a leftover process holding a
/// pipe) before it closes them.
const FINISH_GRACE: Duration = Duration::from_secs(2);

/// The stable, private name of a task's files in a sweep: 12 hex digits of a hash of the
/// sweep's name and the task's identity key.
pub fn file_stem(sweep: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"ramguard-log-v1\0");
    h.update(sweep.as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A folder name for a sweep's logs: the name itself when it is short and plain
/// (`[A-Za-z0-9._-]`, at most 40 characters, not starting with a dot), else its plain
/// characters cut to 24 plus a short hash, so that two names never share a folder.
pub fn dir_name(sweep: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if !sweep.is_empty() && sweep.len() <= 40 && sweep.chars().all(plain) && !sweep.starts_with('.')
    {
        return sweep.to_string();
    }
    let cut: String = sweep
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .take(24)
        .collect();
    let cut = cut.trim_start_matches('.');
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(sweep.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    if cut.is_empty() {
        format!("sweep-{hash}")
    } else {
        format!("{cut}-{hash}")
    }
}

/// Creates `dir` and any missing parent, each new one with mode 0700 whatever the umask.
/// With `tighten`, the directory itself is made 0700 even if it existed (ramguard's own
/// `.ramguard/logs/<sweep>`; never a directory the user named).
pub fn private_dir(dir: &Path, tighten: bool) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p);
        at = p.parent();
    }
    for p in missing.iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(p) {
            Ok(()) => std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    if tighten && missing.is_empty() {
        let meta = std::fs::metadata(dir)?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Creates (or truncates) a file readable and writable by its owner only, whatever the umask.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    if f.metadata()?.permissions().mode() & 0o777 != 0o600 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Makes a file the task wrote (its result) readable by its owner only.
pub fn make_private(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// One stream being pumped to its file.
#[derive(Debug)]
struct Stream {
    pipe: File,
    path: PathBuf,
    file: Option<File>,
    /// A write failed (disk full…): the rest is read and dropped, so the task never blocks.
    broken: bool,
}

/// The pump thread and the means to hand it streams.
#[derive(Debug)]
pub struct Logs {
    epoll: OwnedFd,
    finish: OwnedFd,
    streams: Sender<(u64, Stream)>,
    next_id: u64,
    thread: Option<JoinHandle<()>>,
}

impl Logs {
    /// Starts the pump thread.
    pub fn start() -> Result<Logs> {
        raise_fd_limit();
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .context("cannot create an epoll instance for task logs")?;
        let finish =
            eventfd(0, EventfdFlags::CLOEXEC).context("cannot create an eventfd for task logs")?;
        watch(&epoll, &finish, FINISH).context("cannot watch the log pump's eventfd")?;
        let (tx, rx) = channel();
        let pump_epoll = epoll.try_clone()?;
        let pump_finish = finish.try_clone()?;
        let thread = std::thread::Builder::new()
            .name("ramguard-logs".into())
            .spawn(move || pump(pump_epoll, pump_finish, rx))
            .context("cannot start the log pump thread")?;
        Ok(Logs {
            epoll,
            finish,
            streams: tx,
            next_id: 0,
            thread: Some(thread),
        })
    }

    /// A pipe whose bytes end up in `path`; returns the write end, for the child.
    pub fn capture(&mut self, path: PathBuf) -> Result<OwnedFd> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC).context("cannot create a log pipe")?;
        let id = self.next_id;
        self.next_id += 1;
        let fd = read.as_raw_fd();
        let stream = Stream {
            pipe: File::from(read),
            path,
            file: None,
            broken: false,
        };
        self.streams
            .send((id, stream))
            .ok()
            .context("the log pump thread has stopped")?;
        // SAFETY: the stream just sent owns `fd`, and the pump closes a stream only on an
        // event for it (none before this registration) or after `finish`, which this thread
        // calls after its last capture.
        let read = unsafe { BorrowedFd::borrow_raw(fd) };
        watch(&self.epoll, read, id).context("cannot watch a log pipe")?;
        Ok(write)
    }

    /// Waits until every stream has reached end of file (at most [`FINISH_GRACE`]) and the
    /// pump has stopped.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let _ = rustix::io::write(&self.finish, &1u64.to_ne_bytes());
        let _ = thread.join();
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Adds a descriptor to the pump's epoll set, reporting readable data (and hang-up) as `id`.
fn watch(epoll: &OwnedFd, fd: impl AsFd, id: u64) -> rustix::io::Result<()> {
    epoll::add(epoll, fd, EventData::new_u64(id), EventFlags::IN)
}

/// The pump thread's body.
fn pump(epoll: OwnedFd, finish: OwnedFd, incoming: Receiver<(u64, Stream)>) {
    let mut streams: HashMap<u64, Stream> = HashMap::new();
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::with_capacity(64);
    loop {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                Timespec::try_from(left.max(Duration::from_millis(1))).ok()
            }
        };
        events.clear();
        match epoll::wait(&epoll, spare_capacity(&mut events), timeout.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(_) => break,
        }
        for ev in &events {
            let id = ev.data.u64();
            if id == FINISH {
                // Level-triggered: stop watching it, or it would wake us forever.
                let _ = epoll::delete(&epoll, &finish);
                deadline = Some(Instant::now() + FINISH_GRACE);
                continue;
            }
            if !streams.contains_key(&id) {
                streams.extend(incoming.try_iter());
            }
            let Some(s) = streams.get_mut(&id) else {
                continue;
            };
            match s.pipe.read(&mut buf) {
                Ok(n) if n > 0 => write(s, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // End of file, or a read error: the stream is over.
                _ => {
                    if let Some(s) = streams.remove(&id) {
                        close(&epoll, s);
                    }
                }
            }
        }
        if deadline.is_some() {
            streams.extend(incoming.try_iter());
            if streams.is_empty() {
                break;
            }
        }
    }
    // Streams still open after the grace: keep what they wrote, and their files.
    streams.extend(incoming.try_iter());
    for (_, s) in streams.drain() {
        close(&epoll, s);
    }
}

/// Appends to the stream's file, creating it on the first bytes.
fn write(s: &mut Stream, data: &[u8]) {
    if s.broken {
        return;
    }
    if s.file.is_none() {
        match private_file(&s.path) {
            Ok(f) => s.file = Some(f),
            Err(e) => {
                warn(format_args!("cannot create {}: {e}", s.path.display()));
                s.broken = true;
                return;
            }
        }
    }
    if let Some(f) = &mut s.file {
        if let Err(e) = f.write_all(data) {
            warn(format_args!("cannot write {}: {e}", s.path.display()));
            s.broken = true;
        }
    }
}

/// Ends a stream: it leaves epoll at once (a just-cloned child may still hold a copy of
/// the read end, which would keep reporting a hang-up for an id we no longer know), and a
/// silent stream removes any file of the same name a `--fresh` rerun left behind.
fn close(epoll: &OwnedFd, s: Stream) {
    let _ = epoll::delete(epoll, &s.pipe);
    if s.file.is_none() && !s.broken {
        match std::fs::remove_file(&s.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                warn(format_args!("cannot remove {}: {e}", s.path.display()));
            }
            _ => {}
        }
    }
}

/// Raises the soft limit on open files to the hard one: each running attempt holds two
/// pipe read ends and up to two log files here, and the usual soft limit is 1024.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// One line on ramguard's stderr; never panics (stderr may be a closed pipe).
fn warn(what: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "ramguard: {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_distinct_and_carry_no_values() {
        assert_eq!(
            file_stem("s", "{\"x\":\"2\"}"),
            file_stem("s", "{\"x\":\"2\"}")
        );
        assert_ne!(
            file_stem("s", "{\"x\":\"2\"}"),
            file_stem("s", "{\"x\":\"4\"}")
        );
        assert_ne!(file_stem("s", "k"), file_stem("t", "k"));
        assert!(!file_stem("s", "hunter2").contains("hunter2"));
        assert_eq!(dir_name("train-2"), "train-2");
        let long = dir_name(&"a".repeat(200));
        assert!(long.len() <= 24 + 1 + 8, "{long}");
        assert_ne!(dir_name("a b"), dir_name("a_b"));
        assert!(!dir_name("..").starts_with('.'));
        assert!(!dir_name("x/../../etc").contains('/'));
    }

    #[test]
    fn private_dirs_and_files_ignore_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        private_dir(&deep, false).unwrap();
        for p in [dir.path().join("a"), deep.clone()] {
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        let f = deep.join("f");
        drop(private_file(&f).unwrap());
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn bytes_reach_their_files_and_silent_streams_leave_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut logs = Logs::start().unwrap();
        let a = dir.path().join("a.out");
        let b = dir.path().join("b.out");
        let wa = logs.capture(a.clone()).unwrap();
        let wb = logs.capture(b.clone()).unwrap();
        let mut fa = File::from(wa);
        for i in 0..1000 {
            writeln!(fa, "line {i}").unwrap();
        }
        drop(fa);
        drop(wb);
        logs.finish();
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.ends_with("line 999\n"));
        assert!(!b.exists(), "a silent stream left {}", b.display());
    }
}
