//! [`ReplicaCountRouter`]: for clusters with nothing that can split traffic (no mesh, no
//! Gateway, a plain ingress), the canary's share is set by replica counts: a stable and a
//! canary Deployment behind one Service, whose ready pods kube-proxy spreads connections
//! over evenly. The weight asked for becomes the nearest whole number of pods out of the
//! policy's `replicas` ([`replica_split`], Argo Rollouts' rule for a canary without traffic
//! management), and what counts is what was **achieved**: the ready pods, read back from the
//! Deployments' `status.readyReplicas`. 10 % of 8 pods is 1 canary pod, 12.5 %, and that is
//! what progress and reports say ([`TrafficRouter::achieved_share`]).
//!
//! The weight asked for is kept on the canary Deployment (annotation
//! [`ASKED_WEIGHT_ANNOTATION`]), so a read after a restart knows what the pods stand for:
//! the read-back is the asked weight only while both Deployments want and have exactly the
//! pods it maps to; otherwise it is the ready pods' share (a pod that crashed, a Deployment
//! scaled by hand: drift, repaired by the rollout), and no ready pod at all is an error.
//! A split whose pods do not become ready within `ready-timeout` (an image that cannot be
//! pulled, a failing readiness probe) is an error naming the Deployment, never a silent 0 %.
//!
//! Order of changes: a canary that grows is scaled up and ready before the stable version
//! shrinks, so serving capacity never drops; a canary that shrinks (the next step never
//! does; a rollback does) goes down at once with the stable version scaled up beside it,
//! since taking a bad canary out of the Service is the point — unless no stable pod is ready
//! (back from 100 %: the Kubernetes promotion routing traffic to the stable Deployment that
//! took the canary's template), where the stable pods are ready before the canary goes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use canary_core::policy::{ReplicaCountSpec, duration_as_written};
use canary_core::ports::{AchievedShare, TrafficRouter, canary_share, replica_split};
use canary_core::retry::{Failure, retry};
use json_patch::{AddOperation, Patch as JsonPatch, PatchOperation, ReplaceOperation};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::promotion::{deployment_permission, deployments_api, read_deployment};
use crate::routers::weights::pointer;
use crate::{
    CONFLICT_BACKOFF, FIELD_MANAGER, KubeConnection, KubernetesError, api_error, pointer_token,
};

/// The annotation on the canary Deployment holding the weight last asked for, in percent.
pub const ASKED_WEIGHT_ANNOTATION: &str = "canary.dev/asked-weight";

/// How often the Deployments are looked at while their pods start.
const POLL: Duration = Duration::from_secs(2);

/// Sets the canary's share as the replica counts of two Deployments (see the module docs).
pub struct ReplicaCountRouter {
    connection: KubeConnection,
    namespace: Option<String>,
    stable: String,
    canary: String,
    replicas: u32,
    ready_timeout: Duration,
    poll: Duration,
    /// The ready pods of the last read, for [`TrafficRouter::achieved_share`].
    last: Mutex<Option<AchievedShare>>,
}

/// What one Deployment wants and has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pods {
    /// `spec.replicas` (1 when unset, as the API server defaults it).
    wanted: u32,
    /// `status.readyReplicas`.
    ready: u32,
}

impl ReplicaCountRouter {
    /// The router of the policy's `gateway.replica-count`.
    pub fn new(spec: &ReplicaCountSpec, connection: KubeConnection) -> ReplicaCountRouter {
        ReplicaCountRouter {
            connection,
            namespace: spec.stable.namespace.clone(),
            stable: spec.stable.name.clone(),
            canary: spec.canary_deployment.clone(),
            replicas: spec.replicas,
            ready_timeout: spec.ready_timeout,
            poll: POLL,
            last: Mutex::new(None),
        }
    }

    /// The same, looking at the Deployments every `poll` (tests wait less).
    pub fn with_poll_interval(mut self, poll: Duration) -> ReplicaCountRouter {
        self.poll = poll;
        self
    }

