//! `ConfigMapStateStore` against the API fake: what the ConfigMap holds, the merge patches
//! guarded by resourceVersion, one driver at a time ("in progress, owned by …", exit 4),
//! taking over, requests taken once, conflicts retried, archives.

use canary_core::ports::StateStore;
use canary_core::rollout::{ControlAction, ControlRequest, Machine, Rollout};
use canary_core::{Error, ExitCode};
use canary_kubernetes::{ConfigMapStateStore, Holder, KubeConnection, OWNER_KEY, ROLLOUT_KEY};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::support::{NS, chain, examples_dir};
use canary_fake_kube_api::FakeApiServer;

/// A rollout of the example policy, just started.
pub(crate) fn a_rollout() -> Rollout {
    a_rollout_started(1_790_000_000)
}

fn a_rollout_started(second: i64) -> Rollout {
    let text = std::fs::read_to_string(examples_dir().join("policy.yaml")).unwrap();
    let policy = canary_core::policy::Policy::from_yaml(&text, "policy.yaml").unwrap();
    Machine::new(policy)
        .unwrap()
        .start(Timestamp::from_second(second).unwrap(), None)
}

fn holder(identity: &str, pid: u32) -> Holder {
    Holder {
        identity: identity.to_owned(),
        pid,
        started_at: Timestamp::from_second(1_790_000_000).unwrap(),
        renewed_at: None,
        ttl_seconds: None,
        host: None,
        pid_namespace: None,
        boot_id: None,
    }
}

fn store(fake: &FakeApiServer, who: Holder) -> ConfigMapStateStore {
    let connection = KubeConnection::from_client(fake.client(NS), NS);
    ConfigMapStateStore::new(connection, None, "checkout", None)
        .unwrap()
        .with_holder(who)
}

fn config_map(fake: &FakeApiServer) -> Value {
    fake.object("", "configmaps", NS, "canary-rollout-checkout")
        .expect("the state ConfigMap")
}

/// Who holds the claim, as the state ConfigMap says.
fn owner_of(fake: &FakeApiServer) -> Holder {
    serde_json::from_str(
        config_map(fake)["data"][OWNER_KEY]
            .as_str()
            .expect("an owner"),
    )
    .unwrap()
}

/// A controller that saved a rollout, and the next one, which takes over only controllers'
/// claims.
fn two_controllers(fake: &FakeApiServer) -> (ConfigMapStateStore, ConfigMapStateStore) {
    let last_leader = store(fake, holder("canary controller a", 1));
    let next_leader =
        store(fake, holder("canary controller b", 2)).taking_over_only_from("canary controller");
    (last_leader, next_leader)
}

#[tokio::test]
async fn the_rollout_lives_in_a_config_map_written_with_guarded_merge_patches() {
    let fake = FakeApiServer::start().await;
    let store = store(&fake, holder("runner-1 (GitLab CI job 7)", 4242));
    assert!(store.load().await.unwrap().is_none());
    store.claim(false).await.unwrap();

    // The claim created the ConfigMap with the owner only.
    let posts = fake.requests_with("POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/api/v1/namespaces/shop/configmaps");
    let created = config_map(&fake);
    crate::schemas::validate("configmaps", &created);
    assert_eq!(
        created["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "canary"
    );
    let owner: Holder = serde_json::from_str(created["data"][OWNER_KEY].as_str().unwrap()).unwrap();
    assert_eq!(owner.identity, "runner-1 (GitLab CI job 7)");
    assert_eq!(owner.pid, 4242);

    let rollout = a_rollout();
    fake.clear_requests();
    store.save(&rollout).await.unwrap();
    let patches = fake.requests_with("PATCH");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].content_type, "application/merge-patch+json");
    let body = patches[0].body.clone().unwrap();
    assert_eq!(
        body["metadata"],
        json!({"resourceVersion": created["metadata"]["resourceVersion"]})
    );
    assert_eq!(
        serde_json::from_str::<Rollout>(body["data"][ROLLOUT_KEY].as_str().unwrap()).unwrap(),
        rollout
    );
    assert_eq!(
        body["data"].as_object().unwrap().len(),
        2,
        "rollout and owner (renewed)"
    );
    assert_eq!(store.load().await.unwrap(), Some(rollout.clone()));
    crate::schemas::validate("configmaps", &config_map(&fake));

    // Releasing removes the owner, keeps the rollout.
    store.release().await.unwrap();
    let map = config_map(&fake);
    assert!(map["data"].get(OWNER_KEY).is_none(), "{map}");
    assert!(map["data"][ROLLOUT_KEY].is_string());
}

