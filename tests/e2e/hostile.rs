//! A hostile metrics server and hostile outside text, against the `canary` binary: a
//! Prometheus (or a proxy in front of one) that echoes the request's credentials back in
//! its error text, answers 200 MB, warns of a partial answer, redirects to another host, asks
//! for a pause with `Retry-After`, or carries markup; and a report that must show none of it
//! raw. Every output is searched: stdout, stderr, the JSON, markdown, HTML and JUnit reports,
//! `$GITHUB_STEP_SUMMARY`, the state file and `canary status --json`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use canary_tests::fake_http::{FakeServer, body_of, header_of, http};
use canary_tests::leaks::{self, assert_no_secret, base64, percent};

use crate::canary_run::{Run, analyze_last_5s_with_every_report, canary, read_json, write_policy};

/// The bearer token: characters that URL-encoding, base64 alignment and HTML escaping all
/// change, so that each encoded form differs from the raw one.
const TOKEN: &str = "tok/9f8e+7d6c=5b4a-never<print>me";
/// A basic-auth password (the user name is not secret).
const PASSWORD: &str = "pw-Zq81&wX/3c+never-print";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The outputs of a run: its streams and every file in `dir` (reports, step summary, state).
fn outputs_of(run: &Run, dir: &Path) -> Vec<(String, String)> {
    leaks::outputs_of(&run.stdout, &run.stderr, dir)
}

/// What a proxy that echoes the request gives back: the head as received, the credential
/// decoded and re-encoded every way (base64, URL-encoded), in a JSON error text.
fn echo_of(request: &str) -> String {
    let head = request.split("\r\n\r\n").next().unwrap_or_default();
    let mut echo = format!("request was: {head}");
    if let Some(auth) = header_of(request, "authorization") {
        let credential = auth.split_once(' ').map_or(auth, |(_, c)| c);
        echo.push_str(&format!(
            " | credential {credential} | base64 {} | url {} | body {}",
            base64(credential.as_bytes(), false, true),
            percent(credential, false),
            body_of(request)
        ));
    }
    // JSON string escaping of the echo.
    serde_json::to_string(&echo).unwrap()
}

/// `status: error` answers that quote the request, as some gateways do.
fn echoing_bad_data(request: &str) -> String {
    let body = format!(
        r#"{{"status":"error","errorType":"bad_data","error":{}}}"#,
        echo_of(request)
    );
    http("400 Bad Request", "application/json", &body)
}

fn echoing_unprocessable(request: &str) -> String {
    let body = format!(
        r#"{{"status":"error","errorType":"execution","error":{}}}"#,
        echo_of(request)
    );
    http("422 Unprocessable Entity", "application/json", &body)
}

/// The policy every test here analyses with: an error-rate and a query check, reading from
/// `auth` (YAML lines under `metrics.prometheus`).
fn policy_yaml(auth: &str, rollout: &str, extra: &str) -> String {
    format!(
        r#"service: checkout
traffic:
  label: version
  canary: canary
  baseline: stable
metrics:
  prometheus:
    timeout: 2s
    retries: 1
{auth}rollout:
  interval: 1s
{rollout}{extra}checks:
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

fn analyze(dir: &Path, url: &str, policy: &str, envs: &[(&str, &str)]) -> Run {
    analyze_last_5s_with_every_report(dir, url, policy, envs)
}

#[test]
fn a_gateway_echoing_the_bearer_token_in_a_400_or_422_leaks_it_nowhere() {
    for answer in [
        echoing_bad_data as fn(&str) -> String,
        echoing_unprocessable,
    ] {
        let server = FakeServer::start(answer);
        let dir = tempfile::tempdir().unwrap();
        let run = analyze(
            dir.path(),
            &format!("http://{}", server.address),
            &policy_yaml("    bearer-token-env: E2E_TOKEN\n", "", ""),
            &[("E2E_TOKEN", TOKEN)],
        );
        assert!(
            header_of(&server.requests()[0], "authorization").is_some_and(|a| a.ends_with(TOKEN)),
            "the token was sent"
        );
        assert!(
            run.stderr.contains("request was: POST /api/v1/query")
                || run.stdout.contains("request was: POST /api/v1/query"),
            "the echo is shown, redacted:\n{}",
            run.all()
        );
        assert!(dir.path().join("report.json").exists(), "{}", run.all());
        assert_no_secret(&outputs_of(&run, dir.path()), &[TOKEN]);
    }
}

#[test]
fn a_gateway_echoing_basic_auth_leaks_neither_the_password_nor_its_header() {
    let server = FakeServer::start(echoing_bad_data);
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        &policy_yaml(
            &format!(
                "    basic-auth:\n      username: ci-user\n      password-file: {}\n",
                password.display()
            ),
            "",
            "",
        ),
        &[],
    );
    let header = format!(
        "Basic {}",
        base64(format!("ci-user:{PASSWORD}").as_bytes(), false, true)
    );
    assert_eq!(
        header_of(&server.requests()[0], "authorization"),
        Some(header.as_str())
    );
    assert!(dir.path().join("report.json").exists(), "{}", run.all());
    assert_no_secret(
        &outputs_of(&run, dir.path()),
        &[PASSWORD, &format!("ci-user:{PASSWORD}")],
    );
}

/// A command gateway: `set` writes the weight to a file, `get` reads it.
fn command_gateway(dir: &Path) -> String {
    let weight = dir.join("weight");
    std::fs::write(&weight, "0").unwrap();
    let set = dir.join("set.sh");
    std::fs::write(
        &set,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", weight.display()),
    )
    .unwrap();
    make_executable(&set);
    format!(
        "gateway:\n  command:\n    set: [\"{}\", \"{{weight}}\"]\n    get: [cat, \"{}\"]\n    timeout: 5s\n",
        set.display(),
        weight.display()
    )
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_rollout_against_an_echoing_gateway_leaks_nothing_into_its_state_or_status() {
    let server = FakeServer::start(echoing_bad_data);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = write_policy(
        dir.path(),
        "policy.yaml",
        &policy_yaml(
            "    bearer-token-env: E2E_TOKEN\n",
            "  steps: [50, 100]\n  step-duration: 2s\n  max-step-duration: 3s\n  min-requests: 0\n",
            &command_gateway(dir.path()),
        ),
    );
    let summary = dir.path().join("step-summary.md").display().to_string();
    let out = |format: &str, file: &str| format!("{format}:{}", dir.path().join(file).display());
    let url = format!("http://{}", server.address);
    let envs = [
        ("E2E_TOKEN", TOKEN),
        ("GITHUB_STEP_SUMMARY", summary.as_str()),
    ];
    let run = canary(
        &[
            "rollout",
            "--policy",
            policy.to_str().unwrap(),
            "--prometheus",
            &url,
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
        ],
        &envs,
    );
    assert!(
        state.join("checkout.json").exists(),
        "the state was saved:\n{}",
        run.all()
    );
    let status = canary(
        &[
            "status",
            "--service",
            "checkout",
            "--state-dir",
            state.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(status.code, 0, "{}", status.all());
    let mut outputs = outputs_of(&run, dir.path());
    outputs.push(("status --json".to_owned(), status.stdout.clone()));
    assert_no_secret(&outputs, &[TOKEN]);
}

/// A healthy answer for both checks of [`policy_yaml`]: 100 000 requests each, no errors,
/// no restarts.
fn healthy(request: &str) -> String {
    let at = now();
    let body = if body_of(request).contains("canary_series") {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"version":"canary","canary_series":"requests"}},"value":[{at},"100000"]}},{{"metric":{{"version":"stable","canary_series":"requests"}},"value":[{at},"100000"]}}]}}}}"#
        )
    } else {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{at},"0"]}}]}}}}"#
        )
    };
    http("200 OK", "application/json", &body)
}

