//! Host-wide memory checks: the effective limit and where it comes from, swap (none, zram,
//! zswap, swappiness), overcommit policy, a disabled memory cgroup controller, PSI, transparent
//! huge pages and BLAS/OpenMP thread variables.
//!
//! Figures the probe already computes (limit, swap, PSI, CPUs) come from its
//! [`HostReport`]; the rest are single small files read here. Nothing is written.

use ramguard_core::limits::SourceKind;
use ramguard_core::Bytes;

use super::{ev, read, Checkup, Context, Severity};
pub use crate::probe::pages::{auxv_page_size, tree_page_size};
use crate::probe::{HostReport, Root};

/// The thread-count variables BLAS, OpenMP and friends read: the list `run` sets.
pub use crate::supervisor::THREAD_VARS;

/// Hosts with at least this many usable CPUs get the thread-variable check.
const MANY_CORES: u32 = 4;

/// Runs the memory checks.
pub fn check(root: &Root, ctx: &Context, host: Option<&HostReport>, c: &mut Checkup) {
    if let Some(h) = host {
        limit(h, c);
        swap(h, c);
        psi(h, c);
    } else {
        c.unknown("swap", "/proc/meminfo could not be read");
        c.unknown("psi", "/proc/meminfo could not be read");
    }
    overcommit(root, c);
    cgroup_controller(root, host, c);
    thp(root, c);
    threads(ctx, host, c);
}

fn limit(h: &HostReport, c: &mut Checkup) {
    let e = &h.memory.effective;
    if !matches!(
        e.limit_source.kind,
        SourceKind::CgroupV1 | SourceKind::CgroupV2
    ) {
        return;
    }
    let total = h.memory.total;
    let share = e.limit.get() as f64 / total.get().max(1) as f64;
    let severity = if share < 0.5 {
        Severity::Warn
    } else {
        Severity::Info
    };
    c.found(
        "limit.cgroup",
        severity,
        format!(
            "a cgroup limits this process to {} ({:.0}% of the {} of RAM): that, not RAM, is what a batch can use",
            e.limit,
            share * 100.0,
            total
        ),
        vec![
            ev("limit", e.limit, &e.limit_source.file),
            ev("MemTotal", total, "/proc/meminfo"),
            ev("available under the limit", e.available, &e.available_source.file),
        ],
        format!(
            "size the batch to {} (ramguard run does so by default); if the limit is a mistake, raise it where it is set ({}: e.g. `docker run --memory`, `systemd-run -p MemoryMax=`, `sbatch --mem`)",
            e.limit, e.limit_source.file
        ),
    );
}

fn swap(h: &HostReport, c: &mut Checkup) {
    let s = &h.swap;
    let swappiness = s
        .swappiness
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".into());
    if s.total == Bytes::ZERO {
        let mut evidence = vec![ev("SwapTotal", s.total, "/proc/meminfo")];
        if let Some(true) = s.zswap {
            evidence.push(ev(
                "zswap",
                "enabled, but with no swap device it holds nothing",
                "/sys/module/zswap/parameters/enabled",
            ));
        }
        c.found(
            "swap.none",
            Severity::Warn,
            "no swap: the kernel OOM killer strikes the moment memory runs out, with no slowdown to warn you",
            evidence,
            "leave headroom (ramguard run brakes before the limit), or add swap: zram (`sudo apt install zram-tools`) or a swap file (`sudo fallocate -l 4G /swapfile && sudo chmod 600 /swapfile && sudo mkswap /swapfile && sudo swapon /swapfile`)",
        );
        return;
    }
    let zram: Vec<_> = s.areas.iter().filter(|a| a.name.contains("zram")).collect();
    if !zram.is_empty() {
        let size: Bytes = zram.iter().map(|a| a.size).sum();
        let used: Bytes = zram.iter().map(|a| a.used).sum();
        let mut evidence: Vec<_> = zram
            .iter()
            .map(|a| {
                ev(
                    &a.name,
                    format!("{} (used {})", a.size, a.used),
                    "/proc/swaps",
                )
            })
            .collect();
        evidence.push(ev("swappiness", &swappiness, "/proc/sys/vm/swappiness"));
        c.found(
            "swap.zram",
            Severity::Info,
            format!(
                "swap is zram ({size}, {used} used): compressed RAM, not extra memory — compressible data stretches further, but a batch that outgrows RAM still dies, after a stretch of heavy CPU"
            ),
            evidence,
            "budget batches against physical RAM (`ramguard run --mem`), not RAM + zram; zram is fine to keep as a cushion",
        );
    } else {
        let high = s.swappiness.is_some_and(|v| v >= 60);
        c.found(
            "swap.disk",
            Severity::Info,
            format!(
                "{} of disk swap: a batch that outgrows RAM slows to a crawl (thrashing) long before the OOM killer acts",
                s.total
            ),
            vec![
                ev("SwapTotal", s.total, "/proc/meminfo"),
                ev("SwapFree", s.free, "/proc/meminfo"),
                ev("swappiness", &swappiness, "/proc/sys/vm/swappiness"),
            ],
            if high {
                "let ramguard's brake stop the newest task before swapping starts; `sudo sysctl vm.swappiness=10` makes the kernel prefer dropping cache to swapping"
            } else {
                "let ramguard's brake stop the newest task before swapping starts"
            },
        );
    }
    if s.zswap == Some(true) {
        c.found(
            "swap.zswap",
            Severity::Info,
            "zswap is on: pages bound for swap are first compressed in RAM",
            vec![ev(
                "zswap",
                "enabled",
                "/sys/module/zswap/parameters/enabled",
            )],
            "nothing to do; count only physical RAM when sizing a batch",
        );
    }
}

