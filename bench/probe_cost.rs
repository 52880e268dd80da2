//! What the probe's reads cost, per call: the supervisor's per-tick fast path (statm,
//! meminfo, the memory watch) against the slow path (smaps_rollup) and the full host report.
//!
//!     cargo bench -p ramguard --bench probe_cost
//!
//! The bench touches 256 MiB in its own process so `smaps_rollup` has real mappings to walk.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ramguard::probe::{self, process::ProcReader, MemoryWatch, Root};

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
    println!(
        "{name:<40} median {:>9.1} µs   p99 {:>9.1} µs   ({iterations} calls)",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
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
}
