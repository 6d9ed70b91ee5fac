//! Whether a saved rollout is one this policy's machine could have written:
//! [`Machine::validate`].
//!
//! A state file is read back from disk or from a ConfigMap, where anybody with access can
//! edit it. The machine drives on from whatever it loads, so a state it could not have
//! produced (a step index past the policy's steps, a weight that is no step's weight, a
//! `promoted` phase while the steps never passed) is refused here, naming the field, before
//! the gateway is touched. What is checked is the state's consistency with the policy and
//! with itself; a forger who rewrites every field consistently is caught by the rerun's
//! look at the gateway ([`super::Effect::ReadWeight`]) and by the state file's mode (0600),
//! not here.

use jiff::{SignedDuration, Timestamp};

use super::machine::Machine;
use super::state::{Phase, Rollout, STATE_FORMAT};
use crate::error::ExitCode;
use crate::{Error, Result};

/// How far in the future a saved time may lie (clocks of two machines apart).
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

impl Machine {
    /// Checks that a saved rollout belongs to this policy as it is now and is consistent:
    /// format, service, policy digest, then every step index and weight against the
    /// policy's steps, the phase against the weights and the steps as they happened. Any
    /// problem is bad input (exit 2) naming the field.
    pub fn validate(&self, rollout: &Rollout, now: Timestamp) -> Result<()> {
        if rollout.format != STATE_FORMAT {
            return Err(Error::Usage(format!(
                "the saved rollout has state format {}, this canary reads {STATE_FORMAT}",
                rollout.format
            )));
        }
        if rollout.service != self.policy().service {
            return Err(Error::Usage(format!(
                "the saved rollout is for service {:?}, the policy for {:?}",
                rollout.service,
                self.policy().service
            )));
        }
        if rollout.policy_digest != self.policy().digest() {
            return Err(Error::Usage(
                "the policy changed since this rollout started; restore it, or start over with --restart"
                    .to_owned(),
            ));
        }
        self.consistency(rollout, now).map_err(|(field, problem)| {
            Error::Usage(format!(
                "the saved rollout state is inconsistent: `{field}` {problem}; the gateway was not touched (move the state away, or `canary rollout --restart`, to start over)"
            ))
        })
    }

