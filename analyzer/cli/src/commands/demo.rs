//! `canary demo`: the whole product on this machine with nothing installed.
//!
//! In one process: a stable and a canary version of the demo service, a weighted proxy in
//! front of them, a load generator sending traffic through the proxy, and the real rollout —
//! the policy file (written out for you to read), the state machine, the judge, the driver and
//! the reports — reading the services' `/metrics` directly (no Prometheus server) and moving
//! the proxy's weights. Healthy by default: the canary is promoted in about a minute.
//! `--fault errors=5%` or `--fault latency=+200ms` shows an automatic rollback in the first
//! step.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use canary_core::ExitCode;
use canary_core::policy::Policy;
use canary_core::ports::{StateStore, TrafficRouter};
use canary_core::rollout::{Event, Machine};
use canary_demo::{CanaryWeightControl, DemoServiceConfig, DemoStack, DemoStackConfig};
use clap::Args;
use jiff::Timestamp;

use super::rollout::{Drive, drive};
use crate::progress::Progress;
use crate::render::{self, Format, OutputSpec};
use canary_gateways::FileStateStore;

/// The error rate of both demo versions before any fault.
const BASE_ERROR_RATE: f64 = 0.002;

#[derive(Debug, Args)]
pub(crate) struct DemoCommand {
    /// Inject a fault into the canary: `errors=5%` or `latency=+200ms`.
    #[arg(long, value_name = "FAULT")]
    fault: Option<Fault>,

    /// How long each analysed step lasts.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    step: Duration,

    /// Requests per second through the proxy.
    #[arg(long, default_value_t = 200)]
    rps: u32,

    /// Where the policy, the state and the reports go.
    #[arg(long, value_name = "DIR", default_value = "target/canary-demo")]
    dir: PathBuf,

    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

/// A fault for the canary.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// This fraction of requests fail with 500.
    Errors(f64),
    /// Every request takes this much longer.
    Latency(Duration),
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = "expected errors=5% or latency=+200ms";
        let (kind, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{expected}, not {text:?}"))?;
        match kind.trim() {
            "errors" => {
                let percent = value
                    .trim()
                    .strip_suffix('%')
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| {
                        format!(
                            "{expected}: errors takes a percentage from 0% to 100%, not {value:?}"
                        )
                    })?;
                Ok(Fault::Errors(percent / 100.0))
            }
            "latency" => {
                let duration = humantime::parse_duration(value.trim().trim_start_matches('+'))
                    .map_err(|_| {
                        format!("{expected}: latency takes a duration like +200ms, not {value:?}")
                    })?;
                Ok(Fault::Latency(duration))
            }
            other => Err(format!("{expected}; unknown fault {other:?}")),
        }
    }
}

/// The in-process proxy as a traffic router: the demo's gateway.
struct DemoProxyRouter {
    control: CanaryWeightControl,
    address: String,
}

#[async_trait]
impl TrafficRouter for DemoProxyRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        self.control.set_canary_weight(weight).map_err(|err| {
            canary_core::Error::unavailable("demo proxy", &self.address, err.to_string())
        })
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        Ok(self.control.canary_weight())
    }

    fn describe(&self) -> String {
        format!("the demo's weighted proxy at {}", self.address)
    }
}

