//! The RBAC manifests of `examples/kubernetes/` are real `k8s-openapi` objects, and they are
//! exactly enough: with only its shipped Role granted, each adapter (and the ConfigMap state
//! store) runs without a 403; without any one rule of it, the run fails with a message
//! naming that rule's verb, resource, API group and namespace.

use canary_core::ports::{StateStore, set_and_verify};
use canary_core::rollout::{ControlAction, ControlRequest};
use canary_kubernetes::{ConfigMapStateStore, KubeConnection};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};

use crate::support::{Case, NS, all_cases, chain, example_documents, nginx_ingress_spec};
use canary_fake_kube_api::FakeApiServer;

/// The one Role of a file of `examples/kubernetes/rbac/` or `rbac-optional/` (which also
/// binds it: see [`every_shipped_role_is_bound_in_its_own_file`]).
fn shipped_role(file: &str) -> Role {
    let documents = example_documents(file);
    let roles: Vec<&serde_json::Value> = documents.iter().filter(|d| d["kind"] == "Role").collect();
    assert_eq!(roles.len(), 1, "{file}: one Role per file");
    let role: Role = serde_json::from_value(roles[0].clone())
        .unwrap_or_else(|e| panic!("{file} is not an rbac.authorization.k8s.io/v1 Role: {e}"));
    assert_eq!(role.metadata.namespace.as_deref(), Some(NS), "{file}");
    assert!(
        !role.rules.as_ref().is_none_or(Vec::is_empty),
        "{file}: no rules"
    );
    role
}

fn without_rule(role: &Role, index: usize) -> Role {
    let mut role = role.clone();
    role.rules.as_mut().unwrap().remove(index);
    role
}

/// What a message must name for a missing rule.
fn assert_names(message: &str, rule: &PolicyRule, what: &str) {
    let verb = &rule.verbs[0];
    let resource = &rule.resources.as_ref().unwrap()[0];
    let group = &rule.api_groups.as_ref().unwrap()[0];
    let group_text = if group.is_empty() {
        "the core API group".to_owned()
    } else {
        format!("API group \"{group}\"")
    };
    for needle in [
        format!("forbidden: the RBAC rule `{verb}` on {resource} in {group_text}"),
        format!("in namespace \"{NS}\" is missing"),
        format!("verbs: [\"{verb}\"]"),
    ] {
        assert!(
            message.contains(&needle),
            "{what}: {needle:?} not in:\n{message}"
        );
    }
}

/// A rollout's worth of weight changes through the adapter of `case`; for the NGINX
/// Ingress, starting without the canary Ingress so that it is created.
async fn run_adapter(case: &Case, fake: &FakeApiServer) -> canary_core::Result<()> {
    let router = case.router(fake);
    for weight in [10u8, 50, 0] {
        set_and_verify(router.as_ref(), weight).await?;
    }
    Ok(())
}

async fn fake_for(case: &Case, role: &Role) -> FakeApiServer {
    let fake = case.fake().await;
    fake.grant(std::slice::from_ref(role), &[]);
    fake
}

#[tokio::test]
async fn each_adapter_needs_exactly_its_shipped_role() {
    let mut cases = all_cases();
    // The NGINX Ingress adapter's Role covers creating the canary Ingress too.
    for case in &mut cases {
        if case.resource == "ingresses" {
            case.spec = nginx_ingress_spec(true);
            case.objects.retain(|o| o["metadata"]["name"] == "checkout");
        }
    }
    for case in &cases {
        let role = shipped_role(case.role_file);
        let fake = fake_for(case, &role).await;
        run_adapter(case, &fake)
            .await
            .unwrap_or_else(|e| panic!("{} with {}: {}", case.name, case.role_file, chain(&e)));
        assert!(fake.requests().iter().all(|r| r.status != 403));

        for (i, rule) in role.rules.as_ref().unwrap().iter().enumerate() {
            let fake = fake_for(case, &without_rule(&role, i)).await;
            let err = run_adapter(case, &fake).await.expect_err(&format!(
                "{} ran without rule {i} of {}",
                case.name, case.role_file
            ));
            assert_eq!(err.exit_code(), canary_core::ExitCode::Infrastructure);
            assert_names(
                &chain(&err),
                rule,
                &format!("{} without rule {i}", case.name),
            );
        }
    }
}

