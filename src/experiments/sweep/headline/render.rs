//! The headline's rendering: the "use it when" sentence, the table's header and cells, the text
//! form for the terminal, the Markdown blocks lifted into a report, and `compare`'s side-by-side
//! table. The figures come from the parent module; this file only words and lays them out.

use super::*;

/// The others of `all` whose value is indistinguishable from `x`'s: their ranges overlap.
fn ties<'a>(x: &Row, all: &'a [Row], range: impl Fn(&Row) -> Option<(f64, f64)>) -> Vec<&'a str> {
    let Some((lo, hi)) = range(x) else {
        return Vec::new();
    };
    all.iter()
        .filter(|o| o.strategy != x.strategy)
        .filter(|o| range(o).is_some_and(|(l, h)| l <= hi && h >= lo))
        .map(|o| o.strategy.as_str())
        .collect()
}

/// ", indistinguishable from a, b" or "".
fn tied(v: &[&str]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!(", indistinguishable from {}", v.join(", "))
    }
}

/// The sentence of rules 1 to 5 of the module doc for row `r` among `all`.
pub(super) fn use_when(r: &Row, all: &[Row], ceil: Option<&Ceiling>) -> String {
    let mut c: Vec<String> = Vec::new();
    c.extend(alloc_clause(r, all));
    match r.gpu_touch {
        Some(GpuTouch::ByPrefetch(m)) => c.push(format!(
            "you prefetch before the GPU uses it ({} ms/GiB to prefetch)",
            sig(m.value)
        )),
        Some(GpuTouch::OnTouch(m)) => c.push(format!(
            "you can pay {} ms/GiB at the first GPU touch",
            sig(m.value)
        )),
        Some(GpuTouch::AtAllocation) => c.push("the GPU needs it ready at its first touch".into()),
        None => {}
    }
    if let Some(m) = r.cpu_touch {
        let min = all
            .iter()
            .filter_map(|x| x.cpu_touch.map(|m| m.value))
            .fold(f64::INFINITY, f64::min);
        let fastest = all.iter().filter(|x| x.cpu_touch.is_some()).count() > 1 && m.value <= min;
        c.push(format!(
            "the CPU reads or writes it too (CPU first touch {} ms/GiB{})",
            sig(m.value),
            if fastest {
                format!(
                    ", the fastest here at n={}{}",
                    m.n,
                    tied(&ties(r, all, |x| x.cpu_touch.map(|m| (m.lo, m.hi))))
                )
            } else {
                String::new()
            }
        ));
    }
    c.extend(bandwidth_clause(r, ceil));
    c.extend(largest_clause(r, all));
    if c.is_empty() {
        return "no measured advantage on this device".into();
    }
    c.join("; ") + "."
}

/// Clause 1: the lowest allocation cost per GiB, or "allocated once" when it is slow.
fn alloc_clause(r: &Row, all: &[Row]) -> Option<String> {
    let a = r.alloc?;
    let alloc_range = |x: &Row| {
        x.alloc.map(|a| {
            let se = a.ms_per_gib_se.unwrap_or(0.0);
            ((a.ms_per_gib - se).max(0.0), (a.ms_per_gib + se).max(0.0))
        })
    };
    // A negative slope (noise over a size-independent cost) ranks as zero.
    let min = all
        .iter()
        .filter_map(|x| x.alloc.map(|a| a.ms_per_gib.max(0.0)))
        .fold(f64::INFINITY, f64::min);
    // "Cheapest" needs a standard error (3 sizes or more) to say what is indistinguishable.
    if all.len() > 1 && a.ms_per_gib_se.is_some() && a.ms_per_gib.max(0.0) <= min {
        Some(format!(
            "allocations must be cheapest ({} ms/GiB, the lowest here{})",
            sig(a.ms_per_gib),
            tied(&ties(r, all, alloc_range))
        ))
    } else if a.ms_per_gib >= SLOW_ALLOC_MS_PER_GIB {
        Some(format!(
            "it is allocated once and reused ({} ms/GiB to allocate)",
            sig(a.ms_per_gib)
        ))
    } else {
        None
    }
}

