//! The ports: what the core needs from the outside world, as traits the adapters implement.
//!
//! The metrics crate implements [`MetricsSource`] (Prometheus, direct scrape, recorded
//! data), the gateway crate implements [`TrafficRouter`] (HAProxy, NGINX, a command,
//! Kubernetes resources), and the binary carries them out. The core only ever sees these
//! traits, so the simulator and the tests can stand in for any of them.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::observation::Tick;
use crate::policy::StepRoute;
use crate::rollout::{ControlRequest, Rollout};
use crate::{Error, Result};

/// Reads the evidence for one tick.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// Reads every check of the policy, evaluated at `at`, cumulative since `since` (the
    /// start of the analysis). One query per check, returning both versions at once.
    /// Errors are for a source that cannot be reached or answered nothing usable at all;
    /// a check whose answer is empty or malformed is a [`crate::observation::Reading`] in
    /// the tick, not an error.
    async fn read(&self, since: Timestamp, at: Timestamp) -> Result<Tick>;

    /// Reads the ticks at `times` (in order, all in the past), each cumulative since
    /// `since`: what `canary analyze` over a past window judges. A source that can read a
    /// past window with fewer requests than one per check per tick (Prometheus: one query
    /// of raw samples per counter check; Datadog and CloudWatch: one range request per check)
    /// overrides this, giving the same ticks; the default reads tick by tick.
    async fn read_past(&self, since: Timestamp, times: &[Timestamp]) -> Result<Vec<Tick>> {
        let mut ticks = Vec::with_capacity(times.len());
        for &at in times {
            ticks.push(self.read(since, at).await?);
        }
        Ok(ticks)
    }

    /// Asks the source, once before anything moves (a rollout's pre-flight, and before
    /// `canary analyze` judges), whether what the checks read exists there at all. A
    /// provider that sends nothing for a count that stayed 0 (Datadog, CloudWatch) cannot tell
    /// a misspelt errors metric from a version without errors by its answers: that must be
    /// refused here, as [`Error::Usage`] naming the check, the metric and the provider's
    /// answer (exit 2), or an error of its own when the provider cannot be asked (exit 4).
    /// Sources whose answers tell the two apart ask nothing: the default.
    async fn preflight(&self) -> Result<()> {
        Ok(())
    }

    /// What the source must remember across a restart of the process for its readings to
    /// stay cumulative since the analysis started (a direct scrape keeps its own running
    /// totals; Prometheus keeps them for us and needs nothing). It is saved with the
    /// rollout's state after every read.
    async fn checkpoint(&self) -> Option<serde_json::Value> {
        None
    }

    /// Takes back what [`checkpoint`](MetricsSource::checkpoint) gave, before the first read
    /// of a resumed rollout.
    async fn restore(&self, _checkpoint: &serde_json::Value) -> Result<()> {
        Ok(())
    }

    /// Says what the source is, for logs (no secrets).
    fn describe(&self) -> String;
}

/// Moves traffic between the stable version and the canary.
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Gives the canary `weight` percent of the traffic and the stable version the rest.
    /// Idempotent: setting the weight it already has is not an error.
    async fn set_canary_weight(&self, weight: u8) -> Result<()>;

    /// Reads the canary's share back from the router itself, in percent.
    async fn canary_weight(&self) -> Result<u8>;

    /// The canary's share as the router actually achieved it, when it can only approximate
    /// the weight asked for (a replica-count router: 10 % of 8 pods is 1 pod, 12.5 %);
    /// `None` for routers that split traffic exactly as asked. Read after a weight was set
    /// and confirmed, for progress and reports.
    async fn achieved_share(&self) -> Result<Option<AchievedShare>> {
        Ok(None)
    }

    /// Routes by request instead of by weight, for a routed step: only what `route` matches
    /// goes to the canary (or, for a mirror, a copy of that share of requests), the rest to
    /// stable, so the weighted share is 0. Idempotent. [`set_canary_weight`] removes the
    /// route again. A router that cannot route by request refuses, naming itself; policy
    /// lint refuses such a policy before it gets here.
    ///
    /// [`set_canary_weight`]: TrafficRouter::set_canary_weight
    async fn set_canary_route(&self, route: &StepRoute) -> Result<()> {
        Err(Error::Usage(format!(
            "{} cannot route by request ({route}); it sets weights only",
            self.describe()
        )))
    }

    /// The request route the router carries besides its weights, read back from the router
    /// itself (`None`: a plain split). Routers that cannot route by request carry none.
    async fn canary_route(&self) -> Result<Option<StepRoute>> {
        Ok(None)
    }

    /// The weight and the request route together, as one read-back: what every tick
    /// compares with what the rollout set. Routers that read both from one object override
    /// it to read that object once.
    async fn read_back(&self) -> Result<(u8, Option<StepRoute>)> {
        Ok((self.canary_weight().await?, self.canary_route().await?))
    }

    /// Checks once, before the first weight moves, that the router can carry out the
    /// rollout: it answers, and what the policy says it routes through exists there. A
    /// router configured differently from what the policy says refuses with
    /// [`Error::Usage`] (exit 2, nothing moved); one that cannot be reached with its own
    /// error (exit 4). The default reads the weight once.
    async fn preflight(&self) -> Result<()> {
        self.canary_weight().await.map(drop)
    }

    /// Says what the router is, for logs (no secrets).
    fn describe(&self) -> String;
}

