//! The command line: parsing, dispatch, and the one place errors are printed.

use std::process::ExitCode;

use canary_core::ExitCode as Code;
use clap::{Parser, Subcommand};

use crate::commands::analyze::AnalyzeCommand;
use crate::commands::completions::CompletionsCommand;
use crate::commands::control::{AbortCommand, PromoteCommand};
#[cfg(feature = "kubernetes")]
use crate::commands::controller::ControllerCommand;
#[cfg(feature = "demo")]
use crate::commands::demo::DemoCommand;
use crate::commands::policy::PolicyCommand;
use crate::commands::rollout::RolloutCommand;
use crate::commands::simulate::SimulateCommand;
use crate::commands::status::StatusCommand;
#[cfg(feature = "kubernetes")]
use crate::commands::wait::WaitCommand;
use crate::progress::{self, LogFormat, Settings};

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

    /// More detail: the driver's own steps and the crates' debug logs.
    #[arg(long, short, global = true)]
    verbose: bool,

    /// How progress and logs are written on stderr: plain lines (a live view on a
    /// terminal), or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "plain")]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole thing on this machine, nothing installed: services, proxy, load, a rollout.
    #[cfg(feature = "demo")]
    Demo(DemoCommand),
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
    /// What a policy would do on synthetic traffic like yours: false rollbacks, detection.
    Simulate(SimulateCommand),
    /// Check, describe and explain policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Wait for a CanaryRollout's rollout to end (the CI stage with `canary controller`).
    #[cfg(feature = "kubernetes")]
    Wait(WaitCommand),
    /// Operator mode: the CanaryRollout custom resource, carried out in the cluster.
    #[cfg(feature = "kubernetes")]
    #[command(subcommand)]
    Controller(ControllerCommand),
    /// Print the shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(CompletionsCommand),
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
    progress::init(Settings {
        quiet: false,
        verbose: cli.verbose,
        format: cli.log_format,
    });
    let outcome = match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(command) => command.exec(),
        Command::Rollout(command) => command.exec(),
        Command::Status(command) => command.exec(),
        Command::Promote(command) => command.exec(),
        Command::Abort(command) => command.exec(),
        Command::Analyze(command) => command.exec(),
        Command::Policy(command) => command.exec(),
        Command::Simulate(command) => command.exec(),
        Command::Completions(command) => command.exec(),
        #[cfg(feature = "kubernetes")]
        Command::Controller(command) => command.exec(),
        #[cfg(feature = "kubernetes")]
        Command::Wait(command) => command.exec(),
    };
    // A hook stopped by a signal got SIGTERM; what of it ignored that gets SIGKILL after
    // its grace, before this process exits and can no longer send it.
    canary_gateways::finish_stopping_commands();
    match outcome {
        Ok(code) => ExitCode::from(code.code()),
        Err(err) => {
            print_error(&err);
            ExitCode::from(exit_code_of(&err).code())
        }
    }
}

/// The exit code of an error: the core's own errors know theirs (bad input is always one of
/// them); anything else failed outside the process's control (a file that cannot be written,
/// a port that cannot be bound): an infrastructure failure.
pub(crate) fn exit_code_of(err: &anyhow::Error) -> Code {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<canary_core::Error>())
        .map(canary_core::Error::exit_code)
        .unwrap_or(Code::Infrastructure)
}

/// Prints the error and its causes, redacted (the last pass before stderr: an error from
/// any adapter, hook or file may quote outside text). A cause whose words are already on a
/// line printed above (a wrapper that shows its cause's message, as the core's
/// `Error::Policy` does) is not printed again.
fn print_error(err: &anyhow::Error) {
    use canary_core::secret::redacted;
    let mut printed = vec![err.to_string()];
    eprintln!("error: {}", redacted(&printed[0]));
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if printed.iter().any(|line| line.contains(&text)) {
            continue;
        }
        eprintln!("  caused by: {}", redacted(&text));
        printed.push(text);
    }
}
