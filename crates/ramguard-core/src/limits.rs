//! From facts to answers: where this process's cgroup lives on disk, the effective memory
//! limit, and the headroom left under it.
//!
//! The effective limit is the smallest of physical memory and every memory limit on the path
//! from the process's cgroup up to the mount root. Headroom at each limited level is
//! `limit − (usage − inactive_file)`, each figure from *that* level (taking usage from the
//! leaf and the limit from an ancestor is a known bug elsewhere); the host's headroom is
//! `MemAvailable`. Available is the smallest of them. Nothing here reads a file: the probe
//! gathers [`CgroupLevel`]s and calls [`effective`].

use serde::Serialize;

use crate::parse::Mount;
use crate::units::Bytes;

/// Where a number came from, so every figure the probe reports can be traced to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub kind: SourceKind,
    /// The file read, as a path on the probed host (without the `--root` prefix).
    pub file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Meminfo,
    CgroupV1,
    CgroupV2,
    Psi,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceKind::Meminfo => "meminfo",
            SourceKind::CgroupV1 => "cgroup v1",
            SourceKind::CgroupV2 => "cgroup v2",
            SourceKind::Psi => "psi",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// One directory on the path from the process's cgroup up to the mount root, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupLevel {
    pub version: CgroupVersion,
    /// The directory on the probed host (`/sys/fs/cgroup/user.slice/...`).
    pub dir: String,
    /// The smallest memory limit set at this level, `None` when unlimited.
    pub limit: Option<Bytes>,
    /// The file that limit came from (`memory.max`, `memory.high`, `memory.limit_in_bytes`).
    pub limit_file: Option<String>,
    pub usage: Option<Bytes>,
    pub inactive_file: Option<Bytes>,
}

impl CgroupLevel {
    /// Headroom at this level: `limit − (usage − inactive_file)`; `None` when unlimited.
    pub fn headroom(&self) -> Option<Bytes> {
        let limit = self.limit?;
        let usage = self.usage.unwrap_or_default();
        let reclaimable = self.inactive_file.unwrap_or_default();
        Some(limit.saturating_sub(usage.saturating_sub(reclaimable)))
    }

    fn source(&self, file: &str) -> Source {
        Source {
            kind: match self.version {
                CgroupVersion::V1 => SourceKind::CgroupV1,
                CgroupVersion::V2 => SourceKind::CgroupV2,
            },
            file: join(&self.dir, file),
        }
    }
}

/// The effective limit and the available headroom, each with its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effective {
    pub limit: Bytes,
    pub limit_source: Source,
    pub available: Bytes,
    pub available_source: Source,
}

/// Computes the effective limit and available headroom from `MemTotal`, `MemAvailable` and
/// every cgroup level on the process's path. Ties go to the host (meminfo), then to the
/// level nearest the leaf.
pub fn effective(mem_total: Bytes, mem_available: Bytes, levels: &[CgroupLevel]) -> Effective {
    let meminfo = || Source {
        kind: SourceKind::Meminfo,
        file: "/proc/meminfo".into(),
    };
    let mut limit = (mem_total, meminfo());
    let mut available = (mem_available, meminfo());
    for level in levels {
        if let (Some(l), Some(file)) = (level.limit, &level.limit_file) {
            if l < limit.0 {
                limit = (l, level.source(file));
            }
        }
        if let Some(h) = level.headroom() {
            if h < available.0 {
                let file = match level.version {
                    CgroupVersion::V1 => "memory.usage_in_bytes",
                    CgroupVersion::V2 => "memory.current",
                };
                available = (h, level.source(file));
            }
        }
    }
    Effective {
        limit: limit.0,
        limit_source: limit.1,
        available: available.0,
        available_source: available.1,
    }
}

/// Joins a directory and a file name with exactly one `/`.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// How a cgroup path from `/proc/self/cgroup` maps onto a mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupPlacement {
    /// Directories from the process's own cgroup up to the mount point, leaf first.
    pub dirs: Vec<String>,
    /// False when the path could not be placed under the mount (it starts with `/..`, as in a
    /// cgroup namespace whose root is below the process's cgroup, or lies outside the mounted
    /// subtree); then only the mount point itself is read.
    pub exact: bool,
}

/// Places `cgroup_path` (from `/proc/self/cgroup`) under a mount of its hierarchy: strips the
/// mount's root from the path, and lists the directories from the leaf up to the mount point.
pub fn place_cgroup(mount: &Mount, cgroup_path: &str) -> CgroupPlacement {
    let top = mount.mount_point.trim_end_matches('/').to_string();
    let top = if top.is_empty() { "/".to_string() } else { top };
    let only_top = || CgroupPlacement {
        dirs: vec![top.clone()],
        exact: false,
    };
    if cgroup_path.split('/').any(|c| c == "..") {
        return only_top();
    }
    let mroot = mount.root.trim_end_matches('/');
    let rel = if mroot.is_empty() {
        cgroup_path
    } else if cgroup_path == mroot {
        ""
    } else if let Some(r) = cgroup_path
        .strip_prefix(mroot)
        .filter(|r| r.starts_with('/'))
    {
        r
    } else {
        return only_top();
    };
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut dirs = Vec::with_capacity(comps.len() + 1);
    for n in (0..=comps.len()).rev() {
        let mut d = top.clone();
        for c in &comps[..n] {
            d = join(&d, c);
        }
        dirs.push(d);
    }
    CgroupPlacement { dirs, exact: true }
}

