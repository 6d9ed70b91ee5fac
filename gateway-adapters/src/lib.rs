//! `canary-gateways`: the adapters of canary that need nothing but the machine they run on,
//! grouped by concern so that each is found by its folder's name:
//!
//! - [`routers`] move traffic between the stable version of a service and its canary: they
//!   implement the core's [`TrafficRouter`](canary_core::ports::TrafficRouter) port for
//!   HAProxy's runtime API ([`HaproxyRouter`]), an NGINX weighted upstream file that is
//!   rewritten and reloaded ([`NginxRouter`]), and a user's command for anything else
//!   ([`CommandRouter`]). Every router reads the weight back from the router itself, so the
//!   rollout verifies each change ([`canary_core::ports::set_and_verify`]) instead of
//!   assuming it; [`router_for`] builds the one a policy's `gateway` asks for.
//! - [`hooks`] run what the policy asks for at a rollout's events (commands and signed
//!   webhooks), and send its notifications.
//! - [`stores`] keep a rollout's state between runs: [`FileStateStore`], a directory on the
//!   runner.
//!
//! The Kubernetes routers, the ConfigMap state store and the Deployment promotion live in a
//! crate of their own, `canary-kubernetes` (`gateway-adapters/kubernetes/`), so that a build
//! without them compiles no Kubernetes client. The two never depend on each other; both
//! depend on `canary-core` (and this one on `canary-metrics` for the process's one TLS
//! provider installer, [`canary_metrics::install_crypto_provider`]).
//!
//! Every external call has a timeout, and every failure becomes a [`canary_core::Error`] that
//! names the socket, file or program involved (`Unavailable`, or `Mismatch` when the router
//! holds something canary did not set), never a secret.

pub mod error;
pub mod hooks;
mod process;
pub mod routers;
pub mod stores;

pub use error::{
    CommandFailure, CommandRouterError, GatewayError, HaproxyError, NginxError, Result,
};
pub use hooks::{HookContext, HookOutcome, HookRun, HookRunner, Notifier};
pub use process::{STOP_GRACE, finish_stopping_commands};
pub use routers::{
    CommandRouter, HaproxyRouter, NginxRouter, PROBE_PATH, ProbeAnswer, ServerWeights, router_for,
};
pub use stores::{FileStateStore, write_durably, write_durably_with_mode};
