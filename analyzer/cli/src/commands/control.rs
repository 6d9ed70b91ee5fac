//! `canary promote` and `canary abort`: act on a rollout from another shell. If a process is
//! driving the rollout, the request is left for it (it acts within a second); otherwise
//! this command drives the rollout itself to the end of the requested action.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canary_core::ExitCode;
use canary_core::policy::Policy;
use canary_core::ports::{StateStore, TrafficRouter};
use canary_core::rollout::{CONTROL_WAIT, ControlAction, ControlRequest, Event, Machine, Rollout};
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

/// Waits until the rollout another process drives has finished, and exits as it did. A
/// driver that does not get there in time (gone, or stuck in a long hook) is exit 4, and
/// the request is withdrawn: nothing acts on it after its asker has given up.
async fn wait_for_the_driver(
    store: &dyn StateStore,
    service: &str,
    request: &ControlRequest,
) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + CONTROL_WAIT;
    loop {
        if let Some(rollout) = store.load().await?
            && let Some(outcome) = rollout.outcome()
            && rollout.hooks_pending().is_none()
            && !matches!(rollout.phase(), canary_core::rollout::Phase::Step { .. })
        {
            // Finished without taking the request (it ended for its own reasons first):
            // clear it, so that nothing is left behind to act on.
            if let Some(left) = store.take_request().await?
                && &left != request
            {
                store.request(&left).await?;
            }
            println!("{service}: {}", outcome.reason);
            return Ok(outcome.exit);
        }
        if Instant::now() >= deadline {
            // Withdraw the request, unless the driver took it meanwhile (or someone else's
            // replaced it: that one is put back).
            let withdrawn = match store.take_request().await? {
                Some(left) if &left == request => "the request was withdrawn",
                Some(other) => {
                    store.request(&other).await?;
                    "the request was replaced by another"
                }
                None => "the driver took the request and is still acting on it",
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
