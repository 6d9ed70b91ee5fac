//! The policy file as it is written: private serde types that mirror the YAML one to one.
//!
//! Every struct denies unknown fields, so a misspelt key is an error with its line, not a
//! silently ignored setting. Fields that validation talks about are wrapped in [`At`] so that
//! a message about them can name the line and column they were written on. Nothing here is
//! interpreted; `validate.rs` turns these into the public types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// A value together with where it was written in the file.
pub(crate) type At<T> = serde_saphyr::Spanned<T>;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(
    title = "canary policy",
    description = "One service's canary policy: how traffic moves, what is measured, and what decides."
)]
pub(crate) struct RawPolicy {
    /// The service this policy rolls out; names the state file and appears in reports.
    #[schemars(with = "String")]
    pub(crate) service: At<String>,
    /// How canary and baseline traffic are told apart in the metrics.
    pub(crate) traffic: RawTraffic,
    /// Where the evidence comes from.
    pub(crate) metrics: RawMetrics,
    /// The steps and their timing.
    #[serde(default)]
    pub(crate) rollout: RawRollout,
    /// What moves traffic (needed by `canary rollout`, not by `canary analyze`).
    #[serde(default)]
    pub(crate) gateway: Option<RawGateway>,
    /// What a successful rollout does after 100 % besides the weights (optional).
    #[serde(default)]
    pub(crate) promotion: Option<RawPromotion>,
    /// Commands or webhooks run before the rollout, at each step, on promote and on rollback.
    #[serde(default)]
    pub(crate) hooks: Vec<RawHook>,
    /// Where people are told about the rollout: generic JSON webhooks and Slack.
    #[serde(default)]
    pub(crate) notify: Vec<RawNotification>,
    /// What is judged.
    #[schemars(with = "Vec<RawCheck>")]
    pub(crate) checks: At<Vec<At<RawCheck>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTraffic {
    /// The label whose value tells the versions apart, e.g. `version`.
    #[schemars(with = "String")]
    pub(crate) label: At<String>,
    /// The label's value on canary series.
    #[schemars(with = "String")]
    pub(crate) canary: At<String>,
    /// The label's value on baseline series.
    #[schemars(with = "String")]
    pub(crate) baseline: At<String>,
    /// Label matchers common to both versions, in PromQL syntax: `job="checkout", env!="dev"`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) selector: Option<At<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMetrics {
    /// Read from a Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics).
    #[serde(default)]
    pub(crate) prometheus: Option<RawPrometheus>,
    /// Scrape the versions' `/metrics` endpoints directly (no Prometheus server).
    #[serde(default)]
    pub(crate) scrape: Option<RawScrape>,
    /// A generic provider: one HTTP request per check per tick, answering JSON read with a
    /// JSONPath per value (New Relic, InfluxDB, an internal API). Checks then say `json`.
    #[serde(default)]
    pub(crate) http: Option<RawHttpProvider>,
    /// A generic provider: one command per check per tick, printing JSON on stdout, read
    /// with a JSONPath per value. Checks then say `json`.
    #[serde(default)]
    pub(crate) command: Option<RawCommandProvider>,
    /// Datadog's metrics query API, with an API key and an application key. Checks then say
    /// `datadog`.
    #[serde(default)]
    pub(crate) datadog: Option<RawDatadog>,
    /// Amazon CloudWatch (`GetMetricData`, signed with SigV4). Checks then say `cloudwatch`.
    #[serde(default)]
    pub(crate) cloudwatch: Option<RawCloudWatch>,
}

/// Datadog's metrics query API (`GET /api/v1/query`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDatadog {
    /// The Datadog site: `datadoghq.com` (default), `us3.datadoghq.com`, `us5.datadoghq.com`,
    /// `datadoghq.eu`, `ap1.datadoghq.com`, `ddog-gov.com`; requests go to `https://api.SITE`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) site: Option<At<String>>,
    /// Instead of `site`: the API's base URL, e.g. a proxy's `https://dd-proxy.internal:8443`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) url: Option<At<String>>,
    /// The API key (`DD-API-KEY`): `{env: VARIABLE}` or `{file: PATH}`, a secret.
    #[schemars(with = "RawSecretRef")]
    pub(crate) api_key: At<RawSecretRef>,
    /// The application key (`DD-APPLICATION-KEY`): `{env: VARIABLE}` or `{file: PATH}`.
    #[schemars(with = "RawSecretRef")]
    pub(crate) application_key: At<RawSecretRef>,
    /// Timeout of one request (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
    /// Retries after a timeout, connection error, 429 or 5xx answer (default 3).
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    /// How late the provider makes datapoints available: each tick reads the data up to
    /// `lag` before it, and every step (and the final soak) lasts `lag` longer, so that no
    /// decision is made on data that has not arrived. Default: `2m`.
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) lag: Option<At<RawDuration>>,
    /// Largest answer read (default `32MiB`).
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) max_answer_size: Option<At<RawScalar>>,
}

/// Amazon CloudWatch `GetMetricData`, credentials found as for `prometheus.sigv4`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCloudWatch {
    /// The AWS region, e.g. `eu-west-1`.
    #[schemars(with = "String")]
    pub(crate) region: At<String>,
    /// The shared credentials file's profile (default: `AWS_PROFILE`, else `default`).
    #[serde(default)]
    pub(crate) profile: Option<String>,
    /// The endpoint (default `https://monitoring.REGION.amazonaws.com`), e.g. a VPC
    /// endpoint's.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) endpoint: Option<At<String>>,
    /// Timeout of one request (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
    /// Retries after a timeout, connection error, throttling or 5xx answer (default 3).
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    /// How late the provider makes datapoints available: each tick reads the data up to
    /// `lag` before it, and every step (and the final soak) lasts `lag` longer, so that no
    /// decision is made on data that has not arrived. Default: `3m`.
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) lag: Option<At<RawDuration>>,
    /// Largest answer read (default `32MiB`).
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) max_answer_size: Option<At<RawScalar>>,
}

