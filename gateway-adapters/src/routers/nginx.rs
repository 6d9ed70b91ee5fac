//! [`NginxRouter`]: canary weights as an NGINX upstream block in an include file, reloaded.
//!
//! canary owns one small file that the NGINX configuration includes (inside `http { }`):
//!
//! ```nginx
//! # Written by canary: the canary has 10 % of upstream checkout's requests.
//! upstream checkout {
//!     server 10.0.0.5:8080 weight=90;
//!     server 10.0.0.6:8080 weight=10;
//! }
//! ```
//!
//! NGINX's default balancing method is weighted round robin: each worker process sends every
//! server its weight's share of the requests it proxies (the "smooth" variant interleaves
//! them, so any 100 consecutive picks with weights 90 and 10 contain exactly 10 canary picks).
//! Weights of W and 100 − W therefore give the canary W % of the requests, as long as both
//! servers are up (a server NGINX marks failed after `max_fails` loses its share until it
//! recovers). `hash`, `ip_hash`, `least_conn` or `random` in the block would change that; the
//! block is canary's, so it has none of them.
//!
//! **Weight 0.** NGINX weights start at 1, so a server at 0 % is written with the `down`
//! parameter instead of a weight: it stays in the file, so the file always names both
//! versions and anyone reading it sees the canary is at 0 rather than wondering where it
//! went, and reading the file back tells "at 0" from "deleted by someone".
//!
//! **A change** is: write the new file atomically (a temporary file in the same directory,
//! fsync, rename over, fsync the directory), test the configuration when the reload command
//! allows it, run the reload command with a timeout, and on any failure put the previous
//! content back the same way, so the file keeps matching what NGINX runs. `nginx -s reload`
//! only signals the master process and exits 0 even when the master then rejects the new
//! configuration (it logs the error and keeps the old one), so when the reload command
//! contains `-s reload`, the same command with `-t -q` in its place runs first: a
//! configuration NGINX would reject fails the change with NGINX's own message. The file is
//! rewritten and NGINX reloaded even when the weight is already the one asked for, so a
//! change interrupted between the write and the reload is completed by the next one.
//!
//! **Reading back.** Without a weight probe, reading back parses the file: it says what NGINX
//! was last successfully reloaded with *as far as the reload command could tell*, which is not
//! always what NGINX serves: `nginx -s reload` exits 0 when it has signalled a master that is
//! stopped or hung, a reload wrapper (`systemctl reload`, `kill -HUP`) cannot run the
//! configuration test, and a reload that times out may still apply later.
//!
//! **The weight probe** (`weight-probe: 127.0.0.1:9181` in the policy) closes that gap. The
//! file canary writes then also holds a small `server` block listening on that address whose
//! one location answers with the weights of the same file and a generation written only
//! once:
//!
//! ```nginx
//! server {
//!     listen 127.0.0.1:9181;
//!     access_log off;
//!     location = /canary-weights {
//!         default_type text/plain;
//!         return 200 "canary-weights upstream=checkout canary=10 stable=90 generation=4242-1764547200123456789\n";
//!     }
//! }
//! ```
//!
//! The answer comes from the configuration NGINX has loaded, in the same file as the upstream
//! block, so it is the upstream's weights as NGINX runs them. A change is confirmed only when
//! the probe answers with the new generation (polled until the router's `timeout`); a probe
//! still answering an older generation means the reload did not happen, and the change fails
//! (the file gets its previous content back). A reload command that failed or timed out
//! while NGINX nevertheless serves the new generation is a change that happened: the file is
//! kept. Reading back asks the probe, so a weight NGINX does not serve shows up as drift.
//!
//! **What the probe proves, and the file check.** The answer is text canary wrote next to the
//! upstream block: it proves which file NGINX loaded (its generation), not what that file's
//! upstream held. An upstream edited by hand and reloaded (a server set `down`, another
//! weight, a third server, `backup`, `hash`) keeps the answer canary wrote. So reading back
//! also reads the file and accepts the answer only when the file is what canary writes for
//! it: the file's own answer has the answered generation and weights, and the upstream block
//! holds exactly the two servers with those weights and nothing else. Otherwise it is a
//! [`Mismatch`](canary_core::Error::Mismatch), never a weight; a file changed without a
//! reload is one too. What stays invisible: an edit reloaded and then undone in the file
//! without a reload (NGINX open source cannot show the upstream it runs).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use canary_core::policy::NginxSpec;
use canary_core::ports::TrafficRouter;
use tokio::sync::Mutex;

use crate::error::{GatewayError, Result};
use crate::process::{self, CommandFailure};

