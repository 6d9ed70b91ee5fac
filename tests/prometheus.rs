//! A real Prometheus for the tests (the Debian package `prometheus`, 2.42): started on a free
//! loopback port with its own temporary directory, either over blocks backfilled from an
//! OpenMetrics file with `promtool tsdb create-blocks-from openmetrics`, or scraping targets.
//! Killed when dropped. Its log goes to a file in its directory, shown when it fails to start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::ChildGuard;
use crate::{free_port, require_program, wait_until};

/// A running Prometheus.
pub struct Prometheus {
    child: Option<ChildGuard>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Backfills `openmetrics` (an OpenMetrics text file ending with `# EOF`, timestamps in
    /// seconds) into a fresh data directory and starts Prometheus on it, scraping nothing.
    ///
    /// Mind the data's age: blocks must be within the retention (15 days by default), and
    /// more than about an hour old so they do not overlap the head block's time.
    pub fn backfilled(openmetrics: &str) -> Prometheus {
        let promtool = require_program("promtool", "prometheus");
        let dir = tempfile::tempdir().expect("a temporary directory for Prometheus");
        let input = dir.path().join("backfill.om");
        std::fs::write(&input, openmetrics).expect("write the OpenMetrics file");
        let data = dir.path().join("data");
        let output = Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .expect("run promtool");
        assert!(
            output.status.success(),
            "promtool tsdb create-blocks-from openmetrics failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Self::start(dir, "scrape_configs: []\n")
    }

    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) as one job every
    /// `interval`.
    pub fn scraping(job: &str, targets: &[String], interval: Duration) -> Prometheus {
        let dir = tempfile::tempdir().expect("a temporary directory for Prometheus");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let seconds = interval.as_secs_f64();
        let config = format!(
            "global:\n  scrape_interval: {seconds}s\n  scrape_timeout: {seconds}s\n\
             scrape_configs:\n  - job_name: '{job}'\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        Self::start(dir, &config)
    }

    /// Starts Prometheus with no data and nothing to scrape.
    pub fn empty() -> Prometheus {
        let dir = tempfile::tempdir().expect("a temporary directory for Prometheus");
        Self::start(dir, "scrape_configs: []\n")
    }

    fn start(dir: tempfile::TempDir, config: &str) -> Prometheus {
        let binary = require_program("prometheus", "prometheus");
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write prometheus.yml");
        let log_file = dir.path().join("prometheus.log");
        let log = std::fs::File::create(&log_file).expect("create the Prometheus log");
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=15d")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log);
        let child = command.spawn().expect("start prometheus");
        let mut prometheus = Prometheus {
            child: Some(ChildGuard {
                child,
                name: "prometheus".to_owned(),
            }),
            port,
            dir,
        };
        let ready = wait_until(Duration::from_secs(60), || {
            let exited = prometheus
                .child
                .as_mut()
                .and_then(|guard| guard.child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "prometheus exited ({status}) while starting:\n{}",
                    prometheus.log()
                );
            }
            matches!(http_get(&prometheus.address(), "/-/ready"), Some((200, _)))
        });
        assert!(
            ready,
            "prometheus did not become ready within 60s:\n{}",
            prometheus.log()
        );
        prometheus
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    /// Its temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Kills it (SIGKILL), as a crash or an outage would.
    pub fn stop(&mut self) {
        self.child.take();
    }

    /// How many requests its `/api/v1/query` handler has served, from its own
    /// `prometheus_http_requests_total` (all status codes).
    pub fn query_requests(&self) -> f64 {
        let (status, body) =
            http_get(&self.address(), "/metrics").expect("scrape Prometheus itself");
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter(|line| {
                line.starts_with("prometheus_http_requests_total{")
                    && line.contains("handler=\"/api/v1/query\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The values of an instant query's vector (empty when it has none, or on any error):
    /// what a test polls for before it relies on what Prometheus holds.
    pub fn instant_values(&self, promql: &str) -> Vec<f64> {
        let query: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let Some((200, body)) = http_get(&self.address(), &format!("/api/v1/query?query={query}"))
        else {
            return Vec::new();
        };
        // `"value":[<time>,"<value>"]`, once per series.
        body.split("\"value\":[")
            .skip(1)
            .filter_map(|rest| rest.split('"').nth(1)?.parse().ok())
            .collect()
    }

    /// How many of its targets are up.
    pub fn targets_up(&self) -> usize {
        http_get(&self.address(), "/api/v1/targets")
            .map(|(_, body)| body.matches("\"health\":\"up\"").count())
            .unwrap_or(0)
    }
}

/// A plain HTTP/1.0 GET (no chunking, the server closes): status and body, or `None` when
/// nothing answers.
pub fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}
