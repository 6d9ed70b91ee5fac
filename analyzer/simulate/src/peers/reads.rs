//! How the rules read the snapshots: the increments over a window (a PromQL range), what
//! `irate()` sees, and a version's histogram in the form the statistics take.

use std::time::Duration;

use canary_core::stats::Bucket;

use crate::{Snapshot, VersionReading};

/// Whether `read` falls on a multiple of `every` since the rollout started.
pub(super) fn on_multiple(read: &Snapshot, every: Duration) -> bool {
    let every = every.as_millis().max(1);
    let at = (read.elapsed_seconds * 1000.0).round() as u128;
    at > 0 && at.is_multiple_of(every)
}

/// The increments of both versions over the last `window` (from the read `window` ago, or
/// from the start when the rollout is younger than that).
pub(super) fn window(reads: &[Snapshot], window: Duration) -> (VersionReading, VersionReading) {
    let now = reads.last().expect("a read");
    let from = now.elapsed_seconds - window.as_secs_f64();
    let earlier = reads
        .iter()
        .rev()
        .find(|r| r.elapsed_seconds <= from + 1e-6)
        .filter(|_| from > 1e-6);
    match earlier {
        Some(earlier) => (
            now.canary.since(&earlier.canary),
            now.baseline.since(&earlier.baseline),
        ),
        None => (now.canary.clone(), now.baseline.clone()),
    }
}

/// The increments between the two most recent distinct reads within the last `window`:
/// what PromQL's `irate()` sees (the last two samples), zero requests when there is only one.
pub(super) fn irate_window(
    reads: &[Snapshot],
    window: Duration,
) -> (VersionReading, VersionReading) {
    let now = reads.last().expect("a read");
    let from = now.elapsed_seconds - window.as_secs_f64();
    let previous = reads
        .iter()
        .rev()
        .skip(1)
        .take_while(|r| r.elapsed_seconds >= from - 1e-6)
        .find(|r| r.canary != now.canary || r.baseline != now.baseline);
    match previous {
        Some(previous) => (
            now.canary.since(&previous.canary),
            now.baseline.since(&previous.baseline),
        ),
        None if from <= 1e-6 => (now.canary.clone(), now.baseline.clone()),
        None => (
            now.canary.since(&now.canary),
            now.baseline.since(&now.baseline),
        ),
    }
}

pub(super) fn stats_buckets(reading: &VersionReading, bounds: &[f64]) -> Vec<Bucket> {
    reading
        .histogram(bounds)
        .iter()
        .map(|b| Bucket::new(b.le, b.count))
        .collect()
}
