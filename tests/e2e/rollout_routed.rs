//! `canary rollout` with a header step through a real HAProxy (issue 18): the ACL file the
//! documented `use-server` rule reads is filled for the step and emptied after it, only
//! requests carrying the header reach the canary, and an HAProxy whose configuration lacks
//! the ACL is refused before anything moves.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_tests::haproxy::Haproxy;
use canary_tests::policy::TestPolicy;

use crate::canary_run::{canary, read_json};
use crate::rollout::Stack;

/// The rule of docs/policy-reference.md, for the test HAProxy (server `canary`, its ACL file).
const RULE: &str = "  use-server canary if { req.hdr(x-canary) -m str -f {dir}/canary.acl }\n";

fn policy(stack: &Stack, haproxy: &Haproxy) -> std::path::PathBuf {
    TestPolicy::new("e2e")
        .selector(r#"job="demo""#)
        .prometheus(&stack.prometheus.url(), "    timeout: 5s\n")
        .rollout(
            "  steps: [{header: {name: x-canary, value: beta}}, 50, 100]\n  step-duration: 8s\n  max-step-duration: 36s\n  interval: 2s\n  min-requests: 100\n  alpha: 1%\n",
        )
        .gateway(&format!(
            "  haproxy:\n    socket: {}\n    backend: app\n    canary-server: canary\n    stable-server: stable\n    route-acl: {{file: {}, header: x-canary}}",
            haproxy.socket().display(),
            haproxy.acl_file().display()
        ))
        .write(stack.dir.path(), "routed.yaml")
}

fn rollout(policy: &Path, stack: &Stack, report: &Path) -> crate::canary_run::Run {
    canary(
        &[
            "rollout",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            stack.state_dir().to_str().unwrap(),
            "--output",
            &format!("json:{}", report.display()),
        ],
        &[],
    )
}

/// One runtime API command on the socket at `socket`.
fn command_at(socket: &Path, command: &str) -> Option<String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    stream.write_all(format!("{command}\n").as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// The patterns of the ACL, from `show acl FILE` (`0xADDRESS PATTERN` lines).
fn acl_patterns(socket: &Path, file: &Path) -> Option<Vec<String>> {
    let answer = command_at(socket, &format!("show acl {}", file.display()))?;
    Some(
        answer
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, p)| p.to_owned()))
            .collect(),
    )
}

/// Sends requests carrying `X-Canary: beta` through the proxy, about 50 a second, until
/// stopped; counts the answers by the version that served them (`x-version` or body).
struct TaggedLoad {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl TaggedLoad {
    fn start(url: &str) -> TaggedLoad {
        let address = url.trim_start_matches("http://").to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
                    let _ = stream.write_all(
                        b"GET /api/checkout HTTP/1.1\r\nHost: e2e\r\nX-Canary: beta\r\nConnection: close\r\n\r\n",
                    );
                    let mut answer = Vec::new();
                    let _ = stream.read_to_end(&mut answer);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        TaggedLoad { stop, thread }
    }

    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the tagged load does not panic");
    }
}

#[test]
fn a_header_step_through_haproxy_sends_tagged_requests_to_the_canary_then_promotes() {
    let mut stack = Stack::services(&[]);
    let haproxy = Haproxy::start_with_rules(&stack.stable.address, &stack.canary.address, RULE);
    stack.load_through(&haproxy.url());
    let tagged = TaggedLoad::start(&haproxy.url());
    let policy = policy(&stack, &haproxy);

    // What HAProxy's ACL held over time, each distinct state once, in order. The first time
    // it holds the step's value, someone else empties it (as a reload would): drift.
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop) = (seen.clone(), stop.clone());
        let (socket, file) = (haproxy.socket(), haproxy.acl_file());
        std::thread::spawn(move || {
            let mut cleared = false;
            while !stop.load(Ordering::SeqCst) {
                if let Some(patterns) = acl_patterns(&socket, &file) {
                    let mut seen = seen.lock().unwrap();
                    if seen.last() != Some(&patterns) {
                        seen.push(patterns.clone());
                    }
                    if !cleared && patterns == ["beta"] {
                        std::thread::sleep(Duration::from_secs(1));
                        command_at(&socket, &format!("clear acl {}", file.display()));
                        cleared = true;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let report_path = stack.report_path("routed.json");
    let run = rollout(&policy, &stack, &report_path);
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    tagged.finish();

    assert_eq!(run.code, 0, "promoted:\n{}", run.all());
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "pass", "{report}");
    let first = &report["steps"][0];
    assert_eq!(
        first["route"],
        serde_json::json!({"header": {"name": "x-canary", "value": "beta"}}),
        "{report}"
    );
    let seen = seen.lock().unwrap().clone();
    let beta = vec!["beta".to_owned()];
    let held: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == beta).collect();
    assert!(
        held.len() >= 2 && seen[held[0]..held[1]].contains(&Vec::new()),
        "HAProxy's ACL held the step's value, was emptied, and canary set it again: {seen:?}"
    );
    let decisions: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["decision"].as_str().unwrap())
        .collect();
    assert!(
        decisions.contains(&"drift"),
        "the emptied ACL was drift: {decisions:?}"
    );
    let judged = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["decision"] == "advance")
        .expect("the header step advanced after the drift");
    assert_eq!(judged["route"], first["route"], "{report}");
    assert!(
        judged["canary_requests"].as_u64().unwrap() >= 100,
        "the step judged the tagged requests: {judged}"
    );
    assert_eq!(
        acl_patterns(&haproxy.socket(), &haproxy.acl_file()),
        Some(Vec::new()),
        "the ACL is empty after the promotion"
    );
    assert_eq!(haproxy.canary_percent(), Some(100));
}

#[test]
fn an_haproxy_without_the_route_acl_is_refused_before_anything_moves() {
    let stack = Stack::services(&[]);
    // No rule reads the ACL file: HAProxy never loaded it.
    let haproxy = Haproxy::start(&stack.stable.address, &stack.canary.address);
    let policy = policy(&stack, &haproxy);
    let report_path = stack.report_path("refused.json");
    let run = rollout(&policy, &stack, &report_path);
    assert_eq!(run.code, 2, "bad input, exit 2:\n{}", run.all());
    assert!(
        run.stderr.contains("HAProxy has no ACL loaded from"),
        "{}",
        run.all()
    );
    assert_eq!(haproxy.canary_percent(), Some(0), "no weight moved");
    assert_eq!(haproxy.weights(), Some((0, 100)));
}
