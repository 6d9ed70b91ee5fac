//! The controller's scale harness (issue 16): N `CanaryRollout`s, each with an HTTPRoute of
//! its own, in the in-process API fake (no API server can run here), run by ONE `canary
//! controller run` process, judged by a real Prometheus scraping the demo services under
//! load (the `rollout_e2e.rs` world: every rollout's checks query the same two services).
//! A real Prometheus rather than a fake answering the queries: its query engine's cost and
//! answers are what a cluster's would be, and the harness counts its queries from its own
//! `prometheus_http_requests_total`.
//!
//! Once every rollout has set its first weight, it measures over a window of steady ticking:
//! the controller's peak RSS (`VmHWM`) and CPU seconds (`/proc/PID/stat`), API requests per
//! rollout per minute (the fake's log), Prometheus queries per tick, the tick lag p50/p99
//! (the controller's `canary_controller_tick_lag_seconds`, due → the read's start, and
//! `canary_controller_tick_decision_lag_seconds`, due → the read's answer and so the
//! decision; read as bucket upper bounds) and
//! the stored bytes per rollout (its state ConfigMap's data plus its status).
//!
//! In the suite it runs a small N (20 rollouts, 1 s ticks, a 10 s window) and checks that
//! every rollout ticked; the benchmark runs are the same test with the environment:
//!
//! ```text
//! CANARY_SCALE_ROLLOUTS=1000 CANARY_SCALE_INTERVAL=10s CANARY_SCALE_SECONDS=60 \
//! CANARY_SCALE_JSON=/tmp/scale-1000.json \
//!   cargo nextest run -p canary-kubernetes -E 'test(the_scale_harness)' --no-capture
//! ```
//!
//! The numbers go in docs/benchmarks.md with the machine's load. Every rollout here reads
//! the same series (one policy template), so with the controller's shared reads (its
//! default `--read-coalesce 500ms`) the queries per tick interval are the template's two checks
//! per coalescing window, asserted; `CANARY_SCALE_ARGS="--read-coalesce 0"` measures one
//! query per check per rollout per tick, as before.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canary_tests::binary;
use canary_tests::policy::TestPolicy;
use serde_json::{Value, json};

use crate::rollout_e2e::{Running, World};
use crate::support::{NS, http_route};

const GROUP: &str = "canary.dev";
const RESOURCE: &str = "canaryrollouts";

/// The harness' knobs, from the environment (the suite's small run by default).
struct Knobs {
    rollouts: usize,
    interval: String,
    window: Duration,
    json: Option<String>,
    /// `--lease-duration` and `--lease-renew-deadline` (`CANARY_SCALE_LEASE=60s/45s`);
    /// the controller's defaults (15 s/10 s) when unset.
    lease: Option<(String, String)>,
    /// More arguments for `canary controller run` (`CANARY_SCALE_ARGS`, split at spaces),
    /// e.g. `--max-concurrent-queries 64`.
    args: Vec<String>,
    /// A program the controller runs under (`CANARY_SCALE_WRAP`, split at spaces), e.g.
    /// `heaptrack -o /tmp/controller` to see where its memory goes. The RSS and CPU the
    /// harness reports are then the wrapper's process', not the controller's.
    wrap: Vec<String>,
}