/// What went wrong with the NGINX router's upstream file, configuration test or reload. The
/// messages leave the upstream file out: [`GatewayError::Nginx`] names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NginxError {
    /// Reading, writing, syncing or renaming the upstream file (or its temporary sibling)
    /// failed.
    #[error("cannot {action} {}", path.display())]
    File {
        /// What was being done, e.g. `write`, `rename into place`.
        action: &'static str,
        /// The file: the upstream file or its temporary sibling.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The file does not hold what canary writes: no `upstream NAME` block, a server missing,
    /// a weight that is not a number.
    #[error("{0}")]
    Upstream(String),

    /// Both servers are `down`: the upstream sends the service's traffic nowhere, which
    /// canary never writes, so someone else changed it.
    #[error("upstream {upstream} has both {canary} and {stable} down, so it sends traffic nowhere")]
    NoTraffic {
        /// The upstream.
        upstream: String,
        /// The canary server.
        canary: String,
        /// The stable server.
        stable: String,
    },

    /// The weight probe answered, but the upstream file is not what canary writes for the
    /// answer (its generation or its upstream block differs): NGINX may serve weights the
    /// answer does not describe, e.g. an upstream edited by hand and reloaded.
    #[error("the upstream file is not what canary wrote for the weight probe's answer: {0}")]
    NotWritten(String),

    /// The configuration test or the reload could not be started, exited non-zero, or ran
    /// past its timeout and was killed. The message quotes the first lines of its stderr.
    #[error("`{program}` {failure}")]
    Command {
        /// The program (argv\[0\]); its arguments are left out of messages.
        program: String,
        /// What happened.
        failure: CommandFailure,
    },

    /// The weight probe did not answer, or answered what canary does not write.
    #[error("the weight probe at http://{address}{PROBE_PATH} {problem}")]
    Probe {
        /// The probe's address.
        address: std::net::SocketAddr,
        /// What went wrong, e.g. `did not answer within 2s: connection refused`.
        problem: String,
    },

    /// The reload command succeeded (or failed) but NGINX still serves an earlier
    /// configuration: the weight probe kept answering an older generation.
    #[error(
        "NGINX still serves an earlier configuration (canary {served} %) {waited:?} after the \
         reload: the reload did not take effect (a stopped or hung master, or a configuration \
         the master rejected)"
    )]
    NotApplied {
        /// The canary share NGINX serves, in percent, according to the probe.
        served: u8,
        /// How long the probe was watched for the new generation.
        waited: Duration,
    },

    /// The configuration test or the reload failed after the file was rewritten. The
    /// previous content is put back so that the file matches what NGINX runs.
    #[error(
        "reload failed{}",
        match restore_error {
            None => "; the file's previous content was put back".to_owned(),
            Some(e) => format!(", and putting the file's previous content back failed too: {e}"),
        }
    )]
    ReloadFailed {
        /// Why restoring the previous content failed, if it did.
        restore_error: Option<String>,
        /// The test's or the reload's failure.
        #[source]
        source: Box<NginxError>,
    },
}

impl NginxError {
    /// The core's error for this one about the upstream file `path`: a file that does not
    /// hold what canary wrote is a [`Mismatch`](canary_core::Error::Mismatch), the rest
    /// [`Unavailable`](canary_core::Error::Unavailable).
    pub(crate) fn into_core(self, path: &Path) -> canary_core::Error {
        let message = self.to_string();
        let source: Option<canary_core::error::BoxError> = match self {
            NginxError::Upstream(_) | NginxError::NoTraffic { .. } | NginxError::NotWritten(_) => {
                return canary_core::Error::Mismatch {
                    component: "nginx",
                    message: format!("{}: {message}", path.display()),
                };
            }
            NginxError::File { source, .. } => Some(Box::new(source)),
            NginxError::ReloadFailed { source, .. } => Some(source),
            NginxError::Command { .. }
            | NginxError::Probe { .. }
            | NginxError::NotApplied { .. } => None,
        };
        canary_core::Error::Unavailable {
            component: "nginx",
            address: path.display().to_string(),
            message,
            source,
        }
    }
}

/// `Result` with [`NginxError`], for the steps inside one of the router's operations.
type NginxResult<T> = std::result::Result<T, NginxError>;

/// The path of the weight probe's location.
pub const PROBE_PATH: &str = "/canary-weights";

/// An answer of the weight probe: the weights of the configuration NGINX serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// The upstream the answer is about.
    pub upstream: String,
    /// The canary's share, in percent.
    pub canary: u8,
    /// The generation written with it: unique per write.
    pub generation: String,
}

