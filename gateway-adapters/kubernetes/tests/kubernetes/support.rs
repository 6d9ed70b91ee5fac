//! The adapters under test, one [`Case`] each: the objects they are tested on (from
//! `canary_fake_kube_api::fixtures`), the policies' gateway sections for them, where their
//! weights are and the Role that should be all they need; and small helpers.

use canary_core::policy::{
    AppliedBy, CreateCanaryIngress, GatewaySpec, HttpRouteSpec, IstioDestination, IstioProtocol,
    IstioVirtualServiceSpec, KubeObjectRef, NginxIngressSpec, RuleRef, SmiTrafficSplitSpec,
    TraefikServiceSpec,
};
use canary_core::ports::TrafficRouter;
use canary_fake_kube_api::FakeApiServer;
pub(crate) use canary_fake_kube_api::fixtures::{
    NS, canary_ingress, example_documents, examples_dir, http_route, same_version, set_pointer,
    stable_ingress, traefik_service, traffic_split, virtual_service,
};
use canary_kubernetes::{KubeConnection, kubernetes_router};
use serde_json::{Value, json};

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
        if self.group == "split.smi-spec.io" {
            fake.run_linkerd_smi_adaptor(AppliedBy::DEFAULT_CLUSTER_DOMAIN);
        }
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
            more_routes: Vec::new(),
            generate: None,
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

pub(crate) fn nginx_ingress_spec(create: bool) -> GatewaySpec {
    GatewaySpec::NginxIngress(NginxIngressSpec {
        object: object("checkout-canary"),
        stable_ingress: "checkout".to_owned(),
        create_canary: create.then(|| CreateCanaryIngress {
            stable_service: "checkout".to_owned(),
            canary_service: "checkout-canary".to_owned(),
        }),
        weight_total: 100,
        annotation_prefix: NginxIngressSpec::DEFAULT_ANNOTATION_PREFIX.to_owned(),
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

pub(crate) fn virtual_service_case() -> Case {
    Case {
        name: "Istio VirtualService",
        objects: vec![virtual_service(), destination_rule()],
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
            api_version: IstioVirtualServiceSpec::API_VERSIONS[0].to_owned(),
            protocol: IstioProtocol::Http,
            more_virtual_services: Vec::new(),
            destination_rule: None,
            generate: None,
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
            // What a v1alpha2 policy gets by default, with a short wait: the fake's linkerd-smi
            // adaptor (started by `Case::fake`) applies in the same request.
            applied_by: AppliedBy::LinkerdServiceProfile {
                cluster_domain: AppliedBy::DEFAULT_CLUSTER_DOMAIN.to_owned(),
                apply_timeout: std::time::Duration::from_secs(1),
                default: false,
            },
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

/// The DestinationRule `checkout` defining the subsets `stable` and `canary` of host
/// `checkout` that the VirtualService fixture routes to.
pub(crate) fn destination_rule() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "checkout", "namespace": NS},
        "spec": {
            "host": "checkout.shop.svc.cluster.local",
            "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
            "subsets": [
                {"name": "stable", "labels": {"version": "stable"}},
                {"name": "canary", "labels": {"version": "canary"}}
            ]
        }
    })
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
