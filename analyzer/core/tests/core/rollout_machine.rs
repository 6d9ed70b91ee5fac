//! Every transition of the rollout state machine, as plain tests: no tokio, no I/O, the
//! machine driven directly with `mk_*` builders.

use std::collections::BTreeMap;

use canary_core::ExitCode;
use canary_core::judge::Verdict;
use canary_core::observation::{CheckObservation, Reading, RequestCounts, Tick};
use canary_core::policy::{HookEvent, Policy};
use canary_core::report::RunVerdict;
use canary_core::rollout::{
    ControlAction, ControlRequest, Effect, Event, Machine, Phase, PromotionStage, RollbackCause,
    Rollout,
};
use jiff::{SignedDuration, Timestamp};

const BASE: &str = r#"
service: checkout
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout:
  steps: [10, 25, 50, 100]
  step-duration: 5m
  max-step-duration: 10m
  interval: 30s
  min-requests: 100
  alpha: 1%
checks:
  - name: errors
    error-rate: {requests: http_requests_total, errors: 'code=~"5.."'}
    slo: {max: 5%}
    baseline: {max-increase: 0%}
"#;

/// The base policy with `extra` lines added to its `rollout` section, or, when `extra` sets
/// `min-requests`, with that value replacing the base's.
fn mk_policy(extra: &str) -> Policy {
    let text = if let Some(value) = extra.trim().strip_prefix("min-requests:") {
        BASE.replace(
            "min-requests: 100",
            &format!("min-requests: {}", value.trim()),
        )
    } else {
        BASE.replace("  alpha: 1%\n", &format!("  alpha: 1%\n{extra}"))
    };
    Policy::from_yaml(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn t0() -> Timestamp {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

/// A tick whose cumulative counts are `canary` and `baseline` (requests, errors).
fn mk_tick(seconds: i64, canary: (f64, f64), baseline: (f64, f64)) -> Tick {
    let mut readings = BTreeMap::new();
    readings.insert(
        "errors".to_owned(),
        Reading::Observed(CheckObservation::Counts {
            canary: RequestCounts {
                requests: canary.0,
                errors: canary.1,
            },
            baseline: RequestCounts {
                requests: baseline.0,
                errors: baseline.1,
            }
            .into(),
        }),
    );
    Tick {
        at: at(seconds),
        window_seconds: seconds as f64,
        readings,
        warnings: Vec::new(),
    }
}

fn mk_nodata_tick(seconds: i64) -> Tick {
    let mut readings = BTreeMap::new();
    readings.insert(
        "errors".to_owned(),
        Reading::NoData {
            reason: "empty vector".to_owned(),
        },
    );
    Tick {
        at: at(seconds),
        window_seconds: seconds as f64,
        readings,
        warnings: Vec::new(),
    }
}

fn kinds(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Persist => "persist".to_owned(),
            Effect::Notify(n) => format!("notify:{}", n.kind),
            Effect::RunHooks { event, .. } => format!("hooks:{event:?}"),
            Effect::SetWeight(w) => format!("set:{w}"),
            Effect::SetRoute(route) => format!("route:{}", route.kind()),
            Effect::Wait(_) => "wait".to_owned(),
            Effect::ReadWeight => "read-weight".to_owned(),
            Effect::Read { .. } => "read".to_owned(),
            Effect::Preflight => "preflight".to_owned(),
            Effect::Promote { stage, .. } => format!("promote:{stage:?}"),
            Effect::Finish(o) => format!("finish:{}", o.exit.code()),
        })
        .collect()
}

/// The pre-flight passed (no Kubernetes promotion to learn about).
fn preflight_ok() -> Event {
    Event::PreflightPassed {
        canary_generation: None,
    }
}

/// The metrics read for a tick.
fn observed(tick: Tick) -> Event {
    Event::Observed {
        tick,
        checkpoint: None,
    }
}

/// The rollout with its saved JSON changed by `edit`: what a state file edited by hand (or
/// written by another version) looks like when it is loaded.
fn edited(rollout: &Rollout, edit: impl FnOnce(&mut serde_json::Value)) -> Rollout {
    let mut json = serde_json::to_value(rollout).unwrap();
    edit(&mut json);
    Rollout::from_json(json.to_string().as_bytes()).unwrap()
}

/// `rollout` saved in `phase`.
fn in_phase(rollout: &Rollout, phase: Phase) -> Rollout {
    edited(rollout, |json| {
        json["phase"] = serde_json::to_value(phase).unwrap();
    })
}

/// The timer fires at `now` and the router reads back the weight the rollout set: the
/// machine then asks for the metrics.
fn timer(machine: &Machine, rollout: &mut Rollout, now: Timestamp) -> Vec<Effect> {
    let effects = machine.handle(rollout, Event::TimerFired, now);
    if effects != vec![Effect::ReadWeight] {
        return effects;
    }
    let weight = rollout.current_weight();
    machine.handle(rollout, Event::WeightRead(weight), now)
}

fn hooks_ok(event: HookEvent) -> Event {
    Event::HooksRan {
        event,
        failed: Vec::new(),
    }
}

/// A machine and a rollout brought to the first analysed tick of step 0 (weight 10).
fn mk_running(extra: &str) -> (Machine, Rollout) {
    let machine = Machine::new(mk_policy(extra)).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    machine.handle(&mut rollout, Event::WeightSet(10), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), t0());
    (machine, rollout)
}

/// Feeds healthy cumulative ticks every 30 s from `from` to `to` seconds, at `rps` in all
/// with the canary at `share`; returns the effects of the last one. Counts continue from
/// `base` totals.
fn feed_healthy(
    machine: &Machine,
    rollout: &mut Rollout,
    from: i64,
    to: i64,
    share: f64,
    base: &mut (f64, f64),
) -> Vec<Effect> {
    let mut last = Vec::new();
    let mut t = from;
    while t <= to {
        base.0 += 30.0 * 20.0 * share;
        base.1 += 30.0 * 20.0 * (1.0 - share);
        let tick = mk_tick(t, (base.0, base.0 * 0.01), (base.1, base.1 * 0.01));
        timer(machine, rollout, at(t));
        last = machine.handle(rollout, observed(tick), at(t));
        t += 30;
    }
    last
}

#[test]
fn starting_runs_the_before_hooks_then_sets_the_first_weight() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let mut rollout = machine.start(t0(), None);
    let effects = machine.handle(&mut rollout, Event::Resume, t0());
    assert_eq!(
        kinds(&effects),
        ["preflight"],
        "nothing changes before the pre-flight"
    );
    let effects = machine.handle(&mut rollout, preflight_ok(), t0());
    assert_eq!(
        kinds(&effects),
        ["persist", "notify:started", "hooks:Before"]
    );
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    assert_eq!(kinds(&effects), ["persist", "set:10"]);
    assert!(matches!(
        rollout.phase(),
        Phase::Step {
            index: 0,
            weight: 10,
            weight_set: false,
            ..
        }
    ));
}

