//! [`GenericSource`]: the generic provider — any system that answers JSON, asked with one
//! HTTP request (`metrics.http`) or one command run (`metrics.command`) per check per tick,
//! each value picked out of the answer with a JSONPath (RFC 9535, the `serde_json_path`
//! crate). So New Relic (NRQL over its HTTP API), InfluxDB, or an internal API can be read
//! without code.
//!
//! The request is the policy's template with the tick's values: the check's query, the
//! version values, the analysis start and the tick's time. Values are escaped where they go:
//! percent-encoded in the URL, JSON-escaped in a JSON body, as they are in a command's
//! arguments (no shell runs them). What the provider answers must be **cumulative since the
//! analysis start** (`{{start}}` to `{{end}}`), as every source hands the judge; its values
//! are read by [`reading_of_answer`], which is pure (fuzzed and property-tested).
//!
//! HTTP requests behave like Prometheus queries: a timeout per request, retries after a
//! timeout, a refused connection, 429 or 5xx (after `Retry-After` when it fits), a bound on
//! one call with its retries, redirects never followed, the answer read as it streams in and
//! cut off at `max-answer-size`; 401/403 and anything else that is not an answer stop the
//! analysis with exit code 4. A command that fails, times out or prints no JSON does too.
//! Everything shown from an answer or a command's stderr is redacted of every secret.
//!
//! Datadog ([`crate::datadog`]) and CloudWatch ([`crate::cloudwatch`]) are this provider
//! with a request the policy does not write and a reader of their own answers: the same
//! calls, retries, limits, secret headers and errors. CloudWatch's requests are signed with
//! SigV4 ([`crate::auth::sigv4`]), and a CloudWatch 400 that says `Throttling` is retried as
//! a 429 is.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use canary_core::observation::{BaselineData, CheckObservation, Reading, RequestCounts, Tick};
use canary_core::policy::{
    CheckKind, HeaderValueSpec, HttpMethod, HttpRequestSpec, JsonCheck, JsonMeasure, JsonPathText,
    JsonSourceSpec, JsonTransport, MetricsSourceSpec, Policy, ProviderApi, RequestTemplate,
    RequestVariable, TrafficSelector, size_as_written,
};
use canary_core::ports::MetricsSource;
use canary_core::retry::{Backoff, Failure, retry};
use canary_core::secret::{Secret, redacted};
use jiff::Timestamp;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::io::AsyncReadExt;

use crate::auth::Environment;
use crate::auth::aws::{AwsCredentialProvider, AwsCredentials};
use crate::error::{Error, Result, excerpt};
use crate::prometheus::{read_bounded, retry_after_wait, strip_userinfo};
use crate::queries::window_seconds;

/// How many bytes of a bad answer (or a command's stderr) an error shows.
const EXCERPT_BYTES: usize = 200;
/// The first wait before a retry, doubled after each, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// A generic provider as a metrics source: one request or command run per check per tick.
pub struct GenericSource {
    spec: JsonSourceSpec,
    client: reqwest::Client,
    /// Where requests go, as messages show it: the URL up to its first variable, without
    /// credentials or query; or the program.
    address: String,
    traffic: TrafficSelector,
    checks: Vec<(String, JsonCheck)>,
    /// The first wait before a retry (shortened by tests).
    backoff: Duration,
    /// CloudWatch's AWS credentials.
    aws: Option<AwsCredentialProvider>,
}

impl std::fmt::Debug for GenericSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenericSource")
            .field("address", &self.address)
            .field("checks", &self.checks.len())
            .finish_non_exhaustive()
    }
}

/// One request as it is sent, for a tick: what `policy explain` shows and what goes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderedRequest {
    /// An HTTP request.
    Http {
        /// `GET` or `POST`.
        method: &'static str,
        /// The URL with the values in.
        url: String,
        /// The body of a POST.
        body: Option<String>,
    },
    /// A command's program and arguments.
    Command(Vec<String>),
}

impl std::fmt::Display for RenderedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderedRequest::Http { method, url, body } => {
                write!(f, "{method} {url}")?;
                if let Some(body) = body {
                    write!(f, "\n{body}")?;
                }
                Ok(())
            }
            RenderedRequest::Command(args) => {
                let shown: Vec<String> = args
                    .iter()
                    .map(|a| {
                        if a.is_empty()
                            || a.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c))
                        {
                            format!("'{}'", a.replace('\'', "'\\''"))
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                f.write_str(&shown.join(" "))
            }
        }
    }
}

/// The request of `check` at a tick at `at` of an analysis started at `since`.
pub fn render_request(
    spec: &JsonSourceSpec,
    traffic: &TrafficSelector,
    check_name: &str,
    check: &JsonCheck,
    since: Timestamp,
    at: Timestamp,
) -> RenderedRequest {
    let plain = |v: &str| v.to_owned();
    let value = |variable: RequestVariable| -> String {
        match variable {
            RequestVariable::Query => check
                .query
                .as_ref()
                .map(|q| q.render(|v| tick_value(v, traffic, check_name, since, at), plain))
                .unwrap_or_default(),
            other => tick_value(other, traffic, check_name, since, at),
        }
    };
    if let (ProviderApi::CloudWatch(_), Some(query), JsonTransport::Http(http)) =
        (&spec.api, &check.cloudwatch, &spec.transport)
    {
        return RenderedRequest::Http {
            method: "POST",
            url: http.url.render(value, percent_encode),
            body: Some(crate::cloudwatch::request_body(query, traffic, since, at)),
        };
    }
    match &spec.transport {
        JsonTransport::Http(http) => {
            let json_body = http.content_type.to_ascii_lowercase().contains("json");
            let form_body = http
                .content_type
                .to_ascii_lowercase()
                .contains("x-www-form-urlencoded");
            RenderedRequest::Http {
                method: match http.method {
                    HttpMethod::Get => "GET",
                    HttpMethod::Post => "POST",
                },
                url: http.url.render(value, percent_encode),
                body: http.body.as_ref().map(|body| {
                    body.render(value, |v| {
                        if json_body {
                            json_escape(v)
                        } else if form_body {
                            percent_encode(v)
                        } else {
                            v.to_owned()
                        }
                    })
                }),
            }
        }
        JsonTransport::Command(command) => RenderedRequest::Command(
            command
                .run
                .iter()
                .map(|arg| arg.render(value, plain))
                .collect(),
        ),
    }
}

/// A variable's value at a tick (every one but `{{query}}`).
fn tick_value(
    variable: RequestVariable,
    traffic: &TrafficSelector,
    check_name: &str,
    since: Timestamp,
    at: Timestamp,
) -> String {
    match variable {
        RequestVariable::Query => String::new(),
        RequestVariable::Canary => traffic.canary.clone(),
        RequestVariable::Baseline => traffic.baseline.clone(),
        RequestVariable::Label => traffic.label.clone(),
        RequestVariable::Start => since.to_string(),
        RequestVariable::End => at.to_string(),
        RequestVariable::StartUnix => since.as_second().to_string(),
        RequestVariable::EndUnix => at.as_second().to_string(),
        RequestVariable::StartMillis => since.as_millisecond().to_string(),
        RequestVariable::EndMillis => at.as_millisecond().to_string(),
        RequestVariable::Window => window_seconds(since, at).to_string(),
        RequestVariable::Check => check_name.to_owned(),
    }
}

