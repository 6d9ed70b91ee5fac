//! Which Kubernetes namespaces a policy writes in. `canary rollout` writes wherever its
//! kubeconfig lets it; `canary controller` writes with its own ClusterRole for whoever may
//! create a `CanaryRollout` in some namespace, so a policy naming another namespace would
//! let them patch HTTPRoutes or Deployments they may not touch themselves. The controller
//! asks [`Policy::namespaces_written`] and refuses any that is not the resource's own.

use super::{GatewaySpec, Policy};

/// One field of a policy that names the namespace of objects canary changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceField {
    /// The field, as the policy names it (`gateway.http-route.namespace`).
    pub field: String,
    /// The namespace it names.
    pub namespace: String,
}

impl std::fmt::Display for NamespaceField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.namespace)
    }
}

impl Policy {
    /// Every field naming the namespace of objects canary creates or changes, in policy
    /// order: the Kubernetes gateway's (its object, and every object said to be in the same
    /// namespace: `more-routes`, `more-virtual-services`, the generated HTTPRoute, the stable
    /// Ingress, both Deployments of `replica-count`, the DestinationRule and ServiceProfile
    /// it reads) and the promotion's Deployments. A field left out (the default namespace)
    /// is not listed.
    ///
    /// `gateway.http-route.generate.gateway-namespace` is not: it names the Gateway the
    /// generated route attaches to, which canary never writes, and whether a route from
    /// another namespace may attach is the Gateway's own `allowedRoutes` to decide.
    pub fn namespaces_written(&self) -> Vec<NamespaceField> {
        let mut found = Vec::new();
        if let Some(gateway) = &self.gateway {
            let kind = match gateway {
                GatewaySpec::Haproxy(_) | GatewaySpec::Nginx(_) | GatewaySpec::Command(_) => None,
                GatewaySpec::HttpRoute(_) => Some("http-route"),
                GatewaySpec::NginxIngress(_) => Some("nginx-ingress"),
                GatewaySpec::IstioVirtualService(_) => Some("istio-virtual-service"),
                GatewaySpec::SmiTrafficSplit(_) => Some("smi-traffic-split"),
                GatewaySpec::TraefikService(_) => Some("traefik-service"),
                GatewaySpec::ReplicaCount(_) => Some("replica-count"),
            };
            if let (Some(kind), Some(object)) = (kind, gateway.kubernetes())
                && let Some(namespace) = &object.namespace
            {
                found.push(NamespaceField {
                    field: format!("gateway.{kind}.namespace"),
                    namespace: namespace.clone(),
                });
            }
        }
        if let Some(promotion) = &self.promotion
            && let Some(namespace) = &promotion.stable.namespace
        {
            found.push(NamespaceField {
                field: "promotion.kubernetes.namespace".to_owned(),
                namespace: namespace.clone(),
            });
        }
        found
    }

    /// The fields of [`namespaces_written`](Policy::namespaces_written) naming a namespace
    /// other than `own`.
    pub fn namespaces_other_than(&self, own: &str) -> Vec<NamespaceField> {
        self.namespaces_written()
            .into_iter()
            .filter(|field| field.namespace != own)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(gateway_and_promotion: &str) -> Policy {
        let text = format!(
            "service: web\n\
             traffic: {{label: version, canary: canary, baseline: stable, selector: 'job=\"web\"'}}\n\
             metrics: {{prometheus: {{url: http://prometheus:9090}}}}\n\
             {gateway_and_promotion}\
             checks:\n  - {{name: e, error-rate: {{requests: http_requests_total, errors: 'code=~\"5..\"'}}, slo: {{max: 1%}}}}\n"
        );
        Policy::from_yaml(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn fields(policy: &Policy) -> Vec<String> {
        policy
            .namespaces_written()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_kubernetes_gateway_and_the_promotion_name_their_namespace() {
        for (gateway, field) in [
            (
                "http-route: {name: r, namespace: b, stable: s, canary: c}",
                "gateway.http-route.namespace: b",
            ),
            (
                "nginx-ingress: {ingress: web, namespace: b}",
                "gateway.nginx-ingress.namespace: b",
            ),
            (
                "istio-virtual-service: {name: v, namespace: b, stable: {host: web, subset: s}, canary: {host: web, subset: c}}",
                "gateway.istio-virtual-service.namespace: b",
            ),
            (
                "smi-traffic-split: {name: t, namespace: b, stable: s, canary: c}",
                "gateway.smi-traffic-split.namespace: b",
            ),
            (
                "traefik-service: {name: t, namespace: b, stable: s, canary: c}",
                "gateway.traefik-service.namespace: b",
            ),
            (
                "replica-count: {stable-deployment: s, canary-deployment: c, replicas: 10, namespace: b}",
                "gateway.replica-count.namespace: b",
            ),
        ] {
            let named = policy(&format!("gateway:\n  {gateway}\n"));
            assert_eq!(fields(&named), [field], "{gateway}");
            assert_eq!(named.namespaces_other_than("b"), Vec::new(), "{gateway}");
            assert_eq!(named.namespaces_other_than("a").len(), 1, "{gateway}");
        }
        let promoted = policy(
            "gateway:\n  http-route: {name: r, stable: s, canary: c}\n\
             promotion:\n  kubernetes: {stable-deployment: s, canary-deployment: c, namespace: b}\n",
        );
        assert_eq!(fields(&promoted), ["promotion.kubernetes.namespace: b"]);
    }

    #[test]
    fn the_default_namespace_and_the_generated_routes_gateway_name_none() {
        let defaulted = policy("gateway:\n  http-route: {name: r, stable: s, canary: c}\n");
        assert_eq!(fields(&defaulted), Vec::<String>::new());
        let attached = policy(
            "gateway:\n  http-route: {name: r, stable: s, canary: c, generate: {gateway: web, gateway-namespace: infra, port: 80, owner-deployment: s}}\n",
        );
        assert_eq!(fields(&attached), Vec::<String>::new());
        let haproxy = policy(
            "gateway:\n  haproxy: {socket: /run/h.sock, backend: b, canary-server: c, stable-server: s}\n",
        );
        assert_eq!(fields(&haproxy), Vec::<String>::new());
    }
}
