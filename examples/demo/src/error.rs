//! The crate's one error type.

use std::net::SocketAddr;

/// What can go wrong when starting or controlling the demo parts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range or malformed; the message names the field.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The field (or flag) that was wrong, e.g. `error_rate`.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// The listening socket could not be bound (port in use, address not local, ...).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A server stopped with an I/O error while serving.
    #[error("server failed while serving")]
    Serve(#[source] std::io::Error),

    /// A background task panicked or was cancelled before it could finish.
    #[error("background task failed")]
    Task(#[source] tokio::task::JoinError),

    /// A function that starts background tasks was called outside a Tokio runtime.
    #[error("no Tokio runtime: the demo parts must be started from within one")]
    NoRuntime,
}

/// The crate's result type, with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}
