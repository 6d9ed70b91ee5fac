//! The API fake itself, held to what the Kubernetes API server documents for what a
//! controller relies on (https://kubernetes.io/docs/reference/using-api/api-concepts/ and
//! the CustomResourceDefinition page): watches from a resourceVersion, bookmarks, 410 Gone
//! for a resourceVersion too old, the status subresource and `metadata.generation`, and
//! `generateName`. Through `kube::Api`, as a controller would talk to it.

use std::time::Duration;

use canary_fake_kube_api::FakeApiServer;
use canary_kubernetes::controller::CanaryRollout;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use crate::support::NS;

const GROUP: &str = "canary.dev";
const RESOURCE: &str = "canaryrollouts";

/// A CanaryRollout as `kubectl apply` would leave it.
pub(crate) fn canary_rollout(name: &str, revision: &str) -> Value {
    json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "revision": revision,
            "policy": {"service": name},
        },
    })
}

async fn fake_with_rollouts() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.serve_status_subresource(GROUP, RESOURCE);
    fake.insert(canary_rollout("checkout", "v1"));
    fake
}

/// The next event of a watch, within a few seconds.
async fn next<K>(
    stream: &mut (impl futures_util::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch goes on")
        .expect("a watch event")
}

fn version_of(event: &WatchEvent<CanaryRollout>) -> u64 {
    let version = match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            o.metadata.resource_version.clone()
        }
        WatchEvent::Bookmark(b) => Some(b.metadata.resource_version.clone()),
        WatchEvent::Error(e) => panic!("an error event: {e:?}"),
    };
    version.unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_watch_from_a_resource_version_sends_what_changed_after_it_in_order() {
    let fake = fake_with_rollouts().await;
    let api: Api<CanaryRollout> = Api::namespaced(fake.client(NS), NS);
    let listed = api.list(&ListParams::default()).await.unwrap();
    let from = listed.metadata.resource_version.unwrap();
    assert_eq!(listed.items.len(), 1);
    // A change made before the watch starts, after the list: the watch must send it.
    api.patch(
        "checkout",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"revision": "v2"}})),
    )
    .await
    .unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default().timeout(20).disable_bookmarks(),
            &from,
        )
        .await
        .unwrap()
        .boxed();
    let first = next(&mut stream).await;
    let WatchEvent::Modified(changed) = &first else {
        panic!("the change after the list, not {first:?}");
    };
    assert_eq!(changed.spec.revision.as_deref(), Some("v2"));
    fake.insert(canary_rollout("payments", "v7"));
    let added = next(&mut stream).await;
    assert!(
        matches!(&added, WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("payments"))
    );
    assert!(version_of(&added) > version_of(&first));
    api.delete("checkout", &Default::default()).await.unwrap();
    let deleted = next(&mut stream).await;
    assert!(
        matches!(&deleted, WatchEvent::Deleted(o) if o.metadata.name.as_deref() == Some("checkout"))
    );
    assert!(version_of(&deleted) > version_of(&added));
    // Another namespace's objects are not this namespace's watch's business.
    let mut elsewhere = canary_rollout("search", "v1");
    elsewhere["metadata"]["namespace"] = json!("other");
    fake.insert(elsewhere);
    fake.insert(canary_rollout("cart", "v1"));
    let next_here = next(&mut stream).await;
    assert!(
        matches!(&next_here, WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("cart"))
    );
}

#[tokio::test]
async fn a_watch_across_namespaces_and_one_without_a_version_start_from_what_is_there() {
    let fake = fake_with_rollouts().await;
    let mut elsewhere = canary_rollout("search", "v1");
    elsewhere["metadata"]["namespace"] = json!("other");
    fake.insert(elsewhere);
    let api: Api<CanaryRollout> = Api::all(fake.client(NS));
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    // resourceVersion "0": the objects there are now, as ADDED, then the changes.
    let mut stream = api
        .watch(&WatchParams::default().timeout(20).disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    let mut names = Vec::new();
    for _ in 0..2 {
        match next(&mut stream).await {
            WatchEvent::Added(o) => names.push(o.metadata.name.unwrap()),
            other => panic!("ADDED, not {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, ["checkout", "search"]);
}

#[tokio::test]
async fn bookmarks_carry_the_latest_resource_version_when_asked_for() {
    let fake = fake_with_rollouts().await;
    fake.bookmark_every(Duration::from_millis(100));
    let api: Api<CanaryRollout> = Api::namespaced(fake.client(NS), NS);
    let from = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    // Changes to other resources move the resourceVersion on; a bookmark says so.
    let configmaps: Api<ConfigMap> = Api::namespaced(fake.client(NS), NS);
    configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "unrelated"}})).unwrap(),
        )
        .await
        .unwrap();
    let latest = fake.resource_version();
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &from)
        .await
        .unwrap()
        .boxed();
    let event = next(&mut stream).await;
    assert!(matches!(event, WatchEvent::Bookmark(_)), "{event:?}");
    assert_eq!(version_of(&event), latest);
    // Without asking: no bookmark, the stream stays quiet.
    let mut quiet = api
        .watch(
            &WatchParams::default().timeout(20).disable_bookmarks(),
            &from,
        )
        .await
        .unwrap()
        .boxed();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), quiet.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_watch_from_a_version_older_than_the_history_gets_410_gone() {
    let fake = fake_with_rollouts().await;
    let api: Api<CanaryRollout> = Api::namespaced(fake.client(NS), NS);
    let old = fake.resource_version().to_string();
    fake.insert(canary_rollout("payments", "v1"));
    fake.compact();
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &old)
        .await
        .unwrap()
        .boxed();
    match next(&mut stream).await {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
            assert!(
                status.message.contains("too old resource version"),
                "{status:?}"
            );
        }
        other => panic!("410 Gone, not {other:?}"),
    }
    // From the current version, it watches as usual.
    let now = fake.resource_version().to_string();
    let mut stream = api
        .watch(
            &WatchParams::default().timeout(20).disable_bookmarks(),
            &now,
        )
        .await
        .unwrap()
        .boxed();
    fake.insert(canary_rollout("cart", "v1"));
    assert!(matches!(next(&mut stream).await, WatchEvent::Added(_)));
}