#[tokio::test]
async fn a_second_driver_is_refused_unless_it_takes_over() {
    let fake = FakeApiServer::start().await;
    let first = store(
        &fake,
        holder("runner-1 (GitHub Actions run 99 canary)", 100),
    );
    let second = store(&fake, holder("runner-2", 200));
    first.claim(false).await.unwrap();
    first.save(&a_rollout()).await.unwrap();

    let err = second.claim(false).await.unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Infrastructure);
    let message = err.to_string();
    assert!(
        message.contains("a rollout of checkout is in progress, owned by runner-1 (GitHub Actions run 99 canary) pid 100, started 2026-")
            && message.contains("last heartbeat")
            && message.contains("--take-over"),
        "{message}"
    );

    // Taking over: the second drives, the first is told at its next save and stops.
    second.claim(true).await.unwrap();
    let err = first.save(&a_rollout()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the claim on the rollout of checkout was taken over by runner-2 pid 200"),
        "{err}"
    );
    second.save(&a_rollout()).await.unwrap();
    // The first one's release leaves the second one's claim alone.
    first.release().await.unwrap();
    let owner = owner_of(&fake);
    assert_eq!(owner.identity, "runner-2");
}

/// A controller resuming a rollout loads it, asks who holds it, takes the claim over and
/// saves at its first tick: one read of the ConfigMap for all four (it was four reads). Every
/// write is still guarded by the resourceVersion it was decided on: a write in between is a
/// conflict, and the claim reads again and decides again.
#[tokio::test]
async fn a_resumption_reads_the_config_map_once_for_its_load_holder_claim_and_first_save() {
    let fake = FakeApiServer::start().await;
    let last_leader = store(&fake, holder("controller-a", 1));
    last_leader.claim(false).await.unwrap();
    last_leader.save(&a_rollout()).await.unwrap();

    let next_leader = store(&fake, holder("controller-b", 2));
    fake.clear_requests();
    assert_eq!(next_leader.load().await.unwrap(), Some(a_rollout()));
    let held_by = next_leader.holder().await.unwrap().expect("a holder");
    assert!(held_by.contains("controller-a"), "{held_by}");
    next_leader.claim(true).await.unwrap();
    next_leader.save(&a_rollout()).await.unwrap();
    let methods: Vec<String> = fake.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["GET", "PATCH", "PATCH"], "load, claim, save");
    let owner = owner_of(&fake);
    assert_eq!(owner.identity, "controller-b");

    // A claim written between a load that found the rollout free and the claim that would
    // decide on that load: the guarded write conflicts, the claim reads again and finds the
    // rollout in progress.
    next_leader.release().await.unwrap();
    let stale = store(&fake, holder("controller-c", 4));
    assert_eq!(stale.load().await.unwrap(), Some(a_rollout()));
    last_leader.claim(true).await.unwrap();
    let refused = stale.claim(false).await.unwrap_err();
    assert!(
        refused.to_string().contains("owned by controller-a"),
        "{refused}"
    );
    // The same for a save after the claim: taken over since, it reads and finds out.
    next_leader.claim(true).await.unwrap();
    last_leader.claim(true).await.unwrap();
    let lost = next_leader.save(&a_rollout()).await.unwrap_err();
    assert!(matches!(lost, Error::ClaimLost(_)), "{lost:?}");
}

