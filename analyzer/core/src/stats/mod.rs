//! The statistics canary decides with. Each routine names its source in its doc comment and
//! is checked against golden values computed by scipy, R or an independent formula
//! (`analyzer/core/tests/core/golden/`).
//!
//! What is here, and what each is for:
//!
//! - [`rate_ratio`]: the anytime-valid comparison of event counts (errors, slow requests) of
//!   canary against baseline while the canary's traffic share moves. This is what rolls a
//!   canary back mid-step; its type-I error holds however often it is looked at.
//! - [`binomial_cs`]: an anytime-valid confidence sequence for one binomial rate, for
//!   absolute bounds ("canary error rate ≤ 0.1 %").
//! - [`histogram`]: `histogram_quantile` exactly as Prometheus computes it for classic
//!   histograms, and the bucket arithmetic the latency checks need.
//! - [`autocorrelated_mean`]: the anytime-valid comparison of per-interval samples (CPU,
//!   memory) whose series are autocorrelated: sequential universal inference on the canary's
//!   per-tick excess under an AR(2) model. What `samples` checks use by default.
//! - [`mann_whitney`]: Kayenta-style Mann–Whitney U and the Hodges–Lehmann shift with its
//!   confidence interval, for generic metric samples (fixed-sample, not sequential; assumes
//!   independent samples), kept for `method: mann-whitney`.
//! - [`fisher`]: Fisher's exact test for a 2×2 table (a fixed-sample cross-check).
//! - [`wilson`]: the Wilson score interval, used to report simulated false-rollback rates.
//! - [`normal`]: the normal distribution functions the others share (the quantile is
//!   statrs').
//! - [`special`]: log-gamma, log-beta and log-probabilities written for accuracy at large
//!   counts, where statrs' naive forms lose digits.

pub mod autocorrelated_mean;
pub mod binomial_cs;
pub mod fisher;
pub mod histogram;
pub mod mann_whitney;
pub mod normal;
pub mod rate_ratio;
pub mod special;
pub mod wilson;

pub use autocorrelated_mean::{AutocorrelatedMeanState, AutocorrelatedMeanTest};
pub use binomial_cs::BinomialConfidenceSequence;
pub use fisher::{FisherExact, fisher_exact};
pub use histogram::{Bucket, count_above, histogram_quantile, smallest_bound_at_or_above};
pub use mann_whitney::{MannWhitney, ShiftEstimate, hodges_lehmann, mann_whitney_u};
pub use normal::{normal_cdf, normal_quantile, normal_sf};
pub use rate_ratio::{EventCounts, RateRatioState, RateRatioTest};
pub use wilson::wilson_interval;

/// The alternative hypothesis of a fixed-sample test, named as scipy and R name them.
///
/// For two samples `x` (canary) and `y` (baseline), [`Alternative::Greater`] means "x tends
/// to be larger than y" (for Fisher's test: the odds ratio is above 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternative {
    /// Either direction (`"two-sided"` in scipy, `"two.sided"` in R).
    TwoSided,
    /// `x` is stochastically larger than `y` (`"greater"`).
    Greater,
    /// `x` is stochastically smaller than `y` (`"less"`).
    Less,
}

/// Shorthand for the error every statistical routine returns on bad input.
fn invalid(test: &'static str, reason: impl Into<String>) -> crate::Error {
    crate::Error::Statistics {
        test,
        reason: reason.into(),
    }
}
