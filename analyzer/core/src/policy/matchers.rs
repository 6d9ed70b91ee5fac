//! Label matchers and query templates, as a policy writes them.
//!
//! Matchers are written in PromQL's own syntax (`job="checkout", code=~"5.."`) because that is
//! what SREs already know; they are parsed here into [`LabelMatcher`]s so that the metrics
//! crate can render them back with every value escaped, and so that a typo is a lint error
//! rather than a Prometheus 400 in the middle of a rollout.

use std::fmt;

use serde::Serialize;

/// How a label is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (RE2, fully anchored, as Prometheus does it)
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    /// The operator as PromQL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher, e.g. `code=~"5.."`. The value is kept unescaped; renderers escape it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabelMatcher {
    /// The label name (a valid Prometheus label name).
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value, as the label holds it (no PromQL escapes).
    pub value: String,
}

impl LabelMatcher {
    /// An equality matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        LabelMatcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
        }
    }

    /// Whether a label set (as name/value pairs) satisfies this matcher, for the matchers
    /// that need no regular expression engine. Returns `None` for regex matchers.
    pub fn matches_literal(&self, value: Option<&str>) -> Option<bool> {
        let value = value.unwrap_or("");
        match self.op {
            MatchOp::Equal => Some(value == self.value),
            MatchOp::NotEqual => Some(value != self.value),
            MatchOp::Regex | MatchOp::NotRegex => None,
        }
    }
}

impl fmt::Display for LabelMatcher {
    /// PromQL form with the value escaped as a double-quoted string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}\"{}\"",
            self.name,
            self.op.as_str(),
            escape_string(&self.value)
        )
    }
}

/// Escapes a value for a double-quoted PromQL string: backslash, double quote and the
/// control characters. Whatever a policy holds, the rendered string ends where it should.
pub fn escape_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Whether `name` is a valid Prometheus label name.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is a valid Prometheus metric name.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses a comma-separated list of PromQL label matchers, `name op "value"`, values in
/// double or single quotes with PromQL's escapes. An empty string is an empty list.
pub fn parse_matchers(text: &str) -> Result<Vec<LabelMatcher>, String> {
    let mut parser = Parser {
        rest: text.trim(),
        original: text,
    };
    let mut matchers = Vec::new();
    while !parser.rest.is_empty() {
        let matcher = parser.matcher()?;
        check_regex(&matcher)?;
        matchers.push(matcher);
        parser.skip_space();
        if parser.rest.is_empty() {
            break;
        }
        parser.expect(",")?;
        parser.skip_space();
    }
    Ok(matchers)
}

/// Refuses a regex matcher whose pattern does not compile. Prometheus reads RE2 and the
/// `/metrics` scrape source the `regex` crate, both anchored; the two mostly agree, and where
/// they differ (RE2 takes a stray `{` as a literal, `regex` does not) the policy must work
/// with either source, so the stricter one decides — at lint time, not at the first tick.
fn check_regex(matcher: &LabelMatcher) -> Result<(), String> {
    if !matches!(matcher.op, MatchOp::Regex | MatchOp::NotRegex) {
        return Ok(());
    }
    if let Some(construct) = read_differently_by_re2(&matcher.value) {
        return Err(format!(
            "the matcher {matcher} uses {construct}, which Prometheus (Go's RE2) and canary (Rust's regex) read differently; write it without"
        ));
    }
    match regex::Regex::new(&format!("^(?:{})$", matcher.value)) {
        Ok(_) => Ok(()),
        Err(err) => {
            let text = err.to_string();
            // The crate's message draws the pattern with a caret over several lines; its
            // last line says what is wrong.
            let why = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .trim_start_matches("error: ");
            Err(format!(
                "the matcher {matcher} is not a valid regular expression: {why} (escape a literal {{ or }} as \\{{ or \\}})"
            ))
        }
    }
}

