//! `latency` with `baseline`: the canary's share of requests slower than the histogram's
//! bucket bounds against the baseline's, at several bounds at once.
//!
//! # What is tested
//!
//! For each bucket bound b that both versions' histograms have (exactly: no interpolation),
//! let p_c(b) and p_b(b) be the canary's and the baseline's probability that a request is
//! slower than b. The null hypothesis is that **at no shared bound is the canary's share of
//! slow requests more than θ₀ = 1 + `max-increase` times the baseline's**:
//! p_c(b) ≤ θ₀ · p_b(b) for every shared b. Rejecting it (rolling back) says the canary is
//! slower than allowed somewhere in the distribution.
//!
//! # How
//!
//! Each bound gets its own rate-ratio e-process E_b ([`crate::stats::rate_ratio`]), fed the
//! increments of requests and of requests slower than b. Every E_b is a test supermartingale
//! for its own null on the same filtration (all bucket counts), so under the intersection of
//! the nulls any average of them with weights fixed before the evidence they weigh is one too
//! (Vovk & Wang 2021, *E-values: calibration, combination and applications*, Ann. Statist.;
//! a convex combination of test supermartingales for the same filtration is a test
//! supermartingale), and Ville's inequality bounds the chance that it ever reaches 1/α.
//!
//! The combination runs in two phases, the weights of each tick fixed before that tick:
//!
//! 1. **Exploring**, from the first tick: nothing is known about the latencies yet, so each
//!    tick's evidence is the plain average over the shared bounds of each E_b's growth that
//!    tick: M_t = M_{t−1} · mean_b (E_{b,t}/E_{b,t−1}).
//! 2. **Focused**, once the baseline has served [`REQUESTS_TO_FOCUS`] requests: the bounds
//!    from around the baseline's median (the shared bound nearest to it) up to the shared
//!    bound just below its quantile — where a slower canary moves the most requests across —
//!    get equal weight π, and from then on M_t = M_{t*} · Σ π_b E_{b,t} / Σ π_b E_{b,t*}.
//!    Only ticks after the focus t* count in the second factor, so choosing the bounds from
//!    the baseline's data up to t* is choosing before the evidence.
//!
//! A policy's `slow-above` focuses at once, on the smallest shared bound at or above it
//! (chosen from the layouts alone, so the first tick already counts).
//!
//! Histograms with different layouts are compared on the bounds both have; when they have
//! none, the criterion's verdict is `error` naming both layouts, every tick, until they do.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::evaluator::{Evaluate, Subject, Unusable, unexpected};
use super::memory::{Decreases, Totals, check_buckets, slow_totals, total};
use super::verdict::{BoundEvidence, CheckResult, Evidence, Moment, Verdict, fmt_num};
use crate::observation::{BaselineData, CheckObservation, HistogramBucket};
use crate::stats::histogram;
use crate::stats::rate_ratio::{RateRatioState, RateRatioTest};

/// Baseline requests needed before a latency comparison focuses on the bounds around the
/// baseline's median and quantile (when the policy does not give `slow-above`).
pub const REQUESTS_TO_FOCUS: f64 = 200.0;

/// The evaluator of a latency comparison.
#[derive(Clone, Debug)]
pub(crate) struct LatencyComparison {
    /// The quantile the focus reaches up to.
    pub(crate) quantile: f64,
    /// The policy's `slow-above`, seconds.
    pub(crate) slow_above: Option<f64>,
    /// The comparison at each bound.
    pub(crate) test: RateRatioTest,
}

/// What a latency comparison remembers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyComparisonMemory {
    /// The canary's cumulative requests, highest seen.
    canary: Totals,
    /// The baseline's.
    baseline: Totals,
    /// The falls of those totals.
    decreases: Decreases,
    /// Whether a tick has been taken in (the first one counts from the analysis' start).
    started: bool,
    /// The e-process of each bound looked at, ascending.
    bounds: Vec<BoundTest>,
    /// How they are averaged.
    combination: Combination,
}

