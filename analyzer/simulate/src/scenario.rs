//! What a simulated situation is made of: the traffic both versions see, what is wrong with
//! the canary, incidents that hit both, and how the metrics source misbehaves.

use std::time::Duration;

use serde::Serialize;

/// Bucket bounds of the simulated latency histogram (the Prometheus client defaults).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How the request rate moves over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "pattern")]
pub enum RatePattern {
    /// The same rate throughout.
    Constant,
    /// A sine wave around the rate: `rps · (1 + amplitude · sin(2πt / period))`.
    Diurnal {
        /// Relative amplitude, 0..1.
        amplitude: f64,
        /// Period of the wave.
        period: Duration,
    },
    /// Bursts: in each interval, with `probability`, the rate is `factor` times higher.
    Bursty {
        /// How much higher during a burst.
        factor: f64,
        /// How often a burst happens.
        probability: f64,
    },
}

/// Traffic both versions see, before any regression.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Traffic {
    /// Requests per second to the service (both versions together).
    pub rps: f64,
    /// How the rate moves.
    pub pattern: RatePattern,
    /// Probability that a request fails.
    pub error_rate: f64,
    /// Median latency in seconds (log-normal).
    pub latency_median: f64,
    /// Log-normal σ of latency.
    pub latency_sigma: f64,
    /// Histogram bucket bounds (finite; `+Inf` is added).
    pub buckets: Vec<f64>,
    /// Mean of per-interval samples (samples checks, e.g. CPU seconds per request).
    pub sample_mean: f64,
    /// Standard deviation of per-interval samples.
    pub sample_sd: f64,
    /// Correlation time of each version's samples, in seconds: samples Δt apart have
    /// correlation e^(−Δt/τ). 0: independent samples.
    pub sample_correlation_seconds: f64,
}

impl Traffic {
    /// Constant traffic at `rps` with `error_rate` errors and a 50 ms median latency.
    pub fn constant(rps: f64, error_rate: f64) -> Traffic {
        Traffic {
            rps,
            pattern: RatePattern::Constant,
            error_rate,
            latency_median: 0.05,
            latency_sigma: 0.6,
            buckets: DEFAULT_BUCKETS.to_vec(),
            sample_mean: 1.0,
            sample_sd: 0.1,
            sample_correlation_seconds: 0.0,
        }
    }
}

/// What is wrong with the canary.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Regression {
    /// Error probability multiplied by this (1 = unchanged).
    pub error_factor: f64,
    /// Then this is added.
    pub error_add: f64,
    /// Latency multiplied by this (1 = unchanged): a p95 +50 % regression is 1.5.
    pub latency_factor: f64,
    /// Then this many seconds are added.
    pub latency_add: f64,
    /// A slow tail: this fraction of requests is `tail_factor` times slower.
    pub tail_fraction: f64,
    /// How much slower the tail is.
    pub tail_factor: f64,
    /// Samples multiplied by `1 + sample_shift`.
    pub sample_shift: f64,
    /// Canary pods restart (query checks see 1 restart after a minute).
    pub restarts: bool,
}

impl Regression {
    /// No regression: a healthy canary.
    pub fn none() -> Regression {
        Regression {
            error_factor: 1.0,
            latency_factor: 1.0,
            tail_factor: 1.0,
            ..Regression::default()
        }
    }

    /// The error rate multiplied by `factor`.
    pub fn errors_times(factor: f64) -> Regression {
        Regression {
            error_factor: factor,
            ..Regression::none()
        }
    }

    /// Latency multiplied by `factor` (p95 moves by the same factor).
    pub fn latency_times(factor: f64) -> Regression {
        Regression {
            latency_factor: factor,
            ..Regression::none()
        }
    }

    /// Whether the canary is healthy (nothing to detect).
    pub fn is_none(&self) -> bool {
        self.error_factor == 1.0
            && self.error_add == 0.0
            && self.latency_factor == 1.0
            && self.latency_add == 0.0
            && (self.tail_fraction == 0.0 || self.tail_factor == 1.0)
            && self.sample_shift == 0.0
            && !self.restarts
    }
}

/// An incident that hits both versions alike (a dependency failing): a fair comparison must
/// not blame the canary for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incident {
    /// When it starts, from the rollout's start.
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// Extra error probability for both versions meanwhile.
    pub error_add: f64,
}

/// A simulated situation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    /// A name for tables.
    pub name: String,
    /// The traffic.
    pub traffic: Traffic,
    /// What is wrong with the canary.
    pub canary: Regression,
    /// An incident hitting both versions.
    pub incident: Option<Incident>,
    /// Probability that a read returns the previous tick's values (a missed scrape).
    pub stale_read_probability: f64,
    /// Probability, per read and version, of a counter reset that loses part of the
    /// increments since the previous read (as `increase()` does across a restart).
    pub counter_reset_probability: f64,
}

impl Scenario {
    /// A scenario with `canary` as the only difference from plain constant traffic.
    pub fn new(name: impl Into<String>, traffic: Traffic, canary: Regression) -> Scenario {
        Scenario {
            name: name.into(),
            traffic,
            canary,
            incident: None,
            stale_read_probability: 0.0,
            counter_reset_probability: 0.0,
        }
    }
}
