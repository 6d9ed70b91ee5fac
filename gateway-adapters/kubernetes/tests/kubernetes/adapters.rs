//! Each router against the API fake: the exact PATCH it sends, that nothing but the weights
//! changes (whole objects compared before and after), every weight verified by reading it
//! back, idempotent settings, the retry after a 409 Conflict with a fresh read, the limit of
//! those retries, and what a missing object or backend says.

use canary_core::Error;
use canary_core::ports::set_and_verify;
use serde_json::{Value, json};

use crate::schemas::validate;
use crate::support::{Case, chain, same_version};

/// Runs one adapter through a rollout's weights and a conflict; `first_patch` is the exact
/// body expected for 10 % (its first operation's resourceVersion is the fixture's, "1").
async fn exercise(case: Case, first_patch: Value) {
    let fake = case.fake().await;
    let router = case.router(&fake);
    let before = case.stored(&fake);

    set_and_verify(router.as_ref(), 10)
        .await
        .unwrap_or_else(|e| panic!("{}: set 10%: {}", case.name, chain(&e)));
    let patches = fake.requests_with("PATCH");
    assert_eq!(patches.len(), 1, "{}: {patches:#?}", case.name);
    let patch = &patches[0];
    assert_eq!(patch.content_type, "application/json-patch+json");
    assert!(
        patch.query.contains("fieldManager=canary")
            && patch.query.contains("fieldValidation=Strict"),
        "{}: query {:?}",
        case.name,
        patch.query
    );
    assert_eq!(
        patch.body.as_ref(),
        Some(&first_patch),
        "{}: the PATCH body",
        case.name
    );
    assert_eq!(patch.status, 200);

    // The whole object is as before but for the weights (and the resourceVersion).
    let after = case.stored(&fake);
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(
        after,
        same_version(&case.with_weights(&before, 10), &after),
        "{}",
        case.name
    );
    validate(case.resource, &after);

    for weight in [25u8, 50, 100, 0] {
        set_and_verify(router.as_ref(), weight)
            .await
            .unwrap_or_else(|e| panic!("{}: set {weight}%: {}", case.name, chain(&e)));
        let now = case.stored(&fake);
        assert_eq!(
            now,
            same_version(&case.with_weights(&before, u64::from(weight)), &now),
            "{} at {weight}%",
            case.name
        );
        validate(case.resource, &now);
        assert_eq!(router.canary_weight().await.unwrap(), weight);
    }

    // Setting the weight it has writes nothing.
    fake.clear_requests();
    set_and_verify(router.as_ref(), 0).await.unwrap();
    assert!(
        fake.requests_with("PATCH").is_empty(),
        "{}: wrote an unchanged weight",
        case.name
    );

    // Another writer changes the object between canary's read and its write: the PATCH is
    // refused (409), canary reads again and patches on top of the other change.
    fake.clear_requests();
    fake.interfere_with_next_writes(1);
    set_and_verify(router.as_ref(), 25)
        .await
        .unwrap_or_else(|e| panic!("{}: set 25% through a conflict: {}", case.name, chain(&e)));
    // The requests for the weighted object (ingress-nginx's router also reads the stable
    // Ingress, to check the pair).
    let trace: Vec<(String, u16)> = fake
        .requests()
        .iter()
        .filter(|r| {
            r.path
                .ends_with(&format!("/{}/{}", case.resource, case.object_name))
        })
        .map(|r| (r.method.clone(), r.status))
        .collect();
    let mut expected: Vec<(String, u16)> = [
        ("GET", 200),
        ("PATCH", 409),
        ("GET", 200),
        ("PATCH", 200),
        ("GET", 200),
    ]
    .map(|(m, s)| (m.to_owned(), s))
    .to_vec();
    if case.group == "split.smi-spec.io" {
        // Waiting for Linkerd to apply the weight reads the split's apex Service once.
        expected.insert(4, ("GET".to_owned(), 200));
    }
    assert_eq!(
        trace, expected,
        "{}: get, stale patch, fresh get, patch, read-back",
        case.name
    );
    let patches = fake.requests_with("PATCH");
    let version = |r: &canary_fake_kube_api::Recorded| r.body.as_ref().unwrap()[0]["value"].clone();
    assert_ne!(
        version(&patches[0]),
        version(&patches[1]),
        "the retry read again"
    );
    let after = case.stored(&fake);
    assert!(
        after["metadata"]["annotations"]["other-writer/touched"].is_string(),
        "{}: the other writer's change was lost",
        case.name
    );
    let mut expected = case.with_weights(&before, 25);
    expected["metadata"]["annotations"]["other-writer/touched"] =
        after["metadata"]["annotations"]["other-writer/touched"].clone();
    assert_eq!(after, same_version(&expected, &after), "{}", case.name);
}

