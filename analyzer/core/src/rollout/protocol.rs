//! What the machine and its driver say to each other: the [`Event`]s the driver reports, the
//! [`Effect`]s the machine asks for, the [`Notice`]s it wants told, and the
//! [`ControlRequest`]s another shell leaves for the driver.
//!
//! Everything the driver learns that the rollout must remember travels inside an event (the
//! metrics source's checkpoint in [`Event::Observed`], the canary Deployment's generation in
//! [`Event::PreflightPassed`]), so the machine alone writes the state.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::state::{Outcome, PromotionStage};
use crate::observation::Tick;
use crate::policy::HookEvent;

/// A request from another shell to the process driving a rollout (`canary promote`,
/// `canary abort`), passed through the [`crate::ports::StateStore`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum ControlRequest {
    /// Skip to 100 %.
    Promote,
    /// Roll back now.
    Abort {
        /// Why, for the report.
        reason: String,
    },
}

impl From<ControlRequest> for Event {
    fn from(request: ControlRequest) -> Event {
        match request {
            ControlRequest::Promote => Event::ManualPromote,
            ControlRequest::Abort { reason } => Event::ManualAbort(reason),
        }
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
    /// The router confirmed a weight (set and read back).
    WeightSet(u8),
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
    /// Set the canary's weight and read it back; answer with [`Event::WeightSet`] or
    /// [`Event::RouterFailed`].
    SetWeight(u8),
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
                | Effect::Wait(_)
                | Effect::Read { .. }
                | Effect::Promote { .. }
        )
    }
}

/// Something worth telling people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What kind: `started`, `step`, `extended`, `promoted`, `rolling-back`, `rolled-back`,
    /// `held`, `failed`, `interrupted`, `tick`.
    pub kind: String,
    /// The service.
    pub service: String,
    /// The canary's weight.
    pub weight: Option<u8>,
    /// One line for people.
    pub message: String,
}
