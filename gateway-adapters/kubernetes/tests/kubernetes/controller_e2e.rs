//! `canary controller run` end to end through the API fake (no API server can run here),
//! with the world of `rollout_e2e.rs`: a Gateway API HTTPRoute in the fake, a stable and a
//! canary demo service under load, a real Prometheus judging them. A `CanaryRollout` holds
//! the same policy inline; the controller drives it with the same machine as `canary
//! rollout`: a healthy canary is promoted (10/25/50/100), a bad one rolled back (10 → 0),
//! and a controller killed mid-rollout (SIGKILL) is resumed by the next one at its step.
//! `canary wait --kube` blocks on each until it ends and exits with its code and reports.

use std::process::{Command, Stdio};
use std::time::Duration;

use canary_tests::{binary, wait_until};
use serde_json::{Value, json};

use crate::rollout_e2e::{Running, World, finish};
use crate::support::NS;

const GROUP: &str = "canary.dev";
const RESOURCE: &str = "canaryrollouts";
const NAME: &str = "checkout";

/// The CanaryRollout `checkout` with the world's policy inline, rolling out `revision`.
fn install(world: &World, revision: &str) {
    install_policy(world, revision, world_policy(world));
}

/// [`install`] with one-hour steps ticking every `interval`: a rollout that stays in its
/// first step, ticking, for as long as a test watches it.
/// `controller-a` started on `world`, once it has set the rollout's first weight (10 %).
fn at_ten_percent(world: &World) -> Running {
    let running = Running::spawn(&mut controller(world, "controller-a"));
    assert!(
        wait_until(Duration::from_secs(60), || world.canary_weights().last()
            == Some(&10)),
        "the controller started the rollout: weights {:?}\n{}",
        world.canary_weights(),
        running.stderr()
    );
    running
}

fn install_ticking(world: &World, revision: &str, interval: &str) {
    let mut policy = world_policy(world);
    policy["rollout"]["interval"] = json!(interval);
    policy["rollout"]["step-duration"] = json!("1h");
    policy["rollout"]["max-step-duration"] = json!("2h");
    install_policy(world, revision, policy);
}

/// The world's policy file, as a CanaryRollout's inline policy.
fn world_policy(world: &World) -> Value {
    let text = std::fs::read_to_string(world.policy()).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// The CanaryRollout `checkout` with `policy` inline, rolling out `revision`.
fn install_policy(world: &World, revision: &str, policy: Value) {
    world.fake.serve_status_subresource(GROUP, RESOURCE);
    world.fake.insert(json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"revision": revision, "policy": policy},
    }));
}

/// The ClusterRole of examples/kubernetes/controller/controller.yaml.
fn shipped_cluster_role() -> k8s_openapi::api::rbac::v1::ClusterRole {
    let documents = crate::support::example_documents("controller/controller.yaml");
    let role = documents
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("a ClusterRole in controller.yaml");
    serde_json::from_value(role).expect("an rbac.authorization.k8s.io/v1 ClusterRole")
}

/// The leader-election Role of examples/kubernetes/controller/controller.yaml.
fn shipped_lease_role() -> k8s_openapi::api::rbac::v1::Role {
    let documents = crate::support::example_documents("controller/controller.yaml");
    let role = documents
        .into_iter()
        .find(|d| d["kind"] == "Role")
        .expect("a Role in controller.yaml");
    serde_json::from_value(role).expect("an rbac.authorization.k8s.io/v1 Role")
}

/// The namespace of the shipped controller, where its Lease lives.
const CONTROLLER_NS: &str = "canary-system";

/// How long the tests' controllers hold the Lease without renewing it: short, so that a
/// standby takes over quickly (the shipped manifest says 15 s); the renew deadline (3 s)
/// leaves a loaded machine 2.5 s for a renewal before the leader gives up.
const LEASE_DURATION: Duration = Duration::from_secs(4);

