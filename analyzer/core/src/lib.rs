//! `canary-core` is the pure domain of canary, the progressive-delivery canary analyzer.
//!
//! It holds everything that decides, and nothing that talks to the outside world: the
//! policy model (read from YAML into private serde types, then validated into the public
//! [`policy::Policy`]), the statistics that compare a canary with its baseline
//! ([`stats`]), the [`judge`] that turns observations into verdicts with their evidence,
//! the recorded-data format that `canary analyze --input` replays ([`recording`]), and
//! the ports ([`ports`]) that the metrics sources and gateway adapters implement. There is
//! no tokio, no HTTP client and no Kubernetes client here, so every rule is a plain unit
//! test and the simulator can run the real judge in virtual time.

pub mod analysis;
pub mod claim;
pub mod error;
pub mod judge;
pub mod observation;
pub mod policy;
pub mod ports;
pub mod recording;
pub mod report;
pub mod retry;
pub mod rollout;
pub mod secret;
pub mod stats;

mod serde_float;

pub use error::{Error, ExitCode, Result};
