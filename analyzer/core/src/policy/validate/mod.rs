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
mod provider;
mod rollout;
#[cfg(test)]
mod rule_table;
mod traffic;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
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
/// How long a replica-count split's pods may take to be ready: half of a Deployment's
/// default `progressDeadlineSeconds` (600), so a stuck rollout is reported before it.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(5 * 60);

pub(super) fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    let Parsed {
        raw,
        mut problems,
        blanked,
    } = deserialize(text);
    if let Some(raw) = raw {
        let mut validator = Validator::default();
        let policy = validator.policy(raw);
        if let Some(policy) = policy
            && problems.is_empty()
            && validator.problems.is_empty()
        {
            return Ok(policy);
        }
        // What validation says about a blanked entry, or about the entry holding it, is
        // about the blanking, not the file.
        problems.extend(validator.problems.into_iter().filter(|problem| {
            !blanked
                .iter()
                .any(|b| b.starts_with(&problem.path) || problem.path.starts_with(b.as_str()))
        }));
    }
    problems.sort_by_key(|p| (p.line.unwrap_or(u64::MAX), p.column.unwrap_or(0)));
    Err(PolicyError {
        file: origin.to_owned(),
        problems,
    })
}

/// What reading a file as YAML into the raw types found.
struct Parsed {
    /// The raw policy, once the entries with problems were blanked out; `None` when the file
    /// could not be read that far (a syntax error).
    raw: Option<RawPolicy>,
    /// Every type problem, unknown field and syntax error found, in the order found.
    problems: Vec<Problem>,
    /// The field paths of the entries blanked out.
    blanked: Vec<String>,
}

/// At most this many parse problems per file: past them, more of the same help no one.
const MAX_PARSE_PROBLEMS: usize = 50;

/// Reads the file into the raw types, finding every type problem and unknown field in one
/// run. serde stops at the first one, so the entry it is about is blanked out — overwritten
/// with spaces, so that every other line and column stays where it was — and the text read
/// again, until it reads or a problem cannot be stepped over (a syntax error, no location,
/// no progress). A problem the blanking itself causes (the entry's parent left empty, a
/// required field now missing) is not reported.
fn deserialize(text: &str) -> Parsed {
    let mut problems: Vec<Problem> = Vec::new();
    let mut blanked: Vec<String> = Vec::new();
    let mut current = text.to_owned();
    let mut rounds = 0;
    loop {
        let problem = match deserialize_once(&current) {
            Ok(raw) => {
                return Parsed {
                    raw: Some(raw),
                    problems,
                    blanked,
                };
            }
            Err(problem) => problem,
        };
        // The parent of a blanked entry left empty, or a required field blanked out.
        let emptied_parent = !problem.path.is_empty()
            && blanked
                .iter()
                .any(|b| b.len() > problem.path.len() && b.starts_with(&problem.path));
        let blanked_required = problem.message.starts_with("missing field")
            && blanked.iter().any(|b| {
                last_segment(b).is_some_and(|key| problem.message.contains(&format!("`{key}`")))
            });
        // Nothing left but blanks and comments: the file was all problems.
        let nothing_left = !blanked.is_empty()
            && current.lines().all(|l| {
                let l = l.trim();
                l.is_empty() || l.starts_with('#') || l == "---"
            });
        let caused_by_blanking = emptied_parent || blanked_required || nothing_left;
        if caused_by_blanking {
            // Not the file's problem; step over it too, so that the rest is still read.
            let next = match (problem.line, problem.path.is_empty(), nothing_left) {
                (Some(line), false, false) => blank_entry(&current, line as usize),
                _ => None,
            };
            rounds += 1;
            match next {
                Some(next) if rounds < 2 * MAX_PARSE_PROBLEMS => {
                    blanked.push(problem.path);
                    current = next;
                    continue;
                }
                _ => break,
            }
        }
        let repeated = problems
            .iter()
            .any(|p| p.line == problem.line && p.column == problem.column);
        if repeated {
            break;
        }
        let next = match (problem.line, problem.path.is_empty()) {
            (Some(line), false) => blank_entry(&current, line as usize),
            _ => None,
        };
        let path = problem.path.clone();
        problems.push(problem);
        match next {
            Some(next) if problems.len() < MAX_PARSE_PROBLEMS => {
                blanked.push(path);
                current = next;
            }
            _ => break,
        }
    }
    Parsed {
        raw: None,
        problems,
        blanked,
    }
}

