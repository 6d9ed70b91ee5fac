//! Tests of the judge as a whole: readings routed to criteria, failures latched, the overall
//! verdict, step request counts, and the persisted state.

use std::collections::BTreeMap;

use super::*;
use crate::observation::{CheckObservation, HistogramBucket, RequestCounts};

const POLICY: &str = r#"
service: checkout
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout:
  min-requests: 500
checks:
  - name: errors
    error-rate: {requests: http_requests_total, errors: 'code=~"5.."'}
    slo: {max: 5%}
    baseline: {max-increase: 0%}
  - name: latency
    latency: {histogram: http_request_duration_seconds, quantile: 0.95}
    slo: {max: 500ms}
    baseline: {max-increase: 10%}
  - name: cpu
    samples: {query: 'avg by ({{label}}) (rate(cpu_seconds_total[1m]))', min-samples: 3}
    baseline: {max-increase: 20%}
  - name: restarts
    query: {promql: 'sum(kube_pod_container_status_restarts_total) or vector(0)'}
    slo: {max: 0}
"#;

fn mk_policy() -> Policy {
    Policy::from_yaml(POLICY, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn mk_judge() -> Judge {
    Judge::new(
        &mk_policy(),
        JudgeConfig {
            sample_test_looks: 3,
        },
    )
    .unwrap()
}

fn histogram(n: f64) -> Vec<HistogramBucket> {
    [
        (0.05, 0.5),
        (0.1, 0.9),
        (0.25, 0.99),
        (0.5, 1.0),
        (f64::INFINITY, 1.0),
    ]
    .iter()
    .map(|&(le, share)| HistogramBucket {
        le,
        count: (n * share).round(),
    })
    .collect()
}

/// Tick `k` of a healthy canary: 100 canary and 900 baseline requests per tick, 1 % errors.
fn mk_tick(k: u32, canary_errors_per_tick: f64) -> Tick {
    let kf = f64::from(k);
    let mut readings = BTreeMap::new();
    readings.insert(
        "errors".to_owned(),
        Reading::Observed(CheckObservation::Counts {
            canary: RequestCounts {
                requests: 100.0 * kf,
                errors: canary_errors_per_tick * kf,
            },
            baseline: RequestCounts {
                requests: 900.0 * kf,
                errors: 9.0 * kf,
            }
            .into(),
        }),
    );
    readings.insert(
        "latency".to_owned(),
        Reading::Observed(CheckObservation::Histogram {
            canary: histogram(100.0 * kf),
            baseline: histogram(900.0 * kf).into(),
        }),
    );
    readings.insert(
        "cpu".to_owned(),
        Reading::Observed(CheckObservation::Samples {
            canary: Some(1.0 + f64::from(k % 3) / 100.0),
            baseline: Some(1.0 + f64::from(k % 2) / 100.0),
        }),
    );
    readings.insert(
        "restarts".to_owned(),
        Reading::Observed(CheckObservation::Value { value: 0.0 }),
    );
    Tick {
        at: jiff::Timestamp::from_second(1_800_000_000 + 30 * i64::from(k)).unwrap(),
        window_seconds: 30.0 * kf,
        readings,
        warnings: Vec::new(),
    }
}

#[test]
fn every_criterion_gets_one_result_in_policy_order() {
    let judge = mk_judge();
    let mut state = judge.start();
    judge.begin_step(&mut state);
    let names: Vec<_> = state.criteria.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "errors/slo",
            "errors/baseline",
            "latency/slo",
            "latency/baseline",
            "cpu/baseline",
            "restarts/slo"
        ]
    );
    for k in 1..=10 {
        judge.observe(&mut state, &mk_tick(k, 1.0)).unwrap();
    }
    let assessment = judge.assess(&mut state, Moment::StepEnd).unwrap();
    assert_eq!(assessment.verdict, Verdict::Pass, "{}", assessment.reason);
    assert_eq!(assessment.checks.len(), 6);
    assert_eq!(assessment.canary_requests_in_step, Some(1000));
    let alpha = 0.01 / 6.0;
    // The samples check's sequential test, like the other anytime-valid tests, uses its
    // share whole (only `method: mann-whitney` splits it over the rollout's looks).
    assert!(
        assessment
            .checks
            .iter()
            .all(|c| (c.evidence.alpha - alpha).abs() < 1e-15)
    );
}

#[test]
fn before_any_reading_every_criterion_is_no_data() {
    let judge = mk_judge();
    let mut state = judge.start();
    let assessment = judge.assess(&mut state, Moment::MidStep).unwrap();
    assert!(
        assessment
            .checks
            .iter()
            .all(|c| c.verdict == Verdict::NoData && c.reason == "no reading yet")
    );
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
}

