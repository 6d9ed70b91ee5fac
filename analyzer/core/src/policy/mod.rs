//! The policy: one YAML file per service saying how its canary is rolled out and judged.
//!
//! A file is read into private serde types (`raw.rs`, unknown fields denied, every value
//! spanned with its line and column), then validated into the public [`Policy`], whose
//! fields are all meaningful: weights increase and end at 100, α is a probability, each
//! check has exactly one kind and at least one criterion. Every problem is reported with the
//! file, the line and column, and the field path (`checks[1].slo.max: expected a percentage
//! like "1%" or 0.01`); validation reports all the problems it finds, not just the first.
//! See `docs/policy-reference.md` for the user-facing description of every field.

mod error;
mod local_access;
mod matchers;
mod namespaces;
mod provider;
mod raw;
mod units;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::rollout::NoticeKind;

pub use error::{PolicyError, Problem};
pub use local_access::LocalAccess;
pub use matchers::{
    LabelMatcher, MatchOp, QueryTemplate, TemplatePart, TemplateVariable, escape_string,
    is_label_name, is_metric_name, parse_matchers,
};
pub use namespaces::NamespaceField;
pub use provider::{
    CloudWatchMetric, CloudWatchQuery, CommandSpec, HttpMethod, HttpRequestSpec, JsonCheck,
    JsonMeasure, JsonPathText, JsonSourceSpec, JsonTransport, ProviderApi, RequestPart,
    RequestTemplate, RequestVariable, VersionPaths,
};
pub use units::{duration_as_written, size_as_written};

/// A validated policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    /// The service this policy rolls out.
    pub service: String,
    /// How canary and baseline series are told apart.
    pub traffic: TrafficSelector,
    /// Where the evidence comes from.
    pub metrics: MetricsSourceSpec,
    /// Steps, timing and error budget.
    pub rollout: RolloutSpec,
    /// What moves traffic; required by `canary rollout`.
    pub gateway: Option<GatewaySpec>,
    /// What a successful rollout does after 100 % besides the weights.
    pub promotion: Option<DeploymentPromotionSpec>,
    /// Hooks, in the order written.
    pub hooks: Vec<HookSpec>,
    /// Notifications, in the order written.
    pub notifications: Vec<NotificationSpec>,
    /// The checks, in the order written.
    pub checks: Vec<CheckSpec>,
}

impl Policy {
    /// Reads and validates a policy from its YAML text. `origin` names the file in messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        validate::parse(text, origin)
    }

    /// How late the metrics source makes data available (`lag` of `metrics.datadog` and
    /// `metrics.cloudwatch`; zero for every other source): each tick reads the data up to
    /// this long before it, so steps and the final soak last this much longer, for their
    /// decision to be made on the data of their whole duration.
    pub fn metrics_lag(&self) -> Duration {
        match &self.metrics {
            MetricsSourceSpec::Json(spec) => spec.lag,
            _ => Duration::ZERO,
        }
    }

    /// The JSON Schema of the policy file, for editors (`canary policy schema`).
    pub fn json_schema() -> serde_json::Value {
        let schema = schemars::schema_for!(raw::RawPolicy);
        serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
    }

    /// A digest of the validated policy (FNV-1a over its canonical JSON form). A rollout
    /// records it at the start so that a resume with a changed policy is refused.
    ///
    /// Only what decides and what moves traffic counts (traffic, rollout, gateway, checks,
    /// promotion): changing where notifications go or the Prometheus URL mid-rollout does
    /// not stop a resume. The metrics source's `lag` counts too, when it is set: it moves
    /// every step's end and what each tick reads. Absent when zero, so that the digest of a
    /// policy without one stays what it was.
    pub fn digest(&self) -> String {
        let mut judged = serde_json::json!({
            "service": self.service,
            "traffic": self.traffic,
            "rollout": self.rollout,
            "gateway": self.gateway,
            "checks": self.checks,
            "promotion": self.promotion,
        });
        let lag = self.metrics_lag();
        if !lag.is_zero() {
            judged["metrics-lag-ms"] = serde_json::json!(lag.as_millis() as u64);
        }
        let canonical = judged.to_string();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in canonical.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("fnv1a64:{hash:016x}")
    }

    /// All judged criteria of all checks, in order. α is split equally across them.
    pub fn criteria(&self) -> impl Iterator<Item = (&CheckSpec, Criterion)> {
        self.checks
            .iter()
            .flat_map(|check| check.criteria().into_iter().map(move |c| (check, c)))
    }

    /// The number of judged criteria, over which α is split (Bonferroni).
    pub fn criteria_count(&self) -> usize {
        self.criteria().count()
    }

    /// The false-rollback budget of one criterion: α divided by the number of criteria.
    pub fn alpha_per_criterion(&self) -> f64 {
        self.rollout.alpha / self.criteria_count().max(1) as f64
    }
}