/// One bound's test: the cumulative totals above it as last read, and its e-process, fed
/// the increments since `since`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundTest {
    /// The bucket bound, seconds.
    bound: f64,
    /// When its counting started; `None` for the start of the analysis.
    since: Option<Timestamp>,
    /// The canary's requests and requests above the bound, cumulative, highest seen.
    canary: Totals,
    /// The baseline's.
    baseline: Totals,
    /// The e-process.
    test: RateRatioState,
}

/// How the bounds' e-processes are averaged (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "phase")]
pub enum Combination {
    /// Every bound weighs the same, tick by tick.
    Exploring {
        /// ln M so far.
        log_e: f64,
    },
    /// The focused bounds, held with fixed weights.
    Focused {
        /// When the focus was chosen; `None` when it was from the start (`slow-above`).
        since: Option<Timestamp>,
        /// ln M at the focus.
        log_e_at_focus: f64,
        /// The weight of each of `bounds`, summing to 1.
        weights: Vec<f64>,
        /// ln Σ π_b E_b at the focus.
        log_norm: f64,
    },
}

impl Default for Combination {
    fn default() -> Self {
        Combination::Exploring { log_e: 0.0 }
    }
}

impl BoundTest {
    fn start(
        test: &RateRatioTest,
        bound: f64,
        since: Option<Timestamp>,
        totals: (Totals, Totals),
    ) -> BoundTest {
        BoundTest {
            bound,
            since,
            canary: totals.0,
            baseline: totals.1,
            test: test.start(),
        }
    }
}

impl LatencyComparison {
    /// ln of the combined e-value.
    fn log_e_value(&self, memory: &LatencyComparisonMemory) -> f64 {
        match &memory.combination {
            Combination::Exploring { log_e } => *log_e,
            Combination::Focused {
                log_e_at_focus,
                weights,
                log_norm,
                ..
            } => {
                let now = log_sum_exp(
                    memory
                        .bounds
                        .iter()
                        .zip(weights)
                        .map(|(b, w)| w.ln() + self.test.log_e_value(&b.test)),
                );
                log_e_at_focus + now - log_norm
            }
        }
    }

    /// The bounds to focus on, from the baseline's cumulative buckets, among `candidates`:
    /// from the one nearest to the baseline's median up to the one just below its quantile
    /// (or, when none is below it, the first at or above it), keeping only bounds with
    /// baseline requests on both sides. `None` when no candidate has.
    fn focus(&self, baseline: &[HistogramBucket], candidates: &[f64]) -> Option<Vec<f64>> {
        let stats = HistogramBucket::to_stats(baseline);
        let informative: Vec<f64> = candidates
            .iter()
            .copied()
            .filter(|&b| {
                let above = histogram::count_above(&stats, b).unwrap_or(0.0);
                above > 0.0 && above < total(baseline)
            })
            .collect();
        let median = histogram::histogram_quantile(0.5, &stats);
        let quantile = histogram::histogram_quantile(self.quantile, &stats);
        let top = informative
            .iter()
            .copied()
            .rfind(|&b| b < quantile)
            .or_else(|| informative.iter().copied().find(|&b| b >= quantile))?;
        let distance = |b: f64| {
            if b > 0.0 && median > 0.0 {
                (b.ln() - median.ln()).abs()
            } else {
                (b - median).abs()
            }
        };
        let bottom = informative
            .iter()
            .copied()
            .min_by(|a, b| distance(*a).total_cmp(&distance(*b)))?
            .min(top);
        Some(
            informative
                .into_iter()
                .filter(|&b| b >= bottom && b <= top)
                .collect(),
        )
    }
}

impl Evaluate for LatencyComparison {
    type Memory = LatencyComparisonMemory;

    fn start(&self) -> LatencyComparisonMemory {
        LatencyComparisonMemory::default()
    }

