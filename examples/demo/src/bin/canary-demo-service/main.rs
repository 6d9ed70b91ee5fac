//! `canary-demo-service`: the demo service and its load generator as a program, for the
//! end-to-end tests and the local stack, which run them as separate processes behind a
//! real HAProxy or NGINX with a real Prometheus scraping them.
//!
//! Exit codes: 0 done (including a stop by SIGTERM or SIGINT), 1 failed while running
//! (e.g. the address is taken), 2 bad command line.

mod load;
mod serve;
mod signal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The demo service canary's demo and tests roll out, and a load generator for it.
#[derive(Debug, Parser)]
#[command(name = "canary-demo-service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Load(load::LoadArgs),
}

/// Exit code for a failure while running; clap itself exits 2 on a bad command line.
const EXIT_RUNTIME_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => args.exec().await,
            Command::Load(args) => args.exec().await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Prints the error once, with its whole chain, the way the other canary binaries do.
fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(EXIT_RUNTIME_FAILURE)
}