#[test]
fn a_confirmed_weight_starts_the_step_and_its_clock() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    let effects = machine.handle(&mut rollout, Event::WeightSet(10), at(2));
    assert_eq!(kinds(&effects), ["persist", "notify:step", "hooks:Step"]);
    assert!(
        matches!(rollout.phase(), Phase::Step { weight_set: true, started_at: Some(s), .. } if *s == at(2))
    );
    assert_eq!(rollout.steps().len(), 1);
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(2));
    assert_eq!(effects.last(), Some(&Effect::Wait(at(32))));
}

/// A router that can only approximate the weight (replica counts) says what it achieved:
/// the step is the weight asked for, and its record and notice carry the achieved share.
#[test]
fn an_approximated_weight_records_and_announces_the_share_achieved() {
    use canary_core::ports::AchievedShare;
    let machine = Machine::new(mk_policy("")).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    let achieved = AchievedShare {
        canary_ready: 1,
        stable_ready: 7,
    };
    let effects = machine.handle(
        &mut rollout,
        Event::WeightAchieved {
            weight: 10,
            achieved,
        },
        at(2),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:step", "hooks:Step"]);
    let Some(Effect::Notify(notice)) = effects.get(1) else {
        panic!("{effects:?}")
    };
    assert_eq!(
        notice.message,
        "step 1/3: canary at 10 % asked, 1 of 8 ready pods = 12.5 % achieved"
    );
    assert_eq!(rollout.steps()[0].weight, 10);
    assert_eq!(rollout.steps()[0].achieved, Some(achieved));
    let json = serde_json::to_value(&rollout.steps()[0]).unwrap();
    assert_eq!(json["achieved"]["canaryReady"], 1);
    // Routers that split exactly leave the record as it always was.
    let (_, running) = mk_running("");
    let json = serde_json::to_value(&running.steps()[0]).unwrap();
    assert!(json.get("achieved").is_none(), "{json}");
}

#[test]
fn a_timer_asks_for_a_read_since_the_rollout_started() {
    let (machine, mut rollout) = mk_running("");
    let effects = machine.handle(&mut rollout, Event::TimerFired, at(30));
    assert_eq!(
        effects,
        vec![Effect::ReadWeight],
        "the weight is read back first"
    );
    let effects = machine.handle(&mut rollout, Event::WeightRead(10), at(30));
    assert_eq!(effects, vec![Effect::Read { since: t0() }]);
}

#[test]
fn a_healthy_tick_mid_step_waits_for_the_next() {
    let (machine, mut rollout) = mk_running("");
    let effects = machine.handle(
        &mut rollout,
        observed(mk_tick(30, (60.0, 0.0), (540.0, 5.0))),
        at(30),
    );
    assert_eq!(kinds(&effects), ["notify:tick", "persist", "wait"]);
    assert_eq!(rollout.timeline().len(), 1);
}

#[test]
fn a_failing_tick_rolls_back_mid_step_and_exits_1() {
    let (machine, mut rollout) = mk_running("");
    // 30 % canary errors against 1 % baseline: far past 5 % and far past the baseline.
    let effects = machine.handle(
        &mut rollout,
        observed(mk_tick(60, (200.0, 60.0), (1800.0, 18.0))),
        at(60),
    );
    assert_eq!(
        kinds(&effects),
        ["notify:tick", "persist", "notify:rolling-back", "set:0"]
    );
    assert!(matches!(
        rollout.phase(),
        Phase::RollingBack {
            cause: RollbackCause::Failed,
            ..
        }
    ));
    assert_eq!(rollout.decided_at(), Some(at(60)));
    assert_eq!(rollout.steps()[0].decision, "rollback");
    let effects = machine.handle(&mut rollout, Event::WeightSet(0), at(61));
    assert_eq!(
        kinds(&effects),
        ["persist", "notify:rolled-back", "hooks:Rollback"]
    );
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Rollback), at(61));
    assert_eq!(kinds(&effects), ["persist", "finish:1"]);
    assert_eq!(rollout.outcome().unwrap().verdict, RunVerdict::Fail);
}

#[test]
fn a_healthy_canary_advances_through_every_step_and_is_promoted() {
    let (machine, mut rollout) = mk_running("");
    let mut totals = (0.0, 0.0);
    let effects = feed_healthy(&machine, &mut rollout, 30, 300, 0.10, &mut totals);
    assert_eq!(kinds(&effects), ["notify:tick", "persist", "set:25"]);
    machine.handle(&mut rollout, Event::WeightSet(25), at(301));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(301));
    let effects = feed_healthy(&machine, &mut rollout, 331, 601, 0.25, &mut totals);
    assert_eq!(kinds(&effects), ["notify:tick", "persist", "set:50"]);
    machine.handle(&mut rollout, Event::WeightSet(50), at(602));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(602));
    let effects = feed_healthy(&machine, &mut rollout, 632, 902, 0.50, &mut totals);
    assert_eq!(
        kinds(&effects),
        ["notify:tick", "persist", "set:100"],
        "reaching 100 is the promotion"
    );
    assert!(matches!(rollout.phase(), Phase::Promoting));
    let effects = machine.handle(&mut rollout, Event::WeightSet(100), at(903));
    assert_eq!(
        kinds(&effects),
        ["persist", "notify:promoted", "hooks:Promote"]
    );
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Promote), at(903));
    assert_eq!(kinds(&effects), ["persist", "finish:0"]);
    let weights: Vec<u8> = rollout.weights().iter().map(|w| w.weight).collect();
    assert_eq!(weights, [10, 25, 50, 100]);
    let decisions: Vec<&str> = rollout
        .steps()
        .iter()
        .map(|s| s.decision.as_str())
        .collect();
    assert_eq!(decisions, ["advance", "advance", "promote"]);
}

#[test]
fn missing_data_at_the_step_end_extends_then_rolls_back_with_exit_3() {
    let (machine, mut rollout) = mk_running("");
    let mut t = 30;
    let mut saw_extension = false;
    loop {
        timer(&machine, &mut rollout, at(t));
        let effects = machine.handle(&mut rollout, observed(mk_nodata_tick(t)), at(t));
        let k = kinds(&effects);
        assert!(
            !k.contains(&"set:25".to_owned()),
            "never advances on missing data"
        );
        saw_extension |= k.contains(&"notify:extended".to_owned());
        if k.contains(&"set:0".to_owned()) {
            break;
        }
        t += 30;
        assert!(t <= 700, "should have given up at the 10-minute limit");
    }
    assert!(saw_extension);
    assert!(t >= 600, "not before the limit: {t}");
    assert!(matches!(
        rollout.phase(),
        Phase::RollingBack {
            cause: RollbackCause::Inconclusive,
            ..
        }
    ));
    machine.handle(&mut rollout, Event::WeightSet(0), at(t + 1));
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Rollback), at(t + 1));
    assert_eq!(kinds(&effects), ["persist", "finish:3"]);
}

