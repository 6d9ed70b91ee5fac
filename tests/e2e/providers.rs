//! Managed-Prometheus auth through the `canary` binary: the credentials of SigV4 (an AWS
//! secret key and session token from the environment) and of OAuth2 (a client secret, and the
//! access token the token endpoint gives) reach the fakes that verify them, and when the
//! server echoes the request back in its error text, none of them is in any output (streams,
//! the four report formats, the step summary). Datadog's two keys and CloudWatch's AWS
//! credentials likewise.

use std::path::Path;
use std::time::Duration;

use canary_tests::fake_aws::{self, AwsKey};
use canary_tests::fake_http::{FakeServer, header_of, http};
use canary_tests::fake_oauth2::FakeOAuth2;
use canary_tests::leaks::{self, assert_no_secret};

use crate::canary_run::{Run, analyze_last_5s_with_every_report, canary, write_policy};

/// An AWS secret access key with characters every encoding changes.
const AWS_SECRET: &str = "wJal/rXUtn+FEMI=K7MD&ENG-never<print>me";
/// An STS-style session token.
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEB/session+token=never-print";
/// An OAuth2 client secret.
const CLIENT_SECRET: &str = "oauth2/client+secret=never-print";

/// A 400 `bad_data` quoting the whole request head, as some gateways do.
fn echoing(request: &str) -> String {
    let head = request.split("\r\n\r\n").next().unwrap_or_default();
    let body = format!(
        r#"{{"status":"error","errorType":"bad_data","error":{}}}"#,
        serde_json::to_string(&format!("request was: {head}")).unwrap()
    );
    http("400 Bad Request", "application/json", &body)
}

fn policy(auth: &str) -> String {
    format!(
        "service: checkout\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
         metrics:\n  prometheus:\n    timeout: 2s\n    retries: 1\n{auth}\
         rollout: {{interval: 1s}}\n\
         checks:\n  - name: errors\n    error-rate: {{requests: http_requests_total, errors: 'code=~\"5..\"'}}\n    slo: {{max: 1%}}\n"
    )
}

fn analyze(dir: &Path, url: &str, policy: &str, envs: &[(&str, &str)]) -> Run {
    analyze_last_5s_with_every_report(dir, url, policy, envs)
}

#[test]
fn sigv4_credentials_echoed_by_the_server_leak_nowhere() {
    let key = AwsKey {
        access_key_id: "ASIAE2ETEST".to_owned(),
        secret_access_key: AWS_SECRET.to_owned(),
        session_token: Some(SESSION_TOKEN.to_owned()),
        region: "eu-west-1".to_owned(),
        service: "aps".to_owned(),
    };
    let server = fake_aws::managed_prometheus(key, echoing);
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &server.url(),
        &policy("    sigv4: {region: eu-west-1}\n"),
        &[
            ("AWS_ACCESS_KEY_ID", "ASIAE2ETEST"),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ],
    );
    let request = &server.requests()[0];
    assert_eq!(
        header_of(request, "x-amz-security-token"),
        Some(SESSION_TOKEN),
        "the signed request reached the server"
    );
    assert!(
        run.all().contains("request was: POST /api/v1/query"),
        "the server's echo (its signature verified) is shown, redacted:\n{}",
        run.all()
    );
    assert!(dir.path().join("report.json").exists(), "{}", run.all());
    assert_no_secret(
        &leaks::outputs_of(&run.stdout, &run.stderr, dir.path()),
        &[AWS_SECRET, SESSION_TOKEN],
    );
}

