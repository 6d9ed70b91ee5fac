//! `canary rollout`: drive one service's rollout from its first step to promotion or
//! rollback, resuming a rollout in progress.

use std::path::PathBuf;

use anyhow::Context;
use canary_core::ExitCode;
use canary_core::policy::Policy;
use canary_core::ports::{StateStore, SystemClock, TrafficRouter};
use canary_core::rollout::{Event, Machine, Outcome, Rollout};
use clap::Args;
use jiff::Timestamp;

use super::StateArgs;
use crate::driver::{Driver, Interrupts};
use crate::progress::Progress;
use crate::render::{self, OutputSpec};
use crate::self_metrics::SelfMetrics;

#[derive(Debug, Args)]
pub(crate) struct RolloutCommand {
    /// The service's policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,

    #[command(flatten)]
    state: StateArgs,

    /// Prometheus base URL (overrides the policy's `metrics.prometheus.url`).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,

    /// This rollout's identifier (a CI pipeline id, the canary's version). A saved rollout
    /// with the same id is resumed (or, if finished, reported again); a finished one with
    /// another id is archived and a new one starts; one in progress with another id is an
    /// error.
    #[arg(long, value_name = "ID", env = "CANARY_ROLLOUT_ID")]
    id: Option<String>,

    /// Start a new rollout even if the last one of this service finished (it is archived).
    #[arg(long)]
    restart: bool,

    /// Drive the rollout even if the state store says another driver holds it (for a driver
    /// known to be gone, e.g. a CI job killed on another runner; see `canary status`).
    #[arg(long)]
    take_over: bool,

    /// Serve this rollout's own Prometheus metrics (weight, step, phase, verdicts, rollbacks,
    /// query errors and latency) at http://ADDR/metrics while it runs, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR", env = "CANARY_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Write a report: FORMAT:PATH with FORMAT one of json, markdown, junit, html; PATH `-`
    /// is standard output (one report at most; the summary then goes to standard error).
    /// Repeatable.
    /// The markdown report is also appended to $GITHUB_STEP_SUMMARY when that is set.
    #[arg(long = "output", value_name = "FORMAT:PATH")]
    outputs: Vec<OutputSpec>,

    /// No progress lines, only decisions and errors.
    #[arg(long, short)]
    quiet: bool,

    /// How long a rollback keeps trying to set the canary's weight to 0 when the gateway
    /// fails (with a doubling pause, 0.5 s up to 10 s) before it gives up with exit 4.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = super::analyze::parse_duration, env = "CANARY_ROLLBACK_RETRY_FOR")]
    rollback_retry_for: std::time::Duration,

    /// Change nothing: run the pre-flight (one read of the gateway's weight and of every
    /// check) and print the plan — steps, queries, bounds. Exit 0 when the rollout could
    /// start, 4 when the pre-flight fails, 2 for a policy it cannot run.
    #[arg(long)]
    dry_run: bool,
}

impl RolloutCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        render::check_outputs(&self.outputs)?;
        let policy = super::load_policy(&self.policy)?;
        if self.dry_run {
            return super::runtime()?.block_on(self.dry_run(&policy));
        }
        let metrics = SelfMetrics::new(&policy.service, self.id.as_deref());
        let store = metrics.meter_store(self.state.open(&policy.service)?);
        let runtime = super::runtime()?;
        runtime.block_on(async {
            let serving = match self.metrics_addr {
                Some(addr) => Some(metrics.serve(addr).await?),
                None => None,
            };
            store
                .claim(self.take_over)
                .await
                .map_err(|err| claimed_elsewhere(err, &self.policy))?;
            // Whatever happens next, the claim is given back: a rerun on another runner must
            // not find it held by a process that has already stopped.
            let result = self
                .run_claimed(&policy, store.as_ref(), &metrics, serving)
                .await;
            if let Err(err) = store.release().await {
                eprintln!("warning: could not release the rollout's claim: {err}");
            }
            result
        })
    }

    async fn run_claimed(
        &self,
        policy: &Policy,
        store: &dyn StateStore,
        metrics: &SelfMetrics,
        serving: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<ExitCode> {
        {
            let mut progress = Progress::new(self.quiet);
            if let Some(bound) = serving {
                progress.line(&format!(
                    "serving the rollout's metrics at http://{bound}/metrics"
                ));
            }
            let machine = Machine::new(policy.clone())?;
            let fresh = |now| machine.start(now, self.id.clone());
            let (mut rollout, first) = match store.load().await? {
                Some(saved) => {
                    let other_id = self.id.is_some() && saved.id() != self.id.as_deref();
                    if saved.phase().is_terminal() && (self.restart || other_id) {
                        let archived = store.archive(&saved).await?;
                        progress.line(&format!("archived the finished rollout to {archived}"));
                        (fresh(Timestamp::now()), Event::Resume)
                    } else if !saved.phase().is_terminal() && (self.restart || other_id) {
                        return Err(canary_core::Error::Usage(format!(
                            "a rollout of {} (id {}) is in progress (phase {}): resume it, or `canary abort` it first",
                            policy.service,
                            saved.id().unwrap_or("none"),
                            saved.phase().name()
                        ))
                        .into());
                    } else if saved.phase().is_terminal() && self.id.is_none() {
                        // Without an id, a new version's rollout cannot be told from a rerun of
                        // the finished one: never answer a new canary with an old verdict.
                        return Err(canary_core::Error::Usage(format!(
                            "the last rollout of {} finished ({}, started {}); pass --id to tell a rerun from a new rollout, or --restart to start a new one",
                            policy.service,
                            saved.phase().name(),
                            saved.started_at()
                        ))
                        .into());
                    } else {
                        machine
                            .validate(&saved, Timestamp::now())
                            .map_err(|e| in_store(e, store))?;
                        if !saved.phase().is_terminal() {
                            progress.line(&format!(
                                "resuming the rollout of {} started {} (phase {}, canary at {} %)",
                                saved.service(),
                                saved.started_at(),
                                saved.phase().name(),
                                saved.current_weight()
                            ));
                        }
                        (saved, Event::Resume)
                    }
                }
                None => (fresh(Timestamp::now()), Event::Resume),
            };
            let driven = match drive(
                &machine,
                store,
                &mut rollout,
                &mut progress,
                Drive {
                    first,
                    prometheus: self.prometheus.as_deref(),
                    router: None,
                    metrics: Some(metrics),
                    rollback_retry_for: self.rollback_retry_for,
                },
            )
            .await
            {
                Ok(driven) => driven,
                Err(err) => return Err(self.report_failure(policy, &rollout, err)),
            };
            let report = rollout.report(
                policy,
                &self.policy.display().to_string(),
                &driven.source,
                Timestamp::now(),
                Some(&driven.outcome),
            );
            if !self.quiet {
                render::print_summary(&report, &self.outputs);
            }
            // The rollout has ended; a report that cannot be written does not change how.
            render::write_all_or_warn(&report, &self.outputs);
            Ok(driven.outcome.exit)
        }
    }
}

