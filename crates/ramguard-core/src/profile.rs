//! What `ramguard record` measures of one process tree, and the words it uses for it.
//!
//! Theory of operation: each tick the shell reads, per process, `/proc/PID/statm` (RSS and
//! VIRT) and `/proc/PID/smaps_rollup` (PSS, private pages, swap, shared-memory pages; read
//! with the probe's `ProcReader`, parsed by `parse::smaps_rollup`), and
//! stats the `/dev/shm` files the tree has open or mapped. [`Tick::held`] is ramguard's one
//! measure of what the tree really holds: every process's PSS (private pages whole, shared
//! pages divided among their sharers, so counted once), plus whatever part of its /dev/shm
//! files is not mapped into it (a file written and unmapped still holds memory). VIRT is
//! kept apart: it is address space, not memory (seed 001's "2.5 GB VIRT on a 4 GB system").
//! Pure: parsing and arithmetic only.

use serde::Serialize;

use crate::units::Bytes;

/// One process at one tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proc {
    pub pid: u32,
    /// Its command line, shortened.
    pub command: String,
    pub rss: Bytes,
    pub pss: Bytes,
    pub uss: Bytes,
    pub virt: Bytes,
    pub swap: Bytes,
    /// PSS of its shared-memory pages (part of `pss`); `None` on kernels before 5.13.
    #[serde(skip)]
    pub pss_shmem: Option<Bytes>,
    /// RSS that may be shared (file-backed and shared memory), from `statm`.
    #[serde(skip)]
    pub shared: Bytes,
    /// Threads (`Threads:` of `/proc/PID/status`).
    pub threads: u32,
}

/// The whole tree at one tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tick {
    /// Milliseconds since the command started.
    pub t_ms: u64,
    /// What the tree really holds: Σ PSS plus unmapped /dev/shm data (module doc).
    pub held: Bytes,
    /// Σ RSS: counts a shared page once per process that maps it.
    pub rss: Bytes,
    pub pss: Bytes,
    pub uss: Bytes,
    /// Σ VIRT: address space reserved, not memory used.
    pub virt: Bytes,
    /// Σ SwapPss: the tree's pages out in swap.
    pub swap: Bytes,
    /// Bytes allocated by /dev/shm files the tree has open or mapped (or created earlier).
    pub shm: Bytes,
    /// Processes in the tree.
    pub processes: usize,
    /// Threads of all its processes.
    pub threads: u32,
}

impl Tick {
    /// Sums a tree's processes and its /dev/shm bytes into one tick.
    pub fn of(t_ms: u64, procs: &[Proc], shm: Bytes) -> Tick {
        let sum = |f: fn(&Proc) -> Bytes| procs.iter().map(f).sum::<Bytes>();
        let pss = sum(|p| p.pss);
        let pss_shmem = procs
            .iter()
            .try_fold(Bytes::ZERO, |total, p| Some(total + p.pss_shmem?));
        let shared_max = procs.iter().map(|p| p.shared).max().unwrap_or_default();
        Tick {
            t_ms,
            held: held(pss, pss_shmem, shm, shared_max),
            rss: sum(|p| p.rss),
            pss,
            uss: sum(|p| p.uss),
            virt: sum(|p| p.virt),
            swap: sum(|p| p.swap),
            shm,
            processes: procs.len(),
            threads: procs.iter().map(|p| p.threads).sum(),
        }
    }
}

/// ramguard's one measure of what a tree holds, from exact figures (`ramguard run` refines
/// its per-tick estimate with it; `record` reports it): PSS summed over the tree (every page
/// once), with the shared-memory part replaced by the larger of what is mapped and what the
/// tree's shm files hold (a file written with `write(2)` is memory no mapping shows).
/// Without `Pss_Shmem` (kernels before 5.13) the shm files count beyond the largest shared
/// RSS of one process.
///
/// PSS is read one process at a time, so while workers are still mapping a segment the
/// shares do not add up: a parent read when it alone mapped 255 MiB of a 300 MiB segment and
/// workers read after all four mapped it sum to 392 MiB. The mapped part is therefore capped
/// at what the tree can hold at most: its shm files, or the largest shared RSS of one
/// process if that is more (segments the tree did not create).
pub fn held(pss: Bytes, pss_shmem: Option<Bytes>, shm: Bytes, shared_max: Bytes) -> Bytes {
    match pss_shmem {
        Some(read) => {
            let mapped = read.min(shm.max(shared_max));
            pss.saturating_sub(read) + mapped.max(shm)
        }
        None => pss + shm.saturating_sub(shared_max),
    }
}

