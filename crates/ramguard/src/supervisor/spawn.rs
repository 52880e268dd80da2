//! Starting one attempt of a task: its own process group, `PR_SET_CHILD_SUBREAPER` so its
//! whole tree stays below it (the sentinel kills it if ramguard dies), stdout/stderr to the descriptors the caller prepared, the thread caps and ramguard's variables in its
//! environment, and `oom_score_adj` set from the policy's rank.
//!
//! # Why not `std::process::Command`
//! The subreaper flag must be set by the child itself, between clone and exec, and followed by
//! a check that ramguard did not die before it was set. `Command` can only do that through
//! `pre_exec`, which makes it fall back from `posix_spawn` (a `vfork`-style clone that shares
//! ramguard's memory) to a full `fork`: copying ramguard's page tables and then taking
//! copy-on-write faults in both processes cost more than everything else about a trivial
//! task together (BENCHMARKS.md, "Overhead"). So [`spawn`] does what glibc's `posix_spawn`
//! does, plus the subreaper flag: `clone(CLONE_VM | CLONE_VFORK)` onto a small stack of its
//! own, with every signal blocked around it; the child, which shares our memory until it
//! execs, only reads what the parent prepared and makes raw system calls: reset handled
//! signals to their default (a handler of ours must never run in it), `prctl`, `getppid`,
//! `setpgid`, `dup2`, an empty signal mask, `execve` down the `PATH` candidates. It reports
//! a failure through a word of shared memory and `_exit(127)`s. `CLONE_VFORK` suspends us
//! until the child has exec'd or exited, so that word is final when `clone` returns.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use rustix::process::Pid;

/// Environment variables that cap the threads of BLAS, OpenMP and friends.
pub const THREAD_VARS: &[&str] = &[
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "JULIA_NUM_THREADS",
];

pub use crate::executor::attempt::Launch;

/// The thread caps of a run: every variable of [`THREAD_VARS`] and the value a task sees.
///
/// The variables are one family: OpenBLAS reads `OPENBLAS_NUM_THREADS` before
/// `OMP_NUM_THREADS`, MKL reads `MKL_NUM_THREADS` first, and so on, so a family that
/// disagrees with itself silently runs a library at the wrong width. With nothing exported,
/// every variable is `--threads` (default 1). With any exported, every variable the user
/// left unset follows the exported value (the first of [`THREAD_VARS`] that holds a number),
/// and an explicit `--threads` that differs gives way to it; exported variables are never
/// changed. Where the exported values disagree, or override `--threads`, `warning` says so
/// (once per run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadCaps {
    /// What ramguard sets in each task's environment (the variables the user did not export).
    pub env: Vec<(String, String)>,
    /// Every variable of the family as a task sees it, exported ones included; empty with
    /// `--no-thread-caps` and nothing exported.
    pub applied: std::collections::BTreeMap<String, String>,
    /// One line for the user when the family could not simply follow one value.
    pub warning: Option<String>,
}

/// The thread caps for this process's environment; `threads` is `None` with
/// `--no-thread-caps`, `explicit` says whether the user gave `--threads`.
pub fn thread_caps(threads: Option<u32>, explicit: bool) -> ThreadCaps {
    let exported: Vec<(String, String)> = THREAD_VARS
        .iter()
        .filter_map(|v| Some((v.to_string(), std::env::var(v).ok()?)))
        .collect();
    resolve_thread_caps(threads, explicit, &exported)
}

