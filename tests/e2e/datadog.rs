//! Datadog (`metrics.datadog`) through the `canary` binary, against a fake of Datadog's
//! metrics query API on loopback that checks both keys as Datadog does
//! (`canary_tests::fake_datadog`): the scenario table of the generic provider — healthy, 3×
//! the baseline's errors, no data, a provider error, a refused key → exit 0 / 1 / 3 / 4 / 4
//! — with `analyze --record` then `--input` giving the same verdicts and neither key in any
//! output; one request per check per tick carrying both keys; lint and explain saying which
//! guarantee each check has.

use std::path::Path;

use canary_tests::fake_datadog::{DatadogKeys, DatadogQuery, answer, datadog, series};
use canary_tests::fake_http::{FakeServer, header_of, http, path_of};

use crate::canary_run::{canary, write_policy};
use crate::generic_provider::{
    Scenario, Table, analyze, analyze_window, analyze_with, assert_same_analysis, scenario_table,
};

/// The API key, from the environment (characters every encoding changes).
const API_KEY: &str = "dd-api-key/+=never-print-0001";
/// The application key, from a file.
const APP_KEY: &str = "dd-app-key/+=never-print-0002";
/// A wrong application key, which Datadog refuses.
const WRONG_APP_KEY: &str = "dd-app-key/+=never-print-wrong";

const TABLE: Table = Table {
    env: |_| vec![("DD_API_KEY", API_KEY)],
    secrets: &[API_KEY, APP_KEY, WRONG_APP_KEY],
    no_data: "no points for the canary",
};

/// The metrics the fake Datadog knows (its metric metadata answers 200 for them, 404 for any
/// other).
const KNOWN: [&str; 2] = ["trace.http.request.hits", "trace.http.request.errors"];

/// The series of a counts query, per second of `from`..`to`: 1000 canary and 9000 baseline
/// requests a second; errors at 0.1 % each, or 3 % and 1 % when the canary is bad.
fn counts(scenario: Scenario, query: &DatadogQuery) -> String {
    let (canary_rate, baseline_rate) = match scenario {
        Scenario::ThreeTimesErrors => (0.03, 0.01),
        _ => (0.001, 0.001),
    };
    let seconds: Vec<u64> = (query.from..query.to).collect();
    let mut all = Vec::new();
    for (index, metric) in query.queries().iter().enumerate() {
        for (tag, per_second, rate) in [
            ("version:canary", 1000.0, canary_rate),
            ("version:stable", 9000.0, baseline_rate),
        ] {
            let value = if index == 0 {
                per_second
            } else {
                per_second * rate
            };
            let points: Vec<(u64, f64)> = seconds.iter().map(|s| (s * 1000, value)).collect();
            all.push(series(metric, index, tag, &points));
        }
    }
    answer(query, &all)
}

/// A fake Datadog for `scenario` (its keys are always the right ones: the refused key is the
/// policy's).
fn fake(scenario: Scenario) -> FakeServer {
    let keys = DatadogKeys {
        api_key: API_KEY.to_owned(),
        application_key: APP_KEY.to_owned(),
    };
    datadog(keys, &KNOWN, move |query| match scenario {
        Scenario::ProviderError => http(
            "500 Internal Server Error",
            "application/json",
            r#"{"errors":["Internal Server Error"]}"#,
        ),
        Scenario::NoData => http("200 OK", "application/json", &answer(query, &[])),
        _ => http("200 OK", "application/json", &counts(scenario, query)),
    })
}

const CHECKS: &str = "rollout: {interval: 1s, min-requests: 100}
checks:
  - name: errors
    datadog:
      requests: 'sum:trace.http.request.hits{service:checkout,env:prod} by {version}.as_count()'
      errors: 'sum:trace.http.request.errors{service:checkout,env:prod} by {version}.as_count()'
    slo: {max: 2%}
    baseline: {max-increase: 50%}
";

