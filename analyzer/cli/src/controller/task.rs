//! One `CanaryRollout`'s rollout, carried out by the CLI's own [`Driver`] with the same
//! [`Machine`]: its state in the ConfigMap `canaryrollout-NAME`, its gateway reached with
//! the controller's client (the resource's namespace by default), its metrics queries and
//! writes bounded by the controller's semaphores, and every saved state turned into the
//! resource's status (coalesced) and an Event when the rollout moves on.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use canary_core::ports::{MetricsSource, StateStore, TrafficRouter};
use canary_core::rollout::{ControlRequest, Event, Machine, Phase, Rollout};
use canary_core::secret::Redacted;
use canary_kubernetes::controller::resource;
use canary_kubernetes::controller::{
    CanaryRollout, CanaryRolloutStatus, Fence, StatusContext, invalid_status, shows_the_same,
    status_of,
};
use canary_kubernetes::{ConfigMapStateStore, Holder, KubeConnection};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event as KubeEvent;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use super::requests::RequestSignal;
use super::{Context, Prepared};
use crate::driver::{Driver, Interrupts, error_chain};
use crate::progress::Progress;

/// How many timeline points (the reports' charts) a rollout's saved state keeps: with
/// thousands of rollouts in ConfigMaps, each state stays the same size however long its
/// rollout runs (issue 16: under 16 KiB, measured in docs/kubernetes.md).
pub(crate) const TIMELINE_POINTS: usize = 12;

/// How a controller names itself in a state ConfigMap's `owner.json`.
const CONTROLLER_HOLDER: &str = "canary controller";

/// The ConfigMap that holds a resource's rollout state (its own name, apart from the
/// `canary-rollout-SERVICE` of `canary rollout --state-store configmap`).
pub(crate) fn state_config_map(resource_name: &str) -> String {
    format!("canaryrollout-{resource_name}")
}

/// Runs the resource's rollout to its end, resuming it after an infrastructure failure
/// (after `retry_after`); a problem with the input ends it with the status `Invalid`.
pub(crate) async fn run(
    context: Arc<Context>,
    resource: Arc<CanaryRollout>,
    prepared: Prepared,
    requests: Arc<RequestSignal>,
) {
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    // Whether this is a retry after a failure: the resource the task holds (and its status)
    // is then as old as the task, not what the API server holds now.
    let mut retried = false;
    loop {
        match run_once(&context, &resource, &prepared, &requests, retried).await {
            Ok(()) => return,
            Err(Stop::Invalid(problem)) => {
                tracing::warn!("{problem}");
                let status = invalid_status(
                    &problem,
                    resource.metadata.generation,
                    resource.status.as_ref(),
                    Timestamp::now(),
                );
                if let Err(err) = write_status(
                    &context,
                    &namespace,
                    &name,
                    resource.status.as_ref(),
                    &status,
                )
                .await
                {
                    tracing::warn!("{}: {err}", resource::describe(&resource));
                }
                event(&context, &resource, "Warning", "Invalid", &problem).await;
                return;
            }
            Err(Stop::Failed(problem)) => {
                tracing::warn!(
                    "{}: {problem}; resuming in {}",
                    resource::describe(&resource),
                    humantime::format_duration(context.settings.retry_after)
                );
                event(&context, &resource, "Warning", "Failed", &problem).await;
                tokio::time::sleep(context.settings.retry_after).await;
                retried = true;
            }
        }
    }
}

/// How a run of the driver stopped short of an outcome.
enum Stop {
    /// Bad input (exit 2): the resource or its saved state must change first.
    Invalid(String),
    /// The gateway, the metrics source or the API failed (exit 4): resume later.
    Failed(String),
}

async fn run_once(
    context: &Arc<Context>,
    resource: &Arc<CanaryRollout>,
    prepared: &Prepared,
    requests: &Arc<RequestSignal>,
    retried: bool,
) -> Result<(), Stop> {
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    let policy = &prepared.policy;
    // Held until the rollout first saves or waits (see `PublishingStore::save` and
    // `take_request`), or stops: never through a promotion, hooks or a replica-count wait,
    // which would hold back every other rollout's resumption — rollbacks included.
    let starting = context.starts.clone().acquire_owned().await.ok();
    // The state ConfigMap's writes ask the Lease fence on every attempt, as the router's do.
    let fence = context.fence.clone();
    let connection = KubeConnection::from_client(context.client.clone(), namespace.clone())
        .with_write_guard(canary_kubernetes::WriteGuard::new(move || fence.check()));
    let configmap = state_config_map(&name);
    let holder = Holder {
        identity: format!("{CONTROLLER_HOLDER} {}", context.settings.identity),
        ..Holder::this_process()
    };
    let store = ConfigMapStateStore::new(
        connection.clone(),
        Some(namespace.clone()),
        &policy.service,
        Some(configmap.clone()),
    )
    .map_err(|err| Stop::Invalid(err.to_string()))?
    .with_holder(holder)
    .with_claim_ttl(claim_ttl(policy.rollout.interval))
    // Read only when the watch says a request was left (see `requests`), then at once.
    .with_request_poll(Duration::ZERO)
    // Another controller's claim is taken over; a shell's is not, even when it is written
    // between this claim's read and its write.
    .taking_over_only_from(CONTROLLER_HOLDER);
    let store: Box<dyn StateStore> = Box::new(store);
    let store = Redacted::new(store);
    drive(
        context,
        resource,
        prepared,
        &store,
        &configmap,
        Signals {
            requests: requests.clone(),
            starting: std::sync::Mutex::new(starting),
            retried,
        },
    )
    .await
}

/// What a rollout's store tells the controller, and is told by it: a control request
/// announced, and the rollout's first wait.
struct Signals {
    requests: Arc<RequestSignal>,
    starting: StartPermit,
    /// A retry after a failure: the first status is written whatever the resource's says.
    retried: bool,
}

