//! What the host says about the daemons that kill processes when memory runs low: which
//! processes run (`/proc/*/comm`), a watchdog.conf value, earlyoom's thresholds. `run`
//! takes its danger line from them (`probe/killers.rs`) and `doctor` reports them
//! (`doctor/daemons.rs`).

use std::collections::BTreeMap;

use ramguard_core::Bytes;

use super::Root;

/// Processes by `comm` name: name → pids (user-space processes only); `None` when there
/// are no process directories to look at (a captured tree without them).
pub fn running(root: &Root) -> Option<BTreeMap<String, Vec<u32>>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let dir = std::fs::read_dir(root.path("/proc")).ok()?;
    let mut seen = 0;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        seen += 1;
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        // Kernel threads (the kernel's own `watchdogd`) have an empty cmdline.
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            if cmd.is_empty() {
                continue;
            }
        }
        out.entry(comm.trim().to_string()).or_default().push(pid);
    }
    for pids in out.values_mut() {
        pids.sort_unstable();
    }
    (seen > 0).then_some(out)
}

/// The value of `key = value` in a watchdog.conf-style file (comments with `#`).
pub fn conf_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().rev().find_map(|l| {
        let l = l.split('#').next()?.trim();
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Thresholds from earlyoom's argument string: `-m PERCENT[,KILL]`, `-s PERCENT[,KILL]`,
/// `-M SIZE_KiB[,KILL]`, `-S SIZE_KiB[,KILL]`.
pub fn earlyoom_thresholds(args: &str) -> Vec<(String, String)> {
    let words: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    let mut out = Vec::new();
    let mut it = words.iter().peekable();
    while let Some(w) = it.next() {
        let (flag, inline) = if w.len() > 2 && w.starts_with('-') && !w.starts_with("--") {
            (&w[..2], Some(w[2..].to_string()))
        } else {
            (w.as_str(), None)
        };
        let what = match flag {
            "-m" => "available memory below",
            "-s" => "free swap below",
            "-M" => "available memory below",
            "-S" => "free swap below",
            _ => continue,
        };
        let value = match inline.or_else(|| it.next().cloned()) {
            Some(v) => v,
            None => continue,
        };
        let value = if flag == "-m" || flag == "-s" {
            format!("{}%", value.split(',').next().unwrap_or(&value))
        } else {
            value
                .split(',')
                .next()
                .and_then(|k| k.parse::<u64>().ok())
                .map(|k| Bytes::from_kib(k).to_string())
                .unwrap_or(value)
        };
        out.push((what.to_string(), value));
    }
    out
}
