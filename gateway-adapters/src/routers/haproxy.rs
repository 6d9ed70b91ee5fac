//! [`HaproxyRouter`]: canary weights through HAProxy's runtime API (the stats socket).
//!
//! The canary's share W % becomes two server weights in one backend: `set server B/CANARY
//! weight W` and `set server B/STABLE weight 100-W`. HAProxy's weighted round robin sends each
//! server its weight's share of the backend's requests, so the canary gets W % (HAProxy's
//! management guide, section 9.3, "set weight": absolute weights run from 0 to 256; weight 0
//! takes a server out of the rotation without marking it down). The weights are read back with
//! `get weight B/SERVER`, which answers `CURRENT (initial CONFIGURED)`.
//!
//! **One connection per command.** The runtime API's non-interactive mode takes one line,
//! answers, and closes the connection, so the end of an answer is the end of the stream: no
//! prompt to parse, no state that a half-read answer could leave behind for the next command,
//! and a broken connection costs one command, not a session. Opening a unix or loopback
//! socket costs tens of microseconds, which a weight change every few minutes can afford.
//! The two reads of a read-back go on one line (`get weight …;get weight …`), which HAProxy
//! runs back to back, so the two weights form one snapshot; their answers are told apart by
//! the empty line HAProxy ends each answer with (and guarantees no answer contains).
//!
//! **Order of the two writes.** The server whose new weight is the larger one (at least 50)
//! is written first, so at no moment do both servers have weight 0 and the backend send its
//! traffic nowhere. Between two weights canary set, the share after the first write lies
//! between the old and the new share. Going to 0 % the stable server is raised first; going
//! to 100 % the canary is.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use canary_core::policy::{HaproxySpec, SocketAddress};
use canary_core::ports::TrafficRouter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{GatewayError, Result};

/// What went wrong at the HAProxy runtime API. The messages leave the socket out:
/// [`GatewayError::Haproxy`] names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HaproxyError {
    /// The socket could not be connected to (HAProxy not running, wrong path or port, no
    /// permission).
    #[error("cannot connect to the runtime API")]
    Connect(#[source] std::io::Error),

    /// The connection broke while a command was sent or its answer read.
    #[error("`{command}` failed on the connection")]
    Socket {
        /// The command that was being sent.
        command: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The runtime API did not accept the connection or did not answer within the timeout.
    #[error("no answer to `{command}` within {}", canary_core::policy::duration_as_written(*timeout))]
    Timeout {
        /// The command that got no answer.
        command: String,
        /// The timeout that passed.
        timeout: Duration,
    },

    /// HAProxy answered a command with an error, e.g. `No such server.` or `No such backend.`.
    #[error("`{command}` was refused: {answer}")]
    Refused {
        /// The command, which names the backend and server.
        command: String,
        /// HAProxy's answer, on one line.
        answer: String,
    },

    /// HAProxy answered something that does not have the expected shape (for `get weight`:
    /// `N (initial M)`).
    #[error("unexpected answer to `{command}`: {answer:?}")]
    UnexpectedAnswer {
        /// The command.
        command: String,
        /// The answer, trimmed.
        answer: String,
    },

    /// Both servers have weight 0 (or are marked down): the backend sends the service's
    /// traffic nowhere, which canary never sets, so someone else changed it.
    #[error(
        "backend {backend} has both {canary} and {stable} at weight 0, so it sends traffic nowhere"
    )]
    NoTraffic {
        /// The backend.
        backend: String,
        /// The canary server.
        canary: String,
        /// The stable server.
        stable: String,
    },
}

impl HaproxyError {
    /// The core's error for this one at `address`: a backend sending traffic nowhere is a
    /// [`Mismatch`](canary_core::Error::Mismatch), the rest
    /// [`Unavailable`](canary_core::Error::Unavailable).
    pub(crate) fn into_core(self, address: String) -> canary_core::Error {
        let message = self.to_string();
        let source: Option<canary_core::error::BoxError> = match self {
            HaproxyError::NoTraffic { .. } => {
                return canary_core::Error::Mismatch {
                    component: "haproxy",
                    message: format!("HAProxy runtime API at {address}: {message}"),
                };
            }
            HaproxyError::Connect(source) | HaproxyError::Socket { source, .. } => {
                Some(Box::new(source))
            }
            _ => None,
        };
        canary_core::Error::Unavailable {
            component: "haproxy",
            address,
            message,
            source,
        }
    }
}

/// The longest answer read from the runtime API; weight commands answer a few bytes, and an
/// endless answer (a wrong port) must not fill memory.
const ANSWER_LIMIT: u64 = 64 * 1024;

