//! What the machine and its driver say to each other: the [`Event`]s the driver reports, the
//! [`Effect`]s the machine asks for, the [`Notice`]s it wants told, and the
//! [`ControlRequest`]s another shell leaves for the driver.
//!
//! Everything the driver learns that the rollout must remember travels inside an event (the
//! metrics source's checkpoint in [`Event::Observed`], the canary Deployment's generation in
//! [`Event::PreflightPassed`]), so the machine alone writes the state.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::state::{Outcome, PromotionStage, Rollout};
use crate::observation::Tick;
use crate::policy::{HookEvent, StepRoute};

/// How long a control request stays valid after it was made: a request the driving process
/// has not taken by then (it was stuck in a long hook, or gone) is dropped rather than acted
/// on later, when nobody expects it. `canary promote`/`abort` wait at most
/// [`CONTROL_WAIT`] for the driver, so a request outlives its asker by a margin only.
pub const CONTROL_REQUEST_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// How long `canary promote`/`abort` wait for the process driving the rollout to act.
pub const CONTROL_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A request from another shell to the process driving a rollout (`canary promote`,
/// `canary abort`), passed through the [`crate::ports::StateStore`]. It is bound to one
/// rollout (its id and start time) and carries when it was made: the machine applies it to
/// that rollout only, within [`CONTROL_REQUEST_TTL`], and drops it otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    /// What to do.
    #[serde(flatten)]
    pub action: ControlAction,
    /// The `--id` of the rollout it is for.
    pub rollout_id: Option<String>,
    /// When the rollout it is for started: with the id, names one rollout.
    pub rollout_started_at: Timestamp,
    /// When the request was made.
    pub requested_at: Timestamp,
}

/// What a [`ControlRequest`] asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum ControlAction {
    /// Skip to 100 %.
    Promote,
    /// Roll back now.
    Abort {
        /// Why, for the report.
        reason: String,
    },
}

impl ControlAction {
    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ControlAction::Promote => "promote",
            ControlAction::Abort { .. } => "abort",
        }
    }
}

impl ControlRequest {
    /// A request for `rollout`, made at `now`.
    pub fn for_rollout(action: ControlAction, rollout: &Rollout, now: Timestamp) -> Self {
        ControlRequest {
            action,
            rollout_id: rollout.id.clone(),
            rollout_started_at: rollout.started_at,
            requested_at: now,
        }
    }

    /// Why this request may not take the place of `pending`, the request a store already
    /// holds, if it may not. An abort always wins: a pending abort for the same rollout is
    /// never replaced (a promote after it would promote what its asker rolled back, and
    /// tell the asker it was applied), and an abort replaces a pending promote. Any other
    /// request waits until the pending one is taken: it is refused while that one is for the
    /// same rollout and not expired ([`CONTROL_REQUEST_TTL`], counted to this request's
    /// time). The same request again (an asker putting back what it took) is no conflict.
    pub fn refused_by(&self, pending: &ControlRequest) -> Option<String> {
        if pending == self
            || pending.rollout_id != self.rollout_id
            || pending.rollout_started_at != self.rollout_started_at
        {
            return None;
        }
        let ttl = SignedDuration::try_from(CONTROL_REQUEST_TTL).unwrap_or(SignedDuration::MAX);
        if self.requested_at.duration_since(pending.requested_at) > ttl {
            return None;
        }
        match (&pending.action, &self.action) {
            (ControlAction::Promote, ControlAction::Abort { .. }) => None,
            (ControlAction::Abort { reason }, ControlAction::Promote) => Some(format!(
                "an abort ({reason}) requested at {} is waiting for the process driving this \
                 rollout, and a promote never replaces an abort; nothing was changed \
                 (`canary status` shows when the rollout has ended)",
                pending.requested_at
            )),
            (ControlAction::Abort { .. }, _) => Some(format!(
                "an abort requested at {} is already waiting for the process driving this \
                 rollout; nothing was changed (`canary status` shows when it has acted)",
                pending.requested_at
            )),
            (ControlAction::Promote, _) => Some(format!(
                "a promote requested at {} is already waiting for the process driving this \
                 rollout; nothing was changed (`canary status` shows when it has acted)",
                pending.requested_at
            )),
        }
    }

