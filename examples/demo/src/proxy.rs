//! A weighted reverse proxy: the traffic router of `canary demo`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use crate::http_client::{HttpClient, HttpOrigin, pooled_client};
use crate::server_task::ServerTask;
use crate::{Error, Result};

/// Response header the proxy adds naming the upstream that answered (`stable` or
/// `canary`), so the split can be checked from the client side.
const UPSTREAM_HEADER: &str = "x-canary-upstream";

/// Headers that describe one connection, not the message, and so are not forwarded
/// (RFC 9110 §7.6.1). `Host` is left out too: the client sets the upstream's.
const HOP_BY_HOP_HEADERS: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Where the proxy sends traffic and how it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Base URL of the stable version, e.g. `http://127.0.0.1:8081`.
    pub stable_url: String,
    /// Base URL of the canary version.
    pub canary_url: String,
    /// Percentage of requests sent to the canary at start, `0..=100`.
    pub canary_weight: u8,
    /// How long to wait for an upstream's response headers before answering 504.
    pub upstream_timeout: Duration,
}

impl ProxyConfig {
    /// Everything to stable (weight 0) at first, with a 30 s upstream timeout.
    pub fn new(stable_url: impl Into<String>, canary_url: impl Into<String>) -> Self {
        Self {
            stable_url: stable_url.into(),
            canary_url: canary_url.into(),
            canary_weight: 0,
            upstream_timeout: Duration::from_secs(30),
        }
    }

    /// With this initial canary weight.
    #[must_use]
    pub fn with_canary_weight(mut self, canary_weight: u8) -> Self {
        self.canary_weight = canary_weight;
        self
    }

    /// With this upstream timeout.
    #[must_use]
    pub fn with_upstream_timeout(mut self, upstream_timeout: Duration) -> Self {
        self.upstream_timeout = upstream_timeout;
        self
    }
}

/// How many requests the proxy has sent each way since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutedCounts {
    /// Requests routed to the stable version.
    pub stable: u64,
    /// Requests routed to the canary version.
    pub canary: u64,
    /// Of those, requests whose upstream failed or timed out (answered 502 or 504).
    pub upstream_failures: u64,
}

/// Decides, request by request, which version gets it.
///
/// Deterministic rather than random: in every run of 100 consecutive requests exactly
/// `weight` go to the canary, spread evenly (like Bresenham's line), so even a short
/// demo step sees the share it asked for and tests can count exactly.
#[derive(Debug)]
struct WeightedSplit {
    canary_weight: AtomicU8,
    picks: AtomicU64,
    canary_picks: AtomicU64,
    upstream_failures: AtomicU64,
}

impl WeightedSplit {
    fn new(canary_weight: u8) -> Self {
        Self {
            canary_weight: AtomicU8::new(canary_weight),
            picks: AtomicU64::new(0),
            canary_picks: AtomicU64::new(0),
            upstream_failures: AtomicU64::new(0),
        }
    }

    fn weight(&self) -> u8 {
        self.canary_weight.load(Ordering::Relaxed)
    }

    fn set_weight(&self, canary_weight: u8) -> Result<()> {
        validate_weight(canary_weight)?;
        self.canary_weight.store(canary_weight, Ordering::Relaxed);
        Ok(())
    }

    /// Picks the canary when the running total `⌊k·w/100⌋` steps up at this request.
    fn next_is_canary(&self) -> bool {
        let weight = u64::from(self.weight());
        let k = self.picks.fetch_add(1, Ordering::Relaxed) % 100;
        let to_canary = (k + 1) * weight / 100 > k * weight / 100;
        if to_canary {
            self.canary_picks.fetch_add(1, Ordering::Relaxed);
        }
        to_canary
    }

    fn counts(&self) -> RoutedCounts {
        let picks = self.picks.load(Ordering::Relaxed);
        let canary = self.canary_picks.load(Ordering::Relaxed).min(picks);
        RoutedCounts {
            stable: picks - canary,
            canary,
            upstream_failures: self.upstream_failures.load(Ordering::Relaxed),
        }
    }
}

