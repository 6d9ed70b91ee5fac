//! The generic provider: `metrics.http` and `metrics.command` (request templates, headers,
//! limits), and the `json` checks that read its answers (JSONPaths, and which criteria each
//! measure can be judged by). Datadog (`metrics.datadog`) and CloudWatch
//! (`metrics.cloudwatch`) are validated into the same provider with a fixed request, and
//! their `datadog` and `cloudwatch` checks into `json` checks of counts or a percentile.

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
            api: ProviderApi::Json,
            timeout: timeout?,
            retries,
            max_answer_bytes: max_answer_bytes?,
            lag: std::time::Duration::ZERO,
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
            api: ProviderApi::Json,
            timeout: timeout?,
            retries: 0,
            max_answer_bytes: max_answer_bytes?,
            lag: std::time::Duration::ZERO,
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
            cloudwatch: None,
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

    /// A `json` check needs a generic provider, a `datadog` check Datadog and a
    /// `cloudwatch` check CloudWatch; each of these sources reads its own kind of check only.
    pub(super) fn checks_fit_the_source(
        &mut self,
        metrics: &MetricsSourceSpec,
        checks: &[CheckSpec],
        raw: &At<Vec<At<RawCheck>>>,
    ) {
        let wanted = match metrics {
            MetricsSourceSpec::Json(spec) => Some(match spec.api {
                ProviderApi::Json => "json",
                ProviderApi::Datadog => "datadog",
                ProviderApi::CloudWatch(_) => "cloudwatch",
            }),
            _ => None,
        };
        for (i, check) in checks.iter().enumerate() {
            let written = &raw.value[i].value;
            let says = if written.datadog.is_some() {
                Some("datadog")
            } else if written.cloudwatch.is_some() {
                Some("cloudwatch")
            } else if written.json.is_some() {
                Some("json")
            } else {
                None
            };
            match (wanted, says) {
                (Some(wanted), says) if says != Some(wanted) => {
                    let (source, what) = match wanted {
                        "json" => (
                            "`metrics.http` or `metrics.command`",
                            "JSONPaths into the provider's answer",
                        ),
                        "datadog" => (
                            "`metrics.datadog`",
                            "Datadog metric queries grouped by the version tag",
                        ),
                        _ => (
                            "`metrics.cloudwatch`",
                            "CloudWatch metrics per version dimension",
                        ),
                    };
                    let read_with = match says {
                        None => "is read with PromQL or from /metrics pages".to_owned(),
                        Some(other) => format!("reads another source (`metrics.{other}`)"),
                    };
                    self.problem(
                        format!("checks[{i}]"),
                        Some(&written.name),
                        format!(
                            "a {} check {read_with}; with {source} every check says `{wanted}` ({what})",
                            says.unwrap_or(check.kind.name())
                        ),
                    );
                }
                (None, Some(says)) => {
                    let (what, source) = match says {
                        "json" => (
                            "a generic provider's answer",
                            "`metrics.http` or `metrics.command`",
                        ),
                        "datadog" => ("Datadog's metrics query API", "`metrics.datadog`"),
                        _ => ("CloudWatch's GetMetricData", "`metrics.cloudwatch`"),
                    };
                    self.problem(
                        format!("checks[{i}]"),
                        Some(&written.name),
                        format!("a {says} check reads {what}: set {source}"),
                    );
                }
                _ => {}
            }
        }
    }

    /// `metrics.datadog`: the metrics query API of a site (or a base URL), with both keys as
    /// secret headers; requests `GET /api/v1/query?from=&to=&query=`.
    pub(super) fn datadog_provider(&mut self, raw: &RawDatadog) -> Option<JsonSourceSpec> {
        let base = match (&raw.site, &raw.url) {
            (Some(_), Some(url)) => {
                self.problem(
                    "metrics.datadog.url",
                    Some(url),
                    "give `site` or `url`, not both",
                );
                None
            }
            (None, Some(url)) => self.base_url("metrics.datadog.url", url),
            (site, None) => {
                let name = site
                    .as_ref()
                    .map_or(DEFAULT_DATADOG_SITE, |s| s.value.as_str());
                let valid = name.contains('.')
                    && !name.starts_with(['.', '-'])
                    && name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                    });
                if valid {
                    Some(format!("https://api.{name}"))
                } else {
                    self.problem(
                        "metrics.datadog.site",
                        site.as_ref(),
                        format!("expected a Datadog site such as `datadoghq.com` or `datadoghq.eu`, not {name:?}"),
                    );
                    None
                }
            }
        };
        let api_key = self.secret_ref("metrics.datadog.api-key", &raw.api_key);
        let application_key =
            self.secret_ref("metrics.datadog.application-key", &raw.application_key);
        let timeout = self.positive_duration(
            "metrics.datadog.timeout",
            raw.timeout.as_ref(),
            DEFAULT_HTTP_TIMEOUT,
        );
        let retries = self.retries("metrics.datadog.retries", raw.retries);
        let max_answer_bytes = self.answer_size(
            "metrics.datadog.max-answer-size",
            raw.max_answer_size.as_ref(),
        );
        let lag = match &raw.lag {
            None => DEFAULT_DATADOG_LAG,
            Some(at) => at.value.0,
        };
        let url = RequestTemplate::parse(&format!(
            "{}/api/v1/query?from={{{{start_unix}}}}&to={{{{end_unix}}}}&query={{{{query}}}}",
            base?
        ))
        .ok()?;
        Some(JsonSourceSpec {
            transport: JsonTransport::Http(HttpRequestSpec {
                url,
                method: HttpMethod::Get,
                body: None,
                content_type: "application/json".to_owned(),
                headers: vec![
                    ("DD-API-KEY".to_owned(), HeaderValueSpec::Secret(api_key?)),
                    (
                        "DD-APPLICATION-KEY".to_owned(),
                        HeaderValueSpec::Secret(application_key?),
                    ),
                ],
            }),
            api: ProviderApi::Datadog,
            timeout: timeout?,
            retries: retries?,
            max_answer_bytes: max_answer_bytes?,
            lag,
        })
    }

    /// `metrics.cloudwatch`: `POST /` of `GetMetricData` (AWS JSON 1.0) to the region's
    /// endpoint, signed with SigV4 for `monitoring`.
    pub(super) fn cloudwatch_provider(&mut self, raw: &RawCloudWatch) -> Option<JsonSourceSpec> {
        let region = &raw.region.value;
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            self.problem(
                "metrics.cloudwatch.region",
                Some(&raw.region),
                format!("expected an AWS region such as `eu-west-1`, not {region:?}"),
            );
        }
        let profile_ok = raw
            .profile
            .as_ref()
            .is_none_or(|p| !p.trim().is_empty() && !p.contains([']', '[', '\n']));
        if !profile_ok {
            self.problem::<()>(
                "metrics.cloudwatch.profile",
                None,
                "expected the name of a profile of the shared credentials file",
            );
        }
        let endpoint = match &raw.endpoint {
            None => Some(format!("https://monitoring.{region}.amazonaws.com")),
            Some(url) => self.base_url("metrics.cloudwatch.endpoint", url),
        };
        let timeout = self.positive_duration(
            "metrics.cloudwatch.timeout",
            raw.timeout.as_ref(),
            DEFAULT_HTTP_TIMEOUT,
        );
        let retries = self.retries("metrics.cloudwatch.retries", raw.retries);
        let max_answer_bytes = self.answer_size(
            "metrics.cloudwatch.max-answer-size",
            raw.max_answer_size.as_ref(),
        );
        let lag = match &raw.lag {
            None => DEFAULT_CLOUDWATCH_LAG,
            Some(at) => at.value.0,
        };
        let url = RequestTemplate::parse(&format!("{}/", endpoint?)).ok()?;
        Some(JsonSourceSpec {
            transport: JsonTransport::Http(HttpRequestSpec {
                url,
                method: HttpMethod::Post,
                body: None,
                content_type: CLOUDWATCH_CONTENT_TYPE.to_owned(),
                headers: vec![(
                    "X-Amz-Target".to_owned(),
                    HeaderValueSpec::Plain(CLOUDWATCH_TARGET.to_owned()),
                )],
            }),
            api: ProviderApi::CloudWatch(SigV4Spec {
                region: region.clone(),
                service: "monitoring".to_owned(),
                profile: raw.profile.clone(),
            }),
            timeout: timeout?,
            retries: retries?,
            max_answer_bytes: max_answer_bytes?,
            lag,
        })
        .filter(|_| region_ok && profile_ok)
    }

    /// An API's base URL as a policy gives it: http(s), the host written out, no query,
    /// no template braces; without its trailing `/`.
    fn base_url(&mut self, path: &str, url: &At<String>) -> Option<String> {
        let text = url.value.trim_end_matches('/');
        if is_http_url(text) && !text.contains(['?', '#', '{', '}']) {
            Some(text.to_owned())
        } else {
            self.problem(
                path,
                Some(url),
                "expected a base URL, http:// or https:// with the host written out and no query, e.g. https://proxy.internal:8443",
            );
            None
        }
    }

    /// A secret given as `{env: VARIABLE}` or `{file: PATH}`.
    fn secret_ref(&mut self, path: &str, raw: &At<RawSecretRef>) -> Option<SecretSource> {
        match (&raw.value.file, &raw.value.env) {
            (Some(file), None) => Some(SecretSource::File(PathBuf::from(file))),
            (None, Some(var)) => Some(SecretSource::Env(var.clone())),
            _ => {
                self.problem(
                    path,
                    Some(raw),
                    "expected exactly one of `file` or `env` holding the key (a secret, never written in the policy)",
                );
                None
            }
        }
    }

    fn retries(&mut self, path: &str, raw: Option<u32>) -> Option<u32> {
        let retries = raw.unwrap_or(DEFAULT_RETRIES);
        if retries > 10 {
            self.problem::<()>(path, None, "expected at most 10 retries");
            return None;
        }
        Some(retries)
    }

    /// The unit of a percentile's values: seconds per unit.
    fn percentile_unit(&mut self, path: String, unit: Option<&At<String>>) -> Option<f64> {
        match unit.map(|u| u.value.as_str()) {
            None | Some("s") => Some(1.0),
            Some("ms") => Some(0.001),
            Some(other) => {
                self.problem(path, unit, format!("expected `s` or `ms`, not {other:?}"));
                None
            }
        }
    }

    /// A `datadog` check: its metric queries, each grouped by the version tag; counts with
    /// `.as_count()` (else Datadog answers per-second rates), a percentile with its `pNN:`.
    pub(super) fn datadog_check(
        &mut self,
        path: &str,
        at: &At<RawDatadogCheck>,
        traffic: Option<&TrafficSelector>,
    ) -> Option<JsonCheck> {
        let raw = &at.value;
        let label = traffic.map(|t| t.label.as_str());
        let mut ok = true;
        let measure = match (&raw.requests, &raw.errors, &raw.percentile) {
            (Some(requests), Some(errors), None) => {
                let r = self.datadog_query(path, "requests", requests, label, true);
                let e = self.datadog_query(path, "errors", errors, label, true);
                ok &= r.is_some() && e.is_some();
                (
                    format!("{},{}", requests.value.trim(), errors.value.trim()),
                    canonical_counts(),
                )
            }
            (None, None, Some(percentile)) => {
                let p = self.datadog_query(path, "percentile", percentile, label, false);
                let unit = self.percentile_unit(format!("{path}.datadog.unit"), raw.unit.as_ref());
                ok &= p.is_some();
                let quantile = datadog_quantile(percentile.value.trim());
                (
                    percentile.value.trim().to_owned(),
                    JsonMeasure::Percentile {
                        canary: JsonPathText("$.canary.percentile".to_owned()),
                        quantile: quantile.unwrap_or(DEFAULT_QUANTILE),
                        unit_seconds: unit?,
                    },
                )
            }
            _ => {
                self.problem(
                    format!("{path}.datadog"),
                    Some(at),
                    "expected `requests` with `errors` (counts), or `percentile`",
                );
                return None;
            }
        };
        let (text, measure) = measure;
        if !ok {
            return None;
        }
        Some(JsonCheck {
            query: Some(RequestTemplate::parse(&text).ok()?),
            measure,
            cloudwatch: None,
        })
    }

    /// One query of a `datadog` check, `field` of it: grouped by the version tag, a count
    /// with `.as_count()`, a percentile with its `pNN:`.
    fn datadog_query(
        &mut self,
        path: &str,
        field: &str,
        q: &At<String>,
        label: Option<&str>,
        counts: bool,
    ) -> Option<RequestTemplate> {
        let path = format!("{path}.datadog.{field}");
        let template = self.request_template(&path, q);
        let text = q.value.trim();
        let problem = if has_top_level_comma(text) {
            // Datadog reads `a,b` as two queries: a second one here would shift the next
            // field's query out of the place its series are looked for in.
            Some(
                "one query per field: a comma outside braces and parentheses starts a second query"
                    .to_owned(),
            )
        } else if let Some(label) = label.filter(|label| !grouped_by(text, label)) {
            Some(format!(
                "group the query by the version tag, `… by {{{label}}}`: canary tells the versions' series apart by it"
            ))
        } else if counts && !text.starts_with("sum:") {
            Some("a count is summed across the version's sources, `sum:METRIC{…} by {…}.as_count()`: without `sum:` Datadog averages them (its default space aggregation is `avg`), and an average of the pods' counts is not the version's count".to_owned())
        } else if counts && !text.ends_with(".as_count()") {
            Some("a count needs `.as_count()` at the end (e.g. `sum:trace.http.request.hits{service:checkout} by {version}.as_count()`): without it Datadog answers per-second rates, which are not counts".to_owned())
        } else if !counts && datadog_quantile(text).is_none() {
            Some("expected a percentile query starting `p50:`, `p75:`, `p90:`, `p95:` or `p99:` (a distribution metric)".to_owned())
        } else {
            None
        };
        if let Some(message) = problem {
            self.problem(path, Some(q), message);
            return None;
        }
        template
    }

    /// A `cloudwatch` check: a namespace, shared dimensions, and the metrics read per
    /// version (`Sum` of counts, or a percentile statistic).
    pub(super) fn cloudwatch_check(
        &mut self,
        path: &str,
        at: &At<RawCloudWatchCheck>,
        traffic: Option<&TrafficSelector>,
    ) -> Option<JsonCheck> {
        let raw = &at.value;
        if let Some(label) = traffic.map(|t| &t.label)
            && raw.dimensions.contains_key(label)
        {
            self.problem(
                format!("{path}.cloudwatch.dimensions.{label}"),
                Some(at),
                format!("the version's dimension `{label}` (traffic.label) is added per version from traffic.canary and traffic.baseline; do not list it"),
            );
            return None;
        }
        let (metrics, measure) = match (&raw.requests, &raw.errors, &raw.percentile) {
            (Some(requests), Some(errors), None) => (
                vec![
                    CloudWatchMetric {
                        what: "requests",
                        metric: requests.clone(),
                        stat: "Sum".to_owned(),
                    },
                    CloudWatchMetric {
                        what: "errors",
                        metric: errors.clone(),
                        stat: "Sum".to_owned(),
                    },
                ],
                canonical_counts(),
            ),
            (None, None, Some(percentile)) => {
                let quantile = match &raw.quantile {
                    None => Some(DEFAULT_QUANTILE),
                    Some(q) => self.read(
                        format!("{path}.cloudwatch.quantile"),
                        q,
                        units::quantile(&q.value),
                    ),
                };
                let unit =
                    self.percentile_unit(format!("{path}.cloudwatch.unit"), raw.unit.as_ref());
                let quantile = quantile?;
                (
                    vec![CloudWatchMetric {
                        what: "percentile",
                        metric: percentile.clone(),
                        stat: percentile_statistic(quantile),
                    }],
                    JsonMeasure::Percentile {
                        canary: JsonPathText("$.canary.percentile".to_owned()),
                        quantile,
                        unit_seconds: unit?,
                    },
                )
            }
            _ => {
                self.problem(
                    format!("{path}.cloudwatch"),
                    Some(at),
                    "expected `requests` with `errors` (metrics read as `Sum`), or `percentile`",
                );
                return None;
            }
        };
        let errors_may_be_unlisted = match &raw.errors_may_be_unlisted {
            Some(flag) if flag.value && raw.errors.is_none() => {
                self.problem(
                    format!("{path}.cloudwatch.errors-may-be-unlisted"),
                    Some(flag),
                    "applies to the errors metric of a counts check (`requests` with `errors`); this check has none",
                );
                return None;
            }
            Some(flag) => flag.value,
            None => false,
        };
        Some(JsonCheck {
            query: None,
            measure,
            cloudwatch: Some(CloudWatchQuery {
                namespace: raw.namespace.clone(),
                dimensions: raw
                    .dimensions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                metrics,
                errors_may_be_unlisted,
            }),
        })
    }
}

