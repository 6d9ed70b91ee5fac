//! Markdown: a report that fits a pull-request comment or `$GITHUB_STEP_SUMMARY`.

use canary_core::judge::{Evidence, Verdict, fmt_num};
use canary_core::report::{Report, RunVerdict};

pub(super) fn render(report: &Report) -> String {
    let icon = |v: Verdict| match v {
        Verdict::Pass => "✅",
        Verdict::Fail => "❌",
        Verdict::Inconclusive | Verdict::NoData => "⚠️",
        Verdict::Error => "🛑",
    };
    let run_icon = match report.verdict {
        RunVerdict::Pass => "✅",
        RunVerdict::Fail => "❌",
        RunVerdict::Inconclusive => "⚠️",
        RunVerdict::Error => "🛑",
        RunVerdict::Interrupted => "⏹️",
    };
    let mut out = format!(
        "## {} canary {} `{}`: **{}** (exit {})\n\n{}\n\n",
        run_icon,
        report.command,
        report.service,
        report.verdict.as_str(),
        report.exit_code,
        cell(&report.reason)
    );
    if let Some(manual) = &report.promoted_by_hand {
        out.push_str(&format!(
            "**Promoted by hand** (`canary promote`) at {}, not by the analysis{}\n\n",
            manual.at,
            if manual.undecided.is_empty() {
                String::new()
            } else {
                format!("; still undecided: {}", cell(&manual.undecided.join(", ")))
            }
        ));
    }
    out.push_str(&format!(
        "Policy `{}` · source {} · α {} ({} per criterion) · {} → {}{}\n\n",
        report.policy,
        cell(&report.source),
        fmt_num(report.alpha),
        fmt_num(report.alpha_per_check),
        report.started_at,
        report.ended_at,
        report
            .decided_at
            .map(|at| format!(" · decided at {at}"))
            .unwrap_or_default()
    ));
    out.push_str(
        "| check | verdict | estimate | interval | e-value / p | threshold | samples | reason |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for check in &report.checks {
        let e = &check.evidence;
        out.push_str(&format!(
            "| `{}` | {} {} | {} | {} | {} | {} | {} | {} |\n",
            check.name,
            icon(check.verdict),
            check.verdict.as_str(),
            opt(e.estimate),
            e.interval
                .map(|[lo, hi]| format!("[{}, {}]", fmt_num(lo), fmt_num(hi)))
                .unwrap_or_else(|| "—".to_owned()),
            statistic(e),
            opt(e.threshold),
            samples(e),
            reason_cell(check)
        ));
    }
    if !report.steps.is_empty() {
        out.push_str("\n| step | weight | started | ended | decision | canary requests |\n|---|---|---|---|---|---|\n");
        for step in &report.steps {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                step.index + 1,
                // A router that approximates the weight (replica counts) says what it got.
                // A routed step's weight is 0: what it routed is the canary's traffic.
                match (&step.route, &step.achieved) {
                    (Some(route), _) => cell(&route.to_string()),
                    (None, Some(achieved)) => {
                        format!("{} % asked, {achieved} achieved", step.weight)
                    }
                    (None, None) => format!("{} %", step.weight),
                },
                step.started_at,
                step.ended_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "—".to_owned()),
                cell(&format!("{}: {}", step.decision, step.reason)),
                step.canary_requests
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "—".to_owned()),
            ));
        }
    }
    for warning in &report.warnings {
        out.push_str(&format!("\n> warning: {}\n", cell(warning)));
    }
    if report.checks.iter().any(|c| c.evidence.e_value.is_some()) {
        out.push_str(&format!(
            "\n<sub>{}</sub>\n",
            cell(&super::e_value_help(report))
        ));
    }
    out
}

/// The plain reason, and the statistics below it in small print.
fn reason_cell(check: &canary_core::judge::CheckResult) -> String {
    if check.statistics.is_empty() {
        cell(&check.reason)
    } else {
        format!(
            "{}<br><sub>{}</sub>",
            cell(&check.reason),
            cell(&check.statistics)
        )
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(fmt_num).unwrap_or_else(|| "—".to_owned())
}

fn statistic(e: &Evidence) -> String {
    match (e.e_value, e.p_value) {
        (Some(ev), _) => format!("e = {} (fails at {})", fmt_num(ev), fmt_num(1.0 / e.alpha)),
        (None, Some(p)) => format!("p = {}", fmt_num(p)),
        _ => "—".to_owned(),
    }
}

fn samples(e: &Evidence) -> String {
    format!(
        "{} vs {}",
        super::sample_count(e.canary_n, e.canary_events),
        super::sample_count(e.baseline_n, e.baseline_events)
    )
}

/// Outside text as literal markdown text, safe in a table cell or a line of its own: HTML's
/// `<`, `>` and `&` as entities (no tag, comment or entity of the text's reaches the page),
/// every character markdown gives a meaning to backslash-escaped (no link, image, emphasis,
/// code span, heading or table column), and line breaks and other control characters as
/// spaces (no new block: a heading, a code fence, a list).
pub(super) fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '{' | '}' | '!' | '#' | '|' | '~'
            | '+' | '-' | '=' | ':' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn outside_text_is_literal_text_in_markdown() {
        assert_eq!(
            cell("<img src=x> ![t](http://e/) | a\n# b `c`"),
            "&lt;img src\\=x&gt; \\!\\[t\\]\\(http\\://e/\\) \\| a \\# b \\`c\\`"
        );
        assert_eq!(cell("plain words, 42 ok"), "plain words, 42 ok");
    }
}
