//! Amazon CloudWatch (`metrics.cloudwatch`) through the `canary` binary, against a fake of
//! `GetMetricData` on loopback that recomputes every request's SigV4 signature as AWS does
//! (`canary_tests::fake_aws::cloudwatch`): the scenario table of the generic provider —
//! healthy, 3× the baseline's errors, no data, a provider error, a wrong secret key → exit
//! 0 / 1 / 3 / 4 / 4 — with `analyze --record` then `--input` giving the same verdicts and
//! no AWS secret in any output; one signed request per check per tick; lint and explain
//! saying which guarantee each check has.

use canary_tests::fake_aws::{self, AwsKey, CLOUDWATCH_CONTENT_TYPE, ListedMetric};
use canary_tests::fake_http::{FakeServer, body_of, header_of, http};

use crate::canary_run::{canary, write_policy};
use crate::generic_provider::{Scenario, Table, analyze, scenario_table};

const ACCESS_KEY_ID: &str = "AKIDCANARYCLOUDWATCH";
/// The secret key (characters every encoding changes).
const SECRET_KEY: &str = "cw/secret+key=never-print-0123456789abcd";
/// A wrong one, whose signatures CloudWatch refuses.
const WRONG_SECRET_KEY: &str = "cw/secret+key=never-print-wrong-56789abc";
const SESSION_TOKEN: &str = "cw-session-token/+=never-print-0123";

const TABLE: Table = Table {
    env: |scenario| {
        let secret = if scenario == Scenario::AuthFailure {
            WRONG_SECRET_KEY
        } else {
            SECRET_KEY
        };
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ]
    },
    secrets: &[SECRET_KEY, WRONG_SECRET_KEY, SESSION_TOKEN],
    no_data: "no datapoints for the canary",
};

fn key() -> AwsKey {
    AwsKey {
        access_key_id: ACCESS_KEY_ID.to_owned(),
        secret_access_key: SECRET_KEY.to_owned(),
        session_token: Some(SESSION_TOKEN.to_owned()),
        region: "eu-west-1".to_owned(),
        service: "monitoring".to_owned(),
    }
}

/// The `GetMetricData` answer of `body` for `scenario`: one datapoint per query over the
/// window, 1000 canary and 9000 baseline requests a second; errors at 0.1 % each, or 3 % and
/// 1 % when the canary is bad; no datapoints at all for no data.
fn answer(scenario: Scenario, body: &str) -> String {
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    let (start, end) = (
        body["StartTime"].as_i64().expect("StartTime"),
        body["EndTime"].as_i64().expect("EndTime"),
    );
    let seconds = (end - start) as f64;
    let (canary_rate, baseline_rate) = match scenario {
        Scenario::ThreeTimesErrors => (0.03, 0.01),
        _ => (0.001, 0.001),
    };
    let results: Vec<serde_json::Value> = body["MetricDataQueries"]
        .as_array()
        .expect("MetricDataQueries")
        .iter()
        .map(|query| {
            let id = query["Id"].as_str().expect("an Id");
            let value = match id {
                "canary_requests" => 1000.0 * seconds,
                "canary_errors" => (1000.0 * seconds * canary_rate).round(),
                "baseline_requests" => 9000.0 * seconds,
                "baseline_errors" => (9000.0 * seconds * baseline_rate).round(),
                _ => 0.0,
            };
            let (times, values) = if scenario == Scenario::NoData {
                (vec![], vec![])
            } else {
                (vec![start], vec![value])
            };
            serde_json::json!({"Id": id, "Label": id, "Timestamps": times, "Values": values, "StatusCode": "Complete"})
        })
        .collect();
    serde_json::json!({"MetricDataResults": results, "Messages": []}).to_string()
}

/// What the fake CloudWatch lists: the load balancer's two metrics, per target group.
fn listed() -> Vec<ListedMetric> {
    let mut listed = Vec::new();
    for name in ["RequestCount", "HTTPCode_Target_5XX_Count"] {
        for group in [
            "targetgroup/checkout-canary/1a2b",
            "targetgroup/checkout-stable/3c4d",
        ] {
            listed.push(ListedMetric {
                namespace: "AWS/ApplicationELB",
                name,
                dimensions: vec![
                    ("LoadBalancer", "app/checkout/50dc6c495c0c9188"),
                    ("TargetGroup", group),
                ],
            });
        }
    }
    listed
}

