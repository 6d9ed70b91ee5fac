//! [`NginxIngressRouter`]: ingress-nginx's canary Ingress. The controller sends
//! `canary-weight` out of `canary-weight-total` (default 100) of the requests for the stable
//! Ingress' hosts and paths to the Ingress annotated `canary: "true"`; the rest go to the
//! stable one. canary writes the `canary-weight` annotation, and `canary-weight-total` when the
//! policy's total is not ingress-nginx's default of 100 and the annotation is missing, in the
//! same patch; a weight is always read out of the total ingress-nginx applies (a missing
//! annotation is 100). The canary Ingress can be created from the stable one when the policy
//! asks for it.
//!
//! Routed steps use ingress-nginx's request rules, which it evaluates before the weight
//! (`canary-by-header` → `canary-by-cookie` → `canary-weight`,
//! <https://docs.mirantis.com/mke/3.8/ops/deploy-apps-k8s/nginx-ingress/configure-canary-deployment.html>):
//! a header step writes `canary-by-header` and `canary-by-header-value` with the weight at 0, so
//! that only requests with that exact header value reach the canary; a cookie step writes
//! `canary-by-cookie` (requests whose cookie is `always`), and marks them as its own in
//! `canary.dev/request-route`; a plain weight removes what it marked. Request rules the user
//! wrote (testers' `canary-by-header`) are left alone, and a routed step refuses to overwrite
//! them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use canary_core::policy::{CreateCanaryIngress, NginxIngressSpec, StepRoute};
use canary_core::ports::TrafficRouter;
use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use kube::api::{Api, ApiResource, ObjectMeta, PostParams};
use serde_json::Value;

use crate::KubernetesError;
use crate::routers::weights::{Slot, WeightRouter, WeightedKind, Weights, mark_ops, marked_route};
use crate::{FIELD_MANAGER, KubeConnection, Permission, api_error, pointer_token};

/// Marks an Ingress as ingress-nginx's canary of the Ingress with the same host and path
/// (this and the two below with the default prefix; a policy's `annotation-prefix` replaces
/// `nginx.ingress.kubernetes.io`).
pub const CANARY_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary";
/// The canary's weight, a decimal string.
pub const CANARY_WEIGHT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary-weight";
/// What the weight is out of (default 100).
pub const CANARY_WEIGHT_TOTAL_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary-weight-total";
/// The canary annotations' keys under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct AnnotationKeys {
    prefix: String,
    canary: String,
    weight: String,
    total: String,
    by_header: String,
    by_header_value: String,
    by_header_pattern: String,
    by_cookie: String,
}

impl AnnotationKeys {
    pub(crate) fn new(prefix: &str) -> AnnotationKeys {
        AnnotationKeys {
            prefix: prefix.to_owned(),
            canary: format!("{prefix}/canary"),
            weight: format!("{prefix}/canary-weight"),
            total: format!("{prefix}/canary-weight-total"),
            by_header: format!("{prefix}/canary-by-header"),
            by_header_value: format!("{prefix}/canary-by-header-value"),
            by_header_pattern: format!("{prefix}/canary-by-header-pattern"),
            by_cookie: format!("{prefix}/canary-by-cookie"),
        }
    }

    /// Whether `key` is one of ingress-nginx's canary annotations (`canary`, `canary-by-*`,
    /// `canary-weight*`), which a created canary Ingress does not copy from the stable one.
    fn is_canary_key(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with("/canary"))
    }
}

/// The total ingress-nginx applies when `canary-weight-total` is not set.
pub(crate) const DEFAULT_WEIGHT_TOTAL: u32 = 100;
/// Annotations not copied from the stable Ingress to the canary one.
const NOT_COPIED: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// Sets the canary's share as the `canary-weight` annotation of the canary Ingress,
/// creating that Ingress from the stable one first when the policy says `create-canary`.
pub struct NginxIngressRouter {
    inner: WeightRouter<NginxIngressKind>,
    stable_ingress: String,
    create: Option<CreateCanaryIngress>,
}