fn validate_weight(canary_weight: u8) -> Result<()> {
    if canary_weight > 100 {
        return Err(Error::invalid(
            "canary_weight",
            format!("{canary_weight} is not a percentage (0 to 100)"),
        ));
    }
    Ok(())
}

#[derive(Debug)]
struct ProxyState {
    stable: HttpOrigin,
    canary: HttpOrigin,
    upstream_timeout: Duration,
    split: Arc<WeightedSplit>,
    client: HttpClient,
}

/// The weighted proxy. Start one with [`WeightedProxy::spawn`].
#[derive(Debug)]
pub struct WeightedProxy {
    _private: (),
}

impl WeightedProxy {
    /// Validates `config`, binds `bind_addr` (port 0 picks a free one) and forwards
    /// every request it receives, whatever its method or path, to the stable or the
    /// canary upstream by the current weight, until the handle is shut down or dropped.
    ///
    /// Upstream status, headers and body come back as they are; an upstream that
    /// cannot be reached gives 502, one that does not answer in time 504.
    pub async fn spawn(config: ProxyConfig, bind_addr: SocketAddr) -> Result<RunningProxy> {
        validate_weight(config.canary_weight)?;
        let stable = HttpOrigin::parse("stable_url", &config.stable_url)?;
        let canary = HttpOrigin::parse("canary_url", &config.canary_url)?;
        if config.upstream_timeout.is_zero() {
            return Err(Error::invalid("upstream_timeout", "must be more than zero"));
        }
        let split = Arc::new(WeightedSplit::new(config.canary_weight));
        let state = Arc::new(ProxyState {
            stable,
            canary,
            upstream_timeout: config.upstream_timeout,
            split: Arc::clone(&split),
            client: pooled_client(),
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
        let router = Router::new().fallback(forward).with_state(state);
        let server = ServerTask::spawn(listener, router);
        tracing::debug!(%local_addr, "weighted proxy listening");
        Ok(RunningProxy {
            local_addr,
            split,
            server,
        })
    }
}

async fn forward(State(proxy): State<Arc<ProxyState>>, request: Request) -> Response {
    let (upstream, upstream_name) = if proxy.split.next_is_canary() {
        (&proxy.canary, "canary")
    } else {
        (&proxy.stable, "stable")
    };

    let (mut parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    parts.uri = match upstream.with_path_and_query(path_and_query) {
        Ok(uri) => uri,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("bad request target: {e}\n"),
            )
                .into_response();
        }
    };
    remove_hop_by_hop_headers(&mut parts.headers);
    parts.headers.remove(header::HOST);
    let outgoing = axum::http::Request::from_parts(parts, body);

    let failure =
        match tokio::time::timeout(proxy.upstream_timeout, proxy.client.request(outgoing)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop_headers(&mut parts.headers);
                parts.headers.insert(
                    HeaderName::from_static(UPSTREAM_HEADER),
                    HeaderValue::from_static(upstream_name),
                );
                return Response::from_parts(parts, Body::new(body));
            }
            Ok(Err(e)) => (
                StatusCode::BAD_GATEWAY,
                format!("{upstream_name} upstream {upstream} failed: {e}"),
            ),
            Err(_elapsed) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "{upstream_name} upstream {upstream} did not answer within {:?}",
                    proxy.upstream_timeout
                ),
            ),
        };
    proxy
        .split
        .upstream_failures
        .fetch_add(1, Ordering::Relaxed);
    tracing::warn!(upstream = upstream_name, "{}", failure.1);
    let (status, message) = failure;
    (
        status,
        [(
            HeaderName::from_static(UPSTREAM_HEADER),
            HeaderValue::from_static(upstream_name),
        )],
        message + "\n",
    )
        .into_response()
}

