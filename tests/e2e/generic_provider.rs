//! The generic provider through the `canary` binary: `metrics.http` against a real loopback
//! HTTP server answering JSON, and `metrics.command` running a real shell script that prints
//! JSON. Each gets the scenario table — healthy, 3× the baseline's errors, no data, a
//! provider error, an authentication failure → exit 0 / 1 / 3 / 4 / 4 — and `analyze
//! --record` then `--input` gives the same verdicts. The API key of the HTTP provider, which
//! the server echoes when it refuses it, is in no output.
//!
//! The table itself ([`scenario_table`]) serves every provider: Datadog and CloudWatch run it
//! too (`datadog.rs`, `cloudwatch.rs`).

use std::path::Path;

use canary_tests::fake_http::{FakeServer, header_of, http, path_of};
use canary_tests::leaks::{self, assert_no_secret};

use crate::canary_run::{Run, canary, read_json, verdict_of, write_policy};

/// The API key the HTTP provider wants (characters every encoding changes).
const API_KEY: &str = "generic/api+key=never-print";

/// What a provider answers, per scenario.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scenario {
    /// Both versions at 0.1 % errors.
    Healthy,
    /// The canary at 3 %, the baseline at 1 %.
    ThreeTimesErrors,
    /// An answer without the values.
    NoData,
    /// A 500 (HTTP) or a failing command.
    ProviderError,
    /// A refused key.
    AuthFailure,
}

pub(crate) const SCENARIOS: [(Scenario, i32); 5] = [
    (Scenario::Healthy, 0),
    (Scenario::ThreeTimesErrors, 1),
    (Scenario::NoData, 3),
    (Scenario::ProviderError, 4),
    (Scenario::AuthFailure, 4),
];

/// Cumulative counts over `seconds`: 1000 canary and 9000 baseline requests a second.
fn answer(scenario: Scenario, seconds: u64) -> String {
    let (canary_rate, baseline_rate) = match scenario {
        Scenario::ThreeTimesErrors => (0.03, 0.01),
        _ => (0.001, 0.001),
    };
    let (c, b) = (1000 * seconds, 9000 * seconds);
    format!(
        r#"{{"results": [{{"version": "canary", "requests": {c}, "errors": {}}}, {{"version": "stable", "requests": {b}, "errors": "{}"}}]}}"#,
        (c as f64 * canary_rate).round(),
        (b as f64 * baseline_rate).round()
    )
}

