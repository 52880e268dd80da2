//! Parsers of the text files the probe reads: `/proc/meminfo`, `/proc/self/cgroup`,
//! `/proc/self/mountinfo`, cgroup v1/v2 value and stat files, PSI, `/proc/PID/statm`,
//! `smaps_rollup`, `/proc/vmstat`, `/proc/swaps` and CPU lists.
//!
//! Each takes a `&str` the caller has already read and returns typed values; the caller
//! attaches the file's path to any error. Parsers are lenient about lines they do not need
//! (kernels add fields) and strict about the ones they do.

use std::collections::BTreeMap;

use crate::units::Bytes;

/// A file's text did not have the shape we expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("missing field '{0}'")]
    Missing(&'static str),
    #[error("bad value in line '{0}'")]
    BadLine(String),
}

/// The fields of `/proc/meminfo` ramguard uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total: Bytes,
    pub free: Bytes,
    /// `MemAvailable`; on kernels before 3.14 it is estimated as free + buffers + cached.
    pub available: Bytes,
    pub buffers: Bytes,
    pub cached: Bytes,
    pub shmem: Bytes,
    pub swap_total: Bytes,
    pub swap_free: Bytes,
}

/// Parses `/proc/meminfo` (values in kB, which the kernel means as KiB).
pub fn meminfo(text: &str) -> Result<MemInfo, ParseError> {
    let mut fields: BTreeMap<&str, u64> = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let Some(v) = it.next() else { continue };
        let v: u64 = v.parse().map_err(|_| ParseError::BadLine(line.into()))?;
        let scaled = match it.next() {
            Some("kB") => v.saturating_mul(1024),
            _ => v,
        };
        fields.insert(key.trim(), scaled);
    }
    let get = |k: &'static str| fields.get(k).copied().map(Bytes);
    let total = get("MemTotal").ok_or(ParseError::Missing("MemTotal"))?;
    let free = get("MemFree").ok_or(ParseError::Missing("MemFree"))?;
    let buffers = get("Buffers").unwrap_or_default();
    let cached = get("Cached").unwrap_or_default();
    Ok(MemInfo {
        total,
        free,
        available: get("MemAvailable").unwrap_or(free + buffers + cached),
        buffers,
        cached,
        shmem: get("Shmem").unwrap_or_default(),
        swap_total: get("SwapTotal").unwrap_or_default(),
        swap_free: get("SwapFree").unwrap_or_default(),
    })
}

/// One line of `/proc/PID/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    pub hierarchy: u32,
    /// Controllers of a v1 hierarchy (`memory`, `cpu,cpuacct`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    pub path: String,
}

impl CgroupLine {
    /// Returns true if and only if this is the unified (v2) hierarchy's line (`0::/path`).
    pub fn is_v2(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty()
    }

    pub fn has_controller(&self, name: &str) -> bool {
        self.controllers.iter().any(|c| c == name)
    }
}

