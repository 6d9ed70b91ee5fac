//! Notifications during a real rollout: a generic webhook (HMAC-signed) and a Slack-style
//! webhook, told of the start, each step and the promotion. The Slack URL is a secret and
//! never shows in canary's output.

use canary_tests::fake_http::{FakeServer, body_of, header_of, http, path_of};
use canary_tests::haproxy::Haproxy;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::canary_run::canary;
use crate::rollout::{Stack, haproxy_gateway};

fn ok(_: &str) -> String {
    http("200 OK", "text/plain", "")
}

#[test]
fn webhook_and_slack_hear_of_the_start_each_step_and_the_promotion() {
    let mut stack = Stack::services(&[]);
    let haproxy = Haproxy::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&haproxy.url());
    let webhook_server = FakeServer::start(ok);
    let slack_server = FakeServer::start(ok);
    let (webhook, slack) = (webhook_server.address.clone(), slack_server.address.clone());
    let slack_secret_path = "/services/T000/B000/very-secret-token";
    let gateway = haproxy_gateway(&haproxy);
    let notify = format!(
        "notify:\n  - webhook:\n      url: http://{webhook}/canary\n      secret-env: TEST_NOTIFY_SECRET\n  - slack:\n      webhook-url-env: TEST_SLACK_URL\n    on: [started, promoted, rolled-back]"
    );
    let policy = stack.policy_with(
        &gateway,
        "  step-duration: 3s\n  interval: 1s\n  min-requests: 20",
        &notify,
    );
    let state = stack.state_dir();
    let slack_url = format!("http://{slack}{slack_secret_path}");
    let run = canary(
        &[
            "rollout",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[
            ("TEST_NOTIFY_SECRET", "s3cret"),
            ("TEST_SLACK_URL", &slack_url),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        !run.all().contains("very-secret-token"),
        "the Slack URL is a secret:\n{}",
        run.all()
    );

    let events: Vec<String> = webhook_server
        .requests()
        .iter()
        .map(|request| {
            let body = body_of(request);
            assert_eq!(path_of(request), "/canary");
            let signature = header_of(request, "x-canary-signature").map(str::to_owned);
            let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(body.as_bytes());
            let expected: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                signature,
                Some(format!("sha256={expected}")),
                "signed with the secret: {body}"
            );
            let value: Value = serde_json::from_str(body).expect("a JSON body");
            assert_eq!(value["service"], "e2e");
            value["event"].as_str().unwrap().to_owned()
        })
        .collect();
    for kind in ["started", "step", "promoted"] {
        assert!(
            events.iter().any(|e| e == kind),
            "the webhook heard `{kind}`: {events:?}"
        );
    }
    assert_eq!(
        events.iter().filter(|e| *e == "step").count(),
        3,
        "one per analysed step: {events:?}"
    );

    let texts: Vec<String> = slack_server
        .requests()
        .iter()
        .map(|request| {
            assert_eq!(path_of(request), slack_secret_path);
            serde_json::from_str::<Value>(body_of(request)).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts.len(), 2, "only the kinds asked for: {texts:?}");
    assert!(texts[0].contains("*e2e* started"), "{texts:?}");
    assert!(
        texts[1].starts_with(":white_check_mark: *e2e* promoted"),
        "{texts:?}"
    );
}
