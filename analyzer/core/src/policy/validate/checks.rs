//! `checks`: the criteria — error rate, latency, samples and bounded queries — with their SLOs
//! and comparisons with baseline.

use super::*;
use crate::stats::autocorrelated_mean::{DEFAULT_MAX_AUTOCORRELATION, MAX_AUTOCORRELATION_LIMIT};

impl Validator {
    pub(super) fn checks(
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
            raw.json.is_some(),
            raw.datadog.is_some(),
            raw.cloudwatch.is_some(),
        ];
        if kinds.iter().filter(|&&k| k).count() != 1 {
            self.problem(
                path,
                Some(&raw.name),
                "expected exactly one of `error-rate`, `latency`, `samples`, `query`, `json`, `datadog` or `cloudwatch`",
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
                    if matchers.iter().any(|m| m.name == "__name__") {
                        // Prometheus refuses the metric name set twice, so the check would be
                        // an `error` at every tick; a shared read under the controller, which
                        // applies error matchers itself, would instead find no error series
                        // and count 0 errors (review finding, 2026-12-01).
                        self.problem(
                            format!("{path}.error-rate.errors"),
                            Some(&error_rate.errors),
                            "the error matchers must not match on `__name__`: the errors are the requests metric's series (use `requests` for another metric)",
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
        } else if let Some(json) = &raw.json {
            let check = self.json_check(path, json)?;
            self.json_criteria(path, at, &check)
                .then_some(CheckKind::Json(check))
        } else if let Some(datadog) = &raw.datadog {
            let check = self.datadog_check(path, datadog, traffic)?;
            self.json_criteria(path, at, &check)
                .then_some(CheckKind::Json(check))
        } else if let Some(cloudwatch) = &raw.cloudwatch {
            let check = self.cloudwatch_check(path, cloudwatch, traffic)?;
            self.json_criteria(path, at, &check)
                .then_some(CheckKind::Json(check))
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
            CheckKind::Json(json) => match json.measure {
                JsonMeasure::Counts { .. } => units::fraction(&at.value).and_then(|f| {
                    if f > 1.0 {
                        Err(format!(
                            "{}; an error rate is at most 100%",
                            units::FRACTION_EXPECTED
                        ))
                    } else {
                        Ok(f)
                    }
                }),
                JsonMeasure::Percentile { .. } => units::latency_seconds(&at.value),
                JsonMeasure::Value { .. } => units::number(&at.value),
            },
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
