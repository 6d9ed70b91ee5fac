//! `metrics`: where the evidence comes from — the Prometheus HTTP API (URL, credentials as
//! file or environment references, headers, timeout, retries) or direct `/metrics` scrapes.

use std::collections::BTreeMap;

use super::*;

impl Validator {
    pub(super) fn metrics(&mut self, raw: &RawMetrics) -> Option<MetricsSourceSpec> {
        let given = [
            raw.prometheus.is_some(),
            raw.scrape.is_some(),
            raw.http.is_some(),
            raw.command.is_some(),
            raw.datadog.is_some(),
            raw.cloudwatch.is_some(),
        ]
        .iter()
        .filter(|&&g| g)
        .count();
        if given > 1 {
            self.problem::<()>(
                "metrics",
                None,
                "several of `prometheus`, `scrape`, `http`, `command`, `datadog` and `cloudwatch` are set; a policy reads from one source",
            );
            return None;
        }
        if let Some(prometheus) = &raw.prometheus {
            self.prometheus(prometheus)
                .map(|spec| MetricsSourceSpec::Prometheus(Box::new(spec)))
        } else if let Some(scrape) = &raw.scrape {
            self.scrape(scrape).map(MetricsSourceSpec::Scrape)
        } else if let Some(http) = &raw.http {
            self.http_provider(http)
                .map(|spec| MetricsSourceSpec::Json(Box::new(spec)))
        } else if let Some(command) = &raw.command {
            self.command_provider(command)
                .map(|spec| MetricsSourceSpec::Json(Box::new(spec)))
        } else if let Some(datadog) = &raw.datadog {
            self.datadog_provider(datadog)
                .map(|spec| MetricsSourceSpec::Json(Box::new(spec)))
        } else if let Some(cloudwatch) = &raw.cloudwatch {
            self.cloudwatch_provider(cloudwatch)
                .map(|spec| MetricsSourceSpec::Json(Box::new(spec)))
        } else {
            self.problem::<()>(
                "metrics",
                None,
                "expected one of `prometheus`, `scrape`, `http`, `command`, `datadog` or `cloudwatch`",
            );
            None
        }
    }

