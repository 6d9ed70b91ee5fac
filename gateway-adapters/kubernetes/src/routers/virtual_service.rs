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
//!
//! A header or cookie step inserts one route right before the weighted one (Istio serves a
//! request by the first `http[]` route that matches it): a copy of the weighted route (its
//! retries, timeout, rewrite and fields canary does not know) named `canary-request-route`
//! ([`MATCH_ROUTE_NAME`]; the policy may name the weighted route, whose name stays its own), whose
//! `match` list is the weighted route's with one more header condition in each entry
//! (`headers: {NAME: {exact: VALUE}}`, the name in lower case as Istio wants it; for a cookie,
//! `headers: {cookie: {regex: …}}` matching `NAME=always` anywhere in the Cookie header), and
//! whose `route` is the canary destination alone. The weighted route keeps the rest at the
//! canary's weight 0. The policy must then name the weighted route by `name`, not by index:
//! the inserted route moves the indexes.
//!
//! With the policy's `protocol: tls` or `tcp` the weights are those of a `spec.tls[]` or
//! `spec.tcp[]` route, whose `route[]` has the same shape (RouteDestination: `destination`,
//! `weight`); those routes have no names and carry no header, cookie or mirror step.
//!
//! The mirror or route canary wrote is marked in `canary.dev/request-route` and read back at
//! every tick (the weighted route's mirror; a route of exactly that shape before it); one
//! without the mark is the user's, left alone (and not overwritten).

use canary_core::policy::{
    GenerateVirtualService, IstioDestination, IstioProtocol, IstioVirtualServiceSpec, RuleRef,
};
use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::KubeConnection;
use canary_core::policy::StepRoute;
use json_patch::{AddOperation, PatchOperation, RemoveOperation};

use std::sync::atomic::{AtomicBool, Ordering};

use kube::api::{Api, DynamicObject};

use crate::routers::weights::{
    WeightRouter, WeightedKind, Weights, mark_ops, marked_route, pick, pointer, two_entries,
};
use crate::{KubernetesError, Permission};

/// The VirtualService `generate` makes: for its hosts (through its gateways), one HTTP
/// route (named `canary`) sending everything to the stable destination (weight 100) and none
/// to the canary's, owned by the Deployment of `owner` (an ownerReference,
/// [`crate::routers::generated`]), marked `canary.dev/generated: "true"`.
fn generated_virtual_service(
    name: &str,
    namespace: &str,
    kind: &VirtualServiceKind,
    generate: &GenerateVirtualService,
    owner: Value,
) -> Value {
    let destination = |d: &IstioDestination| {
        let mut destination = serde_json::json!({ "host": d.host });
        if let Some(subset) = &d.subset {
            destination["subset"] = Value::from(subset.clone());
        }
        destination
    };
    let mut spec = serde_json::json!({
        "hosts": generate.hosts,
        "http": [{
            "name": "canary",
            "route": [
                {"destination": destination(&kind.stable), "weight": 100},
                {"destination": destination(&kind.canary), "weight": 0}
            ]
        }]
    });
    if !generate.gateways.is_empty() {
        spec["gateways"] = Value::from(generate.gateways.clone());
    }
    serde_json::json!({
        "apiVersion": kind.api_version,
        "kind": "VirtualService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {crate::routers::generated::GENERATED_ANNOTATION: "true"},
            "ownerReferences": [owner]
        },
        "spec": spec
    })
}

/// The `name` of the `spec.http[]` route a header or cookie step inserts: how canary tells
/// its own route from one of the user's that sends the same requests to the canary.
pub const MATCH_ROUTE_NAME: &str = "canary-request-route";

/// Sets the canary's share as the weights of two destinations (two hosts, or one host's
/// two subsets) of one `spec.http[]` route. Istio wants a route's weights to add up to 100.
/// With subsets, the DestinationRule defining them is read before the first weight moves
/// (the pre-flight read) and before every change: a route to a subset no DestinationRule
/// defines is answered with 503 by Istio, whatever the weight.
pub struct VirtualServiceRouter {
    inner: WeightRouter<VirtualServiceKind>,
    /// The policy's `destination-rule`; `None`: named like each destination's host.
    destination_rule: Option<String>,
    /// Whether the subsets were found once (the pre-flight check).
    subsets_checked: AtomicBool,
    /// The policy's `generate`: create the VirtualService when it is missing.
    generate: Option<GenerateVirtualService>,
    /// Whether the VirtualService was found or created once.
    ensured: AtomicBool,
}

