//! Sizes and durations as users type them, and the `Bytes` newtype every memory figure uses.
//!
//! Sizes: `512M`, `2G`, `1.5GiB`, `300MiB`, `1073741824` (bytes), `80%` (a share of the
//! effective limit, kept as a [`SizeSpec::Percent`] until the probe has found that limit).
//! `K`, `M`, `G`, `T` and `KiB` … `TiB` are binary (1024-based), as in Slurm's `--mem`, GNU
//! `sort -S` and `ulimit`; `KB`, `MB`, `GB`, `TB` are decimal; a trailing `B` alone means bytes.
//!
//! Durations: `250ms`, `30s`, `10m`, `1h`, `1h30m`, `2d`, or a plain number of seconds.
//! Written by hand rather than with `humantime` because that crate reads `M` as *months* and
//! accepts years, both traps for a `--timeout` flag.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// A count of bytes. Every memory figure in ramguard is one of these, never a bare `u64`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    pub const ZERO: Bytes = Bytes(0);

    /// Builds a byte count from kibibytes, the unit of `/proc/meminfo` and `/proc/PID/status`.
    pub const fn from_kib(kib: u64) -> Bytes {
        Bytes(kib.saturating_mul(KIB))
    }

    pub const fn from_mib(mib: u64) -> Bytes {
        Bytes(mib.saturating_mul(MIB))
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    pub const fn saturating_sub(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_sub(other.0))
    }

    pub const fn saturating_add(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_add(other.0))
    }

    /// Returns the value in mebibytes as a float, for display and ratios.
    pub fn as_mib_f64(self) -> f64 {
        self.0 as f64 / MIB as f64
    }

    /// Scales by a factor, saturating; used for percentages and margins.
    pub fn scale(self, factor: f64) -> Bytes {
        let v = self.0 as f64 * factor;
        if v.is_nan() || v <= 0.0 {
            Bytes(0)
        } else if v >= u64::MAX as f64 {
            Bytes(u64::MAX)
        } else {
            Bytes(v.round() as u64)
        }
    }
}

impl std::ops::Add for Bytes {
    type Output = Bytes;
    fn add(self, rhs: Bytes) -> Bytes {
        self.saturating_add(rhs)
    }
}

impl std::ops::AddAssign for Bytes {
    fn add_assign(&mut self, rhs: Bytes) {
        *self = self.saturating_add(rhs);
    }
}

impl std::iter::Sum for Bytes {
    fn sum<I: Iterator<Item = Bytes>>(iter: I) -> Bytes {
        iter.fold(Bytes::ZERO, |a, b| a + b)
    }
}

/// Human form with binary units and at most one decimal, dropped when it would be `.0`:
/// `512 B`, `1.5 GiB`, `300 MiB`, `234.4 MiB`. This is ramguard's one byte formatter for
/// people: every table, line and chart uses it (machine output keeps exact bytes).
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let (unit, div) = if v >= TIB {
            ("TiB", TIB)
        } else if v >= GIB {
            ("GiB", GIB)
        } else if v >= MIB {
            ("MiB", MIB)
        } else if v >= KIB {
            ("KiB", KIB)
        } else {
            return f.pad(&format!("{v} B"));
        };
        // `pad` honours width and alignment, so tables can right-align sizes.
        f.pad(&format!("{} {unit}", one_decimal(v as f64 / div as f64)))
    }
}

/// `x` with at most one decimal, none when it would be `.0`: `1.5`, `234.4`, `2`.
fn one_decimal(x: f64) -> String {
    let text = format!("{x:.1}");
    match text.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => text,
    }
}

/// Why a size or duration string was refused; the message names the value and the forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid size '{0}': expected a number with an optional unit, like 512M, 2G, 1.5GiB, 300MiB, 1073741824 or 80%")]
    Size(String),
    #[error("invalid size '{0}': a percentage must be more than 0% and at most 100%")]
    Percent(String),
    #[error("invalid duration '{0}': expected a number with a unit, like 250ms, 30s, 10m, 1h or 1h30m (a plain number is seconds)")]
    Duration(String),
}

/// A size as the user wrote it: absolute, or a share of the effective memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeSpec {
    Absolute(Bytes),
    /// Percent of the effective limit, in (0, 100].
    Percent(f64),
}

impl SizeSpec {
    /// Turns the spec into bytes once the effective limit is known.
    pub fn resolve(self, limit: Bytes) -> Bytes {
        match self {
            SizeSpec::Absolute(b) => b,
            SizeSpec::Percent(p) => limit.scale(p / 100.0),
        }
    }
}

impl fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeSpec::Absolute(b) => b.fmt(f),
            SizeSpec::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl std::str::FromStr for SizeSpec {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<SizeSpec, UnitError> {
        let t = s.trim();
        if let Some(num) = t.strip_suffix('%') {
            let p: f64 = num
                .trim()
                .parse()
                .map_err(|_| UnitError::Size(s.to_string()))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(UnitError::Percent(s.to_string()));
            }
            return Ok(SizeSpec::Percent(p));
        }
        parse_size(s).map(SizeSpec::Absolute)
    }
}

