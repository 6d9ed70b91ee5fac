//! A rollout's state as a `CanaryRollout`'s status: what `kubectl get` and `canary wait`
//! read. Pure: the state in, the status out; conditions keep their transition time while
//! their status holds.

use canary_core::rollout::{Phase, Rollout};
use jiff::Timestamp;

use super::resource::{CanaryRolloutStatus, Condition, CriterionStatus};

/// The status phases (`status.phase`).
pub mod phase {
    /// Accepted, no rollout started yet.
    pub const PENDING: &str = "Pending";
    /// A rollout runs: weights move, ticks are judged.
    pub const PROGRESSING: &str = "Progressing";
    /// Held: waiting for `canary promote` or `canary abort`.
    pub const PAUSED: &str = "Paused";
    /// Ended: the canary has the traffic (or the stable Deployment runs it).
    pub const PROMOTED: &str = "Promoted";
    /// Ended: the canary has no traffic.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// The gateway or the metrics source failed; the controller retries.
    pub const FAILED: &str = "Failed";
    /// The resource cannot be carried out as written (its policy, its spec).
    pub const INVALID: &str = "Invalid";
}

/// What the status is built from besides the rollout.
#[derive(Clone, Debug)]
pub struct StatusContext<'a> {
    /// The resource's `metadata.generation`.
    pub generation: Option<i64>,
    /// What the rollout rolls out.
    pub revision: &'a str,
    /// The ConfigMap holding the rollout's state.
    pub state_config_map: &'a str,
    /// The number of analysed steps of the policy.
    pub analysed_steps: usize,
    /// The weight last read back from the gateway, if any.
    pub weight_read_back: Option<u8>,
    /// The status as it stands (its conditions' transition times are kept).
    pub previous: Option<&'a CanaryRolloutStatus>,
    /// Now.
    pub now: Timestamp,
}

