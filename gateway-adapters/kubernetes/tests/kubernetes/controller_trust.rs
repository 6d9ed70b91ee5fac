//! A CanaryRollout's policy is written by whoever may create one in some namespace, not by
//! the controller's operator: `canary controller run` refuses a policy that would read the
//! controller's own files or environment, or run a program in it (a bearer token "file"
//! pointing at the controller's ServiceAccount token would send that token to a server of
//! the policy author's choosing), unless it was started with `--allow-local-access`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_tests::policy::TestPolicy;
use canary_tests::{binary, wait_until};
use serde_json::{Value, json};

use crate::rollout_e2e::Running;
use crate::support::{NS, http_route};

const GROUP: &str = "canary.dev";
const RESOURCE: &str = "canaryrollouts";

/// A server standing in for the policy author's: it keeps the request lines and headers
/// of every connection it gets, and answers nothing.
struct Collector {
    port: u16,
    heard: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let reader = BufReader::new(stream);
                    for line in reader.lines().map_while(Result::ok) {
                        if line.is_empty() {
                            break;
                        }
                        sink.lock().unwrap().push(line);
                    }
                });
            }
        });
        Collector { port, heard }
    }

    fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }
}

fn controller(
    fake: &canary_fake_kube_api::FakeApiServer,
    dir: &std::path::Path,
    extra: &[&str],
) -> Running {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig(NS)).unwrap();
    let mut command = Command::new(binary("canary"));
    command
        .args(["controller", "run", "--namespace", NS])
        .args(["--lease-namespace", "canary-system"])
        // A short Lease, so that the second controller need not wait long for the first's.
        .args(["--lease-duration", "4s", "--lease-renew-deadline", "3s"])
        .args(["--lease-retry-period", "500ms", "--retry-after", "1s"])
        .args(extra)
        .env("KUBECONFIG", &kubeconfig)
        .env("CANARY_HOLDER", "controller")
        .stdin(Stdio::null());
    Running::spawn(&mut command)
}

#[test]
fn a_policy_reading_the_controllers_files_is_refused_unless_the_operator_allows_it() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(canary_fake_kube_api::FakeApiServer::start());
    fake.serve_status_subresource(GROUP, RESOURCE);
    fake.insert(http_route());
    let dir = tempfile::tempdir().unwrap();
    // What a pod's ServiceAccount token file would be to the controller.
    let token = dir.path().join("token");
    std::fs::write(&token, "controller-service-account-token-1234").unwrap();
    let collector = Collector::start();
    let policy_path = TestPolicy::new("checkout")
        .selector(r#"job="checkout""#)
        .prometheus(
            &format!("http://127.0.0.1:{}", collector.port),
            &format!("    bearer-token-file: {}\n", token.display()),
        )
        .gateway(
            "  http-route:\n    name: checkout\n    rule: api\n    stable: checkout-stable\n    canary: checkout-canary\n",
        )
        .write(dir.path(), "policy.yaml");
    let text = std::fs::read_to_string(policy_path).unwrap();
    let policy: Value = serde_saphyr::from_str(&text).unwrap();
    fake.insert(json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "checkout", "namespace": NS, "generation": 1},
        "spec": {"revision": "v2", "policy": policy},
    }));
    let status = || {
        fake.object(GROUP, RESOURCE, NS, "checkout")
            .map(|o| o["status"].clone())
            .unwrap_or(Value::Null)
    };

    let refused = controller(&fake, dir.path(), &[]);
    assert!(
        wait_until(Duration::from_secs(30), || status()["phase"] == "Invalid"),
        "refused as invalid: {}\n{}",
        status(),
        refused.stderr()
    );
    let degraded = status()["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .cloned()
        .unwrap();
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "metrics.prometheus.auth.bearer: reads the file {}",
            token.display()
        )),
        "{message}"
    );
    assert!(message.contains("--allow-local-access"), "{message}");
    // Time for a read, had one been sent: nothing was.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(collector.heard(), Vec::<String>::new(), "nothing sent");
    drop(refused);
    let started = std::time::Instant::now();

    // The operator who trusts every author opts in: the same policy is read and its token
    // sent (to the server it names), which is what the refusal above kept from happening.
    let allowed = controller(&fake, dir.path(), &["--allow-local-access"]);
    assert!(
        wait_until(Duration::from_secs(30), || collector.heard().iter().any(
            |l| l.eq_ignore_ascii_case(
                "authorization: Bearer controller-service-account-token-1234"
            )
        )),
        "the pre-flight read, with the token, within {:?}: {:?}\n{}",
        started.elapsed(),
        collector.heard(),
        allowed.stderr()
    );
}

