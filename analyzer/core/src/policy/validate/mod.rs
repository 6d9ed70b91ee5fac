//! From the file as written ([`raw`](super::raw)) to the [`Policy`] the rest of canary uses.
//!
//! Parsing stops at the first syntax or type error (serde cannot go on after one); validation
//! then collects every semantic problem it finds, each with the line and column of the value
//! it is about, so that `canary policy lint` shows them all in one run.
//!
//! One [`Validator`] walks the policy; its rules live in one file per section of the policy:
//! [`traffic`], [`metrics`], [`rollout`], [`gateway`], [`kubernetes`] (the Kubernetes
//! gateways and the promotion), [`hooks`] (hooks and notifications) and [`checks`]. The rules
//! several sections share (durations, URLs, command placeholders) and the defaults are here.

mod checks;
mod gateway;
mod hooks;
mod kubernetes;
mod metrics;
mod rollout;
#[cfg(test)]
mod rule_table;
mod traffic;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Display;
use std::path::PathBuf;
use std::time::Duration;

use super::error::{PolicyError, Problem};
use super::matchers::{
    QueryTemplate, TemplateVariable, is_label_name, is_metric_name, parse_matchers,
};
use super::raw::*;
use super::units;
use super::*;

// The defaults of every section, in one place: an option left at its default keeps an
// unchanged policy's digest, so these never change silently.

/// Default analysed steps, then promotion at 100.
const DEFAULT_STEPS: [u8; 4] = [10, 25, 50, 100];
const DEFAULT_STEP_DURATION: Duration = Duration::from_secs(5 * 60);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_MIN_REQUESTS: u64 = 100;
const DEFAULT_ALPHA: f64 = 0.01;
const DEFAULT_MAX_FAILED_TICKS: u32 = 3;
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_QUANTILE: f64 = 0.95;
const DEFAULT_MIN_SAMPLES: usize = 10;
const DEFAULT_PROMOTION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub(super) fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    let raw = deserialize(text, origin)?;
    let mut validator = Validator::default();
    let policy = validator.policy(raw);
    match policy {
        Some(policy) if validator.problems.is_empty() => Ok(policy),
        _ => {
            validator
                .problems
                .sort_by_key(|p| (p.line.unwrap_or(u64::MAX), p.column.unwrap_or(0)));
            Err(PolicyError {
                file: origin.to_owned(),
                problems: validator.problems,
            })
        }
    }
}

/// Runs serde with path tracking, so that a type error names its field as well as its line.
fn deserialize(text: &str, origin: &str) -> Result<RawPolicy, PolicyError> {
    let path = RefCell::new(String::new());
    let result = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            *path.borrow_mut() = clean_path(&err.path().to_string());
            err.into_inner()
        })
    });
    result.map_err(|err| {
        let location = err.location();
        PolicyError {
            file: origin.to_owned(),
            problems: vec![Problem {
                line: location.map(|l| l.line()).filter(|&l| l > 0),
                column: location.map(|l| l.column()).filter(|&c| c > 0),
                path: path.into_inner(),
                message: bare_message(&err),
            }],
        }
    })
}

/// serde_path_to_error sees through our `Spanned` wrappers as `.value`; users never wrote that.
fn clean_path(path: &str) -> String {
    let cleaned = path.replace(".value", "");
    if cleaned == "." {
        String::new()
    } else {
        cleaned
    }
}

/// The error's own words, without the " at line N, column M" that we print in front instead.
fn bare_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
    /// Where in this module each problem was raised: the rule table test
    /// ([`rule_table`]) checks that its rows reach every `self.problem` and `self.read`.
    #[cfg(test)]
    sites: Vec<&'static std::panic::Location<'static>>,
}

