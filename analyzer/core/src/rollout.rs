//! The rollout as a pure state machine: `(state, event, now) -> (state, effects)`.
//!
//! [`Machine::handle`] takes the persisted [`Rollout`], one [`Event`] and the time, updates
//! the rollout and returns the [`Effect`]s the driver must carry out, in order. Effects are
//! data: set a weight, run hooks, read the metrics, persist, notify, wait, finish. At most
//! one effect in a batch produces a result (setting a weight, running hooks, reading, waiting),
//! and it is always the last; its result is the next event. So the driver is a loop, every
//! transition is a plain unit test, the simulator runs the very same machine in virtual
//! time, and a crash anywhere resumes from the last persisted state: every effect is
//! idempotent, and [`Event::Resume`] re-issues whatever the state was waiting for.
//!
//! The phases: `Starting` (before-hooks) → `Step` i (weight set, then analysed tick by tick)
//! → … → `Promoting` (weight 100) → optional `Soak` → (with a Kubernetes promotion:
//! `Finalizing`: the stable Deployment gets the canary's template, weight 0, the canary is
//! scaled down) → `Promoted`; or, from any step,
//! `RollingBack` (weight 0) → `RolledBack`; or `Held` (inconclusive, the policy says hold);
//! or `Failed` (the gateway or the metrics source is unusable; a rerun resumes).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::ExitCode;
use crate::judge::{Assessment, Judge, JudgeConfig, JudgeState, Moment, Verdict, overall};
use crate::observation::Tick;
use crate::policy::{Criterion, HookEvent, InconclusiveAction, Policy, StopAction};
use crate::report::{StepRecord, TimelinePoint, WeightPoint, timeline_point};
use crate::{Error, Result};

/// The version of the persisted state's shape.
pub const STATE_FORMAT: u32 = 1;

/// Timeline points kept in the state (older ones are thinned out past this).
const MAX_TIMELINE_POINTS: usize = 600;

/// Distinct source warnings kept for the report.
const MAX_WARNINGS: usize = 50;

/// A rollout: everything needed to resume it, and to report on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Always [`STATE_FORMAT`].
    pub format: u32,
    /// The service.
    pub service: String,
    /// An identifier the caller gave this rollout (a CI pipeline id, the canary's version),
    /// so that a rerun of the same job resumes it and a new job starts a new one.
    #[serde(default)]
    pub id: Option<String>,
    /// The digest of the policy the rollout started with ([`Policy::digest`]).
    pub policy_digest: String,
    /// When it started; every reading is cumulative since then.
    pub started_at: Timestamp,
    /// Where it is.
    pub phase: Phase,
    /// The judge's memory.
    pub judge: JudgeState,
    /// Consecutive ticks whose metrics could not be read.
    pub failed_reads: u32,
    /// When the next tick is due.
    pub next_tick_at: Option<Timestamp>,
    /// The latest assessment, for progress and reports.
    pub last_assessment: Option<Assessment>,
    /// The steps as they happened.
    pub steps: Vec<StepRecord>,
    /// Every weight set, as verified.
    pub weights: Vec<WeightPoint>,
    /// Per tick, what the charts plot.
    pub timeline: Vec<TimelinePoint>,
    /// The previous tick (its readings turn the next one's cumulative values into rates).
    pub previous_tick: Option<Tick>,
    /// When the verdict was reached.
    pub decided_at: Option<Timestamp>,
    /// How it ended, once it has.
    pub outcome: Option<Outcome>,
    /// Hooks asked for and not yet reported as run: a rollout resumed after a crash runs
    /// them again rather than skipping them.
    #[serde(default)]
    pub hooks_pending: Option<PendingHooks>,
    /// Every warning the metrics source passed on, deduplicated, for the report.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The canary Deployment's generation when the analysis started (Kubernetes
    /// promotion): the promotion refuses a canary that changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_canary_generation: Option<i64>,
    /// What the metrics source needs to carry on after a restart
    /// ([`crate::ports::MetricsSource::checkpoint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_checkpoint: Option<serde_json::Value>,
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
    /// The metrics could not be read `max-failed-ticks` times in a row, with
    /// `on-metrics-unavailable: rollback` (exit 4).
    MetricsUnavailable,
}

impl RollbackCause {
    fn exit_code(self) -> ExitCode {
        match self {
            RollbackCause::Failed | RollbackCause::Hook | RollbackCause::Aborted => {
                ExitCode::Failed
            }
            RollbackCause::Inconclusive => ExitCode::Inconclusive,
            RollbackCause::Interrupted => ExitCode::Interrupted,
            RollbackCause::MetricsUnavailable => ExitCode::Infrastructure,
        }
    }