#[tokio::test]
async fn httproute_patches_two_backend_weights_of_the_named_rule() {
    exercise(
        crate::support::http_route_case(),
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "add", "path": "/spec/rules/0/backendRefs/0/weight", "value": 90},
            {"op": "add", "path": "/spec/rules/0/backendRefs/1/weight", "value": 10}
        ]),
    )
    .await;
}

#[tokio::test]
async fn nginx_ingress_patches_the_canary_weight_annotation() {
    exercise(
        crate::support::nginx_ingress_case(),
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight", "value": "10"}
        ]),
    )
    .await;
}

#[tokio::test]
async fn istio_virtual_service_patches_two_subset_destinations() {
    exercise(
        crate::support::virtual_service_case(),
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "add", "path": "/spec/http/1/route/0/weight", "value": 90},
            {"op": "add", "path": "/spec/http/1/route/1/weight", "value": 10}
        ]),
    )
    .await;
}

#[tokio::test]
async fn smi_traffic_split_patches_two_backends() {
    exercise(
        crate::support::traffic_split_case(),
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "add", "path": "/spec/backends/0/weight", "value": 90},
            {"op": "add", "path": "/spec/backends/2/weight", "value": 10}
        ]),
    )
    .await;
}

#[tokio::test]
async fn traefik_service_patches_two_weighted_services() {
    exercise(
        crate::support::traefik_service_case(),
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "add", "path": "/spec/weighted/services/0/weight", "value": 90},
            {"op": "add", "path": "/spec/weighted/services/1/weight", "value": 10}
        ]),
    )
    .await;
}

#[tokio::test]
async fn istio_host_routes_work_like_subset_routes() {
    use canary_core::policy::{GatewaySpec, IstioDestination};
    let mut case = crate::support::virtual_service_case();
    let mut object = case.objects[0].clone();
    object["spec"]["http"][1]["route"][0]["destination"] = json!({"host": "checkout-stable"});
    object["spec"]["http"][1]["route"][1]["destination"] =
        json!({"host": "checkout-canary.shop.svc.cluster.local"});
    case.objects = vec![object];
    if let GatewaySpec::IstioVirtualService(spec) = &mut case.spec {
        spec.route = Some(canary_core::policy::RuleRef::Index(1));
        spec.stable = IstioDestination {
            host: "checkout-stable".to_owned(),
            subset: None,
        };
        spec.canary = IstioDestination {
            host: "checkout-canary.shop.svc.cluster.local".to_owned(),
            subset: None,
        };
    }
    exercise(
        case,
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "add", "path": "/spec/http/1/route/0/weight", "value": 90},
            {"op": "add", "path": "/spec/http/1/route/1/weight", "value": 10}
        ]),
    )
    .await;
}

#[tokio::test]
async fn a_weight_total_other_than_100_is_kept() {
    use canary_core::policy::GatewaySpec;
    let case = crate::support::traffic_split_case();
    let mut spec = case.spec.clone();
    if let GatewaySpec::SmiTrafficSplit(s) = &mut spec {
        s.weight_total = 1000;
    }
    let fake = case.fake().await;
    let connection = canary_kubernetes::KubeConnection::from_client(fake.client("shop"), "shop");
    let router = canary_kubernetes::kubernetes_router(&spec, connection).unwrap();
    set_and_verify(router.as_ref(), 25).await.unwrap();
    let stored = case.stored(&fake);
    assert_eq!(stored["spec"]["backends"][0]["weight"], 750);
    assert_eq!(stored["spec"]["backends"][2]["weight"], 250);
    assert_eq!(router.canary_weight().await.unwrap(), 25);
}

