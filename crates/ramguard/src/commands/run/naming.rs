//! The name a sweep gets when the user gives none: the script or program it runs.
//!
//! The name is read from the command template (or the first task's argv), skipping what
//! only launches the script: interpreters (`python3.11`, `Rscript`, `node`, `bash`),
//! wrappers (`env X=1`, `nice -n 5`, `uv run`, `srun`), their flags and the values those
//! flags take (`python -W ignore`), and `VAR=value` words. `python -m pkg.train` is named
//! after the module's last part (`train`). A word with spaces is a script (`sh -c '…'`)
//! whose text may hold values and secrets, so it never names a sweep; nor does a word with
//! a placeholder; with nothing else, the launcher names it (`sh`). Journal identity does not depend on this name (that is the command's
//! fingerprint); it is only what people read in `list`, `results` and log folders.

use std::path::Path;

use ramguard_core::tasks::TaskDef;

/// Programs that run the script named after them.
const LAUNCHERS: &[&str] = &[
    "env", "nice", "nohup", "time", "exec", "stdbuf", "ionice", "taskset", "chrt", "srun", "uv",
    "uvx", "poetry", "pipenv", "conda", "mamba", "pixi", "hatch", "run", "Rscript", "R", "julia",
    "node", "deno", "bun", "bash", "sh", "zsh", "dash", "perl", "ruby", "java", "mpirun",
    "mpiexec",
];

/// Flags of launchers and interpreters that take the next word as their value.
const FLAGS_WITH_VALUE: &[&str] = &[
    "-W",
    "-X",
    "-Q",
    "-n",
    "-c",
    "--python",
    "--with",
    "--env",
    "--name",
    "-e",
    "-p",
    "--project",
    "--cpus-per-task",
    "--mem",
    "-np",
];

/// True if and only if `word` is an interpreter of the Python family (`python`,
/// `python3.11`, `pypy3`, `ipython`).
fn is_python(word: &str) -> bool {
    let w = word.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(w, "python" | "pypy" | "ipython")
}

/// The stem a sweep is named after (see the module doc); `sweep` when nothing fits.
pub fn derive_name(template: Option<&[String]>, tasks: &[TaskDef]) -> String {
    let argv: Vec<String> = match template {
        Some(t) => t.to_vec(),
        None => tasks.first().map(|t| t.argv.clone()).unwrap_or_default(),
    };
    // Nothing but a launcher (`sh -c '…'`): the launcher's own name, as before.
    let first = || {
        let a = argv.first()?;
        let base = Path::new(a).file_name()?.to_string_lossy().into_owned();
        (!base.contains(char::is_whitespace) && !base.contains('{')).then_some(base)
    };
    let pick = pick(&argv).or_else(first).unwrap_or_else(|| "sweep".into());
    let clean: String = pick
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.chars().any(char::is_alphanumeric) {
        clean
    } else {
        "sweep".into()
    }
}

/// The word that names the sweep, already reduced to its stem.
fn pick(argv: &[String]) -> Option<String> {
    let mut words = argv.iter().map(String::as_str).peekable();
    while let Some(word) = words.next() {
        let base = Path::new(word)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if word.contains('{') || word.contains(char::is_whitespace) {
            // A placeholder or a script's text: never a name (module doc).
            if word.contains(char::is_whitespace) {
                return None;
            }
            continue;
        }
        if word == "-m" {
            // `python -m pkg.train`: the module's last part.
            let module = words.next()?;
            let last = module.rsplit('.').next().unwrap_or(module);
            return (!last.is_empty() && !last.contains('{')).then(|| last.to_string());
        }
        if word.starts_with('-') {
            if FLAGS_WITH_VALUE.contains(&word) {
                words.next();
            }
            continue;
        }
        if word.contains('=') || base.is_empty() || base.len() > 64 {
            continue; // `env X=1`, `--flag=value` already skipped
        }
        if is_python(&base) || LAUNCHERS.contains(&base.as_str()) {
            continue;
        }
        let stem = Path::new(&base)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(base);
        return Some(stem);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(cmd: &[&str]) -> String {
        let argv: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        derive_name(Some(&argv), &[])
    }

    #[test]
    fn names_follow_the_script_not_its_launcher() {
        assert_eq!(name(&["python3", "train.py", "--lam", "{lam}"]), "train");
        assert_eq!(name(&["python3.11", "-u", "scripts/t3b.py", "{1}"]), "t3b");
        assert_eq!(
            name(&["python3", "-W", "ignore", "train.py", "{1}"]),
            "train"
        );
        assert_eq!(name(&["python3", "-m", "pkg.train", "{1}"]), "train");
        assert_eq!(name(&["env", "X=1", "python3", "fit.py", "{1}"]), "fit");
        assert_eq!(
            name(&["nice", "-n", "5", "Rscript", "model.R", "{1}"]),
            "model"
        );
        assert_eq!(name(&["uv", "run", "python", "opt.py", "{1}"]), "opt");
        assert_eq!(name(&["./bin/memhog", "--peak", "{}"]), "memhog");
        assert_eq!(name(&["ü.py", "{1}"]), "ü");
    }

    #[test]
    fn scripts_and_placeholders_never_name_a_sweep() {
        assert_eq!(name(&["sh", "-c", "echo $TOKEN {1}"]), "sh");
        assert_eq!(name(&["bash", "-c", "cat secret.txt"]), "bash");
        assert_eq!(name(&["{1}", "--x"]), "sweep");
        assert_eq!(name(&["python3", "-m", "{module}"]), "python3");
        assert_eq!(name(&["???"]), "sweep");
        assert_eq!(name(&[]), "sweep");
    }
}
