//! `canary-fuzz`: the fuzz targets of every parser that reads data from outside canary —
//! policy YAML, recorded data (`canary analyze --input`), rollout state files, control
//! requests, Prometheus HTTP API answers, generic providers' JSON answers, `/metrics` pages in the text exposition format,
//! HAProxy runtime API answers, the NGINX upstream file canary reads back, and the weight a
//! `gateway.command` prints.
//!
//! Each target takes arbitrary bytes, hands them to the entry point the product itself uses
//! (the same function `canary` calls on a file, a socket's answer or an HTTP body), and then
//! carries what came out as far as the product would: a policy that validates builds its
//! rollout machine, judge, queries, source and router; a recording is judged; a state file is
//! resumed and driven; an answer or a page becomes readings that the judge assesses. Besides
//! "never panics", each target asserts the contracts a hostile input must not break (see
//! each function): no silent pass on missing or unusable data, no non-finite number reaching
//! the judge as an observation, what canary writes it reads back, and the rollout machine's
//! effect protocol.
//!
//! The bodies live here so that an ordinary stable test (`tests/smoke.rs`) runs them over the
//! checked-in seed corpora and a few thousand mutated inputs in every `tests/run.sh`, and the
//! cargo-fuzz binaries (`fuzz_targets/`, built only with the `libfuzzer` feature) are
//! one-line wrappers. `docs/reliability.md` has the campaign's command and its figures.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use canary_core::ExitCode;
use canary_core::analysis;
use canary_core::judge::{Assessment, CheckResult, Judge, JudgeConfig, Moment, Verdict};
use canary_core::observation::{CheckObservation, HistogramBucket, Reading, RequestCounts, Tick};
use canary_core::policy::{GatewaySpec, MetricsSourceSpec, Policy};
use canary_core::ports::MetricsSource;
use canary_core::recording::Recording;
use canary_core::rollout::{ControlRequest, Effect, Event, Machine, Rollout};
use canary_core::secret::{Alphabet, Secret, base64};
use canary_gateways::{CommandRouter, HaproxyRouter, NginxRouter};
use canary_metrics::prometheus::reading_of;
use canary_metrics::queries::{self, QueryWindow};
use canary_metrics::{PrometheusConfig, PrometheusSource, QueryOutcome, ScrapeSource};
use jiff::{SignedDuration, Timestamp};

/// A secret the process holds while the targets run, as a bearer token read from a file
/// would be. Seeds carry it, raw and encoded (`corpus/*/secret-*`); whatever a target makes
/// of an input — readings, warnings, errors — must hold it in no form once through the
/// product's redaction choke points (`Tick::redacted` and `Error::redacted`, which the
/// `Redacted` decorator around every adapter applies).
pub const SECRET: &str = "fz/Q7w9+x2Lp4=Zt8-secret";

/// Makes the process hold [`SECRET`] (once).
pub fn hold_secret() {
    static HELD: OnceLock<Secret> = OnceLock::new();
    HELD.get_or_init(|| Secret::new(SECRET));
}

/// Panics if `text` holds [`SECRET`] raw, base64-encoded (either alphabet, padded or not)
/// or URL-encoded.
pub fn check_no_secret(what: &str, text: &str) {
    let mut forms = vec![SECRET.to_owned()];
    for alphabet in [Alphabet::Standard, Alphabet::Url] {
        forms.push(base64(SECRET.as_bytes(), alphabet, false));
    }
    forms.push(
        SECRET
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
    );
    for form in forms {
        assert!(
            !text.contains(&form),
            "{what} holds the secret ({form:?}): {text}"
        );
    }
}

/// An adapter's error as the rest of the program gets it (redacted, as the `Redacted`
/// decorator hands it on): neither its message, nor its `Debug`, nor any cause holds the
/// secret.
fn check_error(err: canary_core::Error) {
    let err = err.redacted();
    check_no_secret("an error", &format!("{err} / {err:?}"));
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        check_no_secret("an error's cause", &cause.to_string());
        source = cause.source();
    }
}

/// A tick as the rest of the program gets it: no reason or warning holds the secret.
fn check_tick_redacted(tick: &Tick) {
    let tick = tick.clone().redacted();
    check_no_secret("a tick", &format!("{tick:?}"));
}

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its cargo-fuzz binary and of its corpus directory
/// (`tests/fuzz/corpus/NAME/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("policy_yaml", policy_yaml),
    ("recording", recording),
    ("rollout_state", rollout_state),
    ("control_request", control_request),
    ("prometheus_answer", prometheus_answer),
    ("generic_answer", generic_answer),
    ("datadog_answer", datadog_answer),
    ("cloudwatch_answer", cloudwatch_answer),
    ("exposition_page", exposition_page),
    ("haproxy_answer", haproxy_answer),
    ("nginx_upstream", nginx_upstream),
    ("command_output", command_output),
];

/// The policy recordings, answers, state files and control requests are judged against:
/// one check of every kind with every criterion it can have (`policies/prometheus.yaml`).
pub fn prometheus_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_yaml(
            include_str!("../policies/prometheus.yaml"),
            "tests/fuzz/policies/prometheus.yaml",
        )
        .expect("the fuzz policy is valid")
    })
}

