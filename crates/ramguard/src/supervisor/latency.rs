//! A short scheduler slice for the supervisor's thread, so that it runs as soon as it is
//! woken (a child exited, a child it spawned has exec'd, a sample is due) instead of
//! waiting behind the tasks it supervises.
//!
//! With `-j` tasks busy on fewer CPUs, the supervisor is one runnable thread among many at
//! the same priority: measured on 2 CPUs running 1,000 trivial tasks at `-j 8`, it spent a
//! third of the sweep woken but not running (0.24 s of 0.68 s, `perf sched timehist`), and
//! every slot it had not refilled meanwhile stood empty. Linux's EEVDF scheduler (6.12+)
//! lets a thread ask for a shorter slice (`sched_setattr` with `sched_runtime` under a
//! fair policy, no privilege needed): it gets an earlier deadline, so its wake-up can
//! preempt the running task, and it still gets no more CPU than its fair share. Nothing
//! else changes: the same policy, the same nice value, the same weight. Older kernels
//! ignore the field; a refusal is ignored too (it only costs speed).
//!
//! A child inherits the slice of the thread that spawned it: [`spawn`](super::spawn) calls
//! [`default_slice`] in the child just before it execs, which keeps whatever policy and
//! nice value the child inherited (a `renice` or `chrt` of ramguard still reaches its
//! tasks) and only gives back the kernel's default slice, so tasks run as they would
//! without ramguard. A thread under a policy the user chose (batch, idle, real-time) is
//! left alone.

use std::sync::atomic::{AtomicBool, Ordering};

/// The slice asked for: the shortest the kernel grants (it clamps to 0.1–100 ms).
const SLICE_NS: u64 = 100_000;

/// Some thread of ramguard was given a short slice: its children must drop it.
static SHORTENED: AtomicBool = AtomicBool::new(false);

/// Asks for a short slice for the calling thread (the supervisor's loop). Returns true if
/// and only if the kernel took it.
pub fn shorten_slice() -> bool {
    let Some(current) = get_attr() else {
        return false;
    };
    // Only the default policy: one the user chose stays as it is.
    if current.sched_policy != libc::SCHED_OTHER as u32 {
        return false;
    }
    let short = libc::sched_attr {
        sched_runtime: SLICE_NS,
        sched_flags: current.sched_flags & libc::SCHED_FLAG_RESET_ON_FORK as u64,
        ..current
    };
    if set_attr(&short) != 0 {
        return false;
    }
    SHORTENED.store(true, Ordering::Release);
    true
}

/// Returns true if and only if tasks must be given the default slice back before they
/// exec ([`default_slice`]).
pub fn shortened() -> bool {
    SHORTENED.load(Ordering::Acquire)
}

/// Gives the calling thread the kernel's default slice, keeping its policy and nice value
/// (a fair policy only). Makes system calls and nothing else, so a `CLONE_VM` child may
/// call it before it execs.
pub fn default_slice() {
    let Some(mut attr) = get_attr() else {
        return;
    };
    let fair = [libc::SCHED_OTHER, libc::SCHED_BATCH, libc::SCHED_IDLE];
    if !fair.iter().any(|&p| attr.sched_policy == p as u32) {
        return;
    }
    // A zero runtime is the default slice.
    attr.sched_runtime = 0;
    attr.sched_flags &= libc::SCHED_FLAG_RESET_ON_FORK as u64;
    set_attr(&attr);
}

/// The calling thread's scheduling attributes.
fn get_attr() -> Option<libc::sched_attr> {
    // SAFETY: an all-zero sched_attr is a valid value of this plain C struct.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::sched_attr>() as libc::c_uint;
    // SAFETY: the pointer is valid for writes of `size` bytes; 0 is the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0) };
    (r == 0).then_some(attr)
}

/// Sets the calling thread's scheduling attributes; 0 on success.
fn set_attr(attr: &libc::sched_attr) -> libc::c_long {
    let mut attr = *attr;
    attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: the pointer is valid for reads for the duration of the call.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortened_slice_is_undone_keeping_policy_and_nice() {
        // On a thread of its own: the slice is per thread.
        std::thread::spawn(|| {
            let before = get_attr().expect("sched_getattr works on Linux");
            if !shorten_slice() {
                return; // a user-chosen policy: nothing changed
            }
            let short = get_attr().unwrap();
            assert_eq!(short.sched_runtime, SLICE_NS);
            assert_eq!(short.sched_nice, before.sched_nice);
            assert!(shortened());
            default_slice();
            let after = get_attr().unwrap();
            assert_eq!(after.sched_runtime, before.sched_runtime);
            assert_eq!(after.sched_policy, before.sched_policy);
            assert_eq!(after.sched_nice, before.sched_nice);
        })
        .join()
        .unwrap();
    }
}
