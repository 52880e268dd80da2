//! A small memory-over-time chart for the terminal, drawn with block characters.

use ramguard_core::Bytes;

/// Eighths of a cell, from empty to full.
const BLOCKS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Draws `points` (seconds, bytes) as columns `width` wide and `height` rows high, each
/// column the highest value in its slice of time; a `limit` is drawn as a dashed row where it
/// falls, and the scale includes it.
pub fn chart(points: &[(f64, u64)], width: usize, height: usize, limit: Option<Bytes>) -> String {
    let (width, height) = (width.max(8), height.max(2));
    let Some(t_end) = points.iter().map(|p| p.0).reduce(f64::max) else {
        return String::new();
    };
    let mut cols = vec![0u64; width];
    for &(t, v) in points {
        let i = if t_end > 0.0 {
            ((t / t_end) * (width - 1) as f64).round() as usize
        } else {
            0
        };
        let c = &mut cols[i.min(width - 1)];
        *c = (*c).max(v);
    }
    // A column with no sample of its own continues the previous one.
    for i in 1..width {
        if cols[i] == 0 {
            cols[i] = cols[i - 1];
        }
    }
    let top = cols
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(limit.map_or(0, Bytes::get))
        .max(1);
    let limit_row = limit.map(|l| ((l.get() as f64 / top as f64) * height as f64).ceil() as usize);
    let label_w = 9;
    let mut out = String::new();
    for row in (0..height).rev() {
        let label = if row == height - 1 {
            Bytes(top).to_string()
        } else if Some(row + 1) == limit_row {
            limit.map(|l| l.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        out.push_str(&format!("{label:>label_w$} ┤"));
        for &v in &cols {
            let eighths = (v as f64 / top as f64 * (height * 8) as f64).round() as usize;
            let fill = eighths.saturating_sub(row * 8).min(8);
            let c = if fill == 0 && Some(row + 1) == limit_row {
                '╌'
            } else {
                BLOCKS[fill]
            };
            out.push(c);
        }
        out.push('\n');
    }
    let end = format!("{t_end:.1}s");
    out.push_str(&format!(
        "{:>label_w$} └{}\n{:>w2$}0s{end:>pad$}\n",
        "0",
        "─".repeat(width),
        "",
        w2 = label_w + 2,
        pad = width.saturating_sub(2)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_its_height_and_width_and_marks_the_peak() {
        let pts: Vec<(f64, u64)> = (0..=100)
            .map(|i| (i as f64 / 10.0, (i * 10) << 20))
            .collect();
        let c = chart(&pts, 40, 6, None);
        let rows: Vec<&str> = c.lines().collect();
        assert_eq!(rows.len(), 8, "{c}");
        assert!(rows[0].starts_with(" 1000 MiB ┤"), "{c}");
        assert_eq!(rows[0].chars().filter(|&ch| ch == '█').count(), 1, "{c}");
        assert!(rows[7].trim_end().ends_with("10.0s"), "{c}");
    }

    #[test]
    fn a_limit_above_the_data_is_drawn_and_scales_the_chart() {
        let pts = [(0.0, 100 << 20), (1.0, 100 << 20)];
        let c = chart(&pts, 20, 4, Some(Bytes(400 << 20)));
        assert!(c.lines().next().unwrap().contains('╌'), "{c}");
        assert!(c.contains("400 MiB"), "{c}");
    }

    #[test]
    fn no_points_draw_nothing() {
        assert_eq!(chart(&[], 20, 4, None), "");
    }
}
