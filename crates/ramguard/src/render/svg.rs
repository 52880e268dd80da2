//! The report's charts as inline SVG, drawn here so the page needs no script and no network.
//!
//! Every chart is bounded whatever the sweep's size: the Gantt merges neighbouring bars of
//! one lane and class that are closer than half a pixel, memory is drawn from the model's
//! fixed time bins, scatter plots from at most `PLOT_POINTS` points.

use std::fmt::Write as _;

use ramguard_core::Bytes;

use crate::report_model::{Model, ParamPlot, TaskSeries};

/// Width of every chart's plot area, in SVG units.
const PLOT_W: f64 = 960.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;

/// Escapes text for XML content and attributes.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The colour of an exit class.
pub fn class_colour(class: &str) -> &'static str {
    match class {
        "done" => "#4c9a2a",
        "failed" => "#d62728",
        "signaled" => "#8c564b",
        "over_cap" => "#9467bd",
        "timed_out" => "#bcbd22",
        "braked" => "#ff7f0e",
        "oom_killed" => "#7f0000",
        "shm_bus" => "#e377c2",
        "interrupted" => "#7f7f7f",
        _ => "#1f77b4", // running
    }
}

/// Lane colours for the stacked memory chart.
/// Lane colours: blues, teals and greys, none of them an exit class's colour.
const LANE_COLOURS: [&str; 8] = [
    "#4e79a7", "#a0cbe8", "#499894", "#86bcb6", "#79706e", "#bab0ac", "#2f4b7c", "#9fb7c9",
];

fn secs_label(ms: f64) -> String {
    crate::journal::display::duration_ms(ms.max(0.0) as u64)
}

/// Time axis ticks along the bottom of a chart.
fn time_axis(out: &mut String, span_ms: f64, y: f64) {
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#333"/>"##,
        LEFT + PLOT_W
    );
    for i in 0..=5 {
        let x = LEFT + PLOT_W * i as f64 / 5.0;
        let _ = write!(
            out,
            r##"<line x1="{x}" y1="{y}" x2="{x}" y2="{}" stroke="#333"/><text x="{x}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            y + 4.0,
            y + 16.0,
            secs_label(span_ms * i as f64 / 5.0)
        );
    }
}

