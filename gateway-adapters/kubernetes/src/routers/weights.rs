//! The engine every Kubernetes router shares: read the object, find its two weights, write
//! them with a JSON patch guarded by `metadata.resourceVersion`, retry on conflicts.

use json_patch::{AddOperation, Patch as JsonPatch, PatchOperation, ReplaceOperation};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, ValidationDirective};
use serde_json::Value;

use crate::KubernetesError;
use crate::{CONFLICT_BACKOFF, FIELD_MANAGER, KubeConnection, Permission, api_error};
use canary_core::policy::StepRoute;
use canary_core::ports::canary_share;
use canary_core::retry::{Failure, retry};

/// Where one weight is in the object, and what it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The JSON pointer of the weight; `None` when the weight is implied (the stable share of
    /// an ingress-nginx canary is what the canary does not take).
    pub(crate) pointer: Option<String>,
    /// Its value now (a missing field already counts as its documented default).
    pub(crate) value: u64,
}

/// What a router found in its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Weights {
    /// The stable version's weight.
    pub(crate) stable: Slot,
    /// The canary's weight.
    pub(crate) canary: Slot,
    /// What the two add up to after a write (reads use the slots' values as found).
    pub(crate) total: u32,
    /// Whether weights are written as strings (annotations) rather than numbers.
    pub(crate) as_strings: bool,
    /// Operations that must come before the weights' (creating a missing parent object).
    pub(crate) prepare: Vec<PatchOperation>,
}

impl Weights {
    /// The canary's share in percent, or why there is none.
    pub(crate) fn canary_percent(&self) -> Result<u8, String> {
        // An implied stable weight (no pointer) was already worked out by the kind from the
        // total its controller applies, which is not always the total written (`total`).
        let stable = self.stable.value;
        let (Ok(canary), Ok(stable)) = (u32::try_from(self.canary.value), u32::try_from(stable))
        else {
            return Err(format!(
                "weights {} (canary) and {stable} (stable) are out of range",
                self.canary.value
            ));
        };
        canary_share(canary, stable).ok_or_else(|| {
            "both the canary and the stable weight are 0: the route sends this traffic nowhere"
                .to_owned()
        })
    }
}

/// The canary's and the stable version's weights for `percent` out of `total`: the canary's
/// rounded half up, the stable one's the rest, so they always add up to `total`.
pub(crate) fn split(percent: u8, total: u32) -> (u64, u64) {
    let total = u64::from(total);
    let canary = (u64::from(percent) * total * 2 + 100) / 200;
    (canary, total - canary)
}

/// One kind of weighted object.
pub(crate) trait WeightedKind: Send + Sync + 'static {
    /// The kind, for messages: `HTTPRoute`.
    fn kind(&self) -> &'static str;
    /// Its API resource (group, version, plural).
    fn resource(&self) -> ApiResource;
    /// Finds the two weights in the object as read, or says why they cannot be set.
    fn locate(&self, object: &Value) -> Result<Weights, String>;
    /// What the router changes, for logs: `backendRefs checkout-stable/checkout-canary`.
    fn what(&self) -> String;

    /// The request route the object carries besides its weights (a header rule, a mirror
    /// filter, `canary-by-header` annotations), read from the object as found; `None` for
    /// a plain split. Kinds that cannot route by request carry none.
    fn read_route(&self, _object: &Value) -> Result<Option<StepRoute>, String> {
        Ok(None)
    }

    /// The operations, applied after the weights', that make the object carry exactly
    /// `route` (`None`: no route at all); none when it already does, so that a write is
    /// idempotent. Kinds that cannot route by request refuse a route.
    fn route_ops(
        &self,
        _object: &Value,
        route: Option<&StepRoute>,
    ) -> Result<Vec<PatchOperation>, String> {
        match route {
            None => Ok(Vec::new()),
            Some(route) => Err(format!(
                "cannot route {route}: a {} router sets weights only",
                self.kind()
            )),
        }
    }
}

