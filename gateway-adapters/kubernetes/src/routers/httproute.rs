//! [`HttpRouteRouter`]: the weights of two `backendRefs` of one rule of a Gateway API
//! `HTTPRoute` (`gateway.networking.k8s.io/v1`). Only what canary needs is read, into
//! private types that ignore everything else: filters, matches and fields of the
//! experimental channel or of a newer Gateway API than the `gateway-api` crate knows pass
//! through untouched, since the JSON patch writes nothing but the two weights.
//!
//! Routed steps ([`StepRoute`]) are written beside the weighted rule:
//! - a **header** step appends one rule: the weighted rule's matches, each with the header
//!   match added, sending to the canary backend alone (its other fields — filters, timeouts,
//!   unknown ones — copied as they are). The Gateway API gives the match with the largest
//!   number of header matches precedence over an otherwise equal one
//!   (<https://gateway-api.sigs.k8s.io/reference/spec/#httproutematch>), so matching requests
//!   go to the canary and the rest to the weighted rule, whose canary weight is 0;
//! - a **mirror** step adds a `RequestMirror` filter naming the canary backend to the
//!   weighted rule, with `percent` below 100 (GEP-3171,
//!   <https://gateway-api.sigs.k8s.io/geps/gep-3171/>; a CRD older than that refuses the
//!   field, which the API server reports).
//!
//! The route canary wrote is named in the route's `canary.dev/request-route` annotation
//! ([`crate::ROUTE_ANNOTATION`]); canary reads back at every tick that the rule or filter it
//! names is there (a rule that sends to the canary alone with the weighted rule's matches plus
//! that header; a mirror to the canary Service), and removes both when it sets a plain
//! weight. Header rules and mirrors the user wrote are left alone.

use std::sync::atomic::AtomicBool;

use canary_core::policy::{GenerateHttpRoute, HttpRouteSpec, RuleRef, StepRoute};
use gateway_api::httproutes::HttpRoute;
use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use kube::api::ApiResource;
use serde::Deserialize;
use serde_json::Value;

use crate::KubeConnection;
use crate::KubernetesError;
use crate::routers::generated::GENERATED_ANNOTATION;
use crate::routers::weights::{
    Slot, WeightRouter, WeightedKind, Weights, mark_ops, marked_route, pick, pointer,
};

/// Sets the canary's share as the weights of the stable and the canary `backendRefs` of one
/// HTTPRoute rule. Other rules, matches, filters and backends are never written. With the
/// policy's `generate`, the route is created when it is missing (at the pre-flight read),
/// owned by a Deployment.
pub struct HttpRouteRouter {
    inner: WeightRouter<HttpRouteKind>,
    generate: Option<GenerateHttpRoute>,
    /// Whether the route was found or created once.
    ensured: AtomicBool,
}

#[async_trait::async_trait]
impl canary_core::ports::TrafficRouter for HttpRouteRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        canary_core::ports::check_canary_weight(weight)?;
        self.ensure().await?;
        self.inner.set(weight).await?;
        Ok(())
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        self.ensure().await?;
        Ok(self.inner.get().await?)
    }

    async fn set_canary_route(&self, route: &StepRoute) -> canary_core::Result<()> {
        self.ensure().await?;
        self.inner.set_route(route).await?;
        Ok(())
    }

    async fn canary_route(&self) -> canary_core::Result<Option<StepRoute>> {
        Ok(self.inner.get_route().await?)
    }

    async fn read_back(&self) -> canary_core::Result<(u8, Option<StepRoute>)> {
        self.ensure().await?;
        Ok(self.inner.get_both().await?)
    }

    fn describe(&self) -> String {
        self.inner.description()
    }
}

/// The HTTPRoute specifics of [`HttpRouteRouter`].
#[derive(Clone, Debug)]
pub(crate) struct HttpRouteKind {
    rule: Option<RuleRef>,
    stable: String,
    canary: String,
    total: u32,
}

