//! A fake of Datadog's metrics query API (`GET /api/v1/query?from=&to=&query=`), checking
//! what Datadog checks: both the API key (`DD-API-KEY`) and the application key
//! (`DD-APPLICATION-KEY`), each refused with Datadog's own answer — HTTP 403 and
//! `{"errors": ["Forbidden"]}` — when missing or wrong; a request without `from`, `to` or
//! `query` gets Datadog's 400 `{"errors": [...]}`. A good request is answered by the test's
//! function of the decoded parameters: the `series` Datadog would send ([`answer`]), or an
//! error.
//!
//! Metric metadata (`GET /api/v1/metrics/{metric_name}`, the keys checked as for queries) is
//! answered as Datadog documents it: 200 with the metadata object for a metric the fake was
//! told it knows, 404 with `{"errors": [...]}` for any other.

use crate::fake_aws::form_pairs;
use crate::fake_http::{FakeServer, header_of, http, path_of};

/// The keys a fake Datadog accepts.
#[derive(Clone, Debug)]
pub struct DatadogKeys {
    /// The API key (`DD-API-KEY`).
    pub api_key: String,
    /// The application key (`DD-APPLICATION-KEY`).
    pub application_key: String,
}

/// The decoded parameters of one query request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatadogQuery {
    /// `from`, Unix seconds.
    pub from: u64,
    /// `to`, Unix seconds.
    pub to: u64,
    /// `query`: the metric queries, comma-separated.
    pub query: String,
}

impl DatadogQuery {
    /// The metric queries of `query`, split at the commas outside braces and parentheses
    /// (a scope `{service:a,env:b}` holds commas of its own).
    pub fn queries(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut depth = 0i32;
        let mut current = String::new();
        for c in self.query.chars() {
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
}

/// A fake Datadog: requests with both keys right are answered with `answer(query)` (a whole
/// HTTP response, see [`http`]); anything else as Datadog answers it.
pub fn datadog(
    keys: DatadogKeys,
    known: &[&str],
    answer: impl Fn(&DatadogQuery) -> String + Send + 'static,
) -> FakeServer {
    let known: Vec<String> = known.iter().map(|m| (*m).to_owned()).collect();
    FakeServer::start(move |request| {
        let forbidden = || {
            http(
                "403 Forbidden",
                "application/json",
                r#"{"errors":["Forbidden"]}"#,
            )
        };
        if header_of(request, "dd-api-key") != Some(keys.api_key.as_str())
            || header_of(request, "dd-application-key") != Some(keys.application_key.as_str())
        {
            return forbidden();
        }
        let path = path_of(request);
        if let Some(metric) = path.strip_prefix("/api/v1/metrics/") {
            let metric = form_pairs(&format!("m={metric}"))
                .pop()
                .map(|(_, v)| v)
                .unwrap_or_default();
            if request.starts_with("GET ") && known.contains(&metric) {
                return http(
                    "200 OK",
                    "application/json",
                    r#"{"description":null,"integration":null,"per_unit":null,"short_name":null,"statsd_interval":null,"type":"count","unit":null}"#,
                );
            }
            return http(
                "404 Not Found",
                "application/json",
                r#"{"errors":["Metric not found"]}"#,
            );
        }
        let Some(query) = path.strip_prefix("/api/v1/query?") else {
            return http(
                "404 Not Found",
                "application/json",
                r#"{"errors":["Not found"]}"#,
            );
        };
        let pairs = form_pairs(query);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let (Some(from), Some(to), Some(query)) = (
            get("from").and_then(|v| v.parse().ok()),
            get("to").and_then(|v| v.parse().ok()),
            get("query"),
        ) else {
            return http(
                "400 Bad Request",
                "application/json",
                r#"{"errors":["Parameters 'from', 'to' and 'query' are required"]}"#,
            );
        };
        answer(&DatadogQuery { from, to, query })
    })
}

/// One series of an answer: `query_index`, the tag `tag`, and `pointlist` of `points`
/// (`[milliseconds, value]`).
pub fn series(metric: &str, index: usize, tag: &str, points: &[(u64, f64)]) -> String {
    let pointlist: Vec<String> = points
        .iter()
        .map(|(ms, v)| format!("[{ms}.0, {v}]"))
        .collect();
    format!(
        r#"{{"metric": "{metric}", "display_name": "{metric}", "query_index": {index}, "aggr": "sum", "scope": "{tag}", "tag_set": ["{tag}"], "expression": "{metric}", "unit": null, "interval": 1, "length": {}, "start": 0, "end": 0, "pointlist": [{}]}}"#,
        points.len(),
        pointlist.join(", ")
    )
}

/// A whole answer of `series`, as `/api/v1/query` sends it (the body of a 200).
pub fn answer(query: &DatadogQuery, series: &[String]) -> String {
    format!(
        r#"{{"status": "ok", "res_type": "time_series", "resp_version": 1, "query": {:?}, "from_date": {}, "to_date": {}, "series": [{}], "values": [], "times": [], "message": "", "group_by": ["version"]}}"#,
        query.query,
        query.from * 1000,
        query.to * 1000,
        series.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_split_at_top_level_commas_only() {
        let q = DatadogQuery {
            from: 0,
            to: 1,
            query: "sum:a{service:x,env:y} by {version}.as_count(),sum:b{*} by {version,host}.as_count()".to_owned(),
        };
        assert_eq!(
            q.queries(),
            [
                "sum:a{service:x,env:y} by {version}.as_count()",
                "sum:b{*} by {version,host}.as_count()"
            ]
        );
    }
}
