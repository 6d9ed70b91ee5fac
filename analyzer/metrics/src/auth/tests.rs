//! The managed-Prometheus auth and transport end to end through [`PrometheusSource`], each
//! against an in-process fake that checks the credentials as the real service does: the
//! SigV4 fake recomputes every signature (`canary_tests::fake_aws`), the fake STS exchanges
//! only the token and role it knows, the OAuth2 fake issues tokens that expire and its
//! Prometheus refuses an expired one, the TLS server requires a client certificate signed by
//! its CA. A refusal is exit code 4, and no credential is in any message.

use std::time::Duration;

use canary_core::observation::Reading;
use canary_core::policy::{MetricsSourceSpec, Policy};
use canary_tests::fake_aws::{self, AwsKey};
use canary_tests::fake_http::{FakeServer, header_of, http};
use canary_tests::fake_oauth2::FakeOAuth2;
use canary_tests::fake_tls::MutualTls;
use jiff::Timestamp;

use super::Environment;
use crate::prometheus::{PrometheusConfig, PrometheusSource};

/// A Prometheus answer the check reads as an observation.
const ANSWER: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0"]}]}}"#;

fn ok_answer() -> String {
    http("200 OK", "application/json", ANSWER)
}

fn policy(metrics: &str) -> Policy {
    let yaml = format!(
        "service: s\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
         metrics:\n  prometheus:\n    timeout: 2s\n    retries: 1\n{metrics}\
         rollout: {{min-requests: 0}}\n\
         checks:\n  - name: restarts\n    query: {{promql: 'sum(x)'}}\n    slo: {{max: 0}}\n"
    );
    Policy::from_yaml(&yaml, "test.yaml").unwrap()
}

fn source(url: &str, metrics: &str, env: &[(&str, &str)]) -> crate::Result<PrometheusSource> {
    let policy = policy(metrics);
    let MetricsSourceSpec::Prometheus(spec) = &policy.metrics else {
        unreachable!()
    };
    let mut config = PrometheusConfig::from_spec(spec, Some(url))?;
    config.backoff = Duration::from_millis(10);
    config.environment = Environment::of(env.iter().copied());
    PrometheusSource::new(config, &policy)
}

fn observed(tick: &canary_core::observation::Tick) -> bool {
    matches!(tick.readings["restarts"], Reading::Observed(_))
}

fn exit_code(err: crate::Error) -> canary_core::ExitCode {
    canary_core::Error::from(err).exit_code()
}

fn aws_key(secret: &str, token: Option<&str>) -> AwsKey {
    AwsKey {
        access_key_id: "AKIDCANARYTEST".to_owned(),
        secret_access_key: secret.to_owned(),
        session_token: token.map(str::to_owned),
        region: "us-east-1".to_owned(),
        service: "aps".to_owned(),
    }
}

const SIGV4: &str = "    sigv4: {region: us-east-1}\n";

#[test]
fn the_fake_verifier_accepts_aws_get_vanilla_vector_and_nothing_else() {
    // AWS's Signature Version 4 test suite, `get-vanilla`: the request as signed.
    let vanilla = "GET / HTTP/1.1\r\nHost:example.amazonaws.com\r\nX-Amz-Date:20150830T123600Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\r\n\r\n";
    let key = AwsKey {
        access_key_id: "AKIDEXAMPLE".to_owned(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
        session_token: None,
        region: "us-east-1".to_owned(),
        service: "service".to_owned(),
    };
    assert_eq!(fake_aws::verify_sigv4(vanilla, &key, None), Ok(()));
    let moved = vanilla.replace("GET / ", "GET /other ");
    assert!(fake_aws::verify_sigv4(&moved, &key, None).is_err());
    let wrong_secret = AwsKey {
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz".to_owned(),
        ..key.clone()
    };
    assert!(fake_aws::verify_sigv4(vanilla, &wrong_secret, None).is_err());
    // Two days later the signature has expired.
    let later = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160 + 172_800);
    assert!(fake_aws::verify_sigv4(vanilla, &key, Some(later)).is_err());
}

#[tokio::test]
async fn sigv4_with_environment_credentials_is_accepted_and_a_wrong_key_is_exit_4() {
    let secret = "env-secret-access-key-0123456789abcdefghij";
    let server = fake_aws::managed_prometheus(aws_key(secret, None), |_| ok_answer());
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDCANARYTEST"),
        ("AWS_SECRET_ACCESS_KEY", secret),
    ];
    let tick = source(&server.url(), SIGV4, &env)
        .unwrap()
        .read_tick(Timestamp::now(), Timestamp::now())
        .await
        .unwrap();
    assert!(observed(&tick));
    let request = &server.requests()[0];
    assert!(
        header_of(request, "authorization")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDCANARYTEST/")
    );

    let wrong = "env-secret-access-key-0123456789abcdefghiX";
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDCANARYTEST"),
        ("AWS_SECRET_ACCESS_KEY", wrong),
    ];
    let err = source(&server.url(), SIGV4, &env)
        .unwrap()
        .read_tick(Timestamp::now(), Timestamp::now())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("HTTP 403: authentication failed"),
        "{message}"
    );
    assert!(
        message.contains("signature we calculated does not match"),
        "{message}"
    );
    assert!(!message.contains(wrong), "{message}");
    assert_eq!(exit_code(err), canary_core::ExitCode::Infrastructure);
}