/// Everything the state store does in a rollout's life.
async fn run_state_store(fake: &FakeApiServer) -> canary_core::Result<()> {
    let connection = KubeConnection::from_client(fake.client(NS), NS);
    let store = ConfigMapStateStore::new(connection, None, "checkout", None)?;
    let rollout = crate::state_store::a_rollout();
    store.claim(false).await?;
    store.save(&rollout).await?;
    store.load().await?;
    store
        .request(&ControlRequest::for_rollout(
            ControlAction::Promote,
            &rollout,
            jiff::Timestamp::now(),
        ))
        .await?;
    store.take_request().await?;
    store.archive(&rollout).await?;
    store.release().await
}

#[tokio::test]
async fn the_state_store_needs_exactly_its_shipped_role() {
    let role = shipped_role("rbac/state-configmap.yaml");
    let fake = FakeApiServer::start().await;
    fake.grant(std::slice::from_ref(&role), &[]);
    run_state_store(&fake)
        .await
        .unwrap_or_else(|e| panic!("with the shipped Role: {}", chain(&e)));
    for (i, rule) in role.rules.as_ref().unwrap().iter().enumerate() {
        let fake = FakeApiServer::start().await;
        fake.grant(&[without_rule(&role, i)], &[]);
        let err = run_state_store(&fake)
            .await
            .expect_err(&format!("the state store ran without rule {i}"));
        assert_names(&chain(&err), rule, &format!("state store without rule {i}"));
    }
}

