//! `canary simulate`: what a policy would do on synthetic traffic like yours, before you
//! trust it with a real rollout.
//!
//! It plays thousands of seeded rollouts through the real rollout machine and judge in
//! virtual time (`canary-simulate`), at the request rate, error rate and latency given, and
//! reports the false-rollback rate of a healthy canary (with its Wilson interval, against the
//! policy's α) and, for the regressions the policy's checks can see — errors ×1.5 and ×2,
//! latency +20 % and +50 % — how often they are caught, how fast, and how many canary
//! requests and extra errors are served before the rollback. The runs use both cores; the
//! same options give the same numbers, run for run, as the benchmark harness.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use canary_core::ExitCode;
use canary_core::judge::fmt_num;
use canary_simulate::Summary;
use canary_simulate::simulate::{
    SimulateOptions, SimulateReport, simulate_policy, simulate_policy_within,
};
use clap::Args;

/// Rollouts per scenario when `--runs` is not given (at most).
const DEFAULT_RUNS: u64 = 2000;

/// The wall-clock budget when `--runs` is not given.
const DEFAULT_BUDGET: Duration = Duration::from_secs(25);

#[derive(Debug, Args)]
pub(crate) struct SimulateCommand {
    /// The service's policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,

    /// Requests per second to the service, both versions together.
    #[arg(long, value_name = "N", default_value = "50", value_parser = parse_rps)]
    rps: f64,

    /// The baseline's error rate: a percentage like 1% or a fraction like 0.01.
    #[arg(long, value_name = "RATE", default_value = "1%", value_parser = parse_rate)]
    error_rate: f64,

    /// The median latency of both versions (log-normal), e.g. 50ms.
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = parse_latency)]
    latency: f64,

    /// Rollouts per scenario (the healthy one and each regression). By default up to 2000
    /// each, as many as fit in about 25 seconds (the healthy scenario first).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    runs: Option<u64>,

    /// The first seed; the same seed gives the same numbers.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,

    /// Write the results as JSON: json:PATH. Repeatable.
    #[arg(long = "output", value_name = "json:PATH")]
    outputs: Vec<JsonOutput>,

    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

/// `json:PATH`, the one format `simulate` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsonOutput(PathBuf);

impl FromStr for JsonOutput {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("json", path)) if !path.is_empty() => Ok(JsonOutput(PathBuf::from(path))),
            Some(("json", _)) => Err("the output path is empty".to_owned()),
            Some((other, _)) => Err(format!(
                "simulate writes json only (json:PATH), not {other:?}"
            )),
            None => Err(format!("expected json:PATH, not {text:?}")),
        }
    }
}

fn parse_rps(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rps) if rps.is_finite() && rps > 0.0 && rps <= 1e7 => Ok(rps),
        Ok(_) => Err("must be a number of requests per second above 0".to_owned()),
        Err(e) => Err(format!("{e}; write e.g. 50 or 2.5")),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let rate = match trimmed.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => trimmed.parse::<f64>(),
    }
    .map_err(|e| format!("{e}; write e.g. 1% or 0.01"))?;
    if rate.is_finite() && (0.0..1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("must be a rate from 0 up to (not including) 100%".to_owned())
    }
}

fn parse_latency(text: &str) -> Result<f64, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d.as_secs_f64()),
        Ok(_) => Err("must be more than zero".to_owned()),
        Err(e) => Err(format!("{e}; write e.g. 50ms or 1.2s")),
    }
}

impl SimulateCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        let policy = super::load_policy(&self.policy)?;
        // The synthetic world splits its traffic by weight; it cannot know what share of
        // real requests a header would match, so a routed step would be simulated as a step
        // with no canary traffic at all. Refused rather than simulated wrongly.
        if let Some((index, route)) = policy.rollout.routes.iter().next() {
            return Err(canary_core::Error::Usage(format!(
                "{}: rollout.steps[{index}] routes {route}; `canary simulate` models weighted steps only (simulate a copy of the policy without its routed steps)",
                self.policy.display()
            ))
            .into());
        }
        let options = SimulateOptions {
            rps: self.rps,
            error_rate: self.error_rate,
            latency_median: self.latency,
            runs: self.runs.unwrap_or(DEFAULT_RUNS),
            seed: self.seed,
        };
        let started = Instant::now();
        let report = match self.runs {
            Some(_) => simulate_policy(&policy, &options),
            None => simulate_policy_within(&policy, &options, DEFAULT_BUDGET),
        };
        let elapsed = started.elapsed().as_secs_f64();
        if !self.quiet {
            print!("{}", render(&report, elapsed));
        }
        for output in &self.outputs {
            let json = serde_json::to_string_pretty(&report)? + "\n";
            canary_gateways::write_durably(&output.0, json.as_bytes())
                .with_context(|| format!("writing {}", output.0.display()))?;
        }
        Ok(ExitCode::Passed)
    }
}

fn pct(x: f64) -> String {
    format!("{}%", fmt_num(100.0 * x))
}

fn seconds(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |s| format!("{}s", fmt_num(s)))
}

