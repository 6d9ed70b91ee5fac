//! `canary demo`: the whole product in one process. Shorter steps than the default so the
//! suite stays quick; the README runs the default.

use serde_json::Value;

use crate::util::canary;

fn demo(args: &[&str]) -> (crate::util::Run, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut argv = vec![
        "demo",
        "--step",
        "3s",
        "--rps",
        "300",
        "--dir",
        dir.path().to_str().unwrap(),
    ];
    argv.extend_from_slice(args);
    let run = canary(&argv);
    let report = std::fs::read_to_string(dir.path().join("report.json"))
        .map(|text| serde_json::from_str(&text).expect("the report is JSON"))
        .unwrap_or(Value::Null);
    (run, report, dir)
}

fn weights(report: &Value) -> Vec<u64> {
    report["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["weight"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_healthy_demo_is_promoted_and_its_pipeline_output_is_plain() {
    let (run, report, dir) = demo(&[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(report["verdict"], "pass");
    assert_eq!(weights(&report), [10, 25, 50, 100]);
    assert!(
        run.stdout.contains("report: ") && run.stdout.contains("report.html"),
        "{}",
        run.all()
    );
    assert!(dir.path().join("report.html").exists());
    // The policy it ran is a real policy file.
    let lint = canary(&[
        "policy",
        "lint",
        dir.path().join("demo-policy.yaml").to_str().unwrap(),
    ]);
    assert_eq!(lint.code, 0, "{}", lint.all());
    // Not a terminal: plain lines, no escape codes, one line per tick.
    assert!(
        !run.stderr.contains('\u{1b}'),
        "escape codes in pipeline output:\n{}",
        run.stderr
    );
    let tick_lines = run
        .stderr
        .lines()
        .filter(|l| l.contains(" demo tick: "))
        .count();
    let ticks = report["timeline"].as_array().unwrap().len();
    assert_eq!(tick_lines, ticks, "one line per tick:\n{}", run.stderr);
    for decision in ["demo started:", "demo step:", "demo promoted:"] {
        assert!(
            run.stderr.contains(decision),
            "{decision} is logged:\n{}",
            run.stderr
        );
    }
}

#[test]
fn a_demo_with_5_percent_errors_rolls_back_in_the_first_step() {
    let (run, report, _dir) = demo(&["--fault", "errors=5%"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(report["verdict"], "fail");
    assert_eq!(weights(&report), [10, 0], "rolled back from the first step");
    assert_eq!(report["steps"].as_array().unwrap().len(), 1);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (run, _report, _dir) = demo(&["--fault", "latency=+200ms", "--log-format", "json"]);
    assert_eq!(run.code, 1, "{}", run.all());
    let mut kinds = Vec::new();
    for line in run.stderr.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        kinds.push(value["kind"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        kinds.iter().any(|k| k == "tick") && kinds.iter().any(|k| k == "rolled-back"),
        "{kinds:?}"
    );
}

#[test]
fn a_bad_fault_is_a_usage_error() {
    let run = canary(&["demo", "--fault", "cpu=90%"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("errors=5%"), "{}", run.all());
}
