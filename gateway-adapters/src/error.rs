//! The one error type of `canary-gateways`: which adapter failed and where, with the adapter's
//! own error ([`HaproxyError`], [`NginxError`], [`CommandRouterError`]) as its source; and
//! how it becomes a [`canary_core::Error`] at the
//! [`TrafficRouter`](canary_core::ports::TrafficRouter) boundary.
//!
//! Each adapter's error says what happened in its own words, once; the address (socket,
//! upstream file, program) is said here, once, so the core error reads
//! `haproxy at unix:/run/haproxy.sock: cannot connect to the runtime API: …`.

use std::path::PathBuf;

pub use crate::process::CommandFailure;
pub use crate::routers::command::CommandRouterError;
pub use crate::routers::haproxy::HaproxyError;
pub use crate::routers::nginx::NginxError;

/// `Result` with [`GatewayError`] as the default error.
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// Everything that can go wrong while moving traffic or running hooks. Messages name the
/// socket, file or program involved; they never quote a command's environment or a secret.
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

    /// The HAProxy runtime API failed or answered what canary did not ask for.
    #[error("HAProxy runtime API at {address}")]
    Haproxy {
        /// The socket, e.g. `unix:/run/haproxy/admin.sock`.
        address: String,
        /// What happened.
        #[source]
        error: HaproxyError,
    },

    /// The NGINX router's upstream file, configuration test or reload failed.
    #[error("NGINX upstream file {}", path.display())]
    Nginx {
        /// The upstream file canary rewrites.
        path: PathBuf,
        /// What happened.
        #[source]
        error: NginxError,
    },

    /// The command router's `set` or `get` command failed.
    #[error("command router `{program}`")]
    CommandRouter {
        /// The program (argv\[0\]); its arguments are left out of messages.
        program: String,
        /// What happened.
        #[source]
        error: CommandRouterError,
    },

    /// The HTTP client that sends webhooks could not be built (its TLS set-up failed).
    #[error("cannot build the HTTP client for webhooks: {message}")]
    HttpClient {
        /// The client builder's error, with its sources.
        message: String,
    },
}

impl GatewayError {
    /// Converts into the core's error: unreachable sockets, failed commands and file errors
    /// are [`canary_core::Error::Unavailable`] (the address is the socket, file or program),
    /// routers whose state differs from what canary set are
    /// [`canary_core::Error::Mismatch`], invalid names are [`canary_core::Error::Usage`].
    /// The message is the adapter's error, and what that error wraps stays its `source`.
    pub fn into_core(self) -> canary_core::Error {
        match self {
            e @ GatewayError::InvalidName { .. } => canary_core::Error::Usage(e.to_string()),
            GatewayError::Haproxy { address, error } => error.into_core(address),
            GatewayError::Nginx { path, error } => error.into_core(&path),
            GatewayError::CommandRouter { program, error } => error.into_core(&program),
            GatewayError::HttpClient { message } => {
                canary_core::Error::unavailable("hook", "webhook HTTP client", message)
            }
        }
    }
}

impl From<GatewayError> for canary_core::Error {
    fn from(e: GatewayError) -> Self {
        e.into_core()
    }
}

#[cfg(test)]
mod tests {
    //! The messages a user sees: every gateway error, as the core error it becomes, with its
    //! whole `source` chain (what `canary` prints).

    use std::io;
    use std::time::Duration;

    use super::*;

    fn shown(error: impl Into<canary_core::Error>) -> String {
        let error: canary_core::Error = error.into();
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }

    fn haproxy(error: HaproxyError) -> GatewayError {
        GatewayError::Haproxy {
            address: "127.0.0.1:9999".to_owned(),
            error,
        }
    }

    fn nginx(error: NginxError) -> GatewayError {
        GatewayError::Nginx {
            path: PathBuf::from("/etc/nginx/upstream.conf"),
            error,
        }
    }

