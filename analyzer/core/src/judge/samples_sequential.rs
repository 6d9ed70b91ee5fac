//! `samples` with `baseline`, the default method (`method: sequential`): the canary's
//! per-tick excess over the baseline, tested at every tick with the anytime-valid e-process of
//! [`crate::stats::autocorrelated_mean`], which allows for autocorrelated series (CPU and
//! memory read once per interval are) and for load changes that hit both versions.
//!
//! Assumption, stated where it is used: the per-tick difference of the two versions
//! (canary − baseline, less the allowance) is a Gaussian AR(2) series around its mean whose
//! persistence is at most `max-autocorrelation` (default 0.9); a version's sample is
//! missing at a tick for reasons unrelated to its value. Beyond that (a difference that
//! drifts like a random walk, or persistence above the bound), false failures exceed α:
//! measured in `docs/statistics.md`.
//!
//! The criterion fails as soon as the e-value reaches 1/α, at any tick of any step. It
//! passes at a step's end when the step had `min-samples` ticks with both versions sampled
//! and the e-value stayed below 1/α.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::evaluator::{Evaluate, Subject, Unusable, unexpected};
use super::verdict::{CheckResult, Evidence, Moment, Verdict, fmt_num};
use crate::observation::CheckObservation;
use crate::stats::autocorrelated_mean::{self, AutocorrelatedMeanState, AutocorrelatedMeanTest};

/// The evaluator of a sequential samples comparison.
#[derive(Clone, Debug)]
pub(crate) struct SamplesSequential {
    /// Whether a higher value is worse.
    pub(crate) higher_is_worse: bool,
    /// Ticks with both versions sampled that a step needs before it can pass.
    pub(crate) min_samples: usize,
    /// Allowed increase over the baseline's level, as a fraction of it.
    pub(crate) max_increase: f64,
    /// The test, with the policy's `max-autocorrelation`.
    pub(crate) test: AutocorrelatedMeanTest,
}

/// What a sequential samples comparison remembers: the e-process, and the sample counts and
/// means the report shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplesSequentialMemory {
    test: AutocorrelatedMeanState,
    /// Ticks with both versions sampled, over the whole analysis.
    paired: u64,
    /// Of those, in the current step.
    paired_in_step: u64,
    /// Mean over the paired ticks of the worse-direction difference h·(canary − baseline).
    mean_difference: f64,
    /// Mean over the paired ticks of the baseline's value.
    mean_baseline: f64,
    /// Mean over the paired ticks of |baseline|: the allowance is `max-increase` × this.
    mean_abs_baseline: f64,
}

impl SamplesSequentialMemory {
    /// κ of the test this memory belongs to.
    pub(crate) fn max_autocorrelation(&self) -> f64 {
        self.test.max_autocorrelation()
    }
}

impl SamplesSequential {
    fn difference(&self, canary: f64, baseline: f64) -> f64 {
        if self.higher_is_worse {
            canary - baseline
        } else {
            baseline - canary
        }
    }

    fn measure(&self) -> &'static str {
        if self.higher_is_worse {
            "canary − baseline, mean per tick (higher is worse)"
        } else {
            "baseline − canary, mean per tick (lower is worse)"
        }
    }
}

impl Evaluate for SamplesSequential {
    type Memory = SamplesSequentialMemory;

    fn start(&self) -> SamplesSequentialMemory {
        SamplesSequentialMemory {
            test: self.test.start(),
            paired: 0,
            paired_in_step: 0,
            mean_difference: 0.0,
            mean_baseline: 0.0,
            mean_abs_baseline: 0.0,
        }
    }

    fn observe(
        &self,
        memory: &mut SamplesSequentialMemory,
        observation: &CheckObservation,
        _at: Timestamp,
    ) -> Result<Option<f64>, Unusable> {
        let CheckObservation::Samples { canary, baseline } = observation else {
            return Err(unexpected("samples", observation));
        };
        for value in [canary, baseline].into_iter().flatten() {
            if !value.is_finite() {
                return Err(format!("a sample is not a finite number ({value})").into());
            }
        }
        let excess = match (canary, baseline) {
            (None, None) => {
                return Err(Unusable::Invalid(
                    "the query returned neither version".to_owned(),
                ));
            }
            (Some(x), Some(y)) => {
                let excess =
                    autocorrelated_mean::excess(*x, *y, self.max_increase, self.higher_is_worse);
                if !excess.is_finite() {
                    return Err(format!(
                        "the samples are too large to compare (canary {x}, baseline {y})"
                    )
                    .into());
                }
                Some(excess)
            }
            // One version without a sample: a gap in the series, not an error.
            _ => None,
        };
        self.test
            .update(&mut memory.test, excess)
            .map_err(|e| e.to_string())?;
        if let (Some(x), Some(y)) = (canary, baseline) {
            memory.paired += 1;
            memory.paired_in_step += 1;
            let n = memory.paired as f64;
            memory.mean_difference += (self.difference(*x, *y) - memory.mean_difference) / n;
            memory.mean_baseline += (y - memory.mean_baseline) / n;
            memory.mean_abs_baseline += (y.abs() - memory.mean_abs_baseline) / n;
        }
        Ok(None)
    }