    /// The verdict a rollback for this cause reports: `fail` only when the canary was
    /// judged, or stopped by a hook or by hand.
    fn verdict(self) -> Verdict {
        match self {
            RollbackCause::Failed | RollbackCause::Hook | RollbackCause::Aborted => Verdict::Fail,
            RollbackCause::Inconclusive | RollbackCause::Interrupted => Verdict::Inconclusive,
            RollbackCause::MetricsUnavailable => Verdict::Error,
        }
    }
}

/// How a run of the rollout ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The exit code.
    pub exit: ExitCode,
    /// The report's verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
}

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
    Observed(Tick),
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
    Promote(PromotionStage),
    /// Stop with this outcome (the state is persisted before).
    Finish(Outcome),
}

impl Effect {
    /// Whether the driver must answer this effect with an event.
    pub fn awaits_result(&self) -> bool {
        matches!(
            self,
            Effect::RunHooks { .. }
                | Effect::SetWeight(_)
                | Effect::Wait(_)
                | Effect::Read { .. }
                | Effect::Promote(_)
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

/// The rollout machine of one policy.
#[derive(Clone, Debug)]
pub struct Machine {
    policy: Policy,
    judge: Judge,
}

impl Machine {
    /// A machine for `policy`.
    pub fn new(policy: Policy) -> Result<Machine> {
        let looks = policy.rollout.analysed_steps().len();
        let judge = Judge::new(
            &policy,
            JudgeConfig {
                sample_test_looks: looks,
            },
        )?;
        Ok(Machine { policy, judge })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A new rollout, not started.
    pub fn start(&self, now: Timestamp) -> Rollout {
        Rollout {
            format: STATE_FORMAT,
            service: self.policy.service.clone(),
            id: None,
            policy_digest: self.policy.digest(),
            started_at: now,
            phase: Phase::Starting,
            judge: self.judge.start(),
            failed_reads: 0,
            next_tick_at: None,
            last_assessment: None,
            steps: Vec::new(),
            weights: Vec::new(),
            timeline: Vec::new(),
            previous_tick: None,
            decided_at: None,
            outcome: None,
            hooks_pending: None,
            warnings: Vec::new(),
            source_checkpoint: None,
            promotion_canary_generation: None,
        }
    }

    /// Checks that a persisted rollout belongs to this policy as it is now.
    pub fn check_resumable(&self, rollout: &Rollout) -> Result<()> {
        if rollout.format != STATE_FORMAT {
            return Err(Error::Usage(format!(
                "the saved rollout has state format {}, this canary reads {STATE_FORMAT}",
                rollout.format
            )));
        }
        if rollout.service != self.policy.service {
            return Err(Error::Usage(format!(
                "the saved rollout is for service {:?}, the policy for {:?}",
                rollout.service, self.policy.service
            )));
        }
        if rollout.policy_digest != self.policy.digest() {
            return Err(Error::Usage(
                "the policy changed since this rollout started; restore it, or start over with --restart"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Handles one event at `now`: updates `rollout`, returns the effects to carry out.
    pub fn handle(&self, rollout: &mut Rollout, event: Event, now: Timestamp) -> Vec<Effect> {
        if let Some(outcome) = &rollout.outcome
            && (rollout.phase.is_terminal() || matches!(rollout.phase, Phase::Held { .. }))
            && rollout.hooks_pending.is_none()
        {
            // Finished rollouts only answer manual commands from a hold.
            let manual = matches!(event, Event::ManualPromote | Event::ManualAbort(_));
            if !(manual && matches!(rollout.phase, Phase::Held { .. })) {
                return vec![Effect::Finish(outcome.clone())];
            }
        }
        match event {
            Event::Resume => self.resume(rollout, now),
            Event::HooksRan { event, failed } => self.hooks_ran(rollout, event, failed, now),
            Event::WeightSet(weight) => self.weight_set(rollout, weight, now),
            Event::RouterFailed(error) => {
                self.fail(rollout, format!("the gateway failed: {error}"))
            }
            Event::TimerFired => match &rollout.phase {
                Phase::Step {
                    weight_set: true, ..
                }
                | Phase::Soak { .. } => vec![Effect::Read {
                    since: rollout.started_at,
                }],
                _ => self.resume(rollout, now),
            },
            Event::Observed(tick) => self.observed(rollout, tick, now),
            Event::ReadFailed(error) => self.read_failed(rollout, error, now),
            Event::ManualPromote => self.manual_promote(rollout, now),
            Event::ManualAbort(reason) => self.roll_back(
                rollout,
                RollbackCause::Aborted,
                format!("aborted: {reason}"),
                now,
            ),
            Event::Interrupted => self.interrupted(rollout, now),
            Event::PromotionDone(stage) => self.promotion_done(rollout, stage, now),
            Event::PromotionFailed(error) => {
                self.fail(rollout, format!("the Kubernetes promotion failed: {error}"))
            }
        }
    }

    /// Re-issues what the phase waits for. Every answer is idempotent.
    fn resume(&self, rollout: &mut Rollout, now: Timestamp) -> Vec<Effect> {
        if let Some(PendingHooks {
            event,
            weight,
            step,
        }) = rollout.hooks_pending
            && !matches!(rollout.phase, Phase::Failed { .. })
        {
            // Asked for and never reported: a crash or a signal came between. Run them now.
            return vec![Effect::RunHooks {
                event,
                weight,
                step,
            }];
        }
        let phase = rollout.phase.clone();
        match phase {
            Phase::Starting => {
                let hooks = self.run_hooks(rollout, HookEvent::Before, 0, None);
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        "started",
                        None,
                        format!(
                            "rollout of {} started: steps {:?}",
                            self.policy.service, self.policy.rollout.steps
                        ),
                    ),
                    hooks,
                ]
            }
            Phase::Step {
                weight,
                weight_set: false,
                ..
            } => vec![Effect::SetWeight(weight)],
            Phase::Step { .. } | Phase::Soak { .. } => {
                let due = rollout.next_tick_at.unwrap_or(now);
                vec![Effect::Wait(due)]
            }
            Phase::Promoting => vec![Effect::SetWeight(100)],
            Phase::Finalizing {
                stage: PromotionStage::RouteToStable,
            } => vec![Effect::SetWeight(0)],
            Phase::Finalizing { stage } => vec![Effect::Promote(stage)],
            Phase::RollingBack { .. } => vec![Effect::SetWeight(0)],
            Phase::Failed { during, .. } => {
                rollout.phase = *during;
                rollout.failed_reads = 0;
                rollout.outcome = None;
                let mut effects = vec![Effect::Persist];
                effects.extend(self.resume(rollout, now));
                effects
            }
            Phase::Promoted | Phase::RolledBack { .. } | Phase::Held { .. } => {
                // A state without its outcome (written by hand, or by an older canary): say
                // what the phase says, never more.
                let outcome = rollout.outcome.clone().unwrap_or_else(|| match &phase {
                    Phase::Promoted => Outcome {
                        exit: ExitCode::Passed,
                        verdict: Verdict::Pass,
                        reason: "promoted".to_owned(),
                    },
                    Phase::RolledBack { cause, reason } => Outcome {
                        exit: cause.exit_code(),
                        verdict: cause.verdict(),
                        reason: format!("rolled back: {reason}"),
                    },
                    _ => Outcome {
                        exit: ExitCode::Inconclusive,
                        verdict: Verdict::Inconclusive,
                        reason: "held".to_owned(),
                    },
                });
                vec![Effect::Finish(outcome)]
            }
        }
    }

    fn hooks_ran(
        &self,
        rollout: &mut Rollout,
        event: HookEvent,
        failed: Vec<(String, String)>,
        now: Timestamp,
    ) -> Vec<Effect> {
        rollout.hooks_pending = None;
        match (event, &rollout.phase) {
            (HookEvent::Before | HookEvent::Step, Phase::Starting | Phase::Step { .. })
                if !failed.is_empty() =>
            {
                let names: Vec<_> = failed.iter().map(|(n, e)| format!("{n}: {e}")).collect();
                self.roll_back(
                    rollout,
                    RollbackCause::Hook,
                    format!("hook failed ({})", names.join("; ")),
                    now,
                )
            }
            (HookEvent::Before, Phase::Starting) => self.enter_step(rollout, 0),
            (HookEvent::Step, Phase::Step { .. }) => {
                let due = now + to_signed(self.policy.rollout.interval);
                rollout.next_tick_at = Some(due);
                vec![Effect::Persist, Effect::Wait(due)]
            }
            (HookEvent::Promote, Phase::Promoted)
            | (HookEvent::Rollback, Phase::RolledBack { .. }) => match &rollout.outcome {
                // Saved first: a rerun must know these hooks ran.
                Some(outcome) => vec![Effect::Persist, Effect::Finish(outcome.clone())],
                None => self.resume(rollout, now),
            },
            _ => self.resume(rollout, now),
        }
    }

    fn enter_step(&self, rollout: &mut Rollout, index: usize) -> Vec<Effect> {
        let steps = &self.policy.rollout.steps;
        let weight = steps[index];
        if weight >= 100 {
            rollout.phase = Phase::Promoting;
            return vec![Effect::Persist, Effect::SetWeight(100)];
        }
        rollout.phase = Phase::Step {
            index,
            weight,
            weight_set: false,
            started_at: None,
            extended: false,
        };
        vec![Effect::Persist, Effect::SetWeight(weight)]
    }

    fn weight_set(&self, rollout: &mut Rollout, weight: u8, now: Timestamp) -> Vec<Effect> {
        rollout.weights.push(WeightPoint { at: now, weight });
        match rollout.phase.clone() {
            Phase::Step {
                index,
                weight: wanted,
                weight_set: false,
                ..
            } if wanted == weight => {
                rollout.phase = Phase::Step {
                    index,
                    weight,
                    weight_set: true,
                    started_at: Some(now),
                    extended: false,
                };
                self.judge.begin_step(&mut rollout.judge);
                rollout.steps.push(StepRecord {
                    index,
                    weight,
                    started_at: now,
                    ended_at: None,
                    decision: "running".to_owned(),
                    reason: String::new(),
                    canary_requests: None,
                });
                let hooks = self.run_hooks(rollout, HookEvent::Step, weight, Some(index));
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        "step",
                        Some(weight),
                        format!(
                            "step {}/{}: canary at {weight}%",
                            index + 1,
                            self.policy.rollout.analysed_steps().len()
                        ),
                    ),
                    hooks,
                ]
            }
            Phase::Promoting if weight == 100 => match self.policy.rollout.final_soak {
                Some(soak) if !soak.is_zero() => {
                    rollout.phase = Phase::Soak { started_at: now };
                    // The soak is judged on its own traffic, like a step.
                    self.judge.begin_step(&mut rollout.judge);
                    let due = now + to_signed(self.policy.rollout.interval);
                    rollout.next_tick_at = Some(due);
                    vec![
                        Effect::Persist,
                        self.notice(
                            rollout,
                            "step",
                            Some(100),
                            format!(
                                "canary at 100%: soaking for {} (absolute bounds only)",
                                humantime::format_duration(soak)
                            ),
                        ),
                        Effect::Wait(due),
                    ]
                }
                _ => self.finalize_or_promote(rollout, now),
            },
            Phase::Finalizing {
                stage: PromotionStage::RouteToStable,
            } if weight == 0 => {
                rollout.phase = Phase::Finalizing {
                    stage: PromotionStage::ScaleDownCanary,
                };
                vec![
                    Effect::Persist,
                    Effect::Promote(PromotionStage::ScaleDownCanary),
                ]
            }
            Phase::RollingBack { cause, reason } if weight == 0 => {
                rollout.phase = Phase::RolledBack {
                    cause,
                    reason: reason.clone(),
                };
                rollout.outcome = Some(Outcome {
                    exit: cause.exit_code(),
                    verdict: cause.verdict(),
                    reason: format!("rolled back: {reason}"),
                });
                let step = self.step_index(rollout);
                let hooks = self.run_hooks(rollout, HookEvent::Rollback, 0, step);
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        "rolled-back",
                        Some(0),
                        format!("rolled back: {reason}"),
                    ),
                    hooks,
                ]
            }
            // A confirmation that does not match what the phase asked for: ask again.
            _ => self.resume(rollout, now),
        }
    }

    /// The canary passed at 100 %: promoted, or first the Kubernetes promotion when the
    /// policy asks for one.
    fn finalize_or_promote(&self, rollout: &mut Rollout, now: Timestamp) -> Vec<Effect> {
        let Some(promotion) = &self.policy.promotion else {
            return self.promoted(rollout, now);
        };
        rollout.decided_at.get_or_insert(now);
        if let Some(step) = rollout.steps.last_mut()
            && step.ended_at.is_none()
        {
            step.ended_at = Some(now);
            step.decision = "promote".to_owned();
        }
        rollout.phase = Phase::Finalizing {
            stage: PromotionStage::CopyToStable,
        };
        let message = format!(
            "canary passed at 100%: Deployment {} gets the pod template of {}",
            promotion.stable.name, promotion.canary_deployment
        );
        vec![
            Effect::Persist,
            self.notice(rollout, "finalizing", Some(100), message),
            Effect::Promote(PromotionStage::CopyToStable),
        ]
    }

    fn promotion_done(
        &self,
        rollout: &mut Rollout,
        stage: PromotionStage,
        now: Timestamp,
    ) -> Vec<Effect> {
        match (&rollout.phase, stage) {
            (
                Phase::Finalizing {
                    stage: PromotionStage::CopyToStable,
                },
                PromotionStage::CopyToStable,
            ) => {
                rollout.phase = Phase::Finalizing {
                    stage: PromotionStage::RouteToStable,
                };
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        "finalizing",
                        Some(100),
                        "the stable Deployment runs the canary's version: routing all traffic to it"
                            .to_owned(),
                    ),
                    Effect::SetWeight(0),
                ]
            }
            (
                Phase::Finalizing {
                    stage: PromotionStage::ScaleDownCanary,
                },
                PromotionStage::ScaleDownCanary,
            ) => self.promoted(rollout, now),
            // A confirmation that does not match the stage in progress: ask again.
            _ => self.resume(rollout, now),
        }
    }

