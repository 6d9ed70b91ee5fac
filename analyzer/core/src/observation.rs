//! What a metrics source hands the judge at each analysis tick.
//!
//! Counts and histogram buckets are **cumulative since the analysis started** (the start of
//! the rollout, or of the analysed window), one value per version, as one
//! `sum by (version) (increase(…[since start]))` query returns them. The judge takes the
//! differences between ticks itself, so a missed tick, or a restart that resumes from
//! persisted state, loses no evidence: the next tick's totals cover the gap.
//!
//! The baseline's half of a reading may be missing while the canary's is there (stable pods
//! labelled differently, or scaled away): [`BaselineData::Missing`] says so, with the
//! selector that matched nothing, and only the criteria that compare with the baseline go
//! without data; the canary's absolute bounds are judged as usual.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::histogram::Bucket;

/// Requests and errors served by one version since the analysis started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests (may be fractional: Prometheus' `increase()` extrapolates).
    pub requests: f64,
    /// Of which errors.
    pub errors: f64,
}

/// One cumulative histogram bucket: observations at or below `le` since the analysis started.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistogramBucket {
    /// Upper bound in the histogram's unit (seconds); `+Inf` for the last bucket.
    #[serde(with = "le_format")]
    pub le: f64,
    /// Observations at or below `le`.
    pub count: f64,
}

impl HistogramBucket {
    /// Converts buckets into the form the statistics take.
    pub fn to_stats(buckets: &[HistogramBucket]) -> Vec<Bucket> {
        buckets
            .iter()
            .map(|b| Bucket {
                upper_bound: b.le,
                count: b.count,
            })
            .collect()
    }
}

/// `le` as Prometheus writes it: a number, or the string `"+Inf"` (JSON has no infinity).
mod le_format {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(le: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if le.is_infinite() && *le > 0.0 {
            serializer.serialize_str("+Inf")
        } else {
            serializer.serialize_f64(*le)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Le {
            Number(f64),
            Text(String),
        }
        match Le::deserialize(deserializer)? {
            Le::Number(x) => Ok(x),
            Le::Text(text) => match text.as_str() {
                "+Inf" | "Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
                other => other.parse::<f64>().map_err(|_| {
                    serde::de::Error::custom(format!(
                        "expected a bucket bound (a number or \"+Inf\"), not {other:?}"
                    ))
                }),
            },
        }
    }
}

/// The baseline's half of an observation: its data, or why the source had none.
///
/// In JSON, the data as it is, or `{"missing": "why"}`.
#[derive(Clone, Debug, PartialEq)]
pub enum BaselineData<T> {
    /// The baseline's data.
    Observed(T),
    /// The source had no baseline series; the reason names the selector that matched
    /// nothing.
    Missing(String),
}

impl<T> BaselineData<T> {
    /// The data, if the baseline had any.
    pub fn observed(&self) -> Option<&T> {
        match self {
            BaselineData::Observed(data) => Some(data),
            BaselineData::Missing(_) => None,
        }
    }
}

impl<T> From<T> for BaselineData<T> {
    fn from(data: T) -> Self {
        BaselineData::Observed(data)
    }
}

impl<T: Serialize> Serialize for BaselineData<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            BaselineData::Observed(data) => data.serialize(serializer),
            BaselineData::Missing(reason) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("missing", reason)?;
                map.end()
            }
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for BaselineData<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read as a JSON value first: `{"missing": …}` is the one shape that is not data.
        let value = serde_json::Value::deserialize(deserializer)?;
        if let serde_json::Value::Object(map) = &value
            && map.len() == 1
            && let Some(reason) = map.get("missing")
        {
            return match reason {
                serde_json::Value::String(reason) => Ok(BaselineData::Missing(reason.clone())),
                other => Err(serde::de::Error::custom(format!(
                    "`missing` must say why the baseline has no data, found {other}"
                ))),
            };
        }
        T::deserialize(value)
            .map(BaselineData::Observed)
            .map_err(serde::de::Error::custom)
    }
}

/// What one check observed at one tick, for both versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CheckObservation {
    /// Error-rate checks: cumulative requests and errors.
    Counts {
        /// The canary's.
        canary: RequestCounts,
        /// The baseline's, or why there are none.
        baseline: BaselineData<RequestCounts>,
    },
    /// Latency checks: cumulative histogram buckets.
    Histogram {
        /// The canary's.
        canary: Vec<HistogramBucket>,
        /// The baseline's, or why there are none.
        baseline: BaselineData<Vec<HistogramBucket>>,
    },
    /// Samples checks: this tick's value for each version (`None` when a version had no
    /// series this tick).
    Samples {
        /// The canary's.
        canary: Option<f64>,
        /// The baseline's.
        baseline: Option<f64>,
    },
    /// Query checks: the query's value.
    Value {
        /// The value.
        value: f64,
    },
}

/// A check's reading at one tick: an observation, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reading")]
pub enum Reading {
    /// The source answered with usable data.
    Observed(CheckObservation),
    /// The source answered, but with nothing for this check (an empty vector, a series that
    /// does not exist yet). Never a pass.
    NoData {
        /// Why, in words.
        reason: String,
    },
    /// The source answered with something unusable (NaN, several series where one was
    /// expected, a histogram without `+Inf`). Judged as `error`, never a pass.
    Invalid {
        /// What was wrong, in words.
        reason: String,
    },
}

/// Everything observed at one analysis tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// When the observation was made (the evaluation time of the queries).
    pub at: jiff::Timestamp,
    /// Seconds since the analysis started, the window the cumulative values cover.
    pub window_seconds: f64,
    /// One reading per check, by check name.
    pub readings: BTreeMap<String, Reading>,
    /// Warnings the source passed on (Prometheus' `warnings`, partial responses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
