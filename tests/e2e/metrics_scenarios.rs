//! `canary analyze` against a real Prometheus over backfilled, deterministic data: a healthy
//! canary passes, one with 3× the errors fails, one with p95 +50 % fails, one with no traffic
//! has no data; a past window read with one query per counter check gives the very ticks
//! (counts, buckets, e-values) one query per check per tick gives, with the queries counted
//! by Prometheus itself; a recorded live analysis replays to the same verdict; hostile label
//! values cannot change a query.
//!
//! The data: an hour of 15-second samples, three to two hours ago (within retention, clear
//! of the head block), of `http_requests_total{scenario, version, code}` and
//! `http_request_duration_seconds_bucket{scenario, version, le}`. Stable serves 30 requests/s
//! and the canary 10, with 0.2 % errors and log-normal latency (median 60 ms, σ 0.6: p95
//! ≈ 160 ms), except where a scenario says otherwise. Counts are whole and exact
//! (`floor(rate × t)`), so every run sees the same numbers.

use std::fmt::Write as _;
use std::path::Path;

use canary_tests::prometheus::Prometheus;
use serde_json::Value;

use crate::canary_run::{Run, canary, read_json, verdict_of, write_policy};

pub(super) const STEP_SECONDS: i64 = 15;
pub(super) const SAMPLES: i64 = 240;
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The analysed range, in seconds after the data's start: 30 minutes.
pub(super) const FROM: i64 = 10 * 60;
pub(super) const TO: i64 = 40 * 60;
/// The policy's interval, so 60 ticks.
const INTERVAL: i64 = 30;
const TICKS: i64 = (TO - FROM) / INTERVAL;
const CHECKS: i64 = 3;

#[derive(Clone, Copy)]
struct Traffic {
    rps: f64,
    error_rate: f64,
    latency_scale: f64,
}

const STABLE: Traffic = Traffic {
    rps: 30.0,
    error_rate: 0.002,
    latency_scale: 1.0,
};
const CANARY: Traffic = Traffic {
    rps: 10.0,
    error_rate: 0.002,
    latency_scale: 1.0,
};

struct Scenario {
    name: &'static str,
    canary: Option<Traffic>,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "healthy",
        canary: Some(CANARY),
    },
    Scenario {
        name: "errors-3x",
        canary: Some(Traffic {
            error_rate: 0.006,
            ..CANARY
        }),
    },
    Scenario {
        name: "latency-p95-up",
        canary: Some(Traffic {
            latency_scale: 1.5,
            ..CANARY
        }),
    },
    Scenario {
        name: "no-canary",
        canary: None,
    },
];

/// Φ, the standard normal CDF, by Abramowitz & Stegun 7.1.26 (error < 1.5e-7).
pub(super) fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// The share of requests at or below `le` seconds.
fn latency_share(le: f64, scale: f64) -> f64 {
    normal_cdf((le / (0.060 * scale)).ln() / 0.6)
}

