//! The Kubernetes gateways of the policy: what each reads into, their defaults, and the
//! messages (field path, line and column) for what Kubernetes would not accept.

use canary_core::policy::{
    CreateCanaryIngress, GatewaySpec, HttpRouteSpec, IstioDestination, IstioProtocol,
    KubeObjectRef, Policy, RouteTarget, RuleRef,
};

fn policy(gateway: &str) -> Result<Policy, String> {
    let text = format!(
        "service: checkout\ntraffic:\n  label: version\n  canary: canary\n  baseline: stable\n\
         metrics:\n  prometheus:\n    url: http://prometheus:9090\n\
         gateway:\n{gateway}\n\
         checks:\n  - name: errors\n    error-rate:\n      requests: http_requests_total\n      errors: 'code=~\"5..\"'\n    slo:\n      max: 1%\n"
    );
    Policy::from_yaml(&text, "checkout.yaml").map_err(|e| e.to_string())
}

fn gateway(yaml: &str) -> GatewaySpec {
    policy(yaml)
        .unwrap_or_else(|e| panic!("{e}"))
        .gateway
        .expect("a gateway")
}

#[test]
fn an_httproute_gateway_reads_with_its_defaults() {
    let spec = gateway(
        "  http-route:\n    name: checkout\n    stable: checkout-stable\n    canary: checkout-canary",
    );
    assert_eq!(
        spec,
        GatewaySpec::HttpRoute(HttpRouteSpec {
            object: KubeObjectRef {
                name: "checkout".to_owned(),
                namespace: None,
                context: None,
            },
            rule: None,
            stable: "checkout-stable".to_owned(),
            canary: "checkout-canary".to_owned(),
            weight_total: 100,
            more_routes: Vec::new(),
            generate: None,
        })
    );
    assert_eq!(spec.kubernetes().unwrap().name, "checkout");
    let spec = gateway(
        "  http-route:\n    name: checkout\n    namespace: shop\n    context: kind-canary\n    rule: 2\n    stable: a\n    canary: b\n    weight-total: 1000",
    );
    let GatewaySpec::HttpRoute(spec) = spec else {
        panic!()
    };
    assert_eq!(spec.rule, Some(RuleRef::Index(2)));
    assert_eq!(spec.object.namespace.as_deref(), Some("shop"));
    assert_eq!(spec.object.context.as_deref(), Some("kind-canary"));
    assert_eq!(spec.weight_total, 1000);
    let GatewaySpec::HttpRoute(spec) =
        gateway("  http-route:\n    name: checkout\n    rule: api\n    stable: a\n    canary: b")
    else {
        panic!()
    };
    assert_eq!(spec.rule, Some(RuleRef::Name("api".to_owned())));
}

#[test]
fn the_other_kubernetes_gateways_read() {
    let GatewaySpec::NginxIngress(spec) = gateway(
        "  nginx-ingress:\n    ingress: checkout\n    create-canary:\n      stable-service: checkout\n      canary-service: checkout-canary",
    ) else {
        panic!()
    };
    assert_eq!(
        spec.object.name, "checkout-canary",
        "the default canary Ingress name"
    );
    assert_eq!(spec.stable_ingress, "checkout");
    assert_eq!(
        spec.create_canary,
        Some(CreateCanaryIngress {
            stable_service: "checkout".to_owned(),
            canary_service: "checkout-canary".to_owned()
        })
    );
    let GatewaySpec::IstioVirtualService(spec) = gateway(
        "  istio-virtual-service:\n    name: checkout\n    route: primary\n    stable: {host: checkout, subset: v1}\n    canary: {host: checkout, subset: v2}",
    ) else {
        panic!()
    };
    assert_eq!(
        spec.canary,
        IstioDestination {
            host: "checkout".to_owned(),
            subset: Some("v2".to_owned())
        }
    );
    let GatewaySpec::SmiTrafficSplit(spec) =
        gateway("  smi-traffic-split:\n    name: checkout\n    stable: a\n    canary: b")
    else {
        panic!()
    };
    assert_eq!(spec.api_version, "split.smi-spec.io/v1alpha2");
    let GatewaySpec::TraefikService(spec) = gateway(
        "  traefik-service:\n    name: checkout\n    api-version: traefik.containo.us/v1alpha1\n    stable: a\n    canary: b@kubernetescrd",
    ) else {
        panic!()
    };
    assert_eq!(spec.api_version, "traefik.containo.us/v1alpha1");
    assert_eq!(spec.canary, "b@kubernetescrd");
}

