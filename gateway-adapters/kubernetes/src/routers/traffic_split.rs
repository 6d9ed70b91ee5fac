//! [`TrafficSplitRouter`]: the weights of two backends of an SMI `TrafficSplit`
//! (`split.smi-spec.io`, as Linkerd's SMI extension serves it), as a dynamic object: no
//! maintained crate types SMI. The shape relied on, from the SMI traffic-split spec and CRD
//! (v1alpha2 to v1alpha4 alike for these fields):
//!
//! ```yaml
//! spec:
//!   service: string            # the root (apex) Service clients call
//!   backends:                  # list
//!   - service: string          # a Service behind the root one
//!     weight: integer          # v1alpha2+: an integer (v1alpha1's quantities are refused)
//! ```

use canary_core::policy::SmiTrafficSplitSpec;
use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::KubeConnection;
use crate::routers::weights::{WeightRouter, WeightedKind, Weights, delegate_router, two_entries};

/// Sets the canary's share as the weights of two `spec.backends` of a TrafficSplit.
pub struct TrafficSplitRouter(WeightRouter<TrafficSplitKind>);

delegate_router!(TrafficSplitRouter);

/// The TrafficSplit specifics of [`TrafficSplitRouter`].
#[derive(Clone, Debug)]
pub(crate) struct TrafficSplitKind {
    api_version: String,
    stable: String,
    canary: String,
    total: u32,
}

impl TrafficSplitRouter {
    /// A router for the policy's `gateway.smi-traffic-split`.
    pub fn new(spec: &SmiTrafficSplitSpec, connection: KubeConnection) -> TrafficSplitRouter {
        TrafficSplitRouter(WeightRouter::with_kind(
            TrafficSplitKind {
                api_version: spec.api_version.clone(),
                stable: spec.stable.clone(),
                canary: spec.canary.clone(),
                total: spec.weight_total,
            },
            connection,
            &spec.object.name,
            spec.object.namespace.as_deref(),
        ))
    }
}

/// The ApiResource of TrafficSplits at `api_version` (`split.smi-spec.io/v1alpha2`).
pub(crate) fn traffic_split_resource(api_version: &str) -> ApiResource {
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("split.smi-spec.io", "v1alpha2"));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, "TrafficSplit"),
        "trafficsplits",
    )
}

impl WeightedKind for TrafficSplitKind {
    fn kind(&self) -> &'static str {
        "TrafficSplit"
    }

    fn resource(&self) -> ApiResource {
        traffic_split_resource(&self.api_version)
    }

    fn what(&self) -> String {
        format!(
            "backends {} (stable) / {} (canary)",
            self.stable, self.canary
        )
    }

    fn locate(&self, object: &Value) -> Result<Weights, String> {
        if object
            .pointer("/spec/service")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err("spec.service is missing: not a TrafficSplit as SMI defines it".to_owned());
        }
        let backends = match object.pointer("/spec/backends") {
            Some(Value::Array(backends)) => backends.as_slice(),
            _ => return Err("spec.backends is not a list".to_owned()),
        };
        let service =
            |name: &str, entry: &Value| entry.get("service").and_then(Value::as_str) == Some(name);
        two_entries(
            backends,
            "/spec/backends",
            "spec.backends",
            |e| service(&self.stable, e),
            |e| service(&self.canary, e),
            0,
            self.total,
        )
    }
}
