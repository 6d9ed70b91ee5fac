//! `canary-simulate` runs rollouts of synthetic traffic through canary's **real** rollout
//! machine and judge, in virtual time, seeded: what a policy would do on traffic like yours.
//!
//! A [`Scenario`] describes the traffic (request rate with a constant, diurnal or bursty
//! pattern; error probability; log-normal latency bucketed like a Prometheus histogram;
//! per-interval samples), what is wrong with the canary (a [`Regression`]), incidents that hit
//! both versions, stale reads (missed scrapes) and counter resets. [`run`] plays one rollout:
//! it answers the machine's effects itself — weights move the traffic split, waits advance the
//! virtual clock while traffic is generated, reads return cumulative readings exactly as a
//! metrics source would — and reports when and how the rollout ended and how much of the
//! canary's traffic was served before it did. [`run_many`] summarizes thousands of seeded
//! runs: false-rollback rate with its Wilson interval, detection probability, time and
//! requests to detection. `canary simulate` and the benchmark harness both call this code, so
//! their numbers come from the same path.

use std::collections::BTreeMap;
use std::time::Duration;

use canary_core::ExitCode;
use canary_core::observation::{CheckObservation, HistogramBucket, Reading, RequestCounts, Tick};
use canary_core::policy::{CheckKind, Policy};
use canary_core::rollout::{Effect, Event, Machine, Phase, RollbackCause};
use canary_core::stats::wilson_interval;
use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Normal, Poisson};
use serde::Serialize;

/// Bucket bounds of the simulated latency histogram (the Prometheus client defaults).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How the request rate moves over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "pattern")]
pub enum RatePattern {
    /// The same rate throughout.
    Constant,
    /// A sine wave around the rate: `rps · (1 + amplitude · sin(2πt / period))`.
    Diurnal {
        /// Relative amplitude, 0..1.
        amplitude: f64,
        /// Period of the wave.
        period: Duration,
    },
    /// Bursts: in each interval, with `probability`, the rate is `factor` times higher.
    Bursty {
        /// How much higher during a burst.
        factor: f64,
        /// How often a burst happens.
        probability: f64,
    },
}

/// Traffic both versions see, before any regression.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Traffic {
    /// Requests per second to the service (both versions together).
    pub rps: f64,
    /// How the rate moves.
    pub pattern: RatePattern,
    /// Probability that a request fails.
    pub error_rate: f64,
    /// Median latency in seconds (log-normal).
    pub latency_median: f64,
    /// Log-normal σ of latency.
    pub latency_sigma: f64,
    /// Histogram bucket bounds (finite; `+Inf` is added).
    pub buckets: Vec<f64>,
    /// Mean of per-interval samples (samples checks, e.g. CPU seconds per request).
    pub sample_mean: f64,
    /// Standard deviation of per-interval samples.
    pub sample_sd: f64,
}

impl Traffic {
    /// Constant traffic at `rps` with `error_rate` errors and a 50 ms median latency.
    pub fn constant(rps: f64, error_rate: f64) -> Traffic {
        Traffic {
            rps,
            pattern: RatePattern::Constant,
            error_rate,
            latency_median: 0.05,
            latency_sigma: 0.6,
            buckets: DEFAULT_BUCKETS.to_vec(),
            sample_mean: 1.0,
            sample_sd: 0.1,
        }
    }
}

/// What is wrong with the canary.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Regression {
    /// Error probability multiplied by this (1 = unchanged).
    pub error_factor: f64,
    /// Then this is added.
    pub error_add: f64,
    /// Latency multiplied by this (1 = unchanged): a p95 +50 % regression is 1.5.
    pub latency_factor: f64,
    /// Then this many seconds are added.
    pub latency_add: f64,
    /// A slow tail: this fraction of requests is `tail_factor` times slower.
    pub tail_fraction: f64,
    /// How much slower the tail is.
    pub tail_factor: f64,
    /// Samples multiplied by `1 + sample_shift`.
    pub sample_shift: f64,
    /// Canary pods restart (query checks see 1 restart after a minute).
    pub restarts: bool,
}

impl Regression {
    /// No regression: a healthy canary.
    pub fn none() -> Regression {
        Regression {
            error_factor: 1.0,
            latency_factor: 1.0,
            tail_factor: 1.0,
            ..Regression::default()
        }
    }

    /// The error rate multiplied by `factor`.
    pub fn errors_times(factor: f64) -> Regression {
        Regression {
            error_factor: factor,
            ..Regression::none()
        }
    }

