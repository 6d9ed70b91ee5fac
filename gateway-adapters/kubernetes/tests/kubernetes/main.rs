//! The Kubernetes routers, the ConfigMap state store and the Deployment promotion against
//! `FakeApiServer` (crate `canary-fake-kube-api`), an in-process Kubernetes API fake that
//! `kube::Client` reaches over loopback HTTP (no API server can run here); the RBAC and Job
//! manifests of `examples/kubernetes/`; and a whole `canary rollout` through the fake with a
//! real Prometheus judging it.

mod adapters;
mod promotion;
mod rbac;
mod rollout_e2e;
mod schemas;
mod state_store;
mod support;
