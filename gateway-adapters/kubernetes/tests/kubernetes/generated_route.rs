//! An HTTPRoute canary owns (issue 18): with the policy's `generate`, a missing route is
//! created at the pre-flight read, with one rule at 100/0 and an ownerReference to the named
//! Deployment, so that no GitOps tool holds its weights; a route that is there is used as it
//! is; a missing owner is an error naming it; the shipped Roles are exactly enough.

use canary_core::policy::{GatewaySpec, GenerateHttpRoute, HttpRouteSpec};
use canary_core::ports::{TrafficRouter, set_and_verify};
use canary_fake_kube_api::FakeApiServer;
use canary_kubernetes::{GENERATED_ANNOTATION, KubeConnection, kubernetes_router};
use k8s_openapi::api::rbac::v1::Role;
use serde_json::json;

use crate::replica_count::deployment;
use crate::schemas::validate;
use crate::support::{NS, chain, example_documents};

fn spec() -> GatewaySpec {
    let GatewaySpec::HttpRoute(mut spec) = crate::support::http_route_case().spec else {
        unreachable!()
    };
    spec.rule = None;
    spec.generate = Some(GenerateHttpRoute {
        gateway: "web".to_owned(),
        gateway_namespace: Some("infra".to_owned()),
        section_name: Some("https".to_owned()),
        hostnames: vec!["shop.example".to_owned()],
        port: 8080,
        owner_deployment: "checkout-stable".to_owned(),
    });
    GatewaySpec::HttpRoute(HttpRouteSpec { ..spec })
}

fn router(fake: &FakeApiServer) -> Box<dyn TrafficRouter> {
    kubernetes_router(&spec(), KubeConnection::from_client(fake.client(NS), NS)).unwrap()
}

/// A fake serving the Gateway API (its CRDs installed) with no HTTPRoute stored yet.
async fn mk_fake() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.serve("gateway.networking.k8s.io", &["v1"]);
    fake
}

fn route(fake: &FakeApiServer) -> Option<serde_json::Value> {
    fake.object("gateway.networking.k8s.io", "httproutes", NS, "checkout")
}

#[tokio::test]
async fn a_missing_route_is_generated_at_the_preflight_read_owned_by_the_deployment() {
    let fake = mk_fake().await;
    let owner = fake.insert(deployment("stable", 4));
    let router = router(&fake);
    // The pre-flight read: creates it, then reads 0 %.
    assert_eq!(router.read_back().await.unwrap(), (0, None));
    let created = route(&fake).expect("the generated route");
    validate("httproutes", &created);
    assert_eq!(
        created["metadata"]["annotations"][GENERATED_ANNOTATION],
        "true"
    );
    assert_eq!(
        created["metadata"]["ownerReferences"],
        json!([{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout-stable",
            "uid": owner["metadata"]["uid"], "controller": false, "blockOwnerDeletion": false
        }])
    );
    assert_eq!(
        created["spec"],
        json!({
            "parentRefs": [{"name": "web", "namespace": "infra", "sectionName": "https"}],
            "hostnames": ["shop.example"],
            "rules": [{
                "name": "canary",
                "backendRefs": [
                    {"name": "checkout-stable", "port": 8080, "weight": 100},
                    {"name": "checkout-canary", "port": 8080, "weight": 0}
                ]
            }]
        })
    );
    set_and_verify(router.as_ref(), 25)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(
        route(&fake).unwrap()["spec"]["rules"][0]["backendRefs"][1]["weight"],
        25
    );
    assert_eq!(fake.requests_with("POST").len(), 1);

    // Another run (a resumed rollout) finds it and creates nothing.
    fake.clear_requests();
    let again = crate::generated_route::router(&fake);
    assert_eq!(again.read_back().await.unwrap(), (25, None));
    assert!(fake.requests_with("POST").is_empty());
}

/// A route that exists is used as it is (generate only fills a gap), and a missing owner
/// stops the rollout at the pre-flight read with nothing created.
#[tokio::test]
async fn an_existing_route_is_used_and_a_missing_owner_is_an_error_naming_it() {
    let fake = mk_fake().await;
    let mut existing = crate::support::http_route();
    existing["spec"]["rules"].as_array_mut().unwrap().remove(1);
    fake.insert(existing);
    set_and_verify(router(&fake).as_ref(), 10).await.unwrap();
    assert!(fake.requests_with("POST").is_empty());

    let fake = mk_fake().await;
    let message = chain(&router(&fake).read_back().await.unwrap_err());
    assert!(
        message.contains("Deployment shop/checkout-stable") && message.contains("does not exist"),
        "{message}"
    );
    assert!(fake.requests_with("POST").is_empty());
    assert!(route(&fake).is_none());
}

fn role(file: &str) -> Role {
    let documents = example_documents(file);
    let role = documents.iter().find(|d| d["kind"] == "Role").unwrap();
    serde_json::from_value(role.clone()).unwrap()
}

/// `rbac/httproute.yaml` plus `rbac-optional/httproute-generate.yaml` are enough; without the
/// second, the error names the `create` rule that is missing.
#[tokio::test]
async fn generating_needs_the_generate_role_and_says_so_without_it() {
    let base = role("rbac/httproute.yaml");
    let generate = role("rbac-optional/httproute-generate.yaml");
    let fake = mk_fake().await;
    fake.insert(deployment("stable", 4));
    fake.grant(&[base.clone(), generate], &[]);
    set_and_verify(router(&fake).as_ref(), 10)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));

    let fake = mk_fake().await;
    fake.insert(deployment("stable", 4));
    fake.grant(&[base], &[]);
    let message = chain(&router(&fake).read_back().await.unwrap_err());
    assert!(
        message.contains("`get` on deployments in API group \"apps\""),
        "{message}"
    );
}