    fn prometheus(&mut self, raw: &RawPrometheus) -> Option<PrometheusSpec> {
        let mut ok = true;
        if let Some(url) = &raw.url {
            ok &= self.http_url("metrics.prometheus.url", url);
        }
        let auth = self.prometheus_auth(raw)?;
        let (headers, headers_ok) = self.headers("metrics.prometheus.headers", &raw.headers, false);
        ok &= headers_ok;
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
        let client_cert = match (&raw.client_cert_file, &raw.client_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientCertSpec {
                cert_file: PathBuf::from(cert),
                key_file: PathBuf::from(key),
            }),
            (Some(_), None) | (None, Some(_)) => {
                self.problem::<()>(
                    "metrics.prometheus",
                    None,
                    "`client-cert-file` and `client-key-file` go together: a client certificate is presented with its key",
                );
                ok = false;
                None
            }
        };
        let proxy_url = match &raw.proxy_url {
            None => None,
            Some(url) => {
                ok &= self.http_url("metrics.prometheus.proxy-url", url);
                if has_userinfo(&url.value) {
                    self.problem(
                        "metrics.prometheus.proxy-url",
                        Some(url),
                        "credentials do not belong in the policy: a proxy that asks for them is not supported yet",
                    );
                    ok = false;
                }
                Some(url.value.trim_end_matches('/').to_owned())
            }
        };
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
            client_cert,
            proxy_url,
        })
        .filter(|_| ok)
    }

    /// Extra headers: names checked, plain values HTTP-safe, credentials read at run time.
    /// `secret_authorization`: an `Authorization` header is allowed when its value is a
    /// secret reference (the generic provider, which has no other way to authenticate).
    pub(super) fn headers(
        &mut self,
        prefix: &str,
        raw: &BTreeMap<String, RawHeaderValue>,
        secret_authorization: bool,
    ) -> (Vec<(String, HeaderValueSpec)>, bool) {
        let mut ok = true;
        let mut headers = Vec::new();
        for (name, value) in raw {
            let field = format!("{prefix}.{name}");
            if name.eq_ignore_ascii_case("authorization") && !secret_authorization {
                self.problem::<()>(
                    field,
                    None,
                    "credentials do not belong in the policy: use `bearer-token-file`, `bearer-token-env`, `basic-auth`, `oauth2` or `sigv4`",
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
                RawHeaderValue::Plain(_) if name.eq_ignore_ascii_case("authorization") => {
                    self.problem::<()>(
                        field,
                        None,
                        "credentials do not belong in the policy: give the Authorization header's value as `{env: VARIABLE}` or `{file: PATH}`",
                    );
                    ok = false;
                    continue;
                }
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
        (headers, ok)
    }

    /// At most one way to authenticate: a bearer token, basic auth, OAuth2 or SigV4.
    fn prometheus_auth(&mut self, raw: &RawPrometheus) -> Option<PrometheusAuth> {
        let given = [
            raw.bearer_token_file.is_some(),
            raw.bearer_token_env.is_some(),
            raw.basic_auth.is_some(),
            raw.oauth2.is_some(),
            raw.sigv4.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            self.problem::<()>(
                "metrics.prometheus",
                None,
                "expected at most one of `bearer-token-file`, `bearer-token-env`, `basic-auth`, `oauth2` and `sigv4`",
            );
            return None;
        }
        if let Some(file) = &raw.bearer_token_file {
            return Some(PrometheusAuth::Bearer(SecretSource::File(PathBuf::from(
                file,
            ))));
        }
        if let Some(var) = &raw.bearer_token_env {
            return Some(PrometheusAuth::Bearer(SecretSource::Env(var.clone())));
        }
        if let Some(basic) = &raw.basic_auth {
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
            return Some(PrometheusAuth::Basic {
                username: basic.username.clone(),
                password,
            });
        }
        if let Some(oauth2) = &raw.oauth2 {
            return self.oauth2(oauth2).map(PrometheusAuth::OAuth2);
        }
        if let Some(sigv4) = &raw.sigv4 {
            return self.sigv4(sigv4).map(PrometheusAuth::SigV4);
        }
        Some(PrometheusAuth::None)
    }

    fn oauth2(&mut self, raw: &RawOAuth2) -> Option<OAuth2Spec> {
        let mut ok = self.http_url("metrics.prometheus.oauth2.token-url", &raw.token_url);
        if has_userinfo(&raw.token_url.value) {
            self.problem(
                "metrics.prometheus.oauth2.token-url",
                Some(&raw.token_url),
                "credentials do not belong in the URL: the client secret goes in `client-secret-file` or `client-secret-env`",
            );
            ok = false;
        }
        if raw.client_id.trim().is_empty() || raw.client_id.chars().any(char::is_control) {
            self.problem::<()>(
                "metrics.prometheus.oauth2.client-id",
                None,
                "expected the client's identifier (not empty, no control characters)",
            );
            ok = false;
        }
        let client_secret = match (&raw.client_secret_file, &raw.client_secret_env) {
            (Some(file), None) => Some(SecretSource::File(PathBuf::from(file))),
            (None, Some(var)) => Some(SecretSource::Env(var.clone())),
            _ => {
                self.problem::<()>(
                    "metrics.prometheus.oauth2",
                    None,
                    "expected exactly one of `client-secret-file` or `client-secret-env` (secrets are never written in the policy)",
                );
                None
            }
        };
        for (i, scope) in raw.scopes.iter().enumerate() {
            // RFC 6749 §3.3: a scope token is visible ASCII other than `"` and `\`.
            if scope.is_empty()
                || !scope
                    .bytes()
                    .all(|b| b == b'!' || (b'#'..=b'[').contains(&b) || (b']'..=b'~').contains(&b))
            {
                self.problem::<()>(
                    format!("metrics.prometheus.oauth2.scopes[{i}]"),
                    None,
                    format!("{scope:?} is not an OAuth2 scope (visible ASCII without spaces, `\"` or `\\`)"),
                );
                ok = false;
            }
        }
        Some(OAuth2Spec {
            token_url: raw.token_url.value.clone(),
            client_id: raw.client_id.clone(),
            client_secret: client_secret?,
            scopes: raw.scopes.clone(),
        })
        .filter(|_| ok)
    }

    fn sigv4(&mut self, raw: &RawSigV4) -> Option<SigV4Spec> {
        let mut ok = true;
        // Region and service names are lowercase letters, digits and dashes
        // (`us-east-1`, `aps`): they are part of the signature's scope.
        let aws_name = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !aws_name(&raw.region.value) {
            self.problem(
                "metrics.prometheus.sigv4.region",
                Some(&raw.region),
                format!(
                    "expected an AWS region such as `us-east-1`, not {:?}",
                    raw.region.value
                ),
            );
            ok = false;
        }
        let service = match &raw.service {
            None => DEFAULT_SIGV4_SERVICE.to_owned(),
            Some(service) => {
                if !aws_name(&service.value) {
                    self.problem(
                        "metrics.prometheus.sigv4.service",
                        Some(service),
                        format!(
                            "expected an AWS service signing name such as `aps`, not {:?}",
                            service.value
                        ),
                    );
                    ok = false;
                }
                service.value.clone()
            }
        };
        if raw
            .profile
            .as_ref()
            .is_some_and(|p| p.trim().is_empty() || p.contains([']', '[', '\n']))
        {
            self.problem::<()>(
                "metrics.prometheus.sigv4.profile",
                None,
                "expected the name of a profile of the shared credentials file",
            );
            ok = false;
        }
        Some(SigV4Spec {
            region: raw.region.value.clone(),
            service,
            profile: raw.profile.clone(),
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

/// Whether an http(s) URL carries `user@` or `user:password@` in its authority.
pub(super) fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.contains('@')
}
