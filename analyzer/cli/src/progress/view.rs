//! The live view's layout: a rollout as a few lines of text that fit a terminal `width`
//! columns wide, in the style of `kubectl argo rollouts get rollout --watch` but with the
//! evidence canary has.
//!
//! ```text
//! checkout · rollout 4711 · step 2/3 at 25 %
//! weight 25 % set, 25 % read back · 0:42 of 1:00 in the step ███████░░░
//! requests: canary 1,234 in the step · 2,537 canary, 10,021 baseline since the start
//! ✔ errors/slo        passing    errors 0.2 % (max 1 %)
//! … errors/baseline   gathering  errors 0.25 % vs baseline 0.2 %  ██░░░░░░░░ 21 % to fail
//! ✖ latency/slo       failing    p95 412 ms (max 300 ms)
//! 12:00:03 step: step 2 at 25%
//! ```
//!
//! Pure: the caller hands in the rollout, the policy, the time and the recent notices, and
//! gets lines back; the terminal is [`super::screen`]'s.
//!
//! Fitting: no line is ever longer than `width`. Each line is built of parts that have
//! shorter forms, and a line too wide gives up detail in a fixed order (documented in
//! docs/live-view.md) until it fits: first the words around numbers, then the progress bars,
//! then the state word (the mark ✔/✖/… still says it), then the measurement, then the
//! evidence. Every criterion keeps its own line whatever the width; only a name that alone
//! is wider than the terminal is cut, with `…`. The criteria's columns stay aligned: every
//! criterion line gives up the same detail.

use std::fmt::Write as _;
use std::time::Duration;

use canary_core::judge::{CheckResult, Verdict, count, evidence_progress, pct, plain_num};
use canary_core::policy::{CheckKind, CheckSpec, Criterion, Policy};
use canary_core::rollout::{Phase, PromotionStage, Rollout};
use jiff::Timestamp;

/// Everything the view shows.
pub(crate) struct Snapshot<'a> {
    /// The rollout as it stands.
    pub(crate) rollout: &'a Rollout,
    /// Its policy, when known (`canary status --service` has none): the number of steps,
    /// their length and the criteria's units come from it.
    pub(crate) policy: Option<&'a Policy>,
    /// The time to measure the step's progress against.
    pub(crate) now: Timestamp,
    /// The latest notices, oldest first, one line each.
    pub(crate) recent: &'a [String],
    /// Who drives the rollout, when the view is not drawn by that process itself.
    pub(crate) driver: Option<&'a str>,
}

/// A criterion's state, as the view names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Passing,
    Failing,
    Gathering,
    Broken,
}

impl State {
    pub(crate) fn of(verdict: Verdict) -> State {
        match verdict {
            Verdict::Pass => State::Passing,
            Verdict::Fail => State::Failing,
            Verdict::Inconclusive | Verdict::NoData => State::Gathering,
            Verdict::Error => State::Broken,
        }
    }

    /// The mark, readable without colour.
    pub(crate) fn mark(self) -> &'static str {
        match self {
            State::Passing => "✔",
            State::Failing => "✖",
            State::Gathering => "…",
            State::Broken => "!",
        }
    }

    pub(crate) fn word(self) -> &'static str {
        match self {
            State::Passing => "passing",
            State::Failing => "failing",
            State::Gathering => "gathering",
            State::Broken => "error",
        }
    }

    fn colour(self) -> Colour {
        match self {
            State::Passing => Colour::Green,
            State::Failing => Colour::Red,
            State::Gathering => Colour::Yellow,
            State::Broken => Colour::Red,
        }
    }
}

/// The few colours the view uses (SGR codes), only when colour is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Colour {
    Red,
    Green,
    Yellow,
    Dim,
    Bold,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Red => "31",
            Colour::Green => "32",
            Colour::Yellow => "33",
            Colour::Dim => "2",
            Colour::Bold => "1",
        }
    }
}

/// One piece of a line with its forms, longest first; the last may be empty (the part is
/// then left out).
#[derive(Clone, Debug)]
struct Part {
    forms: Vec<String>,
    colour: Option<Colour>,
    /// The form in use.
    at: usize,
}

impl Part {
    fn new(forms: Vec<String>) -> Part {
        Part {
            forms,
            colour: None,
            at: 0,
        }
    }

    fn fixed(text: impl Into<String>) -> Part {
        Part::new(vec![text.into()])
    }

