//! JUnit XML: one test case per check criterion, so CI systems list them natively. Failures
//! carry the evidence; `error` verdicts are errors; `inconclusive` and `nodata` are skipped
//! with their reason (they are not passes, and CI shows them as such).
//!
//! The shape is the one CI systems read (Jenkins' `junit-10.xsd`, which GitLab, GitHub test
//! reporters and Azure follow): `testsuites` (name, tests, failures, errors, time) holding one
//! `testsuite` (name, tests, failures, errors, skipped, time, timestamp, hostname, id,
//! package; `properties`, the `testcase`s, `system-out`), each `testcase` (name, classname,
//! time) with at most one of `failure`, `error`, `skipped` (message, type) and its evidence
//! in `system-out`. The timestamp has no zone, as Ant's schema wants; it is UTC.

//!
//! The XML is written with quick-xml's writer, which escapes every attribute value and text;
//! what it cannot know — the control characters XML 1.0 cannot carry at all — is dropped
//! first ([`xml_text`]), and line breaks in attributes become `&#10;` so that a message keeps
//! its lines.

use std::io;

use canary_core::judge::{CheckResult, Verdict, fmt_num};
use canary_core::report::{Report, RunVerdict};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

pub(super) fn render(report: &Report) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing to a Vec cannot fail.
    write_report(&mut writer, report).expect("writing XML to memory");
    let mut out = String::from_utf8(writer.into_inner()).expect("the XML is UTF-8");
    out.push('\n');
    out
}

fn write_report(writer: &mut Writer<Vec<u8>>, report: &Report) -> io::Result<()> {
    let count = |v: &[Verdict]| {
        report
            .checks
            .iter()
            .filter(|c| v.contains(&c.verdict))
            .count()
    };
    // The run's length, in seconds (a decimal, as the schema's time wants).
    let seconds = report
        .ended_at
        .duration_since(report.started_at)
        .as_secs_f64()
        .max(0.0);
    let time = format!("{seconds:.3}");
    // A run that failed or erred where no check's own case shows it (the metrics or the
    // gateway failing mid-rollout after every check passed so far) gets a test case of its
    // own: a suite of passes and skips would show green in CI for a run that exited 1 or 4.
    // (An interrupted run says so in its `verdict` property; CI shows the job cancelled.)
    let failing_cases = report
        .checks
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Fail | Verdict::Error))
        .count();
    let overall = match report.verdict {
        RunVerdict::Fail | RunVerdict::Error if failing_cases == 0 => Some(report.verdict),
        _ => None,
    };
    let tests = (report.checks.len() + usize::from(overall.is_some())).to_string();
    let failures =
        (count(&[Verdict::Fail]) + usize::from(overall == Some(RunVerdict::Fail))).to_string();
    let errors =
        (count(&[Verdict::Error]) + usize::from(overall == Some(RunVerdict::Error))).to_string();
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    writer
        .create_element("testsuites")
        .with_attributes([
            ("name", "canary"),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", errors.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|writer| {
            let name = attribute(&format!("canary {} {}", report.command, report.service));
            let timestamp = report.started_at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            let hostname = attribute(&hostname());
            let package = attribute(&format!("canary.{}", report.service));
            let skipped = count(&[Verdict::Inconclusive, Verdict::NoData]).to_string();
            writer
                .create_element("testsuite")
                .with_attributes([
                    ("name", name.as_str()),
                    ("tests", tests.as_str()),
                    ("failures", failures.as_str()),
                    ("errors", errors.as_str()),
                    ("skipped", skipped.as_str()),
                    ("time", time.as_str()),
                    ("timestamp", timestamp.as_str()),
                    ("hostname", hostname.as_str()),
                    ("id", "0"),
                    ("package", package.as_str()),
                ])
                .write_inner_content(|writer| write_suite(writer, report, overall))?;
            Ok(())
        })?;
    Ok(())
}

