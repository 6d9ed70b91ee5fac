//! `canary controller`'s engine: kube-rs' runtime [`Controller`] watches every
//! `CanaryRollout` and calls [`reconcile`]; each resource whose rollout has to run gets a
//! task of its own ([`task`]) that drives the SAME rollout machine and judge as `canary
//! rollout`, through the same [`Driver`](crate::driver::Driver) — nothing about deciding
//! is here.
//!
//! Reconciling is idempotent: it reads the resource, checks its spec and policy (a problem
//! becomes the status `Invalid`, with the field path), works out the revision, and makes
//! sure one task runs for a rollout that has not ended. The task keeps the rollout's state
//! in a ConfigMap of its own (`canaryrollout-NAME`), so a restarted controller resumes every
//! rollout at its step; it writes the status (coalesced: at most one write per tick) and an
//! Event at each transition.
//!
//! Only the leader drives rollouts: [`run`] stands by until it holds the controller's Lease
//! (`canary_kubernetes::controller::lease`), and every write — weights, state, status,
//! Events — checks the Lease's [`Fence`] right before it goes out, so a deposed leader writes
//! nothing after it lost the Lease. Losing it stops the process (exit 4): its replacement
//! stands by, and the new leader resumes every rollout at its step from its ConfigMap.
//!
//! A standby is warm: it watches the CanaryRollouts and reads and checks their inline
//! policies while it stands by, writing nothing, so that once it leads it has neither the
//! list nor the policies left to do before it resumes them — as controller-runtime starts
//! its informers' caches before leader election. At 10,000 rollouts the list alone was a
//! second of a take-over.
//!
//! Many rollouts share one process: metrics queries and API writes go through semaphores
//! (`--max-concurrent-queries`, `--max-concurrent-writes`, `--max-concurrent-reads`,
//! `--max-concurrent-starts`), and each rollout's waits are
//! tokio timers. A waiting rollout costs the API server nothing: no heartbeat per rollout
//! (the Lease is the controller's), and control requests are read when the resource's
//! watch announces one ([`requests`]), not polled.

mod metrics;
mod requests;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_core::policy::Policy;
use canary_kubernetes::controller::resource::{self, PolicyOrigin, Rolled};
use canary_kubernetes::controller::{
    CanaryRollout, CanaryRolloutStatus, Fence, LeaderElector, Shard, invalid_status,
};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::Semaphore;

pub(crate) use metrics::ControllerMetrics;
pub(crate) use requests::AnnouncingStore;
use requests::RequestSignal;
pub(crate) use task::{router_for, state_config_map};

/// What the controller is told on its command line.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Only this namespace's resources (default: all).
    pub(crate) namespace: Option<String>,
    /// `--prometheus`: overrides every policy's Prometheus URL.
    pub(crate) prometheus: Option<String>,
    /// How many metrics queries run at once, across all rollouts.
    pub(crate) max_queries: usize,
    /// How many gateway and status writes run at once, across all rollouts.
    pub(crate) max_writes: usize,
    /// How many API reads of the rollouts run at once, across all rollouts.
    pub(crate) max_reads: usize,
    /// How many rollouts start (or resume) at once ([`Context::starts`]).
    pub(crate) max_starts: usize,
    /// How long a rollback retries setting weight 0.
    pub(crate) rollback_retry_for: Duration,
    /// How long a rollout that stopped on an infrastructure failure waits before resuming.
    pub(crate) retry_after: Duration,
    /// Who this controller is, in the state ConfigMaps' `owner.json`.
    pub(crate) identity: String,
    /// Which resources are this process' (`--shard I/N`); the others it leaves alone.
    pub(crate) shard: Shard,
    /// `--allow-local-access`: policies may read the controller's files and environment and
    /// run programs in it ([`Policy::local_access`]); refused otherwise.
    pub(crate) allow_local_access: bool,
    /// `--allow-cross-namespace`: policies may name namespaces other than their
    /// CanaryRollout's ([`Policy::namespaces_written`]); refused otherwise.
    pub(crate) allow_cross_namespace: bool,
    /// `--read-coalesce`: how long a shared Prometheus read waits for other rollouts' reads
    /// of the same series (`canary_metrics::shared`); zero: every rollout its own queries.
    pub(crate) read_coalesce: Duration,
    /// `--status-refresh`: how often a status whose text alone changed (the numbers in its
    /// reasons) is written anyway; a change of what it shows is written at once.
    pub(crate) status_refresh: Duration,
}

