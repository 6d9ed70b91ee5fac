//! Operator mode: what `canary controller` needs that is Kubernetes, with no deciding in it
//! (the binary drives the same rollout machine and judge for each resource).
//!
//! - [`resource`]: the `CanaryRollout` custom resource (`canary.dev/v1alpha1`), its CRD,
//!   and the validation of the policy it holds;
//! - [`status`]: a rollout's state as the resource's status (phase, step, weights,
//!   per-criterion verdicts, conditions).

pub mod resource;
pub mod status;

pub use resource::{
    CanaryRollout, CanaryRolloutSpec, CanaryRolloutStatus, Condition, ConfigMapKeyRef,
    CriterionStatus, PolicyOrigin, PolicySource, Rolled, TargetRef, crd_yaml,
};
pub use status::{StatusContext, invalid_status, status_of};
