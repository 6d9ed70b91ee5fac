//! How long it takes from `set_canary_weight(0)` to HAProxy reporting the canary at weight 0
//! (read back through the runtime API), the gateway's part of a rollback.
//!
//! Starts a real HAProxy (`/usr/sbin/haproxy`) with two local backends, then per iteration
//! puts the canary at 10 % (not timed), and times `set_canary_weight(0)` followed by
//! `canary_weight()` reads until one says 0 (HAProxy applies weights at once, so the first
//! read does). Runs over the unix socket and over TCP, idle and with a client sending
//! requests through HAProxy meanwhile. A measurement, not a test: it asserts nothing about
//! time.
//!
//! ```text
//! cargo bench -p canary-gateways --bench haproxy_weight_zero [-- ITERATIONS]
//! ```

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/gateways/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use canary_core::policy::{HaproxySpec, SocketAddress};
use canary_core::ports::{TrafficRouter, set_and_verify};
use canary_gateways::HaproxyRouter;

use support::{Backend, Haproxy};

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(iterations));
}

async fn run(iterations: usize) {
    let (stable, canary) = (
        Backend::start("stable").await,
        Backend::start("canary").await,
    );
    let haproxy = Haproxy::start(&stable, &canary, true).await;
    let tcp = haproxy.tcp_socket.expect("tcp socket").to_string();
    println!(
        "{}; {iterations} iterations each; times from set_canary_weight(0) to a read-back of 0",
        haproxy_version()
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10}",
        "socket", "median", "p95", "min", "max"
    );
    for (label, socket, load) in [
        ("unix, idle", haproxy.unix_address(), false),
        ("tcp, idle", SocketAddress::Tcp(tcp.clone()), false),
        ("unix, under load", haproxy.unix_address(), true),
    ] {
        let router = HaproxyRouter::new(&HaproxySpec {
            socket,
            backend: "app".to_owned(),
            canary_server: "canary".to_owned(),
            stable_server: "stable".to_owned(),
            route_acl: None,
        })
        .expect("router");
        let stop = Arc::new(AtomicBool::new(false));
        let client = load.then(|| {
            let stop = stop.clone();
            let frontend = haproxy.frontend;
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    support::get_many(frontend, 10).await;
                }
            })
        });
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..iterations + 10 {
            set_and_verify(&router, 10).await.expect("set 10");
            let start = Instant::now();
            router.set_canary_weight(0).await.expect("set 0");
            let mut reads = 0;
            while router.canary_weight().await.expect("read back") != 0 {
                reads += 1;
                assert!(reads < 1000, "HAProxy never reported 0");
            }
            let elapsed = start.elapsed();
            // The first ten warm up connections and caches.
            if i >= 10 {
                samples.push(elapsed);
            }
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(client) = client {
            let _ = client.await;
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!(
            "{:<22} {:>10} {:>10} {:>10} {:>10}",
            label,
            micros(at(0.5)),
            micros(at(0.95)),
            micros(samples[0]),
            micros(samples[samples.len() - 1]),
        );
    }
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn haproxy_version() -> String {
    std::process::Command::new("/usr/sbin/haproxy")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}
