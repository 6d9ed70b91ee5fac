//! `error-rate` with `slo`: the canary's error rate against an absolute bound, with the
//! beta-binomial confidence sequence (Robbins 1970; Howard et al. 2021).
//!
//! Fails once the whole confidence sequence is above the fail-fast bound (`rollback-above`,
//! or `max`), and at a step's end once it is above `max`; passes when the estimate is within
//! `max`; otherwise inconclusive (above `max`, not yet with confidence). An absolute bound is
//! about the canary alone: the baseline's half of the reading is not looked at.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::evaluator::{Evaluate, Subject, Unusable, unexpected};
use super::memory::{Decreases, Totals};
use super::verdict::{CheckResult, Evidence, Moment, Verdict, fmt_num};
use crate::observation::CheckObservation;
use crate::policy::AbsoluteBound;
use crate::stats::binomial_cs;

/// The evaluator of an error-rate bound.
#[derive(Clone, Debug)]
pub(crate) struct ErrorRateBound {
    pub(crate) bound: AbsoluteBound,
}

/// What an error-rate bound remembers: the canary's cumulative totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateBoundMemory {
    canary: Totals,
    decreases: Decreases,
}

impl Evaluate for ErrorRateBound {
    type Memory = ErrorRateBoundMemory;

    fn start(&self) -> ErrorRateBoundMemory {
        ErrorRateBoundMemory::default()
    }

    fn observe(
        &self,
        memory: &mut ErrorRateBoundMemory,
        observation: &CheckObservation,
        _at: Timestamp,
    ) -> Result<Option<f64>, Unusable> {
        let CheckObservation::Counts { canary, .. } = observation else {
            return Err(unexpected("error-rate", observation));
        };
        let next = Totals::from_counts(canary)?;
        memory.decreases.record(&[(memory.canary, next)]);
        memory.canary.advance(next);
        Ok(Some(canary.requests))
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut ErrorRateBoundMemory,
        moment: Moment,
    ) -> CheckResult {
        let mut result = assess_rate_bound(
            subject,
            self.bound,
            moment,
            memory.canary,
            "canary error rate",
        );
        result.evidence.counter_decreases = memory.decreases.reported();
        result
    }
}

