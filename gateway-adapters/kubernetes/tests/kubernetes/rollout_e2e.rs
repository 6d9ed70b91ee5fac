//! `canary rollout` end to end through the API fake: the binary reads a kubeconfig that
//! points at `FakeApiServer`, shifts the weights of a Gateway API HTTPRoute, keeps its state
//! in a ConfigMap, and a real Prometheus (scraping a stable and a canary demo service under
//! load) judges the canary. A healthy canary goes 10/25/50/100 across two runs of
//! `canary rollout` (the first interrupted, a concurrent one refused, the second resuming
//! from the ConfigMap); a bad one goes 10 → 0.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_tests::demo::{DemoService, Load};
use canary_tests::policy::TestPolicy;
use canary_tests::prometheus::Prometheus;
use canary_tests::{binary, wait_until};
use serde_json::Value;

use crate::support::{NS, http_route};
use canary_fake_kube_api::FakeApiServer;

/// Requests per second to each version.
pub(crate) const RPS: u32 = 150;
/// Short steps, a tick a second: evidence at 150 requests/s comes quickly.
pub(crate) const TIMING: &str =
    "  step-duration: 3s\n  max-step-duration: 15s\n  interval: 1s\n  min-requests: 50";
pub(crate) const ROUTE: &str =
    "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout";

/// The cluster (the API fake, on a runtime of its own), the services, Prometheus, the load.
pub(crate) struct World {
    pub(crate) fake: FakeApiServer,
    _runtime: tokio::runtime::Runtime,
    _services: (DemoService, DemoService),
    _load: (Load, Load),
    pub(crate) prometheus: Prometheus,
    pub(crate) dir: tempfile::TempDir,
}

impl World {
    pub(crate) fn start(canary_flags: &[&str]) -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fake = runtime.block_on(FakeApiServer::start());
        fake.insert(http_route());
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
            wait_until(Duration::from_secs(30), || prometheus.targets_up() == 2),
            "Prometheus scrapes both versions:\n{}",
            prometheus.log()
        );
        let load = (
            Load::start(&format!("http://{}/api/checkout", stable.address), RPS),
            Load::start(&format!("http://{}/api/checkout", canary.address), RPS),
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), fake.kubeconfig(NS)).unwrap();
        World {
            fake,
            _runtime: runtime,
            _services: (stable, canary),
            _load: load,
            prometheus,
            dir,
        }
    }

    /// The policy: the HTTPRoute `checkout`'s rule `api` (its namespace is the context's).
    pub(crate) fn policy(&self) -> PathBuf {
        TestPolicy::new("e2e")
            .selector(r#"job="demo""#)
            .prometheus(&self.prometheus.url(), "    timeout: 5s\n")
            .rollout(&format!("  steps: [10, 25, 50, 100]\n{TIMING}\n"))
            .gateway(
                "  http-route:\n    name: checkout\n    rule: api\n    stable: checkout-stable\n    canary: checkout-canary\n",
            )
            .write(self.dir.path(), "e2e.yaml")
    }

    /// `canary ARGS… --state-store configmap`, as CI job `holder`.
    pub(crate) fn canary(&self, args: &[&str], holder: &str) -> Command {
        let mut command = Command::new(binary("canary"));
        command
            .args(args)
            .args(["--state-store", "configmap"])
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("CANARY_HOLDER", holder)
            .env_remove("GITHUB_STEP_SUMMARY")
            .stdin(Stdio::null());
        command
    }

    /// The canary's weight of each successful PATCH of the route, in order.
    pub(crate) fn canary_weights(&self) -> Vec<u64> {
        self.fake
            .requests_with("PATCH")
            .iter()
            .filter(|r| r.path == ROUTE && r.status == 200)
            .filter_map(|r| {
                r.body.as_ref()?.as_array()?.iter().find_map(|op| {
                    (op["path"] == "/spec/rules/0/backendRefs/1/weight")
                        .then(|| op["value"].as_u64())?
                })
            })
            .collect()
    }

    fn route(&self) -> Value {
        self.fake
            .object("gateway.networking.k8s.io", "httproutes", NS, "checkout")
            .unwrap()
    }

    /// The state ConfigMap's keys.
    pub(crate) fn state(&self) -> Value {
        self.fake
            .object("", "configmaps", NS, "canary-rollout-e2e")
            .expect("the state ConfigMap")["data"]
            .clone()
    }

    pub(crate) fn phase(&self) -> String {
        let rollout: Value =
            serde_json::from_str(self.state()["rollout.json"].as_str().expect("a rollout"))
                .unwrap();
        rollout["phase"]["phase"].as_str().unwrap().to_owned()
    }
}

/// A finished run.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stderr: String,
    pub(crate) stdout: String,
}

pub(crate) fn finish(command: &mut Command) -> Run {
    let output = command.output().expect("run canary");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "canary panicked:\n{}",
        run.stderr
    );
    run
}

/// A running `canary`, its stderr collected as it comes.
pub(crate) struct Running {
    pub(crate) child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    pub(crate) fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start canary");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Running { child, stderr }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_healthy_canary_is_promoted_across_two_runs_with_the_state_in_a_config_map() {
    let world = World::start(&[]);
    let policy = world.policy();
    let rollout = ["rollout", "--policy", path(&policy)];

