//! The rollout's own Prometheus metrics, served while it runs (`canary rollout --metrics-addr
//! 127.0.0.1:9464`), so the pipeline's or the cluster's Prometheus can graph and alert on
//! the rollouts themselves: where each stands, how its checks look, how often they roll
//! back, and how healthy the metrics source is.
//!
//! | metric | type | |
//! |---|---|---|
//! | `canary_weight_percent` | gauge | the canary's weight as last confirmed by the router |
//! | `canary_step` | gauge | the current step, 1-based (0 before the first) |
//! | `canary_phase{phase}` | state set | 1 for the phase the rollout is in, 0 for the others |
//! | `canary_check_verdict{check,verdict}` | state set | 1 for each criterion's latest verdict |
//! | `canary_ticks_total` | counter | analysis ticks judged |
//! | `canary_rollbacks_total` | counter | rollbacks completed by this process |
//! | `canary_promotions_total` | counter | promotions completed by this process |
//! | `canary_query_errors_total` | counter | reads of the metrics source that failed |
//! | `canary_weight_drifts_total` | counter | times the gateway served another weight than the one set |
//! | `canary_query_duration_seconds` | histogram | how long a read of the metrics source took |
//!
//! Every series carries `service` (and `rollout_id` when `--id` is given). Counters count
//! what this process saw, as Prometheus counters do: a resumed rollout starts them at 0.
//!
//! [`SelfMetrics`] is a cheap handle; [`SelfMetrics::meter_store`] wraps the state store so
//! every persisted state updates the gauges (weight, step, phase, verdicts) and the tick,
//! rollback, promotion and failed-read counters — the state records all of them, so nothing
//! is counted twice and a resumed rollout is read the same way; the driver times each read
//! of the metrics source with [`SelfMetrics::record_query_duration`]. [`SelfMetrics::serve`]
//! (an axum router) answers `GET /metrics` in the Prometheus text format 0.0.4, or in
//! OpenMetrics when the scraper asks for it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use canary_core::judge::Verdict;
use canary_core::ports::StateStore;
use canary_core::rollout::{ControlRequest, Rollout};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The phases `canary_phase` enumerates from the start ([`canary_core::rollout::Phase::name`]);
/// a phase not listed here gets its series when the rollout first enters it.
const PHASES: [&str; 10] = [
    "starting",
    "step",
    "promoting",
    "finalizing",
    "soak",
    "promoted",
    "rolling-back",
    "rolled-back",
    "held",
    "failed",
];

/// The verdicts `canary_check_verdict` enumerates.
const VERDICTS: [Verdict; 5] = [
    Verdict::Pass,
    Verdict::Inconclusive,
    Verdict::NoData,
    Verdict::Error,
    Verdict::Fail,
];

/// How long a client may take to send a request's head before the metrics server closes
/// the connection.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may carry nothing, in either direction, before the metrics server
/// closes it (a scraper reconnects; a client that only holds a connection open is let go).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most connections the metrics server keeps open at once; one more is closed as soon
/// as it is accepted. Each holds a file descriptor, and a rollout that runs out of them
/// cannot reach its gateway (issue 12: 1,100 idle connections made a rollout exit 4).
const MAX_CONNECTIONS: usize = 64;

/// What the metrics server allows a connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    head_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
}

pub(crate) const CONNECTION_LIMITS: ConnectionLimits = ConnectionLimits {
    head_timeout: REQUEST_HEAD_TIMEOUT,
    idle_timeout: IDLE_TIMEOUT,
    max_connections: MAX_CONNECTIONS,
};

/// A connection that remembers when it last carried a byte, for the idle timeout.
struct IdleTracked<S> {
    inner: S,
    last_active: Arc<Mutex<tokio::time::Instant>>,
}

impl<S> IdleTracked<S> {
    fn touch(&self) {
        *self
            .last_active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tokio::time::Instant::now();
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for IdleTracked<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for IdleTracked<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// OpenMetrics, for scrapers that ask for it in `Accept`.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    check: String,
    verdict: &'static str,
}

/// A handle on one rollout's metrics; clones share them.
#[derive(Clone, Debug)]
pub(crate) struct SelfMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    weight: Gauge,
    step: Gauge,
    phase: Family<PhaseLabels, Gauge>,
    verdicts: Family<VerdictLabels, Gauge>,
    ticks: Counter,
    rollbacks: Counter,
    promotions: Counter,
    query_errors: Counter,
    weight_drifts: Counter,
    query_duration: Histogram,
    seen: Mutex<Seen>,
}