/// A controller's store takes another controller's claim over, never a shell's (`canary
/// abort --kube` driving a rollout back) — also when the shell claims between the
/// controller's load and its claim, where the claim's first write conflicts and it reads
/// again (a review found the retry took the shell's claim over, and the controller then saved
/// the state it had loaded over the abort).
#[tokio::test]
async fn a_controller_takes_over_only_a_controllers_claim_even_one_written_meanwhile() {
    let fake = FakeApiServer::start().await;
    let (last_leader, next_leader) = two_controllers(&fake);
    last_leader.claim(false).await.unwrap();
    last_leader.save(&a_rollout()).await.unwrap();
    assert_eq!(next_leader.load().await.unwrap(), Some(a_rollout()));
    let shell = store(&fake, holder("laptop", 3));
    shell.claim(true).await.unwrap();
    let refused = next_leader.claim(true).await.unwrap_err();
    assert!(refused.to_string().contains("owned by laptop"), "{refused}");
    let owner = owner_of(&fake);
    assert_eq!(owner.identity, "laptop");

    // Once the shell is done, another controller's claim is taken over.
    shell.release().await.unwrap();
    last_leader.claim(false).await.unwrap();
    next_leader.claim(true).await.unwrap();
    let owner = owner_of(&fake);
    assert_eq!(owner.identity, "canary controller b");
}

/// A claim after a load refuses a state saved meanwhile — a shell's `canary abort --kube`
/// that took the claim, saved and released between a controller's load and its claim — so
/// the controller never saves the state it loaded over it; it loads again and claims then (a
/// review found the claim went through and the next save overwrote the abort).
#[tokio::test]
async fn a_claim_after_a_load_refuses_a_state_saved_meanwhile() {
    let fake = FakeApiServer::start().await;
    let (last_leader, next_leader) = two_controllers(&fake);
    last_leader.claim(false).await.unwrap();
    last_leader.save(&a_rollout()).await.unwrap();
    assert_eq!(next_leader.load().await.unwrap(), Some(a_rollout()));

    let shell = store(&fake, holder("laptop", 3));
    shell.claim(true).await.unwrap();
    let aborted = a_rollout_started(1_790_000_600);
    shell.save(&aborted).await.unwrap();
    shell.release().await.unwrap();

    let refused = next_leader.claim(true).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("changed since this process read it"),
        "{refused}"
    );
    assert_eq!(refused.exit_code(), ExitCode::Infrastructure);
    let map = config_map(&fake);
    assert!(
        map["data"].get(OWNER_KEY).is_none(),
        "nothing claimed: {map}"
    );
    // Loaded again, it is claimed.
    assert_eq!(next_leader.load().await.unwrap(), Some(aborted.clone()));
    next_leader.claim(true).await.unwrap();
    next_leader.save(&aborted).await.unwrap();
    assert_eq!(next_leader.load().await.unwrap(), Some(aborted));
}

#[tokio::test]
async fn a_claim_of_a_dead_process_on_this_host_is_stale() {
    let fake = FakeApiServer::start().await;
    let this = Holder::this_process();
    // A pid above the kernel's pid_max is never alive.
    let dead = Holder {
        pid: 4_194_304 + 1,
        ..this.clone()
    };
    store(&fake, dead).claim(false).await.unwrap();
    store(&fake, this).claim(false).await.unwrap();
}

