//! The figures drawn from small inputs: axes, legends, spreads and refused values.

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
