//! `rollout`: steps, timing, the error budget and what to do when a step is inconclusive, the
//! rollout is interrupted or the metrics are unavailable.

use super::*;

impl Validator {
    pub(super) fn rollout(&mut self, raw: &RawRollout) -> Option<RolloutSpec> {
        let steps = match &raw.steps {
            None => Some((DEFAULT_STEPS.to_vec(), BTreeMap::new())),
            Some(steps) => self.steps(steps),
        };
        let (steps, routes) = match steps {
            Some((steps, routes)) => (Some(steps), Some(routes)),
            None => (None, None),
        };
        let step_duration = self.positive_duration(
            "rollout.step-duration",
            raw.step_duration.as_ref(),
            DEFAULT_STEP_DURATION,
        );
        let interval =
            self.positive_duration("rollout.interval", raw.interval.as_ref(), DEFAULT_INTERVAL);
        let max_step_duration = match (&raw.max_step_duration, step_duration) {
            (Some(at), Some(step)) => {
                let max = at.value.0;
                if max < step {
                    self.problem(
                        "rollout.max-step-duration",
                        Some(at),
                        format!(
                            "the limit ({}) is shorter than the step itself ({})",
                            humantime::format_duration(max),
                            humantime::format_duration(step)
                        ),
                    );
                    None
                } else {
                    Some(max)
                }
            }
            (None, Some(step)) => Some(step * 3),
            (_, None) => None,
        };
        if let (Some(interval), Some(step)) = (interval, step_duration) {
            if interval > step {
                self.problem(
                    "rollout.interval",
                    raw.interval.as_ref(),
                    format!(
                        "the analysis interval ({}) is longer than a step ({}); a step would never be analysed",
                        humantime::format_duration(interval),
                        humantime::format_duration(step)
                    ),
                );
            } else if interval < Duration::from_secs(1) {
                self.problem(
                    "rollout.interval",
                    raw.interval.as_ref(),
                    "the analysis interval must be at least 1s (Prometheus resolves whole seconds)",
                );
            }
        }
        let min_requests = match &raw.min_requests {
            None => Some(DEFAULT_MIN_REQUESTS),
            Some(at) if at.value >= 0 => Some(at.value as u64),
            Some(at) => {
                self.problem(
                    "rollout.min-requests",
                    Some(at),
                    "expected a count of 0 or more",
                );
                None
            }
        };
        let alpha = match &raw.alpha {
            None => Some(DEFAULT_ALPHA),
            Some(at) if at.value.0 > 0.0 && at.value.0 <= 0.5 => Some(at.value.0),
            Some(at) => {
                self.problem(
                    "rollout.alpha",
                    Some(at),
                    "expected a false-rollback budget above 0% and at most 50% (1% is usual)",
                );
                None
            }
        };
        let on_inconclusive = match &raw.on_inconclusive {
            None => Some(InconclusiveAction::Rollback),
            Some(at) => match at.value.as_str() {
                "rollback" => Some(InconclusiveAction::Rollback),
                "hold" => Some(InconclusiveAction::Hold),
                other => {
                    self.problem(
                        "rollout.on-inconclusive",
                        Some(at),
                        format!("expected `rollback` or `hold`, not {other:?} (a rollout never promotes on missing evidence)"),
                    );
                    None
                }
            },
        };
        let on_interrupt = self.stop_action("rollout.on-interrupt", raw.on_interrupt.as_ref());
        let on_metrics_unavailable = self.stop_action(
            "rollout.on-metrics-unavailable",
            raw.on_metrics_unavailable.as_ref(),
        );
        let final_soak = match &raw.final_soak {
            None => Some(None),
            Some(at) => self
                .positive_duration("rollout.final-soak", Some(at), Duration::ZERO)
                .map(Some),
        };
        let max_failed_ticks = match &raw.max_failed_ticks {
            None => Some(DEFAULT_MAX_FAILED_TICKS),
            Some(at) if (1..=1000).contains(&at.value) => Some(at.value as u32),
            Some(at) => {
                self.problem(
                    "rollout.max-failed-ticks",
                    Some(at),
                    "expected a count from 1 to 1000",
                );
                None
            }
        };
        Some(RolloutSpec {
            steps: steps?,
            step_duration: step_duration?,
            max_step_duration: max_step_duration?,
            interval: interval?,
            min_requests: min_requests?,
            alpha: alpha?,
            on_inconclusive: on_inconclusive?,
            on_interrupt: on_interrupt?,
            final_soak: final_soak?,
            max_failed_ticks: max_failed_ticks?,
            on_metrics_unavailable: on_metrics_unavailable?,
            routes: routes?,
        })
    }

    /// `leave` (the default) or `rollback`.
    fn stop_action(&mut self, field: &str, raw: Option<&At<String>>) -> Option<StopAction> {
        let Some(at) = raw else {
            return Some(StopAction::Leave);
        };
        match at.value.as_str() {
            "leave" => Some(StopAction::Leave),
            "rollback" => Some(StopAction::Rollback),
            other => {
                self.problem(
                    field,
                    Some(at),
                    format!("expected `leave` or `rollback`, not {other:?}"),
                );
                None
            }
        }
    }

