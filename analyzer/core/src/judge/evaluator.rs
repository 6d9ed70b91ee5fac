//! The evaluators: one per kind of criterion, each holding exactly what its test needs, built
//! once in [`Judge::new`](super::Judge::new) from the policy.
//!
//! An [`Evaluator`] is immutable configuration; what it remembers between ticks is its
//! [`Memory`], part of the persisted [`JudgeState`](super::JudgeState). The two are paired by
//! [`Evaluator::bind`], the one place where a saved state that belongs to another policy can
//! show up (as a mismatch the judge reports); every other match over criteria is exhaustive
//! over the pairs, so an evaluator can never be handed another evaluator's memory.
//!
//! Adding a kind of criterion: a file with its evaluator and memory types implementing
//! [`Evaluate`], a variant in [`Evaluator`], [`Memory`] and [`Paired`], and a line in
//! [`Judge::new`](super::Judge::new).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::error_rate_bound::{ErrorRateBound, ErrorRateBoundMemory};
use super::error_rate_comparison::{ErrorRateComparison, ErrorRateComparisonMemory};
use super::latency_bound::{LatencyBound, LatencyBoundMemory};
use super::latency_comparison::{LatencyComparison, LatencyComparisonMemory};
use super::query_bound::{QueryBound, QueryBoundMemory};
use super::samples_mann_whitney::{SamplesMannWhitney, SamplesMannWhitneyMemory};
use super::samples_sequential::{SamplesSequential, SamplesSequentialMemory};
use super::verdict::{CheckResult, Evidence, Moment, Verdict};
use crate::observation::CheckObservation;
use crate::policy::Criterion;

/// What a criterion is, for its results: its names and its share of α.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Subject {
    /// `check/criterion`.
    pub(crate) name: String,
    /// The policy check's name (the key of its readings).
    pub(crate) check: String,
    /// `slo` or `baseline`.
    pub(crate) criterion: Criterion,
    /// The check's kind as the policy writes it.
    pub(crate) kind: &'static str,
    /// The criterion's share of the policy's α.
    pub(crate) alpha: f64,
}

impl Subject {
    /// A result of this criterion.
    pub(crate) fn result(
        &self,
        verdict: Verdict,
        reason: impl Into<String>,
        evidence: Evidence,
    ) -> CheckResult {
        CheckResult {
            name: self.name.clone(),
            check: self.check.clone(),
            criterion: self.criterion,
            kind: self.kind.to_owned(),
            verdict,
            reason: reason.into(),
            statistics: String::new(),
            evidence,
            decided_at: None,
        }
    }

    /// Evidence with nothing but the criterion's α.
    pub(crate) fn no_evidence(&self) -> Evidence {
        Evidence {
            alpha: self.alpha,
            ..Evidence::default()
        }
    }
}

/// Why an observation could not be taken in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Nothing to judge this criterion on (the baseline's half is missing): `nodata`.
    NoData(String),
    /// The data cannot be used: `error`.
    Invalid(String),
}

impl From<String> for Unusable {
    fn from(reason: String) -> Self {
        Unusable::Invalid(reason)
    }
}

/// What every evaluator does: start its memory, take a tick's observation into it, and judge.
pub(crate) trait Evaluate {
    /// What it remembers between ticks.
    type Memory;

    /// The memory before the first tick.
    fn start(&self) -> Self::Memory;

    /// Takes in one tick's observation, made at `at`. Returns the canary's cumulative request
    /// count when the observation carries one; why not, when it cannot be used. An
    /// observation that cannot be used leaves the memory as it was.
    fn observe(
        &self,
        memory: &mut Self::Memory,
        observation: &CheckObservation,
        at: Timestamp,
    ) -> Result<Option<f64>, Unusable>;

    /// Judges the criterion on what it has observed (at least one usable observation).
    fn assess(&self, subject: &Subject, memory: &mut Self::Memory, moment: Moment) -> CheckResult;

    /// A new step starts (the traffic split changed).
    fn begin_step(&self, _memory: &mut Self::Memory) {}

    /// A tick passed without a usable observation (no data, or data refused). Tests of
    /// series that care which ticks are consecutive record the gap.
    fn gap(&self, _memory: &mut Self::Memory) {}
}