    fn promoted(&self, rollout: &mut Rollout, now: Timestamp) -> Vec<Effect> {
        rollout.phase = Phase::Promoted;
        rollout.decided_at.get_or_insert(now);
        let reason = "promoted: every step passed".to_owned();
        if let Some(step) = rollout.steps.last_mut()
            && step.ended_at.is_none()
        {
            step.ended_at = Some(now);
            step.decision = "promote".to_owned();
        }
        rollout.outcome = Some(Outcome {
            exit: ExitCode::Passed,
            verdict: Verdict::Pass,
            reason: reason.clone(),
        });
        let hooks = self.run_hooks(rollout, HookEvent::Promote, 100, None);
        vec![
            Effect::Persist,
            self.notice(rollout, "promoted", Some(100), reason),
            hooks,
        ]
    }

    /// Asks for an event's hooks, remembering that it did (persisted with the state) until
    /// they are reported as run.
    fn run_hooks(
        &self,
        rollout: &mut Rollout,
        event: HookEvent,
        weight: u8,
        step: Option<usize>,
    ) -> Effect {
        rollout.hooks_pending = Some(PendingHooks {
            event,
            weight,
            step,
        });
        Effect::RunHooks {
            event,
            weight,
            step,
        }
    }

    fn observed(&self, rollout: &mut Rollout, tick: Tick, now: Timestamp) -> Vec<Effect> {
        rollout.failed_reads = 0;
        if let Err(err) = self.judge.observe(&mut rollout.judge, &tick) {
            return self.fail(rollout, err.to_string());
        }
        let weight = rollout.weights.last().map(|w| w.weight);
        rollout.timeline.push(timeline_point(
            &self.policy,
            rollout.previous_tick.as_ref(),
            &tick,
            weight,
        ));
        // The timeline is for charts: past a bound, every other point of its older half goes,
        // so a long rollout's saved state stays small (a ConfigMap holds under 1 MiB).
        if rollout.timeline.len() > MAX_TIMELINE_POINTS {
            let half = rollout.timeline.len() / 2;
            let mut index = 0;
            rollout.timeline.retain(|_| {
                index += 1;
                index > half || index % 2 == 0
            });
        }
        for warning in &tick.warnings {
            if !rollout.warnings.contains(warning) && rollout.warnings.len() < MAX_WARNINGS {
                rollout.warnings.push(warning.clone());
            }
        }
        rollout.previous_tick = Some(tick);
        match rollout.phase.clone() {
            Phase::Step {
                index,
                weight,
                started_at: Some(step_start),
                extended,
                ..
            } => self.judge_step(rollout, index, weight, step_start, extended, now),
            Phase::Soak { started_at } => self.judge_soak(rollout, started_at, now),
            _ => self.resume(rollout, now),
        }
    }

