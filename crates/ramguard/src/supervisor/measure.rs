//! One measure of a task's memory: what its process tree really holds.
//!
//! A task's memory ("held") is the private pages of each of its processes, the pages they
//! share counted once, plus the `/dev/shm` data the task created (allocated blocks, not file
//! length). Admission, the brake, caps, learning, the run's lines, `status`, `results` and
//! the report all use this one figure; its highest value over an attempt is the attempt's
//! peak, never lower than the largest single process the kernel saw (`ru_maxrss`).
//!
//! Summed RSS is wrong for trees: a fork pool's workers each count the parent's copy-on-write
//! pages and every `SharedMemory` page they touched, so four workers reading one 600 MiB
//! segment sum to 3 GiB while holding 770 MiB. The exact figure comes from `smaps_rollup`
//! (PSS splits each shared page among its mappers, so PSS summed over the tree counts it
//! once), which walks every mapping (about 4 ms per GiB). So:
//!
//! - the fast path each tick reads `statm` per process and estimates
//!   `Σ (resident − shared) + max(largest shared, task's shm files)`: private memory summed,
//!   shared pages at least once, and the shm files the task created;
//! - a tree of several processes is refined from `smaps_rollup` at least every
//!   [`REFINE_EVERY`], and at once whenever the fast estimate has grown by more than
//!   [`refine_step`] since the last refinement; between refinements the figure is the refined
//!   one plus the estimate's growth. A double-counted sum (a fork's copy-on-write pages, a
//!   segment mapped by every worker) is thus always refined before it reaches the policy:
//!   no brake or cap acts on more than a step of unconfirmed growth.
//!
//! Shared memory under no name in `/dev/shm` — memfd files and deleted `/dev/shm` files a
//! process holds open (PyTorch's file-descriptor sharing) — counts with the task's shm files;
//! it is found by a scan of the tree's fds at the refinement rate ([`hidden_shm`]).
//!
//! This module only measures; it decides nothing and signals nothing. [`measure_set`] is the
//! exact, slow measurement of any set of pids. The arithmetic of "held" is
//! [`ramguard_core::profile::held`], the one definition `record` uses too (with
//! [`hidden_shm`] for memfd and deleted files).

use std::time::Duration;

pub use ramguard_core::profile::held;
use ramguard_core::Bytes;

use crate::probe::process::{ProcReader, Statm};

/// How often a multi-process tree is refined from `smaps_rollup` even if nothing grew.
pub const REFINE_EVERY: Duration = Duration::from_millis(1000);

/// The smallest growth of the fast estimate that triggers a refinement at once.
pub const REFINE_STEP_MIN: Bytes = Bytes(32 << 20);

/// Growth of the fast estimate past which the tree is refined at once: an eighth of what it
/// held, at least [`REFINE_STEP_MIN`], so a growing tree is refined a logarithmic number of
/// times.
pub fn refine_step(held: Bytes) -> Bytes {
    Bytes(held.get() / 8).max(REFINE_STEP_MIN)
}

pub use crate::executor::attempt::TreeMemory;

/// One process's memory, measured exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcessMemory {
    pub pid: u32,
    pub rss: Bytes,
    pub pss: Bytes,
    /// Pages only this process maps.
    pub uss: Bytes,
    pub swap: Bytes,
    pub virt: Bytes,
    /// RSS that may be shared (file-backed and shared memory), from `statm`.
    pub shared: Bytes,
    /// PSS of its shared-memory mappings (kernel 5.13+).
    pub pss_shmem: Option<Bytes>,
}

/// The exact memory of a set of processes, per process and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SetMemory {
    /// The processes still alive when read, in the order given.
    pub processes: Vec<ProcessMemory>,
    pub rss: Bytes,
    pub pss: Bytes,
    pub uss: Bytes,
    pub swap: Bytes,
    pub virt: Bytes,
    /// `/dev/shm` data attributed to the set (passed in by the caller).
    pub shm: Bytes,
    /// memfd and deleted `/dev/shm` files the set holds open (see [`hidden_shm`]).
    pub hidden_shm: Bytes,
    /// The one measure (see [`held`]).
    pub held: Bytes,
}

