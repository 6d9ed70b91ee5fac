//! Leader election on a `coordination.k8s.io/v1` Lease
//! (`canary_kubernetes::controller::lease`) against the API fake, which stores Leases as the
//! API server does (resourceVersion on every write, 409 for a stale one, `MicroTime` fields
//! and `leaseDurationSeconds` validated): who leads, when a standby may take over, and that a
//! leader whose Lease was written by another is deposed, its fence closed.

use std::time::{Duration, Instant};

use canary_fake_kube_api::FakeApiServer;
use canary_kubernetes::KubernetesError;
use canary_kubernetes::controller::{LeaderElector, LeaseSettings, Round};
use serde_json::{Value, json};

const NS: &str = "canary-system";
const LEASE: &str = "canary-controller";

/// A candidate called `identity` with a 2 s lease (deadline 1 s, retry 100 ms).
fn candidate(fake: &FakeApiServer, identity: &str) -> LeaderElector {
    LeaderElector::new(
        fake.client(NS),
        LeaseSettings {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(1),
            retry_period: Duration::from_millis(100),
            ..LeaseSettings::new(NS.to_owned(), LEASE.to_owned(), identity.to_owned())
        },
    )
}

fn lease(fake: &FakeApiServer) -> Value {
    fake.object("coordination.k8s.io", "leases", NS, LEASE)
        .expect("the Lease")
}

#[tokio::test]
async fn the_first_candidate_creates_the_lease_and_leads_and_the_second_stands_by() {
    let fake = FakeApiServer::start().await;
    let mut a = candidate(&fake, "a");
    let mut b = candidate(&fake, "b");
    assert!(!a.fence().is_open(), "no write before leading");
    assert_eq!(a.round().await.unwrap(), Round::Leading);
    assert!(a.fence().is_open());
    let written = lease(&fake);
    assert_eq!(written["spec"]["holderIdentity"], "a", "{written}");
    assert_eq!(written["spec"]["leaseDurationSeconds"], 2, "{written}");
    assert_eq!(written["spec"]["leaseTransitions"], 0, "{written}");
    // The fake decodes renewTime as the API server does (six fractional digits).
    assert!(
        written["spec"]["renewTime"]
            .as_str()
            .is_some_and(|t| t.len() == "2026-12-01T02:45:25.123456Z".len()),
        "{written}"
    );
    assert_eq!(
        b.round().await.unwrap(),
        Round::StandingBy {
            holder: "a".to_owned()
        }
    );
    assert!(!b.fence().is_open());
    // A renews: the same holder, a later renewTime, a new resourceVersion.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(a.round().await.unwrap(), Round::Leading);
    let renewed = lease(&fake);
    assert_eq!(renewed["spec"]["holderIdentity"], "a");
    assert_ne!(renewed["spec"]["renewTime"], written["spec"]["renewTime"]);
    assert_ne!(
        renewed["metadata"]["resourceVersion"],
        written["metadata"]["resourceVersion"]
    );
}

/// A standby looks again right when the holder's lease runs out by its clock, not a whole
/// retry period later: with a 2 s lease and a 30 s retry period it leads at 2 s (it led at
/// 30 s before; 2 s of the shipped 15 s lease's failover).
#[tokio::test]
async fn a_standby_looks_again_when_the_lease_runs_out_not_a_retry_period_later() {
    let fake = FakeApiServer::start().await;
    let mut a = candidate(&fake, "a");
    assert_eq!(a.round().await.unwrap(), Round::Leading);
    let mut b = LeaderElector::new(
        fake.client(NS),
        LeaseSettings {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(1),
            retry_period: Duration::from_secs(30),
            ..LeaseSettings::new(NS.to_owned(), LEASE.to_owned(), "b".to_owned())
        },
    );
    let started = Instant::now();
    assert_eq!(
        b.round().await.unwrap(),
        Round::StandingBy {
            holder: "a".to_owned()
        }
    );
    let next = b.next_look();
    assert!(
        next <= Duration::from_secs(2) && next > Duration::from_secs(1),
        "{next:?}"
    );
    tokio::time::timeout(Duration::from_secs(20), b.acquire(|_| {}, |_| {}))
        .await
        .expect("B leads long before its retry period")
        .unwrap();
    let led_at = started.elapsed();
    assert!(led_at >= Duration::from_secs(2), "B led at {led_at:?}");
    assert_eq!(lease(&fake)["spec"]["holderIdentity"], "b");
    // Leading, or with no holder seen, the pace is the retry period.
    assert_eq!(b.next_look(), Duration::from_secs(30));
}

