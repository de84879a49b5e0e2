//! `memmon top --batch`: frames as text tables or JSON lines on stdout,
//! like `top -b`; also the cell formatting the screen shares.

use std::{collections::HashMap, fmt::Write as _};

use super::{
    frame::{Row, TopFrame},
    state::{COLUMNS, TopState},
};

/// uid → user name, from /etc/passwd (empty when unreadable).
pub fn user_names() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes as MiB with one decimal, or "-".
pub fn mib(v: Option<u64>) -> String {
    v.map_or("-".into(), |b| {
        format!("{:.1}M", b as f64 / (1u64 << 20) as f64)
    })
}

fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The cells of a row, in COLUMNS order (control characters replaced).
pub fn cells(r: &Row, users: &HashMap<u32, String>) -> [String; COLUMNS.len()] {
    [
        r.pid.to_string(),
        r.uid.map_or("-".into(), |u| {
            users.get(&u).cloned().unwrap_or_else(|| u.to_string())
        }),
        crate::sinks::table::printable(&r.comm),
        mib(r.rss),
        mib(r.pss),
        mib(r.uss),
        mib(r.swap),
        rate(r.minflt_s),
        rate(r.majflt_s),
        rate(r.cow_s),
        rate(r.mmap_s),
        rate(r.slab_s),
        rate(r.reclaim_ms_s),
        r.numa_local
            .map_or("-".into(), |x| format!("{:.0}", x * 100.0)),
        r.oom_score.map_or("-".into(), |s| s.to_string()),
    ]
}

/// One frame as a text table (sorted and filtered as `state` says).
pub fn text(f: &TopFrame, state: &TopState, users: &HashMap<u32, String>) -> String {
    let mut out = String::new();
    let h = &f.header;
    let _ = writeln!(
        out,
        "memmon top - mem {} used {} avail {} swap used {} | faults/s {:.0} majflt/s {:.0} swapin/s {:.0} swapout/s {:.0} | OOM kills {}",
        mib(Some(h.total)),
        mib(Some(h.used)),
        mib(Some(h.available)),
        mib(Some(h.swap_used)),
        h.faults_s,
        h.majfaults_s,
        h.swapin_s,
        h.swapout_s,
        h.oom_kills
    );
    let _ = writeln!(out, "{}", f.probes);
    for (name, _, w) in COLUMNS {
        let _ = write!(out, "{name:>w$} ", w = w as usize);
    }
    out.push('\n');
    for r in state.visible(f) {
        for (c, (_, _, w)) in cells(r, users).iter().zip(COLUMNS) {
            let _ = write!(out, "{c:>w$} ", w = w as usize);
        }
        out.push('\n');
    }
    out
}

/// One frame as a JSON line: `{"unix_ms", "header", "processes": [rows]}`.
pub fn json(f: &TopFrame, state: &TopState) -> String {
    let rows: Vec<&Row> = state.visible(f);
    serde_json::to_string(&serde_json::json!({
        "unix_ms": f.unix_ms,
        "header": f.header,
        "probes": f.probes,
        "processes": rows,
    }))
    .unwrap_or_default()
}