/// Sets a routed step and reads it back: the router must then carry exactly `route` and a
/// weighted share of 0, or it is an error, not a shrug.
pub async fn set_and_verify_route(router: &dyn TrafficRouter, route: &StepRoute) -> Result<()> {
    router.set_canary_route(route).await?;
    let (weight, read) = router.read_back().await?;
    if weight != 0 || read.as_ref() != Some(route) {
        let read = match read {
            Some(read) => format!("{read} at weight {weight} %"),
            None => format!("no request route, weight {weight} %"),
        };
        return Err(Error::Mismatch {
            component: "gateway",
            message: format!(
                "{}: {route} was set but {read} was read back",
                router.describe()
            ),
        });
    }
    Ok(())
}

/// The share a router achieved in units it can count: ready canary and stable pods behind
/// one Service (kube-proxy spreads connections evenly over ready endpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AchievedShare {
    /// Ready canary pods.
    pub canary_ready: u32,
    /// Ready stable pods.
    pub stable_ready: u32,
}

impl AchievedShare {
    /// The canary's share, percent (0 when nothing is ready).
    pub fn percent(&self) -> f64 {
        let total = f64::from(self.canary_ready) + f64::from(self.stable_ready);
        if total == 0.0 {
            0.0
        } else {
            100.0 * f64::from(self.canary_ready) / total
        }
    }
}

impl std::fmt::Display for AchievedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.canary_ready + self.stable_ready;
        let percent = crate::judge::plain_num(self.percent());
        write!(
            f,
            "{} of {total} ready pods = {percent} %",
            self.canary_ready
        )
    }
}

/// How many of `replicas` pods the canary gets at `weight` percent, and how many the stable
/// version: the nearest whole number of pods, a tie rounded up — the rule of Argo Rollouts'
/// canary without traffic management (<https://argoproj.github.io/argo-rollouts/features/canary/>:
/// 10 % of 10 replicas is 1 canary and 9 stable pods; 41 % of 10 is 4).
pub fn replica_split(weight: u8, replicas: u32) -> (u32, u32) {
    let weight = u64::from(weight.min(100));
    // round(weight · replicas / 100), half up, in integers.
    let canary = (2 * weight * u64::from(replicas) + 100) / 200;
    let canary = u32::try_from(canary).unwrap_or(replicas).min(replicas);
    (canary, replicas - canary)
}

/// Sets a weight and reads it back: a router that reports another weight than the one just
/// set is an error, not a shrug.
pub async fn set_and_verify(router: &dyn TrafficRouter, weight: u8) -> Result<()> {
    router.set_canary_weight(weight).await?;
    let actual = router.canary_weight().await?;
    if actual != weight {
        return Err(Error::Mismatch {
            component: "gateway",
            message: format!(
                "{}: canary weight {weight} % was set but {actual} % was read back",
                router.describe()
            ),
        });
    }
    Ok(())
}

/// Refuses a weight above 100 % before a router touches anything: asking for one is a
/// caller's bug, for every router alike.
pub fn check_canary_weight(weight: u8) -> Result<()> {
    if weight > 100 {
        return Err(Error::Usage(format!(
            "a canary weight of {weight} % was asked for; weights run from 0 to 100"
        )));
    }
    Ok(())
}

/// The canary's share in percent of two weights as a router holds them, rounded half up;
/// `None` when both are 0 (the router sends the traffic nowhere).
pub fn canary_share(canary: u32, stable: u32) -> Option<u8> {
    let total = u64::from(canary) + u64::from(stable);
    if total == 0 {
        return None;
    }
    // round(100·c / total) with integers: floor((200·c + total) / (2·total)).
    u8::try_from((200 * u64::from(canary) + total) / (2 * total)).ok()
}