/// Moves traffic by setting two servers' weights in one HAProxy backend through the runtime
/// API, over a unix socket or TCP. See the module documentation for the protocol choices.
#[derive(Debug)]
pub struct HaproxyRouter {
    socket: SocketAddress,
    backend: String,
    canary: String,
    stable: String,
    timeout: Duration,
    /// Serialises this process's weight changes and reads, so a read never sees one write of
    /// a pair without the other.
    busy: Mutex<()>,
}

/// The two servers' current weights as HAProxy reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerWeights {
    /// The canary server's current weight (0–256).
    pub canary: u32,
    /// The stable server's current weight (0–256).
    pub stable: u32,
}

impl ServerWeights {
    /// The canary's share of the backend in percent, rounded half up; `None` when both
    /// weights are 0 (the backend sends traffic nowhere).
    pub fn canary_percent(self) -> Option<u8> {
        canary_core::ports::canary_share(self.canary, self.stable)
    }
}

impl HaproxyRouter {
    /// How long connecting, sending a command and reading its answer may take, together,
    /// unless [`HaproxyRouter::with_timeout`] says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A router for the backend and servers of `spec`. Checks the names again (the policy
    /// validation already did): they are written into runtime API commands verbatim.
    pub fn new(spec: &HaproxySpec) -> Result<Self> {
        check_name("HAProxy backend", &spec.backend)?;
        check_name("HAProxy canary server", &spec.canary_server)?;
        check_name("HAProxy stable server", &spec.stable_server)?;
        Ok(HaproxyRouter {
            socket: spec.socket.clone(),
            backend: spec.backend.clone(),
            canary: spec.canary_server.clone(),
            stable: spec.stable_server.clone(),
            timeout: Self::DEFAULT_TIMEOUT,
            busy: Mutex::new(()),
        })
    }

    /// Sets the timeout of each runtime API command (connect, send and answer together).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Gives the canary `weight` percent: canary server weight `weight`, stable server weight
    /// `100 - weight`, the larger written first. Each answer is checked; the first refusal
    /// stops and is returned.
    pub async fn set_weight(&self, weight: u8) -> Result<()> {
        let canary = u32::from(weight.min(100));
        let stable = 100 - canary;
        let (first, second) = if canary >= stable {
            ((&self.canary, canary), (&self.stable, stable))
        } else {
            ((&self.stable, stable), (&self.canary, canary))
        };
        let _busy = self.busy.lock().await;
        for (server, value) in [first, second] {
            let command = format!("set server {}/{server} weight {value}", self.backend);
            let answer = self.exchange(&command).await?;
            // Success is an empty answer (HAProxy prints only the blank end-of-answer line);
            // anything else is HAProxy's error message.
            let answer = answer.trim();
            if !answer.is_empty() {
                return Err(self.refused(command, answer));
            }
        }
        Ok(())
    }

    /// Reads both servers' current weights in one runtime API call.
    pub async fn server_weights(&self) -> Result<ServerWeights> {
        let _busy = self.busy.lock().await;
        let get_canary = format!("get weight {}/{}", self.backend, self.canary);
        let get_stable = format!("get weight {}/{}", self.backend, self.stable);
        let line = format!("{get_canary};{get_stable}");
        let answer = self.exchange(&line).await?;
        self.weights_from_answer(&answer)
    }

    /// Reads the answer to the read-back line (`get weight B/CANARY;get weight B/STABLE`):
    /// what [`HaproxyRouter::server_weights`] does with what the socket sent. Public so that
    /// the fuzz targets (`tests/fuzz`) feed it hostile answers.
    pub fn weights_from_answer(&self, answer: &str) -> Result<ServerWeights> {
        let get_canary = format!("get weight {}/{}", self.backend, self.canary);
        let get_stable = format!("get weight {}/{}", self.backend, self.stable);
        let answers = split_answers(answer);
        if answers.len() != 2 {
            return Err(self.error(HaproxyError::UnexpectedAnswer {
                command: format!("{get_canary};{get_stable}"),
                answer: answer.trim().to_owned(),
            }));
        }
        let canary = self.parse_weight(get_canary, &answers[0])?;
        let stable = self.parse_weight(get_stable, &answers[1])?;
        Ok(ServerWeights { canary, stable })
    }

    /// The canary's share as HAProxy has it, in percent.
    pub async fn read_weight(&self) -> Result<u8> {
        let weights = self.server_weights().await?;
        weights.canary_percent().ok_or_else(|| {
            self.error(HaproxyError::NoTraffic {
                backend: self.backend.clone(),
                canary: self.canary.clone(),
                stable: self.stable.clone(),
            })
        })
    }

    fn parse_weight(&self, command: String, answer: &str) -> Result<u32> {
        // `10 (initial 1)`: the current weight, then the configured one.
        let mut words = answer.split_whitespace();
        match (words.next().map(str::parse::<u32>), words.next()) {
            (Some(Ok(weight)), Some(rest)) if rest.starts_with("(initial") => Ok(weight),
            (Some(Ok(weight)), None) => Ok(weight),
            (Some(Err(_)), _) | (None, _) if !answer.is_empty() => {
                // Not a number first: HAProxy's error, e.g. `No such server.`.
                Err(self.refused(command, answer))
            }
            _ => Err(self.error(HaproxyError::UnexpectedAnswer {
                command,
                answer: answer.to_owned(),
            })),
        }
    }

