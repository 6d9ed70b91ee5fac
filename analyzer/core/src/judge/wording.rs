//! Reasons in plain words, in the policy's units.
//!
//! The evaluators state their verdicts the way a statistician checks them (the test, the
//! e-value against `1/α`, the confidence bound). People reading a report want the comparison
//! said as they would say it — "errors 6.7 % vs baseline 0.18 % (≈36×); the policy allows no
//! increase; at least 1.09× with 99.75 % confidence" — with the statistics one line below.
//! [`reword`] builds that sentence from the result's own evidence (every number in it is one
//! the test used) and keeps the evaluator's sentence as the result's `statistics`.
//!
//! Units: error rates and shares of requests in %, latencies in ms (in s when the policy's
//! own latency bound is a second or more), ratios as `×`, counts with thousands separators
//! and what they count. Results without the numbers to say more (no data, unusable data)
//! keep their reason, which already says what is missing.

use super::verdict::{BoundEvidence, CheckResult, Evidence, Verdict, fmt_num};
use crate::policy::{CheckKind, CheckSpec, Criterion, JsonMeasure};

/// What a check's results need to be said in its units.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Wording {
    /// Latency checks: the quantile judged, e.g. 0.95 (said as p95).
    quantile: Option<f64>,
    /// Latencies in seconds rather than milliseconds (the policy's latency bound is ≥ 1 s).
    seconds: bool,
    /// The kind whose wording fits: the check's own, or for a generic provider's `json`
    /// check the kind it is judged as (`error-rate` for counts, `query` for a value).
    judged_as: &'static str,
}

impl Wording {
    /// The wording of `check`'s results.
    pub(crate) fn for_check(check: &CheckSpec) -> Wording {
        let quantile = match &check.kind {
            CheckKind::Latency(latency) => Some(latency.quantile),
            _ => None,
        };
        let seconds = check.slo.is_some_and(|slo| slo.max >= 1.0);
        let judged_as = match &check.kind {
            CheckKind::Json(json) => match json.measure {
                JsonMeasure::Counts { .. } => "error-rate",
                JsonMeasure::Percentile { .. } | JsonMeasure::Value { .. } => "query",
            },
            other => other.name(),
        };
        Wording {
            quantile,
            seconds,
            judged_as,
        }
    }

    /// A latency, seconds, in this check's unit: `212 ms` or `1.5 s`.
    fn latency(&self, seconds: f64) -> String {
        if self.seconds {
            format!("{} s", plain_num(seconds))
        } else {
            format!("{} ms", plain_num(seconds * 1000.0))
        }
    }

    /// `p95`, `p99.9`.
    fn quantile_name(&self) -> String {
        format!("p{}", fmt_num(self.quantile.unwrap_or(0.5) * 100.0))
    }
}

/// `result` with its reason in plain words and the evaluator's sentence as its `statistics`;
/// unchanged when it lacks the numbers (no data, unusable data, a samples test whose reason
/// is already in its own units).
pub(crate) fn reword(mut result: CheckResult, wording: &Wording) -> CheckResult {
    if !matches!(
        result.verdict,
        Verdict::Pass | Verdict::Fail | Verdict::Inconclusive
    ) || !result.statistics.is_empty()
    {
        return result;
    }
    let e = &result.evidence;
    let plain = match (wording.judged_as, result.criterion) {
        ("error-rate", Criterion::Slo) => error_rate_slo(result.verdict, e),
        ("error-rate", Criterion::Baseline) => error_rate_comparison(result.verdict, e),
        ("latency", Criterion::Slo) => latency_slo(result.verdict, e, wording),
        ("latency", Criterion::Baseline) => latency_comparison(result.verdict, e, wording),
        ("query", Criterion::Slo) => query_slo(result.verdict, e, &result.check),
        _ => None,
    };
    if let Some((plain, counts)) = plain {
        let old = std::mem::replace(&mut result.reason, plain);
        result.statistics = match counts {
            Some(counts) => format!("{counts}; {old}"),
            None => old,
        };
    }
    result
}

