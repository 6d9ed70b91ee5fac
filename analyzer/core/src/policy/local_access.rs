//! What in a policy reaches into the process that carries it out: files it reads, its
//! environment, programs it runs. A policy file run by `canary rollout` is the pipeline's
//! own; a `CanaryRollout` reconciled by `canary controller` is written by whoever may create
//! one in some namespace, and must not get the controller's mounted files, environment or
//! ServiceAccount token (a `metrics.http` header `{file: …/serviceaccount/token}` pointed at
//! a server of the author's choosing would send it there).
//!
//! Every gateway that is not a Kubernetes one counts: the command router runs programs, the
//! NGINX one writes a file anywhere and runs its reload command, and the HAProxy one opens
//! a local socket or connects, from the controller's pod, to any address the author names.

use super::{
    GatewaySpec, HeaderValueSpec, HookAction, JsonTransport, MetricsSourceSpec,
    NotificationChannel, Policy, PrometheusAuth, ProviderApi, SecretSource, SocketAddress,
};

/// What SigV4 signing reads.
const AWS_CREDENTIALS: &str = "signs with the process's AWS credentials (environment, shared \
                               credentials file or web-identity token file)";

/// One part of a policy that reads the running process's files or environment, or runs a
/// program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAccess {
    /// The field, as the policy names it (`metrics.prometheus.auth.bearer`).
    pub field: String,
    /// What it would do (`reads the file /run/token`).
    pub what: String,
}

impl std::fmt::Display for LocalAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.what)
    }
}

/// `runs the program NAME`, for an argv.
fn runs(field: &str, argv: &[String]) -> LocalAccess {
    LocalAccess {
        field: field.to_owned(),
        what: format!(
            "runs the program {}",
            argv.first().map_or("", String::as_str)
        ),
    }
}

/// What a gateway that is not a Kubernetes one reaches: all of it is the process's own
/// (its programs, its file system, its local sockets, its network position).
fn gateway_access(gateway: &GatewaySpec, found: &mut Vec<LocalAccess>) {
    match gateway {
        GatewaySpec::Haproxy(spec) => found.push(LocalAccess {
            field: "gateway.haproxy.socket".to_owned(),
            what: match &spec.socket {
                SocketAddress::Unix(path) => {
                    format!("opens the local socket {}", path.display())
                }
                SocketAddress::Tcp(address) => format!(
                    "connects from the process to {address} and sends it HAProxy runtime API \
                     commands"
                ),
            },
        }),
        GatewaySpec::Nginx(spec) => {
            found.push(LocalAccess {
                field: "gateway.nginx.upstream-file".to_owned(),
                what: format!("writes the file {}", spec.upstream_file.display()),
            });
            found.push(runs("gateway.nginx.reload", &spec.reload));
            if let Some(address) = spec.weight_probe {
                found.push(LocalAccess {
                    field: "gateway.nginx.weight-probe".to_owned(),
                    what: format!("connects from the process to {address}"),
                });
            }
        }
        GatewaySpec::Command(spec) => {
            found.push(runs("gateway.command.set", &spec.set));
            if let Some(get) = &spec.get {
                found.push(runs("gateway.command.get", get));
            }
        }
        GatewaySpec::HttpRoute(_)
        | GatewaySpec::NginxIngress(_)
        | GatewaySpec::IstioVirtualService(_)
        | GatewaySpec::SmiTrafficSplit(_)
        | GatewaySpec::TraefikService(_)
        | GatewaySpec::ReplicaCount(_) => {}
    }
}

fn secret(field: String, source: &SecretSource) -> LocalAccess {
    let what = match source {
        SecretSource::File(path) => format!("reads the file {}", path.display()),
        SecretSource::Env(name) => format!("reads the environment variable {name}"),
    };
    LocalAccess { field, what }
}