/// What the last state looked like, to count what changed since.
#[derive(Debug, Default)]
struct Seen {
    /// The judge's tick count then (`None` before the first state: a resumed rollout's
    /// earlier ticks were counted by another process).
    ticks: Option<u64>,
    /// The phase's name then.
    phase: Option<&'static str>,
    /// Consecutive failed reads then.
    failed_reads: Option<u32>,
    /// The drifts the state had counted then.
    weight_drifts: Option<u32>,
    /// The phases with a series.
    phases: HashSet<&'static str>,
}

impl SelfMetrics {
    /// The metrics of `service`'s rollout (`id`: its `--id`, if any), all at zero.
    pub(crate) fn new(service: &str, id: Option<&str>) -> SelfMetrics {
        let mut labels: Vec<(Cow<'static, str>, Cow<'static, str>)> =
            vec![(Cow::Borrowed("service"), Cow::Owned(service.to_owned()))];
        if let Some(id) = id {
            labels.push((Cow::Borrowed("rollout_id"), Cow::Owned(id.to_owned())));
        }
        let mut registry = Registry::with_prefix_and_labels("canary", labels.into_iter());
        let weight = Gauge::default();
        registry.register(
            "weight_percent",
            "The canary's traffic weight in percent, as last confirmed by the router",
            weight.clone(),
        );
        let step = Gauge::default();
        registry.register(
            "step",
            "The rollout's current step, 1-based (0 before the first step)",
            step.clone(),
        );
        let phase = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "phase",
            "1 for the phase the rollout is in, 0 for the others",
            phase.clone(),
        );
        let verdicts = Family::<VerdictLabels, Gauge>::default();
        registry.register(
            "check_verdict",
            "1 for each check criterion's latest verdict (pass, inconclusive, nodata, error, fail), 0 for the others",
            verdicts.clone(),
        );
        let ticks = Counter::default();
        registry.register(
            "ticks",
            "Analysis ticks judged by this process",
            ticks.clone(),
        );
        let rollbacks = Counter::default();
        registry.register(
            "rollbacks",
            "Rollbacks completed by this process",
            rollbacks.clone(),
        );
        let promotions = Counter::default();
        registry.register(
            "promotions",
            "Promotions completed by this process",
            promotions.clone(),
        );
        let query_errors = Counter::default();
        registry.register(
            "query_errors",
            "Reads of the metrics source that failed",
            query_errors.clone(),
        );
        let weight_drifts = Counter::default();
        registry.register(
            "weight_drifts",
            "Times the gateway was found serving another canary weight than the one set (each is set again)",
            weight_drifts.clone(),
        );
        // 5 ms to about 41 s.
        let query_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "query_duration_seconds",
            "How long one read of the metrics source (every check's query) took, in seconds",
            query_duration.clone(),
        );
        for name in PHASES {
            phase.get_or_create(&PhaseLabels { phase: name }).set(0);
        }
        SelfMetrics {
            inner: Arc::new(Inner {
                registry,
                weight,
                step,
                phase,
                verdicts,
                ticks,
                rollbacks,
                promotions,
                query_errors,
                weight_drifts,
                query_duration,
                seen: Mutex::new(Seen {
                    phases: PHASES.into_iter().collect(),
                    ..Seen::default()
                }),
            }),
        }
    }

    /// Updates the metrics from a rollout's state: weight, step, phase and each criterion's
    /// latest verdict; counts the ticks, failed reads, rollbacks and promotions since the
    /// last state.
    /// Idempotent: the same state twice changes nothing.
    pub(crate) fn record_state(&self, rollout: &Rollout) {
        let inner = &self.inner;
        inner.weight.set(i64::from(rollout.current_weight()));
        inner.step.set(
            rollout
                .steps()
                .last()
                .map_or(0, |s| i64::try_from(s.index + 1).unwrap_or(i64::MAX)),
        );
        let phase = rollout.phase().name();
        let mut seen = inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.phases.insert(phase);
        for &name in &seen.phases {
            inner
                .phase
                .get_or_create(&PhaseLabels { phase: name })
                .set(i64::from(name == phase));
        }
        if let Some(assessment) = rollout.last_assessment() {
            for check in &assessment.checks {
                for verdict in VERDICTS {
                    inner
                        .verdicts
                        .get_or_create(&VerdictLabels {
                            check: check.name.clone(),
                            verdict: verdict.as_str(),
                        })
                        .set(i64::from(verdict == check.verdict));
                }
            }
        }
        let ticks = rollout.judge().ticks;
        if let Some(before) = seen.ticks {
            inner.ticks.inc_by(ticks.saturating_sub(before));
        }
        seen.ticks = Some(ticks);
        // `failed_reads` counts consecutive failures and drops to 0 on a good read: each
        // rise is that many failed reads.
        let failed = rollout.failed_reads();
        if let Some(before) = seen.failed_reads
            && failed > before
        {
            inner.query_errors.inc_by(u64::from(failed - before));
        }
        seen.failed_reads = Some(failed);
        let drifts = rollout.weight_drifts();
        if let Some(before) = seen.weight_drifts {
            inner
                .weight_drifts
                .inc_by(u64::from(drifts.saturating_sub(before)));
        }
        seen.weight_drifts = Some(drifts);
        if let Some(before) = seen.phase
            && before != phase
        {
            match phase {
                "rolled-back" => {
                    inner.rollbacks.inc();
                }
                "promoted" => {
                    inner.promotions.inc();
                }
                _ => {}
            }
        }
        seen.phase = Some(phase);
    }

    /// Times one read of the metrics source, failed or not (failures themselves are
    /// counted from the state, see [`SelfMetrics::record_state`]).
    pub(crate) fn record_query_duration(&self, elapsed: Duration) {
        self.inner.query_duration.observe(elapsed.as_secs_f64());
    }

    /// `store`, updating these metrics with every state it saves.
    pub(crate) fn meter_store(&self, store: Box<dyn StateStore>) -> Box<dyn StateStore> {
        Box::new(MeteredStore {
            store,
            metrics: self.clone(),
        })
    }

    /// The metrics in the Prometheus text format 0.0.4 (what `GET /metrics` answers; see
    /// [`Exposition`]).
    #[cfg(test)]
    pub(crate) fn encode_text(&self) -> String {
        canary_metrics::exposition::openmetrics_to_prometheus_text(&self.encode_openmetrics())
    }

    /// The metrics in OpenMetrics text (ending in `# EOF`).
    pub(crate) fn encode_openmetrics(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }

    /// Serves `GET /metrics` on `addr` (an axum router on hyper) until the runtime ends; returns the address
    /// bound (port 0 picks a free one). An address that cannot be bound is bad input
    /// (exit 2), before anything is changed.
    pub(crate) async fn serve(&self, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        self.serve_with(addr, CONNECTION_LIMITS).await
    }

    async fn serve_with(
        &self,
        addr: SocketAddr,
        limits: ConnectionLimits,
    ) -> anyhow::Result<SocketAddr> {
        serve_exposition(self.clone(), addr, limits, "canary rollout").await
    }
}

