//! The report page model and its Markdown form. A report (the lab's, `compare`'s) is built once
//! as a [`Page`] of blocks (headings, paragraphs, lists, numbered tables and figures) and then
//! written as Markdown here and as self-contained HTML by [`super::html`], so the two always say
//! the same thing with the same numbers. In Markdown a figure is an image link to its SVG file
//! under `plots/`; in HTML the SVG is inline.
//!
//! Text may hold `code` spans in backticks; nothing else is interpreted.

/// A numbered figure: an SVG document and what it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub number: usize,
    /// File name under `plots/` (letters, digits, `-`, `.` only).
    pub file: String,
    pub title: String,
    /// One or two sentences: what is plotted, from which numbers.
    pub caption: String,
    pub svg: String,
}

impl Figure {
    /// "Figure 3".
    pub fn label(&self) -> String {
        format!("Figure {}", self.number)
    }
}

/// A numbered table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub number: usize,
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// "Table 2".
    pub fn label(&self) -> String {
        format!("Table {}", self.number)
    }
}

/// One block of a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Level 2 or 3 (the page title is level 1).
    Heading(u8, String),
    Paragraph(String),
    Bullets(Vec<String>),
    Table(Table),
    Figure(Figure),
    /// Preformatted text (a command).
    Code(String),
}

/// A report page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub title: String,
    pub blocks: Vec<Block>,
    next_figure: usize,
    next_table: usize,
}

impl Page {
    pub fn new(title: impl Into<String>) -> Page {
        Page {
            title: title.into(),
            ..Default::default()
        }
    }

    pub fn h2(&mut self, t: impl Into<String>) {
        self.blocks.push(Block::Heading(2, t.into()));
    }

    pub fn h3(&mut self, t: impl Into<String>) {
        self.blocks.push(Block::Heading(3, t.into()));
    }

    pub fn para(&mut self, t: impl Into<String>) {
        self.blocks.push(Block::Paragraph(t.into()));
    }

    pub fn bullets(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks.push(Block::Bullets(items));
        }
    }

    pub fn code(&mut self, t: impl Into<String>) {
        self.blocks.push(Block::Code(t.into()));
    }

    /// The number the next figure will get.
    pub fn peek_figure(&self) -> usize {
        self.next_figure + 1
    }

    /// Adds a figure; returns its label ("Figure N") for findings to cite.
    pub fn figure(
        &mut self,
        file_stem: &str,
        title: impl Into<String>,
        caption: impl Into<String>,
        svg: String,
    ) -> String {
        self.next_figure += 1;
        let n = self.next_figure;
        let f = Figure {
            number: n,
            file: format!("fig{n:02}-{}.svg", sanitize(file_stem)),
            title: title.into(),
            caption: caption.into(),
            svg,
        };
        let label = f.label();
        self.blocks.push(Block::Figure(f));
        label
    }

    /// Adds a table; returns its label ("Table N").
    pub fn table<S: ToString>(
        &mut self,
        title: impl Into<String>,
        header: &[S],
        rows: Vec<Vec<String>>,
    ) -> String {
        self.next_table += 1;
        let t = Table {
            number: self.next_table,
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        };
        let label = t.label();
        self.blocks.push(Block::Table(t));
        label
    }

    /// The figures, in order.
    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Figure(f) => Some(f),
            _ => None,
        })
    }

    /// The tables, in order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Table(t) => Some(t),
            _ => None,
        })
    }
}

/// Keeps letters, digits and `-`; everything else becomes `-`.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_string()
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown form; figures link to `<plots_dir>/<file>`.
pub fn to_markdown(page: &Page, plots_dir: &str) -> String {
    let mut out = format!("# {}\n\n", page.title);
    for b in &page.blocks {
        match b {
            Block::Heading(level, t) => {
                out.push_str(&format!("{} {t}\n\n", "#".repeat(*level as usize)));
            }
            Block::Paragraph(t) => out.push_str(&format!("{t}\n\n")),
            Block::Bullets(items) => {
                for i in items {
                    out.push_str(&format!("- {}\n", i.replace('\n', " ")));
                }
                out.push('\n');
            }
            Block::Code(t) => out.push_str(&format!("```sh\n{t}\n```\n\n")),
            Block::Table(t) => {
                out.push_str(&format!("**{}: {}**\n\n", t.label(), t.title));
                let header: Vec<String> = t.header.iter().map(|h| cell(h)).collect();
                out.push_str(&format!("| {} |\n", header.join(" | ")));
                out.push_str(&format!(
                    "|{}\n",
                    t.header.iter().map(|_| "---|").collect::<String>()
                ));
                for r in &t.rows {
                    let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
                    out.push_str(&format!("| {} |\n", cells.join(" | ")));
                }
                out.push('\n');
            }
            Block::Figure(f) => {
                out.push_str(&format!(
                    "![{}: {}]({plots_dir}/{})\n\n*{}: {}.* {}\n\n",
                    f.label(),
                    f.title,
                    f.file,
                    f.label(),
                    f.title,
                    f.caption
                ));
            }
        }
    }
    out
}

/// Reads the Markdown tables of a report back: (title, header, rows) in order. Used by the tests
/// (numbers in the report equal those in results.json) and by anyone scripting over report.md.
pub fn parse_markdown_tables(md: &str) -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
    let split = |line: &str| -> Vec<String> {
        let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
        let mut cells = Vec::new();
        let mut cur = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && chars.peek() == Some(&'|') {
                cur.push('|');
                chars.next();
            } else if c == '|' {
                cells.push(cur.trim().to_string());
                cur.clear();
            } else {
                cur.push(c);
            }
        }
        cells.push(cur.trim().to_string());
        cells
    };
    let lines: Vec<&str> = md.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.starts_with("**Table ")
            && let Some(title) = l
                .trim()
                .strip_prefix("**")
                .and_then(|s| s.strip_suffix("**"))
        {
            // Title line, blank, header, separator, rows.
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            if j + 1 < lines.len() && lines[j].starts_with('|') && lines[j + 1].starts_with("|-") {
                let header = split(lines[j]);
                let mut rows = Vec::new();
                let mut k = j + 2;
                while k < lines.len() && lines[k].starts_with('|') {
                    rows.push(split(lines[k]));
                    k += 1;
                }
                out.push((title.to_string(), header, rows));
                i = k;
                continue;
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_round_trips_tables_and_links_figures() {
        let mut p = Page::new("Lab");
        p.h2("Sweep");
        let f = p.figure(
            "alloc time/dev 0",
            "Allocation",
            "From the alloc rows.",
            "<svg/>".into(),
        );
        assert_eq!(f, "Figure 1");
        let t = p.table(
            "Allocation time (ms)",
            &["strategy", "1 GiB"],
            vec![vec!["a|b".into(), "1.500".into()]],
        );
        assert_eq!(t, "Table 1");
        let md = to_markdown(&p, "plots");
        assert!(
            md.contains("![Figure 1: Allocation](plots/fig01-alloc-time-dev-0.svg)"),
            "{md}"
        );
        let tables = parse_markdown_tables(&md);
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].0, "Table 1: Allocation time (ms)");
        assert_eq!(tables[0].1, vec!["strategy", "1 GiB"]);
        assert_eq!(tables[0].2, vec![vec!["a|b".to_string(), "1.500".into()]]);
    }
}
