//! [`ScrapeSource`]: the versions' own `/metrics` pages, read directly, for places with no
//! Prometheus server (and for `canary demo`, which runs everything in one process).
//!
//! Each read scrapes every endpoint (text exposition format, parsed by `prometheus-parse`;
//! a checked series whose label values that crate would misread is refused, not miscounted)
//! and adds each counter's increase since the previous scrape of that endpoint to a running
//! total, so the values are cumulative since the source's first scrape, like
//! `increase(…[since start])`. A counter that went down was reset (the process restarted):
//! its new value is the increase, as Prometheus counts it. A series that appears after the
//! first scrape started from zero since then, so its whole value counts. An instance's
//! totals are summed into its version's. A read scrapes all endpoints first and changes no
//! state unless every one answered, so a failed tick loses nothing: the next one covers it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use canary_core::observation::{
    BaselineData, CheckObservation, HistogramBucket, Reading, RequestCounts, Tick,
};
use canary_core::policy::{CheckKind, LabelMatcher, MatchOp, MetricsSourceSpec, Policy, Version};
use canary_core::ports::MetricsSource;
use jiff::Timestamp;

use crate::answer::parse_le;
use crate::error::{Error, Result, excerpt};

/// A series on a page: its metric name and its labels, sorted by name.
type SeriesKey = (String, Vec<(String, String)>);

/// One `/metrics` endpoint and the version it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    url: String,
    version: Version,
}

/// What the source remembers of one endpoint.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct EndpointState {
    /// Whether the first scrape happened.
    primed: bool,
    /// The values of the last scrape.
    #[serde(with = "series_map")]
    previous: HashMap<SeriesKey, f64>,
    /// Increases since the first scrape, per series.
    #[serde(with = "series_map")]
    accumulated: HashMap<SeriesKey, f64>,
}

/// Series maps as JSON lists of `[key, value]` (JSON objects take only string keys).
mod series_map {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::SeriesKey;

    pub(super) fn serialize<S: Serializer>(
        map: &HashMap<SeriesKey, f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&SeriesKey, &f64)> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HashMap<SeriesKey, f64>, D::Error> {
        Ok(Vec::<(SeriesKey, f64)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

impl EndpointState {
    /// Adds a scrape's increases. See the module documentation for resets and new series.
    fn update(&mut self, page: HashMap<SeriesKey, f64>) {
        if self.primed {
            for (key, value) in &page {
                let increase = match self.previous.get(key) {
                    Some(previous) if value >= previous => value - previous,
                    // Lower than before: a reset, and the new value is what was counted since.
                    Some(_) => *value,
                    // Born after the first scrape: it counted from zero since then.
                    None => *value,
                };
                *self.accumulated.entry(key.clone()).or_insert(0.0) += increase;
            }
        } else {
            for key in page.keys() {
                self.accumulated.insert(key.clone(), 0.0);
            }
            self.primed = true;
        }
        self.previous = page;
    }
}

/// A label matcher with its regex compiled, anchored as Prometheus anchors it.
#[derive(Clone, Debug)]
pub(crate) struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<regex::Regex>,
}

/// The compiled, anchored regex of a matcher's `pattern`, compiled once per process: a
/// `regex::Regex` clone shares its compiled program, and under `canary controller` every
/// rollout's shared reads build their matchers, so 10,000 rollouts of one template compiled
/// the same patterns 10,000 times — 114 MB of a 10,000-rollout controller's heap (heaptrack,
/// 2026-12-01). The table holds one entry per distinct pattern of the policies read.
fn compiled(pattern: &str) -> std::result::Result<regex::Regex, regex::Error> {
    static COMPILED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, regex::Regex>>,
    > = std::sync::OnceLock::new();
    let table = COMPILED.get_or_init(Default::default);
    if let Some(regex) = table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(pattern)
    {
        return Ok(regex.clone());
    }
    let regex = regex::Regex::new(&format!("^(?:{pattern})$"))?;
    table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(pattern.to_owned(), regex.clone());
    Ok(regex)
}

impl Matcher {
    pub(crate) fn new(matcher: &LabelMatcher) -> Result<Self> {
        let regex = match matcher.op {
            MatchOp::Regex | MatchOp::NotRegex => Some(compiled(&matcher.value).map_err(|e| {
                Error::Config(format!("the matcher {matcher} is not a valid regex: {e}"))
            })?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: matcher.name.clone(),
            op: matcher.op,
            value: matcher.value.clone(),
            regex,
        })
    }

    /// Prometheus semantics: a missing label has the empty value.
    fn matches(&self, labels: &[(String, String)]) -> bool {
        let value = labels
            .iter()
            .find(|(name, _)| *name == self.name)
            .map_or("", |(_, value)| value.as_str());
        self.matches_value(value)
    }

    /// [`Matcher::matches`] for a label set as the API answers it.
    pub(crate) fn matches_labels(&self, labels: &crate::answer::Labels) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }

    fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

fn all_match(matchers: &[Matcher], labels: &[(String, String)]) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// What one check reads from the pages.
#[derive(Clone, Debug)]
enum ScrapeCheck {
    ErrorRate {
        metric: String,
        common: Vec<Matcher>,
        errors: Vec<Matcher>,
        shown: String,
    },
    Latency {
        bucket_metric: String,
        common: Vec<Matcher>,
        shown: String,
    },
    /// Samples and query checks need PromQL (policy validation refuses them with `scrape`).
    Unsupported { kind: &'static str },
}

/// The versions' `/metrics` endpoints, scraped directly, as a metrics source.
pub struct ScrapeSource {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    checks: Vec<(String, ScrapeCheck)>,
    timeout: Duration,
    state: tokio::sync::Mutex<Vec<EndpointState>>,
}

impl std::fmt::Debug for ScrapeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeSource")
            .field("endpoints", &self.endpoints)
            .field("checks", &self.checks.len())
            .finish_non_exhaustive()
    }
}

impl ScrapeSource {
    /// The source of a policy whose metrics come from `scrape`.
    pub fn from_policy(policy: &Policy) -> Result<Self> {
        let MetricsSourceSpec::Scrape(spec) = &policy.metrics else {
            return Err(Error::Config(
                "the policy's metrics come from `prometheus`, not `scrape`".to_owned(),
            ));
        };
        let endpoints = spec
            .canary
            .iter()
            .map(|url| (url, Version::Canary))
            .chain(spec.baseline.iter().map(|url| (url, Version::Baseline)))
            .map(|(url, version)| Endpoint {
                url: url.clone(),
                version,
            })
            .collect();
        Self::new(policy, endpoints, spec.timeout)
    }

