//! Thin, unsafe-encapsulating wrappers over the Linux primitives memhog
//! needs: anonymous and shared mappings that are really made resident,
//! signal dispositions, and `fork`.
//!
//! memhog is single-threaded, so calling `fork` is sound; the code that runs
//! in forked children only makes raw system calls and never returns into
//! the Rust runtime (it ends in `_exit`).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Granularity (in bytes) at which long touch loops check for SIGTERM.
const TOUCH_CHUNK: usize = 1 << 20;

/// Longest single sleep: every wait is sliced so that a termination signal
/// is noticed within this time.
pub const SLICE: Duration = Duration::from_millis(10);

/// The system page size.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// Rounds `n` up to a multiple of the page size.
pub fn round_up_to_page(n: u64) -> u64 {
    let page = page_size() as u64;
    n.div_ceil(page).saturating_mul(page)
}

/// A termination signal (TERM or INT) was received; the number is inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminated(pub i32);

static TERMINATED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_term(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TERMINATED.store(sig, Ordering::SeqCst);
}

/// Returns `Err` if a termination signal has arrived since startup.
pub fn check_terminated() -> Result<(), Terminated> {
    match TERMINATED.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(Terminated(sig)),
    }
}

fn set_disposition(sig: i32, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the
    // handler is either SIG_DFL, SIG_IGN or `on_term`, which is
    // async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Installs memhog's handlers: SIGTERM and SIGINT set a flag that the
/// sleep and touch loops poll, so memhog can clean up (kill its children,
/// unlink its shm file) before dying by that same signal. With
/// `ignore_term`, SIGTERM is ignored instead.
pub fn install_term_handlers(ignore_term: bool) -> io::Result<()> {
    let handler = on_term as extern "C" fn(libc::c_int) as libc::sighandler_t;
    set_disposition(
        libc::SIGTERM,
        if ignore_term { libc::SIG_IGN } else { handler },
    )?;
    set_disposition(libc::SIGINT, handler)?;
    Ok(())
}

static CONTINUED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_cont(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    CONTINUED.store(true, Ordering::SeqCst);
}

/// Installs the SIGCONT handler [`RunClock`] reads: it runs when memhog is continued after
/// SIGSTOP (SIGCONT's default action, continuing, happens either way).
pub fn install_cont_handler() -> io::Result<()> {
    let handler = on_cont as extern "C" fn(libc::c_int) as libc::sighandler_t;
    set_disposition(libc::SIGCONT, handler)
}

/// A clock of the time memhog ran: wall time less the time it spent stopped.
///
/// Real work makes no progress while its process is stopped (SIGSTOP, as `ramguard` pauses
/// a task and GNU parallel's `--memsuspend` suspends one). A ramp and hold scheduled by
/// wall time did: a memhog continued after a pause caught up at once (touched every step it
/// had missed) and ended when it would have without the pause, so pausing looked free in
/// benchmarks. The clock is read at least every [`SLICE`]; an interval during which
/// SIGCONT arrived counts for at most one slice. With `wall`, it is plain wall time (the
/// old schedule). A tree frozen without signals (a cgroup freezer) is not seen.
#[derive(Debug)]
pub struct RunClock {
    last: Instant,
    ran: Duration,
    wall: bool,
}

impl RunClock {
    /// A clock at zero, now.
    pub fn start(wall: bool) -> RunClock {
        CONTINUED.store(false, Ordering::SeqCst);
        RunClock {
            last: Instant::now(),
            ran: Duration::ZERO,
            wall,
        }
    }

    /// The time run since [`RunClock::start`].
    pub fn now(&mut self) -> Duration {
        let t = Instant::now();
        let dt = t - self.last;
        self.last = t;
        let stopped = CONTINUED.swap(false, Ordering::SeqCst);
        self.ran += match stopped && !self.wall {
            true => dt.min(SLICE),
            false => dt,
        };
        self.ran
    }

    /// Sleeps until the clock reads `at`, in slices of at most [`SLICE`], returning early
    /// with `Err` if a termination signal arrives.
    pub fn sleep_until(&mut self, at: Duration) -> Result<(), Terminated> {
        loop {
            check_terminated()?;
            let now = self.now();
            if now >= at {
                return Ok(());
            }
            std::thread::sleep((at - now).min(SLICE));
        }
    }
}

/// Dispositions for forked children and the escapee: the default action for
/// SIGTERM/SIGINT (so they die at once), except SIGTERM stays ignored under
/// `--ignore-term`. Only raw system calls: safe to use after `fork`.
fn child_dispositions(ignore_term: bool) {
    // SAFETY: plain sigaction calls with SIG_DFL / SIG_IGN.
    let _ = set_disposition(
        libc::SIGTERM,
        if ignore_term {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        },
    );
    let _ = set_disposition(libc::SIGINT, libc::SIG_DFL);
}

/// Makes this process die by `sig`: resets its disposition to the default,
/// disables core dumps (so SEGV/BUS/ABRT leave no core files behind),
/// unblocks it and raises it. Returns only if the signal's default action
/// does not terminate the process (e.g. CHLD, WINCH, URG, or STOP followed
/// by CONT).
pub fn die_by_signal(sig: i32) {
    let core = rustix::process::Resource::Core;
    let limit = rustix::process::getrlimit(core);
    if limit.current != Some(0) {
        let _ = rustix::process::setrlimit(
            core,
            rustix::process::Rlimit {
                current: Some(0),
                maximum: limit.maximum,
            },
        );
    }
    let _ = set_disposition(sig, libc::SIG_DFL);
    // SAFETY: sigset manipulation on a local, then sigprocmask and raise.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// A memory mapping whose pages memhog touches to make them resident.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Bytes from the start that have been touched so far.
    touched: usize,
}

impl Mapping {
    /// Maps `len` bytes of private anonymous memory (not yet resident).
    pub fn anonymous(len: usize) -> io::Result<Self> {
        Self::map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
    }

    /// Maps the first `len` bytes of `file` shared, read-write.
    pub fn shared_file(file: &File, len: usize) -> io::Result<Self> {
        Self::map(len, libc::MAP_SHARED, file.as_raw_fd())
    }

    fn map(len: usize, flags: libc::c_int, fd: libc::c_int) -> io::Result<Self> {
        if len == 0 {
            return Ok(Self {
                ptr: NonNull::dangling(),
                len: 0,
                touched: 0,
            });
        }
        // SAFETY: a fresh mapping at a kernel-chosen address; nothing else
        // aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: NonNull::new(ptr.cast()).expect("mmap returned NULL"),
            len,
            touched: 0,
        })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes a nonzero byte into every page of the first `upto` bytes
    /// (clamped to the mapping's length) not touched yet, so that the kernel
    /// has to back them with real memory. Checks for termination every
    /// MiB. For a shared file mapping on a full tmpfs this raises SIGBUS,
    /// which is deliberately not caught.
    pub fn touch_to(&mut self, upto: usize) -> Result<(), Terminated> {
        let upto = upto.min(self.len);
        let page = page_size();
        while self.touched < upto {
            check_terminated()?;
            let chunk_end = (self.touched + TOUCH_CHUNK).min(upto);
            let mut off = self.touched;
            while off < chunk_end {
                // SAFETY: off < len, inside our own read-write mapping.
                // Volatile so the store cannot be optimised away.
                unsafe { self.ptr.as_ptr().add(off).write_volatile(1) };
                off += page;
            }
            // `off` may overshoot `chunk_end` by less than a page: that page
            // was touched, so record progress in whole pages.
            self.touched = off.min(self.len);
        }
        Ok(())
    }

    /// Touches the whole mapping.
    pub fn touch_all(&mut self) -> Result<(), Terminated> {
        self.touch_to(self.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmapping exactly the region we mapped.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// Result of [`fork`].
#[derive(Debug)]
pub enum Fork {
    /// In the parent, with the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// Forks. The caller must make sure the process is single-threaded (memhog
/// always is) and that the child only makes raw system calls before
/// `_exit`.
pub fn fork() -> io::Result<Fork> {
    // Flush Rust's buffered stdout so the child does not inherit (and later
    // duplicate) pending output.
    use std::io::Write as _;
    let _ = io::stdout().flush();
    // SAFETY: memhog is single-threaded; see the function docs.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Ends the current (forked) process without running any Rust or libc
/// cleanup.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call.
    unsafe { libc::_exit(code) }
}

/// Body of a `--children` child: dies when the parent dies (PDEATHSIG
/// SIGKILL), otherwise sleeps in `pause` until a signal kills it. Writes
/// none of the inherited pages.
pub fn child_main(parent: libc::pid_t, ignore_term: bool) -> ! {
    // SAFETY: raw system calls only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        // The parent may have died before prctl took effect.
        if libc::getppid() != parent {
            libc::_exit(0);
        }
    }
    child_dispositions(ignore_term);
    loop {
        // SAFETY: pause just waits for a signal.
        unsafe { libc::pause() };
    }
}

/// Options for the escapee grandchild.
#[derive(Debug, Clone, Copy)]
pub struct EscapeeSpec {
    /// Bytes to allocate and touch.
    pub size: usize,
    /// How long to live after touching them.
    pub hold: Duration,
    /// Keep the inherited stdin/stdout/stderr instead of /dev/null.
    pub keep_stdio: bool,
    /// Keep SIGTERM ignored.
    pub ignore_term: bool,
}

/// Double-forks an escapee: the intermediate child forks the grandchild and
/// exits at once; the grandchild calls `setsid` (leaving memhog's session
/// and process group), reports its pid to us over a pipe, allocates and
/// touches `size` bytes and sleeps for `hold`. Returns the grandchild's pid.
pub fn spawn_escapee(spec: EscapeeSpec) -> io::Result<libc::pid_t> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_fd, write_fd] = fds;
    match fork() {
        Err(e) => {
            // SAFETY: closing the fds we just created.
            unsafe {
                libc::close(read_fd);
                libc::close(write_fd);
            }
            Err(e)
        }
        Ok(Fork::Child) => {
            // Intermediate child.
            // SAFETY: raw system calls only, ending in _exit.
            unsafe { libc::close(read_fd) };
            match fork() {
                Ok(Fork::Child) => escapee_main(write_fd, spec),
                Ok(Fork::Parent(_)) => exit_now(0),
                Err(_) => exit_now(1),
            }
        }
        Ok(Fork::Parent(intermediate)) => {
            // SAFETY: closing our copy of the write end; we own read_fd from
            // here on.
            let mut reader = unsafe {
                libc::close(write_fd);
                <File as std::os::fd::FromRawFd>::from_raw_fd(read_fd)
            };
            let mut status = 0;
            // SAFETY: reaping our own child.
            while unsafe { libc::waitpid(intermediate, &mut status, 0) } == -1 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            let mut buf = [0u8; std::mem::size_of::<libc::pid_t>()];
            io::Read::read_exact(&mut reader, &mut buf).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "escapee did not report its pid (intermediate status {status:#x}): {e}"
                    ),
                )
            })?;
            Ok(libc::pid_t::from_ne_bytes(buf))
        }
    }
}