/// The policy of a Datadog at `url`, its application key in a file (the wrong one when
/// `wrong`) outside `dir`, whose files are the run's outputs searched for secrets.
fn policy(dir: &Path, url: &str, wrong: bool) -> String {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let key_file = std::env::temp_dir().join(format!("canary-dd-app-key-{name}"));
    std::fs::write(&key_file, if wrong { WRONG_APP_KEY } else { APP_KEY }).unwrap();
    format!(
        "service: checkout\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
         metrics:\n  datadog:\n    url: '{url}'\n    api-key: {{env: DD_API_KEY}}\n\
         \x20   application-key: {{file: '{}'}}\n    timeout: 2s\n    retries: 1\n    lag: 0s\n{CHECKS}",
        key_file.display()
    )
}

#[test]
fn datadog_scenarios_exit_0_1_3_4_4_replay_the_same_and_leak_no_key() {
    scenario_table(&TABLE, |dir, scenario| {
        let server = fake(scenario);
        let policy = policy(dir, &server.url(), scenario == Scenario::AuthFailure);
        (policy, Some(server))
    });
}

#[test]
fn datadog_gets_one_request_per_check_per_tick_with_both_keys() {
    let server = fake(Scenario::Healthy);
    let dir = tempfile::tempdir().unwrap();
    // Tick by tick, as a rollout reads (a past window is one query per check: below).
    let run = analyze_with(
        dir.path(),
        &policy(dir.path(), &server.url(), false),
        false,
        &[("DD_API_KEY", API_KEY)],
        &["--query-per-tick"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let (metadata, requests): (Vec<String>, Vec<String>) = server
        .requests()
        .into_iter()
        .partition(|r| path_of(r).starts_with("/api/v1/metrics/"));
    // Before judging, one metadata request per metric the counts read, with both keys.
    let asked: Vec<&str> = metadata.iter().map(|r| path_of(r)).collect();
    assert_eq!(
        asked,
        [
            "/api/v1/metrics/trace.http.request.hits",
            "/api/v1/metrics/trace.http.request.errors"
        ]
    );
    for request in &metadata {
        assert_eq!(header_of(request, "dd-application-key"), Some(APP_KEY));
    }
    // One check; a tick every second from start + 1 s to the end: 5 ticks.
    assert_eq!(requests.len(), 5, "{}", run.all());
    for request in &requests {
        assert!(
            path_of(request).starts_with("/api/v1/query?from="),
            "{request}"
        );
        assert!(
            path_of(request).contains("&query=sum%3Atrace.http.request.hits%7Bservice%3Acheckout%2Cenv%3Aprod%7D%20by%20%7Bversion%7D.as_count%28%29%2Csum%3Atrace.http.request.errors"),
            "{request}"
        );
        assert_eq!(header_of(request, "dd-api-key"), Some(API_KEY));
        assert_eq!(header_of(request, "dd-application-key"), Some(APP_KEY));
    }
}

#[test]
fn lint_and_explain_say_which_guarantee_a_datadog_check_has() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), "https://dd-proxy.internal:8443", false).replace(
        "    baseline: {max-increase: 50%}\n",
        "    baseline: {max-increase: 50%}\n  - name: p95\n    datadog:\n      percentile: 'p95:trace.http.request{service:checkout} by {version}'\n    slo: {max: 500ms}\n",
    );
    let path = write_policy(dir.path(), "policy.yaml", &policy);
    let lint = canary(
        &["policy", "lint", path.to_str().unwrap()],
        &[("DD_API_KEY", API_KEY)],
    );
    assert_eq!(lint.code, 0, "{}", lint.all());
    // No final soak: the canary's last minutes before 100 % would go unjudged (datapoints
    // arrive late).
    assert!(
        lint.stderr.contains(
            "warning: rollout.final-soak: none: datadog makes datapoints available minutes after the fact"
        ),
        "{}",
        lint.all()
    );
    assert!(
        lint.stdout
            .contains("errors: guarantee: counts: the full sequential tests"),
        "{}",
        lint.all()
    );
    // The test policy reads with no lag: lint says what that risks.
    assert!(
        lint.stderr.contains(
            "warning: metrics.datadog.lag: 0s: each tick reads data that may not have arrived yet"
        ),
        "{}",
        lint.all()
    );
    assert!(
        lint.stdout
            .contains("p95: guarantee: a percentile only: a bounded-value check")
            && lint.stdout.contains("no statistical guarantee"),
        "{}",
        lint.all()
    );
    let explain = canary(&["policy", "explain", path.to_str().unwrap()], &[]);
    assert_eq!(explain.code, 0, "{}", explain.all());
    for expected in [
        "# Source: Datadog's metrics query API (metrics.datadog)",
        "GET https://dd-proxy.internal:8443/api/v1/query?from=0&to=",
        "# p95: guarantee: a percentile only",
        "the series tagged version:canary",
        "# errors: Datadog queries: sum:trace.http.request.hits{service:checkout,env:prod} by {version}.as_count(),sum:trace.http.request.errors",
    ] {
        assert!(
            explain.stdout.contains(expected),
            "{expected}\n{}",
            explain.all()
        );
    }
    assert!(!explain.all().contains(APP_KEY), "{}", explain.all());
    assert!(!lint.stderr.contains("datadog.errors"), "{}", lint.all());
    // An errors query with tags of its own: a tag that matches nothing would read 0 errors.
    let other_tags = policy.replace(
        "errors{service:checkout,env:prod}",
        "errors{service:checkout,env:prd}",
    );
    let path = write_policy(dir.path(), "tags.yaml", &other_tags);
    let lint = canary(
        &["policy", "lint", path.to_str().unwrap()],
        &[("DD_API_KEY", API_KEY)],
    );
    assert_eq!(lint.code, 0, "{}", lint.all());
    assert!(
        lint.stderr.contains(
            "warning: checks[0].datadog.errors: its tags {env:prd,service:checkout} are not the requests query's {env:prod,service:checkout}"
        ),
        "{}",
        lint.all()
    );
    // A count without `.as_count()` is refused, saying why.
    let bad = policy.replace(
        "{version}.as_count()'\n      errors",
        "{version}'\n      errors",
    );
    let path = write_policy(dir.path(), "bad.yaml", &bad);
    let lint = canary(&["policy", "lint", path.to_str().unwrap()], &[]);
    assert_eq!(lint.code, 2, "{}", lint.all());
    assert!(
        lint.stderr.contains("checks[0].datadog.requests")
            && lint.stderr.contains("per-second rates"),
        "{}",
        lint.all()
    );
}

