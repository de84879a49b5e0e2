//! Aligned text table of process rows, for terminals and logs.

use std::fmt::Write as _;

use crate::model::ProcessView;

const HEADERS: [&str; 9] = [
    "PID", "COMM", "FAULTS", "MINFLT", "MAJFLT", "READ", "WRITE", "COW", "EXITED",
];

/// Renders `rows` (already sorted) as an aligned table.
pub fn render(rows: &[ProcessView]) -> String {
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.pid.to_string(),
                printable(&r.comm),
                r.faults.to_string(),
                r.minor_faults.to_string(),
                r.major_faults.to_string(),
                r.read_faults.to_string(),
                r.write_faults.to_string(),
                r.cow_faults.to_string(),
                if r.exited {
                    "yes".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            // COMM is left-aligned, numbers right-aligned.
            let _ = if i == 1 {
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
    line(&mut out, &HEADERS.map(String::from));
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// Replaces control characters so a hostile comm cannot break the table.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, comm: &str, faults: u64) -> ProcessView {
        ProcessView {
            pid,
            comm: comm.into(),
            start_time_ticks: 1,
            ppid: None,
            exited: false,
            faults,
            minor_faults: faults,
            major_faults: 0,
            read_faults: faults,
            write_faults: 0,
            cow_faults: 0,
            ..Default::default()
        }
    }

    #[test]
    fn aligns_columns_and_escapes_comm() {
        let out = render(&[row(1, "a\nb", 12345), row(22, "longer-name", 7)]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("a?b"));
        // Numbers are right-aligned under their header.
        let col_end = lines[0].find("FAULTS").expect("header") + "FAULTS".len();
        assert_eq!(&lines[1][col_end - 5..col_end], "12345");
        assert_eq!(&lines[2][col_end - 1..col_end], "7");
    }
}