/// The first construct of `pattern` that Rust's `regex` crate and Go's RE2 (Prometheus')
/// both accept but read differently, or that only the first accepts: inline flags other than
/// RE2's `i`, `m`, `s`, `U` (`(?x)` makes whitespace insignificant in one and not the other),
/// and inside a character class the set operations `&&`, `--`, `~~` and a nested class `[…]`
/// (literal characters to RE2). Under `canary controller` a shared read evaluates a check's
/// matchers in the controller while the rollout's own query has Prometheus evaluate them, so
/// the two must mean the same (review finding, 2026-12-01).
fn read_differently_by_re2(pattern: &str) -> Option<&'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                i += 2;
                continue;
            }
            '[' if in_class => {
                if chars.get(i + 1) != Some(&':') {
                    return Some("a nested character class `[…[…]…]`");
                }
                // A POSIX class `[:alpha:]`: skip to its closing `:]`.
                while i < chars.len() && !(chars[i] == ':' && chars.get(i + 1) == Some(&']')) {
                    i += 1;
                }
                i += 2;
                continue;
            }
            '[' => {
                in_class = true;
                // A `]` or `^]` right after the opening bracket is a literal.
                if chars.get(i + 1) == Some(&'^') {
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    i += 1;
                }
            }
            ']' if in_class => in_class = false,
            '&' | '-' | '~' if in_class && chars.get(i + 1) == Some(&c) => {
                return Some("a character class set operation (`&&`, `--` or `~~`)");
            }
            '(' if !in_class && chars.get(i + 1) == Some(&'?') => {
                let flags = chars[i + 2..]
                    .iter()
                    .take_while(|f| **f != ':' && **f != ')');
                if flags
                    .clone()
                    .any(|f| !matches!(f, 'i' | 'm' | 's' | 'U' | '-'))
                {
                    return Some("an inline flag other than RE2's i, m, s and U");
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

struct Parser<'a> {
    rest: &'a str,
    original: &'a str,
}

impl Parser<'_> {
    fn at(&self) -> usize {
        self.original.len() - self.rest.len() + 1
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(format!(
                "expected `{token}` at character {} of {:?}",
                self.at(),
                self.original
            )),
        }
    }

    fn matcher(&mut self) -> Result<LabelMatcher, String> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        let name = &self.rest[..end];
        if !is_label_name(name) {
            return Err(format!(
                "expected a label name at character {} of {:?} (matchers look like code=~\"5..\")",
                self.at(),
                self.original
            ));
        }
        self.rest = &self.rest[end..];
        self.skip_space();
        let op = if let Some(rest) = self.rest.strip_prefix("=~") {
            self.rest = rest;
            MatchOp::Regex
        } else if let Some(rest) = self.rest.strip_prefix("!~") {
            self.rest = rest;
            MatchOp::NotRegex
        } else if let Some(rest) = self.rest.strip_prefix("!=") {
            self.rest = rest;
            MatchOp::NotEqual
        } else if let Some(rest) = self.rest.strip_prefix('=') {
            self.rest = rest;
            MatchOp::Equal
        } else {
            return Err(format!(
                "expected one of = != =~ !~ after `{name}` in {:?}",
                self.original
            ));
        };
        self.skip_space();
        let value = self.quoted()?;
        Ok(LabelMatcher {
            name: name.to_owned(),
            op,
            value,
        })
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = match self.rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                return Err(format!(
                    "expected a quoted value at character {} of {:?}",
                    self.at(),
                    self.original
                ));
            }
        };
        let mut value = String::new();
        let mut chars = self.rest[1..].char_indices();
        while let Some((i, ch)) = chars.next() {
            match ch {
                c if c == quote => {
                    self.rest = &self.rest[1 + i + 1..];
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, 'r')) => value.push('\r'),
                    Some((_, c @ ('\\' | '"' | '\''))) => value.push(c),
                    // RE2 escapes such as `\.` or `\d` pass through to the regex unchanged.
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => break,
                },
                c => value.push(c),
            }
        }
        Err(format!("unterminated string in {:?}", self.original))
    }
}

/// A query template from a policy: PromQL with `{{variable}}` placeholders that the metrics
/// source fills with validated names and escaped values, never with raw policy text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueryTemplate {
    /// The template as written.
    pub source: String,
    /// The template split into literal text and variables.
    pub parts: Vec<TemplatePart>,
}

/// A piece of a [`QueryTemplate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum TemplatePart {
    /// PromQL written by the policy's author.
    Literal(String),
    /// A placeholder.
    Variable(TemplateVariable),
}

/// The placeholders a query template may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TemplateVariable {
    /// `{{label}}`: the label that tells versions apart (a validated label name).
    Label,
    /// `{{canary}}`: the canary's label value, escaped for use inside double quotes.
    Canary,
    /// `{{baseline}}`: the baseline's label value, escaped for use inside double quotes.
    Baseline,
    /// `{{selector}}`: the common matchers, rendered and escaped, without braces.
    Selector,
    /// `{{canary_selector}}`: the common matchers plus the canary's version matcher.
    CanarySelector,
    /// `{{baseline_selector}}`: the common matchers plus the baseline's version matcher.
    BaselineSelector,
    /// `{{window}}`: the time since the analysis started, as a PromQL duration (`300s`).
    Window,
    /// `{{interval}}`: the analysis interval, as a PromQL duration (`30s`).
    Interval,
}

