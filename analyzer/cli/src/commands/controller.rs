//! `canary controller`: operator mode, where one process in the cluster carries out every
//! `CanaryRollout` (the custom resource of `canary_kubernetes::controller`), each with the
//! same rollout machine and judge as `canary rollout` (see `crate::controller`).
//!
//! `canary controller crd` prints the resource's CustomResourceDefinition, generated from
//! the Rust types (`examples/kubernetes/controller/crd.yaml` is its output, checked in).

use std::sync::Arc;
use std::time::Duration;

use canary_core::ExitCode;
use clap::{Args, Subcommand};

use canary_kubernetes::controller::{LeaderElector, LeaseSettings, Shard};

use crate::controller::{Context, Settings};

/// `canary controller …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ControllerCommand {
    /// Run the controller: once it holds the leader Lease, reconcile every CanaryRollout (of
    /// one namespace, or all) until SIGINT/SIGTERM, or until it loses the Lease (exit 4).
    Run(Box<RunCommand>),
    /// Print the CanaryRollout CustomResourceDefinition (YAML), for `kubectl apply -f -`.
    Crd,
}

/// `canary controller run`.
#[derive(Debug, Args)]
pub(crate) struct RunCommand {
    /// Only the CanaryRollouts of this namespace (default: every namespace).
    #[arg(long, value_name = "NAMESPACE", env = "CANARY_NAMESPACE")]
    namespace: Option<String>,

    /// The kubeconfig context (default: the current one, or the pod's service account).
    #[arg(long, value_name = "CONTEXT", env = "CANARY_KUBE_CONTEXT")]
    kube_context: Option<String>,

    /// Prometheus base URL, overriding every policy's `metrics.prometheus.url`.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,

    /// How many metrics queries run at once, across all rollouts.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_concurrent_queries: usize,

    /// How long a rollout's Prometheus read waits for other rollouts' reads of the same
    /// series (error-rate and latency checks with the same metric, selector, versions and
    /// server): each such batch is one query of raw samples, from which every rollout computes
    /// its own reading, as its own query would have given it. `0` turns it off: one query per
    /// check per rollout per tick. Each tick waits up to this long for its batch, so its
    /// decision is that much later (at 10,000 rollouts, 500 ms kept the p99 from a tick's
    /// due time to its decision at 1 s, where 1 s made it 2 s; docs/benchmarks.md).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_coalesce)]
    read_coalesce: Duration,

    /// How often a rollout's status is written when only its text changed (the numbers in its
    /// reasons and messages). A change of what it shows — phase, step, weight, a criterion's
    /// verdict, a condition — is written at once; the numbers of every tick are in the
    /// rollout's state, which `canary status --kube` shows. `0`: at every tick (one more API
    /// write per rollout per tick).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_refresh)]
    status_refresh: Duration,

    /// How many API writes (weights, status, Events) run at once, across all rollouts.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_concurrent_writes: usize,

    /// How many rollouts start (or resume) at once, from reading their state to their first
    /// wait (a read and a claim each, then the first tick's): a new leader resumes every
    /// rollout at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_concurrent_starts: usize,

    /// How many API reads of the rollouts (state, claim, weight read back) run at once,
    /// across all rollouts (the Lease's reads are not counted).
    #[arg(long, value_name = "N", default_value_t = 32)]
    max_concurrent_reads: usize,

    /// How long a rollback keeps trying to set the canary's weight to 0.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = super::analyze::parse_duration)]
    rollback_retry_for: Duration,

    /// How long a rollout stopped by an infrastructure failure waits before it resumes.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::analyze::parse_duration)]
    retry_after: Duration,

    /// The namespace of the leader Lease (default: the pod's, `$POD_NAMESPACE`, else
    /// `--namespace`, else the kubeconfig's).
    #[arg(long, value_name = "NAMESPACE", env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,

    /// The name of the leader Lease (`coordination.k8s.io/v1`): the replicas that share it
    /// elect one leader.
    #[arg(long, value_name = "NAME", default_value = "canary-controller")]
    lease_name: String,

    /// How long a standby waits without seeing the leader renew before it takes over.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = super::analyze::parse_duration)]
    lease_duration: Duration,

    /// How long after its last renewal began the leader still writes: it stops writing
    /// `lease-duration - lease-renew-deadline` before a standby may take over.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::analyze::parse_duration)]
    lease_renew_deadline: Duration,

    /// Serve the controller's own metrics (leader, rollouts by phase, reconcile and API
    /// write errors) at `http://ADDR/metrics`, e.g. `0.0.0.0:9464`.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Carry out only shard I of N: the CanaryRollouts whose `NAMESPACE/NAME` hashes to I
    /// (FNV-1a mod N). Each shard elects its own leader, on the Lease
    /// `LEASE-NAME-shard-I-of-N`. Every process must be given the same N.
    #[arg(long, value_name = "I/N", default_value = "0/1", value_parser = parse_shard)]
    shard: Shard,

