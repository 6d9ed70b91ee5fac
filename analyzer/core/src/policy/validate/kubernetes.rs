//! The Kubernetes targets: the `gateway` kinds that are Kubernetes resources (`http-route`,
//! `nginx-ingress`, `istio-virtual-service`, `smi-traffic-split`, `traefik-service`), the
//! `promotion`, and the rules they share (object names, namespaces, Service names, the two
//! backends, weight totals).

use super::*;

impl Validator {
    pub(super) fn promotion(
        &mut self,
        raw: &RawPromotion,
        has_gateway: bool,
    ) -> Option<Option<DeploymentPromotionSpec>> {
        let Some(kubernetes) = &raw.kubernetes else {
            self.problem::<()>("promotion", None, "expected `kubernetes`");
            return None;
        };
        let path = "promotion.kubernetes";
        if !has_gateway {
            self.problem::<()>(
                path,
                None,
                "a promotion routes the traffic back to the stable Deployment: it needs a `gateway`",
            );
        }
        let stable_name = self.kube_name(
            &format!("{path}.stable-deployment"),
            &kubernetes.stable_deployment,
        );
        let namespace = self.namespace(&format!("{path}.namespace"), kubernetes.namespace.as_ref());
        let stable = (|| {
            Some(KubeObjectRef {
                name: stable_name?,
                namespace: namespace?,
                context: kubernetes.context.clone(),
            })
        })();
        let canary = self.kube_name(
            &format!("{path}.canary-deployment"),
            &kubernetes.canary_deployment,
        );
        let distinct = if kubernetes.stable_deployment.value.trim()
            == kubernetes.canary_deployment.value.trim()
        {
            self.problem(
                format!("{path}.canary-deployment"),
                Some(&kubernetes.canary_deployment),
                "the canary and stable Deployments must differ",
            );
            None
        } else {
            Some(())
        };
        let timeout = self.positive_duration(
            &format!("{path}.timeout"),
            kubernetes.timeout.as_ref(),
            DEFAULT_PROMOTION_TIMEOUT,
        );
        if !has_gateway {
            return None;
        }
        distinct?;
        Some(Some(DeploymentPromotionSpec {
            stable: stable?,
            canary_deployment: canary?,
            timeout: timeout?,
        }))
    }