impl Knobs {
    fn from_env() -> Knobs {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Knobs {
            rollouts: var("CANARY_SCALE_ROLLOUTS").map_or(20, |v| v.parse().unwrap()),
            interval: var("CANARY_SCALE_INTERVAL").unwrap_or_else(|| "1s".to_owned()),
            window: Duration::from_secs(
                var("CANARY_SCALE_SECONDS").map_or(10, |v| v.parse().unwrap()),
            ),
            json: var("CANARY_SCALE_JSON"),
            lease: var("CANARY_SCALE_LEASE").map(|v| {
                let (duration, deadline) = v.split_once('/').expect("CANARY_SCALE_LEASE=D/R");
                (duration.to_owned(), deadline.to_owned())
            }),
            args: var("CANARY_SCALE_ARGS")
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            wrap: var("CANARY_SCALE_WRAP")
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }

    /// The controller's `--read-coalesce` in seconds: its default (500 ms) unless the
    /// arguments give one (`0`: every rollout its own queries).
    fn read_coalesce_seconds(&self) -> f64 {
        let given = self
            .args
            .iter()
            .position(|a| a == "--read-coalesce")
            .and_then(|i| self.args.get(i + 1));
        match given.map(String::as_str) {
            None => 0.5,
            Some("0") => 0.0,
            Some(text) if text.ends_with("ms") => {
                text.trim_end_matches("ms").parse::<f64>().unwrap() / 1000.0
            }
            Some(text) => text
                .trim_end_matches('s')
                .parse()
                .expect("--read-coalesce in seconds or ms, e.g. 1s, 500ms"),
        }
    }

    fn interval_seconds(&self) -> f64 {
        let digits = self.interval.trim_end_matches('s');
        digits
            .parse()
            .expect("CANARY_SCALE_INTERVAL in whole seconds, e.g. 10s")
    }
}

/// Rollout `i`'s policy: the world's checks, its own HTTPRoute, steps long enough that the
/// window sees ticks only (no step ends in it).
fn policy(world: &World, knobs: &Knobs, i: usize) -> Value {
    let yaml = TestPolicy::new(&format!("svc-{i}"))
        .selector(r#"job="demo""#)
        .prometheus(&world.prometheus.url(), "    timeout: 30s\n")
        .rollout(&format!(
            "  steps: [10, 25, 50, 100]\n  step-duration: 1h\n  max-step-duration: 2h\n  interval: {}\n  min-requests: 50\n",
            knobs.interval
        ))
        .gateway(&format!(
            "  http-route:\n    name: route-{i}\n    rule: api\n    stable: checkout-stable\n    canary: checkout-canary\n"
        ))
        .yaml();
    serde_saphyr::from_str(&yaml).unwrap()
}

/// A plain HTTP/1.0 GET; the answer's body.
fn get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: harness\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The cumulative buckets `(upper bound, count)` of the controller's histogram
/// `canary_controller_NAME` (the tick lags) in its metrics.
fn histogram_buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("canary_controller_{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, rest) = rest.split_once("\"}")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, rest.trim().parse().ok()?))
        })
        .collect()
}

/// The upper bound of the bucket holding quantile `q` of the counts in `after − before`.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|&(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c);
            (bound, count - earlier)
        })
        .collect();
    let total = counts.last().map_or(0.0, |(_, c)| *c);
    counts
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map_or(f64::NAN, |(bound, _)| *bound)
}

/// The controller's CPU seconds so far (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of proc(5) (utime, stime), counted from the state (field 3).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let per_second: f64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    ticks / per_second
}

