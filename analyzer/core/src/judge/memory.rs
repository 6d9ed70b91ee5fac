//! Observation memory: how the judge turns cumulative readings into the increments its tests
//! take, and reads the histograms' buckets.
//!
//! Sources hand the judge totals cumulative since the analysis started (see
//! [`crate::observation`]); the tests want what happened since the previous tick. A
//! [`Totals`] remembers the highest whole-number totals seen and yields each tick's
//! increment; [`Decreases`] counts the ticks at which totals fell.
//!
//! Totals fall when a counter resets and the source does not make up for it, or when
//! Prometheus' `increase()` extrapolates a bursty series over scrapes that do not line up
//! with the window (a total computed a little high, then the next a little lower). The judge
//! never turns a fall into negative evidence: increments count from the highest total seen,
//! so after a fall the evidence waits until the new total passes the old one. That is
//! conservative (at most the fallen requests go unused), and it is reported, never silent.

use serde::{Deserialize, Serialize};

use crate::observation::{HistogramBucket, RequestCounts};
use crate::stats::histogram;
use crate::stats::rate_ratio::EventCounts;

/// The largest count a reading may carry: 2^53, the last integer every smaller one of which
/// an `f64` holds exactly.
const MAX_EXACT_COUNT: f64 = 9_007_199_254_740_992.0;

/// Whole-number cumulative totals of trials and events, never decreasing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Trials (requests).
    pub trials: u64,
    /// Events among them (errors, slow requests).
    pub events: u64,
}

impl Totals {
    /// Rounds a cumulative reading (Prometheus' `increase()` extrapolates to fractions) and
    /// keeps events within trials.
    pub(crate) fn from_reading(trials: f64, events: f64) -> Result<Totals, String> {
        if !trials.is_finite() || !events.is_finite() {
            return Err(format!(
                "non-finite count (requests {trials}, events {events})"
            ));
        }
        if trials < 0.0 || events < 0.0 {
            return Err(format!(
                "negative count (requests {trials}, events {events})"
            ));
        }
        // Above 2^53 a float no longer holds every whole number, and no service has served
        // that many requests: such a count is a broken series, not evidence (and summing two
        // of them would overflow the tests' integer counts).
        if trials > MAX_EXACT_COUNT || events > MAX_EXACT_COUNT {
            return Err(format!(
                "a count too large to be real (requests {trials:e}, events {events:e}; counts above 2^53 are not exact)"
            ));
        }
        let trials_whole = trials.round() as u64;
        let events_whole = events.round() as u64;
        // Extrapolation of two counters can put errors a little above requests; more than
        // rounding would explain means the query counts different things.
        if events > trials + 1.0 + 0.01 * trials {
            return Err(format!(
                "more events ({events:.1}) than requests ({trials:.1}): the two queries do not count the same requests"
            ));
        }
        Ok(Totals {
            trials: trials_whole,
            events: events_whole.min(trials_whole),
        })
    }

    /// The totals of a request-counting reading.
    pub(crate) fn from_counts(counts: &RequestCounts) -> Result<Totals, String> {
        Totals::from_reading(counts.requests, counts.errors)
    }

    /// Advances the totals to a new reading and returns the increment. A reading below the
    /// previous one (extrapolation jitter) adds nothing and keeps the previous totals.
    pub(crate) fn advance(&mut self, next: Totals) -> EventCounts {
        let trials = next.trials.saturating_sub(self.trials);
        let events = next.events.saturating_sub(self.events).min(trials);
        self.trials = self.trials.max(next.trials);
        self.events = self.events.max(next.events);
        EventCounts { trials, events }
    }
}

/// What the falls of a pair of cumulative totals cost: at how many ticks they fell, and by
/// how much in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decreases {
    /// Ticks at which a total fell below the highest seen.
    pub ticks: u64,
    /// Requests (trials) by which the totals fell, summed over those ticks: at most this many
    /// requests were not used as evidence.
    pub requests: u64,
    /// Events by which the event totals fell, summed.
    pub events: u64,
}

impl Decreases {
    /// Takes one tick's readings of some cumulative totals, each against the highest seen
    /// before: a tick at which any of them fell counts once, and by how much they fell in
    /// all.
    pub(crate) fn record(&mut self, readings: &[(Totals, Totals)]) {
        let mut fell = false;
        for (highest, next) in readings {
            let requests = highest.trials.saturating_sub(next.trials);
            let events = highest.events.saturating_sub(next.events);
            if requests > 0 || events > 0 {
                fell = true;
                self.requests = self.requests.saturating_add(requests);
                self.events = self.events.saturating_add(events);
            }
        }
        if fell {
            self.ticks = self.ticks.saturating_add(1);
        }
    }

    /// Whether nothing fell.
    pub fn is_none(&self) -> bool {
        self.ticks == 0
    }

    /// Itself when something fell, for a report.
    pub(crate) fn reported(self) -> Option<Decreases> {
        (!self.is_none()).then_some(self)
    }
}

/// The observations of a histogram: the count of its `+Inf` bucket.
pub(crate) fn total(buckets: &[HistogramBucket]) -> f64 {
    buckets
        .iter()
        .filter(|b| b.le.is_infinite() && b.le > 0.0)
        .map(|b| b.count)
        .fold(0.0, f64::max)
}