    fn gap(&self, memory: &mut SamplesSequentialMemory) {
        // A tick without a usable reading breaks the series: the next value is not one tick
        // after the last. A state from another κ cannot reach here (bind checks it).
        let _ = self.test.update(&mut memory.test, None);
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut SamplesSequentialMemory,
        _moment: Moment,
    ) -> CheckResult {
        // Mid-step and at a step's end alike: the e-process is valid at every look.
        let alpha = subject.alpha;
        let allowance = self.max_increase * memory.mean_abs_baseline;
        let kappa = self.test.max_autocorrelation();
        let e_value = self.test.e_value(&memory.test);
        let lower = self
            .test
            .lower_bound(&memory.test, alpha)
            .unwrap_or(f64::NEG_INFINITY);
        let mut evidence = Evidence {
            test: format!(
                "sequential universal inference on the per-tick difference, AR(2) model with persistence ≤ {} (Wasserman, Ramdas & Balakrishnan 2020), anytime-valid",
                fmt_num(kappa)
            ),
            measure: self.measure().to_owned(),
            canary_n: Some(memory.paired),
            baseline_n: Some(memory.paired),
            confidence: Some(1.0 - alpha),
            e_value: Some(e_value),
            threshold: Some(allowance),
            alpha,
            ..Evidence::default()
        };
        if memory.paired == 0 {
            return subject.result(
                Verdict::NoData,
                "no tick has had samples of both versions yet",
                evidence,
            );
        }
        evidence.estimate = Some(memory.mean_difference);
        evidence.baseline_estimate = Some(memory.mean_baseline);
        // The test's bound on the mean excess, shown on the difference's scale: it fails
        // exactly when this lower end is above the allowance.
        evidence.interval = Some([lower + allowance, f64::INFINITY]);
        let relative = |x: f64| {
            if memory.mean_baseline != 0.0 {
                format!(
                    " ({} % of the baseline's {})",
                    fmt_num(100.0 * x / memory.mean_baseline.abs()),
                    fmt_num(memory.mean_baseline)
                )
            } else {
                String::new()
            }
        };
        let persistence_note = match memory.test.autocorrelation() {
            Some(phi) if phi > kappa => format!(
                "; the samples look more autocorrelated ({}) than the test allows for ({}): raise `max-autocorrelation` if that holds",
                fmt_num(phi),
                fmt_num(kappa)
            ),
            _ => String::new(),
        };
        if e_value >= 1.0 / alpha {
            return subject.result(
                Verdict::Fail,
                format!(
                    "the canary is worse than allowed: mean difference {}{}, allowed {}, with confidence (e-value {} ≥ {}; at least {}){persistence_note}",
                    fmt_num(memory.mean_difference),
                    relative(memory.mean_difference),
                    fmt_num(allowance),
                    fmt_num(e_value),
                    fmt_num(1.0 / alpha),
                    fmt_num(lower + allowance)
                ),
                evidence,
            );
        }
        let needed = self.min_samples as u64;
        if memory.paired_in_step < needed {
            let reason = format!(
                "{} of the {needed} ticks with samples of both versions this step needs; no evidence the canary is worse so far (e-value {} < {})",
                memory.paired_in_step,
                fmt_num(e_value),
                fmt_num(1.0 / alpha)
            );
            return subject.result(Verdict::Inconclusive, reason, evidence);
        }
        subject.result(
            Verdict::Pass,
            format!(
                "no evidence the canary is worse than allowed: mean difference {}{}, allowed {} (e-value {} < {}; {} ticks){persistence_note}",
                fmt_num(memory.mean_difference),
                relative(memory.mean_difference),
                fmt_num(allowance),
                fmt_num(e_value),
                fmt_num(1.0 / alpha),
                memory.paired
            ),
            evidence,
        )
    }