/// The controller's peak resident set, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// What a request did, to count them by kind: `GET configmaps`, `PATCH canaryrollouts/status`,
/// `WATCH canaryrollouts`.
fn kind_of(request: &canary_fake_kube_api::Recorded) -> String {
    let parts: Vec<&str> = request.path.split('/').collect();
    let resource = match parts.iter().position(|p| *p == "namespaces") {
        Some(at) if parts.len() > at + 2 => match parts.get(at + 4) {
            Some(sub) => format!("{}/{sub}", parts[at + 2]),
            None => parts[at + 2].to_owned(),
        },
        _ => parts.last().copied().unwrap_or("").to_owned(),
    };
    let method = if request.query.contains("watch=true") {
        "WATCH"
    } else {
        request.method.as_str()
    };
    format!("{method} {resource}")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_scale_harness_runs_n_rollouts_in_one_controller_and_measures_it() {
    let knobs = Knobs::from_env();
    let n = knobs.rollouts;
    let world = World::start(&[]);
    world.fake.serve_status_subresource(GROUP, RESOURCE);
    // The harness reads the log's methods and paths only; every state save's body kept in
    // it, and the fake's default 100,000 changes kept for watches (each a copy of a state
    // ConfigMap), grew this process past 3 GiB at 10,000 rollouts. The controller watches
    // its CanaryRollouts only, which change once a tick each.
    world.fake.drop_request_bodies();
    world.fake.keep_history((4 * n).max(1_000));
    for i in 0..n {
        let mut route = http_route();
        route["metadata"]["name"] = json!(format!("route-{i}"));
        world.fake.insert(route);
        world.fake.insert(json!({
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "CanaryRollout",
            "metadata": {"name": format!("r-{i}"), "namespace": NS},
            "spec": {"revision": "v2", "policy": policy(&world, &knobs, i)},
        }));
    }
    let kubeconfig = world.dir.path().join("kubeconfig-scale");
    std::fs::write(&kubeconfig, world.fake.kubeconfig_with_token(NS, "scale")).unwrap();
    let mut command = match knobs.wrap.split_first() {
        Some((wrapper, wrapper_args)) => {
            let mut command = Command::new(wrapper);
            command.args(wrapper_args).arg(binary("canary"));
            command
        }
        None => Command::new(binary("canary")),
    };
    command.args(["controller", "run"]);
    if let Some((duration, deadline)) = &knobs.lease {
        command.args([
            "--lease-duration",
            duration,
            "--lease-renew-deadline",
            deadline,
        ]);
    }
    command.args(&knobs.args);
    let started = Instant::now();
    let controller = Running::spawn(
        command
            .args([
                "--namespace",
                NS,
                "--lease-namespace",
                "canary-system",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("CANARY_HOLDER", "scale")
            .env("CANARY_LOG", "warn")
            .stdin(Stdio::null()),
    );
    let pid = controller.child.id();
    // Every rollout has set its first weight (10 %): from here on, each only ticks.
    let weighted = || {
        (0..n)
            .filter(|i| {
                world
                    .fake
                    .object(GROUP, RESOURCE, NS, &format!("r-{i}"))
                    .is_some_and(|r| r["status"]["weight"] == 10)
            })
            .count()
    };
    let exited = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.contains(") Z "))
    };
    let startup_limit = Duration::from_secs(60) + Duration::from_millis(300) * n as u32;
    // Looked at every 2 s: reading every resource out of the fake holds its store's lock,
    // and doing it every 50 ms (as `wait_until` would) at 1,000 rollouts took a core from
    // the fake and the controller and slowed every API request.
    let deadline = Instant::now() + startup_limit;
    let all_weighted = loop {
        if exited() {
            break false;
        }
        if weighted() == n {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(
        !exited(),
        "the controller stopped:\n{}",
        controller.stderr()
    );
    assert!(
        all_weighted,
        "{} of {n} rollouts at 10 % after {startup_limit:?}:\n{}",
        weighted(),
        controller.stderr()
    );
    let startup = started.elapsed();
    let address = controller
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("canary controller: metrics at http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .expect("the metrics address")
        .to_owned();

    let requests_before = world.fake.request_count();
    let queries_before = world.prometheus.query_requests();
    let metrics_before = get(&address, "/metrics");
    let lag_before = histogram_buckets(&metrics_before, "tick_lag_seconds");
    let decided_before = histogram_buckets(&metrics_before, "tick_decision_lag_seconds");
    let cpu_before = cpu_seconds(pid);
    let window_start = Instant::now();
    std::thread::sleep(knobs.window);
    let window = window_start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let metrics_after = get(&address, "/metrics");
    let lag_after = histogram_buckets(&metrics_after, "tick_lag_seconds");
    let decided_after = histogram_buckets(&metrics_after, "tick_decision_lag_seconds");
    let queries = world.prometheus.query_requests() - queries_before;
    let requests = &world.fake.requests_from(requests_before)[..];
    let rss = peak_rss_mib(pid);

    let ticks =
        lag_after.last().map_or(0.0, |(_, c)| *c) - lag_before.last().map_or(0.0, |(_, c)| *c);
    let writes = requests.iter().filter(|r| r.method != "GET").count();
    let per_rollout_minute = |count: usize| count as f64 / n as f64 / (window / 60.0);
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    for request in requests {
        *by_kind.entry(kind_of(request)).or_default() += 1;
    }
    let by_kind: serde_json::Map<String, Value> = by_kind
        .into_iter()
        .map(|(kind, count)| (kind, json!(per_rollout_minute(count))))
        .collect();
    let stored: Vec<usize> = (0..n)
        .map(|i| {
            let configmap = world
                .fake
                .object("", "configmaps", NS, &format!("canaryrollout-r-{i}"))
                .expect("the state ConfigMap");
            let data = configmap["data"].as_object().map_or(0, |data| {
                data.values().map(|v| v.as_str().map_or(0, str::len)).sum()
            });
            let status = world
                .fake
                .object(GROUP, RESOURCE, NS, &format!("r-{i}"))
                .map_or(0, |r| r["status"].to_string().len());
            data + status
        })
        .collect();
    let result = json!({
        "rollouts": n,
        "interval_seconds": knobs.interval_seconds(),
        "window_seconds": window,
        "startup_seconds": startup.as_secs_f64(),
        "peak_rss_mib": rss,
        "cpu_seconds_in_window": cpu,
        "cpu_seconds_per_tick_interval": cpu / (window / knobs.interval_seconds()),
        "ticks_in_window": ticks,
        "ticks_expected": n as f64 * window / knobs.interval_seconds(),
        "tick_lag_p50_seconds_at_most": quantile(&lag_before, &lag_after, 0.5),
        "tick_lag_p99_seconds_at_most": quantile(&lag_before, &lag_after, 0.99),
        "tick_decision_lag_p50_seconds_at_most": quantile(&decided_before, &decided_after, 0.5),
        "tick_decision_lag_p99_seconds_at_most": quantile(&decided_before, &decided_after, 0.99),
        "api_requests_per_rollout_per_minute": per_rollout_minute(requests.len()),
        "api_writes_per_rollout_per_minute": per_rollout_minute(writes),
        "api_writes_per_tick": if ticks > 0.0 { writes as f64 / ticks } else { f64::NAN },
        "api_requests_per_rollout_per_minute_by_kind": by_kind,
        "prometheus_queries_per_tick": if ticks > 0.0 { queries / ticks } else { f64::NAN },
        "prometheus_queries_per_tick_interval": queries / (window / knobs.interval_seconds()),
        "read_coalesce_seconds": knobs.read_coalesce_seconds().min(knobs.interval_seconds() / 10.0),
        "prometheus_queries_per_second": queries / window,
        "stored_bytes_per_rollout_max": stored.iter().max().copied().unwrap_or(0),
        "stored_bytes_per_rollout_mean": stored.iter().sum::<usize>() as f64 / n as f64,
        "load_average": load_average(),
        "lease": knobs.lease.as_ref().map(|(d, r)| format!("{d}/{r}")),
        "controller_args": knobs.args,
    });
    let text = serde_json::to_string_pretty(&result).unwrap();
    println!("{text}");
    if let Some(path) = &knobs.json {
        std::fs::write(path, &text).unwrap();
    }
    // What the harness itself must see to mean anything: every rollout ticked in the
    // window, each tick asked Prometheus, and the controller stayed up.
    assert!(
        ticks >= n as f64,
        "{ticks} ticks of {n} rollouts in {window:.1} s at {}:\n{text}\n{}",
        knobs.interval,
        controller.stderr()
    );
    // One API write per rollout per tick, its state's save (issue 16): the status is written
    // only when what it shows changes (no step ends in the window; a criterion's verdict
    // may move once or twice after the first weight), so its writes are counted per
    // rollout, not per tick — a loaded machine runs fewer ticks, not fewer verdict changes.
    // A status written at each tick made about one per tick per rollout (2.14 writes per
    // tick in all).
    let saves = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/configmaps/"))
        .count() as f64;
    let statuses = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .count() as f64;
    assert!(
        saves <= ticks * 1.1 + n as f64,
        "{saves} state saves for {ticks} ticks: one a tick expected:\n{text}"
    );
    assert!(
        statuses <= 4.0 * n as f64,
        "{statuses} status writes for {n} rollouts in {window:.1} s ({ticks} ticks): only when what \
         a status shows changes expected:\n{text}"
    );
    // A batch is open for `--read-coalesce`, at most a tenth of the interval.
    let coalesce = knobs
        .read_coalesce_seconds()
        .min(knobs.interval_seconds() / 10.0);
    if coalesce == 0.0 {
        // Every rollout its own queries: two checks, one query each per tick.
        assert!(queries >= ticks, "{text}");
    } else {
        // Every rollout shares one template (the same series: `job="demo"`, the same two
        // versions) and its two checks have a raw-sample form: one batch per check at a
        // time, each open for `coalesce`: at most 2 × (window / coalesce + 2) queries (one
        // more for a batch opened before the window) however many rollouts (issue 16:
        // templates × checks per coalescing window).
        let bound = 2.0 * ((window / coalesce).floor() + 2.0);
        assert!(
            queries > 0.0 && queries <= bound,
            "{queries} queries for {ticks} ticks, at most {bound} expected:\n{text}"
        );
    }
    assert!(
        !exited(),
        "the controller stopped:\n{}",
        controller.stderr()
    );
}