/// How late Datadog makes a count's datapoints available, when the policy does not say:
/// chosen, not measured here (no Datadog is reachable from the test machines).
const DEFAULT_DATADOG_LAG: std::time::Duration = std::time::Duration::from_secs(120);
/// How late CloudWatch makes datapoints available, when the policy does not say: ALB metrics
/// typically arrive within 1–3 minutes (chosen, not measured here).
const DEFAULT_CLOUDWATCH_LAG: std::time::Duration = std::time::Duration::from_secs(180);

/// The default Datadog site.
const DEFAULT_DATADOG_SITE: &str = "datadoghq.com";
/// The content type of the AWS JSON 1.0 protocol CloudWatch speaks.
pub(crate) const CLOUDWATCH_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// The `X-Amz-Target` of `GetMetricData`.
pub(crate) const CLOUDWATCH_TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";

/// The measure of counts as the Datadog and CloudWatch readers give them: totals per
/// version since the start.
fn canonical_counts() -> JsonMeasure {
    let paths = |what: &str| VersionPaths {
        canary: JsonPathText(format!("$.canary.{what}")),
        baseline: JsonPathText(format!("$.baseline.{what}")),
    };
    JsonMeasure::Counts {
        requests: paths("requests"),
        errors: paths("errors"),
    }
}

/// Whether a Datadog query is grouped by `label`: a `by {…}` naming it.
fn grouped_by(query: &str, label: &str) -> bool {
    query.match_indices(" by {").any(|(i, found)| {
        let rest = &query[i + found.len()..];
        rest.split_once('}')
            .is_some_and(|(tags, _)| tags.split(',').any(|tag| tag.trim() == label))
    })
}

/// The quantile of a Datadog percentile query (`p95:…` is 0.95).
pub(crate) fn datadog_quantile(query: &str) -> Option<f64> {
    let (aggregator, _) = query.split_once(':')?;
    let percent: f64 = aggregator.strip_prefix('p')?.parse().ok()?;
    (percent > 0.0 && percent < 100.0).then_some(percent / 100.0)
}

/// CloudWatch's name of a percentile statistic: `p95`, `p99.9`.
fn percentile_statistic(quantile: f64) -> String {
    let percent = format!("{:.4}", quantile * 100.0);
    let percent = percent.trim_end_matches('0').trim_end_matches('.');
    format!("p{percent}")
}

/// Whether `query` holds a comma outside `{…}` and `(…)`: Datadog's separator of queries.
fn has_top_level_comma(query: &str) -> bool {
    let mut depth = 0i32;
    for c in query.chars() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ',' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}
