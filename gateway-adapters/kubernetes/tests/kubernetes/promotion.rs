//! `DeploymentPromoter` against the API fake (acting as a Deployment controller too): the
//! stable Deployment gets the canary's pod template with its own selector labels, its rollout
//! is awaited, the canary is scaled to 0; each stage is idempotent; a rollout that never
//! completes times out; and the shipped Role is exactly enough.

use std::time::Duration;

use canary_core::policy::{DeploymentPromotionSpec, KubeObjectRef};
use canary_core::rollout::PromotionStage;
use canary_kubernetes::{DeploymentPromoter, KubeConnection};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::Role;
use serde_json::{Value, json};

use crate::support::{NS, chain, example_documents};
use canary_fake_kube_api::FakeApiServer;

fn deployment(version: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": format!("checkout-{version}"), "namespace": NS, "labels": {"app": "checkout"}},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": "checkout", "version": version}},
            "template": {
                "metadata": {
                    "labels": {"app": "checkout", "version": version},
                    "annotations": {"prometheus.io/scrape": "true"}
                },
                "spec": {"containers": [{
                    "name": "checkout",
                    "image": image,
                    "env": [{"name": "VERSION", "value": version}],
                    "ports": [{"containerPort": 8080, "name": "http"}]
                }]}
            }
        },
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas}
    })
}

fn spec(timeout: Duration) -> DeploymentPromotionSpec {
    DeploymentPromotionSpec {
        stable: KubeObjectRef {
            name: "checkout-stable".to_owned(),
            namespace: Some(NS.to_owned()),
            context: None,
        },
        canary_deployment: "checkout-canary".to_owned(),
        timeout,
    }
}

async fn mk_fake() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.insert(deployment("stable", "shop/checkout:1.4.0", 3));
    fake.insert(deployment("canary", "shop/checkout:1.5.0", 1));
    fake
}

fn promoter(fake: &FakeApiServer, timeout: Duration) -> DeploymentPromoter {
    DeploymentPromoter::new(
        &spec(timeout),
        KubeConnection::from_client(fake.client(NS), NS),
    )
    .with_poll_interval(Duration::from_millis(10))
}

fn stored(fake: &FakeApiServer, name: &str) -> Value {
    fake.object("apps", "deployments", NS, name).unwrap()
}

#[tokio::test]
async fn the_stable_deployment_takes_the_canary_template_and_the_canary_is_scaled_down() {
    let fake = mk_fake().await;
    fake.run_deployment_controller(3);
    let stable_before = stored(&fake, "checkout-stable");
    let canary_before = stored(&fake, "checkout-canary");
    let promoter = promoter(&fake, Duration::from_secs(30));

    promoter
        .run(PromotionStage::CopyToStable, None)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let patches = fake.requests_with("PATCH");
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].path,
        "/apis/apps/v1/namespaces/shop/deployments/checkout-stable"
    );
    let mut template = canary_before["spec"]["template"].clone();
    template["metadata"]["labels"]["version"] = json!("stable");
    assert_eq!(
        patches[0].body,
        Some(json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": stable_before["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/spec/template", "value": template}
        ]))
    );
    // Only the template changed (and, from the controller, generation and status); and the
    // promoter waited until the rollout was done.
    let stable = stored(&fake, "checkout-stable");
    let mut expected = stable_before.clone();
    expected["spec"]["template"] = template;
    assert_eq!(stable["spec"], expected["spec"]);
    assert_eq!(stable["metadata"]["generation"], 2);
    assert_eq!(
        stable["status"]["updatedReplicas"], 3,
        "rolled out before returning"
    );
    let gets = fake
        .requests_with("GET")
        .iter()
        .filter(|r| r.path.ends_with("/checkout-stable"))
        .count();
    assert!(
        gets >= 4,
        "one read to patch, three while rolling out: {gets}"
    );
    crate::schemas::round_trips::<Deployment>(&stable, "the promoted Deployment");
    assert_eq!(
        stored(&fake, "checkout-canary"),
        canary_before,
        "the canary is only read"
    );

    // Again (a resume): nothing is written.
    fake.clear_requests();
    promoter
        .run(PromotionStage::CopyToStable, None)
        .await
        .unwrap();
    assert!(fake.requests_with("PATCH").is_empty());

    promoter
        .run(PromotionStage::ScaleDownCanary, None)
        .await
        .unwrap();
    let patches = fake.requests_with("PATCH");
    assert_eq!(
        patches[0].body,
        Some(json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": canary_before["metadata"]["resourceVersion"]},
            {"op": "add", "path": "/spec/replicas", "value": 0}
        ]))
    );
    let canary = stored(&fake, "checkout-canary");
    assert_eq!(canary["spec"]["replicas"], 0);
    assert_eq!(
        canary["spec"]["template"],
        canary_before["spec"]["template"]
    );
    fake.clear_requests();
    promoter
        .run(PromotionStage::ScaleDownCanary, None)
        .await
        .unwrap();
    assert!(fake.requests_with("PATCH").is_empty(), "already at 0");
}

