//! A standalone analysis: one judgement of a canary against its baseline over a window of
//! ticks, recorded or read live. The same judge as a rollout, with the window as one step.

use jiff::Timestamp;

use crate::Result;
use crate::error::ExitCode;
use crate::judge::{Assessment, Judge, JudgeConfig, Moment, Verdict};
use crate::observation::Tick;
use crate::policy::Policy;
use crate::report::{TimelinePoint, timeline_point};

/// What an analysis concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// The judgement at the end of the window (a failure, once reached, stays).
    pub assessment: Assessment,
    /// The tick at which a criterion first failed, if one did.
    pub decided_at: Option<Timestamp>,
    /// Per tick, the values charts plot.
    pub timeline: Vec<TimelinePoint>,
    /// The source's warnings, deduplicated, in order of first appearance.
    pub warnings: Vec<String>,
}

/// Judges `ticks` (cumulative since the window's start, in time order) as one step. Every
/// tick is assessed mid-step, as a rollout would, so a failure is dated where the evidence
/// crossed its bound; the last tick is assessed as the step's end.
pub fn analyze(policy: &Policy, ticks: &[Tick]) -> Result<Analysis> {
    let judge = Judge::new(
        policy,
        JudgeConfig {
            sample_test_looks: 1,
        },
    )?;
    let mut state = judge.start();
    judge.begin_step(&mut state);
    let mut decided_at = None;
    let mut timeline = Vec::with_capacity(ticks.len());
    let mut warnings: Vec<String> = Vec::new();
    let mut previous: Option<&Tick> = None;
    for tick in ticks {
        judge.observe(&mut state, tick)?;
        let interim = judge.assess(&mut state, Moment::MidStep)?;
        if decided_at.is_none() && interim.verdict == Verdict::Fail {
            decided_at = Some(tick.at);
        }
        timeline.push(timeline_point(policy, previous, tick, None));
        for warning in &tick.warnings {
            if !warnings.contains(warning) {
                warnings.push(warning.clone());
            }
        }
        previous = Some(tick);
    }
    let assessment = judge.assess(&mut state, Moment::StepEnd)?;
    if decided_at.is_none() && assessment.verdict == Verdict::Fail {
        decided_at = ticks.last().map(|t| t.at);
    }
    // The judge's own warnings (totals that fell) after the source's.
    for warning in &assessment.warnings {
        if !warnings.contains(warning) {
            warnings.push(warning.clone());
        }
    }
    Ok(Analysis {
        assessment,
        decided_at,
        timeline,
        warnings,
    })
}

/// The exit code of an analysis verdict: 0 pass, 1 fail, 3 for anything that is not
/// enough evidence (inconclusive, no data, unusable data).
pub fn exit_code(verdict: Verdict) -> ExitCode {
    match verdict {
        Verdict::Pass => ExitCode::Passed,
        Verdict::Fail => ExitCode::Failed,
        Verdict::Inconclusive | Verdict::NoData | Verdict::Error => ExitCode::Inconclusive,
    }
}
