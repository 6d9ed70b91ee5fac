//! `canary promote` and `canary abort`: act on a rollout from another shell. If a process is
//! driving the rollout, the request is left for it (it acts within a second); otherwise
//! this command drives the rollout itself to the end of the requested action.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canary_core::ExitCode;
use canary_core::policy::Policy;
use canary_core::ports::StateStore;
use canary_core::rollout::{ControlRequest, Machine};
use clap::Args;
use jiff::Timestamp;

use super::StateArgs;
use super::rollout::{Drive, drive};
use crate::progress::Progress;

#[derive(Debug, Args)]
pub(crate) struct PromoteCommand {
    /// The service's policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,

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
    /// The service's policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,

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
        let policy = super::load_policy(&self.policy)?;
        if !self.yes
            && !confirm(&format!(
                "Promote {} to 100% now, skipping the remaining analysis?",
                policy.service
            ))?
        {
            println!("not promoted");
            return Ok(ExitCode::BadInput);
        }
        act(
            &self.policy,
            &self.state,
            self.prometheus.as_deref(),
            ControlRequest::Promote,
        )
    }
}

impl AbortCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        act(
            &self.policy,
            &self.state,
            self.prometheus.as_deref(),
            ControlRequest::Abort {
                reason: self.reason,
            },
        )
    }
}

fn act(
    policy_path: &Path,
    state: &StateArgs,
    prometheus: Option<&str>,
    request: ControlRequest,
) -> anyhow::Result<ExitCode> {
    let policy = super::load_policy(policy_path)?;
    let store = state.open(&policy.service)?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        if let Err(err) = store.claim(false).await {
            // Someone drives the rollout: leave the request for them, and wait for the end.
            if matches!(err, canary_core::Error::Mismatch { .. }) {
                store.request(&request).await?;
                println!(
                    "asked the process driving the rollout of {} to act ({err})",
                    policy.service
                );
                return wait_for_the_driver(store.as_ref(), &policy.service).await;
            }
            return Err(err.into());
        }
        // Whatever happens, the claim is given back.
        let result = act_claimed(&policy, store.as_ref(), prometheus, request).await;
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
    prometheus: Option<&str>,
    request: ControlRequest,
) -> anyhow::Result<ExitCode> {
    let Some(mut rollout) = store.load().await? else {
        return Err(canary_core::Error::Usage(format!(
            "no rollout of {} ({})",
            policy.service,
            store.describe()
        ))
        .into());
    };
    if rollout.phase().is_terminal() {
        return Err(canary_core::Error::Usage(format!(
            "the rollout of {} already finished ({})",
            policy.service,
            rollout.phase().name()
        ))
        .into());
    }
    let machine = Machine::new(policy.clone())?;
    machine.check_resumable(&rollout)?;
    let mut progress = Progress::new(false);
    let driven = drive(
        &machine,
        store,
        &mut rollout,
        &mut progress,
        Drive {
            first: request.into(),
            prometheus,
            router: None,
            metrics: None,
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

/// How long `promote`/`abort` wait for the process driving the rollout to finish acting.
const DRIVER_WAIT: Duration = Duration::from_secs(60);

/// Waits until the rollout another process drives has finished, and exits as it did. A
/// driver that does not get there in time (gone, or stuck in a long hook) is exit 4, with
/// the request left for it.
async fn wait_for_the_driver(store: &dyn StateStore, service: &str) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + DRIVER_WAIT;
    loop {
        if let Some(rollout) = store.load().await?
            && let Some(outcome) = rollout.outcome()
            && rollout.hooks_pending().is_none()
            && !matches!(rollout.phase(), canary_core::rollout::Phase::Step { .. })
        {
            println!("{service}: {}", outcome.reason);
            return Ok(outcome.exit);
        }
        if Instant::now() >= deadline {
            return Err(canary_core::Error::Mismatch {
                component: "state",
                message: format!(
                    "the rollout of {service} has not finished acting within {}s; the request stays for its driver (`canary status` shows where it is; if that driver is gone, `canary rollout --take-over` resumes it)",
                    DRIVER_WAIT.as_secs()
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