fn count(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}"))
}

/// The plain-text report.
fn render(report: &SimulateReport, elapsed: f64) -> String {
    let o = &report.options;
    let mut out = format!(
        "canary simulate {}: {} req/s, {} errors, {} median latency; seeds from {}\n\n",
        report.service,
        fmt_num(o.rps),
        pct(o.error_rate),
        humantime::format_duration(Duration::from_micros(
            (o.latency_median * 1e6).round() as u64
        )),
        o.seed
    );
    let h = &report.healthy.summary;
    out.push_str(&format!(
        "healthy canary: {} false rollbacks in {} runs = {} (Wilson 95% {}–{}), alpha {} — {}\n",
        h.rolled_back,
        h.runs,
        pct(h.rollback_rate),
        pct(h.rollback_rate_interval[0]),
        pct(h.rollback_rate_interval[1]),
        pct(report.alpha),
        // "Within" only when the whole interval is: a rate under α whose interval reaches
        // above it has not shown that it is.
        if h.rollback_rate_interval[1] <= report.alpha {
            "within alpha"
        } else if h.rollback_rate <= report.alpha {
            "not shown to be within alpha (the interval reaches above it; more --runs narrow it)"
        } else {
            "ABOVE alpha"
        }
    ));
    out.push_str(&format!(
        "  {} promoted (median {} to promote), {} inconclusive\n",
        h.promoted,
        seconds(h.median_seconds_to_promote),
        h.inconclusive
    ));
    if !h.rollbacks_by_check.is_empty() {
        let by: Vec<String> = h
            .rollbacks_by_check
            .iter()
            .map(|(check, n)| format!("{check} {n}"))
            .collect();
        out.push_str(&format!("  rolled back by: {}\n", by.join(", ")));
    }
    if h.rollback_rate > report.alpha {
        out.push_str("  hint: an absolute bound (slo) tighter than the traffic's own error rate or latency rolls back healthy canaries; try --error-rate and --latency at your real levels\n");
    }
    if 2 * h.inconclusive > h.runs {
        out.push_str("  hint: most healthy canaries ended without enough evidence (min-requests not reached, or a check without data, by the step's limit); try --rps at your real level\n");
    }
    out.push('\n');
    if !report.regressions.is_empty() {
        let header = [
            "regression",
            "runs",
            "detected",
            "Wilson 95%",
            "to detect (median / p90)",
            "requests to rollback (median)",
            "bad requests (mean)",
            "extra errors (mean)",
            "rolled back by",
        ];
        let rows: Vec<[String; 9]> = report
            .regressions
            .iter()
            .map(|r| regression_row(&r.scenario.name, &r.summary))
            .collect();
        out.push_str(&table(&header, &rows));
        out.push_str("bad requests: canary requests served until the rollback, or until promotion when the regression was missed\n");
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    for skipped in &report.skipped {
        out.push_str(&format!(
            "skipped {}: {}\n",
            skipped.scenario, skipped.reason
        ));
    }
    out.push_str(&format!("done in {elapsed:.1}s\n"));
    out
}

fn regression_row(name: &str, s: &Summary) -> [String; 9] {
    let mut by: Vec<(&String, &u64)> = s.rollbacks_by_check.iter().collect();
    by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let by: Vec<String> = by.iter().map(|(check, n)| format!("{check} {n}")).collect();
    [
        name.to_owned(),
        s.runs.to_string(),
        pct(s.rollback_rate),
        format!(
            "{}–{}",
            pct(s.rollback_rate_interval[0]),
            pct(s.rollback_rate_interval[1])
        ),
        format!(
            "{} / {}",
            seconds(s.median_seconds_to_rollback),
            seconds(s.p90_seconds_to_rollback)
        ),
        count(s.median_canary_requests_to_rollback),
        format!("{:.0}", s.mean_canary_requests),
        format!("{:.1}", s.mean_excess_errors),
        by.join(", "),
    ]
}

/// Left-aligned columns, two spaces apart.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: [usize; N] = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_and_refuse() {
        assert_eq!(parse_rate("1%"), Ok(0.01));
        assert_eq!(parse_rate("0.02"), Ok(0.02));
        assert!(parse_rate("100%").is_err());
        assert!(parse_rate("-1%").is_err());
        assert!(parse_rate("lots").is_err());
        assert_eq!(parse_latency("50ms"), Ok(0.05));
        assert!(parse_latency("0s").is_err());
        assert!(parse_rps("0").is_err());
        assert!(parse_rps("NaN").is_err());
        assert_eq!(
            "json:out/s.json".parse::<JsonOutput>(),
            Ok(JsonOutput(PathBuf::from("out/s.json")))
        );
        assert!("markdown:x.md".parse::<JsonOutput>().is_err());
        assert!("json:".parse::<JsonOutput>().is_err());
    }

    #[test]
    fn tables_align_their_columns() {
        let rows = [["a".to_owned(), "bbb".to_owned()]];
        assert_eq!(table(&["xx", "y"], &rows), "xx  y\na   bbb\n");
    }
}
