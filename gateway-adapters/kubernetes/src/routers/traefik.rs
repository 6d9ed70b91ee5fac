//! [`TraefikServiceRouter`]: the weights of two services of a weighted Traefik
//! `TraefikService` (`traefik.io/v1alpha1`, or `traefik.containo.us/v1alpha1` for Traefik 2),
//! as a dynamic object: no maintained crate types Traefik's CRDs. The shape relied on, from
//! Traefik's CRD (`traefikservices`, schema of `spec.weighted`):
//!
//! ```yaml
//! spec:
//!   weighted:
//!     services:                # list of WRRService
//!     - name: string           # required: a Service, or a TraefikService with kind
//!       kind: Service | TraefikService
//!       namespace: string
//!       port: int-or-string
//!       weight: integer        # optional
//!     sticky: {...}            # optional, never touched
//! ```

use canary_core::policy::TraefikServiceSpec;
use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::KubeConnection;
use crate::routers::weights::{WeightRouter, WeightedKind, Weights, delegate_router, two_entries};

/// Sets the canary's share as the weights of two `spec.weighted.services` entries.
pub struct TraefikServiceRouter(WeightRouter<TraefikServiceKind>);

delegate_router!(TraefikServiceRouter);

/// The TraefikService specifics of [`TraefikServiceRouter`].
#[derive(Clone, Debug)]
pub(crate) struct TraefikServiceKind {
    api_version: String,
    stable: String,
    canary: String,
    total: u32,
}

impl TraefikServiceRouter {
    /// A router for the policy's `gateway.traefik-service`.
    pub fn new(spec: &TraefikServiceSpec, connection: KubeConnection) -> TraefikServiceRouter {
        TraefikServiceRouter(WeightRouter::with_kind(
            TraefikServiceKind {
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

/// The ApiResource of TraefikServices at `api_version` (`traefik.io/v1alpha1`).
pub(crate) fn traefik_service_resource(api_version: &str) -> ApiResource {
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("traefik.io", "v1alpha1"));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, "TraefikService"),
        "traefikservices",
    )
}

impl WeightedKind for TraefikServiceKind {
    fn kind(&self) -> &'static str {
        "TraefikService"
    }

    fn resource(&self) -> ApiResource {
        traefik_service_resource(&self.api_version)
    }

    fn what(&self) -> String {
        format!(
            "weighted services {} (stable) / {} (canary)",
            self.stable, self.canary
        )
    }

    fn locate(&self, object: &Value) -> Result<Weights, String> {
        let services = match object.pointer("/spec/weighted/services") {
            Some(Value::Array(services)) => services.as_slice(),
            _ => {
                return Err(
                    "spec.weighted.services is not a list: not a weighted TraefikService"
                        .to_owned(),
                );
            }
        };
        let named =
            |name: &str, entry: &Value| entry.get("name").and_then(Value::as_str) == Some(name);
        // Traefik gives a service without a weight the weight 1.
        two_entries(
            services,
            "/spec/weighted/services",
            "spec.weighted.services",
            |e| named(&self.stable, e),
            |e| named(&self.canary, e),
            1,
            self.total,
        )
    }
}
