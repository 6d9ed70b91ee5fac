//! The statistical guarantees, shown on the real machine and judge in virtual time.
//!
//! 2,000 healthy A/A rollouts, looked at every 10 s through 5-minute steps at 10, 25 and
//! 50 % (reaching 100 is the promotion), at 50 requests/s with 1 % errors in both versions:
//! the fraction rolled back is at most α (its Wilson 95 % interval is printed). And a canary
//! with twice the errors is caught in at least 95 % of runs.
//!
//! Then the benchmark's policy (errors and p95 compared with the baseline) on healthy canaries
//! at 5, 50 and 500 requests/s, 2,000 rollouts each: canary stays within α at every traffic
//! level, while a two-proportion z-test run at every tick on the same seeds — the same α per
//! criterion, no correction for looking again — rolls back far more than α.

use canary_core::policy::Policy;
use canary_simulate::benchmark::benchmark_policy;
use canary_simulate::peers::{NaiveZ, Schedule, run_rule_many};
use canary_simulate::{DEFAULT_BUCKETS, Regression, RunOutcome, Scenario, Traffic, run_many};

/// One error-rate check judged both ways (absolute bound and comparison), so α = 1 % is
/// split in two; the A/A bound below is on the whole rollout, both criteria together.
const POLICY: &str = r#"
service: sim
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout:
  steps: [10, 25, 50, 100]
  step-duration: 5m
  max-step-duration: 15m
  interval: 10s
  min-requests: 100
  alpha: 1%
checks:
  - name: errors
    error-rate: {requests: http_requests_total, errors: 'code=~"5.."'}
    slo: {max: 5%}
    baseline: {max-increase: 0%}
"#;

#[test]
fn healthy_canaries_are_rolled_back_at_most_alpha_and_doubled_errors_are_caught() {
    let policy = Policy::from_yaml(POLICY, "sim.yaml").unwrap();
    let traffic = Traffic::constant(50.0, 0.01);

    let healthy = run_many(
        &policy,
        &Scenario::new("A/A", traffic.clone(), Regression::none()),
        2000,
        1,
    );
    let [lo, hi] = healthy.rollback_rate_interval;
    println!(
        "A/A: {} of {} rolled back = {:.3}% (Wilson 95% {:.3}%–{:.3}%), {} promoted, {} inconclusive, median {:?}s to promote",
        healthy.rolled_back,
        healthy.runs,
        100.0 * healthy.rollback_rate,
        100.0 * lo,
        100.0 * hi,
        healthy.promoted,
        healthy.inconclusive,
        healthy.median_seconds_to_promote
    );
    assert!(
        healthy.rollback_rate <= policy.rollout.alpha,
        "false rollbacks above α: {healthy:?}"
    );
    assert_eq!(healthy.failed, 0);
    assert!(
        healthy.promoted as f64 >= 0.98 * healthy.runs as f64,
        "a healthy canary with plenty of traffic is promoted: {healthy:?}"
    );

    let doubled = run_many(
        &policy,
        &Scenario::new("2x errors", traffic, Regression::errors_times(2.0)),
        2000,
        100_000,
    );
    println!(
        "2x errors: caught in {} of {} = {:.2}% (Wilson 95% {:.2}%–{:.2}%), median {:?}s and {:?} canary requests to rollback",
        doubled.rolled_back,
        doubled.runs,
        100.0 * doubled.rollback_rate,
        100.0 * doubled.rollback_rate_interval[0],
        100.0 * doubled.rollback_rate_interval[1],
        doubled.median_seconds_to_rollback,
        doubled.median_canary_requests_to_rollback
    );
    assert!(
        doubled.rollback_rate >= 0.95,
        "doubled errors must be caught: {doubled:?}"
    );
}

#[test]
fn runs_are_reproducible_from_their_seed() {
    let policy = Policy::from_yaml(POLICY, "sim.yaml").unwrap();
    let scenario = Scenario::new(
        "2x",
        Traffic::constant(50.0, 0.01),
        Regression::errors_times(2.0),
    );
    let a = canary_simulate::run(&policy, &scenario, 7);
    let b = canary_simulate::run(&policy, &scenario, 7);
    assert_eq!(a, b);
    assert_ne!(a.outcome, RunOutcome::Failed);
}

#[test]
fn at_every_traffic_level_canary_stays_within_alpha_and_the_naive_repeated_test_does_not() {
    let policy = benchmark_policy();
    let alpha = policy.rollout.alpha;
    let naive = NaiveZ::for_policy(&policy, &DEFAULT_BUCKETS);
    let schedule = Schedule::of(&policy);
    for (rps, seed) in [(5.0, 10_000_001), (50.0, 1), (500.0, 11_000_001)] {
        let scenario = Scenario::new(
            format!("healthy, {rps} req/s"),
            Traffic::constant(rps, 0.01),
            Regression::none(),
        );
        let canary = run_many(&policy, &scenario, 2000, seed);
        let repeated = run_rule_many(&naive, &schedule, &scenario, 2000, seed);
        let [lo, hi] = canary.rollback_rate_interval;
        let [z_lo, z_hi] = repeated.rollback_rate_interval;
        println!(
            "{rps} req/s: canary {} of {} = {:.3}% (Wilson 95% {:.3}%–{:.3}%); naive z-test {} = {:.2}% (Wilson {:.2}%–{:.2}%); α = {:.1}%",
            canary.rolled_back,
            canary.runs,
            100.0 * canary.rollback_rate,
            100.0 * lo,
            100.0 * hi,
            repeated.rolled_back,
            100.0 * repeated.rollback_rate,
            100.0 * z_lo,
            100.0 * z_hi,
            100.0 * alpha
        );
        assert!(canary.rollback_rate <= alpha, "{canary:?}");
        assert_eq!(canary.failed, 0);
        assert!(
            z_lo > alpha,
            "the repeated z-test exceeds α beyond doubt: {repeated:?}"
        );
    }
}