    /// A source scraping `canary` and `baseline` URLs for the policy's checks, whatever its
    /// `metrics` section says (for `canary demo`, which learns its ports at run time).
    pub fn with_endpoints(
        policy: &Policy,
        canary: &[String],
        baseline: &[String],
        timeout: Duration,
    ) -> Result<Self> {
        let endpoints = canary
            .iter()
            .map(|url| (url, Version::Canary))
            .chain(baseline.iter().map(|url| (url, Version::Baseline)))
            .map(|(url, version)| Endpoint {
                url: url.clone(),
                version,
            })
            .collect();
        Self::new(policy, endpoints, timeout)
    }

    fn new(policy: &Policy, endpoints: Vec<Endpoint>, timeout: Duration) -> Result<Self> {
        crate::install_crypto_provider();
        let common: Vec<Matcher> = policy
            .traffic
            .matchers
            .iter()
            .map(Matcher::new)
            .collect::<Result<_>>()?;
        let shown = |extra: &[LabelMatcher]| {
            let all: Vec<String> = policy
                .traffic
                .matchers
                .iter()
                .chain(extra)
                .map(ToString::to_string)
                .collect();
            format!("{{{}}}", all.join(", "))
        };
        let mut checks = Vec::new();
        for check in &policy.checks {
            let scrape_check = match &check.kind {
                CheckKind::ErrorRate(e) => ScrapeCheck::ErrorRate {
                    metric: e.requests_metric.clone(),
                    common: common.clone(),
                    errors: e
                        .error_matchers
                        .iter()
                        .map(Matcher::new)
                        .collect::<Result<_>>()?,
                    shown: format!("{}{}", e.requests_metric, shown(&[])),
                },
                CheckKind::Latency(l) => ScrapeCheck::Latency {
                    bucket_metric: format!("{}_bucket", l.histogram),
                    common: common.clone(),
                    shown: format!("{}_bucket{}", l.histogram, shown(&[])),
                },
                other => ScrapeCheck::Unsupported { kind: other.name() },
            };
            checks.push((check.name.clone(), scrape_check));
        }
        for endpoint in &endpoints {
            reqwest::Url::parse(&endpoint.url)
                .map_err(|e| Error::Config(format!("{:?} is not a URL: {e}", endpoint.url)))?;
        }
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            // A redirect is reported (see `fetch`), never followed: the policy names the pages.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("canary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
        let state = endpoints.iter().map(|_| EndpointState::default()).collect();
        Ok(ScrapeSource {
            client,
            endpoints,
            checks,
            timeout,
            state: tokio::sync::Mutex::new(state),
        })
    }

    /// Takes the first scrape of every endpoint: the zero from which totals count. A read
    /// does this itself when it comes first (and then reports zeros).
    pub async fn prime(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        let pages = self.scrape_all().await?;
        for (endpoint, page) in state.iter_mut().zip(pages) {
            if !endpoint.primed {
                endpoint.update(page);
            }
        }
        Ok(())
    }

    /// The metric names the checks read.
    fn wanted(&self, name: &str) -> bool {
        self.checks.iter().any(|(_, c)| match c {
            ScrapeCheck::ErrorRate { metric, .. } => metric == name,
            ScrapeCheck::Latency { bucket_metric, .. } => bucket_metric == name,
            ScrapeCheck::Unsupported { .. } => false,
        })
    }

