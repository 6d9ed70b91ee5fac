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
//!
//! One file per rule; [`reads`] holds how the rules read the snapshots (windows, `irate()`,
//! buckets), the same way for all.

use std::time::Duration;

use canary_core::policy::{CheckKind, JsonMeasure, Policy};
use jiff::SignedDuration;

use crate::{
    RunOutcome, RunResult, Scenario, Snapshot, Summary, World, play_many, result, summarize,
};

mod argo;
mod flagger;
mod kayenta;
mod naive_z;
mod reads;
mod sprt_histogram_oracle;
mod sprt_oracle;

pub use argo::Argo;
pub use flagger::Flagger;
pub use kayenta::Kayenta;
pub use naive_z::NaiveZ;
pub use sprt_histogram_oracle::SprtHistogramOracle;
pub use sprt_oracle::SprtOracle;

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

/// Which comparisons a policy makes: (error rate, latency quantile).
pub fn comparison_criteria(policy: &Policy) -> (bool, Option<f64>) {
    let mut errors = false;
    let mut latency = None;
    for check in &policy.checks {
        match &check.kind {
            CheckKind::ErrorRate(_) if check.baseline.is_some() => errors = true,
            CheckKind::Json(json)
                if check.baseline.is_some()
                    && matches!(json.measure, JsonMeasure::Counts { .. }) =>
            {
                errors = true
            }
            CheckKind::Latency(l) if check.baseline.is_some() => {
                latency = latency.or(Some(l.quantile))
            }
            _ => {}
        }
    }
    (errors, latency)
}

#[cfg(test)]
mod tests;
