//! Mann–Whitney U p-values against scipy and Hodges–Lehmann estimates and intervals
//! against R, on the cases `golden/generate.py` drew (`golden/mann_whitney.json`).

use crate::golden::common;

use canary_core::stats::Alternative;
use canary_core::stats::mann_whitney::{hodges_lehmann, mann_whitney_u};
use common::Deviations;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: usize,
    kind: String,
    x: Vec<f64>,
    y: Vec<f64>,
    u: f64,
    p_value: PValues,
    hodges_lehmann: Vec<Shift>,
}

#[derive(Deserialize)]
struct PValues {
    #[serde(rename = "two-sided")]
    two_sided: f64,
    greater: f64,
    less: f64,
}

#[derive(Deserialize)]
struct Shift {
    alternative: Alternative,
    conf_level: f64,
    estimate: f64,
    lower: Option<f64>,
    upper: Option<f64>,
}

fn cases() -> Vec<Case> {
    let file: File = serde_json::from_str(include_str!("golden/mann_whitney.json")).unwrap();
    assert!(file.cases.len() >= 25);
    file.cases
}

#[test]
fn p_values_match_scipy() {
    let mut dev = Deviations::new("Mann-Whitney p-values vs scipy (1e-9 relative)");
    let mut u_dev = Deviations::new("Mann-Whitney U vs scipy (exact)");
    for case in cases() {
        for (alternative, expected) in [
            (Alternative::TwoSided, case.p_value.two_sided),
            (Alternative::Greater, case.p_value.greater),
            (Alternative::Less, case.p_value.less),
        ] {
            let result = mann_whitney_u(&case.x, &case.y, alternative).unwrap();
            let context = format!("case {} ({}) {alternative:?}", case.id, case.kind);
            dev.relative(&context, result.p_value, expected, 1e-9, f64::MIN_POSITIVE);
            u_dev.identical(&context, result.u, case.u);
            assert_eq!((result.n_x, result.n_y), (case.x.len(), case.y.len()));
        }
    }
    dev.finish();
    u_dev.finish();
}

#[test]
fn hodges_lehmann_matches_r() {
    // R's uniroot tolerance is 1e-4; the routine replays R's root finder, so the deviation
    // printed is expected to be far smaller.
    let mut dev = Deviations::new("Hodges-Lehmann vs R wilcox.test (2e-4 absolute)");
    let mut checked = 0;
    for case in cases() {
        for shift in &case.hodges_lehmann {
            let result =
                hodges_lehmann(&case.x, &case.y, shift.conf_level, shift.alternative).unwrap();
            let context = format!(
                "case {} ({}) {:?} {}",
                case.id, case.kind, shift.alternative, shift.conf_level
            );
            dev.absolute(
                &format!("{context} estimate"),
                result.estimate,
                shift.estimate,
                2e-4,
            );
            dev.absolute(
                &format!("{context} lower"),
                result.lower,
                shift.lower.unwrap_or(f64::NEG_INFINITY),
                2e-4,
            );
            dev.absolute(
                &format!("{context} upper"),
                result.upper,
                shift.upper.unwrap_or(f64::INFINITY),
                2e-4,
            );
            assert_eq!(result.conf_level, shift.conf_level);
            checked += 1;
        }
    }
    assert!(checked >= 75);
    dev.finish();
}
