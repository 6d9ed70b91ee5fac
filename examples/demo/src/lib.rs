//! The demo service canary's demo, end-to-end tests and local stack run.
//!
//! It is a small HTTP service that runs as a "stable" and a "canary" version of the
//! same thing. Each version serves requests with a realistic latency (log-normal around
//! a median, with a tail) and exports Prometheus metrics labelled with its version,
//! so the analyzer has a baseline and a canary to compare. Faults — an error rate and
//! an added latency — can be set when it starts and changed while it runs, which is
//! how the demo and the tests produce a bad canary on purpose.
//!
//! Beside the service the crate has the two other parts a rollout needs when no real
//! gateway is around: a [`WeightedProxy`] that splits traffic between the two versions
//! by a canary weight changed at run time (what `canary demo` shifts instead of HAProxy
//! or NGINX), and a [`LoadGenerator`] that sends open-loop traffic at a fixed rate.
//! [`DemoStack`] starts all of them wired together.
//!
//! `canary demo` uses all three in-process through this library; the end-to-end tests
//! and the local stack run the same service as separate processes with the
//! `canary-demo-service` binary.

mod error;
mod http_client;
mod load;
mod metrics;
mod proxy;
mod server_task;
mod service;
mod stack;

pub use error::{Error, Result};
pub use load::{LoadConfig, LoadGenerator, LoadSnapshot, RunningLoad};
pub use metrics::{DURATION_BUCKETS, REQUEST_DURATION_METRIC, REQUESTS_METRIC};
pub use proxy::{CanaryWeightControl, ProxyConfig, RoutedCounts, RunningProxy, WeightedProxy};
pub use service::{
    DemoService, DemoServiceConfig, FaultControl, Faults, RunningService, VERSION_HEADER,
};
pub use stack::{DemoStack, DemoStackConfig, RunningStack};
