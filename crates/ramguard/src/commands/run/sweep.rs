//! The sweep a `run` asks for, built from exactly one task source: a sweep file, `:::`
//! lists and `::::` files, `--grid`, `--tasks`, `--repeat`, or values on stdin. Nothing here
//! touches the journal or the host; a bad source is one `error:` line.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ramguard_core::tasks::{self, TaskDef, Template};
use serde_json::json;

use super::naming;
use crate::cli::run::RunArgs;
use crate::sweep_file;

/// The sweep to run: its tasks, template, name and options from a sweep file.
pub(crate) struct Sweep {
    /// The name the user chose, else the one derived from the command (the journal may
    /// suffix it, `train-2`, when another command holds it).
    pub name: String,
    /// True if and only if the user chose the name (`--name`, a sweep file's `name`).
    pub chosen: bool,
    pub template: String,
    pub tasks: Vec<TaskDef>,
    /// Param names in the order the user wrote them, for the columns of `results`.
    pub param_order: Vec<String>,
    pub file_options: sweep_file::SweepOptions,
}

/// A task's params as journaled: an object of name → value, or its argv when it has none.
pub(crate) fn params_json(t: &TaskDef) -> serde_json::Value {
    if t.params.is_empty() {
        json!(t.argv)
    } else {
        serde_json::Value::Object(
            t.params
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        )
    }
}

/// Builds the task list from exactly one source.
pub(crate) fn build(args: &RunArgs) -> Result<Sweep> {
    if let Some(path) = &args.sweep_file {
        recycle_count_typed_apart(args, path)?;
    }
    let (template_args, inputs) = tasks::split_inputs(&args.command)?;
    let sources = [
        args.sweep_file.is_some(),
        !inputs.is_empty(),
        !args.grid.is_empty(),
        args.tasks.is_some(),
        args.repeat.is_some(),
    ];
    let n_sources = sources.iter().filter(|s| **s).count();
    if n_sources > 1 {
        bail!(
            "give exactly one task source: a sweep file, `::: values`, --grid, --tasks or --repeat"
        );
    }
    if let Some(path) = &args.sweep_file {
        if !args.command.is_empty() {
            bail!(
                "a sweep file carries its own command; drop the `-- {}`",
                args.command.join(" ")
            );
        }
        let file = sweep_file::load(path)?;
        let chosen = args.name.clone().or(file.name.clone());
        let name = chosen.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into())
        });
        // A sweep file's params come sorted; its template says the order they are used in.
        let order = param_order(Some(&file.template), &file.tasks);
        return finish_sweep(
            (name, chosen.is_some()),
            file.template.display(),
            file.tasks,
            order,
            file.options,
        );
    }
    if n_sources == 0 && args.command.is_empty() {
        bail!("nothing to run: give `-- CMD ARGS ::: VALUES`, --grid, --tasks FILE, --repeat N or a sweep file (see ramguard run --help)");
    }
    let template = if template_args.is_empty() {
        None
    } else {
        Some(Template::parse(&template_args)?)
    };
    let need = |what: &str| -> Result<&Template> {
        template
            .as_ref()
            .with_context(|| format!("{what} needs a command: add `-- CMD ARGS`"))
    };
    let mut lists = if inputs.is_empty() {
        None
    } else {
        Some(read_inputs(&inputs)?)
    };
    let wants_values = template
        .as_ref()
        .is_some_and(|t| t.placeholders().iter().any(|p| p != tasks::SEQ));
    // GNU parallel's habit: with no other source, values come from stdin when it is a pipe
    // or a file. A terminal or /dev/null — or an empty pipe, as cron gives, when the
    // command has no placeholder to fill — leaves a lone command to run once.
    if n_sources == 0 && stdin_has_data() {
        let stdin = read_inputs(&[tasks::Input {
            source: tasks::InputSource::File("-".into()),
            linked: false,
        }])?;
        if !stdin[0].values.is_empty() {
            lists = Some(stdin);
        } else if wants_values {
            bail!("no tasks: stdin is empty; give values on stdin, or after `:::` or `::::`");
        }
    }
    let (defs, ordered) = if let Some(lists) = lists {
        (
            tasks::linked_product(need("`:::`")?, &lists, args.shell)?,
            true,
        )
    } else if !args.grid.is_empty() {
        let axes = args
            .grid
            .iter()
            .map(|g| tasks::parse_grid(g))
            .collect::<Result<Vec<_>, _>>()?;
        (tasks::grid(need("--grid")?, &axes, args.shell)?, true)
    } else if let Some(file) = &args.tasks {
        let text = read_tasks_file(file)?;
        let defs = tasks::from_lines(&text, template.as_ref(), args.shell)
            .map_err(|e| anyhow::anyhow!("{}: {e}", if file == "-" { "stdin" } else { file }))?;
        (defs, false)
    } else {
        // A lone `-- CMD ARGS` is one task: supervised, capped and journaled like any other.
        if args.repeat.is_none() && wants_values {
            bail!(
                "the command has placeholders but no values: give them after `:::`, with \
                 `:::: FILE`, or on stdin (a pipe or a file)"
            );
        }
        let n = args.repeat.unwrap_or(1);
        if n == 0 {
            bail!("--repeat must be at least 1");
        }
        (tasks::repeat(need("--repeat")?, n, args.shell)?, true)
    };
    let template_text = match &template {
        Some(t) => t.display(),
        // Raw command lines have no template: the file they come from is the sweep.
        None => format!(
            "tasks from {}",
            args.tasks.as_deref().map_or("-".into(), task_file_identity)
        ),
    };
    let chosen = args.name.is_some();
    let name = args.name.clone().unwrap_or_else(|| {
        naming::derive_name(template.as_ref().map(|_| template_args.as_slice()), &defs)
    });
    // Grid axes and `:::` lists keep the order they were typed in; JSON lines come sorted,
    // so the template's placeholders give their order.
    let order = param_order(template.as_ref().filter(|_| !ordered), &defs);
    finish_sweep(
        (name, chosen),
        template_text,
        defs,
        order,
        sweep_file::SweepOptions::default(),
    )
}