/// What every reconcile and every rollout task shares.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) settings: Settings,
    /// The rollouts under way, by namespace and name.
    running: Mutex<HashMap<(String, String), Running>>,
    /// Metrics queries in flight, across all rollouts.
    pub(crate) queries: Arc<Semaphore>,
    /// API writes in flight (weights, status, Events), across all rollouts.
    pub(crate) writes: Arc<Semaphore>,
    /// Rollouts starting (or resuming) at once: from reading their state to their first
    /// wait, a few API requests each. Unbounded, 1,000 rollouts starting together queued
    /// the Lease's renewal behind some 12,000 requests past its renew deadline; 16 (it was
    /// `--max-concurrent-writes`) paced a take-over of 10,000 rollouts at one every
    /// millisecond on round trips, with the processor half idle (benchmarks.md, "Failover").
    pub(crate) starts: Arc<Semaphore>,
    /// The rollouts' API reads in flight (state, claim, weight read back): unbounded, 10,000
    /// rollouts held 1,199 connections to the API server.
    pub(crate) reads: Arc<Semaphore>,
    /// Open while this process holds the leader Lease: checked right before every write.
    pub(crate) fence: Fence,
    /// The controller's own metrics (`--metrics-addr`).
    pub(crate) metrics: ControllerMetrics,
    /// The rollouts' Prometheus reads of the same series, one query per batch (`None` with
    /// `--read-coalesce 0`).
    pub(crate) shared_reads: Option<Arc<canary_metrics::SharedReads>>,
    /// The hook runner every rollout shares (and whose HTTP client its notifier sends
    /// through): built at the first rollout, as building it can fail.
    hooks: std::sync::OnceLock<canary_gateways::HookRunner>,
    /// The watch's cache of the CanaryRollouts (kube-rs' reflector store): how a rollout's
    /// task learns that its resource was deleted (see [`Context::deleted`]).
    watched: std::sync::OnceLock<kube::runtime::reflector::Store<CanaryRollout>>,
    /// Set once this process leads (it never stops leading but by exiting): until then a
    /// reconcile only warms [`Context::warm`].
    leading: std::sync::atomic::AtomicBool,
    /// The inline policies read and checked while standing by, by the resource's uid, with
    /// the generation they were read at: taken by the first reconcile once leading.
    warm: Mutex<HashMap<String, WarmPolicy>>,
}

/// An inline policy read and checked while standing by ([`Context::warm`]).
struct WarmPolicy {
    /// The resource's `metadata.generation` it was read at: a spec changed since is read
    /// again.
    generation: Option<i64>,
    policy: Policy,
}

/// A rollout's task.
struct Running {
    task: tokio::task::JoinHandle<()>,
    /// Raised when the resource announces a control request.
    requests: Arc<RequestSignal>,
}