    fn judge_step(
        &self,
        rollout: &mut Rollout,
        index: usize,
        weight: u8,
        step_start: Timestamp,
        extended: bool,
        now: Timestamp,
    ) -> Vec<Effect> {
        let elapsed = now.duration_since(step_start);
        let step_due = elapsed >= to_signed(self.policy.rollout.step_duration);
        let moment = if step_due {
            Moment::StepEnd
        } else {
            Moment::MidStep
        };
        let assessment = match self.judge.assess(&mut rollout.judge, moment) {
            Ok(assessment) => assessment,
            Err(err) => return self.fail(rollout, err.to_string()),
        };
        let verdict = assessment.verdict;
        let reason = assessment.reason.clone();
        let requests = assessment.canary_requests_in_step;
        rollout.last_assessment = Some(assessment);
        let tick_notice = self.tick_notice(rollout, weight, now, step_start);
        if verdict == Verdict::Fail {
            self.close_step(rollout, now, "rollback", &reason, requests);
            let mut effects = vec![tick_notice];
            effects.extend(self.roll_back(rollout, RollbackCause::Failed, reason, now));
            return effects;
        }
        if !step_due {
            return self.wait_next(rollout, now, tick_notice);
        }
        if verdict == Verdict::Pass {
            let promotes = self
                .policy
                .rollout
                .steps
                .get(index + 1)
                .is_none_or(|&w| w >= 100);
            let decision = if promotes { "promote" } else { "advance" };
            self.close_step(rollout, now, decision, &reason, requests);
            let mut effects = vec![tick_notice];
            effects.extend(self.enter_step(rollout, index + 1));
            return effects;
        }
        // Not enough evidence at the step's end: extend up to the limit, then the policy.
        if elapsed < to_signed(self.policy.rollout.max_step_duration) {
            let mut effects = vec![tick_notice];
            if !extended {
                rollout.phase = Phase::Step {
                    index,
                    weight,
                    weight_set: true,
                    started_at: Some(step_start),
                    extended: true,
                };
                effects.push(self.notice(
                    rollout,
                    "extended",
                    Some(weight),
                    format!(
                        "step {} extended (up to {}): {reason}",
                        index + 1,
                        humantime::format_duration(self.policy.rollout.max_step_duration)
                    ),
                ));
            }
            effects.extend(self.wait_next(rollout, now, None));
            return effects;
        }
        let reason = format!("step {} reached its limit: {reason}", index + 1);
        match self.policy.rollout.on_inconclusive {
            InconclusiveAction::Rollback => {
                self.close_step(rollout, now, "rollback", &reason, requests);
                let mut effects = vec![tick_notice];
                effects.extend(self.roll_back(rollout, RollbackCause::Inconclusive, reason, now));
                effects
            }
            InconclusiveAction::Hold => {
                self.close_step(rollout, now, "hold", &reason, requests);
                rollout.phase = Phase::Held {
                    weight,
                    reason: reason.clone(),
                };
                rollout.decided_at.get_or_insert(now);
                let outcome = Outcome {
                    exit: ExitCode::Inconclusive,
                    verdict: Verdict::Inconclusive,
                    reason: format!("held at {weight}%: {reason}"),
                };
                rollout.outcome = Some(outcome.clone());
                vec![
                    tick_notice,
                    Effect::Persist,
                    self.notice(rollout, "held", Some(weight), outcome.reason.clone()),
                    Effect::Finish(outcome),
                ]
            }
        }
    }

