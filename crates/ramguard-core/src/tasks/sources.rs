//! The task sources: `:::` lists, `--grid` axes and ranges, task lines, `--repeat`, and
//! explicit parameter sets (sweep files).
//!
//! Products are cartesian with the first list or axis varying slowest, as GNU parallel
//! does. Every source refuses to expand to nothing and to more than [`MAX_TASKS`] tasks,
//! checking the count before building anything so a typo cannot exhaust memory.

use super::inputs::{linked_product, ValueList};
use super::template::{is_valid_name, name_list, SEQ};
use super::{TaskDef, TaskError, Template};

/// The most tasks one source may expand to.
pub const MAX_TASKS: usize = 1_000_000;

/// The accepted `--grid` forms, quoted in errors.
const GRID_FORMS: &str = "expected NAME=V1,V2 or NAME=START..STOP:STEP";

/// Splits `CMD ARGS ::: a b ::: c` into the template and the lists.
pub fn split_lists(args: &[String]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut parts = args.split(|a| a == ":::");
    let template = parts.next().unwrap_or_default().to_vec();
    let lists = parts.map(<[String]>::to_vec).collect();
    (template, lists)
}

/// Splits a command line into argv as a POSIX shell splits words: quotes and backslashes
/// are honoured, nothing is expanded (`$HOME` stays `$HOME`).
pub fn split_words(line: &str) -> Result<Vec<String>, TaskError> {
    shell_words::split(line).map_err(|_| TaskError::Quote(line.to_string()))
}

/// The number of combinations of lists of these lengths, refusing more than [`MAX_TASKS`].
pub(super) fn product_len(lens: &[usize], what: &str) -> Result<usize, TaskError> {
    let count = lens
        .iter()
        .fold(1u128, |acc, &n| acc.saturating_mul(n as u128));
    if count > MAX_TASKS as u128 {
        return Err(TaskError::TooMany {
            what: what.to_string(),
            count,
        });
    }
    Ok(count as usize)
}

/// Visits every combination of one value per axis, the first axis varying slowest.
pub(super) fn for_each_combination(
    axes: &[(String, Vec<String>)],
    mut f: impl FnMut(Vec<(String, String)>) -> Result<(), TaskError>,
) -> Result<(), TaskError> {
    let mut idx = vec![0usize; axes.len()];
    loop {
        let params = axes
            .iter()
            .zip(&idx)
            .map(|((name, values), &i)| (name.clone(), values[i].clone()))
            .collect();
        f(params)?;
        // Advance the odometer from the last axis.
        let mut pos = axes.len();
        loop {
            if pos == 0 {
                return Ok(());
            }
            pos -= 1;
            idx[pos] += 1;
            if idx[pos] < axes[pos].1.len() {
                break;
            }
            idx[pos] = 0;
        }
    }
}

/// The cartesian product of the `:::` lists; with no placeholder in the template the values
/// are appended as last arguments, one per list. (See [`super::linked_product`] for
/// `:::+` and `::::`.)
pub fn cartesian(
    template: &Template,
    lists: &[Vec<String>],
    shell: bool,
) -> Result<Vec<TaskDef>, TaskError> {
    let lists: Vec<ValueList> = lists
        .iter()
        .enumerate()
        .map(|(i, l)| ValueList {
            values: l.clone(),
            linked: false,
            origin: format!("::: list {}", i + 1),
        })
        .collect();
    linked_product(template, &lists, shell)
}

/// Returns true if and only if `text` is meant as a `START..STOP[:STEP]` range: it holds
/// `..` and what precedes it is a number (so `../data` stays a plain value).
pub fn looks_like_range(text: &str) -> bool {
    text.split_once("..")
        .is_some_and(|(start, _)| start.trim().parse::<f64>().is_ok())
}

/// Digits after the decimal point that `text` (a number as written) needs.
fn decimals(text: &str) -> usize {
    let t = text.trim().to_ascii_lowercase();
    let (mantissa, exp) = match t.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i64>().unwrap_or(0)),
        None => (t.clone(), 0),
    };
    let frac = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i64);
    (frac - exp).clamp(0, 15) as usize
}

/// Formats `v` with `max` decimals, trimming trailing zeros down to `min` decimals.
fn format_fixed(v: f64, max: usize, min: usize) -> String {
    let mut s = format!("{v:.max$}");
    if max > min {
        let keep = s.len() - (max - min);
        while s.len() > keep && s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s.remove(0);
    }
    s
}

