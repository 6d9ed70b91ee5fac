//! The generic provider (`metrics.http`, `metrics.command`): how its request is made, and
//! what each `json` check reads from the JSON it answers.
//!
//! Request parts are templates with a few variables (`{{query}}`, `{{canary}}`, `{{start}}`,
//! …), parsed when the policy is read so that a misspelt variable is a lint error with its
//! line, never a literal `{{qurey}}` sent to the provider. JSONPaths (RFC 9535) are parsed
//! then too.

use std::time::Duration;

use serde::{Serialize, Serializer};

use super::{HeaderValueSpec, SecretSource};

/// A provider that answers JSON: one request (or command run) per check per tick.
///
/// Datadog (`metrics.datadog`) and CloudWatch (`metrics.cloudwatch`) are this provider
/// with a fixed request and a reader of their own answer ([`ProviderApi`]): the same
/// transport, retries, limits and secret handling, and `json` checks whose measure says what
/// is read (counts or a percentile) and so which guarantee applies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonSourceSpec {
    /// How a request is made.
    pub transport: JsonTransport,
    /// Whose API it is, which decides how answers are read.
    pub api: ProviderApi,
    /// Timeout of one request or run.
    pub timeout: Duration,
    /// Retries after a timeout, connection error, 429 or 5xx (HTTP only; a command is run
    /// once per check per tick).
    pub retries: u32,
    /// Largest answer read, in bytes; more is an `error` verdict for the check.
    pub max_answer_bytes: u64,
    /// How late the provider makes datapoints available (`lag` of `metrics.datadog` and
    /// `metrics.cloudwatch`; zero for the generic provider): a tick at `t` reads the data up
    /// to `t − lag`, and steps and the final soak last `lag` longer. Left out of the
    /// serialized form when zero, so that the policy digest of a generic provider stays what
    /// it was.
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub lag: Duration,
}

impl JsonSourceSpec {
    /// `http`, `command`, `datadog` or `cloudwatch`, as the policy writes it.
    pub fn name(&self) -> &'static str {
        match (&self.api, &self.transport) {
            (ProviderApi::Datadog, _) => "datadog",
            (ProviderApi::CloudWatch(_), _) => "cloudwatch",
            (ProviderApi::Json, JsonTransport::Http(_)) => "http",
            (ProviderApi::Json, JsonTransport::Command(_)) => "command",
        }
    }

    /// The secrets the provider sends (secret header values).
    pub fn secret_sources(&self) -> Vec<&SecretSource> {
        match &self.transport {
            JsonTransport::Http(http) => http
                .headers
                .iter()
                .filter_map(|(_, value)| match value {
                    HeaderValueSpec::Secret(source) => Some(source),
                    HeaderValueSpec::Plain(_) => None,
                })
                .collect(),
            JsonTransport::Command(command) => command.secret_sources.iter().collect(),
        }
    }
}

/// Whose API a [`JsonSourceSpec`] asks, which decides how its answers are read.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderApi {
    /// Any JSON, read with the checks' JSONPaths (`metrics.http`, `metrics.command`).
    Json,
    /// Datadog's metrics query API (`GET /api/v1/query`): the checks' queries are its
    /// metric queries grouped by the version tag, and each version's series are picked by
    /// their `tag_set` (`label:value`).
    Datadog,
    /// Amazon CloudWatch `GetMetricData` (AWS JSON 1.0 protocol), signed with SigV4 for the
    /// service `monitoring`; each version's metrics are picked by the dimension named by the
    /// traffic label.
    CloudWatch(super::SigV4Spec),
}

/// The metrics a check reads from CloudWatch: one `MetricStat` per version and value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CloudWatchQuery {
    /// The metrics' namespace, e.g. `AWS/ApplicationELB`.
    pub namespace: String,
    /// The dimensions both versions share; the version's own (the traffic label's) is added.
    pub dimensions: Vec<(String, String)>,
    /// What is read: `requests` and `errors` (statistic `Sum`), or `percentile` (an
    /// extended statistic such as `p95`).
    pub metrics: Vec<CloudWatchMetric>,
    /// `errors-may-be-unlisted`: pre-flight does not ask `ListMetrics` about the errors
    /// metric (a healthy service's 5XX count may have had no datapoint in two weeks).
    pub errors_may_be_unlisted: bool,
}

