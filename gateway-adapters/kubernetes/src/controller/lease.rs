//! Leader election on a `coordination.k8s.io/v1` Lease, and the [`Fence`] every write of
//! the leader checks.
//!
//! The algorithm is client-go's `leaderelection` (the one kube-controller-manager uses),
//! written on kube's typed API because the crates for it did not fit: kube-lease-manager
//! needs kube 5, and kube-leader-election writes the Lease with merge patches that carry no
//! resourceVersion, so two standbys taking over at once both believe they lead.
//!
//! - Every write of the Lease is a PUT carrying the resourceVersion just read: of two
//!   writers, one gets 409 Conflict and does not lead (optimistic concurrency).
//! - A standby takes the Lease over only after it has seen the same resourceVersion for
//!   the holder's `leaseDurationSeconds`, measured on its OWN monotonic clock from when it
//!   first saw that version — never by comparing the holder's `renewTime` with its wall
//!   clock, so skewed clocks do not shorten a lease.
//! - The leader may write until `renew_deadline` after it SENT the read that began its last
//!   successful renewal ([`Fence`]). A standby takes over at the earliest `lease_duration`
//!   after it saw that renewal, which the server applied after the read was sent: between
//!   the two lie `lease_duration - renew_deadline` (5 s by default), the margin for a write
//!   that passed the fence and is still on its way, and for clocks that tick at slightly
//!   different rates. A write delayed longer than that margin after its check (a process
//!   paused between the check and the send) is the window that remains; docs/kubernetes.md
//!   says so.
//!
//! A leader that finds the Lease taken, or cannot renew it before its deadline, is deposed:
//! its fence closes for good (a new process, not this one, may lead again).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::{KubernetesError, Permission, Result, api_error, is_conflict, is_not_found};

/// The API group of Leases.
const GROUP: &str = "coordination.k8s.io";

