//! [`VirtualServiceRouter`]: the weights of two destinations of one HTTP route of an Istio
//! `VirtualService` (`networking.istio.io/v1` by default; `v1beta1` or `v1alpha3` as the
//! policy's `api-version` says, for Istio before 1.22), as a dynamic object: no maintained crate
//! types Istio's API. The shape relied on, from Istio's CRD (`networking.istio.io`,
//! `VirtualService`, schema of `spec.http[].route[]`):
//!
//! ```yaml
//! spec:
//!   http:                      # list, atomic
//!   - name: string             # optional
//!     route:                   # list of HTTPRouteDestination
//!     - destination:
//!         host: string         # required
//!         subset: string       # optional, a DestinationRule subset
//!         port: {number: int}  # optional
//!       weight: int32          # optional; the route's weights add up to 100
//! ```

use canary_core::policy::{IstioDestination, IstioVirtualServiceSpec, RuleRef};
use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::KubeConnection;
use crate::routers::weights::{
    WeightRouter, WeightedKind, Weights, delegate_router, pick, two_entries,
};

/// Sets the canary's share as the weights of two destinations (two hosts, or one host's
/// two subsets) of one `spec.http[]` route. Istio wants a route's weights to add up to 100.
pub struct VirtualServiceRouter(WeightRouter<VirtualServiceKind>);

delegate_router!(VirtualServiceRouter);

/// The VirtualService specifics of [`VirtualServiceRouter`].
#[derive(Clone, Debug)]
pub(crate) struct VirtualServiceKind {
    route: Option<RuleRef>,
    stable: IstioDestination,
    canary: IstioDestination,
    api_version: String,
}

impl VirtualServiceRouter {
    /// A router for the policy's `gateway.istio-virtual-service`.
    pub fn new(spec: &IstioVirtualServiceSpec, connection: KubeConnection) -> VirtualServiceRouter {
        VirtualServiceRouter(WeightRouter::with_kind(
            VirtualServiceKind {
                route: spec.route.clone(),
                stable: spec.stable.clone(),
                canary: spec.canary.clone(),
                api_version: spec.api_version.clone(),
            },
            connection,
            &spec.object.name,
            spec.object.namespace.as_deref(),
        ))
    }
}

/// The ApiResource of VirtualServices in `api_version` (`networking.istio.io/v1`, …).
pub(crate) fn virtual_service_resource(api_version: &str) -> ApiResource {
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("networking.istio.io", "v1"));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, "VirtualService"),
        "virtualservices",
    )
}

fn is(destination: &IstioDestination, entry: &Value) -> bool {
    let Some(dest) = entry.get("destination") else {
        return false;
    };
    dest.get("host").and_then(Value::as_str) == Some(destination.host.as_str())
        && dest.get("subset").and_then(Value::as_str) == destination.subset.as_deref()
}

impl WeightedKind for VirtualServiceKind {
    fn kind(&self) -> &'static str {
        "VirtualService"
    }

    fn resource(&self) -> ApiResource {
        virtual_service_resource(&self.api_version)
    }

    fn what(&self) -> String {
        let route = match &self.route {
            Some(route) => format!("http route {route}"),
            None => "the http route".to_owned(),
        };
        format!(
            "{route} destinations {} (stable) / {} (canary)",
            self.stable, self.canary
        )
    }

    fn locate(&self, object: &Value) -> Result<Weights, String> {
        let http = match object.pointer("/spec/http") {
            Some(Value::Array(http)) => http.as_slice(),
            None | Some(Value::Null) => &[],
            Some(other) => return Err(format!("spec.http is {other}, expected a list")),
        };
        let holds = |route: &Value| {
            let destinations = route.get("route").and_then(Value::as_array);
            destinations.is_some_and(|d| {
                d.iter().any(|e| is(&self.stable, e)) && d.iter().any(|e| is(&self.canary, e))
            })
        };
        let (index, route) = pick(http, self.route.as_ref(), "spec.http", holds)?;
        let destinations = match route.get("route") {
            Some(Value::Array(d)) => d.as_slice(),
            _ => {
                return Err(format!(
                    "spec.http[{index}].route is not a list of destinations"
                ));
            }
        };
        for (i, entry) in destinations.iter().enumerate() {
            if entry
                .pointer("/destination/host")
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(format!(
                    "spec.http[{index}].route[{i}].destination.host is missing: not a VirtualService as Istio defines it"
                ));
            }
        }
        // A destination without a weight takes none once another has one; canary always
        // writes both, so 0 is the honest reading of an unset weight here.
        two_entries(
            destinations,
            &format!("/spec/http/{index}/route"),
            &format!("spec.http[{index}].route"),
            |e| is(&self.stable, e),
            |e| is(&self.canary, e),
            0,
            100,
        )
    }
}
