//! Wald's SPRT on every bucket of the histogram, told the true latency distributions: the
//! fairest reference for a latency comparison that looks at several bucket bounds.

use canary_core::policy::Policy;

use super::{Decision, Moment, Rule, RuleRun, comparison_criteria};
use crate::world::latency_cdf;
use crate::{Regression, Scenario, Snapshot, VersionReading};

/// Wald's sequential probability ratio test of "the canary's latencies are distributed as
/// the baseline's" against the scenario's true canary distribution, which it is told, on the
/// counts of every bucket (between consecutive bounds, and above the last). Given a tick's
/// requests in bucket k from both versions, each is the canary's with probability
/// q(θ_k) = θ_k ρ / (θ_k ρ + 1 − ρ), θ_k the ratio of the canary's probability of bucket k to
/// the baseline's (the conditional-binomial model of `canary_core::stats::rate_ratio`, per
/// bucket); the log-likelihood ratio sums over buckets and rolls back at 1/α. It uses all the
/// histogram says, where [`super::SprtOracle`] uses the one bound canary's judge fixed
/// before it compared several.
#[derive(Clone, Debug, PartialEq)]
pub struct SprtHistogramOracle {
    /// The level (the policy's per-criterion α).
    pub alpha: f64,
    /// ln θ_k per bucket: one per finite bound (requests at or below it and above the bound
    /// before), then the bucket above the last bound.
    pub log_ratios: Vec<f64>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl SprtHistogramOracle {
    /// The oracle for `scenario`'s latency regression when `policy` compares latency with
    /// the baseline; `None` when the latencies are the same (nothing to be told).
    pub fn for_scenario(policy: &Policy, scenario: &Scenario) -> Option<SprtHistogramOracle> {
        let (_, latency_quantile) = comparison_criteria(policy);
        latency_quantile?;
        let buckets = |regression: &Regression| -> Vec<f64> {
            let cdf = latency_cdf(scenario, regression);
            let mut below = 0.0;
            let mut out = Vec::with_capacity(cdf.len() + 1);
            for p in cdf {
                out.push((p - below).max(0.0));
                below = p;
            }
            out.push((1.0 - below).max(0.0));
            out
        };
        let canary = buckets(&scenario.canary);
        let baseline = buckets(&Regression::none());
        if canary
            .iter()
            .zip(&baseline)
            .all(|(c, b)| (c - b).abs() <= 1e-9 * b.max(1e-300))
        {
            return None;
        }
        let log_ratios = canary
            .iter()
            .zip(&baseline)
            .map(|(&c, &b)| {
                // A bucket neither version can reach carries no evidence; one only the
                // canary can reach is capped (a request there is decisive but not infinite).
                if b <= 0.0 && c <= 0.0 {
                    0.0
                } else {
                    (c.max(1e-12) / b.max(1e-12)).ln()
                }
            })
            .collect();
        Some(SprtHistogramOracle {
            alpha: policy.alpha_per_criterion(),
            log_ratios,
            bounds: scenario.traffic.buckets.clone(),
        })
    }
}

struct HistogramRun<'r> {
    rule: &'r SprtHistogramOracle,
    llr: f64,
    /// Cumulative requests per bucket, for each version, as last read (never decreasing).
    seen: [Vec<f64>; 2],
}

impl Rule for SprtHistogramOracle {
    fn name(&self) -> String {
        "Whole-histogram SPRT oracle (knows the effect)".to_owned()
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        let zeros = vec![0.0; self.log_ratios.len()];
        Box::new(HistogramRun {
            rule: self,
            llr: 0.0,
            seen: [zeros.clone(), zeros],
        })
    }
}

/// Requests per bucket (between consecutive bounds, then above the last), cumulative.
fn bucket_counts(reading: &VersionReading) -> Vec<f64> {
    let mut below = 0.0;
    let mut out = Vec::with_capacity(reading.buckets.len() + 1);
    for &at_or_below in &reading.buckets {
        out.push((at_or_below - below).max(0.0));
        below = below.max(at_or_below);
    }
    out.push((reading.requests - below).max(0.0));
    out
}

impl RuleRun for HistogramRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], _moment: Moment) -> Decision {
        let now = reads.last().expect("a read");
        let mut step = [Vec::new(), Vec::new()];
        for (v, reading) in [&now.canary, &now.baseline].into_iter().enumerate() {
            let counts = bucket_counts(reading);
            step[v] = counts
                .iter()
                .zip(&self.seen[v])
                .map(|(now, seen)| (now - seen).max(0.0))
                .collect();
            for (seen, now) in self.seen[v].iter_mut().zip(&counts) {
                *seen = seen.max(*now);
            }
        }
        let (n_c, n_b): (f64, f64) = (step[0].iter().sum(), step[1].iter().sum());
        if n_c > 0.0 && n_b > 0.0 {
            let rho = n_c / (n_c + n_b);
            for (k, &log_theta) in self.rule.log_ratios.iter().enumerate() {
                let (x_c, x_b) = (step[0][k], step[1][k]);
                let events = x_c + x_b;
                if events > 0.0 {
                    self.llr += x_c * log_theta - events * (rho * log_theta.exp_m1()).ln_1p();
                }
            }
        }
        if self.llr >= -self.rule.alpha.ln() {
            Decision::RollBack("latency".to_owned())
        } else {
            Decision::Continue
        }
    }
}
