//! Measures one process tree per tick for `ramguard record`: every process's `statm`,
//! `smaps_rollup` and command line, and the `/dev/shm` files the tree has open or mapped.
//!
//! What the tree holds is `ramguard_core::profile::held`, the definition `ramguard run` uses
//! (`supervisor::measure`): PSS once, shm beyond its mappings, and the memfd and deleted
//! `/dev/shm` files the tree holds open ([`measure::hidden_shm`]).
//!
//! The tree is every descendant of this process (ramguard is a child subreaper while it
//! records, so a child that double-forks or calls setsid is still found: it is reparented
//! here). A `/dev/shm` file once seen open or mapped by the tree stays the tree's while it
//! exists, so a segment written, closed and left behind is still counted (and reported as a
//! leftover). Reads only; never signals or writes.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use ramguard_core::parse;
use ramguard_core::profile::{Proc, Tick};
use ramguard_core::Bytes;

use crate::probe::process::ProcReader;
use crate::probe::Root;
use crate::supervisor::measure;

/// Where tmpfs shared memory lives.
const SHM_DIR: &str = "/dev/shm/";
/// Reads of the tree per sample while its process list changes under them.
const TRIES: usize = 3;
/// Longest command shown per process.
const COMMAND_CHARS: usize = 80;

/// A tree's /dev/shm file as last seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShmSeen {
    pub path: PathBuf,
    pub allocated: Bytes,
    pub inode: u64,
}

/// Samples the descendants of this process.
#[derive(Debug)]
pub struct Sampler {
    reader: ProcReader,
    me: u32,
    /// The last command line read per pid (kept once the process is a zombie).
    commands: BTreeMap<u32, String>,
    /// /dev/shm files seen open or mapped by the tree, by path.
    shm: BTreeMap<PathBuf, ShmSeen>,
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler {
            reader: ProcReader::new(Root::host()),
            me: std::process::id(),
            commands: BTreeMap::new(),
            shm: BTreeMap::new(),
        }
    }

    /// The tree's pids: every descendant of this process.
    pub fn pids(&self) -> Vec<u32> {
        let mut all = self.reader.tree(self.me).unwrap_or_default();
        all.retain(|&p| p != self.me);
        all
    }

    /// Measures every process of the tree and its /dev/shm files.
    ///
    /// The processes are read one after another, so a fork or an exit in between skews PSS
    /// (a page shared with a child not yet listed counts half); the tree is read again, up
    /// to [`TRIES`] times, until its process list is the same before and after.
    pub fn sample(&mut self, t_ms: u64) -> (Tick, Vec<Proc>) {
        let mut procs = Vec::new();
        for _ in 0..TRIES {
            let before = self.pids();
            procs.clear();
            for &pid in &before {
                if let Some(p) = self.process(pid) {
                    procs.push(p);
                }
            }
            if self.pids() == before {
                break;
            }
        }
        // memfd files and deleted /dev/shm files held open count as the tree's shm, as in
        // `ramguard run` (supervisor::measure: one definition of what a tree holds).
        let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        let shm = self.shm_bytes() + measure::hidden_shm(&self.reader, &pids);
        (Tick::of(t_ms, &procs, shm), procs)
    }

    fn process(&mut self, pid: u32) -> Option<Proc> {
        let statm = self.reader.statm(pid).ok()??;
        let rollup = self.reader.rollup(pid).ok().flatten().unwrap_or_default();
        self.find_shm(pid);
        // Read each time: a process that execs (a shell, a pyenv shim) changes its name.
        let command = command_of(pid);
        if !command.is_empty() {
            self.commands.insert(pid, command.clone());
        }
        let command = self.commands.get(&pid).cloned().unwrap_or_default();
        // statm and smaps_rollup are read a moment apart; PSS never exceeds RSS.
        let rss = statm.rss.max(rollup.rss);
        Some(Proc {
            pid,
            command,
            rss,
            pss: if rollup.rss.get() > 0 {
                rollup.pss
            } else {
                statm.rss
            },
            uss: rollup.uss,
            virt: statm.virt,
            swap: rollup.swap_pss,
            pss_shmem: rollup.pss_shmem,
            shared: statm.shared,
            threads: std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|t| parse::status_field(&t, "Threads").and_then(|v| v.parse().ok()))
                .unwrap_or(1),
        })
    }

    /// Notes the /dev/shm files a process has open (fd) or mapped (maps).
    fn find_shm(&mut self, pid: u32) {
        let mut paths = Vec::new();
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    paths.push(target);
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            for line in maps.lines() {
                if let Some(i) = line.find(SHM_DIR) {
                    paths.push(PathBuf::from(line[i..].trim_end_matches(" (deleted)")));
                }
            }
        }
        for p in paths {
            if p.starts_with(SHM_DIR) && !self.shm.contains_key(&p) {
                if let Ok(meta) = std::fs::metadata(&p) {
                    if meta.is_file() {
                        self.shm.insert(
                            p.clone(),
                            ShmSeen {
                                path: p,
                                allocated: Bytes(meta.blocks() * 512),
                                inode: meta.ino(),
                            },
                        );
                    }
                }
            }
        }
    }

    /// Bytes allocated now by the tree's /dev/shm files that still exist (same inode).
    fn shm_bytes(&mut self) -> Bytes {
        let mut total = Bytes::ZERO;
        for seen in self.shm.values_mut() {
            match std::fs::metadata(&seen.path) {
                Ok(m) if m.ino() == seen.inode => {
                    seen.allocated = Bytes(m.blocks() * 512);
                    total += seen.allocated;
                }
                _ => seen.allocated = Bytes::ZERO,
            }
        }
        total
    }

    /// The tree's /dev/shm files that still exist: leftovers once the tree is gone.
    pub fn shm_remaining(&mut self) -> Vec<ShmSeen> {
        self.shm_bytes();
        self.shm
            .values()
            .filter(|s| std::fs::metadata(&s.path).is_ok_and(|m| m.ino() == s.inode))
            .cloned()
            .collect()
    }
}

/// A process's command line, NULs as spaces, shortened; its `comm` if that is empty.
fn command_of(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut s: String = String::from_utf8_lossy(&raw)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if s.is_empty() {
        s = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| format!("[{}]", c.trim()))
            .unwrap_or_default();
    }
    if s.chars().count() > COMMAND_CHARS {
        s = s.chars().take(COMMAND_CHARS - 1).collect::<String>() + "…";
    }
    s
}
