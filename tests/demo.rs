//! The demo service and its load generator as separate processes, as the e2e tests and the
//! local stack run them (`canary-demo-service serve` / `load`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::binary;
use crate::process::ChildGuard;

/// A running `canary-demo-service serve`.
pub struct DemoService {
    /// The process.
    pub process: ChildGuard,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl DemoService {
    /// Starts one version on a free loopback port; `extra` are further `serve` flags
    /// (`--error-rate 0.05`, `--added-latency 200ms`).
    pub fn start(version: &str, extra: &[&str]) -> DemoService {
        let mut command = Command::new(binary("canary-demo-service"));
        command
            .args(["serve", "--version", version, "--listen", "127.0.0.1:0"])
            .args(extra);
        let mut process = ChildGuard::spawn(&format!("demo service {version}"), &mut command);
        let line = process.wait_for_line("listening on http://", Duration::from_secs(30));
        let address = line
            .trim()
            .trim_start_matches("listening on http://")
            .trim_end_matches('/')
            .to_owned();
        DemoService { process, address }
    }

    /// Changes the injected faults at run time (`POST /fault`).
    pub fn set_faults(&self, error_rate: f64, added_latency_ms: u64) {
        let body =
            format!("{{\"error_rate\": {error_rate}, \"added_latency_ms\": {added_latency_ms}}}");
        let request = format!(
            "POST /fault HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        );
        let mut stream = TcpStream::connect(&self.address).expect("connect to the demo service");
        stream
            .write_all(request.as_bytes())
            .expect("send POST /fault");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
            "POST /fault: {answer}"
        );
    }
}

/// A running `canary-demo-service load`, stopped when dropped.
pub struct Load {
    /// The process.
    pub process: ChildGuard,
}

impl Load {
    /// Sends `rps` requests per second to `url` until dropped.
    pub fn start(url: &str, rps: u32) -> Load {
        let mut command = Command::new(binary("canary-demo-service"));
        command.args(["load", "--target", url, "--rps", &rps.to_string()]);
        Load {
            process: ChildGuard::spawn("load generator", &mut command),
        }
    }
}