/// `canary controller run` for the namespace, as `holder`, with a kubeconfig of its own
/// whose token is `holder` (so the fake's records tell the controllers' requests apart),
/// electing its leader on the Lease of the shipped manifest's namespace.
fn controller(world: &World, holder: &str) -> Command {
    let kubeconfig = world.dir.path().join(format!("kubeconfig-{holder}"));
    std::fs::write(&kubeconfig, world.fake.kubeconfig_with_token(NS, holder)).unwrap();
    let mut command = Command::new(binary("canary"));
    command
        .args([
            "controller",
            "run",
            "--namespace",
            NS,
            "--retry-after",
            "1s",
            "--lease-namespace",
            CONTROLLER_NS,
            "--lease-duration",
            "4s",
            "--lease-renew-deadline",
            "3s",
            "--lease-retry-period",
            "500ms",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("CANARY_HOLDER", holder)
        .env("CANARY_LOG", "canary=info,warn")
        .stdin(Stdio::null());
    command
}

/// `canary wait --kube shop/checkout`, writing the JSON report into the world's directory.
fn wait(world: &World, timeout: &str) -> (Option<i32>, String, Value) {
    let report = world.dir.path().join("wait-report.json");
    let mut command = Command::new(binary("canary"));
    command
        .args([
            "wait",
            "--kube",
            &format!("{NS}/{NAME}"),
            "--timeout",
            timeout,
        ])
        .arg("--output")
        .arg(format!("json:{}", report.display()))
        .env("KUBECONFIG", world.dir.path().join("kubeconfig"))
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdin(Stdio::null());
    let run = finish(&mut command);
    let report = std::fs::read_to_string(&report)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    (run.code, format!("{}\n{}", run.stdout, run.stderr), report)
}

fn resource(world: &World) -> Value {
    world
        .fake
        .object(GROUP, RESOURCE, NS, NAME)
        .expect("the CanaryRollout")
}

fn status(world: &World) -> Value {
    resource(world)["status"].clone()
}

/// The reasons of the Events recorded about the resource, in order of creation.
fn event_reasons(world: &World) -> Vec<String> {
    world
        .fake
        .requests_with("POST")
        .iter()
        .filter(|r| r.path.ends_with("/events") && r.status == 201)
        .filter_map(|r| {
            let body = r.body.as_ref()?;
            (body["involvedObject"]["name"] == NAME)
                .then(|| body["reason"].as_str().map(str::to_owned))?
        })
        .collect()
}

/// The size of the rollout's stored state (the ConfigMap's data), in bytes.
fn stored_bytes(world: &World) -> usize {
    let configmap = world
        .fake
        .object("", "configmaps", NS, "canaryrollout-checkout")
        .expect("the state ConfigMap");
    configmap["data"].as_object().map_or(0, |data| {
        data.values().map(|v| v.as_str().map_or(0, str::len)).sum()
    })
}

/// Stamps the resource with `canary.dev/control-request`, as `canary promote|abort --kube`
/// do after leaving a request in the rollout's ConfigMap.
fn announce_request(world: &World) {
    let mut resource = resource(world);
    resource["metadata"]["annotations"]["canary.dev/control-request"] =
        json!(jiff::Timestamp::now().to_string());
    world.fake.replace(resource);
}

fn status_writes(world: &World) -> usize {
    world
        .fake
        .requests_with("PATCH")
        .iter()
        .filter(|r| r.path.ends_with("/canaryrollouts/checkout/status") && r.status == 200)
        .count()
}

#[test]
fn the_controller_promotes_a_healthy_canary_and_says_so_in_status_and_events() {
    let world = World::start(&[]);
    install(&world, "v1");
    // With only the shipped ClusterRole and leader-election Role granted
    // (examples/kubernetes/controller/): enough for the Lease, the whole rollout, its status,
    // Events and state, and for `canary wait`.
    world
        .fake
        .grant(&[shipped_lease_role()], &[shipped_cluster_role()]);
    let running = Running::spawn(&mut controller(&world, "controller-a"));
    // The CI stage: blocks until the rollout ends, exits 0, writes the report.
    let (code, output, report) = wait(&world, "120s");
    assert_eq!(code, Some(0), "{output}\n{}", running.stderr());
    assert_eq!(report["verdict"], "pass", "{report}");
    assert_eq!(report["exit_code"], 0, "{report}");
    assert!(
        output.contains("Progressing"),
        "wait said where the rollout stood: {output}"
    );
    assert_eq!(status(&world)["phase"], "Promoted");
    assert_eq!(world.canary_weights(), [10, 25, 50, 100]);
    let status = status(&world);
    assert_eq!(status["revision"], "v1", "{status}");
    assert_eq!(status["exitCode"], 0, "{status}");
    assert_eq!(status["weight"], 100, "{status}");
    assert_eq!(status["observedGeneration"], 1, "{status}");
    assert_eq!(
        status["stateConfigMap"], "canaryrollout-checkout",
        "{status}"
    );
    assert!(
        status.get("step").is_none(),
        "no step once promoted: {status}"
    );
    let condition = |kind: &str| {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap_or_else(|| panic!("a {kind} condition: {status}"))["status"]
            .clone()
    };
    assert_eq!(condition("Promoted"), "True");
    assert_eq!(condition("Progressing"), "False");
    assert_eq!(condition("RolledBack"), "False");
    let criteria = status["criteria"]
        .as_array()
        .expect("per-criterion verdicts");
    assert!(!criteria.is_empty(), "{status}");
    assert!(criteria.iter().all(|c| c["verdict"] == "pass"), "{status}");
    // The spec was never written by the controller: its generation is still 1.
    assert_eq!(resource(&world)["metadata"]["generation"], 1);

    let reasons = event_reasons(&world);
    assert_eq!(
        reasons.iter().filter(|r| *r == "StepStarted").count(),
        3,
        "an Event per analysed step: {reasons:?}"
    );
    assert_eq!(
        reasons.last().map(String::as_str),
        Some("Promoted"),
        "{reasons:?}"
    );

    // Measured for docs/kubernetes.md: what a finished rollout keeps in the cluster, and
    // how many status writes it took (coalesced to at most one per tick).
    let ticks = 3 * 3 + 3; // about: 3 analysed steps of ≥ 3 ticks of 1 s, plus transitions
    let writes = status_writes(&world);
    eprintln!(
        "measured: stored state {} bytes; status {} bytes; {writes} status writes",
        stored_bytes(&world),
        status.to_string().len()
    );
    assert!(writes <= 2 * ticks + 4, "status writes coalesced: {writes}");
    // The state keeps a bounded timeline (the core test
    // a_machine_with_a_timeline_bound_saves_a_state_that_does_not_grow_with_the_rollout
    // shows it does not grow with the rollout's length).
    assert!(stored_bytes(&world) < 16 * 1024, "{}", stored_bytes(&world));
    let refused: Vec<String> = world
        .fake
        .requests()
        .iter()
        .filter(|r| r.status == 403)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(refused.is_empty(), "the shipped roles lack: {refused:?}");
    let lease = world
        .fake
        .object(
            "coordination.k8s.io",
            "leases",
            CONTROLLER_NS,
            "canary-controller",
        )
        .expect("the leader Lease");
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| h.starts_with("controller-a")),
        "{lease}"
    );
}

