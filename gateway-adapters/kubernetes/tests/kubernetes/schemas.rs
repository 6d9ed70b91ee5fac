//! What the adapters write, held to the resources' schemas: the typed ones (`gateway-api`'s
//! HTTPRoute, `k8s-openapi`'s Ingress and ConfigMap) must read back every object and body
//! written, field for field; the dynamic ones (Istio, SMI, Traefik) are checked against
//! their CRDs' structural schemas as written down below from the upstream CRDs.

use gateway_api::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A structural schema: enough of an OpenAPI v3 schema to say what a CRD accepts.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    /// A string.
    String,
    /// An integer within bounds (int32 weights).
    Integer { min: i64, max: i64 },
    /// An integer or a string (`int-or-string`).
    IntOrString,
    /// A boolean.
    Bool,
    /// A list of one shape.
    List(&'static Shape),
    /// A map from any string key to one shape (`additionalProperties`).
    Map(&'static Shape),
    /// An object with these fields (name, required, shape); other fields are refused unless
    /// `open` (`x-kubernetes-preserve-unknown-fields`, or parts not written down here).
    Object {
        fields: &'static [(&'static str, bool, Shape)],
        open: bool,
    },
    /// Anything (a part of the schema canary never touches and that is not written down).
    Any,
}

const INT32_WEIGHT: Shape = Shape::Integer {
    min: 0,
    max: i32::MAX as i64,
};

const METADATA: Shape = Shape::Object {
    fields: &[
        ("name", true, Shape::String),
        ("namespace", false, Shape::String),
        ("resourceVersion", false, Shape::String),
        ("labels", false, Shape::Any),
        ("annotations", false, Shape::Any),
    ],
    open: true,
};

/// Istio's StringMatch: exactly one of `exact`, `prefix`, `regex` (RE2).
const ISTIO_STRING_MATCH: Shape = Shape::Object {
    fields: &[
        ("exact", false, Shape::String),
        ("prefix", false, Shape::String),
        ("regex", false, Shape::String),
    ],
    open: false,
};

/// Istio's HTTPMatchRequest, the fields of `spec.http[].match[]` (header steps write
/// `headers`, a map of StringMatch).
const ISTIO_HTTP_MATCH: Shape = Shape::Object {
    fields: &[
        ("name", false, Shape::String),
        ("uri", false, ISTIO_STRING_MATCH),
        ("scheme", false, ISTIO_STRING_MATCH),
        ("method", false, ISTIO_STRING_MATCH),
        ("authority", false, ISTIO_STRING_MATCH),
        ("headers", false, Shape::Map(&ISTIO_STRING_MATCH)),
        ("port", false, Shape::Integer { min: 0, max: 65535 }),
        ("sourceLabels", false, Shape::Map(&Shape::String)),
        ("gateways", false, Shape::List(&Shape::String)),
        ("queryParams", false, Shape::Map(&ISTIO_STRING_MATCH)),
        ("ignoreUriCase", false, Shape::Bool),
        ("withoutHeaders", false, Shape::Map(&ISTIO_STRING_MATCH)),
        ("sourceNamespace", false, Shape::String),
        ("statPrefix", false, Shape::String),
    ],
    open: false,
};

/// Istio's Destination: host (required), subset, port {number}.
const ISTIO_DESTINATION: Shape = Shape::Object {
    fields: &[
        ("host", true, Shape::String),
        ("subset", false, Shape::String),
        (
            "port",
            false,
            Shape::Object {
                fields: &[("number", false, Shape::Integer { min: 0, max: 65535 })],
                open: false,
            },
        ),
    ],
    open: false,
};

/// Istio's TCPRoute / TLSRoute: `match` (L4 or SNI conditions, not written by canary) and
/// `route`, a list of RouteDestination {destination, weight}.
const ISTIO_L4_ROUTE: Shape = Shape::Object {
    fields: &[
        ("match", false, Shape::Any),
        (
            "route",
            false,
            Shape::List(&Shape::Object {
                fields: &[
                    ("destination", true, ISTIO_DESTINATION),
                    ("weight", false, INT32_WEIGHT),
                ],
                open: false,
            }),
        ),
    ],
    open: false,
};