/// Picks the mount of a hierarchy that holds `cgroup_path`: among the candidates, the one
/// whose root is the longest prefix of the path (bind mounts of a subtree are common in
/// containers); falls back to the first candidate.
pub fn pick_mount<'a>(candidates: &[&'a Mount], cgroup_path: &str) -> Option<&'a Mount> {
    candidates
        .iter()
        .copied()
        .filter(|m| {
            let r = m.root.trim_end_matches('/');
            r.is_empty()
                || cgroup_path == r
                || cgroup_path
                    .strip_prefix(r)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|m| m.root.len())
        .or_else(|| candidates.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::mountinfo;

    const GIB: u64 = 1 << 30;

    fn level(dir: &str, limit: Option<u64>, usage: u64, inactive: u64) -> CgroupLevel {
        CgroupLevel {
            version: CgroupVersion::V2,
            dir: dir.into(),
            limit: limit.map(Bytes),
            limit_file: limit.map(|_| "memory.max".into()),
            usage: Some(Bytes(usage)),
            inactive_file: Some(Bytes(inactive)),
        }
    }

    #[test]
    fn no_limits_means_meminfo() {
        let e = effective(
            Bytes(24 * GIB),
            Bytes(23 * GIB),
            &[level("/a", None, GIB, 0)],
        );
        assert_eq!(e.limit, Bytes(24 * GIB));
        assert_eq!(e.limit_source.kind, SourceKind::Meminfo);
        assert_eq!(e.available, Bytes(23 * GIB));
    }

    #[test]
    fn parent_limit_uses_parent_usage() {
        // The leaf uses 1 GiB; its parent (limit 4 GiB) holds 3 GiB of which 0.5 is inactive.
        let levels = [
            level("/sys/fs/cgroup/s/leaf", None, GIB, 0),
            level("/sys/fs/cgroup/s", Some(4 * GIB), 3 * GIB, GIB / 2),
        ];
        let e = effective(Bytes(24 * GIB), Bytes(20 * GIB), &levels);
        assert_eq!(e.limit, Bytes(4 * GIB));
        assert_eq!(e.limit_source.file, "/sys/fs/cgroup/s/memory.max");
        assert_eq!(e.available, Bytes(4 * GIB - (3 * GIB - GIB / 2)));
        assert_eq!(e.available_source.file, "/sys/fs/cgroup/s/memory.current");
    }

    #[test]
    fn smaller_limit_higher_up_wins() {
        let levels = [
            level("/c/b/a", Some(8 * GIB), GIB, 0),
            level("/c/b", None, GIB, 0),
            level("/c", Some(2 * GIB), GIB, 0),
        ];
        let e = effective(Bytes(24 * GIB), Bytes(20 * GIB), &levels);
        assert_eq!(e.limit, Bytes(2 * GIB));
        assert_eq!(e.available, Bytes(GIB));
        assert_eq!(e.available_source.file, "/c/memory.current");
    }

    #[test]
    fn usage_over_limit_saturates_to_zero_headroom() {
        let e = effective(
            Bytes(8 * GIB),
            Bytes(4 * GIB),
            &[level("/x", Some(GIB), 2 * GIB, 0)],
        );
        assert_eq!(e.available, Bytes(0));
    }

    fn mount(line: &str) -> Mount {
        mountinfo(line).unwrap().remove(0)
    }

    #[test]
    fn placement_under_root_mount() {
        let m = mount("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory");
        let p = place_cgroup(&m, "/process_api/ea37");
        assert!(p.exact);
        assert_eq!(
            p.dirs,
            [
                "/sys/fs/cgroup/memory/process_api/ea37",
                "/sys/fs/cgroup/memory/process_api",
                "/sys/fs/cgroup/memory"
            ]
        );
    }

    #[test]
    fn placement_strips_mount_root() {
        let m = mount("35 31 0:32 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw");
        let p = place_cgroup(&m, "/docker/abc/inner");
        assert_eq!(p.dirs, ["/sys/fs/cgroup/inner", "/sys/fs/cgroup"]);
        assert!(p.exact);
        let p = place_cgroup(&m, "/docker/abc");
        assert_eq!(p.dirs, ["/sys/fs/cgroup"]);
        let p = place_cgroup(&m, "/docker/abcdef");
        assert!(!p.exact);
    }

    #[test]
    fn placement_of_namespaced_root_and_dotdot() {
        let m = mount("35 31 0:32 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw");
        assert_eq!(place_cgroup(&m, "/").dirs, ["/sys/fs/cgroup"]);
        let p = place_cgroup(&m, "/../../user.slice");
        assert!(!p.exact);
        assert_eq!(p.dirs, ["/sys/fs/cgroup"]);
    }

    #[test]
    fn pick_mount_prefers_longest_matching_root() {
        let a = mount("1 1 0:1 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory");
        let b = mount("2 1 0:1 /kube /mnt/kube rw - cgroup cgroup rw,memory");
        assert_eq!(
            pick_mount(&[&a, &b], "/kube/pod").unwrap().mount_point,
            "/mnt/kube"
        );
        assert_eq!(
            pick_mount(&[&a, &b], "/other").unwrap().mount_point,
            "/sys/fs/cgroup/memory"
        );
    }
}
