//! Running a user's command with a timeout: the NGINX reload, the command router, hooks.
//!
//! Every command runs in a process group of its own, so that on timeout the whole group is
//! killed: a shell script's children would otherwise survive the shell, keep its pipes open,
//! and keep the rollout waiting on output that never ends. A command runs with the rollout's
//! environment (plus the variables the caller adds), its standard input closed, and its output
//! captured up to a limit. Being in its own group, a command does not get the terminal's
//! Ctrl-C: the rollout handles the signal and ends the command itself (by its timeout, or by
//! killing the group when the rollout stops waiting for it).

use std::fmt;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use canary_core::policy::duration_as_written;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;

/// How much of a command's stdout and stderr is kept; the rest is read and dropped, so the
/// command never blocks on a full pipe.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// How many lines of stderr an error message quotes.
const STDERR_LINES: usize = 5;

/// What a command that exited with status 0 printed.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Standard output, up to [`OUTPUT_LIMIT`] bytes.
    pub(crate) stdout: Vec<u8>,
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum CommandFailure {
    /// It could not be started (no such program, not executable, empty argv).
    Spawn(io::Error),
    /// It exited with a non-zero status or was killed by a signal.
    Exit {
        /// Its exit status.
        status: ExitStatus,
        /// The first lines of its stderr, ready to quote.
        stderr: String,
    },
    /// It ran past its timeout; its process group was killed.
    Timeout(Duration),
    /// Waiting for it failed (an OS error, not the command's).
    Wait(io::Error),
}

/// Runs `argv` with canary's environment plus the variables `env`, and kills it (with its
/// whole process group) when it runs longer than `timeout`.
pub(crate) async fn run(
    argv: &[String],
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<Finished, CommandFailure> {
    run_in(argv, Environment::Inherited(env), timeout).await
}

/// The environment a command runs with.
pub(crate) enum Environment<'a> {
    /// canary's own, plus these.
    Inherited(&'a [(&'a str, String)]),
    /// These only (a hook's minimal environment: nothing of canary's leaks in unasked).
    Only(&'a [(String, String)]),
}

/// [`run`] with the environment spelled out.
pub(crate) async fn run_in(
    argv: &[String],
    environment: Environment<'_>,
    timeout: Duration,
) -> Result<Finished, CommandFailure> {
    let Some((program, args)) = argv.split_first() else {
        return Err(CommandFailure::Spawn(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty command",
        )));
    };
    let deadline = Instant::now() + timeout;
    let mut command = Command::new(program);
    match environment {
        Environment::Inherited(env) => {
            command.envs(env.iter().map(|(k, v)| (k, v)));
        }
        Environment::Only(env) => {
            command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        }
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(CommandFailure::Spawn)?;
    let pid = child.id();
    // If this future is dropped mid-run (the rollout was interrupted), the guard stops the
    // whole group: SIGTERM at once, SIGKILL after [`STOP_GRACE`] (`kill_on_drop` would reach
    // the direct child only, and with SIGKILL at once; tokio reaps the dropped child).
    let mut guard = GroupGuard(pid);
    let stdout = tokio::spawn(read_capped(child.stdout.take()));
    let stderr = tokio::spawn(read_capped(child.stderr.take()));

    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => {
            // Exited by itself: anything it left running in the background is its business.
            guard.0 = None;
            status
        }
        Ok(Err(e)) => {
            kill_group(guard.0.take());
            stdout.abort();
            stderr.abort();
            return Err(CommandFailure::Wait(e));
        }
        Err(_) => {
            kill_group(guard.0.take());
            // Reap the child; the group is already gone, so this does not wait long.
            let _ = child.kill().await;
            stdout.abort();
            stderr.abort();
            return Err(CommandFailure::Timeout(timeout));
        }
    };
    // The command has exited. Its pipes normally reach end-of-file at once; a child it left
    // running in the background may hold them open, and then we stop reading at the deadline
    // (at least a second from now) rather than wait for that child.
    let grace = deadline.max(Instant::now() + Duration::from_secs(1));
    let stdout = collect(stdout, grace).await;
    let stderr = collect(stderr, grace).await;
    if status.success() {
        Ok(Finished { stdout })
    } else {
        Err(CommandFailure::Exit {
            status,
            stderr: first_lines(&stderr),
        })
    }
}

