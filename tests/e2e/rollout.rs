//! `canary rollout` end to end with real processes: a stable and a canary demo service
//! behind HAProxy (or NGINX), a real Prometheus scraping both, load flowing through the
//! proxy, and the `canary` binary driving the weights.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary_tests::demo::{DemoService, Load};
use canary_tests::haproxy::Haproxy;
use canary_tests::nginx::Nginx;
use canary_tests::policy::TestPolicy;
use canary_tests::prometheus::Prometheus;

use crate::canary_run::{canary, read_json};

/// Requests per second through the proxy.
const RPS: u32 = 200;

/// The services, the proxy's address, Prometheus and the load, for one test.
pub(crate) struct Stack {
    pub(crate) stable: DemoService,
    pub(crate) canary: DemoService,
    pub(crate) prometheus: Prometheus,
    pub(crate) _load: Option<Load>,
    pub(crate) dir: tempfile::TempDir,
}

impl Stack {
    /// The two versions and Prometheus scraping them every second; `canary_flags` inject
    /// faults into the canary.
    pub(crate) fn services(canary_flags: &[&str]) -> Stack {
        let stable = DemoService::start("stable", &["--seed", "1"]);
        let mut flags = vec!["--seed", "2"];
        flags.extend_from_slice(canary_flags);
        let canary = DemoService::start("canary", &flags);
        let prometheus = Prometheus::scraping(
            "demo",
            &[stable.address.clone(), canary.address.clone()],
            Duration::from_secs(1),
        );
        assert!(
            canary_tests::wait_until(Duration::from_secs(30), || prometheus.targets_up() == 2),
            "Prometheus scrapes both versions"
        );
        Stack {
            stable,
            canary,
            prometheus,
            _load: None,
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Starts the load through `url` (the proxy).
    pub(crate) fn load_through(&mut self, url: &str) {
        self._load = Some(Load::start(&format!("{url}/api/checkout"), RPS));
    }

    /// Writes a policy for this stack with `gateway` (YAML, indented under `gateway:`) and
    /// `steps` timing.
    pub(crate) fn policy(&self, gateway: &str, timing: &str) -> PathBuf {
        self.policy_with(gateway, timing, "")
    }

    /// [`Stack::policy`] with more top-level YAML (e.g. `hooks:`).
    pub(crate) fn policy_with(&self, gateway: &str, timing: &str, extra: &str) -> PathBuf {
        TestPolicy::new("e2e")
            .selector(r#"job="demo""#)
            .prometheus(&self.prometheus.url(), "    timeout: 5s\n")
            .rollout(&format!(
                "  steps: [10, 25, 50, 100]\n{timing}\n  alpha: 1%\n"
            ))
            .gateway(gateway)
            .extra(extra)
            .write(self.dir.path(), "e2e.yaml")
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub(crate) fn report_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The timing of the end-to-end rollouts: long enough steps for evidence at 200 requests/s,
/// short enough for a test suite.
const TIMING: &str =
    "  step-duration: 12s\n  max-step-duration: 36s\n  interval: 2s\n  min-requests: 100";

/// The timing of the healthy rollouts, which go through every step: 8 s steps still hold
/// 100 canary requests at 10 % of the load generators' 200 requests/s (20 a second), and a
/// step short of them is extended, not passed.
const HEALTHY_TIMING: &str =
    "  step-duration: 8s\n  max-step-duration: 36s\n  interval: 2s\n  min-requests: 100";

/// The policy's `gateway:` section for the test HAProxy (backend `app`).
pub(crate) fn haproxy_gateway(haproxy: &Haproxy) -> String {
    format!(
        "  haproxy:\n    socket: {}\n    backend: app\n    canary-server: canary\n    stable-server: stable",
        haproxy.socket().display()
    )
}

/// Polls HAProxy's canary share in the background, keeping every distinct value in order.
struct WeightWatcher {
    seen: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    poller: std::thread::JoinHandle<()>,
}

impl WeightWatcher {
    fn start(haproxy: &Haproxy) -> WeightWatcher {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let socket = haproxy.socket();
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let poller = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                if let Some(percent) = canary_percent_at(&socket) {
                    let mut seen = seen2.lock().unwrap();
                    if seen.last() != Some(&percent) {
                        seen.push(percent);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        WeightWatcher { seen, stop, poller }
    }

    /// Stops polling and takes one last reading, so a change made just before the end counts.
    fn finish(self, haproxy: &Haproxy) -> Vec<u32> {
        self.stop.store(true, Ordering::SeqCst);
        self.poller
            .join()
            .expect("the weight poller does not panic");
        let mut seen = self.seen.lock().unwrap().clone();
        if let Some(last) = haproxy.canary_percent()
            && seen.last() != Some(&last)
        {
            seen.push(last);
        }
        seen
    }
}

/// The canary's share at an HAProxy runtime socket (same arithmetic as the harness).
fn canary_percent_at(socket: &Path) -> Option<u32> {
    use std::io::{Read, Write};
    let get = |server: &str| -> Option<u32> {
        let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
        stream
            .write_all(format!("get weight app/{server}\n").as_bytes())
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().next()?.parse().ok()
    };
    let (canary, stable) = (get("canary")?, get("stable")?);
    let total = canary + stable;
    (total > 0).then(|| (canary * 100 + total / 2) / total)
}

fn run_rollout(policy: &Path, stack: &Stack, report: &Path) -> crate::canary_run::Run {
    let state = stack.state_dir();
    canary(
        &[
            "rollout",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--output",
            &format!("json:{}", report.display()),
        ],
        &[],
    )
}

fn weights_in(report: &serde_json::Value) -> Vec<u64> {
    report["weights"]
        .as_array()
        .map(|w| w.iter().filter_map(|p| p["weight"].as_u64()).collect())
        .unwrap_or_default()
}

#[test]
fn a_healthy_canary_is_promoted_through_haproxy() {
    let mut stack = Stack::services(&[]);
    let haproxy = Haproxy::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&haproxy.url());
    let policy = stack.policy(&haproxy_gateway(&haproxy), HEALTHY_TIMING);
    let watcher = WeightWatcher::start(&haproxy);
    let report_path = stack.report_path("healthy.json");
    let run = run_rollout(&policy, &stack, &report_path);
    let seen = watcher.finish(&haproxy);
    assert_eq!(run.code, 0, "promoted with exit 0:\n{}", run.all());
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "pass", "{report}");
    assert_eq!(
        weights_in(&report),
        [10, 25, 50, 100],
        "weights set and read back"
    );
    let decisions: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["advance", "advance", "promote"], "{report}");
    // HAProxy itself routed 10, 25, 50 and then 100 percent, in that order.
    let routed: Vec<u32> = seen
        .iter()
        .copied()
        .filter(|w| [10, 25, 50, 100].contains(w))
        .collect();
    assert_eq!(
        routed,
        [10, 25, 50, 100],
        "HAProxy's canary share over time: {seen:?}"
    );
    assert_eq!(haproxy.canary_percent(), Some(100));
    for step in report["steps"].as_array().unwrap() {
        assert!(
            step["canary_requests"].as_u64().unwrap() >= 100,
            "each step had its evidence: {step}"
        );
    }
}

/// A bad canary is rolled back during the 10 % step, and the time from the failing check's
/// tick to weight 0 at HAProxy is printed for `docs/benchmarks.md`.
fn bad_canary_is_rolled_back_in_the_first_step(canary_flags: &[&str], failing: &str) {
    let mut stack = Stack::services(canary_flags);
    let haproxy = Haproxy::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&haproxy.url());
    let policy = stack.policy(&haproxy_gateway(&haproxy), TIMING);
    let report_path = stack.report_path("bad.json");
    let started = Instant::now();
    let run = run_rollout(&policy, &stack, &report_path);
    assert_eq!(run.code, 1, "rolled back with exit 1:\n{}", run.all());
    let report = read_json(&report_path);
    assert_eq!(report["verdict"], "fail", "{report}");
    assert_eq!(
        weights_in(&report),
        [10, 0],
        "rolled back from the 10% step: {report}"
    );
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "never left the first step: {report}");
    assert_eq!(steps[0]["decision"], "rollback");
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        failed.iter().any(|name| name.starts_with(failing)),
        "{failing} failed: {failed:?}"
    );
    assert_eq!(
        haproxy.canary_percent(),
        Some(0),
        "HAProxy sends the canary nothing"
    );
    // Decision (the tick whose evidence crossed the bound) to weight 0 confirmed at HAProxy.
    let decided: jiff::Timestamp = report["decided_at"].as_str().unwrap().parse().unwrap();
    let zero: jiff::Timestamp = report["weights"][1]["at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let millis = zero.duration_since(decided).as_millis();
    println!(
        "benchmark: failing check -> canary weight 0 at HAProxy: {millis} ms ({failing}, rollout took {:?})",
        started.elapsed()
    );
    assert!(millis >= 0, "weight 0 after the decision");
}

#[test]
fn a_canary_with_5_percent_errors_is_rolled_back_in_the_10_percent_step() {
    bad_canary_is_rolled_back_in_the_first_step(&["--error-rate", "0.05"], "errors/");
}

#[test]
fn a_canary_200ms_slower_is_rolled_back_in_the_10_percent_step() {
    bad_canary_is_rolled_back_in_the_first_step(&["--added-latency", "200ms"], "latency/");
}

#[test]
fn a_healthy_canary_is_promoted_through_nginx() {
    let mut stack = Stack::services(&[]);
    let nginx = Nginx::start(&stack.stable.address, &stack.canary.address);
    stack.load_through(&nginx.url());
    let reload: Vec<String> = nginx
        .reload_command()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    let gateway = format!(
        "  nginx:\n    upstream-file: {}\n    upstream: app\n    canary: {}\n    stable: {}\n    reload: [{}]",
        nginx.upstream_file().display(),
        stack.canary.address,
        stack.stable.address,
        reload.join(", ")
    );
    let policy = stack.policy(&gateway, HEALTHY_TIMING);
    let report_path = stack.report_path("nginx.json");
    let run = run_rollout(&policy, &stack, &report_path);
    assert_eq!(run.code, 0, "promoted through NGINX:\n{}", run.all());
    let report = read_json(&report_path);
    assert_eq!(weights_in(&report), [10, 25, 50, 100]);
    let upstream = std::fs::read_to_string(nginx.upstream_file()).unwrap();
    assert!(
        upstream.contains(&format!("server {} down", stack.stable.address)),
        "all traffic on the canary:\n{upstream}"
    );
    // NGINX really sent the canary its share at each step: every analysed step saw the
    // minimum of canary requests through it.
    for step in report["steps"].as_array().unwrap() {
        assert!(step["canary_requests"].as_u64().unwrap() >= 100, "{step}");
    }
}
