//! Kubernetes objects as the adapters meet them in clusters — each with rules, filters,
//! annotations and other backends that must survive every write — and small helpers for
//! tests that store them in a [`FakeApiServer`](crate::FakeApiServer) and compare what the
//! fake holds afterwards; and the manifests of the workspace's `examples/kubernetes/`.

use std::path::PathBuf;

use serde_json::{Value, json};

/// The namespace everything lives in.
pub const NS: &str = "shop";

/// The workspace's `examples/kubernetes/`.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/kubernetes")
}

/// The YAML documents of a file of `examples/kubernetes/`, as JSON.
pub fn example_documents(file: &str) -> Vec<Value> {
    let path = examples_dir().join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// Sets the value at a JSON pointer, creating the last member if missing.
pub fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = value
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match parent {
        Value::Object(map) => {
            map.insert(last, new);
        }
        Value::Array(list) => list[last.parse::<usize>().expect("an index")] = new,
        other => panic!("{pointer}: cannot set in {other}"),
    }
}

/// A copy of `object` whose resourceVersion is that of `other` (for whole-object equality).
pub fn same_version(object: &Value, other: &Value) -> Value {
    let mut object = object.clone();
    object["metadata"]["resourceVersion"] = other["metadata"]["resourceVersion"].clone();
    object
}

/// A Gateway API HTTPRoute with two rules: `api` (stable and canary, with filters at both
/// levels) and `static` (another backend), plus labels and annotations.
pub fn http_route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "checkout",
            "namespace": NS,
            "labels": {"app": "checkout"},
            "annotations": {"team": "storefront"}
        },
        "spec": {
            "parentRefs": [{"name": "web", "namespace": "infra", "sectionName": "https"}],
            "hostnames": ["shop.example"],
            "rules": [
                {
                    "name": "api",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                    "filters": [{
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"add": [{"name": "x-route", "value": "api"}]}
                    }],
                    "backendRefs": [
                        {"name": "checkout-stable", "port": 8080, "weight": 100},
                        {
                            "name": "checkout-canary", "port": 8080, "weight": 0,
                            "filters": [{
                                "type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"set": [{"name": "x-canary", "value": "1"}]}
                            }]
                        }
                    ]
                },
                {
                    "name": "static",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                    "backendRefs": [{"name": "cdn", "port": 80}]
                }
            ]
        }
    })
}

/// The stable Ingress of ingress-nginx: two hosts, TLS, a default backend elsewhere.
pub fn stable_ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "checkout",
            "namespace": NS,
            "labels": {"app": "checkout"},
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"
            }
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["shop.example"], "secretName": "shop-tls"}],
            "rules": [
                {
                    "host": "shop.example",
                    "http": {"paths": [
                        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "checkout", "port": {"number": 8080}}}},
                        {"path": "/static", "pathType": "Prefix", "backend": {"service": {"name": "cdn", "port": {"name": "http"}}}}
                    ]}
                }
            ]
        }
    })
}

/// A canary Ingress made by hand, with its own annotations that must survive.
pub fn canary_ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "checkout-canary",
            "namespace": NS,
            "annotations": {
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "0",
                "nginx.ingress.kubernetes.io/canary-by-header": "x-canary"
            }
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{
                "host": "shop.example",
                "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "checkout-canary", "port": {"number": 8080}}}}
                ]}
            }]
        }
    })
}

/// An Istio VirtualService with subset routing: a header-matched route to the canary
/// subset (left alone), then the weighted `primary` route, plus retries and a timeout.
pub fn virtual_service() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "checkout", "namespace": NS, "annotations": {"team": "storefront"}},
        "spec": {
            "hosts": ["checkout.shop.svc.cluster.local"],
            "gateways": ["mesh"],
            "http": [
                {
                    "name": "testers",
                    "match": [{"headers": {"x-canary": {"exact": "1"}}}],
                    "route": [{"destination": {"host": "checkout", "subset": "canary"}}]
                },
                {
                    "name": "primary",
                    "retries": {"attempts": 3, "perTryTimeout": "2s"},
                    "timeout": "10s",
                    "route": [
                        {"destination": {"host": "checkout", "subset": "stable", "port": {"number": 8080}}, "weight": 100},
                        {"destination": {"host": "checkout", "subset": "canary", "port": {"number": 8080}}, "weight": 0, "headers": {"response": {"set": {"x-canary": "1"}}}}
                    ]
                }
            ]
        }
    })
}

/// An SMI TrafficSplit (Linkerd) with a third backend at weight 0.
pub fn traffic_split() -> Value {
    json!({
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {"name": "checkout", "namespace": NS, "labels": {"app": "checkout"}},
        "spec": {
            "service": "checkout",
            "backends": [
                {"service": "checkout-stable", "weight": 100},
                {"service": "checkout-legacy", "weight": 0},
                {"service": "checkout-canary", "weight": 0}
            ]
        }
    })
}

/// A weighted TraefikService with sticky sessions; the canary has no weight yet (Traefik
/// reads that as 1).
pub fn traefik_service() -> Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": "checkout", "namespace": NS},
        "spec": {
            "weighted": {
                "services": [
                    {"name": "checkout-stable", "port": 80, "weight": 100},
                    {"name": "checkout-canary", "port": 80, "kind": "Service"}
                ],
                "sticky": {"cookie": {"name": "lvl", "secure": true}}
            }
        }
    })
}
