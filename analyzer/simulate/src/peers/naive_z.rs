//! A naive repeated test: a one-sided two-proportion z-test of the cumulative counts at
//! every tick, with no correction for looking again.

use canary_core::judge::REQUESTS_TO_FOCUS;
use canary_core::policy::Policy;
use canary_core::stats::{histogram_quantile, normal_quantile, smallest_bound_at_or_above};

use super::reads::stats_buckets;
use super::{Decision, Moment, Rule, RuleRun, comparison_criteria};
use crate::{Snapshot, VersionReading};

/// A one-sided two-proportion z-test of canary against baseline on the cumulative counts,
/// at every tick, rolling back the first time z exceeds the (1 − α) normal quantile: a
/// fixed-sample test used sequentially, with nothing paid for looking again. The error rate
/// is tested directly; latency on the share of requests slower than a bucket bound fixed as
/// canary's judge fixes it (the bucket holding the baseline's quantile, once the baseline has
/// served 200 requests), counted from then on. α is the policy's per-criterion α, the share
/// canary's criteria get.
#[derive(Clone, Debug, PartialEq)]
pub struct NaiveZ {
    /// One-sided level of each test.
    pub alpha: f64,
    /// Whether the error rate is tested.
    pub errors: bool,
    /// The latency quantile whose bucket defines "slow", if latency is tested.
    pub latency_quantile: Option<f64>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl NaiveZ {
    /// The z-test of `policy`'s comparison criteria (error rate, latency) at its
    /// per-criterion α.
    pub fn for_policy(policy: &Policy, bounds: &[f64]) -> NaiveZ {
        let (errors, latency) = comparison_criteria(policy);
        NaiveZ {
            alpha: policy.alpha_per_criterion(),
            errors,
            latency_quantile: latency,
            bounds: bounds.to_vec(),
        }
    }
}

struct NaiveZRun<'r> {
    rule: &'r NaiveZ,
    critical: f64,
    /// The slow bound and both versions' readings when it was fixed.
    slow: Option<(f64, VersionReading, VersionReading)>,
}

impl Rule for NaiveZ {
    fn name(&self) -> String {
        "naive repeated z-test".to_owned()
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        Box::new(NaiveZRun {
            rule: self,
            critical: normal_quantile(1.0 - self.alpha),
            slow: None,
        })
    }
}

/// z of the two-proportion test (pooled variance), 0 when it is undefined.
fn two_proportion_z(x1: f64, n1: f64, x2: f64, n2: f64) -> f64 {
    if n1 <= 0.0 || n2 <= 0.0 {
        return 0.0;
    }
    let pooled = (x1 + x2) / (n1 + n2);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    if variance <= 0.0 {
        return 0.0;
    }
    (x1 / n1 - x2 / n2) / variance.sqrt()
}

impl RuleRun for NaiveZRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], _moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        if rule.errors {
            let (c, b) = (&now.canary, &now.baseline);
            let z = two_proportion_z(c.errors, c.requests, b.errors, b.requests);
            if z > self.critical {
                return Decision::RollBack("errors".to_owned());
            }
        }
        if let Some(q) = rule.latency_quantile {
            match &self.slow {
                None if now.baseline.requests >= REQUESTS_TO_FOCUS => {
                    let buckets = stats_buckets(&now.baseline, &rule.bounds);
                    let wanted = histogram_quantile(q, &buckets);
                    if let Some(bound) =
                        smallest_bound_at_or_above(&buckets, wanted).filter(|b| b.is_finite())
                    {
                        self.slow = Some((bound, now.canary.clone(), now.baseline.clone()));
                    }
                }
                None => {}
                Some((bound, canary_then, baseline_then)) => {
                    let c = now.canary.since(canary_then);
                    let b = now.baseline.since(baseline_then);
                    let z = two_proportion_z(
                        c.slower_than(*bound, &rule.bounds),
                        c.requests,
                        b.slower_than(*bound, &rule.bounds),
                        b.requests,
                    );
                    if z > self.critical {
                        return Decision::RollBack("latency".to_owned());
                    }
                }
            }
        }
        Decision::Continue
    }
}
