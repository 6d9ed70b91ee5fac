//! The peers' decision rules, written from their documentation and source, run on the same
//! simulated traffic as canary.
//!
//! Each rule sees what canary's judge sees — a [`Snapshot`] of cumulative counters per version
//! every analysis interval, from the same [`World`] with the same seed — and computes its own
//! metrics from them the way the peer's queries would (a success rate over the last minute, a
//! p99 from the histogram's buckets, per-minute data points for a Mann–Whitney test). The
//! driver [`run_rule`] moves the canary's weight on the policy's schedule (the same steps,
//! step duration and interval as canary's rollout), so up to the first decision the traffic
//! is identical request for request; a rule may hold a step (Flagger halts advancement on a
//! failed check) and may roll back at any tick.
//!
//! What is modelled, and what is not, is said on each rule. Common simplifications: the
//! peers' own progression (Flagger's `stepWeight` per interval, Argo's `setWeight`/`pause`
//! steps) is replaced by the policy's steps, so that every rule sees the same traffic; the
//! metrics are computed from exact counter increments (Prometheus' `rate()` extrapolation is
//! not modelled); an `irate()` uses the two most recent distinct reads.
//!
//! The rules:
//! - [`Flagger`]: interval checks of the builtin `request-success-rate` (min) and
//!   `request-duration` (p99 max), `threshold` failed checks (never reset), rollback at the
//!   next interval.
//! - [`Argo`]: an AnalysisRun with `successCondition` per measurement, `failureLimit`
//!   (cumulative failures), measurements every `interval`.
//! - [`Kayenta`]: NetflixACAJudge — Mann–Whitney at 98 % confidence with the 0.25 tolerance on
//!   per-minute data points, growing windows re-judged every interval, score thresholds.
//! - [`NaiveZ`]: a one-sided two-proportion z-test on the cumulative counts at every tick, at
//!   the policy's per-criterion α, with no correction for looking again and again.
//! - [`SprtOracle`]: Wald's sequential probability ratio test told the true effect: the fewest
//!   requests any level-α test can need on average (Wald & Wolfowitz 1948).

use std::time::Duration;

use canary_core::judge::REQUESTS_TO_FIX_SLOW_THRESHOLD;
use canary_core::policy::{CheckKind, Policy};
use canary_core::stats::{
    Alternative, Bucket, histogram_quantile, hodges_lehmann, normal_quantile,
    smallest_bound_at_or_above,
};
use jiff::SignedDuration;

use crate::world::latency_cdf;
use crate::{
    Regression, RunOutcome, RunResult, Scenario, Snapshot, Summary, VersionReading, World,
    play_many, result, summarize,
};

/// When a rule is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// An analysis tick within a step.
    Tick,
    /// A tick at which the step's duration has passed: the rollout advances unless the rule
    /// holds it.
    StepEnd,
    /// The end of the last analysed step: the rollout promotes unless the rule holds it or
    /// rolls back.
    LastStepEnd,
}

/// What a rule decides at a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on (advance when the step is due).
    Continue,
    /// Do not advance yet (only meaningful at a step's end).
    Hold,
    /// Roll back now, for this reason.
    RollBack(String),
}

/// A decision rule: a configuration, from which each rollout gets a fresh [`RuleRun`].
pub trait Rule: Sync {
    /// The name in tables, e.g. `Flagger (docs)`.
    fn name(&self) -> String;
    /// The state of one rollout.
    fn start(&self) -> Box<dyn RuleRun + '_>;
}

/// One rollout's state of a rule.
pub trait RuleRun {
    /// Decides at a tick, given every read so far (the last one is now's).
    fn observe(&mut self, reads: &[Snapshot], moment: Moment) -> Decision;
}

/// The rollout schedule every rule follows: the policy's analysed steps, their duration and
/// its longest extension, and the analysis interval (how often the world is read).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Canary weights of the analysed steps, in percent.
    pub steps: Vec<u8>,
    /// How long a step lasts.
    pub step_duration: Duration,
    /// How long a held step may last before the rollout gives up.
    pub max_step_duration: Duration,
    /// How often the metrics are read.
    pub interval: Duration,
}

impl Schedule {
    /// The schedule of `policy`'s rollout.
    pub fn of(policy: &Policy) -> Schedule {
        let rollout = &policy.rollout;
        Schedule {
            steps: rollout.analysed_steps().to_vec(),
            step_duration: rollout.step_duration,
            max_step_duration: rollout.max_step_duration,
            interval: rollout.interval,
        }
    }
}

