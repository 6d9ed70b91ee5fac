//! `canary completions <shell>`: the shell completion script for every command and flag,
//! generated from the command line's own definition (so it never drifts from it).
//!
//! ```sh
//! canary completions bash > /etc/bash_completion.d/canary
//! canary completions zsh > "${fpath[1]}/_canary"
//! canary completions fish > ~/.config/fish/completions/canary.fish
//! ```

use std::io::Write;

use canary_core::ExitCode;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::app::Cli;

#[derive(Debug, Args)]
pub(crate) struct CompletionsCommand {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

impl CompletionsCommand {
    pub(crate) fn exec(self) -> anyhow::Result<ExitCode> {
        let mut command = Cli::command();
        // Into memory first: the generator panics on a failed write (a closed pipe), and a
        // command never ends in a panic.
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, "canary", &mut script);
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(&script).and_then(|()| stdout.flush()) {
            Ok(()) => Ok(ExitCode::Passed),
            // `canary completions bash | head`: the reader has what it wanted.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::Passed),
            Err(err) => Err(anyhow::Error::new(err).context("writing the completion script")),
        }
    }
}
