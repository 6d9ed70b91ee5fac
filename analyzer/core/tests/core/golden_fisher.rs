//! Fisher's exact test against scipy's `fisher_exact` and against the same p-values summed
//! in 50-digit arithmetic (`golden/fisher.json`).

use crate::golden::common;

use canary_core::stats::Alternative;
use canary_core::stats::fisher::fisher_exact;
use common::Deviations;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    table: [[u64; 2]; 2],
    #[serde(rename = "two-sided")]
    two_sided: f64,
    greater: f64,
    less: f64,
    #[serde(rename = "two-sided-mpmath")]
    two_sided_exact: f64,
    #[serde(rename = "greater-mpmath")]
    greater_exact: f64,
    #[serde(rename = "less-mpmath")]
    less_exact: f64,
    /// A number, or "inf" / "nan".
    odds_ratio: serde_json::Value,
}

#[test]
fn p_values_and_odds_ratios_match_scipy() {
    let file: File = serde_json::from_str(include_str!("golden/fisher.json")).unwrap();
    assert!(file.cases.len() >= 20);
    let mut p = Deviations::new("Fisher p-values vs scipy (1e-9 relative)");
    let mut exact = Deviations::new("Fisher p-values vs 50-digit mpmath (1e-12 relative)");
    let mut odds = Deviations::new("Fisher odds ratios vs scipy (1e-15 relative)");
    for case in &file.cases {
        let name = format!("{:?}", case.table);
        for (alternative, expected, expected_exact) in [
            (Alternative::TwoSided, case.two_sided, case.two_sided_exact),
            (Alternative::Greater, case.greater, case.greater_exact),
            (Alternative::Less, case.less, case.less_exact),
        ] {
            let result = fisher_exact(case.table, alternative).unwrap();
            let context = format!("{name} {alternative:?}");
            p.relative(&context, result.p_value, expected, 1e-9, 1e-300);
            exact.relative(&context, result.p_value, expected_exact, 1e-12, 1e-300);
        }
        let expected = match &case.odds_ratio {
            serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
            serde_json::Value::String(s) if s == "nan" => f64::NAN,
            v => v.as_f64().unwrap(),
        };
        let got = fisher_exact(case.table, Alternative::TwoSided)
            .unwrap()
            .odds_ratio;
        odds.relative(&name, got, expected, 1e-15, 1e-300);
    }
    p.finish();
    exact.finish();
    odds.finish();
}
