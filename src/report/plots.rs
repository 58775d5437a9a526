//! SVG figures for the lab report and `compare` (plotters' SVG backend): a line chart on
//! logarithmic or linear axes (allocation time against size) and a horizontal grouped bar chart
//! with optional reference lines (touch costs, bandwidth against baselines, memory accounting,
//! probe limits). Categories sit on the vertical axis so that long strategy names stay readable.
//!
//! Measurements repeated on fresh allocations show their spread: `line_chart_spread` draws a
//! min-max bar at every point, `bar_chart_spread` a min-max whisker across each bar's end.
//!
//! Every chart draws its title and its legend in a band above the plotting area (a legend inside
//! the plot can hide data), and every axis label carries its unit. The output is one
//! self-contained `<svg>` element with a `viewBox`, so HTML can scale it and Markdown can link it.

use plotters::coord::Shift;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};

/// Width of every figure, pixels (the HTML scales it down to the page).
pub const WIDTH: u32 = 960;
/// Height of a line chart, pixels.
pub const LINE_HEIGHT: u32 = 560;

/// Series colours: distinguishable, also in greyscale print (the Tableau 10 palette).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Reference line colours (kept apart from the series colours).
const REF_COLORS: [RGBColor; 3] = [RGBColor(0, 0, 0), RGBColor(200, 0, 0), RGBColor(0, 110, 0)];

const FONT: &str = "sans-serif";

/// Colour of series `i`.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Logarithmic, ticks at powers of 10.
    Log10,
    /// Logarithmic, ticks at powers of 2 (sizes).
    Log2,
}

/// One named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// (x, y); points with a non-positive value on a logarithmic axis are left out.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: one line with markers per series.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    pub title: String,
    /// With its unit, e.g. "size (GiB)".
    pub x_label: String,
    /// With its unit, e.g. "allocation time (ms)".
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub series: Vec<Series>,
}

/// One series of bars: a value (or none) per category.
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A vertical line across a bar chart (a baseline such as `cuMemsetD32`).
#[derive(Debug, Clone, PartialEq)]
pub struct RefLine {
    pub name: String,
    pub value: f64,
}

/// Horizontal grouped bars: categories down the side, one bar per series in each.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub title: String,
    /// The value axis, with its unit, e.g. "bandwidth (GB/s, 1e9 bytes/s)".
    pub value_label: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    pub scale: Scale,
    pub reference_lines: Vec<RefLine>,
    /// Write each bar's value at its end.
    pub annotate: bool,
}

fn draw_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Failed(format!("cannot draw the figure \"{what}\": {e}"))
}

