//! Every input of `ramguard run` checked before anything on disk is created or changed.
//!
//! `run` opens (and may create, migrate or, with `--fresh`, wipe) the journal and creates log
//! folders; a bad input found after that would exit 2 having changed things. So this module
//! looks at everything first — the sweep's name, each task's command line, the journal path
//! and the log folder — reading the filesystem but never writing it, and returns the first
//! problem as one `error:` line. What it cannot know in advance (a disk that fills up) stays
//! a runtime error.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use ramguard_core::tasks::TaskDef;
use rustix::fs::{access, Access};

/// The kernel's limit on one argument or environment string (`MAX_ARG_STRLEN`), NUL included.
const MAX_ARG_LEN: usize = 32 * 4096;

/// Longest sweep name accepted.
const MAX_NAME: usize = 200;

/// Checks the sweep's name: not empty, no control characters, bounded.
pub fn name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        bail!("the sweep name is empty; hint: give --name a value, or leave --name out to derive one from the command");
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        bail!(
            "the sweep name {} contains the control character {}; hint: use a plain name",
            crate::render::text::escape(name),
            c.escape_default()
        );
    }
    if name.len() > MAX_NAME {
        bail!(
            "the sweep name is {} bytes long, more than {MAX_NAME}; hint: choose a shorter --name",
            name.len()
        );
    }
    Ok(())
}

/// Checks resolved settings a user could not mean: a task cap of zero kills every task.
pub fn settings(config: &ramguard_core::policy::Config) -> Result<()> {
    if config.task_cap.is_some_and(|b| b.get() == 0) {
        bail!("--task-mem must be more than 0 (every task would be killed as over its cap)");
    }
    if config.estimate.is_some_and(|b| b.get() == 0) {
        bail!("--estimate must be more than 0 (tasks assumed to need no memory would all be admitted at once); hint: leave it out and ramguard learns peaks as tasks finish");
    }
    Ok(())
}

/// Checks that every task's command line can be handed to `execve` and names a program that
/// exists: no NUL byte, no argument over the kernel's per-string limit, not too long in all.
pub fn commands(tasks: &[TaskDef]) -> Result<()> {
    let env_bytes: usize = std::env::vars_os()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    // Room kept for the variables ramguard adds (thread caps, token, result path).
    let budget = arg_max().saturating_sub(env_bytes + 16 * 1024);
    let mut checked: Vec<&str> = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let n = i + 1;
        let Some(program) = t.argv.first() else {
            bail!("task #{n} has an empty command line");
        };
        for (j, a) in t.argv.iter().enumerate() {
            if a.contains('\0') {
                bail!(
                    "task #{n}: argument {j} contains a NUL byte, which no command line can carry: {}",
                    crate::render::text::escape(&preview(a))
                );
            }
            if a.len() + 1 > MAX_ARG_LEN {
                bail!(
                    "task #{n}: argument {j} is {} bytes, over the kernel's limit of {} for one argument: {}",
                    a.len(),
                    MAX_ARG_LEN - 1,
                    crate::render::text::escape(&preview(a))
                );
            }
        }
        let total: usize = t.argv.iter().map(|a| a.len() + 1).sum();
        if total > budget {
            bail!(
                "task #{n}: its command line is {total} bytes, more than this system passes to a program (about {budget} with the environment); hint: pass large values through a file"
            );
        }
        if !checked.contains(&program.as_str()) {
            if find_program(program).is_none() && Path::new(program).is_file() {
                bail!(
                    "task #{n}: command {} is not executable; hint: chmod +x it, or run it through its interpreter",
                    crate::render::text::escape(program)
                );
            }
            if find_program(program).is_none() {
                bail!(
                    "task #{n}: command {} not found{}; hint: check the spelling and PATH, or give its path",
                    crate::render::text::escape(program),
                    if program.contains('/') {
                        String::new()
                    } else {
                        " in PATH".to_string()
                    }
                );
            }
            checked.push(program);
        }
    }
    Ok(())
}

/// Where `execvp` would find the program, if it exists and may be executed.
fn find_program(program: &str) -> Option<PathBuf> {
    let runnable = |p: &Path| p.is_file() && access(p, Access::EXEC_OK).is_ok();
    if program.contains('/') {
        let p = PathBuf::from(program);
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    path.as_bytes()
        .split(|b| *b == b':')
        .map(|dir| {
            if dir.is_empty() {
                PathBuf::from(program)
            } else {
                Path::new(OsStr::from_bytes(dir)).join(program)
            }
        })
        .find(|p| runnable(p))
}

/// The most bytes `execve` takes for arguments and environment together.
fn arg_max() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    if n > 0 {
        n as usize
    } else {
        128 * 1024
    }
}

/// The first characters of a long value, for an error line.
fn preview(s: &str) -> String {
    let head: String = s.chars().take(40).collect();
    if head.len() < s.len() {
        format!("{head}...")
    } else {
        head
    }
}

/// Checks the journal path without creating anything: an existing journal must be a
/// non-empty file ramguard can write; a new one needs a directory it can create it in.
pub fn journal(path: &Path) -> Result<()> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            bail!("journal {shown} is a directory; hint: pass --journal with a file path, e.g. {shown}/journal.db")
        }
        Ok(m) if !m.is_file() => bail!("journal {shown} is not a regular file"),
        Ok(m) if m.len() == 0 => bail!(
            "journal {shown} is an empty file (truncated, or not a journal); it was left untouched; hint: move it aside or pass another --journal"
        ),
        Ok(_) => {
            if access(path, Access::READ_OK | Access::WRITE_OK).is_err() {
                bail!(
                    "journal {shown} is read-only for you; `run` must write it; hint: `ramguard status`/`results` can still read it, or pass another --journal"
                );
            }
            let dir = parent_of(path);
            if access(&dir, Access::WRITE_OK | Access::EXEC_OK).is_err() {
                bail!(
                    "cannot write in {} (the journal's directory, for its -wal file); hint: pass another --journal",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = parent_of(path);
            // The journal's own directory may be created, but only one level of it.
            let base = if dir.is_dir() {
                dir.clone()
            } else {
                parent_of(&dir)
            };
            if !base.is_dir() {
                bail!(
                    "cannot create journal {shown}: {} does not exist; hint: create it or pass --journal with a path in an existing directory",
                    base.display()
                );
            }
            if access(&base, Access::WRITE_OK | Access::EXEC_OK).is_err() {
                bail!("cannot create journal {shown}: {} is not writable", base.display());
            }
            Ok(())
        }
        Err(e) => bail!("cannot read journal {shown}: {e}"),
    }
}

/// Checks the log folder without creating anything: an existing one must be a writable
/// directory; a missing one must be creatable below its nearest existing ancestor.
pub fn log_dir(dir: &Path, given: bool) -> Result<()> {
    let shown = dir.display();
    let flag = if given {
        "--log-dir "
    } else {
        "log directory "
    };
    let mut at = dir.to_path_buf();
    loop {
        match std::fs::metadata(&at) {
            Ok(m) if m.is_dir() => {
                if access(&at, Access::WRITE_OK | Access::EXEC_OK).is_err() {
                    bail!("{flag}{shown}: {} is not writable; hint: pass --log-dir with a folder you can write", at.display());
                }
                return Ok(());
            }
            Ok(_) => {
                bail!(
                    "{flag}{shown}: {} exists and is not a directory; hint: pass --log-dir with a folder",
                    at.display()
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p.to_path_buf(),
                _ => return Ok(()),
            },
            Err(e) => bail!("{flag}{shown}: cannot check {}: {e}", at.display()),
        }
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
