//! `latency` with `baseline`: the share of canary requests slower than a fixed bucket bound
//! against the baseline's, with the rate-ratio e-value ([`crate::stats::rate_ratio`]).
//!
//! The bound is the policy's `slow-above` rounded up to a bucket bound or, by default, the
//! baseline's bucket bound just below its quantile once [`REQUESTS_TO_FIX_SLOW_THRESHOLD`]
//! baseline requests are seen. It is fixed before the evidence it judges: only increments
//! after it was fixed feed the test, which keeps the test valid.

use serde::{Deserialize, Serialize};

use super::comparison::assess_comparison;
use super::evaluator::{Evaluate, Subject, unexpected};
use super::memory::{Totals, check_buckets, slow_totals, total};
use super::verdict::{CheckResult, Moment, Verdict, fmt_num};
use crate::observation::{CheckObservation, HistogramBucket};
use crate::stats::histogram;
use crate::stats::rate_ratio::{RateRatioState, RateRatioTest};

/// Baseline requests needed before a latency comparison fixes its "slow" bucket bound from
/// the baseline's quantile (when the policy does not give `slow-above`).
pub const REQUESTS_TO_FIX_SLOW_THRESHOLD: f64 = 200.0;

/// The evaluator of a latency comparison.
#[derive(Clone, Debug)]
pub(crate) struct LatencyComparison {
    /// The quantile the default slow bound is taken from.
    pub(crate) quantile: f64,
    /// The policy's `slow-above`, seconds.
    pub(crate) slow_above: Option<f64>,
    /// The comparison.
    pub(crate) test: RateRatioTest,
}

/// What a latency comparison remembers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyComparisonMemory {
    /// The baseline's latest request count (for the message while the bound is not fixed).
    baseline_requests: f64,
    /// Once the bound is fixed: the bound and the counts above it.
    slow: Option<SlowRequests>,
}

/// The slow-request bound, once fixed, and what was counted above it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowRequests {
    /// The bucket bound above which a request is slow, seconds.
    bound: f64,
    /// The canary's totals above the bound.
    canary: Totals,
    /// The baseline's totals above the bound.
    baseline: Totals,
    /// The e-process.
    test: RateRatioState,
}

impl LatencyComparison {
    /// The slow bound to fix now, from the baseline's buckets, if it can be fixed yet.
    fn bound_to_fix(&self, baseline: &[HistogramBucket]) -> Option<f64> {
        let stats_baseline = HistogramBucket::to_stats(baseline);
        let bound = match self.slow_above {
            // The policy's bound, rounded up to a bucket bound.
            Some(wanted) => histogram::smallest_bound_at_or_above(&stats_baseline, wanted),
            // The bucket bound just below the baseline's quantile: above it lie somewhat more
            // than 1 − q of the requests, so each request carries more evidence than at the
            // bound above the quantile (where, with coarse buckets, only a fraction of a
            // percent may lie).
            None if total(baseline) >= REQUESTS_TO_FIX_SLOW_THRESHOLD => {
                let quantile = histogram::histogram_quantile(self.quantile, &stats_baseline);
                bound_below(&stats_baseline, quantile)
                    .or_else(|| histogram::smallest_bound_at_or_above(&stats_baseline, quantile))
            }
            None => None,
        };
        bound.filter(|b| b.is_finite())
    }
}

impl Evaluate for LatencyComparison {
    type Memory = LatencyComparisonMemory;

    fn start(&self) -> LatencyComparisonMemory {
        LatencyComparisonMemory::default()
    }

    fn observe(
        &self,
        memory: &mut LatencyComparisonMemory,
        observation: &CheckObservation,
    ) -> Result<Option<f64>, String> {
        let CheckObservation::Histogram { canary, baseline } = observation else {
            return Err(unexpected("latency", observation));
        };
        check_buckets("canary", canary)?;
        check_buckets("baseline", baseline)?;
        match &mut memory.slow {
            None => {
                if let Some(bound) = self.bound_to_fix(baseline) {
                    // Evidence counts from here on: what fixed the bound is not reused.
                    memory.slow = Some(SlowRequests {
                        bound,
                        canary: slow_totals(canary, bound)?,
                        baseline: slow_totals(baseline, bound)?,
                        test: self.test.start(),
                    });
                }
            }
            Some(slow) => {
                let canary_step = slow.canary.advance(slow_totals(canary, slow.bound)?);
                let baseline_step = slow.baseline.advance(slow_totals(baseline, slow.bound)?);
                self.test
                    .update(&mut slow.test, canary_step, baseline_step)
                    .map_err(|e| e.to_string())?;
            }
        }
        memory.baseline_requests = total(baseline);
        Ok(Some(total(canary)))
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut LatencyComparisonMemory,
        _moment: Moment,
    ) -> CheckResult {
        match &memory.slow {
            None => subject.result(
                Verdict::NoData,
                format!(
                    "waiting for {REQUESTS_TO_FIX_SLOW_THRESHOLD} baseline requests to fix the slow-request bound (baseline has {})",
                    memory.baseline_requests
                ),
                subject.no_evidence(),
            ),
            Some(slow) => {
                let mut result = assess_comparison(
                    subject,
                    &self.test,
                    slow.canary,
                    slow.baseline,
                    Some(&slow.test),
                    "canary/baseline ratio of requests slower than the bound",
                );
                result.reason = format!(
                    "{} (slow means above {}s)",
                    result.reason,
                    fmt_num(slow.bound)
                );
                result
            }
        }
    }
}

