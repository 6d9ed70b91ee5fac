//! Prometheus HTTP API answers, typed, and what each check makes of one.
//!
//! Every shape the API can give is handled: a vector, a scalar, a matrix, a string, an
//! empty vector (no data), `NaN` and `±Inf` values (invalid, never a pass), several series
//! where one was expected (invalid, naming them), `status: error` (the query's fault or the
//! server's), and `warnings`. Answer format: <https://prometheus.io/docs/prometheus/latest/querying/api/>.

use std::collections::BTreeMap;
use std::fmt;

use canary_core::observation::{
    BaselineData, CheckObservation, HistogramBucket, Reading, RequestCounts,
};
use canary_core::policy::{TrafficSelector, Version};
use serde::Deserialize;

use crate::queries::{ERRORS_SERIES, REQUESTS_SERIES, SERIES_LABEL};

/// A label set, as Prometheus returns it.
pub type Labels = BTreeMap<String, String>;

/// One series of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: Labels,
    /// Its value (may be NaN or infinite: Prometheus can return those).
    pub value: f64,
}

/// One series of a range vector.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    /// Its labels.
    pub labels: Labels,
    /// `(unix seconds, value)` pairs.
    pub values: Vec<(f64, f64)>,
}

/// The `data` of a successful answer.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    /// An instant vector.
    Vector(Vec<Series>),
    /// A scalar.
    Scalar(f64),
    /// A range vector (range queries).
    Matrix(Vec<RangeSeries>),
    /// A string.
    String(String),
}

impl QueryResult {
    /// The result type as Prometheus names it.
    pub fn type_name(&self) -> &'static str {
        match self {
            QueryResult::Vector(_) => "vector",
            QueryResult::Scalar(_) => "scalar",
            QueryResult::Matrix(_) => "matrix",
            QueryResult::String(_) => "string",
        }
    }
}

/// A parsed API answer.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiAnswer {
    /// `status: success`.
    Success {
        /// The result.
        result: QueryResult,
        /// Prometheus' `warnings` (partial answers, dropped series).
        warnings: Vec<String>,
    },
    /// `status: error`.
    Error {
        /// `errorType`: `bad_data`, `execution`, `timeout`, `canceled`, `internal`, …
        error_type: String,
        /// `error`.
        message: String,
    },
}

/// Why a body is not a Prometheus API answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Not JSON at all (an HTML page, plain text).
    NotJson,
    /// JSON of another shape.
    Malformed(String),
}

#[derive(Deserialize)]
struct RawAnswer {
    status: String,
    #[serde(default)]
    data: Option<RawData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    /// VictoriaMetrics' mark of an answer from some of its storage nodes only.
    #[serde(default, rename = "isPartial")]
    is_partial: Option<bool>,
}

#[derive(Deserialize)]
struct RawData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Option<Vec<(f64, String)>>,
    #[serde(default)]
    histogram: Option<serde_json::Value>,
}

/// Parses an API answer body.
pub fn parse_answer(body: &[u8]) -> Result<ApiAnswer, AnswerError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
    let raw: RawAnswer = serde_json::from_value(value)
        .map_err(|e| AnswerError::Malformed(format!("not a Prometheus API answer: {e}")))?;
    match raw.status.as_str() {
        "success" => {
            let data = raw.data.ok_or_else(|| {
                AnswerError::Malformed("`status: success` without `data`".to_owned())
            })?;
            let mut warnings = raw.warnings.unwrap_or_default();
            if raw.is_partial == Some(true) {
                warnings.push(
                    "partial response: the answer is marked isPartial (some storage nodes did not answer)"
                        .to_owned(),
                );
            }
            Ok(ApiAnswer::Success {
                result: parse_result(&data.result_type, data.result)?,
                warnings,
            })
        }
        "error" => Ok(ApiAnswer::Error {
            error_type: raw.error_type.unwrap_or_else(|| "unknown".to_owned()),
            message: raw.error.unwrap_or_else(|| "(no message)".to_owned()),
        }),
        other => Err(AnswerError::Malformed(format!(
            "unknown status {other:?}, expected \"success\" or \"error\""
        ))),
    }
}