/// The policy `/metrics` pages are read for (`policies/scrape.yaml`): one canary and one
/// baseline endpoint, an error-rate and a latency check.
pub fn scrape_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_yaml(
            include_str!("../policies/scrape.yaml"),
            "tests/fuzz/policies/scrape.yaml",
        )
        .expect("the fuzz scrape policy is valid")
    })
}

/// The rollout machine of [`prometheus_policy`].
pub fn machine() -> &'static Machine {
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    MACHINE.get_or_init(|| Machine::new(prometheus_policy().clone()).expect("the fuzz machine"))
}

/// The time the targets' rollouts start at.
pub fn epoch() -> Timestamp {
    Timestamp::from_second(1_795_341_600).expect("a valid time")
}

/// Runs a future that never waits (an uncontended lock at most) to its end, without a
/// runtime: the scrape source's methods are async only because of their lock.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a future that was expected never to wait waited"),
    }
}

/// A small deterministic generator (SplitMix64) seeded from the input, for the choices a
/// target makes about how to answer the machine: the same input always takes the same path.
struct Choices(u64);

impl Choices {
    fn from(data: &[u8]) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in data {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Choices(hash)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability 1/n.
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

// ---------------------------------------------------------------------------------------
// Contracts shared by the targets.

/// The machine's effect protocol (`canary_core::rollout`): at most one effect of a batch
/// awaits a result, and it comes last; weights run from 0 to 100.
pub fn check_effects(effects: &[Effect]) {
    let awaiting: Vec<usize> = effects
        .iter()
        .enumerate()
        .filter(|(_, e)| e.awaits_result())
        .map(|(i, _)| i)
        .collect();
    assert!(
        awaiting.len() <= 1,
        "several effects await a result: {effects:?}"
    );
    if let Some(&at) = awaiting.first() {
        assert_eq!(
            at,
            effects.len() - 1,
            "an effect awaiting a result is not last: {effects:?}"
        );
    }
    for effect in effects {
        match effect {
            Effect::SetWeight(weight) => assert!(*weight <= 100, "weight {weight}"),
            Effect::RunHooks { weight, .. } => assert!(*weight <= 100, "hook weight {weight}"),
            _ => {}
        }
    }
}

/// An observation handed to the judge holds finite numbers only: the sources turn NaN and
/// ±Inf into `invalid` readings that name the series (a bucket bound may be `+Inf`).
pub fn check_reading(check: &str, reading: &Reading) {
    let finite = |x: f64, what: &str| {
        assert!(
            x.is_finite(),
            "{check}: {what} is {x} in an observed reading: {reading:?}"
        );
    };
    let counts = |c: &RequestCounts, who: &str| {
        finite(c.requests, &format!("{who} requests"));
        finite(c.errors, &format!("{who} errors"));
    };
    let buckets = |b: &[HistogramBucket], who: &str| {
        for bucket in b {
            finite(bucket.count, &format!("{who} bucket count"));
            assert!(
                !bucket.le.is_nan(),
                "{check}: a NaN bucket bound in an observed reading"
            );
        }
    };
    if let Reading::Observed(observation) = reading {
        match observation {
            CheckObservation::Counts { canary, baseline } => {
                counts(canary, "canary");
                if let Some(baseline) = baseline.observed() {
                    counts(baseline, "baseline");
                }
            }
            CheckObservation::Histogram { canary, baseline } => {
                buckets(canary, "canary");
                if let Some(baseline) = baseline.observed() {
                    buckets(baseline, "baseline");
                }
            }
            CheckObservation::Samples { canary, baseline } => {
                for value in [canary, baseline].into_iter().flatten() {
                    finite(*value, "a sample");
                }
            }
            CheckObservation::Value { value } => finite(*value, "the value"),
        }
    }
}

/// What an assessment must never say, whatever the data: a pass overall with a criterion
/// that did not pass; a pass, or anything but `nodata`/`error` (or a failure that latched
/// earlier), for a criterion whose latest reading was missing or unusable; numbers that
/// contradict themselves.
pub fn check_assessment(assessment: &Assessment, last: Option<&Tick>) {
    if assessment.verdict == Verdict::Pass {
        for check in &assessment.checks {
            assert_eq!(
                check.verdict,
                Verdict::Pass,
                "an overall pass with {} at {}: {assessment:?}",
                check.name,
                check.verdict
            );
        }
    }
    for check in &assessment.checks {
        check_evidence(check);
        let Some(tick) = last else { continue };
        let allowed: &[Verdict] = match tick.readings.get(&check.check) {
            None | Some(Reading::NoData { .. }) => &[Verdict::NoData, Verdict::Fail],
            Some(Reading::Invalid { .. }) => &[Verdict::Error, Verdict::Fail],
            Some(Reading::Observed(_)) => continue,
        };
        assert!(
            allowed.contains(&check.verdict),
            "{} is {} on a tick without usable data for it: {:?}",
            check.name,
            check.verdict,
            tick.readings.get(&check.check)
        );
    }
}

fn check_evidence(check: &CheckResult) {
    let evidence = &check.evidence;
    if let Some(e) = evidence.e_value {
        assert!(e >= 0.0, "{}: e-value {e}", check.name);
    }
    if let Some(p) = evidence.p_value {
        assert!((0.0..=1.0).contains(&p), "{}: p-value {p}", check.name);
    }
    if let Some([lower, upper]) = evidence.interval {
        assert!(
            lower.partial_cmp(&upper) != Some(std::cmp::Ordering::Greater),
            "{}: interval [{lower}, {upper}] is upside down",
            check.name
        );
    }
    if let (Some(n), Some(events)) = (evidence.canary_n, evidence.canary_events) {
        assert!(events <= n, "{}: {events} canary events of {n}", check.name);
    }
    if let (Some(n), Some(events)) = (evidence.baseline_n, evidence.baseline_events) {
        assert!(
            events <= n,
            "{}: {events} baseline events of {n}",
            check.name
        );
    }
}

/// Judges ticks as a rollout step does: observe, assess mid-step after each, assess at the
/// step's end after the last; checks every assessment.
fn judge_ticks(policy: &Policy, ticks: &[Tick]) {
    let judge = Judge::new(
        policy,
        JudgeConfig {
            sample_test_looks: 1,
        },
    )
    .expect("the fuzz policy's judge");
    let mut state = judge.start();
    judge.begin_step(&mut state);
    for tick in ticks {
        judge
            .observe(&mut state, tick)
            .expect("the judge's own state");
        let assessment = judge
            .assess(&mut state, Moment::MidStep)
            .expect("the judge's own state");
        check_assessment(&assessment, Some(tick));
    }
    let assessment = judge
        .assess(&mut state, Moment::StepEnd)
        .expect("the judge's own state");
    check_assessment(&assessment, ticks.last());
}

// ---------------------------------------------------------------------------------------
// The targets.

/// A policy file, as `canary policy lint`, `rollout` and `analyze` read it
/// ([`Policy::from_yaml`]). An invalid one must say why, naming the file; a valid one must
/// read the same twice (same digest: a resume is never refused for nothing) and must run:
/// its rollout machine starts, its judge is built, its PromQL renders, its scrape source and
/// its router are built. (Prometheus sources are not built: that reads the secret files the
/// policy names, and a fuzzed path may be a FIFO.)
pub fn policy_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = match Policy::from_yaml(text, "fuzz.yaml") {
        Ok(policy) => policy,
        Err(err) => {
            assert!(!err.problems.is_empty(), "a policy error without a problem");
            let shown = err.to_string();
            assert!(
                shown.starts_with("fuzz.yaml:"),
                "a policy error that does not name the file: {shown}"
            );
            return;
        }
    };
    let again = Policy::from_yaml(text, "fuzz.yaml").expect("the same text validates twice");
    assert_eq!(again.digest(), policy.digest(), "the digest is not stable");
    serde_json::to_string(&policy).expect("a policy serializes");

    let machine = Machine::new(policy.clone())
        .unwrap_or_else(|e| panic!("a valid policy has no rollout machine: {e}"));
    let now = epoch();
    let mut rollout = machine.start(now, None);
    check_effects(&machine.handle(&mut rollout, Event::Resume, now));
    Judge::new(
        &policy,
        JudgeConfig {
            sample_test_looks: 3,
        },
    )
    .unwrap_or_else(|e| panic!("a valid policy has no judge: {e}"));

    let window = QueryWindow::new(
        now,
        now + SignedDuration::from_secs(90),
        policy.rollout.interval,
    );
    for check in &policy.checks {
        queries::check_query(check, &policy.traffic, window);
    }
    // A generic provider's requests render, and every JSONPath that validated compiles.
    if let MetricsSourceSpec::Json(spec) = &policy.metrics {
        for check in &policy.checks {
            if let canary_core::policy::CheckKind::Json(json) = &check.kind {
                canary_metrics::generic::render_request(
                    spec,
                    &policy.traffic,
                    &check.name,
                    json,
                    now,
                    now + SignedDuration::from_secs(90),
                );
                canary_metrics::generic::reading_of_answer(json, &serde_json::Value::Null);
            }
        }
    }
    if let MetricsSourceSpec::Scrape(_) = &policy.metrics
        && let Err(err) = ScrapeSource::from_policy(&policy)
    {
        // Validation leaves regex syntax to the engine that runs it (Prometheus' RE2, or
        // the scrape source's): a matcher it cannot compile must be a configuration error,
        // found before any traffic moves.
        let err: canary_core::Error = err.into();
        assert_eq!(
            err.exit_code(),
            ExitCode::BadInput,
            "a valid scrape policy has no source, and not for a configuration error: {err}"
        );
    }
    if let Some(gateway) = &policy.gateway {
        let built = match gateway {
            GatewaySpec::Haproxy(spec) => HaproxyRouter::new(spec).map(drop),
            GatewaySpec::Nginx(spec) => NginxRouter::new(spec).map(drop),
            _ => Ok(()),
        };
        built.unwrap_or_else(|e| panic!("a valid gateway has no router: {e}"));
    }
}

/// A recording, as `canary analyze --input` reads it ([`Recording::from_json`]). An invalid
/// one must say why, naming the file; a valid one must survive `--record`'s writing it back
/// unchanged, and is judged ([`analysis::analyze`]) against [`prometheus_policy`] with every
/// assessment checked ([`check_assessment`]).
pub fn recording(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let recording = match Recording::from_json(text, "fuzz.json") {
        Ok(recording) => recording,
        Err(err) => {
            let shown = err.to_string();
            assert!(
                shown.contains("fuzz.json"),
                "a recording error that does not name the file: {shown}"
            );
            return;
        }
    };
    let written = recording.to_json();
    let again = Recording::from_json(&written, "again.json")
        .unwrap_or_else(|e| panic!("a recording read in cannot be read back: {e}\n{written}"));
    assert_eq!(again, recording, "a recording changes when written back");

    let policy = prometheus_policy();
    let outcome = analysis::analyze(policy, &recording.ticks).expect("judging parsed ticks");
    check_assessment(&outcome.assessment, recording.ticks.last());
    analysis::exit_code(outcome.assessment.verdict);
    serde_json::to_string(&outcome.assessment).expect("an assessment serializes");
    serde_json::to_string(&outcome.timeline).expect("a timeline serializes");
}

/// A rollout state file, as `canary rollout`, `status`, `promote` and `abort` read it
/// ([`Rollout::from_json`], then [`Machine::validate`]). One that is accepted
/// is resumed and driven for up to 48 events, the driver's answers chosen from the input:
/// every batch of effects keeps the protocol ([`check_effects`]), and every state the machine
/// persists must read back as it was written (a crash right after must be resumable).
pub fn rollout_state(data: &[u8]) {
    let rollout = match Rollout::from_json(data) {
        Ok(rollout) => rollout,
        Err(err) => {
            assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
            return;
        }
    };
    rollout.current_weight();
    let machine = machine();
    let now = rollout.started_at().max(epoch());
    if let Err(err) = machine.validate(&rollout, now) {
        assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
        return;
    }
    drive(
        machine,
        rollout,
        Event::Resume,
        &mut Choices::from(data),
        48,
    );
}

/// Drives `rollout` from `first`, answering each effect that awaits a result the way a
/// driver could (success mostly, failures and interruptions sometimes, as `choices` says).
fn drive(
    machine: &Machine,
    mut rollout: Rollout,
    first: Event,
    choices: &mut Choices,
    events: usize,
) {
    let policy = machine.policy();
    let mut now = rollout.started_at().max(epoch());
    let mut event = first;
    let mut tick = 0u32;
    for _ in 0..events {
        let effects = machine.handle(&mut rollout, event, now);
        check_effects(&effects);
        if effects.iter().any(|e| matches!(e, Effect::Persist)) {
            let saved = serde_json::to_string(&rollout).expect("a rollout serializes");
            let loaded: Rollout = serde_json::from_str(&saved)
                .unwrap_or_else(|e| panic!("a persisted state does not read back: {e}\n{saved}"));
            assert_eq!(
                serde_json::to_string(&loaded).expect("a rollout serializes"),
                saved,
                "a persisted state changes when read back"
            );
            machine
                .validate(&loaded, now)
                .unwrap_or_else(|e| panic!("a persisted state is not resumable: {e}"));
        }
        rollout.current_weight();
        let Some(last) = effects.last() else {
            return;
        };
        event = match last {
            _ if choices.one_in(23) => Event::Interrupted,
            _ if choices.one_in(29) => Event::ManualAbort("fuzz".to_owned()),
            _ if choices.one_in(31) => Event::ManualPromote,
            Effect::RunHooks { event, .. } => Event::HooksRan {
                event: *event,
                failed: if choices.one_in(8) {
                    vec![("smoke".to_owned(), "exit status 1".to_owned())]
                } else {
                    Vec::new()
                },
            },
            Effect::SetWeight(weight) if choices.one_in(8) => {
                Event::RouterFailed(format!("cannot set {weight}"))
            }
            Effect::SetWeight(weight) => Event::WeightSet(*weight),
            // A routed step's weighted share is 0.
            Effect::SetRoute(_) => Event::WeightSet(0),
            Effect::Wait(until) => {
                now = now.max(*until);
                Event::TimerFired
            }
            Effect::Read { since } if choices.one_in(8) => {
                Event::ReadFailed(format!("no answer for the tick since {since}"))
            }
            Effect::Read { since } => {
                tick += 1;
                let failing = choices.one_in(4);
                let missing = choices.one_in(10).then(|| choices.next() as usize);
                Event::Observed {
                    tick: synthetic_tick(policy, *since, now, tick, failing, missing),
                    checkpoint: None,
                }
            }
            Effect::Promote { stage, .. } if choices.one_in(8) => {
                Event::PromotionFailed(format!("{stage:?} failed"))
            }
            Effect::Promote { stage, .. } => Event::PromotionDone(*stage),
            Effect::Preflight if choices.one_in(8) => Event::PreflightFailed {
                error: "fuzz".to_owned(),
                bad_input: choices.one_in(2),
            },
            Effect::Preflight => Event::PreflightPassed {
                canary_generation: None,
            },
            // The gateway drifted (restarted, changed by hand) now and then.
            Effect::ReadWeight if choices.one_in(6) => {
                Event::WeightRead(u8::try_from(choices.next() % 101).unwrap_or(0))
            }
            Effect::ReadWeight => Event::WeightRead(rollout.current_weight()),
            Effect::Persist | Effect::Notify(_) | Effect::Finish(_) => return,
        };
    }
}

/// A tick of `policy`'s checks at `at`, cumulative since `since`, after `tick` ticks of
/// 500 requests: healthy traffic, or a canary with 20 % errors (`failing`); `missing` names
/// a check (by index, modulo their number) that has no data this tick.
pub fn synthetic_tick(
    policy: &Policy,
    since: Timestamp,
    at: Timestamp,
    tick: u32,
    failing: bool,
    missing: Option<usize>,
) -> Tick {
    let n = f64::from(tick) * 500.0;
    let canary_errors = if failing { n * 0.2 } else { n * 0.001 };
    let buckets = |total: f64| {
        vec![
            HistogramBucket {
                le: 0.1,
                count: total * 0.5,
            },
            HistogramBucket {
                le: 0.5,
                count: total * 0.97,
            },
            HistogramBucket {
                le: f64::INFINITY,
                count: total,
            },
        ]
    };
    let missing = missing.map(|i| i % policy.checks.len().max(1));
    let mut readings = BTreeMap::new();
    for (i, check) in policy.checks.iter().enumerate() {
        let observation = match check.kind.name() {
            "error-rate" => CheckObservation::Counts {
                canary: RequestCounts {
                    requests: n * 0.1,
                    errors: canary_errors * 0.1,
                },
                baseline: RequestCounts {
                    requests: n * 0.9,
                    errors: n * 0.0009,
                }
                .into(),
            },
            "latency" => CheckObservation::Histogram {
                canary: buckets(n * 0.1),
                baseline: buckets(n * 0.9).into(),
            },
            "samples" => CheckObservation::Samples {
                canary: Some(0.2 + f64::from(tick % 3) * 0.01),
                baseline: Some(0.2),
            },
            _ => CheckObservation::Value { value: 0.0 },
        };
        let reading = if missing == Some(i) {
            Reading::NoData {
                reason: "no series in the window".to_owned(),
            }
        } else {
            Reading::Observed(observation)
        };
        readings.insert(check.name.clone(), reading);
    }
    Tick {
        at,
        window_seconds: (at.as_second() - since.as_second()).max(0) as f64,
        readings,
        warnings: Vec::new(),
    }
}

/// A rollout of [`prometheus_policy`] driven into its first analysed step, and one held
/// for a person: where control requests arrive.
fn rollouts_awaiting_requests() -> &'static [Rollout; 2] {
    static ROLLOUTS: OnceLock<[Rollout; 2]> = OnceLock::new();
    ROLLOUTS.get_or_init(|| {
        let machine = machine();
        let now = epoch();
        let mut rollout = machine.start(now, None);
        let mut event = Event::Resume;
        // Before-hooks, then weight 10, then the first wait: the step is under way.
        for _ in 0..8 {
            let effects = machine.handle(&mut rollout, event, now);
            event = match effects.last() {
                Some(Effect::RunHooks { event, .. }) => Event::HooksRan {
                    event: *event,
                    failed: Vec::new(),
                },
                Some(Effect::SetWeight(weight)) => Event::WeightSet(*weight),
                Some(Effect::Preflight) => Event::PreflightPassed {
                    canary_generation: None,
                },
                _ => break,
            };
        }
        assert!(
            matches!(
                rollout.phase(),
                canary_core::rollout::Phase::Step {
                    weight_set: true,
                    ..
                }
            ),
            "the fuzz rollout reached {:?}",
            rollout.phase()
        );
        // Held as a saved state says it (the machine alone writes a rollout's fields).
        let mut json = serde_json::to_value(&rollout).expect("a rollout serializes");
        json["phase"] = serde_json::to_value(canary_core::rollout::Phase::Held {
            weight: 10,
            reason: "inconclusive".to_owned(),
        })
        .expect("a phase serializes");
        let held = Rollout::from_json(json.to_string().as_bytes()).expect("a held rollout");
        [rollout, held]
    })
}

