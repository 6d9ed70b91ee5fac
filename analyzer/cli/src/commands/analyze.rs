//! `canary analyze`: one judgement of a canary against its baseline over a window, from
//! recorded data (`--input`), from Prometheus over a time range, or from direct scrapes of
//! the versions' `/metrics` pages while it watches.
//!
//! Live, it reads a tick every policy interval from `start + interval` to `end` (and at
//! `end`), each cumulative since `start`, waiting for ticks that lie in the future, then
//! judges them exactly as it judges a recording: same judge, same report, same exit codes.
//! A window wholly in the past is read from Prometheus with one query of raw samples per
//! error-rate or latency check, and from Datadog and CloudWatch with one range request per
//! check (`MetricsSource::read_past`), giving the same ticks as one query per check per tick
//! (`--query-per-tick`) with far fewer requests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use canary_core::ExitCode;
use canary_core::analysis;
use canary_core::observation::Tick;
use canary_core::policy::{MetricsSourceSpec, Policy};
use canary_core::recording::Recording;
use canary_core::report::Report;
use canary_core::report::RunVerdict;
use clap::Args;
use jiff::Timestamp;

use crate::render::{self, OutputSpec};

/// More ticks than this is a window too long for its interval (and a flood of queries).
const MAX_TICKS: u64 = 20_000;

#[derive(Debug, Args)]
pub(crate) struct AnalyzeCommand {
    /// The service's policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,

    /// Judge recorded data (the format `--record` writes; see docs/recording-format.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prometheus", "window", "start", "end", "record"])]
    input: Option<PathBuf>,

    /// Query this Prometheus-compatible API (base URL) instead of the policy's
    /// `metrics.prometheus.url`.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,

    /// Analyse the last DURATION (e.g. 30m), ending now. With a `scrape` source: watch for
    /// DURATION from now.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with_all = ["start", "end"])]
    window: Option<Duration>,

    /// Start of the analysed range: RFC 3339 (2026-11-22T10:00:00Z) or unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "end")]
    start: Option<Timestamp>,

    /// End of the analysed range (as --start); ticks in the future are waited for.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "start")]
    end: Option<Timestamp>,

    /// Read a past window with one query per check per tick (as a rollout does) instead of
    /// one query of raw samples per error-rate or latency check for the whole window (the
    /// default; the same numbers, see docs/metrics-sources.md). For a server whose
    /// `increase()` is not Prometheus' (VictoriaMetrics), or a window whose samples are over
    /// `max-answer-size`.
    #[arg(long, conflicts_with = "input")]
    query_per_tick: bool,

    /// Save what was read, in the format `--input` replays (docs/recording-format.md).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,

