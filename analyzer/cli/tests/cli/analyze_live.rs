//! `canary analyze` from a live source, as far as it goes without a Prometheus (those tests
//! are in the workspace's `tests/e2e`): bad ranges and missing URLs are bad input (2), an
//! unreachable source is an infrastructure error (4) naming its address.

use crate::util::canary;

fn policy(dir: &std::path::Path, metrics: &str) -> String {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "service: checkout\n\
             traffic: {{label: version, canary: canary, baseline: stable}}\n\
             metrics:\n{metrics}\n\
             rollout: {{interval: 10s}}\n\
             checks:\n\
             \x20 - name: errors\n\
             \x20   error-rate: {{requests: http_requests_total, errors: 'code=~\"5..\"'}}\n\
             \x20   slo: {{max: 1%}}\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

const PROMETHEUS_WITHOUT_URL: &str = "  prometheus: {timeout: 1s, retries: 0}";

#[test]
fn a_policy_without_a_prometheus_url_and_no_flag_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), PROMETHEUS_WITHOUT_URL);
    let run = canary(&["analyze", "--policy", &policy, "--window", "5m"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("no Prometheus URL: give --prometheus URL or set metrics.prometheus.url"),
        "{}",
        run.all()
    );
}

#[test]
fn a_range_is_required_and_must_make_sense() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), PROMETHEUS_WITHOUT_URL);
    let url = "http://127.0.0.1:9";
    let run = canary(&["analyze", "--policy", &policy, "--prometheus", url]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("--window DURATION, --start TIME --end TIME, or --input FILE"),
        "{}",
        run.all()
    );

    let run = canary(&[
        "analyze",
        "--policy",
        &policy,
        "--prometheus",
        url,
        "--start",
        "1795000600",
        "--end",
        "1795000000",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("must be after --start"),
        "{}",
        run.all()
    );

    let run = canary(&[
        "analyze",
        "--policy",
        &policy,
        "--prometheus",
        url,
        "--start",
        "last tuesday",
        "--end",
        "1795000000",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("expected an RFC 3339 time"),
        "{}",
        run.all()
    );

    let run = canary(&[
        "analyze",
        "--policy",
        &policy,
        "--prometheus",
        url,
        "--window",
        "5m",
        "--start",
        "1795000000",
        "--end",
        "1795000600",
    ]);
    assert_eq!(run.code, 2, "--window and --start conflict\n{}", run.all());

    let run = canary(&[
        "analyze",
        "--policy",
        &policy,
        "--prometheus",
        url,
        "--input",
        "examples/recordings/healthy.json",
    ]);
    assert_eq!(
        run.code,
        2,
        "--input and --prometheus conflict\n{}",
        run.all()
    );
}

#[test]
fn a_scrape_policy_watches_the_present_only() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(
        dir.path(),
        "  scrape: {canary: ['http://127.0.0.1:9/metrics'], baseline: ['http://127.0.0.1:9/metrics']}",
    );
    let run = canary(&[
        "analyze",
        "--policy",
        &policy,
        "--start",
        "1795000000",
        "--end",
        "1795000600",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("reads the present only: use --window"),
        "{}",
        run.all()
    );
    let run = canary(&[
        "analyze",
        "--policy",
        &policy,
        "--prometheus",
        "http://127.0.0.1:9",
        "--window",
        "1m",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("reads its metrics by `scrape`"),
        "{}",
        run.all()
    );
}

#[test]
fn an_unreachable_source_exits_4_naming_its_address() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), PROMETHEUS_WITHOUT_URL);
    let url = format!("http://127.0.0.1:{port}");
    let run = canary(&[
        "analyze",
        "--policy",
        &policy,
        "--prometheus",
        &url,
        "--window",
        "1m",
    ]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stderr
            .contains(&format!("prometheus at {url}: cannot connect (1 attempts)")),
        "{}",
        run.all()
    );

    let scrape = policy_with_scrape(dir.path(), &format!("{url}/metrics"));
    let run = canary(&["analyze", "--policy", &scrape, "--window", "1m"]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stderr
            .contains(&format!("scrape at {url}/metrics: cannot scrape")),
        "{}",
        run.all()
    );
}

fn policy_with_scrape(dir: &std::path::Path, url: &str) -> String {
    let sub = dir.join("scrape");
    std::fs::create_dir_all(&sub).unwrap();
    policy(
        &sub,
        &format!("  scrape: {{canary: ['{url}'], baseline: ['{url}']}}"),
    )
}
