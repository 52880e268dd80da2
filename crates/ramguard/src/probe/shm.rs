//! Files in `/dev/shm`: Python's `multiprocessing.shared_memory`, POSIX `shm_open`, and the
//! segments a crashed run leaves behind. Their pages are memory (tmpfs), counted by the kernel
//! as `Shmem`, and a full `/dev/shm` turns a write into SIGBUS (seed 000).

use std::collections::HashSet;
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

/// What the process scan saw: every held name and (device, inode), and how many processes
/// could not be read.
#[derive(Debug, Default)]
pub struct Holders {
    pub names: HashSet<String>,
    pub inodes: HashSet<(u64, u64)>,
    pub scanned: usize,
    pub unreadable: usize,
}

/// Scans `/proc/*/maps` and `/proc/*/fd/*` under `root` for `/dev/shm` users.
pub fn scan_holders(root: &Root) -> Holders {
    let mut h = Holders::default();
    let Ok(dir) = std::fs::read_dir(root.path("/proc")) else {
        return h;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        h.scanned += 1;
        let mut blind = false;
        match std::fs::read_to_string(root.path(&format!("/proc/{pid}/maps"))) {
            Ok(text) => {
                for (name, dev, ino) in maps_shm(&text) {
                    if let Some(n) = name {
                        h.names.insert(n);
                    }
                    h.inodes.insert((dev, ino));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => blind = true,
            Err(_) => {}
        }
        match std::fs::read_dir(root.path(&format!("/proc/{pid}/fd"))) {
            Ok(fds) => {
                for fd in fds.flatten() {
                    if let Ok(target) = std::fs::read_link(fd.path()) {
                        if let Some(n) = shm_name(&target.to_string_lossy()) {
                            h.names.insert(n);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => blind = true,
            Err(_) => {}
        }
        if blind {
            h.unreadable += 1;
        }
    }
    h
}

/// The segment name in a path `/dev/shm/NAME` (no deeper directories, not deleted).
pub(crate) fn shm_name(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/dev/shm/")?;
    if rest.is_empty() || rest.contains('/') || rest.ends_with(" (deleted)") {
        return None;
    }
    Some(rest.to_string())
}

/// The `/dev/shm` mappings in a maps file: (name if the path says, device, inode). Device is
/// encoded as the kernel's `st_dev` (`major:minor` in hex in the file).
pub fn maps_shm(text: &str) -> Vec<(Option<String>, u64, u64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        // addr perms offset dev inode path
        let mut it = line.splitn(6, ' ');
        let (_, _, _, dev, ino) = (it.next(), it.next(), it.next(), it.next(), it.next());
        let path = it.next().map(str::trim_start).unwrap_or("");
        let (Some(dev), Some(ino)) = (dev, ino) else {
            continue;
        };
        let Ok(ino) = ino.parse::<u64>() else {
            continue;
        };
        let name = shm_name(path);
        // A deleted segment ("/dev/shm/x (deleted)") keeps its inode but has no name.
        if name.is_none() && !path.starts_with("/dev/shm/") {
            continue;
        }
        let dev = dev
            .split_once(':')
            .and_then(|(ma, mi)| {
                Some(makedev(
                    u64::from_str_radix(ma, 16).ok()?,
                    u64::from_str_radix(mi, 16).ok()?,
                ))
            })
            .unwrap_or(0);
        out.push((name, dev, ino));
    }
    out
}

/// The kernel's `st_dev` encoding of a major and minor number (glibc's `makedev`).
pub fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfffff000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffffff00) << 12)
        | (minor & 0xff)
}
