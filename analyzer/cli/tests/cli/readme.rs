//! Every `cargo run` command in the README's tour, run as it is written (the local stack
//! script is run by the end-to-end tests, the test command by `.ci/run`). A comment
//! `# … exit N` after a command gives the exit code it must end with; otherwise 0.

use crate::util::{canary, root};

/// The README's `cargo run [--release] -- ARGS` lines, with the exit code each must give.
fn tour_commands() -> Vec<(Vec<String>, i32)> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    readme
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("cargo run --release -- ")
                .or_else(|| line.strip_prefix("cargo run -- "))?;
            let (command, comment) = rest.split_once('#').unwrap_or((rest, ""));
            let code = comment
                .split("exit ")
                .nth(1)
                .and_then(|n| n.trim().split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Some((
                command.split_whitespace().map(str::to_owned).collect(),
                code,
            ))
        })
        .collect()
}

#[test]
fn every_tour_command_runs_with_its_exit_code() {
    let commands = tour_commands();
    assert!(
        commands.len() >= 8,
        "the tour lists its commands: {commands:?}"
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.starts_with("# canary\n\n```sh\ncargo run --release -- demo"),
        "the first command is the demo"
    );
    assert!(
        readme.contains("\ntests/run.sh "),
        "the second is the test command"
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.contains("exec tests/run.sh"),
        ".ci/run calls exactly the README's test command"
    );
    let mut failures = Vec::new();
    let mut done = Vec::new();
    for (args, expected) in commands {
        // The tour repeats its first command (the demo, about 45 s): a command already run
        // with the same expected exit code shows nothing new.
        if done.contains(&(args.clone(), expected)) {
            continue;
        }
        done.push((args.clone(), expected));
        // The demo writes to target/canary-demo; keep parallel runs apart.
        let mut args = args;
        if args[0] == "demo" {
            let dir = tempfile::tempdir().unwrap().keep();
            args.push("--dir".to_owned());
            args.push(dir.display().to_string());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = canary(&argv);
        if run.code != expected {
            failures.push(format!(
                "`canary {}`: expected exit {expected}\n{}",
                args.join(" "),
                run.all()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
