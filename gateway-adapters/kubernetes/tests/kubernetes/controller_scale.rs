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
//!
//! The second test, [`the_scale_harness_kills_the_leader_and_times_the_standbys_take_over`],
//! is the failover measurement on the same fleet: a leader and a standby `canary controller
//! run` (the same Lease, different identities), the leader SIGKILLed once every rollout
//! ticks under it; from the fake's log (each request with the time it was answered) it
//! times the standby's Lease acquisition and each rollout's first tick under the standby,
//! and checks what must hold however long it took: every rollout ticked again, at the step
//! it was at, and the dead leader wrote nothing once the standby led.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canary_core::rollout::{Phase, Rollout};
use canary_tests::policy::TestPolicy;
use canary_tests::{binary, wait_until};
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
    /// `--lease-duration`, `--lease-renew-deadline` and optionally `--lease-retry-period`
    /// (`CANARY_SCALE_LEASE=60s/45s` or `15s/10s/2s`). Unset: the controller's defaults
    /// (15 s/10 s/2 s) in the steady-state test, [`Lease::QUICK`] in the failover test.
    lease: Option<Lease>,
    /// More arguments for `canary controller run` (`CANARY_SCALE_ARGS`, split at spaces),
    /// e.g. `--max-concurrent-queries 64`.
    args: Vec<String>,
    /// A program the controller runs under (`CANARY_SCALE_WRAP`, split at spaces), e.g.
    /// `heaptrack -o /tmp/controller` to see where its memory goes. The RSS and CPU the
    /// harness reports are then the wrapper's process', not the controller's.
    wrap: Vec<String>,
}

impl Knobs {
    /// The measurement's JSON: printed, and written to `CANARY_SCALE_JSON` when given.
    fn publish(&self, result: &Value) -> String {
        let text = serde_json::to_string_pretty(result).unwrap();
        println!("{text}");
        if let Some(path) = &self.json {
            std::fs::write(path, &text).unwrap();
        }
        text
    }

    fn from_env() -> Knobs {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Knobs {
            rollouts: var("CANARY_SCALE_ROLLOUTS").map_or(20, |v| v.parse().unwrap()),
            interval: var("CANARY_SCALE_INTERVAL").unwrap_or_else(|| "1s".to_owned()),
            window: Duration::from_secs(
                var("CANARY_SCALE_SECONDS").map_or(10, |v| v.parse().unwrap()),
            ),
            json: var("CANARY_SCALE_JSON"),
            lease: var("CANARY_SCALE_LEASE").map(|v| Lease::parse(&v)),
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
        given.map_or(0.5, |text| seconds(text))
    }

    fn interval_seconds(&self) -> f64 {
        let digits = self.interval.trim_end_matches('s');
        digits
            .parse()
            .expect("CANARY_SCALE_INTERVAL in whole seconds, e.g. 10s")
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval_seconds())
    }
}

/// The leader election's timing, as `canary controller run` is given it.
#[derive(Clone, Debug)]
struct Lease {
    duration: String,
    renew_deadline: String,
    /// `None`: the controller's default (2 s).
    retry_period: Option<String>,
}