    /// Why this request must not be applied to `rollout` at `now`, if it must not: it is
    /// for another rollout, or older than [`CONTROL_REQUEST_TTL`], or made in the future.
    pub fn refusal(&self, rollout: &Rollout, now: Timestamp) -> Option<String> {
        if self.rollout_id != rollout.id || self.rollout_started_at != rollout.started_at {
            return Some(format!(
                "it is for the rollout {} started {}, not this one ({} started {})",
                self.rollout_id.as_deref().unwrap_or("without an id"),
                self.rollout_started_at,
                rollout.id.as_deref().unwrap_or("without an id"),
                rollout.started_at
            ));
        }
        let age = now.duration_since(self.requested_at);
        let ttl = SignedDuration::try_from(CONTROL_REQUEST_TTL).unwrap_or(SignedDuration::MAX);
        if age > ttl {
            return Some(format!(
                "it was made {} ago, longer than its time to live ({}s)",
                humantime::format_duration(std::time::Duration::from_secs(
                    u64::try_from(age.as_secs()).unwrap_or(0)
                )),
                CONTROL_REQUEST_TTL.as_secs()
            ));
        }
        if -age > ttl {
            return Some(format!(
                "it is dated {}, in the future (clocks apart?)",
                self.requested_at
            ));
        }
        None
    }
}

/// What happened, as the machine is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Start, or resume after a restart: re-issue whatever the state is waiting for.
    Resume,
    /// The pre-flight passed: the rollout may start. Carries what it learnt.
    PreflightPassed {
        /// The canary Deployment's generation, when the policy promotes on Kubernetes.
        canary_generation: Option<i64>,
    },
    /// The pre-flight failed: nothing was changed.
    PreflightFailed {
        /// What went wrong.
        error: String,
        /// Whether it is the user's input (exit 2) rather than the infrastructure (exit 4).
        bad_input: bool,
    },
    /// The hooks of an event ran; `failed` holds the ones that failed and ask for a
    /// rollback (failures of hooks with `on-failure: ignore` are not reported here).
    HooksRan {
        /// Which event's hooks.
        event: HookEvent,
        /// Failures that ask for a rollback: hook name and error.
        failed: Vec<(String, String)>,
    },
    /// A hook of an event that asks for a rollback on failure could not be started at all
    /// (no such program, not executable): a configuration error, not the canary's. Before
    /// any weight moved it stops the rollout with exit 2; later it rolls back, exit 4.
    HookUnstartable {
        /// Which event's hooks.
        event: HookEvent,
        /// The hooks that could not be started: name and error.
        hooks: Vec<(String, String)>,
    },
    /// The router confirmed a weight (set and read back).
    WeightSet(u8),
    /// The router confirmed a weight it can only approximate, and says what it achieved
    /// ([`crate::ports::TrafficRouter::achieved_share`]): handled as [`Event::WeightSet`],
    /// with the achieved share recorded for progress and reports.
    WeightAchieved {
        /// The weight asked for and confirmed.
        weight: u8,
        /// What the router achieved of it.
        achieved: crate::ports::AchievedShare,
    },
    /// The router could not set or confirm a weight.
    RouterFailed(String),
    /// The wait ended: time for a tick.
    TimerFired,
    /// The metrics were read.
    Observed {
        /// The readings.
        tick: Tick,
        /// What the source must remember to carry on after a restart
        /// ([`crate::ports::MetricsSource::checkpoint`]), saved with the state that takes
        /// this tick in.
        checkpoint: Option<serde_json::Value>,
    },
    /// The metrics could not be read.
    ReadFailed(String),
    /// A request from `canary promote`/`abort`, applied only if it is for this rollout and
    /// still valid ([`ControlRequest::refusal`]).
    Control(ControlRequest),
    /// The router's weight as read back at a tick (or when a finished rollout is rerun).
    WeightRead(u8),
    /// The router's weight and the request route it carries (a header or cookie match, a
    /// mirror), as read back at a tick: what a router that can route by request answers
    /// [`Effect::ReadWeight`] with. `route: None` is [`Event::WeightRead`].
    RouteRead {
        /// The weighted share, percent.
        weight: u8,
        /// The route the router carries besides the weights, if any.
        route: Option<StepRoute>,
    },
    /// The router's weight could not be read back: at a tick it counts as a tick that
    /// could not be read (a gateway restarting is a moment's gap, not the rollout's end).
    WeightUnreadable(String),
    /// `canary promote`: go to 100 % now.
    ManualPromote,
    /// `canary abort`: roll back now.
    ManualAbort(String),
    /// SIGINT or SIGTERM.
    Interrupted,
    /// A stage of the Kubernetes promotion is done.
    PromotionDone(PromotionStage),
    /// A stage of the Kubernetes promotion failed.
    PromotionFailed(String),
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Write the state (atomically) before anything else happens.
    Persist,
    /// Tell people (log line, webhooks).
    Notify(Notice),
    /// Check, before anything changes, that the rollout can be carried out (and read the
    /// canary Deployment's generation when the policy promotes on Kubernetes); answer with
    /// [`Event::PreflightPassed`] or [`Event::PreflightFailed`].
    Preflight,
    /// Run the hooks of an event; answer with [`Event::HooksRan`].
    RunHooks {
        /// Which event.
        event: HookEvent,
        /// The weight at the time.
        weight: u8,
        /// The step index at the time.
        step: Option<usize>,
    },
    /// Read the canary's weight from the router, to catch drift; answer with
    /// [`Event::WeightRead`] or [`Event::WeightUnreadable`].
    ReadWeight,
    /// Set the canary's weight and read it back; answer with [`Event::WeightSet`] or
    /// [`Event::RouterFailed`]. A plain split: the router also removes any request route
    /// (match or mirror) it carries.
    SetWeight(u8),
    /// Route by request instead of by weight (a routed step: the weighted share is 0), and
    /// read it back; answer with [`Event::WeightSet`]`(0)` once the router carries exactly
    /// this route, or [`Event::RouterFailed`].
    SetRoute(StepRoute),
    /// Wait until the time; answer with [`Event::TimerFired`] (or [`Event::Interrupted`]).
    Wait(Timestamp),
    /// Read the metrics, cumulative since `since`; answer with [`Event::Observed`] or
    /// [`Event::ReadFailed`].
    Read {
        /// The start of the analysis (the rollout's start).
        since: Timestamp,
    },
    /// Carry out a stage of the Kubernetes promotion (`CopyToStable` or `ScaleDownCanary`);
    /// answer with [`Event::PromotionDone`] or [`Event::PromotionFailed`].
    Promote {
        /// The stage.
        stage: PromotionStage,
        /// The canary Deployment's generation the analysis judged: the promotion refuses a
        /// canary that changed since.
        analysed_generation: Option<i64>,
    },
    /// Stop with this outcome (the state is persisted before).
    Finish(Outcome),
}