#[test]
fn too_few_requests_is_not_enough_to_advance() {
    let (machine, mut rollout) = mk_running("  min-requests: 1000000\n");
    let mut totals = (0.0, 0.0);
    let effects = feed_healthy(&machine, &mut rollout, 30, 300, 0.10, &mut totals);
    let k = kinds(&effects);
    assert!(k.contains(&"notify:extended".to_owned()), "{k:?}");
    assert!(!k.iter().any(|e| e.starts_with("set:")), "{k:?}");
}

#[test]
fn hold_stops_where_it_stands_and_a_manual_promote_finishes_it() {
    let (machine, mut rollout) = mk_running("  on-inconclusive: hold\n");
    let mut t = 30;
    let effects = loop {
        timer(&machine, &mut rollout, at(t));
        let effects = machine.handle(&mut rollout, observed(mk_nodata_tick(t)), at(t));
        if effects.iter().any(|e| matches!(e, Effect::Finish(_))) {
            break effects;
        }
        t += 30;
    };
    assert_eq!(kinds(&effects).last().unwrap(), "finish:3");
    assert!(matches!(rollout.phase(), Phase::Held { weight: 10, .. }));
    // A rerun of `canary rollout` checks the gateway, then reports the hold again.
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::Resume, at(t + 5))),
        ["read-weight"]
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::WeightRead(10), at(t + 5))),
        ["finish:3"]
    );
    let effects = machine.handle(&mut rollout, Event::ManualPromote, at(t + 10));
    assert_eq!(kinds(&effects), ["persist", "notify:promoting", "set:100"]);
}

#[test]
fn unreadable_metrics_wait_then_fail_with_exit_4_and_resume_where_they_were() {
    let (machine, mut rollout) = mk_running("  max-failed-ticks: 2\n");
    machine.handle(
        &mut rollout,
        observed(mk_tick(30, (60.0, 0.0), (540.0, 5.0))),
        at(30),
    );
    let effects = machine.handle(
        &mut rollout,
        Event::ReadFailed("connection refused".to_owned()),
        at(60),
    );
    assert_eq!(kinds(&effects), ["notify:tick", "persist", "wait"]);
    let effects = machine.handle(
        &mut rollout,
        Event::ReadFailed("connection refused".to_owned()),
        at(90),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:failed", "finish:4"]);
    assert!(matches!(rollout.phase(), Phase::Failed { .. }));
    // A rerun picks the step up again, with its evidence.
    let ticks_before = rollout.judge().ticks;
    let effects = machine.handle(&mut rollout, Event::Resume, at(200));
    assert_eq!(kinds(&effects), ["persist", "wait"]);
    assert!(matches!(
        rollout.phase(),
        Phase::Step {
            index: 0,
            weight_set: true,
            ..
        }
    ));
    assert_eq!(rollout.judge().ticks, ticks_before);
}

#[test]
fn unreadable_metrics_roll_back_with_exit_4_when_the_policy_says_so() {
    let (machine, mut rollout) =
        mk_running("  max-failed-ticks: 2\n  on-metrics-unavailable: rollback\n");
    let effects = machine.handle(
        &mut rollout,
        Event::ReadFailed("connection refused".to_owned()),
        at(30),
    );
    assert_eq!(kinds(&effects), ["notify:tick", "persist", "wait"]);
    let effects = machine.handle(
        &mut rollout,
        Event::ReadFailed("connection refused".to_owned()),
        at(60),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:rolling-back", "set:0"]);
    machine.handle(&mut rollout, Event::WeightSet(0), at(61));
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Rollback), at(61));
    assert_eq!(kinds(&effects), ["persist", "finish:4"]);
    let outcome = rollout.outcome().unwrap();
    assert_eq!(
        outcome.verdict,
        RunVerdict::Error,
        "not judged worse: not seen"
    );
    assert!(
        outcome
            .reason
            .contains("could not be read 2 times in a row")
            && outcome.reason.contains("on-metrics-unavailable: rollback"),
        "{}",
        outcome.reason
    );
    assert!(matches!(
        rollout.phase(),
        Phase::RolledBack {
            cause: RollbackCause::MetricsUnavailable,
            ..
        }
    ));
}

#[test]
fn a_router_failure_stops_with_exit_4_and_a_rerun_sets_the_weight_again() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    let effects = machine.handle(
        &mut rollout,
        Event::RouterFailed("socket gone".to_owned()),
        at(1),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:failed", "finish:4"]);
    let effects = machine.handle(&mut rollout, Event::Resume, at(100));
    assert_eq!(kinds(&effects), ["persist", "set:10"]);
}

#[test]
fn a_failing_before_hook_rolls_back() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    let effects = machine.handle(
        &mut rollout,
        Event::HooksRan {
            event: HookEvent::Before,
            failed: vec![("smoke".to_owned(), "exit 1".to_owned())],
        },
        at(1),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:rolling-back", "set:0"]);
    assert!(matches!(
        rollout.phase(),
        Phase::RollingBack {
            cause: RollbackCause::Hook,
            ..
        }
    ));
}

#[test]
fn an_interrupt_leaves_the_weight_by_default_and_exits_130() {
    let (machine, mut rollout) = mk_running("");
    let before = rollout.phase().clone();
    let effects = machine.handle(&mut rollout, Event::Interrupted, at(40));
    assert_eq!(
        kinds(&effects),
        ["persist", "notify:interrupted", "finish:130"]
    );
    assert_eq!(rollout.phase(), &before, "left where it stands");
}

#[test]
fn an_interrupt_rolls_back_when_the_policy_says_so() {
    let (machine, mut rollout) = mk_running("  on-interrupt: rollback\n");
    let effects = machine.handle(&mut rollout, Event::Interrupted, at(40));
    assert_eq!(kinds(&effects), ["persist", "notify:rolling-back", "set:0"]);
    machine.handle(&mut rollout, Event::WeightSet(0), at(41));
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Rollback), at(41));
    assert_eq!(kinds(&effects), ["persist", "finish:130"]);
    assert_eq!(rollout.outcome().unwrap().verdict, RunVerdict::Interrupted);
}

#[test]
fn an_interrupt_is_the_verdict_interrupted_not_inconclusive() {
    let (machine, mut rollout) = mk_running("");
    let effects = machine.handle(&mut rollout, Event::Interrupted, at(40));
    let Some(Effect::Finish(outcome)) = effects.last() else {
        panic!("{effects:?}");
    };
    assert_eq!(outcome.exit, ExitCode::Interrupted);
    assert_eq!(outcome.verdict, RunVerdict::Interrupted);
}

#[test]
fn a_before_hook_that_cannot_start_stops_with_exit_2_before_any_weight() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    let effects = machine.handle(
        &mut rollout,
        Event::HookUnstartable {
            event: HookEvent::Before,
            hooks: vec![("smoke".to_owned(), "no such file".to_owned())],
        },
        t0(),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:failed", "finish:2"]);
    let outcome = rollout.outcome().unwrap();
    assert_eq!(outcome.verdict, RunVerdict::Error);
    assert!(
        outcome.reason.contains("configuration error"),
        "{}",
        outcome.reason
    );
    assert!(rollout.weights().is_empty(), "no weight moved");
}

