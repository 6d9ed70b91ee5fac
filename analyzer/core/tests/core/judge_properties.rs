//! Property tests of the judge's invariants, through its public API (`Judge`, ticks of
//! cumulative readings, verdicts and evidence), on traces proptest generates and shrinks:
//!
//! - more canary errors never make a verdict better (per criterion, at every tick);
//! - more error-free baseline requests never make a canary's verdict better;
//! - more slow canary requests (requests moved to higher latency buckets) never make a
//!   verdict better;
//! - the same cumulative traffic split into more ticks gives the same final totals, and —
//!   while the canary's share of traffic is steady — the same e-value (how often the
//!   analyzer looks does not change the evidence);
//! - a judge state saved mid-step (as a rollout persists it) and read back judges the rest of
//!   the trace exactly as the state that was never saved.
//!
//! "Better" orders verdicts pass > inconclusive = nodata > error > fail.

use canary_core::judge::{Assessment, Judge, JudgeConfig, JudgeState, Moment, Verdict};
use canary_core::observation::{CheckObservation, HistogramBucket, Reading, RequestCounts, Tick};
use canary_core::policy::Policy;
use canary_core::stats::rate_ratio::{RateRatioState, RateRatioTest};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

/// How good a verdict is for the canary.
fn rank(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Pass => 3,
        Verdict::Inconclusive | Verdict::NoData => 2,
        Verdict::Error => 1,
        Verdict::Fail => 0,
    }
}

fn epoch() -> Timestamp {
    Timestamp::from_second(1_795_341_600).unwrap()
}

// ---------------------------------------------------------------------------------------
// Policies.

/// The knobs of the error-rate policies the properties run on.
#[derive(Clone, Debug)]
struct ErrorRatePolicy {
    slo_max_permille: u32,
    rollback_above: bool,
    max_increase_pct: u32,
    alpha_pct: f64,
    min_requests: u64,
}

