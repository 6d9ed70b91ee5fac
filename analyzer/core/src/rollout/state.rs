//! The persisted state of a rollout: [`Rollout`] and the [`Phase`] it is in.
//!
//! Only the machine ([`super::Machine`]) changes a rollout: its fields are private to the core,
//! and everything outside reads them through accessors. A state comes back from a store as
//! JSON ([`Rollout::from_json`]); whether it is consistent with the policy it is resumed under
//! is [`super::Machine::validate`]'s to say.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::ExitCode;
use crate::judge::{Assessment, JudgeState};
use crate::observation::Tick;
use crate::policy::HookEvent;
use crate::report::RunVerdict;
use crate::report::{StepRecord, TimelinePoint, WeightPoint};
use crate::{Error, Result};

/// The version of the persisted state's shape.
pub const STATE_FORMAT: u32 = 1;

/// A rollout: everything needed to resume it, and to report on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Always [`STATE_FORMAT`].
    pub(crate) format: u32,
    /// The service.
    pub(crate) service: String,
    /// An identifier the caller gave this rollout (a CI pipeline id, the canary's version),
    /// so that a rerun of the same job resumes it and a new job starts a new one.
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// The digest of the policy the rollout started with ([`crate::policy::Policy::digest`]).
    pub(crate) policy_digest: String,
    /// When it started; every reading is cumulative since then.
    pub(crate) started_at: Timestamp,
    /// Where it is.
    pub(crate) phase: Phase,
    /// The judge's memory.
    pub(crate) judge: JudgeState,
    /// Consecutive ticks whose metrics could not be read.
    pub(crate) failed_reads: u32,
    /// When the next tick is due.
    pub(crate) next_tick_at: Option<Timestamp>,
    /// The latest assessment, for progress and reports.
    pub(crate) last_assessment: Option<Assessment>,
    /// The steps as they happened.
    pub(crate) steps: Vec<StepRecord>,
    /// Every weight set, as verified.
    pub(crate) weights: Vec<WeightPoint>,
    /// Per tick, what the charts plot.
    pub(crate) timeline: Vec<TimelinePoint>,
    /// The previous tick (its readings turn the next one's cumulative values into rates).
    pub(crate) previous_tick: Option<Tick>,
    /// When the verdict was reached.
    pub(crate) decided_at: Option<Timestamp>,
    /// How it ended, once it has.
    pub(crate) outcome: Option<Outcome>,
    /// Hooks asked for and not yet reported as run: a rollout resumed after a crash runs
    /// them again rather than skipping them.
    #[serde(default)]
    pub(crate) hooks_pending: Option<PendingHooks>,
    /// Every warning the metrics source passed on, deduplicated, for the report.
    #[serde(default)]
    pub(crate) warnings: Vec<String>,
    /// The canary Deployment's generation when the analysis started (Kubernetes
    /// promotion): the promotion refuses a canary that changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) promotion_canary_generation: Option<i64>,
    /// What the metrics source needs to carry on after a restart
    /// ([`crate::ports::MetricsSource::checkpoint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source_checkpoint: Option<serde_json::Value>,
    /// How many times the router was found serving another weight than the one set (a
    /// gateway restarted, someone changed it by hand): each is set again, and the step it
    /// happened in starts over.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) weight_drifts: u32,
    /// Since when the gateway's weight could not be read back in the current step (a failed
    /// read, an NGINX upstream file that is not what canary wrote): the evidence gathered
    /// while the weight was unknown does not count, so the next read-back that finds the
    /// weight right starts the step over, as a drift does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) weight_unknown_since: Option<Timestamp>,
    /// Set when `canary promote` skipped the analysis: where, and what was still undecided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) promoted_by_hand: Option<ManualPromotion>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A promotion by hand (`canary promote`): the analysis did not decide it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualPromotion {
    /// When.
    pub at: Timestamp,
    /// The analysed step it happened at (0-based), if one was under way.
    pub step: Option<usize>,
    /// The checks that had not passed yet, with their standing (`latency/baseline:
    /// inconclusive`).
    pub undecided: Vec<String>,
}

/// Hooks the machine asked for and has not heard back about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingHooks {
    /// Which event's hooks.
    pub event: HookEvent,
    /// The weight they run with.
    pub weight: u8,
    /// The step index they run with.
    pub step: Option<usize>,
}

