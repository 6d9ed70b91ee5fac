//! Every validation rule, exercised directly: one row per rule (a policy with one fault, the
//! field path the problem must name and a fragment of its message).
//!
//! A rule is a call of `self.problem` or `self.read` in this module's files. The test reads
//! those files, lists every such call, and fails when the rows do not reach one of them, so a
//! new rule cannot land without a row. (`Validator::problem` is `#[track_caller]`, which is
//! how a problem is traced back to the call that raised it.)

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// The files whose rules the rows must reach, by name.
const SOURCES: [(&str, &str); 9] = [
    ("mod.rs", include_str!("mod.rs")),
    ("provider.rs", include_str!("provider.rs")),
    ("traffic.rs", include_str!("traffic.rs")),
    ("metrics.rs", include_str!("metrics.rs")),
    ("rollout.rs", include_str!("rollout.rs")),
    ("gateway.rs", include_str!("gateway.rs")),
    ("kubernetes.rs", include_str!("kubernetes.rs")),
    ("hooks.rs", include_str!("hooks.rs")),
    ("checks.rs", include_str!("checks.rs")),
];

/// A valid policy, one top-level section a line; a row replaces (or, with `""`, removes)
/// whole sections.
const BASE: [(&str, &str); 6] = [
    ("service", "service: checkout"),
    (
        "traffic",
        "traffic: {label: version, canary: canary, baseline: stable}",
    ),
    (
        "metrics",
        "metrics: {prometheus: {url: 'http://prometheus:9090'}}",
    ),
    ("rollout", "rollout: {steps: [10, 50, 100]}"),
    (
        "gateway",
        "gateway: {haproxy: {socket: '127.0.0.1:9999', backend: web, canary-server: web-canary, stable-server: web-stable}}",
    ),
    (
        "checks",
        "checks: [{name: errors, error-rate: {requests: http_requests_total, errors: 'code=~\"5..\"'}, slo: {max: 1%}}]",
    ),
];

/// A Datadog source for the rows of `datadog` checks.
const DATADOG: &str =
    "metrics: {datadog: {api-key: {env: DD_API_KEY}, application-key: {env: DD_APP_KEY}}}";
/// A CloudWatch source for the rows of `cloudwatch` checks.
const CLOUDWATCH: &str = "metrics: {cloudwatch: {region: eu-west-1}}";

/// One bad policy: the sections it changes, the path of the problem it must raise and a
/// fragment of that problem's message.
struct Row {
    edits: &'static [(&'static str, &'static str)],
    path: &'static str,
    message: &'static str,
}

const fn row(
    edits: &'static [(&'static str, &'static str)],
    path: &'static str,
    message: &'static str,
) -> Row {
    Row {
        edits,
        path,
        message,
    }
}

/// A check section holding one check, written in flow style.
macro_rules! check {
    ($body:literal) => {
        concat!("checks: [{", $body, "}]")
    };
}

/// Gateway sections for the Kubernetes rows.
macro_rules! gateway {
    ($body:literal) => {
        concat!("gateway: {", $body, "}")
    };
}

