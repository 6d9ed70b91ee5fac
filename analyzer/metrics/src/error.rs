//! The one error type of `canary-metrics`, and how it becomes a `canary_core::Error` at the
//! port boundary.
//!
//! Every variant that concerns a remote component carries the address it was reached at,
//! with any credentials left out of it. None carries a secret: tokens and passwords are
//! never formatted into a message, and the bodies shown from bad answers have the token
//! replaced if a proxy happened to echo it.

use std::time::Duration;

use canary_core::error::BoxError;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading metrics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be made (refused, unreachable, DNS, TLS handshake), on every
    /// attempt.
    #[error("cannot connect ({attempts} attempts)")]
    Connect {
        /// Where, without credentials.
        address: String,
        /// How many attempts were made.
        attempts: u32,
        /// The transport's error (its URL removed; the address is above).
        #[source]
        source: BoxError,
    },

    /// A request got no complete answer within the per-request timeout, on every attempt
    /// (a port that accepts and never answers, an overloaded server).
    #[error("no answer within {timeout:?} ({attempts} attempts)")]
    Timeout {
        /// Where, without credentials.
        address: String,
        /// The per-request timeout.
        timeout: Duration,
        /// How many attempts were made.
        attempts: u32,
    },

    /// All attempts and the waits between them took longer than the bound on one call.
    #[error("no usable answer within {bound:?}, the bound on one call with its retries")]
    Deadline {
        /// Where, without credentials.
        address: String,
        /// The bound.
        bound: Duration,
    },

    /// The server answered with a 5xx status on every attempt.
    #[error("HTTP {status} after {attempts} attempts: {body}")]
    ServerError {
        /// Where, without credentials.
        address: String,
        /// The last status.
        status: u16,
        /// How many attempts were made.
        attempts: u32,
        /// The first bytes of the last answer.
        body: String,
    },

    /// The server refused the credentials (401) or their permissions (403). Not retried.
    /// The server's own words are shown: a Mimir or Cortex without `X-Scope-OrgID` answers
    /// 401 `no org id`, which is not a bad token.
    #[error(
        "HTTP {status}: authentication failed, the server said {body}; check the policy's bearer-token-file/-env, basic-auth, oauth2, the AWS credentials of sigv4 (and the role's aps:QueryMetrics permission), client certificate or headers (X-Scope-OrgID for a Mimir or Cortex tenant) (the credentials are not shown)"
    )]
    Unauthorized {
        /// Where, without credentials.
        address: String,
        /// 401 or 403.
        status: u16,
        /// The first bytes of the answer, redacted.
        body: String,
    },

    /// Another status that is not a Prometheus API answer, e.g. 404 for a wrong path prefix.
    #[error("HTTP {status}, not a Prometheus API answer (is the URL right?): {body}")]
    UnexpectedStatus {
        /// Where, without credentials.
        address: String,
        /// The status.
        status: u16,
        /// The first bytes of the answer.
        body: String,
    },

    /// The answer is not JSON: typically an HTML page from a proxy or a login wall.
    #[error("HTTP {status} answer is not JSON ({content_type}); it begins: {first_bytes}")]
    NotJson {
        /// Where, without credentials.
        address: String,
        /// The status.
        status: u16,
        /// The `Content-Type` the server gave.
        content_type: String,
        /// The first ~200 bytes, quoted.
        first_bytes: String,
    },

    /// JSON, but not in the shape of a Prometheus API answer.
    #[error("malformed answer: {message}")]
    Malformed {
        /// Where, without credentials.
        address: String,
        /// What was wrong.
        message: String,
    },

    /// Prometheus answered `status: error` for a reason other than the query itself
    /// (`timeout`, `canceled`, `internal`, `unavailable`).
    #[error("Prometheus error ({error_type}): {message}")]
    Api {
        /// Where, without credentials.
        address: String,
        /// Prometheus' `errorType`.
        error_type: String,
        /// Prometheus' `error`.
        message: String,
    },

    /// The server answered with a redirect, which canary never follows (it would send the
    /// query, and to the same host the credentials, where the policy does not say). The
    /// target is shown without credentials or query.
    #[error(
        "HTTP {status}: a redirect to {location}, not followed (canary follows no redirect: set the Prometheus URL to the address that answers)"
    )]
    Redirect {
        /// Where, without credentials.
        address: String,
        /// The 3xx status.
        status: u16,
        /// The `Location`, without credentials, query or fragment.
        location: String,
    },

    /// The server asked, with `Retry-After`, for a wait longer than what is left of the
    /// call's bound: canary gave up at once rather than retry too late.
    #[error(
        "the server asks to retry after {wait:?} (Retry-After), more than the {left:?} left of this call's bound; gave up: {last}"
    )]
    RetryAfterTooLong {
        /// Where, without credentials.
        address: String,
        /// The wait asked for.
        wait: Duration,
        /// What was left of the bound on the call.
        left: Duration,
        /// The answer that came with it.
        last: Box<Error>,
    },

    /// The raw samples of a check over a past window (`canary analyze` reads a window with
    /// one query per check) were over the answer's size or series limit, or the server
    /// refused to load that many samples. Those limits are set for aggregated answers; the
    /// message says what to change.
    #[error(
        "the samples of check `{check}` over the window are {over}: shorten the window, raise the limit, or read the window one aggregated query per tick with --query-per-tick; the query was: {query}"
    )]
    WindowTooLarge {
        /// Where, without credentials.
        address: String,
        /// The check's name.
        check: String,
        /// Which limit, in words.
        over: String,
        /// The query.
        query: String,
    },

    /// A `/metrics` endpoint could not be scraped or its page is not the text format.
    #[error("{message}")]
    Scrape {
        /// The endpoint's URL.
        address: String,
        /// What went wrong.
        message: String,
        /// The transport's error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// Credentials could not be obtained from where the policy says they come from: an
    /// OAuth2 token endpoint or AWS STS refused them or could not be reached. The message
    /// names the endpoint and what was refused, never a credential.
    #[error("{message}")]
    Credentials {
        /// What was asked: `oauth2 token endpoint`, `aws sts`.
        what: &'static str,
        /// The endpoint, without credentials.
        address: String,
        /// What happened, redacted.
        message: String,
    },

    /// A generic provider (`metrics.http`, `metrics.command`) gave no usable answer: a
    /// refused connection, a timeout, an error status after the retries, 401/403, an answer
    /// that is not JSON, a command that failed. The message is redacted.
    #[error("{message}")]
    Provider {
        /// `http provider` or `command provider`.
        provider: &'static str,
        /// The URL up to its first variable, or the program.
        address: String,
        /// What happened.
        message: String,
    },

    /// Pre-flight asked Datadog whether the requests metric has any series under the tags
    /// a check's errors query filters on (those the requests query filters on too), and it
    /// has none in the last day: a tag no request carries, so the errors query would read
    /// as no errors at every tick. Bad input, exit 2.
    #[error(
        "check `{check}`: the tags {{{scope}}} of its errors query match no series of {metric} (its requests metric) in Datadog over the last 24 hours (asked: {asked}); the errors query would read 0 errors at every tick, so nothing is judged with it (are the errors query's tags right? Its tags that the requests query filters on too are asked about)"
    )]
    UnmatchedScope {
        /// The check's name.
        check: String,
        /// The tags asked about, as written.
        scope: String,
        /// The requests metric.
        metric: String,
        /// The query pre-flight sent.
        asked: String,
    },

    /// Pre-flight asked the provider about a metric a check counts (Datadog's metric
    /// metadata, CloudWatch's `ListMetrics`) and it does not know it: a misspelt metric, or
    /// a wrong namespace or dimension. Its counts would read as no errors at every tick (the
    /// provider sends nothing for a count that stayed 0), so the policy is refused: bad
    /// input, exit 2.
    #[error(
        "check `{check}`: {provider} does not know the metric {metric}: {answer}; a metric it does not know would read as 0 errors at every tick, so nothing is judged with it (is the {what})"
    )]
    UnknownMetric {
        /// `datadog` or `cloudwatch`.
        provider: &'static str,
        /// The check's name.
        check: String,
        /// The metric as the provider was asked about it.
        metric: String,
        /// What the provider answered, in words, redacted.
        answer: String,
        /// What to look at in the policy, as a question ending `right?`, with what else
        /// may explain it and the policy's way out when there is one.
        what: &'static str,
    },

    /// A secret named by the policy could not be read. The message names the file or the
    /// environment variable, never the value.
    #[error("{0}")]
    Secret(String),

    /// The source cannot be set up from this policy: no URL, an unreadable CA bundle, a
    /// header that is not a valid HTTP header, a regex that does not compile.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The address the error concerns, if it concerns a remote component.
    pub fn address(&self) -> Option<&str> {
        match self {
            Error::Connect { address, .. }
            | Error::Timeout { address, .. }
            | Error::Deadline { address, .. }
            | Error::ServerError { address, .. }
            | Error::Unauthorized { address, .. }
            | Error::UnexpectedStatus { address, .. }
            | Error::NotJson { address, .. }
            | Error::Malformed { address, .. }
            | Error::Api { address, .. }
            | Error::Redirect { address, .. }
            | Error::RetryAfterTooLong { address, .. }
            | Error::Credentials { address, .. }
            | Error::WindowTooLarge { address, .. }
            | Error::Scrape { address, .. }
            | Error::Provider { address, .. } => Some(address),
            Error::Secret(_)
            | Error::Config(_)
            | Error::UnknownMetric { .. }
            | Error::UnmatchedScope { .. } => None,
        }
    }
}

