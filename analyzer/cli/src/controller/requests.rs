//! Control requests (`canary promote|abort --kube`) for the controller's rollouts, without a
//! read of every rollout's ConfigMap every second.
//!
//! The request itself stays where `canary rollout` keeps it — `request.json` in the rollout's
//! state ConfigMap, bound to the rollout's revision and start, consumed once by a write
//! guarded on the ConfigMap's resourceVersion — so its safety is the standalone path's. What
//! changes is how the driver learns that one is there: the command that leaves it also
//! stamps the `CanaryRollout` with the annotation [`REQUEST_ANNOTATION`]; the controller's
//! watch of its resources (which it has anyway) sees the change, and the next reconcile
//! wakes the rollout's task ([`RequestSignal`]), which reads the ConfigMap once. A request
//! left without the annotation (an older command, a user not allowed to patch the resource)
//! is still found, by a read every [`REQUEST_FALLBACK_POLL`].
//!
//! Measured by the scale harness: the 76 ConfigMap reads per rollout per minute of a waiting
//! rollout at 10 s ticks (docs/benchmarks.md, "Controller scale") were these polls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use canary_core::ports::StateStore;
use canary_core::rollout::{ControlRequest, Rollout};
use canary_kubernetes::controller::CanaryRollout;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::Notify;

/// The annotation on a `CanaryRollout` saying a control request was left for it: its value
/// is the request's time, so a second request changes it again.
pub(crate) const REQUEST_ANNOTATION: &str = "canary.dev/control-request";

/// How often a rollout's task reads its ConfigMap for a request nobody announced.
pub(crate) const REQUEST_FALLBACK_POLL: Duration = Duration::from_secs(30);

/// Whether a control request may be waiting for a rollout: raised when its task starts and
/// whenever the resource's [`REQUEST_ANNOTATION`] changes, lowered when the task looks.
#[derive(Debug)]
pub(crate) struct RequestSignal {
    pending: AtomicBool,
    /// The annotation's value last seen.
    seen: Mutex<Option<String>>,
    /// When the ConfigMap was last read for a request.
    last_look: Mutex<Instant>,
    /// Notified when the signal is raised by an announcement: wakes the waiting driver
    /// (`RequestLooks::Announced`). A permit is kept if nobody waits, so none is lost.
    announced: Arc<Notify>,
}

impl RequestSignal {
    /// A signal for a task starting now, with the annotation as it stands: raised, so that a
    /// request left while no task ran is found at once.
    pub(crate) fn new(annotation: Option<&str>) -> RequestSignal {
        RequestSignal {
            pending: AtomicBool::new(true),
            seen: Mutex::new(annotation.map(str::to_owned)),
            last_look: Mutex::new(Instant::now()),
            announced: Arc::new(Notify::new()),
        }
    }

    /// What a waiting driver naps on: notified at each announcement.
    pub(crate) fn announced(&self) -> Arc<Notify> {
        self.announced.clone()
    }

    /// The resource as the watch saw it: a new annotation value raises the signal.
    pub(crate) fn saw(&self, annotation: Option<&str>) {
        let Some(annotation) = annotation else {
            return;
        };
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.as_deref() != Some(annotation) {
            *seen = Some(annotation.to_owned());
            self.pending.store(true, Ordering::SeqCst);
            self.announced.notify_one();
        }
    }

    /// Whether to read the ConfigMap now: raised, or not read for [`REQUEST_FALLBACK_POLL`].
    /// Lowers the signal.
    pub(crate) fn should_look(&self) -> bool {
        self.should_look_at(Instant::now())
    }

    /// [`should_look`](Self::should_look) at `now`.
    fn should_look_at(&self, now: Instant) -> bool {
        let raised = self.pending.swap(false, Ordering::SeqCst);
        let mut last = self
            .last_look
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if raised || now.saturating_duration_since(*last) >= REQUEST_FALLBACK_POLL {
            *last = now;
            return true;
        }
        false
    }