/// [`thread_caps`] for a given set of exported variables (pure, for tests).
pub fn resolve_thread_caps(
    threads: Option<u32>,
    explicit: bool,
    exported: &[(String, String)],
) -> ThreadCaps {
    let mut caps = ThreadCaps::default();
    for (k, v) in exported {
        caps.applied.insert(k.clone(), v.clone());
    }
    let Some(n) = threads else {
        return caps; // --no-thread-caps: the environment passes through as it is
    };
    // OpenMP allows a list (`4,2` for nested levels): the outer level is the width. A 0 is
    // no width to copy: Rayon reads it as "all cores" and Numba refuses it.
    let width = |v: &str| {
        v.split(',')
            .next()?
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&w| w > 0)
    };
    let leader = exported.iter().find_map(|(k, v)| Some((k, width(v)?)));
    let value = leader.map_or(n, |(_, w)| w).to_string();
    for var in THREAD_VARS {
        if !caps.applied.contains_key(*var) {
            caps.env.push((var.to_string(), value.clone()));
            caps.applied.insert(var.to_string(), value.clone());
        }
    }
    let mut notes = Vec::new();
    if let Some((lead, w)) = leader {
        let others: Vec<String> = exported
            .iter()
            .filter(|(k, v)| k != lead && width(v) != Some(w))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !others.is_empty() {
            notes.push(format!(
                "exported thread variables disagree: {lead}={w} but {}; each keeps its \
                 exported value and the unset ones follow {lead}",
                others.join(", ")
            ));
        }
        if explicit && w != n {
            notes.push(format!(
                "--threads {n} gives way to the exported {lead}={w}: every thread variable \
                 follows it (unset {lead} to use --threads)"
            ));
        }
    } else if let Some((k, v)) = exported.first() {
        notes.push(format!(
            "exported {k}={v} is not a thread count; the other thread variables are set to {n}"
        ));
    }
    caps.warning = (!notes.is_empty()).then(|| notes.join("; "));
    caps
}

/// Spawns the attempt and returns its pid. The child leads its own process group and is the
/// subreaper of everything it starts.
pub fn spawn(launch: &Launch) -> Result<u32> {
    let program = launch.argv.first().context("empty command line")?;
    let stdin = dev_null()?;
    let argv = cstrings(launch.argv.iter().map(|a| a.as_bytes()))
        .with_context(|| format!("cannot start '{program}': a NUL byte in its command line"))?;
    let env = environment(&launch.env)
        .with_context(|| format!("cannot start '{program}': a NUL byte in its environment"))?;
    let path_var = launch
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| OsString::from(v))
        .or_else(|| std::env::var_os("PATH"));
    let candidates = candidates(program, path_var.as_deref())
        .with_context(|| format!("cannot start '{program}': a NUL byte in its path"))?;
    let fds = [
        stdin.as_raw_fd(),
        launch.stdout.as_raw_fd(),
        launch.stderr.as_raw_fd(),
    ];
    clone_exec(&candidates, &argv, &env, fds)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot start '{program}'"))
}

/// `/dev/null`, opened once, for every task's stdin.
fn dev_null() -> Result<&'static File> {
    static NULL: OnceLock<File> = OnceLock::new();
    if let Some(f) = NULL.get() {
        return Ok(f);
    }
    let f = File::open("/dev/null").context("cannot open /dev/null")?;
    Ok(NULL.get_or_init(|| f))
}

/// NUL-terminated strings and the null-terminated pointer array `execve` takes. `_owned`
/// holds the strings made for this spawn; the array may also point at strings that live for
/// the whole run (ramguard's own environment, see [`environment`]).
struct CStrings {
    _owned: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

fn cstrings<'a>(items: impl Iterator<Item = &'a [u8]>) -> Result<CStrings> {
    let owned = items
        .map(|b| CString::new(b.to_vec()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ptrs: Vec<*const libc::c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    Ok(CStrings {
        _owned: owned,
        ptrs,
    })
}

/// ramguard's own environment with `extra` applied on top (later entries win).
fn environment(extra: &[(String, String)]) -> Result<CStrings> {
    // Read and encoded once: ramguard never changes its own environment after it starts,
    // and a sweep of trivial tasks spawns thousands of times.
    static BASE: OnceLock<Vec<(OsString, CString)>> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let entry = CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok()?;
                Some((k, entry))
            })
            .collect()
    });
    let overridden = |k: &OsStr| extra.iter().any(|(e, _)| OsStr::new(e) == k);
    let mut ptrs: Vec<*const libc::c_char> = Vec::with_capacity(base.len() + extra.len() + 1);
    ptrs.extend(
        base.iter()
            .filter(|(k, _)| !overridden(k))
            .map(|(_, entry)| entry.as_ptr()),
    );
    let mut owned = Vec::with_capacity(extra.len());
    for (i, (k, v)) in extra.iter().enumerate() {
        if !extra[i + 1..].iter().any(|(later, _)| later == k) {
            owned.push(CString::new([k.as_bytes(), b"=", v.as_bytes()].concat())?);
        }
    }
    ptrs.extend(owned.iter().map(|c| c.as_ptr()));
    ptrs.push(std::ptr::null());
    Ok(CStrings {
        _owned: owned,
        ptrs,
    })
}