/// A command gateway in `dir`: `set` logs the weight to `dir/set.log` and keeps it in
/// `dir/weight`, which `get` reads. No `set.log` after a run: nothing was moved.
pub(crate) fn logging_gateway(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let weight = dir.join("weight");
    std::fs::write(&weight, "0").unwrap();
    let set = dir.join("set.sh");
    std::fs::write(
        &set,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\nprintf '%s' \"$1\" > {}\n",
            dir.join("set.log").display(),
            weight.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&set, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "gateway:\n  command:\n    set: [\"{}\", \"{{weight}}\"]\n    get: [cat, \"{}\"]\n    timeout: 5s\n",
        set.display(),
        weight.display()
    )
}

/// `canary rollout` of `policy` (its `rollout:` line made a short two-step rollout, a
/// [`logging_gateway`] added) in `dir`.
pub(crate) fn short_rollout(
    dir: &Path,
    policy: &str,
    env: &[(&str, &str)],
) -> crate::canary_run::Run {
    let policy = policy.replace(
        "rollout: {interval: 1s, min-requests: 100}",
        "rollout: {interval: 1s, min-requests: 100, steps: [50, 100], step-duration: 2s, max-step-duration: 4s}",
    ) + &logging_gateway(dir);
    let path = write_policy(dir, "rollout.yaml", &policy);
    let report = format!("json:{}", dir.join("rollout.json").display());
    let state = dir.join("state");
    canary(
        &[
            "rollout",
            "--policy",
            path.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--output",
            &report,
        ],
        env,
    )
}