/// Formats a tick or a bar value compactly: 3 significant digits, no exponent for everyday
/// magnitudes.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        trim_zeros(format!("{v:.1}"))
    } else if a >= 1.0 {
        trim_zeros(format!("{v:.2}"))
    } else {
        // Three significant digits below 1.
        let digits = (-a.log10()).floor() as usize + 3;
        trim_zeros(format!("{v:.digits$}"))
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The largest magnitude drawn (1e15: far beyond any GB/s, ms or GiB figure); beyond it a value
/// is damaged and left out.
const MAX_PLOTTED: f64 = 1e15;
/// The smallest value drawn on a logarithmic axis; with [`MAX_PLOTTED`] a log axis spans at
/// most 27 decades, so the plotting library's tick search always ends.
const MIN_LOG_PLOTTED: f64 = 1e-12;

/// Whether `v` can be drawn on an axis of `scale`: finite, within [`MAX_PLOTTED`], and for a
/// logarithmic axis at least [`MIN_LOG_PLOTTED`]. Anything else is shown as missing.
fn plottable(v: f64, scale: Scale) -> bool {
    v.is_finite() && v.abs() <= MAX_PLOTTED && (scale == Scale::Linear || v >= MIN_LOG_PLOTTED)
}

/// The range an axis shows: for log scales, out to the enclosing powers of the base.
fn axis_range(values: impl Iterator<Item = f64>, scale: Scale, include_zero: bool) -> (f64, f64) {
    let vals: Vec<f64> = values.filter(|v| plottable(*v, scale)).collect();
    let (mut lo, mut hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    if !lo.is_finite() {
        return match scale {
            Scale::Linear => (0.0, 1.0),
            _ => (1.0, 10.0),
        };
    }
    match scale {
        Scale::Linear => {
            if include_zero {
                lo = lo.min(0.0);
            }
            if hi <= lo {
                hi = lo + 1.0;
            }
            let pad = (hi - lo) * 0.08;
            (
                if include_zero && lo >= 0.0 {
                    0.0
                } else {
                    lo - pad
                },
                hi + pad,
            )
        }
        Scale::Log10 | Scale::Log2 => {
            let b: f64 = if scale == Scale::Log2 { 2.0 } else { 10.0 };
            let lo = b.powf((lo.log(b) + 1e-9).floor());
            let mut hi = b.powf((hi.log(b) - 1e-9).ceil());
            if hi <= lo {
                hi = lo * b;
            }
            // A hair beyond the powers, so that rounding in the tick search keeps the end ticks.
            (lo * (1.0 - 1e-9), hi * (1.0 + 1e-9))
        }
    }
}

/// Tick labels wanted on an axis: one per power of the base for log axes.
fn label_count(range: (f64, f64), scale: Scale) -> usize {
    match scale {
        Scale::Linear => 8,
        // One decade gets its 2..9 ticks too (plotters adds them when asked for ten labels).
        Scale::Log10 => match (range.1 / range.0).log10().round() as usize {
            0 | 1 => 10,
            d => d + 1,
        },
        Scale::Log2 => ((range.1 / range.0).log2().round() as usize + 1).clamp(2, 14),
    }
}

/// Draws the title and a one-line legend in a band at the top; returns the area below it.
fn title_and_legend<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    title: &str,
    legend: &[(String, RGBColor, bool)],
) -> Result<DrawingArea<SVGBackend<'a>, Shift>> {
    let e = draw_err(title);
    root.fill(&WHITE).map_err(&e)?;
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        title.to_string(),
        (16, 10),
        (FONT, 21).into_font().style(FontStyle::Bold),
    ))
    .map_err(&e)?;
    // The legend wraps onto as many rows as it needs.
    let (mut x, mut y) = (16i32, 42i32);
    for (name, c, is_line) in legend {
        let width = 34 + (name.chars().count() as i32) * 8;
        if x + width > w as i32 - 10 && x > 16 {
            x = 16;
            y += 22;
        }
        if *is_line {
            root.draw(&PathElement::new(
                vec![(x, y + 8), (x + 22, y + 8)],
                ShapeStyle::from(c).stroke_width(3),
            ))
            .map_err(&e)?;
        } else {
            root.draw(&Rectangle::new(
                [(x, y + 1), (x + 22, y + 15)],
                ShapeStyle::from(c).filled(),
            ))
            .map_err(&e)?;
        }
        root.draw(&Text::new(name.clone(), (x + 28, y + 1), (FONT, 16)))
            .map_err(&e)?;
        x += width + 12;
    }
    let band = (y + 30) as u32;
    Ok(root.split_vertically(band).1)
}

/// The rows the legend of `n` entries of these names will take (to size the figure).
fn legend_rows(names: &[String]) -> u32 {
    let mut rows = 1;
    let mut x = 16;
    for n in names {
        let width = 34 + (n.chars().count() as i32) * 8;
        if x + width > WIDTH as i32 - 10 && x > 16 {
            x = 16;
            rows += 1;
        }
        x += width + 12;
    }
    rows
}

/// The spread of one line series: (x, min, max) for the points that have one.
pub type LineSpread = Vec<(f64, f64, f64)>;

/// The spread of one bar series: (min, max) per category, or none.
pub type BarSpread = Vec<Option<(f64, f64)>>;

/// Renders a line chart to an SVG document.
pub fn line_chart(c: &LineChart) -> Result<String> {
    line_chart_spread(c, &[])
}