/// A control request, as the driving process takes it from the state directory
/// (`serde_json` into [`ControlRequest`]). One that parses is handed to a rollout in its
/// first step and to a held one, each then driven on: the effects keep the protocol.
pub fn control_request(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<ControlRequest>(data) else {
        return;
    };
    let mut choices = Choices::from(data);
    for rollout in rollouts_awaiting_requests() {
        // As read, the request is for whatever rollout it names (most often none of these,
        // and then dropped); bound to this one, it is applied.
        for request in [
            request.clone(),
            ControlRequest::for_rollout(request.action.clone(), rollout, epoch()),
        ] {
            drive(
                machine(),
                rollout.clone(),
                Event::Control(request),
                &mut choices,
                12,
            );
        }
    }
}

/// The HTTP statuses a Prometheus answer's body is tried with; the input's first byte picks
/// one.
const STATUSES: [u16; 10] = [200, 200, 200, 200, 400, 422, 500, 503, 401, 302];

/// A Prometheus HTTP API answer (the input's first byte picks its HTTP status, the rest is
/// the body), as [`PrometheusSource::interpret`] reads it. An answer becomes, for each check
/// of [`prometheus_policy`], the reading the product takes from it ([`reading_of`]), which
/// must hold finite numbers only ([`check_reading`]); the readings are judged twice, as two
/// ticks, and every assessment is checked.
pub fn prometheus_answer(data: &[u8]) {
    static SOURCE: OnceLock<PrometheusSource> = OnceLock::new();
    let source = SOURCE.get_or_init(|| {
        PrometheusSource::new(
            PrometheusConfig::new("http://127.0.0.1:9090"),
            prometheus_policy(),
        )
        .expect("the fuzz Prometheus source")
    });
    hold_secret();
    let (status, body) = match data.split_first() {
        Some((first, rest)) => (STATUSES[usize::from(*first) % STATUSES.len()], rest),
        None => (200, data),
    };
    let outcome = match source.interpret(status, "application/json", body) {
        Ok(outcome) => outcome,
        Err(err) => {
            check_error(err.into());
            return;
        }
    };
    let (result, warnings) = match outcome {
        QueryOutcome::Answer { result, warnings } => (result, warnings),
        QueryOutcome::Refused {
            error_type,
            message,
        } => {
            check_no_secret("a refusal", &format!("{error_type}: {message}"));
            return;
        }
        QueryOutcome::TooLarge { .. } | QueryOutcome::TooManySeries { .. } => return,
    };
    let policy = prometheus_policy();
    let mut readings = BTreeMap::new();
    for check in &policy.checks {
        let reading = reading_of(check, &policy.traffic, &result);
        check_reading(&check.name, &reading);
        readings.insert(check.name.clone(), reading);
    }
    let first = Tick {
        at: epoch() + SignedDuration::from_secs(30),
        window_seconds: 30.0,
        readings,
        warnings,
    };
    check_tick_redacted(&first);
    let second = Tick {
        at: epoch() + SignedDuration::from_secs(60),
        window_seconds: 60.0,
        ..first.clone()
    };
    judge_ticks(policy, &[first, second]);
}

