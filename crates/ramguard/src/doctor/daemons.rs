//! Daemons that kill processes or reboot the machine when memory runs low: the `watchdog`
//! daemon with `min-memory` (seed 001's Raspberry Pi rebooted under load), earlyoom, nohang
//! and systemd-oomd. For each: whether it runs (`/proc/*/comm`), whether it is installed
//! (its config or unit file), its thresholds in bytes, and when `dpkg` installed or upgraded
//! it (`/var/log/dpkg.log`).
//!
//! watchdog.conf(5): `min-memory` is a count of *pages*, compared with MemFree + Buffers +
//! Cached. 51200 pages is 200 MiB with 4 KiB pages and 800 MiB with the 16 KiB pages of a
//! Raspberry Pi 5 kernel; the page size of a captured tree is stated only if the tree says.

use std::collections::BTreeMap;

use ramguard_core::Bytes;

use super::{ev, read, Checkup, Context, Evidence, Severity};
pub use crate::probe::daemons::{conf_value, earlyoom_thresholds, running};
use crate::probe::Root;

/// Page sizes to state when a captured tree does not say which one its kernel uses.
const CANDIDATE_PAGES: &[u64] = &[4096, 16384];

/// The last `install`/`upgrade` line in dpkg.log for a package: (date time, action, version).
pub fn dpkg_last(text: &str, package: &str) -> Option<(String, String, String)> {
    text.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 6 || !(f[2] == "install" || f[2] == "upgrade") {
            return None;
        }
        let name = f[3].split(':').next()?;
        (name == package).then(|| {
            (
                format!("{} {}", f[0], f[1]),
                f[2].to_string(),
                f[5].to_string(),
            )
        })
    })
}

/// Evidence lines about whether a daemon runs and when dpkg installed it.
/// Running is `Some(true)`/`Some(false)`, or `None` when processes could not be seen.
fn presence(
    procs: Option<&BTreeMap<String, Vec<u32>>>,
    comm: &str,
    dpkg: Option<&str>,
    package: &str,
) -> (Option<bool>, Vec<Evidence>) {
    let mut e = Vec::new();
    let pids = procs.map(|p| p.get(comm));
    match pids {
        None => e.push(ev(
            "running",
            "cannot tell (no process directories)",
            "/proc",
        )),
        Some(Some(p)) => e.push(ev(
            "running",
            format!(
                "yes, pid {}",
                p.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
            ),
            format!("/proc/{}/comm", p[0]),
        )),
        Some(None) => e.push(ev(
            "running",
            format!("no process named {comm}"),
            "/proc/*/comm",
        )),
    }
    if let Some((when, action, version)) = dpkg.and_then(|t| dpkg_last(t, package)) {
        e.push(ev(
            format!("dpkg {action}"),
            format!("{package} {version} on {when}"),
            "/var/log/dpkg.log",
        ));
    }
    (pids.map(|p| p.is_some()), e)
}

/// Runs the daemon checks.
pub fn check(root: &Root, ctx: &Context, c: &mut Checkup) {
    let procs = running(root);
    let procs = procs.as_ref();
    let dpkg = read(root, "/var/log/dpkg.log").ok();
    let dpkg = dpkg.as_deref();
    watchdog(root, ctx, procs, dpkg, c);
    earlyoom(root, procs, dpkg, c);
    nohang(root, procs, dpkg, c);
    oomd(root, procs, dpkg, c);
}