/// Refuses a histogram the latency tests cannot read: no buckets, no `+Inf` bucket, a count
/// that is not a finite non-negative number, or a NaN bound.
pub(crate) fn check_buckets(version: &str, buckets: &[HistogramBucket]) -> Result<(), String> {
    if buckets.is_empty() {
        return Err(format!("the {version} histogram has no buckets"));
    }
    if !buckets.iter().any(|b| b.le == f64::INFINITY) {
        return Err(format!("the {version} histogram has no +Inf bucket"));
    }
    if let Some(bad) = buckets
        .iter()
        .find(|b| !b.count.is_finite() || b.count < 0.0 || b.le.is_nan())
    {
        return Err(format!(
            "the {version} histogram has an unusable bucket (le {}, count {})",
            bad.le, bad.count
        ));
    }
    Ok(())
}

/// Requests and the requests above `bound` (a bucket bound), as whole-number totals.
pub(crate) fn slow_totals(buckets: &[HistogramBucket], bound: f64) -> Result<Totals, String> {
    let stats = HistogramBucket::to_stats(buckets);
    let above = histogram::count_above(&stats, bound)
        .ok_or_else(|| format!("{bound} is not a bucket bound of this histogram"))?;
    Totals::from_reading(total(buckets), above.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(pairs: &[(f64, f64)]) -> Vec<HistogramBucket> {
        pairs
            .iter()
            .map(|&(le, count)| HistogramBucket { le, count })
            .collect()
    }

    /// Found by the fuzz campaign (target `prometheus_answer`): a bucket count of 1.5e27 was
    /// taken as u64::MAX and the latency test's sum of two such counts overflowed (a panic
    /// with overflow checks, a wrong e-value without).
    #[test]
    fn a_count_beyond_exact_floats_is_refused_as_data() {
        let message = Totals::from_reading(1.466e27, 0.0).unwrap_err();
        assert!(
            message.contains("a count too large to be real"),
            "{message}"
        );
        assert!(Totals::from_reading(100.0, 2e16).is_err());
        assert!(Totals::from_reading(9_007_199_254_740_992.0, 0.0).is_ok());
    }

    #[test]
    fn readings_are_rounded_and_events_kept_within_trials() {
        assert_eq!(
            Totals::from_reading(100.4, 2.6),
            Ok(Totals {
                trials: 100,
                events: 3
            })
        );
        // Extrapolation can put errors a hair above requests: clamped, not refused.
        assert_eq!(
            Totals::from_reading(10.0, 10.6),
            Ok(Totals {
                trials: 10,
                events: 10
            })
        );
        assert!(Totals::from_reading(10.0, 30.0).is_err());
        assert!(Totals::from_reading(-1.0, 0.0).is_err());
        assert!(Totals::from_reading(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn advancing_yields_increments_and_never_goes_back() {
        let mut totals = Totals::default();
        assert_eq!(
            totals.advance(Totals {
                trials: 100,
                events: 2
            }),
            EventCounts::new(100, 2)
        );
        // A lower reading adds nothing and keeps the higher totals.
        assert_eq!(
            totals.advance(Totals {
                trials: 90,
                events: 1
            }),
            EventCounts::new(0, 0)
        );
        assert_eq!(
            totals.advance(Totals {
                trials: 150,
                events: 5
            }),
            EventCounts::new(50, 3)
        );
    }

    #[test]
    fn falls_are_counted_once_per_tick_with_what_they_leave_unused() {
        let mut decreases = Decreases::default();
        let at = |trials, events| Totals { trials, events };
        decreases.record(&[(at(0, 0), at(1000, 10)), (at(0, 0), at(9000, 90))]);
        assert!(decreases.is_none());
        // Extrapolation jitter in both versions at one tick: one tick.
        decreases.record(&[(at(1000, 10), at(960, 9)), (at(9000, 90), at(8990, 90))]);
        // A reset the source did not make up for.
        decreases.record(&[(at(1000, 10), at(100, 1)), (at(9000, 90), at(9500, 95))]);
        assert_eq!(
            decreases,
            Decreases {
                ticks: 2,
                requests: 40 + 10 + 900,
                events: 1 + 9
            }
        );
        assert_eq!(decreases.reported(), Some(decreases));
        assert_eq!(Decreases::default().reported(), None);
    }

    #[test]
    fn histograms_without_inf_or_with_bad_counts_are_refused() {
        assert!(check_buckets("canary", &[]).is_err());
        assert!(check_buckets("canary", &buckets(&[(0.1, 1.0)])).is_err());
        assert!(check_buckets("canary", &buckets(&[(0.1, -1.0), (f64::INFINITY, 1.0)])).is_err());
        assert!(check_buckets("canary", &buckets(&[(0.1, 1.0), (f64::INFINITY, 2.0)])).is_ok());
    }

    #[test]
    fn slow_totals_count_above_a_bucket_bound_only() {
        let h = buckets(&[(0.1, 80.0), (0.25, 95.0), (f64::INFINITY, 100.0)]);
        assert_eq!(total(&h), 100.0);
        assert_eq!(
            slow_totals(&h, 0.1),
            Ok(Totals {
                trials: 100,
                events: 20
            })
        );
        assert!(slow_totals(&h, 0.2).is_err(), "0.2 is not a bucket bound");
    }
}
