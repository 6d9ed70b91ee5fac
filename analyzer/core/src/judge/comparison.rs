//! The verdict of the error-rate comparison: the conditional-binomial mixture e-value of
//! [`crate::stats::rate_ratio`] against `1/α`, with the counts the e-value was computed from.

use super::evaluator::Subject;
use super::verdict::{CheckResult, Evidence, Verdict, fmt_num};
use crate::stats::rate_ratio::{EventCounts, RateRatioState, RateRatioTest};

/// A comparison of event rates with the conditional-binomial mixture e-value: fails when the
/// e-value reaches `1/α`; `nodata` while a version has no requests; otherwise a pass (no
/// evidence the canary is worse). The counts shown are the test's own.
pub(crate) fn assess_comparison(
    subject: &Subject,
    test: &RateRatioTest,
    state: &RateRatioState,
    measure: &str,
) -> CheckResult {
    let alpha = subject.alpha;
    let null_ratio = test.null_ratio();
    let rate = |t: EventCounts| (t.trials > 0).then(|| t.events as f64 / t.trials as f64);
    let (canary, baseline) = (state.canary(), state.baseline());
    let e_value = test.e_value(state);
    let lower = test.lower_bound(state, alpha).unwrap_or(0.0);
    let estimate = test.estimate(state);
    let evidence = Evidence {
        test: "conditional-binomial mixture e-value (Lindon & Malek 2022), anytime-valid"
            .to_owned(),
        measure: measure.to_owned(),
        canary_n: Some(canary.trials),
        baseline_n: Some(baseline.trials),
        canary_events: Some(canary.events),
        baseline_events: Some(baseline.events),
        estimate,
        baseline_estimate: rate(baseline),
        interval: Some([lower, f64::INFINITY]),
        confidence: Some(1.0 - alpha),
        e_value: Some(e_value),
        threshold: Some(null_ratio),
        alpha,
        ..Evidence::default()
    };
    if e_value >= 1.0 / alpha {
        return subject.result(
            Verdict::Fail,
            format!(
                "the canary is worse than {}× baseline with confidence (e-value {} ≥ {}; ratio at least {})",
                fmt_num(null_ratio),
                fmt_num(e_value),
                fmt_num(1.0 / alpha),
                fmt_num(lower)
            ),
            evidence,
        );
    }
    if canary.trials == 0 {
        return subject.result(Verdict::NoData, "no canary requests yet", evidence);
    }
    if baseline.trials == 0 {
        return subject.result(
            Verdict::NoData,
            "no baseline requests to compare with",
            evidence,
        );
    }
    subject.result(
        Verdict::Pass,
        format!(
            "no evidence the canary is worse than {}× baseline (e-value {} < {})",
            fmt_num(null_ratio),
            fmt_num(e_value),
            fmt_num(1.0 / alpha)
        ),
        evidence,
    )
}