impl HttpRouteRouter {
    /// A router for the policy's `gateway.http-route`.
    pub fn new(spec: &HttpRouteSpec, connection: KubeConnection) -> HttpRouteRouter {
        let inner = WeightRouter::with_kind(
            HttpRouteKind {
                rule: spec.rule.clone(),
                stable: spec.stable.clone(),
                canary: spec.canary.clone(),
                total: spec.weight_total,
            },
            connection,
            &spec.object.name,
            spec.object.namespace.as_deref(),
        );
        HttpRouteRouter {
            inner,
            generate: spec.generate.clone(),
            ensured: AtomicBool::new(false),
        }
    }

    /// With `generate`: creates the route when it is missing (once per process; a route that
    /// is there, generated or not, is used as it is). Without: nothing.
    async fn ensure(&self) -> Result<(), KubernetesError> {
        let Some(generate) = &self.generate else {
            return Ok(());
        };
        crate::routers::generated::ensure_generated(
            &self.inner,
            &self.ensured,
            &generate.owner_deployment,
            |namespace, owner| {
                generated_route(
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
}

/// The HTTPRoute `generate` makes: on the Gateway's listener, for its hostnames, one rule
/// (named `canary`) sending everything to the stable Service (weight `total`) and none to
/// the canary's, owned by the Deployment of `owner` (an ownerReference,
/// [`crate::routers::generated`]). The annotation `canary.dev/generated: "true"` says who made it.
fn generated_route(
    name: &str,
    namespace: &str,
    kind: &HttpRouteKind,
    generate: &GenerateHttpRoute,
    owner: Value,
) -> Value {
    let mut parent = serde_json::json!({ "name": generate.gateway });
    if let Some(ns) = &generate.gateway_namespace {
        parent["namespace"] = Value::from(ns.clone());
    }
    if let Some(section) = &generate.section_name {
        parent["sectionName"] = Value::from(section.clone());
    }
    let mut spec = serde_json::json!({
        "parentRefs": [parent],
        "rules": [{
            "name": "canary",
            "backendRefs": [
                {"name": kind.stable, "port": generate.port, "weight": kind.total},
                {"name": kind.canary, "port": generate.port, "weight": 0}
            ]
        }]
    });
    if !generate.hostnames.is_empty() {
        spec["hostnames"] = Value::from(generate.hostnames.clone());
    }
    serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {GENERATED_ANNOTATION: "true"},
            "ownerReferences": [owner]
        },
        "spec": spec
    })
}

/// The part of an HTTPRoute canary reads: its rules' backendRefs.
#[derive(Deserialize)]
struct RouteRead {
    spec: SpecRead,
}

#[derive(Deserialize)]
struct SpecRead {
    #[serde(default)]
    rules: Option<Vec<RuleRead>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleRead {
    #[serde(default)]
    backend_refs: Option<Vec<BackendRead>>,
}

/// A backendRef as the Gateway API defines it: `weight` an int32 (unset is 1), `group` ""
/// and `kind` "Service" by default, `namespace` the route's by default.
#[derive(Clone, Deserialize)]
struct BackendRead {
    name: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    weight: Option<i32>,
}

/// Why the route's gateways do not apply this generation of it, from `status.parents[]`: a
/// parent whose `Accepted` or `ResolvedRefs` condition is `False` for the route's current
/// generation (a backend that does not resolve is served as 500s, whatever the weights say).
/// Conditions of an older generation are the controller not having caught up yet, and are
/// not held against the route; a route no controller has reported on passes too.
fn not_applied(object: &Value) -> Option<String> {
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let parents = object.pointer("/status/parents")?.as_array()?;
    let mut problems = Vec::new();
    for parent in parents {
        let name = parent
            .pointer("/parentRef/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        for condition in parent
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = condition.get("type").and_then(Value::as_str);
            if !matches!(kind, Some("Accepted" | "ResolvedRefs"))
                || condition.get("status").and_then(Value::as_str) != Some("False")
            {
                continue;
            }
            let observed = condition.get("observedGeneration").and_then(Value::as_i64);
            if let (Some(observed), Some(generation)) = (observed, generation)
                && observed < generation
            {
                continue;
            }
            let field = |key: &str| condition.get(key).and_then(Value::as_str).unwrap_or("");
            problems.push(format!(
                "parent {name}: {} is False ({}: {})",
                field("type"),
                field("reason"),
                field("message")
            ));
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "its gateway does not apply it: {} (fix the route or its backends; canary sets no weight on a route that is not served as written)",
            problems.join("; ")
        )
    })
}

/// Whether a backendRef names the Service `name` (in the route's namespace: a backend of
/// the same name in another namespace is another backend).
fn is_service(backend: &BackendRead, name: &str) -> bool {
    backend.name == name
        && backend.group.as_deref().unwrap_or("").is_empty()
        && backend.kind.as_deref().unwrap_or("Service") == "Service"
        && backend.namespace.is_none()
}

impl WeightedKind for HttpRouteKind {
    fn kind(&self) -> &'static str {
        "HTTPRoute"
    }

