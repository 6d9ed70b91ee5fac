//! The beta-binomial confidence sequence against mpmath (log M) and scipy's brentq (the
//! interval ends), `golden/binomial_cs.json`.

use crate::golden::common;

use canary_core::stats::binomial_cs;
use common::Deviations;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    events: u64,
    trials: u64,
    alpha: f64,
    lower: f64,
    upper: f64,
    probes: Vec<Probe>,
}

#[derive(Deserialize)]
struct Probe {
    /// The float's shortest representation, parsed with `str::parse` (correctly rounded):
    /// near p = 1, ln M moves by 1e−10 per unit in the last place of p.
    p: String,
    log_mixture: f64,
}

#[test]
fn log_mixture_and_interval_match() {
    let file: File = serde_json::from_str(include_str!("golden/binomial_cs.json")).unwrap();
    assert!(file.cases.len() >= 20);
    let mut log_m = Deviations::new("binomial CS ln M vs mpmath (1e-9 relative)");
    let mut e_values = Deviations::new("binomial CS e-values vs mpmath (1e-9 relative)");
    let mut ends = Deviations::new("binomial CS interval ends vs brentq (1e-9 relative)");
    for case in &file.cases {
        let name = format!("{} of {} at alpha {}", case.events, case.trials, case.alpha);
        for probe in &case.probes {
            let p: f64 = probe.p.parse().unwrap();
            let got = binomial_cs::log_mixture(case.events, case.trials, p).unwrap();
            // relative to max(|ln M|, 1): ln M crosses 0 near the estimate.
            log_m.relative(
                &format!("{name}, p = {p}"),
                got,
                probe.log_mixture,
                1e-9,
                1.0,
            );
            let e = binomial_cs::e_value(case.events, case.trials, p).unwrap();
            if probe.log_mixture.abs() < 700.0 {
                e_values.relative(
                    &format!("{name}, e-value at {p}"),
                    e,
                    probe.log_mixture.exp(),
                    1e-9,
                    0.0,
                );
            }
        }
        let (lower, upper) = binomial_cs::interval(case.events, case.trials, case.alpha).unwrap();
        ends.relative(&format!("{name} lower"), lower, case.lower, 1e-9, 1e-300);
        ends.relative(&format!("{name} upper"), upper, case.upper, 1e-9, 1e-300);
    }
    log_m.finish();
    e_values.finish();
    ends.finish();
}
