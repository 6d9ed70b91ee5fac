//! One Prometheus query for many rollouts: `canary controller`'s shared reads.
//!
//! Under the controller every rollout reads its checks at its own ticks, each query
//! `increase(M{SEL}[Ws])` at its own time with its own `W` (the seconds since its analysis
//! started), so 1,000 rollouts of one policy template cost 1,000 queries per check per tick
//! even where they select the very same series. Here a rollout's read of an error-rate or
//! latency check (the checks with a raw-sample form, [`queries::raw_samples_metric`]) joins
//! a **batch**: the reads of every rollout of the same **template** — the same server,
//! credentials and client settings ([`PrometheusSource::sharing_key`]), the same metric and
//! version label, and a selector of the same shape (matchers with the same names and
//! operators, the same values but for the equality matchers', [`selector_shape`]) — that
//! arrive within the coalescing window (`canary controller run --read-coalesce`, 500 ms by
//! default, at most a tenth of the interval of the rollout that opens the batch). The batch
//! sends one query of the raw samples, `METRIC{SEL}[Dms]` at the latest `at` among its
//! reads, `D` reaching back to the earliest window start, where `SEL` asks for every value
//! its reads asked for (`service=~"a|b"`, each value regex-escaped; `version=~"…"` every
//! version of them), at most [`MAX_VALUES_PER_BATCH`] values per matcher. Each rollout picks
//! its own series out of the answer with its own selector (PromQL's matching: exactly the
//! series its own query selects, in the answer's order) and computes its reading at its own
//! `at` and window, as Prometheus computes `increase()` and `sum by` ([`crate::window`], the
//! computation `canary analyze` over a past window already uses; its test against a real
//! Prometheus gives the same ticks to the last bit, and so does this module's). Its error
//! matchers are applied locally, so rollouts differing only in them share too.
//!
//! What stays per rollout: checks with the policy's own PromQL (`samples`, `query`), sources
//! with a client certificate, the query naming the label values that exist when a version
//! has no series (rare), and a rollout's pre-flight read (the controller starts rollouts a
//! few at a time, and a start waiting for a batch held its place longer). The first read
//! after a resume joins the batches: a standby taking over 10,000 rollouts sent 20,000
//! queries of its own when it did not. A shared answer that cannot stand for each rollout's
//! own — refused
//! (the server's limit on samples), over the policy's `max-answer-size` or `max-series`
//! (raw samples are larger than the aggregated answer the limits were set for), with
//! warnings, or not a matrix — sends each rollout back to its own instant query, so every
//! reading is still what the single-rollout path reads. So does a failure of the shared
//! query of several reads (no connection, a timeout, a 5xx after the retries, 401): the
//! batch's query is larger than any of theirs and can fail where theirs answer, so each
//! rollout's reading is what its own query then says — an answer, or the same failure
//! (exit 4 / the same message). A failure of a batch of one read is that read's own.
//!
//! Memory: a batch's samples are kept only until its rollouts have computed their readings
//! (an `Arc` dropped with the last of them); the table holds open batches only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use canary_core::observation::{Reading, Tick};
use canary_core::policy::{
    CheckKind, LabelMatcher, MatchOp, MetricsSourceSpec, Policy, TrafficSelector,
};
use canary_core::ports::MetricsSource;
use jiff::Timestamp;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::answer::QueryResult;
use crate::error::Result;
use crate::prometheus::{PrometheusSource, QueryOutcome, misses_a_version, reading_of};
use crate::queries::{self, QueryWindow};
use crate::window::{self, ErrorMatchers, RawSeries, TickRange};

/// The batches of one controller: every rollout's [`SharedSource`] joins them.
pub struct SharedReads {
    /// How long a batch stays open for more reads after its first (at most a tenth of the
    /// interval of the rollout that opens it).
    coalesce: Duration,
    /// The controller's query permits: a batch's query takes one, as does each query a
    /// rollout still sends on its own.
    permits: Option<Arc<Semaphore>>,
    /// The open batches, by key: removed when their query goes out (or replaced by a new
    /// one when full).
    open: Mutex<HashMap<String, Arc<Mutex<OpenBatch>>>>,
    /// Shared queries sent so far.
    sent: AtomicU64,
    /// Per key whose batches' answers went over `max-answer-size` or `max-series`: the
    /// fewer values its batches now ask for (halved each time, down to 1).
    caps: Mutex<HashMap<String, usize>>,
}

/// The most values of one equality matcher (and the most rollouts of different versions
/// over two) a batch's query asks for: past it, a new batch opens. The answer holds every
/// series of every service asked for, and over the policy's `max-series` (10,000 by
/// default) or `max-answer-size` every rollout of the batch would send its own query.
pub const MAX_VALUES_PER_BATCH: usize = 64;

/// A batch still taking reads.
struct OpenBatch {
    /// The earliest window start among its reads, in milliseconds.
    from_ms: i64,
    /// The latest `at` among its reads: the query's evaluation time.
    end: Timestamp,
    /// Per equality matcher of the selector (in its order), the values its reads asked for.
    values: Vec<BTreeSet<String>>,
    /// Every version its reads asked for.
    versions: BTreeSet<String>,
    /// How many reads joined it.
    reads: usize,
    answer: watch::Receiver<Option<Arc<BatchAnswer>>>,
}

