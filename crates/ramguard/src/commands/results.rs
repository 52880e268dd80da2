//! `ramguard results [SWEEP]`: one row per task — params, state, attempts, peak, duration,
//! exit class and the task's result — as a table, CSV or JSON.
//!
//! Named params become one column each (a param whose name clashes with a fixed column is
//! prefixed `param.`); positional params become one `params` column. A result object is
//! flattened into `result.<field>` columns (nested objects as `result.a.b`); a result that
//! is not an object is one `result` column. A result file that was not valid JSON shows its
//! raw text in `result_raw` with a `result_warning`, and a one-line warning on stderr.
//! Rows come in task order (first appearance in the sweep) and cover the tasks of the
//! sweep's latest run (`--all`: every task ever run under it, e.g. the union of every grid
//! tried). Param columns come in the order the params were written (for a journal from
//! before that was recorded, the order the command template uses them). CSV gives bytes
//! and seconds as plain numbers for pandas and spreadsheets; the table shows them for
//! people.
//! A last `threads` column (JSON: a `threads` object) gives the thread variables each task's
//! latest attempt ran with, where the journal recorded them (schema v3 on).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

use crate::journal::display::{csv_field, duration_ms, opt_bytes, table};
use crate::journal::read::ResultRow;
use crate::journal::{self, Journal};
use crate::Outcome;

/// Version of the `results --format json` output.
pub const RESULTS_SCHEMA: u32 = 1;

/// Output format of `results`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for reading.
    Table,
    /// Comma-separated values with a header (RFC 4180 quoting).
    Csv,
    /// One JSON object with a "schema" field and a "tasks" array.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ResultsArgs {
    /// The sweep to export; without it, the only one or the one run last.
    #[arg(value_name = "SWEEP")]
    pub sweep: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Every task ever run under the sweep, not only those its latest run asked for.
    #[arg(long)]
    pub all: bool,

    /// The journal file [default: $RAMGUARD_JOURNAL, else ./.ramguard/journal.db].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
}

const FIXED: [&str; 9] = [
    "task", "state", "attempts", "peak", "duration", "exit", "code", "signal", "reason",
];

/// Exports the sweep's results.
pub fn run(args: &ResultsArgs) -> Result<Outcome> {
    let path = journal::resolve_path(args.journal.as_deref());
    let j = Journal::open_existing(&path)?;
    let sweep = j.resolve_sweep(args.sweep.as_deref())?;
    let mut rows = Vec::with_capacity(usize::try_from(sweep.counts_all.total).unwrap_or(0));
    j.for_each_result_scoped(sweep.id, args.all, |r| {
        rows.push(r);
        Ok(())
    })?;
    let warned = rows.iter().filter(|r| r.result_warning.is_some()).count();
    // The thread variables each task's latest attempt ran with (journals from v2 on).
    let threads = j.threads_by_task(sweep.id)?;
    let format = if args.json { Format::Json } else { args.format };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        Format::Json => {
            let tasks: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let mut v = row_json(r);
                    if let (Some(t), Value::Object(m)) = (threads.get(&r.key), &mut v) {
                        m.insert("threads".into(), json!(t));
                    }
                    v
                })
                .collect();
            let v = json!({
                "schema": RESULTS_SCHEMA,
                "journal": path.display().to_string(),
                "sweep": sweep.name,
                "tasks": tasks,
            });
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)?;
        }
        Format::Csv | Format::Table => {
            let order = column_order(&sweep.param_order, &sweep.template);
            let (mut header, mut cells) = flatten(&rows, format == Format::Csv, &order);
            if !threads.is_empty() {
                header.push("threads".into());
                for (r, c) in rows.iter().zip(cells.iter_mut()) {
                    let t = threads.get(&r.key);
                    c.push(t.map(journal::task_env::compact).unwrap_or_default());
                }
            }
            if format == Format::Csv {
                let line = |cs: &[String]| {
                    cs.iter()
                        .map(|c| csv_field(c))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                writeln!(out, "{}", line(&header))?;
                for r in &cells {
                    writeln!(out, "{}", line(r))?;
                }
            } else if cells.is_empty() {
                writeln!(out, "sweep '{}' has no tasks yet", sweep.name)?;
            } else {
                out.write_all(table(&header, &cells).as_bytes())?;
            }
        }
    }
    out.flush()?;
    if warned > 0 {
        eprintln!(
            "warning: {warned} task(s) wrote a result file that is not valid JSON; its text is kept in result_raw"
        );
    }
    Ok(Outcome::Success)
}