/// How a controller takes part in the election.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name (one per shard).
    pub name: String,
    /// Who this process is, unique among the candidates (`spec.holderIdentity`).
    pub identity: String,
    /// How long a standby waits without seeing a renewal before it takes over
    /// (`spec.leaseDurationSeconds`, whole seconds, at least 1).
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal the leader still writes.
    /// Shorter than `lease_duration`; the difference is the fence's margin.
    pub renew_deadline: Duration,
    /// How often the leader renews, and a standby looks.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// client-go's defaults: a 15 s lease, renewed every 2 s, the leader writing for at most
    /// 10 s after its last renewal began.
    pub fn new(namespace: String, name: String, identity: String) -> LeaseSettings {
        LeaseSettings {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks the durations' order: `retry_period < renew_deadline < lease_duration`.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err("the lease duration must be at least 1s".to_owned());
        }
        // The Lease carries whole seconds, which is what a standby waits; a fraction would
        // be cut off there while this process fenced itself against the longer duration
        // (4.5s written as 4: a standby could lead while the holder still writes).
        if self.lease_duration.subsec_nanos() != 0 {
            return Err(format!(
                "the lease duration ({:?}) must be whole seconds: the Lease's `leaseDurationSeconds` carries no fraction",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?}): the difference is the fence's margin",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    /// `namespace/name`, for messages.
    pub fn describe(&self) -> String {
        format!("Lease {}/{}", self.namespace, self.name)
    }
}

/// Whether this process may still write: open while it leads, closed before a standby can
/// have taken over. Cheap to clone and to check (an atomic read of the monotonic clock's
/// deadline); every writer of the controller checks it right before it writes.
#[derive(Clone, Debug)]
pub struct Fence {
    state: Arc<FenceState>,
}

#[derive(Debug)]
struct FenceState {
    /// The origin of `until`.
    origin: Instant,
    /// Writes are allowed until `origin + until` nanoseconds (0: not yet).
    until: AtomicU64,
    /// Set once deposed: the fence never opens again.
    deposed: AtomicBool,
    /// The Lease, for messages.
    lease: String,
}

impl Fence {
    /// A closed fence for the Lease described.
    pub fn new(lease: impl Into<String>) -> Fence {
        Fence {
            state: Arc::new(FenceState {
                origin: Instant::now(),
                until: AtomicU64::new(0),
                deposed: AtomicBool::new(false),
                lease: lease.into(),
            }),
        }
    }

    /// Whether a write may go out now.
    pub fn is_open(&self) -> bool {
        if self.state.deposed.load(Ordering::SeqCst) {
            return false;
        }
        let until = self.state.until.load(Ordering::SeqCst);
        until > 0 && self.elapsed_nanos() < until
    }

    /// `Ok` while a write may go out; otherwise why not, in words.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.is_open() {
            Ok(())
        } else {
            Err(format!(
                "this controller does not hold the {} (deposed, or not renewed in time): it writes nothing more",
                self.state.lease
            ))
        }
    }

    /// Opens the fence until `deadline` (never moves it back, never reopens it once deposed).
    fn extend_to(&self, deadline: Instant) {
        let nanos = u64::try_from(
            deadline
                .saturating_duration_since(self.state.origin)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX)
        .max(1);
        self.state.until.fetch_max(nanos, Ordering::SeqCst);
    }

    /// Closes the fence for good.
    fn depose(&self) {
        self.state.deposed.store(true, Ordering::SeqCst);
    }

    fn elapsed_nanos(&self) -> u64 {
        u64::try_from(self.state.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What one round of the election found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Round {
    /// This process holds the Lease (acquired or renewed now).
    Leading,
    /// Another holds it, and its lease has not run out (as far as this process has seen).
    StandingBy {
        /// Its `holderIdentity`.
        holder: String,
    },
}

/// The shortest wait between two looks of a standby (one right at the lease's end may come
/// a moment early).
const LOOK_AT_LEAST: Duration = Duration::from_millis(10);

/// One candidate in the election of a Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    fence: Fence,
    /// The Lease's resourceVersion last seen, and when this process first saw it.
    observed: Option<(String, Instant)>,
    /// Standing by: when the holder's lease runs out by this process' clock, unless the
    /// version seen changes first (see [`LeaderElector::next_look`]).
    runs_out: Option<Instant>,
}

impl LeaderElector {
    /// A candidate with `client`; it holds nothing until [`LeaderElector::round`] says so.
    pub fn new(client: kube::Client, settings: LeaseSettings) -> LeaderElector {
        let fence = Fence::new(settings.describe());
        LeaderElector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            fence,
            observed: None,
            runs_out: None,
        }
    }

    /// The fence of this candidate's writes.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// The settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// One round of client-go's `tryAcquireOrRenew`: reads the Lease; creates it when
    /// there is none; renews it when this process holds it; takes it over when it is free
    /// or its holder has not renewed it for its duration (by this process' clock); else
    /// stands by. A 409 on any write means another candidate wrote first: stand by.
    pub async fn round(&mut self) -> Result<Round> {
        let started = Instant::now();
        self.runs_out = None;
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|err| self.error("get", true, err))?;
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => Ok(self.leading(&created, started)),
                Err(err) if is_conflict(&err) => Ok(Round::StandingBy {
                    holder: "another candidate (it created the Lease first)".to_owned(),
                }),
                Err(err) => Err(self.error("create", false, err)),
            };
        };
        let version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        // A version seen for the first time is stamped with the time its answer ARRIVED (as
        // client-go stamps `observedTime` after its Get): a slow GET was sent before the
        // renewal it reports, and stamping it with the send time would start the standby's
        // wait early by the GET's latency, eating into the margin between the leader's renew
        // deadline and the lease's duration. (The leader's own fence rightly counts from the
        // round's start: `started`.)
        let answered = Instant::now();
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                self.observed = Some((version.clone(), answered));
                answered
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let ours = holder == self.settings.identity;
        let (acquired, transitions) = if ours {
            if self.fence.state.deposed.load(Ordering::SeqCst) {
                // Deposed once: this process never leads again, even if the Lease shows it.
                return Ok(Round::StandingBy { holder });
            }
            (spec.acquire_time.map_or(now, |t| t.0), transitions)
        } else {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.settings.lease_duration, Duration::from_secs);
            let free = holder.is_empty();
            if !free && started.saturating_duration_since(first_seen) < duration {
                self.runs_out = Some(first_seen + duration);
                if self.fence.state.until.load(Ordering::SeqCst) > 0 {
                    // This process led, and another holds the Lease now: deposed.
                    self.fence.depose();
                }
                return Ok(Round::StandingBy { holder });
            }
            (now, transitions.saturating_add(1))
        };
        let mut lease = current.clone();
        lease.spec = Some(self.spec(acquired, now, transitions));
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => Ok(self.leading(&written, started)),
            Err(err) if is_conflict(&err) || is_not_found(&err) => {
                if ours {
                    // Someone else wrote the Lease since it was read: no longer ours to renew.
                    self.fence.depose();
                }
                Ok(Round::StandingBy {
                    holder: "another candidate (it wrote the Lease first)".to_owned(),
                })
            }
            Err(err) => Err(self.error("update", true, err)),
        }
    }

    /// Blocks until this process leads; `standing_by` hears who holds the Lease (once per
    /// change of holder), `failed` of each look that failed (and is retried).
    pub async fn acquire(
        &mut self,
        mut standing_by: impl FnMut(&str),
        mut failed: impl FnMut(&KubernetesError),
    ) -> Result<()> {
        let mut last = None;
        loop {
            match self.round().await {
                Ok(Round::Leading) => return Ok(()),
                Ok(Round::StandingBy { holder }) => {
                    if last.as_ref() != Some(&holder) {
                        standing_by(&holder);
                        last = Some(holder);
                    }
                }
                // A refusal (403) is a configuration problem: say it at once.
                Err(err @ KubernetesError::Forbidden { .. }) => return Err(err),
                // Anything else (the API server restarting) passes: try again.
                Err(err) => failed(&err),
            }
            tokio::time::sleep(self.next_look()).await;
        }
    }

    /// How long a standby waits before its next look: the retry period, or less — until the
    /// holder's lease runs out by this process' clock, when that comes sooner. Looking only
    /// every retry period, a standby led up to a retry period after the lease ran out (2 s of
    /// the shipped 15 s); the rule it leads by is the same (the same version seen for the
    /// lease duration).
    pub fn next_look(&self) -> Duration {
        let retry = self.settings.retry_period;
        match self.runs_out {
            Some(runs_out) => runs_out
                .saturating_duration_since(Instant::now())
                .clamp(LOOK_AT_LEAST, retry.max(LOOK_AT_LEAST)),
            None => retry,
        }
    }

    /// Renews the Lease every retry period for as long as this process leads; returns why
    /// it stopped leading (the fence is closed by then). A renewal that fails is retried
    /// until the renew deadline of the last good one has passed; `failed` hears of each
    /// failure.
    pub async fn keep(&mut self, mut failed: impl FnMut(&KubernetesError)) -> KubernetesError {
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            if !self.fence.is_open() {
                self.fence.depose();
                return self.lost(format!(
                    "not renewed within the renew deadline ({:?})",
                    self.settings.renew_deadline
                ));
            }
            match self.round().await {
                Ok(Round::Leading) => {}
                Ok(Round::StandingBy { holder }) => {
                    self.fence.depose();
                    return self.lost(format!("{holder} holds it now"));
                }
                Err(err @ KubernetesError::Forbidden { .. }) => {
                    self.fence.depose();
                    return err;
                }
                Err(err) => failed(&err),
            }
        }
    }

    /// Gives the Lease up, as client-go's `ReleaseOnCancel` does, so that a standby leads at
    /// its next look instead of after the lease duration: first closes the fence for good
    /// (the caller has stopped every writer), then, if the Lease still names this process,
    /// empties its holder (a PUT with the resourceVersion read: a Lease written meanwhile by
    /// another is left alone).
    pub async fn release(&mut self) -> Result<()> {
        self.fence.depose();
        let Some(current) = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|err| self.error("get", true, err))?
        else {
            return Ok(());
        };
        let spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        let now = Timestamp::now();
        let mut lease = current;
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            ..spec
        });
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_conflict(&err) || is_not_found(&err) => Ok(()),
            Err(err) => Err(self.error("update", true, err)),
        }
    }

    /// Leads from now: opens the fence until the renew deadline after `started`.
    fn leading(&mut self, written: &Lease, started: Instant) -> Round {
        self.observed = written
            .metadata
            .resource_version
            .clone()
            .map(|version| (version, started));
        self.fence.extend_to(started + self.settings.renew_deadline);
        Round::Leading
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.settings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn error(&self, verb: &'static str, named: bool, err: kube::Error) -> KubernetesError {
        api_error(
            &self.settings.describe(),
            Permission {
                verb,
                api_group: GROUP.to_owned(),
                resource: "leases".to_owned(),
                namespace: self.settings.namespace.clone(),
                name: named.then(|| self.settings.name.clone()),
            },
            err,
        )
    }

    fn lost(&self, why: String) -> KubernetesError {
        KubernetesError::LeaseLost {
            lease: self.settings.describe(),
            why,
        }
    }
}

