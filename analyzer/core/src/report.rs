//! The report every command writes: the contract of `--output json:PATH`, and the data the
//! markdown, JUnit and HTML renderers draw from.
//!
//! Top level: `verdict` (`pass`, `fail`, `inconclusive`, `error`, `interrupted`: a
//! [`RunVerdict`]) and `checks`, one object per
//! judged criterion with `name`, `verdict` and its `evidence` (test, sample sizes, estimate,
//! interval, p-value or e-value, threshold). A rollout adds `steps` and `weights`. The
//! `timeline` carries, per tick, what the charts plot: each check's canary and baseline value
//! over that tick's interval.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::judge::{CheckResult, Verdict};
use crate::observation::{CheckObservation, HistogramBucket, Reading, Tick};
use crate::policy::{CheckKind, Policy};
use crate::stats::histogram;

/// The verdict of a whole run, the report's top level: a check's [`Verdict`] says what the
/// evidence showed, this says how the run ended, and a run can end without a judgement (a
/// signal stopped it: `interrupted`, exit 130).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunVerdict {
    /// Passed, or promoted (exit 0).
    Pass,
    /// The canary was judged worse, or stopped by a hook or by hand (exit 1).
    Fail,
    /// Not enough evidence either way (exit 3).
    Inconclusive,
    /// The run could not be carried out: the metrics source, the gateway or a hook's
    /// configuration failed (exit 4, or 2 for a hook that cannot start).
    Error,
    /// A signal stopped the run (exit 130), whatever the evidence showed until then.
    Interrupted,
}

impl RunVerdict {
    /// The name used in reports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RunVerdict::Pass => "pass",
            RunVerdict::Fail => "fail",
            RunVerdict::Inconclusive => "inconclusive",
            RunVerdict::Error => "error",
            RunVerdict::Interrupted => "interrupted",
        }
    }
}

impl From<Verdict> for RunVerdict {
    /// The run's verdict when the judgement decided it: `nodata` counts as `inconclusive`.
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Pass => RunVerdict::Pass,
            Verdict::Fail => RunVerdict::Fail,
            Verdict::Inconclusive | Verdict::NoData => RunVerdict::Inconclusive,
            Verdict::Error => RunVerdict::Error,
        }
    }
}

impl std::fmt::Display for RunVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report of an analysis or a rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `pass`, `fail`, `inconclusive`, `error` or `interrupted`.
    pub verdict: RunVerdict,
    /// Why, in one sentence.
    pub reason: String,
    /// The process exit code this outcome maps to.
    pub exit_code: u8,
    /// `analyze` or `rollout`.
    pub command: String,
    /// The service.
    pub service: String,
    /// The policy file.
    pub policy: String,
    /// Where the evidence came from.
    pub source: String,
    /// The false-rollback budget of the policy, and of each criterion.
    pub alpha: f64,
    /// α of each criterion (`alpha` split across criteria).
    pub alpha_per_check: f64,
    /// Start of the analysed window or of the rollout.
    pub started_at: Timestamp,
    /// End of it.
    pub ended_at: Timestamp,
    /// When the verdict was reached, if before the end (a failure mid-step).
    pub decided_at: Option<Timestamp>,
    /// One result per criterion.
    pub checks: Vec<CheckResult>,
    /// Rollouts: the steps as they happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRecord>,
    /// Rollouts: every weight change, as read back from the router.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<WeightPoint>,
    /// Per tick, the values the charts plot.
    pub timeline: Vec<TimelinePoint>,
    /// Warnings passed on from the source, deduplicated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Rollouts promoted by `canary promote`: where, and what the analysis had not decided
    /// then (absent when the evidence promoted it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_by_hand: Option<crate::rollout::ManualPromotion>,
    /// Rollouts that were not promoted: how long the canary served traffic, in seconds,
    /// from its first weight above 0 until a weight of 0 was confirmed (or until the report,
    /// when it still serves: a rollback the gateway refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_exposed_seconds: Option<f64>,
}

/// One step of a rollout, as it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Index in the policy's steps.
    pub index: usize,
    /// Canary weight, percent.
    pub weight: u8,
    /// When the weight was set.
    pub started_at: Timestamp,
    /// When the step was decided.
    pub ended_at: Option<Timestamp>,
    /// `advance`, `extend`, `promote`, `rollback`, `hold`, or `running`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Canary requests seen in the step.
    pub canary_requests: Option<u64>,
    /// The share the router achieved of `weight`, when it can only approximate it (ready
    /// pods of a replica-count router); absent for routers that split exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved: Option<crate::ports::AchievedShare>,
    /// What a routed step sent to the canary instead of a weight (a header or cookie match,
    /// a mirror); `weight` is then 0, the weighted share of the requests that do not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::policy::StepRoute>,
}