/// A holder that stops renewing its claim (a paused or dead pod on another node, so no
/// process to look up) loses it once the time to live it promised has passed without a
/// heartbeat, and finds out before its next write; one that keeps renewing never does.
#[tokio::test]
async fn a_claim_without_heartbeats_is_taken_over_and_its_holder_finds_out() {
    let ttl = std::time::Duration::from_secs(3);
    let fake = FakeApiServer::start().await;
    let first = store(&fake, holder("runner-1", 1)).with_claim_ttl(ttl);
    let second = store(&fake, holder("runner-2", 2));
    first.claim(false).await.unwrap();
    first.save(&a_rollout()).await.unwrap();
    // Alive: a heartbeat a second, for longer than the time to live.
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        first.heartbeat().await.unwrap();
        let refused = second.claim(false).await.unwrap_err();
        assert!(refused.to_string().contains("runner-1"), "{refused}");
    }
    // Silent for longer than its time to live: stale, taken over without --take-over.
    tokio::time::sleep(ttl + std::time::Duration::from_millis(500)).await;
    second.claim(false).await.unwrap();
    for lost in [
        first.check_claim().await.unwrap_err(),
        first.heartbeat().await.unwrap_err(),
        first.save(&a_rollout()).await.unwrap_err(),
    ] {
        assert!(matches!(lost, Error::ClaimLost(_)), "{lost:?}");
        assert!(
            lost.to_string().contains("taken over by runner-2"),
            "{lost}"
        );
        assert_eq!(lost.exit_code(), ExitCode::Infrastructure);
    }
    second.check_claim().await.unwrap();
}

/// An abort always wins: a promote left after it is refused (exit 2, nothing changed), and
/// an abort takes the place of a pending promote.
#[tokio::test]
async fn a_pending_abort_is_never_replaced_by_a_promote() {
    let fake = FakeApiServer::start().await;
    let driver = store(&fake, holder("runner-1", 1));
    let operator_a = store(&fake, holder("laptop-a", 2));
    let operator_b = store(&fake, holder("laptop-b", 3));
    driver.claim(false).await.unwrap();
    let at = |seconds: i64| Timestamp::from_second(1_790_000_000 + seconds).unwrap();
    let abort = ControlRequest::for_rollout(
        ControlAction::Abort {
            reason: "errors climbing".to_owned(),
        },
        &a_rollout(),
        at(30),
    );
    let promote = ControlRequest::for_rollout(ControlAction::Promote, &a_rollout(), at(35));
    operator_a.request(&abort).await.unwrap();
    let refused = operator_b.request(&promote).await.unwrap_err();
    assert_eq!(refused.exit_code(), ExitCode::BadInput);
    let message = refused.to_string();
    assert!(
        message.starts_with("refusing the promote of the rollout in ConfigMap")
            && message.contains("an abort (errors climbing) requested at"),
        "{message}"
    );
    assert_eq!(driver.take_request().await.unwrap(), Some(abort.clone()));

    operator_b.request(&promote).await.unwrap();
    let later_abort = ControlRequest::for_rollout(abort.action.clone(), &a_rollout(), at(40));
    operator_a.request(&later_abort).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(driver.take_request().await.unwrap(), Some(later_abort));
}

#[tokio::test]
async fn requests_are_taken_once_and_conflicts_retried() {
    let fake = FakeApiServer::start().await;
    let driver = store(&fake, holder("runner-1", 1));
    let shell = store(&fake, holder("laptop", 2));
    driver.claim(false).await.unwrap();
    assert_eq!(driver.take_request().await.unwrap(), None);

    // `canary abort` from another shell: its claim is refused, so it leaves a request.
    assert!(shell.claim(false).await.is_err());
    let abort = ControlRequest::for_rollout(
        ControlAction::Abort {
            reason: "bad deploy".to_owned(),
        },
        &a_rollout(),
        Timestamp::from_second(1_790_000_030).unwrap(),
    );
    shell.request(&abort).await.unwrap();
    // The driver asks the API server at most once a second: it finds the request within
    // that, and takes it only once (the second look waits out the throttle to ask again).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let taken = loop {
        if let Some(request) = driver.take_request().await.unwrap() {
            break request;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the driver never found the request"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(taken, abort);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(driver.take_request().await.unwrap(), None);

    // A save based on a read that another writer made stale is redone.
    fake.clear_requests();
    fake.interfere_with_next_writes(2);
    driver.save(&a_rollout()).await.unwrap();
    let statuses: Vec<u16> = fake
        .requests_with("PATCH")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [409, 409, 200]);
    assert_eq!(driver.load().await.unwrap(), Some(a_rollout()));
}