    async fn scrape_all(&self) -> Result<Vec<HashMap<SeriesKey, f64>>> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let client = self.client.clone();
            let url = endpoint.url.clone();
            let timeout = self.timeout;
            tasks.spawn(async move { (index, fetch(&client, &url, timeout).await) });
        }
        let mut bodies: Vec<Option<Result<String>>> = self.endpoints.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (index, body) =
                joined.map_err(|e| Error::Config(format!("a scrape task failed: {e}")))?;
            bodies[index] = Some(body);
        }
        let mut pages = Vec::with_capacity(bodies.len());
        for (endpoint, body) in self.endpoints.iter().zip(bodies) {
            let body =
                body.unwrap_or_else(|| Err(Error::Config("a scrape task vanished".to_owned())))?;
            pages.push(self.parse_page(endpoint, &body)?);
        }
        Ok(pages)
    }

    fn parse_page(&self, endpoint: &Endpoint, body: &str) -> Result<HashMap<SeriesKey, f64>> {
        let body = self.as_the_parser_reads_it(endpoint, body)?;
        let lines = body.lines().map(|line| Ok(line.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).map_err(|e| Error::Scrape {
            address: endpoint.url.clone(),
            message: format!("cannot read the page: {e}"),
            source: None,
        })?;
        let trimmed = body.trim_start();
        if scrape.samples.is_empty() && (trimmed.starts_with('<') || trimmed.starts_with('{')) {
            return Err(Error::Scrape {
                address: endpoint.url.clone(),
                message: format!(
                    "not the Prometheus text format; it begins: {}",
                    excerpt(body.as_bytes(), 200)
                ),
                source: None,
            });
        }
        self.flatten(endpoint, scrape)
    }

    /// The page as `prometheus-parse` reads it right. That crate splits a label set on `,`
    /// and `=` and ends it at the first `}`, without reading quotes or escapes, and keeps
    /// the spaces around label names. For the checked metrics' lines, the spaces the format
    /// allows between labels are taken out; a label value holding `\`, `,`, `=` or `}`
    /// would come out wrong or take its whole line with it, silently, so rather than count
    /// such a page wrong the source refuses it, naming the line and the label. Lines of
    /// other metrics are passed through as they are.
    fn as_the_parser_reads_it<'a>(
        &self,
        endpoint: &Endpoint,
        body: &'a str,
    ) -> Result<std::borrow::Cow<'a, str>> {
        let mut rewritten: Option<String> = None;
        for (index, line) in body.lines().enumerate() {
            let name_end = line
                .find(|c: char| c == '{' || c.is_whitespace())
                .unwrap_or(line.len());
            let (name, rest) = line.split_at(name_end);
            let normal = if line.starts_with('#') || !self.wanted(name) {
                None
            } else {
                match normal_label_set(rest) {
                    Ok(normal) => normal.map(|rest| format!("{name}{rest}")),
                    Err(problem) => {
                        return Err(Error::Scrape {
                            address: endpoint.url.clone(),
                            message: format!(
                                "line {}: {name}: {problem}, which the scrape source cannot read \
                                 reliably; fix or drop that label on the page, or read the \
                                 metrics through Prometheus",
                                index + 1
                            ),
                            source: None,
                        });
                    }
                }
            };
            if let Some(text) = &mut rewritten {
                text.push_str(normal.as_deref().unwrap_or(line));
                text.push('\n');
            } else if let Some(normal) = normal {
                let mut text = String::with_capacity(body.len());
                for earlier in body.lines().take(index) {
                    text.push_str(earlier);
                    text.push('\n');
                }
                text.push_str(&normal);
                text.push('\n');
                rewritten = Some(text);
            }
        }
        Ok(rewritten.map_or(std::borrow::Cow::Borrowed(body), std::borrow::Cow::Owned))
    }

    /// The page's samples the checks need, one value per series; histograms become their
    /// `_bucket` series with `le`, as Prometheus stores them.
    /// Two samples of one checked series on a page are an error: which one to count is
    /// unknowable. So is a checked sample that is not a finite count of 0 or more (NaN,
    /// ±Inf, negative): counted, it would make every later total of its check NaN and the
    /// source's checkpoint unreadable; refused, the page changes nothing and the next
    /// scrape counts on.
    fn flatten(
        &self,
        endpoint: &Endpoint,
        scrape: prometheus_parse::Scrape,
    ) -> Result<HashMap<SeriesKey, f64>> {
        let shown = |(name, labels): &SeriesKey| {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{name}{{{}}}", labels.join(","))
        };
        let mut series = HashMap::new();
        let mut insert = |key: SeriesKey, value: f64| {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::Scrape {
                    address: endpoint.url.clone(),
                    message: format!(
                        "the page gives {} the value {value}, not a finite count of 0 or more",
                        shown(&key)
                    ),
                    source: None,
                });
            }
            let taken = match series.entry(key) {
                std::collections::hash_map::Entry::Vacant(free) => {
                    free.insert(value);
                    return Ok(());
                }
                std::collections::hash_map::Entry::Occupied(taken) => taken,
            };
            Err(Error::Scrape {
                address: endpoint.url.clone(),
                message: format!(
                    "the page has two samples of {}; which one to count is unknowable",
                    shown(taken.key())
                ),
                source: None,
            })
        };
        for sample in scrape.samples {
            let labels = |extra: Option<(&str, String)>| {
                let mut labels: Vec<(String, String)> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some((name, value)) = extra {
                    labels.push((name.to_owned(), value));
                }
                labels.sort();
                labels
            };
            match &sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => {
                    if self.wanted(&sample.metric) {
                        insert((sample.metric.clone(), labels(None)), *v)?;
                    }
                }
                prometheus_parse::Value::Histogram(buckets) => {
                    let name = format!("{}_bucket", sample.metric);
                    if self.wanted(&name) {
                        for bucket in buckets {
                            let le = if bucket.less_than == f64::INFINITY {
                                "+Inf".to_owned()
                            } else {
                                bucket.less_than.to_string()
                            };
                            insert((name.clone(), labels(Some(("le", le)))), bucket.count)?;
                        }
                    }
                }
                prometheus_parse::Value::Summary(_) => {}
            }
        }
        Ok(series)
    }

    /// Scrapes every endpoint, adds the increases, and reads every check.
    pub async fn read_tick(&self, since: Timestamp, at: Timestamp) -> Result<Tick> {
        let mut state = self.state.lock().await;
        let pages = self.scrape_all().await?;
        Ok(self.tick_from_pages(&mut state, pages, since, at))
    }

    /// What [`ScrapeSource::read_tick`] does with the pages once fetched: `bodies` are the
    /// endpoints' pages in the order the source lists them (canary URLs, then baseline).
    /// Public so that the fuzz targets (`tests/fuzz`) feed the source hostile pages.
    pub async fn read_tick_from_bodies(
        &self,
        bodies: &[&str],
        since: Timestamp,
        at: Timestamp,
    ) -> Result<Tick> {
        if bodies.len() != self.endpoints.len() {
            return Err(Error::Config(format!(
                "{} pages for {} endpoints",
                bodies.len(),
                self.endpoints.len()
            )));
        }
        let mut state = self.state.lock().await;
        let pages = self
            .endpoints
            .iter()
            .zip(bodies)
            .map(|(endpoint, body)| self.parse_page(endpoint, body))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.tick_from_pages(&mut state, pages, since, at))
    }

    fn tick_from_pages(
        &self,
        state: &mut [EndpointState],
        pages: Vec<HashMap<SeriesKey, f64>>,
        since: Timestamp,
        at: Timestamp,
    ) -> Tick {
        let mut current = Vec::with_capacity(pages.len());
        for (endpoint, page) in state.iter_mut().zip(pages) {
            let keys: Vec<SeriesKey> = page.keys().cloned().collect();
            endpoint.update(page);
            current.push(keys);
        }
        let mut readings = BTreeMap::new();
        for (name, check) in &self.checks {
            readings.insert(name.clone(), self.reading(check, state, &current));
        }
        let window = (at.as_millisecond() - since.as_millisecond()).max(0) as f64 / 1000.0;
        Tick {
            at,
            window_seconds: window,
            readings,
            warnings: Vec::new(),
        }
    }

    fn reading(
        &self,
        check: &ScrapeCheck,
        state: &[EndpointState],
        current: &[Vec<SeriesKey>],
    ) -> Reading {
        let (metric, common, shown) = match check {
            ScrapeCheck::ErrorRate {
                metric,
                common,
                shown,
                ..
            } => (metric, common, shown),
            ScrapeCheck::Latency {
                bucket_metric,
                common,
                shown,
            } => (bucket_metric, common, shown),
            ScrapeCheck::Unsupported { kind } => {
                return Reading::Invalid {
                    reason: format!("a {kind} check runs PromQL and cannot be read from a scrape"),
                };
            }
        };
        let selected = |key: &SeriesKey| key.0 == *metric && all_match(common, &key.1);
        // Missing data: an endpoint whose latest page has none of the series. A canary
        // endpoint without them leaves nothing to judge; baseline endpoints without them
        // leave only the comparison without data (a partial baseline is no baseline).
        let missing_on = |version: Version| -> Vec<String> {
            self.endpoints
                .iter()
                .zip(current)
                .filter(|(endpoint, keys)| {
                    endpoint.version == version && !keys.iter().any(selected)
                })
                .map(|(endpoint, _)| {
                    format!("{} ({})", endpoint.url, version_name(endpoint.version))
                })
                .collect()
        };
        let missing_canary = missing_on(Version::Canary);
        let missing_baseline = missing_on(Version::Baseline);
        if !missing_canary.is_empty() {
            let missing: Vec<String> = missing_canary.into_iter().chain(missing_baseline).collect();
            return Reading::NoData {
                reason: format!("no {shown} series on {}", missing.join(", ")),
            };
        }
        let baseline_missing = (!missing_baseline.is_empty())
            .then(|| format!("no {shown} series on {}", missing_baseline.join(", ")));
        let of_version = |version: Version| {
            self.endpoints
                .iter()
                .zip(state)
                .filter(move |(endpoint, _)| endpoint.version == version)
                .flat_map(|(_, s)| s.accumulated.iter())
                .filter(|(key, _)| selected(key))
        };
        match check {
            ScrapeCheck::ErrorRate { errors, .. } => {
                let counts = |version: Version| {
                    let mut counts = RequestCounts::default();
                    for (key, value) in of_version(version) {
                        counts.requests += value;
                        if all_match(errors, &key.1) {
                            counts.errors += value;
                        }
                    }
                    counts
                };
                Reading::Observed(CheckObservation::Counts {
                    canary: counts(Version::Canary),
                    baseline: match baseline_missing {
                        Some(reason) => BaselineData::Missing(reason),
                        None => BaselineData::Observed(counts(Version::Baseline)),
                    },
                })
            }
            ScrapeCheck::Latency { .. } => {
                let mut out = [Vec::new(), Vec::new()];
                for (i, version) in [Version::Canary, Version::Baseline].into_iter().enumerate() {
                    if version == Version::Baseline && baseline_missing.is_some() {
                        continue;
                    }
                    let mut by_le: Vec<(f64, f64)> = Vec::new();
                    for (key, value) in of_version(version) {
                        let Some(le) = key
                            .1
                            .iter()
                            .find(|(n, _)| n == "le")
                            .and_then(|(_, v)| parse_le(v))
                        else {
                            return Reading::Invalid {
                                reason: format!("a {metric} series has no numeric le label"),
                            };
                        };
                        match by_le.iter_mut().find(|(l, _)| *l == le) {
                            Some((_, count)) => *count += value,
                            None => by_le.push((le, *value)),
                        }
                    }
                    by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
                    if by_le.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
                        return Reading::Invalid {
                            reason: format!(
                                "the {metric} series of the {} have no le=\"+Inf\" bucket",
                                version_name(version)
                            ),
                        };
                    }
                    out[i] = by_le
                        .into_iter()
                        .map(|(le, count)| HistogramBucket { le, count })
                        .collect();
                }
                let [canary, baseline] = out;
                Reading::Observed(CheckObservation::Histogram {
                    canary,
                    baseline: match baseline_missing {
                        Some(reason) => BaselineData::Missing(reason),
                        None => BaselineData::Observed(baseline),
                    },
                })
            }
            // Returned above.
            ScrapeCheck::Unsupported { kind } => Reading::Invalid {
                reason: format!("a {kind} check cannot be read from a scrape"),
            },
        }
    }
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::Canary => "canary",
        Version::Baseline => "baseline",
    }
}

