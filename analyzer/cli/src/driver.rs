//! The driver: carries out the rollout machine's effects against the real world.
//!
//! The machine decides; the driver persists, notifies, runs hooks, sets weights, waits and
//! reads, and feeds each result back as the next event. Signals are honoured between
//! effects, never inside one: a weight change always completes and is recorded before an
//! interrupt is handled, so weights are never left half-set.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use canary_core::policy::HookEvent;
use canary_core::ports::{
    Clock, MetricsSource, StateStore, TrafficRouter, set_and_verify, set_and_verify_route,
};
use canary_core::retry::{Backoff, Failure, retry};
use canary_core::rollout::{Effect, Event, Machine, Outcome, Rollout};
use canary_gateways::{HookContext, HookRunner, Notifier};
use jiff::Timestamp;
use tokio::sync::Notify;

use crate::progress::Progress;
use crate::self_metrics::SelfMetrics;

/// How often a wait looks for requests from `canary promote` / `abort` when nothing
/// announces them ([`RequestLooks::Polled`]).
const POLL: Duration = Duration::from_millis(250);

/// When a waiting driver asks its store for a control request (`canary promote|abort`).
#[derive(Clone, Debug)]
pub(crate) enum RequestLooks {
    /// Every [`POLL`]: nothing announces a request (`canary rollout`, whose requests are a
    /// file or a ConfigMap key left by another process; the store itself reads them less
    /// often).
    Polled,
    /// When `announced` is notified, and at least every `fallback`: the controller, whose
    /// watch of its resources announces requests. A waiting rollout sleeps until its tick;
    /// polled, each of 10,000 waiting rollouts woke four times a second for nothing.
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    Announced {
        announced: Arc<Notify>,
        fallback: Duration,
    },
}

impl RequestLooks {
    /// Sleeps until the next look, at most `remaining` (the end of the wait).
    async fn nap(&self, remaining: Duration) {
        match self {
            RequestLooks::Polled => tokio::time::sleep(remaining.min(POLL)).await,
            RequestLooks::Announced {
                announced,
                fallback,
            } => {
                tokio::select! {
                    () = tokio::time::sleep(remaining.min(*fallback)) => {}
                    () = announced.notified() => {}
                }
            }
        }
    }
}

/// Saving the state: three attempts, 200 ms and 400 ms apart.
const PERSIST_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(400), 2);

/// What the driver needs from the outside world.
pub(crate) struct Driver<'a> {
    pub(crate) machine: &'a Machine,
    pub(crate) store: &'a dyn StateStore,
    pub(crate) source: &'a dyn MetricsSource,
    pub(crate) router: &'a dyn TrafficRouter,
    pub(crate) hooks: &'a HookRunner,
    pub(crate) progress: &'a mut Progress,
    pub(crate) interrupts: Interrupts,
    /// When a wait asks the store for a control request.
    pub(crate) request_looks: RequestLooks,
    /// The rollout's own metrics (`--metrics-addr`), if served.
    pub(crate) metrics: Option<&'a SelfMetrics>,
    /// The policy's notification channels.
    pub(crate) notifier: Notifier,
    /// The time (the system clock; tests may bring their own).
    pub(crate) clock: &'a dyn Clock,
    /// How long a rollback retries setting weight 0 before it gives up (exit 4).
    pub(crate) rollback_retry_for: Duration,
    /// The promoter of the policy's `promotion` when the caller brings its own (the
    /// controller's, whose writes are fenced on its Lease); `None`: built from the policy
    /// (its kubeconfig context), as `canary rollout` does.
    pub(crate) promoter: Option<crate::adapters::Promoter>,
}