/// Parses `/proc/PID/cgroup`.
pub fn proc_cgroup(text: &str) -> Result<Vec<CgroupLine>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ParseError::BadLine(line.into()));
        };
        let hierarchy = id.parse().map_err(|_| ParseError::BadLine(line.into()))?;
        let controllers = ctrl
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        out.push(CgroupLine {
            hierarchy,
            controllers,
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// One line of `/proc/PID/mountinfo`, with the fields the probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the filesystem that is mounted (for cgroups: the hierarchy path).
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options (`rw,memory`, `rw,size=24683656k`).
    pub super_options: Vec<String>,
}

impl Mount {
    /// Returns true if and only if this is a cgroup v1 mount carrying the given controller.
    pub fn is_v1_with(&self, controller: &str) -> bool {
        self.fs_type == "cgroup" && self.super_options.iter().any(|o| o == controller)
    }

    /// Returns the value of a `key=value` super option, if present.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.super_options
            .iter()
            .find_map(|o| o.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape_mount_field(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if (b'0'..=b'3').contains(&oct[0]) && oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/PID/mountinfo` (proc(5)): fields, optional fields, `-`, type, source, options.
pub fn mountinfo(text: &str) -> Result<Vec<Mount>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = || ParseError::BadLine(line.into());
        let (left, right) = line.split_once(" - ").ok_or_else(bad)?;
        let l: Vec<&str> = left.split_whitespace().collect();
        let r: Vec<&str> = right.split_whitespace().collect();
        if l.len() < 5 || r.len() < 2 {
            return Err(bad());
        }
        out.push(Mount {
            root: unescape_mount_field(l[3]),
            mount_point: unescape_mount_field(l[4]),
            fs_type: r[0].to_string(),
            source: unescape_mount_field(r[1]),
            super_options: r
                .get(2)
                .map(|o| o.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// At or above this, a cgroup v1 limit means "unlimited": the kernel stores
/// `PAGE_COUNTER_MAX * PAGE_SIZE`, which prints as 9223372036854771712 with 4 KiB pages and
/// slightly differently with other page sizes.
pub const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// Parses a cgroup memory limit file: v2 `memory.max`/`memory.high` (`max` or bytes) or v1
/// `memory.limit_in_bytes` (bytes, near 2^63 meaning unlimited, `-1` on some kernels).
/// Returns `None` for unlimited.
pub fn cgroup_limit(text: &str) -> Result<Option<Bytes>, ParseError> {
    let t = text.trim();
    if t == "max" || t == "-1" {
        return Ok(None);
    }
    let v: u64 = t.parse().map_err(|_| ParseError::BadLine(t.into()))?;
    Ok((v < V1_UNLIMITED_FLOOR).then_some(Bytes(v)))
}

/// Parses a file holding one unsigned number (`memory.current`, `memory.usage_in_bytes`).
pub fn single_u64(text: &str) -> Result<u64, ParseError> {
    let t = text.trim();
    t.parse().map_err(|_| ParseError::BadLine(t.into()))
}

/// Parses a flat `key value` file: `memory.stat`, `memory.events`, `/proc/vmstat`,
/// `memory.oom_control`. Lines that do not parse as `word number` are skipped.
pub fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(key_value_line)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The value of one key in a flat `key value` file (see [`key_values`]), without building
/// the whole map: `/proc/vmstat` has some 180 lines and is read once per task.
pub fn key_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(key_value_line)
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// One `word number` line; `None` for anything else.
fn key_value_line(line: &str) -> Option<(&str, u64)> {
    let mut it = line.split_whitespace();
    let k = it.next()?;
    let v = it.next()?.parse().ok()?;
    Some((k, v))
}

/// Pressure stall information for one resource: `some` and `full` avg10 (percent of time).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Psi {
    pub some_avg10: f64,
    pub full_avg10: f64,
    pub some_avg60: f64,
    pub full_avg60: f64,
}

/// Parses a PSI file (`/proc/pressure/memory`, a cgroup's `memory.pressure`).
/// Old kernels print only a `some` line for CPU; a missing `full` line reads as 0.
pub fn psi(text: &str) -> Result<Psi, ParseError> {
    let mut p = Psi::default();
    let mut seen_some = false;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let kind = it.next().unwrap_or("");
        let mut avg10 = None;
        let mut avg60 = None;
        for kv in it {
            let (k, v) = kv.split_once('=').ok_or(ParseError::BadLine(line.into()))?;
            let parse = || {
                v.parse::<f64>()
                    .map_err(|_| ParseError::BadLine(line.into()))
            };
            match k {
                "avg10" => avg10 = Some(parse()?),
                "avg60" => avg60 = Some(parse()?),
                _ => {}
            }
        }
        let avg10 = avg10.ok_or(ParseError::Missing("avg10"))?;
        let avg60 = avg60.unwrap_or(0.0);
        match kind {
            "some" => {
                p.some_avg10 = avg10;
                p.some_avg60 = avg60;
                seen_some = true;
            }
            "full" => {
                p.full_avg10 = avg10;
                p.full_avg60 = avg60;
            }
            _ => return Err(ParseError::BadLine(line.into())),
        }
    }
    if !seen_some {
        return Err(ParseError::Missing("some"));
    }
    Ok(p)
}

/// `/proc/PID/statm` in pages: size (VIRT), resident, shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statm {
    pub size_pages: u64,
    pub resident_pages: u64,
    pub shared_pages: u64,
}

/// Parses `/proc/PID/stat` for the CPU time a process and its reaped children have used:
/// `utime + stime + cutime + cstime`, in clock ticks. The command name (field 2) may hold
/// spaces and parentheses, so the fields are counted after its last `)`.
pub fn stat_cpu_ticks(text: &str) -> Result<u64, ParseError> {
    let (_, rest) = text
        .rsplit_once(')')
        .ok_or_else(|| ParseError::BadLine(text.trim().into()))?;
    // After the name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut total = 0u64;
    for (i, name) in [(11, "utime"), (12, "stime"), (13, "cutime"), (14, "cstime")] {
        let f = fields.get(i).ok_or(ParseError::Missing(name))?;
        // cutime and cstime are signed in the kernel's format; never negative in practice.
        let v = f
            .parse::<i64>()
            .map_err(|_| ParseError::BadLine(text.trim().into()))?;
        total += v.max(0) as u64;
    }
    Ok(total)
}

/// Parses `/proc/PID/statm`.
pub fn statm(text: &str) -> Result<Statm, ParseError> {
    let mut it = text.split_whitespace().map(|f| f.parse::<u64>());
    let mut next = |name| match it.next() {
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => Err(ParseError::BadLine(text.trim().into())),
        None => Err(ParseError::Missing(name)),
    };
    Ok(Statm {
        size_pages: next("size")?,
        resident_pages: next("resident")?,
        shared_pages: next("shared")?,
    })
}

/// The totals of `/proc/PID/smaps_rollup` ramguard records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmapsRollup {
    pub rss: Bytes,
    pub pss: Bytes,
    pub swap: Bytes,
    pub swap_pss: Bytes,
    /// The PSS of shared-memory (tmpfs, memfd, SysV) mappings; `None` before kernel 5.13.
    pub pss_shmem: Option<Bytes>,
    /// Pages mapped by this process alone (`Private_Clean` + `Private_Dirty`): its USS.
    pub uss: Bytes,
}

/// Parses `/proc/PID/smaps_rollup` (kernel 4.14+).
pub fn smaps_rollup(text: &str) -> Result<SmapsRollup, ParseError> {
    let mut r = SmapsRollup::default();
    let mut saw_pss = false;
    for line in text.lines() {
        let Some((k, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(v) = rest.split_whitespace().next() else {
            continue;
        };
        let Ok(kb) = v.parse::<u64>() else { continue };
        let b = Bytes::from_kib(kb);
        match k.trim() {
            "Rss" => r.rss = b,
            "Pss" => {
                r.pss = b;
                saw_pss = true;
            }
            "Swap" => r.swap = b,
            "SwapPss" => r.swap_pss = b,
            "Pss_Shmem" => r.pss_shmem = Some(b),
            "Private_Clean" | "Private_Dirty" => r.uss += b,
            _ => {}
        }
    }
    if !saw_pss {
        return Err(ParseError::Missing("Pss"));
    }
    Ok(r)
}

/// Parses a CPU list (`0-3,5,7-8`) as found in `Cpus_allowed_list` and `cpuset.cpus`;
/// returns how many CPUs it names.
pub fn cpu_list_count(text: &str) -> Result<u32, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    let mut n = 0u32;
    for part in t.split(',') {
        let bad = || ParseError::BadLine(t.into());
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.trim().parse().map_err(|_| bad())?;
                let b: u32 = b.trim().parse().map_err(|_| bad())?;
                if b < a {
                    return Err(bad());
                }
                n += b - a + 1;
            }
            None => {
                part.trim().parse::<u32>().map_err(|_| bad())?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Returns the value of a `Key:\tvalue` line of `/proc/PID/status`.
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// A CPU bandwidth quota as a number of CPUs (`quota / period`), `None` when unlimited.
/// Accepts v2 `cpu.max` (`max 100000`, `150000 100000`).
pub fn cpu_max(text: &str) -> Result<Option<f64>, ParseError> {
    let t = text.trim();
    let mut it = t.split_whitespace();
    let quota = it.next().ok_or(ParseError::Missing("quota"))?;
    let period: f64 = match it.next() {
        Some(p) => p.parse().map_err(|_| ParseError::BadLine(t.into()))?,
        None => 100_000.0,
    };
    if quota == "max" {
        return Ok(None);
    }
    let q: f64 = quota.parse().map_err(|_| ParseError::BadLine(t.into()))?;
    if period <= 0.0 {
        return Err(ParseError::BadLine(t.into()));
    }
    Ok(Some(q / period))
}

/// A CPU quota from v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; `-1` means unlimited.
pub fn cfs_quota(quota: &str, period: &str) -> Result<Option<f64>, ParseError> {
    let q: i64 = quota
        .trim()
        .parse()
        .map_err(|_| ParseError::BadLine(quota.trim().into()))?;
    let p: i64 = period
        .trim()
        .parse()
        .map_err(|_| ParseError::BadLine(period.trim().into()))?;
    if q < 0 || p <= 0 {
        return Ok(None);
    }
    Ok(Some(q as f64 / p as f64))
}

/// One active swap area from `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    pub name: String,
    pub kind: String,
    pub size: Bytes,
    pub used: Bytes,
    pub priority: i64,
}

impl SwapArea {
    /// Returns true if and only if this swap lives in compressed RAM (`/dev/zramN`).
    pub fn is_zram(&self) -> bool {
        self.name.starts_with("/dev/zram")
    }
}

/// Parses `/proc/swaps` (sizes in KiB; the first line is a header).
pub fn swaps(text: &str) -> Result<Vec<SwapArea>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            return Err(ParseError::BadLine(line.into()));
        }
        let num = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| ParseError::BadLine(line.into()))
        };
        out.push(SwapArea {
            name: unescape_mount_field(f[0]),
            kind: f[1].to_string(),
            size: Bytes::from_kib(num(f[2])?.max(0) as u64),
            used: Bytes::from_kib(num(f[3])?.max(0) as u64),
            priority: num(f[4])?,
        });
    }
    Ok(out)
}