/// The generic HTTP-JSON provider.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHttpProvider {
    /// The request's URL, a template: `{{query}}` (the check's query), `{{canary}}`,
    /// `{{baseline}}`, `{{label}}`, `{{start}}`, `{{end}}` (RFC 3339), `{{start_unix}}`,
    /// `{{end_unix}}`, `{{start_ms}}`, `{{end_ms}}`, `{{window}}` (seconds), `{{check}}`;
    /// percent-encoded where they go.
    #[schemars(with = "String")]
    pub(crate) url: At<String>,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) method: Option<At<String>>,
    /// The body of a POST, a template like the URL (values JSON-escaped when the content
    /// type is JSON, as written otherwise).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) body: Option<At<String>>,
    /// The body's content type (default `application/json`).
    #[serde(default)]
    pub(crate) content_type: Option<String>,
    /// Extra request headers; a credential is `{env: VARIABLE}` or `{file: PATH}` (a secret:
    /// never shown, redacted from every output).
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, RawHeaderValue>,
    /// Timeout of one request (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
    /// Retries after a timeout, connection error, 429 or 5xx answer (default 3).
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    /// Largest answer read (default `32MiB`).
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) max_answer_size: Option<At<RawScalar>>,
}

/// The generic command provider.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCommandProvider {
    /// The program and its arguments (no shell), each a template like `metrics.http.url`'s
    /// (values as written). It prints one JSON document on stdout and exits 0.
    #[schemars(with = "Vec<String>")]
    pub(crate) run: At<Vec<String>>,
    /// Environment variables holding the credentials the command uses (it inherits
    /// canary's environment): read when canary starts (a missing one is exit 2) and
    /// redacted from everything the command prints.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) secret_env: Option<At<Vec<String>>>,
    /// Timeout of one run (default 10s); the command is killed then.
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
    /// Largest output read (default `32MiB`).
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) max_answer_size: Option<At<RawScalar>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawPrometheus {
    /// Base URL of the HTTP API, e.g. `http://prometheus:9090` (may be overridden by `--prometheus`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) url: Option<At<String>>,
    /// File holding a bearer token (read at run time; never logged).
    #[serde(default)]
    pub(crate) bearer_token_file: Option<String>,
    /// Environment variable holding a bearer token (never logged).
    #[serde(default)]
    pub(crate) bearer_token_env: Option<String>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub(crate) basic_auth: Option<RawBasicAuth>,
    /// Extra request headers, e.g. `X-Scope-OrgID` for Mimir or Cortex tenants. A value that
    /// is a credential is read at run time, never written here: `{file: PATH}` or
    /// `{env: VARIABLE}` (it is then a secret: never shown, redacted from every output).
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, RawHeaderValue>,
    /// PEM bundle of certificate authorities to trust in addition to the system's.
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
    /// Turn TLS certificate verification off. Loudly warned about at every run.
    #[serde(default)]
    pub(crate) insecure_skip_tls_verify: bool,
    /// Timeout of one HTTP request (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
    /// Retries after a timeout, connection error, 429 or 5xx answer (default 3).
    #[serde(default)]
    pub(crate) retries: Option<u32>,
    /// Largest answer read (default `32MiB`); a larger one is an `error` verdict for its
    /// check, cut off while it streams in.
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) max_answer_size: Option<At<RawScalar>>,
    /// Most series one answer may hold (default 10000); more is an `error` verdict.
    #[serde(default)]
    pub(crate) max_series: Option<u32>,
    /// Judge answers that carry warnings (a partial answer from Thanos, VictoriaMetrics'
    /// `isPartial`) as usual, passing the warnings on, instead of as `error` (default false).
    #[serde(default)]
    pub(crate) accept_warnings: bool,
    /// Sign every request with AWS Signature Version 4 (Amazon Managed Service for
    /// Prometheus). Credentials come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
    /// (`AWS_SESSION_TOKEN`), else the shared credentials file's profile, else a web-identity
    /// token (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, as EKS IRSA sets them).
    #[serde(default)]
    pub(crate) sigv4: Option<RawSigV4>,
    /// OAuth2 client credentials: a bearer token from a token endpoint, cached until it
    /// expires.
    #[serde(default)]
    pub(crate) oauth2: Option<RawOAuth2>,
    /// PEM file of a client certificate presented to the server (mutual TLS); needs
    /// `client-key-file`.
    #[serde(default)]
    pub(crate) client_cert_file: Option<String>,
    /// PEM file of the client certificate's private key (read as a secret).
    #[serde(default)]
    pub(crate) client_key_file: Option<String>,
    /// An HTTP(S) proxy for every request, e.g. `http://proxy:3128` (the environment's
    /// `HTTP_PROXY` is never used).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) proxy_url: Option<At<String>>,
}

/// AWS Signature Version 4.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSigV4 {
    /// The AWS region, e.g. `us-east-1`.
    #[schemars(with = "String")]
    pub(crate) region: At<String>,
    /// The service signed for (default `aps`, Amazon Managed Service for Prometheus).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) service: Option<At<String>>,
    /// The shared credentials file's profile (default: `AWS_PROFILE`, else `default`).
    #[serde(default)]
    pub(crate) profile: Option<String>,
}

/// OAuth2 client credentials.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawOAuth2 {
    /// The token endpoint, e.g. `https://login.example.com/oauth2/token`.
    #[schemars(with = "String")]
    pub(crate) token_url: At<String>,
    /// The client's identifier.
    pub(crate) client_id: String,
    /// File holding the client secret.
    #[serde(default)]
    pub(crate) client_secret_file: Option<String>,
    /// Environment variable holding the client secret.
    #[serde(default)]
    pub(crate) client_secret_env: Option<String>,
    /// Scopes to ask for.
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
}