/// How far an e-value is towards the `1/α` that fails its criterion, 0 to 1, on the log
/// scale the test accumulates evidence on (an e-value below 1 is no evidence at all).
pub fn evidence_progress(e_value: f64, alpha: f64) -> f64 {
    // NaN compares false both ways: it is no evidence.
    let evidence = e_value > 1.0 && alpha > 0.0 && alpha < 1.0;
    if !evidence {
        return 0.0;
    }
    (e_value.ln() / (1.0 / alpha).ln()).clamp(0.0, 1.0)
}

type Said = Option<(String, Option<String>)>;

fn error_rate_slo(verdict: Verdict, e: &Evidence) -> Said {
    let (n, k, rate, bound) = (e.canary_n?, e.canary_events?, e.estimate?, e.threshold?);
    let head = format!(
        "errors {} ({} of {} canary requests failed); the policy allows at most {}",
        pct(rate),
        count(k),
        count(n),
        pct(bound)
    );
    let said = match verdict {
        Verdict::Pass => head,
        Verdict::Fail => format!(
            "{head}; at least {}{}",
            pct(e.interval?[0]),
            with_confidence(e)
        ),
        _ => format!(
            "{head}; above it, but not yet with confidence (it may be as low as {})",
            pct(e.interval?[0])
        ),
    };
    Some((said, None))
}

fn latency_slo(verdict: Verdict, e: &Evidence, wording: &Wording) -> Said {
    let (n, bound) = (e.canary_n?, e.threshold?);
    let q = wording.quantile_name();
    let tail = 1.0 - wording.quantile?;
    let said = match verdict {
        Verdict::Fail => {
            let slow = e.canary_events?;
            format!(
                "{q} above {}: {} of {} canary requests slower than {} ({}; a {q} allows {}){}",
                wording.latency(bound),
                count(slow),
                count(n),
                wording.latency(bound),
                pct(slow as f64 / n.max(1) as f64),
                pct(tail),
                with_confidence(e)
            )
        }
        Verdict::Pass => format!(
            "{q} {} ({} canary requests); the policy allows at most {}",
            wording.latency(e.estimate?),
            count(n),
            wording.latency(bound)
        ),
        // An estimate within the bound that is still inconclusive is one the histogram
        // cannot place (beyond its highest bucket): the evaluator's reason says so.
        _ if e.estimate? <= bound => return None,
        _ => format!(
            "{q} {} ({} canary requests), above the {} the policy allows, but not yet with confidence",
            wording.latency(e.estimate?),
            count(n),
            wording.latency(bound)
        ),
    };
    Some((said, None))
}

fn latency_comparison(verdict: Verdict, e: &Evidence, wording: &Wording) -> Said {
    let lead = leading_bound(e)?;
    let slower = format!("slower than {}", wording.latency(lead.bound));
    let counts = format!(
        "{} of {} canary and {} of {} baseline requests {slower}",
        count(lead.canary_events),
        count(lead.canary_n),
        count(lead.baseline_events),
        count(lead.baseline_n),
    );
    let canary = share(lead.canary_events, lead.canary_n)?;
    let baseline = share(lead.baseline_events, lead.baseline_n)?;
    let head = format!(
        "{} of canary requests {slower} vs {} of baseline requests{}",
        pct(canary),
        pct(baseline),
        ratio(canary, baseline)
    );
    Some((comparison(verdict, e, head)?, Some(counts)))
}

/// The bound whose counts the evidence shows (the one with the most evidence).
fn leading_bound(e: &Evidence) -> Option<&BoundEvidence> {
    e.bounds.iter().find(|b| {
        Some(b.canary_n) == e.canary_n
            && Some(b.canary_events) == e.canary_events
            && Some(b.baseline_n) == e.baseline_n
            && Some(b.baseline_events) == e.baseline_events
    })
}

