//! The judge: from a policy's checks and the readings of each tick to verdicts with evidence.
//!
//! The judge is sequential. It is fed every tick's cumulative readings ([`Judge::observe`]),
//! keeps what the tests need between ticks in a serializable [`JudgeState`] (so a rollout
//! resumed after a crash carries on with the same evidence), and is asked for its
//! [`Assessment`] either mid-step (may the canary go on?) or at a step's end (may it
//! advance?). Each policy check has one or two **criteria** — an absolute bound (`slo`) and a
//! comparison with the baseline (`baseline`) — and each criterion gets its own verdict and
//! its own share of α (Bonferroni across criteria):
//!
//! | check | `slo` | `baseline` |
//! |---|---|---|
//! | error rate | beta-binomial confidence sequence on the canary's error rate | conditional-binomial mixture e-value on canary vs baseline errors |
//! | latency | confidence sequence on the share of canary requests above the bound's bucket; the promotion gate is the `histogram_quantile` estimate | e-value on requests slower than a fixed bucket bound |
//! | samples | — | Mann–Whitney U / Hodges–Lehmann, once per step |
//! | query | the value against the bound | — |
//!
//! A failure is final (latched): an anytime-valid test that rejected stays rejected. Missing
//! or unusable data is `nodata` or `error`, never `pass`.

use serde::{Deserialize, Serialize};

use crate::observation::{CheckObservation, HistogramBucket, Reading, RequestCounts, Tick};
use crate::policy::{CheckKind, CheckSpec, Criterion, Policy};
use crate::stats::Alternative;
use crate::stats::binomial_cs;
use crate::stats::histogram;
use crate::stats::mann_whitney;
use crate::stats::rate_ratio::{EventCounts, RateRatioState, RateRatioTest};
use crate::{Error, Result};

/// Baseline requests needed before a latency comparison fixes its "slow" bucket bound from
/// the baseline's quantile (when the policy does not give `slow-above`).
pub const REQUESTS_TO_FIX_SLOW_THRESHOLD: f64 = 200.0;

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
    /// One sentence saying why.
    pub reason: String,
    /// The numbers.
    pub evidence: Evidence,
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
}

impl Assessment {
    /// The criteria that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }
}

/// What the judge remembers between ticks. Serializable: it is part of a rollout's
/// persisted state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeState {
    /// Per criterion, in policy order.
    pub criteria: Vec<CriterionState>,
    /// Cumulative canary requests at the start of the current step.
    pub step_start_requests: Option<f64>,
    /// Latest cumulative canary requests.
    pub canary_requests: Option<f64>,
    /// Ticks observed so far.
    pub ticks: u64,
}

/// What one criterion remembers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriterionState {
    /// `check/criterion`.
    pub name: String,
    /// The failure, once there is one.
    pub failed: Option<CheckResult>,
    /// The status of the latest reading.
    pub latest: LatestReading,
    /// Test memory.
    pub memory: Memory,
}

/// The status of a criterion's latest reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum LatestReading {
    /// Nothing read yet.
    Nothing,
    /// Usable data.
    Observed,
    /// An answer with no data.
    NoData(String),
    /// An answer that could not be used.
    Invalid(String),
}

/// Test memory of a criterion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "memory")]
pub enum Memory {
    /// Error rate: cumulative counts (whole numbers, never decreasing) and the comparison.
    Counts {
        /// Latest canary totals.
        canary: Option<Totals>,
        /// Latest baseline totals.
        baseline: Option<Totals>,
        /// The comparison's martingale (baseline criterion only).
        comparison: Option<RateRatioState>,
    },
    /// Latency: the latest cumulative buckets and, for comparisons, the slow threshold and
    /// the counts above it.
    Histogram {
        /// Latest canary buckets.
        canary: Option<Vec<HistogramBucket>>,
        /// Latest baseline buckets.
        baseline: Option<Vec<HistogramBucket>>,
        /// The fixed bucket bound above which a request is slow (baseline criterion).
        slow_above: Option<f64>,
        /// Canary totals above `slow_above` when it was fixed, then at the latest tick.
        canary_slow: Option<Totals>,
        /// Baseline totals above `slow_above`.
        baseline_slow: Option<Totals>,
        /// The comparison's martingale.
        comparison: Option<RateRatioState>,
    },
    /// Samples: this step's values, and the step's test once run.
    Samples {
        /// Canary values this step.
        canary: Vec<f64>,
        /// Baseline values this step.
        baseline: Vec<f64>,
        /// The test, once run this step.
        tested: Option<Box<CheckResult>>,
    },
    /// Query: the latest value.
    Value {
        /// The latest value.
        last: Option<f64>,
    },
}

