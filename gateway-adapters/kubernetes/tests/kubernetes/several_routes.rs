//! Several routing objects for one rollout (issue 18): two HTTPRoutes, two rules of one
//! HTTPRoute, two VirtualServices, and a VirtualService whose weights are in a `tcp` route,
//! against the API fake — every one set, every one read back, a GitOps revert of any one
//! read back as a drift and repaired by writing that one alone.

use canary_core::policy::{GatewaySpec, IstioProtocol, RouteTarget, RuleRef, StepRoute};
use canary_core::ports::{TrafficRouter, set_and_verify, set_and_verify_route};
use canary_fake_kube_api::FakeApiServer;
use canary_kubernetes::{KubeConnection, ROUTE_ANNOTATION, kubernetes_router};
use serde_json::{Value, json};

use crate::schemas::validate;
use crate::support::{NS, chain, destination_rule, http_route, virtual_service};

fn router(spec: &GatewaySpec, fake: &FakeApiServer) -> Box<dyn TrafficRouter> {
    kubernetes_router(spec, KubeConnection::from_client(fake.client(NS), NS)).unwrap()
}

fn stored(fake: &FakeApiServer, group: &str, resource: &str, name: &str) -> Value {
    fake.object(group, resource, NS, name)
        .unwrap_or_else(|| panic!("no {resource} {name}"))
}

fn named(mut object: Value, name: &str) -> Value {
    object["metadata"]["name"] = json!(name);
    object
}

const GW: &str = "gateway.networking.k8s.io";

/// The HTTPRoute case with a second route, `checkout-internal` (the same rules, another
/// Gateway), named by `more-routes`.
fn two_http_routes() -> GatewaySpec {
    let mut spec = crate::support::http_route_case().spec;
    if let GatewaySpec::HttpRoute(spec) = &mut spec {
        spec.more_routes = vec![RouteTarget {
            name: "checkout-internal".to_owned(),
            rule: Some(RuleRef::Name("api".to_owned())),
        }];
    }
    spec
}

fn canary_weight(route: &Value) -> &Value {
    &route["spec"]["rules"][0]["backendRefs"][1]["weight"]
}

#[tokio::test]
async fn two_httproutes_are_both_set_and_a_revert_of_either_is_a_drift_repaired_alone() {
    let spec = two_http_routes();
    let fake = FakeApiServer::start().await;
    fake.insert(http_route());
    let mut internal = named(http_route(), "checkout-internal");
    internal["spec"]["parentRefs"] = json!([{"name": "internal", "namespace": "infra"}]);
    fake.insert(internal.clone());
    let router = router(&spec, &fake);
    assert!(
        router.describe().starts_with("2 routes: "),
        "{}",
        router.describe()
    );

    set_and_verify(router.as_ref(), 10)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    for name in ["checkout", "checkout-internal"] {
        let route = stored(&fake, GW, "httproutes", name);
        validate("httproutes", &route);
        assert_eq!(*canary_weight(&route), json!(10), "{name}");
    }
    assert_eq!(router.read_back().await.unwrap(), (10, None));

    // GitOps puts either one back at its Git weights: the read-back is the drifted 0 %.
    for reverted in [internal.clone(), http_route()] {
        let name = reverted["metadata"]["name"].as_str().unwrap().to_owned();
        fake.replace(reverted);
        assert_eq!(
            router.read_back().await.unwrap(),
            (0, None),
            "{name} reverted"
        );
        fake.clear_requests();
        set_and_verify(router.as_ref(), 10).await.unwrap();
        let patches = fake.requests_with("PATCH");
        assert_eq!(patches.len(), 1, "only the reverted {name} is written");
        assert!(
            patches[0].path.ends_with(&format!("/{name}")),
            "{}",
            patches[0].path
        );
        assert_eq!(router.read_back().await.unwrap(), (10, None));
    }
}

