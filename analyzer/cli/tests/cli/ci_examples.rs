//! The CI examples in `examples/ci/` and the local stack stay true to the binary and to the
//! repository: they run the same `canary rollout` command (flags `canary rollout` has,
//! report formats it writes), every file they and their policy point at exists, every hook
//! of every shipped policy resolves, they run a pinned image on a runner that can reach the
//! gateway instead of building canary, and they publish what they write. (The files' syntax
//! is checked against GitHub's and GitLab's schemas by tests/lint-dist.sh.)

use std::path::Path;

use serde_json::Value;

use crate::util::{canary, root};

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

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

/// The words of the one `canary rollout` command in a piece of shell, from `rollout` on:
/// canary is called as `canary`, through the image (`"${canary[@]}"`, a `docker run`), or as
/// the local stack's `"$bin/canary"`.
fn rollout_words(what: &str, shell: &str) -> Vec<String> {
    let joined = shell.replace("\\\n", " ");
    let commands: Vec<Vec<String>> = joined
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.windows(2).position(|w| {
                w[1] == "rollout"
                    && ["canary", "\"${canary[@]}\"", "\"$bin/canary\""].contains(&w[0])
            })?;
            Some(
                words[at + 1..]
                    .iter()
                    .filter(|w| **w != "&")
                    .map(|w| (*w).to_owned())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(commands.len(), 1, "{what}: one rollout: {commands:?}");
    commands[0].clone()
}

fn ci_rollout(file: &str) -> Vec<String> {
    let mut lines = Vec::new();
    shell_lines(&yaml(&format!("examples/ci/{file}")), &mut lines);
    rollout_words(file, &lines.join("\n"))
}

/// The flags of a command with their values' kinds: `--output junit:…` keeps its format.
fn shape(words: &[String]) -> Vec<String> {
    let mut shape = Vec::new();
    for pair in words.windows(2) {
        if pair[0].starts_with("--") {
            let value = pair[1].trim_matches('"');
            match pair[0].as_str() {
                "--output" => shape.push(format!(
                    "--output {}",
                    value.split(':').next().unwrap_or_default()
                )),
                flag => shape.push(flag.to_owned()),
            }
        }
    }
    shape
}

#[test]
fn the_ci_examples_and_the_local_stack_run_the_same_rollout_the_binary_accepts() {
    let help = canary(&["rollout", "--help"]);
    assert_eq!(help.code, 0, "{}", help.all());
    let github = ci_rollout("github-actions.yml");
    let gitlab = ci_rollout("gitlab-ci.yml");
    let local = rollout_words("run.sh", &read("examples/local-stack/run.sh"));
    for (what, words) in [("github", &github), ("gitlab", &gitlab), ("run.sh", &local)] {
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                help.stdout.contains(&format!("{flag} "))
                    || help.stdout.contains(&format!("{flag}\n")),
                "{what}: `canary rollout` has no {flag}"
            );
        }
        assert_eq!(
            shape(words),
            [
                "--policy",
                "--id",
                "--state-dir",
                "--output junit",
                "--output html",
                "--output markdown",
                "--output json"
            ],
            "{what}: {words:?}"
        );
    }
    for words in [&github, &gitlab] {
        let policy = &words[words.iter().position(|w| w == "--policy").unwrap() + 1];
        assert!(root().join(policy).exists(), "{policy} exists");
    }
}

/// Every `./path` a CI example runs is a file of the repository (what is not here, like the
/// deployment, is a command with no path).
#[test]
fn the_ci_examples_point_at_files_that_exist() {
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let mut lines = Vec::new();
        shell_lines(&yaml(&format!("examples/ci/{file}")), &mut lines);
        for word in lines.join(" ").split_whitespace() {
            let word = word.trim_matches('"');
            if word.starts_with("./") || word.starts_with("policies/") {
                assert!(
                    root().join(word).exists(),
                    "{file} runs {word}, which does not exist"
                );
            }
        }
    }
}