fn parse_result(result_type: &str, result: serde_json::Value) -> Result<QueryResult, AnswerError> {
    let malformed =
        |e: serde_json::Error| AnswerError::Malformed(format!("{result_type} result: {e}"));
    match result_type {
        "vector" => {
            let raw: Vec<RawSeries> = serde_json::from_value(result).map_err(malformed)?;
            let mut series = Vec::with_capacity(raw.len());
            for s in raw {
                let Some((_, value)) = s.value else {
                    let what = if s.histogram.is_some() {
                        "a native histogram (not supported: use classic buckets)"
                    } else {
                        "no value"
                    };
                    return Err(AnswerError::Malformed(format!(
                        "series {} has {what}",
                        LabelSet(&s.metric)
                    )));
                };
                series.push(Series {
                    value: parse_value(&value)?,
                    labels: s.metric,
                });
            }
            Ok(QueryResult::Vector(series))
        }
        "scalar" => {
            let (_, value): (f64, String) = serde_json::from_value(result).map_err(malformed)?;
            Ok(QueryResult::Scalar(parse_value(&value)?))
        }
        "matrix" => {
            let raw: Vec<RawSeries> = serde_json::from_value(result).map_err(malformed)?;
            let mut series = Vec::with_capacity(raw.len());
            for s in raw {
                let mut values = Vec::new();
                for (t, v) in s.values.unwrap_or_default() {
                    values.push((t, parse_value(&v)?));
                }
                series.push(RangeSeries {
                    labels: s.metric,
                    values,
                });
            }
            Ok(QueryResult::Matrix(series))
        }
        "string" => {
            let (_, value): (f64, String) = serde_json::from_value(result).map_err(malformed)?;
            Ok(QueryResult::String(value))
        }
        other => Err(AnswerError::Malformed(format!(
            "unknown resultType {other:?}"
        ))),
    }
}

/// A sample value as Prometheus writes it: a decimal string, `NaN`, `+Inf` or `-Inf`.
fn parse_value(text: &str) -> Result<f64, AnswerError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse::<f64>()
            .map_err(|_| AnswerError::Malformed(format!("{text:?} is not a sample value"))),
    }
}

/// Formats a label set as PromQL does: `{a="x", b="y"}`.
pub struct LabelSet<'a>(pub &'a Labels);

impl fmt::Display for LabelSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{name}=\"{}\"",
                canary_core::policy::escape_string(value)
            )?;
        }
        f.write_str("}")
    }
}

fn invalid(reason: impl Into<String>) -> Reading {
    Reading::Invalid {
        reason: reason.into(),
    }
}

fn no_data(reason: impl Into<String>) -> Reading {
    Reading::NoData {
        reason: reason.into(),
    }
}

fn version_of(traffic: &TrafficSelector, labels: &Labels) -> Option<Version> {
    match labels.get(&traffic.label).map(String::as_str) {
        Some(v) if v == traffic.canary => Some(Version::Canary),
        Some(v) if v == traffic.baseline => Some(Version::Baseline),
        _ => None,
    }
}

fn version_matcher(traffic: &TrafficSelector, version: Version) -> String {
    format!(
        "{}=\"{}\"",
        traffic.label,
        canary_core::policy::escape_string(traffic.value_of(version))
    )
}

fn expect_vector<'a>(result: &'a QueryResult, wanted: &str) -> Result<&'a [Series], Reading> {
    match result {
        QueryResult::Vector(series) => Ok(series),
        other => Err(invalid(format!(
            "expected an instant vector ({wanted}), got a {}",
            other.type_name()
        ))),
    }
}

fn non_finite(series: &Series) -> Reading {
    invalid(format!(
        "series {} has the value {}, not a finite number",
        LabelSet(&series.labels),
        series.value
    ))
}