/// Plays one rollout of `scenario` decided by `rule` on `schedule`, seeded: the same world,
/// read at the same times, as [`crate::run`] plays for canary with the same seed.
pub fn run_rule(rule: &dyn Rule, schedule: &Schedule, scenario: &Scenario, seed: u64) -> RunResult {
    let mut world = World::new(scenario, seed);
    let mut run = rule.start();
    let mut reads: Vec<Snapshot> = Vec::new();
    let interval = SignedDuration::try_from(schedule.interval).expect("a short interval");
    let last = schedule.steps.len().saturating_sub(1);
    for (index, &weight) in schedule.steps.iter().enumerate() {
        world.set_weight(weight);
        let step_start = world.clock();
        loop {
            let next = world.clock() + interval;
            world.advance_to(next);
            reads.push(world.read());
            let elapsed =
                Duration::try_from(world.clock().duration_since(step_start)).unwrap_or_default();
            let due = elapsed >= schedule.step_duration;
            let moment = match (due, index == last) {
                (false, _) => Moment::Tick,
                (true, false) => Moment::StepEnd,
                (true, true) => Moment::LastStepEnd,
            };
            let ticks = reads.len() as u64;
            match run.observe(&reads, moment) {
                Decision::RollBack(reason) => {
                    return result(
                        &world,
                        RunOutcome::RolledBack,
                        world.elapsed(),
                        ticks,
                        Some(reason),
                    );
                }
                Decision::Hold if due && elapsed >= schedule.max_step_duration => {
                    return result(
                        &world,
                        RunOutcome::Inconclusive,
                        world.elapsed(),
                        ticks,
                        None,
                    );
                }
                Decision::Hold | Decision::Continue if !due => {}
                Decision::Hold => {}
                Decision::Continue => break,
            }
        }
    }
    world.set_weight(100);
    result(
        &world,
        RunOutcome::Promoted,
        world.elapsed(),
        reads.len() as u64,
        None,
    )
}

