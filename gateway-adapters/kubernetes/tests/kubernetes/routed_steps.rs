//! Routed steps against the API fake (issue 18): an HTTPRoute header rule and RequestMirror
//! filter, ingress-nginx `canary-by-header` / `canary-by-cookie` (with the policy's
//! annotation prefix), Istio header/cookie routes and mirrors — written, read back,
//! idempotent, removed by a plain weight, schema-valid, and a GitOps sync that takes them away is read back as their absence (the machine's drift).

use canary_core::policy::{GatewaySpec, StepRoute};
use canary_core::ports::{set_and_verify, set_and_verify_route};
use canary_kubernetes::{MATCH_ROUTE_NAME, ROUTE_ANNOTATION};
use serde_json::{Value, json};

use crate::schemas::validate;
use crate::support::{Case, chain, same_version};

fn header() -> StepRoute {
    StepRoute::Header {
        name: "x-canary".to_owned(),
        value: "1".to_owned(),
    }
}

/// `object` as canary leaves it once a route it wrote is gone again: the weights at
/// `percent`, nothing else changed.
fn expect_plain(case: &Case, original: &Value, stored: &Value, percent: u64) {
    assert_eq!(
        *stored,
        same_version(&case.with_weights(original, percent), stored),
        "{}: a plain weight leaves nothing of the route behind",
        case.name
    );
}