    fn begin_step(&self, memory: &mut SamplesSequentialMemory) {
        // The e-process runs across steps (its guarantee covers the whole rollout); only the
        // step's own count starts again.
        memory.paired_in_step = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Criterion;

    fn subject() -> Subject {
        Subject {
            name: "cpu/baseline".to_owned(),
            check: "cpu".to_owned(),
            criterion: Criterion::Baseline,
            kind: "samples",
            alpha: 0.01,
        }
    }

    fn evaluator(higher_is_worse: bool) -> SamplesSequential {
        SamplesSequential {
            higher_is_worse,
            min_samples: 10,
            max_increase: 0.1,
            test: AutocorrelatedMeanTest::new(0.9).unwrap(),
        }
    }

    fn observe(
        evaluator: &SamplesSequential,
        memory: &mut SamplesSequentialMemory,
        canary: Option<f64>,
        baseline: Option<f64>,
    ) {
        evaluator
            .observe(
                memory,
                &CheckObservation::Samples { canary, baseline },
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
    }

    /// A deterministic wiggle, so the tests need no random numbers.
    fn wiggle(i: u32) -> f64 {
        (f64::from(i) * 2.399).sin() * 0.1
    }

    #[test]
    fn a_clearly_worse_canary_fails_mid_step_and_a_healthy_one_passes_at_the_step_end() {
        let evaluator = evaluator(true);
        let mut worse = evaluator.start();
        let mut healthy = evaluator.start();
        let mut failed_at = None;
        for i in 0..60 {
            observe(
                &evaluator,
                &mut worse,
                Some(1.5 + wiggle(i)),
                Some(1.0 + wiggle(i + 7)),
            );
            observe(
                &evaluator,
                &mut healthy,
                Some(1.0 + wiggle(i)),
                Some(1.0 + wiggle(i + 7)),
            );
            let result = evaluator.assess(&subject(), &mut worse, Moment::MidStep);
            if result.verdict == Verdict::Fail && failed_at.is_none() {
                failed_at = Some(i);
                assert!(
                    result.reason.contains("worse than allowed"),
                    "{}",
                    result.reason
                );
                let evidence = &result.evidence;
                let [lower, _] = evidence.interval.unwrap();
                assert!(lower > evidence.threshold.unwrap());
                assert!(evidence.e_value.unwrap() >= 100.0);
            }
        }
        assert!(
            failed_at.is_some(),
            "a canary 50 % worse (10 % allowed) is caught"
        );
        let result = evaluator.assess(&subject(), &mut healthy, Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
        assert_eq!(result.evidence.canary_n, Some(60));
    }

    #[test]
    fn lower_is_worse_looks_the_other_way() {
        let evaluator = evaluator(false);
        let mut memory = evaluator.start();
        for i in 0..60 {
            // The canary is higher: better when lower is worse.
            observe(
                &evaluator,
                &mut memory,
                Some(1.5 + wiggle(i)),
                Some(1.0 + wiggle(i + 7)),
            );
        }
        let result = evaluator.assess(&subject(), &mut memory, Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
        assert!(result.evidence.estimate.unwrap() < -0.4);
    }

    #[test]
    fn a_step_needs_its_own_paired_ticks_and_one_sided_ticks_are_gaps() {
        let evaluator = evaluator(true);
        let mut memory = evaluator.start();
        let nothing = evaluator.assess(&subject(), &mut memory, Moment::StepEnd);
        assert_eq!(nothing.verdict, Verdict::NoData);
        for i in 0..12 {
            observe(
                &evaluator,
                &mut memory,
                Some(1.0 + wiggle(i)),
                Some(1.0 + wiggle(i + 3)),
            );
        }
        assert_eq!(
            evaluator
                .assess(&subject(), &mut memory, Moment::StepEnd)
                .verdict,
            Verdict::Pass
        );
        evaluator.begin_step(&mut memory);
        for i in 0..5 {
            observe(&evaluator, &mut memory, None, Some(1.0 + wiggle(i)));
            observe(&evaluator, &mut memory, Some(1.0 + wiggle(i)), Some(1.0));
        }
        let result = evaluator.assess(&subject(), &mut memory, Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::Inconclusive);
        assert!(
            result.reason.starts_with("5 of the 10"),
            "{}",
            result.reason
        );
        assert_eq!(memory.test.ticks(), 22);
        evaluator.gap(&mut memory);
        assert_eq!(memory.test.ticks(), 23);
    }

    #[test]
    fn unusable_samples_are_refused_and_change_nothing() {
        let evaluator = evaluator(true);
        let mut memory = evaluator.start();
        for bad in [
            CheckObservation::Samples {
                canary: Some(f64::NAN),
                baseline: Some(1.0),
            },
            CheckObservation::Samples {
                canary: None,
                baseline: None,
            },
            CheckObservation::Samples {
                canary: Some(f64::MAX),
                baseline: Some(-f64::MAX),
            },
            CheckObservation::Value { value: 1.0 },
        ] {
            assert!(
                evaluator
                    .observe(&mut memory, &bad, Timestamp::UNIX_EPOCH)
                    .is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(memory, evaluator.start());
    }
}
