//! The one loopback HTTP server of the tests, for those that need something to talk to: a
//! webhook receiver, a Prometheus answering 503 then 200, an HTML page where Prometheus
//! should be. It answers every request with `response(request)` and keeps the raw requests
//! it got. It is a plain thread, so async and blocking tests use it alike.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running fake server (its thread lives as long as the test process).
pub struct FakeServer {
    /// `127.0.0.1:PORT`.
    pub address: String,
    requests: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl FakeServer {
    /// Starts answering each request with `response(request)` (a whole HTTP response, see
    /// [`http`]), one connection at a time.
    pub fn start(response: impl Fn(&str) -> String + Send + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("its address").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let request = read_request(&mut stream);
                // Kept before answering: a client that has its answer finds its request here.
                kept.lock()
                    .expect("not poisoned")
                    .push((Instant::now(), request.clone()));
                let _ = stream.write_all(response(&request).as_bytes());
            }
        });
        FakeServer { address, requests }
    }

    /// Answers the first request with `answers[0]`, the second with `answers[1]`, and every
    /// one after the last with the last.
    pub fn answering(answers: Vec<String>) -> FakeServer {
        assert!(!answers.is_empty(), "a fake server needs an answer");
        let next = AtomicUsize::new(0);
        FakeServer::start(move |_| {
            let i = next.fetch_add(1, Ordering::SeqCst);
            answers[i.min(answers.len() - 1)].clone()
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The raw requests so far (head and body).
    pub fn requests(&self) -> Vec<String> {
        let requests = self.requests.lock().expect("not poisoned");
        requests
            .iter()
            .map(|(_, request)| request.clone())
            .collect()
    }

    /// When each request so far came in.
    pub fn arrivals(&self) -> Vec<Instant> {
        let requests = self.requests.lock().expect("not poisoned");
        requests.iter().map(|(at, _)| *at).collect()
    }
}

/// Reads one request's head and its body (by `content-length`), from a plain or a TLS
/// stream (whose read timeout is set already).
pub(crate) fn read_request(stream: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head) = text.find("\r\n\r\n") {
            let length = text[..head]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= head + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A whole HTTP response.
pub fn http(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The request's path.
pub fn path_of(request: &str) -> &str {
    request.split_whitespace().nth(1).unwrap_or_default()
}

/// A header's value (name case-insensitive).
pub fn header_of<'r>(request: &'r str, name: &str) -> Option<&'r str> {
    let head = request.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The request's body.
pub fn body_of(request: &str) -> &str {
    request.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}