fn write_suite(
    writer: &mut Writer<Vec<u8>>,
    report: &Report,
    overall: Option<RunVerdict>,
) -> io::Result<()> {
    let decided = report.decided_at.map(|t| t.to_string()).unwrap_or_default();
    let properties = [
        ("verdict", report.verdict.as_str().to_owned()),
        ("exit_code", report.exit_code.to_string()),
        ("command", report.command.clone()),
        ("service", report.service.clone()),
        ("policy", report.policy.clone()),
        ("source", report.source.clone()),
        ("alpha", report.alpha.to_string()),
        ("alpha_per_check", report.alpha_per_check.to_string()),
        ("started_at", report.started_at.to_string()),
        ("ended_at", report.ended_at.to_string()),
        ("decided_at", decided),
    ];
    writer
        .create_element("properties")
        .write_inner_content(|writer| {
            for (name, value) in &properties {
                writer
                    .create_element("property")
                    .with_attributes([("name", *name), ("value", attribute(value).as_str())])
                    .write_empty()?;
            }
            Ok(())
        })?;
    for check in &report.checks {
        let service = attribute(&format!("canary.{}", report.service));
        let name = attribute(&check.name);
        writer
            .create_element("testcase")
            .with_attributes([
                ("classname", service.as_str()),
                ("name", name.as_str()),
                ("time", "0"),
            ])
            .write_inner_content(|writer| write_case(writer, check))?;
    }
    if let Some(verdict) = overall {
        let service = attribute(&format!("canary.{}", report.service));
        let name = attribute(&format!("{} verdict", report.command));
        let element = if verdict == RunVerdict::Fail {
            "failure"
        } else {
            "error"
        };
        let reason = attribute(&report.reason);
        let exit = format!("exit {}", report.exit_code);
        writer
            .create_element("testcase")
            .with_attributes([
                ("classname", service.as_str()),
                ("name", name.as_str()),
                ("time", "0"),
            ])
            .write_inner_content(|writer| {
                writer
                    .create_element(element)
                    .with_attributes([("message", reason.as_str()), ("type", verdict.as_str())])
                    .write_text_content(BytesText::new(&exit))?;
                Ok(())
            })?;
    }
    let mut summary = format!(
        "{} {}: {} (exit {}): {}",
        report.command,
        report.service,
        report.verdict.as_str(),
        report.exit_code,
        report.reason
    );
    for warning in &report.warnings {
        summary.push_str(&format!("\nwarning: {warning}"));
    }
    writer
        .create_element("system-out")
        .write_text_content(BytesText::new(&xml_text(&summary)))?;
    Ok(())
}

fn write_case(writer: &mut Writer<Vec<u8>>, check: &CheckResult) -> io::Result<()> {
    let body = xml_text(&evidence_text(check));
    let reason = attribute(&check.reason);
    let outcome = match check.verdict {
        Verdict::Pass => None,
        Verdict::Fail => Some(("failure", "fail", reason, true)),
        Verdict::Error => Some(("error", "error", reason, true)),
        Verdict::Inconclusive | Verdict::NoData => Some((
            "skipped",
            check.verdict.as_str(),
            attribute(&format!("{}: {}", check.verdict.as_str(), check.reason)),
            false,
        )),
    };
    if let Some((element, kind, message, with_body)) = outcome {
        let element = writer
            .create_element(element)
            .with_attributes([("message", message.as_str()), ("type", kind)]);
        if with_body {
            element.write_text_content(BytesText::new(&body))?;
        } else {
            element.write_empty()?;
        }
    }
    writer
        .create_element("system-out")
        .write_text_content(BytesText::new(&body))?;
    Ok(())
}

/// This machine's name, for the suite's `hostname` (`localhost` if it cannot be read).
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn evidence_text(check: &CheckResult) -> String {
    let e = &check.evidence;
    let mut lines = vec![
        format!("verdict: {}", check.verdict.as_str()),
        format!("reason: {}", check.reason),
        format!("statistics: {}", check.statistics),
        format!("test: {}", e.test),
        format!("measure: {}", e.measure),
    ];
    let mut add = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            lines.push(format!("{name}: {value}"));
        }
    };
    add("estimate", e.estimate.map(fmt_num));
    add("baseline", e.baseline_estimate.map(fmt_num));
    add(
        "interval",
        e.interval
            .map(|[lo, hi]| format!("[{}, {}]", fmt_num(lo), fmt_num(hi))),
    );
    add("confidence", e.confidence.map(fmt_num));
    add("e-value", e.e_value.map(fmt_num));
    add("p-value", e.p_value.map(fmt_num));
    add("threshold", e.threshold.map(fmt_num));
    add("canary n", e.canary_n.map(|n| n.to_string()));
    add("canary events", e.canary_events.map(|n| n.to_string()));
    add("baseline n", e.baseline_n.map(|n| n.to_string()));
    add("baseline events", e.baseline_events.map(|n| n.to_string()));
    add("alpha", Some(fmt_num(e.alpha)));
    lines.join("\n")
}

/// Text XML 1.0 can carry: the control characters it cannot carry at all dropped (tab, line
/// feed and carriage return stay).
fn xml_text(text: &str) -> String {
    text.chars()
        .filter(|&c| matches!(c, '\t' | '\n' | '\r') || (c as u32) >= 0x20)
        .collect()
}

/// An attribute value: [`xml_text`], its line breaks and tabs as spaces (a parser would
/// normalise them to spaces anyway).
fn attribute(text: &str) -> String {
    xml_text(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{attribute, xml_text};

    #[test]
    fn drops_what_xml_cannot_carry() {
        assert_eq!(xml_text("a<b & \"c\"\u{1}\n"), "a<b & \"c\"\n");
        assert_eq!(attribute("a\nb\u{1}"), "a b");
    }
}