impl Policy {
    /// Every part of this policy that reads the running process's files or environment or
    /// runs a program, and every gateway that is not a Kubernetes one, in policy order.
    /// Empty for a policy that only talks to the metrics and hook servers it names with what
    /// it carries itself, and moves traffic through a Kubernetes gateway.
    pub fn local_access(&self) -> Vec<LocalAccess> {
        let mut found = Vec::new();
        match &self.metrics {
            MetricsSourceSpec::Prometheus(spec) => {
                let auth = "metrics.prometheus.auth";
                match &spec.auth {
                    PrometheusAuth::None => {}
                    PrometheusAuth::Bearer(source) => {
                        found.push(secret(format!("{auth}.bearer"), source));
                    }
                    PrometheusAuth::Basic { password, .. } => {
                        found.push(secret(format!("{auth}.basic.password"), password));
                    }
                    PrometheusAuth::OAuth2(oauth2) => found.push(secret(
                        format!("{auth}.oauth2.client-secret"),
                        &oauth2.client_secret,
                    )),
                    PrometheusAuth::SigV4(_) => found.push(LocalAccess {
                        field: format!("{auth}.sigv4"),
                        what: AWS_CREDENTIALS.to_owned(),
                    }),
                }
                for (name, value) in &spec.headers {
                    if let HeaderValueSpec::Secret(source) = value {
                        found.push(secret(format!("metrics.prometheus.headers.{name}"), source));
                    }
                }
                if let Some(path) = &spec.ca_file {
                    found.push(LocalAccess {
                        field: "metrics.prometheus.ca-file".to_owned(),
                        what: format!("reads the file {}", path.display()),
                    });
                }
                if let Some(cert) = &spec.client_cert {
                    found.push(LocalAccess {
                        field: "metrics.prometheus.client-cert".to_owned(),
                        what: format!(
                            "reads the files {} and {}",
                            cert.cert_file.display(),
                            cert.key_file.display()
                        ),
                    });
                }
            }
            MetricsSourceSpec::Scrape(_) => {}
            MetricsSourceSpec::Json(spec) => match &spec.transport {
                JsonTransport::Http(http) => {
                    let provider = spec.name();
                    for (name, value) in &http.headers {
                        if let HeaderValueSpec::Secret(source) = value {
                            // Datadog's keys are policy fields of their own.
                            let field = match (&spec.api, name.as_str()) {
                                (ProviderApi::Datadog, "DD-API-KEY") => "api-key".to_owned(),
                                (ProviderApi::Datadog, "DD-APPLICATION-KEY") => {
                                    "application-key".to_owned()
                                }
                                _ => format!("headers.{name}"),
                            };
                            found.push(secret(format!("metrics.{provider}.{field}"), source));
                        }
                    }
                    if let ProviderApi::CloudWatch(_) = spec.api {
                        found.push(LocalAccess {
                            field: "metrics.cloudwatch".to_owned(),
                            what: AWS_CREDENTIALS.to_owned(),
                        });
                    }
                }
                JsonTransport::Command(command) => {
                    found.push(LocalAccess {
                        field: "metrics.command.run".to_owned(),
                        what: format!(
                            "runs the program {}",
                            command.run.first().map_or("", |t| t.source.as_str())
                        ),
                    });
                    for name in &command.secret_env {
                        found.push(LocalAccess {
                            field: "metrics.command.secret-env".to_owned(),
                            what: format!("reads the environment variable {name}"),
                        });
                    }
                }
            },
        }
        if let Some(gateway) = &self.gateway {
            gateway_access(gateway, &mut found);
        }
        for (index, hook) in self.hooks.iter().enumerate() {
            let field = format!("hooks[{index}] ({})", hook.name);
            match &hook.action {
                HookAction::Command(argv) => found.push(runs(&format!("{field}.command"), argv)),
                HookAction::Webhook {
                    secret: Some(source),
                    ..
                } => found.push(secret(format!("{field}.webhook.secret"), source)),
                HookAction::Webhook { secret: None, .. } => {}
            }
        }
        for (index, notification) in self.notifications.iter().enumerate() {
            let field = format!("notifications[{index}]");
            match &notification.channel {
                NotificationChannel::Webhook {
                    secret: Some(source),
                    ..
                } => found.push(secret(format!("{field}.webhook.secret"), source)),
                NotificationChannel::Webhook { secret: None, .. } => {}
                NotificationChannel::Slack { url } => {
                    found.push(secret(format!("{field}.slack.url"), url));
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str, text: &str) -> Policy {
        Policy::from_yaml(text, name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn fields(policy: &Policy) -> Vec<String> {
        policy.local_access().into_iter().map(|a| a.field).collect()
    }

    #[test]
    fn a_policy_that_only_names_servers_and_a_kubernetes_gateway_reaches_nothing_local() {
        let plain = shipped(
            "storefront-istio.yaml",
            include_str!("../../../../policies/storefront-istio.yaml"),
        );
        assert_eq!(fields(&plain), Vec::<String>::new());
    }

    /// ml-api's policy (nothing local but its gateway) with `gateway` replaced by
    /// `gateway_yaml` (indented under `gateway:`).
    fn with_gateway(gateway_yaml: &str) -> Policy {
        let text = include_str!("../../../../policies/ml-api.yaml");
        let start = text.find("\ngateway:\n").expect("a gateway") + 1;
        let end = start
            + 1
            + text[start + 1..]
                .find("\n\n")
                .expect("a blank line after the gateway");
        let replaced = format!("{}gateway:\n{gateway_yaml}{}", &text[..start], &text[end..]);
        shipped("replaced.yaml", &replaced)
    }

    #[test]
    fn every_gateway_that_is_not_a_kubernetes_one_is_found_field_by_field() {
        let unix = with_gateway(
            "  haproxy: {socket: /run/haproxy/admin.sock, backend: b, canary-server: c, stable-server: s}\n",
        );
        assert_eq!(
            unix.local_access()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["gateway.haproxy.socket: opens the local socket /run/haproxy/admin.sock"]
        );
        let tcp = with_gateway(
            "  haproxy: {socket: 169.254.169.254:80, backend: b, canary-server: c, stable-server: s}\n",
        );
        assert_eq!(
            tcp.local_access()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "gateway.haproxy.socket: connects from the process to 169.254.169.254:80 and sends \
              it HAProxy runtime API commands"
            ]
        );
        let nginx = with_gateway(
            "  nginx: {upstream-file: /etc/passwd, upstream: u, canary: 10.0.0.2:80, stable: 10.0.0.1:80, reload: [touch, /tmp/x], weight-probe: 127.0.0.1:9181}\n",
        );
        let found = nginx.local_access();
        assert_eq!(
            fields(&nginx),
            [
                "gateway.nginx.upstream-file",
                "gateway.nginx.reload",
                "gateway.nginx.weight-probe"
            ],
            "{found:?}"
        );
        assert_eq!(found[0].what, "writes the file /etc/passwd");
        assert_eq!(found[1].what, "runs the program touch");
        let command = with_gateway("  command: {set: [sh, -c, 'echo {weight}'], get: [cat, w]}\n");
        let found = command.local_access();
        assert_eq!(
            fields(&command),
            ["gateway.command.set", "gateway.command.get"],
            "{found:?}"
        );
        assert_eq!(found[0].what, "runs the program sh");
        assert_eq!(found[1].what, "runs the program cat");
        let set_only = with_gateway("  command: {set: [deploy-weights, '{weight}']}\n");
        assert_eq!(fields(&set_only), ["gateway.command.set"]);
    }

    #[test]
    fn secret_files_and_variables_commands_and_aws_credentials_are_all_found() {
        let checkout = shipped(
            "checkout.yaml",
            include_str!("../../../../policies/checkout.yaml"),
        );
        let found = checkout.local_access();
        assert_eq!(
            fields(&checkout),
            [
                "metrics.prometheus.auth.bearer",
                "metrics.prometheus.ca-file",
                "gateway.haproxy.socket",
                "hooks[0] (smoke-test).command",
                "hooks[1] (announce).webhook.secret",
                "notifications[0].slack.url",
                "notifications[1].webhook.secret"
            ],
            "{found:?}"
        );
        assert_eq!(
            found[0].to_string(),
            "metrics.prometheus.auth.bearer: reads the file /var/run/secrets/canary/prometheus-token"
        );
        assert_eq!(found[3].what, "runs the program curl");
        assert_eq!(
            found[4].what,
            "reads the environment variable CANARY_WEBHOOK_SECRET"
        );
        let datadog = shipped(
            "orders-datadog.yaml",
            include_str!("../../../../policies/orders-datadog.yaml"),
        );
        let fields_of_datadog = fields(&datadog);
        for field in ["metrics.datadog.api-key", "metrics.datadog.application-key"] {
            assert!(
                fields_of_datadog.contains(&field.to_owned()),
                "{fields_of_datadog:?}"
            );
        }
        let cloudwatch = shipped(
            "orders-cloudwatch.yaml",
            include_str!("../../../../policies/orders-cloudwatch.yaml"),
        );
        assert!(
            fields(&cloudwatch).contains(&"metrics.cloudwatch".to_owned()),
            "{:?}",
            cloudwatch.local_access()
        );
        let amp = shipped(
            "orders-amp.yaml",
            include_str!("../../../../policies/orders-amp.yaml"),
        );
        assert!(
            fields(&amp).contains(&"metrics.prometheus.auth.sigv4".to_owned()),
            "{:?}",
            amp.local_access()
        );
    }
}