    /// Sets `spec.replicas` of `name` (and, for the canary, the weight asked for), guarded
    /// by the resourceVersion read, retried on conflict; nothing is written when both hold.
    async fn scale(
        &self,
        api: &Api<Deployment>,
        namespace: &str,
        name: &str,
        replicas: u32,
        asked: Option<u8>,
    ) -> Result<(), KubernetesError> {
        let object = format!("Deployment {namespace}/{name}");
        let object = object.as_str();
        retry(CONFLICT_BACKOFF, tokio::time::sleep, |attempt| async move {
            let deployment = read_deployment(api, namespace, name).await?;
            let annotations = deployment.metadata.annotations.as_ref();
            let asked_now = annotations.and_then(|a| a.get(ASKED_WEIGHT_ANNOTATION));
            let mut ops = vec![PatchOperation::Replace(ReplaceOperation {
                path: pointer("/metadata/resourceVersion"),
                value: deployment
                    .metadata
                    .resource_version
                    .clone()
                    .map_or(Value::Null, Value::String),
            })];
            if pods(&deployment).wanted != replicas
                || deployment.spec.as_ref().and_then(|s| s.replicas).is_none()
            {
                ops.push(PatchOperation::Add(AddOperation {
                    path: pointer("/spec/replicas"),
                    value: json!(replicas),
                }));
            }
            if let Some(asked) = asked
                && asked_now.map(String::as_str) != Some(asked.to_string().as_str())
            {
                ops.push(match annotations {
                    Some(_) => PatchOperation::Add(AddOperation {
                        path: pointer(&format!(
                            "/metadata/annotations/{}",
                            pointer_token(ASKED_WEIGHT_ANNOTATION)
                        )),
                        value: json!(asked.to_string()),
                    }),
                    None => PatchOperation::Add(AddOperation {
                        path: pointer("/metadata/annotations"),
                        value: json!({ ASKED_WEIGHT_ANNOTATION: asked.to_string() }),
                    }),
                });
            }
            if ops.len() == 1 {
                return Ok(());
            }
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            // Right before each attempt, and so before each Deployment of a split: the
            // guard may have closed while the other one's pods started.
            self.connection.may_write(object).map_err(Failure::Final)?;
            match api
                .patch(name, &params, &Patch::Json::<()>(JsonPatch(ops)))
                .await
            {
                Ok(_) => Ok(()),
                Err(err) if crate::is_conflict(&err) => {
                    Err(Failure::Retryable(KubernetesError::Conflict {
                        object: object.to_owned(),
                        attempts: attempt,
                    }))
                }
                Err(err) => Err(Failure::Final(api_error(
                    object,
                    deployment_permission("patch", namespace, name),
                    err,
                ))),
            }
        })
        .await
    }

