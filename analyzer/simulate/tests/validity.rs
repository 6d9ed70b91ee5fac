//! The statistical guarantees, shown on the real machine and judge in virtual time.
//!
//! 2,000 healthy A/A rollouts, looked at every 10 s through 5-minute steps at 10, 25 and
//! 50 % (reaching 100 is the promotion), at 50 requests/s with 1 % errors in both versions:
//! the fraction rolled back is at most α (its Wilson 95 % interval is printed). And a canary
//! with twice the errors is caught in at least 95 % of runs.

use canary_core::policy::Policy;
use canary_simulate::{Regression, RunOutcome, Scenario, Traffic, run_many};

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