#[tokio::test]
async fn a_header_step_is_set_on_every_httproute_and_a_removed_rule_in_one_is_a_drift() {
    let spec = two_http_routes();
    let fake = FakeApiServer::start().await;
    fake.insert(http_route());
    fake.insert(named(http_route(), "checkout-internal"));
    let router = router(&spec, &fake);
    let header = StepRoute::Header {
        name: "x-canary".to_owned(),
        value: "1".to_owned(),
    };
    set_and_verify_route(router.as_ref(), &header)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    for name in ["checkout", "checkout-internal"] {
        let route = stored(&fake, GW, "httproutes", name);
        assert_eq!(
            route["spec"]["rules"].as_array().unwrap().len(),
            3,
            "{name}"
        );
        assert!(route["metadata"]["annotations"][ROUTE_ANNOTATION].is_string());
    }
    // The header rule taken out of the second route only: the rollout reads no route.
    let mut internal = stored(&fake, GW, "httproutes", "checkout-internal");
    internal["spec"]["rules"].as_array_mut().unwrap().pop();
    fake.replace(internal);
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify_route(router.as_ref(), &header)
        .await
        .unwrap();
    // A plain weight takes both rules away.
    set_and_verify(router.as_ref(), 50).await.unwrap();
    for name in ["checkout", "checkout-internal"] {
        let route = stored(&fake, GW, "httproutes", name);
        assert_eq!(
            route["spec"]["rules"].as_array().unwrap().len(),
            2,
            "{name}"
        );
    }
}

/// Two rules of one HTTPRoute (`/api` and `/web` both split): weights on both, each patch
/// guarded by the version it read.
#[tokio::test]
async fn two_rules_of_one_httproute_are_both_set() {
    let mut spec = crate::support::http_route_case().spec;
    if let GatewaySpec::HttpRoute(spec) = &mut spec {
        spec.more_routes = vec![RouteTarget {
            name: "checkout".to_owned(),
            rule: Some(RuleRef::Name("web".to_owned())),
        }];
    }
    let mut route = http_route();
    route["spec"]["rules"].as_array_mut().unwrap().push(json!({
        "name": "web",
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [
            {"name": "checkout-stable", "port": 8080, "weight": 1},
            {"name": "checkout-canary", "port": 8080, "weight": 0}
        ]
    }));
    let fake = FakeApiServer::start().await;
    fake.insert(route);
    let router = router(&spec, &fake);
    set_and_verify(router.as_ref(), 25)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let stored = stored(&fake, GW, "httproutes", "checkout");
    assert_eq!(
        stored["spec"]["rules"][0]["backendRefs"][1]["weight"],
        json!(25)
    );
    assert_eq!(
        stored["spec"]["rules"][2]["backendRefs"][0]["weight"],
        json!(75)
    );
    assert_eq!(
        stored["spec"]["rules"][2]["backendRefs"][1]["weight"],
        json!(25)
    );
}

