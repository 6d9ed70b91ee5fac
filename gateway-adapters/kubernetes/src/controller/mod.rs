//! Operator mode: what `canary controller` needs that is Kubernetes, with no deciding in it
//! (the binary drives the same rollout machine and judge for each resource).
//!
//! - [`resource`]: the `CanaryRollout` custom resource (`canary.dev/v1alpha1`), its CRD,
//!   and the validation of the policy it holds;
//! - [`lease`]: leader election on a `coordination.k8s.io/v1` Lease, and the fence every
//!   write of the leader checks;
//! - [`shard`]: `--shard I/N`, which resources one of several controllers carries out;
//! - [`status`]: a rollout's state as the resource's status (phase, step, weights,
//!   per-criterion verdicts, conditions).

pub mod lease;
pub mod resource;
pub mod shard;
pub mod status;

pub use lease::{Fence, LeaderElector, LeaseSettings, Round};
pub use resource::{
    CanaryRollout, CanaryRolloutSpec, CanaryRolloutStatus, Condition, ConfigMapKeyRef,
    CriterionStatus, PolicyOrigin, PolicySource, Rolled, TargetRef, crd_yaml,
};
pub use shard::Shard;
pub use status::{StatusContext, invalid_status, shows_the_same, status_of};
