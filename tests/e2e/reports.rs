//! The reports as people and CI systems meet them: the HTML report opened in a real headless
//! Chromium (the charts laid out and drawn, with data points for both versions and the
//! decision marker, and a screenshot saved under `target/` for a person to look at), and a
//! real rollout — two demo services under load, read by direct scrapes, weights set by a
//! command adapter — scraped on `--metrics-addr` while it runs, writing HTML, JUnit and the
//! GitHub step summary.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canary_tests::demo::{DemoService, Load};
use canary_tests::process::ChildGuard;
use canary_tests::{binary, free_port, require_program};

use crate::canary_run::{canary, read_json, spawn_canary, write_policy};

/// Where reports and screenshots are kept for a person to look at: `target/reports/`.
fn kept_dir() -> PathBuf {
    // The binaries live in target/<profile>/.
    let dir = binary("canary")
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/canary")
        .join("reports");
    std::fs::create_dir_all(&dir).expect("create target/reports");
    dir
}

/// Runs headless Chromium on `page` with `flags` (`--dump-dom`, `--screenshot=…`), with a
/// fresh profile and nothing reaching for the network; returns its stdout.
fn chromium(page: &Path, flags: &[&str]) -> String {
    let program = require_program("chromium", "chromium");
    let profile = tempfile::tempdir().expect("a profile directory");
    let stdout_path = profile.path().join("stdout");
    let mut command = Command::new(program);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .args(flags)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("chromium's stdout file"))
        .stderr(Stdio::null());
    let mut guard = ChildGuard {
        child: command.spawn().expect("start chromium"),
        name: "chromium".to_owned(),
    };
    let status = guard.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "chromium exited with {status}");
    std::fs::read_to_string(&stdout_path).expect("chromium's output")
}

/// Measures, in the browser, what was laid out and drawn: per chart its rendered size and,
/// per series, how many points have a non-empty box inside the chart, their x range, and
/// the decision line's position. A copy of the report gets this script (the report itself
/// has none); the results land in `<pre id="measured">` of the DOM Chromium dumps.
const MEASURE: &str = r#"<script>
(function () {
  var out = [];
  document.querySelectorAll('svg.chart').forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    var inside = function (r) {
      return r.width > 0 && r.height > 0 && r.left >= box.left - 1 && r.right <= box.right + 1
        && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
    };
    var series = {};
    svg.querySelectorAll('g.series').forEach(function (g) {
      var name = g.getAttribute('class').replace('series ', '');
      var xs = [];
      g.querySelectorAll('circle').forEach(function (c) {
        var r = c.getBoundingClientRect();
        if (inside(r)) { xs.push(r.left + r.width / 2); }
      });
      var lines = 0;
      g.querySelectorAll('polyline, path, line').forEach(function (l) {
        var r = l.getBoundingClientRect();
        if (r.width > 0 || r.height > 0) { lines += 1; }
      });
      series[name] = { points: xs.length, lines: lines,
        min_x: xs.length ? Math.min.apply(null, xs) : 0,
        max_x: xs.length ? Math.max.apply(null, xs) : 0 };
    });
    var decision = svg.querySelector('g.decision');
    var d = decision ? decision.getBoundingClientRect() : null;
    var marker = decision ? decision.querySelector('polyline, path, line') : null;
    var m = marker ? marker.getBoundingClientRect() : null;
    out.push({ id: svg.id, width: box.width, height: box.height, series: series,
      boundaries: svg.querySelectorAll('g.step-boundary').length,
      decision_x: m ? m.left + m.width / 2 : -1, decision_height: m ? m.height : 0,
      decision_text: decision ? decision.textContent.trim() : '' });
  });
  var pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

#[derive(Debug)]
struct Measured(serde_json::Value);

impl Measured {
    fn chart(&self, id: &str) -> &serde_json::Value {
        self.0
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no chart {id} rendered: {:#}", self.0))
    }
}

/// Opens a copy of `report` with the measuring script in Chromium and returns the
/// measurements.
fn measure_in_chromium(report: &Path) -> Measured {
    let html = std::fs::read_to_string(report).expect("the report");
    assert!(
        !html.contains("<script"),
        "the report itself has no scripts"
    );
    let dir = tempfile::tempdir().expect("a directory for the measured copy");
    let copy = dir.path().join("measured.html");
    std::fs::write(&copy, html.replace("</body>", &format!("{MEASURE}</body>")))
        .expect("write the measured copy");
    let dom = chromium(&copy, &["--dump-dom", "--window-size=1400,2000"]);
    let json = dom
        .split("<pre id=\"measured\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no measurements in the DOM:\n{dom}"));
    Measured(serde_json::from_str(json).expect("the measurements are JSON"))
}

