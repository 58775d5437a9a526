//! Line charts (allocation time against size), with min-max bars where points have a spread.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

use super::*;
use crate::error::Result;

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

pub(super) fn draw_lines<X, Y>(
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
