//! The reports of `canary analyze` as CI systems and people read them: the JUnit file
//! parsed with a real XML parser and held to the shape CI systems accept (Jenkins'
//! `junit-10.xsd`, which GitLab and the GitHub test reporters follow), the HTML file
//! self-contained with its charts, and the markdown appended to `$GITHUB_STEP_SUMMARY`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use crate::util::{Run, canary, root};

const POLICY: &str = "policies/checkout.yaml";

/// An XML element as the parser saw it.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attributes: BTreeMap<String, String>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attributes
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("<{}> has no {name}: {:?}", self.name, self.attributes))
    }

    fn count(&self, name: &str) -> usize {
        self.attr(name)
            .parse()
            .unwrap_or_else(|e| panic!("<{}> {name} is not a count: {e}", self.name))
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

fn element_of(start: &BytesStart<'_>) -> Element {
    let mut element = Element {
        name: start.name().as_ref().to_owned(),
        ..Element::default()
    };
    for attribute in start.attributes() {
        let attribute = attribute.expect("a well-formed attribute");
        let key = attribute.key.as_ref().to_owned();
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .expect("an attribute value that unescapes")
            .into_owned();
        assert!(
            element.attributes.insert(key.clone(), value).is_none(),
            "attribute {key} twice on <{}>",
            element.name
        );
    }
    element
}

/// Parses a whole document with quick-xml into a tree; any well-formedness error fails.
fn parse_xml(text: &str) -> Element {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) => stack.push(element_of(&start)),
            Event::Empty(start) => {
                let element = element_of(&start);
                stack.last_mut().unwrap().children.push(element);
            }
            Event::End(_) => {
                let element = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(element);
            }
            Event::Text(text) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&text.xml_content(XmlVersion::Implicit1_0)),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().expect("a valid reference") {
                    Some(ch) => ch.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&reference)
                        .unwrap_or_else(|| panic!("unknown entity &{};", &*reference))
                        .to_owned(),
                };
                stack.last_mut().unwrap().text.push_str(&resolved);
            }
            Event::CData(_) => panic!("the report escapes its text, it has no CDATA"),
            Event::Decl(_) | Event::Comment(_) => {}
            Event::PI(_) | Event::DocType(_) => panic!("no processing instructions or DTDs"),
            Event::Eof => break,
        }
    }
    let mut document = stack.pop().unwrap();
    assert!(stack.is_empty(), "unclosed elements");
    assert_eq!(document.children.len(), 1, "one root element");
    document.children.pop().unwrap()
}

/// Holds `element` to its schema entry: every attribute allowed, the required ones present.
fn attributes_allowed(element: &Element, allowed: &[&str], required: &[&str]) {
    for name in element.attributes.keys() {
        assert!(
            allowed.contains(&name.as_str()),
            "<{}> may not carry {name} (allowed: {allowed:?})",
            element.name
        );
    }
    for name in required {
        assert!(
            element.attributes.contains_key(*name),
            "<{}> must carry {name}",
            element.name
        );
    }
}

