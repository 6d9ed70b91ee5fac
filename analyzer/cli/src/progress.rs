//! Progress as the rollout goes: one plain line per tick and per decision.

use canary_core::rollout::{Notice, Rollout};
use jiff::Timestamp;

/// Where progress goes.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    quiet: bool,
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Progress {
        Progress { quiet }
    }

    /// A notice from the machine.
    pub(crate) fn notice(&mut self, notice: &Notice, _rollout: &Rollout) {
        if self.quiet && notice.kind == "tick" {
            return;
        }
        eprintln!(
            "{} {} {}: {}",
            Timestamp::now().strftime("%H:%M:%S"),
            notice.service,
            notice.kind,
            notice.message
        );
    }

    /// A line from the driver.
    pub(crate) fn line(&mut self, text: &str) {
        if !self.quiet {
            eprintln!("{} {text}", Timestamp::now().strftime("%H:%M:%S"));
        }
    }
}
