//! The demo HTTP service: one version ("stable" or "canary") with injectable faults.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use canary_metrics::exposition::PROMETHEUS_TEXT_CONTENT_TYPE;

use crate::metrics::ServiceMetrics;
use crate::server_task::ServerTask;
use crate::{Error, Result};

/// Response header carrying the version that served a request, so a client behind a
/// proxy (or a test) can tell which one answered without parsing the body.
pub const VERSION_HEADER: &str = "x-demo-version";

/// Spread of the log-normal latency (σ of its logarithm). With it p95 ≈ 2.3 × the
/// median and p99 ≈ 3.2 ×: the shape of a healthy service's latency, tail included.
const LATENCY_LOG_SIGMA: f64 = 0.5;

/// No drawn latency exceeds this multiple of the median, so one unlucky draw can't
/// stall a request for seconds and dominate a short demo.
const LATENCY_MAX_FACTOR: f64 = 20.0;

/// Upper bound on injected latency: beyond it a "fault" is an outage, and the value is
/// more likely a unit mistake (200 s for 200 ms).
const MAX_ADDED_LATENCY: Duration = Duration::from_secs(60);

/// How a demo service behaves: which version it is, its normal latency and its faults.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoServiceConfig {
    /// The version label on every metric and in every response, e.g. `stable` or
    /// `canary`: letters, digits, `.`, `_` and `-`.
    pub version: String,
    /// Probability in `0..=1` that a request is answered with a 500.
    pub error_rate: f64,
    /// Latency added to every request on top of the normal one.
    pub added_latency: Duration,
    /// Median of the normal (log-normal) latency; zero serves without waiting.
    pub base_latency: Duration,
    /// Seed of the random draws (latency, errors); `None` seeds from the process's
    /// randomness. With a seed the n-th request served draws the same values every run.
    pub seed: Option<u64>,
}

impl DemoServiceConfig {
    /// A healthy service of the given version: no errors, no added latency, a 20 ms
    /// median latency, unseeded.
    pub fn new(version: impl Into<String>) -> Self {
        Self {
            version: version.into(),
            error_rate: 0.0,
            added_latency: Duration::ZERO,
            base_latency: Duration::from_millis(20),
            seed: None,
        }
    }

    /// A healthy `stable` version.
    pub fn stable() -> Self {
        Self::new("stable")
    }

    /// A healthy `canary` version.
    pub fn canary() -> Self {
        Self::new("canary")
    }

    /// With this probability of answering 500.
    #[must_use]
    pub fn with_error_rate(mut self, error_rate: f64) -> Self {
        self.error_rate = error_rate;
        self
    }

    /// With this latency added to every request.
    #[must_use]
    pub fn with_added_latency(mut self, added_latency: Duration) -> Self {
        self.added_latency = added_latency;
        self
    }

    /// With this median for the normal latency.
    #[must_use]
    pub fn with_base_latency(mut self, base_latency: Duration) -> Self {
        self.base_latency = base_latency;
        self
    }

    /// With seeded, reproducible random draws.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The faults part of this configuration.
    pub fn faults(&self) -> Faults {
        Faults {
            error_rate: self.error_rate,
            added_latency: self.added_latency,
        }
    }

    fn validate(&self) -> Result<()> {
        let version_ok = !self.version.is_empty()
            && self.version.len() <= 64
            && self
                .version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !version_ok {
            return Err(Error::invalid(
                "version",
                format!(
                    "`{}` must be 1 to 64 letters, digits, `.`, `_` or `-`",
                    self.version
                ),
            ));
        }
        if self.base_latency > MAX_ADDED_LATENCY {
            return Err(Error::invalid(
                "base_latency",
                format!(
                    "{:?} is more than the {MAX_ADDED_LATENCY:?} allowed",
                    self.base_latency
                ),
            ));
        }
        self.faults().validate()
    }
}

/// The faults a running service injects; changeable at run time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Probability in `0..=1` that a request is answered with a 500.
    pub error_rate: f64,
    /// Latency added to every request on top of the normal one (at most 60 s).
    pub added_latency: Duration,
}

impl Faults {
    /// No faults: the service is healthy.
    pub const NONE: Self = Self {
        error_rate: 0.0,
        added_latency: Duration::ZERO,
    };

    fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(Error::invalid(
                "error_rate",
                format!("{} is not a probability between 0 and 1", self.error_rate),
            ));
        }
        if self.added_latency > MAX_ADDED_LATENCY {
            return Err(Error::invalid(
                "added_latency",
                format!(
                    "{:?} is more than the {MAX_ADDED_LATENCY:?} allowed",
                    self.added_latency
                ),
            ));
        }
        Ok(())
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self::NONE
    }
}