/// The policy a generic provider's answers are read for (`policies/generic.yaml`): a json
/// check of counts, one of a percentile and one of a value.
pub fn generic_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_yaml(
            include_str!("../policies/generic.yaml"),
            "tests/fuzz/policies/generic.yaml",
        )
        .expect("the fuzz policy is valid")
    })
}

/// A generic provider's answer (`metrics.http`, `metrics.command`), as the source reads it:
/// bytes that are not JSON stop the analysis (exit 4) before any reading; JSON becomes, for
/// each check of [`generic_policy`], the reading [`reading_of_answer`] takes from it, which
/// must hold finite numbers only, counts never negative and never more errors than requests;
/// the readings are judged as two ticks and every assessment is checked.
///
/// [`reading_of_answer`]: canary_metrics::generic::reading_of_answer
pub fn generic_answer(data: &[u8]) {
    hold_secret();
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let policy = generic_policy();
    let mut readings = BTreeMap::new();
    for check in &policy.checks {
        let canary_core::policy::CheckKind::Json(json) = &check.kind else {
            unreachable!("the generic policy has json checks only");
        };
        let reading = canary_metrics::generic::reading_of_answer(json, &answer);
        check_reading(&check.name, &reading);
        if let Reading::Observed(CheckObservation::Counts { canary, baseline }) = &reading {
            for counts in std::iter::once(canary).chain(baseline.observed()) {
                assert!(
                    counts.requests >= 0.0
                        && counts.errors >= 0.0
                        && counts.errors <= counts.requests,
                    "{}: counts a provider cannot have given: {reading:?}",
                    check.name
                );
            }
        }
        readings.insert(check.name.clone(), reading);
    }
    let first = Tick {
        at: epoch() + SignedDuration::from_secs(30),
        window_seconds: 30.0,
        readings,
        warnings: Vec::new(),
    };
    check_tick_redacted(&first);
    let second = Tick {
        at: epoch() + SignedDuration::from_secs(60),
        window_seconds: 60.0,
        ..first.clone()
    };
    judge_ticks(policy, &[first, second]);
}

