//! The one error type of `canary-gateways`, and how it becomes a [`canary_core::Error`] at the
//! [`TrafficRouter`](canary_core::ports::TrafficRouter) boundary.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use canary_core::error::BoxError;

pub use crate::process::CommandFailure;

/// `Result` with [`GatewayError`] as the default error.
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// Everything that can go wrong while moving traffic. Messages name the socket, file or
/// program involved; they never quote a command's environment or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A backend, server or upstream name that could end a runtime API command or an NGINX
    /// directive (whitespace, `;`, a newline…). The policy validation rejects these already;
    /// the adapters check again because the names go into a socket or a config file verbatim.
    #[error("{what} {value:?} is not a valid name: {rule}")]
    InvalidName {
        /// Which name, e.g. `HAProxy backend`.
        what: &'static str,
        /// The name as given.
        value: String,
        /// What a valid name looks like.
        rule: &'static str,
    },

    /// The HAProxy runtime API socket could not be connected to (HAProxy not running, wrong
    /// path or port, no permission).
    #[error("cannot connect to the HAProxy runtime API at {address}")]
    Connect {
        /// The socket, e.g. `unix:/run/haproxy/admin.sock`.
        address: String,
        /// The connection error.
        #[source]
        source: io::Error,
    },

    /// The connection to the runtime API broke while a command was sent or its answer read.
    #[error("HAProxy runtime API at {address}: `{command}` failed on the connection")]
    Socket {
        /// The socket.
        address: String,
        /// The command that was being sent.
        command: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The runtime API did not accept the connection or did not answer within the timeout.
    #[error("HAProxy runtime API at {address}: no answer to `{command}` within {}", canary_core::policy::duration_as_written(*timeout))]
    SocketTimeout {
        /// The socket.
        address: String,
        /// The command that got no answer.
        command: String,
        /// The timeout that passed.
        timeout: Duration,
    },

    /// HAProxy answered a command with an error, e.g. `No such server.` or `No such backend.`.
    #[error("HAProxy runtime API at {address} refused `{command}`: {answer}")]
    Refused {
        /// The socket.
        address: String,
        /// The command, which names the backend and server.
        command: String,
        /// HAProxy's answer, trimmed.
        answer: String,
    },

    /// HAProxy answered something that does not have the expected shape (for `get weight`:
    /// `N (initial M)`).
    #[error("HAProxy runtime API at {address}: unexpected answer to `{command}`: {answer:?}")]
    UnexpectedAnswer {
        /// The socket.
        address: String,
        /// The command.
        command: String,
        /// The answer, trimmed.
        answer: String,
    },

    /// Both servers have weight 0 (or are marked down): the router sends the service's traffic
    /// nowhere, which canary never sets, so someone else changed it.
    #[error("{location}: {detail}")]
    NoTraffic {
        /// `haproxy` or `nginx`.
        component: &'static str,
        /// Where it was read: the socket and backend, or the upstream file.
        location: String,
        /// What was read.
        detail: String,
    },

    /// Reading, writing, syncing or renaming the NGINX upstream file (or its temporary
    /// sibling) failed.
    #[error("cannot {action} {}", path.display())]
    File {
        /// What was being done, e.g. `write`, `rename into place`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The NGINX upstream file does not hold what canary writes: no `upstream NAME` block, a
    /// server missing, a weight that is not a number.
    #[error("{}: {message}", path.display())]
    Upstream {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A command (the NGINX reload, the command router's `set` or `get`) could not be started,
    /// exited non-zero, or ran past its timeout and was killed. The message quotes the first
    /// lines of its stderr, never its environment.
    #[error("`{program}` {failure}")]
    Command {
        /// `nginx` (the reload) or `command` (the command router).
        component: &'static str,
        /// The program (argv\[0\]); its arguments are left out of messages.
        program: String,
        /// What happened.
        failure: CommandFailure,
    },

    /// The command router's `get` command printed something that is not a weight.
    #[error("`{program}` printed {output:?}, expected a whole number of percent from 0 to 100")]
    BadWeightOutput {
        /// The `get` program.
        program: String,
        /// What it printed (trimmed, cut to a readable length).
        output: String,
    },

    /// The command router has no `get` command and has not set a weight yet in this process,
    /// so there is nothing it can honestly report.
    #[error(
        "no `get` command is configured and `{program}` has not set a weight yet in this process, so the canary weight is unknown"
    )]
    Unverifiable {
        /// The `set` program.
        program: String,
    },

    /// The HTTP client that sends webhooks could not be built (its TLS set-up failed).
    #[error("cannot build the HTTP client for webhooks: {message}")]
    HttpClient {
        /// The client builder's error, with its sources.
        message: String,
    },

    /// The NGINX reload failed after the upstream file was rewritten. The previous content
    /// is put back so that the file matches what NGINX runs.
    #[error(
        "reloading NGINX after rewriting {} failed; {}",
        path.display(),
        match restore_error { None => "its previous content was put back".to_owned(), Some(e) => format!("putting its previous content back failed too: {e}") }
    )]
    ReloadFailed {
        /// The upstream file.
        path: PathBuf,
        /// Why restoring the previous content failed, if it did.
        restore_error: Option<String>,
        /// The reload's (or the configuration test's) failure.
        #[source]
        source: Box<GatewayError>,
    },
}