/// The backfill: every series' samples in time order, families contiguous.
fn openmetrics(start: i64) -> String {
    let versions = |scenario: &Scenario| {
        let mut v = vec![("stable", STABLE)];
        if let Some(canary) = scenario.canary {
            v.push(("canary", canary));
        }
        v
    };
    let requests = |traffic: Traffic, k: i64| (traffic.rps * (STEP_SECONDS * k) as f64).floor();
    let errors = |traffic: Traffic, k: i64| (requests(traffic, k) * traffic.error_rate).floor();
    let mut out =
        String::from("# HELP http_requests Requests served.\n# TYPE http_requests counter\n");
    for scenario in &SCENARIOS {
        for (version, traffic) in versions(scenario) {
            for code in ["200", "500"] {
                for k in 0..SAMPLES {
                    let value = match code {
                        "200" => requests(traffic, k) - errors(traffic, k),
                        _ => errors(traffic, k),
                    };
                    let _ = writeln!(
                        out,
                        "http_requests_total{{scenario=\"{}\",version=\"{version}\",code=\"{code}\"}} {value} {}",
                        scenario.name,
                        start + k * STEP_SECONDS
                    );
                }
            }
        }
    }
    out.push_str("# HELP http_request_duration_seconds Time to serve a request.\n# TYPE http_request_duration_seconds histogram\n");
    for scenario in &SCENARIOS {
        for (version, traffic) in versions(scenario) {
            for le in BUCKETS.iter().copied().chain([f64::INFINITY]) {
                let le_text = if le.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    le.to_string()
                };
                for k in 0..SAMPLES {
                    let n = requests(traffic, k);
                    let value = if le.is_infinite() {
                        n
                    } else {
                        (n * latency_share(le, traffic.latency_scale)).floor()
                    };
                    let _ = writeln!(
                        out,
                        "http_request_duration_seconds_bucket{{scenario=\"{}\",version=\"{version}\",le=\"{le_text}\"}} {value} {}",
                        scenario.name,
                        start + k * STEP_SECONDS
                    );
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The data's start: three hours ago, on a whole minute.
fn data_start() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    (now - 3 * 3600) / 60 * 60
}

/// checkout's checks (policies/checkout.yaml) over one scenario's series; `canary` is the
/// canary's label value, YAML single-quoted.
fn policy_yaml(scenario: &str, canary: &str) -> String {
    format!(
        r#"service: checkout
traffic:
  label: version
  canary: '{canary}'
  baseline: stable
  selector: 'scenario="{scenario}"'
metrics:
  prometheus:
    timeout: 5s
    retries: 1
rollout:
  interval: {INTERVAL}s
  min-requests: 1000
  alpha: 1%
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 0.5%
    baseline:
      max-increase: 20%
  - name: latency
    latency:
      histogram: http_request_duration_seconds
      quantile: 0.95
    slo:
      max: 300ms
    baseline:
      max-increase: 25%
  - name: no-restarts
    query:
      promql: 'sum(increase(kube_pod_container_status_restarts_total{{ {{{{canary_selector}}}} }}[{{{{window}}}}])) or vector(0)'
    slo:
      max: 0
"#
    )
}

/// `canary analyze` over the analysed range of one scenario; the run and its JSON report.
fn analyze(
    prometheus: &Prometheus,
    dir: &Path,
    scenario: &str,
    canary_value: &str,
    extra: &[&str],
) -> (Run, Value) {
    let policy = write_policy(
        dir,
        &format!("{scenario}.yaml"),
        &policy_yaml(scenario, canary_value),
    );
    let report = dir.join(format!("{scenario}.report.json"));
    let start = (data_start_of(dir) + FROM).to_string();
    let end = (data_start_of(dir) + TO).to_string();
    let output = format!("json:{}", report.display());
    let url = prometheus.url();
    let mut args = vec![
        "analyze",
        "--policy",
        policy.to_str().unwrap(),
        "--prometheus",
        &url,
        "--start",
        &start,
        "--end",
        &end,
        "--output",
        &output,
    ];
    args.extend_from_slice(extra);
    let run = canary(&args, &[]);
    eprintln!("{scenario}: {}", run.stdout);
    let report = if report.exists() {
        read_json(&report)
    } else {
        Value::Null
    };
    (run, report)
}

/// The data's start is fixed once per test and kept beside the policies.
fn data_start_of(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join("start"))
        .expect("the data start was saved")
        .trim()
        .parse()
        .expect("a number")
}

/// Prometheus over the backfilled scenarios, and a directory for policies and reports.
fn backfilled() -> (Prometheus, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let start = data_start();
    std::fs::write(dir.path().join("start"), start.to_string()).unwrap();
    (Prometheus::backfilled(&openmetrics(start)), dir)
}

#[test]
fn backfilled_scenarios_give_pass_fail_fail_and_nodata_with_their_exit_codes() {
    let (prometheus, dir) = backfilled();

    let (run, report) = analyze(&prometheus, dir.path(), "healthy", "canary", &[]);
    assert_eq!(run.code, 0, "healthy\n{}", run.all());
    assert_eq!(report["verdict"], "pass", "{report}");
    for name in [
        "errors/slo",
        "errors/baseline",
        "latency/slo",
        "latency/baseline",
        "no-restarts/slo",
    ] {
        assert_eq!(verdict_of(&report, name), "pass", "{name}: {report}");
    }
    assert!(
        run.stdout.contains("analyze checkout: PASS (exit 0)"),
        "{}",
        run.all()
    );
    assert_eq!(report["source"], format!("prometheus {}", prometheus.url()));

    let (run, report) = analyze(&prometheus, dir.path(), "errors-3x", "canary", &[]);
    assert_eq!(run.code, 1, "errors-3x\n{}", run.all());
    assert_eq!(report["verdict"], "fail", "{report}");
    assert_eq!(verdict_of(&report, "errors/baseline"), "fail", "{report}");
    assert_eq!(verdict_of(&report, "latency/baseline"), "pass", "{report}");
    assert!(
        !report["decided_at"].is_null(),
        "a failure is dated: {report}"
    );

    let (run, report) = analyze(&prometheus, dir.path(), "latency-p95-up", "canary", &[]);
    assert_eq!(run.code, 1, "latency-p95-up\n{}", run.all());
    assert_eq!(report["verdict"], "fail", "{report}");
    assert_eq!(verdict_of(&report, "latency/baseline"), "fail", "{report}");
    assert_eq!(verdict_of(&report, "errors/baseline"), "pass", "{report}");

    let (run, report) = analyze(&prometheus, dir.path(), "no-canary", "canary", &[]);
    assert_eq!(run.code, 3, "no-canary\n{}", run.all());
    assert_eq!(report["verdict"], "inconclusive", "{report}");
    assert_eq!(verdict_of(&report, "errors/baseline"), "nodata", "{report}");
    assert_eq!(verdict_of(&report, "latency/slo"), "nodata", "{report}");
}

/// Queries Prometheus has served so far, once its own counter has caught up with `expected`
/// (it counts a request just after answering it).
fn served(prometheus: &Prometheus, expected: f64) -> f64 {
    canary_tests::wait_until(std::time::Duration::from_secs(5), || {
        prometheus.query_requests() >= expected
    });
    prometheus.query_requests()
}

/// `analyze` of one scenario, recorded: the run, its report, its recording and the queries
/// Prometheus served for it.
fn analyze_counted(
    prometheus: &Prometheus,
    dir: &Path,
    scenario: &str,
    name: &str,
    extra: &[&str],
    expected_queries: Option<i64>,
) -> (Run, Value, Value, f64) {
    let recording = dir.join(format!("{scenario}.{name}.recording.json"));
    let record = recording.to_str().unwrap().to_owned();
    let before = prometheus.query_requests();
    let mut args = vec!["--record", record.as_str()];
    args.extend_from_slice(extra);
    let (run, report) = analyze(prometheus, dir, scenario, "canary", &args);
    let expected = before + expected_queries.unwrap_or(1) as f64;
    let queries = served(prometheus, expected) - before;
    (run, report, read_json(&recording), queries)
}

#[test]
fn a_past_window_is_read_with_one_query_per_counter_check_giving_the_numbers_of_one_per_tick() {
    let (prometheus, dir) = backfilled();
    for scenario in ["healthy", "errors-3x", "latency-p95-up", "no-canary"] {
        let (per_tick, per_tick_report, per_tick_ticks, per_tick_queries) = analyze_counted(
            &prometheus,
            dir.path(),
            scenario,
            "per-tick",
            &["--query-per-tick"],
            Some(CHECKS * TICKS),
        );
        // Two counter checks: one query each; the `query` check: one per tick.
        let (window, window_report, window_ticks, window_queries) = analyze_counted(
            &prometheus,
            dir.path(),
            scenario,
            "window",
            &[],
            Some(2 + TICKS),
        );
        assert_eq!(
            per_tick.code,
            window.code,
            "{scenario}\n{}\n{}",
            per_tick.all(),
            window.all()
        );
        assert_eq!(
            per_tick_report["verdict"], window_report["verdict"],
            "{scenario}"
        );
        assert_eq!(
            per_tick_report["decided_at"], window_report["decided_at"],
            "{scenario}"
        );
        // Every count, bucket, estimate, interval and e-value, to the last bit.
        assert_eq!(
            per_tick_ticks["ticks"], window_ticks["ticks"],
            "{scenario}: the ticks read both ways"
        );
        assert_eq!(
            per_tick_report["checks"], window_report["checks"],
            "{scenario}: the evidence"
        );
        if scenario == "no-canary" {
            // Plus, on both paths, the query that names the label values that exist, at
            // every tick, for the two counter checks.
            assert_eq!(
                per_tick_queries,
                (CHECKS * TICKS + 2 * TICKS) as f64,
                "{scenario}"
            );
            assert_eq!(window_queries, (2 + TICKS + 2 * TICKS) as f64, "{scenario}");
        } else {
            assert_eq!(
                per_tick_queries,
                (CHECKS * TICKS) as f64,
                "{scenario}: {CHECKS} checks × {TICKS} ticks, one query each"
            );
            assert_eq!(
                window_queries,
                (2 + TICKS) as f64,
                "{scenario}: one query per counter check, and the `query` check's per tick"
            );
        }
        eprintln!(
            "{scenario}: queries served by Prometheus: {per_tick_queries} one per check per tick \
             ({CHECKS} checks × {TICKS} ticks), {window_queries} reading the window"
        );
    }
}

#[test]
fn a_recorded_live_analysis_replays_to_the_same_verdict() {
    let (prometheus, dir) = backfilled();
    for scenario in ["healthy", "errors-3x", "no-canary"] {
        let recording = dir.path().join(format!("{scenario}.recording.json"));
        let record = recording.to_str().unwrap().to_owned();
        let (live, live_report) = analyze(
            &prometheus,
            dir.path(),
            scenario,
            "canary",
            &["--record", &record],
        );
        let recorded = read_json(&recording);
        assert_eq!(recorded["format"], "canary-recording/1");
        assert_eq!(recorded["ticks"].as_array().unwrap().len() as i64, TICKS);

        let policy = dir.path().join(format!("{scenario}.yaml"));
        let report = dir.path().join(format!("{scenario}.replay.json"));
        let output = format!("json:{}", report.display());
        let replay = canary(
            &[
                "analyze",
                "--policy",
                policy.to_str().unwrap(),
                "--input",
                &record,
                "--output",
                &output,
            ],
            &[],
        );
        let replay_report = read_json(&report);
        assert_eq!(
            replay.code,
            live.code,
            "{scenario}\n{}\n{}",
            live.all(),
            replay.all()
        );
        assert_eq!(replay_report["verdict"], live_report["verdict"]);
        assert_eq!(
            replay_report["checks"], live_report["checks"],
            "{scenario}: the same evidence"
        );
    }
}

#[test]
fn hostile_label_values_are_accepted_by_prometheus_and_select_nothing_extra() {
    let (prometheus, dir) = backfilled();
    // A canary value that would close the selector and add a series if pasted raw.
    let hostile = r#"x"} or vector(1) or {a="\"#;
    let recording = dir.path().join("hostile.recording.json");
    let record = recording.to_str().unwrap().to_owned();
    let (run, report) = analyze(
        &prometheus,
        dir.path(),
        "healthy",
        hostile,
        &["--record", &record],
    );
    // Prometheus parsed every query (no `error` verdicts from refused queries), and the canary
    // matched nothing: no data, exit 3.
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(verdict_of(&report, "errors/baseline"), "nodata", "{report}");
    assert_eq!(
        verdict_of(&report, "latency/baseline"),
        "nodata",
        "{report}"
    );
    assert_eq!(verdict_of(&report, "no-restarts/slo"), "pass", "{report}");
    let recorded = read_json(&recording);
    let last = recorded["ticks"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let errors = &last["readings"]["errors"];
    assert_eq!(errors["reading"], "no_data", "{errors}");
    let reason = errors["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no http_requests_total series for version=\"x\\\"} or vector(1)"),
        "only the canary is missing; the baseline was found: {reason}"
    );
    assert_eq!(last["readings"]["no-restarts"]["value"], 0.0, "{last}");

    // And `policy explain` shows the escaped query.
    let policy = dir.path().join("healthy.yaml");
    let explained = canary(&["policy", "explain", policy.to_str().unwrap()], &[]);
    assert_eq!(explained.code, 0, "{}", explained.all());
    assert!(
        explained
            .stdout
            .contains(r#"version=~"x\"\\} or vector\\(1\\) or \\{a=\"\\\\|stable""#),
        "{}",
        explained.stdout
    );
}