#[tokio::test]
async fn sigv4_reads_the_profile_of_the_shared_credentials_file() {
    let secret = "profile-secret-access-key-0123456789abcdef";
    let server = fake_aws::managed_prometheus(aws_key(secret, None), |_| ok_answer());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = not-this-one-at-all\n\n\
             [ci]\naws_access_key_id = AKIDCANARYTEST\naws_secret_access_key = {secret}\n"
        ),
    )
    .unwrap();
    let env = [("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap())];
    let metrics = "    sigv4: {region: us-east-1, profile: ci}\n";
    let tick = source(&server.url(), metrics, &env)
        .unwrap()
        .read_tick(Timestamp::now(), Timestamp::now())
        .await
        .unwrap();
    assert!(observed(&tick));
    // The default profile's key is not the workspace's: refused.
    let err = source(&server.url(), SIGV4, &env)
        .unwrap()
        .read_tick(Timestamp::now(), Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(exit_code(err), canary_core::ExitCode::Infrastructure);
    // No credentials anywhere: bad input when the source starts, saying where to put them.
    let err = source(&server.url(), SIGV4, &[]).unwrap_err();
    assert!(err.to_string().contains("no AWS credentials"), "{err}");
    assert_eq!(exit_code(err), canary_core::ExitCode::BadInput);
}

#[tokio::test]
async fn sigv4_with_a_web_identity_exchanges_the_token_once_and_signs_with_the_session() {
    let role = "arn:aws:iam::111122223333:role/canary";
    let web_token = "eyJhbGciOiJSUzI1NiJ9.a-projected-service-account-token.sig";
    let issued = aws_key(
        "temporary-secret-access-key-from-sts-0123",
        Some("session-token-from-the-fake-sts-0123456789"),
    );
    let issued = AwsKey {
        access_key_id: "ASIACANARYTEST".to_owned(),
        ..issued
    };
    let sts = fake_aws::sts(role, web_token, issued.clone(), Duration::from_secs(3600));
    let server = fake_aws::managed_prometheus(issued, |_| ok_answer());
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, web_token).unwrap();
    let sts_url = sts.url();
    let env = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", role),
        ("AWS_ENDPOINT_URL_STS", sts_url.as_str()),
    ];
    let source_ = source(&server.url(), SIGV4, &env).unwrap();
    for _ in 0..3 {
        let tick = source_
            .read_tick(Timestamp::now(), Timestamp::now())
            .await
            .unwrap();
        assert!(observed(&tick));
    }
    assert_eq!(
        sts.requests().len(),
        1,
        "the session is kept until it nears expiry"
    );
    assert_eq!(server.requests().len(), 3);
    assert!(header_of(&server.requests()[0], "x-amz-security-token").is_some());

    // A token the identity provider does not vouch for: STS refuses, exit 4, token unshown.
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.a-forged-token.sig").unwrap();
    let err = source(&server.url(), SIGV4, &env)
        .unwrap()
        .read_tick(Timestamp::now(), Timestamp::now())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("InvalidIdentityToken"), "{message}");
    assert!(!message.contains("a-forged-token"), "{message}");
    assert_eq!(exit_code(err), canary_core::ExitCode::Infrastructure);
}

/// The `oauth2` section for client `canary` whose secret is `secret`, written to a file in
/// `dir` (read again at every token exchange).
fn oauth2_policy(token_url: &str, dir: &tempfile::TempDir, secret: &str) -> String {
    let file = dir.path().join(format!("secret-{}", secret.len()));
    std::fs::write(&file, secret).unwrap();
    format!(
        "    oauth2:\n      token-url: '{token_url}'\n      client-id: canary\n      client-secret-file: '{}'\n      scopes: [metrics.read]\n",
        file.display()
    )
}

/// A Prometheus that accepts only the live tokens of `oauth`.
fn behind_oauth2(oauth: &FakeOAuth2) -> FakeServer {
    let valid = oauth.validator();
    FakeServer::start(move |request| {
        if valid(header_of(request, "authorization")) {
            ok_answer()
        } else {
            http("401 Unauthorized", "text/plain", "invalid or expired token")
        }
    })
}