/// The canary Ingress specifics of [`NginxIngressRouter`].
#[derive(Clone, Debug)]
pub(crate) struct NginxIngressKind {
    total: u32,
    keys: AnnotationKeys,
    stable_name: String,
    /// The stable Ingress' routes as last read (before every write and read-back).
    stable: Arc<Mutex<Option<Routes>>>,
}

impl NginxIngressRouter {
    /// A router for the policy's `gateway.nginx-ingress`.
    pub fn new(spec: &NginxIngressSpec, connection: KubeConnection) -> NginxIngressRouter {
        NginxIngressRouter {
            inner: WeightRouter::with_kind(
                NginxIngressKind {
                    total: spec.weight_total,
                    keys: AnnotationKeys::new(&spec.annotation_prefix),
                    stable_name: spec.stable_ingress.clone(),
                    stable: Arc::default(),
                },
                connection,
                &spec.object.name,
                spec.object.namespace.as_deref(),
            ),
            stable_ingress: spec.stable_ingress.clone(),
            create: spec.create_canary.clone(),
        }
    }

    /// Reads the stable Ingress' class and routes, for [`NginxIngressKind::locate`] to check
    /// that ingress-nginx pairs the canary Ingress with it.
    async fn load_stable(&self) -> Result<(), KubernetesError> {
        let (client, default_namespace) = self.inner.connection.client().await?;
        let namespace = self.inner.namespace.clone().unwrap_or(default_namespace);
        let api: Api<Ingress> = Api::namespaced(client, &namespace);
        let stable = api.get(&self.stable_ingress).await.map_err(|err| {
            api_error(
                &format!("Ingress {namespace}/{}", self.stable_ingress),
                Permission {
                    verb: "get",
                    api_group: "networking.k8s.io".to_owned(),
                    resource: "ingresses".to_owned(),
                    namespace: namespace.clone(),
                    name: Some(self.stable_ingress.clone()),
                },
                err,
            )
        })?;
        *self
            .inner
            .kind
            .stable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(routes(&stable));
        Ok(())
    }

    /// Creates the canary Ingress from the stable one, at `percent`.
    async fn create_canary(
        &self,
        create: &CreateCanaryIngress,
        percent: u8,
    ) -> Result<(), KubernetesError> {
        let (client, default_namespace) = self.inner.connection.client().await?;
        let namespace = self.inner.namespace.clone().unwrap_or(default_namespace);
        let api: Api<Ingress> = Api::namespaced(client, &namespace);
        let stable_object = format!("Ingress {namespace}/{}", self.stable_ingress);
        let stable = api.get(&self.stable_ingress).await.map_err(|err| {
            api_error(
                &stable_object,
                Permission {
                    verb: "get",
                    api_group: "networking.k8s.io".to_owned(),
                    resource: "ingresses".to_owned(),
                    namespace: namespace.clone(),
                    name: Some(self.stable_ingress.clone()),
                },
                err,
            )
        })?;
        let canary =
            canary_from_stable(&stable, &self.inner.name, create, &self.inner.kind, percent)
                .map_err(|message| KubernetesError::Object {
                    object: stable_object,
                    message,
                })?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        self.inner
            .connection
            .may_write(&self.inner.object(&namespace))?;
        match api.create(&params, &canary).await {
            Ok(_) => Ok(()),
            // Created meanwhile by someone else: set its weight the usual way.
            Err(err) if crate::is_conflict(&err) => self.inner.set(percent).await.map(|_| ()),
            Err(err) => Err(api_error(
                &self.inner.object(&namespace),
                Permission {
                    verb: "create",
                    api_group: "networking.k8s.io".to_owned(),
                    resource: "ingresses".to_owned(),
                    namespace: namespace.clone(),
                    name: None,
                },
                err,
            )),
        }
    }
}

/// An Ingress' class and the `(host, path)` pairs of its rules: what ingress-nginx pairs a
/// canary Ingress with the main one by.
type Routes = (Option<String>, Vec<(String, String)>);