async fn fetch(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<String> {
    let fail = |message: String, source: Option<reqwest::Error>| Error::Scrape {
        address: url.to_owned(),
        message,
        source: source.map(|e| Box::new(e.without_url()) as canary_core::error::BoxError),
    };
    let mut response = client
        .get(url)
        .timeout(timeout)
        .header(
            reqwest::header::ACCEPT,
            "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        )
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                fail(format!("no answer within {timeout:?}"), None)
            } else {
                fail("cannot scrape".to_owned(), Some(e))
            }
        })?;
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| crate::prometheus::strip_userinfo(&String::from_utf8_lossy(l.as_bytes())))
            .unwrap_or_default();
        return Err(fail(
            format!(
                "HTTP {}: a redirect to {}, not followed (canary follows no redirect)",
                status.as_u16(),
                excerpt(location.as_bytes(), 200)
            ),
            None,
        ));
    }
    // The same ceiling as a Prometheus answer's default: a page is read as it streams in.
    let limit = canary_core::policy::DEFAULT_MAX_ANSWER_BYTES;
    let body = crate::prometheus::read_bounded(&mut response, limit)
        .await
        .map_err(|e| {
            if e.is_timeout() {
                fail(format!("no complete page within {timeout:?}"), None)
            } else {
                fail("the page was cut off".to_owned(), Some(e))
            }
        })?
        .ok_or_else(|| {
            fail(
                format!(
                    "the page is larger than {}, cut off unread",
                    canary_core::policy::size_as_written(limit)
                ),
                None,
            )
        })?;
    if !status.is_success() {
        return Err(fail(
            format!(
                "HTTP {} from the metrics page: {}",
                status.as_u16(),
                excerpt(&body, 200)
            ),
            None,
        ));
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| fail("the page is not UTF-8 text".to_owned(), None))
}