#[test]
fn a_step_hook_that_cannot_start_rolls_back_with_exit_4() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    machine.handle(&mut rollout, Event::WeightSet(10), t0());
    let effects = machine.handle(
        &mut rollout,
        Event::HookUnstartable {
            event: HookEvent::Step,
            hooks: vec![("smoke".to_owned(), "no such file".to_owned())],
        },
        t0(),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:rolling-back", "set:0"]);
    machine.handle(&mut rollout, Event::WeightSet(0), at(1));
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Rollback), at(1));
    assert_eq!(kinds(&effects), ["persist", "finish:4"]);
    let outcome = rollout.outcome().unwrap();
    assert_eq!(outcome.verdict, RunVerdict::Error, "not a failed canary");
    assert_eq!(outcome.exit, ExitCode::Infrastructure);
}

#[test]
fn abort_rolls_back_with_exit_1() {
    let (machine, mut rollout) = mk_running("");
    let effects = machine.handle(
        &mut rollout,
        Event::ManualAbort("by alice".to_owned()),
        at(40),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:rolling-back", "set:0"]);
    machine.handle(&mut rollout, Event::WeightSet(0), at(41));
    assert_eq!(rollout.outcome().unwrap().exit, ExitCode::Failed);
}

#[test]
fn resume_reissues_what_each_phase_waits_for() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let rollout = machine.start(t0(), None);
    let mut rollout = in_phase(
        &rollout,
        Phase::Step {
            index: 1,
            weight: 25,
            weight_set: false,
            started_at: None,
            extended: false,
        },
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::Resume, t0())),
        ["set:25"]
    );
    let mut rollout = in_phase(&rollout, Phase::Promoting);
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::Resume, t0())),
        ["set:100"]
    );
    let mut rollout = in_phase(
        &rollout,
        Phase::RollingBack {
            cause: RollbackCause::Failed,
            reason: "x".to_owned(),
        },
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::Resume, t0())),
        ["set:0"]
    );
    let rollout = in_phase(
        &rollout,
        Phase::Step {
            index: 1,
            weight: 25,
            weight_set: true,
            started_at: Some(t0()),
            extended: false,
        },
    );
    let mut rollout = edited(&rollout, |json| {
        json["next_tick_at"] = serde_json::to_value(at(30)).unwrap();
    });
    assert_eq!(
        machine.handle(&mut rollout, Event::Resume, at(10)),
        vec![Effect::Wait(at(30))]
    );
}

#[test]
fn a_finished_rollout_reports_its_outcome_again() {
    let (machine, mut rollout) = mk_running("");
    machine.handle(&mut rollout, Event::ManualAbort("x".to_owned()), at(40));
    machine.handle(&mut rollout, Event::WeightSet(0), at(41));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Rollback), at(41));
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::Resume, at(100))),
        ["read-weight"]
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::WeightRead(0), at(100))),
        ["finish:1"]
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::ManualPromote, at(100))),
        ["finish:1"]
    );
}

#[test]
fn a_changed_policy_cannot_resume_a_rollout() {
    let (machine, rollout) = mk_running("");
    machine.validate(&rollout, at(1000)).unwrap();
    let other = Machine::new(mk_policy("  min-requests: 5\n")).unwrap();
    let err = other.validate(&rollout, at(1000)).unwrap_err();
    assert!(err.to_string().contains("policy changed"), "{err}");
}

#[test]
fn the_state_survives_a_round_trip_through_json() {
    let (machine, mut rollout) = mk_running("");
    machine.handle(
        &mut rollout,
        observed(mk_tick(30, (60.0, 1.0), (540.0, 5.0))),
        at(30),
    );
    let json = serde_json::to_string_pretty(&rollout).unwrap();
    let back: Rollout = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rollout);
}

#[test]
fn the_final_soak_judges_absolute_bounds_then_promotes() {
    let (machine, mut rollout) = mk_running("  final-soak: 2m\n");
    let mut totals = (0.0, 0.0);
    feed_healthy(&machine, &mut rollout, 30, 300, 0.10, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(25), at(301));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(301));
    feed_healthy(&machine, &mut rollout, 331, 601, 0.25, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(50), at(602));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(602));
    feed_healthy(&machine, &mut rollout, 632, 902, 0.50, &mut totals);
    let effects = machine.handle(&mut rollout, Event::WeightSet(100), at(903));
    assert_eq!(kinds(&effects), ["persist", "notify:step", "wait"]);
    assert!(matches!(rollout.phase(), Phase::Soak { .. }));
    let effects = feed_healthy(&machine, &mut rollout, 933, 1023, 1.0, &mut totals);
    assert_eq!(
        kinds(&effects),
        ["notify:tick", "persist", "notify:promoted", "hooks:Promote"]
    );
}

/// Top-level sections that give the base policy a gateway and a Kubernetes promotion.
const PROMOTION: &str = "gateway: {http-route: {name: checkout, stable: checkout-stable, canary: checkout-canary}}\n\
promotion: {kubernetes: {stable-deployment: checkout-stable, canary-deployment: checkout-canary}}\n";

/// A rollout with a Kubernetes promotion, run healthy up to the confirmation of 100 %.
fn mk_at_100_with_promotion(extra: &str) -> (Machine, Rollout, Vec<Effect>) {
    let (machine, mut rollout) = mk_running(&format!("{extra}{PROMOTION}"));
    let mut totals = (0.0, 0.0);
    feed_healthy(&machine, &mut rollout, 30, 300, 0.10, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(25), at(301));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(301));
    feed_healthy(&machine, &mut rollout, 331, 601, 0.25, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(50), at(602));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(602));
    feed_healthy(&machine, &mut rollout, 632, 902, 0.50, &mut totals);
    let effects = machine.handle(&mut rollout, Event::WeightSet(100), at(903));
    (machine, rollout, effects)
}

#[test]
fn a_kubernetes_promotion_copies_the_template_routes_back_and_scales_the_canary_down() {
    let (machine, mut rollout, effects) = mk_at_100_with_promotion("");
    assert_eq!(
        kinds(&effects),
        ["persist", "notify:finalizing", "promote:CopyToStable"],
        "passed at 100 %: the stable Deployment gets the canary's template first"
    );
    assert_eq!(rollout.phase().name(), "finalizing");
    assert!(rollout.outcome().is_none(), "not finished yet");
    let effects = machine.handle(
        &mut rollout,
        Event::PromotionDone(PromotionStage::CopyToStable),
        at(960),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:finalizing", "set:0"]);
    let effects = machine.handle(&mut rollout, Event::WeightSet(0), at(961));
    assert_eq!(kinds(&effects), ["persist", "promote:ScaleDownCanary"]);
    let effects = machine.handle(
        &mut rollout,
        Event::PromotionDone(PromotionStage::ScaleDownCanary),
        at(962),
    );
    assert_eq!(
        kinds(&effects),
        ["persist", "notify:promoted", "hooks:Promote"]
    );
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Promote), at(962));
    assert_eq!(kinds(&effects), ["persist", "finish:0"]);
    assert_eq!(rollout.phase(), &Phase::Promoted);
    let weights: Vec<u8> = rollout.weights().iter().map(|w| w.weight).collect();
    assert_eq!(
        weights,
        [10, 25, 50, 100, 0],
        "all traffic back on the stable Deployment"
    );
    assert_eq!(
        rollout.decided_at(),
        Some(at(903)),
        "decided when 100% passed"
    );
    let decisions: Vec<&str> = rollout
        .steps()
        .iter()
        .map(|s| s.decision.as_str())
        .collect();
    assert_eq!(decisions, ["advance", "advance", "promote"]);
}