/// An extra header's value: written in the policy, or a secret read at run time.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum RawHeaderValue {
    /// The value itself (not a secret: it is in the policy for all to read).
    Plain(String),
    /// A secret value, read from a file or an environment variable.
    Secret(RawSecretRef),
}

/// Where a secret header value is read from: exactly one of `file` and `env`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecretRef {
    /// A file whose content (trimmed) is the value.
    #[serde(default)]
    pub(crate) file: Option<String>,
    /// An environment variable holding the value.
    #[serde(default)]
    pub(crate) env: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawBasicAuth {
    /// User name.
    pub(crate) username: String,
    /// File holding the password.
    #[serde(default)]
    pub(crate) password_file: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub(crate) password_env: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawScrape {
    /// `/metrics` URLs of the canary's instances.
    #[schemars(with = "Vec<String>")]
    pub(crate) canary: At<Vec<String>>,
    /// `/metrics` URLs of the baseline's instances.
    #[schemars(with = "Vec<String>")]
    pub(crate) baseline: At<Vec<String>>,
    /// Timeout of one scrape (default 5s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRollout {
    /// Canary weights in percent, strictly increasing, ending at 100 (default [10, 25, 50, 100]).
    /// A step may instead route by request: `{header: {name: X-Canary, value: "1"}}`,
    /// `{cookie: {name: canary}}` (requests matching go to the canary, the rest to stable) or
    /// `{mirror: {percent: 20}}` (stable serves everything, a copy goes to the canary).
    #[serde(default)]
    #[schemars(with = "Option<Vec<RawStepSchema>>")]
    pub(crate) steps: Option<At<Vec<At<RawStep>>>>,
    /// How long each analysed step lasts when the evidence is enough (default 5m).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) step_duration: Option<At<RawDuration>>,
    /// How long a step may be extended while evidence is short (default 3 × step-duration).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) max_step_duration: Option<At<RawDuration>>,
    /// How often the checks are evaluated (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) interval: Option<At<RawDuration>>,
    /// Canary requests a step needs before it may advance (default 100).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub(crate) min_requests: Option<At<i64>>,
    /// The false-rollback budget: the probability that a healthy canary is ever rolled back
    /// by the comparison checks (default 1%). Split equally across the checks' criteria.
    #[serde(default)]
    #[schemars(with = "Option<RawFraction>")]
    pub(crate) alpha: Option<At<RawFraction>>,
    /// What to do when a step ends without enough evidence: `rollback` (default) or `hold`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) on_inconclusive: Option<At<String>>,
    /// What SIGINT/SIGTERM does to a running rollout: `leave` it where it stands to be
    /// resumed (default), or `rollback`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) on_interrupt: Option<At<String>>,
    /// A final soak at 100 %, judged by absolute bounds alone (default none).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) final_soak: Option<At<RawDuration>>,
    /// Consecutive ticks whose metrics could not be read before the rollout stops with
    /// exit code 4, state kept (default 3).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub(crate) max_failed_ticks: Option<At<i64>>,
    /// What to do when the metrics could not be read `max-failed-ticks` times in a row:
    /// `leave` the canary where it stands for a rerun to resume (default), or `rollback`
    /// to weight 0. The rollout exits with code 4 either way.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) on_metrics_unavailable: Option<At<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawGateway {
    /// HAProxy's runtime API (`set server BACKEND/SERVER weight N`).
    #[serde(default)]
    pub(crate) haproxy: Option<RawHaproxy>,
    /// An NGINX upstream include file with weighted servers, reloaded after each change.
    #[serde(default)]
    pub(crate) nginx: Option<RawNginx>,
    /// A user command run with the weight, for any other router.
    #[serde(default)]
    pub(crate) command: Option<RawCommandRouter>,
    /// Kubernetes Gateway API: the weights of two `backendRefs` of an `HTTPRoute` rule.
    #[serde(default)]
    pub(crate) http_route: Option<RawHttpRoute>,
    /// ingress-nginx: the `canary-weight` annotation of a canary `Ingress`.
    #[serde(default)]
    pub(crate) nginx_ingress: Option<RawNginxIngress>,
    /// Istio: the weights of two destinations of a `VirtualService` HTTP route.
    #[serde(default)]
    pub(crate) istio_virtual_service: Option<RawIstioVirtualService>,
    /// SMI (Linkerd): the weights of two backends of a `TrafficSplit`.
    #[serde(default)]
    pub(crate) smi_traffic_split: Option<RawSmiTrafficSplit>,
    /// Traefik: the weights of two services of a weighted `TraefikService`.
    #[serde(default)]
    pub(crate) traefik_service: Option<RawTraefikService>,
    /// No traffic splitter: two Deployments behind one Service, the canary's share set by
    /// their replica counts and measured by their ready pods.
    #[serde(default)]
    pub(crate) replica_count: Option<RawReplicaCount>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawReplicaCount {
    /// The stable version's Deployment.
    #[schemars(with = "String")]
    pub(crate) stable_deployment: At<String>,
    /// The canary's Deployment (scaled to 0 before the first step and after a rollback).
    #[schemars(with = "String")]
    pub(crate) canary_deployment: At<String>,
    /// The pods of both Deployments together, kept through the rollout (from 2).
    #[schemars(with = "u32")]
    pub(crate) replicas: At<i64>,
    /// Their namespace (default: the kubeconfig context's, or the pod's own).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) namespace: Option<At<String>>,
    /// The kubeconfig context to use (default: the current context; ignored in a cluster).
    #[serde(default)]
    pub(crate) context: Option<String>,
    /// How long the pods of a new split may take to become ready (default 5m).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) ready_timeout: Option<At<RawDuration>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHttpRoute {
    /// The HTTPRoute's name.
    #[schemars(with = "String")]
    pub(crate) name: At<String>,
    /// Its namespace (default: the kubeconfig context's namespace, or the pod's own in a cluster).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) namespace: Option<At<String>>,
    /// The kubeconfig context to use (default: the current context; ignored in a cluster).
    #[serde(default)]
    pub(crate) context: Option<String>,
    /// Which rule: its `name`, or its index in `spec.rules` (default: the one rule whose
    /// `backendRefs` hold both backends).
    #[serde(default)]
    #[schemars(with = "Option<RawRuleRef>")]
    pub(crate) rule: Option<At<RawRuleRef>>,
    /// The stable version's backend (a Service name in `backendRefs`).
    #[schemars(with = "String")]
    pub(crate) stable: At<String>,
    /// The canary's backend (a Service name in `backendRefs`).
    #[schemars(with = "String")]
    pub(crate) canary: At<String>,
    /// What the two weights add up to (default 100).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub(crate) weight_total: Option<At<i64>>,
    /// More HTTPRoutes (in the same namespace) routing the same two Services, or more rules
    /// of this one: each set with the first and read back at every tick.
    #[serde(default)]
    pub(crate) more_routes: Option<Vec<RawMoreRoute>>,
    /// Create the HTTPRoute when it is missing (one rule, the two Services), owned by a
    /// Deployment, so that no GitOps tool holds its weights.
    #[serde(default)]
    pub(crate) generate: Option<RawGenerateHttpRoute>,
}

/// The HTTPRoute canary creates.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawGenerateHttpRoute {
    /// The Gateway it attaches to (`parentRefs[0].name`).
    #[schemars(with = "String")]
    pub(crate) gateway: At<String>,
    /// The Gateway's namespace (default: the route's).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) gateway_namespace: Option<At<String>>,
    /// The Gateway's listener (`parentRefs[0].sectionName`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) section_name: Option<At<String>>,
    /// `spec.hostnames` (default: none, the listener's).
    #[serde(default)]
    pub(crate) hostnames: Option<Vec<String>>,
    /// The port of both Services.
    #[schemars(with = "u16")]
    pub(crate) port: At<i64>,
    /// The Deployment (in the route's namespace) that owns the route: deleting it deletes the
    /// route.
    #[schemars(with = "String")]
    pub(crate) owner_deployment: At<String>,
}

/// One more HTTPRoute of a rollout.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMoreRoute {
    /// The HTTPRoute's name (in the first one's namespace).
    #[schemars(with = "String")]
    pub(crate) name: At<String>,
    /// Which rule: its `name` or index (default: the one rule holding both backends).
    #[serde(default)]
    #[schemars(with = "Option<RawRuleRef>")]
    pub(crate) rule: Option<At<RawRuleRef>>,
}

