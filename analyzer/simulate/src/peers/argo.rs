//! Argo Rollouts' AnalysisRun: one measurement per `interval`, `successCondition`,
//! `failureLimit` cumulative failures.

use std::time::Duration;

use super::reads::{irate_window, on_multiple, window};
use super::{Decision, Moment, Rule, RuleRun};
use crate::Snapshot;

/// An Argo Rollouts background AnalysisRun, as documented at
/// <https://argo-rollouts.readthedocs.io/en/stable/features/analysis/> and as
/// `assessMetricFailureInconclusiveOrError` in `analysis/analysis.go` (argoproj/argo-rollouts)
/// judges it.
///
/// Every `interval` one measurement per metric: the success-rate query of the documented
/// example (`sum(irate(requests{code!~"5.*"}[5m])) / sum(irate(requests[5m]))`) against
/// `successCondition: result[0] >= min`, and optionally a latency quantile against
/// `result[0] <= max`. A measurement whose condition is false is `Failed` (a NaN result, no
/// canary traffic, is false too); the analysis fails, and the rollout aborts, as soon as a
/// metric's failed measurements exceed `failureLimit` (cumulative, not consecutive). The
/// documented example: `interval: 5m`, `successCondition: result[0] >= 0.95`,
/// `failureLimit: 3`. Measurements start one interval in (as with `initialDelay` equal to the
/// interval: the first measurement at the analysis' start sees no canary data), and an
/// `Inconclusive` measurement cannot happen with a `successCondition` alone. Queries that
/// return an empty vector (measurement `Error`, `consecutiveErrorLimit`, default 4) do not
/// occur here: the simulated series always exist.
#[derive(Clone, Debug, PartialEq)]
pub struct Argo {
    /// `docs` or `tuned`.
    pub label: String,
    /// The metric's `interval`.
    pub interval: Duration,
    /// The query's range (`[5m]`).
    pub window: Duration,
    /// Whether the query uses `irate()` (the last two samples) rather than `rate()`.
    pub irate: bool,
    /// `successCondition: result[0] >= min` on the success rate, a fraction.
    pub min_success: Option<f64>,
    /// `successCondition: result[0] <= max` on `histogram_quantile(q, …)`: (q, max seconds).
    pub max_latency: Option<(f64, f64)>,
    /// `failureLimit`.
    pub failure_limit: u32,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl Argo {
    /// The documented example: success rate (irate over 5 m) ≥ 0.95 every 5 m, failureLimit 3.
    pub fn docs(bounds: &[f64]) -> Argo {
        Argo {
            label: "docs".to_owned(),
            interval: Duration::from_secs(300),
            window: Duration::from_secs(300),
            irate: true,
            min_success: Some(0.95),
            max_latency: None,
            failure_limit: 3,
            bounds: bounds.to_vec(),
        }
    }
}

struct ArgoRun<'r> {
    rule: &'r Argo,
    failed: [u32; 2],
}

impl Rule for Argo {
    fn name(&self) -> String {
        format!("Argo Rollouts ({})", self.label)
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        Box::new(ArgoRun {
            rule: self,
            failed: [0; 2],
        })
    }
}

impl RuleRun for ArgoRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], _moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        if !on_multiple(now, rule.interval) {
            return Decision::Continue;
        }
        let (canary, _) = if rule.irate {
            irate_window(reads, rule.window)
        } else {
            window(reads, rule.window)
        };
        if let Some(min) = rule.min_success {
            let success = 1.0 - canary.error_ratio();
            // `result[0] >= min` is false for NaN (no canary traffic): a failed measurement.
            if success.is_nan() || success < min {
                self.failed[0] += 1;
            }
        }
        if let Some((q, max)) = rule.max_latency {
            let latency = canary.quantile(q, &rule.bounds);
            if latency.is_nan() || latency > max {
                self.failed[1] += 1;
            }
        }
        match self.failed.iter().position(|&f| f > rule.failure_limit) {
            Some(metric) => Decision::RollBack(format!(
                "{}: failed > failureLimit",
                ["success-rate", "latency"][metric]
            )),
            None => Decision::Continue,
        }
    }
}