impl Validator {
    /// Records a problem. Every call is one rule: `#[track_caller]` lets the rule table test
    /// see which call raised it.
    #[track_caller]
    pub(super) fn problem<T>(
        &mut self,
        path: impl Display,
        at: Option<&At<T>>,
        message: impl Into<String>,
    ) {
        #[cfg(test)]
        self.sites.push(std::panic::Location::caller());
        let location = at.map(|a| a.referenced);
        self.problems.push(Problem {
            line: location.map(|l| l.line()).filter(|&l| l > 0),
            column: location.map(|l| l.column()).filter(|&c| c > 0),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Records a problem found by a unit reader, and gives back the value when there is none.
    #[track_caller]
    pub(super) fn read<T, R>(
        &mut self,
        path: impl Display,
        at: &At<R>,
        result: Result<T, String>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.problem(path, Some(at), message);
                None
            }
        }
    }

    fn policy(&mut self, raw: RawPolicy) -> Option<Policy> {
        let service = self.service(&raw.service);
        let traffic = self.traffic(&raw.traffic);
        let metrics = self.metrics(&raw.metrics);
        let rollout = self.rollout(&raw.rollout);
        let gateway = raw.gateway.as_ref().and_then(|g| self.gateway(g));
        let promotion = match &raw.promotion {
            None => Some(None),
            Some(promotion) => self.promotion(promotion, raw.gateway.is_some()),
        };
        let hooks = self.hooks(&raw.hooks);
        let notifications = self.notifications(&raw.notify);
        let checks = self.checks(&raw.checks, traffic.as_ref());
        if let (Some(rollout), Some(checks)) = (&rollout, &checks)
            && rollout.min_requests > 0
            && !checks
                .iter()
                .any(|c| matches!(c.kind, CheckKind::ErrorRate(_) | CheckKind::Latency(_)))
        {
            self.problem(
                "rollout.min-requests",
                raw.rollout.min_requests.as_ref(),
                "no check counts requests (an error-rate or latency check does): add one, or set `min-requests: 0` to advance without counting traffic",
            );
        }
        if let (Some(MetricsSourceSpec::Scrape(_)), Some(checks)) = (&metrics, &checks) {
            for (i, check) in checks.iter().enumerate() {
                if matches!(check.kind, CheckKind::Samples(_) | CheckKind::Query(_)) {
                    self.problem(
                        format!("checks[{i}]"),
                        Some(&raw.checks.value[i].value.name),
                        format!(
                            "a {} check runs PromQL, which needs `metrics.prometheus`; a `scrape` source reads counters and histograms only",
                            check.kind.name()
                        ),
                    );
                }
            }
        }
        Some(Policy {
            service: service?,
            traffic: traffic?,
            metrics: metrics?,
            rollout: rollout?,
            gateway,
            promotion: promotion?,
            hooks: hooks?,
            notifications: notifications?,
            checks: checks?,
        })
    }

    fn service(&mut self, service: &At<String>) -> Option<String> {
        let name = service.value.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name.starts_with('.')
        {
            self.problem(
                "service",
                Some(service),
                format!(
                    "expected a service name of letters, digits, `-`, `_` and `.` (it names the state file), not {:?}",
                    service.value
                ),
            );
            return None;
        }
        Some(name.to_owned())
    }

    pub(super) fn positive_duration(
        &mut self,
        path: &str,
        raw: Option<&At<RawDuration>>,
        default: Duration,
    ) -> Option<Duration> {
        match raw {
            None => Some(default),
            Some(at) if at.value.0.is_zero() => {
                self.problem(path, Some(at), "expected a duration longer than 0s");
                None
            }
            Some(at) => Some(at.value.0),
        }
    }

    pub(super) fn http_url(&mut self, path: &str, url: &At<String>) -> bool {
        if is_http_url(&url.value) {
            true
        } else {
            self.problem(
                path,
                Some(url),
                format!("expected an http:// or https:// URL, not {:?}", url.value),
            );
            false
        }
    }

    /// Checks that `{name}` placeholders in command arguments are known ones.
    pub(super) fn placeholders(
        &mut self,
        path: &str,
        args: &At<Vec<String>>,
        known: &[&str],
    ) -> bool {
        let mut ok = true;
        for (i, arg) in args.value.iter().enumerate() {
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                let after = &rest[open + 1..];
                let Some(close) = after.find('}') else { break };
                let name = &after[..close];
                if !known.contains(&name) {
                    let known: Vec<_> = known.iter().map(|k| format!("{{{k}}}")).collect();
                    self.problem(
                        format!("{path}[{i}]"),
                        Some(args),
                        format!(
                            "unknown placeholder `{{{name}}}`; known: {}",
                            known.join(", ")
                        ),
                    );
                    ok = false;
                }
                rest = &after[close + 1..];
            }
        }
        ok
    }
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    matches!(rest, Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace))
}
