//! A gateway that fails mid-rollout: HAProxy's socket gone, an NGINX reload that fails, a
//! command adapter exiting non-zero. Each gives a clear error and exit code 4, and leaves a
//! state that a rerun resumes from. Prometheus gone mid-rollout, with
//! `on-metrics-unavailable: rollback`: exit 4 with the canary back at 0. And `canary abort`
//! from another shell reaches the process driving a rollout.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use std::sync::mpsc::Receiver;

use canary_tests::haproxy::Haproxy;
use canary_tests::nginx::Nginx;
use canary_tests::process::ChildGuard;
use canary_tests::wait_until;

use crate::canary_run::{Run, all_lines, canary, spawn_canary};
use crate::rollout::{Stack, haproxy_gateway};

const TIMING: &str =
    "  step-duration: 4s\n  max-step-duration: 12s\n  interval: 1s\n  min-requests: 20";

/// `canary rollout --policy POLICY --state-dir (the stack's)`.
fn rollout_args<'a>(policy: &'a Path, state: &'a Path) -> [&'a str; 5] {
    [
        "rollout",
        "--policy",
        policy.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]
}

/// Runs the rollout to its end.
fn rollout(policy: &Path, stack: &Stack) -> Run {
    canary(&rollout_args(policy, &stack.state_dir()), &[])
}

/// Starts the rollout; its stderr lines arrive on the receiver.
fn spawn_rollout(policy: &Path, stack: &Stack) -> (ChildGuard, Receiver<String>) {
    spawn_canary(&rollout_args(policy, &stack.state_dir()), &[])
}

fn phase(stack: &Stack) -> String {
    let text = std::fs::read_to_string(stack.state_dir().join("e2e.json")).expect("a state file");
    let state: serde_json::Value = serde_json::from_str(&text).expect("the state parses");
    state["phase"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn executable(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn haproxy_gone_mid_rollout_exits_4_and_a_rerun_resumes() {
    let mut stack = Stack::services(&[]);
    let mut haproxy = Haproxy::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&haproxy.url());
    let gateway = haproxy_gateway(&haproxy);
    let policy = stack.policy(&gateway, TIMING);
    let state = stack.state_dir();
    let (mut process, stderr) = spawn_rollout(&policy, &stack);
    // Let the first step gather its evidence, then take HAProxy away: the step's end wants to
    // set the next weight, and cannot.
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(state.join("e2e.json"))
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|s| s["last_assessment"]["canary_requests_in_step"].as_u64())
                .is_some_and(|n| n >= 40)
        }),
        "the first step saw canary traffic"
    );
    haproxy.stop();
    let output = process.wait_exit(Duration::from_secs(60));
    let stderr = all_lines(&stderr);
    assert_eq!(
        output.code(),
        Some(4),
        "exit 4 when HAProxy is gone:\n{stderr}"
    );
    assert!(
        stderr.contains(&haproxy.socket().display().to_string()),
        "the error names the socket:\n{stderr}"
    );
    assert_eq!(phase(&stack), "failed");
    let status = canary(
        &[
            "status",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    assert!(status.stdout.contains("phase failed"), "{}", status.all());
    assert!(
        status
            .stdout
            .contains(&haproxy.socket().display().to_string()),
        "the error names the socket:\n{}",
        status.all()
    );
    // HAProxy comes back (with its configured weights, as after any restart) and a rerun
    // resumes where the rollout stood, through to promotion.
    haproxy.restart();
    let run = rollout(&policy, &stack);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("resuming the rollout"), "{}", run.all());
    assert_eq!(haproxy.canary_percent(), Some(100));
}

#[test]
fn prometheus_gone_mid_rollout_rolls_back_and_exits_4_when_the_policy_says_so() {
    let mut stack = Stack::services(&[]);
    let haproxy = Haproxy::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&haproxy.url());
    let gateway = haproxy_gateway(&haproxy);
    let timing = "  step-duration: 60s\n  interval: 1s\n  min-requests: 20\n  \
                  max-failed-ticks: 2\n  on-metrics-unavailable: rollback";
    let policy = stack.policy(&gateway, timing);
    let (mut process, stderr) = spawn_rollout(&policy, &stack);
    assert!(
        wait_until(Duration::from_secs(30), || haproxy.canary_percent()
            == Some(10)),
        "the first step's weight reached HAProxy"
    );
    let prometheus_url = stack.prometheus.url();
    stack.prometheus.stop();
    let status = process.wait_exit(Duration::from_secs(60));
    let stderr = all_lines(&stderr);
    assert_eq!(status.code(), Some(4), "exit 4 without metrics:\n{stderr}");
    assert_eq!(
        haproxy.canary_percent(),
        Some(0),
        "rolled back before exiting:\n{stderr}"
    );
    assert_eq!(phase(&stack), "rolled-back");
    assert!(
        stderr.contains("could not be read 2 times in a row")
            && stderr.contains(prometheus_url.trim_end_matches('/')),
        "the reason names the source:\n{stderr}"
    );
}

