//! Progress as the rollout goes, for a person at a terminal or for a pipeline's log.
//!
//! Four ways, chosen once from the global flags and the environment:
//! - **live** (stderr is a terminal, `CI` unset, `TERM` not `dumb`): a view of the rollout
//!   redrawn in place ([`view`] lays it out, [`screen`] draws it) — step, weight set and
//!   read back, the step's clock, requests, one line per criterion with its evidence, the
//!   last notices — in colour unless `NO_COLOR` is set; the driver's own lines go above it;
//! - **plain** (a pipeline: no terminal, `CI` set, or a dumb terminal that cannot move its
//!   cursor): one line per tick and per decision, no control characters, so CI logs stay
//!   readable;
//! - **json** (`--log-format json`): one JSON object per tick and per decision;
//! - **quiet** (`--quiet`): decisions and errors only.
//!
//! `--verbose` adds the driver's own lines (weights being set, hooks) and debug logs from
//! the crates (through `tracing`, on stderr in the same format).

mod screen;
pub(crate) mod view;

use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use canary_core::policy::Policy;
use canary_core::rollout::{Notice, NoticeKind, Rollout};
use jiff::Timestamp;

use screen::LiveScreen;
pub(crate) use screen::end_active as end_live_view;

/// How progress and logs are written; set once from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for people (a live view on a terminal).
    Plain,
    /// One JSON object per line.
    Json,
}

/// The global output settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) quiet: bool,
    pub(crate) verbose: bool,
    pub(crate) format: LogFormat,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Records the global settings and sets up `tracing` for the crates' own logs.
pub(crate) fn init(settings: Settings) {
    let _ = SETTINGS.set(settings);
    let level = if settings.verbose { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr)
        .with_ansi(live_terminal() && colour_wanted());
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.try_init(),
    };
}

