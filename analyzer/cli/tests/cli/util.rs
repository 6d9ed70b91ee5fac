//! A small helper to run the `canary` binary and look at what it did.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root, where `policies/` and `examples/` are.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// What a run of `canary` did.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
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

/// Runs `canary ARGS…` in the workspace root.
pub(crate) fn canary(args: &[&str]) -> Run {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_canary"))
        .args(args)
        .current_dir(root())
        .env_remove("GITHUB_STEP_SUMMARY")
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
