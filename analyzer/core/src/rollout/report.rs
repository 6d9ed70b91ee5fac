//! The report of a rollout as it stands: [`Rollout::report`].

use jiff::Timestamp;

use super::state::{Outcome, Phase, Rollout};
use crate::error::ExitCode;
use crate::policy::Policy;
use crate::report::RunVerdict;

impl Rollout {
    /// The report of this rollout as it stands: its verdict (or `inconclusive` while it
    /// runs), the latest assessment's checks, the steps, the weights and the timeline.
    /// `ended` is how this run ended when it differs from what the state records (an
    /// interrupt that left the rollout where it stood is exit 130, though the rollout
    /// itself goes on at the next run).
    pub fn report(
        &self,
        policy: &Policy,
        policy_file: &str,
        source: &str,
        now: Timestamp,
        ended: Option<&Outcome>,
    ) -> crate::report::Report {
        let (verdict, reason, exit_code) = match ended.or(self.outcome.as_ref()) {
            Some(outcome) => (outcome.verdict, outcome.reason.clone(), outcome.exit.code()),
            None => (
                RunVerdict::Inconclusive,
                format!("in progress (phase {})", self.phase.name()),
                ExitCode::Inconclusive.code(),
            ),
        };
        // Before the first assessment (a rollout stopped early), every check of the policy
        // is listed as not judged yet: a report of no checks at all reads as nothing to fail.
        let checks = match &self.last_assessment {
            Some(assessment) => assessment.checks.clone(),
            None => crate::analysis::analyze(policy, &[])
                .map(|outcome| outcome.assessment.checks)
                .unwrap_or_default(),
        };
        let mut warnings = self.warnings.clone();
        // The judge's own warnings (cumulative totals that fell), as of the last assessment.
        if let Some(assessment) = &self.last_assessment {
            warnings.extend(assessment.warnings.iter().cloned());
        }
        crate::report::Report {
            verdict,
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
            promoted_by_hand: self.promoted_by_hand.clone(),
            canary_exposed_seconds: if matches!(self.phase, Phase::Promoted) {
                None
            } else {
                self.exposed_seconds(now)
            },
        }
    }

    /// How long the canary served traffic: from the first weight above 0 to the next
    /// confirmed 0 (or `now`).
    fn exposed_seconds(&self, now: Timestamp) -> Option<f64> {
        let first = self.weights.iter().position(|w| w.weight > 0)?;
        let start = self.weights[first].at;
        let end = self.weights[first..]
            .iter()
            .find(|w| w.weight == 0)
            .map_or(now, |w| w.at);
        Some(end.duration_since(start).as_secs_f64().max(0.0))
    }
}