    /// The weights of the steps (0 for a routed step) and the routed steps by index.
    fn steps(
        &mut self,
        steps: &At<Vec<At<RawStep>>>,
    ) -> Option<(Vec<u8>, BTreeMap<usize, StepRoute>)> {
        if steps.value.is_empty() {
            self.problem(
                "rollout.steps",
                Some(steps),
                "expected at least one step, e.g. [10, 25, 50, 100]",
            );
            return None;
        }
        let mut ok = true;
        let mut weights = Vec::with_capacity(steps.value.len());
        let mut routes = BTreeMap::new();
        // The last weighted step: weights increase among themselves, routed steps between
        // them hold no weighted share.
        let mut previous: Option<u8> = None;
        for (i, step) in steps.value.iter().enumerate() {
            let weight = match &step.value {
                RawStep::Weight(weight) => *weight,
                RawStep::Routed(routed) => {
                    match self.routed_step(i, step, routed) {
                        Some(route) => {
                            routes.insert(i, route);
                        }
                        None => ok = false,
                    }
                    weights.push(0);
                    continue;
                }
            };
            if !(1..=100).contains(&weight) {
                self.problem(
                    format!("rollout.steps[{i}]"),
                    Some(step),
                    format!("expected a canary weight from 1 to 100 (percent), not {weight}"),
                );
                ok = false;
                continue;
            }
            if let Some(previous) = previous
                && weight as u8 <= previous
            {
                self.problem(
                    format!("rollout.steps[{i}]"),
                    Some(step),
                    format!("steps must increase: {weight} comes after {previous}"),
                );
                ok = false;
            }
            previous = Some(weight as u8);
            weights.push(weight as u8);
        }
        if ok && weights.last() != Some(&100) {
            self.problem(
                "rollout.steps",
                Some(steps),
                "the last step must be 100 (reaching 100 % is the promotion)",
            );
            ok = false;
        }
        if ok && weights.len() < 2 {
            self.problem(
                "rollout.steps",
                Some(steps),
                "at least one step below 100 is needed: the comparison with baseline needs baseline traffic",
            );
            ok = false;
        }
        ok.then_some((weights, routes))
    }

    /// One routed step: exactly one of `header`, `cookie`, `mirror`, each well-formed.
    fn routed_step(
        &mut self,
        i: usize,
        at: &At<RawStep>,
        routed: &Result<RawRoutedStep, String>,
    ) -> Option<StepRoute> {
        let path = format!("rollout.steps[{i}]");
        let routed = match routed {
            Ok(routed) => routed,
            Err(message) => {
                self.problem(&path, Some(at), message.clone());
                return None;
            }
        };
        let mut routes = Vec::new();
        if let Some(header) = &routed.header {
            let name = header.name.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                self.problem(
                    format!("{path}.header.name"),
                    Some(at),
                    format!(
                        "{:?} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
                        header.name
                    ),
                );
                return None;
            }
            if header.value.is_empty() || header.value.chars().any(char::is_control) {
                self.problem(
                    format!("{path}.header.value"),
                    Some(at),
                    "expected the exact, non-empty header value that sends a request to the canary",
                );
                return None;
            }
            routes.push(StepRoute::Header {
                name: name.to_owned(),
                value: header.value.clone(),
            });
        }
        if let Some(cookie) = &routed.cookie {
            let name = &cookie.name;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
            {
                self.problem(
                    format!("{path}.cookie.name"),
                    Some(at),
                    format!("{name:?} is not a cookie name"),
                );
                return None;
            }
            routes.push(StepRoute::Cookie { name: name.clone() });
        }
        if let Some(mirror) = &routed.mirror {
            if !(1..=100).contains(&mirror.percent) {
                self.problem(
                    format!("{path}.mirror.percent"),
                    Some(at),
                    format!(
                        "expected the share of requests mirrored to the canary, 1 to 100 (percent), not {}",
                        mirror.percent
                    ),
                );
                return None;
            }
            routes.push(StepRoute::Mirror {
                percent: mirror.percent as u8,
            });
        }
        if routes.len() != 1 {
            self.problem(
                &path,
                Some(at),
                "a routed step has exactly one of `header`, `cookie` or `mirror` (a weight step is a number)",
            );
            return None;
        }
        routes.pop()
    }

    /// Routed steps only where the policy's router can carry them out: a router that cannot
    /// is refused here, by name, rather than found out when the step comes.
    pub(super) fn routes_supported(
        &mut self,
        gateway: &GatewaySpec,
        rollout: &RolloutSpec,
        raw: &RawRollout,
    ) {
        for (&index, route) in &rollout.routes {
            let refusal = route_refusal(gateway, route);
            if let Some(refusal) = refusal {
                let at = raw.steps.as_ref().and_then(|steps| steps.value.get(index));
                self.problem(format!("rollout.steps[{index}]"), at, refusal);
            }
        }
    }
}

