//! `canary policy lint`: the shipped policies pass; each kind of mistake is refused with
//! exit code 2 and a message naming the line and the field.

use crate::util::{canary, root};

/// A valid policy; the broken ones below are this with one mistake each.
const BASE: &str = r#"service: checkout
traffic:
  label: version
  canary: canary
  baseline: stable
metrics:
  prometheus:
    url: http://localhost:9090
rollout:
  steps: [10, 25, 50, 100]
  step-duration: 5m
  interval: 30s
  alpha: 1%
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 1%
    baseline:
      max-increase: 20%
  - name: latency
    latency:
      histogram: http_request_duration_seconds
    slo:
      max: 500ms
"#;

/// One mistake: what to replace in `BASE`, and what the message must say.
struct Mistake {
    what: &'static str,
    find: &'static str,
    replace: &'static str,
    line: u32,
    field: &'static str,
    message: &'static str,
}

const MISTAKES: &[Mistake] = &[
    Mistake {
        what: "unknown field",
        find: "step-duration: 5m",
        replace: "step-durations: 5m",
        line: 11,
        field: "rollout.step-durations",
        message: "unknown field",
    },
    Mistake {
        what: "wrong type",
        find: "steps: [10, 25, 50, 100]",
        replace: "steps: ten",
        line: 10,
        field: "rollout.steps",
        message: "",
    },
    Mistake {
        what: "bad duration",
        find: "interval: 30s",
        replace: "interval: 30 parsecs",
        line: 12,
        field: "rollout.interval",
        message: "expected a duration",
    },
    Mistake {
        what: "bare number as duration",
        find: "step-duration: 5m",
        replace: "step-duration: 300",
        line: 11,
        field: "rollout.step-duration",
        message: "no unit",
    },
    Mistake {
        what: "bad percentage",
        find: "max: 1%",
        replace: "max: lots",
        line: 20,
        field: "checks[0].slo.max",
        message: "expected a percentage like \"1%\" or 0.01",
    },
    Mistake {
        what: "weights not increasing",
        find: "[10, 25, 50, 100]",
        replace: "[10, 50, 25, 100]",
        line: 10,
        field: "rollout.steps[2]",
        message: "steps must increase",
    },
    Mistake {
        what: "weight out of range",
        find: "[10, 25, 50, 100]",
        replace: "[10, 250, 100]",
        line: 10,
        field: "rollout.steps[1]",
        message: "from 1 to 100",
    },
    Mistake {
        what: "steps not ending at 100",
        find: "[10, 25, 50, 100]",
        replace: "[10, 25, 50]",
        line: 10,
        field: "rollout.steps",
        message: "last step must be 100",
    },
    Mistake {
        what: "alpha out of range",
        find: "alpha: 1%",
        replace: "alpha: 60%",
        line: 13,
        field: "rollout.alpha",
        message: "false-rollback budget",
    },
    Mistake {
        what: "alpha as a bare percent number",
        find: "alpha: 1%",
        replace: "alpha: 5",
        line: 13,
        field: "rollout.alpha",
        message: "did you mean",
    },
    Mistake {
        what: "interval longer than a step",
        find: "interval: 30s",
        replace: "interval: 10m",
        line: 12,
        field: "rollout.interval",
        message: "longer than a step",
    },
    Mistake {
        what: "check judging nothing",
        find: "    slo:\n      max: 500ms\n",
        replace: "",
        line: 23,
        field: "checks[1]",
        message: "judges nothing",
    },
    Mistake {
        what: "two kinds in one check",
        find: "      histogram: http_request_duration_seconds\n",
        replace: "      histogram: http_request_duration_seconds\n    error-rate:\n      requests: x\n      errors: 'code=\"500\"'\n",
        line: 23,
        field: "checks[1]",
        message: "exactly one of",
    },
    Mistake {
        what: "duplicate check name",
        find: "- name: latency",
        replace: "- name: errors",
        line: 23,
        field: "checks[1].name",
        message: "already defined",
    },
    Mistake {
        what: "malformed matcher",
        find: r#"errors: 'code=~"5.."'"#,
        replace: "errors: 'code=~5..'",
        line: 18,
        field: "checks[0].error-rate.errors",
        message: "quoted value",
    },
    Mistake {
        what: "quantile out of range",
        find: "      histogram: http_request_duration_seconds\n",
        replace: "      histogram: http_request_duration_seconds\n      quantile: 1.5\n",
        line: 26,
        field: "checks[1].latency.quantile",
        message: "between 0 and 1",
    },
    Mistake {
        what: "rollback bound below max",
        find: "      max: 1%\n",
        replace: "      max: 1%\n      rollback-above: 0.5%\n",
        line: 21,
        field: "checks[0].slo.rollback-above",
        message: "at least `max`",
    },
    Mistake {
        what: "invalid metric name",
        find: "requests: http_requests_total",
        replace: "requests: http-requests",
        line: 17,
        field: "checks[0].error-rate.requests",
        message: "metric name",
    },
    Mistake {
        what: "same label value for both versions",
        find: "baseline: stable",
        replace: "baseline: canary",
        line: 5,
        field: "traffic.baseline",
        message: "must differ",
    },
    Mistake {
        what: "URL without scheme",
        find: "url: http://localhost:9090",
        replace: "url: localhost:9090",
        line: 8,
        field: "metrics.prometheus.url",
        message: "http://",
    },
    Mistake {
        what: "promote on inconclusive",
        find: "alpha: 1%",
        replace: "alpha: 1%\n  on-inconclusive: promote",
        line: 14,
        field: "rollout.on-inconclusive",
        message: "never promotes",
    },
    Mistake {
        what: "unknown action on unreadable metrics",
        find: "alpha: 1%",
        replace: "alpha: 1%\n  on-metrics-unavailable: retry",
        line: 14,
        field: "rollout.on-metrics-unavailable",
        message: "expected `leave` or `rollback`",
    },
    Mistake {
        what: "negative request minimum",
        find: "alpha: 1%",
        replace: "alpha: 1%\n  min-requests: -5",
        line: 14,
        field: "rollout.min-requests",
        message: "0 or more",
    },
    Mistake {
        what: "latency bound without a unit",
        find: "max: 500ms",
        replace: "max: 300",
        line: 27,
        field: "checks[1].slo.max",
        message: "no unit (did you mean \"300ms\"?)",
    },
    Mistake {
        what: "regex the scrape source cannot compile",
        find: "errors: 'code=~\"5..\"'",
        replace: "errors: 'code=~\"5..{{\"'",
        line: 18,
        field: "checks[0].error-rate.errors",
        message: "not a valid regular expression",
    },
    Mistake {
        what: "YAML syntax error",
        find: "steps: [10, 25, 50, 100]",
        replace: "steps: [10, 25, 50, 100",
        line: 11,
        field: "",
        message: "",
    },
];

