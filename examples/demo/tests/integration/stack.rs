//! The whole demo traffic path started in one call.

use canary_demo::{DemoStack, DemoStackConfig};

use crate::util::{TestClient, eventually, within};

#[tokio::test]
async fn traffic_flows_through_the_proxy_to_the_version_the_weight_picks() {
    let mut config = DemoStackConfig::default();
    config.canary = config.canary.with_error_rate(1.0);
    let stack = within("starting the stack", DemoStack::start(config))
        .await
        .unwrap();
    let client = TestClient::new();

    eventually("stable traffic", || async {
        client
            .scrape(&stack.stable().metrics_url())
            .await
            .requests("stable", "200")
            >= 3.0
    })
    .await;
    // Weight 0 so far: the canary has served nothing.
    let canary_scrape = client.scrape(&stack.canary().metrics_url()).await;
    assert_eq!(canary_scrape.requests("canary", "500"), 0.0);

    stack.proxy().set_canary_weight(50).unwrap();
    eventually("canary traffic", || async {
        client
            .scrape(&stack.canary().metrics_url())
            .await
            .requests("canary", "500")
            >= 3.0
    })
    .await;

    let summary = within("stopping the stack", stack.shutdown())
        .await
        .unwrap();
    assert!(summary.status_count(500) >= 3, "{summary}");
    assert_eq!(summary.transport_errors, 0, "{summary}");
    assert_eq!(summary.in_flight, 0, "{summary}");
}
