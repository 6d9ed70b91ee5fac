//! End-to-end tests: the `canary` and `canary-demo-service` binaries against real
//! components (Prometheus, HAProxy, NGINX) started by the tests on loopback. One binary,
//! one module per topic; helpers in the `canary-tests` library (`tests/lib.rs`).

mod canary_run;
mod cloudwatch;
mod datadog;
mod generic_provider;
mod hostile;
mod judge_scenarios;
mod local_stack;
mod metrics_faults;
mod metrics_live;
mod metrics_scenarios;
mod notifications;
mod providers;
mod reports;
mod rollout;
mod rollout_crash;
mod rollout_faults;
mod rollout_outcomes;
mod rollout_routed;
mod rollout_safety;
