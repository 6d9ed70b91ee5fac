//! Kayenta's NetflixACAJudge: Mann–Whitney at 98 % confidence with the 0.25 tolerance on
//! per-minute data points, growing windows re-judged, score thresholds.

use std::time::Duration;

use canary_core::stats::{Alternative, hodges_lehmann};

use super::reads::{on_multiple, window};
use super::{Decision, Moment, Rule, RuleRun};
use crate::Snapshot;

/// Kayenta's NetflixACAJudge in a Spinnaker canary stage, as described at
/// <https://spinnaker.io/docs/guides/user/canary/judge/> and implemented in
/// `NetflixACAJudge.scala`, `MannWhitneyClassifier.scala`, `IQRDetector.scala` and
/// `WeightedSumScorer.scala` (spinnaker/kayenta), with the stage's early failure of
/// `MonitorKayentaCanaryTask` (spinnaker/orca, `orca-kayenta`).
///
/// Each metric is a time series of one data point per `step` (Kayenta's query resolution)
/// for each version: here the error ratio and a latency quantile over each step, both with
/// `direction: increase`. Every `interval` the judge runs on every data point since the
/// start (the window grows; nothing corrects for judging it again): per metric, NaNs are
/// removed, then outliers (`IQRDetector(factor = 3.0, reduceSensitivity = true)`); a metric
/// is `High` when the Mann–Whitney (Hodges–Lehmann) 98 % confidence interval of the shift
/// canary − baseline lies above `0.25 × |estimate|` (the "tolerance") and the ratio of means
/// is at least `allowedIncrease` (default 1.0); otherwise `Pass` (`NoData` when a version has
/// no point). Each metric is its own group, of equal weight; the score is the weighted share
/// of passing groups, a group without data counting 0. A run scoring at or below `marginal`
/// fails the stage at once; the last run must also reach `pass`. Kayenta has no built-in
/// score thresholds; 75/95 is a common pair, and with two metrics any marginal in [50, 100)
/// and pass in (50, 100] decide alike. Spinnaker's help suggests an interval of at least
/// 30 minutes, longer than the simulated rollout: the `docs` variant judges at each step's
/// end.
#[derive(Clone, Debug, PartialEq)]
pub struct Kayenta {
    /// `docs` or `tuned`.
    pub label: String,
    /// `canaryAnalysisIntervalMins`: how often the judge runs.
    pub interval: Duration,
    /// `step`: the data points' resolution.
    pub step: Duration,
    /// The confidence level of the Mann–Whitney interval (0.98 in NetflixACAJudge).
    pub confidence: f64,
    /// The tolerance (0.25 in NetflixACAJudge).
    pub tolerance: f64,
    /// `effectSize.allowedIncrease` of the error-ratio metric (default 1.0).
    pub allowed_increase_errors: f64,
    /// `effectSize.allowedIncrease` of the latency metric (default 1.0).
    pub allowed_increase_latency: f64,
    /// `scoreThresholds.marginal`.
    pub marginal: f64,
    /// `scoreThresholds.pass`.
    pub pass: f64,
    /// Whether the error ratio is a metric.
    pub errors: bool,
    /// The latency quantile metric, if any.
    pub latency_quantile: Option<f64>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl Kayenta {
    /// NetflixACAJudge's constants, 1-minute data points, judged every `interval`, error
    /// ratio and p95 latency, thresholds 75/95.
    pub fn docs(interval: Duration, bounds: &[f64]) -> Kayenta {
        Kayenta {
            label: "docs".to_owned(),
            interval,
            step: Duration::from_secs(60),
            confidence: 0.98,
            tolerance: 0.25,
            allowed_increase_errors: 1.0,
            allowed_increase_latency: 1.0,
            marginal: 75.0,
            pass: 95.0,
            errors: true,
            latency_quantile: Some(0.95),
            bounds: bounds.to_vec(),
        }
    }
}

/// A metric's classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Classification {
    Pass,
    High,
    NoData,
}

struct KayentaRun<'r> {
    rule: &'r Kayenta,
    /// Per metric, its allowed increase and the data points of canary and baseline.
    points: Vec<(f64, Vec<f64>, Vec<f64>)>,
    last_judged: Option<f64>,
}

impl Rule for Kayenta {
    fn name(&self) -> String {
        format!("Kayenta ({})", self.label)
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        let mut points = Vec::new();
        if self.errors {
            points.push((self.allowed_increase_errors, Vec::new(), Vec::new()));
        }
        if self.latency_quantile.is_some() {
            points.push((self.allowed_increase_latency, Vec::new(), Vec::new()));
        }
        Box::new(KayentaRun {
            rule: self,
            points,
            last_judged: None,
        })
    }
}

impl KayentaRun<'_> {
    fn score(&self) -> f64 {
        let rule = self.rule;
        let weight = 100.0 / self.points.len().max(1) as f64;
        self.points
            .iter()
            .map(
                |(allowed, canary, baseline)| match classify(rule, *allowed, canary, baseline) {
                    Classification::Pass => weight,
                    Classification::High | Classification::NoData => 0.0,
                },
            )
            .sum()
    }
}

