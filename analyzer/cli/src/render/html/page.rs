//! The page: its head (with the stylesheet, `style.css`), the run's header, then the charts,
//! the tables and the warnings in that order.

use std::fmt::Write as _;

use canary_core::judge::fmt_num;
use canary_core::report::Report;
use jiff::Timestamp;

use super::charts::{TimeAxis, charts, figure};
use super::esc;
use super::tables::{evidence_table, steps_table};

pub(in crate::render) fn render(report: &Report) -> String {
    let axis = TimeAxis::of(report);
    let mut out = String::with_capacity(64 * 1024);
    let title = format!(
        "canary {} {}: {}",
        report.command,
        report.service,
        report.verdict.as_str()
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"canary {}\">\n<title>{}</title>\n<style>\n{STYLE}</style>\n\
         </head>\n<body>\n<main>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    header(&mut out, report);
    out.push_str("<section id=\"charts\">\n<h2>Over time</h2>\n");
    if report.timeline.is_empty() {
        out.push_str(
            "<p class=\"note\" id=\"no-timeline\">This report has no ticks: nothing was read, \
             so there is nothing to plot.</p>\n",
        );
    }
    for chart in charts(report, &axis) {
        figure(&mut out, &chart, report, &axis);
    }
    out.push_str("</section>\n");
    evidence_table(&mut out, report);
    steps_table(&mut out, report);
    if !report.warnings.is_empty() {
        out.push_str("<section id=\"warnings\">\n<h2>Warnings</h2>\n<ul>\n");
        for warning in &report.warnings {
            let _ = writeln!(out, "<li>{}</li>", esc(warning));
        }
        out.push_str("</ul>\n</section>\n");
    }
    let _ = write!(
        out,
        "<footer>Written by canary {} · times in UTC · the same report as JSON: \
         <code>--output json:PATH</code></footer>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn header(out: &mut String, report: &Report) {
    let verdict = report.verdict.as_str();
    let _ = write!(
        out,
        "<header id=\"summary\" class=\"verdict-{verdict}\">\n\
         <p class=\"kicker\">canary {}</p>\n\
         <h1><span class=\"service\">{}</span> <span class=\"badge verdict-{verdict}\" id=\"verdict\">{}</span></h1>\n\
         <p class=\"reason\">{}</p>\n<dl class=\"meta\">\n",
        esc(&report.command),
        esc(&report.service),
        esc(&verdict.to_uppercase()),
        esc(&report.reason)
    );
    let duration = report.ended_at.duration_since(report.started_at);
    let duration = std::time::Duration::try_from(duration)
        .map(|d| humantime::format_duration(std::time::Duration::from_secs(d.as_secs())))
        .map_or_else(|_| "—".to_owned(), |d| d.to_string());
    let mut item = |name: &str, id: &str, value: String| {
        let _ = writeln!(
            out,
            "<div><dt>{name}</dt><dd id=\"meta-{id}\">{value}</dd></div>"
        );
    };
    item(
        "exit code",
        "exit-code",
        format!("<code>{}</code>", report.exit_code),
    );
    item(
        "policy",
        "policy",
        format!("<code>{}</code>", esc(&report.policy)),
    );
    item("source", "source", esc(&report.source));
    item(
        "alpha (false-rollback budget)",
        "alpha",
        format!(
            "{} ({} per criterion)",
            fmt_num(report.alpha),
            fmt_num(report.alpha_per_check)
        ),
    );
    item("started", "started", time(report.started_at));
    item("ended", "ended", time(report.ended_at));
    item("duration", "duration", esc(&duration));
    item(
        "decided",
        "decided",
        report
            .decided_at
            .map_or_else(|| "at the end".to_owned(), time),
    );
    out.push_str("</dl>\n</header>\n");
}

/// A time to the second, in UTC, with the exact instant in its tooltip.
pub(super) fn time(at: Timestamp) -> String {
    format!(
        "<time datetime=\"{at}\" title=\"{at}\">{}</time>",
        at.strftime("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// The page's stylesheet, inline so the file stands alone.
const STYLE: &str = include_str!("style.css");