impl Context {
    /// A context for `client`, whose writes go out while `fence` is open.
    pub(crate) fn new(client: Client, settings: Settings, fence: Fence) -> Context {
        let queries = Arc::new(Semaphore::new(settings.max_queries.max(1)));
        let shared_reads = (!settings.read_coalesce.is_zero()).then(|| {
            canary_metrics::SharedReads::new(settings.read_coalesce, Some(queries.clone()))
        });
        Context {
            client,
            fence,
            metrics: ControllerMetrics::new(),
            queries,
            shared_reads,
            writes: Arc::new(Semaphore::new(settings.max_writes.max(1))),
            starts: Arc::new(Semaphore::new(settings.max_starts.max(1))),
            reads: Arc::new(Semaphore::new(settings.max_reads.max(1))),
            settings,
            running: Mutex::new(HashMap::new()),
            hooks: std::sync::OnceLock::new(),
            watched: std::sync::OnceLock::new(),
            leading: std::sync::atomic::AtomicBool::new(false),
            warm: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this process leads (see [`Context::leading`]).
    fn is_leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn warm(&self) -> std::sync::MutexGuard<'_, HashMap<String, WarmPolicy>> {
        self.warm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// While standing by: reads and checks the resource's inline policy, as a reconcile
    /// will once this process leads, and keeps it. Nothing is written; a policy that does
    /// not pass is left for that reconcile to report. One in a ConfigMap is not kept: the
    /// ConfigMap can change without the resource changing.
    fn warm_up(&self, resource: &CanaryRollout) {
        let Some(uid) = resource.metadata.uid.clone() else {
            return;
        };
        let generation = resource.metadata.generation;
        if self
            .warm()
            .get(&uid)
            .is_some_and(|warm| warm.generation == generation)
        {
            return;
        }
        let namespace = resource.namespace().unwrap_or_default();
        match checked_inline_policy(resource, &namespace, &self.settings) {
            Ok(policy) => {
                let mut warm = self.warm();
                warm.insert(uid, WarmPolicy { generation, policy });
                self.forget_deleted(&mut warm);
            }
            Err(_) => {
                self.warm().remove(&uid);
            }
        }
    }

    /// Drops what was warmed up for resources the watch no longer has (deleted while
    /// standing by: deletions are not reconciled), each time as many are kept as a power of
    /// two (from 1,024): at most twice as many as are watched, looked through now and then.
    /// (Looking at every warm-up cost a standby 6 % of its processor time at 10,000.)
    fn forget_deleted(&self, warm: &mut HashMap<String, WarmPolicy>) {
        if warm.len() < 1024 || !warm.len().is_power_of_two() {
            return;
        }
        let Some(watched) = self.watched.get() else {
            return;
        };
        let resources = watched.state();
        let uids: std::collections::HashSet<&str> = resources
            .iter()
            .filter_map(|resource| resource.metadata.uid.as_deref())
            .collect();
        warm.retain(|uid, _| uids.contains(uid.as_str()));
    }

    /// The policy [`Context::warm_up`] kept for this resource, if its spec is the one it was
    /// read from (taken: kept once).
    fn warm_policy(&self, resource: &CanaryRollout) -> Option<Policy> {
        let uid = resource.metadata.uid.as_ref()?;
        let warm = self.warm().remove(uid)?;
        (warm.generation == resource.metadata.generation).then_some(warm.policy)
    }

    /// Whether the controller's watch says `resource` no longer exists: not in its cache
    /// (or another object of the same name, a new uid, in its place), once the cache has
    /// been filled by a first list. Reconciles run on changes only, not on deletions, and the
    /// status is written only when what it shows changes, so a rollout's task asks this at
    /// each save — the machine saves before every weight change — and stops where it stands.
    pub(crate) fn deleted(&self, resource: &CanaryRollout) -> bool {
        use futures_util::FutureExt as _;
        let Some(watched) = self.watched.get() else {
            return false;
        };
        if !matches!(watched.wait_until_ready().now_or_never(), Some(Ok(()))) {
            return false;
        }
        match watched.get(&kube::runtime::reflector::ObjectRef::from_obj(resource)) {
            None => true,
            Some(current) => match (&current.metadata.uid, &resource.metadata.uid) {
                (Some(now), Some(then)) => now != then,
                _ => false,
            },
        }
    }

    /// The hook runner the rollouts share: one HTTP client for every rollout's hooks and
    /// notifications. A client each (two per rollout) loaded the system's root certificates
    /// for each of them.
    pub(crate) fn hooks(
        &self,
    ) -> Result<canary_gateways::HookRunner, canary_gateways::GatewayError> {
        if let Some(hooks) = self.hooks.get() {
            return Ok(hooks.clone());
        }
        let built = canary_gateways::HookRunner::new()?;
        Ok(self.hooks.get_or_init(|| built).clone())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a reconcile could not finish; the runtime retries it.
#[derive(Debug)]
pub(crate) struct ReconcileError(String);

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReconcileError {}

/// Stands by until this process holds the leader Lease, then runs the controller while it
/// renews the Lease, until a signal stops it (`Ok`) or the Lease is lost (an error: exit 4,
/// with every rollout task stopped and the fence closed). The rollout tasks stop with the
/// process, as in a crash: each resumes from its saved state in the next leader (every
/// effect is idempotent).
pub(crate) async fn run(context: Arc<Context>, mut elector: LeaderElector) -> anyhow::Result<()> {
    let lease = elector.settings().describe();
    let identity = elector.settings().identity.clone();
    // The watch starts once this process knows it may use the Lease (it leads, or another
    // does): standing by, its reconciles warm the policies up; leading, `led` has every
    // watched resource reconciled again, for real. A process refused the Lease reads nothing.
    let may_watch = Arc::new(tokio::sync::Notify::new());
    let (led, leading) = tokio::sync::oneshot::channel::<()>();
    let mut reconciling = tokio::spawn({
        let (context, may_watch) = (context.clone(), may_watch.clone());
        async move {
            may_watch.notified().await;
            reconcile_all(context, leading).await;
        }
    });
    let acquired = tokio::select! {
        acquired = elector.acquire(
            |holder| {
                eprintln!("canary controller: standing by: the {lease} is held by {holder}");
                may_watch.notify_one();
            },
            |err| eprintln!("canary controller: standing by: the {lease} is held by unknown ({err})"),
        ) => acquired,
        () = signalled() => {
            reconciling.abort();
            return Ok(());
        }
    };
    if let Err(err) = acquired {
        reconciling.abort();
        return Err(err.into_core().into());
    }
    may_watch.notify_one();
    context.metrics.set_leader(true);
    context
        .leading
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = led.send(());
    // What was warmed up for resources deleted while standing by is never taken.
    tokio::spawn({
        let context = context.clone();
        async move {
            tokio::time::sleep(WARM_KEPT).await;
            context.warm().clear();
        }
    });
    eprintln!("canary controller: leading: the {lease} is held by {identity}");
    // The renewals run in a task of their own: polled beside the Controller's stream, they
    // waited while it worked through thousands of reconciles at once.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut keeper = tokio::spawn({
        let lease = lease.clone();
        async move {
            let lost = tokio::select! {
                lost = elector.keep(|err| tracing::warn!("renewing the {lease}: {err}")) => Some(lost),
                _ = stopped => None,
            };
            (elector, lost)
        }
    });
    let (mut elector, lost) = tokio::select! {
        _ = &mut reconciling => {
            let _ = stop.send(());
            match (&mut keeper).await {
                Ok(kept) => kept,
                Err(err) => anyhow::bail!("the Lease's renewals stopped: {err}"),
            }
        }
        kept = &mut keeper => match kept {
            Ok(kept) => kept,
            Err(err) => anyhow::bail!("the Lease's renewals stopped: {err}"),
        },
    };
    context.metrics.set_leader(false);
    reconciling.abort();
    // Whatever stopped it, the rollouts stop with it (their next write would find the fence
    // closed anyway).
    let tasks: Vec<_> = context
        .running()
        .drain()
        .map(|(_, rollout)| rollout.task)
        .collect();
    for task in &tasks {
        task.abort();
    }
    match lost {
        Some(lost) => Err(lost.into_core().into()),
        None => {
            // Stopped by a signal (a rolling update, a drain): once every rollout task has
            // stopped, the Lease is given up so that the standby leads at its next look
            // rather than a lease duration later.
            for task in tasks {
                let _ = task.await;
            }
            match elector.release().await {
                Ok(()) => eprintln!("canary controller: stopped; the {lease} is released"),
                Err(err) => tracing::warn!("releasing the {lease}: {err}"),
            }
            Ok(())
        }
    }
}

/// Resolves at the first SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// How long what a standby warmed up is kept once it leads: the reconciles of every watched
/// resource that leading starts take it long before.
const WARM_KEPT: Duration = Duration::from_secs(300);

/// Runs kube-rs' Controller until the watch stream ends (a signal stops it); once `leading`
/// resolves, every resource in the watch's cache is reconciled again.
async fn reconcile_all(context: Arc<Context>, leading: tokio::sync::oneshot::Receiver<()>) {
    let api: Api<CanaryRollout> = match &context.settings.namespace {
        Some(namespace) => Api::namespaced(context.client.clone(), namespace),
        None => Api::all(context.client.clone()),
    };
    // Watches end within the client's read timeout and are renewed; bookmarks keep the
    // resourceVersion fresh so a renewal seldom needs a new list.
    let config = watcher::Config::default().timeout(25);
    let controller = Controller::new(api, config);
    let _ = context.watched.set(controller.store());
    let led = futures_util::stream::once(leading).filter_map(|led| async move { led.ok() });
    controller
        .reconcile_all_on(led)
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::warn!("reconcile: {err}");
            }
        })
        .await;
}

