//! A rollout's outcome is reported as what it was, against a real HAProxy: an interrupt is
//! `interrupted` with exit 130 in every report and summary; a promotion by hand says so,
//! distinct in the JSON; a hook that cannot be started is a configuration error (exit 2
//! before any weight moved, otherwise a rollback with exit 4), never "the canary failed".

use std::path::Path;
use std::time::Duration;

use crate::canary_run::{read_json, spawn_canary};
use crate::rollout::Stack;
use crate::rollout_safety::{args, at_percent, haproxy_stack, run, spawn};

/// `--output FORMAT:PATH` for every format, into the stack's directory.
fn every_output(stack: &Stack) -> Vec<String> {
    let mut outputs = Vec::new();
    for (format, file) in [
        ("json", "report.json"),
        ("junit", "junit.xml"),
        ("markdown", "report.md"),
        ("html", "report.html"),
    ] {
        outputs.push("--output".to_owned());
        outputs.push(format!("{format}:{}", stack.report_path(file).display()));
    }
    outputs
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn an_interrupted_rollout_is_reported_interrupted_with_exit_130_in_every_report() {
    let (stack, haproxy, policy) = haproxy_stack("");
    let summary = stack.report_path("step-summary.md");
    let mut all = args("rollout", &policy, &stack, &["--id", "r"]);
    all.extend(every_output(&stack));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let (mut process, _stderr) =
        spawn_canary(&refs, &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())]);
    assert!(at_percent(&haproxy, 10), "the first step started");
    process.signal("TERM");
    assert_eq!(process.wait_exit(Duration::from_secs(30)).code(), Some(130));

    let report = read_json(&stack.report_path("report.json"));
    assert_eq!(report["verdict"], "interrupted", "{report}");
    assert_eq!(report["exit_code"], 130, "{report}");
    let checks = report["checks"].as_array().expect("checks").len();
    assert_eq!(checks, 4, "every criterion is listed: {report}");

    let junit = read(&stack.report_path("junit.xml"));
    assert!(
        junit.contains("<property name=\"verdict\" value=\"interrupted\"/>")
            && junit.contains("<property name=\"exit_code\" value=\"130\"/>"),
        "{junit}"
    );
    assert!(
        junit.contains(&format!("<testsuites name=\"canary\" tests=\"{checks}\"")),
        "one test case per criterion, not tests=\"0\": {junit}"
    );
    for markdown in [read(&stack.report_path("report.md")), read(&summary)] {
        assert!(
            markdown.contains("**interrupted** (exit 130)"),
            "{markdown}"
        );
    }
    let html = read(&stack.report_path("report.html"));
    assert!(
        html.contains("id=\"verdict\">INTERRUPTED<"),
        "the HTML badge"
    );

    // `canary status` into a reader that has gone (`| head -1`, `| true`): exit 0, no panic.
    let status = args("status", &policy, &stack, &[]);
    let line = format!(
        "set -o pipefail; {} {} | true",
        canary_tests::binary("canary").display(),
        status.join(" ")
    );
    let piped = std::process::Command::new("bash")
        .args(["-c", &line])
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{:?}: {}",
        piped.status,
        String::from_utf8_lossy(&piped.stderr)
    );
    // A forged step index is shown as it is, never an overflow panic.
    let state_path = crate::rollout_safety::state_file(&stack);
    let mut state = crate::rollout_safety::saved(&stack);
    state["phase"]["index"] = serde_json::json!(u64::MAX);
    state["steps"][0]["index"] = serde_json::json!(u64::MAX);
    std::fs::write(&state_path, state.to_string()).unwrap();
    let forged = run("status", &policy, &stack, &[]);
    assert_eq!(forged.code, 0, "{}", forged.all());
    assert!(forged.stdout.contains("out of range"), "{}", forged.all());
}

#[test]
fn a_promotion_by_hand_is_reported_as_one_distinct_in_the_json() {
    let (stack, haproxy, policy) = haproxy_stack("");
    let report_path = stack.report_path("report.json");
    let output = format!("json:{}", report_path.display());
    let (mut process, _stderr) = spawn(
        "rollout",
        &policy,
        &stack,
        &["--id", "r", "--output", &output],
    );
    assert!(at_percent(&haproxy, 10), "the first step started");
    let promote = run("promote", &policy, &stack, &["--yes"]);
    assert_eq!(promote.code, 0, "{}", promote.all());
    assert_eq!(process.wait_exit(Duration::from_secs(60)).code(), Some(0));
    assert_eq!(haproxy.canary_percent(), Some(100));

    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "pass");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("promoted by hand at step 1/3"),
        "{reason}"
    );
    assert!(!reason.contains("every step passed"), "{reason}");
    let manual = &report["promoted_by_hand"];
    assert_eq!(manual["step"], 0, "{report}");
    assert!(manual["at"].is_string(), "{report}");
    assert!(manual["undecided"].is_array(), "{report}");
}