/// How canary and baseline series are told apart in the metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrafficSelector {
    /// The label whose value names the version, e.g. `version`.
    pub label: String,
    /// Its value on canary series.
    pub canary: String,
    /// Its value on baseline series.
    pub baseline: String,
    /// Matchers common to both versions.
    pub matchers: Vec<LabelMatcher>,
}

impl TrafficSelector {
    /// The label value of a version.
    pub fn value_of(&self, version: Version) -> &str {
        match version {
            Version::Canary => &self.canary,
            Version::Baseline => &self.baseline,
        }
    }
}

/// One of the two versions being compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Version {
    /// The new version.
    Canary,
    /// The version it is compared with (the stable one).
    Baseline,
}

/// Where the evidence comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricsSourceSpec {
    /// A Prometheus-compatible HTTP API (boxed: its auth and transport settings make it
    /// several times the size of the other variants).
    Prometheus(Box<PrometheusSpec>),
    /// Direct scrapes of the versions' `/metrics` endpoints.
    Scrape(ScrapeSpec),
    /// A provider answering JSON (`metrics.http`, `metrics.command`, `metrics.datadog`,
    /// `metrics.cloudwatch`); its checks are `json` checks.
    Json(Box<JsonSourceSpec>),
}

/// A Prometheus-compatible HTTP API and how to reach it.
#[derive(Clone, PartialEq, Serialize)]
pub struct PrometheusSpec {
    /// Base URL; `None` when the policy leaves it to `--prometheus`.
    pub url: Option<String>,
    /// How requests authenticate.
    pub auth: PrometheusAuth,
    /// Extra headers (tenant IDs, API keys).
    pub headers: Vec<(String, HeaderValueSpec)>,
    /// Extra certificate authorities (PEM file).
    pub ca_file: Option<PathBuf>,
    /// TLS verification turned off (warned about loudly).
    pub insecure_skip_tls_verify: bool,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries after a timeout, connection error, 429 or 5xx.
    pub retries: u32,
    /// Largest answer read, in bytes; more is an `error` verdict for the check.
    pub max_answer_bytes: u64,
    /// Most series one answer may hold; more is an `error` verdict for the check.
    pub max_series: u32,
    /// Whether an answer with warnings (a partial answer) is judged as usual, the warnings
    /// passed on; otherwise it is an `error` verdict for the check.
    pub accept_warnings: bool,
    /// A client certificate and key presented to the server (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<ClientCertSpec>,
    /// An HTTP(S) proxy every request goes through; `None`: none (the environment's
    /// `HTTP_PROXY` is never used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
}

/// A client certificate for mutual TLS: PEM files, the key read as a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientCertSpec {
    /// The certificate (and any intermediates), PEM.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The default of [`PrometheusSpec::max_answer_bytes`]: 32 MiB, hundreds of times what
/// canary's queries return, small enough for a CI pod's memory.
pub const DEFAULT_MAX_ANSWER_BYTES: u64 = 32 * 1024 * 1024;

/// The default of [`PrometheusSpec::max_series`]. canary's queries return a few series per
/// version (a histogram: one per bucket); ten thousand is a query gone wrong.
pub const DEFAULT_MAX_SERIES: u32 = 10_000;

/// An extra header's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderValueSpec {
    /// Written in the policy (a tenant ID): not a secret.
    Plain(String),
    /// A credential, read at run time and handled as a secret.
    Secret(SecretSource),
}

impl std::fmt::Debug for PrometheusSpec {
    /// Header values may be credentials (an API key a gateway wants): their names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("PrometheusSpec")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("headers", &headers)
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("max_series", &self.max_series)
            .field("accept_warnings", &self.accept_warnings)
            .field("client_cert", &self.client_cert)
            .field("proxy_url", &self.proxy_url)
            .finish()
    }
}

/// How requests to Prometheus authenticate. Secrets are named, never held inline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrometheusAuth {
    /// No authentication.
    None,
    /// `Authorization: Bearer …`.
    Bearer(SecretSource),
    /// HTTP basic authentication.
    Basic {
        /// User name (not secret).
        username: String,
        /// Where the password is.
        password: SecretSource,
    },
    /// AWS Signature Version 4 (Amazon Managed Service for Prometheus), with credentials
    /// from the environment, a shared credentials file or a web-identity token (EKS IRSA).
    SigV4(SigV4Spec),
    /// OAuth2 client credentials (RFC 6749 §4.4): a bearer token from a token endpoint,
    /// cached until it expires.
    OAuth2(OAuth2Spec),
}

/// How requests are signed with AWS Signature Version 4.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SigV4Spec {
    /// The AWS region, e.g. `us-east-1`.
    pub region: String,
    /// The service the signature is for: `aps` for Amazon Managed Service for Prometheus.
    pub service: String,
    /// The profile of the shared credentials file; `None`: `AWS_PROFILE`, else `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// The default of [`SigV4Spec::service`]: Amazon Managed Service for Prometheus.
pub const DEFAULT_SIGV4_SERVICE: &str = "aps";