/// The policy Datadog's answers are read for (`policies/datadog.yaml`): a `datadog` check of
/// counts (both criteria) and one of a percentile.
pub fn datadog_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_yaml(
            include_str!("../policies/datadog.yaml"),
            "tests/fuzz/policies/datadog.yaml",
        )
        .expect("the fuzz policy is valid")
    })
}

/// The policy CloudWatch's answers are read for (`policies/cloudwatch.yaml`): a
/// `cloudwatch` check of counts (both criteria) and one of a percentile.
pub fn cloudwatch_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_yaml(
            include_str!("../policies/cloudwatch.yaml"),
            "tests/fuzz/policies/cloudwatch.yaml",
        )
        .expect("the fuzz policy is valid")
    })
}

/// The readings of `answer` for each check of `policy` by `read` are checked as a generic
/// provider's are (finite, counts possible), then judged as two ticks.
fn provider_answer(policy: &Policy, read: impl Fn(&canary_core::policy::JsonCheck) -> Reading) {
    let mut readings = BTreeMap::new();
    for check in &policy.checks {
        let canary_core::policy::CheckKind::Json(json) = &check.kind else {
            unreachable!("a provider's policy has json checks only");
        };
        let reading = read(json);
        check_reading(&check.name, &reading);
        if let Reading::Observed(CheckObservation::Counts { canary, baseline }) = &reading {
            for counts in std::iter::once(canary).chain(baseline.observed()) {
                assert!(
                    counts.requests >= 0.0
                        && counts.errors >= 0.0
                        && counts.errors <= counts.requests,
                    "{}: counts a provider cannot have given: {reading:?}",
                    check.name
                );
            }
        }
        readings.insert(check.name.clone(), reading);
    }
    let first = Tick {
        at: epoch() + SignedDuration::from_secs(30),
        window_seconds: 30.0,
        readings,
        warnings: Vec::new(),
    };
    check_tick_redacted(&first);
    let second = Tick {
        at: epoch() + SignedDuration::from_secs(60),
        window_seconds: 60.0,
        ..first.clone()
    };
    judge_ticks(policy, &[first, second]);
}