/// The Gantt of attempts: one row per lane, bars coloured by exit class and paled where the
/// task was paused, admission pauses shaded, brakes marked.
pub fn gantt(m: &Model) -> String {
    let lanes = m.lanes.max(1);
    let lane_h = (420.0 / lanes as f64).clamp(3.0, 22.0);
    let top = 10.0;
    let plot_h = lanes as f64 * lane_h;
    let height = top + plot_h + 30.0;
    let span = m.span_ms.max(1) as f64;
    let x_of = |ms: u64| LEFT + ms as f64 / span * PLOT_W;
    let mut out = format!(
        r#"<svg class="chart" id="gantt" viewBox="0 0 {} {height}" width="{}" height="{height}" role="img" aria-label="Gantt of attempts">"#,
        LEFT + PLOT_W + RIGHT,
        LEFT + PLOT_W + RIGHT
    );
    for &(s, e) in &m.pauses {
        let _ = write!(
            out,
            r##"<rect class="pause" x="{:.1}" y="{top}" width="{:.1}" height="{plot_h}" fill="#999" opacity="0.25"><title>admission paused {}–{}</title></rect>"##,
            x_of(s),
            (x_of(e) - x_of(s)).max(1.0),
            secs_label(s as f64),
            secs_label(e as f64)
        );
    }
    // Bars per lane, merged when they touch within half a pixel and share a class.
    let mut by_lane: Vec<Vec<usize>> = vec![Vec::new(); lanes];
    for (i, a) in m.attempts.iter().enumerate() {
        by_lane[a.lane.min(lanes - 1)].push(i);
    }
    for (lane, idx) in by_lane.iter_mut().enumerate() {
        idx.sort_by_key(|&i| m.attempts[i].start_ms);
        let y = top + lane as f64 * lane_h;
        let mut pending: Option<(f64, f64, &str, usize, usize)> = None; // x0, x1, class, n, first
        let flush = |out: &mut String, p: (f64, f64, &str, usize, usize)| {
            let (x0, x1, class, n, first) = p;
            let a = &m.attempts[first];
            let title = if n == 1 {
                format!(
                    "{} (attempt {}): {} — {}, peak {}",
                    a.label,
                    a.attempt,
                    a.class,
                    secs_label((a.end_ms - a.start_ms) as f64),
                    a.peak.map_or("-".into(), |p| Bytes(p).to_string())
                ) + &if a.reason.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", a.reason)
                }
            } else {
                format!("{n} attempts, {class}")
            };
            let _ = write!(
                out,
                r#"<rect class="bar {class}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                y + 0.5,
                (x1 - x0).max(0.8),
                (lane_h - 1.0).max(1.0),
                class_colour(class),
                esc(&title)
            );
        };
        for &i in idx.iter() {
            let a = &m.attempts[i];
            let (x0, x1) = (x_of(a.start_ms), x_of(a.end_ms));
            pending = match pending {
                Some((p0, p1, c, n, f)) if c == a.class && x0 - p1 < 0.5 => {
                    Some((p0, p1.max(x1), c, n + 1, f))
                }
                Some(p) => {
                    flush(&mut out, p);
                    Some((x0, x1, a.class.as_str(), 1, i))
                }
                None => Some((x0, x1, a.class.as_str(), 1, i)),
            };
        }
        if let Some(p) = pending {
            flush(&mut out, p);
        }
        // Where a task's tree was paused, its bar is paled.
        for &i in idx.iter() {
            let a = &m.attempts[i];
            for &(s, e) in &a.paused {
                let _ = write!(
                    out,
                    r##"<rect class="paused" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#fff" opacity="0.6"><title>{} paused {}</title></rect>"##,
                    x_of(s),
                    y + 0.5,
                    (x_of(e) - x_of(s)).max(0.8),
                    (lane_h - 1.0).max(1.0),
                    esc(&a.label),
                    secs_label(e.saturating_sub(s) as f64)
                );
            }
        }
    }
    for &b in &m.brakes {
        let x = x_of(b);
        let _ = write!(
            out,
            r##"<line class="brake" x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#d62728" stroke-dasharray="3,2"><title>brake at {}</title></line>"##,
            top + plot_h,
            secs_label(b as f64)
        );
    }
    // Every lane is named, mid-row, when its row is tall enough for the text; else the
    // first and last, at the plot's top and bottom.
    let named: Vec<(usize, f64)> = if lane_h >= 11.0 {
        (1..=lanes)
            .map(|lane| (lane, top + (lane as f64 - 0.5) * lane_h + 4.0))
            .collect()
    } else {
        vec![(1, top + 10.0), (lanes, top + plot_h - 1.0)]
    };
    for (lane, y) in named {
        let _ = write!(
            out,
            r#"<text class="lane" x="4" y="{y:.1}" font-size="11">lane {lane}</text>"#
        );
    }
    time_axis(&mut out, span, top + plot_h + 2.0);
    out.push_str("</svg>");
    out
}

/// Memory of the running tasks over time, stacked by lane, against the budget (and the
/// effective limit when it is close enough to show).
pub fn memory(m: &Model) -> String {
    let top = 16.0;
    let plot_h = 260.0;
    let height = top + plot_h + 30.0;
    let peak = m.total_mem.iter().copied().max().unwrap_or(0);
    let mut y_max = peak.max(m.budget.get()).max(1);
    let show_limit = m
        .effective_limit
        .filter(|l| l.get() <= y_max.saturating_mul(2));
    if let Some(l) = show_limit {
        y_max = y_max.max(l.get());
    }
    let y_max = y_max as f64 * 1.05;
    let n = m.total_mem.len().max(1);
    let x_of = |i: usize| LEFT + i as f64 / n as f64 * PLOT_W;
    let y_of = |v: f64| top + plot_h - v / y_max * plot_h;
    let mut out = format!(
        r#"<svg class="chart" id="memory" viewBox="0 0 {w} {height}" width="{w}" height="{height}" role="img" aria-label="memory over time">"#,
        w = LEFT + PLOT_W + RIGHT
    );
    let mut base = vec![0u64; n];
    for (lane, mem) in m.lane_mem.iter().enumerate() {
        let mut pts = String::new();
        for i in 0..n {
            let _ = write!(
                pts,
                "{:.1},{:.1} ",
                x_of(i),
                y_of((base[i] + mem[i]) as f64)
            );
            let _ = write!(
                pts,
                "{:.1},{:.1} ",
                x_of(i + 1),
                y_of((base[i] + mem[i]) as f64)
            );
        }
        for i in (0..n).rev() {
            let _ = write!(pts, "{:.1},{:.1} ", x_of(i + 1), y_of(base[i] as f64));
            let _ = write!(pts, "{:.1},{:.1} ", x_of(i), y_of(base[i] as f64));
        }
        let _ = write!(
            out,
            r#"<polygon class="lane" points="{}" fill="{}"><title>lane {}</title></polygon>"#,
            pts.trim_end(),
            LANE_COLOURS[lane % LANE_COLOURS.len()],
            lane + 1
        );
        for i in 0..n {
            base[i] += mem[i];
        }
    }
    let mut hline = |v: u64, colour: &str, label: &str, class: &str| {
        let y = y_of(v as f64);
        let _ = write!(
            out,
            r#"<line class="{class}" x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{colour}" stroke-dasharray="6,3" stroke-width="1.5"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="{colour}">{}</text>"#,
            LEFT + PLOT_W,
            LEFT + PLOT_W - 4.0,
            y - 3.0,
            esc(label)
        );
    };
    hline(
        m.budget.get(),
        "#d62728",
        &format!("budget {}", m.budget),
        "budget",
    );
    if let Some(l) = show_limit {
        hline(l.get(), "#555", &format!("memory limit {l}"), "limit");
    }
    host_available(&mut out, m, y_max, &x_of, &y_of);
    for i in 0..=4 {
        let v = y_max / 1.05 * i as f64 / 4.0;
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y_of(v) + 4.0,
            Bytes(v as u64)
        );
    }
    time_axis(&mut out, m.span_ms as f64, top + plot_h + 2.0);
    out.push_str("</svg>");
    out
}

