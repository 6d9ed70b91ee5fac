//! The rate-ratio e-value and its confidence bounds against the design's formula evaluated
//! independently in numpy (`golden/generate.py`, `golden/rate_ratio.json`).

use crate::golden::common;

use canary_core::stats::rate_ratio::{EventCounts, RateRatioTest};
use common::Deviations;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
    savvi_comparison: Vec<SavviCase>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    allowed_increase: f64,
    alpha: f64,
    ticks: Vec<Tick>,
    log_e_value: f64,
    lower_bound: f64,
    upper_bound: Option<f64>,
}

#[derive(Deserialize)]
struct Tick {
    /// [requests, events]
    canary: [u64; 2],
    baseline: [u64; 2],
}

#[derive(Deserialize)]
struct SavviCase {
    true_ratio: f64,
    alpha: f64,
    ticks: Vec<[u64; 4]>,
    design_e_value: f64,
    savvi_multinomial_bayes_factor: f64,
}

fn file() -> File {
    serde_json::from_str(include_str!("golden/rate_ratio.json")).unwrap()
}

#[test]
fn e_values_and_bounds_match_the_formula() {
    let file = file();
    assert!(file.cases.len() >= 20);
    // E compared at 1e-9 relative, i.e. ln E at 1e-9 absolute (relative once |ln E| > 1,
    // where E itself would overflow or underflow).
    let mut e_dev = Deviations::new("rate-ratio ln E vs numpy (1e-9)");
    let mut bound_dev = Deviations::new("rate-ratio bounds vs numpy (1e-12 relative)");
    for case in &file.cases {
        let test = RateRatioTest::new(case.allowed_increase).unwrap();
        let mut state = test.start();
        for tick in &case.ticks {
            let canary = EventCounts::new(tick.canary[0], tick.canary[1]);
            let baseline = EventCounts::new(tick.baseline[0], tick.baseline[1]);
            test.update(&mut state, canary, baseline).unwrap();
        }
        let name = &case.name;
        e_dev.relative(name, test.log_e_value(&state), case.log_e_value, 1e-9, 1.0);
        let lower = test.lower_bound(&state, case.alpha).unwrap();
        let upper = test.upper_bound(&state, case.alpha).unwrap();
        bound_dev.relative(
            &format!("{name} lower"),
            lower,
            case.lower_bound,
            1e-12,
            1e-300,
        );
        bound_dev.relative(
            &format!("{name} upper"),
            upper,
            case.upper_bound.unwrap_or(f64::INFINITY),
            1e-12,
            1e-300,
        );
        assert_eq!(state.ticks(), case.ticks.len() as u64);
    }
    e_dev.finish();
    bound_dev.finish();
}

/// savvi's multinomial test (Lindon & Malek 2022) uses a Dirichlet prior centred on the
/// null and tests the two-sided point null "the canary's share of errors equals its share
/// of traffic"; this design mixes over one-sided alternatives θ > θ₀. The numbers differ by
/// design, so only the decision at 1/α is compared: both keep a healthy canary and both
/// flag a doubled error rate. The numbers are printed for the record.
#[test]
fn decisions_agree_with_savvi_multinomial() {
    let file = file();
    assert!(
        !file.savvi_comparison.is_empty(),
        "re-run generate.py with savvi installed"
    );
    for case in &file.savvi_comparison {
        let test = RateRatioTest::new(0.0).unwrap();
        let mut state = test.start();
        for t in &case.ticks {
            test.update(
                &mut state,
                EventCounts::new(t[0], t[1]),
                EventCounts::new(t[2], t[3]),
            )
            .unwrap();
        }
        let ours = test.e_value(&state);
        println!(
            "true ratio {}: this design E = {ours:.4e} (numpy {:.4e}), savvi Bayes factor {:.4e}, 1/alpha = {}",
            case.true_ratio,
            case.design_e_value,
            case.savvi_multinomial_bayes_factor,
            1.0 / case.alpha
        );
        assert!((ours - case.design_e_value).abs() <= 1e-9 * case.design_e_value);
        let threshold = 1.0 / case.alpha;
        assert_eq!(
            ours >= threshold,
            case.savvi_multinomial_bayes_factor >= threshold
        );
        assert_eq!(ours >= threshold, case.true_ratio > 1.0);
    }
}