const ROWS: &[Row] = &[
    // mod.rs: the service, cross-section rules, shared helpers.
    row(
        &[("service", "service: 'bad name!'")],
        "service",
        "expected a service name",
    ),
    row(
        &[(
            "checks",
            check!("name: q, query: {promql: 'up'}, slo: {max: 1}"),
        )],
        "rollout.min-requests",
        "no check counts requests",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {scrape: {canary: ['http://c/metrics'], baseline: ['http://b/metrics']}}",
            ),
            ("rollout", "rollout: {steps: [10, 100], min-requests: 0}"),
            (
                "checks",
                check!("name: q, query: {promql: 'up'}, slo: {max: 1}"),
            ),
        ],
        "checks[0]",
        "needs `metrics.prometheus`",
    ),
    row(
        &[("rollout", "rollout: {steps: [10, 100], step-duration: 0s}")],
        "rollout.step-duration",
        "expected a duration longer than 0s",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {url: 'ftp://prometheus'}}",
        )],
        "metrics.prometheus.url",
        "expected an http:// or https:// URL",
    ),
    row(
        &[("gateway", "gateway: {command: {set: [route, '{nope}']}}")],
        "gateway.command.set[1]",
        "unknown placeholder `{nope}`",
    ),
    // traffic.rs
    row(
        &[(
            "traffic",
            "traffic: {label: 1x, canary: canary, baseline: stable}",
        )],
        "traffic.label",
        "expected a Prometheus label name",
    ),
    row(
        &[(
            "traffic",
            "traffic: {label: version, canary: '', baseline: stable}",
        )],
        "traffic.canary",
        "must not be empty",
    ),
    row(
        &[(
            "traffic",
            "traffic: {label: version, canary: same, baseline: same}",
        )],
        "traffic.baseline",
        "they must differ",
    ),
    row(
        &[(
            "traffic",
            "traffic: {label: version, canary: canary, baseline: stable, selector: 'version=\"x\"'}",
        )],
        "traffic.selector",
        "must not match on `version`",
    ),
    row(
        &[(
            "traffic",
            "traffic: {label: version, canary: canary, baseline: stable, selector: 'job=='}",
        )],
        "traffic.selector",
        "expected a quoted value",
    ),
    // provider.rs: the generic provider and its json checks.
    row(
        &[
            ("metrics", "metrics: {http: {url: 'ftp://x/{{query}}'}}"),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.url",
        "whose scheme, host and port are written out",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'https://user:hunter2@api.example/q?{{query}}'}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.url",
        "credentials do not belong in the URL",
    ),
    row(
        &[
            ("metrics", "metrics: {http: {url: 'http://x/q?{{qurey}}'}}"),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.url",
        "unknown variable `{{qurey}}`",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://x/q', method: PUT}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.method",
        "expected GET or POST",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://x/q', body: '{}'}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.body",
        "with `method: POST` only",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://x/q', method: POST, body: '{{nope}}'}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.body",
        "unknown variable",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://x/q', headers: {Authorization: 'Bearer x'}}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.headers.Authorization",
        "`{env: VARIABLE}` or `{file: PATH}`",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://x/q', retries: 11}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.retries",
        "expected at most 10 retries",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://x/q', max-answer-size: 10}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.max-answer-size",
        "expected at least 1KiB",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://x/q', max-answer-size: lots}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.http.max-answer-size",
        "",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {command: {run: [./m.sh], secret-env: ['API KEY']}}",
            ),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.command.secret-env[0]",
        "expected the name of an environment variable",
    ),
    row(
        &[
            ("metrics", "metrics: {command: {run: []}}"),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.command.run",
        "expected the program and its arguments",
    ),
    row(
        &[
            ("metrics", "metrics: {command: {run: [./m.sh, '{{when}}']}}"),
            (
                "checks",
                "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
            ),
        ],
        "metrics.command.run[1]",
        "unknown variable `{{when}}`",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://provider:8080/query'}}",
            ),
            (
                "checks",
                "checks: [{name: q, json: {query: 'x {{query}}', value: '$.v'}, slo: {max: 0}}]",
            ),
        ],
        "checks[0].json.query",
        "cannot contain `{{query}}`",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://provider:8080/query'}}",
            ),
            (
                "checks",
                "checks: [{name: q, json: {query: '{{x', value: '$.v'}, slo: {max: 0}}]",
            ),
        ],
        "checks[0].json.query",
        "is never closed",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://provider:8080/query'}}",
            ),
            (
                "checks",
                "checks: [{name: q, json: {value: '$.v', percentile: {canary: '$.p', quantile: p95}}, slo: {max: 0}}]",
            ),
        ],
        "checks[0].json",
        "expected exactly one of `requests` with `errors`",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://provider:8080/query'}}",
            ),
            (
                "checks",
                "checks: [{name: q, json: {requests: {canary: '$.a', baseline: '$.b'}}, slo: {max: 1%}}]",
            ),
        ],
        "checks[0].json",
        "counts need both `requests` and `errors`",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://provider:8080/query'}}",
            ),
            (
                "checks",
                "checks: [{name: q, json: {percentile: {canary: '$.p', quantile: p95, unit: min}}, slo: {max: 1s}}]",
            ),
        ],
        "checks[0].json.percentile.unit",
        "expected `s` or `ms`",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://provider:8080/query'}}",
            ),
            (
                "checks",
                "checks: [{name: q, json: {percentile: {canary: '$.p', quantile: 2}}, slo: {max: 1s}}]",
            ),
        ],
        "checks[0].json.percentile.quantile",
        "",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://provider:8080/query'}}",
            ),
            (
                "checks",
                "checks: [{name: q, json: {value: '$[?'}, slo: {max: 0}}]",
            ),
        ],
        "checks[0].json.value",
        "is not a JSONPath",
    ),
    row(
        &[
            (
                "metrics",
                "metrics: {http: {url: 'http://provider:8080/query'}}",
            ),
            (
                "checks",
                "checks: [{name: q, json: {value: '$.v'}, baseline: {max-increase: 10%}}]",
            ),
        ],
        "checks[0].baseline",
        "no comparison with the baseline can keep its error guarantee",
    ),
    row(
        &[(
            "metrics",
            "metrics: {http: {url: 'http://provider:8080/query'}}",
        )],
        "checks[0]",
        "every check says `json`",
    ),
    row(
        &[(
            "checks",
            "checks: [{name: errors, json: {requests: {canary: '$.c.n', baseline: '$.b.n'}, errors: {canary: '$.c.e', baseline: '$.b.e'}}, slo: {max: 1%}}]",
        )],
        "checks[0]",
        "set `metrics.http` or `metrics.command`",
    ),
    // provider.rs: Datadog and CloudWatch
    row(
        &[(
            "metrics",
            "metrics: {datadog: {site: datadoghq.eu, url: 'http://dd:8080', api-key: {env: K}, application-key: {env: A}}}",
        )],
        "metrics.datadog.url",
        "not both",
    ),
    row(
        &[(
            "metrics",
            "metrics: {datadog: {site: 'Datadog HQ', api-key: {env: K}, application-key: {env: A}}}",
        )],
        "metrics.datadog.site",
        "expected a Datadog site",
    ),
    row(
        &[(
            "metrics",
            "metrics: {datadog: {url: 'ftp://dd', api-key: {env: K}, application-key: {env: A}}}",
        )],
        "metrics.datadog.url",
        "expected a base URL",
    ),
    row(
        &[(
            "metrics",
            "metrics: {datadog: {api-key: {env: K, file: /k}, application-key: {env: A}}}",
        )],
        "metrics.datadog.api-key",
        "exactly one of `file` or `env`",
    ),
    row(
        &[(
            "metrics",
            "metrics: {datadog: {api-key: {env: K}, application-key: {env: A}, retries: 11}}",
        )],
        "metrics.datadog.retries",
        "at most 10 retries",
    ),
    row(
        &[("metrics", "metrics: {cloudwatch: {region: EU}}")],
        "metrics.cloudwatch.region",
        "expected an AWS region",
    ),
    row(
        &[(
            "metrics",
            "metrics: {cloudwatch: {region: eu-west-1, profile: ' '}}",
        )],
        "metrics.cloudwatch.profile",
        "expected the name of a profile",
    ),
    row(
        &[
            ("metrics", DATADOG),
            (
                "checks",
                "checks: [{name: e, datadog: {requests: 'sum:hits{*}.as_count()', errors: 'sum:errs{*} by {version}.as_count()'}, slo: {max: 1%}}]",
            ),
        ],
        "checks[0].datadog.requests",
        "group the query by the version tag",
    ),
    row(
        &[
            ("metrics", DATADOG),
            (
                "checks",
                "checks: [{name: e, datadog: {requests: 'sum:hits{*} by {version}.as_count(),sum:more{*} by {version}.as_count()', errors: 'sum:errs{*} by {version}.as_count()'}, slo: {max: 1%}}]",
            ),
        ],
        "checks[0].datadog.requests",
        "one query per field",
    ),
    row(
        &[
            ("metrics", DATADOG),
            (
                "checks",
                "checks: [{name: e, datadog: {requests: 'sum:hits{*} by {version}', errors: 'sum:errs{*} by {version}.as_count()'}, slo: {max: 1%}}]",
            ),
        ],
        "checks[0].datadog.requests",
        "needs `.as_count()`",
    ),
    row(
        &[
            ("metrics", DATADOG),
            (
                "checks",
                "checks: [{name: e, datadog: {requests: 'sum:hits{*} by {version}.as_count()', errors: 'errs{*} by {version}.as_count()'}, slo: {max: 1%}}]",
            ),
        ],
        "checks[0].datadog.errors",
        "without `sum:` Datadog averages them",
    ),
    row(
        &[
            ("metrics", DATADOG),
            (
                "checks",
                "checks: [{name: p, datadog: {percentile: 'avg:lat{*} by {version}'}, slo: {max: 1s}}]",
            ),
        ],
        "checks[0].datadog.percentile",
        "expected a percentile query",
    ),
    row(
        &[
            ("metrics", DATADOG),
            (
                "checks",
                "checks: [{name: p, datadog: {percentile: 'p95:lat{*} by {version}', unit: us}, slo: {max: 1s}}]",
            ),
        ],
        "checks[0].datadog.unit",
        "expected `s` or `ms`",
    ),
    row(
        &[
            ("metrics", DATADOG),
            (
                "checks",
                "checks: [{name: e, datadog: {requests: 'sum:hits{*} by {version}.as_count()'}, slo: {max: 1%}}]",
            ),
        ],
        "checks[0].datadog",
        "expected `requests` with `errors` (counts), or `percentile`",
    ),
    row(
        &[
            ("metrics", CLOUDWATCH),
            (
                "checks",
                "checks: [{name: e, cloudwatch: {namespace: AWS/ApplicationELB, dimensions: {version: x}, requests: RequestCount, errors: HTTPCode_Target_5XX_Count}, slo: {max: 1%}}]",
            ),
        ],
        "checks[0].cloudwatch.dimensions.version",
        "do not list it",
    ),
    row(
        &[
            ("metrics", CLOUDWATCH),
            (
                "checks",
                "checks: [{name: p, cloudwatch: {namespace: AWS/ApplicationELB, percentile: TargetResponseTime, quantile: median}, slo: {max: 1s}}]",
            ),
        ],
        "checks[0].cloudwatch.quantile",
        "expected a quantile",
    ),
    row(
        &[
            ("metrics", CLOUDWATCH),
            (
                "checks",
                "checks: [{name: e, cloudwatch: {namespace: AWS/ApplicationELB, requests: RequestCount}, slo: {max: 1%}}]",
            ),
        ],
        "checks[0].cloudwatch",
        "metrics read as `Sum`",
    ),
    row(
        &[
            ("metrics", CLOUDWATCH),
            (
                "checks",
                "checks: [{name: p, cloudwatch: {namespace: AWS/ApplicationELB, percentile: TargetResponseTime, errors-may-be-unlisted: true}, slo: {max: 1s}}]",
            ),
        ],
        "checks[0].cloudwatch.errors-may-be-unlisted",
        "applies to the errors metric of a counts check",
    ),
    row(
        &[(
            "checks",
            "checks: [{name: e, datadog: {requests: 'sum:hits{*} by {version}.as_count()', errors: 'sum:errs{*} by {version}.as_count()'}, slo: {max: 1%}}]",
        )],
        "checks[0]",
        "set `metrics.datadog`",
    ),
    row(
        &[("metrics", DATADOG)],
        "checks[0]",
        "every check says `datadog`",
    ),
    // metrics.rs
    row(
        &[("metrics", "metrics: {}")],
        "metrics",
        "expected one of `prometheus`, `scrape`, `http`, `command`, `datadog` or `cloudwatch`",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {}, scrape: {canary: ['http://c'], baseline: ['http://b']}}",
        )],
        "metrics",
        "a policy reads from one source",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {basic-auth: {username: u, password-file: /p, password-env: P}}}",
        )],
        "metrics.prometheus.basic-auth",
        "exactly one of `password-file` or `password-env`",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {bearer-token-file: /t, bearer-token-env: T}}",
        )],
        "metrics.prometheus",
        "at most one of `bearer-token-file`",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {headers: {Authorization: 'Bearer x'}}}",
        )],
        "metrics.prometheus.headers.Authorization",
        "credentials do not belong in the policy",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {headers: {'bad name': x}}}",
        )],
        "metrics.prometheus.headers.bad name",
        "is not a valid HTTP header name",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {headers: {X-Team: \"a\\u0007b\"}}}",
        )],
        "metrics.prometheus.headers.X-Team",
        "a character HTTP headers cannot carry",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {headers: {X-Key: {file: /k, env: K}}}}",
        )],
        "metrics.prometheus.headers.X-Key",
        "exactly one of `file` or `env`",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {bearer-token-env: T, sigv4: {region: us-east-1}}}",
        )],
        "metrics.prometheus",
        "`oauth2` and `sigv4`",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {oauth2: {token-url: 'https://u:p@idp/token', client-id: c, client-secret-env: S}}}",
        )],
        "metrics.prometheus.oauth2.token-url",
        "credentials do not belong in the URL",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {oauth2: {token-url: 'https://idp/token', client-id: ' ', client-secret-env: S}}}",
        )],
        "metrics.prometheus.oauth2.client-id",
        "expected the client's identifier",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {oauth2: {token-url: 'https://idp/token', client-id: c}}}",
        )],
        "metrics.prometheus.oauth2",
        "exactly one of `client-secret-file` or `client-secret-env`",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {oauth2: {token-url: 'https://idp/token', client-id: c, client-secret-env: S, scopes: ['read write']}}}",
        )],
        "metrics.prometheus.oauth2.scopes[0]",
        "is not an OAuth2 scope",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {sigv4: {region: US East}}}",
        )],
        "metrics.prometheus.sigv4.region",
        "expected an AWS region",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {sigv4: {region: us-east-1, service: 'A P S'}}}",
        )],
        "metrics.prometheus.sigv4.service",
        "expected an AWS service signing name",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {sigv4: {region: us-east-1, profile: ''}}}",
        )],
        "metrics.prometheus.sigv4.profile",
        "expected the name of a profile",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {client-cert-file: /c.pem}}",
        )],
        "metrics.prometheus",
        "`client-cert-file` and `client-key-file` go together",
    ),
    row(
        &[(
            "metrics",
            "metrics: {prometheus: {proxy-url: 'http://user:pw@proxy:3128'}}",
        )],
        "metrics.prometheus.proxy-url",
        "a proxy that asks for them is not supported yet",
    ),
    row(
        &[("metrics", "metrics: {prometheus: {max-answer-size: 100B}}")],
        "metrics.prometheus.max-answer-size",
        "expected at least 1KiB",
    ),
    row(
        &[("metrics", "metrics: {prometheus: {max-answer-size: lots}}")],
        "metrics.prometheus.max-answer-size",
        "not \"lots\"",
    ),
    row(
        &[("metrics", "metrics: {prometheus: {max-series: 0}}")],
        "metrics.prometheus.max-series",
        "expected at least 1 series",
    ),
    row(
        &[("metrics", "metrics: {prometheus: {retries: 11}}")],
        "metrics.prometheus.retries",
        "at most 10 retries",
    ),
    row(
        &[(
            "metrics",
            "metrics: {scrape: {canary: [], baseline: ['http://b']}}",
        )],
        "metrics.scrape.canary",
        "at least one /metrics URL",
    ),
    row(
        &[(
            "metrics",
            "metrics: {scrape: {canary: ['c:9090'], baseline: ['http://b']}}",
        )],
        "metrics.scrape.canary[0]",
        "expected an http:// or https:// URL",
    ),
    // rollout.rs
    row(
        &[(
            "rollout",
            "rollout: {steps: [10, 100], step-duration: 5m, max-step-duration: 1m}",
        )],
        "rollout.max-step-duration",
        "shorter than the step itself",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [10, 100], step-duration: 1m, interval: 2m}",
        )],
        "rollout.interval",
        "longer than a step",
    ),
    row(
        &[("rollout", "rollout: {steps: [10, 100], interval: 500ms}")],
        "rollout.interval",
        "at least 1s",
    ),
    row(
        &[("rollout", "rollout: {steps: [10, 100], min-requests: -1}")],
        "rollout.min-requests",
        "a count of 0 or more",
    ),
    row(
        &[("rollout", "rollout: {steps: [10, 100], alpha: 60%}")],
        "rollout.alpha",
        "false-rollback budget",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [10, 100], on-inconclusive: promote}",
        )],
        "rollout.on-inconclusive",
        "expected `rollback` or `hold`",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [10, 100], on-interrupt: ignore}",
        )],
        "rollout.on-interrupt",
        "expected `leave` or `rollback`",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [10, 100], max-failed-ticks: 0}",
        )],
        "rollout.max-failed-ticks",
        "from 1 to 1000",
    ),
    row(
        &[("rollout", "rollout: {steps: []}")],
        "rollout.steps",
        "at least one step",
    ),
    row(
        &[("rollout", "rollout: {steps: [0, 100]}")],
        "rollout.steps[0]",
        "a canary weight from 1 to 100",
    ),
    row(
        &[("rollout", "rollout: {steps: [50, 25, 100]}")],
        "rollout.steps[1]",
        "steps must increase",
    ),
    row(
        &[("rollout", "rollout: {steps: [10, 50]}")],
        "rollout.steps",
        "the last step must be 100",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [{mirror: {percent: 5}, weight: 10}, 100]}",
        )],
        "rollout.steps[0]",
        "unknown field `weight`",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [{header: {name: 'a b', value: x}}, 100]}",
        )],
        "rollout.steps[0].header.name",
        "is not an HTTP header name",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [{header: {name: x-canary, value: ''}}, 100]}",
        )],
        "rollout.steps[0].header.value",
        "non-empty header value",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [{cookie: {name: 'a;b'}}, 100]}",
        )],
        "rollout.steps[0].cookie.name",
        "is not a cookie name",
    ),
    row(
        &[("rollout", "rollout: {steps: [{mirror: {percent: 0}}, 100]}")],
        "rollout.steps[0].mirror.percent",
        "1 to 100",
    ),
    row(
        &[("rollout", "rollout: {steps: [{}, 100]}")],
        "rollout.steps[0]",
        "exactly one of `header`, `cookie` or `mirror`",
    ),
    row(
        &[("rollout", "rollout: {steps: [{mirror: {percent: 5}}, 100]}")],
        "rollout.steps[0]",
        "a `mirror` step is not supported by the `haproxy` router",
    ),
    row(
        &[(
            "rollout",
            "rollout: {steps: [{header: {name: x-canary, value: '1'}}, 100]}",
        )],
        "rollout.steps[0]",
        "a `header` step needs `gateway.haproxy.route-acl`",
    ),
    row(
        &[
            (
                "rollout",
                "rollout: {steps: [{header: {name: x-other, value: '1'}}, 100]}",
            ),
            (
                "gateway",
                "gateway: {haproxy: {socket: /run/h.sock, backend: web, canary-server: c, stable-server: s, route-acl: {file: c.acl, header: x-canary}}}",
            ),
        ],
        "rollout.steps[0]",
        "reads header \"x-canary\", not \"x-other\"",
    ),
    row(
        &[("rollout", "rollout: {steps: [100]}")],
        "rollout.steps",
        "at least one step below 100",
    ),
    // gateway.rs
    row(
        &[(
            "gateway",
            "gateway: {command: {set: [a]}, nginx: {upstream-file: f, upstream: u, canary: 'c:1', stable: 's:1'}}",
        )],
        "gateway",
        "expected exactly one of `haproxy`",
    ),
    row(
        &[(
            "gateway",
            "gateway: {haproxy: {socket: nowhere, backend: web, canary-server: c, stable-server: s}}",
        )],
        "gateway.haproxy.socket",
        "expected a unix socket path",
    ),
    row(
        &[(
            "gateway",
            "gateway: {haproxy: {socket: /run/h.sock, backend: 'a b', canary-server: c, stable-server: s}}",
        )],
        "gateway.haproxy.backend",
        "expected an HAProxy name",
    ),
    row(
        &[(
            "gateway",
            "gateway: {haproxy: {socket: /run/h.sock, backend: web, canary-server: x, stable-server: x}}",
        )],
        "gateway.haproxy.stable-server",
        "the canary and stable servers must differ",
    ),
    row(
        &[(
            "gateway",
            "gateway: {haproxy: {socket: /run/h.sock, backend: web, canary-server: c, stable-server: s, route-acl: {file: 'a b.acl', header: x-canary}}}",
        )],
        "gateway.haproxy.route-acl.file",
        "expected the ACL file as haproxy.cfg names it",
    ),
    row(
        &[(
            "gateway",
            "gateway: {haproxy: {socket: /run/h.sock, backend: web, canary-server: c, stable-server: s, route-acl: {file: c.acl, header: 'x canary'}}}",
        )],
        "gateway.haproxy.route-acl.header",
        "is not an HTTP header name",
    ),
    row(
        &[(
            "gateway",
            "gateway: {haproxy: {socket: /run/h.sock, backend: web, canary-server: c, stable-server: s, route-acl: {file: c.acl, cookie: 'a;b'}}}",
        )],
        "gateway.haproxy.route-acl.cookie",
        "is not a cookie name",
    ),
    row(
        &[(
            "gateway",
            "gateway: {haproxy: {socket: /run/h.sock, backend: web, canary-server: c, stable-server: s, route-acl: {file: c.acl}}}",
        )],
        "gateway.haproxy.route-acl",
        "expected exactly one of `header`",
    ),
    row(
        &[(
            "gateway",
            "gateway: {nginx: {upstream-file: f, upstream: 'a b', canary: 'c:1', stable: 's:1'}}",
        )],
        "gateway.nginx.upstream",
        "expected an upstream name",
    ),
    row(
        &[(
            "gateway",
            "gateway: {nginx: {upstream-file: f, upstream: u, canary: 'c:1;', stable: 's:1'}}",
        )],
        "gateway.nginx.canary",
        "expected a server address",
    ),
    row(
        &[(
            "gateway",
            "gateway: {nginx: {upstream-file: '', upstream: u, canary: 'c:1', stable: 's:1'}}",
        )],
        "gateway.nginx.upstream-file",
        "expected a file path",
    ),
    row(
        &[(
            "gateway",
            "gateway: {nginx: {upstream-file: f, upstream: u, canary: 'c:1', stable: 's:1', weight-probe: localhost}}",
        )],
        "gateway.nginx.weight-probe",
        "expected an address NGINX listens on for the weight probe",
    ),
    row(
        &[(
            "gateway",
            "gateway: {nginx: {upstream-file: f, upstream: u, canary: 'c:1', stable: 's:1', reload: []}}",
        )],
        "gateway.nginx.reload",
        "expected a command and its arguments",
    ),
    row(
        &[("gateway", "gateway: {command: {set: []}}")],
        "gateway.command.set",
        "expected a command and its arguments",
    ),
    row(
        &[("gateway", "gateway: {command: {set: [a], get: []}}")],
        "gateway.command.get",
        "expected a command and its arguments",
    ),
    // kubernetes.rs
    row(
        &[("promotion", "promotion: {}")],
        "promotion",
        "expected `kubernetes`",
    ),
    row(
        &[
            ("gateway", ""),
            (
                "promotion",
                "promotion: {kubernetes: {stable-deployment: web, canary-deployment: web-canary}}",
            ),
        ],
        "promotion.kubernetes",
        "it needs a `gateway`",
    ),
    row(
        &[(
            "promotion",
            "promotion: {kubernetes: {stable-deployment: web, canary-deployment: web}}",
        )],
        "promotion.kubernetes.canary-deployment",
        "Deployments must differ",
    ),
    row(
        &[(
            "gateway",
            gateway!("nginx-ingress: {ingress: web, canary-ingress: web}"),
        )],
        "gateway.nginx-ingress.canary-ingress",
        "must not be the stable one",
    ),
    row(
        &[(
            "gateway",
            gateway!("istio-virtual-service: {name: vs, stable: {host: web}, canary: {host: web}}"),
        )],
        "gateway.istio-virtual-service.canary.host",
        "destinations must differ",
    ),
    row(
        &[(
            "gateway",
            gateway!("http-route: {name: r, context: ' ', stable: a, canary: b}"),
        )],
        "gateway.http-route.context",
        "expected a kubeconfig context name",
    ),
    row(
        &[(
            "gateway",
            gateway!("http-route: {name: Bad_Name, stable: a, canary: b}"),
        )],
        "gateway.http-route.name",
        "expected a Kubernetes object name",
    ),
    row(
        &[(
            "gateway",
            gateway!("http-route: {name: r, namespace: Bad.ns, stable: a, canary: b}"),
        )],
        "gateway.http-route.namespace",
        "expected a namespace",
    ),
    row(
        &[(
            "gateway",
            gateway!("replica-count: {stable-deployment: a, canary-deployment: a, replicas: 4}"),
        )],
        "gateway.replica-count.canary-deployment",
        "Deployments must differ",
    ),
    row(
        &[(
            "gateway",
            gateway!("replica-count: {stable-deployment: a, canary-deployment: b, replicas: 1}"),
        )],
        "gateway.replica-count.replicas",
        "from 2 (one canary, one stable)",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "replica-count: {stable-deployment: a, canary-deployment: b, replicas: 4, context: ''}"
            ),
        )],
        "gateway.replica-count.context",
        "expected a kubeconfig context name",
    ),
    row(
        &[
            (
                "gateway",
                gateway!(
                    "replica-count: {stable-deployment: a, canary-deployment: b, replicas: 10}"
                ),
            ),
            ("rollout", "rollout: {steps: [2, 50, 100]}"),
        ],
        "gateway.replica-count.replicas",
        "the step at 2 % of 10 pods gives no canary pod (0 canary, 10 stable",
    ),
    row(
        &[
            (
                "gateway",
                gateway!(
                    "replica-count: {stable-deployment: a, canary-deployment: b, replicas: 4}"
                ),
            ),
            (
                "promotion",
                "promotion: {kubernetes: {stable-deployment: x, canary-deployment: b}}",
            ),
        ],
        "promotion.kubernetes",
        "the same stable and canary Deployments",
    ),
    row(
        &[(
            "gateway",
            gateway!("traefik-service: {name: t, stable: 'a/b', canary: c}"),
        )],
        "gateway.traefik-service.stable",
        "spec.weighted.services[].name",
    ),
    row(
        &[(
            "gateway",
            gateway!("smi-traffic-split: {name: s, stable: a, canary: a}"),
        )],
        "gateway.smi-traffic-split.canary",
        "backends must differ",
    ),
    row(
        &[(
            "gateway",
            gateway!("http-route: {name: r, rule: -1, stable: a, canary: b}"),
        )],
        "gateway.http-route.rule",
        "an index from 0, not -1",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: vs, route: ' ', stable: {host: a}, canary: {host: b}}"
            ),
        )],
        "gateway.istio-virtual-service.route",
        "expected a name or an index from 0",
    ),
    row(
        &[(
            "gateway",
            gateway!("http-route: {name: r, stable: a, canary: b, weight-total: 50}"),
        )],
        "gateway.http-route.weight-total",
        "weight total from 100 to 1000000",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "smi-traffic-split: {name: s, api-version: split.smi-spec.io/v9, stable: a, canary: b}"
            ),
        )],
        "gateway.smi-traffic-split.api-version",
        "expected one of split.smi-spec.io/v1alpha2",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "smi-traffic-split: {name: s, stable: a, canary: b, cluster-domain: Cluster.Local}"
            ),
        )],
        "gateway.smi-traffic-split.cluster-domain",
        "expected a DNS domain such as cluster.local",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "smi-traffic-split: {name: s, stable: a, canary: b, service-profile: false, cluster-domain: example.org}"
            ),
        )],
        "gateway.smi-traffic-split.cluster-domain",
        "Linkerd's ServiceProfile, which is not read",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "smi-traffic-split: {name: s, api-version: split.smi-spec.io/v1alpha4, stable: a, canary: b, apply-timeout: 5s}"
            ),
        )],
        "gateway.smi-traffic-split.apply-timeout",
        "Linkerd's ServiceProfile, which is not read",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: vs, api-version: networking.istio.io/v2, stable: {host: a}, canary: {host: c}}"
            ),
        )],
        "gateway.istio-virtual-service.api-version",
        "expected one of networking.istio.io/v1, networking.istio.io/v1beta1",
    ),
    row(
        &[(
            "gateway",
            gateway!("nginx-ingress: {ingress: shop, annotation-prefix: 'Nginx/ingress'}"),
        )],
        "gateway.nginx-ingress.annotation-prefix",
        "expected an annotation prefix such as",
    ),
    row(
        &[(
            "gateway",
            gateway!("istio-virtual-service: {name: vs, stable: {host: 'a b'}, canary: {host: c}}"),
        )],
        "gateway.istio-virtual-service.stable.host",
        "as `destination.host` writes it",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: vs, stable: {host: a, subset: Bad_}, canary: {host: c}}"
            ),
        )],
        "gateway.istio-virtual-service.stable.subset",
        "DestinationRule subset name",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: vs, protocol: tls, route: primary, stable: {host: a}, canary: {host: b}}"
            ),
        )],
        "gateway.istio-virtual-service.route",
        "Istio's tls routes have no `name`",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: vs, destination-rule: dr, stable: {host: a}, canary: {host: b}}"
            ),
        )],
        "gateway.istio-virtual-service.destination-rule",
        "is read for subset routes only",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: vs, protocol: udp, stable: {host: a}, canary: {host: b}}"
            ),
        )],
        "gateway.istio-virtual-service.protocol",
        "expected `http`, `tls` or `tcp`",
    ),
    row(
        &[(
            "gateway",
            gateway!("http-route: {name: r, stable: a, canary: b, more-routes: [{name: r}]}"),
        )],
        "gateway.http-route.more-routes[0].name",
        "is named twice",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "http-route: {name: r, rule: 0, stable: a, canary: b, generate: {gateway: web, port: 80, owner-deployment: d}}"
            ),
        )],
        "gateway.http-route.generate",
        "a generated HTTPRoute has one rule",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "http-route: {name: r, stable: a, canary: b, more-routes: [{name: s}], generate: {gateway: web, port: 80, owner-deployment: d}}"
            ),
        )],
        "gateway.http-route.generate",
        "does not go with `more-routes`",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "http-route: {name: r, stable: a, canary: b, generate: {gateway: web, port: 70000, owner-deployment: d}}"
            ),
        )],
        "gateway.http-route.generate.port",
        "expected a port from 1 to 65535",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "http-route: {name: r, stable: a, canary: b, generate: {gateway: web, port: 80, owner-deployment: d, hostnames: ['a b']}}"
            ),
        )],
        "gateway.http-route.generate.hostnames[0]",
        "expected a host name",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: v, stable: {host: a}, canary: {host: b}, route: 0, generate: {hosts: [a.shop], owner-deployment: d}}"
            ),
        )],
        "gateway.istio-virtual-service.generate",
        "a generated VirtualService has one route",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: v, stable: {host: a}, canary: {host: b}, more-virtual-services: [{name: w}], generate: {hosts: [a.shop], owner-deployment: d}}"
            ),
        )],
        "gateway.istio-virtual-service.generate",
        "does not go with `more-virtual-services`",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: v, stable: {host: a}, canary: {host: b}, protocol: tcp, generate: {hosts: [a.shop], owner-deployment: d}}"
            ),
        )],
        "gateway.istio-virtual-service.generate",
        "leave `protocol` out",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: v, stable: {host: a}, canary: {host: b}, generate: {hosts: [], owner-deployment: d}}"
            ),
        )],
        "gateway.istio-virtual-service.generate.hosts",
        "expected at least one host",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: v, stable: {host: a}, canary: {host: b}, generate: {hosts: ['a b'], owner-deployment: d}}"
            ),
        )],
        "gateway.istio-virtual-service.generate.hosts[0]",
        "expected a host name",
    ),
    row(
        &[(
            "gateway",
            gateway!(
                "istio-virtual-service: {name: v, stable: {host: a}, canary: {host: b}, generate: {hosts: [a.shop], gateways: ['a/b/c'], owner-deployment: d}}"
            ),
        )],
        "gateway.istio-virtual-service.generate.gateways[0]",
        "expected an Istio Gateway",
    ),
    // hooks.rs
    row(
        &[(
            "hooks",
            "hooks: [{name: ' ', on: [before], command: [true]}]",
        )],
        "hooks[0].name",
        "expected a name",
    ),
    row(
        &[(
            "hooks",
            "hooks: [{name: h, on: [before], command: [true]}, {name: h, on: [step], command: [true]}]",
        )],
        "hooks[1].name",
        "already defined",
    ),
    row(
        &[("hooks", "hooks: [{name: h, on: [], command: [true]}]")],
        "hooks[0].on",
        "expected one or more of before",
    ),
    row(
        &[(
            "hooks",
            "hooks: [{name: h, on: [before], webhook: {url: 'http://h'}, env: {pass: [HOME]}}]",
        )],
        "hooks[0].env",
        "only a command hook has an environment",
    ),
    row(
        &[(
            "hooks",
            "hooks: [{name: h, on: [before], command: [true], env: {pass: [CANARY_WEIGHT]}}]",
        )],
        "hooks[0].env.pass[0]",
        "set by canary itself",
    ),
    row(
        &[("hooks", "hooks: [{name: h, on: [after], command: [true]}]")],
        "hooks[0].on[0]",
        "not \"after\"",
    ),
    row(
        &[("hooks", "hooks: [{name: h, on: [before], command: []}]")],
        "hooks[0].command",
        "expected a command and its arguments",
    ),
    row(
        &[(
            "hooks",
            "hooks: [{name: h, on: [before], webhook: {url: 'http://h', secret-env: S, secret-file: /s}}]",
        )],
        "hooks[0].webhook",
        "at most one of `secret-env` and `secret-file`",
    ),
    row(
        &[("hooks", "hooks: [{name: h, on: [before]}]")],
        "hooks[0]",
        "exactly one of `command` or `webhook`",
    ),
    row(
        &[(
            "hooks",
            "hooks: [{name: h, on: [before], command: [true], on-failure: retry}]",
        )],
        "hooks[0].on-failure",
        "expected `rollback` or `ignore`",
    ),
    row(
        &[(
            "notify",
            "notify: [{webhook: {url: 'http://h', secret-env: S, secret-file: /s}}]",
        )],
        "notify[0].webhook",
        "at most one of `secret-env` and `secret-file`",
    ),
    row(
        &[("notify", "notify: [{slack: {}}]")],
        "notify[0].slack",
        "exactly one of `webhook-url-env` and `webhook-url-file`",
    ),
    row(
        &[("notify", "notify: [{}]")],
        "notify[0]",
        "exactly one of `webhook` or `slack`",
    ),
    row(
        &[(
            "notify",
            "notify: [{slack: {webhook-url-env: S}, on: [exploded]}]",
        )],
        "notify[0].on[0]",
        "not \"exploded\"",
    ),
    // checks.rs
    row(&[("checks", "checks: []")], "checks", "at least one check"),
    row(
        &[(
            "checks",
            check!("name: 'a b', latency: {histogram: h}, slo: {max: 1s}"),
        )],
        "checks[0].name",
        "expected a check name",
    ),
    row(
        &[(
            "checks",
            "checks: [{name: l, latency: {histogram: h}, slo: {max: 1s}}, {name: l, latency: {histogram: h}, slo: {max: 1s}}]",
        )],
        "checks[1].name",
        "already defined",
    ),
    row(
        &[(
            "checks",
            check!("name: l, latency: {histogram: h}, query: {promql: up}, slo: {max: 1s}"),
        )],
        "checks[0]",
        "expected exactly one of `error-rate`, `latency`, `samples`, `query`, `json`, `datadog` or `cloudwatch`",
    ),
    row(
        &[("checks", check!("name: l, latency: {histogram: h}"))],
        "checks[0]",
        "judges nothing",
    ),
    row(
        &[(
            "checks",
            check!("name: e, error-rate: {requests: r, errors: ''}, slo: {max: 1%}"),
        )],
        "checks[0].error-rate.errors",
        "expected matchers that select errors",
    ),
    row(
        &[(
            "checks",
            check!("name: e, error-rate: {requests: r, errors: 'version=\"x\"'}, slo: {max: 1%}"),
        )],
        "checks[0].error-rate.errors",
        "must not match on the version label `version`",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: e, error-rate: {requests: r, errors: '__name__=\"errs\"'}, slo: {max: 1%}"
            ),
        )],
        "checks[0].error-rate.errors",
        "must not match on `__name__`",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: e, error-rate: {requests: r, errors: 'code=~\"(?x) 5..\"'}, slo: {max: 1%}"
            ),
        )],
        "checks[0].error-rate.errors",
        "read differently",
    ),
    row(
        &[(
            "checks",
            check!("name: e, error-rate: {requests: r, errors: 'code=='}, slo: {max: 1%}"),
        )],
        "checks[0].error-rate.errors",
        "expected a quoted value",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: e, error-rate: {requests: 'bad-name', errors: 'code=\"500\"'}, slo: {max: 1%}"
            ),
        )],
        "checks[0].error-rate.requests",
        "expected a Prometheus metric name",
    ),
    row(
        &[(
            "checks",
            check!("name: l, latency: {histogram: h, quantile: 2}, slo: {max: 1s}"),
        )],
        "checks[0].latency.quantile",
        "strictly between 0 and 1",
    ),
    row(
        &[(
            "checks",
            check!("name: s, samples: {query: 'sum(x)'}, baseline: {max-increase: 10%}"),
        )],
        "checks[0].samples.query",
        "one series per version",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: s, samples: {query: 'sum by ({{label}}) (x{ {{selector}} })', min-samples: 2}, baseline: {}"
            ),
        )],
        "checks[0].samples.min-samples",
        "a count from 3 to 10000",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: s, samples: {query: 'sum by ({{label}}) (x{ {{selector}} })', method: t-test}, baseline: {}"
            ),
        )],
        "checks[0].samples.method",
        "expected `sequential`",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: s, samples: {query: 'sum by ({{label}}) (x{ {{selector}} })', method: mann-whitney, max-autocorrelation: 0.5}, baseline: {}"
            ),
        )],
        "checks[0].samples.max-autocorrelation",
        "an assumption of the sequential method",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: s, samples: {query: 'sum by ({{label}}) (x{ {{selector}} })', max-autocorrelation: 5}, baseline: {}"
            ),
        )],
        "checks[0].samples.max-autocorrelation",
        "expected an autocorrelation from 0 to",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: s, samples: {query: 'sum by ({{label}}) (x{ {{selector}} })', max-autocorrelation: lots}, baseline: {}"
            ),
        )],
        "checks[0].samples.max-autocorrelation",
        "expected a number like 0 or 2.5, not \"lots\"",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: s, samples: {query: 'sum by ({{label}}) (x{ {{selector}} })'}, slo: {max: 1}"
            ),
        )],
        "checks[0].slo",
        "use a `query` check for an absolute bound",
    ),
    row(
        &[(
            "checks",
            check!("name: q, query: {promql: up}, slo: {max: 1}, baseline: {}"),
        )],
        "checks[0].baseline",
        "use a `samples` check to compare with the baseline",
    ),
    row(
        &[(
            "checks",
            check!("name: q, query: {promql: 'x{ {{nope}} }'}, slo: {max: 1}"),
        )],
        "checks[0].query.promql",
        "unknown variable `{{nope}}`",
    ),
    row(
        &[(
            "checks",
            check!("name: l, latency: {histogram: h}, slo: {max: fast}"),
        )],
        "checks[0].slo.max",
        "expected a latency like",
    ),
    row(
        &[(
            "checks",
            check!("name: l, latency: {histogram: h}, slo: {max: 2s, rollback-above: 1s}"),
        )],
        "checks[0].slo.rollback-above",
        "the rollback bound must be at least `max`",
    ),
    row(
        &[(
            "checks",
            check!("name: l, latency: {histogram: h}, baseline: {slow-above: fast}"),
        )],
        "checks[0].baseline.slow-above",
        "expected a latency like",
    ),
    row(
        &[(
            "checks",
            check!(
                "name: e, error-rate: {requests: r, errors: 'code=\"500\"'}, baseline: {slow-above: 1s}"
            ),
        )],
        "checks[0].baseline.slow-above",
        "applies to latency checks only",
    ),
];

