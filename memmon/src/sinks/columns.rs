//! The process table's columns — PID, USER, COMM, then every catalog field
//! that has a column — and how a cell prints: sizes in K/M/G/T with three
//! significant digits (as htop and `free -h`), rates, percentages, `-` for
//! a value that was not measured. Shared by `memmon snapshot` and `top`.

use std::{collections::HashMap, sync::LazyLock};

use crate::model::{
    ProcessView,
    fields::{PROCESS_FIELDS, Unit},
};

/// What a column shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// Process id.
    Pid,
    /// Owner.
    User,
    /// Command name.
    Comm,
    /// A catalog field's value (or its rate).
    Field {
        /// Index in PROCESS_FIELDS.
        index: usize,
        /// The per-second rate rather than the value.
        rate: bool,
    },
}

/// One column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Col {
    /// Header.
    pub header: &'static str,
    /// Sort key in `memmon top`.
    pub letter: char,
    /// Width.
    pub width: u16,
    /// Contents.
    pub what: What,
}

/// Every column, in display order.
pub static COLUMNS: LazyLock<Vec<Col>> = LazyLock::new(|| {
    let mut cols = vec![
        Col {
            header: "PID",
            letter: 'i',
            width: 7,
            what: What::Pid,
        },
        Col {
            header: "USER",
            letter: 'U',
            width: 8,
            what: What::User,
        },
        Col {
            header: "COMM",
            letter: 'N',
            width: 16,
            what: What::Comm,
        },
    ];
    for (index, f) in PROCESS_FIELDS.iter().enumerate() {
        if let Some(c) = f.column {
            cols.push(Col {
                header: c.header,
                letter: c.letter,
                width: c.width,
                what: What::Field {
                    index,
                    rate: c.rate,
                },
            });
        }
    }
    cols
});

/// The column whose header (without `/s`, any case) or letter is `key`.
pub fn by_name(key: &str) -> Option<usize> {
    let k = key.to_ascii_lowercase();
    COLUMNS.iter().position(|c| {
        c.header.to_ascii_lowercase().trim_end_matches("/s") == k
            || (key.chars().count() == 1 && key.starts_with(c.letter))
    })
}

/// The column names `by_name` accepts, for error messages.
pub fn names() -> Vec<String> {
    COLUMNS
        .iter()
        .map(|c| {
            c.header
                .to_ascii_lowercase()
                .trim_end_matches("/s")
                .to_string()
        })
        .collect()
}

/// The number a column sorts by (unknown sorts last; PID and USER
/// ascending).
pub fn sort_value(v: &ProcessView, col: &Col) -> f64 {
    match col.what {
        What::Pid => -f64::from(v.pid),
        What::User => -f64::from(v.uid.unwrap_or(0)),
        What::Comm => 0.0,
        What::Field { index, rate } => {
            let x = if rate { v.rate(index) } else { v.value(index) };
            x.unwrap_or(f64::NEG_INFINITY)
        }
    }
}

/// A size in the units htop and `free -h` use: K/M/G/T with three
/// significant digits (`512B`, `4.00K`, `24.1G`, `118M`).
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if b < 1024.0 {
        return format!("{b:.0}B");
    }
    let mut x = b / 1024.0;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    let unit = UNITS[u];
    if x >= 100.0 {
        format!("{x:.0}{unit}")
    } else if x >= 10.0 {
        format!("{x:.1}{unit}")
    } else {
        format!("{x:.2}{unit}")
    }
}

fn rate_text(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A value of `unit` as a cell.
pub fn format_value(v: Option<f64>, unit: Unit) -> String {
    let Some(x) = v else {
        return "-".into();
    };
    match unit {
        Unit::Bytes => human_bytes(x),
        Unit::Ratio => format!("{:.0}", x * 100.0),
        Unit::Seconds => format!("{x:.3}"),
        Unit::Pages | Unit::Count | Unit::Score => format!("{x:.0}"),
    }
}

/// The cell of `col` for `v` (control characters in names replaced).
pub fn cell(v: &ProcessView, col: &Col, users: &HashMap<u32, String>) -> String {
    match col.what {
        What::Pid => v.pid.to_string(),
        What::User => v.uid.map_or("-".into(), |u| {
            users.get(&u).cloned().unwrap_or_else(|| u.to_string())
        }),
        What::Comm => printable(&v.comm),
        What::Field { index, rate: true } => {
            let f = &PROCESS_FIELDS[index];
            match v.rate(index) {
                // Reclaim stall seconds per second read best as ms/s.
                Some(r) if f.unit == Unit::Seconds => rate_text(r * 1000.0),
                Some(r) => rate_text(r),
                None => "-".into(),
            }
        }
        What::Field { index, rate: false } => {
            format_value(v.value(index), PROCESS_FIELDS[index].unit)
        }
    }
}

/// Replaces control characters so a hostile comm cannot break a table.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Cuts `path` to `width` characters from the left, keeping the
/// distinguishing tail: `…/fa4d1c2e.scope`.
pub fn cut_left(path: &str, width: usize) -> String {
    let n = path.chars().count();
    if n <= width || width == 0 {
        return path.to_string();
    }
    let tail: String = path.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_htop() {
        assert_eq!(human_bytes(512.0), "512B");
        assert_eq!(human_bytes(4096.0), "4.00K");
        assert_eq!(human_bytes(24105.1 * 1024.0 * 1024.0), "23.5G");
        assert_eq!(human_bytes(118.0 * 1024.0 * 1024.0), "118M");
        assert_eq!(human_bytes(999.0 * 1024.0), "999K");
        assert_eq!(human_bytes(1000.0 * 1024.0), "0.98M");
    }

    #[test]
    fn cut_paths_keep_their_tail() {
        let c = cut_left("/process_api/fa4d1c2e3b/worker.scope", 16);
        assert_eq!(c.chars().count(), 16);
        assert!(c.starts_with('…') && c.ends_with("worker.scope"), "{c}");
        assert_eq!(cut_left("/a", 16), "/a");
    }

    #[test]
    fn columns_follow_the_catalog_and_names_resolve() {
        assert_eq!(COLUMNS[by_name("rss").expect("rss")].header, "RSS");
        assert_eq!(
            COLUMNS[by_name("minflt").expect("minflt")].header,
            "MINFLT/s"
        );
        assert_eq!(by_name("p"), by_name("pss"));
        assert_eq!(by_name("nope"), None);
        let mut letters: Vec<char> = COLUMNS.iter().map(|c| c.letter).collect();
        letters.sort_unstable();
        letters.dedup();
        assert_eq!(letters.len(), COLUMNS.len(), "sort letters are unique");
    }

    #[test]
    fn unknown_is_a_dash() {
        let v = ProcessView::default();
        let users = HashMap::new();
        for c in COLUMNS
            .iter()
            .filter(|c| matches!(c.what, What::Field { .. }))
        {
            assert_eq!(cell(&v, c, &users), "-", "{}", c.header);
        }
    }
}
