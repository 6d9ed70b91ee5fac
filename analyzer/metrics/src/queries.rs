//! The PromQL each check runs: one query per check per tick, returning both versions.
//!
//! Pure functions of the policy and the window, so `canary policy explain` prints exactly
//! what the source sends, and the tests can show that no label value from a policy can
//! change a query's structure: every value goes through [`LabelMatcher`]'s `Display`
//! (PromQL string escaping), the version regex is regex-escaped first, and label and metric
//! names were validated when the policy was read.
//!
//! Counts are cumulative since the analysis started: `increase(…[Ws])` with `W` the whole
//! seconds since the start, rounded down, evaluated at the tick (see `canary_core::observation`).

use std::fmt::Write as _;

use canary_core::policy::{
    CheckKind, CheckSpec, LabelMatcher, MatchOp, QueryTemplate, TemplatePart, TemplateVariable,
    TrafficSelector, escape_string,
};
use jiff::Timestamp;

/// The label the error-rate query adds to tell its two halves apart.
pub const SERIES_LABEL: &str = "canary_series";
/// [`SERIES_LABEL`]'s value on the request counts.
pub const REQUESTS_SERIES: &str = "requests";
/// [`SERIES_LABEL`]'s value on the error counts.
pub const ERRORS_SERIES: &str = "errors";

/// What a query is filled in with at one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryWindow {
    /// Seconds since the analysis started, rounded down, at least 1: the `[Ws]` of `increase()`.
    pub window_seconds: u64,
    /// The policy's analysis interval in whole seconds (at least 1): `{{interval}}`.
    pub interval_seconds: u64,
}

impl QueryWindow {
    /// The window of a tick at `at` of an analysis that started at `since`.
    pub fn new(since: Timestamp, at: Timestamp, interval: std::time::Duration) -> Self {
        QueryWindow {
            window_seconds: window_seconds(since, at),
            interval_seconds: interval.as_secs_f64().ceil().max(1.0) as u64,
        }
    }
}

/// Whole seconds from `since` to `at`, rounded **down**, at least 1 (PromQL has no empty
/// range). Rounding down keeps the window inside the analysis: a window reaching back before
/// `since` would count what happened before the rollout started (the previous canary's
/// errors, say) as evidence about this one.
pub fn window_seconds(since: Timestamp, at: Timestamp) -> u64 {
    let nanos = at.as_nanosecond() - since.as_nanosecond();
    if nanos <= 0 {
        return 1;
    }
    let seconds = nanos / 1_000_000_000;
    u64::try_from(seconds).unwrap_or(u64::MAX).max(1)
}

/// The query of one check at one tick.
pub fn check_query(check: &CheckSpec, traffic: &TrafficSelector, window: QueryWindow) -> String {
    let w = window.window_seconds;
    match &check.kind {
        CheckKind::ErrorRate(error_rate) => {
            let label = &traffic.label;
            let metric = &error_rate.requests_metric;
            let requests = selector(&both_versions(traffic));
            let mut with_errors = both_versions(traffic);
            with_errors.extend(error_rate.error_matchers.iter().cloned());
            let errors = selector(&with_errors);
            format!(
                "label_replace(sum by ({label}) (increase({metric}{requests}[{w}s])), \
                 \"{SERIES_LABEL}\", \"{REQUESTS_SERIES}\", \"\", \"\") \
                 or label_replace(sum by ({label}) (increase({metric}{errors}[{w}s])), \
                 \"{SERIES_LABEL}\", \"{ERRORS_SERIES}\", \"\", \"\")"
            )
        }
        CheckKind::Latency(latency) => format!(
            "sum by (le, {label}) (increase({histogram}_bucket{sel}[{w}s]))",
            label = traffic.label,
            histogram = latency.histogram,
            sel = selector(&both_versions(traffic)),
        ),
        CheckKind::Samples(samples) => render_template(&samples.query, traffic, window),
        CheckKind::Query(query) => render_template(&query.promql, traffic, window),
        // Never sent: a policy with a json check reads a generic provider, never PromQL
        // (validation refuses the mix). A PromQL comment, should it be printed.
        CheckKind::Json(_) => {
            "# a json check reads a generic provider's answer, not PromQL".to_owned()
        }
    }
}

