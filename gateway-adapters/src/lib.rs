//! `canary-gateways` moves traffic between the stable version of a service and its canary:
//! it implements the core's [`TrafficRouter`] port for HAProxy's runtime API
//! ([`HaproxyRouter`]), an NGINX weighted upstream file that is rewritten and reloaded
//! ([`NginxRouter`]), a user's command for anything else ([`CommandRouter`]), and the
//! weights of Kubernetes resources — Gateway API `HTTPRoute`, ingress-nginx canary `Ingress`,
//! Istio `VirtualService`, SMI `TrafficSplit`, Traefik `TraefikService` ([`kubernetes`], which
//! also keeps rollout state in a ConfigMap); and it runs
//! the policy's [`hooks`] (commands and signed webhooks). Every router can read the weight
//! back from the router itself, so the rollout verifies each change
//! ([`canary_core::ports::set_and_verify`]) instead of assuming it; every external call has a
//! timeout; and every failure becomes a [`canary_core::Error`] that names the socket, file or
//! program involved (`Unavailable`, or `Mismatch` when the router holds something canary did
//! not set), never a secret. [`router_for`] builds the router a policy's `gateway` asks for.

pub mod command;
pub mod error;
pub mod haproxy;
pub mod hooks;
pub mod kubernetes;
pub mod nginx;
pub mod notify;
mod process;

use canary_core::policy::GatewaySpec;
use canary_core::ports::TrafficRouter;

pub use command::CommandRouter;
pub use error::{CommandFailure, GatewayError, Result};
pub use haproxy::{HaproxyRouter, ServerWeights};
pub use hooks::{HookContext, HookOutcome, HookRun, HookRunner};
pub use nginx::NginxRouter;

/// The router a policy's `gateway` section describes. Fails only on names that could not be
/// written safely into a runtime API command or an NGINX file (which policy validation
/// already rejects). Kubernetes routers load their kubeconfig on first use
/// ([`kubernetes::KubeConnection::infer`]), so building one needs no cluster.
pub fn router_for(spec: &GatewaySpec) -> canary_core::Result<Box<dyn TrafficRouter>> {
    Ok(match spec {
        GatewaySpec::Haproxy(spec) => Box::new(HaproxyRouter::new(spec)?),
        GatewaySpec::Nginx(spec) => Box::new(NginxRouter::new(spec)?),
        GatewaySpec::Command(spec) => Box::new(CommandRouter::new(spec)),
        GatewaySpec::HttpRoute(_)
        | GatewaySpec::NginxIngress(_)
        | GatewaySpec::IstioVirtualService(_)
        | GatewaySpec::SmiTrafficSplit(_)
        | GatewaySpec::TraefikService(_) => {
            let context = spec.kubernetes().and_then(|object| object.context.clone());
            let connection = kubernetes::KubeConnection::infer(context, None);
            kubernetes::kubernetes_router(spec, connection)
                .ok_or_else(|| canary_core::Error::Usage("not a Kubernetes gateway".to_owned()))?
        }
    })
}

/// Installs ring as the process's TLS crypto provider, which the webhook client needs (the
/// workspace builds reqwest without one, to keep aws-lc out of the build). Installing it
/// again, or after another crate of the process installed one, changes nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A weight above 100 % is a caller's bug, refused before anything is touched.
fn check_weight(weight: u8) -> canary_core::Result<()> {
    if weight > 100 {
        return Err(canary_core::Error::Usage(format!(
            "a canary weight of {weight}% was asked for; weights run from 0 to 100"
        )));
    }
    Ok(())
}

/// The canary's share in percent of two weights, rounded half up; `None` when both are 0.
fn canary_share(canary: u32, stable: u32) -> Option<u8> {
    let total = u64::from(canary) + u64::from(stable);
    if total == 0 {
        return None;
    }
    // round(100·c / total) with integers: floor((200·c + total) / (2·total)).
    u8::try_from((200 * u64::from(canary) + total) / (2 * total)).ok()
}

/// Replaces `{name}` placeholders in one argument, in a single pass: a value that itself
/// contains `{…}` is not replaced again. Unknown placeholders are left as written (policy
/// validation rejects them).
fn substitute(arg: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let replaced = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, close))
        });
        match replaced {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_once() {
        let values = [
            ("weight", "10".to_owned()),
            ("service", "{weight}".to_owned()),
        ];
        assert_eq!(substitute("--weight={weight}", &values), "--weight=10");
        assert_eq!(substitute("{service}/{weight}", &values), "{weight}/10");
        assert_eq!(substitute("{unknown} {", &values), "{unknown} {");
        assert_eq!(substitute("{{weight}}", &values), "{10}");
        assert_eq!(substitute("plain", &values), "plain");
    }

    #[test]
    fn share_rounds_half_up() {
        assert_eq!(canary_share(1, 7), Some(13));
        assert_eq!(canary_share(0, 0), None);
        assert_eq!(canary_share(10, 90), Some(10));
    }

    #[test]
    fn weights_above_100_are_refused() {
        assert!(check_weight(100).is_ok());
        assert!(matches!(
            check_weight(101),
            Err(canary_core::Error::Usage(_))
        ));
    }
}
