//! The objects the adapters are tested on (each with rules, filters, annotations and other
//! backends that must survive every write), the policies' gateway sections for them, and
//! small helpers.

use std::path::PathBuf;

use canary_core::policy::{
    CreateCanaryIngress, GatewaySpec, HttpRouteSpec, IstioDestination, IstioVirtualServiceSpec,
    KubeObjectRef, NginxIngressSpec, RuleRef, SmiTrafficSplitSpec, TraefikServiceSpec,
};
use canary_core::ports::TrafficRouter;
use canary_gateways::kubernetes::{KubeConnection, kubernetes_router};
use serde_json::{Value, json};

use crate::fake_api::FakeApiServer;

/// The namespace everything lives in.
pub(crate) const NS: &str = "shop";

/// The workspace's `examples/kubernetes/`.
pub(crate) fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("examples/kubernetes")
}

/// The YAML documents of a file of `examples/kubernetes/`, as JSON.
pub(crate) fn example_documents(file: &str) -> Vec<Value> {
    let path = examples_dir().join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// An error and all its sources, on one line, as the CLI prints them.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn object(name: &str) -> KubeObjectRef {
    KubeObjectRef {
        name: name.to_owned(),
        namespace: Some(NS.to_owned()),
        context: None,
    }
}

/// One adapter under test: its object, the policy's gateway section, where its weights are,
/// and the Role of `examples/kubernetes/rbac/` (or `rbac-optional/`) that should be all it
/// needs.
pub(crate) struct Case {
    /// For messages.
    pub(crate) name: &'static str,
    /// The objects to store first (the weighted one first).
    pub(crate) objects: Vec<Value>,
    /// The policy's gateway.
    pub(crate) spec: GatewaySpec,
    /// The weighted object's API group, resource and name.
    pub(crate) group: &'static str,
    pub(crate) resource: &'static str,
    pub(crate) object_name: &'static str,
    /// JSON pointers of the stable and canary weights (`None`: implied).
    pub(crate) stable_weight: Option<&'static str>,
    pub(crate) canary_weight: &'static str,
    /// Whether the weights are strings (annotations).
    pub(crate) as_strings: bool,
    /// The file of `examples/kubernetes/` with that Role.
    pub(crate) role_file: &'static str,
}

impl Case {
    /// A fake holding this case's objects.
    pub(crate) async fn fake(&self) -> FakeApiServer {
        let fake = FakeApiServer::start().await;
        for object in &self.objects {
            fake.insert(object.clone());
        }
        fake
    }

    /// The router of this case, talking to `fake`.
    pub(crate) fn router(&self, fake: &FakeApiServer) -> Box<dyn TrafficRouter> {
        let connection = KubeConnection::from_client(fake.client(NS), NS);
        kubernetes_router(&self.spec, connection).expect("a Kubernetes router")
    }

    /// The weighted object as stored now.
    pub(crate) fn stored(&self, fake: &FakeApiServer) -> Value {
        fake.object(self.group, self.resource, NS, self.object_name)
            .unwrap_or_else(|| panic!("{}: no {} {}", self.name, self.resource, self.object_name))
    }

    /// `object` with the weights set to `percent` of 100 (what canary must have written).
    pub(crate) fn with_weights(&self, object: &Value, percent: u64) -> Value {
        let mut expected = object.clone();
        let encode = |v: u64| {
            if self.as_strings {
                json!(v.to_string())
            } else {
                json!(v)
            }
        };
        if let Some(pointer) = self.stable_weight {
            set_pointer(&mut expected, pointer, encode(100 - percent));
        }
        set_pointer(&mut expected, self.canary_weight, encode(percent));
        expected
    }
}

/// Sets the value at a JSON pointer, creating the last member if missing.
pub(crate) fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
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
pub(crate) fn same_version(object: &Value, other: &Value) -> Value {
    let mut object = object.clone();
    object["metadata"]["resourceVersion"] = other["metadata"]["resourceVersion"].clone();
    object
}