#[test]
fn what_kubernetes_would_refuse_is_named_with_its_place() {
    let err = policy("  http-route:\n    name: Checkout_Route\n    stable: same\n    canary: same")
        .unwrap_err();
    assert!(
        err.contains(
            "checkout.yaml:11:11: gateway.http-route.name: expected a Kubernetes object name"
        ),
        "{err}"
    );
    assert!(
        err.contains("gateway.http-route.canary: the canary and stable backends must differ"),
        "{err}"
    );

    let err = policy("  smi-traffic-split:\n    name: s\n    api-version: split.smi-spec.io/v1alpha1\n    stable: a\n    canary: b\n    weight-total: 10").unwrap_err();
    assert!(
        err.contains(
            "gateway.smi-traffic-split.api-version: expected one of split.smi-spec.io/v1alpha2"
        ),
        "{err}"
    );
    assert!(err.contains("gateway.smi-traffic-split.weight-total: expected a weight total from 100 to 1000000, not 10"), "{err}");

    let err = policy("  istio-virtual-service:\n    name: vs\n    route: -1\n    stable: {host: a}\n    canary: {host: a}").unwrap_err();
    assert!(
        err.contains(
            "gateway.istio-virtual-service.route: expected a name or an index from 0, not -1"
        ),
        "{err}"
    );
    assert!(
        err.contains("the canary and stable destinations must differ"),
        "{err}"
    );

    let err = policy("  nginx-ingress:\n    ingress: web\n    canary-ingress: web").unwrap_err();
    assert!(
        err.contains(
            "gateway.nginx-ingress.canary-ingress: the canary Ingress must not be the stable one"
        ),
        "{err}"
    );

    let err = policy(
        "  http-route:\n    name: r\n    stable: a\n    canary: b\n  command:\n    set: [x]",
    )
    .unwrap_err();
    assert!(
        err.contains("expected exactly one of `haproxy`, `nginx`, `command`, `http-route`"),
        "{err}"
    );

    let err = policy("  http-route:\n    name: r\n    stable: a\n    canary: b\n    weights: 3")
        .unwrap_err();
    assert!(err.contains("unknown field `weights`"), "{err}");
}

