//! The pooled HTTP/1 client the proxy and the load generator share the shape of.

use std::time::Duration;

use axum::body::Body;
use axum::http::Uri;
use axum::http::uri::{Authority, Scheme};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::{Error, Result};

/// Plain-HTTP client with a connection pool: every target here is a loopback service,
/// so there is no TLS to pay for.
pub(crate) type HttpClient = Client<HttpConnector, Body>;

/// Builds a client whose idle connections are kept for a while and then closed, so a
/// long demo does not accumulate sockets to upstreams that went away.
pub(crate) fn pooled_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    // Small request/response pairs: Nagle's delay would show up as fake latency.
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// The scheme and authority of an `http://host:port` base URL, checked once so that
/// forwarding a request only has to add the path.
#[derive(Clone, Debug)]
pub(crate) struct HttpOrigin {
    scheme: Scheme,
    authority: Authority,
}

impl HttpOrigin {
    /// Parses `http://host:port` (a trailing `/` is allowed; any other path is not,
    /// since requests keep their own path).
    pub(crate) fn parse(field: &'static str, url: &str) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::invalid(field, format!("`{url}` is not a URL: {e}")))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(Error::invalid(
                field,
                format!("`{url}` must start with http:// (no TLS between demo parts)"),
            ));
        }
        let Some(authority) = uri.authority().cloned() else {
            return Err(Error::invalid(field, format!("`{url}` has no host")));
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(Error::invalid(
                field,
                format!("`{url}` must be a base URL without a path"),
            ));
        }
        Ok(Self {
            scheme: Scheme::HTTP,
            authority,
        })
    }

    /// This origin with the given path and query, e.g. `/api/orders?id=1`.
    pub(crate) fn with_path_and_query(
        &self,
        path_and_query: &str,
    ) -> Result<Uri, axum::http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

impl std::fmt::Display for HttpOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}