/// The policy files the repository ships, with their text.
fn shipped_policies() -> Vec<(String, String)> {
    let mut policies = Vec::new();
    for dir in ["policies", "examples/kubernetes"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if dir == "policies" && name.ends_with(".yaml") || name.starts_with("policy") {
                policies.push((
                    format!("{dir}/{name}"),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    // The Job's policy, in its ConfigMap.
    let job: Vec<Value> =
        serde_saphyr::from_multiple(&read("examples/kubernetes/job.yaml")).unwrap();
    let text = job[0]["data"]["checkout.yaml"].as_str().unwrap().to_owned();
    policies.push(("examples/kubernetes/job.yaml".to_owned(), text));
    policies.push((
        "examples/local-stack/policy.template.yaml".to_owned(),
        read("examples/local-stack/policy.template.yaml"),
    ));
    policies.push((
        "analyzer/simulate/benchmark-policy.yaml".to_owned(),
        read("analyzer/simulate/benchmark-policy.yaml"),
    ));
    policies
}

fn hook_programs(text: &str) -> Vec<String> {
    let policy: Value = serde_saphyr::from_str(text).unwrap();
    policy["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hook| hook["command"][0].as_str().map(str::to_owned))
        .collect()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A hook whose program is not there fails the rollout before it starts: every hook of every
/// shipped policy names a program on the PATH, or a file of the repository (the working
/// directory of the CI examples). The CI examples' policy runs in canary's image: its hooks'
/// programs are installed there.
#[test]
fn every_hook_of_every_shipped_policy_resolves() {
    let dockerfile = read("Dockerfile");
    let mut hooks = 0;
    for (file, text) in shipped_policies() {
        for program in hook_programs(&text) {
            hooks += 1;
            if program.contains('/') {
                let path = root().join(&program);
                assert!(path.is_file(), "{file}: the hook {program} does not exist");
            } else {
                assert!(
                    on_path(&program),
                    "{file}: the hook program {program} is not on the PATH"
                );
            }
        }
    }
    assert!(hooks > 0, "no hooks found: is the walk right?");
    for program in hook_programs(&read("policies/checkout.yaml")) {
        assert!(
            dockerfile.lines().any(
                |l| l.contains("apt-get install") && l.split_whitespace().any(|w| w == program)
            ),
            "policies/checkout.yaml's hook {program} is not installed in the image"
        );
    }
}

/// The image reference of a CI example: pinned (a version tag or a digest, never `latest`).
fn assert_pinned(what: &str, image: &str) {
    let (_, tag) = image
        .rsplit_once(['@', ':'])
        .unwrap_or_else(|| panic!("{what}: {image} has no tag"));
    assert!(
        image.contains("@sha256:") || tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{what}: {image} is not pinned to a version"
    );
}

#[test]
fn the_ci_examples_run_a_pinned_image_where_the_gateway_is_reachable() {
    let github = yaml("examples/ci/github-actions.yml");
    let job = &github["jobs"]["canary"];
    let labels: Vec<&str> = job["runs-on"]
        .as_array()
        .expect("runs-on: [labels]")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(labels.contains(&"self-hosted"), "{labels:?}");
    assert_pinned("github", job["env"]["CANARY_IMAGE"].as_str().unwrap());
    let mut lines = Vec::new();
    shell_lines(job, &mut lines);
    let shell = lines.join("\n");
    assert!(
        !shell.contains("cargo"),
        "the GitHub job builds canary:\n{shell}"
    );
    assert!(shell.contains("docker run --rm --network host"), "{shell}");
    // Every absolute file the policy names is mounted into the container.
    let policy = read("policies/checkout.yaml");
    let policy: Value = serde_saphyr::from_str(&policy).unwrap();
    let mut files = Vec::new();
    absolute_files(&policy, &mut files);
    assert!(!files.is_empty());
    for file in &files {
        let mounted = shell.split_whitespace().any(|w| {
            w.split(':')
                .next()
                .is_some_and(|host| host.starts_with('/') && Path::new(file).starts_with(host))
        });
        assert!(
            mounted,
            "github: {file} (policies/checkout.yaml) is not mounted"
        );
    }

    let gitlab = yaml("examples/ci/gitlab-ci.yml");
    let job = &gitlab["canary-rollout"];
    assert_eq!(job["image"]["name"], "$CANARY_IMAGE");
    assert_eq!(job["image"]["entrypoint"], serde_json::json!([""]));
    assert_pinned(
        "gitlab",
        gitlab["variables"]["CANARY_IMAGE"].as_str().unwrap(),
    );
    assert!(job["tags"].as_array().is_some_and(|t| !t.is_empty()));
    let mut lines = Vec::new();
    shell_lines(job, &mut lines);
    assert!(!lines.join("\n").contains("cargo"));
    let text = read("examples/ci/gitlab-ci.yml");
    for file in &files {
        let dir = Path::new(file).parent().unwrap().display().to_string();
        assert!(
            text.contains(&dir),
            "gitlab: the runner's volumes do not name {dir}"
        );
    }
}

/// The policy's fields that name a file (`…-file`) with an absolute path.
fn absolute_files(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(path) if key.ends_with("-file") && path.starts_with('/') => {
                        out.push(path.clone())
                    }
                    _ => absolute_files(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| absolute_files(v, out)),
        _ => {}
    }
}

#[test]
fn the_ci_examples_publish_the_reports_and_keep_the_state() {
    let github = read("examples/ci/github-actions.yml");
    for needle in [
        "actions/cache/restore",
        "actions/cache/save",
        "github.run_attempt",
        "report_paths: canary-reports/junit.xml",
        "actions/upload-artifact",
        "--id \"${{ github.run_id }}\"",
        ">>\"$GITHUB_STEP_SUMMARY\"",
    ] {
        assert!(github.contains(needle), "github-actions.yml: {needle}");
    }
    let gitlab = read("examples/ci/gitlab-ci.yml");
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