/// Where a service's rollout state is kept: a file on the runner, or a ConfigMap in the
/// cluster. One store is one service's state.
///
/// The store also decides who may drive the rollout: [`claim`](StateStore::claim) succeeds
/// for one driver at a time, and [`request`](StateStore::request) leaves a message
/// (`canary promote`, `canary abort`) for whoever drives it.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Claims the exclusive right to drive this service's rollout, for as long as this store
    /// lives and renews it (or until [`release`](StateStore::release)). Another driver
    /// holding it is an [`Error::Mismatch`] that names it, unless its claim is stale (no
    /// heartbeat within its time to live, or its process is known to be gone: see
    /// [`crate::claim`]) or `take_over` is set (only for a driver known to be gone).
    async fn claim(&self, take_over: bool) -> Result<()>;

    /// Gives the claim up (only if this store still holds it: a claim taken over is the new
    /// holder's).
    async fn release(&self) -> Result<()>;

    /// Renews this store's claim: the heartbeat that tells other drivers the holder is alive
    /// (see [`crate::claim`]). The driver calls it every
    /// [`heartbeat_period`](crate::claim::heartbeat_period) while it holds the claim. A claim
    /// another driver took over is [`Error::ClaimLost`]. Stores without heartbeats do
    /// nothing.
    async fn heartbeat(&self) -> Result<()> {
        Ok(())
    }

    /// Confirms this store still holds the claim, before a write to the world: the fence
    /// that keeps a driver that was paused, and lost its claim meanwhile, from setting a
    /// weight, running a hook or saving a state after someone else took over.
    /// [`Error::ClaimLost`] when it does not.
    async fn check_claim(&self) -> Result<()> {
        Ok(())
    }

    /// How often [`heartbeat`](StateStore::heartbeat) must be called; `None` for a store
    /// without heartbeats.
    fn heartbeat_period(&self) -> Option<std::time::Duration> {
        None
    }

    /// Who drives the rollout now, if someone other than this store does: a read only,
    /// for `canary status` (it never takes or changes the claim). A store may answer from
    /// the read of a [`StateStore::load`] just before (the ConfigMap store, within a second),
    /// so that the two agree.
    async fn holder(&self) -> Result<Option<String>>;

    /// The claim of a driver that counts as gone (its heartbeat stale, or its process known
    /// to be gone) and never released it, described with since when it was silent: what a
    /// [`claim`](StateStore::claim) would now take over without asking. A read only, for
    /// `canary promote`/`abort` to say what they found. `None` when the claim is free,
    /// released, alive or this store's. No default: a wrapping store that forgot to
    /// forward it would hide the stale claim.
    async fn stale_claim(&self) -> Result<Option<String>>;

    /// The saved rollout, if there is one. A saved state that cannot be read is an error,
    /// never a fresh start: it may be the only record of where traffic stands.
    async fn load(&self) -> Result<Option<Rollout>>;

    /// Saves the rollout, atomically: a crash leaves the old state or the new, whole.
    async fn save(&self, rollout: &Rollout) -> Result<()>;

    /// Moves a finished rollout aside so that a new one can start; says where it went.
    async fn archive(&self, rollout: &Rollout) -> Result<String>;

    /// Leaves a request for the driver, in the place of a pending one only where
    /// [`ControlRequest::refused_by`] allows (an abort always wins); refused otherwise with
    /// [`Error::Usage`](crate::Error::Usage), naming the pending request, nothing changed.
    async fn request(&self, request: &ControlRequest) -> Result<()>;

    /// Takes the pending request, if any (it is removed).
    async fn take_request(&self) -> Result<Option<ControlRequest>>;

    /// Says what the store is, for logs.
    fn describe(&self) -> String;
}

/// The time, as the rollout sees it: the wall clock in production, virtual time in the
/// simulator and in tests.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_rounds_half_up() {
        assert_eq!(canary_share(1, 7), Some(13));
        assert_eq!(canary_share(0, 0), None);
        assert_eq!(canary_share(10, 90), Some(10));
    }

    #[test]
    fn weights_above_100_are_refused() {
        assert!(check_canary_weight(100).is_ok());
        assert!(matches!(check_canary_weight(101), Err(Error::Usage(_))));
    }
}
