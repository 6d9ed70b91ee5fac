//! A Kubernetes API answer that echoes the kubeconfig's credentials (an authenticating proxy
//! in front of the API server quoting the request's `Authorization` header when it refuses a
//! write) leaks them nowhere: `canary rollout` through the API fake stops with exit 4 on the
//! refused weight write, and neither its streams, nor any report format, nor the step
//! summary, nor the state, nor `canary status --json` holds the token in any form.

use std::process::{Command, Stdio};

use canary_tests::binary;
use canary_tests::fake_http::{FakeServer, body_of, http};
use canary_tests::leaks::{assert_no_secret, outputs_of};

use crate::support::{NS, http_route};
use canary_fake_kube_api::FakeApiServer;

/// The kubeconfig's bearer token: characters that URL-encoding, base64 alignment and HTML
/// escaping all change.
const TOKEN: &str = "kube/9f8e+7d6c=5b4a-never<print>me";

/// A healthy Prometheus answer for the policy's one error-rate check.
fn healthy(request: &str) -> String {
    let at = jiff::Timestamp::now().as_second();
    let body = if body_of(request).contains("canary_series") {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"version":"canary","canary_series":"requests"}},"value":[{at},"1000"]}},{{"metric":{{"version":"stable","canary_series":"requests"}},"value":[{at},"1000"]}}]}}}}"#
        )
    } else {
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.to_owned()
    };
    http("200 OK", "application/json", &body)
}

#[test]
fn an_api_answer_echoing_the_kubeconfig_token_leaks_it_nowhere() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(FakeApiServer::start());
    fake.insert(http_route());
    fake.refuse_writes_echoing_credentials();
    let prometheus = FakeServer::start(healthy);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake
        .kubeconfig(NS)
        .replace("token: fake-token", &format!("token: {TOKEN:?}"));
    assert!(kubeconfig.contains(TOKEN), "{kubeconfig}");
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"service: e2e
traffic:
  label: version
  canary: canary
  baseline: stable
metrics:
  prometheus:
    url: http://{}
    timeout: 2s
rollout:
  steps: [10, 100]
  step-duration: 2s
  interval: 1s
  min-requests: 0
gateway:
  http-route:
    name: checkout
    rule: api
    stable: checkout-stable
    canary: checkout-canary
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 1%
"#,
            prometheus.address
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = |format: &str, file: &str| format!("{format}:{}", dir.path().join(file).display());
    let run = Command::new(binary("canary"))
        .args([
            "rollout",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--output",
            &out("json", "report.json"),
            "--output",
            &out("markdown", "report.md"),
            "--output",
            &out("html", "report.html"),
            "--output",
            &out("junit", "report.xml"),
        ])
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .env("GITHUB_STEP_SUMMARY", dir.path().join("step-summary.md"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout).into_owned(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    );
    assert_eq!(run.status.code(), Some(4), "{stdout}\n{stderr}");
    let refused = fake
        .requests_with("PATCH")
        .into_iter()
        .find(|r| r.status == 403);
    assert!(
        refused.is_some(),
        "the weight write reached the proxy and was refused:\n{stderr}"
    );
    assert!(
        stderr.contains("proxy: write refused for the request with Authorization: [redacted]"),
        "the echo is shown, redacted:\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "error", "{report:#}");
    let status = Command::new(binary("canary"))
        .args([
            "status",
            "--service",
            "e2e",
            "--state-dir",
            state.to_str().unwrap(),
            "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut outputs = outputs_of(&stdout, &stderr, dir.path());
    outputs.retain(|(name, _)| !name.ends_with("kubeconfig"));
    outputs.push((
        "status --json".to_owned(),
        String::from_utf8_lossy(&status.stdout).into_owned(),
    ));
    assert_no_secret(&outputs, &[TOKEN]);
}