/// One more VirtualService of a rollout.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMoreVirtualService {
    /// The VirtualService's name (in the first one's namespace).
    #[schemars(with = "String")]
    pub(crate) name: At<String>,
    /// Which route: its `name` or index (default: the one route holding both destinations).
    #[serde(default)]
    #[schemars(with = "Option<RawRuleRef>")]
    pub(crate) route: Option<At<RawRuleRef>>,
}

/// A rule or route named by its `name` or by its index.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum RawRuleRef {
    /// Its index in the list, from 0.
    Index(i64),
    /// Its `name`.
    Name(String),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawNginxIngress {
    /// The stable version's Ingress (only read; copied when the canary Ingress is created).
    #[schemars(with = "String")]
    pub(crate) ingress: At<String>,
    /// The canary Ingress, whose `nginx.ingress.kubernetes.io/canary-weight` is set
    /// (default: `<ingress>-canary`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) canary_ingress: Option<At<String>>,
    /// Their namespace (default: the kubeconfig context's namespace, or the pod's own).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) namespace: Option<At<String>>,
    /// The kubeconfig context to use (default: the current context; ignored in a cluster).
    #[serde(default)]
    pub(crate) context: Option<String>,
    /// Create the canary Ingress from the stable one when it does not exist: same rules,
    /// with the stable Service replaced by the canary's, and the canary annotations.
    #[serde(default)]
    pub(crate) create_canary: Option<RawCreateCanaryIngress>,
    /// The `canary-weight-total` the controller uses (default 100).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub(crate) weight_total: Option<At<i64>>,
    /// The prefix of the controller's annotations, as its `--annotations-prefix` flag sets it
    /// (default `nginx.ingress.kubernetes.io`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) annotation_prefix: Option<At<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCreateCanaryIngress {
    /// The stable version's Service, as the stable Ingress' backends name it.
    #[schemars(with = "String")]
    pub(crate) stable_service: At<String>,
    /// The canary's Service, which the copy points to instead.
    #[schemars(with = "String")]
    pub(crate) canary_service: At<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIstioVirtualService {
    /// The VirtualService's name.
    #[schemars(with = "String")]
    pub(crate) name: At<String>,
    /// Its namespace (default: the kubeconfig context's namespace, or the pod's own).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) namespace: Option<At<String>>,
    /// The kubeconfig context to use (default: the current context; ignored in a cluster).
    #[serde(default)]
    pub(crate) context: Option<String>,
    /// Which HTTP route: its `name`, or its index in `spec.http` (default: the one route
    /// holding both destinations).
    #[serde(default)]
    #[schemars(with = "Option<RawRuleRef>")]
    pub(crate) route: Option<At<RawRuleRef>>,
    /// The stable version's destination.
    pub(crate) stable: RawIstioDestination,
    /// The canary's destination.
    pub(crate) canary: RawIstioDestination,
    /// The API version: `networking.istio.io/v1` (default; Istio 1.22 and later),
    /// `networking.istio.io/v1beta1` or `networking.istio.io/v1alpha3` (older releases).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) api_version: Option<At<String>>,
    /// Which routes hold the weights: `http` (default), `tls` or `tcp` (weights only, routes
    /// named by index: Istio's TLS and TCP routes have no names).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) protocol: Option<At<String>>,
    /// More VirtualServices (in the same namespace) with the same two destinations, or more
    /// routes of this one: each set with the first and read back at every tick.
    #[serde(default)]
    pub(crate) more_virtual_services: Option<Vec<RawMoreVirtualService>>,
    /// The DestinationRule that defines the `subset`s of `stable` and `canary`, checked before
    /// the first weight moves (default: the one named like the host's first label,
    /// `checkout` for `checkout.shop.svc.cluster.local`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) destination_rule: Option<At<String>>,
    /// Create the VirtualService when it is missing (one HTTP route, the two destinations),
    /// owned by a Deployment, so that no GitOps tool holds its weights.
    #[serde(default)]
    pub(crate) generate: Option<RawGenerateVirtualService>,
}

/// The VirtualService canary creates.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawGenerateVirtualService {
    /// `spec.hosts`: the hosts whose requests it routes.
    pub(crate) hosts: Vec<String>,
    /// `spec.gateways` (default: none, the mesh's sidecars only): `NAME` or `NAMESPACE/NAME`
    /// of Istio Gateways, or `mesh`.
    #[serde(default)]
    pub(crate) gateways: Option<Vec<String>>,
    /// The Deployment (in the VirtualService's namespace) that owns it: deleting the
    /// Deployment deletes the VirtualService.
    #[schemars(with = "String")]
    pub(crate) owner_deployment: At<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIstioDestination {
    /// `destination.host`, as written in the VirtualService.
    #[schemars(with = "String")]
    pub(crate) host: At<String>,
    /// `destination.subset` (subset routing: the same host, two DestinationRule subsets).
    #[serde(default)]
    pub(crate) subset: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSmiTrafficSplit {
    /// The TrafficSplit's name.
    #[schemars(with = "String")]
    pub(crate) name: At<String>,
    /// Its namespace (default: the kubeconfig context's namespace, or the pod's own).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) namespace: Option<At<String>>,
    /// The kubeconfig context to use (default: the current context; ignored in a cluster).
    #[serde(default)]
    pub(crate) context: Option<String>,
    /// The API version: `split.smi-spec.io/v1alpha2` (default; Linkerd's SMI extension
    /// serves v1alpha1 and v1alpha2), `v1alpha3` or `v1alpha4` (Open Service Mesh); integer
    /// weights only: v1alpha1's quantities are not supported.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) api_version: Option<At<String>>,
    /// The stable version's backend Service.
    #[schemars(with = "String")]
    pub(crate) stable: At<String>,
    /// The canary's backend Service.
    #[schemars(with = "String")]
    pub(crate) canary: At<String>,
    /// What the two weights add up to (default 100).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub(crate) weight_total: Option<At<i64>>,
    /// Whether a weight counts only once Linkerd applies it: the `dstOverrides` of the
    /// ServiceProfile linkerd-smi makes from the TrafficSplit (default: true with
    /// `split.smi-spec.io/v1alpha2`, which is Linkerd's; false with v1alpha3/v1alpha4).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub(crate) service_profile: Option<At<bool>>,
    /// The cluster domain the ServiceProfile's name and authorities end in (default
    /// `cluster.local`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) cluster_domain: Option<At<String>>,
    /// How long to wait for linkerd-smi to apply a weight written (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) apply_timeout: Option<At<RawDuration>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTraefikService {
    /// The TraefikService's name.
    #[schemars(with = "String")]
    pub(crate) name: At<String>,
    /// Its namespace (default: the kubeconfig context's namespace, or the pod's own).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) namespace: Option<At<String>>,
    /// The kubeconfig context to use (default: the current context; ignored in a cluster).
    #[serde(default)]
    pub(crate) context: Option<String>,
    /// The API version: `traefik.io/v1alpha1` (default; Traefik 3) or
    /// `traefik.containo.us/v1alpha1` (Traefik 2).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) api_version: Option<At<String>>,
    /// The stable version's entry in `spec.weighted.services` (its `name`).
    #[schemars(with = "String")]
    pub(crate) stable: At<String>,
    /// The canary's entry in `spec.weighted.services` (its `name`).
    #[schemars(with = "String")]
    pub(crate) canary: At<String>,
    /// What the two weights add up to (default 100).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub(crate) weight_total: Option<At<i64>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawPromotion {
    /// The Flagger model: after 100 %, the stable Deployment gets the canary's pod template,
    /// its rollout is awaited, traffic goes back to it, and the canary is scaled to 0.
    #[serde(default)]
    pub(crate) kubernetes: Option<RawKubernetesPromotion>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawKubernetesPromotion {
    /// The stable version's Deployment, which gets the canary's pod template.
    #[schemars(with = "String")]
    pub(crate) stable_deployment: At<String>,
    /// The canary's Deployment, scaled to 0 at the end.
    #[schemars(with = "String")]
    pub(crate) canary_deployment: At<String>,
    /// Their namespace (default: the kubeconfig context's, or the pod's own).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) namespace: Option<At<String>>,
    /// The kubeconfig context to use (default: the current context; ignored in a cluster).
    #[serde(default)]
    pub(crate) context: Option<String>,
    /// How long the stable Deployment's rollout may take (default 10m).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHaproxy {
    /// The runtime API: a unix socket path (`/run/haproxy/admin.sock`) or `host:port`.
    #[schemars(with = "String")]
    pub(crate) socket: At<String>,
    /// The backend holding both servers.
    pub(crate) backend: String,
    /// The canary's server name in that backend.
    pub(crate) canary_server: String,
    /// The stable version's server name in that backend.
    pub(crate) stable_server: String,
    /// The ACL file through which header and cookie steps route: haproxy.cfg sends requests
    /// matching it to the canary server (`use-server`), canary writes the step's value into it
    /// with the runtime API (`add acl`) and empties it when the step ends (`clear acl`).
    #[serde(default)]
    pub(crate) route_acl: Option<RawHaproxyRouteAcl>,
}

/// `gateway.haproxy.route-acl`: an ACL file and what the ACL's expression reads.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHaproxyRouteAcl {
    /// The ACL file, exactly as haproxy.cfg names it after `-f`
    /// (`/etc/haproxy/checkout-canary.acl`): the runtime API knows it by that name.
    pub(crate) file: String,
    /// The request header the ACL reads (`req.hdr(x-canary)`), for `header` steps naming it.
    #[serde(default)]
    pub(crate) header: Option<String>,
    /// The cookie the ACL reads (`req.cook(canary)`), for `cookie` steps naming it.
    #[serde(default)]
    pub(crate) cookie: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawNginx {
    /// The upstream include file canary rewrites (atomically).
    pub(crate) upstream_file: String,
    /// The upstream block's name.
    pub(crate) upstream: String,
    /// The canary's server address, `host:port`.
    pub(crate) canary: String,
    /// The stable version's server address, `host:port`.
    pub(crate) stable: String,
    /// The command that reloads NGINX (default `[nginx, -s, reload]`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) reload: Option<At<Vec<String>>>,
    /// Timeout of the reload command (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
    /// An address `ip:port` on which NGINX, from the file canary writes, answers
    /// `GET /canary-weights` with the weights it serves; canary then confirms every change
    /// and reads weights back from what NGINX serves instead of from the file.
    #[serde(default)]
    pub(crate) weight_probe: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCommandRouter {
    /// Command and arguments that set the weight; `{weight}` and `{stable-weight}` are replaced.
    #[schemars(with = "Vec<String>")]
    pub(crate) set: At<Vec<String>>,
    /// Command that prints the current canary weight, to verify a change (optional).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) get: Option<At<Vec<String>>>,
    /// Timeout of each command (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHook {
    /// A name for logs and reports.
    #[schemars(with = "String")]
    pub(crate) name: At<String>,
    /// When it runs: any of `before`, `step`, `promote`, `rollback`.
    #[schemars(with = "Vec<String>")]
    pub(crate) on: At<Vec<At<String>>>,
    /// Run a command; `{weight}`, `{step}` and `{service}` are replaced in its arguments.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) command: Option<At<Vec<String>>>,
    /// POST a JSON body to a URL.
    #[serde(default)]
    pub(crate) webhook: Option<RawWebhook>,
    /// Timeout (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
    /// What a failing `before` or `step` hook does: `rollback` (default) or `ignore`.
    /// Hooks on `promote` and `rollback` can only be reported.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) on_failure: Option<At<String>>,
    /// More environment for a command hook than the minimal one it gets (PATH, HOME, USER,
    /// LANG, LC_ALL, TZ, TMPDIR and the CANARY_* context).
    #[serde(default)]
    pub(crate) env: Option<RawHookEnv>,
}

/// A command hook's extra environment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHookEnv {
    /// Variables passed from canary's own environment, by name (left out when unset).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(crate) pass: Vec<At<String>>,
    /// Variables set to these values.
    #[serde(default)]
    pub(crate) set: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawWebhook {
    /// Where to POST.
    #[schemars(with = "String")]
    pub(crate) url: At<String>,
    /// Environment variable holding the HMAC-SHA256 signing secret (optional).
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
    /// File holding the HMAC-SHA256 signing secret (optional).
    #[serde(default)]
    pub(crate) secret_file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawNotification {
    /// A generic JSON webhook (HMAC-SHA256-signed when a secret is given).
    #[serde(default)]
    pub(crate) webhook: Option<RawWebhook>,
    /// A Slack-compatible incoming webhook.
    #[serde(default)]
    pub(crate) slack: Option<RawSlack>,
    /// Which events: any of started, step, extended, promoted, rolled-back, held, failed,
    /// interrupted (default: all of them).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) on: Option<At<Vec<At<String>>>>,
    /// Timeout of one notification (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<RawDuration>")]
    pub(crate) timeout: Option<At<RawDuration>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSlack {
    /// Environment variable holding the incoming-webhook URL (it is a secret).
    #[serde(default)]
    pub(crate) webhook_url_env: Option<String>,
    /// File holding the incoming-webhook URL.
    #[serde(default)]
    pub(crate) webhook_url_file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCheck {
    /// A short name, unique in the policy: it names the check in logs and reports.
    #[schemars(with = "String")]
    pub(crate) name: At<String>,
    /// Error rate from a request counter.
    #[serde(default)]
    pub(crate) error_rate: Option<RawErrorRate>,
    /// A latency quantile from a Prometheus histogram.
    #[serde(default)]
    pub(crate) latency: Option<RawLatency>,
    /// Per-interval samples of any metric (CPU, memory), compared with the baseline's.
    #[serde(default)]
    pub(crate) samples: Option<RawSamples>,
    /// Any PromQL with an absolute bound on its value (e.g. canary restarts stay 0).
    #[serde(default)]
    pub(crate) query: Option<RawQuery>,
    /// Values read from a generic provider's JSON answer (`metrics.http`, `metrics.command`).
    #[serde(default)]
    pub(crate) json: Option<RawJsonCheck>,
    /// Datadog metric queries grouped by the version tag (`metrics.datadog`).
    #[serde(default)]
    #[schemars(with = "Option<RawDatadogCheck>")]
    pub(crate) datadog: Option<At<RawDatadogCheck>>,
    /// CloudWatch metrics per version (`metrics.cloudwatch`).
    #[serde(default)]
    #[schemars(with = "Option<RawCloudWatchCheck>")]
    pub(crate) cloudwatch: Option<At<RawCloudWatchCheck>>,
    /// An absolute bound on the canary.
    #[serde(default)]
    #[schemars(with = "Option<RawSlo>")]
    pub(crate) slo: Option<At<RawSlo>>,
    /// A comparison with the baseline.
    #[serde(default)]
    #[schemars(with = "Option<RawBaseline>")]
    pub(crate) baseline: Option<At<RawBaseline>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawErrorRate {
    /// The request counter, e.g. `http_requests_total`.
    #[schemars(with = "String")]
    pub(crate) requests: At<String>,
    /// Matchers that make a request an error, in PromQL syntax: `code=~"5.."`.
    #[schemars(with = "String")]
    pub(crate) errors: At<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawLatency {
    /// The histogram's name without `_bucket`, e.g. `http_request_duration_seconds`.
    #[schemars(with = "String")]
    pub(crate) histogram: At<String>,
    /// The quantile, e.g. 0.95 or "p95" (default 0.95).
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) quantile: Option<At<RawScalar>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSamples {
    /// PromQL giving one value per version, e.g.
    /// `sum by ({{label}}) (rate(process_cpu_seconds_total{ {{selector}} }[1m]))`.
    #[schemars(with = "String")]
    pub(crate) query: At<String>,
    /// Whether a higher value is worse (default true).
    #[serde(default)]
    pub(crate) higher_is_worse: Option<bool>,
    /// Samples a step needs before it can pass (default 10): ticks with both versions
    /// sampled for the sequential method, samples per version for Mann–Whitney.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub(crate) min_samples: Option<At<i64>>,
    /// How the samples are compared: `sequential` (default: anytime-valid at every tick,
    /// allows for autocorrelated series) or `mann-whitney` (Kayenta's test once per step;
    /// not anytime-valid, assumes independent samples).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) method: Option<At<String>>,
    /// The sequential method's assumption: the largest autocorrelation between consecutive
    /// ticks of the canary − baseline difference it allows for (default 0.9, 0 to 0.99).
    /// Higher is safer for slowly varying metrics (memory) and slower to catch regressions.
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) max_autocorrelation: Option<At<RawScalar>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawQuery {
    /// PromQL giving one value for the canary, e.g.
    /// `sum(increase(kube_pod_container_status_restarts_total{pod=~"checkout-canary-.*"}[{{window}}])) or vector(0)`.
    #[schemars(with = "String")]
    pub(crate) promql: At<String>,
}

/// What a check reads from a generic provider's JSON answer: request and error counts
/// (`requests` and `errors`), a percentile (`percentile`), or one value (`value`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawJsonCheck {
    /// The check's query in the provider's language (`{{query}}` in the request), a template
    /// with `{{canary}}`, `{{baseline}}`, `{{label}}`, `{{start}}`, … as written.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) query: Option<At<String>>,
    /// Cumulative requests since `{{start}}`, per version: JSONPaths.
    #[serde(default)]
    #[schemars(with = "Option<RawVersionPaths>")]
    pub(crate) requests: Option<At<RawVersionPaths>>,
    /// Cumulative errors since `{{start}}`, per version: JSONPaths.
    #[serde(default)]
    #[schemars(with = "Option<RawVersionPaths>")]
    pub(crate) errors: Option<At<RawVersionPaths>>,
    /// A latency percentile of the canary the provider computed: judged as a bounded value
    /// against `slo.max`, without a statistical guarantee.
    #[serde(default)]
    #[schemars(with = "Option<RawPercentile>")]
    pub(crate) percentile: Option<At<RawPercentile>>,
    /// One value with an absolute bound (`slo`): a JSONPath.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) value: Option<At<String>>,
}

/// What a check reads from Datadog: counts (`requests` and `errors`, each a `sum:…` query of
/// a count metric with `.as_count()`) or a percentile (`percentile`, a `p95:…` query of a
/// distribution), every query grouped by the version tag (`by {version}`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDatadogCheck {
    /// Requests, e.g. `sum:trace.http.request.hits{service:checkout} by {version}.as_count()`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) requests: Option<At<String>>,
    /// Errors, e.g. `sum:trace.http.request.errors{service:checkout} by {version}.as_count()`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) errors: Option<At<String>>,
    /// A percentile, e.g. `p95:trace.http.request{service:checkout} by {version}`: judged as
    /// a bounded value against `slo.max`, without a statistical guarantee.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) percentile: Option<At<String>>,
    /// The unit of the percentile's values: `s` (default) or `ms`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) unit: Option<At<String>>,
}

/// What a check reads from CloudWatch: counts (`requests` and `errors`, statistic `Sum`) or a
/// percentile (`percentile`, statistic `quantile`), per version by the dimension named by
/// `traffic.label`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCloudWatchCheck {
    /// The namespace, e.g. `AWS/ApplicationELB`.
    pub(crate) namespace: String,
    /// Dimensions both versions share, e.g. `{LoadBalancer: app/checkout/50dc6c495c0c9188}`.
    #[serde(default)]
    pub(crate) dimensions: BTreeMap<String, String>,
    /// The request count metric, e.g. `RequestCount`.
    #[serde(default)]
    pub(crate) requests: Option<String>,
    /// The error count metric, e.g. `HTTPCode_Target_5XX_Count`.
    #[serde(default)]
    pub(crate) errors: Option<String>,
    /// `true`: pre-flight does not ask `ListMetrics` about the errors metric (the requests
    /// metric it still does). AWS publishes no datapoint of a 5XX count that stayed 0, and
    /// ListMetrics lists only metrics with a datapoint in the last two weeks, so a healthy
    /// service's errors metric may be unlisted; with this set, a misspelt errors metric reads
    /// as 0 errors. Default `false`.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub(crate) errors_may_be_unlisted: Option<At<bool>>,
    /// A latency metric read as a percentile, e.g. `TargetResponseTime`: judged as a bounded
    /// value against `slo.max`, without a statistical guarantee.
    #[serde(default)]
    pub(crate) percentile: Option<String>,
    /// Which percentile (default `p95`).
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) quantile: Option<At<RawScalar>>,
    /// The unit of the percentile's values: `s` (default) or `ms`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) unit: Option<At<String>>,
}

/// A JSONPath per version.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawVersionPaths {
    /// The canary's value, e.g. `$.results[?@.version == 'canary'].count`.
    pub(crate) canary: String,
    /// The baseline's value.
    pub(crate) baseline: String,
}

/// A latency percentile the provider computed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawPercentile {
    /// The canary's percentile: a JSONPath.
    pub(crate) canary: String,
    /// Which percentile it is, e.g. `p95` or 0.95 (said in reports).
    #[schemars(with = "RawScalar")]
    pub(crate) quantile: At<RawScalar>,
    /// The unit of the value: `s` (default) or `ms`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) unit: Option<At<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSlo {
    /// The bound to promote: a percentage for error rates, a duration for latency, a number
    /// for queries. A canary confidently above it is rolled back at once.
    #[schemars(with = "RawScalar")]
    pub(crate) max: At<RawScalar>,
    /// A looser bound that rolls back mid-step; with it, `max` is judged at the step's end.
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) rollback_above: Option<At<RawScalar>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawBaseline {
    /// How much worse than baseline the canary may be, relative: `20%` allows 1.2× the
    /// baseline's error rate (default 0%).
    #[serde(default)]
    #[schemars(with = "Option<RawFraction>")]
    pub(crate) max_increase: Option<At<RawFraction>>,
    /// Latency checks: the bound above which a request counts as slow (a bucket bound).
    /// Default: the `slo.max` bound, else the baseline's quantile when first measured.
    #[serde(default)]
    #[schemars(with = "Option<RawScalar>")]
    pub(crate) slow_above: Option<At<RawScalar>>,
}

/// A number or a string, interpreted by the field it is in.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum RawScalar {
    /// A plain number.
    Number(f64),
    /// A string such as `"1%"`, `"500ms"`, `"p95"`.
    Text(String),
}

/// A fraction: `0.01` or `"1%"`.
#[derive(Clone, Debug, JsonSchema)]
#[schemars(with = "RawScalar")]
pub(crate) struct RawFraction(pub(crate) f64);

impl<'de> Deserialize<'de> for RawFraction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scalar = RawScalar::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom(super::units::FRACTION_EXPECTED))?;
        super::units::fraction(&scalar)
            .map(RawFraction)
            .map_err(serde::de::Error::custom)
    }
}