fn watchdog(
    root: &Root,
    ctx: &Context,
    procs: Option<&BTreeMap<String, Vec<u32>>>,
    dpkg: Option<&str>,
    c: &mut Checkup,
) {
    let path = "/etc/watchdog.conf";
    let Ok(conf) = read(root, path) else { return };
    let Some(pages) = conf_value(&conf, "min-memory").and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    if pages == 0 {
        return;
    }
    let mut evidence = vec![ev("min-memory", format!("{pages} pages"), path)];
    let page_sizes: Vec<u64> = match ctx.page_size {
        Some(p) => {
            evidence.push(ev(
                "page size",
                Bytes(p),
                if root.is_host() {
                    "getpagesize()"
                } else {
                    "/proc/self (tree)"
                },
            ));
            vec![p]
        }
        None => {
            evidence.push(ev(
                "page size",
                "unknown (the tree does not say): 4 KiB on most kernels, 16 KiB on a Raspberry Pi 5",
                "-",
            ));
            CANDIDATE_PAGES.to_vec()
        }
    };
    let thresholds: Vec<(u64, Bytes)> = page_sizes
        .iter()
        .map(|p| (*p, Bytes(pages.saturating_mul(*p))))
        .collect();
    let threshold_text = thresholds
        .iter()
        .map(|(p, t)| format!("{t} with {} pages", Bytes(*p)))
        .collect::<Vec<_>>()
        .join(", or ");
    let meminfo = read(root, "/proc/meminfo")
        .ok()
        .and_then(|t| ramguard_core::parse::meminfo(&t).ok());
    let mut margin = String::new();
    if let Some(m) = meminfo {
        let now = m.free + m.buffers + m.cached;
        evidence.push(ev(
            "MemFree + Buffers + Cached now",
            format!("{now} ({} + {} + {})", m.free, m.buffers, m.cached),
            "/proc/meminfo",
        ));
        let distances: Vec<String> = thresholds
            .iter()
            .map(|(p, t)| {
                if now < *t {
                    format!(
                        "already {} below it with {} pages",
                        t.saturating_sub(now),
                        Bytes(*p)
                    )
                } else {
                    format!(
                        "{} above it with {} pages",
                        now.saturating_sub(*t),
                        Bytes(*p)
                    )
                }
            })
            .collect();
        margin = format!("; now {now}, {}", distances.join(", "));
    }
    if let Some(v) = conf_value(&conf, "allocatable-memory").filter(|v| *v != "0") {
        evidence.push(ev(
            "allocatable-memory",
            format!("{v} pages (also a reboot trigger)"),
            path,
        ));
    }
    if let Some(v) = conf_value(&conf, "max-load-1").filter(|v| *v != "0") {
        evidence.push(ev(
            "max-load-1",
            format!("{v} (also reboots when the 1-minute load average exceeds it)"),
            path,
        ));
    }
    let (running, more) = presence(procs, "watchdog", dpkg, "watchdog");
    evidence.extend(more);
    let highest = thresholds.iter().map(|t| t.1).max().unwrap_or_default();
    c.found(
        "daemon.watchdog_min_memory",
        if running == Some(false) {
            Severity::Warn
        } else {
            Severity::Critical
        },
        format!(
            "the watchdog daemon {} the machine when MemFree + Buffers + Cached falls below {threshold_text}{margin}",
            if running == Some(false) { "(when started) reboots" } else { "reboots" }
        ),
        evidence,
        format!(
            "`min-memory` counts pages, not MB: set `min-memory = 0` in {path} to turn the check off (or the page count you mean, e.g. {} for 50 MiB with 4 KiB pages), then `sudo systemctl restart watchdog`; ramguard's brake keeps memory above such a line without rebooting (`ramguard run --mem` at least {highest} below RAM)",
            Bytes::from_mib(50).get() / 4096
        ),
    );
}

fn earlyoom(
    root: &Root,
    procs: Option<&BTreeMap<String, Vec<u32>>>,
    dpkg: Option<&str>,
    c: &mut Checkup,
) {
    let path = "/etc/default/earlyoom";
    let conf = read(root, path).ok();
    let installed_by_dpkg = dpkg.and_then(|t| dpkg_last(t, "earlyoom")).is_some();
    if conf.is_none() && !procs.is_some_and(|p| p.contains_key("earlyoom")) && !installed_by_dpkg {
        return;
    }
    let (running, mut evidence) = presence(procs, "earlyoom", dpkg, "earlyoom");
    let args = conf
        .as_deref()
        .and_then(|t| conf_value(t, "EARLYOOM_ARGS"))
        .map(|v| v.trim_matches('"').trim_matches('\'').to_string());
    let mut limits = Vec::new();
    if let Some(a) = &args {
        evidence.push(ev("EARLYOOM_ARGS", a, path));
        for (what, v) in earlyoom_thresholds(a) {
            evidence.push(ev(&what, &v, path));
            limits.push(format!("{} < {v}", what.trim_end_matches(" below")));
        }
    }
    let when = if limits.is_empty() {
        "available memory and free swap fall below 10% (its defaults)".to_string()
    } else {
        limits.join(" and ")
    };
    c.found(
        "daemon.earlyoom",
        if running == Some(false) { Severity::Info } else { Severity::Warn },
        format!(
            "earlyoom {} the largest process when {when}: that is usually your biggest task",
            if running == Some(false) { "is installed; when running it kills" } else { "kills" }
        ),
        evidence,
        "keep ramguard's brake ahead of it (`ramguard run --mem` leaving more free than earlyoom's threshold), or protect the batch with `--avoid '(^|/)(python3?|ramguard)$'` in EARLYOOM_ARGS",
    );
}

