//! A frame of `memmon top`: the publication's JSON (`/api/v1/snapshot`
//! shape: `processes`, `system`, `probes`, `recent_oom_kills`, `notices`,
//! `oom_kills_total`, `unix_ms`), turned into rows with rates computed
//! against the previous frame by pid + start time. Reading the JSON keeps
//! local and `--connect` modes on one code path.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

/// One process row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    /// pid.
    pub pid: u32,
    /// Start time (with pid, the key).
    pub start_time_ticks: u64,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Command name.
    pub comm: String,
    /// Memory cgroup.
    pub cgroup: String,
    /// systemd unit.
    pub unit: Option<String>,
    /// Resident bytes.
    pub rss: Option<u64>,
    /// PSS bytes.
    pub pss: Option<u64>,
    /// USS bytes.
    pub uss: Option<u64>,
    /// Swap bytes.
    pub swap: Option<u64>,
    /// Minor faults per second.
    pub minflt_s: f64,
    /// Major faults per second.
    pub majflt_s: f64,
    /// Copy-on-write faults per second.
    pub cow_s: f64,
    /// mmap calls per second.
    pub mmap_s: f64,
    /// Slab allocations per second.
    pub slab_s: f64,
    /// Reclaim stall milliseconds per second.
    pub reclaim_ms_s: f64,
    /// NUMA local ratio (0..1).
    pub numa_local: Option<f64>,
    /// OOM score.
    pub oom_score: Option<i64>,
    /// Pages per NUMA node.
    pub numa_pages: BTreeMap<String, u64>,
    /// Cumulative counters, for the detail pane.
    pub totals: BTreeMap<&'static str, f64>,
}

/// Counters whose rates the rows carry (JSON key).
const RATE_KEYS: [&str; 6] = [
    "minor_faults",
    "major_faults",
    "cow_faults",
    "mmap_calls",
    "slab_allocs",
    "reclaim_stall_seconds",
];

/// Cumulative values shown in the detail pane.
const DETAIL_KEYS: [&str; 12] = [
    "minor_faults",
    "major_faults",
    "cow_faults",
    "reclaim_stalls",
    "reclaim_stall_seconds",
    "mmap_calls",
    "mmap_anon_bytes",
    "mmap_file_bytes",
    "brk_grow_bytes",
    "slab_allocs",
    "slab_alloc_bytes",
    "kmalloc_allocs",
];

/// The header: system totals and rates.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Header {
    /// MemTotal, MemAvailable, MemFree bytes.
    pub total: u64,
    /// Used (total - available).
    pub used: u64,
    /// Free.
    pub free: u64,
    /// Available.
    pub available: u64,
    /// Swap used bytes.
    pub swap_used: u64,
    /// pgfault/s.
    pub faults_s: f64,
    /// pgmajfault/s.
    pub majfaults_s: f64,
    /// pswpin/s.
    pub swapin_s: f64,
    /// pswpout/s.
    pub swapout_s: f64,
    /// Memory PSI some avg10, when present.
    pub psi_some10: Option<f64>,
    /// OOM kills since memmon started.
    pub oom_kills: u64,
}

/// One frame, ready to draw.
#[derive(Clone, Debug, Default)]
pub struct TopFrame {
    /// Unix ms of the publication.
    pub unix_ms: u64,
    /// Process rows (unsorted).
    pub rows: Vec<Row>,
    /// Header values.
    pub header: Header,
    /// Probe summary line.
    pub probes: String,
    /// Recent events, newest last (OOM kills and notices), one line each.
    pub events: Vec<String>,
    /// Cumulative counters per (pid, start) for the next frame's rates.
    pub(crate) cumulative: HashMap<(u32, u64), [f64; RATE_KEYS.len()]>,
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn unum(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

/// Per-second rate of a counter between two readings; 0 when time did not
/// advance or the counter went back.
pub fn rate(now: f64, before: f64, seconds: f64) -> f64 {
    if seconds <= 0.0 || now < before {
        return 0.0;
    }
    (now - before) / seconds
}

impl TopFrame {
    /// Builds a frame from a publication's JSON, with rates against `prev`.
    pub fn from_json(v: &Value, prev: Option<&TopFrame>) -> TopFrame {
        let unix_ms = unum(v, "unix_ms").unwrap_or(0);
        let dt = prev.map_or(0.0, |p| unix_ms.saturating_sub(p.unix_ms) as f64 / 1000.0);
        let mut cumulative = HashMap::new();
        let mut rows = Vec::new();
        for p in v
            .get("processes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let pid = unum(p, "pid").unwrap_or(0) as u32;
            let start = unum(p, "start_time_ticks").unwrap_or(0);
            let now: [f64; RATE_KEYS.len()] = RATE_KEYS.map(|k| num(p, k).unwrap_or(0.0));
            let before = prev.and_then(|f| f.cumulative.get(&(pid, start)));
            let r = |i: usize| before.map_or(0.0, |b| rate(now[i], b[i], dt));
            cumulative.insert((pid, start), now);
            rows.push(Row {
                pid,
                start_time_ticks: start,
                uid: unum(p, "uid").map(|u| u as u32),
                comm: p
                    .get("comm")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                cgroup: p
                    .get("cgroup")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                unit: p.get("unit").and_then(Value::as_str).map(str::to_string),
                rss: unum(p, "rss_bytes"),
                pss: unum(p, "pss_bytes"),
                uss: unum(p, "uss_bytes"),
                swap: unum(p, "swap_bytes"),
                minflt_s: r(0),
                majflt_s: r(1),
                cow_s: r(2),
                mmap_s: r(3),
                slab_s: r(4),
                reclaim_ms_s: r(5) * 1000.0,
                numa_local: num(p, "numa_local_ratio"),
                oom_score: p.get("oom_score").and_then(Value::as_i64),
                numa_pages: p
                    .get("numa_pages")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                            .collect()
                    })
                    .unwrap_or_default(),
                totals: DETAIL_KEYS
                    .iter()
                    .map(|k| (*k, num(p, k).unwrap_or(0.0)))
                    .collect(),
            });
        }
        TopFrame {
            unix_ms,
            rows,
            header: header(v),
            probes: probe_line(v),
            events: events(v),
            cumulative,
        }
    }
}