/// ` (≈36×)`, or words where a number would read wrong: `≈0×` when the canary had none,
/// an infinite ratio when the baseline had none, `0.00001×` when it is tiny.
fn ratio(canary: f64, baseline: f64) -> String {
    match (canary > 0.0, baseline > 0.0) {
        (false, false) => " (neither had any)".to_owned(),
        (false, true) => " (none in the canary)".to_owned(),
        (true, false) => " (none in the baseline)".to_owned(),
        (true, true) if canary / baseline < 0.01 => " (under 0.01×)".to_owned(),
        (true, true) => format!(" (≈{}×)", plain_num(canary / baseline)),
    }
}

/// A ratio's confidence bound: `1.09×`, or words when it is too large to be a number.
fn at_least(bound: f64) -> String {
    if bound.is_finite() && bound < 1e6 {
        format!("at least {}×", plain_num(bound))
    } else {
        "many times more".to_owned()
    }
}

/// `HEAD; the policy allows no increase; at least 1.09× with 99.75 % confidence`, where
/// HEAD says the two rates, e.g. `errors 6.7 % vs baseline 0.18 % (≈36×)`.
fn comparison(verdict: Verdict, e: &Evidence, head: String) -> Option<String> {
    let increase = e.threshold? - 1.0;
    let allows = if increase <= 1e-9 {
        "the policy allows no increase".to_owned()
    } else {
        format!("the policy allows up to {} more", pct(increase))
    };
    let needed = plain_num(1.0 / e.alpha);
    Some(match verdict {
        Verdict::Fail => format!(
            "{head}; {allows}; {}{}",
            at_least(e.interval?[0]),
            with_confidence(e)
        ),
        _ if e.e_value? < 1.0 => format!("{head}; {allows}; no evidence of more"),
        _ => format!(
            "{head}; {allows}; no proof of more yet (evidence {} of the {needed} needed to fail)",
            plain_num(e.e_value?),
        ),
    })
}

fn query_slo(verdict: Verdict, e: &Evidence, check: &str) -> Said {
    let (value, bound) = (e.estimate?, e.threshold?);
    let said = match verdict {
        Verdict::Pass => format!(
            "{check} is {}; the policy allows at most {}",
            plain_num(value),
            plain_num(bound)
        ),
        Verdict::Fail => format!(
            "{check} is {}; the policy allows at most {}",
            plain_num(value),
            plain_num(bound)
        ),
        _ => format!(
            "{check} is {}, above the {} the policy allows (judged at the step's end)",
            plain_num(value),
            plain_num(bound)
        ),
    };
    Some((said, None))
}

/// `errors 6.7 % vs baseline 0.18 % (≈36×); …`, the counts (`170 of 2,537 canary and 18 of
/// 10,021 baseline requests failed`) for the statistics.
fn error_rate_comparison(verdict: Verdict, e: &Evidence) -> Said {
    let canary = share(e.canary_events?, e.canary_n?)?;
    let baseline = e.baseline_estimate?;
    let head = format!(
        "errors {} vs baseline {}{}",
        pct(canary),
        pct(baseline),
        ratio(canary, baseline)
    );
    let counts = format!(
        "{} of {} canary and {} of {} baseline requests failed",
        count(e.canary_events?),
        count(e.canary_n?),
        count(e.baseline_events?),
        count(e.baseline_n?)
    );
    Some((comparison(verdict, e, head)?, Some(counts)))
}

fn with_confidence(e: &Evidence) -> String {
    e.confidence
        .map(|c| format!(" with {} % confidence", fmt_num(c * 100.0)))
        .unwrap_or_default()
}

fn share(events: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| events as f64 / n as f64)
}

/// A fraction as a percentage: `6.7 %`, `0.18 %`.
pub fn pct(fraction: f64) -> String {
    format!("{} %", plain_num(fraction * 100.0))
}

