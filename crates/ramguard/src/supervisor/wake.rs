//! Signals that wake the supervisor's sleep: SIGCHLD (a child exited), SIGINT and SIGTERM
//! (counted as interrupts), through a self-pipe the handlers write.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

/// Signals that wake the loop, counted.
#[derive(Debug)]
pub(super) struct Wake {
    reader: UnixStream,
    interrupts: Arc<AtomicUsize>,
    ids: Vec<signal_hook::SigId>,
}

impl Wake {
    pub(super) fn install() -> Result<Wake> {
        let (reader, writer) = UnixStream::pair().context("cannot create the wake-up pipe")?;
        writer.set_nonblocking(true)?;
        reader.set_nonblocking(false)?;
        let mut ids = Vec::new();
        for sig in [
            signal_hook::consts::SIGCHLD,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ] {
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                writer.try_clone()?,
            )?);
        }
        let interrupts = Arc::new(AtomicUsize::new(0));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let counter = Arc::clone(&interrupts);
            // SAFETY: the handler only increments an atomic, which is async-signal-safe.
            ids.push(unsafe {
                signal_hook::low_level::register(sig, move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                })
            }?);
        }
        Ok(Wake {
            reader,
            interrupts,
            ids,
        })
    }

    /// Sleeps until a signal arrives or `timeout` passes; drains the pipe.
    pub(super) fn wait(&mut self, timeout: Duration) {
        let timeout = timeout.max(Duration::from_millis(1));
        let _ = self.reader.set_read_timeout(Some(timeout));
        let mut buf = [0u8; 64];
        if let Ok(n) = self.reader.read(&mut buf) {
            if n > 0 {
                let _ = self.reader.set_nonblocking(true);
                while matches!(self.reader.read(&mut buf), Ok(n) if n > 0) {}
                let _ = self.reader.set_nonblocking(false);
            }
        }
    }

    pub(super) fn interrupts(&self) -> usize {
        self.interrupts.load(Ordering::SeqCst)
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
