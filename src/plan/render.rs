//! Text rendering of a plan for people, in the Markdown tables every other command prints (the
//! shared `report::new_table` style), with the unit in every numeric header (GB = 1e9 bytes,
//! GiB = 2^30 bytes). The verdict comes first; a one-model, one-precision question answers in
//! about 20 lines of at most 80 columns. `--verbose` adds the line-by-line formulas, the capacity
//! matrix and the assumptions. JSON is the report struct through serde_json, done by the caller.
//!
//! Prose lines are wrapped to 80 columns by [`wrap`], a dozen lines of greedy word wrapping:
//! the one place that needs it does not justify a new dependency.

use super::estimate::{Estimate, LargestFit, Limit, Verdict, fmt_count, fmt_gb, fmt_gib};
use super::{CapacityMatrix, PlanReport, Workload};
use crate::report::new_table;
use crate::units::{GB, GIB};

/// The width every line of the short answer stays within.
pub const WIDTH: usize = 80;

/// Greedy word wrap of `text` to `width` columns; continuation lines start with `indent`.
/// A single word longer than the width (a URL) stays whole on its own line.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.to_string();
        } else if !line.is_empty() && !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.trim().is_empty() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A bullet line wrapped to [`WIDTH`].
fn bullet(text: &str) -> String {
    wrap(&format!("- {text}"), WIDTH, "  ")
}

/// GB with one decimal for the summary (the exact bytes are in `--verbose` and `--json`).
fn gb1(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / GB as f64)
}

fn largest(l: &Option<LargestFit>, marks: &mut Vec<&'static str>) -> String {
    match l {
        None => "none".to_string(),
        Some(f) => {
            let v = fmt_count(f.value as f64);
            let mark = match f.limited_by {
                Limit::Memory => return v,
                Limit::ModelMaximum => "* = the model's maximum context",
                Limit::SearchCap => "+ = the search cap, not memory, stopped the search",
            };
            if !marks.contains(&mark) {
                marks.push(mark);
            }
            format!("{v}{}", &mark[..1])
        }
    }
}

/// A short workload label for the summary table; the precision is left out when the whole plan
/// has one (the title names it).
fn short_label(e: &Estimate, one_precision: bool) -> String {
    let base = match e.workload {
        Workload::Inference => "inference".to_string(),
        Workload::FullFinetune => "full FT".to_string(),
        Workload::Lora => "LoRA".to_string(),
        Workload::Qlora => "QLoRA".to_string(),
        Workload::All => "all".to_string(),
    };
    let with_precision = if one_precision || matches!(e.workload, Workload::Lora | Workload::Qlora)
    {
        base
    } else {
        format!("{base} {}", e.precision)
    };
    match e.gradient_checkpointing {
        Some(true) => format!("{with_precision}, ckpt"),
        Some(false) => format!("{with_precision}, no ckpt"),
        None => with_precision,
    }
}

fn verdict_sentence(e: &Estimate) -> String {
    let v = match e.verdict {
        Verdict::Fits => "fits",
        Verdict::Tight => "fits, tightly",
        Verdict::DoesNotFit => "does not fit",
    };
    format!(
        "{v}: {} GB, {:.1}% of the {} GB budget",
        gb1(e.total_bytes),
        e.budget_percent,
        gb1(e.budget_bytes)
    )
}

/// The plan as text: the short answer, plus the long form when `verbose`.
pub fn render_text(r: &PlanReport, verbose: bool) -> String {
    let mut out = verdict_lines(r);
    out.push_str(&estimates_table(r));
    out.push_str(&weights_section(r));
    if !r.notes.is_empty() {
        out.push('\n');
        for n in &r.notes {
            out.push_str(&bullet(n));
        }
    }

    if !verbose {
        out.push_str(
            "\n-v (--verbose): shape, formulas line by line, capacity matrix, assumptions\n",
        );
        return out;
    }

    out.push_str(&render_details(r));
    out
}

