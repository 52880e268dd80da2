//! A short scheduler slice for the supervisor's thread, so that it runs as soon as it is
//! woken (a child exited, a child it spawned has exec'd, a sample is due) instead of
//! waiting behind the tasks it supervises.
//!
//! With `-j` tasks busy on fewer CPUs, the supervisor is one runnable thread among many at
//! the same priority: measured on 2 CPUs running 1,000 trivial tasks at `-j 8`, it spent a
//! third of the sweep woken but not running (0.24 s of 0.68 s, `perf sched timehist`), and
//! every slot it had not refilled meanwhile stood empty. Linux's EEVDF scheduler (6.12+)
//! lets a thread ask for a shorter slice (`sched_setattr` with `sched_runtime` under
//! SCHED_OTHER, no privilege needed): it gets an earlier deadline, so its wake-up preempts
//! the running task, and it still gets no more CPU than its fair share. Nothing else
//! changes: the same policy, the same nice value, the same weight. Older kernels ignore the
//! field; a refusal is ignored too (it only costs speed).
//!
//! A child inherits its parent's slice: [`spawn`](super::spawn) gives the task the default
//! slice back ([`task_attr`]) just before it execs, so tasks run exactly as they would
//! without ramguard. A user who set ramguard's scheduling policy (`chrt`: batch, idle,
//! real-time) keeps it and its tasks inherit it as before: only a SCHED_OTHER thread is
//! changed. (The kernel does not say whether a SCHED_OTHER slice was chosen or is the
//! default; a custom slice set on ramguard itself is not passed on to its tasks.)

use std::sync::OnceLock;

/// The slice asked for: the shortest the kernel grants (it clamps to 0.1–100 ms).
const SLICE_NS: u64 = 100_000;

/// The attributes a task gets back before it execs, once the supervisor's slice is short.
static TASK_ATTR: OnceLock<libc::sched_attr> = OnceLock::new();

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
        sched_flags: 0,
        ..current
    };
    if set_attr(&short) != 0 {
        return false;
    }
    // A zero runtime is the kernel's default slice.
    let _ = TASK_ATTR.set(libc::sched_attr {
        sched_flags: 0,
        sched_runtime: 0,
        ..current
    });
    true
}

/// What a task's process sets before it execs (ramguard's policy and nice value, the
/// default slice), if ramguard's slice was shortened.
pub fn task_attr() -> Option<&'static libc::sched_attr> {
    TASK_ATTR.get()
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

/// Sets the calling thread's scheduling attributes; 0 on success. Only makes a system
/// call, so a `CLONE_VM` child may call it before it execs.
pub fn set_attr(attr: &libc::sched_attr) -> libc::c_long {
    let mut attr = *attr;
    attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: the pointer is valid for reads for the duration of the call.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortened_slice_is_undone_by_the_attributes_tasks_get() {
        // On a thread of its own: the slice is per thread.
        std::thread::spawn(|| {
            let before = get_attr().expect("sched_getattr works on Linux");
            if !shorten_slice() {
                return; // a user-chosen policy or an older kernel: nothing changed
            }
            let short = get_attr().unwrap();
            assert_eq!(short.sched_runtime, SLICE_NS);
            assert_eq!(short.sched_nice, before.sched_nice);
            // What a child gets back: the default slice, which this thread had before.
            assert_eq!(set_attr(task_attr().unwrap()), 0);
            let after = get_attr().unwrap();
            assert_eq!(after.sched_runtime, before.sched_runtime);
            assert_eq!(after.sched_policy, before.sched_policy);
            assert_eq!(after.sched_nice, before.sched_nice);
        })
        .join()
        .unwrap();
    }
}