/// The largest finite bucket bound strictly below `x` that has observations at or below it
/// (so the share above it is below 1 and the comparison has something to compare).
fn bound_below(buckets: &[histogram::Bucket], x: f64) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    buckets
        .iter()
        .filter(|b| b.upper_bound.is_finite() && b.upper_bound < x && b.count > 0.0)
        .map(|b| b.upper_bound)
        .fold(None, |best: Option<f64>, bound| {
            Some(best.map_or(bound, |b| b.max(bound)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Criterion;

    const BOUNDS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, f64::INFINITY];

    fn subject() -> Subject {
        Subject {
            name: "latency/baseline".to_owned(),
            check: "latency".to_owned(),
            criterion: Criterion::Baseline,
            kind: "latency",
            alpha: 0.005,
        }
    }

    fn histogram(n: f64, shares: [f64; 5]) -> Vec<HistogramBucket> {
        BOUNDS
            .iter()
            .zip(shares.iter().chain([1.0].iter()))
            .map(|(&le, share)| HistogramBucket {
                le,
                count: (n * share).round(),
            })
            .collect()
    }

    fn evaluator(slow_above: Option<f64>) -> LatencyComparison {
        LatencyComparison {
            quantile: 0.95,
            slow_above,
            test: RateRatioTest::new(0.0).unwrap(),
        }
    }

    /// Plays `ticks` ticks of 100 canary and 900 baseline requests each, with the given
    /// shares at or below each bound.
    fn play(
        evaluator: &LatencyComparison,
        ticks: u32,
        canary: [f64; 5],
        baseline: [f64; 5],
    ) -> (LatencyComparisonMemory, CheckResult) {
        let mut memory = evaluator.start();
        for k in 1..=ticks {
            let k = f64::from(k);
            let observation = CheckObservation::Histogram {
                canary: histogram(100.0 * k, canary),
                baseline: histogram(900.0 * k, baseline),
            };
            evaluator.observe(&mut memory, &observation).unwrap();
        }
        let result = evaluator.assess(&subject(), &mut memory, Moment::MidStep);
        (memory, result)
    }

    const HEALTHY: [f64; 5] = [0.5, 0.9, 0.97, 0.99, 1.0];
    const SLOW: [f64; 5] = [0.2, 0.5, 0.7, 0.9, 1.0];

    #[test]
    fn the_bound_waits_for_enough_baseline_requests() {
        let mut memory = evaluator(None).start();
        let observation = CheckObservation::Histogram {
            canary: histogram(10.0, HEALTHY),
            baseline: histogram(100.0, HEALTHY),
        };
        evaluator(None).observe(&mut memory, &observation).unwrap();
        let result = evaluator(None).assess(&subject(), &mut memory, Moment::MidStep);
        assert_eq!(result.verdict, Verdict::NoData);
        assert!(
            result.reason.contains("waiting for 200"),
            "{}",
            result.reason
        );
    }

    #[test]
    fn the_default_bound_is_the_bucket_bound_below_the_baseline_quantile() {
        // The baseline's p95 lies between 0.1 s and 0.25 s: the bound is 0.1 s.
        let (memory, result) = play(&evaluator(None), 5, HEALTHY, HEALTHY);
        assert_eq!(memory.slow.as_ref().map(|s| s.bound), Some(0.1));
        assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
        assert!(result.reason.contains("above 0.1s"), "{}", result.reason);
    }

    #[test]
    fn the_policy_bound_is_rounded_up_to_a_bucket_bound() {
        let (memory, _) = play(&evaluator(Some(0.3)), 2, HEALTHY, HEALTHY);
        assert_eq!(memory.slow.as_ref().map(|s| s.bound), Some(0.5));
    }

    #[test]
    fn a_slower_canary_fails() {
        let (_, result) = play(&evaluator(None), 10, SLOW, HEALTHY);
        assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
    }
}