#[test]
fn the_controller_rolls_a_bad_canary_back() {
    let world = World::start(&["--error-rate", "0.2"]);
    install(&world, "v2");
    let running = Running::spawn(&mut controller(&world, "controller-a"));
    let (code, output, report) = wait(&world, "120s");
    assert_eq!(code, Some(1), "{output}\n{}", running.stderr());
    assert_eq!(report["verdict"], "fail", "{report}");
    assert_eq!(status(&world)["phase"], "RolledBack");
    assert_eq!(world.canary_weights(), [10, 0]);
    let status = status(&world);
    assert_eq!(status["exitCode"], 1, "{status}");
    assert_eq!(status["weight"], 0, "{status}");
    assert!(
        status["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["verdict"] == "fail"),
        "{status}"
    );
    let reasons = event_reasons(&world);
    assert!(reasons.contains(&"RolledBack".to_owned()), "{reasons:?}");
}

#[test]
fn a_controller_killed_mid_rollout_is_resumed_at_its_step_by_the_next_one() {
    let world = World::start(&[]);
    install(&world, "v3");
    let mut first = Running::spawn(&mut controller(&world, "controller-a"));
    assert!(
        wait_until(Duration::from_secs(60), || world.canary_weights().last()
            == Some(&25)),
        "the first controller reached 25%: weights {:?}\n{}",
        world.canary_weights(),
        first.stderr()
    );
    // SIGKILL: no chance to release anything.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = Running::spawn(&mut controller(&world, "controller-b"));
    assert!(
        wait_until(Duration::from_secs(90), || status(&world)["phase"]
            == "Promoted"),
        "promoted by the second controller: status {}\nweights {:?}\n{}",
        status(&world),
        world.canary_weights(),
        second.stderr()
    );
    let weights = world.canary_weights();
    assert_eq!(
        weights.iter().filter(|w| **w == 10).count(),
        1,
        "resumed at its step, not restarted: {weights:?}"
    );
    assert_eq!(weights.last(), Some(&100), "{weights:?}");
    let owner = world
        .fake
        .object("", "configmaps", NS, "canaryrollout-checkout")
        .unwrap()["data"]
        .get("owner.json")
        .cloned();
    assert!(
        owner.is_none(),
        "the second controller released its claim: {owner:?}"
    );
}

/// `canary wait` on a resource no controller carries out: it gives up at `--timeout` with
/// exit 4, saying so, rather than answer with the outcome of the revision before (the status
/// still says v1 was promoted; v2 is asked for); a name that does not exist, or is not
/// NAMESPACE/NAME, is bad input (exit 2).
#[test]
fn wait_gives_up_at_its_timeout_and_never_answers_with_an_older_revisions_outcome() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(canary_fake_kube_api::FakeApiServer::start());
    fake.serve_status_subresource(GROUP, RESOURCE);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), fake.kubeconfig(NS)).unwrap();
    fake.insert(json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"revision": "v2", "policy": {"service": NAME}},
        "status": {"observedGeneration": 1, "revision": "v1", "phase": "Promoted", "exitCode": 0},
    }));
    let run = |args: &[&str]| {
        let mut command = Command::new(binary("canary"));
        command
            .args(args)
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .stdin(Stdio::null());
        finish(&mut command)
    };
    let started = std::time::Instant::now();
    let timed_out = run(&["wait", "--kube", "shop/checkout", "--timeout", "3s"]);
    assert_eq!(timed_out.code, Some(4), "{}", timed_out.stderr);
    assert!(
        timed_out.stderr.contains("did not end within 3s"),
        "{}",
        timed_out.stderr
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
    let missing = run(&["wait", "--kube", "shop/nothing", "--timeout", "3s"]);
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("CanaryRollout shop/nothing does not exist"),
        "{}",
        missing.stderr
    );
    let malformed = run(&["wait", "--kube", "checkout"]);
    assert_eq!(malformed.code, Some(2), "{}", malformed.stderr);
}

/// A CanaryRollout deleted mid-rollout: its rollout stops where it stands (no finalizer yet,
/// so the weight is left as it is, like a `canary rollout` whose state cannot be saved);
/// the controller does not go on moving traffic for a resource that no longer exists.
#[test]
fn a_rollout_whose_resource_is_deleted_stops_where_it_stands() {
    let world = World::start(&[]);
    install(&world, "v4");
    let running = Running::spawn(&mut controller(&world, "controller-a"));
    assert!(
        wait_until(Duration::from_secs(60), || world.canary_weights().last()
            == Some(&25)),
        "reached 25%: weights {:?}\n{}",
        world.canary_weights(),
        running.stderr()
    );
    world.fake.remove(GROUP, RESOURCE, NS, NAME);
    assert!(
        wait_until(Duration::from_secs(20), || running
            .stderr()
            .contains("was deleted: its rollout stops where it stands")),
        "the controller noticed: {}",
        running.stderr()
    );
    let stopped_at = world.canary_weights();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(world.canary_weights(), stopped_at, "{}", running.stderr());
    assert!(!stopped_at.contains(&100), "{stopped_at:?}");
}

