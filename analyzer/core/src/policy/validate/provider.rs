//! The generic provider: `metrics.http` and `metrics.command` (request templates, headers,
//! limits), and the `json` checks that read its answers (JSONPaths, and which criteria each
//! measure can be judged by).

use super::metrics::has_userinfo;
use super::*;

impl Validator {
    pub(super) fn http_provider(&mut self, raw: &RawHttpProvider) -> Option<JsonSourceSpec> {
        let mut ok = true;
        let url = self.request_template("metrics.http.url", &raw.url);
        if let Some(url) = &url {
            // The scheme and host are the policy's; only the path and query may vary.
            let fixed = match url.parts.first() {
                Some(RequestPart::Text(text)) => text.as_str(),
                _ => "",
            };
            let host_end = fixed
                .split_once("://")
                .map(|(_, rest)| !rest.is_empty() && rest.contains(['/', '?']));
            if !is_http_url(fixed) || host_end != Some(true) {
                self.problem(
                    "metrics.http.url",
                    Some(&raw.url),
                    "expected an http:// or https:// URL whose scheme, host and port are written out (variables may follow in the path or query)",
                );
                ok = false;
            } else if has_userinfo(fixed) {
                // `policy explain` prints the URL and recordings keep it: a password in it
                // would be shown wherever they go.
                self.problem(
                    "metrics.http.url",
                    Some(&raw.url),
                    "credentials do not belong in the URL: send them as a header whose value is `{env: NAME}` or `{file: PATH}` (redacted everywhere)",
                );
                ok = false;
            }
        }
        let method = match raw.method.as_ref().map(|m| m.value.to_ascii_uppercase()) {
            None => HttpMethod::Get,
            Some(m) if m == "GET" => HttpMethod::Get,
            Some(m) if m == "POST" => HttpMethod::Post,
            Some(other) => {
                self.problem(
                    "metrics.http.method",
                    raw.method.as_ref(),
                    format!("expected GET or POST, not {other:?}"),
                );
                ok = false;
                HttpMethod::Get
            }
        };
        let body = match &raw.body {
            None => None,
            Some(body) if method == HttpMethod::Get => {
                self.problem(
                    "metrics.http.body",
                    Some(body),
                    "a body is sent with `method: POST` only",
                );
                ok = false;
                None
            }
            Some(body) => {
                let template = self.request_template("metrics.http.body", body);
                ok &= template.is_some();
                template
            }
        };
        let content_type = raw
            .content_type
            .clone()
            .unwrap_or_else(|| "application/json".to_owned());
        let (headers, headers_ok) = self.headers("metrics.http.headers", &raw.headers, true);
        ok &= headers_ok;
        let timeout = self.positive_duration(
            "metrics.http.timeout",
            raw.timeout.as_ref(),
            DEFAULT_HTTP_TIMEOUT,
        );
        let retries = raw.retries.unwrap_or(DEFAULT_RETRIES);
        if retries > 10 {
            self.problem::<()>("metrics.http.retries", None, "expected at most 10 retries");
            ok = false;
        }
        let max_answer_bytes =
            self.answer_size("metrics.http.max-answer-size", raw.max_answer_size.as_ref());
        Some(JsonSourceSpec {
            transport: JsonTransport::Http(HttpRequestSpec {
                url: url?,
                method,
                body,
                content_type,
                headers,
            }),
            timeout: timeout?,
            retries,
            max_answer_bytes: max_answer_bytes?,
        })
        .filter(|_| ok)
    }