/// Istio's DestinationRule (`networking.istio.io/v1`), as far as canary reads it: `host`
/// (required) and `subsets[]` {name (required), labels, trafficPolicy}.
pub(crate) const DESTINATION_RULE: Shape = Shape::Object {
    fields: &[
        ("apiVersion", true, Shape::String),
        ("kind", true, Shape::String),
        ("metadata", true, METADATA),
        (
            "spec",
            true,
            Shape::Object {
                fields: &[
                    ("host", true, Shape::String),
                    ("trafficPolicy", false, Shape::Any),
                    (
                        "subsets",
                        false,
                        Shape::List(&Shape::Object {
                            fields: &[
                                ("name", true, Shape::String),
                                ("labels", false, Shape::Map(&Shape::String)),
                                ("trafficPolicy", false, Shape::Any),
                            ],
                            open: false,
                        }),
                    ),
                    ("exportTo", false, Shape::List(&Shape::String)),
                    ("workloadSelector", false, Shape::Any),
                ],
                open: false,
            },
        ),
        ("status", false, Shape::Any),
    ],
    open: false,
};

/// Istio's VirtualService (`networking.istio.io/v1`), the parts around the weights:
/// `spec.http[].route[]` is a list of HTTPRouteDestination {destination: {host (required),
/// subset, port: {number}}, weight: int32, headers}.
pub(crate) const VIRTUAL_SERVICE: Shape = Shape::Object {
    fields: &[
        ("apiVersion", true, Shape::String),
        ("kind", true, Shape::String),
        ("metadata", true, METADATA),
        (
            "spec",
            true,
            Shape::Object {
                fields: &[
                    ("hosts", false, Shape::List(&Shape::String)),
                    ("gateways", false, Shape::List(&Shape::String)),
                    (
                        "http",
                        false,
                        Shape::List(&Shape::Object {
                            fields: &[
                                ("name", false, Shape::String),
                                ("match", false, Shape::List(&ISTIO_HTTP_MATCH)),
                                (
                                    "route",
                                    false,
                                    Shape::List(&Shape::Object {
                                        fields: &[
                                            (
                                                "destination",
                                                true,
                                                Shape::Object {
                                                    fields: &[
                                                        ("host", true, Shape::String),
                                                        ("subset", false, Shape::String),
                                                        (
                                                            "port",
                                                            false,
                                                            Shape::Object {
                                                                fields: &[(
                                                                    "number",
                                                                    false,
                                                                    Shape::Integer {
                                                                        min: 0,
                                                                        max: 65535,
                                                                    },
                                                                )],
                                                                open: false,
                                                            },
                                                        ),
                                                    ],
                                                    open: false,
                                                },
                                            ),
                                            ("weight", false, INT32_WEIGHT),
                                            ("headers", false, Shape::Any),
                                        ],
                                        open: false,
                                    }),
                                ),
                                ("retries", false, Shape::Any),
                                ("timeout", false, Shape::String),
                                ("rewrite", false, Shape::Any),
                                ("fault", false, Shape::Any),
                                ("mirror", false, Shape::Any),
                                // Istio's Percent: {value: double}.
                                ("mirrorPercentage", false, Shape::Any),
                                ("headers", false, Shape::Any),
                                ("corsPolicy", false, Shape::Any),
                            ],
                            open: false,
                        }),
                    ),
                    ("tcp", false, Shape::List(&ISTIO_L4_ROUTE)),
                    ("tls", false, Shape::List(&ISTIO_L4_ROUTE)),
                    ("exportTo", false, Shape::List(&Shape::String)),
                ],
                open: false,
            },
        ),
        ("status", false, Shape::Any),
    ],
    open: false,
};

/// SMI's TrafficSplit (`split.smi-spec.io/v1alpha2`): spec {service (required), backends
/// (required): [{service (required), weight (required, integer)}], matches}.
pub(crate) const TRAFFIC_SPLIT: Shape = Shape::Object {
    fields: &[
        ("apiVersion", true, Shape::String),
        ("kind", true, Shape::String),
        ("metadata", true, METADATA),
        (
            "spec",
            true,
            Shape::Object {
                fields: &[
                    ("service", true, Shape::String),
                    (
                        "backends",
                        true,
                        Shape::List(&Shape::Object {
                            fields: &[
                                ("service", true, Shape::String),
                                ("weight", true, INT32_WEIGHT),
                            ],
                            open: false,
                        }),
                    ),
                    ("matches", false, Shape::Any),
                ],
                open: false,
            },
        ),
    ],
    open: false,
};

