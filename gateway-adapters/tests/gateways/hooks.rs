//! Hooks: command hooks run for real, webhooks posted to a local HTTP server.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use canary_core::policy::{HookAction, HookEvent, HookSpec, SecretSource};
use canary_gateways::{HookContext, HookOutcome, HookRunner};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

fn hook(name: &str, on: &[HookEvent], action: HookAction, timeout: Duration) -> HookSpec {
    HookSpec {
        name: name.to_owned(),
        on: on.to_vec(),
        action,
        timeout,
        rollback_on_failure: true,
        env: canary_core::policy::HookEnv::default(),
    }
}

fn context(event: HookEvent) -> HookContext {
    HookContext {
        service: "checkout".to_owned(),
        event,
        step: 2,
        weight: 25,
    }
}

fn reason(outcome: &HookOutcome) -> &str {
    match outcome {
        HookOutcome::Ok => panic!("the hook succeeded"),
        HookOutcome::Failed { reason } | HookOutcome::Unstartable { reason } => reason,
    }
}

/// Issue 12.8: hooks inherited every variable of canary's environment (a CI's tokens among
/// them). A hook gets the minimal environment, what its policy passes or sets, and the
/// context; nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_hooks_get_a_minimal_environment_and_what_the_policy_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let mut spec = hook(
        "env",
        &[HookEvent::Step],
        HookAction::Command(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("env > {}", out.display()),
        ]),
        Duration::from_secs(30),
    );
    spec.env.pass = vec![
        "CARGO_PKG_NAME".to_owned(),
        "NOT_SET_ANYWHERE_42".to_owned(),
    ];
    spec.env
        .set
        .insert("DEPLOY_ENV".to_owned(), "staging".to_owned());
    let runs = HookRunner::new()
        .unwrap()
        .run_event(&[spec.clone()], &context(HookEvent::Step))
        .await;
    assert!(runs[0].is_ok(), "{}", runs[0]);
    let env = fs::read_to_string(&out).unwrap();
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, _)| n)
        .collect();
    for wanted in [
        "PATH",
        "CARGO_PKG_NAME",
        "DEPLOY_ENV",
        "CANARY_SERVICE",
        "CANARY_HOOK",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing: {env}");
    }
    assert!(env.contains("DEPLOY_ENV=staging\n"), "{env}");
    // The test runner's own variables (CARGO_MANIFEST_DIR, NEXTEST_*, RUST_*) stand for a
    // CI's secrets: none reaches the hook unless passed.
    for name in &names {
        assert!(
            canary_core::policy::HOOK_BASE_ENVIRONMENT.contains(name)
                || ["CARGO_PKG_NAME", "DEPLOY_ENV", "PWD", "SHLVL", "_"].contains(name)
                || name.starts_with("CANARY_"),
            "{name} leaked into the hook: {env}"
        );
    }
    assert!(!names.contains(&"CARGO_MANIFEST_DIR"), "{env}");
    // The context wins over what the policy sets or passes.
    let context_first = canary_gateways::hooks::runner::hook_environment(
        &spec,
        &context(HookEvent::Step),
        |name| (name == "PATH").then(|| "/bin".into()),
    );
    assert!(context_first.contains(&("PATH".to_owned(), "/bin".to_owned())));
    assert!(context_first.contains(&("CANARY_STEP".to_owned(), "2".to_owned())));
    assert!(
        !context_first
            .iter()
            .any(|(n, _)| n == "NOT_SET_ANYWHERE_42")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_hooks_get_placeholders_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let record = HookAction::Command(vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!(
            "echo \"$1 $2 $3 $CANARY_SERVICE $CANARY_EVENT $CANARY_STEP $CANARY_WEIGHT $CANARY_HOOK\" >> {}",
            out.display()
        ),
        "sh".to_owned(),
        "--service={service}".to_owned(),
        "{step}".to_owned(),
        "{weight}%".to_owned(),
    ]);
    let hooks = vec![
        hook(
            "record",
            &[HookEvent::Before, HookEvent::Step],
            record,
            Duration::from_secs(30),
        ),
        hook(
            "only-on-promote",
            &[HookEvent::Promote],
            HookAction::Command(vec!["false".to_owned()]),
            Duration::from_secs(30),
        ),
    ];
    let runner = HookRunner::new().unwrap();
    let runs = runner.run_event(&hooks, &context(HookEvent::Step)).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].is_ok(), "{}", runs[0]);
    assert_eq!(runs[0].hook, "record");
    assert_eq!(runs[0].event, HookEvent::Step);
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "--service=checkout 2 25% checkout step 2 25 record\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_hanging_command_hooks_fail_with_a_reason() {
    let runner = HookRunner::new().unwrap();
    let failing = hook(
        "smoke-test",
        &[HookEvent::Step],
        HookAction::Command(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "echo 'smoke test: 3 of 20 requests failed' >&2; exit 2".to_owned(),
        ]),
        Duration::from_secs(30),
    );
    let run = runner.run(&failing, &context(HookEvent::Step)).await;
    let why = reason(&run.outcome);
    assert!(why.contains("`sh` exited with code 2"), "{why}");
    assert!(why.contains("smoke test: 3 of 20 requests failed"), "{why}");
    assert!(run.demands_rollback());

    let hanging = hook(
        "slow",
        &[HookEvent::Promote],
        HookAction::Command(vec!["sleep".to_owned(), "300".to_owned()]),
        Duration::from_millis(300),
    );
    let run = runner.run(&hanging, &context(HookEvent::Promote)).await;
    let why = reason(&run.outcome);
    assert!(
        why.contains("`sleep` did not finish within 300ms and was killed"),
        "{why}"
    );
    // A promotion hook's failure is reported, not acted on.
    assert!(!run.demands_rollback());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_printing_a_secret_fails_with_it_redacted() {
    // A secret the process has read (a webhook's signing key, a bearer token): a command
    // that prints it, raw and base64-encoded, as a failing smoke test might dump its env.
    let key = "hook-signing-key/never+print";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    fs::write(&file, format!("{key}\n")).unwrap();
    let _ = SecretSource::File(file).read().unwrap();
    let printing = hook(
        "dump",
        &[HookEvent::Step],
        HookAction::Command(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("echo 'key {key}' >&2; printf 'x:{key}' | base64 >&2; exit 1"),
        ]),
        Duration::from_secs(30),
    );
    let runner = HookRunner::new().unwrap();
    let run = runner.run(&printing, &context(HookEvent::Step)).await;
    let why = reason(&run.outcome);
    assert!(why.contains("key [redacted]"), "{why}");
    assert!(!why.contains(key), "{why}");
    assert!(
        !why.contains("ob29rLXNpZ25pbmcta2V5L25ldmVyK3ByaW50"),
        "{why}"
    );
}