/// A duration written the humantime way: `30s`, `10m`, `1h 30m`, `250ms`.
#[derive(Clone, Debug, JsonSchema)]
#[schemars(with = "String")]
pub(crate) struct RawDuration(pub(crate) std::time::Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scalar = RawScalar::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom(super::units::DURATION_EXPECTED))?;
        super::units::duration(&scalar)
            .map(RawDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// One entry of `rollout.steps`: a weight, or a step routed by request. Read through JSON so
/// that a mistyped routed step is refused with serde's own message naming the field, which
/// an untagged enum would swallow ("did not match any variant").
#[derive(Debug)]
pub(crate) enum RawStep {
    /// A canary weight, percent.
    Weight(i64),
    /// A step routed by request, or why it does not read as one.
    Routed(Result<RawRoutedStep, String>),
}

impl<'de> Deserialize<'de> for RawStep {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match value {
            serde_json::Value::Number(number) => match number.as_i64() {
                Some(weight) => Ok(RawStep::Weight(weight)),
                // A fraction or a number past i64: refused by the range check.
                None => Ok(RawStep::Weight(-1)),
            },
            serde_json::Value::Object(_) => Ok(RawStep::Routed(
                serde_json::from_value(value).map_err(|err| err.to_string()),
            )),
            other => Ok(RawStep::Routed(Err(format!(
                "expected a weight (10) or a routed step ({{header: {{name: X-Canary, value: \"1\"}}}}, {{cookie: {{name: canary}}}}, {{mirror: {{percent: 20}}}}), not {other}"
            )))),
        }
    }
}

/// A step routed by request: exactly one of its fields.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRoutedStep {
    /// Only requests with this header and exact value go to the canary.
    #[serde(default)]
    pub(crate) header: Option<RawHeaderMatch>,
    /// Only requests whose cookie of this name is `always` go to the canary.
    #[serde(default)]
    pub(crate) cookie: Option<RawCookieMatch>,
    /// Stable serves every request; a copy of this share goes to the canary.
    #[serde(default)]
    pub(crate) mirror: Option<RawMirror>,
}

/// `{name: X-Canary, value: "1"}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderMatch {
    /// The header's name.
    pub(crate) name: String,
    /// The exact value that sends a request to the canary.
    pub(crate) value: String,
}

/// `{name: canary}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCookieMatch {
    /// The cookie's name.
    pub(crate) name: String,
}

/// `{percent: 20}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMirror {
    /// The share of requests copied to the canary, percent (1 to 100).
    pub(crate) percent: i64,
}

/// What the JSON Schema says a step is.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum RawStepSchema {
    /// A canary weight, percent.
    Weight(u32),
    /// A step routed by request.
    Routed(RawRoutedStep),
}