    /// The Kubernetes gateways: `None` when the gateway is not one of them, `Some(None)` when
    /// it is and has problems.
    pub(super) fn kubernetes_gateway(&mut self, raw: &RawGateway) -> Option<Option<GatewaySpec>> {
        if let Some(route) = &raw.http_route {
            let path = "gateway.http-route";
            let object =
                self.kube_object(path, &route.name, route.namespace.as_ref(), &route.context);
            let rule = self.rule_ref(&format!("{path}.rule"), route.rule.as_ref());
            let backends = self.backends(
                path,
                ("stable", &route.stable),
                ("canary", &route.canary),
                Validator::service_name,
            );
            let total =
                self.weight_total(&format!("{path}.weight-total"), route.weight_total.as_ref());
            let more = self.more_targets(
                &format!("{path}.more-routes"),
                (&route.name, route.rule.as_ref()),
                route
                    .more_routes
                    .iter()
                    .flatten()
                    .map(|m| (&m.name, m.rule.as_ref())),
                "rule",
                "HTTPRoute rule",
            );
            let generate = match &route.generate {
                None => Some(None),
                Some(raw) => self.generate_route(&format!("{path}.generate"), raw, route),
            };
            return Some((|| {
                let (stable, canary) = backends?;
                Some(GatewaySpec::HttpRoute(HttpRouteSpec {
                    object: object?,
                    rule: rule?,
                    stable,
                    canary,
                    weight_total: total?,
                    more_routes: more?,
                    generate: generate?,
                }))
            })());
        }
        if let Some(ingress) = &raw.nginx_ingress {
            let path = "gateway.nginx-ingress";
            let stable = self.kube_name(&format!("{path}.ingress"), &ingress.ingress);
            let canary_name = match &ingress.canary_ingress {
                Some(at) => self.kube_name(&format!("{path}.canary-ingress"), at),
                None => Some(format!("{}-canary", ingress.ingress.value.trim())),
            };
            let namespace =
                self.namespace(&format!("{path}.namespace"), ingress.namespace.as_ref());
            let create = match &ingress.create_canary {
                None => Some(None),
                Some(create) => self
                    .backends(
                        &format!("{path}.create-canary"),
                        ("stable-service", &create.stable_service),
                        ("canary-service", &create.canary_service),
                        Validator::service_name,
                    )
                    .map(|(stable_service, canary_service)| {
                        Some(CreateCanaryIngress {
                            stable_service,
                            canary_service,
                        })
                    }),
            };
            let total = self.weight_total(
                &format!("{path}.weight-total"),
                ingress.weight_total.as_ref(),
            );
            let prefix = self.annotation_prefix(
                &format!("{path}.annotation-prefix"),
                ingress.annotation_prefix.as_ref(),
            );
            if let (Some(stable), Some(canary)) = (&stable, &canary_name)
                && stable == canary
            {
                self.problem(
                    format!("{path}.canary-ingress"),
                    ingress.canary_ingress.as_ref(),
                    "the canary Ingress must not be the stable one",
                );
                return Some(None);
            }
            return Some((|| {
                Some(GatewaySpec::NginxIngress(NginxIngressSpec {
                    object: KubeObjectRef {
                        name: canary_name?,
                        namespace: namespace?,
                        context: ingress.context.clone(),
                    },
                    stable_ingress: stable?,
                    create_canary: create?,
                    weight_total: total?,
                    annotation_prefix: prefix?,
                }))
            })());
        }
        if let Some(vs) = &raw.istio_virtual_service {
            let path = "gateway.istio-virtual-service";
            let object = self.kube_object(path, &vs.name, vs.namespace.as_ref(), &vs.context);
            let route = self.rule_ref(&format!("{path}.route"), vs.route.as_ref());
            let stable = self.istio_destination(&format!("{path}.stable"), &vs.stable);
            let canary = self.istio_destination(&format!("{path}.canary"), &vs.canary);
            let api_version = self.api_version(
                &format!("{path}.api-version"),
                vs.api_version.as_ref(),
                &IstioVirtualServiceSpec::API_VERSIONS,
            );
            if let (Some(s), Some(c)) = (&stable, &canary)
                && s == c
            {
                self.problem(
                    format!("{path}.canary.host"),
                    Some(&vs.canary.host),
                    "the canary and stable destinations must differ (in host or subset)",
                );
                return Some(None);
            }
            let protocol = self.istio_protocol(&format!("{path}.protocol"), vs.protocol.as_ref());
            let more = self.more_targets(
                &format!("{path}.more-virtual-services"),
                (&vs.name, vs.route.as_ref()),
                vs.more_virtual_services
                    .iter()
                    .flatten()
                    .map(|m| (&m.name, m.route.as_ref())),
                "route",
                "VirtualService route",
            );
            // TLS and TCP routes have no `name`: they are picked by index or by holding both
            // destinations.
            if let Some(protocol) = protocol
                && protocol != IstioProtocol::Http
            {
                let named = std::iter::once((path.to_owned(), vs.route.as_ref())).chain(
                    vs.more_virtual_services
                        .iter()
                        .flatten()
                        .enumerate()
                        .map(|(i, m)| {
                            (
                                format!("{path}.more-virtual-services[{i}]"),
                                m.route.as_ref(),
                            )
                        }),
                );
                for (at_path, route) in named {
                    if let Some(at) = route
                        && let RawRuleRef::Name(name) = &at.value
                    {
                        self.problem(
                            format!("{at_path}.route"),
                            Some(at),
                            format!(
                                "Istio's {} routes have no `name`: give the index of the route in `spec.{}`, not {name:?}",
                                protocol.field(),
                                protocol.field()
                            ),
                        );
                        return Some(None);
                    }
                }
            }
            let destination_rule = match &vs.destination_rule {
                None => Some(None),
                Some(at) if vs.stable.subset.is_none() && vs.canary.subset.is_none() => {
                    self.problem(
                        format!("{path}.destination-rule"),
                        Some(at),
                        "is read for subset routes only: neither `stable` nor `canary` names a `subset`",
                    );
                    None
                }
                Some(at) => self
                    .kube_name(&format!("{path}.destination-rule"), at)
                    .map(Some),
            };
            let generate = match &vs.generate {
                None => Some(None),
                Some(raw) => self.generate_virtual_service(&format!("{path}.generate"), raw, vs),
            };
            return Some((|| {
                Some(GatewaySpec::IstioVirtualService(IstioVirtualServiceSpec {
                    object: object?,
                    route: route?,
                    stable: stable?,
                    canary: canary?,
                    api_version: api_version?,
                    protocol: protocol?,
                    more_virtual_services: more?,
                    destination_rule: destination_rule?,
                    generate: generate?,
                }))
            })());
        }
        if let Some(split) = &raw.smi_traffic_split {
            let path = "gateway.smi-traffic-split";
            let object =
                self.kube_object(path, &split.name, split.namespace.as_ref(), &split.context);
            let api_version = self.api_version(
                &format!("{path}.api-version"),
                split.api_version.as_ref(),
                &[
                    "split.smi-spec.io/v1alpha2",
                    "split.smi-spec.io/v1alpha3",
                    "split.smi-spec.io/v1alpha4",
                ],
            );
            let backends = self.backends(
                path,
                ("stable", &split.stable),
                ("canary", &split.canary),
                Validator::service_name,
            );
            let total =
                self.weight_total(&format!("{path}.weight-total"), split.weight_total.as_ref());
            let applied_by = api_version
                .as_deref()
                .and_then(|version| self.applied_by(path, split, version));
            return Some((|| {
                let (stable, canary) = backends?;
                Some(GatewaySpec::SmiTrafficSplit(SmiTrafficSplitSpec {
                    object: object?,
                    api_version: api_version?,
                    stable,
                    canary,
                    weight_total: total?,
                    applied_by: applied_by?,
                }))
            })());
        }
        if let Some(traefik) = &raw.traefik_service {
            let path = "gateway.traefik-service";
            let object = self.kube_object(
                path,
                &traefik.name,
                traefik.namespace.as_ref(),
                &traefik.context,
            );
            let api_version = self.api_version(
                &format!("{path}.api-version"),
                traefik.api_version.as_ref(),
                &["traefik.io/v1alpha1", "traefik.containo.us/v1alpha1"],
            );
            let backends = self.backends(
                path,
                ("stable", &traefik.stable),
                ("canary", &traefik.canary),
                Validator::traefik_service_entry,
            );
            let total = self.weight_total(
                &format!("{path}.weight-total"),
                traefik.weight_total.as_ref(),
            );
            return Some((|| {
                let (stable, canary) = backends?;
                Some(GatewaySpec::TraefikService(TraefikServiceSpec {
                    object: object?,
                    api_version: api_version?,
                    stable,
                    canary,
                    weight_total: total?,
                }))
            })());
        }
        if let Some(replicas) = &raw.replica_count {
            return Some(self.replica_count(replicas));
        }
        None
    }