    /// Reads both Deployments: the canary's pods, the stable version's, and the weight last
    /// asked for.
    async fn observe(
        &self,
        api: &Api<Deployment>,
        namespace: &str,
    ) -> Result<(Pods, Pods, Option<u8>), KubernetesError> {
        let canary = read_deployment(api, namespace, &self.canary).await?;
        let stable = read_deployment(api, namespace, &self.stable).await?;
        for deployment in [&canary, &stable] {
            if let Some(message) = progress_deadline_exceeded(deployment) {
                return Err(KubernetesError::Object {
                    object: format!(
                        "Deployment {namespace}/{}",
                        deployment.metadata.name.as_deref().unwrap_or("?")
                    ),
                    message: format!("its pods did not become ready: {message}"),
                });
            }
        }
        let asked = canary
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ASKED_WEIGHT_ANNOTATION))
            .and_then(|w| w.trim().parse::<u8>().ok())
            .filter(|&w| w <= 100);
        let (canary, stable) = (pods(&canary), pods(&stable));
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(AchievedShare {
            canary_ready: canary.ready,
            stable_ready: stable.ready,
        });
        Ok((canary, stable, asked))
    }

    /// Waits until the Deployments have exactly `canary` and `stable` ready pods (`None`:
    /// that one is not waited for).
    async fn wait_ready(
        &self,
        api: &Api<Deployment>,
        namespace: &str,
        canary: Option<u32>,
        stable: Option<u32>,
    ) -> Result<(), KubernetesError> {
        let started = Instant::now();
        loop {
            let (c, s, _) = self.observe(api, namespace).await?;
            let short = [(&self.canary, c, canary), (&self.stable, s, stable)]
                .into_iter()
                .filter_map(|(name, pods, wanted)| Some((name, pods, wanted?)))
                .find(|(_, pods, wanted)| pods.ready != *wanted);
            let Some((name, pods, wanted)) = short else {
                return Ok(());
            };
            if started.elapsed() >= self.ready_timeout {
                return Err(KubernetesError::Object {
                    object: format!("Deployment {namespace}/{name}"),
                    message: format!(
                        "{} of {wanted} pods ready after {} (ready-timeout): its pods do not become ready (see `kubectl -n {namespace} describe deployment {name}`); the canary's share could not be set",
                        pods.ready,
                        duration_as_written(self.ready_timeout)
                    ),
                });
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn set(&self, weight: u8) -> Result<(), KubernetesError> {
        let (api, namespace) = deployments_api(&self.connection, self.namespace.as_deref()).await?;
        let (canary, stable) = replica_split(weight, self.replicas);
        let (now_canary, now_stable, _) = self.observe(&api, &namespace).await?;
        if canary >= now_canary.wanted {
            // Growing (or holding): the new canary pods serve before stable ones go.
            self.scale(&api, &namespace, &self.canary, canary, Some(weight))
                .await?;
            self.wait_ready(&api, &namespace, Some(canary), Some(now_stable.wanted))
                .await?;
            self.scale(&api, &namespace, &self.stable, stable, None)
                .await?;
        } else if now_stable.ready == 0 {
            // Back from 100 % (a promotion routing to the stable Deployment, or a rollback
            // from the soak): nothing else serves, so the stable pods come first.
            self.scale(&api, &namespace, &self.stable, stable, None)
                .await?;
            self.wait_ready(&api, &namespace, None, Some(stable))
                .await?;
            self.scale(&api, &namespace, &self.canary, canary, Some(weight))
                .await?;
        } else {
            // Shrinking (a rollback): the canary leaves the Service at once; the stable
            // version, still serving, grows back beside it.
            self.scale(&api, &namespace, &self.canary, canary, Some(weight))
                .await?;
            self.scale(&api, &namespace, &self.stable, stable, None)
                .await?;
        }
        self.wait_ready(&api, &namespace, Some(canary), Some(stable))
            .await
    }

    async fn get(&self) -> Result<u8, KubernetesError> {
        let (api, namespace) = deployments_api(&self.connection, self.namespace.as_deref()).await?;
        let (canary, stable, asked) = self.observe(&api, &namespace).await?;
        if let Some(asked) = asked {
            let (c, s) = replica_split(asked, self.replicas);
            let exact = |pods: Pods, n: u32| pods.wanted == n && pods.ready == n;
            if exact(canary, c) && exact(stable, s) {
                return Ok(asked);
            }
        }
        canary_share(canary.ready, stable.ready).ok_or_else(|| KubernetesError::Object {
            object: format!(
                "Deployments {namespace}/{} and {namespace}/{}",
                self.stable, self.canary
            ),
            message: format!(
                "no pod of either is ready ({} stable and {} canary wanted): nothing serves the Service",
                stable.wanted, canary.wanted
            ),
        })
    }
}

#[async_trait::async_trait]
impl TrafficRouter for ReplicaCountRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        canary_core::ports::check_canary_weight(weight)?;
        Ok(self.set(weight).await?)
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        Ok(self.get().await?)
    }

    async fn achieved_share(&self) -> canary_core::Result<Option<AchievedShare>> {
        Ok(*self.last.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn describe(&self) -> String {
        let namespace = self.namespace.as_deref().unwrap_or("(default namespace)");
        format!(
            "ready pods of Deployments {namespace}/{} (stable) and {namespace}/{} (canary), {} in all",
            self.stable, self.canary, self.replicas
        )
    }
}

fn pods(deployment: &Deployment) -> Pods {
    let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok());
    Pods {
        wanted: count(deployment.spec.as_ref().and_then(|s| s.replicas)).unwrap_or(1),
        ready: count(deployment.status.as_ref().and_then(|s| s.ready_replicas)).unwrap_or(0),
    }
}

/// The message of a `Progressing` condition that says `ProgressDeadlineExceeded` (the
/// Deployment controller gave up on its pods), if there is one.
fn progress_deadline_exceeded(deployment: &Deployment) -> Option<String> {
    let status = deployment.status.as_ref()?;
    let condition = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    })?;
    Some(
        condition
            .message
            .clone()
            .unwrap_or_else(|| "ProgressDeadlineExceeded".to_owned()),
    )
}