/// The policy text of a row: the base with the row's sections replaced or removed.
fn policy_text(edits: &[(&str, &str)]) -> String {
    let mut sections: BTreeMap<&str, &str> = BASE.into_iter().collect();
    for &(section, text) in edits {
        sections.insert(section, text);
    }
    sections
        .values()
        .filter(|text| !text.is_empty())
        .map(|text| format!("{text}\n"))
        .collect()
}

/// Validates `text` as `parse` does, and also gives back where each problem was raised.
fn validate(text: &str) -> (Vec<Problem>, Vec<&'static std::panic::Location<'static>>) {
    let raw = match deserialize(text) {
        Parsed {
            raw: Some(raw),
            problems,
            ..
        } if problems.is_empty() => raw,
        Parsed { problems, .. } => {
            panic!("the row does not parse, so it reaches no rule: {problems:?}\n{text}")
        }
    };
    let mut validator = Validator::default();
    validator.policy(raw);
    (validator.problems, validator.sites)
}

/// Every rule call in the sources, as (file name, line). The call inside `Validator::read`
/// forwards its caller's problem (both are `#[track_caller]`), so it is no rule of its own.
fn rule_sites() -> BTreeSet<(&'static str, u32)> {
    let mut sites = BTreeSet::new();
    for (file, source) in SOURCES {
        let mut in_read = false;
        for (i, line) in source.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("pub(super) fn ") || code.starts_with("fn ") {
                in_read = code.contains("fn read<");
            }
            let is_call = code.contains("self.problem(")
                || code.contains("self.problem::<")
                || code.contains("self.read(");
            if is_call && !in_read {
                sites.insert((file, i as u32 + 1));
            }
        }
    }
    sites
}