/// Traefik's TraefikService (`traefik.io/v1alpha1`), weighted: spec.weighted {services:
/// [WRRService {name (required), kind (Service|TraefikService), namespace, port
/// (int-or-string), weight (integer ≥ 0), …}], sticky}.
pub(crate) const TRAEFIK_SERVICE: Shape = Shape::Object {
    fields: &[
        ("apiVersion", true, Shape::String),
        ("kind", true, Shape::String),
        ("metadata", true, METADATA),
        (
            "spec",
            true,
            Shape::Object {
                fields: &[
                    (
                        "weighted",
                        false,
                        Shape::Object {
                            fields: &[
                                ("services", false, Shape::List(&TRAEFIK_LOAD_BALANCER)),
                                ("sticky", false, Shape::Any),
                            ],
                            open: false,
                        },
                    ),
                    ("mirroring", false, Shape::Any),
                ],
                open: false,
            },
        ),
    ],
    open: false,
};

/// A Traefik load-balancer reference: a weighted TraefikService's `services[]` (WRRService)
/// and an IngressRoute route's `services[]` share it.
const TRAEFIK_LOAD_BALANCER: Shape = Shape::Object {
    fields: &[
        ("name", true, Shape::String),
        ("kind", false, Shape::String),
        ("namespace", false, Shape::String),
        ("port", false, Shape::IntOrString),
        ("weight", false, INT32_WEIGHT),
        ("passHostHeader", false, Shape::Bool),
        ("scheme", false, Shape::String),
        ("strategy", false, Shape::String),
        ("sticky", false, Shape::Any),
        ("responseForwarding", false, Shape::Any),
        ("serversTransport", false, Shape::String),
        ("healthCheck", false, Shape::Any),
        ("nativeLB", false, Shape::Bool),
        ("nodePortLB", false, Shape::Bool),
    ],
    open: false,
};

/// Traefik's IngressRoute (`traefik.io/v1alpha1`), which routes to a weighted
/// TraefikService: spec {entryPoints, routes (required): [{match (required), kind (Rule),
/// priority, syntax, middlewares: [{name (required), namespace}], services, observability}],
/// tls}.
pub(crate) const INGRESS_ROUTE: Shape = Shape::Object {
    fields: &[
        ("apiVersion", true, Shape::String),
        ("kind", true, Shape::String),
        ("metadata", true, METADATA),
        (
            "spec",
            true,
            Shape::Object {
                fields: &[
                    ("entryPoints", false, Shape::List(&Shape::String)),
                    (
                        "routes",
                        true,
                        Shape::List(&Shape::Object {
                            fields: &[
                                ("match", true, Shape::String),
                                ("kind", false, Shape::String),
                                ("priority", false, INT32_WEIGHT),
                                ("syntax", false, Shape::String),
                                (
                                    "middlewares",
                                    false,
                                    Shape::List(&Shape::Object {
                                        fields: &[
                                            ("name", true, Shape::String),
                                            ("namespace", false, Shape::String),
                                        ],
                                        open: false,
                                    }),
                                ),
                                ("services", false, Shape::List(&TRAEFIK_LOAD_BALANCER)),
                                ("observability", false, Shape::Any),
                            ],
                            open: false,
                        }),
                    ),
                    ("tls", false, Shape::Any),
                ],
                open: false,
            },
        ),
    ],
    open: false,
};

/// Checks `value` against `shape`; the problems, with their paths.
pub(crate) fn problems(value: &Value, shape: &Shape, path: &str, out: &mut Vec<String>) {
    match (shape, value) {
        (Shape::Any, _) | (Shape::String, Value::String(_)) | (Shape::Bool, Value::Bool(_)) => {}
        (Shape::IntOrString, Value::String(_)) => {}
        (Shape::IntOrString, Value::Number(n)) if n.is_i64() => {}
        (Shape::Integer { min, max }, Value::Number(n)) => match n.as_i64() {
            Some(i) if (*min..=*max).contains(&i) => {}
            _ => out.push(format!("{path}: {n} is not an integer from {min} to {max}")),
        },
        (Shape::List(item), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                problems(v, item, &format!("{path}[{i}]"), out);
            }
        }
        (Shape::Map(item), Value::Object(map)) => {
            for (key, v) in map {
                problems(v, item, &format!("{path}.{key}"), out);
            }
        }
        (Shape::Object { fields, open }, Value::Object(map)) => {
            for (name, required, shape) in fields.iter() {
                match map.get(*name) {
                    Some(v) => problems(v, shape, &format!("{path}.{name}"), out),
                    None if *required => out.push(format!("{path}.{name} is required")),
                    None => {}
                }
            }
            if !open {
                for key in map.keys() {
                    if !fields.iter().any(|(name, _, _)| name == key) {
                        out.push(format!("{path}.{key} is not in the schema"));
                    }
                }
            }
        }
        (_, other) => out.push(format!("{path}: unexpected {other}")),
    }
}

