//! The machine: [`Machine::handle`] takes a [`Rollout`], one [`Event`] and the time, updates
//! the rollout and returns the [`Effect`]s the driver must carry out, in order.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::protocol::{ControlAction, ControlRequest};
use super::protocol::{Effect, Event, Notice, NoticeKind};
use super::state::{
    ManualPromotion, Outcome, PendingHooks, Phase, PromotionStage, RollbackCause, Rollout,
    STATE_FORMAT,
};
use crate::Result;
use crate::error::ExitCode;
use crate::judge::{Judge, JudgeConfig, Moment, Verdict, overall};
use crate::observation::Tick;
use crate::policy::{Criterion, HookEvent, InconclusiveAction, Policy, StepRoute, StopAction};
use crate::ports::AchievedShare;
use crate::report::RunVerdict;
use crate::report::{StepRecord, WeightPoint, timeline_point};

/// Timeline points kept in the state unless the driver asks for fewer (older ones are
/// thinned out past this).
const MAX_TIMELINE_POINTS: usize = 600;

/// The fewest timeline points a machine keeps (the first and the latest).
const MIN_TIMELINE_POINTS: usize = 2;

/// Distinct source warnings kept for the report.
const MAX_WARNINGS: usize = 50;

/// The rollout machine of one policy.
#[derive(Clone, Debug)]
pub struct Machine {
    policy: Policy,
    judge: Judge,
    /// How many timeline points the state keeps at most.
    timeline_points: usize,
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
        Ok(Machine {
            policy,
            judge,
            timeline_points: MAX_TIMELINE_POINTS,
        })
    }

    /// The same machine, keeping at most `points` timeline points in the state (at least
    /// 2): a driver that stores many rollouts (the controller, in ConfigMaps) keeps each
    /// rollout's state small and independent of the rollout's length. The timeline only
    /// feeds the reports' charts; nothing is decided from it.
    pub fn with_timeline_points(mut self, points: usize) -> Machine {
        self.timeline_points = points.max(MIN_TIMELINE_POINTS);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A new rollout, not started, with the identifier the caller gave it (`--id`).
    pub fn start(&self, now: Timestamp, id: Option<String>) -> Rollout {
        Rollout {
            format: STATE_FORMAT,
            service: self.policy.service.clone(),
            id,
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
            weight_drifts: 0,
            weight_unknown_since: None,
            promoted_by_hand: None,
        }
    }

    /// Handles one event at `now`: updates `rollout`, returns the effects to carry out.
    pub fn handle(&self, rollout: &mut Rollout, event: Event, now: Timestamp) -> Vec<Effect> {
        if let Some(outcome) = &rollout.outcome
            && (rollout.phase.is_terminal() || matches!(rollout.phase, Phase::Held { .. }))
            && rollout.hooks_pending.is_none()
        {
            // A finished rollout checks that the gateway still serves what it left (a rerun
            // reports nothing it has not seen), and answers manual commands from a hold.
            let held = matches!(rollout.phase, Phase::Held { .. });
            match event {
                Event::Resume => return vec![Effect::ReadWeight],
                Event::WeightRead(weight) => {
                    return self.final_weight_read(rollout, weight, None, now);
                }
                Event::RouteRead { weight, route } => {
                    return self.final_weight_read(rollout, weight, route, now);
                }
                Event::WeightSet(weight) | Event::WeightAchieved { weight, .. } => {
                    rollout.weights.push(WeightPoint { at: now, weight });
                    return vec![Effect::Persist, Effect::ReadWeight];
                }
                Event::RouterFailed(error) | Event::WeightUnreadable(error) => {
                    return self.fail(rollout, format!("the gateway failed: {error}"));
                }
                Event::ManualPromote | Event::ManualAbort(_) | Event::Control(_) if held => {}
                Event::Control(request) => return self.ignore_request(rollout, &request, now),
                _ => return vec![Effect::Finish(outcome.clone())],
            }
        }
        match event {
            Event::Control(request) => match request.refusal(rollout, now) {
                Some(_) => self.ignore_request(rollout, &request, now),
                None => match request.action {
                    ControlAction::Promote => self.manual_promote(rollout, now),
                    ControlAction::Abort { reason } => self.roll_back(
                        rollout,
                        RollbackCause::Aborted,
                        format!("aborted: {reason}"),
                        now,
                    ),
                },
            },
            Event::WeightRead(weight) => self.weight_read(rollout, weight, None, now),
            Event::RouteRead { weight, route } => self.weight_read(rollout, weight, route, now),
            Event::WeightUnreadable(error) => match rollout.phase {
                Phase::Step {
                    weight_set: true, ..
                }
                | Phase::Soak { .. } => {
                    rollout.weight_unknown_since.get_or_insert(now);
                    self.read_failed(
                        rollout,
                        format!("the gateway's weight could not be read back: {error}"),
                        now,
                    )
                }
                _ => self.fail(rollout, format!("the gateway failed: {error}")),
            },
            Event::Resume => self.resume(rollout, now),
            Event::HooksRan { event, failed } => self.hooks_ran(rollout, event, failed, now),
            Event::HookUnstartable { event, hooks } => {
                self.hook_unstartable(rollout, event, hooks, now)
            }
            Event::WeightSet(weight) => self.weight_set(rollout, weight, None, now),
            Event::WeightAchieved { weight, achieved } => {
                self.weight_set(rollout, weight, Some(achieved), now)
            }
            Event::RouterFailed(error) => {
                self.fail(rollout, format!("the gateway failed: {error}"))
            }
            // Every tick reads the weight back first: a gateway that restarted or was changed
            // by hand is caught before its evidence counts.
            Event::TimerFired => match &rollout.phase {
                Phase::Step {
                    weight_set: true, ..
                }
                | Phase::Soak { .. } => vec![Effect::ReadWeight],
                _ => self.resume(rollout, now),
            },
            Event::Observed { tick, checkpoint } => {
                // Saved with the state that takes this tick in.
                rollout.source_checkpoint = checkpoint;
                self.observed(rollout, tick, now)
            }
            Event::PreflightPassed { canary_generation } => {
                self.preflight_passed(rollout, canary_generation, now)
            }
            Event::PreflightFailed { error, bad_input } => {
                self.preflight_failed(rollout, error, bad_input)
            }
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
            // Nothing has changed yet: check first that the rollout can be carried out.
            Phase::Starting => vec![Effect::Preflight],
            Phase::Promoting => vec![Effect::SetWeight(100)],
            Phase::Step {
                index,
                weight,
                weight_set: false,
                ..
            } => vec![self.set_step(index, weight)],
            Phase::Step { .. } | Phase::Soak { .. } => {
                let due = rollout.next_tick_at.unwrap_or(now);
                vec![Effect::Wait(due)]
            }
            Phase::Finalizing {
                stage: PromotionStage::RouteToStable,
            } => vec![Effect::SetWeight(0)],
            Phase::Finalizing { stage } => vec![self.promote_effect(rollout, stage)],
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
                // what the phase says, never more — once the gateway has been checked.
                let outcome = rollout.outcome.clone().unwrap_or_else(|| match &phase {
                    Phase::Promoted => Outcome {
                        exit: ExitCode::Passed,
                        verdict: RunVerdict::Pass,
                        reason: self.promoted_reason(rollout),
                    },
                    Phase::RolledBack { cause, reason } => Outcome {
                        exit: cause.exit_code(),
                        verdict: cause.verdict(),
                        reason: format!("rolled back: {reason}"),
                    },
                    _ => Outcome {
                        exit: ExitCode::Inconclusive,
                        verdict: RunVerdict::Inconclusive,
                        reason: "held".to_owned(),
                    },
                });
                rollout.outcome = Some(outcome);
                vec![Effect::ReadWeight]
            }
        }
    }

    /// The pre-flight passed: remember what it learnt, announce the start, run the
    /// before-hooks.
    fn preflight_passed(
        &self,
        rollout: &mut Rollout,
        canary_generation: Option<i64>,
        now: Timestamp,
    ) -> Vec<Effect> {
        if rollout.phase != Phase::Starting {
            return self.resume(rollout, now);
        }
        if rollout.promotion_canary_generation.is_none() {
            rollout.promotion_canary_generation = canary_generation;
        }
        let hooks = self.run_hooks(rollout, HookEvent::Before, 0, None);
        vec![
            Effect::Persist,
            self.notice(
                rollout,
                NoticeKind::Started,
                None,
                format!(
                    "rollout of {} started: steps {:?}",
                    self.policy.service, self.policy.rollout.steps
                ),
            ),
            hooks,
        ]
    }

    /// The pre-flight failed: nothing was changed; a rerun tries again.
    fn preflight_failed(
        &self,
        rollout: &mut Rollout,
        error: String,
        bad_input: bool,
    ) -> Vec<Effect> {
        if bad_input {
            let reason = format!("pre-flight: {error}; nothing was changed");
            self.stop_failed(rollout, error, ExitCode::BadInput, reason)
        } else {
            let reason = format!("pre-flight: {error}; nothing was changed");
            self.stop_failed(
                rollout,
                format!("pre-flight: {error}"),
                ExitCode::Infrastructure,
                reason,
            )
        }
    }

    /// A stage of the Kubernetes promotion, with the generation the analysis judged.
    fn promote_effect(&self, rollout: &Rollout, stage: PromotionStage) -> Effect {
        Effect::Promote {
            stage,
            analysed_generation: rollout.promotion_canary_generation,
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

    /// A hook that cannot be started is the policy's mistake, never "the canary failed":
    /// a `before` hook stops the rollout before any weight moves (exit 2, a rerun after the
    /// fix starts it); a step hook, with the canary already serving, rolls back (exit 4).
    /// Promotion and rollback hooks are not acted on (see [`Event::HooksRan`]).
    fn hook_unstartable(
        &self,
        rollout: &mut Rollout,
        event: HookEvent,
        hooks: Vec<(String, String)>,
        now: Timestamp,
    ) -> Vec<Effect> {
        let names: Vec<_> = hooks.iter().map(|(n, e)| format!("{n}: {e}")).collect();
        let what = format!(
            "hook cannot be started, a configuration error ({})",
            names.join("; ")
        );
        match (event, &rollout.phase) {
            (HookEvent::Before, Phase::Starting) => {
                rollout.hooks_pending = None;
                let reason = format!("{what}; nothing was changed");
                self.stop_failed(rollout, what, ExitCode::BadInput, reason)
            }
            (HookEvent::Step, Phase::Step { .. }) => {
                rollout.hooks_pending = None;
                self.roll_back(rollout, RollbackCause::HookUnstartable, what, now)
            }
            _ => self.hooks_ran(rollout, event, Vec::new(), now),
        }
    }

    fn enter_step(&self, rollout: &mut Rollout, index: usize) -> Vec<Effect> {
        // Past the last analysed step (or at a step of 100 %) is the promotion.
        let weight = self.policy.rollout.steps.get(index).copied().unwrap_or(100);
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
        vec![Effect::Persist, self.set_step(index, weight)]
    }

    /// What sets step `index` up: its route when it is a routed step, else its weight.
    fn set_step(&self, index: usize, weight: u8) -> Effect {
        match self.policy.rollout.route(index) {
            Some(route) => Effect::SetRoute(route.clone()),
            None => Effect::SetWeight(weight),
        }
    }

    /// A weight was confirmed; `achieved` is what a router that approximates weights made
    /// of it, which the step's record and notice say beside the weight asked for.
    fn weight_set(
        &self,
        rollout: &mut Rollout,
        weight: u8,
        achieved: Option<AchievedShare>,
        now: Timestamp,
    ) -> Vec<Effect> {
        rollout.weights.push(WeightPoint { at: now, weight });
        // A weight just set and confirmed is known again.
        rollout.weight_unknown_since = None;
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
                    achieved,
                    route: self.policy.rollout.route(index).cloned(),
                });
                let share = match (achieved, self.policy.rollout.route(index)) {
                    (_, Some(route)) => route.to_string(),
                    (Some(achieved), None) => format!("{weight} % asked, {achieved} achieved"),
                    (None, None) => format!("{weight} %"),
                };
                let hooks = self.run_hooks(rollout, HookEvent::Step, weight, Some(index));
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        NoticeKind::Step,
                        Some(weight),
                        format!(
                            "step {}/{}: canary at {share}",
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
                            NoticeKind::Step,
                            Some(100),
                            format!(
                                "canary at 100 %: soaking for {} (absolute bounds only)",
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
                    self.promote_effect(rollout, PromotionStage::ScaleDownCanary),
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
                        NoticeKind::RolledBack,
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
            "canary passed at 100 %: Deployment {} gets the pod template of {}",
            promotion.stable.name, promotion.canary_deployment
        );
        vec![
            Effect::Persist,
            self.notice(rollout, NoticeKind::Finalizing, Some(100), message),
            self.promote_effect(rollout, PromotionStage::CopyToStable),
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
                        NoticeKind::Finalizing,
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
        let reason = self.promoted_reason(rollout);
        if let Some(step) = rollout.steps.last_mut()
            && step.ended_at.is_none()
        {
            step.ended_at = Some(now);
            step.decision = "promote".to_owned();
        }
        rollout.outcome = Some(Outcome {
            exit: ExitCode::Passed,
            verdict: RunVerdict::Pass,
            reason: reason.clone(),
        });
        let hooks = self.run_hooks(rollout, HookEvent::Promote, 100, None);
        vec![
            Effect::Persist,
            self.notice(rollout, NoticeKind::Promoted, Some(100), reason),
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
        if rollout.timeline.len() > self.timeline_points {
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
        // A provider that makes data available late (`metrics.*.lag`) is read up to `lag`
        // before each tick: the step lasts `lag` longer, so that its decision is made on the
        // data of its whole duration, never on data that has not arrived.
        let lag = self.policy.metrics_lag();
        let step_due = elapsed >= to_signed(self.policy.rollout.step_duration + lag);
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
        if elapsed < to_signed(self.policy.rollout.max_step_duration + lag) {
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
                    NoticeKind::Extended,
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
                    verdict: RunVerdict::Inconclusive,
                    reason: format!("held at {weight} %: {reason}"),
                };
                rollout.outcome = Some(outcome.clone());
                vec![
                    tick_notice,
                    Effect::Persist,
                    self.notice(
                        rollout,
                        NoticeKind::Held,
                        Some(weight),
                        outcome.reason.clone(),
                    ),
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
        // As a step, a soak lasts the provider's `lag` longer (see `judge_step`).
        let soak = self.policy.rollout.final_soak.unwrap_or_default() + self.policy.metrics_lag();
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
            NoticeKind::Tick,
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
                let step = match &rollout.phase {
                    Phase::Step { index, .. } => Some(*index),
                    Phase::Held { .. } => self.step_index(rollout),
                    _ => None,
                };
                let undecided = rollout
                    .last_assessment
                    .as_ref()
                    .map(|a| {
                        a.checks
                            .iter()
                            .filter(|c| c.verdict != Verdict::Pass)
                            .map(|c| format!("{} {}", c.name, c.verdict.as_str()))
                            .collect()
                    })
                    .unwrap_or_else(|| vec!["no check assessed yet".to_owned()]);
                rollout.promoted_by_hand = Some(ManualPromotion {
                    at: now,
                    step,
                    undecided,
                });
                self.close_step(rollout, now, "promote", "promoted by hand", None);
                rollout.decided_at.get_or_insert(now);
                rollout.outcome = None;
                rollout.phase = Phase::Promoting;
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        NoticeKind::Promoting,
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
                    verdict: RunVerdict::Interrupted,
                    reason: format!(
                        "interrupted in phase {}; state saved, `canary rollout` resumes it",
                        rollout.phase.name()
                    ),
                };
                vec![
                    Effect::Persist,
                    self.notice(
                        rollout,
                        NoticeKind::Interrupted,
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
                NoticeKind::Finalizing,
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
                NoticeKind::RollingBack,
                Some(0),
                format!("rolling back: {reason}"),
            ),
            Effect::SetWeight(0),
        ]
    }

    /// Stops on an infrastructure failure (exit 4); a rerun resumes what was under way.
    fn fail(&self, rollout: &mut Rollout, error: String) -> Vec<Effect> {
        let reason = format!("{error}; state saved, `canary rollout` resumes");
        self.stop_failed(rollout, error, ExitCode::Infrastructure, reason)
    }

    /// Stops in [`Phase::Failed`] with `exit`; a rerun resumes what was under way.
    fn stop_failed(
        &self,
        rollout: &mut Rollout,
        error: String,
        exit: ExitCode,
        reason: String,
    ) -> Vec<Effect> {
        let during = match &rollout.phase {
            Phase::Failed { during, .. } => during.clone(),
            other => Box::new(other.clone()),
        };
        rollout.phase = Phase::Failed { during, error };
        let outcome = Outcome {
            exit,
            verdict: RunVerdict::Error,
            reason,
        };
        rollout.outcome = Some(outcome.clone());
        vec![
            Effect::Persist,
            self.notice(
                rollout,
                NoticeKind::Failed,
                rollout.weights.last().map(|w| w.weight),
                outcome.reason.clone(),
            ),
            Effect::Finish(outcome),
        ]
    }

    /// Why the rollout was promoted, in words: by its evidence, or by hand (and where, and
    /// what was still undecided then).
    fn promoted_reason(&self, rollout: &Rollout) -> String {
        match &rollout.promoted_by_hand {
            None => "promoted: every step passed".to_owned(),
            Some(manual) => {
                let at = match manual.step {
                    Some(step) => format!(
                        "at step {}/{}",
                        step + 1,
                        self.policy.rollout.analysed_steps().len()
                    ),
                    None => "before the first step".to_owned(),
                };
                if manual.undecided.is_empty() {
                    format!("promoted by hand {at}")
                } else {
                    format!(
                        "promoted by hand {at}; not decided by the analysis: {}",
                        manual.undecided.join(", ")
                    )
                }
            }
        }
    }

    /// A control request that is not for this rollout, or too old: dropped (the store has
    /// already removed it), said out loud, and the rollout goes on as it was.
    fn ignore_request(
        &self,
        rollout: &mut Rollout,
        request: &ControlRequest,
        now: Timestamp,
    ) -> Vec<Effect> {
        let why = request
            .refusal(rollout, now)
            .unwrap_or_else(|| "the rollout has finished".to_owned());
        let mut effects = vec![self.notice(
            rollout,
            NoticeKind::IgnoredRequest,
            rollout.weights.last().map(|w| w.weight),
            format!(
                "ignored a `canary {}` request made {}: {why}",
                request.action.name(),
                request.requested_at
            ),
        )];
        if let Some(outcome) = &rollout.outcome
            && rollout.phase.is_terminal()
        {
            effects.push(Effect::Finish(outcome.clone()));
        } else {
            effects.extend(self.resume(rollout, now));
        }
        effects
    }

    /// The weight (and request route) the router serves, read back at a tick: the one the
    /// phase set, or drift. Drift is recorded and counted, the step set again, and the step
    /// starts over: evidence gathered while the canary had another share does not count
    /// towards passing it. A routed step whose match or mirror is gone (a GitOps sync, a
    /// hand edit) is drift like a changed weight, and so is a match or mirror left behind
    /// on a weighted step.
    fn weight_read(
        &self,
        rollout: &mut Rollout,
        read: u8,
        route: Option<StepRoute>,
        now: Timestamp,
    ) -> Vec<Effect> {
        let (expected, expected_route, started) = match &rollout.phase {
            Phase::Step {
                index,
                weight,
                weight_set: true,
                ..
            } => (*weight, self.policy.rollout.route(*index).cloned(), true),
            Phase::Soak { .. } => (100, None, true),
            _ => return self.resume(rollout, now),
        };
        let right = read == expected && route == expected_route;
        if right && rollout.weight_unknown_since.is_none() {
            return vec![Effect::Read {
                since: rollout.started_at,
            }];
        }
        debug_assert!(started);
        let message = match rollout.weight_unknown_since {
            // Right again, after reads that could not tell: what the gateway served in
            // between is unknown, so the evidence gathered then does not pass the step.
            Some(since) if right => format!(
                "the gateway's weight could not be read back from {since} until now; it is {} again, but the evidence gathered while it was unknown does not count: setting {} again and starting the step over",
                served(read, route.as_ref()),
                served(expected, expected_route.as_ref()),
            ),
            _ => self.record_drift(
                rollout,
                &served(read, route.as_ref()),
                &served(expected, expected_route.as_ref()),
                now,
            ),
        };
        rollout.weight_unknown_since = None;
        let repair = match rollout.phase.clone() {
            Phase::Step { index, weight, .. } => {
                self.close_step(rollout, now, "drift", &message, None);
                rollout.phase = Phase::Step {
                    index,
                    weight,
                    weight_set: false,
                    started_at: None,
                    extended: false,
                };
                self.set_step(index, weight)
            }
            _ => {
                rollout.phase = Phase::Promoting;
                Effect::SetWeight(expected)
            }
        };
        vec![
            Effect::Persist,
            self.notice(rollout, NoticeKind::Drift, Some(read), message),
            repair,
        ]
    }

    /// A finished rollout's weight, read back on a rerun: the outcome stands only once the
    /// gateway serves what the rollout left (a plain weight, no match or mirror); otherwise
    /// it is set back first.
    fn final_weight_read(
        &self,
        rollout: &mut Rollout,
        read: u8,
        route: Option<StepRoute>,
        now: Timestamp,
    ) -> Vec<Effect> {
        let expected = match &rollout.phase {
            Phase::Promoted if self.policy.promotion.is_some() => 0,
            Phase::Promoted => 100,
            Phase::Held { weight, .. } => *weight,
            _ => 0,
        };
        // A hold on a routed step keeps its route.
        let expected_route = match (&rollout.phase, rollout.steps.last()) {
            (Phase::Held { .. }, Some(step)) if step.weight == expected => step.route.clone(),
            _ => None,
        };
        let Some(outcome) = rollout.outcome.clone() else {
            return self.resume(rollout, now);
        };
        if read == expected && route == expected_route {
            return vec![Effect::Finish(outcome)];
        }
        let message = self.record_drift(
            rollout,
            &served(read, route.as_ref()),
            &served(expected, expected_route.as_ref()),
            now,
        );
        let repair = match expected_route {
            Some(route) => Effect::SetRoute(route),
            None => Effect::SetWeight(expected),
        };
        vec![
            Effect::Persist,
            self.notice(rollout, NoticeKind::Drift, Some(read), message),
            repair,
        ]
    }

    /// Counts a drift and keeps it for the report; returns it in words.
    fn record_drift(
        &self,
        rollout: &mut Rollout,
        read: &str,
        expected: &str,
        now: Timestamp,
    ) -> String {
        rollout.weight_drifts += 1;
        let message = format!(
            "weight drift: the gateway served the canary {read} where the rollout set {expected} (phase {}); setting {expected} again",
            rollout.phase.name()
        );
        let warning = format!("{now}: {message}");
        if rollout.warnings.len() < MAX_WARNINGS {
            rollout.warnings.push(warning);
        }
        message
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
        kind: NoticeKind,
        weight: Option<u8>,
        message: String,
    ) -> Effect {
        Effect::Notify(Notice {
            kind,
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
        let mut message = format!("weight {weight} % t+{elapsed}s");
        if let Some(assessment) = &rollout.last_assessment {
            if let Some(requests) = assessment.canary_requests_in_step {
                message.push_str(&format!(" canary-requests {requests}"));
            }
            for check in &assessment.checks {
                message.push_str(&format!(" {}={}", check.name, check.verdict.as_str()));
            }
        }
        self.notice(rollout, NoticeKind::Tick, Some(weight), message)
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

/// What a router serves the canary, in words: `10 %`, or the route of a routed step with the
/// weighted share beside it when that is not 0.
fn served(weight: u8, route: Option<&StepRoute>) -> String {
    match route {
        None => format!("{weight} %"),
        Some(route) if weight == 0 => route.to_string(),
        Some(route) => format!("{weight} % and {route}"),
    }
}