#[test]
fn a_misspelt_datadog_errors_metric_stops_the_rollout_at_preflight_and_a_known_one_with_no_errors_promotes()
 {
    // Datadog sends no series for a count that stayed 0: no error series at all, for either
    // version, whatever the errors metric is called.
    let keys = DatadogKeys {
        api_key: API_KEY.to_owned(),
        application_key: APP_KEY.to_owned(),
    };
    let server = datadog(keys, &KNOWN, |query| {
        let requests_only = DatadogQuery {
            query: query.queries()[0].clone(),
            ..query.clone()
        };
        let body = counts(Scenario::Healthy, &requests_only);
        http("200 OK", "application/json", &body)
    });
    let env = [("DD_API_KEY", API_KEY)];
    let misspelt = tempfile::tempdir().unwrap();
    let bad = policy(misspelt.path(), &server.url(), false)
        .replace("trace.http.request.errors", "trace.http.request.erors");
    let run = short_rollout(misspelt.path(), &bad, &env);
    assert_eq!(run.code, 2, "{}", run.all());
    for said in [
        "pre-flight",
        "check `errors`",
        "does not know the metric trace.http.request.erors",
        "HTTP 404",
        "Metric not found",
        "nothing was changed",
    ] {
        assert!(run.all().contains(said), "{said}\n{}", run.all());
    }
    assert!(
        !misspelt.path().join("set.log").exists(),
        "the gateway was never set:\n{}",
        run.all()
    );
    assert!(!run.all().contains(APP_KEY), "{}", run.all());
    // `canary analyze` refuses it the same way, before judging.
    let run = analyze(misspelt.path(), &bad, false, &env);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.all()
            .contains("does not know the metric trace.http.request.erors"),
        "{}",
        run.all()
    );
    // Spelt right: the same answers (no error series: 0 errors) promote.
    let known = tempfile::tempdir().unwrap();
    let good = policy(known.path(), &server.url(), false);
    let run = short_rollout(known.path(), &good, &env);
    assert_eq!(run.code, 0, "{}", run.all());
    let log = std::fs::read_to_string(known.path().join("set.log")).unwrap_or_default();
    assert_eq!(log, "50\n100\n", "{}", run.all());
}

/// A fake Datadog holding per-second data for `analyze` over a past window: 1000 canary and
/// 9000 baseline requests a second, errors at 0.1 % each until `bad_from` (Unix seconds),
/// then the canary's at 5 %; a `p95:` query answers the canary's 1-second p95, 200 ms to
/// 260 ms. As Datadog answers `from`..`to`, the points are those of the 1-second rollup
/// intervals that begin in `[from, to)` (`interval: 1`, stamped in milliseconds), and a
/// version with no points gets no series.
fn per_second(bad_from: u64) -> FakeServer {
    let keys = DatadogKeys {
        api_key: API_KEY.to_owned(),
        application_key: APP_KEY.to_owned(),
    };
    datadog(keys, &KNOWN, move |query| {
        let seconds: Vec<u64> = (query.from..query.to).collect();
        let mut all = Vec::new();
        for (index, metric) in query.queries().iter().enumerate() {
            if metric.starts_with("p95:") {
                let points: Vec<(u64, f64)> = seconds
                    .iter()
                    .map(|s| (s * 1000, 200.0 + (s % 7) as f64 * 10.0))
                    .collect();
                if !points.is_empty() {
                    all.push(series(metric, index, "version:canary", &points));
                }
                continue;
            }
            for (tag, per_second) in [("version:canary", 1000.0), ("version:stable", 9000.0)] {
                let points: Vec<(u64, f64)> = seconds
                    .iter()
                    .map(|&s| {
                        let rate = if tag == "version:canary" && s >= bad_from {
                            0.05
                        } else {
                            0.001
                        };
                        let value = if index == 0 {
                            per_second
                        } else {
                            per_second * rate
                        };
                        (s * 1000, value)
                    })
                    .collect();
                if !points.is_empty() {
                    all.push(series(metric, index, tag, &points));
                }
            }
        }
        http("200 OK", "application/json", &answer(query, &all))
    })
}