/// OAuth2 client credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OAuth2Spec {
    /// The token endpoint.
    pub token_url: String,
    /// The client's identifier (not secret).
    pub client_id: String,
    /// Where the client secret is.
    pub client_secret: SecretSource,
    /// Scopes asked for (none: the server's default).
    pub scopes: Vec<String>,
}

/// Where a secret is read from at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    /// A file whose content (trimmed) is the secret.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// Direct scrapes of `/metrics` endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScrapeSpec {
    /// The canary's endpoints.
    pub canary: Vec<String>,
    /// The baseline's endpoints.
    pub baseline: Vec<String>,
    /// Timeout of one scrape.
    pub timeout: Duration,
}

/// Steps, timing and error budget of a rollout.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RolloutSpec {
    /// Canary weights in percent, strictly increasing, the last one 100.
    pub steps: Vec<u8>,
    /// Duration of an analysed step when evidence suffices.
    pub step_duration: Duration,
    /// Longest a step may be extended while evidence is short.
    pub max_step_duration: Duration,
    /// Analysis interval.
    pub interval: Duration,
    /// Canary requests a step needs before it may advance.
    pub min_requests: u64,
    /// False-rollback budget over the whole rollout, split across criteria.
    pub alpha: f64,
    /// What to do when a step reaches its limit without enough evidence.
    pub on_inconclusive: InconclusiveAction,
    /// What a signal does to a running rollout.
    pub on_interrupt: StopAction,
    /// Optional soak at 100 %, judged by absolute bounds alone.
    pub final_soak: Option<Duration>,
    /// Consecutive unreadable ticks tolerated before stopping with exit code 4.
    pub max_failed_ticks: u32,
    /// What the rollout does with the canary's traffic when it stops because its metrics
    /// could not be read `max_failed_ticks` times in a row. Exit code 4 either way.
    /// Left out of the serialized form when `leave`, so that the [`Policy::digest`] of a
    /// policy written before the option existed stays what it was.
    #[serde(skip_serializing_if = "StopAction::is_leave")]
    pub on_metrics_unavailable: StopAction,
    /// The steps that route by request rather than by weight (a header or cookie match, a
    /// mirror), by step index; their entry in `steps` is 0 (no weighted share). Left out of
    /// the serialized form when empty, so that the [`Policy::digest`] of a policy written
    /// before routed steps existed stays what it was.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub routes: std::collections::BTreeMap<usize, StepRoute>,
}

impl RolloutSpec {
    /// The analysed steps: every weight below 100 (reaching 100 is the promotion).
    pub fn analysed_steps(&self) -> &[u8] {
        let n = self.steps.iter().take_while(|&&w| w < 100).count();
        &self.steps[..n]
    }

    /// The request routing of step `index`, when it is a routed step (`None`: a weight).
    pub fn route(&self, index: usize) -> Option<&StepRoute> {
        self.routes.get(&index)
    }
}

/// How a routed step sends traffic to the canary: by request, not by weight. Every request
/// the route does not send to the canary goes to the stable version (the step's weighted
/// share is 0), so the canary's share of traffic is whatever share of requests match —
/// which is why the judge works from the requests each version served, never from a weight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepRoute {
    /// Only requests carrying header `name` with exactly `value` are served by the canary
    /// (Argo Rollouts' `setHeaderRoute`, Flagger's `analysis.match`).
    Header {
        /// The header's name (matched case-insensitively, as HTTP header names are).
        name: String,
        /// The exact value it must have.
        value: String,
    },
    /// Only requests whose cookie `name` has the value `always` are served by the canary
    /// (ingress-nginx's `canary-by-cookie`).
    Cookie {
        /// The cookie's name.
        name: String,
    },
    /// Every request is served by the stable version; a copy of `percent` % of them is also
    /// sent to the canary, whose responses are dropped (Argo `setMirrorRoute`, Flagger
    /// `mirror`). What the canary's metrics show is how it handled real requests; users
    /// never see its answers.
    Mirror {
        /// The share of requests copied to the canary, percent (1 to 100).
        percent: u8,
    },
}

impl StepRoute {
    /// What the step is called in policies, lint messages and reports: `header`, `cookie`,
    /// `mirror`.
    pub fn kind(&self) -> &'static str {
        match self {
            StepRoute::Header { .. } => "header",
            StepRoute::Cookie { .. } => "cookie",
            StepRoute::Mirror { .. } => "mirror",
        }
    }
}

impl std::fmt::Display for StepRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepRoute::Header { name, value } => {
                write!(
                    f,
                    "requests with header {name}: {value} (the rest to stable)"
                )
            }
            StepRoute::Cookie { name } => {
                write!(f, "requests with cookie {name}=always (the rest to stable)")
            }
            StepRoute::Mirror { percent } => write!(
                f,
                "a mirror of {percent} % of requests (stable answers every request)"
            ),
        }
    }
}