/// Whole-number cumulative totals of trials and events, never decreasing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Trials (requests).
    pub trials: u64,
    /// Events among them (errors, slow requests).
    pub events: u64,
}

impl Totals {
    /// Rounds a cumulative reading (Prometheus' `increase()` extrapolates to fractions) and
    /// keeps events within trials.
    fn from_reading(trials: f64, events: f64) -> std::result::Result<Totals, String> {
        if !trials.is_finite() || !events.is_finite() {
            return Err(format!(
                "non-finite count (requests {trials}, events {events})"
            ));
        }
        if trials < 0.0 || events < 0.0 {
            return Err(format!(
                "negative count (requests {trials}, events {events})"
            ));
        }
        let trials_whole = trials.round() as u64;
        let events_whole = events.round() as u64;
        // Extrapolation of two counters can put errors a little above requests; more than
        // rounding would explain means the query counts different things.
        if events > trials + 1.0 + 0.01 * trials {
            return Err(format!(
                "more events ({events:.1}) than requests ({trials:.1}): the two queries do not count the same requests"
            ));
        }
        Ok(Totals {
            trials: trials_whole,
            events: events_whole.min(trials_whole),
        })
    }

    /// Advances the totals to a new reading and returns the increment. A reading below the
    /// previous one (extrapolation jitter) adds nothing and keeps the previous totals.
    fn advance(&mut self, next: Totals) -> EventCounts {
        let trials = next.trials.saturating_sub(self.trials);
        let events = next.events.saturating_sub(self.events).min(trials);
        self.trials = self.trials.max(next.trials);
        self.events = self.events.max(next.events);
        EventCounts { trials, events }
    }
}

/// How the judge is configured beyond the policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JudgeConfig {
    /// How many times, at most, each samples check runs its fixed-horizon test: the
    /// number of analysed steps of a rollout, 1 for a standalone analysis. Its α is split
    /// across them.
    pub sample_test_looks: usize,
}

/// The judge of one policy.
#[derive(Clone, Debug)]
pub struct Judge {
    plans: Vec<Plan>,
    min_requests: u64,
}

#[derive(Clone, Debug)]
struct Plan {
    check: CheckSpec,
    criterion: Criterion,
    alpha: f64,
    comparison: Option<RateRatioTest>,
    sample_alpha: f64,
}

impl Plan {
    fn name(&self) -> String {
        format!("{}/{}", self.check.name, self.criterion.as_str())
    }

    fn result(
        &self,
        verdict: Verdict,
        reason: impl Into<String>,
        evidence: Evidence,
    ) -> CheckResult {
        CheckResult {
            name: self.name(),
            check: self.check.name.clone(),
            criterion: self.criterion,
            kind: self.check.kind.name().to_owned(),
            verdict,
            reason: reason.into(),
            evidence,
        }
    }
}

impl Judge {
    /// A judge for `policy`'s checks.
    pub fn new(policy: &Policy, config: JudgeConfig) -> Result<Judge> {
        let alpha = policy.alpha_per_criterion();
        let mut plans = Vec::new();
        for (check, criterion) in policy.criteria() {
            let comparison = match (criterion, &check.kind, &check.baseline) {
                (Criterion::Baseline, CheckKind::ErrorRate(_) | CheckKind::Latency(_), Some(b)) => {
                    Some(RateRatioTest::new(b.max_increase)?)
                }
                _ => None,
            };
            plans.push(Plan {
                check: check.clone(),
                criterion,
                alpha,
                comparison,
                sample_alpha: alpha / config.sample_test_looks.max(1) as f64,
            });
        }
        Ok(Judge {
            plans,
            min_requests: policy.rollout.min_requests,
        })
    }

    /// The state before the first tick.
    pub fn start(&self) -> JudgeState {
        JudgeState {
            criteria: self
                .plans
                .iter()
                .map(|plan| CriterionState {
                    name: plan.name(),
                    failed: None,
                    latest: LatestReading::Nothing,
                    memory: match &plan.check.kind {
                        CheckKind::ErrorRate(_) => Memory::Counts {
                            canary: None,
                            baseline: None,
                            comparison: plan.comparison.as_ref().map(|t| t.start()),
                        },
                        CheckKind::Latency(_) => Memory::Histogram {
                            canary: None,
                            baseline: None,
                            slow_above: None,
                            canary_slow: None,
                            baseline_slow: None,
                            comparison: None,
                        },
                        CheckKind::Samples(_) => Memory::Samples {
                            canary: Vec::new(),
                            baseline: Vec::new(),
                            tested: None,
                        },
                        CheckKind::Query(_) => Memory::Value { last: None },
                    },
                })
                .collect(),
            step_start_requests: None,
            canary_requests: None,
            ticks: 0,
        }
    }

