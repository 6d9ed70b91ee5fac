//! How long canary's judge takes for one analysis tick of a policy with 10 checks (4 error
//! rates and 4 latencies, each with an SLO and a baseline comparison, a samples check and a
//! query: 18 criteria): taking the tick's readings in, then assessing every criterion mid-step
//! — the work the rollout does every interval.
//!
//! ```text
//! cargo bench -p canary-core --bench judge
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;

use canary_core::judge::{Judge, JudgeConfig, Moment};
use canary_core::observation::{CheckObservation, HistogramBucket, Reading, RequestCounts, Tick};
use canary_core::policy::{CheckKind, Policy};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;

fn policy() -> Policy {
    let mut checks = String::new();
    for i in 0..4 {
        checks.push_str(&format!(
            "  - name: errors-{i}\n    error-rate: {{requests: http_requests_total, errors: 'code=~\"5..\"'}}\n    slo: {{max: 5%}}\n    baseline: {{max-increase: 10%}}\n"
        ));
        checks.push_str(&format!(
            "  - name: latency-{i}\n    latency: {{histogram: http_request_duration_seconds, quantile: 0.95}}\n    slo: {{max: 500ms}}\n    baseline: {{max-increase: 10%}}\n"
        ));
    }
    checks.push_str("  - name: cpu\n    samples: {query: 'avg by ({{label}}) (rate(cpu_seconds_total[1m]))'}\n    baseline: {max-increase: 20%}\n");
    checks.push_str("  - name: restarts\n    query: {promql: 'sum(kube_pod_container_status_restarts_total) or vector(0)'}\n    slo: {max: 0}\n");
    let text = format!(
        "service: bench\ntraffic: {{label: version, canary: canary, baseline: stable}}\nmetrics: {{prometheus: {{url: \"http://localhost:9090\"}}}}\nchecks:\n{checks}"
    );
    Policy::from_yaml(&text, "bench.yaml").expect("a valid policy")
}

/// The cumulative readings at tick `k` (30 s ticks, 5 canary and 45 baseline requests/s).
fn tick(policy: &Policy, k: u64) -> Tick {
    let bounds = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let shares = [0.0, 0.0, 0.01, 0.5, 0.87, 0.996, 0.999, 1.0, 1.0, 1.0, 1.0];
    let (canary, baseline) = ((150 * k) as f64, (1350 * k) as f64);
    let histogram = |n: f64| {
        let mut b: Vec<HistogramBucket> = bounds
            .iter()
            .zip(shares)
            .map(|(&le, share)| HistogramBucket {
                le,
                count: (n * share).floor(),
            })
            .collect();
        b.push(HistogramBucket {
            le: f64::INFINITY,
            count: n,
        });
        b
    };
    let readings = policy
        .checks
        .iter()
        .map(|check| {
            let observation = match &check.kind {
                CheckKind::ErrorRate(_) => CheckObservation::Counts {
                    canary: RequestCounts {
                        requests: canary,
                        errors: (canary * 0.01).floor(),
                    },
                    baseline: RequestCounts {
                        requests: baseline,
                        errors: (baseline * 0.01).floor(),
                    }
                    .into(),
                },
                CheckKind::Latency(_) => CheckObservation::Histogram {
                    canary: histogram(canary),
                    baseline: histogram(baseline).into(),
                },
                CheckKind::Samples(_) => CheckObservation::Samples {
                    canary: Some(1.0 + (k % 7) as f64 / 100.0),
                    baseline: Some(1.0 + (k % 5) as f64 / 100.0),
                },
                CheckKind::Query(_) | CheckKind::Json(_) => CheckObservation::Value { value: 0.0 },
            };
            (check.name.clone(), Reading::Observed(observation))
        })
        .collect::<BTreeMap<_, _>>();
    Tick {
        at: Timestamp::from_second(1_800_000_000 + 30 * k as i64).expect("a valid time"),
        window_seconds: 30.0 * k as f64,
        readings,
        warnings: Vec::new(),
    }
}

fn judge_tick(c: &mut Criterion) {
    let policy = policy();
    let judge = Judge::new(
        &policy,
        JudgeConfig {
            sample_test_looks: 3,
        },
    )
    .expect("a judge");
    let mut state = judge.start();
    for k in 1..=20 {
        judge
            .observe(&mut state, &tick(&policy, k))
            .expect("observed");
        judge.assess(&mut state, Moment::MidStep).expect("assessed");
    }
    let next = tick(&policy, 21);
    c.bench_function("judge: one tick of 10 checks (observe + assess)", |b| {
        b.iter_batched_ref(
            || state.clone(),
            |s| {
                judge.observe(s, black_box(&next)).expect("observed");
                judge.assess(s, Moment::MidStep).expect("assessed")
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function(
        "judge: assess at a step's end (incl. Mann–Whitney)",
        |b| {
            b.iter_batched_ref(
                || {
                    let mut s = state.clone();
                    judge.observe(&mut s, &next).expect("observed");
                    s
                },
                |s| judge.assess(s, Moment::StepEnd).expect("assessed"),
                BatchSize::SmallInput,
            )
        },
    );
}

criterion_group!(benches, judge_tick);
criterion_main!(benches);