impl ProbeAnswer {
    /// Parses `canary-weights upstream=NAME canary=W stable=S generation=G`. Public so that
    /// the fuzz targets feed it hostile answers.
    pub fn parse(text: &str) -> std::result::Result<ProbeAnswer, String> {
        let mut words = text.split_whitespace();
        if words.next() != Some("canary-weights") {
            return Err("answered something that is not canary's weight probe".to_owned());
        }
        let (mut upstream, mut canary, mut stable, mut generation) = (None, None, None, None);
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("answered a word without `=`: {:?}", clip(word)))?;
            let number = || {
                value
                    .parse::<u8>()
                    .ok()
                    .filter(|w| *w <= 100)
                    .ok_or_else(|| format!("answered {key}={:?}, not a percentage", clip(value)))
            };
            match key {
                "upstream" => upstream = Some(value.to_owned()),
                "canary" => canary = Some(number()?),
                "stable" => stable = Some(number()?),
                "generation" => generation = Some(value.to_owned()),
                _ => {}
            }
        }
        match (upstream, canary, stable, generation) {
            (Some(upstream), Some(canary), Some(stable), Some(generation))
                if u16::from(canary) + u16::from(stable) == 100 =>
            {
                Ok(ProbeAnswer {
                    upstream,
                    canary,
                    generation,
                })
            }
            (Some(_), Some(canary), Some(stable), Some(_)) => Err(format!(
                "answered canary {canary} % and stable {stable} %, which do not add up to 100"
            )),
            _ => Err("answered without upstream, canary, stable and generation".to_owned()),
        }
    }
}

/// At most this much of an outside string goes into a message.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A generation no earlier write of this process or another had: pid and wall-clock
/// nanoseconds (two writes of one process are serialised by the router's lock and the
/// clock's resolution is far below a reload's duration).
fn new_generation() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

/// The weight probe's answer is one short line: anything longer is not canary's.
const PROBE_ANSWER_LIMIT: usize = 1024;
/// How often the probe is asked while waiting for a reload to take effect.
const PROBE_POLL: Duration = Duration::from_millis(50);
/// How many answers in a row must carry a new generation before a change is confirmed.
const PROBE_CONFIRMATIONS: u32 = 3;
/// The longest a single probe request may take.
const PROBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Moves traffic by rewriting a weighted NGINX upstream include file and reloading NGINX.
/// See the module documentation for the file's shape and the steps of a change.
#[derive(Debug)]
pub struct NginxRouter {
    file: PathBuf,
    upstream: String,
    canary: String,
    stable: String,
    reload: Vec<String>,
    timeout: Duration,
    probe: Option<std::net::SocketAddr>,
    client: reqwest::Client,
    /// The generation of this router's last confirmed change: a probe answer with another
    /// one is asked again (see [`NginxRouter::read_weight`]).
    confirmed: std::sync::Mutex<Option<String>>,
    /// Serialises this process's changes: two writers would restore each other's files.
    busy: Mutex<()>,
}

