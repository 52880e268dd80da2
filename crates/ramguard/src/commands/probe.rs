//! `ramguard probe`: the host summary as a person reads it, or as JSON.
//!
//! The figures come from [`crate::probe::report`]; this file only renders them. Every line
//! names the file its number came from, because "why does ramguard think I have 3 GiB?" is
//! answered by a path.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ramguard_core::limits::SourceKind;
use ramguard_core::parse;
use ramguard_core::units::SizeSpec;
use ramguard_core::Bytes;
use serde::Serialize;

use crate::cli::ProbeArgs;
use crate::probe::{self, HostReport, MemoryWatch, Root};
use crate::Outcome;

/// One `--resolve` answer in the JSON output.
#[derive(Debug, Serialize)]
pub struct Resolved {
    pub input: String,
    pub bytes: Bytes,
}

#[derive(Debug, Serialize)]
struct JsonOut<'a> {
    #[serde(flatten)]
    report: &'a HostReport,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resolved: Vec<Resolved>,
}

pub fn run(args: &ProbeArgs) -> Result<Outcome> {
    let root = match &args.root {
        Some(dir) => Root::at(dir)?,
        None => Root::host(),
    };
    let report = probe::report(&root)?;
    let resolved: Vec<Resolved> = args
        .resolve
        .iter()
        .map(|spec| Resolved {
            input: spec_text(*spec),
            bytes: spec.resolve(report.memory.effective.limit),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json && args.watch.is_none() {
        let json = JsonOut {
            report: &report,
            resolved,
        };
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(Outcome::Success);
    }
    if args.watch.is_none() {
        out.write_all(render(&report, &resolved).as_bytes())?;
        return Ok(Outcome::Success);
    }
    drop(out);
    watch(root, &report, args)
}

fn spec_text(spec: SizeSpec) -> String {
    match spec {
        SizeSpec::Absolute(b) => b.to_string(),
        SizeSpec::Percent(p) => format!("{p}%"),
    }
}

/// Renders the human summary: one line per fact, the source after the figure.
pub fn render(r: &HostReport, resolved: &[Resolved]) -> String {
    let mut s = String::new();
    let m = &r.memory;
    let e = &m.effective;
    let _ = writeln!(
        s,
        "memory limit  {:>10}  from {}",
        e.limit,
        source_text(&e.limit_source.kind, &e.limit_source.file, m.total, e.limit)
    );
    let _ = writeln!(
        s,
        "available     {:>10}  from {} ({:.0}% of the limit)",
        e.available,
        e.available_source.file,
        100.0 * e.available.get() as f64 / e.limit.get().max(1) as f64
    );
    match &m.cgroup {
        Some(c) => {
            let limited: Vec<String> = c
                .levels
                .iter()
                .filter_map(|l| {
                    l.level.limit.map(|lim| {
                        format!(
                            "{} at {} (headroom {})",
                            lim,
                            limits_file(&l.level.dir, l.level.limit_file.as_deref()),
                            l.headroom
                                .map(|h| h.to_string())
                                .unwrap_or_else(|| "?".into())
                        )
                    })
                })
                .collect();
            let version = match c.version {
                ramguard_core::limits::CgroupVersion::V1 => "v1",
                ramguard_core::limits::CgroupVersion::V2 => "v2",
            };
            let placed = if c.placed {
                ""
            } else {
                " (outside the visible mount; only the mount root was read)"
            };
            if c.memory_controller == Some(false) {
                let _ = writeln!(
                    s,
                    "cgroup        {version} {} — memory controller disabled: no limit can apply, and none is measured",
                    c.path
                );
            } else if limited.is_empty() {
                let _ = writeln!(
                    s,
                    "cgroup        memory {version} {} — no limit on any of {} level(s){placed}",
                    c.path,
                    c.levels.len()
                );
            } else {
                let _ = writeln!(s, "cgroup        memory {version} {}{placed}", c.path);
                for l in limited {
                    let _ = writeln!(s, "              limit {l}");
                }
            }
        }
        None => {
            let _ = writeln!(
                s,
                "cgroup        no memory cgroup found (controller not mounted or disabled)"
            );
        }
    }
    let sw = &r.swap;
    if sw.total == Bytes::ZERO {
        let _ = writeln!(s, "swap          none  (an OOM kill comes without warning)");
    } else {
        let kind = if sw.zram { "zram" } else { "disk" };
        let _ = writeln!(
            s,
            "swap          {} {kind}, {} free{}{}",
            sw.total,
            sw.free,
            sw.swappiness
                .map(|v| format!(", swappiness {v}"))
                .unwrap_or_default(),
            if sw.zswap == Some(true) {
                ", zswap on"
            } else {
                ""
            }
        );
    }
    match &r.shm {
        Some(shm) => {
            let _ = writeln!(
                s,
                "/dev/shm      {:>10}  tmpfs ({}), {} used in {} file(s); counts against memory",
                shm.size,
                if shm.size_source == "default" {
                    "default: half of RAM"
                } else {
                    "size= mount option"
                },
                shm.used,
                shm.files
            );
        }
        None => {
            let _ = writeln!(
                s,
                "/dev/shm      not a tmpfs mount (Python SharedMemory will fail)"
            );
        }
    }
    match &r.psi {
        Some(p) => {
            let _ = writeln!(
                s,
                "pressure      some {:.2}% full {:.2}% (avg10)  from {}",
                p.some_avg10, p.full_avg10, p.source.file
            );
        }
        None => {
            let _ = writeln!(s, "pressure      unavailable (no PSI: old kernel or psi=0)");
        }
    }
    let c = &r.cpus;
    let quota = match (&c.quota, &c.quota_source) {
        (Some(q), Some(src)) => format!("quota {q:.2} CPUs from {}", src.file),
        _ => "no CPU quota".to_string(),
    };
    let _ = writeln!(
        s,
        "cpus          {:>10}  (affinity {}, {quota})",
        c.usable, c.affinity
    );
    if let Some(k) = r.oom_kills {
        let _ = writeln!(s, "oom kills     {:>10}  since boot, from /proc/vmstat", k);
    }
    for res in resolved {
        let _ = writeln!(
            s,
            "resolve       {:>10}  = {} ({} bytes)",
            res.input,
            res.bytes,
            res.bytes.get()
        );
    }
    s
}

fn source_text(kind: &SourceKind, file: &str, total: Bytes, limit: Bytes) -> String {
    match kind {
        SourceKind::Meminfo => format!("{file} (MemTotal; no smaller cgroup limit)"),
        _ => format!(
            "{file} ({kind}; RAM is {total}, {:.0}% of it)",
            100.0 * limit.get() as f64 / total.get().max(1) as f64
        ),
    }
}

fn limits_file(dir: &str, file: Option<&str>) -> String {
    match file {
        Some(f) => ramguard_core::limits::join(dir, f),
        None => dir.to_string(),
    }
}

/// `--watch`: the fast path the supervisor uses, printed every interval.
fn watch(root: Root, report: &HostReport, args: &ProbeArgs) -> Result<Outcome> {
    let interval = args.watch.unwrap_or(Duration::from_secs(1));
    let mut memory = MemoryWatch::new(root.clone(), report);
    let psi_file = report.psi.as_ref().map(|p| p.source.file.clone());
    let start = Instant::now();
    let mut printed = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        let e = memory.read()?;
        let psi = psi_file
            .as_deref()
            .and_then(|f| root.read_lenient(f))
            .and_then(|t| parse::psi(&t).ok());
        if args.json {
            let line = serde_json::json!({
                "schema": probe::host::PROBE_SCHEMA,
                "t": start.elapsed().as_secs_f64(),
                "limit": e.limit,
                "available": e.available,
                "psi_some_avg10": psi.as_ref().map(|p| p.some_avg10),
                "psi_full_avg10": psi.as_ref().map(|p| p.full_avg10),
            });
            writeln!(out, "{line}")?;
        } else {
            let psi = psi
                .map(|p| format!("  psi some {:.2}% full {:.2}%", p.some_avg10, p.full_avg10))
                .unwrap_or_default();
            writeln!(
                out,
                "{:>8.1}s  available {:>10} of {:>10}{psi}",
                start.elapsed().as_secs_f64(),
                e.available,
                e.limit
            )?;
        }
        out.flush().context("cannot write to stdout")?;
        printed += 1;
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(Outcome::Success);
        }
        std::thread::sleep(interval);
    }
}
