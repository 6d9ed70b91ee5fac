//! Prometheus HTTP API answers, typed, and what each check makes of one.
//!
//! Every shape the API can give is handled: a vector, a scalar, a matrix, a string, an
//! empty vector (no data), `NaN` and `±Inf` values (invalid, never a pass), several series
//! where one was expected (invalid, naming them), `status: error` (the query's fault or the
//! server's), and `warnings`. Answer format: <https://prometheus.io/docs/prometheus/latest/querying/api/>.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use canary_core::observation::{
    BaselineData, CheckObservation, HistogramBucket, Reading, RequestCounts,
};
use canary_core::policy::{TrafficSelector, Version};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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
    /// More series than allowed: reading stopped at the first one over the limit.
    TooManySeries {
        /// The limit (`max-series`).
        limit: usize,
    },
}

/// The fields of an answer canary reads; any other field (`stats`, `infos`, …) is skipped.
struct RawAnswer {
    status: String,
    data: Option<RawData>,
    error_type: Option<String>,
    error: Option<String>,
    warnings: Option<Vec<String>>,
    /// VictoriaMetrics' mark of an answer from some of its storage nodes only.
    is_partial: Option<bool>,
}

struct RawData {
    result_type: String,
    result: Vec<ResultItem>,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Option<Vec<(f64, String)>>,
    /// Only whether it is there matters (native histograms are not read), so it is skipped
    /// unread.
    #[serde(default)]
    histogram: Option<IgnoredAny>,
}

/// One element of a `result` array: a series (vector, matrix), or one half of the
/// `[time, "value"]` pair of a scalar or a string (the time, a number, is not used).
enum ResultItem {
    Series(RawSeries),
    Number,
    Text(String),
}

/// Parses an API answer body, however many series it holds.
pub fn parse_answer(body: &[u8]) -> Result<ApiAnswer, AnswerError> {
    parse_answer_bounded(body, usize::MAX)
}

/// Parses an API answer body straight into typed series, as it reads the JSON — no
/// intermediate JSON tree, whose size is many times the body's — and stops at the first
/// series over `max_series`, so that what an answer can make canary hold is bounded by the
/// body (itself bounded by `max-answer-size`) and `max_series` series.
pub fn parse_answer_bounded(body: &[u8], max_series: usize) -> Result<ApiAnswer, AnswerError> {
    let too_many = Cell::new(false);
    let seed = AnswerSeed {
        max_series,
        too_many: &too_many,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|raw| deserializer.end().map(|()| raw));
    let raw = match parsed {
        Ok(raw) => raw,
        Err(_) if too_many.get() => {
            return Err(AnswerError::TooManySeries { limit: max_series });
        }
        // JSON of another shape, or no JSON at all (`404 page not found` begins like a
        // number): told apart by a second reading that builds nothing.
        Err(e) if e.is_data() && serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            return Err(AnswerError::Malformed(format!(
                "not a Prometheus API answer: {e}"
            )));
        }
        Err(_) => return Err(AnswerError::NotJson),
    };
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

/// Reads a whole answer, handing `data.result` to a [`ResultSeed`].
struct AnswerSeed<'a> {
    max_series: usize,
    too_many: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for AnswerSeed<'_> {
    type Value = RawAnswer;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawAnswer, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AnswerSeed<'_> {
    type Value = RawAnswer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Prometheus API answer (a JSON object with a status)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAnswer, A::Error> {
        let mut status = None;
        let mut answer = RawAnswer {
            status: String::new(),
            data: None,
            error_type: None,
            error: None,
            warnings: None,
            is_partial: None,
        };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "status" => status = Some(map.next_value::<String>()?),
                "data" => {
                    answer.data = map.next_value_seed(DataSeed {
                        max_series: self.max_series,
                        too_many: self.too_many,
                    })?;
                }
                "errorType" => answer.error_type = map.next_value()?,
                "error" => answer.error = map.next_value()?,
                "warnings" => answer.warnings = map.next_value()?,
                "isPartial" => answer.is_partial = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        answer.status = status.ok_or_else(|| de::Error::missing_field("status"))?;
        Ok(answer)
    }
}

/// Reads `data` (or its absence: `null`).
struct DataSeed<'a> {
    max_series: usize,
    too_many: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Option<RawData>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<RawData>, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Option<RawData>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`data`: an object with resultType and result")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<RawData>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<RawData>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<RawData>, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<RawData>, A::Error> {
        let mut result_type = None;
        let mut result = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "resultType" => result_type = Some(map.next_value::<String>()?),
                "result" => {
                    result = Some(map.next_value_seed(ResultSeed {
                        max_series: self.max_series,
                        too_many: self.too_many,
                    })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(RawData {
            result_type: result_type.ok_or_else(|| de::Error::missing_field("resultType"))?,
            result: result.ok_or_else(|| de::Error::missing_field("result"))?,
        }))
    }
}