/// [`run_rule`] for seeds `seed, seed+1, …` on every core, summarized.
pub fn run_rule_many(
    rule: &dyn Rule,
    schedule: &Schedule,
    scenario: &Scenario,
    runs: u64,
    seed: u64,
) -> Summary {
    let results = play_many(runs, seed, |seed| run_rule(rule, schedule, scenario, seed));
    summarize(&scenario.name, &results)
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the rules.

/// Whether `read` falls on a multiple of `every` since the rollout started.
fn on_multiple(read: &Snapshot, every: Duration) -> bool {
    let every = every.as_millis().max(1);
    let at = (read.elapsed_seconds * 1000.0).round() as u128;
    at > 0 && at.is_multiple_of(every)
}

/// The increments of both versions over the last `window` (from the read `window` ago, or
/// from the start when the rollout is younger than that).
fn window(reads: &[Snapshot], window: Duration) -> (VersionReading, VersionReading) {
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
fn irate_window(reads: &[Snapshot], window: Duration) -> (VersionReading, VersionReading) {
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

fn stats_buckets(reading: &VersionReading, bounds: &[f64]) -> Vec<Bucket> {
    reading
        .histogram(bounds)
        .iter()
        .map(|b| Bucket::new(b.le, b.count))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Flagger

/// Flagger's canary analysis, as documented at <https://docs.flagger.app/usage/metrics> and
/// <https://docs.flagger.app/usage/deployment-strategies>, and as `advanceCanary` in
/// `pkg/controller/scheduler.go` (fluxcd/flagger) carries it out.
///
/// Every analysis `interval` Flagger first rolls back if the failed-check counter has
/// reached `threshold` (so the rollback comes one interval after the threshold-th failure);
/// otherwise it runs the metric checks: the builtin `request-success-rate` (the canary's
/// non-5xx share over the metric's `interval` window, in percent, must be ≥ `min`) and
/// `request-duration` (the canary's p99 from the histogram's buckets over its window, in
/// milliseconds, must be ≤ `max`). A check that fails, or finds no values (no canary traffic
/// in the window), adds one to the counter — which is never reset — and halts advancement
/// for that interval. The documented example: `interval: 1m`, `threshold: 5`,
/// `request-success-rate` `min: 99` and `request-duration` `max: 500` over `1m`.
///
/// Flagger's own progression (`stepWeight` every interval) is replaced by the policy's
/// steps; a halt holds the current step past its duration until a check passes.
#[derive(Clone, Debug, PartialEq)]
pub struct Flagger {
    /// `docs` or `tuned`, for the table.
    pub label: String,
    /// `analysis.interval`.
    pub interval: Duration,
    /// `analysis.threshold`: failed checks before rollback.
    pub threshold: u32,
    /// The metrics' `interval` (their query window).
    pub metric_window: Duration,
    /// `request-success-rate` `thresholdRange.min`, in percent (`None`: not checked).
    pub min_success_rate: Option<f64>,
    /// `request-duration` `thresholdRange.max` on the p99, in seconds (`None`: not checked).
    pub max_p99_seconds: Option<f64>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl Flagger {
    /// The documented example: every minute, 5 failed checks, success rate ≥ 99 %, p99 ≤
    /// 500 ms over 1 m.
    pub fn docs(bounds: &[f64]) -> Flagger {
        Flagger {
            label: "docs".to_owned(),
            interval: Duration::from_secs(60),
            threshold: 5,
            metric_window: Duration::from_secs(60),
            min_success_rate: Some(99.0),
            max_p99_seconds: Some(0.5),
            bounds: bounds.to_vec(),
        }
    }
}

struct FlaggerRun<'r> {
    rule: &'r Flagger,
    failed_checks: u32,
    halted: bool,
}

impl Rule for Flagger {
    fn name(&self) -> String {
        format!("Flagger ({})", self.label)
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        Box::new(FlaggerRun {
            rule: self,
            failed_checks: 0,
            halted: false,
        })
    }
}

impl RuleRun for FlaggerRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        if on_multiple(now, rule.interval) {
            if self.failed_checks >= rule.threshold {
                return Decision::RollBack("failed checks threshold reached".to_owned());
            }
            let (canary, _) = window(reads, rule.metric_window);
            let mut failed = false;
            if let Some(min) = rule.min_success_rate {
                let success = 100.0 * (1.0 - canary.error_ratio());
                // NaN (no traffic): "no values found", a failed check.
                failed |= success.is_nan() || success < min;
            }
            if let Some(max) = rule.max_p99_seconds {
                let p99 = canary.quantile(0.99, &rule.bounds);
                failed |= p99.is_nan() || p99 > max;
            }
            if failed {
                self.failed_checks += 1;
            }
            self.halted = failed;
        }
        match moment {
            Moment::Tick => Decision::Continue,
            Moment::StepEnd | Moment::LastStepEnd if self.halted => Decision::Hold,
            Moment::StepEnd | Moment::LastStepEnd => Decision::Continue,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Argo Rollouts

/// An Argo Rollouts background AnalysisRun, as documented at
/// <https://argo-rollouts.readthedocs.io/en/stable/features/analysis/> and as
/// `assessMetricFailureInconclusiveOrError` in `analysis/analysis.go` (argoproj/argo-rollouts)
/// judges it.
///
/// Every `interval` one measurement per metric: the success-rate query of the documented
/// example (`sum(irate(requests{code!~"5.*"}[5m])) / sum(irate(requests[5m]))`) against
/// `successCondition: result[0] >= min`, and optionally a latency quantile against
/// `result[0] <= max`. A measurement whose condition is false is `Failed` (a NaN result, no
/// canary traffic, is false too); the analysis fails, and the rollout aborts, as soon as a
/// metric's failed measurements exceed `failureLimit` (cumulative, not consecutive). The
/// documented example: `interval: 5m`, `successCondition: result[0] >= 0.95`,
/// `failureLimit: 3`. Measurements start one interval in (as with `initialDelay` equal to the
/// interval: the first measurement at the analysis' start sees no canary data), and an
/// `Inconclusive` measurement cannot happen with a `successCondition` alone. Queries that
/// return an empty vector (measurement `Error`, `consecutiveErrorLimit`, default 4) do not
/// occur here: the simulated series always exist.
#[derive(Clone, Debug, PartialEq)]
pub struct Argo {
    /// `docs` or `tuned`.
    pub label: String,
    /// The metric's `interval`.
    pub interval: Duration,
    /// The query's range (`[5m]`).
    pub window: Duration,
    /// Whether the query uses `irate()` (the last two samples) rather than `rate()`.
    pub irate: bool,
    /// `successCondition: result[0] >= min` on the success rate, a fraction.
    pub min_success: Option<f64>,
    /// `successCondition: result[0] <= max` on `histogram_quantile(q, …)`: (q, max seconds).
    pub max_latency: Option<(f64, f64)>,
    /// `failureLimit`.
    pub failure_limit: u32,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl Argo {
    /// The documented example: success rate (irate over 5 m) ≥ 0.95 every 5 m, failureLimit 3.
    pub fn docs(bounds: &[f64]) -> Argo {
        Argo {
            label: "docs".to_owned(),
            interval: Duration::from_secs(300),
            window: Duration::from_secs(300),
            irate: true,
            min_success: Some(0.95),
            max_latency: None,
            failure_limit: 3,
            bounds: bounds.to_vec(),
        }
    }
}

struct ArgoRun<'r> {
    rule: &'r Argo,
    failed: [u32; 2],
}

impl Rule for Argo {
    fn name(&self) -> String {
        format!("Argo Rollouts ({})", self.label)
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        Box::new(ArgoRun {
            rule: self,
            failed: [0; 2],
        })
    }
}

impl RuleRun for ArgoRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], _moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        if !on_multiple(now, rule.interval) {
            return Decision::Continue;
        }
        let (canary, _) = if rule.irate {
            irate_window(reads, rule.window)
        } else {
            window(reads, rule.window)
        };
        if let Some(min) = rule.min_success {
            let success = 1.0 - canary.error_ratio();
            // `result[0] >= min` is false for NaN (no canary traffic): a failed measurement.
            if success.is_nan() || success < min {
                self.failed[0] += 1;
            }
        }
        if let Some((q, max)) = rule.max_latency {
            let latency = canary.quantile(q, &rule.bounds);
            if latency.is_nan() || latency > max {
                self.failed[1] += 1;
            }
        }
        match self.failed.iter().position(|&f| f > rule.failure_limit) {
            Some(metric) => Decision::RollBack(format!(
                "{}: failed > failureLimit",
                ["success-rate", "latency"][metric]
            )),
            None => Decision::Continue,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kayenta

/// Kayenta's NetflixACAJudge in a Spinnaker canary stage, as described at
/// <https://spinnaker.io/docs/guides/user/canary/judge/> and implemented in
/// `NetflixACAJudge.scala`, `MannWhitneyClassifier.scala`, `IQRDetector.scala` and
/// `WeightedSumScorer.scala` (spinnaker/kayenta), with the stage's early failure of
/// `MonitorKayentaCanaryTask` (spinnaker/orca, `orca-kayenta`).
///
/// Each metric is a time series of one data point per `step` (Kayenta's query resolution)
/// for each version: here the error ratio and a latency quantile over each step, both with
/// `direction: increase`. Every `interval` the judge runs on every data point since the
/// start (the window grows; nothing corrects for judging it again): per metric, NaNs are
/// removed, then outliers (`IQRDetector(factor = 3.0, reduceSensitivity = true)`); a metric
/// is `High` when the Mann–Whitney (Hodges–Lehmann) 98 % confidence interval of the shift
/// canary − baseline lies above `0.25 × |estimate|` (the "tolerance") and the ratio of means
/// is at least `allowedIncrease` (default 1.0); otherwise `Pass` (`NoData` when a version has
/// no point). Each metric is its own group, of equal weight; the score is the weighted share
/// of passing groups, a group without data counting 0. A run scoring at or below `marginal`
/// fails the stage at once; the last run must also reach `pass`. Kayenta has no built-in
/// score thresholds; 75/95 is a common pair, and with two metrics any marginal in [50, 100)
/// and pass in (50, 100] decide alike. Spinnaker's help suggests an interval of at least
/// 30 minutes, longer than the simulated rollout: the `docs` variant judges at each step's
/// end.
#[derive(Clone, Debug, PartialEq)]
pub struct Kayenta {
    /// `docs` or `tuned`.
    pub label: String,
    /// `canaryAnalysisIntervalMins`: how often the judge runs.
    pub interval: Duration,
    /// `step`: the data points' resolution.
    pub step: Duration,
    /// The confidence level of the Mann–Whitney interval (0.98 in NetflixACAJudge).
    pub confidence: f64,
    /// The tolerance (0.25 in NetflixACAJudge).
    pub tolerance: f64,
    /// `effectSize.allowedIncrease` of the error-ratio metric (default 1.0).
    pub allowed_increase_errors: f64,
    /// `effectSize.allowedIncrease` of the latency metric (default 1.0).
    pub allowed_increase_latency: f64,
    /// `scoreThresholds.marginal`.
    pub marginal: f64,
    /// `scoreThresholds.pass`.
    pub pass: f64,
    /// Whether the error ratio is a metric.
    pub errors: bool,
    /// The latency quantile metric, if any.
    pub latency_quantile: Option<f64>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl Kayenta {
    /// NetflixACAJudge's constants, 1-minute data points, judged every `interval`, error
    /// ratio and p95 latency, thresholds 75/95.
    pub fn docs(interval: Duration, bounds: &[f64]) -> Kayenta {
        Kayenta {
            label: "docs".to_owned(),
            interval,
            step: Duration::from_secs(60),
            confidence: 0.98,
            tolerance: 0.25,
            allowed_increase_errors: 1.0,
            allowed_increase_latency: 1.0,
            marginal: 75.0,
            pass: 95.0,
            errors: true,
            latency_quantile: Some(0.95),
            bounds: bounds.to_vec(),
        }
    }
}

/// A metric's classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Classification {
    Pass,
    High,
    NoData,
}

struct KayentaRun<'r> {
    rule: &'r Kayenta,
    /// Per metric, its allowed increase and the data points of canary and baseline.
    points: Vec<(f64, Vec<f64>, Vec<f64>)>,
    last_judged: Option<f64>,
}

impl Rule for Kayenta {
    fn name(&self) -> String {
        format!("Kayenta ({})", self.label)
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        let mut points = Vec::new();
        if self.errors {
            points.push((self.allowed_increase_errors, Vec::new(), Vec::new()));
        }
        if self.latency_quantile.is_some() {
            points.push((self.allowed_increase_latency, Vec::new(), Vec::new()));
        }
        Box::new(KayentaRun {
            rule: self,
            points,
            last_judged: None,
        })
    }
}

impl KayentaRun<'_> {
    fn score(&self) -> f64 {
        let rule = self.rule;
        let weight = 100.0 / self.points.len().max(1) as f64;
        self.points
            .iter()
            .map(
                |(allowed, canary, baseline)| match classify(rule, *allowed, canary, baseline) {
                    Classification::Pass => weight,
                    Classification::High | Classification::NoData => 0.0,
                },
            )
            .sum()
    }
}

impl RuleRun for KayentaRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        if on_multiple(now, rule.step) {
            let (canary, baseline) = window(reads, rule.step);
            let mut metric = 0;
            if rule.errors {
                self.points[metric].1.push(canary.error_ratio());
                self.points[metric].2.push(baseline.error_ratio());
                metric += 1;
            }
            if let Some(q) = rule.latency_quantile {
                self.points[metric].1.push(canary.quantile(q, &rule.bounds));
                self.points[metric]
                    .2
                    .push(baseline.quantile(q, &rule.bounds));
            }
        }
        let last = moment == Moment::LastStepEnd;
        let judge = (on_multiple(now, rule.interval) || last)
            && self.last_judged != Some(now.elapsed_seconds);
        if !judge {
            return Decision::Continue;
        }
        self.last_judged = Some(now.elapsed_seconds);
        let score = self.score();
        if score <= rule.marginal {
            Decision::RollBack("canary score not above the marginal threshold".to_owned())
        } else if last && score < rule.pass {
            Decision::RollBack("final canary score below the pass threshold".to_owned())
        } else {
            Decision::Continue
        }
    }
}

/// MannWhitneyClassifier.classify for `direction: increase`, after NetflixACAJudge's NaN and
/// outlier removal.
fn classify(
    rule: &Kayenta,
    allowed_increase: f64,
    canary: &[f64],
    baseline: &[f64],
) -> Classification {
    let canary = without_outliers(canary);
    let baseline = without_outliers(baseline);
    if canary.is_empty() || baseline.is_empty() {
        return Classification::NoData;
    }
    let mut sorted_c = canary.clone();
    let mut sorted_b = baseline.clone();
    sorted_c.sort_by(f64::total_cmp);
    sorted_b.sort_by(f64::total_cmp);
    if sorted_c == sorted_b {
        return Classification::Pass;
    }
    let first = canary[0];
    if canary.iter().chain(&baseline).all(|&v| v == first) {
        return Classification::Pass;
    }
    // Kayenta adds tiny Gaussian noise when each sample holds a single value; the interval is
    // then the difference itself.
    let single = |s: &[f64]| s.iter().all(|&v| v == s[0]);
    let (estimate, lower) = if single(&canary) && single(&baseline) {
        (canary[0] - baseline[0], canary[0] - baseline[0])
    } else {
        match hodges_lehmann(&canary, &baseline, rule.confidence, Alternative::TwoSided) {
            Ok(shift) => (shift.estimate, shift.lower),
            // Kayenta classifies a failed computation as Error, which scores like no data.
            Err(_) => return Classification::NoData,
        }
    };
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let deviation = if mean(&baseline) == 0.0 {
        1.0
    } else {
        mean(&canary) / mean(&baseline)
    };
    if lower > rule.tolerance * estimate.abs() && deviation >= allowed_increase {
        Classification::High
    } else {
        Classification::Pass
    }
}

/// NaNs removed, then `IQRDetector(factor = 3.0, reduceSensitivity = true)`: values outside
/// [min(p1, Q1 − 3·IQR), max(p99, Q3 + 3·IQR)] are dropped.
fn without_outliers(values: &[f64]) -> Vec<f64> {
    let values: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if values.len() < 2 {
        return values;
    }
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let p = |q: f64| percentile(&sorted, q);
    let (q1, q3) = (p(25.0), p(75.0));
    let iqr = q3 - q1;
    let lower = p(1.0).min(q1 - 3.0 * iqr);
    let upper = p(99.0).max(q3 + 3.0 * iqr);
    values
        .into_iter()
        .filter(|&v| v >= lower && v <= upper)
        .collect()
}

/// Apache Commons Math's default percentile (position p(n + 1)/100, interpolated), which
/// Kayenta's statistics use.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let position = p * (n as f64 + 1.0) / 100.0;
    if position < 1.0 {
        return sorted[0];
    }
    if position >= n as f64 {
        return sorted[n - 1];
    }
    let below = position.floor();
    let d = position - below;
    let lower = sorted[below as usize - 1];
    lower + d * (sorted[below as usize] - lower)
}