/// An answer of Datadog's metrics query API, as the source reads it
/// ([`canary_metrics::datadog::reading_of_answer`]): for each check of [`datadog_policy`], a
/// reading of finite numbers only, counts never negative and never more errors than
/// requests; the readings are judged as two ticks and every assessment is checked.
pub fn datadog_answer(data: &[u8]) {
    hold_secret();
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let policy = datadog_policy();
    provider_answer(policy, |check| {
        canary_metrics::datadog::reading_of_answer(check, &policy.traffic, &answer)
    });
}

/// An answer of CloudWatch's `GetMetricData`, as the source reads it
/// ([`canary_metrics::cloudwatch::reading_of_answer`]), checked as [`datadog_answer`] is, for
/// [`cloudwatch_policy`]; the request bodies of its checks render as JSON too.
pub fn cloudwatch_answer(data: &[u8]) {
    hold_secret();
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let policy = cloudwatch_policy();
    provider_answer(policy, |check| {
        if let Some(query) = &check.cloudwatch {
            let body = canary_metrics::cloudwatch::request_body(
                query,
                &policy.traffic,
                epoch(),
                epoch() + SignedDuration::from_secs(90),
            );
            assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
        }
        canary_metrics::cloudwatch::reading_of_answer(check, &answer)
    });
}

