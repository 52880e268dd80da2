//! Human formatting shared by `status`, `results` and `list`: sizes, durations, times,
//! aligned tables and CSV quoting. Pure functions, no I/O.

/// Formats bytes for people: `512 B`, `1.5 KiB`, `234.4 MiB`, `2.2 GiB` (the one byte
/// formatter, `Bytes`'s `Display`).
pub fn bytes(b: u64) -> String {
    ramguard_core::Bytes(b).to_string()
}

/// Formats an optional byte count, `-` when absent.
pub fn opt_bytes(b: Option<u64>) -> String {
    b.map_or_else(|| "-".to_string(), bytes)
}

/// Formats milliseconds for people: `850ms`, `12.3s`, `4m05s`, `2h03m`, `3d04h` (the one
/// duration formatter, `units::format_duration`).
pub fn duration_ms(ms: u64) -> String {
    ramguard_core::units::format_duration(std::time::Duration::from_millis(ms))
}

/// Formats a Unix time in milliseconds as UTC `2026-11-23 16:08:15`.
pub fn unix_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let mut s = humantime::format_rfc3339_seconds(t).to_string();
    // "2026-11-23T16:08:15Z" → "2026-11-23 16:08:15"
    s = s.replacen('T', " ", 1);
    s.trim_end_matches('Z').to_string()
}

/// Renders rows as left-aligned columns separated by two spaces; the last column is not
/// padded.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate().take(n) {
            if i + 1 == n {
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for r in rows {
        line(r);
    }
    out
}

/// Quotes a CSV field when needed (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_wrote_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(234 * 1024 * 1024), "234 MiB");
        assert_eq!(bytes(2_362_232_012), "2.2 GiB");
        // One rule with `Bytes`'s Display: this once said "234 MiB" where run said "234.4 MiB".
        assert_eq!(
            bytes(245_785_395),
            ramguard_core::Bytes(245_785_395).to_string()
        );
        assert_eq!(bytes(245_785_395), "234.4 MiB");
    }

    #[test]
    fn durations_are_compact() {
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(12_300), "12.3s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
        assert_eq!(duration_ms(1_000), "1s");
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn utc_times() {
        assert_eq!(unix_ms(0), "1970-01-01 00:00:00");
    }
}