impl ErrorRatePolicy {
    fn policy(&self) -> Policy {
        let rollback = if self.rollback_above {
            format!(
                "\n      rollback-above: {}%",
                f64::from(self.slo_max_permille) / 10.0 * 3.0
            )
        } else {
            String::new()
        };
        let yaml = format!(
            "service: checkout\n\
             traffic: {{label: version, canary: canary, baseline: stable}}\n\
             metrics: {{prometheus: {{url: 'http://127.0.0.1:9090'}}}}\n\
             rollout: {{alpha: {alpha}%, min-requests: {min}}}\n\
             checks:\n\
             \x20 - name: errors\n\
             \x20   error-rate: {{requests: http_requests_total, errors: 'code=~\"5..\"'}}\n\
             \x20   slo:\n\
             \x20     max: {max}%{rollback}\n\
             \x20   baseline:\n\
             \x20     max-increase: {inc}%\n",
            alpha = self.alpha_pct,
            min = self.min_requests,
            max = f64::from(self.slo_max_permille) / 10.0,
            inc = self.max_increase_pct,
        );
        Policy::from_yaml(&yaml, "property.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }
}

fn error_rate_policy() -> impl Strategy<Value = ErrorRatePolicy> {
    (
        prop::sample::select(vec![1u32, 5, 10, 50]),
        any::<bool>(),
        prop::sample::select(vec![0u32, 20, 100]),
        prop::sample::select(vec![1.0f64, 5.0, 20.0]),
        prop::sample::select(vec![0u64, 100, 1000]),
    )
        .prop_map(
            |(slo_max_permille, rollback_above, max_increase_pct, alpha_pct, min_requests)| {
                ErrorRatePolicy {
                    slo_max_permille,
                    rollback_above,
                    max_increase_pct,
                    alpha_pct,
                    min_requests,
                }
            },
        )
}

/// The bucket bounds of the latency traces, in seconds.
const BOUNDS: [f64; 7] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, f64::INFINITY];

fn latency_policy(slow_above: bool, rollback_above: bool) -> Policy {
    let yaml = format!(
        "service: checkout\n\
         traffic: {{label: version, canary: canary, baseline: stable}}\n\
         metrics: {{prometheus: {{url: 'http://127.0.0.1:9090'}}}}\n\
         rollout: {{alpha: 5%, min-requests: 100}}\n\
         checks:\n\
         \x20 - name: latency\n\
         \x20   latency: {{histogram: http_request_duration_seconds, quantile: 0.9}}\n\
         \x20   slo:\n\
         \x20     max: 500ms{}\n\
         \x20   baseline:\n\
         \x20     max-increase: 25%{}\n",
        if rollback_above {
            "\n      rollback-above: 1s"
        } else {
            ""
        },
        if slow_above {
            "\n      slow-above: 250ms"
        } else {
            ""
        },
    );
    Policy::from_yaml(&yaml, "property.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

// ---------------------------------------------------------------------------------------
// Traces: per-tick increments, turned into the cumulative ticks sources produce.

/// One tick's increment of an error-rate check's counters.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Increment {
    canary: u64,
    canary_errors: u64,
    baseline: u64,
    baseline_errors: u64,
}

fn increment() -> impl Strategy<Value = Increment> {
    (0u64..3000, 0u64..=300, 0u64..30_000, 0u64..=60).prop_map(
        |(canary, canary_permille, baseline, baseline_permille)| Increment {
            canary,
            canary_errors: canary * canary_permille / 1000,
            baseline,
            baseline_errors: baseline * baseline_permille / 1000,
        },
    )
}

fn error_trace() -> impl Strategy<Value = Vec<Increment>> {
    prop::collection::vec(increment(), 1..10)
}

fn tick_at(index: usize, reading: Reading, name: &str) -> Tick {
    let seconds = 30 * (index as i64 + 1);
    Tick {
        at: epoch() + SignedDuration::from_secs(seconds),
        window_seconds: seconds as f64,
        readings: [(name.to_owned(), reading)].into_iter().collect(),
        warnings: Vec::new(),
    }
}

/// The cumulative ticks of an error-rate trace.
fn error_ticks(trace: &[Increment]) -> Vec<Tick> {
    let mut total = [0u64; 4];
    trace
        .iter()
        .enumerate()
        .map(|(i, inc)| {
            total[0] += inc.canary;
            total[1] += inc.canary_errors;
            total[2] += inc.baseline;
            total[3] += inc.baseline_errors;
            let reading = Reading::Observed(CheckObservation::Counts {
                canary: RequestCounts {
                    requests: total[0] as f64,
                    errors: total[1] as f64,
                },
                baseline: RequestCounts {
                    requests: total[2] as f64,
                    errors: total[3] as f64,
                }
                .into(),
            });
            tick_at(i, reading, "errors")
        })
        .collect()
}

/// One tick's increment of a latency check's buckets: requests per bucket (not cumulative).
#[derive(Clone, Debug, PartialEq)]
struct LatencyIncrement {
    canary: Vec<u64>,
    baseline: Vec<u64>,
}

fn latency_trace() -> impl Strategy<Value = Vec<LatencyIncrement>> {
    prop::collection::vec(
        (
            prop::collection::vec(0u64..120, BOUNDS.len()),
            prop::collection::vec(0u64..600, BOUNDS.len()),
        )
            .prop_map(|(canary, baseline)| LatencyIncrement { canary, baseline }),
        1..8,
    )
}

fn cumulative_buckets(per_bucket: &[u64]) -> Vec<HistogramBucket> {
    let mut running = 0u64;
    BOUNDS
        .iter()
        .zip(per_bucket)
        .map(|(le, count)| {
            running += count;
            HistogramBucket {
                le: *le,
                count: running as f64,
            }
        })
        .collect()
}

fn latency_ticks(trace: &[LatencyIncrement]) -> Vec<Tick> {
    let mut canary = vec![0u64; BOUNDS.len()];
    let mut baseline = vec![0u64; BOUNDS.len()];
    trace
        .iter()
        .enumerate()
        .map(|(i, inc)| {
            for (total, add) in canary.iter_mut().zip(&inc.canary) {
                *total += add;
            }
            for (total, add) in baseline.iter_mut().zip(&inc.baseline) {
                *total += add;
            }
            let reading = Reading::Observed(CheckObservation::Histogram {
                canary: cumulative_buckets(&canary),
                baseline: cumulative_buckets(&baseline).into(),
            });
            tick_at(i, reading, "latency")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Judging.

/// Every assessment of one analysed step over `ticks`: mid-step after each tick, then at the
/// step's end.
fn judge(policy: &Policy, ticks: &[Tick]) -> Vec<Assessment> {
    judge_keeping_state(policy, ticks).0
}

/// [`judge`], and the judge's state after the last tick.
fn judge_keeping_state(policy: &Policy, ticks: &[Tick]) -> (Vec<Assessment>, JudgeState) {
    let judge = Judge::new(
        policy,
        JudgeConfig {
            sample_test_looks: 1,
        },
    )
    .unwrap();
    let mut state = judge.start();
    judge.begin_step(&mut state);
    let mut assessments = Vec::new();
    for tick in ticks {
        judge.observe(&mut state, tick).unwrap();
        assessments.push(judge.assess(&mut state, Moment::MidStep).unwrap());
    }
    assessments.push(judge.assess(&mut state, Moment::StepEnd).unwrap());
    (assessments, state)
}

/// Asserts that no assessment of `worse` is better than the matching one of `better`, per
/// criterion and overall.
fn never_better(worse: &[Assessment], better: &[Assessment]) -> Result<(), TestCaseError> {
    prop_assert_eq!(worse.len(), better.len());
    for (i, (w, b)) in worse.iter().zip(better).enumerate() {
        prop_assert!(
            rank(w.verdict) <= rank(b.verdict),
            "assessment {}: overall {} with the worse data, {} without\nworse: {:#?}\nbetter: {:#?}",
            i,
            w.verdict,
            b.verdict,
            w,
            b
        );
        for (wc, bc) in w.checks.iter().zip(&b.checks) {
            prop_assert!(
                rank(wc.verdict) <= rank(bc.verdict),
                "assessment {}: {} is {} with the worse data, {} without\nworse: {:#?}\nbetter: {:#?}",
                i,
                wc.name,
                wc.verdict,
                bc.verdict,
                wc,
                bc
            );
        }
    }
    Ok(())
}

/// Per criterion, the cumulative totals the judge holds (read from the state as it is
/// saved: the memory's own fields are private to the judge).
fn held_totals(state: &JudgeState) -> Vec<String> {
    state
        .criteria
        .iter()
        .map(|criterion| {
            let memory = serde_json::to_value(&criterion.memory).unwrap();
            format!(
                "{}: canary {} baseline {}",
                criterion.name, memory["canary"], memory["baseline"]
            )
        })
        .collect()
}

/// The comparison's e-value as the evidence stands at the end (a latched failure's evidence
/// is frozen; this is the live one), from the e-process in the saved state.
fn live_e_value(policy: &Policy, state: &JudgeState) -> f64 {
    let spec = policy.checks[0].baseline.expect("a comparison");
    let test = RateRatioTest::new(spec.max_increase).unwrap();
    let comparison = state
        .criteria
        .iter()
        .map(|c| serde_json::to_value(&c.memory).unwrap())
        .find(|memory| memory["memory"] == "error-rate-comparison")
        .expect("the comparison's state");
    let process: RateRatioState = serde_json::from_value(comparison["test"].clone()).unwrap();
    test.e_value(&process)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Turning canary successes into errors, in any tick, never improves any verdict.
    #[test]
    fn more_canary_errors_never_make_a_verdict_better(
        knobs in error_rate_policy(),
        trace in error_trace(),
        at in any::<prop::sample::Index>(),
        share in 0.0f64..=1.0,
    ) {
        let policy = knobs.policy();
        let k = at.index(trace.len());
        let mut worse = trace.clone();
        let room = worse[k].canary - worse[k].canary_errors;
        worse[k].canary_errors += ((room as f64 * share).ceil() as u64).min(room);
        never_better(&judge(&policy, &error_ticks(&worse)), &judge(&policy, &error_ticks(&trace)))?;
    }

    /// Baseline requests without errors, added in any tick, never improve the canary's
    /// verdicts (the baseline served requests from the first tick on: with no baseline at
    /// all the comparison has no data, which is not a verdict on the canary).
    #[test]
    fn more_error_free_baseline_requests_never_make_a_verdict_better(
        knobs in error_rate_policy(),
        trace in error_trace(),
        at in any::<prop::sample::Index>(),
        extra in 1u64..50_000,
    ) {
        let mut trace = trace;
        trace[0].baseline = trace[0].baseline.max(1);
        let policy = knobs.policy();
        let k = at.index(trace.len());
        let mut worse = trace.clone();
        worse[k].baseline += extra;
        never_better(&judge(&policy, &error_ticks(&worse)), &judge(&policy, &error_ticks(&trace)))?;
    }

    /// Canary requests moved to a slower bucket, in any tick, never improve any verdict,
    /// whether the comparison's slow bound comes from the policy or from the baseline.
    #[test]
    fn slower_canary_requests_never_make_a_verdict_better(
        slow_above in any::<bool>(),
        rollback_above in any::<bool>(),
        trace in latency_trace(),
        at in any::<prop::sample::Index>(),
        from in 0usize..BOUNDS.len() - 1,
        jump in 1usize..BOUNDS.len(),
        share in 0.0f64..=1.0,
    ) {
        let policy = latency_policy(slow_above, rollback_above);
        let k = at.index(trace.len());
        let to = (from + jump).min(BOUNDS.len() - 1);
        let mut worse = trace.clone();
        let moved = ((worse[k].canary[from] as f64 * share).ceil() as u64).min(worse[k].canary[from]);
        worse[k].canary[from] -= moved;
        worse[k].canary[to] += moved;
        never_better(&judge(&policy, &latency_ticks(&worse)), &judge(&policy, &latency_ticks(&trace)))?;
    }

    /// The same cumulative traffic read in more ticks (any tick split in two, anyhow) ends
    /// with the same totals in every criterion's evidence.
    #[test]
    fn split_ticks_give_the_same_final_totals(
        knobs in error_rate_policy(),
        trace in error_trace(),
        cuts in prop::collection::vec((any::<bool>(), 0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..=1.0), 10),
    ) {
        let policy = knobs.policy();
        let mut split = Vec::new();
        for (inc, (cut, c, ce, b, be)) in trace.iter().zip(&cuts) {
            if !cut {
                split.push(*inc);
                continue;
            }
            let (first, second) = split_increment(*inc, *c, *ce, *b, *be);
            split.push(first);
            split.push(second);
        }
        let (whole, whole_state) = judge_keeping_state(&policy, &error_ticks(&trace));
        let (parts, parts_state) = judge_keeping_state(&policy, &error_ticks(&split));
        let (whole, parts) = (whole.last().unwrap(), parts.last().unwrap());
        // Looking more often may fail sooner (and freeze that evidence), never later.
        for (w, p) in whole.checks.iter().zip(&parts.checks) {
            if w.verdict == Verdict::Fail || p.verdict == Verdict::Fail {
                continue;
            }
            prop_assert_eq!(
                [w.evidence.canary_n, w.evidence.canary_events, w.evidence.baseline_n, w.evidence.baseline_events],
                [p.evidence.canary_n, p.evidence.canary_events, p.evidence.baseline_n, p.evidence.baseline_events],
                "{}", w.name
            );
        }
        prop_assert_eq!(held_totals(&whole_state), held_totals(&parts_state));
    }

    /// While the canary's share of traffic is steady, splitting ticks changes nothing the
    /// comparison knows: the e-value is the same (to rounding), however the errors fall
    /// between the two halves.
    #[test]
    fn split_ticks_at_a_steady_share_give_the_same_e_value(
        knobs in error_rate_policy(),
        trace in error_trace(),
        cuts in prop::collection::vec((any::<bool>(), 0.0f64..=1.0, 0.0f64..=1.0), 10),
    ) {
        let policy = knobs.policy();
        // Even request counts, so that halves keep the tick's share exactly.
        let trace: Vec<Increment> = trace
            .iter()
            .map(|inc| Increment {
                canary: inc.canary * 2,
                canary_errors: inc.canary_errors,
                baseline: inc.baseline * 2,
                baseline_errors: inc.baseline_errors,
            })
            .collect();
        let mut split = Vec::new();
        for (inc, (cut, ce, be)) in trace.iter().zip(&cuts) {
            if !cut {
                split.push(*inc);
                continue;
            }
            let (first, second) = split_increment(*inc, 0.5, *ce, 0.5, *be);
            split.push(first);
            split.push(second);
        }
        let (whole, whole_state) = judge_keeping_state(&policy, &error_ticks(&trace));
        let (parts, parts_state) = judge_keeping_state(&policy, &error_ticks(&split));
        // What fails when looked at less often fails when looked at more often.
        let failed = |a: &[Assessment]| {
            a.last().unwrap().checks.iter().any(|c| c.name == "errors/baseline" && c.verdict == Verdict::Fail)
        };
        prop_assert!(!failed(&whole) || failed(&parts));
        let (a, b) = (live_e_value(&policy, &whole_state), live_e_value(&policy, &parts_state));
        let close = if a.is_finite() && b.is_finite() {
            (a.ln() - b.ln()).abs() <= 1e-9 * a.ln().abs().max(1.0)
        } else {
            a == b
        };
        prop_assert!(close, "e-value {} in whole ticks, {} in split ones", a, b);
    }

    /// A judge state written out mid-step (as the rollout state file holds it) and read back
    /// judges the rest of the trace exactly as if it had never been saved.
    #[test]
    fn a_saved_state_judges_on_exactly_as_the_live_one(
        knobs in error_rate_policy(),
        trace in error_trace(),
        latency in latency_trace(),
        at in any::<prop::sample::Index>(),
    ) {
        for (policy, ticks) in [
            (knobs.policy(), error_ticks(&trace)),
            (latency_policy(false, true), latency_ticks(&latency)),
        ] {
            let judge = Judge::new(&policy, JudgeConfig { sample_test_looks: 1 }).unwrap();
            let k = at.index(ticks.len());
            let mut live = judge.start();
            judge.begin_step(&mut live);
            let mut resumed: Option<JudgeState> = None;
            for (i, tick) in ticks.iter().enumerate() {
                judge.observe(&mut live, tick).unwrap();
                let live_assessment = judge.assess(&mut live, Moment::MidStep).unwrap();
                if let Some(state) = resumed.as_mut() {
                    judge.observe(state, tick).unwrap();
                    let resumed_assessment = judge.assess(state, Moment::MidStep).unwrap();
                    prop_assert_eq!(&resumed_assessment, &live_assessment);
                }
                if i == k {
                    let saved = serde_json::to_string(&live).unwrap();
                    resumed = Some(serde_json::from_str(&saved).unwrap_or_else(|e| {
                        panic!("a saved judge state does not read back: {e}\n{saved}")
                    }));
                }
            }
            let mut resumed = resumed.expect("saved at one of the ticks");
            prop_assert_eq!(
                judge.assess(&mut resumed, Moment::StepEnd).unwrap(),
                judge.assess(&mut live, Moment::StepEnd).unwrap()
            );
        }
    }
}

/// Splits one increment into two whose sum is it: requests by the fractions `c` and `b`,
/// errors by `ce` and `be` of what each half can hold.
fn split_increment(inc: Increment, c: f64, ce: f64, b: f64, be: f64) -> (Increment, Increment) {
    let part = |total: u64, share: f64| ((total as f64 * share).round() as u64).min(total);
    let errors = |errors: u64, first: u64, second: u64, share: f64| {
        // The first half takes between max(0, errors − second) and min(errors, first).
        let low = errors.saturating_sub(second);
        let high = errors.min(first);
        low + part(high - low, share)
    };
    let c1 = part(inc.canary, c);
    let b1 = part(inc.baseline, b);
    let ce1 = errors(inc.canary_errors, c1, inc.canary - c1, ce);
    let be1 = errors(inc.baseline_errors, b1, inc.baseline - b1, be);
    (
        Increment {
            canary: c1,
            canary_errors: ce1,
            baseline: b1,
            baseline_errors: be1,
        },
        Increment {
            canary: inc.canary - c1,
            canary_errors: inc.canary_errors - ce1,
            baseline: inc.baseline - b1,
            baseline_errors: inc.baseline_errors - be1,
        },
    )
}