/// What the runtime does after a failed reconcile: try again soon.
fn error_policy(_: Arc<CanaryRollout>, err: &ReconcileError, context: Arc<Context>) -> Action {
    tracing::warn!("reconcile failed: {err}");
    context.metrics.reconcile_error();
    Action::requeue(Duration::from_secs(5))
}

/// What a resource asks for, once read and checked.
pub(crate) struct Prepared {
    pub(crate) policy: Policy,
    pub(crate) revision: String,
}

/// Why a resource cannot be prepared.
enum NotPrepared {
    /// Its spec or policy is wrong: the user must change it (status `Invalid`).
    Invalid(String),
    /// Something it refers to could not be read now: retry.
    Unavailable(String),
}

/// Makes sure the resource's rollout runs (or has ended). Idempotent: a second call while
/// the rollout runs, or after it ended, changes nothing.
pub(crate) async fn reconcile(
    resource: Arc<CanaryRollout>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    if !context.settings.shard.owns(&namespace, &name) {
        // Another shard's: it is neither read further nor written, ever, by this process.
        return Ok(Action::await_change());
    }
    if !context.is_leading() {
        // Standing by: nothing is written; leading reconciles every resource again.
        context.warm_up(&resource);
        return Ok(Action::await_change());
    }
    let key = (namespace.clone(), name.clone());
    {
        let mut running = context.running();
        if let Some(rollout) = running.get(&key) {
            if !rollout.task.is_finished() {
                // A control request announced on the resource: its task reads it now.
                rollout.requests.saw(requests::annotation_of(&resource));
                // The task writes the status; a new revision waits for it to end.
                return Ok(Action::requeue(Duration::from_secs(60)));
            }
            running.remove(&key);
        }
    }
    let prepared = match prepare(&resource, &context).await {
        Ok(prepared) => prepared,
        Err(NotPrepared::Invalid(problem)) => {
            let status = invalid_status(
                &problem,
                resource.metadata.generation,
                resource.status.as_ref(),
                jiff::Timestamp::now(),
            );
            if resource.status.as_ref() != Some(&status) || !same_problem(&resource, &problem) {
                task::write_status(
                    &context,
                    &namespace,
                    &name,
                    resource.status.as_ref(),
                    &status,
                )
                .await
                .map_err(|err| ReconcileError(err.to_string()))?;
                task::event(&context, &resource, "Warning", "Invalid", &problem).await;
            }
            return Ok(Action::await_change());
        }
        Err(NotPrepared::Unavailable(problem)) => return Err(ReconcileError(problem)),
    };
    if let Some(status) = &resource.status
        && status.revision.as_deref() == Some(prepared.revision.as_str())
        && matches!(
            status.phase.as_deref(),
            Some(canary_kubernetes::controller::status::phase::PROMOTED)
                | Some(canary_kubernetes::controller::status::phase::ROLLED_BACK)
        )
    {
        // This revision's rollout has ended: nothing to do until the spec changes.
        return Ok(Action::await_change());
    }
    let requests = Arc::new(RequestSignal::new(requests::annotation_of(&resource)));
    let task = tokio::spawn(task::run(
        context.clone(),
        Arc::new(held_by_task(&resource)),
        prepared,
        requests.clone(),
    ));
    context.running().insert(key, Running { task, requests });
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// The copy of the resource a rollout's task keeps for as long as the rollout runs: its
/// metadata (for its name, Events and status writes) and its status when it started, but not
/// its spec — the task has the policy read and checked ([`Prepared`]) — nor its
/// `managedFields`. Holding the watch's own copy kept that version alive beside every newer
/// one the watch holds: at 10,000 rollouts, two copies of each inline policy.
fn held_by_task(resource: &CanaryRollout) -> CanaryRollout {
    let mut metadata = resource.metadata.clone();
    metadata.managed_fields = None;
    CanaryRollout {
        metadata,
        spec: canary_kubernetes::controller::resource::CanaryRolloutSpec::default(),
        status: resource.status.clone(),
    }
}

/// Whether the resource's status already says this problem (so it is not written again).
fn same_problem(resource: &CanaryRollout, problem: &str) -> bool {
    resource
        .status
        .as_ref()
        .is_some_and(|s: &CanaryRolloutStatus| {
            s.phase.as_deref() == Some(canary_kubernetes::controller::status::phase::INVALID)
                && s.observed_generation == resource.metadata.generation
                && s.conditions
                    .iter()
                    .any(|c| c.message == problem.lines().next().unwrap_or(""))
        })
}

/// Reads the resource's policy (inline, or from its ConfigMap) through the policy
/// validator, and works out what is rolled out.
async fn prepare(resource: &CanaryRollout, context: &Context) -> Result<Prepared, NotPrepared> {
    let origin = resource::describe(resource);
    let namespace = resource.namespace().unwrap_or_default();
    let invalid =
        |problem: &dyn std::fmt::Display| NotPrepared::Invalid(format!("{origin}: {problem}"));
    let policy = match context.warm_policy(resource) {
        // Its secrets learnt again: a file of one may have changed since it was warmed up.
        Some(policy) => {
            canary_core::secret::learn_secrets_of(&policy)
                .map_err(|err| NotPrepared::Invalid(format!("{origin}: {err}")))?;
            policy
        }
        None => {
            let policy = policy_of(&context.client, resource).await?;
            checked(policy, &origin, &namespace, &context.settings)?
        }
    };
    let revision = match resource.spec.rolled().map_err(|p| invalid(&p))? {
        Rolled::Revision(revision) => revision.to_owned(),
        Rolled::Deployment(name) => {
            let api: Api<Deployment> = Api::namespaced(context.client.clone(), &namespace);
            let deployment = match api.get_opt(name).await {
                Ok(Some(deployment)) => deployment,
                Ok(None) => {
                    return Err(invalid(&format!(
                        "spec.targetRef: Deployment {namespace}/{name} does not exist"
                    )));
                }
                Err(err) => {
                    return Err(NotPrepared::Unavailable(format!(
                        "{origin}: reading Deployment {namespace}/{name}: {err}"
                    )));
                }
            };
            let template = deployment
                .spec
                .map(|spec| serde_json::to_value(spec.template).unwrap_or_default())
                .unwrap_or_default();
            format!("{name}@{}", template_digest(&template))
        }
    };
    Ok(Prepared { policy, revision })
}

/// `policy` once it passed the controller's own checks (local access, other namespaces),
/// with its secrets learnt by the redactor.
fn checked(
    policy: Policy,
    origin: &str,
    namespace: &str,
    settings: &Settings,
) -> Result<Policy, NotPrepared> {
    let invalid = |problem: &str| NotPrepared::Invalid(format!("{origin}: {problem}"));
    refuse_local_access(&policy, settings.allow_local_access).map_err(|p| invalid(&p))?;
    refuse_other_namespaces(&policy, namespace, settings.allow_cross_namespace)
        .map_err(|p| invalid(&p))?;
    canary_core::secret::learn_secrets_of(&policy).map_err(|err| invalid(&err.to_string()))?;
    Ok(policy)
}

/// The resource's inline policy, read and [`checked`] (no API request).
fn checked_inline_policy(
    resource: &CanaryRollout,
    namespace: &str,
    settings: &Settings,
) -> Result<Policy, NotPrepared> {
    let origin = resource::describe(resource);
    let PolicyOrigin::Inline(value) = resource
        .spec
        .policy_origin()
        .map_err(|p| NotPrepared::Invalid(format!("{origin}: {p}")))?
    else {
        return Err(NotPrepared::Unavailable(format!(
            "{origin}: its policy is not inline"
        )));
    };
    let policy = resource::inline_policy(value, &origin)
        .map_err(|err| NotPrepared::Invalid(err.to_string()))?;
    checked(policy, &origin, namespace, settings)
}

/// Whoever may create a CanaryRollout in some namespace writes its policy: unless the
/// controller was started with `--allow-local-access`, a policy that would read the
/// controller's files or environment (its ServiceAccount token, its AWS credentials), run
/// a program in it or use a gateway that is not a Kubernetes one (a command, a file it
/// writes, a local socket or an address reached from the controller's pod) is refused
/// before anything is read or sent.
fn refuse_local_access(policy: &Policy, allowed: bool) -> Result<(), String> {
    let found = policy.local_access();
    if allowed || found.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
    Err(format!(
        "the policy reaches into the controller's own files, environment, programs or network, \
         which a CanaryRollout may not: {}. Give credentials a CanaryRollout may use through \
         its servers and move traffic with a Kubernetes gateway, or start the controller with \
         --allow-local-access where everyone who may create a CanaryRollout is trusted with the \
         controller's files, environment and ServiceAccount",
        list.join("; ")
    ))
}

/// The controller writes with its own ClusterRole: unless it was started with
/// `--allow-cross-namespace`, a policy naming a namespace other than its CanaryRollout's
/// (whose author may have no rights there) is refused before anything is written.
fn refuse_other_namespaces(policy: &Policy, own: &str, allowed: bool) -> Result<(), String> {
    let found = policy.namespaces_other_than(own);
    if allowed || found.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = found
        .iter()
        .map(|field| format!("{} names namespace {}", field.field, field.namespace))
        .collect();
    Err(format!(
        "the policy names a namespace other than its CanaryRollout's ({own}), which the \
         controller refuses without --allow-cross-namespace (it would write there with its own \
         ClusterRole): {}. Leave the field out (it defaults to {own}) or create the \
         CanaryRollout in that namespace",
        list.join("; ")
    ))
}

/// The resource's policy, inline or from its ConfigMap, through the policy validator.
async fn policy_of(client: &Client, resource: &CanaryRollout) -> Result<Policy, NotPrepared> {
    let origin = resource::describe(resource);
    let namespace = resource.namespace().unwrap_or_default();
    let invalid =
        |problem: &dyn std::fmt::Display| NotPrepared::Invalid(format!("{origin}: {problem}"));
    Ok(
        match resource.spec.policy_origin().map_err(|p| invalid(&p))? {
            PolicyOrigin::Inline(value) => resource::inline_policy(value, &origin)
                .map_err(|err| NotPrepared::Invalid(err.to_string()))?,
            PolicyOrigin::ConfigMap { name, key } => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
                let configmap = match api.get_opt(name).await {
                    Ok(Some(configmap)) => configmap,
                    Ok(None) => {
                        return Err(invalid(&format!(
                            "spec.policyFrom.configMapKeyRef: ConfigMap {namespace}/{name} does not exist"
                        )));
                    }
                    Err(err) => {
                        return Err(NotPrepared::Unavailable(format!(
                            "{origin}: reading ConfigMap {namespace}/{name}: {err}"
                        )));
                    }
                };
                let Some(text) = configmap.data.as_ref().and_then(|data| data.get(key)) else {
                    return Err(invalid(&format!(
                        "spec.policyFrom.configMapKeyRef: ConfigMap {namespace}/{name} has no key {key:?}"
                    )));
                };
                resource::configmap_policy(text, &format!("ConfigMap {namespace}/{name} key {key}"))
                    .map_err(|err| NotPrepared::Invalid(err.to_string()))?
            }
        },
    )
}

/// The resource's policy, for `canary wait`: a problem with it is bad input (exit 2),
/// one reading it an infrastructure error (exit 4).
pub(crate) async fn resource_policy(
    client: &Client,
    resource: &CanaryRollout,
) -> Result<Policy, canary_core::Error> {
    policy_of(client, resource).await.map_err(|err| match err {
        NotPrepared::Invalid(problem) => canary_core::Error::Usage(problem),
        NotPrepared::Unavailable(problem) => {
            canary_core::Error::unavailable("kubernetes", "the API server", problem)
        }
    })
}

/// A digest of a pod template (FNV-1a over its JSON: typed fields in their declared order,
/// labels and annotations sorted): the same template gives the same revision, a changed one
/// a new revision.
fn template_digest(template: &serde_json::Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in template.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", hash & 0xff_ffff_ffff)
}