/// SIGINT/SIGTERM, as a flag the driver looks at between effects.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interrupts {
    raised: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Interrupts {
    /// Listens for SIGINT and SIGTERM for the life of the runtime.
    pub(crate) fn install() -> anyhow::Result<Interrupts> {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupts = Interrupts::default();
        for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
            let mut stream = signal(kind)?;
            let handle = interrupts.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    handle.raise();
                }
            });
        }
        Ok(interrupts)
    }

    pub(crate) fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Takes a pending interrupt (so it is handled once).
    fn take(&self) -> bool {
        self.raised.swap(false, Ordering::SeqCst)
    }
}

impl Driver<'_> {
    /// Runs the machine from `first` until it finishes.
    pub(crate) async fn run(
        &mut self,
        rollout: &mut Rollout,
        first: Event,
    ) -> anyhow::Result<Outcome> {
        // Notifications go out in the background (a slow receiver never holds the rollout
        // up); the ones under way are waited for, within their timeouts, before returning.
        let mut sending = tokio::task::JoinSet::new();
        // The claim's heartbeat beats beside the effects, on this task: a process that is
        // paused, or stuck without reaching the scheduler, stops renewing it (that is what
        // "alive" means, see canary_core::claim). A heartbeat that finds the claim taken
        // over stops the rollout at once; before that, every write checks the claim.
        let store = self.store;
        let outcome = tokio::select! {
            outcome = self.run_effects(rollout, first, &mut sending) => outcome,
            lost = heartbeat(store) => Err(lost.into()),
        };
        while let Some(result) = sending.join_next().await {
            if let Ok(failures) = result {
                for failure in failures {
                    self.progress.line(&format!("warning: {failure}"));
                }
            }
        }
        outcome
    }

    async fn run_effects(
        &mut self,
        rollout: &mut Rollout,
        first: Event,
        sending: &mut tokio::task::JoinSet<Vec<String>>,
    ) -> anyhow::Result<Outcome> {
        // The effects a rollout spends its life in (waits, reads, saves) are awaited in
        // place; the rare, large ones (the promotion, hooks, a rollback's retries, the
        // pre-flight) are boxed, so that every waiting rollout's task is not as large as
        // the largest of them: a rollout's future was about 15 KB in a release build
        // (heaptrack), 10,000 of them 150 MB under one controller, the promotion most of it.
        let mut event = first;
        loop {
            let effects = self.machine.handle(rollout, event, self.clock.now());
            let mut next = None;
            for effect in effects {
                if effect.awaits_result() && self.interrupts.take() {
                    // Between effects: hand the interrupt to the machine instead.
                    next = Some(Event::Interrupted);
                    break;
                }
                if effect.writes() {
                    // The fence: a driver that lost its claim (paused while another took
                    // over) touches nothing more.
                    self.store.check_claim().await?;
                }
                match effect {
                    Effect::Persist => self.persist(rollout).await?,
                    Effect::Notify(notice) => {
                        self.progress.notice(&notice, rollout);
                        if self.notifier.wants(&notice) {
                            let notifier = self.notifier.clone();
                            sending.spawn({
                                let at = self.clock.now();
                                async move { notifier.send(&notice, at).await }
                            });
                        }
                    }
                    Effect::RunHooks {
                        event,
                        weight,
                        step,
                    } => {
                        next = Some(Box::pin(self.run_hooks(event, weight, step)).await);
                    }
                    Effect::SetWeight(weight) => {
                        self.progress.line(&format!(
                            "setting canary weight to {weight} % via {}",
                            self.router.describe()
                        ));
                        let rolling_back = weight == 0
                            && matches!(
                                rollout.phase(),
                                canary_core::rollout::Phase::RollingBack { .. }
                            );
                        let result = if rolling_back {
                            // Since the first weight above 0: how long the canary served.
                            let exposed_since = rollout
                                .weights()
                                .iter()
                                .find(|w| w.weight > 0)
                                .map(|w| w.at);
                            Box::pin(self.set_zero_retrying(exposed_since)).await
                        } else {
                            set_and_verify(self.router, weight)
                                .await
                                .map_err(|err| error_chain(&err))
                        };
                        next = Some(match result {
                            // A router that approximates weights (replica counts) says what
                            // it achieved; that is what the step's record and notice show.
                            Ok(()) => match self.router.achieved_share().await {
                                Ok(Some(achieved)) => Event::WeightAchieved { weight, achieved },
                                Ok(None) => Event::WeightSet(weight),
                                Err(err) => Event::RouterFailed(error_chain(&err)),
                            },
                            Err(err) => Event::RouterFailed(err),
                        });
                    }
                    Effect::SetRoute(route) => {
                        self.progress.line(&format!(
                            "routing {route} to the canary via {}",
                            self.router.describe()
                        ));
                        next = Some(match set_and_verify_route(self.router, &route).await {
                            Ok(()) => Event::WeightSet(0),
                            Err(err) => Event::RouterFailed(error_chain(&err)),
                        });
                    }
                    Effect::ReadWeight => {
                        // The request route too: a match or mirror removed (or left
                        // behind) is drift like a changed weight.
                        next = Some(match self.router.read_back().await {
                            Ok((weight, route)) => Event::RouteRead { weight, route },
                            Err(err) => Event::WeightUnreadable(error_chain(&err)),
                        });
                    }
                    Effect::Wait(until) => next = Some(self.wait(until).await),
                    Effect::Preflight => next = Some(Box::pin(self.preflight()).await?),
                    Effect::Read { since } => next = Some(self.read(since).await),
                    Effect::Promote {
                        stage,
                        analysed_generation,
                    } => next = Some(Box::pin(self.promote(stage, analysed_generation)).await),
                    Effect::Finish(outcome) => return Ok(outcome),
                }
            }
            event = match next {
                Some(event) => event,
                // A batch with nothing to wait for and no finish: ask the machine again.
                None => Event::Resume,
            };
        }
    }

    /// A stage of the policy's Kubernetes promotion (the Deployments' part of it).
    /// The policy's Kubernetes promoter, if it asks for a promotion.
    fn promoter(&self) -> Option<crate::adapters::Promoter> {
        let spec = self.machine.policy().promotion.as_ref()?;
        Some(
            self.promoter
                .clone()
                .unwrap_or_else(|| crate::adapters::Promoter::new(spec)),
        )
    }

    /// Checks, before anything changes, that the rollout can be carried out, and learns
    /// which canary the analysis is about when the policy promotes on Kubernetes: a rollout
    /// that cannot read its canary Deployment stops before any traffic moves.
    async fn preflight(&mut self) -> anyhow::Result<Event> {
        // One read of the gateway and of every check before the first weight change: a
        // metrics source that refuses us (bad TLS, 401) or a gateway that cannot be read
        // stops the rollout here, with nothing moved, not after the canary serves traffic.
        if let Err((error, code)) =
            preflight_reads(self.router, self.source, self.clock.now()).await
        {
            return Ok(Event::PreflightFailed {
                error,
                bad_input: code == canary_core::ExitCode::BadInput,
            });
        }
        let mut canary_generation = None;
        if let Some(promoter) = self.promoter() {
            match promoter.canary_generation().await {
                Ok(generation) => canary_generation = Some(generation),
                Err(err) => {
                    return Ok(Event::PreflightFailed {
                        error: format!(
                            "reading the canary Deployment the promotion will copy: {}",
                            error_chain(&err)
                        ),
                        bad_input: err.exit_code() == canary_core::ExitCode::BadInput,
                    });
                }
            }
        }
        Ok(Event::PreflightPassed { canary_generation })
    }

    async fn promote(
        &mut self,
        stage: canary_core::rollout::PromotionStage,
        analysed: Option<i64>,
    ) -> Event {
        let Some(promoter) = self.promoter() else {
            return Event::PromotionFailed("the policy has no `promotion`".to_owned());
        };
        self.progress.line(&promoter.describe(stage));
        match promoter.run(stage, analysed).await {
            Ok(()) => Event::PromotionDone(stage),
            Err(err) => Event::PromotionFailed(error_chain(&err)),
        }
    }

    /// Saves the state, retrying a store that hiccups. If it still fails while rolling back,
    /// the rollback goes on (setting weight 0 is safe and idempotent; the next save, or a
    /// rerun, records it); otherwise the rollout stops with the error (exit 4).
    async fn persist(&mut self, rollout: &Rollout) -> anyhow::Result<()> {
        let store = self.store;
        // A Mutex rather than a RefCell: the drive must be Send (the controller runs many on
        // a multi-threaded runtime).
        let progress = Mutex::new(&mut *self.progress);
        let saved = retry(PERSIST_BACKOFF, tokio::time::sleep, |attempt| {
            let progress = &progress;
            async move {
                store.save(rollout).await.map_err(|err| {
                    if matches!(err, canary_core::Error::ClaimLost(_)) {
                        return Failure::Final(err);
                    }
                    if attempt < PERSIST_BACKOFF.attempts() {
                        progress
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .line(&format!(
                                "warning: saving the state failed (attempt {attempt} of {}): {}",
                                PERSIST_BACKOFF.attempts(),
                                error_chain(&err)
                            ));
                    }
                    Failure::Retryable(err)
                })
            }
        })
        .await;
        match saved {
            Ok(()) => Ok(()),
            Err(err)
                if !matches!(err, canary_core::Error::ClaimLost(_))
                    && matches!(
                        rollout.phase(),
                        canary_core::rollout::Phase::RollingBack { .. }
                    ) =>
            {
                self.progress.line(&format!(
                    "warning: the state could not be saved ({}); rolling back anyway",
                    error_chain(&err)
                ));
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn run_hooks(&mut self, event: HookEvent, weight: u8, step: Option<usize>) -> Event {
        let policy = self.machine.policy();
        let context = HookContext {
            service: policy.service.clone(),
            event,
            step: step.map_or(0, |s| s + 1),
            weight,
        };
        // A signal stops the running hooks at once (their process groups get SIGTERM, then
        // SIGKILL after a grace; see canary_gateways::STOP_GRACE) and the machine gets the
        // interrupt: `on-interrupt` acts now, not when a long hook would have ended. The
        // hooks stay pending in the state, so a rerun runs them again.
        let notified = self.interrupts.notify.notified();
        let runs = tokio::select! {
            runs = self.hooks.run_event(&policy.hooks, &context) => runs,
            _ = notified => {
                self.interrupts.take();
                self.progress.line(&format!(
                    "interrupted: stopping the running hooks (SIGTERM, SIGKILL after {} ms)",
                    canary_gateways::STOP_GRACE.as_millis()
                ));
                return Event::Interrupted;
            }
        };
        let mut failed = Vec::new();
        let mut unstartable = Vec::new();
        for run in runs {
            self.progress.line(&run.to_string());
            if !run.demands_rollback() {
                continue;
            }
            match &run.outcome {
                canary_gateways::HookOutcome::Failed { reason } => {
                    failed.push((run.hook.clone(), reason.clone()));
                }
                canary_gateways::HookOutcome::Unstartable { reason } => {
                    unstartable.push((run.hook.clone(), reason.clone()));
                }
                canary_gateways::HookOutcome::Ok => {}
            }
        }
        if !unstartable.is_empty() {
            return Event::HookUnstartable {
                event,
                hooks: unstartable,
            };
        }
        Event::HooksRan { event, failed }
    }

    /// Sets weight 0 for a rollback, retrying a failing gateway with a doubling pause
    /// (canary_core::retry: 0.5 s, up to 10 s) for at most `rollback_retry_for`: a bad canary
    /// must not stay exposed because the gateway hiccupped once. Each failed attempt is said
    /// as it happens, with how long the canary has served traffic so far (a person watching
    /// must not learn of a minute of retries only at its end); after the last one the error
    /// names how long it tried.
    async fn set_zero_retrying(&mut self, exposed_since: Option<Timestamp>) -> Result<(), String> {
        use canary_core::retry::{Backoff, Failure, retry};
        let started = std::time::Instant::now();
        let bound = self.rollback_retry_for;
        let backoff = Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(10),
            u32::MAX,
        );
        let router = self.router;
        let store = self.store;
        let clock = self.clock;
        // A Mutex rather than a RefCell: the drive must be Send (the controller runs many).
        let progress = Mutex::new(&mut *self.progress);
        retry(backoff, tokio::time::sleep, |attempt| {
            let progress = &progress;
            async move {
                if let Err(lost) = store.check_claim().await
                    && matches!(lost, canary_core::Error::ClaimLost(_))
                {
                    return Err(Failure::Final(error_chain(&lost)));
                }
                match set_and_verify(router, 0).await {
                    Ok(()) => Ok(()),
                    Err(err) => {
                        let text = error_chain(&err);
                        let exposed = exposed_since.map_or_else(String::new, |since| {
                            format!(
                                "; the canary has served traffic for {:.1} s",
                                clock.now().duration_since(since).as_secs_f64().max(0.0)
                            )
                        });
                        let pause = backoff.pause(attempt);
                        let gives_up = started.elapsed() + pause > bound;
                        let next = if gives_up {
                            "giving up".to_owned()
                        } else {
                            format!("trying again in {:.1} s", pause.as_secs_f64())
                        };
                        progress
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .line(&format!(
                            "warning: rolling back: setting weight 0 failed (attempt {attempt}, {:.1} s into the rollback{exposed}; {next}): {text}",
                            started.elapsed().as_secs_f64()
                        ));
                        if gives_up {
                            Err(Failure::Final(format!(
                                "{text} (weight 0 tried {attempt} times over {:.1} s, the bound of --rollback-retry-for)",
                                started.elapsed().as_secs_f64()
                            )))
                        } else {
                            Err(Failure::Retryable(text))
                        }
                    }
                }
            }
        })
        .await
    }

    /// Waits until `until`, or until an interrupt or a request from another shell.
    async fn wait(&mut self, until: Timestamp) -> Event {
        loop {
            if self.interrupts.take() {
                return Event::Interrupted;
            }
            match self.store.take_request().await {
                Ok(Some(request)) => return Event::Control(request),
                Ok(None) => {}
                // A request that cannot be read is not worth stopping a rollout for.
                Err(err) => self
                    .progress
                    .line(&format!("warning: {}", error_chain(&err))),
            }
            let remaining = until.duration_since(self.clock.now());
            if remaining.is_negative() || remaining.is_zero() {
                return Event::TimerFired;
            }
            let remaining = Duration::try_from(remaining).unwrap_or(POLL);
            tokio::select! {
                () = self.request_looks.nap(remaining) => {}
                () = self.interrupts.notify.notified() => {}
            }
        }
    }

    /// Reads the metrics; an interrupt abandons the read (it has no side effects).
    async fn read(&mut self, since: Timestamp) -> Event {
        let notified = self.interrupts.notify.notified();
        let started = std::time::Instant::now();
        tokio::select! {
            result = self.source.read(since, self.clock.now()) => {
                if let Some(metrics) = self.metrics {
                    metrics.record_query_duration(started.elapsed());
                }
                match result {
                    Ok(tick) => Event::Observed {
                        tick,
                        checkpoint: self.source.checkpoint().await,
                    },
                    Err(err) => Event::ReadFailed(error_chain(&err)),
                }
            }
            _ = notified => {
                self.interrupts.take();
                Event::Interrupted
            }
        }
    }
}

/// Renews the store's claim every heartbeat period, for as long as it is polled; returns
/// only when the claim turns out to be lost. Other failures to renew are let be: a claim
/// that goes stale meanwhile is found lost by the check before the next write.
async fn heartbeat(store: &dyn StateStore) -> canary_core::Error {
    let Some(period) = store.heartbeat_period() else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(period).await;
        if let Err(err) = store.heartbeat().await
            && matches!(err, canary_core::Error::ClaimLost(_))
        {
            return err;
        }
    }
}