/// A process that never set anything (a resumed rollout's first read) cannot tell which of
/// two disagreeing routes drifted: the read-back is an error naming both, not a guess.
#[tokio::test]
async fn disagreeing_routes_read_by_a_fresh_process_are_an_error_naming_both() {
    let spec = two_http_routes();
    let fake = FakeApiServer::start().await;
    fake.insert(http_route());
    let mut internal = named(http_route(), "checkout-internal");
    internal["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(90);
    internal["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(10);
    fake.insert(internal);
    let message = chain(&router(&spec, &fake).read_back().await.unwrap_err());
    assert!(
        message.contains("the routes of this rollout disagree")
            && message.contains("checkout-internal")
            && message.contains(": 10 %")
            && message.contains(": 0 %"),
        "{message}"
    );
}

#[tokio::test]
async fn two_virtual_services_take_the_same_weights_and_mirror() {
    let mut spec = crate::support::virtual_service_case().spec;
    if let GatewaySpec::IstioVirtualService(spec) = &mut spec {
        spec.more_virtual_services = vec![RouteTarget {
            name: "checkout-edge".to_owned(),
            rule: None,
        }];
    }
    let fake = FakeApiServer::start().await;
    fake.insert(virtual_service());
    fake.insert(destination_rule());
    let mut edge = named(virtual_service(), "checkout-edge");
    edge["spec"]["gateways"] = json!(["istio-system/public"]);
    fake.insert(edge);
    let router = router(&spec, &fake);
    set_and_verify(router.as_ref(), 40)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let mirror = StepRoute::Mirror { percent: 20 };
    set_and_verify_route(router.as_ref(), &mirror)
        .await
        .unwrap();
    for name in ["checkout", "checkout-edge"] {
        let vs = stored(&fake, "networking.istio.io", "virtualservices", name);
        validate("virtualservices", &vs);
        assert_eq!(
            vs["spec"]["http"][1]["mirrorPercentage"],
            json!({"value": 20.0}),
            "{name}"
        );
        assert_eq!(
            vs["spec"]["http"][1]["route"][1]["weight"],
            json!(0),
            "{name}"
        );
    }
    assert_eq!(router.read_back().await.unwrap(), (0, Some(mirror)));
}

/// A VirtualService whose two versions are destinations of a `tcp` route: `protocol: tcp`
/// sets them; with the default `http` the error says where the weights are.
#[tokio::test]
async fn a_tcp_route_of_a_virtual_service_carries_the_weights_with_protocol_tcp() {
    let mut vs = virtual_service();
    vs["spec"]["http"] = json!([]);
    vs["spec"]["tcp"] = json!([
        {"match": [{"port": 5432}], "route": [
            {"destination": {"host": "checkout", "subset": "stable", "port": {"number": 5432}}, "weight": 100},
            {"destination": {"host": "checkout", "subset": "canary", "port": {"number": 5432}}}
        ]}
    ]);
    let fake = FakeApiServer::start().await;
    fake.insert(vs);
    fake.insert(destination_rule());
    let mut spec = crate::support::virtual_service_case().spec;
    let message = chain(&router(&spec, &fake).read_back().await.unwrap_err());
    assert!(
        message.contains("spec.tcp has a route holding both: set `protocol: tcp`"),
        "{message}"
    );
    if let GatewaySpec::IstioVirtualService(spec) = &mut spec {
        spec.protocol = IstioProtocol::Tcp;
    }
    let router = router(&spec, &fake);
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify(router.as_ref(), 30)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let stored = stored(&fake, "networking.istio.io", "virtualservices", "checkout");
    validate("virtualservices", &stored);
    assert_eq!(stored["spec"]["tcp"][0]["route"][0]["weight"], json!(70));
    assert_eq!(stored["spec"]["tcp"][0]["route"][1]["weight"], json!(30));
    let header = StepRoute::Header {
        name: "x-canary".to_owned(),
        value: "1".to_owned(),
    };
    let message = chain(&router.set_canary_route(&header).await.unwrap_err());
    assert!(
        message.contains("tcp routes carry weights only"),
        "{message}"
    );
}

/// Subset routes need a DestinationRule defining both subsets for the destinations' host:
/// checked by the pre-flight read (and before each change), so that a missing one stops the
/// rollout before any weight moves, with a message saying what is missing.
#[tokio::test]
async fn istio_subsets_are_checked_in_their_destination_rule_before_any_weight_moves() {
    let case = crate::support::virtual_service_case();
    let fake = FakeApiServer::start().await;
    fake.insert(virtual_service());
    let router = case.router(&fake);
    // No DestinationRule at all.
    let message = chain(&router.read_back().await.unwrap_err());
    assert!(
        message.contains("DestinationRule shop/checkout")
            && message.contains("does not exist")
            && message.contains("`destination-rule`"),
        "{message}"
    );
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(message.contains("does not exist"), "{message}");
    assert!(fake.requests_with("PATCH").is_empty());

    // One without the canary subset.
    let mut rule = destination_rule();
    rule["spec"]["subsets"].as_array_mut().unwrap().pop();
    fake.insert(rule.clone());
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("defines no subset \"canary\" of host checkout (it defines: stable)"),
        "{message}"
    );
    // One for another host.
    rule["spec"]["host"] = json!("payments.shop.svc.cluster.local");
    fake.replace(rule);
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("is for host \"payments.shop.svc.cluster.local\""),
        "{message}"
    );
    assert!(fake.requests_with("PATCH").is_empty());

    // The right one: the rollout goes on. Its removal mid-rollout is caught at the next change.
    fake.replace(destination_rule());
    set_and_verify(router.as_ref(), 10).await.unwrap();
    fake.remove("networking.istio.io", "destinationrules", NS, "checkout");
    assert!(router.set_canary_weight(20).await.is_err());
    assert_eq!(router.read_back().await.unwrap(), (10, None), "reads go on");

    // Another name, from the policy.
    let mut spec = case.spec.clone();
    if let GatewaySpec::IstioVirtualService(spec) = &mut spec {
        spec.destination_rule = Some("checkout-subsets".to_owned());
    }
    fake.insert(named(destination_rule(), "checkout-subsets"));
    let router = crate::several_routes::router(&spec, &fake);
    set_and_verify(router.as_ref(), 20)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
}
