//! Sweep files: a TOML file naming the command, its parameters and run options, so a sweep
//! is rerun (and resumed) with `ramguard run sweep.toml` instead of a long command line.
//!
//! ```toml
//! name = "t3b-lambda"
//! command = ["python", "t3b.py", "--lam", "{lam}", "--beta", "{beta}"]  # or one string
//! [grid]                       # or `tasks = [{ lam = 0, beta = 3.0 }, ...]`, or `repeat = 8`
//! lam = [0, 1e-10, 1e-8]
//! beta = "3.0..3.3:0.1"
//! [options]                    # any run option; command-line flags override
//! jobs = 4
//! mem = "4G"
//! ```
//!
//! This module only reads and validates: expansion into tasks is `ramguard_core::tasks`,
//! and merging options with the command line is the `run` command's job. Numbers become
//! parameter values as the user wrote them (`1e-10` stays `1e-10`, not `0.0000000001`),
//! because the value is both what the program receives and part of the task's identity;
//! to get the written text the parser keeps every value's byte span. Grid axes keep the
//! order they have in the file. Every error names the file, the line and the key.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use ramguard_core::tasks::{self, TaskDef, Template};
use ramguard_core::units::{parse_duration, parse_size};
use ramguard_core::{Bytes, SizeSpec};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A loaded sweep file: its tasks are expanded and validated.
#[derive(Debug, Clone)]
pub struct SweepFile {
    /// The sweep's name, when the file gives one.
    pub name: Option<String>,
    /// The command template.
    pub template: Template,
    /// Whether the command is shell text (`shell = true`).
    pub shell: bool,
    /// The expanded tasks, in file order.
    pub tasks: Vec<TaskDef>,
    /// Run options from `[options]`; command-line flags override them.
    pub options: SweepOptions,
}

/// Run options from a sweep file's `[options]` table; `None` where the file is silent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepOptions {
    /// Most tasks running at once.
    pub jobs: Option<usize>,
    /// Memory budget for the whole sweep.
    pub mem: Option<SizeSpec>,
    /// Memory kept free for the rest of the machine.
    pub reserve: Option<SizeSpec>,
    /// Predicted peak of a task before anything was measured.
    pub estimate: Option<Bytes>,
    /// Per-task memory cap.
    pub task_mem: Option<Bytes>,
    /// Per-task wall-clock limit.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Option<Duration>,
    /// Retries of a failed task.
    pub retries: Option<u32>,
    /// Thread cap injected into each task's environment.
    pub threads: Option<u32>,
    /// `recycle = true` or a number of restarts per minute (`--recycle[=N]`).
    pub recycle: Option<u32>,
    /// `--max-age`.
    pub max_age: Option<Duration>,
    /// `--retry-on`, as a list or a comma-separated string.
    pub retry_on: Option<ramguard_core::policy::recycle::RetryOn>,
    /// `--stop-signal`.
    pub stop_signal: Option<crate::cli::run::StopSignal>,
}

/// Reads, parses and expands a sweep file; errors read "sweep.toml: line 3: ...".
pub fn load(path: &Path) -> Result<SweepFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sweep file {}", path.display()))?;
    parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parses a sweep file's text; the error does not name the file (see [`load`]).
pub fn parse(text: &str) -> Result<SweepFile, SweepError> {
    let raw: RawSweep = toml::from_str(text).map_err(|e| SweepError {
        line: e.span().map(|s| line_of(text, s.start)),
        message: with_hint(e.message().trim_end()),
    })?;
    Loader { text }.build(raw)
}

/// Adds advice to the few serde messages that do not say what to write.
fn with_hint(message: &str) -> String {
    if message.starts_with("missing field `command`") {
        format!("{message}; hint: add command = [\"program\", \"arg\", \"{{param}}\"]")
    } else {
        message.to_string()
    }
}

/// A problem in a sweep file, with the 1-based line it is on when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepError {
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong, naming the key and value.
    pub message: String,
}

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SweepError {}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    name: Option<String>,
    command: Spanned<RawCommand>,
    shell: Option<bool>,
    grid: Option<Spanned<RawGrid>>,
    tasks: Option<Spanned<Vec<RawTask>>>,
    repeat: Option<Spanned<i64>>,
    options: Option<RawOptions>,
}

