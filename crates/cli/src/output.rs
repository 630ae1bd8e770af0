//! Printing for people and scripts: the `--output` choice, aligned tables, status colours and
//! errors. Styles go through `anstream`, which drops them when stdout is not a terminal (or
//! NO_COLOR is set), so piped output is plain text.

use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::error::CliError;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();

/// Green for usable (ACTIVE, OPEN, RUNNING), yellow for in transition, red for going away or closed.
pub fn status_style(status: &str) -> Style {
    let colour = match status {
        "ACTIVE" | "OPEN" | "RUNNING" => AnsiColor::Green,
        "CREATING" | "UPDATING" | "STARTING" | "STOPPING" => AnsiColor::Yellow,
        "DELETING" | "DELETING_FAILED" | "CREATING_FAILED" | "CLOSED" => AnsiColor::Red,
        _ => return Style::new(),
    };
    Style::new().fg_color(Some(colour.into()))
}

/// `text` in `style` (the escape codes are stripped later when stdout is not a terminal).
pub fn styled(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value).map_err(std::io::Error::from)?;
    writeln!(stdout)?;
    Ok(())
}

/// Prints `text` (which may hold styles) on stdout.
pub fn print_text(text: &str) -> Result<(), CliError> {
    let mut stdout = anstream::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

pub fn print_error(output: Output, error: &CliError) {
    let mut stderr = anstream::stderr().lock();
    // Nothing more can be done when stderr itself is gone.
    let _ = match output {
        Output::Json => {
            writeln!(stderr, "{}", serde_json::json!({"error": {"type": error.kind(), "message": error.message()}}))
        }
        Output::Text => {
            let red = Style::new().bold().fg_color(Some(AnsiColor::Red.into()));
            writeln!(stderr, "{}: {error}", styled(red, "tideline"))
        }
    };
}

/// A table with left-aligned columns two spaces apart. Hand-written rather than a table crate's:
/// cells carry colour codes, and widths must be those of the visible text.
pub struct Table {
    rows: Vec<Vec<(String, Style)>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { rows: vec![header.iter().map(|title| ((*title).to_owned(), BOLD)).collect()] }
    }

    pub fn row(&mut self, cells: Vec<(String, Style)>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|(text, _)| text.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (column, (text, style)) in row.iter().enumerate() {
                let last = column + 1 == row.len();
                line.push_str(&styled(*style, text));
                if !last {
                    let pad = widths[column] - text.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// A rate for people: `12.3k`, `4.1M`.
pub fn human_rate(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v == v.trunc() => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_visible_width() {
        let mut table = Table::new(&["NAME", "STATUS"]);
        table.row(vec![("a-long-name".into(), Style::new()), ("ACTIVE".into(), status_style("ACTIVE"))]);
        let plain = anstream::adapter::strip_str(&table.render()).to_string();
        assert_eq!(plain, "NAME         STATUS\na-long-name  ACTIVE\n");
    }

    #[test]
    fn rates_read_short() {
        assert_eq!(human_rate(0.0), "0");
        assert_eq!(human_rate(2.5), "2.5");
        assert_eq!(human_rate(12_345.0), "12.3k");
        assert_eq!(human_rate(4_100_000.0), "4.1M");
    }
}
