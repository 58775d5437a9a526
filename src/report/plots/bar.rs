//! Horizontal grouped bar charts with reference lines, with min-max whiskers where bars have a
//! spread.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::*;
use crate::error::Result;

/// The height a bar chart of these categories and series needs.
pub(super) fn bar_height(c: &BarChart, legend_names: &[String]) -> u32 {
    let n = c.categories.len().max(1) as u32;
    let ns = active(c).count().max(1) as u32;
    let per_bar = if ns > 1 { 18 } else { 24 };
    let group = per_bar * ns + 14;
    80 + 22 * legend_rows(legend_names) + 72 + n * group
}

/// The series with at least one value, with their positions (which set their colours).
pub(super) fn active(c: &BarChart) -> impl Iterator<Item = (usize, &BarSeries)> {
    c.series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.values.iter().any(Option::is_some))
}

/// Renders a horizontal grouped bar chart to an SVG document.
pub fn bar_chart(c: &BarChart) -> Result<String> {
    bar_chart_spread(c, &[])
}

/// Renders a bar chart with a min-max whisker on each bar of `spread` (one entry per series, in
/// the order of `c.series`; missing entries draw none).
pub fn bar_chart_spread(c: &BarChart, spread: &[BarSpread]) -> Result<String> {
    // Damaged values (non-finite, beyond MAX_PLOTTED, not positive on a log axis) are missing
    // bars, and such reference lines are left out.
    let clean = BarChart {
        series: c
            .series
            .iter()
            .map(|s| BarSeries {
                name: s.name.clone(),
                values: s
                    .values
                    .iter()
                    .map(|v| v.filter(|x| plottable(*x, c.scale)))
                    .collect(),
            })
            .collect(),
        reference_lines: c
            .reference_lines
            .iter()
            .filter(|r| plottable(r.value, c.scale))
            .cloned()
            .collect(),
        ..c.clone()
    };
    let c = &clean;
    let mut legend: Vec<(String, RGBColor, bool)> = active(c)
        .map(|(i, s)| (s.name.clone(), color(i), false))
        .collect();
    legend.extend(
        c.reference_lines
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), REF_COLORS[i % REF_COLORS.len()], true)),
    );
    let names: Vec<String> = legend.iter().map(|l| l.0.clone()).collect();
    let height = bar_height(c, &names);
    let values = c
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .chain(c.reference_lines.iter().map(|r| r.value))
        .chain(
            spread
                .iter()
                .flat_map(|v| v.iter().flatten().flat_map(|(lo, hi)| [*lo, *hi])),
        )
        .filter(|v| plottable(*v, c.scale));
    let (lo, mut hi) = axis_range(values, c.scale, true);
    if c.scale == Scale::Linear && c.annotate {
        // Room for the value written after the longest bar.
        hi *= 1.1;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let area = title_and_legend(&root, &c.title, &legend)?;
        let e = draw_err(&c.title);
        let longest = c
            .categories
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(4) as u32;
        let y_area = (longest * 9 + 24).clamp(60, 360);
        match c.scale {
            Scale::Linear => draw_bars(&area, lo..hi, c, spread, (lo, hi), y_area)?,
            s => draw_bars(&area, log((lo, hi), s), c, spread, (lo, hi), y_area)?,
        }
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

pub(super) fn draw_bars<X>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    x: X,
    c: &BarChart,
    spread: &[BarSpread],
    xr: (f64, f64),
    y_area: u32,
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let e = draw_err(&c.title);
    let n = c.categories.len().max(1);
    // Category i is centred at y = n - 1 - i (the first category at the top).
    let mut chart = ChartBuilder::on(area)
        .margin_left(16)
        .margin_right(40)
        .margin_bottom(12)
        .margin_top(8)
        .x_label_area_size(58)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x, -0.5f64..(n as f64 - 0.5))
        .map_err(&e)?;
    bar_mesh(&mut chart, c, xr, n)?;
    // Reference lines first: bars and their values are drawn over them.
    for (i, r) in c.reference_lines.iter().enumerate() {
        if !(r.value.is_finite() && (c.scale == Scale::Linear || r.value > 0.0)) {
            continue;
        }
        let col = REF_COLORS[i % REF_COLORS.len()];
        chart
            .draw_series(DashedLineSeries::new(
                vec![(r.value, -0.5), (r.value, n as f64 - 0.5)],
                8,
                5,
                ShapeStyle::from(&col).stroke_width(2),
            ))
            .map_err(&e)?;
    }
    let series: Vec<(usize, &BarSeries)> = active(c).collect();
    let ns = series.len().max(1);
    let band = 0.8 / ns as f64;
    let mut labels = Vec::new();
    for (si, (index, s)) in series.iter().enumerate() {
        let col = color(*index);
        for (ci, v) in s.values.iter().enumerate() {
            let Some(v) = v.filter(|v| v.is_finite() && (c.scale == Scale::Linear || *v > 0.0))
            else {
                continue;
            };
            let center = (n - 1 - ci) as f64;
            let top = center + 0.4 - si as f64 * band;
            let bottom = top - band * 0.92;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(xr.0, bottom), (v, top)],
                    ShapeStyle::from(&col).filled(),
                )))
                .map_err(&e)?;
            let drawable = |v: f64| plottable(v, c.scale);
            if let Some(Some((lo, hi))) = spread.get(*index).and_then(|sp| sp.get(ci))
                && drawable(*lo)
                && drawable(*hi)
            {
                let mid = (top + bottom) / 2.0;
                chart
                    .draw_series(whisker(*lo, *hi, mid, band))
                    .map_err(&e)?;
            }
            if c.annotate {
                let mid = (top + bottom) / 2.0;
                let size = if band * 0.92 * 100.0 < 14.0 { 13 } else { 14 };
                let (colour, hpos, dx) = if label_inside(c, v, xr) {
                    (&WHITE, HPos::Right, -5)
                } else {
                    (&BLACK, HPos::Left, 5)
                };
                let style = TextStyle::from((FONT, size).into_font())
                    .color(colour)
                    .pos(Pos::new(hpos, VPos::Center));
                labels.push(EmptyElement::at((v, mid)) + Text::new(fmt_value(v), (dx, 0), style));
            }
        }
    }
    chart.draw_series(labels).map_err(&e)?;
    Ok(())
}

