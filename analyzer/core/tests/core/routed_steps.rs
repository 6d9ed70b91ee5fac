//! Routed steps (issue 18): header, cookie and mirror steps in the policy, lint refusing the
//! routers that cannot carry them out, and the machine carrying the route as data in its
//! effects and comparing it at every read-back.

use std::collections::BTreeMap;

use canary_core::observation::{CheckObservation, Reading, RequestCounts, Tick};
use canary_core::policy::{HookEvent, Policy, StepRoute};
use canary_core::rollout::{Effect, Event, Machine, Phase};
use jiff::{SignedDuration, Timestamp};

const BASE: &str = r#"
service: checkout
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout:
  steps: STEPS
  step-duration: 5m
  interval: 30s
  min-requests: 100
checks:
  - name: errors
    error-rate: {requests: http_requests_total, errors: 'code=~"5.."'}
    slo: {max: 5%}
    baseline: {max-increase: 0%}
GATEWAY"#;

const HTTP_ROUTE: &str = r#"gateway:
  http-route: {name: checkout, stable: checkout-stable, canary: checkout-canary}
"#;

const NGINX_INGRESS: &str = r#"gateway:
  nginx-ingress: {ingress: checkout, canary-ingress: checkout-canary}
"#;

fn text(steps: &str, gateway: &str) -> String {
    BASE.replace("STEPS", steps).replace("GATEWAY", gateway)
}

