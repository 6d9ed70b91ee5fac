//! Datadog's metrics query API (`metrics.datadog`) as the generic provider reads it: one
//! `GET /api/v1/query?from=&to=&query=` per check per tick, with the API and application
//! keys as the secret headers `DD-API-KEY` and `DD-APPLICATION-KEY` (the generic provider's
//! request, retries and limits; see [`crate::generic`]). A counts check asks both of its
//! queries in one request (`query=REQUESTS,ERRORS`: Datadog answers each series with its
//! `query_index`).
//!
//! This module reads the answer — `series[]`, each with `query_index`, `tag_set` (or
//! `scope`) and `pointlist` (`[[milliseconds, value or null], …]`) — into the totals since
//! the start that the judge needs, per version: a series is the canary's when one of its tags
//! is `LABEL:CANARY` (Datadog lowercases tags, so compared without case), the baseline's
//! likewise. Counts (`sum:….as_count()`) are the sum of the points of every series of the
//! version (several when grouped by more tags than the version's); a percentile is the
//! latest point of the canary's one series. Datadog sends no series for a version that had
//! no errors in the window, so a version with requests and no error series counts 0 errors;
//! so that a misspelt errors metric cannot read that way, pre-flight asks Datadog's metric
//! metadata about every metric a counts check reads ([`metric_names`]) and refuses one it
//! does not know (said in `docs/metrics-sources.md`). The reading itself is the generic provider's
//! ([`crate::generic::reading_of_answer`]), so counts are checked the same way (negative,
//! more errors than requests).

use std::collections::BTreeSet;

use canary_core::observation::Reading;
use canary_core::policy::{JsonCheck, JsonMeasure, TrafficSelector};
use canary_core::secret::redacted;
use serde_json::{Value, json};

/// How much of an error message from Datadog a reading shows.
const SHOWN_CHARS: usize = 200;

/// What a check's Datadog answer says, for the judge.
pub fn reading_of_answer(check: &JsonCheck, traffic: &TrafficSelector, answer: &Value) -> Reading {
    match totals(check, traffic, answer) {
        Ok(totals) => crate::generic::with_baseline_missing(
            crate::generic::reading_of_answer(check, &totals),
            || {
                format!(
                    "Datadog's answer has no points for the baseline (no series tagged {}:{})",
                    traffic.label, traffic.baseline
                )
            },
        ),
        Err(reading) => reading,
    }
}

/// What one version's series of one query add up to.
#[derive(Clone, Copy, Default)]
struct Found {
    /// Series seen.
    series: usize,
    /// The sum of their points.
    sum: f64,
    /// The latest point: (milliseconds, value).
    latest: Option<(f64, f64)>,
}

