//! The metrics a demo service exports, and their encoding in the Prometheus text format.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Name of the request counter, as it appears on `/metrics`: labels `version` and `code`.
pub const REQUESTS_METRIC: &str = "http_requests_total";

/// Name of the request-duration histogram (seconds), as it appears on `/metrics` with
/// its `_bucket`, `_sum` and `_count` series: label `version` (and `le` on buckets).
pub const REQUEST_DURATION_METRIC: &str = "http_request_duration_seconds";

/// Upper bounds of the duration histogram's buckets, in seconds (`+Inf` comes on top).
/// The classic Prometheus client defaults, so p95 checks at 0.5 s or 1 s land on a bound.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The status codes the service answers with, so their counters exist from the start:
/// an error-rate query must see a `code="500"` series at 0, not no series at all.
const STATUS_CODES: [u16; 2] = [200, 500];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    version: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// One service's metrics. Each service has its own registry, so two versions in one
/// process (as in `canary demo`) each export only their own series.
#[derive(Debug)]
pub(crate) struct ServiceMetrics {
    registry: Registry,
    version: String,
    requests: Family<RequestLabels, Counter>,
    /// The series every request touches, resolved once so recording a request takes
    /// no lock and clones no label set.
    ok_requests: Counter,
    failed_requests: Counter,
    durations: Histogram,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl ServiceMetrics {
    pub(crate) fn new(version: &str) -> Self {
        let mut registry = Registry::default();

        // prometheus-client appends `_total` to counter names itself.
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            REQUESTS_METRIC.trim_end_matches("_total"),
            "Requests served, by version and HTTP status code",
            requests.clone(),
        );
        let [ok_requests, failed_requests] = STATUS_CODES.map(|code| {
            requests.get_or_create_owned(&RequestLabels {
                version: version.to_owned(),
                code,
            })
        });

        let durations: Family<VersionLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            REQUEST_DURATION_METRIC,
            "Time to serve a request, in seconds, by version",
            durations.clone(),
        );
        let durations = durations.get_or_create_owned(&VersionLabels {
            version: version.to_owned(),
        });

        let start_time = Gauge::<f64, AtomicU64>::default();
        start_time.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |since_epoch| since_epoch.as_secs_f64()),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time of the service since the Unix epoch, in seconds",
            start_time,
        );

        Self {
            registry,
            version: version.to_owned(),
            requests,
            ok_requests,
            failed_requests,
            durations,
        }
    }

    /// Counts one served request and its duration.
    pub(crate) fn record(&self, code: u16, seconds: f64) {
        match code {
            200 => self.ok_requests.inc(),
            500 => self.failed_requests.inc(),
            _ => self
                .requests
                .get_or_create(&RequestLabels {
                    version: self.version.clone(),
                    code,
                })
                .inc(),
        };
        self.durations.observe(seconds);
    }

    /// The `/metrics` page in the Prometheus text format 0.0.4.
    pub(crate) fn encode(&self) -> String {
        let mut openmetrics = String::new();
        // Writing into a String cannot fail; the encoder's fmt::Error would only come
        // from a failing writer.
        let _ =
            prometheus_client::encoding::text::encode_registry(&mut openmetrics, &self.registry);
        canary_metrics::exposition::openmetrics_to_prometheus_text(&openmetrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_starting_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn both_status_codes_exist_before_any_request() {
        let text = ServiceMetrics::new("canary").encode();
        assert!(
            text.contains("http_requests_total{version=\"canary\",code=\"200\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("http_requests_total{version=\"canary\",code=\"500\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_count{version=\"canary\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn counters_are_typed_under_their_sample_name_and_there_is_no_eof() {
        let text = ServiceMetrics::new("stable").encode();
        assert_eq!(
            lines_starting_with(&text, "# TYPE "),
            vec![
                "# TYPE http_requests_total counter",
                "# TYPE http_request_duration_seconds histogram",
                "# TYPE process_start_time_seconds gauge",
            ],
            "{text}"
        );
        assert!(lines_starting_with(&text, "# HELP http_requests_total ").len() == 1);
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# UNIT"), "{text}");
    }

    #[test]
    fn histogram_has_the_documented_buckets_and_counts_observations() {
        let metrics = ServiceMetrics::new("stable");
        metrics.record(200, 0.003);
        metrics.record(200, 0.2);
        metrics.record(500, 30.0);
        let text = metrics.encode();
        let buckets: Vec<(&str, &str)> =
            lines_starting_with(&text, "http_request_duration_seconds_bucket{")
                .into_iter()
                .map(|line| {
                    let le = line.split("le=\"").nth(1).and_then(|r| r.split('"').next());
                    let value = line.rsplit(' ').next();
                    (le.unwrap_or_default(), value.unwrap_or_default())
                })
                .collect();
        assert_eq!(
            buckets,
            vec![
                ("0.005", "1"),
                ("0.01", "1"),
                ("0.025", "1"),
                ("0.05", "1"),
                ("0.1", "1"),
                ("0.25", "2"),
                ("0.5", "2"),
                ("1.0", "2"),
                ("2.5", "2"),
                ("5.0", "2"),
                ("10.0", "2"),
                ("+Inf", "3"),
            ]
        );
        assert!(text.contains("http_requests_total{version=\"stable\",code=\"200\"} 2\n"));
        assert!(text.contains("http_requests_total{version=\"stable\",code=\"500\"} 1\n"));
        assert!(text.contains("http_request_duration_seconds_count{version=\"stable\"} 3\n"));
    }
}