/// Renders a line chart with a min-max bar at each point of `spread` (one entry per series, in
/// the order of `c.series`; missing entries draw none).
pub fn line_chart_spread(c: &LineChart, spread: &[LineSpread]) -> Result<String> {
    let keep = plottable;
    // Series without points are left out; colours stay those of the series' positions, so
    // that one machine or strategy has one colour in every figure.
    let series: Vec<(usize, Series)> = c
        .series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| keep(*x, c.x_scale) && keep(*y, c.y_scale))
                .collect(),
        })
        .enumerate()
        .filter(|(_, s)| !s.points.is_empty())
        .collect();
    let xr = axis_range(
        series
            .iter()
            .flat_map(|(_, s)| s.points.iter().map(|p| p.0)),
        c.x_scale,
        false,
    );
    // Spread kept where its series and its values can be drawn.
    let bars: Vec<(usize, LineSpread)> = series
        .iter()
        .filter_map(|(i, _)| {
            spread.get(*i).map(|v| {
                let kept = v
                    .iter()
                    .copied()
                    .filter(|(x, lo, hi)| {
                        keep(*x, c.x_scale) && keep(*lo, c.y_scale) && keep(*hi, c.y_scale)
                    })
                    .collect();
                (*i, kept)
            })
        })
        .collect();
    let yr = axis_range(
        series
            .iter()
            .flat_map(|(_, s)| s.points.iter().map(|p| p.1))
            .chain(
                bars.iter()
                    .flat_map(|(_, v)| v.iter().flat_map(|(_, lo, hi)| [*lo, *hi])),
            ),
        c.y_scale,
        true,
    );
    let names: Vec<String> = series.iter().map(|(_, s)| s.name.clone()).collect();
    let height = LINE_HEIGHT + 22 * (legend_rows(&names) - 1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let legend: Vec<(String, RGBColor, bool)> = series
            .iter()
            .map(|(i, s)| (s.name.clone(), color(*i), true))
            .collect();
        let area = title_and_legend(&root, &c.title, &legend)?;
        let e = draw_err(&c.title);
        macro_rules! go {
            ($x:expr, $y:expr) => {
                draw_lines(&area, $x, $y, c, &series, &bars, (xr, yr))?
            };
        }
        match (c.x_scale, c.y_scale) {
            (Scale::Linear, Scale::Linear) => go!(xr.0..xr.1, yr.0..yr.1),
            (Scale::Linear, ys) => go!(xr.0..xr.1, log(yr, ys)),
            (xs, Scale::Linear) => go!(log(xr, xs), yr.0..yr.1),
            (xs, ys) => go!(log(xr, xs), log(yr, ys)),
        }
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

fn log(r: (f64, f64), s: Scale) -> LogCoord<f64> {
    let l = (r.0..r.1).log_scale();
    if s == Scale::Log2 {
        l.base(2.0).into()
    } else {
        l.into()
    }
}

fn draw_lines<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    x: X,
    y: Y,
    c: &LineChart,
    series: &[(usize, Series)],
    bars: &[(usize, LineSpread)],
    (xr, yr): ((f64, f64), (f64, f64)),
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let e = draw_err(&c.title);
    let mut chart = ChartBuilder::on(area)
        .margin_left(16)
        .margin_right(30)
        .margin_bottom(12)
        .margin_top(8)
        .x_label_area_size(58)
        .y_label_area_size(86)
        .build_cartesian_2d(x, y)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .x_labels(label_count(xr, c.x_scale))
        .y_labels(label_count(yr, c.y_scale))
        .x_label_formatter(&|v| fmt_value(*v))
        .y_label_formatter(&|v| fmt_value(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(&e)?;
    for (i, s) in series {
        let col = color(*i);
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                ShapeStyle::from(&col).stroke_width(2),
            ))
            .map_err(&e)?;
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new(*p, 4, ShapeStyle::from(&col).filled())),
            )
            .map_err(&e)?;
    }
    for (i, v) in bars {
        let style = ShapeStyle::from(&color(*i)).stroke_width(2);
        chart
            .draw_series(
                v.iter()
                    .map(|(x, lo, hi)| PathElement::new(vec![(*x, *lo), (*x, *hi)], style)),
            )
            .map_err(&e)?;
        // Caps at both ends, a few pixels wide.
        chart
            .draw_series(v.iter().flat_map(|(x, lo, hi)| {
                [*lo, *hi].map(|y| {
                    EmptyElement::at((*x, y)) + PathElement::new(vec![(-5, 0), (5, 0)], style)
                })
            }))
            .map_err(&e)?;
    }
    Ok(())
}

/// The height a bar chart of these categories and series needs.
fn bar_height(c: &BarChart, legend_names: &[String]) -> u32 {
    let n = c.categories.len().max(1) as u32;
    let ns = active(c).count().max(1) as u32;
    let per_bar = if ns > 1 { 18 } else { 24 };
    let group = per_bar * ns + 14;
    80 + 22 * legend_rows(legend_names) + 72 + n * group
}

