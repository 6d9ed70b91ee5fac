//! [`DeploymentPromoter`]: the Kubernetes promotion of the policy's `promotion.kubernetes`,
//! the Flagger model. Once the canary passed at 100 %, the stable Deployment gets the
//! canary's pod template and rolls it out; the rollout machine then routes all traffic back
//! to it (canary weight 0) and the canary Deployment is scaled to 0. So the stable names
//! (Deployment, Service, weights) stay the ones that serve production.
//!
//! Each stage is idempotent, as the machine's resume needs: a template already copied is not
//! written again (the wait still checks the rollout), a canary already at 0 replicas is left.

use std::time::{Duration, Instant};

use canary_core::policy::DeploymentPromotionSpec;
use canary_core::rollout::PromotionStage;
use json_patch::{AddOperation, Patch as JsonPatch, PatchOperation, ReplaceOperation};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;

use crate::KubernetesError;
use crate::routers::weights::pointer;
use crate::{CONFLICT_BACKOFF, FIELD_MANAGER, KubeConnection, Permission, api_error};
use canary_core::policy::duration_as_written;
use canary_core::retry::{Failure, retry};

/// How often the stable Deployment's rollout is looked at.
const POLL: Duration = Duration::from_secs(2);

/// Carries out the stages of a Kubernetes promotion (see the module docs). Every PATCH
/// first asks the connection's [`crate::WriteGuard`], if it has one (the controller's Lease
/// fence), on each attempt: a retry after a 409 re-reads the Deployment and would otherwise
/// write whatever it finds, even after this process lost the right to write.
#[derive(Clone)]
pub struct DeploymentPromoter {
    connection: KubeConnection,
    namespace: Option<String>,
    stable: String,
    canary: String,
    timeout: Duration,
    poll: Duration,
}

impl DeploymentPromoter {
    /// The promoter of the policy's `promotion.kubernetes`.
    pub fn new(spec: &DeploymentPromotionSpec, connection: KubeConnection) -> DeploymentPromoter {
        DeploymentPromoter {
            connection,
            namespace: spec.stable.namespace.clone(),
            stable: spec.stable.name.clone(),
            canary: spec.canary_deployment.clone(),
            timeout: spec.timeout,
            poll: POLL,
        }
    }

    /// The same, looking at the rollout every `poll` (tests wait less).
    pub fn with_poll_interval(mut self, poll: Duration) -> DeploymentPromoter {
        self.poll = poll;
        self
    }

    /// The canary Deployment's `metadata.generation` now: recorded when a rollout starts, so
    /// that the promotion copies the version that was analysed and nothing newer.
    pub async fn canary_generation(&self) -> Result<i64, KubernetesError> {
        let (api, namespace) = deployments_api(&self.connection, self.namespace.as_deref()).await?;
        let canary = read_deployment(&api, &namespace, &self.canary).await?;
        Ok(canary.metadata.generation.unwrap_or(0))
    }

    /// Carries out `stage`. `RouteToStable` is a weight change, which the router makes: it
    /// is refused here. `analysed` is the canary's generation when the analysis started: a
    /// canary Deployment changed since (a newer pipeline patched it) is not promoted.
    pub async fn run(
        &self,
        stage: PromotionStage,
        analysed: Option<i64>,
    ) -> Result<(), KubernetesError> {
        match stage {
            PromotionStage::CopyToStable => {
                self.copy_to_stable(analysed).await?;
                self.wait_rolled_out().await
            }
            PromotionStage::ScaleDownCanary => self.scale_down_canary().await,
            PromotionStage::RouteToStable => Err(KubernetesError::Object {
                object: format!("Deployment {}", self.stable),
                message: "routing traffic is the gateway's job, not the promoter's".to_owned(),
            }),
        }
    }

    /// What it does, for logs.
    pub fn describe(&self, stage: PromotionStage) -> String {
        let namespace = self.namespace.as_deref().unwrap_or("(default namespace)");
        match stage {
            PromotionStage::CopyToStable => format!(
                "copying the pod template of Deployment {namespace}/{} to {namespace}/{} and waiting for its rollout (up to {})",
                self.canary,
                self.stable,
                duration_as_written(self.timeout)
            ),
            PromotionStage::RouteToStable => "routing all traffic to the stable version".to_owned(),
            PromotionStage::ScaleDownCanary => {
                format!("scaling Deployment {namespace}/{} to 0", self.canary)
            }
        }
    }