fn escapee_main(write_fd: libc::c_int, spec: EscapeeSpec) -> ! {
    // SAFETY: raw system calls only, ending in _exit; the mapping is our own.
    unsafe {
        libc::setsid();
        child_dispositions(spec.ignore_term);
        let pid = libc::getpid().to_ne_bytes();
        libc::write(write_fd, pid.as_ptr().cast(), pid.len());
        libc::close(write_fd);
        if !spec.keep_stdio {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                if null > 2 {
                    libc::close(null);
                }
            }
        }
        if spec.size > 0 {
            let ptr = libc::mmap(
                std::ptr::null_mut(),
                spec.size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if ptr == libc::MAP_FAILED {
                libc::_exit(1);
            }
            let base: *mut u8 = ptr.cast();
            let page = page_size();
            let mut off = 0;
            while off < spec.size {
                base.add(off).write_volatile(1);
                off += page;
            }
        }
        let ts = libc::timespec {
            tv_sec: spec.hold.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: spec.hold.subsec_nanos() as libc::c_long,
        };
        let mut req = ts;
        let mut rem: libc::timespec = std::mem::zeroed();
        while libc::nanosleep(&req, &mut rem) == -1 {
            // EINTR: sleep for the rest.
            req = rem;
        }
        libc::_exit(0);
    }
}

/// Sends SIGKILL to `pid` and reaps it (it must be our child).
pub fn kill_and_reap(pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) == -1 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
    Ok(())
}