    /// At 100 %, only the absolute bounds are judged: there is no baseline traffic left.
    fn judge_soak(
        &self,
        rollout: &mut Rollout,
        started_at: Timestamp,
        now: Timestamp,
    ) -> Vec<Effect> {
        let soak = self.policy.rollout.final_soak.unwrap_or_default();
        let due = now.duration_since(started_at) >= to_signed(soak);
        let moment = if due {
            Moment::StepEnd
        } else {
            Moment::MidStep
        };
        let mut assessment = match self.judge.assess(&mut rollout.judge, moment) {
            Ok(assessment) => assessment,
            Err(err) => return self.fail(rollout, err.to_string()),
        };
        assessment.checks.retain(|c| c.criterion == Criterion::Slo);
        let (verdict, reason) = overall(
            &assessment.checks,
            moment,
            assessment.canary_requests_in_step,
            self.policy.rollout.min_requests,
        );
        assessment.verdict = verdict;
        assessment.reason = reason.clone();
        rollout.last_assessment = Some(assessment);
        let tick_notice = self.tick_notice(rollout, 100, now, started_at);
        if verdict == Verdict::Fail {
            let mut effects = vec![tick_notice];
            effects.extend(self.roll_back(
                rollout,
                RollbackCause::Failed,
                format!("during the soak: {reason}"),
                now,
            ));
            return effects;
        }
        if !due {
            return self.wait_next(rollout, now, tick_notice);
        }
        let no_absolute_bounds = self.policy.criteria().all(|(_, c)| c != Criterion::Slo);
        if verdict == Verdict::Pass || no_absolute_bounds {
            let mut effects = vec![tick_notice];
            effects.extend(self.finalize_or_promote(rollout, now));
            return effects;
        }
        // Absolute bounds without evidence at 100 %: never promote on missing data.
        let mut effects = vec![tick_notice];
        effects.extend(self.roll_back(
            rollout,
            RollbackCause::Inconclusive,
            format!("the soak ended without evidence: {reason}"),
            now,
        ));
        effects
    }

