//! [`PrometheusSource`]: the Prometheus HTTP API (and the systems that speak it: Thanos,
//! Mimir, Cortex, VictoriaMetrics) as a [`MetricsSource`].
//!
//! Queries are POSTed as forms (`/api/v1/query`, `/api/v1/query_range`) so that long
//! queries fit, with `partial_response=false` (Thanos then fails a query rather than answer
//! it from some stores only; Prometheus, Mimir, Cortex and VictoriaMetrics ignore the
//! parameter). Each request has a timeout; timeouts, connection errors, 429 and 5xx answers
//! are retried with exponential backoff, or after the server's `Retry-After` when that fits
//! in what is left of the call's bound (4xx never: the same request would fail the same
//! way), and one call with all its retries is bounded too. Redirects are never followed: a
//! redirect is an error naming its target. An answer is read as it streams in, and cut off
//! at the policy's `max-answer-size`; one with more than `max-series` series, or with
//! warnings (a partial answer) unless the policy says `accept-warnings`, is an invalid
//! reading (an `error` verdict for its check), never judged.
//!
//! Secrets are [`canary_core::secret::Secret`]s, read from their file or environment
//! variable on every tick (tokens rotate), sent as sensitive headers; everything an answer
//! says is redacted of every secret the process holds before it is kept in a message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use canary_core::observation::{BaselineData, CheckObservation, Reading, Tick};
use canary_core::policy::{
    CheckKind, CheckSpec, ClientCertSpec, DEFAULT_MAX_ANSWER_BYTES, DEFAULT_MAX_SERIES,
    HeaderValueSpec, MetricsSourceSpec, Policy, PrometheusAuth, PrometheusSpec, TrafficSelector,
    size_as_written,
};
use canary_core::ports::MetricsSource;
use canary_core::retry::{Backoff, Failure, retry};
use canary_core::secret::{Secret, redacted};
use jiff::Timestamp;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::answer::{self, AnswerError, ApiAnswer, QueryResult};
use crate::auth::Environment;
use crate::auth::aws::{AwsCredentialProvider, AwsCredentials};
use crate::auth::oauth2::OAuth2Client;
use crate::error::{Error, Result, excerpt};
use crate::queries::{self, QueryWindow};
use crate::window::{self, ErrorMatchers, RawSeries, TickRange};

/// How many bytes of a bad answer an error shows.
const EXCERPT_BYTES: usize = 200;
/// The first wait before a retry; doubled after each attempt, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// How a [`PrometheusSource`] reaches its server. (`Debug` shows header names, not values.)
#[derive(Clone)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus:9090` or `https://mimir/prometheus`.
    pub url: String,
    /// Authentication.
    pub auth: PrometheusAuth,
    /// Extra headers (a secret one read at every tick).
    pub headers: Vec<(String, HeaderValueSpec)>,
    /// A PEM bundle of extra certificate authorities.
    pub ca_file: Option<PathBuf>,
    /// TLS verification off (warned about).
    pub insecure_skip_tls_verify: bool,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries after a timeout, a connection error, a 429 or a 5xx answer.
    pub retries: u32,
    /// Largest answer read, in bytes.
    pub max_answer_bytes: u64,
    /// Most series one answer may hold.
    pub max_series: u32,
    /// Whether answers with warnings are judged (their warnings passed on).
    pub accept_warnings: bool,
    /// The first wait before a retry (doubled each time, at most 4 s).
    pub backoff: Duration,
    /// Bound on one call with all its retries; `None`: every attempt's timeout plus the
    /// waits between them, plus a second.
    pub call_timeout: Option<Duration>,
    /// A client certificate and key for mutual TLS.
    pub client_cert: Option<ClientCertSpec>,
    /// The HTTP(S) proxy every request goes through.
    pub proxy_url: Option<String>,
    /// Where AWS settings are read from (SigV4): the process's environment, except in tests.
    pub environment: Environment,
}

impl std::fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("PrometheusConfig")
            .field("url", &strip_userinfo(&self.url))
            .field("auth", &self.auth)
            .field("header_names", &header_names)
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("max_series", &self.max_series)
            .field("accept_warnings", &self.accept_warnings)
            .field("backoff", &self.backoff)
            .field("call_timeout", &self.call_timeout)
            .field("client_cert", &self.client_cert)
            .field("proxy_url", &self.proxy_url.as_deref().map(strip_userinfo))
            .finish()
    }
}

impl PrometheusConfig {
    /// The policy's settings, with `url` replacing the policy's URL when given. Errors when
    /// there is no URL at all.
    pub fn from_spec(spec: &PrometheusSpec, url: Option<&str>) -> Result<Self> {
        let url = url.map(str::to_owned).or_else(|| spec.url.clone()).ok_or_else(|| {
            Error::Config(
                "no Prometheus URL: give --prometheus URL or set metrics.prometheus.url in the policy"
                    .to_owned(),
            )
        })?;
        Ok(PrometheusConfig {
            url,
            auth: spec.auth.clone(),
            headers: spec.headers.clone(),
            ca_file: spec.ca_file.clone(),
            insecure_skip_tls_verify: spec.insecure_skip_tls_verify,
            timeout: spec.timeout,
            retries: spec.retries,
            max_answer_bytes: spec.max_answer_bytes,
            max_series: spec.max_series,
            accept_warnings: spec.accept_warnings,
            backoff: FIRST_BACKOFF,
            call_timeout: None,
            client_cert: spec.client_cert.clone(),
            proxy_url: spec.proxy_url.clone(),
            environment: Environment::process(),
        })
    }

    /// A plain configuration for `url`: no auth, 10 s timeout, 3 retries.
    pub fn new(url: impl Into<String>) -> Self {
        PrometheusConfig {
            url: url.into(),
            auth: PrometheusAuth::None,
            headers: Vec::new(),
            ca_file: None,
            insecure_skip_tls_verify: false,
            timeout: Duration::from_secs(10),
            retries: 3,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            max_series: DEFAULT_MAX_SERIES,
            accept_warnings: false,
            backoff: FIRST_BACKOFF,
            call_timeout: None,
            client_cert: None,
            proxy_url: None,
            environment: Environment::process(),
        }
    }

    /// The retries and the pauses between them.
    fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff, MAX_BACKOFF, self.retries)
    }

    fn call_bound(&self) -> Duration {
        self.call_timeout.unwrap_or_else(|| {
            let backoff = self.backoff();
            self.timeout.saturating_mul(backoff.attempts())
                + backoff.total_pause()
                + Duration::from_secs(1)
        })
    }
}

/// How one tick's requests authenticate, and the secret headers' values (each read as a
/// [`Secret`], so every one is redacted wherever it is echoed).
pub(crate) struct Credentials {
    authorization: Authorization,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The `Authorization` header of one tick's requests.
enum Authorization {
    /// No header.
    None,
    /// `Bearer <token>`, a sensitive header.
    Bearer(HeaderValue),
    /// Basic authentication (RFC 7617), encoded by reqwest as a sensitive header.
    Basic { username: String, password: Secret },
    /// AWS Signature Version 4 with these credentials, signed per attempt.
    SigV4(AwsCredentials),
}

/// A query the source sends, and the answer's outcome.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryOutcome {
    /// Prometheus answered.
    Answer {
        /// The result.
        result: QueryResult,
        /// Its warnings.
        warnings: Vec<String>,
    },
    /// Prometheus refused the query (400 or 422): the query is wrong, not the server.
    Refused {
        /// `errorType`, e.g. `bad_data`.
        error_type: String,
        /// Prometheus' message.
        message: String,
    },
    /// The answer was larger than the policy's `max-answer-size`: cut off unread.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The answer held more series than the policy's `max-series`: read no further.
    TooManySeries {
        /// The limit.
        limit: u32,
    },
}

/// The Prometheus HTTP API as a metrics source: one instant query per check per tick.
pub struct PrometheusSource {
    client: reqwest::Client,
    config: Arc<PrometheusConfig>,
    /// `…/api/v1/`, credentials removed.
    api: reqwest::Url,
    /// The base URL as shown in messages (credentials removed).
    address: String,
    /// Basic-auth user from the URL itself (`http://user:pass@host`), moved into a header.
    url_credentials: Option<(String, Secret)>,
    pub(crate) traffic: TrafficSelector,
    pub(crate) checks: Vec<CheckSpec>,
    pub(crate) interval: Duration,
    /// The token endpoint of `oauth2` auth, with its cached token.
    oauth2: Option<OAuth2Client>,
    /// The credentials of `sigv4` auth.
    aws: Option<AwsCredentialProvider>,
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("address", &self.address)
            .field("checks", &self.checks.len())
            .finish_non_exhaustive()
    }
}