// ---------------------------------------------------------------------------------------
// The naive repeated z-test

/// A one-sided two-proportion z-test of canary against baseline on the cumulative counts,
/// at every tick, rolling back the first time z exceeds the (1 − α) normal quantile: a
/// fixed-sample test used sequentially, with nothing paid for looking again. The error rate
/// is tested directly; latency on the share of requests slower than a bucket bound fixed as
/// canary's judge fixes it (the bucket holding the baseline's quantile, once the baseline has
/// served 200 requests), counted from then on. α is the policy's per-criterion α, the share
/// canary's criteria get.
#[derive(Clone, Debug, PartialEq)]
pub struct NaiveZ {
    /// One-sided level of each test.
    pub alpha: f64,
    /// Whether the error rate is tested.
    pub errors: bool,
    /// The latency quantile whose bucket defines "slow", if latency is tested.
    pub latency_quantile: Option<f64>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl NaiveZ {
    /// The z-test of `policy`'s comparison criteria (error rate, latency) at its
    /// per-criterion α.
    pub fn for_policy(policy: &Policy, bounds: &[f64]) -> NaiveZ {
        let (errors, latency) = comparison_criteria(policy);
        NaiveZ {
            alpha: policy.alpha_per_criterion(),
            errors,
            latency_quantile: latency,
            bounds: bounds.to_vec(),
        }
    }
}

/// Which comparisons a policy makes: (error rate, latency quantile).
pub fn comparison_criteria(policy: &Policy) -> (bool, Option<f64>) {
    let mut errors = false;
    let mut latency = None;
    for check in &policy.checks {
        match &check.kind {
            CheckKind::ErrorRate(_) if check.baseline.is_some() => errors = true,
            CheckKind::Latency(l) if check.baseline.is_some() => {
                latency = latency.or(Some(l.quantile))
            }
            _ => {}
        }
    }
    (errors, latency)
}

struct NaiveZRun<'r> {
    rule: &'r NaiveZ,
    critical: f64,
    /// The slow bound and both versions' readings when it was fixed.
    slow: Option<(f64, VersionReading, VersionReading)>,
}

