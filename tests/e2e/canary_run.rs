//! Running the `canary` binary from the end-to-end tests, and looking at what it did.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;

use canary_tests::process::ChildGuard;
use canary_tests::{binary, workspace_root};

/// What a run of `canary` did.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Both streams, for assertion messages.
    pub(crate) fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary("canary"));
    command
        .args(args)
        .current_dir(workspace_root())
        .env_remove("GITHUB_STEP_SUMMARY");
    for (name, value) in envs {
        command.env(name, value);
    }
    command
}

/// Runs `canary ARGS…` to its end with extra environment variables.
pub(crate) fn canary(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let output = command(args, envs)
        .stdin(Stdio::null())
        .output()
        .expect("run the canary binary");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    // No command may ever end in a panic, whatever it was given.
    assert!(
        !run.stderr.contains("panicked"),
        "canary panicked:\n{}",
        run.all()
    );
    run
}

/// Starts `canary ARGS…`; its stderr lines arrive on the receiver as they are printed.
pub(crate) fn spawn_canary(args: &[&str], envs: &[(&str, &str)]) -> (ChildGuard, Receiver<String>) {
    let mut guard = ChildGuard::spawn("canary", &mut command(args, envs));
    let stderr = guard.child.stderr.take().expect("stderr is piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    (guard, receiver)
}

/// Every stderr line of an exited `canary` from [`spawn_canary`]: waits for the reader to
/// reach the end of the pipe (the sender is dropped then), at most 10 s (a child of canary's
/// holding the pipe open must not hang the test), rather than sleeping and hoping.
pub(crate) fn all_lines(stderr: &Receiver<String>) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match stderr.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => return lines.join("\n"),
        }
    }
}

/// Writes a policy file into `dir`.
pub(crate) fn write_policy(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write the policy");
    path
}

/// Reads a JSON file (a report or a recording).
pub(crate) fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A check's verdict in a report, by name (`errors/baseline`).
pub(crate) fn verdict_of(report: &serde_json::Value, name: &str) -> String {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))["verdict"]
        .as_str()
        .expect("a verdict")
        .to_owned()
}

/// `canary analyze` of the last 5 seconds against the Prometheus API at `url`, with `policy`
/// written into `dir` and every report format (and the step summary) written there too: what
/// the redaction tests search. With `--query-per-tick`: the fakes of these tests answer the
/// per-tick queries (aggregated vectors), which is the path a rollout takes; the one-query
/// window path has its own tests (`metrics_scenarios`, `prometheus::tests`).
pub(crate) fn analyze_last_5s_with_every_report(
    dir: &Path,
    url: &str,
    policy: &str,
    envs: &[(&str, &str)],
) -> Run {
    let policy = write_policy(dir, "policy.yaml", policy);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    let (start, end) = ((now - 5).to_string(), now.to_string());
    let summary = dir.join("step-summary.md").display().to_string();
    let mut envs = envs.to_vec();
    envs.push(("GITHUB_STEP_SUMMARY", &summary));
    let out = |format: &str, file: &str| format!("{format}:{}", dir.join(file).display());
    canary(
        &[
            "analyze",
            "--policy",
            policy.to_str().expect("a UTF-8 path"),
            "--prometheus",
            url,
            "--start",
            &start,
            "--end",
            &end,
            "--query-per-tick",
            "--output",
            &out("json", "report.json"),
            "--output",
            &out("markdown", "report.md"),
            "--output",
            &out("html", "report.html"),
            "--output",
            &out("junit", "report.xml"),
        ],
        &envs,
    )
}