fn nohang(
    root: &Root,
    procs: Option<&BTreeMap<String, Vec<u32>>>,
    dpkg: Option<&str>,
    c: &mut Checkup,
) {
    let path = "/etc/nohang/nohang.conf";
    let conf = read(root, path).ok();
    if conf.is_none() && !procs.is_some_and(|p| p.contains_key("nohang")) {
        return;
    }
    let (running, mut evidence) = presence(procs, "nohang", dpkg, "nohang");
    if let Some(t) = &conf {
        for l in t.lines() {
            let l = l.split('#').next().unwrap_or("").trim();
            if let Some((k, v)) = l.split_once('=') {
                let k = k.trim();
                if k.contains("min_mem") || k.contains("mem_min") || k.contains("min_swap") {
                    evidence.push(ev(k, v.trim(), path));
                }
            }
        }
    }
    c.found(
        "daemon.nohang",
        if running == Some(false) { Severity::Info } else { Severity::Warn },
        format!(
            "nohang {} processes when available memory falls below its thresholds",
            if running == Some(false) { "is installed; when running it terminates" } else { "terminates" }
        ),
        evidence,
        "keep ramguard's brake ahead of it (`ramguard run --mem` leaving more free than nohang's soft threshold), or exempt the batch with a `@BADNESS_ADJ_RE_NAME` rule in nohang.conf",
    );
}

fn oomd(
    root: &Root,
    procs: Option<&BTreeMap<String, Vec<u32>>>,
    dpkg: Option<&str>,
    c: &mut Checkup,
) {
    let conf_path = "/etc/systemd/oomd.conf";
    let conf = read(root, conf_path).ok();
    let unit = [
        "/usr/lib/systemd/system/systemd-oomd.service",
        "/lib/systemd/system/systemd-oomd.service",
        "/etc/systemd/system/systemd-oomd.service",
    ]
    .into_iter()
    .find(|p| root.path(p).exists());
    if !procs.is_some_and(|p| p.contains_key("systemd-oomd")) && unit.is_none() {
        return;
    }
    let (running, mut evidence) = presence(procs, "systemd-oomd", dpkg, "systemd-oomd");
    if let Some(u) = unit {
        evidence.push(ev("unit", "installed", u));
    }
    let mut limits = Vec::new();
    if let Some(t) = &conf {
        for key in [
            "SwapUsedLimit",
            "DefaultMemoryPressureLimit",
            "DefaultMemoryPressureDurationSec",
        ] {
            if let Some(v) = conf_value(t, key).filter(|v| !v.is_empty()) {
                evidence.push(ev(key, v, conf_path));
                limits.push(format!("{key}={v}"));
            }
        }
    }
    let when = if limits.is_empty() {
        "swap is 90% used or a unit's memory pressure stays above 60% for 30 s (its defaults)"
            .to_string()
    } else {
        limits.join(", ")
    };
    c.found(
        "daemon.systemd_oomd",
        if running == Some(false) { Severity::Info } else { Severity::Warn },
        format!(
            "systemd-oomd {} a whole cgroup (your terminal's scope, with every task in it) when {when}",
            if running == Some(false) { "is installed; when running it kills" } else { "kills" }
        ),
        evidence,
        "run the batch in its own scope (`systemd-run --user --scope -p ManagedOOMMemoryPressure=auto ramguard run ...`) so oomd does not take your session with it, and let ramguard's brake act first",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_conf_values_skip_comments() {
        let t = "#min-memory = 1\nmin-memory\t\t= 51200\nwatchdog-device\t= /dev/watchdog # the device\n";
        assert_eq!(conf_value(t, "min-memory"), Some("51200"));
        assert_eq!(conf_value(t, "watchdog-device"), Some("/dev/watchdog"));
        assert_eq!(conf_value(t, "max-load-1"), None);
    }

    #[test]
    fn dpkg_log_gives_the_last_install() {
        let t = "2024-05-01 10:00:00 status installed watchdog:arm64 5.16-1\n\
                 2024-05-01 10:00:00 install watchdog:arm64 <none> 5.16-1\n\
                 2024-06-02 09:00:00 upgrade watchdog:arm64 5.16-1 5.16-2\n\
                 2024-06-02 09:00:00 install earlyoom:arm64 <none> 1.7-1\n";
        assert_eq!(
            dpkg_last(t, "watchdog"),
            Some((
                "2024-06-02 09:00:00".into(),
                "upgrade".into(),
                "5.16-2".into()
            ))
        );
        assert_eq!(dpkg_last(t, "nohang"), None);
    }

    #[test]
    fn earlyoom_args_in_bytes_and_percent() {
        let t = earlyoom_thresholds("-m 5,2 -s 10 -M 204800 -r 60");
        assert_eq!(
            t,
            vec![
                ("available memory below".into(), "5%".into()),
                ("free swap below".into(), "10%".into()),
                ("available memory below".into(), "200 MiB".into()),
            ]
        );
        assert_eq!(earlyoom_thresholds("-m5")[0].1, "5%");
    }
}