#[tokio::test]
async fn a_weight_overridden_by_the_server_fails_verification() {
    // A mutating admission webhook (say) caps the canary's backendRef at weight 5: the
    // write succeeds, the read-back tells the truth, and set_and_verify refuses it.
    let case = crate::support::http_route_case();
    let fake = case.fake().await;
    fake.force_on_write("httproutes", "/spec/rules/0/backendRefs/1/weight", json!(5));
    let router = case.router(&fake);
    let err = set_and_verify(router.as_ref(), 50).await.unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err:?}");
    let message = chain(&err);
    // 5 against the stable 50: about 9 %.
    assert!(
        message.contains("canary weight 50 % was set but 9 % was read back")
            && message.contains("HTTPRoute shop/checkout"),
        "{message}"
    );
}

#[tokio::test]
async fn endless_conflicts_give_up_after_a_bounded_number_of_reads() {
    let case = crate::support::http_route_case();
    let fake = case.fake().await;
    fake.interfere_with_next_writes(100);
    let router = case.router(&fake);
    let err = router.set_canary_weight(10).await.unwrap_err();
    let message = chain(&err);
    assert!(
        message.contains("HTTPRoute shop/checkout")
            && message.contains("still conflicting after 5 fresh reads"),
        "{message}"
    );
    assert_eq!(fake.requests_with("PATCH").len(), 5);
    assert!(fake.requests_with("PATCH").iter().all(|r| r.status == 409));
}

#[tokio::test]
async fn missing_objects_and_backends_are_clear_errors() {
    let case = crate::support::http_route_case();
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    // The CRD is installed; the route is not there.
    fake.serve("gateway.networking.k8s.io", &["v1", "v1beta1"]);
    let router = case.router(&fake);
    let err = router.set_canary_weight(10).await.unwrap_err();
    assert_eq!(err.exit_code(), canary_core::ExitCode::Infrastructure);
    let message = chain(&err);
    assert!(
        message.contains("kubernetes at HTTPRoute shop/checkout: does not exist")
            && message.contains("httproutes.gateway.networking.k8s.io \"checkout\" not found"),
        "{message}"
    );

    // No canary backend in the rule: nothing is written, and the message says what to add.
    let mut route = crate::support::http_route();
    route["spec"]["rules"][0]["backendRefs"]
        .as_array_mut()
        .unwrap()
        .pop();
    fake.insert(route);
    let err = router.set_canary_weight(10).await.unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err:?}");
    let message = chain(&err);
    assert!(
        message.contains(
            "spec.rules[0].backendRefs has no Service checkout-canary in the route's namespace"
        ),
        "{message}"
    );
    assert!(fake.requests_with("PATCH").is_empty());

    // Without a rule name, two rules holding both backends are ambiguous.
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    let mut route = crate::support::http_route();
    let rule = route["spec"]["rules"][0].clone();
    route["spec"]["rules"].as_array_mut().unwrap().push(rule);
    fake.insert(route);
    let mut spec = case.spec.clone();
    if let canary_core::policy::GatewaySpec::HttpRoute(s) = &mut spec {
        s.rule = None;
    }
    let connection = canary_kubernetes::KubeConnection::from_client(fake.client("shop"), "shop");
    let router = canary_kubernetes::kubernetes_router(&spec, connection).unwrap();
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("2 entries of spec.rules hold both backends (indexes 0, 2)"),
        "{message}"
    );
}

#[tokio::test]
async fn another_backend_taking_traffic_is_refused() {
    let case = crate::support::traffic_split_case();
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    let mut split = crate::support::traffic_split();
    split["spec"]["backends"][1]["weight"] = json!(5);
    fake.insert(split);
    let router = case.router(&fake);
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("spec.backends[1] sends traffic to another backend too (weight 5)"),
        "{message}"
    );
}

#[tokio::test]
async fn an_ingress_without_the_canary_annotation_is_not_touched() {
    let case = crate::support::nginx_ingress_case();
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    let mut canary = crate::support::canary_ingress();
    canary["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("nginx.ingress.kubernetes.io/canary");
    fake.insert(canary);
    fake.insert(crate::support::stable_ingress());
    let router = case.router(&fake);
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("is not a canary Ingress: it lacks the annotation nginx.ingress.kubernetes.io/canary: \"true\""),
        "{message}"
    );
    assert!(fake.requests_with("PATCH").is_empty());
}