    /// Patches `name` with `ops` after a `replace` of the resourceVersion it was read at;
    /// `false` on a conflict.
    async fn patch(
        &self,
        api: &Api<Deployment>,
        namespace: &str,
        name: &str,
        version: Option<String>,
        ops: Vec<PatchOperation>,
    ) -> Result<bool, KubernetesError> {
        let mut all = vec![PatchOperation::Replace(ReplaceOperation {
            path: pointer("/metadata/resourceVersion"),
            value: version.map_or(Value::Null, Value::String),
        })];
        all.extend(ops);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        self.connection
            .may_write(&format!("Deployment {namespace}/{name}"))?;
        match api
            .patch(name, &params, &Patch::Json::<()>(JsonPatch(all)))
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if crate::is_conflict(&err) => Ok(false),
            Err(err) => Err(api_error(
                &format!("Deployment {namespace}/{name}"),
                deployment_permission("patch", namespace, name),
                err,
            )),
        }
    }

    /// The stable Deployment's template becomes the canary's, with the labels its selector
    /// needs kept as they are (the canary's selector labels would not match it).
    async fn copy_to_stable(&self, analysed: Option<i64>) -> Result<(), KubernetesError> {
        let (api, namespace) = deployments_api(&self.connection, self.namespace.as_deref()).await?;
        let (api, namespace) = (&api, namespace.as_str());
        retry(CONFLICT_BACKOFF, tokio::time::sleep, |attempt| async move {
            let canary = read_deployment(api, namespace, &self.canary).await?;
            let generation = canary.metadata.generation.unwrap_or(0);
            if let Some(analysed) = analysed
                && generation != analysed
            {
                return Err(Failure::Final(KubernetesError::Object {
                    object: format!("Deployment {namespace}/{}", self.canary),
                    message: format!(
                        "it changed since the analysis started (generation {generation}, analysed {analysed}): refusing to promote a version that was not analysed"
                    ),
                }));
            }
            let stable = read_deployment(api, namespace, &self.stable).await?;
            let object = |name: &str| format!("Deployment {namespace}/{name}");
            let template =
                promoted_template(&stable, &canary).map_err(|message| KubernetesError::Object {
                    object: object(&self.stable),
                    message,
                })?;
            let current = stable.spec.as_ref().map(|s| &s.template);
            if current == Some(&template) {
                return Ok(());
            }
            let value = serde_json::to_value(&template).map_err(|err| KubernetesError::Object {
                object: object(&self.canary),
                message: format!("cannot encode the pod template: {err}"),
            })?;
            let ops = vec![PatchOperation::Replace(ReplaceOperation {
                path: pointer("/spec/template"),
                value,
            })];
            if self
                .patch(
                    api,
                    namespace,
                    &self.stable,
                    stable.metadata.resource_version,
                    ops,
                )
                .await?
            {
                return Ok(());
            }
            Err(Failure::Retryable(KubernetesError::Conflict {
                object: object(&self.stable),
                attempts: attempt,
            }))
        })
        .await
    }

    /// Waits until the stable Deployment has rolled out, as `kubectl rollout status` does.
    async fn wait_rolled_out(&self) -> Result<(), KubernetesError> {
        let (api, namespace) = deployments_api(&self.connection, self.namespace.as_deref()).await?;
        let started = Instant::now();
        loop {
            let stable = read_deployment(&api, &namespace, &self.stable).await?;
            match rollout_status(&stable) {
                Ok(true) => return Ok(()),
                Ok(false) if started.elapsed() < self.timeout => {
                    tokio::time::sleep(self.poll).await;
                }
                Ok(false) => {
                    return Err(KubernetesError::Object {
                        object: format!("Deployment {namespace}/{}", self.stable),
                        message: format!(
                            "did not roll out within {} ({})",
                            duration_as_written(self.timeout),
                            progress(&stable)
                        ),
                    });
                }
                Err(message) => {
                    return Err(KubernetesError::Object {
                        object: format!("Deployment {namespace}/{}", self.stable),
                        message,
                    });
                }
            }
        }
    }

    async fn scale_down_canary(&self) -> Result<(), KubernetesError> {
        let (api, namespace) = deployments_api(&self.connection, self.namespace.as_deref()).await?;
        let (api, namespace) = (&api, namespace.as_str());
        retry(CONFLICT_BACKOFF, tokio::time::sleep, |attempt| async move {
            let canary = read_deployment(api, namespace, &self.canary).await?;
            if canary.spec.as_ref().and_then(|s| s.replicas) == Some(0) {
                return Ok(());
            }
            let ops = vec![PatchOperation::Add(AddOperation {
                path: pointer("/spec/replicas"),
                value: Value::from(0),
            })];
            if self
                .patch(
                    api,
                    namespace,
                    &self.canary,
                    canary.metadata.resource_version,
                    ops,
                )
                .await?
            {
                return Ok(());
            }
            Err(Failure::Retryable(KubernetesError::Conflict {
                object: format!("Deployment {namespace}/{}", self.canary),
                attempts: attempt,
            }))
        })
        .await
    }
}