/// Where a rollout is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "phase")]
pub enum Phase {
    /// Running the before-hooks; no weight changed yet.
    Starting,
    /// An analysed step.
    Step {
        /// Index in the policy's steps.
        index: usize,
        /// Its canary weight.
        weight: u8,
        /// Whether the router has confirmed the weight (until then, analysis waits).
        weight_set: bool,
        /// When the weight was confirmed (the step's clock starts then).
        started_at: Option<Timestamp>,
        /// Whether the step was extended for lack of evidence.
        extended: bool,
    },
    /// Setting 100 %.
    Promoting,
    /// At 100 %, judged by absolute bounds only, until the soak ends.
    Soak {
        /// When the soak started.
        started_at: Timestamp,
    },
    /// Promoting the Flagger way (the policy's `promotion.kubernetes`): the canary has been
    /// judged good at 100 %; now the stable Deployment takes over its pod template.
    Finalizing {
        /// The stage in progress.
        stage: PromotionStage,
    },
    /// Done: the canary has all the traffic (or, after `Finalizing`, the stable Deployment
    /// runs the canary's version and has it).
    Promoted,
    /// Setting 0 %.
    RollingBack {
        /// Why.
        cause: RollbackCause,
        /// In words.
        reason: String,
    },
    /// Done: the canary has no traffic.
    RolledBack {
        /// Why.
        cause: RollbackCause,
        /// In words.
        reason: String,
    },
    /// Stopped where it stands, waiting for a person (`canary promote` or `canary abort`).
    Held {
        /// The canary's weight now.
        weight: u8,
        /// Why.
        reason: String,
    },
    /// The gateway or the metrics source failed; a rerun resumes `during`.
    Failed {
        /// What it was doing.
        during: Box<Phase>,
        /// What went wrong.
        error: String,
    },
}

impl Phase {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Step { .. } => "step",
            Phase::Promoting => "promoting",
            Phase::Finalizing { .. } => "finalizing",
            Phase::Soak { .. } => "soak",
            Phase::Promoted => "promoted",
            Phase::RollingBack { .. } => "rolling-back",
            Phase::RolledBack { .. } => "rolled-back",
            Phase::Held { .. } => "held",
            Phase::Failed { .. } => "failed",
        }
    }

    /// Whether the rollout is over (promoted or rolled back).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Phase::Promoted | Phase::RolledBack { .. })
    }
}

/// The stages of a Kubernetes promotion, in order. Each is idempotent, so a resume redoes
/// the one in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromotionStage {
    /// Copy the canary Deployment's pod template to the stable one and wait for its rollout.
    CopyToStable,
    /// Route all traffic back to the stable version (canary weight 0).
    RouteToStable,
    /// Scale the canary Deployment to 0.
    ScaleDownCanary,
}

/// Why a rollout was rolled back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackCause {
    /// A criterion failed with evidence (exit 1).
    Failed,
    /// A step ran out of time without enough evidence and the policy says roll back (exit 3).
    Inconclusive,
    /// A before- or step-hook failed (exit 1).
    Hook,
    /// `canary abort` (exit 1).
    Aborted,
    /// A signal, with `on-interrupt: rollback` (exit 130).
    Interrupted,
    /// A step hook could not be started: the policy's configuration, not the canary (exit 4).
    HookUnstartable,
    /// The metrics could not be read `max-failed-ticks` times in a row, with
    /// `on-metrics-unavailable: rollback` (exit 4).
    MetricsUnavailable,
}

impl RollbackCause {
    /// The exit code a rollback for this cause ends with.
    pub(crate) fn exit_code(self) -> ExitCode {
        match self {
            RollbackCause::Failed | RollbackCause::Hook | RollbackCause::Aborted => {
                ExitCode::Failed
            }
            RollbackCause::Inconclusive => ExitCode::Inconclusive,
            RollbackCause::Interrupted => ExitCode::Interrupted,
            RollbackCause::MetricsUnavailable | RollbackCause::HookUnstartable => {
                ExitCode::Infrastructure
            }
        }
    }

