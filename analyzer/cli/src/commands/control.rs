//! `canary promote` and `canary abort`: act on a rollout from another shell. If a process is
//! driving the rollout, the request is left for it (it acts within a second); otherwise
//! this command drives the rollout itself to the end of the requested action.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canary_core::ExitCode;
use canary_core::policy::Policy;
use canary_core::ports::{StateStore, TrafficRouter};
use canary_core::rollout::{
    CONTROL_WAIT, ControlAction, ControlRequest, Event, Machine, Outcome, Phase, Rollout,
};
use clap::Args;
use jiff::Timestamp;

use super::StateArgs;
use super::rollout::{Drive, drive};
use crate::progress::Progress;

#[derive(Debug, Args)]
pub(crate) struct PromoteCommand {
    /// The service's policy file (or give `--kube`).
    #[arg(long, value_name = "FILE", required_unless_present = "kube")]
    policy: Option<PathBuf>,

    /// A `CanaryRollout` that `canary controller` carries out, as NAMESPACE/NAME: act on its
    /// rollout (its policy and state are the resource's).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "policy")]
    kube: Option<String>,

    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,

    #[command(flatten)]
    state: StateArgs,

    /// Prometheus base URL (overrides the policy's).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct AbortCommand {
    /// The service's policy file (or give `--kube`).
    #[arg(long, value_name = "FILE", required_unless_present = "kube")]
    policy: Option<PathBuf>,

    /// A `CanaryRollout` that `canary controller` carries out, as NAMESPACE/NAME: act on its
    /// rollout (its policy and state are the resource's).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "policy")]
    kube: Option<String>,

    /// Why, for the report.
    #[arg(long, default_value = "aborted by hand")]
    reason: String,

    #[command(flatten)]
    state: StateArgs,

    /// Prometheus base URL (overrides the policy's).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
}

impl PromoteCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        let runtime = super::runtime()?;
        let target = target(
            self.policy.as_deref(),
            self.kube.as_deref(),
            &self.state,
            &runtime,
        )?;
        if !self.yes
            && !confirm(&format!(
                "Promote {} to 100 % now, skipping the remaining analysis?",
                target.policy.service
            ))?
        {
            println!("not promoted");
            return Ok(ExitCode::BadInput);
        }
        act(
            &runtime,
            target,
            self.prometheus.as_deref(),
            ControlAction::Promote,
        )
    }
}

impl AbortCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        let runtime = super::runtime()?;
        let target = target(
            self.policy.as_deref(),
            self.kube.as_deref(),
            &self.state,
            &runtime,
        )?;
        act(
            &runtime,
            target,
            self.prometheus.as_deref(),
            ControlAction::Abort {
                reason: self.reason,
            },
        )
    }
}

/// What a control command acts on: the rollout of a policy file (its state where
/// `--state-store` says), or a `CanaryRollout`'s (`--kube`).
struct Target {
    policy: Policy,
    store: Box<dyn StateStore>,
    /// The gateway, when it is not the policy's as `canary rollout` reaches it (a
    /// CanaryRollout's is reached in the resource's namespace, as the controller does).
    router: Option<Box<dyn TrafficRouter>>,
}

