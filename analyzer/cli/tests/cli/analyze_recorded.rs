//! `canary analyze --input`: recorded data judged offline, with the documented exit codes
//! and the JSON report's contract.

use serde_json::Value;

use crate::util::{canary, root};

const POLICY: &str = "policies/checkout.yaml";

fn analyze(input: &str, report: &std::path::Path) -> (crate::util::Run, Value) {
    let output = format!("json:{}", report.display());
    let run = canary(&[
        "analyze", "--policy", POLICY, "--input", input, "--output", &output,
    ]);
    let json = std::fs::read_to_string(report)
        .map(|text| serde_json::from_str(&text).expect("the report is JSON"))
        .unwrap_or(Value::Null);
    (run, json)
}

fn verdict_of<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))["verdict"]
        .as_str()
        .unwrap()
}

#[test]
fn a_healthy_recording_passes_with_exit_0_and_the_report_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (run, report) = analyze(
        "examples/recordings/healthy.json",
        &dir.path().join("r.json"),
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(report["verdict"], "pass", "{report}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(
        checks.len(),
        5,
        "errors/slo, errors/baseline, latency/slo, latency/baseline, no-restarts/slo"
    );
    for check in checks {
        assert_eq!(check["verdict"], "pass", "{check}");
        let evidence = &check["evidence"];
        for field in ["test", "canary_n", "estimate", "threshold", "alpha"] {
            assert!(
                !evidence[field].is_null()
                    || check["name"] == "no-restarts/slo" && field == "canary_n",
                "{field} missing in {check}"
            );
        }
    }
    let errors_baseline = checks
        .iter()
        .find(|c| c["name"] == "errors/baseline")
        .unwrap();
    assert!(
        errors_baseline["evidence"]["e_value"].as_f64().unwrap()
            < 1.0 / errors_baseline["evidence"]["alpha"].as_f64().unwrap()
    );
    assert!(errors_baseline["evidence"]["baseline_n"].as_u64().unwrap() > 10_000);
    assert!(
        run.stdout.contains("analyze checkout: PASS (exit 0)"),
        "{}",
        run.all()
    );
}

#[test]
fn three_times_the_errors_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (run, report) = analyze(
        "examples/recordings/errors-3x.json",
        &dir.path().join("r.json"),
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(report["verdict"], "fail");
    assert_eq!(verdict_of(&report, "errors/baseline"), "fail");
    assert_eq!(verdict_of(&report, "latency/baseline"), "pass");
    assert!(
        !report["decided_at"].is_null(),
        "a failure is dated: {report}"
    );
}

#[test]
fn a_slower_p95_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (run, report) = analyze(
        "examples/recordings/latency-p95-up.json",
        &dir.path().join("r.json"),
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(verdict_of(&report, "latency/baseline"), "fail");
    assert_eq!(verdict_of(&report, "errors/baseline"), "pass");
}

#[test]
fn no_canary_traffic_is_nodata_and_inconclusive_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let (run, report) = analyze(
        "examples/recordings/no-canary.json",
        &dir.path().join("r.json"),
    );
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(report["verdict"], "inconclusive");
    assert_eq!(verdict_of(&report, "errors/slo"), "nodata");
    assert_eq!(verdict_of(&report, "latency/baseline"), "nodata");
}

#[test]
fn an_empty_recording_is_inconclusive_never_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (run, report) = analyze("examples/recordings/empty.json", &dir.path().join("r.json"));
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(report["verdict"], "inconclusive");
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["verdict"], "nodata", "{check}");
    }
}

#[test]
fn malformed_recordings_exit_2_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = std::fs::read_to_string(root().join("examples/recordings/healthy.json")).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("truncated", healthy[..healthy.len() / 2].to_owned(), "EOF"),
        (
            "not json",
            "<html><body>502 Bad Gateway</body></html>".to_owned(),
            "1:1",
        ),
        (
            "wrong format tag",
            healthy.replacen("canary-recording/1", "canary-recording/9", 1),
            "format",
        ),
        (
            "wrong type",
            healthy.replacen("\"requests\": ", "\"requests\": \"many\", \"x\": ", 1),
            "ticks[0].readings",
        ),
        (
            "unknown reading",
            healthy.replacen("\"reading\": \"observed\"", "\"reading\": \"seen\"", 1),
            "ticks[0]",
        ),
        ("empty file", String::new(), "empty"),
    ];
    for (what, text, expected) in cases {
        let path = dir.path().join(format!("{}.json", what.replace(' ', "-")));
        std::fs::write(&path, text).unwrap();
        let run = canary(&[
            "analyze",
            "--policy",
            POLICY,
            "--input",
            path.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 2, "{what}: {}", run.all());
        assert!(
            run.stderr.contains(path.to_str().unwrap()),
            "{what} names the file: {}",
            run.all()
        );
        assert!(
            run.stderr.contains(expected),
            "{what} should mention {expected:?}: {}",
            run.all()
        );
    }
}

#[test]
fn ticks_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let healthy: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/recordings/healthy.json")).unwrap(),
    )
    .unwrap();
    let mut shuffled = healthy.clone();
    shuffled["ticks"].as_array_mut().unwrap().swap(0, 5);
    let path = dir.path().join("shuffled.json");
    std::fs::write(&path, shuffled.to_string()).unwrap();
    let run = canary(&[
        "analyze",
        "--policy",
        POLICY,
        "--input",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("time order"), "{}", run.all());
}

#[test]
fn markdown_and_junit_reports_are_written_alongside_json() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("report.md");
    let junit = dir.path().join("junit.xml");
    let run = canary(&[
        "analyze",
        "--policy",
        POLICY,
        "--input",
        "examples/recordings/errors-3x.json",
        "--output",
        &format!("markdown:{}", md.display()),
        "--output",
        &format!("junit:{}", junit.display()),
        "--quiet",
    ]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.is_empty(),
        "--quiet prints nothing: {}",
        run.all()
    );
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("| `errors/baseline` | ❌ fail |"), "{md}");
    let junit = std::fs::read_to_string(junit).unwrap();
    assert!(
        junit.contains("<testcase classname=\"canary.checkout\" name=\"errors/baseline\""),
        "{junit}"
    );
    assert!(junit.contains("<failure message="), "{junit}");
    assert_eq!(junit.matches("<testcase ").count(), 5);
}

#[test]
fn usage_errors_exit_2() {
    let run = canary(&["analyze", "--policy", POLICY]);
    assert_eq!(run.code, 2, "{}", run.all());
    let run = canary(&[
        "analyze",
        "--policy",
        "nope.yaml",
        "--input",
        "examples/recordings/healthy.json",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("nope.yaml"), "{}", run.all());
    let run = canary(&[
        "analyze",
        "--policy",
        POLICY,
        "--input",
        "examples/recordings/healthy.json",
        "--output",
        "pdf:x.pdf",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
}

/// Issue 12.8: an error is printed once. A wrapper whose message is its cause's (the core's
/// `Error::Policy` around a `PolicyError`) printed the same line twice, as `error:` and as
/// `caused by:`.
#[test]
fn an_error_is_printed_once_however_it_is_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("bad.yaml");
    std::fs::write(
        &policy,
        "service: x\ntraffic: {label: version, canary: c, baseline: b}\n",
    )
    .unwrap();
    let run = canary(&[
        "analyze",
        "--policy",
        policy.to_str().unwrap(),
        "--input",
        "examples/recordings/errors-3x.json",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(
        run.stderr.matches("missing field `metrics`").count(),
        1,
        "{}",
        run.all()
    );
}
