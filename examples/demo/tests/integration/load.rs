//! The load generator: what it counts, how it stops, how it bounds itself.

use std::time::Duration;

use canary_demo::{DemoService, DemoServiceConfig, LoadConfig, LoadGenerator};

use crate::util::{ANY_LOOPBACK_PORT, TestClient, closed_port_url, eventually, within};

#[tokio::test]
async fn counts_answers_by_status_and_agrees_with_the_service() {
    let service = DemoService::spawn(
        DemoServiceConfig::canary()
            .with_base_latency(Duration::ZERO)
            .with_error_rate(0.5)
            .with_seed(3),
        ANY_LOOPBACK_PORT,
    )
    .await
    .unwrap();
    let config = LoadConfig::new(format!("{}/api/load", service.base_url()), 200.0)
        .with_duration(Duration::from_millis(500));
    let load = LoadGenerator::start(config).unwrap();
    let summary = within("the load run", load.wait()).await.unwrap();

    assert!(summary.sent >= 1, "{summary}");
    // Evenly spaced arrivals in [0, 0.5 s) at 200/s: at most 100 of them.
    assert!(summary.sent + summary.skipped <= 100, "{summary}");
    assert_eq!(summary.in_flight, 0);
    assert_eq!(summary.completed, summary.sent, "{summary}");
    assert_eq!(summary.transport_errors + summary.timeouts, 0, "{summary}");
    assert_eq!(
        summary.status_count(200) + summary.status_count(500),
        summary.completed
    );
    assert_eq!(summary.server_errors(), summary.status_count(500));
    assert_eq!(summary.failures(), summary.status_count(500));

    let scrape = TestClient::new().scrape(&service.metrics_url()).await;
    assert_eq!(
        scrape.requests("canary", "200"),
        summary.status_count(200) as f64
    );
    assert_eq!(
        scrape.requests("canary", "500"),
        summary.status_count(500) as f64
    );
}

#[tokio::test]
async fn stop_ends_an_unbounded_run_and_waits_for_requests_in_flight() {
    let service = DemoService::spawn(DemoServiceConfig::stable(), ANY_LOOPBACK_PORT)
        .await
        .unwrap();
    let load = LoadGenerator::start(LoadConfig::new(service.base_url(), 50.0)).unwrap();
    eventually("a few answers", || async { load.snapshot().completed >= 5 }).await;
    assert!(!load.is_finished());
    load.set_rps(80.0).unwrap();
    assert_eq!(load.rps(), 80.0);
    assert!(load.set_rps(0.0).is_err());

    let summary = within("stopping", load.stop()).await.unwrap();
    assert!(summary.completed >= 5, "{summary}");
    assert_eq!(summary.in_flight, 0, "{summary}");
    assert_eq!(summary.completed, summary.status_count(200), "{summary}");
    // Nothing is sent after the stop.
    let scrape = TestClient::new().scrape(&service.metrics_url()).await;
    assert_eq!(scrape.requests("stable", "200"), summary.completed as f64);
}

#[tokio::test]
async fn an_unreachable_target_counts_transport_errors() {
    let config =
        LoadConfig::new(closed_port_url(), 100.0).with_duration(Duration::from_millis(200));
    let summary = within("the load run", LoadGenerator::start(config).unwrap().wait())
        .await
        .unwrap();
    assert!(summary.transport_errors >= 1, "{summary}");
    assert_eq!(summary.completed, 0, "{summary}");
    assert_eq!(summary.failures(), summary.transport_errors);
}

#[tokio::test]
async fn arrivals_beyond_max_in_flight_are_skipped_not_queued() {
    let slow = DemoService::spawn(
        DemoServiceConfig::canary()
            .with_base_latency(Duration::ZERO)
            .with_added_latency(Duration::from_secs(2)),
        ANY_LOOPBACK_PORT,
    )
    .await
    .unwrap();
    // 30 arrivals in 300 ms; every request takes at least 2 s, so only the first two
    // ever get a slot.
    let config = LoadConfig::new(slow.base_url(), 100.0)
        .with_duration(Duration::from_millis(300))
        .with_max_in_flight(2);
    let summary = within("the load run", LoadGenerator::start(config).unwrap().wait())
        .await
        .unwrap();
    assert_eq!(summary.sent, 2, "{summary}");
    assert!(summary.skipped >= 1, "{summary}");
    assert_eq!(summary.status_count(200), 2, "{summary}");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let slow = DemoService::spawn(
        DemoServiceConfig::canary().with_added_latency(Duration::from_secs(5)),
        ANY_LOOPBACK_PORT,
    )
    .await
    .unwrap();
    let config = LoadConfig::new(slow.base_url(), 10.0)
        .with_duration(Duration::from_millis(150))
        .with_request_timeout(Duration::from_millis(100));
    let summary = within("the load run", LoadGenerator::start(config).unwrap().wait())
        .await
        .unwrap();
    assert!(summary.timeouts >= 1, "{summary}");
    assert_eq!(summary.timeouts, summary.sent, "{summary}");
}

#[tokio::test]
async fn bad_configs_name_the_field() {
    for (config, field) in [
        (LoadConfig::new("http://127.0.0.1:1/", 0.0), "rps"),
        (LoadConfig::new("http://127.0.0.1:1/", f64::NAN), "rps"),
        (LoadConfig::new("ftp://127.0.0.1:1/", 1.0), "target"),
        (
            LoadConfig::new("http://127.0.0.1:1/", 1.0).with_max_in_flight(0),
            "max_in_flight",
        ),
    ] {
        let error = LoadGenerator::start(config).expect_err("bad config");
        assert!(error.to_string().contains(field), "{error}");
    }
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let error =
        LoadGenerator::start(LoadConfig::new("http://127.0.0.1:1/", 1.0)).expect_err("no runtime");
    assert!(matches!(error, canary_demo::Error::NoRuntime), "{error}");
}