fn row_json(r: &ResultRow) -> Value {
    let mut v = json!({
        "task": r.key, "params": r.params, "state": r.state, "attempts": r.attempts,
        "peak": r.peak, "duration_ms": r.duration_ms, "exit": r.class,
        "code": r.code, "signal": r.signal, "reason": r.reason, "result": r.result,
    });
    if let Value::Object(m) = &mut v {
        m.insert("peak_parts".into(), json!(r.peak_parts));
    }
    if let (Some(left), Value::Object(m)) = (&r.shm_left, &mut v) {
        m.insert("shm_left".into(), left.clone());
    }
    if let (Some(raw), Value::Object(m)) = (&r.result_raw, &mut v) {
        m.insert("result_raw".into(), json!(raw));
    }
    if let (Some(w), Value::Object(m)) = (&r.result_warning, &mut v) {
        m.insert("result_warning".into(), json!(w));
    }
    v
}

/// A JSON value as one cell: strings bare, null empty, others as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Flattens a result into `(column, cell)` pairs under `prefix`.
fn flatten_value(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                flatten_value(&format!("{prefix}.{k}"), x, out);
            }
        }
        other => out.push((prefix.to_string(), cell(other))),
    }
}

/// Named cells of one row: `(column, text)`.
type Cells = Vec<(String, String)>;

/// Pushes `name` to `cols` if absent.
fn add_col(cols: &mut Vec<String>, name: &str) {
    if !cols.iter().any(|c| c == name) {
        cols.push(name.to_string());
    }
}

/// The order of param columns: as recorded, else the names the template uses, in order.
fn column_order(recorded: &[String], template: &str) -> Vec<String> {
    if !recorded.is_empty() {
        return recorded.to_vec();
    }
    let mut out: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let inner = &after[..close];
        let name = inner.trim_end_matches(['/', '.']);
        if !name.is_empty() && name != "#" && !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
        rest = &after[close + 1..];
    }
    out
}