/// Parses a tmpfs `size=` mount option (`24683656k`, `64m`, `2g`, bytes, or `50%` of RAM).
pub fn tmpfs_size(option: &str, mem_total: Bytes) -> Option<Bytes> {
    let o = option.trim();
    if let Some(p) = o.strip_suffix('%') {
        let p: f64 = p.parse().ok()?;
        return Some(mem_total.scale(p / 100.0));
    }
    let (num, mult) = match o.chars().last()? {
        'k' | 'K' => (&o[..o.len() - 1], 1024u64),
        'm' | 'M' => (&o[..o.len() - 1], 1024 * 1024),
        'g' | 'G' => (&o[..o.len() - 1], 1024 * 1024 * 1024),
        't' | 'T' => (&o[..o.len() - 1], 1024u64.pow(4)),
        _ => (o, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult).map(Bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_value_finds_one_line_and_ignores_prefixes() {
        let vmstat = "nr_free_pages 12\noom_kill_extra 9\noom_kill 3\nbad line\n";
        assert_eq!(key_value(vmstat, "oom_kill"), Some(3));
        assert_eq!(key_value(vmstat, "pgfault"), None);
        assert_eq!(key_value("oom_kill x\n", "oom_kill"), None);
    }

    use super::*;

    const MEMINFO: &str = "MemTotal:       24683656 kB\nMemFree:        24585904 kB\nMemAvailable:   24485880 kB\nBuffers:            2104 kB\nCached:            41692 kB\nSwapCached:            0 kB\nShmem:              8952 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nHugePages_Total:       0\n";

    #[test]
    fn stat_cpu_ticks_sums_own_and_reaped_childrens_time_after_an_odd_name() {
        // A command name with a space and a parenthesis, as `python3 -c` can make.
        let stat = "4242 (my (odd) job) S 1 4242 4242 0 -1 4194560 120 0 0 0 \
                    37 5 11 2 20 0 1 0 1000 10000000 300 18446744073709551615";
        assert_eq!(stat_cpu_ticks(stat).unwrap(), 37 + 5 + 11 + 2);
        assert!(stat_cpu_ticks("4242 (cut short) S 1 2").is_err());
        assert!(stat_cpu_ticks("no name here").is_err());
    }

    #[test]
    fn meminfo_reads_kib_as_bytes() {
        let m = meminfo(MEMINFO).unwrap();
        assert_eq!(m.total, Bytes(24683656 * 1024));
        assert_eq!(m.available, Bytes(24485880 * 1024));
        assert_eq!(m.shmem, Bytes(8952 * 1024));
        assert_eq!(m.swap_total, Bytes(0));
    }

    #[test]
    fn meminfo_without_memavailable_estimates_it() {
        let m = meminfo("MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 1 kB\nCached: 5 kB\n").unwrap();
        assert_eq!(m.available, Bytes(16 * 1024));
    }

    #[test]
    fn meminfo_malformed() {
        assert_eq!(
            meminfo("MemFree: 1 kB\n"),
            Err(ParseError::Missing("MemTotal"))
        );
        assert!(matches!(
            meminfo("MemTotal: lots kB\n"),
            Err(ParseError::BadLine(_))
        ));
        assert!(meminfo("").is_err());
    }

    #[test]
    fn proc_cgroup_hybrid() {
        let l = proc_cgroup("4:memory:/process_api/ea37\n1:cpu,cpuacct:/\n0::/\n").unwrap();
        assert_eq!(l.len(), 3);
        assert!(l[0].has_controller("memory"));
        assert_eq!(l[0].path, "/process_api/ea37");
        assert!(l[1].has_controller("cpuacct"));
        assert!(l[2].is_v2());
        assert!(proc_cgroup("garbage\n").is_err());
    }

    #[test]
    fn proc_cgroup_path_may_contain_colons() {
        let l = proc_cgroup("0::/system.slice/a:b.scope\n").unwrap();
        assert_eq!(l[0].path, "/system.slice/a:b.scope");
    }

    #[test]
    fn mountinfo_fields_and_escapes() {
        let t = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw\n\
                 25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683656k\n\
                 26 24 0:24 /a\\040b /mnt/with\\040space rw - ext4 /dev/sda1 rw\n";
        let m = mountinfo(t).unwrap();
        assert!(m[0].is_v1_with("memory"));
        assert_eq!(m[1].fs_type, "cgroup2");
        assert_eq!(m[2].option("size"), Some("24683656k"));
        assert_eq!(m[3].mount_point, "/mnt/with space");
        assert_eq!(m[3].root, "/a b");
        assert!(mountinfo("1 2 3\n").is_err());
    }

    #[test]
    fn limits_unlimited_forms() {
        assert_eq!(cgroup_limit("max\n").unwrap(), None);
        assert_eq!(cgroup_limit("9223372036854771712\n").unwrap(), None);
        assert_eq!(cgroup_limit("9223372036854775807\n").unwrap(), None);
        assert_eq!(cgroup_limit("-1\n").unwrap(), None);
        assert_eq!(cgroup_limit("4294967296\n").unwrap(), Some(Bytes(4 << 30)));
        assert!(cgroup_limit("lots").is_err());
    }

    #[test]
    fn psi_lines() {
        let p = psi("some avg10=1.50 avg60=0.20 avg300=0.00 total=123\nfull avg10=0.75 avg60=0.10 avg300=0.00 total=45\n").unwrap();
        assert_eq!(p.some_avg10, 1.5);
        assert_eq!(p.full_avg10, 0.75);
        let only_some = psi("some avg10=2.00 avg60=0.00 avg300=0.00 total=1\n").unwrap();
        assert_eq!(only_some.full_avg10, 0.0);
        assert!(psi("").is_err());
        assert!(psi("some avg10=x avg60=0 avg300=0 total=0\n").is_err());
    }

    const ROLLUP: &str = "\
55d0c0a00000-7ffd5b5fe000 ---p 00000000 00:00 0                          [rollup]
Rss:              205316 kB
Pss:              102658 kB
Pss_Anon:         102400 kB
Pss_File:            258 kB
Pss_Shmem:          2048 kB
Shared_Clean:       516 kB
Shared_Dirty:    204800 kB
Private_Clean:         0 kB
Private_Dirty:       100 kB
Swap:                 64 kB
SwapPss:              32 kB
";

    #[test]
    fn smaps_rollup_reads_pss_uss_shmem_and_swap() {
        let r = smaps_rollup(ROLLUP).unwrap();
        assert_eq!(r.rss, Bytes::from_kib(205_316));
        assert_eq!(r.pss, Bytes::from_kib(102_658));
        assert_eq!(r.uss, Bytes::from_kib(100));
        assert_eq!(r.pss_shmem, Some(Bytes::from_kib(2048)));
        assert_eq!(r.swap, Bytes::from_kib(64));
        assert_eq!(r.swap_pss, Bytes::from_kib(32));
    }

    #[test]
    fn statm_and_rollup() {
        let s = statm("3342 231 189 233 0 152 0\n").unwrap();
        assert_eq!(s.size_pages, 3342);
        assert_eq!(s.resident_pages, 231);
        assert!(statm("1 2").is_err());
        let r = smaps_rollup("55e7b0a00000-7ffd6b9f4000 ---p 00000000 00:00 0 [rollup]\nRss: 928 kB\nPss: 137 kB\nPss_Anon: 96 kB\nSwap: 4 kB\nSwapPss: 2 kB\n").unwrap();
        assert_eq!(r.rss, Bytes(928 * 1024));
        assert_eq!(r.pss, Bytes(137 * 1024));
        assert_eq!(r.swap, Bytes(4 * 1024));
        assert_eq!(r.pss_shmem, None, "an old kernel's rollup has no Pss_Shmem");
        assert!(smaps_rollup("Rss: 1 kB\n").is_err());
        let shm = smaps_rollup("Rss: 700 kB\nPss: 300 kB\nPss_Shmem: 200 kB\nShared_Clean: 500 kB\nPrivate_Clean: 40 kB\nPrivate_Dirty: 60 kB\n").unwrap();
        assert_eq!(shm.pss_shmem, Some(Bytes(200 * 1024)));
        assert_eq!(
            shm.uss,
            Bytes(100 * 1024),
            "USS is private clean plus private dirty"
        );
    }

    #[test]
    fn cpu_lists_and_quotas() {
        assert_eq!(cpu_list_count("0-1\n").unwrap(), 2);
        assert_eq!(cpu_list_count("0-3,5,7-8").unwrap(), 7);
        assert!(cpu_list_count("3-1").is_err());
        assert_eq!(cpu_max("max 100000\n").unwrap(), None);
        assert_eq!(cpu_max("150000 100000\n").unwrap(), Some(1.5));
        assert_eq!(cfs_quota("-1\n", "100000\n").unwrap(), None);
        assert_eq!(cfs_quota("200000", "100000").unwrap(), Some(2.0));
    }

    #[test]
    fn swaps_with_zram() {
        let s = swaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/zram0                              partition\t2097136\t\t0\t\t100\n").unwrap();
        assert_eq!(s.len(), 1);
        assert!(s[0].is_zram());
        assert_eq!(s[0].size, Bytes::from_kib(2097136));
        assert!(swaps("Filename Type Size Used Priority\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn tmpfs_sizes() {
        let t = Bytes(1 << 30);
        assert_eq!(tmpfs_size("24683656k", t), Some(Bytes(24683656 * 1024)));
        assert_eq!(tmpfs_size("64m", t), Some(Bytes(64 << 20)));
        assert_eq!(tmpfs_size("50%", t), Some(Bytes(1 << 29)));
        assert_eq!(tmpfs_size("x", t), None);
    }

    #[test]
    fn key_values_skip_noise() {
        let kv = key_values("oom_kill_disable 0\nunder_oom 0\noom_kill 3\nbogus\n");
        assert_eq!(kv["oom_kill"], 3);
        assert_eq!(kv.len(), 3);
    }
}
