//! The CI snippets in `examples/ci/` stay true to the binary: they are YAML, the rollout
//! they run uses only flags `canary rollout` has and report formats it writes, and they
//! publish what they write.

use serde_json::Value;

use crate::util::{canary, root};

/// The shell lines of a job (`run:` of GitHub steps, `script:` of GitLab jobs).
fn shell_lines(document: &Value, out: &mut Vec<String>) {
    match document {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("run", Value::String(text)) => out.push(text.clone()),
                    ("script", Value::Array(lines)) => {
                        out.extend(lines.iter().filter_map(|l| l.as_str().map(str::to_owned)))
                    }
                    _ => shell_lines(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| shell_lines(item, out)),
        _ => {}
    }
}

fn rollout_command(file: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples/ci").join(file)).unwrap();
    let document: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("examples/ci/{file} is not YAML: {e}"));
    let mut lines = Vec::new();
    shell_lines(&document, &mut lines);
    let commands: Vec<String> = lines
        .into_iter()
        .filter(|l| l.contains("canary rollout"))
        .collect();
    assert_eq!(commands.len(), 1, "{file}: one rollout: {commands:?}");
    commands[0].replace("\\\n", " ")
}

#[test]
fn the_ci_snippets_run_a_rollout_the_binary_accepts() {
    let help = canary(&["rollout", "--help"]);
    assert_eq!(help.code, 0, "{}", help.all());
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let command = rollout_command(file);
        let words: Vec<&str> = command.split_whitespace().collect();
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                help.stdout.contains(&format!("{flag} "))
                    || help.stdout.contains(&format!("{flag}\n")),
                "{file}: `canary rollout` has no {flag}"
            );
        }
        for flag in ["--policy", "--id", "--state-dir", "--output"] {
            assert!(words.contains(&flag), "{file} passes {flag}");
        }
        let formats: Vec<&str> = words
            .windows(2)
            .filter(|w| w[0] == "--output")
            .map(|w| w[1].trim_matches('"').split(':').next().unwrap())
            .collect();
        assert_eq!(formats, ["junit", "html", "markdown", "json"], "{file}");
        let policy = words[words.iter().position(|w| *w == "--policy").unwrap() + 1];
        assert!(root().join(policy).exists(), "{file}: {policy} exists");
    }
}

#[test]
fn the_ci_snippets_publish_the_reports_and_keep_the_state() {
    let github = std::fs::read_to_string(root().join("examples/ci/github-actions.yml")).unwrap();
    for needle in [
        "actions/cache/restore",
        "actions/cache/save",
        "github.run_attempt",
        "report_paths: canary-reports/junit.xml",
        "actions/upload-artifact",
        "--id \"${{ github.run_id }}\"",
    ] {
        assert!(github.contains(needle), "github-actions.yml: {needle}");
    }
    let gitlab = std::fs::read_to_string(root().join("examples/ci/gitlab-ci.yml")).unwrap();
    for needle in [
        "junit: canary-reports/junit.xml",
        "canary-reports/report.html",
        "key: canary-checkout-$CI_PIPELINE_ID",
        "when: always",
        "--id \"$CI_PIPELINE_ID\"",
    ] {
        assert!(gitlab.contains(needle), "gitlab-ci.yml: {needle}");
    }
}
