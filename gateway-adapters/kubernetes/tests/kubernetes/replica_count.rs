//! `ReplicaCountRouter` against the API fake acting as a Deployment controller (its pods
//! become ready a few reads after a Deployment is scaled, or never): the weight asked for
//! becomes whole pods, the share read back and reported is the ready pods', a rollback
//! scales the canary to 0, pods that never become ready are an error naming the Deployment,
//! a Deployment scaled by hand reads as another share (drift), no ready pod at all is an
//! error, and the shipped Role is exactly enough.

use std::time::Duration;

use canary_core::policy::{KubeObjectRef, ReplicaCountSpec};
use canary_core::ports::{AchievedShare, TrafficRouter, set_and_verify};
use canary_kubernetes::{ASKED_WEIGHT_ANNOTATION, KubeConnection, ReplicaCountRouter};
use k8s_openapi::api::rbac::v1::Role;
use serde_json::{Value, json};

use crate::support::{NS, chain, example_documents};
use canary_fake_kube_api::FakeApiServer;

pub(crate) fn deployment(version: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": format!("checkout-{version}"), "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "checkout", "version": version}},
            "template": {
                "metadata": {"labels": {"app": "checkout", "version": version}},
                "spec": {"containers": [{"name": "checkout", "image": format!("shop/checkout:{version}")}]}
            }
        },
        "status": {
            "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas
        }
    })
}

fn spec(replicas: u32, ready_timeout: Duration) -> ReplicaCountSpec {
    ReplicaCountSpec {
        stable: KubeObjectRef {
            name: "checkout-stable".to_owned(),
            namespace: Some(NS.to_owned()),
            context: None,
        },
        canary_deployment: "checkout-canary".to_owned(),
        replicas,
        ready_timeout,
    }
}

/// Stable at 8 ready pods, canary at 0; the Deployment controller readies pods 2 reads after
/// a scale.
async fn mk_fake() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.insert(deployment("stable", 8));
    fake.insert(deployment("canary", 0));
    fake.run_deployment_controller(2);
    fake
}

fn router(fake: &FakeApiServer, ready_timeout: Duration) -> ReplicaCountRouter {
    ReplicaCountRouter::new(
        &spec(8, ready_timeout),
        KubeConnection::from_client(fake.client(NS), NS),
    )
    .with_poll_interval(Duration::from_millis(5))
}

fn replicas(fake: &FakeApiServer, name: &str) -> (i64, i64) {
    let object = fake.object("apps", "deployments", NS, name).unwrap();
    (
        object["spec"]["replicas"].as_i64().unwrap(),
        object["status"]["readyReplicas"].as_i64().unwrap_or(0),
    )
}

#[tokio::test]
async fn ten_percent_of_eight_pods_is_one_canary_pod_and_reported_as_12_5_percent_achieved() {
    let fake = mk_fake().await;
    let router = router(&fake, Duration::from_secs(5));
    assert_eq!(
        router.canary_weight().await.unwrap(),
        0,
        "before: all stable"
    );

    set_and_verify(&router, 10).await.unwrap();
    assert_eq!(replicas(&fake, "checkout-canary"), (1, 1));
    assert_eq!(replicas(&fake, "checkout-stable"), (7, 7));
    let canary = fake
        .object("apps", "deployments", NS, "checkout-canary")
        .unwrap();
    assert_eq!(
        canary["metadata"]["annotations"][ASKED_WEIGHT_ANNOTATION],
        "10"
    );
    let achieved = router.achieved_share().await.unwrap().unwrap();
    assert_eq!(
        achieved,
        AchievedShare {
            canary_ready: 1,
            stable_ready: 7
        }
    );
    assert_eq!(achieved.to_string(), "1 of 8 ready pods = 12.5 %");

    // The next step grows the canary before the stable version shrinks; a rerun of the
    // same step writes nothing.
    set_and_verify(&router, 50).await.unwrap();
    assert_eq!(replicas(&fake, "checkout-canary"), (4, 4));
    assert_eq!(replicas(&fake, "checkout-stable"), (4, 4));
    fake.clear_requests();
    set_and_verify(&router, 50).await.unwrap();
    assert!(fake.requests_with("PATCH").is_empty(), "idempotent");

    // A rollback scales the canary to 0 and the stable version back to all the pods.
    set_and_verify(&router, 0).await.unwrap();
    assert_eq!(replicas(&fake, "checkout-canary"), (0, 0));
    assert_eq!(replicas(&fake, "checkout-stable"), (8, 8));
    assert_eq!(router.canary_weight().await.unwrap(), 0);
}