/// The axes of a bar chart: values along x with their unit, category names along y.
fn bar_mesh<X>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, RangedCoordf64>>,
    c: &BarChart,
    xr: (f64, f64),
    n: usize,
) -> Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let cat_label = category_label(c.categories.clone());
    chart
        .configure_mesh()
        .x_desc(c.value_label.as_str())
        .x_labels(label_count(xr, c.scale))
        .y_labels(n)
        .x_label_formatter(&|v| fmt_value(*v))
        .y_label_formatter(&cat_label)
        .disable_y_mesh()
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(draw_err(&c.title))
}

/// The label of the category axis: category i sits at y = n - 1 - i (the first at the top); no
/// label between categories.
fn category_label(cats: Vec<String>) -> impl Fn(&f64) -> String {
    let n = cats.len().max(1);
    move |v: &f64| {
        let r = v.round();
        if (v - r).abs() > 1e-6 || r < 0.0 || r as usize >= n {
            return String::new();
        }
        cats.get(n - 1 - r as usize).cloned().unwrap_or_default()
    }
}

/// A min-max whisker across a bar's end at height `mid`: the line and its two end ticks.
fn whisker(lo: f64, hi: f64, mid: f64, band: f64) -> [PathElement<(f64, f64)>; 3] {
    let style = ShapeStyle::from(&BLACK).stroke_width(2);
    let tick = |x: f64| PathElement::new(vec![(x, mid - band * 0.3), (x, mid + band * 0.3)], style);
    [
        PathElement::new(vec![(lo, mid), (hi, mid)], style),
        tick(lo),
        tick(hi),
    ]
}

/// Whether bar value `v`'s label goes inside the bar's end: long bars carry it inside (reference
/// lines often sit just past the end, and one just past it would run through the value), short
/// ones just after it.
fn label_inside(c: &BarChart, v: f64, xr: (f64, f64)) -> bool {
    let frac = |v: f64| match c.scale {
        Scale::Linear => (v - xr.0) / (xr.1 - xr.0),
        _ => (v / xr.0).ln() / (xr.1 / xr.0).ln(),
    };
    let line_after = c
        .reference_lines
        .iter()
        .any(|r| r.value >= v && frac(r.value) - frac(v) < 0.07);
    (frac(v) > 0.8 || line_after) && frac(v) > 0.08
}