/// stderr for `tracing`, each line redacted of every secret the process holds on its way
/// out: a log line's fields may quote outside text (an error's cause, a retried answer).
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter hands over one whole event per call, so a secret is never split
        // between two calls.
        let text = String::from_utf8_lossy(buf);
        let text = canary_core::secret::redact(&text);
        if !screen::print_above_active(&text) {
            std::io::stderr().write_all(text.as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn settings() -> Settings {
    SETTINGS.get().copied().unwrap_or(Settings {
        quiet: false,
        verbose: false,
        format: LogFormat::Plain,
    })
}

/// Whether standard error is a terminal the live view can be drawn on: a terminal, not a
/// CI runner's (`CI` set: its log keeps every byte), and not one that cannot move its
/// cursor (`TERM=dumb`).
fn live_terminal() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("CI").is_none()
        && std::env::var_os("TERM").is_none_or(|term| term != "dumb")
}

/// Whether colour is wanted: unless `NO_COLOR` is set to anything (<https://no-color.org>).
fn colour_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Where progress goes.
#[derive(Debug)]
pub(crate) struct Progress {
    mode: Mode,
    verbose: bool,
    /// Criteria whose judge warning (totals that fell) was printed: once each, the report
    /// has the final counts.
    warned: Vec<String>,
    /// For `canary status --watch` in plain mode: the last state line printed, so that a
    /// line is printed only when something changed.
    last_watched: Option<String>,
}

#[derive(Debug)]
enum Mode {
    Live(Arc<LiveScreen>),
    Plain,
    Json,
    Quiet,
}

impl Progress {
    /// Progress as the global settings say; `quiet` adds the command's own `--quiet`.
    pub(crate) fn new(quiet: bool) -> Progress {
        let settings = settings();
        let mode = if quiet || settings.quiet {
            Mode::Quiet
        } else if settings.format == LogFormat::Json {
            Mode::Json
        } else if live_terminal() {
            Mode::Live(LiveScreen::start(colour_wanted()))
        } else {
            Mode::Plain
        };
        Progress {
            mode,
            verbose: settings.verbose,
            warned: Vec::new(),
            last_watched: None,
        }
    }

    /// Tells the live view the rollout's policy: its number of steps, their length, the
    /// criteria's units.
    pub(crate) fn set_policy(&mut self, policy: &Policy) {
        if let Mode::Live(screen) = &self.mode {
            screen.set_policy(policy);
        }
    }

    /// A notice from the machine.
    pub(crate) fn notice(&mut self, notice: &Notice, rollout: &Rollout) {
        let is_tick = notice.kind == NoticeKind::Tick;
        match &self.mode {
            Mode::Quiet if is_tick => {}
            Mode::Quiet | Mode::Plain => eprintln!("{}", plain_line(notice)),
            Mode::Json => eprintln!("{}", json_line(notice, rollout)),
            Mode::Live(screen) => {
                if !is_tick {
                    screen.notice(short_line(notice));
                }
                screen.show(rollout);
            }
        }
        self.judge_warnings(rollout);
    }

    /// `canary status --watch`: the rollout as its state file has it now, driven by
    /// `driver` (another process). The live view redraws; the other modes print a line when
    /// the state changed since the last one.
    pub(crate) fn watch(&mut self, rollout: &Rollout, driver: Option<String>) {
        match &self.mode {
            Mode::Live(screen) => {
                screen.set_driver(driver);
                screen.set_recent(recorded_steps(rollout));
                screen.show(rollout);
            }
            Mode::Quiet => {}
            Mode::Plain | Mode::Json => {
                let line = watch_line(rollout);
                if self.last_watched.as_ref() != Some(&line) {
                    if matches!(self.mode, Mode::Json) {
                        eprintln!("{}", watch_json(rollout));
                    } else {
                        eprintln!(
                            "{} {} {line}",
                            Timestamp::now().strftime("%H:%M:%S"),
                            rollout.service()
                        );
                    }
                    self.last_watched = Some(line);
                }
            }
        }
    }

    /// The judge's warnings, each criterion's the first time it has one (the JSON lines carry
    /// them on every tick).
    fn judge_warnings(&mut self, rollout: &Rollout) {
        let Some(assessment) = rollout.last_assessment() else {
            return;
        };
        for warning in &assessment.warnings {
            let criterion = warning.split(':').next().unwrap_or_default().to_owned();
            if self.warned.contains(&criterion) {
                continue;
            }
            self.warned.push(criterion);
            let line = format!(
                "{} {} warning: {}",
                Timestamp::now().strftime("%H:%M:%S"),
                rollout.service(),
                strip_control(warning)
            );
            match &self.mode {
                Mode::Plain | Mode::Quiet => eprintln!("{line}"),
                Mode::Live(screen) => screen.print_above(&line),
                Mode::Json => {}
            }
        }
    }

    /// A line from the driver (weights being set, hooks); shown with `--verbose`, and always
    /// for the decisions' side effects a person should see.
    pub(crate) fn line(&mut self, text: &str) {
        let stamp = Timestamp::now().strftime("%H:%M:%S");
        let routine = text.starts_with("setting canary weight");
        match &self.mode {
            Mode::Quiet => {}
            Mode::Json => eprintln!(
                "{}",
                serde_json::json!({"time": Timestamp::now().to_string(), "kind": "info", "message": text})
            ),
            Mode::Plain if self.verbose || !routine => eprintln!("{stamp} {text}"),
            Mode::Plain => {}
            // The view shows the weight being set; the line is for --verbose.
            Mode::Live(screen) if self.verbose || !routine => {
                screen.print_above(&format!("{stamp} {}", strip_control(text)))
            }
            Mode::Live(_) => {}
        }
    }

    /// Ends the live view, if any, leaving its last frame on the screen; what is printed
    /// next starts on a line of its own below it. Progress after this is plain lines.
    pub(crate) fn finish(&mut self) {
        if let Mode::Live(screen) = &self.mode {
            screen.end();
            self.mode = Mode::Plain;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A notice as the live view lists it: `12:00:03 step: step 2 at 25%`.
/// (The kind is left out when the message already starts with it: `promoted: promoted: …`
/// says it twice.)
fn short_line(notice: &Notice) -> String {
    let message = strip_control(&notice.message);
    let kind = notice.kind.as_str().replace('-', " ");
    let said = message
        .get(..kind.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(&kind));
    let stamp = Timestamp::now().strftime("%H:%M:%S");
    if said {
        format!("{stamp} {message}")
    } else {
        format!("{stamp} {kind}: {message}")
    }
}

/// The steps a state recorded as decided, as `status --watch`'s view lists them in place
/// of the notices it did not see: `12:00:03 step 1 at 10 %: advance — all criteria passed`.
fn recorded_steps(rollout: &Rollout) -> Vec<String> {
    rollout
        .steps()
        .iter()
        .filter_map(|step| {
            let ended = step.ended_at?;
            Some(format!(
                "{} step {} at {} %: {} — {}",
                ended.strftime("%H:%M:%S"),
                step.index.saturating_add(1),
                step.weight,
                strip_control(&step.decision),
                strip_control(&step.reason)
            ))
        })
        .collect()
}

/// What `status --watch` prints in a pipeline when the state changed: the phase, the
/// weight, each criterion's verdict.
fn watch_line(rollout: &Rollout) -> String {
    let mut line = format!(
        "{} weight {} %",
        rollout.phase().name(),
        rollout.current_weight()
    );
    if let Some(assessment) = rollout.last_assessment() {
        if let Some(requests) = assessment.canary_requests_in_step {
            line.push_str(&format!(" canary-requests {requests}"));
        }
        for check in &assessment.checks {
            line.push_str(&format!(
                " {}={}",
                strip_control(&check.name),
                check.verdict.as_str()
            ));
        }
    }
    if let Some(outcome) = rollout.outcome() {
        line.push_str(&format!(
            " outcome: {} (exit {})",
            strip_control(&outcome.reason),
            outcome.exit.code()
        ));
    }
    line
}

/// The JSON line of `status --watch --log-format json`.
fn watch_json(rollout: &Rollout) -> String {
    serde_json::json!({
        "time": Timestamp::now().to_string(),
        "service": rollout.service(),
        "kind": "status",
        "phase": rollout.phase().name(),
        "weight": rollout.current_weight(),
        "outcome": rollout.outcome(),
        "checks": rollout.last_assessment().map(|a| a.checks.iter().map(|c| serde_json::json!({
            "name": c.name,
            "verdict": c.verdict,
        })).collect::<Vec<_>>()),
    })
    .to_string()
}

/// `HH:MM:SS service kind: message` — what CI logs show.
fn plain_line(notice: &Notice) -> String {
    format!(
        "{} {} {}: {}",
        Timestamp::now().strftime("%H:%M:%S"),
        notice.service,
        notice.kind,
        strip_control(&notice.message)
    )
}

/// One JSON object: the notice, and for ticks the standing of every check.
fn json_line(notice: &Notice, rollout: &Rollout) -> String {
    let mut value = serde_json::json!({
        "time": Timestamp::now().to_string(),
        "service": notice.service,
        "kind": notice.kind,
        "weight": notice.weight,
        "phase": rollout.phase().name(),
        "message": notice.message,
    });
    if notice.kind == NoticeKind::Tick
        && let Some(assessment) = rollout.last_assessment()
    {
        value["canary_requests_in_step"] = serde_json::json!(assessment.canary_requests_in_step);
        if !assessment.warnings.is_empty() {
            value["warnings"] = serde_json::json!(assessment.warnings);
        }
        value["checks"] = serde_json::Value::Array(
            assessment
                .checks
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "name": c.name,
                        "verdict": c.verdict,
                        "estimate": c.evidence.estimate.filter(|x| x.is_finite()),
                        "threshold": c.evidence.threshold.filter(|x| x.is_finite()),
                        "e_value": c.evidence.e_value.filter(|x| x.is_finite()),
                    })
                })
                .collect(),
        );
    }
    value.to_string()
}

/// Keeps a line free of control characters (a check name or an error text could carry
/// one), so CI logs never get escape codes from us.
pub(crate) fn strip_control(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect()
}
