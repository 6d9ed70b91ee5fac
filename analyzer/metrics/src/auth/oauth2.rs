//! OAuth2 client credentials (RFC 6749 §4.4): canary asks the token endpoint for an access
//! token with its client id and secret, sends it as `Authorization: Bearer`, and keeps it
//! until ten seconds before it expires (`expires_in`; the margin golang.org/x/oauth2 keeps, so
//! that a token does not expire on its way). A token without `expires_in` is kept until the
//! server refuses it: a 401 or 403 from Prometheus forgets the token, so the next tick asks
//! for a new one.
//!
//! The client authenticates with HTTP basic authentication, its id and secret each
//! form-urlencoded first (RFC 6749 §2.3.1, the method every server must support). The
//! secret is read from its file or variable at every exchange (it may rotate).

use std::time::Duration;

use canary_core::policy::OAuth2Spec;
use canary_core::retry::{Backoff, Failure, retry};
use canary_core::secret::{Secret, redacted};
use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::error::{Error, Result, excerpt};

/// A token is asked for again this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// The largest token answer read.
const MAX_TOKEN_ANSWER: u64 = 1024 * 1024;

/// A token endpoint and the token it last gave.
pub struct OAuth2Client {
    spec: OAuth2Spec,
    address: String,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

/// An access token as an `Authorization` header value, and until when it is used.
struct CachedToken {
    header: HeaderValue,
    /// `None`: until the server refuses it.
    use_until: Option<tokio::time::Instant>,
}

/// The token endpoint's answer (RFC 6749 §5.1), or its error (§5.2).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

impl OAuth2Client {
    /// A client of `spec`'s token endpoint.
    pub fn new(spec: OAuth2Spec) -> OAuth2Client {
        let address = crate::prometheus::strip_userinfo(&spec.token_url);
        OAuth2Client {
            spec,
            address,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Reads the client secret (to fail early when it cannot be read; learnt by the
    /// redactor).
    pub fn check_secret(&self) -> Result<()> {
        self.client_secret().map(|_| ())
    }

    fn client_secret(&self) -> Result<Secret> {
        self.spec
            .client_secret
            .read()
            .map_err(|e| Error::Secret(format!("metrics.prometheus.oauth2: {e}")))
    }

    /// Forgets the token (the server refused it): the next call asks for a new one.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    /// The `Authorization` header to send now: the kept token while it is fresh, else a new
    /// one from the token endpoint.
    pub async fn authorization(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        backoff: Backoff,
    ) -> Result<HeaderValue> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token
                .use_until
                .is_none_or(|until| tokio::time::Instant::now() < until)
        {
            return Ok(token.header.clone());
        }
        let token = self.fetch(http, timeout, backoff).await?;
        let header = token.header.clone();
        *cached = Some(token);
        Ok(header)
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        backoff: Backoff,
    ) -> Result<CachedToken> {
        let secret = self.client_secret()?;
        let encode =
            |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        // Learnt whole, as `basic` is for Prometheus' own basic auth.
        let client_id = encode(&self.spec.client_id);
        let password = Secret::new(encode(secret.expose()));
        let _learnt = password.basic_auth(&client_id);
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !self.spec.scopes.is_empty() {
                form.append_pair("scope", &self.spec.scopes.join(" "));
            }
            form.finish()
        };
        let asked_at = tokio::time::Instant::now();
        let (status, answer) = retry(backoff, tokio::time::sleep, |attempt| {
            let request = http
                .post(&self.spec.token_url)
                .timeout(timeout)
                .basic_auth(&client_id, Some(password.expose()))
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body.clone());
            let address = self.address.clone();
            async move {
                let transport = |e: reqwest::Error| {
                    Failure::Retryable(Error::Credentials {
                        what: "oauth2 token endpoint",
                        address: address.clone(),
                        message: format!(
                            "cannot get an OAuth2 token (attempt {attempt}): {}",
                            redacted(&e.without_url().to_string())
                        ),
                    })
                };
                let mut response = request.send().await.map_err(transport)?;
                let status = response.status().as_u16();
                let body = crate::prometheus::read_bounded(&mut response, MAX_TOKEN_ANSWER)
                    .await
                    .map_err(transport)?;
                let Some(body) = body else {
                    return Err(Failure::Final(Error::Credentials {
                        what: "oauth2 token endpoint",
                        address: address.clone(),
                        message: format!(
                            "the OAuth2 token endpoint answered HTTP {status} with more than 1 MiB"
                        ),
                    }));
                };
                if status >= 500 || status == 429 {
                    return Err(Failure::Retryable(Error::Credentials {
                        what: "oauth2 token endpoint",
                        address: address.clone(),
                        message: format!(
                            "the OAuth2 token endpoint answered HTTP {status} after {attempt} attempts: {}",
                            excerpt(&body, 200)
                        ),
                    }));
                }
                Ok((status, body))
            }
        })
        .await?;
        let refused = |message: String| Error::Credentials {
            what: "oauth2 token endpoint",
            address: self.address.clone(),
            message,
        };
        let parsed: Option<TokenAnswer> = serde_json::from_slice(&answer).ok();
        // Learnt before anything about the answer is said.
        let token = parsed
            .as_ref()
            .and_then(|a| a.access_token.as_deref())
            .map(Secret::new);
        if !(200..300).contains(&status) {
            let said = match &parsed {
                Some(TokenAnswer {
                    error: Some(error),
                    error_description,
                    ..
                }) => format!(
                    "{}{}",
                    redacted(error),
                    error_description
                        .as_deref()
                        .map(|d| format!(": {}", redacted(d)))
                        .unwrap_or_default()
                ),
                _ => excerpt(&answer, 200),
            };
            return Err(refused(format!(
                "the OAuth2 token endpoint refused client {:?}: HTTP {status} {said}; check \
                 oauth2.client-id, the client secret and the scopes (the secret is not shown)",
                self.spec.client_id
            )));
        }
        let (Some(parsed), Some(token)) = (parsed, token) else {
            return Err(refused(format!(
                "the OAuth2 token endpoint answered HTTP {status} without an access_token: {}",
                excerpt(&answer, 200)
            )));
        };
        if parsed
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(refused(format!(
                "the OAuth2 token endpoint gave a token of type {:?}; canary sends bearer tokens only",
                redacted(parsed.token_type.as_deref().unwrap_or_default())
            )));
        }
        if canary_core::secret::check_long_enough(token.expose(), "the OAuth2 access token")
            .is_err()
        {
            return Err(refused(
                "the OAuth2 token endpoint gave an access token shorter than 4 characters, too short to be kept out of outputs"
                    .to_owned(),
            ));
        }
        let expires_in = match &parsed.expires_in {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            // Some servers (older Azure AD) send it as a string.
            Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        let use_until = match (&parsed.expires_in, expires_in) {
            (None | Some(serde_json::Value::Null), _) => None,
            (_, Some(seconds)) if seconds.is_finite() && seconds >= 0.0 => Some(
                asked_at + Duration::from_secs_f64(seconds.min(1e9)).saturating_sub(EXPIRY_MARGIN),
            ),
            _ => {
                return Err(refused(
                    "the OAuth2 token endpoint's expires_in is not a number of seconds".to_owned(),
                ));
            }
        };
        let mut header =
            HeaderValue::from_str(token.header_value("Bearer").expose()).map_err(|_| {
                refused(
                    "the OAuth2 access token holds characters an HTTP header cannot carry"
                        .to_owned(),
                )
            })?;
        header.set_sensitive(true);
        Ok(CachedToken { header, use_until })
    }
}
