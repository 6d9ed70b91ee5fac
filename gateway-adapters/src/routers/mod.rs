//! Traffic routers that need no cluster: HAProxy's runtime API, an NGINX upstream file, and
//! a user's command. (The Kubernetes routers are in `canary-kubernetes`.)

pub mod command;
pub mod haproxy;
pub mod nginx;

use canary_core::policy::GatewaySpec;
use canary_core::ports::TrafficRouter;

pub use command::CommandRouter;
pub use haproxy::{HaproxyRouter, ServerWeights};
pub use nginx::{NginxRouter, PROBE_PATH, ProbeAnswer};

/// The router a policy's `gateway` section describes, when it is one of this crate's;
/// `None` for the Kubernetes gateways, which `canary-kubernetes` builds. Fails only on names
/// that could not be written safely into a runtime API command or an NGINX file (which
/// policy validation already rejects).
pub fn router_for(spec: &GatewaySpec) -> canary_core::Result<Option<Box<dyn TrafficRouter>>> {
    Ok(Some(match spec {
        GatewaySpec::Haproxy(spec) => Box::new(HaproxyRouter::new(spec)?),
        GatewaySpec::Nginx(spec) => Box::new(NginxRouter::new(spec)?),
        GatewaySpec::Command(spec) => Box::new(CommandRouter::new(spec)),
        GatewaySpec::HttpRoute(_)
        | GatewaySpec::NginxIngress(_)
        | GatewaySpec::IstioVirtualService(_)
        | GatewaySpec::SmiTrafficSplit(_)
        | GatewaySpec::TraefikService(_)
        | GatewaySpec::ReplicaCount(_) => return Ok(None),
    }))
}
