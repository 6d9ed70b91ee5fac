//! `canary policy lint | schema | explain`: check policy files, give editors their schema,
//! and show the exact PromQL a policy runs.

use std::path::PathBuf;

use canary_core::ExitCode;
use canary_core::policy::{CheckKind, MetricsSourceSpec, Policy};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check policy files; every problem is printed as FILE:LINE:COLUMN: FIELD: MESSAGE.
    Lint {
        /// The policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the policy file's JSON Schema (for editors: yaml-language-server and the like).
    Schema,
    /// Print, per check, the exact PromQL the policy runs at each tick (or, for a scrape
    /// source, the series it reads from the pages).
    Explain {
        /// The policy file.
        file: PathBuf,
        /// Render the queries as at this long after the analysis started (default: one
        /// step, `rollout.step-duration`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        window: Option<std::time::Duration>,
    },
}

impl PolicyCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        match self {
            PolicyCommand::Lint { files } => Ok(lint(&files)),
            PolicyCommand::Schema => {
                println!("{}", serde_json::to_string_pretty(&Policy::json_schema())?);
                Ok(ExitCode::Passed)
            }
            PolicyCommand::Explain { file, window } => {
                let policy = super::load_policy(&file)?;
                print!("{}", explain(&policy, window));
                Ok(ExitCode::Passed)
            }
        }
    }
}

/// Lints every file (not just up to the first bad one) and exits 2 if any is bad.
fn lint(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for file in files {
        let origin = file.display().to_string();
        let result = std::fs::read_to_string(file)
            .map_err(|err| format!("{origin}: cannot read: {err}"))
            .and_then(|text| Policy::from_yaml(&text, &origin).map_err(|err| err.to_string()))
            // A secret this environment holds that is too short to be redacted (issue 13).
            .and_then(|policy| {
                canary_core::secret::learn_secrets_of(&policy)
                    .map(|()| policy)
                    .map_err(|err| format!("{origin}: {err}"))
            });
        match result {
            Ok(policy) => println!(
                "ok {origin}: service {}, {} checks ({} criteria), steps {:?}",
                policy.service,
                policy.checks.len(),
                policy.criteria_count(),
                policy.rollout.steps
            ),
            Err(problems) => {
                bad += 1;
                eprintln!("{problems}");
            }
        }
    }
    if bad == 0 {
        ExitCode::Passed
    } else {
        eprintln!("{bad} of {} policy files have problems", files.len());
        ExitCode::BadInput
    }
}

/// What each check queries, as PromQL comments (`#`) and queries, so the output can be
/// pasted into Prometheus as it stands.
fn explain(policy: &Policy, window: Option<std::time::Duration>) -> String {
    use canary_metrics::queries::{self, QueryWindow};
    use std::fmt::Write as _;

    let window = window.unwrap_or(policy.rollout.step_duration);
    // The very window a tick at that time sends (the metrics crate rounds it down).
    let since = jiff::Timestamp::UNIX_EPOCH;
    let at = since + jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
    let query_window = QueryWindow::new(since, at, policy.rollout.interval);
    let seconds = query_window.window_seconds;
    let interval = humantime::format_duration(policy.rollout.interval);
    let mut out = String::new();
    let _ = writeln!(out, "# {}: {} checks", policy.service, policy.checks.len());
    match &policy.metrics {
        MetricsSourceSpec::Prometheus(spec) => {
            let url = spec.url.as_deref().map_or_else(
                || "(no url: give --prometheus URL)".to_owned(),
                canary_metrics::prometheus::strip_userinfo,
            );
            let _ = writeln!(
                out,
                "# Source: Prometheus at {url}. Every {interval}, one instant query per check\n\
                 # (POST /api/v1/query, time = the tick), each returning both versions."
            );
            let _ = writeln!(
                out,
                "# Counts are cumulative since the analysis started. The window [{seconds}s] below is\n\
                 # the one {} after the start; at run time it is the whole seconds since the start,\n\
                 # rounded down, and grows with every tick (--window DURATION shows another).",
                humantime::format_duration(std::time::Duration::from_secs(seconds))
            );
            let window = query_window;
            for check in &policy.checks {
                let _ = writeln!(
                    out,
                    "\n# {}: {}",
                    check.name,
                    queries::describe(check, &policy.traffic)
                );
                let _ = writeln!(
                    out,
                    "{}",
                    queries::check_query(check, &policy.traffic, window)
                );
            }
        }
        MetricsSourceSpec::Scrape(spec) => {
            let _ = writeln!(
                out,
                "# Source: direct scrapes every {interval}, no PromQL.\n\
                 # Canary: {}\n\
                 # Baseline: {}\n\
                 # Each instance's counter increases since the first scrape are summed per version\n\
                 # (a counter that goes down was reset: its new value counts).",
                spec.canary.join(", "),
                spec.baseline.join(", ")
            );
            let common: Vec<String> = policy
                .traffic
                .matchers
                .iter()
                .map(ToString::to_string)
                .collect();
            let common = common.join(", ");
            for check in &policy.checks {
                let line = match &check.kind {
                    CheckKind::ErrorRate(e) => {
                        let errors: Vec<String> =
                            e.error_matchers.iter().map(ToString::to_string).collect();
                        format!(
                            "requests: {}{{{common}}}; errors: those also matching {{{}}}",
                            e.requests_metric,
                            errors.join(", ")
                        )
                    }
                    CheckKind::Latency(l) => {
                        format!("buckets: {}_bucket{{{common}}} by le", l.histogram)
                    }
                    other => format!("a {} check cannot be read from a scrape", other.name()),
                };
                let _ = writeln!(out, "\n# {}: {line}", check.name);
            }
        }
    }
    out
}