/// One criterion's evaluator.
#[derive(Clone, Debug)]
pub(crate) enum Evaluator {
    /// `error-rate` with `slo`.
    ErrorRateBound(ErrorRateBound),
    /// `error-rate` with `baseline`.
    ErrorRateComparison(ErrorRateComparison),
    /// `latency` with `slo`.
    LatencyBound(LatencyBound),
    /// `latency` with `baseline`.
    LatencyComparison(LatencyComparison),
    /// `samples` with `baseline`, the default: the anytime-valid sequential test that allows
    /// for autocorrelated series.
    SamplesSequential(SamplesSequential),
    /// `samples` with `baseline` and `method: mann-whitney`: Kayenta's fixed-sample test,
    /// once per step (not anytime-valid; assumes independent samples).
    SamplesMannWhitney(SamplesMannWhitney),
    /// `query` with `slo`.
    QueryBound(QueryBound),
}

/// What one criterion's test remembers between ticks: one variant per evaluator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "memory")]
pub enum Memory {
    /// An error-rate bound: the canary's totals.
    ErrorRateBound(ErrorRateBoundMemory),
    /// An error-rate comparison: both versions' totals and the e-process.
    ErrorRateComparison(ErrorRateComparisonMemory),
    /// A latency bound: the canary's latest buckets.
    LatencyBound(LatencyBoundMemory),
    /// A latency comparison: the slow-request bound, once fixed, and the counts above it.
    LatencyComparison(LatencyComparisonMemory),
    /// A sequential samples comparison: the e-process and the counts it was fed.
    SamplesSequential(SamplesSequentialMemory),
    /// A Mann–Whitney samples comparison: this step's samples and its test once run.
    SamplesMannWhitney(SamplesMannWhitneyMemory),
    /// A bound on a query: its latest value.
    QueryBound(QueryBoundMemory),
}

/// An evaluator with its own memory, as [`Evaluator::bind`] pairs them.
pub(crate) enum Paired<'a> {
    ErrorRateBound(&'a ErrorRateBound, &'a mut ErrorRateBoundMemory),
    ErrorRateComparison(&'a ErrorRateComparison, &'a mut ErrorRateComparisonMemory),
    LatencyBound(&'a LatencyBound, &'a mut LatencyBoundMemory),
    LatencyComparison(&'a LatencyComparison, &'a mut LatencyComparisonMemory),
    SamplesSequential(&'a SamplesSequential, &'a mut SamplesSequentialMemory),
    SamplesMannWhitney(&'a SamplesMannWhitney, &'a mut SamplesMannWhitneyMemory),
    QueryBound(&'a QueryBound, &'a mut QueryBoundMemory),
}

impl Evaluator {
    /// The memory before the first tick.
    pub(crate) fn start(&self) -> Memory {
        match self {
            Evaluator::ErrorRateBound(e) => Memory::ErrorRateBound(e.start()),
            Evaluator::ErrorRateComparison(e) => Memory::ErrorRateComparison(e.start()),
            Evaluator::LatencyBound(e) => Memory::LatencyBound(e.start()),
            Evaluator::LatencyComparison(e) => Memory::LatencyComparison(e.start()),
            Evaluator::SamplesSequential(e) => Memory::SamplesSequential(e.start()),
            Evaluator::SamplesMannWhitney(e) => Memory::SamplesMannWhitney(e.start()),
            Evaluator::QueryBound(e) => Memory::QueryBound(e.start()),
        }
    }

    /// Pairs this evaluator with its memory; `None` when the memory is another evaluator's
    /// (a saved state from another policy).
    pub(crate) fn bind<'a>(&'a self, memory: &'a mut Memory) -> Option<Paired<'a>> {
        Some(match (self, memory) {
            (Evaluator::ErrorRateBound(e), Memory::ErrorRateBound(m)) => {
                Paired::ErrorRateBound(e, m)
            }
            (Evaluator::ErrorRateComparison(e), Memory::ErrorRateComparison(m)) => {
                Paired::ErrorRateComparison(e, m)
            }
            (Evaluator::LatencyBound(e), Memory::LatencyBound(m)) => Paired::LatencyBound(e, m),
            (Evaluator::LatencyComparison(e), Memory::LatencyComparison(m)) => {
                Paired::LatencyComparison(e, m)
            }
            (Evaluator::SamplesSequential(e), Memory::SamplesSequential(m)) => {
                Paired::SamplesSequential(e, m)
            }
            (Evaluator::SamplesMannWhitney(e), Memory::SamplesMannWhitney(m)) => {
                Paired::SamplesMannWhitney(e, m)
            }
            (Evaluator::QueryBound(e), Memory::QueryBound(m)) => Paired::QueryBound(e, m),
            _ => return None,
        })
    }

