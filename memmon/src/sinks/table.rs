//! Aligned text table of process rows (`memmon snapshot`), with the same
//! columns as `memmon top` ([`super::columns`]): `-` where a value was not
//! measured.

use std::{collections::HashMap, fmt::Write as _};

use super::columns::{COLUMNS, What, cell};
use crate::model::ProcessView;

/// Renders `rows` (already sorted) as an aligned table.
pub fn render(rows: &[ProcessView], users: &HashMap<u32, String>) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row: Vec<String> = COLUMNS.iter().map(|c| cell(r, c, users)).collect();
            row.push(if r.exited {
                "yes".into()
            } else {
                String::new()
            });
            row
        })
        .collect();
    let mut headers: Vec<String> = COLUMNS.iter().map(|c| c.header.to_string()).collect();
    headers.push("EXITED".into());
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let left = |i: usize| COLUMNS.get(i).is_some_and(|c| c.what == What::Comm);
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            // COMM is left-aligned, numbers right-aligned.
            let _ = if left(i) {
                write!(out, "{c:<w$}")
            } else {
                write!(out, "{c:>w$}")
            };
            if i + 1 < row.len() {
                out.push_str("  ");
            }
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, &headers);
    for row in &cells {
        line(&mut out, row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::view::idx;

    fn row(pid: u32, comm: &str, rss: Option<f64>) -> ProcessView {
        let mut v = ProcessView {
            pid,
            comm: comm.into(),
            start_time_ticks: 1,
            ..Default::default()
        };
        v.values.set(idx::RSS, rss);
        v
    }

    #[test]
    fn aligns_columns_escapes_comm_and_dashes_unknowns() {
        let out = render(
            &[
                row(1, "a\nb", Some(12345.0 * 1024.0)),
                row(22, "longer-name", None),
            ],
            &HashMap::new(),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("a?b"));
        // Numbers are right-aligned under their header.
        let col_end = lines[0].find("RSS").expect("header") + "RSS".len();
        assert_eq!(&lines[1][col_end - 5..col_end], "12.1M");
        assert_eq!(&lines[2][col_end - 1..col_end], "-");
    }
}