/// A weight change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightPoint {
    /// When.
    pub at: Timestamp,
    /// The canary's weight, percent, as read back.
    pub weight: u8,
}

/// What the charts plot at one tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// The tick's time.
    pub at: Timestamp,
    /// The canary's weight then (rollouts).
    pub weight: Option<u8>,
    /// Per check: its canary and baseline value over the tick's interval.
    pub checks: BTreeMap<String, SeriesValue>,
}

/// A check's value for each version at one tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesValue {
    /// What is plotted, e.g. `error rate`, `p95 (s)`.
    pub measure: String,
    /// The canary's value.
    pub canary: Option<f64>,
    /// The baseline's value.
    pub baseline: Option<f64>,
}

/// The timeline point of `tick`: error rates and quantiles over the interval since
/// `previous` (differences of the cumulative readings), samples and values as read.
pub fn timeline_point(
    policy: &Policy,
    previous: Option<&Tick>,
    tick: &Tick,
    weight: Option<u8>,
) -> TimelinePoint {
    let mut checks = BTreeMap::new();
    for check in &policy.checks {
        let Some(Reading::Observed(now)) = tick.readings.get(&check.name) else {
            continue;
        };
        let before = previous.and_then(|p| match p.readings.get(&check.name) {
            Some(Reading::Observed(o)) => Some(o),
            _ => None,
        });
        let value = match (&check.kind, now, before) {
            (
                CheckKind::ErrorRate(_) | CheckKind::Json(_),
                CheckObservation::Counts { canary, baseline },
                before,
            ) => {
                // A version without an earlier reading counts from the start.
                let (c0, b0) = match before {
                    Some(CheckObservation::Counts { canary, baseline }) => {
                        (*canary, baseline.observed().copied().unwrap_or_default())
                    }
                    _ => Default::default(),
                };
                let rate = |now: f64, then: f64, e_now: f64, e_then: f64| {
                    let requests = now - then;
                    (requests > 0.0).then(|| ((e_now - e_then).max(0.0) / requests).min(1.0))
                };
                SeriesValue {
                    measure: "error rate".to_owned(),
                    canary: rate(canary.requests, c0.requests, canary.errors, c0.errors),
                    baseline: baseline.observed().and_then(|baseline| {
                        rate(baseline.requests, b0.requests, baseline.errors, b0.errors)
                    }),
                }
            }
            (
                CheckKind::Latency(latency),
                CheckObservation::Histogram { canary, baseline },
                before,
            ) => {
                let (c0, b0) = match before {
                    Some(CheckObservation::Histogram { canary, baseline }) => {
                        (Some(canary), baseline.observed())
                    }
                    _ => (None, None),
                };
                let quantile = |now: &[HistogramBucket], then: Option<&Vec<HistogramBucket>>| {
                    let delta = bucket_delta(now, then.map(|v| v.as_slice()));
                    let q = histogram::histogram_quantile(
                        latency.quantile,
                        &HistogramBucket::to_stats(&delta),
                    );
                    q.is_finite().then_some(q)
                };
                SeriesValue {
                    measure: format!("p{} (s)", crate::judge::fmt_num(latency.quantile * 100.0)),
                    canary: quantile(canary, c0),
                    baseline: baseline
                        .observed()
                        .and_then(|baseline| quantile(baseline, b0)),
                }
            }
            (CheckKind::Samples(_), CheckObservation::Samples { canary, baseline }, _) => {
                SeriesValue {
                    measure: "sample".to_owned(),
                    canary: *canary,
                    baseline: *baseline,
                }
            }
            (CheckKind::Query(_) | CheckKind::Json(_), CheckObservation::Value { value }, _) => {
                SeriesValue {
                    measure: "value".to_owned(),
                    canary: Some(*value),
                    baseline: None,
                }
            }
            _ => continue,
        };
        checks.insert(check.name.clone(), value);
    }
    TimelinePoint {
        at: tick.at,
        weight,
        checks,
    }
}

/// Cumulative buckets minus earlier cumulative buckets (same bounds), floored at zero.
fn bucket_delta(now: &[HistogramBucket], then: Option<&[HistogramBucket]>) -> Vec<HistogramBucket> {
    now.iter()
        .map(|bucket| {
            let earlier = then
                .and_then(|t| t.iter().find(|b| b.le == bucket.le))
                .map_or(0.0, |b| b.count);
            HistogramBucket {
                le: bucket.le,
                count: (bucket.count - earlier).max(0.0),
            }
        })
        .collect()
}
