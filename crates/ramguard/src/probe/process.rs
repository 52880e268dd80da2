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
}

/// The slower, exact figures of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Rollup {
    pub rss: Bytes,
    pub pss: Bytes,
    pub swap: Bytes,
}

/// Reads per-process files under a root, with the page size needed to turn pages into bytes.
#[derive(Debug, Clone)]
pub struct ProcReader {
    root: Root,
    page_size: u64,
}

impl ProcReader {
    pub fn new(root: Root) -> ProcReader {
        ProcReader {
            root,
            page_size: rustix::param::page_size() as u64,
        }
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
