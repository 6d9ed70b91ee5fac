//! Writing the Prometheus text exposition format: what canary's own `/metrics` page
//! (`canary rollout --metrics-addr`) and the demo service's serve. prometheus-client encodes
//! OpenMetrics; [`openmetrics_to_prometheus_text`] turns that into the older text format 0.0.4
//! that every Prometheus server and text parser reads. (Reading pages is [`crate::scrape`].)

use std::collections::HashSet;

/// The `Content-Type` of a `/metrics` page in the Prometheus text format 0.0.4, which both
/// a Prometheus server and a plain text parser read.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites prometheus-client's OpenMetrics output into the Prometheus text format.
///
/// The two differ, for our metrics, in three things: OpenMetrics names a counter family
/// without its `_total` suffix in `# HELP`/`# TYPE` (the older format and the parsers
/// that follow it, such as `prometheus-parse`, expect the sample name there, and would
/// otherwise see untyped samples), it has `# UNIT` lines, and it ends with `# EOF`.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let counter_families: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, kind)| *kind == "counter")
        .map(|(family, _)| family)
        .collect();

    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| line.strip_prefix(prefix).map(|rest| (prefix, rest)));
        match descriptor {
            Some((prefix, rest)) => {
                let (family, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counter_families.contains(family) && !family.ends_with("_total") {
                    "_total"
                } else {
                    ""
                };
                text.push_str(prefix);
                text.push_str(family);
                text.push_str(suffix);
                if !tail.is_empty() {
                    text.push(' ');
                    text.push_str(tail);
                }
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_leaves_non_counters_alone() {
        let openmetrics = "# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n\
                           # HELP c Things.\n# TYPE c counter\nc_total 3\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(openmetrics),
            "# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n\
             # HELP c_total Things.\n# TYPE c_total counter\nc_total 3\n"
        );
    }
}