fn psi(h: &HostReport, c: &mut Checkup) {
    match &h.psi {
        None => c.found(
            "psi.unavailable",
            Severity::Info,
            "no memory pressure information (PSI): reclaim stalls cannot be seen coming, so admission cannot pause on them",
            vec![ev("memory pressure", "absent", "/proc/pressure/memory")],
            "boot a kernel built with CONFIG_PSI (4.20+) with `psi=1` on its command line; ramguard works without it, from free memory alone",
        ),
        Some(p) if p.full_avg10 >= 10.0 || p.some_avg10 >= 30.0 => c.found(
            "psi.high",
            Severity::Warn,
            format!(
                "memory pressure is high right now: some task stalled on memory {:.0}% of the last 10 s, all tasks at once {:.0}%",
                p.some_avg10, p.full_avg10
            ),
            vec![
                ev("some avg10", format!("{:.2}%", p.some_avg10), &p.source.file),
                ev("full avg10", format!("{:.2}%", p.full_avg10), &p.source.file),
            ],
            "find what is using memory (`ps aux --sort=-rss | head`) before starting a batch; ramguard pauses admission while pressure is high",
        ),
        Some(_) => {}
    }
}

/// Reads `Key: N kB` from meminfo text as bytes.
fn meminfo_field(text: &str, key: &str) -> Option<Bytes> {
    text.lines().find_map(|l| {
        let (k, rest) = l.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let mut it = rest.split_whitespace();
        let v: u64 = it.next()?.parse().ok()?;
        Some(match it.next() {
            Some("kB") => Bytes::from_kib(v),
            _ => Bytes(v),
        })
    })
}