fn remove_hop_by_hop_headers(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named_in_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in HOP_BY_HOP_HEADERS.iter().chain(&named_in_connection) {
        headers.remove(name);
    }
}

/// A weighted proxy running in the background.
///
/// Dropping it stops the proxy too (gracefully, without waiting);
/// [`RunningProxy::shutdown`] stops it and waits until it has.
#[derive(Debug)]
pub struct RunningProxy {
    local_addr: SocketAddr,
    split: Arc<WeightedSplit>,
    server: ServerTask,
}

impl RunningProxy {
    /// The address the proxy is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`, the base URL clients (the load generator) send requests to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Sets the percentage of requests sent to the canary from the next request on.
    /// Values above 100 are refused and leave the weight as it was.
    pub fn set_canary_weight(&self, canary_weight: u8) -> Result<()> {
        self.split.set_weight(canary_weight)
    }

    /// The percentage of requests sent to the canary now.
    pub fn canary_weight(&self) -> u8 {
        self.split.weight()
    }

    /// How many requests went each way so far.
    pub fn routed_counts(&self) -> RoutedCounts {
        self.split.counts()
    }

    /// A cloneable handle on the weight, for a traffic router that must own it while
    /// this handle keeps the proxy alive.
    pub fn weight_control(&self) -> CanaryWeightControl {
        CanaryWeightControl {
            split: Arc::clone(&self.split),
        }
    }

    /// Stops accepting requests, lets in-flight ones finish (up to 10 s) and waits for
    /// the proxy to end.
    pub async fn shutdown(self) -> Result<()> {
        self.server.shutdown().await
    }
}

/// Reads and changes a running proxy's canary weight; cheap to clone. Outliving the
/// proxy is harmless: changes then have no effect.
#[derive(Clone, Debug)]
pub struct CanaryWeightControl {
    split: Arc<WeightedSplit>,
}

impl CanaryWeightControl {
    /// Sets the percentage of requests sent to the canary; above 100 is refused.
    pub fn set_canary_weight(&self, canary_weight: u8) -> Result<()> {
        self.split.set_weight(canary_weight)
    }

    /// The percentage of requests sent to the canary now.
    pub fn canary_weight(&self) -> u8 {
        self.split.weight()
    }

    /// How many requests went each way so far.
    pub fn routed_counts(&self) -> RoutedCounts {
        self.split.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary_picks(split: &WeightedSplit, requests: usize) -> usize {
        (0..requests).filter(|_| split.next_is_canary()).count()
    }

    #[test]
    fn every_hundred_requests_carry_exactly_the_weight() {
        for weight in [0, 1, 10, 25, 30, 50, 99, 100] {
            let split = WeightedSplit::new(weight);
            for _ in 0..3 {
                assert_eq!(
                    canary_picks(&split, 100),
                    usize::from(weight),
                    "weight {weight}"
                );
            }
        }
    }

    #[test]
    fn picks_are_spread_not_bunched() {
        let split = WeightedSplit::new(50);
        let picks: Vec<bool> = (0..10).map(|_| split.next_is_canary()).collect();
        assert_eq!(
            picks,
            [
                false, true, false, true, false, true, false, true, false, true
            ]
        );
        let split = WeightedSplit::new(10);
        // One canary request in every ten, not ten in a row.
        for _ in 0..10 {
            assert_eq!(canary_picks(&split, 10), 1);
        }
    }

    #[test]
    fn weights_above_100_are_refused_and_change_nothing() {
        let split = WeightedSplit::new(25);
        assert!(split.set_weight(101).is_err());
        assert_eq!(split.weight(), 25);
        split.set_weight(100).unwrap();
        assert_eq!(split.weight(), 100);
    }

    #[test]
    fn counts_add_up() {
        let split = WeightedSplit::new(30);
        canary_picks(&split, 200);
        assert_eq!(
            split.counts(),
            RoutedCounts {
                stable: 140,
                canary: 60,
                upstream_failures: 0
            }
        );
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        remove_hop_by_hop_headers(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }
}
