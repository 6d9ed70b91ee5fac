//! `canary-simulate` runs rollouts of synthetic traffic through canary's **real** rollout
//! machine and judge, in virtual time, seeded: what a policy would do on traffic like yours.
//!
//! A [`Scenario`] describes the traffic (request rate with a constant, diurnal or bursty
//! pattern; error probability; log-normal latency bucketed like a Prometheus histogram;
//! per-interval samples), what is wrong with the canary (a [`Regression`]), incidents that hit
//! both versions, stale reads (missed scrapes) and counter resets. A [`World`] plays that
//! traffic in virtual time and answers reads as a metrics source would. [`run`] plays one
//! rollout: it answers the machine's effects itself — weights move the traffic split, waits
//! advance the virtual clock while traffic is generated, reads return the world's cumulative
//! readings — and reports when and how the rollout ended and how much of the canary's traffic
//! was served before it did. [`run_many`] summarizes thousands of seeded runs on all cores:
//! false-rollback rate with its Wilson interval, detection probability, time and requests to
//! detection.
//!
//! The same worlds feed the peers' decision rules in [`peers`] (Flagger, Argo Rollouts,
//! Kayenta, a naive repeated z-test and Wald's SPRT as an oracle), so the [`benchmark`]
//! compares them with canary on the same requests. `canary simulate` ([`simulate`]) and the
//! benchmark harness call the same code, so their numbers come from the same path.

pub mod benchmark;
pub mod peers;
mod samples;
mod scenario;
pub mod simulate;
pub mod world;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canary_core::ExitCode;
use canary_core::policy::Policy;
use canary_core::rollout::{Effect, Event, Machine, Phase, RollbackCause};
use canary_core::stats::wilson_interval;
use jiff::SignedDuration;
use serde::Serialize;

pub use scenario::{DEFAULT_BUCKETS, Incident, RatePattern, Regression, Scenario, Traffic};
pub use world::{Served, Snapshot, VersionReading, World};

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
    let bounds = &scenario.traffic.buckets;
    let mut world = World::new(scenario, seed);
    let mut rollout = machine.start(world.start(), None);
    let limit = world.start() + SignedDuration::from_secs(budget_seconds(policy));
    let mut event = Event::Resume;
    let mut weight_set = 0;
    loop {
        let effects = machine.handle(&mut rollout, event, world.clock());
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
                    world.set_weight(weight);
                    weight_set = weight;
                    next = Some(Event::WeightSet(weight));
                }
                // The world splits by weight only; `canary simulate` refuses routed steps,
                // so one here is the weighted share 0 a routed step has.
                Effect::SetRoute(_) => {
                    world.set_weight(0);
                    weight_set = 0;
                    next = Some(Event::WeightSet(0));
                }
                // The simulated gateway keeps the weight it was given: no drift.
                Effect::ReadWeight => next = Some(Event::WeightRead(weight_set)),
                Effect::Wait(until) => {
                    world.advance_to(until.max(world.clock()));
                    next = Some(Event::TimerFired);
                }
                // The Kubernetes promotion's stages (copy the pod template, scale the canary
                // down) succeed at once in simulation.
                Effect::Promote { stage, .. } => next = Some(Event::PromotionDone(stage)),
                Effect::Preflight => {
                    next = Some(Event::PreflightPassed {
                        canary_generation: None,
                    })
                }
                Effect::Read { .. } => {
                    next = Some(Event::Observed {
                        tick: world.read().tick(policy, bounds),
                        checkpoint: None,
                    });
                }
                Effect::Finish(outcome) => {
                    let outcome = match (rollout.phase(), outcome.exit) {
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
                    let decided = rollout.decided_at().unwrap_or(world.clock());
                    let failed_check = rollout
                        .last_assessment()
                        .and_then(|a| a.failures().next().map(|c| c.name.clone()));
                    let decided_after = Duration::try_from(decided.duration_since(world.start()))
                        .unwrap_or_default();
                    return result(
                        &world,
                        outcome,
                        decided_after,
                        rollout.judge().ticks,
                        failed_check,
                    );
                }
            }
        }
        event = next.unwrap_or(Event::Resume);
        if world.clock() > limit {
            return result(
                &world,
                RunOutcome::Failed,
                world.elapsed(),
                rollout.judge().ticks,
                None,
            );
        }
    }
}

/// The result of a run that ended now, at `decided_after` from the start.
pub(crate) fn result(
    world: &World<'_>,
    outcome: RunOutcome,
    decided_after: Duration,
    ticks: u64,
    failed_check: Option<String>,
) -> RunResult {
    let served = world.served();
    RunResult {
        outcome,
        decided_after,
        canary_requests: served.canary_requests,
        canary_errors: served.canary_errors,
        excess_errors: served.excess_errors,
        ticks,
        failed_check,
    }
}

