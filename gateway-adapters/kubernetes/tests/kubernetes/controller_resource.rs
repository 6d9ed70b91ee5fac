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
/// Kubernetes objects, and hang together: the Deployment runs two replicas (a leader and a
/// standby, leader election on the Lease its Role grants), updated by `RollingUpdate` that
/// never takes a pod away before its replacement runs, a PodDisruptionBudget keeps one
/// replica through a drain, the pods know their namespace (the Lease's), and every role in
/// the file, cluster-wide or namespaced, is bound to the Deployment's ServiceAccount.
#[test]
fn the_controller_manifests_bind_every_role_to_the_deployments_service_account() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let mut accounts = Vec::new();
    // (kind, namespace, name) of every role, and of every binding's role with its subjects.
    let mut roles: Vec<(&str, Option<String>, String)> = Vec::new();
    let mut bindings: Vec<(
        String,
        Option<String>,
        String,
        Vec<k8s_openapi::api::rbac::v1::Subject>,
    )> = Vec::new();
    let mut deployments = Vec::new();
    let mut budgets = Vec::new();
    let mut services = Vec::new();
    for document in example_documents("controller/controller.yaml") {
        match document["kind"].as_str() {
            Some("Namespace") => {}
            Some("ServiceAccount") => {
                accounts.push(serde_json::from_value::<ServiceAccount>(document).unwrap());
            }
            Some("ClusterRole") => {
                let role = serde_json::from_value::<ClusterRole>(document).unwrap();
                roles.push(("ClusterRole", None, role.metadata.name.unwrap()));
            }
            Some("Role") => {
                let role = serde_json::from_value::<Role>(document).unwrap();
                roles.push(("Role", role.metadata.namespace, role.metadata.name.unwrap()));
            }
            Some("ClusterRoleBinding") => {
                let binding = serde_json::from_value::<ClusterRoleBinding>(document).unwrap();
                bindings.push((
                    binding.role_ref.kind,
                    None,
                    binding.role_ref.name,
                    binding.subjects.unwrap_or_default(),
                ));
            }
            Some("RoleBinding") => {
                let binding = serde_json::from_value::<RoleBinding>(document).unwrap();
                bindings.push((
                    binding.role_ref.kind,
                    binding.metadata.namespace,
                    binding.role_ref.name,
                    binding.subjects.unwrap_or_default(),
                ));
            }
            Some("Deployment") => {
                deployments.push(serde_json::from_value::<Deployment>(document).unwrap());
            }
            Some("Service") => {
                services.push(
                    serde_json::from_value::<k8s_openapi::api::core::v1::Service>(document)
                        .unwrap(),
                );
            }
            Some("PodDisruptionBudget") => {
                budgets.push(serde_json::from_value::<PodDisruptionBudget>(document).unwrap());
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
    assert_eq!(spec.replicas, Some(2), "a leader and a standby");
    let strategy = spec.strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(
        strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.max_unavailable.clone()),
        Some(IntOrString::Int(0)),
        "an update starts the new pod before it stops an old one"
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name, account.metadata.name);
    assert_eq!(
        deployment.metadata.namespace, account.metadata.namespace,
        "the Deployment runs beside its ServiceAccount"
    );
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(args[..2], ["controller", "run"], "{args:?}");
    let lease_name = args
        .iter()
        .find_map(|a| a.strip_prefix("--lease-name="))
        .unwrap_or("canary-controller");
    let pod_namespace = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "POD_NAMESPACE")
        .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
        .map(|f| f.field_path.clone());
    assert_eq!(
        pod_namespace.as_deref(),
        Some("metadata.namespace"),
        "the Lease is in the pod's namespace"
    );
    let [budget] = budgets.as_slice() else {
        panic!("one PodDisruptionBudget: {budgets:?}")
    };
    let budget_spec = budget.spec.as_ref().unwrap();
    assert_eq!(budget_spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(
        budget_spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        spec.selector.match_labels,
        "the budget covers the Deployment's pods"
    );
    assert_eq!(budget.metadata.namespace, deployment.metadata.namespace);
    // The metrics Service reaches the port the controller serves its metrics on.
    let [service] = services.as_slice() else {
        panic!("one Service: {services:?}")
    };
    let service_spec = service.spec.as_ref().unwrap();
    assert_eq!(service_spec.selector, spec.selector.match_labels);
    let port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("a port named metrics");
    assert!(
        args.contains(&format!("--metrics-addr=0.0.0.0:{}", port.container_port)),
        "{args:?}"
    );
    assert!(
        service_spec
            .ports
            .iter()
            .flatten()
            .any(|p| p.target_port == Some(IntOrString::String("metrics".to_owned())))
    );
    // The leader-election Role grants the Deployment's Lease, in its namespace.
    let lease_role = example_documents("controller/controller.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Role")
        .map(|d| serde_json::from_value::<Role>(d).unwrap())
        .expect("a Role for the Lease");
    assert_eq!(lease_role.metadata.namespace, deployment.metadata.namespace);
    assert!(
        lease_role.rules.iter().flatten().any(|r| r
            .resource_names
            .iter()
            .flatten()
            .any(|n| n == lease_name)),
        "the Role names the Lease {lease_name}"
    );
    assert!(!roles.is_empty());
    for (kind, namespace, name) in &roles {
        assert!(
            bindings
                .iter()
                .any(
                    |(bound_kind, bound_namespace, bound, subjects)| bound_kind == kind
                        && bound == name
                        && bound_namespace == namespace
                        && subjects.iter().any(|s| s.kind == "ServiceAccount"
                            && Some(&s.name) == account.metadata.name.as_ref()
                            && s.namespace == account.metadata.namespace)
                ),
            "the {kind} {name} is not bound to the controller's ServiceAccount"
        );
    }
    for (kind, namespace, name, _) in &bindings {
        assert!(
            roles
                .iter()
                .any(|(k, ns, n)| k == kind && n == name && ns == namespace),
            "the binding of the {kind} {name} names no role of the file"
        );
    }
}