    fn coloured(mut self, colour: Colour) -> Part {
        self.colour = Some(colour);
        self
    }

    fn text(&self) -> &str {
        &self.forms[self.at]
    }

    /// Moves to the next shorter form; false when there is none.
    fn shorten(&mut self) -> bool {
        if self.at + 1 < self.forms.len() {
            self.at += 1;
            true
        } else {
            false
        }
    }
}

/// The width of a text in terminal columns: every character the view writes is one column
/// (the marks, the bar's blocks, `…`, `·`), and outside text has been made printable.
fn columns(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to `width` columns, at a word when one ends close enough, with `…`.
pub(crate) fn cut(text: &str, width: usize) -> String {
    if columns(text) <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let keep: String = text.chars().take(width - 1).collect();
    // Cut at the last space in the kept text's second half, so a word is not cut through
    // when it need not be.
    let cut_at = keep
        .char_indices()
        .filter(|(_, c)| *c == ' ')
        .map(|(i, _)| i)
        .next_back()
        .filter(|&i| columns(&keep[..i]) >= (width - 1) / 2);
    let kept = match cut_at {
        Some(i) => keep[..i].trim_end(),
        None => keep.as_str(),
    };
    format!("{kept}…")
}

/// A line of parts joined by `separator`: gives up detail in `order` (indexes of parts; each
/// mention shortens that part once) until it fits, then cuts as a last resort.
fn fit_line(
    parts: &mut [Part],
    separator: &str,
    order: &[usize],
    width: usize,
    colour: bool,
) -> String {
    let plain = |parts: &[Part]| join(parts, separator, None, false);
    let mut steps = order.iter();
    while columns(&plain(parts)) > width {
        let Some(&index) = steps.next() else {
            return cut(&plain(parts), width);
        };
        if let Some(part) = parts.get_mut(index) {
            part.shorten();
        }
    }
    join(parts, separator, None, colour)
}

/// The parts' texts joined, the empty ones left out, each padded to `pad[i]` columns
/// (except the last), coloured when asked.
fn join(parts: &[Part], separator: &str, pad: Option<&[usize]>, colour: bool) -> String {
    join_with(parts, separator, separator, pad, colour)
}

/// [`join`], with `first` between the first two parts (a mark and what it marks).
fn join_with(
    parts: &[Part],
    first: &str,
    separator: &str,
    pad: Option<&[usize]>,
    colour: bool,
) -> String {
    let shown: Vec<(usize, &Part)> = parts
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.text().is_empty())
        .collect();
    let mut out = String::new();
    for (n, (i, part)) in shown.iter().enumerate() {
        if n == 1 {
            out.push_str(first);
        } else if n > 1 {
            out.push_str(separator);
        }
        let mut text = part.text().to_owned();
        if let Some(pad) = pad
            && n + 1 < shown.len()
        {
            let width = pad.get(*i).copied().unwrap_or(0);
            let missing = width.saturating_sub(columns(&text));
            text.extend(std::iter::repeat_n(' ', missing));
        }
        match part.colour {
            Some(c) if colour => {
                let _ = write!(out, "\x1b[{}m{text}\x1b[0m", c.code());
            }
            _ => out.push_str(&text),
        }
    }
    out
}