/// How long a command stopped mid-run (the rollout was interrupted while it ran) has to
/// end after SIGTERM before its process group gets SIGKILL. Short, so that the rollout's
/// `on-interrupt` action comes within 2 s of the signal: the rollout does not wait for it.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// Stops the process group it holds when dropped (SIGTERM, then SIGKILL after
/// [`STOP_GRACE`]), unless emptied first.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let Some(pid) = self.0.take().and_then(|p| i32::try_from(p).ok()) else {
            return;
        };
        let group = Pid::from_raw(pid);
        // A group that is already gone is fine: nothing to stop.
        if killpg(group, Signal::SIGTERM).is_err() {
            return;
        }
        // Dropping cannot wait: a thread delivers the SIGKILL after the grace, to whatever
        // of the group ignored SIGTERM or is still cleaning up; and since a process that
        // exits takes its threads with it, the group is also listed for
        // [`finish_stopping_commands`], which the process calls before it exits.
        let deadline = std::time::Instant::now() + STOP_GRACE;
        stopping().push((pid, deadline));
        let _ = std::thread::Builder::new()
            .name("stop-command".to_owned())
            .spawn(move || {
                std::thread::sleep(STOP_GRACE);
                kill_stopping(pid);
            });
    }
}

/// The process groups sent SIGTERM and not yet SIGKILL, with when they get it.
fn stopping() -> std::sync::MutexGuard<'static, Vec<(i32, std::time::Instant)>> {
    static STOPPING: std::sync::Mutex<Vec<(i32, std::time::Instant)>> =
        std::sync::Mutex::new(Vec::new());
    STOPPING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// SIGKILL to a stopping group, once.
fn kill_stopping(pid: i32) {
    let mut list = stopping();
    if let Some(at) = list.iter().position(|(p, _)| *p == pid) {
        list.remove(at);
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Waits out the grace of every command stopped mid-run and kills what is left of their
/// process groups: called before the process exits, so that a command that ignored
/// SIGTERM does not outlive the rollout that started it. Returns at once when none is.
pub fn finish_stopping_commands() {
    loop {
        let next = stopping().first().copied();
        let Some((pid, deadline)) = next else { return };
        std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
        kill_stopping(pid);
    }
}

/// Kills a command's process group; it is ours (`process_group(0)` made the child its
/// leader), so nothing else is hit. A group that is already gone is fine.
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

async fn read_capped(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return kept };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

async fn collect(task: tokio::task::JoinHandle<Vec<u8>>, until: Instant) -> Vec<u8> {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(until, task).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => Vec::new(),
        Err(_) => {
            abort.abort();
            Vec::new()
        }
    }
}

/// The first non-empty lines of a command's output, each cut to a readable length, joined
/// with ` | ` so that an error message stays on one line.
pub(crate) fn first_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(STDERR_LINES)
        .map(|l| {
            if l.chars().count() > 300 {
                let cut: String = l.chars().take(300).collect();
                format!("{cut}…")
            } else {
                l.to_owned()
            }
        })
        .collect();
    lines.join(" | ")
}

impl fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandFailure::Spawn(e) => write!(f, "could not be started: {e}"),
            CommandFailure::Exit { status, stderr } => {
                describe_status(*status, f)?;
                if stderr.is_empty() {
                    write!(f, " (no stderr)")
                } else {
                    write!(f, ": {stderr}")
                }
            }
            CommandFailure::Timeout(after) => write!(
                f,
                "did not finish within {} and was killed",
                duration_as_written(*after)
            ),
            CommandFailure::Wait(e) => write!(f, "could not be waited for: {e}"),
        }
    }
}

fn describe_status(status: ExitStatus, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => write!(f, "exited with code {code}"),
        (None, Some(signal)) => write!(f, "was killed by signal {signal}"),
        (None, None) => write!(f, "failed ({status})"),
    }
}

/// Replaces `{name}` placeholders in one argument of a command, in a single pass: a value
/// that itself contains `{…}` is not replaced again. Unknown placeholders are left as written
/// (policy validation rejects them).
pub(crate) fn substitute(arg: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let replaced = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, close))
        });
        match replaced {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_skips_blanks_and_caps_count() {
        let text = b"\n one \n\ntwo\nthree\nfour\nfive\nsix\n";
        assert_eq!(first_lines(text), "one | two | three | four | five");
    }

    #[test]
    fn placeholders_are_replaced_once() {
        let values = [
            ("weight", "10".to_owned()),
            ("service", "{weight}".to_owned()),
        ];
        assert_eq!(substitute("--weight={weight}", &values), "--weight=10");
        assert_eq!(substitute("{service}/{weight}", &values), "{weight}/10");
        assert_eq!(substitute("{unknown} {", &values), "{unknown} {");
        assert_eq!(substitute("{{weight}}", &values), "{10}");
        assert_eq!(substitute("plain", &values), "plain");
    }
}