    /// `gateway.replica-count`: two Deployments, a total of pods, how long they may take to
    /// be ready. Whether every step can be approximated by those pods is checked against the
    /// steps, in [`Validator::replica_steps`].
    fn replica_count(&mut self, raw: &RawReplicaCount) -> Option<GatewaySpec> {
        let path = "gateway.replica-count";
        let stable_name =
            self.kube_name(&format!("{path}.stable-deployment"), &raw.stable_deployment);
        let canary = self.kube_name(&format!("{path}.canary-deployment"), &raw.canary_deployment);
        let namespace = self.namespace(&format!("{path}.namespace"), raw.namespace.as_ref());
        let distinct = if raw.stable_deployment.value.trim() == raw.canary_deployment.value.trim() {
            self.problem(
                format!("{path}.canary-deployment"),
                Some(&raw.canary_deployment),
                "the canary and stable Deployments must differ",
            );
            None
        } else {
            Some(())
        };
        if let Some(context) = &raw.context
            && context.trim().is_empty()
        {
            self.problem::<()>(
                format!("{path}.context"),
                None,
                "expected a kubeconfig context name",
            );
            return None;
        }
        let replicas = match u32::try_from(raw.replicas.value) {
            Ok(n) if (2..=10_000).contains(&n) => Some(n),
            _ => {
                self.problem(
                    format!("{path}.replicas"),
                    Some(&raw.replicas),
                    format!(
                        "expected the pods of both Deployments together, from 2 (one canary, one stable) to 10000, not {}",
                        raw.replicas.value
                    ),
                );
                None
            }
        };
        let ready_timeout = self.positive_duration(
            &format!("{path}.ready-timeout"),
            raw.ready_timeout.as_ref(),
            DEFAULT_READY_TIMEOUT,
        );
        distinct?;
        Some(GatewaySpec::ReplicaCount(ReplicaCountSpec {
            stable: KubeObjectRef {
                name: stable_name?,
                namespace: namespace?,
                context: raw.context.clone(),
            },
            canary_deployment: canary?,
            replicas: replicas?,
            ready_timeout: ready_timeout?,
        }))
    }

