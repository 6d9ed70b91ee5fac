//! `canary promote` and `canary abort`: act on a rollout from another shell. If a process is
//! driving the rollout, the request is left for it (it acts within a second); otherwise
//! this command drives the rollout itself to the end of the requested action.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use canary_core::ExitCode;
use canary_core::rollout::{ControlRequest, Machine};
use clap::Args;
use jiff::Timestamp;

use super::StateArgs;
use super::rollout::drive;
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
            // Someone drives the rollout: leave the request for them.
            if matches!(err, canary_core::Error::Mismatch { .. }) {
                store.request(&request).await?;
                println!(
                    "asked the process driving the rollout of {} to act; it does within a second ({err})",
                    policy.service
                );
                return Ok(ExitCode::Passed);
            }
            return Err(err.into());
        }
        let Some(mut rollout) = store.load().await? else {
            return Err(canary_core::Error::Usage(format!("no rollout of {} in {}", policy.service, store.describe())).into());
        };
        if rollout.phase.is_terminal() {
            return Err(canary_core::Error::Usage(format!(
                "the rollout of {} already finished ({})",
                policy.service,
                rollout.phase.name()
            ))
            .into());
        }
        let machine = Machine::new(policy.clone())?;
        machine.check_resumable(&rollout)?;
        let mut progress = Progress::new(false);
        let outcome = drive(
            &machine,
            store.as_ref(),
            &mut rollout,
            request.into(),
            prometheus,
            &mut progress,
            None,
        )
        .await?;
        store.release().await?;
        println!("{}: {} (at {})", policy.service, outcome.reason, Timestamp::now());
        Ok(outcome.exit)
    })
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