impl RolloutCommand {
    /// `--dry-run`: the plan and the pre-flight, with no claim, no state and no weight
    /// written.
    async fn dry_run(&self, policy: &Policy) -> anyhow::Result<ExitCode> {
        use std::fmt::Write as _;
        let source = super::metrics_source(policy, self.prometheus.as_deref())?;
        let gateway = policy.gateway.as_ref().ok_or_else(|| {
            canary_core::Error::Usage(format!(
                "the policy of {} has no `gateway`: `canary rollout` needs one (see docs/policy-reference.md)",
                policy.service
            ))
        })?;
        let router = crate::adapters::router_for(gateway)?;
        let rollout = &policy.rollout;
        let mut plan = format!(
            "# dry run of the rollout of {}: nothing is changed
# Gateway: {}
# Steps (canary weight): ",
            policy.service,
            router.describe()
        );
        let steps: Vec<String> = rollout.steps.iter().map(|w| format!("{w} %")).collect();
        let _ = writeln!(plan, "{}", steps.join(" → "));
        let _ = writeln!(
            plan,
            "# Each step: at least {}, at most {}, a tick every {}; α {} split over {} criteria",
            humantime::format_duration(rollout.step_duration),
            humantime::format_duration(rollout.max_step_duration),
            humantime::format_duration(rollout.interval),
            rollout.alpha,
            policy.criteria_count()
        );
        let _ = writeln!(plan, "# Bounds:");
        if let Ok(nothing_yet) = canary_core::analysis::analyze(policy, &[]) {
            for check in nothing_yet.assessment.checks {
                let threshold = check
                    .evidence
                    .threshold
                    .map_or_else(|| "—".to_owned(), canary_core::judge::fmt_num);
                let _ = writeln!(
                    plan,
                    "#   {}: {} ≤ {threshold}",
                    check.name, check.evidence.measure
                );
            }
        }
        plan.push_str(&super::policy::explain(policy, None));
        print!("{plan}");
        let now = Timestamp::now();
        match crate::driver::preflight_reads(router.as_ref(), source.as_ref(), now).await {
            Ok(()) => {
                println!(
                    "
pre-flight passed: the gateway and every check could be read; nothing was changed"
                );
                Ok(ExitCode::Passed)
            }
            Err((error, code)) => {
                eprintln!("pre-flight failed: {error}; nothing was changed");
                Ok(code)
            }
        }
    }

    /// A drive that stopped on an infrastructure failure (exit 4: the state store, the
    /// metrics source or the gateway failing where the machine could not decide) still
    /// writes the requested reports, with the rollout as it stood, verdict `error` and the
    /// failure as the reason. Bad input (exit 2) writes none. Returns the error.
    fn report_failure(
        &self,
        policy: &Policy,
        rollout: &Rollout,
        err: anyhow::Error,
    ) -> anyhow::Error {
        let code = crate::app::exit_code_of(&err);
        if code != ExitCode::Infrastructure {
            return err;
        }
        let stopped = Outcome {
            exit: code,
            verdict: canary_core::report::RunVerdict::Error,
            reason: format!("the rollout stopped on an infrastructure failure: {err:#}"),
        };
        let report = rollout.report(
            policy,
            &self.policy.display().to_string(),
            &super::describe_metrics_source(policy, self.prometheus.as_deref()),
            Timestamp::now(),
            Some(&stopped),
        );
        render::write_all_or_warn(&report, &self.outputs);
        err
    }
}