/// A traffic router over one object of a [`WeightedKind`] (see the module docs of
/// [`super`] for how writes are made); each router is a newtype over one.
pub(crate) struct WeightRouter<K> {
    pub(crate) kind: K,
    pub(crate) connection: KubeConnection,
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
}

impl<K: WeightedKind> WeightRouter<K> {
    pub(crate) fn with_kind(
        kind: K,
        connection: KubeConnection,
        name: &str,
        namespace: Option<&str>,
    ) -> WeightRouter<K> {
        WeightRouter {
            kind,
            connection,
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
        }
    }

    pub(crate) async fn api(&self) -> Result<(Api<DynamicObject>, String), KubernetesError> {
        let (client, default_namespace) = self.connection.client().await?;
        let namespace = self.namespace.clone().unwrap_or(default_namespace);
        let api = Api::namespaced_with(client, &namespace, &self.kind.resource());
        Ok((api, namespace))
    }

    /// `HTTPRoute shop/checkout`.
    pub(crate) fn object(&self, namespace: &str) -> String {
        format!("{} {namespace}/{}", self.kind.kind(), self.name)
    }

    pub(crate) fn permission(&self, verb: &'static str, namespace: &str) -> Permission {
        let resource = self.kind.resource();
        Permission {
            verb,
            api_group: resource.group,
            resource: resource.plural,
            namespace: namespace.to_owned(),
            name: Some(self.name.clone()),
        }
    }

    /// Reads the object as JSON.
    pub(crate) async fn read(
        &self,
        api: &Api<DynamicObject>,
        namespace: &str,
    ) -> Result<Value, KubernetesError> {
        let object = match api.get(&self.name).await {
            Ok(object) => object,
            Err(err) => {
                let error = api_error(
                    &self.object(namespace),
                    self.permission("get", namespace),
                    err,
                );
                if let KubernetesError::NotFound { .. } = error
                    && let Some(not_served) = self.not_served(namespace).await
                {
                    return Err(not_served);
                }
                return Err(error);
            }
        };
        serde_json::to_value(&object).map_err(|err| KubernetesError::Object {
            object: self.object(namespace),
            message: format!("cannot re-encode the object read: {err}"),
        })
    }

    /// After a 404: whether the cluster does not serve the object's API version at all, by
    /// discovery (`GET /apis`, which every authenticated user may read). `None` when it does,
    /// for the core group, or when discovery itself fails (the 404 then stands as it was).
    pub(crate) async fn not_served(&self, namespace: &str) -> Option<KubernetesError> {
        let resource = self.kind.resource();
        if resource.group.is_empty() {
            return None;
        }
        let (client, _) = self.connection.client().await.ok()?;
        let groups = client.list_api_groups().await.ok()?;
        let mut served: Vec<String> = groups
            .groups
            .iter()
            .find(|group| group.name == resource.group)
            .map(|group| group.versions.iter().map(|v| v.version.clone()).collect())
            .unwrap_or_default();
        if served.contains(&resource.version) {
            return None;
        }
        served.sort();
        Some(KubernetesError::NotServed {
            object: self.object(namespace),
            api_version: resource.api_version,
            served,
        })
    }

    /// Reads the object and finds its weights.
    async fn weights(
        &self,
        api: &Api<DynamicObject>,
        namespace: &str,
    ) -> Result<(Value, Weights), KubernetesError> {
        let object = self.read(api, namespace).await?;
        let weights = self
            .kind
            .locate(&object)
            .map_err(|message| KubernetesError::Object {
                object: self.object(namespace),
                message,
            })?;
        Ok((object, weights))
    }

    /// Sets the weights (and removes any request route); returns the patch that was sent,
    /// or `None` when they already held.
    pub(crate) async fn set(&self, percent: u8) -> Result<Option<JsonPatch>, KubernetesError> {
        self.set_routed(percent, None).await
    }