/// A Gateway API HTTPRoute with two rules: `api` (stable and canary, with filters at both
/// levels) and `static` (another backend), plus labels and annotations.
pub(crate) fn http_route() -> Value {
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

pub(crate) fn http_route_case() -> Case {
    Case {
        name: "HTTPRoute",
        objects: vec![http_route()],
        spec: GatewaySpec::HttpRoute(HttpRouteSpec {
            object: object("checkout"),
            rule: Some(RuleRef::Name("api".to_owned())),
            stable: "checkout-stable".to_owned(),
            canary: "checkout-canary".to_owned(),
            weight_total: 100,
        }),
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        object_name: "checkout",
        stable_weight: Some("/spec/rules/0/backendRefs/0/weight"),
        canary_weight: "/spec/rules/0/backendRefs/1/weight",
        as_strings: false,
        role_file: "rbac/httproute.yaml",
    }
}

/// The stable Ingress of ingress-nginx: two hosts, TLS, a default backend elsewhere.
pub(crate) fn stable_ingress() -> Value {
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
pub(crate) fn canary_ingress() -> Value {
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

pub(crate) fn nginx_ingress_spec(create: bool) -> GatewaySpec {
    GatewaySpec::NginxIngress(NginxIngressSpec {
        object: object("checkout-canary"),
        stable_ingress: "checkout".to_owned(),
        create_canary: create.then(|| CreateCanaryIngress {
            stable_service: "checkout".to_owned(),
            canary_service: "checkout-canary".to_owned(),
        }),
        weight_total: 100,
    })
}

pub(crate) fn nginx_ingress_case() -> Case {
    Case {
        name: "NGINX Ingress",
        objects: vec![canary_ingress(), stable_ingress()],
        spec: nginx_ingress_spec(false),
        group: "networking.k8s.io",
        resource: "ingresses",
        object_name: "checkout-canary",
        stable_weight: None,
        canary_weight: "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight",
        as_strings: true,
        role_file: "rbac-optional/nginx-ingress.yaml",
    }
}

/// An Istio VirtualService with subset routing: a header-matched route to the canary
/// subset (left alone), then the weighted `primary` route, plus retries and a timeout.
pub(crate) fn virtual_service() -> Value {
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

pub(crate) fn virtual_service_case() -> Case {
    Case {
        name: "Istio VirtualService",
        objects: vec![virtual_service()],
        spec: GatewaySpec::IstioVirtualService(IstioVirtualServiceSpec {
            object: object("checkout"),
            route: None,
            stable: IstioDestination {
                host: "checkout".to_owned(),
                subset: Some("stable".to_owned()),
            },
            canary: IstioDestination {
                host: "checkout".to_owned(),
                subset: Some("canary".to_owned()),
            },
        }),
        group: "networking.istio.io",
        resource: "virtualservices",
        object_name: "checkout",
        stable_weight: Some("/spec/http/1/route/0/weight"),
        canary_weight: "/spec/http/1/route/1/weight",
        as_strings: false,
        role_file: "rbac-optional/istio-virtual-service.yaml",
    }
}

/// An SMI TrafficSplit (Linkerd) with a third backend at weight 0.
pub(crate) fn traffic_split() -> Value {
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

pub(crate) fn traffic_split_case() -> Case {
    Case {
        name: "SMI TrafficSplit",
        objects: vec![traffic_split()],
        spec: GatewaySpec::SmiTrafficSplit(SmiTrafficSplitSpec {
            object: object("checkout"),
            api_version: "split.smi-spec.io/v1alpha2".to_owned(),
            stable: "checkout-stable".to_owned(),
            canary: "checkout-canary".to_owned(),
            weight_total: 100,
        }),
        group: "split.smi-spec.io",
        resource: "trafficsplits",
        object_name: "checkout",
        stable_weight: Some("/spec/backends/0/weight"),
        canary_weight: "/spec/backends/2/weight",
        as_strings: false,
        role_file: "rbac-optional/smi-traffic-split.yaml",
    }
}

/// A weighted TraefikService with sticky sessions; the canary has no weight yet (Traefik
/// reads that as 1).
pub(crate) fn traefik_service() -> Value {
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

pub(crate) fn traefik_service_case() -> Case {
    Case {
        name: "Traefik TraefikService",
        objects: vec![traefik_service()],
        spec: GatewaySpec::TraefikService(TraefikServiceSpec {
            object: object("checkout"),
            api_version: "traefik.io/v1alpha1".to_owned(),
            stable: "checkout-stable".to_owned(),
            canary: "checkout-canary".to_owned(),
            weight_total: 100,
        }),
        group: "traefik.io",
        resource: "traefikservices",
        object_name: "checkout",
        stable_weight: Some("/spec/weighted/services/0/weight"),
        canary_weight: "/spec/weighted/services/1/weight",
        as_strings: false,
        role_file: "rbac-optional/traefik-service.yaml",
    }
}

/// Every adapter.
pub(crate) fn all_cases() -> Vec<Case> {
    vec![
        http_route_case(),
        nginx_ingress_case(),
        virtual_service_case(),
        traffic_split_case(),
        traefik_service_case(),
    ]
}