/// The fake API with the CanaryRollout `checkout` in [`NS`] whose policy is `policy`.
fn fake_with_rollout(
    runtime: &tokio::runtime::Runtime,
    policy: &TestPolicy,
) -> canary_fake_kube_api::FakeApiServer {
    let fake = runtime.block_on(canary_fake_kube_api::FakeApiServer::start());
    fake.serve_status_subresource(GROUP, RESOURCE);
    let policy: Value = serde_saphyr::from_str(&policy.yaml()).unwrap();
    fake.insert(json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "checkout", "namespace": NS, "generation": 1},
        "spec": {"revision": "v2", "policy": policy},
    }));
    fake
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The status of the CanaryRollout `checkout`, and its `Degraded` condition's message.
fn status_of(fake: &canary_fake_kube_api::FakeApiServer) -> (Value, String) {
    let status = fake
        .object(GROUP, RESOURCE, NS, "checkout")
        .map(|o| o["status"].clone())
        .unwrap_or(Value::Null);
    let message = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Degraded")
        .and_then(|c| c["message"].as_str())
        .unwrap_or("")
        .to_owned();
    (status, message)
}

#[test]
fn a_gateway_that_runs_programs_in_the_controller_is_refused_and_nothing_runs() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    // Both commands would leave `ran` behind: the pre-flight reads the weight with `get`
    // before anything else, and `set` moves it.
    let touch = format!("touch {}; echo 0", ran.display());
    let policy = TestPolicy::new("checkout")
        .selector(r#"job="checkout""#)
        // Nothing listens there: with the flag, the pre-flight gets past the gateway's read
        // and stops at the metrics.
        .prometheus("http://127.0.0.1:1", "")
        .gateway(&format!(
            "  command:\n    set: [sh, -c, {touch:?}]\n    get: [sh, -c, {touch:?}]\n"
        ));
    let fake = fake_with_rollout(&runtime, &policy);

    let refused = controller(&fake, dir.path(), &[]);
    assert!(
        wait_until(Duration::from_secs(30), || status_of(&fake).0["phase"]
            == "Invalid"),
        "refused as invalid: {}\n{}",
        status_of(&fake).0,
        refused.stderr()
    );
    let (_, message) = status_of(&fake);
    assert!(
        message.contains("gateway.command.set: runs the program sh"),
        "{message}"
    );
    assert!(
        message.contains("gateway.command.get: runs the program sh"),
        "{message}"
    );
    assert!(message.contains("--allow-local-access"), "{message}");
    // Time for a run, had one started: none did.
    std::thread::sleep(Duration::from_secs(1));
    assert!(!ran.exists(), "the gateway's command ran");
    drop(refused);

    // The operator who trusts every author opts in: the same gateway runs its command.
    let allowed = controller(&fake, dir.path(), &["--allow-local-access"]);
    assert!(
        wait_until(Duration::from_secs(30), || ran.exists()),
        "the pre-flight ran `get` under --allow-local-access\n{}",
        allowed.stderr()
    );
}

#[test]
fn a_policy_naming_another_namespace_is_refused_and_nothing_there_is_written() {
    const OTHER: &str = "payments";
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let policy = TestPolicy::new("checkout")
        .selector(r#"job="checkout""#)
        .prometheus("http://127.0.0.1:1", "")
        .gateway(&format!(
            "  http-route:\n    name: checkout\n    namespace: {OTHER}\n    rule: api\n    stable: checkout-stable\n    canary: checkout-canary\n"
        ))
        .extra(&format!(
            "promotion:\n  kubernetes:\n    stable-deployment: checkout-stable\n    canary-deployment: checkout-canary\n    namespace: {OTHER}\n"
        ));
    let fake = fake_with_rollout(&runtime, &policy);
    let mut route = http_route();
    route["metadata"]["namespace"] = json!(OTHER);
    fake.insert(route);
    let in_other = format!("/namespaces/{OTHER}/");
    let touched_other = |fake: &canary_fake_kube_api::FakeApiServer| -> Vec<String> {
        fake.requests()
            .into_iter()
            .filter(|r| r.path.contains(&in_other))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    };

    let refused = controller(&fake, dir.path(), &[]);
    assert!(
        wait_until(Duration::from_secs(30), || status_of(&fake).0["phase"]
            == "Invalid"),
        "refused as invalid: {}\n{}",
        status_of(&fake).0,
        refused.stderr()
    );
    let (_, message) = status_of(&fake);
    for expected in [
        format!("gateway.http-route.namespace names namespace {OTHER}"),
        format!("promotion.kubernetes.namespace names namespace {OTHER}"),
        format!("other than its CanaryRollout's ({NS})"),
        "--allow-cross-namespace".to_owned(),
    ] {
        assert!(message.contains(&expected), "{expected:?} in {message}");
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        touched_other(&fake),
        Vec::<String>::new(),
        "nothing in {OTHER}"
    );
    drop(refused);

    // Opted in, the controller reaches into the other namespace: its pre-flight reads the
    // route there (and would go on to write it), which the refusal kept from happening.
    let allowed = controller(&fake, dir.path(), &["--allow-cross-namespace"]);
    assert!(
        wait_until(Duration::from_secs(30), || !touched_other(&fake).is_empty()),
        "the pre-flight read the route in {OTHER} under --allow-cross-namespace\n{}",
        allowed.stderr()
    );
    assert!(
        touched_other(&fake).iter().all(|r| r.starts_with("GET ")),
        "only the pre-flight's read: the metrics are unreachable {:?}",
        touched_other(&fake)
    );
}