/// The totals of `answer` per version, as the check's measure reads them:
/// `{"canary": {"requests": …, "errors": …}, "baseline": {…}}`, or
/// `{"canary": {"percentile": …}}`. A version without points is left out (no data); an answer
/// that is not Datadog's, or an error, is `Invalid`.
pub fn totals(
    check: &JsonCheck,
    traffic: &TrafficSelector,
    answer: &Value,
) -> Result<Value, Reading> {
    let invalid = |reason: String| Reading::Invalid { reason };
    let Some(object) = answer.as_object() else {
        return Err(invalid(
            "Datadog's answer is not a JSON object: not an answer of /api/v1/query".to_owned(),
        ));
    };
    if let Some(errors) = object.get("errors") {
        return Err(invalid(format!(
            "Datadog answered errors: {}",
            shown(errors)
        )));
    }
    if let Some(status) = object.get("status").and_then(Value::as_str)
        && status != "ok"
    {
        let message = object.get("error").map(shown).unwrap_or_default();
        return Err(invalid(format!(
            "Datadog answered status {:?}: {message}",
            shown_str(status)
        )));
    }
    let Some(series) = object.get("series").and_then(Value::as_array) else {
        return Err(invalid(
            "Datadog's answer has no `series` array: not an answer of /api/v1/query".to_owned(),
        ));
    };
    let percentile = matches!(check.measure, JsonMeasure::Percentile { .. });
    let names: &[&str] = if percentile {
        &["percentile"]
    } else {
        &["requests", "errors"]
    };
    // [version][query index]: canary 0, baseline 1.
    let mut found = [[Found::default(); 2]; 2];
    // The groups of neither version (their version tag's value, `None` without one), by
    // query index: errors of a group with no requests of its own are not left out.
    let mut others: [BTreeSet<Option<String>>; 2] = Default::default();
    for one in series {
        let index = match one.get("query_index") {
            // One query: its series are its own.
            None | Some(Value::Null) if names.len() == 1 => 0,
            // Two queries (requests, errors): a series that does not say which is neither —
            // taken as the first, an errors series would count as requests and the errors
            // as 0 (a review found it, 2026-12-01).
            None | Some(Value::Null) => {
                return Err(invalid(
                    "a series has no query_index, so it cannot be told whether it counts requests or errors".to_owned(),
                ));
            }
            Some(index) => match index.as_u64() {
                Some(index) => index,
                None => {
                    return Err(invalid(format!(
                        "a series' query_index is {}, not an index",
                        shown(index)
                    )));
                }
            },
        };
        let Some(index) = usize::try_from(index).ok().filter(|&i| i < names.len()) else {
            continue;
        };
        let Some(version) = version_of(one, traffic) else {
            if !percentile {
                others[index].insert(version_tag(one, traffic));
            }
            continue;
        };
        let Some(points) = one.get("pointlist").and_then(Value::as_array) else {
            return Err(invalid(
                "a series has no `pointlist` array: not an answer of /api/v1/query".to_owned(),
            ));
        };
        let slot = &mut found[version][index];
        slot.series += 1;
        for point in points {
            let pair = point.as_array().map(Vec::as_slice);
            let Some([time, value]) = pair else {
                return Err(invalid(format!(
                    "a point of the pointlist is {}, not [time, value]",
                    shown(point)
                )));
            };
            if value.is_null() {
                continue;
            }
            let (Some(time), Some(value)) = (time.as_f64(), value.as_f64()) else {
                return Err(invalid(format!(
                    "a point of the pointlist is {}, not [time, value] numbers",
                    shown(point)
                )));
            };
            slot.sum += value;
            if slot.latest.is_none_or(|(t, _)| time >= t) {
                slot.latest = Some((time, value));
            }
        }
    }
    let label = &traffic.label;
    if let Some(group) = others[1].difference(&others[0]).next() {
        // The errors metric not tagged with the version (Datadog's `n/a` group), or tagged
        // with another spelling of it: taken as neither version's, the canary would read 0
        // errors.
        let group = group.as_deref().map_or_else(
            || format!("without a {label} tag"),
            |v| format!("tagged {label}:{v}"),
        );
        return Err(invalid(format!(
            "Datadog answered errors {group}, a group with no requests of its own: tag the errors metric with `{label}` as the requests are (canary reads {label}:{} and {label}:{}), or these errors would be left out",
            traffic.canary, traffic.baseline
        )));
    }
    let mut out = serde_json::Map::new();
    for (v, (version, value)) in [("canary", &traffic.canary), ("baseline", &traffic.baseline)]
        .into_iter()
        .enumerate()
    {
        let mut totals = serde_json::Map::new();
        if percentile {
            let one = found[v][0];
            if one.series > 1 {
                return Err(invalid(format!(
                    "Datadog answered {} series tagged {label}:{value} for the percentile: group it by the version tag alone (a percentile of several series cannot be added up)",
                    one.series
                )));
            }
            if let Some((_, latest)) = one.latest {
                totals.insert("percentile".to_owned(), finite(latest, "the percentile")?);
            }
        } else {
            let [requests, errors] = found[v];
            if requests.latest.is_some() {
                totals.insert(
                    "requests".to_owned(),
                    finite(requests.sum, "the sum of the requests")?,
                );
                // No error series for a version with requests: it had no errors.
                let errors = if errors.latest.is_some() {
                    errors.sum
                } else {
                    0.0
                };
                totals.insert(
                    "errors".to_owned(),
                    finite(errors, "the sum of the errors")?,
                );
            }
        }
        if totals.is_empty() {
            if version == "canary" {
                return Err(Reading::NoData {
                    reason: format!(
                        "Datadog's answer has no points for the canary (no series tagged {label}:{value} for the {} query)",
                        names[0]
                    ),
                });
            }
            continue;
        }
        out.insert(version.to_owned(), Value::Object(totals));
    }
    Ok(Value::Object(out))
}