/// The paths `execve` tries, as `execvp` would: the program itself if it names a path, else
/// the program in every `PATH` directory (an empty entry is the current directory).
fn candidates(program: &str, path: Option<&OsStr>) -> Result<CStrings> {
    if program.contains('/') {
        return cstrings(std::iter::once(program.as_bytes()));
    }
    let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    let joined: Vec<Vec<u8>> = path
        .as_bytes()
        .split(|b| *b == b':')
        .map(|dir| {
            if dir.is_empty() {
                program.as_bytes().to_vec()
            } else {
                [dir, b"/", program.as_bytes()].concat()
            }
        })
        .collect();
    cstrings(joined.iter().map(Vec::as_slice))
}

/// What the child reads (all prepared by the parent) and the word it reports failure in.
struct ChildArgs<'a> {
    candidates: &'a [*const libc::c_char],
    argv: *const *const libc::c_char,
    /// `["sh", <script>, argv[1..], NULL]` with slot 1 left for the child to fill: a file
    /// without a `#!` line (ENOEXEC) runs under `/bin/sh`, as `execvp` does.
    sh_argv: *mut *const libc::c_char,
    envp: *const *const libc::c_char,
    /// stdin, stdout, stderr.
    fds: [RawFd; 3],
    parent: libc::pid_t,
    /// The errno of the step that failed; 0 if the child exec'd.
    error: AtomicI32,
    /// ramguard's thread has a shorter scheduler slice than a task should inherit
    /// (`latency.rs`): the child takes the default one back before it execs.
    default_slice: bool,
}

/// The shell that runs a script without a `#!` line, and the name it is given.
const SH_PATH: &std::ffi::CStr = c"/bin/sh";
const SH_NAME: &std::ffi::CStr = c"sh";

/// One more than the highest signal number on Linux.
const NSIG: libc::c_int = 65;

/// Size of the child's stack; it runs one small function and the kernel's `execve`.
const CHILD_STACK: usize = 64 * 1024;

/// Clones a child that shares our memory until it execs, and waits for the exec.
fn clone_exec(
    candidates: &CStrings,
    argv: &CStrings,
    envp: &CStrings,
    fds: [RawFd; 3],
) -> std::io::Result<u32> {
    // ["sh", slot for the script, the task's arguments after its program, NULL].
    let mut sh_argv: Vec<*const libc::c_char> = Vec::with_capacity(argv.ptrs.len() + 1);
    sh_argv.push(SH_NAME.as_ptr());
    sh_argv.push(std::ptr::null());
    sh_argv.extend_from_slice(&argv.ptrs[1..]);
    let args = ChildArgs {
        candidates: &candidates.ptrs[..candidates.ptrs.len() - 1],
        argv: argv.ptrs.as_ptr(),
        sh_argv: sh_argv.as_mut_ptr(),
        envp: envp.ptrs.as_ptr(),
        fds,
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        error: AtomicI32::new(0),
        default_slice: super::latency::shortened(),
    };
    // One stack per spawning thread, reused: the child is done with it when clone returns
    // (mapping and unmapping one per spawn cost a TLB shootdown across our threads each).
    thread_local! {
        static STACK: std::cell::RefCell<Option<Stack>> = const { std::cell::RefCell::new(None) };
    }
    let stack = match STACK.with(|s| s.borrow_mut().take()) {
        Some(stack) => stack,
        None => Stack::new()?,
    };
    let mut all: libc::sigset_t = unsafe_zeroed_sigset();
    let mut old: libc::sigset_t = unsafe_zeroed_sigset();
    // SAFETY: both sets are valid for the calls; blocking every signal means none of our
    // handlers can run in the child before it has reset them (it shares our memory).
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: the stack is ours, mapped and large enough; `args` outlives the call, since
    // CLONE_VFORK returns only after the child exec'd or exited; `child` touches nothing but
    // `args` and makes only async-signal-safe calls.
    let pid = unsafe {
        libc::clone(
            child,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const ChildArgs as *mut libc::c_void,
        )
    };
    let clone_error = std::io::Error::last_os_error();
    // SAFETY: `old` was filled by the call above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    STACK.with(|s| *s.borrow_mut() = Some(stack));
    if pid < 0 {
        return Err(clone_error);
    }
    let error = args.error.load(Ordering::Acquire);
    if error != 0 {
        // The child has exited (or is about to): reap it here, so the supervisor's reaper
        // never sees a pid it was not told about.
        let mut status = 0;
        // SAFETY: the status pointer is valid for writes.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(std::io::Error::from_raw_os_error(error));
    }
    Ok(pid as u32)
}