/// The host's available memory (journaled by the run): a grey line where it comes within
/// the chart's range, and a label with its lowest value either way.
fn host_available(
    out: &mut String,
    m: &Model,
    y_max: f64,
    x_of: &dyn Fn(usize) -> f64,
    y_of: &dyn Fn(f64) -> f64,
) {
    let Some(lowest) = m.host_available.iter().flatten().min().copied() else {
        return;
    };
    let mut pts = String::new();
    for (i, a) in m.host_available.iter().enumerate() {
        if let Some(a) = a {
            let v = (*a as f64).min(y_max);
            let _ = write!(
                pts,
                "{:.1},{:.1} {:.1},{:.1} ",
                x_of(i),
                y_of(v),
                x_of(i + 1),
                y_of(v)
            );
        }
    }
    if (lowest as f64) < y_max {
        let _ = write!(
            out,
            r##"<polyline class="available" points="{}" fill="none" stroke="#555" stroke-width="1.5"><title>host available memory</title></polyline>"##,
            pts.trim_end()
        );
    }
    let _ = write!(
        out,
        r##"<text id="available" x="{}" y="12" font-size="11" fill="#555">host available memory: lowest {}{}</text>"##,
        LEFT + 4.0,
        Bytes(lowest),
        if (lowest as f64) < y_max {
            " (grey line)"
        } else {
            ", above this chart throughout"
        }
    );
}

