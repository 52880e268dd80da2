//! OOM history: the kernel's `oom_kill` counter since boot (`/proc/vmstat`), and the last
//! kills with process names from the kernel log.
//!
//! The log is read from `/dev/kmsg` (opened non-blocking on the live host, so reading stops
//! at the end of the ring buffer instead of waiting; a regular file in a captured tree), then
//! `/var/log/kern.log`, `/var/log/syslog`, `/var/log/messages`. With
//! `kernel.dmesg_restrict = 1` only root may read the ring buffer: doctor says so, because
//! "the job died" with no trace in `dmesg` is how seed 003 lost a day.

use std::io::Read;

use super::{ev, read, Checkup, Context, Severity};
use crate::probe::Root;

/// How many recent kills are listed as evidence.
const SHOWN: usize = 5;

/// One `Killed process` line from the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    /// When, as the log says it (syslog time, or seconds since boot for kmsg).
    pub when: String,
    pub pid: u32,
    pub name: String,
    /// `anon-rss:` as written (`1234567kB`), when present.
    pub anon_rss: Option<String>,
    /// True when a memory cgroup's limit, not the whole host, ran out.
    pub cgroup: bool,
    /// The file the line came from.
    pub source: String,
}

/// Parses the message part of a kernel log line, if it reports an OOM kill.
pub fn parse_kill(message: &str) -> Option<(u32, String, Option<String>, bool)> {
    let at = message.find("Killed process ")?;
    let head = &message[..at];
    if !head.contains("Out of memory") && !head.contains("out of memory") {
        return None;
    }
    let cgroup = head.contains("Memory cgroup");
    let rest = &message[at + "Killed process ".len()..];
    let (pid, rest) = rest.split_once(' ')?;
    let pid = pid.parse().ok()?;
    let rest = rest.strip_prefix('(')?;
    let close = rest.rfind(')')?;
    let name = rest[..close].to_string();
    let anon = rest[close..].split_once("anon-rss:").map(|(_, a)| {
        a.split(|ch: char| ch == ',' || ch.is_whitespace())
            .next()
            .unwrap_or("")
            .to_string()
    });
    Some((pid, name, anon, cgroup))
}

/// Kills in `/dev/kmsg` records (`prio,seq,usec,flags;message`).
pub fn kmsg_kills(records: &str, source: &str) -> Vec<Kill> {
    records
        .lines()
        .filter_map(|l| {
            let (meta, msg) = l.split_once(';')?;
            let usec: u64 = meta.split(',').nth(2)?.parse().ok()?;
            let (pid, name, anon_rss, cgroup) = parse_kill(msg)?;
            Some(Kill {
                when: format!("{:.0}s after boot", usec as f64 / 1e6),
                pid,
                name,
                anon_rss,
                cgroup,
                source: source.to_string(),
            })
        })
        .collect()
}

/// Kills in a syslog-style file (`Nov 23 12:34:56 host kernel: [123.4] Out of memory: ...`).
pub fn syslog_kills(text: &str, source: &str) -> Vec<Kill> {
    text.lines()
        .filter_map(|l| {
            let (pid, name, anon_rss, cgroup) = parse_kill(l)?;
            // The time is everything before the host name, which precedes `kernel:`.
            let when = l
                .find(" kernel:")
                .map(|i| &l[..i])
                .and_then(|pre| pre.rsplit_once(' ').map(|(t, _host)| t.trim().to_string()))
                .unwrap_or_default();
            Some(Kill {
                when,
                pid,
                name,
                anon_rss,
                cgroup,
                source: source.to_string(),
            })
        })
        .collect()
}

/// Reads every record `/dev/kmsg` holds now without blocking.
fn read_live_kmsg() -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")?;
    let mut out = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // EPIPE: records were overwritten while we read; the next read resumes.
            Err(e) if e.raw_os_error() == Some(32) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Runs the OOM checks.