/// The series with at least one value, with their positions (which set their colours).
fn active(c: &BarChart) -> impl Iterator<Item = (usize, &BarSeries)> {
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

fn draw_bars<X>(
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
    let cats = c.categories.clone();
    let cat_label = move |v: &f64| -> String {
        let r = v.round();
        if (v - r).abs() > 1e-6 || r < 0.0 || r as usize >= n {
            return String::new();
        }
        cats.get(n - 1 - r as usize).cloned().unwrap_or_default()
    };
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
        .map_err(&e)?;
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
                let whisker = ShapeStyle::from(&BLACK).stroke_width(2);
                chart
                    .draw_series([
                        PathElement::new(vec![(*lo, mid), (*hi, mid)], whisker),
                        PathElement::new(
                            vec![(*lo, mid - band * 0.3), (*lo, mid + band * 0.3)],
                            whisker,
                        ),
                        PathElement::new(
                            vec![(*hi, mid - band * 0.3), (*hi, mid + band * 0.3)],
                            whisker,
                        ),
                    ])
                    .map_err(&e)?;
            }
            if c.annotate {
                let label = fmt_value(v);
                // Long bars carry their value inside the end (reference lines often sit just
                // past it); short ones just after it.
                let frac = |v: f64| match c.scale {
                    Scale::Linear => (v - xr.0) / (xr.1 - xr.0),
                    _ => (v / xr.0).ln() / (xr.1 / xr.0).ln(),
                };
                // A reference line just past the bar's end would run through the value.
                let line_after = c
                    .reference_lines
                    .iter()
                    .any(|r| r.value >= v && frac(r.value) - frac(v) < 0.07);
                let inside = (frac(v) > 0.8 || line_after) && frac(v) > 0.08;
                let mid = (top + bottom) / 2.0;
                let size = if band * 0.92 * 100.0 < 14.0 { 13 } else { 14 };
                let elem = if inside {
                    let style = TextStyle::from((FONT, size).into_font())
                        .color(&WHITE)
                        .pos(Pos::new(HPos::Right, VPos::Center));
                    EmptyElement::at((v, mid)) + Text::new(label, (-5, 0), style)
                } else {
                    let style = TextStyle::from((FONT, size).into_font())
                        .pos(Pos::new(HPos::Left, VPos::Center));
                    EmptyElement::at((v, mid)) + Text::new(label, (5, 0), style)
                };
                labels.push(elem);
            }
        }
    }
    chart.draw_series(labels).map_err(&e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_compactly() {
        assert_eq!(fmt_value(4517.3), "4517");
        assert_eq!(fmt_value(12.34), "12.3");
        assert_eq!(fmt_value(1.0), "1");
        assert_eq!(fmt_value(0.25), "0.25");
        assert_eq!(fmt_value(0.125), "0.125");
        assert_eq!(fmt_value(0.0123), "0.0123");
        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(fmt_value(2.5e7), "2.5e7");
    }

    #[test]
    fn damaged_values_are_left_out_and_charts_finish() {
        // 1e308 once made the log axis' tick search loop forever; with it NaN, inf, 0 and a
        // negative: each chart must come back, without the damaged values.
        let damaged = [1e308, f64::NAN, f64::INFINITY, 0.0, -3948.0];
        for scale in [Scale::Log10, Scale::Log2, Scale::Linear] {
            let t = std::time::Instant::now();
            let bars = BarChart {
                title: "damaged".into(),
                value_label: "bandwidth (GB/s)".into(),
                categories: (0..damaged.len() + 1).map(|i| format!("c{i}")).collect(),
                series: vec![BarSeries {
                    name: "s".into(),
                    values: damaged
                        .iter()
                        .map(|v| Some(*v))
                        .chain([Some(12.5)])
                        .collect(),
                }],
                scale,
                reference_lines: vec![RefLine {
                    name: "bad".into(),
                    value: 1e308,
                }],
                annotate: true,
            };
            let svg = bar_chart(&bars).unwrap();
            assert!(svg.contains("12.5"), "{scale:?}");
            assert!(!svg.contains("NaN") && !svg.contains("e308"), "{scale:?}");
            // A negative bar is a real figure on a linear axis (readers refuse negative times
            // and bandwidths); on a log axis it is missing.
            assert_eq!(svg.contains("3948"), scale == Scale::Linear, "{scale:?}");
            let lines = LineChart {
                title: "damaged".into(),
                x_label: "size (GiB)".into(),
                y_label: "time (ms)".into(),
                x_scale: scale,
                y_scale: scale,
                series: vec![Series {
                    name: "s".into(),
                    points: damaged
                        .iter()
                        .map(|v| (1.0, *v))
                        .chain([(2.0, 3.0), (4.0, 5.0)])
                        .collect(),
                }],
            };
            let svg = line_chart(&lines).unwrap();
            assert!(!svg.contains("NaN"));
            assert!(
                t.elapsed().as_secs() < 30,
                "{scale:?} took {:?}",
                t.elapsed()
            );
        }
        assert!(!plottable(1e308, Scale::Linear) && !plottable(0.0, Scale::Log10));
        assert!(plottable(-3.0, Scale::Linear) && plottable(1e-3, Scale::Log2));
    }

    #[test]
    fn log_ranges_snap_to_powers() {
        let near = |(a, b): (f64, f64), (x, y): (f64, f64)| {
            assert!(
                (a / x - 1.0).abs() < 1e-6 && (b / y - 1.0).abs() < 1e-6,
                "{a}..{b}"
            );
            assert!(a <= x && b >= y, "the powers themselves are inside");
        };
        near(
            axis_range([0.03, 250.0].into_iter(), Scale::Log10, true),
            (0.01, 1000.0),
        );
        near(
            axis_range([0.25, 4.0].into_iter(), Scale::Log2, false),
            (0.25, 4.0),
        );
        near(
            axis_range([0.3, 5.0].into_iter(), Scale::Log2, false),
            (0.25, 8.0),
        );
        // Nothing to show: a default range, not a panic.
        assert_eq!(
            axis_range(std::iter::empty(), Scale::Log10, true),
            (1.0, 10.0)
        );
    }

    #[test]
    fn spread_draws_one_bar_per_point_and_one_whisker_per_bar() {
        let line = LineChart {
            title: "alloc".into(),
            x_label: "size (GiB)".into(),
            y_label: "ms".into(),
            x_scale: Scale::Log2,
            y_scale: Scale::Log10,
            series: vec![Series {
                name: "pinned".into(),
                points: vec![(0.25, 50.0), (1.0, 200.0)],
            }],
        };
        // Polylines in the series colour (the line, then the bars and caps of the spread).
        let count = |svg: &str| {
            svg.matches(r##"stroke="#1F77B4" stroke-width="2""##)
                .count()
        };
        let plain = line_chart(&line).unwrap();
        // One vertical bar and two caps per point; a spread below zero on a log axis is dropped.
        let spread = line_chart_spread(
            &line,
            &[vec![
                (0.25, 40.0, 60.0),
                (1.0, 150.0, 260.0),
                (4.0, -1.0, 3.0),
            ]],
        )
        .unwrap();
        assert_eq!(count(&spread), count(&plain) + 6, "{spread}");
        let bars = BarChart {
            title: "bw".into(),
            value_label: "GB/s".into(),
            categories: vec!["device".into(), "pool".into()],
            series: vec![BarSeries {
                name: "fill".into(),
                values: vec![Some(4000.0), Some(4300.0)],
            }],
            scale: Scale::Linear,
            reference_lines: Vec::new(),
            annotate: false,
        };
        let whiskers = |svg: &str| {
            svg.matches(r##"stroke="#000000" stroke-width="2""##)
                .count()
        };
        let plain = bar_chart(&bars).unwrap();
        let spread = bar_chart_spread(&bars, &[vec![Some((3900.0, 4100.0)), None]]).unwrap();
        assert_eq!(
            whiskers(&spread),
            whiskers(&plain) + 3,
            "one whisker: a line and two ends"
        );
    }

    #[test]
    fn charts_are_svg_with_labels() {
        let svg = line_chart(&LineChart {
            title: "t <1>".into(),
            x_label: "size (GiB)".into(),
            y_label: "allocation time (ms)".into(),
            x_scale: Scale::Log2,
            y_scale: Scale::Log10,
            series: vec![Series {
                name: "pinned".into(),
                points: vec![(0.25, 50.0), (1.0, 200.0), (4.0, 0.0)],
            }],
        })
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("size (GiB)") && svg.contains("allocation time (ms)"));
        assert!(svg.contains("t &lt;1&gt;"), "titles are escaped");
        let svg = bar_chart(&BarChart {
            title: "bw".into(),
            value_label: "bandwidth (GB/s)".into(),
            categories: vec!["device".into(), "managed+prefetch".into()],
            series: vec![BarSeries {
                name: "fill".into(),
                values: vec![Some(4000.0), None],
            }],
            scale: Scale::Log10,
            reference_lines: vec![RefLine {
                name: "cuMemsetD32".into(),
                value: 4500.0,
            }],
            annotate: true,
        })
        .unwrap();
        assert!(svg.contains("\ndevice\n"), "{svg}");
        assert!(svg.contains("managed+prefetch") && svg.contains("cuMemsetD32"));
        assert!(svg.contains("4000"));
    }
}