/// One task's memory over its attempt, with the leak's line when one was found.
pub fn sparkline(s: &TaskSeries, cap: Option<Bytes>) -> String {
    let (w, h) = (480.0, 90.0);
    let t_max = s.points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let v_max = s
        .points
        .iter()
        .map(|p| p.1)
        .max()
        .unwrap_or(1)
        .max(cap.map_or(0, |c| c.get().min(s.peak.unwrap_or(0) * 2)))
        .max(1) as f64
        * 1.1;
    let x_of = |t: f64| 50.0 + t / t_max * (w - 60.0);
    let y_of = |v: f64| 8.0 + (h - 24.0) - v / v_max * (h - 24.0);
    let mut out =
        format!(r#"<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">"#);
    let pts: String = s
        .points
        .iter()
        .map(|&(t, v)| format!("{:.1},{:.1}", x_of(t as f64), y_of(v as f64)))
        .collect::<Vec<_>>()
        .join(" ");
    let _ = write!(
        out,
        r#"<polyline points="{pts}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
        class_colour(&s.class)
    );
    if let Some(l) = &s.leak {
        let (t0, t1) = (l.since_ms as f64, l.at_ms as f64);
        let v1 = l.current.get() as f64;
        let v0 = v1 - l.bytes_per_sec * (t1 - t0) / 1000.0;
        let _ = write!(
            out,
            r##"<line class="leakline" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#d62728" stroke-dasharray="4,2" stroke-width="2"><title>leak: +{:.1} MiB/s</title></line>"##,
            x_of(t0),
            y_of(v0),
            x_of(t1),
            y_of(v1),
            l.mib_per_sec()
        );
    }
    if let Some(c) = cap.filter(|c| (c.get() as f64) < v_max) {
        let y = y_of(c.get() as f64);
        let _ = write!(
            out,
            r##"<line x1="50" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#9467bd" stroke-dasharray="2,2"/><text x="{}" y="{:.1}" font-size="10" fill="#9467bd" text-anchor="end">cap</text>"##,
            w - 10.0,
            w - 12.0,
            y - 2.0
        );
    }
    let _ = write!(
        out,
        r#"<text x="46" y="14" font-size="10" text-anchor="end">{}</text><text x="46" y="{}" font-size="10" text-anchor="end">0</text><text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"#,
        Bytes((v_max / 1.1) as u64),
        h - 16.0,
        w - 10.0,
        h - 2.0,
        secs_label(t_max)
    );
    out.push_str("</svg>");
    out
}

/// A parameter value for an axis, in the unit it was written in.
fn axis_value(x: f64, unit: &str) -> String {
    match unit {
        "bytes" => Bytes(x.max(0.0) as u64).to_string(),
        "seconds" => secs_label(x * 1000.0),
        _ => format!("{x}"),
    }
}

/// Peaks against one parameter: observed (filled) and the fitted prediction (hollow). A
/// kind's tasks stand in a column each, spread a little sideways so that equal peaks do not
/// hide each other.
pub fn scatter(p: &ParamPlot) -> String {
    let (w, h) = (480.0, 260.0);
    let (l, b, t, r) = (70.0, 30.0, 10.0, 10.0);
    let xs = p.points.iter().map(|q| q.0);
    let kinds = !p.levels.is_empty();
    let (x_min, x_max) = match kinds {
        true => (-0.5, p.levels.len() as f64 - 0.5),
        false => (
            xs.clone().fold(f64::INFINITY, f64::min),
            xs.fold(f64::NEG_INFINITY, f64::max),
        ),
    };
    let y_max = p
        .points
        .iter()
        .map(|q| (q.1 as f64).max(q.2.unwrap_or(0.0)))
        .fold(1.0, f64::max)
        * 1.1;
    let dx = (x_max - x_min).max(f64::EPSILON);
    let x_of = |x: f64| l + (x - x_min) / dx * (w - l - r);
    let y_of = |y: f64| t + (h - t - b) - y.max(0.0) / y_max * (h - t - b);
    let mut out = format!(
        r#"<svg class="chart scatter" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="peak against {}">"#,
        esc(&p.name)
    );
    let _ = write!(
        out,
        r##"<line x1="{l}" y1="{0}" x2="{1}" y2="{0}" stroke="#333"/><line x1="{l}" y1="{t}" x2="{l}" y2="{0}" stroke="#333"/>"##,
        h - b,
        w - r
    );
    for (i, &(x, y, pred)) in p.points.iter().enumerate() {
        let (x, value) = match p.levels.get(x as usize).filter(|_| kinds) {
            // A fixed scatter within ±0.3 of the kind's column.
            Some(level) => (x + ((i * 37) % 61) as f64 / 100.0 - 0.3, level.clone()),
            None => (x, x.to_string()),
        };
        if let Some(py) = pred {
            let _ = write!(
                out,
                r##"<circle class="predicted" cx="{:.1}" cy="{:.1}" r="4" fill="none" stroke="#d62728"/>"##,
                x_of(x),
                y_of(py)
            );
        }
        let _ = write!(
            out,
            r##"<circle class="observed" cx="{:.1}" cy="{:.1}" r="2.5" fill="#1f77b4"><title>{} = {}: peak {}</title></circle>"##,
            x_of(x),
            y_of(y as f64),
            esc(&p.name),
            esc(&value),
            Bytes(y)
        );
    }
    // Under the axis: each kind under its column, or the lowest and highest value.
    if kinds {
        for (k, level) in p.levels.iter().enumerate() {
            let _ = write!(
                out,
                r#"<text class="kind" x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
                x_of(k as f64),
                h - 12.0,
                esc(level)
            );
        }
    } else {
        let _ = write!(
            out,
            r#"<text x="{l}" y="{}" font-size="11">{}</text><text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            h - 12.0,
            axis_value(x_min, p.unit),
            w - r,
            h - 12.0,
            axis_value(x_max, p.unit),
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text><text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
        l - 4.0,
        t + 10.0,
        Bytes((y_max / 1.1) as u64),
        (l + w) / 2.0,
        h - 2.0,
        esc(&p.name)
    );
    out.push_str("</svg>");
    out
}