    /// The first inconsistency found: the field and what is wrong with it.
    fn consistency(&self, rollout: &Rollout, now: Timestamp) -> Result<(), (String, String)> {
        let policy = self.policy();
        let analysed = policy.rollout.analysed_steps();
        let problem = |field: &str, text: String| Err((field.to_owned(), text));
        if rollout.started_at > now + CLOCK_SKEW {
            return problem(
                "started_at",
                format!("is {}, in the future", rollout.started_at),
            );
        }
        for (i, point) in rollout.weights.iter().enumerate() {
            if point.weight > 100 {
                return problem(
                    &format!("weights[{i}].weight"),
                    format!("is {}, above 100", point.weight),
                );
            }
        }
        for (i, step) in rollout.steps.iter().enumerate() {
            match analysed.get(step.index) {
                None => {
                    return problem(
                        &format!("steps[{i}].index"),
                        format!(
                            "is {}, the policy has {} analysed steps",
                            step.index,
                            analysed.len()
                        ),
                    );
                }
                Some(&weight) if weight != step.weight => {
                    return problem(
                        &format!("steps[{i}].weight"),
                        format!(
                            "is {}, the policy's step {} is {weight} %",
                            step.weight,
                            step.index + 1
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        if let Some(pending) = &rollout.hooks_pending {
            if pending.weight > 100 {
                return problem(
                    "hooks_pending.weight",
                    format!("is {}, above 100", pending.weight),
                );
            }
            if pending.step.is_some_and(|s| s >= analysed.len()) {
                return problem(
                    "hooks_pending.step",
                    "is past the policy's analysed steps".to_owned(),
                );
            }
        }
        if let Some(manual) = &rollout.promoted_by_hand
            && manual.step.is_some_and(|s| s >= analysed.len())
        {
            return problem(
                "promoted_by_hand.step",
                "is past the policy's analysed steps".to_owned(),
            );
        }
        let phase = match &rollout.phase {
            Phase::Failed { during, .. } => {
                if matches!(**during, Phase::Failed { .. }) {
                    return problem("phase.during", "is itself a failure".to_owned());
                }
                // A failure may have left any weight behind (that is why it failed): only
                // the phase it resumes is checked.
                return self.phase_consistency(rollout, during, false);
            }
            phase => phase,
        };
        self.phase_consistency(rollout, phase, true)
    }

    /// Whether `phase` fits the rollout's record; `settled` says whether the weights must
    /// already show what the phase set (not so for a phase a failure interrupted).
    fn phase_consistency(
        &self,
        rollout: &Rollout,
        phase: &Phase,
        settled: bool,
    ) -> Result<(), (String, String)> {
        let policy = self.policy();
        let analysed = policy.rollout.analysed_steps();
        let current = rollout.current_weight();
        let problem = |field: &str, text: String| Err((field.to_owned(), text));
        let passed = |index: usize, decision: &str| {
            rollout
                .steps
                .iter()
                .any(|s| s.index == index && s.decision == decision)
        };
        // Every analysed step passed by its evidence, or a person promoted by hand.
        let promotion_earned = || {
            if rollout.promoted_by_hand.is_some() {
                return Ok(());
            }
            let last = analysed.len().saturating_sub(1);
            for index in 0..analysed.len() {
                let decision = if index == last { "promote" } else { "advance" };
                if !passed(index, decision) {
                    return problem(
                        "steps",
                        format!(
                            "do not show step {} passed ({decision}), yet the phase is {}",
                            index + 1,
                            phase.name()
                        ),
                    );
                }
            }
            Ok(())
        };
        match phase {
            Phase::Starting => {
                if current != 0 {
                    return problem(
                        "weights",
                        format!(
                            "end at {current} %, yet the rollout has not started (phase starting)"
                        ),
                    );
                }
            }
            Phase::Step {
                index,
                weight,
                weight_set,
                started_at,
                ..
            } => {
                let Some(&step_weight) = analysed.get(*index) else {
                    return problem(
                        "phase.index",
                        format!(
                            "is {index}, the policy has {} analysed steps (0 to {})",
                            analysed.len(),
                            analysed.len().saturating_sub(1)
                        ),
                    );
                };
                if *weight != step_weight {
                    return problem(
                        "phase.weight",
                        format!(
                            "is {weight}, the policy's step {} is {step_weight} %",
                            index + 1
                        ),
                    );
                }
                for earlier in 0..*index {
                    if !passed(earlier, "advance") {
                        return problem(
                            "phase.index",
                            format!(
                                "is step {}, yet the steps do not show step {} passed",
                                index + 1,
                                earlier + 1
                            ),
                        );
                    }
                }
                if *weight_set {
                    if started_at.is_none() {
                        return problem(
                            "phase.started_at",
                            "is missing for a step whose weight is set".to_owned(),
                        );
                    }
                    if settled && current != *weight {
                        return problem(
                            "weights",
                            format!(
                                "end at {current} %, yet step {} is at {weight} %",
                                index + 1
                            ),
                        );
                    }
                }
            }
            Phase::Promoting | Phase::Soak { .. } | Phase::Finalizing { .. } => {
                promotion_earned()?;
                if let Phase::Soak { .. } = phase
                    && settled
                    && current != 100
                {
                    return problem(
                        "weights",
                        format!("end at {current} %, yet the phase is soak (100 %)"),
                    );
                }
                if let Phase::Finalizing { .. } = phase
                    && policy.promotion.is_none()
                {
                    return problem(
                        "phase",
                        "is finalizing, yet the policy has no `promotion`".to_owned(),
                    );
                }
            }
            Phase::Promoted => {
                promotion_earned()?;
                let expected = if policy.promotion.is_some() { 0 } else { 100 };
                if settled && current != expected {
                    return problem(
                        "weights",
                        format!("end at {current} %, yet the phase is promoted ({expected} %)"),
                    );
                }
                if let Some(outcome) = &rollout.outcome
                    && outcome.exit != ExitCode::Passed
                {
                    return problem(
                        "outcome.exit",
                        format!("is {}, yet the phase is promoted (0)", outcome.exit.code()),
                    );
                }
            }
            Phase::RollingBack { .. } => {}
            Phase::RolledBack { .. } => {
                if settled && current != 0 {
                    return problem(
                        "weights",
                        format!("end at {current} %, yet the phase is rolled-back (0 %)"),
                    );
                }
            }
            Phase::Held { weight, .. } => {
                if !analysed.contains(weight) {
                    return problem(
                        "phase.weight",
                        format!("is {weight}, no step of the policy has that weight"),
                    );
                }
                if settled && current != *weight {
                    return problem(
                        "weights",
                        format!("end at {current} %, yet the rollout is held at {weight} %"),
                    );
                }
            }
            Phase::Failed { .. } => {
                return problem("phase.during", "is itself a failure".to_owned());
            }
        }
        Ok(())
    }
}