/// Reads `statm` and `smaps_rollup` of every pid; processes that have gone are skipped.
pub fn measure_set(reader: &ProcReader, pids: &[u32], shm: Bytes) -> SetMemory {
    let mut set = SetMemory {
        shm,
        ..SetMemory::default()
    };
    let mut pss_shmem = Some(Bytes::ZERO);
    let mut shared_max = Bytes::ZERO;
    for &pid in pids {
        let Ok(Some(statm)) = reader.statm(pid) else {
            continue;
        };
        let Ok(Some(r)) = reader.rollup(pid) else {
            continue;
        };
        let p = ProcessMemory {
            pid,
            rss: statm.rss,
            pss: r.pss,
            uss: r.uss,
            swap: r.swap,
            virt: statm.virt,
            shared: statm.shared,
            pss_shmem: r.pss_shmem,
        };
        set.rss += p.rss;
        set.pss += p.pss;
        set.uss += p.uss;
        set.swap += p.swap;
        set.virt += p.virt;
        shared_max = shared_max.max(p.shared);
        pss_shmem = match (pss_shmem, p.pss_shmem) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        set.processes.push(p);
    }
    set.hidden_shm = hidden_shm(reader, pids);
    set.held = held(set.pss, pss_shmem, shm + set.hidden_shm, shared_max);
    set
}

/// Allocated bytes of the memfd and deleted `/dev/shm` files the processes hold open, each
/// file once: shared memory no directory listing shows and no mapping may show either.
pub fn hidden_shm(reader: &ProcReader, pids: &[u32]) -> Bytes {
    let mut files = Vec::new();
    for &pid in pids {
        reader.hidden_shm(pid, &mut files);
    }
    files.sort_unstable();
    files.dedup_by_key(|f| (f.0, f.1));
    files.iter().map(|f| f.2).sum()
}

/// The fast estimate from `statm` alone: private memory summed, shared pages at least once
/// (the largest any one process maps), and at least the task's shm files.
pub fn fast(statms: &[Statm], shm: Bytes) -> Bytes {
    let private: Bytes = statms.iter().map(|s| s.rss.saturating_sub(s.shared)).sum();
    let shared = statms.iter().map(|s| s.shared).max().unwrap_or_default();
    private + shared.max(shm)
}

/// A refinement of one tree: the exact figures and the fast estimate at that moment.
#[derive(Debug, Clone, Copy)]
struct Refined {
    held: Bytes,
    pss: Bytes,
    swap: Bytes,
    fast: Bytes,
    at: Duration,
}

/// Measures one task's tree tick by tick (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Meter {
    refined: Option<Refined>,
    /// The tree's hidden shared memory (memfd, deleted /dev/shm files) and when it was read:
    /// a scan of every process's fds, at the refinement rate.
    hidden: Option<(Bytes, Duration)>,
    /// How many refinements were made (for tests and the benchmark).
    pub refinements: u64,
}

