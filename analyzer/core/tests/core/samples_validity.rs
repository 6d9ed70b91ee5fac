//! Does the `samples` criterion keep its promise on autocorrelated series? A seeded
//! simulation of the test alone (`stats::autocorrelated_mean`), 90 ticks (three steps of 30),
//! ln E checked at every tick:
//!
//! - A/A: each version's samples are AR(1) noise (φ = 0, 0.5, 0.9) around the same level;
//!   also with a trend or a step change that hits both, with samples missing at random (30 %
//!   of the canary's ticks, 10 % of the baseline's), and with a canary exactly at its
//!   allowance (`max-increase: 10%`, canary 10 % higher: the null's boundary). The share of runs that ever fail
//!   must stay under α with its Wilson 95 % upper bound, at α = 5 % and 1 %.
//! - The Kayenta method (`method: mann-whitney`, once per step) on the same A/A series fails
//!   far more often than α once φ > 0: the reason it is no longer the default.
//! - Real regressions are caught: how often and how fast is printed (`--nocapture`).
//!
//! The full tables of `docs/statistics.md` (more runs, more series, the design comparison)
//! come from `cargo run --release -p canary-core --example samples_tables`.

use crate::samples_simulation;

use canary_core::stats::autocorrelated_mean::DEFAULT_MAX_AUTOCORRELATION;
use canary_core::stats::wilson_interval;
use samples_simulation::{Common, Method, Series, maxima, tally};

const RUNS: u64 = 2000;

fn aa_scenarios() -> Vec<(&'static str, Series, f64)> {
    let mut trend = Series::aa(0.9);
    trend.common = Common::Trend;
    let mut step = Series::aa(0.9);
    step.common = Common::Step;
    let mut missing = Series::aa(0.5);
    missing.canary_missing = 0.3;
    missing.baseline_missing = 0.1;
    // Canary 10 % above the baseline in level and noise: its mean excess is exactly 0.
    let mut at_allowance = Series::aa(0.5);
    at_allowance.scale_canary = 0.1;
    vec![
        ("AR(1) φ = 0", Series::aa(0.0), 0.0),
        ("AR(1) φ = 0.5", Series::aa(0.5), 0.0),
        ("AR(1) φ = 0.9", Series::aa(0.9), 0.0),
        ("AR(1) φ = 0.9, common trend", trend, 0.0),
        ("AR(1) φ = 0.9, common step", step, 0.0),
        ("AR(1) φ = 0.5, 30 % / 10 % missing", missing, 0.0),
        (
            "canary at its 10 % allowance, φ = 0.5, trend",
            at_allowance,
            0.1,
        ),
    ]
}

#[test]
fn healthy_canaries_with_autocorrelated_samples_are_rarely_failed() {
    let started = std::time::Instant::now();
    let mut problems = Vec::new();
    for (index, (name, series, max_increase)) in aa_scenarios().into_iter().enumerate() {
        let maxima = maxima(
            &series,
            DEFAULT_MAX_AUTOCORRELATION,
            max_increase,
            RUNS,
            0x5a3b_1e00 + index as u64,
        );
        for alpha in [0.05_f64, 0.01] {
            let failed = maxima.iter().filter(|&&m| m >= (1.0 / alpha).ln()).count() as u64;
            let (low, high) = wilson_interval(failed, RUNS, 0.95).unwrap();
            println!(
                "A/A {name}, alpha {alpha}: {failed} of {RUNS} failed ({:.2} %, Wilson 95 % {:.2}–{:.2} %)",
                100.0 * failed as f64 / RUNS as f64,
                100.0 * low,
                100.0 * high
            );
            if high > alpha {
                problems.push(format!("{name} at alpha {alpha}: upper bound {high:.4}"));
            }
        }
    }
    println!("took {:.1?}", started.elapsed());
    assert!(
        problems.is_empty(),
        "false failures above alpha: {problems:?}"
    );
}

#[test]
fn mann_whitney_once_per_step_fails_healthy_autocorrelated_canaries() {
    // The old default on the same kind of series: fine on independent samples, far above α
    // once they are autocorrelated.
    let alpha = 0.05;
    let independent = tally(
        &Series::aa(0.0),
        Method::MannWhitney { steps: 3 },
        0.0,
        alpha,
        400,
        11,
    );
    let correlated = tally(
        &Series::aa(0.5),
        Method::MannWhitney { steps: 3 },
        0.0,
        alpha,
        400,
        12,
    );
    let strongly = tally(
        &Series::aa(0.9),
        Method::MannWhitney { steps: 3 },
        0.0,
        alpha,
        400,
        13,
    );
    println!(
        "Mann–Whitney per step at alpha {alpha}: φ 0 {:.1} %, φ 0.5 {:.1} %, φ 0.9 {:.1} %",
        100.0 * independent.rate(),
        100.0 * correlated.rate(),
        100.0 * strongly.rate()
    );
    assert!(independent.wilson().1 > independent.rate() && independent.rate() <= alpha);
    assert!(correlated.wilson().0 > alpha, "φ = 0.5 should break it");
    assert!(
        strongly.wilson().0 > 3.0 * alpha,
        "φ = 0.9 should break it badly"
    );
}

#[test]
fn regressions_in_autocorrelated_samples_are_caught() {
    let alpha = 0.01;
    let method = Method::Sequential {
        max_autocorrelation: DEFAULT_MAX_AUTOCORRELATION,
    };
    // (φ, shift in standard deviations of one version's noise, required detection share)
    for (phi, shift, required) in [
        (0.0, 4.0, 0.95),
        (0.5, 16.0, 0.95),
        (0.9, 16.0, 0.95),
        (0.0, 2.0, 0.80),
    ] {
        let mut series = Series::aa(phi);
        series.shift = shift;
        let result = tally(
            &series,
            method,
            0.0,
            alpha,
            300,
            0xbad + (phi * 10.0) as u64,
        );
        println!(
            "φ {phi}, canary +{shift} sd: caught in {:.1} % of 300 runs within 90 ticks, median tick {:?}",
            100.0 * result.rate(),
            result.median_tick()
        );
        assert!(
            result.rate() >= required,
            "φ {phi}, +{shift} sd: caught {} < {required}",
            result.rate()
        );
    }
}