#[test]
fn every_shipped_policy_lints_clean() {
    let mut files: Vec<String> = ["policies", "examples/kubernetes"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root().join(dir)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| {
            // Policies only: the Kubernetes manifests next to them are not.
            let text = std::fs::read_to_string(p).unwrap();
            text.lines().any(|l| l.starts_with("service:"))
        })
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    files.sort();
    assert!(
        files.len() >= 6,
        "expected the shipped policies, found {files:?}"
    );
    for file in &files {
        let run = canary(&["policy", "lint", file]);
        assert_eq!(run.code, 0, "{file} should lint clean:\n{}", run.all());
        assert!(run.stdout.contains(&format!("ok {file}")), "{}", run.all());
        // Clean means no warning either: every command resolves, every policy can roll out.
        assert!(!run.stderr.contains("warning"), "{file}:\n{}", run.all());
    }
}

#[test]
fn the_base_of_the_broken_policies_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.yaml");
    std::fs::write(&path, BASE).unwrap();
    let run = canary(&["policy", "lint", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn each_kind_of_mistake_exits_2_naming_line_and_field() {
    assert!(MISTAKES.len() >= 12);
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, mistake) in MISTAKES.iter().enumerate() {
        assert!(
            BASE.contains(mistake.find),
            "{}: {:?} is not in the base policy",
            mistake.what,
            mistake.find
        );
        let path = dir.path().join(format!("broken-{i}.yaml"));
        std::fs::write(&path, BASE.replacen(mistake.find, mistake.replace, 1)).unwrap();
        let file = path.to_str().unwrap();
        let run = canary(&["policy", "lint", file]);
        let location = format!("{file}:{}:", mistake.line);
        let field = if mistake.field.is_empty() {
            String::new()
        } else {
            format!(" {}: ", mistake.field)
        };
        let ok = run.code == 2
            && run.stderr.contains(&location)
            && run.stderr.contains(&field)
            && run.stderr.contains(mistake.message);
        if !ok {
            failures.push(format!(
                "{}: expected exit 2 with `{location}`, `{field}` and `{}`, got:\n{}",
                mistake.what,
                mistake.message,
                run.all()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn lint_reports_every_file_and_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("two-problems.yaml");
    let text = BASE.replacen("alpha: 1%", "alpha: 90%", 1).replacen(
        "baseline: stable",
        "baseline: canary",
        1,
    );
    std::fs::write(&bad, text).unwrap();
    let run = canary(&[
        "policy",
        "lint",
        "policies/checkout.yaml",
        bad.to_str().unwrap(),
        "does-not-exist.yaml",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("ok policies/checkout.yaml"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("traffic.baseline") && run.stderr.contains("rollout.alpha"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("does-not-exist.yaml: cannot read"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("2 of 3 policy files have problems"),
        "{}",
        run.all()
    );
}

/// serde stops at the first type error; lint does not: every parse-level problem of the file
/// and every validation problem come in one run, each once, with its line and field.
#[test]
fn every_problem_of_a_file_comes_in_one_run_parse_errors_included() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("many-problems.yaml");
    let text = BASE
        .replacen("steps: [10, 25, 50, 100]", "steps: ten", 1)
        .replacen("step-duration: 5m", "step-durations: 5m", 1)
        .replacen("alpha: 1%", "alpha: 90%", 1)
        .replacen("max: 500ms", "max: 300", 1)
        .replacen("max-increase: 20%", "max-increase: lots", 1)
        .replacen("baseline: stable", "baseline: canary", 1);
    std::fs::write(&bad, text).unwrap();
    let file = bad.to_str().unwrap();
    let run = canary(&["policy", "lint", file]);
    assert_eq!(run.code, 2, "{}", run.all());
    for (line, field) in [
        (5, "traffic.baseline"),
        (10, "rollout.steps"),
        (11, "rollout.step-durations"),
        (13, "rollout.alpha"),
        (22, "checks[0].baseline.max-increase"),
        (27, "checks[1].slo.max"),
    ] {
        let expected = format!("{file}:{line}:");
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with(&expected) && l.contains(&format!(" {field}: "))),
            "expected a problem at line {line} naming {field}:\n{}",
            run.all()
        );
    }
    // Each once, nothing about the blanked entries' parents.
    let problems = run.stderr.lines().filter(|l| l.starts_with(file)).count();
    assert_eq!(problems, 6, "{}", run.all());
}

#[test]
fn a_policy_without_a_gateway_lints_with_a_warning_that_rollout_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("analysis-only.yaml");
    std::fs::write(&path, BASE).unwrap();
    let file = path.to_str().unwrap();
    let run = canary(&["policy", "lint", file]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains(&format!(
            "{file}: warning: gateway: none: `canary rollout` refuses this policy"
        )),
        "{}",
        run.all()
    );
    // And rollout does refuse it, before touching anything (its state kept in the tempdir).
    let state = dir.path().join("state");
    let run = canary(&[
        "rollout",
        "--policy",
        file,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("has no `gateway`"), "{}", run.all());
}

#[test]
fn a_hook_command_that_does_not_resolve_is_a_warning_naming_where_it_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooked.yaml");
    let hooks = "gateway:\n  command:\n    set: [sh, -c, 'true']\nhooks:\n  - name: smoke\n    on: [before]\n    command: [./scripts/no-such-smoke-test.sh]\n  - name: tool\n    on: [before]\n    command: [no-such-tool-anywhere, --flag]\n  - name: fine\n    on: [before]\n    command: [sh, -c, 'true']\n";
    std::fs::write(&path, format!("{BASE}{hooks}")).unwrap();
    let file = path.to_str().unwrap();
    let run = canary(&["policy", "lint", file]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains(&format!(
            "{file}: warning: hooks[0].command: `./scripts/no-such-smoke-test.sh` does not exist relative to the working directory"
        )),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains(&format!(
            "{file}: warning: hooks[1].command: `no-such-tool-anywhere` is not on $PATH"
        )),
        "{}",
        run.all()
    );
    assert!(!run.stderr.contains("hooks[2]"), "{}", run.all());
    assert!(!run.stderr.contains("gateway"), "{}", run.all());
}

/// An NGINX gateway without `weight-probe` reads its weights back from the file canary wrote:
/// lint and `policy explain` say what a reload that did not take effect would then mean, and
/// how to close the gap. With a probe, neither says a word about it.
#[test]
fn an_nginx_gateway_without_a_weight_probe_is_a_warning_in_lint_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = |probe: &str| {
        format!(
            "gateway:\n  nginx:\n    upstream-file: /etc/nginx/conf.d/up.conf\n    upstream: checkout\n    canary: 10.0.0.2:80\n    stable: 10.0.0.1:80\n    reload: [sh, -c, 'true']\n{probe}"
        )
    };
    let without = dir.path().join("nginx-file-only.yaml");
    std::fs::write(&without, format!("{BASE}{}", gateway(""))).unwrap();
    let file = without.to_str().unwrap();
    let run = canary(&["policy", "lint", file]);
    assert_eq!(run.code, 0, "a warning, not a problem: {}", run.all());
    let warning = format!("{file}: warning: gateway.nginx.weight-probe: none: ");
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with(&warning))
        .unwrap_or_else(|| panic!("no weight-probe warning:\n{}", run.all()));
    for said in [
        "a reload that did not take effect",
        "serving the old weight",
        "weight-probe: 127.0.0.1:PORT",
    ] {
        assert!(line.contains(said), "{said}: {line}");
    }
    let explain = canary(&["policy", "explain", file]);
    assert_eq!(explain.code, 0, "{}", explain.all());
    assert!(
        explain
            .stdout
            .contains("# warning: gateway.nginx.weight-probe: none: "),
        "{}",
        explain.all()
    );
    assert!(
        explain
            .stdout
            .contains("weights are read back from that file"),
        "{}",
        explain.all()
    );

    let with = dir.path().join("nginx-probed.yaml");
    std::fs::write(
        &with,
        format!("{BASE}{}", gateway("    weight-probe: 127.0.0.1:9181\n")),
    )
    .unwrap();
    let file = with.to_str().unwrap();
    let run = canary(&["policy", "lint", file]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stderr.contains("warning"), "{}", run.all());
    let explain = canary(&["policy", "explain", file]);
    assert!(!explain.stdout.contains("warning"), "{}", explain.all());
    assert!(
        explain
            .stdout
            .contains("weight probe http://127.0.0.1:9181/canary-weights"),
        "{}",
        explain.all()
    );
}

#[test]
fn schema_is_json_that_names_the_fields() {
    let run = canary(&["policy", "schema"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).expect("the schema is JSON");
    let properties = &schema["properties"];
    for field in [
        "service", "traffic", "metrics", "rollout", "gateway", "hooks", "checks",
    ] {
        assert!(
            properties.get(field).is_some(),
            "schema lacks {field}: {schema}"
        );
    }
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
}