#[test]
fn confirmations_out_of_order_are_asked_again() {
    let (machine, mut rollout, _) = mk_at_100_with_promotion("");
    let effects = machine.handle(
        &mut rollout,
        Event::PromotionDone(PromotionStage::ScaleDownCanary),
        at(960),
    );
    assert_eq!(kinds(&effects), ["promote:CopyToStable"]);
    let effects = machine.handle(&mut rollout, Event::WeightSet(100), at(960));
    assert_eq!(kinds(&effects), ["promote:CopyToStable"]);
}

#[test]
fn a_failed_promotion_stage_exits_4_and_a_rerun_redoes_that_stage() {
    let (machine, mut rollout, _) = mk_at_100_with_promotion("");
    let effects = machine.handle(
        &mut rollout,
        Event::PromotionFailed(
            "Deployment shop/checkout-stable did not roll out within 10m".to_owned(),
        ),
        at(1503),
    );
    assert_eq!(kinds(&effects), ["persist", "notify:failed", "finish:4"]);
    assert!(
        rollout
            .outcome()
            .unwrap()
            .reason
            .contains("the Kubernetes promotion failed: Deployment shop/checkout-stable"),
        "{:?}",
        rollout.outcome()
    );
    let effects = machine.handle(&mut rollout, Event::Resume, at(1600));
    assert_eq!(kinds(&effects), ["persist", "promote:CopyToStable"]);
    // The same from the second stage: its weight is set again.
    machine.handle(
        &mut rollout,
        Event::PromotionDone(PromotionStage::CopyToStable),
        at(1601),
    );
    machine.handle(
        &mut rollout,
        Event::RouterFailed("503".to_owned()),
        at(1602),
    );
    let effects = machine.handle(&mut rollout, Event::Resume, at(1700));
    assert_eq!(kinds(&effects), ["persist", "set:0"]);
}

#[test]
fn once_the_promotion_has_begun_nothing_rolls_back() {
    let (machine, mut rollout, _) = mk_at_100_with_promotion("  on-interrupt: rollback\n");
    let effects = machine.handle(
        &mut rollout,
        Event::ManualAbort("by alice".to_owned()),
        at(950),
    );
    assert_eq!(
        kinds(&effects),
        ["notify:finalizing", "promote:CopyToStable"],
        "the stable Deployment may already run the new template: the promotion goes on"
    );
    let effects = machine.handle(&mut rollout, Event::Interrupted, at(951));
    assert_eq!(
        kinds(&effects),
        ["persist", "notify:interrupted", "finish:130"]
    );
    assert!(matches!(
        rollout.phase(),
        Phase::Finalizing {
            stage: PromotionStage::CopyToStable
        }
    ));
    // Also after a failure midway.
    machine.handle(
        &mut rollout,
        Event::PromotionFailed("timeout".to_owned()),
        at(952),
    );
    let effects = machine.handle(
        &mut rollout,
        Event::ManualAbort("again".to_owned()),
        at(953),
    );
    assert!(
        !kinds(&effects).contains(&"set:0".to_owned()),
        "{:?}",
        kinds(&effects)
    );
}

#[test]
fn the_promotion_state_survives_a_round_trip_through_json() {
    let (_, rollout, _) = mk_at_100_with_promotion("");
    let json = serde_json::to_string(&rollout).unwrap();
    assert!(
        json.contains(r#""phase":"finalizing","stage":"copy-to-stable""#),
        "{json}"
    );
    let back: Rollout = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rollout);
}

#[test]
fn without_a_promotion_section_nothing_changes() {
    let (machine, mut rollout) = mk_running("");
    let mut totals = (0.0, 0.0);
    feed_healthy(&machine, &mut rollout, 30, 300, 0.10, &mut totals);
    machine.handle(&mut rollout, Event::ManualPromote, at(310));
    let effects = machine.handle(&mut rollout, Event::WeightSet(100), at(311));
    assert_eq!(
        kinds(&effects),
        ["persist", "notify:promoted", "hooks:Promote"]
    );
}

#[test]
fn hooks_asked_for_before_a_crash_run_again_on_resume() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    let effects = machine.handle(&mut rollout, Event::WeightSet(10), at(1));
    assert_eq!(kinds(&effects).last().unwrap(), "hooks:Step");
    // The process dies here, before the step's hooks report back; the state says so.
    let saved: Rollout = serde_json::from_str(&serde_json::to_string(&rollout).unwrap()).unwrap();
    let mut resumed = saved;
    assert_eq!(
        kinds(&machine.handle(&mut resumed, Event::Resume, at(50))),
        ["hooks:Step"]
    );
    let effects = machine.handle(&mut resumed, hooks_ok(HookEvent::Step), at(51));
    assert_eq!(kinds(&effects), ["persist", "wait"]);
    assert_eq!(resumed.hooks_pending(), None);
}

#[test]
fn promote_hooks_run_even_when_the_process_died_after_the_promotion() {
    let (machine, mut rollout) = mk_running("");
    let mut totals = (0.0, 0.0);
    feed_healthy(&machine, &mut rollout, 30, 300, 0.10, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(25), at(301));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(301));
    feed_healthy(&machine, &mut rollout, 331, 601, 0.25, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(50), at(602));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(602));
    feed_healthy(&machine, &mut rollout, 632, 902, 0.50, &mut totals);
    let effects = machine.handle(&mut rollout, Event::WeightSet(100), at(903));
    assert_eq!(kinds(&effects).last().unwrap(), "hooks:Promote");
    // Crash: a rerun runs the promote hooks, then finishes.
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::Resume, at(950))),
        ["hooks:Promote"]
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, hooks_ok(HookEvent::Promote), at(951))),
        ["persist", "finish:0"]
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::Resume, at(999))),
        ["read-weight"]
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::WeightRead(100), at(999))),
        ["finish:0"]
    );
}