/// The rollup interval of a past window's answer, in seconds: the largest `interval` of its
/// series (Datadog rolls points up into intervals it chooses by the window's length, at most
/// 1500 points per series: its "Rollup" documentation). `Ok(None)` for an answer without
/// series (nothing to cut); `Err` for a series that does not say its interval, which would
/// leave the ticks' cut points unknown.
pub fn rollup_interval(answer: &Value) -> Result<Option<f64>, String> {
    let Some(series) = answer.get("series").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut largest: Option<f64> = None;
    for one in series {
        let interval = one
            .get("interval")
            .and_then(Value::as_f64)
            .filter(|i| i.is_finite() && *i > 0.0)
            .ok_or_else(|| {
                format!(
                    "a series of Datadog's answer has no rollup `interval` ({}), so its points cannot be cut at the ticks",
                    one.get("interval").map(shown).unwrap_or_else(|| "none".to_owned())
                )
            })?;
        largest = Some(largest.map_or(interval, |l: f64| l.max(interval)));
    }
    Ok(largest)
}

/// A past window's answer (one request from the analysis start to its end) as the tick at
/// `at_ms` (milliseconds) would have been answered: each series keeps the points of the
/// intervals that begin before the tick, and a series left with no points is dropped
/// (Datadog sends no series for a window without points). A point `[T, v]` covers `[T, T +
/// interval)`, and a tick's own request (`from` = the start, `to` = the tick) is answered
/// with the points of the intervals that begin in `[from, to)`, so the cut reads what the
/// tick's request reads whenever both are rolled up alike ([`rollup_interval`] is checked
/// against the ticks' spacing first). Anything that is not a series list is left as it is, to
/// be read as the tick's own answer would be.
pub fn answer_until(answer: &Value, at_ms: f64) -> Value {
    let mut cut = answer.clone();
    if let Some(series) = cut.get_mut("series").and_then(Value::as_array_mut) {
        for one in series.iter_mut() {
            if let Some(points) = one.get_mut("pointlist").and_then(Value::as_array_mut) {
                points.retain(|point| {
                    // A point that is not `[time, …]` is kept, for the reader to refuse.
                    point
                        .as_array()
                        .and_then(|p| p.first())
                        .and_then(Value::as_f64)
                        .is_none_or(|time| time < at_ms)
                });
            }
        }
        series.retain(|one| {
            one.get("pointlist")
                .and_then(Value::as_array)
                .is_none_or(|points| !points.is_empty())
        });
    }
    cut
}

/// A series' tags: its `tag_set` or, without one, its `scope`.
fn tags_of(series: &Value) -> Vec<&str> {
    match series.get("tag_set").and_then(Value::as_array) {
        Some(tags) => tags.iter().filter_map(Value::as_str).collect(),
        None => series
            .get("scope")
            .and_then(Value::as_str)
            .map(|scope| scope.split(',').map(str::trim).collect())
            .unwrap_or_default(),
    }
}

/// The value of a series' version tag, lower-cased (`None` without one).
fn version_tag(series: &Value, traffic: &TrafficSelector) -> Option<String> {
    tags_of(series).into_iter().find_map(|tag| {
        let (name, value) = tag.split_once(':')?;
        name.eq_ignore_ascii_case(&traffic.label)
            .then(|| value.to_ascii_lowercase())
    })
}

