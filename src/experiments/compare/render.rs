//! `compare`'s output: the text tables for a terminal, and the page (`compare.md`,
//! `compare.html`) whose sections each experiment of the registry adds from its tables.
//!
//! May import: the registry, compare's model and input, the report page and headline.

use super::build::HEADLINE_TITLE;
use super::input::columns;
use crate::error::Result;
use crate::experiments::lab::comparable::{CompareReport, Input, PageCtx, table_cells};
use crate::experiments::lab::registry;
use crate::experiments::sweep::headline;
use crate::report::markdown::Page;
use crate::report::new_table;

/// The tables for a terminal.
pub fn render_text(rep: &CompareReport) -> String {
    let mut out = String::new();
    for c in &rep.columns {
        out.push_str(&format!("{} = {}\n", c.id, c.label));
    }
    for n in &rep.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push('\n');
    if let Some(h) = &rep.headline {
        let mut t = new_table(&h.header);
        for l in &h.rows {
            t.add_row(l.clone());
        }
        out.push_str(&format!("{HEADLINE_TITLE}\n{t}\n"));
        for u in &h.uses {
            out.push_str(&format!("- {u}\n"));
        }
        out.push('\n');
    }
    let mut header = vec!["".to_string()];
    header.extend(rep.columns.iter().map(|c| c.id.clone()));
    let mut t = new_table(&header);
    for f in &rep.machines {
        let mut line = vec![f.key.clone()];
        line.extend(f.values.iter().cloned());
        t.add_row(line);
    }
    out.push_str(&format!("machines\n{t}\n\n"));
    for tb in &rep.tables {
        let (header, body) = table_cells(tb, &rep.columns);
        let mut t = new_table(&header);
        for l in body {
            t.add_row(l);
        }
        out.push_str(&format!(
            "{} ({}; {})\n{t}\n\n",
            tb.title,
            tb.direction(),
            tb.against(&rep.columns)
        ));
    }
    out
}

/// The page (Markdown and HTML) with one series per machine in every plot.
pub fn page(rep: &CompareReport, inputs: &[Input]) -> Result<Page> {
    let labels: Vec<String> = rep
        .columns
        .iter()
        .map(|c| format!("{}: {}", c.id, c.label))
        .collect();
    let names: Vec<String> = rep.columns.iter().map(|c| c.label.clone()).collect();
    let ids: Vec<String> = rep.columns.iter().map(|c| c.id.clone()).collect();
    let mut p = Page::new(format!("cumemlab compare: {}", names.join(" vs ")));
    p.para(format!(
        "{} machines (a machine is one device of one input): {}. Every table gives each machine's value and its ratio to the first machine with a figure there (A unless said otherwise). GB = 1e9 bytes, GiB = 2^30 bytes, GB/s = 1e9 bytes per second.",
        labels.len(),
        labels.join("; ")
    ));
    for n in &rep.notes {
        p.para(format!("Note: {n}."));
    }
    let mut findings = Vec::new();
    let mut body = Page::new("");
    if let Some(h) = &rep.headline {
        body.h2("What memory costs on each machine");
        body.table(HEADLINE_TITLE, &h.header, h.rows.clone());
        body.bullets(h.uses.clone());
        body.para("Per strategy and machine, the figures of each machine's own headline table (allocation: least-squares slope and intercept of the alloc time against the size; first touches and bandwidth at the machine's largest sweep size; largest single allocation from the probe), then each machine's value over A's. A ratio above 1 is better where higher is better, worse where lower is.");
    }
    let head_blocks = body.blocks.len();
    body.h2("Machines");
    let mut header = vec!["".to_string()];
    header.extend(rep.columns.iter().map(|c| c.id.clone()));
    body.table(
        "The machines compared",
        &header,
        rep.machines
            .iter()
            .map(|f| {
                let mut l = vec![f.key.clone()];
                l.extend(f.values.iter().cloned());
                l
            })
            .collect(),
    );
    let cols = columns(inputs);
    let ctx = PageCtx {
        rep,
        inputs,
        cols: &cols,
        labels,
        ids,
    };
    for exp in registry::EXPERIMENTS {
        exp.compare_page(&ctx, &mut body, &mut findings)?;
    }
    if rep.tables.iter().any(|t| t.id.starts_with("accounting.")) {
        body.h2("Memory accounting");
        ctx.table(&mut body, "accounting.start_gib");
        ctx.table(&mut body, "accounting.cached_gib");
    }
    headline::lift(&mut p, &mut body, head_blocks);
    p.h2("Findings");
    if findings.is_empty() {
        p.para("No measurement common to the machines to compare.");
    } else {
        p.bullets(findings);
    }
    p.blocks.extend(body.blocks);
    Ok(p)
}