    /// Write a report: FORMAT:PATH with FORMAT one of json, markdown, junit, html; PATH `-`
    /// is standard output (one report at most; the summary then goes to standard error).
    /// Repeatable.
    /// The markdown report is also appended to $GITHUB_STEP_SUMMARY when that is set.
    #[arg(long = "output", value_name = "FORMAT:PATH")]
    outputs: Vec<OutputSpec>,

    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

/// What is judged: ticks cumulative since `started_at`.
struct Evidence {
    started_at: Timestamp,
    ended_at: Timestamp,
    ticks: Vec<Tick>,
    source: String,
    origin: String,
}

impl AnalyzeCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        render::check_outputs(&self.outputs)?;
        let policy = super::load_policy(&self.policy)?;
        let evidence = match &self.input {
            Some(input) => recorded(&policy, input)?,
            None => match self.live(&policy) {
                Ok(evidence) => evidence,
                Err(err) => return Err(self.report_failure(&policy, err)),
            },
        };
        let outcome = analysis::analyze(&policy, &evidence.ticks)
            .with_context(|| format!("judging {}", evidence.origin))?;
        let code = analysis::exit_code(outcome.assessment.verdict);
        let report = Report {
            verdict: outcome.assessment.verdict.into(),
            reason: outcome.assessment.reason.clone(),
            exit_code: code.code(),
            command: "analyze".to_owned(),
            service: policy.service.clone(),
            policy: self.policy.display().to_string(),
            source: evidence.source,
            alpha: policy.rollout.alpha,
            alpha_per_check: policy.alpha_per_criterion(),
            started_at: evidence.started_at,
            ended_at: evidence.ended_at,
            decided_at: outcome.decided_at,
            checks: outcome.assessment.checks,
            steps: Vec::new(),
            weights: Vec::new(),
            timeline: outcome.timeline,
            warnings: outcome.warnings,
            promoted_by_hand: None,
            canary_exposed_seconds: None,
        };
        if !self.quiet {
            render::print_summary(&report, &self.outputs);
        }
        // The analysis has decided; a report that cannot be written does not change that.
        render::write_all_or_warn(&report, &self.outputs);
        Ok(code)
    }

    /// When reading the evidence failed outside canary's control (exit 4: the metrics source
    /// is down, answers with an error or an HTML page, hangs), the requested reports are
    /// still written — verdict `error`, the failure as the reason, every criterion `nodata`
    /// — so a CI job's artifacts say what happened. Bad input (exit 2) writes none: there is
    /// no analysis to report. Returns the error, for the exit code and the message.
    fn report_failure(&self, policy: &Policy, err: anyhow::Error) -> anyhow::Error {
        let code = crate::app::exit_code_of(&err);
        if code != ExitCode::Infrastructure {
            return err;
        }
        let now = Timestamp::now();
        let checks = analysis::analyze(policy, &[])
            .map(|outcome| outcome.assessment.checks)
            .unwrap_or_default();
        let report = Report {
            verdict: RunVerdict::Error,
            reason: format!("the metrics could not be read: {err:#}"),
            exit_code: code.code(),
            command: "analyze".to_owned(),
            service: policy.service.clone(),
            policy: self.policy.display().to_string(),
            source: super::describe_metrics_source(policy, self.prometheus.as_deref()),
            alpha: policy.rollout.alpha,
            alpha_per_check: policy.alpha_per_criterion(),
            started_at: self.start.unwrap_or(now),
            ended_at: now,
            decided_at: None,
            checks,
            steps: Vec::new(),
            weights: Vec::new(),
            timeline: Vec::new(),
            warnings: Vec::new(),
            promoted_by_hand: None,
            canary_exposed_seconds: None,
        };
        // The run has already failed; a report that cannot be written is said, not raised.
        render::write_all_or_warn(&report, &self.outputs);
        err
    }

    /// Reads the ticks from the policy's source (or `--prometheus`).
    fn live(&self, policy: &Policy) -> anyhow::Result<Evidence> {
        let scrape = matches!(policy.metrics, MetricsSourceSpec::Scrape(_));
        // Whole milliseconds, so the ticks of `--window` fall on readable times.
        let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond())?;
        let (start, end) = match (self.window, self.start, self.end) {
            (Some(window), None, None) => {
                let window = jiff::SignedDuration::try_from(window)
                    .map_err(|_| usage("--window is too long"))?;
                if scrape {
                    (now, now.checked_add(window)?)
                } else {
                    (now.checked_sub(window)?, now)
                }
            }
            (None, Some(_), Some(_)) if scrape => {
                return Err(usage(
                    "the policy's source is `scrape`, which reads the present only: use --window DURATION to watch from now (or query a Prometheus with --start/--end)",
                ));
            }
            (None, Some(start), Some(end)) => (start, end),
            _ => {
                return Err(usage(
                    "say what to analyse: --window DURATION, --start TIME --end TIME, or --input FILE",
                ));
            }
        };
        if end <= start {
            return Err(usage(format!(
                "--end ({end}) must be after --start ({start})"
            )));
        }
        let times = tick_times(start, end, policy.rollout.interval)?;
        if let MetricsSourceSpec::Prometheus(spec) = &policy.metrics
            && spec.insecure_skip_tls_verify
        {
            eprintln!(
                "WARNING: TLS certificate verification is OFF for Prometheus (metrics.prometheus.insecure-skip-tls-verify): its answers could be forged"
            );
        }
        let source = super::metrics_source(policy, self.prometheus.as_deref())?;
        let description = source.describe();
        if !self.quiet {
            eprintln!(
                "reading {} ticks from {description}: {start} to {end}, every {}",
                times.len(),
                humantime::format_duration(policy.rollout.interval)
            );
        }
        let runtime = super::runtime()?;
        let past = !scrape && !self.query_per_tick && end <= now;
        let ticks = runtime.block_on(async {
            // As a rollout's pre-flight: a metric the provider does not know (a misspelt
            // Datadog or CloudWatch errors metric, which would read as no errors) is bad
            // input before anything is judged.
            source
                .preflight()
                .await
                .with_context(|| format!("asking {description} before reading"))?;
            if past {
                // One query of raw samples per counter check for the whole window.
                return source
                    .read_past(start, &times)
                    .await
                    .with_context(|| format!("reading the window {start} to {end}"));
            }
            if scrape {
                // The first scrape is the zero the totals count from.
                source
                    .read(start, start)
                    .await
                    .context("taking the first scrape")?;
            }
            let mut ticks = Vec::with_capacity(times.len());
            for (i, &at) in times.iter().enumerate() {
                let wait = at.duration_since(Timestamp::now());
                let live = wait.is_positive();
                if live {
                    tokio::time::sleep(wait.unsigned_abs()).await;
                }
                let tick = source.read(start, at).await.with_context(|| {
                    format!("reading the tick at {at} ({} of {})", i + 1, times.len())
                })?;
                if live && !self.quiet {
                    eprintln!("[{}/{}] {at}: {}", i + 1, times.len(), tick_summary(&tick));
                }
                ticks.push(tick);
            }
            anyhow::Ok(ticks)
        })?;
        if let Some(path) = &self.record {
            let mut recording =
                Recording::new(policy.service.clone(), start, Some(description.clone()));
            recording.ticks = ticks.clone();
            write_file(path, recording.to_json().as_bytes())
                .with_context(|| format!("writing the recording {}", path.display()))?;
        }
        Ok(Evidence {
            started_at: start,
            ended_at: end,
            ticks,
            source: description.clone(),
            origin: description,
        })
    }
}

