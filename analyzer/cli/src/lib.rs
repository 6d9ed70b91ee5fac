//! The `canary` binary: clap commands, the async driver that carries out the rollout state
//! machine's effects, reports, and the demo. The decisions live in `canary-core`; the
//! adapters in `canary-metrics`, `canary-gateways` and (with the default `kubernetes` feature)
//! `canary-kubernetes`. Each subcommand is one file under
//! `commands/` with an `exec` method; errors are printed once, whole chain, in [`run`].
//! `controller/` is operator mode (`canary controller`): the same driver, for every
//! `CanaryRollout` of a cluster.

mod adapters;
mod app;
mod commands;
#[cfg(feature = "kubernetes")]
mod controller;
mod driver;
mod progress;
mod render;
mod self_metrics;

pub use app::run;
