//! `canary status`: where a service's rollout stands, from its state file.

use std::fmt::Write as _;
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
            super::print_stdout(&format!("{service}: no rollout ({})\n", store.describe()))?;
            return Ok(ExitCode::Passed);
        };
        if self.json {
            super::print_stdout(&format!("{}\n", rollout.to_json(true)?))?;
            return Ok(ExitCode::Passed);
        }
        let mut out = String::new();
        let driving = match runtime.block_on(store.holder())? {
            Some(holder) => format!("driven by {holder}"),
            None => "no process is driving it".to_owned(),
        };
        let _ = writeln!(
            out,
            "{service}: phase {}, canary at {}% ({driving})",
            rollout.phase().name(),
            rollout.current_weight()
        );
        let _ = writeln!(out, "  started {}", rollout.started_at());
        match rollout.phase() {
            Phase::Step {
                index,
                weight,
                started_at,
                extended,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "  step {}{of_steps} at {weight}%{}{}",
                    ordinal(*index),
                    started_at
                        .map(|t| format!(", since {t}"))
                        .unwrap_or_default(),
                    if *extended { ", extended" } else { "" }
                );
            }
            Phase::RollingBack { reason, .. }
            | Phase::RolledBack { reason, .. }
            | Phase::Held { reason, .. } => {
                let _ = writeln!(out, "  {reason}");
            }
            Phase::Failed { error, .. } => {
                let _ = writeln!(out, "  {error}");
            }
            _ => {}
        }
        for step in rollout.steps() {
            let _ = writeln!(
                out,
                "  step {} {:>3}%  {}  {}{}",
                ordinal(step.index),
                step.weight,
                step.decision,
                step.reason,
                step.canary_requests
                    .map(|n| format!(" ({n} canary requests)"))
                    .unwrap_or_default()
            );
        }
        if let Some(assessment) = rollout.last_assessment() {
            let _ = writeln!(
                out,
                "  latest assessment: {} — {}",
                assessment.verdict, assessment.reason
            );
            for check in &assessment.checks {
                let _ = writeln!(
                    out,
                    "    {:24} {:12} {}",
                    check.name,
                    check.verdict.as_str(),
                    check.reason
                );
            }
        }
        if let Some(outcome) = rollout.outcome() {
            let _ = writeln!(
                out,
                "  outcome: {} (exit {})",
                outcome.reason,
                outcome.exit.code()
            );
        }
        super::print_stdout(&out)?;
        Ok(ExitCode::Passed)
    }
}

/// A step's number for people (its index + 1), computed without overflow: `status` shows a
/// saved state as it is, before any validation, and a forged index must not panic it.
fn ordinal(index: usize) -> String {
    index.checked_add(1).map_or_else(
        || format!("{index} (0-based, out of range)"),
        |n| n.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::ordinal;

    #[test]
    fn a_forged_step_index_is_shown_without_overflow() {
        assert_eq!(ordinal(0), "1");
        assert_eq!(ordinal(2), "3");
        assert!(ordinal(usize::MAX).contains("out of range"));
    }
}