impl PrometheusSource {
    /// The source of a policy whose metrics come from Prometheus; `url` overrides the
    /// policy's URL (the `--prometheus` flag).
    pub fn from_policy(policy: &Policy, url: Option<&str>) -> Result<Self> {
        let spec = match &policy.metrics {
            MetricsSourceSpec::Prometheus(spec) => spec,
            MetricsSourceSpec::Scrape(_) | MetricsSourceSpec::Json(_) => {
                return Err(Error::Config(
                    "the policy's metrics do not come from `prometheus`".to_owned(),
                ));
            }
        };
        let config = PrometheusConfig::from_spec(spec, url)?;
        Self::new(config, policy)
    }

    /// A source with this configuration for the policy's checks. Reads the secrets once to
    /// fail early (they are read again at every tick).
    pub fn new(config: PrometheusConfig, policy: &Policy) -> Result<Self> {
        crate::install_crypto_provider();
        let mut url = reqwest::Url::parse(config.url.trim()).map_err(|e| {
            Error::Config(format!(
                "the Prometheus URL {:?} is not a URL: {e}",
                strip_userinfo(&config.url)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "the Prometheus URL must be http or https, not {}",
                url.scheme()
            )));
        }
        let url_credentials = if url.username().is_empty() {
            None
        } else {
            let user = url.username().to_owned();
            let password = url.password().unwrap_or_default().to_owned();
            if !password.is_empty() {
                canary_core::secret::check_long_enough(&password, "the Prometheus URL's password")
                    .map_err(|e| Error::Secret(e.to_string()))?;
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
            Some((user, Secret::new(password)))
        };
        url.set_query(None);
        url.set_fragment(None);
        let address = url.as_str().trim_end_matches('/').to_owned();
        let api = reqwest::Url::parse(&format!("{address}/api/v1/"))
            .map_err(|e| Error::Config(format!("{address}: {e}")))?;

        // Sources with the same client settings share one client, so one connection pool:
        // `canary controller` builds a source per rollout, and a pool per rollout kept an
        // idle connection each, 528 at 1,000 rollouts, past Prometheus' default
        // `--web.max-connections` (512), where it stopped answering (docs/benchmarks.md,
        // "Controller scale"). A client certificate is never shared (its key may differ
        // behind the same path).
        let shared_key = config.client_cert.is_none().then(|| {
            let headers: Vec<(&str, &str)> = config
                .headers
                .iter()
                .filter_map(|(name, value)| match value {
                    HeaderValueSpec::Plain(value) => Some((name.as_str(), value.as_str())),
                    _ => None,
                })
                .collect();
            format!(
                "{headers:?} {:?} {:?} {:?} {}",
                config.timeout, config.proxy_url, config.ca_file, config.insecure_skip_tls_verify
            )
        });
        let cached = shared_key.as_ref().and_then(|key| {
            shared_clients()
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(key)
                .cloned()
        });
        let client = match cached {
            Some(client) => client,
            None => {
                let client = build_client(&config, &address)?;
                if let Some(key) = shared_key {
                    shared_clients()
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(key, client.clone());
                }
                client
            }
        };

        let source = PrometheusSource {
            client,
            api,
            address,
            url_credentials,
            traffic: policy.traffic.clone(),
            checks: policy.checks.clone(),
            interval: policy.rollout.interval,
            oauth2: match &config.auth {
                PrometheusAuth::OAuth2(spec) => Some(OAuth2Client::new(spec.clone())),
                _ => None,
            },
            aws: match &config.auth {
                PrometheusAuth::SigV4(spec) => Some(AwsCredentialProvider::new(
                    spec.clone(),
                    config.environment.clone(),
                )),
                _ => None,
            },
            config: Arc::new(config),
        };
        source.check_credentials()?;
        Ok(source)
    }

    /// What two sources must have in common for one query to stand for both
    /// ([`crate::shared`]): the server with the URL's own credentials, the authentication
    /// and every header (secret ones by where they are read from: one file or variable is
    /// one value in one process), TLS, proxy, timeouts, retries and answer limits. `None`
    /// for a source with a client certificate, never shared (its key may differ behind the
    /// same path), as its HTTP client is not. Kept in memory only, never shown.
    pub(crate) fn sharing_key(&self) -> Option<String> {
        let config = &self.config;
        if config.client_cert.is_some() {
            return None;
        }
        let url_credentials = self
            .url_credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.expose()));
        let parts = serde_json::json!([
            self.address,
            url_credentials,
            config.auth,
            config.headers,
            config.ca_file,
            config.insecure_skip_tls_verify,
            config.timeout.as_millis() as u64,
            config.retries,
            config.max_answer_bytes,
            config.max_series,
            config.backoff.as_millis() as u64,
            config.call_timeout.map(|t| t.as_millis() as u64),
            config.proxy_url,
        ]);
        Some(parts.to_string())
    }

    /// The base URL, credentials removed, as messages show it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The queries one tick at `at` of an analysis started at `since` sends, by check name,
    /// in policy order.
    pub fn queries(&self, since: Timestamp, at: Timestamp) -> Vec<(String, String)> {
        let window = QueryWindow::new(since, at, self.interval);
        self.checks
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    queries::check_query(c, &self.traffic, window),
                )
            })
            .collect()
    }

    /// Reads every secret the source will send, without sending anything: a missing file or
    /// variable is found when the source starts (exit 2), not at the first tick. SigV4
    /// credentials from the environment or the shared file are read here too; a web identity
    /// only needs its variables set (its exchange is a network call, made at the first tick).
    fn check_credentials(&self) -> Result<()> {
        self.static_credentials()?;
        if let Some(oauth2) = &self.oauth2 {
            oauth2.check_secret()?;
        }
        if let Some(aws) = &self.aws {
            aws.check_available()?;
        }
        Ok(())
    }

    /// One tick's credentials: the static ones, then a token of the OAuth2 endpoint (kept
    /// until it expires) or the AWS credentials to sign with.
    pub(crate) async fn credentials(&self) -> Result<Credentials> {
        let mut credentials = self.static_credentials()?;
        if let Some(oauth2) = &self.oauth2 {
            let header = oauth2
                .authorization(&self.client, self.config.timeout, self.config.backoff())
                .await?;
            credentials.authorization = Authorization::Bearer(header);
        }
        if let Some(aws) = &self.aws {
            let found = aws
                .credentials(&self.client, self.config.timeout, self.config.backoff())
                .await?;
            credentials.authorization = Authorization::SigV4(found);
        }
        Ok(credentials)
    }

    /// The credentials read from files and the environment: bearer, basic, secret headers.
    fn static_credentials(&self) -> Result<Credentials> {
        let authorization = match &self.config.auth {
            PrometheusAuth::None => match &self.url_credentials {
                Some((username, password)) => basic(username, password.clone()),
                None => Authorization::None,
            },
            PrometheusAuth::Bearer(source) => {
                let header = read_secret(source)?.header_value("Bearer");
                let mut value = HeaderValue::from_str(header.expose()).map_err(|_| {
                    Error::Secret(
                        "the credentials hold characters an HTTP header cannot carry".to_owned(),
                    )
                })?;
                value.set_sensitive(true);
                Authorization::Bearer(value)
            }
            PrometheusAuth::Basic { username, password } => basic(username, read_secret(password)?),
            // Filled in by `credentials`, which may ask the network.
            PrometheusAuth::OAuth2(_) | PrometheusAuth::SigV4(_) => Authorization::None,
        };
        let mut headers = Vec::new();
        for (name, value) in &self.config.headers {
            let HeaderValueSpec::Secret(source) = value else {
                continue;
            };
            let secret = read_secret(source)?;
            let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
                Error::Secret(format!(
                    "{} holds characters an HTTP header cannot carry",
                    source.describe()
                ))
            })?;
            value.set_sensitive(true);
            headers.push((header_name(name)?, value));
        }
        Ok(Credentials {
            authorization,
            headers,
        })
    }

    /// One instant query evaluated at `at`.
    pub async fn instant_query(&self, promql: &str, at: Timestamp) -> Result<QueryOutcome> {
        let credentials = self.credentials().await?;
        self.instant_with(&credentials, promql, at).await
    }

    pub(crate) async fn instant_with(
        &self,
        credentials: &Credentials,
        promql: &str,
        at: Timestamp,
    ) -> Result<QueryOutcome> {
        let form = [
            ("query", promql.to_owned()),
            ("time", unix_seconds(at)),
            ("partial_response", "false".to_owned()),
        ];
        self.call(credentials, "query", &form).await
    }

    /// One range query from `start` to `end` every `step`.
    pub async fn range_query(
        &self,
        promql: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<QueryOutcome> {
        let credentials = self.credentials().await?;
        let form = [
            ("query", promql.to_owned()),
            ("start", unix_seconds(start)),
            ("end", unix_seconds(end)),
            ("step", format!("{}", step.as_secs_f64())),
            ("partial_response", "false".to_owned()),
        ];
        self.call(&credentials, "query_range", &form).await
    }

    /// POSTs a form to `api/v1/{endpoint}` with retries, within the call's bound.
    async fn call(
        &self,
        credentials: &Credentials,
        endpoint: &str,
        form: &[(&str, String)],
    ) -> Result<QueryOutcome> {
        let bound = self.config.call_bound();
        let deadline = tokio::time::Instant::now() + bound;
        match tokio::time::timeout_at(
            deadline,
            self.attempts(credentials, endpoint, form, deadline),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::Deadline {
                address: self.address.clone(),
                bound,
            }),
        }
    }

    async fn attempts(
        &self,
        credentials: &Credentials,
        endpoint: &str,
        form: &[(&str, String)],
        deadline: tokio::time::Instant,
    ) -> Result<QueryOutcome> {
        let url = self
            .api
            .join(endpoint)
            .map_err(|e| Error::Config(format!("{}: {e}", self.address)))?;
        retry(self.config.backoff(), tokio::time::sleep, |number| {
            self.attempt(credentials, &url, form, number, deadline)
        })
        .await
    }

    /// Attempt `number` (from 1) of a call: an outcome, or an error and whether to retry it
    /// (a timeout, a connection error, a 429 or a 5xx; after the server's `Retry-After`
    /// when it names one).
    async fn attempt(
        &self,
        credentials: &Credentials,
        url: &reqwest::Url,
        form: &[(&str, String)],
        number: u32,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<QueryOutcome, Failure<Error>> {
        // The form encoded here rather than by reqwest: a SigV4 signature covers the exact
        // bytes sent.
        let body = form_body(form);
        let mut request = self
            .client
            .post(url.clone())
            .timeout(self.config.timeout)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(body.clone());
        request = match &credentials.authorization {
            Authorization::None => request,
            Authorization::Bearer(value) => request.header(header::AUTHORIZATION, value.clone()),
            Authorization::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            Authorization::SigV4(aws) => {
                let spec = self.aws.as_ref().map(|a| a.spec()).ok_or_else(|| {
                    Failure::Final(Error::Config(
                        "SigV4 credentials without a SigV4 policy".to_owned(),
                    ))
                })?;
                let signed = crate::auth::sigv4::sign_request(
                    aws,
                    spec,
                    crate::auth::sigv4::Unsigned {
                        method: "POST",
                        url: url.as_str(),
                        headers: &[("content-type", FORM_CONTENT_TYPE)],
                        body: body.as_bytes(),
                    },
                    std::time::SystemTime::now(),
                )
                .map_err(Failure::Final)?;
                for added in signed {
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
                    request = request.header(name, value);
                }
                request
            }
        };
        for (name, value) in &credentials.headers {
            request = request.header(name.clone(), value.clone());
        }
        let mut retry_after = None;
        let failure = match request.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("no content type")
                    .to_owned();
                if (300..400).contains(&status) {
                    return Err(Failure::Final(Error::Redirect {
                        address: self.address.clone(),
                        status,
                        location: response
                            .headers()
                            .get(header::LOCATION)
                            .map(|l| shown_location(&String::from_utf8_lossy(l.as_bytes())))
                            .unwrap_or_else(|| "nowhere (no Location header)".to_owned()),
                    }));
                }
                retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after_wait(v, Timestamp::now()));
                if (status == 401 || status == 403)
                    && let Some(oauth2) = &self.oauth2
                {
                    // Revoked or expired early: the next tick asks for a new token.
                    oauth2.forget().await;
                }
                match read_bounded(&mut response, self.config.max_answer_bytes).await {
                    Ok(Some(body)) if status >= 500 || status == 429 => Error::ServerError {
                        address: self.address.clone(),
                        status,
                        attempts: number,
                        body: excerpt(&body, EXCERPT_BYTES),
                    },
                    Ok(Some(body)) => {
                        return self
                            .interpret(status, &content_type, &body)
                            .map_err(Failure::Final);
                    }
                    Ok(None) if (200..300).contains(&status) => {
                        return Ok(QueryOutcome::TooLarge {
                            limit: self.config.max_answer_bytes,
                        });
                    }
                    Ok(None) => {
                        return Err(Failure::Final(Error::UnexpectedStatus {
                            address: self.address.clone(),
                            status,
                            body: format!(
                                "an answer larger than {}, cut off unread",
                                size_as_written(self.config.max_answer_bytes)
                            ),
                        }));
                    }
                    Err(e) => self.transport_error(e, number),
                }
            }
            Err(e) => self.transport_error(e, number),
        };
        tracing::debug!(address = %self.address, attempt = number, error = %failure, ?retry_after, "attempt failed");
        match retry_after {
            // The server's wait, when it leaves time for one more attempt within the call's
            // bound; otherwise giving up now beats a retry that cannot finish. (After the
            // last attempt there is no retry to give up on: its own error says more.)
            Some(wait) if number < self.config.backoff().attempts() => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if wait + self.config.timeout > left {
                    return Err(Failure::Final(Error::RetryAfterTooLong {
                        address: self.address.clone(),
                        wait,
                        left,
                        last: Box::new(failure),
                    }));
                }
                Err(Failure::RetryAfter(failure, wait))
            }
            _ => Err(Failure::Retryable(failure)),
        }
    }

    fn transport_error(&self, err: reqwest::Error, attempts: u32) -> Error {
        if err.is_timeout() {
            Error::Timeout {
                address: self.address.clone(),
                timeout: self.config.timeout,
                attempts,
            }
        } else {
            Error::Connect {
                address: self.address.clone(),
                attempts,
                source: Box::new(err.without_url()),
            }
        }
    }

    /// What one HTTP answer means: a result, a refused query, or an error naming this
    /// source's address; every text from the answer redacted of every secret the process
    /// holds. Public so that the fuzz targets (`tests/fuzz`) feed it hostile answers.
    pub fn interpret(&self, status: u16, content_type: &str, body: &[u8]) -> Result<QueryOutcome> {
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized {
                address: self.address.clone(),
                status,
                body: excerpt(body, EXCERPT_BYTES),
            });
        }
        match answer::parse_answer_bounded(body, self.config.max_series as usize) {
            Ok(ApiAnswer::Success { result, warnings }) if (200..300).contains(&status) => {
                Ok(QueryOutcome::Answer { result, warnings })
            }
            Err(AnswerError::TooManySeries { .. }) if (200..300).contains(&status) => {
                Ok(QueryOutcome::TooManySeries {
                    limit: self.config.max_series,
                })
            }
            Ok(ApiAnswer::Error {
                error_type,
                message,
            }) if status == 400 || status == 422 || error_type == "bad_data" => {
                Ok(QueryOutcome::Refused {
                    error_type: redacted(&error_type),
                    message: redacted(&message),
                })
            }
            Ok(ApiAnswer::Error {
                error_type,
                message,
            }) => Err(Error::Api {
                address: self.address.clone(),
                error_type: redacted(&error_type),
                message: redacted(&message),
            }),
            Ok(ApiAnswer::Success { .. }) => Err(Error::UnexpectedStatus {
                address: self.address.clone(),
                status,
                body: excerpt(body, EXCERPT_BYTES),
            }),
            Err(AnswerError::NotJson) if (200..300).contains(&status) => Err(Error::NotJson {
                address: self.address.clone(),
                status,
                content_type: content_type.to_owned(),
                first_bytes: excerpt(body, EXCERPT_BYTES),
            }),
            Err(AnswerError::NotJson | AnswerError::TooManySeries { .. }) => {
                Err(Error::UnexpectedStatus {
                    address: self.address.clone(),
                    status,
                    body: excerpt(body, EXCERPT_BYTES),
                })
            }
            Err(AnswerError::Malformed(message)) => Err(Error::Malformed {
                address: self.address.clone(),
                message: redacted(&message),
            }),
        }
    }

    /// Reads every check at `at`, cumulative since `since`: one query per check.
    pub async fn read_tick(&self, since: Timestamp, at: Timestamp) -> Result<Tick> {
        let credentials = self.credentials().await?;
        let window = QueryWindow::new(since, at, self.interval);
        let mut readings = BTreeMap::new();
        let mut warnings = Vec::new();
        for check in &self.checks {
            let reading = self
                .read_check(&credentials, check, window, at, &mut warnings)
                .await?;
            readings.insert(check.name.clone(), reading);
        }
        Ok(Tick {
            at,
            window_seconds: window.window_seconds as f64,
            readings,
            warnings,
        })
    }

    /// Reads one check at `at` with its instant query; its warnings go into `warnings`.
    pub(crate) async fn read_check(
        &self,
        credentials: &Credentials,
        check: &CheckSpec,
        window: QueryWindow,
        at: Timestamp,
        warnings: &mut Vec<String>,
    ) -> Result<Reading> {
        let promql = queries::check_query(check, &self.traffic, window);
        let outcome = self.instant_with(credentials, &promql, at).await?;
        let reading = match self.accepted(check, &promql, outcome, warnings) {
            Ok(result) => {
                let reading = reading_of(check, &self.traffic, &result);
                self.with_values_that_exist(reading, check, credentials, window, at)
                    .await
            }
            Err(reading) => reading,
        };
        Ok(reading)
    }

    /// The result of an answer to `promql`, or the reading it makes when it cannot be judged:
    /// warnings not accepted (a partial answer), a refused query, too many series, too big.
    /// Accepted warnings go into `warnings`, named after the check.
    fn accepted(
        &self,
        check: &CheckSpec,
        promql: &str,
        outcome: QueryOutcome,
        warnings: &mut Vec<String>,
    ) -> std::result::Result<QueryResult, Reading> {
        match outcome {
            QueryOutcome::Answer {
                result,
                warnings: w,
            } => {
                let w: Vec<String> = w.iter().map(|w| redacted(w)).collect();
                warnings.extend(w.iter().map(|w| format!("{}: {w}", check.name)));
                if !w.is_empty() && !self.config.accept_warnings {
                    Err(Reading::Invalid {
                        reason: format!(
                            "the answer came with warnings, so it may be partial, and a partial \
                             answer is never judged (set metrics.prometheus.accept-warnings: true \
                             to judge such answers): {}; the query was: {promql}",
                            w.join("; ")
                        ),
                    })
                } else {
                    Ok(result)
                }
            }
            QueryOutcome::Refused {
                error_type,
                message,
            } => Err(Reading::Invalid {
                reason: format!(
                    "Prometheus refused the query ({error_type}): {message}; the query was: {promql}"
                ),
            }),
            QueryOutcome::TooManySeries { limit } => Err(Reading::Invalid {
                reason: format!(
                    "the answer holds more than the {limit} series allowed \
                     (metrics.prometheus.max-series), read no further; the query was: {promql}"
                ),
            }),
            QueryOutcome::TooLarge { limit } => Err(Reading::Invalid {
                reason: format!(
                    "the answer is larger than {} (metrics.prometheus.max-answer-size), cut \
                     off unread; the query was: {promql}",
                    size_as_written(limit)
                ),
            }),
        }
    }

    /// Reads the ticks at `times` (in order, all in the past) of an analysis that started
    /// at `since`, giving exactly the ticks [`read_tick`](Self::read_tick) gives, with one
    /// query per error-rate or latency check for the whole window — its raw samples, from
    /// which each tick's `increase()` is computed as Prometheus computes it (see
    /// [`crate::window`]) — instead of one per tick. `samples` and `query` checks, whose
    /// PromQL is the policy's own, are still read with one instant query per tick.
    ///
    /// A raw answer over `max-answer-size` or `max-series`, or one the server refuses (its
    /// own limit on samples), is an error (exit 4) naming the check, the limit and the
    /// query, and what to do about it: the window's samples are not the aggregated values
    /// the limits were set for.
    pub async fn read_past(&self, since: Timestamp, times: &[Timestamp]) -> Result<Vec<Tick>> {
        let Some(&end) = times.last() else {
            return Ok(Vec::new());
        };
        let credentials = self.credentials().await?;
        let windows: Vec<QueryWindow> = times
            .iter()
            .map(|&at| QueryWindow::new(since, at, self.interval))
            .collect();
        let ranges: Vec<TickRange> = times
            .iter()
            .zip(&windows)
            .map(|(at, window)| TickRange {
                at_ms: at.as_millisecond(),
                window_seconds: window.window_seconds,
            })
            .collect();
        let mut ticks: Vec<Tick> = times
            .iter()
            .zip(&windows)
            .map(|(&at, window)| Tick {
                at,
                window_seconds: window.window_seconds as f64,
                readings: BTreeMap::new(),
                warnings: Vec::new(),
            })
            .collect();
        for check in &self.checks {
            let Some((promql, raw)) = self.read_raw(&credentials, check, end, &ranges).await?
            else {
                // The policy's own PromQL: one instant query per tick.
                for (tick, window) in ticks.iter_mut().zip(&windows) {
                    let reading = self
                        .read_check(&credentials, check, *window, tick.at, &mut tick.warnings)
                        .await?;
                    tick.readings.insert(check.name.clone(), reading);
                }
                continue;
            };
            let mut warnings = Vec::new();
            let raw: std::result::Result<Vec<RawSeries>, Reading> = match self.accepted(
                check,
                &promql,
                raw,
                &mut warnings,
            ) {
                Ok(QueryResult::Matrix(series)) => {
                    Ok(series.into_iter().map(RawSeries::from_range).collect())
                }
                Ok(other) => Err(Reading::Invalid {
                    reason: format!(
                        "the answer is a {}, not the matrix of samples asked for; the query was: {promql}",
                        other.type_name()
                    ),
                }),
                Err(reading) => Err(reading),
            };
            let error_matchers = match &check.kind {
                CheckKind::ErrorRate(e) => Some(ErrorMatchers::new(&e.error_matchers)?),
                _ => None,
            };
            for ((tick, range), window) in ticks.iter_mut().zip(&ranges).zip(&windows) {
                tick.warnings.extend(warnings.iter().cloned());
                let reading = match &raw {
                    Ok(series) => {
                        let vector = match &error_matchers {
                            Some(errors) => {
                                window::error_rate_at(series, &self.traffic, errors, *range)
                            }
                            None => window::latency_at(series, &self.traffic, *range),
                        };
                        let reading = reading_of(check, &self.traffic, &vector);
                        self.with_values_that_exist(reading, check, &credentials, *window, tick.at)
                            .await
                    }
                    Err(reading) => reading.clone(),
                };
                tick.readings.insert(check.name.clone(), reading);
            }
        }
        Ok(ticks)
    }
}