fn file_name(location: &std::panic::Location<'_>) -> &'static str {
    let path = location.file();
    SOURCES
        .iter()
        .map(|(name, _)| *name)
        .find(|name| path.ends_with(&format!("validate/{name}")))
        .unwrap_or_else(|| panic!("a problem raised outside validate/: {path}"))
}

#[test]
fn the_base_policy_is_valid() {
    let (problems, _) = validate(&policy_text(&[]));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_row_raises_its_problem_and_every_rule_has_a_row() {
    let mut reached = BTreeSet::new();
    let mut failures = Vec::new();
    for row in ROWS {
        let text = policy_text(row.edits);
        let (problems, sites) = validate(&text);
        reached.extend(sites.iter().map(|site| (file_name(site), site.line())));
        let found = problems
            .iter()
            .any(|p| p.path == row.path && p.message.contains(row.message));
        if !found {
            failures.push(format!(
                "expected a problem at `{}` containing {:?}; got {problems:#?}\nfrom:\n{text}",
                row.path, row.message
            ));
        }
        // A row tests one rule's message, so every problem it raises has one.
        for problem in &problems {
            assert!(!problem.message.trim().is_empty(), "{problem:?}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    let rules = rule_sites();
    let unreached: Vec<_> = rules.difference(&reached).collect();
    assert!(
        unreached.is_empty(),
        "no row reaches the rules at {unreached:?}: add a row to ROWS for each"
    );
    let unknown: Vec<_> = reached.difference(&rules).collect();
    assert!(
        unknown.is_empty(),
        "problems raised at {unknown:?}, which the scan of the sources does not list as rules"
    );
}