impl Effect {
    /// Whether the driver must answer this effect with an event.
    pub fn awaits_result(&self) -> bool {
        matches!(
            self,
            Effect::Preflight
                | Effect::RunHooks { .. }
                | Effect::SetWeight(_)
                | Effect::SetRoute(_)
                | Effect::ReadWeight
                | Effect::Wait(_)
                | Effect::Read { .. }
                | Effect::Promote { .. }
        )
    }

    /// Whether carrying this effect out changes the world outside the state store (the
    /// gateway, a hook's target, the Deployments): the driver confirms its claim first
    /// ([`crate::ports::StateStore::check_claim`]). Saves are fenced by the stores
    /// themselves.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Effect::SetWeight(_)
                | Effect::SetRoute(_)
                | Effect::RunHooks { .. }
                | Effect::Promote { .. }
        )
    }
}

/// Something worth telling people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What kind of news it is.
    pub kind: NoticeKind,
    /// The service.
    pub service: String,
    /// The canary's weight.
    pub weight: Option<u8>,
    /// One line for people.
    pub message: String,
}

/// What kind of news a [`Notice`] carries. Its kebab-case name (`rolling-back`) is what the
/// progress lines, webhooks and Slack messages say and what a policy's `notifications[].on`
/// lists; [`NoticeKind::Tick`] is the live progress line and is never sent anywhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// The rollout began (or resumed) and the canary got its first weight.
    Started,
    /// A step passed and the canary moved to the next weight.
    Step,
    /// A step's evidence was not enough yet, so the step was made longer.
    Extended,
    /// Every step passed: promotion begins.
    Promoting,
    /// Promotion's last stage: the stable version is being replaced.
    Finalizing,
    /// The canary is the new stable version.
    Promoted,
    /// A check failed or an operator aborted: traffic is going back to stable.
    RollingBack,
    /// Traffic is back on stable.
    RolledBack,
    /// The evidence stayed inconclusive: the rollout stopped where it was.
    Held,
    /// The rollout could not go on (infrastructure, configuration).
    Failed,
    /// A signal stopped the rollout.
    Interrupted,
    /// The weight read back from the router is not the one set.
    Drift,
    /// A `canary promote` or `canary abort` was not acted on (meant for another rollout, too
    /// old, or the rollout had already ended).
    IgnoredRequest,
    /// One line of live progress; never a notification.
    Tick,
}

