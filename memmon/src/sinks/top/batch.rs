//! `memmon top --batch`: frames as text tables or JSON lines on stdout,
//! like `top -b`.

use std::{collections::HashMap, fmt::Write as _};

use super::{
    frame::{Row, TopFrame},
    state::TopState,
};
use crate::sinks::columns::{COLUMNS, cell, human_bytes};

/// Bytes in K/M/G/T, or "-".
pub fn size(v: Option<u64>) -> String {
    v.map_or("-".into(), |b| human_bytes(b as f64))
}

/// The header line: system memory, rates, OOM kills, kernel threads.
pub fn header_line(f: &TopFrame, state: &TopState) -> String {
    let h = &f.header;
    format!(
        "memmon top - mem {} used {} avail {} swap used {} | faults/s {:.0} majflt/s {:.0} swapin/s {:.0} swapout/s {:.0} | OOM kills {} | kernel threads {} ({})",
        size(Some(h.total)),
        size(Some(h.used)),
        size(Some(h.available)),
        size(Some(h.swap_used)),
        h.faults_s,
        h.majfaults_s,
        h.swapin_s,
        h.swapout_s,
        h.oom_kills,
        f.kernel_threads(),
        if state.kernel_threads {
            "shown, K hides"
        } else {
            "hidden, K shows"
        }
    )
}

/// One frame as a text table (sorted and filtered as `state` says).
pub fn text(f: &TopFrame, state: &TopState, users: &HashMap<u32, String>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", header_line(f, state));
    let _ = writeln!(out, "{}", f.probes);
    for c in COLUMNS.iter() {
        let _ = write!(out, "{:>w$} ", c.header, w = c.width as usize);
    }
    out.push('\n');
    for r in state.visible(f) {
        for c in COLUMNS.iter() {
            let _ = write!(out, "{:>w$} ", cell(r, c, users), w = c.width as usize);
        }
        out.push('\n');
    }
    out
}

/// One frame as a JSON line: `{"unix_ms", "header", "probes",
/// "processes": [rows]}`, rows with the catalog's keys.
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
