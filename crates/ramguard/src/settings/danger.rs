//! `run`'s reserve, brake and hard-kill levels, placed above every killer the host has
//! (`ramguard_core::policy::levels`), and how `--dry-run` says so.
//!
//! The killers' lines (`probe::killers`) are levels of the *host's* available memory. They
//! bind when the effective limit is the host's memory; under a smaller cgroup limit
//! (container, Slurm step) the cgroup's headroom binds first and they are shown, not used.

use ramguard_core::policy::levels::{levels, Levels};
use ramguard_core::Bytes;
use serde::Serialize;

use crate::probe::killers::{killers, Killer};
use crate::probe::{HostReport, Root};

/// The resolved levels and where the danger line came from.
#[derive(Debug, Clone, Serialize)]
pub struct Danger {
    /// The danger line the levels sit above.
    pub line: Bytes,
    /// What set it: a killer's words, or the floor for small machines.
    pub from: String,
    /// Every killer found, highest first (also those that do not bind).
    pub killers: Vec<Killer>,
    #[serde(skip)]
    pub levels: Levels,
}

impl Danger {
    /// Resolves the levels for budget base `base` and a reserve the user may have given.
    pub fn resolve(report: &HostReport, base: Bytes, reserve: Option<Bytes>) -> Danger {
        Danger::resolve_at(&Root::host(), report, base, reserve)
    }

    /// The same, reading the killers' configuration under `root` (a captured tree in tests).
    pub fn resolve_at(
        root: &Root,
        report: &HostReport,
        base: Bytes,
        reserve: Option<Bytes>,
    ) -> Danger {
        let found = killers(root, report.memory.total);
        let host_binds = report.memory.effective.limit_source.file == "/proc/meminfo";
        let binding = found.first().filter(|_| host_binds);
        let levels = levels(base, reserve, binding.map(|k| k.line));
        let from = match binding {
            Some(k) if k.line >= levels.danger => format!("{} ({})", k.what, k.source),
            _ if !found.is_empty() && !host_binds => {
                "a floor for small machines (the host's killers act on the host's memory; \
                 the cgroup limit binds first)"
                    .to_string()
            }
            _ => {
                "a floor for small machines (no watchdog min-memory or earlyoom found)".to_string()
            }
        };
        Danger {
            line: levels.danger,
            from,
            killers: found,
            levels,
        }
    }

    /// The `--dry-run` lines.
    pub fn describe(&self) -> Vec<String> {
        let l = &self.levels;
        let mut out = vec![format!(
            "danger     below {} available: {}",
            self.line, self.from
        )];
        out.push(format!(
            "levels     pause at the reserve {}, brake below {}, kill at once below {}: all above the danger line",
            l.reserve, l.brake, l.hard
        ));
        for k in self.killers.iter().skip(1) {
            out.push(format!(
                "           also: {} at {} ({})",
                k.what, k.line, k.source
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ramguard_core::policy::sim::{Host, Script, Sim, SimTask};
    use ramguard_core::policy::Config;

    use super::*;
    use crate::probe;

    const MIB: u64 = 1 << 20;

    fn fixture(name: &str) -> Root {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hosts")
            .join(name);
        Root::at(dir).unwrap()
    }

    #[test]
    fn brake_level_above_a_watchdogs_line_read_from_a_fixture_host() {
        // A Raspberry Pi whose watchdog reboots below 51200 pages (800 MiB with 16 KiB
        // pages; the tree does not say which size, so the larger is assumed).
        let root = fixture("pi4-4gb-zram-no-psi");
        let report = probe::report(&root).unwrap();
        let limit = report.memory.effective.limit;
        let d = Danger::resolve_at(&root, &report, limit, None);
        let line = Bytes(51200 * 16384);
        assert_eq!(d.line, line);
        assert!(
            d.from.starts_with("watchdog min-memory 51200 pages"),
            "{}",
            d.from
        );
        let l = d.levels;
        assert!(
            line < l.hard && l.hard < l.brake && l.brake < l.reserve,
            "{l:?}"
        );
        assert!(d.describe()[0].contains("watchdog"), "{:?}", d.describe());

        // Replay on this machine in simulated time: four 600 MiB tasks hold their memory
        // while another program takes 64 MiB every quarter second from 3 s on, up to
        // 1.5 GiB. The brake stops tasks before the watchdog's line is reached.
        let cfg = Config {
            budget: limit.saturating_sub(l.reserve),
            reserve: l.reserve,
            brake_level: l.brake,
            hard_level: l.hard,
            max_jobs: 4,
            estimate: Some(Bytes(600 * MIB)),
            task_cap: None,
            timeout: None,
            grace: Duration::from_secs(5),
            retries: 0,
            psi_full_pause: 10.0,
            max_brakes: 3,
            pause: true,
        };
        let mut host = Host::new(report.memory.total);
        host.external = (0..=24)
            .map(|i| {
                let t = Duration::from_millis(3000 + 250 * i);
                (t, Bytes(64 * MIB * i.min(24)))
            })
            .chain([(Duration::from_secs(40), Bytes::ZERO)])
            .collect();
        let tasks = (0..4)
            .map(|_| {
                let s = Script::ramp(
                    Bytes(600 * MIB),
                    Duration::from_secs(1),
                    Duration::from_secs(20),
                    0,
                );
                SimTask::new(s)
            })
            .collect();
        let mut sim = Sim::new(cfg, host, tasks);
        let r = sim.drive();
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!(r.kernel_oom_kills, 0);
        assert!(r.brakes >= 1, "{r:?}");
        assert!(
            r.min_available > line,
            "{} under the line {line}",
            r.min_available
        );
        assert!(r.finals.iter().all(|&n| n == 1), "{r:?}");
    }
}