/// What the test webhook server received.
type Received = (HeaderMap, Bytes);

#[derive(Clone)]
struct Receiver {
    tx: mpsc::UnboundedSender<Received>,
    status: StatusCode,
    delay: Duration,
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let _ = receiver.tx.send((headers, body));
    tokio::time::sleep(receiver.delay).await;
    (receiver.status, "receiver says no")
}

/// A webhook receiver on a free loopback port answering `status` after `delay`.
async fn receiver(
    status: StatusCode,
    delay: Duration,
) -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/hooks/secret-token", post(receive))
        .with_state(Receiver { tx, status, delay });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rx)
}

fn webhook(addr: SocketAddr, secret: Option<SecretSource>) -> HookAction {
    HookAction::Webhook {
        url: format!("http://{addr}/hooks/secret-token?key=also-secret"),
        secret,
    }
}

fn expected_signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_post_json_signed_with_the_secret() {
    let (addr, mut received) = receiver(StatusCode::OK, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("hook-secret");
    fs::write(&secret_file, "s3cr3t-value\n").unwrap();
    let runner = HookRunner::new().unwrap();

    let signed = hook(
        "announce",
        &[HookEvent::Promote],
        webhook(addr, Some(SecretSource::File(secret_file.clone()))),
        Duration::from_secs(30),
    );
    let run = runner.run(&signed, &context(HookEvent::Promote)).await;
    assert!(run.is_ok(), "{run}");
    let (headers, body) = received.recv().await.expect("a request");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("the body is JSON");
    assert_eq!(json["hook"], "announce");
    assert_eq!(json["service"], "checkout");
    assert_eq!(json["event"], "promote");
    assert_eq!(json["step"], 2);
    assert_eq!(json["weight"], 25);
    assert!(
        json["timestamp"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok(),
        "{json}"
    );
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-canary-event"], "promote");
    // The file's trailing newline is not part of the secret.
    assert_eq!(
        headers["x-canary-signature"].to_str().unwrap(),
        expected_signature(b"s3cr3t-value", &body)
    );
    assert_ne!(
        headers["x-canary-signature"].to_str().unwrap(),
        expected_signature(b"another-secret", &body)
    );

    // A secret from the environment: PATH is surely set (tests cannot set variables safely).
    let from_env = hook(
        "announce",
        &[HookEvent::Rollback],
        webhook(addr, Some(SecretSource::Env("PATH".to_owned()))),
        Duration::from_secs(30),
    );
    let run = runner.run(&from_env, &context(HookEvent::Rollback)).await;
    assert!(run.is_ok(), "{run}");
    let (headers, body) = received.recv().await.expect("a request");
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        headers["x-canary-signature"].to_str().unwrap(),
        expected_signature(path.trim().as_bytes(), &body)
    );

    // Without a secret, no signature.
    let unsigned = hook(
        "announce",
        &[HookEvent::Step],
        webhook(addr, None),
        Duration::from_secs(30),
    );
    assert!(
        runner
            .run(&unsigned, &context(HookEvent::Step))
            .await
            .is_ok()
    );
    let (headers, _) = received.recv().await.expect("a request");
    assert!(!headers.contains_key("x-canary-signature"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_failures_have_reasons_without_secrets() {
    let runner = HookRunner::new().unwrap();

    // An unreadable secret fails the hook before anything is sent.
    let (addr, mut received) = receiver(StatusCode::OK, Duration::ZERO).await;
    let missing = hook(
        "announce",
        &[HookEvent::Step],
        webhook(
            addr,
            Some(SecretSource::Env(
                "CANARY_TEST_SECRET_THAT_IS_NOT_SET".to_owned(),
            )),
        ),
        Duration::from_secs(30),
    );
    let run = runner.run(&missing, &context(HookEvent::Step)).await;
    let why = reason(&run.outcome);
    assert!(
        why.contains("CANARY_TEST_SECRET_THAT_IS_NOT_SET is not set"),
        "{why}"
    );
    assert!(received.try_recv().is_err(), "an unsigned request was sent");
    let no_file = hook(
        "announce",
        &[HookEvent::Step],
        webhook(
            addr,
            Some(SecretSource::File(PathBuf::from("/nonexistent/secret"))),
        ),
        Duration::from_secs(30),
    );
    let why = reason(
        &runner
            .run(&no_file, &context(HookEvent::Step))
            .await
            .outcome,
    )
    .to_owned();
    assert!(
        why.contains("cannot read the secret file /nonexistent/secret"),
        "{why}"
    );

    // A non-2xx answer.
    let (addr, _received) = receiver(StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO).await;
    let rejected = hook(
        "announce",
        &[HookEvent::Step],
        webhook(addr, None),
        Duration::from_secs(30),
    );
    let run = runner.run(&rejected, &context(HookEvent::Step)).await;
    let why = reason(&run.outcome);
    assert!(
        why.contains(&format!("webhook http://{addr} answered 500")),
        "{why}"
    );
    assert!(why.contains("receiver says no"), "{why}");
    assert!(
        !why.contains("secret-token") && !why.contains("also-secret"),
        "{why}"
    );

    // A receiver slower than the timeout.
    let (addr, mut received) = receiver(StatusCode::OK, Duration::from_secs(300)).await;
    let slow = hook(
        "announce",
        &[HookEvent::Step],
        webhook(addr, None),
        Duration::from_millis(300),
    );
    let run = runner.run(&slow, &context(HookEvent::Step)).await;
    let why = reason(&run.outcome);
    assert!(why.contains("did not answer within 300ms"), "{why}");
    assert!(!why.contains("secret-token"), "{why}");
    assert!(
        received.recv().await.is_some(),
        "the request did reach the receiver"
    );

    // Nobody listening.
    let port = crate::support::free_port();
    let refused = hook(
        "announce",
        &[HookEvent::Step],
        HookAction::Webhook {
            url: format!("http://127.0.0.1:{port}/hooks/secret-token"),
            secret: None,
        },
        Duration::from_secs(30),
    );
    let why = reason(
        &runner
            .run(&refused, &context(HookEvent::Step))
            .await
            .outcome,
    )
    .to_owned();
    assert!(
        why.contains(&format!("webhook http://127.0.0.1:{port}")),
        "{why}"
    );
    assert!(!why.contains("secret-token"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_is_unstartable_not_failed() {
    let runner = HookRunner::new().unwrap();
    let missing = hook(
        "smoke",
        &[HookEvent::Step],
        HookAction::Command(vec!["./scripts/no-such-smoke-test.sh".to_owned()]),
        Duration::from_secs(5),
    );
    let run = runner.run(&missing, &context(HookEvent::Step)).await;
    assert!(
        matches!(&run.outcome, HookOutcome::Unstartable { reason } if reason.contains("no-such-smoke-test.sh")),
        "{run}"
    );
    assert!(run.to_string().contains("cannot be started"), "{run}");
    // A command that starts and fails is a failure, as before.
    let failing = hook(
        "smoke",
        &[HookEvent::Step],
        HookAction::Command(vec!["false".to_owned()]),
        Duration::from_secs(5),
    );
    let run = runner.run(&failing, &context(HookEvent::Step)).await;
    assert!(matches!(run.outcome, HookOutcome::Failed { .. }), "{run}");
}