    /// With `gateway.replica-count`, every analysed step must give the canary at least one
    /// pod and leave the stable version at least one (the baseline it is compared with):
    /// 5 % of 10 pods is 1 pod (10 %), but 2 % of 10 is none, and 96 % of 10 leaves none.
    pub(super) fn replica_steps(
        &mut self,
        raw: &RawReplicaCount,
        spec: &ReplicaCountSpec,
        steps: &[u8],
    ) {
        for &weight in steps.iter().filter(|&&w| w < 100) {
            let (canary, stable) = crate::ports::replica_split(weight, spec.replicas);
            if canary == 0 || stable == 0 {
                let who = if canary == 0 {
                    "no canary pod"
                } else {
                    "no stable pod to compare with"
                };
                self.problem(
                    "gateway.replica-count.replicas",
                    Some(&raw.replicas),
                    format!(
                        "the step at {weight} % of {} pods gives {who} ({canary} canary, {stable} stable, to the nearest pod); raise `replicas` or change the step",
                        spec.replicas
                    ),
                );
            }
        }
    }

    fn kube_object(
        &mut self,
        path: &str,
        name: &At<String>,
        namespace: Option<&At<String>>,
        context: &Option<String>,
    ) -> Option<KubeObjectRef> {
        let name = self.kube_name(&format!("{path}.name"), name);
        let namespace = self.namespace(&format!("{path}.namespace"), namespace);
        if let Some(context) = context
            && context.trim().is_empty()
        {
            self.problem::<()>(
                format!("{path}.context"),
                None,
                "expected a kubeconfig context name",
            );
            return None;
        }
        Some(KubeObjectRef {
            name: name?,
            namespace: namespace?,
            context: context.clone(),
        })
    }

    /// An object name: a DNS-1123 subdomain (lower-case letters, digits, `-` and `.`).
    fn kube_name(&mut self, path: &str, name: &At<String>) -> Option<String> {
        let value = name.value.trim();
        if is_dns_subdomain(value) {
            Some(value.to_owned())
        } else {
            self.problem(
                path,
                Some(name),
                format!("expected a Kubernetes object name (lower-case letters, digits, `-` and `.`, at most 253), not {:?}", name.value),
            );
            None
        }
    }

