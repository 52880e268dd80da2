//! `/dev/shm` files as task memory: which task created which file, what they hold, and
//! removing them when ramguard stops the task.
//!
//! tmpfs pages are memory that no process's RSS may show (a file written with `write(2)`,
//! a segment whose creator unmapped it) and that outlives the task. A file is a task's when
//! it appeared in `/dev/shm` during the run (a directory diff against the last listing),
//! belongs to ramguard's own user, and a process of the task's tree had it open or mapped
//! when ramguard looked (`/proc/PID/fd` links and `/proc/PID/maps`). Files that were there
//! before the run, belong to someone else, or that no task was seen holding are never the
//! tasks': ramguard neither counts nor removes them. A file counts with its allocated
//! blocks, not its length (`ftruncate` makes sparse files).
//!
//! The directory is listed again when its mtime changes (a file was created or removed) or
//! every [`RELIST_EVERY`]; between listings only the tasks' own files are stat'ed, so the
//! per-tick cost is one `stat` of the directory plus one per task file.
//!
//! After a task's processes are all gone, [`ShmWatch::settle`] removes its files that no
//! live process holds (when ramguard stopped the task, or with `--shm-cleanup`) and reports
//! the rest.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ramguard_core::policy::TaskId;
use ramguard_core::Bytes;
use rustix::process::{kill_process, Pid, Signal};

use super::tree::Trees;
use crate::probe::Root;

/// The longest time between two listings of `/dev/shm`.
pub const RELIST_EVERY: Duration = Duration::from_millis(200);

/// How many scans a new file of ours stays a candidate for attribution.
const ATTRIBUTION_TRIES: u8 = 10;

/// One file ramguard has seen in `/dev/shm`.
#[derive(Debug, Clone)]
struct Seen {
    inode: u64,
    owner: Option<TaskId>,
    allocated: Bytes,
    /// Scans left in which a task may still be found holding it.
    tries: u8,
    /// The tasks running when it first appeared (for a SIGBUS hint when nobody was seen
    /// holding it: with one task running, it can only be that task's).
    appeared_with: Vec<TaskId>,
}

pub use crate::executor::attempt::{Settled, TaskFile};

/// Watches `/dev/shm` for the running tasks.
#[derive(Debug)]
pub struct ShmWatch {
    root: Root,
    dir: PathBuf,
    uid: u32,
    /// The directory's mtime at the last listing.
    stamp: Option<(i64, i64)>,
    listed_at: Option<Duration>,
    seen: HashMap<String, Seen>,
}

impl ShmWatch {
    /// Lists `/dev/shm` once: every file there now predates the run and is never a task's.
    pub fn new(root: Root) -> ShmWatch {
        let dir = root.path("/dev/shm");
        let mut w = ShmWatch {
            root,
            dir,
            uid: rustix::process::getuid().as_raw(),
            stamp: None,
            listed_at: None,
            seen: HashMap::new(),
        };
        w.list(Duration::ZERO, false, &[]);
        w
    }

    fn stamp(&self) -> Option<(i64, i64)> {
        let m = std::fs::metadata(&self.dir).ok()?;
        Some((m.mtime(), m.mtime_nsec()))
    }

