//! `samples` with `baseline` and `method: mann-whitney`, Kayenta's way: Mann–Whitney U with the Hodges–Lehmann shift
//! and its confidence interval, as R's `wilcox.test(conf.int = TRUE, exact = FALSE,
//! correct = TRUE)` computes them ([`crate::stats::mann_whitney`]).
//!
//! A fixed-sample test: it runs once per step, at the step's end, on that step's samples,
//! with the criterion's α split across the analysed steps. It assumes independent samples:
//! on autocorrelated series (CPU, memory) it fails healthy canaries far more often than α
//! (`docs/statistics.md`), which is why the sequential method is the default and every
//! result of this one says "not anytime-valid; assumes independent samples".

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::evaluator::{Evaluate, Subject, Unusable, unexpected};
use super::verdict::{CheckResult, Evidence, Moment, Verdict, fmt_num};
use crate::observation::CheckObservation;
use crate::stats::{Alternative, mann_whitney};

/// What every result of this method says about itself: it is chosen with
/// `method: mann-whitney`, and the α promise of the other criteria does not hold for it.
const NOT_ANYTIME_VALID: &str = "not anytime-valid; assumes independent samples";

/// The evaluator of a Mann–Whitney samples comparison.
#[derive(Clone, Debug)]
pub(crate) struct SamplesMannWhitney {
    /// Whether a higher value is worse.
    pub(crate) higher_is_worse: bool,
    /// Samples per version before the test runs.
    pub(crate) min_samples: usize,
    /// Allowed increase over the baseline's median, as a fraction of it.
    pub(crate) max_increase: f64,
    /// α of each of the test's runs: the criterion's α over the runs a rollout may make.
    pub(crate) alpha_per_run: f64,
}

/// What a Mann–Whitney samples comparison remembers: this step's samples, and the step's
/// test once run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplesMannWhitneyMemory {
    canary: Vec<f64>,
    baseline: Vec<f64>,
    tested: Option<Box<CheckResult>>,
}

impl Evaluate for SamplesMannWhitney {
    type Memory = SamplesMannWhitneyMemory;

    fn start(&self) -> SamplesMannWhitneyMemory {
        SamplesMannWhitneyMemory::default()
    }

    fn observe(
        &self,
        memory: &mut SamplesMannWhitneyMemory,
        observation: &CheckObservation,
        _at: Timestamp,
    ) -> Result<Option<f64>, Unusable> {
        let CheckObservation::Samples { canary, baseline } = observation else {
            return Err(unexpected("samples", observation));
        };
        for value in [canary, baseline].into_iter().flatten() {
            if !value.is_finite() {
                return Err(Unusable::Invalid(format!(
                    "a sample is not a finite number ({value})"
                )));
            }
        }
        if canary.is_none() && baseline.is_none() {
            return Err(Unusable::Invalid(
                "the query returned neither version".to_owned(),
            ));
        }
        memory.canary.extend(*canary);
        memory.baseline.extend(*baseline);
        Ok(None)
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut SamplesMannWhitneyMemory,
        moment: Moment,
    ) -> CheckResult {
        if let Some(done) = &memory.tested {
            return (**done).clone();
        }
        let (canary, baseline) = (&memory.canary, &memory.baseline);
        let enough = canary.len() >= self.min_samples && baseline.len() >= self.min_samples;
        if moment == Moment::StepEnd && enough {
            let result = self.test(subject, canary, baseline);
            memory.tested = Some(Box::new(result.clone()));
            return result;
        }
        let evidence = Evidence {
            test: format!(
                "Mann–Whitney U with Hodges–Lehmann shift (runs once per step, at its end); {NOT_ANYTIME_VALID}"
            ),
            measure: "canary − baseline shift".to_owned(),
            canary_n: Some(canary.len() as u64),
            baseline_n: Some(baseline.len() as u64),
            ..subject.no_evidence()
        };
        let reason = if enough {
            "enough samples; the test runs at the step's end".to_owned()
        } else {
            format!(
                "{} canary and {} baseline samples of the {} needed",
                canary.len(),
                baseline.len(),
                self.min_samples
            )
        };
        subject.result(Verdict::Inconclusive, reason, evidence)
    }

    fn begin_step(&self, memory: &mut SamplesMannWhitneyMemory) {
        *memory = SamplesMannWhitneyMemory::default();
    }
}

