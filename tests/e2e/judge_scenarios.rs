//! The judge on real data: `canary analyze` against a real Prometheus over backfilled series
//! where the textbook case does not hold — the baseline's series are missing, the versions'
//! histograms have different bucket layouts, two criteria fail at different ticks, and a
//! bursty counter makes `increase()` totals fall between ticks.
//!
//! The data: an hour of 15-second samples, three to two hours ago, of
//! `judge_requests_total{scenario, version, code}` and
//! `judge_request_duration_seconds_bucket{scenario, version, le}`. Unless a scenario says
//! otherwise, stable serves 30 requests/s and the canary 10, with 0.2 % errors and
//! log-normal latency (median 60 ms, σ 0.6) on Prometheus' default buckets. Counts are whole
//! (`floor(rate × t)`), so every run sees the same numbers.

use std::fmt::Write as _;
use std::path::Path;

use canary_tests::prometheus::Prometheus;
use serde_json::Value;

use crate::canary_run::{Run, canary, read_json, verdict_of, write_policy};
// The same hour of 15-second samples, and the same normal CDF, as the scenarios of
// `metrics_scenarios`.
use crate::metrics_scenarios::{FROM, SAMPLES, STEP_SECONDS, TO, normal_cdf};

const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// A layout that shares no bound with [`STABLE_FROM_25MS`].
const POWERS_OF_TWO: &[f64] = &[0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64];
/// Prometheus' defaults from 25 ms.
const STABLE_FROM_25MS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// A layout that shares 25, 50 and 100 ms with the defaults.
const DOUBLING_FROM_25MS: &[f64] = &[0.025, 0.05, 0.1, 0.2, 0.4, 0.8];
/// The analysed range, in seconds after the data's start: 30 minutes, a tick every 30 s.

#[derive(Clone, Copy)]
struct Version {
    rps: f64,
    error_rate: f64,
    latency_scale: f64,
    buckets: &'static [f64],
    /// Requests arrive in bursts, all of a 5-minute period's at its first sample, and the
    /// samples are 7 s off the analysis' ticks (as scrapes are): `increase()` over a growing
    /// window extrapolates each burst a little less as the window grows.
    bursty: bool,
}

const STABLE: Version = Version {
    rps: 30.0,
    error_rate: 0.002,
    latency_scale: 1.0,
    buckets: DEFAULT_BUCKETS,
    bursty: false,
};
const CANARY: Version = Version {
    rps: 10.0,
    ..STABLE
};

struct Scenario {
    name: &'static str,
    stable: Option<Version>,
    canary: Version,
}

const SCENARIOS: [Scenario; 6] = [
    // The stable pods are labelled differently: no series for version="stable".
    Scenario {
        name: "no-stable",
        stable: None,
        canary: Version {
            error_rate: 0.015,
            ..CANARY
        },
    },
    Scenario {
        name: "layouts-disjoint",
        stable: Some(Version {
            buckets: STABLE_FROM_25MS,
            ..STABLE
        }),
        canary: Version {
            buckets: POWERS_OF_TWO,
            ..CANARY
        },
    },
    Scenario {
        name: "layouts-shared",
        stable: Some(STABLE),
        canary: Version {
            buckets: DOUBLING_FROM_25MS,
            ..CANARY
        },
    },
    Scenario {
        name: "layouts-shared-slow",
        stable: Some(STABLE),
        canary: Version {
            buckets: DOUBLING_FROM_25MS,
            latency_scale: 1.5,
            ..CANARY
        },
    },
    Scenario {
        name: "both-worse",
        stable: Some(STABLE),
        canary: Version {
            error_rate: 0.006,
            latency_scale: 1.2,
            ..CANARY
        },
    },
    Scenario {
        name: "bursty",
        stable: Some(STABLE),
        canary: Version {
            bursty: true,
            ..CANARY
        },
    },
];

/// Requests served by sample `k`.
fn requests(version: Version, k: i64) -> f64 {
    let seconds = if version.bursty {
        // Everything of a 5-minute period arrives at its first sample.
        let period = 300 / STEP_SECONDS;
        ((k / period) + 1) * 300
    } else {
        STEP_SECONDS * k
    };
    (version.rps * seconds as f64).floor()
}

/// When sample `k` of `version` is taken.
fn sample_time(start: i64, version: Version, k: i64) -> i64 {
    start + k * STEP_SECONDS + if version.bursty { 7 } else { 0 }
}