#[test]
fn an_oauth2_client_secret_and_its_access_token_echoed_leak_nowhere() {
    let oauth = FakeOAuth2::start("canary-e2e", CLIENT_SECRET, Duration::from_secs(3600));
    let valid = oauth.validator();
    let server = FakeServer::start(move |request| {
        if valid(header_of(request, "authorization")) {
            echoing(request)
        } else {
            http("401 Unauthorized", "text/plain", "no token")
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("password");
    std::fs::write(&secret_file, CLIENT_SECRET).unwrap();
    let run = analyze(
        dir.path(),
        &server.url(),
        &policy(&format!(
            "    oauth2:\n      token-url: '{}'\n      client-id: canary-e2e\n      client-secret-file: '{}'\n",
            oauth.token_url(),
            secret_file.display()
        )),
        &[],
    );
    assert_eq!(oauth.issued(), 1, "{}", run.all());
    let token = header_of(&server.requests()[0], "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("the query carried the token")
        .to_owned();
    assert!(
        run.all().contains("request was: POST /api/v1/query"),
        "the server's echo is shown, redacted:\n{}",
        run.all()
    );
    assert_no_secret(
        &leaks::outputs_of(&run.stdout, &run.stderr, dir.path()),
        &[CLIENT_SECRET, &token],
    );
}

#[test]
fn aws_secrets_in_the_environment_are_read_when_a_sigv4_policy_is_loaded() {
    // Learnt at load (so that a hook's output quoting them is redacted before the first
    // query): one too short to be redacted is refused then, by `policy lint` too.
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "policy.yaml",
        &policy("    sigv4: {region: eu-west-1}\n"),
    );
    let run = canary(
        &["policy", "lint", policy.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDSHORT"),
            ("AWS_SECRET_ACCESS_KEY", "abc"),
        ],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.all().contains("AWS_SECRET_ACCESS_KEY"), "{}", run.all());
    let run = canary(
        &["policy", "lint", policy.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDLONG"),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
}

/// A Datadog key pair with characters every encoding changes.
const DD_API_KEY: &str = "dd/api+key=never<print>0001";
const DD_APP_KEY: &str = "dd/app+key=never<print>0002";

/// Datadog's 400 quoting the request's keys (first, so that they are within what an error
/// shows of it), once both keys verified.
fn datadog_echoing(request: &str) -> String {
    let (Some(api), Some(app)) = (
        header_of(request, "dd-api-key"),
        header_of(request, "dd-application-key"),
    ) else {
        return http(
            "403 Forbidden",
            "application/json",
            r#"{"errors":["Forbidden"]}"#,
        );
    };
    if api != DD_API_KEY || app != DD_APP_KEY {
        return http(
            "403 Forbidden",
            "application/json",
            r#"{"errors":["Forbidden"]}"#,
        );
    }
    let body = format!(
        r#"{{"errors":[{}]}}"#,
        serde_json::to_string(&format!(
            "request was: GET /api/v1/query with DD-API-KEY: {api}, DD-APPLICATION-KEY: {app}"
        ))
        .unwrap()
    );
    http("400 Bad Request", "application/json", &body)
}

#[test]
fn datadog_keys_echoed_by_the_server_leak_nowhere() {
    let server = FakeServer::start(datadog_echoing);
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let app_key = keys.path().join("dd-app-key");
    std::fs::write(&app_key, DD_APP_KEY).unwrap();
    let policy = format!(
        "service: checkout\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
         metrics:\n  datadog:\n    url: '{}'\n    api-key: {{env: DD_API_KEY}}\n    application-key: {{file: '{}'}}\n    timeout: 2s\n    retries: 1\n    lag: 0s\n\
         rollout: {{interval: 1s}}\n\
         checks:\n  - name: errors\n    datadog:\n      requests: 'sum:hits{{*}} by {{version}}.as_count()'\n      errors: 'sum:errors{{*}} by {{version}}.as_count()'\n    slo: {{max: 1%}}\n",
        server.url(),
        app_key.display()
    );
    let run =
        crate::generic_provider::analyze(dir.path(), &policy, false, &[("DD_API_KEY", DD_API_KEY)]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.all().contains("request was: GET /api/v1/query"),
        "the server's echo (both keys verified) is shown, redacted:\n{}",
        run.all()
    );
    assert!(dir.path().join("report.json").exists(), "{}", run.all());
    assert_no_secret(
        &leaks::outputs_of(&run.stdout, &run.stderr, dir.path()),
        &[DD_API_KEY, DD_APP_KEY],
    );
}

#[test]
fn cloudwatch_credentials_echoed_by_the_server_leak_nowhere() {
    let key = AwsKey {
        access_key_id: "ASIAE2ECLOUDWATCH".to_owned(),
        secret_access_key: AWS_SECRET.to_owned(),
        session_token: Some(SESSION_TOKEN.to_owned()),
        region: "eu-west-1".to_owned(),
        service: "monitoring".to_owned(),
    };
    // CloudWatch's 400 quoting the request's session token and signature.
    let server = fake_aws::cloudwatch(key, |request| {
        let head = format!(
            "POST / HTTP/1.1 with x-amz-security-token: {}, authorization: {}",
            header_of(request, "x-amz-security-token").unwrap_or_default(),
            header_of(request, "authorization").unwrap_or_default()
        );
        http(
            "400 Bad Request",
            fake_aws::CLOUDWATCH_CONTENT_TYPE,
            &format!(
                r#"{{"__type":"InvalidParameterValueException","message":{}}}"#,
                serde_json::to_string(&format!("request was: {head}")).unwrap()
            ),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "service: checkout\ntraffic: {{label: TargetGroup, canary: tg-canary, baseline: tg-stable}}\n\
         metrics:\n  cloudwatch:\n    region: eu-west-1\n    endpoint: '{}'\n    timeout: 2s\n    retries: 1\n    lag: 0s\n\
         rollout: {{interval: 1s}}\n\
         checks:\n  - name: errors\n    cloudwatch:\n      namespace: AWS/ApplicationELB\n      requests: RequestCount\n      errors: HTTPCode_Target_5XX_Count\n    slo: {{max: 1%}}\n",
        server.url()
    );
    let run = crate::generic_provider::analyze(
        dir.path(),
        &policy,
        false,
        &[
            ("AWS_ACCESS_KEY_ID", "ASIAE2ECLOUDWATCH"),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ],
    );
    assert_eq!(run.code, 4, "{}", run.all());
    let request = &server.requests()[0];
    assert_eq!(
        header_of(request, "x-amz-security-token"),
        Some(SESSION_TOKEN),
        "the signed request reached the server"
    );
    assert!(
        run.all().contains("request was: POST / HTTP/1.1"),
        "the server's echo (the signature verified) is shown, redacted:\n{}",
        run.all()
    );
    assert_no_secret(
        &leaks::outputs_of(&run.stdout, &run.stderr, dir.path()),
        &[AWS_SECRET, SESSION_TOKEN],
    );
    // Learnt at load, as for SigV4: one too short to be redacted is refused by lint.
    let path = write_policy(dir.path(), "policy.yaml", &policy);
    let lint = canary(
        &["policy", "lint", path.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDSHORT"),
            ("AWS_SECRET_ACCESS_KEY", "abc"),
        ],
    );
    assert_eq!(lint.code, 2, "{}", lint.all());
    assert!(
        lint.all().contains("AWS_SECRET_ACCESS_KEY"),
        "{}",
        lint.all()
    );
}