    /// Marks the start of a new step: the step's request count starts again from here, and
    /// samples checks start a new sample.
    pub fn begin_step(&self, state: &mut JudgeState) {
        state.step_start_requests = state.canary_requests;
        for criterion in &mut state.criteria {
            if let Memory::Samples {
                canary,
                baseline,
                tested,
            } = &mut criterion.memory
            {
                canary.clear();
                baseline.clear();
                *tested = None;
            }
        }
    }

    /// Takes one tick's readings into the state. A state that does not belong to this judge
    /// (another policy's) is an error.
    pub fn observe(&self, state: &mut JudgeState, tick: &Tick) -> Result<()> {
        self.check_state(state)?;
        state.ticks += 1;
        let mut canary_requests = None;
        for (plan, criterion) in self.plans.iter().zip(&mut state.criteria) {
            let reading = tick.readings.get(&plan.check.name);
            let outcome = match reading {
                None => Err(LatestReading::NoData(
                    "the source returned no reading for this check".to_owned(),
                )),
                Some(Reading::NoData { reason }) => Err(LatestReading::NoData(reason.clone())),
                Some(Reading::Invalid { reason }) => Err(LatestReading::Invalid(reason.clone())),
                Some(Reading::Observed(observation)) => {
                    take_observation(plan, &mut criterion.memory, observation)
                        .map_err(LatestReading::Invalid)
                }
            };
            criterion.latest = match outcome {
                Ok(requests) => {
                    if canary_requests.is_none() {
                        canary_requests = requests;
                    }
                    LatestReading::Observed
                }
                Err(status) => status,
            };
        }
        if let Some(requests) = canary_requests {
            state.canary_requests = Some(
                state
                    .canary_requests
                    .map_or(requests, |r: f64| r.max(requests)),
            );
            if state.step_start_requests.is_none() {
                state.step_start_requests = Some(0.0);
            }
        }
        Ok(())
    }

    /// Judges every criterion as of now. Mutable because failures latch and because a
    /// samples test, once run in a step, is kept for that step.
    pub fn assess(&self, state: &mut JudgeState, moment: Moment) -> Result<Assessment> {
        self.check_state(state)?;
        let mut checks = Vec::with_capacity(self.plans.len());
        for (plan, criterion) in self.plans.iter().zip(&mut state.criteria) {
            let result = match &criterion.failed {
                Some(failed) => failed.clone(),
                None => {
                    let result = assess_criterion(plan, criterion, moment);
                    if result.verdict == Verdict::Fail {
                        criterion.failed = Some(result.clone());
                    }
                    result
                }
            };
            checks.push(result);
        }
        let canary_requests_in_step = match (state.canary_requests, state.step_start_requests) {
            (Some(now), Some(start)) => Some((now - start).max(0.0).round() as u64),
            _ => None,
        };
        let (verdict, reason) =
            overall(&checks, moment, canary_requests_in_step, self.min_requests);
        Ok(Assessment {
            verdict,
            reason,
            canary_requests_in_step,
            checks,
        })
    }

