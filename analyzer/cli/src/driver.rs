//! The driver: carries out the rollout machine's effects against the real world.
//!
//! The machine decides; the driver persists, notifies, runs hooks, sets weights, waits and
//! reads, and feeds each result back as the next event. Signals are honoured between
//! effects, never inside one: a weight change always completes and is recorded before an
//! interrupt is handled, so weights are never left half-set.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use canary_core::policy::HookEvent;
use canary_core::ports::{Clock, MetricsSource, StateStore, TrafficRouter, set_and_verify};
use canary_core::retry::{Backoff, Failure, retry};
use canary_core::rollout::{Effect, Event, Machine, Outcome, Rollout};
use canary_gateways::{HookContext, HookRunner, Notifier};
use jiff::Timestamp;
use tokio::sync::Notify;

use crate::progress::Progress;
use crate::self_metrics::SelfMetrics;

/// How often a wait looks for signals and for requests from `canary promote` / `abort`.
const POLL: Duration = Duration::from_millis(250);

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
    /// The rollout's own metrics (`--metrics-addr`), if served.
    pub(crate) metrics: Option<&'a SelfMetrics>,
    /// The policy's notification channels.
    pub(crate) notifier: Notifier,
    /// The time (the system clock; tests may bring their own).
    pub(crate) clock: &'a dyn Clock,
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
        let outcome = self.run_effects(rollout, first, &mut sending).await;
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
                        next = Some(self.run_hooks(event, weight, step).await);
                    }
                    Effect::SetWeight(weight) => {
                        self.progress.line(&format!(
                            "setting canary weight to {weight}% via {}",
                            self.router.describe()
                        ));
                        next = Some(match set_and_verify(self.router, weight).await {
                            Ok(()) => Event::WeightSet(weight),
                            Err(err) => Event::RouterFailed(error_chain(&err)),
                        });
                    }
                    Effect::ReadWeight => {
                        next = Some(match self.router.canary_weight().await {
                            Ok(weight) => Event::WeightRead(weight),
                            Err(err) => Event::WeightUnreadable(error_chain(&err)),
                        });
                    }
                    Effect::Wait(until) => next = Some(self.wait(until).await),
                    Effect::Preflight => next = Some(self.preflight().await?),
                    Effect::Read { since } => next = Some(self.read(since).await),
                    Effect::Promote {
                        stage,
                        analysed_generation,
                    } => next = Some(self.promote(stage, analysed_generation).await),
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
        Some(crate::adapters::Promoter::new(spec))
    }

    /// Checks, before anything changes, that the rollout can be carried out, and learns
    /// which canary the analysis is about when the policy promotes on Kubernetes: a rollout
    /// that cannot read its canary Deployment stops before any traffic moves.
    async fn preflight(&mut self) -> anyhow::Result<Event> {
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
        let progress = RefCell::new(&mut *self.progress);
        let saved = retry(PERSIST_BACKOFF, tokio::time::sleep, |attempt| {
            let progress = &progress;
            async move {
                store.save(rollout).await.map_err(|err| {
                    if attempt < PERSIST_BACKOFF.attempts() {
                        progress.borrow_mut().line(&format!(
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
                if matches!(
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
        let runs = self.hooks.run_event(&policy.hooks, &context).await;
        let mut failed = Vec::new();
        for run in runs {
            self.progress.line(&run.to_string());
            if run.demands_rollback()
                && let canary_gateways::HookOutcome::Failed { reason } = &run.outcome
            {
                failed.push((run.hook.clone(), reason.clone()));
            }
        }
        Event::HooksRan { event, failed }
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
            let nap = Duration::try_from(remaining).unwrap_or(POLL).min(POLL);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = self.interrupts.notify.notified() => {}
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
