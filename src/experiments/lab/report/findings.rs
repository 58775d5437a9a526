//! What every section of the lab report shares: the findings collected in groups, and GiB
//! formatting of memory tables. May import: units only.

/// Findings in groups (one per experiment, and per device where there are several), each
/// sentence naming the figure or table it comes from.
#[derive(Debug, Default)]
pub struct Findings {
    /// The group the next sentences belong to.
    pub group: String,
    pub items: Vec<(String, String)>,
}

impl Findings {
    pub fn push(&mut self, sentence: String) {
        self.items.push((self.group.clone(), sentence));
    }

    /// The groups in order of first appearance, with their sentences.
    pub fn grouped(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (g, f) in &self.items {
            match out.iter_mut().find(|(x, _)| x == g) {
                Some((_, v)) => v.push(f.clone()),
                None => out.push((g.clone(), vec![f.clone()])),
            }
        }
        out
    }
}

/// GiB with two decimals (tables of memory).
pub fn gib(b: u64) -> String {
    crate::units::fmt_gib_dp(b, 2)
}

/// Signed GiB with two decimals.
pub fn gib_signed(b: i64) -> String {
    crate::units::fmt_gib_signed(b, 2)
}