impl GatewayError {
    /// Converts into the core's error: unreachable sockets, failed commands and file errors
    /// are [`canary_core::Error::Unavailable`], routers whose state differs from what canary
    /// set are [`canary_core::Error::Mismatch`], invalid names are
    /// [`canary_core::Error::Usage`]. The address is the socket, file or program; the message
    /// says what happened without repeating it, and the underlying error is kept as `source`.
    pub fn into_core(self) -> canary_core::Error {
        use canary_core::Error;
        let unavailable = |component: &'static str,
                           address: String,
                           message: String,
                           source: Option<BoxError>| {
            Error::Unavailable {
                component,
                address,
                message,
                source,
            }
        };
        match self {
            e @ GatewayError::InvalidName { .. } => Error::Usage(e.to_string()),
            GatewayError::Connect { address, source } => unavailable(
                "haproxy",
                address,
                "cannot connect to the runtime API".to_owned(),
                Some(Box::new(source)),
            ),
            GatewayError::Socket {
                address,
                command,
                source,
            } => unavailable(
                "haproxy",
                address,
                format!("`{command}` failed on the connection"),
                Some(Box::new(source)),
            ),
            GatewayError::SocketTimeout {
                address,
                command,
                timeout,
            } => unavailable(
                "haproxy",
                address,
                format!(
                    "no answer to `{command}` within {}",
                    canary_core::policy::duration_as_written(timeout)
                ),
                None,
            ),
            GatewayError::Refused {
                address,
                command,
                answer,
            } => unavailable(
                "haproxy",
                address,
                format!("`{command}` was refused: {answer}"),
                None,
            ),
            GatewayError::UnexpectedAnswer {
                address,
                command,
                answer,
            } => unavailable(
                "haproxy",
                address,
                format!("unexpected answer to `{command}`: {answer:?}"),
                None,
            ),
            GatewayError::NoTraffic {
                component,
                location,
                detail,
            } => Error::Mismatch {
                component,
                message: format!("{location}: {detail}"),
            },
            GatewayError::File {
                action,
                path,
                source,
            } => unavailable(
                "nginx",
                path.display().to_string(),
                format!("cannot {action} the file"),
                Some(Box::new(source)),
            ),
            e @ GatewayError::Upstream { .. } => Error::Mismatch {
                component: "nginx",
                message: e.to_string(),
            },
            GatewayError::Command {
                component,
                program,
                failure,
            } => unavailable(component, format!("`{program}`"), failure.to_string(), None),
            GatewayError::BadWeightOutput { program, output } => unavailable(
                "command",
                format!("`{program}`"),
                format!("printed {output:?}, expected a whole number of percent from 0 to 100"),
                None,
            ),
            GatewayError::Unverifiable { program } => unavailable(
                "command",
                format!("`{program}`"),
                "no `get` command is configured and no weight was set yet in this process, \
                 so the canary weight is unknown"
                    .to_owned(),
                None,
            ),
            GatewayError::HttpClient { message } => {
                unavailable("hook", "webhook HTTP client".to_owned(), message, None)
            }
            GatewayError::ReloadFailed {
                path,
                restore_error,
                source,
            } => unavailable(
                "nginx",
                path.display().to_string(),
                match restore_error {
                    None => "reload failed; the file's previous content was put back".to_owned(),
                    Some(e) => {
                        format!(
                            "reload failed, and putting the file's previous content back failed too: {e}"
                        )
                    }
                },
                Some(source),
            ),
        }
    }
}

impl From<GatewayError> for canary_core::Error {
    fn from(e: GatewayError) -> Self {
        e.into_core()
    }
}
