//! The simulated world: traffic to both versions in virtual time, and what a metrics source
//! reads from it.
//!
//! One [`World`] is one rollout's traffic. Whoever decides — canary's real rollout machine,
//! or one of the peers' rules in [`crate::peers`] — moves the canary's weight with
//! [`World::set_weight`], lets time pass with [`World::advance_to`], and reads cumulative
//! counters with [`World::read`], exactly as a metrics source would return them (stale
//! reads and counter resets included).
//!
//! Every random draw comes from a generator keyed by the run's seed, the *purpose* of the
//! draw (traffic, a read, a per-interval sample) and the virtual time it happens at, never
//! from one generator shared through the run. So two deciders that look at the same seed
//! with the same weights at the same times see exactly the same requests, errors and
//! latencies up to the moment their decisions differ, however many reads each makes. That is
//! what makes "the same traffic, the same seeds" comparisons between canary and the
//! peers' rules exact, not merely equal in distribution.

use std::collections::BTreeMap;
use std::time::Duration;

use canary_core::observation::{CheckObservation, HistogramBucket, Reading, RequestCounts, Tick};
use canary_core::policy::{CheckKind, JsonMeasure, Policy};
use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Poisson};

use crate::samples::SampleNoise;
use crate::scenario::{RatePattern, Regression, Scenario};

/// The virtual time every simulated rollout starts at.
pub fn simulation_start() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("a valid timestamp")
}

/// Traffic is generated in chunks of at most this many seconds, so that rate patterns and
/// incidents take effect within an analysis interval.
const CHUNK_SECONDS: f64 = 10.0;

/// The purposes random draws are keyed by (with the time they happen at).
#[derive(Clone, Copy)]
enum Stream {
    Traffic = 0,
    Read = 1,
    Samples = 2,
}

/// What one version has served, as a read returns it: cumulative since the rollout started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionReading {
    /// Requests.
    pub requests: f64,
    /// Of which errors.
    pub errors: f64,
    /// Requests at or below each finite bucket bound of the scenario's histogram (cumulative
    /// in `le`, like Prometheus' `_bucket` series); the `+Inf` bucket is `requests`.
    pub buckets: Vec<f64>,
}

impl VersionReading {
    /// The increments from `earlier` to `self`. A counter that went down (a reset the source
    /// did not hide) contributes nothing rather than a negative count.
    pub fn since(&self, earlier: &VersionReading) -> VersionReading {
        VersionReading {
            requests: (self.requests - earlier.requests).max(0.0),
            errors: (self.errors - earlier.errors).max(0.0),
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(now, then)| (now - then).max(0.0))
                .collect(),
        }
    }

    /// The buckets with `+Inf`, as the judge and `histogram_quantile` take them.
    pub fn histogram(&self, bounds: &[f64]) -> Vec<HistogramBucket> {
        let mut buckets: Vec<HistogramBucket> = bounds
            .iter()
            .zip(&self.buckets)
            .map(|(&le, &count)| HistogramBucket { le, count })
            .collect();
        buckets.push(HistogramBucket {
            le: f64::INFINITY,
            count: self.requests,
        });
        buckets
    }

    /// `histogram_quantile(q, …)` of these buckets, as Prometheus computes it (NaN when
    /// there is no request).
    pub fn quantile(&self, q: f64, bounds: &[f64]) -> f64 {
        canary_core::stats::histogram_quantile(
            q,
            &HistogramBucket::to_stats(&self.histogram(bounds)),
        )
    }

    /// Requests slower than the bucket bound `bound` (which must be one of `bounds`).
    pub fn slower_than(&self, bound: f64, bounds: &[f64]) -> f64 {
        bounds
            .iter()
            .position(|&b| b == bound)
            .map_or(0.0, |i| (self.requests - self.buckets[i]).max(0.0))
    }

    /// The error ratio, NaN without requests (as PromQL's `0/0`).
    pub fn error_ratio(&self) -> f64 {
        if self.requests > 0.0 {
            self.errors / self.requests
        } else {
            f64::NAN
        }
    }
}