#[async_trait]
impl MetricsSource for ScrapeSource {
    async fn read(&self, since: Timestamp, at: Timestamp) -> canary_core::Result<Tick> {
        Ok(self.read_tick(since, at).await?)
    }

    /// Every endpoint's last values and running totals, by URL: after a restart the next
    /// scrape counts from where the last one left off, the time in between included.
    async fn checkpoint(&self) -> Option<serde_json::Value> {
        let state = self.state.lock().await;
        let saved: BTreeMap<&str, &EndpointState> = self
            .endpoints
            .iter()
            .map(|e| e.url.as_str())
            .zip(state.iter())
            .collect();
        serde_json::to_value(saved).ok()
    }

    async fn restore(&self, checkpoint: &serde_json::Value) -> canary_core::Result<()> {
        let mut saved: BTreeMap<String, EndpointState> = serde_json::from_value(checkpoint.clone())
            .map_err(|e| {
                canary_core::Error::Usage(format!("the saved scrape totals do not parse: {e}"))
            })?;
        let mut state = self.state.lock().await;
        for (endpoint, slot) in self.endpoints.iter().zip(state.iter_mut()) {
            // An endpoint the policy no longer lists is dropped; a new one starts afresh.
            if let Some(endpoint_state) = saved.remove(&endpoint.url) {
                *slot = endpoint_state;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let list = |version: Version| {
            self.endpoints
                .iter()
                .filter(|e| e.version == version)
                .map(|e| e.url.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "scrape canary [{}] baseline [{}]",
            list(Version::Canary),
            list(Version::Baseline)
        )
    }
}

/// A sample line after its metric name (`rest`), with the whitespace outside quotes taken
/// out of its label set, if there was any: `Ok(None)` when `rest` is fine as it is. `Err`
/// says what `prometheus-parse` would misread: a quoted value holding `\\`, `,`, `=` or
/// `}`, or a label set the text format does not allow (an unquoted or unterminated value,
/// no closing `}`), which that crate would read as something else rather than refuse.
/// Quotes and escapes are read as the text format defines them.
fn normal_label_set(rest: &str) -> std::result::Result<Option<String>, String> {
    let trimmed = rest.trim_start();
    let Some(labels) = trimmed.strip_prefix('{') else {
        return Ok(None);
    };
    let mut normal = String::with_capacity(rest.len());
    normal.push('{');
    let mut changed = trimmed.len() != rest.len();
    let mut name = String::new();
    let mut after_equals = false;
    let mut chars = labels.char_indices();
    while let Some((_, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => changed = true,
            '"' if after_equals => {
                normal.push('"');
                let mut misread = false;
                loop {
                    let Some((_, c)) = chars.next() else {
                        return Err(format!("the value of label `{name}` has no closing quote"));
                    };
                    normal.push(c);
                    match c {
                        '"' => break,
                        '\\' => {
                            misread = true;
                            if let Some((_, escaped)) = chars.next() {
                                normal.push(escaped);
                            }
                        }
                        ',' | '=' | '}' => misread = true,
                        _ => {}
                    }
                }
                if misread {
                    return Err(format!(
                        "the value of label `{name}` holds one of \\ , = }} or an escape"
                    ));
                }
                name.clear();
                after_equals = false;
            }
            _ if after_equals => {
                return Err(format!("the value of label `{name}` is not quoted"));
            }
            '=' => {
                after_equals = true;
                normal.push('=');
            }
            '}' => {
                normal.push('}');
                let after = chars.next().map_or(labels.len(), |(at, _)| at);
                normal.push_str(&labels[after..]);
                return Ok(changed.then_some(normal));
            }
            ',' => normal.push(','),
            c => {
                name.push(c);
                normal.push(c);
            }
        }
    }
    Err("the label set has no closing `}`".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use canary_tests::fake_http::{FakeServer, http, path_of};

    use super::*;

    fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        (name.to_owned(), labels)
    }

    #[test]
    fn increases_accumulate_across_resets_and_new_series() {
        let a = key("reqs", &[("code", "200")]);
        let b = key("reqs", &[("code", "500")]);
        let mut state = EndpointState::default();
        state.update(HashMap::from([(a.clone(), 100.0)]));
        assert_eq!(state.accumulated[&a], 0.0, "the first scrape is the zero");
        state.update(HashMap::from([(a.clone(), 130.0)]));
        assert_eq!(state.accumulated[&a], 30.0);
        // The process restarted: 130 → 12 is a reset, 12 requests since.
        state.update(HashMap::from([(a.clone(), 12.0), (b.clone(), 2.0)]));
        assert_eq!(state.accumulated[&a], 42.0);
        assert_eq!(
            state.accumulated[&b], 2.0,
            "a series born after the start counts from 0"
        );
        state.update(HashMap::from([(a.clone(), 20.0), (b.clone(), 5.0)]));
        assert_eq!(state.accumulated[&a], 50.0);
        assert_eq!(state.accumulated[&b], 5.0);
    }

    #[test]
    fn matchers_are_anchored_like_prometheus() {
        let m = Matcher::new(&LabelMatcher {
            name: "code".to_owned(),
            op: MatchOp::Regex,
            value: "5..".to_owned(),
        })
        .unwrap();
        let labels = |code: &str| vec![("code".to_owned(), code.to_owned())];
        assert!(m.matches(&labels("500")));
        assert!(!m.matches(&labels("1500")));
        assert!(!m.matches(&labels("5000")));
        assert!(!m.matches(&[]));
        let not = Matcher::new(&LabelMatcher {
            name: "env".to_owned(),
            op: MatchOp::NotEqual,
            value: "dev".to_owned(),
        })
        .unwrap();
        assert!(not.matches(&[]), "a missing label is the empty value");
        assert!(
            Matcher::new(&LabelMatcher {
                name: "x".to_owned(),
                op: MatchOp::Regex,
                value: "(".to_owned()
            })
            .is_err()
        );
    }

    fn page(version: &str, ok: u64, errors: u64, buckets: &[(&str, u64)]) -> String {
        let mut text = format!(
            "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
             http_requests_total{{version=\"{version}\",code=\"200\"}} {ok}\n\
             http_requests_total{{version=\"{version}\",code=\"500\"}} {errors}\n\
             # HELP http_request_duration_seconds Latency.\n# TYPE http_request_duration_seconds histogram\n"
        );
        for (le, count) in buckets {
            text.push_str(&format!(
                "http_request_duration_seconds_bucket{{version=\"{version}\",le=\"{le}\"}} {count}\n"
            ));
        }
        text.push_str("process_start_time_seconds 1.7e9\n");
        text
    }

    /// Serves whatever `pages` currently holds for a path (`/c`, `/b`); 404 otherwise.
    fn serve(pages: Arc<std::sync::Mutex<HashMap<String, (u16, String)>>>) -> String {
        FakeServer::start(move |request| {
            let (status, body) = pages
                .lock()
                .unwrap()
                .get(path_of(request))
                .cloned()
                .unwrap_or((404, "not found".to_owned()));
            http(&format!("{status} X"), "text/plain; version=0.0.4", &body)
        })
        .url()
    }

    fn policy(selector: &str) -> Policy {
        let yaml = format!(
            "service: s\ntraffic: {{label: version, canary: canary, baseline: stable, selector: '{selector}'}}\n\
             metrics:\n  scrape: {{canary: ['http://127.0.0.1:1/metrics'], baseline: ['http://127.0.0.1:1/metrics']}}\n\
             checks:\n\
             \x20 - name: errors\n    error-rate: {{requests: http_requests_total, errors: 'code=~\"5..\"'}}\n    slo: {{max: 1%}}\n\
             \x20 - name: latency\n    latency: {{histogram: http_request_duration_seconds, quantile: 0.95}}\n    slo: {{max: 1s}}\n"
        );
        Policy::from_yaml(&yaml, "test.yaml").unwrap()
    }

    /// Found by the `exposition_page` fuzz target: a NaN (or ±Inf, or negative) value of a
    /// checked counter went into the running totals, so every later reading of the check was
    /// NaN, and the checkpoint saved in the rollout state held `null`, which a resumed
    /// rollout could not read back ("the saved scrape totals do not parse").
    #[tokio::test]
    async fn a_counter_that_is_not_a_finite_count_is_refused_and_never_saved() {
        let source = ScrapeSource::from_policy(&policy("")).unwrap();
        let (since, at) = (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH);
        let good = page("canary", 10, 1, &[("+Inf", 10)]);
        source
            .read_tick_from_bodies(&[&good, &good], since, at)
            .await
            .unwrap();
        for bad in ["NaN", "+Inf", "-Inf", "-3"] {
            let body =
                format!("{good}http_requests_total{{version=\"canary\",code=\"502\"}} {bad}\n");
            let err = source
                .read_tick_from_bodies(&[&body, &good], since, at)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(r#"http_requests_total{code="502",version="canary"}"#)
                    && err.contains("a finite count of 0 or more"),
                "{bad}: {err}"
            );
        }
        let checkpoint = source.checkpoint().await.unwrap();
        let saved: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&checkpoint).unwrap()).unwrap();
        ScrapeSource::from_policy(&policy(""))
            .unwrap()
            .restore(&saved)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sums_instances_and_counts_since_the_first_scrape() {
        let pages = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let url = serve(Arc::clone(&pages));
        let set = |path: &str, body: String| {
            pages.lock().unwrap().insert(path.to_owned(), (200, body));
        };
        set("/c", page("canary", 100, 1, &[("0.1", 90), ("+Inf", 101)]));
        set(
            "/b1",
            page("stable", 500, 5, &[("0.1", 450), ("+Inf", 505)]),
        );
        set("/b2", page("stable", 50, 0, &[("0.1", 50), ("+Inf", 50)]));
        let source = ScrapeSource::with_endpoints(
            &policy(""),
            &[format!("{url}/c")],
            &[format!("{url}/b1"), format!("{url}/b2")],
            Duration::from_secs(2),
        )
        .unwrap();
        let t0 = Timestamp::now();
        source.prime().await.unwrap();
        set("/c", page("canary", 150, 3, &[("0.1", 130), ("+Inf", 153)]));
        // b1 restarted: its counters start again from 0.
        set("/b1", page("stable", 40, 1, &[("0.1", 35), ("+Inf", 41)]));
        set("/b2", page("stable", 60, 0, &[("0.1", 58), ("+Inf", 60)]));
        let tick = source.read_tick(t0, t0).await.unwrap();
        assert_eq!(
            tick.readings["errors"],
            Reading::Observed(CheckObservation::Counts {
                canary: RequestCounts {
                    requests: 52.0,
                    errors: 2.0
                },
                baseline: RequestCounts {
                    requests: 41.0 + 10.0,
                    errors: 1.0
                }
                .into(),
            })
        );
        let Reading::Observed(CheckObservation::Histogram { canary, baseline }) =
            &tick.readings["latency"]
        else {
            panic!("{tick:?}")
        };
        assert_eq!(
            canary,
            &vec![
                HistogramBucket {
                    le: 0.1,
                    count: 40.0
                },
                HistogramBucket {
                    le: f64::INFINITY,
                    count: 52.0
                }
            ]
        );
        assert_eq!(baseline.observed().unwrap()[0].count, 35.0 + 8.0);

        // A baseline page without the series leaves the baseline missing, naming the
        // endpoint; the canary's data is still there for its absolute bounds.
        set(
            "/b2",
            "# nothing here\nprocess_start_time_seconds 1\n".to_owned(),
        );
        let tick = source.read_tick(t0, t0).await.unwrap();
        let Reading::Observed(CheckObservation::Counts {
            canary,
            baseline: BaselineData::Missing(reason),
        }) = &tick.readings["errors"]
        else {
            panic!("{tick:?}")
        };
        assert_eq!(canary.requests, 52.0);
        assert!(reason.contains(&format!("{url}/b2 (baseline)")), "{reason}");
        let Reading::Observed(CheckObservation::Histogram {
            baseline: BaselineData::Missing(_),
            ..
        }) = &tick.readings["latency"]
        else {
            panic!("{tick:?}")
        };
        // A canary page without them is missing data for every criterion.
        set("/c", "# nothing here\n".to_owned());
        let tick = source.read_tick(t0, t0).await.unwrap();
        let Reading::NoData { reason } = &tick.readings["errors"] else {
            panic!("{tick:?}")
        };
        assert!(reason.contains(&format!("{url}/c (canary)")), "{reason}");
        assert!(reason.contains(&format!("{url}/b2 (baseline)")), "{reason}");

        // HTML is refused, an error status too, both naming the endpoint; nothing is counted.
        set("/b2", "<html>login</html>".to_owned());
        let err = source.read_tick(t0, t0).await.unwrap_err();
        assert_eq!(err.address(), Some(format!("{url}/b2").as_str()));
        assert!(
            err.to_string().contains("not the Prometheus text format"),
            "{err}"
        );
        pages
            .lock()
            .unwrap()
            .insert("/c".to_owned(), (500, "oops".to_owned()));
        let err = source.read_tick(t0, t0).await.unwrap_err();
        assert!(err.to_string().contains("HTTP 500"), "{err}");
        let core: canary_core::Error = err.into();
        assert!(
            core.to_string()
                .starts_with(&format!("scrape at {url}/c: HTTP 500")),
            "{core}"
        );
    }

    #[tokio::test]
    async fn a_restored_source_counts_on_from_where_the_saved_one_left_off() {
        let pages = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let url = serve(Arc::clone(&pages));
        let set = |path: &str, body: String| {
            pages.lock().unwrap().insert(path.to_owned(), (200, body));
        };
        set("/c", page("canary", 100, 1, &[("0.1", 90), ("+Inf", 101)]));
        set("/b", page("stable", 500, 5, &[("0.1", 450), ("+Inf", 505)]));
        let make = || {
            ScrapeSource::with_endpoints(
                &policy(""),
                &[format!("{url}/c")],
                &[format!("{url}/b")],
                Duration::from_secs(2),
            )
            .unwrap()
        };
        let t0 = Timestamp::now();
        let first = make();
        first.prime().await.unwrap();
        set("/c", page("canary", 150, 3, &[("0.1", 130), ("+Inf", 153)]));
        first.read_tick(t0, t0).await.unwrap();
        let checkpoint = first
            .checkpoint()
            .await
            .expect("a scrape source has totals to keep");
        // The process dies; while it is gone the canary serves 40 more requests, 4 errors.
        drop(first);
        set("/c", page("canary", 186, 7, &[("0.1", 160), ("+Inf", 193)]));
        let second = make();
        second.restore(&checkpoint).await.unwrap();
        let tick = second.read_tick(t0, t0).await.unwrap();
        let Reading::Observed(CheckObservation::Counts { canary, .. }) = &tick.readings["errors"]
        else {
            panic!("{tick:?}")
        };
        assert_eq!(
            (canary.requests, canary.errors),
            (92.0, 6.0),
            "52 + 40 requests, 2 + 4 errors since the first scrape: nothing lost across the restart"
        );
    }

    #[test]
    fn label_sets_lose_the_spaces_the_parser_keeps_and_misread_values_are_named() {
        let normal = |rest: &str| normal_label_set(rest);
        assert_eq!(normal(r#"{a="x",b="y"} 1"#), Ok(None));
        assert_eq!(normal(" 1"), Ok(None));
        assert_eq!(
            normal(r#"{a="x y"} 1"#),
            Ok(None),
            "spaces inside values stay"
        );
        assert_eq!(
            normal(r#"{a="x", code="500"} 1 1700000000000"#),
            Ok(Some(r#"{a="x",code="500"} 1 1700000000000"#.to_owned()))
        );
        assert_eq!(
            normal(r#" { a = "x" , b="y" , } 1"#),
            Ok(Some(r#"{a="x",b="y",} 1"#.to_owned()))
        );
        let refused = |rest: &str| normal_label_set(rest).unwrap_err();
        let held = "holds one of \\ , = } or an escape";
        assert_eq!(
            refused(r#"{a="x", path="/q?x=1"} 1"#),
            format!("the value of label `path` {held}")
        );
        assert!(refused(r#"{a="x,y",b="z"} 1"#).contains("label `a` holds"));
        assert!(refused(r#"{b="}",a="x"} 1"#).contains("label `b` holds"));
        assert!(refused(r#"{dir="C:\\tmp"} 1"#).contains("label `dir` holds"));
        assert!(refused(r#"{q="say \"hi\""} 1"#).contains("label `q` holds"));
        // What the format does not allow, prometheus-parse would read as something else:
        // `{code="500} 3` as code 500. Refused.
        assert_eq!(
            refused(r#"{code="500} 3"#),
            "the value of label `code` has no closing quote"
        );
        assert_eq!(
            refused(r#"{code=500} 3"#),
            "the value of label `code` is not quoted"
        );
        assert_eq!(
            refused(r#"{code="500" 3"#),
            "the label set has no closing `}`"
        );
    }

    #[test]
    fn spaces_between_labels_are_read_like_prometheus_reads_them() {
        let source = ScrapeSource::with_endpoints(
            &policy(""),
            &["http://c/metrics".to_owned()],
            &["http://b/metrics".to_owned()],
            Duration::from_secs(1),
        )
        .unwrap();
        let page = "# TYPE http_requests_total counter\n\
                    http_requests_total{version=\"canary\", code=\"500\"} 4\n\
                    http_requests_total {version=\"canary\",code=\"200\"} 6\n\
                    other{a=\"b\", c=\"d\"} 1\n";
        let series = source.parse_page(&source.endpoints[0], page).unwrap();
        let labels = |code: &str| {
            vec![
                ("code".to_owned(), code.to_owned()),
                ("version".to_owned(), "canary".to_owned()),
            ]
        };
        let value = |code| series.get(&("http_requests_total".to_owned(), labels(code)));
        assert_eq!(value("500"), Some(&4.0), "{series:?}");
        assert_eq!(value("200"), Some(&6.0), "{series:?}");
        assert_eq!(series.len(), 2, "{series:?}");
    }

    #[test]
    fn a_page_the_parser_would_misread_is_refused_naming_the_line_and_label() {
        let source = ScrapeSource::with_endpoints(
            &policy(""),
            &["http://c/metrics".to_owned()],
            &["http://b/metrics".to_owned()],
            Duration::from_secs(1),
        )
        .unwrap();
        let endpoint = &source.endpoints[0];
        // As prometheus-parse reads it, `path` would vanish and the two series would be one.
        let page = "# TYPE http_requests_total counter\n\
                    http_requests_total{version=\"canary\",code=\"200\",path=\"/a?x=1\"} 5\n\
                    http_requests_total{version=\"canary\",code=\"200\",path=\"/a?x=2\"} 7\n";
        let err = source.parse_page(endpoint, page).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("line 2: http_requests_total: the value of label `path` holds"),
            "{message}"
        );
        assert_eq!(err.address(), Some("http://c/metrics"));
        // A `}` in a bucket's label would take the whole line with it.
        let page = "http_request_duration_seconds_bucket{version=\"canary\",route=\"/{id}\",le=\"+Inf\"} 3\n";
        let message = source.parse_page(endpoint, page).unwrap_err().to_string();
        assert!(
            message.contains("http_request_duration_seconds_bucket: the value of label `route`"),
            "{message}"
        );
        // Series no check reads are not looked at.
        let page = format!("{}build_info{{path=\"a=b,c\"}} 1\n", page_text());
        assert!(source.parse_page(endpoint, &page).is_ok());
        // Two samples of one series are refused: which one to count is anyone's guess.
        let page = format!(
            "{}http_requests_total{{version=\"canary\",code=\"200\"}} 9\n",
            page_text()
        );
        let message = source.parse_page(endpoint, &page).unwrap_err().to_string();
        assert!(
            message.contains("two samples of http_requests_total{code=\"200\",version=\"canary\"}"),
            "{message}"
        );
    }

    fn page_text() -> String {
        page("canary", 1, 0, &[("+Inf", 1)])
    }

    #[tokio::test]
    async fn common_matchers_select_series_on_the_page() {
        let pages = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let url = serve(Arc::clone(&pages));
        pages
            .lock()
            .unwrap()
            .insert("/c".to_owned(), (200, page("canary", 1, 0, &[("+Inf", 1)])));
        let source = ScrapeSource::with_endpoints(
            &policy("job=\"checkout\""),
            &[format!("{url}/c")],
            &[format!("{url}/c")],
            Duration::from_secs(2),
        )
        .unwrap();
        let t0 = Timestamp::now();
        let tick = source.read_tick(t0, t0).await.unwrap();
        let Reading::NoData { reason } = &tick.readings["errors"] else {
            panic!("{tick:?}")
        };
        assert!(
            reason.starts_with("no http_requests_total{job=\"checkout\"} series on"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/metrics");
        let source = ScrapeSource::with_endpoints(
            &policy(""),
            std::slice::from_ref(&url),
            std::slice::from_ref(&url),
            Duration::from_secs(1),
        )
        .unwrap();
        let err = source
            .read_tick(Timestamp::now(), Timestamp::now())
            .await
            .unwrap_err();
        let core: canary_core::Error = err.into();
        assert_eq!(core.exit_code(), canary_core::ExitCode::Infrastructure);
        assert!(core.to_string().contains(&url), "{core}");
    }
}