/// 0 for the canary, 1 for the baseline, `None` for a series of neither, by `tag_set` or,
/// without one, `scope`.
fn version_of(series: &Value, traffic: &TrafficSelector) -> Option<usize> {
    let tags = tags_of(series);
    let is = |value: &str| {
        tags.iter().any(|tag| {
            tag.split_once(':').is_some_and(|(name, v)| {
                name.eq_ignore_ascii_case(&traffic.label) && v.eq_ignore_ascii_case(value)
            })
        })
    };
    if is(&traffic.canary) {
        Some(0)
    } else if is(&traffic.baseline) {
        Some(1)
    } else {
        None
    }
}

/// The metrics a check's queries read, in order (`sum:trace.http.request.hits{…} by
/// {version}.as_count(),sum:…errors{…}…` → the two names): each name after an aggregator's
/// `:` outside a scope's braces (a scope `{service:checkout}` has colons of its own).
/// Pre-flight asks Datadog's metric metadata (`GET /api/v1/metrics/{name}`) about each: a
/// misspelt errors metric would otherwise read as no errors, Datadog sending no series for
/// it.
///
/// A metric is also the name right before a scope's `{` (other than `by {…}`), so one
/// written without an aggregator (`trace.errors{…}`, which validation refuses for counts
/// but a percentile or a hand-made policy may hold) is asked about too.
pub fn metric_names(queries: &str) -> Vec<String> {
    let chars: Vec<char> = queries.chars().collect();
    let is_name = |c: &char| c.is_ascii_alphanumeric() || *c == '_' || *c == '.';
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: String| {
        let name = name.trim_end_matches('.').to_owned();
        let starts_well = name.starts_with(|c: char| c.is_ascii_alphabetic());
        if starts_well && name != "by" && !names.contains(&name) {
            names.push(name);
        }
    };
    let mut depth = 0i32;
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '{' => {
                if depth == 0 {
                    let before: Vec<char> = chars[..i]
                        .iter()
                        .rev()
                        .skip_while(|c| c.is_whitespace())
                        .take_while(|c| is_name(c))
                        .copied()
                        .collect();
                    add(before.into_iter().rev().collect());
                }
                depth += 1;
            }
            '}' => depth -= 1,
            ':' if depth == 0 => {
                add(chars[i + 1..].iter().take_while(|c| is_name(c)).collect());
            }
            _ => {}
        }
    }
    names
}

/// The metric queries of a check's `queries` (`REQUESTS,ERRORS`), split at the commas outside
/// braces and parentheses (a scope `{service:a,env:b}` holds commas of its own).
pub fn split_queries(queries: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in queries.chars() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out
}

/// The scope of a metric query: its first `{…}` (`{service:checkout,env:prod}`), its tags
/// sorted so that the order they are written in does not count.
pub fn scope_of(query: &str) -> Option<Vec<String>> {
    let start = query.find('{')?;
    let end = start + query[start..].find('}')?;
    let mut tags: Vec<String> = query[start + 1..end]
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    tags.sort();
    Some(tags)
}