    /// Latency multiplied by `factor` (p95 moves by the same factor).
    pub fn latency_times(factor: f64) -> Regression {
        Regression {
            latency_factor: factor,
            ..Regression::none()
        }
    }

    /// Whether the canary is healthy (nothing to detect).
    pub fn is_none(&self) -> bool {
        self.error_factor == 1.0
            && self.error_add == 0.0
            && self.latency_factor == 1.0
            && self.latency_add == 0.0
            && (self.tail_fraction == 0.0 || self.tail_factor == 1.0)
            && self.sample_shift == 0.0
            && !self.restarts
    }
}

/// An incident that hits both versions alike (a dependency failing): a fair comparison must
/// not blame the canary for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incident {
    /// When it starts, from the rollout's start.
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// Extra error probability for both versions meanwhile.
    pub error_add: f64,
}

/// A simulated situation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    /// A name for tables.
    pub name: String,
    /// The traffic.
    pub traffic: Traffic,
    /// What is wrong with the canary.
    pub canary: Regression,
    /// An incident hitting both versions.
    pub incident: Option<Incident>,
    /// Probability that a read returns the previous tick's values (a missed scrape).
    pub stale_read_probability: f64,
    /// Probability, per read and version, of a counter reset that loses part of the
    /// increments since the previous read (as `increase()` does across a restart).
    pub counter_reset_probability: f64,
}

impl Scenario {
    /// A scenario with `canary` as the only difference from plain constant traffic.
    pub fn new(name: impl Into<String>, traffic: Traffic, canary: Regression) -> Scenario {
        Scenario {
            name: name.into(),
            traffic,
            canary,
            incident: None,
            stale_read_probability: 0.0,
            counter_reset_probability: 0.0,
        }
    }
}

/// How one simulated rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Promoted to 100 %.
    Promoted,
    /// Rolled back because a criterion failed.
    RolledBack,
    /// Rolled back (or held) for lack of evidence.
    Inconclusive,
    /// Stopped with an infrastructure error (should not happen in simulation).
    Failed,
}

/// One simulated rollout.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// How it ended.
    pub outcome: RunOutcome,
    /// Virtual time from the start to the decision (rollback or promotion).
    pub decided_after: Duration,
    /// Canary requests served before the decision.
    pub canary_requests: u64,
    /// Canary errors served before the decision.
    pub canary_errors: u64,
    /// Canary errors beyond what a healthy canary would have served.
    pub excess_errors: f64,
    /// Analysis ticks run.
    pub ticks: u64,
    /// Which criterion failed first, if one did.
    pub failed_check: Option<String>,
}

/// Plays one rollout of `policy` on `scenario`, seeded.
pub fn run(policy: &Policy, scenario: &Scenario, seed: u64) -> RunResult {
    let machine = Machine::new(policy.clone()).expect("a validated policy makes a machine");
    run_with(&machine, scenario, seed)
}

/// [`run`] with a machine built once (for many runs of the same policy).
pub fn run_with(machine: &Machine, scenario: &Scenario, seed: u64) -> RunResult {
    let policy = machine.policy();
    let start = Timestamp::from_second(1_800_000_000).expect("a valid timestamp");
    let mut world = World::new(scenario, seed, start);
    let mut rollout = machine.start(start);
    let limit = start + SignedDuration::from_secs(budget_seconds(policy));
    let mut event = Event::Resume;
    loop {
        let effects = machine.handle(&mut rollout, event, world.clock);
        let mut next = None;
        for effect in effects {
            match effect {
                Effect::Persist | Effect::Notify(_) => {}
                Effect::RunHooks { event, .. } => {
                    next = Some(Event::HooksRan {
                        event,
                        failed: Vec::new(),
                    })
                }
                Effect::SetWeight(weight) => {
                    world.weight = weight;
                    next = Some(Event::WeightSet(weight));
                }
                Effect::Wait(until) => {
                    world.advance_to(until.max(world.clock));
                    next = Some(Event::TimerFired);
                }
                Effect::Read { .. } => next = Some(Event::Observed(world.read(policy))),
                Effect::Finish(outcome) => {
                    let outcome = match (&rollout.phase, outcome.exit) {
                        (Phase::Promoted, _) => RunOutcome::Promoted,
                        (
                            Phase::RolledBack {
                                cause: RollbackCause::Failed,
                                ..
                            },
                            _,
                        ) => RunOutcome::RolledBack,
                        (_, ExitCode::Inconclusive) => RunOutcome::Inconclusive,
                        (Phase::RolledBack { .. }, _) => RunOutcome::RolledBack,
                        _ => RunOutcome::Failed,
                    };
                    let decided = rollout.decided_at.unwrap_or(world.clock);
                    let failed_check = rollout
                        .last_assessment
                        .as_ref()
                        .and_then(|a| a.failures().next().map(|c| c.name.clone()));
                    return world.result(outcome, decided, rollout.judge.ticks, failed_check);
                }
            }
        }
        event = next.unwrap_or(Event::Resume);
        if world.clock > limit {
            return world.result(RunOutcome::Failed, world.clock, rollout.judge.ticks, None);
        }
    }
}