impl TemplateVariable {
    const ALL: [(&'static str, TemplateVariable); 8] = [
        ("label", TemplateVariable::Label),
        ("canary", TemplateVariable::Canary),
        ("baseline", TemplateVariable::Baseline),
        ("selector", TemplateVariable::Selector),
        ("canary_selector", TemplateVariable::CanarySelector),
        ("baseline_selector", TemplateVariable::BaselineSelector),
        ("window", TemplateVariable::Window),
        ("interval", TemplateVariable::Interval),
    ];

    /// The name written between the braces.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(name, _)| *name)
            .unwrap_or("?")
    }
}

impl QueryTemplate {
    /// Parses `{{name}}` placeholders; an unknown name or an unclosed `{{` is an error.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| "a `{{` is never closed with `}}`".to_owned())?;
            let name = after[..close].trim();
            let variable = TemplateVariable::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let known: Vec<_> = TemplateVariable::ALL
                        .iter()
                        .map(|(n, _)| format!("{{{{{n}}}}}"))
                        .collect();
                    format!(
                        "unknown variable `{{{{{name}}}}}`; known: {}",
                        known.join(", ")
                    )
                })?;
            parts.push(TemplatePart::Variable(variable));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_owned()));
        }
        if source.trim().is_empty() {
            return Err("the query is empty".to_owned());
        }
        Ok(QueryTemplate {
            source: source.to_owned(),
            parts,
        })
    }

    /// Whether the template uses a variable.
    pub fn uses(&self, variable: TemplateVariable) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, TemplatePart::Variable(v) if *v == variable))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_regex_the_scrape_source_cannot_compile_is_refused() {
        let err = parse_matchers(r#"code=~"5..{{""#).unwrap_err();
        assert!(err.contains("not a valid regular expression"), "{err}");
        assert!(err.contains("code=~"), "{err}");
        let err = parse_matchers(r#"job="a", path!~"(unclosed""#).unwrap_err();
        assert!(err.contains("not a valid regular expression"), "{err}");
        assert!(parse_matchers(r#"code=~"5..", path!~"/health.*""#).is_ok());
    }

    use super::*;

    /// Review finding of 2026-12-01: patterns the `regex` crate takes and RE2 reads otherwise
    /// passed lint, and under the controller's shared reads were evaluated by the first while
    /// a rollout's own query had Prometheus evaluate them with the second.
    #[test]
    fn a_regex_re2_reads_differently_is_refused() {
        for pattern in [
            r#"code=~"(?x) 5 . .""#,
            r#"code=~"[0-9&&[^4]]..""#,
            r#"code=~"[a--b]""#,
            r#"code=~"[[a-z]]""#,
        ] {
            let err = parse_matchers(pattern).unwrap_err();
            assert!(err.contains("read differently"), "{pattern}: {err}");
        }
        for pattern in [
            r#"code=~"(?i)5..""#,
            r#"code=~"[[:digit:]]..""#,
            r#"path=~"/a--b/.*""#,
            r#"code=~"[]a-]""#,
            r#"code=~"[\[]""#,
            r#"path=~"(?:a|b)""#,
        ] {
            assert!(parse_matchers(pattern).is_ok(), "{pattern}");
        }
    }

    #[test]
    fn parses_the_four_operators_and_both_quotes() {
        let m =
            parse_matchers(r#"job="checkout", code=~'5..' ,env!="dev",path!~"/health.*""#).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], LabelMatcher::equal("job", "checkout"));
        assert_eq!(m[1].op, MatchOp::Regex);
        assert_eq!(m[1].value, "5..");
        assert_eq!(m[2].op, MatchOp::NotEqual);
        assert_eq!(m[3].op, MatchOp::NotRegex);
        assert!(parse_matchers("").unwrap().is_empty());
    }

    #[test]
    fn escapes_round_trip() {
        let m = parse_matchers(r#"a="x\"}\\y""#).unwrap();
        assert_eq!(m[0].value, "x\"}\\y");
        assert_eq!(m[0].to_string(), r#"a="x\"}\\y""#);
        assert_eq!(parse_matchers(&m[0].to_string()).unwrap(), m);
    }

    #[test]
    fn refuses_malformed_matchers() {
        for bad in [
            "job",
            "job=checkout",
            "1job=\"x\"",
            "job=\"x",
            "job==\"x\"",
            "a=\"x\" b=\"y\"",
        ] {
            assert!(parse_matchers(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn templates_know_their_variables() {
        let t = QueryTemplate::parse("sum by ({{label}}) (rate(x{ {{selector}} }[{{ window }}]))")
            .unwrap();
        assert!(t.uses(TemplateVariable::Label));
        assert!(t.uses(TemplateVariable::Window));
        assert!(!t.uses(TemplateVariable::Canary));
        let err = QueryTemplate::parse("x{ {{namespace}} }").unwrap_err();
        assert!(err.contains("unknown variable `{{namespace}}`"), "{err}");
        assert!(QueryTemplate::parse("x{{label").is_err());
    }
}
