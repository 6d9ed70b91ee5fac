//! An open-loop load generator.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Uri};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::http_client::{HttpClient, pooled_client};
use crate::{Error, Result};

/// Highest rate accepted: far above what one loopback demo needs, low enough that a
/// typo (`--rps 1e9`) is refused rather than obeyed.
const MAX_RPS: f64 = 100_000.0;

/// How far the schedule may fall behind before the generator gives up on catching up.
/// After a stall (a busy machine, a debugger) it sends at most this much backlog at
/// once instead of a burst of everything it "owes".
const MAX_SCHEDULE_LAG: Duration = Duration::from_secs(1);

/// Response bodies are read (so connections go back to the pool) but not kept; a
/// body larger than this is cut off and counted as a transport error.
const MAX_BODY_BYTES: usize = 1 << 20;

/// What load to send, where, for how long.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadConfig {
    /// The URL every request GETs, e.g. `http://127.0.0.1:8080/api/orders`.
    pub target: String,
    /// Requests per second, evenly spaced (more than 0, at most 100 000).
    pub rps: f64,
    /// How long to send for; `None` sends until stopped.
    pub duration: Option<Duration>,
    /// Most requests waiting for an answer at once. When reached, further arrivals are
    /// skipped (and counted) instead of queued, so a slow target can't make the
    /// generator's memory grow without bound.
    pub max_in_flight: usize,
    /// How long one request may take before it is abandoned and counted as timed out.
    pub request_timeout: Duration,
}

impl LoadConfig {
    /// Load at `rps` against `target` until stopped, at most 256 requests in flight,
    /// 10 s per request.
    pub fn new(target: impl Into<String>, rps: f64) -> Self {
        Self {
            target: target.into(),
            rps,
            duration: None,
            max_in_flight: 256,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Sending for this long, then stopping by itself.
    #[must_use]
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// With at most this many requests in flight.
    #[must_use]
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// With this per-request timeout.
    #[must_use]
    pub fn with_request_timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }
}

fn validate_rps(rps: f64) -> Result<()> {
    if rps > 0.0 && rps <= MAX_RPS {
        Ok(())
    } else {
        Err(Error::invalid(
            "rps",
            format!("{rps} is not a rate between 0 (excluded) and {MAX_RPS}"),
        ))
    }
}

/// What the load generator has seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadSnapshot {
    /// Requests started.
    pub sent: u64,
    /// Requests answered, whatever the status; equals the sum of `by_status`.
    pub completed: u64,
    /// Answers by HTTP status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that failed without an HTTP answer (connection refused, reset, ...).
    pub transport_errors: u64,
    /// Requests abandoned after the request timeout.
    pub timeouts: u64,
    /// Arrivals not sent because `max_in_flight` requests were already waiting: the
    /// target (or this machine) could not keep up with the rate.
    pub skipped: u64,
    /// Requests sent and not yet finished.
    pub in_flight: u64,
    /// Time since the generator started, or its whole run once it has finished.
    pub elapsed: Duration,
}

impl LoadSnapshot {
    /// Answers with this status code.
    pub fn status_count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.by_status.range(500..600).map(|(_, count)| count).sum()
    }

    /// Requests that did not end in a 2xx or 3xx answer: 4xx, 5xx, transport errors
    /// and timeouts.
    pub fn failures(&self) -> u64 {
        let http_failures: u64 = self.by_status.range(400..).map(|(_, count)| count).sum();
        http_failures + self.transport_errors + self.timeouts
    }

    /// Answers per second over the elapsed time (0 before any time has passed).
    pub fn completed_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.completed as f64 / seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for LoadSnapshot {
    /// A short human summary, e.g.
    /// `sent 600, answered 600 in 6.0s (100.0/s): 200 × 570, 500 × 30; transport errors 0, timeouts 0, skipped 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {}, answered {} in {:.1}s ({:.1}/s)",
            self.sent,
            self.completed,
            self.elapsed.as_secs_f64(),
            self.completed_per_second()
        )?;
        for (i, (status, count)) in self.by_status.iter().enumerate() {
            let separator = if i == 0 { ": " } else { ", " };
            write!(f, "{separator}{status} × {count}")?;
        }
        write!(
            f,
            "; transport errors {}, timeouts {}, skipped {}",
            self.transport_errors, self.timeouts, self.skipped
        )?;
        if self.in_flight > 0 {
            write!(f, ", still in flight {}", self.in_flight)?;
        }
        Ok(())
    }
}