impl NginxRouter {
    /// A router for the upstream file of `spec`. Checks the names again (the policy
    /// validation already did): they are written into an NGINX configuration verbatim.
    pub fn new(spec: &NginxSpec) -> Result<Self> {
        let upstream_ok = !spec.upstream.is_empty()
            && spec
                .upstream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !upstream_ok {
            return Err(GatewayError::InvalidName {
                what: "NGINX upstream",
                value: spec.upstream.clone(),
                rule: "letters, digits, `-`, `_` and `.` only",
            });
        }
        for (what, address) in [
            ("NGINX canary server", &spec.canary),
            ("NGINX stable server", &spec.stable),
        ] {
            let ok = !address.is_empty()
                && !address.chars().any(|c| {
                    c.is_whitespace()
                        || c.is_control()
                        || matches!(c, ';' | '{' | '}' | '#' | '"' | '\'' | '\\' | '$')
                });
            if !ok {
                return Err(GatewayError::InvalidName {
                    what,
                    value: address.clone(),
                    rule: "an address like 10.0.0.5:8080 or unix:/path, without spaces, quotes or `;{}#$\\`",
                });
            }
        }
        if spec.canary == spec.stable {
            return Err(GatewayError::InvalidName {
                what: "NGINX canary server",
                value: spec.canary.clone(),
                rule: "the canary and stable servers must differ",
            });
        }
        // The probe is NGINX on an address the policy names: no proxy (an HTTP_PROXY in the
        // environment must not answer for it), no redirects.
        canary_metrics::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROBE_REQUEST_TIMEOUT.min(spec.timeout))
            .build()
            .map_err(|e| GatewayError::HttpClient {
                message: request_error(&e),
            })?;
        Ok(NginxRouter {
            file: spec.upstream_file.clone(),
            upstream: spec.upstream.clone(),
            canary: spec.canary.clone(),
            stable: spec.stable.clone(),
            reload: spec.reload.clone(),
            timeout: spec.timeout,
            probe: spec.weight_probe,
            client,
            confirmed: std::sync::Mutex::new(None),
            busy: Mutex::new(()),
        })
    }

    /// The upstream file's content for a canary weight (clamped to 100), with a new
    /// generation for the weight probe. Useful to write the first version of the file before
    /// NGINX is started.
    pub fn render(&self, weight: u8) -> String {
        self.render_generation(weight, &new_generation())
    }

    fn render_generation(&self, weight: u8, generation: &str) -> String {
        let canary = weight.min(100);
        let stable = 100 - canary;
        let server = |address: &str, weight: u8| {
            if weight == 0 {
                // NGINX weights start at 1: a server at 0 % is `down` (see the module docs).
                format!("    server {address} down;\n")
            } else {
                format!("    server {address} weight={weight};\n")
            }
        };
        let mut text = format!(
            "# Written by canary: the canary has {canary} % of upstream {name}'s requests.\n\
             # canary rewrites this file at every weight change; edits by hand are lost.\n\
             upstream {name} {{\n{}{}}}\n",
            server(&self.stable, stable),
            server(&self.canary, canary),
            name = self.upstream,
        );
        if let Some(address) = self.probe {
            // The answer is written in the same file as the upstream block, so NGINX loads
            // both or neither: what the probe says is what the upstream runs.
            text.push_str(&format!(
                "# The weight probe: what NGINX serves, read back by canary after each reload.\n\
                 server {{\n\
                 \x20   listen {address};\n\
                 \x20   access_log off;\n\
                 \x20   location = {PROBE_PATH} {{\n\
                 \x20       default_type text/plain;\n\
                 \x20       return 200 \"canary-weights upstream={name} canary={canary} \
                 stable={stable} generation={generation}\\n\";\n\
                 \x20   }}\n\
                 }}\n",
                name = self.upstream,
            ));
        }
        text
    }

    /// The configuration test run before the reload: the reload command with its `-s reload`
    /// replaced by `-t -q`, when it has one.
    pub fn config_test_command(&self) -> Option<Vec<String>> {
        let at = self
            .reload
            .windows(2)
            .position(|pair| pair[0] == "-s" && pair[1] == "reload")?;
        let mut test = self.reload.clone();
        test.splice(at..at + 2, ["-t".to_owned(), "-q".to_owned()]);
        Some(test)
    }

    /// Gives the canary `weight` percent: rewrites the file, tests and reloads NGINX, and puts
    /// the previous content back if the test or the reload fails.
    pub async fn set_weight(&self, weight: u8) -> Result<()> {
        self.set_weight_steps(weight)
            .await
            .map_err(|e| self.error(e))
    }

    async fn set_weight_steps(&self, weight: u8) -> NginxResult<()> {
        let _busy = self.busy.lock().await;
        let previous = read_optional(self.file.clone()).await?;
        let generation = new_generation();
        write_atomically(
            self.file.clone(),
            self.render_generation(weight, &generation).into_bytes(),
        )
        .await?;

        let mut tested = Ok(());
        if let Some(test) = self.config_test_command() {
            tested = self.run(&test).await;
        }
        let outcome = match tested {
            // The configuration test failed: NGINX was not signalled.
            Err(failure) => Err(failure),
            Ok(()) => {
                let reloaded = self.run(&self.reload).await;
                match (self.probe, reloaded) {
                    (None, reloaded) => reloaded,
                    // Confirmed by what NGINX serves, within the timeout.
                    (Some(address), Ok(())) => {
                        self.await_generation(address, &generation, self.timeout)
                            .await
                    }
                    // A reload that failed or timed out may still have been applied: if
                    // NGINX serves the new file, the change happened and the file stays.
                    (Some(address), Err(failure)) => match self.probe_once(address).await {
                        Ok(answer) if answer.generation == generation => Ok(()),
                        _ => Err(failure),
                    },
                }
            }
        };
        let Err(failure) = outcome else {
            if let Ok(mut confirmed) = self.confirmed.lock() {
                *confirmed = Some(generation);
            }
            return Ok(());
        };
        // NGINX kept (or, after a timeout, probably kept) the configuration it had: make the
        // file say so again.
        let restored = match previous {
            Some(bytes) => write_atomically(self.file.clone(), bytes).await,
            None => remove(self.file.clone()).await,
        };
        Err(NginxError::ReloadFailed {
            restore_error: restored.err().map(|e| e.to_string()),
            source: Box::new(failure),
        })
    }

    /// Asks the probe until it answers `generation` [`PROBE_CONFIRMATIONS`] times in a row,
    /// or `limit` has passed. The last answer (or failure to answer) is the error.
    ///
    /// In a row, because during a reload the old workers keep accepting connections until
    /// the master has told them to stop, a moment after the new ones started: one answer
    /// of the new generation does not yet mean NGINX serves only it.
    async fn await_generation(
        &self,
        address: std::net::SocketAddr,
        generation: &str,
        limit: Duration,
    ) -> NginxResult<()> {
        let start = std::time::Instant::now();
        let mut in_a_row = 0;
        loop {
            let answer = self.probe_once(address).await;
            match &answer {
                Ok(a) if a.generation == generation => in_a_row += 1,
                _ => in_a_row = 0,
            }
            if in_a_row >= PROBE_CONFIRMATIONS {
                return Ok(());
            }
            if start.elapsed() >= limit {
                return Err(match answer {
                    Ok(a) => NginxError::NotApplied {
                        served: a.canary,
                        waited: limit,
                    },
                    Err(e) => e,
                });
            }
            tokio::time::sleep(PROBE_POLL).await;
        }
    }

    /// One request to the weight probe: the weights of the configuration NGINX serves.
    async fn probe_once(&self, address: std::net::SocketAddr) -> NginxResult<ProbeAnswer> {
        let problem = |problem: String| NginxError::Probe { address, problem };
        let mut response = self
            .client
            .get(format!("http://{address}{PROBE_PATH}"))
            .header(reqwest::header::CONNECTION, "close")
            .send()
            .await
            .map_err(|e| problem(format!("did not answer: {}", request_error(&e))))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(problem(format!("answered HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| problem(format!("broke off its answer: {}", request_error(&e))))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > PROBE_ANSWER_LIMIT {
                return Err(problem(format!(
                    "answered more than {PROBE_ANSWER_LIMIT} bytes, which is not canary's answer"
                )));
            }
        }
        let answer = ProbeAnswer::parse(&String::from_utf8_lossy(&body)).map_err(problem)?;
        if answer.upstream != self.upstream {
            return Err(problem(format!(
                "answered for upstream {:?}, not {}: another policy's probe on this address?",
                clip(&answer.upstream),
                self.upstream
            )));
        }
        Ok(answer)
    }

    /// The canary's share NGINX serves (the weight probe's answer) or, without a probe,
    /// according to the upstream file, in percent.
    pub async fn read_weight(&self) -> Result<u8> {
        let _busy = self.busy.lock().await;
        if let Some(address) = self.probe {
            let confirmed = self.confirmed.lock().ok().and_then(|c| c.clone());
            let mut answer = self.probe_once(address).await;
            // An answer of another generation than this router's last change is asked again
            // a few times: it may come from an old worker finishing its shutdown. What it
            // still says after that is what NGINX serves.
            for _ in 1..PROBE_CONFIRMATIONS {
                match (&answer, &confirmed) {
                    (Ok(a), Some(c)) if a.generation != *c => {}
                    _ => break,
                }
                tokio::time::sleep(PROBE_POLL).await;
                answer = self.probe_once(address).await;
            }
            let answer = answer.map_err(|e| self.error(e))?;
            // The answer is text canary wrote next to the upstream block: it says which file
            // NGINX loaded, not what that file's upstream held. Only the file tells that.
            let bytes = self.read_file().await?;
            self.check_written(&String::from_utf8_lossy(&bytes), &answer)
                .map_err(|e| self.error(e))?;
            return Ok(answer.canary);
        }
        let bytes = self.read_file().await?;
        self.weight_from_file(&bytes)
    }

    /// The upstream file's bytes; a missing file is an error.
    async fn read_file(&self) -> Result<Vec<u8>> {
        let path = self.file.clone();
        match read_optional(path.clone())
            .await
            .map_err(|e| self.error(e))?
        {
            Some(bytes) => Ok(bytes),
            None => Err(self.error(NginxError::File {
                action: "read",
                path,
                source: io::Error::new(io::ErrorKind::NotFound, "the file does not exist"),
            })),
        }
    }

    /// Checks that the upstream file `text` is what canary writes for the probe's `answer`:
    /// the probe answer written in it carries the answer's generation and weights (NGINX
    /// loaded this file, not an earlier or later one), and its upstream block holds exactly
    /// the two servers with the answer's weights, nothing else (no other server, parameter
    /// or directive: a `down`, `backup`, third server or `hash` edited in by hand and
    /// reloaded would leave the probe's answer as it was). Public through
    /// [`NginxRouter::check_file_against`] for the fuzz targets.
    fn check_written(&self, text: &str, answer: &ProbeAnswer) -> NginxResult<()> {
        let written = written_probe_answer(text).map_err(NginxError::NotWritten)?;
        if written.generation != answer.generation
            || written.canary != answer.canary
            || written.upstream != answer.upstream
        {
            return Err(NginxError::NotWritten(format!(
                "NGINX answers generation {} (canary {} %), the file says generation {} \
                 (canary {} %): the file was changed and not reloaded, or NGINX serves \
                 another file",
                clip(&answer.generation),
                answer.canary,
                clip(&written.generation),
                written.canary
            )));
        }
        let mut found =
            upstream_statements(text, &self.upstream).map_err(NginxError::NotWritten)?;
        let server = |address: &str, weight: u8| {
            let parameter = if weight == 0 {
                "down".to_owned()
            } else {
                format!("weight={weight}")
            };
            vec!["server".to_owned(), address.to_owned(), parameter]
        };
        let mut expected = vec![
            server(&self.stable, 100 - answer.canary),
            server(&self.canary, answer.canary),
        ];
        let said = |statements: &[Vec<String>]| {
            statements
                .iter()
                .map(|s| format!("{};", s.join(" ")))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (found_text, expected_text) = (said(&found), said(&expected));
        found.sort();
        expected.sort();
        if found != expected {
            return Err(NginxError::NotWritten(format!(
                "upstream {} holds `{}`, canary wrote `{}` for canary {} % (edited by hand \
                 and reloaded?)",
                self.upstream,
                clip_long(&found_text),
                expected_text,
                answer.canary
            )));
        }
        Ok(())
    }

    /// Whether the upstream file's bytes are what canary writes for the weight probe's
    /// `answer` (see [`NginxRouter::read_weight`]). Public so that the fuzz targets feed it
    /// hostile files.
    pub fn check_file_against(&self, bytes: &[u8], answer: &ProbeAnswer) -> Result<()> {
        self.check_written(&String::from_utf8_lossy(bytes), answer)
            .map_err(|e| self.error(e))
    }

    /// The canary's share according to the upstream file's bytes: what
    /// [`NginxRouter::read_weight`] does with what it read. Public so that the fuzz targets
    /// (`tests/fuzz`) feed it hostile files.
    pub fn weight_from_file(&self, bytes: &[u8]) -> Result<u8> {
        self.weight_from_text(&String::from_utf8_lossy(bytes))
            .map_err(|e| self.error(e))
    }

    fn weight_from_text(&self, text: &str) -> NginxResult<u8> {
        let servers = parse_upstream(text, &self.upstream).map_err(NginxError::Upstream)?;
        let weight_of = |address: &str| {
            servers
                .iter()
                .find(|(a, _)| a == address)
                .map(|(_, w)| *w)
                .ok_or_else(|| {
                    NginxError::Upstream(format!(
                        "upstream {} has no server {address}; it lists {}",
                        self.upstream,
                        servers
                            .iter()
                            .map(|(a, _)| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        };
        let canary = weight_of(&self.canary)?;
        let stable = weight_of(&self.stable)?;
        canary_core::ports::canary_share(canary, stable).ok_or_else(|| NginxError::NoTraffic {
            upstream: self.upstream.clone(),
            canary: self.canary.clone(),
            stable: self.stable.clone(),
        })
    }

    async fn run(&self, argv: &[String]) -> NginxResult<()> {
        process::run(argv, &[], self.timeout)
            .await
            .map(drop)
            .map_err(|failure| NginxError::Command {
                program: argv.first().cloned().unwrap_or_default(),
                failure,
            })
    }

    /// `error`, about this router's upstream file.
    fn error(&self, error: NginxError) -> GatewayError {
        GatewayError::Nginx {
            path: self.file.clone(),
            error,
        }
    }
}

/// The servers of `upstream NAME { … }` with their weights (`down` is 0, no `weight=` is 1).
fn parse_upstream(text: &str, name: &str) -> std::result::Result<Vec<(String, u32)>, String> {
    let mut servers: Vec<(String, u32)> = Vec::new();
    for statement in upstream_statements(text, name)? {
        if statement.first().map(String::as_str) == Some("server") {
            let words: Vec<&str> = statement.iter().map(String::as_str).collect();
            let (address, weight) = parse_server(&words)?;
            if servers.iter().any(|(a, _)| *a == address) {
                return Err(format!("server {address} is listed twice"));
            }
            servers.push((address, weight));
        }
    }
    Ok(servers)
}

/// Every statement of the first `upstream NAME { … }` block, as its words without the `;`.
/// A second block of that name is an error: which one NGINX would use is not canary's guess.
fn upstream_statements(text: &str, name: &str) -> std::result::Result<Vec<Vec<String>>, String> {
    let tokens = tokenize(text);
    let mut starts = tokens
        .windows(3)
        .enumerate()
        .filter(|(_, t)| t[0] == "upstream" && t[1] == name && t[2] == "{")
        .map(|(at, _)| at);
    let start = starts
        .next()
        .ok_or_else(|| format!("no `upstream {name} {{ … }}` block"))?;
    if starts.next().is_some() {
        return Err(format!("upstream {name} is defined twice"));
    }
    let mut statements = Vec::new();
    let mut statement: Vec<String> = Vec::new();
    for token in &tokens[start + 3..] {
        match token.as_str() {
            "}" if statement.is_empty() => return Ok(statements),
            "{" | "}" => return Err(format!("unexpected `{token}` in upstream {name}")),
            ";" => statements.push(std::mem::take(&mut statement)),
            word => statement.push(word.to_owned()),
        }
    }
    Err(format!("upstream {name} is not closed with `}}`"))
}

/// The weight probe's answer as written in the upstream file (the `return 200 "…"` text):
/// exactly one, parsed as the probe's answers are.
fn written_probe_answer(text: &str) -> std::result::Result<ProbeAnswer, String> {
    const START: &str = "\"canary-weights ";
    let mut found = text.match_indices(START).map(|(at, _)| at);
    let at = found
        .next()
        .ok_or_else(|| "it holds no weight probe answer".to_owned())?;
    if found.next().is_some() {
        return Err("it holds more than one weight probe answer".to_owned());
    }
    let rest = &text[at + 1..];
    let answer = &rest[..rest.find('"').unwrap_or(rest.len())];
    // The answer ends with the two characters `\n` (NGINX's escape for a newline).
    ProbeAnswer::parse(&answer.replace("\\n", " "))
        .map_err(|e| format!("its weight probe answer is not canary's: it {e}"))
}

/// At most this much of a file's text goes into a message.
fn clip_long(text: &str) -> String {
    let mut clipped: String = text.chars().take(300).collect();
    if clipped.len() < text.len() {
        clipped.push('…');
    }
    clipped
}

fn parse_server(statement: &[&str]) -> std::result::Result<(String, u32), String> {
    let address = statement
        .get(1)
        .ok_or_else(|| "a `server` without an address".to_owned())?;
    let mut weight = 1;
    let mut down = false;
    for param in &statement[2..] {
        if let Some(value) = param.strip_prefix("weight=") {
            weight = value
                .parse()
                .map_err(|_| format!("server {address} has weight {value:?}, not a number"))?;
        } else if *param == "down" {
            down = true;
        } else if *param == "backup" {
            return Err(format!(
                "server {address} is a backup server, which canary never writes"
            ));
        }
    }
    Ok(((*address).to_owned(), if down { 0 } else { weight }))
}

/// Words of an NGINX configuration, with `{`, `}` and `;` as words of their own and `#`
/// comments left out. (The one quoted string canary writes, the weight probe's answer, holds
/// none of `{};#` and comes after the upstream block.)
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut word = String::new();
        for c in line.chars() {
            if c.is_whitespace() || matches!(c, '{' | '}' | ';') {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
                if !c.is_whitespace() {
                    tokens.push(c.to_string());
                }
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            tokens.push(word);
        }
    }
    tokens
}

/// A request error's message with its sources, each said once (reqwest's messages often
/// repeat their source's).
fn request_error(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

async fn read_optional(path: PathBuf) -> NginxResult<Option<Vec<u8>>> {
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NginxError::File {
            action: "read",
            path,
            source,
        }),
    }
}

async fn remove(path: PathBuf) -> NginxResult<()> {
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NginxError::File {
            action: "remove",
            path,
            source,
        }),
    }
}

/// Replaces `path` with `bytes` so that a reader (NGINX, or a crash's aftermath) sees the old
/// content or the new, never a mix: a temporary file in the same directory (a rename is only
/// atomic within a file system), fsync, rename over, fsync the directory so the rename
/// itself survives a power loss. The file keeps the old file's permissions.
async fn write_atomically(path: PathBuf, bytes: Vec<u8>) -> NginxResult<()> {
    let target = path.clone();
    tokio::task::spawn_blocking(move || write_atomically_blocking(&target, &bytes))
        .await
        .map_err(|e| NginxError::File {
            action: "write",
            path,
            source: io::Error::other(e.to_string()),
        })?
}

fn write_atomically_blocking(path: &Path, bytes: &[u8]) -> NginxResult<()> {
    let file_error = |action, path: &Path| {
        let path = path.to_owned();
        move |source| NginxError::File {
            action,
            path,
            source,
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| NginxError::File {
            action: "write",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        })?
        .to_string_lossy()
        .into_owned();
    let temp = dir.join(format!(".{name}.canary-{}.tmp", std::process::id()));
    let write = || -> NginxResult<()> {
        let mut file = std::fs::File::create(&temp).map_err(file_error("create", &temp))?;
        file.write_all(bytes).map_err(file_error("write", &temp))?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())
                .map_err(file_error("set the permissions of", &temp))?;
        }
        file.sync_all().map_err(file_error("fsync", &temp))?;
        std::fs::rename(&temp, path).map_err(file_error("rename into place", path))?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(file_error("fsync the directory of", path))
}

impl fmt::Display for NginxRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NGINX upstream {} in {} (canary {}, stable {}), reloaded with `{}`",
            self.upstream,
            self.file.display(),
            self.canary,
            self.stable,
            self.reload.first().map(String::as_str).unwrap_or_default()
        )?;
        match self.probe {
            Some(address) => write!(f, ", confirmed by its weight probe at {address}"),
            None => write!(f, ", read back from the file"),
        }
    }
}

