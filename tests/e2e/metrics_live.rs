//! Live: a real Prometheus scraping a stable and a canary demo service (the canary answering
//! 5 % of requests with 500) while load flows to both, and the scrape source reading the same
//! services' `/metrics` directly. Both sources, over the same ticks, agree on the counts
//! within one scrape interval's worth of requests.

use std::process::Command;
use std::time::Duration;

use canary_tests::binary;
use canary_tests::process::ChildGuard;
use canary_tests::prometheus::Prometheus;
use serde_json::Value;

use crate::canary_run::{canary, read_json, write_policy};

/// Prometheus' scrape interval.
const SCRAPE_SECONDS: f64 = 1.0;
/// Requests per second to each version.
const RPS: f64 = 40.0;
/// The canary's injected error rate.
const CANARY_ERRORS: f64 = 0.05;

/// Starts one version of the demo service; returns it and its `host:port`.
fn demo_service(version: &str, error_rate: f64) -> (ChildGuard, String) {
    let mut service = ChildGuard::spawn(
        &format!("canary-demo-service {version}"),
        Command::new(binary("canary-demo-service")).args([
            "serve",
            "--version",
            version,
            "--listen",
            "127.0.0.1:0",
            "--error-rate",
            &error_rate.to_string(),
            "--base-latency",
            "5ms",
            "--seed",
            "7",
        ]),
    );
    let line = service.wait_for_line("listening on", Duration::from_secs(30));
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (service, address)
}

fn load(address: &str) -> ChildGuard {
    ChildGuard::spawn(
        "canary-demo-service load",
        Command::new(binary("canary-demo-service")).args([
            "load",
            "--target",
            &format!("http://{address}/api/orders"),
            "--rps",
            &RPS.to_string(),
            "--duration",
            "90s",
        ]),
    )
}

fn policy(metrics: &str) -> String {
    format!(
        r#"service: demo
traffic:
  label: version
  canary: canary
  baseline: stable
metrics:
{metrics}
rollout:
  interval: 2s
  min-requests: 100
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 1%
  - name: latency
    latency:
      histogram: http_request_duration_seconds
      quantile: 0.95
    slo:
      max: 1s
"#
    )
}

/// `(requests, errors)` of one version at one tick.
type Counts = (f64, f64);

/// The error-rate counts of every tick of a recording: (at, canary, baseline).
fn counts(recording: &Value) -> Vec<(String, Counts, Counts)> {
    recording["ticks"]
        .as_array()
        .expect("ticks")
        .iter()
        .map(|tick| {
            let errors = &tick["readings"]["errors"];
            assert_eq!(errors["reading"], "observed", "{tick}");
            let pair = |v: &Value| {
                (
                    v["requests"].as_f64().expect("requests"),
                    v["errors"].as_f64().expect("errors"),
                )
            };
            (
                tick["at"].as_str().unwrap().to_owned(),
                pair(&errors["canary"]),
                pair(&errors["baseline"]),
            )
        })
        .collect()
}

