//! What in a policy reaches into the process that carries it out: files it reads, its
//! environment, programs it runs. A policy file run by `canary rollout` is the pipeline's
//! own; a `CanaryRollout` reconciled by `canary controller` is written by whoever may create
//! one in some namespace, and must not get the controller's mounted files, environment or
//! ServiceAccount token (a `metrics.http` header `{file: …/serviceaccount/token}` pointed at
//! a server of the author's choosing would send it there).

use super::{
    HeaderValueSpec, HookAction, JsonTransport, MetricsSourceSpec, NotificationChannel, Policy,
    PrometheusAuth, ProviderApi, SecretSource,
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

fn secret(field: String, source: &SecretSource) -> LocalAccess {
    let what = match source {
        SecretSource::File(path) => format!("reads the file {}", path.display()),
        SecretSource::Env(name) => format!("reads the environment variable {name}"),
    };
    LocalAccess { field, what }
}

impl Policy {
    /// Every part of this policy that reads the running process's files or environment or
    /// runs a program, in policy order. Empty for a policy that only talks to the servers it
    /// names with what it carries itself (and to a Kubernetes gateway).
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
        for (index, hook) in self.hooks.iter().enumerate() {
            let field = format!("hooks[{index}] ({})", hook.name);
            match &hook.action {
                HookAction::Command(argv) => found.push(LocalAccess {
                    field: format!("{field}.command"),
                    what: format!(
                        "runs the program {}",
                        argv.first().map_or("", String::as_str)
                    ),
                }),
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
    fn a_policy_that_only_names_servers_reaches_nothing_local() {
        let plain = shipped(
            "ml-api.yaml",
            include_str!("../../../../policies/ml-api.yaml"),
        );
        assert_eq!(fields(&plain), Vec::<String>::new());
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
        assert_eq!(found[2].what, "runs the program curl");
        assert_eq!(
            found[3].what,
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
