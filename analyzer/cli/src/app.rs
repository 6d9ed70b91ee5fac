//! The command line: parsing, dispatch, and the one place errors are printed.

use std::process::ExitCode;

use canary_core::ExitCode as Code;
use clap::{Parser, Subcommand};

use crate::commands::analyze::AnalyzeCommand;
use crate::commands::control::{AbortCommand, PromoteCommand};
use crate::commands::policy::PolicyCommand;
use crate::commands::rollout::RolloutCommand;
use crate::commands::status::StatusCommand;

/// canary: shifts traffic to a new version in steps, compares it with the baseline with
/// anytime-valid statistics, and promotes or rolls back on its own.
#[derive(Debug, Parser)]
#[command(name = "canary", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 passed/promoted, 1 failed/rolled back, 2 bad input, \
3 inconclusive, 4 infrastructure error, 130 interrupted (see docs/exit-codes.md)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a rollout to its end: shift weights step by step, promote or roll back.
    Rollout(RolloutCommand),
    /// Where a service's rollout stands.
    Status(StatusCommand),
    /// Skip a rollout to 100 % (after confirmation).
    Promote(PromoteCommand),
    /// Roll a rollout back now.
    Abort(AbortCommand),
    /// Judge a canary against its baseline over a window, from Prometheus or recorded data.
    Analyze(AnalyzeCommand),
    /// Check, describe and explain policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// Parses the command line, runs the command, prints any error once (with its causes), and
/// returns the documented exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version are successes; everything else is a usage error (2).
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(Code::BadInput.code())
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let outcome = match cli.command {
        Command::Rollout(command) => command.exec(),
        Command::Status(command) => command.exec(),
        Command::Promote(command) => command.exec(),
        Command::Abort(command) => command.exec(),
        Command::Analyze(command) => command.exec(),
        Command::Policy(command) => command.exec(),
    };
    match outcome {
        Ok(code) => ExitCode::from(code.code()),
        Err(err) => {
            print_error(&err);
            ExitCode::from(exit_code_of(&err).code())
        }
    }
}

/// The exit code of an error: the core's own errors know theirs; anything else is bad input
/// only if it says so, else an infrastructure failure.
fn exit_code_of(err: &anyhow::Error) -> Code {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<canary_core::Error>())
        .map(canary_core::Error::exit_code)
        .unwrap_or(Code::BadInput)
}

fn print_error(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
