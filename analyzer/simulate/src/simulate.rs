//! What `canary simulate` computes for a policy: its false-rollback rate on healthy canaries
//! and, for a few regressions its checks can see, how often, how fast and at what cost in bad
//! requests it rolls them back — all on traffic at the user's level.
//!
//! The scenarios and their seeds are fixed functions of the options ([`scenarios`]), so the
//! CLI, the benchmark harness and a test calling [`simulate_policy`] with the same options get
//! the same summaries, run for run.

use std::time::{Duration, Instant};

use canary_core::judge::fmt_num;
use canary_core::policy::{CheckKind, Criterion, JsonMeasure, Policy, SamplesMethod};
use canary_core::rollout::Machine;
use canary_core::stats::autocorrelated_mean::DEFAULT_MAX_AUTOCORRELATION;
use serde::Serialize;

use crate::{
    Regression, RunResult, Scenario, Summary, Traffic, play_many, run_many, run_with, summarize,
};

/// The traffic and effort of a simulation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimulateOptions {
    /// Requests per second to the service (both versions).
    pub rps: f64,
    /// The baseline's error rate (a fraction).
    pub error_rate: f64,
    /// The median latency, in seconds.
    pub latency_median: f64,
    /// Rollouts per scenario.
    pub runs: u64,
    /// The first seed (each scenario derives its own from it).
    pub seed: u64,
}

impl Default for SimulateOptions {
    fn default() -> SimulateOptions {
        SimulateOptions {
            rps: 50.0,
            error_rate: 0.01,
            latency_median: 0.05,
            runs: 2000,
            seed: 1,
        }
    }
}

impl SimulateOptions {
    /// The traffic both versions see.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            latency_median: self.latency_median,
            ..Traffic::constant(self.rps, self.error_rate)
        }
    }
}

/// Which kind of check can see a regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Errors,
    Latency,
}