fn recorded(policy: &Policy, input: &Path) -> anyhow::Result<Evidence> {
    let origin = input.display().to_string();
    let text = std::fs::read_to_string(input)
        .map_err(|err| canary_core::Error::Usage(format!("cannot read {origin}: {err}")))?;
    let recording = Recording::from_json(&text, &origin)?;
    if recording.service != policy.service {
        eprintln!(
            "warning: {origin} records service {:?}, the policy is for {:?}",
            recording.service, policy.service
        );
    }
    Ok(Evidence {
        started_at: recording.started_at,
        ended_at: recording
            .ticks
            .last()
            .map_or(recording.started_at, |t| t.at),
        ticks: recording.ticks,
        source: format!("recording {origin}"),
        origin,
    })
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    canary_core::Error::Usage(message.into()).into()
}

/// Every `interval` from `start + interval` while not after `end`, and `end` itself.
fn tick_times(
    start: Timestamp,
    end: Timestamp,
    interval: Duration,
) -> anyhow::Result<Vec<Timestamp>> {
    let step = i128::try_from(interval.as_nanos())
        .unwrap_or(i128::MAX)
        .max(1);
    let (first, last) = (start.as_nanosecond(), end.as_nanosecond());
    let count = (last - first) / step;
    if count > i128::from(MAX_TICKS) {
        return Err(usage(format!(
            "{count} ticks of {} in this window: too many; shorten the window",
            humantime::format_duration(interval)
        )));
    }
    let mut times = Vec::new();
    let mut t = first + step;
    while t <= last {
        times.push(Timestamp::from_nanosecond(t)?);
        t += step;
    }
    if times.last() != Some(&end) {
        times.push(end);
    }
    Ok(times)
}

/// One line about a tick: each check's reading in a word.
fn tick_summary(tick: &Tick) -> String {
    use canary_core::observation::{CheckObservation, Reading};
    let parts: Vec<String> = tick
        .readings
        .iter()
        .map(|(name, reading)| match reading {
            Reading::Observed(CheckObservation::Counts { canary, baseline }) => {
                let baseline = match baseline.observed() {
                    Some(b) => format!("{:.0}/{:.0}", b.errors, b.requests),
                    None => "missing".to_owned(),
                };
                format!(
                    "{name}: canary {:.0}/{:.0}, baseline {baseline}",
                    canary.errors, canary.requests
                )
            }
            Reading::Observed(_) => format!("{name}: observed"),
            Reading::NoData { .. } => format!("{name}: no data"),
            Reading::Invalid { .. } => format!("{name}: invalid"),
        })
        .collect();
    parts.join("; ")
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than zero".to_owned()),
        Err(e) => Err(format!("{e}; write e.g. 30m or 2h")),
    }
}

/// RFC 3339 (`2026-11-22T10:00:00Z`) or unix seconds (`1795000000`, `1795000000.5`).
fn parse_time(text: &str) -> Result<Timestamp, String> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => {
            Timestamp::from_millisecond((seconds * 1000.0).round() as i64)
                .map_err(|e| format!("{text}: {e}"))
        }
        _ => Err(format!(
            "expected an RFC 3339 time like 2026-11-22T10:00:00Z or unix seconds, not {text:?}"
        )),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_run_every_interval_and_end_at_the_end() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let end: Timestamp = "2026-01-01T00:02:10Z".parse().unwrap();
        let times = tick_times(start, end, Duration::from_secs(30)).unwrap();
        assert_eq!(times.len(), 5);
        assert_eq!(times[0].to_string(), "2026-01-01T00:00:30Z");
        assert_eq!(times[3].to_string(), "2026-01-01T00:02:00Z");
        assert_eq!(times[4], end);
        let end: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(
            tick_times(start, end, Duration::from_secs(30))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z").unwrap().as_second(),
            1_767_225_600
        );
        assert_eq!(parse_time("1767225600").unwrap().as_second(), 1_767_225_600);
        assert_eq!(
            parse_time("1767225600.5").unwrap().as_millisecond(),
            1_767_225_600_500
        );
        assert!(parse_time("yesterday").is_err());
    }
}