/// How a task file names its sweep: the same file however it is spelled (`tasks.txt`,
/// `./tasks.txt`, its absolute path, through a symlinked directory), so that a rerun
/// resumes. Relative to the working directory when the file is under it (what journals
/// before this rule recorded for the usual spelling), else its canonical absolute path;
/// `-` (stdin) and a path that cannot be resolved are kept as typed, normalised.
fn task_file_identity(file: &str) -> String {
    let typed = || Path::new(file).components().collect::<PathBuf>();
    if file == "-" {
        return file.to_string();
    }
    let Ok(real) = std::fs::canonicalize(file) else {
        return typed().display().to_string();
    };
    let under_cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .ok()
        .and_then(|cwd| real.strip_prefix(cwd).ok().map(Path::to_path_buf));
    under_cwd.unwrap_or(real).display().to_string()
}

/// Param names (without `#`) in the order the template uses them, if given, then in order
/// of first appearance in the tasks.
fn param_order(template: Option<&Template>, defs: &[TaskDef]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let used = template.map(Template::placeholders).unwrap_or_default();
    let all_names = defs.iter().flat_map(|t| t.params.iter().map(|(k, _)| k));
    for name in used.iter().chain(all_names) {
        let known = defs.iter().any(|t| t.param(name).is_some());
        if known && name != tasks::SEQ && !order.contains(name) {
            order.push(name.clone());
        }
        if order.len() > 64 {
            break;
        }
    }
    order
}

/// Returns true if and only if stdin is a pipe or a regular file (not a terminal, not
/// /dev/null, not closed).
fn stdin_has_data() -> bool {
    use rustix::fs::FileType;
    rustix::fs::fstat(std::io::stdin()).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Fifo | FileType::RegularFile
        )
    })
}

/// How long reading stdin may block before ramguard says what it is waiting for.
const STDIN_QUIET: Duration = Duration::from_secs(2);

/// Says once on stderr, if stdin has given no end after [`STDIN_QUIET`], that ramguard is
/// reading it: a pipe nobody writes to or closes (a notebook, a CI step, `cmd | ramguard`
/// where `cmd` waits) otherwise hangs the run without a word. Dropping the guard ends the
/// watch.
fn stdin_wait_notice() -> std::sync::mpsc::Sender<()> {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if finished.recv_timeout(STDIN_QUIET) == Err(RecvTimeoutError::Timeout) {
            eprintln!(
                "ramguard: waiting for the tasks' values on stdin, a pipe still open; close it \
                 (end the writer, or Ctrl-D) to go on, or give `< /dev/null` to run a lone \
                 command once"
            );
        }
    });
    done
}

/// Reads the values of every `::::` file (`-` is stdin) and names each source for errors.
fn read_inputs(inputs: &[tasks::Input]) -> Result<Vec<tasks::ValueList>> {
    let mut n_typed = 0;
    inputs
        .iter()
        .map(|input| {
            let (values, origin) = match &input.source {
                tasks::InputSource::Values(v) => {
                    n_typed += 1;
                    (v.clone(), format!("::: list {n_typed}"))
                }
                tasks::InputSource::File(f) => {
                    let (text, origin) = if f == "-" {
                        (read_tasks_file(f)?, "stdin".to_string())
                    } else {
                        let text = std::fs::read_to_string(f)
                            .with_context(|| format!("cannot read input file {f} (after ::::)"))?;
                        (text, format!("input file {f}"))
                    };
                    (tasks::values_of_text(&text), origin)
                }
            };
            Ok(tasks::ValueList {
                values,
                linked: input.linked,
                origin,
            })
        })
        .collect()
}

fn finish_sweep(
    (name, chosen): (String, bool),
    template: String,
    tasks: Vec<TaskDef>,
    param_order: Vec<String>,
    file_options: sweep_file::SweepOptions,
) -> Result<Sweep> {
    if tasks.is_empty() {
        bail!("no tasks to run");
    }
    if let Some(key) = tasks::first_duplicate(&tasks) {
        bail!("two tasks have the same identity {key}: each task must differ in its parameters");
    }
    Ok(Sweep {
        name,
        chosen,
        template,
        tasks,
        param_order,
        file_options,
    })
}

fn read_tasks_file(file: &str) -> Result<String> {
    if file == "-" {
        let waiting = stdin_wait_notice();
        let mut s = String::new();
        let read = std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read tasks from stdin");
        drop(waiting);
        read?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read tasks file {file}"))
}

/// `--recycle 3` parses as a bare `--recycle` (its count needs `=`) and a sweep file named
/// `3`: say so instead of "cannot read sweep file 3".
fn recycle_count_typed_apart(args: &RunArgs, path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    if args.restart.recycle.is_some() && text.parse::<u32>().is_ok() && !path.exists() {
        bail!(
            "`--recycle {text}`: the count takes an `=`, write --recycle={text} (a bare --recycle \
             allows {} restarts a minute; '{text}' was read as a sweep file)",
            ramguard_core::policy::recycle::DEFAULT_RECYCLES_PER_MINUTE
        );
    }
    Ok(())
}