    fn resource(&self) -> ApiResource {
        ApiResource::erase::<HttpRoute>(&())
    }

    fn what(&self) -> String {
        let rule = match &self.rule {
            Some(rule) => format!("rule {rule}"),
            None => "the rule".to_owned(),
        };
        format!(
            "{rule} backendRefs {} (stable) / {} (canary)",
            self.stable, self.canary
        )
    }

    fn read_route(&self, object: &Value) -> Result<Option<StepRoute>, String> {
        // Only the route canary marked is canary's: header rules and mirrors the user wrote
        // are neither read as canary's nor removed.
        let Some(marked) = marked_route(object)? else {
            return Ok(None);
        };
        let found = self.routes_found(object)?;
        Ok(found.holds(&marked).then_some(marked))
    }

    fn route_ops(
        &self,
        object: &Value,
        route: Option<&StepRoute>,
    ) -> Result<Vec<PatchOperation>, String> {
        if let Some(StepRoute::Cookie { .. }) = route {
            return Err(
                "cannot route by cookie: HTTPRoute matches headers, paths and query parameters, not cookies".to_owned(),
            );
        }
        let marked = marked_route(object)?;
        let found = self.routes_found(object)?;
        if marked.as_ref() == route && route.is_none_or(|r| found.holds(r)) {
            return Ok(Vec::new());
        }
        let w = found.weighted;
        let mut ops = Vec::new();
        // The weighted rule's filters first (its index does not move), then whole rules,
        // from the last: every pointer stays valid while the patch applies.
        let ours = |r: &StepRoute| marked.as_ref() == Some(r);
        for (j, _) in found.mirror_filters.iter().rev().filter(|(_, r)| ours(r)) {
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: pointer(&format!("/spec/rules/{w}/filters/{j}")),
            }));
        }
        if let Some(StepRoute::Mirror { percent }) = route {
            // A mirror's backendRef is an object reference: no weight, no filters.
            let mut backend = serde_json::Map::new();
            for key in ["group", "kind", "name", "namespace", "port"] {
                if let Some(value) = found.canary_backend.get(key) {
                    backend.insert(key.to_owned(), value.clone());
                }
            }
            let mut mirror = serde_json::json!({ "backendRef": backend });
            if *percent < 100 {
                mirror["percent"] = Value::from(*percent);
            }
            let filter = serde_json::json!({ "type": "RequestMirror", "requestMirror": mirror });
            let has_filters = found.rules[w].get("filters").is_some_and(Value::is_array);
            ops.push(PatchOperation::Add(if has_filters {
                AddOperation {
                    path: pointer(&format!("/spec/rules/{w}/filters/-")),
                    value: filter,
                }
            } else {
                AddOperation {
                    path: pointer(&format!("/spec/rules/{w}/filters")),
                    value: Value::Array(vec![filter]),
                }
            }));
        }
        for (k, _, _) in found.header_rules.iter().rev().filter(|(_, r, _)| ours(r)) {
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: pointer(&format!("/spec/rules/{k}")),
            }));
        }
        if let Some(StepRoute::Header { name, value }) = route {
            ops.push(PatchOperation::Add(AddOperation {
                path: pointer("/spec/rules/-"),
                value: header_rule(&found.rules[w], &found.canary_backend, name, value),
            }));
        }
        ops.extend(mark_ops(object, route)?);
        Ok(ops)
    }

    fn locate(&self, object: &Value) -> Result<Weights, String> {
        // The typed read checks what canary relies on (names and int32 weights of every
        // backendRef) and nothing else.
        let route: RouteRead = serde_json::from_value(object.clone()).map_err(|err| {
            format!("does not read as a gateway.networking.k8s.io/v1 HTTPRoute: {err}")
        })?;
        let rules = route.spec.rules.unwrap_or_default();
        let raw_rules: Vec<Value> = object
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let holds = |rule: &Value| {
            let names: Vec<&str> = rule
                .get("backendRefs")
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| r.get("name")?.as_str())
                        .collect()
                })
                .unwrap_or_default();
            names.contains(&self.stable.as_str()) && names.contains(&self.canary.as_str())
        };
        let (index, _) = pick(&raw_rules, self.rule.as_ref(), "spec.rules", holds)?;
        let backends = rules[index].backend_refs.clone().unwrap_or_default();
        let mut stable = None;
        let mut canary = None;
        for (i, backend) in backends.iter().enumerate() {
            // An unset weight is 1, as the Gateway API defines it.
            let weight = u64::try_from(backend.weight.unwrap_or(1))
                .map_err(|_| format!("spec.rules[{index}].backendRefs[{i}].weight is negative"))?;
            let slot = Slot {
                pointer: Some(format!("/spec/rules/{index}/backendRefs/{i}/weight")),
                value: weight,
            };
            if is_service(backend, &self.stable) {
                if stable.replace(slot).is_some() {
                    return Err(format!(
                        "spec.rules[{index}].backendRefs names {} twice",
                        self.stable
                    ));
                }
            } else if is_service(backend, &self.canary) {
                if canary.replace(slot).is_some() {
                    return Err(format!(
                        "spec.rules[{index}].backendRefs names {} twice",
                        self.canary
                    ));
                }
            } else if weight > 0 {
                return Err(format!(
                    "spec.rules[{index}].backendRefs[{i}] ({}) takes traffic too (weight {weight}): canary only shifts between {} and {}",
                    backend.name, self.stable, self.canary
                ));
            }
        }
        let missing = |name: &str| {
            format!(
                "spec.rules[{index}].backendRefs has no Service {name} in the route's namespace (add it, with weight 0 for the canary, before the rollout)"
            )
        };
        if let Some(problem) = not_applied(object) {
            return Err(problem);
        }
        Ok(Weights {
            stable: stable.ok_or_else(|| missing(&self.stable))?,
            canary: canary.ok_or_else(|| missing(&self.canary))?,
            total: self.total,
            as_strings: false,
            prepare: Vec::new(),
        })
    }
}

