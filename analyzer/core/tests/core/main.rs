//! canary-core's integration tests, one binary (like ripgrep's and nextest's): each module
//! is a topic, and the binary links once instead of once per topic (each link is tens of
//! megabytes of disk and seconds of a two-core machine).
//!
//! - `golden_*`: the statistics against scipy, R, mpmath and a real Prometheus
//!   (`golden/`, with the scripts that made the values);
//! - `samples_*`: seeded A/A and detection rates of the sequential tests and of the judge
//!   (`samples_simulation/` holds the shared simulation);
//! - `judge_properties`: property tests of the judge;
//! - `policy_*`: the shipped sample policies and the Kubernetes policy sections;
//! - `rollout_machine`: the rollout state machine, event by event.

mod golden {
    pub(crate) mod common;
}
mod samples_simulation;

mod golden_autocorrelated_mean;
mod golden_binomial_cs;
mod golden_fisher;
mod golden_histogram_quantile;
mod golden_mann_whitney;
mod golden_rate_ratio;
mod golden_validity;
mod golden_wilson;
mod judge_properties;
mod policy_kubernetes;
mod policy_samples;
mod rollout_machine;
mod routed_steps;
mod samples_judge;
mod samples_validity;
