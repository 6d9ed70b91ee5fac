//! Progress as the rollout goes, for a person at a terminal or for a pipeline's log.
//!
//! Four ways, chosen once from the global flags and the environment:
//! - **live** (stderr is a terminal, `CI` unset): an indicatif view of the current step —
//!   weight, time left in the step, requests per version, each check's standing — with the
//!   decisions printed above it as they happen;
//! - **plain** (a pipeline: no terminal, or `CI` set): one line per tick and per decision, no
//!   control characters, so CI logs stay readable;
//! - **json** (`--log-format json`): one JSON object per tick and per decision;
//! - **quiet** (`--quiet`): decisions and errors only.
//!
//! `--verbose` adds the driver's own lines (weights being set, hooks) and debug logs from
//! the crates (through `tracing`, on stderr in the same format).

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use canary_core::judge::{Assessment, fmt_num};
use canary_core::rollout::{Notice, NoticeKind, Phase, Rollout};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;

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
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("CI").is_none());
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
        std::io::stderr().write_all(canary_core::secret::redact(&text).as_bytes())?;
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

/// Where progress goes.
#[derive(Debug)]
pub(crate) struct Progress {
    mode: Mode,
    verbose: bool,
    /// The policy's step duration, for the live view's bar.
    step: Duration,
    /// Criteria whose judge warning (totals that fell) was printed: once each, the report
    /// has the final counts.
    warned: Vec<String>,
}

#[derive(Debug)]
enum Mode {
    Live(ProgressBar),
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
        } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            let bar = ProgressBar::new(1000);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Mode::Live(bar)
        } else {
            Mode::Plain
        };
        Progress {
            mode,
            verbose: settings.verbose,
            step: Duration::from_secs(60),
            warned: Vec::new(),
        }
    }

    /// Tells the live view how long a step lasts.
    pub(crate) fn set_step_duration(&mut self, step: Duration) {
        self.step = step;
    }

    /// A notice from the machine.
    pub(crate) fn notice(&mut self, notice: &Notice, rollout: &Rollout) {
        let is_tick = notice.kind == NoticeKind::Tick;
        match &self.mode {
            Mode::Quiet if is_tick => {}
            Mode::Quiet | Mode::Plain => eprintln!("{}", plain_line(notice)),
            Mode::Json => eprintln!("{}", json_line(notice, rollout)),
            Mode::Live(bar) => {
                if !is_tick {
                    bar.println(plain_line(notice));
                }
                update_live(bar, rollout, self.step);
            }
        }
        self.judge_warnings(rollout);
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
                Mode::Live(bar) => bar.println(line),
                Mode::Json => {}
            }
        }
    }

    /// A line from the driver (weights being set, hooks); shown with `--verbose`, and always
    /// for the decisions' side effects a person should see.
    pub(crate) fn line(&mut self, text: &str) {
        let stamp = Timestamp::now().strftime("%H:%M:%S");
        match &self.mode {
            Mode::Quiet => {}
            Mode::Json => eprintln!(
                "{}",
                serde_json::json!({"time": Timestamp::now().to_string(), "kind": "info", "message": text})
            ),
            Mode::Plain if self.verbose || !text.starts_with("setting canary weight") => {
                eprintln!("{stamp} {text}")
            }
            Mode::Plain => {}
            Mode::Live(bar) => bar.println(format!("{stamp} {text}")),
        }
    }

    /// Ends the live view, if any.
    pub(crate) fn finish(&mut self) {
        if let Mode::Live(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
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

/// The live view: step, weight, time left, requests, standings.
fn update_live(bar: &ProgressBar, rollout: &Rollout, step: Duration) {
    let weight = rollout.current_weight();
    let standings = standings(rollout.last_assessment());
    match rollout.phase() {
        Phase::Step {
            index,
            started_at: Some(started),
            ..
        } => {
            let elapsed = Timestamp::now()
                .duration_since(*started)
                .as_secs_f64()
                .max(0.0);
            let left = (step.as_secs_f64() - elapsed).max(0.0);
            bar.set_length(step.as_millis().max(1) as u64);
            bar.set_position((elapsed * 1000.0) as u64);
            bar.set_prefix(format!("step {} at {weight}%", index + 1));
            bar.set_message(format!("{left:.0}s left  {standings}"));
        }
        other => {
            bar.set_prefix(format!("{} at {weight}%", other.name()));
            bar.set_message(standings);
        }
    }
}

/// `requests 512 | errors/slo pass 0.2% (max 1%) | …`
fn standings(assessment: Option<&Assessment>) -> String {
    let Some(assessment) = assessment else {
        return "waiting for the first reading".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(requests) = assessment.canary_requests_in_step {
        parts.push(format!("canary requests {requests}"));
    }
    for check in &assessment.checks {
        let e = &check.evidence;
        let mut part = format!("{} {}", check.name, check.verdict.as_str());
        match (e.estimate, e.threshold, e.e_value) {
            (_, _, Some(ev)) => part.push_str(&format!(" e={}", fmt_num(ev))),
            (Some(est), Some(max), None) => {
                part.push_str(&format!(" {}≤{}", fmt_num(est), fmt_num(max)))
            }
            _ => {}
        }
        parts.push(part);
    }
    for warning in &assessment.warnings {
        parts.push(format!("warning: {warning}"));
    }
    parts.join(" | ")
}

/// Keeps a line free of control characters (a check name or an error text could carry
/// one), so CI logs never get escape codes from us.
fn strip_control(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect()
}
