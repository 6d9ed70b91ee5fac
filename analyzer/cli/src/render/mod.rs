//! Reports in every format: the terminal summary, JSON (the contract), markdown, JUnit and
//! HTML; and the markdown summary GitHub Actions shows on a job's page.

mod html;
mod junit;
mod markdown;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use canary_core::judge::fmt_num;
use canary_core::report::Report;
use canary_core::secret::{redact_value, redacted};

/// A report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Markdown,
    Junit,
    Html,
}

/// `FORMAT:PATH`, as `--output` takes it; the path `-` is standard output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutputSpec {
    pub(crate) format: Format,
    pub(crate) path: PathBuf,
}

impl FromStr for OutputSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (format, path) = text
            .split_once(':')
            .ok_or_else(|| format!("expected FORMAT:PATH (e.g. json:report.json), not {text:?}"))?;
        let format = match format {
            "json" => Format::Json,
            "markdown" | "md" => Format::Markdown,
            "junit" => Format::Junit,
            "html" => Format::Html,
            other => {
                return Err(format!(
                    "unknown report format {other:?}; expected json, markdown, junit or html"
                ));
            }
        };
        if path.is_empty() {
            return Err("the report path is empty".to_owned());
        }
        Ok(OutputSpec {
            format,
            path: PathBuf::from(path),
        })
    }
}

impl OutputSpec {
    /// Whether this report goes to standard output (`FORMAT:-`; a file named `-` is `./-`).
    pub(crate) fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }
}

/// Refuses more than one report on standard output: two documents in one stream are neither
/// (checked before anything runs, so nothing was changed).
pub(crate) fn check_outputs(outputs: &[OutputSpec]) -> Result<(), canary_core::Error> {
    let on_stdout: Vec<String> = outputs
        .iter()
        .filter(|o| o.is_stdout())
        .map(|o| format!("{}:-", o.format.name()))
        .collect();
    if on_stdout.len() > 1 {
        return Err(canary_core::Error::Usage(format!(
            "{} all ask for standard output; at most one report can go there: write the others to files (e.g. --output {}:report.{})",
            on_stdout.join(", "),
            outputs
                .iter()
                .filter(|o| o.is_stdout())
                .nth(1)
                .map_or("json", |o| o.format.name()),
            outputs
                .iter()
                .filter(|o| o.is_stdout())
                .nth(1)
                .map_or("json", |o| o.format.extension()),
        )));
    }
    Ok(())
}

/// Prints the terminal summary: on standard output, or on standard error when a report
/// takes standard output (which then carries nothing but that report, so it parses).
pub(crate) fn print_summary(report: &Report, outputs: &[OutputSpec]) {
    // A live view still up would be glued to the summary's first line, or erase it.
    crate::progress::end_live_view();
    let to_stderr = outputs.iter().any(OutputSpec::is_stdout);
    // On a terminal, each entry is wrapped at word boundaries to its width (the terminal
    // would otherwise cut words in two and run them into the columns); in a pipeline each
    // entry stays one line, for grep.
    let term = if to_stderr {
        console::Term::stderr()
    } else {
        console::Term::stdout()
    };
    let width = term
        .is_term()
        .then(|| term.size_checked())
        .flatten()
        .map(|(_, cols)| usize::from(cols).saturating_sub(1));
    let text = summary(report, width);
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

impl Format {
    /// The name `--output` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Markdown => "markdown",
            Format::Junit => "junit",
            Format::Html => "html",
        }
    }

    /// The usual file extension.
    fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Markdown => "md",
            Format::Junit => "xml",
            Format::Html => "html",
        }
    }
}

/// Writes a report in the format asked, atomically (a reader never sees half a file).
/// Every text in it is redacted of every secret the process holds first, and the rendered
/// text again (the last pass before a file: nothing written can carry a secret, whatever
/// path its text took).
pub(crate) fn write(report: &Report, spec: &OutputSpec) -> anyhow::Result<()> {
    let report = &redact_value(report);
    let text = match spec.format {
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
        Format::Markdown => markdown::render(report),
        Format::Junit => junit::render(report),
        Format::Html => html::render(report),
    };
    let text = redacted(&text);
    if spec.is_stdout() {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        return out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("writing the report to standard output");
    }
    canary_gateways::write_durably_with_mode(&spec.path, text.as_bytes(), report_mode()?)
        .with_context(|| format!("writing the report {}", spec.path.display()))
}

/// The variable that gives reports other permission bits than the default 0600, in octal
/// (`CANARY_REPORT_MODE=0644` for reports a CI system uploads or other users read).
const REPORT_MODE: &str = "CANARY_REPORT_MODE";

