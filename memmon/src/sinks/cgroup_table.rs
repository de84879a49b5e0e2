//! `memmon snapshot --cgroups`: one row per memory cgroup — usage against
//! its limit, working set, unreclaimable, swap, OOM kills, the forecast and
//! its processes — largest usage first; `-` where not measured.

use std::fmt::Write as _;

use super::columns::{cut_left, format_value, printable};
use crate::model::{cgroup_ids::cg, fields::Unit, published::CgroupView};

const HEADERS: [&str; 10] = [
    "CGROUP", "USAGE", "LIMIT", "%LIM", "WSET", "UNRECL", "SWAP", "OOMKILL", "OOM IN", "PROCS",
];

/// Widest a cgroup path prints (cut from the left beyond it).
const PATH_WIDTH: usize = 48;

/// The table, largest usage first.
pub fn render(cgroups: &[CgroupView]) -> String {
    let mut rows: Vec<&CgroupView> = cgroups.iter().filter(|c| !c.cgroup.is_empty()).collect();
    rows.sort_by(|a, b| {
        let u = |c: &CgroupView| c.value(cg::USAGE).unwrap_or(-1.0);
        u(b).total_cmp(&u(a)).then(a.cgroup.cmp(&b.cgroup))
    });
    let bytes = |v: Option<f64>| format_value(v, Unit::Bytes);
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|c| {
            let usage = c.value(cg::USAGE);
            let limit = c
                .value(cg::LIMIT_EFFECTIVE_MAX)
                .or_else(|| c.value(cg::LIMIT_MAX));
            let share = usage
                .zip(limit.filter(|l| *l > 0.0))
                .map_or("-".into(), |(u, l)| format!("{:.0}", u * 100.0 / l));
            let mut name = cut_left(&printable(&c.cgroup), PATH_WIDTH);
            if c.gone {
                name.push_str(" (gone)");
            }
            [
                name,
                bytes(usage),
                bytes(limit),
                share,
                bytes(c.value(cg::WORKING_SET)),
                bytes(c.value(cg::UNRECLAIMABLE)),
                bytes(c.value(cg::SWAP)),
                format_value(c.value(cg::OOM_KILLS), Unit::Count),
                c.value(cg::OOM_FORECAST)
                    .map_or("-".into(), |s| format!("{s:.0}s")),
                format_value(c.value(cg::PROCESSES), Unit::Count),
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
            let _ = if i == 0 {
                write!(out, "{c:<w$}  ")
            } else {
                write!(out, "{c:>w$}  ")
            };
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