/// Clause 4: fill and read against the ceiling, full bandwidth or light traffic.
fn bandwidth_clause(r: &Row, ceil: Option<&Ceiling>) -> Option<String> {
    let ce = ceil.filter(|c| c.gbps > 0.0)?;
    let pct = |m: Option<Measure>| m.map(|m| 100.0 * m.value / ce.gbps);
    let parts: Vec<String> = [("fill", pct(r.fill)), ("read", pct(r.read))]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} {}%", pct_vs(v, FULL_BANDWIDTH_PCT))))
        .collect();
    let best = pct(r.fill)
        .into_iter()
        .chain(pct(r.read))
        .fold(f64::NAN, f64::max);
    if parts.is_empty() {
        return None;
    }
    Some(if best >= FULL_BANDWIDTH_PCT {
        format!(
            "the GPU needs full bandwidth ({} of {}; {FULL_BANDWIDTH_PCT:.0}% or more counts as full)",
            parts.join(", "),
            ce.what
        )
    } else {
        format!(
            "GPU traffic to it is light ({} of {}, both below {FULL_BANDWIDTH_PCT:.0}%)",
            parts.join(", "),
            ce.what
        )
    })
}

/// Clause 5: the largest single allocation of the probed rows.
fn largest_clause(r: &Row, all: &[Row]) -> Option<String> {
    let Largest::Probed {
        bytes, lower_bound, ..
    } = &r.largest
    else {
        return None;
    };
    let probed = |x: &Row| match &x.largest {
        Largest::Probed {
            bytes, step_bytes, ..
        } => Some((*bytes, *step_bytes)),
        Largest::NotProbed(_) => None,
    };
    let max = all
        .iter()
        .filter_map(|x| probed(x).map(|p| p.0))
        .max()
        .unwrap_or(0);
    if *bytes >= max && all.iter().filter(|x| probed(x).is_some()).count() > 1 {
        // Within one probe step of each other: not told apart.
        let near: Vec<&str> = all
            .iter()
            .filter(|o| o.strategy != r.strategy)
            .filter(|o| probed(o).is_some_and(|(b, step)| b + step.max(1) > *bytes))
            .map(|o| o.strategy.as_str())
            .collect();
        Some(format!(
            "one allocation must be as large as possible ({}{} GiB, the largest here{}{})",
            if *lower_bound { ">= " } else { "" },
            gib2(*bytes),
            if near.is_empty() {
                String::new()
            } else {
                format!(", with {} within one probe step", near.join(", "))
            },
            if *lower_bound {
                "; the probe stopped before a failure"
            } else {
                ""
            }
        ))
    } else {
        None
    }
}

/// The column headers (the "use it when" column last).
pub fn header(h: &Headline) -> Vec<String> {
    // The short name of the ceiling; the caption gives its size and GB/s.
    let ceil = h.ceiling.as_ref().map_or("no ceiling measured", |c| {
        if c.what.starts_with("cuMemsetD32") {
            "cuMemsetD32"
        } else {
            "device fill"
        }
    });
    vec![
        "strategy".into(),
        "allocation (ms/GiB: slope ± SE)".into(),
        "allocation fixed part (ms)".into(),
        "GPU first touch (ms/GiB over warm)".into(),
        "CPU first touch (ms/GiB)".into(),
        format!("fill (GB/s; % of {ceil})"),
        format!("read (GB/s; % of {ceil})"),
        "largest single allocation (GiB; % of cuMemGetInfo free)".into(),
        "use it when".into(),
    ]
}

