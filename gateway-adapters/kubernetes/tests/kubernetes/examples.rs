//! The custom resources among the Kubernetes manifests of `examples/` (HTTPRoute,
//! VirtualService, TrafficSplit, TraefikService, IngressRoute) held to their schemas, unknown
//! fields included. The projects' published CRDs cannot be fetched where canary is tested,
//! so: the HTTPRoute goes through `gateway-api`'s typed resource and back (a field it does
//! not know is lost, and fails the test); the others are checked against the structural
//! schemas of `schemas.rs`, written down from the upstream CRDs. The built-in kinds are
//! validated by `kubernetes-validate --strict` against every Kubernetes version the
//! manifests claim (tests/lint-dist.sh).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::schemas::validate;

/// Every YAML file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
}

/// The documents of every Kubernetes manifest (a YAML document with `apiVersion` and `kind`)
/// under `examples/`, with the file each comes from.
fn example_manifests() -> Vec<(String, Value)> {
    let root = crate::support::examples_dir()
        .parent()
        .expect("examples/")
        .to_path_buf();
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    let mut manifests = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(&root).unwrap().display().to_string();
        let Ok(documents) = serde_saphyr::from_multiple::<Value>(&text) else {
            // Not plain YAML (the local stack's policy template): no manifest.
            continue;
        };
        for document in documents {
            if document.get("apiVersion").is_some() && document.get("kind").is_some() {
                manifests.push((name.clone(), document));
            }
        }
    }
    manifests
}

/// An API group that the API server itself serves (and kubernetes-validate knows).
fn built_in(api_version: &str) -> bool {
    match api_version.split_once('/') {
        None => true,
        Some((group, _)) => {
            group.ends_with(".k8s.io") && group != "gateway.networking.k8s.io"
                || ["apps", "batch", "autoscaling", "policy"].contains(&group)
        }
    }
}

#[test]
fn every_custom_resource_in_the_examples_matches_its_schema() {
    let mut checked = Vec::new();
    for (file, document) in example_manifests() {
        let api_version = document["apiVersion"].as_str().unwrap();
        let kind = document["kind"].as_str().unwrap();
        if built_in(api_version) {
            continue;
        }
        if kind == "CanaryRollout" {
            // canary's own resource: its type is its schema (controller_resource.rs).
            serde_json::from_value::<canary_kubernetes::controller::CanaryRollout>(
                document.clone(),
            )
            .unwrap_or_else(|e| panic!("{file}: not a CanaryRollout: {e}"));
            checked.push(kind.to_owned());
            continue;
        }
        let resource = match kind {
            "HTTPRoute" => "httproutes",
            "VirtualService" => "virtualservices",
            "TrafficSplit" => "trafficsplits",
            "TraefikService" => "traefikservices",
            "IngressRoute" => "ingressroutes",
            other => panic!(
                "{file}: no schema for {other} ({api_version}); add one to schemas.rs and here"
            ),
        };
        validate(resource, &document);
        checked.push(kind.to_owned());
    }
    checked.sort();
    checked.dedup();
    assert_eq!(
        checked,
        [
            "CanaryRollout",
            "HTTPRoute",
            "IngressRoute",
            "TraefikService",
            "TrafficSplit",
            "VirtualService"
        ]
    );
}

/// The checks above fail on what they should: a misspelt field, a field in the wrong place,
/// a weight as a string.
#[test]
fn the_example_checks_catch_unknown_fields_and_wrong_types() {
    let manifests = example_manifests();
    let find = |kind: &str| {
        manifests
            .iter()
            .find(|(_, d)| d["kind"] == kind)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {kind} in examples/"))
    };
    let mut route = find("HTTPRoute");
    route["spec"]["rules"][0]["backendRefs"][1]["wieght"] = Value::from(10);
    let caught = std::panic::catch_unwind(|| validate("httproutes", &route));
    assert!(caught.is_err(), "an unknown HTTPRoute field passed");

    let mut ingress_route = find("IngressRoute");
    ingress_route["spec"]["routes"][0]["servics"] = Value::Array(Vec::new());
    let caught = std::panic::catch_unwind(|| validate("ingressroutes", &ingress_route));
    assert!(caught.is_err(), "an unknown IngressRoute field passed");

    let mut split = find("TrafficSplit");
    split["spec"]["backends"][0]["weight"] = Value::from("100");
    let caught = std::panic::catch_unwind(|| validate("trafficsplits", &split));
    assert!(caught.is_err(), "a string weight passed");
}