/// An error-rate check's answer: the two halves of the query, told apart by
/// [`SERIES_LABEL`], per version. A version without request series has no data; one with
/// requests but no error series had no errors.
pub fn error_rate_reading(
    result: &QueryResult,
    traffic: &TrafficSelector,
    metric: &str,
) -> Reading {
    let series = match expect_vector(result, "requests and errors by version") {
        Ok(series) => series,
        Err(reading) => return reading,
    };
    let mut requests: [Option<f64>; 2] = [None, None];
    let mut errors: [Option<f64>; 2] = [None, None];
    for s in series {
        let Some(version) = version_of(traffic, &s.labels) else {
            continue;
        };
        if !s.value.is_finite() {
            return non_finite(s);
        }
        let slot = match s.labels.get(SERIES_LABEL).map(String::as_str) {
            Some(REQUESTS_SERIES) => &mut requests,
            Some(ERRORS_SERIES) => &mut errors,
            _ => {
                return invalid(format!(
                    "series {} lacks the {SERIES_LABEL} label the query adds",
                    LabelSet(&s.labels)
                ));
            }
        };
        let index = version as usize;
        if slot[index].is_some() {
            return invalid(format!(
                "several series for {} in one half of the query: {}",
                version_matcher(traffic, version),
                LabelSet(&s.labels)
            ));
        }
        slot[index] = Some(s.value);
    }
    let missing: Vec<String> = [Version::Canary, Version::Baseline]
        .into_iter()
        .filter(|v| requests[*v as usize].is_none())
        .map(|v| version_matcher(traffic, v))
        .collect();
    // Without the canary there is nothing to judge; without the baseline only the
    // comparison goes without data, and says which selector matched nothing.
    if requests[Version::Canary as usize].is_none() {
        return no_data(format!(
            "no {metric} series for {} in the window",
            missing.join(" nor ")
        ));
    }
    let counts = |v: Version| RequestCounts {
        requests: requests[v as usize].unwrap_or(0.0),
        errors: errors[v as usize].unwrap_or(0.0),
    };
    let baseline = if requests[Version::Baseline as usize].is_some() {
        BaselineData::Observed(counts(Version::Baseline))
    } else {
        BaselineData::Missing(format!(
            "no {metric} series for {} in the window",
            version_matcher(traffic, Version::Baseline)
        ))
    };
    Reading::Observed(CheckObservation::Counts {
        canary: counts(Version::Canary),
        baseline,
    })
}

