//! Classic Prometheus histograms: `histogram_quantile` exactly as Prometheus 2.42 computes
//! it, and the bucket arithmetic the latency comparison needs.
//!
//! A latency SLO in a policy ("p95 ≤ 500 ms") must mean what the same PromQL means on the
//! team's dashboards, so the quantile is not "improved" here: the interpolation, the
//! special cases and the repair of inconsistent buckets follow `bucketQuantile` in
//! Prometheus' `promql/quantile.go` (v2.42). The golden test
//! `tests/core/golden_histogram_quantile.rs` compares against a real Prometheus 2.42.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// One `le` bucket of a classic histogram: the number of observations ≤ `upper_bound`
/// (cumulative, as Prometheus exposes them).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// The bucket's `le` label as a number; the last bucket's is +∞.
    pub upper_bound: f64,
    /// Observations ≤ `upper_bound` (may be fractional: `increase()` and `rate()` are).
    pub count: f64,
}

impl Bucket {
    /// A bucket with upper bound `le` holding `count` observations (cumulative).
    pub fn new(upper_bound: f64, count: f64) -> Self {
        Bucket { upper_bound, count }
    }
}

/// The φ-quantile of a classic histogram, as PromQL's `histogram_quantile(φ, buckets)`
/// computes it (Prometheus 2.42, `promql/quantile.go`, `bucketQuantile`).
///
/// In order:
/// - φ NaN → NaN; φ < 0 → −∞; φ > 1 → +∞;
/// - buckets are sorted by upper bound; if the highest is not +∞ → NaN (also for no buckets);
/// - buckets with the same upper bound are merged (counts summed);
/// - cumulative counts that decrease are raised to the running maximum (the "envelope"
///   2.42 uses; later versions first absorb tiny float errors, 2.42 does not);
/// - fewer than 2 buckets left → NaN; a total count (the +∞ bucket) of 0 → NaN;
/// - rank = φ · total; the first bucket whose count ≥ rank holds the quantile. In the +∞
///   bucket, the second-highest upper bound is returned; in the lowest bucket with an upper
///   bound ≤ 0, that bound; otherwise the value is interpolated linearly within the bucket,
///   the lowest bucket starting at 0.
///
/// So φ = 0 with an empty first bucket gives NaN (0/0), as in Prometheus.
pub fn histogram_quantile(q: f64, buckets: &[Bucket]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let Some(buckets) = normalized(buckets) else {
        return f64::NAN;
    };
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // The first bucket (the +∞ bucket excluded from the search) with count ≥ rank; the +∞
    // bucket when there is none. A NaN count never satisfies the comparison, as in Go.
    let last = buckets.len() - 1;
    let b = buckets[..last].partition_point(|bucket| {
        !matches!(
            bucket.count.partial_cmp(&rank),
            Some(Ordering::Greater | Ordering::Equal)
        )
    });
    if b == last {
        return buckets[last - 1].upper_bound;
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return buckets[0].upper_bound;
    }
    let bucket_end = buckets[b].upper_bound;
    let mut count = buckets[b].count;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// The number of observations above `bound`, which must be one of the buckets' upper
/// bounds: the total (the +∞ bucket) minus the cumulative count at `bound`.
///
/// The buckets are repaired as [`histogram_quantile`] repairs them (sorted, equal bounds
/// merged, counts made monotonic), so the two always agree. `None` when `bound` is not an
/// upper bound of the buckets or there is no +∞ bucket.
pub fn count_above(buckets: &[Bucket], bound: f64) -> Option<f64> {
    let buckets = normalized(buckets)?;
    let total = buckets.last()?.count;
    let at = buckets.iter().find(|b| b.upper_bound == bound)?;
    Some(total - at.count)
}

/// The smallest finite bucket upper bound ≥ `x`: the bound to count slow requests against
/// when the threshold (say, the baseline's p95) falls inside a bucket. `None` when `x` is
/// NaN or above every finite bound.
pub fn smallest_bound_at_or_above(buckets: &[Bucket], x: f64) -> Option<f64> {
    buckets
        .iter()
        .map(|b| b.upper_bound)
        .filter(|&le| le.is_finite() && le >= x)
        .min_by(f64::total_cmp)
}

/// Sorted by upper bound, equal bounds merged, counts made monotonic; `None` when the
/// highest bound is not +∞ (including when there are no buckets).
fn normalized(buckets: &[Bucket]) -> Option<Vec<Bucket>> {
    let mut sorted = buckets.to_vec();
    // Bounds come from parsed `le` labels; NaN bounds are not meaningful and sort as equal.
    sorted.sort_by(|a, b| {
        a.upper_bound
            .partial_cmp(&b.upper_bound)
            .unwrap_or(Ordering::Equal)
    });
    if sorted.last()?.upper_bound != f64::INFINITY {
        return None;
    }
    let mut merged: Vec<Bucket> = Vec::with_capacity(sorted.len());
    for bucket in sorted {
        match merged.last_mut() {
            Some(last) if last.upper_bound == bucket.upper_bound => last.count += bucket.count,
            _ => merged.push(bucket),
        }
    }
    let mut max = merged[0].count;
    for bucket in &mut merged[1..] {
        if bucket.count > max {
            max = bucket.count;
        } else if bucket.count < max {
            bucket.count = max;
        }
    }
    Some(merged)
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values as the references print them
mod tests {
    use super::*;

    fn buckets(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs.iter().map(|&(le, c)| Bucket::new(le, c)).collect()
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn interpolates_within_a_bucket() {
        let b = buckets(&[(0.1, 10.0), (0.5, 60.0), (1.0, 90.0), (INF, 100.0)]);
        // rank 50 lies in (0.1, 0.5]: 0.1 + 0.4 * (40/50)
        assert_eq!(histogram_quantile(0.5, &b), 0.1 + 0.4 * (40.0 / 50.0));
        // rank 5 in the first bucket interpolates from 0.
        assert_eq!(histogram_quantile(0.05, &b), 0.1 * (5.0 / 10.0));
        // rank 95 falls in +Inf: the second-highest bound.
        assert_eq!(histogram_quantile(0.95, &b), 1.0);
        assert_eq!(histogram_quantile(1.0, &b), 1.0);
    }

    #[test]
    fn special_cases() {
        let b = buckets(&[(1.0, 1.0), (INF, 2.0)]);
        assert!(histogram_quantile(f64::NAN, &b).is_nan());
        assert_eq!(histogram_quantile(-0.1, &b), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.1, &b), INF);
        assert!(histogram_quantile(0.5, &[]).is_nan());
        assert!(histogram_quantile(0.5, &buckets(&[(INF, 3.0)])).is_nan());
        assert!(histogram_quantile(0.5, &buckets(&[(1.0, 3.0), (2.0, 4.0)])).is_nan());
        assert!(histogram_quantile(0.5, &buckets(&[(1.0, 0.0), (INF, 0.0)])).is_nan());
        // φ = 0 with an empty first bucket: 0/0.
        assert!(histogram_quantile(0.0, &buckets(&[(1.0, 0.0), (INF, 5.0)])).is_nan());
    }

    #[test]
    fn negative_lowest_bound_is_returned_as_is() {
        let b = buckets(&[(-1.0, 5.0), (0.0, 7.0), (1.0, 10.0), (INF, 10.0)]);
        assert_eq!(histogram_quantile(0.2, &b), -1.0);
        assert_eq!(histogram_quantile(0.6, &b), -1.0 + 1.0 * (1.0 / 2.0));
    }

    #[test]
    fn unsorted_duplicate_and_non_monotonic_buckets_are_repaired() {
        let b = buckets(&[(INF, 10.0), (1.0, 3.0), (0.5, 4.0), (1.0, 2.0), (2.0, 8.0)]);
        // sorted and merged: 0.5→4, 1→5, 2→8, +Inf→10
        assert_eq!(histogram_quantile(0.5, &b), 1.0);
        assert_eq!(count_above(&b, 1.0), Some(5.0));
        let b = buckets(&[(0.5, 6.0), (1.0, 4.0), (INF, 10.0)]);
        // 1.0's count raised to 6.
        assert_eq!(count_above(&b, 1.0), Some(4.0));
        assert_eq!(histogram_quantile(0.5, &b), 0.5 * (5.0 / 6.0));
    }

    #[test]
    fn count_above_needs_a_bucket_bound() {
        let b = buckets(&[(0.1, 10.0), (0.5, 60.0), (INF, 100.0)]);
        assert_eq!(count_above(&b, 0.5), Some(40.0));
        assert_eq!(count_above(&b, INF), Some(0.0));
        assert_eq!(count_above(&b, 0.3), None);
        assert_eq!(count_above(&buckets(&[(0.1, 1.0)]), 0.1), None);
    }

    #[test]
    fn smallest_bound() {
        let b = buckets(&[(0.5, 60.0), (0.1, 10.0), (INF, 100.0)]);
        assert_eq!(smallest_bound_at_or_above(&b, 0.3), Some(0.5));
        assert_eq!(smallest_bound_at_or_above(&b, 0.1), Some(0.1));
        assert_eq!(smallest_bound_at_or_above(&b, 0.0), Some(0.1));
        assert_eq!(smallest_bound_at_or_above(&b, 0.7), None);
        assert_eq!(smallest_bound_at_or_above(&b, f64::NAN), None);
    }
}
