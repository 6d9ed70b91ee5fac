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
use canary_core::policy::{AclReads, HaproxyRouteAcl, HaproxySpec, SocketAddress, StepRoute};
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

    /// The running HAProxy has no ACL loaded from the policy's `route-acl` file: its
    /// configuration does not read it (`-f FILE`), or names it another way.
    #[error(
        "HAProxy has no ACL loaded from {file:?} (`show acl` lists {listed}): haproxy.cfg must read it, e.g. `use-server CANARY if {{ req.hdr(x-canary) -f {file} }}`, and name it exactly as `gateway.haproxy.route-acl.file` does"
    )]
    AclMissing {
        /// The file the policy names.
        file: String,
        /// The ACL files HAProxy has loaded, or `none`.
        listed: String,
    },

    /// The ACL loaded from the policy's `route-acl` file reads something else than what the
    /// policy says it reads (a cookie for a header, a path, a source address).
    #[error(
        "the ACL loaded from {file:?} ({used}) reads `{found}`, but `gateway.haproxy.route-acl` says it reads the {expected}: a header ACL must use `req.hdr(NAME)` (or `hdr`, `req.fhdr`, `fhdr`), a cookie ACL `req.cook(NAME)` (or `cook`)"
    )]
    AclReadsOther {
        /// The file.
        file: String,
        /// Where haproxy.cfg uses it, as HAProxy says (`file 'haproxy.cfg' line 12`).
        used: String,
        /// The sample fetch the ACL's expression uses, as `show acl` names it.
        found: String,
        /// What the policy says it reads (`header "x-canary"`).
        expected: String,
    },

    /// The ACL file holds what no step of canary writes: several patterns, or a cookie
    /// ACL holding something else than `always`. Someone else writes into it.
    #[error(
        "the ACL {file:?} holds {entries:?}, which no step of canary writes (a header step writes its one value, a cookie step `always`): something else writes into it"
    )]
    AclForeign {
        /// The file.
        file: String,
        /// Its patterns.
        entries: Vec<String>,
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
            HaproxyError::AclMissing { .. } | HaproxyError::AclReadsOther { .. } => {
                return canary_core::Error::Usage(format!(
                    "HAProxy runtime API at {address}: {message}"
                ));
            }
            HaproxyError::NoTraffic { .. } | HaproxyError::AclForeign { .. } => {
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
    /// The ACL file of header and cookie steps, when the policy has one.
    route_acl: Option<HaproxyRouteAcl>,
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
        if let Some(acl) = &spec.route_acl {
            check_acl_file(&acl.file)?;
        }
        Ok(HaproxyRouter {
            socket: spec.socket.clone(),
            backend: spec.backend.clone(),
            canary: spec.canary_server.clone(),
            stable: spec.stable_server.clone(),
            timeout: Self::DEFAULT_TIMEOUT,
            route_acl: spec.route_acl.clone(),
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
        // A weight step routes by weight alone: requests matching the ACL would still go
        // to the canary, whatever its weight, so it is emptied (idempotent when it is).
        if let Some(acl) = &self.route_acl {
            self.command_without_answer(format!("clear acl {}", acl.file))
                .await?;
        }
        Ok(())
    }

    /// Routes by request: weights canary 0 and stable 100 (every request not matching goes
    /// to stable), the ACL emptied, then the step's value written into it, the header's
    /// value for a header step and `always` for a cookie step. Refuses a route the ACL does
    /// not read (policy validation refuses such policies before).
    pub async fn set_route(&self, route: &StepRoute) -> Result<()> {
        let Some(acl) = &self.route_acl else {
            return Err(self.error(HaproxyError::Refused {
                command: format!("route {route}"),
                answer: "the policy names no `gateway.haproxy.route-acl`".to_owned(),
            }));
        };
        let value = match (route, &acl.reads) {
            (StepRoute::Header { name, value }, AclReads::Header(reads)) if name == reads => {
                value.as_str()
            }
            (StepRoute::Cookie { name }, AclReads::Cookie(reads)) if name == reads => "always",
            _ => {
                return Err(self.error(HaproxyError::Refused {
                    command: format!("route {route}"),
                    answer: format!("the route ACL {:?} reads the {}", acl.file, acl.reads),
                }));
            }
        };
        self.set_weight(0).await?;
        let _busy = self.busy.lock().await;
        self.command_without_answer(format!("add acl {} {}", acl.file, escape_word(value)))
            .await
    }

    /// The patterns of the route ACL, in HAProxy's order (empty without a route ACL).
    pub async fn acl_entries(&self) -> Result<Vec<String>> {
        let Some(acl) = &self.route_acl else {
            return Ok(Vec::new());
        };
        let _busy = self.busy.lock().await;
        let command = format!("show acl {}", acl.file);
        let answer = self.exchange(&command).await?;
        self.entries_from_answer(command, answer.trim_end_matches('\n'))
    }

    /// Checks, before anything moves, that the running HAProxy has the route ACL loaded
    /// and that its expression reads what the policy says (a header, or a cookie): both
    /// from `show acl`, which lists each ACL file with the configuration line using it and
    /// each expression with its sample fetch (`acl 'req.hdr' file 'haproxy.cfg' line 12`).
    /// The fetch's argument (the header's or cookie's name) and the match method are not in
    /// what the runtime API shows: they are the user's part (docs/policy-reference.md).
    pub async fn check_route_acl(&self) -> Result<()> {
        if self.route_acl.is_none() {
            return Ok(());
        }
        let answer = {
            let _busy = self.busy.lock().await;
            self.exchange("show acl").await?
        };
        self.check_acl_listing(&answer)
    }

    /// Checks the answer to `show acl` (every ACL HAProxy has loaded) against the route
    /// ACL: what [`HaproxyRouter::check_route_acl`] does with what the socket sent. Public
    /// so that the fuzz targets (`tests/fuzz`) feed it hostile answers.
    pub fn check_acl_listing(&self, answer: &str) -> Result<()> {
        let Some(acl) = &self.route_acl else {
            return Ok(());
        };
        let listing = AclListing::parse(answer);
        let Some(used) = listing.file_used_at(&acl.file) else {
            let files = listing.files();
            return Err(self.error(HaproxyError::AclMissing {
                file: acl.file.clone(),
                listed: if files.is_empty() {
                    "none".to_owned()
                } else {
                    files.join(", ")
                },
            }));
        };
        let fetches = listing.fetches_at(&used);
        let accepted: &[&str] = match acl.reads {
            AclReads::Header(_) => &["req.hdr", "hdr", "req.fhdr", "fhdr"],
            AclReads::Cookie(_) => &["req.cook", "cook"],
        };
        match fetches.iter().find(|f| !accepted.contains(&f.as_str())) {
            None if !fetches.is_empty() => Ok(()),
            found => Err(self.error(HaproxyError::AclReadsOther {
                file: acl.file.clone(),
                used: used.clone(),
                found: found
                    .cloned()
                    .unwrap_or_else(|| "nothing HAProxy names".to_owned()),
                expected: acl.reads.to_string(),
            })),
        }
    }

    /// The route the ACL's patterns make: none when empty, the step whose value it holds.
    fn route_from_entries(&self, entries: Vec<String>) -> Result<Option<StepRoute>> {
        let Some(acl) = &self.route_acl else {
            return Ok(None);
        };
        let foreign = |entries: Vec<String>| {
            self.error(HaproxyError::AclForeign {
                file: acl.file.clone(),
                entries,
            })
        };
        match (entries.as_slice(), &acl.reads) {
            ([], _) => Ok(None),
            ([value], AclReads::Header(name)) => Ok(Some(StepRoute::Header {
                name: name.clone(),
                value: value.clone(),
            })),
            ([value], AclReads::Cookie(name)) if value == "always" => {
                Ok(Some(StepRoute::Cookie { name: name.clone() }))
            }
            _ => Err(foreign(entries)),
        }
    }

    /// Reads `show acl FILE`'s answer: one `ADDRESS PATTERN` line per pattern; anything
    /// else (`Unknown ACL identifier.`) is HAProxy refusing.
    fn entries_from_answer(&self, command: String, answer: &str) -> Result<Vec<String>> {
        let mut entries = Vec::new();
        for line in answer.lines().filter(|l| !l.trim().is_empty()) {
            match line.split_once(' ') {
                Some((address, pattern)) if address.starts_with("0x") => {
                    entries.push(pattern.to_owned());
                }
                _ => return Err(self.refused(command, answer)),
            }
        }
        Ok(entries)
    }

    /// Sends a command whose success is an empty answer.
    async fn command_without_answer(&self, command: String) -> Result<()> {
        let answer = self.exchange(&command).await?;
        let answer = answer.trim();
        if answer.is_empty() {
            Ok(())
        } else {
            Err(self.refused(command, answer))
        }
    }

    /// The weight and the route, read on one line (`get weight …;get weight …;show acl
    /// FILE`), so they form one snapshot.
    pub async fn weight_and_route(&self) -> Result<(u8, Option<StepRoute>)> {
        let Some(acl) = &self.route_acl else {
            return Ok((self.read_weight().await?, None));
        };
        let answer = {
            let _busy = self.busy.lock().await;
            let line = format!(
                "get weight {b}/{c};get weight {b}/{s};show acl {f}",
                b = self.backend,
                c = self.canary,
                s = self.stable,
                f = acl.file
            );
            self.exchange(&line).await?
        };
        self.read_back_from_answer(&answer)
    }

    /// Reads the answer to the read-back line of a router with a route ACL (`get weight
    /// B/CANARY;get weight B/STABLE;show acl FILE`): the canary's share and the route the
    /// ACL makes. Public so that the fuzz targets (`tests/fuzz`) feed it hostile answers.
    pub fn read_back_from_answer(&self, answer: &str) -> Result<(u8, Option<StepRoute>)> {
        let file = self.route_acl.as_ref().map_or("", |acl| acl.file.as_str());
        let answers = split_answers(answer);
        if answers.len() != 3 {
            return Err(self.error(HaproxyError::UnexpectedAnswer {
                command: format!("get weight …;get weight …;show acl {file}"),
                answer: answer.trim().to_owned(),
            }));
        }
        let weights = self.weights_from_answers(&answers[..2], answer)?;
        let weight = weights.canary_percent().ok_or_else(|| {
            self.error(HaproxyError::NoTraffic {
                backend: self.backend.clone(),
                canary: self.canary.clone(),
                stable: self.stable.clone(),
            })
        })?;
        let entries = self.entries_from_answer(format!("show acl {file}"), &answers[2])?;
        Ok((weight, self.route_from_entries(entries)?))
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
        let answers = split_answers(answer);
        self.weights_from_answers(&answers, answer)
    }

    /// The two weights from the first two answers of a read-back line, split; `answer` is
    /// the whole answer, for the error.
    fn weights_from_answers(&self, answers: &[String], answer: &str) -> Result<ServerWeights> {
        let get_canary = format!("get weight {}/{}", self.backend, self.canary);
        let get_stable = format!("get weight {}/{}", self.backend, self.stable);
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
            answers.push(current.join("\n"));
            current.clear();
        } else {
            current.push(line.trim());
        }
    }
    if !current.is_empty() {
        answers.push(current.join("\n"));
    }
    answers
}

/// An ACL file name goes into runtime API commands as one word: no whitespace, control
/// characters, `;`, `\\` or `#` (the policy validation says the same).
fn check_acl_file(file: &str) -> Result<()> {
    let ok = !file.is_empty()
        && !file
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '\\' | '#'));
    if ok {
        Ok(())
    } else {
        Err(GatewayError::InvalidName {
            what: "HAProxy route ACL file",
            value: file.to_owned(),
            rule: "no spaces, control characters, `;`, `\\` or `#`",
        })
    }
}