/// The question, the verdict, the budget and the settings: the opening lines.
fn verdict_lines(r: &PlanReport) -> String {
    let mut out = String::new();
    let m = &r.model;
    let t = &r.target;
    let s = &r.settings;
    // The question and the verdict first.
    let formats = match r.precisions.as_slice() {
        [p] => format!(", {} weights", p.precision),
        _ => String::new(),
    };
    out.push_str(&wrap(
        &format!(
            "{} ({} parameters){formats} on {}",
            m.name,
            fmt_params(m.params),
            t.target.name
        ),
        WIDTH,
        "  ",
    ));
    let first = r
        .estimates
        .iter()
        .find(|e| e.workload == Workload::Inference)
        .or(r.estimates.first());
    let inference: Vec<&Estimate> = r
        .estimates
        .iter()
        .filter(|e| e.workload == Workload::Inference)
        .collect();
    if inference.len() > 1 {
        // Several formats: which fit, in one sentence.
        let names = |fit: bool| -> Vec<String> {
            inference
                .iter()
                .filter(|e| (e.verdict != Verdict::DoesNotFit) == fit)
                .map(|e| e.precision.to_string())
                .collect()
        };
        let (fits, not) = (names(true), names(false));
        let sentence = match (fits.is_empty(), not.is_empty()) {
            (false, true) => format!("inference fits in all {} formats", fits.len()),
            (true, _) => format!("inference fits in none of the {} formats", not.len()),
            (false, false) => format!(
                "inference fits in {}; not in {}",
                fits.join(", "),
                not.join(", ")
            ),
        };
        out.push_str(&wrap(
            &format!("{sentence} (budget {} GB)", gb1(t.budget_bytes)),
            WIDTH,
            "  ",
        ));
    } else if let Some(e) = first {
        out.push_str(&wrap(
            &format!("{} {}", short_label(e, true), verdict_sentence(e)),
            WIDTH,
            "  ",
        ));
    }
    let gib1 = |b: u64| crate::units::fmt_gib_dp(b, 1);
    let budget = if t.target.unified {
        format!(
            "budget: {} GB ({} GiB) less {} GiB host headroom = {} GB ({} GiB)",
            gb1(t.target.bytes),
            gib1(t.target.bytes),
            t.host_headroom_bytes / GIB,
            gb1(t.budget_bytes),
            gib1(t.budget_bytes)
        )
    } else {
        format!(
            "budget: {} GB ({} GiB), all of the target's memory",
            gb1(t.budget_bytes),
            gib1(t.budget_bytes)
        )
    };
    out.push_str(&wrap(&budget, WIDTH, "  "));
    out.push_str(&wrap(
        &format!(
            "context {} tokens, batch {}, KV cache {}, LoRA rank {}",
            fmt_count(s.context as f64),
            s.batch,
            s.kv_dtype,
            s.lora_rank
        ),
        WIDTH,
        "  ",
    ));
    out
}

/// One line per estimate: GB, share of the budget, verdict, the largest context and batch, with
/// the legend under it.
fn estimates_table(r: &PlanReport) -> String {
    let mut out = String::new();
    if r.estimates.is_empty() {
        return out;
    }
    let s = &r.settings;
    let one_precision = r.precisions.len() == 1;
    let mut marks = Vec::new();
    let mut st = new_table(&[
        "workload",
        "GB",
        "% budget",
        "verdict",
        "max ctx",
        "max batch",
    ]);
    for e in &r.estimates {
        st.add_row(vec![
            short_label(e, one_precision),
            gb1(e.total_bytes),
            format!("{:.1}", e.budget_percent),
            e.verdict.as_str().to_string(),
            largest(&e.largest_context, &mut marks),
            largest(&e.largest_batch, &mut marks),
        ]);
    }
    out.push('\n');
    out.push_str(&st.to_string());
    out.push('\n');
    let mut legend = format!(
        "max ctx: largest context that fits (tokens); max batch: at {} tokens",
        fmt_count(s.context as f64)
    );
    for mark in marks {
        legend.push_str("; ");
        legend.push_str(mark);
    }
    out.push_str(&wrap(&legend, WIDTH, "  "));
    let training = r
        .estimates
        .iter()
        .any(|e| e.gradient_checkpointing.is_some());
    if training {
        out.push_str(&wrap(
            "ckpt: gradient checkpointing; LoRA on a bf16 base, QLoRA on nf4; AdamW",
            WIDTH,
            "  ",
        ));
    }
    out
}

/// The weights: one line for one format, a table for several.
fn weights_section(r: &PlanReport) -> String {
    let mut out = String::new();
    if let [p] = r.precisions.as_slice() {
        out.push_str(&wrap(
            &format!(
                "weights {}: {} GB ({} GiB), {} B/param",
                p.precision,
                fmt_gb(p.weights_bytes),
                fmt_gib(p.weights_bytes),
                p.bytes_per_param
            ),
            WIDTH,
            "  ",
        ));
    } else if !r.precisions.is_empty() {
        out.push_str("\nWeights by format\n");
        let mut pt = new_table(&["format", "B/param", "weights (GB)", "weights (GiB)"]);
        for p in &r.precisions {
            pt.add_row(vec![
                p.precision.to_string(),
                format!("{}", p.bytes_per_param),
                fmt_gb(p.weights_bytes),
                fmt_gib(p.weights_bytes),
            ]);
        }
        out.push_str(&pt.to_string());
        out.push('\n');
    }
    out
}