/// `/metrics` pages, as the scrape source reads them ([`ScrapeSource::read_tick_from_bodies`],
/// what `read_tick` does once the pages are fetched). The input is split at NUL bytes into
/// pages that go, in turn, to the canary and the baseline endpoint of [`scrape_policy`]: each
/// pair is one scrape. Every tick's readings hold finite numbers only, are judged and checked,
/// and the source's checkpoint (saved in the rollout state) restores.
pub fn exposition_page(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = scrape_policy();
    // Sources are built once (each holds an HTTP client, slow to make) and reset to their
    // first-scrape state for every input.
    static SOURCES: OnceLock<(ScrapeSource, ScrapeSource, serde_json::Value)> = OnceLock::new();
    let (source, restored, fresh) = SOURCES.get_or_init(|| {
        let source = ScrapeSource::from_policy(policy).expect("the fuzz scrape source");
        let restored = ScrapeSource::from_policy(policy).expect("the fuzz scrape source");
        let fresh = ready(source.checkpoint()).expect("a scrape source has a checkpoint");
        (source, restored, fresh)
    });
    hold_secret();
    ready(source.restore(fresh)).expect("a fresh checkpoint restores");
    let pages: Vec<&str> = text.split('\0').collect();
    let mut ticks = Vec::new();
    for (i, pair) in pages.chunks(2).take(8).enumerate() {
        let bodies = [pair[0], pair.get(1).copied().unwrap_or(pair[0])];
        let at = epoch() + SignedDuration::from_secs(10 * (i as i64 + 1));
        match ready(source.read_tick_from_bodies(&bodies, epoch(), at)) {
            Ok(tick) => {
                for (name, reading) in &tick.readings {
                    check_reading(name, reading);
                }
                check_tick_redacted(&tick);
                ticks.push(tick);
            }
            Err(err) => check_error(err.into()),
        }
    }
    judge_ticks(policy, &ticks);
    let checkpoint = ready(source.checkpoint()).expect("a scrape source has a checkpoint");
    let saved = serde_json::to_string(&checkpoint).expect("a checkpoint serializes");
    let loaded: serde_json::Value = serde_json::from_str(&saved).expect("a checkpoint reads back");
    ready(restored.restore(&loaded))
        .unwrap_or_else(|e| panic!("a scrape checkpoint does not restore: {e}\n{saved}"));
}

/// The router the gateway targets read answers for (backend `checkout`, servers
/// `checkout-canary` and `checkout-stable`).
fn haproxy_router() -> &'static HaproxyRouter {
    static ROUTER: OnceLock<HaproxyRouter> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let Some(GatewaySpec::Haproxy(spec)) = &prometheus_policy().gateway else {
            panic!("the fuzz policy's gateway is HAProxy")
        };
        HaproxyRouter::new(spec).expect("the fuzz HAProxy router")
    })
}