#[tokio::test]
async fn an_httproute_header_step_adds_one_rule_to_the_canary_and_a_weight_removes_it() {
    let case = crate::support::http_route_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let original = case.stored(&fake);

    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap_or_else(|e| panic!("header step: {}", chain(&e)));
    let stored = case.stored(&fake);
    validate(case.resource, &stored);
    let rules = stored["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3, "{stored:#}");
    // The weighted rule's matches with the header added, its filters, the canary backend
    // alone (with its own filters), no rule name (names are unique).
    assert_eq!(
        rules[2],
        json!({
            "matches": [{
                "path": {"type": "PathPrefix", "value": "/api"},
                "headers": [{"type": "Exact", "name": "x-canary", "value": "1"}]
            }],
            "filters": [{
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"add": [{"name": "x-route", "value": "api"}]}
            }],
            "backendRefs": [{
                "name": "checkout-canary", "port": 8080,
                "filters": [{
                    "type": "ResponseHeaderModifier",
                    "responseHeaderModifier": {"set": [{"name": "x-canary", "value": "1"}]}
                }]
            }]
        })
    );
    // Everything else: the weights at 0 and the mark, nothing more.
    let mut expected = case.with_weights(&original, 0);
    expected["spec"]["rules"]
        .as_array_mut()
        .unwrap()
        .push(rules[2].clone());
    expected["metadata"]["annotations"][ROUTE_ANNOTATION] =
        json!(r#"{"header":{"name":"x-canary","value":"1"}}"#);
    assert_eq!(stored, same_version(&expected, &stored));
    assert_eq!(router.read_back().await.unwrap(), (0, Some(header())));

    // Setting it again writes nothing.
    fake.clear_requests();
    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap();
    assert!(
        fake.requests_with("PATCH").is_empty(),
        "wrote an unchanged route"
    );

    // A plain weight takes the rule and the mark away in the same patch.
    set_and_verify(router.as_ref(), 10).await.unwrap();
    assert_eq!(fake.requests_with("PATCH").len(), 1);
    let stored = case.stored(&fake);
    expect_plain(&case, &original, &stored, 10);
    assert_eq!(router.read_back().await.unwrap(), (10, None));
}

#[tokio::test]
async fn an_httproute_mirror_step_adds_a_request_mirror_with_its_percent() {
    let case = crate::support::http_route_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let original = case.stored(&fake);
    let mirror = StepRoute::Mirror { percent: 20 };

    set_and_verify_route(router.as_ref(), &mirror)
        .await
        .unwrap_or_else(|e| panic!("mirror step: {}", chain(&e)));
    let stored = case.stored(&fake);
    validate(case.resource, &stored);
    let filters = stored["spec"]["rules"][0]["filters"].as_array().unwrap();
    assert_eq!(
        filters.last().unwrap(),
        &json!({
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "checkout-canary", "port": 8080}, "percent": 20}
        })
    );
    assert_eq!(router.read_back().await.unwrap(), (0, Some(mirror.clone())));

    // Another share replaces the filter rather than adding a second mirror.
    let all = StepRoute::Mirror { percent: 100 };
    set_and_verify_route(router.as_ref(), &all).await.unwrap();
    let stored = case.stored(&fake);
    let filters = stored["spec"]["rules"][0]["filters"].as_array().unwrap();
    assert_eq!(filters.len(), 2, "{filters:#?}");
    // All requests: the standard field's default, no `percent` written.
    assert_eq!(
        filters[1]["requestMirror"],
        json!({"backendRef": {"name": "checkout-canary", "port": 8080}})
    );

    // From a mirror straight to a header step: the filter goes, the rule comes.
    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap();
    let stored = case.stored(&fake);
    assert_eq!(
        stored["spec"]["rules"][0]["filters"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(stored["spec"]["rules"].as_array().unwrap().len(), 3);

    set_and_verify(router.as_ref(), 50).await.unwrap();
    expect_plain(&case, &original, &case.stored(&fake), 50);
}

/// A header rule or mirror the user wrote is not canary's: never read as its route, never
/// removed by a weight.
#[tokio::test]
async fn an_httproute_route_the_user_wrote_is_left_alone() {
    let case = crate::support::http_route_case();
    let mut route = crate::support::http_route();
    route["spec"]["rules"].as_array_mut().unwrap().push(json!({
        "matches": [{
            "path": {"type": "PathPrefix", "value": "/api"},
            "headers": [{"type": "Exact", "name": "x-tester", "value": "yes"}]
        }],
        "backendRefs": [{"name": "checkout-canary", "port": 8080}]
    }));
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(route);
    let router = case.router(&fake);
    let original = case.stored(&fake);
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify(router.as_ref(), 25).await.unwrap();
    expect_plain(&case, &original, &case.stored(&fake), 25);
}

/// A GitOps sync (Argo CD self-heal, Flux) puts the Git version back: the rule and the mark
/// are gone, which the read-back says (the machine calls it drift and sets the route again).
#[tokio::test]
async fn a_gitops_sync_that_removes_the_route_reads_back_as_no_route() {
    let case = crate::support::http_route_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let original = case.stored(&fake);
    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap();
    fake.replace(original.clone());
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap_or_else(|e| panic!("repair: {}", chain(&e)));
    assert_eq!(router.read_back().await.unwrap(), (0, Some(header())));

    // Only the rule removed, the mark kept (a partial revert): still no route.
    let mut stored = case.stored(&fake);
    stored["spec"]["rules"].as_array_mut().unwrap().pop();
    fake.replace(stored);
    assert_eq!(router.read_back().await.unwrap(), (0, None));
}

/// GitOps changes the weighted rule's matches during a header step: canary's header rule is
/// no longer a copy of them, so it does not carry the step (drift), and it is still found as
/// canary's (by its shape and the mark) — replaced by the repair, removed by a rollback's
/// plain weight. Review finding of 2026-12-01: it was orphaned, a second rule added beside it,
/// and after the rollback requests with the header still went to the canary.
#[tokio::test]
async fn a_header_rule_whose_weighted_rule_changed_is_replaced_not_orphaned() {
    let case = crate::support::http_route_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let original = case.stored(&fake);
    let rules = original["spec"]["rules"].as_array().unwrap().len();
    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap();
    let mut synced = case.stored(&fake);
    synced["spec"]["rules"][0]["matches"] =
        json!([{"path": {"type": "PathPrefix", "value": "/v2"}}]);
    fake.replace(synced);
    assert_eq!(router.read_back().await.unwrap(), (0, None), "not carried");
    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap_or_else(|e| panic!("repair: {}", chain(&e)));
    let stored = case.stored(&fake);
    assert_eq!(
        stored["spec"]["rules"].as_array().unwrap().len(),
        rules + 1,
        "one header rule, the old one replaced: {stored:#}"
    );
    assert_eq!(router.read_back().await.unwrap(), (0, Some(header())));
    // The rollback: a plain weight leaves no header rule.
    let mut synced = case.stored(&fake);
    synced["spec"]["rules"][0]["matches"] =
        json!([{"path": {"type": "PathPrefix", "value": "/v3"}}]);
    fake.replace(synced);
    set_and_verify(router.as_ref(), 0).await.unwrap();
    let stored = case.stored(&fake);
    assert_eq!(
        stored["spec"]["rules"].as_array().unwrap().len(),
        rules,
        "no header rule left after the rollback: {stored:#}"
    );
}

#[tokio::test]
async fn an_httproute_refuses_a_cookie_step_by_name() {
    let case = crate::support::http_route_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let cookie = StepRoute::Cookie {
        name: "canary".to_owned(),
    };
    let message = chain(&router.set_canary_route(&cookie).await.unwrap_err());
    assert!(message.contains("cannot route by cookie"), "{message}");
    assert!(fake.requests_with("PATCH").is_empty());
}

/// The canary Ingress without a request rule of the user's (the fixture's testers' header
/// removed), under the policy's annotation prefix.
fn nginx_case(prefix: &str) -> (Case, Value) {
    let mut case = crate::support::nginx_ingress_case();
    if let GatewaySpec::NginxIngress(spec) = &mut case.spec {
        spec.annotation_prefix = prefix.to_owned();
    }
    let mut canary = crate::support::canary_ingress();
    canary["metadata"]["annotations"] = json!({
        format!("{prefix}/canary"): "true",
        format!("{prefix}/canary-weight"): "0",
    });
    (case, canary)
}

#[tokio::test]
async fn ingress_nginx_header_and_cookie_steps_write_the_by_annotations_under_the_prefix() {
    for prefix in ["nginx.ingress.kubernetes.io", "ingress.example.com"] {
        let (case, canary) = nginx_case(prefix);
        let fake = canary_fake_kube_api::FakeApiServer::start().await;
        fake.insert(canary);
        fake.insert(crate::support::stable_ingress());
        let router = case.router(&fake);

        set_and_verify_route(router.as_ref(), &header())
            .await
            .unwrap_or_else(|e| panic!("{prefix}: header step: {}", chain(&e)));
        let stored = case.stored(&fake);
        validate(case.resource, &stored);
        assert_eq!(
            stored["metadata"]["annotations"],
            json!({
                format!("{prefix}/canary"): "true",
                format!("{prefix}/canary-weight"): "0",
                format!("{prefix}/canary-by-header"): "x-canary",
                format!("{prefix}/canary-by-header-value"): "1",
                ROUTE_ANNOTATION: r#"{"header":{"name":"x-canary","value":"1"}}"#,
            }),
            "{prefix}"
        );
        assert_eq!(router.read_back().await.unwrap(), (0, Some(header())));

        let cookie = StepRoute::Cookie {
            name: "canary".to_owned(),
        };
        set_and_verify_route(router.as_ref(), &cookie)
            .await
            .unwrap_or_else(|e| panic!("{prefix}: cookie step: {}", chain(&e)));
        assert_eq!(
            case.stored(&fake)["metadata"]["annotations"],
            json!({
                format!("{prefix}/canary"): "true",
                format!("{prefix}/canary-weight"): "0",
                format!("{prefix}/canary-by-cookie"): "canary",
                ROUTE_ANNOTATION: r#"{"cookie":{"name":"canary"}}"#,
            }),
            "{prefix}"
        );

        set_and_verify(router.as_ref(), 25).await.unwrap();
        assert_eq!(
            case.stored(&fake)["metadata"]["annotations"],
            json!({
                format!("{prefix}/canary"): "true",
                format!("{prefix}/canary-weight"): "25",
            }),
            "{prefix}: a plain weight removes the request rules canary wrote"
        );
        assert_eq!(router.read_back().await.unwrap(), (25, None));
    }
}

/// The fixture's canary Ingress carries the testers' own `canary-by-header`: weights leave
/// it alone (as before), and a header step refuses to overwrite it rather than take it over.
#[tokio::test]
async fn ingress_nginx_keeps_the_users_own_request_rule_and_refuses_to_overwrite_it() {
    let case = crate::support::nginx_ingress_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let original = case.stored(&fake);
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify(router.as_ref(), 10).await.unwrap();
    expect_plain(&case, &original, &case.stored(&fake), 10);
    fake.clear_requests();
    let message = chain(&router.set_canary_route(&header()).await.unwrap_err());
    assert!(
        message.contains("already routes by request on its own")
            && message.contains("x-canary: always"),
        "{message}"
    );
    assert!(fake.requests_with("PATCH").is_empty());
}

#[tokio::test]
async fn an_istio_mirror_step_sets_mirror_and_its_percentage_on_the_weighted_route() {
    let case = crate::support::virtual_service_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let original = case.stored(&fake);
    let mirror = StepRoute::Mirror { percent: 30 };

    set_and_verify_route(router.as_ref(), &mirror)
        .await
        .unwrap_or_else(|e| panic!("istio mirror: {}", chain(&e)));
    let stored = case.stored(&fake);
    validate(case.resource, &stored);
    let mut expected = case.with_weights(&original, 0);
    expected["spec"]["http"][1]["mirror"] = json!({"host": "checkout", "subset": "canary"});
    expected["spec"]["http"][1]["mirrorPercentage"] = json!({"value": 30.0});
    expected["metadata"]["annotations"][ROUTE_ANNOTATION] = json!(r#"{"mirror":{"percent":30}}"#);
    assert_eq!(stored, same_version(&expected, &stored));
    assert_eq!(router.read_back().await.unwrap(), (0, Some(mirror)));

    // All of it: no percentage (Istio's default is 100 %).
    let all = StepRoute::Mirror { percent: 100 };
    set_and_verify_route(router.as_ref(), &all).await.unwrap();
    assert!(
        case.stored(&fake)["spec"]["http"][1]
            .get("mirrorPercentage")
            .is_none()
    );

    set_and_verify(router.as_ref(), 10).await.unwrap();
    let stored = case.stored(&fake);
    expect_plain(&case, &original, &stored, 10);
    assert_eq!(router.read_back().await.unwrap(), (10, None));
}

/// The route an Istio header or cookie step inserts before the fixture's weighted route
/// (`primary`, which has no match of its own: every request): its retries and timeout, the
/// step's condition, the canary destination alone (its port and response headers kept).
fn istio_match_route(headers: Value) -> Value {
    json!({
        "name": MATCH_ROUTE_NAME,
        "retries": {"attempts": 3, "perTryTimeout": "2s"},
        "timeout": "10s",
        "match": [{"headers": headers}],
        "route": [{
            "destination": {"host": "checkout", "subset": "canary", "port": {"number": 8080}},
            "headers": {"response": {"set": {"x-canary": "1"}}}
        }]
    })
}

#[tokio::test]
async fn an_istio_header_step_inserts_a_route_to_the_canary_before_the_weighted_one() {
    let case = crate::support::virtual_service_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let original = case.stored(&fake);
    // Upper case in the policy: Istio wants header names in lower case.
    let step = StepRoute::Header {
        name: "X-Canary".to_owned(),
        value: "yes".to_owned(),
    };

    set_and_verify_route(router.as_ref(), &step)
        .await
        .unwrap_or_else(|e| panic!("istio header step: {}", chain(&e)));
    let stored = case.stored(&fake);
    validate(case.resource, &stored);
    // The user's own `testers` route first, untouched; canary's route; the weighted one at 0.
    let mut expected = case.with_weights(&original, 0);
    expected["spec"]["http"]
        .as_array_mut()
        .unwrap()
        .insert(1, istio_match_route(json!({"x-canary": {"exact": "yes"}})));
    expected["metadata"]["annotations"][ROUTE_ANNOTATION] =
        json!(r#"{"header":{"name":"X-Canary","value":"yes"}}"#);
    assert_eq!(stored, same_version(&expected, &stored));
    assert_eq!(router.read_back().await.unwrap(), (0, Some(step.clone())));

    // Again: nothing written.
    fake.clear_requests();
    set_and_verify_route(router.as_ref(), &step).await.unwrap();
    assert!(
        fake.requests_with("PATCH").is_empty(),
        "wrote an unchanged route"
    );

    // A header step to a mirror step: the inserted route goes, the mirror comes, one patch.
    let mirror = StepRoute::Mirror { percent: 30 };
    set_and_verify_route(router.as_ref(), &mirror)
        .await
        .unwrap();
    assert_eq!(fake.requests_with("PATCH").len(), 1);
    let stored = case.stored(&fake);
    let http = stored["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 2, "{stored:#}");
    assert_eq!(
        http[1]["mirror"],
        json!({"host": "checkout", "subset": "canary"})
    );

    // And back to a header step, then a plain weight: nothing of either is left.
    set_and_verify_route(router.as_ref(), &step).await.unwrap();
    let stored = case.stored(&fake);
    assert!(
        stored["spec"]["http"][2].get("mirror").is_none(),
        "{stored:#}"
    );
    assert_eq!(stored["spec"]["http"].as_array().unwrap().len(), 3);
    set_and_verify(router.as_ref(), 10).await.unwrap();
    expect_plain(&case, &original, &case.stored(&fake), 10);
    assert_eq!(router.read_back().await.unwrap(), (10, None));
}

/// canary's match route after the weighted one is never reached (Istio serves a request by
/// the first route that matches): it is not read back as carrying the step, so it is drift,
/// and setting the step again puts the route before the weighted one (review finding of
/// 2026-12-01: it was read back as carried).
#[tokio::test]
async fn an_istio_match_route_moved_after_the_weighted_one_is_not_a_carried_step() {
    let case = crate::support::virtual_service_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let step = StepRoute::Header {
        name: "x-canary".to_owned(),
        value: "yes".to_owned(),
    };
    set_and_verify_route(router.as_ref(), &step).await.unwrap();
    let mut moved = case.stored(&fake);
    assert_eq!(
        moved["spec"]["http"][1]["name"], MATCH_ROUTE_NAME,
        "{moved:#}"
    );
    moved["spec"]["http"].as_array_mut().unwrap().swap(1, 2);
    fake.insert(moved);
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify_route(router.as_ref(), &step).await.unwrap();
    let stored = case.stored(&fake);
    let http = stored["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 3, "{stored:#}");
    assert_eq!(http[1]["name"], MATCH_ROUTE_NAME, "{stored:#}");
    assert_eq!(router.read_back().await.unwrap(), (0, Some(step)));
}

/// A cookie step matches `NAME=always` anywhere in the Cookie header (ingress-nginx's
/// convention); the weighted route's own matches are kept, each with the condition added.
#[tokio::test]
async fn an_istio_cookie_step_adds_the_cookie_condition_to_each_of_the_weighted_routes_matches() {
    let case = crate::support::virtual_service_case();
    let mut vs = crate::support::virtual_service();
    vs["spec"]["http"][1]["match"] = json!([
        {"uri": {"prefix": "/api"}},
        {"uri": {"prefix": "/v2"}, "headers": {"x-tenant": {"exact": "a"}}}
    ]);
    let fake = canary_fake_kube_api::FakeApiServer::start().await;
    fake.insert(vs);
    fake.insert(crate::support::destination_rule());
    let router = case.router(&fake);
    let cookie = StepRoute::Cookie {
        name: "canary".to_owned(),
    };
    set_and_verify_route(router.as_ref(), &cookie)
        .await
        .unwrap_or_else(|e| panic!("istio cookie step: {}", chain(&e)));
    let stored = case.stored(&fake);
    validate(case.resource, &stored);
    let regex = r"^(.*?;\s*)?(canary=always)(;.*)?$";
    assert_eq!(
        stored["spec"]["http"][1]["match"],
        json!([
            {"uri": {"prefix": "/api"}, "headers": {"cookie": {"regex": regex}}},
            {"uri": {"prefix": "/v2"}, "headers": {"x-tenant": {"exact": "a"}, "cookie": {"regex": regex}}}
        ])
    );
    assert_eq!(router.read_back().await.unwrap(), (0, Some(cookie.clone())));

    // The user edits the weighted route's matches (GitOps): canary's route no longer
    // matches what the weighted route serves, which reads back as no route (drift), and
    // setting the step again replaces it rather than adding a second one.
    let mut edited = case.stored(&fake);
    edited["spec"]["http"][2]["match"] = json!([{"uri": {"prefix": "/api"}}]);
    fake.replace(edited);
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify_route(router.as_ref(), &cookie)
        .await
        .unwrap();
    let stored = case.stored(&fake);
    let http = stored["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 3, "{stored:#}");
    assert_eq!(
        http[1]["match"],
        json!([{"uri": {"prefix": "/api"}, "headers": {"cookie": {"regex": regex}}}])
    );
}

/// A GitOps sync puts the Git version back: the inserted route and the mark are gone, which
/// reads back as no route; the repair inserts it again. The user's own `testers` route, the
/// same requests to the same canary, is never taken for canary's.
#[tokio::test]
async fn an_istio_match_route_reverted_by_gitops_reads_back_as_none_and_is_repaired() {
    let case = crate::support::virtual_service_case();
    let fake = case.fake().await;
    let router = case.router(&fake);
    let original = case.stored(&fake);
    // The testers' route sends `x-canary: 1` to the canary already: not canary's route.
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap();
    fake.replace(original.clone());
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    set_and_verify_route(router.as_ref(), &header())
        .await
        .unwrap_or_else(|e| panic!("repair: {}", chain(&e)));
    assert_eq!(router.read_back().await.unwrap(), (0, Some(header())));
    // Only the inserted route removed, the mark kept (a partial revert): still no route.
    let mut stored = case.stored(&fake);
    stored["spec"]["http"].as_array_mut().unwrap().remove(1);
    fake.replace(stored);
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    // A weight leaves the testers' route where it was.
    set_and_verify(router.as_ref(), 25).await.unwrap();
    expect_plain(&case, &original, &case.stored(&fake), 25);
}

/// A header step on a route named by index is refused by the router as by lint: the route
/// it inserts would move the index.
#[tokio::test]
async fn an_istio_header_step_on_a_route_named_by_index_is_refused() {
    let mut case = crate::support::virtual_service_case();
    if let GatewaySpec::IstioVirtualService(spec) = &mut case.spec {
        spec.route = Some(canary_core::policy::RuleRef::Index(1));
    }
    let fake = case.fake().await;
    let router = case.router(&fake);
    let message = chain(&router.set_canary_route(&header()).await.unwrap_err());
    assert!(message.contains("name it by its `name`"), "{message}");
    assert!(fake.requests_with("PATCH").is_empty());
}