/// One sentence when the tree ran more threads than twice the CPUs (seed 002's "2 workers ×
/// 8 BLAS threads"), with the fix; `None` otherwise.
pub fn threads_in_words(max_threads: u32, processes: usize, cpus: u32) -> Option<String> {
    if cpus == 0 || max_threads <= 2 * cpus {
        return None;
    }
    Some(format!(
        "{max_threads} threads in {processes} process(es) on {cpus} CPUs: they compete for \
         the CPUs and each thread's buffers cost memory. If these are BLAS/OpenMP threads, cap \
         them: OMP_NUM_THREADS=1 (and OPENBLAS_NUM_THREADS, MKL_NUM_THREADS...), which \
         `ramguard run` sets for every task"
    ))
}

/// One plain sentence on VIRT against what is resident, for someone who read `top`.
pub fn virt_in_words(virt: Bytes, held: Bytes, rss: Bytes) -> String {
    let ratio = if held.get() > 0 {
        virt.get() as f64 / held.get() as f64
    } else {
        0.0
    };
    let mut s = format!(
        "VIRT (top's VIRT column) was {virt} at the peak: address space the processes reserved \
         (libraries, thread stacks, allocator arenas, mapped files), not memory they used"
    );
    if ratio >= 1.5 {
        s.push_str(&format!(
            "; only {held} of it was really held ({ratio:.1}× less). Judge memory by the held \
             figure, never by VIRT"
        ));
    } else {
        s.push_str(&format!("; {held} was really held"));
    }
    if rss.get() as f64 > held.get() as f64 * 1.2 {
        s.push_str(&format!(
            ". Summed RSS ({rss}) overcounts too: pages shared between processes (forked \
             workers, shared memory) are counted once per process"
        ));
    }
    s.push('.');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pss: u64, shmem: u64, rss: u64) -> Proc {
        Proc {
            pid: 1,
            command: "x".into(),
            rss: Bytes(rss),
            pss: Bytes(pss),
            uss: Bytes(pss - shmem),
            virt: Bytes(rss * 10),
            swap: Bytes::ZERO,
            pss_shmem: Some(Bytes(shmem)),
            shared: Bytes(shmem),
            threads: 1,
        }
    }

    #[test]
    fn held_counts_shared_pages_once_and_unmapped_shm_too() {
        // Two forked workers sharing 100 of 100: RSS 200, PSS 100.
        let t = Tick::of(5, &[proc(50, 0, 100), proc(50, 0, 100)], Bytes::ZERO);
        assert_eq!(t.held, Bytes(100));
        assert_eq!(t.rss, Bytes(200));
        // A 40-byte shm file, 30 of it mapped (in PSS): 10 more are held outside.
        let t = Tick::of(5, &[proc(60, 30, 60)], Bytes(40));
        assert_eq!(t.held, Bytes(70));
    }

    #[test]
    fn threads_beyond_twice_the_cpus_get_a_sentence_with_the_fix() {
        assert_eq!(threads_in_words(4, 2, 2), None);
        let s = threads_in_words(17, 2, 2).unwrap();
        assert!(
            s.starts_with("17 threads in 2 process(es) on 2 CPUs"),
            "{s}"
        );
        assert!(s.contains("OMP_NUM_THREADS=1"), "{s}");
    }

    #[test]
    fn virt_words_say_it_is_not_memory() {
        let s = virt_in_words(Bytes(2560 << 20), Bytes(616 << 20), Bytes(616 << 20));
        assert!(s.contains("not memory they used"), "{s}");
        assert!(s.contains("616 MiB of it was really held"), "{s}");
        let s = virt_in_words(Bytes(700 << 20), Bytes(300 << 20), Bytes(900 << 20));
        assert!(s.contains("overcounts"), "{s}");
    }
}