fn fake(scenario: Scenario) -> FakeServer {
    let listed = listed();
    fake_aws::cloudwatch(key(), move |request| {
        if let Some(answer) = fake_aws::list_metrics(request, &listed) {
            return answer;
        }
        match scenario {
            Scenario::ProviderError => http(
                "500 Internal Server Error",
                CLOUDWATCH_CONTENT_TYPE,
                r#"{"__type":"InternalFailure","message":"internal failure"}"#,
            ),
            _ => http(
                "200 OK",
                CLOUDWATCH_CONTENT_TYPE,
                &answer(scenario, body_of(request)),
            ),
        }
    })
}

const CHECKS: &str = "rollout: {interval: 1s, min-requests: 100}
checks:
  - name: errors
    cloudwatch:
      namespace: AWS/ApplicationELB
      dimensions: {LoadBalancer: app/checkout/50dc6c495c0c9188}
      requests: RequestCount
      errors: HTTPCode_Target_5XX_Count
    slo: {max: 2%}
    baseline: {max-increase: 50%}
";

fn policy(endpoint: &str) -> String {
    format!(
        "service: checkout\n\
         traffic: {{label: TargetGroup, canary: targetgroup/checkout-canary/1a2b, baseline: targetgroup/checkout-stable/3c4d}}\n\
         metrics:\n  cloudwatch:\n    region: eu-west-1\n    endpoint: '{endpoint}'\n    timeout: 2s\n    retries: 1\n{CHECKS}"
    )
}

#[test]
fn cloudwatch_scenarios_exit_0_1_3_4_4_replay_the_same_and_leak_no_secret() {
    scenario_table(&TABLE, |_, scenario| {
        let server = fake(scenario);
        (policy(&server.url()), Some(server))
    });
}