/// The longest a rollout of `policy` can take, plus slack: a run past it is a bug.
fn budget_seconds(policy: &Policy) -> i64 {
    let rollout = &policy.rollout;
    let steps = rollout.analysed_steps().len() as u64;
    let soak = rollout.final_soak.unwrap_or_default().as_secs();
    (steps * (rollout.max_step_duration.as_secs() + 2 * rollout.interval.as_secs()) + soak + 3600)
        as i64
}

/// Traffic and its cumulative readings, in virtual time.
struct World<'s> {
    scenario: &'s Scenario,
    rng: ChaCha8Rng,
    start: Timestamp,
    clock: Timestamp,
    weight: u8,
    canary: Totals,
    baseline: Totals,
    /// What the last read returned (stale reads repeat it).
    last_read: Option<Tick>,
    /// Per-tick samples drawn at the last wait.
    samples: (Option<f64>, Option<f64>),
    /// Canary truths at the decision, for the result.
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

impl<'s> World<'s> {
    fn new(scenario: &'s Scenario, seed: u64, start: Timestamp) -> World<'s> {
        let n = scenario.traffic.buckets.len();
        let totals = || Totals {
            buckets: vec![0; n],
            lost_buckets: vec![0; n],
            read_buckets: vec![0; n],
            ..Totals::default()
        };
        World {
            scenario,
            rng: ChaCha8Rng::seed_from_u64(seed),
            start,
            clock: start,
            weight: 0,
            canary: totals(),
            baseline: totals(),
            last_read: None,
            samples: (None, None),
            canary_healthy_errors: 0.0,
            canary_cdf: latency_cdf(&scenario.traffic, &scenario.canary),
            baseline_cdf: latency_cdf(&scenario.traffic, &Regression::none()),
        }
    }

    /// Generates the traffic from now to `until`, in chunks of at most 10 s so that rate
    /// patterns and incidents have effect.
    fn advance_to(&mut self, until: Timestamp) {
        while self.clock < until {
            let remaining = until.duration_since(self.clock).as_secs_f64();
            let chunk = remaining.min(10.0);
            let elapsed = self.clock.duration_since(self.start).as_secs_f64();
            self.generate(elapsed + chunk / 2.0, chunk);
            self.clock += SignedDuration::from_secs_f64(chunk);
        }
        let traffic = &self.scenario.traffic;
        let normal =
            Normal::new(traffic.sample_mean, traffic.sample_sd.max(0.0)).expect("a valid normal");
        let shift = 1.0 + self.scenario.canary.sample_shift;
        let canary = (self.weight > 0).then(|| normal.sample(&mut self.rng) * shift);
        let baseline = (self.weight < 100).then(|| normal.sample(&mut self.rng));
        self.samples = (canary, baseline);
    }

    fn rate_at(&mut self, t: f64) -> f64 {
        let traffic = &self.scenario.traffic;
        match traffic.pattern {
            RatePattern::Constant => traffic.rps,
            RatePattern::Diurnal { amplitude, period } => {
                let phase = std::f64::consts::TAU * t / period.as_secs_f64().max(1.0);
                traffic.rps * (1.0 + amplitude * phase.sin()).max(0.0)
            }
            RatePattern::Bursty {
                factor,
                probability,
            } => {
                if self.rng.random::<f64>() < probability {
                    traffic.rps * factor
                } else {
                    traffic.rps
                }
            }
        }
    }

    fn generate(&mut self, t: f64, seconds: f64) {
        let rate = self.rate_at(t) * seconds;
        let total = if rate > 0.0 {
            Poisson::new(rate)
                .expect("a positive rate")
                .sample(&mut self.rng) as u64
        } else {
            0
        };
        let canary_n = binomial(&mut self.rng, total, f64::from(self.weight) / 100.0);
        let baseline_n = total - canary_n;
        let traffic = &self.scenario.traffic;
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
        let canary_errors = binomial(&mut self.rng, canary_n, canary_error);
        let baseline_errors = binomial(&mut self.rng, baseline_n, base_error);
        let canary_buckets = bucket_counts(&mut self.rng, canary_n, &self.canary_cdf);
        let baseline_buckets = bucket_counts(&mut self.rng, baseline_n, &self.baseline_cdf);
        add(&mut self.canary, canary_n, canary_errors, &canary_buckets);
        add(
            &mut self.baseline,
            baseline_n,
            baseline_errors,
            &baseline_buckets,
        );
    }

    /// A read: cumulative readings since the start for every check of the policy.
    fn read(&mut self, policy: &Policy) -> Tick {
        if let Some(previous) = &self.last_read
            && self.rng.random::<f64>() < self.scenario.stale_read_probability
        {
            let mut stale = previous.clone();
            stale.at = self.clock;
            return stale;
        }
        for version in [Version::Canary, Version::Baseline] {
            if self.rng.random::<f64>() < self.scenario.counter_reset_probability {
                let lost_share: f64 = self.rng.random();
                let lose = |now: u64, then: u64| ((now - then) as f64 * lost_share).floor() as u64;
                let totals = self.totals_mut(version);
                let lost_requests = lose(totals.requests, totals.read_requests);
                let lost_errors = lose(totals.errors, totals.read_errors).min(lost_requests);
                let lost_buckets: Vec<u64> = totals
                    .buckets
                    .iter()
                    .zip(&totals.read_buckets)
                    .map(|(&now, &then)| lose(now, then))
                    .collect();
                totals.lost_requests += lost_requests;
                totals.lost_errors += lost_errors;
                for (lost, more) in totals.lost_buckets.iter_mut().zip(lost_buckets) {
                    *lost += more;
                }
            }
            let totals = self.totals_mut(version);
            totals.read_requests = totals.requests;
            totals.read_errors = totals.errors;
            totals.read_buckets = totals.buckets.clone();
        }
        let mut readings = BTreeMap::new();
        for check in &policy.checks {
            let observation = match &check.kind {
                CheckKind::ErrorRate(_) => CheckObservation::Counts {
                    canary: self.canary.counts(),
                    baseline: self.baseline.counts(),
                },
                CheckKind::Latency(_) => CheckObservation::Histogram {
                    canary: self.canary.histogram(&self.scenario.traffic.buckets),
                    baseline: self.baseline.histogram(&self.scenario.traffic.buckets),
                },
                CheckKind::Samples(_) => CheckObservation::Samples {
                    canary: self.samples.0,
                    baseline: self.samples.1,
                },
                CheckKind::Query(_) => {
                    let restarted = self.scenario.canary.restarts
                        && self.clock.duration_since(self.start).as_secs() >= 60;
                    CheckObservation::Value {
                        value: if restarted { 1.0 } else { 0.0 },
                    }
                }
            };
            readings.insert(check.name.clone(), Reading::Observed(observation));
        }
        let tick = Tick {
            at: self.clock,
            window_seconds: self.clock.duration_since(self.start).as_secs_f64(),
            readings,
            warnings: Vec::new(),
        };
        self.last_read = Some(tick.clone());
        tick
    }

    fn totals_mut(&mut self, version: Version) -> &mut Totals {
        match version {
            Version::Canary => &mut self.canary,
            Version::Baseline => &mut self.baseline,
        }
    }

    fn result(
        &self,
        outcome: RunOutcome,
        decided: Timestamp,
        ticks: u64,
        failed_check: Option<String>,
    ) -> RunResult {
        RunResult {
            outcome,
            decided_after: Duration::try_from(decided.duration_since(self.start))
                .unwrap_or_default(),
            canary_requests: self.canary.requests,
            canary_errors: self.canary.errors,
            excess_errors: self.canary.errors as f64 - self.canary_healthy_errors,
            ticks,
            failed_check,
        }
    }
}

#[derive(Clone, Copy)]
enum Version {
    Canary,
    Baseline,
}

impl Totals {
    fn counts(&self) -> RequestCounts {
        RequestCounts {
            requests: (self.requests - self.lost_requests) as f64,
            errors: (self.errors - self.lost_errors.min(self.errors)) as f64,
        }
    }