/// How long a controller's claim on a rollout lives without a renewal. Every save renews
/// it, and a rollout saves at each tick, so the claim lives six ticks (at least the default
/// 30 s). A waiting rollout sends no heartbeat of its own (its saves are its heartbeat; a
/// heartbeat per rollout was two API requests every 5 s), but one effect can run longer than
/// that between two saves — a promotion waiting for the stable Deployment, the replica-count
/// router waiting for ready pods, hooks, a metrics read waiting for a permit — and then the
/// claim is renewed by a heartbeat every third of its time to live
/// ([`PublishingStore::heartbeat`]), so that `canary promote|abort --kube` never takes over a
/// controller in the middle of such an effect (a review found it could, on 2026-12-01).
pub(crate) fn claim_ttl(interval: Duration) -> Duration {
    (interval * 6).max(canary_core::claim::DEFAULT_CLAIM_TTL)
}

async fn drive(
    context: &Arc<Context>,
    resource: &Arc<CanaryRollout>,
    prepared: &Prepared,
    store: &dyn StateStore,
    configmap: &str,
    signals: Signals,
) -> Result<(), Stop> {
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    let policy = &prepared.policy;
    let machine = Machine::new(policy.clone())
        .map_err(|err| Stop::Invalid(err.to_string()))?
        .with_timeline_points(TIMELINE_POINTS);
    let now = Timestamp::now();
    let fresh = || machine.start(now, Some(prepared.revision.clone()));
    let mut rollout = match store.load().await.map_err(failed)? {
        None => fresh(),
        Some(saved) if saved.id() == Some(prepared.revision.as_str()) => {
            machine
                .validate(&saved, now)
                .map_err(|err| Stop::Invalid(format!("{configmap}: {err}")))?;
            saved
        }
        Some(saved) if saved.phase().is_terminal() => {
            fenced(&context.fence).map_err(failed)?;
            store.archive(&saved).await.map_err(failed)?;
            fresh()
        }
        Some(saved) => {
            // Another revision's rollout is under way (the spec changed while no controller
            // ran): it ends first, as `canary rollout` would insist; the new revision's
            // rollout starts at the next reconcile.
            machine
                .validate(&saved, now)
                .map_err(|err| Stop::Invalid(format!("{configmap}: {err}")))?;
            saved
        }
    };
    let publisher = StatusPublisher::start(
        context.clone(),
        resource.clone(),
        configmap.to_owned(),
        policy.rollout.analysed_steps().len(),
        policy.rollout.interval,
        context.settings.status_refresh,
        signals.retried,
    );
    publisher.publish(&rollout);
    if rollout.phase().is_terminal() || matches!(rollout.phase(), Phase::Held { .. }) {
        // Ended, or held for a person: `canary promote|abort --kube` act on it (and drive
        // it themselves); the status says where it stands. Nothing is claimed.
        publisher.finish().await;
        return Ok(());
    }
    // The controller is the one driver of its resources' rollouts: a claim left by an
    // earlier controller process (a restart, a crash) is taken over — but never one of
    // `canary promote|abort` driving a held rollout to its end from a shell.
    match store.holder().await {
        Ok(Some(holder)) if !holder.starts_with(CONTROLLER_HOLDER) => {
            publisher.finish().await;
            return Err(Stop::Failed(format!(
                "{configmap} is driven by {holder}, not a controller; waiting for it to end"
            )));
        }
        Ok(_) => {}
        Err(err) => {
            publisher.finish().await;
            return Err(failed(err));
        }
    }
    if let Err(err) = fenced(&context.fence) {
        publisher.finish().await;
        return Err(failed(err));
    }
    if let Err(err) = store.claim(true).await {
        publisher.finish().await;
        return Err(failed(err));
    }
    let result = drive_claimed(
        context,
        policy,
        store,
        &machine,
        &mut rollout,
        &publisher,
        signals,
    )
    .await;
    // The claim first, then the last status: whoever sees the rollout ended finds it free.
    // A deposed controller releases nothing: the new leader takes the claim over.
    if let Err(err) = match fenced(&context.fence) {
        Ok(()) => store.release().await,
        Err(err) => Err(err),
    } {
        tracing::warn!(
            "{}: releasing the claim: {err}",
            resource::describe(resource)
        );
    }
    publisher.publish(&rollout);
    publisher.finish().await;
    tracing::info!(
        "{namespace}/{name}: {} ({})",
        rollout.phase().name(),
        rollout.outcome().map_or("", |o| o.reason.as_str())
    );
    result
}

/// Drives a claimed rollout until the machine finishes it.
async fn drive_claimed(
    context: &Arc<Context>,
    policy: &canary_core::policy::Policy,
    store: &dyn StateStore,
    machine: &Machine,
    rollout: &mut Rollout,
    publisher: &StatusPublisher,
    signals: Signals,
) -> Result<(), Stop> {
    let namespace = publisher.resource.namespace().unwrap_or_default();
    let (source, bounded_inside) = rollout_source(context, policy)?;
    if let Some(checkpoint) = rollout.source_checkpoint() {
        source.restore(checkpoint).await.map_err(failed)?;
    }
    let due = TickDue::default();
    let source = BoundedSource {
        inner: source,
        // A shared source takes the permits itself: per query, not per rollout's read (a
        // read waiting for its batch holds none).
        permits: (!bounded_inside).then(|| context.queries.clone()),
        metrics: context.metrics.clone(),
        due: due.clone(),
    };
    // A Kubernetes router asks the fence again right before each of its API writes (a
    // retry after 409, the second Deployment of a replica-count split): the check of
    // `BoundedRouter` comes once, before a change that can take minutes.
    let fence = context.fence.clone();
    let connection = connection_for(context, &namespace)
        .with_write_guard(canary_kubernetes::WriteGuard::new(move || fence.check()));
    let router = router_for(policy, &connection).map_err(|err| Stop::Invalid(err.to_string()))?;
    let router = BoundedRouter {
        inner: router,
        permits: context.writes.clone(),
        reads: context.reads.clone(),
        fence: context.fence.clone(),
    };
    let publishing = PublishingStore {
        inner: store,
        context,
        publisher,
        fence: context.fence.clone(),
        due,
        requests: signals.requests,
        starting: signals.starting,
        reads: context.reads.clone(),
        claim_ttl: claim_ttl(policy.rollout.interval),
        renewed: std::sync::Mutex::new(std::time::Instant::now()),
    };
    let hooks = context.hooks().map_err(|e| failed(e.into_core()))?;
    let notifier = hooks.notifier(&policy.notifications);
    let mut progress = Progress::new(true);
    let mut driver = Driver {
        machine,
        store: &publishing,
        source: &source,
        router: &router,
        hooks: &hooks,
        progress: &mut progress,
        // The controller stops its rollouts as a crash would (each resumes from its saved
        // state): a pod restart is not a reason to act on the policy's `on-interrupt`.
        interrupts: Interrupts::default(),
        // The resource's watch announces control requests ([`RequestSignal`]): a waiting
        // rollout sleeps until its tick.
        request_looks: crate::driver::RequestLooks::Announced {
            announced: publishing.requests.announced(),
            fallback: super::requests::REQUEST_FALLBACK_POLL,
        },
        metrics: None,
        notifier,
        clock: &canary_core::ports::SystemClock,
        rollback_retry_for: context.settings.rollback_retry_for,
        // The promotion's Deployment writes go through the same fenced connection as the
        // router's (in the resource's namespace unless the policy names one).
        promoter: machine
            .policy()
            .promotion
            .as_ref()
            .map(|spec| crate::adapters::Promoter::with_connection(spec, connection.clone())),
    };
    match driver.run(rollout, Event::Resume).await {
        Ok(outcome) if outcome.exit == canary_core::ExitCode::Infrastructure => {
            Err(Stop::Failed(outcome.reason))
        }
        Ok(_) => Ok(()),
        Err(err) => match crate::app::exit_code_of(&err) {
            canary_core::ExitCode::BadInput => Err(Stop::Invalid(format!("{err:#}"))),
            _ => Err(Stop::Failed(format!("{err:#}"))),
        },
    }
}