impl Meter {
    /// The tree's memory now, from the `statm` of its live processes (`statms[i]` is `pids[i]`)
    /// and the allocated size of the task's shm files.
    pub fn update(
        &mut self,
        reader: &ProcReader,
        pids: &[u32],
        statms: &[Statm],
        shm: Bytes,
        now: Duration,
    ) -> TreeMemory {
        let rss: Bytes = statms.iter().map(|s| s.rss).sum();
        let virt: Bytes = statms.iter().map(|s| s.virt).sum();
        if self
            .hidden
            .is_none_or(|(_, at)| now.saturating_sub(at) >= REFINE_EVERY)
        {
            self.hidden = Some((hidden_shm(reader, pids), now));
        }
        let hidden = self.hidden.map_or(Bytes::ZERO, |(h, _)| h);
        let shm_named = shm;
        let shm = shm + hidden;
        let mut estimate = fast(statms, shm);
        let mut mem = TreeMemory {
            used: estimate,
            rss,
            pss: None,
            shm,
            virt,
            swap: None,
            processes: statms.len(),
        };
        // One process shares nothing within its tree: statm is exact enough.
        if statms.len() <= 1 {
            self.refined = None;
            return mem;
        }
        let due = self.refined.is_none_or(|r| {
            now.saturating_sub(r.at) >= REFINE_EVERY || estimate > r.fast + refine_step(r.held)
        });
        if due {
            let set = measure_set(reader, pids, shm_named);
            self.hidden = Some((set.hidden_shm, now));
            mem.shm = shm_named + set.hidden_shm;
            estimate = fast(statms, mem.shm);
            self.refinements += 1;
            self.refined = Some(Refined {
                held: set.held,
                pss: set.pss,
                swap: set.swap,
                fast: estimate,
                at: now,
            });
        }
        if let Some(r) = self.refined {
            // Growth since the refinement counts at once; shrinking waits for the next one.
            mem.used = (r.held + estimate.saturating_sub(r.fast)).min(rss + mem.shm);
            mem.pss = Some(r.pss);
            mem.swap = Some(r.swap);
        }
        mem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn st(rss: u64, shared: u64) -> Statm {
        Statm {
            rss: Bytes(rss * MIB),
            virt: Bytes(4 * rss * MIB),
            shared: Bytes(shared * MIB),
        }
    }

    #[test]
    fn a_fork_pool_over_one_segment_counts_the_segment_once() {
        // A parent and four workers, each mapping the same 600 MiB segment it created.
        let tree = [
            st(640, 610),
            st(630, 605),
            st(630, 605),
            st(630, 605),
            st(630, 605),
        ];
        let f = fast(&tree, Bytes(600 * MIB));
        assert_eq!(f, Bytes((30 + 4 * 25 + 610) * MIB));
        let summed: u64 = tree.iter().map(|s| s.rss.get()).sum();
        assert!(f.get() * 4 < summed, "far below the summed RSS");
    }

    #[test]
    fn held_counts_a_mapped_segment_once_and_a_written_file_fully() {
        // 600 MiB mapped by the tree (PSS splits it) and the same 600 MiB file.
        let mapped = held(
            Bytes(770 * MIB),
            Some(Bytes(600 * MIB)),
            Bytes(600 * MIB),
            Bytes(610 * MIB),
        );
        assert_eq!(mapped, Bytes(770 * MIB));
        // Read while workers were still mapping it: the shares sum past the segment.
        let torn = held(
            Bytes(860 * MIB),
            Some(Bytes(690 * MIB)),
            Bytes(600 * MIB),
            Bytes(610 * MIB),
        );
        assert_eq!(torn, Bytes(780 * MIB), "capped at the largest shared RSS");
        // 500 MiB written into /dev/shm with write(2): no mapping shows it.
        let written = held(
            Bytes(9 * MIB),
            Some(Bytes::ZERO),
            Bytes(500 * MIB),
            Bytes(5 * MIB),
        );
        assert_eq!(written, Bytes(509 * MIB));
        // An old kernel without Pss_Shmem: the file beyond the largest shared RSS.
        let old = held(Bytes(770 * MIB), None, Bytes(600 * MIB), Bytes(610 * MIB));
        assert_eq!(old, Bytes(770 * MIB));
    }

    #[test]
    fn a_single_process_is_its_statm() {
        let mut m = Meter::default();
        let reader = ProcReader::new(crate::probe::Root::host());
        let mem = m.update(&reader, &[1], &[st(200, 10)], Bytes::ZERO, Duration::ZERO);
        assert_eq!(mem.used, Bytes(200 * MIB));
        assert_eq!(m.refinements, 0);
        let mem = m.update(
            &reader,
            &[1],
            &[st(200, 10)],
            Bytes(300 * MIB),
            Duration::ZERO,
        );
        assert_eq!(
            mem.used,
            Bytes(490 * MIB),
            "a written shm file beyond its mappings"
        );
    }

    #[test]
    fn the_refine_step_grows_with_the_tree() {
        assert_eq!(refine_step(Bytes::ZERO), REFINE_STEP_MIN);
        assert_eq!(refine_step(Bytes(1 << 30)), Bytes(128 * MIB));
    }
}
