//! `latency` with `slo`: the canary's quantile against an absolute bound.
//!
//! "p95 ≤ 500 ms" means at most 5 % of requests are slower than 500 ms. The share of canary
//! requests above the smallest bucket bound at or above the latency bound is held to `1 − q`
//! with the beta-binomial confidence sequence (if that share is above `1 − q` with confidence,
//! the quantile is above the bound with confidence): that fails fast. The promotion gate is the
//! `histogram_quantile` estimate itself, as the team's dashboards compute it. An absolute
//! bound is about the canary alone: the baseline's half of the reading is not looked at.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::evaluator::{Evaluate, Subject, Unusable, unexpected};
use super::memory::{Totals, check_buckets, total};
use super::verdict::{CheckResult, Evidence, Moment, Verdict, fmt_num};
use crate::observation::{CheckObservation, HistogramBucket};
use crate::policy::AbsoluteBound;
use crate::stats::{binomial_cs, histogram};

/// The evaluator of a latency bound.
#[derive(Clone, Debug)]
pub(crate) struct LatencyBound {
    /// The quantile, in (0, 1).
    pub(crate) quantile: f64,
    /// The bound on it, in seconds.
    pub(crate) bound: AbsoluteBound,
}

/// What a latency bound remembers: the canary's latest cumulative buckets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyBoundMemory {
    canary: Vec<HistogramBucket>,
}

impl Evaluate for LatencyBound {
    type Memory = LatencyBoundMemory;

    fn start(&self) -> LatencyBoundMemory {
        LatencyBoundMemory::default()
    }

