//! `metrics`: where the evidence comes from — the Prometheus HTTP API (URL, credentials as
//! file or environment references, headers, timeout, retries) or direct `/metrics` scrapes.

use super::*;

impl Validator {
    pub(super) fn metrics(&mut self, raw: &RawMetrics) -> Option<MetricsSourceSpec> {
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
        let mut headers = Vec::new();
        for (name, value) in &raw.headers {
            let field = format!("metrics.prometheus.headers.{name}");
            if name.eq_ignore_ascii_case("authorization") {
                self.problem::<()>(
                    field,
                    None,
                    "credentials do not belong in the policy: use `bearer-token-file`, `bearer-token-env` or `basic-auth`",
                );
                ok = false;
                continue;
            } else if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                self.problem::<()>(
                    field,
                    None,
                    format!("{name:?} is not a valid HTTP header name"),
                );
                ok = false;
                continue;
            }
            let value = match value {
                RawHeaderValue::Plain(text) => {
                    // What an HTTP header value may hold: visible ASCII, spaces and tabs
                    // (obsolete non-ASCII text is refused rather than sent mangled).
                    if text
                        .bytes()
                        .any(|b| !(b == b'\t' || (b' '..=b'~').contains(&b)))
                    {
                        self.problem::<()>(
                            field,
                            None,
                            "a header value holds a character HTTP headers cannot carry (a control character or non-ASCII)",
                        );
                        ok = false;
                        continue;
                    }
                    HeaderValueSpec::Plain(text.clone())
                }
                RawHeaderValue::Secret(secret) => match (&secret.file, &secret.env) {
                    (Some(file), None) => {
                        HeaderValueSpec::Secret(SecretSource::File(PathBuf::from(file)))
                    }
                    (None, Some(var)) => HeaderValueSpec::Secret(SecretSource::Env(var.clone())),
                    _ => {
                        self.problem::<()>(
                            field,
                            None,
                            "expected the value, or exactly one of `file` or `env` holding it",
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            headers.push((name.clone(), value));
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
        let max_answer_bytes = match &raw.max_answer_size {
            None => DEFAULT_MAX_ANSWER_BYTES,
            Some(size) => match units::size_bytes(&size.value) {
                // Below a kibibyte not even an error answer fits.
                Ok(bytes) if bytes >= 1024 => bytes,
                Ok(_) => {
                    self.problem(
                        "metrics.prometheus.max-answer-size",
                        Some(size),
                        "expected at least 1KiB",
                    );
                    ok = false;
                    DEFAULT_MAX_ANSWER_BYTES
                }
                Err(message) => {
                    self.problem("metrics.prometheus.max-answer-size", Some(size), message);
                    ok = false;
                    DEFAULT_MAX_ANSWER_BYTES
                }
            },
        };
        let max_series = raw.max_series.unwrap_or(DEFAULT_MAX_SERIES);
        if max_series == 0 {
            self.problem::<()>(
                "metrics.prometheus.max-series",
                None,
                "expected at least 1 series",
            );
            ok = false;
        }
        Some(PrometheusSpec {
            url: raw
                .url
                .as_ref()
                .map(|u| u.value.trim_end_matches('/').to_owned()),
            auth,
            headers,
            ca_file: raw.ca_file.as_ref().map(PathBuf::from),
            insecure_skip_tls_verify: raw.insecure_skip_tls_verify,
            timeout: timeout?,
            retries,
            max_answer_bytes,
            max_series,
            accept_warnings: raw.accept_warnings,
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
}