/// The same in the middle of a long step, where nothing the status shows changes and so
/// no status write finds the resource gone: the rollout learns it from the controller's own
/// watch of its resources at its next save, within a tick or two, and sets no weight again.
/// (A review found it went on for up to `--status-refresh` and could set the next step's
/// weight, once the status was no longer written at every tick.)
#[test]
fn a_rollout_deleted_in_the_middle_of_a_long_step_stops_at_its_next_tick() {
    let world = World::start(&[]);
    install_ticking(&world, "v1", "2s");
    let running = at_ten_percent(&world);
    // A few ticks in the step, so that the status has settled.
    std::thread::sleep(Duration::from_secs(6));
    let weights = world.canary_weights();
    world.fake.remove(GROUP, RESOURCE, NS, NAME);
    assert!(
        wait_until(Duration::from_secs(15), || running
            .stderr()
            .contains("was deleted: its rollout stops where it stands")),
        "the controller noticed within a few 2 s ticks: {}",
        running.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(world.canary_weights(), weights, "{}", running.stderr());
}

/// `canary status|promote --kube NS/NAME` on a rollout the controller drives: a request
/// bound to another rollout (an older revision) is consumed and refused, the rollout goes
/// on; `status` says where it stands and who drives it; `promote` leaves its request for
/// the controller, which takes it once and promotes, and the command exits 0 with it.
#[test]
fn status_and_promote_with_kube_act_on_the_controllers_rollout_and_a_stale_request_is_refused() {
    let world = World::start(&[]);
    install(&world, "v5");
    let running = at_ten_percent(&world);
    // A promotion asked for the rollout of v4 (another revision): never applied to v5's.
    let mut state = world
        .fake
        .object("", "configmaps", NS, "canaryrollout-checkout")
        .expect("the state ConfigMap");
    let started = state["data"]["rollout.json"]
        .as_str()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .expect("the saved rollout");
    let stale = json!({
        "action": "promote",
        "rollout_id": "v4",
        "rollout_started_at": started["started_at"],
        "requested_at": jiff::Timestamp::now().to_string(),
    });
    state["data"]["request.json"] = Value::String(stale.to_string());
    world.fake.replace(state);
    // Announced on the resource, as `canary promote|abort --kube` do: the controller reads
    // the ConfigMap when its watch sees that, not every second.
    announce_request(&world);
    let request_left = || {
        world
            .fake
            .object("", "configmaps", NS, "canaryrollout-checkout")
            .is_some_and(|c| c["data"].get("request.json").is_some())
    };
    assert!(
        wait_until(Duration::from_secs(20), || !request_left()),
        "the controller took the request\n{}",
        running.stderr()
    );
    let weights = world.canary_weights();
    assert!(
        !weights.contains(&100),
        "a request for another rollout promoted this one: {weights:?}"
    );

    let run = |args: &[&str]| {
        let mut command = Command::new(binary("canary"));
        command
            .args(args)
            .env("KUBECONFIG", world.dir.path().join("kubeconfig"))
            .stdin(Stdio::null());
        finish(&mut command)
    };
    let status_run = run(&["status", "--kube", "shop/checkout"]);
    assert_eq!(status_run.code, Some(0), "{}", status_run.stderr);
    assert!(
        status_run.stdout.contains(": phase step, canary at"),
        "{}",
        status_run.stdout
    );
    assert!(
        status_run
            .stdout
            .contains("driven by canary controller controller-a"),
        "{}",
        status_run.stdout
    );

    let promoted = run(&["promote", "--kube", "shop/checkout", "--yes"]);
    assert_eq!(
        promoted.code,
        Some(0),
        "{}\n{}\n{}",
        promoted.stdout,
        promoted.stderr,
        running.stderr()
    );
    assert!(
        promoted.stdout.contains("asked the process driving"),
        "left for the controller: {}",
        promoted.stdout
    );
    assert!(
        wait_until(Duration::from_secs(20), || status(&world)["phase"]
            == "Promoted"),
        "status {}",
        status(&world)
    );
    let status = status(&world);
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|r| r.contains("by hand")),
        "a manual promotion is said as one: {status}"
    );
    assert_eq!(world.canary_weights().last(), Some(&100));
    assert!(!request_left(), "the request was consumed");
    // Asked again, after the end: nothing to act on (exit 2), nothing written.
    let again = run(&["promote", "--kube", "shop/checkout", "--yes"]);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(
        again.stderr.contains("already finished"),
        "{}",
        again.stderr
    );
}

