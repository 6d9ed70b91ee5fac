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
//!     mirror: {host, subset, port}    # optional: a copy of the requests goes there
//!     mirrorPercentage: {value: double}  # optional; absent mirrors 100 %
//! ```
//!
//! A mirror step sets `mirror` (the canary destination) and `mirrorPercentage` on the
//! weighted route, with the canary's weight 0; `mirrorPercentage` absent is all the traffic
//! (Istio's `HTTPRoute.mirrorPercentage`,
//! <https://pub.dev/documentation/kubernetes/latest/io.istio.v1beta1/HTTPRoute/mirrorPercentage.html>).
//! The mirror canary wrote is marked in `canary.dev/request-route`; a mirror without the mark
//! is the user's, left alone (and not overwritten). Header steps are not built for Istio yet.

use canary_core::policy::{IstioDestination, IstioVirtualServiceSpec, RuleRef};
use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::KubeConnection;
use canary_core::policy::StepRoute;
use json_patch::{AddOperation, PatchOperation, RemoveOperation};

use crate::routers::weights::{
    WeightRouter, WeightedKind, Weights, delegate_router, mark_ops, marked_route, pick, pointer,
    two_entries,
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

    fn read_route(&self, object: &Value) -> Result<Option<StepRoute>, String> {
        let Some(marked @ StepRoute::Mirror { .. }) = marked_route(object)? else {
            return Ok(None);
        };
        let (_, route) = self.weighted(object)?;
        Ok((self.mirror_of(&route)? == Some(marked.clone())).then_some(marked))
    }

    fn route_ops(
        &self,
        object: &Value,
        route: Option<&StepRoute>,
    ) -> Result<Vec<PatchOperation>, String> {
        let percent = match route {
            None => None,
            Some(StepRoute::Mirror { percent }) => Some(*percent),
            Some(other) => {
                return Err(format!(
                    "cannot route {other}: the istio-virtual-service router mirrors, header routes are not built yet"
                ));
            }
        };
        let marked = marked_route(object)?;
        let (index, weighted) = self.weighted(object)?;
        let found = self.mirror_of(&weighted)?;
        if marked.as_ref() == route && found.as_ref() == route {
            return Ok(Vec::new());
        }
        let has = |key: &str| weighted.get(key).is_some();
        if marked.is_none() && has("mirror") && route.is_some() {
            return Err(format!(
                "spec.http[{index}] already mirrors on its own (not canary's): canary does not overwrite a mirror it did not write; remove it to run the mirror step"
            ));
        }
        let mut ops = Vec::new();
        let at = |key: &str| pointer(&format!("/spec/http/{index}/{key}"));
        match percent {
            Some(percent) => {
                let mut destination = serde_json::json!({ "host": self.canary.host });
                if let Some(subset) = &self.canary.subset {
                    destination["subset"] = Value::from(subset.clone());
                }
                ops.push(PatchOperation::Add(AddOperation {
                    path: at("mirror"),
                    value: destination,
                }));
                if percent < 100 {
                    ops.push(PatchOperation::Add(AddOperation {
                        path: at("mirrorPercentage"),
                        value: serde_json::json!({ "value": f64::from(percent) }),
                    }));
                } else if has("mirrorPercentage") {
                    ops.push(PatchOperation::Remove(RemoveOperation {
                        path: at("mirrorPercentage"),
                    }));
                }
            }
            // Only a mirror canary marked is removed.
            None if marked.is_some() => {
                for key in ["mirror", "mirrorPercentage"] {
                    if has(key) {
                        ops.push(PatchOperation::Remove(RemoveOperation { path: at(key) }));
                    }
                }
            }
            None => {}
        }
        ops.extend(mark_ops(object, route)?);
        Ok(ops)
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

impl VirtualServiceKind {
    /// The weighted `spec.http[]` route: its index and itself.
    fn weighted(&self, object: &Value) -> Result<(usize, Value), String> {
        let http = match object.pointer("/spec/http") {
            Some(Value::Array(http)) => http.as_slice(),
            _ => &[],
        };
        let holds = |route: &Value| {
            let destinations = route.get("route").and_then(Value::as_array);
            destinations.is_some_and(|d| {
                d.iter().any(|e| is(&self.stable, e)) && d.iter().any(|e| is(&self.canary, e))
            })
        };
        let (index, route) = pick(http, self.route.as_ref(), "spec.http", holds)?;
        Ok((index, route.clone()))
    }

    /// The mirror to the canary destination a route carries, if any.
    fn mirror_of(&self, route: &Value) -> Result<Option<StepRoute>, String> {
        let Some(mirror) = route.get("mirror") else {
            return Ok(None);
        };
        if !is(&self.canary, &serde_json::json!({ "destination": mirror })) {
            return Ok(None);
        }
        let percent = match route.pointer("/mirrorPercentage/value") {
            None => 100,
            Some(value) => value
                .as_f64()
                .filter(|v| (0.0..=100.0).contains(v))
                .map(|v| v.round() as u8)
                .ok_or_else(|| format!("mirrorPercentage.value is {value}, expected 0 to 100"))?,
        };
        Ok(Some(StepRoute::Mirror { percent }))
    }
}