/// The permission bits of report files: 0600, or `$CANARY_REPORT_MODE`.
fn report_mode() -> anyhow::Result<u32> {
    match std::env::var(REPORT_MODE) {
        Err(_) => Ok(0o600),
        Ok(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "${REPORT_MODE} is {text:?}; expected octal permission bits such as 0644"
                )
            }),
    }
}

/// The variable GitHub Actions sets to the file whose markdown it shows on the job's page.
const STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";

/// Writes every report asked for with `--output`, and appends the markdown report to
/// `$GITHUB_STEP_SUMMARY` when that is set (whether or not markdown was asked for). One
/// report that cannot be written does not keep the others from being written; the error
/// names every one that failed.
pub(crate) fn write_all(report: &Report, outputs: &[OutputSpec]) -> anyhow::Result<()> {
    let failed: Vec<String> = outputs
        .iter()
        .filter_map(|output| write(report, output).err())
        .map(|err| format!("{err:#}"))
        .collect();
    if let Some(path) = std::env::var_os(STEP_SUMMARY).filter(|p| !p.is_empty()) {
        // The summary is a courtesy: failing to write it must not change the verdict.
        if let Err(err) = append_step_summary(report, Path::new(&path)) {
            eprintln!(
                "warning: cannot append to ${STEP_SUMMARY} ({}): {err}",
                Path::new(&path).display()
            );
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(failed.join("; ")))
    }
}

/// Writes every report asked for after a run has decided: a report that cannot be written
/// is a warning on stderr, never a change of the run's exit code (the decision stands and
/// the gateway is where the decision put it).
pub(crate) fn write_all_or_warn(report: &Report, outputs: &[OutputSpec]) {
    if let Err(err) = write_all(report, outputs) {
        eprintln!("warning: {}", redacted(&format!("{err:#}")));
    }
}

/// Appends the markdown report to a step summary file (other steps may have written to it
/// before; a blank line keeps the two apart).
fn append_step_summary(report: &Report, path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let text = redacted(&markdown::render(&redact_value(report)));
    file.write_all(format!("\n{text}\n").as_bytes())
}

/// One version's sample in a report's evidence table: `events/n`, `n`, or `—`.
fn sample_count(n: Option<u64>, events: Option<u64>) -> String {
    match (n, events) {
        (Some(n), Some(k)) => format!("{k}/{n}"),
        (Some(n), None) => n.to_string(),
        _ => "—".to_owned(),
    }
}

/// The short human summary printed at the end of `analyze` and `rollout`: each entry on one
/// line, or wrapped at word boundaries to `width` columns when given (a terminal): a criterion's continuation lines start under its reason, the others' two
/// columns in, so no word is cut and nothing runs into the name and verdict columns.
pub(crate) fn summary(report: &Report, width: Option<usize>) -> String {
    let report = &redact_value(report);
    let mut out = String::new();
    let mut push = |prefix: String, text: &str, indent: Option<usize>| {
        out.push_str(&wrap_entry(&prefix, text, indent, width));
    };
    push(
        format!(
            "{} {}: {} (exit {}) — ",
            report.command,
            report.service,
            report.verdict.as_str().to_uppercase(),
            report.exit_code,
        ),
        &one_line(&report.reason),
        Some(2),
    );
    let name_width = report
        .checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    for check in &report.checks {
        push(
            format!(
                "  {:name_width$}  {:12}  ",
                check.name,
                check.verdict.as_str()
            ),
            &one_line(&check.reason),
            None,
        );
        // The statistics one line below the plain reason, for who wants them.
        let statistics = if check.statistics.is_empty() {
            evidence_numbers(&check.evidence)
        } else {
            one_line(&check.statistics)
        };
        if !statistics.is_empty() {
            push(
                format!("  {:name_width$}  {:12}  ", "", ""),
                &statistics,
                None,
            );
        }
    }
    if let Some(at) = report.decided_at {
        push(String::new(), &format!("decided at {at}"), Some(2));
    }
    if let Some(seconds) = report.canary_exposed_seconds {
        push(
            String::new(),
            &format!("the canary served traffic for {seconds:.1} s"),
            Some(2),
        );
    }
    for warning in &report.warnings {
        push("warning: ".to_owned(), &one_line(warning), Some(2));
    }
    out
}

/// One entry of the summary: `prefix` then `text`, ending in a newline. With a `width`, the
/// text is broken at spaces so that no line is wider (a single word wider than the room is
/// left whole: cut, it would say something else), continuation lines indented by `indent`
/// columns, or by the prefix's width when `None` (unless that leaves under 20 columns).
fn wrap_entry(prefix: &str, text: &str, indent: Option<usize>, width: Option<usize>) -> String {
    let Some(width) = width else {
        return format!("{prefix}{text}\n");
    };
    let prefix_width = prefix.chars().count();
    let indent = match indent {
        Some(indent) => indent,
        None if width.saturating_sub(prefix_width) >= 20 => prefix_width,
        None => 4,
    };
    let mut out = String::from(prefix);
    let mut column = prefix_width;
    let mut first_on_line = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if !first_on_line && column + 1 + len > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            column = indent;
            first_on_line = true;
        }
        if !first_on_line {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
        first_on_line = false;
    }
    out.push('\n');
    out
}