impl PrometheusSource {
    /// The raw samples an error-rate or latency check reads a past window from: one
    /// instant query of `METRIC{SEL}[Dms]` at the last tick, `D` reaching back to the
    /// earliest tick's window start. `None` for the checks that run the policy's own PromQL.
    /// An answer over `max-answer-size` or `max-series`, or refused (the server's own limit
    /// on samples), is an error (exit 4).
    async fn read_raw(
        &self,
        credentials: &Credentials,
        check: &CheckSpec,
        end: Timestamp,
        ranges: &[TickRange],
    ) -> Result<Option<(String, QueryOutcome)>> {
        let Some(metric) = queries::raw_samples_metric(check) else {
            return Ok(None);
        };
        let end_ms = end.as_millisecond();
        let from_ms = ranges.iter().map(|r| r.start_ms()).min().unwrap_or(end_ms);
        let promql = queries::raw_samples_query(&metric, &self.traffic, end_ms - from_ms);
        let outcome = self.instant_with(credentials, &promql, end).await?;
        let over = match &outcome {
            QueryOutcome::TooLarge { limit } => format!(
                "larger than {} (metrics.prometheus.max-answer-size), cut off unread",
                size_as_written(*limit)
            ),
            QueryOutcome::TooManySeries { limit } => format!(
                "more than the {limit} series allowed (metrics.prometheus.max-series), read no further"
            ),
            // Canary's own selector, escaped: refused, it is the server's limit on samples
            // (Prometheus' `query.max-samples`, Mimir's and Thanos' own), not the policy.
            QueryOutcome::Refused {
                error_type,
                message,
            } => format!("refused by the server ({error_type}: {message})"),
            QueryOutcome::Answer { .. } => return Ok(Some((promql, outcome))),
        };
        Err(Error::WindowTooLarge {
            address: self.address.clone(),
            check: check.name.clone(),
            over,
            query: promql,
        })
    }

