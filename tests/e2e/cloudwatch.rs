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
use crate::generic_provider::{
    Scenario, Table, analyze, analyze_window, analyze_with, assert_same_analysis, scenario_table,
};

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
         metrics:\n  cloudwatch:\n    region: eu-west-1\n    endpoint: '{endpoint}'\n    timeout: 2s\n    retries: 1\n    lag: 0s\n{CHECKS}"
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
    // Tick by tick, as a rollout reads (a past window is one request per check: below).
    let run = analyze_with(
        dir.path(),
        &policy(&server.url()),
        false,
        &env,
        &["--query-per-tick"],
    );
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

/// A fake CloudWatch holding per-second data for `analyze` over a past window: 1000 canary and
/// 9000 baseline requests a second, 1 and 9 5XX a second until `bad_from` (Unix seconds),
/// then 50 for the canary; the canary's p95 200 ms to 260 ms. As CloudWatch answers
/// `GetMetricData`, `StartTime` is rounded down to the whole minute and each query gets one
/// datapoint per `Period` that begins before `EndTime`, stamped with its start and adding up
/// the seconds it covers. At most `page` datapoints of each result go in one answer; the
/// rest follow with a `NextToken` (the results not yet whole say `PartialData`).
fn per_second(bad_from: i64, page: usize) -> FakeServer {
    let listed = listed();
    fake_aws::cloudwatch(key(), move |request| {
        if let Some(answer) = fake_aws::list_metrics(request, &listed) {
            return answer;
        }
        let body: serde_json::Value = serde_json::from_str(body_of(request)).unwrap();
        let start = body["StartTime"].as_i64().unwrap().div_euclid(60) * 60;
        let end = body["EndTime"].as_i64().unwrap();
        let offset: usize = body["NextToken"].as_str().map_or(0, |t| t.parse().unwrap());
        let mut more = false;
        let results: Vec<serde_json::Value> = body["MetricDataQueries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|query| {
                let id = query["Id"].as_str().unwrap();
                let period = query["MetricStat"]["Period"].as_i64().unwrap();
                let per_second = |s: i64| -> f64 {
                    match id {
                        "canary_requests" => 1000.0,
                        "canary_errors" if s >= bad_from => 50.0,
                        "canary_errors" => 1.0,
                        "baseline_requests" => 9000.0,
                        "baseline_errors" => 9.0,
                        _ => 0.0,
                    }
                };
                let all: Vec<(i64, f64)> = (0..)
                    .map(|k| start + k * period)
                    .take_while(|&t| t < end)
                    .map(|t| {
                        let value = if id == "canary_percentile" {
                            0.2 + (t % 7) as f64 * 0.01
                        } else {
                            (t..t + period).map(per_second).sum()
                        };
                        (t, value)
                    })
                    .collect();
                let shown: Vec<(i64, f64)> = all.iter().skip(offset).take(page).copied().collect();
                let whole = offset + page >= all.len();
                more |= !whole;
                let (times, values): (Vec<i64>, Vec<f64>) = shown.into_iter().unzip();
                serde_json::json!({"Id": id, "Label": id, "Timestamps": times, "Values": values,
                    "StatusCode": if whole { "Complete" } else { "PartialData" }})
            })
            .collect();
        let mut answer = serde_json::json!({"MetricDataResults": results, "Messages": []});
        if more {
            answer["NextToken"] = serde_json::json!((offset + page).to_string());
        }
        http("200 OK", CLOUDWATCH_CONTENT_TYPE, &answer.to_string())
    })
}

/// The `GetMetricData` requests a fake CloudWatch received, as their bodies.
fn metric_data_bodies(server: &FakeServer) -> Vec<serde_json::Value> {
    server
        .requests()
        .iter()
        .filter(|r| header_of(r, "x-amz-target") != Some(fake_aws::LIST_METRICS_TARGET))
        .map(|r| serde_json::from_str(body_of(r)).unwrap())
        .collect()
}