    fn refused(&self, command: String, answer: &str) -> GatewayError {
        self.error(HaproxyError::Refused {
            command,
            answer: answer.lines().collect::<Vec<_>>().join(" "),
        })
    }

    /// `error`, at this router's socket.
    fn error(&self, error: HaproxyError) -> GatewayError {
        GatewayError::Haproxy {
            address: self.socket.to_string(),
            error,
        }
    }

    /// Sends one command line on a fresh connection and reads the answer to the end of the
    /// stream, all within the timeout.
    async fn exchange(&self, command: &str) -> Result<String> {
        let deadline = Instant::now() + self.timeout;
        let timed_out = || {
            self.error(HaproxyError::Timeout {
                command: command.to_owned(),
                timeout: self.timeout,
            })
        };
        let connect_error = |source| self.error(HaproxyError::Connect(source));
        let socket_error = |source| {
            self.error(HaproxyError::Socket {
                command: command.to_owned(),
                source,
            })
        };
        let answer = match &self.socket {
            SocketAddress::Unix(path) => {
                let stream = tokio::time::timeout_at(deadline, UnixStream::connect(path))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(connect_error)?;
                tokio::time::timeout_at(deadline, talk(stream, command)).await
            }
            SocketAddress::Tcp(host_port) => {
                let stream = tokio::time::timeout_at(deadline, TcpStream::connect(host_port))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(connect_error)?;
                // One small write, then wait: no reason to let Nagle hold it back.
                let _ = stream.set_nodelay(true);
                tokio::time::timeout_at(deadline, talk(stream, command)).await
            }
        };
        answer.map_err(|_| timed_out())?.map_err(socket_error)
    }
}

async fn talk(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    command: &str,
) -> std::io::Result<String> {
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(ANSWER_LIMIT)
        .read_to_end(&mut answer)
        .await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Splits the answer to a line of `;`-separated commands into one answer per command: each
/// ends with an empty line.
fn split_answers(answer: &str) -> Vec<String> {
    let mut answers = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in answer.lines() {
        if line.trim().is_empty() {
            answers.push(current.join(" "));
            current.clear();
        } else {
            current.push(line.trim());
        }
    }
    if !current.is_empty() {
        answers.push(current.join(" "));
    }
    answers
}

/// HAProxy's own rule for proxy and server names: letters, digits, `-`, `_`, `.` and `:`.
/// It also keeps out everything that means something to the runtime API (spaces, `;`, `/`,
/// `\`, newlines).
fn check_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(GatewayError::InvalidName {
            what,
            value: name.to_owned(),
            rule: "letters, digits, `-`, `_`, `.` and `:` only",
        })
    }
}

impl fmt::Display for HaproxyRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HAProxy runtime API at {}, backend {} (canary server {}, stable server {})",
            self.socket, self.backend, self.canary, self.stable
        )
    }
}

#[async_trait]
impl TrafficRouter for HaproxyRouter {
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
    fn percent_rounds_half_up_and_refuses_no_traffic() {
        let w = |canary, stable| ServerWeights { canary, stable }.canary_percent();
        assert_eq!(w(10, 90), Some(10));
        assert_eq!(w(0, 100), Some(0));
        assert_eq!(w(100, 0), Some(100));
        assert_eq!(w(1, 1), Some(50));
        assert_eq!(w(1, 2), Some(33));
        assert_eq!(w(2, 1), Some(67));
        assert_eq!(w(1, 7), Some(13)); // 12.5 → 13
        assert_eq!(w(256, 0), Some(100));
        assert_eq!(w(0, 0), None);
    }

    #[test]
    fn answers_split_on_empty_lines() {
        assert_eq!(
            split_answers("10 (initial 1)\n\n90 (initial 1)\n\n"),
            vec!["10 (initial 1)", "90 (initial 1)"]
        );
        assert_eq!(
            split_answers("No such server.\n\n90 (initial 1)\n\n"),
            vec!["No such server.", "90 (initial 1)"]
        );
        assert_eq!(split_answers("\n"), vec![""]);
    }

    #[test]
    fn names_that_could_break_a_command_are_refused() {
        for bad in ["", "a b", "a;b", "a\nb", "a/b", "a\\b", "a#b"] {
            assert!(check_name("HAProxy backend", bad).is_err(), "{bad:?}");
        }
        for good in ["app", "app-canary_1", "svc.v2", "be:1"] {
            assert!(check_name("HAProxy backend", good).is_ok(), "{good:?}");
        }
    }
}
