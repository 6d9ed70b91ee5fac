//! Tests of the `canary` binary as users run it: one binary, one file per topic, a small
//! command helper. Tests that need Prometheus, HAProxy or NGINX live in the workspace's
//! `tests/` crate.

mod analyze_live;
mod analyze_recorded;
mod ci_examples;
mod completions;
mod demo;
mod distribution;
mod live_view;
mod policy_explain;
mod policy_lint;
mod readme;
mod reports;
mod simulate;
mod util;