/// The counter a check reads raw samples of over a past window (error-rate: its requests;
/// latency: its buckets), `None` for checks that run the policy's own PromQL.
pub fn raw_samples_metric(check: &CheckSpec) -> Option<String> {
    match &check.kind {
        CheckKind::ErrorRate(e) => Some(e.requests_metric.clone()),
        CheckKind::Latency(l) => Some(format!("{}_bucket", l.histogram)),
        CheckKind::Samples(_) | CheckKind::Query(_) | CheckKind::Json(_) => None,
    }
}

/// The raw samples of `metric` for both versions over the `range_ms` milliseconds before
/// the evaluation time: `METRIC{SEL}[Dms]` (whole seconds written as `s`), a matrix, from
/// which [`crate::window`] computes each tick's answer for `canary analyze` over a past
/// window. The error matchers are not in it: the error series are a subset of these, picked
/// out locally.
pub fn raw_samples_query(metric: &str, traffic: &TrafficSelector, range_ms: i64) -> String {
    format!(
        "{}[{}]",
        raw_samples_selector(metric, traffic),
        range_text(range_ms)
    )
}

/// A range of `range_ms` milliseconds (at least 1) as PromQL writes it: whole seconds as
/// `Ns`, else `Nms`.
pub fn range_text(range_ms: i64) -> String {
    let range_ms = range_ms.max(1);
    if range_ms % 1000 == 0 {
        format!("{}s", range_ms / 1000)
    } else {
        format!("{range_ms}ms")
    }
}

/// `METRIC{SEL}`, the series [`raw_samples_query`] reads: two rollouts with the same one read
/// the same samples (`canary controller` shares one query between them, [`crate::shared`]).
pub fn raw_samples_selector(metric: &str, traffic: &TrafficSelector) -> String {
    format!("{metric}{}", selector(&both_versions(traffic)))
}

/// The common matchers plus one that selects exactly the two versions.
///
/// The version matcher is a regex alternation of the two values, each regex-escaped, so
/// other versions (an old release still serving) are never summed in and the answer stays
/// small; the values are then PromQL-string-escaped by [`LabelMatcher`]'s `Display`.
/// Prometheus anchors the regex at both ends. (The answer is still filtered by value when
/// it is read, so a third version could not leak in either way.)
pub fn both_versions(traffic: &TrafficSelector) -> Vec<LabelMatcher> {
    let mut matchers = traffic.matchers.clone();
    matchers.push(LabelMatcher {
        name: traffic.label.clone(),
        op: MatchOp::Regex,
        value: format!(
            "{}|{}",
            quote_meta(&traffic.canary),
            quote_meta(&traffic.baseline)
        ),
    });
    matchers
}

/// `{a="x", b=~"y"}`.
pub fn selector(matchers: &[LabelMatcher]) -> String {
    format!("{{{}}}", matchers_list(matchers))
}

fn matchers_list(matchers: &[LabelMatcher]) -> String {
    let mut out = String::new();
    for (i, matcher) in matchers.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{matcher}");
    }
    out
}