fn target(
    policy: Option<&Path>,
    kube: Option<&str>,
    state: &StateArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Target> {
    match (policy, kube) {
        (_, Some(kube)) => {
            let rollout = runtime.block_on(super::open_kube_rollout(
                kube,
                state.kube_context.clone(),
                state.claim_ttl,
            ))?;
            Ok(Target {
                policy: rollout.policy,
                store: rollout.store,
                router: Some(rollout.router),
            })
        }
        (Some(path), None) => {
            let policy = super::load_policy(path)?;
            let store = state.open(&policy.service)?;
            Ok(Target {
                policy,
                store,
                router: None,
            })
        }
        (None, None) => Err(canary_core::Error::Usage(
            "give --policy FILE or --kube NAMESPACE/NAME".to_owned(),
        )
        .into()),
    }
}

fn act(
    runtime: &tokio::runtime::Runtime,
    target: Target,
    prometheus: Option<&str>,
    action: ControlAction,
) -> anyhow::Result<ExitCode> {
    let Target {
        policy,
        store,
        router,
    } = target;
    runtime.block_on(async {
        // Read before claiming: a claim this command is about to take from a driver that
        // counts as gone is said, never taken silently.
        let stale = store.stale_claim().await?;
        if let Err(err) = store.claim(false).await {
            // Someone drives the rollout: leave the request for them, and wait for the end.
            if matches!(err, canary_core::Error::Mismatch { .. }) {
                // The request is bound to the rollout under way, so that it can never be
                // applied to another one; there must be one.
                let rollout = running(&policy, store.as_ref()).await?;
                let request = ControlRequest::for_rollout(action, &rollout, Timestamp::now());
                store.request(&request).await?;
                println!(
                    "asked the process driving the rollout of {} to act ({err})",
                    policy.service
                );
                return wait_for_the_driver(store.as_ref(), &policy.service, &request).await;
            }
            return Err(err.into());
        }
        if let Some(stale) = stale {
            println!(
                "found the rollout of {} driven by {stale}: took over its claim, so this \
                 command carries out the {} itself",
                policy.service,
                action.name()
            );
        }
        // Whatever happens, the claim is given back.
        let result = act_claimed(
            &policy,
            store.as_ref(),
            router.as_deref(),
            prometheus,
            action,
        )
        .await;
        if let Err(err) = store.release().await {
            eprintln!("warning: could not release the rollout's claim: {err}");
        }
        result
    })
}

/// Acts on a rollout no process drives: drives it through the requested action.
async fn act_claimed(
    policy: &Policy,
    store: &dyn StateStore,
    router: Option<&dyn TrafficRouter>,
    prometheus: Option<&str>,
    action: ControlAction,
) -> anyhow::Result<ExitCode> {
    let mut rollout = running(policy, store).await?;
    let machine = Machine::new(policy.clone())?;
    machine
        .validate(&rollout, Timestamp::now())
        .map_err(|e| super::rollout::in_store(e, store))?;
    let request = ControlRequest::for_rollout(action, &rollout, Timestamp::now());
    let mut progress = Progress::new(false);
    let driven = drive(
        &machine,
        store,
        &mut rollout,
        &mut progress,
        Drive {
            first: Event::Control(request),
            prometheus,
            router,
            metrics: None,
            rollback_retry_for: super::rollout::ROLLBACK_RETRY_FOR,
        },
    )
    .await?;
    println!(
        "{}: {} (at {})",
        policy.service,
        driven.outcome.reason,
        Timestamp::now()
    );
    Ok(driven.outcome.exit)
}

/// The rollout a request is for: one that exists and has not finished, else exit 2.
async fn running(policy: &Policy, store: &dyn StateStore) -> anyhow::Result<Rollout> {
    let Some(rollout) = store.load().await? else {
        return Err(canary_core::Error::Usage(format!(
            "no rollout of {} is running ({}): nothing to act on",
            policy.service,
            store.describe()
        ))
        .into());
    };
    if rollout.phase().is_terminal() {
        return Err(canary_core::Error::Usage(format!(
            "the rollout of {} (id {}, started {}) already finished ({}): nothing to act on",
            policy.service,
            rollout.id().unwrap_or("none"),
            rollout.started_at(),
            rollout.phase().name()
        ))
        .into());
    }
    Ok(rollout)
}

/// Waits until the rollout another process drives has finished, and exits as it did,
/// saying whether the request was applied. A driver that does not get there in time (gone,
/// or stuck in a long hook) is exit 4, and the request is withdrawn: nothing acts on it
/// after its asker has given up.
async fn wait_for_the_driver(
    store: &dyn StateStore,
    service: &str,
    request: &ControlRequest,
) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + CONTROL_WAIT;
    loop {
        let rollout = store.load().await?;
        let seen = rollout
            .as_ref()
            .map_or(Seen::Acting, |rollout| Seen::of(rollout, request));
        if !matches!(seen, Seen::Acting) {
            // Whatever ended, nothing of this request may be left behind to act on.
            let withdrawal = withdraw(store, request).await?;
            match seen {
                Seen::Ended(outcome) => {
                    println!("{}", ended_message(service, request, outcome, &withdrawal));
                    return Ok(outcome.exit);
                }
                Seen::Replaced { id, started_at } => {
                    return Err(canary_core::Error::Mismatch {
                        component: "state",
                        message: replaced_message(service, request, &id, started_at, &withdrawal),
                    }
                    .into());
                }
                Seen::Acting => unreachable!("handled above"),
            }
        }
        if Instant::now() >= deadline {
            let withdrawn = match withdraw(store, request).await? {
                Withdrawal::Withdrawn => "the request was withdrawn",
                Withdrawal::Replaced(_) => "the request was replaced by another",
                Withdrawal::Taken => "the driver took the request and is still acting on it",
            };
            return Err(canary_core::Error::Mismatch {
                component: "state",
                message: format!(
                    "the rollout of {service} has not finished acting within {}s; {withdrawn} (`canary status` shows where it is; if that driver is gone, `canary rollout --take-over` resumes it)",
                    CONTROL_WAIT.as_secs()
                ),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the state says of the rollout a request waits on.
#[derive(Debug, PartialEq)]
enum Seen<'a> {
    /// Still under way (a step, or hooks still to run).
    Acting,
    /// It ended, this way.
    Ended(&'a Outcome),
    /// Another rollout is in the state: the one the request was for ended and a new one
    /// started (which never applies the request: it is bound to the old one).
    Replaced {
        id: Option<String>,
        started_at: Timestamp,
    },
}

impl<'a> Seen<'a> {
    fn of(rollout: &'a Rollout, request: &ControlRequest) -> Seen<'a> {
        if rollout.id().map(str::to_owned) != request.rollout_id
            || rollout.started_at() != request.rollout_started_at
        {
            return Seen::Replaced {
                id: rollout.id().map(str::to_owned),
                started_at: rollout.started_at(),
            };
        }
        match rollout.outcome() {
            Some(outcome)
                if rollout.hooks_pending().is_none()
                    && !matches!(rollout.phase(), Phase::Step { .. }) =>
            {
                Seen::Ended(outcome)
            }
            _ => Seen::Acting,
        }
    }
}

/// What became of a request when its asker stopped waiting.
#[derive(Debug, PartialEq)]
enum Withdrawal {
    /// It was still there, unread: removed, so nothing applies it.
    Withdrawn,
    /// The driver had taken it.
    Taken,
    /// Another request is in its place (put back as it was): this one was replaced before
    /// the driver took it, or taken before the other came; from here, which is not known.
    Replaced(ControlRequest),
}

/// Removes `request` from the store if no driver has taken it, and says which it was.
async fn withdraw(store: &dyn StateStore, request: &ControlRequest) -> anyhow::Result<Withdrawal> {
    Ok(match store.take_request().await? {
        Some(left) if &left == request => Withdrawal::Withdrawn,
        Some(other) => {
            store.request(&other).await?;
            Withdrawal::Replaced(other)
        }
        None => Withdrawal::Taken,
    })
}

/// How a rollout another process drove ended, and whether it applied the request: a
/// rollout that ended on its own first (a failed check, an infrastructure error) never
/// leaves the asker thinking the promotion or abort was done.
fn ended_message(
    service: &str,
    request: &ControlRequest,
    outcome: &Outcome,
    withdrawal: &Withdrawal,
) -> String {
    let name = request.action.name();
    match withdrawal {
        Withdrawal::Taken => return format!("{service}: {}", outcome.reason),
        Withdrawal::Replaced(other) => {
            return format!(
                "{service}: this {name} may not have been applied: {}; the rollout ended: {}",
                in_its_place(other),
                outcome.reason
            );
        }
        Withdrawal::Withdrawn => {}
    }
    let again = if outcome.exit == ExitCode::Infrastructure {
        format!(
            "; the rollout can be resumed: once it runs again (`canary status` says), run `canary {name}` again"
        )
    } else {
        String::new()
    };
    format!(
        "{service}: the rollout ended on its own before it took the {name}, which was not applied (and is withdrawn): {}{again}",
        outcome.reason
    )
}

/// The rollout a request was bound to is gone from the state: say so, and whether it took
/// the request before it ended (the state no longer says how it ended).
fn replaced_message(
    service: &str,
    request: &ControlRequest,
    id: &Option<String>,
    started_at: Timestamp,
    withdrawal: &Withdrawal,
) -> String {
    let name = request.action.name();
    let fate = match withdrawal {
        Withdrawal::Taken => format!("it took the {name} before it ended"),
        Withdrawal::Withdrawn => format!("the {name} was not applied (and is withdrawn)"),
        Withdrawal::Replaced(other) => {
            format!(
                "the {name} may not have been applied: {}",
                in_its_place(other)
            )
        }
    };
    format!(
        "the rollout of {service} this {name} was for (id {}, started {}) is no longer the one in the state: rollout {} started {started_at} has replaced it; {fate}. A request is bound to one rollout and never applies to another: `canary status` shows the new one",
        request.rollout_id.as_deref().unwrap_or("none"),
        request.rollout_started_at,
        id.as_deref().unwrap_or("without an id"),
    )
}

/// The request found where the asker's was.
fn in_its_place(other: &ControlRequest) -> String {
    let name = other.action.name();
    let article = if name.starts_with('a') { "an" } else { "a" };
    format!(
        "another request ({article} {name} requested at {}) is in its place",
        other.requested_at
    )
}

/// Asks on the terminal; without one, refuses (a pipeline must say `--yes`).
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(canary_core::Error::Usage(
            "refusing to promote without --yes: there is no terminal to confirm on".to_owned(),
        )
        .into());
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_gateways::stores::FileStateStore;

    fn machine() -> Machine {
        let policy = Policy::from_yaml(
            include_str!("../../../../policies/checkout.yaml"),
            "checkout.yaml",
        )
        .unwrap();
        Machine::new(policy).unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_780_000_000 + seconds).unwrap()
    }

    /// A rollout that stopped at its pre-flight with an infrastructure error (exit 4,
    /// resumable), as a driver leaves it.
    fn failed_at_preflight(machine: &Machine, id: &str, started: i64) -> Rollout {
        let mut rollout = machine.start(at(started), Some(id.to_owned()));
        machine.handle(&mut rollout, Event::Resume, at(started));
        machine.handle(
            &mut rollout,
            Event::PreflightFailed {
                error: "Prometheus did not answer".to_owned(),
                bad_input: false,
            },
            at(started),
        );
        rollout
    }

    /// Known limit of 2026-12-01 (docs/reliability.md): a rollout that ended with exit 4
    /// before taking a `promote` was printed as its failure alone, as if it were the answer
    /// to the promote. It now says the promote was not applied, and to ask again.
    #[test]
    fn a_rollout_that_ended_before_taking_the_request_says_it_was_not_applied() {
        let machine = machine();
        let rollout = failed_at_preflight(&machine, "rel-1", 0);
        let request = ControlRequest::for_rollout(ControlAction::Promote, &rollout, at(1));
        let Seen::Ended(outcome) = Seen::of(&rollout, &request) else {
            panic!("ended: {:?}", Seen::of(&rollout, &request));
        };
        assert_eq!(outcome.exit, ExitCode::Infrastructure);
        let message = ended_message("checkout", &request, outcome, &Withdrawal::Withdrawn);
        assert!(
            message.contains("before it took the promote, which was not applied"),
            "{message}"
        );
        assert!(message.contains("run `canary promote` again"), "{message}");
        assert!(message.contains("Prometheus did not answer"), "{message}");
        // Taken: the outcome is the answer.
        let message = ended_message("checkout", &request, outcome, &Withdrawal::Taken);
        assert!(!message.contains("not applied"), "{message}");
    }

    /// Review finding (2026-12-01): a request another one had replaced was reported as
    /// applied (`withdraw(..) != Withdrawn`), its message the rollout's outcome alone.
    #[test]
    fn a_replaced_request_is_never_reported_as_applied() {
        let machine = machine();
        let rollout = failed_at_preflight(&machine, "rel-1", 0);
        let mine = ControlRequest::for_rollout(ControlAction::Promote, &rollout, at(1));
        let theirs = ControlRequest::for_rollout(
            ControlAction::Abort {
                reason: "theirs".to_owned(),
            },
            &rollout,
            at(2),
        );
        let Seen::Ended(outcome) = Seen::of(&rollout, &mine) else {
            panic!("ended");
        };
        let replaced = Withdrawal::Replaced(theirs);
        let message = ended_message("checkout", &mine, outcome, &replaced);
        assert!(
            message.starts_with(&format!(
                "checkout: this promote may not have been applied: another request (an abort requested at {}) is in its place; the rollout ended: ",
                at(2)
            )),
            "{message}"
        );
        assert_ne!(
            message,
            ended_message("checkout", &mine, outcome, &Withdrawal::Taken)
        );
        let message = replaced_message(
            "checkout",
            &mine,
            &Some("rel-2".to_owned()),
            at(30),
            &replaced,
        );
        assert!(
            message.contains("the promote may not have been applied: another request (an abort"),
            "{message}"
        );
        assert!(!message.contains("it took the promote"), "{message}");
    }

    /// Known limit of 2026-12-01: while `promote`/`abort` waited, a new rollout replacing
    /// the one its request was bound to went unnoticed until the 60 s deadline, which then
    /// said "the driver took the request and is still acting on it".
    #[test]
    fn a_new_rollout_in_place_of_the_requests_is_seen_at_once_and_named() {
        let machine = machine();
        let old = machine.start(at(0), Some("rel-1".to_owned()));
        let request = ControlRequest::for_rollout(
            ControlAction::Abort {
                reason: "by hand".to_owned(),
            },
            &old,
            at(1),
        );
        assert_eq!(Seen::of(&old, &request), Seen::Acting);
        let new = machine.start(at(30), Some("rel-2".to_owned()));
        assert_eq!(
            Seen::of(&new, &request),
            Seen::Replaced {
                id: Some("rel-2".to_owned()),
                started_at: at(30)
            }
        );
        // The same id started again is another rollout too.
        let rerun = machine.start(at(40), Some("rel-1".to_owned()));
        assert!(matches!(Seen::of(&rerun, &request), Seen::Replaced { .. }));
        let message = replaced_message(
            "checkout",
            &request,
            &Some("rel-2".to_owned()),
            at(30),
            &Withdrawal::Withdrawn,
        );
        assert!(message.contains("(id rel-1, started"), "{message}");
        assert!(message.contains("rollout rel-2 started"), "{message}");
        assert!(
            message.contains("the abort was not applied (and is withdrawn)"),
            "{message}"
        );
    }

    /// The request is withdrawn only when it is still the asker's: a driver that took it,
    /// or another request that replaced it, is left as it is.
    #[test]
    fn withdrawing_leaves_a_taken_or_replaced_request_alone() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path(), "checkout");
        let machine = machine();
        let rollout = machine.start(at(0), Some("rel-1".to_owned()));
        let mine = ControlRequest::for_rollout(ControlAction::Promote, &rollout, at(1));
        let theirs = ControlRequest::for_rollout(
            ControlAction::Abort {
                reason: "theirs".to_owned(),
            },
            &rollout,
            at(2),
        );
        runtime.block_on(async {
            assert_eq!(withdraw(&store, &mine).await.unwrap(), Withdrawal::Taken);
            store.request(&mine).await.unwrap();
            assert_eq!(
                withdraw(&store, &mine).await.unwrap(),
                Withdrawal::Withdrawn
            );
            assert_eq!(store.take_request().await.unwrap(), None);
            store.request(&theirs).await.unwrap();
            assert_eq!(
                withdraw(&store, &mine).await.unwrap(),
                Withdrawal::Replaced(theirs.clone())
            );
            assert_eq!(store.take_request().await.unwrap(), Some(theirs.clone()));
        });
    }
}
