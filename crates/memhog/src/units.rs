//! Parsers for the human-friendly sizes, durations and signal names that
//! memhog accepts on its command line.
//!
//! These are deliberately self-contained (memhog must not depend on other
//! workspace crates) and strict: anything ambiguous is an error, which clap
//! turns into a usage error with exit status 2.

use std::time::Duration;

const KIB: u64 = 1024;

/// Parses a byte size.
///
/// * plain integer: bytes (`4096`)
/// * `B`: bytes (`4096B`)
/// * binary units, powers of 1024: `K`, `M`, `G`, `T` and `KiB`, `MiB`, `GiB`,
///   `TiB` (`512M`, `1.5GiB`, `300MiB`, `100K`)
/// * decimal units, powers of 1000: `KB`, `MB`, `GB`, `TB` (`1KB` = 1000)
///
/// Unit letters are case-insensitive, except that the `i` of `KiB` etc. may
/// be written either way too. A fractional number is allowed with a unit and
/// is rounded down to whole bytes. Whitespace between number and unit is
/// allowed.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty size".to_string());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim_start();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => KIB.pow(2),
        "g" | "gib" => KIB.pow(3),
        "t" | "tib" => KIB.pow(4),
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        _ => {
            return Err(format!(
                "invalid size {input:?}: unknown unit {unit:?} \
                 (use B, K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, GB or TB)"
            ))
        }
    };
    let value =
        parse_scaled(num, multiplier).map_err(|e| format!("invalid size {input:?}: {e}"))?;
    if unit.is_empty() && num.contains('.') {
        return Err(format!(
            "invalid size {input:?}: a fractional number of bytes needs a unit"
        ));
    }
    Ok(value)
}

/// Parses `num` (digits with at most one '.') and multiplies it by
/// `multiplier`, rounding down, with overflow checking. Done in integer
/// arithmetic so that large exact values do not lose precision.
fn parse_scaled(num: &str, multiplier: u64) -> Result<u64, String> {
    if num.is_empty() || num == "." {
        return Err("missing number".to_string());
    }
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac_part.contains('.') {
        return Err("more than one decimal point".to_string());
    }
    let too_big = || "value too large".to_string();
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse::<u128>().map_err(|_| too_big())?
    };
    let mut total: u128 = int
        .checked_mul(u128::from(multiplier))
        .ok_or_else(too_big)?;
    if !frac_part.is_empty() {
        // Only the first 18 fractional digits matter for any u64 multiplier.
        let digits = &frac_part[..frac_part.len().min(18)];
        let frac: u128 = digits.parse().map_err(|_| too_big())?;
        let scale = 10u128.pow(digits.len() as u32);
        total += frac * u128::from(multiplier) / scale;
    }
    u64::try_from(total).map_err(|_| too_big())
}

/// Parses a duration.
///
/// * plain number: seconds, fractional allowed (`30`, `0.5`)
/// * one or more `<number><unit>` groups, summed (`250ms`, `30s`, `10m`,
///   `1h`, `1h30m`, `1.5s`)
///
/// Units: `ns`, `us`, `ms`, `s`, `m`, `h`, `d` (case-insensitive).
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    let err = |msg: &str| format!("invalid duration {input:?}: {msg}");
    // Plain number = seconds.
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let nanos = parse_scaled(s, 1_000_000_000).map_err(|e| err(&e))?;
        return Ok(Duration::from_nanos(nanos));
    }
    let lower = s.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        if num.is_empty() {
            return Err(err("expected a number"));
        }
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let nanos_per_unit: u64 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" | "min" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            "" => return Err(err("missing unit after a number (use ms, s, m, h, ...)")),
            other => {
                return Err(err(&format!(
                    "unknown unit {other:?} (use ns, us, ms, s, m, h or d)"
                )))
            }
        };
        let part = parse_scaled(num, nanos_per_unit).map_err(|e| err(&e))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| err("value too large"))?;
        rest = after;
    }
    Ok(Duration::from_nanos(total))
}