/// A policy asking for an API version the cluster does not serve is told which versions it
/// does serve, and one naming a router whose CRDs are not installed is told that — not "the
/// object does not exist" (issue 18.5: linkerd-smi serves only v1alpha1 and v1alpha2).
#[tokio::test]
async fn an_api_version_the_cluster_does_not_serve_names_the_ones_it_does() {
    use canary_core::policy::GatewaySpec;
    let mut case = crate::support::traffic_split_case();
    if let GatewaySpec::SmiTrafficSplit(spec) = &mut case.spec {
        spec.api_version = "split.smi-spec.io/v1alpha4".to_owned();
    }
    let fake = case.fake().await;
    fake.serve("split.smi-spec.io", &["v1alpha1", "v1alpha2"]);
    let router = case.router(&fake);
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("TrafficSplit shop/checkout: the cluster serves split.smi-spec.io in v1alpha1, v1alpha2, not split.smi-spec.io/v1alpha4: set `api-version`"),
        "{message}"
    );
    assert!(fake.requests_with("PATCH").is_empty());

    // No CRD at all: the group is not served.
    let case = crate::support::virtual_service_case();
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.serve("networking.istio.io", &[]);
    let router = case.router(&fake);
    let message = chain(&router.canary_weight().await.unwrap_err());
    assert!(
        message.contains(
            "the cluster serves no networking.istio.io API: install its CustomResourceDefinitions"
        ),
        "{message}"
    );

    // A served version and a missing object is still "does not exist".
    let case = crate::support::traffic_split_case();
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.serve("split.smi-spec.io", &["v1alpha2"]);
    let message = chain(&case.router(&fake).canary_weight().await.unwrap_err());
    assert!(message.contains("does not exist"), "{message}");
}

/// The versions and prefixes the policy names are the ones used: an Istio VirtualService
/// asked in `v1beta1` (Istio before 1.22), and ingress-nginx annotations under the
/// controller's own `--annotations-prefix`.
#[tokio::test]
async fn the_policys_api_version_and_annotation_prefix_are_the_ones_used() {
    use canary_core::policy::GatewaySpec;
    let mut case = crate::support::virtual_service_case();
    if let GatewaySpec::IstioVirtualService(spec) = &mut case.spec {
        spec.api_version = "networking.istio.io/v1beta1".to_owned();
    }
    let mut service = case.objects[0].clone();
    service["apiVersion"] = json!("networking.istio.io/v1beta1");
    let mut rule = crate::support::destination_rule();
    rule["apiVersion"] = json!("networking.istio.io/v1beta1");
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(service);
    fake.insert(rule);
    let router = case.router(&fake);
    set_and_verify(router.as_ref(), 25)
        .await
        .unwrap_or_else(|e| panic!("v1beta1: {}", chain(&e)));
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path.starts_with("/apis/networking.istio.io/v1beta1/")),
        "{:#?}",
        fake.requests()
    );

    let mut case = crate::support::nginx_ingress_case();
    if let GatewaySpec::NginxIngress(spec) = &mut case.spec {
        spec.annotation_prefix = "ingress.example.com".to_owned();
    }
    let mut canary = crate::support::canary_ingress();
    let annotations = canary["metadata"]["annotations"].as_object_mut().unwrap();
    annotations.clear();
    annotations.insert("ingress.example.com/canary".to_owned(), json!("true"));
    annotations.insert("ingress.example.com/canary-weight".to_owned(), json!("0"));
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(canary);
    fake.insert(crate::support::stable_ingress());
    let router = case.router(&fake);
    set_and_verify(router.as_ref(), 10)
        .await
        .unwrap_or_else(|e| panic!("prefix: {}", chain(&e)));
    let annotations = case.stored(&fake)["metadata"]["annotations"].clone();
    assert_eq!(
        annotations,
        json!({"ingress.example.com/canary": "true", "ingress.example.com/canary-weight": "10"})
    );
    // An Ingress marked only under the default prefix is not a canary for this controller.
    let fake = case.fake().await;
    let message = chain(&case.router(&fake).set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("lacks the annotation ingress.example.com/canary: \"true\""),
        "{message}"
    );
}

