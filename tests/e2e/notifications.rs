//! Notifications during a real rollout: a generic webhook (HMAC-signed) and a Slack-style
//! webhook, told of the start, each step and the promotion. The Slack URL is a secret and
//! never shows in canary's output.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use canary_tests::haproxy::Haproxy;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::canary_run::canary;
use crate::rollout::Stack;

/// One request a receiver got: path, headers (lower-case names), body.
type Received = (String, Vec<(String, String)>, String);

/// A tiny HTTP receiver on loopback that answers 200 to everything and keeps what it got.
fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let mut headers = Vec::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.trim().split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            keep.lock()
                .unwrap()
                .push((path, headers, String::from_utf8_lossy(&body).into_owned()));
            let mut stream = reader.into_inner();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (address, received)
}

#[test]
fn webhook_and_slack_hear_of_the_start_each_step_and_the_promotion() {
    let mut stack = Stack::services(&[]);
    let haproxy = Haproxy::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&haproxy.url());
    let (webhook, webhook_got) = receiver();
    let (slack, slack_got) = receiver();
    let slack_secret_path = "/services/T000/B000/very-secret-token";
    let gateway = format!(
        "  haproxy:\n    socket: {}\n    backend: app\n    canary-server: canary\n    stable-server: stable",
        haproxy.socket().display()
    );
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

    let webhook_got = webhook_got.lock().unwrap().clone();
    let events: Vec<String> = webhook_got
        .iter()
        .map(|(path, headers, body)| {
            assert_eq!(path, "/canary");
            let signature = headers
                .iter()
                .find(|(n, _)| n == "x-canary-signature")
                .map(|(_, v)| v.clone());
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

    let slack_got = slack_got.lock().unwrap().clone();
    let texts: Vec<String> = slack_got
        .iter()
        .map(|(path, _, body)| {
            assert_eq!(path, slack_secret_path);
            serde_json::from_str::<Value>(body).unwrap()["text"]
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