fn unsafe_zeroed_sigset() -> libc::sigset_t {
    // SAFETY: sigset_t is a plain C struct for which all-zero is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

/// The child between clone and exec. Runs on its own stack in our memory, with every signal
/// blocked: only raw, async-signal-safe calls; no allocation, no locks, no Rust I/O.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent keeps alive until we exec or exit.
    let args = unsafe { &*(arg as *const ChildArgs) };
    fn fail(args: &ChildArgs, errno: i32) -> ! {
        args.error.store(errno.max(1), Ordering::Release);
        // SAFETY: _exit is async-signal-safe and runs no destructors or atexit handlers.
        unsafe { libc::_exit(127) }
    }
    // SAFETY: errno is thread-local (here: the parent thread's, which is suspended).
    let errno = || unsafe { *libc::__errno_location() };
    // SAFETY: every call below is a thin wrapper over a system call, with valid arguments.
    unsafe {
        // Our handlers live in memory we share: none may run here. Ignored signals stay
        // ignored across exec as with any spawn, except SIGPIPE, which Rust's runtime
        // ignores for itself (std's Command resets it too).
        for sig in 1..NSIG {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            if old.sa_sigaction != libc::SIG_DFL
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        // The task's root is the subreaper of its own tree (the setting survives exec): an
        // orphan anywhere below it — double fork, setsid, empty environment — is
        // reparented to the root, not to ramguard, so it stays in the task's tree where
        // ramguard and the sentinel find it by ancestry (`tree.rs`, `sentinel.rs`). No
        // `PR_SET_PDEATHSIG`: the kernel's kill of the root on ramguard's death would
        // scatter that tree to init before the sentinel could walk it.
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            fail(args, errno());
        }
        // ramguard died before we got here: the sentinel may already have swept.
        if libc::getppid() != args.parent {
            fail(args, libc::ESRCH);
        }
        if libc::setpgid(0, 0) != 0 {
            fail(args, errno());
        }
        // Rust's runtime keeps fds 0-2 open, so our three are all above 2 and no dup2
        // overwrites another's source.
        for (target, &fd) in args.fds.iter().enumerate() {
            if libc::dup2(fd, target as libc::c_int) < 0 {
                fail(args, errno());
            }
        }
        let mut empty = unsafe_zeroed_sigset();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // Up to here the child ran with ramguard's short slice, so it reached exec soon;
        // the task itself gets the default one. A refusal is no reason not to run it.
        if args.default_slice {
            super::latency::default_slice();
        }
        // As execvp: a missing candidate tries the next; a found one that cannot run is
        // remembered (EACCES) unless a later one runs.
        let mut reported = libc::ENOENT;
        for &path in args.candidates {
            libc::execve(path, args.argv, args.envp);
            match errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => reported = libc::EACCES,
                libc::ENOEXEC => {
                    // Writing one pointer into the parent's prepared array allocates nothing.
                    *args.sh_argv.add(1) = path;
                    libc::execve(SH_PATH.as_ptr(), args.sh_argv as *const _, args.envp);
                    fail(args, errno());
                }
                other => fail(args, other),
            }
        }
        fail(args, reported)
    }
}

/// A stack for the child: anonymous memory with a guard page at its low end, so an overflow
/// faults the child instead of writing over our heap.
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

