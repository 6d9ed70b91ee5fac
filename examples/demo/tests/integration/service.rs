//! The demo service: what it serves, what it counts, the faults it injects.

use std::time::Duration;

use canary_demo::{DemoService, DemoServiceConfig, Faults, RunningService};

use crate::util::{ANY_LOOPBACK_PORT, TestClient, get_many, within};

/// A service that answers without waiting, so tests that count requests are quick.
fn instant(config: DemoServiceConfig) -> DemoServiceConfig {
    config.with_base_latency(Duration::ZERO)
}

async fn spawn(config: DemoServiceConfig) -> RunningService {
    within(
        "starting the service",
        DemoService::spawn(config, ANY_LOOPBACK_PORT),
    )
    .await
    .expect("service starts")
}

#[tokio::test]
async fn exports_both_status_codes_and_the_histogram_before_any_request() {
    let service = spawn(DemoServiceConfig::canary()).await;
    let client = TestClient::new();
    let scrape = client.scrape(&service.metrics_url()).await;

    assert_eq!(scrape.type_of("http_requests_total"), Some("counter"));
    assert_eq!(
        scrape.type_of("http_request_duration_seconds"),
        Some("histogram")
    );
    assert_eq!(scrape.requests("canary", "200"), 0.0);
    assert_eq!(scrape.requests("canary", "500"), 0.0);
    assert_eq!(scrape.duration_count("canary"), 0.0);
    assert_eq!(
        scrape.duration_bucket_bounds("canary"),
        [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
            "+Inf"
        ]
    );
    assert!(scrape.value("process_start_time_seconds", &[]) > 1.0e9);
    assert_eq!(
        service.metrics_text(),
        client.get(&service.metrics_url()).await.body
    );
    within("shutdown", service.shutdown())
        .await
        .expect("clean shutdown");
}

#[tokio::test]
async fn counts_every_served_request_and_error_and_nothing_else() {
    let service = spawn(instant(DemoServiceConfig::stable()).with_seed(1)).await;
    let client = TestClient::new();
    let base = service.base_url();

    for _ in 0..20 {
        let reply = client.get(&format!("{base}/")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "served by stable\n");
        assert_eq!(reply.header("x-demo-version"), Some("stable"));
    }
    for i in 0..5 {
        let reply = client
            .get(&format!("{base}/api/orders/{i}?expand=items"))
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // Not served requests: health checks, scrapes, fault control, unknown paths.
    assert_eq!(client.get(&format!("{base}/healthz")).await.status, 200);
    assert_eq!(client.get(&format!("{base}/nope")).await.status, 404);
    assert_eq!(client.get(&format!("{base}/fault")).await.status, 200);
    client.get(&service.metrics_url()).await;

    service
        .set_faults(Faults {
            error_rate: 1.0,
            added_latency: Duration::ZERO,
        })
        .expect("valid faults");
    for _ in 0..7 {
        let reply = client.get(&format!("{base}/api/checkout")).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.body, "stable: injected error\n");
    }

    let scrape = client.scrape(&service.metrics_url()).await;
    assert_eq!(scrape.requests("stable", "200"), 25.0);
    assert_eq!(scrape.requests("stable", "500"), 7.0);
    assert_eq!(scrape.duration_count("stable"), 32.0);
    assert_eq!(scrape.duration_bucket("stable", "+Inf"), 32.0);
    within("shutdown", service.shutdown())
        .await
        .expect("clean shutdown");
}

#[tokio::test]
async fn half_the_requests_fail_at_an_error_rate_of_one_half() {
    let service = spawn(
        instant(DemoServiceConfig::canary())
            .with_error_rate(0.5)
            .with_seed(42),
    )
    .await;
    let client = TestClient::new();
    const REQUESTS: usize = 400;

    let replies = get_many(
        &client,
        &format!("{}/api/pay", service.base_url()),
        REQUESTS,
        8,
    )
    .await;
    let errors = replies.iter().filter(|reply| reply.status == 500).count();
    let successes = replies.iter().filter(|reply| reply.status == 200).count();
    assert_eq!(errors + successes, REQUESTS);
    // Seeded, so the count is the same every run; the band is ±6 standard deviations
    // of Binomial(400, 0.5) anyway, so another seed or rand version still passes.
    assert!(
        (140..=260).contains(&errors),
        "{errors} errors of {REQUESTS}"
    );

    let scrape = client.scrape(&service.metrics_url()).await;
    assert_eq!(scrape.requests("canary", "500"), errors as f64);
    assert_eq!(scrape.requests("canary", "200"), successes as f64);
}

#[tokio::test]
async fn the_same_seed_fails_the_same_number_of_requests() {
    let client = TestClient::new();
    let mut error_counts = Vec::new();
    for _ in 0..2 {
        let service = spawn(
            instant(DemoServiceConfig::canary())
                .with_error_rate(0.3)
                .with_seed(7),
        )
        .await;
        // Concurrent, so requests reach the random draws in a different order each run.
        get_many(&client, &service.base_url(), 100, 10).await;
        let scrape = client.scrape(&service.metrics_url()).await;
        error_counts.push(scrape.requests("canary", "500"));
    }
    assert_eq!(error_counts[0], error_counts[1]);
}

