//! The Kubernetes routers and the ConfigMap state store against `FakeApiServer`, an
//! in-process Kubernetes API fake that `kube::Client` reaches over loopback HTTP (no API
//! server can run here); the RBAC, Job and custom-resource manifests of `examples/`; and a whole
//! `canary rollout` through the fake with a real Prometheus judging it.

mod adapters;
mod examples;
mod fake_api;
mod promotion;
mod rbac;
mod rollout_e2e;
mod schemas;
mod state_store;
mod support;
