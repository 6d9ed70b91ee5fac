//! Flagger's analysis: interval checks of `request-success-rate` and `request-duration`,
//! `threshold` failed checks (never reset), rollback at the next interval.

use std::time::Duration;

use super::reads::{on_multiple, window};
use super::{Decision, Moment, Rule, RuleRun};
use crate::Snapshot;

/// Flagger's canary analysis, as documented at <https://docs.flagger.app/usage/metrics> and
/// <https://docs.flagger.app/usage/deployment-strategies>, and as `advanceCanary` in
/// `pkg/controller/scheduler.go` (fluxcd/flagger) carries it out.
///
/// Every analysis `interval` Flagger first rolls back if the failed-check counter has
/// reached `threshold` (so the rollback comes one interval after the threshold-th failure);
/// otherwise it runs the metric checks: the builtin `request-success-rate` (the canary's
/// non-5xx share over the metric's `interval` window, in percent, must be ≥ `min`) and
/// `request-duration` (the canary's p99 from the histogram's buckets over its window, in
/// milliseconds, must be ≤ `max`). A check that fails, or finds no values (no canary traffic
/// in the window), adds one to the counter — which is never reset — and halts advancement
/// for that interval. The documented example: `interval: 1m`, `threshold: 5`,
/// `request-success-rate` `min: 99` and `request-duration` `max: 500` over `1m`.
///
/// Flagger's own progression (`stepWeight` every interval) is replaced by the policy's
/// steps; a halt holds the current step past its duration until a check passes.
#[derive(Clone, Debug, PartialEq)]
pub struct Flagger {
    /// `docs` or `tuned`, for the table.
    pub label: String,
    /// `analysis.interval`.
    pub interval: Duration,
    /// `analysis.threshold`: failed checks before rollback.
    pub threshold: u32,
    /// The metrics' `interval` (their query window).
    pub metric_window: Duration,
    /// `request-success-rate` `thresholdRange.min`, in percent (`None`: not checked).
    pub min_success_rate: Option<f64>,
    /// `request-duration` `thresholdRange.max` on the p99, in seconds (`None`: not checked).
    pub max_p99_seconds: Option<f64>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl Flagger {
    /// The documented example: every minute, 5 failed checks, success rate ≥ 99 %, p99 ≤
    /// 500 ms over 1 m.
    pub fn docs(bounds: &[f64]) -> Flagger {
        Flagger {
            label: "docs".to_owned(),
            interval: Duration::from_secs(60),
            threshold: 5,
            metric_window: Duration::from_secs(60),
            min_success_rate: Some(99.0),
            max_p99_seconds: Some(0.5),
            bounds: bounds.to_vec(),
        }
    }
}

struct FlaggerRun<'r> {
    rule: &'r Flagger,
    failed_checks: u32,
    halted: bool,
}

impl Rule for Flagger {
    fn name(&self) -> String {
        format!("Flagger ({})", self.label)
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        Box::new(FlaggerRun {
            rule: self,
            failed_checks: 0,
            halted: false,
        })
    }
}

impl RuleRun for FlaggerRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        if on_multiple(now, rule.interval) {
            if self.failed_checks >= rule.threshold {
                return Decision::RollBack("failed checks threshold reached".to_owned());
            }
            let (canary, _) = window(reads, rule.metric_window);
            let mut failed = false;
            if let Some(min) = rule.min_success_rate {
                let success = 100.0 * (1.0 - canary.error_ratio());
                // NaN (no traffic): "no values found", a failed check.
                failed |= success.is_nan() || success < min;
            }
            if let Some(max) = rule.max_p99_seconds {
                let p99 = canary.quantile(0.99, &rule.bounds);
                failed |= p99.is_nan() || p99 > max;
            }
            if failed {
                self.failed_checks += 1;
            }
            self.halted = failed;
        }
        match moment {
            Moment::Tick => Decision::Continue,
            Moment::StepEnd | Moment::LastStepEnd if self.halted => Decision::Hold,
            Moment::StepEnd | Moment::LastStepEnd => Decision::Continue,
        }
    }
}