impl Rule for NaiveZ {
    fn name(&self) -> String {
        "naive repeated z-test".to_owned()
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        Box::new(NaiveZRun {
            rule: self,
            critical: normal_quantile(1.0 - self.alpha),
            slow: None,
        })
    }
}

/// z of the two-proportion test (pooled variance), 0 when it is undefined.
fn two_proportion_z(x1: f64, n1: f64, x2: f64, n2: f64) -> f64 {
    if n1 <= 0.0 || n2 <= 0.0 {
        return 0.0;
    }
    let pooled = (x1 + x2) / (n1 + n2);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    if variance <= 0.0 {
        return 0.0;
    }
    (x1 / n1 - x2 / n2) / variance.sqrt()
}

impl RuleRun for NaiveZRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], _moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        if rule.errors {
            let (c, b) = (&now.canary, &now.baseline);
            let z = two_proportion_z(c.errors, c.requests, b.errors, b.requests);
            if z > self.critical {
                return Decision::RollBack("errors".to_owned());
            }
        }
        if let Some(q) = rule.latency_quantile {
            match &self.slow {
                None if now.baseline.requests >= REQUESTS_TO_FIX_SLOW_THRESHOLD => {
                    let buckets = stats_buckets(&now.baseline, &rule.bounds);
                    let wanted = histogram_quantile(q, &buckets);
                    if let Some(bound) =
                        smallest_bound_at_or_above(&buckets, wanted).filter(|b| b.is_finite())
                    {
                        self.slow = Some((bound, now.canary.clone(), now.baseline.clone()));
                    }
                }
                None => {}
                Some((bound, canary_then, baseline_then)) => {
                    let c = now.canary.since(canary_then);
                    let b = now.baseline.since(baseline_then);
                    let z = two_proportion_z(
                        c.slower_than(*bound, &rule.bounds),
                        c.requests,
                        b.slower_than(*bound, &rule.bounds),
                        b.requests,
                    );
                    if z > self.critical {
                        return Decision::RollBack("latency".to_owned());
                    }
                }
            }
        }
        Decision::Continue
    }
}