    /// A reading that found no series for a version, told which values of the version label
    /// the check's metric does have under the policy's selector: one more query, on this
    /// path only. (A failing extra query adds nothing; the reading stands as it was.)
    pub(crate) async fn with_values_that_exist(
        &self,
        reading: Reading,
        check: &CheckSpec,
        credentials: &Credentials,
        window: QueryWindow,
        at: Timestamp,
    ) -> Reading {
        let metric = match &check.kind {
            CheckKind::ErrorRate(e) => e.requests_metric.clone(),
            CheckKind::Latency(l) => format!("{}_bucket", l.histogram),
            CheckKind::Samples(_) | CheckKind::Query(_) | CheckKind::Json(_) => return reading,
        };
        if !misses_a_version(&reading) {
            return reading;
        }
        let label = &self.traffic.label;
        let selected = if self.traffic.matchers.is_empty() {
            metric.clone()
        } else {
            format!("{metric}{}", queries::selector(&self.traffic.matchers))
        };
        let promql = format!(
            "group by ({label}) (last_over_time({selected}[{}s]))",
            window.window_seconds
        );
        let Ok(QueryOutcome::Answer {
            result: QueryResult::Vector(series),
            ..
        }) = self.instant_with(credentials, &promql, at).await
        else {
            return reading;
        };
        let mut values: Vec<String> = series
            .iter()
            .map(|s| s.labels.get(label).cloned().unwrap_or_default())
            .collect();
        values.sort();
        values.dedup();
        const SHOWN: usize = 10;
        let more = values.len().saturating_sub(SHOWN);
        let listed: Vec<String> = values
            .iter()
            .take(SHOWN)
            .map(|v| format!("{label}={:?}", redacted(v)))
            .collect();
        let existing = if values.is_empty() {
            format!(
                "; there is no {selected} series at all in the window: check the metric name and traffic.selector"
            )
        } else {
            format!(
                "; {selected} has series with {}{} (traffic.canary and traffic.baseline must be among them)",
                listed.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        };
        match reading {
            Reading::NoData { reason } => Reading::NoData {
                reason: format!("{reason}{existing}"),
            },
            Reading::Observed(CheckObservation::Counts {
                canary,
                baseline: BaselineData::Missing(reason),
            }) => Reading::Observed(CheckObservation::Counts {
                canary,
                baseline: BaselineData::Missing(format!("{reason}{existing}")),
            }),
            Reading::Observed(CheckObservation::Histogram {
                canary,
                baseline: BaselineData::Missing(reason),
            }) => Reading::Observed(CheckObservation::Histogram {
                canary,
                baseline: BaselineData::Missing(format!("{reason}{existing}")),
            }),
            other => other,
        }
    }
}

/// Whether a reading found no series for a version, so that
/// [`PrometheusSource::with_values_that_exist`] asks which values exist.
pub(crate) fn misses_a_version(reading: &Reading) -> bool {
    let missing_version =
        |reason: &str| reason.starts_with("no ") && reason.contains(" series for ");
    match reading {
        Reading::NoData { reason } => missing_version(reason),
        Reading::Observed(CheckObservation::Counts {
            baseline: BaselineData::Missing(reason),
            ..
        })
        | Reading::Observed(CheckObservation::Histogram {
            baseline: BaselineData::Missing(reason),
            ..
        }) => missing_version(reason),
        _ => false,
    }
}

/// What a check makes of a successful answer.
pub fn reading_of(check: &CheckSpec, traffic: &TrafficSelector, result: &QueryResult) -> Reading {
    match &check.kind {
        CheckKind::ErrorRate(e) => answer::error_rate_reading(result, traffic, &e.requests_metric),
        CheckKind::Latency(l) => answer::latency_reading(result, traffic, &l.histogram),
        CheckKind::Samples(_) => answer::samples_reading(result, traffic),
        CheckKind::Query(_) => answer::value_reading(result),
        // Refused by validation with a Prometheus source; said, never judged, if built.
        CheckKind::Json(_) => Reading::Invalid {
            reason: "a json check reads a generic provider's answer, not Prometheus'".to_owned(),
        },
    }
}

#[async_trait]
impl MetricsSource for PrometheusSource {
    async fn read(&self, since: Timestamp, at: Timestamp) -> canary_core::Result<Tick> {
        Ok(self.read_tick(since, at).await?)
    }

