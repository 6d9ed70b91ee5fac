//! `canary completions <shell>`: a script for each shell clap_complete knows, naming every
//! command; bash's is checked by bash itself.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::canary;

#[test]
fn every_shell_gets_a_script_that_knows_the_commands() {
    let markers = [
        ("bash", "complete -F _canary"),
        ("zsh", "#compdef canary"),
        ("fish", "complete -c canary"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[canary]"),
    ];
    for (shell, marker) in markers {
        let run = canary(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.all());
        assert!(run.stdout.contains(marker), "{shell}: no {marker:?}");
        for word in [
            "rollout",
            "analyze",
            "completions",
            "metrics-addr",
            "output",
        ] {
            assert!(run.stdout.contains(word), "{shell}: no {word}");
        }
    }
}

#[test]
fn the_bash_script_is_valid_bash_and_completes_subcommands() {
    let script = canary(&["completions", "bash"]).stdout;
    // Source it, then ask it what `canary ro<TAB>` completes to.
    let program = format!(
        "{script}\nCOMP_WORDS=(canary ro); COMP_CWORD=1; _canary canary ro canary; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    let mut bash = Command::new("bash")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    bash.stdin
        .take()
        .unwrap()
        .write_all(program.as_bytes())
        .unwrap();
    let output = bash.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "rollout", "completions of `canary ro`");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let run = canary(&["completions", "tcsh"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("possible values"), "{}", run.all());
}