/// Parses an absolute size (`512M`, `1.5GiB`, `1073741824`); percentages are refused here.
pub fn parse_size(s: &str) -> Result<Bytes, UnitError> {
    let err = || UnitError::Size(s.to_string());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') && num.len() == 1 {
        return Err(err());
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "t" | "tib" => TIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(err()),
    };
    if num.contains('.') {
        let v: f64 = num.parse().map_err(|_| err())?;
        let bytes = v * mult as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(err());
        }
        Ok(Bytes(bytes.round() as u64))
    } else {
        let v: u64 = num.parse().map_err(|_| err())?;
        v.checked_mul(mult).map(Bytes).ok_or_else(err)
    }
}

/// Parses a duration: `250ms`, `30s`, `10m`, `1h`, `1h30m`, `2d`, or plain seconds (`90`, `1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let err = || UnitError::Duration(s.to_string());
    let t = s.trim();
    if t.is_empty() {
        return Err(err());
    }
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if n == 0 {
            return Err(err());
        }
        let value: f64 = rest[..n].parse().map_err(|_| err())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs_per_unit = match &rest[..u] {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(err()),
        };
        rest = &rest[u..];
        let add = value * secs_per_unit;
        if !add.is_finite() || add > 1e12 {
            return Err(err());
        }
        total += Duration::from_secs_f64(add);
    }
    Ok(total)
}

/// Formats a duration compactly for people: `250ms`, `1.5s`, `42.3s`, `3m05s`, `1h30m`,
/// `3d04h` (under a minute at most one decimal, dropped when it would be `.0`, as sizes
/// are). This is ramguard's one duration formatter for people.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s < 60 {
        // Tenths, truncated: 59.99s must not read as "60s".
        let tenths = (ms % 1000) / 100;
        return if tenths == 0 {
            format!("{s}s")
        } else {
            format!("{s}.{tenths}s")
        };
    }
    if s < 3600 {
        return format!("{}m{:02}s", s / 60, s % 60);
    }
    if s < 86_400 {
        return format!("{}h{:02}m", s / 3600, (s % 3600) / 60);
    }
    format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_documented_form() {
        assert_eq!(parse_size("512M").unwrap(), Bytes(512 * MIB));
        assert_eq!(parse_size("2G").unwrap(), Bytes(2 * GIB));
        assert_eq!(parse_size("1.5GiB").unwrap(), Bytes(3 * GIB / 2));
        assert_eq!(parse_size("300MiB").unwrap(), Bytes(300 * MIB));
        assert_eq!(parse_size("1073741824").unwrap(), Bytes(GIB));
        assert_eq!(parse_size("4k").unwrap(), Bytes(4096));
        assert_eq!(parse_size("1GB").unwrap(), Bytes(1_000_000_000));
        assert_eq!(parse_size(" 10 MiB ").unwrap(), Bytes(10 * MIB));
        assert_eq!(parse_size("100B").unwrap(), Bytes(100));
    }

    #[test]
    fn bad_sizes_name_the_value_and_the_forms() {
        for bad in [
            "",
            "M",
            "12X",
            "1..5G",
            "-1G",
            "1e3",
            "G5",
            "99999999999999999999",
            ".",
        ] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
            assert!(e.contains("512M"), "{e}");
        }
    }

    #[test]
    fn percentages_resolve_against_the_limit() {
        let s: SizeSpec = "80%".parse().unwrap();
        assert_eq!(s, SizeSpec::Percent(80.0));
        assert_eq!(s.resolve(Bytes(1000)), Bytes(800));
        let a: SizeSpec = "1G".parse().unwrap();
        assert_eq!(a.resolve(Bytes(1)), Bytes(GIB));
        assert!("0%".parse::<SizeSpec>().is_err());
        assert!("150%".parse::<SizeSpec>().is_err());
        assert!("abc%".parse::<SizeSpec>().is_err());
    }

    #[test]
    fn durations_in_every_documented_form() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "s", "10M", "1y", "5 m", "-3s", "1h30", "ms10"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{bad}: {e}");
        }
    }

    #[test]
    fn bytes_display_is_human() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(300 * MIB).to_string(), "300 MiB");
        assert_eq!(Bytes(3 * GIB / 2).to_string(), "1.5 GiB");
        assert_eq!(Bytes(200 * MIB).to_string(), "200 MiB");
        // The decimal stays where it says something, and never reads ".0".
        assert_eq!(Bytes(234 * MIB + 400 * KIB).to_string(), "234.4 MiB");
        assert_eq!(Bytes(GIB + 10 * MIB).to_string(), "1 GiB");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(format!("{:>8}", Bytes(2 * GIB)), "   2 GiB");
    }

    #[test]
    fn durations_format_compactly() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(12_300)), "12.3s");
        assert_eq!(format_duration(Duration::from_millis(59_990)), "59.9s");
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(
            format_duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d04h"
        );
    }
}
