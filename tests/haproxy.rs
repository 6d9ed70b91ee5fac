//! A real HAProxy (the Debian package `haproxy`) in front of a stable and a canary server:
//! backend `app` with servers `stable` (weight 100) and `canary` (weight 0), its runtime API
//! on a unix socket in a temporary directory. Killed when dropped.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::ChildGuard;
use crate::{free_port, require_program, wait_until};

/// A running HAProxy.
pub struct Haproxy {
    process: Option<ChildGuard>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Haproxy {
    /// Starts HAProxy balancing between `stable` and `canary` (`host:port` each).
    pub fn start(stable: &str, canary: &str) -> Haproxy {
        Haproxy::start_with_rules(stable, canary, "")
    }

    /// [`Haproxy::start`] with `rules` (configuration lines, `{dir}` replaced by its
    /// directory) in backend `app` before its servers. An empty ACL file `{dir}/canary.acl`
    /// exists ([`Haproxy::acl_file`]).
    pub fn start_with_rules(stable: &str, canary: &str, rules: &str) -> Haproxy {
        let dir = tempfile::tempdir().expect("a temporary directory for HAProxy");
        std::fs::write(dir.path().join("canary.acl"), "").expect("write the ACL file");
        let rules = rules.replace("{dir}", &dir.path().display().to_string());
        let port = free_port();
        let config = format!(
            "global\n  stats socket {socket} mode 600 level admin\n\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\n\
             frontend web\n  bind 127.0.0.1:{port}\n  default_backend app\n\n\
             backend app\n  balance roundrobin\n{rules}  server stable {stable} weight 100\n  server canary {canary} weight 0\n",
            socket = dir.path().join("admin.sock").display()
        );
        std::fs::write(dir.path().join("haproxy.cfg"), config).expect("write haproxy.cfg");
        let mut haproxy = Haproxy {
            process: None,
            dir,
            port,
        };
        haproxy.restart();
        haproxy
    }

    /// Starts (again) on the same configuration, socket and port: weights start from the
    /// configuration's, as after a real restart.
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.socket());
        let binary = require_program("haproxy", "haproxy");
        let mut command = Command::new(binary);
        command
            .arg("-f")
            .arg(self.dir.path().join("haproxy.cfg"))
            .arg("-db");
        self.process = Some(ChildGuard::spawn("haproxy", &mut command));
        assert!(
            wait_until(Duration::from_secs(20), || self.weights().is_some()),
            "HAProxy did not open its runtime API at {}",
            self.socket().display()
        );
    }

    /// Kills it (SIGKILL): the socket is gone.
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// The runtime API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// Its directory (for policies that live next to it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The ACL file `canary.acl` in its directory, as its configuration names it.
    pub fn acl_file(&self) -> PathBuf {
        self.dir.path().join("canary.acl")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where [`Haproxy::hide_socket`] puts the runtime API's socket.
    fn hidden_socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock.hidden")
    }

    /// Takes the runtime API's socket away from its path (renamed): HAProxy runs on and
    /// routes with the weights it has, while a client of [`Haproxy::socket`] is refused
    /// (`No such file or directory`), as when the socket is unreachable.
    /// [`Haproxy::show_socket`] puts it back; [`Haproxy::served_canary_percent`] reads the
    /// weights meanwhile.
    pub fn hide_socket(&self) {
        std::fs::rename(self.socket(), self.hidden_socket()).expect("hide the HAProxy socket");
    }

    /// Puts back the socket [`Haproxy::hide_socket`] took away.
    pub fn show_socket(&self) {
        std::fs::rename(self.hidden_socket(), self.socket()).expect("put the socket back");
    }

    /// The canary's share as HAProxy routes it, read through the socket wherever it is
    /// (hidden or not): what HAProxy serves, whatever canary can reach.
    pub fn served_canary_percent(&self) -> Option<u32> {
        let socket = if self.hidden_socket().exists() {
            self.hidden_socket()
        } else {
            self.socket()
        };
        let (canary, stable) = weights_via(&socket)?;
        percent(canary, stable)
    }

    /// Sends one runtime API command and returns the answer.
    pub fn command(&self, command: &str) -> Option<String> {
        command_via(&self.socket(), command)
    }

    /// The current (canary, stable) server weights, read from the runtime API.
    pub fn weights(&self) -> Option<(u32, u32)> {
        weights_via(&self.socket())
    }

    /// The canary's share in percent, as HAProxy routes it.
    pub fn canary_percent(&self) -> Option<u32> {
        let (canary, stable) = self.weights()?;
        percent(canary, stable)
    }
}

/// The canary's share of two server weights, rounded to the nearest percent.
fn percent(canary: u32, stable: u32) -> Option<u32> {
    let total = canary + stable;
    (total > 0).then(|| (canary * 100 + total / 2) / total)
}

/// The (canary, stable) server weights, read through the runtime API at `socket`.
fn weights_via(socket: &Path) -> Option<(u32, u32)> {
    let read = |server: &str| -> Option<u32> {
        command_via(socket, &format!("get weight app/{server}"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((read("canary")?, read("stable")?))
}

/// Sends one runtime API command to the socket at `socket` and returns the answer.
fn command_via(socket: &Path, command: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(format!("{command}\n").as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}
