//! Routing objects canary creates and owns (a policy's `generate`, for HTTPRoute and Istio
//! VirtualService): when the object is missing at the first read, it is created with the two
//! backends at 100/0 and an ownerReference to a Deployment (`controller: false`: a Deployment
//! does not manage routes; `blockOwnerDeletion: false`: deleting the Deployment needs no
//! permission on the route), so that no GitOps tool holds its weights and Kubernetes' garbage
//! collector deletes it with the Deployment. An object that is there, generated or not, is
//! used as it is. Idempotent: a second run finds the object and creates nothing; a creation
//! that loses a race (409) uses the winner's.

use std::sync::atomic::{AtomicBool, Ordering};

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::routers::weights::{WeightRouter, WeightedKind};
use crate::{KubernetesError, Permission};

/// The annotation on a routing object canary generated.
pub const GENERATED_ANNOTATION: &str = "canary.dev/generated";

/// Creates the object of `inner` when it is missing, once per process (`ensured` remembers),
/// owned by Deployment `owner_deployment` of its namespace. `build(namespace, owner)` gives
/// the object to create; `owner` is the ownerReference to put in its `metadata`.
pub(crate) async fn ensure_generated<K: WeightedKind>(
    inner: &WeightRouter<K>,
    ensured: &AtomicBool,
    owner_deployment: &str,
    build: impl FnOnce(&str, Value) -> Value,
) -> Result<(), KubernetesError> {
    if ensured.load(Ordering::Relaxed) {
        return Ok(());
    }
    let (api, namespace) = inner.api().await?;
    match inner.read(&api, &namespace).await {
        Ok(_) => {
            ensured.store(true, Ordering::Relaxed);
            return Ok(());
        }
        Err(KubernetesError::NotFound { .. }) => {}
        Err(err) => return Err(err),
    }
    let (client, _) = inner.connection.client().await?;
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        client,
        &namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    let owner_object = format!("Deployment {namespace}/{owner_deployment}");
    let owner = deployments.get(owner_deployment).await.map_err(|err| {
        crate::api_error(
            &owner_object,
            Permission {
                verb: "get",
                api_group: "apps".to_owned(),
                resource: "deployments".to_owned(),
                namespace: namespace.clone(),
                name: Some(owner_deployment.to_owned()),
            },
            err,
        )
    })?;
    let uid = owner
        .metadata
        .uid
        .clone()
        .ok_or_else(|| KubernetesError::Object {
            object: owner_object,
            message: format!(
                "has no metadata.uid to own the generated {} by",
                inner.kind.kind()
            ),
        })?;
    let owner_reference = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": owner_deployment,
        "uid": uid,
        "controller": false,
        "blockOwnerDeletion": false
    });
    let object = build(&namespace, owner_reference);
    let object: DynamicObject =
        serde_json::from_value(object).map_err(|err| KubernetesError::Object {
            object: inner.object(&namespace),
            message: format!("cannot build the generated object: {err}"),
        })?;
    let params = PostParams {
        field_manager: Some(crate::FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    inner.connection.may_write(&inner.object(&namespace))?;
    match api.create(&params, &object).await {
        Ok(_) => {}
        // Created meanwhile (another run of the same rollout): use it.
        Err(err) if crate::is_conflict(&err) => {}
        Err(err) => {
            let mut permission = inner.permission("create", &namespace);
            permission.name = None;
            return Err(crate::api_error(&inner.object(&namespace), permission, err));
        }
    }
    ensured.store(true, Ordering::Relaxed);
    Ok(())
}
