//! HTML: one self-contained file a person opens in a browser — inline CSS, inline SVG charts
//! drawn with plotters, no scripts and no external URLs, so it works as a CI artifact, in a
//! mail attachment or offline.
//!
//! It shows the run's header (service, verdict, exit code, policy, source, α, times), a chart
//! per check of the canary against the baseline over time (error rate in percent, the latency
//! quantile in milliseconds, with the check's absolute bound when it has one), the weight
//! timeline with its step boundaries, the decision marked on every chart at the time it was
//! made, the evidence table and the steps.
//!
//! The SVG is built in layers so that every part carries a stable id or class a test (or a
//! stylesheet) can find: each chart is `<svg id="chart-NAME" class="chart …">`, its series
//! are `<g class="series canary">`, `<g class="series baseline">` (`series weight` on the
//! weight chart) with one `<circle>` per data point, the decision is `<g class="decision">`,
//! an absolute bound `<g class="bound">`, step boundaries `<g class="step-boundary">`. Each
//! layer is drawn by plotters on the same coordinate system, so they line up exactly.
//!
//! [`page`] writes the document, [`charts`] the SVG charts, [`tables`] the evidence and the
//! steps; the stylesheet is `style.css`, included at build time.

mod charts;
mod page;
mod tables;

pub(super) use page::render;

/// A name safe in an id or class: letters, digits and `-`.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// Escapes text for HTML content and attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_escapes() {
        assert_eq!(slug("errors/baseline"), "errors-baseline");
        assert_eq!(slug("P95 latency!"), "p95-latency");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
