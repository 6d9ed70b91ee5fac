//! The judge: from a policy's checks and the readings of each tick to verdicts with evidence.
//!
//! The judge is sequential. It is fed every tick's cumulative readings ([`Judge::observe`]),
//! keeps what the tests need between ticks in a serializable [`JudgeState`] (so a rollout
//! resumed after a crash carries on with the same evidence), and is asked for its
//! [`Assessment`] either mid-step (may the canary go on?) or at a step's end (may it
//! advance?). Each policy check has one or two **criteria** — an absolute bound (`slo`) and a
//! comparison with the baseline (`baseline`) — and each criterion gets its own verdict and
//! its own share of α (Bonferroni across criteria). Each criterion is judged by one
//! evaluator, built in [`Judge::new`], in a file of its own:
//!
//! | check | `slo` | `baseline` |
//! |---|---|---|
//! | error rate | [`error_rate_bound`]: beta-binomial confidence sequence on the canary's error rate | [`error_rate_comparison`]: conditional-binomial mixture e-value on canary vs baseline errors |
//! | latency | [`latency_bound`]: confidence sequence on the share of canary requests above the bound's bucket; the promotion gate is the `histogram_quantile` estimate | [`latency_comparison`]: an average of e-values on requests slower than each shared bucket bound |
//! | samples | — | [`samples_sequential`] (default): anytime-valid e-process on the per-tick difference, allowing for autocorrelated series; [`samples_mann_whitney`] (`method: mann-whitney`): Mann–Whitney U / Hodges–Lehmann, once per step, assumes independent samples |
//! | query | [`query_bound`]: the value against the bound | — |
//!
//! [`memory`] turns cumulative readings into the increments the tests take; [`evaluator`]
//! pairs each evaluator with its memory; [`verdict`] holds what the judge answers.
//!
//! A failure is final (latched): an anytime-valid test that rejected stays rejected. Missing
//! or unusable data is `nodata` or `error`, never `pass`. Absolute bounds read the canary's
//! half of a reading only; a missing baseline leaves only the comparisons without data.
//! Every number a result shows is one its test used, and each result carries the time it
//! was decided.

mod comparison;
mod error_rate_bound;
mod error_rate_comparison;
mod evaluator;
mod latency_bound;
mod latency_comparison;
mod memory;
mod query_bound;
mod samples_mann_whitney;
mod samples_sequential;
mod state;
mod verdict;
mod wording;

pub use error_rate_bound::ErrorRateBoundMemory;
pub use error_rate_comparison::ErrorRateComparisonMemory;
pub use evaluator::Memory;
pub use latency_bound::LatencyBoundMemory;
pub use latency_comparison::{BoundTest, Combination, LatencyComparisonMemory, REQUESTS_TO_FOCUS};
pub use memory::{Decreases, Totals};
pub use query_bound::QueryBoundMemory;
pub use samples_mann_whitney::SamplesMannWhitneyMemory;
pub use samples_sequential::SamplesSequentialMemory;
pub use state::{CriterionState, JUDGE_STATE_FORMAT, JudgeState, LatestReading};
pub use verdict::{
    Assessment, BoundEvidence, CheckResult, Evidence, Moment, Verdict, fmt_num, overall,
};
pub use wording::{count, evidence_progress, pct, plain_num};

use error_rate_bound::ErrorRateBound;
use error_rate_comparison::ErrorRateComparison;
use evaluator::{Evaluator, Paired, Subject, Unusable};
use latency_bound::LatencyBound;
use latency_comparison::LatencyComparison;
use query_bound::QueryBound;
use samples_mann_whitney::SamplesMannWhitney;
use samples_sequential::SamplesSequential;
use wording::Wording;

use crate::observation::{Reading, Tick};
use crate::policy::{CheckKind, CheckSpec, Criterion, JsonMeasure, Policy, SamplesMethod};
use crate::stats::autocorrelated_mean::AutocorrelatedMeanTest;
use crate::stats::rate_ratio::RateRatioTest;
use crate::{Error, Result};

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
    criteria: Vec<Judged>,
    min_requests: u64,
}

/// One criterion: what it is and the evaluator that judges it.
#[derive(Clone, Debug)]
struct Judged {
    subject: Subject,
    evaluator: Evaluator,
    /// How its results are said in plain words.
    wording: Wording,
}

