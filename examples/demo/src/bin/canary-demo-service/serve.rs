//! `canary-demo-service serve`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use canary_demo::{DemoService, DemoServiceConfig};

use crate::signal::ShutdownSignals;

/// Serve one version of the demo service until SIGTERM or SIGINT.
///
/// Prints `listening on http://ADDR` on stdout once bound, and nothing else there.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Version label on metrics and responses, e.g. `stable` or `canary`.
    #[arg(long, value_name = "NAME")]
    version: String,

    /// Address to listen on; port 0 picks a free port (see the printed line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Fraction of requests answered with 500: `0.05` or `5%`.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate)]
    error_rate: f64,

    /// Latency added to every request, e.g. `200ms`.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    added_latency: Duration,

    /// Median of the normal latency (log-normal with a tail), e.g. `20ms`; `0s` for none.
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = humantime::parse_duration)]
    base_latency: Duration,

    /// Seed for reproducible latency and error draws.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// Parses a probability written as a fraction (`0.05`) or a percentage (`5%`).
fn parse_rate(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.trim().strip_suffix('%') {
        Some(percent) => (percent, 100.0),
        None => (text.trim(), 1.0),
    };
    let rate = number
        .trim()
        .parse::<f64>()
        .map(|value| value / scale)
        .map_err(|_| format!("`{text}` is not a number; write e.g. 0.05 or 5%"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("`{text}` is not between 0 and 1 (0% and 100%)"))
    }
}

impl ServeArgs {
    pub(crate) async fn exec(self) -> anyhow::Result<()> {
        let config = DemoServiceConfig {
            version: self.version,
            error_rate: self.error_rate,
            added_latency: self.added_latency,
            base_latency: self.base_latency,
            seed: self.seed,
        };
        let mut shutdown = ShutdownSignals::install()?;
        let service = DemoService::spawn(config, self.listen)
            .await
            .context("cannot start the demo service")?;

        // Tests and scripts wait for this exact line to learn the port.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", service.base_url())
            .and_then(|()| stdout.flush())
            .context("cannot write to stdout")?;
        drop(stdout);

        shutdown.recv().await;
        service
            .shutdown()
            .await
            .context("demo service did not stop cleanly")
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_are_fractions_or_percentages() {
        assert_eq!(parse_rate("0.05"), Ok(0.05));
        assert_eq!(parse_rate("5%"), Ok(0.05));
        assert_eq!(parse_rate("100%"), Ok(1.0));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("-1%").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("lots").is_err());
    }
}
