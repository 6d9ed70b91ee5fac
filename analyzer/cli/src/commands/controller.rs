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

use crate::controller::{Context, Settings};

/// `canary controller …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ControllerCommand {
    /// Run the controller: reconcile every CanaryRollout (of one namespace, or all) until
    /// SIGINT/SIGTERM. Run one replica: leader election is not built yet.
    Run(RunCommand),
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

    /// How many API writes (weights, status, Events) run at once, across all rollouts.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_concurrent_writes: usize,

    /// How long a rollback keeps trying to set the canary's weight to 0.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = super::analyze::parse_duration)]
    rollback_retry_for: Duration,

    /// How long a rollout stopped by an infrastructure failure waits before it resumes.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::analyze::parse_duration)]
    retry_after: Duration,
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
            let (client, _) = connection.client().await.map_err(|e| e.into_core())?;
            let identity = canary_kubernetes::Holder::this_process().identity;
            eprintln!(
                "canary controller: reconciling CanaryRollouts in {} as {identity}",
                self.namespace.as_deref().map_or_else(
                    || "every namespace".to_owned(),
                    |ns| format!("namespace {ns}")
                )
            );
            let context = Arc::new(Context::new(
                client,
                Settings {
                    namespace: self.namespace,
                    prometheus: self.prometheus,
                    max_queries: self.max_concurrent_queries,
                    max_writes: self.max_concurrent_writes,
                    rollback_retry_for: self.rollback_retry_for,
                    retry_after: self.retry_after,
                    identity,
                },
            ));
            crate::controller::run(context).await?;
            Ok(ExitCode::Interrupted)
        })
    }
}
