//! `histogram_quantile` against a real Prometheus 2.42: the bucket sets and the answers
//! `golden/histogram_quantile_prometheus.py` got from its HTTP API
//! (`golden/histogram_quantile.json`). The values must be the same doubles, not merely close.

use crate::golden::common;

use canary_core::stats::histogram::{Bucket, count_above, histogram_quantile};
use common::Deviations;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    buckets: Vec<RawBucket>,
    results: Vec<Answer>,
}

#[derive(Deserialize)]
struct RawBucket {
    le: String,
    count: String,
}

#[derive(Deserialize)]
struct Answer {
    q: String,
    value: String,
}

/// Parses a number as Prometheus writes and reads them (Go's `strconv.ParseFloat`, which
/// also takes "+Inf", "Inf", "NaN").
fn parse(text: &str) -> f64 {
    match text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text.parse().unwrap_or_else(|e| panic!("{text}: {e}")),
    }
}

#[test]
fn quantiles_are_the_ones_prometheus_computes() {
    let file: File = serde_json::from_str(include_str!("golden/histogram_quantile.json")).unwrap();
    assert!(file.cases.len() >= 20);
    let mut dev = Deviations::new("histogram_quantile vs Prometheus 2.42 (identical doubles)");
    for case in &file.cases {
        let buckets: Vec<Bucket> = case
            .buckets
            .iter()
            .map(|b| Bucket::new(parse(&b.le), parse(&b.count)))
            .collect();
        for answer in &case.results {
            let q = parse(&answer.q);
            let got = histogram_quantile(q, &buckets);
            dev.identical(
                &format!("{} q={}", case.name, answer.q),
                got,
                parse(&answer.value),
            );
        }
    }
    dev.finish();
}

#[test]
fn count_above_agrees_with_the_quantile_repair() {
    // Where the golden quantile answer sits exactly on a bucket bound b with rank r, the
    // observations above b are total − count(b); spot-check on the repaired cases.
    let file: File = serde_json::from_str(include_str!("golden/histogram_quantile.json")).unwrap();
    let case = |name: &str| -> Vec<Bucket> {
        let case = file.cases.iter().find(|c| c.name == name).unwrap();
        case.buckets
            .iter()
            .map(|b| Bucket::new(parse(&b.le), parse(&b.count)))
            .collect()
    };
    assert_eq!(count_above(&case("duplicate-bounds"), 0.5), Some(4.0));
    assert_eq!(count_above(&case("non-monotonic"), 1.0), Some(5.0));
    assert_eq!(count_above(&case("non-monotonic-inf"), 1.0), Some(0.0));
    assert_eq!(count_above(&case("duplicate-inf"), 1.0), Some(6.0));
    assert_eq!(count_above(&case("no-inf"), 0.1), None);
    assert_eq!(count_above(&case("basic"), 0.3), None);
}