/// `--kube` with a resource that does not exist is bad input (exit 2, naming it); an API
/// server that refuses the read (403, RBAC) is an infrastructure error (exit 4) naming the
/// rule to grant; a malformed name is bad input. Nothing is written in any case.
#[test]
fn kube_control_commands_refuse_a_missing_resource_and_say_which_rbac_rule_is_missing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(canary_fake_kube_api::FakeApiServer::start());
    fake.serve_status_subresource(GROUP, RESOURCE);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), fake.kubeconfig(NS)).unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(binary("canary"));
        command
            .args(args)
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .stdin(Stdio::null());
        finish(&mut command)
    };
    for command in ["status", "promote", "abort"] {
        let mut args = vec![command, "--kube", "shop/nothing"];
        if command == "promote" {
            args.push("--yes");
        }
        let missing = run(&args);
        assert_eq!(missing.code, Some(2), "{command}: {}", missing.stderr);
        assert!(
            missing
                .stderr
                .contains("CanaryRollout shop/nothing does not exist"),
            "{command}: {}",
            missing.stderr
        );
        let malformed = run(&[command, "--kube", "nothing"]);
        assert_eq!(malformed.code, Some(2), "{command}: {}", malformed.stderr);
    }
    fake.insert(json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"revision": "v1", "policy": {"service": NAME}},
    }));
    // Only ConfigMaps may be read: the CanaryRollout may not.
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "metadata": {"name": "configmaps-only", "namespace": NS},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }))
    .unwrap();
    fake.grant(&[role], &[]);
    let forbidden = run(&["abort", "--kube", "shop/checkout"]);
    assert_eq!(forbidden.code, Some(4), "{}", forbidden.stderr);
    assert!(
        forbidden
            .stderr
            .contains("grant `get` on canaryrollouts.canary.dev in namespace shop"),
        "{}",
        forbidden.stderr
    );
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.method == "GET" || r.status >= 400),
        "nothing written"
    );
}

/// The requests a controller (by its kubeconfig's token) made that write (anything but GET).
fn writes_by(world: &World, holder: &str) -> Vec<String> {
    world
        .fake
        .requests()
        .iter()
        .filter(|r| r.token.as_deref() == Some(holder) && r.method != "GET")
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect()
}

fn signal(running: &Running, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(running.child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
}

/// Leader election with fenced writes (issue 16): two controllers, A leading and B standing
/// by. A is paused (SIGSTOP, as a stuck process or a partitioned node) at 25 % for longer
/// than its lease: B takes the Lease over within the lease duration (measured from the
/// pause) and resumes the rollout at its step — 10 % is never set again — to 100 %. A,
/// continued (SIGCONT) while B drives the rollout, writes nothing at all (no weight, state,
/// status, Event or Lease write: its fence closed 3 s after its last renewal began) and
/// exits 4, saying it lost the Lease.
#[test]
fn a_paused_leader_writes_nothing_after_its_lease_and_the_standby_resumes_at_its_step() {
    let world = World::start(&[]);
    install(&world, "v7");
    let mut leader = Running::spawn(&mut controller(&world, "controller-a"));
    assert!(
        wait_until(Duration::from_secs(60), || world.canary_weights().last()
            == Some(&25)),
        "the leader reached 25%: weights {:?}\n{}",
        world.canary_weights(),
        leader.stderr()
    );
    let standby = Running::spawn(&mut controller(&world, "controller-b"));
    assert!(
        wait_until(Duration::from_secs(20), || standby
            .stderr()
            .contains("standing by")),
        "B stands by while A leads: {}",
        standby.stderr()
    );
    assert!(
        writes_by(&world, "controller-b").is_empty(),
        "a standby writes nothing: {:?}",
        writes_by(&world, "controller-b")
    );
    signal(&leader, nix::sys::signal::Signal::SIGSTOP);
    let paused = std::time::Instant::now();
    // What A had sent before it stopped reaches the fake at once (it is in this process).
    std::thread::sleep(Duration::from_millis(300));
    let before = writes_by(&world, "controller-a");
    assert!(
        wait_until(Duration::from_secs(30), || standby
            .stderr()
            .contains("canary controller: leading")),
        "B took the Lease over: {}",
        standby.stderr()
    );
    let failover = paused.elapsed();
    eprintln!(
        "measured: the standby led {:.2} s after the leader was paused (lease duration {} s, retry period 0.5 s)",
        failover.as_secs_f64(),
        LEASE_DURATION.as_secs()
    );
    // A wakes while B drives the rollout: its timers fire, its next writes meet the fence.
    std::thread::sleep(Duration::from_secs(1));
    signal(&leader, nix::sys::signal::Signal::SIGCONT);
    assert!(
        wait_until(Duration::from_secs(20), || matches!(
            leader.child.try_wait(),
            Ok(Some(_))
        )),
        "the deposed leader stopped: {}",
        leader.stderr()
    );
    let code = leader.child.wait().unwrap().code();
    assert_eq!(code, Some(4), "{}", leader.stderr());
    assert!(
        leader
            .stderr()
            .contains("lost the leader Lease canary-system/canary-controller"),
        "{}",
        leader.stderr()
    );
    assert!(
        wait_until(Duration::from_secs(90), || status(&world)["phase"]
            == "Promoted"),
        "promoted by the new leader: status {}\nweights {:?}\n{}",
        status(&world),
        world.canary_weights(),
        standby.stderr()
    );
    assert_eq!(
        writes_by(&world, "controller-a"),
        before,
        "the deposed leader wrote after it was paused past its lease\n{}",
        leader.stderr()
    );
    let weights = world.canary_weights();
    assert_eq!(
        weights.iter().filter(|w| **w == 10).count(),
        1,
        "resumed at its step, not restarted: {weights:?}"
    );
    assert_eq!(weights.last(), Some(&100), "{weights:?}");
    let lease = world
        .fake
        .object(
            "coordination.k8s.io",
            "leases",
            CONTROLLER_NS,
            "canary-controller",
        )
        .expect("the Lease");
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| h.starts_with("controller-b")),
        "{lease}"
    );
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
}