/// What one read of the metrics returned, for both versions.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// When it was read.
    pub at: Timestamp,
    /// Seconds since the rollout started.
    pub elapsed_seconds: f64,
    /// The canary's counters.
    pub canary: VersionReading,
    /// The baseline's counters.
    pub baseline: VersionReading,
    /// The canary's per-interval sample (samples checks), if it had traffic.
    pub canary_sample: Option<f64>,
    /// The baseline's per-interval sample.
    pub baseline_sample: Option<f64>,
    /// Whether a canary pod has restarted (query checks read 1 then).
    pub canary_restarted: bool,
    /// Whether this read repeated the previous one (a missed scrape).
    pub stale: bool,
}

impl Snapshot {
    /// The tick canary's judge gets from this read: one reading per check of `policy`.
    pub fn tick(&self, policy: &Policy, bounds: &[f64]) -> Tick {
        let mut readings = BTreeMap::new();
        for check in &policy.checks {
            let observation = match &check.kind {
                CheckKind::ErrorRate(_) => CheckObservation::Counts {
                    canary: counts(&self.canary),
                    baseline: counts(&self.baseline).into(),
                },
                CheckKind::Latency(_) => CheckObservation::Histogram {
                    canary: self.canary.histogram(bounds),
                    baseline: self.baseline.histogram(bounds).into(),
                },
                CheckKind::Samples(_) => CheckObservation::Samples {
                    canary: self.canary_sample,
                    baseline: self.baseline_sample,
                },
                CheckKind::Query(_) => CheckObservation::Value {
                    value: if self.canary_restarted { 1.0 } else { 0.0 },
                },
                // A generic provider's counts are the same counts; its percentile is the
                // canary's, computed since the start from the same requests.
                CheckKind::Json(json) => match &json.measure {
                    JsonMeasure::Counts { .. } => CheckObservation::Counts {
                        canary: counts(&self.canary),
                        baseline: counts(&self.baseline).into(),
                    },
                    JsonMeasure::Percentile { quantile, .. } => CheckObservation::Value {
                        value: canary_core::stats::histogram::histogram_quantile(
                            *quantile,
                            &HistogramBucket::to_stats(&self.canary.histogram(bounds)),
                        ),
                    },
                    JsonMeasure::Value { .. } => CheckObservation::Value {
                        value: if self.canary_restarted { 1.0 } else { 0.0 },
                    },
                },
            };
            readings.insert(check.name.clone(), Reading::Observed(observation));
        }
        Tick {
            at: self.at,
            window_seconds: self.elapsed_seconds,
            readings,
            warnings: Vec::new(),
        }
    }
}

fn counts(reading: &VersionReading) -> RequestCounts {
    RequestCounts {
        requests: reading.requests,
        errors: reading.errors,
    }
}

/// What the canary actually served up to now (not what the metrics say).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Served {
    /// Canary requests.
    pub canary_requests: u64,
    /// Canary errors.
    pub canary_errors: u64,
    /// Canary errors beyond what a healthy canary would have served (expected value).
    pub excess_errors: f64,
}

/// One rollout's traffic, in virtual time. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct World<'s> {
    scenario: &'s Scenario,
    seed: u64,
    start: Timestamp,
    clock: Timestamp,
    weight: u8,
    canary: Totals,
    baseline: Totals,
    /// What the last read returned (stale reads repeat it).
    last_read: Option<Snapshot>,
    /// Per-interval samples drawn at the last wait.
    samples: (Option<f64>, Option<f64>),
    /// Each version's sample noise (autocorrelated when the traffic says so).
    sample_noise: SampleNoise,
    /// Errors a healthy canary would have served in the canary's requests (expected value).
    canary_healthy_errors: f64,
    /// P(latency ≤ bound) per bucket bound, for each version (fixed for a scenario).
    canary_cdf: Vec<f64>,
    baseline_cdf: Vec<f64>,
}