/// The cells of one row, in [`header`] order.
pub fn cells(r: &Row, ceil: Option<&Ceiling>, device_big: u64) -> Vec<String> {
    let at = if r.bytes != device_big {
        format!(" at {}", fmt_bytes(r.bytes))
    } else {
        String::new()
    };
    let alloc = r.alloc.map_or("-".into(), |a| {
        let se = a
            .ms_per_gib_se
            .map_or(String::new(), |s| format!(" ± {}", sig(s)));
        let neg = if a.ms_per_gib + a.ms_per_gib_se.unwrap_or(0.0) < 0.0 {
            "; negative: no growth with size measurable"
        } else {
            ""
        };
        format!("{}{se} (n={} sizes{neg})", sig(a.ms_per_gib), a.sizes)
    });
    // A negative intercept is a fit artefact (no allocation takes negative time): labelled so.
    let fixed = r.alloc.and_then(|a| a.fixed_ms).map_or("-".into(), |f| {
        if f < 0.0 {
            format!("{} (below zero: a fit artefact)", sig(f))
        } else {
            sig(f)
        }
    });
    let gpu = match r.gpu_touch {
        None => "-".into(),
        Some(GpuTouch::AtAllocation) => format!("populated at allocation{at}"),
        Some(GpuTouch::ByPrefetch(m)) => format!(
            "populated by prefetch: {} ms/GiB{}{at}",
            sig(m.value),
            spread(&m)
        ),
        Some(GpuTouch::OnTouch(m)) => format!("{}{}{at}", sig(m.value), spread(&m)),
    };
    let cpu_at = if r.cpu_bytes != device_big {
        format!(" at {}", fmt_bytes(r.cpu_bytes))
    } else {
        String::new()
    };
    let cpu = r.cpu_touch.map_or(no_cpu_figure(r).into(), |m| {
        format!("{}{}{cpu_at}", sig(m.value), spread(&m))
    });
    let bw = |m: Option<Measure>| {
        m.map_or("-".into(), |m| {
            let pct = ceil.filter(|c| c.gbps > 0.0).map_or(String::new(), |c| {
                format!(
                    "; {}%",
                    pct_vs(100.0 * m.value / c.gbps, FULL_BANDWIDTH_PCT)
                )
            });
            format!("{:.1}{}{pct}{at}", m.value, spread_gbps(&m))
        })
    };
    let largest = match &r.largest {
        Largest::Probed {
            bytes,
            free_bytes,
            lower_bound,
            stop,
            ..
        } => {
            let pct = if *free_bytes > 0 {
                format!("; {:.1}%", 100.0 * *bytes as f64 / *free_bytes as f64)
            } else {
                String::new()
            };
            // ">=" already says "not a failure": the phrase's first part is enough here.
            format!(
                "{}{}{pct} ({})",
                if *lower_bound { ">= " } else { "" },
                gib2(*bytes),
                stop.split(',').next().unwrap_or(stop)
            )
        }
        Largest::NotProbed(why) => why.clone(),
    };
    vec![
        r.strategy.clone(),
        alloc,
        fixed,
        gpu,
        cpu,
        bw(r.fill),
        bw(r.read),
        largest,
        r.use_when.clone(),
    ]
}

fn spread_gbps(m: &Measure) -> String {
    if m.n > 1 && m.hi > m.lo {
        format!(" ({:.1}–{:.1}, n={})", m.lo, m.hi, m.n)
    } else {
        format!(" (n={})", m.n)
    }
}

impl Headline {
    /// The size of the per-size figures (the largest any strategy ran).
    pub fn size(&self) -> u64 {
        self.rows.iter().map(|r| r.bytes).max().unwrap_or(0)
    }

