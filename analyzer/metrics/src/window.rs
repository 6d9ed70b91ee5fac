//! `canary analyze` over a past window with one query per counter check instead of one per
//! check per tick.
//!
//! The instant-query path asks Prometheus, at every tick `t`, for
//! `sum by (L) (increase(METRIC{SEL}[Ws]))` (error-rate: twice, with and without the error
//! matchers; latency: `sum by (le, L)` of the buckets). Over a past window canary instead
//! asks once for the raw samples of every selected series over the whole window —
//! `METRIC{SEL}[Dms]` evaluated at the window's end, a matrix — and computes each tick's
//! answer here, the way Prometheus computes it, so that the judge gets the very same
//! numbers:
//!
//! - the samples of a tick are those with a timestamp in `[t − W s, t]` (milliseconds; both
//!   ends included, as Prometheus 2.x selects a range);
//! - [`increase`] is Prometheus' `extrapolatedRate` for a counter, operation for operation
//!   (`promql/functions.go`, v2.x): counter resets added back, extrapolated to the window's
//!   edges when the first/last sample lies within 1.1 average sample intervals of them (else
//!   by half an interval), never to before the counter's zero; a series with fewer than two
//!   samples in the window gives nothing;
//! - `sum by (…)` adds, per group, the series' increases in the order the series came in the
//!   answer (the order in which Prometheus' engine feeds the same series into its own `sum`),
//!   starting from the first one, with groups in the order they first appear;
//! - the error matchers are applied here to the series' labels, with PromQL's semantics (a
//!   missing label is the empty value; regexes anchored at both ends).
//!
//! `query_range` is not used: its answer holds one value per step, looked up with the
//! lookback delta, not the samples' own times, and `increase()`'s extrapolation depends on
//! exactly those times; the raw range selector is the one query whose answer determines every
//! tick's `increase()` exactly. The result is a [`QueryResult::Vector`] shaped as the instant
//! query's answer, read by the same functions ([`crate::answer`]).

use canary_core::policy::{LabelMatcher, TrafficSelector};

use crate::answer::{Labels, QueryResult, RangeSeries, Series};
use crate::queries::{ERRORS_SERIES, REQUESTS_SERIES, SERIES_LABEL};
use crate::scrape::Matcher;

/// One series of a raw range answer: its labels and its samples as (milliseconds, value),
/// in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSeries {
    /// Its labels (with `__name__`).
    pub labels: Labels,
    /// `(unix milliseconds, value)`, oldest first.
    pub samples: Vec<(i64, f64)>,
}

impl RawSeries {
    /// A range answer's series; its float seconds (three decimals, as Prometheus writes
    /// them) become whole milliseconds.
    pub fn from_range(series: RangeSeries) -> RawSeries {
        let mut samples: Vec<(i64, f64)> = series
            .values
            .into_iter()
            .map(|(seconds, value)| ((seconds * 1000.0).round() as i64, value))
            .collect();
        // Prometheus sends them in order; a server that did not is not trusted on it.
        samples.sort_by_key(|&(t, _)| t);
        RawSeries {
            labels: series.labels,
            samples,
        }
    }

    /// Its samples with a time in `[from_ms, to_ms]`.
    fn within(&self, from_ms: i64, to_ms: i64) -> &[(i64, f64)] {
        let first = self.samples.partition_point(|&(t, _)| t < from_ms);
        let end = self.samples.partition_point(|&(t, _)| t <= to_ms);
        &self.samples[first..end.max(first)]
    }
}

