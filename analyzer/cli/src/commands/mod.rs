//! One file per subcommand, each with an `exec` method.

pub(crate) mod analyze;
pub(crate) mod completions;
pub(crate) mod control;
#[cfg(feature = "kubernetes")]
pub(crate) mod controller;
#[cfg(feature = "demo")]
pub(crate) mod demo;
#[cfg(feature = "kubernetes")]
pub(crate) mod kube_target;
pub(crate) mod policy;
pub(crate) mod rollout;
pub(crate) mod simulate;
pub(crate) mod status;
#[cfg(feature = "kubernetes")]
pub(crate) mod wait;

use std::path::{Path, PathBuf};

use canary_core::policy::Policy;
use canary_core::ports::StateStore;
use canary_core::secret::Redacted;
use clap::Args;

use canary_gateways::FileStateStore;

/// Reads and validates a policy file, and teaches the redactor every secret it names (see
/// [`learn_secrets_of`](canary_core::secret::learn_secrets_of)).
pub(crate) fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        canary_core::Error::Usage(format!("cannot read policy {}: {err}", path.display()))
    })?;
    let policy =
        Policy::from_yaml(&text, &path.display().to_string()).map_err(canary_core::Error::from)?;
    canary_core::secret::learn_secrets_of(&policy)?;
    Ok(policy)
}

/// The async runtime the commands that talk to the world run on. Two worker threads: the
/// work is I/O, and the machines this runs on are small.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The policy's metrics source, with `--prometheus` overriding its URL; everything it hands
/// in redacted of every secret the process holds.
pub(crate) fn metrics_source(
    policy: &Policy,
    prometheus: Option<&str>,
) -> anyhow::Result<Box<dyn canary_core::ports::MetricsSource>> {
    let source = canary_metrics::source_for(policy, prometheus)?;
    Ok(Box::new(Redacted::new(source)))
}

/// The metrics source described without secrets, for a report written after a failure
/// (where no source may have been built).
pub(crate) fn describe_metrics_source(policy: &Policy, prometheus: Option<&str>) -> String {
    metrics_source(policy, prometheus)
        .map(|source| source.describe())
        .unwrap_or_else(|_| "the policy's metrics source".to_owned())
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

    /// Where the rollout state is kept: `file` (in --state-dir, on this machine) or
    /// `configmap` (a ConfigMap in the cluster, so a rerun on another runner resumes).
    #[arg(
        long,
        value_enum,
        value_name = "STORE",
        env = "CANARY_STATE_STORE",
        default_value = "file"
    )]
    pub(crate) state_store: StateStoreKind,

    /// The state ConfigMap's namespace (default: the kubeconfig context's, or the pod's own).
    #[arg(long, value_name = "NAMESPACE", env = "CANARY_NAMESPACE")]
    pub(crate) namespace: Option<String>,

    /// The kubeconfig context of the state ConfigMap's cluster (default: the current one).
    #[arg(long, value_name = "CONTEXT", env = "CANARY_KUBE_CONTEXT")]
    pub(crate) kube_context: Option<String>,

    /// The state ConfigMap's name (default: canary-rollout-SERVICE).
    #[arg(long, value_name = "NAME", env = "CANARY_STATE_CONFIGMAP")]
    pub(crate) state_configmap: Option<String>,

    /// How long this process's claim on the rollout lives without a heartbeat (one every
    /// sixth of it): a driver silent for longer (dead, or paused) is taken over by the next
    /// `canary rollout`, `promote` or `abort` without --take-over. At least 3s.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CANARY_CLAIM_TTL",
        default_value = "30s",
        value_parser = parse_claim_ttl
    )]
    pub(crate) claim_ttl: std::time::Duration,
}

fn parse_claim_ttl(text: &str) -> Result<std::time::Duration, String> {
    canary_core::claim::parse_claim_ttl(text).map_err(|err| err.to_string())
}

/// The kinds of state store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StateStoreKind {
    /// JSON files in the state directory.
    File,
    /// A ConfigMap in the cluster.
    Configmap,
}

impl StateArgs {
    /// The state store of `service`: what it saves and what it hands in redacted of every
    /// secret the process holds.
    pub(crate) fn open(&self, service: &str) -> anyhow::Result<Box<dyn StateStore>> {
        let store: Box<dyn StateStore> = match self.state_store {
            StateStoreKind::File => Box::new(
                FileStateStore::new(&self.state_dir, service).with_claim_ttl(self.claim_ttl),
            ),
            StateStoreKind::Configmap => crate::adapters::configmap_store(
                self.kube_context.clone(),
                self.namespace.clone(),
                service,
                self.state_configmap.clone(),
                self.claim_ttl,
            )?,
        };
        Ok(Box::new(Redacted::new(store)))
    }
}

/// A `CanaryRollout` named by `--kube NAMESPACE/NAME`: its policy, its rollout's state
/// store and its gateway (reached in the resource's namespace, as the controller does).
pub(crate) struct KubeRollout {
    pub(crate) policy: Policy,
    pub(crate) store: Box<dyn StateStore>,
    pub(crate) router: Box<dyn canary_core::ports::TrafficRouter>,
}

/// Opens the `CanaryRollout` named by `--kube NAMESPACE/NAME` (see [`kube_target`]).
pub(crate) async fn open_kube_rollout(
    kube: &str,
    context: Option<String>,
    claim_ttl: std::time::Duration,
) -> anyhow::Result<KubeRollout> {
    #[cfg(feature = "kubernetes")]
    {
        kube_target::open(kube, context, claim_ttl).await
    }
    #[cfg(not(feature = "kubernetes"))]
    {
        let _ = (kube, context, claim_ttl);
        Err(canary_core::Error::Usage(
            "`--kube` needs Kubernetes support, and this canary was built without it (cargo \
             feature `kubernetes`, on by default): build it with default features"
                .to_owned(),
        )
        .into())
    }
}

/// Writes `text` to stdout. A reader that went away (`canary status | head -1`: a closed
/// pipe) is not an error: the output was wanted only so far, and the command's exit code
/// stands (SIGPIPE is ignored by Rust programs, so `println!` would panic instead).
pub(crate) fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