/// A controller whose ServiceAccount may not touch the Lease (403) says which RBAC rule is
/// missing and exits 4 (an infrastructure error: the cluster's configuration), before it
/// reconciles anything.
#[test]
fn a_controller_refused_the_lease_says_which_rule_is_missing_and_exits_4() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(canary_fake_kube_api::FakeApiServer::start());
    fake.serve_status_subresource(GROUP, RESOURCE);
    // The ClusterRole alone: no leader-election Role.
    fake.grant(&[], &[shipped_cluster_role()]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), fake.kubeconfig(NS)).unwrap();
    let mut command = Command::new(binary("canary"));
    command
        .args([
            "controller",
            "run",
            "--namespace",
            NS,
            "--lease-namespace",
            CONTROLLER_NS,
        ])
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .stdin(Stdio::null());
    let run = finish(&mut command);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "{apiGroups: [\"coordination.k8s.io\"], resources: [\"leases\"], verbs: [\"get\"], resourceNames: [\"canary-controller\"]} in a Role of namespace canary-system"
        ),
        "{}",
        run.stderr
    );
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.contains("canaryrollouts")),
        "nothing reconciled before leading"
    );
}

/// `--shard I/N`: two controller processes, shards 0/2 and 1/2, each electing its leader on
/// a Lease of its own, and two CanaryRollouts that hash to different shards (`shop/checkout`
/// to 0, `shop/orders` to 1; both with an invalid policy, so that all there is to do is
/// write the status): each process writes the status and Events of its shard's resource
/// only — never both processes to one resource.
#[test]
fn two_shards_never_both_act_on_one_rollout() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(canary_fake_kube_api::FakeApiServer::start());
    fake.serve_status_subresource(GROUP, RESOURCE);
    for name in ["checkout", "orders"] {
        fake.insert(json!({
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "CanaryRollout",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"revision": "v1", "policy": {"service": name, "checks": "not a list"}},
        }));
    }
    let dir = tempfile::tempdir().unwrap();
    let spawn = |shard: &str| {
        let token = format!("shard-{}", shard.replace('/', "-of-"));
        let kubeconfig = dir.path().join(format!("kubeconfig-{token}"));
        std::fs::write(&kubeconfig, fake.kubeconfig_with_token(NS, &token)).unwrap();
        let mut command = Command::new(binary("canary"));
        command
            .args(["controller", "run", "--namespace", NS, "--shard", shard])
            .args(["--lease-namespace", CONTROLLER_NS])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("KUBECONFIG", &kubeconfig)
            .env("CANARY_HOLDER", &token)
            .stdin(Stdio::null());
        (token, Running::spawn(&mut command))
    };
    let (first, first_running) = spawn("0/2");
    let (second, second_running) = spawn("1/2");
    let phase = |name: &str| {
        fake.object(GROUP, RESOURCE, NS, name)
            .map(|o| o["status"]["phase"].clone())
    };
    assert!(
        wait_until(Duration::from_secs(30), || phase("checkout")
            == Some(json!("Invalid"))
            && phase("orders") == Some(json!("Invalid"))),
        "both resources judged: {:?} {:?}\n{}\n{}",
        phase("checkout"),
        phase("orders"),
        first_running.stderr(),
        second_running.stderr()
    );
    // Time for a second look by each (a shard that would act on the other's resource has
    // had its chance).
    std::thread::sleep(Duration::from_secs(2));
    let writers = |name: &str| -> std::collections::BTreeSet<String> {
        fake.requests()
            .iter()
            .filter(|r| r.method != "GET")
            .filter(|r| {
                r.path.ends_with(&format!("/canaryrollouts/{name}/status"))
                    || r.body
                        .as_ref()
                        .is_some_and(|b| b["involvedObject"]["name"] == name)
            })
            .filter_map(|r| r.token.clone())
            .collect()
    };
    assert_eq!(
        writers("checkout"),
        [first.clone()].into(),
        "shop/checkout is shard 0's"
    );
    assert_eq!(
        writers("orders"),
        [second.clone()].into(),
        "shop/orders is shard 1's"
    );
    for (shard, token) in [("0-of-2", &first), ("1-of-2", &second)] {
        let lease = fake
            .object(
                "coordination.k8s.io",
                "leases",
                CONTROLLER_NS,
                &format!("canary-controller-shard-{shard}"),
            )
            .unwrap_or_else(|| panic!("the Lease of shard {shard}"));
        assert!(
            lease["spec"]["holderIdentity"]
                .as_str()
                .is_some_and(|h| h.starts_with(token.as_str())),
            "{lease}"
        );
    }
    // The controller's own metrics: shard 0 leads, its one rollout is Invalid.
    let text = scrape(&first_running);
    for line in [
        "canary_controller_leader 1",
        "canary_controller_rollouts{phase=\"Invalid\"} 1",
        "canary_controller_rollouts{phase=\"Progressing\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

/// `GET /metrics` of a controller started with `--metrics-addr 127.0.0.1:0` (the address
/// it prints), as plain HTTP/1.0.
fn scrape(running: &Running) -> String {
    use std::io::{Read, Write};
    let stderr = running.stderr();
    let address = stderr
        .lines()
        .find_map(|l| l.strip_prefix("canary controller: metrics at http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("the metrics address in:\n{stderr}"))
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: controller\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    answer
}

/// A leader stopped by SIGTERM (a rolling update, a node drain) stops its rollouts, then
/// gives its Lease up (exit 130): the standby leads at its next look, without waiting out
/// the lease — its takeover is the Lease's next write after the release, not an expiry.
#[test]
fn a_leader_stopped_by_sigterm_releases_its_lease_to_the_standby() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(canary_fake_kube_api::FakeApiServer::start());
    fake.serve_status_subresource(GROUP, RESOURCE);
    fake.insert(json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"revision": "v1", "policy": {"service": NAME, "checks": "not a list"}},
    }));
    let dir = tempfile::tempdir().unwrap();
    let spawn = |holder: &str| {
        let kubeconfig = dir.path().join(format!("kubeconfig-{holder}"));
        std::fs::write(&kubeconfig, fake.kubeconfig_with_token(NS, holder)).unwrap();
        let mut command = Command::new(binary("canary"));
        command
            .args(["controller", "run", "--namespace", NS])
            .args(["--lease-namespace", CONTROLLER_NS])
            // A lease far longer than the test: only a release lets the standby lead.
            .args(["--lease-duration", "600s", "--lease-renew-deadline", "300s"])
            .args(["--lease-retry-period", "200ms"])
            .env("KUBECONFIG", &kubeconfig)
            .env("CANARY_HOLDER", holder)
            .stdin(Stdio::null());
        Running::spawn(&mut command)
    };
    let mut leader = spawn("controller-a");
    assert!(
        wait_until(Duration::from_secs(20), || leader
            .stderr()
            .contains("canary controller: leading")),
        "{}",
        leader.stderr()
    );
    let standby = spawn("controller-b");
    assert!(
        wait_until(Duration::from_secs(20), || standby
            .stderr()
            .contains("standing by")),
        "{}",
        standby.stderr()
    );
    signal(&leader, nix::sys::signal::Signal::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(20), || matches!(
            leader.child.try_wait(),
            Ok(Some(_))
        )),
        "the leader stopped: {}",
        leader.stderr()
    );
    assert_eq!(
        leader.child.wait().unwrap().code(),
        Some(130),
        "{}",
        leader.stderr()
    );
    assert!(
        leader.stderr().contains("is released"),
        "{}",
        leader.stderr()
    );
    assert!(
        wait_until(Duration::from_secs(20), || standby
            .stderr()
            .contains("canary controller: leading")),
        "the standby leads long before the 600 s lease could run out: {}",
        standby.stderr()
    );
    let lease_writes: Vec<(Option<String>, Value)> = fake
        .requests_with("PUT")
        .into_iter()
        .filter(|r| r.path.ends_with("/leases/canary-controller") && r.status == 200)
        .map(|r| (r.token, r.body.unwrap_or_default()))
        .collect();
    let released = lease_writes
        .iter()
        .rposition(|(token, _)| token.as_deref() == Some("controller-a"))
        .expect("the leader's writes of its Lease");
    assert!(
        lease_writes[released].1["spec"]["holderIdentity"].is_null(),
        "the leader's last Lease write empties the holder: {:?}",
        lease_writes[released]
    );
    assert!(
        lease_writes[released + 1..]
            .iter()
            .all(|(token, _)| token.as_deref() == Some("controller-b")),
        "{lease_writes:?}"
    );
}

