//! The driver and the rules on simulated traffic.

use super::*;
use crate::{DEFAULT_BUCKETS, Regression, Traffic};

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
