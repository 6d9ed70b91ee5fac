//! The adapters a policy or a command line asks for, built: the gateway's router, the
//! ConfigMap state store, the Kubernetes promotion. The Kubernetes ones come from
//! `canary-kubernetes`, compiled only with the `kubernetes` cargo feature (on by default).
//! A build without it refuses what needs a cluster with a usage error (exit 2) that says so,
//! before that adapter is used; everything else works the same.

use canary_core::policy::{DeploymentPromotionSpec, GatewaySpec};
use canary_core::ports::{StateStore, TrafficRouter};
use canary_core::rollout::PromotionStage;

/// The router of a policy's `gateway`; its errors and messages redacted of every secret the
/// process holds.
pub(crate) fn router_for(spec: &GatewaySpec) -> canary_core::Result<Box<dyn TrafficRouter>> {
    let router = match canary_gateways::router_for(spec)? {
        Some(router) => router,
        None => kubernetes_router(spec)?,
    };
    Ok(Box::new(canary_core::secret::Redacted::new(router)))
}

/// The router of a Kubernetes gateway. Its client loads the kubeconfig on first use
/// ([`canary_kubernetes::KubeConnection::infer`]), so building one needs no cluster.
#[cfg(feature = "kubernetes")]
fn kubernetes_router(spec: &GatewaySpec) -> canary_core::Result<Box<dyn TrafficRouter>> {
    let context = spec.kubernetes().and_then(|object| object.context.clone());
    let connection = canary_kubernetes::KubeConnection::infer(context, None);
    canary_kubernetes::kubernetes_router(spec, connection)
        .ok_or_else(|| canary_core::Error::Usage("not a Kubernetes gateway".to_owned()))
}

#[cfg(not(feature = "kubernetes"))]
fn kubernetes_router(_spec: &GatewaySpec) -> canary_core::Result<Box<dyn TrafficRouter>> {
    Err(without_kubernetes("the policy's Kubernetes `gateway`"))
}

/// The state store in a ConfigMap: `name` (default `canary-rollout-SERVICE`) in `namespace`
/// of the kubeconfig `context`'s cluster. The client is made on first use, inside the
/// command's runtime.
#[cfg(feature = "kubernetes")]
pub(crate) fn configmap_store(
    context: Option<String>,
    namespace: Option<String>,
    service: &str,
    name: Option<String>,
    claim_ttl: std::time::Duration,
) -> canary_core::Result<Box<dyn StateStore>> {
    let connection = canary_kubernetes::KubeConnection::infer(context, namespace.clone());
    Ok(Box::new(
        canary_kubernetes::ConfigMapStateStore::new(connection, namespace, service, name)?
            .with_claim_ttl(claim_ttl),
    ))
}

#[cfg(not(feature = "kubernetes"))]
pub(crate) fn configmap_store(
    _context: Option<String>,
    _namespace: Option<String>,
    _service: &str,
    _name: Option<String>,
    _claim_ttl: std::time::Duration,
) -> canary_core::Result<Box<dyn StateStore>> {
    Err(without_kubernetes("`--state-store configmap`"))
}

/// What carries out the policy's Kubernetes `promotion`: a
/// [`canary_kubernetes::DeploymentPromoter`] whose errors are the core's. Without the
/// `kubernetes` feature it refuses every stage; the driver asks it for the canary's
/// generation before any traffic moves, so a policy with a `promotion` stops there, with
/// exit 2.
#[derive(Clone)]
pub(crate) struct Promoter {
    #[cfg(feature = "kubernetes")]
    inner: canary_kubernetes::DeploymentPromoter,
}

impl Promoter {
    /// The promoter of the policy's `promotion`.
    #[cfg(feature = "kubernetes")]
    pub(crate) fn new(spec: &DeploymentPromotionSpec) -> Promoter {
        let connection =
            canary_kubernetes::KubeConnection::infer(spec.stable.context.clone(), None);
        Promoter {
            inner: canary_kubernetes::DeploymentPromoter::new(spec, connection),
        }
    }

    /// The promoter of the policy's `promotion` through `connection` (the controller's
    /// client, its writes fenced on the Lease, its default namespace the resource's).
    #[cfg(feature = "kubernetes")]
    pub(crate) fn with_connection(
        spec: &DeploymentPromotionSpec,
        connection: canary_kubernetes::KubeConnection,
    ) -> Promoter {
        Promoter {
            inner: canary_kubernetes::DeploymentPromoter::new(spec, connection),
        }
    }

    #[cfg(not(feature = "kubernetes"))]
    pub(crate) fn new(_spec: &DeploymentPromotionSpec) -> Promoter {
        Promoter {}
    }

    /// See [`canary_kubernetes::DeploymentPromoter::canary_generation`].
    pub(crate) async fn canary_generation(&self) -> canary_core::Result<i64> {
        #[cfg(feature = "kubernetes")]
        return self
            .inner
            .canary_generation()
            .await
            .map_err(|e| canary_core::Error::from(e).redacted());
        #[cfg(not(feature = "kubernetes"))]
        Err(without_kubernetes("the policy's `promotion`"))
    }

    /// See [`canary_kubernetes::DeploymentPromoter::run`].
    pub(crate) async fn run(
        &self,
        stage: PromotionStage,
        analysed: Option<i64>,
    ) -> canary_core::Result<()> {
        #[cfg(feature = "kubernetes")]
        return self
            .inner
            .run(stage, analysed)
            .await
            .map_err(|e| canary_core::Error::from(e).redacted());
        #[cfg(not(feature = "kubernetes"))]
        {
            let _ = (stage, analysed);
            Err(without_kubernetes("the policy's `promotion`"))
        }
    }

    /// What `stage` does, for logs.
    pub(crate) fn describe(&self, stage: PromotionStage) -> String {
        #[cfg(feature = "kubernetes")]
        return self.inner.describe(stage);
        #[cfg(not(feature = "kubernetes"))]
        format!("promotion stage {stage:?}")
    }
}

/// The error of a build without the `kubernetes` feature asked for `what`.
#[cfg(not(feature = "kubernetes"))]
fn without_kubernetes(what: &str) -> canary_core::Error {
    canary_core::Error::Usage(format!(
        "{what} needs Kubernetes support, and this canary was built without it (cargo feature \
         `kubernetes`, on by default): build it with default features"
    ))
}
