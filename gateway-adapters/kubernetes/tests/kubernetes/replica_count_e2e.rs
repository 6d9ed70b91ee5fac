//! `canary rollout` end to end with the `replica-count` router (issue 18): the binary against
//! the API fake acting as a Deployment controller, a real Prometheus judging the demo
//! services. Pods that become ready: the rollout goes 10 → 50 → 100 % in whole pods and
//! promotes (exit 0). Canary pods that never become ready: the first step is an error naming
//! the Deployment (exit 4, report verdict `error`), not a rollout judged at a silent 0 %.

use serde_json::Value;

use crate::replica_count::deployment;
use crate::rollout_e2e::{TIMING, World, finish, path};
use crate::support::NS;
use canary_tests::policy::TestPolicy;

/// The world of `rollout_e2e` with two Deployments, stable at 10 ready pods and canary at 0,
/// their pods ready 2 reads after each scale.
fn world() -> World {
    let world = World::start(&[]);
    world.fake.insert(deployment("stable", 10));
    world.fake.insert(deployment("canary", 0));
    world.fake.run_deployment_controller(2);
    world
}

fn policy(world: &World) -> std::path::PathBuf {
    TestPolicy::new("e2e")
        .selector(r#"job="demo""#)
        .prometheus(&world.prometheus.url(), "    timeout: 5s\n")
        .rollout(&format!("  steps: [10, 50, 100]\n{TIMING}\n"))
        .gateway(
            "  replica-count:\n    stable-deployment: checkout-stable\n    canary-deployment: checkout-canary\n    replicas: 10\n    ready-timeout: 3s\n",
        )
        .write(world.dir.path(), "e2e.yaml")
}

fn replicas(world: &World, name: &str) -> i64 {
    world.fake.object("apps", "deployments", NS, name).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

/// The canary Deployment's `spec.replicas` of each successful PATCH, in order.
fn canary_scales(world: &World) -> Vec<u64> {
    world
        .fake
        .requests_with("PATCH")
        .iter()
        .filter(|r| r.path.ends_with("/deployments/checkout-canary") && r.status == 200)
        .filter_map(|r| {
            let body = r.body.as_ref()?;
            match body.as_array() {
                Some(ops) => ops.iter().find_map(|op| {
                    (op["path"] == "/spec/replicas").then(|| op["value"].as_u64())?
                }),
                None => body.pointer("/spec/replicas")?.as_u64(),
            }
        })
        .collect()
}

#[test]
fn a_replica_count_rollout_moves_whole_pods_and_promotes() {
    let world = world();
    let policy = policy(&world);
    let report = world.dir.path().join("report.json");
    let run = finish(&mut world.canary(
        &[
            "rollout",
            "--policy",
            path(&policy),
            "--output",
            &format!("json:{}", report.display()),
        ],
        "runner-1 job 7",
    ));
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(world.phase(), "promoted");
    // 10 % and 50 % of 10 pods are 1 and 5 canary pods; 100 % is all 10.
    let scales = canary_scales(&world);
    assert_eq!(scales.first(), Some(&1), "{scales:?}");
    assert!(
        scales.contains(&5) && scales.last() == Some(&10),
        "{scales:?}"
    );
    assert_eq!(replicas(&world, "checkout-canary"), 10);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["verdict"], "pass", "{report}");
}

#[test]
fn canary_pods_that_never_become_ready_stop_the_rollout_with_exit_4() {
    let world = world();
    world.fake.pods_never_ready("checkout-canary");
    let policy = policy(&world);
    let report = world.dir.path().join("report.json");
    let run = finish(&mut world.canary(
        &[
            "rollout",
            "--policy",
            path(&policy),
            "--output",
            &format!("json:{}", report.display()),
        ],
        "runner-1 job 8",
    ));
    assert_eq!(run.code, Some(4), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "Deployment shop/checkout-canary: 0 of 1 pods ready after 3s (ready-timeout)"
        ),
        "{}",
        run.stderr
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["verdict"], "error", "{report}");
    // The stable version kept its pods: nothing was judged on a canary that never served.
    assert_eq!(replicas(&world, "checkout-stable"), 10);
}
