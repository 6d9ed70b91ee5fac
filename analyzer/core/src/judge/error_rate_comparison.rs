//! `error-rate` with `baseline`: the canary's error rate against the baseline's with the
//! conditional-binomial mixture e-value ([`crate::stats::rate_ratio`]), fed each tick's
//! increments of both versions' requests and errors.

use serde::{Deserialize, Serialize};

use super::comparison::assess_comparison;
use super::evaluator::{Evaluate, Subject, unexpected};
use super::memory::Totals;
use super::verdict::{CheckResult, Moment};
use crate::observation::CheckObservation;
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
}

impl Evaluate for ErrorRateComparison {
    type Memory = ErrorRateComparisonMemory;

    fn start(&self) -> ErrorRateComparisonMemory {
        ErrorRateComparisonMemory {
            canary: Totals::default(),
            baseline: Totals::default(),
            test: self.test.start(),
        }
    }

    fn observe(
        &self,
        memory: &mut ErrorRateComparisonMemory,
        observation: &CheckObservation,
    ) -> Result<Option<f64>, String> {
        let CheckObservation::Counts { canary, baseline } = observation else {
            return Err(unexpected("error-rate", observation));
        };
        let canary_next = Totals::from_counts(canary)?;
        let baseline_next = Totals::from_counts(baseline)?;
        let canary_step = memory.canary.advance(canary_next);
        let baseline_step = memory.baseline.advance(baseline_next);
        self.test
            .update(&mut memory.test, canary_step, baseline_step)
            .map_err(|e| e.to_string())?;
        Ok(Some(canary.requests))
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut ErrorRateComparisonMemory,
        _moment: Moment,
    ) -> CheckResult {
        assess_comparison(
            subject,
            &self.test,
            memory.canary,
            memory.baseline,
            Some(&memory.test),
            "canary/baseline error-rate ratio",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Verdict;
    use crate::observation::RequestCounts;
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
                },
            };
            evaluator.observe(&mut memory, &observation).unwrap();
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
    fn without_baseline_requests_there_is_nothing_to_compare() {
        let result = judge(&[((100.0, 1.0), (0.0, 0.0))]);
        assert_eq!(result.verdict, Verdict::NoData);
        assert!(result.reason.contains("baseline"), "{}", result.reason);
    }
}