#[tokio::test]
async fn archives_and_corrupt_state() {
    let fake = FakeApiServer::start().await;
    let driver = store(&fake, holder("runner-1", 1));
    driver.claim(false).await.unwrap();
    let rollout = a_rollout();
    driver.save(&rollout).await.unwrap();
    let place = driver.archive(&rollout).await.unwrap();
    assert_eq!(
        place,
        "ConfigMap shop/canary-rollout-checkout-20260921-141320"
    );
    let archived = fake
        .object(
            "",
            "configmaps",
            NS,
            "canary-rollout-checkout-20260921-141320",
        )
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Rollout>(archived["data"][ROLLOUT_KEY].as_str().unwrap()).unwrap(),
        rollout
    );
    assert!(driver.load().await.unwrap().is_none());

    // A state that does not parse is an error, never a fresh start.
    let mut map = config_map(&fake);
    map["data"][ROLLOUT_KEY] = json!("{ not json");
    map["metadata"] = json!({"name": "canary-rollout-checkout", "namespace": NS});
    let fake = FakeApiServer::start().await;
    fake.insert(map);
    let err = store(&fake, holder("runner-1", 1))
        .load()
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert!(
        chain(&err).contains("key rollout.json: the saved rollout state does not parse"),
        "{err}"
    );

    // A service name a ConfigMap can't carry needs --state-configmap.
    let connection = KubeConnection::from_client(fake.client(NS), NS);
    let err = ConfigMapStateStore::new(connection, None, "Checkout_API", None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("--state-configmap"), "{err}");
}

/// A live driver elsewhere — on a host whose name merely starts with this one's
/// (`ci-runner-7` seen from `ci`), or on this host in another pid namespace (a container
/// with the host's network) — is never taken for a dead process of this host: its pid
/// means nothing here, so only its heartbeat can make its claim stale (the file store's
/// rule, `stores/file.rs`).
#[tokio::test]
async fn a_live_driver_on_another_host_or_pid_namespace_is_not_taken_for_a_dead_local_one() {
    let this = Holder::this_process();
    let mine = serde_json::to_value(&this).unwrap();
    let host = this.identity.split(' ').next().unwrap().to_owned();
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap();
    let elsewhere = [
        // Another host, its name starting with this one's.
        serde_json::json!({"host": format!("{host}-7"), "pidNamespace": namespace}),
        // This host, another pid namespace.
        serde_json::json!({"host": host, "pidNamespace": "pid:[1]"}),
        // Another machine of the same name (two CI VMs called `runner`), whose initial pid
        // namespace has the same name as this one's: another boot id (review finding of
        // 2026-12-01; this case failed before the boot id was recorded).
        serde_json::json!({
            "host": this.host.clone().unwrap(),
            "pidNamespace": namespace,
            "bootId": "00000000-0000-4000-8000-000000000000"
        }),
    ];
    for place in elsewhere {
        let fake = FakeApiServer::start().await;
        let mut record = mine.clone();
        record["identity"] = format!("{host}-7 (GitLab CI job 99)").into();
        // A pid above the kernel's pid_max: no such process here.
        record["pid"] = (4_194_304 + 1).into();
        record["renewedAt"] = mine["startedAt"].clone();
        for (key, value) in place.as_object().unwrap() {
            record[key] = value.clone();
        }
        let live: Holder = serde_json::from_value(record.clone()).unwrap();
        store(&fake, live).claim(false).await.unwrap();
        let refused = store(&fake, this.clone()).claim(false).await.unwrap_err();
        assert!(
            refused.to_string().contains("GitLab CI job 99"),
            "{record}: {refused}"
        );
    }
}

