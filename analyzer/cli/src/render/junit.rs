//! JUnit XML: one test case per check criterion, so CI systems list them natively. Failures
//! carry the evidence; `error` verdicts are errors; `inconclusive` and `nodata` are skipped
//! with their reason (they are not passes, and CI shows them as such).

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
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"canary\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">\n",
        report.checks.len(),
        count(&[Verdict::Fail]),
        count(&[Verdict::Error]),
        count(&[Verdict::Inconclusive, Verdict::NoData]),
    ));
    out.push_str(&format!(
        "  <testsuite name=\"canary {} {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" timestamp=\"{}\">\n",
        escape(&report.command),
        escape(&report.service),
        report.checks.len(),
        count(&[Verdict::Fail]),
        count(&[Verdict::Error]),
        count(&[Verdict::Inconclusive, Verdict::NoData]),
        report.started_at,
    ));
    out.push_str(&format!(
        "    <properties>\n      <property name=\"verdict\" value=\"{}\"/>\n      <property name=\"policy\" value=\"{}\"/>\n      <property name=\"alpha\" value=\"{}\"/>\n    </properties>\n",
        report.verdict.as_str(),
        escape(&report.policy),
        report.alpha
    ));
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
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
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