/// The query requests a fake Datadog received (not the metadata ones).
fn query_requests(server: &FakeServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| path_of(r).starts_with("/api/v1/query?"))
        .collect()
}

/// Issue 17: `canary analyze` over a past window reads each Datadog check with one query from
/// the start to the end, and cuts every tick's numbers out of its points: the ticks, the
/// report's checks and the exit code are those of one query per check per tick
/// (`--query-per-tick`) on the same data. Seen failing before `GenericSource::read_window`:
/// the window was read with 36 queries, one per check per tick.
#[test]
fn a_past_datadog_window_is_one_query_per_check_giving_the_ticks_of_one_per_tick() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Nine minutes ending a minute ago; the canary turns bad 5 minutes in.
    let start = now / 60 * 60 - 600;
    let end = start + 540;
    let env = [("DD_API_KEY", API_KEY)];
    let dir = tempfile::tempdir().unwrap();
    let template = policy(dir.path(), "URL", false).replace(
        "rollout: {interval: 1s, min-requests: 100}",
        "rollout: {interval: 30s, min-requests: 100}",
    ) + "  - name: p95\n    datadog:\n      percentile: 'p95:trace.http.request{service:checkout} by {version}'\n      unit: ms\n    slo: {max: 500ms}\n";

    let server = per_second(start + 300);
    let policy = template.replace("URL", &server.url());
    let per_tick = analyze_window(dir.path(), &policy, (start, end), true, &env);
    assert_eq!(per_tick.run.code, 1, "{}", per_tick.run.all());
    // 18 ticks of 30 s, two checks.
    assert_eq!(query_requests(&server).len(), 36, "{}", per_tick.run.all());

    let server = per_second(start + 300);
    let policy = template.replace("URL", &server.url());
    let window = analyze_window(dir.path(), &policy, (start, end), false, &env);
    let requests = query_requests(&server);
    assert_eq!(
        requests.len(),
        2,
        "one query per check:\n{}",
        window.run.all()
    );
    for request in &requests {
        assert!(
            path_of(request).starts_with(&format!("/api/v1/query?from={start}&to={end}&")),
            "{request}"
        );
    }
    assert_same_analysis(&per_tick, &window);
    assert_eq!(
        window.ticks.as_array().map(Vec::len),
        Some(18),
        "{}",
        window.run.all()
    );
}

