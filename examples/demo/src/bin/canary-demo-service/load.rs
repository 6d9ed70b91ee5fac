//! `canary-demo-service load`.

use std::time::Duration;

use anyhow::Context;
use canary_demo::{LoadConfig, LoadGenerator, LoadSnapshot};

use crate::signal::ShutdownSignals;

/// Send open-loop GET traffic at a fixed rate and print a summary at the end.
///
/// Runs for `--duration`, or until SIGTERM or SIGINT; either way it stops sending,
/// waits for the requests in flight and prints the summary on stdout.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// URL to GET, e.g. `http://127.0.0.1:8080/api/orders`.
    #[arg(long, value_name = "URL")]
    target: String,

    /// Requests per second, evenly spaced.
    #[arg(long, value_name = "N", value_parser = parse_rps)]
    rps: f64,

    /// How long to send for, e.g. `60s` or `5m`; without it, until stopped.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    duration: Option<Duration>,

    /// Most requests waiting for an answer at once; arrivals beyond are skipped and counted.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_in_flight: u32,

    /// Time after which one request is abandoned and counted as a timeout.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    timeout: Duration,

    /// Print the summary as one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
}

fn parse_rps(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rps) if rps > 0.0 && rps <= 100_000.0 => Ok(rps),
        _ => Err(format!(
            "`{text}` is not a rate between 0 (excluded) and 100000"
        )),
    }
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be more than zero".to_owned()),
        Err(e) => Err(format!("{e}; write e.g. 500ms, 60s or 5m")),
    }
}

impl LoadArgs {
    pub(crate) async fn exec(self) -> anyhow::Result<()> {
        let mut config = LoadConfig::new(self.target, self.rps)
            .with_max_in_flight(self.max_in_flight as usize)
            .with_request_timeout(self.timeout);
        config.duration = self.duration;
        let mut shutdown = ShutdownSignals::install()?;
        let load = LoadGenerator::start(config).context("cannot start the load generator")?;

        tokio::select! {
            () = load.finished() => {}
            () = shutdown.recv() => {}
        }
        let summary = load.stop().await.context("load generator failed")?;
        if self.json {
            println!("{}", summary_json(&summary));
        } else {
            println!("{summary}");
        }
        Ok(())
    }
}

/// The summary for scripts: status codes as string keys, durations in seconds.
fn summary_json(summary: &LoadSnapshot) -> serde_json::Value {
    let by_status: serde_json::Map<String, serde_json::Value> = summary
        .by_status
        .iter()
        .map(|(status, count)| (status.to_string(), (*count).into()))
        .collect();
    serde_json::json!({
        "sent": summary.sent,
        "completed": summary.completed,
        "by_status": by_status,
        "transport_errors": summary.transport_errors,
        "timeouts": summary.timeouts,
        "skipped": summary.skipped,
        "in_flight": summary.in_flight,
        "elapsed_seconds": summary.elapsed.as_secs_f64(),
    })
}
