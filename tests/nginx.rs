//! A real NGINX (the Debian package `nginx-light`) with a weighted upstream include that
//! canary rewrites, in its own prefix directory. Stopped (SIGTERM, then its workers) when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::ChildGuard;
use crate::{free_port, require_program, wait_until};

/// A running NGINX.
pub struct Nginx {
    process: Option<ChildGuard>,
    dir: tempfile::TempDir,
    port: u16,
    probe: Option<u16>,
    /// The upstream file it was started with (all traffic on `stable`).
    initial_upstream: String,
}

impl Nginx {
    /// Starts NGINX proxying to the upstream `app` defined in `upstream.conf`, written first
    /// with all traffic on `stable`.
    pub fn start(stable: &str, canary: &str) -> Nginx {
        Self::start_inner(stable, canary, None)
    }

    /// [`Nginx::start`] with a weight probe (`gateway.nginx.weight-probe`) on a free loopback
    /// port, in the first upstream file as canary writes it.
    pub fn start_with_probe(stable: &str, canary: &str) -> Nginx {
        Self::start_inner(stable, canary, Some(free_port()))
    }

    fn start_inner(stable: &str, canary: &str, probe: Option<u16>) -> Nginx {
        let binary = require_program("nginx", "nginx-light");
        let dir = tempfile::tempdir().expect("a temporary directory for NGINX");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs directory");
        let port = free_port();
        let mut upstream = format!(
            "upstream app {{\n  server {stable} weight=100;\n  server {canary} down;\n}}\n"
        );
        if let Some(probe) = probe {
            upstream.push_str(&format!(
                "server {{\n  listen 127.0.0.1:{probe};\n  location = /canary-weights {{\n    \
                 return 200 \"canary-weights upstream=app canary=0 stable=100 generation=start\";\n  \
                 }}\n}}\n"
            ));
        }
        std::fs::write(dir.path().join("upstream.conf"), &upstream).expect("write upstream.conf");
        let config = format!(
            "worker_processes 1;\nerror_log {dir}/logs/error.log;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  include {dir}/upstream.conf;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://app; }}\n  }}\n}}\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("nginx.conf"), config).expect("write nginx.conf");
        let mut command = Command::new(binary);
        command
            .args(Self::base_args(dir.path()))
            .args(["-g", "daemon off;"]);
        let process = ChildGuard::spawn("nginx", &mut command);
        let nginx = Nginx {
            process: Some(process),
            dir,
            port,
            probe,
            initial_upstream: upstream,
        };
        assert!(
            wait_until(Duration::from_secs(20), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "NGINX did not listen on 127.0.0.1:{port}"
        );
        nginx
    }

    fn base_args(dir: &Path) -> Vec<String> {
        vec![
            "-p".to_owned(),
            dir.display().to_string(),
            "-c".to_owned(),
            dir.join("nginx.conf").display().to_string(),
        ]
    }

    /// The command that reloads this NGINX.
    pub fn reload_command(&self) -> Vec<String> {
        let mut command = vec!["/usr/sbin/nginx".to_owned()];
        command.extend(Self::base_args(self.dir.path()));
        command.extend(["-s".to_owned(), "reload".to_owned()]);
        command
    }

    /// The upstream include canary rewrites.
    pub fn upstream_file(&self) -> PathBuf {
        self.dir.path().join("upstream.conf")
    }

    /// The weight probe's address, `127.0.0.1:PORT`, when started with one.
    pub fn probe_address(&self) -> Option<String> {
        self.probe.map(|port| format!("127.0.0.1:{port}"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Puts the upstream file it started with back (all traffic on `stable`) and reloads,
    /// behind canary's back: a drift, as a person or a configuration deploy would make.
    pub fn revert_upstream(&self) {
        std::fs::write(self.upstream_file(), &self.initial_upstream).expect("write upstream.conf");
        let command = self.reload_command();
        let status = Command::new(&command[0])
            .args(&command[1..])
            .status()
            .expect("run nginx -s reload");
        assert!(status.success(), "nginx -s reload failed");
    }

    /// The canary's share as NGINX serves it, from the weight probe's answer
    /// (`canary-weights upstream=app canary=10 stable=90 …`); `None` without a probe or an
    /// answer.
    pub fn served_canary_percent(&self) -> Option<u32> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.probe?)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /canary-weights HTTP/1.0\r\nHost: probe\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let body = answer.split("\r\n\r\n").nth(1)?;
        body.split_whitespace()
            .find_map(|field| field.strip_prefix("canary="))?
            .parse()
            .ok()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        if let Some(process) = self.process.take() {
            process.signal("TERM");
            let pid = process.pid();
            wait_until(Duration::from_secs(10), || {
                !Path::new(&format!("/proc/{pid}/cmdline")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .map(|s| s.contains(") Z "))
                        .unwrap_or(true)
            });
            drop(process);
        }
    }
}