#[test]
fn a_soak_without_canary_traffic_never_promotes() {
    let (machine, mut rollout) = mk_running("  final-soak: 2m\n");
    let mut totals = (0.0, 0.0);
    feed_healthy(&machine, &mut rollout, 30, 300, 0.10, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(25), at(301));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(301));
    feed_healthy(&machine, &mut rollout, 331, 601, 0.25, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(50), at(602));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(602));
    feed_healthy(&machine, &mut rollout, 632, 902, 0.50, &mut totals);
    machine.handle(&mut rollout, Event::WeightSet(100), at(903));
    // The counts stop growing: no traffic reaches the canary during the soak.
    let frozen = mk_tick(
        1030,
        (totals.0, totals.0 * 0.01),
        (totals.1, totals.1 * 0.01),
    );
    timer(&machine, &mut rollout, at(1030));
    let effects = machine.handle(&mut rollout, observed(frozen), at(1030));
    let k = kinds(&effects);
    assert!(
        !k.contains(&"notify:promoted".to_owned()),
        "promoted on old numbers: {k:?}"
    );
    assert!(k.contains(&"set:0".to_owned()), "{k:?}");
}

#[test]
fn a_state_without_its_outcome_reports_what_its_phase_says() {
    let machine = Machine::new(mk_policy("")).unwrap();
    let rollout = machine.start(t0(), None);
    let mut rollout = in_phase(
        &rollout,
        Phase::RolledBack {
            cause: RollbackCause::Failed,
            reason: "x".to_owned(),
        },
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::Resume, t0())),
        ["read-weight"]
    );
    assert_eq!(
        kinds(&machine.handle(&mut rollout, Event::WeightRead(0), t0())),
        ["finish:1"]
    );
}

#[test]
fn a_latency_quantile_beyond_the_last_finite_bucket_is_never_a_pass() {
    use canary_core::analysis::analyze;
    use canary_core::observation::HistogramBucket;
    let policy = Policy::from_yaml(
        r#"
service: latency
traffic: {label: version, canary: canary, baseline: stable}
metrics: {prometheus: {url: "http://localhost:9090"}}
rollout: {min-requests: 10}
checks:
  - name: p95
    latency: {histogram: http_request_duration_seconds}
    slo: {max: 20s}
"#,
        "latency.yaml",
    )
    .unwrap();
    // Every request slower than the last finite bucket (10 s): histogram_quantile answers
    // 10 s, below the 20 s bound, yet nothing says the p95 is within it.
    let buckets = |n: f64| {
        vec![
            HistogramBucket {
                le: 1.0,
                count: 0.0,
            },
            HistogramBucket {
                le: 10.0,
                count: 0.0,
            },
            HistogramBucket {
                le: f64::INFINITY,
                count: n,
            },
        ]
    };
    let mut readings = BTreeMap::new();
    readings.insert(
        "p95".to_owned(),
        Reading::Observed(CheckObservation::Histogram {
            canary: buckets(500.0),
            baseline: buckets(5000.0).into(),
        }),
    );
    let tick = Tick {
        at: at(60),
        window_seconds: 60.0,
        readings,
        warnings: Vec::new(),
    };
    let analysis = analyze(&policy, &[tick]).unwrap();
    let check = &analysis.assessment.checks[0];
    assert_eq!(check.verdict, Verdict::Inconclusive, "{check:?}");
    assert!(
        check
            .reason
            .contains("beyond the histogram's highest finite bucket"),
        "{}",
        check.reason
    );
}

/// A rollout saved by an older canary must resume under a newer one when the policy file
/// did not change: options added later must not move the digest of a policy that does not
/// use them. The value is what canary computed for `policies/checkout.yaml` at commit
/// 87149bc, before `on-metrics-unavailable` existed.
#[test]
fn new_options_left_at_their_defaults_keep_the_digest_of_an_unchanged_policy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/checkout.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let policy = Policy::from_yaml(&text, "checkout.yaml").unwrap();
    assert_eq!(policy.digest(), "fnv1a64:5e57a185e3c4685b");
}

/// A provider's `lag` moves every step's end and what each tick reads, so a rollout saved
/// with one lag must not resume under another: it is part of the digest when set (it was
/// not, found reading the change, 2026-12-01).
#[test]
fn the_providers_lag_is_part_of_the_digest() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/orders-datadog.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let with = |lag: &str| {
        let text = text.replacen("  datadog:\n", &format!("  datadog:\n    lag: {lag}\n"), 1);
        assert_ne!(
            text,
            std::fs::read_to_string(path).unwrap(),
            "the lag was set"
        );
        Policy::from_yaml(&text, "orders-datadog.yaml")
            .unwrap()
            .digest()
    };
    assert_ne!(with("2m"), with("5m"));
    assert_eq!(with("3m"), with("3m"));
}

// ---------------------------------------------------------------------------------------
// Control requests are bound to one rollout and expire (issue 12, item 1).

/// A request for `rollout` made at `when`.
fn request_for(action: ControlAction, rollout: &Rollout, when: Timestamp) -> Event {
    Event::Control(ControlRequest::for_rollout(action, rollout, when))
}

#[test]
fn a_leftover_promote_for_another_rollout_is_dropped_not_applied() {
    let (machine, mut rollout) = mk_running("");
    // Left by `canary promote` for the previous rollout (another start, another id).
    let previous = machine.start(at(-600), Some("rel-1".to_owned()));
    let effects = machine.handle(
        &mut rollout,
        request_for(ControlAction::Promote, &previous, at(-590)),
        at(10),
    );
    let k = kinds(&effects);
    assert!(!k.contains(&"set:100".to_owned()), "applied: {k:?}");
    assert_eq!(k, ["notify:ignored-request", "wait"]);
    assert!(matches!(rollout.phase(), Phase::Step { index: 0, .. }));
    assert!(rollout.promoted_by_hand().is_none());

    // Same start, another id: also another rollout.
    let mut other = serde_json::to_value(&rollout).unwrap();
    other["id"] = serde_json::json!("rel-2");
    let other = Rollout::from_json(other.to_string().as_bytes()).unwrap();
    let effects = machine.handle(
        &mut rollout,
        request_for(ControlAction::Promote, &other, at(5)),
        at(10),
    );
    assert_eq!(kinds(&effects), ["notify:ignored-request", "wait"]);
}

#[test]
fn a_request_older_than_its_time_to_live_is_dropped() {
    let (machine, mut rollout) = mk_running("");
    let ttl = canary_core::rollout::CONTROL_REQUEST_TTL.as_secs() as i64;
    let stale = request_for(
        ControlAction::Abort {
            reason: "x".to_owned(),
        },
        &rollout,
        at(0),
    );
    let effects = machine.handle(&mut rollout, stale, at(ttl + 1));
    assert_eq!(kinds(&effects), ["notify:ignored-request", "wait"]);
    let fresh = request_for(
        ControlAction::Abort {
            reason: "x".to_owned(),
        },
        &rollout,
        at(ttl),
    );
    let effects = machine.handle(&mut rollout, fresh, at(ttl + 1));
    assert_eq!(kinds(&effects), ["persist", "notify:rolling-back", "set:0"]);
}