    /// The verdict a rollback for this cause reports: `fail` only when the canary was
    /// judged, or stopped by a hook or by hand.
    pub(crate) fn verdict(self) -> RunVerdict {
        match self {
            RollbackCause::Failed | RollbackCause::Hook | RollbackCause::Aborted => {
                RunVerdict::Fail
            }
            RollbackCause::Inconclusive => RunVerdict::Inconclusive,
            RollbackCause::Interrupted => RunVerdict::Interrupted,
            RollbackCause::MetricsUnavailable | RollbackCause::HookUnstartable => RunVerdict::Error,
        }
    }
}

/// How a run of the rollout ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The exit code.
    pub exit: ExitCode,
    /// The report's verdict.
    pub verdict: RunVerdict,
    /// Why.
    pub reason: String,
}

impl Rollout {
    /// Reads a saved rollout from its JSON. This only parses: whether the state is one the
    /// policy could have produced is [`super::Machine::validate`]'s question. Bytes that are
    /// not UTF-8 or not a rollout are bad input (exit 2), never a panic.
    pub fn from_json(bytes: &[u8]) -> Result<Rollout> {
        let text = std::str::from_utf8(bytes).map_err(|err| {
            Error::Usage(format!("the saved rollout state is not UTF-8 text ({err})"))
        })?;
        serde_json::from_str(text)
            .map_err(|err| Error::Usage(format!("the saved rollout state does not parse ({err})")))
    }

    /// The rollout as JSON, indented for people when `pretty`.
    pub fn to_json(&self, pretty: bool) -> Result<String> {
        let json = if pretty {
            serde_json::to_string_pretty(self)
        } else {
            serde_json::to_string(self)
        };
        json.map_err(|err| Error::Usage(format!("the rollout state cannot be written: {err}")))
    }

    /// The version of the state's shape ([`STATE_FORMAT`] for a state this canary wrote).
    pub fn format(&self) -> u32 {
        self.format
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The identifier the caller gave this rollout (`--id`), if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The digest of the policy the rollout started with.
    pub fn policy_digest(&self) -> &str {
        &self.policy_digest
    }

    /// When it started.
    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    /// Where it is.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The judge's memory.
    pub fn judge(&self) -> &JudgeState {
        &self.judge
    }

    /// Consecutive ticks whose metrics could not be read.
    pub fn failed_reads(&self) -> u32 {
        self.failed_reads
    }

    /// When the next tick is due, if one is.
    pub fn next_tick_at(&self) -> Option<Timestamp> {
        self.next_tick_at
    }

    /// The latest assessment.
    pub fn last_assessment(&self) -> Option<&Assessment> {
        self.last_assessment.as_ref()
    }

    /// The steps as they happened.
    pub fn steps(&self) -> &[StepRecord] {
        &self.steps
    }

    /// Every weight set, as read back from the router.
    pub fn weights(&self) -> &[WeightPoint] {
        &self.weights
    }

    /// Per tick, what the charts plot.
    pub fn timeline(&self) -> &[TimelinePoint] {
        &self.timeline
    }

    /// When the verdict was reached, once it was.
    pub fn decided_at(&self) -> Option<Timestamp> {
        self.decided_at
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Hooks asked for and not yet reported as run.
    pub fn hooks_pending(&self) -> Option<&PendingHooks> {
        self.hooks_pending.as_ref()
    }

    /// The metrics source's warnings, deduplicated.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The canary Deployment's generation the analysis is about (Kubernetes promotion).
    pub fn promotion_canary_generation(&self) -> Option<i64> {
        self.promotion_canary_generation
    }

    /// What the metrics source saved to carry on after a restart.
    pub fn source_checkpoint(&self) -> Option<&serde_json::Value> {
        self.source_checkpoint.as_ref()
    }

    /// How many times the router was found serving another weight than the one set.
    pub fn weight_drifts(&self) -> u32 {
        self.weight_drifts
    }

    /// Set when `canary promote` skipped the analysis.
    pub fn promoted_by_hand(&self) -> Option<&ManualPromotion> {
        self.promoted_by_hand.as_ref()
    }

    /// The canary's weight as last confirmed by the router (0 before any).
    pub fn current_weight(&self) -> u8 {
        self.weights.last().map_or(0, |w| w.weight)
    }
}
