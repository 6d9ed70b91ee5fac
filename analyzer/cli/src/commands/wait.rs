//! `canary wait --kube NAMESPACE/NAME`: the CI stage for clusters that run `canary
//! controller`. It waits until the `CanaryRollout`'s rollout of its current spec has ended,
//! then exits with canary's exit codes (0 promoted, 1 rolled back, 2 the resource is
//! invalid, 3 held or inconclusive, 4 the rollout stopped on an infrastructure failure or
//! did not end within `--timeout`) and writes the same reports as `canary rollout`, made
//! from the rollout's state in its ConfigMap.

use std::time::{Duration, Instant};

use canary_core::ExitCode;
use canary_core::ports::StateStore;
use canary_core::report::RunVerdict;
use canary_core::rollout::Outcome;
use canary_kubernetes::controller::status::phase;
use canary_kubernetes::controller::{CanaryRollout, CanaryRolloutStatus, resource};
use canary_kubernetes::{ConfigMapStateStore, KubeConnection};
use clap::Args;
use jiff::Timestamp;
use kube::Api;

use crate::render::{self, OutputSpec};

/// How often the resource is read while waiting.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub(crate) struct WaitCommand {
    /// The CanaryRollout, as NAMESPACE/NAME.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    kube: String,

    /// How long to wait for the rollout to end (then exit 4, the rollout left running).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = super::analyze::parse_duration)]
    timeout: Duration,

    /// The kubeconfig context (default: the current one).
    #[arg(long, value_name = "CONTEXT", env = "CANARY_KUBE_CONTEXT")]
    kube_context: Option<String>,

    /// Write a report: FORMAT:PATH with FORMAT one of json, markdown, junit, html; PATH `-`
    /// is standard output. Repeatable.
    #[arg(long = "output", value_name = "FORMAT:PATH")]
    outputs: Vec<OutputSpec>,

    /// No progress lines, only the outcome.
    #[arg(long, short)]
    quiet: bool,
}

/// `NAMESPACE/NAME`, checked.
pub(crate) fn namespaced_name(text: &str) -> Result<(String, String), canary_core::Error> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(canary_core::Error::Usage(format!(
            "--kube {text:?}: expected NAMESPACE/NAME of a CanaryRollout, e.g. shop/checkout"
        ))),
    }
}

/// Whether the status is about the resource's current spec and says the rollout ended.
/// `spec.revision` must match (a `targetRef` resource's revision is the controller's to
/// compute), and the status must be of the current generation.
fn ended(resource: &CanaryRollout) -> Option<&CanaryRolloutStatus> {
    let status = resource.status.as_ref()?;
    let current = status.observed_generation >= resource.metadata.generation;
    let same_revision = match &resource.spec.revision {
        Some(revision) => status.revision.as_ref() == Some(revision),
        None => true,
    };
    let finished = match status.phase.as_deref() {
        Some(phase::INVALID) => return current.then_some(status),
        Some(phase::PROMOTED | phase::ROLLED_BACK | phase::PAUSED | phase::FAILED) => true,
        _ => false,
    };
    (current && same_revision && finished).then_some(status)
}

/// The exit code a finished status stands for.
fn exit_code(status: &CanaryRolloutStatus) -> ExitCode {
    match (status.phase.as_deref(), status.exit_code) {
        (Some(phase::INVALID), _) => ExitCode::BadInput,
        (Some(phase::PAUSED), _) => ExitCode::Inconclusive,
        (Some(phase::FAILED), _) => ExitCode::Infrastructure,
        (_, Some(0)) => ExitCode::Passed,
        (_, Some(1)) => ExitCode::Failed,
        (_, Some(3)) => ExitCode::Inconclusive,
        (_, Some(130)) => ExitCode::Interrupted,
        (Some(phase::PROMOTED), None) => ExitCode::Passed,
        (Some(phase::ROLLED_BACK), None) => ExitCode::Failed,
        _ => ExitCode::Infrastructure,
    }
}