    fn wait_next(
        &self,
        rollout: &mut Rollout,
        now: Timestamp,
        notice: impl Into<Option<Effect>>,
    ) -> Vec<Effect> {
        let due = now + to_signed(self.policy.rollout.interval);
        rollout.next_tick_at = Some(due);
        let mut effects: Vec<Effect> = notice.into().into_iter().collect();
        effects.push(Effect::Persist);
        effects.push(Effect::Wait(due));
        effects
    }

    fn read_failed(&self, rollout: &mut Rollout, error: String, now: Timestamp) -> Vec<Effect> {
        rollout.failed_reads += 1;
        if rollout.failed_reads >= self.policy.rollout.max_failed_ticks {
            let reason = format!(
                "the metrics could not be read {} times in a row: {error}",
                rollout.failed_reads
            );
            return match self.policy.rollout.on_metrics_unavailable {
                StopAction::Rollback
                    if !rollout.phase.is_terminal() && !is_finalizing(&rollout.phase) =>
                {
                    self.roll_back(
                        rollout,
                        RollbackCause::MetricsUnavailable,
                        format!("{reason} (on-metrics-unavailable: rollback)"),
                        now,
                    )
                }
                _ => self.fail(rollout, reason),
            };
        }
        let weight = rollout.weights.last().map(|w| w.weight);
        let notice = self.notice(
            rollout,
            "tick",
            weight,
            format!(
                "metrics unreadable ({}/{}): {error}",
                rollout.failed_reads, self.policy.rollout.max_failed_ticks
            ),
        );
        self.wait_next(rollout, now, notice)
    }