/// Issue 17: `canary analyze` over a past window reads a CloudWatch counts check with one
/// `GetMetricData` in minute datapoints (its pages followed) and adds up, for every tick,
/// the minutes its own whole-minute period covers: the ticks, the report's checks and the
/// exit code are those of one request per check per tick (`--query-per-tick`) on the same
/// data. A percentile check is still read tick by tick (a percentile of minutes is not the
/// window's). Seen failing before `GenericSource::read_window`: 18 requests for the counts
/// check.
#[test]
fn a_past_cloudwatch_window_is_one_request_per_counts_check_giving_the_ticks_of_one_per_tick() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Nine minutes ending a minute ago, starting 20 s past a minute (canary asks from the
    // next whole minute, which CloudWatch does not round); the canary turns bad 5 minutes in.
    let start = now / 60 * 60 - 600 + 20;
    let end = start + 540;
    let bad_from = start + 300;
    let env = (TABLE.env)(Scenario::Healthy);
    let template = policy("URL").replace(
        "rollout: {interval: 1s, min-requests: 100}",
        "rollout: {interval: 30s, min-requests: 100}",
    ) + "  - name: p95\n    cloudwatch:\n      namespace: AWS/ApplicationELB\n      dimensions: {LoadBalancer: app/checkout/50dc6c495c0c9188}\n      percentile: TargetResponseTime\n    slo: {max: 500ms}\n";
    let window = (start as u64, end as u64);
    let counts_requests = |bodies: &[serde_json::Value]| {
        bodies
            .iter()
            .filter(|b| b["MetricDataQueries"][0]["Id"] == "canary_requests")
            .count()
    };

    let dir = tempfile::tempdir().unwrap();
    let server = per_second(bad_from, 100_800);
    let per_tick = analyze_window(
        dir.path(),
        &template.replace("URL", &server.url()),
        window,
        true,
        &env,
    );
    assert_eq!(per_tick.run.code, 1, "{}", per_tick.run.all());
    let bodies = metric_data_bodies(&server);
    assert_eq!(counts_requests(&bodies), 18, "{}", per_tick.run.all());

    // One request for the counts check, one per tick for the percentile.
    let server = per_second(bad_from, 100_800);
    let one = analyze_window(
        dir.path(),
        &template.replace("URL", &server.url()),
        window,
        false,
        &env,
    );
    let bodies = metric_data_bodies(&server);
    assert_eq!(counts_requests(&bodies), 1, "{}", one.run.all());
    assert_eq!(bodies.len(), 1 + 18, "{}", one.run.all());
    let counts = bodies
        .iter()
        .find(|b| b["MetricDataQueries"][0]["Id"] == "canary_requests")
        .unwrap();
    assert_eq!(
        counts["StartTime"],
        start + 40,
        "the first whole minute of the window: nothing from before it"
    );
    assert_eq!(counts["EndTime"], end);
    assert_eq!(counts["MetricDataQueries"][0]["MetricStat"]["Period"], 60);
    assert_same_analysis(&per_tick, &one);

    // Paged four datapoints at a time: the ten minutes come in three pages, the same ticks.
    let server = per_second(bad_from, 4);
    let paged = analyze_window(
        dir.path(),
        &template.replace("URL", &server.url()),
        window,
        false,
        &env,
    );
    let bodies = metric_data_bodies(&server);
    let tokens: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|b| b["MetricDataQueries"][0]["Id"] == "canary_requests")
        .map(|b| &b["NextToken"])
        .collect();
    assert_eq!(
        tokens,
        [
            &serde_json::Value::Null,
            &serde_json::json!("4"),
            &serde_json::json!("8")
        ],
        "{}",
        paged.run.all()
    );
    assert_same_analysis(&per_tick, &paged);
}