/// The scope pre-flight asks about for a counts check whose errors query filters on other
/// tags than its requests query: the errors query's tags whose keys the requests query also
/// filters on (`service:checkout,env:prd` of `{service:checkout,env:prd,http.status_class:5xx}`
/// against `{service:checkout,env:prod}`), as written. Asked with the requests metric, a scope
/// that matches no series is a tag no request carries, so the errors query would read 0
/// errors at every tick. Tags the requests query does not filter on (a status class that only
/// errors carry) are left out: they may rightly match nothing while nothing failed. `None`
/// when there is nothing to ask: the same tags as the requests query (a scope matching
/// nothing then reads no requests, which is no data), no tag shared by key, or a scope
/// written with boolean operators or parentheses, which is not split here.
pub fn errors_scope_to_ask(requests: &str, errors: &str) -> Option<String> {
    let tags = |query: &str| -> Option<Vec<String>> {
        let start = query.find('{')?;
        let end = start + query[start..].find('}')?;
        let inside = &query[start + 1..end];
        let upper = inside.to_ascii_uppercase();
        if [" AND ", " OR ", " NOT ", " IN ", "("]
            .iter()
            .any(|op| upper.contains(op))
        {
            return None;
        }
        Some(
            inside
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty() && t != "*")
                .collect(),
        )
    };
    let key = |tag: &str| -> String {
        let tag = tag.trim_start_matches('!');
        tag.split_once(':')
            .map_or(tag, |(k, _)| k)
            .to_ascii_lowercase()
    };
    let (requests, errors) = (tags(requests)?, tags(errors)?);
    let keys: Vec<String> = requests.iter().map(|t| key(t)).collect();
    let shared: Vec<String> = errors
        .into_iter()
        .filter(|t| keys.contains(&key(t)))
        .collect();
    let lower = |tags: &[String]| -> Vec<String> {
        let mut out: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
        out.sort();
        out
    };
    let mut requests_shared: Vec<String> = requests
        .iter()
        .filter(|t| shared.iter().any(|s| key(s) == key(t)))
        .cloned()
        .collect();
    requests_shared.sort();
    if shared.is_empty() || lower(&shared) == lower(&requests_shared) {
        return None;
    }
    Some(shared.join(","))
}

/// Whether an answer of `/api/v1/query` holds at least one series with a point that is not
/// null: the scope pre-flight asked about matches something. `Err` for an answer that is not
/// a query answer, or an error.
pub fn answer_has_points(answer: &Value) -> Result<bool, String> {
    if let Some(errors) = answer.get("errors") {
        return Err(format!("Datadog answered errors: {}", shown(errors)));
    }
    let series = answer
        .get("series")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            "Datadog's answer has no `series` array: not an answer of /api/v1/query".to_owned()
        })?;
    Ok(series.iter().any(|one| {
        one.get("pointlist")
            .and_then(Value::as_array)
            .is_some_and(|points| {
                points.iter().any(|p| {
                    p.as_array()
                        .and_then(|p| p.get(1))
                        .is_some_and(|v| !v.is_null())
                })
            })
    }))
}

/// What Datadog's metric metadata answered with 404, in words: its `errors`.
pub fn unknown_metric_answer(body: &[u8]) -> String {
    let errors = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").map(shown))
        .unwrap_or_else(|| crate::error::excerpt(body, SHOWN_CHARS));
    format!("its metric metadata (GET /api/v1/metrics/…) answered HTTP 404 {errors}")
}

/// `x` as a JSON number, or `Invalid` when it is not finite (a sum that overflowed).
fn finite(x: f64, what: &str) -> Result<Value, Reading> {
    if x.is_finite() {
        Ok(json!(x))
    } else {
        Err(Reading::Invalid {
            reason: format!("{what} is {x}, not a finite number"),
        })
    }
}

/// A JSON value as a reason shows it: redacted, at most [`SHOWN_CHARS`] characters.
fn shown(value: &Value) -> String {
    shown_str(&value.to_string())
}