/// The columns of a table (the criteria): every row gives up the same detail (so that the
/// columns stay aligned) until the widest row fits; a row still too wide is cut.
fn fit_table(rows: &mut [Vec<Part>], order: &[usize], width: usize, colour: bool) -> Vec<String> {
    let pads = |rows: &[Vec<Part>]| -> Vec<usize> {
        let n = rows.iter().map(Vec::len).max().unwrap_or(0);
        (0..n)
            .map(|i| {
                rows.iter()
                    .filter_map(|r| r.get(i))
                    .map(|p| columns(p.text()))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    };
    let widest = |rows: &[Vec<Part>]| {
        let pad = pads(rows);
        rows.iter()
            .map(|r| columns(&join_with(r, " ", "  ", Some(&pad), false)))
            .max()
            .unwrap_or(0)
    };
    let mut steps = order.iter();
    while widest(rows) > width {
        let Some(&index) = steps.next() else {
            break;
        };
        for row in rows.iter_mut() {
            if let Some(part) = row.get_mut(index) {
                part.shorten();
            }
        }
    }
    let pad = pads(rows);
    rows.iter()
        .map(|row| {
            let plain = join_with(row, " ", "  ", Some(&pad), false);
            if columns(&plain) > width {
                cut(&plain, width)
            } else {
                join_with(row, " ", "  ", Some(&pad), colour)
            }
        })
        .collect()
}

/// The view's lines, none wider than `width` columns.
pub(crate) fn lines(snapshot: &Snapshot, width: usize, colour: bool) -> Vec<String> {
    let width = width.max(20);
    let mut out = vec![title(snapshot, width, colour)];
    if let Some(line) = weight_and_time(snapshot, width, colour) {
        out.push(line);
    }
    let assessment = snapshot.rollout.last_assessment();
    if let Some(line) = requests(snapshot, width, colour) {
        out.push(line);
    }
    match assessment {
        Some(assessment) if !assessment.checks.is_empty() => {
            out.extend(criteria(snapshot, &assessment.checks, width, colour));
        }
        _ => out.push(cut("  waiting for the first reading of the metrics", width)),
    }
    for notice in snapshot.recent {
        let line = cut(notice, width);
        out.push(if colour {
            format!("\x1b[{}m{line}\x1b[0m", Colour::Dim.code())
        } else {
            line
        });
    }
    out
}

/// `checkout · rollout 4711 · step 2/3 at 25 %`
fn title(snapshot: &Snapshot, width: usize, colour: bool) -> String {
    let rollout = snapshot.rollout;
    let of_steps = snapshot
        .policy
        .map(|p| format!("/{}", p.rollout.analysed_steps().len()))
        .unwrap_or_default();
    let stage: Vec<String> = match rollout.phase() {
        Phase::Starting => vec![
            "starting: pre-flight and before-hooks".to_owned(),
            "starting".to_owned(),
        ],
        Phase::Step {
            index,
            weight,
            extended,
            ..
        } => {
            let step = format!("step {}{of_steps} at {weight} %", index.saturating_add(1));
            if *extended {
                vec![format!("{step} (extended)"), format!("{step} (ext.)")]
            } else {
                vec![step]
            }
        }
        Phase::Promoting => vec!["promoting: setting 100 %".to_owned()],
        Phase::Soak { .. } => vec!["final soak at 100 %".to_owned()],
        Phase::Finalizing { stage } => vec![
            format!(
                "finalizing the promotion: {}",
                match stage {
                    PromotionStage::CopyToStable =>
                        "the stable Deployment takes the canary's template",
                    PromotionStage::RouteToStable => "traffic goes back to the stable Deployment",
                    PromotionStage::ScaleDownCanary => "the canary Deployment scales down",
                }
            ),
            "finalizing the promotion".to_owned(),
        ],
        Phase::Promoted => vec!["promoted".to_owned()],
        Phase::RollingBack { .. } => vec!["rolling back: setting 0 %".to_owned()],
        Phase::RolledBack { .. } => vec!["rolled back".to_owned()],
        Phase::Held { weight, .. } => vec![
            format!("held at {weight} %: `canary promote` or `canary abort` decides"),
            format!("held at {weight} %"),
        ],
        Phase::Failed { .. } => vec![
            "stopped on an error; `canary rollout` resumes it".to_owned(),
            "stopped on an error".to_owned(),
        ],
    };
    let stage_colour = match rollout.phase() {
        Phase::Promoted => Some(Colour::Green),
        Phase::RollingBack { .. } | Phase::RolledBack { .. } | Phase::Failed { .. } => {
            Some(Colour::Red)
        }
        Phase::Held { .. } => Some(Colour::Yellow),
        _ => None,
    };
    let mut stage = Part::new(stage);
    stage.colour = stage_colour;
    let id = rollout.id().map(|id| format!("rollout {id}"));
    let mut parts = vec![
        Part::fixed(rollout.service()).coloured(Colour::Bold),
        Part::new(match &id {
            Some(id) => vec![id.clone(), cut(id, 24), cut(id, 12), String::new()],
            None => vec![String::new()],
        }),
        stage,
        Part::new(match snapshot.driver {
            // A store describes its holder at length ("pid 4711 on build-7, last heartbeat
            // 2 s ago; …"): what comes before the first comma still says who drives it.
            Some(driver) => match driver.split_once(',') {
                Some((who, _)) => vec![driver.to_owned(), who.to_owned(), String::new()],
                None => vec![driver.to_owned(), String::new()],
            },
            None => vec![String::new()],
        }),
    ];
    fit_line(&mut parts, " · ", &[3, 1, 1, 1, 2], width, colour)
}

/// `weight 25 % set, 25 % read back · 0:42 of 1:00 in the step ███████░░░`, or the
/// reason of a decided rollout.
fn weight_and_time(snapshot: &Snapshot, width: usize, colour: bool) -> Option<String> {
    let rollout = snapshot.rollout;
    let read_back = rollout.weights().last().map(|w| w.weight);
    let (set, confirmed) = match rollout.phase() {
        Phase::Step {
            weight, weight_set, ..
        } => (Some(*weight), *weight_set),
        Phase::Soak { .. } | Phase::Promoting | Phase::Promoted => (Some(100), true),
        Phase::RollingBack { .. } | Phase::RolledBack { .. } => (Some(0), true),
        Phase::Held { weight, .. } => (Some(*weight), true),
        _ => (None, true),
    };
    let weight = match (set, read_back) {
        (Some(set), Some(read)) if confirmed && read == set => vec![
            format!("weight {set} % set, {read} % read back"),
            format!("weight {set} %, read {read} %"),
        ],
        (Some(set), Some(read)) => vec![
            format!("weight {set} % being set, {read} % read back"),
            format!("weight → {set} %, read {read} %"),
        ],
        (Some(set), None) => vec![
            format!("weight {set} % being set"),
            format!("weight → {set} %"),
        ],
        (None, Some(read)) => vec![
            format!("weight {read} % read back"),
            format!("weight {read} %"),
        ],
        (None, None) => vec![String::new()],
    };
    let (elapsed, length) = step_clock(snapshot);
    let (clock_forms, bar_forms) = match (elapsed, length) {
        (Some(elapsed), Some(length)) => (
            vec![
                format!("{} of {} in the step", clock(elapsed), clock(length)),
                format!("{} of {}", clock(elapsed), clock(length)),
            ],
            vec![
                bar(elapsed.as_secs_f64() / length.as_secs_f64().max(1e-9), 10),
                String::new(),
            ],
        ),
        (Some(elapsed), None) => (
            vec![format!("{} into the step", clock(elapsed)), clock(elapsed)],
            vec![String::new()],
        ),
        _ => (vec![String::new()], vec![String::new()]),
    };
    let decided = match rollout.phase() {
        Phase::RollingBack { reason, .. }
        | Phase::RolledBack { reason, .. }
        | Phase::Held { reason, .. } => Some(reason.clone()),
        Phase::Failed { error, .. } => Some(error.clone()),
        _ => rollout.outcome().map(|o| o.reason.clone()),
    };
    let reason_forms = match decided {
        Some(reason) => {
            let reason = super::strip_control(&reason);
            vec![reason.clone(), cut(&reason, width / 2)]
        }
        None => vec![String::new()],
    };
    let mut parts = vec![
        Part::new(weight),
        Part::new(clock_forms),
        Part::new(bar_forms).coloured(Colour::Dim),
        Part::new(reason_forms),
    ];
    if parts.iter().all(|p| p.text().is_empty()) {
        return None;
    }
    // The bar goes first, then the words; a long reason is cut last.
    Some(fit_line(&mut parts, " · ", &[2, 0, 1, 3], width, colour))
}

/// How long the step (or the soak) has run, and how long it lasts.
fn step_clock(snapshot: &Snapshot) -> (Option<Duration>, Option<Duration>) {
    let since = |started: &Timestamp| {
        let elapsed = snapshot.now.duration_since(*started).as_secs_f64().max(0.0);
        Some(Duration::from_secs_f64(elapsed))
    };
    let rollout_spec = snapshot.policy.map(|p| &p.rollout);
    match snapshot.rollout.phase() {
        Phase::Step {
            started_at: Some(started),
            extended,
            ..
        } => (
            since(started),
            rollout_spec.map(|r| {
                if *extended {
                    r.max_step_duration
                } else {
                    r.step_duration
                }
            }),
        ),
        Phase::Soak { started_at } => (since(started_at), rollout_spec.and_then(|r| r.final_soak)),
        _ => (None, None),
    }
}

/// `0:42`, `1:02:05`.
fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// `███░░░░░░░`: `done` (0 to 1) of `cells` cells, to the nearest cell.
fn bar(done: f64, cells: usize) -> String {
    let done = if done.is_finite() {
        done.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let full = ((done * cells as f64).round() as usize).min(cells);
    let mut out = String::with_capacity(cells * 3);
    out.extend(std::iter::repeat_n('█', full));
    out.extend(std::iter::repeat_n('░', cells - full));
    out
}

/// `requests: canary 1,234 in the step · 2,537 canary, 10,021 baseline since the start`
fn requests(snapshot: &Snapshot, width: usize, colour: bool) -> Option<String> {
    let assessment = snapshot.rollout.last_assessment()?;
    // The request counts since the start are those of the first request-counting test.
    let totals = assessment
        .checks
        .iter()
        .filter(|c| c.kind == "error-rate")
        .max_by_key(|c| c.evidence.baseline_n.is_some())
        .and_then(|c| Some((c.evidence.canary_n?, c.evidence.baseline_n)));
    let in_step = assessment.canary_requests_in_step;
    if in_step.is_none() && totals.is_none() {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(n) = in_step {
        parts.push(Part::new(vec![
            format!("requests: canary {} in the step", count(n)),
            format!("canary {} in step", count(n)),
        ]));
    }
    if let Some((canary, baseline)) = totals {
        let forms = match baseline {
            Some(baseline) => vec![
                format!(
                    "{} canary, {} baseline since the start",
                    count(canary),
                    count(baseline)
                ),
                format!("{} vs {} baseline in all", count(canary), count(baseline)),
                String::new(),
            ],
            None => vec![
                format!("{} canary since the start", count(canary)),
                format!("{} in all", count(canary)),
                String::new(),
            ],
        };
        parts.push(Part::new(forms));
    }
    let order: Vec<usize> = (0..parts.len()).rev().chain(0..parts.len()).collect();
    Some(fit_line(&mut parts, " · ", &order, width, colour))
}

/// One line per criterion: mark, name, state, measurement, evidence.
fn criteria(
    snapshot: &Snapshot,
    checks: &[CheckResult],
    width: usize,
    colour: bool,
) -> Vec<String> {
    let mut rows: Vec<Vec<Part>> = checks
        .iter()
        .map(|check| {
            let state = State::of(check.verdict);
            let spec = snapshot
                .policy
                .and_then(|p| p.checks.iter().find(|s| s.name == check.check));
            let measurement = measurement(check, spec);
            vec![
                Part::fixed(state.mark()).coloured(state.colour()),
                Part::fixed(super::strip_control(&check.name)),
                Part::new(vec![state.word().to_owned(), String::new()]).coloured(state.colour()),
                Part::new(measurement),
                Part::new(evidence(check)).coloured(match state {
                    State::Failing => Colour::Red,
                    _ => Colour::Yellow,
                }),
            ]
        })
        .collect();
    // What goes first when the line is too wide: the words around the evidence, then its
    // bar's length, then the measurement's words, the state word (the mark stays), the bar,
    // the measurement, and last the evidence's percentage.
    fit_table(&mut rows, &[4, 4, 3, 2, 4, 3, 4, 4], width, colour)
}

/// How far a criterion's evidence is towards failing it: `██░░░░░░░░ 21 % to fail`, for
/// the criteria judged by an e-value (it fails the criterion at `1/α`).
fn evidence(check: &CheckResult) -> Vec<String> {
    let e = &check.evidence;
    let Some(e_value) = e.e_value.filter(|_| e.alpha > 0.0) else {
        return vec![String::new()];
    };
    let progress = if check.verdict == Verdict::Fail {
        1.0
    } else {
        evidence_progress(e_value, e.alpha)
    };
    let share = format!("{} %", (progress * 100.0).floor());
    vec![
        format!("{} {share} of the way to failing", bar(progress, 10)),
        format!("{} {share} to fail", bar(progress, 10)),
        format!("{} {share}", bar(progress, 5)),
        format!("{share} to fail"),
        share,
        String::new(),
    ]
}

/// What a criterion measures now, against its bound, in the policy's units; longest first.
fn measurement(check: &CheckResult, spec: Option<&CheckSpec>) -> Vec<String> {
    let e = &check.evidence;
    let latency = Latency::of(spec);
    let forms = match (
        check.kind.as_str(),
        check.criterion,
        e.estimate,
        e.threshold,
    ) {
        (_, _, None, _) => return vec![String::new()],
        ("error-rate", Criterion::Slo, Some(rate), Some(max)) => vec![
            format!("errors {} (max {})", pct(rate), pct(max)),
            format!("{} (max {})", pct(rate), pct(max)),
        ],
        ("error-rate", Criterion::Baseline, _, _) => {
            let canary = share(e.canary_events, e.canary_n);
            match (canary, e.baseline_estimate) {
                (Some(canary), Some(baseline)) => vec![
                    format!("errors {} vs baseline {}", pct(canary), pct(baseline)),
                    format!("{} vs {}", pct(canary), pct(baseline)),
                ],
                _ => vec![String::new()],
            }
        }
        ("latency", Criterion::Slo, Some(value), Some(max)) => vec![
            format!(
                "{} {} (max {})",
                latency.quantile_name(),
                latency.say(value),
                latency.say(max)
            ),
            format!("{} {}", latency.quantile_name(), latency.say(value)),
        ],
        ("latency", Criterion::Baseline, _, _) => {
            let lead = e.bounds.iter().find(|b| {
                Some(b.canary_n) == e.canary_n && Some(b.canary_events) == e.canary_events
            });
            match lead.and_then(|b| {
                Some((
                    b.bound,
                    share(Some(b.canary_events), Some(b.canary_n))?,
                    share(Some(b.baseline_events), Some(b.baseline_n))?,
                ))
            }) {
                Some((bound, canary, baseline)) => vec![
                    format!(
                        "{} vs baseline {} slower than {}",
                        pct(canary),
                        pct(baseline),
                        latency.say(bound)
                    ),
                    format!(
                        "{} vs {} >{}",
                        pct(canary),
                        pct(baseline),
                        latency.say(bound)
                    ),
                ],
                None => vec![String::new()],
            }
        }
        (_, _, Some(value), Some(bound)) => vec![
            format!("now {} (bound {})", plain_num(value), plain_num(bound)),
            plain_num(value),
        ],
        (_, _, Some(value), None) => vec![format!("now {}", plain_num(value))],
    };
    let mut forms = forms;
    forms.push(String::new());
    forms
}

fn share(events: Option<u64>, n: Option<u64>) -> Option<f64> {
    let (events, n) = (events?, n?);
    (n > 0).then(|| events as f64 / n as f64)
}

/// How a latency criterion's values are said: the quantile's name, ms or s as the policy's
/// own bound is (as the reports say them).
struct Latency {
    quantile: f64,
    seconds: bool,
}

impl Latency {
    fn of(spec: Option<&CheckSpec>) -> Latency {
        let quantile = match spec.map(|s| &s.kind) {
            Some(CheckKind::Latency(latency)) => latency.quantile,
            _ => 0.95,
        };
        let seconds = spec.and_then(|s| s.slo).is_some_and(|slo| slo.max >= 1.0);
        Latency { quantile, seconds }
    }

    fn quantile_name(&self) -> String {
        format!("p{}", plain_num(self.quantile * 100.0))
    }

    fn say(&self, seconds: f64) -> String {
        if self.seconds {
            format!("{} s", plain_num(seconds))
        } else {
            format!("{} ms", plain_num(seconds * 1000.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_ends_at_a_word_with_an_ellipsis() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(
            cut("rolling back: errors 6.7 % vs baseline", 20),
            "rolling back:…"
        );
        assert_eq!(columns(&cut("abcdefghijklmnopqrstuvwxyz", 10)), 10);
        assert_eq!(cut("abcdefghijklmnopqrstuvwxyz", 10), "abcdefghi…");
    }

    #[test]
    fn a_bar_has_its_length_whatever_the_share() {
        for done in [0.0, 0.05, 0.5, 0.99, 1.0, 7.0, f64::NAN, -1.0] {
            assert_eq!(columns(&bar(done, 10)), 10, "{done}");
        }
        assert_eq!(bar(0.5, 4), "██░░");
        assert_eq!(bar(1.0, 2), "██");
        assert_eq!(bar(f64::NAN, 3), "░░░");
    }

    #[test]
    fn clocks_read_as_minutes_and_seconds() {
        assert_eq!(clock(Duration::from_secs(42)), "0:42");
        assert_eq!(clock(Duration::from_secs(605)), "10:05");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}