#[test]
fn missing_and_unusable_readings_are_no_data_and_error_never_pass() {
    let judge = mk_judge();
    let mut state = judge.start();
    let mut tick = mk_tick(1, 1.0);
    tick.readings.remove("restarts");
    tick.readings.insert(
        "errors".to_owned(),
        Reading::Invalid {
            reason: "NaN".to_owned(),
        },
    );
    tick.readings.insert(
        "cpu".to_owned(),
        Reading::Observed(CheckObservation::Value { value: 1.0 }),
    );
    judge.observe(&mut state, &tick).unwrap();
    let assessment = judge.assess(&mut state, Moment::MidStep).unwrap();
    let verdict = |name: &str| {
        assessment
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(verdict("errors/slo").verdict, Verdict::Error);
    assert_eq!(verdict("restarts/slo").verdict, Verdict::NoData);
    let cpu = verdict("cpu/baseline");
    assert_eq!(cpu.verdict, Verdict::Error);
    assert!(
        cpu.reason.contains("expected data for a samples check"),
        "{}",
        cpu.reason
    );
    assert_eq!(assessment.verdict, Verdict::Error);
}

#[test]
fn a_failure_latches_even_when_later_data_looks_fine() {
    let judge = mk_judge();
    let mut state = judge.start();
    for k in 1..=10 {
        judge.observe(&mut state, &mk_tick(k, 10.0)).unwrap();
    }
    let failed = judge.assess(&mut state, Moment::MidStep).unwrap();
    assert_eq!(failed.verdict, Verdict::Fail);
    let first: Vec<_> = failed.failures().map(|c| c.name.clone()).collect();
    assert!(first.contains(&"errors/baseline".to_owned()), "{first:?}");
    let mut restarts = mk_tick(11, 10.0);
    restarts.readings.insert(
        "restarts".to_owned(),
        Reading::Observed(CheckObservation::Value { value: 0.0 }),
    );
    judge.observe(&mut state, &restarts).unwrap();
    let again = judge.assess(&mut state, Moment::MidStep).unwrap();
    let latched = again
        .checks
        .iter()
        .find(|c| c.name == "errors/baseline")
        .unwrap();
    assert_eq!(
        Some(latched),
        failed.checks.iter().find(|c| c.name == "errors/baseline")
    );
}

#[test]
fn too_few_canary_requests_in_a_step_are_inconclusive_at_its_end() {
    let judge = mk_judge();
    let mut state = judge.start();
    for k in 1..=10 {
        judge.observe(&mut state, &mk_tick(k, 1.0)).unwrap();
    }
    judge.begin_step(&mut state);
    for k in 11..=13 {
        judge.observe(&mut state, &mk_tick(k, 1.0)).unwrap();
    }
    let assessment = judge.assess(&mut state, Moment::StepEnd).unwrap();
    assert_eq!(assessment.canary_requests_in_step, Some(300));
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert!(
        assessment.reason.contains("only 300 canary requests"),
        "{}",
        assessment.reason
    );
}

#[test]
fn the_state_round_trips_through_json() {
    let judge = mk_judge();
    let mut state = judge.start();
    for k in 1..=5 {
        judge.observe(&mut state, &mk_tick(k, 1.0)).unwrap();
    }
    judge.assess(&mut state, Moment::StepEnd).unwrap();
    let json = serde_json::to_string(&state).unwrap();
    let mut back: JudgeState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
    assert_eq!(
        judge.assess(&mut back, Moment::MidStep).unwrap(),
        judge.assess(&mut state, Moment::MidStep).unwrap()
    );
}

#[test]
fn a_state_of_the_older_format_is_refused_with_a_clear_message() {
    let judge = mk_judge();
    let state = judge.start();
    let mut value = serde_json::to_value(&state).unwrap();
    value.as_object_mut().unwrap().remove("format");
    let err = serde_json::from_value::<JudgeState>(value).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("judge state format 1"), "{message}");
    assert!(message.contains("--restart"), "{message}");
}

#[test]
fn a_state_of_another_policy_is_refused_and_left_unchanged() {
    let judge = mk_judge();
    let mut state = judge.start();
    // Same names, but the first criterion's memory is another evaluator's.
    state.criteria.swap(0, 1);
    state.criteria[0].name = "errors/slo".to_owned();
    state.criteria[1].name = "errors/baseline".to_owned();
    let before = state.clone();
    let err = judge.observe(&mut state, &mk_tick(1, 1.0)).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    assert_eq!(state, before);
    assert!(judge.assess(&mut state, Moment::MidStep).is_err());

    let mut fewer = judge.start();
    fewer.criteria.pop();
    assert!(judge.observe(&mut fewer, &mk_tick(1, 1.0)).is_err());
}