    /// Whether `memory` is this evaluator's kind of memory.
    pub(crate) fn fits(&self, memory: &Memory) -> bool {
        if let (Evaluator::SamplesSequential(e), Memory::SamplesSequential(m)) = (self, memory) {
            // A state made with another `max-autocorrelation` belongs to another test.
            return e.test.max_autocorrelation() == m.max_autocorrelation();
        }
        matches!(
            (self, memory),
            (Evaluator::ErrorRateBound(_), Memory::ErrorRateBound(_))
                | (
                    Evaluator::ErrorRateComparison(_),
                    Memory::ErrorRateComparison(_)
                )
                | (Evaluator::LatencyBound(_), Memory::LatencyBound(_))
                | (
                    Evaluator::LatencyComparison(_),
                    Memory::LatencyComparison(_)
                )
                | (
                    Evaluator::SamplesMannWhitney(_),
                    Memory::SamplesMannWhitney(_)
                )
                | (Evaluator::QueryBound(_), Memory::QueryBound(_))
        )
    }
}

impl Paired<'_> {
    /// [`Evaluate::observe`] of the pair.
    pub(crate) fn observe(
        &mut self,
        observation: &CheckObservation,
        at: Timestamp,
    ) -> Result<Option<f64>, Unusable> {
        match self {
            Paired::ErrorRateBound(e, m) => e.observe(m, observation, at),
            Paired::ErrorRateComparison(e, m) => e.observe(m, observation, at),
            Paired::LatencyBound(e, m) => e.observe(m, observation, at),
            Paired::LatencyComparison(e, m) => e.observe(m, observation, at),
            Paired::SamplesSequential(e, m) => e.observe(m, observation, at),
            Paired::SamplesMannWhitney(e, m) => e.observe(m, observation, at),
            Paired::QueryBound(e, m) => e.observe(m, observation, at),
        }
    }

    /// [`Evaluate::assess`] of the pair.
    pub(crate) fn assess(&mut self, subject: &Subject, moment: Moment) -> CheckResult {
        match self {
            Paired::ErrorRateBound(e, m) => e.assess(subject, m, moment),
            Paired::ErrorRateComparison(e, m) => e.assess(subject, m, moment),
            Paired::LatencyBound(e, m) => e.assess(subject, m, moment),
            Paired::LatencyComparison(e, m) => e.assess(subject, m, moment),
            Paired::SamplesSequential(e, m) => e.assess(subject, m, moment),
            Paired::SamplesMannWhitney(e, m) => e.assess(subject, m, moment),
            Paired::QueryBound(e, m) => e.assess(subject, m, moment),
        }
    }

    /// [`Evaluate::begin_step`] of the pair.
    pub(crate) fn begin_step(&mut self) {
        match self {
            Paired::ErrorRateBound(e, m) => e.begin_step(m),
            Paired::ErrorRateComparison(e, m) => e.begin_step(m),
            Paired::LatencyBound(e, m) => e.begin_step(m),
            Paired::LatencyComparison(e, m) => e.begin_step(m),
            Paired::SamplesSequential(e, m) => e.begin_step(m),
            Paired::SamplesMannWhitney(e, m) => e.begin_step(m),
            Paired::QueryBound(e, m) => e.begin_step(m),
        }
    }

    /// [`Evaluate::gap`] of the pair.
    pub(crate) fn gap(&mut self) {
        match self {
            Paired::ErrorRateBound(e, m) => e.gap(m),
            Paired::ErrorRateComparison(e, m) => e.gap(m),
            Paired::LatencyBound(e, m) => e.gap(m),
            Paired::LatencyComparison(e, m) => e.gap(m),
            Paired::SamplesSequential(e, m) => e.gap(m),
            Paired::SamplesMannWhitney(e, m) => e.gap(m),
            Paired::QueryBound(e, m) => e.gap(m),
        }
    }
}

/// The error for an observation of the wrong kind.
pub(crate) fn unexpected(kind: &str, observation: &CheckObservation) -> Unusable {
    Unusable::Invalid(format!(
        "expected data for a {kind} check, got {}",
        match observation {
            CheckObservation::Counts { .. } => "request counts",
            CheckObservation::Histogram { .. } => "histogram buckets",
            CheckObservation::Samples { .. } => "samples",
            CheckObservation::Value { .. } => "a single value",
        }
    ))
}