/// The leader's renewals are lost in the network (the fake never answers its Lease requests)
/// while the rest of its traffic flows: it stays up, waiting on a renewal that never comes
/// back, with every rollout task running. Its fence closes at its renew deadline (3 s after
/// its last renewal began), a second before the standby may lead: from then on it writes
/// nothing — no weight, state, status or Event — while the standby takes over and promotes
/// at the rollout's step. (Without the fence it goes on saving state and status every tick,
/// and takes the rollout's claim back from the new leader.)
#[test]
fn a_leader_cut_off_from_its_lease_stops_writing_at_its_renew_deadline() {
    let world = World::start(&[]);
    install(&world, "v8");
    let mut leader = Running::spawn(&mut controller(&world, "controller-a"));
    assert!(
        wait_until(Duration::from_secs(60), || world.canary_weights().last()
            == Some(&25)),
        "the leader reached 25%: weights {:?}\n{}",
        world.canary_weights(),
        leader.stderr()
    );
    let standby = Running::spawn(&mut controller(&world, "controller-b"));
    assert!(
        wait_until(Duration::from_secs(20), || standby
            .stderr()
            .contains("standing by")),
        "{}",
        standby.stderr()
    );
    world.fake.never_answer("controller-a", "/leases/");
    // Its last renewal began before this: its fence is closed 3 s later, whatever happens.
    std::thread::sleep(Duration::from_millis(3_300));
    let fenced_at = writes_by(&world, "controller-a");
    assert!(
        wait_until(Duration::from_secs(90), || status(&world)["phase"]
            == "Promoted"),
        "promoted by the new leader: status {}\nweights {:?}\n{}\n{}",
        status(&world),
        world.canary_weights(),
        standby.stderr(),
        leader.stderr()
    );
    assert!(
        matches!(leader.child.try_wait(), Ok(None)),
        "the cut-off leader is still up (its renewal has not timed out): {}",
        leader.stderr()
    );
    let after: Vec<String> = writes_by(&world, "controller-a")
        .into_iter()
        .skip(fenced_at.len())
        .collect();
    assert!(
        after.is_empty(),
        "the cut-off leader wrote after its renew deadline: {after:?}\n{}",
        leader.stderr()
    );
    let weights = world.canary_weights();
    assert_eq!(
        weights.iter().filter(|w| **w == 10).count(),
        1,
        "resumed at its step: {weights:?}"
    );
    assert_eq!(weights.last(), Some(&100), "{weights:?}");
}