/// `time` as the schema's SUREFIRE_TIME: digits, optionally a decimal part.
fn is_time(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a JUnit document against the shape of `junit-10.xsd` and returns, per test case
/// name, its outcome element (`failure`, `error`, `skipped`, or `passed`) and that element.
fn check_junit_shape(root: &Element) -> BTreeMap<String, (String, Option<&Element>)> {
    assert_eq!(root.name, "testsuites");
    attributes_allowed(
        root,
        &["name", "time", "tests", "failures", "errors", "disabled"],
        &[],
    );
    assert!(
        root.children.iter().all(|c| c.name == "testsuite"),
        "<testsuites> holds only <testsuite>"
    );
    let suites: Vec<&Element> = root.children_named("testsuite").collect();
    assert_eq!(suites.len(), 1, "one suite per report");
    let mut outcomes = BTreeMap::new();
    let (mut tests, mut failures, mut errors, mut skipped) = (0, 0, 0, 0);
    for suite in &suites {
        attributes_allowed(
            suite,
            &[
                "name",
                "tests",
                "failures",
                "errors",
                "group",
                "time",
                "skipped",
                "timestamp",
                "hostname",
                "id",
                "package",
                "file",
                "log",
                "url",
            ],
            &["name", "tests", "failures", "errors"],
        );
        assert!(
            is_time(suite.attr("time")),
            "suite time {}",
            suite.attr("time")
        );
        // Ant's schema: a timestamp without a zone.
        let timestamp = suite.attr("timestamp");
        assert!(
            timestamp.len() == 19 && timestamp.parse::<jiff::civil::DateTime>().is_ok(),
            "timestamp {timestamp} is YYYY-MM-DDTHH:MM:SS"
        );
        let (mut s_failures, mut s_errors, mut s_skipped) = (0, 0, 0);
        for child in &suite.children {
            match child.name.as_str() {
                "properties" => {
                    for property in &child.children {
                        assert_eq!(property.name, "property");
                        attributes_allowed(property, &["name", "value"], &["name", "value"]);
                    }
                }
                "system-out" | "system-err" => {
                    assert!(child.children.is_empty(), "text only in <{}>", child.name)
                }
                "testcase" => {
                    attributes_allowed(
                        child,
                        &["name", "time", "classname", "group"],
                        &["name", "classname", "time"],
                    );
                    assert!(is_time(child.attr("time")), "testcase time");
                    let mut outcome = ("passed".to_owned(), None);
                    for inner in &child.children {
                        match inner.name.as_str() {
                            "failure" | "error" | "skipped" => {
                                attributes_allowed(inner, &["type", "message"], &["message"]);
                                assert_eq!(
                                    outcome.0,
                                    "passed",
                                    "one outcome per test case: {}",
                                    child.attr("name")
                                );
                                outcome = (inner.name.clone(), Some(inner));
                            }
                            "system-out" | "system-err" => {}
                            other => panic!("<testcase> may not hold <{other}>"),
                        }
                    }
                    match outcome.0.as_str() {
                        "failure" => s_failures += 1,
                        "error" => s_errors += 1,
                        "skipped" => s_skipped += 1,
                        _ => {}
                    }
                    assert!(
                        outcomes
                            .insert(child.attr("name").to_owned(), outcome)
                            .is_none(),
                        "test case names are unique"
                    );
                }
                other => panic!("<testsuite> may not hold <{other}>"),
            }
        }
        let cases = suite.children_named("testcase").count();
        assert_eq!(suite.count("tests"), cases, "tests counts the test cases");
        assert_eq!(suite.count("failures"), s_failures);
        assert_eq!(suite.count("errors"), s_errors);
        assert_eq!(suite.count("skipped"), s_skipped);
        tests += cases;
        failures += s_failures;
        errors += s_errors;
        skipped += s_skipped;
    }
    assert_eq!(root.count("tests"), tests);
    assert_eq!(root.count("failures"), failures);
    assert_eq!(root.count("errors"), errors);
    let _ = skipped;
    outcomes
}

fn analyze_to(input: &str, outputs: &[String]) -> Run {
    let mut args = vec!["analyze", "--policy", POLICY, "--input", input, "--quiet"];
    for output in outputs {
        args.extend(["--output", output.as_str()]);
    }
    canary(&args)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn junit_has_the_shape_ci_systems_read_with_one_case_per_criterion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    let run = analyze_to(
        "examples/recordings/errors-3x.json",
        &[format!("junit:{}", path.display())],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let xml = read(&path);
    let document = parse_xml(&xml);
    let outcomes = check_junit_shape(&document);
    let names: Vec<&str> = outcomes.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "errors/baseline",
            "errors/slo",
            "latency/baseline",
            "latency/slo",
            "no-restarts/slo"
        ]
    );
    let (kind, failure) = &outcomes["errors/baseline"];
    assert_eq!(kind, "failure", "{xml}");
    let failure = failure.unwrap();
    assert!(
        failure
            .attr("message")
            .contains("errors 0.798 % vs baseline 0.231 % (≈3.46×)"),
        "{xml}"
    );
    // The failure carries the evidence, one fact a line.
    for fact in [
        "statistics: 36 of 4,512 canary and 31 of 13,437 baseline requests failed; the canary is worse than 1.2× baseline",
        "e-value: 1900",
        "canary n: 4512",
        "baseline events: 31",
        "threshold: 1.2",
    ] {
        assert!(failure.text.contains(fact), "{fact} in {:?}", failure.text);
    }
    assert!(failure.text.contains('\n'), "lines stay lines");
    assert_eq!(
        outcomes["errors/slo"].0, "skipped",
        "inconclusive is skipped"
    );
    assert_eq!(outcomes["latency/slo"].0, "passed");
    assert_eq!(outcomes["no-restarts/slo"].0, "passed");
}

