//! `query` with `slo`: the query's latest value against an absolute bound ("container
//! restarts of canary pods stay 0"). No statistics: the value is what it is.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::evaluator::{Evaluate, Subject, Unusable, unexpected};
use super::verdict::{CheckResult, Evidence, Moment, Verdict, fmt_num};
use crate::observation::CheckObservation;
use crate::policy::AbsoluteBound;

/// The evaluator of a bound on a query's value.
#[derive(Clone, Debug)]
pub(crate) struct QueryBound {
    pub(crate) bound: AbsoluteBound,
    /// For a generic provider's percentile (a `json` check with `percentile`): which one
    /// (0.95), so that the report says it is a percentile held to a bound, with no
    /// statistical guarantee. `None`: a query's value.
    pub(crate) percentile: Option<f64>,
}

/// What a query bound remembers: the latest value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryBoundMemory {
    last: Option<f64>,
}

impl Evaluate for QueryBound {
    type Memory = QueryBoundMemory;

    fn start(&self) -> QueryBoundMemory {
        QueryBoundMemory::default()
    }

    fn observe(
        &self,
        memory: &mut QueryBoundMemory,
        observation: &CheckObservation,
        _at: Timestamp,
    ) -> Result<Option<f64>, Unusable> {
        let CheckObservation::Value { value } = observation else {
            return Err(unexpected("query", observation));
        };
        if !value.is_finite() {
            return Err(Unusable::Invalid(format!(
                "the query's value is not a finite number ({value})"
            )));
        }
        memory.last = Some(*value);
        Ok(None)
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut QueryBoundMemory,
        moment: Moment,
    ) -> CheckResult {
        let Some(value) = memory.last else {
            return subject.result(Verdict::NoData, "no value yet", subject.no_evidence());
        };
        let bound = self.bound;
        let (test, measure) = match self.percentile {
            None => (
                "bound on the query's value".to_owned(),
                "query value".to_owned(),
            ),
            Some(q) => {
                let p = fmt_num(q * 100.0);
                (
                    format!(
                        "bound on the provider's p{p} (a percentile only: the latest value against the bound, no statistical guarantee)"
                    ),
                    format!("p{p} (s)"),
                )
            }
        };
        let evidence = Evidence {
            test,
            measure,
            estimate: Some(value),
            threshold: Some(bound.max),
            ..subject.no_evidence()
        };
        if value > bound.fail_fast_bound() {
            subject.result(
                Verdict::Fail,
                format!(
                    "{} is above {}",
                    fmt_num(value),
                    fmt_num(bound.fail_fast_bound())
                ),
                Evidence {
                    threshold: Some(bound.fail_fast_bound()),
                    ..evidence
                },
            )
        } else if value > bound.max && moment == Moment::StepEnd {
            subject.result(
                Verdict::Fail,
                format!("{} is above {}", fmt_num(value), fmt_num(bound.max)),
                evidence,
            )
        } else if value > bound.max {
            subject.result(
                Verdict::Inconclusive,
                format!(
                    "{} is above {} (judged at the step's end)",
                    fmt_num(value),
                    fmt_num(bound.max)
                ),
                evidence,
            )
        } else {
            subject.result(
                Verdict::Pass,
                format!("{} is within {}", fmt_num(value), fmt_num(bound.max)),
                evidence,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Criterion;

    fn judge(bound: AbsoluteBound, value: f64, moment: Moment) -> CheckResult {
        let evaluator = QueryBound {
            bound,
            percentile: None,
        };
        let mut memory = evaluator.start();
        evaluator
            .observe(
                &mut memory,
                &CheckObservation::Value { value },
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        let subject = Subject {
            name: "restarts/slo".to_owned(),
            check: "restarts".to_owned(),
            criterion: Criterion::Slo,
            kind: "query",
            alpha: 0.01,
        };
        evaluator.assess(&subject, &mut memory, moment)
    }

    #[test]
    fn values_are_held_to_the_bound() {
        let zero = AbsoluteBound {
            max: 0.0,
            rollback_above: None,
        };
        assert_eq!(judge(zero, 0.0, Moment::MidStep).verdict, Verdict::Pass);
        assert_eq!(judge(zero, 1.0, Moment::MidStep).verdict, Verdict::Fail);
        let lenient = AbsoluteBound {
            max: 1.0,
            rollback_above: Some(3.0),
        };
        assert_eq!(
            judge(lenient, 2.0, Moment::MidStep).verdict,
            Verdict::Inconclusive
        );
        assert_eq!(judge(lenient, 2.0, Moment::StepEnd).verdict, Verdict::Fail);
        assert_eq!(judge(lenient, 4.0, Moment::MidStep).verdict, Verdict::Fail);
    }

    #[test]
    fn non_finite_values_are_refused() {
        let evaluator = QueryBound {
            percentile: None,
            bound: AbsoluteBound {
                max: 0.0,
                rollback_above: None,
            },
        };
        let mut memory = evaluator.start();
        assert!(
            evaluator
                .observe(
                    &mut memory,
                    &CheckObservation::Value { value: f64::NAN },
                    Timestamp::UNIX_EPOCH
                )
                .is_err()
        );
    }
}