    fn observe(
        &self,
        memory: &mut LatencyBoundMemory,
        observation: &CheckObservation,
        _at: Timestamp,
    ) -> Result<Option<f64>, Unusable> {
        let CheckObservation::Histogram { canary, .. } = observation else {
            return Err(unexpected("latency", observation));
        };
        check_buckets("canary", canary)?;
        memory.canary.clone_from(canary);
        Ok(Some(total(canary)))
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut LatencyBoundMemory,
        moment: Moment,
    ) -> CheckResult {
        let bound = self.bound;
        let quantile = self.quantile;
        let stats = HistogramBucket::to_stats(&memory.canary);
        let estimate = histogram::histogram_quantile(quantile, &stats);
        let n = total(&memory.canary);
        let tail = 1.0 - quantile;
        // Two confidence sequences (fail-fast bound and max) share the criterion's α.
        let looks = if bound.rollback_above.is_some() {
            2.0
        } else {
            1.0
        };
        let alpha = subject.alpha / looks;
        let lower_share_above = |limit: f64| -> Option<(f64, Totals, f64)> {
            let bucket =
                histogram::smallest_bound_at_or_above(&stats, limit).filter(|b| b.is_finite())?;
            let above = histogram::count_above(&stats, bucket)?;
            let totals = Totals::from_reading(n, above.max(0.0)).ok()?;
            let (lower, _) = binomial_cs::interval(totals.events, totals.trials, alpha).ok()?;
            Some((lower, totals, bucket))
        };
        let mut evidence = Evidence {
            test: "beta-binomial confidence sequence on the share of requests above the bound's bucket (Howard et al. 2021); gate: histogram_quantile".to_owned(),
            measure: format!("canary p{} latency (s)", fmt_num(quantile * 100.0)),
            canary_n: Some(n.round() as u64),
            estimate: (!estimate.is_nan()).then_some(estimate),
            confidence: Some(1.0 - alpha),
            threshold: Some(bound.max),
            alpha: subject.alpha,
            ..Evidence::default()
        };
        let mut judged = vec![bound.fail_fast_bound()];
        if bound.rollback_above.is_some() && moment == Moment::StepEnd {
            judged.push(bound.max);
        }
        for limit in judged {
            if let Some((lower, totals, bucket)) = lower_share_above(limit) {
                evidence.canary_events = Some(totals.events);
                if lower > tail {
                    return subject.result(
                        Verdict::Fail,
                        format!(
                            "at least {} % of canary requests are slower than {}s (more than {} %): the quantile is above {}s with confidence",
                            fmt_num(lower * 100.0),
                            fmt_num(bucket),
                            fmt_num(tail * 100.0),
                            fmt_num(limit)
                        ),
                        Evidence {
                            threshold: Some(limit),
                            ..evidence
                        },
                    );
                }
            }
        }
        if n <= 0.0 {
            return subject.result(Verdict::NoData, "no canary requests yet", evidence);
        }
        // When more than 1 − q of the requests lie above the highest finite bucket, the
        // quantile is somewhere beyond it (histogram_quantile then answers that bucket's bound,
        // a floor): never a pass on it.
        let top = stats
            .iter()
            .filter(|b| b.upper_bound.is_finite())
            .map(|b| b.upper_bound)
            .fold(f64::NEG_INFINITY, f64::max);
        if top.is_finite()
            && let Some(above) = histogram::count_above(&stats, top)
            && above > tail * n
        {
            return subject.result(
                Verdict::Inconclusive,
                format!(
                    "the canary's p{} is beyond the histogram's highest finite bucket ({}s): its value is not known",
                    fmt_num(quantile * 100.0),
                    fmt_num(top)
                ),
                evidence,
            );
        }
        if estimate.is_nan() {
            subject.result(Verdict::NoData, "no canary requests yet", evidence)
        } else if estimate <= bound.max {
            subject.result(
                Verdict::Pass,
                format!(
                    "estimate {}s is within {}s",
                    fmt_num(estimate),
                    fmt_num(bound.max)
                ),
                evidence,
            )
        } else {
            subject.result(
                Verdict::Inconclusive,
                format!(
                    "estimate {}s is above {}s, not yet with confidence",
                    fmt_num(estimate),
                    fmt_num(bound.max)
                ),
                evidence,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::BaselineData;
    use crate::policy::Criterion;

    const BOUNDS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, f64::INFINITY];

    fn subject() -> Subject {
        Subject {
            name: "latency/slo".to_owned(),
            check: "latency".to_owned(),
            criterion: Criterion::Slo,
            kind: "latency",
            alpha: 0.005,
        }
    }

    /// Cumulative buckets of `n` requests with the given shares at or below each bound.
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

    fn judge(bound: AbsoluteBound, canary: Vec<HistogramBucket>, moment: Moment) -> CheckResult {
        let evaluator = LatencyBound {
            quantile: 0.95,
            bound,
        };
        let mut memory = evaluator.start();
        let observation = CheckObservation::Histogram {
            baseline: BaselineData::Missing("no baseline series".to_owned()),
            canary,
        };
        evaluator
            .observe(&mut memory, &observation, Timestamp::UNIX_EPOCH)
            .unwrap();
        evaluator.assess(&subject(), &mut memory, moment)
    }

    fn max(max: f64) -> AbsoluteBound {
        AbsoluteBound {
            max,
            rollback_above: None,
        }
    }

    #[test]
    fn a_quantile_within_the_bound_passes_on_its_estimate() {
        let h = histogram(2000.0, [0.5, 0.9, 0.99, 1.0, 1.0]);
        let result = judge(max(0.5), h, Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
        assert!(result.evidence.estimate.unwrap() < 0.25);
    }

    #[test]
    fn a_quantile_clearly_above_the_bound_fails() {
        // 30 % of requests above 0.5 s: p95 is above 0.5 s with confidence.
        let h = histogram(2000.0, [0.2, 0.4, 0.6, 0.7, 0.9]);
        let result = judge(max(0.5), h, Moment::MidStep);
        assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
        assert_eq!(result.evidence.threshold, Some(0.5));
    }

    #[test]
    fn a_quantile_beyond_the_highest_finite_bucket_is_never_a_pass() {
        let h = histogram(2000.0, [0.5, 0.6, 0.7, 0.8, 0.9]);
        let result = judge(max(5.0), h, Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::Inconclusive, "{}", result.reason);
        assert!(
            result.reason.contains("highest finite bucket"),
            "{}",
            result.reason
        );
    }

    #[test]
    fn an_empty_histogram_is_no_data() {
        let h = histogram(0.0, [0.0; 5]);
        let result = judge(max(0.5), h, Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::NoData);
    }

    #[test]
    fn a_histogram_without_inf_is_refused() {
        let evaluator = LatencyBound {
            quantile: 0.95,
            bound: max(0.5),
        };
        let mut memory = evaluator.start();
        let bad = vec![HistogramBucket {
            le: 0.1,
            count: 1.0,
        }];
        let observation = CheckObservation::Histogram {
            canary: bad.clone(),
            baseline: bad.into(),
        };
        assert!(
            evaluator
                .observe(&mut memory, &observation, Timestamp::UNIX_EPOCH)
                .is_err()
        );
    }
}