/// What to do when a step ends without enough evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InconclusiveAction {
    /// Roll back (the default: never promote on missing evidence).
    Rollback,
    /// Stop where it stands, report, exit 3; a person decides (`canary promote` / `abort`).
    Hold,
}

/// What a rollout that stops before its decision does with the canary's traffic: on a
/// signal (`on-interrupt`), or when its metrics cannot be read (`on-metrics-unavailable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopAction {
    /// Leave the weight where it stands; a later `canary rollout` resumes.
    Leave,
    /// Set the canary's weight to 0 before exiting.
    Rollback,
}

impl StopAction {
    fn is_leave(&self) -> bool {
        *self == StopAction::Leave
    }
}

/// What moves traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewaySpec {
    /// HAProxy's runtime API.
    Haproxy(HaproxySpec),
    /// An NGINX weighted upstream include, reloaded after each change.
    Nginx(NginxSpec),
    /// A user command.
    Command(CommandRouterSpec),
    /// A Gateway API `HTTPRoute` (Kubernetes).
    HttpRoute(HttpRouteSpec),
    /// An ingress-nginx canary `Ingress` (Kubernetes).
    NginxIngress(NginxIngressSpec),
    /// An Istio `VirtualService` (Kubernetes).
    IstioVirtualService(IstioVirtualServiceSpec),
    /// An SMI `TrafficSplit`, as Linkerd serves it (Kubernetes).
    SmiTrafficSplit(SmiTrafficSplitSpec),
    /// A Traefik weighted `TraefikService` (Kubernetes).
    TraefikService(TraefikServiceSpec),
    /// Nothing splits traffic: two Deployments behind one Service, the canary's share
    /// approximated by their ready pods (Kubernetes).
    ReplicaCount(ReplicaCountSpec),
}

impl GatewaySpec {
    /// The Kubernetes cluster a router of this kind talks to, if it is a Kubernetes one.
    pub fn kubernetes(&self) -> Option<&KubeObjectRef> {
        match self {
            GatewaySpec::Haproxy(_) | GatewaySpec::Nginx(_) | GatewaySpec::Command(_) => None,
            GatewaySpec::HttpRoute(spec) => Some(&spec.object),
            GatewaySpec::NginxIngress(spec) => Some(&spec.object),
            GatewaySpec::IstioVirtualService(spec) => Some(&spec.object),
            GatewaySpec::SmiTrafficSplit(spec) => Some(&spec.object),
            GatewaySpec::TraefikService(spec) => Some(&spec.object),
            GatewaySpec::ReplicaCount(spec) => Some(&spec.stable),
        }
    }
}

/// A namespaced Kubernetes object, and the kubeconfig context to reach its cluster with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KubeObjectRef {
    /// The object's name.
    pub name: String,
    /// Its namespace; `None` for the kubeconfig context's (or, in a pod, its own).
    pub namespace: Option<String>,
    /// The kubeconfig context; `None` for the current one.
    pub context: Option<String>,
}

/// An entry of a list named by its `name` or its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleRef {
    /// Its index, from 0.
    Index(usize),
    /// Its `name`.
    Name(String),
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleRef::Index(i) => write!(f, "#{i}"),
            RuleRef::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// Promotion the Flagger way: after 100 %, the stable Deployment gets the canary's pod
/// template, its rollout is awaited, traffic goes back to it (canary weight 0), and the
/// canary Deployment is scaled to 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeploymentPromotionSpec {
    /// The stable Deployment (the canary's is in the same namespace and cluster).
    pub stable: KubeObjectRef,
    /// The canary's Deployment.
    pub canary_deployment: String,
    /// How long the stable Deployment's rollout may take.
    pub timeout: Duration,
}

/// The weights of two `backendRefs` of one rule of a Gateway API `HTTPRoute`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HttpRouteSpec {
    /// The HTTPRoute.
    pub object: KubeObjectRef,
    /// Which rule; `None`: the only rule that holds both backends.
    pub rule: Option<RuleRef>,
    /// The stable version's Service, as `backendRefs[].name`.
    pub stable: String,
    /// The canary's Service, as `backendRefs[].name`.
    pub canary: String,
    /// What the two weights add up to.
    pub weight_total: u32,
    /// More HTTPRoutes (or other rules of the same one) that route the same two Services,
    /// set with the first and read back at every tick (a drift in any one is a drift). Left
    /// out of the serialized form when empty (digest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more_routes: Vec<RouteTarget>,
    /// canary creates the HTTPRoute when it is missing, owned by a Deployment (so that no
    /// GitOps tool manages its weights). Left out when `None` (digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateHttpRoute>,
}

/// The HTTPRoute canary creates when it is missing: one rule, the two Services at 100/0, on
/// one Gateway listener, with an ownerReference to a Deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GenerateHttpRoute {
    /// The Gateway (`parentRefs[0].name`).
    pub gateway: String,
    /// Its namespace; `None`: the route's.
    pub gateway_namespace: Option<String>,
    /// The Gateway's listener (`parentRefs[0].sectionName`).
    pub section_name: Option<String>,
    /// `spec.hostnames`.
    pub hostnames: Vec<String>,
    /// The Services' port.
    pub port: u16,
    /// The Deployment (in the route's namespace) the route is owned by: deleting it deletes
    /// the route.
    pub owner_deployment: String,
}

