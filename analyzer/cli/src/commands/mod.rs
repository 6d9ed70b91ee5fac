//! One file per subcommand, each with an `exec` method.

pub(crate) mod analyze;
pub(crate) mod control;
pub(crate) mod policy;
pub(crate) mod rollout;
pub(crate) mod status;

use std::path::{Path, PathBuf};

use canary_core::policy::Policy;
use canary_core::ports::StateStore;
use clap::Args;

use crate::state::FileStateStore;

/// Reads and validates a policy file.
pub(crate) fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        canary_core::Error::Usage(format!("cannot read policy {}: {err}", path.display()))
    })?;
    Ok(Policy::from_yaml(&text, &path.display().to_string()).map_err(canary_core::Error::from)?)
}

/// The async runtime the commands that talk to the world run on. Two worker threads: the
/// work is I/O, and the machines this runs on are small.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The policy's metrics source, with `--prometheus` overriding its URL.
pub(crate) fn metrics_source(
    policy: &Policy,
    prometheus: Option<&str>,
) -> anyhow::Result<Box<dyn canary_core::ports::MetricsSource>> {
    Ok(canary_metrics::source_for(policy, prometheus)?)
}

/// Where rollout state is kept: the flags `rollout`, `status`, `promote` and `abort` share.
#[derive(Clone, Debug, Args)]
pub(crate) struct StateArgs {
    /// Directory of the rollout state files (a rerun resumes from them).
    #[arg(
        long,
        value_name = "DIR",
        env = "CANARY_STATE_DIR",
        default_value = ".canary"
    )]
    pub(crate) state_dir: PathBuf,
}

impl StateArgs {
    /// The state store of `service`.
    pub(crate) fn open(&self, service: &str) -> anyhow::Result<Box<dyn StateStore>> {
        Ok(Box::new(FileStateStore::new(&self.state_dir, service)))
    }
}