    /// A Service or namespace name: a DNS-1123 label.
    fn kube_label(&mut self, path: &str, name: &At<String>, what: &str) -> Option<String> {
        let value = name.value.trim();
        if is_dns_label(value) {
            Some(value.to_owned())
        } else {
            self.problem(
                path,
                Some(name),
                format!(
                    "expected {what} (lower-case letters, digits and `-`, at most 63), not {:?}",
                    name.value
                ),
            );
            None
        }
    }

    fn namespace(&mut self, path: &str, namespace: Option<&At<String>>) -> Option<Option<String>> {
        match namespace {
            None => Some(None),
            Some(at) => self.kube_label(path, at, "a namespace").map(Some),
        }
    }

    /// The two backends of a weighted Kubernetes target, the rule every such gateway shares:
    /// `stable` and `canary` (at `{path}.{field}`), each valid as `name` says, and different.
    /// `None` when any of that fails; every problem is recorded.
    fn backends(
        &mut self,
        path: &str,
        (stable_field, stable): (&str, &At<String>),
        (canary_field, canary): (&str, &At<String>),
        name: fn(&mut Validator, &str, &At<String>) -> Option<String>,
    ) -> Option<(String, String)> {
        let stable_name = name(self, &format!("{path}.{stable_field}"), stable);
        let canary_name = name(self, &format!("{path}.{canary_field}"), canary);
        let distinct = self.distinct(path, stable, canary);
        distinct?;
        Some((stable_name?, canary_name?))
    }

    /// A Service name: a DNS-1123 label.
    fn service_name(&mut self, path: &str, name: &At<String>) -> Option<String> {
        self.kube_label(path, name, "a Service name")
    }

