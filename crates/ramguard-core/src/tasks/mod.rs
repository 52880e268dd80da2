//! Task sources and command templates: from what the user typed to a list of [`TaskDef`]s.
//!
//! Every source (`:::`/`::::` lists, linked or not, `--grid`, `--tasks FILE`, `--repeat N`,
//! a sweep file) ends in the same shape: named parameters, the rendered argv, and an
//! identity key. The key is what
//! the journal remembers a task by, so it must not depend on the task's position in the
//! input: reordering a grid or a task file must map every task to the same key, and a rerun
//! then runs only what is missing. It is the canonical JSON of the parameters (an object,
//! keys sorted) or, for raw command lines, the JSON array of the argv.
//!
//! This module is pure: the binary reads files and stdin and hands the text in. It owns no
//! policy either; [`features`] only turns parameters into numbers for the predictor.

mod inputs;
mod sources;
mod template;

pub use inputs::{
    is_separator, linked_product, split_inputs, values_of_text, Input, InputSource, ValueList,
};
pub use sources::{
    cartesian, from_lines, from_params, grid, looks_like_range, parse_grid, parse_range, repeat,
    split_lists, split_words, MAX_TASKS,
};
pub use template::{is_valid_name, Template, SEQ};

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// One task ready to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDef {
    /// Named parameters in a stable order ("1","2",.. for ::: lists; grid names; JSON keys sorted; empty for raw command lines and --repeat except "#"; "1" for a --tasks line used as a template's value).
    pub params: Vec<(String, String)>,
    /// The argv to execute (already rendered).
    pub argv: Vec<String>,
    /// The task's identity: canonical JSON of params (object with sorted keys) when params is non-empty, else a JSON array of argv. Independent of the task's position in the input (except --repeat, whose identity is its number).
    pub key: String,
}

impl TaskDef {
    /// Builds a task from its parameters and argv, computing the identity key.
    pub fn new(params: Vec<(String, String)>, argv: Vec<String>) -> TaskDef {
        let key = identity_key(&params, &argv);
        TaskDef { params, argv, key }
    }

    /// The task a journal knows only by its identity key (the inverse of [`identity_key`]):
    /// its params for a params key, its argv for an argv key; enough to read its features.
    /// `None` for a key of another shape.
    pub fn from_key(key: &str) -> Option<TaskDef> {
        if key.starts_with('{') {
            let params: BTreeMap<String, String> = serde_json::from_str(key).ok()?;
            Some(TaskDef::new(params.into_iter().collect(), Vec::new()))
        } else {
            let argv: Vec<String> = serde_json::from_str(key).ok()?;
            Some(TaskDef::new(Vec::new(), argv))
        }
    }

    /// The value of parameter `name`, if the task has it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The identity key of a task with these params and argv (see [`TaskDef::key`]).
pub fn identity_key(params: &[(String, String)], argv: &[String]) -> String {
    // Strings always serialize, so these cannot fail.
    if params.is_empty() {
        serde_json::to_string(argv).unwrap_or_default()
    } else {
        let sorted: BTreeMap<&str, &str> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        serde_json::to_string(&sorted).unwrap_or_default()
    }
}

/// Why a task source was refused; each message names the value, line or placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The command template is empty.
    #[error("empty command: give the command to run after --")]
    EmptyTemplate,
    /// A `{` or `}` in a template element does not form a placeholder.
    #[error("invalid template argument '{arg}': {reason}; write {{{{ and }}}} for literal braces")]
    Brace { arg: String, reason: String },
    /// A placeholder names a parameter the task does not have.
    #[error("unknown placeholder {{{name}}} in template (params: {params})")]
    UnknownPlaceholder { name: String, params: String },
    /// `{}` was used, but the tasks do not have exactly one parameter.
    #[error("placeholder {{}} needs exactly one parameter (params: {params}); name one instead, like {{1}} or {{name}}")]
    AmbiguousWhole { params: String },
    /// The template uses no placeholder, so every task would run the same command.
    #[error("the command uses no placeholder, so every task would run the same command; put {{{first}}} where the value belongs (params: {params})")]
    NoPlaceholder { params: String, first: String },
    /// A `--grid` spec is malformed.
    #[error("invalid --grid '{spec}': {reason}")]
    Grid { spec: String, reason: String },
    /// A `START..STOP:STEP` range is malformed.
    #[error("invalid range '{text}': {reason}")]
    Range { text: String, reason: String },
    /// A command line has an opening quote without its closing one.
    #[error("unterminated quote in '{0}'")]
    Quote(String),
    /// Two grid axes (or sweep-file grid keys) have the same name.
    #[error("parameter '{0}' is given twice")]
    DuplicateParam(String),
    /// A line of a task list is malformed.
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    /// The source expands to no task at all.
    #[error("no tasks: {0}")]
    Empty(String),
    /// The source expands to more tasks than ramguard accepts.
    #[error("too many tasks: {what} would expand to {count} tasks (the limit is {MAX_TASKS})")]
    TooMany { what: String, count: u128 },
}

