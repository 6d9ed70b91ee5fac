//! `canary simulate`: it runs on every shipped policy, says what it skips and why, refuses
//! bad input with exit code 2, and its numbers are the benchmark harness's numbers: the same
//! library call with the same options gives the same summaries, run for run.

use canary_core::policy::Policy;
use canary_simulate::simulate::{SimulateOptions, simulate_policy};

use crate::util::{canary, root};

#[test]
fn its_json_is_the_librarys_report_for_the_same_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("simulate.json");
    let run = canary(&[
        "simulate",
        "--policy",
        "analyzer/simulate/benchmark-policy.yaml",
        "--rps",
        "50",
        "--error-rate",
        "1%",
        "--latency",
        "50ms",
        "--runs",
        "120",
        "--seed",
        "7",
        "--output",
        &format!("json:{}", out.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();

    // The benchmark harness computes canary's 50 requests/s rows with this very call.
    let policy = canary_simulate::benchmark::benchmark_policy();
    let options = SimulateOptions {
        rps: 50.0,
        error_rate: 0.01,
        latency_median: 0.05,
        runs: 120,
        seed: 7,
    };
    let report = simulate_policy(&policy, &options);
    assert_eq!(written, serde_json::to_value(&report).unwrap());

    // And each scenario is plain `run_many` on its scenario and seed.
    let doubled = report
        .regressions
        .iter()
        .find(|r| r.scenario.name == "errors ×2")
        .unwrap();
    assert_eq!(
        doubled.summary,
        canary_simulate::run_many(&policy, &doubled.scenario, 120, doubled.seed)
    );
    assert!(doubled.summary.rollback_rate > 0.9, "{:?}", doubled.summary);

    // The table says the same.
    assert!(run.stdout.contains("healthy canary:"), "{}", run.all());
    assert!(run.stdout.contains("errors ×2"), "{}", run.all());
    assert!(run.stdout.contains("p95 +50 %"), "{}", run.all());
}

#[test]
fn runs_on_every_shipped_policy() {
    let policies = std::fs::read_dir(root().join("policies")).unwrap();
    let mut seen = 0;
    for entry in policies {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = format!("policies/{}", path.file_name().unwrap().to_string_lossy());
        let run = canary(&["simulate", "--policy", &name, "--runs", "40"]);
        // A policy with header or mirror steps is refused, saying what to simulate instead
        // (the simulator models weighted steps only).
        let policy = Policy::from_yaml(&std::fs::read_to_string(&path).unwrap(), &name).unwrap();
        if (0..policy.rollout.steps.len()).any(|i| policy.rollout.route(i).is_some()) {
            assert_eq!(run.code, 2, "{name}: {}", run.all());
            assert!(
                run.stderr
                    .contains("models weighted steps only (simulate a copy of the policy without its routed steps)"),
                "{name}: {}",
                run.all()
            );
            continue;
        }
        assert_eq!(run.code, 0, "{name}: {}", run.all());
        assert!(
            run.stdout.contains("healthy canary:"),
            "{name}: {}",
            run.all()
        );
        assert!(run.stdout.contains("regression"), "{name}: {}", run.all());
        seen += 1;
    }
    assert!(seen >= 4, "the shipped policies are there");
}

#[test]
fn regressions_no_check_can_see_are_skipped_and_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("errors-only.yaml");
    std::fs::write(
        &policy,
        r#"service: errors-only
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout: {steps: [10, 50, 100], step-duration: 2m, interval: 30s, min-requests: 10}
checks:
  - name: errors
    error-rate: {requests: http_requests_total, errors: 'code=~"5.."'}
    baseline: {max-increase: 0%}
"#,
    )
    .unwrap();
    Policy::from_yaml(&std::fs::read_to_string(&policy).unwrap(), "x").unwrap();
    let run = canary(&[
        "simulate",
        "--policy",
        policy.to_str().unwrap(),
        "--runs",
        "30",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("skipped p95 +20 %: the policy has no latency check to see it"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("errors ×1.5"), "{}", run.all());
}

#[test]
fn bad_input_is_refused_with_exit_code_2() {
    let cases: [&[&str]; 6] = [
        &["--error-rate", "150%"],
        &["--error-rate", "lots"],
        &["--rps", "0"],
        &["--latency", "0s"],
        &["--runs", "0"],
        &["--output", "markdown:x.md"],
    ];
    for extra in cases {
        let mut args = vec!["simulate", "--policy", "policies/checkout.yaml"];
        args.extend_from_slice(extra);
        let run = canary(&args);
        assert_eq!(run.code, 2, "{extra:?}: {}", run.all());
        assert!(run.stdout.is_empty(), "{extra:?}: nothing is simulated");
    }
    let run = canary(&["simulate", "--policy", "policies/no-such-policy.yaml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("no-such-policy.yaml"), "{}", run.all());
}

#[test]
fn a_regression_users_care_about_that_is_rarely_caught_is_warned_about_with_the_fix() {
    // checkout.yaml at 50 requests/s and 0.1 % errors: a step sees too few errors for ×2.
    let run = canary(&[
        "simulate",
        "--policy",
        "policies/checkout.yaml",
        "--rps",
        "50",
        "--error-rate",
        "0.1%",
        "--runs",
        "200",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    let warning = run
        .stdout
        .lines()
        .find(|l| l.starts_with("warning: errors ×2 is caught in only"))
        .unwrap_or_else(|| panic!("no warning for errors ×2:\n{}", run.all()));
    assert!(warning.contains("fewer than 80%"), "{warning}");
    assert!(
        warning.contains("longer steps (step-duration, now 5m)") && warning.contains("alpha"),
        "{warning}"
    );
    assert!(warning.contains("about 12750 canary requests"), "{warning}");
}

#[test]
fn scenario_names_carry_the_quantile_the_policy_uses() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p99.yaml");
    std::fs::write(
        &policy,
        r#"service: p99
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout: {steps: [10, 50, 100], step-duration: 2m, interval: 30s, min-requests: 10}
checks:
  - name: latency
    latency: {histogram: http_request_duration_seconds, quantile: 0.99}
    baseline: {max-increase: 10%}
"#,
    )
    .unwrap();
    let run = canary(&[
        "simulate",
        "--policy",
        policy.to_str().unwrap(),
        "--runs",
        "30",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("p99 +20 %"), "{}", run.all());
    assert!(run.stdout.contains("p99 +50 %"), "{}", run.all());
    assert!(!run.stdout.contains("p95"), "{}", run.all());
}

#[test]
fn within_alpha_only_when_the_whole_interval_is() {
    // 100 healthy runs with no false rollback: 0 %, but the Wilson interval reaches 3.7 %,
    // above α = 1 %.
    let run = canary(&[
        "simulate",
        "--policy",
        "analyzer/simulate/benchmark-policy.yaml",
        "--runs",
        "100",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    let healthy = run
        .stdout
        .lines()
        .find(|l| l.starts_with("healthy canary:"))
        .unwrap();
    assert!(
        healthy.contains("not shown to be within alpha"),
        "{healthy}"
    );
    let run = canary(&[
        "simulate",
        "--policy",
        "analyzer/simulate/benchmark-policy.yaml",
        "--runs",
        "2000",
    ]);
    let healthy = run
        .stdout
        .lines()
        .find(|l| l.starts_with("healthy canary:"))
        .unwrap();
    assert!(healthy.ends_with("— within alpha"), "{healthy}");
}