    /// A TraefikService entry: it names a Service or another TraefikService
    /// (`name@provider`).
    fn traefik_service_entry(&mut self, path: &str, at: &At<String>) -> Option<String> {
        let name = at.value.trim();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
            self.problem(
                path,
                Some(at),
                format!(
                    "expected a service name as `spec.weighted.services[].name` writes it, not {:?}",
                    at.value
                ),
            );
            None
        } else {
            Some(name.to_owned())
        }
    }

    fn distinct(&mut self, path: &str, stable: &At<String>, canary: &At<String>) -> Option<()> {
        if stable.value.trim() == canary.value.trim() {
            self.problem(
                format!("{path}.canary"),
                Some(canary),
                "the canary and stable backends must differ",
            );
            None
        } else {
            Some(())
        }
    }

    fn rule_ref(&mut self, path: &str, raw: Option<&At<RawRuleRef>>) -> Option<Option<RuleRef>> {
        match raw {
            None => Some(None),
            Some(at) => match &at.value {
                RawRuleRef::Index(i) => match usize::try_from(*i) {
                    Ok(i) => Some(Some(RuleRef::Index(i))),
                    Err(_) => {
                        self.problem(
                            path,
                            Some(at),
                            format!("expected a name or an index from 0, not {i}"),
                        );
                        None
                    }
                },
                RawRuleRef::Name(name) if name.trim().is_empty() => {
                    self.problem(path, Some(at), "expected a name or an index from 0");
                    None
                }
                RawRuleRef::Name(name) => Some(Some(RuleRef::Name(name.trim().to_owned()))),
            },
        }
    }

    /// Where a TrafficSplit's weights show as applied: Linkerd's ServiceProfile unless the
    /// policy or the API version (v1alpha3/v1alpha4 are other meshes') says otherwise.
    fn applied_by(
        &mut self,
        path: &str,
        split: &RawSmiTrafficSplit,
        api_version: &str,
    ) -> Option<AppliedBy> {
        let linkerd_default = api_version == "split.smi-spec.io/v1alpha2";
        let as_written = split.service_profile.is_none()
            && split.cluster_domain.is_none()
            && split.apply_timeout.is_none();
        let linkerd = split
            .service_profile
            .as_ref()
            .map_or(linkerd_default, |at| at.value);
        if !linkerd {
            const NOT_READ: &str = "is about Linkerd's ServiceProfile, which is not read: set `service-profile: true` or remove it";
            if let Some(at) = &split.cluster_domain {
                self.problem(format!("{path}.cluster-domain"), Some(at), NOT_READ);
                return None;
            }
            if let Some(at) = &split.apply_timeout {
                self.problem(format!("{path}.apply-timeout"), Some(at), NOT_READ);
                return None;
            }
            return Some(AppliedBy::TrafficSplit {
                default: as_written,
            });
        }
        let cluster_domain = match &split.cluster_domain {
            None => AppliedBy::DEFAULT_CLUSTER_DOMAIN.to_owned(),
            Some(at) if is_dns_domain(&at.value) => at.value.clone(),
            Some(at) => {
                self.problem(
                    format!("{path}.cluster-domain"),
                    Some(at),
                    format!(
                        "expected a DNS domain such as cluster.local, not {:?}",
                        at.value
                    ),
                );
                return None;
            }
        };
        let apply_timeout = self.positive_duration(
            &format!("{path}.apply-timeout"),
            split.apply_timeout.as_ref(),
            AppliedBy::DEFAULT_APPLY_TIMEOUT,
        )?;
        Some(AppliedBy::LinkerdServiceProfile {
            cluster_domain,
            apply_timeout,
            default: as_written,
        })
    }

    fn weight_total(&mut self, path: &str, raw: Option<&At<i64>>) -> Option<u32> {
        match raw {
            None => Some(100),
            Some(at) => match u32::try_from(at.value) {
                Ok(total) if (100..=1_000_000).contains(&total) => Some(total),
                _ => {
                    self.problem(
                        path,
                        Some(at),
                        format!(
                            "expected a weight total from 100 to 1000000, not {}",
                            at.value
                        ),
                    );
                    None
                }
            },
        }
    }

    fn api_version(
        &mut self,
        path: &str,
        raw: Option<&At<String>>,
        known: &[&str],
    ) -> Option<String> {
        match raw {
            None => Some(known[0].to_owned()),
            Some(at) if known.contains(&at.value.trim()) => Some(at.value.trim().to_owned()),
            Some(at) => {
                self.problem(
                    path,
                    Some(at),
                    format!("expected one of {}, not {:?}", known.join(", "), at.value),
                );
                None
            }
        }
    }

    /// An annotation prefix: a DNS subdomain (lower-case labels of letters, digits and `-`,
    /// joined by dots), as Kubernetes requires of an annotation key's prefix.
    fn annotation_prefix(&mut self, path: &str, raw: Option<&At<String>>) -> Option<String> {
        let Some(at) = raw else {
            return Some(NginxIngressSpec::DEFAULT_ANNOTATION_PREFIX.to_owned());
        };
        let prefix = at.value.trim();
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if prefix.len() <= 253 && prefix.split('.').all(label_ok) {
            Some(prefix.to_owned())
        } else {
            self.problem(
                path,
                Some(at),
                format!(
                    "expected an annotation prefix such as {:?} (lower-case DNS labels joined by dots, no slash), not {:?}",
                    NginxIngressSpec::DEFAULT_ANNOTATION_PREFIX,
                    at.value
                ),
            );
            None
        }
    }

    /// `http-route.generate`: the route canary creates, one rule, owned by a Deployment.
    fn generate_route(
        &mut self,
        path: &str,
        raw: &RawGenerateHttpRoute,
        route: &RawHttpRoute,
    ) -> Option<Option<GenerateHttpRoute>> {
        let mut ok = true;
        if let Some(at) = &route.rule {
            self.problem(
                path,
                Some(at),
                "a generated HTTPRoute has one rule: leave `rule` out",
            );
            ok = false;
        }
        if route.more_routes.as_ref().is_some_and(|m| !m.is_empty()) {
            self.problem::<()>(
                path,
                None,
                "`generate` makes one HTTPRoute: it does not go with `more-routes`",
            );
            ok = false;
        }
        let gateway = self.kube_name(&format!("{path}.gateway"), &raw.gateway);
        let gateway_namespace = self.namespace(
            &format!("{path}.gateway-namespace"),
            raw.gateway_namespace.as_ref(),
        );
        let section_name = match &raw.section_name {
            None => Some(None),
            Some(at) => self
                .kube_name(&format!("{path}.section-name"), at)
                .map(Some),
        };
        let owner = self.kube_name(&format!("{path}.owner-deployment"), &raw.owner_deployment);
        let port = match u16::try_from(raw.port.value) {
            Ok(port) if port > 0 => Some(port),
            _ => {
                self.problem(
                    format!("{path}.port"),
                    Some(&raw.port),
                    format!("expected a port from 1 to 65535, not {}", raw.port.value),
                );
                None
            }
        };
        let mut hostnames = Vec::new();
        for (i, host) in raw.hostnames.iter().flatten().enumerate() {
            let host = host.trim();
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if is_dns_domain(bare) {
                hostnames.push(host.to_owned());
            } else {
                self.problem::<()>(
                    format!("{path}.hostnames[{i}]"),
                    None,
                    format!("expected a host name (`*.` allowed in front), not {host:?}"),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        Some(Some(GenerateHttpRoute {
            gateway: gateway?,
            gateway_namespace: gateway_namespace?,
            section_name: section_name?,
            hostnames,
            port: port?,
            owner_deployment: owner?,
        }))
    }

    /// `istio-virtual-service.generate`: the VirtualService canary creates, one HTTP route
    /// holding the two destinations, owned by a Deployment.
    fn generate_virtual_service(
        &mut self,
        path: &str,
        raw: &RawGenerateVirtualService,
        vs: &RawIstioVirtualService,
    ) -> Option<Option<GenerateVirtualService>> {
        let mut ok = true;
        if let Some(at) = &vs.route {
            self.problem(
                path,
                Some(at),
                "a generated VirtualService has one route: leave `route` out",
            );
            ok = false;
        }
        if vs
            .more_virtual_services
            .as_ref()
            .is_some_and(|m| !m.is_empty())
        {
            self.problem::<()>(
                path,
                None,
                "`generate` makes one VirtualService: it does not go with `more-virtual-services`",
            );
            ok = false;
        }
        if let Some(at) = &vs.protocol
            && at.value.trim() != "http"
        {
            self.problem(
                path,
                Some(at),
                "a generated VirtualService has one `http` route: leave `protocol` out",
            );
            ok = false;
        }
        if raw.hosts.is_empty() {
            self.problem::<()>(
                format!("{path}.hosts"),
                None,
                "expected at least one host (`spec.hosts`), e.g. [checkout.shop.svc.cluster.local]",
            );
            ok = false;
        }
        let mut hosts = Vec::new();
        for (i, host) in raw.hosts.iter().enumerate() {
            let host = host.trim();
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if is_dns_domain(bare) {
                hosts.push(host.to_owned());
            } else {
                self.problem::<()>(
                    format!("{path}.hosts[{i}]"),
                    None,
                    format!("expected a host name (`*.` allowed in front), not {host:?}"),
                );
                ok = false;
            }
        }
        let mut gateways = Vec::new();
        for (i, gateway) in raw.gateways.iter().flatten().enumerate() {
            let gateway = gateway.trim();
            let names_ok = gateway
                .split('/')
                .all(|part| is_dns_domain(part) && !part.contains('.'));
            if gateway.split('/').count() <= 2 && names_ok {
                gateways.push(gateway.to_owned());
            } else {
                self.problem::<()>(
                    format!("{path}.gateways[{i}]"),
                    None,
                    format!("expected an Istio Gateway as NAME or NAMESPACE/NAME (or `mesh`), not {gateway:?}"),
                );
                ok = false;
            }
        }
        let owner = self.kube_name(&format!("{path}.owner-deployment"), &raw.owner_deployment);
        if !ok {
            return None;
        }
        Some(Some(GenerateVirtualService {
            hosts,
            gateways,
            owner_deployment: owner?,
        }))
    }

    /// `protocol` of an Istio VirtualService gateway: `http` (default), `tls` or `tcp`.
    fn istio_protocol(&mut self, path: &str, raw: Option<&At<String>>) -> Option<IstioProtocol> {
        match raw.map(|at| (at, at.value.trim())) {
            None => Some(IstioProtocol::Http),
            Some((_, "http")) => Some(IstioProtocol::Http),
            Some((_, "tls")) => Some(IstioProtocol::Tls),
            Some((_, "tcp")) => Some(IstioProtocol::Tcp),
            Some((at, other)) => {
                self.problem(
                    path,
                    Some(at),
                    format!("expected `http`, `tls` or `tcp` (the VirtualService routes that hold the weights), not {other:?}"),
                );
                None
            }
        }
    }

    /// The more routing objects of a gateway (`more-routes`, `more-virtual-services`): each
    /// a valid name and rule, none the first object's rule again nor another entry's.
    fn more_targets<'a>(
        &mut self,
        path: &str,
        first: (&At<String>, Option<&At<RawRuleRef>>),
        more: impl Iterator<Item = (&'a At<String>, Option<&'a At<RawRuleRef>>)>,
        rule_field: &str,
        what: &str,
    ) -> Option<Vec<RouteTarget>> {
        let key = |name: &At<String>, rule: Option<&At<RawRuleRef>>| {
            let rule = match rule.map(|at| &at.value) {
                None => String::new(),
                Some(RawRuleRef::Index(i)) => format!("#{i}"),
                Some(RawRuleRef::Name(n)) => n.trim().to_owned(),
            };
            (name.value.trim().to_owned(), rule)
        };
        let mut seen = vec![key(first.0, first.1)];
        let mut targets = Vec::new();
        let mut ok = true;
        for (i, (name, rule)) in more.enumerate() {
            let at = format!("{path}[{i}]");
            let checked_name = self.kube_name(&format!("{at}.name"), name);
            let checked_rule = self.rule_ref(&format!("{at}.{rule_field}"), rule);
            let this = key(name, rule);
            if seen.contains(&this) {
                self.problem(
                    format!("{at}.name"),
                    Some(name),
                    format!(
                        "{what} {:?}{} is named twice: each object (or {rule_field}) once",
                        this.0,
                        if this.1.is_empty() {
                            String::new()
                        } else {
                            format!(" {rule_field} {}", this.1)
                        }
                    ),
                );
                ok = false;
                continue;
            }
            seen.push(this);
            match (checked_name, checked_rule) {
                (Some(name), Some(rule)) => targets.push(RouteTarget { name, rule }),
                _ => ok = false,
            }
        }
        ok.then_some(targets)
    }

    fn istio_destination(
        &mut self,
        path: &str,
        raw: &RawIstioDestination,
    ) -> Option<IstioDestination> {
        let host = raw.host.value.trim();
        let mut ok = true;
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            self.problem(
                format!("{path}.host"),
                Some(&raw.host),
                format!(
                    "expected a host as `destination.host` writes it, not {:?}",
                    raw.host.value
                ),
            );
            ok = false;
        }
        if let Some(subset) = &raw.subset
            && !is_dns_label(subset.trim())
        {
            self.problem::<()>(
                format!("{path}.subset"),
                None,
                format!("expected a DestinationRule subset name, not {subset:?}"),
            );
            ok = false;
        }
        ok.then(|| IstioDestination {
            host: host.to_owned(),
            subset: raw.subset.as_ref().map(|s| s.trim().to_owned()),
        })
    }
}

/// A DNS-1123 label: what Kubernetes accepts as a namespace or Service name.
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}
/// A DNS-1123 subdomain: what Kubernetes accepts as most objects' names.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Lowercase DNS labels (letters, digits, inner hyphens; 1–63 characters) joined by dots.
fn is_dns_domain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}