    /// Routes by request: the canary's weight 0 and `route` added.
    pub(crate) async fn set_route(
        &self,
        route: &StepRoute,
    ) -> Result<Option<JsonPatch>, KubernetesError> {
        self.set_routed(0, Some(route)).await
    }

    /// Sets the weights and makes the object carry exactly `route`, in one patch.
    async fn set_routed(
        &self,
        percent: u8,
        route: Option<&StepRoute>,
    ) -> Result<Option<JsonPatch>, KubernetesError> {
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        retry(CONFLICT_BACKOFF, tokio::time::sleep, |attempt| async move {
            let (object, weights) = self.weights(api, namespace).await?;
            let route_ops =
                self.kind
                    .route_ops(&object, route)
                    .map_err(|message| KubernetesError::Object {
                        object: self.object(namespace),
                        message,
                    })?;
            let Some(patch) = weight_patch(&object, &weights, percent, route_ops) else {
                return Ok(None);
            };
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                field_validation: Some(ValidationDirective::Strict),
                ..PatchParams::default()
            };
            // Right before each attempt: the guard may have closed during the last one.
            self.connection
                .may_write(&self.object(namespace))
                .map_err(Failure::Final)?;
            match api
                .patch(&self.name, &params, &Patch::Json::<()>(patch.clone()))
                .await
            {
                Ok(_) => Ok(Some(patch)),
                Err(err) if crate::is_conflict(&err) => {
                    Err(Failure::Retryable(KubernetesError::Conflict {
                        object: self.object(namespace),
                        attempts: attempt,
                    }))
                }
                Err(err) => Err(Failure::Final(api_error(
                    &self.object(namespace),
                    self.permission("patch", namespace),
                    err,
                ))),
            }
        })
        .await
    }

    /// Reads the canary's share back from the object.
    pub(crate) async fn get(&self) -> Result<u8, KubernetesError> {
        let (api, namespace) = self.api().await?;
        let (_, weights) = self.weights(&api, &namespace).await?;
        weights
            .canary_percent()
            .map_err(|message| KubernetesError::Object {
                object: self.object(&namespace),
                message,
            })
    }

    /// Reads the request route the object carries back from it.
    pub(crate) async fn get_route(&self) -> Result<Option<StepRoute>, KubernetesError> {
        Ok(self.get_both().await?.1)
    }

    /// Reads the canary's share and the request route back, from one read of the object.
    pub(crate) async fn get_both(&self) -> Result<(u8, Option<StepRoute>), KubernetesError> {
        let (api, namespace) = self.api().await?;
        let (object, weights) = self.weights(&api, &namespace).await?;
        let failed = |message| KubernetesError::Object {
            object: self.object(&namespace),
            message,
        };
        let percent = weights.canary_percent().map_err(failed)?;
        let route = self.kind.read_route(&object).map_err(failed)?;
        Ok((percent, route))
    }

    pub(crate) fn description(&self) -> String {
        let namespace = self.namespace.as_deref().unwrap_or("(default namespace)");
        format!(
            "{} {namespace}/{} {} via {}",
            self.kind.kind(),
            self.name,
            self.kind.what(),
            self.connection.describe()
        )
    }
}

/// The JSON patch that moves `weights` to `percent` and applies `route_ops` after them, or
/// `None` when the weights already hold and there is nothing else to do: `replace` of the
/// resourceVersion read (the optimistic-concurrency guard), then whatever the kind needs
/// first, then one `add` per weight (`add` sets a member whether or not it is there, where
/// `replace` would fail on a weight left to its default), then the route's operations.
pub(crate) fn weight_patch(
    object: &Value,
    weights: &Weights,
    percent: u8,
    route_ops: Vec<PatchOperation>,
) -> Option<JsonPatch> {
    let (canary, stable) = split(percent, weights.total);
    let stable_holds = weights.stable.pointer.is_none() || weights.stable.value == stable;
    if weights.canary.value == canary
        && stable_holds
        && weights.prepare.is_empty()
        && route_ops.is_empty()
    {
        return None;
    }
    let encode = |value: u64| {
        if weights.as_strings {
            Value::String(value.to_string())
        } else {
            Value::from(value)
        }
    };
    let resource_version = object
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    let mut ops = vec![PatchOperation::Replace(ReplaceOperation {
        path: pointer("/metadata/resourceVersion"),
        value: resource_version,
    })];
    ops.extend(weights.prepare.iter().cloned());
    for (slot, value) in [(&weights.stable, stable), (&weights.canary, canary)] {
        if let Some(path) = &slot.pointer {
            ops.push(PatchOperation::Add(AddOperation {
                path: pointer(path),
                value: encode(value),
            }));
        }
    }
    ops.extend(route_ops);
    Some(JsonPatch(ops))
}

