//! What the judge remembers between ticks, persisted with a rollout: per criterion, its
//! latest reading's status, its latched failure and its evaluator's memory.
//!
//! The shape is versioned ([`JUDGE_STATE_FORMAT`]): a state saved by a canary whose judge
//! remembered other things is refused with a message saying so (a rollout's state file then
//! does not load, exit 2), never misread.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

use super::evaluator::Memory;
use super::verdict::CheckResult;

/// The version of [`JudgeState`]'s shape. Version 1 (no `format` field) kept one memory per
/// kind of check; version 2 one per evaluator; version 3 several bucket bounds per latency
/// comparison, and the falls of cumulative totals.
pub const JUDGE_STATE_FORMAT: u32 = 3;

/// What the judge remembers between ticks. Serializable: it is part of a rollout's
/// persisted state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JudgeState {
    /// Always [`JUDGE_STATE_FORMAT`].
    pub format: u32,
    /// Per criterion, in policy order.
    pub criteria: Vec<CriterionState>,
    /// Cumulative canary requests at the start of the current step.
    pub step_start_requests: Option<f64>,
    /// Latest cumulative canary requests.
    pub canary_requests: Option<f64>,
    /// Ticks observed so far.
    pub ticks: u64,
    /// When the latest tick was observed.
    pub latest_at: Option<Timestamp>,
}

/// What one criterion remembers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriterionState {
    /// `check/criterion`.
    pub name: String,
    /// The failure, once there is one.
    pub failed: Option<CheckResult>,
    /// The status of the latest reading.
    pub latest: LatestReading,
    /// Test memory.
    pub memory: Memory,
}

/// The status of a criterion's latest reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum LatestReading {
    /// Nothing read yet.
    Nothing,
    /// Usable data.
    Observed,
    /// An answer with no data.
    NoData(String),
    /// An answer that could not be used.
    Invalid(String),
}

/// The persisted form, read in two stages so that an older shape is named as such rather
/// than reported as whichever field first fails to parse.
#[derive(Deserialize)]
struct JudgeStateRepr {
    #[serde(default)]
    format: Option<u32>,
    criteria: serde_json::Value,
    step_start_requests: Option<f64>,
    canary_requests: Option<f64>,
    ticks: u64,
    #[serde(default)]
    latest_at: Option<Timestamp>,
}

impl<'de> Deserialize<'de> for JudgeState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = JudgeStateRepr::deserialize(deserializer)?;
        let format = repr.format.unwrap_or(1);
        if format != JUDGE_STATE_FORMAT {
            return Err(serde::de::Error::custom(format!(
                "the analysis state was saved by another version of canary (judge state format {format}; this canary reads format {JUDGE_STATE_FORMAT}): finish the rollout with the canary that started it, or start over with --restart"
            )));
        }
        let criteria = serde_json::from_value(repr.criteria)
            .map_err(|err| serde::de::Error::custom(format!("criteria: {err}")))?;
        Ok(JudgeState {
            format,
            criteria,
            step_start_requests: repr.step_start_requests,
            canary_requests: repr.canary_requests,
            ticks: repr.ticks,
            latest_at: repr.latest_at,
        })
    }
}