/// The status of a resource whose rollout is `rollout`.
pub fn status_of(rollout: &Rollout, context: &StatusContext<'_>) -> CanaryRolloutStatus {
    let machine_phase = rollout.phase();
    let shown = match machine_phase {
        Phase::Failed { .. } => phase::FAILED,
        Phase::Held { .. } => phase::PAUSED,
        Phase::Promoted => phase::PROMOTED,
        Phase::RolledBack { .. } => phase::ROLLED_BACK,
        _ => phase::PROGRESSING,
    };
    let step = match machine_phase {
        Phase::Step { index, .. } => Some(format!("{}/{}", index + 1, context.analysed_steps)),
        _ => None,
    };
    let reason = match machine_phase {
        Phase::RollingBack { reason, .. }
        | Phase::RolledBack { reason, .. }
        | Phase::Held { reason, .. } => reason.clone(),
        Phase::Failed { error, .. } => error.clone(),
        Phase::Promoted => rollout
            .outcome()
            .map_or_else(|| "promoted".to_owned(), |o| o.reason.clone()),
        _ => rollout.last_assessment().map_or_else(
            || format!("{} at {} %", machine_phase.name(), rollout.current_weight()),
            |a| a.reason.clone(),
        ),
    };
    let criteria = rollout
        .last_assessment()
        .map(|assessment| {
            assessment
                .checks
                .iter()
                .map(|check| CriterionStatus {
                    name: check.name.clone(),
                    verdict: check.verdict.as_str().to_owned(),
                    reason: check.reason.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let exit_code = match machine_phase {
        Phase::Promoted | Phase::RolledBack { .. } | Phase::Failed { .. } => rollout
            .outcome()
            .map(|outcome| i32::from(outcome.exit.code())),
        _ => None,
    };
    let is = |p: &str| if shown == p { "True" } else { "False" };
    let progressing = if shown == phase::PROGRESSING {
        "True"
    } else {
        "False"
    };
    let wanted = [
        ("Progressing", progressing, shown),
        ("Promoted", is(phase::PROMOTED), shown),
        ("RolledBack", is(phase::ROLLED_BACK), shown),
        ("Paused", is(phase::PAUSED), shown),
        ("Degraded", is(phase::FAILED), shown),
    ];
    let conditions = wanted
        .iter()
        .map(|(kind, status, why)| {
            condition(
                context,
                kind,
                status,
                why,
                if *status == "True" { &reason } else { "" },
            )
        })
        .collect();
    CanaryRolloutStatus {
        observed_generation: context.generation,
        revision: Some(context.revision.to_owned()),
        phase: Some(shown.to_owned()),
        machine_phase: Some(machine_phase.name().to_owned()),
        step,
        weight: Some(rollout.current_weight()),
        weight_read_back: context.weight_read_back,
        reason: Some(one_line(&reason)),
        exit_code,
        started_at: Some(rollout.started_at().to_string()),
        state_config_map: Some(context.state_config_map.to_owned()),
        criteria,
        conditions,
    }
}

/// Whether two statuses show the same thing apart from their free text (the one-line
/// reason, each criterion's reason, each condition's message), whose numbers move at every
/// tick: phase, step, weights, revision, exit code, each criterion's verdict, each
/// condition's status. The controller writes a status at once when this changes, and one
/// whose text alone changed only now and then (`--status-refresh`): a status written at every
/// tick would be an etcd write per rollout per tick on top of the state's save — the churn
/// Kubernetes itself moved node heartbeats out of `NodeStatus` into Leases for (KEP-589).
pub fn shows_the_same(a: &CanaryRolloutStatus, b: &CanaryRolloutStatus) -> bool {
    fn without_text(status: &CanaryRolloutStatus) -> CanaryRolloutStatus {
        let mut status = status.clone();
        status.reason = None;
        for criterion in &mut status.criteria {
            criterion.reason.clear();
        }
        for condition in &mut status.conditions {
            condition.message.clear();
        }
        status
    }
    without_text(a) == without_text(b)
}

/// The status of a resource that cannot be carried out (a bad policy, a bad spec): phase
/// `Invalid`, `Degraded` with the problem, nothing else changed.
pub fn invalid_status(
    problem: &str,
    generation: Option<i64>,
    previous: Option<&CanaryRolloutStatus>,
    now: Timestamp,
) -> CanaryRolloutStatus {
    let context = StatusContext {
        generation,
        revision: "",
        state_config_map: "",
        analysed_steps: 0,
        weight_read_back: None,
        previous,
        now,
    };
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.phase = Some(phase::INVALID.to_owned());
    status.reason = Some(one_line(problem));
    status.exit_code = Some(2);
    status.conditions = vec![
        condition(&context, "Progressing", "False", "Invalid", ""),
        condition(&context, "Degraded", "True", "Invalid", problem),
    ];
    status
}

fn condition(
    context: &StatusContext<'_>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> Condition {
    let since = context
        .previous
        .and_then(|previous| previous.conditions.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .map_or_else(
            || context.now.to_string(),
            |c| c.last_transition_time.clone(),
        );
    Condition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: one_line(message),
        last_transition_time: since,
        observed_generation: context.generation,
    }
}

/// At most one line of at most 400 characters: a status is read in a terminal.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 400 {
        let cut: String = line.chars().take(399).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(weight: u8, verdict: &str, numbers: &str) -> CanaryRolloutStatus {
        CanaryRolloutStatus {
            phase: Some(phase::PROGRESSING.to_owned()),
            step: Some("1/3".to_owned()),
            weight: Some(weight),
            reason: Some(format!("not enough evidence: errors ({numbers})")),
            criteria: vec![CriterionStatus {
                name: "errors/slo".to_owned(),
                verdict: verdict.to_owned(),
                reason: numbers.to_owned(),
            }],
            conditions: vec![Condition {
                type_: "Progressing".to_owned(),
                status: "True".to_owned(),
                reason: "Progressing".to_owned(),
                message: numbers.to_owned(),
                last_transition_time: "2026-12-01T10:00:00Z".to_owned(),
                observed_generation: Some(1),
            }],
            ..CanaryRolloutStatus::default()
        }
    }

    #[test]
    fn statuses_that_differ_only_in_their_text_show_the_same() {
        let before = status(10, "inconclusive", "0.10 % of 1,200 requests");
        assert!(shows_the_same(
            &before,
            &status(10, "inconclusive", "0.11 % of 1,350 requests")
        ));
        assert!(!shows_the_same(
            &before,
            &status(25, "inconclusive", "0.10 % of 1,200 requests")
        ));
        assert!(!shows_the_same(
            &before,
            &status(10, "pass", "0.10 % of 1,200 requests")
        ));
        let mut other_step = before.clone();
        other_step.step = Some("2/3".to_owned());
        assert!(!shows_the_same(&before, &other_step));
        let mut flipped = before.clone();
        flipped.conditions[0].status = "False".to_owned();
        assert!(!shows_the_same(&before, &flipped));
    }
}
