//! What the judge answers: a [`Verdict`] per criterion with its [`Evidence`], gathered into an
//! [`Assessment`] at one [`Moment`], and the rule ([`overall`]) that turns the criteria's
//! verdicts into one.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::memory::Decreases;
use crate::policy::Criterion;

/// The outcome of one criterion, or of a whole judgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The evidence supports promotion.
    Pass,
    /// Not enough evidence either way.
    Inconclusive,
    /// No data to judge (an empty answer, no canary traffic). Never a pass.
    #[serde(rename = "nodata")]
    NoData,
    /// The data could not be used (NaN, several series, malformed histogram). Never a pass.
    Error,
    /// The canary is worse than the policy allows, with the evidence to say so.
    Fail,
}

impl Verdict {
    /// The name used in reports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NoData => "nodata",
            Verdict::Error => "error",
            Verdict::Fail => "fail",
        }
    }

    /// The verdict of a whole judgement, in the four values of the report's top level:
    /// `nodata` of a check counts as `inconclusive` overall.
    pub fn overall(self) -> Verdict {
        match self {
            Verdict::NoData => Verdict::Inconclusive,
            other => other,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When an assessment is made; it changes which bounds are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Moment {
    /// During a step: only the fail-fast bounds are judged (`rollback-above`, or `max` when
    /// there is no `rollback-above`, and the comparisons).
    MidStep,
    /// At a step's end: everything, including the once-per-step sample tests.
    StepEnd,
}

/// The numbers behind a verdict. Fields that do not apply to a test are `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The test used, with its source.
    pub test: String,
    /// What `estimate` and `threshold` measure, e.g. `canary error rate`.
    pub measure: String,
    /// Canary sample size: requests, or samples.
    pub canary_n: Option<u64>,
    /// Baseline sample size.
    pub baseline_n: Option<u64>,
    /// Canary events counted (errors, slow requests).
    pub canary_events: Option<u64>,
    /// Baseline events counted.
    pub baseline_events: Option<u64>,
    /// The estimate of `measure`.
    #[serde(default, with = "crate::serde_float::option")]
    pub estimate: Option<f64>,
    /// The baseline's own value of the quantity, where that means something (its error rate,
    /// its quantile, its median).
    #[serde(default, with = "crate::serde_float::option")]
    pub baseline_estimate: Option<f64>,
    /// Confidence interval (or sequence) of `measure`, `[lower, upper]`.
    #[serde(default, with = "crate::serde_float::interval")]
    pub interval: Option<[f64; 2]>,
    /// Its confidence level (anytime-valid for sequences).
    #[serde(default, with = "crate::serde_float::option")]
    pub confidence: Option<f64>,
    /// p-value (fixed-horizon tests).
    #[serde(default, with = "crate::serde_float::option")]
    pub p_value: Option<f64>,
    /// e-value (sequential tests); the criterion fails when it reaches `1/alpha`.
    #[serde(default, with = "crate::serde_float::option")]
    pub e_value: Option<f64>,
    /// The bound `measure` is held to.
    #[serde(default, with = "crate::serde_float::option")]
    pub threshold: Option<f64>,
    /// This criterion's share of the policy's α.
    pub alpha: f64,
    /// Latency comparisons: every bucket bound the test averages over, with its own counts
    /// and e-value. The counts above (`canary_n` …) are those of the bound with the most
    /// evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<BoundEvidence>,
    /// When the cumulative totals this criterion reads fell at some ticks: how often and by
    /// how much (the requests not used as evidence, at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_decreases: Option<Decreases>,
}

/// One bucket bound of a latency comparison: the canary's and the baseline's requests and
/// the requests slower than the bound, counted since the bound's test started — the very
/// numbers its e-value is computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundEvidence {
    /// The bucket bound, seconds: a request above it is slow.
    pub bound: f64,
    /// When counting started for this bound; `None` for the start of the analysis.
    pub since: Option<Timestamp>,
    /// Canary requests since then.
    pub canary_n: u64,
    /// Of which slower than the bound.
    pub canary_events: u64,
    /// Baseline requests since then.
    pub baseline_n: u64,
    /// Of which slower than the bound.
    pub baseline_events: u64,
    /// This bound's own e-value against "the canary's share above the bound is at most
    /// `threshold` times the baseline's".
    #[serde(with = "crate::serde_float::plain")]
    pub e_value: f64,
    /// Its weight in the average, now (0 for a bound no longer looked at).
    pub weight: f64,
}

/// One criterion's verdict and evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// `check/criterion`, e.g. `errors/slo`.
    pub name: String,
    /// The policy check's name.
    pub check: String,
    /// `slo` or `baseline`.
    pub criterion: Criterion,
    /// The check's kind, e.g. `error-rate`.
    pub kind: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in plain words and the policy's units (%, ms).
    pub reason: String,
    /// The statistics behind `reason`, in one line: the counts and the test's own sentence
    /// (e-value against its threshold, confidence bound). Empty when `reason` says it all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub statistics: String,
    /// The numbers.
    pub evidence: Evidence,
    /// When this criterion reached its verdict: the tick whose evidence decided a `fail`, or
    /// the tick a `pass` was judged on. `None` for verdicts that decide nothing (`nodata`,
    /// `error`, `inconclusive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Timestamp>,
}

/// A judgement of all criteria at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// `pass`, `fail`, `inconclusive` or `error`.
    pub verdict: Verdict,
    /// Why, in one sentence.
    pub reason: String,
    /// Canary requests seen in the current step (from the first request-counting check).
    pub canary_requests_in_step: Option<u64>,
    /// One result per criterion, in policy order.
    pub checks: Vec<CheckResult>,
    /// What the judge warns about: cumulative totals that fell, so that some evidence went
    /// unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Assessment {
    /// The criteria that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }
}

/// The overall verdict of some criteria: any failure fails; then unusable data; then missing
/// evidence or too little traffic (at a step's end); only then a pass.
pub fn overall(
    checks: &[CheckResult],
    moment: Moment,
    canary_requests_in_step: Option<u64>,
    min_requests: u64,
) -> (Verdict, String) {
    let names = |verdicts: &[Verdict]| {
        checks
            .iter()
            .filter(|c| verdicts.contains(&c.verdict))
            .map(|c| format!("{} ({})", c.name, c.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        return (
            Verdict::Fail,
            format!("failed: {}", names(&[Verdict::Fail])),
        );
    }
    if checks.iter().any(|c| c.verdict == Verdict::Error) {
        return (
            Verdict::Error,
            format!("unusable data: {}", names(&[Verdict::Error])),
        );
    }
    if checks
        .iter()
        .any(|c| matches!(c.verdict, Verdict::Inconclusive | Verdict::NoData))
    {
        return (
            Verdict::Inconclusive,
            format!(
                "not enough evidence: {}",
                names(&[Verdict::Inconclusive, Verdict::NoData])
            ),
        );
    }
    if moment == Moment::StepEnd && min_requests > 0 {
        match canary_requests_in_step {
            Some(seen) if seen < min_requests => {
                return (
                    Verdict::Inconclusive,
                    format!("only {seen} canary requests this step; {min_requests} are needed"),
                );
            }
            Some(_) => {}
            // Never a pass on unknown traffic: nothing counted the canary's requests.
            None => {
                return (
                    Verdict::Inconclusive,
                    format!(
                        "no reading counted the canary's requests this step; {min_requests} are needed"
                    ),
                );
            }
        }
    }
    (Verdict::Pass, "every check passed".to_owned())
}

/// A number for a sentence: four significant digits, no exponent for ordinary magnitudes.
pub fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}