/// The fence's answer as the core's error: a controller that lost its Lease has, in effect,
/// lost every claim it holds.
fn fenced(fence: &Fence) -> canary_core::Result<()> {
    fence.check().map_err(canary_core::Error::ClaimLost)
}

fn failed(err: canary_core::Error) -> Stop {
    Stop::Failed(error_chain(&err))
}

/// The controller's client, with the resource's namespace as the default one.
fn connection_for(context: &Context, namespace: &str) -> KubeConnection {
    KubeConnection::from_client(context.client.clone(), namespace.to_owned())
}

/// The policy's router: a Kubernetes gateway through the controller's own client (its
/// namespace the policy's, else the resource's), any other as `canary rollout` builds it.
pub(crate) fn router_for(
    policy: &canary_core::policy::Policy,
    connection: &KubeConnection,
) -> canary_core::Result<Box<dyn TrafficRouter>> {
    let gateway = policy.gateway.as_ref().ok_or_else(|| {
        canary_core::Error::Usage(format!(
            "the policy of {} has no `gateway`: a CanaryRollout needs one",
            policy.service
        ))
    })?;
    let router = match canary_gateways::router_for(gateway)? {
        Some(router) => router,
        None => canary_kubernetes::kubernetes_router(gateway, connection.clone())
            .ok_or_else(|| canary_core::Error::Usage("not a Kubernetes gateway".to_owned()))?,
    };
    Ok(Box::new(Redacted::new(router)))
}

/// The rollout's metrics source: Prometheus error-rate and latency checks read through the
/// controller's shared reads (one query per batch of rollouts of one template,
/// taking the query permits itself: `true`), anything else as `canary rollout` reads it.
fn rollout_source(
    context: &Context,
    policy: &canary_core::policy::Policy,
) -> Result<(Box<dyn MetricsSource>, bool), Stop> {
    let prometheus = context.settings.prometheus.as_deref();
    if let Some(shared_reads) = &context.shared_reads {
        let shared = shared_reads
            .source(policy, prometheus)
            .map_err(|err| Stop::Invalid(error_chain(&canary_core::Error::from(err))))?;
        if let Some(shared) = shared {
            let shared: Box<dyn MetricsSource> = Box::new(shared);
            return Ok((Box::new(Redacted::new(shared)), true));
        }
    }
    let source = crate::commands::metrics_source(policy, prometheus)
        .map_err(|err| Stop::Invalid(format!("{err:#}")))?;
    Ok((source, false))
}

/// A metrics source whose reads wait for one of the controller's query permits (the wait
/// and the read timed in the controller's metrics).
struct BoundedSource {
    inner: Box<dyn MetricsSource>,
    /// `None`: the source takes them itself.
    permits: Option<Arc<Semaphore>>,
    metrics: super::ControllerMetrics,
    /// When the machine wants this read, to measure how late it runs.
    due: TickDue,
}

/// The time the machine's next tick is due, as last saved (`Rollout::next_tick_at`): the
/// store sets it at each save, the metrics source takes it when its read gets its permit,
/// and the difference is the tick's lag (timers, the runtime's queue, the query permits).
#[derive(Clone, Default)]
struct TickDue(Arc<std::sync::Mutex<Option<Timestamp>>>);

impl TickDue {
    fn set(&self, due: Option<Timestamp>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = due;
    }

    /// The due time, once: a read with no tick due since the last one (the step's first
    /// read, a retry) is not a tick and measures nothing.
    fn take(&self) -> Option<Timestamp> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

#[async_trait]
impl MetricsSource for BoundedSource {
    async fn read(
        &self,
        since: Timestamp,
        at: Timestamp,
    ) -> canary_core::Result<canary_core::observation::Tick> {
        let asked = std::time::Instant::now();
        let _permit = match &self.permits {
            Some(permits) => Some(permits.acquire().await),
            None => None,
        };
        let started = std::time::Instant::now();
        let due = self.due.take();
        let late = |due: Timestamp| {
            Duration::try_from(Timestamp::now().duration_since(due)).unwrap_or(Duration::ZERO)
        };
        if let Some(due) = due {
            self.metrics.tick_lag(late(due));
        }
        let read = self.inner.read(since, at).await;
        self.metrics.query(started - asked, started.elapsed());
        // The tick is decided as soon as its read is answered (the judge and the machine
        // run in memory): the lag of issue 16's "tick due → decision".
        if let Some(due) = due {
            self.metrics.tick_decision_lag(late(due));
        }
        read
    }

    async fn preflight(&self) -> canary_core::Result<()> {
        self.inner.preflight().await
    }

    async fn checkpoint(&self) -> Option<Value> {
        self.inner.checkpoint().await
    }