#[async_trait]
impl TrafficRouter for NginxRouter {
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

    fn router(reload: &[&str]) -> NginxRouter {
        NginxRouter::new(&NginxSpec {
            upstream_file: PathBuf::from("/tmp/up.conf"),
            upstream: "app".to_owned(),
            canary: "127.0.0.1:2".to_owned(),
            stable: "127.0.0.1:1".to_owned(),
            reload: reload.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_secs(5),
            weight_probe: None,
        })
        .unwrap()
    }

    #[test]
    fn rendered_files_parse_back_to_their_weight() {
        let r = router(&["nginx", "-s", "reload"]);
        for w in [0u8, 1, 10, 25, 50, 99, 100] {
            let text = r.render(w);
            let servers = parse_upstream(&text, "app").unwrap();
            let get = |a: &str| servers.iter().find(|(x, _)| x == a).unwrap().1;
            let share = canary_core::ports::canary_share(get("127.0.0.1:2"), get("127.0.0.1:1"));
            assert_eq!(share, Some(w), "{text}");
        }
        assert!(r.render(0).contains("server 127.0.0.1:2 down;"));
        assert!(r.render(100).contains("server 127.0.0.1:1 down;"));
        assert!(r.render(10).contains("server 127.0.0.1:2 weight=10;"));
    }

