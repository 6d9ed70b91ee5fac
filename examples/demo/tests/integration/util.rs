//! Small helpers: an HTTP client, a `/metrics` parser, timeouts.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Port 0 on the loopback interface: every test server picks its own free port.
pub(crate) const ANY_LOOPBACK_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Long enough for a loaded CI machine, short enough that a hang is reported.
pub(crate) const GENEROUS: Duration = Duration::from_secs(60);

/// Runs `future`, failing the test if it takes longer than [`GENEROUS`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(GENEROUS, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {GENEROUS:?}"))
}

/// An HTTP answer, body read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A plain HTTP/1 client for the tests.
#[derive(Clone, Debug)]
pub(crate) struct TestClient {
    client: Client<HttpConnector, Body>,
}

impl TestClient {
    pub(crate) fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub(crate) async fn get(&self, url: &str) -> Reply {
        self.send(Method::GET, url, Body::empty()).await
    }

    pub(crate) async fn post(&self, url: &str, body: &str) -> Reply {
        self.send(Method::POST, url, Body::from(body.to_owned()))
            .await
    }

    pub(crate) async fn send(&self, method: Method, url: &str, body: Body) -> Reply {
        let request = Request::builder()
            .method(method.clone())
            .uri(url)
            .body(body)
            .expect("test request is well-formed");
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(Body::new(body), usize::MAX)
                .await
                .unwrap_or_else(|e| panic!("reading the body of {method} {url} failed: {e}"));
            Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }
        };
        within(&format!("{method} {url}"), exchange).await
    }

    /// Scrapes `url` and parses the page.
    pub(crate) async fn scrape(&self, url: &str) -> Scrape {
        let reply = self.get(url).await;
        assert_eq!(reply.status, 200, "scraping {url}: {reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        Scrape::parse(&reply.body)
    }
}

/// A parsed `/metrics` page: samples keyed by name and their labels, sorted.
#[derive(Debug)]
pub(crate) struct Scrape {
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the Prometheus text format, enough for the metrics the service exports
    /// (label values without escaped quotes or commas).
    pub(crate) fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line has a type");
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in `{line}`"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut labels: Vec<(String, String)> = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label is key=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            labels.sort();
            let previous = samples.insert((name.to_owned(), labels), value);
            assert!(previous.is_none(), "duplicate series `{series}`");
        }
        Self { samples, types }
    }

    /// The value of the series with exactly these labels; fails the test if absent.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        key.sort();
        *self
            .samples
            .get(&(name.to_owned(), key))
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in {self:#?}"))
    }

    /// `http_requests_total` of this version and code.
    pub(crate) fn requests(&self, version: &str, code: &str) -> f64 {
        self.value(
            "http_requests_total",
            &[("version", version), ("code", code)],
        )
    }

    /// A bucket of `http_request_duration_seconds` of this version (`le` as exported).
    pub(crate) fn duration_bucket(&self, version: &str, le: &str) -> f64 {
        self.value(
            "http_request_duration_seconds_bucket",
            &[("version", version), ("le", le)],
        )
    }

    pub(crate) fn duration_count(&self, version: &str) -> f64 {
        self.value(
            "http_request_duration_seconds_count",
            &[("version", version)],
        )
    }

    pub(crate) fn duration_sum(&self, version: &str) -> f64 {
        self.value("http_request_duration_seconds_sum", &[("version", version)])
    }

    pub(crate) fn type_of(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }

    /// Every `le` of the duration histogram of this version, sorted by value.
    pub(crate) fn duration_bucket_bounds(&self, version: &str) -> Vec<String> {
        let mut bounds: Vec<String> = self
            .samples
            .keys()
            .filter(|(name, labels)| {
                name == "http_request_duration_seconds_bucket"
                    && labels.contains(&("version".to_owned(), version.to_owned()))
            })
            .filter_map(|(_, labels)| {
                labels
                    .iter()
                    .find(|(key, _)| key == "le")
                    .map(|(_, le)| le.clone())
            })
            .collect();
        bounds.sort_by(|a, b| {
            let parse = |le: &str| le.parse::<f64>().unwrap_or(f64::INFINITY);
            parse(a).total_cmp(&parse(b))
        });
        bounds
    }
}

/// Sends `count` GETs to `url`, `concurrency` at a time, and gives the statuses.
pub(crate) async fn get_many(
    client: &TestClient,
    url: &str,
    count: usize,
    concurrency: usize,
) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(count);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..count {
        if pending.len() == concurrency {
            replies.push(
                pending
                    .join_next()
                    .await
                    .expect("a task")
                    .expect("request task"),
            );
        }
        let client = client.clone();
        let url = url.to_owned();
        pending.spawn(async move { client.get(&url).await });
    }
    while let Some(reply) = pending.join_next().await {
        replies.push(reply.expect("request task"));
    }
    replies
}

/// Polls `condition` until it holds, failing the test after [`GENEROUS`].
pub(crate) async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A loopback URL nothing listens on: port 1 (tcpmux) is privileged and unused.
/// Not a port bound and released here: tests run in parallel, and another test's
/// server could be given that port a moment later.
pub(crate) fn closed_port_url() -> String {
    "http://127.0.0.1:1".to_owned()
}