/// Prometheus' `increase()` of one counter's samples over the range `[range_start,
/// range_end]` (milliseconds), `None` for fewer than two samples (Prometheus drops such a
/// series from the result).
///
/// The floating-point operations are those of `extrapolatedRate` in Prometheus 2.x
/// (`promql/functions.go`, `isCounter = true`, `isRate = false`), in the same order, so the
/// result is the same number, not merely a close one.
pub fn increase(samples: &[(i64, f64)], range_start: i64, range_end: i64) -> Option<f64> {
    let (&(first_t, first_v), &(last_t, last_v)) = (samples.first()?, samples.last()?);
    if samples.len() < 2 {
        return None;
    }
    let mut result = last_v - first_v;
    let mut previous = first_v;
    for &(_, value) in &samples[1..] {
        if value < previous {
            // A counter reset: the counter restarted from zero after `previous`.
            result += previous;
        }
        previous = value;
    }
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (samples.len() - 1) as f64;
    if result > 0.0 && first_v >= 0.0 {
        // Never extrapolate to before the counter was zero.
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between_samples * 1.1;
    let mut extrapolate_to_interval = sampled_interval;
    if duration_to_start < threshold {
        extrapolate_to_interval += duration_to_start;
    } else {
        extrapolate_to_interval += average_between_samples / 2.0;
    }
    if duration_to_end < threshold {
        extrapolate_to_interval += duration_to_end;
    } else {
        extrapolate_to_interval += average_between_samples / 2.0;
    }
    Some(result * (extrapolate_to_interval / sampled_interval))
}

/// Groups of a `sum by (…)`, in the order they first appear, each summed in the order its
/// series come (as Prometheus' `sum` does: the first value, then `+=` each next one).
#[derive(Default)]
struct Sums {
    groups: Vec<(Labels, f64)>,
}

impl Sums {
    fn add(&mut self, key: Labels, value: f64) {
        match self.groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, sum)) => *sum += value,
            None => self.groups.push((key, value)),
        }
    }

    fn into_series(self, extra: Option<(&str, &str)>) -> impl Iterator<Item = Series> {
        let extra = extra.map(|(name, value)| (name.to_owned(), value.to_owned()));
        self.groups.into_iter().map(move |(mut labels, value)| {
            if let Some((name, value)) = &extra {
                labels.insert(name.clone(), value.clone());
            }
            Series { labels, value }
        })
    }
}

/// The labels of `series` named in `by`, those it has (a missing one stays missing, as in
/// Prometheus' grouping).
fn grouping(series: &Labels, by: &[&str]) -> Labels {
    by.iter()
        .filter_map(|name| {
            series
                .get(*name)
                .map(|value| ((*name).to_owned(), value.clone()))
        })
        .collect()
}

/// The window of one tick: `[at_ms − window_seconds·1000, at_ms]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickRange {
    /// The tick's time, in whole milliseconds (as it is sent to Prometheus).
    pub at_ms: i64,
    /// `W`, the window's whole seconds.
    pub window_seconds: u64,
}

impl TickRange {
    /// `at_ms − W·1000`: where the tick's window opens.
    pub fn start_ms(self) -> i64 {
        self.at_ms
            .saturating_sub(i64::try_from(self.window_seconds).unwrap_or(i64::MAX / 1000) * 1000)
    }
}

/// The error matchers of an error-rate check, compiled (or any list of label matchers: the
/// controller's shared reads pick a rollout's own series out of a batch's with its
/// selector's).
pub struct ErrorMatchers(Vec<Matcher>);

impl ErrorMatchers {
    /// Compiles them; a regex that does not compile is a configuration error (the policy's
    /// validation has compiled it already).
    pub fn new(matchers: &[LabelMatcher]) -> crate::Result<Self> {
        Ok(ErrorMatchers(
            matchers
                .iter()
                .map(Matcher::new)
                .collect::<crate::Result<_>>()?,
        ))
    }

    /// Whether a series with `labels` is selected by every matcher (PromQL's semantics).
    pub fn select(&self, labels: &Labels) -> bool {
        self.0.iter().all(|m| m.matches_labels(labels))
    }
}

/// What the error-rate query would have answered at one tick, from the raw samples of the
/// request counter:
/// `label_replace(sum by (L) (increase(REQ{SEL}[Ws])), "canary_series", "requests", "", "")
/// or label_replace(sum by (L) (increase(REQ{SEL, ERR}[Ws])), "canary_series", "errors", "", "")`.
pub fn error_rate_at<'a>(
    raw: impl IntoIterator<Item = &'a RawSeries>,
    traffic: &TrafficSelector,
    errors: &ErrorMatchers,
    tick: TickRange,
) -> QueryResult {
    let by = [traffic.label.as_str()];
    let mut requests = Sums::default();
    let mut failed = Sums::default();
    for series in raw {
        let Some(value) = increase(
            series.within(tick.start_ms(), tick.at_ms),
            tick.start_ms(),
            tick.at_ms,
        ) else {
            continue;
        };
        let key = grouping(&series.labels, &by);
        if errors.select(&series.labels) {
            failed.add(key.clone(), value);
        }
        requests.add(key, value);
    }
    QueryResult::Vector(
        requests
            .into_series(Some((SERIES_LABEL, REQUESTS_SERIES)))
            .chain(failed.into_series(Some((SERIES_LABEL, ERRORS_SERIES))))
            .collect(),
    )
}

