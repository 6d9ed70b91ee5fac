//! Does the rate-ratio test keep its promise? A seeded simulation of the test alone, in the
//! setting the design describes: the canary's share of traffic goes 10 % → 25 % → 50 %,
//! 30 ticks per step (90 in all), 50 requests/s for 10 s per tick, the e-value checked at
//! every tick.
//!
//! - A/A (both versions fail 1 % of requests): the share of rollouts whose e-value *ever*
//!   reaches 1/α must not exceed α, for α = 0.01 and 0.05. The Wilson 95 % interval of that
//!   share is printed (`--nocapture`).
//! - A canary failing 2 % of requests (twice the baseline) must be caught, at α = 0.01, in
//!   at least 95 % of rollouts.
//!
//! Requests fail independently (Bernoulli), so this also exercises the test outside its
//! Poisson model, where validity rests on the binomial's convex-order domination of the
//! hypergeometric.

use canary_core::stats::rate_ratio::{EventCounts, RateRatioTest};
use canary_core::stats::wilson_interval;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution};

const SHARES: [f64; 3] = [0.10, 0.25, 0.50];
const TICKS_PER_STEP: usize = 30;
const REQUESTS_PER_TICK: u64 = 50 * 10;
const BASELINE_ERROR_RATE: f64 = 0.01;

/// One simulated rollout; returns the largest ln E seen and the first tick (1-based) at which
/// ln E reached `stop_at`, if it did (the run stops there).
fn rollout(
    rng: &mut ChaCha8Rng,
    test: &RateRatioTest,
    canary_error_rate: f64,
    stop_at: f64,
) -> (f64, Option<usize>) {
    let mut state = test.start();
    let mut max_log_e = f64::NEG_INFINITY;
    let mut tick = 0;
    for share in SHARES {
        let split = Binomial::new(REQUESTS_PER_TICK, share).unwrap();
        for _ in 0..TICKS_PER_STEP {
            tick += 1;
            let canary_requests = split.sample(rng);
            let baseline_requests = REQUESTS_PER_TICK - canary_requests;
            let canary_errors = Binomial::new(canary_requests, canary_error_rate)
                .unwrap()
                .sample(rng);
            let baseline_errors = Binomial::new(baseline_requests, BASELINE_ERROR_RATE)
                .unwrap()
                .sample(rng);
            test.update(
                &mut state,
                EventCounts::new(canary_requests, canary_errors),
                EventCounts::new(baseline_requests, baseline_errors),
            )
            .unwrap();
            let log_e = test.log_e_value(&state);
            max_log_e = max_log_e.max(log_e);
            if log_e >= stop_at {
                return (max_log_e, Some(tick));
            }
        }
    }
    (max_log_e, None)
}

#[test]
fn healthy_canaries_are_rarely_rolled_back_and_bad_ones_are_caught() {
    let started = std::time::Instant::now();
    let test = RateRatioTest::new(0.0).unwrap();

    const AA_RUNS: u64 = 4000;
    let mut rng = ChaCha8Rng::seed_from_u64(0x00ca_7a11);
    let maxima: Vec<f64> = (0..AA_RUNS)
        .map(|_| rollout(&mut rng, &test, BASELINE_ERROR_RATE, f64::INFINITY).0)
        .collect();
    for alpha in [0.01_f64, 0.05] {
        let threshold = (1.0 / alpha).ln();
        let rejected = maxima.iter().filter(|&&m| m >= threshold).count() as u64;
        let rate = rejected as f64 / AA_RUNS as f64;
        let (low, high) = wilson_interval(rejected, AA_RUNS, 0.95).unwrap();
        println!(
            "A/A, alpha = {alpha}: {rejected} of {AA_RUNS} rollouts ever reached 1/alpha: \
             {rate:.4} (Wilson 95 % interval {low:.4} .. {high:.4})"
        );
        assert!(
            rate <= alpha,
            "false-rollback rate {rate} above alpha {alpha}"
        );
    }

    const BAD_RUNS: u64 = 1000;
    let mut rng = ChaCha8Rng::seed_from_u64(0x0bad_ca7a);
    for alpha in [0.01_f64, 0.05] {
        let threshold = (1.0 / alpha).ln();
        let detections: Vec<Option<usize>> = (0..BAD_RUNS)
            .map(|_| rollout(&mut rng, &test, 2.0 * BASELINE_ERROR_RATE, threshold).1)
            .collect();
        let caught: Vec<usize> = detections.iter().flatten().copied().collect();
        let share = caught.len() as f64 / BAD_RUNS as f64;
        let (low, high) = wilson_interval(caught.len() as u64, BAD_RUNS, 0.95).unwrap();
        let mut sorted = caught.clone();
        sorted.sort_unstable();
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
        println!(
            "doubled error rate, alpha = {alpha}: caught in {} of {BAD_RUNS} rollouts: {share:.4} \
             (Wilson 95 % interval {low:.4} .. {high:.4}); median detection at tick {median} of 90",
            caught.len()
        );
        if alpha == 0.01 {
            assert!(share >= 0.95, "power {share} below 0.95");
        }
    }

    // For the record, a milder regression (no assertion): 1.5 times the baseline's rate.
    let threshold = 100_f64.ln();
    let caught = (0..BAD_RUNS)
        .filter(|_| {
            rollout(&mut rng, &test, 1.5 * BASELINE_ERROR_RATE, threshold)
                .1
                .is_some()
        })
        .count();
    println!(
        "1.5x error rate, alpha = 0.01: caught in {caught} of {BAD_RUNS} rollouts within 90 ticks"
    );
    println!("simulation took {:.1?}", started.elapsed());
}