/// `kubectl apply -f rbac/` (or any one file of `rbac/` and `rbac-optional/`) grants what it
/// creates: every Role comes with the RoleBinding that gives it to the `canary` service
/// account, in the same file, and every binding names a Role of its own file.
#[test]
fn every_shipped_role_is_bound_in_its_own_file() {
    let service_account: ServiceAccount = serde_json::from_value(
        example_documents("rbac/service-account.yaml")
            .pop()
            .expect("a document"),
    )
    .expect("rbac/service-account.yaml is a ServiceAccount");
    let account = service_account.metadata.name.clone().unwrap();
    let mut files = Vec::new();
    for dir in ["rbac", "rbac-optional"] {
        for entry in std::fs::read_dir(crate::support::examples_dir().join(dir)).unwrap() {
            files.push(format!(
                "{dir}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    files.sort();
    let mut roles_seen = 0;
    for file in files
        .iter()
        .filter(|f| !f.ends_with("service-account.yaml"))
    {
        let mut roles = Vec::new();
        let mut bindings = Vec::new();
        for document in example_documents(file) {
            match document["kind"].as_str() {
                Some("Role") => roles.push(serde_json::from_value::<Role>(document).unwrap()),
                Some("RoleBinding") => {
                    bindings.push(serde_json::from_value::<RoleBinding>(document).unwrap())
                }
                other => panic!("{file}: unexpected kind {other:?}"),
            }
        }
        assert!(!roles.is_empty(), "{file}: no Role");
        for role in &roles {
            let name = role.metadata.name.as_deref().unwrap();
            let bound = bindings.iter().any(|b| {
                b.role_ref.kind == "Role"
                    && b.role_ref.name == name
                    && b.metadata.namespace == role.metadata.namespace
                    && b.subjects.as_ref().is_some_and(|subjects| {
                        subjects.iter().any(|s| {
                            s.kind == "ServiceAccount"
                                && s.name == account
                                && s.namespace == service_account.metadata.namespace
                        })
                    })
            });
            assert!(
                bound,
                "{file}: the Role {name} is not bound to the {account} service account in the same file"
            );
            roles_seen += 1;
        }
        for binding in &bindings {
            assert!(
                roles
                    .iter()
                    .any(|r| r.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())),
                "{file}: the binding of {} names no Role of this file",
                binding.role_ref.name
            );
        }
    }
    assert!(roles_seen >= 7, "only {roles_seen} Roles in {files:?}");
}

#[test]
fn the_other_manifests_are_kubernetes_objects() {
    let documents = example_documents("job.yaml");
    let policy: ConfigMap =
        serde_json::from_value(documents[0].clone()).expect("the policy ConfigMap");
    let text = &policy.data.as_ref().unwrap()["checkout.yaml"];
    let parsed = canary_core::policy::Policy::from_yaml(text, "job.yaml: checkout.yaml")
        .unwrap_or_else(|e| panic!("the Job's policy: {e}"));
    assert!(matches!(
        parsed.gateway,
        Some(canary_core::policy::GatewaySpec::HttpRoute(_))
    ));
    let job: Job = serde_json::from_value(documents[1].clone()).expect("a batch/v1 Job");
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("canary"));
    let args = pod.containers[0].args.clone().unwrap();
    assert!(
        args.contains(&"--state-store=configmap".to_owned()),
        "{args:?}"
    );
    // The root filesystem is read-only: every report goes to a writable volume (an emptyDir
    // or a claim) mounted read-write.
    let container = &pod.containers[0];
    let read_only_root = container
        .security_context
        .as_ref()
        .and_then(|c| c.read_only_root_filesystem);
    assert_eq!(read_only_root, Some(true));
    let volumes = pod.volumes.clone().unwrap_or_default();
    let mounts = container.volume_mounts.clone().unwrap_or_default();
    let outputs: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--output="))
        .map(|o| o.split_once(':').expect("FORMAT:PATH").1)
        .collect();
    assert!(!outputs.is_empty(), "{args:?}");
    for path in outputs {
        let writable = mounts.iter().any(|m| {
            path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/')))
                && m.read_only != Some(true)
                && volumes.iter().any(|v| {
                    v.name == m.name
                        && (v.empty_dir.is_some() || v.persistent_volume_claim.is_some())
                })
        });
        assert!(writable, "job.yaml writes {path}, on no writable volume");
    }
    // The example policies beside them are valid too.
    for file in ["policy.yaml", "policy-k3d.yaml"] {
        let text = std::fs::read_to_string(crate::support::examples_dir().join(file)).unwrap();
        canary_core::policy::Policy::from_yaml(&text, file).unwrap_or_else(|e| panic!("{e}"));
    }
    // The walk-through's cluster: typed where k8s-openapi types it, the TraefikService
    // against its CRD's shape.
    let mut kinds = Vec::new();
    for document in example_documents("demo-k3d.yaml") {
        let kind = document["kind"].as_str().unwrap().to_owned();
        match kind.as_str() {
            "Namespace" => drop(
                serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(document).unwrap(),
            ),
            "Deployment" => drop(
                serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(document).unwrap(),
            ),
            "Service" => drop(
                serde_json::from_value::<k8s_openapi::api::core::v1::Service>(document).unwrap(),
            ),
            "ConfigMap" => drop(serde_json::from_value::<ConfigMap>(document).unwrap()),
            "TraefikService" => crate::schemas::validate("traefikservices", &document),
            "IngressRoute" => assert_eq!(
                document["spec"]["routes"][0]["services"][0]["kind"],
                "TraefikService"
            ),
            other => panic!("unexpected kind {other} in demo-k3d.yaml"),
        }
        kinds.push(kind);
    }
    assert!(kinds.contains(&"TraefikService".to_owned()));
}

#[tokio::test]
async fn the_403_message_in_full() {
    let case = crate::support::http_route_case();
    let role = shipped_role(case.role_file);
    let fake = fake_for(&case, &without_rule(&role, 1)).await;
    let err = run_adapter(&case, &fake).await.unwrap_err();
    assert_eq!(
        chain(&err),
        "kubernetes at HTTPRoute shop/checkout: forbidden: the RBAC rule `patch` on httproutes \
         in API group \"gateway.networking.k8s.io\" (name \"checkout\") in namespace \"shop\" is \
         missing; grant {apiGroups: [\"gateway.networking.k8s.io\"], resources: [\"httproutes\"], \
         verbs: [\"patch\"], resourceNames: [\"checkout\"]} in a Role of namespace shop \
         (examples/kubernetes/ has least-privilege Roles). The API server said: \
         httproutes.gateway.networking.k8s.io \"checkout\" is forbidden: User \
         \"system:serviceaccount:ci:canary\" cannot patch resource \"httproutes\" in API group \
         \"gateway.networking.k8s.io\" in the namespace \"shop\""
    );
    // Nothing was written: the read worked, the patch was refused.
    let statuses: Vec<(String, u16)> = fake
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [("GET".to_owned(), 200), ("PATCH".to_owned(), 403)]
    );
}