    fn manual_promote(&self, rollout: &mut Rollout, now: Timestamp) -> Vec<Effect> {
        if let Phase::Failed { during, .. } = &rollout.phase {
            rollout.phase = (**during).clone();
        }
        match &rollout.phase {
            Phase::Step { .. } | Phase::Held { .. } | Phase::Starting => {
                self.close_step(rollout, now, "promote", "promoted by hand", None);
                rollout.decided_at.get_or_insert(now);
                rollout.outcome = None;
                rollout.phase = Phase::Promoting;
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        "promoting",
                        None,
                        "promoted by hand (canary promote)".to_owned(),
                    ),
                    Effect::SetWeight(100),
                ]
            }
            _ => self.resume(rollout, now),
        }
    }

    fn interrupted(&self, rollout: &mut Rollout, now: Timestamp) -> Vec<Effect> {
        match self.policy.rollout.on_interrupt {
            StopAction::Rollback
                if !rollout.phase.is_terminal() && !is_finalizing(&rollout.phase) =>
            {
                self.roll_back(
                    rollout,
                    RollbackCause::Interrupted,
                    "interrupted by a signal (on-interrupt: rollback)".to_owned(),
                    now,
                )
            }
            _ => {
                let outcome = Outcome {
                    exit: ExitCode::Interrupted,
                    verdict: Verdict::Inconclusive,
                    reason: format!(
                        "interrupted in phase {}; state saved, `canary rollout` resumes it",
                        rollout.phase.name()
                    ),
                };
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        "interrupted",
                        rollout.weights.last().map(|w| w.weight),
                        outcome.reason.clone(),
                    ),
                    Effect::Finish(outcome),
                ]
            }
        }
    }

    fn roll_back(
        &self,
        rollout: &mut Rollout,
        cause: RollbackCause,
        reason: String,
        now: Timestamp,
    ) -> Vec<Effect> {
        if let Phase::RollingBack { .. } | Phase::RolledBack { .. } = rollout.phase {
            return self.resume(rollout, now);
        }
        if is_finalizing(&rollout.phase) {
            // The stable Deployment may already run the canary's template: there is no
            // version left to roll back to. The promotion goes on.
            let mut effects = vec![self.notice(
                rollout,
                "finalizing",
                rollout.weights.last().map(|w| w.weight),
                format!("not rolling back ({reason}): the Kubernetes promotion has begun"),
            )];
            effects.extend(self.resume(rollout, now));
            return effects;
        }
        let during = match &rollout.phase {
            Phase::Failed { during, .. } => during.as_ref(),
            phase => phase,
        };
        if let Phase::Step { .. } = during {
            self.close_step(rollout, now, "rollback", &reason, None);
        }
        rollout.decided_at.get_or_insert(now);
        rollout.outcome = None;
        rollout.phase = Phase::RollingBack {
            cause,
            reason: reason.clone(),
        };
        vec![
            Effect::Persist,
            self.notice(
                rollout,
                "rolling-back",
                Some(0),
                format!("rolling back: {reason}"),
            ),
            Effect::SetWeight(0),
        ]
    }

    fn fail(&self, rollout: &mut Rollout, error: String) -> Vec<Effect> {
        let during = match &rollout.phase {
            Phase::Failed { during, .. } => during.clone(),
            other => Box::new(other.clone()),
        };
        rollout.phase = Phase::Failed {
            during,
            error: error.clone(),
        };
        let outcome = Outcome {
            exit: ExitCode::Infrastructure,
            verdict: Verdict::Error,
            reason: format!("{error}; state saved, `canary rollout` resumes"),
        };
        rollout.outcome = Some(outcome.clone());
        vec![
            Effect::Persist,
            self.notice(
                rollout,
                "failed",
                rollout.weights.last().map(|w| w.weight),
                outcome.reason.clone(),
            ),
            Effect::Finish(outcome),
        ]
    }

    fn close_step(
        &self,
        rollout: &mut Rollout,
        now: Timestamp,
        decision: &str,
        reason: &str,
        requests: Option<u64>,
    ) {
        if let Some(step) = rollout.steps.last_mut()
            && step.ended_at.is_none()
        {
            step.ended_at = Some(now);
            step.decision = decision.to_owned();
            step.reason = reason.to_owned();
            step.canary_requests = requests.or(step.canary_requests);
        }
    }

    fn step_index(&self, rollout: &Rollout) -> Option<usize> {
        rollout.steps.last().map(|s| s.index)
    }

    fn notice(
        &self,
        _rollout: &Rollout,
        kind: &str,
        weight: Option<u8>,
        message: String,
    ) -> Effect {
        Effect::Notify(Notice {
            kind: kind.to_owned(),
            service: self.policy.service.clone(),
            weight,
            message,
        })
    }

    /// One line per tick: weight, time into the step, requests, each criterion's standing.
    fn tick_notice(
        &self,
        rollout: &Rollout,
        weight: u8,
        now: Timestamp,
        step_start: Timestamp,
    ) -> Effect {
        let elapsed = now.duration_since(step_start).as_secs().max(0);
        let mut message = format!("weight {weight}% t+{elapsed}s");
        if let Some(assessment) = &rollout.last_assessment {
            if let Some(requests) = assessment.canary_requests_in_step {
                message.push_str(&format!(" canary-requests {requests}"));
            }
            for check in &assessment.checks {
                message.push_str(&format!(" {}={}", check.name, check.verdict.as_str()));
            }
        }
        self.notice(rollout, "tick", Some(weight), message)
    }
}