/// Expands `START..STOP[:STEP]` (STEP defaults to 1; STOP included when a step lands on it
/// within float tolerance) into values formatted without float noise.
pub fn parse_range(text: &str) -> Result<Vec<String>, TaskError> {
    let err = |reason: &str| TaskError::Range {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let Some((start_s, rest)) = text.split_once("..") else {
        return Err(err("expected START..STOP or START..STOP:STEP"));
    };
    let (stop_s, step_s) = match rest.split_once(':') {
        Some((stop, step)) => (stop, step),
        None => (rest, "1"),
    };
    let (start_s, stop_s, step_s) = (start_s.trim(), stop_s.trim(), step_s.trim());
    let num = |s: &str, what: &str| -> Result<f64, TaskError> {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| err(&format!("{what} '{s}' is not a number")))
    };
    let (start, stop, step) = (
        num(start_s, "START")?,
        num(stop_s, "STOP")?,
        num(step_s, "STEP")?,
    );
    if step == 0.0 {
        return Err(err("the step must not be 0"));
    }
    if (stop - start) * step < 0.0 {
        return Err(err(
            "the range is empty: the step goes away from STOP (use a negative step to count down)",
        ));
    }
    let too_many = |count: u128| TaskError::TooMany {
        what: format!("the range '{text}'"),
        count,
    };
    // Integers are exact: no tolerance, no formatting questions.
    if let (Ok(a), Ok(b), Ok(s)) = (
        start_s.parse::<i64>(),
        stop_s.parse::<i64>(),
        step_s.parse::<i64>(),
    ) {
        let count = (b as i128 - a as i128) / s as i128 + 1;
        if count > MAX_TASKS as i128 {
            return Err(too_many(count as u128));
        }
        return Ok((0..count as i64).map(|i| (a + i * s).to_string()).collect());
    }
    let q = (stop - start) / step;
    let q = q + 1e-9 * q.abs().max(1.0);
    if q + 1.0 > MAX_TASKS as f64 {
        return Err(too_many(q as u128 + 1));
    }
    let count = q.floor() as usize + 1;
    let max = decimals(start_s)
        .max(decimals(stop_s))
        .max(decimals(step_s));
    let min = decimals(start_s);
    Ok((0..count)
        .map(|i| format_fixed(start + i as f64 * step, max, min))
        .collect())
}

/// Parses `NAME=V1,V2,...`, `NAME=START..STOP[:STEP]` or `NAME=VALUE` into an axis.
pub fn parse_grid(spec: &str) -> Result<(String, Vec<String>), TaskError> {
    let err = |reason: String| TaskError::Grid {
        spec: spec.to_string(),
        reason,
    };
    let Some((name, values)) = spec.split_once('=') else {
        return Err(err(GRID_FORMS.into()));
    };
    let name = name.trim();
    if name == SEQ || !is_valid_name(name) {
        return Err(err(format!(
            "'{name}' is not a parameter name (use letters, digits, _ - .); {GRID_FORMS}"
        )));
    }
    let values = values.trim();
    if values.is_empty() {
        return Err(err(format!("no values; {GRID_FORMS}")));
    }
    if values.contains(',') {
        let items: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if items.iter().any(String::is_empty) {
            return Err(err(format!("an empty value in the list; {GRID_FORMS}")));
        }
        return Ok((name.to_string(), items));
    }
    if looks_like_range(values) {
        return match parse_range(values) {
            Ok(v) => Ok((name.to_string(), v)),
            Err(TaskError::Range { reason, .. }) => Err(err(format!("{GRID_FORMS} ({reason})"))),
            Err(e) => Err(e),
        };
    }
    Ok((name.to_string(), vec![values.to_string()]))
}

/// The cartesian product of named axes, in the order given; the template must use them.
pub fn grid(
    template: &Template,
    axes: &[(String, Vec<String>)],
    shell: bool,
) -> Result<Vec<TaskDef>, TaskError> {
    if axes.is_empty() {
        return Err(TaskError::Empty("no grid axes were given".into()));
    }
    for (i, (name, values)) in axes.iter().enumerate() {
        if axes[..i].iter().any(|(n, _)| n == name) {
            return Err(TaskError::DuplicateParam(name.clone()));
        }
        if values.is_empty() {
            return Err(TaskError::Empty(format!(
                "grid axis '{name}' has no values"
            )));
        }
    }
    if !template.has_placeholders() {
        return Err(TaskError::NoPlaceholder {
            params: axes
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            first: axes[0].0.clone(),
        });
    }
    let lens: Vec<usize> = axes.iter().map(|(_, v)| v.len()).collect();
    let count = product_len(&lens, "the grid")?;
    let mut out = Vec::with_capacity(count);
    for_each_combination(axes, |params| {
        let argv = template.render(&params, out.len() + 1, shell)?;
        out.push(TaskDef::new(params, argv));
        Ok(())
    })?;
    Ok(out)
}

/// Tasks from explicit parameter sets (a sweep file's `tasks = [...]`); keys are sorted.
pub fn from_params(
    template: &Template,
    sets: Vec<Vec<(String, String)>>,
    shell: bool,
) -> Result<Vec<TaskDef>, TaskError> {
    if sets.is_empty() {
        return Err(TaskError::Empty("the task list is empty".into()));
    }
    if sets.len() > MAX_TASKS {
        return Err(TaskError::TooMany {
            what: "the task list".into(),
            count: sets.len() as u128,
        });
    }
    let mut out = Vec::with_capacity(sets.len());
    for mut params in sets {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(param_task(template, params, out.len() + 1, shell)?);
    }
    Ok(out)
}