/// Review finding of 2026-12-01: the controller's state ConfigMap was written through a
/// connection without the Lease fence's guard, checked once before `claim(true)`; a claim
/// retried after a 409 took the claim from whoever held it by then — a deposed leader
/// woken after its fence closed took it back from the new leader, whose rollout task then
/// stopped. Now every attempt asks the guard: the retry is not sent.
#[tokio::test]
async fn a_claim_retried_after_a_conflict_is_not_sent_once_the_guard_closes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let fake = FakeApiServer::start().await;
    let new_leader = store(&fake, holder("controller-b", 200));
    new_leader.claim(false).await.unwrap();
    new_leader.save(&a_rollout()).await.unwrap();
    let left = Arc::new(AtomicU32::new(1));
    let guard = canary_kubernetes::WriteGuard::new(move || {
        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(|_| ())
            .map_err(|_| "the test's lease is lost".to_owned())
    });
    let deposed = ConfigMapStateStore::new(
        KubeConnection::from_client(fake.client(NS), NS).with_write_guard(guard),
        None,
        "checkout",
        None,
    )
    .unwrap()
    .with_holder(holder("controller-a", 100));
    fake.clear_requests();
    fake.interfere_with_next_writes(1);
    let err = deposed.claim(true).await.expect_err("refused by the guard");
    assert!(
        chain(&err).contains("the test's lease is lost"),
        "{}",
        chain(&err)
    );
    let writes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| ["POST", "PUT", "PATCH"].contains(&r.method.as_str()))
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(
        writes,
        [("PATCH".to_owned(), 409)],
        "only the conflicting PATCH"
    );
    let owner = owner_of(&fake);
    assert_eq!(
        owner.identity, "controller-b",
        "the new leader keeps its claim"
    );
}

/// A driver saving at each tick reads the ConfigMap only when its last save is not the
/// ConfigMap's latest version: its next save is a merge patch guarded by the version its
/// own last save produced (the controller's 10,000 rollouts saved with a GET before each
/// PATCH). Whatever changed the ConfigMap in between — a take-over, a request left, a
/// deletion — fails that guard, and the save reads and decides as before.
#[tokio::test]
async fn saves_in_a_row_read_nothing_and_a_change_in_between_is_still_seen() {
    let fake = FakeApiServer::start().await;
    let first = store(&fake, holder("runner-1", 100));
    let second = store(&fake, holder("runner-2", 200));
    first.claim(false).await.unwrap();
    let rollout = a_rollout();
    first.save(&rollout).await.unwrap();

    fake.clear_requests();
    first.save(&rollout).await.unwrap();
    first.save(&rollout).await.unwrap();
    let methods: Vec<String> = fake.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["PATCH", "PATCH"], "two saves, no reads");
    let patches = fake.requests_with("PATCH");
    assert_ne!(
        patches[0].body.as_ref().unwrap()["metadata"]["resourceVersion"],
        patches[1].body.as_ref().unwrap()["metadata"]["resourceVersion"],
        "each guarded by the version the save before it produced"
    );
    assert_eq!(first.load().await.unwrap(), Some(rollout.clone()));

    // A request left in between: the guard fails, the save reads, keeps the request, writes.
    let request = ControlRequest::for_rollout(ControlAction::Promote, &rollout, Timestamp::now());
    second.request(&request).await.unwrap();
    first.save(&rollout).await.unwrap();
    assert!(
        config_map(&fake)["data"]
            .get(canary_kubernetes::REQUEST_KEY)
            .is_some(),
        "the request survives the save"
    );

    // Taken over in between: the next save finds out, as it did when it read first.
    second.claim(true).await.unwrap();
    let err = first.save(&rollout).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the claim on the rollout of checkout was taken over by runner-2 pid 200"),
        "{err}"
    );
    let owner = owner_of(&fake);
    assert_eq!(owner.identity, "runner-2", "the lost save wrote nothing");

    // Deleted in between: the save creates it again, as it did when it read first.
    let third = store(&fake, holder("runner-3", 300));
    third.claim(true).await.unwrap();
    third.save(&rollout).await.unwrap();
    fake.remove("", "configmaps", NS, "canary-rollout-checkout");
    third.save(&rollout).await.unwrap();
    assert_eq!(third.load().await.unwrap(), Some(rollout));
}
