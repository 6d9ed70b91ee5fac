//! The one error type of `canary-core`, and the exit codes every command shares.

use std::fmt;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from an adapter, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the core, and what the adapters report through the ports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A policy file is not valid YAML of the expected shape, or a value in it is invalid.
    /// The message names the file, the line and column, and the field path.
    #[error("{0}")]
    Policy(#[from] crate::policy::PolicyError),

    /// A recorded-data file (the input of `canary analyze --input`) is malformed.
    #[error("{file}: {message}")]
    Recording {
        /// The file as the user named it.
        file: String,
        /// What is wrong, with the line and column or the JSON path where known.
        message: String,
    },

    /// A statistical routine was handed data it cannot work with (an empty sample, a
    /// non-finite value, more events than trials). Callers turn this into an `error`
    /// verdict for the check; it is never a pass.
    #[error("{test}: {reason}")]
    Statistics {
        /// The routine that refused, e.g. `mann-whitney`.
        test: &'static str,
        /// Why, in words.
        reason: String,
    },

    /// A component outside the process (metrics source, gateway, state store, hook) could
    /// not be reached or did not answer usefully. The rollout's state is safe; exit code 4.
    #[error("{component} at {address}: {message}")]
    Unavailable {
        /// What kind of component, e.g. `prometheus`, `haproxy`.
        component: &'static str,
        /// Where it was reached, with any secret left out.
        address: String,
        /// What went wrong, in words (the `source` chain carries the detail).
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A component answered, but what it did does not match what was asked: the weight read
    /// back differs from the weight set, a state file is held by another rollout. Exit code 4.
    #[error("{component}: {message}")]
    Mismatch {
        /// What kind of component, e.g. `haproxy`.
        component: &'static str,
        /// What differs.
        message: String,
    },

    /// This process's claim on the rollout was taken over (its heartbeat went stale, or
    /// someone used `--take-over`) or released by someone else: it must stop driving
    /// without another write to the gateway or the state. Exit code 4. See
    /// [`crate::claim`].
    #[error("{0}")]
    ClaimLost(String),

    /// Bad input given on the command line or in a data file, other than a policy or a
    /// recording (those have their own variants). Exit code 2.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// A shorthand for [`Error::Unavailable`] without an underlying error.
    pub fn unavailable(
        component: &'static str,
        address: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Unavailable {
            component,
            address: address.into(),
            message: message.into(),
            source: None,
        }
    }

    /// The exit code a command ends with when this error stops it.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Policy(_) | Error::Recording { .. } | Error::Usage(_) => ExitCode::BadInput,
            Error::Statistics { .. } => ExitCode::BadInput,
            Error::Unavailable { .. } | Error::Mismatch { .. } | Error::ClaimLost(_) => {
                ExitCode::Infrastructure
            }
        }
    }
}

/// The exit codes of every `canary` command, as documented in `docs/exit-codes.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitCode {
    /// 0: passed, or promoted.
    Passed,
    /// 1: the canary failed: rolled back (for `analyze`: judged worse than baseline).
    Failed,
    /// 2: bad input (usage, policy or data file); nothing was changed.
    BadInput,
    /// 3: inconclusive: not enough evidence; what the policy says to do then was done.
    Inconclusive,
    /// 4: infrastructure error (metrics source or gateway unreachable); state is safe.
    Infrastructure,
    /// 130: interrupted by a signal; state persisted.
    Interrupted,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Passed => 0,
            ExitCode::Failed => 1,
            ExitCode::BadInput => 2,
            ExitCode::Inconclusive => 3,
            ExitCode::Infrastructure => 4,
            ExitCode::Interrupted => 130,
        }
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}