/// The pre-flight's reads: the gateway's weight, and every check of the metrics source over
/// the last minute (a window with data in it whatever the source; what is read is thrown
/// away), after the source's own pre-flight ([`MetricsSource::preflight`]: a Datadog or
/// CloudWatch metric the checks count that the provider does not know is bad input, exit 2).
/// A check whose answer is unusable ([`Reading::Invalid`]) fails it; one with no data does
/// not. Returns what failed, in words, with the exit code it means (4 unless the source said
/// the policy is wrong).
///
/// [`Reading::Invalid`]: canary_core::observation::Reading::Invalid
pub(crate) async fn preflight_reads(
    router: &dyn TrafficRouter,
    source: &dyn MetricsSource,
    now: Timestamp,
) -> Result<(), (String, canary_core::ExitCode)> {
    let infrastructure = |text: String| (text, canary_core::ExitCode::Infrastructure);
    // A router whose configuration is not what the policy says (an HAProxy without the
    // policy's route ACL) is bad input, exit 2; one that cannot be read, exit 4.
    router.preflight().await.map_err(|err| {
        (
            format!(
                "reading the canary's weight from {}: {}",
                router.describe(),
                error_chain(&err)
            ),
            match err.exit_code() {
                canary_core::ExitCode::BadInput => canary_core::ExitCode::BadInput,
                _ => canary_core::ExitCode::Infrastructure,
            },
        )
    })?;
    source.preflight().await.map_err(|err| {
        (
            format!("asking {}: {}", source.describe(), error_chain(&err)),
            err.exit_code(),
        )
    })?;
    let since = now - jiff::SignedDuration::from_secs(60);
    let tick = source.read(since, now).await.map_err(|err| {
        infrastructure(format!(
            "reading the checks from {}: {}",
            source.describe(),
            error_chain(&err)
        ))
    })?;
    // An answer that is there but unusable (refused as bad PromQL, NaN, several series, a
    // partial answer, too many series) would be an `error` at every tick: not a rollout
    // to start. No data is fine here: a canary that has served nothing yet has none.
    let unusable: Vec<String> = tick
        .readings
        .iter()
        .filter_map(|(check, reading)| match reading {
            canary_core::observation::Reading::Invalid { reason } => {
                Some(format!("check {check}: {reason}"))
            }
            _ => None,
        })
        .collect();
    if !unusable.is_empty() {
        return Err(infrastructure(format!(
            "reading the checks from {}: {}",
            source.describe(),
            unusable.join("; ")
        )));
    }
    Ok(())
}

/// An error and its causes on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under the controller a waiting driver sleeps until its wait ends or a request is
    /// announced, not four times a second; an announcement made while it was not napping
    /// is not lost (it ends the next nap at once).
    #[tokio::test]
    async fn an_announced_wait_naps_until_its_end_or_an_announcement() {
        let announced = Arc::new(Notify::new());
        let looks = RequestLooks::Announced {
            announced: announced.clone(),
            fallback: Duration::from_secs(30),
        };
        let napped = tokio::time::timeout(
            Duration::from_millis(700),
            looks.nap(Duration::from_secs(60)),
        )
        .await;
        assert!(
            napped.is_err(),
            "woke before its end with nothing announced"
        );
        announced.notify_one();
        tokio::time::timeout(Duration::from_secs(60), looks.nap(Duration::from_secs(60)))
            .await
            .expect("an announcement made before the nap ends it at once");
        let napping = tokio::spawn({
            let looks = looks.clone();
            async move { looks.nap(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        announced.notify_one();
        tokio::time::timeout(Duration::from_secs(60), napping)
            .await
            .expect("an announcement during the nap ends it")
            .unwrap();
    }
}