/// The longest a rollout of `policy` can take, plus slack: a run past it is a bug.
pub(crate) fn budget_seconds(policy: &Policy) -> i64 {
    let rollout = &policy.rollout;
    let steps = rollout.analysed_steps().len() as u64;
    let soak = rollout.final_soak.unwrap_or_default().as_secs();
    (steps * (rollout.max_step_duration.as_secs() + 2 * rollout.interval.as_secs()) + soak + 3600)
        as i64
}

/// Plays `runs` rollouts with seeds `seed, seed+1, …` on every core, and returns their
/// results in seed order: the same whatever the number of cores.
pub fn play_many<F>(runs: u64, seed: u64, play: F) -> Vec<RunResult>
where
    F: Fn(u64) -> RunResult + Sync,
{
    const BLOCK: u64 = 16;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(runs.div_ceil(BLOCK) as usize)
        .max(1);
    if threads == 1 {
        return (0..runs).map(|i| play(seed.wrapping_add(i))).collect();
    }
    // Blocks of runs are handed out as threads free up (regressions end early, so fixed
    // halves would leave a core idle); the results are put back in seed order.
    let next = AtomicU64::new(0);
    let done = Mutex::new(Vec::with_capacity(runs as usize));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let first = next.fetch_add(BLOCK, Ordering::Relaxed);
                    if first >= runs {
                        break;
                    }
                    let block: Vec<(u64, RunResult)> = (first..(first + BLOCK).min(runs))
                        .map(|i| (i, play(seed.wrapping_add(i))))
                        .collect();
                    done.lock().expect("no thread panicked").extend(block);
                }
            });
        }
    });
    let mut results = done.into_inner().expect("no thread panicked");
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
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
    /// Median canary requests served before rollback, over rolled-back runs.
    pub median_canary_requests_to_rollback: Option<f64>,
    /// Mean canary requests served before rollback, over rolled-back runs.
    pub mean_canary_requests_to_rollback: Option<f64>,
    /// Mean canary errors beyond a healthy canary's, over rolled-back runs.
    pub mean_excess_errors_at_rollback: Option<f64>,
    /// Mean canary requests served before the decision (rollback, promotion or giving up),
    /// over all runs: for a regression, the bad version's requests a rollout let through
    /// before it stopped it — or until it promoted it, when it missed it.
    pub mean_canary_requests: f64,
    /// Mean canary errors beyond a healthy canary's before the decision, over all runs.
    pub mean_excess_errors: f64,
    /// Median virtual seconds to promotion, over promoted runs.
    pub median_seconds_to_promote: Option<f64>,
    /// Rolled-back runs by the criterion that failed first (`check/criterion`), or the
    /// rule's reason.
    pub rollbacks_by_check: BTreeMap<String, u64>,
}

/// Runs `runs` rollouts with seeds `seed, seed+1, …` on every core and summarizes them.
pub fn run_many(policy: &Policy, scenario: &Scenario, runs: u64, seed: u64) -> Summary {
    let machine = Machine::new(policy.clone()).expect("a validated policy makes a machine");
    let results = play_many(runs, seed, |seed| run_with(&machine, scenario, seed));
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
    let mean = |values: &mut dyn Iterator<Item = f64>, n: usize| {
        (n > 0).then(|| values.sum::<f64>() / n as f64)
    };
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
        mean_canary_requests_to_rollback: mean(&mut requests.iter().copied(), requests.len()),
        mean_excess_errors_at_rollback: mean(&mut back.iter().map(|r| r.excess_errors), back.len()),
        mean_canary_requests: mean(
            &mut results.iter().map(|r| r.canary_requests as f64),
            results.len(),
        )
        .unwrap_or(0.0),
        mean_excess_errors: mean(&mut results.iter().map(|r| r.excess_errors), results.len())
            .unwrap_or(0.0),
        median_seconds_to_promote: quantile(&promote, 0.5),
        rollbacks_by_check: back.iter().fold(BTreeMap::new(), |mut by, r| {
            let check = r.failed_check.as_deref().unwrap_or("(unknown)");
            *by.entry(check.to_owned()).or_insert(0) += 1;
            by
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubernetes_promotion_is_carried_out_in_simulation() {
        let text = format!(
            "{}\ngateway: {{http-route: {{name: checkout, stable: checkout-stable, canary: checkout-canary}}}}\npromotion: {{kubernetes: {{stable-deployment: checkout-stable, canary-deployment: checkout-canary}}}}\n",
            benchmark::BENCHMARK_POLICY
        );
        let policy = Policy::from_yaml(&text, "promotion.yaml").unwrap();
        let healthy = Scenario::new("h", Traffic::constant(50.0, 0.01), Regression::none());
        let result = run(&policy, &healthy, 1);
        assert_eq!(result.outcome, RunOutcome::Promoted, "{result:?}");
        assert_eq!(result.decided_after, Duration::from_secs(900));
    }
}