#[test]
fn criteria_no_evaluator_judges_are_refused_when_the_judge_is_built() {
    let mut policy = mk_policy();
    let cpu = policy.checks.iter_mut().find(|c| c.name == "cpu").unwrap();
    cpu.slo = Some(crate::policy::AbsoluteBound {
        max: 1.0,
        rollback_above: None,
    });
    let err = Judge::new(
        &policy,
        JudgeConfig {
            sample_test_looks: 1,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("a samples check has no `slo` criterion"),
        "{err}"
    );
}

#[test]
fn overall_orders_fail_then_error_then_missing_evidence() {
    let result = |name: &str, verdict| CheckResult {
        name: name.to_owned(),
        check: name.to_owned(),
        criterion: Criterion::Slo,
        kind: "query".to_owned(),
        verdict,
        reason: "why".to_owned(),
        statistics: String::new(),
        evidence: Evidence::default(),
        decided_at: None,
    };
    let all = [
        result("a", Verdict::Pass),
        result("b", Verdict::NoData),
        result("c", Verdict::Error),
        result("d", Verdict::Fail),
    ];
    assert_eq!(overall(&all, Moment::MidStep, Some(0), 0).0, Verdict::Fail);
    assert_eq!(
        overall(&all[..3], Moment::MidStep, Some(0), 0).0,
        Verdict::Error
    );
    assert_eq!(
        overall(&all[..2], Moment::MidStep, Some(0), 0).0,
        Verdict::Inconclusive
    );
    assert_eq!(
        overall(&all[..1], Moment::StepEnd, Some(10), 5).0,
        Verdict::Pass
    );
    let (verdict, reason) = overall(&all[..1], Moment::StepEnd, None, 5);
    assert_eq!(
        verdict,
        Verdict::Inconclusive,
        "never a pass on unknown traffic"
    );
    assert!(reason.contains("no reading counted"), "{reason}");
}

#[test]
fn numbers_in_sentences_have_four_significant_digits() {
    assert_eq!(fmt_num(0.0), "0");
    assert_eq!(fmt_num(1.2), "1.2");
    assert_eq!(fmt_num(123.456), "123.5");
    assert_eq!(fmt_num(0.001234567), "0.001235");
    assert_eq!(fmt_num(1e-7), "1.000e-7");
    assert_eq!(fmt_num(f64::INFINITY), "+Inf");
    assert_eq!(fmt_num(f64::NAN), "NaN");
}

/// The judge's reasons, for every criterion with numbers, in plain words and the policy's
/// units; the statistics one line below (in `statistics`).
#[test]
fn reasons_are_plain_words_in_the_policys_units() {
    let judge = mk_judge();
    let mut state = judge.start();
    judge.begin_step(&mut state);
    for k in 1..=10 {
        judge.observe(&mut state, &mk_tick(k, 1.0)).unwrap();
    }
    let healthy = judge.assess(&mut state, Moment::StepEnd).unwrap();
    let reason = |a: &Assessment, name: &str| {
        let c = a.checks.iter().find(|c| c.name == name).unwrap();
        (c.reason.clone(), c.statistics.clone())
    };
    let (errors, stats) = reason(&healthy, "errors/slo");
    assert_eq!(
        errors,
        "errors 1 % (10 of 1,000 canary requests failed); the policy allows at most 5 %"
    );
    assert!(stats.contains("within"), "{stats}");
    let (errors, stats) = reason(&healthy, "errors/baseline");
    assert!(
        errors == "errors 1 % vs baseline 1 % (≈1×); the policy allows no increase; no evidence of more"
            || (errors.starts_with("errors 1 % vs baseline 1 % (≈1×); the policy allows no increase; no proof of more yet (evidence ")
                && errors.ends_with(" of the 600 needed to fail)")),
        "{errors}"
    );
    assert!(
        stats.starts_with("10 of 1,000 canary and 90 of 9,000 baseline requests failed; "),
        "{stats}"
    );
    let (latency, _) = reason(&healthy, "latency/slo");
    assert_eq!(
        latency,
        "p95 183 ms (1,000 canary requests); the policy allows at most 500 ms"
    );
    let (latency, stats) = reason(&healthy, "latency/baseline");
    assert!(
        latency.contains(" of canary requests slower than "),
        "{latency}"
    );
    assert!(latency.contains(" ms vs "), "{latency}");
    assert!(
        latency.contains("the policy allows up to 10 % more"),
        "{latency}"
    );
    assert!(stats.contains("canary and"), "{stats}");
    let (restarts, _) = reason(&healthy, "restarts/slo");
    assert_eq!(restarts, "restarts is 0; the policy allows at most 0");

    // A canary with ten times the baseline's errors fails, said as people say it.
    let mut state = judge.start();
    judge.begin_step(&mut state);
    for k in 1..=10 {
        judge.observe(&mut state, &mk_tick(k, 10.0)).unwrap();
    }
    let failed = judge.assess(&mut state, Moment::MidStep).unwrap();
    let (errors, stats) = reason(&failed, "errors/baseline");
    assert!(
        errors.starts_with(
            "errors 10 % vs baseline 1 % (≈10×); the policy allows no increase; at least "
        ),
        "{errors}"
    );
    assert!(
        errors.ends_with(&format!(
            "× with {} % confidence",
            fmt_num((1.0 - 0.01 / 6.0) * 100.0)
        )),
        "{errors}"
    );
    assert!(stats.contains("e-value"), "{stats}");
    assert!(failed.reason.contains(&errors), "{}", failed.reason);
}