/// One more routing object of a rollout, in the first one's namespace and cluster: its name,
/// and which of its rules (HTTPRoute) or routes (VirtualService) holds the weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteTarget {
    /// The object's name.
    pub name: String,
    /// Which rule or route; `None`: the only one that holds both backends.
    pub rule: Option<RuleRef>,
}

/// The canary `Ingress` of ingress-nginx and its `canary-weight` annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NginxIngressSpec {
    /// The canary Ingress (its namespace is the stable one's too).
    pub object: KubeObjectRef,
    /// The stable version's Ingress.
    pub stable_ingress: String,
    /// Create the canary Ingress from the stable one when it is missing.
    pub create_canary: Option<CreateCanaryIngress>,
    /// The `canary-weight-total` the controller uses.
    pub weight_total: u32,
    /// The prefix of ingress-nginx's annotations (its `--annotations-prefix`). Left out of the
    /// serialized form at its default, so that policies written before it keep their digest.
    #[serde(skip_serializing_if = "NginxIngressSpec::is_default_prefix")]
    pub annotation_prefix: String,
}

impl NginxIngressSpec {
    /// ingress-nginx's default `--annotations-prefix`.
    pub const DEFAULT_ANNOTATION_PREFIX: &'static str = "nginx.ingress.kubernetes.io";

    fn is_default_prefix(prefix: &str) -> bool {
        prefix == Self::DEFAULT_ANNOTATION_PREFIX
    }
}

/// How the canary Ingress is made from the stable one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreateCanaryIngress {
    /// The stable version's Service, as the stable Ingress names it.
    pub stable_service: String,
    /// The canary's Service, put in its place.
    pub canary_service: String,
}

/// The weights of two destinations of one HTTP route of an Istio `VirtualService`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IstioVirtualServiceSpec {
    /// The VirtualService.
    pub object: KubeObjectRef,
    /// Which `spec.http[]` route; `None`: the only one that holds both destinations.
    pub route: Option<RuleRef>,
    /// The stable version's destination.
    pub stable: IstioDestination,
    /// The canary's destination.
    pub canary: IstioDestination,
    /// `networking.istio.io/v1` (Istio 1.22 and later), `v1beta1` or `v1alpha3` (older
    /// releases). Left out of the serialized form at its default (digest).
    #[serde(skip_serializing_if = "IstioVirtualServiceSpec::is_default_api_version")]
    pub api_version: String,
    /// Which routes of the VirtualService hold the weights: `spec.http` (the default), or
    /// `spec.tls` / `spec.tcp` (weights only). Left out of the serialized form at its default.
    #[serde(skip_serializing_if = "IstioProtocol::is_http")]
    pub protocol: IstioProtocol,
    /// More VirtualServices (or other routes of the same one) with the same two destinations,
    /// set with the first and read back at every tick. Left out when empty (digest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more_virtual_services: Vec<RouteTarget>,
    /// The DestinationRule that defines the destinations' subsets, checked before the first
    /// weight moves and before each change: `None` is the one named like the destination's
    /// host (its first label). Left out when `None` (digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<String>,
    /// canary creates the VirtualService when it is missing, owned by a Deployment (so that
    /// no GitOps tool manages its weights). Left out when `None` (digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateVirtualService>,
}

/// The VirtualService canary creates when it is missing: one HTTP route named `canary`, the
/// two destinations at 100/0, for `hosts` (through `gateways`), with an ownerReference to a
/// Deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GenerateVirtualService {
    /// `spec.hosts`.
    pub hosts: Vec<String>,
    /// `spec.gateways`; empty: left out (the mesh).
    pub gateways: Vec<String>,
    /// The Deployment (in the VirtualService's namespace) it is owned by.
    pub owner_deployment: String,
}

/// The routes of a VirtualService whose destinations carry the weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IstioProtocol {
    /// `spec.http[]`: weights, header and cookie matches, mirrors.
    #[default]
    Http,
    /// `spec.tls[]` (routes by SNI): weights only; its routes have no names.
    Tls,
    /// `spec.tcp[]`: weights only; its routes have no names.
    Tcp,
}

impl IstioProtocol {
    /// The field of `spec` that holds these routes: `http`, `tls`, `tcp`.
    pub fn field(self) -> &'static str {
        match self {
            IstioProtocol::Http => "http",
            IstioProtocol::Tls => "tls",
            IstioProtocol::Tcp => "tcp",
        }
    }

    fn is_http(&self) -> bool {
        *self == IstioProtocol::Http
    }
}

impl IstioVirtualServiceSpec {
    /// The API versions a VirtualService can be asked in, the default first.
    pub const API_VERSIONS: [&'static str; 3] = [
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ];