    fn check_state(&self, state: &JudgeState) -> Result<()> {
        let matches = state.criteria.len() == self.plans.len()
            && self
                .plans
                .iter()
                .zip(&state.criteria)
                .all(|(plan, criterion)| plan.name() == criterion.name);
        if matches {
            Ok(())
        } else {
            Err(Error::Usage(
                "the saved analysis state does not match the policy's checks (was the policy changed mid-rollout?)"
                    .to_owned(),
            ))
        }
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

/// Updates a criterion's memory with an observation. Returns the canary's cumulative
/// request count when this observation carries one.
fn take_observation(
    plan: &Plan,
    memory: &mut Memory,
    observation: &CheckObservation,
) -> std::result::Result<Option<f64>, String> {
    match (memory, observation) {
        (
            Memory::Counts {
                canary,
                baseline,
                comparison,
            },
            CheckObservation::Counts {
                canary: canary_now,
                baseline: baseline_now,
            },
        ) => {
            let canary_next = counts_totals(canary_now)?;
            let baseline_next = counts_totals(baseline_now)?;
            let canary_step = canary
                .get_or_insert_with(Totals::default)
                .advance(canary_next);
            let baseline_step = baseline
                .get_or_insert_with(Totals::default)
                .advance(baseline_next);
            if let (Some(test), Some(state)) = (&plan.comparison, comparison) {
                test.update(state, canary_step, baseline_step)
                    .map_err(|e| e.to_string())?;
            }
            Ok(Some(canary_now.requests))
        }
        (
            Memory::Histogram {
                canary,
                baseline,
                slow_above,
                canary_slow,
                baseline_slow,
                comparison,
            },
            CheckObservation::Histogram {
                canary: canary_now,
                baseline: baseline_now,
            },
        ) => {
            check_buckets("canary", canary_now)?;
            check_buckets("baseline", baseline_now)?;
            let canary_total = total(canary_now);
            if let (Some(test), Some(spec)) = (&plan.comparison, &plan.check.baseline) {
                if slow_above.is_none() {
                    let stats_baseline = HistogramBucket::to_stats(baseline_now);
                    let bound = match spec.slow_above {
                        // The policy's bound, rounded up to a bucket bound.
                        Some(wanted) => {
                            histogram::smallest_bound_at_or_above(&stats_baseline, wanted)
                        }
                        // The bucket bound just below the baseline's quantile: above it lie
                        // somewhat more than 1 − q of the requests, so each request carries
                        // more evidence than at the bound above the quantile (where, with
                        // coarse buckets, only a fraction of a percent may lie).
                        None if total(baseline_now) >= REQUESTS_TO_FIX_SLOW_THRESHOLD => {
                            let q = latency_quantile(&plan.check);
                            let quantile = histogram::histogram_quantile(q, &stats_baseline);
                            bound_below(&stats_baseline, quantile).or_else(|| {
                                histogram::smallest_bound_at_or_above(&stats_baseline, quantile)
                            })
                        }
                        None => None,
                    };
                    {
                        let bound = bound.filter(|b| b.is_finite());
                        if let Some(bound) = bound {
                            *slow_above = Some(bound);
                            // Evidence counts from here on: what fixed the bound is not reused.
                            *canary_slow = Some(slow_totals(canary_now, bound)?);
                            *baseline_slow = Some(slow_totals(baseline_now, bound)?);
                            *comparison = Some(test.start());
                        }
                    }
                } else if let (Some(bound), Some(c), Some(b), Some(state)) = (
                    *slow_above,
                    canary_slow.as_mut(),
                    baseline_slow.as_mut(),
                    comparison.as_mut(),
                ) {
                    let canary_step = c.advance(slow_totals(canary_now, bound)?);
                    let baseline_step = b.advance(slow_totals(baseline_now, bound)?);
                    test.update(state, canary_step, baseline_step)
                        .map_err(|e| e.to_string())?;
                }
            }
            *canary = Some(canary_now.clone());
            *baseline = Some(baseline_now.clone());
            Ok(Some(canary_total))
        }
        (
            Memory::Samples {
                canary, baseline, ..
            },
            CheckObservation::Samples {
                canary: canary_now,
                baseline: baseline_now,
            },
        ) => {
            for value in [canary_now, baseline_now].into_iter().flatten() {
                if !value.is_finite() {
                    return Err(format!("a sample is not a finite number ({value})"));
                }
            }
            if canary_now.is_none() && baseline_now.is_none() {
                return Err("the query returned neither version".to_owned());
            }
            canary.extend(*canary_now);
            baseline.extend(*baseline_now);
            Ok(None)
        }
        (Memory::Value { last }, CheckObservation::Value { value }) => {
            if !value.is_finite() {
                return Err(format!(
                    "the query's value is not a finite number ({value})"
                ));
            }
            *last = Some(*value);
            Ok(None)
        }
        (_, other) => Err(format!(
            "expected data for a {} check, got {}",
            plan.check.kind.name(),
            match other {
                CheckObservation::Counts { .. } => "request counts",
                CheckObservation::Histogram { .. } => "histogram buckets",
                CheckObservation::Samples { .. } => "samples",
                CheckObservation::Value { .. } => "a single value",
            }
        )),
    }
}

fn counts_totals(counts: &RequestCounts) -> std::result::Result<Totals, String> {
    Totals::from_reading(counts.requests, counts.errors)
}

fn total(buckets: &[HistogramBucket]) -> f64 {
    buckets
        .iter()
        .filter(|b| b.le.is_infinite() && b.le > 0.0)
        .map(|b| b.count)
        .fold(0.0, f64::max)
}

fn check_buckets(version: &str, buckets: &[HistogramBucket]) -> std::result::Result<(), String> {
    if buckets.is_empty() {
        return Err(format!("the {version} histogram has no buckets"));
    }
    if !buckets.iter().any(|b| b.le == f64::INFINITY) {
        return Err(format!("the {version} histogram has no +Inf bucket"));
    }
    if let Some(bad) = buckets
        .iter()
        .find(|b| !b.count.is_finite() || b.count < 0.0 || b.le.is_nan())
    {
        return Err(format!(
            "the {version} histogram has an unusable bucket (le {}, count {})",
            bad.le, bad.count
        ));
    }
    Ok(())
}

/// Requests and the requests above `bound` (a bucket bound), as whole-number totals.
fn slow_totals(buckets: &[HistogramBucket], bound: f64) -> std::result::Result<Totals, String> {
    let stats = HistogramBucket::to_stats(buckets);
    let above = histogram::count_above(&stats, bound)
        .ok_or_else(|| format!("{bound} is not a bucket bound of this histogram"))?;
    Totals::from_reading(total(buckets), above.max(0.0))
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

fn latency_quantile(check: &CheckSpec) -> f64 {
    match &check.kind {
        CheckKind::Latency(latency) => latency.quantile,
        _ => 0.5,
    }
}

fn assess_criterion(plan: &Plan, state: &mut CriterionState, moment: Moment) -> CheckResult {
    let base = Evidence {
        alpha: plan.alpha,
        ..Evidence::default()
    };
    match &state.latest {
        LatestReading::Nothing => {
            return plan.result(Verdict::NoData, "no reading yet", base);
        }
        LatestReading::NoData(reason) => {
            return plan.result(Verdict::NoData, reason.clone(), base);
        }
        LatestReading::Invalid(reason) => {
            return plan.result(Verdict::Error, reason.clone(), base);
        }
        LatestReading::Observed => {}
    }
    match (&plan.criterion, &plan.check.kind, &mut state.memory) {
        (Criterion::Slo, CheckKind::ErrorRate(_), Memory::Counts { canary, .. }) => {
            let totals = canary.unwrap_or_default();
            assess_rate_bound(plan, moment, totals, None, "canary error rate")
        }
        (Criterion::Baseline, CheckKind::ErrorRate(_), Memory::Counts { canary, baseline, comparison }) => {
            assess_comparison(
                plan,
                canary.unwrap_or_default(),
                baseline.unwrap_or_default(),
                comparison.as_ref(),
                "canary/baseline error-rate ratio",
            )
        }
        (Criterion::Slo, CheckKind::Latency(latency), Memory::Histogram { canary, .. }) => {
            assess_latency_bound(plan, moment, latency.quantile, canary.as_deref().unwrap_or(&[]))
        }
        (
            Criterion::Baseline,
            CheckKind::Latency(_),
            Memory::Histogram {
                slow_above,
                canary_slow,
                baseline_slow,
                comparison,
                baseline,
                ..
            },
        ) => match slow_above {
            None => plan.result(
                Verdict::NoData,
                format!(
                    "waiting for {REQUESTS_TO_FIX_SLOW_THRESHOLD} baseline requests to fix the slow-request bound (baseline has {})",
                    baseline.as_deref().map_or(0.0, total)
                ),
                base,
            ),
            Some(bound) => {
                let mut result = assess_comparison(
                    plan,
                    canary_slow.unwrap_or_default(),
                    baseline_slow.unwrap_or_default(),
                    comparison.as_ref(),
                    "canary/baseline ratio of requests slower than the bound",
                );
                result.reason = format!("{} (slow means above {}s)", result.reason, fmt_num(*bound));
                result
            }
        },
        (Criterion::Baseline, CheckKind::Samples(samples), Memory::Samples { canary, baseline, tested }) => {
            if let Some(done) = tested {
                return (**done).clone();
            }
            let enough = canary.len() >= samples.min_samples && baseline.len() >= samples.min_samples;
            if moment == Moment::StepEnd && enough {
                let result = assess_samples(plan, samples.higher_is_worse, canary, baseline);
                *tested = Some(Box::new(result.clone()));
                result
            } else {
                let evidence = Evidence {
                    test: "Mann–Whitney U with Hodges–Lehmann shift (runs once per step, at its end)".to_owned(),
                    measure: "canary − baseline shift".to_owned(),
                    canary_n: Some(canary.len() as u64),
                    baseline_n: Some(baseline.len() as u64),
                    ..base
                };
                let reason = if enough {
                    "enough samples; the test runs at the step's end".to_owned()
                } else {
                    format!(
                        "{} canary and {} baseline samples of the {} needed",
                        canary.len(),
                        baseline.len(),
                        samples.min_samples
                    )
                };
                plan.result(Verdict::Inconclusive, reason, evidence)
            }
        }
        (Criterion::Slo, CheckKind::Query(_), Memory::Value { last }) => {
            let Some(value) = *last else {
                return plan.result(Verdict::NoData, "no value yet", base);
            };
            let bound = plan.check.slo.expect("a slo criterion has a bound");
            let evidence = Evidence {
                test: "bound on the query's value".to_owned(),
                measure: "query value".to_owned(),
                estimate: Some(value),
                threshold: Some(bound.max),
                ..base
            };
            if value > bound.fail_fast_bound() {
                plan.result(
                    Verdict::Fail,
                    format!("{} is above {}", fmt_num(value), fmt_num(bound.fail_fast_bound())),
                    Evidence {
                        threshold: Some(bound.fail_fast_bound()),
                        ..evidence
                    },
                )
            } else if value > bound.max && moment == Moment::StepEnd {
                plan.result(
                    Verdict::Fail,
                    format!("{} is above {}", fmt_num(value), fmt_num(bound.max)),
                    evidence,
                )
            } else if value > bound.max {
                plan.result(
                    Verdict::Inconclusive,
                    format!("{} is above {} (judged at the step's end)", fmt_num(value), fmt_num(bound.max)),
                    evidence,
                )
            } else {
                plan.result(
                    Verdict::Pass,
                    format!("{} is within {}", fmt_num(value), fmt_num(bound.max)),
                    evidence,
                )
            }
        }
        (criterion, kind, _) => plan.result(
            Verdict::Error,
            format!("internal: no assessment for {} of a {} check", criterion.as_str(), kind.name()),
            base,
        ),
    }
}

/// An absolute bound on a rate, with the beta-binomial confidence sequence: fail once the
/// whole sequence is above the bound, pass when the estimate is within it.
fn assess_rate_bound(
    plan: &Plan,
    moment: Moment,
    totals: Totals,
    gate_estimate: Option<(f64, f64)>,
    measure: &str,
) -> CheckResult {
    let bound = plan.check.slo.expect("a slo criterion has a bound");
    let (lower, upper) = match binomial_cs::interval(totals.events, totals.trials, plan.alpha) {
        Ok(interval) => interval,
        Err(err) => {
            let evidence = Evidence {
                alpha: plan.alpha,
                ..Evidence::default()
            };
            return plan.result(Verdict::Error, err.to_string(), evidence);
        }
    };
    let estimate = (totals.trials > 0).then(|| totals.events as f64 / totals.trials as f64);
    let evidence = Evidence {
        test: "beta-binomial confidence sequence (Robbins 1970; Howard et al. 2021)".to_owned(),
        measure: measure.to_owned(),
        canary_n: Some(totals.trials),
        canary_events: Some(totals.events),
        estimate,
        interval: Some([lower, upper]),
        confidence: Some(1.0 - plan.alpha),
        threshold: Some(bound.max),
        alpha: plan.alpha,
        ..Evidence::default()
    };
    rate_bound_verdict(
        plan,
        moment,
        evidence,
        lower,
        gate_estimate,
        bound.max,
        bound.fail_fast_bound(),
    )
}

fn rate_bound_verdict(
    plan: &Plan,
    moment: Moment,
    evidence: Evidence,
    lower: f64,
    gate: Option<(f64, f64)>,
    max: f64,
    fail_fast: f64,
) -> CheckResult {
    let pct = |x: f64| format!("{}%", fmt_num(x * 100.0));
    if lower > fail_fast {
        return plan.result(
            Verdict::Fail,
            format!(
                "the rate is above {} with confidence (lower bound {})",
                pct(fail_fast),
                pct(lower)
            ),
            Evidence {
                threshold: Some(fail_fast),
                ..evidence
            },
        );
    }
    if moment == Moment::StepEnd && lower > max {
        return plan.result(
            Verdict::Fail,
            format!(
                "the rate is above {} with confidence (lower bound {})",
                pct(max),
                pct(lower)
            ),
            evidence,
        );
    }
    let Some(estimate) = evidence.estimate else {
        return plan.result(Verdict::NoData, "no canary requests yet", evidence);
    };
    match gate {
        // Latency: the gate is the quantile estimate against the latency bound.
        Some((quantile_estimate, latency_max)) => {
            if quantile_estimate.is_nan() {
                plan.result(
                    Verdict::NoData,
                    "no canary observations in the histogram",
                    evidence,
                )
            } else if quantile_estimate <= latency_max {
                plan.result(
                    Verdict::Pass,
                    format!(
                        "estimate {}s is within {}s",
                        fmt_num(quantile_estimate),
                        fmt_num(latency_max)
                    ),
                    evidence,
                )
            } else {
                plan.result(
                    Verdict::Inconclusive,
                    format!(
                        "estimate {}s is above {}s, not yet with confidence",
                        fmt_num(quantile_estimate),
                        fmt_num(latency_max)
                    ),
                    evidence,
                )
            }
        }
        None if estimate <= max => plan.result(
            Verdict::Pass,
            format!("{} is within {}", pct(estimate), pct(max)),
            evidence,
        ),
        None => plan.result(
            Verdict::Inconclusive,
            format!(
                "{} is above {}, not yet with confidence",
                pct(estimate),
                pct(max)
            ),
            evidence,
        ),
    }
}

/// A latency bound: the share of canary requests above the bound's bucket is held to
/// `1 − q` with a confidence sequence (if that share is above `1 − q`, the quantile is above
/// the bound); the promotion gate is the `histogram_quantile` estimate itself.
fn assess_latency_bound(
    plan: &Plan,
    moment: Moment,
    quantile: f64,
    canary: &[HistogramBucket],
) -> CheckResult {
    let bound = plan.check.slo.expect("a slo criterion has a bound");
    let stats = HistogramBucket::to_stats(canary);
    let estimate = histogram::histogram_quantile(quantile, &stats);
    let n = total(canary);
    let tail = 1.0 - quantile;
    // Two confidence sequences (fail-fast bound and max) share the criterion's α.
    let looks = if bound.rollback_above.is_some() {
        2.0
    } else {
        1.0
    };
    let alpha = plan.alpha / looks;
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
        alpha: plan.alpha,
        ..Evidence::default()
    };
    let mut judged = Vec::new();
    judged.push((bound.fail_fast_bound(), true));
    if bound.rollback_above.is_some() && moment == Moment::StepEnd {
        judged.push((bound.max, false));
    }
    for (limit, _) in judged {
        if let Some((lower, totals, bucket)) = lower_share_above(limit) {
            evidence.canary_events = Some(totals.events);
            if lower > tail {
                return plan.result(
                    Verdict::Fail,
                    format!(
                        "at least {}% of canary requests are slower than {}s (more than {}%): the quantile is above {}s with confidence",
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
        return plan.result(Verdict::NoData, "no canary requests yet", evidence);
    }
    // When more than 1 − q of the requests lie above the highest finite bucket, the quantile
    // is somewhere beyond it (histogram_quantile then answers that bucket's bound, a floor):
    // never a pass on it.
    let top = stats
        .iter()
        .filter(|b| b.upper_bound.is_finite())
        .map(|b| b.upper_bound)
        .fold(f64::NEG_INFINITY, f64::max);
    if top.is_finite()
        && let Some(above) = histogram::count_above(&stats, top)
        && above > tail * n
    {
        return plan.result(
            Verdict::Inconclusive,
            format!(
                "the canary's p{} is beyond the histogram's highest finite bucket ({}s): its value is not known",
                fmt_num(quantile * 100.0),
                fmt_num(top)
            ),
            evidence,
        );
    }
    let gate = Some((estimate, bound.max));
    let lower = f64::NEG_INFINITY;
    rate_bound_verdict(
        plan,
        moment,
        evidence,
        lower,
        gate,
        f64::INFINITY,
        f64::INFINITY,
    )
}

/// A comparison of event rates with the conditional-binomial mixture e-value.
fn assess_comparison(
    plan: &Plan,
    canary: Totals,
    baseline: Totals,
    state: Option<&RateRatioState>,
    measure: &str,
) -> CheckResult {
    let spec = plan
        .check
        .baseline
        .expect("a baseline criterion has a comparison");
    let test = plan
        .comparison
        .as_ref()
        .expect("a comparison criterion has its test");
    let null_ratio = 1.0 + spec.max_increase;
    let rate = |t: Totals| (t.trials > 0).then(|| t.events as f64 / t.trials as f64);
    let (e_value, lower, estimate) = match state {
        Some(state) => (
            test.e_value(state),
            test.lower_bound(state, plan.alpha).unwrap_or(0.0),
            test.estimate(state),
        ),
        None => (1.0, 0.0, None),
    };
    let evidence = Evidence {
        test: "conditional-binomial mixture e-value (Lindon & Malek 2022), anytime-valid"
            .to_owned(),
        measure: measure.to_owned(),
        canary_n: Some(canary.trials),
        baseline_n: Some(baseline.trials),
        canary_events: Some(canary.events),
        baseline_events: Some(baseline.events),
        estimate,
        baseline_estimate: rate(baseline),
        interval: Some([lower, f64::INFINITY]),
        confidence: Some(1.0 - plan.alpha),
        e_value: Some(e_value),
        threshold: Some(null_ratio),
        alpha: plan.alpha,
        ..Evidence::default()
    };
    if e_value >= 1.0 / plan.alpha {
        return plan.result(
            Verdict::Fail,
            format!(
                "the canary is worse than {}× baseline with confidence (e-value {} ≥ {}; ratio at least {})",
                fmt_num(null_ratio),
                fmt_num(e_value),
                fmt_num(1.0 / plan.alpha),
                fmt_num(lower)
            ),
            evidence,
        );
    }
    if canary.trials == 0 {
        return plan.result(Verdict::NoData, "no canary requests yet", evidence);
    }
    if baseline.trials == 0 {
        return plan.result(
            Verdict::NoData,
            "no baseline requests to compare with",
            evidence,
        );
    }
    plan.result(
        Verdict::Pass,
        format!(
            "no evidence the canary is worse than {}× baseline (e-value {} < {})",
            fmt_num(null_ratio),
            fmt_num(e_value),
            fmt_num(1.0 / plan.alpha)
        ),
        evidence,
    )
}

/// Mann–Whitney U with the Hodges–Lehmann shift: fails when the one-sided lower confidence
/// bound of the shift (worse direction) exceeds the allowed increase over the baseline's
/// median. Run once per step with α split across steps.
fn assess_samples(
    plan: &Plan,
    higher_is_worse: bool,
    canary: &[f64],
    baseline: &[f64],
) -> CheckResult {
    let spec = plan
        .check
        .baseline
        .expect("a baseline criterion has a comparison");
    let alpha = plan.sample_alpha;
    let median = median(baseline);
    let tolerance = spec.max_increase * median.abs();
    // Orient so that "greater" always means "the canary is worse".
    let (x, y) = if higher_is_worse {
        (canary, baseline)
    } else {
        (baseline, canary)
    };
    let mut evidence = Evidence {
        test: "Mann–Whitney U (tie- and continuity-corrected) with Hodges–Lehmann shift, as R's wilcox.test".to_owned(),
        measure: if higher_is_worse {
            "shift canary − baseline".to_owned()
        } else {
            "shift baseline − canary".to_owned()
        },
        canary_n: Some(canary.len() as u64),
        baseline_n: Some(baseline.len() as u64),
        baseline_estimate: Some(median),
        confidence: Some(1.0 - alpha),
        threshold: Some(tolerance),
        alpha,
        ..Evidence::default()
    };
    let all_equal = x.iter().chain(y).all(|v| *v == x[0]);
    if all_equal {
        evidence.estimate = Some(0.0);
        return plan.result(Verdict::Pass, "every sample has the same value", evidence);
    }
    let test = mann_whitney::mann_whitney_u(x, y, Alternative::Greater);
    let shift = mann_whitney::hodges_lehmann(x, y, 1.0 - alpha, Alternative::Greater);
    match (test, shift) {
        (Ok(test), Ok(shift)) => {
            evidence.p_value = Some(test.p_value);
            evidence.estimate = Some(shift.estimate);
            evidence.interval = Some([shift.lower, shift.upper]);
            if shift.lower > tolerance {
                plan.result(
                    Verdict::Fail,
                    format!(
                        "the canary is worse by at least {} (allowed {}), p = {}",
                        fmt_num(shift.lower),
                        fmt_num(tolerance),
                        fmt_num(test.p_value)
                    ),
                    evidence,
                )
            } else {
                plan.result(
                    Verdict::Pass,
                    format!(
                        "no evidence the canary is worse by more than {} (shift {}, lower bound {})",
                        fmt_num(tolerance),
                        fmt_num(shift.estimate),
                        fmt_num(shift.lower)
                    ),
                    evidence,
                )
            }
        }
        (Err(err), _) | (_, Err(err)) => plan.result(Verdict::Error, err.to_string(), evidence),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
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