/// `max` of `checks[1].slo.max`.
fn last_segment(path: &str) -> Option<&str> {
    path.rsplit('.')
        .next()
        .map(|s| s.split('[').next().unwrap_or(s))
        .filter(|s| !s.is_empty())
}

/// `text` with the mapping entry on 1-based `line` blanked out: from its key to the end of
/// the line, and the lines below indented deeper than the key (its value). A `- ` in front
/// of the key stays, so the list item it starts stays one. `None` when the line holds no
/// entry to blank.
fn blank_entry(text: &str, line: usize) -> Option<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let index = line.checked_sub(1)?;
    let target = lines.get(index)?;
    let indent = target.len() - target.trim_start().len();
    let mut key = indent;
    while target[key..].starts_with("- ") {
        key += 2;
        key += target[key..].len() - target[key..].trim_start().len();
    }
    if key >= target.trim_end().len() {
        return None;
    }
    let blank = |line: &str, from: usize| {
        let mut out: String = line[..from].to_owned();
        out.extend(line[from..].chars().map(|_| ' '));
        out
    };
    lines[index] = blank(target, key);
    for below in lines.iter_mut().skip(index + 1) {
        let content = below.trim_start();
        let depth = below.len() - content.len();
        if content.is_empty() || content.starts_with('#') || depth > key {
            *below = blank(below, 0);
        } else {
            break;
        }
    }
    Some(lines.join("\n"))
}

/// Runs serde with path tracking, so that a type error names its field as well as its line.
fn deserialize_once(text: &str) -> Result<RawPolicy, Problem> {
    let path = RefCell::new(String::new());
    let result = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            *path.borrow_mut() = clean_path(&err.path().to_string());
            err.into_inner()
        })
    });
    result.map_err(|err| {
        let location = err.location();
        Problem {
            line: location.map(|l| l.line()).filter(|&l| l > 0),
            column: location.map(|l| l.column()).filter(|&c| c > 0),
            path: path.into_inner(),
            message: bare_message(&err),
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
        if let (Some(gateway), Some(rollout)) = (&gateway, &rollout) {
            self.routes_supported(gateway, rollout, &raw.rollout);
        }
        if let (Some(GatewaySpec::ReplicaCount(spec)), Some(rollout), Some(raw_gateway)) =
            (&gateway, &rollout, &raw.gateway)
            && let Some(raw_replicas) = &raw_gateway.replica_count
            && rollout.routes.is_empty()
        {
            self.replica_steps(raw_replicas, spec, &rollout.steps);
        }
        if let (Some(GatewaySpec::ReplicaCount(spec)), Some(Some(promotion))) =
            (&gateway, &promotion)
            && (promotion.stable.name != spec.stable.name
                || promotion.canary_deployment != spec.canary_deployment
                || promotion.stable.namespace != spec.stable.namespace
                || promotion.stable.context != spec.stable.context)
        {
            self.problem::<()>(
                "promotion.kubernetes",
                None,
                "with `gateway.replica-count` the promotion copies between the same two Deployments: name the same stable and canary Deployments, namespace and context",
            );
        }
        let hooks = self.hooks(&raw.hooks);
        let notifications = self.notifications(&raw.notify);
        let checks = self.checks(&raw.checks, traffic.as_ref());
        if let (Some(rollout), Some(checks)) = (&rollout, &checks)
            && rollout.min_requests > 0
            && !checks.iter().any(|c| c.counts_requests())
        {
            self.problem(
                "rollout.min-requests",
                raw.rollout.min_requests.as_ref(),
                "no check counts requests (an error-rate or latency check does): add one, or set `min-requests: 0` to advance without counting traffic",
            );
        }
        if let (Some(metrics), Some(checks)) = (&metrics, &checks) {
            self.checks_fit_the_source(metrics, checks, &raw.checks);
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
