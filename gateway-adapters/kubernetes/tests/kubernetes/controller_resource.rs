//! The `CanaryRollout` custom resource: the checked-in CRD is what `canary controller crd`
//! generates from the Rust types, and the example resources read as the type and hold a
//! valid policy.

use canary_kubernetes::controller::{CanaryRollout, PolicyOrigin, crd_yaml, resource};
use serde_json::Value;

use crate::support::{example_documents, examples_dir};

/// The checked-in CRD must be regenerated when the types change:
/// `cargo run -- controller crd > examples/kubernetes/controller/crd.yaml`.
#[test]
fn the_checked_in_crd_is_the_one_the_types_generate() {
    let path = examples_dir().join("controller/crd.yaml");
    let checked_in =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        checked_in == crd_yaml(),
        "{} differs from `canary controller crd`; regenerate it with\n  cargo run -- controller crd > examples/kubernetes/controller/crd.yaml",
        path.display()
    );
}

#[test]
fn the_example_rollout_reads_as_the_type_and_its_policy_is_valid() {
    let documents = example_documents("controller/rollout.yaml");
    let rollout: Value = documents
        .into_iter()
        .find(|d| d["kind"] == "CanaryRollout")
        .expect("a CanaryRollout in controller/rollout.yaml");
    let rollout: CanaryRollout = serde_json::from_value(rollout).unwrap();
    let PolicyOrigin::Inline(policy) = rollout.spec.policy_origin().unwrap() else {
        panic!("the example's policy is inline");
    };
    let policy = resource::inline_policy(policy, &resource::describe(&rollout))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.service, "checkout");
    rollout.spec.rolled().unwrap();
}