/// The canary routes canary finds in an HTTPRoute, beside its weighted rule.
struct RoutesFound {
    /// The route's rules, as read.
    rules: Vec<Value>,
    /// The index of the weighted rule.
    weighted: usize,
    /// The weighted rule's canary backendRef, as written.
    canary_backend: Value,
    /// The rules that send requests with one header to the canary alone: index, route, and
    /// whether the rule's matches are still the weighted rule's with the header added (a
    /// rule left behind after the weighted rule's matches changed — a GitOps sync — is
    /// found by its shape, so that it is replaced rather than orphaned).
    header_rules: Vec<(usize, StepRoute, bool)>,
    /// The weighted rule's filters that mirror to the canary: index, route.
    mirror_filters: Vec<(usize, StepRoute)>,
}

impl RoutesFound {
    /// Whether the route carries `route`.
    fn holds(&self, route: &StepRoute) -> bool {
        self.header_rules
            .iter()
            .filter(|(_, _, current)| *current)
            .map(|(k, r, _)| (k, r))
            .chain(self.mirror_filters.iter().map(|(j, r)| (j, r)))
            .any(|(_, r)| r == route)
    }
}

impl HttpRouteKind {
    /// Finds the weighted rule, canary's header rules and its mirror filters.
    fn routes_found(&self, object: &Value) -> Result<RoutesFound, String> {
        let rules: Vec<Value> = object
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let holds_both = |rule: &Value| {
            let refs = backend_refs(rule);
            refs.iter().any(|r| raw_is_service(r, &self.stable))
                && refs.iter().any(|r| raw_is_service(r, &self.canary))
        };
        let (weighted, _) = pick(&rules, self.rule.as_ref(), "spec.rules", holds_both)?;
        let canary_backend = backend_refs(&rules[weighted])
            .iter()
            .find(|r| raw_is_service(r, &self.canary))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "spec.rules[{weighted}].backendRefs has no Service {} in the route's namespace",
                    self.canary
                )
            })?;
        let weighted_matches = matches_or_default(&rules[weighted]);
        let mut header_rules = Vec::new();
        for (k, rule) in rules.iter().enumerate() {
            if k == weighted {
                continue;
            }
            let refs = backend_refs(rule);
            if refs.is_empty() || !refs.iter().all(|r| raw_is_service(r, &self.canary)) {
                continue;
            }
            let rule_matches = matches_or_default(rule);
            if let Some((name, value)) = added_header(&weighted_matches, &rule_matches) {
                header_rules.push((k, StepRoute::Header { name, value }, true));
            } else if let Some((name, value)) = last_exact_header(&rule_matches) {
                header_rules.push((k, StepRoute::Header { name, value }, false));
            }
        }
        let mut mirror_filters = Vec::new();
        let filters = rules[weighted]
            .get("filters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (j, filter) in filters.iter().enumerate() {
            if filter.get("type").and_then(Value::as_str) != Some("RequestMirror") {
                continue;
            }
            let Some(mirror) = filter.get("requestMirror") else {
                continue;
            };
            if !mirror
                .get("backendRef")
                .is_some_and(|b| raw_is_service(b, &self.canary))
            {
                continue;
            }
            let percent = mirror_percent(mirror).map_err(|problem| {
                format!("spec.rules[{weighted}].filters[{j}].requestMirror: {problem}")
            })?;
            mirror_filters.push((j, StepRoute::Mirror { percent }));
        }
        Ok(RoutesFound {
            rules,
            weighted,
            canary_backend,
            header_rules,
            mirror_filters,
        })
    }
}