/// Escapes every character RE2 gives a meaning to, like Go's `regexp.QuoteMeta`, so the
/// value matches only itself.
pub fn quote_meta(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Fills a policy's query template: names are validated, values escaped, never raw.
pub fn render_template(
    template: &QueryTemplate,
    traffic: &TrafficSelector,
    window: QueryWindow,
) -> String {
    let mut out = String::with_capacity(template.source.len() + 64);
    for part in &template.parts {
        match part {
            TemplatePart::Literal(text) => out.push_str(text),
            TemplatePart::Variable(variable) => match variable {
                TemplateVariable::Label => out.push_str(&traffic.label),
                TemplateVariable::Canary => out.push_str(&escape_string(&traffic.canary)),
                TemplateVariable::Baseline => out.push_str(&escape_string(&traffic.baseline)),
                TemplateVariable::Selector => out.push_str(&matchers_list(&traffic.matchers)),
                TemplateVariable::CanarySelector => {
                    out.push_str(&matchers_list(&version_selector(traffic, &traffic.canary)));
                }
                TemplateVariable::BaselineSelector => {
                    out.push_str(&matchers_list(&version_selector(
                        traffic,
                        &traffic.baseline,
                    )));
                }
                TemplateVariable::Window => {
                    let _ = write!(out, "{}s", window.window_seconds);
                }
                TemplateVariable::Interval => {
                    let _ = write!(out, "{}s", window.interval_seconds);
                }
            },
        }
    }
    out
}

fn version_selector(traffic: &TrafficSelector, value: &str) -> Vec<LabelMatcher> {
    let mut matchers = traffic.matchers.clone();
    matchers.push(LabelMatcher::equal(traffic.label.clone(), value));
    matchers
}

/// A one-line description of what a check's query returns, for `canary policy explain`.
pub fn describe(check: &CheckSpec, traffic: &TrafficSelector) -> String {
    match &check.kind {
        CheckKind::ErrorRate(e) => format!(
            "error-rate: requests and errors of both versions in one query, cumulative since the start; the series are told apart by {SERIES_LABEL}=\"{REQUESTS_SERIES}\"|\"{ERRORS_SERIES}\" and {} (from {})",
            traffic.label, e.requests_metric
        ),
        CheckKind::Latency(l) => format!(
            "latency: cumulative buckets of {}_bucket by le and {}, both versions in one query; p{} estimated as histogram_quantile does",
            l.histogram,
            traffic.label,
            fmt_quantile(l.quantile)
        ),
        CheckKind::Samples(_) => format!(
            "samples: the policy's query, one series per version (by {}), one sample per tick",
            traffic.label
        ),
        CheckKind::Query(_) => {
            "query: the policy's query, which must give one value (one series or a scalar)"
                .to_owned()
        }
        CheckKind::Json(json) => format!("json: {}", json.measure.guarantee()),
    }
}

fn fmt_quantile(q: f64) -> String {
    let percent = q * 100.0;
    if (percent - percent.round()).abs() < 1e-9 {
        format!("{}", percent.round())
    } else {
        format!("{percent}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use canary_core::policy::{ErrorRateCheck, LatencyCheck, QueryCheck, parse_matchers};

    use super::*;

    fn traffic(canary: &str, baseline: &str, common: &str) -> TrafficSelector {
        TrafficSelector {
            label: "version".to_owned(),
            canary: canary.to_owned(),
            baseline: baseline.to_owned(),
            matchers: parse_matchers(common).unwrap(),
        }
    }

    fn check(kind: CheckKind) -> CheckSpec {
        CheckSpec {
            name: "c".to_owned(),
            kind,
            slo: None,
            baseline: None,
        }
    }

    fn error_rate() -> CheckSpec {
        check(CheckKind::ErrorRate(ErrorRateCheck {
            requests_metric: "http_requests_total".to_owned(),
            error_matchers: parse_matchers(r#"code=~"5..""#).unwrap(),
        }))
    }

    const W300: QueryWindow = QueryWindow {
        window_seconds: 300,
        interval_seconds: 30,
    };

    #[test]
    fn the_window_is_whole_seconds_rounded_down() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(window_seconds(start, at("2026-01-01T00:05:00Z")), 300);
        assert_eq!(window_seconds(start, at("2026-01-01T00:05:00.999Z")), 300);
        assert_eq!(window_seconds(start, start), 1);
        assert_eq!(window_seconds(at("2026-01-01T00:05:00Z"), start), 1);
        let w = QueryWindow::new(
            start,
            at("2026-01-01T00:00:30Z"),
            Duration::from_millis(1500),
        );
        assert_eq!(w.window_seconds, 30);
        assert_eq!(w.interval_seconds, 2);
    }

    #[test]
    fn error_rate_is_one_query_for_both_versions_and_both_counts() {
        let q = check_query(
            &error_rate(),
            &traffic("canary", "stable", r#"job="checkout""#),
            W300,
        );
        assert_eq!(
            q,
            "label_replace(sum by (version) (increase(http_requests_total{job=\"checkout\", version=~\"canary|stable\"}[300s])), \"canary_series\", \"requests\", \"\", \"\") \
             or label_replace(sum by (version) (increase(http_requests_total{job=\"checkout\", version=~\"canary|stable\", code=~\"5..\"}[300s])), \"canary_series\", \"errors\", \"\", \"\")"
        );
    }

    #[test]
    fn latency_reads_buckets_by_le_and_version() {
        let latency = check(CheckKind::Latency(LatencyCheck {
            histogram: "http_request_duration_seconds".to_owned(),
            quantile: 0.95,
        }));
        let q = check_query(&latency, &traffic("canary", "stable", ""), W300);
        assert_eq!(
            q,
            "sum by (le, version) (increase(http_request_duration_seconds_bucket{version=~\"canary|stable\"}[300s]))"
        );
    }

    #[test]
    fn templates_are_filled_with_escaped_values() {
        let template = QueryTemplate::parse(
            "sum by ({{label}}) (rate(x{ {{selector}} }[{{interval}}])) + on() y{ {{canary_selector}} }[{{window}}] / z{version=\"{{baseline}}\", {{baseline_selector}}}",
        )
        .unwrap();
        let q = render_template(
            &template,
            &traffic("can\"ary", "sta}ble", r#"ns="a\\b""#),
            W300,
        );
        assert_eq!(
            q,
            r#"sum by (version) (rate(x{ ns="a\\b" }[30s])) + on() y{ ns="a\\b", version="can\"ary" }[300s] / z{version="sta}ble", ns="a\\b", version="sta}ble"}"#
        );
        let query = check(CheckKind::Query(QueryCheck { promql: template }));
        assert_eq!(
            check_query(
                &query,
                &traffic("can\"ary", "sta}ble", r#"ns="a\\b""#),
                W300
            ),
            q
        );
    }

    /// The selectors `{…}` of a query, found by a scanner that knows PromQL strings, and the
    /// query with every string literal emptied (its structure).
    fn selectors_and_skeleton(query: &str) -> (Vec<String>, String) {
        let mut selectors = Vec::new();
        let mut skeleton = String::new();
        let mut chars = query.chars().peekable();
        let mut current: Option<String> = None;
        while let Some(ch) = chars.next() {
            match ch {
                '"' => {
                    skeleton.push_str("\"\"");
                    let mut literal = String::from('"');
                    while let Some(c) = chars.next() {
                        literal.push(c);
                        if c == '\\' {
                            literal.push(chars.next().expect("escape at the end"));
                        } else if c == '"' {
                            break;
                        }
                    }
                    if let Some(sel) = current.as_mut() {
                        sel.push_str(&literal);
                    }
                }
                '{' => {
                    skeleton.push(ch);
                    current = Some(String::new());
                }
                '}' => {
                    skeleton.push(ch);
                    selectors.push(current.take().expect("a } closes a {"));
                }
                c => {
                    skeleton.push(c);
                    if let Some(sel) = current.as_mut() {
                        sel.push(c);
                    }
                }
            }
        }
        assert!(current.is_none(), "unclosed selector in {query}");
        (selectors, skeleton)
    }

    #[test]
    fn a_label_value_holding_quote_brace_or_backslash_cannot_change_the_query() {
        let hostile = traffic(
            r#"x"} or vector(1) or {a="\"#,
            r#"st\"able}\\"#,
            r#"job="a\"}\\", env!~"p}\"rod""#,
        );
        let benign = traffic("canary", "stable", r#"job="checkout", env!~"prod""#);
        for spec in [
            error_rate(),
            check(CheckKind::Latency(LatencyCheck {
                histogram: "h".to_owned(),
                quantile: 0.5,
            })),
        ] {
            let q = check_query(&spec, &hostile, W300);
            let (selectors, skeleton) = selectors_and_skeleton(&q);
            let (_, benign_skeleton) = selectors_and_skeleton(&check_query(&spec, &benign, W300));
            assert_eq!(skeleton, benign_skeleton, "the structure changed:\n{q}");
            // Each selector parses back to exactly the matchers that were meant.
            let mut expected = both_versions(&hostile);
            for sel in &selectors {
                let parsed = parse_matchers(sel).unwrap_or_else(|e| panic!("{e}: {sel}"));
                assert_eq!(&parsed[..expected.len()], &expected[..], "{sel}");
            }
            if let CheckKind::ErrorRate(e) = &spec.kind {
                expected.extend(e.error_matchers.iter().cloned());
                assert_eq!(parse_matchers(&selectors[1]).unwrap(), expected);
            }
        }
        // The version regex matches the two values and nothing else.
        let version = both_versions(&hostile).pop().unwrap();
        let re = regex::Regex::new(&format!("^(?:{})$", version.value)).unwrap();
        assert!(re.is_match(&hostile.canary));
        assert!(re.is_match(&hostile.baseline));
        assert!(!re.is_match("x"));
        assert!(!re.is_match(&format!("{}|{}", hostile.canary, hostile.baseline)));
    }

    #[test]
    fn quote_meta_escapes_every_re2_metacharacter() {
        assert_eq!(quote_meta("v1.2+b|c(d)"), r"v1\.2\+b\|c\(d\)");
        let nasty = r"a.b*c?d+e(f)g|h[i]j{k}l^m$n\o";
        let re = regex::Regex::new(&format!("^(?:{})$", quote_meta(nasty))).unwrap();
        assert!(re.is_match(nasty));
        assert!(!re.is_match("aXb*c?d+e(f)g|h[i]j{k}l^m$n\\o"));
    }
}