/// The backfill of the scenarios named: every series' samples in time order, families
/// contiguous.
fn openmetrics(start: i64, names: &[&str]) -> String {
    let scenarios: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| names.contains(&s.name))
        .collect();
    let versions = |scenario: &Scenario| {
        let mut v = vec![("canary", scenario.canary)];
        if let Some(stable) = scenario.stable {
            v.push(("stable", stable));
        }
        v
    };
    let errors = |version: Version, k: i64| (requests(version, k) * version.error_rate).floor();
    let mut out =
        String::from("# HELP judge_requests Requests served.\n# TYPE judge_requests counter\n");
    for scenario in &scenarios {
        for (name, version) in versions(scenario) {
            for code in ["200", "500"] {
                for k in 0..SAMPLES {
                    let value = match code {
                        "200" => requests(version, k) - errors(version, k),
                        _ => errors(version, k),
                    };
                    let _ = writeln!(
                        out,
                        "judge_requests_total{{scenario=\"{}\",version=\"{name}\",code=\"{code}\"}} {value} {}",
                        scenario.name,
                        sample_time(start, version, k)
                    );
                }
            }
        }
    }
    out.push_str("# HELP judge_request_duration_seconds Time to serve a request.\n# TYPE judge_request_duration_seconds histogram\n");
    for scenario in &scenarios {
        for (name, version) in versions(scenario) {
            for le in version.buckets.iter().copied().chain([f64::INFINITY]) {
                let le_text = if le.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    le.to_string()
                };
                for k in 0..SAMPLES {
                    let n = requests(version, k);
                    let value = if le.is_infinite() {
                        n
                    } else {
                        let share = normal_cdf((le / (0.060 * version.latency_scale)).ln() / 0.6);
                        (n * share).floor()
                    };
                    let _ = writeln!(
                        out,
                        "judge_request_duration_seconds_bucket{{scenario=\"{}\",version=\"{name}\",le=\"{le_text}\"}} {value} {}",
                        scenario.name,
                        sample_time(start, version, k)
                    );
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn policy_yaml(scenario: &str) -> String {
    format!(
        r#"service: checkout
traffic:
  label: version
  canary: canary
  baseline: stable
  selector: 'scenario="{scenario}"'
metrics:
  prometheus:
    timeout: 5s
    retries: 1
rollout:
  interval: 30s
  min-requests: 1000
  alpha: 1%
checks:
  - name: errors
    error-rate:
      requests: judge_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 1%
    baseline:
      max-increase: 20%
  - name: latency
    latency:
      histogram: judge_request_duration_seconds
      quantile: 0.95
    slo:
      max: 300ms
    baseline:
      max-increase: 10%
"#
    )
}

struct Data {
    prometheus: Prometheus,
    dir: tempfile::TempDir,
    start: i64,
}

/// Prometheus over the backfilled scenarios named.
fn backfilled(names: &[&str]) -> Data {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let start = (now - 3 * 3600) / 60 * 60;
    Data {
        prometheus: Prometheus::backfilled(&openmetrics(start, names)),
        dir,
        start,
    }
}

/// `canary analyze` over the analysed range of one scenario: the run and its JSON report.
fn analyze(data: &Data, scenario: &str) -> (Run, Value) {
    let dir: &Path = data.dir.path();
    let policy = write_policy(dir, &format!("{scenario}.yaml"), &policy_yaml(scenario));
    let report = dir.join(format!("{scenario}.report.json"));
    let (start, end) = (
        (data.start + FROM).to_string(),
        (data.start + TO).to_string(),
    );
    let output = format!("json:{}", report.display());
    let url = data.prometheus.url();
    let run = canary(
        &[
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
        ],
        &[],
    );
    eprintln!("{scenario}: {}", run.stdout);
    let report = if report.exists() {
        read_json(&report)
    } else {
        Value::Null
    };
    (run, report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[test]
fn without_the_baselines_series_the_canarys_own_bounds_are_judged() {
    let data = backfilled(&["no-stable"]);
    // 1.5 % errors against a 1 % bound fails; the comparisons have no data and name the
    // selector that matched nothing.
    let (run, report) = analyze(&data, "no-stable");
    assert_eq!(run.code, 1, "no-stable\n{}", run.all());
    assert_eq!(verdict_of(&report, "errors/slo"), "fail", "{report}");
    assert_eq!(verdict_of(&report, "latency/slo"), "pass", "{report}");
    for name in ["errors/baseline", "latency/baseline"] {
        let result = check(&report, name);
        assert_eq!(result["verdict"], "nodata", "{report}");
        let reason = result["reason"].as_str().unwrap();
        assert!(reason.contains("version=\"stable\""), "{name}: {reason}");
    }
}

#[test]
fn histograms_with_different_layouts_are_compared_on_the_bounds_they_share() {
    let data = backfilled(&["layouts-disjoint", "layouts-shared", "layouts-shared-slow"]);
    // No bound in common: an error naming both layouts, never "no data".
    let (run, report) = analyze(&data, "layouts-disjoint");
    let result = check(&report, "latency/baseline");
    assert_eq!(result["verdict"], "error", "{}\n{report}", run.all());
    let reason = result["reason"].as_str().unwrap();
    assert!(
        reason.contains("canary le 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64")
            && reason.contains("baseline le 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10"),
        "{reason}"
    );
    assert!(!reason.contains("no canary requests"), "{reason}");
    assert_eq!(verdict_of(&report, "latency/slo"), "pass", "{report}");
    assert_eq!(run.code, 3, "{}", run.all());

    // Some bounds in common: compared on those. A healthy canary passes, a slower one fails.
    let (run, report) = analyze(&data, "layouts-shared");
    assert_eq!(run.code, 0, "layouts-shared\n{}", run.all());
    let compared: Vec<f64> = check(&report, "latency/baseline")["evidence"]["bounds"]
        .as_array()
        .expect("the bounds compared")
        .iter()
        .map(|b| b["bound"].as_f64().unwrap())
        .collect();
    assert!(
        !compared.is_empty() && compared.iter().all(|b| [0.025, 0.05, 0.1].contains(b)),
        "{compared:?}"
    );
    let (run, report) = analyze(&data, "layouts-shared-slow");
    assert_eq!(run.code, 1, "layouts-shared-slow\n{}", run.all());
    assert_eq!(verdict_of(&report, "latency/baseline"), "fail", "{report}");
}

#[test]
fn each_criterion_says_when_it_decided_and_shows_the_tests_own_counts() {
    let data = backfilled(&["both-worse"]);
    let (run, report) = analyze(&data, "both-worse");
    assert_eq!(run.code, 1, "both-worse\n{}", run.all());
    let errors = check(&report, "errors/baseline");
    let latency = check(&report, "latency/baseline");
    assert_eq!(errors["verdict"], "fail", "{report}");
    assert_eq!(latency["verdict"], "fail", "{report}");
    let (errors_at, latency_at) = (
        errors["decided_at"].as_str().expect("a decided_at"),
        latency["decided_at"].as_str().expect("a decided_at"),
    );
    assert_ne!(errors_at, latency_at, "{report}");
    assert_eq!(
        report["decided_at"].as_str(),
        Some(errors_at.min(latency_at)),
        "{report}"
    );
    let evidence = &latency["evidence"];
    let leading = evidence["bounds"]
        .as_array()
        .expect("the bounds compared")
        .iter()
        .max_by(|a, b| {
            a["e_value"]
                .as_f64()
                .unwrap_or(f64::MAX)
                .total_cmp(&b["e_value"].as_f64().unwrap_or(f64::MAX))
        })
        .unwrap();
    for field in ["canary_n", "canary_events", "baseline_n", "baseline_events"] {
        assert_eq!(evidence[field], leading[field], "{field}: {evidence}");
    }
    assert!(
        evidence["measure"]
            .as_str()
            .unwrap()
            .contains("counted since"),
        "{evidence}"
    );
}

#[test]
fn totals_that_fall_between_ticks_are_counted_and_warned_about() {
    let data = backfilled(&["bursty"]);
    let (run, report) = analyze(&data, "bursty");
    let fell = &check(&report, "errors/baseline")["evidence"]["counter_decreases"];
    assert!(
        fell["ticks"].as_u64().unwrap_or(0) > 0,
        "{}\n{report}",
        run.all()
    );
    let warnings = report["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| {
            let w = w.as_str().unwrap();
            w.starts_with("errors/baseline: the cumulative totals fell at")
                && w.contains("not used")
        }),
        "{}\n{report}",
        run.all()
    );
}
