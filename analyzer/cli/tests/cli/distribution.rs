//! The `Dockerfile` and the install commands, checked as far as they can be without a Docker
//! engine (none runs where canary is tested; hadolint lints the file in tests/run.sh): every
//! path copied from the build context exists and is not excluded by `.dockerignore`, every
//! stage copied from exists, the cargo command is the one docs/install.md documents and builds
//! packages, binaries and a profile that exist, the binary copied is the one built, and the
//! image runs canary as a non-root user.

use std::collections::BTreeMap;

use crate::util::root;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The Dockerfile's instructions (continuation lines joined, comments dropped), each with the
/// stage it is in.
fn instructions() -> Vec<(String, String)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stage = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "FROM" {
            let at = words.iter().position(|w| w.eq_ignore_ascii_case("AS"));
            stage = at.map(|i| words[i + 1].to_owned()).unwrap_or_default();
        }
        out.push((stage.clone(), line.to_owned()));
    }
    out
}

/// `.dockerignore`'s patterns, and whether one of them excludes a path of the context.
fn docker_ignored(path: &str) -> bool {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|pattern| {
            if let Some(suffix) = pattern.strip_prefix("**/*") {
                path.ends_with(suffix)
            } else if let Some(dir) = pattern.strip_prefix("**/") {
                path.split('/')
                    .any(|part| format!("{part}/") == dir || part == dir)
            } else {
                let dir = pattern.trim_end_matches('/');
                path == dir || path.starts_with(&format!("{dir}/"))
            }
        })
}

/// The workspace's binaries by package: `[[bin]]` names in each member's Cargo.toml.
fn workspace_binaries() -> BTreeMap<String, Vec<String>> {
    let mut binaries = BTreeMap::new();
    for manifest in ["analyzer/cli/Cargo.toml", "examples/demo/Cargo.toml"] {
        let text = read(manifest);
        let mut package = String::new();
        let mut section = "";
        let mut bins = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = if line == "[package]" {
                    "package"
                } else if line == "[[bin]]" {
                    "bin"
                } else {
                    ""
                };
            } else if let Some(value) = line.strip_prefix("name = ") {
                let value = value.trim_matches('"').to_owned();
                match section {
                    "package" => package = value,
                    "bin" => bins.push(value),
                    _ => {}
                }
            }
        }
        binaries.insert(package, bins);
    }
    binaries
}

#[test]
fn every_path_the_dockerfile_copies_from_the_context_exists_and_is_sent() {
    let stages: Vec<String> = instructions()
        .iter()
        .filter(|(_, line)| line.starts_with("FROM "))
        .map(|(stage, _)| stage.clone())
        .collect();
    let mut copies = 0;
    for (stage, line) in instructions() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] != "COPY" && words[0] != "ADD" {
            continue;
        }
        assert_eq!(
            words[0], "COPY",
            "{line}: ADD fetches and unpacks; COPY is what is meant"
        );
        copies += 1;
        let from = words.iter().find_map(|w| w.strip_prefix("--from="));
        let sources: Vec<&str> = words[1..words.len() - 1]
            .iter()
            .filter(|w| !w.starts_with("--"))
            .copied()
            .collect();
        match from {
            Some(other) => assert!(
                stages.iter().any(|s| s == other) && other != stage,
                "{line}: no earlier stage {other}"
            ),
            None => {
                for source in sources {
                    let source = source.trim_start_matches("./");
                    if source == "." {
                        continue;
                    }
                    assert!(
                        root().join(source).exists(),
                        "{line}: {source} does not exist"
                    );
                    assert!(
                        !docker_ignored(source),
                        "{line}: .dockerignore excludes {source}"
                    );
                }
            }
        }
    }
    assert!(copies >= 3, "{copies} COPY instructions");
}

