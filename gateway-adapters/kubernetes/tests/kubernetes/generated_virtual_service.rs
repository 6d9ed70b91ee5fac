//! An Istio VirtualService canary owns (issue 18, `istio-virtual-service.generate`): a
//! missing VirtualService is created at the pre-flight read with one HTTP route at 100/0 and
//! an ownerReference to the named Deployment, so that no GitOps tool holds its weights; it
//! carries weights and a header step like any VirtualService; one that is there is used as it
//! is; a missing owner is an error naming it; the shipped Roles are exactly enough.

use canary_core::policy::{GatewaySpec, GenerateVirtualService};
use canary_core::ports::{TrafficRouter, set_and_verify, set_and_verify_route};
use canary_fake_kube_api::FakeApiServer;
use canary_kubernetes::{
    GENERATED_ANNOTATION, KubeConnection, MATCH_ROUTE_NAME, kubernetes_router,
};
use k8s_openapi::api::rbac::v1::Role;
use serde_json::json;

use crate::replica_count::deployment;
use crate::schemas::validate;
use crate::support::{NS, chain, destination_rule, example_documents};

fn spec() -> GatewaySpec {
    let GatewaySpec::IstioVirtualService(mut spec) = crate::support::virtual_service_case().spec
    else {
        unreachable!()
    };
    spec.generate = Some(GenerateVirtualService {
        hosts: vec!["checkout.shop.svc.cluster.local".to_owned()],
        gateways: vec!["istio-ingress/web".to_owned(), "mesh".to_owned()],
        owner_deployment: "checkout-stable".to_owned(),
    });
    GatewaySpec::IstioVirtualService(spec)
}

fn router(fake: &FakeApiServer) -> Box<dyn TrafficRouter> {
    kubernetes_router(&spec(), KubeConnection::from_client(fake.client(NS), NS)).unwrap()
}

/// A fake serving Istio's API with the DestinationRule of the subsets and no VirtualService.
async fn mk_fake() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.serve("networking.istio.io", &["v1"]);
    fake.insert(destination_rule());
    fake
}

fn virtual_service(fake: &FakeApiServer) -> Option<serde_json::Value> {
    fake.object("networking.istio.io", "virtualservices", NS, "checkout")
}

#[tokio::test]
async fn a_missing_virtual_service_is_generated_owned_by_the_deployment_and_routes_steps() {
    let fake = mk_fake().await;
    let owner = fake.insert(deployment("stable", 4));
    let router = router(&fake);
    // The pre-flight read: creates it, then reads 0 %.
    assert_eq!(
        router
            .read_back()
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e))),
        (0, None)
    );
    let created = virtual_service(&fake).expect("the generated VirtualService");
    validate("virtualservices", &created);
    assert_eq!(created["apiVersion"], "networking.istio.io/v1");
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
            "hosts": ["checkout.shop.svc.cluster.local"],
            "gateways": ["istio-ingress/web", "mesh"],
            "http": [{
                "name": "canary",
                "route": [
                    {"destination": {"host": "checkout", "subset": "stable"}, "weight": 100},
                    {"destination": {"host": "checkout", "subset": "canary"}, "weight": 0}
                ]
            }]
        })
    );
    assert_eq!(fake.requests_with("POST").len(), 1);

    // A header step, then weights, on the generated object as on any other.
    let header = canary_core::policy::StepRoute::Header {
        name: "x-canary".to_owned(),
        value: "beta".to_owned(),
    };
    set_and_verify_route(router.as_ref(), &header)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let routed = virtual_service(&fake).unwrap();
    validate("virtualservices", &routed);
    assert_eq!(routed["spec"]["http"][0]["name"], MATCH_ROUTE_NAME);
    set_and_verify(router.as_ref(), 25)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let weighted = virtual_service(&fake).unwrap();
    assert_eq!(weighted["spec"]["http"].as_array().unwrap().len(), 1);
    assert_eq!(weighted["spec"]["http"][0]["route"][1]["weight"], 25);
    assert_eq!(weighted["spec"]["http"][0]["route"][0]["weight"], 75);

    // Another run (a resumed rollout) finds it and creates nothing.
    fake.clear_requests();
    let again = crate::generated_virtual_service::router(&fake);
    assert_eq!(again.read_back().await.unwrap(), (25, None));
    assert!(fake.requests_with("POST").is_empty());
}

/// A VirtualService that exists is used as it is (generate only fills a gap), and a missing
/// owner stops the rollout at the pre-flight read with nothing created.
#[tokio::test]
async fn an_existing_virtual_service_is_used_and_a_missing_owner_is_an_error_naming_it() {
    let fake = mk_fake().await;
    fake.insert(crate::support::virtual_service());
    set_and_verify(router(&fake).as_ref(), 10).await.unwrap();
    assert!(fake.requests_with("POST").is_empty());
    let existing = virtual_service(&fake).unwrap();
    assert!(existing["metadata"]["ownerReferences"].is_null());

    let fake = mk_fake().await;
    let message = chain(&router(&fake).read_back().await.unwrap_err());
    assert!(
        message.contains("Deployment shop/checkout-stable") && message.contains("does not exist"),
        "{message}"
    );
    assert!(fake.requests_with("POST").is_empty());
    assert!(virtual_service(&fake).is_none());
}

fn role(file: &str) -> Role {
    let documents = example_documents(file);
    let role = documents.iter().find(|d| d["kind"] == "Role").unwrap();
    serde_json::from_value(role.clone()).unwrap()
}

/// `rbac-optional/istio-virtual-service.yaml` plus
/// `rbac-optional/istio-virtual-service-generate.yaml` are enough; without the second, the
/// error names the rule that is missing.
#[tokio::test]
async fn generating_a_virtual_service_needs_the_generate_role_and_says_so_without_it() {
    let base = role("rbac-optional/istio-virtual-service.yaml");
    let generate = role("rbac-optional/istio-virtual-service-generate.yaml");
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