/// Deserializes `value` into `T` and serializes it back: equal means every field written is
/// one `T` knows, with the type it has.
pub(crate) fn round_trips<T: DeserializeOwned + Serialize>(value: &Value, what: &str) -> T {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what} does not deserialize: {e}\n{value:#}"));
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(
        strip_server_fields(&back),
        strip_server_fields(value),
        "{what}: fields lost or changed through the typed resource"
    );
    typed
}

/// Without the fields the fake (as the API server) adds.
fn strip_server_fields(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
            metadata.remove(field);
        }
    }
    value
}

/// Checks a stored object of `resource` against its schema.
pub(crate) fn validate(resource: &str, object: &Value) {
    let shape = match resource {
        "httproutes" => {
            round_trips::<HttpRoute>(object, "the HTTPRoute");
            return;
        }
        "ingresses" => {
            round_trips::<Ingress>(object, "the Ingress");
            return;
        }
        "configmaps" => {
            round_trips::<ConfigMap>(object, "the ConfigMap");
            return;
        }
        "virtualservices" => &VIRTUAL_SERVICE,
        "destinationrules" => &DESTINATION_RULE,
        "trafficsplits" => &TRAFFIC_SPLIT,
        "traefikservices" => &TRAEFIK_SERVICE,
        "ingressroutes" => &INGRESS_ROUTE,
        other => panic!("no schema for {other}"),
    };
    let mut found = Vec::new();
    problems(object, shape, resource, &mut found);
    assert!(
        found.is_empty(),
        "{resource} breaks its CRD's schema: {found:#?}\n{object:#}"
    );
}

#[test]
fn the_structural_schemas_catch_what_they_should() {
    let mut vs = crate::support::virtual_service();
    let mut found = Vec::new();
    problems(&vs, &VIRTUAL_SERVICE, "vs", &mut found);
    assert!(found.is_empty(), "{found:?}");
    vs["spec"]["http"][1]["route"][0]["weight"] = serde_json::json!("90");
    vs["spec"]["http"][1]["route"][1]["wieght"] = serde_json::json!(10);
    problems(&vs, &VIRTUAL_SERVICE, "vs", &mut found);
    assert_eq!(
        found,
        vec![
            "vs.spec.http[1].route[0].weight: unexpected \"90\"".to_owned(),
            "vs.spec.http[1].route[1].wieght is not in the schema".to_owned()
        ]
    );
    let mut vs = crate::support::virtual_service();
    vs["spec"]["http"][0]["match"][0]["headers"]["x-canary"] = serde_json::json!({"exakt": "1"});
    let mut found = Vec::new();
    problems(&vs, &VIRTUAL_SERVICE, "vs", &mut found);
    assert_eq!(
        found,
        vec!["vs.spec.http[0].match[0].headers.x-canary.exakt is not in the schema".to_owned()]
    );
    let mut split = crate::support::traffic_split();
    split["spec"]["backends"][0]["weight"] = serde_json::json!(-1);
    let mut found = Vec::new();
    problems(&split, &TRAFFIC_SPLIT, "ts", &mut found);
    assert_eq!(found.len(), 1, "{found:?}");
    let mut traefik = crate::support::traefik_service();
    traefik["spec"]["weighted"]["services"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let mut found = Vec::new();
    problems(&traefik, &TRAEFIK_SERVICE, "tr", &mut found);
    assert_eq!(
        found,
        vec!["tr.spec.weighted.services[0].name is required".to_owned()]
    );
}

#[test]
fn the_fixtures_are_valid_objects_of_their_kinds() {
    for case in crate::support::all_cases() {
        for object in &case.objects {
            let resource = match object["kind"].as_str() {
                Some("Ingress") => "ingresses",
                Some("DestinationRule") => "destinationrules",
                _ => case.resource,
            };
            validate(resource, object);
        }
    }
}