/// A past window Datadog rolls up coarser than the ticks cannot be cut into them: exit 4
/// saying so and what to do, never ticks read from part of it.
#[test]
fn a_datadog_window_rolled_up_coarser_than_the_ticks_is_refused_with_exit_4() {
    let keys = DatadogKeys {
        api_key: API_KEY.to_owned(),
        application_key: APP_KEY.to_owned(),
    };
    let server = datadog(keys, &KNOWN, |query| {
        let mut all = Vec::new();
        for (index, metric) in query.queries().iter().enumerate() {
            for tag in ["version:canary", "version:stable"] {
                let one = series(metric, index, tag, &[(query.from * 1000, 1000.0)])
                    .replace("\"interval\": 1,", "\"interval\": 300,");
                all.push(one);
            }
        }
        http("200 OK", "application/json", &answer(query, &all))
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &server.url(), false).replace(
        "rollout: {interval: 1s, min-requests: 100}",
        "rollout: {interval: 30s, min-requests: 100}",
    );
    let path = write_policy(dir.path(), "coarse.yaml", &policy);
    let (start, end) = ((now - 900).to_string(), (now - 60).to_string());
    let run = canary(
        &[
            "analyze",
            "--policy",
            path.to_str().unwrap(),
            "--start",
            &start,
            "--end",
            &end,
        ],
        &[("DD_API_KEY", API_KEY)],
    );
    assert_eq!(run.code, 4, "{}", run.all());
    for said in [
        "points of 300 s",
        "coarser than the ticks' 30 s",
        "--query-per-tick",
    ] {
        assert!(run.all().contains(said), "{said}\n{}", run.all());
    }
}

/// Issue 17: an errors query whose tags match nothing read 0 errors at every tick (Datadog
/// sends no series), so a canary was judged on no errors at all; lint only warned. Pre-flight
/// now asks Datadog whether the requests metric has any series under the errors query's tags
/// (those the requests query filters on too) over the last day, and refuses a scope that
/// matches nothing: exit 2, nothing moved, naming the check, the tags and the metric. Seen
/// failing before the question: the `env:prd` policy promoted 50 → 100.
#[test]
fn an_errors_query_whose_tags_match_nothing_is_refused_at_preflight() {
    let keys = DatadogKeys {
        api_key: API_KEY.to_owned(),
        application_key: APP_KEY.to_owned(),
    };
    // Datadog holds series for env:prod and env:eu-prod only; pre-flight's question (a
    // `.rollup(sum, 3600)` of the requests metric over a day) gets one point per match.
    let server = datadog(keys, &KNOWN, |query| {
        if query.query.ends_with(".rollup(sum, 3600)") {
            let matches = query.query.contains("env:prod") || query.query.contains("env:eu-prod");
            let found = if matches {
                vec![series(
                    "trace.http.request.hits",
                    0,
                    "env:prod",
                    &[(query.from * 1000, 5.0)],
                )]
            } else {
                Vec::new()
            };
            return http("200 OK", "application/json", &answer(query, &found));
        }
        // Errors under tags that match nothing: no error series at all.
        let body = if query.query.contains("env:prd") {
            let requests_only = DatadogQuery {
                query: query.queries()[0].clone(),
                ..query.clone()
            };
            counts(Scenario::Healthy, &requests_only)
        } else {
            counts(Scenario::Healthy, query)
        };
        http("200 OK", "application/json", &body)
    });
    let env = [("DD_API_KEY", API_KEY)];
    let questions = |server: &FakeServer| -> Vec<String> {
        query_requests(server)
            .into_iter()
            .filter(|r| path_of(r).contains("rollup%28sum%2C%203600%29"))
            .collect()
    };

    let wrong = tempfile::tempdir().unwrap();
    let bad = policy(wrong.path(), &server.url(), false).replace(
        "errors{service:checkout,env:prod}",
        "errors{service:checkout,env:prd}",
    );
    let run = short_rollout(wrong.path(), &bad, &env);
    assert_eq!(run.code, 2, "{}", run.all());
    for said in [
        "pre-flight",
        "check `errors`",
        "the tags {service:checkout,env:prd} of its errors query match no series of trace.http.request.hits",
        "nothing was changed",
    ] {
        assert!(run.all().contains(said), "{said}\n{}", run.all());
    }
    assert!(!wrong.path().join("set.log").exists(), "{}", run.all());
    assert_eq!(questions(&server).len(), 1, "{}", run.all());
    assert!(!run.all().contains(APP_KEY), "{}", run.all());
    let run = analyze(wrong.path(), &bad, false, &env);
    assert_eq!(run.code, 2, "{}", run.all());

    // Other tags that do match: asked about, then judged.
    let other = tempfile::tempdir().unwrap();
    let eu = policy(other.path(), &server.url(), false).replace(
        "errors{service:checkout,env:prod}",
        "errors{service:checkout,env:eu-prod}",
    );
    let asked = questions(&server).len();
    let run = short_rollout(other.path(), &eu, &env);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(questions(&server).len(), asked + 1, "{}", run.all());

    // The same tags, or more that only errors carry: nothing to ask; promoted.
    let same = tempfile::tempdir().unwrap();
    let extra = policy(same.path(), &server.url(), false).replace(
        "errors{service:checkout,env:prod}",
        "errors{service:checkout,env:prod,http.status_class:5xx}",
    );
    let asked = questions(&server).len();
    let run = short_rollout(same.path(), &extra, &env);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(questions(&server).len(), asked, "{}", run.all());
}

/// Issue 17, provider lag: Datadog makes datapoints available late. A fake that publishes
/// each second's points 2 s after it ends, and a canary whose errors begin 3 s into its 4 s
/// step: with `lag: 0s` the step ends on data that has not arrived, judged clean, and the
/// canary is promoted; with `lag: 2s` each tick reads the data up to 2 s before it and the
/// step lasts 2 s longer, so its whole duration is judged, the late errors with it, and the
/// canary is rolled back.
#[test]
fn late_datapoints_with_errors_roll_back_when_the_policy_waits_for_the_providers_lag() {
    let run_with = |lag: &str| {
        let dir = tempfile::tempdir().unwrap();
        let weight_file = dir.path().join("weight");
        let keys = DatadogKeys {
            api_key: API_KEY.to_owned(),
            application_key: APP_KEY.to_owned(),
        };
        let watched = weight_file.clone();
        let server = datadog(keys, &KNOWN, move |query| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            // When the canary got its weight: its errors begin 3 s later.
            let bad_from = std::fs::metadata(&watched)
                .ok()
                .filter(|_| std::fs::read_to_string(&watched).unwrap_or_default() != "0")
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(u64::MAX, |t| t.as_secs() + 3);
            let mut all = Vec::new();
            for (index, metric) in query.queries().iter().enumerate() {
                for (tag, per_second) in [("version:canary", 1000.0), ("version:stable", 9000.0)] {
                    let points: Vec<(u64, f64)> = (query.from..query.to)
                        // A second's points are published 2 s after it ends.
                        .filter(|&s| (s + 1) as f64 + 2.0 <= now)
                        .map(|s| {
                            let rate = if tag == "version:canary" && s >= bad_from {
                                0.5
                            } else {
                                0.001
                            };
                            let value = if index == 0 {
                                per_second
                            } else {
                                per_second * rate
                            };
                            (s * 1000, value)
                        })
                        .collect();
                    if !points.is_empty() {
                        all.push(series(metric, index, tag, &points));
                    }
                }
            }
            http("200 OK", "application/json", &answer(query, &all))
        });
        let policy = policy(dir.path(), &server.url(), false)
            .replace("    lag: 0s\n", &format!("    lag: {lag}\n"))
            .replace(
                "rollout: {interval: 1s, min-requests: 100}",
                "rollout: {interval: 1s, min-requests: 100, steps: [50, 100], step-duration: 4s, max-step-duration: 8s}",
            )
            + &logging_gateway(dir.path());
        let path = write_policy(dir.path(), "lag.yaml", &policy);
        let state = dir.path().join("state");
        let run = canary(
            &[
                "rollout",
                "--policy",
                path.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
            ],
            &[("DD_API_KEY", API_KEY)],
        );
        let log = std::fs::read_to_string(dir.path().join("set.log")).unwrap_or_default();
        (run, log)
    };
    let (run, log) = run_with("0s");
    assert_eq!(
        run.code,
        0,
        "without a lag the late errors go unseen:\n{}",
        run.all()
    );
    assert_eq!(log, "50\n100\n", "{}", run.all());
    let (run, log) = run_with("2s");
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        log.starts_with("50\n") && !log.contains("100"),
        "{log}\n{}",
        run.all()
    );
}