    /// Header and body.
    pub fn table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let big = self.size();
        (
            header(self),
            self.rows
                .iter()
                .map(|r| cells(r, self.ceiling.as_ref(), big))
                .collect(),
        )
    }

    /// The title of the table.
    pub fn title(&self) -> String {
        format!(
            "What memory costs on device {} ({}): per GiB, at {} unless a cell says otherwise",
            self.device,
            self.device_name,
            fmt_bytes(self.size())
        )
    }

    /// One paragraph: how the numbers were made.
    pub fn caption(&self) -> String {
        format!(
            "Allocation: least-squares fit of the alloc time against the size over every size the strategy ran (slope ± its standard error; the intercept is the fixed part). First touches: per GiB at the largest size that has them (a cell says when that is smaller); GPU first touch is the first minus the warm second touch. Spreads: min–max of n samples (one-shot phases: one per fresh allocation; bandwidth: every run on every allocation). Bandwidth percentages are of {}. GiB = 2^30 bytes, GB/s = 1e9 bytes per second.",
            self.ceiling
                .as_ref()
                .map_or("nothing (no ceiling measured)".to_string(), |c| format!(
                    "{} ({:.1} GB/s) in the same run",
                    c.what, c.gbps
                ))
        )
    }

    /// The lines under the table: one per strategy not measured.
    pub fn skipped_line(&self) -> Option<String> {
        (!self.skipped.is_empty()).then(|| format!("Not measured: {}.", self.skipped.join("; ")))
    }

    /// The numbers without the sentence column, then one "use it when" line per strategy (as in
    /// the terminal: nine columns do not fit a page, and a sentence reads better as a line).
    fn split(&self) -> (Vec<String>, Vec<Vec<String>>, Vec<String>) {
        let (mut h, mut b) = self.table();
        h.pop();
        let uses = b
            .iter_mut()
            .filter_map(|l| {
                let u = l.pop()?;
                Some(format!("{}: use it when {u}", l[0]))
            })
            .collect();
        (h, b, uses)
    }

    /// Adds the table, the "use it when" lines, the caption and the skipped line to `p`; returns
    /// the table's label.
    pub fn add_to(&self, p: &mut Page) -> String {
        let (h, b, uses) = self.split();
        let label = p.table(self.title(), &h, b);
        p.bullets(uses);
        p.para(self.caption());
        if let Some(s) = self.skipped_line() {
            p.para(s);
        }
        label
    }

    /// The terminal form: the table without the sentence column, then one "use it when" line
    /// per strategy and the skipped line.
    pub fn render_text(&self) -> String {
        let (h, b, uses) = self.split();
        let mut t = crate::report::new_table(&h);
        for line in b {
            t.add_row(line);
        }
        let mut out = format!("{}\n{t}\n{}\n", self.title(), self.caption());
        for u in uses {
            out.push_str(&format!("- {u}\n"));
        }
        if let Some(s) = self.skipped_line() {
            out.push_str(&format!("{s}\n"));
        }
        out
    }
}

