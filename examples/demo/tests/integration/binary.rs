//! The `canary-demo-service` binary, run as the e2e tests and local stack run it.

use std::process::Stdio;
use std::time::Duration;

use canary_demo::{DemoService, DemoServiceConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::util::{ANY_LOOPBACK_PORT, TestClient, eventually, within};

const BINARY: &str = env!("CARGO_BIN_EXE_canary-demo-service");

fn demo_service(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A failing assertion must not leave a server behind.
        .kill_on_drop(true);
    command
}

/// Starts `serve` and reads its first stdout line; gives the child, its base URL and
/// the rest of stdout.
async fn serve(args: &[&str]) -> (Child, String, BufReader<tokio::process::ChildStdout>) {
    let mut child = demo_service(&[&["serve"], args].concat())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    within("the listening line", stdout.read_line(&mut line))
        .await
        .expect("stdout readable");
    let url = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (child, url, stdout)
}

async fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().expect("child still running").to_string();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test]
async fn serve_prints_one_listening_line_serves_and_exits_0_on_sigterm() {
    let (mut child, url, mut stdout) =
        serve(&["--version", "canary", "--listen", "127.0.0.1:0"]).await;
    let client = TestClient::new();
    assert_eq!(client.get(&format!("{url}/healthz")).await.status, 200);
    let reply = client.get(&format!("{url}/api/ping")).await;
    assert_eq!(reply.header("x-demo-version"), Some("canary"));
    let scrape = client.scrape(&format!("{url}/metrics")).await;
    assert_eq!(scrape.requests("canary", "500"), 0.0);

    send_signal(&child, "TERM").await;
    let status = within("exit after SIGTERM", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "", "nothing after the listening line on stdout");
}

#[tokio::test]
async fn serve_exits_0_on_sigint_too() {
    let (mut child, _url, _stdout) =
        serve(&["--version", "stable", "--listen", "127.0.0.1:0"]).await;
    send_signal(&child, "INT").await;
    let status = within("exit after SIGINT", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn serve_flags_set_the_faults() {
    let (mut child, url, _stdout) = serve(&[
        "--version",
        "canary",
        "--listen",
        "127.0.0.1:0",
        "--error-rate",
        "100%",
        "--added-latency",
        "200ms",
        "--base-latency",
        "0s",
        "--seed",
        "9",
    ])
    .await;
    let client = TestClient::new();
    let faults: serde_json::Value =
        serde_json::from_str(&client.get(&format!("{url}/fault")).await.body).unwrap();
    assert_eq!(
        faults,
        serde_json::json!({"error_rate": 1.0, "added_latency_ms": 200})
    );
    assert_eq!(client.get(&format!("{url}/")).await.status, 500);
    child.start_kill().unwrap();
}

#[tokio::test]
async fn bad_flags_exit_2_with_a_message_naming_them() {
    for (args, expected) in [
        (
            &["serve", "--version", "canary", "--error-rate", "2"][..],
            "--error-rate",
        ),
        (
            &["serve", "--version", "canary", "--added-latency", "fast"][..],
            "--added-latency",
        ),
        (
            &["serve", "--version", "canary", "--listen", "localhost"][..],
            "--listen",
        ),
        (&["serve"][..], "--version"),
        (
            &["load", "--target", "http://127.0.0.1:1/", "--rps", "0"][..],
            "--rps",
        ),
        (&["load", "--rps", "10"][..], "--target"),
        (&["frobnicate"][..], "frobnicate"),
    ] {
        let output = within("a rejected command line", demo_service(args).output())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn a_taken_port_is_a_runtime_failure_not_a_panic() {
    let (_child, url, _stdout) = serve(&["--version", "stable", "--listen", "127.0.0.1:0"]).await;
    let addr = url.trim_start_matches("http://");
    let output = within(
        "a second server on the same port",
        demo_service(&["serve", "--version", "canary", "--listen", addr]).output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn load_runs_for_its_duration_and_prints_a_json_summary() {
    let service = DemoService::spawn(
        DemoServiceConfig::stable().with_base_latency(Duration::ZERO),
        ANY_LOOPBACK_PORT,
    )
    .await
    .unwrap();
    let target = format!("{}/api/x", service.base_url());
    let output = within(
        "a 500 ms load run",
        demo_service(&[
            "load",
            "--target",
            &target,
            "--rps",
            "50",
            "--duration",
            "500ms",
            "--json",
        ])
        .output(),
    )
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object");
    let sent = summary["sent"].as_u64().unwrap();
    assert!(sent >= 1, "{summary}");
    assert_eq!(summary["completed"].as_u64(), Some(sent), "{summary}");
    assert_eq!(
        summary["by_status"]["200"].as_u64(),
        Some(sent),
        "{summary}"
    );
    assert_eq!(summary["transport_errors"].as_u64(), Some(0), "{summary}");

    let scrape = TestClient::new().scrape(&service.metrics_url()).await;
    assert_eq!(scrape.requests("stable", "200"), sent as f64);
}

#[tokio::test]
async fn load_prints_its_summary_on_sigterm() {
    let service = DemoService::spawn(
        DemoServiceConfig::stable().with_base_latency(Duration::ZERO),
        ANY_LOOPBACK_PORT,
    )
    .await
    .unwrap();
    let mut child = demo_service(&["load", "--target", &service.base_url(), "--rps", "50"])
        .spawn()
        .unwrap();
    let client = TestClient::new();
    eventually("the load to reach the service", || async {
        client
            .scrape(&service.metrics_url())
            .await
            .requests("stable", "200")
            >= 3.0
    })
    .await;

    send_signal(&child, "TERM").await;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let status = within("exit after SIGTERM", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(stdout.starts_with("sent "), "{stdout}");
    assert!(stdout.contains("200 × "), "{stdout}");
}