/// Builds the header and the rows of cells; `raw` gives bytes and seconds as plain numbers;
/// params named in `order` come first, in that order, the others after them by name.
fn flatten(rows: &[ResultRow], raw: bool, order: &[String]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut param_cols: Vec<String> = Vec::new();
    let mut result_cols: Vec<String> = Vec::new();
    let mut flat: Vec<(Cells, Cells)> = Vec::with_capacity(rows.len());
    let mut any_warning = false;
    for r in rows {
        let mut ps = Vec::new();
        match &r.params {
            Value::Object(m) => {
                for (k, v) in m {
                    let name = if FIXED.contains(&k.as_str()) || k.starts_with("result") {
                        format!("param.{k}")
                    } else {
                        k.clone()
                    };
                    add_col(&mut param_cols, &name);
                    ps.push((name, cell(v)));
                }
            }
            other => {
                add_col(&mut param_cols, "params");
                ps.push(("params".into(), cell(other)));
            }
        }
        let mut rs = Vec::new();
        if let Some(v) = &r.result {
            flatten_value("result", v, &mut rs);
        }
        if let Some(raw_text) = &r.result_raw {
            rs.push(("result_raw".into(), raw_text.clone()));
        }
        if let Some(w) = &r.result_warning {
            any_warning = true;
            rs.push(("result_warning".into(), w.clone()));
        }
        for (c, _) in &rs {
            if c != "result_raw" && c != "result_warning" {
                add_col(&mut result_cols, c);
            }
        }
        flat.push((ps, rs));
    }
    let rank = |c: &String| {
        let bare = c.strip_prefix("param.").unwrap_or(c);
        order.iter().position(|o| o == bare).unwrap_or(usize::MAX)
    };
    // Stable: names not in `order` keep their (alphabetical) order after the others.
    param_cols.sort_by_key(rank);
    if any_warning {
        result_cols.push("result_raw".into());
        result_cols.push("result_warning".into());
    }
    let mut header: Vec<String> = vec!["task".into()];
    header.extend(param_cols.iter().cloned());
    let fixed_names: [&str; 8] = if raw {
        [
            "state",
            "attempts",
            "peak_bytes",
            "duration_s",
            "exit",
            "code",
            "signal",
            "reason",
        ]
    } else {
        [
            "state", "attempts", "peak", "duration", "exit", "code", "signal", "reason",
        ]
    };
    header.extend(fixed_names.iter().map(|s| s.to_string()));
    header.extend(result_cols.iter().cloned());
    let opt = |v: Option<String>| v.unwrap_or_default();
    let mut cells = rows
        .iter()
        .zip(flat)
        .map(|(r, (ps, rs))| {
            let mut c = vec![if raw {
                r.key.clone()
            } else {
                readable_key(&r.key)
            }];
            for p in &param_cols {
                c.push(
                    ps.iter()
                        .find(|(k, _)| k == p)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                );
            }
            c.push(r.state.clone());
            c.push(r.attempts.to_string());
            if raw {
                c.push(opt(r.peak.map(|p| p.to_string())));
                c.push(opt(r
                    .duration_ms
                    .map(|d| format!("{:.3}", d as f64 / 1000.0))));
            } else {
                c.push(if r.peak.is_some() {
                    opt_bytes(r.peak)
                } else {
                    String::new()
                });
                c.push(opt(r.duration_ms.map(duration_ms)));
            }
            c.push(opt(r.class.clone()));
            c.push(opt(r.code.map(|x| x.to_string())));
            c.push(opt(r.signal.map(|x| x.to_string())));
            // The reason of a success says nothing; keep the column for failures.
            let reason = if r.state == "done" {
                String::new()
            } else {
                opt(r.reason.clone())
            };
            c.push(match shm_left_words(r.shm_left.as_ref()) {
                Some(left) if reason.is_empty() => left,
                Some(left) => format!("{reason}; {left}"),
                None => reason,
            });
            for col in &result_cols {
                c.push(
                    rs.iter()
                        .find(|(k, _)| k == col)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                );
            }
            c
        })
        .collect::<Vec<Vec<String>>>();
    // A task whose params are all columns already is named by them: a `task` column would
    // repeat them (`1=150M  150M`). Raw command lines keep it; CSV keeps the exact key.
    let named_by_params = rows.iter().all(|r| r.params.is_object());
    if !raw && named_by_params && !rows.is_empty() {
        header.remove(0);
        for row in &mut cells {
            row.remove(0);
        }
    }
    (header, cells)
}

/// A task's identity as a person reads it in a table: `lam=0 beta=3.1` for params, the
/// command line for raw commands; at most 60 characters. CSV and JSON keep the exact key.
fn readable_key(key: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(key) {
        Ok(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Ok(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => key.to_string(),
    };
    if text.chars().count() > 60 {
        let mut t: String = text.chars().take(59).collect();
        t.push('…');
        t
    } else {
        text
    }
}

/// "left 2 files in /dev/shm (600 MiB): a, b" for the files an attempt left behind.
fn shm_left_words(left: Option<&Value>) -> Option<String> {
    let files = left?.as_array()?;
    if files.is_empty() {
        return None;
    }
    let total: u64 = files.iter().filter_map(|f| f["allocated"].as_u64()).sum();
    let names: Vec<&str> = files.iter().filter_map(|f| f["name"].as_str()).collect();
    Some(format!(
        "left {} file{} in /dev/shm ({}): {}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        ramguard_core::Bytes(total),
        names.join(", ")
    ))
}
