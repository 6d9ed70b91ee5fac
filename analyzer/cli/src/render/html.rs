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

use std::fmt::Write as _;
use std::ops::Range;

use canary_core::judge::{CheckResult, Evidence, fmt_num};
use canary_core::report::Report;
use jiff::Timestamp;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The size of a chart in SVG pixels (CSS scales it to the page's width).
const WIDTH: u32 = 1100;
const HEIGHT: u32 = 290;

const CANARY: RGBColor = RGBColor(0xD9, 0x48, 0x1C);
const BASELINE: RGBColor = RGBColor(0x1F, 0x6F, 0xB2);
const WEIGHT: RGBColor = RGBColor(0x1B, 0x8A, 0x5A);
const DECISION: RGBColor = RGBColor(0x7B, 0x1F, 0xA2);
const BOUND: RGBColor = RGBColor(0x8A, 0x8A, 0x8A);
const STEP: RGBColor = RGBColor(0x9A, 0xA5, 0xB1);
const INK: RGBColor = RGBColor(0x33, 0x3A, 0x44);
const GRID: RGBColor = RGBColor(0xE6, 0xE9, 0xEE);
const FONT: &str = "sans-serif";

pub(super) fn render(report: &Report) -> String {
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
         <meta name=\"generator\" content=\"canary {}\">\n<title>{}</title>\n<style>{STYLE}</style>\n\
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
            "{} ({} per check)",
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
fn time(at: Timestamp) -> String {
    format!(
        "<time datetime=\"{at}\" title=\"{at}\">{}</time>",
        at.strftime("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// The charts' x axis: time since the report's start, in seconds, minutes or hours
/// (whichever gives readable numbers), so that its ticks fall on round offsets.
struct TimeAxis {
    start: Timestamp,
    /// Seconds per unit.
    unit: f64,
    unit_name: &'static str,
    range: Range<f64>,
}

impl TimeAxis {
    fn of(report: &Report) -> TimeAxis {
        let start = report.started_at;
        let seconds = |at: Timestamp| at.duration_since(start).as_secs_f64();
        let times = report
            .timeline
            .iter()
            .map(|p| p.at)
            .chain(report.weights.iter().map(|w| w.at))
            .chain(report.steps.iter().map(|s| s.started_at))
            .chain(report.decided_at)
            .chain([report.ended_at]);
        let (mut lo, mut hi) = (0.0_f64, 0.0_f64);
        for t in times.map(seconds) {
            lo = lo.min(t);
            hi = hi.max(t);
        }
        let (unit, unit_name) = match hi - lo {
            span if span <= 300.0 => (1.0, "seconds"),
            span if span <= 5.0 * 3600.0 => (60.0, "minutes"),
            _ => (3600.0, "hours"),
        };
        let (lo, mut hi) = (lo / unit, hi / unit);
        if hi - lo < 1.0 {
            hi = lo + 1.0;
        }
        // A little room at the right, so the last point is not on the frame.
        let pad = (hi - lo) * 0.02;
        TimeAxis {
            start,
            unit,
            unit_name,
            range: lo..hi + pad,
        }
    }

    /// Where `at` is on the axis.
    fn x(&self, at: Timestamp) -> f64 {
        at.duration_since(self.start).as_secs_f64() / self.unit
    }

    /// The axis' description: its unit and its origin.
    fn description(&self) -> String {
        format!(
            "{} since {} UTC",
            self.unit_name,
            self.start.strftime("%Y-%m-%d %H:%M:%S")
        )
    }

    /// `at` as an offset from the start, e.g. `+7m 30s`.
    fn offset(&self, at: Timestamp) -> String {
        let seconds = at.duration_since(self.start).as_secs();
        let sign = if seconds < 0 { "-" } else { "+" };
        let duration = std::time::Duration::from_secs(seconds.unsigned_abs());
        format!("{sign}{}", humantime::format_duration(duration))
    }
}

/// One chart: what it plots and how.
struct Chart {
    /// `chart-NAME`.
    id: String,
    /// `error-rate`, `latency`, `samples`, `query` or `weight`.
    kind: String,
    title: String,
    subtitle: String,
    y_desc: String,
    series: Vec<Series>,
    /// The check's absolute bound, in the chart's unit, and its label.
    bound: Option<(f64, String)>,
    /// Step boundaries: x and label.
    boundaries: Vec<(f64, String)>,
    /// A fixed y range (the weight chart: 0–100 %).
    y_fixed: Option<Range<f64>>,
}

struct Series {
    /// `canary`, `baseline` or `weight`.
    class: &'static str,
    color: RGBColor,
    /// x and value, in the chart's unit; `None` is a gap (no requests in that interval).
    points: Vec<(f64, Option<f64>)>,
    /// Drawn as a step function (weights hold until the next change).
    steps: bool,
    /// The last point only carries the line to the end of the report: not a data point.
    tail: bool,
}

impl Series {
    /// The data points (not the tail).
    fn data(&self) -> &[(f64, Option<f64>)] {
        let end = self.points.len() - usize::from(self.tail);
        &self.points[..end]
    }

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.data().iter().filter_map(|(_, y)| *y)
    }
}

/// The charts of a report: the weight timeline (rollouts), then one per check in the order
/// the checks are reported.
fn charts(report: &Report, axis: &TimeAxis) -> Vec<Chart> {
    let mut charts = Vec::new();
    if !report.weights.is_empty() || !report.steps.is_empty() {
        charts.push(weight_chart(report, axis));
    }
    let mut names: Vec<(String, String)> = Vec::new();
    for check in &report.checks {
        if !names.iter().any(|(name, _)| *name == check.check) {
            names.push((check.check.clone(), check.kind.clone()));
        }
    }
    for point in &report.timeline {
        for (name, value) in &point.checks {
            if !names.iter().any(|(n, _)| n == name) {
                let kind = match value.measure.as_str() {
                    "error rate" => "error-rate",
                    "sample" => "samples",
                    "value" => "query",
                    _ => "latency",
                };
                names.push((name.clone(), kind.to_owned()));
            }
        }
    }
    for (name, kind) in names {
        charts.push(check_chart(report, axis, &name, &kind));
    }
    charts
}

fn weight_chart(report: &Report, axis: &TimeAxis) -> Chart {
    let mut points: Vec<(f64, Option<f64>)> = report
        .weights
        .iter()
        .map(|w| (axis.x(w.at), Some(f64::from(w.weight))))
        .collect();
    // The last weight holds until the end of the report.
    let mut tail = false;
    if let Some(&(at, last)) = points.last() {
        let end = axis.x(report.ended_at);
        if end > at {
            points.push((end, last));
            tail = true;
        }
    }
    let boundaries = report
        .steps
        .iter()
        .map(|s| {
            (
                axis.x(s.started_at),
                format!("step {} · {}%", s.index + 1, s.weight),
            )
        })
        .collect();
    let path: Vec<String> = report
        .weights
        .iter()
        .map(|w| format!("{}%", w.weight))
        .collect();
    Chart {
        id: "chart-weight".to_owned(),
        kind: "weight".to_owned(),
        title: "Canary weight".to_owned(),
        subtitle: if path.is_empty() {
            "no weight was set".to_owned()
        } else {
            format!("as read back from the router: {}", path.join(" → "))
        },
        y_desc: "canary weight (%)".to_owned(),
        series: vec![Series {
            class: "weight",
            color: WEIGHT,
            points,
            steps: true,
            tail,
        }],
        bound: None,
        boundaries,
        y_fixed: Some(0.0..105.0),
    }
}

fn check_chart(report: &Report, axis: &TimeAxis, name: &str, kind: &str) -> Chart {
    let measure = report
        .timeline
        .iter()
        .find_map(|p| p.checks.get(name).map(|v| v.measure.clone()));
    // What is plotted, in which unit, and how a value in the report converts to it.
    let (what, unit, scale) = match kind {
        "error-rate" => ("error rate".to_owned(), "%", 100.0),
        "latency" => {
            let quantile = measure
                .as_deref()
                .and_then(|m| m.split_whitespace().next())
                .unwrap_or("quantile")
                .to_owned();
            (quantile, "ms", 1000.0)
        }
        _ => (
            measure.clone().unwrap_or_else(|| "value".to_owned()),
            "",
            1.0,
        ),
    };
    let series_of = |class: &'static str, color: RGBColor, baseline: bool| Series {
        class,
        color,
        points: report
            .timeline
            .iter()
            .map(|p| {
                let value = p
                    .checks
                    .get(name)
                    .and_then(|v| if baseline { v.baseline } else { v.canary });
                (
                    axis.x(p.at),
                    value.filter(|v| v.is_finite()).map(|v| v * scale),
                )
            })
            .collect(),
        steps: false,
        tail: false,
    };
    let mut series = vec![series_of("canary", CANARY, false)];
    let baseline = series_of("baseline", BASELINE, true);
    if kind != "query" {
        series.push(baseline);
    }
    // The absolute bound (`slo`, or a query's bound) is on the chart's scale; a comparison's
    // threshold is a ratio, not a value to draw.
    let bound = report
        .checks
        .iter()
        .filter(|c| c.check == name && c.criterion_name() == "slo")
        .find_map(|c| c.evidence.threshold)
        .filter(|t| t.is_finite())
        .map(|t| {
            let shown = t * scale;
            (shown, format!("bound {}{unit}", fmt_num(shown)))
        });
    let verdicts: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.check == name)
        .map(|c| format!("{} {}", c.name, c.verdict.as_str()))
        .collect();
    let y_desc = if unit.is_empty() {
        what.clone()
    } else {
        format!("{what} ({unit})")
    };
    let title = match kind {
        "error-rate" => format!("{name}: error rate, canary vs baseline"),
        "latency" => format!("{name}: {what} latency, canary vs baseline"),
        "query" => format!("{name}: canary value"),
        _ => format!("{name}: canary vs baseline"),
    };
    Chart {
        id: format!("chart-{}", slug(name)),
        kind: kind.to_owned(),
        title,
        subtitle: if verdicts.is_empty() {
            "per analysis interval".to_owned()
        } else {
            format!("per analysis interval · {}", verdicts.join(" · "))
        },
        y_desc,
        series,
        bound,
        boundaries: Vec::new(),
        y_fixed: None,
    }
}

/// The criterion part of a check result's name (`errors/slo` → `slo`).
trait CriterionName {
    fn criterion_name(&self) -> &str;
}

impl CriterionName for CheckResult {
    fn criterion_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or_default()
    }
}

fn figure(out: &mut String, chart: &Chart, report: &Report, axis: &TimeAxis) {
    let _ = write!(
        out,
        "<figure class=\"chart-figure\" id=\"figure-{id}\">\n<figcaption><span class=\"title\">{}</span> \
         <span class=\"subtitle\">{}</span>\n<span class=\"legend\">",
        esc(&chart.title),
        esc(&chart.subtitle),
        id = chart.id.trim_start_matches("chart-")
    );
    for series in &chart.series {
        let _ = write!(
            out,
            "<span class=\"key key-{}\"><i style=\"background:{}\"></i>{}</span>",
            series.class,
            hex(series.color),
            series.class
        );
    }
    if chart.bound.is_some() {
        out.push_str("<span class=\"key key-bound\"><i class=\"dashed\"></i>absolute bound</span>");
    }
    if !chart.boundaries.is_empty() {
        out.push_str("<span class=\"key key-step\"><i class=\"dashed step\"></i>step start</span>");
    }
    out.push_str("<span class=\"key key-decision\"><i></i>decision</span></span>\n</figcaption>\n");
    match draw(chart, report, axis) {
        Ok(svg) => out.push_str(&svg),
        Err(err) => {
            let _ = writeln!(
                out,
                "<p class=\"note\">this chart could not be drawn: {}</p>",
                esc(&err)
            );
        }
    }
    out.push_str("</figure>\n");
}

/// The plot area's coordinates: time in seconds since the start, values in the chart's unit.
type Plot<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One chart's SVG: the frame (grid, axes, labels), then each layer in its own group.
fn draw(chart: &Chart, report: &Report, axis: &TimeAxis) -> Result<String, String> {
    let y = chart.y_fixed.clone().unwrap_or_else(|| value_range(chart));
    let x = axis.range.clone();
    let points: usize = chart.series.iter().map(|s| s.values().count()).sum();
    let mut svg = format!(
        "<svg id=\"{}\" class=\"chart chart-{}\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" \
         aria-label=\"{}\">\n",
        esc(&chart.id),
        esc(&chart.kind),
        esc(&chart.title)
    );
    let group = |svg: &mut String, class: &str, attributes: &str, body: String| {
        let _ = write!(svg, "<g class=\"{class}\"{attributes}>\n{body}</g>\n");
    };
    let frame = layer(&x, &y, |plot| {
        let x_label = |v: &f64| short_number(*v);
        let y_label = |v: &f64| short_number(*v);
        plot.configure_mesh()
            .x_desc(axis.description())
            .y_desc(chart.y_desc.as_str())
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style((FONT, 14).into_font().color(&INK))
            .axis_desc_style((FONT, 15).into_font().color(&INK))
            .axis_style(INK.mix(0.6))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(|e| e.to_string())?;
        if points == 0 {
            let (cx, cy) = ((x.start + x.end) / 2.0, (y.start + y.end) / 2.0);
            plot.draw_series(std::iter::once(Text::new(
                "no data points",
                (cx, cy),
                (FONT, 18)
                    .into_font()
                    .color(&BOUND)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            )))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    group(&mut svg, "frame", "", frame);

    for (bx, label) in &chart.boundaries {
        let body = layer(&x, &y, |plot| {
            plot.draw_series(std::iter::once(DashedPathElement::new(
                vec![(*bx, y.start), (*bx, y.end)],
                4,
                4,
                STEP.stroke_width(1),
            )))
            .map_err(|e| e.to_string())?;
            plot.draw_series(std::iter::once(
                EmptyElement::at((*bx, y.end))
                    + Text::new(label.clone(), (4, 2), (FONT, 13).into_font().color(&INK)),
            ))
            .map_err(|e| e.to_string())?;
            Ok(())
        })?;
        group(
            &mut svg,
            "step-boundary",
            &format!(" data-x=\"{}\"", fmt_num(*bx)),
            body,
        );
    }

    let (decision_at, decision_label) = match report.decided_at {
        Some(at) => (
            at,
            format!(
                "{} decided at {} ({})",
                report.verdict.as_str(),
                axis.offset(at),
                at.strftime("%H:%M:%S")
            ),
        ),
        None => (
            report.ended_at,
            format!("{} at the end", report.verdict.as_str()),
        ),
    };
    let dx = axis.x(decision_at);
    // The decision's label goes on the side of the line with more room.
    let decision_right = dx > (x.start + x.end) / 2.0;

    if let Some((value, label)) = &chart.bound {
        let body = layer(&x, &y, |plot| {
            plot.draw_series(std::iter::once(DashedPathElement::new(
                vec![(x.start, *value), (x.end, *value)],
                6,
                4,
                BOUND.stroke_width(2),
            )))
            .map_err(|e| e.to_string())?;
            // On the other side from the decision's label.
            let (at, offset, anchor) = if decision_right {
                (x.start, (6, -4), HPos::Left)
            } else {
                (x.end, (-4, -4), HPos::Right)
            };
            plot.draw_series(std::iter::once(
                EmptyElement::at((at, *value))
                    + Text::new(
                        label.clone(),
                        offset,
                        (FONT, 13)
                            .into_font()
                            .color(&INK)
                            .pos(Pos::new(anchor, VPos::Bottom)),
                    ),
            ))
            .map_err(|e| e.to_string())?;
            Ok(())
        })?;
        group(
            &mut svg,
            "bound",
            &format!(" data-value=\"{}\"", fmt_num(*value)),
            body,
        );
    }

    // The baseline under the canary: the canary is what is judged.
    for series in chart.series.iter().rev() {
        let body = layer(&x, &y, |plot| draw_series(plot, series))?;
        group(
            &mut svg,
            &format!("series {}", series.class),
            &format!(" data-points=\"{}\"", series.values().count()),
            body,
        );
    }

    let body = layer(&x, &y, |plot| {
        plot.draw_series(std::iter::once(PathElement::new(
            vec![(dx, y.start), (dx, y.end)],
            DECISION.stroke_width(2),
        )))
        .map_err(|e| e.to_string())?;
        let (offset, anchor) = if decision_right {
            ((-6, 4), HPos::Right)
        } else {
            ((6, 4), HPos::Left)
        };
        plot.draw_series(std::iter::once(
            EmptyElement::at((dx, y.end))
                + Text::new(
                    decision_label.clone(),
                    offset,
                    (FONT, 14)
                        .into_font()
                        .style(FontStyle::Bold)
                        .color(&DECISION)
                        .pos(Pos::new(anchor, VPos::Top)),
                ),
        ))
        .map_err(|e| e.to_string())?;
        Ok(())
    })?;
    group(
        &mut svg,
        "decision",
        &format!(
            " data-at=\"{}\" data-verdict=\"{}\"",
            esc(&decision_at.to_string()),
            report.verdict.as_str()
        ),
        body,
    );
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// A series' lines (broken where there is no value) and one circle per data point.
fn draw_series(plot: &mut Plot<'_, '_>, series: &Series) -> Result<(), String> {
    let style = series.color.stroke_width(2);
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in &series.points {
        match y {
            Some(y) => {
                let run = runs.last_mut().expect("there is always a run");
                if series.steps
                    && let Some(&(_, previous)) = run.last()
                {
                    run.push((x, previous));
                }
                run.push((x, y));
            }
            None => runs.push(Vec::new()),
        }
    }
    for run in runs.into_iter().filter(|r| r.len() > 1) {
        plot.draw_series(LineSeries::new(run, style))
            .map_err(|e| e.to_string())?;
    }
    let circles = series
        .data()
        .iter()
        .filter_map(|&(x, y)| y.map(|y| Circle::new((x, y), 3, series.color.filled())));
    plot.draw_series(circles).map_err(|e| e.to_string())?;
    Ok(())
}

/// Draws one layer on a fresh SVG backend with the chart's exact geometry and returns its
/// elements (the `<svg>` wrapper removed).
fn layer(
    x: &Range<f64>,
    y: &Range<f64>,
    draw: impl FnOnce(&mut Plot<'_, '_>) -> Result<(), String>,
) -> Result<String, String> {
    let mut buffer = String::new();
    {
        let root: DrawingArea<SVGBackend<'_>, Shift> =
            SVGBackend::with_string(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        let mut plot = ChartBuilder::on(&root)
            .margin_top(12)
            .margin_right(28)
            .margin_left(10)
            .margin_bottom(6)
            .x_label_area_size(50)
            .y_label_area_size(78)
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(|e| e.to_string())?;
        draw(&mut plot)?;
        root.present().map_err(|e| e.to_string())?;
    }
    let body = buffer.split_once('\n').map_or("", |(_, rest)| rest);
    let body = body.trim_end().strip_suffix("</svg>").unwrap_or(body);
    Ok(body.to_owned())
}

/// The y range of a chart: from 0 (or the lowest value) to a little above the highest value
/// or bound; never empty.
fn value_range(chart: &Chart) -> Range<f64> {
    let values = chart
        .series
        .iter()
        .flat_map(Series::values)
        .chain(chart.bound.as_ref().map(|(v, _)| *v));
    let (mut lo, mut hi) = (0.0_f64, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !hi.is_finite() || hi <= lo {
        hi = lo + 1.0;
    }
    lo..hi + (hi - lo) * 0.15
}

fn short_number(v: f64) -> String {
    let text = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn evidence_table(out: &mut String, report: &Report) {
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
            esc(&check.reason),
        );
    }
    out.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn steps_table(out: &mut String, report: &Report) {
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
            "<tr class=\"decision-{}\"><td>{}</td><td class=\"num\">{}%</td><td>{}</td><td>{}</td>\
             <td><strong>{}</strong>: {}</td><td class=\"num\">{}</td></tr>",
            slug(&step.decision),
            step.index + 1,
            step.weight,
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

fn interval(e: &Evidence) -> String {
    match (e.interval, e.confidence) {
        (Some([lo, hi]), Some(c)) => format!(
            "[{}, {}]<br><small>{}% confidence</small>",
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

fn samples(e: &Evidence) -> String {
    format!(
        "{}<br><small>baseline</small> {}",
        super::sample_count(e.canary_n, e.canary_events),
        super::sample_count(e.baseline_n, e.baseline_events)
    )
}

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

fn hex(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
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

const STYLE: &str = r#"
:root { --ink:#333a44; --muted:#6b7480; --line:#e3e6eb; --bg:#f6f7f9;
  --pass:#1b8a5a; --fail:#c62828; --inconclusive:#b26a00; --nodata:#6b7480; --error:#7b1fa2; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1320px; margin:0 auto; padding:24px 28px 40px; }
header { background:#fff; border:1px solid var(--line); border-left:8px solid var(--muted);
  border-radius:8px; padding:18px 24px; margin-bottom:24px; }
header.verdict-pass { border-left-color:var(--pass); } header.verdict-fail { border-left-color:var(--fail); }
header.verdict-inconclusive { border-left-color:var(--inconclusive); } header.verdict-error { border-left-color:var(--error); }
.kicker { margin:0; color:var(--muted); text-transform:uppercase; letter-spacing:.08em; font-size:12px; }
h1 { margin:4px 0 6px; font-size:28px; display:flex; align-items:center; gap:14px; }
h2 { font-size:19px; margin:28px 0 12px; }
.reason { margin:0 0 14px; font-size:16px; }
.meta { display:grid; grid-template-columns:repeat(auto-fill,minmax(250px,1fr)); gap:8px 24px; margin:0; }
.meta div { min-width:0; } .meta dt { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.05em; }
.meta dd { margin:0; overflow-wrap:anywhere; }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; color:#fff; font-size:13px;
  font-weight:600; letter-spacing:.04em; background:var(--muted); }
h1 .badge { font-size:16px; padding:3px 14px; }
.badge.verdict-pass { background:var(--pass); } .badge.verdict-fail { background:var(--fail); }
.badge.verdict-inconclusive { background:var(--inconclusive); } .badge.verdict-nodata { background:var(--nodata); }
.badge.verdict-error { background:var(--error); }
figure { background:#fff; border:1px solid var(--line); border-radius:8px; margin:0 0 18px; padding:14px 16px 6px; }
figcaption { display:flex; flex-wrap:wrap; align-items:baseline; gap:4px 14px; margin-bottom:4px; }
figcaption .title { font-weight:600; font-size:16px; } figcaption .subtitle { color:var(--muted); font-size:13px; }
.legend { margin-left:auto; display:flex; gap:14px; font-size:13px; }
.key { display:inline-flex; align-items:center; gap:6px; }
.key i { display:inline-block; width:22px; height:3px; border-radius:2px; }
.key-bound i { background:none; border-top:2px dashed #8a8a8a; height:0; }
.key-step i { background:none; border-top:2px dashed #9aa5b1; height:0; }
.key-decision i { background:#7b1fa2; width:3px; height:14px; }
svg.chart { display:block; width:100%; height:auto; }
.scroll { overflow-x:auto; background:#fff; border:1px solid var(--line); border-radius:8px; }
table { border-collapse:collapse; width:100%; font-size:13.5px; }
th, td { text-align:left; vertical-align:top; padding:8px 10px; border-bottom:1px solid var(--line); }
th { background:#fafbfc; font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
td.num { font-variant-numeric:tabular-nums; white-space:nowrap; }
td.check { min-width:190px; max-width:260px; } td.check small { display:block; margin-top:4px; line-height:1.3; }
td:last-child { min-width:220px; }
tr.verdict-fail td { background:#fdf1f1; } tr.verdict-error td { background:#f8f0fb; }
tr:last-child td { border-bottom:none; }
small { color:var(--muted); }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
.note { color:var(--muted); font-style:italic; }
footer { margin-top:28px; color:var(--muted); font-size:12px; }
"#;

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

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(0.5), "0.5");
        assert_eq!(short_number(12.0), "12");
        assert_eq!(short_number(250.0), "250");
        assert_eq!(short_number(0.0), "0");
    }
}