pub fn check(root: &Root, ctx: &Context, c: &mut Checkup) {
    let count = match read(root, "/proc/vmstat") {
        Ok(t) => {
            let n = ramguard_core::parse::key_values(&t)
                .get("oom_kill")
                .copied();
            if n.is_none() {
                c.unknown(
                    "oom.history",
                    "/proc/vmstat has no oom_kill counter (kernel older than 4.13)",
                );
            }
            n
        }
        Err(why) => {
            c.unknown("oom.history", why);
            None
        }
    };
    let restrict = read(root, "/proc/sys/kernel/dmesg_restrict")
        .ok()
        .map(|t| t.trim() == "1");

    // The kernel log, first source that can be read wins.
    let mut kills = Vec::new();
    let mut log_read: Option<&str> = None;
    let mut kmsg_denied = false;
    let kmsg = if root.is_host() {
        read_live_kmsg()
    } else {
        std::fs::read_to_string(root.path("/dev/kmsg"))
    };
    match kmsg {
        Ok(t) => {
            kills = kmsg_kills(&t, "/dev/kmsg");
            log_read = Some("/dev/kmsg");
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => kmsg_denied = true,
        Err(_) => {}
    }
    let mut denied_files = Vec::new();
    for path in ["/var/log/kern.log", "/var/log/syslog", "/var/log/messages"] {
        match std::fs::read_to_string(root.path(path)) {
            Ok(t) => {
                let more = syslog_kills(&t, path);
                if log_read.is_none() || kills.is_empty() {
                    kills = more;
                    log_read = Some(path);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => denied_files.push(path),
            Err(_) => {}
        }
        if !kills.is_empty() {
            break;
        }
    }

    if count.unwrap_or(0) > 0 || !kills.is_empty() {
        let mut evidence = Vec::new();
        if let Some(n) = count {
            evidence.push(ev("oom_kill since boot", n, "/proc/vmstat"));
        }
        for k in kills.iter().rev().take(SHOWN) {
            let what = if k.cgroup {
                "killed (cgroup limit)"
            } else {
                "killed"
            };
            let rss = k
                .anon_rss
                .as_deref()
                .map(|a| format!(", anon-rss {}", kib_text(a)))
                .unwrap_or_default();
            evidence.push(ev(
                format!("{what} {} (pid {})", k.name, k.pid),
                format!("{}{rss}", k.when),
                &k.source,
            ));
        }
        let names = {
            let mut n: Vec<&str> = kills.iter().rev().map(|k| k.name.as_str()).collect();
            n.dedup();
            n.truncate(3);
            n.join(", ")
        };
        let title = match (count, kills.is_empty()) {
            (Some(n), true) => format!("the kernel OOM killer has killed {n} process(es) since boot"),
            (Some(n), false) => format!(
                "the kernel OOM killer has killed {n} process(es) since boot; the log names {} kill(s), last: {names}",
                kills.len()
            ),
            (None, _) => format!("the kernel log records {} OOM kill(s), last: {names}", kills.len()),
        };
        c.found(
            "oom.history",
            Severity::Warn,
            title,
            evidence,
            "run the batch under `ramguard run`, which admits tasks only when they fit and brakes before the kernel kills; see each kill with `journalctl -k -g 'Killed process'`",
        );
    }

    let can_read_ring = log_read == Some("/dev/kmsg");
    match restrict {
        Some(true) if !can_read_ring && log_read.is_none() => c.found(
            "oom.log_hidden",
            Severity::Warn,
            "the kernel log is hidden from this user (dmesg_restrict = 1): OOM kills of your jobs leave no trace you can read",
            {
                let mut e = vec![ev("dmesg_restrict", 1, "/proc/sys/kernel/dmesg_restrict")];
                if kmsg_denied {
                    e.push(ev("/dev/kmsg", "permission denied", "/dev/kmsg"));
                }
                for p in &denied_files {
                    e.push(ev(*p, "permission denied", *p));
                }
                e
            },
            "ask an admin for `sudo sysctl kernel.dmesg_restrict=0`, or membership of the `adm` / `systemd-journal` group (then `journalctl -k`); ramguard still counts kills from /proc/vmstat",
        ),
        Some(true) => c.found(
            "oom.log_restricted",
            Severity::Info,
            format!(
                "the kernel log is readable only by root (dmesg_restrict = 1){}: other users cannot see why their jobs died",
                if ctx.euid == Some(0) { "; doctor ran as root" } else { "" }
            ),
            vec![ev("dmesg_restrict", 1, "/proc/sys/kernel/dmesg_restrict")],
            "`sudo sysctl kernel.dmesg_restrict=0` (persist in /etc/sysctl.d/) or add users to the `adm` group, so OOM kills can be seen without root",
        ),
        _ if log_read.is_none() => c.unknown(
            "oom.log",
            "no kernel log could be read (/dev/kmsg, /var/log/kern.log, syslog, messages)",
        ),
        _ => {}
    }
}

/// `1234567kB` → `1.2 GiB`; anything else unchanged.
fn kib_text(s: &str) -> String {
    s.strip_suffix("kB")
        .and_then(|n| n.parse::<u64>().ok())
        .map(|k| ramguard_core::Bytes::from_kib(k).to_string())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_kill_lines_give_pid_name_and_rss() {
        let m = "Out of memory: Killed process 1234 (python3) total-vm:9876543kB, anon-rss:7654321kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:15000kB oom_score_adj:0";
        let (pid, name, rss, cg) = parse_kill(m).unwrap();
        assert_eq!((pid, name.as_str(), cg), (1234, "python3", false));
        assert_eq!(rss.as_deref(), Some("7654321kB"));
        let cg =
            "Memory cgroup out of memory: Killed process 77 (my prog) total-vm:1kB, anon-rss:2kB";
        assert_eq!(parse_kill(cg).unwrap().1, "my prog");
        assert!(parse_kill(cg).unwrap().3);
        assert_eq!(parse_kill("Killed process 1 (init)"), None);
    }

    #[test]
    fn syslog_lines_keep_their_time() {
        let t = "Nov 23 12:34:56 pi kernel: [ 123.4] Out of memory: Killed process 9 (python3) total-vm:1kB, anon-rss:2048kB\nnoise\n";
        let k = syslog_kills(t, "/var/log/kern.log");
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].when, "Nov 23 12:34:56");
        assert_eq!(kib_text(k[0].anon_rss.as_deref().unwrap()), "2 MiB");
    }

    #[test]
    fn kmsg_records_give_seconds_after_boot() {
        let t = "3,900,5000000,-;Out of memory: Killed process 9 (python3) total-vm:1kB, anon-rss:2kB\n6,901,5000001,-;hello\n";
        let k = kmsg_kills(t, "/dev/kmsg");
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].when, "5s after boot");
    }
}