impl SamplesMannWhitney {
    /// Mann–Whitney U with the Hodges–Lehmann shift: fails when the one-sided lower
    /// confidence bound of the shift (worse direction) exceeds the allowed increase over the
    /// baseline's median.
    fn test(&self, subject: &Subject, canary: &[f64], baseline: &[f64]) -> CheckResult {
        let alpha = self.alpha_per_run;
        let median = median(baseline);
        let tolerance = self.max_increase * median.abs();
        // Orient so that "greater" always means "the canary is worse".
        let (x, y) = if self.higher_is_worse {
            (canary, baseline)
        } else {
            (baseline, canary)
        };
        let mut evidence = Evidence {
            test: format!(
                "Mann–Whitney U (tie- and continuity-corrected) with Hodges–Lehmann shift, as R's wilcox.test; {NOT_ANYTIME_VALID}"
            ),
            measure: if self.higher_is_worse {
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
            return subject.result(Verdict::Pass, "every sample has the same value", evidence);
        }
        let test = mann_whitney::mann_whitney_u(x, y, Alternative::Greater);
        let shift = mann_whitney::hodges_lehmann(x, y, 1.0 - alpha, Alternative::Greater);
        match (test, shift) {
            (Ok(test), Ok(shift)) => {
                evidence.p_value = Some(test.p_value);
                evidence.estimate = Some(shift.estimate);
                evidence.interval = Some([shift.lower, shift.upper]);
                if shift.lower > tolerance {
                    subject.result(
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
                    subject.result(
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
            (Err(err), _) | (_, Err(err)) => {
                subject.result(Verdict::Error, err.to_string(), evidence)
            }
        }
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

    fn evaluator() -> SamplesMannWhitney {
        SamplesMannWhitney {
            higher_is_worse: true,
            min_samples: 5,
            max_increase: 0.1,
            alpha_per_run: 0.01,
        }
    }

    fn observe_all(
        evaluator: &SamplesMannWhitney,
        memory: &mut SamplesMannWhitneyMemory,
        pairs: impl Iterator<Item = (f64, f64)>,
    ) {
        for (canary, baseline) in pairs {
            let observation = CheckObservation::Samples {
                canary: Some(canary),
                baseline: Some(baseline),
            };
            evaluator
                .observe(memory, &observation, Timestamp::UNIX_EPOCH)
                .unwrap();
        }
    }

    #[test]
    fn the_test_runs_only_at_the_step_end_and_is_kept_for_the_step() {
        let evaluator = evaluator();
        let mut memory = evaluator.start();
        observe_all(
            &evaluator,
            &mut memory,
            (0..20).map(|i| (2.0 + f64::from(i % 3) / 10.0, 1.0 + f64::from(i % 4) / 10.0)),
        );
        let mid = evaluator.assess(&subject(), &mut memory, Moment::MidStep);
        assert_eq!(mid.verdict, Verdict::Inconclusive);
        let end = evaluator.assess(&subject(), &mut memory, Moment::StepEnd);
        assert_eq!(end.verdict, Verdict::Fail, "{}", end.reason);
        // More samples do not re-run it within the step.
        observe_all(&evaluator, &mut memory, (0..20).map(|_| (1.0, 1.0)));
        assert_eq!(
            evaluator.assess(&subject(), &mut memory, Moment::StepEnd),
            end
        );
        evaluator.begin_step(&mut memory);
        assert_eq!(memory, SamplesMannWhitneyMemory::default());
    }

    #[test]
    fn too_few_samples_say_how_many_are_needed() {
        let evaluator = evaluator();
        let mut memory = evaluator.start();
        observe_all(&evaluator, &mut memory, (0..3).map(|_| (1.0, 1.0)));
        let result = evaluator.assess(&subject(), &mut memory, Moment::StepEnd);
        assert_eq!(result.verdict, Verdict::Inconclusive);
        assert!(
            result.reason.contains("of the 5 needed"),
            "{}",
            result.reason
        );
    }

    #[test]
    fn non_finite_samples_and_empty_ticks_are_refused() {
        let evaluator = evaluator();
        let mut memory = evaluator.start();
        let nan = CheckObservation::Samples {
            canary: Some(f64::NAN),
            baseline: Some(1.0),
        };
        assert!(
            evaluator
                .observe(&mut memory, &nan, Timestamp::UNIX_EPOCH)
                .is_err()
        );
        let neither = CheckObservation::Samples {
            canary: None,
            baseline: None,
        };
        assert!(
            evaluator
                .observe(&mut memory, &neither, Timestamp::UNIX_EPOCH)
                .is_err()
        );
    }
}
