//! `canary controller run --metrics-addr ADDR`: the controller's own Prometheus metrics, so
//! that the cluster's Prometheus can alert on the controller itself.
//!
//! | metric | type | |
//! |---|---|---|
//! | `canary_controller_leader` | gauge | 1 while this process holds the leader Lease (of its shard), else 0 |
//! | `canary_controller_rollouts{phase}` | gauge | CanaryRollouts of this process by the phase it last wrote in their status (`Progressing`, `Paused`, `Promoted`, `RolledBack`, `Failed`, `Invalid`) |
//! | `canary_controller_reconcile_errors_total` | counter | reconciles that failed (and are retried) |
//! | `canary_controller_api_write_errors_total` | counter | status and Event writes that failed |
//! | `canary_controller_decisions_total{outcome}` | counter | rollouts this process saw end: `Promoted`, `RolledBack` |
//! | `canary_controller_query_wait_seconds` | histogram | how long a rollout's metrics read waited for a query permit (`--max-concurrent-queries`): the share of tick lag the bound adds |
//! | `canary_controller_query_duration_seconds` | histogram | how long a rollout's metrics read took once it ran |
//! | `canary_controller_tick_lag_seconds` | histogram | how late each tick's read started (with its query permit) after the time the rollout machine set for it |
//! | `canary_controller_tick_decision_lag_seconds` | histogram | how late each tick's read was answered, and so the tick decided (the judge and the machine run at once, in memory), after that time: the start's lag plus the wait for a shared read's batch and the query |
//!
//! A standby serves them too (`leader` 0, no rollouts): both replicas can be scraped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::self_metrics::Exposition;

/// The phases `canary_controller_rollouts` has a series for from the start.
const PHASES: [&str; 6] = [
    "Progressing",
    "Paused",
    "Promoted",
    "RolledBack",
    "Failed",
    "Invalid",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The phases that end a rollout, counted in `canary_controller_decisions_total`.
const OUTCOMES: [&str; 2] = ["Promoted", "RolledBack"];

/// A handle on the controller's metrics; clones share them.
#[derive(Clone, Debug)]
pub(crate) struct ControllerMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    leader: Gauge,
    rollouts: Family<PhaseLabels, Gauge>,
    reconcile_errors: Counter,
    write_errors: Counter,
    decisions: Family<OutcomeLabels, Counter>,
    query_wait: Histogram,
    query_duration: Histogram,
    tick_lag: Histogram,
    tick_decision_lag: Histogram,
    /// Each resource's phase as last written, to move it from one count to another.
    phases: Mutex<HashMap<(String, String), String>>,
}