#[test]
fn the_healthy_fake_passes() {
    // The other tests' fakes differ from this one by one hostile thing each.
    let server = FakeServer::start(healthy);
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        &policy_yaml("", "", ""),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
}

/// Thanos' answer when a store did not answer and partial responses are allowed: the data
/// of the stores that did, and a warning.
fn thanos_partial(request: &str) -> String {
    let healthy = healthy(request);
    let body = body_of(&healthy).replacen(
        r#"{"status":"success","#,
        r#"{"status":"success","warnings":["partial response: fetch series for {version=~\"canary|stable\"}: receive 10.0.3.7:10901: rpc error: code = Unavailable desc = store unavailable"],"#,
        1,
    );
    http("200 OK", "application/json", &body)
}

#[test]
fn a_thanos_answer_warning_of_a_partial_response_is_an_error_unless_warnings_are_accepted() {
    let server = FakeServer::start(thanos_partial);
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        &policy_yaml("", "", ""),
        &[],
    );
    let request = &server.requests()[0];
    assert!(
        body_of(request).contains("partial_response=false"),
        "Thanos is asked for a whole answer or an error: {request}"
    );
    assert_ne!(run.code, 0, "a partial answer never passes:\n{}", run.all());
    let report = read_json(&dir.path().join("report.json"));
    assert_eq!(report["verdict"], "error", "{report:#}");
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["verdict"], "error", "{check:#}");
        let reason = check["reason"].as_str().unwrap();
        assert!(
            reason.contains("partial response") && reason.contains("accept-warnings"),
            "the reason names the warning and the way out: {reason}"
        );
    }

    // Said to accept warnings, the same answer passes, its warning in the report.
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        &policy_yaml("    accept-warnings: true\n", "", ""),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let report = read_json(&dir.path().join("report.json"));
    assert!(
        report["warnings"].to_string().contains("partial response"),
        "{report:#}"
    );
}

/// One request's head and body, read from a raw stream (the fakes below answer by hand).
fn read_request(stream: &mut TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    head + &String::from_utf8_lossy(&body)
}

/// A server answering every request with a vector of `series` series, about `bytes` bytes
/// in all, written as it goes (never held whole).
fn huge_answer_server(series: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                read_request(&mut stream);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
                );
                let _ = stream
                    .write_all(br#"{"status":"success","data":{"resultType":"vector","result":["#);
                let mut chunk = String::new();
                for i in 0..series {
                    if i > 0 {
                        chunk.push(',');
                    }
                    chunk.push_str(&format!(
                        r#"{{"metric":{{"__name__":"http_requests_total","version":"canary","pod":"checkout-canary-{i:08}","instance":"10.1.{}.{}:8080","path":"/api/v1/orders/{i}/items","job":"checkout"}},"value":[1767225600,"{i}"]}}"#,
                        i / 256 % 256,
                        i % 256
                    ));
                    if chunk.len() > 64 * 1024 {
                        if stream.write_all(chunk.as_bytes()).is_err() {
                            return;
                        }
                        chunk.clear();
                    }
                }
                chunk.push_str("]}}");
                let _ = stream.write_all(chunk.as_bytes());
            });
        }
    });
    address
}

/// The peak resident memory of a command in KiB, as GNU time measures it.
fn peak_rss_kib(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in:\n{stderr}"))
}

#[test]
fn a_200_mb_answer_is_an_error_naming_its_size_and_query_within_64_mib() {
    // About 200 MB: 212,477 series, as in the issue.
    let address = huge_answer_server(212_477);
    let (peak, check) = analyze_peak_rss(&address, "");
    eprintln!("peak RSS {peak} KiB");
    assert_eq!(check["verdict"], "error", "{check:#}");
    let reason = check["reason"].as_str().unwrap();
    assert!(
        reason.contains("32 MiB") && reason.contains("http_requests_total"),
        "the reason names the limit and the query: {reason}"
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB is over 64 MiB");
}

#[test]
fn too_many_series_is_an_error_naming_the_count_and_the_query() {
    // 20 001 small series: under the size limit, over the series limit.
    let address = huge_answer_server(20_001);
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{address}"),
        &policy_yaml("", "", ""),
        &[],
    );
    let report = read_json(&dir.path().join("report.json"));
    let reason = report["checks"][0]["reason"].as_str().unwrap().to_owned();
    assert_eq!(report["checks"][0]["verdict"], "error", "{}", run.all());
    assert!(
        reason.contains("10000 series") && reason.contains("http_requests_total"),
        "{reason}"
    );
}