#[derive(Clone, Debug, Default)]
struct Totals {
    requests: u64,
    errors: u64,
    /// Cumulative counts at or below each finite bound.
    buckets: Vec<u64>,
    /// Counts lost to counter resets (subtracted from what is read).
    lost_requests: u64,
    lost_errors: u64,
    lost_buckets: Vec<u64>,
    /// What the previous read saw, to size a reset's loss.
    read_requests: u64,
    read_errors: u64,
    read_buckets: Vec<u64>,
}

impl Totals {
    fn new(bounds: usize) -> Totals {
        Totals {
            buckets: vec![0; bounds],
            lost_buckets: vec![0; bounds],
            read_buckets: vec![0; bounds],
            ..Totals::default()
        }
    }

    fn reading(&self) -> VersionReading {
        VersionReading {
            requests: (self.requests - self.lost_requests) as f64,
            errors: (self.errors - self.lost_errors.min(self.errors)) as f64,
            buckets: self
                .buckets
                .iter()
                .zip(&self.lost_buckets)
                .map(|(&count, &lost)| count.saturating_sub(lost) as f64)
                .collect(),
        }
    }

    fn add(&mut self, requests: u64, errors: u64, buckets: &[u64]) {
        self.requests += requests;
        self.errors += errors;
        let mut cumulative = 0;
        for (i, count) in buckets.iter().enumerate() {
            cumulative += count;
            self.buckets[i] += cumulative;
        }
    }

    /// A counter reset between the previous read and now: `share` of the increments since
    /// then is lost (as `increase()` loses what happened before a restart it cannot see).
    fn reset(&mut self, share: f64) {
        let lose = |now: u64, then: u64| ((now - then) as f64 * share).floor() as u64;
        let lost_requests = lose(self.requests, self.read_requests);
        let lost_errors = lose(self.errors, self.read_errors).min(lost_requests);
        self.lost_requests += lost_requests;
        self.lost_errors += lost_errors;
        for ((lost, &now), &then) in self
            .lost_buckets
            .iter_mut()
            .zip(&self.buckets)
            .zip(&self.read_buckets)
        {
            *lost += lose(now, then);
        }
    }

    fn mark_read(&mut self) {
        self.read_requests = self.requests;
        self.read_errors = self.errors;
        self.read_buckets.clone_from(&self.buckets);
    }
}

impl<'s> World<'s> {
    /// The world of one rollout of `scenario`, seeded, at [`simulation_start`], with no
    /// traffic on the canary yet.
    pub fn new(scenario: &'s Scenario, seed: u64) -> World<'s> {
        let start = simulation_start();
        let bounds = scenario.traffic.buckets.len();
        World {
            scenario,
            seed,
            start,
            clock: start,
            weight: 0,
            canary: Totals::new(bounds),
            baseline: Totals::new(bounds),
            last_read: None,
            samples: (None, None),
            sample_noise: SampleNoise::default(),
            canary_healthy_errors: 0.0,
            canary_cdf: latency_cdf(scenario, &scenario.canary),
            baseline_cdf: latency_cdf(scenario, &Regression::none()),
        }
    }

    /// The scenario.
    pub fn scenario(&self) -> &'s Scenario {
        self.scenario
    }

    /// When the rollout started.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// Now, in virtual time.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    /// Time since the rollout started.
    pub fn elapsed(&self) -> Duration {
        Duration::try_from(self.clock.duration_since(self.start)).unwrap_or_default()
    }

    /// The canary's share of traffic, in percent.
    pub fn weight(&self) -> u8 {
        self.weight
    }

    /// Moves the canary's share of traffic (from now on).
    pub fn set_weight(&mut self, weight: u8) {
        self.weight = weight.min(100);
    }

    /// What the canary has served so far.
    pub fn served(&self) -> Served {
        Served {
            canary_requests: self.canary.requests,
            canary_errors: self.canary.errors,
            excess_errors: self.canary.errors as f64 - self.canary_healthy_errors,
        }
    }

