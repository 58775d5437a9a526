//! Text rendering of a plan for people: tables with the unit in every numeric header (GB = 1e9
//! bytes, GiB = 2^30 bytes), then the notes and assumptions. JSON is the report struct through
//! serde_json, done by the caller.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use super::estimate::{LargestFit, Limit, fmt_count, fmt_gb, fmt_gib};
use super::{CapacityMatrix, PlanReport};
use crate::units::GIB;

/// Widest a table grows before its formula column wraps.
const TABLE_WIDTH: u16 = 160;

fn table(header: Vec<&str>, right_from: usize) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Dynamic);
    t.set_width(TABLE_WIDTH);
    let n = header.len();
    t.set_header(header);
    for i in right_from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

fn largest(l: &Option<LargestFit>) -> String {
    match l {
        None => "none".to_string(),
        Some(f) => {
            let v = fmt_count(f.value as f64);
            match f.limited_by {
                Limit::Memory => v,
                Limit::ModelMaximum => format!("{v} (model max)"),
                Limit::SearchCap => format!("{v} (search cap)"),
            }
        }
    }
}

fn billions(p: f64) -> String {
    format!("{:.2}B", p / 1e9)
}

/// The whole plan as text.
pub fn render_text(r: &PlanReport) -> String {
    let mut out = String::new();
    let m = &r.model;
    let a = &m.architecture;
    out.push_str(&format!("Model: {} ({})\n", m.name, m.input));
    out.push_str(&format!("  shape: {}\n", a.describe()));
    let mut params = format!("  parameters: {} used for weights", fmt_count(m.params));
    if m.reference_shape {
        params.push_str(&format!(
            " (reference shape derives {})",
            fmt_count(m.params_derived)
        ));
    } else if let Some(p) = m.params_published {
        params.push_str(&format!(" (derived; published {})", billions(p)));
    }
    if a.is_moe() {
        params.push_str(&format!(
            ", {} active per token",
            fmt_count(m.active_params)
        ));
    }
    out.push_str(&params);
    out.push('\n');
    out.push_str(&format!("  source: {}\n", m.source));

    let t = &r.target;
    out.push_str(&format!(
        "Target: {}: {} GB ({} GiB){}; budget {} GB ({} GiB)",
        t.target.name,
        fmt_gb(t.target.bytes),
        fmt_gib(t.target.bytes),
        if t.target.unified {
            format!(
                ", unified memory, less {} GiB host headroom",
                t.host_headroom_bytes / GIB
            )
        } else {
            String::new()
        },
        fmt_gb(t.budget_bytes),
        fmt_gib(t.budget_bytes)
    ));
    out.push('\n');
    if let Some(n) = &t.note {
        out.push_str(&format!("  {n}\n"));
    }
    let s = &r.settings;
    out.push_str(&format!(
        "Settings: workload {}, context {} tokens, batch {}, KV cache {}, LoRA rank {}, gradient checkpointing {}\n\n",
        s.workload,
        fmt_count(s.context as f64),
        s.batch,
        s.kv_dtype,
        s.lora_rank,
        match s.gradient_checkpointing {
            Some(true) => "on",
            Some(false) => "off",
            None => "both shown",
        }
    ));

    if !r.precisions.is_empty() {
        out.push_str("Weights by format (GB = 1e9 B, GiB = 2^30 B)\n");
        let mut pt = table(
            vec![
                "format",
                "bits/param",
                "bytes/param (with scales)",
                "weights (GB)",
                "weights (GiB)",
                "layout",
            ],
            1,
        );
        if let Some(c) = pt.column_mut(5) {
            c.set_cell_alignment(CellAlignment::Left);
        }
        for p in &r.precisions {
            pt.add_row(vec![
                p.precision.to_string(),
                format!("{}", p.bits_per_param),
                format!("{}", p.bytes_per_param),
                fmt_gb(p.weights_bytes),
                fmt_gib(p.weights_bytes),
                p.layout.clone(),
            ]);
        }
        out.push_str(&pt.to_string());
        out.push_str("\n\n");
    }

    if !r.estimates.is_empty() {
        out.push_str(&format!(
            "Summary against {} (budget {} GB = {} GiB; tight above {:.0}%)\n",
            t.target.name,
            fmt_gb(t.budget_bytes),
            fmt_gib(t.budget_bytes),
            super::TIGHT_FRACTION * 100.0
        ));
        let mut st = table(
            vec![
                "workload",
                "total (GB)",
                "total (GiB)",
                "% of budget",
                "verdict",
                "largest context (tokens)",
                "largest batch",
            ],
            1,
        );
        if let Some(c) = st.column_mut(4) {
            c.set_cell_alignment(CellAlignment::Left);
        }
        for e in &r.estimates {
            st.add_row(vec![
                e.label.clone(),
                fmt_gb(e.total_bytes),
                fmt_gib(e.total_bytes),
                format!("{:.1}", e.budget_percent),
                e.verdict.as_str().to_string(),
                largest(&e.largest_context),
                largest(&e.largest_batch),
            ]);
        }
        out.push_str(&st.to_string());
        out.push_str("\n\n");

        for e in &r.estimates {
            out.push_str(&format!(
                "{}: {} GB ({} GiB), {:.1}% of budget, {}\n",
                e.label,
                fmt_gb(e.total_bytes),
                fmt_gib(e.total_bytes),
                e.budget_percent,
                e.verdict.as_str()
            ));
            let mut dt = table(vec!["item", "GB", "GiB", "formula"], 1);
            if let Some(c) = dt.column_mut(3) {
                c.set_cell_alignment(CellAlignment::Left);
            }
            for l in &e.lines {
                dt.add_row(vec![
                    l.label.clone(),
                    fmt_gb(l.bytes),
                    fmt_gib(l.bytes),
                    l.formula.clone(),
                ]);
            }
            dt.add_row(vec![
                "total".to_string(),
                fmt_gb(e.total_bytes),
                fmt_gib(e.total_bytes),
                format!("{} B", fmt_count(e.total_bytes as f64)),
            ]);
            out.push_str(&dt.to_string());
            out.push_str("\n\n");
        }
    }

    out.push_str(&render_capacity_text(&r.capacity));
    out.push('\n');

    if !r.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for n in &r.notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out.push_str("\nAssumptions:\n");
    for a in &r.assumptions {
        out.push_str(&format!("- {a}\n"));
    }
    out
}

/// The capacity matrix as text.
pub fn render_capacity_text(c: &CapacityMatrix) -> String {
    let mut out = format!(
        "Largest dense model on {} (budget {} GB = {} GiB), context {}, batch {}\n",
        c.target.name,
        fmt_gb(c.budget_bytes),
        fmt_gib(c.budget_bytes),
        fmt_count(c.context as f64),
        c.batch
    );
    let mut t = table(
        vec![
            "workload",
            "largest model (billions of params)",
            "reference layers",
            "total at that size (GB)",
        ],
        1,
    );
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
        out.push_str(&format!("- {a}\n"));
    }
    out
}