/// The canary's pod template with the stable selector's labels.
fn promoted_template(
    stable: &Deployment,
    canary: &Deployment,
) -> Result<k8s_openapi::api::core::v1::PodTemplateSpec, String> {
    let mut template = canary
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .ok_or_else(|| "the canary Deployment has no spec".to_owned())?;
    let selector = stable
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    if stable
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_expressions.as_ref())
        .is_some_and(|e| !e.is_empty())
    {
        return Err(
            "has a selector with matchExpressions, which canary does not rewrite".to_owned(),
        );
    }
    // The stable template's own labels win over the canary's: besides the selector's, a label
    // such as `version: canary` outside the selector would otherwise land on stable pods, and
    // the next rollout's metrics would count them as canary. Labels only the canary has (a
    // new `app.kubernetes.io/version`, say) are kept.
    let stable_labels = stable
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let labels = template
        .metadata
        .get_or_insert_default()
        .labels
        .get_or_insert_default();
    for (key, value) in stable_labels.into_iter().chain(selector) {
        labels.insert(key, value);
    }
    Ok(template)
}

/// Whether the Deployment has rolled out (all replicas updated and available, none old), or
/// why it never will.
fn rollout_status(deployment: &Deployment) -> Result<bool, String> {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return Ok(false);
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Ok(false);
    }
    if let Some(condition) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Err(format!(
            "its rollout exceeded its progress deadline: {}",
            condition.message.as_deref().unwrap_or("no message")
        ));
    }
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    Ok(status.updated_replicas.unwrap_or(0) >= wanted
        && status.replicas.unwrap_or(0) <= status.updated_replicas.unwrap_or(0)
        && status.available_replicas.unwrap_or(0) >= wanted)
}

fn progress(deployment: &Deployment) -> String {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    format!(
        "{} of {wanted} replicas updated, {} available",
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0)
    )
}

/// The Deployments API of `namespace` (or the connection's default namespace), with the
/// namespace used: the promoter and the replica-count router read and patch the same kind.
pub(crate) async fn deployments_api(
    connection: &KubeConnection,
    namespace: Option<&str>,
) -> Result<(Api<Deployment>, String), KubernetesError> {
    let (client, default_namespace) = connection.client().await?;
    let namespace = namespace.map_or(default_namespace, str::to_owned);
    Ok((Api::namespaced(client, &namespace), namespace))
}

/// The RBAC rule a `verb` on Deployment `namespace/name` needs, for error messages.
pub(crate) fn deployment_permission(verb: &'static str, namespace: &str, name: &str) -> Permission {
    Permission {
        verb,
        api_group: "apps".to_owned(),
        resource: "deployments".to_owned(),
        namespace: namespace.to_owned(),
        name: Some(name.to_owned()),
    }
}

/// Reads Deployment `namespace/name`; an API error names it and the rule it needs.
pub(crate) async fn read_deployment(
    api: &Api<Deployment>,
    namespace: &str,
    name: &str,
) -> Result<Deployment, KubernetesError> {
    api.get(name).await.map_err(|err| {
        api_error(
            &format!("Deployment {namespace}/{name}"),
            deployment_permission("get", namespace, name),
            err,
        )
    })
}