/// "70.55B" from a parameter count.
fn fmt_params(p: f64) -> String {
    format!("{:.2}B", p / 1e9)
}

/// The long form `--verbose` adds: the model's shape and source, the target's note, each
/// format's layout, each estimate line by line with its formula, the capacity matrix and the
/// assumptions.
fn render_details(r: &PlanReport) -> String {
    let mut out = String::new();
    let m = &r.model;
    let a = &m.architecture;
    out.push_str(&format!("\nModel: {} ({})\n", m.name, m.input));
    out.push_str(&bullet(&format!("shape: {}", a.describe())));
    let mut params = format!("parameters: {} used for weights", fmt_count(m.params));
    if m.reference_shape {
        params.push_str(&format!(
            " (reference shape derives {})",
            fmt_count(m.params_derived)
        ));
    } else if let Some(p) = m.params_published {
        params.push_str(&format!(" (derived; published {})", fmt_params(p)));
    }
    if a.is_moe() {
        params.push_str(&format!(
            ", {} active per token",
            fmt_count(m.active_params)
        ));
    }
    out.push_str(&bullet(&params));
    out.push_str(&bullet(&format!("source: {}", m.source)));
    if let Some(n) = &r.target.note {
        out.push_str(&bullet(&format!("target: {n}")));
    }
    let gc = match r.settings.gradient_checkpointing {
        Some(true) => "on",
        Some(false) => "off",
        None => "both shown",
    };
    out.push_str(&bullet(&format!(
        "settings: workload {}, gradient checkpointing {gc}",
        r.settings.workload
    )));

    if !r.precisions.is_empty() {
        out.push_str("\nWeight formats\n");
        for p in &r.precisions {
            out.push_str(&bullet(&format!(
                "{}: {} bits/param, {} B/param with scales: {}",
                p.precision, p.bits_per_param, p.bytes_per_param, p.layout
            )));
        }
    }

    for e in &r.estimates {
        out.push_str(&format!(
            "\n{}: {} GB ({} GiB), {:.1}% of budget, {}\n",
            e.label,
            fmt_gb(e.total_bytes),
            fmt_gib(e.total_bytes),
            e.budget_percent,
            e.verdict.as_str()
        ));
        let mut dt = new_table(&["item", "GB", "GiB"]);
        for l in &e.lines {
            dt.add_row(vec![l.label.clone(), fmt_gb(l.bytes), fmt_gib(l.bytes)]);
        }
        dt.add_row(vec![
            "total".to_string(),
            fmt_gb(e.total_bytes),
            fmt_gib(e.total_bytes),
        ]);
        out.push_str(&dt.to_string());
        out.push('\n');
        for l in &e.lines {
            out.push_str(&bullet(&format!("{}: {}", l.label, l.formula)));
        }
        out.push_str(&bullet(&format!(
            "total: {} B",
            fmt_count(e.total_bytes as f64)
        )));
    }

    out.push('\n');
    out.push_str(&render_capacity_text(&r.capacity));

    out.push_str("\nAssumptions:\n");
    for a in &r.assumptions {
        out.push_str(&bullet(a));
    }
    out
}

/// The capacity matrix as text.
pub fn render_capacity_text(c: &CapacityMatrix) -> String {
    let mut out = wrap(
        &format!(
            "Largest dense model on {} (budget {} GB = {} GiB), context {}, batch {}",
            c.target.name,
            fmt_gb(c.budget_bytes),
            fmt_gib(c.budget_bytes),
            fmt_count(c.context as f64),
            c.batch
        ),
        WIDTH,
        "  ",
    );
    let mut t = new_table(&[
        "workload",
        "largest model (B params)",
        "reference layers",
        "total at that size (GB)",
    ]);
    for row in &c.rows {
        t.add_row(vec![
            row.label.clone(),
            format!("{:.2}", row.max_params_billions),
            row.layers.to_string(),
            fmt_gb(row.total_bytes),
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    for a in &c.assumptions {
        out.push_str(&bullet(a));
    }
    out
}