impl OpenBatch {
    /// Whether a read asking for `values` and `versions` fits without passing `cap` values
    /// of a matcher (two versions per value).
    fn fits(&self, values: &[String], versions: &[String; 2], cap: usize) -> bool {
        let new_versions = versions
            .iter()
            .filter(|v| !self.versions.contains(*v))
            .count();
        self.values
            .iter()
            .zip(values)
            .all(|(set, value)| set.contains(value) || set.len() < cap)
            && (new_versions == 0 || self.versions.len() + new_versions <= 2 * cap)
    }

    fn add(&mut self, values: &[String], versions: &[String; 2], from_ms: i64, at: Timestamp) {
        self.from_ms = self.from_ms.min(from_ms);
        self.end = self.end.max(at);
        for (set, value) in self.values.iter_mut().zip(values) {
            set.insert(value.clone());
        }
        self.versions.extend(versions.iter().cloned());
    }
}

/// What a batch's query gave its reads.
enum BatchAnswer {
    /// The raw samples of every selected series over the batch's span.
    Samples(Vec<RawSeries>),
    /// An answer that cannot stand for each read's own query: each sends its own.
    OwnQueries {
        /// Over `max-answer-size` or `max-series`.
        over_a_limit: bool,
    },
    /// The query failed as each read's own would have.
    Failed(SharedFailure),
}

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads")
            .field("coalesce", &self.coalesce)
            .field("sent", &self.sent.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SharedReads {
    /// Batches open for `coalesce` after their first read; queries take one of `permits`
    /// when given.
    pub fn new(coalesce: Duration, permits: Option<Arc<Semaphore>>) -> Arc<SharedReads> {
        Arc::new(SharedReads {
            coalesce,
            permits,
            open: Mutex::new(HashMap::new()),
            sent: AtomicU64::new(0),
            caps: Mutex::new(HashMap::new()),
        })
    }

    /// How many shared queries were sent so far.
    pub fn queries_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The policy's source with its shareable checks read through these batches; `None`
    /// when nothing of it can be shared (not Prometheus, a client certificate, no
    /// error-rate or latency check): the caller builds the ordinary source then.
    pub fn source(
        self: &Arc<Self>,
        policy: &Policy,
        url: Option<&str>,
    ) -> Result<Option<SharedSource>> {
        if !matches!(policy.metrics, MetricsSourceSpec::Prometheus(_)) {
            return Ok(None);
        }
        let own = PrometheusSource::from_policy(policy, url)?;
        let Some(client_key) = own.sharing_key() else {
            return Ok(None);
        };
        let mut plans = Vec::with_capacity(own.checks.len());
        for check in &own.checks {
            let plan = match queries::raw_samples_metric(check) {
                Some(metric) => Some(Plan {
                    key: format!(
                        "{client_key}\n{metric}\n{:?}\n{:?}",
                        own.traffic.label,
                        selector_shape(&own.traffic.matchers)
                    ),
                    values: own
                        .traffic
                        .matchers
                        .iter()
                        .filter(|m| m.op == MatchOp::Equal)
                        .map(|m| m.value.clone())
                        .collect(),
                    versions: [own.traffic.canary.clone(), own.traffic.baseline.clone()],
                    selection: ErrorMatchers::new(&queries::both_versions(&own.traffic))?,
                    errors: match &check.kind {
                        CheckKind::ErrorRate(e) => Some(ErrorMatchers::new(&e.error_matchers)?),
                        _ => None,
                    },
                    metric,
                }),
                None => None,
            };
            plans.push(plan);
        }
        if plans.iter().all(Option::is_none) {
            return Ok(None);
        }
        // A tick waits at most a tenth of its interval for its batch: a rollout of 1 s ticks
        // is not slowed to one tick in 2 s by a 1 s window.
        let coalesce = self.coalesce.min(own.interval / 10);
        Ok(Some(SharedSource {
            coalesce,
            preflight_read: std::sync::atomic::AtomicBool::new(false),
            own: Arc::new(own),
            reads: Arc::clone(self),
            plans,
        }))
    }

    /// How many values of a matcher a batch of `key` asks for at most.
    pub(crate) fn cap(&self, key: &str) -> usize {
        self.caps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(MAX_VALUES_PER_BATCH)
    }

    /// A batch of `key` went over the policy's answer limits: the next ask for half as many
    /// values (a template whose services' series outgrow the limits together — the raw answer
    /// grows with the rollouts' age — ends with batches of one service, whose rollouts still
    /// share).
    fn halve_cap(&self, key: &str) {
        let mut caps = self.caps.lock().unwrap_or_else(PoisonError::into_inner);
        let cap = caps.entry(key.to_owned()).or_insert(MAX_VALUES_PER_BATCH);
        *cap = (*cap / 2).max(1);
    }

    async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        match &self.permits {
            Some(permits) => Arc::clone(permits).acquire_owned().await.ok(),
            None => None,
        }
    }

    /// Joins the open batch of `key`, or opens one whose query `own` sends when the
    /// coalescing window closes. Synchronous: a rollout joins every batch of its tick
    /// before it waits for any.
    fn join(
        self: &Arc<Self>,
        own: &Arc<PrometheusSource>,
        plan: &Plan,
        range: TickRange,
        at: Timestamp,
        coalesce: Duration,
    ) -> watch::Receiver<Option<Arc<BatchAnswer>>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(batch) = open.get(&plan.key) {
            let mut batch = batch.lock().unwrap_or_else(PoisonError::into_inner);
            if batch.fits(&plan.values, &plan.versions, self.cap(&plan.key)) {
                batch.add(&plan.values, &plan.versions, range.start_ms(), at);
                batch.reads += 1;
                return batch.answer.clone();
            }
            // Full: a new batch takes its place for the next reads.
        }
        let (sender, answer) = watch::channel(None);
        let mut batch = OpenBatch {
            from_ms: range.start_ms(),
            end: at,
            values: vec![BTreeSet::new(); plan.values.len()],
            versions: BTreeSet::new(),
            reads: 1,
            answer: answer.clone(),
        };
        batch.add(&plan.values, &plan.versions, range.start_ms(), at);
        let batch = Arc::new(Mutex::new(batch));
        open.insert(plan.key.clone(), Arc::clone(&batch));
        drop(open);
        // The query goes out from a task of its own: a rollout stopped while it waits
        // leaves the others' batch intact.
        let reads = Arc::clone(self);
        let own = Arc::clone(own);
        let key = plan.key.clone();
        let metric = plan.metric.clone();
        tokio::spawn(async move {
            tokio::time::sleep(coalesce).await;
            let query = {
                let mut open = reads.open.lock().unwrap_or_else(PoisonError::into_inner);
                if open.get(&key).is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                    open.remove(&key);
                }
                // Closed: no read joins it any more (joins happen under the table's lock).
                let batch = batch.lock().unwrap_or_else(PoisonError::into_inner);
                (batch_query(&own.traffic, &metric, &batch), batch.reads)
            };
            let (query, readers) = query;
            let answer = {
                let _permit = reads.permit().await;
                reads.sent.fetch_add(1, Ordering::Relaxed);
                send(&own, query, readers).await
            };
            if let BatchAnswer::OwnQueries { over_a_limit: true } = answer {
                reads.halve_cap(&key);
            }
            let _ = sender.send(Some(Arc::new(answer)));
        });
        answer
    }
}