    fn refused() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused")
    }

    #[test]
    fn haproxy_errors_name_the_socket_and_the_command() {
        let cases: Vec<(GatewayError, &str)> = vec![
            (
                GatewayError::InvalidName {
                    what: "HAProxy backend",
                    value: "a b".to_owned(),
                    rule: "letters only",
                },
                "HAProxy backend \"a b\" is not a valid name: letters only",
            ),
            (
                GatewayError::Haproxy {
                    address: "unix:/run/h.sock".to_owned(),
                    error: HaproxyError::Connect(refused()),
                },
                "haproxy at unix:/run/h.sock: cannot connect to the runtime API: Connection refused",
            ),
            (
                haproxy(HaproxyError::Socket {
                    command: "get weight b/c".to_owned(),
                    source: refused(),
                }),
                "haproxy at 127.0.0.1:9999: `get weight b/c` failed on the connection: Connection refused",
            ),
            (
                haproxy(HaproxyError::Timeout {
                    command: "get weight b/c".to_owned(),
                    timeout: Duration::from_millis(300),
                }),
                "haproxy at 127.0.0.1:9999: no answer to `get weight b/c` within 300ms",
            ),
            (
                haproxy(HaproxyError::Refused {
                    command: "set server b/c weight 10".to_owned(),
                    answer: "No such server.".to_owned(),
                }),
                "haproxy at 127.0.0.1:9999: `set server b/c weight 10` was refused: No such server.",
            ),
            (
                haproxy(HaproxyError::UnexpectedAnswer {
                    command: "get weight b/c".to_owned(),
                    answer: "??".to_owned(),
                }),
                "haproxy at 127.0.0.1:9999: unexpected answer to `get weight b/c`: \"??\"",
            ),
            (
                haproxy(HaproxyError::NoTraffic {
                    backend: "b".to_owned(),
                    canary: "c".to_owned(),
                    stable: "s".to_owned(),
                }),
                "haproxy: HAProxy runtime API at 127.0.0.1:9999: backend b has both c and s at weight 0, so it sends traffic nowhere",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(shown(error), expected);
        }
    }

    fn exited(code: i32, stderr: &str) -> CommandFailure {
        use std::os::unix::process::ExitStatusExt;
        CommandFailure::Exit {
            status: std::process::ExitStatus::from_raw(code << 8),
            stderr: stderr.to_owned(),
        }
    }

    #[test]
    fn nginx_errors_name_the_upstream_file() {
        let file = PathBuf::from("/etc/nginx/upstream.conf");
        let cases: Vec<(GatewayError, &str)> = vec![
            (
                nginx(NginxError::Upstream(
                    "no `upstream web { … }` block".to_owned(),
                )),
                "nginx: /etc/nginx/upstream.conf: no `upstream web { … }` block",
            ),
            (
                nginx(NginxError::NoTraffic {
                    upstream: "web".to_owned(),
                    canary: "a".to_owned(),
                    stable: "b".to_owned(),
                }),
                "nginx: /etc/nginx/upstream.conf: upstream web has both a and b down, so it sends traffic nowhere",
            ),
            (
                nginx(NginxError::File {
                    action: "read",
                    path: file.clone(),
                    source: io::Error::new(io::ErrorKind::PermissionDenied, "Permission denied"),
                }),
                FILE_ERROR,
            ),
            (
                nginx(NginxError::Command {
                    program: "nginx".to_owned(),
                    failure: exited(1, "bad config"),
                }),
                RELOAD_ERROR,
            ),
            (
                nginx(NginxError::ReloadFailed {
                    restore_error: None,
                    source: Box::new(NginxError::Command {
                        program: "nginx".to_owned(),
                        failure: CommandFailure::Timeout(Duration::from_millis(300)),
                    }),
                }),
                "nginx at /etc/nginx/upstream.conf: reload failed; the file's previous content was put back: `nginx` did not finish within 300ms and was killed",
            ),
            (
                nginx(NginxError::ReloadFailed {
                    restore_error: Some("cannot write /etc/nginx/upstream.conf".to_owned()),
                    source: Box::new(NginxError::Command {
                        program: "nginx".to_owned(),
                        failure: exited(1, "bad config"),
                    }),
                }),
                "nginx at /etc/nginx/upstream.conf: reload failed, and putting the file's previous content back failed too: cannot write /etc/nginx/upstream.conf: `nginx` exited with code 1: bad config",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(shown(error), expected);
        }
    }

    #[test]
    fn command_router_and_hook_errors_name_the_program() {
        let cases: Vec<(GatewayError, &str)> = vec![
            (
                GatewayError::CommandRouter {
                    program: "set-weight".to_owned(),
                    error: CommandRouterError::Failed(exited(3, "no route")),
                },
                "command at `set-weight`: exited with code 3: no route",
            ),
            (
                GatewayError::CommandRouter {
                    program: "get-weight".to_owned(),
                    error: CommandRouterError::BadWeightOutput("ten".to_owned()),
                },
                "command at `get-weight`: printed \"ten\", expected a whole number of percent from 0 to 100",
            ),
            (
                GatewayError::CommandRouter {
                    program: "set-weight".to_owned(),
                    error: CommandRouterError::Unverifiable,
                },
                "command at `set-weight`: no `get` command is configured and no weight was set yet in this process, so the canary weight is unknown",
            ),
            (
                GatewayError::HttpClient {
                    message: "no TLS provider".to_owned(),
                },
                "hook at webhook HTTP client: no TLS provider",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(shown(error), expected);
        }
    }

    /// Was `cannot read the file`: the file is named now, since it may be the upstream
    /// file's temporary sibling rather than the upstream file itself.
    const FILE_ERROR: &str = "nginx at /etc/nginx/upstream.conf: cannot read /etc/nginx/upstream.conf: Permission denied";
    /// Was `nginx at `nginx`: exited with code 1: …`: the address is now the upstream file
    /// (which router), and the message names the program.
    const RELOAD_ERROR: &str =
        "nginx at /etc/nginx/upstream.conf: `nginx` exited with code 1: bad config";
}