#[tokio::test]
async fn added_latency_moves_every_request_above_it_in_the_histogram() {
    let client = TestClient::new();
    let healthy =
        spawn(DemoServiceConfig::stable().with_base_latency(Duration::from_millis(1))).await;
    let slow = spawn(
        DemoServiceConfig::canary()
            .with_base_latency(Duration::from_millis(1))
            .with_added_latency(Duration::from_millis(200)),
    )
    .await;
    const REQUESTS: usize = 20;
    get_many(&client, &healthy.base_url(), REQUESTS, 10).await;
    get_many(&client, &slow.base_url(), REQUESTS, 10).await;

    let healthy_scrape = client.scrape(&healthy.metrics_url()).await;
    let slow_scrape = client.scrape(&slow.metrics_url()).await;
    assert_eq!(slow_scrape.duration_count("canary"), REQUESTS as f64);
    // A sleep never ends early: every slow request took at least 200 ms, so none is in
    // a bucket at or below 0.1 s, whatever the machine's load.
    for le in ["0.005", "0.01", "0.025", "0.05", "0.1"] {
        assert_eq!(slow_scrape.duration_bucket("canary", le), 0.0, "le={le}");
    }
    assert!(slow_scrape.duration_sum("canary") >= 0.2 * REQUESTS as f64);
    // 1 ms against 201 ms: the healthy one is faster by any measure.
    assert!(
        healthy_scrape.duration_sum("stable") < slow_scrape.duration_sum("canary"),
        "healthy {} s, slow {} s",
        healthy_scrape.duration_sum("stable"),
        slow_scrape.duration_sum("canary")
    );
    assert!(
        healthy_scrape.duration_bucket("stable", "0.1")
            > slow_scrape.duration_bucket("canary", "0.1")
    );
}

#[tokio::test]
async fn faults_are_read_and_changed_over_http() {
    let service = spawn(instant(DemoServiceConfig::canary())).await;
    let client = TestClient::new();
    let fault_url = format!("{}/fault", service.base_url());

    let reply = client.get(&fault_url).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reply.body).unwrap(),
        serde_json::json!({"error_rate": 0.0, "added_latency_ms": 0})
    );

    let reply = client
        .post(
            &fault_url,
            r#"{"error_rate": 0.05, "added_latency_ms": 200}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let expected = serde_json::json!({"error_rate": 0.05, "added_latency_ms": 200});
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reply.body).unwrap(),
        expected
    );
    let reply = client.get(&fault_url).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reply.body).unwrap(),
        expected
    );
    assert_eq!(
        service.faults(),
        Faults {
            error_rate: 0.05,
            added_latency: Duration::from_millis(200)
        }
    );

    // A partial update keeps the other field.
    let reply = client.post(&fault_url, r#"{"added_latency_ms": 0}"#).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(service.faults().error_rate, 0.05);
    assert_eq!(service.faults().added_latency, Duration::ZERO);

    // Mistakes are 400s that say what was wrong, and change nothing.
    for (body, expected_message) in [
        (r#"{"error_rate": 2}"#, "error_rate"),
        (r#"{"error_rate": "high"}"#, "invalid fault body"),
        (r#"{"errors": 0.5}"#, "unknown field"),
        ("not json", "invalid fault body"),
    ] {
        let reply = client.post(&fault_url, body).await;
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert!(
            reply.body.contains(expected_message),
            "{body}: {}",
            reply.body
        );
    }
    assert_eq!(service.faults().error_rate, 0.05);

    // The cloneable control changes the same service.
    let control = service.fault_control();
    control.set_faults(Faults::NONE).expect("valid faults");
    assert_eq!(service.faults(), Faults::NONE);
    assert!(
        control
            .set_faults(Faults {
                error_rate: -0.1,
                added_latency: Duration::ZERO
            })
            .is_err()
    );
}

#[tokio::test]
async fn shutdown_waits_for_the_server_and_is_clean() {
    let service = spawn(instant(DemoServiceConfig::stable())).await;
    let client = TestClient::new();
    assert_eq!(client.get(&service.base_url()).await.status, 200);
    // The client's pooled keep-alive connection must not hold the shutdown up.
    within("shutdown", service.shutdown())
        .await
        .expect("clean shutdown");
}

#[tokio::test]
async fn a_bad_config_is_refused_before_binding() {
    let error = DemoService::spawn(
        DemoServiceConfig::new("canary v2").with_error_rate(0.1),
        ANY_LOOPBACK_PORT,
    )
    .await
    .expect_err("space in version");
    assert!(error.to_string().contains("version"), "{error}");
}
