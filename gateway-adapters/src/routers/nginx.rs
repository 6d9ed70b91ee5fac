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
//! **Reading back** parses the file: it says what NGINX was last successfully reloaded with.

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

    /// The configuration test or the reload could not be started, exited non-zero, or ran
    /// past its timeout and was killed. The message quotes the first lines of its stderr.
    #[error("`{program}` {failure}")]
    Command {
        /// The program (argv\[0\]); its arguments are left out of messages.
        program: String,
        /// What happened.
        failure: CommandFailure,
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
            NginxError::Upstream(_) | NginxError::NoTraffic { .. } => {
                return canary_core::Error::Mismatch {
                    component: "nginx",
                    message: format!("{}: {message}", path.display()),
                };
            }
            NginxError::File { source, .. } => Some(Box::new(source)),
            NginxError::ReloadFailed { source, .. } => Some(source),
            NginxError::Command { .. } => None,
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
        Ok(NginxRouter {
            file: spec.upstream_file.clone(),
            upstream: spec.upstream.clone(),
            canary: spec.canary.clone(),
            stable: spec.stable.clone(),
            reload: spec.reload.clone(),
            timeout: spec.timeout,
            busy: Mutex::new(()),
        })
    }

    /// The upstream file's content for a canary weight (clamped to 100). Useful to write the
    /// first version of the file before NGINX is started.
    pub fn render(&self, weight: u8) -> String {
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
        format!(
            "# Written by canary: the canary has {canary} % of upstream {name}'s requests.\n\
             # canary rewrites this file at every weight change; edits by hand are lost.\n\
             upstream {name} {{\n{}{}}}\n",
            server(&self.stable, stable),
            server(&self.canary, canary),
            name = self.upstream,
        )
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
        write_atomically(self.file.clone(), self.render(weight).into_bytes()).await?;

        let mut outcome = Ok(());
        if let Some(test) = self.config_test_command() {
            outcome = self.run(&test).await;
        }
        if outcome.is_ok() {
            outcome = self.run(&self.reload).await;
        }
        let Err(failure) = outcome else {
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

    /// The canary's share according to the upstream file, in percent.
    pub async fn read_weight(&self) -> Result<u8> {
        let _busy = self.busy.lock().await;
        let path = self.file.clone();
        let Some(bytes) = read_optional(path.clone())
            .await
            .map_err(|e| self.error(e))?
        else {
            return Err(self.error(NginxError::File {
                action: "read",
                path,
                source: io::Error::new(io::ErrorKind::NotFound, "the file does not exist"),
            }));
        };
        self.weight_from_file(&bytes)
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
    let tokens = tokenize(text);
    let start = tokens
        .windows(3)
        .position(|t| t[0] == "upstream" && t[1] == name && t[2] == "{")
        .ok_or_else(|| format!("no `upstream {name} {{ … }}` block"))?;
    let mut servers: Vec<(String, u32)> = Vec::new();
    let mut statement: Vec<&str> = Vec::new();
    for token in &tokens[start + 3..] {
        match token.as_str() {
            "}" if statement.is_empty() => return Ok(servers),
            "{" | "}" => return Err(format!("unexpected `{token}` in upstream {name}")),
            ";" => {
                if statement.first() == Some(&"server") {
                    let (address, weight) = parse_server(&statement)?;
                    if servers.iter().any(|(a, _)| *a == address) {
                        return Err(format!("server {address} is listed twice"));
                    }
                    servers.push((address, weight));
                }
                statement.clear();
            }
            word => statement.push(word),
        }
    }
    Err(format!("upstream {name} is not closed with `}}`"))
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
/// comments left out. (Quoted strings do not occur in what canary writes.)
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
        )
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
        };
        for bad in ["", "a b", "a;b", "a}b", "a\nb", "a#b", "127.0.0.1:1"] {
            assert!(NginxRouter::new(&spec(bad)).is_err(), "{bad:?}");
        }
        assert!(NginxRouter::new(&spec("unix:/run/app.sock")).is_ok());
    }
}