/// Counters the request tasks update and snapshots read.
#[derive(Debug)]
struct LoadCounters {
    started_at: Instant,
    finished_at: Mutex<Option<Instant>>,
    sent: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    transport_errors: AtomicU64,
    timeouts: AtomicU64,
    skipped: AtomicU64,
    finished_requests: AtomicU64,
    rps_bits: AtomicU64,
}

impl LoadCounters {
    fn rps(&self) -> f64 {
        f64::from_bits(self.rps_bits.load(Ordering::Relaxed))
    }

    fn record_status(&self, status: u16) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(status)
            .or_insert(0) += 1;
    }

    fn snapshot(&self) -> LoadSnapshot {
        let by_status = self
            .by_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let finished_at = *self
            .finished_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sent = self.sent.load(Ordering::Relaxed);
        LoadSnapshot {
            sent,
            completed: by_status.values().sum(),
            by_status,
            transport_errors: self.transport_errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            in_flight: sent.saturating_sub(self.finished_requests.load(Ordering::Relaxed)),
            elapsed: finished_at
                .unwrap_or_else(Instant::now)
                .duration_since(self.started_at),
        }
    }
}

/// The load generator. Start one with [`LoadGenerator::start`].
#[derive(Debug)]
pub struct LoadGenerator {
    _private: (),
}

impl LoadGenerator {
    /// Validates `config` and starts sending on the current Tokio runtime.
    ///
    /// Open loop: requests start on schedule whether or not earlier ones have been
    /// answered, as real users' requests do, so a slow target shows up as latency and
    /// errors rather than as a politely reduced rate.
    pub fn start(config: LoadConfig) -> Result<RunningLoad> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let target: Uri = config.target.parse().map_err(|e| {
            Error::invalid("target", format!("`{}` is not a URL: {e}", config.target))
        })?;
        if target.scheme_str() != Some("http") || target.authority().is_none() {
            return Err(Error::invalid(
                "target",
                format!("`{}` must be an http:// URL with a host", config.target),
            ));
        }
        validate_rps(config.rps)?;
        if config.max_in_flight == 0 || config.max_in_flight > Semaphore::MAX_PERMITS {
            return Err(Error::invalid(
                "max_in_flight",
                format!("must be between 1 and {}", Semaphore::MAX_PERMITS),
            ));
        }
        if config.request_timeout.is_zero() {
            return Err(Error::invalid("request_timeout", "must be more than zero"));
        }
        if config.duration.is_some_and(|duration| duration.is_zero()) {
            return Err(Error::invalid("duration", "must be more than zero"));
        }

        let counters = Arc::new(LoadCounters {
            started_at: Instant::now(),
            finished_at: Mutex::new(None),
            sent: AtomicU64::new(0),
            by_status: Mutex::new(BTreeMap::new()),
            transport_errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            finished_requests: AtomicU64::new(0),
            rps_bits: AtomicU64::new(config.rps.to_bits()),
        });
        let (stop, stop_requested) = watch::channel(false);
        let (done, finished) = watch::channel(false);
        let schedule = Schedule {
            target,
            duration: config.duration,
            max_in_flight: config.max_in_flight,
            request_timeout: config.request_timeout,
            client: pooled_client(),
            counters: Arc::clone(&counters),
        };
        let driver = runtime.spawn(schedule.run(stop_requested, done));
        Ok(RunningLoad {
            counters,
            stop,
            finished,
            driver,
        })
    }
}

/// The loop that starts requests on schedule.
struct Schedule {
    target: Uri,
    duration: Option<Duration>,
    max_in_flight: usize,
    request_timeout: Duration,
    client: HttpClient,
    counters: Arc<LoadCounters>,
}

