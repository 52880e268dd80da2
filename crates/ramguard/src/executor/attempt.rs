//! What an executor and the run's sink say about one attempt: how to start it
//! ([`Launch`]), what its tree holds at a sample ([`TreeMemory`]), and its `/dev/shm` files
//! ([`TaskFile`], [`Settled`]). The local supervisor and the Slurm executor produce them;
//! they live here, at the seam, so the seam depends on no executor.

use std::os::fd::OwnedFd;

use ramguard_core::Bytes;

/// Everything needed to start one attempt.
#[derive(Debug)]
pub struct Launch {
    pub argv: Vec<String>,
    /// Extra environment, applied after the thread caps.
    pub env: Vec<(String, String)>,
    /// Where the attempt's stdout and stderr go (a file, or a pipe to the log pump). The
    /// caller closes its copies when the `Launch` is dropped, after the executor spawned it (`crate::supervisor::spawn::spawn`).
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Memory of one task's tree at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeMemory {
    /// The one measure: private pages, shared pages once, plus the task's shm files.
    pub used: Bytes,
    /// Summed RSS of the tree's processes (overcounts shared pages).
    pub rss: Bytes,
    /// Summed PSS at the last refinement, for trees of several processes.
    pub pss: Option<Bytes>,
    /// Allocated bytes of the `/dev/shm` files the task created.
    pub shm: Bytes,
    /// Summed virtual size: address space, not memory (seed 001).
    pub virt: Bytes,
    /// Summed swap at the last refinement.
    pub swap: Option<Bytes>,
    pub processes: usize,
}

/// A task's file, as reported when the task ends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskFile {
    pub name: String,
    pub allocated: Bytes,
}

/// What became of a finished task's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Removed by ramguard.
    pub removed: Vec<TaskFile>,
    /// Left in place: the task ended by itself, or a live process still holds them.
    pub left: Vec<TaskFile>,
}