fn routes(ingress: &Ingress) -> Routes {
    let spec = ingress.spec.as_ref();
    let mut routes = Vec::new();
    for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
        let host = rule.host.clone().unwrap_or_default();
        for path in rule.http.iter().flat_map(|http| http.paths.iter()) {
            routes.push((
                host.clone(),
                path.path.clone().unwrap_or_else(|| "/".to_owned()),
            ));
        }
    }
    (spec.and_then(|s| s.ingress_class_name.clone()), routes)
}

/// Why ingress-nginx would not apply `canary` as the canary of `stable`: it only splits the
/// traffic of a host and path the main Ingress serves, within one ingress class; a canary
/// rule without its main rule is ignored, whatever its weight says.
fn not_paired(stable: &Routes, stable_name: &str, canary: &Ingress) -> Option<String> {
    let (stable_class, stable_routes) = stable;
    let (canary_class, canary_routes) = routes(canary);
    if *stable_class != canary_class {
        return Some(format!(
            "its ingressClassName is {}, Ingress {stable_name}'s is {}: ingress-nginx pairs a canary only within one class",
            canary_class.as_deref().unwrap_or("unset"),
            stable_class.as_deref().unwrap_or("unset")
        ));
    }
    if canary_routes.is_empty() {
        return Some("has no rules with paths, so ingress-nginx sends it nothing".to_owned());
    }
    let unpaired: Vec<String> = canary_routes
        .iter()
        .filter(|route| !stable_routes.contains(route))
        .map(|(host, path)| {
            format!(
                "{}{path}",
                if host.is_empty() { "(any host)" } else { host }
            )
        })
        .collect();
    (!unpaired.is_empty()).then(|| {
        format!(
            "serves {} that Ingress {stable_name} does not: ingress-nginx ignores a canary's host and path without the same in the main Ingress, so its weight would not be applied",
            unpaired.join(", ")
        )
    })
}

/// The canary Ingress made from the stable one: the same spec with the stable Service's
/// backends pointed at the canary's, the stable one's labels and annotations (less
/// kubectl's last-applied copy), the canary annotations, and nothing of its identity.
pub(crate) fn canary_from_stable(
    stable: &Ingress,
    name: &str,
    create: &CreateCanaryIngress,
    kind: &NginxIngressKind,
    percent: u8,
) -> Result<Ingress, String> {
    let (total, keys) = (kind.total, &kind.keys);
    let mut spec = stable
        .spec
        .clone()
        .ok_or_else(|| "has no spec to copy".to_owned())?;
    let mut replaced = 0;
    let mut swap = |backend: &mut IngressBackend| {
        if let Some(service) = &mut backend.service
            && service.name == create.stable_service
        {
            service.name = create.canary_service.clone();
            replaced += 1;
        }
    };
    if let Some(backend) = &mut spec.default_backend {
        swap(backend);
    }
    for rule in spec.rules.iter_mut().flatten() {
        for path in rule.http.iter_mut().flat_map(|http| http.paths.iter_mut()) {
            swap(&mut path.backend);
        }
    }
    if replaced == 0 {
        return Err(format!(
            "sends no traffic to Service {}, so there is nothing to make a canary of",
            create.stable_service
        ));
    }
    let mut annotations: BTreeMap<String, String> = stable
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| !NOT_COPIED.contains(&key.as_str()) && !keys.is_canary_key(key))
        .collect();
    let (weight, _) = crate::routers::weights::split(percent, total);
    annotations.insert(keys.canary.clone(), "true".to_owned());
    annotations.insert(keys.weight.clone(), weight.to_string());
    if total != DEFAULT_WEIGHT_TOTAL {
        annotations.insert(keys.total.clone(), total.to_string());
    }
    let mut labels = stable.metadata.labels.clone().unwrap_or_default();
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        "canary".to_owned(),
    );
    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: stable.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

