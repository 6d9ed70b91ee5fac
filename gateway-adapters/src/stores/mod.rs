//! Where a rollout's state is kept between runs, when it is kept on the runner:
//! [`FileStateStore`]. (The ConfigMap store is in `canary-kubernetes`.)

pub mod file;

pub use file::{FileStateStore, write_durably, write_durably_with_mode};