fn overcommit(root: &Root, c: &mut Checkup) {
    let mode = match read(root, "/proc/sys/vm/overcommit_memory") {
        Ok(t) => t.trim().to_string(),
        Err(why) => return c.unknown("overcommit", why),
    };
    let meminfo = read(root, "/proc/meminfo").unwrap_or_default();
    match mode.as_str() {
        "2" => {
            let ratio = read(root, "/proc/sys/vm/overcommit_ratio")
                .map(|t| t.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            let mut evidence = vec![
                ev("overcommit_memory", "2 (strict)", "/proc/sys/vm/overcommit_memory"),
                ev("overcommit_ratio", format!("{ratio}%"), "/proc/sys/vm/overcommit_ratio"),
            ];
            let limit = meminfo_field(&meminfo, "CommitLimit");
            let committed = meminfo_field(&meminfo, "Committed_AS");
            if let Some(l) = limit {
                evidence.push(ev("CommitLimit", l, "/proc/meminfo"));
            }
            if let Some(u) = committed {
                evidence.push(ev("Committed_AS", u, "/proc/meminfo"));
            }
            let room = match (limit, committed) {
                (Some(l), Some(u)) => format!(" ({} left to commit)", l.saturating_sub(u)),
                _ => String::new(),
            };
            c.found(
                "overcommit.strict",
                Severity::Critical,
                format!(
                    "strict overcommit: allocations fail with ENOMEM once reserved address space reaches CommitLimit{room}; `fork()` of a big Python process (multiprocessing) fails even with RAM free"
                ),
                evidence,
                "`sudo sysctl vm.overcommit_memory=0` (persist in /etc/sysctl.d/90-overcommit.conf), or raise vm.overcommit_ratio; with strict mode kept, use multiprocessing's 'forkserver' or 'spawn' start method",
            );
        }
        "1" => c.found(
            "overcommit.always",
            Severity::Info,
            "overcommit always: allocations never fail, so the OOM killer is the only thing that stops a runaway task",
            vec![ev("overcommit_memory", "1 (always)", "/proc/sys/vm/overcommit_memory")],
            "keep ramguard's brake on (the default); `sudo sysctl vm.overcommit_memory=0` restores the kernel's heuristic",
        ),
        _ => {}
    }
}

fn cgroup_controller(root: &Root, host: Option<&HostReport>, c: &mut Checkup) {
    let cmdline = read(root, "/proc/cmdline").ok();
    let disabled_by_cmdline = cmdline.as_deref().is_some_and(|t| {
        t.split_whitespace().any(|w| {
            w.strip_prefix("cgroup_disable=")
                .is_some_and(|v| v.split(',').any(|x| x == "memory"))
        })
    });
    let controller = host.and_then(|h| h.memory.cgroup.as_ref());
    let disabled_in_tree = controller.is_some_and(|cg| cg.memory_controller == Some(false));
    if !disabled_by_cmdline && !disabled_in_tree {
        if cmdline.is_none() && controller.is_none() {
            c.unknown(
                "cgroup.memory_disabled",
                "neither /proc/cmdline nor a memory cgroup could be read",
            );
        }
        return;
    }
    let mut evidence = Vec::new();
    if disabled_by_cmdline {
        evidence.push(ev(
            "kernel command line",
            "cgroup_disable=memory",
            "/proc/cmdline",
        ));
    }
    if let Some(cg) = controller.filter(|_| disabled_in_tree) {
        evidence.push(ev(
            "controllers",
            "no `memory`",
            ramguard_core::limits::join(&cg.mount_point, "cgroup.controllers"),
        ));
    }
    c.found(
        "cgroup.memory_disabled",
        Severity::Warn,
        "the memory cgroup controller is disabled: no per-job memory limit (systemd-run -p MemoryMax, docker --memory) can take effect, and nothing contains a runaway task",
        evidence,
        "remove `cgroup_disable=memory` from the kernel command line and add `cgroup_enable=memory` (Raspberry Pi: /boot/firmware/cmdline.txt), then reboot",
    );
}

fn thp(root: &Root, c: &mut Checkup) {
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    let text = match read(root, path) {
        Ok(t) => t,
        Err(why) => return c.unknown("thp", why),
    };
    if text.split_whitespace().any(|w| w == "[always]") {
        c.found(
            "thp.always",
            Severity::Info,
            "transparent huge pages are always on: touching one byte can fault in 2 MiB, so sparse arrays and forked workers show far more RSS than they use",
            vec![ev("enabled", text.trim(), path)],
            format!("`echo madvise | sudo tee {path}` (programs that want huge pages ask for them)"),
        );
    }
}

fn threads(ctx: &Context, host: Option<&HostReport>, c: &mut Checkup) {
    let Some(h) = host else { return };
    let cpus = h.cpus.usable;
    if cpus < MANY_CORES {
        return;
    }
    let Some(env) = &ctx.environment else {
        return c.unknown(
            "threads.unset",
            "the batch's environment is unknown (no proc/self/environ in the tree)",
        );
    };
    let set: Vec<&str> = THREAD_VARS
        .iter()
        .copied()
        .filter(|v| env.iter().any(|(k, _)| k == v))
        .collect();
    if !set.is_empty() {
        return;
    }
    c.found(
        "threads.unset",
        Severity::Warn,
        format!(
            "no BLAS/OpenMP thread variable is set on a {cpus}-CPU host: each of N parallel tasks starts {cpus} threads (N × {cpus} in all), each with its own buffers"
        ),
        vec![
            ev("usable CPUs", cpus, "/proc/self/status"),
            ev("OMP_NUM_THREADS etc.", "unset", "environment"),
        ],
        "ramguard run sets them to 1 per task (`--threads N` to change); elsewhere `export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1` before starting the pool",
    );
}

/// The environment in a captured tree's `proc/self/environ`, when present.
pub fn tree_environ(root: &Root) -> Option<Vec<(String, String)>> {
    let bytes = std::fs::read(root.path("/proc/self/environ")).ok()?;
    Some(parse_environ(&bytes))
}

/// Parses NUL-separated `KEY=value` pairs.
pub fn parse_environ(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let s = String::from_utf8_lossy(kv);
            let (k, v) = s.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_in_bytes() {
        let t = "CommitLimit:    12341828 kB\nCommitted_AS:      53256 kB\n";
        assert_eq!(
            meminfo_field(t, "CommitLimit"),
            Some(Bytes::from_kib(12341828))
        );
        assert_eq!(
            meminfo_field(t, "Committed_AS"),
            Some(Bytes::from_kib(53256))
        );
        assert_eq!(meminfo_field(t, "Commit"), None);
    }

    #[test]
    fn auxv_gives_the_page_size() {
        let mut v = Vec::new();
        for (k, val) in [(33u64, 7u64), (6, 16384), (0, 0)] {
            v.extend_from_slice(&k.to_ne_bytes());
            v.extend_from_slice(&val.to_ne_bytes());
        }
        assert_eq!(auxv_page_size(&v), Some(16384));
        assert_eq!(auxv_page_size(&v[..16]), None);
    }

    #[test]
    fn environ_pairs() {
        let e = parse_environ(b"OMP_NUM_THREADS=1\0PATH=/bin\0junk\0");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0], ("OMP_NUM_THREADS".into(), "1".into()));
    }
}