/// Duplicate identities are an error at the call site: returns the first duplicated key, if any.
pub fn first_duplicate(tasks: &[TaskDef]) -> Option<&str> {
    let mut seen = HashSet::with_capacity(tasks.len());
    tasks
        .iter()
        .map(|t| t.key.as_str())
        .find(|k| !seen.insert(*k))
}

/// How a column of parameter values reads as numbers. Sweeps often vary sizes (`512M`) and
/// durations (`10m`), so those count; a column takes the first reading that fits every
/// value (`2m` beside `1g` is a size, beside `30s` a duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// A plain number.
    Number,
    /// A size (`512M`), in bytes.
    Size,
    /// A duration (`10m`), in seconds.
    Duration,
}

impl Reading {
    fn parse(self, s: &str) -> Option<f64> {
        let s = s.trim();
        match self {
            Reading::Number => s.parse::<f64>().ok().filter(|v| v.is_finite()),
            Reading::Size => crate::units::parse_size(s).ok().map(|b| b.get() as f64),
            Reading::Duration => crate::units::parse_duration(s)
                .ok()
                .map(|d| d.as_secs_f64()),
        }
    }

    /// The first reading under which every value is numeric.
    fn of<'a>(values: impl Iterator<Item = &'a str> + Clone) -> Option<Reading> {
        [Reading::Number, Reading::Size, Reading::Duration]
            .into_iter()
            .find(|r| values.clone().all(|v| r.parse(v).is_some()))
    }
}

/// Features for prediction, one row per task, every row of the same width: for each
/// parameter name, one numeric column if its values read as numbers in every task that has
/// it (sizes and durations included), else one 0/1 column per value if it takes a few
/// values that tasks share (`Column::of`); in order of first appearance, `NaN` where a task
/// lacks the parameter. `#` is not a feature. Raw command lines line up by flag
/// (`--years 10`, `--model=resnet18`) when they have any, else by position when all have
/// the same length.
///
/// A kind chosen by name sets memory as often as a size does (`--model resnet152`, `--mode
/// suite`): read as numbers only, such a sweep had no feature to tell its tasks apart, and
/// every task was predicted at the largest kind's peak.
pub fn features(tasks: &[TaskDef]) -> Vec<Vec<f64>> {
    feature_table(tasks).rows
}

/// The features of a list of tasks (see [`features`]), and what each column reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureTable {
    /// One row per task, every row of the same width.
    pub rows: Vec<Vec<f64>>,
    /// The parameters read, in column order, and how (`--dry-run` says so): a param's name,
    /// a flag (`--years`), or `argument N` for the Nth word of a raw command line.
    pub params: Vec<(String, Column)>,
}

