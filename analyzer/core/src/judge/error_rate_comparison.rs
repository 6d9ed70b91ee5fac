//! `error-rate` with `baseline`: the canary's error rate against the baseline's with the
//! conditional-binomial mixture e-value ([`crate::stats::rate_ratio`]), fed each tick's
//! increments of both versions' requests and errors. The counts it reports are the test's:
//! every increment since the analysis started.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::comparison::assess_comparison;
use super::evaluator::{Evaluate, Subject, Unusable, unexpected};
use super::memory::{Decreases, Totals};
use super::verdict::{CheckResult, Moment};
use crate::observation::{BaselineData, CheckObservation};
use crate::stats::rate_ratio::{RateRatioState, RateRatioTest};

/// The evaluator of an error-rate comparison.
#[derive(Clone, Debug)]
pub(crate) struct ErrorRateComparison {
    pub(crate) test: RateRatioTest,
}

/// What an error-rate comparison remembers: both versions' cumulative totals and the
/// e-process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateComparisonMemory {
    canary: Totals,
    baseline: Totals,
    test: RateRatioState,
    decreases: Decreases,
}

impl Evaluate for ErrorRateComparison {
    type Memory = ErrorRateComparisonMemory;

    fn start(&self) -> ErrorRateComparisonMemory {
        ErrorRateComparisonMemory {
            canary: Totals::default(),
            baseline: Totals::default(),
            test: self.test.start(),
            decreases: Decreases::default(),
        }
    }

    fn observe(
        &self,
        memory: &mut ErrorRateComparisonMemory,
        observation: &CheckObservation,
        _at: Timestamp,
    ) -> Result<Option<f64>, Unusable> {
        let CheckObservation::Counts { canary, baseline } = observation else {
            return Err(unexpected("error-rate", observation));
        };
        let baseline = match baseline {
            BaselineData::Observed(baseline) => baseline,
            // The canary's increments wait in the source's cumulative totals: the next tick
            // with a baseline takes them in.
            BaselineData::Missing(reason) => {
                return Err(Unusable::NoData(format!(
                    "no baseline data to compare with: {reason}"
                )));
            }
        };
        let canary_next = Totals::from_counts(canary)?;
        let baseline_next = Totals::from_counts(baseline)?;
        let mut next = memory.clone();
        next.decreases.record(&[
            (memory.canary, canary_next),
            (memory.baseline, baseline_next),
        ]);
        let canary_step = next.canary.advance(canary_next);
        let baseline_step = next.baseline.advance(baseline_next);
        self.test
            .update(&mut next.test, canary_step, baseline_step)
            .map_err(|e| e.to_string())?;
        *memory = next;
        Ok(Some(canary.requests))
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut ErrorRateComparisonMemory,
        _moment: Moment,
    ) -> CheckResult {
        let mut result = assess_comparison(
            subject,
            &self.test,
            &memory.test,
            "canary/baseline error-rate ratio",
        );
        result.evidence.counter_decreases = memory.decreases.reported();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Verdict;
    use crate::observation::{BaselineData, RequestCounts};
    use crate::policy::Criterion;

    fn subject() -> Subject {
        Subject {
            name: "errors/baseline".to_owned(),
            check: "errors".to_owned(),
            criterion: Criterion::Baseline,
            kind: "error-rate",
            alpha: 0.005,
        }
    }

    /// Cumulative (requests, errors) of canary and baseline at one tick.
    type CountsTick = ((f64, f64), (f64, f64));

    fn judge(ticks: &[CountsTick]) -> CheckResult {
        let evaluator = ErrorRateComparison {
            test: RateRatioTest::new(0.0).unwrap(),
        };
        let mut memory = evaluator.start();
        for &((cr, ce), (br, be)) in ticks {
            let observation = CheckObservation::Counts {
                canary: RequestCounts {
                    requests: cr,
                    errors: ce,
                },
                baseline: RequestCounts {
                    requests: br,
                    errors: be,
                }
                .into(),
            };
            evaluator
                .observe(&mut memory, &observation, Timestamp::UNIX_EPOCH)
                .unwrap();
        }
        evaluator.assess(&subject(), &mut memory, Moment::MidStep)
    }

    #[test]
    fn a_canary_as_good_as_the_baseline_passes() {
        let ticks: Vec<_> = (1..=10)
            .map(|k| {
                let k = f64::from(k);
                ((100.0 * k, k), (900.0 * k, 9.0 * k))
            })
            .collect();
        let result = judge(&ticks);
        assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
        assert_eq!(result.evidence.canary_n, Some(1000));
        assert_eq!(result.evidence.baseline_events, Some(90));
    }

    #[test]
    fn a_canary_with_five_times_the_errors_fails() {
        let ticks: Vec<_> = (1..=10)
            .map(|k| {
                let k = f64::from(k);
                ((100.0 * k, 5.0 * k), (900.0 * k, 9.0 * k))
            })
            .collect();
        let result = judge(&ticks);
        assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
        assert!(result.evidence.e_value.unwrap() >= 200.0);
    }

    #[test]
    fn a_missing_baseline_is_no_data_naming_what_matched_nothing_and_loses_nothing() {
        let evaluator = ErrorRateComparison {
            test: RateRatioTest::new(0.0).unwrap(),
        };
        let mut memory = evaluator.start();
        let missing = CheckObservation::Counts {
            canary: RequestCounts {
                requests: 100.0,
                errors: 1.0,
            },
            baseline: BaselineData::Missing(
                "no http_requests_total series for version=\"stable\" in the window".to_owned(),
            ),
        };
        let err = evaluator
            .observe(&mut memory, &missing, Timestamp::UNIX_EPOCH)
            .unwrap_err();
        let Unusable::NoData(reason) = err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("version=\"stable\""), "{reason}");
        assert_eq!(memory, evaluator.start(), "nothing taken in");
        // The next tick with a baseline covers the gap.
        let both = CheckObservation::Counts {
            canary: RequestCounts {
                requests: 200.0,
                errors: 2.0,
            },
            baseline: RequestCounts {
                requests: 1800.0,
                errors: 18.0,
            }
            .into(),
        };
        evaluator
            .observe(&mut memory, &both, Timestamp::UNIX_EPOCH)
            .unwrap();
        let result = evaluator.assess(&subject(), &mut memory, Moment::MidStep);
        assert_eq!(result.evidence.canary_n, Some(200));
    }

    #[test]
    fn without_baseline_requests_there_is_nothing_to_compare() {
        let result = judge(&[((100.0, 1.0), (0.0, 0.0))]);
        assert_eq!(result.verdict, Verdict::NoData);
        assert!(result.reason.contains("baseline"), "{}", result.reason);
    }
}