/// A rule's backendRefs as written.
fn backend_refs(rule: &Value) -> Vec<Value> {
    rule.get("backendRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// [`is_service`] on a backendRef as written.
fn raw_is_service(backend: &Value, name: &str) -> bool {
    let field = |key: &str| backend.get(key).and_then(Value::as_str);
    field("name") == Some(name)
        && field("group").unwrap_or("").is_empty()
        && field("kind").unwrap_or("Service") == "Service"
        && field("namespace").is_none()
}

/// A rule's matches; no matches is the Gateway API's default, one prefix match on `/`.
fn matches_or_default(rule: &Value) -> Vec<Value> {
    match rule.get("matches").and_then(Value::as_array) {
        Some(matches) if !matches.is_empty() => matches.clone(),
        _ => vec![serde_json::json!({ "path": { "type": "PathPrefix", "value": "/" } })],
    }
}

/// The header match a canary header rule adds to each of the weighted rule's matches: the
/// last header of every match, the same in all, exact, and the rest of each match equal to
/// the weighted rule's. `None` when `rule_matches` are not such a copy.
fn added_header(weighted: &[Value], rule_matches: &[Value]) -> Option<(String, String)> {
    if weighted.len() != rule_matches.len() {
        return None;
    }
    let mut found: Option<(String, String)> = None;
    for (base, with_header) in weighted.iter().zip(rule_matches) {
        let mut stripped = with_header.clone();
        let headers = stripped.get_mut("headers")?.as_array_mut()?;
        let last = headers.pop()?;
        if last.get("type").and_then(Value::as_str).unwrap_or("Exact") != "Exact" {
            return None;
        }
        let name = last.get("name")?.as_str()?.to_owned();
        let value = last.get("value")?.as_str()?.to_owned();
        if headers.is_empty() {
            stripped.as_object_mut()?.remove("headers");
        }
        if &stripped != base {
            return None;
        }
        match &found {
            None => found = Some((name, value)),
            Some((n, v)) if n.eq_ignore_ascii_case(&name) && *v == value => {}
            Some(_) => return None,
        }
    }
    found
}

/// The header every one of a rule's matches ends with, exact and the same in all: the shape
/// of a header rule canary appended, whatever the weighted rule's matches have become since.
fn last_exact_header(rule_matches: &[Value]) -> Option<(String, String)> {
    let mut found: Option<(String, String)> = None;
    for m in rule_matches {
        let last = m.get("headers")?.as_array()?.last()?;
        if last.get("type").and_then(Value::as_str).unwrap_or("Exact") != "Exact" {
            return None;
        }
        let name = last.get("name")?.as_str()?.to_owned();
        let value = last.get("value")?.as_str()?.to_owned();
        match &found {
            None => found = Some((name, value)),
            Some((n, v)) if n.eq_ignore_ascii_case(&name) && *v == value => {}
            Some(_) => return None,
        }
    }
    found
}

/// The rule a header step appends: the weighted rule's fields (filters, timeouts, fields
/// canary does not know) without its name, its matches each with the header match added,
/// and the canary backend alone.
fn header_rule(weighted: &Value, canary_backend: &Value, name: &str, value: &str) -> Value {
    let mut rule = weighted.clone();
    let matches: Vec<Value> = matches_or_default(weighted)
        .into_iter()
        .map(|mut m| {
            let header = serde_json::json!({ "type": "Exact", "name": name, "value": value });
            match m.get_mut("headers").and_then(Value::as_array_mut) {
                Some(headers) => headers.push(header),
                None => m["headers"] = Value::Array(vec![header]),
            }
            m
        })
        .collect();
    let mut backend = canary_backend.clone();
    if let Some(backend) = backend.as_object_mut() {
        backend.remove("weight");
    }
    if let Some(rule) = rule.as_object_mut() {
        // Rule names are unique within a route.
        rule.remove("name");
        // canary's own mirror of the weighted rule is not copied.
        if let Some(filters) = rule.get_mut("filters").and_then(Value::as_array_mut) {
            filters.retain(|f| f.get("type").and_then(Value::as_str) != Some("RequestMirror"));
        }
        rule.insert("matches".to_owned(), Value::Array(matches));
        rule.insert("backendRefs".to_owned(), Value::Array(vec![backend]));
    }
    rule
}

/// The share a `requestMirror` copies, percent: `percent`, or `fraction` (numerator out of
/// a denominator of 100 by default) rounded half up, or all of it when neither is set.
fn mirror_percent(mirror: &Value) -> Result<u8, String> {
    if let Some(percent) = mirror.get("percent") {
        return percent
            .as_u64()
            .and_then(|p| u8::try_from(p).ok())
            .filter(|&p| p <= 100)
            .ok_or_else(|| format!("percent is {percent}, expected 0 to 100"));
    }
    if let Some(fraction) = mirror.get("fraction") {
        let numerator = fraction.get("numerator").and_then(Value::as_u64);
        let denominator = fraction.get("denominator").map_or(Some(100), Value::as_u64);
        return match (numerator, denominator) {
            // In u128: the API's int32 bounds are not the fake's or a hostile server's, and
            // `200 * n` or `2 * d` of a u64 overflows (a panic, or a division by zero).
            (Some(n), Some(d)) if d > 0 && n <= d => {
                let (n, d) = (u128::from(n), u128::from(d));
                Ok(u8::try_from((200 * n + d) / (2 * d)).unwrap_or(100))
            }
            _ => Err(format!(
                "fraction is {fraction}, expected numerator ≤ denominator"
            )),
        };
    }
    Ok(100)
}

#[cfg(test)]
mod tests {
    use super::mirror_percent;
    use serde_json::json;

    /// Review finding of 2026-12-01: a fraction near `u64::MAX` (beyond the API's int32,
    /// but a read-back comes from outside) overflowed `200 * n` / `2 * d`: a panic.
    #[test]
    fn a_mirror_fraction_of_any_size_is_a_percent_or_an_error_never_a_panic() {
        let huge = 9_223_372_036_854_775_808_u64;
        assert_eq!(
            mirror_percent(&json!({"fraction": {"numerator": 0, "denominator": huge}})),
            Ok(0)
        );
        assert_eq!(
            mirror_percent(&json!({"fraction": {"numerator": u64::MAX, "denominator": u64::MAX}})),
            Ok(100)
        );
        assert_eq!(
            mirror_percent(&json!({"fraction": {"numerator": 1, "denominator": 8}})),
            Ok(13)
        );
        assert!(mirror_percent(&json!({"fraction": {"numerator": 2, "denominator": 1}})).is_err());
    }
}
