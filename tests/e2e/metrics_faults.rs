//! Faults of the metrics source, against real processes and sockets: Prometheus killed in the
//! middle of an analysis, a port that accepts and never answers, a server answering 500, one
//! answering an HTML page. Each ends `canary analyze` with exit code 4, a message naming the
//! address, and no panic; the bearer token, from a file or the environment, never shows.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use canary_tests::fake_http::{FakeServer, http};
use canary_tests::prometheus::Prometheus;

use crate::canary_run::{Run, canary, spawn_canary, write_policy};

const TOKEN: &str = "tok-9f8e7d6c5b4a-never-print-me";

fn policy(auth: &str) -> String {
    format!(
        r#"service: checkout
traffic:
  label: version
  canary: canary
  baseline: stable
metrics:
  prometheus:
    timeout: 1s
    retries: 1
{auth}rollout:
  interval: 1s
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 1%
  - name: no-restarts
    query:
      promql: 'sum(increase(restarts_total{{ {{{{canary_selector}}}} }}[{{{{window}}}}])) or vector(0)'
    slo:
      max: 0
"#
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `canary analyze` of the last 10 seconds against `url`.
fn analyze(dir: &std::path::Path, url: &str, auth: &str, envs: &[(&str, &str)]) -> Run {
    let policy = write_policy(dir, "policy.yaml", &policy(auth));
    let (start, end) = ((now() - 10).to_string(), now().to_string());
    canary(
        &[
            "analyze",
            "--policy",
            policy.to_str().unwrap(),
            "--prometheus",
            url,
            "--start",
            &start,
            "--end",
            &end,
        ],
        envs,
    )
}

fn assert_infrastructure_error(run: &Run, address: &str, says: &str) {
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stderr
            .contains(&format!("prometheus at http://{address}: {says}")),
        "the message names the address and says {says:?}:\n{}",
        run.all()
    );
    assert!(
        !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
        "the token leaked:\n{}",
        run.all()
    );
}

#[test]
fn prometheus_stopped_mid_analysis_exits_4_naming_it() {
    let mut prometheus = Prometheus::empty();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "policy.yaml", &policy(""));
    // A range that ends 30 s from now: the analysis reads the past at once, then waits for
    // each new tick.
    let (start, end) = ((now() - 5).to_string(), (now() + 30).to_string());
    let url = prometheus.url();
    let (mut child, stderr) = spawn_canary(
        &[
            "analyze",
            "--policy",
            policy.to_str().unwrap(),
            "--prometheus",
            &url,
            "--start",
            &start,
            "--end",
            &end,
        ],
        &[],
    );
    let mut lines = Vec::new();
    // Wait until two live ticks were read, then kill Prometheus.
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with('['))
        .count()
        < 2
    {
        let line = stderr
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("canary printed no progress: {lines:?}"));
        lines.push(line);
    }
    prometheus.stop();
    let status = child.wait_exit(Duration::from_secs(20));
    while let Ok(line) = stderr.recv_timeout(Duration::from_secs(2)) {
        lines.push(line);
    }
    let stderr = lines.join("\n");
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&format!("prometheus at {url}: cannot connect (2 attempts)")),
        "{stderr}"
    );
    eprintln!("{stderr}");
}

#[test]
fn a_port_that_accepts_and_never_answers_exits_4_after_the_timeouts() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    canary_tests::binary("canary");
    let started = Instant::now();
    let run = analyze(dir.path(), &format!("http://{address}"), "", &[]);
    assert_infrastructure_error(&run, &address, "no answer within 1s (2 attempts)");
    assert_eq!(held.lock().unwrap().len(), 2, "one attempt and one retry");
    eprintln!("gave up after {:?}", started.elapsed());
}

#[test]
fn a_server_answering_500_exits_4_and_the_env_token_never_shows() {
    let server = FakeServer::start(|_| {
        http(
            "500 Internal Server Error",
            "text/plain",
            "upstream exploded",
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        "    bearer-token-env: CANARY_E2E_TOKEN\n",
        &[("CANARY_E2E_TOKEN", TOKEN)],
    );
    assert_infrastructure_error(
        &run,
        &server.address,
        "HTTP 500 after 2 attempts: \"upstream exploded\"",
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "retried once");
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains(&format!("authorization: bearer {TOKEN}")),
        "the token was sent: {}",
        requests[0]
    );
    assert!(
        requests[0].starts_with("POST /api/v1/query "),
        "{}",
        requests[0]
    );
}

#[test]
fn a_proxy_answering_html_exits_4_showing_its_first_bytes_but_not_the_file_token() {
    // A login page that echoes the request back, token included.
    let server = FakeServer::start(|request| {
        let page = format!(
            "<!DOCTYPE html><html><body><h1>Sign in</h1><pre>{request}</pre></body></html>"
        );
        http("200 OK", "text/html; charset=utf-8", &page)
    });
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        &format!("    bearer-token-file: {}\n", token_file.display()),
        &[],
    );
    assert_infrastructure_error(
        &run,
        &server.address,
        "HTTP 200 answer is not JSON (text/html; charset=utf-8); it begins: \"<!DOCTYPE html><html><body><h1>Sign in</h1>",
    );
    assert_eq!(server.requests().len(), 1, "an HTML page is not retried");
}

#[test]
fn refused_credentials_exit_4_saying_so() {
    let server = FakeServer::start(|_| http("401 Unauthorized", "text/plain", "bad token"));
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        "    bearer-token-env: CANARY_E2E_TOKEN\n",
        &[("CANARY_E2E_TOKEN", TOKEN)],
    );
    assert_infrastructure_error(&run, &server.address, "HTTP 401: authentication failed");
}
