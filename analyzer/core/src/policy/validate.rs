//! From the file as written ([`raw`](super::raw)) to the [`Policy`] the rest of canary uses.
//!
//! Parsing stops at the first syntax or type error (serde cannot go on after one); validation
//! then collects every semantic problem it finds, each with the line and column of the value
//! it is about, so that `canary policy lint` shows them all in one run.

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

use crate::stats::autocorrelated_mean::{DEFAULT_MAX_AUTOCORRELATION, MAX_AUTOCORRELATION_LIMIT};
const DEFAULT_PROMOTION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub(super) fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    let raw = deserialize(text, origin)?;
    let mut validator = Validator {
        problems: Vec::new(),
    };
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

struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn problem<T>(&mut self, path: impl Display, at: Option<&At<T>>, message: impl Into<String>) {
        let location = at.map(|a| a.referenced);
        self.problems.push(Problem {
            line: location.map(|l| l.line()).filter(|&l| l > 0),
            column: location.map(|l| l.column()).filter(|&c| c > 0),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Records a problem found by a unit reader, and gives back the value when there is none.
    fn read<T, R>(
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

    fn traffic(&mut self, raw: &RawTraffic) -> Option<TrafficSelector> {
        let mut ok = true;
        if !is_label_name(&raw.label.value) {
            self.problem(
                "traffic.label",
                Some(&raw.label),
                format!(
                    "expected a Prometheus label name like `version`, not {:?}",
                    raw.label.value
                ),
            );
            ok = false;
        }
        for (field, value) in [("canary", &raw.canary), ("baseline", &raw.baseline)] {
            if value.value.is_empty() {
                self.problem(
                    format!("traffic.{field}"),
                    Some(value),
                    "the label value must not be empty",
                );
                ok = false;
            }
        }
        if raw.canary.value == raw.baseline.value {
            self.problem(
                "traffic.baseline",
                Some(&raw.baseline),
                format!(
                    "canary and baseline have the same label value {:?}; they must differ",
                    raw.canary.value
                ),
            );
            ok = false;
        }
        let matchers = match &raw.selector {
            None => Vec::new(),
            Some(selector) => match parse_matchers(&selector.value) {
                Ok(matchers) => {
                    if matchers.iter().any(|m| m.name == raw.label.value) {
                        self.problem(
                            "traffic.selector",
                            Some(selector),
                            format!(
                                "the selector must not match on `{}`: `traffic.canary` and `traffic.baseline` say that",
                                raw.label.value
                            ),
                        );
                        ok = false;
                    }
                    matchers
                }
                Err(message) => {
                    self.problem("traffic.selector", Some(selector), message);
                    return None;
                }
            },
        };
        ok.then(|| TrafficSelector {
            label: raw.label.value.clone(),
            canary: raw.canary.value.clone(),
            baseline: raw.baseline.value.clone(),
            matchers,
        })
    }

    fn metrics(&mut self, raw: &RawMetrics) -> Option<MetricsSourceSpec> {
        match (&raw.prometheus, &raw.scrape) {
            (Some(prometheus), None) => self
                .prometheus(prometheus)
                .map(MetricsSourceSpec::Prometheus),
            (None, Some(scrape)) => self.scrape(scrape).map(MetricsSourceSpec::Scrape),
            (None, None) => {
                self.problem::<()>("metrics", None, "expected one of `prometheus` or `scrape`");
                None
            }
            (Some(_), Some(_)) => {
                self.problem::<()>(
                    "metrics",
                    None,
                    "`prometheus` and `scrape` are both set; a policy reads from one source",
                );
                None
            }
        }
    }

    fn prometheus(&mut self, raw: &RawPrometheus) -> Option<PrometheusSpec> {
        let mut ok = true;
        if let Some(url) = &raw.url {
            ok &= self.http_url("metrics.prometheus.url", url);
        }
        let auth = match (
            &raw.bearer_token_file,
            &raw.bearer_token_env,
            &raw.basic_auth,
        ) {
            (None, None, None) => PrometheusAuth::None,
            (Some(file), None, None) => {
                PrometheusAuth::Bearer(SecretSource::File(PathBuf::from(file)))
            }
            (None, Some(var), None) => PrometheusAuth::Bearer(SecretSource::Env(var.clone())),
            (None, None, Some(basic)) => {
                let password = match (&basic.password_file, &basic.password_env) {
                    (Some(file), None) => SecretSource::File(PathBuf::from(file)),
                    (None, Some(var)) => SecretSource::Env(var.clone()),
                    _ => {
                        self.problem::<()>(
                            "metrics.prometheus.basic-auth",
                            None,
                            "expected exactly one of `password-file` or `password-env` (passwords are never written in the policy)",
                        );
                        return None;
                    }
                };
                PrometheusAuth::Basic {
                    username: basic.username.clone(),
                    password,
                }
            }
            _ => {
                self.problem::<()>(
                    "metrics.prometheus",
                    None,
                    "expected at most one of `bearer-token-file`, `bearer-token-env` and `basic-auth`",
                );
                return None;
            }
        };
        for name in raw.headers.keys() {
            if name.eq_ignore_ascii_case("authorization") {
                self.problem::<()>(
                    format!("metrics.prometheus.headers.{name}"),
                    None,
                    "credentials do not belong in the policy: use `bearer-token-file`, `bearer-token-env` or `basic-auth`",
                );
                ok = false;
            } else if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                self.problem::<()>(
                    format!("metrics.prometheus.headers.{name}"),
                    None,
                    format!("{name:?} is not a valid HTTP header name"),
                );
                ok = false;
            }
        }
        let timeout = self.positive_duration(
            "metrics.prometheus.timeout",
            raw.timeout.as_ref(),
            DEFAULT_HTTP_TIMEOUT,
        );
        let retries = raw.retries.unwrap_or(DEFAULT_RETRIES);
        if retries > 10 {
            self.problem::<()>(
                "metrics.prometheus.retries",
                None,
                "expected at most 10 retries",
            );
            ok = false;
        }
        Some(PrometheusSpec {
            url: raw
                .url
                .as_ref()
                .map(|u| u.value.trim_end_matches('/').to_owned()),
            auth,
            headers: raw
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ca_file: raw.ca_file.as_ref().map(PathBuf::from),
            insecure_skip_tls_verify: raw.insecure_skip_tls_verify,
            timeout: timeout?,
            retries,
        })
        .filter(|_| ok)
    }

    fn scrape(&mut self, raw: &RawScrape) -> Option<ScrapeSpec> {
        let mut ok = true;
        for (field, urls) in [("canary", &raw.canary), ("baseline", &raw.baseline)] {
            if urls.value.is_empty() {
                self.problem(
                    format!("metrics.scrape.{field}"),
                    Some(urls),
                    "expected at least one /metrics URL",
                );
                ok = false;
            }
            for (i, url) in urls.value.iter().enumerate() {
                if !is_http_url(url) {
                    self.problem(
                        format!("metrics.scrape.{field}[{i}]"),
                        Some(urls),
                        format!("expected an http:// or https:// URL, not {url:?}"),
                    );
                    ok = false;
                }
            }
        }
        let timeout = self.positive_duration(
            "metrics.scrape.timeout",
            raw.timeout.as_ref(),
            DEFAULT_SCRAPE_TIMEOUT,
        );
        Some(ScrapeSpec {
            canary: raw.canary.value.clone(),
            baseline: raw.baseline.value.clone(),
            timeout: timeout?,
        })
        .filter(|_| ok)
    }

    fn rollout(&mut self, raw: &RawRollout) -> Option<RolloutSpec> {
        let steps = match &raw.steps {
            None => Some(DEFAULT_STEPS.to_vec()),
            Some(steps) => self.steps(steps),
        };
        let step_duration = self.positive_duration(
            "rollout.step-duration",
            raw.step_duration.as_ref(),
            DEFAULT_STEP_DURATION,
        );
        let interval =
            self.positive_duration("rollout.interval", raw.interval.as_ref(), DEFAULT_INTERVAL);
        let max_step_duration = match (&raw.max_step_duration, step_duration) {
            (Some(at), Some(step)) => {
                let max = at.value.0;
                if max < step {
                    self.problem(
                        "rollout.max-step-duration",
                        Some(at),
                        format!(
                            "the limit ({}) is shorter than the step itself ({})",
                            humantime::format_duration(max),
                            humantime::format_duration(step)
                        ),
                    );
                    None
                } else {
                    Some(max)
                }
            }
            (None, Some(step)) => Some(step * 3),
            (_, None) => None,
        };
        if let (Some(interval), Some(step)) = (interval, step_duration) {
            if interval > step {
                self.problem(
                    "rollout.interval",
                    raw.interval.as_ref(),
                    format!(
                        "the analysis interval ({}) is longer than a step ({}); a step would never be analysed",
                        humantime::format_duration(interval),
                        humantime::format_duration(step)
                    ),
                );
            } else if interval < Duration::from_secs(1) {
                self.problem(
                    "rollout.interval",
                    raw.interval.as_ref(),
                    "the analysis interval must be at least 1s (Prometheus resolves whole seconds)",
                );
            }
        }
        let min_requests = match &raw.min_requests {
            None => Some(DEFAULT_MIN_REQUESTS),
            Some(at) if at.value >= 0 => Some(at.value as u64),
            Some(at) => {
                self.problem(
                    "rollout.min-requests",
                    Some(at),
                    "expected a count of 0 or more",
                );
                None
            }
        };
        let alpha = match &raw.alpha {
            None => Some(DEFAULT_ALPHA),
            Some(at) if at.value.0 > 0.0 && at.value.0 <= 0.5 => Some(at.value.0),
            Some(at) => {
                self.problem(
                    "rollout.alpha",
                    Some(at),
                    "expected a false-rollback budget above 0% and at most 50% (1% is usual)",
                );
                None
            }
        };
        let on_inconclusive = match &raw.on_inconclusive {
            None => Some(InconclusiveAction::Rollback),
            Some(at) => match at.value.as_str() {
                "rollback" => Some(InconclusiveAction::Rollback),
                "hold" => Some(InconclusiveAction::Hold),
                other => {
                    self.problem(
                        "rollout.on-inconclusive",
                        Some(at),
                        format!("expected `rollback` or `hold`, not {other:?} (a rollout never promotes on missing evidence)"),
                    );
                    None
                }
            },
        };
        let on_interrupt = self.stop_action("rollout.on-interrupt", raw.on_interrupt.as_ref());
        let on_metrics_unavailable = self.stop_action(
            "rollout.on-metrics-unavailable",
            raw.on_metrics_unavailable.as_ref(),
        );
        let final_soak = match &raw.final_soak {
            None => Some(None),
            Some(at) => self
                .positive_duration("rollout.final-soak", Some(at), Duration::ZERO)
                .map(Some),
        };
        let max_failed_ticks = match &raw.max_failed_ticks {
            None => Some(DEFAULT_MAX_FAILED_TICKS),
            Some(at) if (1..=1000).contains(&at.value) => Some(at.value as u32),
            Some(at) => {
                self.problem(
                    "rollout.max-failed-ticks",
                    Some(at),
                    "expected a count from 1 to 1000",
                );
                None
            }
        };
        Some(RolloutSpec {
            steps: steps?,
            step_duration: step_duration?,
            max_step_duration: max_step_duration?,
            interval: interval?,
            min_requests: min_requests?,
            alpha: alpha?,
            on_inconclusive: on_inconclusive?,
            on_interrupt: on_interrupt?,
            final_soak: final_soak?,
            max_failed_ticks: max_failed_ticks?,
            on_metrics_unavailable: on_metrics_unavailable?,
        })
    }

    /// `leave` (the default) or `rollback`.
    fn stop_action(&mut self, field: &str, raw: Option<&At<String>>) -> Option<StopAction> {
        let Some(at) = raw else {
            return Some(StopAction::Leave);
        };
        match at.value.as_str() {
            "leave" => Some(StopAction::Leave),
            "rollback" => Some(StopAction::Rollback),
            other => {
                self.problem(
                    field,
                    Some(at),
                    format!("expected `leave` or `rollback`, not {other:?}"),
                );
                None
            }
        }
    }

    fn steps(&mut self, steps: &At<Vec<At<i64>>>) -> Option<Vec<u8>> {
        if steps.value.is_empty() {
            self.problem(
                "rollout.steps",
                Some(steps),
                "expected at least one step, e.g. [10, 25, 50, 100]",
            );
            return None;
        }
        let mut ok = true;
        let mut weights = Vec::with_capacity(steps.value.len());
        for (i, step) in steps.value.iter().enumerate() {
            if !(1..=100).contains(&step.value) {
                self.problem(
                    format!("rollout.steps[{i}]"),
                    Some(step),
                    format!(
                        "expected a canary weight from 1 to 100 (percent), not {}",
                        step.value
                    ),
                );
                ok = false;
                continue;
            }
            if let Some(&previous) = weights.last()
                && step.value as u8 <= previous
            {
                self.problem(
                    format!("rollout.steps[{i}]"),
                    Some(step),
                    format!("steps must increase: {} comes after {previous}", step.value),
                );
                ok = false;
            }
            weights.push(step.value as u8);
        }
        if ok && weights.last() != Some(&100) {
            self.problem(
                "rollout.steps",
                Some(steps),
                "the last step must be 100 (reaching 100 % is the promotion)",
            );
            ok = false;
        }
        if ok && weights.len() < 2 {
            self.problem(
                "rollout.steps",
                Some(steps),
                "at least one step below 100 is needed: the comparison with baseline needs baseline traffic",
            );
            ok = false;
        }
        ok.then_some(weights)
    }

    fn positive_duration(
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

    fn http_url(&mut self, path: &str, url: &At<String>) -> bool {
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

    fn gateway(&mut self, raw: &RawGateway) -> Option<GatewaySpec> {
        let set = [
            raw.haproxy.is_some(),
            raw.nginx.is_some(),
            raw.command.is_some(),
            raw.http_route.is_some(),
            raw.nginx_ingress.is_some(),
            raw.istio_virtual_service.is_some(),
            raw.smi_traffic_split.is_some(),
            raw.traefik_service.is_some(),
        ];
        if set.iter().filter(|&&s| s).count() != 1 {
            self.problem::<()>(
                "gateway",
                None,
                "expected exactly one of `haproxy`, `nginx`, `command`, `http-route`, \
                 `nginx-ingress`, `istio-virtual-service`, `smi-traffic-split` or `traefik-service`",
            );
            return None;
        }
        if let Some(spec) = self.kubernetes_gateway(raw) {
            return spec;
        }
        if let Some(haproxy) = &raw.haproxy {
            let socket = haproxy.socket.value.trim();
            let socket = if let Some(path) = socket.strip_prefix("unix:") {
                SocketAddress::Unix(PathBuf::from(path))
            } else if socket.starts_with('/') || socket.starts_with('.') {
                SocketAddress::Unix(PathBuf::from(socket))
            } else if socket
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            {
                SocketAddress::Tcp(socket.trim_start_matches("tcp:").to_owned())
            } else {
                self.problem(
                    "gateway.haproxy.socket",
                    Some(&haproxy.socket),
                    format!("expected a unix socket path (/run/haproxy/admin.sock) or host:port, not {socket:?}"),
                );
                return None;
            };
            let mut ok = true;
            for (field, name) in [
                ("backend", &haproxy.backend),
                ("canary-server", &haproxy.canary_server),
                ("stable-server", &haproxy.stable_server),
            ] {
                // These go into runtime API commands: no spaces, slashes or separators.
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                {
                    self.problem::<()>(
                        format!("gateway.haproxy.{field}"),
                        None,
                        format!("expected an HAProxy name of letters, digits, `-`, `_`, `.` and `:`, not {name:?}"),
                    );
                    ok = false;
                }
            }
            if haproxy.canary_server == haproxy.stable_server {
                self.problem::<()>(
                    "gateway.haproxy.stable-server",
                    None,
                    "the canary and stable servers must differ",
                );
                ok = false;
            }
            return ok.then(|| {
                GatewaySpec::Haproxy(HaproxySpec {
                    socket,
                    backend: haproxy.backend.clone(),
                    canary_server: haproxy.canary_server.clone(),
                    stable_server: haproxy.stable_server.clone(),
                })
            });
        }
        if let Some(nginx) = &raw.nginx {
            let mut ok = true;
            if nginx.upstream.is_empty()
                || !nginx
                    .upstream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                self.problem::<()>(
                    "gateway.nginx.upstream",
                    None,
                    format!(
                        "expected an upstream name of letters, digits, `-`, `_` and `.`, not {:?}",
                        nginx.upstream
                    ),
                );
                ok = false;
            }
            for (field, address) in [("canary", &nginx.canary), ("stable", &nginx.stable)] {
                // These are written into an NGINX config file: nothing that could end a directive.
                if address.is_empty()
                    || address.chars().any(|c| {
                        c.is_whitespace() || matches!(c, ';' | '{' | '}' | '#' | '"' | '\'')
                    })
                {
                    self.problem::<()>(
                        format!("gateway.nginx.{field}"),
                        None,
                        format!("expected a server address like 10.0.0.5:8080, not {address:?}"),
                    );
                    ok = false;
                }
            }
            if nginx.upstream_file.is_empty() {
                self.problem::<()>("gateway.nginx.upstream-file", None, "expected a file path");
                ok = false;
            }
            let reload = match &nginx.reload {
                None => vec!["nginx".to_owned(), "-s".to_owned(), "reload".to_owned()],
                Some(at) if at.value.is_empty() => {
                    self.problem(
                        "gateway.nginx.reload",
                        Some(at),
                        "expected a command and its arguments",
                    );
                    return None;
                }
                Some(at) => at.value.clone(),
            };
            let timeout = self.positive_duration(
                "gateway.nginx.timeout",
                nginx.timeout.as_ref(),
                DEFAULT_COMMAND_TIMEOUT,
            )?;
            return ok.then(|| {
                GatewaySpec::Nginx(NginxSpec {
                    upstream_file: PathBuf::from(&nginx.upstream_file),
                    upstream: nginx.upstream.clone(),
                    canary: nginx.canary.clone(),
                    stable: nginx.stable.clone(),
                    reload,
                    timeout,
                })
            });
        }
        let command = raw.command.as_ref()?;
        let mut ok = true;
        if command.set.value.is_empty() {
            self.problem(
                "gateway.command.set",
                Some(&command.set),
                "expected a command and its arguments",
            );
            ok = false;
        }
        ok &= self.placeholders(
            "gateway.command.set",
            &command.set,
            &["weight", "stable-weight"],
        );
        if let Some(get) = &command.get
            && get.value.is_empty()
        {
            self.problem(
                "gateway.command.get",
                Some(get),
                "expected a command and its arguments",
            );
            ok = false;
        }
        let timeout = self.positive_duration(
            "gateway.command.timeout",
            command.timeout.as_ref(),
            DEFAULT_COMMAND_TIMEOUT,
        )?;
        ok.then(|| {
            GatewaySpec::Command(CommandRouterSpec {
                set: command.set.value.clone(),
                get: command.get.as_ref().map(|g| g.value.clone()),
                timeout,
            })
        })
    }

    fn promotion(
        &mut self,
        raw: &RawPromotion,
        has_gateway: bool,
    ) -> Option<Option<DeploymentPromotionSpec>> {
        let Some(kubernetes) = &raw.kubernetes else {
            self.problem::<()>("promotion", None, "expected `kubernetes`");
            return None;
        };
        let path = "promotion.kubernetes";
        if !has_gateway {
            self.problem::<()>(
                path,
                None,
                "a promotion routes the traffic back to the stable Deployment: it needs a `gateway`",
            );
        }
        let stable_name = self.kube_name(
            &format!("{path}.stable-deployment"),
            &kubernetes.stable_deployment,
        );
        let namespace = self.namespace(&format!("{path}.namespace"), kubernetes.namespace.as_ref());
        let stable = (|| {
            Some(KubeObjectRef {
                name: stable_name?,
                namespace: namespace?,
                context: kubernetes.context.clone(),
            })
        })();
        let canary = self.kube_name(
            &format!("{path}.canary-deployment"),
            &kubernetes.canary_deployment,
        );
        let distinct = if kubernetes.stable_deployment.value.trim()
            == kubernetes.canary_deployment.value.trim()
        {
            self.problem(
                format!("{path}.canary-deployment"),
                Some(&kubernetes.canary_deployment),
                "the canary and stable Deployments must differ",
            );
            None
        } else {
            Some(())
        };
        let timeout = self.positive_duration(
            &format!("{path}.timeout"),
            kubernetes.timeout.as_ref(),
            DEFAULT_PROMOTION_TIMEOUT,
        );
        if !has_gateway {
            return None;
        }
        distinct?;
        Some(Some(DeploymentPromotionSpec {
            stable: stable?,
            canary_deployment: canary?,
            timeout: timeout?,
        }))
    }

    /// The Kubernetes gateways: `None` when the gateway is not one of them, `Some(None)` when
    /// it is and has problems.
    fn kubernetes_gateway(&mut self, raw: &RawGateway) -> Option<Option<GatewaySpec>> {
        if let Some(route) = &raw.http_route {
            let path = "gateway.http-route";
            let object =
                self.kube_object(path, &route.name, route.namespace.as_ref(), &route.context);
            let rule = self.rule_ref(&format!("{path}.rule"), route.rule.as_ref());
            let stable =
                self.kube_label(&format!("{path}.stable"), &route.stable, "a Service name");
            let canary =
                self.kube_label(&format!("{path}.canary"), &route.canary, "a Service name");
            let total =
                self.weight_total(&format!("{path}.weight-total"), route.weight_total.as_ref());
            let distinct = self.distinct(path, &route.stable, &route.canary);
            return Some((|| {
                distinct?;
                Some(GatewaySpec::HttpRoute(HttpRouteSpec {
                    object: object?,
                    rule: rule?,
                    stable: stable?,
                    canary: canary?,
                    weight_total: total?,
                }))
            })());
        }
        if let Some(ingress) = &raw.nginx_ingress {
            let path = "gateway.nginx-ingress";
            let stable = self.kube_name(&format!("{path}.ingress"), &ingress.ingress);
            let canary_name = match &ingress.canary_ingress {
                Some(at) => self.kube_name(&format!("{path}.canary-ingress"), at),
                None => Some(format!("{}-canary", ingress.ingress.value.trim())),
            };
            let namespace =
                self.namespace(&format!("{path}.namespace"), ingress.namespace.as_ref());
            let create = match &ingress.create_canary {
                None => Some(None),
                Some(create) => {
                    let stable_service = self.kube_label(
                        &format!("{path}.create-canary.stable-service"),
                        &create.stable_service,
                        "a Service name",
                    );
                    let canary_service = self.kube_label(
                        &format!("{path}.create-canary.canary-service"),
                        &create.canary_service,
                        "a Service name",
                    );
                    let distinct = self.distinct(
                        &format!("{path}.create-canary"),
                        &create.stable_service,
                        &create.canary_service,
                    );
                    (|| {
                        distinct?;
                        Some(Some(CreateCanaryIngress {
                            stable_service: stable_service?,
                            canary_service: canary_service?,
                        }))
                    })()
                }
            };
            let total = self.weight_total(
                &format!("{path}.weight-total"),
                ingress.weight_total.as_ref(),
            );
            if let (Some(stable), Some(canary)) = (&stable, &canary_name)
                && stable == canary
            {
                self.problem(
                    format!("{path}.canary-ingress"),
                    ingress.canary_ingress.as_ref(),
                    "the canary Ingress must not be the stable one",
                );
                return Some(None);
            }
            return Some((|| {
                Some(GatewaySpec::NginxIngress(NginxIngressSpec {
                    object: KubeObjectRef {
                        name: canary_name?,
                        namespace: namespace?,
                        context: ingress.context.clone(),
                    },
                    stable_ingress: stable?,
                    create_canary: create?,
                    weight_total: total?,
                }))
            })());
        }
        if let Some(vs) = &raw.istio_virtual_service {
            let path = "gateway.istio-virtual-service";
            let object = self.kube_object(path, &vs.name, vs.namespace.as_ref(), &vs.context);
            let route = self.rule_ref(&format!("{path}.route"), vs.route.as_ref());
            let stable = self.istio_destination(&format!("{path}.stable"), &vs.stable);
            let canary = self.istio_destination(&format!("{path}.canary"), &vs.canary);
            if let (Some(s), Some(c)) = (&stable, &canary)
                && s == c
            {
                self.problem(
                    format!("{path}.canary.host"),
                    Some(&vs.canary.host),
                    "the canary and stable destinations must differ (in host or subset)",
                );
                return Some(None);
            }
            return Some((|| {
                Some(GatewaySpec::IstioVirtualService(IstioVirtualServiceSpec {
                    object: object?,
                    route: route?,
                    stable: stable?,
                    canary: canary?,
                }))
            })());
        }
        if let Some(split) = &raw.smi_traffic_split {
            let path = "gateway.smi-traffic-split";
            let object =
                self.kube_object(path, &split.name, split.namespace.as_ref(), &split.context);
            let api_version = self.api_version(
                &format!("{path}.api-version"),
                split.api_version.as_ref(),
                &[
                    "split.smi-spec.io/v1alpha2",
                    "split.smi-spec.io/v1alpha3",
                    "split.smi-spec.io/v1alpha4",
                ],
            );
            let stable =
                self.kube_label(&format!("{path}.stable"), &split.stable, "a Service name");
            let canary =
                self.kube_label(&format!("{path}.canary"), &split.canary, "a Service name");
            let total =
                self.weight_total(&format!("{path}.weight-total"), split.weight_total.as_ref());
            let distinct = self.distinct(path, &split.stable, &split.canary);
            return Some((|| {
                distinct?;
                Some(GatewaySpec::SmiTrafficSplit(SmiTrafficSplitSpec {
                    object: object?,
                    api_version: api_version?,
                    stable: stable?,
                    canary: canary?,
                    weight_total: total?,
                }))
            })());
        }
        if let Some(traefik) = &raw.traefik_service {
            let path = "gateway.traefik-service";
            let object = self.kube_object(
                path,
                &traefik.name,
                traefik.namespace.as_ref(),
                &traefik.context,
            );
            let api_version = self.api_version(
                &format!("{path}.api-version"),
                traefik.api_version.as_ref(),
                &["traefik.io/v1alpha1", "traefik.containo.us/v1alpha1"],
            );
            // TraefikService entries name Services or other TraefikServices (`name@provider`).
            let mut entry = |field: &str, at: &At<String>| {
                let name = at.value.trim();
                if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
                    self.problem(
                        format!("{path}.{field}"),
                        Some(at),
                        format!("expected a service name as `spec.weighted.services[].name` writes it, not {:?}", at.value),
                    );
                    None
                } else {
                    Some(name.to_owned())
                }
            };
            let stable = entry("stable", &traefik.stable);
            let canary = entry("canary", &traefik.canary);
            let total = self.weight_total(
                &format!("{path}.weight-total"),
                traefik.weight_total.as_ref(),
            );
            let distinct = self.distinct(path, &traefik.stable, &traefik.canary);
            return Some((|| {
                distinct?;
                Some(GatewaySpec::TraefikService(TraefikServiceSpec {
                    object: object?,
                    api_version: api_version?,
                    stable: stable?,
                    canary: canary?,
                    weight_total: total?,
                }))
            })());
        }
        None
    }

    fn kube_object(
        &mut self,
        path: &str,
        name: &At<String>,
        namespace: Option<&At<String>>,
        context: &Option<String>,
    ) -> Option<KubeObjectRef> {
        let name = self.kube_name(&format!("{path}.name"), name);
        let namespace = self.namespace(&format!("{path}.namespace"), namespace);
        if let Some(context) = context
            && context.trim().is_empty()
        {
            self.problem::<()>(
                format!("{path}.context"),
                None,
                "expected a kubeconfig context name",
            );
            return None;
        }
        Some(KubeObjectRef {
            name: name?,
            namespace: namespace?,
            context: context.clone(),
        })
    }

    /// An object name: a DNS-1123 subdomain (lower-case letters, digits, `-` and `.`).
    fn kube_name(&mut self, path: &str, name: &At<String>) -> Option<String> {
        let value = name.value.trim();
        if is_dns_subdomain(value) {
            Some(value.to_owned())
        } else {
            self.problem(
                path,
                Some(name),
                format!("expected a Kubernetes object name (lower-case letters, digits, `-` and `.`, at most 253), not {:?}", name.value),
            );
            None
        }
    }

    /// A Service or namespace name: a DNS-1123 label.
    fn kube_label(&mut self, path: &str, name: &At<String>, what: &str) -> Option<String> {
        let value = name.value.trim();
        if is_dns_label(value) {
            Some(value.to_owned())
        } else {
            self.problem(
                path,
                Some(name),
                format!(
                    "expected {what} (lower-case letters, digits and `-`, at most 63), not {:?}",
                    name.value
                ),
            );
            None
        }
    }

    fn namespace(&mut self, path: &str, namespace: Option<&At<String>>) -> Option<Option<String>> {
        match namespace {
            None => Some(None),
            Some(at) => self.kube_label(path, at, "a namespace").map(Some),
        }
    }

    fn distinct(&mut self, path: &str, stable: &At<String>, canary: &At<String>) -> Option<()> {
        if stable.value.trim() == canary.value.trim() {
            self.problem(
                format!("{path}.canary"),
                Some(canary),
                "the canary and stable backends must differ",
            );
            None
        } else {
            Some(())
        }
    }

    fn rule_ref(&mut self, path: &str, raw: Option<&At<RawRuleRef>>) -> Option<Option<RuleRef>> {
        match raw {
            None => Some(None),
            Some(at) => match &at.value {
                RawRuleRef::Index(i) => match usize::try_from(*i) {
                    Ok(i) => Some(Some(RuleRef::Index(i))),
                    Err(_) => {
                        self.problem(
                            path,
                            Some(at),
                            format!("expected a name or an index from 0, not {i}"),
                        );
                        None
                    }
                },
                RawRuleRef::Name(name) if name.trim().is_empty() => {
                    self.problem(path, Some(at), "expected a name or an index from 0");
                    None
                }
                RawRuleRef::Name(name) => Some(Some(RuleRef::Name(name.trim().to_owned()))),
            },
        }
    }

    fn weight_total(&mut self, path: &str, raw: Option<&At<i64>>) -> Option<u32> {
        match raw {
            None => Some(100),
            Some(at) => match u32::try_from(at.value) {
                Ok(total) if (100..=1_000_000).contains(&total) => Some(total),
                _ => {
                    self.problem(
                        path,
                        Some(at),
                        format!(
                            "expected a weight total from 100 to 1000000, not {}",
                            at.value
                        ),
                    );
                    None
                }
            },
        }
    }

    fn api_version(
        &mut self,
        path: &str,
        raw: Option<&At<String>>,
        known: &[&str],
    ) -> Option<String> {
        match raw {
            None => Some(known[0].to_owned()),
            Some(at) if known.contains(&at.value.trim()) => Some(at.value.trim().to_owned()),
            Some(at) => {
                self.problem(
                    path,
                    Some(at),
                    format!("expected one of {}, not {:?}", known.join(", "), at.value),
                );
                None
            }
        }
    }

    fn istio_destination(
        &mut self,
        path: &str,
        raw: &RawIstioDestination,
    ) -> Option<IstioDestination> {
        let host = raw.host.value.trim();
        let mut ok = true;
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            self.problem(
                format!("{path}.host"),
                Some(&raw.host),
                format!(
                    "expected a host as `destination.host` writes it, not {:?}",
                    raw.host.value
                ),
            );
            ok = false;
        }
        if let Some(subset) = &raw.subset
            && !is_dns_label(subset.trim())
        {
            self.problem::<()>(
                format!("{path}.subset"),
                None,
                format!("expected a DestinationRule subset name, not {subset:?}"),
            );
            ok = false;
        }
        ok.then(|| IstioDestination {
            host: host.to_owned(),
            subset: raw.subset.as_ref().map(|s| s.trim().to_owned()),
        })
    }

    /// Checks that `{name}` placeholders in command arguments are known ones.
    fn placeholders(&mut self, path: &str, args: &At<Vec<String>>, known: &[&str]) -> bool {
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

    fn hooks(&mut self, raw: &[RawHook]) -> Option<Vec<HookSpec>> {
        let mut hooks = Vec::new();
        let mut names = HashSet::new();
        let mut ok = true;
        for (i, hook) in raw.iter().enumerate() {
            let path = format!("hooks[{i}]");
            if hook.name.value.trim().is_empty() {
                self.problem(format!("{path}.name"), Some(&hook.name), "expected a name");
                ok = false;
            } else if !names.insert(hook.name.value.clone()) {
                self.problem(
                    format!("{path}.name"),
                    Some(&hook.name),
                    format!("a hook named {:?} is already defined", hook.name.value),
                );
                ok = false;
            }
            let mut on = Vec::new();
            if hook.on.value.is_empty() {
                self.problem(
                    format!("{path}.on"),
                    Some(&hook.on),
                    "expected one or more of before, step, promote, rollback",
                );
                ok = false;
            }
            for (j, event) in hook.on.value.iter().enumerate() {
                match event.value.as_str() {
                    "before" => on.push(HookEvent::Before),
                    "step" => on.push(HookEvent::Step),
                    "promote" => on.push(HookEvent::Promote),
                    "rollback" => on.push(HookEvent::Rollback),
                    other => {
                        self.problem(
                            format!("{path}.on[{j}]"),
                            Some(event),
                            format!(
                                "expected one of before, step, promote, rollback, not {other:?}"
                            ),
                        );
                        ok = false;
                    }
                }
            }
            let action = match (&hook.command, &hook.webhook) {
                (Some(command), None) => {
                    if command.value.is_empty() {
                        self.problem(
                            format!("{path}.command"),
                            Some(command),
                            "expected a command and its arguments",
                        );
                        ok = false;
                    }
                    ok &= self.placeholders(
                        &format!("{path}.command"),
                        command,
                        &["weight", "step", "service"],
                    );
                    Some(HookAction::Command(command.value.clone()))
                }
                (None, Some(webhook)) => {
                    ok &= self.http_url(&format!("{path}.webhook.url"), &webhook.url);
                    let secret = match (&webhook.secret_env, &webhook.secret_file) {
                        (None, None) => None,
                        (Some(var), None) => Some(SecretSource::Env(var.clone())),
                        (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
                        (Some(_), Some(_)) => {
                            self.problem::<()>(
                                format!("{path}.webhook"),
                                None,
                                "expected at most one of `secret-env` and `secret-file`",
                            );
                            ok = false;
                            None
                        }
                    };
                    Some(HookAction::Webhook {
                        url: webhook.url.value.clone(),
                        secret,
                    })
                }
                _ => {
                    self.problem(
                        path.clone(),
                        Some(&hook.name),
                        "expected exactly one of `command` or `webhook`",
                    );
                    ok = false;
                    None
                }
            };
            let rollback_on_failure = match &hook.on_failure {
                None => true,
                Some(at) => match at.value.as_str() {
                    "rollback" => true,
                    "ignore" => false,
                    other => {
                        self.problem(
                            format!("{path}.on-failure"),
                            Some(at),
                            format!("expected `rollback` or `ignore`, not {other:?}"),
                        );
                        ok = false;
                        true
                    }
                },
            };
            let timeout = self.positive_duration(
                &format!("{path}.timeout"),
                hook.timeout.as_ref(),
                DEFAULT_COMMAND_TIMEOUT,
            );
            if let (Some(action), Some(timeout)) = (action, timeout) {
                hooks.push(HookSpec {
                    name: hook.name.value.clone(),
                    on,
                    action,
                    timeout,
                    rollback_on_failure,
                });
            } else {
                ok = false;
            }
        }
        ok.then_some(hooks)
    }

    fn notifications(&mut self, raw: &[RawNotification]) -> Option<Vec<NotificationSpec>> {
        let mut notifications = Vec::new();
        let mut ok = true;
        for (i, notification) in raw.iter().enumerate() {
            let path = format!("notify[{i}]");
            let channel = match (&notification.webhook, &notification.slack) {
                (Some(webhook), None) => {
                    ok &= self.http_url(&format!("{path}.webhook.url"), &webhook.url);
                    let secret = match (&webhook.secret_env, &webhook.secret_file) {
                        (None, None) => None,
                        (Some(var), None) => Some(SecretSource::Env(var.clone())),
                        (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
                        (Some(_), Some(_)) => {
                            self.problem::<()>(
                                format!("{path}.webhook"),
                                None,
                                "expected at most one of `secret-env` and `secret-file`",
                            );
                            ok = false;
                            None
                        }
                    };
                    Some(NotificationChannel::Webhook {
                        url: webhook.url.value.clone(),
                        secret,
                    })
                }
                (None, Some(slack)) => match (&slack.webhook_url_env, &slack.webhook_url_file) {
                    (Some(var), None) => Some(NotificationChannel::Slack {
                        url: SecretSource::Env(var.clone()),
                    }),
                    (None, Some(file)) => Some(NotificationChannel::Slack {
                        url: SecretSource::File(PathBuf::from(file)),
                    }),
                    _ => {
                        self.problem::<()>(
                            format!("{path}.slack"),
                            None,
                            "expected exactly one of `webhook-url-env` and `webhook-url-file` (the URL is a secret: never written in the policy)",
                        );
                        None
                    }
                },
                _ => {
                    self.problem::<()>(
                        path.clone(),
                        None,
                        "expected exactly one of `webhook` or `slack`",
                    );
                    None
                }
            };
            let on = match &notification.on {
                None => NOTICE_KINDS.iter().map(|k| (*k).to_owned()).collect(),
                Some(at) => {
                    let mut kinds = Vec::new();
                    for (j, kind) in at.value.iter().enumerate() {
                        if NOTICE_KINDS.contains(&kind.value.as_str()) {
                            kinds.push(kind.value.clone());
                        } else {
                            self.problem(
                                format!("{path}.on[{j}]"),
                                Some(kind),
                                format!(
                                    "expected one of {}, not {:?}",
                                    NOTICE_KINDS.join(", "),
                                    kind.value
                                ),
                            );
                            ok = false;
                        }
                    }
                    kinds
                }
            };
            let timeout = self.positive_duration(
                &format!("{path}.timeout"),
                notification.timeout.as_ref(),
                Duration::from_secs(10),
            );
            match (channel, timeout) {
                (Some(channel), Some(timeout)) => notifications.push(NotificationSpec {
                    channel,
                    on,
                    timeout,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(notifications)
    }

    fn checks(
        &mut self,
        raw: &At<Vec<At<RawCheck>>>,
        traffic: Option<&TrafficSelector>,
    ) -> Option<Vec<CheckSpec>> {
        if raw.value.is_empty() {
            self.problem(
                "checks",
                Some(raw),
                "expected at least one check: without one there is nothing to judge",
            );
            return None;
        }
        let mut checks = Vec::new();
        let mut names = HashSet::new();
        let mut ok = true;
        for (i, check) in raw.value.iter().enumerate() {
            let path = format!("checks[{i}]");
            let name = &check.value.name;
            if name.value.is_empty()
                || !name
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                self.problem(
                    format!("{path}.name"),
                    Some(name),
                    format!(
                        "expected a check name of letters, digits, `-`, `_` and `.`, not {:?}",
                        name.value
                    ),
                );
                ok = false;
            } else if !names.insert(name.value.clone()) {
                self.problem(
                    format!("{path}.name"),
                    Some(name),
                    format!("a check named {:?} is already defined", name.value),
                );
                ok = false;
            }
            match self.check(&path, check, traffic) {
                Some(spec) => checks.push(spec),
                None => ok = false,
            }
        }
        ok.then_some(checks)
    }

    fn check(
        &mut self,
        path: &str,
        at: &At<RawCheck>,
        traffic: Option<&TrafficSelector>,
    ) -> Option<CheckSpec> {
        let raw = &at.value;
        let kinds = [
            raw.error_rate.is_some(),
            raw.latency.is_some(),
            raw.samples.is_some(),
            raw.query.is_some(),
        ];
        if kinds.iter().filter(|&&k| k).count() != 1 {
            self.problem(
                path,
                Some(&raw.name),
                "expected exactly one of `error-rate`, `latency`, `samples` or `query`",
            );
            return None;
        }
        if raw.slo.is_none() && raw.baseline.is_none() {
            self.problem(
                path,
                Some(&raw.name),
                "expected `slo` (an absolute bound), `baseline` (a comparison), or both: a check with neither judges nothing",
            );
            return None;
        }
        let version_label = traffic.map(|t| t.label.as_str());
        let kind = if let Some(error_rate) = &raw.error_rate {
            let mut ok =
                self.metric_name(&format!("{path}.error-rate.requests"), &error_rate.requests);
            let error_matchers = match parse_matchers(&error_rate.errors.value) {
                Ok(matchers) if matchers.is_empty() => {
                    self.problem(
                        format!("{path}.error-rate.errors"),
                        Some(&error_rate.errors),
                        "expected matchers that select errors, like code=~\"5..\"",
                    );
                    ok = false;
                    matchers
                }
                Ok(matchers) => {
                    if let Some(label) = version_label
                        && matchers.iter().any(|m| m.name == label)
                    {
                        self.problem(
                            format!("{path}.error-rate.errors"),
                            Some(&error_rate.errors),
                            format!(
                                "the error matchers must not match on the version label `{label}`"
                            ),
                        );
                        ok = false;
                    }
                    matchers
                }
                Err(message) => {
                    self.problem(
                        format!("{path}.error-rate.errors"),
                        Some(&error_rate.errors),
                        message,
                    );
                    return None;
                }
            };
            ok.then(|| {
                CheckKind::ErrorRate(ErrorRateCheck {
                    requests_metric: error_rate.requests.value.clone(),
                    error_matchers,
                })
            })
        } else if let Some(latency) = &raw.latency {
            let ok = self.metric_name(&format!("{path}.latency.histogram"), &latency.histogram);
            let quantile = match &latency.quantile {
                None => Some(DEFAULT_QUANTILE),
                Some(q) => self.read(
                    format!("{path}.latency.quantile"),
                    q,
                    units::quantile(&q.value),
                ),
            };
            let histogram = latency
                .histogram
                .value
                .strip_suffix("_bucket")
                .unwrap_or(&latency.histogram.value)
                .to_owned();
            match (ok, quantile) {
                (true, Some(quantile)) => Some(CheckKind::Latency(LatencyCheck {
                    histogram,
                    quantile,
                })),
                _ => None,
            }
        } else if let Some(samples) = &raw.samples {
            let query = self.template(&format!("{path}.samples.query"), &samples.query);
            if let (Some(query), Some(label)) = (&query, version_label)
                && !query.uses(TemplateVariable::Label)
                && !query.source.contains(label)
            {
                self.problem(
                        format!("{path}.samples.query"),
                        Some(&samples.query),
                        format!("the query must give one series per version: group it by `{{{{label}}}}` (here `{label}`)"),
                    );
            }
            let min_samples = match &samples.min_samples {
                None => Some(DEFAULT_MIN_SAMPLES),
                Some(at) if (3..=10_000).contains(&at.value) => Some(at.value as usize),
                Some(at) => {
                    self.problem(
                        format!("{path}.samples.min-samples"),
                        Some(at),
                        "expected a count from 3 to 10000",
                    );
                    None
                }
            };
            let method = match &samples.method {
                None => Some(SamplesMethod::Sequential),
                Some(at) => match at.value.as_str() {
                    "sequential" => Some(SamplesMethod::Sequential),
                    "mann-whitney" => Some(SamplesMethod::MannWhitney),
                    other => {
                        self.problem(
                            format!("{path}.samples.method"),
                            Some(at),
                            format!("expected `sequential` (the default, anytime-valid) or `mann-whitney` (Kayenta's test once per step, assumes independent samples), not {other:?}"),
                        );
                        None
                    }
                },
            };
            let max_autocorrelation = match &samples.max_autocorrelation {
                None => Some(DEFAULT_MAX_AUTOCORRELATION),
                Some(at) => match units::number(&at.value) {
                    Ok(x) if (0.0..=MAX_AUTOCORRELATION_LIMIT).contains(&x) => {
                        if method == Some(SamplesMethod::MannWhitney) {
                            self.problem(
                                format!("{path}.samples.max-autocorrelation"),
                                Some(at),
                                "max-autocorrelation is an assumption of the sequential method; Mann–Whitney assumes independent samples",
                            );
                            None
                        } else {
                            Some(x)
                        }
                    }
                    Ok(x) => {
                        self.problem(
                            format!("{path}.samples.max-autocorrelation"),
                            Some(at),
                            format!("expected an autocorrelation from 0 to {MAX_AUTOCORRELATION_LIMIT} (default {DEFAULT_MAX_AUTOCORRELATION}), not {x}"),
                        );
                        None
                    }
                    Err(message) => {
                        self.problem(
                            format!("{path}.samples.max-autocorrelation"),
                            Some(at),
                            message,
                        );
                        None
                    }
                },
            };
            if let Some(slo) = &raw.slo {
                self.problem(
                    format!("{path}.slo"),
                    Some(slo),
                    "samples checks compare with the baseline; use a `query` check for an absolute bound",
                );
                return None;
            }
            match (query, min_samples, method, max_autocorrelation) {
                (Some(query), Some(min_samples), Some(method), Some(max_autocorrelation)) => {
                    Some(CheckKind::Samples(SamplesCheck {
                        query,
                        higher_is_worse: samples.higher_is_worse.unwrap_or(true),
                        min_samples,
                        method,
                        max_autocorrelation,
                    }))
                }
                _ => None,
            }
        } else {
            let query = raw.query.as_ref()?;
            if let Some(baseline) = &raw.baseline {
                self.problem(
                    format!("{path}.baseline"),
                    Some(baseline),
                    "query checks hold the canary to an absolute bound (`slo`); use a `samples` check to compare with the baseline",
                );
                return None;
            }
            self.template(&format!("{path}.query.promql"), &query.promql)
                .map(|promql| CheckKind::Query(QueryCheck { promql }))
        };
        let kind = kind?;
        let slo = match &raw.slo {
            None => Some(None),
            Some(slo) => self.slo(&format!("{path}.slo"), slo, &kind).map(Some),
        };
        let baseline = match &raw.baseline {
            None => Some(None),
            Some(baseline) => self
                .baseline(&format!("{path}.baseline"), baseline, &kind)
                .map(Some),
        };
        Some(CheckSpec {
            name: raw.name.value.clone(),
            kind,
            slo: slo?,
            baseline: baseline?,
        })
    }

    fn metric_name(&mut self, path: &str, name: &At<String>) -> bool {
        if is_metric_name(&name.value) {
            true
        } else {
            self.problem(
                path,
                Some(name),
                format!(
                    "expected a Prometheus metric name like http_requests_total, not {:?}",
                    name.value
                ),
            );
            false
        }
    }

    fn template(&mut self, path: &str, query: &At<String>) -> Option<QueryTemplate> {
        match QueryTemplate::parse(&query.value) {
            Ok(template) => Some(template),
            Err(message) => {
                self.problem(path, Some(query), message);
                None
            }
        }
    }

    /// Reads a bound in the unit of the check's kind.
    fn bound_value(&mut self, path: String, at: &At<RawScalar>, kind: &CheckKind) -> Option<f64> {
        let value = match kind {
            CheckKind::ErrorRate(_) => units::fraction(&at.value).and_then(|f| {
                if f > 1.0 {
                    Err(format!(
                        "{}; an error rate is at most 100%",
                        units::FRACTION_EXPECTED
                    ))
                } else {
                    Ok(f)
                }
            }),
            CheckKind::Latency(_) => units::latency_seconds(&at.value),
            CheckKind::Samples(_) | CheckKind::Query(_) => units::number(&at.value),
        };
        self.read(path, at, value)
    }

    fn slo(&mut self, path: &str, at: &At<RawSlo>, kind: &CheckKind) -> Option<AbsoluteBound> {
        let max = self.bound_value(format!("{path}.max"), &at.value.max, kind);
        let rollback_above = match &at.value.rollback_above {
            None => Some(None),
            Some(raw) => self
                .bound_value(format!("{path}.rollback-above"), raw, kind)
                .map(Some),
        };
        let (max, rollback_above) = (max?, rollback_above?);
        if let Some(above) = rollback_above
            && above < max
        {
            self.problem(
                format!("{path}.rollback-above"),
                at.value.rollback_above.as_ref(),
                "the rollback bound must be at least `max`: it is the looser, mid-step bound",
            );
            return None;
        }
        Some(AbsoluteBound {
            max,
            rollback_above,
        })
    }

    fn baseline(
        &mut self,
        path: &str,
        at: &At<RawBaseline>,
        kind: &CheckKind,
    ) -> Option<BaselineComparison> {
        let max_increase = at.value.max_increase.as_ref().map_or(0.0, |f| f.value.0);
        let slow_above = match (&at.value.slow_above, kind) {
            (None, _) => None,
            (Some(raw), CheckKind::Latency(_)) => Some(self.read(
                format!("{path}.slow-above"),
                raw,
                units::latency_seconds(&raw.value),
            )?),
            (Some(raw), _) => {
                self.problem(
                    format!("{path}.slow-above"),
                    Some(raw),
                    "`slow-above` applies to latency checks only",
                );
                return None;
            }
        };
        Some(BaselineComparison {
            max_increase,
            slow_above,
        })
    }
}

/// A DNS-1123 label: what Kubernetes accepts as a namespace or Service name.
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A DNS-1123 subdomain: what Kubernetes accepts as most objects' names.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    matches!(rest, Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace))
}