fn shown_str(text: &str) -> String {
    redacted(text).chars().take(SHOWN_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use canary_core::observation::{BaselineData, CheckObservation, RequestCounts};
    use canary_core::policy::{CheckKind, Policy};

    use super::*;

    const POLICY: &str = "service: checkout
traffic: {label: version, canary: canary, baseline: stable}
metrics:
  datadog: {site: datadoghq.eu, api-key: {env: DD_API_KEY}, application-key: {env: DD_APP_KEY}}
checks:
  - name: errors
    datadog:
      requests: 'sum:trace.http.request.hits{service:checkout} by {version}.as_count()'
      errors: 'sum:trace.http.request.errors{service:checkout} by {version}.as_count()'
    slo: {max: 1%}
    baseline: {max-increase: 20%}
  - name: p95
    datadog:
      percentile: 'p95:trace.http.request{service:checkout} by {version}'
      unit: ms
    slo: {max: 500ms}
";

    fn policy() -> Policy {
        Policy::from_yaml(POLICY, "dd.yaml").expect("valid")
    }

    fn check(policy: &Policy, i: usize) -> JsonCheck {
        match &policy.checks[i].kind {
            CheckKind::Json(json) => json.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn series(index: u64, tag: &str, points: Value) -> Value {
        json!({"metric": "m", "query_index": index, "tag_set": [tag], "scope": format!("service:checkout,{tag}"), "pointlist": points})
    }

    #[test]
    fn counts_add_up_the_points_of_each_version_and_a_missing_error_series_is_zero() {
        let policy = policy();
        let answer = json!({"status": "ok", "res_type": "time_series", "series": [
            series(0, "version:canary", json!([[1.8e12, 100.0], [1.80006e12, 200.0], [1.80012e12, null]])),
            series(0, "version:stable", json!([[1.8e12, 900.0], [1.80006e12, 1800.0]])),
            series(1, "version:stable", json!([[1.8e12, 9.0]])),
            series(0, "version:other", json!([[1.8e12, 5.0]])),
        ]});
        assert_eq!(
            reading_of_answer(&check(&policy, 0), &policy.traffic, &answer),
            Reading::Observed(CheckObservation::Counts {
                canary: RequestCounts {
                    requests: 300.0,
                    errors: 0.0
                },
                baseline: BaselineData::Observed(RequestCounts {
                    requests: 2700.0,
                    errors: 9.0
                }),
            })
        );
    }

    /// Review finding of 2026-12-01: a series without `query_index` was taken as the first
    /// query's, so with two queries an errors series counted as requests and the errors as
    /// 0. With two queries it is now an invalid answer; with one, it is that query's.
    #[test]
    fn a_series_without_its_query_index_is_invalid_when_two_queries_were_asked() {
        let policy = policy();
        let answer = json!({"series": [
            {"tag_set": ["version:canary"], "pointlist": [[1.8e12, 100.0]]},
            {"tag_set": ["version:canary"], "pointlist": [[1.8e12, 50.0]]},
        ]});
        let reading = reading_of_answer(&check(&policy, 0), &policy.traffic, &answer);
        assert!(
            matches!(&reading, Reading::Invalid { reason } if reason.contains("no query_index")),
            "{reading:?}"
        );
        let answer = json!({"series": [
            {"tag_set": ["version:canary"], "pointlist": [[1.8e12, 420.0]]},
        ]});
        assert_eq!(
            reading_of_answer(&check(&policy, 1), &policy.traffic, &answer),
            Reading::Observed(CheckObservation::Value { value: 0.42 })
        );
    }

    /// A past window's answer cut at a tick keeps the points of the intervals that begin
    /// before it and drops a series left without any; an answer without `interval` cannot be
    /// cut.
    #[test]
    fn a_window_answer_is_cut_at_a_tick_by_the_start_of_each_interval() {
        let mut canary = series(
            0,
            "version:canary",
            json!([[1.8e12, 100.0], [1.80001e12, 200.0]]),
        );
        canary["interval"] = json!(10);
        let mut late = series(1, "version:canary", json!([[1.80001e12, 5.0]]));
        late["interval"] = json!(10);
        let answer = json!({"series": [canary, late]});
        assert_eq!(rollup_interval(&answer), Ok(Some(10.0)));
        let cut = answer_until(&answer, 1.80001e12);
        assert_eq!(cut["series"].as_array().map(Vec::len), Some(1));
        assert_eq!(cut["series"][0]["pointlist"], json!([[1.8e12, 100.0]]));
        let policy = policy();
        assert_eq!(
            reading_of_answer(&check(&policy, 0), &policy.traffic, &answer_until(&answer, 2e12)),
            Reading::Observed(CheckObservation::Counts {
                canary: RequestCounts { requests: 300.0, errors: 5.0 },
                baseline: BaselineData::Missing(
                    "Datadog's answer has no points for the baseline (no series tagged version:stable)".to_owned()
                ),
            })
        );
        assert!(
            rollup_interval(&json!({"series": [series(0, "version:canary", json!([]))]})).is_err()
        );
        assert_eq!(rollup_interval(&json!({"errors": ["Forbidden"]})), Ok(None));
    }

    #[test]
    fn the_errors_scope_asked_about_is_its_tags_the_requests_query_also_filters_on() {
        let requests =
            "sum:trace.http.request.hits{service:checkout,env:prod} by {version}.as_count()";
        let ask = |errors: &str| errors_scope_to_ask(requests, errors);
        assert_eq!(
            ask("sum:trace.http.request.errors{service:checkout,env:prd} by {version}.as_count()"),
            Some("service:checkout,env:prd".to_owned())
        );
        // The same tags, in another order or case: nothing to ask.
        assert_eq!(
            ask("sum:e{Env:prod, service:checkout} by {version}.as_count()"),
            None
        );
        // A tag only errors carry is left out; a wrong shared one is still asked about.
        assert_eq!(
            ask(
                "sum:trace.http.request.hits{service:checkout,env:prod,http.status_class:5xx} by {version}.as_count()"
            ),
            None
        );
        assert_eq!(
            ask(
                "sum:trace.http.request.hits{service:checkout,env:prd,http.status_class:5xx} by {version}.as_count()"
            ),
            Some("service:checkout,env:prd".to_owned())
        );
        assert_eq!(
            ask("sum:e{service:checkout AND env:prd} by {version}.as_count()"),
            None
        );
        assert_eq!(ask("sum:e{*} by {version}.as_count()"), None);
        assert_eq!(answer_has_points(&json!({"series": []})), Ok(false));
        assert_eq!(
            answer_has_points(
                &json!({"series": [series(0, "version:canary", json!([[1.0, null]]))]})
            ),
            Ok(false)
        );
        assert_eq!(
            answer_has_points(
                &json!({"series": [series(0, "version:canary", json!([[1.0, 2.0]]))]})
            ),
            Ok(true)
        );
        assert!(answer_has_points(&json!({"errors": ["Forbidden"]})).is_err());
    }

    #[test]
    fn the_metric_names_of_queries_skip_the_scopes_colons() {
        assert_eq!(
            metric_names(
                "sum:trace.http.request.hits{service:checkout,env:prod} by {version}.as_count(),sum:trace.http.request.errors{service:checkout} by {version}.as_count()"
            ),
            ["trace.http.request.hits", "trace.http.request.errors"]
        );
        assert_eq!(
            metric_names("p95:trace.http.request{*} by {version}"),
            ["trace.http.request"]
        );
    }

    /// Review finding of 2026-12-01: a metric named without an aggregator
    /// (`trace.errorz{…}`, Datadog's default `avg`) was not found in the queries, so the
    /// pre-flight never asked about it and a misspelt one read as 0 errors.
    #[test]
    fn a_metric_without_an_aggregator_is_named_too() {
        assert_eq!(
            metric_names(
                "sum:hits{service:a} by {version}.as_count(),trace.errorz{service:a} by {version}.as_count()"
            ),
            ["hits", "trace.errorz"]
        );
        assert_eq!(
            metric_names("trace.errorz {*}.as_count()"),
            ["trace.errorz"]
        );
    }

    /// Review finding of 2026-12-01: errors series that belong to neither version — the
    /// errors metric not tagged with the version (Datadog's `version:n/a` group, or no tag
    /// at all), or tagged with another spelling of it — were skipped, and the canary, with
    /// requests but no errors series of its own, read 0 errors. Errors of a group that has
    /// no requests of its own are now an invalid answer; a third version with requests and
    /// errors of its own (an older one still serving) is still left out.
    #[test]
    fn errors_of_a_group_without_requests_are_invalid_never_zero() {
        let policy = policy();
        let requests = [
            series(0, "version:canary", json!([[1.8e12, 100.0]])),
            series(0, "version:stable", json!([[1.8e12, 900.0]])),
        ];
        for stray in [
            series(1, "version:n/a", json!([[1.8e12, 30.0]])),
            series(1, "version:canary-v2", json!([[1.8e12, 30.0]])),
            json!({"query_index": 1, "tag_set": [], "scope": "service:checkout", "pointlist": [[1.8e12, 30.0]]}),
        ] {
            let mut all = requests.to_vec();
            all.push(stray.clone());
            let answer = json!({"status": "ok", "series": all});
            let reading = reading_of_answer(&check(&policy, 0), &policy.traffic, &answer);
            assert!(
                matches!(&reading, Reading::Invalid { reason } if reason.contains("errors") && reason.contains("no requests")),
                "{stray}: {reading:?}"
            );
        }
        // A third version with requests and errors of its own is not the canary's.
        let mut all = requests.to_vec();
        all.push(series(0, "version:old", json!([[1.8e12, 50.0]])));
        all.push(series(1, "version:old", json!([[1.8e12, 5.0]])));
        let answer = json!({"status": "ok", "series": all});
        assert!(matches!(
            reading_of_answer(&check(&policy, 0), &policy.traffic, &answer),
            Reading::Observed(CheckObservation::Counts { canary: RequestCounts { errors, .. }, .. }) if errors == 0.0
        ));
    }

    #[test]
    fn a_percentile_is_the_canary_series_latest_point_in_seconds() {
        let policy = policy();
        let answer = json!({"series": [
            series(0, "version:Canary", json!([[1.80006e12, 420.0], [1.8e12, 900.0]])),
            series(0, "version:stable", json!([[1.8e12, 100.0]])),
        ]});
        assert_eq!(
            reading_of_answer(&check(&policy, 1), &policy.traffic, &answer),
            Reading::Observed(CheckObservation::Value { value: 0.42 })
        );
    }

    #[test]
    fn no_series_is_no_data_and_anything_else_is_invalid_never_a_value() {
        let policy = policy();
        let counts = check(&policy, 0);
        let read = |answer: Value| reading_of_answer(&counts, &policy.traffic, &answer);
        assert!(matches!(
            read(json!({"status": "ok", "series": []})),
            Reading::NoData { reason } if reason.contains("version:canary")
        ));
        for (answer, why) in [
            (json!({"errors": ["Forbidden"]}), "Forbidden"),
            (
                json!({"status": "error", "error": "Error parsing query"}),
                "Error parsing query",
            ),
            (json!([1, 2]), "not a JSON object"),
            (json!({"data": []}), "no `series`"),
            (
                json!({"series": [series(0, "version:canary", json!([[1, "x"]]))]}),
                "not [time, value] numbers",
            ),
            (
                json!({"series": [series(0, "version:canary", json!([[1.0, 1e308], [2.0, 1e308]]))]}),
                "not a finite number",
            ),
            (
                json!({"series": [series(0, "version:canary", json!([[1.0, 5.0]])), series(1, "version:canary", json!([[1.0, 6.0]]))]}),
                "more errors",
            ),
        ] {
            let reading = read(answer.clone());
            assert!(
                matches!(&reading, Reading::Invalid { reason } if reason.contains(why)),
                "{answer}: {reading:?}"
            );
        }
        // The baseline without series: only the comparison lacks data, said in Datadog's terms.
        let reading = read(json!({"series": [series(0, "version:canary", json!([[1.0, 5.0]]))]}));
        assert!(
            matches!(&reading, Reading::Observed(CheckObservation::Counts { baseline: BaselineData::Missing(why), .. })
                if why.contains("no series tagged version:stable")),
            "{reading:?}"
        );
        let two = json!({"series": [
            series(0, "version:canary", json!([[1.0, 5.0]])),
            series(0, "version:canary", json!([[1.0, 6.0]])),
        ]});
        assert!(matches!(
            reading_of_answer(&check(&policy, 1), &policy.traffic, &two),
            Reading::Invalid { reason } if reason.contains("2 series")
        ));
    }
}
