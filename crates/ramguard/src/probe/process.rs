//! Memory of one process and of a process tree.
//!
//! The fast path is `/proc/PID/statm` (RSS and VIRT; a few microseconds). PSS and swap come
//! from `/proc/PID/smaps_rollup`, which walks every mapping (about 4 ms per GiB of RSS), so
//! the supervisor reads it at a slower rate and only when a tree has several processes, where
//! shared pages make summed RSS overcount. Children come from `/proc/PID/task/*/children`.

use std::io::ErrorKind;

use anyhow::Result;
use ramguard_core::parse;
use ramguard_core::Bytes;

use super::Root;

/// The cheap per-tick figures of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Statm {
    pub rss: Bytes,
    /// Virtual size (VIRT in `top`): address space reserved, not memory used (seed 001).
    pub virt: Bytes,
    /// The resident pages that may be shared: file-backed and shared memory (tmpfs, memfd,
    /// SysV). `rss - shared` is the process's anonymous memory.
    pub shared: Bytes,
}

/// The slower, exact figures of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Rollup {
    pub rss: Bytes,
    pub pss: Bytes,
    pub swap: Bytes,
    /// This process's share of swapped-out pages shared with others (`SwapPss`).
    pub swap_pss: Bytes,
    /// The PSS of shared-memory mappings (kernel 5.13+).
    pub pss_shmem: Option<Bytes>,
    /// Pages no other process maps.
    pub uss: Bytes,
}

/// Reads per-process files under a root, with the page size needed to turn pages into bytes.
#[derive(Debug, Clone)]
pub struct ProcReader {
    root: Root,
    page_size: u64,
    ticks_per_second: u64,
}

impl ProcReader {
    pub fn new(root: Root) -> ProcReader {
        ProcReader {
            root,
            page_size: rustix::param::page_size() as u64,
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
        }
    }

    /// CPU time the process and its reaped children have used, from `stat`; `None` when
    /// the process has gone.
    pub fn cpu_time(&self, pid: u32) -> Result<Option<std::time::Duration>> {
        let path = format!("/proc/{pid}/stat");
        let Some(text) = read_gone_ok(&self.root, &path)? else {
            return Ok(None);
        };
        let ticks = self.root.parse(&path, &text, parse::stat_cpu_ticks)?;
        let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(self.ticks_per_second);
        Ok(Some(std::time::Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        )))
    }

    /// RSS and VIRT from `statm`; `None` when the process has already gone.
    pub fn statm(&self, pid: u32) -> Result<Option<Statm>> {
        let path = format!("/proc/{pid}/statm");
        let Some(text) = read_gone_ok(&self.root, &path)? else {
            return Ok(None);
        };
        let s = self.root.parse(&path, &text, parse::statm)?;
        Ok(Some(Statm {
            rss: Bytes(s.resident_pages * self.page_size),
            virt: Bytes(s.size_pages * self.page_size),
            shared: Bytes(s.shared_pages * self.page_size),
        }))
    }

    /// RSS, PSS and swap from `smaps_rollup`; `None` when the process has gone.
    pub fn rollup(&self, pid: u32) -> Result<Option<Rollup>> {
        let path = format!("/proc/{pid}/smaps_rollup");
        let Some(text) = read_gone_ok(&self.root, &path)? else {
            return Ok(None);
        };
        // A zombie's smaps_rollup is empty: it holds no memory any more.
        if text.trim().is_empty() {
            return Ok(Some(Rollup::default()));
        }
        let r = self.root.parse(&path, &text, parse::smaps_rollup)?;
        Ok(Some(Rollup {
            rss: r.rss,
            pss: r.pss,
            swap: r.swap,
            swap_pss: r.swap_pss,
            pss_shmem: r.pss_shmem,
            uss: r.uss,
        }))
    }

    /// Direct children of a process, from every thread's `children` file.
    pub fn children(&self, pid: u32) -> Result<Vec<u32>> {
        let dir = self.root.path(&format!("/proc/{pid}/task"));
        let tasks = match std::fs::read_dir(&dir) {
            Ok(t) => t,
            Err(_) => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for t in tasks.flatten() {
            let Ok(text) = super::root::read_text(&t.path().join("children")) else {
                continue;
            };
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The process and all its descendants, parent before child.
    pub fn tree(&self, pid: u32) -> Result<Vec<u32>> {
        let mut out = vec![pid];
        let mut i = 0;
        while i < out.len() {
            let kids = self.children(out[i])?;
            for k in kids {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
            i += 1;
        }
        Ok(out)
    }
}

impl ProcReader {
    /// The `/dev/shm` files a process has open or mapped, by name (deleted ones excluded).
    /// A process that has gone, or whose files cannot be read, holds nothing.
    pub fn shm_held(&self, pid: u32, out: &mut Vec<String>) {
        if let Ok(fds) = std::fs::read_dir(self.root.path(&format!("/proc/{pid}/fd"))) {
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    if let Some(name) = shm_name(&target.to_string_lossy()) {
                        out.push(name.to_string());
                    }
                }
            }
        }
        if let Ok(maps) = super::root::read_text(&self.root.path(&format!("/proc/{pid}/maps"))) {
            for line in maps.lines() {
                // addr perms offset dev inode path: the path starts after the inode.
                let Some(at) = line.find(" /dev/shm/") else {
                    continue;
                };
                if let Some(name) = shm_name(line[at + 1..].trim_end()) {
                    out.push(name.to_string());
                }
            }
        }
    }
}

impl ProcReader {
    /// Shared memory a process holds open under no name in `/dev/shm`: memfd files and
    /// deleted `/dev/shm` files (PyTorch's file-descriptor sharing), as (device, inode,
    /// allocated bytes). Its pages are memory whether mapped or not.
    pub fn hidden_shm(&self, pid: u32, out: &mut Vec<(u64, u64, Bytes)>) {
        use std::os::unix::fs::MetadataExt;
        let Ok(fds) = std::fs::read_dir(self.root.path(&format!("/proc/{pid}/fd"))) else {
            return;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let hidden = t.starts_with("/memfd:")
                || (t.starts_with("/dev/shm/") && t.ends_with(" (deleted)"));
            if !hidden {
                continue;
            }
            // The fd's link resolves to the open file itself, name or no name.
            if let Ok(m) = std::fs::metadata(fd.path()) {
                if m.is_file() {
                    out.push((m.dev(), m.ino(), Bytes(m.blocks() * 512)));
                }
            }
        }
    }
}

/// The segment name in a path `/dev/shm/NAME` (no deeper directories, not deleted).
pub fn shm_name(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/dev/shm/")?;
    if rest.is_empty() || rest.contains('/') || rest.ends_with(" (deleted)") {
        return None;
    }
    Some(rest)
}

/// Reads a per-process file; a process that has exited (`ENOENT`, `ESRCH`) reads as `None`.
fn read_gone_ok(root: &Root, path: &str) -> Result<Option<String>> {
    match super::root::read_text(&root.path(path)) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(3) => Ok(None),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("cannot read {}", root.path(path).display())))
        }
    }
}