/// An HTTPRoute its gateway does not apply — a backend that does not resolve, a route not
/// accepted — is an error naming the parent and the condition, not a confirmed weight; the
/// conditions of an older generation (the controller not caught up yet) are not held
/// against it (issue 18.2).
#[tokio::test]
async fn an_httproute_its_gateway_does_not_apply_is_an_error_not_a_weight() {
    let case = crate::support::http_route_case();
    let status = |observed: i64| {
        json!({"parents": [{
            "parentRef": {"name": "web", "namespace": "infra"},
            "controllerName": "example.com/gateway",
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": observed,
                 "lastTransitionTime": "2026-01-01T00:00:00Z", "message": ""},
                {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "observedGeneration": observed,
                 "lastTransitionTime": "2026-01-01T00:00:00Z", "message": "Service checkout-canary not found"}
            ]
        }]})
    };
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    let mut route = case.objects[0].clone();
    route["status"] = status(1);
    fake.insert(route);
    let router = case.router(&fake);
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("its gateway does not apply it: parent web: ResolvedRefs is False (BackendNotFound: Service checkout-canary not found)"),
        "{message}"
    );
    assert!(fake.requests_with("PATCH").is_empty());
    assert!(router.canary_weight().await.is_err(), "no weight read back");

    // Conditions of generation 0 while the route is at 1: not yet reported, not held.
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    let mut route = case.objects[0].clone();
    route["status"] = status(0);
    fake.insert(route);
    set_and_verify(case.router(&fake).as_ref(), 10)
        .await
        .unwrap_or_else(|e| panic!("stale conditions: {}", chain(&e)));
}

/// A canary Ingress that ingress-nginx would not pair with the stable one — a path the
/// stable Ingress does not serve, another ingress class — is an error saying so, before any
/// weight is written and at every read-back (issue 18.2: ingress-nginx ignores it silently).
#[tokio::test]
async fn a_canary_ingress_ingress_nginx_would_not_pair_is_an_error() {
    let case = crate::support::nginx_ingress_case();
    for (pointer, value, expected) in [
        (
            "/spec/rules/0/http/paths/0/path",
            json!("/api/v2"),
            "serves shop.example/api/v2 that Ingress checkout does not",
        ),
        (
            "/spec/rules/0/host",
            json!("beta.shop.example"),
            "serves beta.shop.example/api that Ingress checkout does not",
        ),
        (
            "/spec/ingressClassName",
            json!("internal"),
            "its ingressClassName is internal, Ingress checkout's is nginx",
        ),
    ] {
        let fake = canary_fake_kube_api::FakeApiServer::start().await;
        let mut canary = crate::support::canary_ingress();
        *canary.pointer_mut(pointer).unwrap() = value;
        fake.insert(canary);
        fake.insert(crate::support::stable_ingress());
        let router = case.router(&fake);
        let message = chain(&router.set_canary_weight(10).await.unwrap_err());
        assert!(message.contains(expected), "{pointer}: {message}");
        assert!(fake.requests_with("PATCH").is_empty(), "{pointer}");
        let message = chain(&router.canary_weight().await.unwrap_err());
        assert!(message.contains(expected), "{pointer}: {message}");
    }
}

/// An HTTPRoute using experimental-channel features (an `ExternalAuth` filter, fields this
/// version of the Gateway API types does not know) has its weights set like any other, and
/// everything canary does not change passes through untouched (issue 18.4: the typed read
/// refused it with `unknown variant 'ExternalAuth'`).
#[tokio::test]
async fn an_experimental_channel_httproute_is_weighted_and_its_unknown_parts_kept() {
    let case = crate::support::http_route_case();
    let mut route = case.objects[0].clone();
    route["spec"]["rules"][0]["filters"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "type": "ExternalAuth",
            "externalAuth": {"protocol": "HTTP", "backendRef": {"name": "auth", "port": 9000}}
        }));
    route["spec"]["rules"][1]["sessionPersistence"] = json!({"type": "Cookie", "sessionName": "s"});
    route["spec"]["rules"][0]["backendRefs"][1]["someFutureField"] = json!({"x": 1});
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(route);
    let router = case.router(&fake);
    let before = case.stored(&fake);
    for weight in [10u8, 25, 100, 0] {
        set_and_verify(router.as_ref(), weight)
            .await
            .unwrap_or_else(|e| panic!("set {weight}%: {}", chain(&e)));
        let after = case.stored(&fake);
        assert_eq!(
            after,
            same_version(&case.with_weights(&before, u64::from(weight)), &after),
            "only the two weights changed at {weight}%"
        );
    }
}