impl WaitCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        render::check_outputs(&self.outputs)?;
        let (namespace, name) = namespaced_name(&self.kube)?;
        let runtime = super::runtime()?;
        runtime.block_on(async {
            let connection =
                KubeConnection::infer(self.kube_context.clone(), Some(namespace.clone()));
            let (client, _) = connection.client().await.map_err(|e| e.into_core())?;
            let api: Api<CanaryRollout> = Api::namespaced(client.clone(), &namespace);
            let started = Instant::now();
            let mut said = String::new();
            let resource = loop {
                let resource = match api.get_opt(&name).await {
                    Ok(Some(resource)) => resource,
                    Ok(None) => {
                        return Err(canary_core::Error::Usage(format!(
                            "CanaryRollout {namespace}/{name} does not exist"
                        ))
                        .into());
                    }
                    Err(err) => {
                        return Err(canary_core::Error::unavailable(
                            "kubernetes",
                            "the API server",
                            format!("reading CanaryRollout {namespace}/{name}: {err}"),
                        )
                        .into());
                    }
                };
                if ended(&resource).is_some() {
                    break resource;
                }
                let line = progress_line(&resource);
                if !self.quiet && line != said {
                    eprintln!("{line}");
                    said = line;
                }
                if started.elapsed() >= self.timeout {
                    return self.timed_out(&client, &resource).await;
                }
                tokio::time::sleep(POLL.min(self.timeout.saturating_sub(started.elapsed()))).await;
            };
            let Some(status) = ended(&resource) else {
                unreachable!("the loop ends on an ended status")
            };
            let code = exit_code(status);
            if code == ExitCode::BadInput {
                eprintln!(
                    "error: {}",
                    status
                        .reason
                        .as_deref()
                        .unwrap_or("the resource is invalid")
                );
                return Ok(code);
            }
            self.report(&client, &resource, None).await?;
            Ok(code)
        })
    }

    /// The wait ran out: the reports say where the rollout stands, verdict `error`; exit 4.
    async fn timed_out(
        &self,
        client: &kube::Client,
        resource: &CanaryRollout,
    ) -> anyhow::Result<ExitCode> {
        let reason = format!(
            "{} did not end within {} (it goes on; `canary wait` again to keep waiting)",
            resource::describe(resource),
            humantime::format_duration(self.timeout)
        );
        let outcome = Outcome {
            exit: ExitCode::Infrastructure,
            verdict: RunVerdict::Error,
            reason: reason.clone(),
        };
        if let Err(err) = self.report(client, resource, Some(&outcome)).await {
            eprintln!("warning: no report: {err:#}");
        }
        eprintln!("error: {reason}");
        Ok(ExitCode::Infrastructure)
    }

    /// Writes the reports of the rollout, from its state in the ConfigMap the status names.
    async fn report(
        &self,
        client: &kube::Client,
        resource: &CanaryRollout,
        ended: Option<&Outcome>,
    ) -> anyhow::Result<()> {
        let namespace = resource.metadata.namespace.clone().unwrap_or_default();
        let policy = crate::controller::resource_policy(client, resource).await?;
        let configmap = resource
            .status
            .as_ref()
            .and_then(|s| s.state_config_map.clone())
            .unwrap_or_else(|| {
                crate::controller::state_config_map(
                    &resource.metadata.name.clone().unwrap_or_default(),
                )
            });
        let store = ConfigMapStateStore::new(
            KubeConnection::from_client(client.clone(), namespace.clone()),
            Some(namespace.clone()),
            &policy.service,
            Some(configmap.clone()),
        )?;
        let Some(rollout) = store.load().await? else {
            if ended.is_none() {
                return Err(canary_core::Error::unavailable(
                    "kubernetes",
                    "the API server",
                    format!("the rollout's state ConfigMap {namespace}/{configmap} has no rollout"),
                )
                .into());
            }
            return Ok(());
        };
        let report = rollout.report(
            &policy,
            &resource::describe(resource),
            &super::describe_metrics_source(&policy, None),
            Timestamp::now(),
            ended,
        );
        if !self.quiet {
            render::print_summary(&report, &self.outputs);
        }
        render::write_all_or_warn(&report, &self.outputs);
        Ok(())
    }
}

/// One line on where the rollout stands, printed when it changes.
fn progress_line(resource: &CanaryRollout) -> String {
    let Some(status) = &resource.status else {
        return format!(
            "{}: waiting for the controller to pick it up",
            resource::describe(resource)
        );
    };
    let weight = status
        .weight
        .map_or_else(String::new, |w| format!(", canary at {w} %"));
    let step = status
        .step
        .as_deref()
        .map_or_else(String::new, |s| format!(", step {s}"));
    format!(
        "{}: {} (revision {}){step}{weight}: {}",
        resource::describe(resource),
        status.phase.as_deref().unwrap_or("?"),
        status.revision.as_deref().unwrap_or("?"),
        status.reason.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_names_a_namespace_and_a_name() {
        assert_eq!(
            namespaced_name("shop/checkout").unwrap(),
            ("shop".to_owned(), "checkout".to_owned())
        );
        for bad in ["checkout", "/checkout", "shop/", "a/b/c"] {
            assert!(namespaced_name(bad).is_err(), "{bad}");
        }
    }

    fn resource(generation: i64, revision: &str, status: CanaryRolloutStatus) -> CanaryRollout {
        let mut resource = CanaryRollout::new(
            "checkout",
            canary_kubernetes::controller::CanaryRolloutSpec {
                revision: Some(revision.to_owned()),
                ..Default::default()
            },
        );
        resource.metadata.namespace = Some("shop".to_owned());
        resource.metadata.generation = Some(generation);
        resource.status = Some(status);
        resource
    }

    #[test]
    fn only_a_finished_status_of_the_current_spec_ends_the_wait() {
        let promoted = |generation, revision: &str| CanaryRolloutStatus {
            observed_generation: Some(generation),
            revision: Some(revision.to_owned()),
            phase: Some(phase::PROMOTED.to_owned()),
            exit_code: Some(0),
            ..Default::default()
        };
        // The last revision's outcome is not this one's.
        assert!(ended(&resource(2, "v2", promoted(1, "v1"))).is_none());
        assert!(ended(&resource(2, "v2", promoted(2, "v1"))).is_none());
        let status = promoted(2, "v2");
        assert_eq!(
            ended(&resource(2, "v2", status.clone())).map(exit_code),
            Some(ExitCode::Passed)
        );
        let progressing = CanaryRolloutStatus {
            phase: Some(phase::PROGRESSING.to_owned()),
            ..status.clone()
        };
        assert!(ended(&resource(2, "v2", progressing)).is_none());
        for (phase, exit, code) in [
            (phase::ROLLED_BACK, Some(1), ExitCode::Failed),
            (phase::ROLLED_BACK, Some(3), ExitCode::Inconclusive),
            (phase::PAUSED, None, ExitCode::Inconclusive),
            (phase::FAILED, Some(4), ExitCode::Infrastructure),
            (phase::INVALID, Some(2), ExitCode::BadInput),
        ] {
            let status = CanaryRolloutStatus {
                phase: Some(phase.to_owned()),
                exit_code: exit,
                ..status.clone()
            };
            assert_eq!(
                ended(&resource(2, "v2", status)).map(exit_code),
                Some(code),
                "{phase}"
            );
        }
    }
}