static REDIRECT_TARGET: Mutex<String> = Mutex::new(String::new());

fn redirecting(_: &str) -> String {
    let target = REDIRECT_TARGET.lock().unwrap().clone();
    format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
}

#[test]
fn a_redirect_to_another_host_is_not_followed_and_is_named() {
    let elsewhere = FakeServer::start(healthy);
    // The target carries a token in its query, as a login redirect may: it is shown scrubbed.
    *REDIRECT_TARGET.lock().unwrap() = format!(
        "http://user:hunter2-pass@{}/api/v1/query?sso_token={}",
        elsewhere.address,
        percent(TOKEN, false)
    );
    let server = FakeServer::start(redirecting);
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        &policy_yaml("    bearer-token-env: E2E_TOKEN\n", "", ""),
        &[("E2E_TOKEN", TOKEN)],
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the other host was never asked:\n{}",
        run.all()
    );
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stderr.contains("redirect") && run.stderr.contains(&elsewhere.address),
        "the error names the redirect's target:\n{}",
        run.all()
    );
    assert!(
        !run.stderr.contains("hunter2-pass"),
        "credentials in the target are not shown:\n{}",
        run.all()
    );
    assert_no_secret(&outputs_of(&run, dir.path()), &[TOKEN]);
}

fn internal_error(request: &str) -> String {
    http(
        "500 Internal Server Error",
        "text/plain",
        &format!("upstream failed; {}", echo_of(request)),
    )
}

fn html_page(_: &str) -> String {
    http(
        "200 OK",
        "text/html",
        "<html><body><h1>Sign in</h1><script>alert(1)</script></body></html>",
    )
}

fn truncated_json(_: &str) -> String {
    http(
        "200 OK",
        "application/json",
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"versi"#,
    )
}

fn unauthorized(request: &str) -> String {
    http(
        "401 Unauthorized",
        "application/json",
        &format!(
            r#"{{"status":"error","errorType":"unauthorized","error":{}}}"#,
            echo_of(request)
        ),
    )
}

/// Issue 13.3: an infrastructure failure (exit 4) used to write no report at all.
#[test]
fn an_unusable_metrics_source_still_writes_every_requested_report_with_exit_4() {
    type Answer = fn(&str) -> String;
    let answers: [(&str, Answer); 4] = [
        ("500", internal_error),
        ("an HTML page", html_page),
        ("truncated JSON", truncated_json),
        ("401", unauthorized),
    ];
    for (what, answer) in answers {
        let server = FakeServer::start(answer);
        let dir = tempfile::tempdir().unwrap();
        let run = analyze(
            dir.path(),
            &format!("http://{}", server.address),
            &policy_yaml("    bearer-token-env: E2E_TOKEN\n", "", ""),
            &[("E2E_TOKEN", TOKEN)],
        );
        assert_eq!(run.code, 4, "{what}: {}", run.all());
        let report = read_json(&dir.path().join("report.json"));
        assert_eq!(report["exit_code"], 4, "{what}: {report:#}");
        assert_eq!(report["verdict"], "error", "{what}: {report:#}");
        let reason = report["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("the metrics could not be read: "),
            "{what}: {reason}"
        );
        let checks = report["checks"].as_array().unwrap();
        assert_eq!(
            checks.len(),
            2,
            "{what}: every criterion is listed: {report:#}"
        );
        assert!(
            checks.iter().all(|c| c["verdict"] != "pass"),
            "{what}: nothing passes: {report:#}"
        );
        for file in ["report.md", "report.html", "report.xml", "step-summary.md"] {
            let text = std::fs::read_to_string(dir.path().join(file))
                .unwrap_or_else(|err| panic!("{what}: {file} was not written: {err}"));
            assert!(!text.is_empty(), "{what}: {file} is empty");
        }
        assert!(
            !std::fs::read_to_string(dir.path().join("report.html"))
                .unwrap()
                .contains("<script>"),
            "{what}: outside markup is escaped in the HTML report"
        );
        assert_no_secret(&outputs_of(&run, dir.path()), &[TOKEN]);
    }
}

/// [`healthy`], but the error-rate check's canary count is `NaN`.
fn nan_counts(request: &str) -> String {
    let healthy = healthy(request);
    if !body_of(request).contains("canary_series") {
        return healthy;
    }
    let body = body_of(&healthy).replacen(r#""100000""#, r#""NaN""#, 1);
    http("200 OK", "application/json", &body)
}

/// Issue 12 (pre-flight): an answer that is there but unusable — refused as bad data, a
/// count that is `NaN`, a partial answer — used to pass the pre-flight, so the canary got
/// 10 % and then every tick was an `error`. Each is exit 4 now, before any weight moves,
/// every report written, the check and its problem named.
#[test]
fn a_preflight_reading_an_unusable_answer_is_exit_4_with_nothing_moved() {
    type Answer = fn(&str) -> String;
    let answers: [(&str, Answer, &str); 3] = [
        ("400 bad_data", echoing_bad_data, "refused the query"),
        ("a NaN count", nan_counts, "errors"),
        ("a partial answer", thanos_partial, "partial response"),
    ];
    for (what, answer, named) in answers {
        let server = FakeServer::start(answer);
        let dir = tempfile::tempdir().unwrap();
        let gateway = command_gateway(dir.path());
        let (run, status) = rollout_with_reports(
            dir.path(),
            &format!("http://{}", server.address),
            "",
            &gateway,
        );
        assert_error_reports(dir.path(), &run, &status, "pre-flight");
        let reason = read_json(&dir.path().join("report.json"))["reason"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            reason.contains(named) && reason.contains("nothing was changed"),
            "{what}: {reason}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("weight")).unwrap(),
            "0",
            "{what}: the canary's weight moved"
        );
    }
}

static BUSY_THEN_HEALTHY: AtomicUsize = AtomicUsize::new(0);

fn busy_once(request: &str) -> String {
    if BUSY_THEN_HEALTHY.fetch_add(1, Ordering::SeqCst) == 0 {
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy"
            .to_owned()
    } else {
        healthy(request)
    }
}

/// A server that records when each request came in.
fn timed_server(answer: fn(&str) -> String) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let times = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&times);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = read_request(&mut stream);
            kept.lock().unwrap().push(Instant::now());
            let _ = stream.write_all(answer(&request).as_bytes());
        }
    });
    (address, times)
}

