//! Integration tests of `canary-gateways` with real processes: HAProxy and NGINX started by
//! the tests on free loopback ports, shell scripts as routers and hooks, and a local HTTP
//! server receiving webhooks. A missing HAProxy or NGINX fails with how to install it.

mod command;
mod haproxy;
mod hooks;
mod nginx;
mod support;