/// A policy whose hook of `event` runs a program that does not exist.
fn missing_hook(event: &str) -> String {
    format!(
        "hooks:\n  - name: smoke\n    on: [{event}]\n    command: [./scripts/no-such-smoke-test.sh]\n    timeout: 10s"
    )
}

#[test]
fn a_before_hook_that_cannot_start_is_exit_2_with_no_weight_moved() {
    let (stack, haproxy, policy) = haproxy_stack(&missing_hook("before"));
    let report_path = stack.report_path("report.json");
    let output = format!("json:{}", report_path.display());
    let rollout = run(
        "rollout",
        &policy,
        &stack,
        &["--id", "r", "--output", &output],
    );
    assert_eq!(rollout.code, 2, "{}", rollout.all());
    assert!(
        rollout.all().contains("cannot be started"),
        "{}",
        rollout.all()
    );
    assert!(
        !rollout.all().contains("canary failed"),
        "{}",
        rollout.all()
    );
    assert_eq!(haproxy.canary_percent(), Some(0), "no weight moved");
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "error", "{report}");
    assert_eq!(report["exit_code"], 2, "{report}");
    assert!(
        report["weights"].as_array().is_none_or(Vec::is_empty),
        "{report}"
    );
}

#[test]
fn a_step_hook_that_cannot_start_rolls_back_with_exit_4_not_as_a_failed_canary() {
    let (stack, haproxy, policy) = haproxy_stack(&missing_hook("step"));
    let report_path = stack.report_path("report.json");
    let output = format!("json:{}", report_path.display());
    let rollout = run(
        "rollout",
        &policy,
        &stack,
        &["--id", "r", "--output", &output],
    );
    assert_eq!(rollout.code, 4, "{}", rollout.all());
    assert_eq!(haproxy.canary_percent(), Some(0), "rolled back");
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "error", "{report}");
    assert_eq!(report["exit_code"], 4, "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot be started") && reason.contains("configuration error"),
        "{reason}"
    );
}