    fn observe(
        &self,
        memory: &mut LatencyComparisonMemory,
        observation: &CheckObservation,
        at: Timestamp,
    ) -> Result<Option<f64>, Unusable> {
        let CheckObservation::Histogram { canary, baseline } = observation else {
            return Err(unexpected("latency", observation));
        };
        check_buckets("canary", canary)?;
        let baseline = match baseline {
            BaselineData::Observed(baseline) => baseline,
            BaselineData::Missing(reason) => {
                return Err(Unusable::NoData(format!(
                    "no baseline data to compare with: {reason}"
                )));
            }
        };
        check_buckets("baseline", baseline)?;
        let shared = shared_bounds(canary, baseline);
        if shared.is_empty() {
            return Err(Unusable::Invalid(format!(
                "the canary's and the baseline's histograms share no finite bucket bound to compare on: {}; give both the same buckets",
                layouts(canary, baseline)
            )));
        }
        let totals_above = |bound: f64| -> Result<(Totals, Totals), String> {
            Ok((slow_totals(canary, bound)?, slow_totals(baseline, bound)?))
        };
        let mut next = memory.clone();
        if !next.started {
            // The first tick's counts are cumulative since the analysis started: bounds
            // chosen from the layouts alone take them in as evidence.
            let zero = (Totals::default(), Totals::default());
            match self.slow_above {
                Some(wanted) => {
                    let Some(bound) = shared.iter().copied().find(|&b| b >= wanted) else {
                        return Err(Unusable::Invalid(format!(
                            "no bucket bound both histograms have is at or above slow-above {}s: {}",
                            fmt_num(wanted),
                            layouts(canary, baseline)
                        )));
                    };
                    let start = BoundTest::start(&self.test, bound, None, zero);
                    next.combination = Combination::Focused {
                        since: None,
                        log_e_at_focus: 0.0,
                        weights: vec![1.0],
                        log_norm: self.test.log_e_value(&start.test),
                    };
                    next.bounds = vec![start];
                }
                None => {
                    next.bounds = shared
                        .iter()
                        .map(|&b| BoundTest::start(&self.test, b, None, zero))
                        .collect();
                }
            }
            next.started = true;
        }
        match &next.combination {
            Combination::Exploring { .. } => {
                // A bound that appears later (the layouts changed) counts from now.
                for &bound in &shared {
                    if !next.bounds.iter().any(|b| b.bound == bound) {
                        let start =
                            BoundTest::start(&self.test, bound, Some(at), totals_above(bound)?);
                        next.bounds.push(start);
                    }
                }
                next.bounds.sort_by(|a, b| a.bound.total_cmp(&b.bound));
            }
            Combination::Focused { .. } => {
                if !next.bounds.iter().any(|b| shared.contains(&b.bound)) {
                    let focused: Vec<String> =
                        next.bounds.iter().map(|b| fmt_num(b.bound)).collect();
                    return Err(Unusable::Invalid(format!(
                        "the histograms no longer share the bounds the comparison counts slow requests above ({}s): {}",
                        focused.join("s, "),
                        layouts(canary, baseline)
                    )));
                }
            }
        }
        let canary_requests = Totals::from_reading(total(canary), 0.0)?;
        let baseline_requests = Totals::from_reading(total(baseline), 0.0)?;
        next.decreases.record(&[
            (next.canary, canary_requests),
            (next.baseline, baseline_requests),
        ]);
        next.canary.advance(canary_requests);
        next.baseline.advance(baseline_requests);
        // Each present bound's growth this tick; a bound a layout lost stays as it was (a
        // stopped test supermartingale is still one).
        let mut growth = Vec::with_capacity(next.bounds.len());
        for b in next.bounds.iter_mut() {
            if !shared.contains(&b.bound) {
                continue;
            }
            let (canary_now, baseline_now) = totals_above(b.bound)?;
            let before = self.test.log_e_value(&b.test);
            let canary_step = b.canary.advance(canary_now);
            let baseline_step = b.baseline.advance(baseline_now);
            self.test
                .update(&mut b.test, canary_step, baseline_step)
                .map_err(|e| e.to_string())?;
            growth.push(self.test.log_e_value(&b.test) - before);
        }
        if let Combination::Exploring { log_e } = &mut next.combination {
            *log_e += log_sum_exp(growth.iter().copied()) - (growth.len() as f64).ln();
            if next.baseline.trials as f64 >= REQUESTS_TO_FOCUS {
                let candidates: Vec<f64> = next
                    .bounds
                    .iter()
                    .map(|b| b.bound)
                    .filter(|b| shared.contains(b))
                    .collect();
                if let Some(focus) = self.focus(baseline, &candidates) {
                    let log_e_at_focus = *log_e;
                    next.bounds.retain(|b| focus.contains(&b.bound));
                    let weight = 1.0 / next.bounds.len() as f64;
                    let weights = vec![weight; next.bounds.len()];
                    let log_norm = log_sum_exp(
                        next.bounds
                            .iter()
                            .map(|b| weight.ln() + self.test.log_e_value(&b.test)),
                    );
                    next.combination = Combination::Focused {
                        since: Some(at),
                        log_e_at_focus,
                        weights,
                        log_norm,
                    };
                }
            }
        }
        *memory = next;
        Ok(Some(total(canary)))
    }

