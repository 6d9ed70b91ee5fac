//! The routers ([`HttpRouteRouter`], [`NginxIngressRouter`], [`VirtualServiceRouter`],
//! [`TrafficSplitRouter`], [`TraefikServiceRouter`]) share one engine (the
//! [`ReplicaCountRouter`], for clusters where nothing splits traffic, scales Deployments instead): read the object, find
//! the two weights (typed with `gateway-api` and `k8s-openapi` where a maintained crate
//! exists, as JSON where none does), and write them with a JSON patch (RFC 6902) that holds
//! one `add` per weight and one `replace` of `metadata.resourceVersion` with the version
//! just read. The API server applies a patch to the object as it is now, so the patch
//! touches nothing but the weights; and because the patched object then carries the version
//! that was read, a write based on a stale read is refused with 409 Conflict instead of
//! silently winning. A conflict is answered with a fresh read and a new patch, a bounded
//! number of times. Setting is idempotent: weights that already match are not written.
//! Every router reads its weights back from the API server for
//! [`set_and_verify`](canary_core::ports::set_and_verify).
//!
//! Server-side apply was the alternative and was not chosen: `HTTPRoute.spec.rules`,
//! `VirtualService.spec.http` and the other lists holding these weights are atomic lists
//! for apply, so applying one weight means owning (and re-sending) the whole list.

mod generated;
mod httproute;
mod nginx_ingress;
mod replica_count;
mod several;
mod traefik;
mod traffic_split;
mod virtual_service;
pub(crate) mod weights;

use canary_core::policy::GatewaySpec;
use canary_core::ports::TrafficRouter;

use crate::KubeConnection;
pub use generated::GENERATED_ANNOTATION;
pub use httproute::HttpRouteRouter;
pub use nginx_ingress::{
    CANARY_ANNOTATION, CANARY_WEIGHT_ANNOTATION, CANARY_WEIGHT_TOTAL_ANNOTATION, NginxIngressRouter,
};
pub use replica_count::{ASKED_WEIGHT_ANNOTATION, ReplicaCountRouter};
pub use several::SeveralRoutesRouter;
pub use traefik::TraefikServiceRouter;
pub use traffic_split::TrafficSplitRouter;
pub use virtual_service::{MATCH_ROUTE_NAME, VirtualServiceRouter};
pub use weights::ROUTE_ANNOTATION;

/// The router of a Kubernetes `gateway` of the policy, talking to the cluster through
/// `connection`; `None` for the gateways that are not Kubernetes resources. A gateway naming
/// more than one routing object gets a [`SeveralRoutesRouter`] over one router each.
pub fn kubernetes_router(
    spec: &GatewaySpec,
    connection: KubeConnection,
) -> Option<Box<dyn TrafficRouter>> {
    Some(match spec {
        GatewaySpec::HttpRoute(spec) if !spec.more_routes.is_empty() => {
            let mut routers: Vec<Box<dyn TrafficRouter>> =
                vec![Box::new(HttpRouteRouter::new(spec, connection.clone()))];
            for more in &spec.more_routes {
                let mut one = spec.clone();
                one.object.name.clone_from(&more.name);
                one.rule.clone_from(&more.rule);
                one.more_routes.clear();
                routers.push(Box::new(HttpRouteRouter::new(&one, connection.clone())));
            }
            Box::new(SeveralRoutesRouter::new(routers))
        }
        GatewaySpec::HttpRoute(spec) => Box::new(HttpRouteRouter::new(spec, connection)),
        GatewaySpec::NginxIngress(spec) => Box::new(NginxIngressRouter::new(spec, connection)),
        GatewaySpec::IstioVirtualService(spec) if !spec.more_virtual_services.is_empty() => {
            let mut routers: Vec<Box<dyn TrafficRouter>> = vec![Box::new(
                VirtualServiceRouter::new(spec, connection.clone()),
            )];
            for more in &spec.more_virtual_services {
                let mut one = spec.clone();
                one.object.name.clone_from(&more.name);
                one.route.clone_from(&more.rule);
                one.more_virtual_services.clear();
                routers.push(Box::new(VirtualServiceRouter::new(
                    &one,
                    connection.clone(),
                )));
            }
            Box::new(SeveralRoutesRouter::new(routers))
        }
        GatewaySpec::IstioVirtualService(spec) => {
            Box::new(VirtualServiceRouter::new(spec, connection))
        }
        GatewaySpec::SmiTrafficSplit(spec) => Box::new(TrafficSplitRouter::new(spec, connection)),
        GatewaySpec::TraefikService(spec) => Box::new(TraefikServiceRouter::new(spec, connection)),
        GatewaySpec::ReplicaCount(spec) => Box::new(ReplicaCountRouter::new(spec, connection)),
        GatewaySpec::Haproxy(_) | GatewaySpec::Nginx(_) | GatewaySpec::Command(_) => return None,
    })
}