impl Fence {
    /// A fence that is always open, for a process that is the only writer by construction
    /// (a test of the code around the fence); the controller never uses one.
    pub fn always_open(lease: impl Into<String>) -> Fence {
        let fence = Fence::new(lease);
        fence.state.until.store(u64::MAX, Ordering::SeqCst);
        fence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_closed_until_a_renewal_opens_it_and_closes_at_its_deadline() {
        let fence = Fence::new("Lease shop/canary-controller");
        assert!(!fence.is_open(), "closed before any renewal");
        assert!(
            fence
                .check()
                .unwrap_err()
                .contains("Lease shop/canary-controller")
        );
        fence.extend_to(Instant::now() + Duration::from_secs(60));
        assert!(fence.is_open());
        // A renewal that began earlier never moves the deadline back.
        fence.extend_to(Instant::now());
        assert!(fence.is_open());
        let short = Fence::new("Lease shop/short");
        short.extend_to(Instant::now() + Duration::from_millis(20));
        assert!(short.is_open());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!short.is_open(), "closed once its deadline passed");
    }

    #[test]
    fn a_deposed_fence_never_opens_again() {
        let fence = Fence::new("Lease shop/canary-controller");
        fence.extend_to(Instant::now() + Duration::from_secs(60));
        fence.depose();
        assert!(!fence.is_open());
        fence.extend_to(Instant::now() + Duration::from_secs(120));
        assert!(!fence.is_open(), "a deposed leader stays deposed");
    }

    #[test]
    fn settings_keep_the_retry_period_below_the_deadline_below_the_duration() {
        let ok = LeaseSettings::new("ns".into(), "lease".into(), "me".into());
        assert_eq!(ok.check(), Ok(()));
        let mut bad = ok.clone();
        bad.renew_deadline = bad.lease_duration;
        assert!(bad.check().unwrap_err().contains("renew deadline"));
        let mut bad = ok.clone();
        bad.retry_period = bad.renew_deadline;
        assert!(bad.check().unwrap_err().contains("retry period"));
        // Review finding of 2026-12-01: 4.5 s was written as `leaseDurationSeconds: 4`, so a
        // standby could lead 4 s after a renewal while the holder wrote until 4.2 s after it.
        let mut bad = ok;
        bad.lease_duration = Duration::from_millis(4500);
        bad.renew_deadline = Duration::from_millis(4200);
        assert!(bad.check().unwrap_err().contains("must be whole seconds"));
    }
}