#[async_trait::async_trait]
impl canary_core::ports::TrafficRouter for VirtualServiceRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        canary_core::ports::check_canary_weight(weight)?;
        self.ensure().await?;
        self.check_subsets().await?;
        self.inner.set(weight).await?;
        Ok(())
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        self.ensure().await?;
        self.check_subsets_once().await?;
        Ok(self.inner.get().await?)
    }

    async fn set_canary_route(&self, route: &StepRoute) -> canary_core::Result<()> {
        self.ensure().await?;
        self.check_subsets().await?;
        self.inner.set_route(route).await?;
        Ok(())
    }

    async fn canary_route(&self) -> canary_core::Result<Option<StepRoute>> {
        Ok(self.inner.get_route().await?)
    }

    async fn read_back(&self) -> canary_core::Result<(u8, Option<StepRoute>)> {
        self.ensure().await?;
        self.check_subsets_once().await?;
        Ok(self.inner.get_both().await?)
    }

    fn describe(&self) -> String {
        self.inner.description()
    }
}

/// The VirtualService specifics of [`VirtualServiceRouter`].
#[derive(Clone, Debug)]
pub(crate) struct VirtualServiceKind {
    route: Option<RuleRef>,
    stable: IstioDestination,
    canary: IstioDestination,
    api_version: String,
    protocol: IstioProtocol,
}

impl VirtualServiceRouter {
    /// A router for the policy's `gateway.istio-virtual-service`.
    pub fn new(spec: &IstioVirtualServiceSpec, connection: KubeConnection) -> VirtualServiceRouter {
        let inner = WeightRouter::with_kind(
            VirtualServiceKind {
                route: spec.route.clone(),
                stable: spec.stable.clone(),
                canary: spec.canary.clone(),
                api_version: spec.api_version.clone(),
                protocol: spec.protocol,
            },
            connection,
            &spec.object.name,
            spec.object.namespace.as_deref(),
        );
        VirtualServiceRouter {
            inner,
            destination_rule: spec.destination_rule.clone(),
            subsets_checked: AtomicBool::new(false),
            generate: spec.generate.clone(),
            ensured: AtomicBool::new(false),
        }
    }

    /// With `generate`: creates the VirtualService when it is missing (once per process; one
    /// that is there, generated or not, is used as it is). Without: nothing.
    async fn ensure(&self) -> Result<(), KubernetesError> {
        let Some(generate) = &self.generate else {
            return Ok(());
        };
        crate::routers::generated::ensure_generated(
            &self.inner,
            &self.ensured,
            &generate.owner_deployment,
            |namespace, owner| {
                generated_virtual_service(
                    &self.inner.name,
                    namespace,
                    &self.inner.kind,
                    generate,
                    owner,
                )
            },
        )
        .await
    }

    /// [`Self::check_subsets`] unless it already passed once.
    async fn check_subsets_once(&self) -> Result<(), KubernetesError> {
        if self.subsets_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.check_subsets().await
    }

