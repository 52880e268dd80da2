//! The host facts the supervisor samples each tick, and the evidence it reads when an
//! attempt ends: available memory (the probe's fast path), PSI, the kernel's OOM-kill
//! counter and how full `/dev/shm` is.

use std::time::Duration;

use anyhow::Result;
use ramguard_core::parse;
use ramguard_core::Bytes;

use crate::probe::{HostReport, MemoryWatch, Root};

/// Host facts the supervisor samples each tick.
#[derive(Debug)]
pub struct HostWatch {
    memory: MemoryWatch,
    pub(super) root: Root,
    psi_file: Option<String>,
    pub(super) shm_size: Option<Bytes>,
    /// CPUs the tasks can use: how fast they can fill memory together (`policy::pace`).
    pub(super) cpus: u32,
    /// The last `oom_kill` reading and when: tasks started in one pass share it.
    oom_read: Option<(Duration, Option<u64>)>,
}

impl HostWatch {
    pub fn new(root: Root, report: &HostReport) -> HostWatch {
        HostWatch {
            memory: MemoryWatch::new(root.clone(), report),
            psi_file: report.psi.as_ref().map(|p| p.source.file.clone()),
            shm_size: report.shm.as_ref().map(|s| s.size),
            cpus: report.cpus.usable,
            root,
            oom_read: None,
        }
    }

    pub(super) fn available(&mut self) -> Result<Bytes> {
        Ok(self.memory.read()?.available)
    }

    pub(super) fn psi_full(&self) -> Option<f64> {
        let text = self.root.read_lenient(self.psi_file.as_deref()?)?;
        parse::psi(&text).ok().map(|p| p.full_avg10)
    }

    /// The kernel's OOM-kill counter, read at most once per `now`.
    pub(super) fn oom_kills(&mut self, now: Duration) -> Option<u64> {
        if let Some((at, value)) = self.oom_read {
            if at == now {
                return value;
            }
        }
        let value = self
            .root
            .read_lenient("/proc/vmstat")
            .and_then(|text| parse::key_value(&text, "oom_kill"));
        self.oom_read = Some((now, value));
        value
    }

    /// Free space in `/dev/shm` (one `statvfs`, about a microsecond), if it is mounted.
    pub(super) fn shm_free(&self) -> Option<Bytes> {
        self.shm_size?;
        let st = rustix::fs::statvfs(self.root.base().join("dev/shm")).ok()?;
        Some(Bytes(st.f_bavail.saturating_mul(st.f_frsize)))
    }

    /// Returns true if and only if `/dev/shm` is at least 90% full.
    pub(super) fn shm_nearly_full(&self) -> bool {
        let Some(size) = self.shm_size else {
            return false;
        };
        let used = crate::probe::shm::usage(&self.root)
            .map(|(u, _)| u)
            .unwrap_or_default();
        used.get() as f64 >= 0.9 * size.get() as f64
    }
}
