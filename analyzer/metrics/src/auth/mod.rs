//! How requests to a managed Prometheus authenticate beyond a static token: AWS Signature
//! Version 4 ([`sigv4`], with credentials found by [`aws`] as AWS's SDKs find them) and OAuth2
//! client credentials ([`oauth2`]). Mutual TLS and the proxy are the HTTP client's business
//! and are set up where the client is built (`prometheus.rs`).
//!
//! Every credential these read or are handed — AWS secret keys and session tokens, the
//! web-identity token, OAuth2 client secrets and access tokens — is a
//! [`canary_core::secret::Secret`] from the moment it is read, so the process's redactor knows
//! it before anything could echo it.

pub mod aws;
pub mod oauth2;
pub mod sigv4;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

/// Where AWS settings (`AWS_ACCESS_KEY_ID`, `AWS_WEB_IDENTITY_TOKEN_FILE`, …) are read from:
/// the process's environment, or a fixed set of variables (tests, which cannot change the
/// environment of a threaded process soundly).
#[derive(Clone)]
pub struct Environment(Arc<Lookup>);

/// How an [`Environment`] looks a variable up.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Environment {
    /// The process's environment variables. An empty variable counts as unset, as AWS's
    /// SDKs count it.
    pub fn process() -> Environment {
        Environment(Arc::new(|name| {
            std::env::var(name).ok().filter(|value| !value.is_empty())
        }))
    }

    /// Exactly these variables, and no others.
    pub fn of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Environment {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Environment(Arc::new(move |name| {
            map.get(name).filter(|value| !value.is_empty()).cloned()
        }))
    }

    /// A variable's value, `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Environment")
    }
}

impl Default for Environment {
    fn default() -> Self {
        Environment::process()
    }
}
