//! `rollout`: steps, timing, the error budget and what to do when a step is inconclusive, the
//! rollout is interrupted or the metrics are unavailable.

use super::*;

impl Validator {
    pub(super) fn rollout(&mut self, raw: &RawRollout) -> Option<RolloutSpec> {
        let steps = match &raw.steps {
            None => Some(DEFAULT_STEPS.to_vec()),
            Some(steps) => self.steps(steps),
        };
        let step_duration = self.positive_duration(
            "rollout.step-duration",
            raw.step_duration.as_ref(),
            DEFAULT_STEP_DURATION,
        );
        let interval =
            self.positive_duration("rollout.interval", raw.interval.as_ref(), DEFAULT_INTERVAL);
        let max_step_duration = match (&raw.max_step_duration, step_duration) {
            (Some(at), Some(step)) => {
                let max = at.value.0;
                if max < step {
                    self.problem(
                        "rollout.max-step-duration",
                        Some(at),
                        format!(
                            "the limit ({}) is shorter than the step itself ({})",
                            humantime::format_duration(max),
                            humantime::format_duration(step)
                        ),
                    );
                    None
                } else {
                    Some(max)
                }
            }
            (None, Some(step)) => Some(step * 3),
            (_, None) => None,
        };
        if let (Some(interval), Some(step)) = (interval, step_duration) {
            if interval > step {
                self.problem(
                    "rollout.interval",
                    raw.interval.as_ref(),
                    format!(
                        "the analysis interval ({}) is longer than a step ({}); a step would never be analysed",
                        humantime::format_duration(interval),
                        humantime::format_duration(step)
                    ),
                );
            } else if interval < Duration::from_secs(1) {
                self.problem(
                    "rollout.interval",
                    raw.interval.as_ref(),
                    "the analysis interval must be at least 1s (Prometheus resolves whole seconds)",
                );
            }
        }
        let min_requests = match &raw.min_requests {
            None => Some(DEFAULT_MIN_REQUESTS),
            Some(at) if at.value >= 0 => Some(at.value as u64),
            Some(at) => {
                self.problem(
                    "rollout.min-requests",
                    Some(at),
                    "expected a count of 0 or more",
                );
                None
            }
        };
        let alpha = match &raw.alpha {
            None => Some(DEFAULT_ALPHA),
            Some(at) if at.value.0 > 0.0 && at.value.0 <= 0.5 => Some(at.value.0),
            Some(at) => {
                self.problem(
                    "rollout.alpha",
                    Some(at),
                    "expected a false-rollback budget above 0% and at most 50% (1% is usual)",
                );
                None
            }
        };
        let on_inconclusive = match &raw.on_inconclusive {
            None => Some(InconclusiveAction::Rollback),
            Some(at) => match at.value.as_str() {
                "rollback" => Some(InconclusiveAction::Rollback),
                "hold" => Some(InconclusiveAction::Hold),
                other => {
                    self.problem(
                        "rollout.on-inconclusive",
                        Some(at),
                        format!("expected `rollback` or `hold`, not {other:?} (a rollout never promotes on missing evidence)"),
                    );
                    None
                }
            },
        };
        let on_interrupt = self.stop_action("rollout.on-interrupt", raw.on_interrupt.as_ref());
        let on_metrics_unavailable = self.stop_action(
            "rollout.on-metrics-unavailable",
            raw.on_metrics_unavailable.as_ref(),
        );
        let final_soak = match &raw.final_soak {
            None => Some(None),
            Some(at) => self
                .positive_duration("rollout.final-soak", Some(at), Duration::ZERO)
                .map(Some),
        };
        let max_failed_ticks = match &raw.max_failed_ticks {
            None => Some(DEFAULT_MAX_FAILED_TICKS),
            Some(at) if (1..=1000).contains(&at.value) => Some(at.value as u32),
            Some(at) => {
                self.problem(
                    "rollout.max-failed-ticks",
                    Some(at),
                    "expected a count from 1 to 1000",
                );
                None
            }
        };
        Some(RolloutSpec {
            steps: steps?,
            step_duration: step_duration?,
            max_step_duration: max_step_duration?,
            interval: interval?,
            min_requests: min_requests?,
            alpha: alpha?,
            on_inconclusive: on_inconclusive?,
            on_interrupt: on_interrupt?,
            final_soak: final_soak?,
            max_failed_ticks: max_failed_ticks?,
            on_metrics_unavailable: on_metrics_unavailable?,
        })
    }

    /// `leave` (the default) or `rollback`.
    fn stop_action(&mut self, field: &str, raw: Option<&At<String>>) -> Option<StopAction> {
        let Some(at) = raw else {
            return Some(StopAction::Leave);
        };
        match at.value.as_str() {
            "leave" => Some(StopAction::Leave),
            "rollback" => Some(StopAction::Rollback),
            other => {
                self.problem(
                    field,
                    Some(at),
                    format!("expected `leave` or `rollback`, not {other:?}"),
                );
                None
            }
        }
    }

    fn steps(&mut self, steps: &At<Vec<At<i64>>>) -> Option<Vec<u8>> {
        if steps.value.is_empty() {
            self.problem(
                "rollout.steps",
                Some(steps),
                "expected at least one step, e.g. [10, 25, 50, 100]",
            );
            return None;
        }
        let mut ok = true;
        let mut weights = Vec::with_capacity(steps.value.len());
        for (i, step) in steps.value.iter().enumerate() {
            if !(1..=100).contains(&step.value) {
                self.problem(
                    format!("rollout.steps[{i}]"),
                    Some(step),
                    format!(
                        "expected a canary weight from 1 to 100 (percent), not {}",
                        step.value
                    ),
                );
                ok = false;
                continue;
            }
            if let Some(&previous) = weights.last()
                && step.value as u8 <= previous
            {
                self.problem(
                    format!("rollout.steps[{i}]"),
                    Some(step),
                    format!("steps must increase: {} comes after {previous}", step.value),
                );
                ok = false;
            }
            weights.push(step.value as u8);
        }
        if ok && weights.last() != Some(&100) {
            self.problem(
                "rollout.steps",
                Some(steps),
                "the last step must be 100 (reaching 100 % is the promotion)",
            );
            ok = false;
        }
        if ok && weights.len() < 2 {
            self.problem(
                "rollout.steps",
                Some(steps),
                "at least one step below 100 is needed: the comparison with baseline needs baseline traffic",
            );
            ok = false;
        }
        ok.then_some(weights)
    }
}
