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
        let dir = tempfile::tempdir().expect("a temporary directory for HAProxy");
        let port = free_port();
        let config = format!(
            "global\n  stats socket {socket} mode 600 level admin\n\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\n\
             frontend web\n  bind 127.0.0.1:{port}\n  default_backend app\n\n\
             backend app\n  balance roundrobin\n  server stable {stable} weight 100\n  server canary {canary} weight 0\n",
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

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends one runtime API command and returns the answer.
    pub fn command(&self, command: &str) -> Option<String> {
        let mut stream = UnixStream::connect(self.socket()).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// The current (canary, stable) server weights, read from the runtime API.
    pub fn weights(&self) -> Option<(u32, u32)> {
        let read = |server: &str| -> Option<u32> {
            self.command(&format!("get weight app/{server}"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some((read("canary")?, read("stable")?))
    }

    /// The canary's share in percent, as HAProxy routes it.
    pub fn canary_percent(&self) -> Option<u32> {
        let (canary, stable) = self.weights()?;
        let total = canary + stable;
        (total > 0).then(|| (canary * 100 + total / 2) / total)
    }
}