impl Schedule {
    async fn run(self, mut stop_requested: watch::Receiver<bool>, done: watch::Sender<bool>) {
        let in_flight = Arc::new(Semaphore::new(self.max_in_flight));
        let started_at = self.counters.started_at;
        let deadline = self.duration.map(|duration| started_at + duration);
        let mut next_arrival = started_at;
        loop {
            if deadline.is_some_and(|deadline| next_arrival >= deadline) {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next_arrival) => {}
                // A dropped sender is a stop too: nobody can stop or read us any more.
                _ = stop_requested.wait_for(|stop| *stop) => break,
            }
            match Arc::clone(&in_flight).try_acquire_owned() {
                Ok(permit) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    let request = send_one(
                        self.client.clone(),
                        self.target.clone(),
                        self.request_timeout,
                        Arc::clone(&self.counters),
                    );
                    tokio::spawn(async move {
                        request.await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
            let period = Duration::from_secs_f64(1.0 / self.counters.rps());
            next_arrival += period;
            let now = Instant::now();
            if next_arrival + MAX_SCHEDULE_LAG < now {
                next_arrival = now.checked_sub(MAX_SCHEDULE_LAG).unwrap_or(now);
            }
        }

        // Let the requests already sent finish; each ends by its own timeout at worst.
        let all_permits = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(
            self.request_timeout + Duration::from_secs(1),
            in_flight.acquire_many(all_permits),
        )
        .await;
        *self
            .counters
            .finished_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        done.send_replace(true);
    }
}

async fn send_one(client: HttpClient, target: Uri, timeout: Duration, counters: Arc<LoadCounters>) {
    let request = match Request::get(target).body(Body::empty()) {
        Ok(request) => request,
        Err(_) => {
            // Cannot happen for a URI already parsed; counted rather than panicked on.
            counters.transport_errors.fetch_add(1, Ordering::Relaxed);
            counters.finished_requests.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        // Reading the body to its end lets the connection go back to the pool.
        axum::body::to_bytes(Body::new(response.into_body()), MAX_BODY_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<u16, String>(status)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status)) => counters.record_status(status),
        Ok(Err(error)) => {
            tracing::debug!(%error, "load request failed");
            counters.transport_errors.fetch_add(1, Ordering::Relaxed);
        }
        Err(_elapsed) => {
            counters.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
    counters.finished_requests.fetch_add(1, Ordering::Relaxed);
}

/// A load generator sending in the background.
///
/// Dropping it stops the sending (requests in flight still finish on their own).
#[derive(Debug)]
pub struct RunningLoad {
    counters: Arc<LoadCounters>,
    stop: watch::Sender<bool>,
    finished: watch::Receiver<bool>,
    driver: JoinHandle<()>,
}

impl RunningLoad {
    /// What it has seen so far.
    pub fn snapshot(&self) -> LoadSnapshot {
        self.counters.snapshot()
    }

    /// The rate it sends at now.
    pub fn rps(&self) -> f64 {
        self.counters.rps()
    }

    /// Changes the rate from the next arrival on; out-of-range rates are refused.
    pub fn set_rps(&self, rps: f64) -> Result<()> {
        validate_rps(rps)?;
        self.counters
            .rps_bits
            .store(rps.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// Whether it has stopped sending and its last requests have finished.
    pub fn is_finished(&self) -> bool {
        *self.finished.borrow()
    }

    /// Resolves once the configured duration has passed and the last requests have
    /// finished; never, without a duration, until [`RunningLoad::stop`] is called.
    /// Borrows, so it can race a signal in `select!` and the load still be stopped.
    pub async fn finished(&self) {
        let mut finished = self.finished.clone();
        // An error means the driver is gone, which also means it has finished.
        let _ = finished.wait_for(|finished| *finished).await;
    }

    /// Waits until the load has finished (see [`RunningLoad::finished`]) and gives
    /// the final counts.
    pub async fn wait(self) -> Result<LoadSnapshot> {
        let Self {
            counters,
            stop,
            finished: _,
            driver,
        } = self;
        // Keep the sender alive while waiting: dropping it would stop the load early.
        let joined = driver.await;
        drop(stop);
        joined.map_err(Error::Task)?;
        Ok(counters.snapshot())
    }

    /// Stops sending now, waits for the requests in flight (each at most its timeout)
    /// and gives the final counts.
    pub async fn stop(self) -> Result<LoadSnapshot> {
        let _ = self.stop.send(true);
        self.wait().await
    }
}
