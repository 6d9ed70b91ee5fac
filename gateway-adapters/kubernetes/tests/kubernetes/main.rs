//! The Kubernetes routers (the replica-count one with the fake as a Deployment controller) and
//! the write guard asked before each of their writes, the ConfigMap state store and the
//! Deployment promotion against
//! `FakeApiServer` (crate `canary-fake-kube-api`), an in-process Kubernetes API fake that
//! `kube::Client` reaches over loopback HTTP (no API server can run here); the RBAC, Job and
//! custom-resource manifests of `examples/`; and a whole `canary rollout` through the fake with a
//! real Prometheus judging it; the `CanaryRollout` resource and its checked-in CRD; and the
//! fake's own behaviour where controllers rely on it (watch, status subresource, Leases);
//! leader election on a Lease and its fence; the controller's scale harness.

mod adapters;
mod controller_e2e;
mod controller_resource;
mod controller_scale;
mod controller_trust;
mod examples;
mod fake_api;
mod generated_route;
mod generated_virtual_service;
mod leases;
mod promotion;
mod rbac;
mod redaction;
mod replica_count;
mod replica_count_e2e;
mod rollout_e2e;
mod routed_steps;
mod schemas;
mod several_routes;
mod state_store;
mod support;
mod write_guard;