/// The regressions `canary simulate` tries by default: name, what it is, which check sees it.
/// Latency regressions slow every request by the same factor, so every quantile moves by it:
/// they are named after the quantile the policy's first latency check uses ("p99 +20 %").
fn default_regressions(policy: &Policy) -> [(String, Regression, Seen); 4] {
    let quantile = policy
        .checks
        .iter()
        .find_map(|check| match &check.kind {
            CheckKind::Latency(latency) => Some(latency.quantile),
            CheckKind::Json(json) => match json.measure {
                JsonMeasure::Percentile { quantile, .. } => Some(quantile),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or(0.95);
    let p = format!("p{}", fmt_num(quantile * 100.0));
    [
        (
            "errors ×1.5".to_owned(),
            Regression::errors_times(1.5),
            Seen::Errors,
        ),
        (
            REGRESSION_ERRORS_TWICE.to_owned(),
            Regression::errors_times(2.0),
            Seen::Errors,
        ),
        (
            format!("{p} +20 %"),
            Regression::latency_times(1.2),
            Seen::Latency,
        ),
        (
            format!("{p} +50 %"),
            Regression::latency_times(1.5),
            Seen::Latency,
        ),
    ]
}

/// The name of the ×2 errors regression.
const REGRESSION_ERRORS_TWICE: &str = "errors ×2";

/// A regression a user would care about should be caught at least this often; below, the
/// report warns and says how to catch it.
pub const DETECTION_TO_WARN_BELOW: f64 = 0.8;

/// How much a samples check's per-interval values move in the samples regressions: the
/// canary's are this much higher (the traffic's samples have mean 1 and standard deviation
/// 0.1, so +20 % is two standard deviations).
const SAMPLES_REGRESSIONS: [(&str, f64); 2] = [("samples +20 %", 0.2), ("samples +50 %", 0.5)];

/// The autocorrelation of consecutive samples (one `interval` apart) in a simulation of a
/// policy with samples checks: the most its sequential checks allow for (`max-autocorrelation`,
/// 0.9 by default), so the simulation shows the policy at the edge of its assumption; 0.9 for
/// `method: mann-whitney` checks, which assume independent samples and do not keep α then.
fn samples_autocorrelation(policy: &Policy) -> Option<f64> {
    let kappas: Vec<f64> = policy
        .checks
        .iter()
        .filter_map(|check| match &check.kind {
            CheckKind::Samples(samples) => Some(match samples.method {
                SamplesMethod::Sequential => samples.max_autocorrelation,
                SamplesMethod::MannWhitney => DEFAULT_MAX_AUTOCORRELATION,
            }),
            _ => None,
        })
        .collect();
    kappas.into_iter().reduce(f64::min)
}

/// Seeds of the scenarios are this far apart, so that no two share a run.
pub const SEED_STRIDE: u64 = 1_000_000;

/// One simulated scenario and its summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioResult {
    /// The scenario, as simulated.
    pub scenario: Scenario,
    /// Its first seed (runs use `seed, seed+1, …`).
    pub seed: u64,
    /// The summary of its runs.
    pub summary: Summary,
}

/// A regression not simulated, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The regression's name.
    pub scenario: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What `canary simulate` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimulateReport {
    /// The service.
    pub service: String,
    /// The policy's false-rollback budget.
    pub alpha: f64,
    /// The options.
    pub options: SimulateOptions,
    /// The healthy canary: its rollback rate is the false-rollback rate.
    pub healthy: ScenarioResult,
    /// The regressions simulated: their rollback rate is the detection probability.
    pub regressions: Vec<ScenarioResult>,
    /// The default regressions not simulated, and why.
    pub skipped: Vec<Skipped>,
    /// Regressions a user would care about (errors ×2, latency +20 %) caught in fewer than
    /// [`DETECTION_TO_WARN_BELOW`] of the runs, each with what would catch them.
    pub warnings: Vec<String>,
}

/// The scenarios of a simulation, each with its first seed: the healthy canary first, then
/// the default regressions the policy's checks can see; and the ones skipped. A policy with
/// samples checks is simulated with autocorrelated samples ([`samples_autocorrelation`] at
/// the policy's interval, named in the samples regressions) and two samples regressions
/// (policies without samples checks do not list them as skipped).
pub fn scenarios(
    policy: &Policy,
    options: &SimulateOptions,
) -> (Vec<(Scenario, u64)>, Vec<Skipped>) {
    let mut traffic = options.traffic();
    let autocorrelation = samples_autocorrelation(policy);
    if let Some(phi) = autocorrelation.filter(|&phi| phi > 0.0) {
        // Samples one interval apart have correlation e^(−interval/τ) = φ.
        traffic.sample_correlation_seconds =
            policy.rollout.interval.as_secs_f64() / (1.0 / phi).ln();
    }
    let has = |seen: Seen| {
        policy.checks.iter().any(|check| {
            match (&check.kind, seen) {
                (CheckKind::ErrorRate(_), Seen::Errors)
                | (CheckKind::Latency(_), Seen::Latency) => true,
                // A generic provider's counts see errors; its percentile, latency.
                (CheckKind::Json(json), seen) => matches!(
                    (&json.measure, seen),
                    (JsonMeasure::Counts { .. }, Seen::Errors)
                        | (JsonMeasure::Percentile { .. }, Seen::Latency)
                ),
                _ => false,
            }
        })
    };
    let mut run = vec![(
        Scenario::new("healthy", traffic.clone(), Regression::none()),
        options.seed,
    )];
    let mut skipped = Vec::new();
    for (k, (name, regression, seen)) in default_regressions(policy).into_iter().enumerate() {
        if has(seen) {
            let seed = options.seed.wrapping_add((k as u64 + 1) * SEED_STRIDE);
            run.push((Scenario::new(name, traffic.clone(), regression), seed));
        } else {
            skipped.push(Skipped {
                scenario: name,
                reason: match seen {
                    Seen::Errors => "the policy has no error-rate check to see it",
                    Seen::Latency => "the policy has no latency check to see it",
                }
                .to_owned(),
            });
        }
    }
    if let Some(phi) = autocorrelation {
        let first = default_regressions(policy).len() as u64 + 1;
        for (k, (name, shift)) in SAMPLES_REGRESSIONS.into_iter().enumerate() {
            let seed = options.seed.wrapping_add((first + k as u64) * SEED_STRIDE);
            let regression = Regression {
                sample_shift: shift,
                ..Regression::none()
            };
            let name = format!("{name} (autocorrelation {phi} per interval)");
            run.push((Scenario::new(&name, traffic.clone(), regression), seed));
        }
    }
    (run, skipped)
}

/// Simulates `policy` on its [`scenarios`].
pub fn simulate_policy(policy: &Policy, options: &SimulateOptions) -> SimulateReport {
    let (scenarios, skipped) = scenarios(policy, options);
    let mut results = scenarios.into_iter().map(|(scenario, seed)| {
        let summary = run_many(policy, &scenario, options.runs, seed);
        ScenarioResult {
            scenario,
            seed,
            summary,
        }
    });
    let healthy = results.next().expect("the healthy scenario comes first");
    let regressions: Vec<ScenarioResult> = results.collect();
    SimulateReport {
        service: policy.service.clone(),
        alpha: policy.rollout.alpha,
        options: options.clone(),
        healthy,
        warnings: missed_regressions(policy, options, &regressions),
        regressions,
        skipped,
    }
}

/// Runs are played in blocks of this many when a time budget limits them.
pub const BLOCK: u64 = 250;

/// [`simulate_policy`] within a wall-clock budget: up to `options.runs` per scenario, played
/// in blocks of [`BLOCK`] seeds. The healthy scenario may use up to half the budget (it
/// needs the most runs: its rollback rate is compared with α); each regression then gets an
/// equal share of what is left, and at least one block. A scenario stopped early is the
/// same as one asked for fewer runs: its runs are a prefix of the same seeds.
pub fn simulate_policy_within(
    policy: &Policy,
    options: &SimulateOptions,
    budget: Duration,
) -> SimulateReport {
    let started = Instant::now();
    let (scenarios, skipped) = scenarios(policy, options);
    let machine = Machine::new(policy.clone()).expect("a validated policy makes a machine");
    let regressions = scenarios.len() as u32 - 1;
    let mut results = Vec::new();
    for (i, (scenario, seed)) in scenarios.into_iter().enumerate() {
        let deadline = if i == 0 {
            budget / 2
        } else {
            let left = budget.saturating_sub(started.elapsed());
            started.elapsed() + left / (regressions + 1 - i as u32)
        };
        let scenario_started = started.elapsed();
        let mut runs: Vec<RunResult> = Vec::new();
        while (runs.len() as u64) < options.runs {
            let first = runs.len() as u64;
            let count = BLOCK.min(options.runs - first);
            runs.extend(play_many(count, seed.wrapping_add(first), |seed| {
                run_with(&machine, &scenario, seed)
            }));
            // Stop when another block of the same cost would pass the deadline.
            let spent = started.elapsed() - scenario_started;
            let per_block = spent.as_secs_f64() / (runs.len() as f64 / BLOCK as f64);
            if started.elapsed().as_secs_f64() + per_block > deadline.as_secs_f64() {
                break;
            }
        }
        let summary = summarize(&scenario.name, &runs);
        results.push(ScenarioResult {
            scenario,
            seed,
            summary,
        });
    }
    let mut results = results.into_iter();
    let healthy = results.next().expect("the healthy scenario comes first");
    let regressions: Vec<ScenarioResult> = results.collect();
    SimulateReport {
        service: policy.service.clone(),
        alpha: policy.rollout.alpha,
        options: options.clone(),
        healthy,
        warnings: missed_regressions(policy, options, &regressions),
        regressions,
        skipped,
    }
}

/// The warnings for the regressions a user would care about — errors ×2 and latency +20 % —
/// when they are caught in fewer than [`DETECTION_TO_WARN_BELOW`] of the runs, each saying
/// how much evidence a rollout gathers at this traffic and what would catch them.
fn missed_regressions(
    policy: &Policy,
    options: &SimulateOptions,
    regressions: &[ScenarioResult],
) -> Vec<String> {
    let rollout = &policy.rollout;
    let steps = rollout.analysed_steps();
    let step_seconds = rollout.step_duration.as_secs_f64();
    let canary_requests: f64 = steps
        .iter()
        .map(|&w| options.rps * f64::from(w) / 100.0 * step_seconds)
        .sum();
    let compares = |errors: bool| {
        policy.checks.iter().any(|check| {
            check.criteria().contains(&Criterion::Baseline)
                && match (&check.kind, errors) {
                    (CheckKind::ErrorRate(_), true) | (CheckKind::Latency(_), false) => true,
                    (CheckKind::Json(json), true) => {
                        matches!(json.measure, JsonMeasure::Counts { .. })
                    }
                    _ => false,
                }
        })
    };
    let weights: Vec<String> = steps.iter().map(|w| format!("{w} %")).collect();
    let mut warnings = Vec::new();
    for result in regressions {
        let name = &result.scenario.name;
        // Told by what the regression is, not its name (the samples regressions are "+20 %"
        // too).
        let regression = &result.scenario.canary;
        let errors = name == REGRESSION_ERRORS_TWICE;
        let latency = (regression.latency_factor - 1.2).abs() < 1e-9;
        let caught = result.summary.rollback_rate;
        if !(errors || latency) || caught >= DETECTION_TO_WARN_BELOW {
            continue;
        }
        let evidence = if errors {
            format!(
                "about {} canary requests with {} errors at ×2",
                fmt_num(canary_requests.round()),
                fmt_num((canary_requests * options.error_rate * 2.0).round())
            )
        } else {
            format!("about {} canary requests", fmt_num(canary_requests.round()))
        };
        let fix = if compares(errors) {
            format!(
                "more evidence per rollout catches it: longer steps (step-duration, now {}), larger canary weights in steps, or a higher alpha (now {}%)",
                humantime_secs(step_seconds),
                fmt_num(rollout.alpha * 100.0)
            )
        } else {
            format!(
                "the policy has no `baseline` comparison for {}, and its absolute bound allows this regression: add `baseline: {{max-increase: …}}` to the check to compare with the stable version",
                if errors { "errors" } else { "latency" }
            )
        };
        warnings.push(format!(
            "{name} is caught in only {}% of rollouts (fewer than {}%): at {} req/s the analysed steps ({}) serve {evidence}; {fix}. Simulate again with --rps, --error-rate and --latency at your real traffic.",
            fmt_num(caught * 100.0),
            fmt_num(DETECTION_TO_WARN_BELOW * 100.0),
            fmt_num(options.rps),
            weights.join(", ")
        ));
    }
    warnings
}

/// `5m`, `90s`: a duration for a sentence.
fn humantime_secs(seconds: f64) -> String {
    if seconds >= 60.0 && (seconds % 60.0).abs() < 1e-9 {
        format!("{}m", fmt_num(seconds / 60.0))
    } else {
        format!("{}s", fmt_num(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERRORS_ONLY: &str = r#"
service: s
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout: {steps: [10, 50, 100], step-duration: 2m, interval: 30s, min-requests: 10}
checks:
  - name: errors
    error-rate: {requests: http_requests_total, errors: 'code=~"5.."'}
    baseline: {max-increase: 0%}
"#;

    const WITH_SAMPLES: &str = r#"
service: s
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout: {steps: [10, 50, 100], step-duration: 2m, interval: 30s, min-requests: 0}
checks:
  - name: cpu
    samples: {query: 'sum by ({{label}}) (rate(cpu[1m]))', higher-is-worse: true}
    baseline: {max-increase: 15%}
"#;

    #[test]
    fn a_policy_with_samples_checks_is_simulated_with_autocorrelated_samples_and_shifts() {
        let policy = Policy::from_yaml(WITH_SAMPLES, "s.yaml").unwrap();
        let (run, skipped) = scenarios(&policy, &SimulateOptions::default());
        let names: Vec<_> = run.iter().map(|(s, _)| s.name.as_str()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], "healthy");
        assert!(names[1].starts_with("samples +20 %"), "{names:?}");
        assert!(names[2].starts_with("samples +50 %"), "{names:?}");
        // No errors or latency checks: those regressions are skipped, with reasons.
        assert_eq!(skipped.len(), 4);
        // Samples one 30 s interval apart correlate by the check's max-autocorrelation.
        let tau = run[0].0.traffic.sample_correlation_seconds;
        let phi = (-30.0 / tau).exp();
        assert!((phi - DEFAULT_MAX_AUTOCORRELATION).abs() < 1e-9, "{phi}");
        assert!((run[1].0.canary.sample_shift - 0.2).abs() < 1e-12);

        // Policies without samples checks keep independent samples and no samples scenarios.
        let errors_only = Policy::from_yaml(ERRORS_ONLY, "s.yaml").unwrap();
        let (run, _) = scenarios(&errors_only, &SimulateOptions::default());
        assert!(
            run.iter()
                .all(|(s, _)| s.traffic.sample_correlation_seconds == 0.0)
        );
        assert!(run.iter().all(|(s, _)| !s.name.starts_with("samples")));
    }

    #[test]
    fn regressions_no_check_can_see_are_skipped_with_the_reason() {
        let policy = Policy::from_yaml(ERRORS_ONLY, "s.yaml").unwrap();
        let options = SimulateOptions {
            runs: 20,
            ..SimulateOptions::default()
        };
        let (run, skipped) = scenarios(&policy, &options);
        let names: Vec<_> = run.iter().map(|(s, _)| s.name.as_str()).collect();
        assert_eq!(names, ["healthy", "errors ×1.5", "errors ×2"]);
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].reason.contains("no latency check"));
        // Seeds are fixed per regression, whether or not the others run.
        assert_eq!(run[2].1, options.seed + 2 * SEED_STRIDE);

        let report = simulate_policy(&policy, &options);
        assert_eq!(report.regressions.len(), 2);
        assert_eq!(report.healthy.summary.runs, 20);
        assert_eq!(report, simulate_policy(&policy, &options), "seeded");
        // Within a budget that allows every run, the same report.
        let within = simulate_policy_within(&policy, &options, Duration::from_secs(3600));
        assert_eq!(within, report);
        // Within none, one block per scenario: a prefix of the same seeds.
        let few = SimulateOptions {
            runs: BLOCK + 10,
            ..options.clone()
        };
        let within = simulate_policy_within(&policy, &few, Duration::ZERO);
        assert_eq!(within.healthy.summary.runs, BLOCK);
        let prefix = SimulateOptions {
            runs: BLOCK,
            ..options
        };
        assert_eq!(
            within,
            SimulateReport {
                options: few,
                ..simulate_policy(&policy, &prefix)
            }
        );
    }
}