/// Every byte but the unreserved ones (RFC 3986 §2.3) as `%XX`: safe in a path and a query.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `value` escaped for the inside of a JSON string (the template writes the quotes).
fn json_escape(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// What a check's answer says: its values, or why there are none (a path that selects
/// nothing or `null`: no data; several values, not a number, a negative count, more errors
/// than requests: invalid). Never a pass on a value it could not read.
pub fn reading_of_answer(check: &JsonCheck, answer: &serde_json::Value) -> Reading {
    match read_measure(&check.measure, answer) {
        Ok(observation) => Reading::Observed(observation),
        Err(reading) => reading,
    }
}

fn read_measure(
    measure: &JsonMeasure,
    answer: &serde_json::Value,
) -> std::result::Result<CheckObservation, Reading> {
    let no_data = |what: &str, path: &JsonPathText| Reading::NoData {
        reason: format!("{what}: `{path}` selects nothing (or null) in the answer"),
    };
    match measure {
        JsonMeasure::Counts { requests, errors } => {
            let counts = |version: &str,
                          requests: &JsonPathText,
                          errors: &JsonPathText|
             -> std::result::Result<RequestCounts, Reading> {
                let n = number_at(requests, answer, &format!("the {version}'s requests"))?
                    .ok_or_else(|| no_data(&format!("the {version}'s requests"), requests))?;
                let e = number_at(errors, answer, &format!("the {version}'s errors"))?
                    .ok_or_else(|| no_data(&format!("the {version}'s errors"), errors))?;
                if n < 0.0 || e < 0.0 {
                    return Err(Reading::Invalid {
                        reason: format!(
                            "the {version}'s counts are negative ({n} requests, {e} errors): counts since the start never are"
                        ),
                    });
                }
                if e > n {
                    return Err(Reading::Invalid {
                        reason: format!(
                            "the {version} has more errors ({e}) than requests ({n}): `{errors}` and `{requests}` do not count the same requests"
                        ),
                    });
                }
                Ok(RequestCounts {
                    requests: n,
                    errors: e,
                })
            };
            let canary = counts("canary", &requests.canary, &errors.canary)?;
            let baseline = match counts("baseline", &requests.baseline, &errors.baseline) {
                Ok(counts) => BaselineData::Observed(counts),
                Err(Reading::NoData { reason }) => BaselineData::Missing(reason),
                Err(other) => return Err(other),
            };
            Ok(CheckObservation::Counts { canary, baseline })
        }
        JsonMeasure::Percentile {
            canary,
            unit_seconds,
            ..
        } => {
            let value = number_at(canary, answer, "the canary's percentile")?
                .ok_or_else(|| no_data("the canary's percentile", canary))?;
            if value < 0.0 {
                return Err(Reading::Invalid {
                    reason: format!("the canary's percentile is negative ({value})"),
                });
            }
            Ok(CheckObservation::Value {
                value: value * unit_seconds,
            })
        }
        JsonMeasure::Value { path } => {
            let value =
                number_at(path, answer, "the value")?.ok_or_else(|| no_data("the value", path))?;
            Ok(CheckObservation::Value { value })
        }
    }
}

/// `reading` with the reason of a missing baseline replaced by `why()`: Datadog's and
/// CloudWatch's readers read totals at paths of their own making, which mean nothing to the
/// user.
pub(crate) fn with_baseline_missing(reading: Reading, why: impl Fn() -> String) -> Reading {
    match reading {
        Reading::Observed(CheckObservation::Counts {
            canary,
            baseline: BaselineData::Missing(_),
        }) => Reading::Observed(CheckObservation::Counts {
            canary,
            baseline: BaselineData::Missing(why()),
        }),
        other => other,
    }
}

/// The one number `path` selects: `None` when it selects nothing or `null`; a string that
/// holds a number is read as one (some APIs quote their numbers). Anything else is invalid,
/// named with `what`.
fn number_at(
    path: &JsonPathText,
    answer: &serde_json::Value,
    what: &str,
) -> std::result::Result<Option<f64>, Reading> {
    let compiled = path
        .compiled()
        .map_err(|reason| Reading::Invalid { reason })?;
    let nodes = compiled.query(answer).all();
    let invalid = |why: String| Reading::Invalid {
        reason: format!("{what}: `{path}` {why}"),
    };
    let node = match nodes.as_slice() {
        [] => return Ok(None),
        [node] => *node,
        several => {
            return Err(invalid(format!(
                "selects {} values where one was expected",
                several.len()
            )));
        }
    };
    let value = match node {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(x) if x.is_finite() => Ok(Some(x)),
        Some(x) => Err(invalid(format!("selects {x}, not a finite number"))),
        None => {
            let shown = redacted(&node.to_string());
            let shown: String = shown.chars().take(80).collect();
            Err(invalid(format!("selects {shown}, not a number")))
        }
    }
}

impl GenericSource {
    /// The source of a policy whose metrics come from `metrics.http`, `metrics.command`,
    /// `metrics.datadog` or `metrics.cloudwatch`. Secret header values are read once here, to
    /// fail early (exit 2), and again at every tick (tokens rotate); CloudWatch's AWS
    /// credentials are looked for in the process's environment.
    pub fn from_policy(policy: &Policy) -> Result<Self> {
        Self::from_policy_in(policy, Environment::process())
    }

    /// [`GenericSource::from_policy`] with the AWS settings read from `env`.
    pub fn from_policy_in(policy: &Policy, env: Environment) -> Result<Self> {
        let MetricsSourceSpec::Json(spec) = &policy.metrics else {
            return Err(Error::Config(
                "the policy's metrics do not come from `http` or `command`".to_owned(),
            ));
        };
        crate::install_crypto_provider();
        let checks = policy
            .checks
            .iter()
            .filter_map(|c| match &c.kind {
                CheckKind::Json(json) => Some((c.name.clone(), json.clone())),
                _ => None,
            })
            .collect();
        let address = match &spec.transport {
            JsonTransport::Http(http) => http_address(&http.url),
            JsonTransport::Command(command) => command
                .run
                .first()
                .map(|p| p.source.clone())
                .unwrap_or_default(),
        };
        let mut headers = HeaderMap::new();
        if let JsonTransport::Http(http) = &spec.transport {
            for (name, value) in &http.headers {
                if let HeaderValueSpec::Plain(value) = value {
                    let mut value = HeaderValue::from_str(value).map_err(|_| {
                        Error::Config(format!(
                            "metrics.http.headers.{name}: not a valid header value"
                        ))
                    })?;
                    value.set_sensitive(true);
                    headers.insert(header_name(name)?, value);
                }
            }
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("canary/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(spec.timeout)
            // As for Prometheus: a redirect would take the request (and its credentials)
            // where the policy does not say.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
        let aws = match &spec.api {
            ProviderApi::CloudWatch(sigv4) => {
                let provider = AwsCredentialProvider::new(sigv4.clone(), env);
                provider.check_available()?;
                Some(provider)
            }
            _ => None,
        };
        let source = GenericSource {
            spec: (**spec).clone(),
            client,
            address,
            traffic: policy.traffic.clone(),
            checks,
            backoff: FIRST_BACKOFF,
            aws,
        };
        source.secret_headers()?;
        Ok(source)
    }

    /// The same source with another first wait between retries (tests keep it short).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    /// Where requests go, as messages show it.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn provider(&self) -> &'static str {
        match (&self.spec.api, &self.spec.transport) {
            (ProviderApi::Datadog, _) => "datadog",
            (ProviderApi::CloudWatch(_), _) => "cloudwatch",
            (ProviderApi::Json, JsonTransport::Http(_)) => "http provider",
            (ProviderApi::Json, JsonTransport::Command(_)) => "command provider",
        }
    }

    /// What to check when the provider refuses the credentials.
    fn credentials_hint(&self) -> &'static str {
        match self.spec.api {
            ProviderApi::Json => "check the headers' credentials (not shown)",
            ProviderApi::Datadog => {
                "check metrics.datadog.api-key and application-key (not shown), and the site they belong to"
            }
            ProviderApi::CloudWatch(_) => {
                "check the AWS credentials (not shown), their cloudwatch:GetMetricData permission and the region"
            }
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Provider {
            provider: self.provider(),
            address: self.address.clone(),
            message,
        }
    }

    /// The secret headers' values, read now (from their file or variable); for a command,
    /// its secret variables, read (so learnt by the redactor) and checked to be set.
    fn secret_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>> {
        let http = match &self.spec.transport {
            JsonTransport::Http(http) => http,
            JsonTransport::Command(command) => {
                for source in &command.secret_sources {
                    source.read().map_err(|e| Error::Secret(e.to_string()))?;
                }
                return Ok(Vec::new());
            }
        };
        let mut headers = Vec::new();
        for (name, value) in &http.headers {
            let HeaderValueSpec::Secret(source) = value else {
                continue;
            };
            let secret: Secret = source.read().map_err(|e| Error::Secret(e.to_string()))?;
            let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
                Error::Secret(format!(
                    "{} holds characters an HTTP header cannot carry",
                    source.describe()
                ))
            })?;
            value.set_sensitive(true);
            headers.push((header_name(name)?, value));
        }
        Ok(headers)
    }

    /// CloudWatch's AWS credentials, fetched (or cached); `None` for other providers.
    async fn aws_credentials(&self) -> Result<Option<AwsCredentials>> {
        Ok(match &self.aws {
            Some(provider) => Some(
                provider
                    .credentials(
                        &self.client,
                        self.spec.timeout,
                        Backoff::new(self.backoff, MAX_BACKOFF, self.spec.retries),
                    )
                    .await?,
            ),
            None => None,
        })
    }

    /// Pre-flight: asks Datadog (metric metadata, `GET /api/v1/metrics/{name}`) or
    /// CloudWatch (`ListMetrics` with the namespace, the check's shared dimensions and the
    /// version's dimension) about every metric a counts check reads, one request per metric.
    /// One the provider does not know is [`Error::UnknownMetric`] (exit 2): both providers
    /// send nothing for a count that stayed 0, so a misspelt errors metric would read as 0
    /// errors at every tick. A provider that cannot be asked is the error of any request
    /// (exit 4). Percentile checks are not asked about: a percentile that is not there is no
    /// data, never a pass. The generic provider asks nothing (its JSONPaths selecting nothing
    /// is no data already).
    pub async fn check_metrics_exist(&self) -> Result<()> {
        let JsonTransport::Http(http) = &self.spec.transport else {
            return Ok(());
        };
        if matches!(self.spec.api, ProviderApi::Json) {
            return Ok(());
        }
        let headers = self.secret_headers()?;
        let aws = self.aws_credentials().await?;
        let fixed = match http.url.parts.first() {
            Some(canary_core::policy::RequestPart::Text(text)) => text.as_str(),
            _ => "",
        };
        let fixed = fixed.split(['?', '#']).next().unwrap_or_default();
        for (name, check) in &self.checks {
            if !matches!(check.measure, JsonMeasure::Counts { .. }) {
                continue;
            }
            match &self.spec.api {
                ProviderApi::Json => {}
                ProviderApi::Datadog => {
                    let queries = check
                        .query
                        .as_ref()
                        .map(|q| q.render(|_| String::new(), |v| v.to_owned()))
                        .unwrap_or_default();
                    let base = fixed.strip_suffix("/api/v1/query").unwrap_or(fixed);
                    for metric in crate::datadog::metric_names(&queries) {
                        let url = format!("{base}/api/v1/metrics/{}", percent_encode(&metric));
                        let (status, body) = self
                            .http_call(http, "GET", &url, None, &headers, None, &[404])
                            .await?;
                        if status == 404 {
                            return Err(Error::UnknownMetric {
                                provider: "datadog",
                                check: name.clone(),
                                metric,
                                answer: crate::datadog::unknown_metric_answer(
                                    &body.unwrap_or_default(),
                                ),
                                what: "metric's name right?",
                            });
                        }
                    }
                    // An errors query whose tags match nothing reads as 0 errors (Datadog
                    // sends no series): ask the requests metric under the errors query's
                    // tags that the requests query filters on too, over the last day.
                    if let [requests, errors] = &crate::datadog::split_queries(&queries)[..]
                        && let Some(scope) = crate::datadog::errors_scope_to_ask(requests, errors)
                        && let Some(metric) =
                            crate::datadog::metric_names(requests).into_iter().next()
                    {
                        let asked = format!("sum:{metric}{{{scope}}}.as_count().rollup(sum, 3600)");
                        let now = Timestamp::now().as_second();
                        let url = format!(
                            "{base}/api/v1/query?from={}&to={now}&query={}",
                            now - SCOPE_WINDOW_SECONDS,
                            percent_encode(&asked)
                        );
                        let (_, body) = self
                            .http_call(http, "GET", &url, None, &headers, None, &[])
                            .await?;
                        let body = body.unwrap_or_default();
                        let matched = serde_json::from_slice::<serde_json::Value>(&body)
                            .map_err(|e| e.to_string())
                            .and_then(|answer| crate::datadog::answer_has_points(&answer))
                            .map_err(|why| {
                                self.error(format!(
                                    "asking whether the errors query's tags match anything ({asked}): {why}; the answer begins: {}",
                                    excerpt(&body, EXCERPT_BYTES)
                                ))
                            })?;
                        if !matched {
                            return Err(Error::UnmatchedScope {
                                check: name.clone(),
                                scope,
                                metric,
                                asked,
                            });
                        }
                    }
                }
                ProviderApi::CloudWatch(_) => {
                    let Some(query) = &check.cloudwatch else {
                        continue;
                    };
                    // The same request as GetMetricData's, with ListMetrics' target, which
                    // is signed with it.
                    let mut listing = http.clone();
                    for (header, value) in &mut listing.headers {
                        if header.eq_ignore_ascii_case("x-amz-target") {
                            *value = HeaderValueSpec::Plain(
                                crate::cloudwatch::LIST_METRICS_TARGET.to_owned(),
                            );
                        }
                    }
                    let mut headers = headers.clone();
                    headers.push((
                        HeaderName::from_static("x-amz-target"),
                        HeaderValue::from_static(crate::cloudwatch::LIST_METRICS_TARGET),
                    ));
                    // A percentile is not asked about; nor, when the check says it may be
                    // unlisted, the errors metric (a healthy service's 5XX count may have had
                    // no datapoint in the two weeks ListMetrics looks at).
                    let asked = query.metrics.iter().filter(|m| {
                        m.what != "percentile"
                            && !(m.what == "errors" && query.errors_may_be_unlisted)
                    });
                    for metric in asked {
                        let body = crate::cloudwatch::list_metrics_body(
                            query,
                            &self.traffic.label,
                            &metric.metric,
                        );
                        let (_, answer) = self
                            .http_call(
                                &listing,
                                "POST",
                                fixed,
                                Some(&body),
                                &headers,
                                aws.as_ref(),
                                &[],
                            )
                            .await?;
                        let answer = answer.unwrap_or_default();
                        let listed = serde_json::from_slice::<serde_json::Value>(&answer)
                            .map_err(|e| e.to_string())
                            .and_then(|v| crate::cloudwatch::listed_metrics(&v))
                            .map_err(|why| {
                                self.error(format!(
                                    "ListMetrics: {why}; the answer begins: {}",
                                    excerpt(&answer, EXCERPT_BYTES)
                                ))
                            })?;
                        if listed == 0 {
                            let mut dimensions: Vec<String> = query
                                .dimensions
                                .iter()
                                .map(|(n, v)| format!("{n}={v}"))
                                .collect();
                            dimensions.push(self.traffic.label.clone());
                            return Err(Error::UnknownMetric {
                                provider: "cloudwatch",
                                check: name.clone(),
                                metric: format!("{}/{}", query.namespace, metric.metric),
                                answer: format!(
                                    "ListMetrics lists none with the dimensions {}, so none had a datapoint in the last two weeks (misspelt, or a count AWS never published: none is published while it stays 0)",
                                    dimensions.join(", ")
                                ),
                                what: if metric.what == "errors" {
                                    "metric's name, namespace or dimension right? If it is, and the service has had no error in two weeks, set `errors-may-be-unlisted: true` on the check's `cloudwatch`: pre-flight then skips this question for its errors metric only"
                                } else {
                                    "metric's name, namespace or dimension right?"
                                },
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads every check at `at`, cumulative since `since`: one request per check.
    ///
    /// With a `lag` (Datadog, CloudWatch), the tick reads the data up to `at − lag`: what
    /// has arrived. Before any has (`at − lag` not after `since`), every check is no data.
    pub async fn read_tick(&self, since: Timestamp, at: Timestamp) -> Result<Tick> {
        let end = self.data_end(at);
        let mut readings = BTreeMap::new();
        if end <= since {
            for (name, _) in &self.checks {
                readings.insert(name.clone(), self.not_arrived());
            }
            return Ok(Tick {
                at,
                window_seconds: 0.0,
                readings,
                warnings: Vec::new(),
            });
        }
        let headers = self.secret_headers()?;
        let aws = self.aws_credentials().await?;
        for (name, check) in &self.checks {
            let reading = self
                .read_check(name, check, since, end, &headers, aws.as_ref())
                .await?;
            readings.insert(name.clone(), reading);
        }
        Ok(Tick {
            at,
            window_seconds: window_seconds(since, end) as f64,
            readings,
            warnings: Vec::new(),
        })
    }

    /// Where a tick at `at` stops reading: `lag` before it (the policy's `metrics.*.lag`).
    fn data_end(&self, at: Timestamp) -> Timestamp {
        let lag =
            jiff::SignedDuration::try_from(self.spec.lag).unwrap_or(jiff::SignedDuration::ZERO);
        at.checked_sub(lag).unwrap_or(at)
    }

    /// The reading of a check at a tick whose data has not arrived yet (within `lag` of the
    /// start).
    fn not_arrived(&self) -> Reading {
        Reading::NoData {
            reason: format!(
                "no data has arrived yet: a tick reads the data up to {} before it (metrics.{}.lag)",
                canary_core::policy::duration_as_written(self.spec.lag),
                self.spec.name()
            ),
        }
    }

    /// One check's reading at `at`, cumulative since `since`: one request.
    async fn read_check(
        &self,
        name: &str,
        check: &JsonCheck,
        since: Timestamp,
        at: Timestamp,
        headers: &[(HeaderName, HeaderValue)],
        aws: Option<&AwsCredentials>,
    ) -> Result<Reading> {
        let request = render_request(&self.spec, &self.traffic, name, check, since, at);
        Ok(match self.fetch(&request, headers, aws).await? {
            Some(body) => {
                let answer = self.json_of(&body)?;
                self.reading_of(check, &answer)
            }
            None => Reading::Invalid {
                reason: format!(
                    "the answer is larger than {} (metrics.{}.max-answer-size), cut off unread",
                    size_as_written(self.spec.max_answer_bytes),
                    self.spec.name()
                ),
            },
        })
    }

    /// The answer's JSON, or exit 4 naming its first bytes.
    fn json_of(&self, body: &[u8]) -> Result<serde_json::Value> {
        serde_json::from_slice::<serde_json::Value>(body).map_err(|e| {
            self.error(format!(
                "the answer is not JSON ({e}); it begins: {}",
                excerpt(body, EXCERPT_BYTES)
            ))
        })
    }

    /// What one check's answer says, by the provider's reader.
    fn reading_of(&self, check: &JsonCheck, answer: &serde_json::Value) -> Reading {
        match self.spec.api {
            ProviderApi::Json => reading_of_answer(check, answer),
            ProviderApi::Datadog => crate::datadog::reading_of_answer(check, &self.traffic, answer),
            ProviderApi::CloudWatch(_) => crate::cloudwatch::reading_of_answer(check, answer),
        }
    }

    /// Reads the ticks at `times` of a window wholly in the past, each cumulative since
    /// `since`, with **one request per check** where the provider's answer over the whole
    /// window holds every tick's numbers: Datadog (one query from the start to the end; each
    /// tick keeps the points of the rollup intervals that begin before it,
    /// [`crate::datadog::answer_until`]) and CloudWatch's counts checks (one `GetMetricData`
    /// in minute datapoints, its pages followed; each tick adds up the minutes its own
    /// whole-minute period covers, [`crate::cloudwatch::tick_cut_seconds`]). Each tick's cut
    /// answer is read by the same reader as the tick's own answer, so the ticks are the
    /// per-tick path's. A CloudWatch percentile (a percentile of minutes is not the
    /// percentile of the window) and the generic provider (no raw data to cut) are read tick
    /// by tick. An answer that cannot be cut exactly — larger than `max-answer-size`, rolled
    /// up coarser than the ticks, more pages than [`MAX_PAGES`] — is exit 4 saying so and
    /// what to do, never a reading of part of the window.
    pub async fn read_window(&self, since: Timestamp, times: &[Timestamp]) -> Result<Vec<Tick>> {
        // With a `lag`, each tick reads up to `lag` before it, as `read_tick` does; ticks
        // whose data cannot have arrived (within `lag` of the start) read no data.
        let ends: Vec<Timestamp> = times.iter().map(|&at| self.data_end(at)).collect();
        let readable: Vec<Timestamp> = ends.iter().copied().filter(|&e| e > since).collect();
        let waiting = times.len() - readable.len();
        let mut ticks: Vec<Tick> = times[..waiting]
            .iter()
            .map(|&at| Tick {
                at,
                window_seconds: 0.0,
                readings: self
                    .checks
                    .iter()
                    .map(|(name, _)| (name.clone(), self.not_arrived()))
                    .collect(),
                warnings: Vec::new(),
            })
            .collect();
        let read = self.read_window_ends(since, &readable).await?;
        for (tick, &at) in read.into_iter().zip(&times[waiting..]) {
            ticks.push(Tick { at, ..tick });
        }
        Ok(ticks)
    }

    /// [`GenericSource::read_window`] of the ticks whose data ends at `times` (each after
    /// `since`).
    async fn read_window_ends(&self, since: Timestamp, times: &[Timestamp]) -> Result<Vec<Tick>> {
        let Some(&end) = times.last() else {
            return Ok(Vec::new());
        };
        let headers = self.secret_headers()?;
        let aws = self.aws_credentials().await?;
        let mut readings: Vec<BTreeMap<String, Reading>> = vec![BTreeMap::new(); times.len()];
        for (name, check) in &self.checks {
            let ranged = match (&self.spec.api, &check.measure) {
                (ProviderApi::Datadog, _) => Some(
                    self.datadog_window(name, check, since, end, times, &headers)
                        .await?,
                ),
                (ProviderApi::CloudWatch(_), JsonMeasure::Counts { .. }) => Some(
                    self.cloudwatch_window(name, check, since, end, times, &headers, aws.as_ref())
                        .await?,
                ),
                _ => None,
            };
            match ranged {
                Some(per_tick) => {
                    for (tick, reading) in readings.iter_mut().zip(per_tick) {
                        tick.insert(name.clone(), reading);
                    }
                }
                None => {
                    for (tick, &at) in readings.iter_mut().zip(times) {
                        let reading = self
                            .read_check(name, check, since, at, &headers, aws.as_ref())
                            .await?;
                        tick.insert(name.clone(), reading);
                    }
                }
            }
        }
        Ok(times
            .iter()
            .zip(readings)
            .map(|(&at, readings)| Tick {
                at,
                window_seconds: window_seconds(since, at) as f64,
                readings,
                warnings: Vec::new(),
            })
            .collect())
    }

    /// The message of a past window that cannot be read with one request per check.
    fn window_refused(&self, name: &str, since: Timestamp, end: Timestamp, why: &str) -> Error {
        self.error(format!(
            "check `{name}`: the window {since} to {end} cannot be read with one request: {why}; shorten the window, or pass --query-per-tick to read it tick by tick"
        ))
    }

    /// A Datadog check over a past window: one query, cut at each tick.
    async fn datadog_window(
        &self,
        name: &str,
        check: &JsonCheck,
        since: Timestamp,
        end: Timestamp,
        times: &[Timestamp],
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Vec<Reading>> {
        let request = render_request(&self.spec, &self.traffic, name, check, since, end);
        let Some(body) = self.fetch(&request, headers, None).await? else {
            return Err(self.window_refused(
                name,
                since,
                end,
                &format!(
                    "the answer is larger than {} (metrics.{}.max-answer-size)",
                    size_as_written(self.spec.max_answer_bytes),
                    self.spec.name()
                ),
            ));
        };
        let answer = self.json_of(&body)?;
        let interval = crate::datadog::rollup_interval(&answer)
            .map_err(|why| self.window_refused(name, since, end, &why))?;
        if let Some(interval) = interval {
            let spacing = tick_spacing_seconds(since, times);
            if interval > spacing {
                return Err(self.window_refused(
                    name,
                    since,
                    end,
                    &format!(
                        "Datadog rolled it up into points of {interval} s (at most 1500 points per series), coarser than the ticks' {spacing} s, so the ticks cannot be told apart"
                    ),
                ));
            }
        }
        Ok(times
            .iter()
            .map(|at| {
                let cut = crate::datadog::answer_until(&answer, at.as_millisecond() as f64);
                crate::datadog::reading_of_answer(check, &self.traffic, &cut)
            })
            .collect())
    }

    /// A CloudWatch counts check over a past window: one `GetMetricData` in minute
    /// datapoints (its pages followed, at most [`MAX_PAGES`]), cut at each tick.
    #[allow(clippy::too_many_arguments)]
    async fn cloudwatch_window(
        &self,
        name: &str,
        check: &JsonCheck,
        since: Timestamp,
        end: Timestamp,
        times: &[Timestamp],
        headers: &[(HeaderName, HeaderValue)],
        aws: Option<&AwsCredentials>,
    ) -> Result<Vec<Reading>> {
        let (Some(query), JsonTransport::Http(http)) = (&check.cloudwatch, &self.spec.transport)
        else {
            return Err(Error::Config(format!(
                "check `{name}`: a CloudWatch check without its query"
            )));
        };
        let RenderedRequest::Http { url, .. } =
            render_request(&self.spec, &self.traffic, name, check, since, end)
        else {
            return Err(Error::Config(format!(
                "check `{name}`: a CloudWatch check without an HTTP request"
            )));
        };
        let mut merged = serde_json::Value::Null;
        let mut token: Option<String> = None;
        let mut pages = 0usize;
        loop {
            if pages == MAX_PAGES {
                return Err(self.window_refused(
                    name,
                    since,
                    end,
                    &format!("CloudWatch still had a NextToken after {MAX_PAGES} pages"),
                ));
            }
            pages += 1;
            let body = crate::cloudwatch::window_request_body(
                query,
                &self.traffic,
                since,
                end,
                token.as_deref(),
            );
            let (_, answer) = self
                .http_call(http, "POST", &url, Some(&body), headers, aws, &[])
                .await?;
            let Some(answer) = answer else {
                return Err(self.window_refused(
                    name,
                    since,
                    end,
                    &format!(
                        "a page of the answer is larger than {} (metrics.{}.max-answer-size)",
                        size_as_written(self.spec.max_answer_bytes),
                        self.spec.name()
                    ),
                ));
            };
            let page = self.json_of(&answer)?;
            crate::cloudwatch::merge_page(&mut merged, &page)
                .map_err(|why| self.error(format!("GetMetricData: {why}")))?;
            match page.get("NextToken").and_then(serde_json::Value::as_str) {
                Some(next) if !next.is_empty() => {
                    if token.as_deref() == Some(next) {
                        return Err(self.window_refused(
                            name,
                            since,
                            end,
                            "CloudWatch answered the same NextToken twice",
                        ));
                    }
                    token = Some(next.to_owned());
                }
                _ => break,
            }
        }
        Ok(times
            .iter()
            .map(|&at| {
                let cut = crate::cloudwatch::answer_until(
                    &merged,
                    crate::cloudwatch::tick_cut_seconds(since, at),
                );
                crate::cloudwatch::reading_of_answer(check, &cut)
            })
            .collect())
    }

    /// The answer's bytes; `None` when it is larger than `max-answer-size`.
    async fn fetch(
        &self,
        request: &RenderedRequest,
        headers: &[(HeaderName, HeaderValue)],
        aws: Option<&AwsCredentials>,
    ) -> Result<Option<Vec<u8>>> {
        match request {
            RenderedRequest::Http { method, url, body } => {
                let JsonTransport::Http(http) = &self.spec.transport else {
                    return Err(Error::Config(
                        "an HTTP request without `metrics.http`".to_owned(),
                    ));
                };
                self.http_call(http, method, url, body.as_deref(), headers, aws, &[])
                    .await
                    .map(|(_, body)| body)
            }
            RenderedRequest::Command(args) => self.run(args).await,
        }
    }

    /// One HTTP call with its retries, bounded like a Prometheus call: the status and the
    /// answer's bytes (`None` when larger than `max-answer-size`). A status in `accept` is an
    /// answer as a 2xx is (pre-flight's Datadog 404 for a metric it does not know).
    #[allow(clippy::too_many_arguments)]
    async fn http_call(
        &self,
        http: &HttpRequestSpec,
        method: &str,
        url: &str,
        body: Option<&str>,
        headers: &[(HeaderName, HeaderValue)],
        aws: Option<&AwsCredentials>,
        accept: &[u16],
    ) -> Result<(u16, Option<Vec<u8>>)> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| self.error(format!("the request's URL is not a URL: {e}")))?;
        let backoff = Backoff::new(self.backoff, MAX_BACKOFF, self.spec.retries);
        let bound = self.spec.timeout.saturating_mul(backoff.attempts())
            + backoff.total_pause()
            + Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + bound;
        let attempts = retry(backoff, tokio::time::sleep, |number| {
            self.http_attempt(
                http, method, &url, body, headers, aws, accept, number, deadline,
            )
        });
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.error(format!(
                "no usable answer within {bound:?}, the bound on one call with its retries"
            ))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn http_attempt(
        &self,
        http: &HttpRequestSpec,
        method: &str,
        url: &reqwest::Url,
        body: Option<&str>,
        headers: &[(HeaderName, HeaderValue)],
        aws: Option<&AwsCredentials>,
        accept: &[u16],
        number: u32,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<(u16, Option<Vec<u8>>), Failure<Error>> {
        let mut request = match method {
            "POST" => self.client.post(url.clone()),
            _ => self.client.get(url.clone()),
        }
        .timeout(self.spec.timeout)
        .header(header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, http.content_type.as_str())
                .body(body.to_owned());
        }
        for (name, value) in headers {
            request = request.header(name.clone(), value.clone());
        }
        if let (Some(credentials), ProviderApi::CloudWatch(sigv4)) = (aws, &self.spec.api) {
            for (name, value) in self.signature(http, sigv4, credentials, method, url, body)? {
                request = request.header(name, value);
            }
        }
        let (failure, retry_after) = match request.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                if (300..400).contains(&status) {
                    return Err(Failure::Final(self.error(format!(
                        "HTTP {status}: a redirect, not followed (canary follows no redirect: set the URL to the address that answers)"
                    ))));
                }
                let retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after_wait(v, Timestamp::now()));
                match read_bounded(&mut response, self.spec.max_answer_bytes).await {
                    Ok(body) if (200..300).contains(&status) || accept.contains(&status) => {
                        return Ok((status, body));
                    }
                    Ok(body) => {
                        let shown = body.map_or_else(
                            || "(a body larger than max-answer-size)".to_owned(),
                            |b| excerpt(&b, EXCERPT_BYTES),
                        );
                        if status == 401 || status == 403 {
                            return Err(Failure::Final(self.error(format!(
                                "HTTP {status}: authentication failed, the server said {shown}; {}",
                                self.credentials_hint()
                            ))));
                        }
                        // CloudWatch says it is throttling with a 400.
                        let throttled = matches!(self.spec.api, ProviderApi::CloudWatch(_))
                            && status == 400
                            && shown.contains("Throttling");
                        let error = self.error(format!(
                            "HTTP {status} after {number} attempt{}: {shown}",
                            if number == 1 { "" } else { "s" }
                        ));
                        if status != 429 && status < 500 && !throttled {
                            return Err(Failure::Final(error));
                        }
                        (error, retry_after)
                    }
                    Err(e) => (self.transport_error(&e, number), None),
                }
            }
            Err(e) => (self.transport_error(&e, number), None),
        };
        let attempts = Backoff::new(self.backoff, MAX_BACKOFF, self.spec.retries).attempts();
        match retry_after {
            Some(wait) if number < attempts => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if wait + self.spec.timeout > left {
                    return Err(Failure::Final(self.error(format!(
                        "the server asks to retry after {wait:?} (Retry-After), more than the {left:?} left of this call's bound; gave up: {failure}"
                    ))));
                }
                Err(Failure::RetryAfter(failure, wait))
            }
            _ => Err(Failure::Retryable(failure)),
        }
    }

    /// The SigV4 headers of a CloudWatch request: the content type and the policy's plain
    /// headers (`X-Amz-Target`) are signed with it, as AWS's SDKs sign them.
    fn signature(
        &self,
        http: &HttpRequestSpec,
        sigv4: &canary_core::policy::SigV4Spec,
        credentials: &AwsCredentials,
        method: &str,
        url: &reqwest::Url,
        body: Option<&str>,
    ) -> std::result::Result<Vec<(HeaderName, HeaderValue)>, Failure<Error>> {
        let mut signed: Vec<(String, &str)> = Vec::new();
        if body.is_some() {
            signed.push(("content-type".to_owned(), http.content_type.as_str()));
        }
        for (name, value) in &http.headers {
            if let HeaderValueSpec::Plain(value) = value {
                signed.push((name.to_ascii_lowercase(), value.as_str()));
            }
        }
        let signed: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let added = crate::auth::sigv4::sign_request(
            credentials,
            sigv4,
            crate::auth::sigv4::Unsigned {
                method,
                url: url.as_str(),
                headers: &signed,
                body: body.unwrap_or_default().as_bytes(),
            },
            std::time::SystemTime::now(),
        )
        .map_err(Failure::Final)?;
        added
            .into_iter()
            .map(|added| {
                let name = HeaderName::from_bytes(added.name.as_bytes()).map_err(|_| {
                    Failure::Final(Error::Config(format!(
                        "SigV4 gave a bad header name {:?}",
                        added.name
                    )))
                })?;
                let mut value = HeaderValue::from_str(&added.value).map_err(|_| {
                    Failure::Final(Error::Secret(
                        "the AWS credentials hold characters an HTTP header cannot carry"
                            .to_owned(),
                    ))
                })?;
                value.set_sensitive(added.sensitive || name == header::AUTHORIZATION);
                Ok((name, value))
            })
            .collect()
    }

    fn transport_error(&self, err: &reqwest::Error, attempts: u32) -> Error {
        let plural = if attempts == 1 { "" } else { "s" };
        if err.is_timeout() {
            self.error(format!(
                "no answer within {:?} ({attempts} attempt{plural})",
                self.spec.timeout
            ))
        } else {
            // The whole chain: reqwest's own words name the request, its sources why.
            let mut shown = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                shown.push_str(": ");
                shown.push_str(&cause.to_string());
                source = cause.source();
            }
            self.error(format!(
                "cannot connect ({attempts} attempt{plural}): {}",
                redacted(&shown)
            ))
        }
    }

    /// Runs the command: its stdout (bounded), or an error when it fails, times out or
    /// cannot start. Killed when the timeout passes.
    async fn run(&self, args: &[String]) -> Result<Option<Vec<u8>>> {
        let Some((program, rest)) = args.split_first() else {
            return Err(Error::Config("metrics.command.run is empty".to_owned()));
        };
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.error(format!("cannot start {program:?}: {e}")))?;
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let limit = self.spec.max_answer_bytes;
        let outcome = tokio::time::timeout(self.spec.timeout, async {
            let read_out = async {
                let mut out = Vec::new();
                if let Some(pipe) = stdout.as_mut() {
                    pipe.take(limit + 1).read_to_end(&mut out).await?;
                }
                Ok::<_, std::io::Error>(out)
            };
            let read_err = async {
                let mut err = Vec::new();
                if let Some(pipe) = stderr.as_mut() {
                    pipe.take(64 * 1024).read_to_end(&mut err).await?;
                }
                Ok::<_, std::io::Error>(err)
            };
            let (out, err) = tokio::join!(read_out, read_err);
            let status = child.wait().await;
            (out, err, status)
        })
        .await;
        let Ok((out, err, status)) = outcome else {
            // Dropping the child kills it.
            return Err(self.error(format!(
                "did not finish within {:?} (metrics.command.timeout); killed",
                self.spec.timeout
            )));
        };
        let out = out.map_err(|e| self.error(format!("reading its output: {e}")))?;
        let err = err.unwrap_or_default();
        let status = status.map_err(|e| self.error(format!("waiting for it: {e}")))?;
        if !status.success() {
            return Err(self.error(format!(
                "exited with {status}; its stderr: {}",
                excerpt(&err, EXCERPT_BYTES)
            )));
        }
        if out.len() as u64 > limit {
            return Ok(None);
        }
        Ok(Some(out))
    }
}

/// How far back pre-flight looks for a series of the requests metric under a Datadog errors
/// query's tags: a day, so that a service with little traffic at night still has some.
const SCOPE_WINDOW_SECONDS: i64 = 24 * 3600;

/// The most pages of one CloudWatch `GetMetricData` a past window's read follows (each at
/// most 100,800 datapoints, CloudWatch's `MaxDatapoints` default: AWS's `GetMetricData`
/// reference); past them the read stops with exit 4 rather than judge part of the window.
pub const MAX_PAGES: usize = 100;

/// The time between ticks (the policy's interval: the longest gap, the first from the start;
/// the last tick, at the window's end, may come sooner), in seconds: a past window's answer
/// must be rolled up at most this coarsely for its ticks to be cut apart.
fn tick_spacing_seconds(since: Timestamp, times: &[Timestamp]) -> f64 {
    let mut previous = since;
    let mut longest: f64 = 0.0;
    for &at in times {
        let gap = (at.as_nanosecond() - previous.as_nanosecond()) as f64 / 1e9;
        longest = longest.max(gap);
        previous = at;
    }
    longest
}

/// The URL as messages show it: up to its first variable, without credentials or query.
fn http_address(url: &RequestTemplate) -> String {
    let fixed = match url.parts.first() {
        Some(canary_core::policy::RequestPart::Text(text)) => text.as_str(),
        _ => "",
    };
    let fixed = fixed.split(['?', '#']).next().unwrap_or_default();
    strip_userinfo(fixed)
}

fn header_name(name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        Error::Config(format!(
            "metrics.http.headers: {name:?} is not a header name"
        ))
    })
}