/// ingress-nginx reads a missing `canary-weight-total` as 100. A policy with another total
/// must write that total with the first weight, and a weight found without the annotation is
/// read out of 100, as ingress-nginx serves it (issue 18.1: 10 % of 1000 written as
/// `canary-weight: "100"` alone sent every request to the canary while canary read 10 %).
#[tokio::test]
async fn a_canary_ingress_without_a_weight_total_is_read_out_of_100_and_given_the_policys_total() {
    use canary_core::policy::GatewaySpec;
    const TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";
    const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
    let mut case = crate::support::nginx_ingress_case();
    if let GatewaySpec::NginxIngress(spec) = &mut case.spec {
        spec.weight_total = 1000;
    }

    // A weight left by hand, without the total: ingress-nginx sends 100 of 100 to the canary.
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    let mut canary = crate::support::canary_ingress();
    canary["metadata"]["annotations"][WEIGHT] = json!("100");
    fake.insert(canary);
    fake.insert(crate::support::stable_ingress());
    let router = case.router(&fake);
    assert_eq!(
        router.canary_weight().await.unwrap(),
        100,
        "read out of 100"
    );

    // Setting 10 % writes the policy's total beside the weight, and reads back 10 %.
    set_and_verify(router.as_ref(), 10)
        .await
        .unwrap_or_else(|e| panic!("set 10%: {}", chain(&e)));
    let annotations = case.stored(&fake)["metadata"]["annotations"].clone();
    assert_eq!(annotations[TOTAL], json!("1000"), "{annotations:#}");
    assert_eq!(annotations[WEIGHT], json!("100"), "{annotations:#}");
    // From then on only the weight changes, and a weight already held sends nothing.
    set_and_verify(router.as_ref(), 25).await.unwrap();
    set_and_verify(router.as_ref(), 25).await.unwrap();
    let patches = fake.requests_with("PATCH");
    assert_eq!(patches.len(), 2, "{patches:#?}");
    assert_eq!(
        patches[1].body.as_ref().unwrap()[1],
        json!({"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight", "value": "250"})
    );

    // With the default total of 100 nothing but the weight is ever written.
    let case = crate::support::nginx_ingress_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    set_and_verify(router.as_ref(), 10).await.unwrap();
    let annotations = case.stored(&fake)["metadata"]["annotations"].clone();
    assert!(annotations.get(TOTAL).is_none(), "{annotations:#}");

    // A total that disagrees with the policy's is refused, untouched.
    let mut case = crate::support::nginx_ingress_case();
    if let GatewaySpec::NginxIngress(spec) = &mut case.spec {
        spec.weight_total = 1000;
    }
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    let mut canary = crate::support::canary_ingress();
    canary["metadata"]["annotations"][TOTAL] = json!("10000");
    fake.insert(canary);
    fake.insert(crate::support::stable_ingress());
    let router = case.router(&fake);
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("canary-weight-total is 10000, the policy's weight-total is 1000"),
        "{message}"
    );
    assert!(fake.requests_with("PATCH").is_empty());
}