/// The terminal form of every device's headline ("" when there is none).
pub fn render_all(hs: &[Headline]) -> String {
    hs.iter()
        .map(|h| h.render_text())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Moves the first `n` blocks of `from` to the end of `to` (a table built in the body, so that
/// it gets the body's first number, shown above the findings).
pub fn lift(to: &mut Page, from: &mut Page, n: usize) {
    let n = n.min(from.blocks.len());
    let moved: Vec<Block> = from.blocks.drain(..n).collect();
    to.blocks.extend(moved);
}

// ---------------------------------------------------------------- compare

/// One metric of a row across machines: (label, lower is better, the value of a row).
type Metric = (&'static str, bool, fn(&Row) -> Option<f64>);

const METRICS: [Metric; 7] = [
    ("allocation (ms/GiB)", true, |r| {
        r.alloc.map(|a| a.ms_per_gib)
    }),
    ("allocation fixed part (ms)", true, |r| {
        r.alloc.and_then(|a| a.fixed_ms)
    }),
    ("GPU first touch (ms/GiB over warm)", true, |r| {
        match r.gpu_touch {
            Some(GpuTouch::OnTouch(m)) => Some(m.value),
            _ => None,
        }
    }),
    ("CPU first touch (ms/GiB)", true, |r| {
        r.cpu_touch.map(|m| m.value)
    }),
    ("fill (GB/s)", false, |r| r.fill.map(|m| m.value)),
    ("read (GB/s)", false, |r| r.read.map(|m| m.value)),
    ("largest single allocation (GiB)", false, |r| {
        match &r.largest {
            Largest::Probed { bytes, .. } => Some(gib_of(*bytes)),
            Largest::NotProbed(_) => None,
        }
    }),
];

/// What the CPU first-touch cell says without a figure.
fn no_cpu_figure(r: &Row) -> &'static str {
    if r.host_accessible {
        "not measured"
    } else {
        "not host-accessible"
    }
}

/// The text of a metric's cell for a row (numbers, or what the headline says instead).
fn metric_text(i: usize, r: &Row) -> String {
    match (i, METRICS[i].2(r)) {
        (6, Some(v)) => format!("{v:.2}"),
        (_, Some(v)) => sig(v),
        (2, None) => match r.gpu_touch {
            Some(GpuTouch::AtAllocation) => "at allocation".into(),
            Some(GpuTouch::ByPrefetch(m)) => format!("prefetch {}", sig(m.value)),
            _ => "-".into(),
        },
        (3, None) => no_cpu_figure(r).into(),
        (6, None) => "not probed".into(),
        _ => "-".into(),
    }
}

/// The headline of several machines as one table: a row per (strategy, metric), one column per
/// machine (`ids[i]`), and after every machine but the first its ratio to the first; then each
/// machine's "use it when" line per strategy.
pub fn compare_table(
    ids: &[String],
    hs: &[Option<&Headline>],
) -> (Vec<String>, Vec<Vec<String>>, Vec<String>) {
    let mut uses = Vec::new();
    let mut header = vec!["strategy".to_string(), "measure".to_string()];
    for (i, id) in ids.iter().enumerate() {
        header.push(id.clone());
        if i > 0 {
            header.push(format!("{id}/{}", ids[0]));
        }
    }
    let mut strategies: Vec<String> = Vec::new();
    for h in hs.iter().flatten() {
        for r in &h.rows {
            if !strategies.contains(&r.strategy) {
                strategies.push(r.strategy.clone());
            }
        }
    }
    // The size of each machine's per-size figures, first: per-GiB figures at different sizes.
    let mut body = vec![{
        let mut l = vec![
            "all".to_string(),
            "touches and bandwidth measured at".to_string(),
        ];
        for (i, h) in hs.iter().enumerate() {
            l.push(h.map_or("-".into(), |h| fmt_bytes(h.size())));
            if i > 0 {
                l.push(String::new());
            }
        }
        l
    }];
    for st in &strategies {
        let rows: Vec<Option<&Row>> = hs
            .iter()
            .map(|h| h.and_then(|h| h.rows.iter().find(|r| &r.strategy == st)))
            .collect();
        for (m, (label, lower, get)) in METRICS.iter().enumerate() {
            let mut line = vec![
                st.clone(),
                format!(
                    "{label}, {} is better",
                    if *lower { "lower" } else { "higher" }
                ),
            ];
            let first = rows[0].and_then(get);
            for (i, r) in rows.iter().enumerate() {
                line.push(r.map_or("not measured".into(), |r| metric_text(m, r)));
                if i > 0 {
                    line.push(match (r.and_then(get), first) {
                        // A ratio of a negative fit (no size dependence) means nothing.
                        (Some(v), Some(f)) if f > 0.0 && v > 0.0 => format!("{:.2}x", v / f),
                        _ => "-".into(),
                    });
                }
            }
            body.push(line);
        }
        for (id, r) in ids.iter().zip(&rows) {
            if let Some(r) = r {
                uses.push(format!("{id}, {st}: use it when {}", r.use_when));
            }
        }
    }
    (header, body, uses)
}