    fn is_default_api_version(version: &str) -> bool {
        version == Self::API_VERSIONS[0]
    }
}

/// An Istio route destination: a host, and a DestinationRule subset for subset routing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IstioDestination {
    /// `destination.host`.
    pub host: String,
    /// `destination.subset`.
    pub subset: Option<String>,
}

impl std::fmt::Display for IstioDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.subset {
            Some(subset) => write!(f, "{} subset {}", self.host, subset),
            None => write!(f, "{}", self.host),
        }
    }
}

/// The weights of two backends of an SMI `TrafficSplit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SmiTrafficSplitSpec {
    /// The TrafficSplit.
    pub object: KubeObjectRef,
    /// `split.smi-spec.io/v1alpha2`, `v1alpha3` or `v1alpha4`.
    pub api_version: String,
    /// The stable version's backend Service.
    pub stable: String,
    /// The canary's backend Service.
    pub canary: String,
    /// What the two weights add up to.
    pub weight_total: u32,
    /// Where the mesh shows what it applied: with Linkerd, the ServiceProfile linkerd-smi
    /// makes from the TrafficSplit. Left out of the serialized form at the API version's
    /// default, so that policies written before it keep their digest.
    #[serde(skip_serializing_if = "AppliedBy::is_default")]
    pub applied_by: AppliedBy,
}

/// What shows that a mesh applied a TrafficSplit's weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppliedBy {
    /// Nothing is read beyond the TrafficSplit (`service-profile: false`; the default with
    /// `v1alpha3`/`v1alpha4`, which other SMI implementations serve).
    TrafficSplit {
        /// Whether this is the API version's default.
        #[serde(skip)]
        default: bool,
    },
    /// Linkerd: the `dstOverrides` of the ServiceProfile `SERVICE.NAMESPACE.svc.DOMAIN` that
    /// linkerd-smi writes from the TrafficSplit (the default with `v1alpha2`).
    LinkerdServiceProfile {
        /// The cluster domain (`cluster.local`).
        cluster_domain: String,
        /// How long a weight written may take to show there.
        apply_timeout: Duration,
        /// Whether this is the API version's default.
        #[serde(skip)]
        default: bool,
    },
}

impl AppliedBy {
    /// Linkerd's cluster domain unless a policy says otherwise.
    pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
    /// How long linkerd-smi may take to apply a weight unless a policy says otherwise.
    pub const DEFAULT_APPLY_TIMEOUT: Duration = Duration::from_secs(10);

    fn is_default(&self) -> bool {
        match self {
            AppliedBy::TrafficSplit { default }
            | AppliedBy::LinkerdServiceProfile { default, .. } => *default,
        }
    }
}

/// The weights of two services of a weighted Traefik `TraefikService`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraefikServiceSpec {
    /// The TraefikService.
    pub object: KubeObjectRef,
    /// `traefik.io/v1alpha1` or `traefik.containo.us/v1alpha1`.
    pub api_version: String,
    /// The stable version's `spec.weighted.services[].name`.
    pub stable: String,
    /// The canary's `spec.weighted.services[].name`.
    pub canary: String,
    /// What the two weights add up to.
    pub weight_total: u32,
}

/// Two Deployments behind one Service, for clusters with nothing that can split traffic:
/// the canary's share is its ready pods among all the ready pods, as kube-proxy spreads
/// connections evenly over a Service's ready endpoints. The weight asked for is
/// approximated by [`replica_split`](crate::ports::replica_split) (Argo Rollouts' rule for
/// a canary without traffic management); what was achieved is what reports show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaCountSpec {
    /// The stable version's Deployment (the canary's is in the same namespace and cluster).
    pub stable: KubeObjectRef,
    /// The canary's Deployment.
    pub canary_deployment: String,
    /// The pods of both together, kept through the rollout.
    pub replicas: u32,
    /// How long the pods of a new split may take to become ready.
    pub ready_timeout: Duration,
}

/// HAProxy's runtime API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HaproxySpec {
    /// Where the runtime API listens.
    pub socket: SocketAddress,
    /// The backend holding both servers.
    pub backend: String,
    /// The canary's server.
    pub canary_server: String,
    /// The stable version's server.
    pub stable_server: String,
    /// The ACL file header and cookie steps write into, when the policy routes by request.
    /// Left out of the serialized form when absent, so that the [`Policy::digest`] of a
    /// policy written before the field existed stays what it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_acl: Option<HaproxyRouteAcl>,
}

/// An ACL file of the running HAProxy that its configuration reads to send requests to the
/// canary server (`use-server CANARY if { req.hdr(x-canary) -f FILE }`). A header step
/// writes its value into it, a cookie step `always`; leaving the step empties it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HaproxyRouteAcl {
    /// The file, as haproxy.cfg names it: the runtime API's name of the ACL.
    pub file: String,
    /// What the ACL's expression reads from each request.
    pub reads: AclReads,
}