/// Issue 17: a healthy service whose 5XX metric never published (no datapoint in the two
/// weeks `ListMetrics` looks at) was refused at pre-flight as if it were misspelt. Without
/// the opt-in it still is, the message naming `errors-may-be-unlisted`; with it, pre-flight
/// asks about the requests metric only and the rollout is judged (and promotes), while an
/// unlisted requests metric is still refused. Seen failing before the field existed: the
/// policy with it was refused as bad input (an unknown field).
#[test]
fn a_never_published_errors_metric_is_refused_unless_the_check_says_it_may_be_unlisted() {
    // CloudWatch lists only RequestCount: the 5XX count never had a datapoint.
    let listed: Vec<ListedMetric> = listed()
        .into_iter()
        .filter(|m| m.name == "RequestCount")
        .collect();
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
    let listings = |server: &FakeServer| -> Vec<String> {
        server
            .requests()
            .iter()
            .filter(|r| header_of(r, "x-amz-target") == Some(fake_aws::LIST_METRICS_TARGET))
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(body_of(r)).unwrap()["MetricName"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };

    // Without the opt-in: refused before anything moves, the way out named.
    let refused = tempfile::tempdir().unwrap();
    let run = crate::datadog::short_rollout(refused.path(), &policy(&server.url()), &env);
    assert_eq!(run.code, 2, "{}", run.all());
    for said in [
        "does not know the metric AWS/ApplicationELB/HTTPCode_Target_5XX_Count",
        "set `errors-may-be-unlisted: true` on the check's `cloudwatch`",
        "nothing was changed",
    ] {
        assert!(run.all().contains(said), "{said}\n{}", run.all());
    }
    assert!(!refused.path().join("set.log").exists(), "{}", run.all());

    // With it: the errors metric is not asked about, the rollout is judged and promotes.
    let opted = policy(&server.url()).replace(
        "      errors: HTTPCode_Target_5XX_Count\n",
        "      errors: HTTPCode_Target_5XX_Count\n      errors-may-be-unlisted: true\n",
    );
    let before = listings(&server).len();
    let judged = tempfile::tempdir().unwrap();
    let run = crate::datadog::short_rollout(judged.path(), &opted, &env);
    assert_eq!(run.code, 0, "{}", run.all());
    let log = std::fs::read_to_string(judged.path().join("set.log")).unwrap_or_default();
    assert_eq!(log, "50\n100\n", "{}", run.all());
    assert_eq!(
        listings(&server)[before..],
        ["RequestCount"],
        "{}",
        run.all()
    );
    // `canary analyze` judges it too.
    let run = analyze(judged.path(), &opted, false, &env);
    assert_eq!(run.code, 0, "{}", run.all());

    // The requests metric must still exist: a wrong load balancer is refused, opt-in or not.
    let wrong_lb = opted.replace("app/checkout/50dc6c495c0c9188", "app/checkout/0000");
    let run = analyze(judged.path(), &wrong_lb, false, &env);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.all()
            .contains("does not know the metric AWS/ApplicationELB/RequestCount"),
        "{}",
        run.all()
    );
    assert!(
        !run.all().contains("errors-may-be-unlisted: true"),
        "{}",
        run.all()
    );

    // Lint warns what the opt-in gives up; explain says it.
    let path = write_policy(judged.path(), "opted.yaml", &opted);
    let lint = canary(&["policy", "lint", path.to_str().unwrap()], &[]);
    assert_eq!(lint.code, 0, "{}", lint.all());
    assert!(
        lint.stderr.contains("checks[0].cloudwatch.errors-may-be-unlisted: pre-flight does not ask whether AWS/ApplicationELB/HTTPCode_Target_5XX_Count exists"),
        "{}",
        lint.all()
    );
    let explain = canary(&["policy", "explain", path.to_str().unwrap()], &[]);
    assert!(
        explain
            .stdout
            .contains("# errors: errors-may-be-unlisted: pre-flight asks ListMetrics about the requests metric only"),
        "{}",
        explain.all()
    );
}