#[test]
fn retry_after_in_seconds_is_waited_for_within_the_retry_budget() {
    let (address, times) = timed_server(busy_once);
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &format!("http://{address}"),
        &policy_yaml("", "", ""),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let times = times.lock().unwrap();
    assert!(
        times[1].duration_since(times[0]) >= Duration::from_secs(2),
        "the retry came {:?} after the 503 that asked for 2 s",
        times[1].duration_since(times[0])
    );
}

static BUSY_FOR_LONG: AtomicUsize = AtomicUsize::new(0);

fn busy_for_an_hour(_: &str) -> String {
    BUSY_FOR_LONG.fetch_add(1, Ordering::SeqCst);
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {}\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy",
        later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    )
}

#[test]
fn retry_after_beyond_the_budget_gives_up_at_once_saying_so() {
    let server = FakeServer::start(busy_for_an_hour);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        &policy_yaml("", "", ""),
        &[],
    );
    assert_eq!(run.code, 4, "{}", run.all());
    assert_eq!(
        server.requests().len(),
        1,
        "no retry when the server asks for an hour"
    );
    assert!(
        run.stderr.contains("Retry-After"),
        "the message says why it gave up:\n{}",
        run.all()
    );
    eprintln!("gave up after {:?}", started.elapsed());
}

/// A recording whose readings carry markup: an HTML tag, a markdown image and link, a
/// table-breaking pipe, a heading and a code fence.
fn hostile_recording(dir: &Path) -> PathBuf {
    let reason = "<img src=x onerror=alert(1)> ![tracker](http://evil.example/t.png) \
                  [click](http://evil.example/) | cell\n# heading\n```\n<script>alert(2)</script>";
    let recording = serde_json::json!({
        "format": "canary-recording/1",
        "service": "checkout",
        "started_at": "2026-11-22T10:00:00Z",
        "source": "a <b>bold</b> source",
        "ticks": [{
            "at": "2026-11-22T10:00:30Z",
            "window_seconds": 30,
            "readings": {
                "errors": {"reading": "invalid", "reason": reason},
                "no-restarts": {"reading": "no_data", "reason": reason}
            },
            "warnings": [reason]
        }]
    });
    let path = dir.join("hostile.json");
    std::fs::write(&path, recording.to_string()).unwrap();
    path
}

#[test]
fn markup_from_outside_is_escaped_in_every_report_format() {
    let dir = tempfile::tempdir().unwrap();
    let input = hostile_recording(dir.path());
    let policy = write_policy(dir.path(), "policy.yaml", &policy_yaml("", "", ""));
    let summary = dir.path().join("summary.md").display().to_string();
    let out = |format: &str, file: &str| format!("{format}:{}", dir.path().join(file).display());
    let run = canary(
        &[
            "analyze",
            "--policy",
            policy.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            &out("markdown", "report.md"),
            "--output",
            &out("html", "report.html"),
            "--output",
            &out("junit", "report.xml"),
            "--output",
            &out("json", "report.json"),
        ],
        &[("GITHUB_STEP_SUMMARY", summary.as_str())],
    );
    assert!(
        dir.path().join("report.md").exists(),
        "the reports were written:\n{}",
        run.all()
    );
    for file in ["report.md", "summary.md"] {
        let markdown = std::fs::read_to_string(dir.path().join(file)).unwrap();
        for raw in [
            "<img",
            "<script",
            "<b>",
            "![tracker](",
            "[click](",
            "\n# heading",
            "\n```",
        ] {
            assert!(
                !markdown.contains(raw),
                "{file} passes {raw:?} through raw:\n{markdown}"
            );
        }
        // Every table row still has its 8 columns: a pipe in the text did not add one.
        for row in markdown.lines().filter(|l| l.starts_with("| `")) {
            let cells = row.replace("\\|", "").matches('|').count();
            assert_eq!(cells, 9, "a pipe broke the table: {row}");
        }
    }
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for raw in ["<img", "<script", "<b>"] {
        assert!(!html.contains(raw), "the HTML report passes {raw:?}");
    }
    let junit = std::fs::read_to_string(dir.path().join("report.xml")).unwrap();
    for raw in ["<img", "<script", "<b>"] {
        assert!(!junit.contains(raw), "the JUnit report passes {raw:?}");
    }
    // The terminal summary carries no newline from the text: no line of it can pose as a
    // heading or a CI workflow command.
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("# heading")),
        "{}",
        run.all()
    );
    // The JSON report keeps the text as it was (JSON escapes it): it is data.
    let report = read_json(&dir.path().join("report.json"));
    assert!(report.to_string().contains("onerror"), "{report:#}");
}

/// A command gateway whose `set` fails at `fail_at` percent, printing what a gateway's
/// error might carry: the token it was handed (here from the environment) and its base64.
fn command_gateway_failing_at(dir: &Path, fail_at: u32) -> String {
    let weight = dir.join("weight");
    std::fs::write(&weight, "0").unwrap();
    let set = dir.join("set.sh");
    std::fs::write(
        &set,
        format!(
            "#!/bin/sh\nif [ \"$1\" = {fail_at} ]; then\n  echo \"gateway refused weight $1 for Authorization: Bearer $E2E_TOKEN\" >&2\n  printf '%s' \"$E2E_TOKEN\" | base64 >&2\n  exit 3\nfi\nprintf '%s' \"$1\" > {}\n",
            weight.display()
        ),
    )
    .unwrap();
    make_executable(&set);
    format!(
        "gateway:\n  command:\n    set: [\"{}\", \"{{weight}}\"]\n    get: [cat, \"{}\"]\n    timeout: 5s\n",
        set.display(),
        weight.display()
    )
}

