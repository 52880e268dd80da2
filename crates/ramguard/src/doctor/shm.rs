//! `/dev/shm` checks: its size against RAM (too small for multiprocessing shared memory, or
//! unbounded so it can eat all of RAM), its use now, and leaked segments.
//!
//! A segment is "held" when some process maps it (`/proc/PID/maps`: the path
//! `/dev/shm/NAME`, or on the live host the same device and inode) or has it open
//! (`/proc/PID/fd/*` links to `/dev/shm/NAME`). Anything else is leaked: it costs memory
//! until someone deletes it. Processes whose maps or fds we may not read (other users, when
//! not root) make the answer uncertain, and the finding says so. Under `--root` the tree's
//! own `proc/` is scanned the same way, by path only.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::UNIX_EPOCH;

use ramguard_core::Bytes;

use super::{age_text, ev, Checkup, Context, Severity};
use crate::probe::{shm::ShmFile, HostReport, Root};

/// A `/dev/shm` smaller than this breaks multiprocessing and PyTorch DataLoader workers.
const SMALL: Bytes = Bytes::from_mib(512);

/// Runs the `/dev/shm` checks.
pub fn check(root: &Root, ctx: &Context, host: Option<&HostReport>, c: &mut Checkup) {
    let Some(h) = host else {
        c.unknown("shm", "/proc/meminfo could not be read");
        return;
    };
    match &h.shm {
        None => c.unknown(
            "shm",
            "no tmpfs is mounted at /dev/shm (per /proc/self/mountinfo)",
        ),
        Some(s) => size(h, s, c),
    }
    leaked(root, ctx, c);
}

fn size(h: &HostReport, s: &crate::probe::host::ShmReport, c: &mut Checkup) {
    let total = h.memory.total;
    let limit = h.memory.effective.limit;
    let src = "/proc/self/mountinfo";
    let evidence = vec![
        ev("size", format!("{} ({})", s.size, s.size_source), src),
        ev("MemTotal", total, "/proc/meminfo"),
        ev(
            "used now",
            format!("{} in {} file(s)", s.used, s.files),
            "/dev/shm",
        ),
    ];
    if s.size < SMALL {
        c.found(
            "shm.small",
            Severity::Warn,
            format!(
                "/dev/shm is only {}: multiprocessing shared memory, joblib and PyTorch DataLoader workers die with SIGBUS (\"Bus error\") when it fills",
                s.size
            ),
            evidence,
            "give it room: `docker run --shm-size=8g` (compose: `shm_size: 8gb`), Kubernetes: an `emptyDir` with `medium: Memory` at /dev/shm; on a host `sudo mount -o remount,size=8G /dev/shm`",
        );
    } else if s.size >= limit.scale(0.9) {
        c.found(
            "shm.unbounded",
            Severity::Warn,
            format!(
                "/dev/shm may grow to {} ({:.0}% of RAM): shared memory nobody frees can take all of memory, and tmpfs pages can only go to swap",
                s.size,
                100.0 * s.size.get() as f64 / total.get().max(1) as f64
            ),
            evidence,
            "cap it below the memory you can spare: `sudo mount -o remount,size=50% /dev/shm` (persist with a `tmpfs /dev/shm tmpfs defaults,size=50% 0 0` line in /etc/fstab); under `ramguard run` the /dev/shm files a task creates count toward its --task-mem and the budget",
        );
    } else if s.used > s.size.scale(0.5) {
        c.found(
            "shm.full",
            Severity::Warn,
            format!(
                "/dev/shm is {} full of {}: the next large segment may SIGBUS",
                s.used, s.size
            ),
            evidence,
            "look for leaked segments (`ls -la /dev/shm`) and remove those no running job owns",
        );
    }
}

pub use crate::probe::shm::{maps_shm, scan_holders, Holders};

