//! Wald's SPRT told the true effect: the fewest requests any level-α test needs on average.

use canary_core::policy::Policy;
use canary_core::stats::normal_quantile;

use super::{Decision, Moment, Rule, RuleRun, comparison_criteria};
use crate::world::latency_cdf;
use crate::{Regression, Scenario, Snapshot, VersionReading};

/// Wald's sequential probability ratio test of "no regression" against the scenario's true
/// regression, which it is told: the conditional-binomial likelihood ratio of canary's own
/// model (given a tick's events, each is the canary's with probability q(θ), see
/// `canary_core::stats::rate_ratio`) at the true relative risk θ₁ against θ = 1, rolling back
/// when it reaches 1/α. By Wald & Wolfowitz's optimality theorem no test at level α needs
/// fewer events on average when θ = θ₁; canary's mixture over θ pays for not knowing θ₁.
/// Errors are tested when the error rate differs; latency on the share of requests slower
/// than the bucket bound just below the baseline's true quantile (the top of the bounds canary's
/// judge focuses on), counted from the start; [`super::SprtHistogramOracle`] uses every bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct SprtOracle {
    /// The level (the policy's per-criterion α).
    pub alpha: f64,
    /// The true canary/baseline error-rate ratio, when it is not 1.
    pub error_ratio: Option<f64>,
    /// The slow bound and the true ratio of slow shares, when it is not 1.
    pub latency: Option<(f64, f64)>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl SprtOracle {
    /// The oracle for `scenario`'s regression, testing what `policy` compares, at the
    /// policy's per-criterion α. `None` when the canary is healthy (nothing to be told).
    pub fn for_scenario(policy: &Policy, scenario: &Scenario) -> Option<SprtOracle> {
        let (errors, latency_quantile) = comparison_criteria(policy);
        let traffic = &scenario.traffic;
        let regression = &scenario.canary;
        let base = traffic.error_rate;
        let canary_rate = base * regression.error_factor + regression.error_add;
        let error_ratio = (errors && base > 0.0 && canary_rate > base).then(|| canary_rate / base);
        let latency = latency_quantile.and_then(|q| {
            let true_quantile =
                traffic.latency_median * (traffic.latency_sigma * normal_quantile(q)).exp();
            let bound = *traffic
                .buckets
                .iter()
                .rev()
                .find(|&&b| b < true_quantile)
                .or_else(|| traffic.buckets.iter().find(|&&b| b >= true_quantile))?;
            let i = traffic.buckets.iter().position(|&b| b == bound)?;
            let canary = 1.0 - latency_cdf(scenario, regression)[i];
            let baseline = 1.0 - latency_cdf(scenario, &Regression::none())[i];
            (baseline > 0.0 && canary > baseline * 1.000_001).then(|| (bound, canary / baseline))
        });
        (error_ratio.is_some() || latency.is_some()).then(|| SprtOracle {
            alpha: policy.alpha_per_criterion(),
            error_ratio,
            latency,
            bounds: traffic.buckets.clone(),
        })
    }
}

struct SprtRun<'r> {
    rule: &'r SprtOracle,
    /// Log-likelihood ratios: errors, latency.
    llr: [f64; 2],
    /// Cumulative (trials, events) per version and metric, never decreasing.
    seen: [[(f64, f64); 2]; 2],
}

impl Rule for SprtOracle {
    fn name(&self) -> String {
        "SPRT oracle (knows the effect)".to_owned()
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        Box::new(SprtRun {
            rule: self,
            llr: [0.0; 2],
            seen: [[(0.0, 0.0); 2]; 2],
        })
    }
}

impl SprtRun<'_> {
    /// Adds the increments of metric `m` and tells whether the test rejects.
    fn update(&mut self, m: usize, theta: f64, canary: (f64, f64), baseline: (f64, f64)) -> bool {
        let mut step = [(0.0, 0.0); 2];
        for (v, now) in [canary, baseline].into_iter().enumerate() {
            let seen = &mut self.seen[m][v];
            let trials = (now.0 - seen.0).max(0.0);
            let events = (now.1 - seen.1).max(0.0).min(trials);
            seen.0 = seen.0.max(now.0);
            seen.1 = seen.1.max(now.1);
            step[v] = (trials, events);
        }
        let [(n_c, x_c), (n_b, x_b)] = step;
        let events = x_c + x_b;
        if n_c > 0.0 && n_b > 0.0 && events > 0.0 {
            let q0 = n_c / (n_c + n_b);
            self.llr[m] += x_c * theta.ln() - events * (q0 * (theta - 1.0)).ln_1p();
        }
        self.llr[m] >= -self.rule.alpha.ln()
    }
}

impl RuleRun for SprtRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], _moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        let (c, b) = (&now.canary, &now.baseline);
        if let Some(theta) = rule.error_ratio
            && self.update(0, theta, (c.requests, c.errors), (b.requests, b.errors))
        {
            return Decision::RollBack("errors".to_owned());
        }
        if let Some((bound, theta)) = rule.latency {
            let slow = |r: &VersionReading| (r.requests, r.slower_than(bound, &rule.bounds));
            if self.update(1, theta, slow(c), slow(b)) {
                return Decision::RollBack("latency".to_owned());
            }
        }
        Decision::Continue
    }
}
