//! The judge on `samples` checks, end to end: a policy's samples check fed AR(1) readings tick
//! by tick through `Judge::observe` and `Judge::assess` over three steps of 30 ticks, as a
//! rollout does. A healthy canary must be failed in at most α of the runs (Wilson upper
//! bound), whatever the autocorrelation up to 0.9; the Kayenta method, now an explicit
//! opt-in, says in its evidence that it does not promise that.

use crate::samples_simulation;

use std::collections::BTreeMap;

use canary_core::judge::{Judge, JudgeConfig, Moment, Verdict};
use canary_core::observation::{CheckObservation, Reading, Tick};
use canary_core::policy::Policy;
use canary_core::stats::wilson_interval;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use samples_simulation::{Series, draw};

const ALPHA: f64 = 0.05;
const STEPS: usize = 3;
const TICKS_PER_STEP: usize = 30;

fn policy(method: &str) -> Policy {
    let yaml = format!(
        r#"
service: api
traffic: {{label: version, canary: canary, baseline: stable}}
metrics: {{prometheus: {{url: "http://localhost:9090"}}}}
rollout: {{alpha: 5%, min-requests: 0}}
checks:
  - name: cpu
    samples:
      query: 'avg by ({{{{label}}}}) (rate(cpu_seconds_total[1m]))'
{method}
    baseline: {{max-increase: 0%}}
"#
    );
    Policy::from_yaml(&yaml, "samples.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn tick(k: usize, canary: Option<f64>, baseline: Option<f64>) -> Tick {
    let mut readings = BTreeMap::new();
    readings.insert(
        "cpu".to_owned(),
        Reading::Observed(CheckObservation::Samples { canary, baseline }),
    );
    Tick {
        at: jiff::Timestamp::from_second(1_700_000_000 + 10 * k as i64).unwrap(),
        window_seconds: 10.0 * k as f64,
        readings,
        warnings: Vec::new(),
    }
}

/// Plays one rollout's worth of ticks; the tick at which the samples criterion failed.
fn rollout(judge: &Judge, canary: &[Option<f64>], baseline: &[Option<f64>]) -> Option<usize> {
    let mut state = judge.start();
    for step in 0..STEPS {
        if step > 0 {
            judge.begin_step(&mut state);
        }
        for i in 0..TICKS_PER_STEP {
            let k = step * TICKS_PER_STEP + i;
            judge
                .observe(&mut state, &tick(k, canary[k], baseline[k]))
                .unwrap();
            let moment = if i + 1 == TICKS_PER_STEP {
                Moment::StepEnd
            } else {
                Moment::MidStep
            };
            let assessment = judge.assess(&mut state, moment).unwrap();
            if assessment.verdict == Verdict::Fail {
                return Some(k + 1);
            }
        }
    }
    None
}

fn false_failures(judge: &Judge, phi: f64, runs: u64, seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let series = Series::aa(phi);
    (0..runs)
        .filter(|_| {
            let (canary, baseline) = draw(&mut rng, &series);
            rollout(judge, &canary, &baseline).is_some()
        })
        .count() as u64
}

#[test]
fn a_healthy_canary_with_autocorrelated_samples_is_rarely_rolled_back() {
    let judge = Judge::new(
        &policy(""),
        JudgeConfig {
            sample_test_looks: STEPS,
        },
    )
    .unwrap();
    const RUNS: u64 = 400;
    for (phi, seed) in [(0.0, 1), (0.5, 2), (0.9, 3)] {
        let failed = false_failures(&judge, phi, RUNS, seed);
        let (_, high) = wilson_interval(failed, RUNS, 0.95).unwrap();
        println!("judge, samples check, φ = {phi}: {failed} of {RUNS} healthy rollouts failed");
        assert!(
            high <= ALPHA,
            "φ = {phi}: {failed} of {RUNS} failed (Wilson upper bound {high:.3} > α {ALPHA})"
        );
    }
}

#[test]
fn a_worse_canary_is_rolled_back_mid_step() {
    let judge = Judge::new(
        &policy(""),
        JudgeConfig {
            sample_test_looks: STEPS,
        },
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut series = Series::aa(0.5);
    series.shift = 8.0;
    let (canary, baseline) = draw(&mut rng, &series);
    let failed_at = rollout(&judge, &canary, &baseline).expect("caught");
    assert!(
        !failed_at.is_multiple_of(TICKS_PER_STEP),
        "decided mid-step (tick {failed_at})"
    );
}

#[test]
fn the_kayenta_method_is_an_opt_in_marked_as_such() {
    let judge = Judge::new(
        &policy("      method: mann-whitney"),
        JudgeConfig {
            sample_test_looks: STEPS,
        },
    )
    .unwrap();
    let mut state = judge.start();
    for k in 0..TICKS_PER_STEP {
        let wiggle = (k as f64 * 2.399).sin();
        judge
            .observe(&mut state, &tick(k, Some(1.0 + wiggle), Some(1.0 - wiggle)))
            .unwrap();
    }
    let assessment = judge.assess(&mut state, Moment::StepEnd).unwrap();
    let test = &assessment.checks[0].evidence.test;
    assert!(
        test.contains("not anytime-valid; assumes independent samples"),
        "{test}"
    );
    // On the same autocorrelated series where the default keeps α, it does not.
    let failed = false_failures(&judge, 0.9, 200, 3);
    assert!(
        wilson_interval(failed, 200, 0.95).unwrap().0 > ALPHA,
        "Mann–Whitney per step failed {failed} of 200 healthy rollouts at φ = 0.9"
    );
}