    pub(super) fn command_provider(&mut self, raw: &RawCommandProvider) -> Option<JsonSourceSpec> {
        let mut ok = true;
        if raw.run.value.is_empty() || raw.run.value[0].trim().is_empty() {
            self.problem(
                "metrics.command.run",
                Some(&raw.run),
                "expected the program and its arguments, e.g. [\"./metrics.sh\", \"{{query}}\"]",
            );
            ok = false;
        }
        let mut run = Vec::new();
        for (i, arg) in raw.run.value.iter().enumerate() {
            match RequestTemplate::parse(arg) {
                Ok(template) => run.push(template),
                Err(message) => {
                    self.problem(format!("metrics.command.run[{i}]"), Some(&raw.run), message);
                    ok = false;
                }
            }
        }
        let secret_env: Vec<String> = raw
            .secret_env
            .as_ref()
            .map(|names| names.value.clone())
            .unwrap_or_default();
        for (i, name) in secret_env.iter().enumerate() {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.problem(
                    format!("metrics.command.secret-env[{i}]"),
                    raw.secret_env.as_ref(),
                    format!("expected the name of an environment variable (letters, digits and `_`), not {name:?}"),
                );
                ok = false;
            }
        }
        let timeout = self.positive_duration(
            "metrics.command.timeout",
            raw.timeout.as_ref(),
            DEFAULT_HTTP_TIMEOUT,
        );
        let max_answer_bytes = self.answer_size(
            "metrics.command.max-answer-size",
            raw.max_answer_size.as_ref(),
        );
        Some(JsonSourceSpec {
            transport: JsonTransport::Command(CommandSpec {
                run,
                secret_sources: secret_env
                    .iter()
                    .map(|name| SecretSource::Env(name.clone()))
                    .collect(),
                secret_env,
            }),
            timeout: timeout?,
            retries: 0,
            max_answer_bytes: max_answer_bytes?,
        })
        .filter(|_| ok)
    }

    fn request_template(&mut self, path: &str, raw: &At<String>) -> Option<RequestTemplate> {
        let template = RequestTemplate::parse(&raw.value);
        self.read(path, raw, template)
    }

    /// `max-answer-size`: at least a kibibyte (below it not even an error answer fits).
    fn answer_size(&mut self, path: &str, raw: Option<&At<RawScalar>>) -> Option<u64> {
        let Some(size) = raw else {
            return Some(DEFAULT_MAX_ANSWER_BYTES);
        };
        let bytes = self.read(path, size, units::size_bytes(&size.value))?;
        if bytes < 1024 {
            self.problem(path, Some(size), "expected at least 1KiB");
            return None;
        }
        Some(bytes)
    }

    /// A `json` check: counts (`requests` and `errors`), a `percentile` or a `value`.
    pub(super) fn json_check(&mut self, path: &str, raw: &RawJsonCheck) -> Option<JsonCheck> {
        let query = match &raw.query {
            None => Some(None),
            Some(query) => match RequestTemplate::parse(&query.value) {
                Ok(template) if template.uses(RequestVariable::Query) => {
                    self.problem(
                        format!("{path}.json.query"),
                        Some(query),
                        "the check's query cannot contain `{{query}}` (it is the query)",
                    );
                    None
                }
                Ok(template) => Some(Some(template)),
                Err(message) => {
                    self.problem(format!("{path}.json.query"), Some(query), message);
                    None
                }
            },
        };
        let given = [
            raw.requests.is_some() || raw.errors.is_some(),
            raw.percentile.is_some(),
            raw.value.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() != 1 {
            self.problem::<()>(
                format!("{path}.json"),
                None,
                "expected exactly one of `requests` with `errors` (counts), `percentile` or `value`",
            );
            return None;
        }
        let measure = if let Some(percentile) = &raw.percentile {
            let p = &percentile.value;
            let canary = self.json_path(
                format!("{path}.json.percentile.canary"),
                percentile,
                &p.canary,
            );
            let quantile = self.read(
                format!("{path}.json.percentile.quantile"),
                &p.quantile,
                units::quantile(&p.quantile.value),
            );
            let unit_seconds = match p.unit.as_ref().map(|u| u.value.as_str()) {
                None | Some("s") => Some(1.0),
                Some("ms") => Some(0.001),
                Some(other) => {
                    self.problem(
                        format!("{path}.json.percentile.unit"),
                        p.unit.as_ref(),
                        format!("expected `s` or `ms`, not {other:?}"),
                    );
                    None
                }
            };
            JsonMeasure::Percentile {
                canary: canary?,
                quantile: quantile?,
                unit_seconds: unit_seconds?,
            }
        } else if let Some(value) = &raw.value {
            JsonMeasure::Value {
                path: self.json_path(format!("{path}.json.value"), value, &value.value)?,
            }
        } else {
            let (Some(requests), Some(errors)) = (&raw.requests, &raw.errors) else {
                self.problem::<()>(
                    format!("{path}.json"),
                    None,
                    "counts need both `requests` and `errors`, each with a JSONPath for `canary` and `baseline`",
                );
                return None;
            };
            let requests = self.version_paths(&format!("{path}.json.requests"), requests);
            let errors = self.version_paths(&format!("{path}.json.errors"), errors);
            JsonMeasure::Counts {
                requests: requests?,
                errors: errors?,
            }
        };
        Some(JsonCheck {
            query: query?,
            measure,
        })
    }

    fn version_paths(&mut self, path: &str, raw: &At<RawVersionPaths>) -> Option<VersionPaths> {
        let canary = self.json_path(format!("{path}.canary"), raw, &raw.value.canary);
        let baseline = self.json_path(format!("{path}.baseline"), raw, &raw.value.baseline);
        Some(VersionPaths {
            canary: canary?,
            baseline: baseline?,
        })
    }

    fn json_path<T>(&mut self, path: String, at: &At<T>, text: &str) -> Option<JsonPathText> {
        self.read(path, at, JsonPathText::parse(text))
    }

    /// The criteria a `json` check's measure can be judged by: counts any; a percentile or a
    /// value only an absolute bound, as there are no counts to compare with the baseline's.
    pub(super) fn json_criteria(
        &mut self,
        path: &str,
        at: &At<RawCheck>,
        check: &JsonCheck,
    ) -> bool {
        match (&check.measure, &at.value.baseline, &at.value.slo) {
            (JsonMeasure::Counts { .. }, _, _) => true,
            (JsonMeasure::Percentile { .. } | JsonMeasure::Value { .. }, Some(baseline), _) => {
                self.problem(
                    format!("{path}.baseline"),
                    Some(baseline),
                    "a percentile or a single value carries no counts, so no comparison with the baseline can keep its error guarantee; give `requests` and `errors` counts, or judge it by `slo` alone",
                );
                false
            }
            _ => true,
        }
    }

    /// A `json` check needs a generic provider, and a generic provider `json` checks.
    pub(super) fn checks_fit_the_source(
        &mut self,
        metrics: &MetricsSourceSpec,
        checks: &[CheckSpec],
        raw: &At<Vec<At<RawCheck>>>,
    ) {
        let generic = matches!(metrics, MetricsSourceSpec::Json(_));
        for (i, check) in checks.iter().enumerate() {
            let json = matches!(check.kind, CheckKind::Json(_));
            if generic && !json {
                self.problem(
                    format!("checks[{i}]"),
                    Some(&raw.value[i].value.name),
                    format!(
                        "a {} check is read with PromQL or from /metrics pages; with `metrics.http` or `metrics.command` every check says `json` (JSONPaths into the provider's answer)",
                        check.kind.name()
                    ),
                );
            } else if json && !generic {
                self.problem(
                    format!("checks[{i}]"),
                    Some(&raw.value[i].value.name),
                    "a json check reads a generic provider's answer: set `metrics.http` or `metrics.command`",
                );
            }
        }
    }
}