/// What an HAProxy ACL matching the canary's requests reads from each request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AclReads {
    /// A request header (`req.hdr(NAME)`), for header steps naming it.
    Header(String),
    /// A cookie (`req.cook(NAME)`), for cookie steps naming it.
    Cookie(String),
}

impl std::fmt::Display for AclReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AclReads::Header(name) => write!(f, "header {name:?}"),
            AclReads::Cookie(name) => write!(f, "cookie {name:?}"),
        }
    }
}

/// A stream socket address: a unix socket path or `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketAddress {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl std::fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            SocketAddress::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// An NGINX weighted upstream include.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NginxSpec {
    /// The include file canary rewrites.
    pub upstream_file: PathBuf,
    /// The upstream block's name.
    pub upstream: String,
    /// The canary's server address.
    pub canary: String,
    /// The stable version's server address.
    pub stable: String,
    /// The reload command.
    pub reload: Vec<String>,
    /// Timeout of the reload, and of the wait for NGINX to serve what was written.
    pub timeout: Duration,
    /// Where NGINX answers, from the file canary writes, with the weights it serves
    /// (`GET http://ADDRESS/canary-weights`). `None`: weights are read back from the file.
    /// Left out of the digest's JSON when unset, so that existing policies keep theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_probe: Option<std::net::SocketAddr>,
}

/// A user command that sets (and optionally reads) the canary weight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommandRouterSpec {
    /// Sets the weight; `{weight}` and `{stable-weight}` are replaced in the arguments.
    pub set: Vec<String>,
    /// Prints the current canary weight (optional, for verification).
    pub get: Option<Vec<String>>,
    /// Timeout of each command.
    pub timeout: Duration,
}

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    /// Before the first weight change.
    Before,
    /// At the start of each step, after the weight is set.
    Step,
    /// After promotion.
    Promote,
    /// After rollback.
    Rollback,
}

/// The environment a command hook gets beyond its minimal one
/// ([`HOOK_BASE_ENVIRONMENT`] from canary's own, and the `CANARY_*` context).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HookEnv {
    /// Variables passed from canary's environment by name (left out when unset there).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pass: Vec<String>,
    /// Variables set to a value given in the policy.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub set: std::collections::BTreeMap<String, String>,
}

impl HookEnv {
    /// Whether nothing is added.
    pub fn is_empty(&self) -> bool {
        self.pass.is_empty() && self.set.is_empty()
    }
}

/// The variables of canary's own environment every command hook gets (when set): what a
/// program needs to run at all. Everything else — tokens, cloud credentials, the CI's
/// secrets — stays out unless the policy passes it by name (`env.pass`).
pub const HOOK_BASE_ENVIRONMENT: [&str; 7] =
    ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// A hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookSpec {
    /// Its name.
    pub name: String,
    /// When it runs.
    pub on: Vec<HookEvent>,
    /// What it does.
    pub action: HookAction,
    /// Timeout.
    pub timeout: Duration,
    /// Whether a failure of a `before` or `step` hook rolls back.
    pub rollback_on_failure: bool,
    /// A command hook's environment beyond the minimal one.
    #[serde(skip_serializing_if = "HookEnv::is_empty")]
    pub env: HookEnv,
}

/// What a hook does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookAction {
    /// Run a command.
    Command(Vec<String>),
    /// POST a JSON body, HMAC-SHA256-signed when a secret is given.
    Webhook {
        /// Where to POST.
        url: String,
        /// The signing secret's source.
        secret: Option<SecretSource>,
    },
}

/// Where people are told about the rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotificationSpec {
    /// Where it goes.
    pub channel: NotificationChannel,
    /// Which notice kinds are sent (all of [`NoticeKind::NOTIFIABLE`] unless the policy
    /// names some).
    pub on: Vec<NoticeKind>,
    /// Timeout of one notification.
    pub timeout: Duration,
}

/// A notification channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationChannel {
    /// POST a JSON body, HMAC-SHA256-signed when a secret is given.
    Webhook {
        /// Where to POST.
        url: String,
        /// The signing secret's source.
        secret: Option<SecretSource>,
    },
    /// POST a Slack message (`{"text": …}`) to an incoming webhook, whose URL is a secret.
    Slack {
        /// Where the URL is.
        url: SecretSource,
    },
}

/// One check of the policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckSpec {
    /// Its name, unique in the policy.
    pub name: String,
    /// What it measures.
    pub kind: CheckKind,
    /// An absolute bound on the canary.
    pub slo: Option<AbsoluteBound>,
    /// A comparison with the baseline.
    pub baseline: Option<BaselineComparison>,
}

impl CheckSpec {
    /// Whether the check counts requests, so that a step's `min-requests` can be met: an
    /// error-rate or latency check, or a `json` check of counts.
    pub fn counts_requests(&self) -> bool {
        match &self.kind {
            CheckKind::ErrorRate(_) | CheckKind::Latency(_) => true,
            CheckKind::Json(json) => matches!(json.measure, JsonMeasure::Counts { .. }),
            CheckKind::Samples(_) | CheckKind::Query(_) => false,
        }
    }