// ---------------------------------------------------------------------------------------
// Wald's SPRT, told the truth

/// Wald's sequential probability ratio test of "no regression" against the scenario's true
/// regression, which it is told: the conditional-binomial likelihood ratio of canary's own
/// model (given a tick's events, each is the canary's with probability q(θ), see
/// `canary_core::stats::rate_ratio`) at the true relative risk θ₁ against θ = 1, rolling back
/// when it reaches 1/α. By Wald & Wolfowitz's optimality theorem no test at level α needs
/// fewer events on average when θ = θ₁; canary's mixture over θ pays for not knowing θ₁.
/// Errors are tested when the error rate differs; latency on the share of requests slower
/// than the bucket bound just below the baseline's true quantile (the bound canary's judge
/// fixes), counted from the start.
#[derive(Clone, Debug, PartialEq)]
pub struct SprtOracle {
    /// The level (the policy's per-criterion α).
    pub alpha: f64,
    /// The true canary/baseline error-rate ratio, when it is not 1.
    pub error_ratio: Option<f64>,
    /// The slow bound and the true ratio of slow shares, when it is not 1.
    pub latency: Option<(f64, f64)>,
    /// The histogram's finite bucket bounds.
    pub bounds: Vec<f64>,
}

impl SprtOracle {
    /// The oracle for `scenario`'s regression, testing what `policy` compares, at the
    /// policy's per-criterion α. `None` when the canary is healthy (nothing to be told).
    pub fn for_scenario(policy: &Policy, scenario: &Scenario) -> Option<SprtOracle> {
        let (errors, latency_quantile) = comparison_criteria(policy);
        let traffic = &scenario.traffic;
        let regression = &scenario.canary;
        let base = traffic.error_rate;
        let canary_rate = base * regression.error_factor + regression.error_add;
        let error_ratio = (errors && base > 0.0 && canary_rate > base).then(|| canary_rate / base);
        let latency = latency_quantile.and_then(|q| {
            let true_quantile =
                traffic.latency_median * (traffic.latency_sigma * normal_quantile(q)).exp();
            let bound = *traffic
                .buckets
                .iter()
                .rev()
                .find(|&&b| b < true_quantile)
                .or_else(|| traffic.buckets.iter().find(|&&b| b >= true_quantile))?;
            let i = traffic.buckets.iter().position(|&b| b == bound)?;
            let canary = 1.0 - latency_cdf(scenario, regression)[i];
            let baseline = 1.0 - latency_cdf(scenario, &Regression::none())[i];
            (baseline > 0.0 && canary > baseline * 1.000_001).then(|| (bound, canary / baseline))
        });
        (error_ratio.is_some() || latency.is_some()).then(|| SprtOracle {
            alpha: policy.alpha_per_criterion(),
            error_ratio,
            latency,
            bounds: traffic.buckets.clone(),
        })
    }
}

struct SprtRun<'r> {
    rule: &'r SprtOracle,
    /// Log-likelihood ratios: errors, latency.
    llr: [f64; 2],
    /// Cumulative (trials, events) per version and metric, never decreasing.
    seen: [[(f64, f64); 2]; 2],
}

impl Rule for SprtOracle {
    fn name(&self) -> String {
        "SPRT oracle (knows the effect)".to_owned()
    }

