//! The Wilson score interval against scipy's `binomtest(...).proportion_ci(method="wilson")`
//! (`golden/wilson.json`).

use crate::golden::common;

use canary_core::stats::wilson_interval;
use common::Deviations;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    successes: u64,
    trials: u64,
    conf_level: f64,
    lower: f64,
    upper: f64,
}

#[test]
fn intervals_match_scipy() {
    let file: File = serde_json::from_str(include_str!("golden/wilson.json")).unwrap();
    let mut dev = Deviations::new("Wilson interval vs scipy (1e-12 relative)");
    for case in &file.cases {
        let name = format!(
            "{} of {} at {}",
            case.successes, case.trials, case.conf_level
        );
        let (lower, upper) = wilson_interval(case.successes, case.trials, case.conf_level).unwrap();
        dev.relative(&format!("{name} lower"), lower, case.lower, 1e-12, 1e-300);
        dev.relative(&format!("{name} upper"), upper, case.upper, 1e-12, 1e-300);
    }
    dev.finish();
}