/// An absolute bound on a rate, with the beta-binomial confidence sequence: fail once the
/// whole sequence is above the bound, pass when the estimate is within it.
fn assess_rate_bound(
    subject: &Subject,
    bound: AbsoluteBound,
    moment: Moment,
    totals: Totals,
    measure: &str,
) -> CheckResult {
    let alpha = subject.alpha;
    let (lower, upper) = match binomial_cs::interval(totals.events, totals.trials, alpha) {
        Ok(interval) => interval,
        Err(err) => return subject.result(Verdict::Error, err.to_string(), subject.no_evidence()),
    };
    let estimate = (totals.trials > 0).then(|| totals.events as f64 / totals.trials as f64);
    let evidence = Evidence {
        test: "beta-binomial confidence sequence (Robbins 1970; Howard et al. 2021)".to_owned(),
        measure: measure.to_owned(),
        canary_n: Some(totals.trials),
        canary_events: Some(totals.events),
        estimate,
        interval: Some([lower, upper]),
        confidence: Some(1.0 - alpha),
        threshold: Some(bound.max),
        alpha,
        ..Evidence::default()
    };
    let pct = |x: f64| format!("{} %", fmt_num(x * 100.0));
    let fail_fast = bound.fail_fast_bound();
    if lower > fail_fast {
        return subject.result(
            Verdict::Fail,
            format!(
                "the rate is above {} with confidence (lower bound {})",
                pct(fail_fast),
                pct(lower)
            ),
            Evidence {
                threshold: Some(fail_fast),
                ..evidence
            },
        );
    }
    if moment == Moment::StepEnd && lower > bound.max {
        return subject.result(
            Verdict::Fail,
            format!(
                "the rate is above {} with confidence (lower bound {})",
                pct(bound.max),
                pct(lower)
            ),
            evidence,
        );
    }
    match estimate {
        None => subject.result(Verdict::NoData, "no canary requests yet", evidence),
        Some(estimate) if estimate <= bound.max => subject.result(
            Verdict::Pass,
            format!("{} is within {}", pct(estimate), pct(bound.max)),
            evidence,
        ),
        Some(estimate) => subject.result(
            Verdict::Inconclusive,
            format!(
                "{} is above {}, not yet with confidence",
                pct(estimate),
                pct(bound.max)
            ),
            evidence,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{BaselineData, RequestCounts};
    use crate::policy::Criterion;

    fn subject() -> Subject {
        Subject {
            name: "errors/slo".to_owned(),
            check: "errors".to_owned(),
            criterion: Criterion::Slo,
            kind: "error-rate",
            alpha: 0.005,
        }
    }

    fn counts(requests: f64, errors: f64) -> CheckObservation {
        CheckObservation::Counts {
            canary: RequestCounts { requests, errors },
            baseline: RequestCounts {
                requests: 1000.0,
                errors: 1.0,
            }
            .into(),
        }
    }

    fn at() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn judge(bound: AbsoluteBound, readings: &[(f64, f64)], moment: Moment) -> CheckResult {
        let evaluator = ErrorRateBound { bound };
        let mut memory = evaluator.start();
        for &(requests, errors) in readings {
            evaluator
                .observe(&mut memory, &counts(requests, errors), at())
                .unwrap();
        }
        evaluator.assess(&subject(), &mut memory, moment)
    }

    fn max(max: f64) -> AbsoluteBound {
        AbsoluteBound {
            max,
            rollback_above: None,
        }
    }

    #[test]
    fn a_rate_well_within_the_bound_passes() {
        let result = judge(max(0.01), &[(1000.0, 1.0), (5000.0, 5.0)], Moment::MidStep);
        assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
        assert_eq!(result.evidence.canary_n, Some(5000));
        assert_eq!(result.evidence.canary_events, Some(5));
    }

    #[test]
    fn a_rate_clearly_above_the_bound_fails_mid_step() {
        let result = judge(max(0.01), &[(2000.0, 200.0)], Moment::MidStep);
        assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
        assert!(result.evidence.interval.unwrap()[0] > 0.01);
    }

    #[test]
    fn above_max_but_below_rollback_above_fails_only_at_the_step_end() {
        let bound = AbsoluteBound {
            max: 0.01,
            rollback_above: Some(0.2),
        };
        let mid = judge(bound, &[(2000.0, 200.0)], Moment::MidStep);
        assert_eq!(mid.verdict, Verdict::Inconclusive, "{}", mid.reason);
        let end = judge(bound, &[(2000.0, 200.0)], Moment::StepEnd);
        assert_eq!(end.verdict, Verdict::Fail, "{}", end.reason);
    }

    #[test]
    fn above_max_without_confidence_is_inconclusive() {
        let result = judge(max(0.01), &[(100.0, 2.0)], Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::Inconclusive, "{}", result.reason);
    }

    #[test]
    fn no_canary_requests_is_no_data() {
        let result = judge(max(0.01), &[(0.0, 0.0)], Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::NoData);
    }

    #[test]
    fn other_kinds_of_data_are_refused() {
        let evaluator = ErrorRateBound { bound: max(0.01) };
        let mut memory = evaluator.start();
        let err = evaluator
            .observe(&mut memory, &CheckObservation::Value { value: 1.0 }, at())
            .unwrap_err();
        assert!(
            matches!(&err, Unusable::Invalid(reason) if reason.contains("error-rate")),
            "{err:?}"
        );
    }

    #[test]
    fn the_bound_is_judged_without_the_baseline() {
        let evaluator = ErrorRateBound { bound: max(0.01) };
        let mut memory = evaluator.start();
        for k in 1..=10 {
            let observation = CheckObservation::Counts {
                canary: RequestCounts {
                    requests: 300.0 * f64::from(k),
                    errors: 9.0 * f64::from(k),
                },
                baseline: BaselineData::Missing(
                    "no http_requests_total series for version=\"stable\"".to_owned(),
                ),
            };
            evaluator.observe(&mut memory, &observation, at()).unwrap();
        }
        let result = evaluator.assess(&subject(), &mut memory, Moment::MidStep);
        assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
    }

    #[test]
    fn falling_totals_are_reported_with_the_evidence() {
        let result = judge(
            max(0.01),
            &[(1000.0, 1.0), (900.0, 1.0), (2000.0, 2.0)],
            Moment::MidStep,
        );
        let decreases = result.evidence.counter_decreases.unwrap();
        assert_eq!((decreases.ticks, decreases.requests), (1, 100));
        assert_eq!(result.evidence.canary_n, Some(2000));
    }
}