#[async_trait]
impl MetricsSource for GenericSource {
    async fn read(&self, since: Timestamp, at: Timestamp) -> canary_core::Result<Tick> {
        Ok(self.read_tick(since, at).await?)
    }

    async fn read_past(
        &self,
        since: Timestamp,
        times: &[Timestamp],
    ) -> canary_core::Result<Vec<Tick>> {
        Ok(self.read_window(since, times).await?)
    }

    async fn preflight(&self) -> canary_core::Result<()> {
        Ok(self.check_metrics_exist().await?)
    }

    fn describe(&self) -> String {
        format!("{} {}", self.provider(), self.address)
    }
}

#[cfg(test)]
mod tests {
    use canary_tests::fake_http::{FakeServer, header_of, http, path_of};

    use super::*;

    const COUNTS_POLICY: &str = "service: checkout
traffic: {label: version, canary: 'can ary', baseline: stable}
metrics:
  http:
    url: 'URL/query?q={{query}}&from={{start_unix}}&to={{end_unix}}'
    headers: {X-Api-Key: {file: 'KEYFILE'}}
    timeout: 2s
    retries: 2
rollout: {interval: 1s}
checks:
  - name: errors
    json:
      query: \"SELECT count(*) FROM Tx WHERE v IN ('{{canary}}', '{{baseline}}') SINCE {{start_unix}}\"
      requests: {canary: '$.canary.requests', baseline: '$.baseline.requests'}
      errors: {canary: '$.canary.errors', baseline: '$.baseline.errors'}
    slo: {max: 1%}
";