#[tokio::test]
async fn the_canary_ingress_is_created_from_the_stable_one_when_asked() {
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(crate::support::stable_ingress());
    let stable_before = fake
        .object("networking.k8s.io", "ingresses", "shop", "checkout")
        .unwrap();
    let connection = canary_kubernetes::KubeConnection::from_client(fake.client("shop"), "shop");
    let router =
        canary_kubernetes::kubernetes_router(&crate::support::nginx_ingress_spec(true), connection)
            .unwrap();
    set_and_verify(router.as_ref(), 10).await.unwrap();

    let posts = fake.requests_with("POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].path,
        "/apis/networking.k8s.io/v1/namespaces/shop/ingresses"
    );
    assert!(posts[0].query.contains("fieldManager=canary"));
    let body = posts[0].body.clone().unwrap();
    // What was sent is an Ingress as k8s-openapi knows it, field for field.
    crate::schemas::round_trips::<k8s_openapi::api::networking::v1::Ingress>(
        &body,
        "the created Ingress",
    );
    let mut expected = crate::support::stable_ingress();
    expected["metadata"] = json!({
        "name": "checkout-canary",
        "namespace": "shop",
        "labels": {"app": "checkout", "app.kubernetes.io/managed-by": "canary"},
        "annotations": {
            "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "10"
        }
    });
    expected["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] =
        json!("checkout-canary");
    assert_eq!(body, expected);
    // The stable Ingress is only read.
    assert_eq!(
        fake.object("networking.k8s.io", "ingresses", "shop", "checkout")
            .unwrap(),
        stable_before
    );
    // From then on, the annotation is patched as usual.
    set_and_verify(router.as_ref(), 50).await.unwrap();
    assert_eq!(fake.requests_with("POST").len(), 1);
    let canary = fake
        .object("networking.k8s.io", "ingresses", "shop", "checkout-canary")
        .unwrap();
    assert_eq!(
        canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
        "50"
    );

    // Without `create-canary`, a missing canary Ingress is an error that says so.
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(crate::support::stable_ingress());
    let router = crate::support::nginx_ingress_case().router(&fake);
    let message = chain(&router.set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("kubernetes at Ingress shop/checkout-canary: does not exist")
            && message.contains("set `create-canary`"),
        "{message}"
    );
}

/// With Linkerd, a TrafficSplit's weights reach the proxies only through the ServiceProfile
/// linkerd-smi writes from it (issue 18.2). A weight counts once that profile shows it: an
/// adaptor that is not running, a profile it skips, or one that still shows the old weights
/// is an error or a drifted weight, never a confirmed one.
#[tokio::test]
async fn a_traffic_split_linkerd_has_not_applied_is_not_a_confirmed_weight() {
    use canary_core::policy::{AppliedBy, GatewaySpec};
    let case = crate::support::traffic_split_case();
    let profile = |fake: &canary_fake_kube_api::FakeApiServer| {
        fake.object(
            "linkerd.io",
            "serviceprofiles",
            "shop",
            "checkout.shop.svc.cluster.local",
        )
    };

    // The adaptor applies: the profile's share is the weight, in the adaptor's terms.
    let fake = case.fake().await;
    let router = case.router(&fake);
    set_and_verify(router.as_ref(), 10).await.unwrap();
    let applied = profile(&fake).expect("linkerd-smi made the profile");
    assert_eq!(
        applied["spec"]["dstOverrides"][2],
        json!({"authority": "checkout-canary.shop.svc.cluster.local", "weight": "10"})
    );

    // The adaptor stops (its pod is gone): the next weight is written to the TrafficSplit
    // but never applied, so setting it fails after the wait and the weight read back is the
    // one Linkerd still serves — drift for the driver to see.
    fake.stop_linkerd_smi_adaptor();
    let message = chain(&router.set_canary_weight(25).await.unwrap_err());
    assert!(
        message.contains("Linkerd did not apply the canary's 25 % within 1s")
            && message.contains("it still gives the canary 10 %"),
        "{message}"
    );
    assert_eq!(case.stored(&fake)["spec"]["backends"][2]["weight"], 25);
    assert_eq!(router.canary_weight().await.unwrap(), 10);

    // No adaptor at all: no profile, and the message says what makes one.
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(case.objects[0].clone());
    let message = chain(&case.router(&fake).set_canary_weight(10).await.unwrap_err());
    assert!(
        message.contains("ServiceProfile shop/checkout.shop.svc.cluster.local")
            && message.contains("is the SMI extension installed"),
        "{message}"
    );
    assert!(case.router(&fake).canary_weight().await.is_err());

    // A profile the adaptor skips.
    let fake = case.fake().await;
    fake.insert(json!({
        "apiVersion": "linkerd.io/v1alpha2",
        "kind": "ServiceProfile",
        "metadata": {"name": "checkout.shop.svc.cluster.local", "namespace": "shop",
                     "annotations": {"smi.linkerd.io/skip": "true"}},
        "spec": {"dstOverrides": [
            {"authority": "checkout-stable.shop.svc.cluster.local", "weight": "100"}
        ]}
    }));
    let message = chain(&case.router(&fake).set_canary_weight(10).await.unwrap_err());
    assert!(message.contains("smi.linkerd.io/skip"), "{message}");

    // `service-profile: false` (another SMI implementation): the TrafficSplit alone counts.
    let mut spec = case.spec.clone();
    if let GatewaySpec::SmiTrafficSplit(split) = &mut spec {
        split.applied_by = AppliedBy::TrafficSplit { default: false };
    }
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(case.objects[0].clone());
    let connection = canary_kubernetes::KubeConnection::from_client(fake.client("shop"), "shop");
    let router = canary_kubernetes::kubernetes_router(&spec, connection).unwrap();
    set_and_verify(router.as_ref(), 10).await.unwrap();
    assert!(profile(&fake).is_none());
}