/// The numbers of a result without a statistics sentence: its counts, interval, e-value or
/// p-value.
fn evidence_numbers(e: &canary_core::judge::Evidence) -> String {
    let mut numbers = Vec::new();
    if let (Some(n), Some(events)) = (e.canary_n, e.canary_events) {
        numbers.push(format!("canary {events}/{n}"));
    } else if let Some(n) = e.canary_n {
        numbers.push(format!("canary n={n}"));
    }
    if let (Some(n), Some(events)) = (e.baseline_n, e.baseline_events) {
        numbers.push(format!("baseline {events}/{n}"));
    } else if let Some(n) = e.baseline_n {
        numbers.push(format!("baseline n={n}"));
    }
    if let Some([lo, hi]) = e.interval {
        numbers.push(format!("interval [{}, {}]", fmt_num(lo), fmt_num(hi)));
    }
    if let Some(ev) = e.e_value {
        numbers.push(format!("e-value {}", fmt_num(ev)));
    }
    if let Some(p) = e.p_value {
        numbers.push(format!("p {}", fmt_num(p)));
    }
    numbers.join(", ")
}

/// What an e-value is and why its threshold is what it is, said once in every report that
/// shows one (docs/statistics.md says it at length).
pub(crate) fn e_value_help(report: &Report) -> String {
    format!(
        "An e-value measures the evidence that the canary is worse than the policy allows: it \
         stays around 1 or below for a healthy canary and grows when the canary is worse. A \
         criterion fails when its e-value reaches 1/α, α being that criterion's share of the \
         policy's false-rollback budget: here 1/{} = {}. Checked at every tick, this keeps the \
         chance of rolling back a healthy canary under {} however often it is looked at.",
        fmt_num(report.alpha_per_check),
        canary_core::judge::plain_num(1.0 / report.alpha_per_check),
        fmt_num(report.alpha)
    )
}

/// Outside text on one terminal line: line breaks and other control characters become
/// spaces, so that no line of it can pose as canary's own output, a heading or a CI
/// workflow command (`::set-output`), and no escape sequence reaches the terminal.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_entry_wraps_at_words_under_its_own_column() {
        let prefix = "  errors/baseline  fail          ";
        let text = "errors 6.7 % vs baseline 0.18 % (≈36×); the policy allows no increase; at least 1.09× with 99.75 % confidence";
        let wrapped = wrap_entry(prefix, text, None, Some(79));
        let lines: Vec<&str> = wrapped.lines().collect();
        assert!(lines.len() > 1, "{wrapped}");
        for line in &lines {
            assert!(line.chars().count() <= 79, "{line}");
        }
        for line in &lines[1..] {
            assert!(line.starts_with(&" ".repeat(prefix.len())), "{line}");
            assert!(!line[prefix.len()..].starts_with(' '), "{line}");
        }
        // Every word is there, in order, none cut.
        let words: Vec<&str> = wrapped.split_whitespace().collect();
        let expected: Vec<&str> = prefix
            .split_whitespace()
            .chain(text.split_whitespace())
            .collect();
        assert_eq!(words, expected);
        // Without a width, one line.
        assert_eq!(
            wrap_entry(prefix, text, None, None),
            format!("{prefix}{text}\n")
        );
    }

    #[test]
    fn output_specs_parse_and_refuse() {
        let spec: OutputSpec = "json:out/report.json".parse().unwrap();
        assert_eq!(spec.format, Format::Json);
        assert_eq!(spec.path, PathBuf::from("out/report.json"));
        let spec: OutputSpec = "html:report.html".parse().unwrap();
        assert_eq!(spec.format, Format::Html);
        assert!("pdf:x".parse::<OutputSpec>().is_err());
        assert!("json".parse::<OutputSpec>().is_err());
        assert!("json:".parse::<OutputSpec>().is_err());
        let spec: OutputSpec = "junit:-".parse().unwrap();
        assert!(spec.is_stdout());
        assert!(!"json:./-".parse::<OutputSpec>().unwrap().is_stdout());
    }

    #[test]
    fn at_most_one_report_goes_to_standard_output() {
        let specs = |list: &[&str]| -> Vec<OutputSpec> {
            list.iter().map(|s| s.parse().unwrap()).collect()
        };
        assert!(check_outputs(&specs(&["json:-", "html:r.html", "junit:r.xml"])).is_ok());
        let err = check_outputs(&specs(&["json:-", "junit:-"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("json:-, junit:-"), "{err}");
        assert!(err.contains("--output junit:report.xml"), "{err}");
    }
}