#[test]
fn a_failing_nginx_reload_exits_4_and_a_rerun_resumes() {
    let mut stack = Stack::services(&[]);
    let nginx = Nginx::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&nginx.url());
    let flag = stack.dir.path().join("reload-refused");
    std::fs::write(&flag, "").unwrap();
    let script = stack.dir.path().join("reload.sh");
    let reload: Vec<String> = nginx
        .reload_command()
        .iter()
        .map(|a| format!("'{a}'"))
        .collect();
    executable(
        &script,
        &format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'reload refused: maintenance window' >&2; exit 1; fi\nexec {}\n",
            flag.display(),
            reload.join(" ")
        ),
    );
    let gateway = format!(
        "  nginx:\n    upstream-file: {}\n    upstream: app\n    canary: {}\n    stable: {}\n    reload: [\"{}\"]",
        nginx.upstream_file().display(),
        stack.canary.address,
        stack.stable.address,
        script.display()
    );
    let policy = stack.policy(&gateway, TIMING);
    let before = std::fs::read_to_string(nginx.upstream_file()).unwrap();
    let run = rollout(&policy, &stack);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stderr.contains("reload refused: maintenance window"),
        "NGINX's own words: {}",
        run.all()
    );
    assert!(
        run.stderr.contains("reload.sh"),
        "the command is named: {}",
        run.all()
    );
    assert_eq!(
        std::fs::read_to_string(nginx.upstream_file()).unwrap(),
        before,
        "the upstream file was restored"
    );
    assert_eq!(phase(&stack), "failed");
    std::fs::remove_file(&flag).unwrap();
    let run = rollout(&policy, &stack);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("resuming the rollout"), "{}", run.all());
}

/// Issue 12 (NGINX): reloads that stop taking effect mid-rollout (the reload command exits 0
/// but NGINX keeps its configuration, as with a hung master or a wrapper that reloads
/// nothing). With the weight probe the rollout never believes a weight NGINX does not serve:
/// before, it logged "canary at 25 %", judged evidence from 10 % and promoted with exit 0
/// while NGINX still sent the canary 10 %.
#[test]
fn nginx_reloads_that_stop_taking_effect_never_count_as_a_weight() {
    let mut stack = Stack::services(&[]);
    let nginx = Nginx::start_with_probe(&stack.stable.address, &stack.canary.address);
    stack.load_through(&nginx.url());
    let count = stack.dir.path().join("reloads");
    let script = stack.dir.path().join("reload.sh");
    let reload: Vec<String> = nginx
        .reload_command()
        .iter()
        .map(|a| format!("'{a}'"))
        .collect();
    // The first reload (to 10 %) is real; every later one exits 0 and does nothing.
    executable(
        &script,
        &format!(
            "#!/bin/sh
n=$(cat '{c}' 2>/dev/null || echo 0)
echo $((n + 1)) > '{c}'
\
             if [ \"$n\" -ge 1 ]; then exit 0; fi
exec {}
",
            reload.join(" "),
            c = count.display(),
        ),
    );
    let probe = nginx.probe_address().unwrap();
    let gateway = format!(
        "  nginx:\n    upstream-file: {}\n    upstream: app\n    canary: {}\n    stable: {}\n    \
         reload: [\"{}\"]\n    timeout: 2s\n    weight-probe: {probe}",
        nginx.upstream_file().display(),
        stack.canary.address,
        stack.stable.address,
        script.display()
    );
    let policy = stack.policy(&gateway, TIMING);
    let state_dir = stack.state_dir();
    let mut args = rollout_args(&policy, &state_dir).to_vec();
    args.extend(["--rollback-retry-for", "3s"]);
    let run = canary(&args, &[]);
    assert_ne!(
        run.code,
        0,
        "promoted on weights NGINX never served:\n{}",
        run.all()
    );
    assert!(
        run.stderr
            .contains("still serves an earlier configuration (canary 10 %)"),
        "the reason says what NGINX serves:\n{}",
        run.all()
    );
    assert!(
        !run.stderr.contains("canary at 25"),
        "25 % was never served:\n{}",
        run.all()
    );
    assert_ne!(phase(&stack), "promoted");
}

#[test]
fn a_failing_command_adapter_exits_4_a_rerun_resumes_and_abort_reaches_it() {
    let stack = Stack::services(&[]);
    let dir = stack.dir.path();
    let flag = dir.join("router-down");
    let weight_file = dir.join("weight");
    std::fs::write(&flag, "").unwrap();
    // The router serves the stable version before the rollout (the pre-flight reads it).
    std::fs::write(&weight_file, "0\n").unwrap();
    let set = dir.join("set-weight.sh");
    executable(
        &set,
        &format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'router API answered 503' >&2; exit 3; fi\necho \"$1\" > '{}'\n",
            flag.display(),
            weight_file.display()
        ),
    );
    let gateway = format!(
        "  command:\n    set: [\"{}\", \"{{weight}}\"]\n    get: [cat, \"{}\"]\n    timeout: 5s",
        set.display(),
        weight_file.display()
    );
    // Long steps: the rollout must still be running when it is aborted.
    let policy = stack.policy(
        &gateway,
        "  step-duration: 60s\n  interval: 1s\n  min-requests: 20",
    );
    let run = rollout(&policy, &stack);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stderr.contains("router API answered 503") && run.stderr.contains("code 3"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("set-weight.sh"), "{}", run.all());
    std::fs::remove_file(&flag).unwrap();
    let state = stack.state_dir();
    let (mut process, _stderr) = spawn_rollout(&policy, &stack);
    assert!(
        wait_until(Duration::from_secs(30), || std::fs::read_to_string(
            &weight_file
        )
        .is_ok_and(|w| w.trim() == "10")),
        "the rerun resumed and set the first step's weight"
    );
    let abort = canary(
        &[
            "abort",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--reason",
            "test says stop",
        ],
        &[],
    );
    // The request goes to the process driving the rollout; abort waits for it to roll back
    // and ends as the rollout did.
    assert_eq!(abort.code, 1, "{}", abort.all());
    assert!(
        abort
            .stdout
            .contains("rolled back: aborted: test says stop"),
        "{}",
        abort.all()
    );
    assert!(
        abort.stdout.contains("asked the process driving"),
        "{}",
        abort.all()
    );
    let status = process.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "an aborted rollout exits 1");
    assert_eq!(
        std::fs::read_to_string(&weight_file).unwrap().trim(),
        "0",
        "rolled back to 0"
    );
    assert_eq!(phase(&stack), "rolled-back");
}

