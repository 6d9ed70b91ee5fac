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
        // RFC 6749 §2.3.1: the id and the secret are form-urlencoded, then joined by `:`
        // and base64-encoded; the server decodes them so.
        let expected = basic_of(client_id, client_secret);
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

/// The `Authorization` a client sends (RFC 6749 §2.3.1): the id and the secret
/// form-urlencoded, joined by `:`, base64-encoded.
fn basic_of(client_id: &str, client_secret: &str) -> String {
    let credentials = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    format!(
        "Basic {}",
        crate::leaks::base64(credentials.as_bytes(), false, true)
    )
}

/// `application/x-www-form-urlencoded` encoding of a text (WHATWG URL standard): ASCII
/// letters, digits and `*-._` kept, a space as `+`, every other byte as `%XX`.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b if b.is_ascii_alphanumeric() || b"*-._".contains(&b) => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_credentials_are_form_encoded_as_rfc_6749_says() {
        assert_eq!(super::form_encode("a b/c+d=e*f~"), "a+b%2Fc%2Bd%3De*f%7E");
        assert_eq!(
            super::basic_of("canary-e2e", "oauth2/client+secret=never-print"),
            "Basic Y2FuYXJ5LWUyZTpvYXV0aDIlMkZjbGllbnQlMkJzZWNyZXQlM0RuZXZlci1wcmludA=="
        );
    }
}
