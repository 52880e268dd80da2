//! Checks for `ramguard doctor`: what on this host will hurt a memory-hungry batch, each as a
//! [`Finding`] with evidence (a number and the file it came from) and a fix a person can apply.
//!
//! Theory of operation. [`diagnose`] reads every fact through a [`Root`], so `--root DIR`
//! points all of it at a captured tree. A check never fails the run: a file that is missing
//! or unreadable only means that check "could not tell", which is reported beside the
//! findings. The checks live in one file per topic ([`memory`]: limit, swap, overcommit,
//! cgroup controller, PSI, THP, thread variables; [`shm`]: `/dev/shm` size and leaked
//! segments; [`oom`]: OOM kills since boot and in the kernel log; [`daemons`]: watchdog,
//! earlyoom, nohang, systemd-oomd). Text parsing is done by small pure functions with unit
//! tests beside them; this module owns the types, the ordering and nothing else. Doctor
//! decides nothing for the supervisor and changes nothing on the host.

pub mod daemons;
pub mod memory;
pub mod oom;
pub mod render;
pub mod shm;

use std::time::SystemTime;

use serde::Serialize;

use crate::probe::{HostReport, Root};

/// Version of the JSON shape `ramguard doctor --json` prints.
pub const DOCTOR_SCHEMA: u32 = 1;

/// How much a finding matters to a batch run on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing will break because of it.
    Info,
    /// Will cost time or results under memory pressure.
    Warn,
    /// Will kill jobs or the machine.
    Critical,
}

impl Severity {
    /// The lowercase name used in both outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }
}

/// One fact behind a finding: what, how much, and the file it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub fact: String,
    pub value: String,
    pub source: String,
}

/// One thing doctor found, with a stable dotted id such as `swap.none`.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: Vec<Evidence>,
    pub fix: String,
}

/// A check that lacked the facts to decide, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouldNotTell {
    pub check: &'static str,
    pub why: String,
}

/// Everything doctor found, most severe first; this is also the `--json` shape.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub schema: u32,
    /// The directory read as `/`.
    pub root: String,
    /// The effective memory limit and headroom, each with its source (as `ramguard probe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<ramguard_core::limits::Effective>,
    pub findings: Vec<Finding>,
    pub could_not_tell: Vec<CouldNotTell>,
    /// The probe's summary, for the header line; absent when `/proc/meminfo` was unreadable.
    #[serde(skip)]
    pub host: Option<HostReport>,
}

/// Facts about the doctor process itself that a captured tree cannot supply.
#[derive(Debug, Clone)]
pub struct Context {
    /// Wall time now, for the age of `/dev/shm` files.
    pub now: SystemTime,
    /// The page size of the probed kernel, when known (`None` under `--root` unless the tree
    /// says).
    pub page_size: Option<u64>,
    /// The environment the batch would inherit, when known.
    pub environment: Option<Vec<(String, String)>>,
    /// Effective uid of the doctor process on the live host (`None` under `--root`).
    pub euid: Option<u32>,
}

impl Context {
    /// The live host: real clock, page size, environment and uid.
    pub fn live() -> Context {
        Context {
            now: SystemTime::now(),
            page_size: Some(rustix::param::page_size() as u64),
            environment: Some(
                std::env::vars_os()
                    .map(|(k, v)| {
                        (
                            k.to_string_lossy().into_owned(),
                            v.to_string_lossy().into_owned(),
                        )
                    })
                    .collect(),
            ),
            euid: Some(rustix::process::geteuid().as_raw()),
        }
    }

    /// A captured tree: page size and environment only from what the tree holds.
    pub fn for_tree(root: &Root) -> Context {
        Context {
            now: SystemTime::now(),
            page_size: memory::tree_page_size(root),
            environment: memory::tree_environ(root),
            euid: None,
        }
    }
}

/// Collects findings and could-not-tells while the checks run.
#[derive(Debug, Default)]
pub struct Checkup {
    findings: Vec<Finding>,
    unknown: Vec<CouldNotTell>,
}

impl Checkup {
    /// Records a finding.
    pub fn found(
        &mut self,
        id: &'static str,
        severity: Severity,
        title: impl Into<String>,
        evidence: Vec<Evidence>,
        fix: impl Into<String>,
    ) {
        self.findings.push(Finding {
            id,
            severity,
            title: title.into(),
            evidence,
            fix: fix.into(),
        });
    }

    /// Records that a check could not decide.
    pub fn unknown(&mut self, check: &'static str, why: impl Into<String>) {
        self.unknown.push(CouldNotTell {
            check,
            why: why.into(),
        });
    }
}

/// Builds one evidence line.
pub fn ev(fact: impl Into<String>, value: impl ToString, source: impl Into<String>) -> Evidence {
    Evidence {
        fact: fact.into(),
        value: value.to_string(),
        source: source.into(),
    }
}

/// Reads a host file, or says in words why it could not be read.
pub fn read(root: &Root, path: &str) -> Result<String, String> {
    match std::fs::read_to_string(root.path(path)) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("{path} is missing")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(format!("{path} is not readable by this user"))
        }
        Err(e) => Err(format!("cannot read {path}: {e}")),
    }
}

/// Runs every check against `root` and returns the findings, most severe first.
pub fn diagnose(root: &Root, ctx: &Context) -> Diagnosis {
    let mut c = Checkup::default();
    let host = match crate::probe::report(root) {
        Ok(h) => Some(h),
        Err(e) => {
            c.unknown(
                "limit",
                format!("the probe could not read the host summary: {e:#}"),
            );
            None
        }
    };
    memory::check(root, ctx, host.as_ref(), &mut c);
    shm::check(root, ctx, host.as_ref(), &mut c);
    oom::check(root, ctx, &mut c);
    daemons::check(root, ctx, &mut c);
    // Stable: within one severity, the order the checks ran in (limit before swap ...).
    c.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Diagnosis {
        schema: DOCTOR_SCHEMA,
        root: root.base().display().to_string(),
        memory: host.as_ref().map(|h| h.memory.effective.clone()),
        findings: c.findings,
        could_not_tell: c.unknown,
        host,
    }
}

/// Formats an age with the one duration formatter: `40s`, `7m05s`, `5h12m`, `3d04h`.
pub fn age_text(secs: u64) -> String {
    ramguard_core::units::format_duration(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_compact() {
        assert_eq!(age_text(40), "40s");
        assert_eq!(age_text(7 * 60 + 5), "7m05s");
        assert_eq!(age_text(5 * 3600 + 12 * 60), "5h12m");
        assert_eq!(age_text(3 * 86400 + 4 * 3600), "3d04h");
    }

    #[test]
    fn severities_order_critical_first_when_reversed() {
        assert!(Severity::Critical > Severity::Warn && Severity::Warn > Severity::Info);
    }
}
