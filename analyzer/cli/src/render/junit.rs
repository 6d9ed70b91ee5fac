//! JUnit XML: one test case per check criterion, so CI systems list them natively (and one
//! for the run's verdict when it failed or erred where no check did). Failures
//! carry the evidence; `error` verdicts are errors; `inconclusive` and `nodata` are skipped
//! with their reason (they are not passes, and CI shows them as such).
//!
//! The shape is the one CI systems read (Jenkins' `junit-10.xsd`, which GitLab, GitHub test
//! reporters and Azure follow): `testsuites` (name, tests, failures, errors, time) holding one
//! `testsuite` (name, tests, failures, errors, skipped, time, timestamp, hostname, id,
//! package; `properties`, the `testcase`s, `system-out`), each `testcase` (name, classname,
//! time) with at most one of `failure`, `error`, `skipped` (message, type) and its evidence
//! in `system-out`. The timestamp has no zone, as Ant's schema wants; it is UTC.

use canary_core::judge::{CheckResult, Verdict, fmt_num};
use canary_core::report::Report;

pub(super) fn render(report: &Report) -> String {
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
    // A run that failed or erred where no check did (the metrics or the gateway failing
    // mid-rollout, after every check passed so far) gets a test case of its own: a suite of
    // passes only would show green in CI for a run that exited 3 or 4.
    let overall = match report.verdict {
        Verdict::Fail | Verdict::Error if count(&[Verdict::Fail, Verdict::Error]) == 0 => {
            Some(report.verdict)
        }
        _ => None,
    };
    let tests = report.checks.len() + usize::from(overall.is_some());
    let failures = count(&[Verdict::Fail]) + usize::from(overall == Some(Verdict::Fail));
    let errors = count(&[Verdict::Error]) + usize::from(overall == Some(Verdict::Error));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"canary\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time}\">\n",
    ));
    out.push_str(&format!(
        "  <testsuite name=\"canary {} {}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{}\" time=\"{time}\" timestamp=\"{}\" hostname=\"{}\" id=\"0\" package=\"canary.{}\">\n",
        escape(&report.command),
        escape(&report.service),
        count(&[Verdict::Inconclusive, Verdict::NoData]),
        report.started_at.strftime("%Y-%m-%dT%H:%M:%S"),
        escape(&hostname()),
        escape(&report.service),
    ));
    out.push_str("    <properties>\n");
    let decided = report.decided_at.map(|t| t.to_string()).unwrap_or_default();
    for (name, value) in [
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
    ] {
        out.push_str(&format!(
            "      <property name=\"{name}\" value=\"{}\"/>\n",
            escape(&value)
        ));
    }
    out.push_str("    </properties>\n");
    for check in &report.checks {
        out.push_str(&format!(
            "    <testcase classname=\"canary.{}\" name=\"{}\" time=\"0\">\n",
            escape(&report.service),
            escape(&check.name)
        ));
        let body = evidence_text(check);
        match check.verdict {
            Verdict::Pass => {}
            Verdict::Fail => out.push_str(&format!(
                "      <failure message=\"{}\" type=\"fail\">{}</failure>\n",
                escape(&check.reason),
                escape(&body)
            )),
            Verdict::Error => out.push_str(&format!(
                "      <error message=\"{}\" type=\"error\">{}</error>\n",
                escape(&check.reason),
                escape(&body)
            )),
            Verdict::Inconclusive | Verdict::NoData => out.push_str(&format!(
                "      <skipped message=\"{}: {}\"/>\n",
                check.verdict.as_str(),
                escape(&check.reason)
            )),
        }
        out.push_str(&format!(
            "      <system-out>{}</system-out>\n",
            escape(&body)
        ));
        out.push_str("    </testcase>\n");
    }
    if let Some(verdict) = overall {
        let element = if verdict == Verdict::Fail {
            "failure"
        } else {
            "error"
        };
        out.push_str(&format!(
            "    <testcase classname=\"canary.{}\" name=\"{} verdict\" time=\"0\">\n      <{element} message=\"{}\" type=\"{}\">exit {}</{element}>\n    </testcase>\n",
            escape(&report.service),
            escape(&report.command),
            escape(&report.reason),
            verdict.as_str(),
            report.exit_code,
        ));
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
    out.push_str(&format!(
        "    <system-out>{}</system-out>\n",
        escape(&summary)
    ));
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
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

/// Escapes text for XML attributes and content; drops the control characters XML 1.0
/// cannot carry at all.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
