//! Helpers shared by the workspace-level tests: the binaries under test, free ports, child
//! processes that never outlive a test, and the real components (Prometheus, HAProxy, NGINX)
//! started on loopback with their own temporary directories.
//!
//! A component that is not installed is a failure that says how to install it, never a
//! silent skip: `tests/run.sh` installs them.

pub mod demo;
pub mod fake_aws;
pub mod fake_datadog;
pub mod fake_http;
pub mod fake_oauth2;
pub mod fake_tls;
pub mod haproxy;
pub mod leaks;
pub mod nginx;
pub mod policy;
pub mod process;
pub mod prometheus;
pub mod vocabulary;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// `command` without the variables cargo sets for the test that runs it (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, …), as it would run from a user's shell. A cargo started with them
/// sees build scripts that watch them (ring's does) as changed, and rebuilds them and all
/// that depends on them, here and again in the next `cargo test`.
pub fn without_test_env(command: &mut std::process::Command) -> &mut std::process::Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_tests = ["CARGO_PKG_", "CARGO_BIN_", "CARGO_CFG_"]
            .iter()
            .any(|prefix| key.starts_with(prefix))
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&key.as_ref());
        if set_for_tests {
            command.env_remove(key.as_ref());
        }
    }
    command
}

/// The path of one of the workspace's binaries (`canary`, `canary-demo-service`), built
/// fresh once per test process so a test never runs a stale binary.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // The test executable lives in target/<profile>/deps/: the binaries are built in
        // the same profile, so a `--release` run (the scale harness) runs release binaries
        // rather than stale or debug ones.
        let exe = std::env::current_exe().expect("the test executable's path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps")
            .to_path_buf();
        let profile = match dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = without_test_env(&mut std::process::Command::new(cargo))
            .args([
                "build",
                "--quiet",
                "--workspace",
                "--profile",
                profile,
                "--bin",
                "canary",
                "--bin",
                "canary-demo-service",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build for the binaries under test");
        assert!(
            status.success(),
            "cargo build of the binaries under test (profile {profile}) failed"
        );
        dir
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A system program the tests need, or a failure that says how to get it.
pub fn require_program(name: &str, debian_package: &str) -> PathBuf {
    for dir in [
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/bin",
        "/sbin",
    ] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join(name);
            if path.exists() {
                return path;
            }
        }
    }
    panic!(
        "{name} is not installed; this test needs the real thing. Install it with \
         `apt-get install -y {debian_package}` (tests/run.sh does this for you)"
    );
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