/// Signal names memhog knows, without the `SIG` prefix.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal given by name (`KILL`, `SIGKILL`, `kill`) or number (`9`).
pub fn parse_signal(input: &str) -> Result<i32, String> {
    let s = input.trim();
    if let Ok(n) = s.parse::<i32>() {
        let max = libc::SIGRTMAX();
        if n >= 1 && n <= max {
            return Ok(n);
        }
        return Err(format!(
            "invalid signal {input:?}: number must be between 1 and {max}"
        ));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, num)| num)
        .ok_or_else(|| format!("invalid signal {input:?}: unknown signal name"))
}

/// Like [`parse_signal`], but only accepts signals whose default action
/// terminates the process (rejecting CHLD, CONT, STOP, TSTP, TTIN, TTOU,
/// URG and WINCH, which would leave the process running or stopped).
pub fn parse_fatal_signal(input: &str) -> Result<i32, String> {
    let sig = parse_signal(input)?;
    const NOT_FATAL: &[i32] = &[
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGURG,
        libc::SIGWINCH,
    ];
    if NOT_FATAL.contains(&sig) {
        return Err(format!(
            "invalid signal {input:?}: its default action does not terminate the process"
        ));
    }
    Ok(sig)
}

/// Returns the conventional name (`SIGKILL`) of a signal number, if known.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    // Aliases (IOT, POLL) come after the canonical names, so `find` picks
    // the canonical one.
    SIGNALS
        .iter()
        .find(|&&(_, n)| n == sig)
        .map(|&(name, _)| name)
}

/// Formats a byte count for humans (`32.0 MiB`).
pub fn fmt_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_plain_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size(" 12 "), Ok(12));
    }

    #[test]
    fn sizes_binary_units() {
        assert_eq!(parse_size("100K"), Ok(100 * 1024));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("300MiB"), Ok(300 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size(".5K"), Ok(512));
        assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_size("4kib"), Ok(4096));
    }

    #[test]
    fn sizes_decimal_units() {
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1kb"), Ok(1000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("3TB"), Ok(3_000_000_000_000));
    }

    #[test]
    fn sizes_fraction_rounds_down() {
        // 1.0001 KiB = 1024.1024 bytes
        assert_eq!(parse_size("1.0001K"), Ok(1024));
        assert_eq!(parse_size("1.999999999999999999999K"), Ok(2047));
    }

    #[test]
    fn sizes_rejected() {
        for bad in [
            "",
            " ",
            "12X",
            "M",
            "1.2.3M",
            "-1",
            "-1M",
            "1e6",
            "1.5",
            "0x10",
            "1 2M",
            "5MiBs",
            "99999999999999999999999",
            "20000000T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        let msg = parse_size("12X").unwrap_err();
        assert!(msg.contains("12X"), "{msg}");
    }

    #[test]
    fn sizes_max() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("16777216T").is_err());
        assert_eq!(parse_size("16777215T"), Ok(16_777_215 << 40));
    }

    #[test]
    fn durations_plain_seconds() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.25"), Ok(Duration::from_millis(1250)));
        assert_eq!(parse_duration(".1"), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn durations_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2m30s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("1H30M"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn durations_rejected() {
        for bad in [
            "",
            "s",
            "10x",
            "1h30",
            "-1s",
            "1.2.3s",
            "ms5",
            "1 h",
            "1e3",
            "abc",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL"), Ok(9));
        assert_eq!(parse_signal("sigkill"), Ok(9));
        assert_eq!(parse_signal("SIGTERM"), Ok(15));
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("SEGV"), Ok(libc::SIGSEGV));
        assert_eq!(parse_signal("bus"), Ok(libc::SIGBUS));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("1000").is_err());
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_fatal_signal("BUS"), Ok(libc::SIGBUS));
        assert_eq!(parse_fatal_signal("34"), Ok(34));
        for bad in ["STOP", "CHLD", "cont", "SIGWINCH", "19"] {
            assert!(parse_fatal_signal(bad).is_err(), "{bad}");
        }
        assert_eq!(signal_name(9), Some("KILL"));
        assert_eq!(signal_name(libc::SIGIO), Some("IO"));
    }

    #[test]
    fn format_sizes() {
        assert_eq!(fmt_size(12), "12 B");
        assert_eq!(fmt_size(32 << 20), "32.0 MiB");
        assert_eq!(fmt_size(3 << 29), "1.5 GiB");
    }
}