/// What a metrics endpoint serves: a registry, encoded as OpenMetrics text (the rollout's
/// [`SelfMetrics`], the controller's own metrics).
pub(crate) trait Exposition: Clone + Send + Sync + 'static {
    /// The metrics in OpenMetrics text (ending in `# EOF`).
    fn openmetrics(&self) -> String;

    /// The metrics in the Prometheus text format 0.0.4.
    fn prometheus_text(&self) -> String {
        canary_metrics::exposition::openmetrics_to_prometheus_text(&self.openmetrics())
    }
}

impl Exposition for SelfMetrics {
    fn openmetrics(&self) -> String {
        self.encode_openmetrics()
    }
}

/// Serves `GET /metrics` of `metrics` on `addr` (an axum router on hyper) until the runtime
/// ends; returns the address bound (port 0 picks a free one). An address that cannot be
/// bound is bad input (exit 2), before anything is changed. `server` names it on `/`.
pub(crate) async fn serve_exposition<E: Exposition>(
    metrics: E,
    addr: SocketAddr,
    limits: ConnectionLimits,
    server: &'static str,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| {
            canary_core::Error::Usage(format!("--metrics-addr {addr}: cannot listen: {err}"))
        })
        .with_context(|| format!("serving the metrics of {server}"))?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/metrics", get(scrape::<E>))
        .route(
            "/",
            get(move || async move { format!("{server}: metrics at /metrics\n") }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: the metrics are at /metrics\n",
            )
        })
        .with_state(metrics);
    // axum::serve sets no timer, so a client that never finishes its request would hold
    // its connection for good; hyper's own HTTP/1 server, given one, closes it. A
    // connection idle for longer than the idle timeout is closed too, and there are never
    // more than `max_connections` open: file descriptors are the rollout's too.
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors and the like: try again shortly.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Over the limit: closed at once (dropped), not queued.
                continue;
            };
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let last_active = Arc::new(Mutex::new(tokio::time::Instant::now()));
                let stream = IdleTracked {
                    inner: stream,
                    last_active: last_active.clone(),
                };
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.head_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                loop {
                    let idle_until = *last_active
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        + limits.idle_timeout;
                    tokio::select! {
                        // A scraper that goes away mid-answer is its own business.
                        _ = &mut connection => break,
                        () = tokio::time::sleep_until(idle_until) => {
                            let idle_since = *last_active
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            if idle_since.elapsed() >= limits.idle_timeout {
                                // Dropping the connection closes it.
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(bound)
}

/// `GET /metrics`: OpenMetrics when the scraper asks for it in `Accept`, otherwise the
/// Prometheus text format. (axum answers `HEAD` from the same handler, without the body.)
async fn scrape<E: Exposition>(State(metrics): State<E>, headers: HeaderMap) -> impl IntoResponse {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            value
                .to_ascii_lowercase()
                .contains("application/openmetrics-text")
        });
    if wants_openmetrics {
        (
            [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
            metrics.openmetrics(),
        )
    } else {
        (
            [(
                header::CONTENT_TYPE,
                canary_metrics::exposition::PROMETHEUS_TEXT_CONTENT_TYPE,
            )],
            metrics.prometheus_text(),
        )
    }
}

/// A state store that updates the metrics with every state it saves.
struct MeteredStore {
    store: Box<dyn StateStore>,
    metrics: SelfMetrics,
}

#[async_trait]
impl StateStore for MeteredStore {
    async fn claim(&self, take_over: bool) -> canary_core::Result<()> {
        self.store.claim(take_over).await
    }

    async fn holder(&self) -> canary_core::Result<Option<String>> {
        self.store.holder().await
    }

    async fn stale_claim(&self) -> canary_core::Result<Option<String>> {
        self.store.stale_claim().await
    }

    async fn release(&self) -> canary_core::Result<()> {
        self.store.release().await
    }

    async fn heartbeat(&self) -> canary_core::Result<()> {
        self.store.heartbeat().await
    }

    async fn check_claim(&self) -> canary_core::Result<()> {
        self.store.check_claim().await
    }

    fn heartbeat_period(&self) -> Option<std::time::Duration> {
        self.store.heartbeat_period()
    }

    async fn load(&self) -> canary_core::Result<Option<Rollout>> {
        let loaded = self.store.load().await?;
        if let Some(rollout) = &loaded {
            self.metrics.record_state(rollout);
        }
        Ok(loaded)
    }

    async fn save(&self, rollout: &Rollout) -> canary_core::Result<()> {
        self.store.save(rollout).await?;
        self.metrics.record_state(rollout);
        Ok(())
    }

    async fn archive(&self, rollout: &Rollout) -> canary_core::Result<String> {
        self.store.archive(rollout).await
    }

    async fn request(&self, request: &ControlRequest) -> canary_core::Result<()> {
        self.store.request(request).await
    }

    async fn take_request(&self) -> canary_core::Result<Option<ControlRequest>> {
        self.store.take_request().await
    }

    fn describe(&self) -> String {
        self.store.describe()
    }
}

#[cfg(test)]
mod tests {
    use canary_core::policy::{HookEvent, Policy};
    use canary_core::recording::Recording;
    use canary_core::rollout::{Event, Machine, Phase};
    use jiff::Timestamp;

    use super::*;

    fn policy() -> Policy {
        Policy::from_yaml(
            include_str!("../../../policies/checkout.yaml"),
            "checkout.yaml",
        )
        .unwrap()
    }

    /// The value of the sample `name{labels}` in the text format (`labels` as printed).
    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    const LABELS: &str = "service=\"checkout\",rollout_id=\"pipeline-42\"";

    /// Feeds `events` to the machine at `at`, one after the other.
    fn feed(machine: &Machine, rollout: &mut Rollout, at: Timestamp, events: Vec<Event>) {
        for event in events {
            machine.handle(rollout, event, at);
        }
    }

    #[test]
    fn the_state_sets_the_gauges_and_counts_what_changed_once() {
        let policy = policy();
        let metrics = SelfMetrics::new("checkout", Some("pipeline-42"));
        // The recording's ticks are the metrics source's answers, in its own time.
        let recording = Recording::from_json(
            include_str!("../../../examples/recordings/errors-3x.json"),
            "errors-3x.json",
        )
        .unwrap();
        let start = recording.started_at;
        let machine = Machine::new(policy).unwrap();
        let mut rollout = machine.start(start, None);
        metrics.record_state(&rollout);
        let text = metrics.encode_text();
        assert_eq!(
            sample(&text, &format!("canary_weight_percent{{{LABELS}}}")),
            0.0
        );
        assert_eq!(sample(&text, &format!("canary_step{{{LABELS}}}")), 0.0);
        assert_eq!(
            sample(
                &text,
                &format!("canary_phase{{{LABELS},phase=\"starting\"}}")
            ),
            1.0
        );
        assert_eq!(
            sample(&text, &format!("canary_ticks_total{{{LABELS}}}")),
            0.0
        );

        // The first step under way, two failed reads in a row.
        let hooks_ran = |event| Event::HooksRan {
            event,
            failed: Vec::new(),
        };
        feed(
            &machine,
            &mut rollout,
            start,
            vec![
                Event::Resume,
                Event::PreflightPassed {
                    canary_generation: None,
                },
                hooks_ran(HookEvent::Before),
                Event::WeightSet(10),
                hooks_ran(HookEvent::Step),
                Event::TimerFired,
                Event::ReadFailed("down".to_owned()),
                Event::TimerFired,
                Event::ReadFailed("down".to_owned()),
            ],
        );
        metrics.record_state(&rollout);
        metrics.record_state(&rollout);
        let text = metrics.encode_text();
        assert_eq!(
            sample(&text, &format!("canary_weight_percent{{{LABELS}}}")),
            10.0
        );
        assert_eq!(sample(&text, &format!("canary_step{{{LABELS}}}")), 1.0);
        assert_eq!(
            sample(&text, &format!("canary_query_errors_total{{{LABELS}}}")),
            2.0
        );
        assert_eq!(
            sample(&text, &format!("canary_phase{{{LABELS},phase=\"step\"}}")),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                &format!("canary_phase{{{LABELS},phase=\"starting\"}}")
            ),
            0.0
        );

        // Ticks until a criterion fails (a good read resets the streak: no more errors).
        let mut ticks = 0;
        for tick in recording.ticks {
            let at = tick.at;
            feed(
                &machine,
                &mut rollout,
                at,
                vec![
                    Event::TimerFired,
                    Event::Observed {
                        tick,
                        checkpoint: None,
                    },
                ],
            );
            ticks += 1;
            metrics.record_state(&rollout);
            if matches!(rollout.phase(), Phase::RollingBack { .. }) {
                break;
            }
        }
        assert!(matches!(rollout.phase(), Phase::RollingBack { .. }));
        let text = metrics.encode_text();
        assert_eq!(
            sample(&text, &format!("canary_ticks_total{{{LABELS}}}")),
            f64::from(ticks)
        );
        let verdict = |check: &str, verdict: &str| {
            sample(
                &text,
                &format!(
                    "canary_check_verdict{{{LABELS},check=\"{check}\",verdict=\"{verdict}\"}}"
                ),
            )
        };
        assert_eq!(verdict("errors/baseline", "fail"), 1.0);
        assert_eq!(verdict("errors/baseline", "pass"), 0.0);
        assert_eq!(
            sample(&text, &format!("canary_query_errors_total{{{LABELS}}}")),
            2.0
        );

        // Rolled back: counted once, however often the state is saved.
        let at = rollout.decided_at().unwrap();
        feed(&machine, &mut rollout, at, vec![Event::WeightSet(0)]);
        metrics.record_state(&rollout);
        metrics.record_state(&rollout);
        let text = metrics.encode_text();
        assert_eq!(
            sample(&text, &format!("canary_rollbacks_total{{{LABELS}}}")),
            1.0
        );
        assert_eq!(
            sample(&text, &format!("canary_promotions_total{{{LABELS}}}")),
            0.0
        );
        assert_eq!(
            sample(&text, &format!("canary_weight_percent{{{LABELS}}}")),
            0.0
        );
    }

    #[test]
    fn a_resumed_rollout_counts_only_what_this_process_saw() {
        let policy = policy();
        let metrics = SelfMetrics::new("checkout", None);
        let machine = Machine::new(policy).unwrap();
        let now = Timestamp::now();
        let mut rollout = machine.start(now, None);
        // Loaded by a rerun: rolled back, after ticks another process counted.
        feed(
            &machine,
            &mut rollout,
            now,
            vec![
                Event::Resume,
                Event::PreflightPassed {
                    canary_generation: None,
                },
                Event::HooksRan {
                    event: HookEvent::Before,
                    failed: Vec::new(),
                },
                Event::WeightSet(10),
                Event::TimerFired,
                Event::ManualAbort("before".to_owned()),
                Event::WeightSet(0),
            ],
        );
        assert!(matches!(rollout.phase(), Phase::RolledBack { .. }));
        metrics.record_state(&rollout);
        let text = metrics.encode_text();
        assert_eq!(
            sample(&text, "canary_ticks_total{service=\"checkout\"}"),
            0.0
        );
        assert_eq!(
            sample(&text, "canary_rollbacks_total{service=\"checkout\"}"),
            0.0
        );
    }

    #[test]
    fn the_text_format_types_counters_under_their_sample_names() {
        let metrics = SelfMetrics::new("checkout", None);
        metrics.record_query_duration(Duration::from_millis(30));
        let text = metrics.encode_text();
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        for line in [
            "# TYPE canary_ticks_total counter",
            "# TYPE canary_rollbacks_total counter",
            "# TYPE canary_query_errors_total counter",
            "# TYPE canary_weight_percent gauge",
            "# TYPE canary_query_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(
            sample(
                &text,
                "canary_query_duration_seconds_count{service=\"checkout\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "canary_query_duration_seconds_bucket{service=\"checkout\",le=\"0.04\"}"
            ),
            1.0
        );
        assert!(metrics.encode_openmetrics().ends_with("# EOF\n"));
    }

    /// Sends one raw HTTP/1.1 request (which should ask to close the connection) and reads
    /// the whole answer.
    async fn get(addr: SocketAddr, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_request_is_let_go() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let metrics = SelfMetrics::new("checkout", None);
        let addr = metrics
            .serve_with(
                "127.0.0.1:0".parse().unwrap(),
                ConnectionLimits {
                    head_timeout: Duration::from_millis(200),
                    ..CONNECTION_LIMITS
                },
            )
            .await
            .unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        assert!(
            matches!(closed, Ok(Ok(_))),
            "the server closed the connection: {closed:?}"
        );
        assert!(
            !String::from_utf8_lossy(&answer).contains("canary_ticks_total"),
            "no metrics for half a request"
        );
    }

    /// Issue 12: ≈1,100 idle connections to `--metrics-addr` used up the rollout's file
    /// descriptors. Connections over the limit are closed at once, idle ones after the idle
    /// timeout, and then a scrape is answered.
    #[tokio::test]
    async fn idle_connections_are_bounded_and_closed_and_scrapes_still_answered() {
        use tokio::io::AsyncReadExt;
        let limits = ConnectionLimits {
            head_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_millis(700),
            max_connections: 8,
        };
        let metrics = SelfMetrics::new("checkout", None);
        let addr = metrics
            .serve_with("127.0.0.1:0".parse().unwrap(), limits)
            .await
            .unwrap();
        let mut idle = Vec::new();
        for _ in 0..40 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // Those over the limit are closed at once (before the idle timeout).
        let mut closed_at_once = 0;
        for stream in &mut idle {
            let mut byte = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await
            {
                closed_at_once += 1;
            }
        }
        assert!(
            closed_at_once >= 40 - 8,
            "{closed_at_once} of 40 closed at once, with a limit of 8"
        );
        // The rest are closed once idle for longer than the idle timeout.
        for stream in &mut idle {
            let mut rest = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
            assert!(
                matches!(closed, Ok(Ok(0))),
                "an idle connection stayed open"
            );
        }
        let text = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    }

    #[tokio::test]
    async fn the_server_answers_scrapes_in_either_format() {
        let metrics = SelfMetrics::new("checkout", None);
        let addr = metrics.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let text = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            // Header names are case-insensitive; hyper writes them in lower case.
            text.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{text}"
        );
        assert!(
            text.contains("canary_ticks_total{service=\"checkout\"} 0"),
            "{text}"
        );
        let open = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\naccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            open.to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text"),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n"), "{open}");
        let head = get(
            addr,
            "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "no body after the head: {head}");
        assert!(
            get(
                addr,
                "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .await
            .starts_with("HTTP/1.1 404")
        );
        assert!(
            get(
                addr,
                "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
                .await
                .starts_with("HTTP/1.1 405")
        );
        // An address in use is bad input.
        let err = metrics.serve(addr).await.unwrap_err();
        assert!(
            err.chain()
                .any(|c| c.downcast_ref::<canary_core::Error>().is_some()),
            "{err:#}"
        );
    }
}