#[test]
fn a_kubernetes_promotion_reads_and_needs_a_gateway() {
    let route = "  http-route:\n    name: checkout\n    stable: checkout-stable\n    canary: checkout-canary";
    let parsed = policy(&format!(
        "{route}\npromotion:\n  kubernetes:\n    stable-deployment: checkout-stable\n    canary-deployment: checkout-canary\n    namespace: shop"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let promotion = parsed.promotion.expect("a promotion");
    assert_eq!(promotion.stable.name, "checkout-stable");
    assert_eq!(promotion.stable.namespace.as_deref(), Some("shop"));
    assert_eq!(promotion.canary_deployment, "checkout-canary");
    assert_eq!(promotion.timeout, std::time::Duration::from_secs(600));

    let err = policy(&format!(
        "{route}\npromotion:\n  kubernetes:\n    stable-deployment: web\n    canary-deployment: web\n    timeout: 0s"
    ))
    .unwrap_err();
    assert!(
        err.contains(
            "promotion.kubernetes.canary-deployment: the canary and stable Deployments must differ"
        ),
        "{err}"
    );
    assert!(
        err.contains("promotion.kubernetes.timeout: expected a duration longer than 0s"),
        "{err}"
    );
}

/// Several routing objects for one rollout: `more-routes` (HTTPRoutes, or more rules of the
/// first one) and `more-virtual-services`, each named once; VirtualService weights in `tls`
/// or `tcp` routes, named by index only. Without them a policy serializes as before (digest).
#[test]
fn more_routes_and_istio_protocols_read_and_their_mistakes_are_named() {
    let GatewaySpec::HttpRoute(spec) = gateway(
        "  http-route:\n    name: checkout\n    rule: api\n    stable: a\n    canary: b\n    more-routes:\n      - name: checkout-internal\n      - {name: checkout, rule: web}",
    ) else {
        panic!()
    };
    assert_eq!(
        spec.more_routes,
        [
            RouteTarget {
                name: "checkout-internal".to_owned(),
                rule: None
            },
            RouteTarget {
                name: "checkout".to_owned(),
                rule: Some(RuleRef::Name("web".to_owned()))
            }
        ]
    );
    let plain = gateway("  http-route: {name: checkout, stable: a, canary: b}");
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json["http-route"].get("more_routes").is_none(), "{json}");

    let GatewaySpec::IstioVirtualService(spec) = gateway(
        "  istio-virtual-service:\n    name: mesh\n    protocol: tcp\n    route: 0\n    stable: {host: db, subset: v1}\n    canary: {host: db, subset: v2}\n    more-virtual-services: [{name: edge, route: 1}]",
    ) else {
        panic!()
    };
    assert_eq!(spec.protocol, IstioProtocol::Tcp);
    assert_eq!(spec.destination_rule, None);
    assert_eq!(spec.more_virtual_services[0].rule, Some(RuleRef::Index(1)));
    let GatewaySpec::IstioVirtualService(spec) = gateway(
        "  istio-virtual-service:\n    name: mesh\n    destination-rule: db-subsets\n    stable: {host: db, subset: v1}\n    canary: {host: db, subset: v2}",
    ) else {
        panic!()
    };
    assert_eq!(spec.destination_rule.as_deref(), Some("db-subsets"));
    let plain =
        gateway("  istio-virtual-service: {name: mesh, stable: {host: a}, canary: {host: b}}");
    let json = serde_json::to_value(&plain).unwrap();
    assert!(
        json["istio-virtual-service"].get("protocol").is_none(),
        "{json}"
    );

    for (yaml, expected) in [
        (
            "  http-route:\n    name: checkout\n    stable: a\n    canary: b\n    more-routes: [{name: checkout}]",
            "gateway.http-route.more-routes[0].name",
        ),
        (
            "  http-route:\n    name: checkout\n    stable: a\n    canary: b\n    more-routes: [{name: Bad_Name}]",
            "gateway.http-route.more-routes[0].name",
        ),
        (
            "  http-route:\n    name: checkout\n    stable: a\n    canary: b\n    more-routes: [{name: x, rule: -1}]",
            "gateway.http-route.more-routes[0].rule",
        ),
        (
            "  http-route:\n    name: checkout\n    stable: a\n    canary: b\n    more-routes: [{name: x, weight: 5}]",
            "unknown field `weight`",
        ),
        (
            "  istio-virtual-service:\n    name: mesh\n    destination-rule: dr\n    stable: {host: a}\n    canary: {host: b}",
            "is read for subset routes only",
        ),
        (
            "  istio-virtual-service:\n    name: mesh\n    protocol: udp\n    stable: {host: a}\n    canary: {host: b}",
            "gateway.istio-virtual-service.protocol",
        ),
        (
            "  istio-virtual-service:\n    name: mesh\n    protocol: tls\n    route: primary\n    stable: {host: a}\n    canary: {host: b}",
            "Istio's tls routes have no `name`",
        ),
        (
            "  istio-virtual-service:\n    name: mesh\n    protocol: tcp\n    stable: {host: a}\n    canary: {host: b}\n    more-virtual-services: [{name: edge, route: db}]",
            "gateway.istio-virtual-service.more-virtual-services[0].route",
        ),
    ] {
        let message = policy(yaml).unwrap_err();
        assert!(message.contains(expected), "{yaml}\n{message}");
    }
}

/// The shipped Istio policy (header and cookie steps, two VirtualServices) reads as it says.
#[test]
fn the_shipped_istio_policy_reads_with_its_routed_steps_and_two_virtual_services() {
    let text = include_str!("../../../../policies/storefront-istio.yaml");
    let policy =
        Policy::from_yaml(text, "policies/storefront-istio.yaml").unwrap_or_else(|e| panic!("{e}"));
    let Some(GatewaySpec::IstioVirtualService(spec)) = &policy.gateway else {
        panic!("an istio-virtual-service gateway")
    };
    assert_eq!(spec.route, Some(RuleRef::Name("primary".to_owned())));
    assert_eq!(spec.more_virtual_services[0].name, "storefront-edge");
    assert_eq!(policy.rollout.routes.len(), 2);
}

/// `http-route.generate`: the route canary creates when it is missing, owned by a Deployment.
#[test]
fn a_generated_virtual_service_reads_and_its_mistakes_are_named() {
    let GatewaySpec::IstioVirtualService(spec) = gateway(
        "  istio-virtual-service:\n    name: checkout\n    stable: {host: checkout, subset: stable}\n    canary: {host: checkout, subset: canary}\n    generate:\n      hosts: [checkout.shop.svc.cluster.local]\n      gateways: [istio-ingress/web, mesh]\n      owner-deployment: checkout-stable",
    ) else {
        panic!()
    };
    let generate = spec.generate.expect("generate");
    assert_eq!(generate.hosts, ["checkout.shop.svc.cluster.local"]);
    assert_eq!(generate.gateways, ["istio-ingress/web", "mesh"]);
    assert_eq!(generate.owner_deployment, "checkout-stable");
    const BASE: &str = "  istio-virtual-service:\n    name: checkout\n    stable: {host: a}\n    canary: {host: b}\n";
    for (extra, expected) in [
        (
            "    route: primary\n    generate: {hosts: [a.shop], owner-deployment: d}",
            "a generated VirtualService has one route",
        ),
        (
            "    more-virtual-services: [{name: x}]\n    generate: {hosts: [a.shop], owner-deployment: d}",
            "does not go with `more-virtual-services`",
        ),
        (
            "    protocol: tls\n    generate: {hosts: [a.shop], owner-deployment: d}",
            "leave `protocol` out",
        ),
        (
            "    generate: {hosts: [], owner-deployment: d}",
            "gateway.istio-virtual-service.generate.hosts",
        ),
        (
            "    generate: {hosts: [a.shop], gateways: ['a b'], owner-deployment: d}",
            "gateway.istio-virtual-service.generate.gateways[0]",
        ),
        (
            "    generate: {hosts: [a.shop], owner-deployment: D_d}",
            "gateway.istio-virtual-service.generate.owner-deployment",
        ),
        ("    generate: {hosts: [a.shop]}", "owner-deployment"),
    ] {
        let yaml = format!("{BASE}{extra}");
        let message = policy(&yaml).unwrap_err();
        assert!(message.contains(expected), "{yaml}\n{message}");
    }
}

#[test]
fn a_generated_httproute_reads_and_its_mistakes_are_named() {
    let GatewaySpec::HttpRoute(spec) = gateway(
        "  http-route:\n    name: checkout\n    stable: a\n    canary: b\n    generate:\n      gateway: web\n      gateway-namespace: infra\n      section-name: https\n      hostnames: [shop.example, '*.shop.example']\n      port: 8080\n      owner-deployment: checkout-stable",
    ) else {
        panic!()
    };
    let generate = spec.generate.expect("generate");
    assert_eq!(generate.gateway, "web");
    assert_eq!(generate.gateway_namespace.as_deref(), Some("infra"));
    assert_eq!(generate.hostnames, ["shop.example", "*.shop.example"]);
    assert_eq!(generate.port, 8080);
    assert_eq!(generate.owner_deployment, "checkout-stable");
    const BASE: &str = "  http-route:\n    name: checkout\n    stable: a\n    canary: b\n";
    for (extra, expected) in [
        (
            "    rule: api\n    generate: {gateway: web, port: 80, owner-deployment: d}",
            "a generated HTTPRoute has one rule",
        ),
        (
            "    more-routes: [{name: x}]\n    generate: {gateway: web, port: 80, owner-deployment: d}",
            "does not go with `more-routes`",
        ),
        (
            "    generate: {gateway: web, port: 0, owner-deployment: d}",
            "gateway.http-route.generate.port",
        ),
        (
            "    generate: {gateway: web, port: 80, owner-deployment: D_d}",
            "gateway.http-route.generate.owner-deployment",
        ),
        (
            "    generate: {gateway: web, port: 80, owner-deployment: d, hostnames: ['a b']}",
            "gateway.http-route.generate.hostnames[0]",
        ),
        ("    generate: {gateway: web, port: 80}", "owner-deployment"),
    ] {
        let yaml = format!("{BASE}{extra}");
        let message = policy(&yaml).unwrap_err();
        assert!(message.contains(expected), "{yaml}\n{message}");
    }
}
