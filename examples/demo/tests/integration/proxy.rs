//! The weighted proxy: the split, forwarding, and upstream failures.

use std::time::Duration;

use axum::body::Body;
use axum::http::Method;
use canary_demo::{
    DemoService, DemoServiceConfig, ProxyConfig, RoutedCounts, RunningProxy, RunningService,
    WeightedProxy,
};

use crate::util::{ANY_LOOPBACK_PORT, TestClient, closed_port_url, within};

struct Stack {
    stable: RunningService,
    canary: RunningService,
    proxy: RunningProxy,
}

async fn stack(canary_weight: u8) -> Stack {
    let spawn = |config: DemoServiceConfig| {
        DemoService::spawn(config.with_base_latency(Duration::ZERO), ANY_LOOPBACK_PORT)
    };
    let stable = within("stable", spawn(DemoServiceConfig::stable()))
        .await
        .unwrap();
    let canary = within("canary", spawn(DemoServiceConfig::canary()))
        .await
        .unwrap();
    let config =
        ProxyConfig::new(stable.base_url(), canary.base_url()).with_canary_weight(canary_weight);
    let proxy = within("proxy", WeightedProxy::spawn(config, ANY_LOOPBACK_PORT))
        .await
        .unwrap();
    Stack {
        stable,
        canary,
        proxy,
    }
}

/// Sends `count` requests through the proxy one by one and counts who answered, by
/// the body and by the proxy's header (which must agree).
async fn canary_answers(client: &TestClient, proxy: &RunningProxy, count: usize) -> usize {
    let mut canary = 0;
    for i in 0..count {
        let reply = client
            .get(&format!("{}/api/items/{i}", proxy.base_url()))
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let version = reply
            .header("x-demo-version")
            .expect("version header")
            .to_owned();
        assert_eq!(reply.header("x-canary-upstream"), Some(version.as_str()));
        assert_eq!(reply.body, format!("served by {version}\n"));
        if version == "canary" {
            canary += 1;
        }
    }
    canary
}

#[tokio::test]
async fn weight_0_sends_nothing_to_the_canary_and_100_everything() {
    let stack = stack(0).await;
    let client = TestClient::new();
    assert_eq!(stack.proxy.canary_weight(), 0);
    assert_eq!(canary_answers(&client, &stack.proxy, 50).await, 0);

    stack.proxy.set_canary_weight(100).unwrap();
    assert_eq!(stack.proxy.canary_weight(), 100);
    assert_eq!(canary_answers(&client, &stack.proxy, 50).await, 50);

    assert_eq!(
        stack.proxy.routed_counts(),
        RoutedCounts {
            stable: 50,
            canary: 50,
            upstream_failures: 0
        }
    );
    // The services counted the same requests the proxy routed.
    let stable_scrape = client.scrape(&stack.stable.metrics_url()).await;
    let canary_scrape = client.scrape(&stack.canary.metrics_url()).await;
    assert_eq!(stable_scrape.requests("stable", "200"), 50.0);
    assert_eq!(canary_scrape.requests("canary", "200"), 50.0);
}

#[tokio::test]
async fn weight_30_sends_30_percent_to_the_canary() {
    let stack = stack(30).await;
    let client = TestClient::new();
    // The split is deterministic (exactly 30 in every 100); the band only guards
    // against a future change to a random split.
    let canary = canary_answers(&client, &stack.proxy, 200).await;
    assert!(
        (50..=70).contains(&canary),
        "{canary} of 200 went to the canary"
    );
    let canary_scrape = client.scrape(&stack.canary.metrics_url()).await;
    assert_eq!(canary_scrape.requests("canary", "200"), canary as f64);
}

#[tokio::test]
async fn weights_change_through_the_cloneable_control_and_above_100_is_refused() {
    let stack = stack(10).await;
    let control = stack.proxy.weight_control();
    control.set_canary_weight(25).unwrap();
    assert_eq!(stack.proxy.canary_weight(), 25);
    assert!(stack.proxy.set_canary_weight(101).is_err());
    assert!(control.set_canary_weight(200).is_err());
    assert_eq!(control.canary_weight(), 25);
}

#[tokio::test]
async fn method_path_and_body_reach_the_upstream_and_its_status_comes_back() {
    let stack = stack(100).await;
    let client = TestClient::new();
    // POST /fault through the proxy changes the canary's faults.
    let reply = client
        .send(
            Method::POST,
            &format!("{}/fault", stack.proxy.base_url()),
            Body::from(r#"{"error_rate": 1.0}"#),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(stack.canary.faults().error_rate, 1.0);
    assert_eq!(stack.stable.faults().error_rate, 0.0);

    // The canary's 500 is passed through as it is, not turned into a proxy error.
    let reply = client.get(&format!("{}/", stack.proxy.base_url())).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, "canary: injected error\n");
    assert_eq!(
        client
            .get(&format!("{}/missing", stack.proxy.base_url()))
            .await
            .status,
        404
    );
    assert_eq!(stack.proxy.routed_counts().upstream_failures, 0);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let stable = DemoService::spawn(DemoServiceConfig::stable(), ANY_LOOPBACK_PORT)
        .await
        .unwrap();
    let config = ProxyConfig::new(stable.base_url(), closed_port_url()).with_canary_weight(100);
    let proxy = WeightedProxy::spawn(config, ANY_LOOPBACK_PORT)
        .await
        .unwrap();
    let client = TestClient::new();

    let reply = client.get(&format!("{}/api/x", proxy.base_url())).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.header("x-canary-upstream"), Some("canary"));
    assert!(reply.body.contains("canary upstream"), "{}", reply.body);
    assert_eq!(proxy.routed_counts().upstream_failures, 1);
    within("proxy shutdown", proxy.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_after_the_timeout() {
    let slow = DemoService::spawn(
        DemoServiceConfig::canary().with_added_latency(Duration::from_secs(5)),
        ANY_LOOPBACK_PORT,
    )
    .await
    .unwrap();
    let config = ProxyConfig::new(slow.base_url(), slow.base_url())
        .with_upstream_timeout(Duration::from_millis(100));
    let proxy = WeightedProxy::spawn(config, ANY_LOOPBACK_PORT)
        .await
        .unwrap();
    let reply = TestClient::new().get(&proxy.base_url()).await;
    assert_eq!(reply.status, 504, "{reply:?}");
    assert_eq!(proxy.routed_counts().upstream_failures, 1);
}

#[tokio::test]
async fn bad_upstream_urls_are_refused() {
    for (stable, canary, field) in [
        ("https://127.0.0.1:1", "http://127.0.0.1:2", "stable_url"),
        ("http://127.0.0.1:1", "127.0.0.1:2", "canary_url"),
        ("http://127.0.0.1:1", "http://127.0.0.1:2/api", "canary_url"),
    ] {
        let error = WeightedProxy::spawn(ProxyConfig::new(stable, canary), ANY_LOOPBACK_PORT)
            .await
            .expect_err("bad URL");
        assert!(error.to_string().contains(field), "{error}");
    }
}