/// Renders one task of named params, refusing a template that would ignore them.
fn param_task(
    template: &Template,
    params: Vec<(String, String)>,
    seq: usize,
    shell: bool,
) -> Result<TaskDef, TaskError> {
    if !params.is_empty() && !template.has_placeholders() {
        let first = params[0].0.clone();
        return Err(TaskError::NoPlaceholder {
            params: name_list(&params),
            first,
        });
    }
    let argv = template.render(&params, seq, shell)?;
    Ok(TaskDef::new(params, argv))
}

/// Converts one JSON params object into sorted `(name, value)` pairs.
fn json_params(line: &str) -> Result<Vec<(String, String)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON params: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("a line starting with '{' must be a JSON object of params".into());
    };
    let mut params = Vec::with_capacity(map.len());
    for (k, v) in map {
        if k == SEQ || !is_valid_name(&k) {
            return Err(format!(
                "'{k}' is not a parameter name (use letters, digits, _ - .)"
            ));
        }
        let text = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "param '{k}' must be a string, number or boolean, not {other}"
                ))
            }
        };
        params.push((k, text));
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(params)
}

/// Tasks from a task list, one a line; `#` comments and blank lines are skipped.
///
/// A line starting with `{` is a JSON object of params for `template`. Any other line is a
/// command line split into argv as a POSIX shell splits words (quotes honoured, nothing
/// expanded) when there is no template; with a template it is one value, `{}` or `{1}`
/// (appended when the template has no placeholder), as with GNU parallel reading stdin.
pub fn from_lines(
    text: &str,
    template: Option<&Template>,
    shell: bool,
) -> Result<Vec<TaskDef>, TaskError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let at = |message: String| TaskError::Line {
            line: line_no,
            message,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if out.len() >= MAX_TASKS {
            return Err(TaskError::TooMany {
                what: "the task list".into(),
                count: text.lines().count() as u128,
            });
        }
        let seq = out.len() + 1;
        let task = if line.starts_with('{') {
            let Some(template) = template else {
                return Err(at(
                    "a JSON params line needs a command template: add `-- CMD ARGS {name}`".into(),
                ));
            };
            let params = json_params(line).map_err(at)?;
            param_task(template, params, seq, shell).map_err(|e| at(e.to_string()))?
        } else if let Some(template) = template {
            let params = vec![("1".to_string(), line.to_string())];
            let argv = template
                .render_appending(&params, seq, shell)
                .map_err(|e| at(e.to_string()))?;
            TaskDef::new(params, argv)
        } else {
            let argv = shell_words::split(line).map_err(|_| at("unterminated quote".into()))?;
            if argv.is_empty() {
                return Err(at("the command line is empty".into()));
            }
            // GNU parallel runs every line through a shell: a line that needs one (`echo a >
            // f`, `a | b`, `$HOME`, `*.csv`) gets `sh -c`, a plain one runs as its words.
            let argv = if shell || needs_shell(line) {
                vec!["sh".into(), "-c".into(), line.to_string()]
            } else {
                argv
            };
            TaskDef::new(Vec::new(), argv)
        };
        out.push(task);
    }
    if out.is_empty() {
        return Err(TaskError::Empty(
            "the task list has no lines other than blanks and # comments".into(),
        ));
    }
    Ok(out)
}

/// Returns true if and only if a command line means something else to a shell than as
/// words: an unquoted redirection, pipe, list, subshell or glob (`> | & ; < ( ) * ?`), a
/// `~` starting a word, or a `$` or backquote outside single quotes.
pub fn needs_shell(line: &str) -> bool {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut word_start = true;
    for c in line.chars() {
        if escaped {
            escaped = false;
            word_start = false;
            continue;
        }
        match c {
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '$' | '`' if !single => return true,
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '*' | '?' if !single && !double => {
                return true
            }
            '~' if word_start && !single && !double => return true,
            _ => {}
        }
        word_start = c.is_whitespace() && !single && !double;
    }
    false
}

/// `n` tasks of one command; `{#}` is 1..=n and each task's identity is its number.
pub fn repeat(template: &Template, n: usize, shell: bool) -> Result<Vec<TaskDef>, TaskError> {
    if n == 0 {
        return Err(TaskError::Empty("--repeat 0".into()));
    }
    if n > MAX_TASKS {
        return Err(TaskError::TooMany {
            what: format!("--repeat {n}"),
            count: n as u128,
        });
    }
    (1..=n)
        .map(|i| {
            let params = vec![(SEQ.to_string(), i.to_string())];
            let argv = template.render(&params, i, shell)?;
            Ok(TaskDef::new(params, argv))
        })
        .collect()
}

#[cfg(test)]
mod tests;