#[test]
fn a_finished_rollout_drops_a_request_and_keeps_its_outcome() {
    let (machine, mut rollout) = mk_running("");
    machine.handle(&mut rollout, Event::ManualAbort("x".to_owned()), at(40));
    machine.handle(&mut rollout, Event::WeightSet(0), at(41));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Rollback), at(41));
    assert!(matches!(rollout.phase(), Phase::RolledBack { .. }));
    let request = request_for(ControlAction::Promote, &rollout, at(42));
    let effects = machine.handle(&mut rollout, request, at(42));
    assert_eq!(kinds(&effects), ["notify:ignored-request", "finish:1"]);
}

#[test]
fn a_promotion_by_hand_says_where_and_what_was_undecided() {
    let (machine, mut rollout) = mk_running("");
    let request = request_for(ControlAction::Promote, &rollout, at(70));
    let effects = machine.handle(&mut rollout, request, at(70));
    assert_eq!(kinds(&effects), ["persist", "notify:promoting", "set:100"]);
    machine.handle(&mut rollout, Event::WeightSet(100), at(71));
    let effects = machine.handle(&mut rollout, hooks_ok(HookEvent::Promote), at(71));
    assert_eq!(kinds(&effects), ["persist", "finish:0"]);
    let reason = &rollout.outcome().unwrap().reason;
    assert!(
        reason
            == "promoted by hand at step 1/3; not decided by the analysis: no check assessed yet",
        "{reason}"
    );
    assert!(!reason.contains("every step passed"), "{reason}");
    assert_eq!(rollout.promoted_by_hand().unwrap().step, Some(0));
}

// ---------------------------------------------------------------------------------------
// A saved state is validated against the policy (issue 12, item 2).

fn invalid(machine: &Machine, rollout: &Rollout) -> String {
    let err = machine.validate(rollout, at(1000)).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
    err.to_string()
}

#[test]
fn a_step_index_past_the_policy_is_refused_naming_the_field() {
    let (machine, rollout) = mk_running("");
    let forged = edited(&rollout, |json| {
        json["phase"]["index"] = serde_json::json!(99)
    });
    let err = invalid(&machine, &forged);
    assert!(err.contains("`phase.index` is 99"), "{err}");
}

#[test]
fn a_weight_that_is_no_step_s_weight_is_refused() {
    let (machine, rollout) = mk_running("");
    let forged = edited(&rollout, |json| {
        json["phase"]["weight"] = serde_json::json!(30)
    });
    assert!(invalid(&machine, &forged).contains("`phase.weight` is 30"));
    let forged = edited(&rollout, |json| {
        json["weights"][0]["weight"] = serde_json::json!(200);
    });
    assert!(invalid(&machine, &forged).contains("`weights[0].weight` is 200"));
    // Step 2 at 25 % without step 1 passed: a forged step index.
    let forged = edited(&rollout, |json| {
        json["phase"]["index"] = serde_json::json!(1);
        json["phase"]["weight"] = serde_json::json!(25);
        json["weights"][0]["weight"] = serde_json::json!(25);
    });
    assert!(invalid(&machine, &forged).contains("do not show step 1 passed"));
}

#[test]
fn a_forged_promoting_or_promoted_phase_is_refused() {
    let (machine, rollout) = mk_running("");
    let err = invalid(&machine, &in_phase(&rollout, Phase::Promoting));
    assert!(err.contains("`steps` do not show step 1 passed"), "{err}");
    let err = invalid(&machine, &in_phase(&rollout, Phase::Promoted));
    assert!(err.contains("`steps`"), "{err}");
    // Even with every step recorded as passed, a promoted rollout ends at 100 %.
    let forged = edited(&in_phase(&rollout, Phase::Promoted), |json| {
        let step = json["steps"][0].clone();
        let mut steps = Vec::new();
        for (index, weight, decision) in
            [(0, 10, "advance"), (1, 25, "advance"), (2, 50, "promote")]
        {
            let mut s = step.clone();
            s["index"] = serde_json::json!(index);
            s["weight"] = serde_json::json!(weight);
            s["decision"] = serde_json::json!(decision);
            steps.push(s);
        }
        json["steps"] = serde_json::Value::Array(steps);
    });
    let err = invalid(&machine, &forged);
    assert!(
        err.contains("`weights` end at 10 %, yet the phase is promoted"),
        "{err}"
    );
}

#[test]
fn every_state_the_machine_writes_is_valid() {
    let (machine, mut rollout) = mk_running("");
    machine.validate(&rollout, at(0)).unwrap();
    let mut totals = (0.0, 0.0);
    feed_healthy(&machine, &mut rollout, 30, 300, 0.10, &mut totals);
    machine.validate(&rollout, at(300)).unwrap();
    machine.handle(&mut rollout, Event::WeightSet(25), at(301));
    machine.validate(&rollout, at(301)).unwrap();
}

#[test]
fn a_state_that_is_not_utf8_or_json_is_bad_input() {
    for bytes in [&b"\xff\xfe{"[..], b"{ not json", b""] {
        let err = Rollout::from_json(bytes).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// Weights are read back at every tick (issue 12, item 3).

#[test]
fn drift_in_a_step_sets_the_weight_again_and_starts_the_step_over() {
    let (machine, mut rollout) = mk_running("");
    let mut totals = (0.0, 0.0);
    feed_healthy(&machine, &mut rollout, 30, 240, 0.10, &mut totals);
    // HAProxy restarted: the canary gets nothing.
    let effects = machine.handle(&mut rollout, Event::TimerFired, at(270));
    assert_eq!(effects, vec![Effect::ReadWeight]);
    let effects = machine.handle(&mut rollout, Event::WeightRead(0), at(270));
    assert_eq!(kinds(&effects), ["persist", "notify:drift", "set:10"]);
    assert_eq!(rollout.weight_drifts(), 1);
    assert!(
        rollout
            .warnings()
            .iter()
            .any(|w| w.contains("weight drift"))
    );
    machine.validate(&rollout, at(270)).unwrap();
    machine.handle(&mut rollout, Event::WeightSet(10), at(271));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(271));
    // The step's clock starts again: the evidence before the drift does not pass it.
    let effects = feed_healthy(&machine, &mut rollout, 301, 541, 0.10, &mut totals);
    assert!(
        !kinds(&effects).contains(&"set:25".to_owned()),
        "passed a step on evidence from before the drift"
    );
    let effects = feed_healthy(&machine, &mut rollout, 571, 571, 0.10, &mut totals);
    assert_eq!(kinds(&effects), ["notify:tick", "persist", "set:25"]);
    let decisions: Vec<&str> = rollout
        .steps()
        .iter()
        .map(|s| s.decision.as_str())
        .collect();
    assert_eq!(decisions, ["drift", "advance"]);
}

/// Review finding of 2026-12-01: a read-back that failed (a gateway error; an NGINX upstream
/// file edited behind canary's back) was only an unreadable tick: once the gateway read right
/// again, the step went on and passed on the evidence gathered while its weight was unknown.
/// Now the first right read-back after an unreadable one starts the step over, as a drift does.
#[test]
fn evidence_gathered_while_the_weight_could_not_be_read_back_does_not_pass_a_step() {
    let (machine, mut rollout) = mk_running("");
    let mut totals = (0.0, 0.0);
    feed_healthy(&machine, &mut rollout, 30, 240, 0.10, &mut totals);
    let effects = machine.handle(&mut rollout, Event::TimerFired, at(270));
    assert_eq!(effects, vec![Effect::ReadWeight]);
    let effects = machine.handle(
        &mut rollout,
        Event::WeightUnreadable("the upstream file is not what canary wrote".into()),
        at(270),
    );
    assert!(
        kinds(&effects).contains(&"notify:tick".to_owned()),
        "an unreadable tick: {effects:?}"
    );
    machine.validate(&rollout, at(270)).unwrap();
    // Readable again, and right: the step starts over rather than passing at 300.
    machine.handle(&mut rollout, Event::TimerFired, at(300));
    let effects = machine.handle(&mut rollout, Event::WeightRead(10), at(300));
    assert_eq!(kinds(&effects), ["persist", "notify:drift", "set:10"]);
    assert_eq!(
        rollout.weight_drifts(),
        0,
        "not a drift: the weight was right"
    );
    machine.handle(&mut rollout, Event::WeightSet(10), at(301));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), at(301));
    let effects = feed_healthy(&machine, &mut rollout, 331, 571, 0.10, &mut totals);
    assert!(
        !kinds(&effects).contains(&"set:25".to_owned()),
        "passed a step on evidence from while the weight was unknown"
    );
    let effects = feed_healthy(&machine, &mut rollout, 601, 601, 0.10, &mut totals);
    assert_eq!(kinds(&effects), ["notify:tick", "persist", "set:25"]);
    let decisions: Vec<&str> = rollout
        .steps()
        .iter()
        .map(|s| s.decision.as_str())
        .collect();
    assert_eq!(decisions, ["drift", "advance"]);
}