/// `COPY . .` sends the repository minus `.dockerignore`: nothing the build reads may be
/// excluded, i.e. no file git tracks.
#[test]
fn the_dockerignore_excludes_only_build_output_and_metadata() {
    let tracked = std::process::Command::new("git")
        .args(["ls-files"])
        .current_dir(root())
        .output()
        .expect("git ls-files");
    let tracked = String::from_utf8(tracked.stdout).unwrap();
    assert!(tracked.lines().count() > 50, "{tracked}");
    for file in tracked.lines() {
        assert!(
            !docker_ignored(file),
            ".dockerignore excludes {file}, which the build may need"
        );
    }
    for output in ["target/debug/canary", ".git/HEAD", "fuzz/target/x"] {
        assert!(docker_ignored(output), ".dockerignore sends {output}");
    }
}

#[test]
fn the_dockerfile_builds_what_exists_with_the_documented_command() {
    let install = read("docs/install.md");
    let cargo_toml = read("Cargo.toml");
    let binaries = workspace_binaries();
    let mut built = Vec::new();
    for (stage, line) in instructions() {
        let Some(at) = line.find("cargo build") else {
            continue;
        };
        let command = line[at..].split("&&").next().unwrap().trim().to_owned();
        let words: Vec<&str> = command.split_whitespace().collect();
        assert!(
            words.contains(&"--locked"),
            "{command}: builds with the lock file"
        );
        let value = |flag: &str| {
            words
                .windows(2)
                .find(|w| w[0] == flag)
                .map(|w| w[1].to_owned())
                .unwrap_or_else(|| panic!("{command}: no {flag}"))
        };
        let profile = value("--profile");
        let package = value("--package");
        let bin = value("--bin");
        assert!(
            cargo_toml.contains(&format!("[profile.{profile}]")),
            "{command}: no profile {profile}"
        );
        assert!(
            binaries
                .get(&package)
                .is_some_and(|bins| bins.contains(&bin)),
            "{command}: package {package} has no binary {bin} ({binaries:?})"
        );
        // The binary copied out is the one this command built.
        assert!(
            line.contains(&format!("target/{profile}/{bin}")),
            "{line}: copies something else than target/{profile}/{bin}"
        );
        if stage == "build" {
            assert!(
                install.contains(&command),
                "docs/install.md does not document the image's build command `{command}`"
            );
        }
        built.push(bin);
    }
    assert_eq!(built, ["canary", "canary-demo-service"]);
}

#[test]
fn the_image_runs_canary_as_a_non_root_user() {
    let all = instructions();
    let last_stage = all.last().unwrap().0.clone();
    assert_eq!(last_stage, "canary", "the default target is canary itself");
    let stage_of = |name: &str| -> Vec<String> {
        all.iter()
            .filter(|(s, _)| s == name)
            .map(|(_, l)| l.clone())
            .collect()
    };
    let canary = stage_of("canary");
    assert_eq!(canary[0], "FROM runtime AS canary");
    assert!(
        canary.contains(&"ENTRYPOINT [\"/usr/local/bin/canary\"]".to_owned()),
        "{canary:?}"
    );
    assert!(
        canary.contains(&"COPY --from=build /out/canary /usr/local/bin/canary".to_owned()),
        "{canary:?}"
    );
    let runtime = stage_of("runtime");
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric user");
    assert_ne!(uid, 0);
    // The Kubernetes Job runs as the same user.
    assert!(read("examples/kubernetes/job.yaml").contains(&format!("runAsUser: {uid}")));
}

#[test]
fn the_install_commands_are_documented() {
    let readme = read("README.md");
    let install = read("docs/install.md");
    for command in [
        "cargo install --locked --path analyzer/cli",
        "cargo install --locked --profile dist --path analyzer/cli",
        "docker build -t",
    ] {
        assert!(install.contains(command), "docs/install.md: {command}");
    }
    assert!(readme.contains("cargo install --locked --path analyzer/cli"));
    assert!(readme.contains("docs/install.md"));
}