    fn key_file() -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("canary-generic-key-{}", std::process::id()));
        std::fs::write(&path, "generic-test-key-12345\n").expect("write the key");
        path
    }

    fn policy(url: &str) -> Policy {
        let text = COUNTS_POLICY
            .replace("URL", url)
            .replace("KEYFILE", &key_file().display().to_string());
        Policy::from_yaml(&text, "test.yaml").expect("valid")
    }

    fn counts_check() -> JsonCheck {
        match policy("http://x").checks[0].kind.clone() {
            CheckKind::Json(json) => json,
            _ => unreachable!("a json check"),
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn requests_carry_the_tick_percent_encoded_in_the_url_and_json_escaped_in_a_body() {
        let policy = policy("http://provider:8080");
        let MetricsSourceSpec::Json(spec) = &policy.metrics else {
            unreachable!()
        };
        let request = render_request(
            spec,
            &policy.traffic,
            "errors",
            &counts_check(),
            at(1_800_000_000),
            at(1_800_000_060),
        );
        assert_eq!(
            request,
            RenderedRequest::Http {
                method: "GET",
                url: "http://provider:8080/query?q=SELECT%20count%28%2A%29%20FROM%20Tx%20WHERE%20v%20IN%20%28%27can%20ary%27%2C%20%27stable%27%29%20SINCE%201800000000&from=1800000000&to=1800000060".to_owned(),
                body: None,
            }
        );
        let body = RequestTemplate::parse(r#"{"q": "{{query}}", "v": "{{canary}}"}"#).unwrap();
        let mut spec = (**spec).clone();
        if let JsonTransport::Http(http) = &mut spec.transport {
            http.method = HttpMethod::Post;
            http.body = Some(body);
        }
        let mut traffic = policy.traffic.clone();
        traffic.canary = "a\"b\\c".to_owned();
        let RenderedRequest::Http { body, .. } =
            render_request(&spec, &traffic, "errors", &counts_check(), at(0), at(60))
        else {
            unreachable!()
        };
        let body: serde_json::Value = serde_json::from_str(&body.unwrap()).expect("still JSON");
        assert_eq!(body["v"], "a\"b\\c");
        assert!(body["q"].as_str().unwrap().contains("'a\"b\\c'"));
    }

    #[test]
    fn counts_are_read_and_every_bad_answer_is_no_data_or_invalid_never_a_value() {
        let check = counts_check();
        let read = |answer: serde_json::Value| reading_of_answer(&check, &answer);
        let good = serde_json::json!({
            "canary": {"requests": 1000, "errors": "12"},
            "baseline": {"requests": 9000.5, "errors": 90}
        });
        assert_eq!(
            read(good),
            Reading::Observed(CheckObservation::Counts {
                canary: RequestCounts {
                    requests: 1000.0,
                    errors: 12.0
                },
                baseline: BaselineData::Observed(RequestCounts {
                    requests: 9000.5,
                    errors: 90.0
                }),
            })
        );
        // The baseline missing: only its half is missing.
        let reading = read(serde_json::json!({"canary": {"requests": 10, "errors": 0}}));
        let Reading::Observed(CheckObservation::Counts { baseline, .. }) = reading else {
            panic!("{reading:?}")
        };
        assert!(
            matches!(baseline, BaselineData::Missing(ref why) if why.contains("$.baseline.requests"))
        );
        // The canary missing, or null: no data, naming the path.
        for answer in [
            serde_json::json!({}),
            serde_json::json!({"canary": {"requests": null, "errors": 0}}),
            serde_json::json!({"canary": {"requests": 5}}),
        ] {
            let reading = read(answer.clone());
            assert!(
                matches!(&reading, Reading::NoData { reason } if reason.contains("$.canary.")),
                "{answer}: {reading:?}"
            );
        }
        // Unusable values: invalid, saying why.
        for (answer, why) in [
            (
                serde_json::json!({"canary": {"requests": "many", "errors": 0}}),
                "not a number",
            ),
            (
                serde_json::json!({"canary": {"requests": [1, 2], "errors": 0}}),
                "not a number",
            ),
            (
                serde_json::json!({"canary": {"requests": 5, "errors": 6}, "baseline": {"requests": 1, "errors": 0}}),
                "more errors",
            ),
            (
                serde_json::json!({"canary": {"requests": -5, "errors": 0}}),
                "negative",
            ),
            (
                serde_json::json!({"canary": {"requests": "NaN", "errors": 0}}),
                "not a finite number",
            ),
            (
                serde_json::json!({"canary": {"requests": 5, "errors": 0}, "baseline": {"requests": 5, "errors": 9}}),
                "more errors",
            ),
        ] {
            let reading = read(answer.clone());
            assert!(
                matches!(&reading, Reading::Invalid { reason } if reason.contains(why)),
                "{answer}: {reading:?}"
            );
        }
        // A path selecting several values is invalid, never the first of them.
        let several = JsonCheck {
            query: None,
            measure: JsonMeasure::Value {
                path: JsonPathText::parse("$.v[*]").unwrap(),
            },
            cloudwatch: None,
        };
        let reading = reading_of_answer(&several, &serde_json::json!({"v": [1, 2]}));
        assert!(
            matches!(&reading, Reading::Invalid { reason } if reason.contains("selects 2 values")),
            "{reading:?}"
        );
    }

    #[test]
    fn a_percentile_is_read_in_seconds_and_filters_pick_a_version() {
        let check = JsonCheck {
            query: None,
            measure: JsonMeasure::Percentile {
                canary: JsonPathText::parse("$.results[?@.facet == 'canary'].p95").unwrap(),
                quantile: 0.95,
                unit_seconds: 0.001,
            },
            cloudwatch: None,
        };
        let answer = serde_json::json!({"results": [
            {"facet": "stable", "p95": 120},
            {"facet": "canary", "p95": 250}
        ]});
        assert_eq!(
            reading_of_answer(&check, &answer),
            Reading::Observed(CheckObservation::Value { value: 0.25 })
        );
    }

    fn source(url: &str) -> GenericSource {
        GenericSource::from_policy(&policy(url))
            .unwrap()
            .with_backoff(Duration::from_millis(10))
    }

    #[tokio::test]
    async fn a_5xx_is_retried_a_401_is_not_and_both_end_as_provider_errors() {
        let answer = r#"{"canary": {"requests": 100, "errors": 1}, "baseline": {"requests": 900, "errors": 9}}"#;
        let server = FakeServer::answering(vec![
            http("503 Service Unavailable", "text/plain", "busy"),
            http("200 OK", "application/json", answer),
        ]);
        let tick = source(&server.url())
            .read_tick(at(1_800_000_000), at(1_800_000_030))
            .await
            .expect("the retry got the answer");
        assert!(matches!(
            tick.readings["errors"],
            Reading::Observed(CheckObservation::Counts { .. })
        ));
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert!(path_of(&requests[1]).starts_with("/query?q=SELECT"));
        assert_eq!(
            header_of(&requests[1], "x-api-key"),
            Some("generic-test-key-12345")
        );

        let refused = FakeServer::answering(vec![http(
            "401 Unauthorized",
            "text/plain",
            "bad key generic-test-key-12345",
        )]);
        let err = source(&refused.url())
            .read_tick(at(1_800_000_000), at(1_800_000_030))
            .await
            .unwrap_err();
        assert_eq!(refused.requests().len(), 1, "a 401 is not retried");
        let shown = err.to_string();
        assert!(shown.contains("HTTP 401: authentication failed"), "{shown}");
        assert!(!shown.contains("generic-test-key-12345"), "{shown}");
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::Infrastructure);

        let down = FakeServer::answering(vec![http(
            "500 Internal Server Error",
            "text/plain",
            "oops",
        )]);
        let err = source(&down.url())
            .read_tick(at(1_800_000_000), at(1_800_000_030))
            .await
            .unwrap_err();
        assert_eq!(down.requests().len(), 3, "the first attempt and 2 retries");
        assert!(
            err.to_string().contains("HTTP 500 after 3 attempts"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn cloudwatch_throttling_is_retried_and_another_400_is_not() {
        let text = "service: checkout
traffic: {label: TargetGroup, canary: tg-c, baseline: tg-s}
metrics:
  cloudwatch: {region: eu-west-1, endpoint: 'URL', retries: 2, lag: 0s}
checks:
  - name: errors
    cloudwatch: {namespace: AWS/ApplicationELB, requests: RequestCount, errors: HTTPCode_Target_5XX_Count}
    slo: {max: 1%}
";
        let env = Environment::of([
            ("AWS_ACCESS_KEY_ID", "AKIDTHROTTLED"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "a-secret-access-key-of-forty-characters!",
            ),
        ]);
        let throttled = http(
            "400 Bad Request",
            "application/x-amz-json-1.0",
            r#"{"__type":"Throttling","message":"Rate exceeded"}"#,
        );
        let answer = r#"{"MetricDataResults": [
            {"Id": "canary_requests", "StatusCode": "Complete", "Timestamps": [1], "Values": [100]},
            {"Id": "canary_errors", "StatusCode": "Complete", "Timestamps": [], "Values": []},
            {"Id": "baseline_requests", "StatusCode": "Complete", "Timestamps": [1], "Values": [900]},
            {"Id": "baseline_errors", "StatusCode": "Complete", "Timestamps": [], "Values": []}
        ]}"#;
        let server = FakeServer::answering(vec![
            throttled,
            http("200 OK", "application/x-amz-json-1.0", answer),
        ]);
        let policy = Policy::from_yaml(&text.replace("URL", &server.url()), "cw.yaml").unwrap();
        let source = GenericSource::from_policy_in(&policy, env.clone())
            .unwrap()
            .with_backoff(Duration::from_millis(10));
        let tick = source
            .read_tick(at(1_800_000_000), at(1_800_000_060))
            .await
            .expect("the retry got the answer");
        assert_eq!(
            server.requests().len(),
            2,
            "the throttled request was retried"
        );
        assert!(matches!(
            tick.readings["errors"],
            Reading::Observed(CheckObservation::Counts { .. })
        ));
        assert!(
            header_of(&server.requests()[1], "authorization")
                .is_some_and(|a| a.contains("/eu-west-1/monitoring/aws4_request")),
            "signed for monitoring"
        );

        let refused = FakeServer::answering(vec![http(
            "400 Bad Request",
            "application/x-amz-json-1.0",
            r#"{"__type":"InvalidParameterValueException","message":"bad"}"#,
        )]);
        let policy = Policy::from_yaml(&text.replace("URL", &refused.url()), "cw.yaml").unwrap();
        let err = GenericSource::from_policy_in(&policy, env)
            .unwrap()
            .with_backoff(Duration::from_millis(10))
            .read_tick(at(1_800_000_000), at(1_800_000_060))
            .await
            .unwrap_err();
        assert_eq!(refused.requests().len(), 1, "{err}");
        assert!(
            err.to_string().contains("InvalidParameterValueException"),
            "{err}"
        );
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::Infrastructure);

        // No credentials anywhere: refused when the source is made, naming the field.
        let err = GenericSource::from_policy_in(&policy, Environment::of([])).unwrap_err();
        assert!(
            err.to_string()
                .contains("no AWS credentials for metrics.cloudwatch"),
            "{err}"
        );
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::BadInput);
    }

    #[tokio::test]
    async fn html_or_a_huge_answer_is_never_judged() {
        let html = FakeServer::answering(vec![http("200 OK", "text/html", "<html>login</html>")]);
        let err = source(&html.url())
            .read_tick(at(1_800_000_000), at(1_800_000_030))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
    }

    #[tokio::test]
    async fn an_unknown_datadog_metric_is_bad_input_and_a_metadata_5xx_is_infrastructure() {
        let key = std::env::temp_dir().join(format!("canary-dd-preflight-{}", std::process::id()));
        std::fs::write(&key, "dd-preflight-key-0001").unwrap();
        let text = format!(
            "service: checkout
traffic: {{label: version, canary: canary, baseline: stable}}
metrics:
  datadog: {{url: 'URL', api-key: {{file: '{k}'}}, application-key: {{file: '{k}'}}, retries: 1, lag: 0s}}
checks:
  - name: errors
    datadog:
      requests: 'sum:hits{{service:a,env:b}} by {{version}}.as_count()'
      errors: 'sum:erors{{service:a}} by {{version}}.as_count()'
    slo: {{max: 1%}}
",
            k = key.display()
        );
        let source = |server: &FakeServer| {
            let policy = Policy::from_yaml(&text.replace("URL", &server.url()), "dd.yaml").unwrap();
            GenericSource::from_policy(&policy)
                .unwrap()
                .with_backoff(Duration::from_millis(10))
        };
        let ok = http("200 OK", "application/json", r#"{"type": "count"}"#);
        let unknown = http(
            "404 Not Found",
            "application/json",
            r#"{"errors": ["Metric not found"]}"#,
        );
        let server = FakeServer::answering(vec![ok.clone(), unknown]);
        let err = source(&server).check_metrics_exist().await.unwrap_err();
        let requests = server.requests();
        let paths: Vec<&str> = requests.iter().map(|r| path_of(r)).collect();
        assert_eq!(paths, ["/api/v1/metrics/hits", "/api/v1/metrics/erors"]);
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::BadInput);
        let said = core.to_string();
        assert!(
            said.contains("check `errors`: datadog does not know the metric erors")
                && said.contains("HTTP 404 [\"Metric not found\"]"),
            "{said}"
        );
        // Datadog failing to answer is not a verdict on the policy: exit 4, after the retry.
        let failing = http(
            "503 Service Unavailable",
            "application/json",
            r#"{"errors": ["x"]}"#,
        );
        let server = FakeServer::answering(vec![failing.clone(), failing]);
        let core: canary_core::Error = source(&server)
            .check_metrics_exist()
            .await
            .unwrap_err()
            .into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::Infrastructure);
        assert_eq!(server.requests().len(), 2, "retried once");
    }
}