/// One metric of a [`CloudWatchQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CloudWatchMetric {
    /// `requests`, `errors` or `percentile`: the query ids are `canary_<what>` and
    /// `baseline_<what>`.
    pub what: &'static str,
    /// The metric's name, e.g. `RequestCount`.
    pub metric: String,
    /// `Sum`, or a percentile statistic such as `p95`.
    pub stat: String,
}

/// How the generic provider asks.
#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JsonTransport {
    /// An HTTP request.
    Http(HttpRequestSpec),
    /// A command printing JSON on stdout.
    Command(CommandSpec),
}

impl std::fmt::Debug for JsonTransport {
    /// Header values may be credentials: their names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonTransport::Http(http) => {
                let headers: Vec<&str> = http.headers.iter().map(|(n, _)| n.as_str()).collect();
                f.debug_struct("Http")
                    .field("url", &http.url.source)
                    .field("method", &http.method)
                    .field("body", &http.body.as_ref().map(|b| &b.source))
                    .field("content_type", &http.content_type)
                    .field("headers", &headers)
                    .finish()
            }
            JsonTransport::Command(command) => f
                .debug_struct("Command")
                .field("run", &command.run)
                .field("secret_env", &command.secret_env)
                .finish(),
        }
    }
}

/// An HTTP request template.
#[derive(Clone, PartialEq, Serialize)]
pub struct HttpRequestSpec {
    /// The URL.
    pub url: RequestTemplate,
    /// The method.
    pub method: HttpMethod,
    /// The body of a POST.
    pub body: Option<RequestTemplate>,
    /// The body's content type.
    pub content_type: String,
    /// Extra headers (secret ones read at every tick).
    pub headers: Vec<(String, HeaderValueSpec)>,
}

/// The HTTP method of the generic provider's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HttpMethod {
    /// `GET`.
    Get,
    /// `POST` with the body template.
    Post,
}

/// A command printing JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommandSpec {
    /// The program and its arguments, each a template (no shell).
    pub run: Vec<RequestTemplate>,
    /// Environment variables holding the command's credentials: secrets, redacted from
    /// whatever it prints.
    pub secret_env: Vec<String>,
    /// The same, as secret sources.
    #[serde(skip)]
    pub secret_sources: Vec<SecretSource>,
}

/// A template of a request part: text with `{{variable}}`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestTemplate {
    /// As written.
    pub source: String,
    /// Text and variables, in order.
    pub parts: Vec<RequestPart>,
}

impl Serialize for RequestTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// A piece of a [`RequestTemplate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestPart {
    /// Literal text.
    Text(String),
    /// A variable's value.
    Variable(RequestVariable),
}

/// What a request template may say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestVariable {
    /// The check's query (`json.query`), itself rendered first.
    Query,
    /// The canary's value of the version label.
    Canary,
    /// The baseline's value of the version label.
    Baseline,
    /// The version label's name.
    Label,
    /// The analysis start, RFC 3339 (UTC, milliseconds).
    Start,
    /// The tick's time, RFC 3339.
    End,
    /// The analysis start, Unix seconds.
    StartUnix,
    /// The tick's time, Unix seconds.
    EndUnix,
    /// The analysis start, Unix milliseconds (NRQL's `SINCE`).
    StartMillis,
    /// The tick's time, Unix milliseconds.
    EndMillis,
    /// Whole seconds since the start.
    Window,
    /// The check's name.
    Check,
}

impl RequestVariable {
    const ALL: [(&'static str, RequestVariable); 12] = [
        ("query", RequestVariable::Query),
        ("canary", RequestVariable::Canary),
        ("baseline", RequestVariable::Baseline),
        ("label", RequestVariable::Label),
        ("start", RequestVariable::Start),
        ("end", RequestVariable::End),
        ("start_unix", RequestVariable::StartUnix),
        ("end_unix", RequestVariable::EndUnix),
        ("start_ms", RequestVariable::StartMillis),
        ("end_ms", RequestVariable::EndMillis),
        ("window", RequestVariable::Window),
        ("check", RequestVariable::Check),
    ];

    /// The name written between braces.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(name, _)| name)
    }
}