#[tokio::test]
async fn back_from_100_percent_the_stable_pods_are_ready_before_the_canary_goes() {
    let fake = mk_fake().await;
    let router = router(&fake, Duration::from_secs(5));
    set_and_verify(&router, 100).await.unwrap();
    assert_eq!(replicas(&fake, "checkout-canary"), (8, 8));
    assert_eq!(replicas(&fake, "checkout-stable"), (0, 0));
    fake.clear_requests();
    set_and_verify(&router, 0).await.unwrap();
    let patched: Vec<String> = fake
        .requests_with("PATCH")
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        patched,
        ["checkout-stable", "checkout-canary"],
        "stable first"
    );
    assert_eq!(replicas(&fake, "checkout-stable"), (8, 8));
    assert_eq!(replicas(&fake, "checkout-canary"), (0, 0));
}

#[tokio::test]
async fn canary_pods_that_never_become_ready_are_an_error_not_a_silent_zero() {
    let fake = mk_fake().await;
    fake.pods_never_ready("checkout-canary");
    let router = router(&fake, Duration::from_millis(200));
    let err = router.set_canary_weight(10).await.unwrap_err();
    let message = chain(&err);
    assert!(
        message.contains(
            "Deployment shop/checkout-canary: 0 of 1 pods ready after 200ms (ready-timeout): its pods do not become ready"
        ),
        "{message}"
    );
    // The stable version was not shrunk for pods that never came.
    assert_eq!(replicas(&fake, "checkout-stable"), (8, 8));
    // And the read-back is the share the ready pods give (0 %), not the 10 % asked: a
    // rollout never confirms it.
    assert_eq!(router.canary_weight().await.unwrap(), 0);
}

#[tokio::test]
async fn a_deployment_scaled_by_hand_is_read_as_the_ready_pods_share_so_drift() {
    let fake = mk_fake().await;
    let router = router(&fake, Duration::from_secs(5));
    set_and_verify(&router, 25).await.unwrap();
    assert_eq!(replicas(&fake, "checkout-canary"), (2, 2));
    // Someone runs `kubectl scale deploy/checkout-canary --replicas=6`.
    let mut canary = fake
        .object("apps", "deployments", NS, "checkout-canary")
        .unwrap();
    canary["spec"]["replicas"] = json!(6);
    canary["status"]["readyReplicas"] = json!(6);
    fake.insert(canary);
    // 6 of 12 ready pods: the canary serves half, not the 25 % asked.
    assert_eq!(router.canary_weight().await.unwrap(), 50);
    // Setting the weight again puts the pods back.
    set_and_verify(&router, 25).await.unwrap();
    assert_eq!(replicas(&fake, "checkout-canary"), (2, 2));
    assert_eq!(replicas(&fake, "checkout-stable"), (6, 6));
}

#[tokio::test]
async fn no_ready_pod_at_all_is_an_error_not_a_weight() {
    let fake = FakeApiServer::start().await;
    let mut stable = deployment("stable", 8);
    stable["status"]["readyReplicas"] = json!(0);
    fake.insert(stable);
    fake.insert(deployment("canary", 0));
    let router = router(&fake, Duration::from_secs(1));
    let message = chain(&router.canary_weight().await.unwrap_err());
    assert!(
        message.contains("no pod of either is ready (8 stable and 0 canary wanted)"),
        "{message}"
    );
}

#[tokio::test]
async fn the_replica_count_router_needs_exactly_its_shipped_role() {
    let documents = example_documents("rbac-optional/replica-count.yaml");
    let role: Role = serde_json::from_value(documents[0].clone()).unwrap();
    let run = |fake: FakeApiServer| async move {
        let router = router(&fake, Duration::from_secs(5));
        set_and_verify(&router, 10).await?;
        set_and_verify(&router, 0).await
    };
    let fake = mk_fake().await;
    fake.grant(std::slice::from_ref(&role), &[]);
    run(fake)
        .await
        .unwrap_or_else(|e| panic!("the shipped Role: {}", chain(&e)));
    for (i, rule) in role.rules.as_ref().unwrap().iter().enumerate() {
        let mut partial = role.clone();
        partial.rules.as_mut().unwrap().remove(i);
        let fake = mk_fake().await;
        fake.grant(&[partial], &[]);
        let message = chain(&run(fake).await.unwrap_err());
        let verb = &rule.verbs[0];
        assert!(
            message.contains(&format!(
                "forbidden: the RBAC rule `{verb}` on deployments in API group \"apps\""
            )) && message.contains("in namespace \"shop\" is missing"),
            "without rule {i}: {message}"
        );
    }
}