#[test]
fn prometheus_and_the_scrape_source_agree_on_live_demo_services() {
    let (_stable, stable) = demo_service("stable", 0.0);
    let (_canary, canary_address) = demo_service("canary", CANARY_ERRORS);
    let prometheus = Prometheus::scraping(
        "demo",
        &[stable.clone(), canary_address.clone()],
        Duration::from_secs_f64(SCRAPE_SECONDS),
    );
    assert!(
        canary_tests::wait_until(Duration::from_secs(30), || prometheus.targets_up() >= 2),
        "Prometheus never scraped both services:\n{}",
        prometheus.log()
    );
    let _load_stable = load(&stable);
    let _load_canary = load(&canary_address);
    // Prometheus has seen the load on both versions (a rate needs two samples of it) before
    // the first tick, so that both sources count from the same start.
    let both_loaded = || {
        let rates = prometheus.instant_values("sum by (version) (rate(http_requests_total[3s]))");
        rates.len() == 2 && rates.iter().all(|&rate| rate > 0.0)
    };
    assert!(
        canary_tests::wait_until(Duration::from_secs(30), both_loaded),
        "Prometheus never saw the load on both versions:\n{}",
        prometheus.log()
    );

    let dir = tempfile::tempdir().unwrap();
    let scrape_policy = write_policy(
        dir.path(),
        "scrape.yaml",
        &policy(&format!(
            "  scrape:\n    canary: ['http://{canary_address}/metrics']\n    baseline: ['http://{stable}/metrics']\n    timeout: 2s"
        )),
    );
    let scrape_recording = dir.path().join("scrape.json");
    let run = canary(
        &[
            "analyze",
            "--policy",
            scrape_policy.to_str().unwrap(),
            "--window",
            "20s",
            "--record",
            scrape_recording.to_str().unwrap(),
        ],
        &[],
    );
    assert!(matches!(run.code, 0 | 1 | 3), "{}", run.all());
    let scraped = read_json(&scrape_recording);

    // The same range from Prometheus, once it has scraped both services past its end.
    let end_seconds = scraped["ticks"].as_array().unwrap().last().unwrap()["at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond() as f64
        / 1000.0;
    let scraped_past_end = || {
        let newest = prometheus.instant_values("timestamp(up{job=\"demo\"})");
        newest.len() == 2
            && newest
                .iter()
                .all(|&at| at > end_seconds + 2.0 * SCRAPE_SECONDS)
    };
    assert!(
        canary_tests::wait_until(Duration::from_secs(30), scraped_past_end),
        "Prometheus did not scrape past the recording's end:\n{}",
        prometheus.log()
    );
    let prom_policy = write_policy(
        dir.path(),
        "prometheus.yaml",
        &policy("  prometheus:\n    timeout: 5s\n    retries: 1"),
    );
    let prom_recording = dir.path().join("prometheus.json");
    let ticks = scraped["ticks"].as_array().unwrap();
    let start = scraped["started_at"].as_str().unwrap().to_owned();
    let end = ticks.last().unwrap()["at"].as_str().unwrap().to_owned();
    let url = prometheus.url();
    let run = canary(
        &[
            "analyze",
            "--policy",
            prom_policy.to_str().unwrap(),
            "--prometheus",
            &url,
            "--start",
            &start,
            "--end",
            &end,
            "--record",
            prom_recording.to_str().unwrap(),
        ],
        &[],
    );
    assert!(matches!(run.code, 0 | 1 | 3), "{}", run.all());
    let queried = read_json(&prom_recording);

    let scraped = counts(&scraped);
    let queried = counts(&queried);
    assert_eq!(scraped.len(), queried.len(), "the same ticks");
    let tolerance = RPS * SCRAPE_SECONDS;
    let mut report = String::new();
    for ((at, sc, sb), (at2, qc, qb)) in scraped.iter().zip(&queried) {
        assert_eq!(at, at2, "the same tick times");
        report.push_str(&format!(
            "{at}: canary scrape {:.0}/{:.0} prometheus {:.1}/{:.1}; stable scrape {:.0}/{:.0} prometheus {:.1}/{:.1}\n",
            sc.1, sc.0, qc.1, qc.0, sb.1, sb.0, qb.1, qb.0
        ));
    }
    eprintln!("{report}");
    for ((at, sc, sb), (_, qc, qb)) in scraped.iter().zip(&queried) {
        for (what, a, b) in [
            ("canary requests", sc.0, qc.0),
            ("canary errors", sc.1, qc.1),
            ("stable requests", sb.0, qb.0),
            ("stable errors", sb.1, qb.1),
        ] {
            assert!(
                (a - b).abs() <= tolerance,
                "{at}: {what}: scrape {a} vs Prometheus {b}, more than one scrape interval ({tolerance} requests) apart\n{report}"
            );
        }
    }
    // The injected errors are there, at about their rate, in both.
    let (_, scrape_canary, scrape_stable) = scraped.last().unwrap();
    let (_, prom_canary, _) = queried.last().unwrap();
    assert!(scrape_canary.0 > 10.0 * RPS, "{report}");
    assert_eq!(scrape_stable.1, 0.0, "{report}");
    for (requests, errors) in [scrape_canary, prom_canary] {
        let rate = errors / requests;
        assert!(
            (0.02..0.1).contains(&rate),
            "canary error rate {rate}\n{report}"
        );
    }
}
