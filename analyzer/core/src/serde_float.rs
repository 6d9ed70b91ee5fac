//! JSON has no infinities: numbers that may be infinite (an interval's open end, an e-value
//! past `f64::MAX`) are written as the strings `"+Inf"`, `"-Inf"` and `"NaN"`, the way
//! Prometheus writes them, and read back from those strings or from numbers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Float(f64),
    Text(String),
}

fn to_text(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("NaN")
    } else if x == f64::INFINITY {
        Some("+Inf")
    } else if x == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

fn from_number<E: serde::de::Error>(number: Number) -> Result<f64, E> {
    match number {
        Number::Float(x) => Ok(x),
        Number::Text(text) => match text.as_str() {
            "+Inf" | "Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
            "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
            "NaN" | "nan" => Ok(f64::NAN),
            other => other.parse().map_err(|_| {
                E::custom(format!(
                    "expected a number, \"+Inf\", \"-Inf\" or \"NaN\", not {other:?}"
                ))
            }),
        },
    }
}

/// For `f64` fields.
pub(crate) mod plain {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(x: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        match to_text(*x) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_f64(*x),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        from_number(Number::deserialize(deserializer)?)
    }
}

/// For `Option<f64>` fields.
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        x: &Option<f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match x {
            None => serializer.serialize_none(),
            Some(x) => match to_text(*x) {
                Some(text) => serializer.serialize_some(text),
                None => serializer.serialize_some(x),
            },
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        Option::<Number>::deserialize(deserializer)?
            .map(from_number)
            .transpose()
    }
}

/// For `Option<[f64; 2]>` fields (intervals).
pub(crate) mod interval {
    use super::*;

    #[derive(Serialize)]
    #[serde(untagged)]
    enum Out {
        Float(f64),
        Text(&'static str),
    }

    fn out(x: f64) -> Out {
        to_text(x).map_or(Out::Float(x), Out::Text)
    }

    pub(crate) fn serialize<S: Serializer>(
        x: &Option<[f64; 2]>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match x {
            None => serializer.serialize_none(),
            Some([lo, hi]) => serializer.serialize_some(&[out(*lo), out(*hi)]),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<[f64; 2]>, D::Error> {
        match Option::<[Number; 2]>::deserialize(deserializer)? {
            None => Ok(None),
            Some([lo, hi]) => Ok(Some([from_number(lo)?, from_number(hi)?])),
        }
    }
}