impl ControllerMetrics {
    /// Every metric at zero.
    pub(crate) fn new() -> ControllerMetrics {
        let mut registry = Registry::with_prefix("canary_controller");
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process holds the leader Lease (of its shard), else 0",
            leader.clone(),
        );
        let rollouts = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "rollouts",
            "CanaryRollouts of this process by the phase last written in their status",
            rollouts.clone(),
        );
        let reconcile_errors = Counter::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed (each is retried)",
            reconcile_errors.clone(),
        );
        let write_errors = Counter::default();
        registry.register(
            "api_write_errors",
            "Status and Event writes to the API server that failed",
            write_errors.clone(),
        );
        let decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "decisions",
            "Rollouts this process saw end, by outcome (Promoted, RolledBack)",
            decisions.clone(),
        );
        // 1 ms to about 33 s.
        let query_wait = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "query_wait_seconds",
            "How long a rollout's metrics read waited for a query permit (--max-concurrent-queries), in seconds",
            query_wait.clone(),
        );
        // 5 ms to about 41 s.
        let query_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "query_duration_seconds",
            "How long a rollout's metrics read took once it ran, in seconds",
            query_duration.clone(),
        );
        // 1 ms to about 36 s, 25 % apart: fine enough to read a p50 and a p99 off.
        let tick_lag = Histogram::new(exponential_buckets(0.001, 1.25, 48));
        registry.register(
            "tick_lag_seconds",
            "How late each rollout's tick read its metrics: from the time the rollout machine set for it to the read's start (with its query permit), in seconds",
            tick_lag.clone(),
        );
        let tick_decision_lag = Histogram::new(exponential_buckets(0.001, 1.25, 48));
        registry.register(
            "tick_decision_lag_seconds",
            "How late each rollout's tick was decided: from the time the rollout machine set for it to its metrics read's answer (a shared read's batch and the query included; the decision follows in memory), in seconds",
            tick_decision_lag.clone(),
        );
        for outcome in OUTCOMES {
            // A series at 0 from the start, so that `increase()` sees the first one.
            let _ = decisions.get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            });
        }
        for phase in PHASES {
            rollouts
                .get_or_create(&PhaseLabels {
                    phase: phase.to_owned(),
                })
                .set(0);
        }
        ControllerMetrics {
            inner: Arc::new(Inner {
                registry,
                leader,
                rollouts,
                reconcile_errors,
                write_errors,
                decisions,
                query_wait,
                query_duration,
                tick_lag,
                tick_decision_lag,
                phases: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether this process leads.
    pub(crate) fn set_leader(&self, leading: bool) {
        self.inner.leader.set(i64::from(leading));
    }

    /// The phase just written in the status of `namespace/name`.
    pub(crate) fn rollout_phase(&self, namespace: &str, name: &str, phase: Option<&str>) {
        let Some(phase) = phase else { return };
        let mut phases = self
            .inner
            .phases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (namespace.to_owned(), name.to_owned());
        if phases.get(&key).map(String::as_str) == Some(phase) {
            return;
        }
        if let Some(before) = phases.insert(key, phase.to_owned()) {
            self.inner
                .rollouts
                .get_or_create(&PhaseLabels { phase: before })
                .dec();
        }
        self.inner
            .rollouts
            .get_or_create(&PhaseLabels {
                phase: phase.to_owned(),
            })
            .inc();
        if OUTCOMES.contains(&phase) {
            self.inner
                .decisions
                .get_or_create(&OutcomeLabels {
                    outcome: phase.to_owned(),
                })
                .inc();
        }
    }

    /// A metrics read waited `waited` for its permit, then took `took`.
    pub(crate) fn query(&self, waited: std::time::Duration, took: std::time::Duration) {
        self.inner.query_wait.observe(waited.as_secs_f64());
        self.inner.query_duration.observe(took.as_secs_f64());
    }

    /// A tick read its metrics `late` after its due time.
    pub(crate) fn tick_lag(&self, late: std::time::Duration) {
        self.inner.tick_lag.observe(late.as_secs_f64());
    }

    /// How late a tick's read was answered after its due time (the tick then decided).
    pub(crate) fn tick_decision_lag(&self, late: std::time::Duration) {
        self.inner.tick_decision_lag.observe(late.as_secs_f64());
    }

    /// A reconcile failed.
    pub(crate) fn reconcile_error(&self) {
        self.inner.reconcile_errors.inc();
    }

    /// A status or Event write failed.
    pub(crate) fn write_error(&self) {
        self.inner.write_errors.inc();
    }
}

impl Exposition for ControllerMetrics {
    fn openmetrics(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollouts_move_from_phase_to_phase_and_are_counted_once() {
        let metrics = ControllerMetrics::new();
        metrics.set_leader(true);
        metrics.rollout_phase("shop", "checkout", Some("Progressing"));
        metrics.rollout_phase("shop", "checkout", Some("Progressing"));
        metrics.rollout_phase("shop", "orders", Some("Progressing"));
        metrics.rollout_phase("shop", "orders", Some("Promoted"));
        metrics.rollout_phase("shop", "cart", None);
        metrics.query(
            std::time::Duration::from_millis(2),
            std::time::Duration::from_millis(30),
        );
        metrics.reconcile_error();
        metrics.write_error();
        metrics.write_error();
        let text = metrics.prometheus_text();
        for line in [
            "canary_controller_leader 1",
            "canary_controller_rollouts{phase=\"Progressing\"} 1",
            "canary_controller_rollouts{phase=\"Promoted\"} 1",
            "canary_controller_rollouts{phase=\"Invalid\"} 0",
            "canary_controller_reconcile_errors_total 1",
            "canary_controller_api_write_errors_total 2",
            "canary_controller_decisions_total{outcome=\"Promoted\"} 1",
            "canary_controller_decisions_total{outcome=\"RolledBack\"} 0",
            "canary_controller_query_wait_seconds_count 1",
            "canary_controller_query_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