/// Escapes a pattern for the runtime API's command line, which splits words on spaces and
/// commands on `;`, and takes `\\` as the escape of the next character (HAProxy's
/// management guide, section 9.3: "the backslash ... escapes" spaces and semicolons).
fn escape_word(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ' ' | '\t' | ';' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// What `show acl` lists: per ACL reference, its id, the file it was loaded from (empty for
/// an expression's own list) and HAProxy's description of it.
struct AclListing {
    entries: Vec<(String, String)>,
}

impl AclListing {
    /// Reads lines `ID (FILE) DESCRIPTION`; the header line (`# id (file) description`)
    /// and anything else are skipped.
    fn parse(answer: &str) -> AclListing {
        let entries = answer
            .lines()
            .filter_map(|line| {
                let (id, rest) = line.trim().split_once(' ')?;
                id.parse::<u64>().ok()?;
                let rest = rest.strip_prefix('(')?;
                let (file, description) = rest.split_once(") ")?;
                Some((file.to_owned(), description.to_owned()))
            })
            .collect();
        AclListing { entries }
    }

    /// The ACL files loaded.
    fn files(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(file, _)| !file.is_empty())
            .map(|(file, _)| format!("{file:?}"))
            .collect()
    }

    /// Where the configuration uses `file`: `file 'haproxy.cfg' line 12`, from the
    /// description `pattern loaded from file 'F' used by acl at file 'C' line N.`.
    fn file_used_at(&self, file: &str) -> Option<String> {
        let (_, description) = self.entries.iter().find(|(f, _)| f == file)?;
        let at = description.split_once(" used by acl at ")?.1;
        Some(at.split_once('.').map_or(at, |(place, _)| place).to_owned())
    }

    /// The sample fetches of the expressions at `place`: `req.hdr` from
    /// `acl 'req.hdr' file 'haproxy.cfg' line 12.`.
    fn fetches_at(&self, place: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(file, _)| file.is_empty())
            .filter_map(|(_, description)| {
                let rest = description.strip_prefix("acl '")?;
                let (fetch, rest) = rest.split_once("' ")?;
                let at = rest.split_once('.').map_or(rest, |(p, _)| p);
                (at == place).then(|| fetch.to_owned())
            })
            .collect()
    }
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

    async fn set_canary_route(&self, route: &StepRoute) -> canary_core::Result<()> {
        Ok(self.set_route(route).await?)
    }

    async fn canary_route(&self) -> canary_core::Result<Option<StepRoute>> {
        let entries = self.acl_entries().await?;
        Ok(self.route_from_entries(entries)?)
    }

    async fn read_back(&self) -> canary_core::Result<(u8, Option<StepRoute>)> {
        Ok(self.weight_and_route().await?)
    }

    async fn preflight(&self) -> canary_core::Result<()> {
        self.read_weight().await?;
        Ok(self.check_route_acl().await?)
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
