//! The one builder of the tests' policies: the demo services' traffic labels and checks,
//! with the parts a test varies (metrics source, rollout timing, gateway, hooks) set by the
//! test. A new policy field then needs one change here, not one per copy of the YAML.

use std::path::{Path, PathBuf};

/// The checks of the rollout tests: the demo service's error rate (at most 1 %, and no more
/// than the baseline's) and its p95 latency (at most 100 ms, and at most 25 % over the
/// baseline's).
pub const ERRORS_AND_LATENCY: &str = r#"  - name: errors
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
"#;

/// A policy for the demo services (`version` label, `canary` and `stable`), as YAML.
#[derive(Clone, Debug)]
pub struct TestPolicy {
    service: String,
    selector: Option<String>,
    metrics: String,
    rollout: String,
    gateway: String,
    extra: String,
    checks: String,
}

impl TestPolicy {
    /// A policy for `service` with the [`ERRORS_AND_LATENCY`] checks and nothing else set.
    pub fn new(service: &str) -> TestPolicy {
        TestPolicy {
            service: service.to_owned(),
            selector: None,
            metrics: String::new(),
            rollout: String::new(),
            gateway: String::new(),
            extra: String::new(),
            checks: ERRORS_AND_LATENCY.to_owned(),
        }
    }

    /// `traffic.selector`: the PromQL matchers every query adds (`job="demo"`).
    pub fn selector(mut self, matchers: &str) -> TestPolicy {
        self.selector = Some(matchers.to_owned());
        self
    }

    /// Prometheus at `url`, with `settings` (YAML lines indented under `prometheus:`, e.g.
    /// `"    timeout: 5s\n"`).
    pub fn prometheus(mut self, url: &str, settings: &str) -> TestPolicy {
        self.metrics = format!("  prometheus:\n    url: {url}\n{settings}");
        self
    }

    /// YAML lines under `rollout:` (indented by two spaces).
    pub fn rollout(mut self, lines: &str) -> TestPolicy {
        self.rollout = lines.to_owned();
        self
    }

    /// YAML lines under `gateway:` (indented by two spaces).
    pub fn gateway(mut self, lines: &str) -> TestPolicy {
        self.gateway = lines.to_owned();
        self
    }

    /// More top-level YAML (`hooks:`, `notifications:`, `promotion:`…).
    pub fn extra(mut self, yaml: &str) -> TestPolicy {
        self.extra = yaml.to_owned();
        self
    }

    /// The policy as YAML.
    pub fn yaml(&self) -> String {
        let mut yaml = format!(
            "service: {}\ntraffic:\n  label: version\n  canary: canary\n  baseline: stable\n",
            self.service
        );
        if let Some(selector) = &self.selector {
            yaml.push_str(&format!("  selector: '{selector}'\n"));
        }
        for (section, body) in [
            ("metrics", &self.metrics),
            ("rollout", &self.rollout),
            ("gateway", &self.gateway),
        ] {
            if !body.trim().is_empty() {
                yaml.push_str(&format!("{section}:\n{}\n", body.trim_end()));
            }
        }
        if !self.extra.trim().is_empty() {
            yaml.push_str(&format!("{}\n", self.extra.trim_end()));
        }
        yaml.push_str(&format!("checks:\n{}", self.checks));
        yaml
    }

    /// Writes the policy to `dir/name`; returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.yaml()).expect("write the policy");
        path
    }
}