    fn histogram(&self, bounds: &[f64]) -> Vec<HistogramBucket> {
        let mut buckets: Vec<HistogramBucket> = bounds
            .iter()
            .zip(self.buckets.iter().zip(&self.lost_buckets))
            .map(|(&le, (&count, &lost))| HistogramBucket {
                le,
                count: count.saturating_sub(lost) as f64,
            })
            .collect();
        buckets.push(HistogramBucket {
            le: f64::INFINITY,
            count: (self.requests - self.lost_requests) as f64,
        });
        buckets
    }
}

fn add(totals: &mut Totals, requests: u64, errors: u64, buckets: &[u64]) {
    totals.requests += requests;
    totals.errors += errors;
    let mut cumulative = 0;
    for (i, count) in buckets.iter().enumerate() {
        cumulative += count;
        totals.buckets[i] += cumulative;
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

/// P(latency ≤ bound) for each finite bucket bound, for a version with `regression`.
fn latency_cdf(traffic: &Traffic, regression: &Regression) -> Vec<f64> {
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

/// Many runs of one scenario, summarized.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// Runs.
    pub runs: u64,
    /// Promoted.
    pub promoted: u64,
    /// Rolled back because a criterion failed.
    pub rolled_back: u64,
    /// Inconclusive (rolled back or held for lack of evidence).
    pub inconclusive: u64,
    /// Failed runs (should be 0).
    pub failed: u64,
    /// `rolled_back / runs`: the false-rollback rate of a healthy scenario, the detection
    /// probability of a regression.
    pub rollback_rate: f64,
    /// Its Wilson 95 % interval.
    pub rollback_rate_interval: [f64; 2],
    /// Median virtual seconds from start to rollback, over rolled-back runs.
    pub median_seconds_to_rollback: Option<f64>,
    /// 90th percentile of the same.
    pub p90_seconds_to_rollback: Option<f64>,
    /// Median canary requests served before rollback.
    pub median_canary_requests_to_rollback: Option<f64>,
    /// Mean canary errors beyond a healthy canary's, over rolled-back runs.
    pub mean_excess_errors_at_rollback: Option<f64>,
    /// Median virtual seconds to promotion, over promoted runs.
    pub median_seconds_to_promote: Option<f64>,
}

/// Runs `runs` rollouts with seeds `seed, seed+1, …` and summarizes them.
pub fn run_many(policy: &Policy, scenario: &Scenario, runs: u64, seed: u64) -> Summary {
    let machine = Machine::new(policy.clone()).expect("a validated policy makes a machine");
    let results: Vec<RunResult> = (0..runs)
        .map(|i| run_with(&machine, scenario, seed.wrapping_add(i)))
        .collect();
    summarize(&scenario.name, &results)
}

/// Summarizes results.
pub fn summarize(name: &str, results: &[RunResult]) -> Summary {
    let count = |o: RunOutcome| results.iter().filter(|r| r.outcome == o).count() as u64;
    let runs = results.len() as u64;
    let rolled_back = count(RunOutcome::RolledBack);
    let (lo, hi) = wilson_interval(rolled_back, runs.max(1), 0.95).unwrap_or((0.0, 1.0));
    let back: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.outcome == RunOutcome::RolledBack)
        .collect();
    let seconds: Vec<f64> = back.iter().map(|r| r.decided_after.as_secs_f64()).collect();
    let requests: Vec<f64> = back.iter().map(|r| r.canary_requests as f64).collect();
    let promote: Vec<f64> = results
        .iter()
        .filter(|r| r.outcome == RunOutcome::Promoted)
        .map(|r| r.decided_after.as_secs_f64())
        .collect();
    Summary {
        scenario: name.to_owned(),
        runs,
        promoted: count(RunOutcome::Promoted),
        rolled_back,
        inconclusive: count(RunOutcome::Inconclusive),
        failed: count(RunOutcome::Failed),
        rollback_rate: rolled_back as f64 / runs.max(1) as f64,
        rollback_rate_interval: [lo, hi],
        median_seconds_to_rollback: quantile(&seconds, 0.5),
        p90_seconds_to_rollback: quantile(&seconds, 0.9),
        median_canary_requests_to_rollback: quantile(&requests, 0.5),
        mean_excess_errors_at_rollback: (!back.is_empty())
            .then(|| back.iter().map(|r| r.excess_errors).sum::<f64>() / back.len() as f64),
        median_seconds_to_promote: quantile(&promote, 0.5),
    }
}

/// The `q` quantile (nearest rank) of `values`, `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
