//! The host summary: effective memory limit and headroom (with sources), swap, `/dev/shm`,
//! PSI, usable CPUs and the kernel's OOM-kill count.
//!
//! This reads only cheap files (meminfo, cgroup value files, PSI); it never reads any
//! `smaps_rollup`, which costs milliseconds per GiB. [`MemoryWatch`] is the fast path the
//! supervisor calls every tick: meminfo plus the usage files of the limited cgroup levels.

use anyhow::Result;
use ramguard_core::limits::{self, CgroupLevel, CgroupVersion, Effective, Source, SourceKind};
use ramguard_core::parse::{self, Mount};
use ramguard_core::Bytes;
use serde::Serialize;

use super::Root;

/// Version of the JSON shape `ramguard probe --json` prints.
pub const PROBE_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub schema: u32,
    /// The directory read as `/` (`--root`).
    pub root: String,
    pub memory: MemoryReport,
    pub swap: SwapReport,
    pub shm: Option<ShmReport>,
    pub psi: Option<PsiReport>,
    pub cpus: CpuReport,
    /// `oom_kill` from `/proc/vmstat`: kernel OOM kills since boot (absent before 4.13).
    pub oom_kills: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// `MemTotal`.
    pub total: Bytes,
    /// `MemAvailable`.
    pub mem_available: Bytes,
    #[serde(flatten)]
    pub effective: Effective,
    pub cgroup: Option<CgroupReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupReport {
    pub version: CgroupVersion,
    /// The process's cgroup path as `/proc/self/cgroup` gives it.
    pub path: String,
    pub mount_point: String,
    /// False when the path could not be placed under the mount (cgroup namespace `/..`).
    pub placed: bool,
    /// Whether the memory controller is enabled: v2's root `cgroup.controllers` lists
    /// `memory` (a Raspberry Pi boots with `cgroup_disable=memory`); always true on v1, where
    /// the hierarchy is only mounted when the controller exists. `None` when unreadable.
    pub memory_controller: Option<bool>,
    /// Leaf first, up to the mount root.
    pub levels: Vec<LevelReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    #[serde(flatten)]
    pub level: CgroupLevel,
    pub headroom: Option<Bytes>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwapReport {
    pub total: Bytes,
    pub free: Bytes,
    pub zram: bool,
    /// Whether zswap is enabled; `None` when the module parameter is not readable.
    pub zswap: Option<bool>,
    pub swappiness: Option<u64>,
    pub areas: Vec<SwapAreaReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwapAreaReport {
    pub name: String,
    pub kind: String,
    pub size: Bytes,
    pub used: Bytes,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShmReport {
    pub mount_point: String,
    pub size: Bytes,
    /// `mount option` when `size=` is set, `default` for the kernel's 50% of RAM.
    pub size_source: &'static str,
    /// Bytes allocated by the files in it now.
    pub used: Bytes,
    pub files: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PsiReport {
    pub source: Source,
    pub some_avg10: f64,
    pub full_avg10: f64,
    pub some_avg60: f64,
    pub full_avg60: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// CPUs a task can really use: the smaller of the affinity mask and the CPU quota.
    pub usable: u32,
    pub affinity: u32,
    /// The smallest CPU bandwidth quota on the cgroup path, in CPUs.
    pub quota: Option<f64>,
    pub quota_source: Option<Source>,
}

/// What `/proc/self/cgroup` and `/proc/self/mountinfo` say about where this process lives.
#[derive(Debug, Clone, Default)]
struct Placement {
    lines: Vec<parse::CgroupLine>,
    mounts: Vec<Mount>,
}

impl Placement {
    fn read(root: &Root) -> Result<Placement> {
        let lines = match root.read_opt("/proc/self/cgroup")? {
            Some(t) => root.parse("/proc/self/cgroup", &t, parse::proc_cgroup)?,
            None => Vec::new(),
        };
        let mounts = match root.read_opt("/proc/self/mountinfo")? {
            Some(t) => root.parse("/proc/self/mountinfo", &t, parse::mountinfo)?,
            None => Vec::new(),
        };
        Ok(Placement { lines, mounts })
    }

    /// The directories of a v1 controller's hierarchy, leaf first, with the line's path.
    fn v1(&self, controller: &str) -> Option<(String, &Mount, limits::CgroupPlacement)> {
        let line = self.lines.iter().find(|l| l.has_controller(controller))?;
        let candidates: Vec<&Mount> = self
            .mounts
            .iter()
            .filter(|m| m.is_v1_with(controller))
            .collect();
        let mount = limits::pick_mount(&candidates, &line.path)?;
        Some((
            line.path.clone(),
            mount,
            limits::place_cgroup(mount, &line.path),
        ))
    }

    /// The directories of the unified (v2) hierarchy, leaf first, with the line's path.
    fn v2(&self) -> Option<(String, &Mount, limits::CgroupPlacement)> {
        let line = self.lines.iter().find(|l| l.is_v2())?;
        let candidates: Vec<&Mount> = self
            .mounts
            .iter()
            .filter(|m| m.fs_type == "cgroup2")
            .collect();
        let mount = limits::pick_mount(&candidates, &line.path)?;
        Some((
            line.path.clone(),
            mount,
            limits::place_cgroup(mount, &line.path),
        ))
    }
}

fn read_bytes_opt(root: &Root, path: &str) -> Result<Option<Bytes>> {
    match root.read_opt(path)? {
        Some(t) => Ok(Some(Bytes(root.parse(path, &t, parse::single_u64)?))),
        None => Ok(None),
    }
}

fn read_limit(root: &Root, path: &str) -> Result<Option<Option<Bytes>>> {
    match root.read_opt(path)? {
        Some(t) => Ok(Some(root.parse(path, &t, parse::cgroup_limit)?)),
        None => Ok(None),
    }
}

/// Reads one cgroup directory's memory figures.
fn read_level(root: &Root, version: CgroupVersion, dir: &str) -> Result<CgroupLevel> {
    let f = |name: &str| limits::join(dir, name);
    let mut limit: Option<(Bytes, String)> = None;
    let limit_files: &[&str] = match version {
        CgroupVersion::V1 => &["memory.limit_in_bytes"],
        CgroupVersion::V2 => &["memory.max", "memory.high"],
    };
    for name in limit_files {
        if let Some(Some(l)) = read_limit(root, &f(name))? {
            if limit.as_ref().is_none_or(|(cur, _)| l < *cur) {
                limit = Some((l, (*name).to_string()));
            }
        }
    }
    let usage = match version {
        CgroupVersion::V1 => read_bytes_opt(root, &f("memory.usage_in_bytes"))?,
        CgroupVersion::V2 => read_bytes_opt(root, &f("memory.current"))?,
    };
    let stat = root
        .read_opt(&f("memory.stat"))?
        .map(|t| parse::key_values(&t))
        .unwrap_or_default();
    // v1's `total_inactive_file` covers the subtree, as `usage_in_bytes` does.
    let inactive = stat
        .get("total_inactive_file")
        .or_else(|| stat.get("inactive_file"))
        .copied()
        .map(Bytes);
    Ok(CgroupLevel {
        version,
        dir: dir.to_string(),
        limit: limit.as_ref().map(|(l, _)| *l),
        limit_file: limit.map(|(_, f)| f),
        usage,
        inactive_file: inactive,
    })
}

/// The memory cgroup path of this process: v1's memory controller when it is mounted (hybrid
/// hosts), else the unified hierarchy.
fn memory_cgroup(root: &Root, place: &Placement) -> Result<Option<CgroupReport>> {
    let (version, found) = match place.v1("memory") {
        Some(f) => (CgroupVersion::V1, f),
        None => match place.v2() {
            Some(f) => (CgroupVersion::V2, f),
            None => return Ok(None),
        },
    };
    let (path, mount, placement) = found;
    let mut levels = Vec::with_capacity(placement.dirs.len());
    for dir in &placement.dirs {
        let level = read_level(root, version, dir)?;
        levels.push(LevelReport {
            headroom: level.headroom(),
            level,
        });
    }
    // A v1 ancestor above the mounted subtree is invisible, but the leaf's memory.stat still
    // carries its limit as hierarchical_memory_limit.
    if version == CgroupVersion::V1 {
        if let Some(leaf) = placement.dirs.first() {
            let stat_path = limits::join(leaf, "memory.stat");
            if let Some(t) = root.read_opt(&stat_path)? {
                let kv = parse::key_values(&t);
                let seen_min = levels.iter().filter_map(|l| l.level.limit).min();
                if let Some(h) = kv
                    .get("hierarchical_memory_limit")
                    .and_then(|v| parse::cgroup_limit(&v.to_string()).ok().flatten())
                {
                    if seen_min.is_none_or(|m| h < m) {
                        let mut level = read_level(root, version, leaf)?;
                        level.limit = Some(h);
                        level.limit_file = Some("memory.stat:hierarchical_memory_limit".into());
                        levels.push(LevelReport {
                            headroom: level.headroom(),
                            level,
                        });
                    }
                }
            }
        }
    }
    let memory_controller = match version {
        CgroupVersion::V1 => Some(true),
        CgroupVersion::V2 => root
            .read_opt(&limits::join(&mount.mount_point, "cgroup.controllers"))?
            .map(|t| t.split_whitespace().any(|c| c == "memory")),
    };
    Ok(Some(CgroupReport {
        version,
        path,
        mount_point: mount.mount_point.clone(),
        placed: placement.exact,
        memory_controller,
        levels,
    }))
}

fn psi(root: &Root, place: &Placement) -> Option<PsiReport> {
    let mut candidates = Vec::new();
    if let Some((_, _, placement)) = place.v2() {
        if let Some(leaf) = placement.dirs.first() {
            candidates.push((SourceKind::CgroupV2, limits::join(leaf, "memory.pressure")));
        }
    }
    candidates.push((SourceKind::Psi, "/proc/pressure/memory".to_string()));
    candidates.into_iter().find_map(|(kind, file)| {
        let text = root.read_lenient(&file)?;
        let p = parse::psi(&text).ok()?;
        Some(PsiReport {
            source: Source { kind, file },
            some_avg10: p.some_avg10,
            full_avg10: p.full_avg10,
            some_avg60: p.some_avg60,
            full_avg60: p.full_avg60,
        })
    })
}

fn swap(root: &Root, mem: &parse::MemInfo) -> Result<SwapReport> {
    let areas = match root.read_opt("/proc/swaps")? {
        Some(t) => root.parse("/proc/swaps", &t, parse::swaps)?,
        None => Vec::new(),
    };
    let zswap = root
        .read_opt("/sys/module/zswap/parameters/enabled")?
        .map(|t| matches!(t.trim(), "Y" | "y" | "1"));
    let swappiness = root
        .read_opt("/proc/sys/vm/swappiness")?
        .and_then(|t| t.trim().parse().ok());
    Ok(SwapReport {
        total: mem.swap_total,
        free: mem.swap_free,
        zram: areas.iter().any(|a| a.is_zram()),
        zswap,
        swappiness,
        areas: areas
            .into_iter()
            .map(|a| SwapAreaReport {
                name: a.name,
                kind: a.kind,
                size: a.size,
                used: a.used,
            })
            .collect(),
    })
}

/// The size and use of the tmpfs at `/dev/shm`, where Python's SharedMemory lives.
fn shm(root: &Root, mounts: &[Mount], mem_total: Bytes) -> Result<Option<ShmReport>> {
    let Some(m) = mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == "/dev/shm" && m.fs_type == "tmpfs")
    else {
        return Ok(None);
    };
    let (size, size_source) = match m
        .option("size")
        .and_then(|o| parse::tmpfs_size(o, mem_total))
    {
        Some(s) => (s, "mount option"),
        None => (mem_total.scale(0.5), "default"),
    };
    let (used, files) = super::shm::usage(root)?;
    Ok(Some(ShmReport {
        mount_point: m.mount_point.clone(),
        size,
        size_source,
        used,
        files,
    }))
}

fn cpus(root: &Root, place: &Placement) -> Result<CpuReport> {
    let status = root.read_opt("/proc/self/status")?.unwrap_or_default();
    let affinity = match parse::status_field(&status, "Cpus_allowed_list") {
        Some(list) => root.parse("/proc/self/status", list, parse::cpu_list_count)?,
        None => 0,
    };
    let mut quota: Option<(f64, Source)> = None;
    let mut consider = |q: Option<f64>, src: Source| {
        if let Some(q) = q {
            if quota.as_ref().is_none_or(|(cur, _)| q < *cur) {
                quota = Some((q, src));
            }
        }
    };
    if let Some((_, _, placement)) = place.v1("cpu") {
        for dir in &placement.dirs {
            let qf = limits::join(dir, "cpu.cfs_quota_us");
            let pf = limits::join(dir, "cpu.cfs_period_us");
            if let (Some(q), Some(p)) = (root.read_opt(&qf)?, root.read_opt(&pf)?) {
                let v = root.parse(&qf, &q, |q| parse::cfs_quota(q, &p))?;
                consider(
                    v,
                    Source {
                        kind: SourceKind::CgroupV1,
                        file: qf,
                    },
                );
            }
        }
    }
    if let Some((_, _, placement)) = place.v2() {
        for dir in &placement.dirs {
            let f = limits::join(dir, "cpu.max");
            if let Some(t) = root.read_opt(&f)? {
                let v = root.parse(&f, &t, parse::cpu_max)?;
                consider(
                    v,
                    Source {
                        kind: SourceKind::CgroupV2,
                        file: f,
                    },
                );
            }
        }
    }
    let affinity = affinity.max(1);
    let usable = match &quota {
        Some((q, _)) => (q.ceil() as u32).clamp(1, affinity),
        None => affinity,
    };
    Ok(CpuReport {
        usable,
        affinity,
        quota: quota.as_ref().map(|(q, _)| *q),
        quota_source: quota.map(|(_, s)| s),
    })
}

/// Reads the whole host summary.
pub fn report(root: &Root) -> Result<HostReport> {
    let text = root.read("/proc/meminfo")?;
    let mem = root.parse("/proc/meminfo", &text, parse::meminfo)?;
    let place = Placement::read(root)?;
    let cgroup = memory_cgroup(root, &place)?;
    let levels: Vec<CgroupLevel> = cgroup
        .iter()
        .flat_map(|c| c.levels.iter().map(|l| l.level.clone()))
        .collect();
    let effective = limits::effective(mem.total, mem.available, &levels);
    let oom_kills = root
        .read_opt("/proc/vmstat")?
        .and_then(|t| parse::key_values(&t).get("oom_kill").copied());
    Ok(HostReport {
        schema: PROBE_SCHEMA,
        root: root.base().display().to_string(),
        memory: MemoryReport {
            total: mem.total,
            mem_available: mem.available,
            effective,
            cgroup,
        },
        swap: swap(root, &mem)?,
        shm: shm(root, &place.mounts, mem.total)?,
        psi: psi(root, &place),
        cpus: cpus(root, &place)?,
        oom_kills,
    })
}

/// The supervisor's per-tick view of memory: re-reads meminfo and the usage files of the
/// cgroup levels that carry a limit, found once by [`report`].
#[derive(Debug, Clone)]
pub struct MemoryWatch {
    root: Root,
    levels: Vec<CgroupLevel>,
}

impl MemoryWatch {
    pub fn new(root: Root, report: &HostReport) -> MemoryWatch {
        let levels = report
            .memory
            .cgroup
            .iter()
            .flat_map(|c| c.levels.iter())
            .filter(|l| l.level.limit.is_some())
            .map(|l| l.level.clone())
            .collect();
        MemoryWatch { root, levels }
    }

    /// Reads the effective limit and available headroom now.
    pub fn read(&mut self) -> Result<Effective> {
        let text = self.root.read("/proc/meminfo")?;
        let mem = self.root.parse("/proc/meminfo", &text, parse::meminfo)?;
        for level in &mut self.levels {
            let fresh = read_level(&self.root, level.version, &level.dir)?;
            level.usage = fresh.usage;
            level.inactive_file = fresh.inactive_file;
        }
        Ok(limits::effective(mem.total, mem.available, &self.levels))
    }
}
