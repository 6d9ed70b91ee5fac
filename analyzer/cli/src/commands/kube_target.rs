//! `--kube NAMESPACE/NAME` for `canary status`, `promote` and `abort`: a `CanaryRollout`'s
//! policy (inline or from its ConfigMap, through the policy validator) and the ConfigMap
//! the controller keeps its rollout's state in (`canaryrollout-NAME`). With them these
//! commands act on a controller's rollout exactly as on one `canary rollout` drives: the
//! same claim, and the same control requests — bound to the rollout under way (its
//! revision and start), consumed once by the driver, withdrawn when nobody takes them in
//! time.

use std::time::Duration;

use canary_core::secret::Redacted;
use canary_kubernetes::controller::CanaryRollout;
use canary_kubernetes::{ConfigMapStateStore, KubeConnection};
use kube::Api;

use super::KubeRollout;

/// Reads the CanaryRollout `NAMESPACE/NAME` and opens its rollout's state store. A resource
/// that does not exist, or whose policy is invalid, is bad input (exit 2); the API server
/// refusing (403) or failing is an infrastructure error (exit 4) that names the RBAC rule.
pub(crate) async fn open(
    kube: &str,
    context: Option<String>,
    claim_ttl: Duration,
) -> anyhow::Result<KubeRollout> {
    let (namespace, name) = super::wait::namespaced_name(kube)?;
    let connection = KubeConnection::infer(context, Some(namespace.clone()));
    let (client, _) = connection.client().await.map_err(|e| e.into_core())?;
    let api: Api<CanaryRollout> = Api::namespaced(client.clone(), &namespace);
    let resource = match api.get_opt(&name).await {
        Ok(Some(resource)) => resource,
        Ok(None) => {
            return Err(canary_core::Error::Usage(format!(
                "CanaryRollout {namespace}/{name} does not exist"
            ))
            .into());
        }
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Err(canary_core::Error::unavailable(
                "kubernetes",
                "the API server",
                format!(
                    "reading CanaryRollout {namespace}/{name}: forbidden: grant `get` on \
                     canaryrollouts.canary.dev in namespace {namespace} \
                     (examples/kubernetes/controller/ has the Roles). The API server said: {}",
                    status.message
                ),
            )
            .into());
        }
        Err(err) => {
            return Err(canary_core::Error::unavailable(
                "kubernetes",
                "the API server",
                format!("reading CanaryRollout {namespace}/{name}: {err}"),
            )
            .into());
        }
    };
    let policy = crate::controller::resource_policy(&client, &resource).await?;
    canary_core::secret::learn_secrets_of(&policy)?;
    let store = ConfigMapStateStore::new(
        connection.clone(),
        Some(namespace.clone()),
        &policy.service,
        Some(crate::controller::state_config_map(&name)),
    )?
    .with_claim_ttl(claim_ttl);
    let store: Box<dyn canary_core::ports::StateStore> = Box::new(store);
    // A request left for the controller is announced on the resource, so that the
    // controller's watch wakes the rollout at once (it does not poll the ConfigMap).
    let store: Box<dyn canary_core::ports::StateStore> = Box::new(
        crate::controller::AnnouncingStore::new(store, client.clone(), &namespace, &name),
    );
    let router = crate::controller::router_for(&policy, &connection)?;
    Ok(KubeRollout {
        policy,
        store: Box::new(Redacted::new(store)),
        router,
    })
}