    // The first run, on "runner 1": let it reach 25 %.
    let mut first = Running::spawn(&mut world.canary(&rollout, "runner-1 job 41"));
    assert!(
        wait_until(Duration::from_secs(60), || world.canary_weights().last()
            == Some(&25)),
        "the first run reached 25%: weights {:?}\n{}",
        world.canary_weights(),
        first.stderr()
    );
    assert_eq!(
        world.state()["owner.json"]
            .as_str()
            .map(|o| o.contains("runner-1 job 41")),
        Some(true)
    );

    // A second job meanwhile is refused, naming the first (exit 4), and changes nothing.
    let refused = finish(&mut world.canary(&rollout, "runner-2 job 42"));
    assert_eq!(refused.code, Some(4), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("a rollout of e2e is in progress, owned by runner-1 job 41 pid"),
        "{}",
        refused.stderr
    );

    // The first job is stopped (SIGTERM: the rollout is left where it stands, exit 130).
    let pid = nix::unistd::Pid::from_raw(i32::try_from(first.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = first.child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{}", first.stderr());
    assert_eq!(world.phase(), "step");
    assert!(
        world.state().get("owner.json").is_none(),
        "the claim was released"
    );

    // A rerun, on another runner, resumes from the ConfigMap to promotion.
    let resumed = finish(&mut world.canary(&rollout, "runner-2 job 43"));
    assert_eq!(
        resumed.code,
        Some(0),
        "{}\n{}",
        resumed.stdout,
        resumed.stderr
    );
    assert!(
        resumed.stderr.contains("resuming the rollout of e2e"),
        "{}",
        resumed.stderr
    );
    assert_eq!(world.canary_weights(), [10, 25, 50, 100]);
    assert_eq!(world.phase(), "promoted");
    assert!(world.state().get("owner.json").is_none());

    // The route: all traffic to the canary, everything else as it was.
    let mut expected = http_route();
    expected["spec"]["rules"][0]["backendRefs"][0]["weight"] = 0.into();
    expected["spec"]["rules"][0]["backendRefs"][1]["weight"] = 100.into();
    let route = world.route();
    assert_eq!(route["spec"], expected["spec"]);
    assert_eq!(
        route["metadata"]["annotations"],
        expected["metadata"]["annotations"]
    );
    crate::schemas::validate("httproutes", &route);

    // `canary status` reads the same ConfigMap.
    let status = finish(&mut world.canary(&["status", "--policy", path(&policy)], "laptop"));
    assert_eq!(status.code, Some(0), "{}\n{}", status.stdout, status.stderr);
    assert!(status.stdout.contains("promoted"), "{}", status.stdout);
}

#[test]
fn a_bad_canary_is_rolled_back_from_10_to_0() {
    let world = World::start(&["--error-rate", "0.2"]);
    let policy = world.policy();
    let report = world.dir.path().join("report.json");
    let run = finish(&mut world.canary(
        &[
            "rollout",
            "--policy",
            path(&policy),
            "--output",
            &format!("json:{}", report.display()),
        ],
        "runner-1 job 51",
    ));
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(world.canary_weights(), [10, 0]);
    assert_eq!(world.phase(), "rolled-back");
    let route = world.route();
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][1]["weight"], 0);
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["weight"], 100);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["verdict"], "fail", "{report}");
}

/// A GitOps controller's self-heal (Argo CD, Flux) puts the route back as Git has it while
/// the canary is at 25 %: the rollout's read-back at the next tick sees the weight it did not
/// set, counts the drift, sets 25 % again, does not pass that step on the evidence gathered
/// meanwhile, and still promotes (issue 18.3; docs/kubernetes.md shows how to keep GitOps
/// off the weights).
#[test]
fn a_gitops_revert_of_the_route_is_caught_repaired_and_counted() {
    let world = World::start(&[]);
    let policy = world.policy();
    let report = world.dir.path().join("report.json");
    let mut rollout = Running::spawn(&mut world.canary(
        &[
            "rollout",
            "--policy",
            path(&policy),
            "--output",
            &format!("json:{}", report.display()),
        ],
        "runner-1 job 61",
    ));
    assert!(
        wait_until(Duration::from_secs(60), || world.canary_weights().last()
            == Some(&25)),
        "the rollout reached 25%: weights {:?}\n{}",
        world.canary_weights(),
        rollout.stderr()
    );
    // Self-heal: the route as Git has it (stable 100, canary 0).
    world.fake.insert(http_route());
    let status = rollout.child.wait().unwrap();
    let stderr = rollout.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr
            .contains("weight drift: the gateway served the canary 0 % where the rollout set 25 %"),
        "{stderr}"
    );
    let weights = world.canary_weights();
    assert_eq!(
        weights.iter().filter(|w| **w == 25).count(),
        2,
        "25% set again after the revert: {weights:?}"
    );
    assert_eq!(weights.last(), Some(&100), "{weights:?}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["verdict"], "pass", "{report}");
    let rollout_state: Value =
        serde_json::from_str(world.state()["rollout.json"].as_str().unwrap()).unwrap();
    assert!(
        rollout_state["weight_drifts"].as_u64() >= Some(1),
        "{rollout_state}"
    );
}