/// The annotation that says which request route canary wrote into a routing object (a
/// header rule, a mirror filter, `canary-by-header` annotations), as the route's JSON
/// (`{"header":{"name":"x-canary","value":"1"}}`). Routes without it are the user's: never
/// read as canary's, never removed. Removed with the route when a plain weight is set.
pub const ROUTE_ANNOTATION: &str = "canary.dev/request-route";

/// The request route canary marked in `object`, if any.
pub(crate) fn marked_route(object: &Value) -> Result<Option<StepRoute>, String> {
    let Some(text) = object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ROUTE_ANNOTATION))
    else {
        return Ok(None);
    };
    text.as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "annotation {ROUTE_ANNOTATION} is {text}, not a route canary wrote (remove it to let canary set its route again)"
            )
        })
}

/// The operations that make the object's [`ROUTE_ANNOTATION`] say `route` (`None`: gone);
/// none when it already does.
pub(crate) fn mark_ops(
    object: &Value,
    route: Option<&StepRoute>,
) -> Result<Vec<PatchOperation>, String> {
    if marked_route(object)?.as_ref() == route {
        return Ok(Vec::new());
    }
    let key = format!(
        "/metadata/annotations/{}",
        crate::pointer_token(ROUTE_ANNOTATION)
    );
    let has_annotations = object
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object);
    Ok(vec![match route {
        None => PatchOperation::Remove(json_patch::RemoveOperation {
            path: pointer(&key),
        }),
        Some(route) => {
            let text = Value::String(serde_json::to_string(route).unwrap_or_default());
            if has_annotations {
                PatchOperation::Add(AddOperation {
                    path: pointer(&key),
                    value: text,
                })
            } else {
                PatchOperation::Add(AddOperation {
                    path: pointer("/metadata/annotations"),
                    value: serde_json::json!({ ROUTE_ANNOTATION: text }),
                })
            }
        }
    }])
}

/// A JSON pointer from its text; the routers only build well-formed ones.
pub(crate) fn pointer(text: &str) -> json_patch::jsonptr::PointerBuf {
    json_patch::jsonptr::PointerBuf::parse(text)
        .unwrap_or_else(|_| json_patch::jsonptr::PointerBuf::root())
}

/// Implements [`TrafficRouter`] for a newtype over a [`WeightRouter`].
macro_rules! delegate_router {
    ($router:ident) => {
        #[async_trait::async_trait]
        impl canary_core::ports::TrafficRouter for $router {
            async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
                canary_core::ports::check_canary_weight(weight)?;
                self.0.set(weight).await?;
                Ok(())
            }

            async fn canary_weight(&self) -> canary_core::Result<u8> {
                Ok(self.0.get().await?)
            }

            async fn set_canary_route(
                &self,
                route: &canary_core::policy::StepRoute,
            ) -> canary_core::Result<()> {
                self.0.set_route(route).await?;
                Ok(())
            }

            async fn canary_route(
                &self,
            ) -> canary_core::Result<Option<canary_core::policy::StepRoute>> {
                Ok(self.0.get_route().await?)
            }

            async fn read_back(
                &self,
            ) -> canary_core::Result<(u8, Option<canary_core::policy::StepRoute>)> {
                Ok(self.0.get_both().await?)
            }

            fn describe(&self) -> String {
                self.0.description()
            }
        }
    };
}
pub(crate) use delegate_router;