fn interrupted_rollout(
    on_interrupt: &str,
    signal: &str,
) -> (Stack, Haproxy, std::path::PathBuf, Option<i32>) {
    let mut stack = Stack::services(&[]);
    let haproxy = Haproxy::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&haproxy.url());
    let gateway = haproxy_gateway(&haproxy);
    let timing = format!(
        "  step-duration: 30s\n  interval: 1s\n  min-requests: 20\n  on-interrupt: {on_interrupt}"
    );
    let policy = stack.policy(&gateway, &timing);
    let (mut process, _stderr) = spawn_rollout(&policy, &stack);
    assert!(
        wait_until(Duration::from_secs(30), || haproxy.canary_percent()
            == Some(10)),
        "the first step's weight reached HAProxy"
    );
    // Mid-step: the driver has judged the step once and is waiting for the next tick.
    let state = stack.state_dir().join("e2e.json");
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&state)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|s| s["last_assessment"].is_object())
        }),
        "the first step was judged once"
    );
    process.signal(signal);
    let code = process.wait_exit(Duration::from_secs(30)).code();
    (stack, haproxy, policy, code)
}

#[test]
fn sigterm_leaves_the_weight_saves_the_state_and_exits_130() {
    let (stack, haproxy, policy, code) = interrupted_rollout("leave", "TERM");
    assert_eq!(code, Some(130));
    assert_eq!(haproxy.canary_percent(), Some(10), "left where it stood");
    assert_eq!(phase(&stack), "step", "the state says where it stood");
    // The rollout resumes from there; abort it to end quickly.
    let state = stack.state_dir();
    let status = canary(
        &[
            "status",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        status.stdout.contains("phase step, canary at 10 %"),
        "{}",
        status.all()
    );
    let abort = canary(
        &[
            "abort",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        abort.code,
        1,
        "abort drives the rollback itself when no process does:\n{}",
        abort.all()
    );
    assert_eq!(haproxy.canary_percent(), Some(0));
}

#[test]
fn sigint_rolls_back_when_the_policy_says_so() {
    let (stack, haproxy, _policy, code) = interrupted_rollout("rollback", "INT");
    assert_eq!(code, Some(130));
    assert_eq!(
        haproxy.canary_percent(),
        Some(0),
        "rolled back before exiting"
    );
    assert_eq!(phase(&stack), "rolled-back");
}
