//! `examples/local-stack/run.sh`, the README's "real rollout on this machine", run as users
//! run it (with the test build's binaries and shorter steps).

use std::process::Command;

use canary_tests::{binary, workspace_root};

use crate::canary_run::read_json;

#[test]
fn the_local_stack_script_promotes_a_healthy_canary() {
    let bin_dir = binary("canary").parent().unwrap().to_path_buf();
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(workspace_root().join("examples/local-stack/run.sh"))
        .env("CANARY_BIN_DIR", &bin_dir)
        .env("STEP", "4s")
        .env("OUT", out.path())
        .output()
        .expect("run examples/local-stack/run.sh");
    let all = format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{all}");
    let report = read_json(&out.path().join("report.json"));
    assert_eq!(report["verdict"], "pass", "{all}");
    assert!(out.path().join("report.html").exists(), "{all}");
}