impl RequestTemplate {
    /// Parses `{{variable}}`s (spaces inside the braces allowed). An unknown variable or an
    /// unclosed `{{` is an error naming it and the variables there are.
    pub fn parse(source: &str) -> Result<RequestTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(RequestPart::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!(
                    "`{{{{` at byte {} is never closed with `}}}}`",
                    source.len() - rest.len() + open
                ));
            };
            let name = after[..close].trim();
            let Some((_, variable)) = RequestVariable::ALL.iter().find(|(n, _)| *n == name) else {
                let known: Vec<String> = RequestVariable::ALL
                    .iter()
                    .map(|(n, _)| format!("{{{{{n}}}}}"))
                    .collect();
                return Err(format!(
                    "unknown variable `{{{{{name}}}}}`; the variables are {}",
                    known.join(", ")
                ));
            };
            parts.push(RequestPart::Variable(*variable));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(RequestPart::Text(rest.to_owned()));
        }
        Ok(RequestTemplate {
            source: source.to_owned(),
            parts,
        })
    }

    /// Whether the template says `variable`.
    pub fn uses(&self, variable: RequestVariable) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, RequestPart::Variable(v) if *v == variable))
    }

    /// The template with each variable's value, as `escape` makes it fit where it goes.
    pub fn render(
        &self,
        value: impl Fn(RequestVariable) -> String,
        escape: impl Fn(&str) -> String,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                RequestPart::Text(text) => out.push_str(text),
                RequestPart::Variable(v) => out.push_str(&escape(&value(*v))),
            }
        }
        out
    }
}

/// A check read from a generic provider's JSON answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonCheck {
    /// The check's query (`{{query}}` in the request); for Datadog its metric queries,
    /// comma-separated (requests first, then errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<RequestTemplate>,
    /// What is read, and so which guarantee applies. For Datadog and CloudWatch the paths
    /// are into the totals their reader makes of the answer (`$.canary.requests`, …).
    pub measure: JsonMeasure,
    /// For CloudWatch: the metrics the request asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudwatch: Option<CloudWatchQuery>,
}

/// What a `json` check reads, which decides how it is judged.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JsonMeasure {
    /// Cumulative request and error counts per version: the full sequential tests of an
    /// error-rate check (the SLO bound's confidence sequence, the comparison's e-value).
    Counts {
        /// Requests per version.
        requests: VersionPaths,
        /// Errors per version.
        errors: VersionPaths,
    },
    /// A latency percentile of the canary, computed by the provider: no counts, so no
    /// sequential test; the latest value is held to the SLO bound (a bounded-value check).
    Percentile {
        /// Where the canary's percentile is.
        canary: JsonPathText,
        /// Which percentile (0.95 for p95).
        quantile: f64,
        /// Seconds per unit of the value (1 for `s`, 0.001 for `ms`).
        unit_seconds: f64,
    },
    /// One value held to the SLO bound (a bounded-value check, like a `query` check).
    Value {
        /// Where the value is.
        path: JsonPathText,
    },
}

impl JsonMeasure {
    /// What the check's criteria can promise, in words, for `policy lint`, `policy explain`
    /// and the report.
    pub fn guarantee(&self) -> &'static str {
        match self {
            JsonMeasure::Counts { .. } => {
                "counts: the full sequential tests (anytime-valid SLO bound and comparison with the baseline)"
            }
            JsonMeasure::Percentile { .. } => {
                "a percentile only: a bounded-value check of the latest value against the SLO, with no statistical guarantee (the provider gives no counts to test)"
            }
            JsonMeasure::Value { .. } => {
                "a value: a bounded-value check of the latest value against the SLO"
            }
        }
    }
}

/// A JSONPath per version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionPaths {
    /// The canary's.
    pub canary: JsonPathText,
    /// The baseline's.
    pub baseline: JsonPathText,
}

/// A JSONPath (RFC 9535) that parsed when the policy was read, kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JsonPathText(pub String);

impl JsonPathText {
    /// Parses `text` as a JSONPath; the error says where it is wrong.
    pub fn parse(text: &str) -> Result<JsonPathText, String> {
        serde_json_path::JsonPath::parse(text)
            .map(|_| JsonPathText(text.to_owned()))
            .map_err(|e| format!("{text:?} is not a JSONPath (RFC 9535): {e}"))
    }

    /// The parsed path (it parsed when the policy was read; a hand-built one may not).
    pub fn compiled(&self) -> Result<serde_json_path::JsonPath, String> {
        serde_json_path::JsonPath::parse(&self.0)
            .map_err(|e| format!("{:?} is not a JSONPath (RFC 9535): {e}", self.0))
    }
}