    /// Reads the DestinationRule of each destination with a `subset` (the policy's
    /// `destination-rule`, or the one named like the host's first label) and checks that it is
    /// for that host and defines that subset.
    async fn check_subsets(&self) -> Result<(), KubernetesError> {
        let kind = &self.inner.kind;
        let wanted: Vec<(&IstioDestination, &str)> = [&kind.stable, &kind.canary]
            .into_iter()
            .filter_map(|d| d.subset.as_deref().map(|s| (d, s)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let (client, default_namespace) = self.inner.connection.client().await?;
        let namespace = self.inner.namespace.clone().unwrap_or(default_namespace);
        let resource = destination_rule_resource(&kind.api_version);
        let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
        let mut read: Vec<(String, Value)> = Vec::new();
        for (destination, subset) in wanted {
            let name = self.destination_rule.clone().unwrap_or_else(|| {
                destination
                    .host
                    .split('.')
                    .next()
                    .unwrap_or(&destination.host)
                    .to_owned()
            });
            let object = format!("DestinationRule {namespace}/{name}");
            let rule = match read.iter().find(|(n, _)| *n == name) {
                Some((_, rule)) => rule.clone(),
                None => {
                    let rule = match api.get(&name).await {
                        Ok(rule) => serde_json::to_value(rule).unwrap_or(Value::Null),
                        Err(err) if crate::is_not_found(&err) => {
                            // Istio's CRDs not installed, or not in this version: say that.
                            if let Some(not_served) = self.inner.not_served(&namespace).await {
                                return Err(not_served);
                            }
                            return Err(KubernetesError::Object {
                                object,
                                message: format!(
                                    "does not exist: the subset {subset:?} of host {} needs a DestinationRule defining it (Istio answers 503 for a route to an undefined subset); name it with `destination-rule` in the policy if it is not {name:?}",
                                    destination.host
                                ),
                            });
                        }
                        Err(err) => {
                            return Err(crate::api_error(
                                &object,
                                Permission {
                                    verb: "get",
                                    api_group: resource.group.clone(),
                                    resource: resource.plural.clone(),
                                    namespace: namespace.clone(),
                                    name: Some(name.clone()),
                                },
                                err,
                            ));
                        }
                    };
                    read.push((name.clone(), rule.clone()));
                    rule
                }
            };
            let host = rule
                .pointer("/spec/host")
                .and_then(Value::as_str)
                .unwrap_or("");
            if fqdn(host, &namespace) != fqdn(&destination.host, &namespace) {
                return Err(KubernetesError::Object {
                    object,
                    message: format!(
                        "is for host {host:?}, not {:?}: its subsets are not the destination's (name the right one with `destination-rule` in the policy)",
                        destination.host
                    ),
                });
            }
            let subsets: Vec<&str> = rule
                .pointer("/spec/subsets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .collect();
            if !subsets.contains(&subset) {
                return Err(KubernetesError::Object {
                    object,
                    message: format!(
                        "defines no subset {subset:?} of host {} (it defines: {}): Istio answers 503 for a route to it; add the subset before the rollout",
                        destination.host,
                        if subsets.is_empty() {
                            "none".to_owned()
                        } else {
                            subsets.join(", ")
                        }
                    ),
                });
            }
        }
        self.subsets_checked.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// The ApiResource of DestinationRules in the VirtualService's API version.
fn destination_rule_resource(api_version: &str) -> ApiResource {
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("networking.istio.io", "v1"));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, "DestinationRule"),
        "destinationrules",
    )
}

/// A service host as Istio resolves a short name in `namespace`: `checkout` and
/// `checkout.shop` are `checkout.shop.svc.cluster.local` (the cluster domain is assumed to be
/// `cluster.local`); anything longer is taken as written.
fn fqdn(host: &str, namespace: &str) -> String {
    let host = host.trim_end_matches('.');
    match host.matches('.').count() {
        0 => format!("{host}.{namespace}.svc.cluster.local"),
        1 => format!("{host}.svc.cluster.local"),
        _ if host.ends_with(".svc") => format!("{host}.cluster.local"),
        _ => host.to_owned(),
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
        let field = self.protocol.field();
        let route = match &self.route {
            Some(route) => format!("{field} route {route}"),
            None => format!("the {field} route"),
        };
        format!(
            "{route} destinations {} (stable) / {} (canary)",
            self.stable, self.canary
        )
    }

    fn read_route(&self, object: &Value) -> Result<Option<StepRoute>, String> {
        if self.protocol != IstioProtocol::Http {
            return Ok(None);
        }
        let Some(marked) = marked_route(object)? else {
            return Ok(None);
        };
        let (index, weighted) = self.weighted(object)?;
        let holds = match &marked {
            StepRoute::Mirror { .. } => self.mirror_of(&weighted)? == Some(marked.clone()),
            StepRoute::Header { .. } | StepRoute::Cookie { .. } => {
                let ours = self.our_routes(object, index);
                self.carries(object, &weighted, index, &ours, &marked)
            }
        };
        Ok(holds.then_some(marked))
    }

    fn route_ops(
        &self,
        object: &Value,
        route: Option<&StepRoute>,
    ) -> Result<Vec<PatchOperation>, String> {
        if self.protocol != IstioProtocol::Http {
            return match route {
                None => Ok(Vec::new()),
                Some(route) => Err(format!(
                    "cannot route {route}: Istio's {} routes carry weights only",
                    self.protocol.field()
                )),
            };
        }
        let marked = marked_route(object)?;
        let (w, weighted) = self.weighted(object)?;
        let found_mirror = self.mirror_of(&weighted)?;
        // The routes canary inserted (for the route it marked, or left by an earlier one).
        let ours = self.our_routes(object, w);
        let holds = match route {
            None => ours.is_empty(),
            Some(StepRoute::Mirror { .. }) => found_mirror.as_ref() == route && ours.is_empty(),
            Some(r) => ours.len() == 1 && self.carries(object, &weighted, w, &ours, r),
        };
        if marked.as_ref() == route && holds {
            return Ok(Vec::new());
        }
        let has = |key: &str| weighted.get(key).is_some();
        if let Some(StepRoute::Mirror { .. }) = route
            && !matches!(marked, Some(StepRoute::Mirror { .. }))
            && has("mirror")
        {
            return Err(format!(
                "spec.http[{w}] already mirrors on its own (not canary's): canary does not overwrite a mirror it did not write; remove it to run the mirror step"
            ));
        }
        let matching = matches!(
            route,
            Some(StepRoute::Header { .. } | StepRoute::Cookie { .. })
        );
        if matching && let Some(RuleRef::Index(i)) = &self.route {
            return Err(format!(
                "a {} step inserts a route before spec.http[{i}], which moves the route the policy names by index: name it by its `name` in the policy (`route: NAME`)",
                route.map(StepRoute::kind).unwrap_or_default()
            ));
        }
        let mut ops = Vec::new();
        let at = |key: &str| pointer(&format!("/spec/http/{w}/{key}"));
        // The weighted route's own fields first, while its index is still `w`.
        match route {
            Some(StepRoute::Mirror { percent }) => {
                ops.push(PatchOperation::Add(AddOperation {
                    path: at("mirror"),
                    value: self.canary_destination(),
                }));
                if *percent < 100 {
                    ops.push(PatchOperation::Add(AddOperation {
                        path: at("mirrorPercentage"),
                        value: serde_json::json!({ "value": f64::from(*percent) }),
                    }));
                } else if has("mirrorPercentage") {
                    ops.push(PatchOperation::Remove(RemoveOperation {
                        path: at("mirrorPercentage"),
                    }));
                }
            }
            // Only a mirror canary marked is removed.
            _ if matches!(marked, Some(StepRoute::Mirror { .. })) && found_mirror.is_some() => {
                for key in ["mirror", "mirrorPercentage"] {
                    if has(key) {
                        ops.push(PatchOperation::Remove(RemoveOperation { path: at(key) }));
                    }
                }
            }
            _ => {}
        }
        // Then canary's match routes, from the last (every pointer stays valid), and the new
        // one right before the weighted route: Istio takes the first route that matches.
        for k in ours.iter().rev() {
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: pointer(&format!("/spec/http/{k}")),
            }));
        }
        if let Some(route @ (StepRoute::Header { .. } | StepRoute::Cookie { .. })) = route {
            let before = w - ours.iter().filter(|&&k| k < w).count();
            ops.push(PatchOperation::Add(AddOperation {
                path: pointer(&format!("/spec/http/{before}")),
                value: self.match_route(&weighted, route)?,
            }));
        }
        ops.extend(mark_ops(object, route)?);
        Ok(ops)
    }

    fn locate(&self, object: &Value) -> Result<Weights, String> {
        let field = self.protocol.field();
        let list = format!("spec.{field}");
        let routes = match object.pointer(&format!("/spec/{field}")) {
            Some(Value::Array(routes)) => routes.as_slice(),
            None | Some(Value::Null) => &[],
            Some(other) => return Err(format!("{list} is {other}, expected a list")),
        };
        let holds = |route: &Value| self.holds_both(route);
        let (index, route) = match pick(routes, self.route.as_ref(), &list, holds) {
            Ok(found) => found,
            Err(problem) => return Err(self.elsewhere(object, problem)),
        };
        let destinations = match route.get("route") {
            Some(Value::Array(d)) => d.as_slice(),
            _ => {
                return Err(format!(
                    "{list}[{index}].route is not a list of destinations"
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
                    "{list}[{index}].route[{i}].destination.host is missing: not a VirtualService as Istio defines it"
                ));
            }
        }
        // A destination without a weight takes none once another has one; canary always
        // writes both, so 0 is the honest reading of an unset weight here.
        two_entries(
            destinations,
            &format!("/spec/{field}/{index}/route"),
            &format!("{list}[{index}].route"),
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
        let holds = |route: &Value| self.holds_both(route);
        let (index, route) = pick(http, self.route.as_ref(), "spec.http", holds)?;
        Ok((index, route.clone()))
    }

    /// Whether a route's destinations hold both the stable and the canary one.
    fn holds_both(&self, route: &Value) -> bool {
        let destinations = route.get("route").and_then(Value::as_array);
        destinations.is_some_and(|d| {
            d.iter().any(|e| is(&self.stable, e)) && d.iter().any(|e| is(&self.canary, e))
        })
    }

    /// `problem` finding the weighted route, with a hint when the weights are in routes of
    /// another protocol than the policy's (`tcp` routes, say, with `protocol: http`).
    fn elsewhere(&self, object: &Value, problem: String) -> String {
        let other = [IstioProtocol::Http, IstioProtocol::Tls, IstioProtocol::Tcp]
            .into_iter()
            .filter(|p| *p != self.protocol)
            .find(|p| {
                object
                    .pointer(&format!("/spec/{}", p.field()))
                    .and_then(Value::as_array)
                    .is_some_and(|routes| routes.iter().any(|r| self.holds_both(r)))
            });
        match other {
            Some(p) => format!(
                "{problem}; spec.{} has a route holding both: set `protocol: {}` in the policy",
                p.field(),
                p.field()
            ),
            None => problem,
        }
    }

    /// The canary destination as a `mirror` or a lone route destination names it.
    fn canary_destination(&self) -> Value {
        let mut destination = serde_json::json!({ "host": self.canary.host });
        if let Some(subset) = &self.canary.subset {
            destination["subset"] = Value::from(subset.clone());
        }
        destination
    }

    /// The `match` list of the route a header or cookie step inserts: each of the weighted
    /// route's matches (none is one empty match: every request) with one more header
    /// condition. Istio wants header names in lower case.
    fn step_matches(weighted: &Value, route: &StepRoute) -> Result<Vec<Value>, String> {
        let (key, condition) = match route {
            StepRoute::Header { name, value } => (
                name.to_ascii_lowercase(),
                serde_json::json!({ "exact": value }),
            ),
            StepRoute::Cookie { name } => (
                "cookie".to_owned(),
                serde_json::json!({ "regex": cookie_regex(name) }),
            ),
            StepRoute::Mirror { .. } => return Err("a mirror inserts no route".to_owned()),
        };
        let base = match weighted.get("match").and_then(Value::as_array) {
            Some(matches) if !matches.is_empty() => matches.clone(),
            _ => vec![serde_json::json!({})],
        };
        base.into_iter()
            .enumerate()
            .map(|(i, mut m)| {
                let Some(fields) = m.as_object_mut() else {
                    return Err(format!("match[{i}] of the weighted route is not an object"));
                };
                let headers = fields
                    .entry("headers")
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                let Some(headers) = headers.as_object_mut() else {
                    return Err(format!(
                        "match[{i}].headers of the weighted route is not a map"
                    ));
                };
                if headers.contains_key(&key) {
                    return Err(format!(
                        "match[{i}] of the weighted route already matches header {key:?}: canary cannot add its own condition on it"
                    ));
                }
                headers.insert(key.clone(), condition.clone());
                Ok(m)
            })
            .collect()
    }

    /// The route a header or cookie step inserts before the weighted one: the weighted
    /// route's fields (retries, timeout, rewrite, fields canary does not know), named
    /// [`MATCH_ROUTE_NAME`] instead of the weighted route's name (the policy may name that
    /// one), without canary's mirror, its matches each with the step's condition, and the
    /// canary destination alone.
    fn match_route(&self, weighted: &Value, route: &StepRoute) -> Result<Value, String> {
        let mut inserted = weighted.clone();
        let canary = weighted
            .get("route")
            .and_then(Value::as_array)
            .and_then(|d| d.iter().find(|e| is(&self.canary, e)))
            .cloned()
            .ok_or_else(|| "the weighted route has no canary destination".to_owned())?;
        let mut canary = canary;
        if let Some(entry) = canary.as_object_mut() {
            entry.remove("weight");
        }
        let matches = Self::step_matches(weighted, route)?;
        if let Some(fields) = inserted.as_object_mut() {
            for key in ["mirror", "mirrorPercentage"] {
                fields.remove(key);
            }
            fields.insert("name".to_owned(), Value::from(MATCH_ROUTE_NAME));
            fields.insert("match".to_owned(), Value::Array(matches));
            fields.insert("route".to_owned(), Value::Array(vec![canary]));
        }
        Ok(inserted)
    }

    /// The indexes of the `spec.http[]` routes canary inserted for a header or cookie step:
    /// named [`MATCH_ROUTE_NAME`], sending to the canary alone (a user's route of the same
    /// shape but another name is the user's).
    fn our_routes(&self, object: &Value, w: usize) -> Vec<usize> {
        let http = object
            .pointer("/spec/http")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        http.iter()
            .enumerate()
            .filter(|&(k, r)| {
                k != w
                    && r.get("name").and_then(Value::as_str) == Some(MATCH_ROUTE_NAME)
                    && r.get("route")
                        .and_then(Value::as_array)
                        .is_some_and(|d| d.len() == 1 && is(&self.canary, &d[0]))
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// Whether one of canary's routes (`ours`) matches exactly what `route` needs, given the
    /// weighted route's matches as they are now, and comes before the weighted route (`w`):
    /// Istio serves a request by the first route that matches, so one after it is never
    /// reached (a review found such a route taken as carried, 2026-12-01).
    fn carries(
        &self,
        object: &Value,
        weighted: &Value,
        w: usize,
        ours: &[usize],
        route: &StepRoute,
    ) -> bool {
        let Ok(expected) = Self::step_matches(weighted, route) else {
            return false;
        };
        ours.iter().filter(|&&k| k < w).any(|k| {
            object
                .pointer(&format!("/spec/http/{k}/match"))
                .and_then(Value::as_array)
                == Some(&expected)
        })
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

/// The regular expression (RE2, as Istio's `regex` match takes it) of a `Cookie` header that
/// carries cookie `name` with the value `always`, ingress-nginx's `canary-by-cookie`
/// convention. Flagger's Istio A/B testing tutorial matches a cookie with
/// `^(.*?;)?(type=insider)(;.*)?$` (<https://docs.flagger.app/tutorials/istio-ab-testing>);
/// that form misses a cookie that is not the first, since browsers separate cookies with
/// `; `, so the space is allowed here.
pub(crate) fn cookie_regex(name: &str) -> String {
    let mut escaped = String::new();
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("^(.*?;\\s*)?({escaped}=always)(;.*)?$")
}

#[cfg(test)]
mod tests {
    use super::{cookie_regex, fqdn};

    #[test]
    fn short_hosts_resolve_in_the_namespace() {
        for host in [
            "checkout",
            "checkout.shop",
            "checkout.shop.svc",
            "checkout.shop.svc.cluster.local",
        ] {
            assert_eq!(
                fqdn(host, "shop"),
                "checkout.shop.svc.cluster.local",
                "{host}"
            );
        }
        assert_eq!(fqdn("api.example.com", "shop"), "api.example.com");
    }

    #[test]
    fn a_cookie_regex_escapes_the_name_and_allows_the_space_after_a_semicolon() {
        assert_eq!(cookie_regex("canary"), r"^(.*?;\s*)?(canary=always)(;.*)?$");
        assert_eq!(cookie_regex("a.b*"), r"^(.*?;\s*)?(a\.b\*=always)(;.*)?$");
        let canary = regex::Regex::new(&cookie_regex("canary")).unwrap();
        for header in [
            "canary=always",
            "canary=always; session=abc",
            "session=abc; canary=always",
            "session=abc;canary=always;x=1",
        ] {
            assert!(canary.is_match(header), "{header}");
        }
        for header in [
            "canary=never",
            "xcanary=always",
            "session=abc; canary=alwaysnot",
            "",
        ] {
            assert!(!canary.is_match(header), "{header}");
        }
        // The form of Flagger's tutorial misses the cookie after `; `, as browsers send it.
        let flagger = regex::Regex::new(r"^(.*?;)?(canary=always)(;.*)?$").unwrap();
        assert!(!flagger.is_match("session=abc; canary=always"));
        let dotted = regex::Regex::new(&cookie_regex("a.b")).unwrap();
        assert!(dotted.is_match("a.b=always") && !dotted.is_match("axb=always"));
    }
}
