//! `canary-kubernetes`: canary's adapters for a Kubernetes cluster, in a crate of their own
//! so that a build without the binary's `kubernetes` feature compiles no Kubernetes client.
//! Like every adapter it depends on `canary-core` only.
//!
//! - [`routers`] set the weights a gateway, an ingress controller or a mesh reads from a
//!   resource: Gateway API `HTTPRoute` ([`HttpRouteRouter`]), ingress-nginx canary `Ingress`
//!   ([`NginxIngressRouter`]), Istio `VirtualService` ([`VirtualServiceRouter`]), SMI
//!   `TrafficSplit` ([`TrafficSplitRouter`]), Traefik `TraefikService`
//!   ([`TraefikServiceRouter`]); for clusters with nothing that splits traffic, the ready pods
//!   of two Deployments ([`ReplicaCountRouter`]); [`kubernetes_router`] builds the one a policy asks for.
//! - [`ConfigMapStateStore`] keeps a rollout in the cluster, so that a CI job that dies and is
//!   rerun on another runner resumes the same rollout, and two jobs can't drive it at once.
//! - [`DeploymentPromoter`] carries out the policy's optional Kubernetes promotion (the
//!   Flagger model: the stable Deployment takes the canary's pod template).
//! - [`KubeConnection`] is how all of them reach the API server; a [`WriteGuard`] on it is
//!   asked before each write a router sends (the controller's leader-Lease fence).
//! - [`controller`] holds the `CanaryRollout` custom resource of `canary controller` and
//!   how a rollout's state becomes its status.
//!
//! A refused request (403) becomes an error naming the RBAC rule that is missing: verb, API
//! group, resource and namespace, as `examples/kubernetes/` grants them.

mod configmap_store;
mod connection;
pub mod controller;
pub mod error;
mod promotion;
pub mod routers;

use std::fmt;
use std::time::Duration;

use canary_core::retry::Backoff;

use kube::core::Status;

pub use configmap_store::{ConfigMapStateStore, Holder, OWNER_KEY, REQUEST_KEY, ROLLOUT_KEY};
pub use connection::{KubeConnection, WriteGuard};
pub use error::{KubernetesError, Result};
pub use promotion::DeploymentPromoter;
pub use routers::{
    ASKED_WEIGHT_ANNOTATION, CANARY_ANNOTATION, CANARY_WEIGHT_ANNOTATION,
    CANARY_WEIGHT_TOTAL_ANNOTATION, GENERATED_ANNOTATION, HttpRouteRouter, MATCH_ROUTE_NAME,
    NginxIngressRouter, ROUTE_ANNOTATION, ReplicaCountRouter, TraefikServiceRouter,
    TrafficSplitRouter, VirtualServiceRouter, kubernetes_router,
};

/// The field manager canary writes as (`metadata.managedFields` shows it on the weights).
pub const FIELD_MANAGER: &str = "canary";

/// One permission a request needs, as an RBAC rule grants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    /// The verb: `get`, `patch`, `create`, `update`.
    pub verb: &'static str,
    /// The API group; empty for the core group (ConfigMaps).
    pub api_group: String,
    /// The resource (plural), e.g. `httproutes`.
    pub resource: String,
    /// The namespace.
    pub namespace: String,
    /// The object's name, when the request names one (`create` does not).
    pub name: Option<String>,
}

impl Permission {
    /// The RBAC rule that grants it, as a Role writes it.
    pub fn rule(&self) -> String {
        let names = match &self.name {
            Some(name) => format!(", resourceNames: [\"{name}\"]"),
            None => String::new(),
        };
        format!(
            "{{apiGroups: [\"{}\"], resources: [\"{}\"], verbs: [\"{}\"]{names}}} in a Role of namespace {}",
            self.api_group, self.resource, self.verb, self.namespace
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "the core API group".to_owned()
        } else {
            format!("API group \"{}\"", self.api_group)
        };
        write!(f, "`{}` on {} in {group}", self.verb, self.resource)?;
        if let Some(name) = &self.name {
            write!(f, " (name \"{name}\")")?;
        }
        write!(f, " in namespace \"{}\"", self.namespace)
    }
}

/// Turns a failed API request into the crate's error: 403 names the missing permission,
/// 404 the missing object; anything else keeps the API server's answer.
pub(crate) fn api_error(object: &str, permission: Permission, err: kube::Error) -> KubernetesError {
    match &err {
        kube::Error::Api(status) if status.code == 403 => KubernetesError::Forbidden {
            object: object.to_owned(),
            permission: Box::new(permission),
            message: server_message(status),
        },
        kube::Error::Api(status) if status.code == 404 => KubernetesError::NotFound {
            object: object.to_owned(),
            message: server_message(status),
        },
        _ => KubernetesError::Api {
            object: object.to_owned(),
            action: permission.verb,
            source: Box::new(err),
        },
    }
}

fn server_message(status: &Status) -> String {
    if status.message.is_empty() {
        format!("{} {}", status.code, status.reason)
    } else {
        status.message.clone()
    }
}

/// Whether an API error is a 409 Conflict (a stale resourceVersion, or "already exists").
pub(crate) fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// Whether an API error is a 404 Not Found.
pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

/// How writes that meet 409 Conflict are retried, each after a fresh read: five attempts
/// (enough for a few concurrent writers, few enough to give up while the rollout waits),
/// pausing 100 ms, doubling, at most 800 ms.
pub(crate) const CONFLICT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_millis(800), 4);

/// Escapes one JSON-pointer token (RFC 6901): `~` as `~0`, `/` as `~1`.
pub(crate) fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