impl FeatureTable {
    /// Each parameter read, how, and the columns of the rows it fills.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &Column, Range<usize>)> {
        let mut at = 0;
        self.params.iter().map(move |(name, c)| {
            let cols = at..at + c.width();
            at = cols.end;
            (name.as_str(), c, cols)
        })
    }

    /// The columns that are 0/1 for a kind, one range per parameter: the predictor must
    /// know them, since a task of a kind no finished task had reads 0 in the columns of the
    /// kinds that did, as the kinds a fit leaves out do, and a fit takes a parameter's kinds
    /// together (`policy::predict`).
    pub fn kinds(&self) -> Vec<Range<usize>> {
        self.columns()
            .filter(|(_, c, _)| matches!(c, Column::Levels(_)))
            .map(|(_, _, cols)| cols)
            .collect()
    }
}

/// [`features`], with which columns are kinds.
pub fn feature_table(tasks: &[TaskDef]) -> FeatureTable {
    let Some(first) = tasks.first() else {
        return FeatureTable::default();
    };
    let any_params = tasks.iter().any(|t| t.params.iter().any(|(k, _)| k != SEQ));
    if any_params {
        let sets: Vec<Vec<(String, String)>> = tasks
            .iter()
            .map(|t| t.params.iter().filter(|(k, _)| k != SEQ).cloned().collect())
            .collect();
        return named_columns(&sets);
    }
    // Raw command lines: `--peak 512M` and `--years=10` name their values, so tasks line up
    // by flag even when one has an extra option; positions are the fallback.
    let flags: Vec<Vec<(String, String)>> = tasks.iter().map(|t| flag_values(&t.argv)).collect();
    if flags.iter().any(|f| !f.is_empty()) {
        return named_columns(&flags);
    }
    let len = first.argv.len();
    if tasks.iter().any(|t| t.argv.len() != len) {
        return FeatureTable {
            rows: vec![Vec::new(); tasks.len()],
            ..FeatureTable::default()
        };
    }
    let positions: Vec<Vec<(String, String)>> = tasks
        .iter()
        .map(|t| {
            t.argv
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("argument {}", i + 1), a.clone()))
                .collect()
        })
        .collect();
    named_columns(&positions)
}

/// Most values a parameter read by name may take to be a feature: one 0/1 column each.
pub const MAX_LEVELS: usize = 8;

/// How one parameter becomes features.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// One column: the value read as a number.
    Numeric(Reading),
    /// One 0/1 column per value, in order of first appearance.
    Levels(Vec<String>),
}

impl Column {
    /// The column for these values (one per task that has the parameter): numeric if every
    /// value reads as a number; levels if there are 2 to [`MAX_LEVELS`] distinct values
    /// and at least twice as many tasks (a value every task has its own, an output path or a
    /// seed, tells nothing of another task); else none.
    fn of(values: &[&str]) -> Option<Column> {
        if let Some(r) = Reading::of(values.iter().copied()) {
            return Some(Column::Numeric(r));
        }
        let mut levels: Vec<String> = Vec::new();
        for v in values {
            if !levels.iter().any(|l| l == v) {
                if levels.len() == MAX_LEVELS {
                    return None;
                }
                levels.push(v.to_string());
            }
        }
        (levels.len() >= 2 && values.len() >= 2 * levels.len()).then_some(Column::Levels(levels))
    }

    /// How many columns of the rows it fills.
    fn width(&self) -> usize {
        match self {
            Column::Numeric(_) => 1,
            Column::Levels(levels) => levels.len(),
        }
    }

    /// This column's values for a task with `value` (`None`: it lacks the parameter).
    fn push(&self, value: Option<&str>, row: &mut Vec<f64>) {
        match self {
            Column::Numeric(r) => row.push(value.and_then(|v| r.parse(v)).unwrap_or(f64::NAN)),
            Column::Levels(levels) => row.extend(levels.iter().map(|l| match value {
                Some(v) if v == l => 1.0,
                Some(_) => 0.0,
                None => f64::NAN,
            })),
        }
    }
}