#[tokio::test]
async fn the_status_subresource_and_the_object_are_written_apart() {
    let fake = fake_with_rollouts().await;
    let api: Api<CanaryRollout> = Api::namespaced(fake.client(NS), NS);
    let created = api.get("checkout").await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // Status through /status: the status changes, the generation does not.
    let written = api
        .patch_status(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Progressing"}, "spec": {"revision": "sneaky"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        written.status.unwrap().phase.as_deref(),
        Some("Progressing")
    );
    assert_eq!(
        written.spec.revision.as_deref(),
        Some("v1"),
        "a status write changed the spec"
    );
    assert_eq!(written.metadata.generation, Some(1));

    // The object: the spec changes and the generation grows; its status is ignored.
    let written = api
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"revision": "v2"}, "status": {"phase": "Promoted"}})),
        )
        .await
        .unwrap();
    assert_eq!(written.spec.revision.as_deref(), Some("v2"));
    assert_eq!(written.metadata.generation, Some(2));
    assert_eq!(
        written.status.unwrap().phase.as_deref(),
        Some("Progressing")
    );

    // Metadata alone (a label) is not a new generation.
    let written = api
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "shop"}}})),
        )
        .await
        .unwrap();
    assert_eq!(written.metadata.generation, Some(2));

    // A status write with a stale resourceVersion is a conflict like any other.
    let stale = created.metadata.resource_version.unwrap();
    let err = api
        .patch_status(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"resourceVersion": stale}, "status": {"phase": "X"}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
}

#[tokio::test]
async fn generate_name_makes_a_fresh_name_for_each_object() {
    let fake = FakeApiServer::start().await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(fake.client(NS), NS);
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"generateName": "checkout."},
        "involvedObject": {"kind": "CanaryRollout", "name": "checkout", "namespace": NS},
        "reason": "Started", "message": "m", "type": "Normal",
    }))
    .unwrap();
    let first = events.create(&PostParams::default(), &event).await.unwrap();
    let second = events.create(&PostParams::default(), &event).await.unwrap();
    let (a, b) = (first.metadata.name.unwrap(), second.metadata.name.unwrap());
    assert!(
        a.starts_with("checkout.") && b.starts_with("checkout."),
        "{a} {b}"
    );
    assert_ne!(a, b);
    assert_eq!(
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

/// Leases as the API server decodes and validates them: `renewTime`/`acquireTime` are
/// `MicroTime`s (six fractional digits, else 400 "cannot be handled as a Lease"),
/// `leaseDurationSeconds` must be greater than 0 (422 Invalid); a well-formed one is
/// created, and a replace with a stale resourceVersion gets 409.
#[tokio::test]
async fn the_fake_decodes_and_validates_leases_as_the_api_server_does() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let fake = FakeApiServer::start().await;
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"));
    let api: Api<DynamicObject> = Api::namespaced_with(fake.client(NS), NS, &resource);
    let lease = |spec: Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "leader", "namespace": NS},
            "spec": spec,
        }))
        .unwrap()
    };
    let code = |result: Result<DynamicObject, kube::Error>| match result {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("{other}"),
    };
    let seconds_only = lease(json!({"holderIdentity": "a", "renewTime": "2026-12-01T02:45:25Z"}));
    assert_eq!(
        code(api.create(&PostParams::default(), &seconds_only).await),
        400
    );
    let zero = lease(json!({"holderIdentity": "a", "leaseDurationSeconds": 0}));
    assert_eq!(code(api.create(&PostParams::default(), &zero).await), 422);
    let good = lease(json!({
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-01T02:45:25.000000Z",
        "renewTime": "2026-12-01T02:45:25.123456Z",
        "leaseTransitions": 0,
    }));
    let created = api.create(&PostParams::default(), &good).await.unwrap();
    let mut renewed = created.clone();
    renewed.data["spec"]["renewTime"] = json!("2026-12-01T02:45:27.000000Z");
    api.replace("leader", &PostParams::default(), &renewed)
        .await
        .unwrap();
    // The same write again carries the resourceVersion it was based on: stale now.
    renewed.data["spec"]["renewTime"] = json!("2026-12-01T02:45:29.000000Z");
    assert_eq!(
        code(
            api.replace("leader", &PostParams::default(), &renewed)
                .await
        ),
        409
    );
    assert_eq!(
        code(api.create(&PostParams::default(), &good).await),
        409,
        "already exists"
    );
}