    fn assess(
        &self,
        subject: &Subject,
        memory: &mut LatencyComparisonMemory,
        _moment: Moment,
    ) -> CheckResult {
        let alpha = subject.alpha;
        let null_ratio = self.test.null_ratio();
        let log_e = self.log_e_value(memory);
        let e_value = log_e.exp();
        let weights: Vec<f64> = match &memory.combination {
            Combination::Exploring { .. } => {
                vec![1.0 / memory.bounds.len().max(1) as f64; memory.bounds.len()]
            }
            Combination::Focused { weights, .. } => weights.clone(),
        };
        let bounds: Vec<BoundEvidence> = memory
            .bounds
            .iter()
            .zip(&weights)
            .map(|(b, &weight)| BoundEvidence {
                bound: b.bound,
                since: b.since,
                canary_n: b.test.canary().trials,
                canary_events: b.test.canary().events,
                baseline_n: b.test.baseline().trials,
                baseline_events: b.test.baseline().events,
                e_value: self.test.e_value(&b.test),
                weight,
            })
            .collect();
        let leading = memory.bounds.iter().max_by(|a, b| {
            self.test
                .log_e_value(&a.test)
                .total_cmp(&self.test.log_e_value(&b.test))
        });
        let share = |events: u64, n: u64| (n > 0).then(|| events as f64 / n as f64);
        let listed = bound_list(&memory.bounds);
        let mut evidence = Evidence {
            test: "average over bucket bounds of conditional-binomial mixture e-values (Lindon & Malek 2022; averaged as in Vovk & Wang 2021), anytime-valid".to_owned(),
            measure: "canary/baseline ratio of the shares of requests slower than a bucket bound"
                .to_owned(),
            confidence: Some(1.0 - alpha),
            e_value: Some(e_value),
            threshold: Some(null_ratio),
            alpha,
            bounds,
            counter_decreases: memory.decreases.reported(),
            ..Evidence::default()
        };
        if let Some(lead) = leading {
            let (c, b) = (lead.test.canary(), lead.test.baseline());
            // One lower bound per bound looked at, each at α over their number, holds for
            // all of them at once: the one shown may be the most extreme.
            let lower = self
                .test
                .lower_bound(&lead.test, alpha / memory.bounds.len() as f64)
                .unwrap_or(0.0);
            evidence.measure = format!(
                "canary/baseline ratio of the shares of requests slower than {}s (of the bounds compared, the one with the most evidence), counted {}",
                fmt_num(lead.bound),
                since_text(lead.since)
            );
            evidence.canary_n = Some(c.trials);
            evidence.canary_events = Some(c.events);
            evidence.baseline_n = Some(b.trials);
            evidence.baseline_events = Some(b.events);
            evidence.estimate = self.test.estimate(&lead.test);
            evidence.baseline_estimate = share(b.events, b.trials);
            evidence.interval = Some([lower, f64::INFINITY]);
        }
        let threshold = fmt_num(1.0 / alpha);
        if log_e >= -alpha.ln()
            && let Some(lead) = leading
        {
            let (c, b) = (lead.test.canary(), lead.test.baseline());
            let pct = |x: Option<f64>| {
                x.map_or("—".to_owned(), |x| format!("{} %", fmt_num(x * 100.0)))
            };
            return subject.result(
                Verdict::Fail,
                format!(
                    "the canary is slower than the baseline allows: {} of its requests took longer than {}s against {} of the baseline's, more than {}× with confidence (e-value {} ≥ {}, over the bounds {})",
                    pct(share(c.events, c.trials)),
                    fmt_num(lead.bound),
                    pct(share(b.events, b.trials)),
                    fmt_num(null_ratio),
                    fmt_num(e_value),
                    threshold,
                    listed
                ),
                evidence,
            );
        }
        if memory.canary.trials == 0 {
            return subject.result(Verdict::NoData, "no canary requests yet", evidence);
        }
        if memory.baseline.trials == 0 {
            return subject.result(
                Verdict::NoData,
                "no baseline requests to compare with",
                evidence,
            );
        }
        subject.result(
            Verdict::Pass,
            format!(
                "no evidence that the canary's share of requests slower than any of the bounds {} is above {}× the baseline's (e-value {} < {})",
                listed,
                fmt_num(null_ratio),
                fmt_num(e_value),
                threshold
            ),
            evidence,
        )
    }
}