/// The columns of [`features`] for tasks given as (name, value) pairs.
fn named_columns(sets: &[Vec<(String, String)>]) -> FeatureTable {
    fn get<'a>(set: &'a [(String, String)], name: &str) -> Option<&'a str> {
        set.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    let mut names: Vec<&str> = Vec::new();
    for set in sets {
        for (k, _) in set {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
    }
    let columns: Vec<(&str, Column)> = names
        .into_iter()
        .filter_map(|n| {
            let values: Vec<&str> = sets.iter().filter_map(|s| get(s, n)).collect();
            Some((n, Column::of(&values)?))
        })
        .collect();
    let width = columns.iter().map(|(_, c)| c.width()).sum();
    let rows = sets
        .iter()
        .map(|set| {
            let mut row = Vec::with_capacity(width);
            for (n, c) in &columns {
                c.push(get(set, n), &mut row);
            }
            row
        })
        .collect();
    let params = columns
        .into_iter()
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    FeatureTable { rows, params }
}

/// The `--flag value`, `--flag=value` and `-f value` pairs of a command line.
fn flag_values(argv: &[String]) -> Vec<(String, String)> {
    let is_flag = |s: &str| {
        s.starts_with("--") && s.len() > 2
            || (s.len() == 2 && s.starts_with('-') && s.as_bytes()[1].is_ascii_alphabetic())
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a.starts_with("--") {
            if let Some((name, value)) = a.split_once('=') {
                out.push((name.to_string(), value.to_string()));
                i += 1;
                continue;
            }
        }
        if is_flag(a) && i + 1 < argv.len() && !is_flag(&argv[i + 1]) {
            out.push((a.to_string(), argv[i + 1].clone()));
            i += 2;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_command_lines_line_up_by_flag_name() {
        let tasks = [
            task(&[], &["memhog", "--peak", "64M", "--hold", "1s"]),
            task(
                &[],
                &["memhog", "--peak", "1G", "--leak", "100M", "--hold", "2s"],
            ),
            task(&[], &["memhog", "--peak=128M", "--hold", "3s"]),
        ];
        let f = features(&tasks);
        assert_eq!(f[0][0], (64u64 << 20) as f64);
        assert_eq!(f[1][0], (1u64 << 30) as f64);
        assert_eq!(f[2][0], (128u64 << 20) as f64);
        assert_eq!(
            f[1][1], 2.0,
            "--hold of the second task, despite the extra --leak"
        );
        assert!(f[0][2].is_nan(), "no --leak in the first task");
    }

    #[test]
    fn sizes_and_durations_are_features() {
        let tasks = [
            task(&[("peak", "64M"), ("ramp", "1s")], &["x"]),
            task(&[("peak", "1G"), ("ramp", "2m")], &["y"]),
        ];
        let f = features(&tasks);
        assert_eq!(f[0], vec![(64u64 << 20) as f64, 1.0]);
        assert_eq!(f[1], vec![(1u64 << 30) as f64, 120.0]);
    }

    fn task(params: &[(&str, &str)], argv: &[&str]) -> TaskDef {
        TaskDef::new(
            params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            argv.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn key_is_sorted_params_or_argv() {
        assert_eq!(
            task(&[("lam", "0"), ("beta", "3.0")], &["x"]).key,
            r#"{"beta":"3.0","lam":"0"}"#
        );
        assert_eq!(task(&[], &["echo", "a b"]).key, r#"["echo","a b"]"#);
        assert_eq!(task(&[("#", "3")], &["x"]).key, r##"{"#":"3"}"##);
    }

    #[test]
    fn a_key_gives_back_its_task() {
        for t in [
            task(&[("lam", "0"), ("beta", "3.0")], &["x"]),
            task(&[], &["echo", "a b"]),
            task(&[("#", "3")], &["x"]),
        ] {
            let back = TaskDef::from_key(&t.key).unwrap();
            assert_eq!(back.key, t.key);
            if t.params.is_empty() {
                assert_eq!(back.argv, t.argv);
            } else {
                assert_eq!(back.param("lam"), t.param("lam"));
            }
        }
        assert!(TaskDef::from_key("beta=3.0 lam=0").is_none());
    }

    #[test]
    fn duplicates_are_found() {
        let a = task(&[("x", "1")], &["a"]);
        let b = task(&[("x", "2")], &["a"]);
        assert_eq!(first_duplicate(&[a.clone(), b.clone()]), None);
        assert_eq!(first_duplicate(&[a.clone(), b, a]), Some(r#"{"x":"1"}"#));
    }

    #[test]
    fn features_from_numeric_params() {
        let ts = [
            task(&[("lam", "1e-10"), ("name", "a"), ("beta", "3.0")], &[]),
            task(&[("lam", "0"), ("name", "b"), ("beta", "3.1")], &[]),
        ];
        assert_eq!(features(&ts), vec![vec![1e-10, 3.0], vec![0.0, 3.1]]);
    }

    #[test]
    fn features_missing_params_are_nan() {
        let ts = [task(&[("a", "1")], &[]), task(&[("b", "2")], &[])];
        let f = features(&ts);
        assert_eq!(f[0][0], 1.0);
        assert!(f[0][1].is_nan());
        assert!(f[1][0].is_nan());
        assert_eq!(f[1][1], 2.0);
    }

    #[test]
    fn features_from_argv_positions() {
        let ts = [
            task(&[], &["python", "bt.py", "--years", "1"]),
            task(&[], &["python", "bt.py", "--years", "10"]),
        ];
        assert_eq!(features(&ts), vec![vec![1.0], vec![10.0]]);
        let uneven = [task(&[], &["a", "1"]), task(&[], &["a", "1", "2"])];
        assert_eq!(features(&uneven), vec![Vec::<f64>::new(), Vec::new()]);
        assert!(features(&[]).is_empty());
    }

    #[test]
    fn a_kind_chosen_by_name_is_a_column_per_kind() {
        let kinds = ["small", "large", "small", "medium", "large", "small"];
        let ts: Vec<TaskDef> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let out = format!("out/{i}.json");
                task(
                    &[],
                    &["train", "--model", k, "--epochs", "3", "--out", &out],
                )
            })
            .collect();
        let table = feature_table(&ts);
        let f = &table.rows;
        // --model: small, large, medium; --epochs; --out is every task's own, no feature.
        #[allow(clippy::single_range_in_vec_init)] // one parameter, its three kinds
        let kinds = [0..3];
        assert_eq!(table.kinds(), kinds);
        assert_eq!(f[0], vec![1.0, 0.0, 0.0, 3.0]);
        assert_eq!(f[3], vec![0.0, 0.0, 1.0, 3.0]);
        assert_eq!(f[4], vec![0.0, 1.0, 0.0, 3.0]);
        // By position, too; a task without the parameter knows none of its columns.
        let ts = [
            task(&[("m", "a")], &[]),
            task(&[("m", "b")], &[]),
            task(&[("m", "a")], &[]),
            task(&[("m", "b")], &[]),
            task(&[("n", "1")], &[]),
        ];
        let f = features(&ts);
        assert_eq!(f[1][..2], [0.0, 1.0]);
        assert!(f[4][0].is_nan() && f[4][1].is_nan());
        let by_position: Vec<TaskDef> = ["a", "b", "a", "b"]
            .iter()
            .map(|k| task(&[], &["python", "fit.py", k]))
            .collect();
        assert_eq!(features(&by_position)[2], vec![1.0, 0.0]);
    }

    #[test]
    fn many_kinds_or_one_per_task_are_no_feature() {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        let nine: Vec<TaskDef> = names
            .iter()
            .flat_map(|k| [task(&[("k", k)], &[]), task(&[("k", k), ("x", "1")], &[])])
            .collect();
        assert!(features(&nine).iter().all(|row| row.len() == 1), "x only");
        let own: Vec<TaskDef> = names[..4].iter().map(|k| task(&[("k", k)], &[])).collect();
        assert!(features(&own).iter().all(Vec::is_empty));
    }

    #[test]
    fn repeat_tasks_have_no_features() {
        let ts = [task(&[("#", "1")], &["x"]), task(&[("#", "2")], &["x"])];
        assert_eq!(features(&ts), vec![Vec::<f64>::new(), Vec::new()]);
    }
}