    async fn restore(&self, checkpoint: &Value) -> canary_core::Result<()> {
        self.inner.restore(checkpoint).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A router whose writes wait for one of the controller's write permits, and then check
/// the fence (the wait for a permit can be long with many rollouts: the driver's own check,
/// before it, is not enough).
struct BoundedRouter {
    inner: Box<dyn TrafficRouter>,
    permits: Arc<Semaphore>,
    /// The controller's read permits.
    reads: Arc<Semaphore>,
    fence: Fence,
}

#[async_trait]
impl TrafficRouter for BoundedRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        let _permit = self.permits.acquire().await;
        fenced(&self.fence)?;
        self.inner.set_canary_weight(weight).await
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        let _permit = self.reads.acquire().await;
        self.inner.canary_weight().await
    }

    // Every method is forwarded: the trait's defaults (no route, nothing achieved) would
    // hide what the router behind says.
    async fn achieved_share(
        &self,
    ) -> canary_core::Result<Option<canary_core::ports::AchievedShare>> {
        self.inner.achieved_share().await
    }

    async fn set_canary_route(
        &self,
        route: &canary_core::policy::StepRoute,
    ) -> canary_core::Result<()> {
        let _permit = self.permits.acquire().await;
        fenced(&self.fence)?;
        self.inner.set_canary_route(route).await
    }

    async fn canary_route(&self) -> canary_core::Result<Option<canary_core::policy::StepRoute>> {
        self.inner.canary_route().await
    }

    async fn read_back(&self) -> canary_core::Result<(u8, Option<canary_core::policy::StepRoute>)> {
        let _permit = self.reads.acquire().await;
        self.inner.read_back().await
    }

    async fn preflight(&self) -> canary_core::Result<()> {
        let _permit = self.reads.acquire().await;
        self.inner.preflight().await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The state store the driver saves through: every save is also handed to the status
/// publisher (which writes it coalesced, off the rollout's path). Each write, and the
/// claim's check, first check the controller's Lease fence: a deposed leader has lost every
/// claim, and its driver stops at its next check.
///
/// Under the controller the claim has no heartbeat of its own: the Lease is the
/// controller's heartbeat, and each save renews the claim (see [`claim_ttl`]). Control
/// requests are read only when the resource's watch announced one ([`RequestSignal`]).
struct PublishingStore<'a> {
    inner: &'a dyn StateStore,
    /// The controller: whether its watch still has the resource ([`Context::deleted`]).
    context: &'a Context,
    publisher: &'a StatusPublisher,
    fence: Fence,
    /// Told each saved rollout's next tick, for the tick-lag metric.
    due: TickDue,
    /// Raised when a control request may be waiting.
    requests: Arc<RequestSignal>,
    /// The rollout's place among those starting at once, given back at its first save or
    /// wait (a review of 2026-12-01 found one resumed in a promotion holding it for the
    /// promotion's length, 16 of them blocking every other rollout's start).
    starting: StartPermit,
    /// The controller's read permits (a save reads before it writes).
    reads: Arc<Semaphore>,
    /// The claim's time to live ([`claim_ttl`]): a heartbeat renews it when no save has
    /// for a third of it.
    claim_ttl: Duration,
    /// When the claim was last renewed by a save or a heartbeat.
    renewed: std::sync::Mutex<std::time::Instant>,
}

impl PublishingStore<'_> {
    fn renewed_now(&self) {
        *self
            .renewed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
    }

    fn renewed_within(&self, period: Duration) -> bool {
        self.renewed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
            < period
    }
}

/// A permit of the controller's `starts`, while the rollout has not waited yet.
type StartPermit = std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>;

#[async_trait]
impl StateStore for PublishingStore<'_> {
    async fn claim(&self, take_over: bool) -> canary_core::Result<()> {
        fenced(&self.fence)?;
        self.inner.claim(take_over).await
    }

    async fn release(&self) -> canary_core::Result<()> {
        fenced(&self.fence)?;
        self.inner.release().await
    }

    // A rollout that saves at each tick renews its claim by saving: no API request here.
    // One in the middle of a long effect (no save for a third of the claim's time to live)
    // renews it, so that nobody takes a live controller's rollout for abandoned.
    async fn heartbeat(&self) -> canary_core::Result<()> {
        fenced(&self.fence)?;
        if self.renewed_within(self.claim_ttl / 3) {
            return Ok(());
        }
        let _permit = self.reads.acquire().await;
        fenced(&self.fence)?;
        self.inner.heartbeat().await?;
        self.renewed_now();
        Ok(())
    }

    // The claim's check passes through: the trait's default (a claim always held) would let
    // a controller whose claim was taken over go on writing weights.
    async fn check_claim(&self) -> canary_core::Result<()> {
        fenced(&self.fence)?;
        let _permit = self.reads.acquire().await;
        self.inner.check_claim().await
    }

    fn heartbeat_period(&self) -> Option<Duration> {
        // Looked at this often; it only asks the API server when no save renewed the claim.
        Some(self.claim_ttl / 6)
    }

    async fn holder(&self) -> canary_core::Result<Option<String>> {
        self.inner.holder().await
    }

    async fn stale_claim(&self) -> canary_core::Result<Option<String>> {
        self.inner.stale_claim().await
    }

    async fn load(&self) -> canary_core::Result<Option<Rollout>> {
        self.inner.load().await
    }

    async fn save(&self, rollout: &Rollout) -> canary_core::Result<()> {
        if self.publisher.is_gone() || self.context.deleted(&self.publisher.resource) {
            // The CanaryRollout was deleted (its watch says so, or a status write found it
            // gone): its rollout stops where it stands (the state stays in its ConfigMap),
            // as `canary rollout` stops when its state cannot be saved. The machine saves
            // before every weight change, so none follows. A rollback in progress goes on
            // (the driver sets weight 0 anyway).
            return Err(canary_core::Error::Usage(format!(
                "{} was deleted: its rollout stops where it stands (state in {})",
                resource::describe(&self.publisher.resource),
                self.publisher.configmap
            )));
        }
        fenced(&self.fence)?;
        {
            let _permit = self.reads.acquire().await;
            // The fence again: the wait for a permit can be long with many rollouts.
            fenced(&self.fence)?;
            self.inner.save(rollout).await?;
        }
        self.renewed_now();
        // Saved once: this rollout has started (or resumed); its place goes to the next.
        self.starting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.due.set(rollout.next_tick_at());
        self.publisher.publish(rollout);
        Ok(())
    }

