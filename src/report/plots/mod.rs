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
//!
//! This file holds the chart types, the axes and the legend band; `line` and `bar` draw each kind.
//! May import: `error`, `units`; never the experiments.

use plotters::coord::Shift;
use plotters::coord::combinators::LogCoord;
use plotters::prelude::*;

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

pub(super) fn draw_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
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

pub(super) fn trim_zeros(s: String) -> String {
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
pub(super) fn plottable(v: f64, scale: Scale) -> bool {
    v.is_finite() && v.abs() <= MAX_PLOTTED && (scale == Scale::Linear || v >= MIN_LOG_PLOTTED)
}

/// The range an axis shows: for log scales, out to the enclosing powers of the base.
pub(super) fn axis_range(
    values: impl Iterator<Item = f64>,
    scale: Scale,
    include_zero: bool,
) -> (f64, f64) {
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
pub(super) fn label_count(range: (f64, f64), scale: Scale) -> usize {
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
pub(super) fn title_and_legend<'a>(
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
pub(super) fn legend_rows(names: &[String]) -> u32 {
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

pub(super) fn log(r: (f64, f64), s: Scale) -> LogCoord<f64> {
    let l = (r.0..r.1).log_scale();
    if s == Scale::Log2 {
        l.base(2.0).into()
    } else {
        l.into()
    }
}

mod bar;
mod line;
#[cfg(test)]
mod tests;

pub use bar::{bar_chart, bar_chart_spread};
pub use line::{line_chart, line_chart_spread};
