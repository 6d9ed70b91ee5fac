//! [`CommandRouter`]: canary weights through a user's command, for any router canary has no
//! adapter for (a cloud load balancer's CLI, a service mesh's, a script).
//!
//! `set` runs with `{weight}` and `{stable-weight}` replaced in its arguments (and the same
//! values in `CANARY_WEIGHT` and `CANARY_STABLE_WEIGHT`); it succeeds when it exits 0 within
//! the timeout. `get`, when given, prints the canary's current weight, a whole number of
//! percent (a trailing `%` is allowed), and that is what the read-back reports.
//!
//! **Without `get`** the router cannot read the weight from the router itself. It reports the
//! weight its own `set` last succeeded with in this process, and says so in
//! [`describe`](canary_core::ports::TrafficRouter::describe) ("unverified"); before any
//! successful `set` in this process, and after a failed one, it reports an error rather than a
//! guess, so a resumed rollout sets the weight again instead of trusting one it cannot know.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use canary_core::policy::CommandRouterSpec;
use canary_core::ports::TrafficRouter;
use tokio::sync::Mutex;

use crate::error::{GatewayError, Result};
use crate::process::{self, CommandFailure};

/// What went wrong with the command router's `set` or `get` command. The messages leave the
/// program out: [`GatewayError::CommandRouter`] names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandRouterError {
    /// The command could not be started, exited non-zero, or ran past its timeout and was
    /// killed. The message quotes the first lines of its stderr, never its environment.
    #[error("{0}")]
    Failed(CommandFailure),

    /// The `get` command printed something that is not a weight.
    #[error("printed {0:?}, expected a whole number of percent from 0 to 100")]
    BadWeightOutput(String),

    /// There is no `get` command and the `set` command has not succeeded yet in this
    /// process, so there is nothing the router can honestly report.
    #[error(
        "no `get` command is configured and no weight was set yet in this process, so the canary weight is unknown"
    )]
    Unverifiable,
}

impl CommandRouterError {
    /// The core's error for this one about `program`: always
    /// [`Unavailable`](canary_core::Error::Unavailable), at the program.
    pub(crate) fn into_core(self, program: &str) -> canary_core::Error {
        canary_core::Error::unavailable("command", format!("`{program}`"), self.to_string())
    }
}

/// Moves traffic by running a user's `set` command; reads it back with the `get` command.
#[derive(Debug)]
pub struct CommandRouter {
    set: Vec<String>,
    get: Option<Vec<String>>,
    timeout: Duration,
    /// The weight the last `set` in this process succeeded with; `None` before any, and
    /// after a failed one (the router may then be anywhere). The lock also serialises
    /// changes and reads.
    last_set: Mutex<Option<u8>>,
}

impl CommandRouter {
    /// A router running the commands of `spec`.
    pub fn new(spec: &CommandRouterSpec) -> Self {
        CommandRouter {
            set: spec.set.clone(),
            get: spec.get.clone(),
            timeout: spec.timeout,
            last_set: Mutex::new(None),
        }
    }

    /// Runs `set` for a canary weight (clamped to 100).
    pub async fn set_weight(&self, weight: u8) -> Result<()> {
        let canary = weight.min(100);
        let stable = 100 - canary;
        let values = [
            ("weight", canary.to_string()),
            ("stable-weight", stable.to_string()),
        ];
        let argv: Vec<String> = self
            .set
            .iter()
            .map(|arg| process::substitute(arg, &values))
            .collect();
        let env = [
            ("CANARY_WEIGHT", canary.to_string()),
            ("CANARY_STABLE_WEIGHT", stable.to_string()),
        ];
        let mut last_set = self.last_set.lock().await;
        *last_set = None;
        process::run(&argv, &env, self.timeout)
            .await
            .map_err(|failure| error(&self.set, CommandRouterError::Failed(failure)))?;
        *last_set = Some(canary);
        Ok(())
    }

    /// The canary's weight: what `get` prints, or without `get` the weight the last `set` of
    /// this process succeeded with.
    pub async fn read_weight(&self) -> Result<u8> {
        let last_set = self.last_set.lock().await;
        let Some(get) = &self.get else {
            return last_set.ok_or_else(|| error(&self.set, CommandRouterError::Unverifiable));
        };
        let finished = process::run(get, &[], self.timeout)
            .await
            .map_err(|failure| error(get, CommandRouterError::Failed(failure)))?;
        self.weight_from_output(&finished.stdout)
    }

    /// The weight in what the `get` command printed: what [`CommandRouter::read_weight`]
    /// does with its standard output. Public so that the fuzz targets (`tests/fuzz`) feed it
    /// hostile output.
    pub fn weight_from_output(&self, stdout: &[u8]) -> Result<u8> {
        let output = String::from_utf8_lossy(stdout);
        parse_weight(&output).ok_or_else(|| {
            let get = self.get.as_deref().unwrap_or_default();
            error(
                get,
                CommandRouterError::BadWeightOutput(shorten(output.trim())),
            )
        })
    }

    /// Whether the weight read back comes from the router (a `get` command is configured).
    pub fn is_verified(&self) -> bool {
        self.get.is_some()
    }
}

fn program(argv: &[String]) -> String {
    argv.first().cloned().unwrap_or_default()
}

/// `error`, about the program of `argv`.
fn error(argv: &[String], error: CommandRouterError) -> GatewayError {
    GatewayError::CommandRouter {
        program: program(argv),
        error,
    }
}

/// `42`, `42%` or ` 42 \n` → 42; anything else, or above 100, is not a weight.
fn parse_weight(output: &str) -> Option<u8> {
    let text = output.trim();
    let number = text.strip_suffix('%').unwrap_or(text).trim_end();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse::<u8>().ok().filter(|w| *w <= 100)
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text.to_owned()
    }
}

impl fmt::Display for CommandRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.get {
            Some(get) => write!(
                f,
                "command `{}`, read back with `{}`",
                program(&self.set),
                program(get)
            ),
            None => write!(
                f,
                "command `{}` (unverified: no `get` command, so the weight read back is the one this process last set)",
                program(&self.set)
            ),
        }
    }
}

#[async_trait]
impl TrafficRouter for CommandRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        canary_core::ports::check_canary_weight(weight)?;
        Ok(self.set_weight(weight).await?)
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        Ok(self.read_weight().await?)
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse_strictly() {
        assert_eq!(parse_weight("42\n"), Some(42));
        assert_eq!(parse_weight("  0 "), Some(0));
        assert_eq!(parse_weight("100%\n"), Some(100));
        assert_eq!(parse_weight("25 %"), Some(25));
        for garbage in [
            "",
            "101",
            "-1",
            "4.5",
            "ten",
            "42 43",
            "weight: 10",
            "%",
            "256",
            "1e1",
        ] {
            assert_eq!(parse_weight(garbage), None, "{garbage:?}");
        }
    }
}