/// A count with thousands separators: `2,537`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number for people: three significant digits (whole numbers from 100 up, with
/// thousands separators), no exponent in ordinary ranges.
pub fn plain_num(x: f64) -> String {
    if !x.is_finite() {
        return fmt_num(x);
    }
    if x.abs() >= 100.0 && x.abs() < 1e15 {
        let rounded = x.abs().round() as u64;
        let sign = if x < 0.0 { "-" } else { "" };
        return format!("{sign}{}", count(rounded));
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if magnitude < -4 {
        return format!("{x:.2e}");
    }
    let decimals = (2 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_said_as_people_write_them() {
        assert_eq!(plain_num(6.7008), "6.7");
        assert_eq!(plain_num(0.1776), "0.178");
        assert_eq!(plain_num(36.2), "36.2");
        assert_eq!(plain_num(1.0912), "1.09");
        assert_eq!(plain_num(400.0), "400");
        assert_eq!(plain_num(12_345.6), "12,346");
        assert_eq!(count(2537), "2,537");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(pct(0.067), "6.7 %");
    }

    /// An error-rate comparison's result as the evaluator gives it, `canary` and `baseline`
    /// being (errors, requests), for `reword` to say in words.
    fn comparison_result(
        verdict: Verdict,
        canary: (u64, u64),
        baseline: (u64, u64),
        e_value: f64,
        lower: f64,
    ) -> CheckResult {
        CheckResult {
            name: "errors/baseline".to_owned(),
            check: "errors".to_owned(),
            criterion: Criterion::Baseline,
            kind: "error-rate".to_owned(),
            verdict,
            reason: "the evaluator's sentence".to_owned(),
            statistics: String::new(),
            evidence: Evidence {
                canary_events: Some(canary.0),
                canary_n: Some(canary.1),
                baseline_events: Some(baseline.0),
                baseline_n: Some(baseline.1),
                baseline_estimate: Some(baseline.0 as f64 / baseline.1 as f64),
                e_value: Some(e_value),
                interval: Some([lower, f64::INFINITY]),
                confidence: Some(0.9975),
                threshold: Some(1.0),
                alpha: 0.0025,
                ..Evidence::default()
            },
            decided_at: None,
        }
    }

    fn reworded(result: CheckResult) -> String {
        let wording = Wording {
            quantile: None,
            seconds: false,
            judged_as: "error-rate",
        };
        reword(result, &wording).reason
    }

    /// A ratio with nothing on one side is said in words, never as `≈0×` or `∞×`.
    #[test]
    fn ratios_with_zero_or_infinity_are_said_in_words() {
        let none_in_canary = reworded(comparison_result(
            Verdict::Pass,
            (0, 2_537),
            (18, 10_021),
            0.2,
            0.0,
        ));
        assert_eq!(
            none_in_canary,
            "errors 0 % vs baseline 0.18 % (none in the canary); the policy allows no increase; no evidence of more"
        );
        let none_in_baseline = reworded(comparison_result(
            Verdict::Fail,
            (170, 2_537),
            (0, 10_021),
            1e6,
            f64::INFINITY,
        ));
        assert_eq!(
            none_in_baseline,
            "errors 6.7 % vs baseline 0 % (none in the baseline); the policy allows no increase; many times more with 99.75 % confidence"
        );
        let tiny = reworded(comparison_result(
            Verdict::Pass,
            (1, 1_000_000),
            (500, 10_000),
            0.01,
            0.0,
        ));
        assert!(tiny.contains("(under 0.01×)"), "{tiny}");
        let neither = reworded(comparison_result(
            Verdict::Pass,
            (0, 100),
            (0, 100),
            1.0,
            0.0,
        ));
        assert!(neither.contains("(neither had any)"), "{neither}");
        for said in [&none_in_canary, &none_in_baseline, &tiny, &neither] {
            assert!(
                !said.contains("≈0×") && !said.contains("inf") && !said.contains('∞'),
                "{said}"
            );
        }
    }

    #[test]
    fn evidence_progress_is_on_the_log_scale() {
        assert_eq!(evidence_progress(0.5, 0.0025), 0.0);
        assert!((evidence_progress(20.0, 0.0025) - 0.5).abs() < 1e-12);
        assert_eq!(evidence_progress(1e9, 0.0025), 1.0);
        assert_eq!(evidence_progress(f64::NAN, 0.0025), 0.0);
    }
}