impl Lease {
    /// The failover test's lease in the suite: short, so the take-over comes within
    /// seconds (the values `controller_e2e.rs` runs its failover tests with).
    const QUICK: (&'static str, &'static str, &'static str) = ("4s", "3s", "500ms");

    fn quick() -> Lease {
        let (duration, renew_deadline, retry_period) = Lease::QUICK;
        Lease {
            duration: duration.to_owned(),
            renew_deadline: renew_deadline.to_owned(),
            retry_period: Some(retry_period.to_owned()),
        }
    }

    /// `D/R` or `D/R/P`.
    fn parse(text: &str) -> Lease {
        let parts: Vec<&str> = text.split('/').collect();
        match parts[..] {
            [duration, renew_deadline] | [duration, renew_deadline, _] => Lease {
                duration: duration.to_owned(),
                renew_deadline: renew_deadline.to_owned(),
                retry_period: parts.get(2).map(|p| (*p).to_owned()),
            },
            _ => panic!("CANARY_SCALE_LEASE=DURATION/RENEW-DEADLINE[/RETRY-PERIOD], got {text}"),
        }
    }

    fn args(&self) -> Vec<&str> {
        let mut args = vec![
            "--lease-duration",
            &self.duration,
            "--lease-renew-deadline",
            &self.renew_deadline,
        ];
        if let Some(period) = &self.retry_period {
            args.extend(["--lease-retry-period", period]);
        }
        args
    }

    /// `15s/10s/2s`, the retry period the controller's default when not given.
    fn describe(&self) -> String {
        format!(
            "{}/{}/{}",
            self.duration,
            self.renew_deadline,
            self.retry_period.as_deref().unwrap_or("2s")
        )
    }
}

/// A duration as the controller's flags take them here: `0`, `500ms`, `2s`.
fn seconds(text: &str) -> f64 {
    match text {
        "0" => 0.0,
        ms if ms.ends_with("ms") => ms.trim_end_matches("ms").parse::<f64>().unwrap() / 1000.0,
        s => s
            .trim_end_matches('s')
            .parse()
            .expect("a duration in seconds or ms, e.g. 1s, 500ms"),
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

/// The world with the fleet in it: N CanaryRollouts, each with its HTTPRoute. `bodies`:
/// whether the fake keeps the requests' bodies (the failover test reads its small run's).
fn fleet(knobs: &Knobs, bodies: bool) -> World {
    let n = knobs.rollouts;
    let world = World::start(&[]);
    world.fake.serve_status_subresource(GROUP, RESOURCE);
    // The harness reads the log's methods and paths only; every state save's body kept in
    // it, and the fake's default 100,000 changes kept for watches (each a copy of a state
    // ConfigMap), grew this process past 3 GiB at 10,000 rollouts. The controller watches
    // its CanaryRollouts only, which change once a tick each.
    if !bodies {
        world.fake.drop_request_bodies();
    }
    world.fake.keep_history((4 * n).max(1_000));
    for i in 0..n {
        let mut route = http_route();
        route["metadata"]["name"] = json!(format!("route-{i}"));
        world.fake.insert(route);
        world.fake.insert(json!({
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "CanaryRollout",
            "metadata": {"name": format!("r-{i}"), "namespace": NS},
            "spec": {"revision": "v2", "policy": policy(&world, knobs, i)},
        }));
    }
    world
}

/// `canary controller run` as `holder`: its identity, and the bearer token that tells its
/// requests apart in the fake's log.
fn spawn_controller(world: &World, knobs: &Knobs, lease: Option<&Lease>, holder: &str) -> Running {
    let kubeconfig = world.dir.path().join(format!("kubeconfig-{holder}"));
    std::fs::write(&kubeconfig, world.fake.kubeconfig_with_token(NS, holder)).unwrap();
    let mut command = match knobs.wrap.split_first() {
        Some((wrapper, wrapper_args)) => {
            let mut command = Command::new(wrapper);
            command.args(wrapper_args).arg(binary("canary"));
            command
        }
        None => Command::new(binary("canary")),
    };
    command.args(["controller", "run"]);
    if let Some(lease) = lease {
        command.args(lease.args());
    }
    command.args(&knobs.args);
    Running::spawn(
        command
            .args([
                "--namespace",
                NS,
                "--lease-namespace",
                LEASE_NAMESPACE,
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("CANARY_HOLDER", holder)
            .env("CANARY_LOG", "warn")
            .stdin(Stdio::null()),
    )
}

const LEASE_NAMESPACE: &str = "canary-system";

/// Whether process `pid` has ended (gone, or a zombie not yet waited for).
fn has_exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| stat.contains(") Z "))
}

/// Waits until every rollout has set its first weight (10 %): from there on, each only
/// ticks. Fails the test if the controller stops or they are not all there in time.
fn wait_until_weighted(world: &World, n: usize, controller: &Running) {
    let pid = controller.child.id();
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
    let startup_limit = Duration::from_secs(60) + Duration::from_millis(300) * n as u32;
    // Looked at every 2 s: reading every resource out of the fake holds its store's lock,
    // and doing it every 50 ms (as `wait_until` would) at 1,000 rollouts took a core from
    // the fake and the controller and slowed every API request.
    let deadline = Instant::now() + startup_limit;
    let all_weighted = loop {
        if has_exited(pid) {
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
        !has_exited(pid),
        "the controller stopped:\n{}",
        controller.stderr()
    );
    assert!(
        all_weighted,
        "{} of {n} rollouts at 10 % after {startup_limit:?}:\n{}",
        weighted(),
        controller.stderr()
    );
}

/// The address of a controller's own metrics, from its log.
fn metrics_address(controller: &Running) -> String {
    controller
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("canary controller: metrics at http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .expect("the metrics address")
        .to_owned()
}

#[test]
fn the_scale_harness_runs_n_rollouts_in_one_controller_and_measures_it() {
    let knobs = Knobs::from_env();
    let n = knobs.rollouts;
    let world = fleet(&knobs, false);
    let started = Instant::now();
    let controller = spawn_controller(&world, &knobs, knobs.lease.as_ref(), "scale");
    let pid = controller.child.id();
    let exited = || has_exited(pid);
    wait_until_weighted(&world, n, &controller);
    let startup = started.elapsed();
    let address = metrics_address(&controller);

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
        "lease": knobs.lease.as_ref().map(Lease::describe),
        "controller_args": knobs.args,
    });
    let text = knobs.publish(&result);
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

/// Rollout `i`'s state as saved in its ConfigMap, and who holds its claim (`owner.json`).
fn saved_rollout(world: &World, i: usize) -> (Rollout, String) {
    let configmap = world
        .fake
        .object("", "configmaps", NS, &state_config_map(i))
        .expect("the state ConfigMap");
    let text = configmap["data"]["rollout.json"]
        .as_str()
        .expect("a saved rollout");
    let owner = configmap["data"]["owner.json"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (Rollout::from_json(text.as_bytes()).unwrap(), owner)
}

fn state_config_map(i: usize) -> String {
    format!("canaryrollout-r-{i}")
}

/// Where a rollout stands: the rollout's start, the step's index, weight and start. The
/// same before and after a take-over means it resumed at its step (a restart from the
/// first step would start the rollout again).
fn position(rollout: &Rollout) -> String {
    match rollout.phase() {
        Phase::Step {
            index,
            weight,
            weight_set,
            started_at,
            ..
        } => format!(
            "rollout started {}, step {index} at {weight} % (set: {weight_set}) since {started_at:?}",
            rollout.started_at()
        ),
        other => format!("{}: {}", rollout.started_at(), other.name()),
    }
}

/// The nearest-rank quantile `q` of sorted `values`.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The failover measurement (issue 16: "time from leader SIGKILL to the standby's first
/// tick, ≤ the lease duration + one tick"). The fleet runs under a leader; a standby with
/// the same Lease and its own identity stands by; once every rollout ticks under the leader,
/// the leader is SIGKILLed. From the fake's log (each request with the time it was
/// answered, its client told by its bearer token) it takes, counted from the kill:
/// - the standby's Lease acquisition: its first successful write of the Lease;
/// - each rollout's first tick under the standby: its second successful write of the
///   rollout's state ConfigMap — the first is the claim's take-over, and a resumed rollout
///   in a step writes its state next when a tick has read the metrics and judged (the
///   machine resumes a step by waiting for the tick due; the suite's run checks this on the
///   bodies: that write's state has its next tick set one interval after a read that came
///   after the kill);
/// - their p50, p99 and max (the time until all had ticked), beside the bound: the lease
///   duration plus one tick interval.
///
/// Timing is measured, never asserted (a shared, noisy machine); what is asserted holds
/// however long it takes: the standby took the Lease, every rollout ticked under it at the
/// step it was at (same rollout and step start; the standby set no weight), and the dead
/// leader wrote nothing once the standby led.
///
/// The suite runs it with 20 rollouts, 1 s ticks and a 4 s lease ([`Lease::QUICK`]); the
/// benchmark with the controller's defaults:
///
/// ```text
/// CANARY_SCALE_ROLLOUTS=1000 CANARY_SCALE_INTERVAL=10s CANARY_SCALE_LEASE=15s/10s/2s \
/// CANARY_SCALE_JSON=/tmp/failover-1000.json \
///   cargo nextest run --workspace -E 'test(the_scale_harness_kills)' --no-capture
/// ```
#[test]
fn the_scale_harness_kills_the_leader_and_times_the_standbys_take_over() {
    const LEADER: &str = "leader";
    const STANDBY: &str = "standby";
    let knobs = Knobs::from_env();
    let n = knobs.rollouts;
    let lease = knobs.lease.clone().unwrap_or_else(Lease::quick);
    // Bodies are kept in small runs only, to check what the standby's writes were.
    let bodies = n <= 100;
    let world = fleet(&knobs, bodies);
    let started = Instant::now();
    let mut leader = spawn_controller(&world, &knobs, Some(&lease), LEADER);
    wait_until_weighted(&world, n, &leader);
    let startup = started.elapsed();
    let standby_from = world.fake.request_count();
    let standby = spawn_controller(&world, &knobs, Some(&lease), STANDBY);
    assert!(
        wait_until(Duration::from_secs(60), || standby
            .stderr()
            .contains("standing by")),
        "the standby stands by while the leader leads:\n{}",
        standby.stderr()
    );
    // Steady state: every rollout ticks under the leader for two intervals.
    std::thread::sleep(2 * knobs.interval());
    let before: Vec<String> = (0..n)
        .map(|i| position(&saved_rollout(&world, i).0))
        .collect();
    let log_from = world.fake.request_count();
    let killed_wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let standby_pid = standby.child.id();
    // Who spends the processor while the standby resumes: the standby, and this process
    // (the API fake and the harness).
    let cpu_at_kill = (cpu_seconds(standby_pid), cpu_seconds(std::process::id()));
    // Standing by, the standby watched the CanaryRollouts (a warm standby) and wrote nothing.
    let mut standby_listed_before_kill = false;
    let mut standby_writes_before_kill: Vec<String> = Vec::new();
    for request in world.fake.requests_from(standby_from) {
        if request.token.as_deref() != Some(STANDBY) {
            continue;
        }
        if request.method == "GET" {
            standby_listed_before_kill |= request.path
                == format!("/apis/{GROUP}/v1alpha1/namespaces/{NS}/{RESOURCE}")
                && !request.query.contains("watch=true");
        } else {
            standby_writes_before_kill.push(format!(
                "{} {} {}",
                request.method, request.path, request.status
            ));
        }
    }
    let killed = Instant::now();
    // SIGKILL: no chance to release the Lease or anything else.
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();

    let lease_path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/canary-controller"
    );
    let state_prefix = format!("/api/v1/namespaces/{NS}/configmaps/canaryrollout-r-");
    let mut cursor = log_from;
    let mut acquired: Option<Instant> = None;
    // The standby's first list of the CanaryRollouts (its Controller's watch starting).
    let rollouts_path = format!("/apis/{GROUP}/v1alpha1/namespaces/{NS}/{RESOURCE}");
    let mut listed: Option<Instant> = None;
    let mut state_writes = vec![0_u32; n];
    let mut first_tick: Vec<Option<Instant>> = vec![None; n];
    // The first-tick write's body (small runs): the state it saved.
    let mut first_tick_state: Vec<Option<String>> = vec![None; n];
    let mut leader_requests_after_kill = 0_usize;
    let mut leader_writes: Vec<Instant> = Vec::new();
    let mut standby_route_writes: Vec<String> = Vec::new();
    let limit = seconds(&lease.duration) * 2.0 + 60.0 + 0.3 * n as f64;
    let deadline = killed + Duration::from_secs_f64(limit);
    loop {
        let requests = world.fake.requests_from(cursor);
        cursor += requests.len();
        for request in requests {
            let write = request.method != "GET" && (200..300).contains(&request.status);
            match request.token.as_deref() {
                Some(LEADER) => {
                    if request.answered_at > killed {
                        leader_requests_after_kill += 1;
                    }
                    if request.method != "GET" {
                        leader_writes.push(request.answered_at);
                    }
                }
                Some(STANDBY)
                    if request.method == "GET"
                        && request.path == rollouts_path
                        && !request.query.contains("watch=true") =>
                {
                    listed.get_or_insert(request.answered_at);
                }
                Some(STANDBY) if write => {
                    if request.path == lease_path {
                        acquired.get_or_insert(request.answered_at);
                    } else if let Some(i) = request
                        .path
                        .strip_prefix(&state_prefix)
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|i| *i < n)
                    {
                        state_writes[i] += 1;
                        if state_writes[i] == 2 {
                            first_tick[i] = Some(request.answered_at);
                            first_tick_state[i] = request.body.as_ref().and_then(|body| {
                                body["data"]["rollout.json"].as_str().map(str::to_owned)
                            });
                        }
                    } else if request.path.contains("/httproutes/") {
                        standby_route_writes.push(format!("{} {}", request.method, request.path));
                    }
                }
                _ => {}
            }
        }
        let ticked = first_tick.iter().filter(|t| t.is_some()).count();
        if ticked == n || Instant::now() >= deadline || has_exited(standby_pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let measured_for = killed.elapsed().as_secs_f64();
    let standby_cores = (cpu_seconds(standby_pid) - cpu_at_kill.0) / measured_for;
    let harness_cores = (cpu_seconds(std::process::id()) - cpu_at_kill.1) / measured_for;

    let after_kill = |at: Instant| at.saturating_duration_since(killed).as_secs_f64();
    let mut ticks: Vec<f64> = first_tick
        .iter()
        .flatten()
        .map(|at| after_kill(*at))
        .collect();
    ticks.sort_by(f64::total_cmp);
    let resumed = ticks.len();
    let acquired_after = acquired.map(after_kill);
    let lease_seconds = seconds(&lease.duration);
    let bound = lease_seconds + knobs.interval_seconds();
    let all_ticked = (resumed == n).then(|| ticks.last().copied()).flatten();
    let result = json!({
        "rollouts": n,
        "interval_seconds": knobs.interval_seconds(),
        "lease": lease.describe(),
        "lease_duration_seconds": lease_seconds,
        "bound_seconds": bound,
        "leader_startup_seconds": startup.as_secs_f64(),
        "lease_acquired_after_kill_seconds": acquired_after,
        // `null`: listed only while standing by (a warm standby, since session 10).
        "rollouts_listed_after_kill_seconds": listed.map(after_kill),
        "rollouts_listed_while_standing_by": standby_listed_before_kill,
        "first_tick_after_kill_min_seconds": ticks.first(),
        "first_tick_after_kill_p10_seconds": nearest_rank(&ticks, 0.1),
        "first_tick_after_kill_p50_seconds": nearest_rank(&ticks, 0.5),
        "first_tick_after_kill_p90_seconds": nearest_rank(&ticks, 0.9),
        "first_tick_after_kill_p99_seconds": nearest_rank(&ticks, 0.99),
        "first_tick_after_kill_max_seconds": ticks.last(),
        "all_ticked_after_kill_seconds": all_ticked,
        "all_ticked_after_lease_acquired_seconds":
            all_ticked.zip(acquired_after).map(|(all, lease)| all - lease),
        "resumed": resumed,
        "meets_bound": all_ticked.is_some_and(|all| all <= bound),
        "leader_requests_answered_after_kill": leader_requests_after_kill,
        "standby_peak_rss_mib": peak_rss_mib(standby_pid),
        // Cores used from the kill to the end of the measurement (all ticked, or the limit).
        "standby_cores_after_kill": standby_cores,
        "harness_and_fake_cores_after_kill": harness_cores,
        "load_average": load_average(),
        "controller_args": knobs.args,
    });
    let text = knobs.publish(&result);

    assert!(
        !has_exited(standby_pid),
        "the standby stopped:\n{}",
        standby.stderr()
    );
    let acquired = acquired.unwrap_or_else(|| {
        panic!(
            "the standby never took the Lease:\n{text}\n{}",
            standby.stderr()
        )
    });
    let missing: Vec<usize> = (0..n).filter(|i| first_tick[*i].is_none()).collect();
    assert!(
        missing.is_empty(),
        "{} rollouts never ticked under the standby (first: {:?}):\n{text}\n{}",
        missing.len(),
        missing.first(),
        standby.stderr()
    );
    // Resumed at its step: the same rollout, step and step start, claimed by the standby,
    // and not one weight set again.
    for (i, before) in before.iter().enumerate() {
        let (rollout, owner) = saved_rollout(&world, i);
        assert_eq!(
            &position(&rollout),
            before,
            "rollout r-{i} after the take-over"
        );
        assert!(owner.contains(STANDBY), "r-{i} is the standby's: {owner}");
    }
    assert!(
        standby_route_writes.is_empty(),
        "the standby set weights again: {standby_route_writes:?}"
    );
    assert!(
        standby_writes_before_kill.is_empty(),
        "the standby wrote while it stood by: {standby_writes_before_kill:?}"
    );
    assert!(
        standby_listed_before_kill,
        "the standby listed the CanaryRollouts while it stood by (a warm standby)"
    );
    // What the measurement counts as a first tick is one: its state was saved after a read
    // that came after the kill (the next tick is set one interval after the read).
    if bodies {
        let interval_ms = (knobs.interval_seconds() * 1000.0) as i64;
        for (i, state) in first_tick_state.iter().enumerate() {
            let state = state.as_deref().expect("the first tick's saved state");
            let rollout = Rollout::from_json(state.as_bytes()).unwrap();
            let next = rollout
                .next_tick_at()
                .expect("a next tick")
                .as_millisecond();
            assert!(
                next >= killed_wall_ms + interval_ms,
                "r-{i}: the standby's second state write is not a tick's (next tick at {next} ms, killed at {killed_wall_ms} ms)"
            );
        }
    }
    // The dead leader wrote nothing once the standby led.
    let late: Vec<&Instant> = leader_writes.iter().filter(|at| **at >= acquired).collect();
    assert!(
        late.is_empty(),
        "{} writes by the killed leader after the standby took the Lease",
        late.len()
    );
}