impl std::fmt::Display for JsonPathText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{Judge, JudgeConfig, Moment};
    use crate::observation::{CheckObservation, Reading, Tick};
    use crate::policy::{CheckKind, Policy};

    #[test]
    fn templates_know_their_variables_and_name_the_ones_they_do_not() {
        let t = RequestTemplate::parse("a{{ query }}b{{start_ms}}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                RequestPart::Text("a".to_owned()),
                RequestPart::Variable(RequestVariable::Query),
                RequestPart::Text("b".to_owned()),
                RequestPart::Variable(RequestVariable::StartMillis),
            ]
        );
        assert!(t.uses(RequestVariable::Query) && !t.uses(RequestVariable::End));
        let rendered = t.render(|v| v.name().to_owned(), |v| format!("<{v}>"));
        assert_eq!(rendered, "a<query>b<start_ms>");
        let err = RequestTemplate::parse("{{nope}}").unwrap_err();
        assert!(
            err.contains("unknown variable `{{nope}}`") && err.contains("{{end_unix}}"),
            "{err}"
        );
        assert!(
            RequestTemplate::parse("x {{query")
                .unwrap_err()
                .contains("never closed")
        );
        // Single braces are text (a JSON body is full of them).
        assert_eq!(RequestTemplate::parse("{\"a\": 1}").unwrap().parts.len(), 1);
    }

    const POLICY: &str = "service: s
traffic: {label: version, canary: canary, baseline: stable}
metrics: {command: {run: [./m.sh, '{{query}}']}}
rollout: {interval: 10s}
checks:
  - name: errors
    json:
      requests: {canary: '$.c.n', baseline: '$.b.n'}
      errors: {canary: '$.c.e', baseline: '$.b.e'}
    slo: {max: 1%}
    baseline: {max-increase: 20%}
  - name: p95
    json:
      query: 'p95 of {{canary}}'
      percentile: {canary: '$.p95', quantile: p95, unit: ms}
    slo: {max: 300ms}
";

    #[test]
    fn counts_get_the_error_rate_tests_and_a_percentile_a_bound_said_to_have_no_guarantee() {
        let policy = Policy::from_yaml(POLICY, "p.yaml").expect("valid");
        let CheckKind::Json(p95) = &policy.checks[1].kind else {
            panic!("a json check")
        };
        assert_eq!(
            p95.measure,
            JsonMeasure::Percentile {
                canary: JsonPathText("$.p95".to_owned()),
                quantile: 0.95,
                unit_seconds: 0.001,
            }
        );
        assert_eq!(policy.checks[1].slo.unwrap().max, 0.3);
        let judge = Judge::new(
            &policy,
            JudgeConfig {
                sample_test_looks: 1,
            },
        )
        .expect("a judge");
        let mut state = judge.start();
        let at = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let tick = Tick {
            at,
            window_seconds: 600.0,
            readings: [
                (
                    "errors".to_owned(),
                    Reading::Observed(CheckObservation::Counts {
                        canary: crate::observation::RequestCounts {
                            requests: 2000.0,
                            errors: 200.0,
                        },
                        baseline: crate::observation::RequestCounts {
                            requests: 20000.0,
                            errors: 20.0,
                        }
                        .into(),
                    }),
                ),
                (
                    "p95".to_owned(),
                    Reading::Observed(CheckObservation::Value { value: 0.25 }),
                ),
            ]
            .into(),
            warnings: Vec::new(),
        };
        judge.observe(&mut state, &tick).expect("observed");
        let assessment = judge.assess(&mut state, Moment::StepEnd).expect("assessed");
        let result = |name: &str| {
            assessment
                .checks
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no {name} in {assessment:?}"))
        };
        // 10 % errors against 0.1 %: both error-rate criteria fail, with their e-value and
        // confidence sequence as evidence.
        assert_eq!(
            result("errors/baseline").verdict,
            crate::judge::Verdict::Fail
        );
        assert!(result("errors/baseline").evidence.e_value.is_some());
        assert_eq!(result("errors/slo").verdict, crate::judge::Verdict::Fail);
        let p95 = result("p95/slo");
        assert_eq!(p95.verdict, crate::judge::Verdict::Pass);
        assert!(
            p95.evidence.test.contains("no statistical guarantee"),
            "{:?}",
            p95.evidence
        );
    }
}