#[test]
fn cloudwatch_gets_one_signed_request_per_check_per_tick() {
    let server = fake(Scenario::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let env = (TABLE.env)(Scenario::Healthy);
    let run = analyze(dir.path(), &policy(&server.url()), false, &env);
    assert_eq!(run.code, 0, "{}", run.all());
    let (listing, requests): (Vec<String>, Vec<String>) = server
        .requests()
        .into_iter()
        .partition(|r| header_of(r, "x-amz-target") == Some(fake_aws::LIST_METRICS_TARGET));
    // Before judging, one signed ListMetrics per metric the counts read.
    assert_eq!(listing.len(), 2, "{}", run.all());
    for request in &listing {
        fake_aws::verify_sigv4(request, &key(), None).expect("ListMetrics signed");
    }
    assert_eq!(requests.len(), 5, "{}", run.all());
    for request in &requests {
        fake_aws::verify_sigv4(request, &key(), None).expect("signed for monitoring");
        assert_eq!(
            header_of(request, "x-amz-security-token"),
            Some(SESSION_TOKEN)
        );
        let authorization = header_of(request, "authorization").unwrap_or_default();
        assert!(
            authorization.contains("/eu-west-1/monitoring/aws4_request")
                && authorization
                    .contains("content-type;host;x-amz-date;x-amz-security-token;x-amz-target"),
            "{authorization}"
        );
        let body: serde_json::Value = serde_json::from_str(body_of(request)).unwrap();
        assert_eq!(body["MetricDataQueries"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn lint_and_explain_say_which_guarantee_a_cloudwatch_check_has() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy("https://monitoring.eu-west-1.amazonaws.com").replace(
        "    baseline: {max-increase: 50%}\n",
        "    baseline: {max-increase: 50%}\n  - name: p95\n    cloudwatch:\n      namespace: AWS/ApplicationELB\n      dimensions: {LoadBalancer: app/checkout/50dc6c495c0c9188}\n      percentile: TargetResponseTime\n    slo: {max: 500ms}\n",
    );
    let path = write_policy(dir.path(), "policy.yaml", &policy);
    let lint = canary(&["policy", "lint", path.to_str().unwrap()], &[]);
    assert_eq!(lint.code, 0, "{}", lint.all());
    assert!(
        lint.stderr.contains(
            "warning: rollout.interval: 1s: CloudWatch keeps standard-resolution metrics per minute"
        ),
        "{}",
        lint.all()
    );
    assert!(
        lint.stderr.contains(
            "warning: rollout.final-soak: none: cloudwatch makes datapoints available minutes after the fact"
        ),
        "{}",
        lint.all()
    );
    assert!(
        lint.stdout
            .contains("errors: guarantee: counts: the full sequential tests")
            && lint
                .stdout
                .contains("p95: guarantee: a percentile only: a bounded-value check"),
        "{}",
        lint.all()
    );
    let explain = canary(&["policy", "explain", path.to_str().unwrap()], &[]);
    assert_eq!(explain.code, 0, "{}", explain.all());
    for expected in [
        "# Source: CloudWatch GetMetricData, signed with SigV4 (service monitoring) (metrics.cloudwatch)",
        "POST https://monitoring.eu-west-1.amazonaws.com/",
        "\"Stat\":\"p95\"",
        "# p95: guarantee: a percentile only",
        "dimension TargetGroup=targetgroup/checkout-canary/1a2b",
    ] {
        assert!(
            explain.stdout.contains(expected),
            "{expected}\n{}",
            explain.all()
        );
    }
    // A percentile compared with the baseline is refused: it carries no counts.
    let bad = policy.replace(
        "    slo: {max: 500ms}\n",
        "    slo: {max: 500ms}\n    baseline: {max-increase: 10%}\n",
    );
    let path = write_policy(dir.path(), "bad.yaml", &bad);
    let lint = canary(&["policy", "lint", path.to_str().unwrap()], &[]);
    assert_eq!(lint.code, 2, "{}", lint.all());
    assert!(
        lint.stderr.contains("checks[1].baseline") && lint.stderr.contains("no counts"),
        "{}",
        lint.all()
    );
}

#[test]
fn a_misspelt_cloudwatch_errors_metric_stops_the_rollout_at_preflight_and_a_listed_one_with_no_errors_promotes()
 {
    // ALB publishes no datapoint for a 5XX count that stayed 0: no error datapoints at all,
    // for either version, whatever the errors metric is called.
    let listed = listed();
    let server = fake_aws::cloudwatch(key(), move |request| {
        if let Some(answer) = fake_aws::list_metrics(request, &listed) {
            return answer;
        }
        let answer: serde_json::Value =
            serde_json::from_str(&answer(Scenario::Healthy, body_of(request))).unwrap();
        let results: Vec<serde_json::Value> = answer["MetricDataResults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                if r["Id"].as_str().unwrap_or_default().ends_with("_errors") {
                    serde_json::json!({"Id": r["Id"], "Label": r["Id"], "Timestamps": [], "Values": [], "StatusCode": "Complete"})
                } else {
                    r.clone()
                }
            })
            .collect();
        http(
            "200 OK",
            CLOUDWATCH_CONTENT_TYPE,
            &serde_json::json!({"MetricDataResults": results, "Messages": []}).to_string(),
        )
    });
    let env = (TABLE.env)(Scenario::Healthy);
    let misspelt = tempfile::tempdir().unwrap();
    let bad =
        policy(&server.url()).replace("HTTPCode_Target_5XX_Count", "HTTPCode_Target_5xx_Count");
    let run = crate::datadog::short_rollout(misspelt.path(), &bad, &env);
    assert_eq!(run.code, 2, "{}", run.all());
    for said in [
        "pre-flight",
        "check `errors`",
        "does not know the metric AWS/ApplicationELB/HTTPCode_Target_5xx_Count",
        "ListMetrics lists none with the dimensions LoadBalancer=app/checkout/50dc6c495c0c9188, TargetGroup",
        "nothing was changed",
    ] {
        assert!(run.all().contains(said), "{said}\n{}", run.all());
    }
    assert!(
        !misspelt.path().join("set.log").exists(),
        "the gateway was never set:\n{}",
        run.all()
    );
    // A wrong shared dimension is not listed either.
    let wrong_lb =
        policy(&server.url()).replace("app/checkout/50dc6c495c0c9188", "app/checkout/0000");
    let run = analyze(misspelt.path(), &wrong_lb, false, &env);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.all()
            .contains("does not know the metric AWS/ApplicationELB/RequestCount"),
        "{}",
        run.all()
    );
    // Spelt right: the same answers (no error datapoints: 0 errors) promote.
    let known = tempfile::tempdir().unwrap();
    let run = crate::datadog::short_rollout(known.path(), &policy(&server.url()), &env);
    assert_eq!(run.code, 0, "{}", run.all());
    let log = std::fs::read_to_string(known.path().join("set.log")).unwrap_or_default();
    assert_eq!(log, "50\n100\n", "{}", run.all());
}
