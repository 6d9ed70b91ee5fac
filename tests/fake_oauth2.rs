//! A fake OAuth2 authorization server (client credentials grant, RFC 6749 §4.4) that issues
//! tokens which expire, and the check a resource server makes of them: a fake Prometheus
//! behind it accepts a bearer token only while it is one this server issued and has not
//! expired, as a real one checks a token's `exp`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fake_aws::form_pairs;
use crate::fake_http::{FakeServer, body_of, header_of, http};

/// The tokens issued so far, and until when each is good.
#[derive(Default)]
struct Issued {
    tokens: Vec<(String, Instant)>,
}

/// A running fake token endpoint.
pub struct FakeOAuth2 {
    /// The token endpoint's server (`url()/token`).
    pub server: FakeServer,
    issued: Arc<Mutex<Issued>>,
}

impl FakeOAuth2 {
    /// A token endpoint for one client: `client_id` with `client_secret` sent as HTTP basic
    /// authentication (RFC 6749 §2.3.1), each token good for `lifetime` (said in
    /// `expires_in`). Wrong credentials get `401 {"error":"invalid_client"}`, another grant
    /// `400 unsupported_grant_type`.
    pub fn start(client_id: &str, client_secret: &str, lifetime: Duration) -> FakeOAuth2 {
        let issued = Arc::new(Mutex::new(Issued::default()));
        let kept = Arc::clone(&issued);
        let expected = format!(
            "Basic {}",
            base64(format!("{client_id}:{client_secret}").as_bytes())
        );
        let server = FakeServer::start(move |request| {
            if header_of(request, "authorization") != Some(expected.as_str()) {
                return http(
                    "401 Unauthorized",
                    "application/json",
                    r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
                );
            }
            let form = form_pairs(body_of(request));
            if !form
                .iter()
                .any(|(n, v)| n == "grant_type" && v == "client_credentials")
            {
                return http(
                    "400 Bad Request",
                    "application/json",
                    r#"{"error":"unsupported_grant_type"}"#,
                );
            }
            let mut issued = kept.lock().expect("not poisoned");
            let token = format!("fake-access-token-{:04}-issued", issued.tokens.len() + 1);
            issued
                .tokens
                .push((token.clone(), Instant::now() + lifetime));
            http(
                "200 OK",
                "application/json",
                &format!(
                    r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                    lifetime.as_secs()
                ),
            )
        });
        FakeOAuth2 { server, issued }
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> usize {
        self.issued.lock().expect("not poisoned").tokens.len()
    }

    /// A check of an `Authorization` header, for the resource server: true while it bears a
    /// token this server issued and that has not expired.
    pub fn validator(&self) -> impl Fn(Option<&str>) -> bool + Send + Sync + 'static {
        let issued = Arc::clone(&self.issued);
        move |authorization| {
            let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
                return false;
            };
            issued
                .lock()
                .expect("not poisoned")
                .tokens
                .iter()
                .any(|(t, until)| t == token && Instant::now() < *until)
        }
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_rfc_4648() {
        assert_eq!(super::base64(b"client:secret"), "Y2xpZW50OnNlY3JldA==");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b"abc"), "YWJj");
    }
}
