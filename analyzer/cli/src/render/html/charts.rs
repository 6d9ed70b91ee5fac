//! The charts: the weight timeline and one chart per check, each an inline SVG drawn by
//! plotters in layers (see the module above for the ids and classes they carry).

use std::fmt::Write as _;
use std::ops::Range;

use canary_core::judge::{CheckResult, fmt_num};
use canary_core::report::Report;
use jiff::Timestamp;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{esc, slug};

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

/// The charts' x axis: time since the report's start, in seconds, minutes or hours
/// (whichever gives readable numbers), so that its ticks fall on round offsets.
pub(super) struct TimeAxis {
    start: Timestamp,
    /// Seconds per unit.
    unit: f64,
    unit_name: &'static str,
    range: Range<f64>,
}

impl TimeAxis {
    pub(super) fn of(report: &Report) -> TimeAxis {
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
pub(super) struct Chart {
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
pub(super) fn charts(report: &Report, axis: &TimeAxis) -> Vec<Chart> {
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
                format!("step {} · {} %", s.index + 1, s.weight),
            )
        })
        .collect();
    let path: Vec<String> = report
        .weights
        .iter()
        .map(|w| format!("{} %", w.weight))
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

pub(super) fn figure(out: &mut String, chart: &Chart, report: &Report, axis: &TimeAxis) {
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

fn hex(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(0.5), "0.5");
        assert_eq!(short_number(12.0), "12");
        assert_eq!(short_number(250.0), "250");
        assert_eq!(short_number(0.0), "0");
    }
}