    fn start(&self) -> Box<dyn RuleRun + '_> {
        Box::new(SprtRun {
            rule: self,
            llr: [0.0; 2],
            seen: [[(0.0, 0.0); 2]; 2],
        })
    }
}

impl SprtRun<'_> {
    /// Adds the increments of metric `m` and tells whether the test rejects.
    fn update(&mut self, m: usize, theta: f64, canary: (f64, f64), baseline: (f64, f64)) -> bool {
        let mut step = [(0.0, 0.0); 2];
        for (v, now) in [canary, baseline].into_iter().enumerate() {
            let seen = &mut self.seen[m][v];
            let trials = (now.0 - seen.0).max(0.0);
            let events = (now.1 - seen.1).max(0.0).min(trials);
            seen.0 = seen.0.max(now.0);
            seen.1 = seen.1.max(now.1);
            step[v] = (trials, events);
        }
        let [(n_c, x_c), (n_b, x_b)] = step;
        let events = x_c + x_b;
        if n_c > 0.0 && n_b > 0.0 && events > 0.0 {
            let q0 = n_c / (n_c + n_b);
            self.llr[m] += x_c * theta.ln() - events * (q0 * (theta - 1.0)).ln_1p();
        }
        self.llr[m] >= -self.rule.alpha.ln()
    }
}