/// The fuzz HAProxy router with a route ACL reading header `x-canary` (file
/// `/etc/haproxy/checkout-canary.acl`), for the answers of header steps.
fn haproxy_acl_router() -> &'static HaproxyRouter {
    static ROUTER: OnceLock<HaproxyRouter> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let Some(GatewaySpec::Haproxy(spec)) = &prometheus_policy().gateway else {
            panic!("the fuzz policy's gateway is HAProxy")
        };
        let mut spec = spec.clone();
        spec.route_acl = Some(canary_core::policy::HaproxyRouteAcl {
            file: "/etc/haproxy/checkout-canary.acl".to_owned(),
            reads: canary_core::policy::AclReads::Header("x-canary".to_owned()),
        });
        HaproxyRouter::new(&spec).expect("the fuzz HAProxy router with a route ACL")
    })
}

/// An HAProxy runtime API answer to the weight read-back (`get weight …;get weight …`), as
/// [`HaproxyRouter::weights_from_answer`] reads what the socket sent (decoded as
/// `read_weight` decodes it, lossily). Weights it accepts give a share of at most 100 %.
/// The same bytes as the answer to the read-back of a router with a route ACL (`…;show acl
/// FILE`, [`HaproxyRouter::read_back_from_answer`]: a share of at most 100 %, a route only
/// for the header the ACL reads) and to the pre-flight's `show acl`
/// ([`HaproxyRouter::check_acl_listing`]).
pub fn haproxy_answer(data: &[u8]) {
    hold_secret();
    let answer = String::from_utf8_lossy(data);
    match haproxy_router().weights_from_answer(&answer) {
        Ok(weights) => {
            if let Some(percent) = weights.canary_percent() {
                assert!(percent <= 100, "{weights:?} gives {percent} %");
            }
        }
        Err(err) => check_error(err.into()),
    }
    match haproxy_acl_router().read_back_from_answer(&answer) {
        Ok((weight, route)) => {
            assert!(weight <= 100, "a share of {weight} %");
            match route {
                None => {}
                Some(canary_core::policy::StepRoute::Header { name, .. }) => {
                    assert_eq!(name, "x-canary", "a route for another header");
                }
                Some(other) => panic!("a header ACL read back as {other:?}"),
            }
        }
        Err(err) => check_error(err.into()),
    }
    if let Err(err) = haproxy_acl_router().check_acl_listing(&answer) {
        check_error(err.into());
    }
}

/// The NGINX upstream file, as [`NginxRouter::weight_from_file`] reads it back after
/// canary (or a person) wrote it, and as [`NginxRouter::check_file_against`] checks it against
/// a weight probe's answer. A weight it accepts is at most 100 %; and whatever the
/// input, the file canary renders for a weight (the input's first byte, modulo 101) reads
/// back as that weight.
pub fn nginx_upstream(data: &[u8]) {
    static ROUTER: OnceLock<NginxRouter> = OnceLock::new();
    let router = ROUTER.get_or_init(|| {
        let policy = Policy::from_yaml(
            include_str!("../policies/nginx.yaml"),
            "tests/fuzz/policies/nginx.yaml",
        )
        .expect("the fuzz NGINX policy is valid");
        let Some(GatewaySpec::Nginx(spec)) = &policy.gateway else {
            panic!("the fuzz NGINX policy's gateway is NGINX")
        };
        NginxRouter::new(spec).expect("the fuzz NGINX router")
    });
    hold_secret();
    match router.weight_from_file(data) {
        Ok(weight) => assert!(weight <= 100, "weight {weight} from the file"),
        Err(err) => check_error(err.into()),
    }
    // The check of the file against a weight probe's answer: an error, never a panic.
    let answer = canary_gateways::ProbeAnswer {
        upstream: "app".to_owned(),
        canary: data.first().map_or(0, |b| b % 101),
        generation: "start".to_owned(),
    };
    if let Err(err) = router.check_file_against(data, &answer) {
        check_error(err.into());
    }
    let weight = data.first().map_or(0, |b| b % 101);
    let written = router.render(weight);
    assert_eq!(
        router.weight_from_file(written.as_bytes()).ok(),
        Some(weight),
        "canary's own file for {weight} % does not read back:\n{written}"
    );
}

/// What a `gateway.command`'s `get` printed, as [`CommandRouter::weight_from_output`] reads
/// it: a weight it accepts is at most 100 %.
pub fn command_output(data: &[u8]) {
    static ROUTER: OnceLock<CommandRouter> = OnceLock::new();
    let router = ROUTER.get_or_init(|| {
        let policy = Policy::from_yaml(
            include_str!("../policies/command.yaml"),
            "tests/fuzz/policies/command.yaml",
        )
        .expect("the fuzz command policy is valid");
        let Some(GatewaySpec::Command(spec)) = &policy.gateway else {
            panic!("the fuzz command policy's gateway is a command")
        };
        CommandRouter::new(spec)
    });
    hold_secret();
    match router.weight_from_output(data) {
        Ok(weight) => assert!(weight <= 100, "weight {weight} from the output"),
        Err(err) => check_error(err.into()),
    }
}