/// Takes a 1400×2000 screenshot of `report` into `png`, and checks it is one.
fn screenshot(report: &Path, png: &Path) {
    let _ = std::fs::remove_file(png);
    chromium(
        report,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,2000",
        ],
    );
    let mut header = [0_u8; 24];
    File::open(png)
        .and_then(|mut f| f.read_exact(&mut header))
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert_eq!(&header[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(header[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(header[20..24].try_into().unwrap());
    assert_eq!((width, height), (1400, 2000));
    assert!(
        std::fs::metadata(png).unwrap().len() > 50_000,
        "a screenshot with something on it"
    );
    println!("screenshot: {}", png.display());
}

fn number(value: &serde_json::Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn an_analysis_report_renders_in_headless_chromium() {
    let dir = kept_dir();
    let report = dir.join("analyze-errors-3x.html");
    let run = canary(
        &[
            "analyze",
            "--policy",
            "policies/checkout.yaml",
            "--input",
            "examples/recordings/errors-3x.json",
            "--quiet",
            "--output",
            &format!("html:{}", report.display()),
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let measured = measure_in_chromium(&report);
    for id in ["chart-errors", "chart-latency"] {
        let chart = measured.chart(id);
        assert!(
            number(&chart["width"]) > 800.0,
            "{id} is laid out wide: {chart}"
        );
        assert!(number(&chart["height"]) > 150.0, "{id}: {chart}");
        for version in ["canary", "baseline"] {
            let series = &chart["series"][version];
            assert_eq!(
                series["points"], 40,
                "{id} {version}: every tick drawn: {chart}"
            );
            assert!(
                number(&series["lines"]) >= 1.0,
                "{id} {version} lines: {chart}"
            );
        }
        // The decision (7m30s into 20m) is drawn across the chart, between the first and
        // the last tick, left of the middle.
        let x = number(&chart["decision_x"]);
        let canary = &chart["series"]["canary"];
        let (first, last) = (number(&canary["min_x"]), number(&canary["max_x"]));
        assert!(
            first < x && x < (first + last) / 2.0,
            "decision at {x}: {chart}"
        );
        assert!(number(&chart["decision_height"]) > 100.0, "{chart}");
        assert!(
            chart["decision_text"]
                .as_str()
                .unwrap()
                .contains("fail decided at +7m 30s"),
            "{chart}"
        );
    }
    screenshot(&report, &dir.join("report-screenshot.png"));
}

/// Answers `GET /metrics` on `addr`, or `None` while nothing listens.
fn scrape(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: canary\r\nAccept: text/plain\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    Some(body.to_owned())
}

/// The value of one sample in a parsed scrape.
fn value_of(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn a_rollout_serves_its_metrics_while_it_runs_and_writes_its_reports() {
    let stable = DemoService::start("stable", &["--seed", "1"]);
    let canary_service = DemoService::start("canary", &["--seed", "2"]);
    // Traffic straight to each version: the command adapter moves no real traffic, the
    // analysis reads each version's own /metrics.
    let _loads = [
        Load::start(&format!("http://{}/api/checkout", stable.address), 100),
        Load::start(
            &format!("http://{}/api/checkout", canary_service.address),
            60,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let weight_file = dir.path().join("weight");
    // The router serves the stable version before the rollout (the pre-flight reads it).
    std::fs::write(&weight_file, "0\n").unwrap();
    let set = dir.path().join("set-weight.sh");
    std::fs::write(
        &set,
        format!("#!/bin/sh\necho \"$1\" > '{}'\n", weight_file.display()),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&set).status().unwrap();
    let policy = write_policy(
        dir.path(),
        "reports.yaml",
        &format!(
            r#"service: reports-e2e
traffic:
  label: version
  canary: canary
  baseline: stable
metrics:
  scrape:
    canary: ["http://{canary}/metrics"]
    baseline: ["http://{stable}/metrics"]
    timeout: 2s
rollout:
  steps: [10, 25, 50, 100]
  step-duration: 3s
  max-step-duration: 9s
  interval: 1s
  min-requests: 30
  alpha: 1%
gateway:
  command:
    set: ["{set}", "{{weight}}"]
    get: [cat, "{weight}"]
    timeout: 5s
checks:
  - name: errors
    error-rate:
      requests: http_requests_total
      errors: 'code=~"5.."'
    slo:
      max: 5%
    baseline:
      max-increase: 0%
  - name: latency
    latency:
      histogram: http_request_duration_seconds
      quantile: p95
    slo:
      max: 250ms
    baseline:
      max-increase: 50%
"#,
            canary = canary_service.address,
            stable = stable.address,
            set = set.display(),
            weight = weight_file.display(),
        ),
    );
    let kept = kept_dir();
    let html = kept.join("rollout.html");
    let junit = dir.path().join("junit.xml");
    let summary = dir.path().join("step-summary.md");
    let state = dir.path().join("state");
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut process, _stderr) = spawn_canary(
        &[
            "rollout",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--id",
            "pipeline-7",
            "--metrics-addr",
            &addr,
            "--output",
            &format!("html:{}", html.display()),
            "--output",
            &format!("junit:{}", junit.display()),
            "--output",
            &format!("json:{}", dir.path().join("report.json").display()),
        ],
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );

    // Scrape while it runs, until the rollout is analysing a step with some ticks behind it.
    let labels = [("service", "reports-e2e"), ("rollout_id", "pipeline-7")];
    let deadline = Instant::now() + Duration::from_secs(60);
    let during = loop {
        assert!(
            Instant::now() < deadline,
            "the rollout's metrics never showed a step with ticks"
        );
        assert!(
            process.child.try_wait().unwrap().is_none(),
            "the rollout ended before it was scraped in a step"
        );
        if let Some(body) = scrape(&addr) {
            let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
                .expect("the exposition text parses");
            let in_step = value_of(&parsed, "canary_phase", &[("phase", "step")]) == Some(1.0);
            let ticks = value_of(&parsed, "canary_ticks_total", &labels).unwrap_or(0.0);
            if in_step && ticks >= 2.0 {
                break parsed;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let weight = value_of(&during, "canary_weight_percent", &labels).expect("the weight");
    assert!([10.0, 25.0, 50.0].contains(&weight), "weight {weight}");
    let step = value_of(&during, "canary_step", &labels).expect("the step");
    assert!((1.0..=3.0).contains(&step), "step {step}");
    for check in [
        "errors/slo",
        "errors/baseline",
        "latency/slo",
        "latency/baseline",
    ] {
        let set: Vec<f64> = ["pass", "inconclusive", "nodata", "error", "fail"]
            .iter()
            .map(|verdict| {
                value_of(
                    &during,
                    "canary_check_verdict",
                    &[("check", check), ("verdict", verdict)],
                )
                .unwrap_or_else(|| panic!("no verdict series for {check}"))
            })
            .collect();
        assert_eq!(
            set.iter().sum::<f64>(),
            1.0,
            "one verdict of {check}: {set:?}"
        );
    }
    assert_eq!(
        value_of(&during, "canary_rollbacks_total", &labels),
        Some(0.0)
    );
    assert_eq!(
        value_of(&during, "canary_query_errors_total", &labels),
        Some(0.0)
    );
    assert!(
        during
            .samples
            .iter()
            .any(|s| s.metric == "canary_query_duration_seconds"),
        "the query latency histogram is exposed"
    );

    let status = process.wait_exit(Duration::from_secs(90));
    let report = read_json(&dir.path().join("report.json"));
    assert_eq!(status.code(), Some(0), "promoted: {report:#}");
    assert_eq!(std::fs::read_to_string(&weight_file).unwrap().trim(), "100");

    // GitHub's step summary got the markdown, JUnit its cases.
    let markdown = std::fs::read_to_string(&summary).expect("the step summary was written");
    assert!(
        markdown.contains("## ✅ canary rollout `reports-e2e`: **pass**"),
        "{markdown}"
    );
    assert!(markdown.contains("| step | weight |"), "{markdown}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"4\" failures=\"0\" errors=\"0\""),
        "{xml}"
    );

    // The HTML in the browser: the weight timeline with its steps, both versions per check.
    let measured = measure_in_chromium(&html);
    let weights = measured.chart("chart-weight");
    assert_eq!(
        weights["series"]["weight"]["points"], 4,
        "10, 25, 50, 100: {weights}"
    );
    assert_eq!(weights["boundaries"], 3, "three analysed steps: {weights}");
    assert!(number(&weights["decision_height"]) > 100.0, "{weights}");
    for id in ["chart-errors", "chart-latency"] {
        let chart = measured.chart(id);
        for version in ["canary", "baseline"] {
            assert!(
                number(&chart["series"][version]["points"]) >= 5.0,
                "{id} {version}: {chart}"
            );
        }
    }
    screenshot(&html, &kept.join("report-rollout-screenshot.png"));
}