/// A standby takes over only once it has seen no renewal for the lease's duration by its
/// own clock, and by then the leader that stopped renewing has stopped writing: its fence
/// closed at its renew deadline (1 s), a second before the standby could lead (2 s).
#[tokio::test]
async fn a_standby_takes_over_after_the_lease_duration_and_the_silent_leader_is_fenced_first() {
    let fake = FakeApiServer::start().await;
    let mut a = candidate(&fake, "a");
    let mut b = candidate(&fake, "b");
    assert_eq!(a.round().await.unwrap(), Round::Leading);
    let fence = a.fence();
    let started = Instant::now();
    // A stops renewing (paused); B looks every retry period.
    let mut closed_at = None;
    let led_at = loop {
        if closed_at.is_none() && !fence.is_open() {
            closed_at = Some(started.elapsed());
        }
        if b.round().await.unwrap() == Round::Leading {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "B never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let closed_at = closed_at.expect("A's fence closed before B led");
    assert!(closed_at <= Duration::from_millis(1100), "{closed_at:?}");
    assert!(led_at >= Duration::from_secs(2), "B led at {led_at:?}");
    assert!(
        led_at >= closed_at + Duration::from_millis(800),
        "the margin between A's last write and B's first: {closed_at:?} → {led_at:?}"
    );
    let taken = lease(&fake);
    assert_eq!(taken["spec"]["holderIdentity"], "b", "{taken}");
    assert_eq!(taken["spec"]["leaseTransitions"], 1, "{taken}");
    // A wakes: it finds B holding the Lease, and stays deposed.
    assert_eq!(
        a.round().await.unwrap(),
        Round::StandingBy {
            holder: "b".to_owned()
        }
    );
    assert!(!fence.is_open());
}

/// Another writer changes the Lease between the leader's read and its renewal: the renewal
/// carries the stale resourceVersion, the fake answers 409 as the API server does, and the
/// leader is deposed at once (its fence closes before its deadline).
#[tokio::test]
async fn a_renewal_based_on_a_stale_read_is_refused_and_deposes_the_leader() {
    let fake = FakeApiServer::start().await;
    let mut a = candidate(&fake, "a");
    assert_eq!(a.round().await.unwrap(), Round::Leading);
    fake.interfere_with_next_writes(1);
    assert!(matches!(a.round().await.unwrap(), Round::StandingBy { .. }));
    assert!(!a.fence().is_open(), "deposed before its deadline");
    let conflicts = fake
        .requests_with("PUT")
        .iter()
        .filter(|r| r.path.ends_with("/leases/canary-controller") && r.status == 409)
        .count();
    assert_eq!(conflicts, 1);
    // Deposed for good, even though the Lease still names it.
    assert!(matches!(a.round().await.unwrap(), Round::StandingBy { .. }));
    assert!(!a.fence().is_open());
}

/// The Lease stolen from a running leader (written to name another holder): its next
/// renewal finds it, `keep` returns the loss, and the fence is closed.
#[tokio::test]
async fn a_leader_whose_lease_is_taken_finds_out_at_its_next_renewal() {
    let fake = FakeApiServer::start().await;
    let mut a = candidate(&fake, "a");
    assert_eq!(a.round().await.unwrap(), Round::Leading);
    let fence = a.fence();
    let keeping = tokio::spawn(async move { a.keep(|_| {}).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fence.is_open(), "renewed while nobody else wrote");
    let mut stolen = lease(&fake);
    stolen["spec"]["holderIdentity"] = json!("thief");
    fake.replace(stolen);
    let lost = tokio::time::timeout(Duration::from_secs(2), keeping)
        .await
        .expect("keep returned within a retry period or two")
        .unwrap();
    assert!(!fence.is_open());
    assert!(
        matches!(&lost, KubernetesError::LeaseLost { why, .. } if why.contains("thief")),
        "{lost}"
    );
    assert!(
        lost.to_string()
            .contains("lost the leader Lease canary-system/canary-controller"),
        "{lost}"
    );
}

/// Without the Role's rules for Leases, the first round is refused (403) and the error names
/// the rule to grant, as every refusal of canary's does.
#[tokio::test]
async fn a_candidate_refused_the_lease_names_the_missing_rule() {
    let fake = FakeApiServer::start().await;
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "nothing-on-leases", "namespace": NS},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }))
    .unwrap();
    fake.grant(&[role], &[]);
    let mut a = candidate(&fake, "a");
    let err = a.round().await.unwrap_err();
    assert!(matches!(err, KubernetesError::Forbidden { .. }), "{err:?}");
    assert!(
        err.to_string().contains(
            "{apiGroups: [\"coordination.k8s.io\"], resources: [\"leases\"], verbs: [\"get\"], resourceNames: [\"canary-controller\"]} in a Role of namespace canary-system"
        ),
        "{err}"
    );
    assert!(!a.fence().is_open());
}

/// A leader that stops (SIGTERM) gives the Lease up: its fence closes for good, the Lease
/// names nobody, and a standby leads at its next look rather than after the lease duration.
#[tokio::test]
async fn a_released_lease_is_taken_by_the_standby_at_once() {
    let fake = FakeApiServer::start().await;
    let mut a = candidate(&fake, "a");
    let mut b = candidate(&fake, "b");
    assert_eq!(a.round().await.unwrap(), Round::Leading);
    assert!(matches!(b.round().await.unwrap(), Round::StandingBy { .. }));
    a.release().await.unwrap();
    assert!(!a.fence().is_open());
    let released = lease(&fake);
    assert!(released["spec"]["holderIdentity"].is_null(), "{released}");
    assert_eq!(
        b.round().await.unwrap(),
        Round::Leading,
        "no wait for a free Lease"
    );
    assert_eq!(lease(&fake)["spec"]["holderIdentity"], "b");
    // Releasing a Lease another holds leaves it alone.
    a.release().await.unwrap();
    assert_eq!(lease(&fake)["spec"]["holderIdentity"], "b");
}