fn header(v: &Value) -> Header {
    let sys = v.get("system");
    let mem = |k: &str| {
        sys.and_then(|s| s.get("meminfo"))
            .and_then(|m| unum(m, k))
            .unwrap_or(0)
    };
    let rate = |k: &str| {
        sys.and_then(|s| s.get("rates"))
            .and_then(|r| num(r, k))
            .unwrap_or(0.0)
    };
    let total = mem("MemTotal");
    let available = mem("MemAvailable");
    Header {
        total,
        used: total.saturating_sub(available),
        free: mem("MemFree"),
        available,
        swap_used: mem("SwapTotal").saturating_sub(mem("SwapFree")),
        faults_s: rate("pgfault"),
        majfaults_s: rate("pgmajfault"),
        swapin_s: rate("pswpin"),
        swapout_s: rate("pswpout"),
        psi_some10: sys
            .and_then(|s| s.get("psi"))
            .and_then(|p| num(p, "some_avg10")),
        oom_kills: unum(v, "oom_kills_total").unwrap_or(0),
    }
}

fn probe_line(v: &Value) -> String {
    let mut attached = 0;
    let mut unavailable = Vec::new();
    let mut disabled = 0;
    for p in v
        .get("probes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match p.get("state").and_then(Value::as_str) {
            Some("attached") => attached += 1,
            Some("unavailable") => unavailable.push(
                p.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
            ),
            _ => disabled += 1,
        }
    }
    let mut s = format!("probes: {attached} attached");
    if !unavailable.is_empty() {
        s.push_str(&format!(", unavailable: {}", unavailable.join(" ")));
    }
    if disabled > 0 {
        s.push_str(&format!(", {disabled} disabled"));
    }
    s
}

fn events(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for k in v
        .get("recent_oom_kills")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(format!(
            "OOM kill: pid {} ({}) anon-rss {} kB in {}",
            unum(k, "pid").unwrap_or(0),
            k.get("comm").and_then(Value::as_str).unwrap_or("?"),
            unum(k, "anon_rss_kb").unwrap_or(0),
            k.get("cgroup").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    for n in v
        .get("notices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(
            n.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_json(ms: u64, minflt: u64) -> Value {
        serde_json::json!({
            "unix_ms": ms,
            "processes": [{"pid": 7, "start_time_ticks": 1, "comm": "a", "minor_faults": minflt, "rss_bytes": 4096}],
            "system": {"meminfo": {"MemTotal": 1000, "MemAvailable": 400}, "rates": {"pgfault": 5.0}},
            "probes": [{"name": "x", "state": "attached"}, {"name": "y", "state": "unavailable"}],
            "oom_kills_total": 2
        })
    }

    #[test]
    fn rates_between_frames() {
        let a = TopFrame::from_json(&frame_json(1000, 100), None);
        assert_eq!(a.rows[0].minflt_s, 0.0, "no rate without a previous frame");
        let b = TopFrame::from_json(&frame_json(3000, 300), Some(&a));
        assert_eq!(b.rows[0].minflt_s, 100.0);
        assert_eq!(b.header.used, 600);
        assert_eq!(b.header.oom_kills, 2);
        assert!(b.probes.contains("1 attached") && b.probes.contains("unavailable: y"));
    }

    #[test]
    fn rate_guards() {
        assert_eq!(rate(10.0, 5.0, 0.0), 0.0);
        assert_eq!(rate(1.0, 5.0, 1.0), 0.0);
        assert_eq!(rate(15.0, 5.0, 2.0), 5.0);
    }
}