impl Judge {
    /// A judge for `policy`'s checks. Errors on a criterion no evaluator judges (a policy
    /// validation refuses: `slo` on a samples check, `baseline` on a query check).
    pub fn new(policy: &Policy, config: JudgeConfig) -> Result<Judge> {
        let alpha = policy.alpha_per_criterion();
        let criteria = policy
            .criteria()
            .map(|(check, criterion)| {
                let subject = Subject {
                    name: format!("{}/{}", check.name, criterion.as_str()),
                    check: check.name.clone(),
                    criterion,
                    kind: check.kind.name(),
                    alpha,
                };
                let evaluator = evaluator(check, criterion, alpha, config)?;
                Ok(Judged {
                    subject,
                    evaluator,
                    wording: Wording::for_check(check),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Judge {
            criteria,
            min_requests: policy.rollout.min_requests,
        })
    }

    /// The state before the first tick.
    pub fn start(&self) -> JudgeState {
        JudgeState {
            format: JUDGE_STATE_FORMAT,
            criteria: self
                .criteria
                .iter()
                .map(|judged| CriterionState {
                    name: judged.subject.name.clone(),
                    failed: None,
                    latest: LatestReading::Nothing,
                    memory: judged.evaluator.start(),
                })
                .collect(),
            step_start_requests: None,
            canary_requests: None,
            ticks: 0,
            latest_at: None,
        }
    }

    /// Marks the start of a new step: the step's request count starts again from here, and
    /// samples checks start a new sample. (A state that is not this judge's is left to
    /// [`observe`](Self::observe) and [`assess`](Self::assess) to refuse.)
    pub fn begin_step(&self, state: &mut JudgeState) {
        state.step_start_requests = state.canary_requests;
        for (judged, criterion) in self.criteria.iter().zip(&mut state.criteria) {
            if let Some(mut paired) = judged.evaluator.bind(&mut criterion.memory) {
                paired.begin_step();
            }
        }
    }

    /// Takes one tick's readings into the state. A state that does not belong to this judge
    /// (another policy's) is an error.
    pub fn observe(&self, state: &mut JudgeState, tick: &Tick) -> Result<()> {
        let mut canary_requests = None;
        for Binding {
            subject,
            mut paired,
            latest,
            ..
        } in self.bind(&mut state.criteria)?
        {
            let outcome = match tick.readings.get(&subject.check) {
                None => Err(LatestReading::NoData(
                    "the source returned no reading for this check".to_owned(),
                )),
                Some(Reading::NoData { reason }) => Err(LatestReading::NoData(reason.clone())),
                Some(Reading::Invalid { reason }) => Err(LatestReading::Invalid(reason.clone())),
                Some(Reading::Observed(observation)) => paired
                    .observe(observation, tick.at)
                    .map_err(|unusable| match unusable {
                        Unusable::NoData(reason) => LatestReading::NoData(reason),
                        Unusable::Invalid(reason) => LatestReading::Invalid(reason),
                    }),
            };
            if outcome.is_err() {
                paired.gap();
            }
            *latest = match outcome {
                Ok(requests) => {
                    if canary_requests.is_none() {
                        canary_requests = requests;
                    }
                    LatestReading::Observed
                }
                Err(status) => status,
            };
        }
        state.ticks += 1;
        state.latest_at = Some(tick.at);
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
        let state_latest_at = state.latest_at;
        let mut checks = Vec::with_capacity(self.criteria.len());
        for Binding {
            subject,
            mut paired,
            latest,
            failed,
            wording,
        } in self.bind(&mut state.criteria)?
        {
            let result = match failed {
                Some(failed) => failed.clone(),
                None => {
                    let mut result = match latest {
                        LatestReading::Nothing => {
                            subject.result(Verdict::NoData, "no reading yet", subject.no_evidence())
                        }
                        LatestReading::NoData(reason) => {
                            subject.result(Verdict::NoData, reason.clone(), subject.no_evidence())
                        }
                        LatestReading::Invalid(reason) => {
                            subject.result(Verdict::Error, reason.clone(), subject.no_evidence())
                        }
                        LatestReading::Observed => {
                            wording::reword(paired.assess(subject, moment), wording)
                        }
                    };
                    // A verdict is as of the tick it was judged on; a failure keeps its date.
                    if matches!(result.verdict, Verdict::Pass | Verdict::Fail) {
                        result.decided_at = result.decided_at.or(state_latest_at);
                    }
                    if result.verdict == Verdict::Fail {
                        *failed = Some(result.clone());
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
        let warnings = checks.iter().filter_map(fallen_totals_warning).collect();
        Ok(Assessment {
            verdict,
            reason,
            canary_requests_in_step,
            checks,
            warnings,
        })
    }

    /// Pairs each criterion with its part of `criteria`, checking first (so that nothing is
    /// changed when it is not) that the saved state is this policy's.
    fn bind<'a>(&'a self, criteria: &'a mut [CriterionState]) -> Result<Vec<Binding<'a>>> {
        let matches = criteria.len() == self.criteria.len()
            && self
                .criteria
                .iter()
                .zip(criteria.iter())
                .all(|(judged, state)| {
                    judged.subject.name == state.name && judged.evaluator.fits(&state.memory)
                });
        let mismatch = || {
            Error::Usage(
                "the saved analysis state does not match the policy's checks (was the policy changed mid-rollout?)"
                    .to_owned(),
            )
        };
        if !matches {
            return Err(mismatch());
        }
        self.criteria
            .iter()
            .zip(criteria.iter_mut())
            .map(|(judged, state)| {
                let CriterionState {
                    latest,
                    failed,
                    memory,
                    ..
                } = state;
                let paired = judged.evaluator.bind(memory).ok_or_else(mismatch)?;
                Ok(Binding {
                    subject: &judged.subject,
                    paired,
                    latest,
                    failed,
                    wording: &judged.wording,
                })
            })
            .collect()
    }
}

/// One criterion of a judge with its part of a state.
struct Binding<'a> {
    subject: &'a Subject,
    paired: Paired<'a>,
    latest: &'a mut LatestReading,
    failed: &'a mut Option<CheckResult>,
    wording: &'a Wording,
}

/// The warning for a criterion whose cumulative totals fell at some ticks.
fn fallen_totals_warning(check: &CheckResult) -> Option<String> {
    let fell = check.evidence.counter_decreases?;
    let events = if fell.events > 0 {
        format!(" and {} events", fell.events)
    } else {
        String::new()
    };
    Some(format!(
        "{}: the cumulative totals fell at {} {} (by {} requests{events} in all); the evidence counts from the highest total seen, so up to {} requests were not used (a counter reset the source did not make up for, or increase() extrapolating a bursty series)",
        check.name,
        fell.ticks,
        if fell.ticks == 1 { "tick" } else { "ticks" },
        fell.requests,
        fell.requests
    ))
}

/// The evaluator of one criterion of `check`.
fn evaluator(
    check: &CheckSpec,
    criterion: Criterion,
    alpha: f64,
    config: JudgeConfig,
) -> Result<Evaluator> {
    let unjudged = || {
        Error::Usage(format!(
            "check {:?}: a {} check has no `{}` criterion",
            check.name,
            check.kind.name(),
            criterion.as_str()
        ))
    };
    Ok(match (&check.kind, criterion) {
        (CheckKind::ErrorRate(_), Criterion::Slo) => Evaluator::ErrorRateBound(ErrorRateBound {
            bound: check.slo.ok_or_else(unjudged)?,
        }),
        (CheckKind::ErrorRate(_), Criterion::Baseline) => {
            let spec = check.baseline.ok_or_else(unjudged)?;
            Evaluator::ErrorRateComparison(ErrorRateComparison {
                test: RateRatioTest::new(spec.max_increase)?,
            })
        }
        (CheckKind::Latency(latency), Criterion::Slo) => Evaluator::LatencyBound(LatencyBound {
            quantile: latency.quantile,
            bound: check.slo.ok_or_else(unjudged)?,
        }),
        (CheckKind::Latency(latency), Criterion::Baseline) => {
            let spec = check.baseline.ok_or_else(unjudged)?;
            Evaluator::LatencyComparison(LatencyComparison {
                quantile: latency.quantile,
                slow_above: spec.slow_above,
                test: RateRatioTest::new(spec.max_increase)?,
            })
        }
        // Samples checks: the sequential test by default; Mann–Whitney, Kayenta's
        // fixed-sample test, only when the policy asks for it.
        (CheckKind::Samples(samples), Criterion::Baseline) => {
            let spec = check.baseline.ok_or_else(unjudged)?;
            match samples.method {
                SamplesMethod::Sequential => Evaluator::SamplesSequential(SamplesSequential {
                    higher_is_worse: samples.higher_is_worse,
                    min_samples: samples.min_samples,
                    max_increase: spec.max_increase,
                    test: AutocorrelatedMeanTest::new(samples.max_autocorrelation)?,
                }),
                SamplesMethod::MannWhitney => Evaluator::SamplesMannWhitney(SamplesMannWhitney {
                    higher_is_worse: samples.higher_is_worse,
                    min_samples: samples.min_samples,
                    max_increase: spec.max_increase,
                    alpha_per_run: alpha / config.sample_test_looks.max(1) as f64,
                }),
            }
        }
        (CheckKind::Query(_), Criterion::Slo) => Evaluator::QueryBound(QueryBound {
            bound: check.slo.ok_or_else(unjudged)?,
            percentile: None,
        }),
        // A generic provider's counts get the error-rate tests; a percentile or a value
        // alone, only a bound on its latest value.
        (CheckKind::Json(json), criterion) => match (&json.measure, criterion) {
            (JsonMeasure::Counts { .. }, Criterion::Slo) => {
                Evaluator::ErrorRateBound(ErrorRateBound {
                    bound: check.slo.ok_or_else(unjudged)?,
                })
            }
            (JsonMeasure::Counts { .. }, Criterion::Baseline) => {
                let spec = check.baseline.ok_or_else(unjudged)?;
                Evaluator::ErrorRateComparison(ErrorRateComparison {
                    test: RateRatioTest::new(spec.max_increase)?,
                })
            }
            (JsonMeasure::Percentile { quantile, .. }, Criterion::Slo) => {
                Evaluator::QueryBound(QueryBound {
                    bound: check.slo.ok_or_else(unjudged)?,
                    percentile: Some(*quantile),
                })
            }
            (JsonMeasure::Value { .. }, Criterion::Slo) => Evaluator::QueryBound(QueryBound {
                bound: check.slo.ok_or_else(unjudged)?,
                percentile: None,
            }),
            (JsonMeasure::Percentile { .. } | JsonMeasure::Value { .. }, Criterion::Baseline) => {
                return Err(unjudged());
            }
        },
        (CheckKind::Samples(_), Criterion::Slo) | (CheckKind::Query(_), Criterion::Baseline) => {
            return Err(unjudged());
        }
    })
}

#[cfg(test)]
mod tests;
