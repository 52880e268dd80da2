//! The lines at which something on the host kills processes or reboots the machine when
//! memory runs low: what `run` must keep its brake above (`ramguard_core::policy::levels`).
//!
//! Read with the doctor's own parsers (`doctor::daemons`), so that `doctor` and `run` agree:
//! - the `watchdog` daemon's `min-memory` (`/etc/watchdog.conf`), a count of pages: times
//!   the page size (this kernel's; for a captured tree, its own if it says, else the
//!   larger of 4 and 16 KiB, to be safe). Counted whether or not the daemon runs now: it
//!   starts at boot.
//! - earlyoom, when it runs or is installed: `-m PERCENT` of MemTotal (10% by default) and
//!   `-M SIZE` from `EARLYOOM_ARGS` in `/etc/default/earlyoom`, whichever is higher.
//! - systemd-oomd acts on memory pressure and swap, not on a level of available memory: it
//!   has no line here; admission already pauses on PSI.
//!
//! Only facts: the levels are decided by the policy's arithmetic.

use ramguard_core::units::parse_size;
use ramguard_core::Bytes;

use super::Root;
use crate::probe::daemons::{conf_value, earlyoom_thresholds, running};
use crate::probe::pages::tree_page_size;

/// Page sizes a captured tree may use when it does not say which.
const CANDIDATE_PAGES: [u64; 2] = [4096, 16384];

/// One daemon's line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Killer {
    /// What acts, in words: "watchdog min-memory 51200 pages of 16 KiB (reboots)".
    pub what: String,
    /// It acts when available memory falls below this.
    pub line: Bytes,
    /// The file it was read from.
    pub source: String,
}

/// Every killer line found on the host (or captured tree), highest first.
pub fn killers(root: &Root, mem_total: Bytes) -> Vec<Killer> {
    let procs = running(root);
    let runs = |comm: &str| procs.as_ref().map(|p| p.contains_key(comm));
    let mut out = Vec::new();
    if let Some(k) = watchdog(root, runs("watchdog")) {
        out.push(k);
    }
    if let Some(k) = earlyoom(root, mem_total, runs("earlyoom")) {
        out.push(k);
    }
    out.sort_by_key(|k| std::cmp::Reverse(k.line));
    out
}

fn watchdog(root: &Root, running: Option<bool>) -> Option<Killer> {
    let path = "/etc/watchdog.conf";
    let conf = root.read_lenient(path)?;
    let pages: u64 = conf_value(&conf, "min-memory")?.parse().ok()?;
    if pages == 0 {
        return None;
    }
    let (page, assumed) = match root.is_host() {
        true => (rustix::param::page_size() as u64, false),
        false => match tree_page_size(root) {
            Some(p) => (p, false),
            None => (CANDIDATE_PAGES[1], true),
        },
    };
    let state = match running {
        Some(false) => ", not running now",
        _ => "",
    };
    let assumed = if assumed {
        " (page size unknown: the larger assumed)"
    } else {
        ""
    };
    Some(Killer {
        what: format!(
            "watchdog min-memory {pages} pages of {}{assumed} (reboots{state})",
            Bytes(page)
        ),
        line: Bytes(pages.saturating_mul(page)),
        source: path.to_string(),
    })
}

fn earlyoom(root: &Root, mem_total: Bytes, running: Option<bool>) -> Option<Killer> {
    let path = "/etc/default/earlyoom";
    let conf = root.read_lenient(path);
    if conf.is_none() && running != Some(true) {
        return None;
    }
    let args = conf
        .as_deref()
        .and_then(|t| conf_value(t, "EARLYOOM_ARGS"))
        .map(|v| v.trim_matches('"').trim_matches('\'').to_string())
        .unwrap_or_default();
    let mut line: Option<Bytes> = None;
    let mut said = Vec::new();
    for (what, value) in earlyoom_thresholds(&args) {
        if what != "available memory below" {
            continue; // swap thresholds: not a level of available memory
        }
        let bytes = match value.strip_suffix('%') {
            Some(pct) => pct.parse::<f64>().ok().map(|p| mem_total.scale(p / 100.0)),
            None => parse_size(&value).ok(),
        };
        if let Some(b) = bytes {
            said.push(value.clone());
            line = Some(line.map_or(b, |l| l.max(b)));
        }
    }
    let (line, how) = match line {
        Some(l) => (l, said.join(", ")),
        None => (mem_total.scale(0.10), "10% (its default)".to_string()),
    };
    Some(Killer {
        what: format!("earlyoom kills the largest process below {how} available"),
        line,
        source: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Root {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hosts")
            .join(name);
        Root::at(dir).unwrap()
    }

    #[test]
    fn a_pi_watchdog_line_is_read_in_pages_of_the_larger_size_when_unknown() {
        let k = killers(&fixture("pi4-4gb-zram-no-psi"), Bytes(3882924 * 1024));
        assert_eq!(k.len(), 1, "{k:?}");
        assert_eq!(k[0].line, Bytes(51200 * 16384));
        assert!(k[0].what.contains("51200 pages"), "{}", k[0].what);
        assert_eq!(k[0].source, "/etc/watchdog.conf");
    }

    #[test]
    fn earlyoom_percent_is_of_mem_total() {
        let total = Bytes(8 << 30);
        let k = killers(&fixture("doctor-strict-overcommit"), total);
        let e = k.iter().find(|k| k.what.starts_with("earlyoom")).unwrap();
        assert_eq!(e.line, total.scale(0.05));
    }
}