impl From<Error> for canary_core::Error {
    /// Remote failures become [`canary_core::Error::Unavailable`] (exit code 4) with the
    /// address; a policy that cannot be used (secrets, configuration) is bad input (2).
    fn from(err: Error) -> Self {
        let component = match err {
            Error::Scrape { .. } => "scrape",
            Error::Credentials { what, .. } => what,
            Error::Provider { provider, .. } => provider,
            _ => "prometheus",
        };
        let Some(address) = err.address().map(str::to_owned) else {
            return canary_core::Error::Usage(err.to_string());
        };
        let message = err.to_string();
        let source = match err {
            Error::Connect { source, .. } => Some(source),
            Error::Scrape { source, .. } => source,
            _ => None,
        };
        canary_core::Error::Unavailable {
            component,
            address,
            message,
            source,
        }
    }
}

/// At most `limit` bytes of `body`, as text, quoted and with control characters escaped, so
/// that an HTML page shows as one readable line. Redacted of every secret the process holds
/// before it is cut (a proxy's error page may echo the request's headers back, and a cut
/// could split a secret).
pub(crate) fn excerpt(body: &[u8], limit: usize) -> String {
    let text = canary_core::secret::redacted(&String::from_utf8_lossy(body));
    let mut cut = text.len().min(limit);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = if cut < text.len() { "…" } else { "" };
    format!("{:?}{more}", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_errors_are_unavailable_with_the_address() {
        let err = Error::ServerError {
            address: "http://127.0.0.1:9090".to_owned(),
            status: 500,
            attempts: 3,
            body: "\"oops\"".to_owned(),
        };
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::Infrastructure);
        assert_eq!(
            core.to_string(),
            "prometheus at http://127.0.0.1:9090: HTTP 500 after 3 attempts: \"oops\""
        );
        let core: canary_core::Error = Error::Config("no URL".to_owned()).into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::BadInput);
    }

    #[test]
    fn excerpts_are_short_quoted_and_redacted() {
        let _ = canary_core::secret::Secret::new("s3cr3t");
        let body = "<html>\n<p>token s3cr3t</p></html>".repeat(20);
        let shown = excerpt(body.as_bytes(), 40);
        assert!(
            shown.starts_with("\"<html>\\n<p>token [redacted]"),
            "{shown}"
        );
        assert!(shown.ends_with('…'));
        assert!(!shown.contains("s3cr3t"));
        // Never cuts a character in half.
        let shown = excerpt("ééééé".as_bytes(), 3);
        assert_eq!(shown, "\"é\"…");
    }
}