#[tokio::test]
async fn an_oauth2_token_is_kept_until_it_expires_then_a_new_one_is_asked_for() {
    let client_secret = "oauth2-client-secret-value-0001";
    let dir = tempfile::tempdir().unwrap();
    let long = FakeOAuth2::start("canary", client_secret, Duration::from_secs(3600));
    let prometheus = behind_oauth2(&long);
    let source_ = source(
        &prometheus.url(),
        &oauth2_policy(&long.token_url(), &dir, client_secret),
        &[],
    )
    .unwrap();
    for _ in 0..3 {
        let tick = source_
            .read_tick(Timestamp::now(), Timestamp::now())
            .await
            .unwrap();
        assert!(observed(&tick));
    }
    assert_eq!(long.issued(), 1, "one token for three ticks");
    let token_request = &long.server.requests()[0];
    assert!(
        token_request.contains("grant_type=client_credentials"),
        "{token_request}"
    );
    assert!(
        token_request.contains("scope=metrics.read"),
        "{token_request}"
    );

    // Tokens that live one second: each tick after one expired asks for a new one, and
    // Prometheus (which refuses expired tokens) accepts every request.
    let short = FakeOAuth2::start("canary", client_secret, Duration::from_secs(1));
    let prometheus = behind_oauth2(&short);
    let source_ = source(
        &prometheus.url(),
        &oauth2_policy(&short.token_url(), &dir, client_secret),
        &[],
    )
    .unwrap();
    for _ in 0..2 {
        let tick = source_
            .read_tick(Timestamp::now(), Timestamp::now())
            .await
            .unwrap();
        assert!(observed(&tick));
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(short.issued(), 2);
}

#[tokio::test]
async fn a_refused_oauth2_client_is_exit_4_and_its_secret_is_never_shown() {
    let right = "oauth2-client-secret-value-0002";
    let wrong = "oauth2-client-secret-WRONG-0002";
    let oauth = FakeOAuth2::start("canary", right, Duration::from_secs(3600));
    let prometheus = behind_oauth2(&oauth);
    let dir = tempfile::tempdir().unwrap();
    let err = source(
        &prometheus.url(),
        &oauth2_policy(&oauth.token_url(), &dir, wrong),
        &[],
    )
    .unwrap()
    .read_tick(Timestamp::now(), Timestamp::now())
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("refused client \"canary\": HTTP 401 invalid_client"),
        "{message}"
    );
    assert!(!message.contains(wrong), "{message}");
    assert_eq!(exit_code(err), canary_core::ExitCode::Infrastructure);
    assert!(prometheus.requests().is_empty(), "no query without a token");

    // A token endpoint that echoes the secret back in its error: redacted.
    let echo = FakeServer::start(move |_| {
        http(
            "400 Bad Request",
            "application/json",
            &format!(r#"{{"error":"invalid_request","error_description":"bad secret {wrong}"}}"#),
        )
    });
    let err = source(
        &prometheus.url(),
        &oauth2_policy(&format!("{}/token", echo.url()), &dir, wrong),
        &[],
    )
    .unwrap()
    .read_tick(Timestamp::now(), Timestamp::now())
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("bad secret [redacted]"), "{message}");
    assert!(!message.contains(wrong), "{message}");
}

#[tokio::test]
async fn a_client_certificate_gets_through_mutual_tls_and_none_or_a_strangers_does_not() {
    let tls = MutualTls::new();
    let server = tls.serve(|_| ok_answer());
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let ca = write("ca.pem", &tls.ca_pem);
    let cert = write("client.pem", &tls.client_cert_pem);
    let key = write("client-key.pem", &tls.client_key_pem);
    let stranger_cert = write("stranger.pem", &tls.stranger_cert_pem);
    let stranger_key = write("stranger-key.pem", &tls.stranger_key_pem);

    let with_cert = format!(
        "    ca-file: '{ca}'\n    client-cert-file: '{cert}'\n    client-key-file: '{key}'\n"
    );
    let tick = source(&server.url(), &with_cert, &[])
        .unwrap()
        .read_tick(Timestamp::now(), Timestamp::now())
        .await
        .unwrap();
    assert!(observed(&tick));
    assert_eq!(server.requests().len(), 1);

    for metrics in [
        format!("    ca-file: '{ca}'\n"),
        format!(
            "    ca-file: '{ca}'\n    client-cert-file: '{stranger_cert}'\n    client-key-file: '{stranger_key}'\n"
        ),
    ] {
        let err = source(&server.url(), &metrics, &[])
            .unwrap()
            .read_tick(Timestamp::now(), Timestamp::now())
            .await
            .unwrap_err();
        assert_eq!(exit_code(err), canary_core::ExitCode::Infrastructure);
    }
    assert_eq!(
        server.requests().len(),
        1,
        "no request got through without the right certificate"
    );

    // A key that is not a key: bad input when the source starts.
    let not_a_key = write(
        "not-a-key.pem",
        "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
    );
    let metrics = format!("    client-cert-file: '{cert}'\n    client-key-file: '{not_a_key}'\n");
    let err = source(&server.url(), &metrics, &[]).unwrap_err();
    assert_eq!(exit_code(err), canary_core::ExitCode::BadInput);
}

#[tokio::test]
async fn queries_go_through_the_proxy_the_policy_names() {
    let proxy = FakeServer::start(|_| ok_answer());
    let metrics = format!("    proxy-url: '{}'\n", proxy.url());
    let tick = source("http://prometheus.invalid:9090", &metrics, &[])
        .unwrap()
        .read_tick(Timestamp::now(), Timestamp::now())
        .await
        .unwrap();
    assert!(observed(&tick));
    let request = &proxy.requests()[0];
    assert!(
        request.starts_with("POST http://prometheus.invalid:9090/api/v1/query HTTP/1.1"),
        "the proxy is asked for the server's URL: {request}"
    );
}