impl NoticeKind {
    /// Every kind a policy's notifications can be sent for, in the order the documentation
    /// lists them: all but [`NoticeKind::Tick`].
    pub const NOTIFIABLE: [NoticeKind; 13] = [
        NoticeKind::Started,
        NoticeKind::Step,
        NoticeKind::Extended,
        NoticeKind::Promoting,
        NoticeKind::Finalizing,
        NoticeKind::Promoted,
        NoticeKind::RollingBack,
        NoticeKind::RolledBack,
        NoticeKind::Held,
        NoticeKind::Failed,
        NoticeKind::Interrupted,
        NoticeKind::Drift,
        NoticeKind::IgnoredRequest,
    ];

    /// The name people and policies use.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Started => "started",
            NoticeKind::Step => "step",
            NoticeKind::Extended => "extended",
            NoticeKind::Promoting => "promoting",
            NoticeKind::Finalizing => "finalizing",
            NoticeKind::Promoted => "promoted",
            NoticeKind::RollingBack => "rolling-back",
            NoticeKind::RolledBack => "rolled-back",
            NoticeKind::Held => "held",
            NoticeKind::Failed => "failed",
            NoticeKind::Interrupted => "interrupted",
            NoticeKind::Drift => "drift",
            NoticeKind::IgnoredRequest => "ignored-request",
            NoticeKind::Tick => "tick",
        }
    }

    /// Whether a policy can ask for it: every kind but the progress line. A new kind has to
    /// be placed here before it compiles, so none is emitted that nobody can hear (issue 12:
    /// `drift` and `ignored-request` once were).
    pub fn is_notifiable(self) -> bool {
        match self {
            NoticeKind::Tick => false,
            NoticeKind::Started
            | NoticeKind::Step
            | NoticeKind::Extended
            | NoticeKind::Promoting
            | NoticeKind::Finalizing
            | NoticeKind::Promoted
            | NoticeKind::RollingBack
            | NoticeKind::RolledBack
            | NoticeKind::Held
            | NoticeKind::Failed
            | NoticeKind::Interrupted
            | NoticeKind::Drift
            | NoticeKind::IgnoredRequest => true,
        }
    }

    /// The notifiable kind with this name, if there is one.
    pub fn notifiable_named(name: &str) -> Option<NoticeKind> {
        NoticeKind::NOTIFIABLE
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(action: ControlAction, id: &str, at_seconds: i64) -> ControlRequest {
        ControlRequest {
            action,
            rollout_id: Some(id.to_owned()),
            rollout_started_at: Timestamp::UNIX_EPOCH,
            requested_at: Timestamp::from_second(1_000 + at_seconds).unwrap(),
        }
    }

    fn abort() -> ControlAction {
        ControlAction::Abort {
            reason: "bad canary".to_owned(),
        }
    }

    #[test]
    fn an_abort_is_never_replaced_and_replaces_a_promote() {
        let pending_abort = request(abort(), "rel-1", 0);
        let promote = request(ControlAction::Promote, "rel-1", 5);
        let refused = promote.refused_by(&pending_abort).expect("refused");
        assert!(
            refused.contains("an abort (bad canary) requested at")
                && refused.contains("a promote never replaces an abort"),
            "{refused}"
        );
        let pending_promote = request(ControlAction::Promote, "rel-1", 0);
        assert_eq!(
            request(abort(), "rel-1", 5).refused_by(&pending_promote),
            None
        );
        let again = request(ControlAction::Promote, "rel-1", 5)
            .refused_by(&pending_promote)
            .expect("refused");
        assert!(again.contains("a promote requested at"), "{again}");
        assert!(
            request(abort(), "rel-1", 5)
                .refused_by(&pending_abort)
                .is_some()
        );
        assert_eq!(pending_abort.refused_by(&pending_abort), None, "put back");
    }

    #[test]
    fn an_expired_request_or_one_for_another_rollout_is_no_conflict() {
        let pending_abort = request(abort(), "rel-1", 0);
        let ttl = i64::try_from(CONTROL_REQUEST_TTL.as_secs()).unwrap();
        assert_eq!(
            request(ControlAction::Promote, "rel-1", ttl + 1).refused_by(&pending_abort),
            None
        );
        assert!(
            request(ControlAction::Promote, "rel-1", ttl)
                .refused_by(&pending_abort)
                .is_some()
        );
        assert_eq!(
            request(ControlAction::Promote, "rel-2", 5).refused_by(&pending_abort),
            None
        );
    }
}