impl WeightedKind for NginxIngressKind {
    fn kind(&self) -> &'static str {
        "Ingress"
    }

    fn resource(&self) -> ApiResource {
        ApiResource::erase::<Ingress>(&())
    }

    fn what(&self) -> String {
        format!("annotation {}", self.keys.weight)
    }

    fn read_route(&self, object: &Value) -> Result<Option<StepRoute>, String> {
        // Request rules canary did not mark are the user's (testers' `canary-by-header`):
        // left alone, and not a route of canary's.
        if marked_route(object)?.is_none() {
            return Ok(None);
        }
        self.annotated_route(object)
    }

    fn route_ops(
        &self,
        object: &Value,
        route: Option<&StepRoute>,
    ) -> Result<Vec<PatchOperation>, String> {
        if let Some(StepRoute::Mirror { .. }) = route {
            return Err(
                "cannot mirror: an ingress-nginx canary Ingress splits by weight, header or cookie"
                    .to_owned(),
            );
        }
        let marked = marked_route(object)?;
        if marked.is_none() {
            let own = self
                .annotated_route(object)
                .map(|own| own.map(|own| own.to_string()));
            match (route, own) {
                // Nothing of canary's, nothing asked: the user's request rules stay.
                (None, _) => return Ok(Vec::new()),
                (Some(_), Ok(None)) => {}
                (Some(route), Ok(Some(own)) | Err(own)) => {
                    return Err(format!(
                        "already routes by request on its own ({own}): canary does not overwrite request rules it did not write; remove them from the canary Ingress to run the step routing {route}"
                    ));
                }
            }
        }
        let annotations = annotations_of(object);
        let mut wanted: BTreeMap<&str, String> = BTreeMap::new();
        match route {
            Some(StepRoute::Header { name, value }) => {
                wanted.insert(&self.keys.by_header, name.clone());
                wanted.insert(&self.keys.by_header_value, value.clone());
            }
            Some(StepRoute::Cookie { name }) => {
                wanted.insert(&self.keys.by_cookie, name.clone());
            }
            Some(StepRoute::Mirror { .. }) | None => {}
        }
        let mut ops = Vec::new();
        for key in [
            &self.keys.by_header,
            &self.keys.by_header_value,
            &self.keys.by_header_pattern,
            &self.keys.by_cookie,
        ] {
            let path = crate::routers::weights::pointer(&format!(
                "/metadata/annotations/{}",
                pointer_token(key)
            ));
            match (annotations.get(key.as_str()), wanted.get(key.as_str())) {
                (Some(have), Some(want)) if have == want => {}
                (_, Some(want)) => ops.push(PatchOperation::Add(AddOperation {
                    path,
                    value: Value::String(want.clone()),
                })),
                (Some(_), None) => ops.push(PatchOperation::Remove(RemoveOperation { path })),
                (None, None) => {}
            }
        }
        ops.extend(mark_ops(object, route)?);
        Ok(ops)
    }

    fn locate(&self, object: &Value) -> Result<Weights, String> {
        let ingress: Ingress = serde_json::from_value(object.clone())
            .map_err(|err| format!("does not read as a networking.k8s.io/v1 Ingress: {err}"))?;
        let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
        if annotations.get(&self.keys.canary).map(String::as_str) != Some("true") {
            return Err(format!(
                "is not a canary Ingress: it lacks the annotation {}: \"true\" (canary does not add it to an Ingress it did not create)",
                self.keys.canary
            ));
        }
        let stable = self
            .stable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(stable) = stable
            && let Some(problem) = not_paired(&stable, &self.stable_name, &ingress)
        {
            return Err(problem);
        }
        let number = |key: &str| -> Result<Option<u64>, String> {
            annotations
                .get(key)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("annotation {key} is {v:?}, expected a whole number"))
                })
                .transpose()
        };
        // What ingress-nginx applies now (a missing total is its default), and the patch
        // that makes it the policy's when they differ only by that default.
        let (applied_total, prepare) = match number(&self.keys.total)? {
            None if self.total == DEFAULT_WEIGHT_TOTAL => (self.total, Vec::new()),
            None => (
                DEFAULT_WEIGHT_TOTAL,
                vec![PatchOperation::Add(AddOperation {
                    path: crate::routers::weights::pointer(&format!(
                        "/metadata/annotations/{}",
                        pointer_token(&self.keys.total)
                    )),
                    value: Value::String(self.total.to_string()),
                })],
            ),
            Some(total) if total == u64::from(self.total) => (self.total, Vec::new()),
            Some(total) => {
                return Err(format!(
                    "annotation {} is {total}, the policy's weight-total is {}",
                    self.keys.total, self.total
                ));
            }
        };
        let weight = number(&self.keys.weight)?.unwrap_or(0);
        if weight > u64::from(applied_total) {
            return Err(format!(
                "annotation {} is {weight}, more than the total {applied_total}{}",
                self.keys.weight,
                if prepare.is_empty() {
                    ""
                } else {
                    " ingress-nginx applies while the canary-weight-total annotation is missing"
                }
            ));
        }
        Ok(Weights {
            // The stable share is implied: what the canary does not take of the applied total.
            stable: Slot {
                pointer: None,
                value: u64::from(applied_total) - weight,
            },
            canary: Slot {
                pointer: Some(format!(
                    "/metadata/annotations/{}",
                    pointer_token(&self.keys.weight)
                )),
                value: weight,
            },
            total: self.total,
            as_strings: true,
            prepare,
        })
    }
}

