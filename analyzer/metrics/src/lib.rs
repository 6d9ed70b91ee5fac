//! `canary-metrics` reads the evidence canary judges, and implements the core's
//! [`canary_core::ports::MetricsSource`] three times:
//!
//! - [`PrometheusSource`]: the Prometheus HTTP API (Prometheus, Thanos, Mimir, Cortex,
//!   VictoriaMetrics), one instant query per check per tick returning both versions, with
//!   timeouts, retries, authentication and TLS — or, for a past window, one query of raw
//!   samples per counter check, each tick computed from them by [`window`] as Prometheus
//!   computes it; under `canary controller`, [`SharedSource`]: the rollouts whose error-rate
//!   and latency checks select the same series share one query of raw samples per
//!   coalescing window ([`shared`]), each computing its own tick from them;
//! - [`ScrapeSource`]: the versions' own `/metrics` pages, scraped directly, for places with
//!   no Prometheus server and for `canary demo`;
//! - [`GenericSource`]: any system answering JSON, asked by an HTTP request or a command per
//!   check per tick, its values picked out with JSONPaths — and Datadog's metrics query API
//!   ([`datadog`]) and CloudWatch's `GetMetricData` ([`cloudwatch`]), which are that source
//!   with a fixed request and a reader of their own answer.
//!
//! [`queries`] renders the PromQL (pure, so `canary policy explain` prints exactly what is
//! sent) and [`answer`] types every shape of answer. Recorded data needs no source: the
//! core's [`canary_core::recording::Recording`] is the ticks themselves. [`exposition`]
//! writes the text format canary's own `/metrics` page serves. Errors are this
//! crate's [`Error`], which becomes `canary_core::Error::Unavailable` (exit code 4, with the
//! address) at the port.

pub mod answer;
pub mod auth;
pub mod cloudwatch;
pub mod datadog;
mod error;
pub mod exposition;
pub mod generic;
pub mod prometheus;
pub mod queries;
pub mod scrape;
pub mod shared;
pub mod window;

pub use error::{Error, Result};
pub use generic::GenericSource;
pub use prometheus::{PrometheusConfig, PrometheusSource, QueryOutcome};
pub use scrape::ScrapeSource;
pub use shared::{SharedReads, SharedSource};

/// Installs rustls' `ring` crypto provider as the process default unless one is installed
/// already. The workspace builds reqwest without a provider of its own (aws-lc is heavy to
/// build), and it needs one before any client is made: every crate of canary that makes a
/// reqwest client (this one, the webhooks and notifications of `canary-gateways`) calls this
/// first, so the process has one installer whichever client comes first.
pub fn install_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Another thread may have won the race; either provider will do.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// The source a policy names: Prometheus (with `prometheus` replacing its URL when given)
/// or direct scrapes. A policy that cannot be used (no URL, a secret that cannot be read, a
/// CA bundle that is not PEM) is [`canary_core::Error::Usage`] (exit code 2); `--prometheus`
/// given for a scrape policy is one too.
pub fn source_for(
    policy: &canary_core::policy::Policy,
    prometheus: Option<&str>,
) -> canary_core::Result<Box<dyn canary_core::ports::MetricsSource>> {
    use canary_core::policy::MetricsSourceSpec;
    match (&policy.metrics, prometheus) {
        (MetricsSourceSpec::Prometheus(_), url) => {
            Ok(Box::new(PrometheusSource::from_policy(policy, url)?))
        }
        (MetricsSourceSpec::Scrape(_), None) => Ok(Box::new(ScrapeSource::from_policy(policy)?)),
        (MetricsSourceSpec::Scrape(_), Some(_)) => Err(canary_core::Error::Usage(
            "--prometheus was given, but the policy reads its metrics by `scrape`; \
             change metrics in the policy to `prometheus` to query a server"
                .to_owned(),
        )),
        (MetricsSourceSpec::Json(_), None) => Ok(Box::new(GenericSource::from_policy(policy)?)),
        (MetricsSourceSpec::Json(spec), Some(_)) => Err(canary_core::Error::Usage(format!(
            "--prometheus was given, but the policy reads its metrics from `metrics.{}`, \
             which says where its requests go",
            spec.name()
        ))),
    }
}
