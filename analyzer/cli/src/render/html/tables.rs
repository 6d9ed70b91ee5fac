//! The tables: the evidence behind each check's verdict, and the steps.

use std::fmt::Write as _;

use canary_core::judge::{Evidence, fmt_num};
use canary_core::report::Report;

use super::{esc, slug};

pub(super) fn evidence_table(out: &mut String, report: &Report) {
    out.push_str(
        "<section id=\"evidence\">\n<h2>Evidence</h2>\n<div class=\"scroll\"><table class=\"evidence\">\n\
         <thead><tr><th>check</th><th>verdict</th><th>estimate</th><th>interval</th>\
         <th>e-value / p-value</th><th>threshold</th><th>samples<br><small>events/n</small></th>\
         <th>reason</th></tr></thead>\n<tbody>\n",
    );
    if report.checks.is_empty() {
        out.push_str("<tr><td colspan=\"8\" class=\"note\">no check was judged</td></tr>\n");
    }
    for check in &report.checks {
        let e = &check.evidence;
        let verdict = check.verdict.as_str();
        let _ = writeln!(
            out,
            "<tr id=\"check-{}\" class=\"verdict-{verdict}\"><td class=\"check\"><code>{}</code>\
             {}</td>\
             <td><span class=\"badge verdict-{verdict}\">{verdict}</span></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            slug(&check.name),
            esc(&check.name),
            method(e),
            opt(
                e.estimate,
                e.baseline_estimate
                    .map(|b| format!("baseline {}", fmt_num(b)))
            ),
            interval(e),
            statistic(e),
            e.threshold.map_or_else(|| "—".to_owned(), fmt_num),
            samples(e),
            reason(check),
        );
    }
    out.push_str("</tbody>\n</table></div>\n");
    if report.checks.iter().any(|c| c.evidence.e_value.is_some()) {
        let _ = writeln!(
            out,
            "<p class=\"note\" id=\"e-value-help\">{}</p>",
            esc(&crate::render::e_value_help(report))
        );
    }
    out.push_str("</section>\n");
}

pub(super) fn steps_table(out: &mut String, report: &Report) {
    if report.steps.is_empty() {
        return;
    }
    out.push_str(
        "<section id=\"steps\">\n<h2>Steps</h2>\n<div class=\"scroll\"><table class=\"steps\">\n\
         <thead><tr><th>step</th><th>weight</th><th>started</th><th>ended</th><th>decision</th>\
         <th>canary requests</th></tr></thead>\n<tbody>\n",
    );
    for step in &report.steps {
        let _ = writeln!(
            out,
            "<tr class=\"decision-{}\"><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>\
             <td><strong>{}</strong>: {}</td><td class=\"num\">{}</td></tr>",
            slug(&step.decision),
            step.index + 1,
            // A routed step's weight is 0: what it routed is the canary's traffic.
            match &step.route {
                Some(route) => esc(&route.to_string()),
                None => format!("{} %", step.weight),
            },
            esc(&step.started_at.to_string()),
            step.ended_at
                .map_or_else(|| "—".to_owned(), |t| esc(&t.to_string())),
            esc(&step.decision),
            esc(&step.reason),
            step.canary_requests
                .map_or_else(|| "—".to_owned(), |n| n.to_string()),
        );
    }
    out.push_str("</tbody>\n</table></div>\n</section>\n");
}

/// The plain reason, and the statistics below it in small print.
fn reason(check: &canary_core::judge::CheckResult) -> String {
    if check.statistics.is_empty() {
        esc(&check.reason)
    } else {
        format!(
            "{}<br><small class=\"statistics\">{}</small>",
            esc(&check.reason),
            esc(&check.statistics)
        )
    }
}

/// The test and what it measured, under the check's name.
fn method(e: &Evidence) -> String {
    let parts: Vec<&str> = [e.test.as_str(), e.measure.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("<small>{}</small>", esc(&parts.join("; ")))
    }
}

fn opt(x: Option<f64>, note: Option<String>) -> String {
    match (x, note) {
        (Some(x), Some(note)) => format!("{}<br><small>{}</small>", fmt_num(x), esc(&note)),
        (Some(x), None) => fmt_num(x),
        _ => "—".to_owned(),
    }
}

pub(super) fn interval(e: &Evidence) -> String {
    match (e.interval, e.confidence) {
        (Some([lo, hi]), Some(c)) => format!(
            "[{}, {}]<br><small>{} % confidence</small>",
            fmt_num(lo),
            fmt_num(hi),
            fmt_num(c * 100.0)
        ),
        (Some([lo, hi]), None) => format!("[{}, {}]", fmt_num(lo), fmt_num(hi)),
        _ => "—".to_owned(),
    }
}

fn statistic(e: &Evidence) -> String {
    match (e.e_value, e.p_value) {
        (Some(ev), _) => format!(
            "e = {}<br><small>fails at {}</small>",
            fmt_num(ev),
            fmt_num(1.0 / e.alpha)
        ),
        (None, Some(p)) => format!("p = {}", fmt_num(p)),
        _ => "—".to_owned(),
    }
}

pub(super) fn samples(e: &Evidence) -> String {
    format!(
        "{}<br><small>baseline</small> {}",
        crate::render::sample_count(e.canary_n, e.canary_events),
        crate::render::sample_count(e.baseline_n, e.baseline_events)
    )
}
