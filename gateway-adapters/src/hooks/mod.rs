//! What a rollout runs and tells at its events: the policy's [`hooks`](runner) (a command or
//! a signed webhook, with a timeout and a typed outcome) and its [`notifications`](notify)
//! (generic or Slack webhooks).

pub mod notify;
pub mod runner;

pub use notify::Notifier;
pub use runner::{HookContext, HookOutcome, HookRun, HookRunner};
pub(crate) use runner::{SignedPost, post_signed_json, read_secret};