#[async_trait]
impl TrafficRouter for NginxIngressRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        canary_core::ports::check_canary_weight(weight)?;
        self.load_stable().await?;
        match (self.inner.set(weight).await, &self.create) {
            (Err(KubernetesError::NotFound { .. }), Some(create)) => {
                self.create_canary(create, weight).await?;
                Ok(())
            }
            (Err(KubernetesError::NotFound { object, message }), None) => {
                Err(KubernetesError::NotFound {
                    object,
                    message: format!(
                        "{message} (set `create-canary` in the policy to have canary create it from Ingress {})",
                        self.stable_ingress
                    ),
                }
                .into())
            }
            (result, _) => result.map(|_| ()).map_err(Into::into),
        }
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        self.load_stable().await?;
        Ok(self.inner.get().await?)
    }

    async fn set_canary_route(&self, route: &StepRoute) -> canary_core::Result<()> {
        self.load_stable().await?;
        match (self.inner.set_route(route).await, &self.create) {
            // Created at weight 0, then routed.
            (Err(KubernetesError::NotFound { .. }), Some(create)) => {
                self.create_canary(create, 0).await?;
                self.inner.set_route(route).await?;
                Ok(())
            }
            (result, _) => result.map(|_| ()).map_err(Into::into),
        }
    }

    async fn canary_route(&self) -> canary_core::Result<Option<StepRoute>> {
        self.load_stable().await?;
        Ok(self.inner.get_route().await?)
    }

    async fn read_back(&self) -> canary_core::Result<(u8, Option<StepRoute>)> {
        self.load_stable().await?;
        Ok(self.inner.get_both().await?)
    }

    fn describe(&self) -> String {
        format!(
            "{} (canary of Ingress {})",
            self.inner.description(),
            self.stable_ingress
        )
    }
}

impl NginxIngressKind {
    /// The request rule the canary Ingress' annotations set, whoever wrote them; or why it
    /// is not one canary can hold (a pattern, or a header and a cookie at once).
    fn annotated_route(&self, object: &Value) -> Result<Option<StepRoute>, String> {
        let annotations = annotations_of(object);
        let get = |key: &str| annotations.get(key).cloned();
        if let Some(pattern) = get(&self.keys.by_header_pattern) {
            return Err(format!(
                "annotation {} is {pattern:?}: canary does not manage header patterns; remove it (a header step writes {} and {})",
                self.keys.by_header_pattern, self.keys.by_header, self.keys.by_header_value
            ));
        }
        let header = get(&self.keys.by_header).map(|name| StepRoute::Header {
            name,
            // Without a value ingress-nginx sends the header's `always` to the canary.
            value: get(&self.keys.by_header_value).unwrap_or_else(|| "always".to_owned()),
        });
        let cookie = get(&self.keys.by_cookie).map(|name| StepRoute::Cookie { name });
        match (header, cookie) {
            (Some(header), Some(cookie)) => Err(format!(
                "carries two request rules at once ({header}; {cookie}): canary sets one at a time; remove the others"
            )),
            (header, cookie) => Ok(header.or(cookie)),
        }
    }
}

/// An object's annotations as read (none: empty).
fn annotations_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
