//! How often the supervisor samples memory, as one pure rule that the supervisor runs and
//! `policy::sim` replays, so a policy tuned in simulation sees the samples it will see on a
//! real host.
//!
//! The interval is the time the faster of the seen and assumed fill rates needs to use up
//! the headroom (to the brake level, the budget or a task's cap), halved, within
//! [`MIN_TICK`] … [`MAX_TICK`]; [`FAST_TICK`] while *measured* growth would use it up within
//! [`FAST_HORIZON`], and [`FAST_HOLD`] after. The assumed rate is what the CPUs the tasks can
//! use are able to fault in ([`FILL_PER_CPU`] each): after a quiet stretch, a sweep whose
//! tasks all jump at once must still be sampled before they cross the line, and a rate
//! assumed for one CPU let three tasks jumping 2.3 GiB in 0.5 s outrun a 500 ms tick.

use std::time::Duration;

use super::Config;
use crate::Bytes;

/// Fastest and slowest ordinary sampling intervals (DESIGN.md: 20 ms … 500 ms).
pub const MIN_TICK: Duration = Duration::from_millis(20);
/// See [`MIN_TICK`].
pub const MAX_TICK: Duration = Duration::from_millis(500);
/// The floor while memory is seen filling fast enough to reach a line within
/// [`FAST_HORIZON`]: at 2 GiB/s, 20 ms between samples lets a task overshoot by 40 MiB and
/// delays the brake by 10 ms on average. A tick costs about 90 µs with 8 tasks (4.3 % of a
/// core at this rate), and the floor lasts only as long as the race (plus [`FAST_HOLD`]), so
/// it costs nothing otherwise; a steady budget, however tight, never arms it.
pub const FAST_TICK: Duration = Duration::from_millis(2);
/// See [`FAST_TICK`].
pub const FAST_HORIZON: Duration = Duration::from_millis(100);
/// How long the fast floor outlives the last fast fill seen: tasks grow in steps (a 2 GiB/s
/// allocation loop touches 20 MiB, then does nothing for 10 ms) and a brake needs its victim
/// gone before it judges memory again.
pub const FAST_HOLD: Duration = Duration::from_millis(100);
/// What one CPU can fault in when a task touches fresh memory as fast as it can: 2 GiB/s
/// (page faults plus zeroing, measured 2–4 GiB/s per core on current x86 and arm64).
pub const FILL_PER_CPU: f64 = 2.0 * (1u64 << 30) as f64;

/// The headroom the next sample must come before: memory fills from either side — the
/// host's available memory falling toward the brake level, or the tasks' total rising toward
/// `--mem` (on a big machine the budget binds long before the host) — and a task filling
/// toward `--task-mem` (a /dev/shm file grows as fast as it is written) is sampled as
/// closely as one filling toward the budget. `largest` is the largest task's memory.
pub fn headroom(cfg: &Config, available: Bytes, used: Bytes, largest: Bytes) -> Bytes {
    let cap_room = cfg
        .task_cap
        .map_or(Bytes(u64::MAX), |cap| cap.saturating_sub(largest));
    available
        .saturating_sub(cfg.brake_level)
        .min(cfg.budget.saturating_sub(used))
        .min(cap_room)
}

/// The sampling rule's state: the fill rate seen and the window it is measured over.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// The fill rate assumed when nothing faster was seen, in bytes per second.
    assumed: f64,
    fill_rate: f64,
    fast_until: Duration,
    /// The sample at least [`MIN_TICK`] before: fill rates are measured over that window,
    /// since over a 2 ms tick a task growing in steps reads as nothing or as a burst.
    base: Option<(Duration, Bytes, Bytes)>,
}

impl Pacer {
    /// A pacer for tasks that can grow on `cpus` CPUs at once (the smaller of the usable
    /// CPUs and `-j`; at least one).
    pub fn new(cpus: u32) -> Pacer {
        let assumed = FILL_PER_CPU * f64::from(cpus.max(1));
        Pacer {
            assumed,
            fill_rate: assumed,
            fast_until: Duration::ZERO,
            base: None,
        }
    }

    /// Takes a sample — the host's available memory, what the tasks hold together, and the
    /// headroom to the nearest line — and returns the interval until the next one.
    pub fn next(
        &mut self,
        now: Duration,
        available: Bytes,
        used: Bytes,
        headroom: Bytes,
    ) -> Duration {
        match self.base {
            Some((t0, a0, u0)) => {
                let dt = now.saturating_sub(t0).as_secs_f64();
                if dt >= MIN_TICK.as_secs_f64() {
                    let host = a0.get().saturating_sub(available.get()) as f64 / dt;
                    let tasks = used.get().saturating_sub(u0.get()) as f64 / dt;
                    let rate = host.max(tasks);
                    if rate > 0.0 {
                        self.fill_rate = self.fill_rate.max(rate) * 0.9 + self.assumed * 0.1;
                        // Measured (not assumed) growth that reaches the line soon.
                        if (headroom.get() as f64) < rate * FAST_HORIZON.as_secs_f64() {
                            self.fast_until = now + FAST_HOLD;
                        }
                    }
                    self.base = Some((now, available, used));
                }
            }
            None => self.base = Some((now, available, used)),
        }
        let floor = if now < self.fast_until {
            FAST_TICK
        } else {
            MIN_TICK
        };
        let secs = headroom.get() as f64 / self.fill_rate.max(self.assumed) / 2.0;
        Duration::from_secs_f64(secs.clamp(floor.as_secs_f64(), MAX_TICK.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn far_from_every_line_it_samples_at_the_slowest_interval() {
        let mut p = Pacer::new(1);
        assert_eq!(
            p.next(Duration::ZERO, Bytes(20 * GIB), Bytes(0), Bytes(10 * GIB)),
            MAX_TICK
        );
    }

    #[test]
    fn more_cpus_that_can_fill_at_once_mean_closer_samples() {
        // 3 GiB of headroom: one CPU fills it in 1.5 s (tick 500 ms), two in 0.75 s (375 ms),
        // eight in 0.19 s (94 ms).
        let tick =
            |cpus| Pacer::new(cpus).next(Duration::ZERO, Bytes(4 * GIB), Bytes(0), Bytes(3 * GIB));
        assert_eq!(tick(1), MAX_TICK);
        assert_eq!(tick(2), Duration::from_millis(375));
        assert_eq!(tick(8), Duration::from_secs_f64(3.0 / 16.0 / 2.0));
    }

    #[test]
    fn measured_growth_near_a_line_arms_the_fast_floor_for_a_while() {
        let mut p = Pacer::new(1);
        let t = Duration::from_millis;
        p.next(t(0), Bytes(4 * GIB), Bytes(0), Bytes(GIB));
        // 512 MiB in 100 ms is 5 GiB/s; 10 MiB of headroom goes in 2 ms.
        let next = p.next(t(100), Bytes(4 * GIB), Bytes(GIB / 2), Bytes(10 << 20));
        assert_eq!(next, FAST_TICK);
        // Still fast within the hold, though nothing grew since.
        assert_eq!(
            p.next(t(150), Bytes(4 * GIB), Bytes(GIB / 2), Bytes(10 << 20)),
            FAST_TICK
        );
        // After it, the ordinary floor.
        assert_eq!(
            p.next(t(300), Bytes(4 * GIB), Bytes(GIB / 2), Bytes(10 << 20)),
            MIN_TICK
        );
    }
}