impl DemoCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        let runtime = super::runtime()?;
        runtime.block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<ExitCode> {
        // Both versions fail a little (0.2 %), as real services do; a fault replaces that.
        let mut canary = DemoServiceConfig::canary()
            .with_seed(2)
            .with_error_rate(BASE_ERROR_RATE);
        match self.fault {
            Some(Fault::Errors(rate)) => canary = canary.with_error_rate(rate),
            Some(Fault::Latency(extra)) => canary = canary.with_added_latency(extra),
            None => {}
        }
        let stack = DemoStack::start(DemoStackConfig {
            stable: DemoServiceConfig::stable()
                .with_seed(1)
                .with_error_rate(BASE_ERROR_RATE),
            canary,
            rps: f64::from(self.rps),
            ..DemoStackConfig::default()
        })
        .await
        .context("starting the demo services")?;
        let mut progress = Progress::new(self.quiet);
        progress.line(&format!(
            "demo: stable at {}, canary at {}{}, proxy at {}, {} requests/s",
            stack.stable().base_url(),
            stack.canary().base_url(),
            match self.fault {
                Some(Fault::Errors(rate)) => format!(" (fault: {}% errors)", rate * 100.0),
                Some(Fault::Latency(extra)) =>
                    format!(" (fault: +{} latency)", humantime::format_duration(extra)),
                None => String::new(),
            },
            stack.proxy().base_url(),
            self.rps
        ));

        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let policy_path = self.dir.join("demo-policy.yaml");
        let yaml = demo_policy(
            &stack.stable().metrics_url(),
            &stack.canary().metrics_url(),
            self.step,
        );
        std::fs::write(&policy_path, &yaml)
            .with_context(|| format!("writing {}", policy_path.display()))?;
        let policy = Policy::from_yaml(&yaml, &policy_path.display().to_string())?;
        progress.line(&format!(
            "policy: {} (the real thing: `canary policy lint` it)",
            policy_path.display()
        ));

        let machine = Machine::new(policy.clone())?;
        let state_dir = self.dir.join("state");
        // Every demo starts afresh.
        let _ = std::fs::remove_file(state_dir.join("demo.json"));
        let store = FileStateStore::new(&state_dir, &policy.service);
        store.claim(false).await?;
        let router = DemoProxyRouter {
            control: stack.proxy().weight_control(),
            address: stack.proxy().base_url(),
        };
        let mut rollout = machine.start(Timestamp::now(), None);
        let driven = drive(
            &machine,
            &store,
            &mut rollout,
            &mut progress,
            Drive {
                first: Event::Resume,
                prometheus: None,
                router: Some(&router),
                metrics: None,
                rollback_retry_for: super::rollout::ROLLBACK_RETRY_FOR,
            },
        )
        .await?;
        let outcome = driven.outcome;
        progress.finish();
        drop(progress);
        let load = stack
            .shutdown()
            .await
            .context("stopping the demo services")?;

        let report = rollout.report(
            &policy,
            &policy_path.display().to_string(),
            "direct /metrics scrapes of the demo services",
            Timestamp::now(),
            Some(&outcome),
        );
        let html = self.dir.join("report.html");
        render::write_all(
            &report,
            &[
                OutputSpec {
                    format: Format::Json,
                    path: self.dir.join("report.json"),
                },
                OutputSpec {
                    format: Format::Markdown,
                    path: self.dir.join("report.md"),
                },
                OutputSpec {
                    format: Format::Html,
                    path: html.clone(),
                },
            ],
        )?;
        if !self.quiet {
            render::print_summary(&report, &[]);
            println!("load: {load}");
        }
        let shown = html.canonicalize().unwrap_or(html);
        println!("report: {}", shown.display());
        Ok(outcome.exit)
    }
}

/// The demo's policy: the same file format as `policies/`, reading the services directly.
fn demo_policy(stable_metrics: &str, canary_metrics: &str, step: Duration) -> String {
    let step_seconds = step.as_secs().max(1);
    format!(
        r#"# The policy `canary demo` runs (written by it; lint it, copy it, change it).
service: demo
traffic:
  label: version
  canary: canary
  baseline: stable
metrics:
  scrape:
    canary: ["{canary_metrics}"]
    baseline: ["{stable_metrics}"]
    timeout: 2s
rollout:
  steps: [10, 25, 50, 100]
  step-duration: {step_seconds}s
  max-step-duration: {max}s
  interval: 1s
  min-requests: 50
  alpha: 1%
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 1%
    baseline:
      max-increase: 0%
  - name: latency
    latency:
      histogram: http_request_duration_seconds
      quantile: p95
    slo:
      max: 100ms
    baseline:
      max-increase: 25%
"#,
        max = step_seconds * 3
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_refuse() {
        assert_eq!("errors=5%".parse::<Fault>(), Ok(Fault::Errors(0.05)));
        assert_eq!(
            "latency=+200ms".parse::<Fault>(),
            Ok(Fault::Latency(Duration::from_millis(200)))
        );
        assert!("errors=5".parse::<Fault>().is_err());
        assert!("errors=150%".parse::<Fault>().is_err());
        assert!("cpu=90%".parse::<Fault>().is_err());
        assert!("latency".parse::<Fault>().is_err());
    }

    #[test]
    fn the_demo_policy_is_a_valid_policy() {
        let yaml = demo_policy(
            "http://127.0.0.1:1/metrics",
            "http://127.0.0.1:2/metrics",
            Duration::from_secs(15),
        );
        let policy = Policy::from_yaml(&yaml, "demo-policy.yaml").unwrap();
        assert_eq!(policy.rollout.steps, [10, 25, 50, 100]);
        assert_eq!(policy.criteria_count(), 4);
    }
}
