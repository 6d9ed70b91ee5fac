//! `canary status`: where a service's rollout stands, from its state file.

use std::path::PathBuf;

use canary_core::ExitCode;
use canary_core::rollout::Phase;
use clap::Args;

use super::StateArgs;

#[derive(Debug, Args)]
pub(crate) struct StatusCommand {
    /// The service's policy file (or give `--service`).
    #[arg(long, value_name = "FILE", required_unless_present = "service")]
    policy: Option<PathBuf>,

    /// The service's name.
    #[arg(long, conflicts_with = "policy")]
    service: Option<String>,

    #[command(flatten)]
    state: StateArgs,

    /// Print the whole saved state as JSON.
    #[arg(long)]
    json: bool,
}

impl StatusCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        let policy = match &self.policy {
            Some(path) => Some(super::load_policy(path)?),
            None => None,
        };
        let service = match (&self.service, &policy) {
            (Some(service), _) => service.clone(),
            (None, Some(policy)) => policy.service.clone(),
            (None, None) => unreachable!("clap requires one"),
        };
        // How many analysed steps there are is the policy's to say (the state only has
        // the steps run so far).
        let of_steps = policy
            .as_ref()
            .map(|p| format!(" of {}", p.rollout.analysed_steps().len()))
            .unwrap_or_default();
        let store = self.state.open(&service)?;
        let runtime = super::runtime()?;
        let Some(rollout) = runtime.block_on(store.load())? else {
            println!("{service}: no rollout ({})", store.describe());
            return Ok(ExitCode::Passed);
        };
        if self.json {
            println!("{}", rollout.to_json(true)?);
            return Ok(ExitCode::Passed);
        }
        let driving = match runtime.block_on(store.holder())? {
            Some(holder) => format!("driven by {holder}"),
            None => "no process is driving it".to_owned(),
        };
        println!(
            "{service}: phase {}, canary at {}% ({driving})",
            rollout.phase().name(),
            rollout.current_weight()
        );
        println!("  started {}", rollout.started_at());
        match rollout.phase() {
            Phase::Step {
                index,
                weight,
                started_at,
                extended,
                ..
            } => println!(
                "  step {}{of_steps} at {weight}%{}{}",
                index + 1,
                started_at
                    .map(|t| format!(", since {t}"))
                    .unwrap_or_default(),
                if *extended { ", extended" } else { "" }
            ),
            Phase::RollingBack { reason, .. }
            | Phase::RolledBack { reason, .. }
            | Phase::Held { reason, .. } => {
                println!("  {reason}")
            }
            Phase::Failed { error, .. } => println!("  {error}"),
            _ => {}
        }
        for step in rollout.steps() {
            println!(
                "  step {} {:>3}%  {}  {}{}",
                step.index + 1,
                step.weight,
                step.decision,
                step.reason,
                step.canary_requests
                    .map(|n| format!(" ({n} canary requests)"))
                    .unwrap_or_default()
            );
        }
        if let Some(assessment) = rollout.last_assessment() {
            println!(
                "  latest assessment: {} — {}",
                assessment.verdict, assessment.reason
            );
            for check in &assessment.checks {
                println!(
                    "    {:24} {:12} {}",
                    check.name,
                    check.verdict.as_str(),
                    check.reason
                );
            }
        }
        if let Some(outcome) = rollout.outcome() {
            println!(
                "  outcome: {} (exit {})",
                outcome.reason,
                outcome.exit.code()
            );
        }
        Ok(ExitCode::Passed)
    }
}