/// Why `gateway` cannot carry out `route`, or `None` when it can: header matches and mirrors
/// on a Gateway API HTTPRoute, header and cookie matches on ingress-nginx's canary Ingress,
/// all three on an Istio VirtualService (whose weighted route is then named, not indexed).
fn route_refusal(gateway: &GatewaySpec, route: &StepRoute) -> Option<String> {
    // canary marks the request route it wrote once per object: two rules (or routes) of one
    // object would each take the other's mark for their own.
    let names: Vec<&str> = match gateway {
        GatewaySpec::HttpRoute(spec) => std::iter::once(spec.object.name.as_str())
            .chain(spec.more_routes.iter().map(|m| m.name.as_str()))
            .collect(),
        GatewaySpec::IstioVirtualService(spec) => std::iter::once(spec.object.name.as_str())
            .chain(spec.more_virtual_services.iter().map(|m| m.name.as_str()))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(twice) = names
        .iter()
        .enumerate()
        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
    {
        return Some(format!(
            "a `{}` step is not supported when the gateway names {twice:?} twice (two of its rules or routes): routed steps need each routing object once",
            route.kind()
        ));
    }
    let router = match gateway {
        GatewaySpec::HttpRoute(_) => match route {
            StepRoute::Header { .. } | StepRoute::Mirror { .. } => return None,
            StepRoute::Cookie { .. } => {
                return Some(
                    "a `cookie` step is not supported by the `http-route` router: HTTPRoute matches headers, paths and query parameters, not cookies (use a `header` step)".to_owned(),
                );
            }
        },
        GatewaySpec::NginxIngress(_) => match route {
            StepRoute::Header { .. } | StepRoute::Cookie { .. } => return None,
            StepRoute::Mirror { .. } => {
                return Some(
                    "a `mirror` step is not supported by the `nginx-ingress` router: an ingress-nginx canary Ingress splits by weight, header or cookie, it does not mirror (use an `http-route` router)".to_owned(),
                );
            }
        },
        GatewaySpec::Haproxy(spec) => {
            return match (route, &spec.route_acl) {
                (StepRoute::Mirror { .. }, _) => Some(
                    "a `mirror` step is not supported by the `haproxy` router: HAProxy's runtime API cannot make a backend copy requests (header and cookie steps can, through `route-acl`)".to_owned(),
                ),
                (_, None) => Some(format!(
                    "a `{}` step needs `gateway.haproxy.route-acl`: the ACL file haproxy.cfg's `use-server` rule reads, which canary fills with the runtime API (see docs/policy-reference.md, HAProxy header and cookie steps)",
                    route.kind()
                )),
                (StepRoute::Header { name, .. }, Some(acl))
                    if acl.reads == AclReads::Header(name.clone()) =>
                {
                    None
                }
                (StepRoute::Cookie { name }, Some(acl))
                    if acl.reads == AclReads::Cookie(name.clone()) =>
                {
                    None
                }
                (StepRoute::Header { name, .. }, Some(acl)) => Some(format!(
                    "the `gateway.haproxy.route-acl` reads {}, not {name:?}: a `header` step can only name the header the ACL reads (written the same way, as canary reads the step back by it)",
                    acl.reads
                )),
                (StepRoute::Cookie { name }, Some(acl)) => Some(format!(
                    "the `gateway.haproxy.route-acl` reads {}, not cookie {name:?}: a `cookie` step can only name the cookie the ACL reads",
                    acl.reads
                )),
            };
        }
        GatewaySpec::Nginx(_) => "nginx",
        GatewaySpec::Command(_) => "command",
        GatewaySpec::IstioVirtualService(spec) if spec.protocol != IstioProtocol::Http => {
            return Some(format!(
                "a `{}` step is not supported with `protocol: {}`: Istio's {} routes carry weights only (header, cookie and mirror steps need `protocol: http`)",
                route.kind(),
                spec.protocol.field(),
                spec.protocol.field()
            ));
        }
        GatewaySpec::IstioVirtualService(spec) => {
            let by_index = std::iter::once(&spec.route)
                .chain(spec.more_virtual_services.iter().map(|m| &m.rule))
                .find_map(|r| match r {
                    Some(RuleRef::Index(i)) => Some(*i),
                    _ => None,
                });
            return match (route, by_index) {
                (StepRoute::Header { .. } | StepRoute::Cookie { .. }, Some(i)) => Some(format!(
                    "a `{}` step inserts a route before `spec.http[{i}]`, which moves the route `gateway.istio-virtual-service` names by index: name it by its `name` instead",
                    route.kind()
                )),
                _ => None,
            };
        }
        GatewaySpec::SmiTrafficSplit(_) => "smi-traffic-split",
        GatewaySpec::TraefikService(_) => "traefik-service",
        GatewaySpec::ReplicaCount(_) => "replica-count",
    };
    Some(format!(
        "a `{}` step is not supported by the `{router}` router: it sets weights only (header and mirror steps need `http-route`; header and cookie steps `nginx-ingress` or `haproxy` with `route-acl`; all three `istio-virtual-service`)",
        route.kind()
    ))
}
