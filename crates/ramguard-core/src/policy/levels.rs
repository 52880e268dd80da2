//! Where the reserve, the brake and the hard kill sit: above every killer the host has.
//!
//! A host may act on low memory before the kernel does: a watchdog daemon reboots below its
//! `min-memory`, earlyoom kills the largest process below its threshold. The highest such
//! line is the **danger line**; with none known, a floor for small machines stands in for
//! it ([`DANGER_FLOOR`], never more than a sixteenth of the memory: about where a small
//! machine's own daemons and reclaim start to thrash). Above it, in order:
//!
//! ```text
//! hard kill = danger + margin/2      KILL at once, no grace
//! brake     = danger + margin        TERM the newest task (at least half the reserve)
//! reserve   = brake  + margin        admission and suspend keep available above this
//! ```
//!
//! with `margin` = [`MARGIN`], or half the danger line if that is less. A reserve given by
//! the user is kept as given; the brake and the hard kill stay above the line regardless.
//! The old rule (brake at half the reserve, hard kill at half the brake) put the brake of a
//! 4 GiB machine at 256 MiB, on top of the line its watchdog or referee acts at, and the
//! hard kill below it: memory fell 160 MiB under the reserve before anything fired.

use crate::units::Bytes;

/// Stands in for the danger line where no killer is known (at most a sixteenth of memory).
pub const DANGER_FLOOR: Bytes = Bytes(256 << 20);
/// Distance between the danger line, the hard kill, the brake and the reserve.
pub const MARGIN: Bytes = Bytes(128 << 20);

/// The levels, resolved to bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// The highest line at which something on the host kills or reboots (or the floor).
    pub danger: Bytes,
    /// Headroom admission keeps free.
    pub reserve: Bytes,
    /// Below this much available memory the brake stops the newest task.
    pub brake: Bytes,
    /// Below this the brake kills at once.
    pub hard: Bytes,
}

/// The levels for memory `base` (the budget base: `--mem` or the effective limit), a
/// reserve if the user gave one, and the highest killer's line if the host has one.
pub fn levels(base: Bytes, reserve: Option<Bytes>, killer: Option<Bytes>) -> Levels {
    let floor = DANGER_FLOOR.min(base.scale(1.0 / 16.0));
    let danger = killer.unwrap_or_default().max(floor);
    let margin = MARGIN.min(danger.scale(0.5));
    let default_reserve = base.scale(0.10).max(DANGER_FLOOR).min(base.scale(0.25));
    let brake = reserve
        .unwrap_or(default_reserve)
        .scale(0.5)
        .max(danger + margin);
    let hard = brake.scale(0.5).max(danger + margin.scale(0.5));
    let reserve = reserve.unwrap_or_else(|| default_reserve.max(brake + margin));
    Levels {
        danger,
        reserve,
        brake,
        hard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_4_gib_machine_brakes_above_the_floor_not_on_it() {
        let l = levels(Bytes(4096 * MIB), None, None);
        assert_eq!(l.danger, Bytes(256 * MIB));
        assert_eq!(l.hard, Bytes(320 * MIB));
        assert_eq!(l.brake, Bytes(384 * MIB));
        assert_eq!(l.reserve, Bytes(512 * MIB));
    }

    #[test]
    fn a_big_machine_keeps_its_proportional_levels() {
        let l = levels(Bytes(32768 * MIB), None, None);
        // 10% of 32 GiB, as before.
        assert_eq!(l.reserve, Bytes(32768 * MIB).scale(0.10));
        assert!(l.brake >= l.reserve.scale(0.49) && l.brake <= l.reserve.scale(0.51));
        assert!(l.hard >= Bytes(384 * MIB), "{}", l.hard);
    }

    #[test]
    fn a_killer_line_lifts_every_level_above_it() {
        // A watchdog rebooting below 800 MiB (51200 pages of 16 KiB).
        let l = levels(Bytes(3792 * MIB), None, Some(Bytes(800 * MIB)));
        assert_eq!(l.danger, Bytes(800 * MIB));
        assert_eq!(l.hard, Bytes(864 * MIB));
        assert_eq!(l.brake, Bytes(928 * MIB));
        assert_eq!(l.reserve, Bytes(1056 * MIB));
        // A reserve the user gave is kept; the brake stays above the line anyway.
        let mine = levels(
            Bytes(3792 * MIB),
            Some(Bytes(100 * MIB)),
            Some(Bytes(800 * MIB)),
        );
        assert_eq!(mine.reserve, Bytes(100 * MIB));
        assert_eq!(mine.brake, Bytes(928 * MIB));
    }

    #[test]
    fn a_small_container_keeps_most_of_its_memory() {
        let l = levels(Bytes(512 * MIB), None, None);
        assert_eq!(l.danger, Bytes(32 * MIB));
        assert_eq!(l.brake, Bytes(64 * MIB));
        assert_eq!(l.reserve, Bytes(128 * MIB));
    }
}
