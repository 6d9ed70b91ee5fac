//! Waiting for the signals that mean "stop cleanly".

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Handlers for SIGINT (Ctrl-C) and SIGTERM (what test harnesses, `kill` and container
/// runtimes send).
///
/// Installed when created, not when first awaited: a harness may signal as soon as
/// it has read the listening line, and a signal arriving before the handler exists
/// would kill the process with the default action instead of a clean exit 0.
pub(crate) struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    pub(crate) fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// Resolves on the next SIGINT or SIGTERM.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