/// Whether the Kubernetes promotion has begun (possibly failed midway, to be resumed).
fn is_finalizing(phase: &Phase) -> bool {
    match phase {
        Phase::Finalizing { .. } => true,
        Phase::Failed { during, .. } => is_finalizing(during),
        _ => false,
    }
}

fn to_signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

impl Rollout {
    /// The report of this rollout as it stands: its verdict (or `inconclusive` while it
    /// runs), the latest assessment's checks, the steps, the weights and the timeline.
    pub fn report(
        &self,
        policy: &Policy,
        policy_file: &str,
        source: &str,
        now: Timestamp,
    ) -> crate::report::Report {
        let (verdict, reason, exit_code) = match &self.outcome {
            Some(outcome) => (outcome.verdict, outcome.reason.clone(), outcome.exit.code()),
            None => (
                Verdict::Inconclusive,
                format!("in progress (phase {})", self.phase.name()),
                ExitCode::Inconclusive.code(),
            ),
        };
        let checks = self
            .last_assessment
            .as_ref()
            .map(|a| a.checks.clone())
            .unwrap_or_default();
        let mut warnings = self.warnings.clone();
        // The judge's own warnings (cumulative totals that fell), as of the last assessment.
        if let Some(assessment) = &self.last_assessment {
            warnings.extend(assessment.warnings.iter().cloned());
        }
        crate::report::Report {
            verdict: verdict.overall(),
            reason,
            exit_code,
            command: "rollout".to_owned(),
            service: self.service.clone(),
            policy: policy_file.to_owned(),
            source: source.to_owned(),
            alpha: policy.rollout.alpha,
            alpha_per_check: policy.alpha_per_criterion(),
            started_at: self.started_at,
            ended_at: if self.outcome.is_some() {
                self.weights
                    .last()
                    .map_or(now, |w| w.at.max(self.decided_at.unwrap_or(w.at)))
            } else {
                now
            },
            decided_at: self.decided_at,
            checks,
            steps: self.steps.clone(),
            weights: self.weights.clone(),
            timeline: self.timeline.clone(),
            warnings,
        }
    }

    /// The canary's weight as last confirmed by the router (0 before any).
    pub fn current_weight(&self) -> u8 {
        self.weights.last().map_or(0, |w| w.weight)
    }
}