    async fn read_past(
        &self,
        since: Timestamp,
        times: &[Timestamp],
    ) -> canary_core::Result<Vec<Tick>> {
        Ok(PrometheusSource::read_past(self, since, times).await?)
    }

    fn describe(&self) -> String {
        format!("prometheus {}", self.address)
    }
}

/// How a policy's requests authenticate and travel, in words, for `canary policy explain`:
/// SigV4, OAuth2, a client certificate, a proxy (nothing for the plain ways: a token, basic
/// auth). `None` when there is nothing of these to say.
pub fn describe_transport(spec: &PrometheusSpec) -> Option<String> {
    let mut said = Vec::new();
    match &spec.auth {
        PrometheusAuth::SigV4(sigv4) => said.push(format!(
            "every request signed with AWS SigV4 for service {} in {} (credentials from \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else profile {} of the shared \
             credentials file, else the web identity of AWS_WEB_IDENTITY_TOKEN_FILE and \
             AWS_ROLE_ARN)",
            sigv4.service,
            sigv4.region,
            sigv4.profile.as_deref().unwrap_or("$AWS_PROFILE or default"),
        )),
        PrometheusAuth::OAuth2(oauth2) => said.push(format!(
            "a bearer token from the OAuth2 token endpoint {} (client {:?}{}), kept until it expires",
            strip_userinfo(&oauth2.token_url),
            oauth2.client_id,
            if oauth2.scopes.is_empty() {
                String::new()
            } else {
                format!(", scopes {}", oauth2.scopes.join(" "))
            }
        )),
        PrometheusAuth::None | PrometheusAuth::Bearer(_) | PrometheusAuth::Basic { .. } => {}
    }
    if let Some(cert) = &spec.client_cert {
        said.push(format!(
            "the client certificate {} (mutual TLS)",
            cert.cert_file.display()
        ));
    }
    if let Some(proxy) = &spec.proxy_url {
        said.push(format!("through the proxy {}", strip_userinfo(proxy)));
    }
    (!said.is_empty()).then(|| said.join("; "))
}

/// The content type of the queries' bodies.
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// A form as `application/x-www-form-urlencoded` text.
fn form_body(form: &[(&str, String)]) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form {
        body.append_pair(name, value);
    }
    body.finish()
}

/// The client certificate and key of mutual TLS, read from their PEM files. The key is a
/// secret: learnt by the redactor as it is read, and never shown.
fn client_identity(cert: &ClientCertSpec) -> Result<reqwest::Identity> {
    let certificate = std::fs::read(&cert.cert_file).map_err(|e| {
        Error::Config(format!(
            "cannot read the client certificate {}: {e}",
            cert.cert_file.display()
        ))
    })?;
    let key = std::fs::read_to_string(&cert.key_file).map_err(|e| {
        Error::Secret(format!(
            "cannot read the client key {}: {e}",
            cert.key_file.display()
        ))
    })?;
    let key = Secret::new(key.trim());
    let mut pem = certificate;
    pem.push(b'\n');
    pem.extend_from_slice(key.expose().as_bytes());
    pem.push(b'\n');
    reqwest::Identity::from_pem(&pem).map_err(|e| {
        Error::Config(format!(
            "the client certificate {} and key {} are not a PEM certificate and its private key: {}",
            cert.cert_file.display(),
            cert.key_file.display(),
            redacted(&e.to_string())
        ))
    })
}

/// `at` as unix seconds with milliseconds, as the API takes it.
fn unix_seconds(at: Timestamp) -> String {
    let millis = at.as_millisecond();
    format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000))
}

/// The URL with any `user:password@` removed, for messages and reports. A URL that does not
/// parse is cut at its authority's last `@` (never at one in the path or query).
pub fn strip_userinfo(url: &str) -> String {
    if let Ok(mut parsed) = reqwest::Url::parse(url.trim()) {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        return parsed.to_string();
    }
    let Some(scheme) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme + 3], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Basic authentication as `username` with `password`. reqwest encodes the header; the
/// redactor learns that encoded form whole here (besides the password's own base64 forms),
/// so an echo of the header is redacted entirely, not only the password's part of it.
fn basic(username: &str, password: Secret) -> Authorization {
    let _learnt = password.basic_auth(username);
    Authorization::Basic {
        username: username.to_owned(),
        password,
    }
}

/// A secret named by the policy, read (and so learnt by the process's redactor).
fn read_secret(source: &canary_core::policy::SecretSource) -> Result<Secret> {
    source.read().map_err(|e| Error::Secret(e.to_string()))
}

/// A configured header's name, checked.
fn header_name(name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        Error::Config(format!(
            "metrics.prometheus.headers: {name:?} is not a header name"
        ))
    })
}

/// A redirect's target as messages show it: no credentials, no query or fragment (a login
/// redirect may carry a token there), redacted, at most 200 characters.
fn shown_location(location: &str) -> String {
    let mut shown = strip_userinfo(location);
    if let Some(cut) = shown.find(['?', '#']) {
        shown.truncate(cut);
        shown.push_str("?…");
    }
    excerpt(shown.as_bytes(), EXCERPT_BYTES)
}

/// How long a `Retry-After` value asks to wait (RFC 9110 §10.2.3): delay-seconds or an
/// HTTP-date, from `now`; `None` for anything else. A date in the past is no wait.
pub fn retry_after_wait(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(
        date.duration_since(now)
            .try_into()
            .unwrap_or(Duration::ZERO),
    )
}

/// The body of `response`, read as it streams in; `None` as soon as it is larger than
/// `limit` bytes (what was read is dropped, the connection closed), so an answer of any size
/// costs at most `limit` bytes of memory.
pub(crate) async fn read_bounded(
    response: &mut reqwest::Response,
    limit: u64,
) -> std::result::Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Ok(None);
    }
    // Room for the whole answer reserved once (the length said, or the limit): a growing
    // Vec would hold its old and new buffers at once while it reallocates, and the
    // transport's chunks may pin buffers larger than themselves. Reserved pages the answer
    // does not fill are never touched, so cost no memory.
    let expected = response.content_length().unwrap_or(limit).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(usize::MAX));
    while let Some(chunk) = response.chunk().await? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The clients shared by sources with the same settings, by those settings.