impl RuleRun for KayentaRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        if on_multiple(now, rule.step) {
            let (canary, baseline) = window(reads, rule.step);
            let mut metric = 0;
            if rule.errors {
                self.points[metric].1.push(canary.error_ratio());
                self.points[metric].2.push(baseline.error_ratio());
                metric += 1;
            }
            if let Some(q) = rule.latency_quantile {
                self.points[metric].1.push(canary.quantile(q, &rule.bounds));
                self.points[metric]
                    .2
                    .push(baseline.quantile(q, &rule.bounds));
            }
        }
        let last = moment == Moment::LastStepEnd;
        let judge = (on_multiple(now, rule.interval) || last)
            && self.last_judged != Some(now.elapsed_seconds);
        if !judge {
            return Decision::Continue;
        }
        self.last_judged = Some(now.elapsed_seconds);
        let score = self.score();
        if score <= rule.marginal {
            Decision::RollBack("canary score not above the marginal threshold".to_owned())
        } else if last && score < rule.pass {
            Decision::RollBack("final canary score below the pass threshold".to_owned())
        } else {
            Decision::Continue
        }
    }
}

/// MannWhitneyClassifier.classify for `direction: increase`, after NetflixACAJudge's NaN and
/// outlier removal.
fn classify(
    rule: &Kayenta,
    allowed_increase: f64,
    canary: &[f64],
    baseline: &[f64],
) -> Classification {
    let canary = without_outliers(canary);
    let baseline = without_outliers(baseline);
    if canary.is_empty() || baseline.is_empty() {
        return Classification::NoData;
    }
    let mut sorted_c = canary.clone();
    let mut sorted_b = baseline.clone();
    sorted_c.sort_by(f64::total_cmp);
    sorted_b.sort_by(f64::total_cmp);
    if sorted_c == sorted_b {
        return Classification::Pass;
    }
    let first = canary[0];
    if canary.iter().chain(&baseline).all(|&v| v == first) {
        return Classification::Pass;
    }
    // Kayenta adds tiny Gaussian noise when each sample holds a single value; the interval is
    // then the difference itself.
    let single = |s: &[f64]| s.iter().all(|&v| v == s[0]);
    let (estimate, lower) = if single(&canary) && single(&baseline) {
        (canary[0] - baseline[0], canary[0] - baseline[0])
    } else {
        match hodges_lehmann(&canary, &baseline, rule.confidence, Alternative::TwoSided) {
            Ok(shift) => (shift.estimate, shift.lower),
            // Kayenta classifies a failed computation as Error, which scores like no data.
            Err(_) => return Classification::NoData,
        }
    };
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let deviation = if mean(&baseline) == 0.0 {
        1.0
    } else {
        mean(&canary) / mean(&baseline)
    };
    if lower > rule.tolerance * estimate.abs() && deviation >= allowed_increase {
        Classification::High
    } else {
        Classification::Pass
    }
}

/// NaNs removed, then `IQRDetector(factor = 3.0, reduceSensitivity = true)`: values outside
/// [min(p1, Q1 − 3·IQR), max(p99, Q3 + 3·IQR)] are dropped.
fn without_outliers(values: &[f64]) -> Vec<f64> {
    let values: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if values.len() < 2 {
        return values;
    }
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let p = |q: f64| percentile(&sorted, q);
    let (q1, q3) = (p(25.0), p(75.0));
    let iqr = q3 - q1;
    let lower = p(1.0).min(q1 - 3.0 * iqr);
    let upper = p(99.0).max(q3 + 3.0 * iqr);
    values
        .into_iter()
        .filter(|&v| v >= lower && v <= upper)
        .collect()
}

/// Apache Commons Math's default percentile (position p(n + 1)/100, interpolated), which
/// Kayenta's statistics use.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let position = p * (n as f64 + 1.0) / 100.0;
    if position < 1.0 {
        return sorted[0];
    }
    if position >= n as f64 {
        return sorted[n - 1];
    }
    let below = position.floor();
    let d = position - below;
    let lower = sorted[below as usize - 1];
    lower + d * (sorted[below as usize] - lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_BUCKETS;

    #[test]
    fn kayenta_classifies_like_the_netflix_judge() {
        let rule = Kayenta::docs(Duration::from_secs(300), &DEFAULT_BUCKETS);
        let baseline = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98];
        let same: Vec<f64> = baseline.iter().map(|v| v + 0.001).collect();
        let worse: Vec<f64> = baseline.iter().map(|v| v * 2.0).collect();
        assert_eq!(classify(&rule, 1.0, &same, &baseline), Classification::Pass);
        assert_eq!(
            classify(&rule, 1.0, &worse, &baseline),
            Classification::High
        );
        assert_eq!(
            classify(&rule, 1.0, &[f64::NAN], &baseline),
            Classification::NoData
        );
        // Lower is never a failure with direction: increase.
        let better: Vec<f64> = baseline.iter().map(|v| v / 2.0).collect();
        assert_eq!(
            classify(&rule, 1.0, &better, &baseline),
            Classification::Pass
        );
        // An outlier 100× the rest is dropped before the test (with enough points that the
        // 99th percentile is not the outlier itself).
        let mut spiky: Vec<f64> = (0..199).map(|i| 1.0 + f64::from(i % 7) / 100.0).collect();
        spiky.push(100.0);
        assert_eq!(without_outliers(&spiky).len(), 199);
        assert_eq!(without_outliers(&baseline).len(), baseline.len());
        // With allowedIncrease 2.5 a doubling passes.
        assert_eq!(
            classify(&rule, 2.5, &worse, &baseline),
            Classification::Pass
        );
    }
}