fn leaked(root: &Root, ctx: &Context, c: &mut Checkup) {
    let files = match crate::probe::shm::files(root) {
        Ok(f) => f,
        Err(e) => return c.unknown("shm.leaked", format!("{e:#}")),
    };
    if files.is_empty() {
        return;
    }
    let holders = scan_holders(root);
    if holders.scanned == 0 {
        return c.unknown(
            "shm.leaked",
            "no process directories under /proc, so nobody's use of /dev/shm can be seen",
        );
    }
    let live = root.is_host();
    let leaked: Vec<&ShmFile> = files
        .iter()
        .filter(|f| {
            if holders.names.contains(&f.name) {
                return false;
            }
            if live {
                if let Ok(m) = std::fs::metadata(root.path(&format!("/dev/shm/{}", f.name))) {
                    if holders.inodes.contains(&(m.dev(), m.ino())) {
                        return false;
                    }
                }
            }
            true
        })
        .collect();
    if leaked.is_empty() {
        return;
    }
    let users = passwd(root);
    let total: Bytes = leaked.iter().map(|f| f.allocated).sum();
    let now = ctx
        .now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut evidence = vec![ev(
        "leaked",
        format!("{} in {} segment(s)", total, leaked.len()),
        "/dev/shm",
    )];
    for f in &leaked {
        let owner = match users.get(&f.uid) {
            Some(n) => format!("{n} ({})", f.uid),
            None => format!("uid {}", f.uid),
        };
        let age = age_text(now.saturating_sub(f.mtime).max(0) as u64);
        evidence.push(ev(
            &f.name,
            format!(
                "{} (length {}), owner {owner}, age {age}",
                f.allocated, f.len
            ),
            format!("/dev/shm/{}", f.name),
        ));
    }
    let seen = if holders.unreadable > 0 {
        format!(
            "not held by any process we can see ({} of {} processes could not be read: run as root to be sure)",
            holders.unreadable, holders.scanned
        )
    } else {
        format!(
            "not open or mapped by any of the {} processes visible here",
            holders.scanned
        )
    };
    let mut names: Vec<String> = leaked
        .iter()
        .take(8)
        .map(|f| format!("/dev/shm/{}", f.name))
        .collect();
    if leaked.len() > 8 {
        names.push("...".into());
    }
    c.found(
        "shm.leaked",
        if total > Bytes::from_mib(1024) {
            Severity::Critical
        } else {
            Severity::Warn
        },
        format!(
            "{} leaked shared memory segment(s) hold {total} of RAM: {seen}",
            leaked.len()
        ),
        evidence,
        format!(
            "if no job of yours is running, delete them: `rm {}`; in Python, call `shm.close()` in every process and `shm.unlink()` once, in a `finally:`; `ramguard run` removes the files of tasks it stops and names those a task leaves (`--shm-cleanup` removes them too)",
            names.join(" ")
        ),
    );
}

/// uid → user name from the tree's `/etc/passwd`.
fn passwd(root: &Root) -> HashMap<u32, String> {
    let text = super::read(root, "/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(':');
            let name = it.next()?;
            let uid = it.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::shm::{makedev, shm_name};

    #[test]
    fn maps_lines_name_shm_segments() {
        let t = "7f00-7f10 rw-s 00000000 00:1b 4242 /dev/shm/psm_abc\n\
                 7f10-7f20 r--p 00000000 08:01 99 /usr/lib/libc.so.6\n\
                 7f20-7f30 rw-s 00000000 00:1b 4243 /dev/shm/gone (deleted)\n\
                 7f30-7f40 rw-p 00000000 00:00 0 \n";
        let got = maps_shm(t);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (Some("psm_abc".into()), makedev(0, 0x1b), 4242));
        assert_eq!(
            got[1].0, None,
            "a deleted segment is not a name in /dev/shm"
        );
    }

    #[test]
    fn makedev_matches_small_numbers() {
        assert_eq!(makedev(8, 1), 0x801);
        assert_eq!(makedev(0, 0x1b), 0x1b);
    }

    #[test]
    fn only_direct_children_of_dev_shm_are_segments() {
        assert_eq!(shm_name("/dev/shm/x"), Some("x".into()));
        assert_eq!(shm_name("/dev/shm/a/b"), None);
        assert_eq!(shm_name("/dev/shmx"), None);
    }
}