static HEALTHY_THEN_ECHOING_500: AtomicUsize = AtomicUsize::new(0);

/// Healthy for the first two ticks (two checks each), then a 500 echoing the request.
fn healthy_then_echoing_500(request: &str) -> String {
    if HEALTHY_THEN_ECHOING_500.fetch_add(1, Ordering::SeqCst) < 4 {
        healthy(request)
    } else {
        internal_error(request)
    }
}

/// `canary rollout` of [`policy_yaml`] with `rollout` and `gateway` lines, every report
/// format and the step summary written into `dir`, and `canary status --json` after it.
fn rollout_with_reports(dir: &Path, url: &str, rollout: &str, gateway: &str) -> (Run, Run) {
    rollout_with_reports_and_env(dir, url, rollout, gateway, &[])
}

/// [`rollout_with_reports`] with more environment variables.
fn rollout_with_reports_and_env(
    dir: &Path,
    url: &str,
    rollout: &str,
    gateway: &str,
    envs: &[(&str, &str)],
) -> (Run, Run) {
    let state = dir.join("state");
    let policy = write_policy(
        dir,
        "policy.yaml",
        &policy_yaml("    bearer-token-env: E2E_TOKEN\n", rollout, gateway),
    );
    let summary = dir.join("step-summary.md").display().to_string();
    let out = |format: &str, file: &str| format!("{format}:{}", dir.join(file).display());
    let run = canary(
        &[
            "rollout",
            "--policy",
            policy.to_str().unwrap(),
            "--prometheus",
            url,
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
        ],
        &[
            ("E2E_TOKEN", TOKEN),
            ("GITHUB_STEP_SUMMARY", summary.as_str()),
        ]
        .into_iter()
        .chain(envs.iter().copied())
        .collect::<Vec<_>>(),
    );
    let status = canary(
        &[
            "status",
            "--service",
            "checkout",
            "--state-dir",
            state.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    (run, status)
}

/// Every requested report is there, says `error` with `reason_has` in its reason, lists
/// both checks with none passing; and no output holds the token in any form.
fn assert_error_reports(dir: &Path, run: &Run, status: &Run, reason_has: &str) {
    assert_eq!(run.code, 4, "{}", run.all());
    let report = read_json(&dir.join("report.json"));
    assert_eq!(report["exit_code"], 4, "{report:#}");
    assert_eq!(report["verdict"], "error", "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains(reason_has), "{reason}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "every criterion is listed: {report:#}");
    for file in ["report.md", "report.html", "report.xml", "step-summary.md"] {
        let text = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|err| panic!("{file} was not written: {err}\n{}", run.all()));
        assert!(text.contains("error"), "{file} says error:\n{text}");
    }
    let junit = std::fs::read_to_string(dir.join("report.xml")).unwrap();
    assert!(
        junit.contains("<error ") && !junit.contains(r#"errors="0""#),
        "JUnit fails the run:\n{junit}"
    );
    assert_eq!(status.code, 0, "{}", status.all());
    let mut outputs = outputs_of(run, dir);
    outputs.push(("status --json".to_owned(), status.stdout.clone()));
    assert_no_secret(&outputs, &[TOKEN]);
}

/// Issue 13.3: a gateway failing mid-rollout (its error carrying the token) stops the
/// rollout with exit 4; every requested report is still written, with the failure as the
/// verdict's reason, and JUnit fails the run though every check passed.
#[test]
fn a_gateway_failing_mid_rollout_still_writes_every_report_without_the_token() {
    let server = FakeServer::start(healthy);
    let dir = tempfile::tempdir().unwrap();
    let (run, status) = rollout_with_reports(
        dir.path(),
        &format!("http://{}", server.address),
        "  steps: [10, 50, 100]\n  step-duration: 2s\n  max-step-duration: 4s\n  min-requests: 0\n",
        &command_gateway_failing_at(dir.path(), 50),
    );
    assert!(
        std::fs::read_to_string(dir.path().join("weight")).unwrap() == "10",
        "the first step was reached before the gateway failed:\n{}",
        run.all()
    );
    assert_error_reports(dir.path(), &run, &status, "the gateway failed: command at");
}

/// Issue 13.3: metrics that become unreadable mid-rollout (a 500 echoing the token) stop
/// the rollout with exit 4 after `max-failed-ticks`; every report is written, verdict
/// `error`.
#[test]
fn metrics_failing_mid_rollout_still_write_every_report_without_the_token() {
    let server = FakeServer::start(healthy_then_echoing_500);
    let dir = tempfile::tempdir().unwrap();
    let (run, status) = rollout_with_reports(
        dir.path(),
        &format!("http://{}", server.address),
        "  steps: [10, 100]\n  step-duration: 30s\n  min-requests: 0\n  max-failed-ticks: 2\n",
        &command_gateway(dir.path()),
    );
    assert!(
        server.requests().len() > 4,
        "healthy ticks came first:\n{}",
        run.all()
    );
    assert_error_reports(dir.path(), &run, &status, "could not be read");
}

/// A webhook signing key (hooks and notifications).
const HOOK_SECRET: &str = "hk-7Yq2/x+Zw9=never-print";
/// The secret part of a Slack incoming-webhook URL.
const SLACK_PATH: &str = "/services/T0CANARY/B0E2E/slk9Qx7Zp2Lw4Nv8";

/// A receiver that fails, quoting everything it was sent and the signing key it holds (a
/// receiver explaining the signature it expected).
fn echoing_receiver(request: &str) -> String {
    http(
        "500 Internal Server Error",
        "text/plain",
        &format!("receiver failed on: {request} (expected a signature under key {HOOK_SECRET})"),
    )
}

/// Issue 13: hook output (a command's stdout and stderr), a hook webhook's answer, and the
/// answers of a notification webhook and of a Slack receiver, each echoing every secret the
/// process holds in several encodings, reach no output: not the streams, the reports, the
/// step summary, the state or `status --json`.
#[test]
fn hooks_and_notifications_echoing_secrets_leak_them_nowhere() {
    let prometheus = FakeServer::start(healthy);
    let receiver = FakeServer::start(echoing_receiver);
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"smoke test saw Authorization: Bearer $E2E_TOKEN and key $E2E_HOOK_SECRET\"\nprintf '%s' \"$E2E_TOKEN\" | base64 >&2\necho \"slack: $E2E_SLACK_URL\" >&2\nexit 1\n",
    )
    .unwrap();
    make_executable(&hook);
    let slack_url = format!("http://{}{SLACK_PATH}", receiver.address);
    let extra = format!(
        "{}hooks:\n  - name: smoke\n    on: [before, step]\n    command: [\"{}\"]\n    timeout: 5s\n    on-failure: ignore\n    \
         env: {{pass: [E2E_TOKEN, E2E_HOOK_SECRET, E2E_SLACK_URL]}}\n  \
         - name: announce\n    on: [step]\n    webhook: {{url: \"http://{}/hook\", secret-env: E2E_HOOK_SECRET}}\n    on-failure: ignore\n\
         notify:\n  - webhook:\n      url: http://{}/notify\n      secret-env: E2E_HOOK_SECRET\n    on: [started, step, promoted]\n  \
         - slack:\n      webhook-url-env: E2E_SLACK_URL\n    on: [started, step, promoted]\n",
        command_gateway(dir.path()),
        hook.display(),
        receiver.address,
        receiver.address,
    );
    let (run, status) = rollout_with_reports_and_env(
        dir.path(),
        &format!("http://{}", prometheus.address),
        "  steps: [50, 100]\n  step-duration: 2s\n  min-requests: 0\n",
        &extra,
        &[
            ("E2E_HOOK_SECRET", HOOK_SECRET),
            ("E2E_SLACK_URL", &slack_url),
        ],
    );
    assert_eq!(
        run.code,
        0,
        "failed hooks and notifications are ignored: {}",
        run.all()
    );
    let paths: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| canary_tests::fake_http::path_of(r).to_owned())
        .collect();
    for path in ["/hook", "/notify", SLACK_PATH] {
        assert!(
            paths.iter().any(|p| p == path),
            "{path} was called: {paths:?}\n{}",
            run.all()
        );
    }
    assert!(
        run.stderr.contains("slack: [redacted]"),
        "the hook's output is shown, redacted, though it came before the Slack URL's first \
         use:\n{}",
        run.all()
    );
    let mut outputs = outputs_of(&run, dir.path());
    outputs.push(("status --json".to_owned(), status.stdout.clone()));
    assert_no_secret(&outputs, &[TOKEN, HOOK_SECRET, SLACK_PATH, &slack_url]);
}