impl Stack {
    fn new() -> std::io::Result<Stack> {
        let page = rustix::param::page_size();
        let len = CHILD_STACK + page;
        // SAFETY: a fresh private anonymous mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the first page of our own mapping.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer (stacks grow down on every Linux target we build for).
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our mapping, which clone expects as the stack top.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; the child no longer runs on it.
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

/// Raises the kernel's OOM preference for a process; failures only cost precision.
pub fn set_oom_score_adj(pid: u32, adj: i32) {
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string());
}

/// Returns true if and only if `pid` names a live process (or a zombie not yet reaped).
pub fn alive(pid: u32) -> bool {
    Pid::from_raw(pid as i32).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn with_nothing_exported_every_thread_variable_is_the_thread_count() {
        let caps = resolve_thread_caps(Some(2), true, &[]);
        assert_eq!(caps.env.len(), THREAD_VARS.len());
        assert!(caps.applied.values().all(|v| v == "2"));
        assert_eq!(caps.warning, None);
    }

    #[test]
    fn one_exported_variable_leads_the_whole_family() {
        // The bug this pins: OMP_NUM_THREADS=3 exported, OPENBLAS_NUM_THREADS=1 set by
        // ramguard, which OpenBLAS reads first: numpy ran one thread.
        let caps = resolve_thread_caps(Some(1), false, &vars(&[("OMP_NUM_THREADS", "3")]));
        assert!(
            caps.applied.values().all(|v| v == "3"),
            "{:?}",
            caps.applied
        );
        assert_eq!(caps.applied.len(), THREAD_VARS.len());
        assert!(!caps.env.iter().any(|(k, _)| k == "OMP_NUM_THREADS"));
        assert_eq!(
            caps.warning, None,
            "the default --threads is not a conflict"
        );
    }

    #[test]
    fn an_exported_zero_is_not_copied_to_the_family() {
        // OMP_NUM_THREADS=0 copied as RAYON_NUM_THREADS=0 would mean "all cores" there.
        let caps = resolve_thread_caps(Some(1), false, &vars(&[("OMP_NUM_THREADS", "0")]));
        assert_eq!(caps.applied["OMP_NUM_THREADS"], "0");
        assert_eq!(caps.applied["RAYON_NUM_THREADS"], "1");
        assert_eq!(caps.applied["NUMBA_NUM_THREADS"], "1");
    }

    #[test]
    fn disagreeing_exports_and_an_overridden_threads_flag_are_said() {
        let caps = resolve_thread_caps(
            Some(2),
            true,
            &vars(&[("OMP_NUM_THREADS", "4,2"), ("MKL_NUM_THREADS", "1")]),
        );
        assert_eq!(caps.applied["OMP_NUM_THREADS"], "4,2");
        assert_eq!(caps.applied["MKL_NUM_THREADS"], "1");
        assert_eq!(caps.applied["OPENBLAS_NUM_THREADS"], "4");
        let w = caps.warning.unwrap();
        assert!(
            w.contains("disagree") && w.contains("MKL_NUM_THREADS=1"),
            "{w}"
        );
        assert!(w.contains("--threads 2 gives way"), "{w}");
    }

    #[test]
    fn no_thread_caps_sets_nothing_but_records_the_exports() {
        let caps = resolve_thread_caps(None, false, &vars(&[("OMP_NUM_THREADS", "8")]));
        assert!(caps.env.is_empty());
        assert_eq!(caps.applied.len(), 1);
    }

    #[test]
    fn candidates_follow_path_like_execvp() {
        let c = candidates("true", Some(OsStr::new("/a::/b"))).unwrap();
        let got: Vec<&[u8]> = c._owned.iter().map(|s| s.as_bytes()).collect();
        assert_eq!(got, [&b"/a/true"[..], b"true", b"/b/true"]);
        let c = candidates("./x", Some(OsStr::new("/a"))).unwrap();
        assert_eq!(c._owned.len(), 1);
        assert_eq!(*c.ptrs.last().unwrap(), std::ptr::null());
    }

    #[test]
    fn extra_environment_overrides_and_the_last_entry_wins() {
        let env = environment(&[
            ("PATH".into(), "/x".into()),
            ("RG_T".into(), "1".into()),
            ("RG_T".into(), "2".into()),
        ])
        .unwrap();
        let n = env.ptrs.len() - 1;
        assert_eq!(env.ptrs[n], std::ptr::null());
        let vars: Vec<&[u8]> = env.ptrs[..n]
            .iter()
            // SAFETY: every pointer but the last is a live NUL-terminated entry.
            .map(|&p| unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes())
            .collect();
        assert_eq!(vars.iter().filter(|v| v.starts_with(b"PATH=")).count(), 1);
        assert!(vars.contains(&&b"PATH=/x"[..]));
        assert!(vars.contains(&&b"RG_T=2"[..]));
        assert!(!vars.contains(&&b"RG_T=1"[..]));
    }
}
