//! The `canary` binary: clap commands, the async driver that carries out the rollout state
//! machine's effects, reports, and the demo. The decisions live in `canary-core`; the
//! adapters in `canary-metrics`, `canary-gateways` and (with the default `kubernetes` feature)
//! `canary-kubernetes`. Each subcommand is one file under
//! `commands/` with an `exec` method; errors are printed once, whole chain, in [`run`].

mod adapters;
mod app;
mod commands;
mod driver;
mod progress;
mod render;
mod self_metrics;

pub use app::run;
