//! A frame of `memmon top`: the publication's JSON (`/api/v1/snapshot`
//! shape: `processes`, `system`, `probes`, `incidents`, `recent_oom_kills`, `notices`,
//! `oom_kills_total`, `unix_ms`), its process rows read back by the field
//! catalog ([`ProcessView::from_json`]), rates included. Reading the JSON
//! keeps local and `--connect` modes on one code path.

use serde::Serialize;
use serde_json::Value;

pub use crate::model::ProcessView as Row;
use crate::model::{
    cgroup_ids::{CgroupId, cg},
    system_fields::{SystemId, sys},
};

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

/// A memory cgroup's own numbers, for the tree's group rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CgroupRow {
    /// Usage, bytes.
    pub usage: Option<u64>,
    /// Hard limit (its own or inherited), bytes.
    pub limit: Option<u64>,
    /// Working set, bytes.
    pub working_set: Option<u64>,
    /// Seconds to the limit at the current growth.
    pub oom_forecast_seconds: Option<f64>,
}

impl CgroupRow {
    fn from_json(c: &Value) -> CgroupRow {
        let whole = |id: CgroupId| id.in_json(c).map(|v| v as u64);
        CgroupRow {
            usage: whole(cg::USAGE),
            limit: whole(cg::LIMIT_EFFECTIVE_MAX).or_else(|| whole(cg::LIMIT_MAX)),
            working_set: whole(cg::WORKING_SET),
            oom_forecast_seconds: cg::OOM_FORECAST.in_json(c),
        }
    }
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
    /// Memory cgroups by path.
    pub cgroups: std::collections::HashMap<String, CgroupRow>,
    /// An extra header line (`memmon replay`: the frame's time and keys).
    pub banner: Option<String>,
    /// The selected process's fault stacks (None: `top` runs without
    /// --profile).
    pub fault_stacks: Option<super::stacks::FaultStacks>,
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn unum(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

impl TopFrame {
    /// Builds a frame from a publication's JSON.
    pub fn from_json(v: &Value) -> TopFrame {
        TopFrame {
            unix_ms: unum(v, "unix_ms").unwrap_or(0),
            rows: v
                .get("processes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Row::from_json)
                .collect(),
            header: header(v),
            probes: probe_line(v),
            events: events(v),
            cgroups: v
                .get("cgroups")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    Some((
                        c.get("cgroup")?.as_str()?.to_string(),
                        CgroupRow::from_json(c),
                    ))
                })
                .collect(),
            banner: None,
            fault_stacks: None,
        }
    }

    /// Kernel threads (no address space) in the frame.
    pub fn kernel_threads(&self) -> usize {
        self.rows.iter().filter(|r| r.is_kernel_thread()).count()
    }
}

fn header(v: &Value) -> Header {
    let sys = v.get("system");
    let mem = |id: SystemId| sys.and_then(|s| id.in_json(s)).unwrap_or(0.0) as u64;
    let rate = |id: SystemId| sys.and_then(|s| id.rate_in_json(s)).unwrap_or(0.0);
    let total = mem(sys::MEM_TOTAL);
    let available = mem(sys::MEM_AVAILABLE);
    Header {
        total,
        used: total.saturating_sub(available),
        free: mem(sys::MEM_FREE),
        available,
        swap_used: mem(sys::SWAP_TOTAL).saturating_sub(mem(sys::SWAP_FREE)),
        faults_s: rate(sys::PGFAULT),
        majfaults_s: rate(sys::PGMAJFAULT),
        swapin_s: rate(sys::PSWPIN),
        swapout_s: rate(sys::PSWPOUT),
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
    // Post-mortems first; a kill that has one is not listed again.
    let incidents: Vec<crate::model::incident::Summary> = v
        .get("incidents")
        .and_then(|i| serde_json::from_value(i.clone()).ok())
        .unwrap_or_default();
    let has_incident = |k: &Value, pid_key: &str| {
        unum(k, pid_key).is_some_and(|pid| incidents.iter().any(|i| u64::from(i.pid) == pid))
    };
    for i in &incidents {
        out.push(crate::sinks::incident::event_line(i));
    }
    for k in v
        .get("recent_oom_kills")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|k| !has_incident(k, "pid"))
    {
        out.push(format!(
            "OOM kill: pid {} ({}) anon-rss {} kB in {}",
            unum(k, "pid").unwrap_or(0),
            k.get("comm").and_then(Value::as_str).unwrap_or("?"),
            unum(k, "anon_rss_kb").unwrap_or(0),
            k.get("cgroup").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    for k in v
        .get("recent_sigkills")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|k| !has_incident(k, "target_pid"))
    {
        out.push(format!(
            "SIGKILL: pid {} ({}) by pid {} ({}), rss {}",
            unum(k, "target_pid").unwrap_or(0),
            k.get("target_comm").and_then(Value::as_str).unwrap_or("?"),
            unum(k, "sender_pid").unwrap_or(0),
            k.get("sender_comm").and_then(Value::as_str).unwrap_or("?"),
            unum(k, "target_rss_bytes").map_or("-".to_string(), |b| format!("{} MiB", b >> 20)),
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
    use crate::model::view::idx;

    fn frame_json(ms: u64, minflt: u64) -> Value {
        serde_json::json!({
            "unix_ms": ms,
            "processes": [{"pid": 7, "start_time_ticks": 1, "comm": "a", "minor_faults": minflt,
                           "minor_faults_per_second": 100.0, "rss_bytes": 4096, "pss_bytes": null}],
            "system": {"meminfo": {"MemTotal": 1000, "MemAvailable": 400}, "rates": {"pgfault": 5.0}},
            "probes": [{"name": "x", "state": "attached"}, {"name": "y", "state": "unavailable"}],
            "oom_kills_total": 2
        })
    }

    #[test]
    fn rows_read_back_by_catalog_keys() {
        let b = TopFrame::from_json(&frame_json(3000, 300));
        assert_eq!(b.rows[0].rate(idx::MINOR), Some(100.0));
        assert_eq!(b.rows[0].value(idx::MINOR), Some(300.0));
        assert_eq!(b.rows[0].value(idx::RSS), Some(4096.0));
        assert_eq!(b.rows[0].value(idx::PSS), None, "null stays unknown");
        assert_eq!(b.header.used, 600);
        assert_eq!(b.header.oom_kills, 2);
        assert!(b.probes.contains("1 attached") && b.probes.contains("unavailable: y"));
    }

    #[test]
    fn the_events_pane_lists_post_mortems_and_the_kills_without_one() {
        let summary = crate::model::incident::Summary {
            id: "1733512345-7".into(),
            kind: "oom_kill".into(),
            pid: 7,
            comm: "hog".into(),
            cgroup: Some("/x".into()),
            by: Some("9 (grower)".into()),
            by_basis: Some("kernel".into()),
            ..Default::default()
        };
        let v = serde_json::json!({
            "incidents": [summary],
            "recent_oom_kills": [
                {"pid": 7, "comm": "hog", "anon_rss_kb": 1, "cgroup": "/x"},
                {"pid": 8, "comm": "older", "anon_rss_kb": 2, "cgroup": "/y"}
            ],
            "recent_sigkills": [{"target_pid": 7, "sender_pid": 1}]
        });
        let ev = TopFrame::from_json(&v).events;
        assert_eq!(ev.len(), 2, "{ev:#?}");
        assert!(
            ev[0].starts_with("OOM kill of pid 7 (hog) in /x")
                && ev[0].contains("trigger 9 (grower) [kernel]")
                && ev[0].ends_with("memmon explain --oom 1733512345-7"),
            "{ev:#?}"
        );
        assert!(ev[1].starts_with("OOM kill: pid 8 (older)"), "{ev:#?}");
    }

    /// The tree's group numbers come from the keys the catalog gives a
    /// cgroup in the snapshot JSON (a renamed field would leave them `-`).
    #[test]
    fn group_numbers_read_back_from_a_published_cgroup() {
        use crate::model::{
            fields::{CGROUP_FIELDS, N_CGROUP},
            published::CgroupView,
        };
        let mut values = [None; N_CGROUP];
        let set = |values: &mut [Option<f64>; N_CGROUP], key, label, v| {
            let i = CGROUP_FIELDS
                .iter()
                .position(|f| f.key == key && f.label.map(|l| l.1) == label)
                .unwrap_or_else(|| panic!("no cgroup field {key} {label:?}"));
            values[i] = Some(v);
        };
        set(&mut values, "memory_usage_bytes", None, 200.0 * 1048576.0);
        set(
            &mut values,
            "memory_working_set_bytes",
            None,
            150.0 * 1048576.0,
        );
        set(
            &mut values,
            "memory_limit_bytes",
            Some("max"),
            512.0 * 1048576.0,
        );
        set(
            &mut values,
            "memory_limit_bytes",
            Some("effective_max"),
            256.0 * 1048576.0,
        );
        set(&mut values, "oom_forecast_seconds", None, 42.4);
        let view = CgroupView {
            cgroup: "/a/b".into(),
            names: Default::default(),
            gone: false,
            oom_candidate: None,
            values,
        };
        let json = serde_json::json!({ "cgroups": [serde_json::to_value(&view).expect("json")] });
        let f = TopFrame::from_json(&json);
        let row = f.cgroups.get("/a/b").expect("the cgroup's row");
        assert_eq!(
            *row,
            CgroupRow {
                usage: Some(200 << 20),
                limit: Some(256 << 20),
                working_set: Some(150 << 20),
                oom_forecast_seconds: Some(42.4),
            },
            "the effective limit wins over the cgroup's own"
        );
        let line = super::super::render::group_numbers(row);
        assert!(
            line.contains("200M / 256M (78%)")
                && line.contains("ws 150M")
                && line.contains("OOM in 42s"),
            "{line}"
        );
    }
}