/// The finite bucket bounds both histograms have, ascending.
fn shared_bounds(canary: &[HistogramBucket], baseline: &[HistogramBucket]) -> Vec<f64> {
    let mut shared: Vec<f64> = canary
        .iter()
        .map(|b| b.le)
        .filter(|le| le.is_finite() && baseline.iter().any(|b| b.le == *le))
        .collect();
    shared.sort_by(f64::total_cmp);
    shared.dedup();
    shared
}

/// Both layouts, for messages: `canary le 0.01, 0.02; baseline le 0.025, 0.05`.
fn layouts(canary: &[HistogramBucket], baseline: &[HistogramBucket]) -> String {
    let layout = |buckets: &[HistogramBucket]| {
        let mut bounds: Vec<f64> = buckets
            .iter()
            .map(|b| b.le)
            .filter(|le| le.is_finite())
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        if bounds.is_empty() {
            "only +Inf".to_owned()
        } else {
            bounds
                .iter()
                .map(|b| fmt_num(*b))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!(
        "canary le {}; baseline le {}",
        layout(canary),
        layout(baseline)
    )
}

/// `0.05s, 0.1s`, or `0.005s … 10s (11 bounds)` when there are many.
fn bound_list(bounds: &[BoundTest]) -> String {
    match bounds {
        [] => "(none yet)".to_owned(),
        [first, .., last] if bounds.len() > 4 => format!(
            "{}s … {}s ({} bounds)",
            fmt_num(first.bound),
            fmt_num(last.bound),
            bounds.len()
        ),
        _ => bounds
            .iter()
            .map(|b| format!("{}s", fmt_num(b.bound)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn since_text(since: Option<Timestamp>) -> String {
    match since {
        None => "since the analysis started".to_owned(),
        Some(at) => format!("since {at}, when this bound's test started"),
    }
}

/// ln Σ exp(vᵢ), shifted by the maximum; −∞ for no terms.
fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max.is_infinite() {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests;