    async fn archive(&self, rollout: &Rollout) -> canary_core::Result<String> {
        fenced(&self.fence)?;
        self.inner.archive(rollout).await
    }

    async fn request(&self, request: &ControlRequest) -> canary_core::Result<()> {
        fenced(&self.fence)?;
        self.inner.request(request).await
    }

    // Taking a request consumes it (a write): a deposed leader leaves it to the new one.
    // The ConfigMap is read only when a request was announced (or the fallback poll is
    // due), never at each of the driver's looks (four a second).
    async fn take_request(&self) -> canary_core::Result<Option<ControlRequest>> {
        // The driver asks only while it waits: this rollout has started.
        self.starting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        fenced(&self.fence)?;
        if !self.requests.should_look() {
            return Ok(None);
        }
        let taken = self.inner.take_request().await;
        if taken.is_err() {
            self.requests.raise();
        }
        taken
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// An Event to record: its type (`Normal`, `Warning`), reason and message.
type Announcement = (&'static str, &'static str, String);

/// Writes a rollout's status and Events, off the rollout's path: the latest state handed
/// to it, at most once per `gap` (the policy's tick interval), and an Event for each
/// transition (a new phase or step) in the order they happened. A status whose text alone
/// changed (the numbers in its reasons, [`shows_the_same`]) is written only once `refresh`
/// has passed since the last write, or when the rollout ends: the state's save is the one
/// write of a tick.
struct StatusPublisher {
    latest: watch::Sender<Option<CanaryRolloutStatus>>,
    events: tokio::sync::mpsc::UnboundedSender<Announcement>,
    finished: Arc<tokio::sync::Notify>,
    /// Set when the resource turned out deleted.
    gone: Arc<std::sync::atomic::AtomicBool>,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    resource: Arc<CanaryRollout>,
    configmap: String,
    analysed_steps: usize,
}

impl StatusPublisher {
    fn start(
        context: Arc<Context>,
        resource: Arc<CanaryRollout>,
        configmap: String,
        analysed_steps: usize,
        gap: Duration,
        refresh: Duration,
        stale: bool,
    ) -> StatusPublisher {
        let (latest, mut receiver) = watch::channel::<Option<CanaryRolloutStatus>>(None);
        let (events, mut announcements) = tokio::sync::mpsc::unbounded_channel::<Announcement>();
        let finished = Arc::new(tokio::sync::Notify::new());
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = tokio::spawn({
            let resource = resource.clone();
            let finished = finished.clone();
            let gone = gone.clone();
            async move {
                let namespace = resource.namespace().unwrap_or_default();
                let name = resource.name_any();
                // The status as this writer last wrote it (the resource's as the task got it,
                // until then: what a write must set to `null`).
                let mut written = resource.status.clone();
                let mut written_at = std::time::Instant::now();
                // After a failure (`stale`), the first status is written whatever the
                // resource's says: the task keeps the resource it started with, hours old
                // maybe, not what the API server holds. A task just started has it fresh
                // from the watch, and a standby resuming 10,000 rollouts writes no status
                // that shows what the last leader's did.
                let mut first = stale;
                // `finish()`: the last status is written, whatever changed.
                let mut ending = false;
                // The task was dropped without `finish()` (aborted: the controller stopping,
                // its Lease lost): only a change of what the status shows is written, not
                // 10,000 refreshes of the reasons' numbers on the way out.
                let mut aborted = false;
                loop {
                    if !ending {
                        tokio::select! {
                            changed = receiver.changed() => if changed.is_err() {
                                ending = true;
                                aborted = true;
                            },
                            () = finished.notified() => ending = true,
                        }
                    }
                    while let Ok((kind, reason, message)) = announcements.try_recv() {
                        event(&context, &resource, kind, reason, &message).await;
                    }
                    let status = receiver.borrow_and_update().clone();
                    if let Some(status) = status
                        && written.as_ref() != Some(&status)
                        && (first
                            || (ending && !aborted)
                            || written_at.elapsed() >= refresh
                            || written
                                .as_ref()
                                .is_none_or(|written| !shows_the_same(written, &status)))
                    {
                        match write_status(&context, &namespace, &name, written.as_ref(), &status)
                            .await
                        {
                            Ok(()) => {
                                written = Some(status);
                                written_at = std::time::Instant::now();
                                first = false;
                            }
                            Err(StatusWriteError::Gone(message)) => {
                                // Deleted: the rollout stops at its next save (see
                                // PublishingStore), where it stands.
                                gone.store(true, std::sync::atomic::Ordering::SeqCst);
                                tracing::warn!("{message}");
                                return;
                            }
                            Err(err) => tracing::warn!("{namespace}/{name}: {err}"),
                        }
                    }
                    if ending {
                        return;
                    }
                    // Coalesce: what is published during the gap is written once, after it.
                    tokio::select! {
                        () = tokio::time::sleep(gap) => {}
                        () = finished.notified() => ending = true,
                    }
                }
            }
        });
        StatusPublisher {
            latest,
            events,
            finished,
            gone,
            writer: tokio::sync::Mutex::new(Some(writer)),
            resource,
            configmap,
            analysed_steps,
        }
    }

    /// Hands over the rollout as it stands now.
    fn publish(&self, rollout: &Rollout) {
        let previous = self
            .latest
            .borrow()
            .clone()
            .or_else(|| self.resource.status.clone());
        let status = status_of(
            rollout,
            &StatusContext {
                generation: self.resource.metadata.generation,
                revision: rollout.id().unwrap_or(""),
                state_config_map: &self.configmap,
                analysed_steps: self.analysed_steps,
                weight_read_back: None,
                previous: previous.as_ref(),
                now: Timestamp::now(),
            },
        );
        if let Some(announcement) = transition(previous.as_ref(), &status) {
            let _ = self.events.send(announcement);
        }
        self.latest.send_replace(Some(status));
    }

    /// Whether the resource turned out deleted when its status was written.
    fn is_gone(&self) -> bool {
        self.gone.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes what was handed over last, now, and stops.
    async fn finish(&self) {
        self.finished.notify_one();
        if let Some(writer) = self.writer.lock().await.take() {
            let _ = writer.await;
        }
    }
}

/// The Event for a status that moved on from `before` (a new phase, step or revision).
fn transition(
    before: Option<&CanaryRolloutStatus>,
    after: &CanaryRolloutStatus,
) -> Option<Announcement> {
    let moved = before.is_none_or(|before| {
        before.machine_phase != after.machine_phase
            || before.step != after.step
            || before.revision != after.revision
    });
    if !moved {
        return None;
    }
    let (kind, reason) = match after.phase.as_deref() {
        Some("RolledBack") => ("Warning", "RolledBack"),
        Some("Failed") => ("Warning", "Failed"),
        Some("Promoted") => ("Normal", "Promoted"),
        Some("Paused") => ("Normal", "Paused"),
        _ => match after.machine_phase.as_deref() {
            Some("step") => ("Normal", "StepStarted"),
            Some("rolling-back") => ("Warning", "RollingBack"),
            Some("starting") => ("Normal", "Started"),
            _ => ("Normal", "Progressing"),
        },
    };
    let weight = after
        .weight
        .map_or_else(String::new, |w| format!(" at {w} %"));
    let step = after
        .step
        .as_deref()
        .map_or_else(String::new, |s| format!(", step {s}"));
    let message = format!(
        "{}{weight}{step}: {}",
        after.machine_phase.as_deref().unwrap_or("?"),
        after.reason.as_deref().unwrap_or("")
    );
    Some((kind, reason, message))
}

/// Writes `status` through the status subresource: a JSON merge patch, with `null` for
/// what the previous status had and this one has not (so nothing stale stays).
pub(crate) async fn write_status(
    context: &Context,
    namespace: &str,
    name: &str,
    previous: Option<&CanaryRolloutStatus>,
    status: &CanaryRolloutStatus,
) -> Result<(), StatusWriteError> {
    let mut value =
        serde_json::to_value(status).map_err(|e| StatusWriteError::Failed(e.to_string()))?;
    if let (Some(previous), Some(map)) = (
        previous.and_then(|p| serde_json::to_value(p).ok()),
        value.as_object_mut(),
    ) {
        for key in previous.as_object().into_iter().flat_map(|o| o.keys()) {
            map.entry(key.clone()).or_insert(Value::Null);
        }
    }
    let api: Api<CanaryRollout> = Api::namespaced(context.client.clone(), namespace);
    let _permit = context.writes.acquire().await;
    context.fence.check().map_err(StatusWriteError::Failed)?;
    let written = api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": value })),
        )
        .await;
    match &written {
        Ok(_) => context
            .metrics
            .rollout_phase(namespace, name, status.phase.as_deref()),
        Err(_) => context.metrics.write_error(),
    }
    written.map(|_| ()).map_err(|err| {
        let gone = matches!(&err, kube::Error::Api(status) if status.code == 404);
        let message = format!("writing the status of CanaryRollout {namespace}/{name}: {err}");
        if gone {
            StatusWriteError::Gone(message)
        } else {
            StatusWriteError::Failed(message)
        }
    })
}

/// Why a status could not be written.
#[derive(Debug)]
pub(crate) enum StatusWriteError {
    /// The resource is gone (deleted).
    Gone(String),
    /// Any other failure.
    Failed(String),
}

impl std::fmt::Display for StatusWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusWriteError::Gone(message) | StatusWriteError::Failed(message) => {
                f.write_str(message)
            }
        }
    }
}

