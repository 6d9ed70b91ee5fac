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

/// The controller's manifests (examples/kubernetes/controller/controller.yaml) are typed
/// Kubernetes objects, and hang together: the Deployment runs as the ServiceAccount the
/// ClusterRole is bound to, with one replica replaced by `Recreate` (no leader election
/// yet: two controllers must never run at once), and every role in the file is bound.
#[test]
fn the_controller_manifests_bind_every_role_to_the_deployments_service_account() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let mut accounts = Vec::new();
    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    let mut deployments = Vec::new();
    for document in example_documents("controller/controller.yaml") {
        match document["kind"].as_str() {
            Some("Namespace") => {}
            Some("ServiceAccount") => {
                accounts.push(serde_json::from_value::<ServiceAccount>(document).unwrap());
            }
            Some("ClusterRole") => {
                roles.push(serde_json::from_value::<ClusterRole>(document).unwrap());
            }
            Some("ClusterRoleBinding") => {
                bindings.push(serde_json::from_value::<ClusterRoleBinding>(document).unwrap());
            }
            Some("Deployment") => {
                deployments.push(serde_json::from_value::<Deployment>(document).unwrap());
            }
            other => panic!("controller.yaml: unexpected kind {other:?}"),
        }
    }
    let [account] = accounts.as_slice() else {
        panic!("one ServiceAccount: {accounts:?}")
    };
    let [deployment] = deployments.as_slice() else {
        panic!("one Deployment")
    };
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(
        spec.replicas,
        Some(1),
        "no leader election yet: one replica"
    );
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "the old controller is gone before the new one starts"
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name, account.metadata.name);
    assert_eq!(
        deployment.metadata.namespace, account.metadata.namespace,
        "the Deployment runs beside its ServiceAccount"
    );
    let args = pod.containers[0].args.clone().unwrap_or_default();
    assert_eq!(args[..2], ["controller", "run"], "{args:?}");
    assert!(!roles.is_empty());
    for role in &roles {
        let name = role.metadata.name.as_deref().unwrap();
        assert!(
            bindings.iter().any(|b| b.role_ref.kind == "ClusterRole"
                && b.role_ref.name == name
                && b.subjects
                    .iter()
                    .flatten()
                    .any(|s| s.kind == "ServiceAccount"
                        && Some(&s.name) == account.metadata.name.as_ref()
                        && s.namespace == account.metadata.namespace)),
            "the ClusterRole {name} is not bound to the controller's ServiceAccount"
        );
    }
    for binding in &bindings {
        assert!(
            roles
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())),
            "the binding of {} names no role of the file",
            binding.role_ref.name
        );
    }
}