/// The JSON shape of `GET /fault` and the answer to `POST /fault`.
#[derive(Debug, Serialize)]
struct FaultsBody {
    error_rate: f64,
    added_latency_ms: u64,
}

impl From<Faults> for FaultsBody {
    fn from(faults: Faults) -> Self {
        Self {
            error_rate: faults.error_rate,
            added_latency_ms: u64::try_from(faults.added_latency.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The JSON body of `POST /fault`: a field left out keeps its current value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsUpdate {
    error_rate: Option<f64>,
    added_latency_ms: Option<u64>,
}

/// What one request will do, drawn before it waits.
struct RequestPlan {
    latency: Duration,
    fail: bool,
}

/// State shared by the handlers of one service.
#[derive(Debug)]
struct ServiceState {
    version: String,
    version_header: HeaderValue,
    base_latency: Duration,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    metrics: ServiceMetrics,
}

impl ServiceState {
    fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_faults(&self, faults: Faults) -> Result<()> {
        faults.validate()?;
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = faults;
        tracing::info!(version = %self.version, ?faults, "faults changed");
        Ok(())
    }

    /// Draws a request's latency and outcome. Every request consumes the same draws
    /// (one normal, one uniform) whatever the faults are, so with a seed the n-th
    /// request's values don't depend on faults set earlier or on which connection the
    /// request came in on: error counts over n requests are reproducible.
    fn plan_request(&self) -> RequestPlan {
        let faults = self.faults();
        let (z, u): (f64, f64) = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            (rng.sample(StandardNormal), rng.random())
        };
        let factor = (LATENCY_LOG_SIGMA * z).exp().min(LATENCY_MAX_FACTOR);
        RequestPlan {
            latency: self.base_latency.mul_f64(factor) + faults.added_latency,
            // `u` is in [0, 1): a rate of 0 never fails, a rate of 1 always does.
            fail: u < faults.error_rate,
        }
    }
}

/// The demo service. Start one with [`DemoService::spawn`].
#[derive(Debug)]
pub struct DemoService {
    _private: (),
}

impl DemoService {
    /// Validates `config`, binds `bind_addr` (port 0 picks a free one) and serves on a
    /// background task of the current Tokio runtime until the returned handle is shut
    /// down or dropped.
    ///
    /// Routes: `GET /` and `GET /api/{*path}` serve a request; `GET /metrics` (Prometheus
    /// text format), `GET /healthz`, and `GET`/`POST /fault` to read or change faults.
    pub async fn spawn(config: DemoServiceConfig, bind_addr: SocketAddr) -> Result<RunningService> {
        config.validate()?;
        let seed = config.seed.unwrap_or_else(random_seed);
        let state = Arc::new(ServiceState {
            version_header: HeaderValue::from_str(&config.version)
                .map_err(|e| Error::invalid("version", e.to_string()))?,
            base_latency: config.base_latency,
            faults: Mutex::new(config.faults()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            metrics: ServiceMetrics::new(&config.version),
            version: config.version,
        });

        let listener = TcpListener::bind(bind_addr)
            .await
            .map_err(|source| Error::Bind {
                addr: bind_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: bind_addr,
            source,
        })?;
        let server = ServerTask::spawn(listener, router(Arc::clone(&state)));
        tracing::debug!(version = %state.version, %local_addr, seed, "demo service listening");
        Ok(RunningService {
            local_addr,
            state,
            server,
        })
    }
}

/// A seed from the process's randomly keyed hasher: unpredictable enough for a demo,
/// and needs no OS-randomness feature of `rand`.
fn random_seed() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

fn router(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/", get(serve_request))
        .route("/api/{*path}", get(serve_request))
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/fault", get(get_faults).post(post_faults))
        .with_state(state)
}

async fn serve_request(State(state): State<Arc<ServiceState>>) -> Response {
    let started = Instant::now();
    let plan = state.plan_request();
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let (status, body) = if plan.fail {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: injected error\n", state.version),
        )
    } else {
        (StatusCode::OK, format!("served by {}\n", state.version))
    };
    // Measured, not planned: a sleep overshoots on a busy machine, and the histogram
    // should show what a client saw.
    state
        .metrics
        .record(status.as_u16(), started.elapsed().as_secs_f64());
    (
        status,
        [(
            HeaderName::from_static(VERSION_HEADER),
            state.version_header.clone(),
        )],
        body,
    )
        .into_response()
}

async fn metrics_page(State(state): State<Arc<ServiceState>>) -> Response {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn get_faults(State(state): State<Arc<ServiceState>>) -> Response {
    axum::Json(FaultsBody::from(state.faults())).into_response()
}

/// Parses the body itself rather than through `Json`, so `curl -d '{…}'` without a
/// content type works and every mistake is a 400 with a message saying what was wrong.
async fn post_faults(State(state): State<Arc<ServiceState>>, body: Bytes) -> Response {
    let update: FaultsUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid fault body: {e}; expected e.g. {{\"error_rate\": 0.05, \"added_latency_ms\": 200}}\n"
                ),
            )
                .into_response();
        }
    };
    let current = state.faults();
    let faults = Faults {
        error_rate: update.error_rate.unwrap_or(current.error_rate),
        added_latency: update
            .added_latency_ms
            .map_or(current.added_latency, Duration::from_millis),
    };
    match state.set_faults(faults) {
        Ok(()) => axum::Json(FaultsBody::from(faults)).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// A demo service serving in the background.
///
/// Dropping it stops the server too (gracefully, without waiting);
/// [`RunningService::shutdown`] stops it and waits until it has.
#[derive(Debug)]
pub struct RunningService {
    local_addr: SocketAddr,
    state: Arc<ServiceState>,
    server: ServerTask,
}

impl RunningService {
    /// The address the service is bound to (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`, the base URL to send requests to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// `http://ADDR/metrics`, the URL to scrape.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.local_addr)
    }

    /// The version this service reports.
    pub fn version(&self) -> &str {
        &self.state.version
    }

    /// The faults it injects now.
    pub fn faults(&self) -> Faults {
        self.state.faults()
    }

    /// Changes the faults from the next request on; out-of-range values are refused
    /// and leave the current ones in place.
    pub fn set_faults(&self, faults: Faults) -> Result<()> {
        self.state.set_faults(faults)
    }

    /// A cloneable handle that changes this service's faults, for code that must own
    /// its controls (a scenario task, say) while this handle stays where it was.
    pub fn fault_control(&self) -> FaultControl {
        FaultControl {
            state: Arc::clone(&self.state),
        }
    }

    /// The `/metrics` page as a scrape would return it, without going through HTTP.
    pub fn metrics_text(&self) -> String {
        self.state.metrics.encode()
    }

    /// Stops accepting requests, lets in-flight ones finish (up to 10 s) and waits for
    /// the server to end.
    pub async fn shutdown(self) -> Result<()> {
        self.server.shutdown().await
    }
}

/// Changes a running service's faults; cheap to clone. Outliving the service is
/// harmless: changes then have no effect.
#[derive(Clone, Debug)]
pub struct FaultControl {
    state: Arc<ServiceState>,
}

impl FaultControl {
    /// The version of the service this controls.
    pub fn version(&self) -> &str {
        &self.state.version
    }

    /// The faults it injects now.
    pub fn faults(&self) -> Faults {
        self.state.faults()
    }

    /// Changes the faults from the next request on; out-of-range values are refused.
    pub fn set_faults(&self, faults: Faults) -> Result<()> {
        self.state.set_faults(faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_configs_name_the_field() {
        let cases = [
            (DemoServiceConfig::new(""), "version"),
            (DemoServiceConfig::new("can ary"), "version"),
            (
                DemoServiceConfig::canary().with_error_rate(1.5),
                "error_rate",
            ),
            (
                DemoServiceConfig::canary().with_error_rate(f64::NAN),
                "error_rate",
            ),
            (
                DemoServiceConfig::canary().with_added_latency(Duration::from_secs(3600)),
                "added_latency",
            ),
        ];
        for (config, expected_field) in cases {
            match config.validate() {
                Err(Error::InvalidConfig { field, .. }) => {
                    assert_eq!(field, expected_field, "{config:?}");
                }
                other => panic!("{config:?} gave {other:?}"),
            }
        }
        assert!(DemoServiceConfig::stable().validate().is_ok());
    }

    #[test]
    fn fault_body_updates_only_the_fields_given() {
        let update: FaultsUpdate = serde_json::from_str(r#"{"error_rate": 0.05}"#).unwrap();
        assert_eq!(update.error_rate, Some(0.05));
        assert_eq!(update.added_latency_ms, None);
        assert!(serde_json::from_str::<FaultsUpdate>(r#"{"latency": 5}"#).is_err());
    }
}