fn shared_clients() -> &'static std::sync::Mutex<std::collections::HashMap<String, reqwest::Client>>
{
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, reqwest::Client>>,
    > = std::sync::OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// The HTTP client of a Prometheus source with `config`'s settings.
fn build_client(config: &PrometheusConfig, address: &str) -> Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    for (name, value) in &config.headers {
        let HeaderValueSpec::Plain(value) = value else {
            continue;
        };
        let name = header_name(name)?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            Error::Config(format!(
                "metrics.prometheus.headers.{name}: not a valid header value"
            ))
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(concat!("canary/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.timeout)
        // A redirect is an error naming its target, never followed: following one sends
        // the query (and, to the same host, the credentials) where the policy did not
        // say, and a 302/303 turns the POST into a bodiless GET.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(proxy) = &config.proxy_url {
        let proxy = reqwest::Proxy::all(proxy.as_str()).map_err(|e| {
            Error::Config(format!(
                "metrics.prometheus.proxy-url {:?} is not a proxy URL: {e}",
                strip_userinfo(proxy)
            ))
        })?;
        builder = builder.proxy(proxy);
    }
    if let Some(cert) = &config.client_cert {
        builder = builder.identity(client_identity(cert)?);
    }
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(format!("cannot read the CA bundle {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::Config(format!(
                "the CA bundle {} is not PEM certificates: {e}",
                path.display()
            ))
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    if config.insecure_skip_tls_verify {
        tracing::warn!(
            address = %address,
            "TLS certificate verification is OFF for Prometheus (insecure-skip-tls-verify): anyone on the path can forge its answers"
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))
}

#[cfg(test)]
mod tests {

    use tokio::net::TcpListener;

    use canary_tests::fake_http::{FakeServer, body_of, http};

    use super::*;
    use canary_core::observation::CheckObservation;

    #[test]
    fn times_are_unix_seconds_and_urls_lose_their_credentials() {
        let at: Timestamp = "2026-01-01T00:00:00.25Z".parse().unwrap();
        assert_eq!(unix_seconds(at), "1767225600.250");
        assert_eq!(strip_userinfo("https://u:p@h:1/x"), "https://h:1/x");
        assert_eq!(
            strip_userinfo("https://h:1/x?to=a@b"),
            "https://h:1/x?to=a@b"
        );
        assert_eq!(strip_userinfo("not a url://u:p@h/x@y"), "not a url://h/x@y");
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_and_bounds_the_call() {
        let mut config = PrometheusConfig::new("http://x");
        config.retries = 3;
        config.timeout = Duration::from_secs(1);
        assert_eq!(config.backoff().pause(1), Duration::from_millis(250));
        assert_eq!(config.backoff().pause(3), Duration::from_secs(1));
        assert_eq!(config.backoff().pause(11), MAX_BACKOFF);
        assert_eq!(
            config.call_bound(),
            Duration::from_millis(4000 + 250 + 500 + 1000 + 1000)
        );
    }

    fn policy(extra: &str) -> Policy {
        let yaml = format!(
            "service: s\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
             metrics:\n  prometheus:\n    timeout: 1s\n    retries: 2\n{extra}\
             rollout: {{min-requests: 0}}\n\
             checks:\n  - name: restarts\n    query: {{promql: 'sum(x)'}}\n    slo: {{max: 0}}\n"
        );
        Policy::from_yaml(&yaml, "test.yaml").unwrap()
    }

    /// A fake Prometheus answering each request with the next of `answers` (the last one
    /// repeats).
    fn fake_prometheus(answers: Vec<(u16, &'static str, String)>) -> FakeServer {
        FakeServer::answering(
            answers
                .into_iter()
                .map(|(status, content_type, body)| {
                    http(&format!("{status} X"), content_type, &body)
                })
                .collect(),
        )
    }

    const OK: &str = r#"{"status":"success","warnings":["w1"],"data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0"]}]}}"#;

    /// A version whose selector matches nothing is told which values of the version label
    /// exist for the check's metric under the policy's selector (one more query, only then).
    #[tokio::test]
    async fn a_version_with_no_series_is_told_the_label_values_that_exist() {
        let counts = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"version":"stable","canary_series":"requests"},"value":[1,"900"]}]}}"#;
        let existing = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"version":"stable"},"value":[1,"1"]},{"metric":{"version":"v2-canary"},"value":[1,"1"]}]}}"#;
        let server = fake_prometheus(vec![
            (200, "application/json", counts.to_owned()),
            (200, "application/json", existing.to_owned()),
        ]);
        let url = server.url();
        let policy = Policy::from_yaml(
            "service: s\ntraffic: {label: version, canary: canary, baseline: stable, selector: 'job=\"web\"'}\n\
             metrics:\n  prometheus:\n    timeout: 1s\n\
             checks:\n  - name: errors\n    error-rate: {requests: http_requests_total, errors: 'code=~\"5..\"'}\n    slo: {max: 1%}\n",
            "test.yaml",
        )
        .unwrap();
        let config = PrometheusConfig::from_spec(
            match &policy.metrics {
                MetricsSourceSpec::Prometheus(p) => p,
                MetricsSourceSpec::Scrape(_) | MetricsSourceSpec::Json(_) => unreachable!(),
            },
            Some(&url),
        )
        .unwrap();
        let source = PrometheusSource::new(config, &policy).unwrap();
        let tick = source
            .read_tick(now() - jiff::SignedDuration::from_secs(300), now())
            .await
            .unwrap();
        let Some(Reading::NoData { reason }) = tick.readings.get("errors") else {
            panic!("{tick:?}")
        };
        assert!(
            reason.starts_with("no http_requests_total series for version=\"canary\""),
            "{reason}"
        );
        assert!(
            reason.contains(
                "; http_requests_total{job=\"web\"} has series with version=\"stable\", version=\"v2-canary\""
            ),
            "{reason}"
        );
        assert_eq!(server.requests().len(), 2);
        let second = server.requests()[1].clone();
        assert!(
            second.contains("group+by+%28version%29") || second.contains("group by (version)"),
            "{second}"
        );
    }

    /// An error-rate policy (no `query` check), with `extra` under `metrics.prometheus`.
    fn window_source(url: &str, extra: &str) -> PrometheusSource {
        let policy = Policy::from_yaml(
            &format!(
                "service: s\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
                 metrics:\n  prometheus:\n    timeout: 1s\n    retries: 0\n{extra}\
                 rollout: {{interval: 30s}}\n\
                 checks:\n  - name: errors\n    error-rate: {{requests: http_requests_total, errors: 'code=~\"5..\"'}}\n    slo: {{max: 1%}}\n"
            ),
            "test.yaml",
        )
        .unwrap();
        PrometheusSource::from_policy(&policy, Some(url)).unwrap()
    }

    /// A raw answer: one series per (version, code), ten requests (one error on 500) per 15 s.
    fn raw_answer(start: i64, warnings: &str) -> String {
        let series: Vec<String> = [("canary", "200"), ("canary", "500"), ("stable", "200")]
            .iter()
            .map(|(version, code)| {
                let per_step = if *code == "500" { 1 } else { 10 };
                let values: Vec<String> = (0..=8)
                    .map(|k| format!("[{},\"{}\"]", start + 15 * k, per_step * k))
                    .collect();
                format!(
                    r#"{{"metric":{{"__name__":"http_requests_total","version":"{version}","code":"{code}"}},"values":[{}]}}"#,
                    values.join(",")
                )
            })
            .collect();
        format!(
            r#"{{"status":"success",{warnings}"data":{{"resultType":"matrix","result":[{}]}}}}"#,
            series.join(",")
        )
    }

    #[tokio::test]
    async fn a_past_window_is_one_raw_query_per_counter_check_and_its_limits_are_exit_4() {
        let start = Timestamp::from_second(1_800_000_000).unwrap();
        let times: Vec<Timestamp> = (1..=4)
            .map(|k| start + jiff::SignedDuration::from_secs(30 * k))
            .collect();

        let server = fake_prometheus(vec![(
            200,
            "application/json",
            raw_answer(1_800_000_000, ""),
        )]);
        let ticks = window_source(&server.url(), "")
            .read_past(start, &times)
            .await
            .unwrap();
        assert_eq!(server.requests().len(), 1, "one query for four ticks");
        let request = server.requests()[0].clone();
        let body = body_of(&request);
        assert!(body.contains("time=1800000120.000"), "{body}");
        assert!(
            body.contains(
                "query=http_requests_total%7Bversion%3D%7E%22canary%7Cstable%22%7D%5B120s%5D"
            ),
            "{body}"
        );
        assert_eq!(ticks.len(), 4);
        let Some(Reading::Observed(CheckObservation::Counts { canary, baseline })) =
            ticks[3].readings.get("errors")
        else {
            panic!("{ticks:?}")
        };
        assert_eq!((canary.requests, canary.errors), (88.0, 8.0));
        assert_eq!(baseline.observed().map(|b| b.requests), Some(80.0));
        assert_eq!(ticks[0].window_seconds, 30.0);

        // Warnings: invalid at every tick unless accepted, as on the per-tick path.
        let warned = raw_answer(1_800_000_000, r#""warnings":["partial response"],"#);
        let server = fake_prometheus(vec![(200, "application/json", warned.clone())]);
        let ticks = window_source(&server.url(), "")
            .read_past(start, &times)
            .await
            .unwrap();
        assert!(
            ticks.iter().all(|t| matches!(t.readings.get("errors"), Some(Reading::Invalid { reason }) if reason.contains("partial response"))),
            "{ticks:?}"
        );
        let server = fake_prometheus(vec![(200, "application/json", warned)]);
        let ticks = window_source(&server.url(), "    accept-warnings: true\n")
            .read_past(start, &times)
            .await
            .unwrap();
        assert!(matches!(
            ticks[3].readings.get("errors"),
            Some(Reading::Observed(_))
        ));
        assert_eq!(
            ticks[3].warnings,
            vec!["errors: partial response".to_owned()]
        );

        // Refused (Prometheus' query.max-samples: 422 execution): exit 4, saying what to do.
        let refused = r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}"#;
        let server = fake_prometheus(vec![(422, "application/json", refused.to_owned())]);
        let err = window_source(&server.url(), "")
            .read_past(start, &times)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(
                "refused by the server (execution: query processing would load too many samples"
            ),
            "{message}"
        );
        assert!(
            message.contains("--query-per-tick") && message.contains("[120s]"),
            "{message}"
        );

        // Over max-series or max-answer-size: exit 4, saying what to do.
        let server = fake_prometheus(vec![(
            200,
            "application/json",
            raw_answer(1_800_000_000, ""),
        )]);
        let err = window_source(&server.url(), "    max-series: 2\n")
            .read_past(start, &times)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::WindowTooLarge { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("check `errors`"), "{message}");
        assert!(
            message.contains("more than the 2 series allowed (metrics.prometheus.max-series)"),
            "{message}"
        );
        assert!(message.contains("--query-per-tick"), "{message}");
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::Infrastructure);
        let long = format!(r#""warnings":["{}"],"#, "x".repeat(2000));
        let server = fake_prometheus(vec![(
            200,
            "application/json",
            raw_answer(1_800_000_000, &long),
        )]);
        let err = window_source(&server.url(), "    max-answer-size: 1KiB\n")
            .read_past(start, &times)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("larger than 1 KiB (metrics.prometheus.max-answer-size)"),
            "{err}"
        );
    }

    fn source(url: &str, extra: &str) -> PrometheusSource {
        let policy = policy(extra);
        let mut config = PrometheusConfig::from_spec(
            match &policy.metrics {
                MetricsSourceSpec::Prometheus(p) => p,
                MetricsSourceSpec::Scrape(_) | MetricsSourceSpec::Json(_) => unreachable!(),
            },
            Some(url),
        )
        .unwrap();
        config.backoff = Duration::from_millis(10);
        PrometheusSource::new(config, &policy).unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::now()
    }

    #[tokio::test]
    async fn a_5xx_is_retried_then_succeeds_and_warnings_reach_the_tick() {
        let server = fake_prometheus(vec![
            (503, "text/plain", "busy".to_owned()),
            (200, "application/json", OK.to_owned()),
        ]);
        let url = server.url();
        let tick = source(&url, "    accept-warnings: true\n")
            .read_tick(now(), now())
            .await
            .unwrap();
        assert_eq!(server.requests().len(), 2);
        assert_eq!(tick.warnings, vec!["restarts: w1".to_owned()]);
        assert!(matches!(tick.readings["restarts"], Reading::Observed(_)));
        let request = server.requests()[1].clone();
        assert!(
            request.starts_with("POST /api/v1/query HTTP/1.1"),
            "{request}"
        );
        assert!(
            request.contains("application/x-www-form-urlencoded"),
            "{request}"
        );
        assert!(request.contains("query=sum%28x%29&time="), "{request}");
    }

    #[tokio::test]
    async fn persistent_5xx_is_an_error_after_every_retry() {
        let server = fake_prometheus(vec![(500, "text/plain", "boom".to_owned())]);
        let url = server.url();
        let err = source(&url, "").read_tick(now(), now()).await.unwrap_err();
        assert_eq!(server.requests().len(), 3, "1 attempt + 2 retries");
        assert_eq!(err.to_string(), "HTTP 500 after 3 attempts: \"boom\"");
        assert_eq!(err.address(), Some(url.as_str()));
    }

    #[tokio::test]
    async fn a_4xx_is_not_retried_and_a_bad_query_is_an_invalid_reading() {
        let refused =
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let server = fake_prometheus(vec![(400, "application/json", refused.to_owned())]);
        let url = server.url();
        let tick = source(&url, "").read_tick(now(), now()).await.unwrap();
        assert_eq!(server.requests().len(), 1);
        let Reading::Invalid { reason } = &tick.readings["restarts"] else {
            panic!("{tick:?}")
        };
        assert!(
            reason.contains("(bad_data): parse error at char 5; the query was: sum(x)"),
            "{reason}"
        );

        let server = fake_prometheus(vec![(404, "text/plain", "404 page not found".to_owned())]);
        let url = server.url();
        let err = source(&url, "").read_tick(now(), now()).await.unwrap_err();
        assert_eq!(server.requests().len(), 1);
        assert!(
            err.to_string()
                .starts_with("HTTP 404, not a Prometheus API answer"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn html_is_shown_briefly_and_the_token_never() {
        let html = format!(
            "<html><body>Please sign in. Your header was Bearer tok-{}</body></html>{}",
            "x".repeat(8),
            " ".repeat(500)
        );
        let server = fake_prometheus(vec![(200, "text/html", html)]);
        let url = server.url();
        let dir = std::env::temp_dir().join(format!("canary-metrics-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "tok-xxxxxxxx\n").unwrap();
        let source = source(
            &url,
            &format!("    bearer-token-file: {}\n", file.display()),
        );
        assert!(!format!("{source:?}").contains("tok-"));
        let err = source.read_tick(now(), now()).await.unwrap_err();
        let message = format!("{err} / {err:?}");
        assert!(
            message.contains("is not JSON (text/html); it begins: \"<html><body>Please sign in."),
            "{message}"
        );
        assert!(message.contains("[redacted]"), "{message}");
        assert!(!message.contains("tok-xxxxxxxx"), "{message}");
        assert!(
            server.requests()[0]
                .to_ascii_lowercase()
                .contains("authorization: bearer tok-xxxxxxxx")
        );
        let core: canary_core::Error = err.into();
        assert!(!format!("{core} {core:?}").contains("tok-xxxxxxxx"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn auth_failures_say_so_without_the_credentials() {
        let server = fake_prometheus(vec![(401, "text/plain", "no".to_owned())]);
        let url = server.url();
        let err = source(&url, "").read_tick(now(), now()).await.unwrap_err();
        assert_eq!(server.requests().len(), 1);
        assert!(
            err.to_string().contains("HTTP 401: authentication failed"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_port_that_never_answers_times_out_within_the_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held2 = Arc::clone(&held);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                held2.lock().unwrap().push(socket);
            }
        });
        let policy = policy("");
        let MetricsSourceSpec::Prometheus(spec) = &policy.metrics else {
            unreachable!()
        };
        let mut config = PrometheusConfig::from_spec(spec, Some(&url)).unwrap();
        config.timeout = Duration::from_millis(200);
        config.retries = 1;
        config.backoff = Duration::from_millis(10);
        let source = PrometheusSource::new(config, &policy).unwrap();
        let err = source.read_tick(now(), now()).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no answer within 200ms (2 attempts)"),
            "{err}"
        );
        assert_eq!(held.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn range_queries_post_their_range_and_read_a_matrix() {
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"version":"canary"},"values":[[1767225600,"1"],[1767225630,"NaN"]]}]}}"#;
        let server = fake_prometheus(vec![(200, "application/json", matrix.to_owned())]);
        let url = server.url();
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let end: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        let outcome = source(&url, "")
            .range_query("up", start, end, Duration::from_secs(30))
            .await
            .unwrap();
        let QueryOutcome::Answer {
            result: QueryResult::Matrix(series),
            ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(series[0].values[0], (1_767_225_600.0, 1.0));
        assert!(series[0].values[1].1.is_nan());
        let request = server.requests()[0].clone();
        assert!(
            request.starts_with("POST /api/v1/query_range HTTP/1.1"),
            "{request}"
        );
        assert!(
            request.ends_with(
                "query=up&start=1767225600.000&end=1767225630.000&step=30&partial_response=false"
            ),
            "{request}"
        );
    }

    #[tokio::test]
    async fn one_call_with_its_retries_is_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let policy = policy("");
        let MetricsSourceSpec::Prometheus(spec) = &policy.metrics else {
            unreachable!()
        };
        let mut config = PrometheusConfig::from_spec(spec, Some(&url)).unwrap();
        config.call_timeout = Some(Duration::from_millis(300));
        let source = PrometheusSource::new(config, &policy).unwrap();
        let started = std::time::Instant::now();
        let err = source.read_tick(now(), now()).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the 1s request timeout was cut short"
        );
        assert_eq!(
            err.to_string(),
            "no usable answer within 300ms, the bound on one call with its retries"
        );
    }

    #[test]
    fn the_configuration_debug_shows_no_header_values() {
        let mut config = PrometheusConfig::new("http://u:pw@h:9090");
        config.headers.push((
            "X-Api-Key".to_owned(),
            HeaderValueSpec::Plain("k3y-value".to_owned()),
        ));
        let shown = format!("{config:?}");
        assert!(
            shown.contains("X-Api-Key") && shown.contains("http://h:9090"),
            "{shown}"
        );
        assert!(
            !shown.contains("k3y-value") && !shown.contains("pw"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_address() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let err = source(&url, "").read_tick(now(), now()).await.unwrap_err();
        assert!(
            err.to_string().starts_with("cannot connect (3 attempts)"),
            "{err}"
        );
        let core: canary_core::Error = err.into();
        assert!(
            core.to_string()
                .starts_with(&format!("prometheus at {url}: cannot connect")),
            "{core}"
        );
    }

    #[test]
    fn missing_secrets_and_urls_are_configuration_errors() {
        let policy = policy("    bearer-token-env: CANARY_METRICS_TEST_UNSET_VARIABLE\n");
        let err = PrometheusSource::from_policy(&policy, Some("http://127.0.0.1:1")).unwrap_err();
        assert!(
            err.to_string()
                .contains("CANARY_METRICS_TEST_UNSET_VARIABLE"),
            "{err}"
        );
        let err = PrometheusSource::from_policy(&policy, None).unwrap_err();
        assert!(err.to_string().starts_with("no Prometheus URL"), "{err}");
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::BadInput);
    }

    #[tokio::test]
    async fn credentials_in_the_url_move_into_a_basic_auth_header() {
        let server = fake_prometheus(vec![(200, "application/json", OK.to_owned())]);
        let address = server.url().replace("http://", "http://user:pw-Zq81@") + "/prom/";
        let source = PrometheusSource::from_policy(&policy(""), Some(&address)).unwrap();
        assert_eq!(source.address(), format!("{}/prom", server.url()));
        assert!(!format!("{source:?}").contains("pw-Zq81"));
        source.read_tick(now(), now()).await.unwrap();
        let request = server.requests()[0].to_ascii_lowercase();
        // base64("user:pw-Zq81"), RFC 7617.
        assert!(
            request.contains("\r\nauthorization: basic dxnlcjpwdy1actgx\r\n"),
            "{request}"
        );
        assert!(!request.contains("pw-Zq81@"), "{request}");
    }

    /// Issue 13: a password in the URL too short to be redacted is refused, naming neither
    /// it nor the URL's userinfo.
    #[test]
    fn a_url_password_shorter_than_four_characters_is_refused() {
        let policy = policy("");
        let err = PrometheusSource::from_policy(&policy, Some("http://user:Zq9@127.0.0.1:9/"))
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the Prometheus URL's password holds a secret of 3 characters; canary needs at least 4"
            ),
            "{message}"
        );
        assert!(!message.contains("Zq9"), "{message}");
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::BadInput);
    }

    #[tokio::test]
    async fn an_answer_with_warnings_is_invalid_unless_they_are_accepted() {
        let server = fake_prometheus(vec![(200, "application/json", OK.to_owned())]);
        let url = server.url();
        let tick = source(&url, "").read_tick(now(), now()).await.unwrap();
        let Reading::Invalid { reason } = &tick.readings["restarts"] else {
            panic!("{tick:?}")
        };
        assert!(
            reason.contains("w1") && reason.contains("accept-warnings"),
            "{reason}"
        );
        let request = server.requests()[0].clone();
        assert!(request.contains("&partial_response=false"), "{request}");
    }

    /// What a recorded answer must become: a reading that reaches the judge, one refused as
    /// `invalid` (so the check's verdict is `error`, never a pass) naming a text, or an
    /// error of the source (exit 4) naming a text.
    enum Judged {
        Observed,
        Invalid(&'static str),
        Failed(&'static str),
    }

    /// Issue 13: Thanos', Mimir's, Cortex' and VictoriaMetrics' answers, as those systems give
    /// them (`fixtures/answers/README.md` says where each shape comes from), with and without
    /// `accept-warnings`.
    #[tokio::test]
    async fn recorded_answers_of_each_system_are_judged_right() {
        use Judged::{Failed, Invalid, Observed};
        macro_rules! answer {
            ($file:literal) => {
                include_str!(concat!("../fixtures/answers/", $file))
            };
        }
        let json = "application/json";
        let text = "text/plain; charset=utf-8";
        // (file, status, content type, body, judged by default, judged with accept-warnings)
        let cases: [(&str, u16, &'static str, &str, Judged, Judged); 10] = [
            (
                "thanos-partial-response",
                200,
                json,
                answer!("thanos-partial-response.json"),
                Invalid("partial response: fetch series"),
                Observed,
            ),
            (
                "victoriametrics-complete",
                200,
                json,
                answer!("victoriametrics-complete.json"),
                Observed,
                Observed,
            ),
            (
                "victoriametrics-partial",
                200,
                json,
                answer!("victoriametrics-partial.json"),
                Invalid("isPartial"),
                Observed,
            ),
            (
                "victoriametrics-422",
                422,
                json,
                answer!("victoriametrics-422.json"),
                Invalid("refused the query (422): error when executing query="),
                Invalid("cannot obtain data from 1 out of 2 vmstorage nodes"),
            ),
            (
                "mimir-422-max-series",
                422,
                json,
                answer!("mimir-422-max-series.json"),
                Invalid(
                    "(execution): expanding series: the query exceeded the maximum number of series (limit: 3 series) (err-mimir-max-series-per-query)",
                ),
                Invalid("err-mimir-max-series-per-query"),
            ),
            (
                "mimir-warning",
                200,
                json,
                answer!("mimir-warning.json"),
                Invalid("PromQL warning: encountered a mix of histograms and floats"),
                Observed,
            ),
            (
                "mimir-success-with-infos",
                200,
                json,
                answer!("mimir-success-with-infos.json"),
                Observed,
                Observed,
            ),
            (
                "mimir-401-no-org-id",
                401,
                text,
                answer!("mimir-401-no-org-id.txt"),
                Failed("HTTP 401: authentication failed, the server said \"no org id\\n\""),
                Failed("X-Scope-OrgID"),
            ),
            (
                "cortex-422-max-series",
                422,
                json,
                answer!("cortex-422-max-series.json"),
                Invalid("The query hit the max number of series limit while fetching chunks"),
                Invalid("(limit: 100000)"),
            ),
            (
                "cortex-429-too-many-outstanding-requests",
                429,
                text,
                answer!("cortex-429-too-many-outstanding-requests.txt"),
                Failed("HTTP 429 after 3 attempts: \"too many outstanding requests"),
                Failed("HTTP 429 after 3 attempts"),
            ),
        ];
        for (name, status, content_type, body, by_default, accepting) in cases {
            for (extra, expected) in [("", by_default), ("    accept-warnings: true\n", accepting)]
            {
                let server = fake_prometheus(vec![(status, content_type, body.to_owned())]);
                let outcome = source(&server.url(), extra).read_tick(now(), now()).await;
                let what = format!("{name} (accept-warnings: {})", !extra.is_empty());
                assert!(
                    server.requests()[0].contains("&partial_response=false"),
                    "{what}: partial responses are refused up front"
                );
                match (expected, outcome) {
                    (Observed, Ok(tick)) => {
                        assert_eq!(
                            tick.readings["restarts"],
                            Reading::Observed(CheckObservation::Value { value: 0.0 }),
                            "{what}"
                        );
                        let warned =
                            body.contains("\"warnings\"") || body.contains("\"isPartial\":true");
                        assert_eq!(
                            !tick.warnings.is_empty(),
                            warned,
                            "{what}: a judged answer's warnings are passed on: {:?}",
                            tick.warnings
                        );
                    }
                    (Invalid(text), Ok(tick)) => {
                        let Reading::Invalid { reason } = &tick.readings["restarts"] else {
                            panic!("{what}: {tick:?}")
                        };
                        assert!(reason.contains(text), "{what}: {reason}");
                        assert!(reason.contains("the query was: sum(x)"), "{what}: {reason}");
                    }
                    (Failed(text), Err(err)) => {
                        assert!(err.to_string().contains(text), "{what}: {err}");
                    }
                    (_, outcome) => panic!("{what}: {outcome:?}"),
                }
            }
        }
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(retry_after_wait("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_after_wait("Thu, 01 Jan 2026 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after_wait("Wed, 31 Dec 2025 23:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_wait("soon", now), None);
        assert_eq!(retry_after_wait("-5", now), None);
    }
}