/// The `from` and `to` (Unix seconds) of a request's query string.
fn seconds_asked(request: &str) -> u64 {
    let path = path_of(request);
    let value = |name: &str| -> u64 {
        path.split(['?', '&'])
            .find_map(|pair| pair.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    value("to=").saturating_sub(value("from="))
}

/// A provider over HTTP that wants `X-Api-Key: API_KEY`, and echoes a wrong one.
fn http_provider(scenario: Scenario) -> FakeServer {
    FakeServer::start(move |request| {
        let key = header_of(request, "x-api-key").unwrap_or_default();
        if key != API_KEY || scenario == Scenario::AuthFailure {
            return http(
                "401 Unauthorized",
                "application/json",
                &format!(r#"{{"error": "invalid key {key}"}}"#),
            );
        }
        match scenario {
            Scenario::ProviderError => http("500 Internal Server Error", "text/plain", "down"),
            Scenario::NoData => http("200 OK", "application/json", r#"{"results": []}"#),
            _ => http(
                "200 OK",
                "application/json",
                &answer(scenario, seconds_asked(request)),
            ),
        }
    })
}

const CHECKS: &str = "rollout: {interval: 1s, min-requests: 100}
checks:
  - name: errors
    json:
      query: \"SELECT count(*) FROM Transaction FACET {{label}} SINCE {{start_unix}}\"
      requests:
        canary: \"$.results[?@.version == 'canary'].requests\"
        baseline: \"$.results[?@.version == 'stable'].requests\"
      errors:
        canary: \"$.results[?@.version == 'canary'].errors\"
        baseline: \"$.results[?@.version == 'stable'].errors\"
    slo: {max: 2%}
    baseline: {max-increase: 50%}
";

fn http_policy(url: &str) -> String {
    format!(
        "service: checkout\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
         metrics:\n  http:\n    url: '{url}/v1/query?q={{{{query}}}}&from={{{{start_unix}}}}&to={{{{end_unix}}}}'\n\
         \x20   headers: {{X-Api-Key: {{env: GENERIC_API_KEY}}}}\n    timeout: 2s\n    retries: 1\n{CHECKS}"
    )
}

/// A script printing the counts of its scenario for `from`..`to`, as the HTTP provider does;
/// without `GENERIC_API_KEY` it refuses, as a CLI without credentials does.
fn command_policy(dir: &Path, scenario: Scenario) -> String {
    let script = dir.join("metrics.sh");
    let (c_rate, b_rate) = match scenario {
        Scenario::ThreeTimesErrors => (30, 10),
        _ => (1, 1),
    };
    let body = match scenario {
        Scenario::ProviderError => "echo 'provider: connection reset' >&2; exit 3".to_owned(),
        Scenario::AuthFailure => {
            "echo \"unauthorized: key $GENERIC_API_KEY refused\" >&2; exit 1".to_owned()
        }
        Scenario::NoData => "printf '{\"results\": []}'".to_owned(),
        _ => format!(
            "s=$(( $2 - $1 )); c=$(( 1000 * s )); b=$(( 9000 * s ))\n\
             printf '{{\"results\": [{{\"version\": \"canary\", \"requests\": %d, \"errors\": %d}}, \
             {{\"version\": \"stable\", \"requests\": %d, \"errors\": %d}}]}}' \
             $c $(( c * {c_rate} / 1000 )) $b $(( b * {b_rate} / 1000 ))"
        ),
    };
    std::fs::write(&script, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    format!(
        "service: checkout\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
         metrics:\n  command:\n    run: [sh, '{}', '{{{{start_unix}}}}', '{{{{end_unix}}}}', '{{{{query}}}}']\n\
         \x20   secret-env: [GENERIC_API_KEY]\n    timeout: 5s\n{CHECKS}",
        script.display()
    )
}

/// `canary analyze` of the last 5 seconds with every report, into `dir`, with `env`.
pub(crate) fn analyze(dir: &Path, policy: &str, record: bool, env: &[(&str, &str)]) -> Run {
    analyze_with(dir, policy, record, env, &[])
}

/// [`analyze`] with `extra` arguments (`--query-per-tick`).
pub(crate) fn analyze_with(
    dir: &Path,
    policy: &str,
    record: bool,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Run {
    let policy = write_policy(dir, "policy.yaml", policy);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 5).to_string(), now.to_string());
    let out = |format: &str, file: &str| format!("{format}:{}", dir.join(file).display());
    let recording = dir.join("recording.json").display().to_string();
    let mut args = vec![
        "analyze".to_owned(),
        "--policy".to_owned(),
        policy.display().to_string(),
        "--start".to_owned(),
        start,
        "--end".to_owned(),
        end,
        "--output".to_owned(),
        out("json", "report.json"),
        "--output".to_owned(),
        out("markdown", "report.md"),
        "--output".to_owned(),
        out("html", "report.html"),
        "--output".to_owned(),
        out("junit", "report.xml"),
    ];
    if record {
        args.extend(["--record".to_owned(), recording]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    canary(&args, env)
}

/// What `canary analyze` of one past window gave, read one way.
pub(crate) struct WindowRun {
    pub(crate) run: Run,
    /// The recording's ticks.
    pub(crate) ticks: serde_json::Value,
    /// The JSON report.
    pub(crate) report: serde_json::Value,
}

/// `canary analyze` of `policy` over the past window `start`..`end` (Unix seconds), read
/// tick by tick (`--query-per-tick`) when `per_tick`, else as a past window, recorded.
pub(crate) fn analyze_window(
    dir: &Path,
    policy: &str,
    (start, end): (u64, u64),
    per_tick: bool,
    env: &[(&str, &str)],
) -> WindowRun {
    let way = if per_tick { "per-tick" } else { "window" };
    let policy = write_policy(dir, &format!("{way}.yaml"), policy);
    let recording = dir.join(format!("{way}-recording.json"));
    let report = dir.join(format!("{way}-report.json"));
    let (start, end) = (start.to_string(), end.to_string());
    let output = format!("json:{}", report.display());
    let mut args = vec![
        "analyze",
        "--policy",
        policy.to_str().unwrap(),
        "--start",
        &start,
        "--end",
        &end,
        "--output",
        &output,
        "--record",
        recording.to_str().unwrap(),
    ];
    if per_tick {
        args.push("--query-per-tick");
    }
    let run = canary(&args, env);
    let ticks = read_json(&recording)["ticks"].clone();
    let report = read_json(&report);
    WindowRun { run, ticks, report }
}

/// Requires the two reads of one window to be the same analysis: the same exit code, every
/// tick's readings the same, the same verdict and checks (every estimate, interval, e-value
/// and decision time) in the report.
pub(crate) fn assert_same_analysis(per_tick: &WindowRun, window: &WindowRun) {
    let both = || {
        format!(
            "per tick:\n{}\nwindow:\n{}",
            per_tick.run.all(),
            window.run.all()
        )
    };
    assert_eq!(per_tick.run.code, window.run.code, "{}", both());
    assert_eq!(
        per_tick.ticks.as_array().map(Vec::len),
        window.ticks.as_array().map(Vec::len),
        "{}",
        both()
    );
    assert_eq!(per_tick.ticks, window.ticks, "{}", both());
    assert_eq!(per_tick.report["verdict"], window.report["verdict"]);
    assert_eq!(per_tick.report["checks"], window.report["checks"]);
}

/// What a provider's scenario table needs besides its policies.
pub(crate) struct Table {
    /// The environment of a scenario's run (credentials; wrong ones for `AuthFailure`).
    pub(crate) env: fn(Scenario) -> Vec<(&'static str, &'static str)>,
    /// Every secret that must be in no output.
    pub(crate) secrets: &'static [&'static str],
    /// A fragment of the no-data reason the report gives.
    pub(crate) no_data: &'static str,
}

/// The generic provider's table: its key in `GENERIC_API_KEY`, a wrong one to fail.
const GENERIC: Table = Table {
    env: |scenario| {
        let key = if scenario == Scenario::AuthFailure {
            "wrong-key/+=never-print"
        } else {
            API_KEY
        };
        vec![("GENERIC_API_KEY", key)]
    },
    secrets: &[API_KEY, "wrong-key/+=never-print"],
    no_data: "selects nothing",
};

/// Runs the scenario table against `policy_of`, checks every exit code, the report's
/// verdicts, that a recording replays to the same verdicts, and that no secret leaks.
pub(crate) fn scenario_table(
    table: &Table,
    policy_of: impl Fn(&Path, Scenario) -> (String, Option<FakeServer>),
) {
    for (scenario, expected) in SCENARIOS {
        let dir = tempfile::tempdir().unwrap();
        let (policy, _server) = policy_of(dir.path(), scenario);
        let env = (table.env)(scenario);
        let run = analyze(dir.path(), &policy, true, &env);
        assert_eq!(run.code, expected, "{scenario:?}: {}", run.all());
        let report = read_json(&dir.path().join("report.json"));
        let verdict = report["verdict"].as_str().unwrap_or_default().to_owned();
        let want = ["pass", "fail", "inconclusive", "error", "error"];
        let i = SCENARIOS.iter().position(|(s, _)| *s == scenario).unwrap();
        assert_eq!(verdict, want[i], "{scenario:?}: {report}");
        match scenario {
            Scenario::Healthy => {
                assert_eq!(verdict_of(&report, "errors/slo"), "pass", "{report}");
                assert_eq!(verdict_of(&report, "errors/baseline"), "pass", "{report}");
            }
            Scenario::ThreeTimesErrors => {
                assert_eq!(verdict_of(&report, "errors/baseline"), "fail", "{report}");
            }
            Scenario::NoData => {
                assert_eq!(verdict_of(&report, "errors/slo"), "nodata", "{report}");
                assert!(report.to_string().contains(table.no_data), "{report}");
            }
            Scenario::ProviderError | Scenario::AuthFailure => {}
        }
        assert_no_secret(
            &leaks::outputs_of(&run.stdout, &run.stderr, dir.path()),
            table.secrets,
        );
        if expected == 4 {
            continue;
        }
        // The recording replays to the same verdict, with no provider at all.
        let replay = canary(
            &[
                "analyze",
                "--policy",
                dir.path().join("policy.yaml").to_str().unwrap(),
                "--input",
                dir.path().join("recording.json").to_str().unwrap(),
                "--output",
                &format!("json:{}", dir.path().join("replayed.json").display()),
            ],
            &[],
        );
        assert_eq!(
            replay.code,
            expected,
            "{scenario:?} replayed: {}",
            replay.all()
        );
        let replayed = read_json(&dir.path().join("replayed.json"));
        assert_eq!(replayed["checks"], report["checks"], "{scenario:?}");
    }
}

#[test]
fn http_provider_scenarios_exit_0_1_3_4_4_replay_the_same_and_leak_no_key() {
    scenario_table(&GENERIC, |_, scenario| {
        let server = http_provider(scenario);
        (http_policy(&server.url()), Some(server))
    });
}

#[test]
fn command_provider_scenarios_exit_0_1_3_4_4_and_replay_the_same() {
    scenario_table(&GENERIC, |dir, scenario| {
        (command_policy(dir, scenario), None)
    });
}

#[test]
fn the_http_provider_gets_one_request_per_check_per_tick_with_the_key() {
    let server = http_provider(Scenario::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let run = analyze(
        dir.path(),
        &http_policy(&server.url()),
        false,
        &[("GENERIC_API_KEY", API_KEY)],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let requests = server.requests();
    // One check; a tick every second from start + 1 s to the end: 5 ticks.
    assert_eq!(requests.len(), 5, "{}", run.all());
    for request in &requests {
        assert!(
            path_of(request).starts_with(
                "/v1/query?q=SELECT%20count%28%2A%29%20FROM%20Transaction%20FACET%20version%20SINCE%20"
            ),
            "{request}"
        );
        assert_eq!(header_of(request, "x-api-key"), Some(API_KEY));
    }
}

#[test]
fn lint_and_explain_say_which_guarantee_a_generic_check_has() {
    let dir = tempfile::tempdir().unwrap();
    let policy = http_policy("http://provider.example:8080").replace(
        "    baseline: {max-increase: 50%}\n",
        "    baseline: {max-increase: 50%}\n  - name: p95\n    json:\n      percentile: {canary: '$.p95', quantile: p95, unit: ms}\n    slo: {max: 300ms}\n",
    );
    let path = write_policy(dir.path(), "policy.yaml", &policy);
    let lint = canary(
        &["policy", "lint", path.to_str().unwrap()],
        &[("GENERIC_API_KEY", API_KEY)],
    );
    assert_eq!(lint.code, 0, "{}", lint.all());
    assert!(
        lint.stdout
            .contains("errors: guarantee: counts: the full sequential tests"),
        "{}",
        lint.all()
    );
    assert!(
        lint.stdout
            .contains("p95: guarantee: a percentile only: a bounded-value check"),
        "{}",
        lint.all()
    );
    let explain = canary(&["policy", "explain", path.to_str().unwrap()], &[]);
    assert_eq!(explain.code, 0, "{}", explain.all());
    assert!(
        explain
            .stdout
            .contains("GET http://provider.example:8080/v1/query?q=SELECT"),
        "{}",
        explain.all()
    );
    assert!(
        explain
            .stdout
            .contains("# p95: guarantee: a percentile only"),
        "{}",
        explain.all()
    );
    // A comparison with the baseline on a percentile is refused, saying why.
    let bad = policy.replace(
        "    slo: {max: 300ms}\n",
        "    slo: {max: 300ms}\n    baseline: {max-increase: 10%}\n",
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