/// What the latency query would have answered at one tick, from the raw samples of the
/// bucket series: `sum by (le, L) (increase(HIST_bucket{SEL}[Ws]))`.
pub fn latency_at<'a>(
    raw: impl IntoIterator<Item = &'a RawSeries>,
    traffic: &TrafficSelector,
    tick: TickRange,
) -> QueryResult {
    let by = ["le", traffic.label.as_str()];
    let mut buckets = Sums::default();
    for series in raw {
        if let Some(value) = increase(
            series.within(tick.start_ms(), tick.at_ms),
            tick.start_ms(),
            tick.at_ms,
        ) {
            buckets.add(grouping(&series.labels, &by), value);
        }
    }
    QueryResult::Vector(buckets.into_series(None).collect())
}

#[cfg(test)]
mod tests {
    use canary_core::policy::parse_matchers;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn increase_extrapolates_to_the_window_edges_as_prometheus_does() {
        // Samples every 15 s from 5 s after the window opens: 10 per 15 s. The window is 60 s,
        // the samples cover 45 s (30 counted), 5 s at each end are within 1.1 intervals, so
        // the increase is extrapolated to 55 s of the 60: 30 · 55/45.
        let samples = [
            (5_000, 100.0),
            (20_000, 110.0),
            (35_000, 120.0),
            (50_000, 130.0),
        ];
        let got = increase(&samples, 0, 55_000).unwrap();
        assert_eq!(got, 30.0 * ((45.0 + 5.0 + 5.0) / 45.0));
        // Far from the start (more than 1.1 intervals): half an interval only.
        let got = increase(&samples[2..], 0, 55_000).unwrap();
        assert_eq!(got, 10.0 * ((15.0 + 7.5 + 5.0) / 15.0));
    }

    #[test]
    fn increase_adds_back_counter_resets_and_never_extrapolates_below_zero() {
        // 100 → 130, reset to 5, → 20: 30 + 20 = 50.
        let samples = [(0, 100.0), (10_000, 130.0), (20_000, 5.0), (30_000, 20.0)];
        assert_eq!(increase(&samples, 0, 30_000), Some(50.0));
        // A counter that starts at 1 close after 0 s: extrapolated back only to its zero.
        let samples = [(9_000, 1.0), (19_000, 11.0)];
        let got = increase(&samples, 0, 19_000).unwrap();
        assert_eq!(got, 10.0 * ((10.0 + 10.0 * (1.0 / 10.0)) / 10.0));
    }

    #[test]
    fn fewer_than_two_samples_give_no_increase() {
        assert_eq!(increase(&[], 0, 1000), None);
        assert_eq!(increase(&[(500, 3.0)], 0, 1000), None);
    }

    #[test]
    fn a_tick_takes_the_samples_of_its_window_both_ends_included() {
        let series = RawSeries {
            labels: Labels::new(),
            samples: vec![(0, 0.0), (1000, 1.0), (2000, 2.0), (3000, 3.0)],
        };
        assert_eq!(series.within(1000, 2000), &[(1000, 1.0), (2000, 2.0)]);
        assert!(series.within(4000, 5000).is_empty());
    }

    #[test]
    fn error_rate_sums_by_version_and_applies_the_error_matchers_here() {
        let traffic = TrafficSelector {
            label: "version".to_owned(),
            canary: "canary".to_owned(),
            baseline: "stable".to_owned(),
            matchers: Vec::new(),
        };
        let errors = ErrorMatchers::new(&parse_matchers(r#"code=~"5..""#).unwrap()).unwrap();
        let series = |version: &str, code: &str, per_step: f64| RawSeries {
            labels: labels(&[
                ("__name__", "http_requests_total"),
                ("version", version),
                ("code", code),
            ]),
            samples: (0..=4).map(|k| (k * 15_000, per_step * k as f64)).collect(),
        };
        let raw = [
            series("canary", "200", 10.0),
            series("canary", "500", 1.0),
            series("stable", "200", 30.0),
            series("stable", "503", 2.0),
        ];
        let tick = TickRange {
            at_ms: 60_000,
            window_seconds: 60,
        };
        let QueryResult::Vector(got) = error_rate_at(&raw, &traffic, &errors, tick) else {
            panic!("a vector");
        };
        let value = |version: &str, half: &str| {
            got.iter()
                .find(|s| s.labels["version"] == version && s.labels[SERIES_LABEL] == half)
                .map(|s| s.value)
        };
        assert_eq!(value("canary", REQUESTS_SERIES), Some(44.0));
        assert_eq!(value("canary", ERRORS_SERIES), Some(4.0));
        assert_eq!(value("stable", REQUESTS_SERIES), Some(128.0));
        assert_eq!(value("stable", ERRORS_SERIES), Some(8.0));
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|s| !s.labels.contains_key("code")));
    }
}
