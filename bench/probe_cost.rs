//! What the probe's reads cost, per call: the supervisor's per-tick fast path (statm,
//! meminfo, the memory watch) against the slow path (smaps_rollup) and the full host report.
//!
//!     cargo bench -p ramguard --bench probe_cost
//!
//! The bench touches 256 MiB in its own process so `smaps_rollup` has real mappings to walk.
//!
//! The last section is the per-tick cost of measuring one task's tree, before and after the
//! one measure (issue 13): a five-process tree (this process and four forked children, all
//! sharing the 256 MiB ballast and a 64 MiB file in /dev/shm). Before: summed `statm` RSS,
//! with PSS re-read once a second. After: the same `statm` reads, the fast estimate, the
//! `/dev/shm` watch (one directory `stat` plus one per task file) and the `smaps_rollup`
//! refinement at its steady-state rate. Both at a 20 ms tick, so "once a second" is one tick
//! in 50; compare the means, which include the slow ticks.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ramguard::probe::{self, process::ProcReader, MemoryWatch, Root};
use ramguard::supervisor::measure::{self, Meter};
use ramguard::supervisor::shm::ShmWatch;
use ramguard::supervisor::tree::Trees;
use ramguard_core::Bytes;

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    let median = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    let mean = samples.iter().sum::<Duration>() / iterations;
    println!(
        "{name:<40} median {:>9.1} µs   p99 {:>9.1} µs   mean {:>9.1} µs   ({iterations} calls)",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6
    );
}

fn main() {
    let mut ballast = vec![0u8; 256 << 20];
    // Write every page so the mapping is resident, not just reserved.
    for i in (0..ballast.len()).step_by(4096) {
        ballast[i] = 1;
    }
    black_box(&ballast);
    let pid = std::process::id();
    let reader = ProcReader::new(Root::host());
    let rss = reader.statm(pid).unwrap().unwrap().rss;
    println!("bench process RSS: {rss}");

    measure("statm (one process)", 10_000, || {
        black_box(reader.statm(pid).unwrap());
    });
    measure("read /proc/meminfo", 10_000, || {
        black_box(std::fs::read_to_string("/proc/meminfo").unwrap());
    });
    let report = probe::report(&Root::host()).unwrap();
    let mut watch = MemoryWatch::new(Root::host(), &report);
    measure("memory watch (meminfo + limited levels)", 10_000, || {
        black_box(watch.read().unwrap());
    });
    measure("smaps_rollup (256 MiB RSS)", 500, || {
        black_box(reader.rollup(pid).unwrap());
    });
    measure("full host report (ramguard probe)", 500, || {
        black_box(probe::report(&Root::host()).unwrap());
    });
    tree_tick(&reader, pid);
}

/// A forked child that sleeps until killed; shares the parent's ballast copy-on-write.
fn fork_sleeper() -> u32 {
    // SAFETY: the child only calls async-signal-safe functions (pause, _exit).
    match unsafe { libc::fork() } {
        0 => loop {
            // SAFETY: pause only waits for a signal.
            unsafe { libc::pause() };
        },
        pid if pid > 0 => pid as u32,
        _ => panic!("fork failed"),
    }
}

fn tree_tick(reader: &ProcReader, me: u32) {
    // The watch starts before the file exists, and the file stays open: it is the task's.
    let mut shm = ShmWatch::new(Root::host());
    let seg = format!("/dev/shm/ramguard-bench-{me}");
    std::fs::write(&seg, vec![7u8; 64 << 20]).unwrap();
    let held = std::fs::File::open(&seg).unwrap();
    let children: Vec<u32> = (0..4).map(|_| fork_sleeper()).collect();
    let mut pids = vec![me];
    pids.extend(&children);
    let mut trees = Trees::new(format!("bench-{me}"));
    trees.add(0, me);
    let statms = || -> Vec<_> {
        pids.iter()
            .filter_map(|&p| reader.statm(p).ok().flatten())
            .collect()
    };
    let set = measure::measure_set(reader, &pids, Bytes(64 << 20));
    println!(
        "five-process tree: summed RSS {}, PSS {}, held (the one measure) {}",
        set.rss, set.pss, set.held
    );
    // Before: summed statm RSS, with PSS re-read once a second (one tick in 50).
    let mut before_tick = 0u64;
    measure("tree tick before: statm × 5 (+ PSS 1/s)", 10_000, || {
        before_tick += 1;
        let rss: Bytes = statms().iter().map(|s| s.rss).sum();
        if before_tick % 50 == 1 {
            let pss: Bytes = pids
                .iter()
                .filter_map(|&p| reader.rollup(p).ok().flatten())
                .map(|r| r.pss)
                .sum();
            black_box(pss);
        }
        black_box(rss);
    });
    let mut meter = Meter::default();
    let mut tick = 0u64;
    measure(
        "tree tick after: statm × 5 + shm watch + estimate",
        10_000,
        || {
            // Refinement is due once a second: one tick in 50 at the 20 ms floor.
            tick += 1;
            let now = std::time::Duration::from_millis(20 * tick);
            shm.scan(now, &trees, &[0]);
            let s = statms();
            black_box(meter.update(reader, &pids, &s, shm.allocated(0), now));
        },
    );
    println!(
        "  (refinements in that run: {}; the task's shm files: {})",
        meter.refinements,
        shm.allocated(0)
    );
    measure("shm watch alone (directory unchanged)", 10_000, || {
        tick += 1;
        shm.scan(std::time::Duration::from_millis(tick), &trees, &[0]);
    });
    measure("refinement: smaps_rollup × 5", 200, || {
        black_box(measure::measure_set(reader, &pids, Bytes::ZERO));
    });
    for c in children {
        // SAFETY: plain syscalls on our own children.
        unsafe {
            libc::kill(c as i32, libc::SIGKILL);
            libc::waitpid(c as i32, std::ptr::null_mut(), 0);
        }
    }
    drop(held);
    let _ = std::fs::remove_file(&seg);
}
