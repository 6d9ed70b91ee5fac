//! Kubernetes: traffic routers that set the weights a gateway, an ingress controller or a
//! mesh reads from a resource, and a state store that keeps the rollout in a ConfigMap.
//!
//! The routers ([`HttpRouteRouter`], [`NginxIngressRouter`], [`VirtualServiceRouter`],
//! [`TrafficSplitRouter`], [`TraefikServiceRouter`]) share one engine: read the object, find
//! the two weights (typed with `gateway-api` and `k8s-openapi` where a maintained crate
//! exists, as JSON where none does), and write them with a JSON patch (RFC 6902) that holds
//! one `add` per weight and one `replace` of `metadata.resourceVersion` with the version
//! just read. The API server applies a patch to the object as it is now, so the patch
//! touches nothing but the weights; and because the patched object then carries the version
//! that was read, a write based on a stale read is refused with 409 Conflict instead of
//! silently winning. A conflict is answered with a fresh read and a new patch, a bounded
//! number of times. Setting is idempotent: weights that already match are not written.
//! Every router reads its weights back from the API server for
//! [`set_and_verify`](canary_core::ports::set_and_verify).
//!
//! Server-side apply was the alternative and was not chosen: `HTTPRoute.spec.rules`,
//! `VirtualService.spec.http` and the other lists holding these weights are atomic lists
//! for apply, so applying one weight means owning (and re-sending) the whole list.
//!
//! A refused request (403) becomes an error naming the RBAC rule that is missing: verb, API
//! group, resource and namespace, as `examples/kubernetes/` grants them.
//!
//! [`ConfigMapStateStore`] keeps a rollout in the cluster, so that a CI job that dies and is
//! rerun on another runner resumes the same rollout, and two jobs can't drive it at once.
//! [`DeploymentPromoter`] carries out the policy's optional Kubernetes promotion (the
//! Flagger model: the stable Deployment takes the canary's pod template).

mod connection;
mod httproute;
mod nginx_ingress;
mod promotion;
mod state;
mod traefik;
mod traffic_split;
mod virtual_service;
mod weights;

use std::fmt;

use canary_core::policy::GatewaySpec;
use canary_core::ports::TrafficRouter;
use kube::core::Status;

pub use connection::KubeConnection;
pub use httproute::HttpRouteRouter;
pub use nginx_ingress::{
    CANARY_ANNOTATION, CANARY_WEIGHT_ANNOTATION, CANARY_WEIGHT_TOTAL_ANNOTATION, NginxIngressRouter,
};
pub use promotion::DeploymentPromoter;
pub use state::{ConfigMapStateStore, Holder, OWNER_KEY, REQUEST_KEY, ROLLOUT_KEY};
pub use traefik::TraefikServiceRouter;
pub use traffic_split::TrafficSplitRouter;
pub use virtual_service::VirtualServiceRouter;

use crate::GatewayError;

/// The field manager canary writes as (`metadata.managedFields` shows it on the weights).
pub const FIELD_MANAGER: &str = "canary";

/// The router of a Kubernetes `gateway` of the policy, talking to the cluster through
/// `connection`; `None` for the gateways that are not Kubernetes resources.
pub fn kubernetes_router(
    spec: &GatewaySpec,
    connection: KubeConnection,
) -> Option<Box<dyn TrafficRouter>> {
    Some(match spec {
        GatewaySpec::HttpRoute(spec) => Box::new(HttpRouteRouter::new(spec, connection)),
        GatewaySpec::NginxIngress(spec) => Box::new(NginxIngressRouter::new(spec, connection)),
        GatewaySpec::IstioVirtualService(spec) => {
            Box::new(VirtualServiceRouter::new(spec, connection))
        }
        GatewaySpec::SmiTrafficSplit(spec) => Box::new(TrafficSplitRouter::new(spec, connection)),
        GatewaySpec::TraefikService(spec) => Box::new(TraefikServiceRouter::new(spec, connection)),
        GatewaySpec::Haproxy(_) | GatewaySpec::Nginx(_) | GatewaySpec::Command(_) => return None,
    })
}

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
pub(crate) fn api_error(object: &str, permission: Permission, err: kube::Error) -> GatewayError {
    match &err {
        kube::Error::Api(status) if status.code == 403 => GatewayError::KubeForbidden {
            object: object.to_owned(),
            permission: Box::new(permission),
            message: server_message(status),
        },
        kube::Error::Api(status) if status.code == 404 => GatewayError::KubeNotFound {
            object: object.to_owned(),
            message: server_message(status),
        },
        _ => GatewayError::KubeApi {
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

/// How many times a write is tried when it keeps meeting 409 Conflict, each after a fresh
/// read: enough for a few concurrent writers, few enough to give up while the rollout waits.
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// The pause before the `attempt`-th retry: 50 ms, doubling, at most 800 ms.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(50 << attempt.min(4))
}

/// Escapes one JSON-pointer token (RFC 6901): `~` as `~0`, `/` as `~1`.
pub(crate) fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