#[tokio::test]
async fn a_rollout_that_never_completes_times_out() {
    let fake = mk_fake().await;
    fake.run_deployment_controller(u32::MAX);
    let err = promoter(&fake, Duration::from_millis(200))
        .run(PromotionStage::CopyToStable, None)
        .await
        .unwrap_err();
    let message = chain(&err);
    assert!(
        message.contains("Deployment shop/checkout-stable: did not roll out within 200ms (0 of 3 replicas updated, 3 available)"),
        "{message}"
    );
}

#[tokio::test]
async fn the_promotion_needs_exactly_its_shipped_role() {
    let documents = example_documents("rbac-optional/promotion.yaml");
    let role: Role = serde_json::from_value(documents[0].clone()).unwrap();
    let run = |fake: FakeApiServer| async move {
        let promoter = promoter(&fake, Duration::from_secs(30));
        promoter.run(PromotionStage::CopyToStable, None).await?;
        promoter.run(PromotionStage::ScaleDownCanary, None).await
    };
    let fake = mk_fake().await;
    fake.run_deployment_controller(1);
    fake.grant(std::slice::from_ref(&role), &[]);
    run(fake).await.unwrap_or_else(|e| panic!("{}", chain(&e)));
    for (i, rule) in role.rules.as_ref().unwrap().iter().enumerate() {
        let mut partial = role.clone();
        partial.rules.as_mut().unwrap().remove(i);
        let fake = mk_fake().await;
        fake.run_deployment_controller(1);
        fake.grant(&[partial], &[]);
        let message = chain(&canary_core::Error::from(run(fake).await.unwrap_err()));
        let verb = &rule.verbs[0];
        assert!(
            message.contains(&format!(
                "forbidden: the RBAC rule `{verb}` on deployments in API group \"apps\""
            )) && message.contains("in namespace \"shop\" is missing"),
            "without rule {i}: {message}"
        );
    }
}

#[tokio::test]
async fn a_canary_changed_since_the_analysis_is_not_promoted() {
    let fake = mk_fake().await;
    fake.run_deployment_controller(1);
    let promoter = promoter(&fake, Duration::from_secs(5));
    let analysed = promoter.canary_generation().await.unwrap();
    // A newer pipeline patches the canary mid-rollout: its generation moves on.
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(fake.client(NS), NS);
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "checkout", "image": "shop/checkout:1.6.0-unanalysed"}
    ]}}}});
    deployments
        .patch(
            "checkout-canary",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    assert!(promoter.canary_generation().await.unwrap() > analysed);
    let stable_before = stored(&fake, "checkout-stable");
    let err = promoter
        .run(PromotionStage::CopyToStable, Some(analysed))
        .await
        .unwrap_err();
    let message = chain(&err);
    assert!(
        message.contains("refusing to promote a version that was not analysed"),
        "{message}"
    );
    assert_eq!(
        stored(&fake, "checkout-stable"),
        stable_before,
        "stable untouched"
    );
}

/// Review finding of 2026-12-01: the promoter's PATCHes did not ask the connection's
/// [`canary_kubernetes::WriteGuard`] (the controller's Lease fence). A deposed leader woken
/// after its fence closed met a 409 on its scale-down, read the canary again (by then the
/// next revision's, scaled up) and scaled it to 0. Now the retry is refused, and only the
/// first (conflicting) PATCH was ever sent.
#[tokio::test]
async fn a_promotion_retry_after_a_conflict_is_not_sent_once_the_guard_closes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let fake = mk_fake().await;
    let left = Arc::new(AtomicU32::new(1));
    let guard = canary_kubernetes::WriteGuard::new(move || {
        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(|_| ())
            .map_err(|_| "the test's lease is lost".to_owned())
    });
    let promoter = DeploymentPromoter::new(
        &spec(Duration::from_secs(30)),
        KubeConnection::from_client(fake.client(NS), NS).with_write_guard(guard),
    )
    .with_poll_interval(Duration::from_millis(10));
    let canary_before = stored(&fake, "checkout-canary");
    fake.clear_requests();
    fake.interfere_with_next_writes(1);
    let err = promoter
        .run(PromotionStage::ScaleDownCanary, None)
        .await
        .expect_err("a write after the guard closed");
    assert!(
        chain(&err).contains("the test's lease is lost"),
        "{}",
        chain(&err)
    );
    let patches = fake.requests_with("PATCH");
    assert_eq!(patches.len(), 1, "only the conflicting PATCH: {patches:?}");
    assert_eq!(patches[0].status, 409);
    assert_eq!(
        stored(&fake, "checkout-canary")["spec"]["replicas"],
        canary_before["spec"]["replicas"],
        "the canary's replicas are the other writer's"
    );
}
