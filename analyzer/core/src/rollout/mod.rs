//! The rollout as a pure state machine: `(state, event, now) -> (state, effects)`.
//!
//! [`Machine::handle`] takes the persisted [`Rollout`], one [`Event`] and the time, updates
//! the rollout and returns the [`Effect`]s the driver must carry out, in order. Effects are
//! data: check before starting, set a weight, run hooks, read the metrics, persist, notify,
//! wait, finish. At most one effect in a batch produces a result (the pre-flight, setting a
//! weight, running hooks, reading, waiting), and it is always the last; its result is the
//! next event. So the driver is a loop, every transition is a plain unit test, the simulator
//! runs the very same machine in virtual time, and a crash anywhere resumes from the last
//! persisted state: every effect is idempotent, and [`Event::Resume`] re-issues whatever the
//! state was waiting for. The machine alone changes a rollout: what the driver learns comes
//! back inside events.
//!
//! The phases: `Starting` (pre-flight, before-hooks) → `Step` i (weight set, then analysed
//! tick by tick) → … → `Promoting` (weight 100) → optional `Soak` → (with a Kubernetes
//! promotion: `Finalizing`: the stable Deployment gets the canary's template, weight 0, the
//! canary is scaled down) → `Promoted`; or, from any step, `RollingBack` (weight 0) →
//! `RolledBack`; or `Held` (inconclusive, the policy says hold); or `Failed` (the gateway or
//! the metrics source is unusable; a rerun resumes).
//!
//! The modules: [`state`](self::Rollout) (what is persisted), the protocol between machine
//! and driver ([`Event`], [`Effect`], [`Notice`], [`ControlRequest`]), the machine itself,
//! the validation of a saved state against the policy ([`Machine::validate`]), and the
//! report of a rollout ([`Rollout::report`]).

mod machine;
mod protocol;
mod report;
mod state;
mod validate;

pub use machine::Machine;
pub use protocol::{
    CONTROL_REQUEST_TTL, CONTROL_WAIT, ControlAction, ControlRequest, Effect, Event, Notice,
    NoticeKind,
};
pub use state::{
    ManualPromotion, Outcome, PendingHooks, Phase, PromotionStage, RollbackCause, Rollout,
    STATE_FORMAT,
};
