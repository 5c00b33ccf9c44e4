//! Result tables, printed aligned on stdout and optionally appended to a markdown file.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};

/// A titled table of already formatted cells.
#[derive(Clone, Debug)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table (method notes, counts).
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Self {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(
            cells.len(),
            self.headers.len(),
            "row width must match the headers"
        );
        self.rows.push(cells);
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        widths
    }

    /// Plain text with aligned columns, for the terminal.
    pub fn to_text(&self) -> String {
        let widths = self.widths();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:>width$}"))
                .collect();
            padded.join("  ")
        };
        let mut out = format!("== {} ==\n{}\n", self.title, line(&self.headers));
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        for note in &self.notes {
            out.push_str(&format!("  {note}\n"));
        }
        out
    }

    /// A markdown section: heading, table (numbers right-aligned), notes as a list.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("#### {}\n\n| {} |\n", self.title, self.headers.join(" | "));
        // The first column holds labels (left), the others numbers (right).
        let rule: Vec<&str> = (0..self.headers.len())
            .map(|i| if i == 0 { ":---" } else { "---:" })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        out.push('\n');
        out
    }
}

/// Prints every table and appends them, under `preamble`, to `markdown` when given.
pub fn emit(tables: &[Table], preamble: &str, markdown: Option<&Path>) -> Result<()> {
    for table in tables {
        println!("{}", table.to_text());
    }
    let Some(path) = markdown else {
        return Ok(());
    };
    let mut text = preamble.to_string();
    for table in tables {
        text.push_str(&table.to_markdown());
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("append to {}", path.display()))?;
    println!("appended markdown to {}", path.display());
    Ok(())
}

/// `1234567.8` → `1,234,568`.
/// A path as a committed report names it: relative to the workspace (`target/release/ampere`)
/// or to the temp directory (`$TMP/…`), else only the file name — never the local absolute path
/// of whoever ran the benchmark, which means nothing to a reader and differs on every machine.
pub fn portable_path(path: &Path) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent();
    let cwd = std::env::current_dir().ok();
    let bases = [workspace.map(Path::to_path_buf), cwd];
    for base in bases.iter().flatten() {
        if let Ok(rel) = path.strip_prefix(base) {
            return rel.display().to_string();
        }
    }
    if let Ok(rel) = path.strip_prefix(std::env::temp_dir()) {
        return format!("$TMP/{}", rel.display());
    }
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

pub fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Seconds with millisecond precision.
pub fn seconds(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64())
}

/// `count / duration` per second.
pub fn rate(count: u64, duration: Duration) -> f64 {
    count as f64 / duration.as_secs_f64().max(1e-9)
}

/// Megabytes (10^6 bytes) per second, one decimal.
pub fn megabytes_per_second(bytes: u64, duration: Duration) -> String {
    format!("{:.1}", rate(bytes, duration) / 1e6)
}

/// The median of durations (the lower middle for an even count).
pub fn median(values: &[Duration]) -> Duration {
    assert!(!values.is_empty(), "median of nothing");
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[(sorted.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(999.4), "999");
        assert_eq!(grouped(1000.0), "1,000");
        assert_eq!(grouped(1_234_567.8), "1,234,568");
    }

    #[test]
    fn portable_paths_name_no_local_directory() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let bin = workspace.join("target/release/ampere");
        assert_eq!(portable_path(&bin), "target/release/ampere");
        let tmp = std::env::temp_dir().join("bench-x/callgrind.out.3");
        assert_eq!(portable_path(&tmp), "$TMP/bench-x/callgrind.out.3");
        assert_eq!(
            portable_path(Path::new("/opt/elsewhere/pg_recvlogical")),
            "pg_recvlogical"
        );
    }

    #[test]
    fn median_takes_the_lower_middle() {
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(&[ms(4), ms(1), ms(3), ms(2)]), ms(2));
    }

    #[test]
    fn markdown_has_one_row_per_row() {
        let mut table = Table::new("t", &["a", "b"]);
        table.row(vec!["1".into(), "2".into()]);
        table.note("n");
        let markdown = table.to_markdown();
        assert!(markdown.contains("| a | b |\n|:---|---:|\n| 1 | 2 |\n"));
        assert!(markdown.contains("- n\n"));
        assert!(table.to_text().contains("== t =="));
    }
}