    fn rng(&self, stream: Stream, at: Timestamp) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let millis = at.duration_since(self.start).as_millis().max(0) as u64;
        rng.set_stream(millis * 4 + stream as u64);
        rng
    }

    /// Generates the traffic from now to `until`, in chunks of at most 10 s so that rate
    /// patterns and incidents have effect, then draws the per-interval samples.
    pub fn advance_to(&mut self, until: Timestamp) {
        while self.clock < until {
            let remaining = until.duration_since(self.clock).as_secs_f64();
            let chunk = remaining.min(CHUNK_SECONDS);
            self.generate(chunk);
            self.clock += SignedDuration::from_secs_f64(chunk);
        }
        let mut rng = self.rng(Stream::Samples, self.clock);
        let at = self.clock.duration_since(self.start).as_secs_f64();
        let (canary, baseline) = self.sample_noise.draw(&mut rng, &self.scenario.traffic, at);
        let canary = canary * (1.0 + self.scenario.canary.sample_shift);
        self.samples = (
            (self.weight > 0).then_some(canary),
            (self.weight < 100).then_some(baseline),
        );
    }

    /// The traffic of one chunk of `seconds` starting now.
    fn generate(&mut self, seconds: f64) {
        let mut rng = self.rng(Stream::Traffic, self.clock);
        let t = self.clock.duration_since(self.start).as_secs_f64() + seconds / 2.0;
        let traffic = &self.scenario.traffic;
        let rate = match traffic.pattern {
            RatePattern::Constant => traffic.rps,
            RatePattern::Diurnal { amplitude, period } => {
                let phase = std::f64::consts::TAU * t / period.as_secs_f64().max(1.0);
                traffic.rps * (1.0 + amplitude * phase.sin()).max(0.0)
            }
            RatePattern::Bursty {
                factor,
                probability,
            } => {
                if rng.random::<f64>() < probability {
                    traffic.rps * factor
                } else {
                    traffic.rps
                }
            }
        } * seconds;
        let total = if rate > 0.0 {
            Poisson::new(rate)
                .expect("a positive rate")
                .sample(&mut rng) as u64
        } else {
            0
        };
        let canary_n = binomial(&mut rng, total, f64::from(self.weight) / 100.0);
        let baseline_n = total - canary_n;
        let incident = self
            .scenario
            .incident
            .as_ref()
            .filter(|i| t >= i.start.as_secs_f64() && t < (i.start + i.duration).as_secs_f64())
            .map_or(0.0, |i| i.error_add);
        let regression = &self.scenario.canary;
        let base_error = (traffic.error_rate + incident).clamp(0.0, 1.0);
        let canary_error =
            (traffic.error_rate * regression.error_factor + regression.error_add + incident)
                .clamp(0.0, 1.0);
        self.canary_healthy_errors += canary_n as f64 * base_error;
        let canary_errors = binomial(&mut rng, canary_n, canary_error);
        let baseline_errors = binomial(&mut rng, baseline_n, base_error);
        let canary_buckets = bucket_counts(&mut rng, canary_n, &self.canary_cdf);
        let baseline_buckets = bucket_counts(&mut rng, baseline_n, &self.baseline_cdf);
        self.canary.add(canary_n, canary_errors, &canary_buckets);
        self.baseline
            .add(baseline_n, baseline_errors, &baseline_buckets);
    }

    /// A read of the metrics now: cumulative counters since the start for both versions,
    /// this interval's samples, and whether a canary pod restarted. With the scenario's
    /// probabilities, a read repeats the previous one (a missed scrape), or a counter reset
    /// loses part of the increments since the previous read.
    pub fn read(&mut self) -> Snapshot {
        let mut rng = self.rng(Stream::Read, self.clock);
        if let Some(previous) = &self.last_read
            && rng.random::<f64>() < self.scenario.stale_read_probability
        {
            let mut stale = previous.clone();
            stale.at = self.clock;
            stale.elapsed_seconds = self.clock.duration_since(self.start).as_secs_f64();
            stale.stale = true;
            return stale;
        }
        for totals in [&mut self.canary, &mut self.baseline] {
            if rng.random::<f64>() < self.scenario.counter_reset_probability {
                let share: f64 = rng.random();
                totals.reset(share);
            }
            totals.mark_read();
        }
        let elapsed = self.clock.duration_since(self.start);
        let snapshot = Snapshot {
            at: self.clock,
            elapsed_seconds: elapsed.as_secs_f64(),
            canary: self.canary.reading(),
            baseline: self.baseline.reading(),
            canary_sample: self.samples.0,
            baseline_sample: self.samples.1,
            canary_restarted: self.scenario.canary.restarts && elapsed.as_secs() >= 60,
            stale: false,
        };
        self.last_read = Some(snapshot.clone());
        snapshot
    }
}

fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    Binomial::new(n, p).expect("a valid binomial").sample(rng)
}

/// P(latency ≤ bound) for each finite bucket bound of the scenario, for a version with
/// `regression`.
pub fn latency_cdf(scenario: &Scenario, regression: &Regression) -> Vec<f64> {
    let traffic = &scenario.traffic;
    let median = traffic.latency_median * regression.latency_factor;
    let lognormal_cdf = |x: f64, median: f64| {
        if x <= 0.0 {
            0.0
        } else {
            canary_core::stats::normal_cdf((x.ln() - median.ln()) / traffic.latency_sigma)
        }
    };
    traffic
        .buckets
        .iter()
        .map(|&bound| {
            let x = bound - regression.latency_add;
            let body = lognormal_cdf(x, median);
            if regression.tail_fraction > 0.0 {
                let tail = lognormal_cdf(x, median * regression.tail_factor);
                (1.0 - regression.tail_fraction) * body + regression.tail_fraction * tail
            } else {
                body
            }
        })
        .collect()
}

/// Per-bucket (non-cumulative) counts of `n` requests, the last entry being above the
/// highest bound: a multinomial drawn as a chain of binomials.
fn bucket_counts(rng: &mut ChaCha8Rng, n: u64, cdf: &[f64]) -> Vec<u64> {
    let mut counts = Vec::with_capacity(cdf.len());
    let mut left = n;
    let mut below = 0.0;
    for &p in cdf {
        let share = if below >= 1.0 {
            0.0
        } else {
            ((p - below) / (1.0 - below)).clamp(0.0, 1.0)
        };
        let k = binomial(rng, left, share);
        counts.push(k);
        left -= k;
        below = p;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Incident, Traffic};

    fn scenario(regression: Regression) -> Scenario {
        Scenario::new("t", Traffic::constant(100.0, 0.02), regression)
    }

    fn played(scenario: &Scenario, seed: u64, reads_every: u64) -> Vec<Snapshot> {
        let mut world = World::new(scenario, seed);
        world.set_weight(20);
        let mut reads = Vec::new();
        for k in 1..=(600 / reads_every) {
            world.advance_to(world.start() + SignedDuration::from_secs((k * reads_every) as i64));
            reads.push(world.read());
        }
        reads
    }

    #[test]
    fn traffic_does_not_depend_on_how_often_it_is_read() {
        // Reads every 10 s and every 30 s see the same counters at the times both read.
        let healthy = scenario(Regression::none());
        let often = played(&healthy, 3, 10);
        let rarely = played(&healthy, 3, 30);
        for read in &rarely {
            let same = often.iter().find(|r| r.at == read.at).unwrap();
            assert_eq!(same.canary, read.canary);
            assert_eq!(same.baseline, read.baseline);
        }
        assert_ne!(
            played(&healthy, 4, 30),
            rarely,
            "another seed, other traffic"
        );
    }

    #[test]
    fn rates_and_regressions_show_in_the_counters() {
        let doubled = scenario(Regression::errors_times(2.0));
        let last = played(&doubled, 1, 30).pop().unwrap();
        let total = last.canary.requests + last.baseline.requests;
        assert!(
            (total - 60_000.0).abs() < 1_000.0,
            "100 rps for 600 s: {total}"
        );
        assert!((last.canary.requests / total - 0.2).abs() < 0.01);
        let (canary, baseline) = (last.canary.error_ratio(), last.baseline.error_ratio());
        assert!((canary - 0.04).abs() < 0.006, "{canary}");
        assert!((baseline - 0.02).abs() < 0.002, "{baseline}");

        let bounds = DEFAULT_BOUNDS;
        let slower = scenario(Regression::latency_times(1.5));
        let last = played(&slower, 1, 30).pop().unwrap();
        let (c, b) = (
            last.canary.quantile(0.95, bounds),
            last.baseline.quantile(0.95, bounds),
        );
        // Interpolating within the (0.1, 0.25] bucket flattens the difference (true p95s
        // 134 ms and 201 ms), but it shows.
        assert!(c > 1.15 * b, "p95 {c} vs {b}");
    }

    const DEFAULT_BOUNDS: &[f64] = &crate::scenario::DEFAULT_BUCKETS;

    #[test]
    fn incidents_hit_both_versions_only_while_they_last() {
        let mut incident = scenario(Regression::none());
        incident.incident = Some(Incident {
            start: Duration::from_secs(300),
            duration: Duration::from_secs(120),
            error_add: 0.2,
        });
        let reads = played(&incident, 5, 60);
        let minute = |k: usize| reads[k].canary.since(&reads[k - 1].canary).error_ratio();
        let base_minute = |k: usize| {
            reads[k]
                .baseline
                .since(&reads[k - 1].baseline)
                .error_ratio()
        };
        // Minutes 6 and 7 (reads 5 and 6) are inside the incident; 3 and 9 are not.
        assert!(minute(5) > 0.15 && base_minute(5) > 0.15);
        assert!(minute(6) > 0.15 && base_minute(6) > 0.15);
        assert!(minute(3) < 0.06 && base_minute(8) < 0.06);
    }

    #[test]
    fn stale_reads_repeat_and_resets_lose_counts() {
        let mut flaky = scenario(Regression::none());
        flaky.stale_read_probability = 0.5;
        let reads = played(&flaky, 9, 30);
        let stale: Vec<_> = reads.iter().filter(|r| r.stale).collect();
        assert!(stale.len() > 3, "about half the reads are stale");
        for (i, read) in reads.iter().enumerate().skip(1) {
            if read.stale {
                assert_eq!(read.canary, reads[i - 1].canary);
            }
        }

        let mut resetting = scenario(Regression::none());
        resetting.counter_reset_probability = 0.5;
        let mut world = World::new(&resetting, 2);
        world.set_weight(50);
        for k in 1..=20 {
            world.advance_to(world.start() + SignedDuration::from_secs(30 * k));
            world.read();
        }
        let read = world.read();
        assert!(
            read.canary.requests < world.served().canary_requests as f64,
            "resets lose part of what was served"
        );
        // What a reset loses never makes a bucket exceed its total.
        assert!(
            read.canary
                .buckets
                .iter()
                .all(|&b| b <= read.canary.requests)
        );
    }

    #[test]
    fn tails_and_patterns_move_traffic() {
        let tail = scenario(Regression {
            tail_fraction: 0.05,
            tail_factor: 20.0,
            ..Regression::none()
        });
        let last = played(&tail, 1, 60).pop().unwrap();
        let b = DEFAULT_BOUNDS;
        assert!(last.canary.quantile(0.99, b) > 3.0 * last.baseline.quantile(0.99, b));
        assert!(last.canary.quantile(0.5, b) < 1.3 * last.baseline.quantile(0.5, b));

        let mut diurnal = scenario(Regression::none());
        diurnal.traffic.pattern = RatePattern::Diurnal {
            amplitude: 0.9,
            period: Duration::from_secs(600),
        };
        let reads = played(&diurnal, 1, 60);
        let total = |k: usize| {
            reads[k].baseline.since(&reads[k - 1].baseline).requests
                + reads[k].canary.since(&reads[k - 1].canary).requests
        };
        // The sine peaks at 150 s and bottoms out at 450 s: minute 2 against minute 7.
        assert!(total(2) > 5.0 * total(7), "{} vs {}", total(2), total(7));

        let mut bursty = scenario(Regression::none());
        bursty.traffic.pattern = RatePattern::Bursty {
            factor: 10.0,
            probability: 0.2,
        };
        let last = played(&bursty, 1, 60).pop().unwrap();
        let total = last.canary.requests + last.baseline.requests;
        assert!(total > 1.5 * 60_000.0, "bursts add traffic: {total}");
    }
}