    /// The look failed: look again at the next chance (the next wait's start, or its
    /// fallback look; not at once, which would retry a failing read in a tight loop).
    pub(crate) fn raise(&self) {
        self.pending.store(true, Ordering::SeqCst);
    }
}

/// The annotation of a resource, as the watch delivered it.
pub(crate) fn annotation_of(resource: &CanaryRollout) -> Option<&str> {
    resource
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(REQUEST_ANNOTATION))
        .map(String::as_str)
}

/// The state store of a `CanaryRollout`'s rollout as `canary promote|abort --kube` use it:
/// every request left in it is also announced on the resource ([`REQUEST_ANNOTATION`]), so
/// the controller takes it at once. An announcement that fails is said, not fatal: the
/// controller finds the request within [`REQUEST_FALLBACK_POLL`] anyway.
pub(crate) struct AnnouncingStore {
    inner: Box<dyn StateStore>,
    api: Api<CanaryRollout>,
    name: String,
}

impl AnnouncingStore {
    pub(crate) fn new(
        inner: Box<dyn StateStore>,
        client: kube::Client,
        namespace: &str,
        name: &str,
    ) -> AnnouncingStore {
        AnnouncingStore {
            inner,
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }
}

#[async_trait]
impl StateStore for AnnouncingStore {
    async fn claim(&self, take_over: bool) -> canary_core::Result<()> {
        self.inner.claim(take_over).await
    }

    async fn release(&self) -> canary_core::Result<()> {
        self.inner.release().await
    }

    async fn heartbeat(&self) -> canary_core::Result<()> {
        self.inner.heartbeat().await
    }

    async fn check_claim(&self) -> canary_core::Result<()> {
        self.inner.check_claim().await
    }

    fn heartbeat_period(&self) -> Option<Duration> {
        self.inner.heartbeat_period()
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
        self.inner.save(rollout).await
    }

    async fn archive(&self, rollout: &Rollout) -> canary_core::Result<String> {
        self.inner.archive(rollout).await
    }

    async fn request(&self, request: &ControlRequest) -> canary_core::Result<()> {
        self.inner.request(request).await?;
        let patch = json!({
            "metadata": {"annotations": {REQUEST_ANNOTATION: request.requested_at.to_string()}}
        });
        if let Err(err) = self
            .api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            eprintln!(
                "warning: could not annotate CanaryRollout {} ({err}); the controller finds the \
                 request within {} s without it",
                self.name,
                REQUEST_FALLBACK_POLL.as_secs()
            );
        }
        Ok(())
    }

    async fn take_request(&self) -> canary_core::Result<Option<ControlRequest>> {
        self.inner.take_request().await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task looks at its start, at each new annotation value (never twice for one), and
    /// otherwise not before the fallback poll.
    #[test]
    fn the_signal_is_raised_at_the_start_and_by_each_new_annotation_only() {
        let signal = RequestSignal::new(Some("t1"));
        assert!(
            signal.should_look(),
            "a request left before the task started"
        );
        assert!(!signal.should_look());
        signal.saw(Some("t1"));
        signal.saw(None);
        assert!(!signal.should_look(), "nothing new");
        signal.saw(Some("t2"));
        assert!(signal.should_look(), "a new request announced");
        assert!(!signal.should_look());
        signal.raise();
        assert!(signal.should_look(), "a failed look is retried");
    }

    /// A request nobody announced (an older command, a user not allowed to patch the
    /// resource) is looked for once every fallback period, not before.
    #[test]
    fn an_unannounced_request_is_looked_for_every_fallback_period() {
        let signal = RequestSignal::new(None);
        let start = Instant::now();
        assert!(signal.should_look_at(start));
        assert!(!signal.should_look_at(start + REQUEST_FALLBACK_POLL / 2));
        assert!(signal.should_look_at(start + REQUEST_FALLBACK_POLL));
        assert!(!signal.should_look_at(start + REQUEST_FALLBACK_POLL * 3 / 2));
        assert!(signal.should_look_at(start + REQUEST_FALLBACK_POLL * 2));
    }
}