/// Whether any process of the group led by `pid` is alive (zombies, which only wait to be
/// reaped, do not count).
fn alive(pid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces, so split after its `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pid.to_string()
    })
}

/// A step hook that writes its pid and sleeps for a minute, ignoring SIGTERM when `stubborn`.
fn sleeping_hook(stack: &Stack, stubborn: bool) -> (String, std::path::PathBuf) {
    let pid_file = stack.report_path("hook.pid");
    let script = stack.report_path("long-hook.sh");
    let trap = if stubborn { "trap '' TERM\n" } else { "" };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{trap}echo $$ > {}\nsleep 60\n",
            pid_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (
        format!(
            "hooks:\n  - name: long\n    on: [step]\n    command: [{}]\n    timeout: 120s",
            script.display()
        ),
        pid_file,
    )
}

/// SIGTERM while a step hook runs: the hook's group is stopped and `on-interrupt: rollback`
/// sets weight 0 at once, not when the hook would have ended. Returns the seconds from the
/// signal to weight 0 at HAProxy, and from the signal to the hook's end.
fn interrupt_during_a_hook(stubborn: bool) -> (f64, f64) {
    let mut stack = Stack::services(&[]);
    let haproxy =
        canary_tests::haproxy::Haproxy::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&haproxy.url());
    let (hooks, pid_file) = sleeping_hook(&stack, stubborn);
    let timing =
        crate::rollout_safety::SLOW.replace("on-interrupt: leave", "on-interrupt: rollback");
    let policy = stack.policy_with(&crate::rollout::haproxy_gateway(&haproxy), &timing, &hooks);
    let (mut process, _stderr) = spawn("rollout", &policy, &stack, &["--id", "r"]);
    assert!(at_percent(&haproxy, 10), "the first step started");
    assert!(
        canary_tests::wait_until(Duration::from_secs(20), || pid_file.exists()
            && std::fs::read_to_string(&pid_file)
                .is_ok_and(|t| t.trim().parse::<u32>().is_ok())),
        "the hook is running"
    );
    let hook_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let signalled = std::time::Instant::now();
    process.signal("TERM");
    assert!(
        canary_tests::wait_until(Duration::from_secs(20), || haproxy.canary_percent()
            == Some(0)),
        "on-interrupt: rollback set weight 0"
    );
    let to_rollback = signalled.elapsed().as_secs_f64();
    assert!(
        canary_tests::wait_until(Duration::from_secs(20), || !alive(hook_pid)),
        "the hook was stopped"
    );
    let to_hook_end = signalled.elapsed().as_secs_f64();
    assert_eq!(process.wait_exit(Duration::from_secs(30)).code(), Some(130));
    eprintln!(
        "interrupt during a {} hook: weight 0 after {to_rollback:.3} s, hook gone after {to_hook_end:.3} s",
        if stubborn {
            "SIGTERM-ignoring"
        } else {
            "plain"
        }
    );
    (to_rollback, to_hook_end)
}

#[test]
fn a_signal_during_a_hook_stops_it_and_rolls_back_at_once() {
    let (to_rollback, _) = interrupt_during_a_hook(false);
    // A correctness bound, not a benchmark (measured numbers: docs/reliability.md): the
    // hook would have slept 60 s.
    assert!(to_rollback < 10.0, "weight 0 after {to_rollback} s");
}

#[test]
fn a_hook_that_ignores_sigterm_is_killed_after_the_grace() {
    let (to_rollback, to_hook_end) = interrupt_during_a_hook(true);
    assert!(to_rollback < 10.0, "weight 0 after {to_rollback} s");
    assert!(
        to_hook_end < 15.0,
        "the hook outlived its SIGKILL: {to_hook_end} s"
    );
}

#[test]
fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let (stack, haproxy, policy) = haproxy_stack("");
    let dry = run("rollout", &policy, &stack, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.all());
    for wanted in [
        "10 % → 25 % → 50 % → 100 %",
        "errors/slo",
        "latency/baseline",
        "http_requests_total",
        "pre-flight passed",
    ] {
        assert!(dry.stdout.contains(wanted), "{wanted}: {}", dry.all());
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(haproxy.canary_percent(), Some(0), "no weight moved");
    assert!(
        !stack.state_dir().join("e2e.json").exists(),
        "no state written"
    );
}

#[test]
fn a_preflight_that_cannot_read_the_metrics_is_exit_4_with_nothing_moved() {
    let (stack, haproxy, policy) = haproxy_stack("");
    // A port nobody listens on: the metrics source cannot be read at all.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}");
    let report_path = stack.report_path("report.json");
    let output = format!("json:{}", report_path.display());
    let dry = run(
        "rollout",
        &policy,
        &stack,
        &["--dry-run", "--prometheus", &url],
    );
    assert_eq!(dry.code, 4, "{}", dry.all());
    assert!(dry.stderr.contains("pre-flight failed"), "{}", dry.all());
    let rollout = run(
        "rollout",
        &policy,
        &stack,
        &["--id", "r", "--prometheus", &url, "--output", &output],
    );
    assert_eq!(rollout.code, 4, "{}", rollout.all());
    assert_eq!(haproxy.canary_percent(), Some(0), "nothing moved");
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "error", "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("pre-flight") && reason.contains("nothing was changed"),
        "{reason}"
    );
}

/// A command gateway whose `set` fails while `down` exists; the weight lives in `weight`.
fn flaky_command_gateway(stack: &Stack) -> (String, std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = stack.dir.path();
    let down = dir.join("router-down");
    let weight = dir.join("weight");
    std::fs::write(&weight, "0\n").unwrap();
    let set = dir.join("set-weight.sh");
    std::fs::write(
        &set,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'router API answered 503' >&2; exit 3; fi\necho \"$1\" > '{}'\n",
            down.display(),
            weight.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&set, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gateway = format!(
        "  command:\n    set: [\"{}\", \"{{weight}}\"]\n    get: [cat, \"{}\"]\n    timeout: 5s",
        set.display(),
        weight.display()
    );
    (gateway, down, weight)
}

fn weight_is(path: &Path, wanted: &str) -> bool {
    canary_tests::wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(path).is_ok_and(|w| w.trim() == wanted)
    })
}

#[test]
fn a_rollback_keeps_setting_weight_0_through_a_gateway_outage_and_reports_the_exposure() {
    let stack = Stack::services(&[]);
    let (gateway, down, weight) = flaky_command_gateway(&stack);
    let policy = stack.policy(&gateway, crate::rollout_safety::SLOW);
    let report_path = stack.report_path("report.json");
    let output = format!("json:{}", report_path.display());
    let (mut process, stderr) = spawn(
        "rollout",
        &policy,
        &stack,
        &["--id", "r", "--output", &output],
    );
    assert!(weight_is(&weight, "10"), "the first step started");
    std::fs::write(&down, "").unwrap();
    let (abort, _abort_stderr) = spawn("abort", &policy, &stack, &[]);
    // The gateway refuses for a few seconds; the rollback keeps trying, then gets through.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(std::fs::read_to_string(&weight).unwrap().trim(), "10");
    // Each failed attempt is said while the retrying goes on (it used to be said only once
    // it had ended), with how long the canary has been exposed so far.
    let live: Vec<String> = stderr.try_iter().collect();
    let warned = live
        .iter()
        .filter(|l| l.contains("rolling back: setting weight 0 failed (attempt "))
        .collect::<Vec<_>>();
    assert!(
        warned.len() >= 2,
        "no failed attempt was said while retrying: {live:#?}"
    );
    assert!(
        warned
            .iter()
            .all(|l| l.contains("the canary has served traffic for") && l.contains("503")),
        "{warned:#?}"
    );
    std::fs::remove_file(&down).unwrap();
    assert!(
        weight_is(&weight, "0"),
        "rolled back once the gateway answered"
    );
    assert_eq!(process.wait_exit(Duration::from_secs(30)).code(), Some(1));
    drop(abort);
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "fail", "{report}");
    let exposed = report["canary_exposed_seconds"]
        .as_f64()
        .expect("the exposure");
    assert!(exposed >= 4.0, "exposed {exposed} s: {report}");
}

#[test]
fn a_rollback_gives_up_after_its_bound_with_exit_4() {
    let stack = Stack::services(&[]);
    let (gateway, down, weight) = flaky_command_gateway(&stack);
    let policy = stack.policy(&gateway, crate::rollout_safety::SLOW);
    let (mut process, stderr) = spawn(
        "rollout",
        &policy,
        &stack,
        &["--id", "r", "--rollback-retry-for", "3s"],
    );
    assert!(weight_is(&weight, "10"), "the first step started");
    std::fs::write(&down, "").unwrap();
    let abort = run("abort", &policy, &stack, &[]);
    assert_eq!(abort.code, 4, "{}", abort.all());
    assert_eq!(process.wait_exit(Duration::from_secs(60)).code(), Some(4));
    let lines: Vec<String> = stderr.try_iter().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("setting weight 0 failed (attempt 2,")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("--rollback-retry-for")),
        "{lines:?}"
    );
}

/// Whether HAProxy routes `percent` % to the canary within 30 s, read through its socket
/// wherever it is (canary may not reach it).
fn serves_percent(haproxy: &canary_tests::haproxy::Haproxy, percent: u32) -> bool {
    canary_tests::wait_until(Duration::from_secs(30), || {
        haproxy.served_canary_percent() == Some(percent)
    })
}

/// The rollback-retry of issue 12 against a real HAProxy: its runtime socket refuses
/// canary (taken from its path) just as `canary abort` asks for a rollback. The rollback
/// keeps trying, saying each failed attempt while it goes on, HAProxy meanwhile still
/// routing 10 % to the canary; once the socket is back, canary itself sets 0 % (HAProxy
/// was not restarted, so nothing else would), exit 1, and the report says how long the bad
/// canary was exposed.
#[test]
fn a_rollback_through_a_refused_haproxy_socket_keeps_trying_until_haproxy_answers() {
    let (stack, haproxy, policy) = haproxy_stack("");
    let report_path = stack.report_path("report.json");
    let output = format!("json:{}", report_path.display());
    let (mut process, stderr) = spawn(
        "rollout",
        &policy,
        &stack,
        &["--id", "r", "--output", &output],
    );
    assert!(at_percent(&haproxy, 10), "the first step started");
    haproxy.hide_socket();
    let (mut abort, _abort_stderr) = spawn("abort", &policy, &stack, &[]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        haproxy.served_canary_percent(),
        Some(10),
        "HAProxy still routes the canary its step's share"
    );
    let live: Vec<String> = stderr.try_iter().collect();
    let socket = haproxy.socket().display().to_string();
    let warned: Vec<&String> = live
        .iter()
        .filter(|l| l.contains("rolling back: setting weight 0 failed (attempt "))
        .collect();
    assert!(
        warned.len() >= 2,
        "the failed attempts are said while the retrying goes on: {live:#?}"
    );
    assert!(
        warned
            .iter()
            .all(|l| l.contains("the canary has served traffic for") && l.contains(&socket)),
        "each names the socket and the exposure so far: {warned:#?}"
    );
    haproxy.show_socket();
    assert!(
        serves_percent(&haproxy, 0),
        "canary set weight 0 once HAProxy answered"
    );
    assert_eq!(process.wait_exit(Duration::from_secs(30)).code(), Some(1));
    assert_eq!(
        abort.wait_exit(Duration::from_secs(30)).code(),
        Some(1),
        "`canary abort` exits as the rollout it asked for did"
    );
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "fail", "{report}");
    let exposed = report["canary_exposed_seconds"]
        .as_f64()
        .expect("the exposure");
    assert!(exposed >= 4.0, "exposed {exposed} s: {report}");
}

/// The same, with an HAProxy socket that never comes back within `--rollback-retry-for`:
/// exit 4 (docs/exit-codes.md), the report's verdict `error` naming the bound, the state
/// `failed` during the rollback, and HAProxy still at the step's weight — said, not hidden.
/// Once the socket is back, a rerun of the same id finishes the rollback: 0 %, exit 1.
#[test]
fn a_rollback_whose_haproxy_never_answers_exits_4_and_a_rerun_finishes_it() {
    let (stack, haproxy, policy) = haproxy_stack("");
    let report_path = stack.report_path("report.json");
    let output = format!("json:{}", report_path.display());
    let (mut process, stderr) = spawn(
        "rollout",
        &policy,
        &stack,
        &[
            "--id",
            "r",
            "--output",
            &output,
            "--rollback-retry-for",
            "3s",
        ],
    );
    assert!(at_percent(&haproxy, 10), "the first step started");
    haproxy.hide_socket();
    let (mut abort, _abort_stderr) = spawn("abort", &policy, &stack, &[]);
    assert_eq!(process.wait_exit(Duration::from_secs(60)).code(), Some(4));
    assert_eq!(abort.wait_exit(Duration::from_secs(30)).code(), Some(4));
    let lines: Vec<String> = stderr.try_iter().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("setting weight 0 failed (attempt 2,")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("--rollback-retry-for")),
        "the error names the bound: {lines:#?}"
    );
    assert_eq!(
        haproxy.served_canary_percent(),
        Some(10),
        "the canary still gets its step's share"
    );
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "error", "{report}");
    assert_eq!(report["exit_code"], 4, "{report}");
    let state = crate::rollout_safety::saved(&stack);
    assert_eq!(state["phase"]["phase"], "failed", "{state}");
    assert_eq!(state["phase"]["during"]["phase"], "rolling-back", "{state}");

    haproxy.show_socket();
    let rerun = run("rollout", &policy, &stack, &["--id", "r"]);
    assert_eq!(rerun.code, 1, "{}", rerun.all());
    assert_eq!(haproxy.canary_percent(), Some(0), "{}", rerun.all());
}

/// Issue 15: one vocabulary — `25 %` for a share, `step 2/3` for a step — in every output of
/// one rollout: the plain progress lines, the summary, `canary status`, the JSON, JUnit,
/// Markdown (file and CI step summary) and HTML reports. (Slack's words: unit test
/// `hooks::notify::tests`.)
#[test]
fn every_output_says_shares_and_steps_the_same_way() {
    use canary_tests::vocabulary::assert_one_vocabulary;

    let (stack, haproxy, policy) = haproxy_stack("");
    let summary = stack.report_path("step-summary.md");
    let mut all = args("rollout", &policy, &stack, &["--id", "r"]);
    all.extend(every_output(&stack));
    let summary_env = summary.display().to_string();
    let driver = std::thread::spawn(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        crate::canary_run::canary(&refs, &[("GITHUB_STEP_SUMMARY", &summary_env)])
    });
    assert!(at_percent(&haproxy, 10), "the first step started");
    let status = run("status", &policy, &stack, &[]);
    assert!(
        status.stdout.contains("step 1/3 at 10 %"),
        "{}",
        status.all()
    );
    assert_one_vocabulary("canary status", &status.stdout);
    let abort = run("abort", &policy, &stack, &["--reason", "vocabulary"]);
    assert_eq!(abort.code, 1, "{}", abort.all());
    assert_one_vocabulary("canary abort", &abort.stdout);
    let rollout = driver.join().expect("the rollout's thread");
    assert_eq!(rollout.code, 1, "{}", rollout.all());
    assert!(
        rollout.stderr.contains("step 1/3: canary at 10 %"),
        "{}",
        rollout.all()
    );
    assert_one_vocabulary("the progress lines", &rollout.stderr);
    assert_one_vocabulary("the summary", &rollout.stdout);
    let status = run("status", &policy, &stack, &[]);
    assert_one_vocabulary("canary status after the end", &status.stdout);
    for file in ["report.json", "junit.xml", "report.md", "report.html"] {
        assert_one_vocabulary(file, &read(&stack.report_path(file)));
    }
    assert_one_vocabulary("the CI step summary", &read(&summary));
}