#[test]
fn junit_of_an_empty_recording_skips_every_case_and_still_has_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    let run = analyze_to(
        "examples/recordings/empty.json",
        &[format!("junit:{}", path.display())],
    );
    assert_eq!(run.code, 3, "{}", run.all());
    let document = parse_xml(&read(&path));
    let outcomes = check_junit_shape(&document);
    assert_eq!(outcomes.len(), 5);
    assert!(
        outcomes.values().all(|(kind, _)| kind == "skipped"),
        "{outcomes:?}"
    );
}

/// The SVG groups of one chart: class → (points, whole group text).
fn groups_of<'a>(html: &'a str, chart: &str) -> BTreeMap<String, (usize, &'a str)> {
    let start = html
        .find(&format!("<svg id=\"{chart}\""))
        .unwrap_or_else(|| panic!("no chart {chart}"));
    let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
    let mut groups = BTreeMap::new();
    for part in svg.split("<g class=\"").skip(1) {
        let class = part.split('"').next().unwrap().to_owned();
        let body = &part[..part.find("</g>").unwrap()];
        groups.insert(class, (body.matches("<circle").count(), body));
    }
    groups
}

#[test]
fn html_is_one_self_contained_file_with_charts_and_the_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    let run = analyze_to(
        "examples/recordings/errors-3x.json",
        &[format!("html:{}", path.display())],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let html = read(&path);
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Nothing to fetch: no scripts, no stylesheets or images from elsewhere, and the only
    // URL is the SVG namespace (an identifier, never loaded).
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "src=", "@import", "url(",
    ] {
        assert!(!html.contains(forbidden), "{forbidden} in the report");
    }
    let urls: Vec<&str> = html
        .match_indices("http")
        .map(|(i, _)| &html[i..(i + 30).min(html.len())])
        .collect();
    assert!(
        urls.iter()
            .all(|u| u.starts_with("http://www.w3.org/2000/svg")),
        "{urls:?}"
    );
    // A chart per check, canary and baseline each with a point per tick (40 ticks).
    for chart in ["chart-errors", "chart-latency"] {
        let groups = groups_of(&html, chart);
        assert_eq!(groups["series canary"].0, 40, "{chart} canary points");
        assert_eq!(groups["series baseline"].0, 40, "{chart} baseline points");
        assert!(
            groups["decision"].1.contains("fail decided at +7m 30s"),
            "{chart}"
        );
        assert!(groups.contains_key("bound"), "{chart} shows its SLO bound");
        assert!(groups.contains_key("frame"));
    }
    assert!(
        html.contains("error rate (%)") && html.contains("p95 (ms)"),
        "units"
    );
    assert!(
        html.contains("minutes since 2026-11-22 10:00:00 UTC"),
        "time axis"
    );
    // No rollout: no weight chart.
    assert!(!html.contains("id=\"chart-weight\""));
    // The evidence table: every criterion with its numbers.
    for id in [
        "check-errors-slo",
        "check-errors-baseline",
        "check-latency-slo",
        "check-latency-baseline",
        "check-no-restarts-slo",
    ] {
        assert!(html.contains(&format!("<tr id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("e = 1900"), "the e-value");
    assert!(html.contains("[1.309, +Inf]"), "the interval");
    assert!(html.contains("36/4512"), "the samples");
    assert!(html.contains("id=\"verdict\">FAIL<"), "the verdict");
    assert!(html.contains("<code>1</code>"), "the exit code");
}

#[test]
fn html_of_an_empty_recording_says_there_is_nothing_to_plot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.html");
    let run = analyze_to(
        "examples/recordings/empty.json",
        &[format!("html:{}", path.display())],
    );
    assert_eq!(run.code, 3, "{}", run.all());
    let html = read(&path);
    assert!(html.contains("id=\"no-timeline\""), "the note");
    let groups = groups_of(&html, "chart-errors");
    assert_eq!(groups["series canary"].0, 0);
    assert!(groups["frame"].1.contains("no data points"));
    assert!(groups["decision"].1.contains("inconclusive at the end"));
}

fn analyze_with_step_summary(summary: &Path, outputs: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_canary"));
    command
        .args([
            "analyze",
            "--policy",
            POLICY,
            "--input",
            "examples/recordings/errors-3x.json",
            "--quiet",
        ])
        .current_dir(root())
        .env("GITHUB_STEP_SUMMARY", summary);
    for output in outputs {
        command.args(["--output", output]);
    }
    let output = command.output().expect("run canary");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn markdown_is_appended_to_the_github_step_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("step-summary.md");
    std::fs::write(&summary, "## an earlier step\n").unwrap();
    // Without --output markdown: the summary is written all the same.
    let run = analyze_with_step_summary(&summary, &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    let markdown = dir.path().join("report.md");
    let run = analyze_with_step_summary(&summary, &[&format!("markdown:{}", markdown.display())]);
    assert_eq!(run.code, 1, "{}", run.all());
    let text = read(&summary);
    assert!(text.starts_with("## an earlier step\n"), "appended: {text}");
    let heading = "## ❌ canary analyze `checkout`: **fail**";
    assert_eq!(text.matches(heading).count(), 2, "once per run: {text}");
    assert!(text.contains("| `errors/baseline` | ❌ fail |"), "{text}");
    // The same markdown as --output markdown: writes.
    assert!(text.contains(&read(&markdown)));

    // A summary that cannot be written warns, and the verdict stands.
    let run = analyze_with_step_summary(&dir.path().join("missing/dir/summary.md"), &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("cannot append to $GITHUB_STEP_SUMMARY"),
        "{}",
        run.all()
    );
}

#[test]
fn a_report_that_cannot_be_written_is_a_warning_and_the_verdicts_exit_code_stands() {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("report.json");
    // A path under a regular file can never be created, whoever runs the test (root too).
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let unwritable = blocker.join("report.md");
    let run = analyze_to(
        "examples/recordings/errors-3x.json",
        &[
            format!("markdown:{}", unwritable.display()),
            format!("json:{}", written.display()),
        ],
    );
    assert_eq!(
        run.code,
        1,
        "the canary failed, not the report: {}",
        run.all()
    );
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("report.md"),
        "{}",
        run.all()
    );
    // The report after the one that failed is written all the same.
    let report: serde_json::Value = serde_json::from_str(&read(&written)).unwrap();
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["exit_code"], 1);
}

#[test]
fn reports_are_written_0600_and_0644_when_canary_report_mode_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private.json");
    let run = analyze_to(
        "examples/recordings/errors-3x.json",
        &[format!("json:{}", private.display())],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");

    let shared = dir.path().join("shared.json");
    let output = format!("json:{}", shared.display());
    let args = [
        "analyze",
        "--policy",
        POLICY,
        "--input",
        "examples/recordings/errors-3x.json",
        "--quiet",
        "--output",
        &output,
    ];
    let status = Command::new(env!("CARGO_BIN_EXE_canary"))
        .args(args)
        .current_dir(root())
        .env("CANARY_REPORT_MODE", "0644")
        .env("HOME", dir.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o600, 0o600, "{mode:o}");
    assert_ne!(mode, 0o600, "group/other may read: {mode:o}");
}

/// Every report says why in plain words and the policy's units (%, ms, p95, labelled counts,
/// the comparison as a ratio), with the statistics one line below, α called per criterion and
/// the e-value threshold explained once.
#[test]
fn markdown_html_and_junit_say_why_in_plain_words_and_the_policys_units() {
    let dir = tempfile::tempdir().unwrap();
    let (md, html, junit) = (
        dir.path().join("report.md"),
        dir.path().join("report.html"),
        dir.path().join("report.xml"),
    );
    let run = analyze_to(
        "examples/recordings/errors-3x.json",
        &[
            format!("markdown:{}", md.display()),
            format!("html:{}", html.display()),
            format!("junit:{}", junit.display()),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let (md, html, junit) = (read(&md), read(&html), read(&junit));

    let comparison = "errors 0.798 % vs baseline 0.231 % (≈3.46×); the policy allows up to 20 % more; at least 1.31× with 99.8 % confidence";
    let slo = "errors 0.683 % (82 of 11,999 canary requests failed); the policy allows at most 0.5 %; above it, but not yet with confidence (it may be as low as 0.387 %)";
    let latency = "p95 218 ms (11,999 canary requests); the policy allows at most 300 ms";
    let counts = "36 of 4,512 canary and 31 of 13,437 baseline requests failed";
    let slower = "2,400 of 11,999 canary and 7,006 of 35,769 baseline requests slower than 100 ms";
    // Markdown escapes its punctuation; read it back as a reader sees it.
    let md_text = md.replace('\\', "");
    for said in [comparison, slo, latency, counts, slower] {
        assert!(md_text.contains(said), "markdown lacks {said:?}:\n{md}");
        let escaped = said.replace('&', "&amp;");
        assert!(html.contains(&escaped), "HTML lacks {said:?}");
    }
    // The statistics come below the reason, in small print.
    assert!(
        md_text.contains(&format!(
            "{comparison}<br><sub>{counts}; the canary is worse than 1.2× baseline"
        )),
        "{md}"
    );
    assert!(
        html.contains(&format!(
            "{comparison}<br><small class=\"statistics\">{counts}; "
        )),
        "{html}"
    );
    // α per criterion, and the threshold explained once, with this report's numbers.
    assert!(md_text.contains("α 0.01 (0.002 per criterion)"), "{md}");
    assert!(html.contains("0.01 (0.002 per criterion)"), "{html}");
    let help = "A criterion fails when its e-value reaches 1/α, α being that criterion's share of the policy's false-rollback budget: here 1/0.002 = 500.";
    assert_eq!(md_text.matches(help).count(), 1, "{md}");
    assert_eq!(
        html.matches(&help.replace('\'', "&#39;")).count(),
        1,
        "{html}"
    );
    // JUnit: the plain reason is the failure's message.
    assert!(
        junit.contains(&format!("<failure message=\"{comparison}\"")),
        "{junit}"
    );
    // The terminal summary too.
    let run = canary(&[
        "analyze",
        "--policy",
        POLICY,
        "--input",
        "examples/recordings/errors-3x.json",
    ]);
    assert!(
        run.stdout.contains(comparison) || run.stderr.contains(comparison),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains(counts) || run.stderr.contains(counts),
        "{}",
        run.all()
    );
}

/// `--output FORMAT:-` writes the report to standard output, for every format, and nothing
/// else goes there (the summary moves to standard error), so the output parses as it stands.
#[test]
fn every_format_can_go_to_standard_output_and_stdout_then_holds_only_it() {
    for format in ["json", "markdown", "junit", "html"] {
        let run = canary(&[
            "analyze",
            "--policy",
            POLICY,
            "--input",
            "examples/recordings/errors-3x.json",
            "--output",
            &format!("{format}:-"),
        ]);
        assert_eq!(run.code, 1, "{format}: {}", run.all());
        assert!(
            !root().join("-").exists(),
            "{format}: a file named - was written"
        );
        // The summary went to stderr.
        assert!(
            run.stderr.contains("analyze checkout: FAIL (exit 1)"),
            "{format}: {}",
            run.all()
        );
        let out = &run.stdout;
        match format {
            "json" => {
                let report: serde_json::Value =
                    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
                assert_eq!(report["verdict"], "fail");
            }
            "markdown" => {
                assert!(out.starts_with("## ❌ canary analyze `checkout`"), "{out}");
                assert!(!out.contains("analyze checkout: FAIL"), "{out}");
            }
            "junit" => {
                let root = parse_xml(out);
                assert_eq!(root.name, "testsuites", "{out}");
            }
            _ => {
                assert!(out.starts_with("<!DOCTYPE html>"), "{out}");
                assert!(out.trim_end().ends_with("</html>"), "{out}");
            }
        }
    }
    // Without `-`, the summary stays on stdout.
    let run = canary(&[
        "analyze",
        "--policy",
        POLICY,
        "--input",
        "examples/recordings/errors-3x.json",
    ]);
    assert!(
        run.stdout.contains("analyze checkout: FAIL (exit 1)"),
        "{}",
        run.all()
    );
}

#[test]
fn two_reports_on_standard_output_are_refused_before_anything_runs() {
    for command in [
        &["analyze", "--input", "examples/recordings/errors-3x.json"][..],
        &["rollout"][..],
    ] {
        let mut args: Vec<&str> = command.to_vec();
        args.extend([
            "--policy", POLICY, "--output", "json:-", "--output", "junit:-",
        ]);
        let run = canary(&args);
        assert_eq!(run.code, 2, "{}", run.all());
        assert!(run.stdout.is_empty(), "{}", run.all());
        assert!(
            run.stderr.contains("json:-, junit:-")
                && run.stderr.contains("at most one report can go there"),
            "{}",
            run.all()
        );
    }
}