/// Issue 13: a real NGINX's own error output carrying the token (a reload wrapper handing
/// NGINX the token from the second reload on, which NGINX quotes back as an unknown
/// directive) stops the rollout with exit 4 at its second step, and no output holds the
/// token.
#[test]
fn nginx_quoting_the_token_in_its_reload_error_leaks_it_nowhere() {
    let prometheus = FakeServer::start(healthy);
    let canary_version = FakeServer::start(accepting_receiver);
    let nginx = canary_tests::nginx::Nginx::start(&prometheus.address, &canary_version.address);
    let dir = tempfile::tempdir().unwrap();
    let reload = dir.path().join("reload.sh");
    let mut command = nginx.reload_command();
    let signal = command.split_off(command.len() - 2);
    let quoted: Vec<String> = command.iter().map(|a| format!("'{a}'")).collect();
    std::fs::write(
        &reload,
        format!(
            "#!/bin/sh\nif [ ! -e '{marker}' ]; then touch '{marker}'; exec {cmd} {signal}; fi\nexec {cmd} -g \"$E2E_TOKEN;\" {signal}\n",
            marker = dir.path().join("reloaded-once").display(),
            cmd = quoted.join(" "),
            signal = signal.join(" ")
        ),
    )
    .unwrap();
    make_executable(&reload);
    let gateway = format!(
        "gateway:\n  nginx:\n    upstream-file: {}\n    upstream: app\n    canary: {}\n    stable: {}\n    reload: [\"{}\"]\n",
        nginx.upstream_file().display(),
        canary_version.address,
        prometheus.address,
        reload.display()
    );
    let (run, status) = rollout_with_reports(
        dir.path(),
        &format!("http://{}", prometheus.address),
        "  steps: [50, 100]\n  step-duration: 2s\n  min-requests: 0\n",
        &gateway,
    );
    assert!(
        run.stderr.contains("unknown directive \"[redacted]\""),
        "NGINX's own words, redacted:\n{}",
        run.all()
    );
    assert_error_reports(dir.path(), &run, &status, "the gateway failed");
}

/// Issue 13: the HAProxy runtime API's answer, quoting a secret: a fake runtime API socket
/// (named as such: a real HAProxy never receives the token, so it cannot quote it) answers
/// every command with an error that holds the token raw and in base64.
#[test]
fn a_haproxy_answer_quoting_the_token_leaks_it_nowhere() {
    use std::os::unix::net::UnixListener;
    let prometheus = FakeServer::start(healthy);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let _ = write!(
                stream,
                "No such server: {} (session Bearer {TOKEN}, {})\n\n",
                line.trim(),
                base64(TOKEN.as_bytes(), false, true)
            );
        }
    });
    let gateway = format!(
        "gateway:\n  haproxy:\n    socket: {}\n    backend: app\n    canary-server: canary\n    stable-server: stable\n",
        socket.display()
    );
    let (run, status) = rollout_with_reports(
        dir.path(),
        &format!("http://{}", prometheus.address),
        "  steps: [50, 100]\n  step-duration: 2s\n  min-requests: 0\n",
        &gateway,
    );
    assert!(
        run.stderr.contains("No such server"),
        "HAProxy's words are shown:\n{}",
        run.all()
    );
    let mut outputs = outputs_of(&run, dir.path());
    outputs.push(("status --json".to_owned(), status.stdout.clone()));
    assert_no_secret(&outputs, &[TOKEN]);
    assert_eq!(run.code, 4, "{}", run.all());
}