    /// Let CanaryRollout policies read this process's files and environment (secrets from
    /// `file`/`env`, TLS files, AWS credentials), run programs in it (command hooks,
    /// `metrics.command`) and use gateways that are not Kubernetes ones (`command`, `nginx`,
    /// `haproxy`: programs, files, local sockets, addresses reached from this pod). Off by
    /// default: whoever may create a CanaryRollout would get the controller's ServiceAccount
    /// token and credentials. Only where all of them are trusted.
    #[arg(long)]
    allow_local_access: bool,

    /// Let a CanaryRollout's policy name a namespace other than the CanaryRollout's own
    /// (`gateway.*.namespace`, `promotion.kubernetes.namespace`). Off by default: the
    /// controller writes there with its own ClusterRole, for an author who may have no
    /// rights there. Only where everyone who may create a CanaryRollout may change those
    /// objects in every namespace.
    #[arg(long)]
    allow_cross_namespace: bool,

    /// How often the leader renews the Lease and a standby looks at it.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = super::analyze::parse_duration)]
    lease_retry_period: Duration,
}

impl ControllerCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        match self {
            ControllerCommand::Crd => {
                super::print_stdout(&canary_kubernetes::controller::crd_yaml())?;
                Ok(ExitCode::Passed)
            }
            ControllerCommand::Run(command) => command.exec(),
        }
    }
}

impl RunCommand {
    fn exec(self) -> anyhow::Result<ExitCode> {
        let runtime = super::runtime()?;
        runtime.block_on(async {
            let connection = canary_kubernetes::KubeConnection::infer(
                self.kube_context.clone(),
                self.namespace.clone(),
            );
            let (client, default_namespace) =
                connection.client().await.map_err(|e| e.into_core())?;
            let holder = canary_kubernetes::Holder::this_process();
            let identity = holder.identity.clone();
            // Unique among the candidates, even for two processes with one host name (a
            // restarted container stands by like any other: its predecessor may still write).
            let candidate = format!(
                "{identity}_{}_{}",
                holder.pid,
                holder.started_at.as_millisecond()
            );
            let lease = LeaseSettings {
                lease_duration: self.lease_duration,
                renew_deadline: self.lease_renew_deadline,
                retry_period: self.lease_retry_period,
                ..LeaseSettings::new(
                    self.lease_namespace
                        .clone()
                        .filter(|ns| !ns.is_empty())
                        .unwrap_or(default_namespace),
                    self.shard.lease_name(&self.lease_name),
                    candidate,
                )
            };
            lease
                .check()
                .map_err(|problem| canary_core::Error::Usage(format!("--lease-*: {problem}")))?;
            let elector = LeaderElector::new(client.clone(), lease);
            let fence = elector.fence();
            eprintln!(
                "canary controller: for the CanaryRollouts in {}{} as {identity}",
                self.namespace.as_deref().map_or_else(
                    || "every namespace".to_owned(),
                    |ns| format!("namespace {ns}")
                ),
                if self.shard == Shard::ALL {
                    String::new()
                } else {
                    format!(" of shard {}", self.shard)
                }
            );
            let context = Arc::new(Context::new(
                client,
                Settings {
                    namespace: self.namespace,
                    prometheus: self.prometheus,
                    max_queries: self.max_concurrent_queries,
                    max_writes: self.max_concurrent_writes,
                    max_starts: self.max_concurrent_starts,
                    max_reads: self.max_concurrent_reads,
                    rollback_retry_for: self.rollback_retry_for,
                    retry_after: self.retry_after,
                    identity,
                    shard: self.shard,
                    allow_local_access: self.allow_local_access,
                    allow_cross_namespace: self.allow_cross_namespace,
                    read_coalesce: self.read_coalesce,
                    status_refresh: self.status_refresh,
                },
                fence,
            ));
            if let Some(addr) = self.metrics_addr {
                let bound = crate::self_metrics::serve_exposition(
                    context.metrics.clone(),
                    addr,
                    crate::self_metrics::CONNECTION_LIMITS,
                    "canary controller",
                )
                .await?;
                eprintln!("canary controller: metrics at http://{bound}/metrics");
            }
            crate::controller::run(context, elector).await?;
            Ok(ExitCode::Interrupted)
        })
    }
}

/// `--shard I/N`.
fn parse_shard(text: &str) -> Result<Shard, String> {
    text.parse()
}

/// `--status-refresh`: a duration, `0` for every tick.
fn parse_refresh(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" => Ok(Duration::ZERO),
        text => humantime::parse_duration(text)
            .map_err(|e| format!("{e}; write e.g. 5m, 30s, or 0 for every tick")),
    }
}

/// `--read-coalesce`: a duration from 0 (off) to 1 minute (a longer wait delays every
/// rollout's decisions by as much).
fn parse_coalesce(text: &str) -> Result<Duration, String> {
    let duration = match text.trim() {
        "0" => Duration::ZERO,
        text => humantime::parse_duration(text)
            .map_err(|e| format!("{e}; write e.g. 1s, 500ms, or 0 to turn it off"))?,
    };
    if duration > Duration::from_secs(60) {
        return Err("at most 1m: a read waits this long for its batch".to_owned());
    }
    Ok(duration)
}