/// A weight as written in an object: a non-negative integer.
pub(crate) fn weight_value(value: Option<&Value>, default: u64, at: &str) -> Result<u64, String> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("{at} is {v}, expected a whole number of at least 0")),
    }
}

/// Picks one list entry by name or index among the ones holding both versions.
pub(crate) fn pick<'a>(
    entries: &'a [Value],
    wanted: Option<&canary_core::policy::RuleRef>,
    list: &str,
    holds_both: impl Fn(&Value) -> bool,
) -> Result<(usize, &'a Value), String> {
    use canary_core::policy::RuleRef;
    match wanted {
        Some(RuleRef::Index(i)) => entries.get(*i).map(|e| (*i, e)).ok_or_else(|| {
            format!(
                "{list} has {} entries, there is no index {i}",
                entries.len()
            )
        }),
        Some(RuleRef::Name(name)) => entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .ok_or_else(|| format!("{list} has no entry named {name:?}")),
        None => {
            let both: Vec<_> = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| holds_both(e))
                .collect();
            match both.as_slice() {
                [one] => Ok(*one),
                [] => Err(format!(
                    "no entry of {list} holds both the stable and the canary backend"
                )),
                many => Err(format!(
                    "{} entries of {list} hold both backends (indexes {}); name the one to shift in the policy",
                    many.len(),
                    many.iter()
                        .map(|(i, _)| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
}

/// The two weights of a list of weighted entries (backendRefs, destinations, backends,
/// services): finds the stable and the canary entry, and refuses a list that sends traffic
/// anywhere else (canary would not know what share it is setting).
pub(crate) fn two_entries(
    entries: &[Value],
    base: &str,
    list: &str,
    is_stable: impl Fn(&Value) -> bool,
    is_canary: impl Fn(&Value) -> bool,
    default_weight: u64,
    total: u32,
) -> Result<Weights, String> {
    let mut stable = None;
    let mut canary = None;
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{list}[{i}].weight");
        let weight = weight_value(entry.get("weight"), default_weight, &at)?;
        let slot = Slot {
            pointer: Some(format!("{base}/{i}/weight")),
            value: weight,
        };
        if is_stable(entry) {
            if stable.replace(slot).is_some() {
                return Err(format!("{list} holds the stable backend twice"));
            }
        } else if is_canary(entry) {
            if canary.replace(slot).is_some() {
                return Err(format!("{list} holds the canary backend twice"));
            }
        } else if weight > 0 {
            return Err(format!(
                "{list}[{i}] sends traffic to another backend too (weight {weight}): canary only shifts between the stable and the canary backend"
            ));
        }
    }
    match (stable, canary) {
        (Some(stable), Some(canary)) => Ok(Weights {
            stable,
            canary,
            total,
            as_strings: false,
            prepare: Vec::new(),
        }),
        (None, _) => Err(format!("{list} has no stable backend")),
        (_, None) => Err(format!(
            "{list} has no canary backend (add it with weight 0 before the rollout)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_adds_up_to_the_total() {
        assert_eq!(split(10, 100), (10, 90));
        assert_eq!(split(0, 100), (0, 100));
        assert_eq!(split(100, 100), (100, 0));
        assert_eq!(split(25, 1000), (250, 750));
        // 25 % of 150 is 37.5: rounded half up.
        assert_eq!(split(25, 150), (38, 112));
        for percent in 0..=100u8 {
            for total in [100, 150, 333, 1000, 1_000_000] {
                let (c, s) = split(percent, total);
                assert_eq!(c + s, u64::from(total));
                let share = canary_share(c as u32, s as u32).unwrap();
                assert_eq!(share, percent, "{percent}% of {total}");
            }
        }
    }
}