/// Scrape pages that fail quoting a secret the process holds (the notification webhook's
/// signing key, read when the `started` notice was signed).
fn scrape_page_quoting_the_key(request: &str) -> String {
    http(
        "500 Internal Server Error",
        "text/html",
        &format!(
            "<html><body>exporter failed for {} with key {HOOK_SECRET} / {}</body></html>",
            request.lines().next().unwrap_or_default(),
            percent(HOOK_SECRET, false)
        ),
    )
}

fn accepting_receiver(_: &str) -> String {
    http("200 OK", "text/plain", "ok")
}

/// Issue 13: `/metrics` pages (the scrape source) quoting a loaded secret leak it nowhere.
#[test]
fn scrape_pages_quoting_a_secret_leak_it_nowhere() {
    // The pages are healthy until the `started` webhook (which carries the key) has gone out,
    // so that the pre-flight passes and the key is in use when the pages start quoting it.
    let notified = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = notified.clone();
    let pages = FakeServer::start(move |request| {
        if seen.load(std::sync::atomic::Ordering::SeqCst) {
            scrape_page_quoting_the_key(request)
        } else {
            http(
                "200 OK",
                "text/plain; version=0.0.4",
                "# TYPE http_requests_total counter\nhttp_requests_total{version=\"canary\",code=\"200\"} 1\nhttp_requests_total{version=\"stable\",code=\"200\"} 1\n",
            )
        }
    });
    let heard = notified.clone();
    let receiver = FakeServer::start(move |request| {
        heard.store(true, std::sync::atomic::Ordering::SeqCst);
        accepting_receiver(request)
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = write_policy(
        dir.path(),
        "policy.yaml",
        &format!(
            r#"service: checkout
traffic:
  label: version
  canary: canary
  baseline: stable
metrics:
  scrape:
    canary: ['http://{pages}/metrics']
    baseline: ['http://{pages}/metrics']
    timeout: 2s
rollout:
  steps: [50, 100]
  step-duration: 10s
  interval: 1s
  min-requests: 0
  max-failed-ticks: 2
{gateway}notify:
  - webhook:
      url: http://{receiver}/notify
      secret-env: E2E_HOOK_SECRET
    on: [started]
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 1%
"#,
            pages = pages.address,
            receiver = receiver.address,
            gateway = command_gateway(dir.path()),
        ),
    );
    let summary = dir.path().join("step-summary.md").display().to_string();
    let out = |format: &str, file: &str| format!("{format}:{}", dir.path().join(file).display());
    let run = canary(
        &[
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
        ],
        &[
            ("E2E_HOOK_SECRET", HOOK_SECRET),
            ("GITHUB_STEP_SUMMARY", summary.as_str()),
        ],
    );
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(!receiver.requests().is_empty(), "the key was used first");
    assert!(
        run.stderr
            .contains("exporter failed for GET /metrics HTTP/1.1 with key [redacted]"),
        "the page is shown, redacted:\n{}",
        run.all()
    );
    assert!(dir.path().join("report.json").exists(), "{}", run.all());
    assert_no_secret(&outputs_of(&run, dir.path()), &[HOOK_SECRET]);
}

/// Issue 13.3, the rollout's error path proper: the state store failing mid-rollout (the
/// state file replaced by a directory, so no save can land) stops the drive with an error,
/// not a decision of the machine; every requested report is still written, verdict `error`
/// with the store's failure as the reason, and JUnit fails the run.
#[test]
fn a_state_store_failing_mid_rollout_still_writes_every_report() {
    let server = FakeServer::start(healthy);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = write_policy(
        dir.path(),
        "policy.yaml",
        &policy_yaml(
            "    bearer-token-env: E2E_TOKEN\n",
            "  steps: [10, 100]\n  step-duration: 60s\n  min-requests: 0\n",
            &command_gateway(dir.path()),
        ),
    );
    let summary = dir.path().join("step-summary.md").display().to_string();
    let out = |format: &str, file: &str| format!("{format}:{}", dir.path().join(file).display());
    let url = format!("http://{}", server.address);
    let (mut process, stderr) = crate::canary_run::spawn_canary(
        &[
            "rollout",
            "--policy",
            policy.to_str().unwrap(),
            "--prometheus",
            &url,
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
        ],
        &[
            ("E2E_TOKEN", TOKEN),
            ("GITHUB_STEP_SUMMARY", summary.as_str()),
        ],
    );
    let file = state.join("checkout.json");
    assert!(
        canary_tests::wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(dir.path().join("weight")).is_ok_and(|w| w == "10")
                && file.is_file()
        }),
        "the first step was reached and saved"
    );
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("in-the-way"), "").unwrap();
    let status = process.wait_exit(Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(200));
    let stderr = stderr.try_iter().collect::<Vec<String>>().join("\n");
    assert_eq!(status.code(), Some(4), "{stderr}");
    let report = read_json(&dir.path().join("report.json"));
    assert_eq!(report["exit_code"], 4, "{report:#}");
    assert_eq!(report["verdict"], "error", "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the rollout stopped on an infrastructure failure")
            && reason.contains("checkout.json"),
        "{reason}"
    );
    for file in ["report.md", "report.html", "report.xml", "step-summary.md"] {
        let text = std::fs::read_to_string(dir.path().join(file))
            .unwrap_or_else(|err| panic!("{file} was not written: {err}\n{stderr}"));
        assert!(text.contains("error"), "{file} says error:\n{text}");
    }
    let junit = std::fs::read_to_string(dir.path().join("report.xml")).unwrap();
    assert!(
        junit.contains(r#"errors="1""#) && junit.contains("<error message=\"the rollout stopped"),
        "JUnit fails the run:\n{junit}"
    );
    let run = Run {
        code: 4,
        stdout: String::new(),
        stderr,
    };
    assert_no_secret(&outputs_of(&run, dir.path()), &[TOKEN]);
}

