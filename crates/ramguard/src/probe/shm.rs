//! Files in `/dev/shm`: Python's `multiprocessing.shared_memory`, POSIX `shm_open`, and the
//! segments a crashed run leaves behind. Their pages are memory (tmpfs), counted by the kernel
//! as `Shmem`, and a full `/dev/shm` turns a write into SIGBUS (seed 000).

use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result};
use ramguard_core::Bytes;

use super::Root;

/// One file in `/dev/shm`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShmFile {
    pub name: String,
    /// Bytes really allocated (blocks × 512), which is what the file costs in memory.
    pub allocated: Bytes,
    /// The file's length, which a sparse segment may not have paid for yet.
    pub len: Bytes,
    pub uid: u32,
    /// Last modification, seconds since the epoch.
    pub mtime: i64,
    pub inode: u64,
}

/// Lists the regular files directly in `/dev/shm` (an absent directory lists nothing).
pub fn files(root: &Root) -> Result<Vec<ShmFile>> {
    let dir = root.path("/dev/shm");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        // A segment can vanish between readdir and stat; that is not an error.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push(ShmFile {
            name: entry.file_name().to_string_lossy().into_owned(),
            allocated: Bytes(meta.blocks() * 512),
            len: Bytes(meta.len()),
            uid: meta.uid(),
            mtime: meta.mtime(),
            inode: meta.ino(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Bytes allocated by files in `/dev/shm`, and how many files there are.
pub fn usage(root: &Root) -> Result<(Bytes, u64)> {
    let f = files(root)?;
    Ok((f.iter().map(|f| f.allocated).sum(), f.len() as u64))
}