/// A latency check's answer: cumulative buckets by `le` and version. `+Inf` is required;
/// buckets are made monotonic the way `histogram_quantile` does it (extrapolation of each
/// bucket's `increase()` can leave a higher bucket a little below a lower one).
pub fn latency_reading(
    result: &QueryResult,
    traffic: &TrafficSelector,
    histogram: &str,
) -> Reading {
    let series = match expect_vector(result, "buckets by le and version") {
        Ok(series) => series,
        Err(reading) => return reading,
    };
    let mut buckets: [BTreeMap<OrderedLe, f64>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for s in series {
        let Some(version) = version_of(traffic, &s.labels) else {
            continue;
        };
        if !s.value.is_finite() {
            return non_finite(s);
        }
        let Some(le) = s.labels.get("le") else {
            return invalid(format!(
                "bucket series {} has no le label",
                LabelSet(&s.labels)
            ));
        };
        let Some(le) = parse_le(le) else {
            return invalid(format!(
                "bucket series {} has an le that is not a number",
                LabelSet(&s.labels)
            ));
        };
        *buckets[version as usize]
            .entry(OrderedLe(le))
            .or_insert(0.0) += s.value;
    }
    let mut out: [Vec<HistogramBucket>; 2] = [Vec::new(), Vec::new()];
    let mut missing = Vec::new();
    for version in [Version::Canary, Version::Baseline] {
        let map = &buckets[version as usize];
        if map.is_empty() {
            missing.push(version_matcher(traffic, version));
            continue;
        }
        if !map.keys().any(|le| le.0 == f64::INFINITY) {
            return invalid(format!(
                "the {histogram}_bucket series for {} have no le=\"+Inf\" bucket",
                version_matcher(traffic, version)
            ));
        }
        let mut running = 0.0_f64;
        out[version as usize] = map
            .iter()
            .map(|(le, count)| {
                running = running.max(*count);
                HistogramBucket {
                    le: le.0,
                    count: running,
                }
            })
            .collect();
    }
    let [canary, baseline] = out;
    if canary.is_empty() {
        return no_data(format!(
            "no {histogram}_bucket series for {} in the window",
            missing.join(" nor ")
        ));
    }
    let baseline = if baseline.is_empty() {
        BaselineData::Missing(format!(
            "no {histogram}_bucket series for {} in the window",
            version_matcher(traffic, Version::Baseline)
        ))
    } else {
        BaselineData::Observed(baseline)
    };
    Reading::Observed(CheckObservation::Histogram { canary, baseline })
}

/// A bucket bound, ordered (never NaN: [`parse_le`] refuses it).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrderedLe(f64);

impl PartialOrd for OrderedLe {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Eq for OrderedLe {}

impl Ord for OrderedLe {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// An `le` label value: a number or `+Inf`.
pub fn parse_le(text: &str) -> Option<f64> {
    let le = parse_value(text).ok()?;
    (!le.is_nan()).then_some(le)
}

/// A samples check's answer: one series per version, by the version label. Other versions
/// are ignored; two series for one version are invalid, naming them.
pub fn samples_reading(result: &QueryResult, traffic: &TrafficSelector) -> Reading {
    let series = match expect_vector(result, "one series per version") {
        Ok(series) => series,
        Err(reading) => return reading,
    };
    let mut values: [Option<&Series>; 2] = [None, None];
    for s in series {
        let Some(version) = version_of(traffic, &s.labels) else {
            continue;
        };
        if let Some(first) = values[version as usize] {
            return invalid(format!(
                "several series for {}: {} and {}; group the query by ({})",
                version_matcher(traffic, version),
                LabelSet(&first.labels),
                LabelSet(&s.labels),
                traffic.label
            ));
        }
        if !s.value.is_finite() {
            return non_finite(s);
        }
        values[version as usize] = Some(s);
    }
    if values.iter().all(Option::is_none) {
        let seen: Vec<String> = series
            .iter()
            .take(3)
            .map(|s| LabelSet(&s.labels).to_string())
            .collect();
        return no_data(if seen.is_empty() {
            "the query returned no series".to_owned()
        } else {
            format!(
                "no series for {} nor {} (got {})",
                version_matcher(traffic, Version::Canary),
                version_matcher(traffic, Version::Baseline),
                seen.join(", ")
            )
        });
    }
    Reading::Observed(CheckObservation::Samples {
        canary: values[0].map(|s| s.value),
        baseline: values[1].map(|s| s.value),
    })
}

/// A query check's answer: exactly one series, or a scalar.
pub fn value_reading(result: &QueryResult) -> Reading {
    let value = match result {
        QueryResult::Scalar(value) => *value,
        QueryResult::Vector(series) => match series.as_slice() {
            [] => return no_data("the query returned no series"),
            [one] => one.value,
            several => {
                let names: Vec<String> = several
                    .iter()
                    .take(5)
                    .map(|s| LabelSet(&s.labels).to_string())
                    .collect();
                let more = if several.len() > 5 { ", …" } else { "" };
                return invalid(format!(
                    "{} series where one was expected: {}{more}; aggregate the query (e.g. sum(…))",
                    several.len(),
                    names.join(", ")
                ));
            }
        },
        other => {
            return invalid(format!(
                "expected one series or a scalar, got a {}",
                other.type_name()
            ));
        }
    };
    if !value.is_finite() {
        return invalid(format!("the query's value is {value}, not a finite number"));
    }
    Reading::Observed(CheckObservation::Value { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic() -> TrafficSelector {
        TrafficSelector {
            label: "version".to_owned(),
            canary: "canary".to_owned(),
            baseline: "stable".to_owned(),
            matchers: Vec::new(),
        }
    }

    fn success(body: &str) -> QueryResult {
        match parse_answer(body.as_bytes()).unwrap() {
            ApiAnswer::Success { result, .. } => result,
            other => panic!("{other:?}"),
        }
    }

    fn vector(series: &[(&[(&str, &str)], &str)]) -> String {
        let items: Vec<String> = series
            .iter()
            .map(|(labels, value)| {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":\"{v}\""))
                    .collect();
                format!(
                    "{{\"metric\":{{{}}},\"value\":[1700000000.5,\"{value}\"]}}",
                    labels.join(",")
                )
            })
            .collect();
        format!(
            "{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":[{}]}}}}",
            items.join(",")
        )
    }

    #[test]
    fn parses_a_vector_with_special_values() {
        let result = success(&vector(&[
            (&[("version", "canary")], "12.5"),
            (&[("version", "stable")], "NaN"),
            (&[("a", "b")], "+Inf"),
            (&[], "-Inf"),
        ]));
        let QueryResult::Vector(series) = result else {
            panic!()
        };
        assert_eq!(series.len(), 4);
        assert_eq!(series[0].value, 12.5);
        assert_eq!(series[0].labels["version"], "canary");
        assert!(series[1].value.is_nan());
        assert_eq!(series[2].value, f64::INFINITY);
        assert_eq!(series[3].value, f64::NEG_INFINITY);
    }

    #[test]
    fn parses_scalar_string_matrix_and_empty() {
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert_eq!(success(scalar), QueryResult::Scalar(3.0));
        let string =
            r#"{"status":"success","data":{"resultType":"string","result":[1700000000,"hi"]}}"#;
        assert_eq!(success(string), QueryResult::String("hi".to_owned()));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"1"],[2,"2"]]}]}}"#;
        let QueryResult::Matrix(m) = success(matrix) else {
            panic!()
        };
        assert_eq!(m[0].values, vec![(1.0, 1.0), (2.0, 2.0)]);
        assert_eq!(success(&vector(&[])), QueryResult::Vector(Vec::new()));
    }

    #[test]
    fn warnings_are_kept() {
        let body = r#"{"status":"success","warnings":["partial response: store down"],"data":{"resultType":"vector","result":[]}}"#;
        let ApiAnswer::Success { warnings, .. } = parse_answer(body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(warnings, vec!["partial response: store down".to_owned()]);
    }

    #[test]
    fn errors_html_and_malformed_bodies_are_told_apart() {
        let error = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \"}\""}"#;
        assert_eq!(
            parse_answer(error.as_bytes()).unwrap(),
            ApiAnswer::Error {
                error_type: "bad_data".to_owned(),
                message: "1:5: parse error: unexpected \"}\"".to_owned(),
            }
        );
        assert_eq!(
            parse_answer(b"<html><body>Sign in</body></html>"),
            Err(AnswerError::NotJson)
        );
        assert_eq!(parse_answer(b""), Err(AnswerError::NotJson));
        for bad in [
            r#"{"hello":"world"}"#,
            r#"{"status":"success"}"#,
            r#"{"status":"maybe"}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}"#,
            r#"{"status":"success","data":{"resultType":"tensor","result":[]}}"#,
            r#"[1,2,3]"#,
        ] {
            assert!(
                matches!(parse_answer(bad.as_bytes()), Err(AnswerError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_rate_reads_both_halves_per_version() {
        let r = success(&vector(&[
            (
                &[("version", "canary"), ("canary_series", "requests")],
                "100",
            ),
            (
                &[("version", "stable"), ("canary_series", "requests")],
                "900",
            ),
            (&[("version", "stable"), ("canary_series", "errors")], "9"),
        ]));
        assert_eq!(
            error_rate_reading(&r, &traffic(), "reqs"),
            Reading::Observed(CheckObservation::Counts {
                canary: RequestCounts {
                    requests: 100.0,
                    errors: 0.0
                },
                baseline: RequestCounts {
                    requests: 900.0,
                    errors: 9.0
                }
                .into(),
            })
        );
    }

    #[test]
    fn error_rate_without_baseline_series_keeps_the_canary_and_names_the_selector() {
        let r = success(&vector(&[
            (
                &[("version", "canary"), ("canary_series", "requests")],
                "100",
            ),
            (&[("version", "canary"), ("canary_series", "errors")], "2"),
        ]));
        assert_eq!(
            error_rate_reading(&r, &traffic(), "reqs"),
            Reading::Observed(CheckObservation::Counts {
                canary: RequestCounts {
                    requests: 100.0,
                    errors: 2.0
                },
                baseline: BaselineData::Missing(
                    "no reqs series for version=\"stable\" in the window".to_owned()
                ),
            })
        );
    }

    #[test]
    fn error_rate_without_canary_requests_is_no_data_naming_the_version() {
        let r = success(&vector(&[(
            &[("version", "stable"), ("canary_series", "requests")],
            "900",
        )]));
        let Reading::NoData { reason } = error_rate_reading(&r, &traffic(), "reqs") else {
            panic!()
        };
        assert_eq!(
            reason,
            "no reqs series for version=\"canary\" in the window"
        );
        let Reading::NoData { reason } =
            error_rate_reading(&success(&vector(&[])), &traffic(), "reqs")
        else {
            panic!()
        };
        assert!(
            reason.contains("version=\"canary\" nor version=\"stable\""),
            "{reason}"
        );
    }

    #[test]
    fn error_rate_refuses_nan_and_scalars() {
        let r = success(&vector(&[
            (
                &[("version", "canary"), ("canary_series", "requests")],
                "NaN",
            ),
            (
                &[("version", "stable"), ("canary_series", "requests")],
                "900",
            ),
        ]));
        assert!(matches!(
            error_rate_reading(&r, &traffic(), "reqs"),
            Reading::Invalid { .. }
        ));
        let Reading::Invalid { reason } =
            error_rate_reading(&QueryResult::Scalar(1.0), &traffic(), "reqs")
        else {
            panic!()
        };
        assert!(reason.contains("got a scalar"), "{reason}");
    }

    #[test]
    fn latency_sorts_sums_and_requires_inf() {
        let r = success(&vector(&[
            (&[("version", "canary"), ("le", "+Inf")], "10"),
            (&[("version", "canary"), ("le", "0.5")], "9"),
            (&[("version", "canary"), ("le", "0.1")], "5"),
            (&[("version", "stable"), ("le", "+Inf")], "100"),
            (&[("version", "stable"), ("le", "0.1")], "60"),
            (&[("version", "stable"), ("le", "0.5")], "59.9"),
            (&[("version", "old"), ("le", "0.5")], "1"),
        ]));
        let Reading::Observed(CheckObservation::Histogram { canary, baseline }) =
            latency_reading(&r, &traffic(), "h")
        else {
            panic!()
        };
        assert_eq!(
            canary.iter().map(|b| (b.le, b.count)).collect::<Vec<_>>(),
            vec![(0.1, 5.0), (0.5, 9.0), (f64::INFINITY, 10.0)]
        );
        // Made monotonic, as histogram_quantile does.
        assert_eq!(baseline.observed().unwrap()[1].count, 60.0);
        let no_inf = success(&vector(&[
            (&[("version", "canary"), ("le", "0.5")], "9"),
            (&[("version", "stable"), ("le", "0.5")], "9"),
        ]));
        let Reading::Invalid { reason } = latency_reading(&no_inf, &traffic(), "h") else {
            panic!()
        };
        assert!(reason.contains("le=\"+Inf\""), "{reason}");
        let no_canary = success(&vector(&[(&[("version", "stable"), ("le", "+Inf")], "9")]));
        let Reading::NoData { reason } = latency_reading(&no_canary, &traffic(), "h") else {
            panic!()
        };
        assert!(reason.contains("version=\"canary\""), "{reason}");
        let no_baseline = success(&vector(&[(&[("version", "canary"), ("le", "+Inf")], "9")]));
        let Reading::Observed(CheckObservation::Histogram { canary, baseline }) =
            latency_reading(&no_baseline, &traffic(), "h")
        else {
            panic!()
        };
        assert_eq!(canary.len(), 1);
        assert_eq!(
            baseline,
            BaselineData::Missing(
                "no h_bucket series for version=\"stable\" in the window".to_owned()
            )
        );
        let bad_le = success(&vector(&[(&[("version", "canary"), ("le", "fast")], "9")]));
        assert!(matches!(
            latency_reading(&bad_le, &traffic(), "h"),
            Reading::Invalid { .. }
        ));
    }

    #[test]
    fn samples_take_one_series_per_version() {
        let r = success(&vector(&[
            (&[("version", "canary")], "0.25"),
            (&[("version", "stable")], "0.2"),
            (&[("version", "other")], "7"),
        ]));
        assert_eq!(
            samples_reading(&r, &traffic()),
            Reading::Observed(CheckObservation::Samples {
                canary: Some(0.25),
                baseline: Some(0.2)
            })
        );
        let only_baseline = success(&vector(&[(&[("version", "stable")], "0.2")]));
        assert_eq!(
            samples_reading(&only_baseline, &traffic()),
            Reading::Observed(CheckObservation::Samples {
                canary: None,
                baseline: Some(0.2)
            })
        );
        let twice = success(&vector(&[
            (&[("version", "canary"), ("pod", "a")], "1"),
            (&[("version", "canary"), ("pod", "b")], "2"),
        ]));
        let Reading::Invalid { reason } = samples_reading(&twice, &traffic()) else {
            panic!()
        };
        assert!(
            reason.contains(r#"{pod="a", version="canary"} and {pod="b", version="canary"}"#),
            "{reason}"
        );
        assert!(matches!(
            samples_reading(&success(&vector(&[])), &traffic()),
            Reading::NoData { .. }
        ));
        let inf = success(&vector(&[(&[("version", "canary")], "+Inf")]));
        assert!(matches!(
            samples_reading(&inf, &traffic()),
            Reading::Invalid { .. }
        ));
    }

    #[test]
    fn a_query_gives_one_value_or_says_why_not() {
        assert_eq!(
            value_reading(&QueryResult::Scalar(2.0)),
            Reading::Observed(CheckObservation::Value { value: 2.0 })
        );
        assert_eq!(
            value_reading(&success(&vector(&[(&[("pod", "a")], "0")]))),
            Reading::Observed(CheckObservation::Value { value: 0.0 })
        );
        assert!(matches!(
            value_reading(&success(&vector(&[]))),
            Reading::NoData { .. }
        ));
        let several = success(&vector(&[(&[("pod", "a")], "0"), (&[("pod", "b")], "1")]));
        let Reading::Invalid { reason } = value_reading(&several) else {
            panic!()
        };
        assert!(
            reason.starts_with("2 series where one was expected: {pod=\"a\"}, {pod=\"b\"}"),
            "{reason}"
        );
        assert!(matches!(
            value_reading(&QueryResult::Scalar(f64::NAN)),
            Reading::Invalid { .. }
        ));
        assert!(matches!(
            value_reading(&QueryResult::Scalar(f64::NEG_INFINITY)),
            Reading::Invalid { .. }
        ));
        assert!(matches!(
            value_reading(&QueryResult::String("x".to_owned())),
            Reading::Invalid { .. }
        ));
    }
}