    /// Re-reads the directory; new files of ours become candidates when `candidates`.
    fn list(&mut self, now: Duration, candidates: bool, tasks: &[TaskId]) {
        self.stamp = self.stamp();
        self.listed_at = Some(now);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            self.seen.clear();
            return;
        };
        let mut present = HashMap::with_capacity(self.seen.len());
        for e in entries.flatten() {
            // A file can vanish between readdir and stat; it is simply gone.
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let allocated = Bytes(meta.blocks() * 512);
            let seen = match self.seen.remove(&name) {
                Some(s) if s.inode == meta.ino() => Seen { allocated, ..s },
                _ => Seen {
                    inode: meta.ino(),
                    owner: None,
                    allocated,
                    tries: if candidates && meta.uid() == self.uid {
                        ATTRIBUTION_TRIES
                    } else {
                        0
                    },
                    appeared_with: if candidates {
                        tasks.to_vec()
                    } else {
                        Vec::new()
                    },
                },
            };
            present.insert(name, seen);
        }
        self.seen = present;
    }

    /// One tick: notices new files, attributes them to the tree holding them, and refreshes
    /// the sizes of the tasks' files.
    pub fn scan(&mut self, now: Duration, trees: &Trees, tasks: &[TaskId]) {
        let relist = self.stamp() != self.stamp
            || self
                .listed_at
                .is_none_or(|t| now.saturating_sub(t) >= RELIST_EVERY);
        if relist {
            self.list(now, true, tasks);
        } else {
            let dir = self.dir.clone();
            self.seen.retain(|name, s| {
                if s.owner.is_none() {
                    return true;
                }
                match std::fs::metadata(dir.join(name)) {
                    Ok(m) if m.ino() == s.inode => {
                        s.allocated = Bytes(m.blocks() * 512);
                        true
                    }
                    _ => false,
                }
            });
        }
        if !self.seen.values().any(|s| s.owner.is_none() && s.tries > 0) {
            return;
        }
        // Who holds which file: one pass over the running trees' fd and maps files.
        let mut holder: HashMap<String, TaskId> = HashMap::new();
        let mut names = Vec::new();
        for &task in tasks {
            for pid in trees.pids(task) {
                names.clear();
                trees.reader().shm_held(pid, &mut names);
                for n in names.drain(..) {
                    holder.entry(n).or_insert(task);
                }
            }
        }
        for (name, s) in &mut self.seen {
            if s.owner.is_some() || s.tries == 0 {
                continue;
            }
            match holder.get(name) {
                Some(&task) => s.owner = Some(task),
                None => s.tries -= 1,
            }
        }
    }

    /// Allocated bytes of the files the task created that still exist.
    pub fn allocated(&self, task: TaskId) -> Bytes {
        self.seen
            .values()
            .filter(|s| s.owner == Some(task))
            .map(|s| s.allocated)
            .sum()
    }

    /// Allocated bytes of the files of ours that appeared while `task` alone was running and
    /// that no task was seen holding (yet): a task that fills a segment and dies within one
    /// tick leaves one. For the SIGBUS hint only; such files are never removed.
    pub fn unattributed_of(&self, task: TaskId) -> Bytes {
        self.seen
            .values()
            .filter(|s| s.owner.is_none() && s.tries > 0 && s.appeared_with == [task])
            .map(|s| s.allocated)
            .sum()
    }

    /// Allocated bytes of every file in `/dev/shm` at the last listing or refresh.
    pub fn total(&self) -> Bytes {
        self.seen.values().map(|s| s.allocated).sum()
    }

    /// The task's files that still exist, by name.
    pub fn files_of(&self, task: TaskId) -> Vec<TaskFile> {
        let mut out: Vec<TaskFile> = self
            .seen
            .iter()
            .filter(|(_, s)| s.owner == Some(task))
            .map(|(name, s)| TaskFile {
                name: name.clone(),
                allocated: s.allocated,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// After the task's processes are gone: removes its files that no live process holds
    /// when `remove`, and forgets them either way.
    pub fn settle(&mut self, task: TaskId, remove: bool) -> Settled {
        let mut out = Settled::default();
        let mine: Vec<(String, u64)> = self
            .seen
            .iter()
            .filter(|(_, s)| s.owner == Some(task))
            .map(|(n, s)| (n.clone(), s.inode))
            .collect();
        if mine.is_empty() {
            return out;
        }
        let holders = remove.then(|| crate::probe::shm::scan_holders(&self.root));
        for (name, inode) in mine {
            let path = self.dir.join(&name);
            let Ok(meta) = std::fs::metadata(&path) else {
                self.seen.remove(&name);
                continue;
            };
            let file = TaskFile {
                name: name.clone(),
                allocated: Bytes(meta.blocks() * 512),
            };
            let ours = meta.ino() == inode && meta.uid() == self.uid;
            let held = holders.as_ref().is_some_and(|h| {
                h.names.contains(&name) || h.inodes.contains(&(meta.dev(), meta.ino()))
            });
            if remove && ours && !held && std::fs::remove_file(&path).is_ok() {
                self.seen.remove(&name);
                out.removed.push(file);
            } else {
                if let Some(s) = self.seen.get_mut(&name) {
                    s.owner = None;
                    s.tries = 0;
                }
                out.left.push(file);
            }
        }
        out.removed.sort_by(|a, b| a.name.cmp(&b.name));
        out.left.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// How many more tasks `/dev/shm` (of `size`, `used` now) can take at `expected` each beside
/// what the running tasks (holding `running` each) are still expected to add. `expected` is
/// the most any task of the sweep was seen to hold; `None` when that is zero (no task used
/// /dev/shm, so it limits nothing).
pub fn room_for(size: Bytes, used: Bytes, expected: Bytes, running: &[Bytes]) -> Option<usize> {
    if expected == Bytes::ZERO {
        return None;
    }
    let growth: Bytes = running.iter().map(|&r| expected.saturating_sub(r)).sum();
    let free = size.saturating_sub(used).saturating_sub(growth);
    Some((free.get() / expected.get()) as usize)
}

/// The reason for a SIGBUS with `/dev/shm` full, with the hint that fits: the task alone
/// needed more than `/dev/shm` holds, or several tasks filled it together.
pub fn bus_reason(mine: Bytes, total: Bytes, size: Option<Bytes>) -> String {
    let size_text = size.map_or_else(|| "its size".to_string(), |s| s.to_string());
    let others = total.saturating_sub(mine);
    // The task had (nearly) all of /dev/shm and still needed more: no -j makes it fit.
    let alone = others.get() as f64 <= 0.1 * size.map_or(total, |s| s).get() as f64;
    if alone {
        format!(
            "bus error (SIGBUS) with /dev/shm full: this task alone filled it ({mine} of \
             {size_text}) (hint: running fewer tasks at once will not help; give /dev/shm \
             more room, e.g. `sudo mount -o remount,size=… /dev/shm` or `docker run \
             --shm-size=…`, or make the task share less)"
        )
    } else {
        format!(
            "bus error (SIGBUS) with /dev/shm full: tasks filled it together (this one \
             {mine}, others {others} of {size_text}) (hint: lower -j, or free /dev/shm)"
        )
    }
}

/// Gives the processes left after a task's root exited the chance to finish (Python's
/// resource tracker removes its segments when the last worker is gone): TERM, wait up to
/// `grace` for them to go, then KILL and wait a little more. With no grace, KILL at once
/// without waiting. Returns true if none is left.
pub fn stop_leftovers(trees: &mut Trees, task: TaskId, grace: Duration) -> bool {
    let root = trees.pids(task).first().copied();
    let others = |trees: &Trees| -> Vec<u32> {
        trees
            .pids(task)
            .into_iter()
            .filter(|&p| Some(p) != root && alive(p))
            .collect()
    };
    if others(trees).is_empty() {
        return true;
    }
    if grace.is_zero() {
        // Nothing to clean up: KILL and move on, as the loop cannot wait.
        trees.signal(task, Signal::KILL);
        return false;
    }
    trees.signal(task, Signal::TERM);
    for (deadline, kill_first) in [(grace, false), (Duration::from_millis(500), true)] {
        if kill_first {
            for pid in others(trees) {
                if let Some(p) = Pid::from_raw(pid as i32) {
                    let _ = kill_process(p, Signal::KILL);
                }
            }
            trees.signal(task, Signal::KILL);
        }
        let until = Instant::now() + deadline;
        loop {
            let left = others(trees);
            for &pid in &left {
                reap_if_child(pid);
            }
            if left.iter().all(|&p| !alive(p)) {
                return true;
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    false
}

/// Returns true if and only if the process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Reaps `pid` if it is a zombie child of ramguard (reparented to the subreaper).
fn reap_if_child(pid: u32) {
    let mut status: libc::c_int = 0;
    // SAFETY: the status pointer is valid for writes; rusage is not requested.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn dev_shm_room_counts_tasks_at_the_measured_use() {
        let (size, e) = (Bytes(64 * MIB), Bytes(40 * MIB));
        assert_eq!(room_for(size, Bytes::ZERO, Bytes::ZERO, &[]), None);
        assert_eq!(room_for(size, Bytes::ZERO, e, &[]), Some(1), "room for one");
        assert_eq!(
            room_for(size, Bytes(40 * MIB), e, &[e]),
            Some(0),
            "24 MiB left"
        );
        assert_eq!(
            room_for(Bytes(128 * MIB), Bytes(40 * MIB), e, &[e]),
            Some(2)
        );
        // A running task that has not yet reached its share reserves the rest of it: 65 MiB
        // are free, but 30 of them are the running task's still to come.
        assert_eq!(
            room_for(Bytes(75 * MIB), Bytes(10 * MIB), e, &[Bytes(10 * MIB)]),
            Some(0)
        );
    }

    #[test]
    fn one_task_filling_shm_is_told_to_size_it_not_to_lower_j() {
        let r = bus_reason(Bytes(60 * MIB), Bytes(62 * MIB), Some(Bytes(64 * MIB)));
        assert!(r.contains("this task alone"), "{r}");
        assert!(r.contains("fewer tasks at once will not help"), "{r}");
        assert!(!r.contains("lower -j"), "{r}");
    }

    #[test]
    fn several_tasks_filling_shm_are_told_to_lower_j() {
        let r = bus_reason(Bytes(16 * MIB), Bytes(63 * MIB), Some(Bytes(64 * MIB)));
        assert!(r.contains("tasks filled it together"), "{r}");
        assert!(r.contains("lower -j"), "{r}");
    }
}