/// The size of [`huge_answer_server`]'s answer of `series` series, in bytes.
fn huge_answer_size(series: usize) -> usize {
    let mut size =
        r#"{"status":"success","data":{"resultType":"vector","result":["#.len() + "]}}".len();
    for i in 0..series {
        size += usize::from(i > 0)
            + format!(
                r#"{{"metric":{{"__name__":"http_requests_total","version":"canary","pod":"checkout-canary-{i:08}","instance":"10.1.{}.{}:8080","path":"/api/v1/orders/{i}/items","job":"checkout"}},"value":[1767225600,"{i}"]}}"#,
                i / 256 % 256,
                i % 256
            )
            .len();
    }
    size
}

/// Peak RSS (KiB) of `canary analyze` of [`policy_yaml`] with `extra` under
/// `metrics.prometheus`, against `address` (GNU time); and the report's first check.
/// The query timeout is a minute, not the usual 2 s: these tests are about the size of an
/// answer, and on a loaded machine the fake takes seconds to write 200 MB (the suite saw a
/// 2 s timeout end the read first, and the report then named no size).
fn analyze_peak_rss(address: &str, extra: &str) -> (u64, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = policy_yaml(extra, "", "").replace("    timeout: 2s\n", "    timeout: 60s\n");
    assert!(yaml.contains("timeout: 60s"), "{yaml}");
    let policy = write_policy(dir.path(), "policy.yaml", &yaml);
    let time = canary_tests::require_program("time", "time");
    let report = dir.path().join("report.json");
    let (start, end) = ((now() - 2).to_string(), now().to_string());
    let output = std::process::Command::new(time)
        .arg("-v")
        .arg(canary_tests::binary("canary"))
        .args([
            "analyze",
            "--policy",
            policy.to_str().unwrap(),
            "--prometheus",
            &format!("http://{address}"),
            "--start",
            &start,
            "--end",
            &end,
            "--output",
            &format!("json:{}", report.display()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = read_json(&report);
    (peak_rss_kib(&stderr), report["checks"][0].clone())
}

/// Issue 13: an answer just under the 32 MiB cap (31 MiB, 156,000 series) is parsed, not
/// cut off; it is read straight into typed series and reading stops at `max-series`, so
/// canary's peak memory is the body and 10,000 series. With `max-series` raised so that
/// every series is read, the peak is what the typed series cost (both printed, and in
/// docs/benchmarks.md).
#[test]
fn a_31_mib_answer_under_the_cap_is_read_up_to_max_series_only() {
    let series = 156_000;
    let size = huge_answer_size(series);
    assert!(
        (31 * 1024 * 1024..32 * 1024 * 1024).contains(&size),
        "{size} bytes"
    );
    let address = huge_answer_server(series);
    let (peak, check) = analyze_peak_rss(&address, "");
    let reason = check["reason"].as_str().unwrap_or_default();
    eprintln!(
        "31 MiB answer ({size} bytes, {series} series), default max-series: peak RSS {peak} KiB"
    );
    assert!(
        reason.contains("more than the 10000 series allowed"),
        "{reason}"
    );
    // The body (up to 32 MiB, held whole: it is parsed in one pass) and 10,000 typed series
    // on top of the process's own ~22 MiB: measured at 64 MiB (docs/benchmarks.md). The bound
    // asserted is looser than the measurement, to catch a regression (a JSON tree of the
    // whole answer would be several hundred MiB), not to time the machine.
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB is over 96 MiB");
    let (peak_all, check) = analyze_peak_rss(&address, "    max-series: 1000000\n");
    eprintln!(
        "31 MiB answer, max-series 1000000 (every series read): peak RSS {peak_all} KiB; {}",
        check["reason"]
    );
}

/// Issue 13: a secret too short to be redacted (under 4 characters) is refused before
/// anything is sent or changed, exit 2, naming the variable and the length — by
/// `analyze`, by `rollout` before the first weight, and by `policy lint` in the same
/// environment.
#[test]
fn a_secret_shorter_than_four_characters_is_refused_before_anything_runs() {
    let server = FakeServer::start(healthy);
    let dir = tempfile::tempdir().unwrap();
    let message = "the environment variable E2E_TOKEN holds a secret of 3 characters; canary needs at least 4";
    let run = analyze(
        dir.path(),
        &format!("http://{}", server.address),
        &policy_yaml("    bearer-token-env: E2E_TOKEN\n", "", ""),
        &[("E2E_TOKEN", "Zq9")],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains(message), "{}", run.all());
    assert!(!run.all().contains("Zq9"), "{}", run.all());
    let (run, _) = rollout_with_reports_and_env(
        dir.path(),
        &format!("http://{}", server.address),
        "  steps: [50, 100]\n  step-duration: 2s\n  min-requests: 0\n",
        &command_gateway(dir.path()),
        &[("E2E_TOKEN", "Zq9")],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains(message), "{}", run.all());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("weight")).unwrap(),
        "0",
        "no weight was set"
    );
    assert!(server.requests().is_empty(), "nothing was sent");
    let lint = canary(
        &[
            "policy",
            "lint",
            dir.path().join("policy.yaml").to_str().unwrap(),
        ],
        &[("E2E_TOKEN", "Zq9")],
    );
    assert_eq!(lint.code, 2, "{}", lint.all());
    assert!(lint.all().contains(message), "{}", lint.all());
}