/// Reads `data.result`, element by element, stopping at the first series over the limit.
struct ResultSeed<'a> {
    max_series: usize,
    too_many: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for ResultSeed<'_> {
    type Value = Vec<ResultItem>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Vec<ResultItem>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_> {
    type Value = Vec<ResultItem>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`result`: an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<ResultItem>, A::Error> {
        let mut items = Vec::new();
        let mut series = 0usize;
        while let Some(item) = seq.next_element::<ResultItem>()? {
            if matches!(item, ResultItem::Series(_)) {
                series += 1;
                if series > self.max_series {
                    self.too_many.set(true);
                    return Err(de::Error::custom(format!(
                        "more than {} series",
                        self.max_series
                    )));
                }
            }
            items.push(item);
        }
        Ok(items)
    }
}

impl<'de> Deserialize<'de> for ResultItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ResultItem, D::Error> {
        struct ItemVisitor;

        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = ResultItem;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a series, a timestamp or a value")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ResultItem, A::Error> {
                RawSeries::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ResultItem::Series)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ResultItem, E> {
                Ok(ResultItem::Number)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ResultItem, E> {
                Ok(ResultItem::Number)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ResultItem, E> {
                Ok(ResultItem::Number)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ResultItem, E> {
                Ok(ResultItem::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<ResultItem, E> {
                Ok(ResultItem::Text(v))
            }
        }

        deserializer.deserialize_any(ItemVisitor)
    }
}

fn parse_result(result_type: &str, items: Vec<ResultItem>) -> Result<QueryResult, AnswerError> {
    let malformed = |what: &str| AnswerError::Malformed(format!("{result_type} result: {what}"));
    let series_of = |items: Vec<ResultItem>| -> Result<Vec<RawSeries>, AnswerError> {
        items
            .into_iter()
            .map(|item| match item {
                ResultItem::Series(s) => Ok(s),
                ResultItem::Number | ResultItem::Text(_) => {
                    Err(malformed("expected an array of series"))
                }
            })
            .collect()
    };
    let pair_of = |items: Vec<ResultItem>| -> Result<String, AnswerError> {
        match <[ResultItem; 2]>::try_from(items) {
            Ok([ResultItem::Number, ResultItem::Text(value)]) => Ok(value),
            _ => Err(malformed("expected [time, \"value\"]")),
        }
    };
    match result_type {
        "vector" => {
            let raw = series_of(items)?;
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
        "scalar" => Ok(QueryResult::Scalar(parse_value(&pair_of(items)?)?)),
        "matrix" => {
            let raw = series_of(items)?;
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
        "string" => Ok(QueryResult::String(pair_of(items)?)),
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

    /// Issue 13: an answer is read straight into typed series, and reading stops at the
    /// first series over the limit, however much follows (even what would not parse).
    #[test]
    fn reading_stops_at_the_first_series_over_the_limit() {
        let three = vector(&[
            (&[("a", "1")], "1"),
            (&[("a", "2")], "2"),
            (&[("a", "3")], "3"),
        ]);
        assert!(matches!(
            parse_answer_bounded(three.as_bytes(), 3),
            Ok(ApiAnswer::Success { .. })
        ));
        assert_eq!(
            parse_answer_bounded(three.as_bytes(), 2),
            Err(AnswerError::TooManySeries { limit: 2 })
        );
        let cut_after_the_third = format!("{}, this is no JSON", &three[..three.len() - 3]);
        assert_eq!(
            parse_answer_bounded(cut_after_the_third.as_bytes(), 2),
            Err(AnswerError::TooManySeries { limit: 2 })
        );
        // A scalar's pair is not two series.
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert!(parse_answer_bounded(scalar.as_bytes(), 1).is_ok());
        // Fields canary does not read are skipped, whatever they hold; `data` may come first.
        let odd = r#"{"data":{"result":[{"metric":{},"value":[1,"4"]}],"resultType":"vector","x":[{}]},"stats":{"seriesFetched":"1"},"infos":["i"],"status":"success"}"#;
        assert_eq!(
            parse_answer_bounded(odd.as_bytes(), 1).unwrap(),
            ApiAnswer::Success {
                result: QueryResult::Vector(vec![Series {
                    labels: Labels::new(),
                    value: 4.0
                }]),
                warnings: Vec::new(),
            }
        );
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
        assert_eq!(
            parse_answer(b"404 page not found"),
            Err(AnswerError::NotJson)
        );
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