impl RuleRun for SprtRun<'_> {
    fn observe(&mut self, reads: &[Snapshot], _moment: Moment) -> Decision {
        let rule = self.rule;
        let now = reads.last().expect("a read");
        let (c, b) = (&now.canary, &now.baseline);
        if let Some(theta) = rule.error_ratio
            && self.update(0, theta, (c.requests, c.errors), (b.requests, b.errors))
        {
            return Decision::RollBack("errors".to_owned());
        }
        if let Some((bound, theta)) = rule.latency {
            let slow = |r: &VersionReading| (r.requests, r.slower_than(bound, &rule.bounds));
            if self.update(1, theta, slow(c), slow(b)) {
                return Decision::RollBack("latency".to_owned());
            }
        }
        Decision::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_BUCKETS, Traffic};

    fn schedule() -> Schedule {
        Schedule {
            steps: vec![10, 25, 50],
            step_duration: Duration::from_secs(300),
            max_step_duration: Duration::from_secs(900),
            interval: Duration::from_secs(30),
        }
    }

    /// A rule that rolls back at a fixed tick, or never.
    struct Fixed(Option<usize>, Decision);

    impl Rule for Fixed {
        fn name(&self) -> String {
            "fixed".to_owned()
        }
        fn start(&self) -> Box<dyn RuleRun + '_> {
            Box::new(FixedRun(self))
        }
    }

    struct FixedRun<'r>(&'r Fixed);

    impl RuleRun for FixedRun<'_> {
        fn observe(&mut self, reads: &[Snapshot], moment: Moment) -> Decision {
            if Some(reads.len()) == self.0.0 {
                return Decision::RollBack("now".to_owned());
            }
            match moment {
                Moment::Tick => Decision::Continue,
                _ => self.0.1.clone(),
            }
        }
    }

    #[test]
    fn the_driver_follows_the_schedule_holds_and_rolls_back() {
        let scenario = Scenario::new("h", Traffic::constant(50.0, 0.01), Regression::none());
        let never = run_rule(&Fixed(None, Decision::Continue), &schedule(), &scenario, 1);
        assert_eq!(never.outcome, RunOutcome::Promoted);
        assert_eq!(never.decided_after, Duration::from_secs(900));
        assert_eq!(never.ticks, 30);
        // 50 rps × 300 s × (10 % + 25 % + 50 %) ≈ 12,750 canary requests.
        assert!((never.canary_requests as f64 - 12_750.0).abs() < 500.0);

        let early = run_rule(
            &Fixed(Some(4), Decision::Continue),
            &schedule(),
            &scenario,
            1,
        );
        assert_eq!(early.outcome, RunOutcome::RolledBack);
        assert_eq!(early.decided_after, Duration::from_secs(120));

        let held = run_rule(&Fixed(None, Decision::Hold), &schedule(), &scenario, 1);
        assert_eq!(held.outcome, RunOutcome::Inconclusive);
        assert_eq!(
            held.decided_after,
            Duration::from_secs(900),
            "held to the limit"
        );
    }

    fn doubled() -> Scenario {
        Scenario::new(
            "2x",
            Traffic::constant(50.0, 0.01),
            Regression::errors_times(2.0),
        )
    }

    #[test]
    fn rules_see_the_traffic_canary_sees() {
        // A rule that records the canary's counters: the same as canary's own run, read at
        // the same times, until its decision.
        let policy = crate::benchmark::benchmark_policy();
        let scenario = doubled();
        let canary = crate::run(&policy, &scenario, 11);
        let never = run_rule(&Fixed(None, Decision::Continue), &schedule(), &scenario, 11);
        let stop = canary.ticks as usize;
        let at_stop = run_rule(
            &Fixed(Some(stop), Decision::Continue),
            &schedule(),
            &scenario,
            11,
        );
        assert_eq!(canary.outcome, RunOutcome::RolledBack);
        assert_eq!(at_stop.decided_after, canary.decided_after);
        assert_eq!(at_stop.canary_requests, canary.canary_requests);
        assert_eq!(at_stop.canary_errors, canary.canary_errors);
        assert!(never.canary_requests > canary.canary_requests);
    }

    #[test]
    fn flagger_counts_failed_checks_and_rolls_back_an_interval_later() {
        let bounds = DEFAULT_BUCKETS.to_vec();
        // A 30 % error rate fails every check: the 5th failure comes at minute 5, the
        // rollback at minute 6.
        let broken = Scenario::new(
            "broken",
            Traffic::constant(50.0, 0.01),
            Regression {
                error_add: 0.3,
                ..Regression::none()
            },
        );
        let result = run_rule(&Flagger::docs(&bounds), &schedule(), &broken, 1);
        assert_eq!(result.outcome, RunOutcome::RolledBack);
        assert_eq!(result.decided_after, Duration::from_secs(360));
        // A healthy canary at 0.1 % errors passes the documented example.
        let healthy = Scenario::new("ok", Traffic::constant(50.0, 0.001), Regression::none());
        let result = run_rule(&Flagger::docs(&bounds), &schedule(), &healthy, 1);
        assert_eq!(result.outcome, RunOutcome::Promoted);
    }

    #[test]
    fn argo_fails_when_failures_exceed_the_limit() {
        let bounds = DEFAULT_BUCKETS.to_vec();
        let broken = Scenario::new(
            "broken",
            Traffic::constant(50.0, 0.01),
            Regression {
                error_add: 0.3,
                ..Regression::none()
            },
        );
        let every_tick = Argo {
            interval: Duration::from_secs(30),
            irate: false,
            ..Argo::docs(&bounds)
        };
        let result = run_rule(&every_tick, &schedule(), &broken, 1);
        // Four failed measurements > failureLimit 3: at the 4th tick.
        assert_eq!(result.decided_after, Duration::from_secs(120));
        // The documented example measures every 5 minutes: 3 measurements in a 15-minute
        // rollout can never exceed failureLimit 3.
        let result = run_rule(&Argo::docs(&bounds), &schedule(), &broken, 1);
        assert_eq!(result.outcome, RunOutcome::Promoted);
    }

    #[test]
    fn kayenta_classifies_like_the_netflix_judge() {
        let rule = Kayenta::docs(Duration::from_secs(300), &DEFAULT_BUCKETS);
        let baseline = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98];
        let same: Vec<f64> = baseline.iter().map(|v| v + 0.001).collect();
        let worse: Vec<f64> = baseline.iter().map(|v| v * 2.0).collect();
        assert_eq!(classify(&rule, 1.0, &same, &baseline), Classification::Pass);
        assert_eq!(
            classify(&rule, 1.0, &worse, &baseline),
            Classification::High
        );
        assert_eq!(
            classify(&rule, 1.0, &[f64::NAN], &baseline),
            Classification::NoData
        );
        // Lower is never a failure with direction: increase.
        let better: Vec<f64> = baseline.iter().map(|v| v / 2.0).collect();
        assert_eq!(
            classify(&rule, 1.0, &better, &baseline),
            Classification::Pass
        );
        // An outlier 100× the rest is dropped before the test (with enough points that the
        // 99th percentile is not the outlier itself).
        let mut spiky: Vec<f64> = (0..199).map(|i| 1.0 + f64::from(i % 7) / 100.0).collect();
        spiky.push(100.0);
        assert_eq!(without_outliers(&spiky).len(), 199);
        assert_eq!(without_outliers(&baseline).len(), baseline.len());
        // With allowedIncrease 2.5 a doubling passes.
        assert_eq!(
            classify(&rule, 2.5, &worse, &baseline),
            Classification::Pass
        );
    }

    #[test]
    fn the_oracle_knows_the_effect_and_the_naive_test_does_not_wait() {
        let policy = crate::benchmark::benchmark_policy();
        let scenario = doubled();
        let oracle = SprtOracle::for_scenario(&policy, &scenario).unwrap();
        assert_eq!(oracle.error_ratio, Some(2.0));
        assert!(oracle.latency.is_none());
        let healthy = Scenario::new("h", Traffic::constant(50.0, 0.01), Regression::none());
        assert!(SprtOracle::for_scenario(&policy, &healthy).is_none());
        let slower = Scenario::new(
            "p95",
            Traffic::constant(50.0, 0.01),
            Regression::latency_times(1.5),
        );
        let (bound, ratio) = SprtOracle::for_scenario(&policy, &slower)
            .unwrap()
            .latency
            .unwrap();
        assert_eq!(
            bound, 0.1,
            "p95 of 50 ms × e^(0.6·1.645) = 134 ms: the bucket bound below it is 0.1"
        );
        assert!(ratio > 2.0, "{ratio}");

        let schedule = Schedule::of(&policy);
        let sprt = run_rule_many(&oracle, &schedule, &scenario, 200, 7);
        let naive = run_rule_many(
            &NaiveZ::for_policy(&policy, &DEFAULT_BUCKETS),
            &schedule,
            &scenario,
            200,
            7,
        );
        assert!(sprt.rollback_rate > 0.95 && naive.rollback_rate > 0.95);
    }
}