fn mk_policy(steps: &str, gateway: &str) -> Policy {
    Policy::from_yaml(&text(steps, gateway), "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// The problems of a policy that must not validate, as one string.
fn problems(steps: &str, gateway: &str) -> String {
    match Policy::from_yaml(&text(steps, gateway), "test.yaml") {
        Ok(_) => panic!("accepted steps {steps} with {gateway}"),
        Err(err) => err.to_string(),
    }
}

fn header() -> StepRoute {
    StepRoute::Header {
        name: "x-canary".to_owned(),
        value: "1".to_owned(),
    }
}

fn t0() -> Timestamp {
    "2026-12-01T10:00:00Z".parse().unwrap()
}

fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

fn mk_tick(seconds: i64, canary: f64, baseline: f64) -> Tick {
    let mut readings = BTreeMap::new();
    readings.insert(
        "errors".to_owned(),
        Reading::Observed(CheckObservation::Counts {
            canary: RequestCounts {
                requests: canary,
                errors: 0.0,
            },
            baseline: RequestCounts {
                requests: baseline,
                errors: 0.0,
            }
            .into(),
        }),
    );
    Tick {
        at: at(seconds),
        window_seconds: seconds as f64,
        readings,
        warnings: Vec::new(),
    }
}

fn hooks_ok(event: HookEvent) -> Event {
    Event::HooksRan {
        event,
        failed: Vec::new(),
    }
}

/// A machine brought to the point where the first step is to be set.
fn mk_started(policy: Policy) -> (Machine, canary_core::rollout::Rollout, Vec<Effect>) {
    let machine = Machine::new(policy).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(
        &mut rollout,
        Event::PreflightPassed {
            canary_generation: None,
        },
        t0(),
    );
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    (machine, rollout, effects)
}

#[test]
fn routed_steps_read_into_routes_with_a_weighted_share_of_0() {
    let policy = mk_policy(
        r#"[{header: {name: x-canary, value: "1"}}, {mirror: {percent: 20}}, 10, 50, 100]"#,
        HTTP_ROUTE,
    );
    assert_eq!(policy.rollout.steps, [0, 0, 10, 50, 100]);
    assert_eq!(policy.rollout.route(0), Some(&header()));
    assert_eq!(
        policy.rollout.route(1),
        Some(&StepRoute::Mirror { percent: 20 })
    );
    assert_eq!(policy.rollout.route(2), None);
    assert_eq!(policy.rollout.analysed_steps().len(), 4);
    let policy = mk_policy(
        r#"[{cookie: {name: canary}}, {header: {name: X-Beta, value: "yes"}}, 100]"#,
        NGINX_INGRESS,
    );
    assert_eq!(
        policy.rollout.route(0),
        Some(&StepRoute::Cookie {
            name: "canary".to_owned()
        })
    );
}

/// Routed steps are new fields of the serialized policy only when a policy has them: the
/// digest of a policy without them is what it was (the digest-pinning test pins the value).
#[test]
fn a_policy_without_routed_steps_serializes_without_routes() {
    let policy = mk_policy("[10, 50, 100]", HTTP_ROUTE);
    let json = serde_json::to_value(&policy.rollout).unwrap();
    assert!(json.get("routes").is_none(), "{json}");
    let routed = mk_policy(
        r#"[{header: {name: x-canary, value: "1"}}, 50, 100]"#,
        HTTP_ROUTE,
    );
    assert_ne!(policy.digest(), routed.digest());
}

#[test]
fn routers_that_cannot_route_are_refused_by_name() {
    let haproxy = r#"gateway:
  haproxy: {socket: /run/haproxy/admin.sock, backend: web, canary-server: c, stable-server: s}
"#;
    let message = problems(
        r#"[{header: {name: x-canary, value: "1"}}, 50, 100]"#,
        haproxy,
    );
    assert!(message.contains("rollout.steps[0]"), "{message}");
    assert!(
        message.contains("needs `gateway.haproxy.route-acl`"),
        "{message}"
    );
    let message = problems("[{mirror: {percent: 10}}, 50, 100]", NGINX_INGRESS);
    assert!(
        message.contains("`mirror` step is not supported by the `nginx-ingress` router"),
        "{message}"
    );
    let message = problems("[{cookie: {name: c}}, 50, 100]", HTTP_ROUTE);
    assert!(
        message.contains("`cookie` step is not supported by the `http-route` router"),
        "{message}"
    );
}

/// HAProxy carries header and cookie steps through an ACL file the user's haproxy.cfg reads
/// (`gateway.haproxy.route-acl`): the step must name the header or cookie that ACL reads;
/// a mirror, or a routed step without the ACL, is refused naming what is missing.
#[test]
fn haproxy_carries_header_and_cookie_steps_through_its_route_acl() {
    let with_acl = |reads: &str| {
        format!(
            "gateway:\n  haproxy: {{socket: /run/haproxy/admin.sock, backend: web, canary-server: c, stable-server: s, route-acl: {{file: /etc/haproxy/web-canary.acl, {reads}}}}}\n"
        )
    };
    let header_acl = with_acl("header: x-canary");
    let policy = mk_policy(
        r#"[{header: {name: x-canary, value: "1"}}, {header: {name: x-canary, value: "2"}}, 50, 100]"#,
        &header_acl,
    );
    assert_eq!(policy.rollout.route(0), Some(&header()));
    let cookie_acl = with_acl("cookie: canary");
    let policy = mk_policy("[{cookie: {name: canary}}, 50, 100]", &cookie_acl);
    assert_eq!(
        policy.rollout.route(0),
        Some(&StepRoute::Cookie {
            name: "canary".to_owned()
        })
    );

    let message = problems(
        r#"[{header: {name: x-other, value: "1"}}, 50, 100]"#,
        &header_acl,
    );
    assert!(message.contains("rollout.steps[0]"), "{message}");
    assert!(
        message.contains("reads header \"x-canary\", not \"x-other\""),
        "{message}"
    );
    let message = problems("[{cookie: {name: canary}}, 50, 100]", &header_acl);
    assert!(message.contains("reads header \"x-canary\""), "{message}");
    let message = problems("[{mirror: {percent: 10}}, 50, 100]", &header_acl);
    assert!(
        message.contains("`mirror` step is not supported by the `haproxy` router"),
        "{message}"
    );
    let message = problems(
        "[10, 50, 100]",
        &with_acl("header: x-canary, cookie: canary"),
    );
    assert!(message.contains("gateway.haproxy.route-acl"), "{message}");
    let message = problems(
        "[10, 50, 100]",
        &with_acl("header: 'x canary'").replace("web-canary.acl", "web canary.acl"),
    );
    assert!(
        message.contains("gateway.haproxy.route-acl.file"),
        "{message}"
    );
    assert!(
        message.contains("gateway.haproxy.route-acl.header"),
        "{message}"
    );
}

/// Istio carries all three routed steps; a header or cookie step inserts a route before the
/// weighted one, so that one must be named by `name`: an index is refused, saying why.
#[test]
fn istio_carries_header_and_cookie_steps_on_a_route_named_by_name() {
    let named = r#"gateway:
  istio-virtual-service: {name: checkout, route: primary, stable: {host: checkout, subset: stable}, canary: {host: checkout, subset: canary}}
"#;
    let policy = mk_policy(
        r#"[{header: {name: X-Canary, value: "1"}}, {cookie: {name: canary}}, {mirror: {percent: 20}}, 50, 100]"#,
        named,
    );
    assert_eq!(
        policy.rollout.route(1),
        Some(&StepRoute::Cookie {
            name: "canary".to_owned()
        })
    );
    let unnamed = named.replace("route: primary, ", "");
    mk_policy(
        r#"[{header: {name: x-canary, value: "1"}}, 50, 100]"#,
        &unnamed,
    );
    let indexed = named.replace("route: primary", "route: 1");
    for step in [
        r#"{header: {name: x-canary, value: "1"}}"#,
        "{cookie: {name: c}}",
    ] {
        let message = problems(&format!("[{step}, 50, 100]"), &indexed);
        assert!(
            message.contains("rollout.steps[0]")
                && message
                    .contains("moves the route `gateway.istio-virtual-service` names by index"),
            "{message}"
        );
    }
    mk_policy("[{mirror: {percent: 10}}, 50, 100]", &indexed);
}

/// Routed steps with several routing objects: fine on distinct objects; refused when one
/// object is named twice (its request-route mark is one per object) and on Istio `tcp`/`tls`
/// routes (weights only).
#[test]
fn routed_steps_with_several_routes_need_each_object_once_and_http_routes() {
    let two = r#"gateway:
  http-route: {name: checkout, stable: checkout-stable, canary: checkout-canary, more-routes: [{name: checkout-internal}]}
"#;
    mk_policy(r#"[{header: {name: x-canary, value: "1"}}, 50, 100]"#, two);
    let same = two.replace("{name: checkout-internal}", "{name: checkout, rule: web}");
    mk_policy("[10, 50, 100]", &same);
    let message = problems("[{mirror: {percent: 10}}, 50, 100]", &same);
    assert!(
        message.contains("rollout.steps[0]") && message.contains("names \"checkout\" twice"),
        "{message}"
    );
    let tcp = r#"gateway:
  istio-virtual-service: {name: db, protocol: tcp, stable: {host: db, subset: a}, canary: {host: db, subset: b}}
"#;
    mk_policy("[10, 50, 100]", tcp);
    let message = problems("[{mirror: {percent: 10}}, 50, 100]", tcp);
    assert!(
        message.contains("not supported with `protocol: tcp`"),
        "{message}"
    );
}

#[test]
fn malformed_routed_steps_name_the_field() {
    for (steps, expected) in [
        (
            r#"[{header: {name: "x canary", value: "1"}}, 100]"#,
            "rollout.steps[0].header.name",
        ),
        (
            r#"[{header: {name: x-canary, value: ""}}, 100]"#,
            "rollout.steps[0].header.value",
        ),
        (
            "[{mirror: {percent: 0}}, 100]",
            "rollout.steps[0].mirror.percent",
        ),
        (
            "[{mirror: {percent: 101}}, 100]",
            "rollout.steps[0].mirror.percent",
        ),
        (
            r#"[{mirror: {percent: 5}, header: {name: a, value: b}}, 100]"#,
            "exactly one of",
        ),
        ("[{}, 100]", "exactly one of"),
        ("[{weight: 10}, 100]", "unknown field `weight`"),
        ("[{header: {name: a}}, 100]", "missing field `value`"),
        ("[true, 100]", "expected a weight"),
        ("[10.5, 100]", "expected a canary weight from 1 to 100"),
    ] {
        let message = problems(steps, HTTP_ROUTE);
        assert!(message.contains(expected), "{steps}: {message}");
    }
    // Weights still increase among themselves, around routed steps.
    let message = problems("[50, {mirror: {percent: 5}}, 25, 100]", HTTP_ROUTE);
    assert!(message.contains("25 comes after 50"), "{message}");
    // A routed step alone is no rollout: the last step is still the promotion at 100.
    let message = problems("[{mirror: {percent: 5}}]", HTTP_ROUTE);
    assert!(message.contains("the last step must be 100"), "{message}");
}

#[test]
fn a_header_step_is_set_as_a_route_and_recorded_as_what_was_routed() {
    let policy = mk_policy(
        r#"[{header: {name: x-canary, value: "1"}}, 50, 100]"#,
        HTTP_ROUTE,
    );
    let (machine, mut rollout, effects) = mk_started(policy);
    assert_eq!(effects.last(), Some(&Effect::SetRoute(header())));
    assert!(matches!(
        rollout.phase(),
        Phase::Step {
            index: 0,
            weight: 0,
            weight_set: false,
            ..
        }
    ));
    let effects = machine.handle(&mut rollout, Event::WeightSet(0), at(1));
    let notice = effects
        .iter()
        .find_map(|e| match e {
            Effect::Notify(n) => Some(n.message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        notice.contains("requests with header x-canary: 1"),
        "{notice}"
    );
    let step = rollout.steps().last().unwrap();
    assert_eq!(step.weight, 0);
    assert_eq!(step.route, Some(header()));
    let json = serde_json::to_value(step).unwrap();
    assert_eq!(json["route"]["header"]["name"], "x-canary", "{json}");

    // The route read back as set: the tick goes on to the metrics.
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(1));
    assert_eq!(
        machine.handle(&mut rollout, Event::TimerFired, at(31)),
        [Effect::ReadWeight]
    );
    let effects = machine.handle(
        &mut rollout,
        Event::RouteRead {
            weight: 0,
            route: Some(header()),
        },
        at(31),
    );
    assert!(
        matches!(effects.as_slice(), [Effect::Read { .. }]),
        "{effects:?}"
    );
    machine.handle(
        &mut rollout,
        Event::Observed {
            tick: mk_tick(31, 40.0, 960.0),
            checkpoint: None,
        },
        at(31),
    );

    // A GitOps sync took the header rule away: weight 0 and no route is drift, repaired by
    // setting the route again, and the step starts over.
    machine.handle(&mut rollout, Event::TimerFired, at(61));
    let effects = machine.handle(&mut rollout, Event::WeightRead(0), at(61));
    assert_eq!(
        effects.last(),
        Some(&Effect::SetRoute(header())),
        "{effects:?}"
    );
    let drift = effects
        .iter()
        .find_map(|e| match e {
            Effect::Notify(n) => Some(n.message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        drift.contains(
            "served the canary 0 % where the rollout set requests with header x-canary: 1"
        ),
        "{drift}"
    );
    assert_eq!(rollout.weight_drifts(), 1);
    assert!(matches!(
        rollout.phase(),
        Phase::Step {
            weight_set: false,
            ..
        }
    ));
}

/// A header rule left behind on a weighted step still sends its requests to the canary:
/// drift, repaired by a plain weight (which removes it).
#[test]
fn a_route_left_on_a_weighted_step_is_drift() {
    let policy = mk_policy(
        r#"[10, {header: {name: x-canary, value: "1"}}, 50, 100]"#,
        HTTP_ROUTE,
    );
    let (machine, mut rollout, effects) = mk_started(policy);
    assert_eq!(effects.last(), Some(&Effect::SetWeight(10)));
    machine.handle(&mut rollout, Event::WeightSet(10), at(1));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(1));
    machine.handle(&mut rollout, Event::TimerFired, at(31));
    let effects = machine.handle(
        &mut rollout,
        Event::RouteRead {
            weight: 10,
            route: Some(header()),
        },
        at(31),
    );
    assert_eq!(effects.last(), Some(&Effect::SetWeight(10)), "{effects:?}");
    assert_eq!(rollout.weight_drifts(), 1);
}

/// A resumed rollout whose routed step was not confirmed sets the route again, not a weight.
#[test]
fn resume_sets_the_route_of_an_unconfirmed_routed_step() {
    let policy = mk_policy("[{mirror: {percent: 25}}, 50, 100]", HTTP_ROUTE);
    let (machine, mut rollout, _) = mk_started(policy);
    let effects = machine.handle(&mut rollout, Event::Resume, at(5));
    assert_eq!(
        effects,
        [Effect::SetRoute(StepRoute::Mirror { percent: 25 })]
    );
    // Confirmed, the mirror step goes on to the weighted step after it.
    machine.handle(&mut rollout, Event::WeightSet(0), at(6));
    assert!(matches!(
        rollout.phase(),
        Phase::Step {
            index: 0,
            weight_set: true,
            ..
        }
    ));
}