/// A rollout ticking in one step writes its state once a tick, and its status only when
/// what the status shows changes (phase, step, weight, a criterion's verdict, a
/// condition): a status whose reasons' numbers alone moved waits for `--status-refresh`.
/// One write per rollout per tick, not two (issue 16's target); the numbers of every tick
/// stay in the state, for `canary status --kube`.
#[test]
fn a_ticking_rollout_writes_its_status_only_when_what_it_shows_changes() {
    let world = World::start(&[]);
    install_ticking(&world, "v1", "2s");
    let running = Running::spawn(&mut controller(&world, "controller-a"));
    let configmap = format!("/api/v1/namespaces/{NS}/configmaps/canaryrollout-{NAME}");
    let saves = || {
        world
            .fake
            .requests_with("PATCH")
            .into_iter()
            .filter(|r| r.path == configmap)
            .filter(|r| {
                r.body
                    .as_ref()
                    .is_some_and(|b| b["data"].get("rollout.json").is_some())
            })
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(60), || saves() >= 8),
        "eight ticks saved: weights {:?}\n{}",
        world.canary_weights(),
        running.stderr()
    );
    let statuses: Vec<Value> = world
        .fake
        .requests_with("PATCH")
        .into_iter()
        .filter(|r| r.path.ends_with(&format!("/canaryrollouts/{NAME}/status")))
        .filter_map(|r| r.body.map(|b| b["status"].clone()))
        .collect();
    let shown = |status: &Value| {
        let mut status = status.clone();
        status["reason"] = Value::Null;
        for criterion in status["criteria"].as_array_mut().into_iter().flatten() {
            criterion["reason"] = Value::Null;
        }
        for condition in status["conditions"].as_array_mut().into_iter().flatten() {
            condition["message"] = Value::Null;
        }
        status
    };
    let repeated: Vec<&Value> = statuses
        .windows(2)
        .filter(|pair| shown(&pair[0]) == shown(&pair[1]))
        .map(|pair| &pair[1])
        .collect();
    assert!(
        repeated.is_empty(),
        "{} of {} status writes in {} ticks changed nothing but the text: {repeated:#?}",
        repeated.len(),
        statuses.len(),
        saves()
    );
    assert!(
        statuses.len() < saves(),
        "{} status writes for {} state saves",
        statuses.len(),
        saves()
    );
}

/// The API requests of one waiting rollout under the controller, per tick: its ConfigMap is
/// read by the claim's check (one GET a tick; the save is guarded by the version its last
/// save produced and reads nothing), and written once a tick (the save, which renews the
/// claim): no heartbeat per rollout (the Lease is the controller's) and no read of the
/// ConfigMap every second for control requests. Before, at 3 s ticks, the polls alone were
/// three reads a tick and the heartbeat a read and a write every 5 s; then two reads a tick,
/// the save's read being the second.
#[test]
fn a_waiting_rollout_reads_its_configmap_once_a_tick_and_beats_no_heartbeat() {
    let world = World::start(&[]);
    install_ticking(&world, "v1", "3s");
    let running = at_ten_percent(&world);
    let configmap = format!("/api/v1/namespaces/{NS}/configmaps/canaryrollout-{NAME}");
    let of_configmap = |method: &str| -> Vec<canary_fake_kube_api::Recorded> {
        world
            .fake
            .requests_with(method)
            .into_iter()
            .filter(|r| r.path == configmap)
            .collect()
    };
    let saves = |patches: &[canary_fake_kube_api::Recorded]| {
        patches
            .iter()
            .filter(|r| {
                r.body
                    .as_ref()
                    .is_some_and(|b| b["data"].get("rollout.json").is_some())
            })
            .count()
    };
    let (gets_before, patches_before) = (of_configmap("GET").len(), of_configmap("PATCH").len());
    let saves_before = saves(&of_configmap("PATCH"));
    // Four more ticks (each saves the state once).
    assert!(
        wait_until(Duration::from_secs(60), || saves(&of_configmap("PATCH"))
            >= saves_before + 4),
        "four ticks saved\n{}",
        running.stderr()
    );
    let patches = of_configmap("PATCH");
    let ticks = saves(&patches) - saves_before;
    let gets = of_configmap("GET").len() - gets_before;
    let other_patches = (patches.len() - patches_before) - ticks;
    assert_eq!(
        other_patches,
        0,
        "no heartbeat or other write of the ConfigMap; the keys each write changed: {:?}",
        &patches[patches_before..]
            .iter()
            .map(|r| r.body.as_ref().map(|b| {
                b["data"]
                    .as_object()
                    .map(|d| d.keys().cloned().collect::<Vec<_>>())
            }))
            .collect::<Vec<_>>()
    );
    // One a tick; one more for a read that ran across the count.
    assert!(
        gets <= ticks + 1,
        "{gets} reads of the ConfigMap in {ticks} ticks\n{}",
        running.stderr()
    );
}