    /// The criteria this check is judged by, each a separate line in reports.
    pub fn criteria(&self) -> Vec<Criterion> {
        let mut criteria = Vec::new();
        if self.slo.is_some() {
            criteria.push(Criterion::Slo);
        }
        if self.baseline.is_some() {
            criteria.push(Criterion::Baseline);
        }
        criteria
    }
}

/// One way a check is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    /// Against an absolute bound (`slo`).
    Slo,
    /// Against the baseline (`baseline`).
    Baseline,
}

impl Criterion {
    /// The name used in reports: `slo` or `baseline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::Slo => "slo",
            Criterion::Baseline => "baseline",
        }
    }
}

/// What a check measures.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// Error rate from a request counter.
    ErrorRate(ErrorRateCheck),
    /// A latency quantile from a histogram.
    Latency(LatencyCheck),
    /// Per-interval samples of a metric.
    Samples(SamplesCheck),
    /// A PromQL query with an absolute bound.
    Query(QueryCheck),
    /// Values from a generic provider's JSON answer.
    Json(JsonCheck),
}

impl CheckKind {
    /// The kind's name as the policy writes it.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::ErrorRate(_) => "error-rate",
            CheckKind::Latency(_) => "latency",
            CheckKind::Samples(_) => "samples",
            CheckKind::Query(_) => "query",
            CheckKind::Json(_) => "json",
        }
    }
}

/// Error rate from a request counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorRateCheck {
    /// The request counter.
    pub requests_metric: String,
    /// Matchers that select the errors among the requests.
    pub error_matchers: Vec<LabelMatcher>,
}

/// A latency quantile from a classic Prometheus histogram.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencyCheck {
    /// The histogram's base name (the `_bucket` series are read).
    pub histogram: String,
    /// The quantile, strictly between 0 and 1.
    pub quantile: f64,
}

/// Per-interval samples of a metric, one value per version per tick.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SamplesCheck {
    /// The query (one series per version, grouped by the version label).
    pub query: QueryTemplate,
    /// Whether higher is worse.
    pub higher_is_worse: bool,
    /// Samples a step needs before it can pass: ticks with both versions sampled
    /// (sequential), or samples per version (Mann–Whitney).
    pub min_samples: usize,
    /// How the samples are compared. Left out of the serialized form when `sequential`, so
    /// that the [`Policy::digest`] of a policy written before the option existed stays what
    /// it was.
    #[serde(skip_serializing_if = "SamplesMethod::is_sequential")]
    pub method: SamplesMethod,
    /// The sequential method's bound on the persistence of the canary − baseline
    /// difference (its lag-1 autocorrelation for an AR(1) series). Left out of the
    /// serialized form at its default, for the same reason.
    #[serde(skip_serializing_if = "is_default_max_autocorrelation")]
    pub max_autocorrelation: f64,
}

fn is_default_max_autocorrelation(value: &f64) -> bool {
    *value == crate::stats::autocorrelated_mean::DEFAULT_MAX_AUTOCORRELATION
}

/// How a samples check compares the versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplesMethod {
    /// The default: an anytime-valid sequential test at every tick that allows for
    /// autocorrelated series ([`crate::stats::autocorrelated_mean`]).
    Sequential,
    /// Kayenta's Mann–Whitney U with the Hodges–Lehmann shift, once per step. Not
    /// anytime-valid; assumes independent samples.
    MannWhitney,
}

impl SamplesMethod {
    /// Whether this is the default method.
    pub fn is_sequential(&self) -> bool {
        *self == SamplesMethod::Sequential
    }

    /// The name the policy writes.
    pub fn name(self) -> &'static str {
        match self {
            SamplesMethod::Sequential => "sequential",
            SamplesMethod::MannWhitney => "mann-whitney",
        }
    }
}

/// A PromQL query with an absolute bound on its (single) value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueryCheck {
    /// The query.
    pub promql: QueryTemplate,
}

/// An absolute bound. Units depend on the check: a fraction for error rates, seconds for
/// latency, the query's own unit for queries.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AbsoluteBound {
    /// The bound to promote under.
    pub max: f64,
    /// A looser bound that rolls back mid-step; with it, `max` is judged at step ends only.
    pub rollback_above: Option<f64>,
}

impl AbsoluteBound {
    /// The bound that rolls back as soon as the evidence is above it.
    pub fn fail_fast_bound(&self) -> f64 {
        self.rollback_above.unwrap_or(self.max)
    }
}

/// A comparison with the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BaselineComparison {
    /// Allowed relative increase over baseline (0.2 = the canary may be 1.2× as bad).
    pub max_increase: f64,
    /// Latency checks: the fixed bound above which a request is slow (seconds).
    pub slow_above: Option<f64>,
}
