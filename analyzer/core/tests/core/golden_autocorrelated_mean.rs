//! The samples test (`stats::autocorrelated_mean`) against its prototype
//! (`golden/autocorrelated_mean.py`, `golden/autocorrelated_mean.json`), which computes the
//! same e-process directly: design matrices and `numpy.linalg.lstsq` for the numerator's
//! predictive, `scipy.stats.t` for its density, and `scipy.optimize.lsq_linear` (bounded-
//! variable least squares) for the constrained maximum likelihood, where the Rust code keeps
//! running moments and solves the constraints' active sets in closed form.

use crate::golden::common;

use canary_core::stats::autocorrelated_mean::{self, AutocorrelatedMeanTest};
use common::Deviations;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    pairs_before_scoring: u64,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    canary: Vec<Option<f64>>,
    baseline: Vec<Option<f64>>,
    max_increase: f64,
    higher_is_worse: bool,
    max_autocorrelation: f64,
    excess: Vec<Option<f64>>,
    /// ln E(0) after each tick; `null` for −∞.
    log_e_value: Vec<Option<f64>>,
    scored: u64,
    mean_excess: Option<f64>,
    /// [c, ln E(c)] after the last tick.
    log_e_at: Vec<[f64; 2]>,
    /// By α: a number, "+Inf" or "-Inf".
    lower_bound: std::collections::BTreeMap<String, serde_json::Value>,
}

fn number(value: &serde_json::Value) -> f64 {
    match value {
        serde_json::Value::String(s) if s == "+Inf" => f64::INFINITY,
        serde_json::Value::String(s) if s == "-Inf" => f64::NEG_INFINITY,
        other => other.as_f64().expect("a number or ±Inf"),
    }
}

#[test]
fn the_samples_test_matches_its_prototype() {
    let file: File = serde_json::from_str(include_str!("golden/autocorrelated_mean.json"))
        .expect("the golden file parses");
    assert_eq!(
        file.pairs_before_scoring,
        autocorrelated_mean::PAIRS_BEFORE_SCORING
    );
    let mut excess_dev = Deviations::new("autocorrelated_mean excess");
    let mut log_e_dev = Deviations::new("autocorrelated_mean ln E");
    let mut bound_dev = Deviations::new("autocorrelated_mean lower bound");
    let mut scored_any = 0;
    for case in &file.cases {
        let test = AutocorrelatedMeanTest::new(case.max_autocorrelation).unwrap();
        let mut state = test.start();
        for (tick, ((x, y), expected)) in case
            .canary
            .iter()
            .zip(&case.baseline)
            .zip(&case.excess)
            .enumerate()
        {
            let d = match (x, y) {
                (Some(x), Some(y)) => Some(autocorrelated_mean::excess(
                    *x,
                    *y,
                    case.max_increase,
                    case.higher_is_worse,
                )),
                _ => None,
            };
            match (d, expected) {
                (Some(d), Some(e)) => {
                    excess_dev.relative(&format!("{} tick {tick}", case.name), d, *e, 1e-15, 1.0)
                }
                (None, None) => {}
                _ => panic!("{} tick {tick}: presence of the excess differs", case.name),
            }
            test.update(&mut state, d).unwrap();
            let expected = case.log_e_value[tick].unwrap_or(f64::NEG_INFINITY);
            log_e_dev.absolute(
                &format!("{} tick {tick}", case.name),
                test.log_e_value(&state),
                expected,
                1e-8 * (1.0 + expected.abs()),
            );
        }
        assert_eq!(state.scored(), case.scored, "{}: scored ticks", case.name);
        scored_any += usize::from(case.scored > 0);
        match (state.mean_excess(), case.mean_excess) {
            (Some(a), Some(e)) => excess_dev.relative(&case.name, a, e, 1e-12, 1.0),
            (None, None) => {}
            other => panic!("{}: mean excess {other:?}", case.name),
        }
        for [c, expected] in &case.log_e_at {
            log_e_dev.absolute(
                &format!("{} at c = {c}", case.name),
                test.log_e_value_at(&state, *c),
                *expected,
                1e-8 * (1.0 + expected.abs()),
            );
        }
        for (alpha, expected) in &case.lower_bound {
            let alpha: f64 = alpha.parse().unwrap();
            let expected = number(expected);
            let actual = test.lower_bound(&state, alpha).unwrap();
            // The bound is a root of ln E(c) = ln(1/α): compared on the scale of the data.
            let values: Vec<f64> = case.excess.iter().flatten().copied().collect();
            let scale = values.iter().map(|v| v.abs()).fold(1e-300, f64::max);
            bound_dev.absolute(
                &format!("{} alpha {alpha}", case.name),
                actual,
                expected,
                1e-8 * scale,
            );
        }
    }
    assert!(scored_any >= 15, "the cases exercise the scored path");
    excess_dev.finish();
    log_e_dev.finish();
    bound_dev.finish();
}
