//! The HTML form of a report [`Page`]: one self-contained file (styles inline, every figure an
//! inline SVG, no script, no font or network fetch), so a results folder copied off a machine
//! opens anywhere in a browser, offline.

use super::markdown::{Block, Page};

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text and turns `code` spans into `<code>` and **bold** into `<strong>`.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", escape(part)));
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    out.push_str(&format!("<strong>{}</strong>", escape(p)));
                } else {
                    out.push_str(&escape(p));
                }
            }
        }
    }
    out
}

/// Numbers (with an optional sign, unit suffix `x` or `%`, or `-` for none) align right.
fn is_numeric(cell: &str) -> bool {
    let t = cell.trim().trim_end_matches(['x', '%']);
    t == "-" || (!t.is_empty() && t.parse::<f64>().is_ok())
}

fn anchor(s: &str) -> String {
    super::markdown::sanitize(s)
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;\
color:#1d1d1f;margin:0;background:#f6f7f9}\
main{max-width:1080px;margin:0 auto;padding:24px 32px 64px;background:#fff}\
h1{font-size:1.9em;margin:.4em 0 .3em}h2{margin-top:2em;border-bottom:2px solid #e3e5e8;padding-bottom:.2em}\
h3{margin-top:1.5em}p,li{line-height:1.5}code{background:#f0f1f3;padding:1px 4px;border-radius:3px;font-size:.92em}\
pre{background:#f0f1f3;padding:10px 14px;overflow-x:auto;border-radius:4px}\
div.table{display:inline-block;vertical-align:top;max-width:100%;margin:.6em 28px 1.2em 0}\
.tcap{font-weight:600;font-size:.92em;padding:4px 0}.tw{overflow-x:auto;max-width:100%}\
table{border-collapse:collapse;font-size:.9em}\
th,td{border:1px solid #d5d8dc;padding:4px 8px;text-align:left;white-space:nowrap}\
th{background:#eef0f3;white-space:normal}td.w{white-space:normal;min-width:7em}td.s{white-space:normal;min-width:24em}td.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1.2em 0 2em}figure svg{width:100%;height:auto;border:1px solid #e3e5e8}\
figcaption{font-size:.92em;color:#444;margin-top:.4em;line-height:1.45}\
nav ul{columns:2;font-size:.95em}.findings li{margin:.35em 0}";

/// The whole HTML document.
pub fn to_html(page: &Page) -> String {
    let mut body = String::new();
    let headings: Vec<&String> = page
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading(2, t) => Some(t),
            _ => None,
        })
        .collect();
    if headings.len() > 2 {
        body.push_str("<nav><strong>Contents</strong><ul>");
        for h in &headings {
            body.push_str(&format!(
                "<li><a href=\"#{}\">{}</a></li>",
                anchor(h),
                inline(h)
            ));
        }
        body.push_str("</ul></nav>\n");
    }
    let mut in_findings = false;
    for b in &page.blocks {
        match b {
            Block::Heading(level, t) => {
                in_findings = t.starts_with("Findings");
                body.push_str(&format!(
                    "<h{level} id=\"{}\">{}</h{level}>\n",
                    anchor(t),
                    inline(t)
                ));
            }
            Block::Paragraph(t) => body.push_str(&format!("<p>{}</p>\n", inline(t))),
            Block::Bullets(items) => {
                body.push_str(if in_findings {
                    "<ul class=\"findings\">"
                } else {
                    "<ul>"
                });
                for i in items {
                    body.push_str(&format!("<li>{}</li>", inline(i)));
                }
                body.push_str("</ul>\n");
            }
            Block::Code(t) => body.push_str(&format!("<pre>{}</pre>\n", escape(t))),
            Block::Table(t) => {
                body.push_str(&format!(
                    "<div class=\"table\" id=\"table-{}\"><div class=\"tcap\">{}: {}</div><div class=\"tw\"><table><thead><tr>",
                    t.number,
                    t.label(),
                    inline(&t.title)
                ));
                for h in &t.header {
                    body.push_str(&format!("<th>{}</th>", inline(h)));
                }
                body.push_str("</tr></thead><tbody>");
                for r in &t.rows {
                    body.push_str("<tr>");
                    for c in r {
                        if is_numeric(c) {
                            body.push_str(&format!("<td class=\"n\">{}</td>", inline(c)));
                        } else if c.chars().count() > 60 {
                            // A sentence (the headline's "use it when"): wrap it, widely.
                            body.push_str(&format!("<td class=\"s\">{}</td>", inline(c)));
                        } else if c.chars().count() > 16 {
                            // A value with its spread: may take two lines.
                            body.push_str(&format!("<td class=\"w\">{}</td>", inline(c)));
                        } else {
                            body.push_str(&format!("<td>{}</td>", inline(c)));
                        }
                    }
                    body.push_str("</tr>");
                }
                body.push_str("</tbody></table></div></div>\n");
            }
            Block::Figure(f) => {
                // The SVG is the backend's output: a complete <svg> element (text escaped).
                let svg = f
                    .svg
                    .trim_start_matches(|c: char| c != '<')
                    .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
                body.push_str(&format!(
                    "<figure id=\"figure-{}\">{}<figcaption><strong>{}: {}.</strong> {}</figcaption></figure>\n",
                    f.number,
                    svg.trim(),
                    f.label(),
                    inline(&f.title),
                    inline(&f.caption)
                ));
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head>\n<body><main>\n<h1>{}</h1>\n{body}</main></body></html>\n",
        escape(&page.title),
        inline(&page.title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_contained_and_escaped() {
        let mut p = Page::new("Lab <host>");
        p.h2("Findings");
        p.bullets(vec!["Figure 1: `pinned` is slow & costly".into()]);
        p.figure("x", "A", "B", "<svg viewBox=\"0 0 1 1\"></svg>".into());
        p.table("T", &["a"], vec![vec!["<1>".into()]]);
        let h = to_html(&p);
        assert!(h.contains("<title>Lab &lt;host&gt;</title>"));
        assert!(h.contains("<code>pinned</code> is slow &amp; costly"));
        assert!(h.contains("<svg viewBox"));
        assert!(h.contains("<td>&lt;1&gt;</td>"));
        let mut q = Page::new("t");
        q.para("**No GPU here** (`x`)");
        q.table("n", &["a", "b"], vec![vec!["name".into(), "4.50".into()]]);
        let h = to_html(&q);
        assert!(h.contains("<strong>No GPU here</strong> (<code>x</code>)"));
        assert!(h.contains("<td>name</td><td class=\"n\">4.50</td>"));
        assert!(
            !h.contains("src=") && !h.contains("<link"),
            "nothing fetched"
        );
        assert!(!h.contains("<script"));
    }
}
