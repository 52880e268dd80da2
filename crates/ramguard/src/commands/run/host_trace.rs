//! The host's available memory over a run, journaled for `report`'s memory chart: every
//! [`MIN_STEP`] at first, then ever more sparsely (the step is the run's age ÷ [`SPREAD`]),
//! so a day-long run adds some ten thousand rows, not hundreds of thousands.

use std::time::Duration;

use anyhow::Result;

use crate::executor::Snapshot;
use crate::journal::{Journal, SweepHandle};
use crate::supervisor;

/// Shortest time between two host samples.
pub const MIN_STEP: Duration = Duration::from_millis(250);
/// The step grows as the run's age divided by this.
pub const SPREAD: u32 = 2000;

/// When the host was last sampled.
#[derive(Debug, Default)]
pub struct HostTrace {
    started: Option<Duration>,
    last: Option<Duration>,
}

impl HostTrace {
    /// Journals the snapshot's available and used memory if a step has passed.
    pub fn sample(
        &mut self,
        journal: &mut Journal,
        sweep: &SweepHandle,
        now: Duration,
        snapshot: &Snapshot,
    ) -> Result<()> {
        let started = *self.started.get_or_insert(now);
        let step = MIN_STEP.max(now.saturating_sub(started) / SPREAD);
        if self.last.is_some_and(|l| now.saturating_sub(l) < step) {
            return Ok(());
        }
        self.last = Some(now);
        journal.host_sample(
            sweep,
            supervisor::unix_ms(),
            snapshot.available.get(),
            snapshot.used.get(),
        )
    }
}
