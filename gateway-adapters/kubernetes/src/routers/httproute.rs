//! [`HttpRouteRouter`]: the weights of two `backendRefs` of one rule of a Gateway API
//! `HTTPRoute` (`gateway.networking.k8s.io/v1`). Only what canary needs is read, into
//! private types that ignore everything else: filters, matches and fields of the
//! experimental channel or of a newer Gateway API than the `gateway-api` crate knows pass
//! through untouched, since the JSON patch writes nothing but the two weights.

use canary_core::policy::{HttpRouteSpec, RuleRef};
use gateway_api::httproutes::HttpRoute;
use kube::api::ApiResource;
use serde::Deserialize;
use serde_json::Value;

use crate::KubeConnection;
use crate::routers::weights::{Slot, WeightRouter, WeightedKind, Weights, delegate_router, pick};

/// Sets the canary's share as the weights of the stable and the canary `backendRefs` of one
/// HTTPRoute rule. Other rules, matches, filters and backends are never written.
pub struct HttpRouteRouter(WeightRouter<HttpRouteKind>);

delegate_router!(HttpRouteRouter);

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
        HttpRouteRouter(WeightRouter::with_kind(
            HttpRouteKind {
                rule: spec.rule.clone(),
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