    #[test]
    fn hand_written_blocks_parse() {
        let text = "upstream other { server a:1; }\n\
                    upstream app {\n  zone app 64k; # shared state\n  server x:1 max_fails=3 weight=3;\n  server y:2;\n}\n";
        assert_eq!(
            parse_upstream(text, "app").unwrap(),
            vec![("x:1".to_owned(), 3), ("y:2".to_owned(), 1)]
        );
        assert!(parse_upstream(text, "missing").is_err());
        assert!(parse_upstream("upstream app { server a weight=x; }", "app").is_err());
        assert!(parse_upstream("upstream app { server a; server a; }", "app").is_err());
        assert!(parse_upstream("upstream app { server a;", "app").is_err());
    }

    #[test]
    fn files_canary_writes_match_their_probe_answer_and_edits_do_not() {
        let mut r = router(&["nginx", "-s", "reload"]);
        r.probe = Some("127.0.0.1:9181".parse().unwrap());
        let answer = |canary: u8, generation: &str| ProbeAnswer {
            upstream: "app".to_owned(),
            canary,
            generation: generation.to_owned(),
        };
        for w in [0u8, 1, 10, 50, 99, 100] {
            let text = r.render_generation(w, "7-42");
            r.check_written(&text, &answer(w, "7-42")).unwrap();
            assert!(r.check_written(&text, &answer(w, "7-43")).is_err());
            if w < 100 {
                assert!(r.check_written(&text, &answer(w + 1, "7-42")).is_err());
            }
        }
        // A first file written by hand, in canary's terms, is canary's as well.
        let by_hand = "upstream app {\n  server 127.0.0.1:1 weight=100;\n  server 127.0.0.1:2 down;\n}\n\
                       server { listen 127.0.0.1:9181; location = /canary-weights { return 200 \
                       \"canary-weights upstream=app canary=0 stable=100 generation=start\"; } }\n";
        r.check_written(by_hand, &answer(0, "start")).unwrap();
        let text = r.render_generation(10, "g");
        for edited in [
            text.replace("127.0.0.1:2 weight=10;", "127.0.0.1:2 down;"),
            text.replace(
                "127.0.0.1:2 weight=10;",
                "127.0.0.1:2 weight=10 max_fails=0;",
            ),
            text.replace("127.0.0.1:1 weight=90;", "127.0.0.1:1 weight=90 backup;"),
            text.replace(
                "127.0.0.1:2 weight=10;",
                "127.0.0.1:2 weight=10; server x:1;",
            ),
            text.replace(
                "127.0.0.1:2 weight=10;",
                "127.0.0.1:2 weight=10; least_conn;",
            ),
            format!("{text}upstream app {{ server x:1; }}\n"),
            format!("{text}# \"canary-weights upstream=app canary=10 stable=90 generation=g\"\n"),
            text.replace("generation=g", "generation=h"),
        ] {
            let err = r.check_written(&edited, &answer(10, "g")).unwrap_err();
            assert!(matches!(err, NginxError::NotWritten(_)), "{edited}");
        }
    }

    #[test]
    fn config_test_replaces_signal_reload() {
        let r = router(&["nginx", "-p", "/x", "-s", "reload"]);
        assert_eq!(
            r.config_test_command().unwrap(),
            vec!["nginx", "-p", "/x", "-t", "-q"]
        );
        assert!(
            router(&["systemctl", "reload", "nginx"])
                .config_test_command()
                .is_none()
        );
    }

    #[test]
    fn addresses_that_could_break_the_file_are_refused() {
        let spec = |canary: &str| NginxSpec {
            upstream_file: PathBuf::from("/tmp/up.conf"),
            upstream: "app".to_owned(),
            canary: canary.to_owned(),
            stable: "127.0.0.1:1".to_owned(),
            reload: vec!["true".to_owned()],
            timeout: Duration::from_secs(1),
            weight_probe: None,
        };
        for bad in ["", "a b", "a;b", "a}b", "a\nb", "a#b", "127.0.0.1:1"] {
            assert!(NginxRouter::new(&spec(bad)).is_err(), "{bad:?}");
        }
        assert!(NginxRouter::new(&spec("unix:/run/app.sock")).is_ok());
    }
}