/// What makes two reads' selectors one template: the matchers' names and operators in
/// order, and the values of all but the equality matchers (whose values a batch gathers).
fn selector_shape(matchers: &[LabelMatcher]) -> Vec<(&str, MatchOp, Option<&str>)> {
    matchers
        .iter()
        .map(|m| {
            let value = (m.op != MatchOp::Equal).then_some(m.value.as_str());
            (m.name.as_str(), m.op, value)
        })
        .collect()
}

/// A batch's query and its evaluation time: `METRIC{SEL}[Dms]` where each equality matcher
/// of the template asks for every value its reads asked for (`service="a"` for one,
/// `service=~"a|b"` for several, each regex-escaped), and the version label for every version.
/// Each read then picks its own series out of the answer with its own selector.
fn batch_query(traffic: &TrafficSelector, metric: &str, batch: &OpenBatch) -> (String, Timestamp) {
    let alternation = |values: &BTreeSet<String>| {
        values
            .iter()
            .map(|v| queries::quote_meta(v))
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut values = batch.values.iter();
    let mut matchers: Vec<LabelMatcher> = traffic
        .matchers
        .iter()
        .map(|m| {
            let gathered = if m.op == MatchOp::Equal {
                values.next()
            } else {
                None
            };
            match gathered {
                Some(set) if set.len() > 1 => LabelMatcher {
                    name: m.name.clone(),
                    op: MatchOp::Regex,
                    value: alternation(set),
                },
                _ => m.clone(),
            }
        })
        .collect();
    matchers.push(LabelMatcher {
        name: traffic.label.clone(),
        op: MatchOp::Regex,
        value: alternation(&batch.versions),
    });
    let range_ms = batch.end.as_millisecond() - batch.from_ms;
    (
        format!(
            "{metric}{}[{}]",
            queries::selector(&matchers),
            queries::range_text(range_ms)
        ),
        batch.end,
    )
}

/// The batch's one query, and what it gives its `readers` reads.
///
/// A failure of the query of a batch of several reads (a timeout, a 5xx after the retries,
/// no connection, an error answer) sends each read to its own query: the batch asks for more
/// series over a longer span than any of them (its oldest rollout's age, every service of the
/// template), so it can fail — the server's query timeout, the policy's `timeout` — where each
/// rollout's own small query answers (review finding, 2026-12-01: every rollout of the batch
/// failed its tick, and after `max-failed-ticks` rolled back). What a rollout's own query then
/// says — an answer, or the same failure — is its reading. A timeout or a refusal also halves
/// the template's batches, as an answer over a limit does. A batch of one read takes the
/// failure as its own: it was its own query's shape.
async fn send(
    own: &PrometheusSource,
    (promql, end): (String, Timestamp),
    readers: usize,
) -> BatchAnswer {
    let credentials = match own.credentials().await {
        Ok(credentials) => credentials,
        Err(err) => return BatchAnswer::Failed(SharedFailure::of(err.into())),
    };
    match own.instant_with(&credentials, &promql, end).await {
        Ok(QueryOutcome::Answer {
            result: QueryResult::Matrix(series),
            warnings,
        }) if warnings.is_empty() => {
            BatchAnswer::Samples(series.into_iter().map(RawSeries::from_range).collect())
        }
        Ok(outcome) => {
            tracing::info!(
                "{}: the shared query {promql} cannot stand for each rollout's own ({}): \
                 each sends its own",
                own.address(),
                describe_outcome(&outcome)
            );
            BatchAnswer::OwnQueries {
                over_a_limit: matches!(
                    outcome,
                    QueryOutcome::TooLarge { .. }
                        | QueryOutcome::TooManySeries { .. }
                        | QueryOutcome::Refused { .. }
                ),
            }
        }
        Err(err) if readers > 1 => {
            let timed_out = matches!(err, crate::error::Error::Timeout { .. });
            tracing::info!(
                "{}: the shared query {promql} failed ({}): each of its {readers} rollouts sends its own",
                own.address(),
                canary_core::Error::from(err),
            );
            BatchAnswer::OwnQueries {
                over_a_limit: timed_out,
            }
        }
        Err(err) => BatchAnswer::Failed(SharedFailure::of(err.into())),
    }
}

fn describe_outcome(outcome: &QueryOutcome) -> String {
    match outcome {
        QueryOutcome::Answer { warnings, .. } if !warnings.is_empty() => {
            "an answer with warnings".to_owned()
        }
        QueryOutcome::Answer { result, .. } => format!("a {}", result.type_name()),
        QueryOutcome::Refused { error_type, .. } => format!("refused, {error_type}"),
        QueryOutcome::TooLarge { .. } => "over max-answer-size".to_owned(),
        QueryOutcome::TooManySeries { .. } => "over max-series".to_owned(),
    }
}

/// A shared query's error, handed to every read of its batch as the same
/// `canary_core::Error` (the type is not `Clone`: its cause is kept as text).
struct SharedFailure(canary_core::Error);

impl SharedFailure {
    fn of(err: canary_core::Error) -> SharedFailure {
        SharedFailure(err)
    }

    fn to_error(&self) -> canary_core::Error {
        match &self.0 {
            canary_core::Error::Unavailable {
                component,
                address,
                message,
                source,
            } => canary_core::Error::Unavailable {
                component,
                address: address.clone(),
                message: message.clone(),
                source: source
                    .as_ref()
                    .map(|cause| Box::new(Cause(chain(cause.as_ref()))) as _),
            },
            other => canary_core::Error::Usage(other.to_string()),
        }
    }
}

/// An error and its causes, `a: b: c`.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// A shared error's cause, as text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Cause(String);

/// How one check of a rollout is read.
struct Plan {
    /// Its batches' key: the client, the metric, the version label and the selector's
    /// shape ([`selector_shape`]).
    key: String,
    metric: String,
    /// The values of its selector's equality matchers, in order.
    values: Vec<String>,
    /// Its canary's and baseline's values of the version label.
    versions: [String; 2],
    /// Its own raw query's matchers, which pick its series out of a batch's answer.
    selection: ErrorMatchers,
    /// An error-rate check's error matchers, applied to the samples' labels.
    errors: Option<ErrorMatchers>,
}

/// One rollout's Prometheus source under the controller: its error-rate and latency checks
/// read through the controller's [`SharedReads`], the others with its own queries. Gives
/// the very ticks [`PrometheusSource::read_tick`] gives.
pub struct SharedSource {
    /// How long a batch this source opens stays open.
    coalesce: Duration,
    /// Set by [`MetricsSource::preflight`]: the next read is the pre-flight's, and sends its
    /// own queries, not waiting for a batch (the rollout holds one of the controller's start
    /// places until its pre-flight is done).
    preflight_read: std::sync::atomic::AtomicBool,
    own: Arc<PrometheusSource>,
    reads: Arc<SharedReads>,
    /// Per check, in policy order: how it is shared (`None`: its own query).
    plans: Vec<Option<Plan>>,
}

impl std::fmt::Debug for SharedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSource")
            .field("address", &self.own.address())
            .field("shared_checks", &self.plans.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

impl SharedSource {
    /// Reads every check at `at`, cumulative since `since`.
    pub async fn read_tick(&self, since: Timestamp, at: Timestamp) -> canary_core::Result<Tick> {
        let own = &self.own;
        if self.preflight_read.swap(false, Ordering::Relaxed) {
            // The controller starts a bounded number of rollouts at a time, each holding its
            // place until its pre-flight is done: waiting for batches there slowed 1,000
            // rollouts' start from about 30 s to 84 s (docs/benchmarks.md). A resumed
            // rollout's first read comes after its first wait, which gave its place back.
            let _permit = self.reads.permit().await;
            return Ok(own.read_tick(since, at).await?);
        }
        let credentials = own.credentials().await?;
        let window = QueryWindow::new(since, at, own.interval);
        let range = TickRange {
            at_ms: at.as_millisecond(),
            window_seconds: window.window_seconds,
        };
        let batches: Vec<_> = self
            .plans
            .iter()
            .map(|plan| {
                plan.as_ref()
                    .map(|plan| self.reads.join(own, plan, range, at, self.coalesce))
            })
            .collect();
        let mut readings = BTreeMap::new();
        let mut warnings = Vec::new();
        for ((check, plan), batch) in own.checks.iter().zip(&self.plans).zip(batches) {
            let answer = match batch {
                Some(mut batch) => Some(answer_of(&mut batch).await),
                None => None,
            };
            let reading = match (plan, answer.as_deref()) {
                (Some(plan), Some(BatchAnswer::Samples(series))) => {
                    // Its own series, in the answer's order: exactly what its own raw query
                    // would have selected.
                    let own_series = series.iter().filter(|s| plan.selection.select(&s.labels));
                    let vector = match &plan.errors {
                        Some(errors) => {
                            window::error_rate_at(own_series, &own.traffic, errors, range)
                        }
                        None => window::latency_at(own_series, &own.traffic, range),
                    };
                    let reading: Reading = reading_of(check, &own.traffic, &vector);
                    if misses_a_version(&reading) {
                        let _permit = self.reads.permit().await;
                        own.with_values_that_exist(reading, check, &credentials, window, at)
                            .await
                    } else {
                        reading
                    }
                }
                (_, Some(BatchAnswer::Failed(failure))) => return Err(failure.to_error()),
                _ => {
                    let _permit = self.reads.permit().await;
                    own.read_check(&credentials, check, window, at, &mut warnings)
                        .await?
                }
            };
            readings.insert(check.name.clone(), reading);
        }
        Ok(Tick {
            at,
            window_seconds: window.window_seconds as f64,
            readings,
            warnings,
        })
    }
}

/// The batch's answer once its query is back; a batch whose task ended without one (the
/// runtime shutting down) is an error of the read.
async fn answer_of(batch: &mut watch::Receiver<Option<Arc<BatchAnswer>>>) -> Arc<BatchAnswer> {
    match batch.wait_for(Option::is_some).await {
        Ok(answer) => answer.clone().unwrap_or_else(abandoned),
        Err(_) => abandoned(),
    }
}

fn abandoned() -> Arc<BatchAnswer> {
    Arc::new(BatchAnswer::Failed(SharedFailure::of(
        canary_core::Error::unavailable(
            "prometheus",
            "the controller's shared reads",
            "the shared query was abandoned (the controller is stopping)",
        ),
    )))
}

#[async_trait]
impl MetricsSource for SharedSource {
    async fn read(&self, since: Timestamp, at: Timestamp) -> canary_core::Result<Tick> {
        self.read_tick(since, at).await
    }

    async fn preflight(&self) -> canary_core::Result<()> {
        self.preflight_read.store(true, Ordering::Relaxed);
        MetricsSource::preflight(self.own.as_ref()).await
    }

    fn describe(&self) -> String {
        self.own.describe()
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use canary_core::analysis::analyze;
    use canary_tests::fake_http::{FakeServer, body_of, http};
    use canary_tests::prometheus::Prometheus;

    use super::*;

    const STEP_SECONDS: i64 = 15;
    const SAMPLES: i64 = 240;
    const BUCKETS: [&str; 6] = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];

    /// An hour of 15-second samples, three to two hours ago, of two services, each with a
    /// stable and a canary version on two instances: service `b`'s canary fails 3 % of its
    /// requests where the others fail 0.2 %, and is slower. Whole, exact counts.
    fn openmetrics(start: i64) -> String {
        let mut out =
            String::from("# HELP http_requests Requests.\n# TYPE http_requests counter\n");
        let plan = [
            ("a", "stable", 30.0, 0.002, 1.0),
            ("a", "canary", 10.0, 0.002, 1.0),
            ("b", "v1", 30.0, 0.002, 1.0),
            ("b", "v2", 10.0, 0.03, 1.6),
            // Never asked for, but selected by the batches' queries: `service=~"a|b"` and
            // `version=~"canary|stable|v1|v2"`.
            ("b", "canary", 50.0, 0.5, 3.0),
        ];
        let requests = |rps: f64, instance: usize, k: i64| {
            (rps * (1.0 + 0.1 * instance as f64) * (STEP_SECONDS * k) as f64).floor()
        };
        for (service, version, rps, error_rate, _) in plan {
            for instance in 0..2 {
                for code in ["200", "500"] {
                    for k in 0..SAMPLES {
                        let n = requests(rps, instance, k);
                        let errors = (n * error_rate).floor();
                        let value = if code == "200" { n - errors } else { errors };
                        let _ = writeln!(
                            out,
                            "http_requests_total{{service=\"{service}\",version=\"{version}\",instance=\"i{instance}\",code=\"{code}\"}} {value} {}",
                            start + k * STEP_SECONDS
                        );
                    }
                }
            }
        }
        out.push_str("# HELP http_request_duration_seconds Latency.\n# TYPE http_request_duration_seconds histogram\n");
        for (service, version, rps, _, slower) in plan {
            for instance in 0..2 {
                for (b, le) in BUCKETS.iter().enumerate() {
                    for k in 0..SAMPLES {
                        let n = requests(rps, instance, k);
                        // The share at or below each bucket, lower for a slower version.
                        let share = if *le == "+Inf" {
                            1.0
                        } else {
                            [0.5, 0.8, 0.95, 0.98, 0.995][b] / slower
                        };
                        let _ = writeln!(
                            out,
                            "http_request_duration_seconds_bucket{{service=\"{service}\",version=\"{version}\",instance=\"i{instance}\",le=\"{le}\"}} {} {}",
                            (n * share).floor(),
                            start + k * STEP_SECONDS
                        );
                    }
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }

    fn policy(service: &str, url: &str) -> Policy {
        let (canary, baseline) = match service {
            "a" => ("canary", "stable"),
            _ => ("v2", "v1"),
        };
        let yaml = format!(
            r#"service: {service}
traffic:
  label: version
  canary: {canary}
  baseline: {baseline}
  selector: 'service="{service}"'
metrics:
  prometheus:
    url: {url}
    timeout: 5s
    retries: 1
rollout:
  interval: 30s
  min-requests: 500
  alpha: 1%
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 1%
    baseline:
      max-increase: 20%
  - name: latency
    latency:
      histogram: http_request_duration_seconds
      quantile: 0.95
    slo:
      max: 800ms
    baseline:
      max-increase: 25%
"#
        );
        Policy::from_yaml(&yaml, "test.yaml").unwrap()
    }

    /// Queries Prometheus has served, once its own counter has reached `at_least`.
    fn served(prometheus: &Prometheus, at_least: f64) -> f64 {
        canary_tests::wait_until(Duration::from_secs(5), || {
            prometheus.query_requests() >= at_least
        });
        prometheus.query_requests()
    }

    /// Issue 16: six rollouts of two services (one template: the same policy but for the
    /// value of `service=` and the versions' values), each with its own start and its own
    /// tick times (to the millisecond), read together through the shared reads and each
    /// alone with its own queries, over the same backfilled data in a real Prometheus: every
    /// tick (counts, buckets) is the same to the last bit, so every judgement (verdicts,
    /// evidence, when it failed) is; the shared reads cost 1 template × 2 checks = 2 queries
    /// per round (`service=~"a|b"`, each rollout picking its own series out) where alone they
    /// cost 6 × 2 = 12 (but in the first round, each rollout's pre-flight read, which sends
    /// its own), counted by Prometheus' own `prometheus_http_requests_total`.
    #[tokio::test]
    async fn shared_reads_give_every_rollout_the_ticks_and_decisions_of_its_own_queries() {
        let now = Timestamp::now().as_second();
        let start = (now - 3 * 3600) / 60 * 60;
        let prometheus = Prometheus::backfilled(&openmetrics(start));
        let url = prometheus.url();
        // (service, seconds after the data's start its analysis began, ms offset of its ticks)
        let rollouts = [
            ("a", 600, 0),
            ("a", 697, 370),
            ("a", 811, 1234),
            ("b", 600, 15),
            ("b", 733, 999),
            ("b", 905, 501),
        ];
        const ROUNDS: i64 = 24;
        let at = |(_, began, offset): (&str, i64, i64), round: i64| {
            Timestamp::from_millisecond((start + began + 60 * round) * 1000 + offset).unwrap()
        };
        let since =
            |(_, began, _): (&str, i64, i64)| Timestamp::from_second(start + began).unwrap();

        // Alone: one query per check per rollout per tick.
        let before = prometheus.query_requests();
        let mut alone: Vec<Vec<Tick>> = vec![Vec::new(); rollouts.len()];
        for round in 1..=ROUNDS {
            for (i, rollout) in rollouts.iter().enumerate() {
                let source = PrometheusSource::from_policy(&policy(rollout.0, &url), None).unwrap();
                alone[i].push(
                    source
                        .read_tick(since(*rollout), at(*rollout, round))
                        .await
                        .unwrap(),
                );
            }
        }
        let alone_queries = served(&prometheus, before + (ROUNDS * 12) as f64) - before;
        assert_eq!(
            alone_queries,
            (ROUNDS * 12) as f64,
            "6 rollouts × 2 checks per round"
        );

        // Shared: every round's reads go out together (on this single-threaded runtime each
        // read joins its batches before the batches' timers start).
        let reads = SharedReads::new(Duration::from_millis(100), None);
        let sources: Vec<Arc<SharedSource>> = rollouts
            .iter()
            .map(|r| Arc::new(reads.source(&policy(r.0, &url), None).unwrap().unwrap()))
            .collect();
        // Each rollout's pre-flight: its next read sends its own queries.
        for source in &sources {
            source.preflight().await.unwrap();
        }
        let before = prometheus.query_requests();
        let mut shared: Vec<Vec<Tick>> = vec![Vec::new(); rollouts.len()];
        for round in 1..=ROUNDS {
            let handles: Vec<_> = rollouts
                .iter()
                .zip(&sources)
                .map(|(rollout, source)| {
                    let source = Arc::clone(source);
                    let (since, at) = (since(*rollout), at(*rollout, round));
                    tokio::spawn(async move { source.read_tick(since, at).await })
                })
                .collect();
            for (i, handle) in handles.into_iter().enumerate() {
                shared[i].push(handle.await.unwrap().unwrap());
            }
        }
        // Each rollout's pre-flight read sends its own queries: 12 (a resumed rollout, with
        // no pre-flight, joins the batches from its first read: the tests below).
        let expected = 12 + (ROUNDS - 1) * 2;
        let shared_queries = served(&prometheus, before + expected as f64) - before;
        assert_eq!(
            shared_queries, expected as f64,
            "the first round 6 × 2, then 1 template × 2 checks per round"
        );
        assert_eq!(reads.queries_sent(), ((ROUNDS - 1) * 2) as u64);

        let mut failed = 0;
        for (i, rollout) in rollouts.iter().enumerate() {
            assert_eq!(shared[i].len(), alone[i].len());
            for (round, (shared, alone)) in shared[i].iter().zip(&alone[i]).enumerate() {
                assert_eq!(
                    shared, alone,
                    "rollout {i} ({rollout:?}), round {round}: the tick"
                );
            }
            let policy = policy(rollout.0, &url);
            let judged_alone = analyze(&policy, &alone[i]).unwrap();
            let judged_shared = analyze(&policy, &shared[i]).unwrap();
            assert_eq!(judged_shared, judged_alone, "rollout {i}: the judgement");
            // Real evidence, not empty readings: service b's canary fails, a's does not.
            assert_eq!(
                judged_alone.assessment.verdict == canary_core::judge::Verdict::Fail,
                rollout.0 == "b",
                "rollout {i}: {:?}",
                judged_alone.assessment.reason
            );
            failed += usize::from(judged_alone.decided_at.is_some());
        }
        assert_eq!(failed, 3, "the three rollouts of b were failed");
    }

    fn plain_policy(url: &str, extra: &str) -> Policy {
        let yaml = format!(
            "service: s\ntraffic: {{label: version, canary: canary, baseline: stable}}\n\
             metrics:\n  prometheus:\n    url: {url}\n    timeout: 1s\n    retries: 1\n{extra}\
             rollout: {{min-requests: 0}}\n\
             checks:\n  - name: latency\n    latency: {{histogram: h, quantile: 0.5}}\n    slo: {{max: 1s}}\n"
        );
        Policy::from_yaml(&yaml, "test.yaml").unwrap()
    }

    /// `n` rollouts' sources of `policy` as resumed rollouts (or rollouts past their
    /// pre-flight) have them: their reads join the batches (only a pre-flight's read sends
    /// its own queries).
    fn joining_sources(
        reads: &Arc<SharedReads>,
        policy: &Policy,
        n: usize,
    ) -> Vec<Arc<SharedSource>> {
        (0..n)
            .map(|_| Arc::new(reads.source(policy, None).unwrap().unwrap()))
            .collect()
    }

    async fn read_together(
        sources: &[Arc<SharedSource>],
        at: Timestamp,
    ) -> Vec<canary_core::Result<Tick>> {
        let handles: Vec<_> = sources
            .iter()
            .map(|source| {
                let source = Arc::clone(source);
                tokio::spawn(async move { source.read_tick(at, at).await })
            })
            .collect();
        let mut ticks = Vec::new();
        for handle in handles {
            ticks.push(handle.await.unwrap());
        }
        ticks
    }

    /// A shared query that fails where each rollout's own answers — the batch asks for more
    /// series over a longer span, and the server's query timeout or overload hits it first —
    /// sends each rollout to its own query, whose answer is its reading (review finding,
    /// 2026-12-01: every rollout of the batch failed its tick, and after `max-failed-ticks`
    /// rolled back on a Prometheus that answered each of them). Where the own queries fail
    /// too, each rollout's error is exactly its own query's.
    #[tokio::test]
    async fn a_failed_shared_query_sends_each_rollout_to_its_own_query() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"le":"+Inf","version":"canary"},"value":[1,"4"]},
            {"metric":{"le":"+Inf","version":"stable"},"value":[1,"4"]}]}}"#;
        let overloaded = || http("503 Service Unavailable", "text/plain", "overloaded");
        let answers = vec![
            overloaded(),
            overloaded(),
            http("200 OK", "application/json", vector),
        ];
        let server = FakeServer::answering(answers);
        let policy = plain_policy(&server.url(), "");
        let reads = SharedReads::new(Duration::from_millis(50), None);
        let sources = joining_sources(&reads, &policy, 3);
        let at = Timestamp::now();
        let got = read_together(&sources, at).await;
        assert_eq!(
            server.requests().len(),
            2 + 3,
            "the shared query and its retry, then one own query per rollout"
        );
        let own = PrometheusSource::from_policy(&policy, None).unwrap();
        let alone = own.read_tick(at, at).await.unwrap();
        for tick in got {
            assert_eq!(tick.unwrap().readings, alone.readings);
        }

        // Every attempt fails: each rollout's error is its own query's.
        let server = FakeServer::answering(vec![overloaded()]);
        let policy = plain_policy(&server.url(), "");
        let reads = SharedReads::new(Duration::from_millis(50), None);
        let sources = joining_sources(&reads, &policy, 3);
        let got = read_together(&sources, at).await;
        let own = PrometheusSource::from_policy(&policy, None).unwrap();
        let own_error = canary_core::Error::from(own.read_tick(at, at).await.unwrap_err());
        for tick in got {
            let err = tick.unwrap_err();
            assert_eq!(err.to_string(), own_error.to_string());
            assert_eq!(err.exit_code(), canary_core::ExitCode::Infrastructure);
        }
    }

    /// A shared answer over the policy's `max-series` (raw samples hold a series per
    /// instance where the aggregated answer holds one per bucket) sends each rollout back to
    /// its own instant query: one shared query, then one per rollout, each reading as alone;
    /// the template's next batches ask for half as many values.
    #[tokio::test]
    async fn a_shared_answer_over_a_limit_sends_each_rollout_to_its_own_query() {
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"h_bucket","le":"+Inf","version":"canary","instance":"1"},"values":[[1,"1"]]},
            {"metric":{"__name__":"h_bucket","le":"+Inf","version":"canary","instance":"2"},"values":[[1,"1"]]},
            {"metric":{"__name__":"h_bucket","le":"+Inf","version":"stable","instance":"1"},"values":[[1,"1"]]}]}}"#;
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"le":"+Inf","version":"canary"},"value":[1,"4"]},
            {"metric":{"le":"+Inf","version":"stable"},"value":[1,"4"]}]}}"#;
        let answers = std::iter::once(matrix)
            .chain(std::iter::repeat_n(vector, 4))
            .map(|body| http("200 OK", "application/json", body))
            .collect();
        let server = FakeServer::answering(answers);
        let policy = plain_policy(&server.url(), "    max-series: 2\n");
        let reads = SharedReads::new(Duration::from_millis(50), None);
        let sources = joining_sources(&reads, &policy, 3);
        let at = Timestamp::now();
        let got = read_together(&sources, at).await;
        let own = PrometheusSource::from_policy(&policy, None).unwrap();
        let alone = own.read_tick(at, at).await.unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 1 + 3 + 1, "{requests:#?}");
        assert!(
            body_of(&requests[0]).contains("h_bucket%7B"),
            "{}",
            requests[0]
        );
        for request in &requests[1..] {
            assert!(body_of(request).contains("increase"), "{request}");
        }
        for tick in got {
            assert_eq!(tick.unwrap(), alone);
        }
        // The template's next batches ask for half as many services.
        let key = &sources[0].plans[0].as_ref().unwrap().key;
        assert_eq!(reads.cap(key), MAX_VALUES_PER_BATCH / 2);
    }

    /// Rollouts share a batch only with the same server settings and selector shape:
    /// another value of an equality matcher or other versions share (the batch asks for
    /// all of them), another token file, answer limit, regex or operator read apart.
    #[test]
    fn only_the_same_client_and_series_share_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b"] {
            std::fs::write(dir.path().join(name), format!("token-{name}-Zq81x")).unwrap();
        }
        let token = |name: &str| {
            format!(
                "    bearer-token-file: {}\n",
                dir.path().join(name).display()
            )
        };
        let key = |extra: &str, traffic: &str| {
            let yaml = format!(
                "service: s\ntraffic: {{label: version, baseline: stable, {traffic}}}\n\
                 metrics:\n  prometheus:\n    url: http://p:9090\n{extra}\
                 rollout: {{min-requests: 0}}\n\
                 checks:\n  - name: latency\n    latency: {{histogram: h, quantile: 0.5}}\n    slo: {{max: 1s}}\n"
            );
            let policy = Policy::from_yaml(&yaml, "test.yaml").unwrap();
            let reads = SharedReads::new(Duration::from_millis(50), None);
            reads
                .source(&policy, None)
                .unwrap()
                .map(|s| s.plans[0].as_ref().unwrap().key.clone())
        };
        const C: &str = "canary: canary";
        let base = key("", C).unwrap();
        assert_eq!(key("", C).unwrap(), base);
        let service =
            |selector: &str| key("", &format!("canary: canary, selector: '{selector}'")).unwrap();
        assert_eq!(service(r#"service="a""#), service(r#"service="b""#));
        assert_ne!(service(r#"service="a""#), base);
        assert_ne!(service(r#"service=~"a""#), service(r#"service="a""#));
        assert_ne!(service(r#"service=~"a""#), service(r#"service=~"b""#));
        assert_ne!(service(r#"service!="a""#), service(r#"service="a""#));
        assert_ne!(service(r#"job="a""#), service(r#"service="a""#));
        assert_ne!(key(&token("a"), C).unwrap(), base);
        assert_ne!(key(&token("a"), C).unwrap(), key(&token("b"), C).unwrap());
        assert_eq!(key(&token("a"), C).unwrap(), key(&token("a"), C).unwrap());
        assert_eq!(key("", "canary: v2").unwrap(), base);
        assert_ne!(key("    max-series: 7\n", C).unwrap(), base);
    }

    /// A batch asks for at most [`MAX_VALUES_PER_BATCH`] values of an equality matcher: 65
    /// services reading together are two queries, each asking only for its own services.
    #[tokio::test]
    async fn a_full_batch_makes_room_for_a_new_one() {
        let empty = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        let server = FakeServer::answering(vec![http("200 OK", "application/json", empty)]);
        let reads = SharedReads::new(Duration::from_millis(50), None);
        let sources: Vec<Arc<SharedSource>> = (0..=MAX_VALUES_PER_BATCH)
            .map(|i| {
                let yaml = format!(
                    "service: s{i}\ntraffic: {{label: version, canary: canary, baseline: stable, \
                     selector: 'service=\"s{i}\"'}}\n\
                     metrics:\n  prometheus:\n    url: {}\n    timeout: 1s\n    retries: 1\n\
                     rollout: {{min-requests: 0}}\n\
                     checks:\n  - name: latency\n    latency: {{histogram: h, quantile: 0.5}}\n    slo: {{max: 1s}}\n",
                    server.url()
                );
                let policy = Policy::from_yaml(&yaml, "test.yaml").unwrap();
                Arc::new(reads.source(&policy, None).unwrap().unwrap())
            })
            .collect();
        let at = Timestamp::now();
        for tick in read_together(&sources, at).await {
            tick.unwrap();
        }
        let raw: Vec<String> = server
            .requests()
            .iter()
            .map(|r| {
                form_urlencoded::parse(body_of(r).as_bytes())
                    .find(|(k, _)| k == "query")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
            .filter(|q| q.starts_with("h_bucket{"))
            .collect();
        assert_eq!(raw.len(), 2, "{raw:#?}");
        assert_eq!(reads.queries_sent(), 2);
        // The services each query asks for: `service=~"s0|s1|…"` or `service="s64"`.
        let asked = |query: &str| {
            let start = query.find("service=").unwrap() + "service=".len();
            let values = query[start..]
                .trim_start_matches('~')
                .trim_start_matches('"');
            let values = &values[..values.find('"').unwrap()];
            values
                .split('|')
                .map(str::to_owned)
                .collect::<BTreeSet<_>>()
        };
        let (first, second) = (asked(&raw[0]), asked(&raw[1]));
        assert!(first.len() <= MAX_VALUES_PER_BATCH && second.len() <= MAX_VALUES_PER_BATCH);
        assert!(first.is_disjoint(&second), "{raw:#?}");
        assert_eq!(
            first.len() + second.len(),
            MAX_VALUES_PER_BATCH + 1,
            "{raw:#?}"
        );
    }
}
