//! The routers' [`WriteGuard`]: asked right before every write, so that a controller which
//! lost its leader Lease in the middle of a change sends nothing more — not the retry after a
//! 409 Conflict, not the second Deployment of a replica-count split, not a route, not the
//! creation of a canary Ingress. Each test has a guard that lets a given number of writes
//! through and then closes for good (as a deposed leader's fence does), against the API fake.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use canary_core::policy::{KubeObjectRef, ReplicaCountSpec, StepRoute};
use canary_core::ports::TrafficRouter;
use canary_fake_kube_api::FakeApiServer;
use canary_kubernetes::{KubeConnection, ReplicaCountRouter, WriteGuard, kubernetes_router};
use serde_json::json;

use crate::support::{NS, all_cases, chain, nginx_ingress_spec, stable_ingress};

/// A guard letting `writes` writes through, then refusing every other one.
fn guard_allowing(writes: u32) -> WriteGuard {
    let left = Arc::new(AtomicU32::new(writes));
    WriteGuard::new(move || {
        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(|_| ())
            .map_err(|_| "the test's lease is lost".to_owned())
    })
}

fn guarded(fake: &FakeApiServer, writes: u32) -> KubeConnection {
    KubeConnection::from_client(fake.client(NS), NS).with_write_guard(guard_allowing(writes))
}

/// The requests that change something.
fn writes(fake: &FakeApiServer) -> Vec<(String, String, u16)> {
    fake.requests()
        .into_iter()
        .filter(|r| ["POST", "PUT", "PATCH", "DELETE"].contains(&r.method.as_str()))
        .map(|r| (r.method, r.path, r.status))
        .collect()
}

fn is_claim_lost(err: &canary_core::Error) -> bool {
    matches!(err, canary_core::Error::ClaimLost(_))
}

/// The first PATCH meets 409 Conflict and the guard closes meanwhile: the fresh read may
/// happen, the second PATCH must not (the deposed leader's retry would land on top of the
/// new leader's rollback).
#[tokio::test]
async fn a_retry_after_a_conflict_is_not_sent_once_the_guard_closes() {
    for case in all_cases() {
        let fake = case.fake().await;
        let before = case.stored(&fake);
        let router = kubernetes_router(&case.spec, guarded(&fake, 1)).unwrap();
        fake.clear_requests();
        fake.interfere_with_next_writes(1);
        let err = router
            .set_canary_weight(50)
            .await
            .expect_err(&format!("{}: a write after the guard closed", case.name));
        assert!(is_claim_lost(&err), "{}: {}", case.name, chain(&err));
        assert!(
            chain(&err).contains("the test's lease is lost"),
            "{}",
            chain(&err)
        );
        let sent = writes(&fake);
        assert_eq!(
            sent.len(),
            1,
            "{}: only the refused PATCH: {sent:?}",
            case.name
        );
        assert_eq!(sent[0].2, 409, "{}: {sent:?}", case.name);
        assert_eq!(
            case.stored(&fake).pointer(case.canary_weight),
            before.pointer(case.canary_weight),
            "{}: the weight is the other writer's, untouched",
            case.name
        );
    }
}

/// A closed guard: no weight, no route and no created canary Ingress is sent by any router.
#[tokio::test]
async fn a_closed_guard_sends_no_write_of_any_router() {
    let route = StepRoute::Header {
        name: "x-canary".to_owned(),
        value: "1".to_owned(),
    };
    for case in all_cases() {
        let fake = case.fake().await;
        let router = kubernetes_router(&case.spec, guarded(&fake, 0)).unwrap();
        fake.clear_requests();
        let err = router.set_canary_weight(25).await.unwrap_err();
        assert!(is_claim_lost(&err), "{}: {}", case.name, chain(&err));
        let _ = router.set_canary_route(&route).await;
        assert_eq!(writes(&fake), vec![], "{}", case.name);
    }
    // ingress-nginx creating its canary Ingress from the stable one.
    let fake = FakeApiServer::start().await;
    fake.insert(stable_ingress());
    let router = kubernetes_router(&nginx_ingress_spec(true), guarded(&fake, 0)).unwrap();
    let err = router.set_canary_weight(10).await.unwrap_err();
    assert!(is_claim_lost(&err), "{}", chain(&err));
    let err = router.set_canary_route(&route).await.unwrap_err();
    assert!(is_claim_lost(&err), "{}", chain(&err));
    assert_eq!(writes(&fake), vec![]);
    assert!(
        fake.object("networking.k8s.io", "ingresses", NS, "checkout-canary")
            .is_none()
    );
}

fn deployment(version: &str, replicas: i64) -> serde_json::Value {
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

/// Growing to 10 %: the canary Deployment is scaled, its pod becomes ready, and the guard
/// closed while it started: the stable Deployment is not scaled down.
#[tokio::test]
async fn the_second_deployment_of_a_replica_count_split_is_not_scaled_once_the_guard_closes() {
    let fake = FakeApiServer::start().await;
    fake.insert(deployment("stable", 8));
    fake.insert(deployment("canary", 0));
    fake.run_deployment_controller(2);
    let spec = ReplicaCountSpec {
        stable: KubeObjectRef {
            name: "checkout-stable".to_owned(),
            namespace: Some(NS.to_owned()),
            context: None,
        },
        canary_deployment: "checkout-canary".to_owned(),
        replicas: 8,
        ready_timeout: Duration::from_secs(30),
    };
    let router = ReplicaCountRouter::new(&spec, guarded(&fake, 1))
        .with_poll_interval(Duration::from_millis(5));
    fake.clear_requests();
    let err = router.set_canary_weight(10).await.unwrap_err();
    assert!(is_claim_lost(&err), "{}", chain(&err));
    let sent = writes(&fake);
    assert_eq!(sent.len(), 1, "the canary's scale only: {sent:?}");
    assert!(
        sent[0].1.ends_with("/deployments/checkout-canary"),
        "{sent:?}"
    );
    let stable = fake
        .object("apps", "deployments", NS, "checkout-stable")
        .unwrap();
    assert_eq!(stable["spec"]["replicas"], 8);
}