/// Records a Kubernetes Event about the resource (`kubectl describe` shows them). An Event
/// that cannot be written is logged, never a reason to stop.
pub(crate) async fn event(
    context: &Context,
    resource: &CanaryRollout,
    kind: &str,
    reason: &str,
    message: &str,
) {
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    let now = Timestamp::now().to_string();
    let message: String = message.chars().take(1024).collect();
    let object = json!({
        "metadata": {"generateName": format!("{name}."), "namespace": namespace},
        "involvedObject": {
            "apiVersion": CanaryRollout::api_version(&()),
            "kind": CanaryRollout::kind(&()),
            "name": name,
            "namespace": namespace,
            "uid": resource.metadata.uid,
            "resourceVersion": resource.metadata.resource_version,
        },
        "reason": reason,
        "message": canary_core::secret::redact(&message),
        "type": kind,
        "source": {"component": "canary-controller"},
        "reportingComponent": "canary.dev/controller",
        "reportingInstance": context.settings.identity,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let event: KubeEvent = match serde_json::from_value(object) {
        Ok(event) => event,
        Err(err) => {
            tracing::warn!("an Event for {namespace}/{name}: {err}");
            return;
        }
    };
    let api: Api<KubeEvent> = Api::namespaced(context.client.clone(), &namespace);
    let _permit = context.writes.acquire().await;
    if let Err(err) = context.fence.check() {
        tracing::warn!("an Event for {namespace}/{name} not written: {err}");
        return;
    }
    if let Err(err) = api.create(&PostParams::default(), &event).await {
        context.metrics.write_error();
        tracing::warn!("an Event for {namespace}/{name}: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose claim was taken over: its heartbeat and fence say so.
    struct LostClaim;

    /// A status publisher for the CanaryRollout `shop/checkout`, through a client of an
    /// address nothing listens on (the tests here never reach the API server), its writes
    /// behind `fence`.
    fn mk_publisher(fence: Fence) -> (Arc<Context>, StatusPublisher) {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let context = Arc::new(Context::new(
            client,
            super::super::Settings {
                namespace: None,
                prometheus: None,
                max_queries: 1,
                max_writes: 1,
                max_reads: 1,
                max_starts: 1,
                rollback_retry_for: Duration::from_secs(1),
                retry_after: Duration::from_secs(1),
                identity: "test".to_owned(),
                shard: canary_kubernetes::controller::Shard::ALL,
                allow_local_access: false,
                allow_cross_namespace: false,
                read_coalesce: Duration::ZERO,
                status_refresh: Duration::from_secs(300),
            },
            fence,
        ));
        let resource: CanaryRollout = serde_json::from_value(json!({
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "CanaryRollout",
            "metadata": {"name": "checkout", "namespace": "shop"},
            "spec": {"revision": "v1", "policy": {"service": "checkout"}},
        }))
        .unwrap();
        let publisher = StatusPublisher::start(
            context.clone(),
            Arc::new(resource),
            "canaryrollout-checkout".to_owned(),
            3,
            Duration::from_secs(1),
            Duration::from_secs(300),
            false,
        );
        (context, publisher)
    }

    #[async_trait]
    impl StateStore for LostClaim {
        async fn claim(&self, _: bool) -> canary_core::Result<()> {
            Ok(())
        }
        async fn release(&self) -> canary_core::Result<()> {
            Ok(())
        }
        async fn heartbeat(&self) -> canary_core::Result<()> {
            Err(canary_core::Error::ClaimLost("taken over".to_owned()))
        }
        async fn check_claim(&self) -> canary_core::Result<()> {
            Err(canary_core::Error::ClaimLost("taken over".to_owned()))
        }
        fn heartbeat_period(&self) -> Option<Duration> {
            Some(Duration::from_secs(5))
        }
        async fn holder(&self) -> canary_core::Result<Option<String>> {
            Ok(None)
        }
        async fn stale_claim(&self) -> canary_core::Result<Option<String>> {
            Ok(None)
        }
        async fn load(&self) -> canary_core::Result<Option<Rollout>> {
            Ok(None)
        }
        async fn save(&self, _: &Rollout) -> canary_core::Result<()> {
            Ok(())
        }
        async fn archive(&self, _: &Rollout) -> canary_core::Result<String> {
            Ok(String::new())
        }
        async fn request(&self, _: &ControlRequest) -> canary_core::Result<()> {
            Ok(())
        }
        async fn take_request(&self) -> canary_core::Result<Option<ControlRequest>> {
            Ok(None)
        }
        fn describe(&self) -> String {
            "a lost claim".to_owned()
        }
    }

    /// The store the driver sees keeps the claim's fence: a controller whose claim was taken
    /// over finds out before its next write (it did not: the trait's default answered
    /// "held"). Its heartbeat asks the API server only when no save renewed the claim for a
    /// third of its time to live: a waiting rollout (a save each tick) sends none, one in a
    /// long effect (a promotion, a hook) renews its claim — which, before a review of
    /// 2026-12-01, it did not, so `canary abort --kube` could take it over mid-promotion.
    #[tokio::test]
    async fn the_publishing_store_checks_the_claim_and_beats_only_when_no_save_renewed_it() {
        let (context, publisher) = mk_publisher(Fence::always_open("the test's lease"));
        let starts = Arc::new(Semaphore::new(1));
        let store = PublishingStore {
            context: &context,
            inner: &LostClaim,
            publisher: &publisher,
            fence: Fence::always_open("the test's lease"),
            due: TickDue::default(),
            requests: Arc::new(RequestSignal::new(None)),
            starting: StartPermit::new(starts.clone().try_acquire_owned().ok()),
            reads: Arc::new(Semaphore::new(1)),
            claim_ttl: Duration::from_secs(30),
            renewed: std::sync::Mutex::new(std::time::Instant::now()),
        };
        assert!(matches!(
            store.check_claim().await,
            Err(canary_core::Error::ClaimLost(_))
        ));
        // Just renewed (by a save): nothing asked.
        assert!(store.heartbeat().await.is_ok());
        assert_eq!(store.heartbeat_period(), Some(Duration::from_secs(5)));
        // No save for a third of the time to live: the inner store's heartbeat is asked
        // (and here says the claim was taken over).
        *store.renewed.lock().unwrap() = std::time::Instant::now() - Duration::from_secs(11);
        assert!(matches!(
            store.heartbeat().await,
            Err(canary_core::Error::ClaimLost(_))
        ));
        // The start permit goes back at the first save, not at the first wait: a rollout
        // resumed in a promotion (no wait for minutes) must not hold up the others' starts
        // (review finding of 2026-12-01).
        assert_eq!(starts.available_permits(), 0);
        let rollout = Machine::new(
            canary_core::policy::Policy::from_yaml(
                include_str!("../../../../policies/checkout.yaml"),
                "policies/checkout.yaml",
            )
            .unwrap(),
        )
        .unwrap()
        .start(Timestamp::now(), Some("v1".to_owned()));
        store.save(&rollout).await.unwrap();
        assert_eq!(
            starts.available_permits(),
            1,
            "given back at the first save"
        );
        publisher.finish().await;
    }

    /// A store that always holds its claim and records what it was asked to write.
    #[derive(Default)]
    struct Recording {
        writes: std::sync::Mutex<Vec<&'static str>>,
    }

    impl Recording {
        fn wrote(&self, what: &'static str) -> canary_core::Result<()> {
            self.writes.lock().unwrap().push(what);
            Ok(())
        }
    }

    #[async_trait]
    impl StateStore for Recording {
        async fn claim(&self, _: bool) -> canary_core::Result<()> {
            self.wrote("claim")
        }
        async fn release(&self) -> canary_core::Result<()> {
            self.wrote("release")
        }
        async fn heartbeat(&self) -> canary_core::Result<()> {
            self.wrote("heartbeat")
        }
        async fn check_claim(&self) -> canary_core::Result<()> {
            Ok(())
        }
        async fn holder(&self) -> canary_core::Result<Option<String>> {
            Ok(None)
        }
        async fn stale_claim(&self) -> canary_core::Result<Option<String>> {
            Ok(None)
        }
        async fn load(&self) -> canary_core::Result<Option<Rollout>> {
            Ok(None)
        }
        async fn save(&self, _: &Rollout) -> canary_core::Result<()> {
            self.wrote("save")
        }
        async fn archive(&self, _: &Rollout) -> canary_core::Result<String> {
            self.wrote("archive").map(|()| String::new())
        }
        async fn request(&self, _: &ControlRequest) -> canary_core::Result<()> {
            self.wrote("request")
        }
        async fn take_request(&self) -> canary_core::Result<Option<ControlRequest>> {
            self.wrote("take_request").map(|()| None)
        }
        fn describe(&self) -> String {
            "a recording store".to_owned()
        }
    }

    /// With the Lease's fence closed (a deposed leader), the store the driver sees refuses
    /// every write and says the claim is lost, before the store underneath is asked.
    #[tokio::test]
    async fn a_closed_lease_fence_stops_every_write_of_the_publishing_store() {
        let fence = Fence::new("Lease shop/canary-controller");
        let (context, publisher) = mk_publisher(fence.clone());
        let inner = Recording::default();
        let store = PublishingStore {
            context: &context,
            inner: &inner,
            publisher: &publisher,
            fence,
            due: TickDue::default(),
            requests: Arc::new(RequestSignal::new(None)),
            starting: StartPermit::default(),
            reads: Arc::new(Semaphore::new(1)),
            claim_ttl: Duration::from_secs(30),
            renewed: std::sync::Mutex::new(std::time::Instant::now()),
        };
        let rollout = Machine::new(
            canary_core::policy::Policy::from_yaml(
                include_str!("../../../../policies/checkout.yaml"),
                "policies/checkout.yaml",
            )
            .unwrap(),
        )
        .unwrap()
        .start(Timestamp::now(), Some("v1".to_owned()));
        let lost = |result: canary_core::Result<()>| {
            assert!(
                matches!(&result, Err(canary_core::Error::ClaimLost(m)) if m.contains("Lease shop/canary-controller")),
                "{result:?}"
            );
        };
        lost(store.claim(true).await);
        lost(store.heartbeat().await);
        lost(store.check_claim().await);
        lost(store.save(&rollout).await);
        lost(store.archive(&rollout).await.map(|_| ()));
        lost(store.take_request().await.map(|_| ()));
        lost(store.release().await);
        assert!(inner.writes.lock().unwrap().is_empty());
        // The status and Events are fenced too.
        let status = CanaryRolloutStatus::default();
        assert!(matches!(
            write_status(&context, "shop", "checkout", None, &status).await,
            Err(StatusWriteError::Failed(m)) if m.contains("does not hold")
        ));
        publisher.finish().await;
    }

    /// The driver looks for a control request four times a second; the ConfigMap is read
    /// only at the task's start and when the resource's watch announced a new request (it
    /// was read once a second: 60 GETs per rollout per minute).
    #[tokio::test]
    async fn control_requests_are_read_only_when_announced() {
        let fence = Fence::always_open("the test's lease");
        let (context, publisher) = mk_publisher(fence.clone());
        let inner = Recording::default();
        let requests = Arc::new(RequestSignal::new(None));
        let store = PublishingStore {
            context: &context,
            inner: &inner,
            publisher: &publisher,
            fence,
            due: TickDue::default(),
            requests: requests.clone(),
            starting: StartPermit::default(),
            reads: Arc::new(Semaphore::new(1)),
            claim_ttl: Duration::from_secs(30),
            renewed: std::sync::Mutex::new(std::time::Instant::now()),
        };
        let reads = || {
            inner
                .writes
                .lock()
                .unwrap()
                .iter()
                .filter(|w| **w == "take_request")
                .count()
        };
        for _ in 0..20 {
            store.take_request().await.unwrap();
        }
        assert_eq!(reads(), 1, "read once, at the start");
        requests.saw(Some("2026-12-01T05:00:00Z"));
        for _ in 0..20 {
            store.take_request().await.unwrap();
        }
        assert_eq!(reads(), 2, "and once for the announced request");
        publisher.finish().await;
    }

    /// A router that records every change it is asked for.
    #[derive(Default)]
    struct RecordingRouter {
        changes: Arc<std::sync::Mutex<Vec<&'static str>>>,
    }

    #[async_trait]
    impl TrafficRouter for RecordingRouter {
        async fn set_canary_weight(&self, _: u8) -> canary_core::Result<()> {
            self.changes.lock().unwrap().push("weight");
            Ok(())
        }
        async fn canary_weight(&self) -> canary_core::Result<u8> {
            Ok(0)
        }
        async fn set_canary_route(
            &self,
            _: &canary_core::policy::StepRoute,
        ) -> canary_core::Result<()> {
            self.changes.lock().unwrap().push("route");
            Ok(())
        }
        async fn preflight(&self) -> canary_core::Result<()> {
            self.changes.lock().unwrap().push("preflight");
            Err(canary_core::Error::Usage(
                "not routed as the policy says".to_owned(),
            ))
        }
        fn describe(&self) -> String {
            "a recording router".to_owned()
        }
    }

    /// The router's own pre-flight reaches it through the controller's wrapper: the trait's
    /// default (one read of the weight) let an HAProxy whose route ACL is missing pass the
    /// controller's pre-flight (found merging the HAProxy route ACL, 2026-12-01).
    #[tokio::test]
    async fn the_bounded_router_forwards_the_routers_own_preflight() {
        let inner = RecordingRouter::default();
        let changes = inner.changes.clone();
        let router = BoundedRouter {
            inner: Box::new(inner),
            permits: Arc::new(Semaphore::new(1)),
            reads: Arc::new(Semaphore::new(1)),
            fence: Fence::new("Lease shop/canary-controller"),
        };
        assert!(matches!(
            router.preflight().await,
            Err(canary_core::Error::Usage(_))
        ));
        assert_eq!(*changes.lock().unwrap(), ["preflight"]);
    }

    /// With the Lease's fence closed, the router the driver sees changes neither a weight
    /// nor a route (the route went through: only weights were fenced).
    #[tokio::test]
    async fn a_closed_lease_fence_stops_every_change_of_the_bounded_router() {
        let inner = RecordingRouter::default();
        let changes = inner.changes.clone();
        let router = BoundedRouter {
            inner: Box::new(inner),
            permits: Arc::new(Semaphore::new(1)),
            reads: Arc::new(Semaphore::new(1)),
            fence: Fence::new("Lease shop/canary-controller"),
        };
        let route = canary_core::policy::StepRoute::Header {
            name: "x-canary".to_owned(),
            value: "1".to_owned(),
        };
        assert!(matches!(
            router.set_canary_weight(10).await,
            Err(canary_core::Error::ClaimLost(_))
        ));
        assert!(matches!(
            router.set_canary_route(&route).await,
            Err(canary_core::Error::ClaimLost(_))
        ));
        assert!(changes.lock().unwrap().is_empty());
    }
}