/// One entry of `tasks = [...]`: parameter names to values, with spans.
type RawTask = Spanned<BTreeMap<String, Spanned<toml::Value>>>;

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Line(String),
    Argv(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    jobs: Option<Spanned<toml::Value>>,
    mem: Option<Spanned<toml::Value>>,
    reserve: Option<Spanned<toml::Value>>,
    estimate: Option<Spanned<toml::Value>>,
    task_mem: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<toml::Value>>,
    grace: Option<Spanned<toml::Value>>,
    retries: Option<Spanned<toml::Value>>,
    threads: Option<Spanned<toml::Value>>,
    recycle: Option<Spanned<toml::Value>>,
    max_age: Option<Spanned<toml::Value>>,
    retry_on: Option<Spanned<toml::Value>>,
    stop_signal: Option<Spanned<toml::Value>>,
}

/// `[grid]` as `(name, value)` pairs; reordered to file order by span after parsing.
struct RawGrid(Vec<(String, Spanned<GridValue>)>);

/// One grid axis: a list of values, or one value (only a range string is accepted).
enum GridValue {
    List(Vec<Spanned<toml::Value>>),
    One(toml::Value),
}

impl<'de> Deserialize<'de> for RawGrid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawGrid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of NAME = [values] or NAME = \"START..STOP:STEP\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawGrid, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    out.push((key, map.next_value()?));
                }
                Ok(RawGrid(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for GridValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GridValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of values, a number, a string or a range string")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GridValue, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(GridValue::List(out))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GridValue, E> {
                Ok(GridValue::One(toml::Value::String(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<GridValue, E> {
                Ok(GridValue::One(toml::Value::String(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GridValue, E> {
                Ok(GridValue::One(toml::Value::Integer(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GridValue, E> {
                i64::try_from(v)
                    .map(|v| GridValue::One(toml::Value::Integer(v)))
                    .map_err(|_| E::custom(format!("integer {v} is too large")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<GridValue, E> {
                Ok(GridValue::One(toml::Value::Float(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<GridValue, E> {
                Ok(GridValue::One(toml::Value::Boolean(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Returns true if and only if `s` is a plain decimal integer as TOML and Rust both read it.
fn is_plain_int(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// Returns true if and only if `s` is a plain decimal float (`1.5`, `1e-10`, `-2.5E3`).
fn is_plain_float(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exp) = match d.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (d, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((i, f)) => digits(i) && digits(f),
        None => digits(mantissa),
    };
    mantissa_ok && exp.into_iter().all(digits)
}

/// Checks used by [`parse`] once the TOML itself is well formed.
struct Loader<'a> {
    text: &'a str,
}

impl Loader<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> SweepError {
        SweepError {
            line: Some(line_of(self.text, span.start)),
            message: message.into(),
        }
    }

    /// The value as a parameter string, numbers as written in the file.
    fn value_text(&self, v: &Spanned<toml::Value>, key: &str) -> Result<String, SweepError> {
        let written = self.text.get(v.span()).unwrap_or("").trim();
        let written = written.strip_prefix('+').unwrap_or(written);
        match v.get_ref() {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) if is_plain_int(written) => Ok(written.to_string()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(_) if is_plain_float(written) => Ok(written.to_string()),
            toml::Value::Float(f) => Ok(format!("{f:?}")),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            toml::Value::Datetime(d) => Ok(d.to_string()),
            other => Err(self.err(
                v.span(),
                format!(
                    "{key}: a value must be a string, number or boolean, not {}",
                    other.type_str()
                ),
            )),
        }
    }

    fn build(&self, raw: RawSweep) -> Result<SweepFile, SweepError> {
        let cmd_span = raw.command.span();
        let argv = match raw.command.into_inner() {
            RawCommand::Argv(argv) => argv,
            // Shell text stays one piece, so its own quotes and redirections survive.
            RawCommand::Line(line) if raw.shell == Some(true) && !line.trim().is_empty() => {
                vec![line]
            }
            RawCommand::Line(line) => tasks::split_words(&line)
                .map_err(|e| self.err(cmd_span.clone(), format!("command: {e}")))?,
        };
        if argv.is_empty() {
            return Err(self.err(
                cmd_span,
                "command is empty: give the program and its arguments",
            ));
        }
        let template = Template::parse(&argv)
            .map_err(|e| self.err(cmd_span.clone(), format!("command: {e}")))?;
        let shell = raw.shell.unwrap_or(false);
        let sources: Vec<(&str, Range<usize>)> = [
            raw.grid.as_ref().map(|g| ("[grid]", g.span())),
            raw.tasks.as_ref().map(|t| ("tasks", t.span())),
            raw.repeat.as_ref().map(|r| ("repeat", r.span())),
        ]
        .into_iter()
        .flatten()
        .collect();
        const ONE_SOURCE: &str =
            "give exactly one task source: a [grid] table, tasks = [{ ... }, ...] or repeat = N";
        match sources.as_slice() {
            [] => {
                return Err(SweepError {
                    line: None,
                    message: ONE_SOURCE.into(),
                })
            }
            [_] => {}
            [(a, _), (b, span), ..] => {
                return Err(self.err(span.clone(), format!("{ONE_SOURCE}, not both {a} and {b}")))
            }
        }
        // Errors of rendering point at the command, where the placeholders are.
        let at_command = |e: tasks::TaskError| self.err(cmd_span.clone(), e.to_string());
        let task_defs = if let Some(g) = raw.grid {
            let grid_span = g.span();
            let mut entries = g.into_inner().0;
            entries.sort_by_key(|(_, v)| v.span().start);
            let mut axes = Vec::with_capacity(entries.len());
            for (name, value) in entries {
                axes.push(self.axis(name, value)?);
            }
            if axes.is_empty() {
                return Err(self.err(grid_span, "[grid] is empty: add NAME = [values]"));
            }
            tasks::grid(&template, &axes, shell).map_err(at_command)?
        } else if let Some(list) = raw.tasks {
            let list_span = list.span();
            let list = list.into_inner();
            if list.is_empty() {
                return Err(self.err(
                    list_span,
                    "tasks is empty: add { name = value, ... } tables",
                ));
            }
            let mut sets = Vec::with_capacity(list.len());
            for (i, table) in list.iter().enumerate() {
                let mut params = Vec::with_capacity(table.get_ref().len());
                for (k, v) in table.get_ref() {
                    if !tasks::is_valid_name(k) {
                        return Err(self.err(
                            table.span(),
                            format!(
                                "tasks: '{k}' is not a parameter name (use letters, digits, _ - .)"
                            ),
                        ));
                    }
                    params.push((k.clone(), self.value_text(v, &format!("tasks.{k}"))?));
                }
                // Render here first so that an error names the task's own line.
                template
                    .render(&params, i + 1, shell)
                    .map_err(|e| self.err(table.span(), format!("task {}: {e}", i + 1)))?;
                sets.push(params);
            }
            tasks::from_params(&template, sets, shell).map_err(at_command)?
        } else if let Some(n) = raw.repeat {
            let count = usize::try_from(*n.get_ref())
                .ok()
                .filter(|&c| c >= 1)
                .ok_or_else(|| {
                    self.err(
                        n.span(),
                        format!("repeat = {}: must be at least 1", n.get_ref()),
                    )
                })?;
            tasks::repeat(&template, count, shell).map_err(|e| self.err(n.span(), e.to_string()))?
        } else {
            unreachable!("exactly one source was checked above")
        };
        let options = match raw.options {
            Some(o) => self.options(o)?,
            None => SweepOptions::default(),
        };
        Ok(SweepFile {
            name: raw.name,
            template,
            shell,
            tasks: task_defs,
            options,
        })
    }

    fn axis(
        &self,
        name: String,
        value: Spanned<GridValue>,
    ) -> Result<(String, Vec<String>), SweepError> {
        let span = value.span();
        if name == tasks::SEQ || !tasks::is_valid_name(&name) {
            return Err(self.err(
                span,
                format!("grid: '{name}' is not a parameter name (use letters, digits, _ - .)"),
            ));
        }
        let key = format!("grid.{name}");
        let values = match value.into_inner() {
            GridValue::List(items) => {
                if items.is_empty() {
                    return Err(self.err(span, format!("{key} is empty: give at least one value")));
                }
                items
                    .iter()
                    .map(|v| self.value_text(v, &key))
                    .collect::<Result<Vec<_>, _>>()?
            }
            GridValue::One(toml::Value::String(s)) if tasks::looks_like_range(&s) => {
                tasks::parse_range(&s).map_err(|e| self.err(span, format!("{key}: {e}")))?
            }
            // A lone value is almost always a list written without brackets
            // (`lam = "0,1e-10"`, `seed = 5`): refused rather than run as one point.
            GridValue::One(v) => {
                let text = self.value_text(&Spanned::new(span.clone(), v), &key)?;
                return Err(self.err(
                    span,
                    format!(
                        "{key} is one value, not a list of values; hint: write {name} = [{}] (or a range \"START..STOP:STEP\")",
                        text.split(',').map(|t| format!("{:?}", t.trim())).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        };
        Ok((name, values))
    }

    fn options(&self, o: RawOptions) -> Result<SweepOptions, SweepError> {
        Ok(SweepOptions {
            jobs: self.count(o.jobs, "jobs", 1)?.map(|n| n as usize),
            retries: self.count(o.retries, "retries", 0)?.map(|n| n as u32),
            threads: self.count(o.threads, "threads", 1)?.map(|n| n as u32),
            mem: self.size_spec(o.mem, "mem")?,
            reserve: self.size_spec(o.reserve, "reserve")?,
            estimate: self.bytes(o.estimate, "estimate")?,
            task_mem: self.bytes(o.task_mem, "task_mem")?,
            timeout: self.duration(o.timeout, "timeout")?,
            grace: self.duration(o.grace, "grace")?,
            recycle: self.recycle(o.recycle)?,
            max_age: self.duration(o.max_age, "max_age")?,
            retry_on: self.retry_on(o.retry_on)?,
            stop_signal: self.stop_signal(o.stop_signal)?,
        })
    }

    /// `recycle = true | false | N` (restarts per minute, at least 1).
    fn recycle(&self, v: Option<Spanned<toml::Value>>) -> Result<Option<u32>, SweepError> {
        use ramguard_core::policy::recycle::DEFAULT_RECYCLES_PER_MINUTE;
        match v.as_ref().map(|v| v.get_ref()) {
            None | Some(toml::Value::Boolean(false)) => Ok(None),
            Some(toml::Value::Boolean(true)) => Ok(Some(DEFAULT_RECYCLES_PER_MINUTE)),
            Some(_) => Ok(self.count(v, "recycle", 1)?.map(|n| n as u32)),
        }
    }

    /// `retry_on = ["failed", "timeout"]` or `"failed,timeout"`.
    fn retry_on(
        &self,
        v: Option<Spanned<toml::Value>>,
    ) -> Result<Option<ramguard_core::policy::recycle::RetryOn>, SweepError> {
        let Some(v) = v else { return Ok(None) };
        let text = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap_or("?").to_string())
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(self.err(
                    v.span(),
                    format!(
                    "options.retry_on = {other}: expected a list like [\"failed\", \"timeout\"]"
                ),
                ))
            }
        };
        text.parse()
            .map(Some)
            .map_err(|e| self.err(v.span(), format!("options.retry_on: {e}")))
    }

    /// `stop_signal = "INT"`.
    fn stop_signal(
        &self,
        v: Option<Spanned<toml::Value>>,
    ) -> Result<Option<crate::cli::run::StopSignal>, SweepError> {
        let Some(v) = v else { return Ok(None) };
        let text = self.unit_text(&v, "stop_signal", "a signal name like \"INT\"")?;
        crate::cli::run::parse_stop_signal(&text)
            .map(Some)
            .map_err(|e| self.err(v.span(), format!("options.stop_signal: {e}")))
    }

    /// A whole-number option of at least `min` (and at most `u32::MAX`).
    fn count(
        &self,
        v: Option<Spanned<toml::Value>>,
        key: &str,
        min: i64,
    ) -> Result<Option<i64>, SweepError> {
        let Some(v) = v else { return Ok(None) };
        match v.get_ref() {
            toml::Value::Integer(n) if (min..=u32::MAX as i64).contains(n) => Ok(Some(*n)),
            toml::Value::Integer(n) if *n < min => Err(self.err(
                v.span(),
                format!("options.{key} = {n}: must be at least {min}"),
            )),
            toml::Value::Integer(n) => Err(self.err(
                v.span(),
                format!("options.{key} = {n}: must be at most {}", u32::MAX),
            )),
            other => Err(self.err(
                v.span(),
                format!(
                    "options.{key} = {other}: expected a whole number, like {key} = {}",
                    min.max(1)
                ),
            )),
        }
    }

    /// The option's text for the unit parsers: strings as given, integers as written.
    fn unit_text(
        &self,
        v: &Spanned<toml::Value>,
        key: &str,
        kind: &str,
    ) -> Result<String, SweepError> {
        match v.get_ref() {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(_) | toml::Value::Float(_) => self.value_text(v, key),
            other => Err(self.err(
                v.span(),
                format!("options.{key}: expected {kind}, not {}", other.type_str()),
            )),
        }
    }

    fn size_spec(
        &self,
        v: Option<Spanned<toml::Value>>,
        key: &str,
    ) -> Result<Option<SizeSpec>, SweepError> {
        let Some(v) = v else { return Ok(None) };
        let text = self.unit_text(&v, key, "a size like \"4G\" or \"80%\"")?;
        text.parse::<SizeSpec>()
            .map(Some)
            .map_err(|e| self.err(v.span(), format!("options.{key} = \"{text}\": {e}")))
    }

    fn bytes(
        &self,
        v: Option<Spanned<toml::Value>>,
        key: &str,
    ) -> Result<Option<Bytes>, SweepError> {
        let Some(v) = v else { return Ok(None) };
        let text = self.unit_text(&v, key, "a size like \"500M\"")?;
        parse_size(&text)
            .map(Some)
            .map_err(|e| self.err(v.span(), format!("options.{key} = \"{text}\": {e}")))
    }

    fn duration(
        &self,
        v: Option<Spanned<toml::Value>>,
        key: &str,
    ) -> Result<Option<Duration>, SweepError> {
        let Some(v) = v else { return Ok(None) };
        let text = self.unit_text(&v, key, "a duration like \"1h\" or \"30s\"")?;
        parse_duration(&text)
            .map(Some)
            .map_err(|e| self.err(v.span(), format!("options.{key} = \"{text}\": {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(file: &SweepFile, i: usize) -> Vec<&str> {
        file.tasks.iter().map(|t| t.argv[i].as_str()).collect()
    }

    #[test]
    fn number_shapes() {
        for ok in ["1.5", "-2.50", "1e-10", "1.5E+3", "7"] {
            assert!(is_plain_float(ok), "{ok}");
        }
        for no in ["1_0.5", "inf", "nan", ".5", "1.", "1e", "0x1"] {
            assert!(!is_plain_float(no), "{no}");
        }
        assert!(is_plain_int("-12") && !is_plain_int("1_000") && !is_plain_int("+1"));
    }

    #[test]
    fn line_numbers_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn a_scalar_grid_axis_is_refused_and_a_range_string_expands() {
        // Regression (issue 19): `lam = "0,1e-10"` ran as one point named "0,1e-10".
        let err = parse("command = \"x {a}\"\n[grid]\na = \"0,1e-10\"\n").unwrap_err();
        assert!(
            err.to_string().contains("grid.a is one value, not a list"),
            "{err}"
        );
        assert!(err.to_string().contains("a = [\"0\", \"1e-10\"]"), "{err}");
        assert!(parse("command = \"x {a}\"\n[grid]\na = 5\n").is_err());
        let file = parse("command = \"x {b} {c}\"\n[grid]\nb = \"1..5:2\"\nc = [false]\n").unwrap();
        assert_eq!(values(&file, 1), ["1", "3", "5"]);
        assert_eq!(values(&file, 2), ["false"; 3]);
    }

    #[test]
    fn floats_without_written_form_use_shortest_repr() {
        let file = parse("command = [\"x\", \"{v}\"]\n[grid]\nv = [1_0.5, inf]\n").unwrap();
        assert_eq!(values(&file, 1), ["10.5", "inf"]);
    }

    #[test]
    fn errors_without_a_file_name() {
        let err = parse("command = [\"x\"]\n\nrepeat = -1\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: repeat = -1: must be at least 1");
        // Regression: a count too large said "must be at least 1".
        let err =
            parse("command = [\"x\"]\nrepeat = 1\n[options]\nrecycle = 99999999999\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 4: options.recycle = 99999999999: must be at most 4294967295"
        );
        let err = parse("command = [\"x\", \"{a}\"]\n[grid]\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: [grid] is empty: add NAME = [values]"
        );
        let err = parse("command = [\"x\", \"{a}\"]\ntasks = []\n").unwrap_err();
        assert!(
            err.to_string().starts_with("line 2: tasks is empty"),
            "{err}"
        );
        let err = parse("command = [\"x\"]\nrepeat = 1\n[options]\nmem = true\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 4: options.mem: expected a size like \"4G\" or \"80%\", not boolean"
        );
    }
}