/// A saved state's problem, with where the state is kept.
pub(crate) fn in_store(err: canary_core::Error, store: &dyn StateStore) -> canary_core::Error {
    match err {
        canary_core::Error::Usage(message) => {
            canary_core::Error::Usage(format!("{}: {message}", store.describe()))
        }
        other => other,
    }
}

/// A claim refused because another process drives the rollout, with what `canary rollout`
/// can do about it (other commands that claim say their own next step).
fn claimed_elsewhere(err: canary_core::Error, policy: &std::path::Path) -> canary_core::Error {
    let policy = policy.display();
    match err {
        canary_core::Error::Mismatch { component, message } => canary_core::Error::Mismatch {
            component,
            message: format!(
                "{message}. `canary status --policy {policy}` shows where it is; `canary promote --policy {policy}` or `canary abort --policy {policy}` act on it"
            ),
        },
        other => other,
    }
}

/// How a rollout is driven: where it starts and what it talks to.
pub(crate) struct Drive<'a> {
    pub(crate) first: Event,
    /// `--prometheus`, overriding the policy's URL.
    pub(crate) prometheus: Option<&'a str>,
    /// A router instead of the policy's gateway (the demo's in-process proxy).
    pub(crate) router: Option<&'a dyn TrafficRouter>,
    pub(crate) metrics: Option<&'a SelfMetrics>,
    /// How long setting weight 0 in a rollback is retried.
    pub(crate) rollback_retry_for: std::time::Duration,
}

/// How long a rollback retries setting weight 0 unless told otherwise (`--rollback-retry-for`).
pub(crate) const ROLLBACK_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// What a drive ended with.
pub(crate) struct Driven {
    pub(crate) outcome: Outcome,
    /// The metrics source, described without secrets (for reports).
    pub(crate) source: String,
}

/// Builds the ports of `machine`'s policy and runs the rollout to its end.
pub(crate) async fn drive(
    machine: &Machine,
    store: &dyn StateStore,
    rollout: &mut Rollout,
    progress: &mut Progress,
    how: Drive<'_>,
) -> anyhow::Result<Driven> {
    let policy = machine.policy();
    let source = super::metrics_source(policy, how.prometheus)?;
    let built;
    let router: &dyn TrafficRouter = match how.router {
        Some(router) => router,
        None => {
            let gateway = policy.gateway.as_ref().ok_or_else(|| {
                canary_core::Error::Usage(format!(
                    "the policy of {} has no `gateway`: `canary rollout` needs one (see docs/policy-reference.md)",
                    policy.service
                ))
            })?;
            built = crate::adapters::router_for(gateway)?;
            built.as_ref()
        }
    };
    if let Some(checkpoint) = rollout.source_checkpoint() {
        source.restore(checkpoint).await?;
    }
    let hooks = canary_gateways::HookRunner::new().map_err(|e| e.into_core())?;
    progress.set_policy(policy);
    let mut driver = Driver {
        machine,
        store,
        source: source.as_ref(),
        router,
        hooks: &hooks,
        progress,
        interrupts: Interrupts::install()?,
        request_looks: crate::driver::RequestLooks::Polled,
        metrics: how.metrics,
        notifier: canary_gateways::Notifier::new(&policy.notifications)
            .map_err(|e| e.into_core())?,
        clock: &SystemClock,
        rollback_retry_for: how.rollback_retry_for,
        promoter: None,
    };
    let outcome = driver.run(rollout, how.first).await;
    // The rollout has ended: the live view's last frame stays, and whatever the command
    // prints next (the summary, an error) comes below it.
    driver.progress.finish();
    let outcome = outcome.context("driving the rollout")?;
    Ok(Driven {
        outcome,
        source: source.describe(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `canary rollout` refused a claim: it says what to do next, none of it `canary rollout`
    /// again.
    #[test]
    fn a_claim_held_elsewhere_leads_to_status_promote_and_abort() {
        let err = claimed_elsewhere(
            canary_core::Error::Mismatch {
                component: "state",
                message: "a rollout of checkout is in progress, driven by another process (pid 7)"
                    .to_owned(),
            },
            std::path::Path::new("policies/checkout.yaml"),
        )
        .to_string();
        assert!(err.contains("pid 7"), "{err}");
        assert!(
            err.contains("`canary status --policy policies/checkout.yaml`"),
            "{err}"
        );
        assert!(
            err.contains("`canary abort --policy policies/checkout.yaml`"),
            "{err}"
        );
        assert!(!err.contains("canary rollout"), "{err}");
    }
}