#[test]
fn a_rerun_of_a_finished_rollout_checks_the_gateway_before_reporting() {
    let (machine, mut rollout) = mk_running("");
    machine.handle(&mut rollout, Event::ManualPromote, at(10));
    machine.handle(&mut rollout, Event::WeightSet(100), at(11));
    machine.handle(&mut rollout, hooks_ok(HookEvent::Promote), at(11));
    assert!(matches!(rollout.phase(), Phase::Promoted));
    // The rerun: the gateway serves 10 %.
    let effects = machine.handle(&mut rollout, Event::Resume, at(500));
    assert_eq!(
        effects,
        vec![Effect::ReadWeight],
        "no verdict before looking"
    );
    let effects = machine.handle(&mut rollout, Event::WeightRead(10), at(500));
    assert_eq!(kinds(&effects), ["persist", "notify:drift", "set:100"]);
    let effects = machine.handle(&mut rollout, Event::WeightSet(100), at(501));
    assert_eq!(kinds(&effects), ["persist", "read-weight"]);
    let effects = machine.handle(&mut rollout, Event::WeightRead(100), at(501));
    assert_eq!(kinds(&effects), ["finish:0"]);
    // A gateway that cannot be read is no promotion.
    let effects = machine.handle(&mut rollout, Event::Resume, at(600));
    assert_eq!(effects, vec![Effect::ReadWeight]);
    let effects = machine.handle(&mut rollout, Event::RouterFailed("gone".into()), at(600));
    assert_eq!(kinds(&effects), ["persist", "notify:failed", "finish:4"]);
}

/// Every kind of notice but the progress line can be subscribed to, and a policy without
/// `on:` hears them all (issue 12: `drift` and `ignored-request` were emitted and never sent,
/// because the list of names a policy could ask for was kept apart from what the machine
/// emitted). The names are the ones documented in docs/policy-reference.md.
#[test]
fn every_notice_kind_but_the_progress_line_can_be_notified_by_its_documented_name() {
    use canary_core::rollout::NoticeKind;
    let reference = include_str!("../../../../docs/policy-reference.md");
    for kind in NoticeKind::NOTIFIABLE {
        assert!(kind.is_notifiable(), "{kind}");
        assert_eq!(NoticeKind::notifiable_named(kind.as_str()), Some(kind));
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::json!(kind.as_str()),
            "the JSON name is the policy's name"
        );
        assert!(
            reference.contains(&format!("`{kind}`")),
            "docs/policy-reference.md does not list the notice kind `{kind}`"
        );
    }
    assert!(!NoticeKind::Tick.is_notifiable());
    assert_eq!(NoticeKind::notifiable_named("tick"), None);
    // `is_notifiable` matches every variant exhaustively; NOTIFIABLE must hold each one it
    // accepts, which the count ties together (13 notifiable + the progress line).
    assert_eq!(NoticeKind::NOTIFIABLE.len(), 13);

    let text = format!("{BASE}notify:\n  - webhook: {{url: \"http://127.0.0.1:1/\"}}\n");
    let policy = Policy::from_yaml(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.notifications[0].on, NoticeKind::NOTIFIABLE.to_vec());
}

/// The saved state's size after `ticks` healthy ticks a second apart, all within the first
/// step (so nothing but the ticks changes it).
fn state_bytes_after(machine: &Machine, ticks: i64) -> usize {
    let mut rollout = machine.start(t0(), None);
    machine.handle(&mut rollout, Event::Resume, t0());
    machine.handle(&mut rollout, preflight_ok(), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Before), t0());
    machine.handle(&mut rollout, Event::WeightSet(10), t0());
    machine.handle(&mut rollout, hooks_ok(HookEvent::Step), t0());
    for second in 1..=ticks {
        let n = second as f64;
        machine.handle(
            &mut rollout,
            observed(mk_tick(second, (10.0 * n, 0.0), (90.0 * n, 0.0))),
            at(second),
        );
        assert!(
            matches!(rollout.phase(), Phase::Step { index: 0, .. }),
            "still in the first step at {second} s: {:?}",
            rollout.phase()
        );
    }
    rollout.to_json(false).unwrap().len()
}

/// A machine told to keep few timeline points (the controller, which keeps thousands of
/// rollouts' states in ConfigMaps) saves a state whose size does not grow with the
/// rollout's length; the default machine's grows with each tick (up to 600 points).
#[test]
fn a_machine_with_a_timeline_bound_saves_a_state_that_does_not_grow_with_the_rollout() {
    let bounded = Machine::new(mk_policy(""))
        .unwrap()
        .with_timeline_points(12);
    let short = state_bytes_after(&bounded, 30);
    let long = state_bytes_after(&bounded, 290);
    assert!(
        long <= short + 256,
        "grew from {short} to {long} bytes between 30 and 290 ticks"
    );
    assert!(long < 16 * 1024, "{long} bytes");
    let default = Machine::new(mk_policy("")).unwrap();
    let unbounded = state_bytes_after(&default, 290);
    eprintln!(
        "measured: 12 points: {short} bytes after 30 ticks, {long} after 290; default: {unbounded} after 290"
    );
    assert!(
        unbounded > 4 * long,
        "the default machine keeps the long timeline: {unbounded} vs {long} bytes"
    );
}
