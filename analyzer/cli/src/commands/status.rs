//! `canary status`: where a service's rollout stands, from its state file; with `--watch`,
//! the live view of a rollout another process drives, redrawn until it ends.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use canary_core::ExitCode;
use canary_core::policy::Policy;
use canary_core::ports::StateStore;
use canary_core::rollout::Phase;
use clap::Args;

use super::StateArgs;
use crate::progress::Progress;

/// How often `--watch` asks who drives the rollout. The file store answers by probing the
/// rollout's lock, so it is asked seldom: a rollout starting in the same instant as a probe
/// would find its lock taken.
const HOLDER_EVERY: Duration = Duration::from_secs(5);

/// How many answers in a row of "no process drives it", with no outcome saved, before
/// `--watch` concludes the rollout was stopped (interrupted or killed).
const UNDRIVEN_ANSWERS: u32 = 2;

#[derive(Debug, Args)]
pub(crate) struct StatusCommand {
    /// The service's policy file (or give `--service` or `--kube`).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["service", "kube"])]
    policy: Option<PathBuf>,

    /// The service's name.
    #[arg(long, conflicts_with = "policy")]
    service: Option<String>,

    /// A `CanaryRollout` that `canary controller` carries out, as NAMESPACE/NAME: its
    /// rollout (its policy and state are the resource's).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["policy", "service"])]
    kube: Option<String>,

    #[command(flatten)]
    state: StateArgs,

    /// Print the whole saved state as JSON.
    #[arg(long, conflicts_with = "watch")]
    json: bool,

    /// Follow the rollout as it goes (the live view `canary rollout` shows on a terminal;
    /// one line per change elsewhere) until it ends, then exit with the rollout's exit code.
    #[arg(long)]
    watch: bool,

    /// How often `--watch` reads the state.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval, requires = "watch")]
    interval: Duration,
}

/// A watch interval: a duration from 100 ms to 1 h (a tighter loop would only load the
/// state store).
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text)
        .map_err(|err| format!("{err}; expected a duration such as 1s or 500ms"))?;
    if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
        return Err(format!(
            "{text} is out of range; give a duration from 100ms to 1h"
        ));
    }
    Ok(interval)
}

impl StatusCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        let runtime = super::runtime()?;
        let (policy, store) = match &self.kube {
            Some(kube) => {
                let rollout = runtime.block_on(super::open_kube_rollout(
                    kube,
                    self.state.kube_context.clone(),
                    self.state.claim_ttl,
                ))?;
                (Some(rollout.policy), Some(rollout.store))
            }
            None => match &self.policy {
                Some(path) => (Some(super::load_policy(path)?), None),
                None => (None, None),
            },
        };
        let service = match (&self.service, &policy) {
            (_, Some(policy)) => policy.service.clone(),
            (Some(service), None) => service.clone(),
            (None, None) => unreachable!("clap requires one"),
        };
        // How many analysed steps there are is the policy's to say (the state only has
        // the steps run so far).
        let of_steps = policy
            .as_ref()
            .map(|p| format!("/{}", p.rollout.analysed_steps().len()))
            .unwrap_or_default();
        let store = match store {
            Some(store) => store,
            None => self.state.open(&service)?,
        };
        if self.watch {
            return runtime.block_on(watch(
                &service,
                policy.as_ref(),
                store.as_ref(),
                self.interval,
            ));
        }
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
            "{service}: phase {}, canary at {} % ({driving})",
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
                    "  step {}{of_steps} at {weight} %{}{}",
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
                "  step {} {:>3} %  {}  {}{}",
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

/// `--watch`: the live view of the rollout in `store` until it ends; its exit code then.
///
/// It ends when the state carries an outcome (promoted, rolled back, held, stopped on an
/// error), or when no process has driven it for two answers in a row and it has none (the
/// driving process was interrupted or killed: exit 130, as that process's own; `canary
/// rollout` resumes it). With no rollout saved yet it waits for one.
async fn watch(
    service: &str,
    policy: Option<&Policy>,
    store: &dyn StateStore,
    interval: Duration,
) -> anyhow::Result<ExitCode> {
    let mut progress = Progress::new(false);
    if let Some(policy) = policy {
        progress.set_policy(policy);
    }
    let mut waiting_said = false;
    let mut undriven = 0;
    let mut holder: Option<String> = None;
    let mut holder_asked: Option<Instant> = None;
    loop {
        match store.load().await? {
            None => {
                if !waiting_said {
                    eprintln!(
                        "{service}: no rollout yet ({}); waiting for one to start",
                        store.describe()
                    );
                    waiting_said = true;
                }
            }
            Some(rollout) => {
                if let Some(outcome) = rollout.outcome() {
                    progress.watch(&rollout, holder.clone());
                    progress.finish();
                    super::print_stdout(&format!(
                        "{service}: {} (exit {})\n",
                        crate::render::one_line(&outcome.reason),
                        outcome.exit.code()
                    ))?;
                    return Ok(outcome.exit);
                }
                if holder_asked.is_none_or(|at| at.elapsed() >= HOLDER_EVERY) {
                    holder = store.holder().await?.map(|h| format!("driven by {h}"));
                    holder_asked = Some(Instant::now());
                    undriven = if holder.is_none() { undriven + 1 } else { 0 };
                }
                progress.watch(&rollout, holder.clone());
                if undriven >= UNDRIVEN_ANSWERS {
                    progress.finish();
                    super::print_stdout(&format!(
                        "{service}: no process drives the rollout and it has not ended (phase {}): it was interrupted or its process stopped; `canary rollout` resumes it (exit 130)\n",
                        rollout.phase().name()
                    ))?;
                    return Ok(ExitCode::Interrupted);
                }
            }
        }
        tokio::time::sleep(interval).await;
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
