//! `snapshot --probes`: each probe's state, events seen, and map fill.

use std::fmt::Write as _;

use serde::Serialize;

use crate::sample::{
    probe_status::{ProbeState, ProbeStatus},
    stats::StatsSnapshot,
};

/// Events counted for probe `name` (probes sharing a counter share it).
fn events_for(name: &str, stats: &StatsSnapshot) -> Option<u64> {
    match name {
        "page_fault_user" | "page_fault_kernel" => Some(stats.fault_events),
        "major_faults" => Some(stats.major_fault_events),
        "process_exit" => Some(stats.exit_events),
        "direct_reclaim_begin"
        | "direct_reclaim_end"
        | "memcg_reclaim_begin"
        | "memcg_reclaim_end" => Some(stats.reclaim_events),
        "oom_kill" => Some(stats.oom_events),
        "migrate_pages" => Some(stats.migrate_events),
        "numa_move_task" | "numa_swap_tasks" => Some(stats.numa_move_events),
        "fault_latency" => Some(stats.fault_latency_events),
        "mmap_enter" | "mmap_exit" | "munmap" | "mremap" | "brk_enter" | "brk_exit" => {
            Some(stats.mmap_events)
        }
        "slab_alloc" | "slab_free" | "kmalloc" => Some(stats.slab_events),
        "page_alloc" => Some(stats.page_alloc_events),
        "page_alloc_extfrag" => Some(stats.extfrag_events),
        _ => None,
    }
}

/// Events probe `name` could not record (full map, full ring buffer).
fn dropped_for(name: &str, stats: &StatsSnapshot) -> Option<u64> {
    match name {
        "direct_reclaim_begin" | "memcg_reclaim_begin" => Some(stats.reclaim_map_full),
        "oom_kill" => Some(stats.oom_events_lost),
        "process_exit" => Some(stats.events_lost),
        "mmap_enter" => Some(stats.mmap_map_full),
        "slab_alloc" | "kmalloc" => Some(stats.slab_map_full),
        _ => None,
    }
}

fn state_word(state: &ProbeState) -> (&'static str, &str) {
    match state {
        ProbeState::Attached => ("attached", ""),
        ProbeState::Unavailable { reason } => ("unavailable", reason),
        ProbeState::Disabled { reason } => ("disabled", reason),
    }
}

/// Text report.
pub fn render(probes: &[ProbeStatus], stats: &StatsSnapshot) -> String {
    let mut out = String::new();
    let w = probes
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(5);
    let a = probes
        .iter()
        .map(|p| p.attach_point.len())
        .max()
        .unwrap_or(4)
        .max(12);
    let _ = writeln!(
        out,
        "{:<w$}  {:<11}  {:<a$}  {:>10}  {:>8}  REASON",
        "PROBE", "STATE", "ATTACH POINT", "EVENTS", "DROPPED"
    );
    for p in probes {
        let (word, reason) = state_word(&p.state);
        let events = events_for(&p.name, stats).map_or("-".to_string(), |e| e.to_string());
        let dropped = dropped_for(&p.name, stats).map_or("-".to_string(), |e| e.to_string());
        let _ = writeln!(
            out,
            "{:<w$}  {:<11}  {:<a$}  {:>10}  {:>8}  {reason}",
            p.name, word, p.attach_point, events, dropped
        );
    }
    let _ = writeln!(
        out,
        "\nper-process map: {} of {} entries ({} stale); dropped (map full): {}; exit events lost: {}",
        stats.proc_map_entries,
        stats.proc_map_capacity,
        stats.proc_map_stale,
        stats.proc_map_full,
        stats.events_lost
    );
    let _ = writeln!(
        out,
        "OOM events lost (ring buffer full): {}; swap counts dropped (SWAP_SEEN full): {}",
        stats.oom_events_lost, stats.swap_map_full
    );
    for (title, hist) in [
        ("reclaim stalls", &stats.reclaim_stall_hist),
        ("page-fault durations", &stats.fault_latency_hist),
    ] {
        if !hist.is_empty() {
            let _ = writeln!(out, "{title} (log2 ns buckets):");
            for (lo, n) in hist {
                let _ = writeln!(out, "  >= {lo:>12} ns  {n}");
            }
        }
    }
    if !stats.migrate_pages_by_reason.is_empty() {
        let _ = writeln!(out, "pages migrated by reason:");
        for (reason, n) in &stats.migrate_pages_by_reason {
            let _ = writeln!(out, "  {reason:<18} {n}");
        }
    }
    out
}

#[derive(Serialize)]
struct Report<'a> {
    probes: Vec<ProbeJson<'a>>,
    stats: &'a StatsSnapshot,
}

#[derive(Serialize)]
struct ProbeJson<'a> {
    #[serde(flatten)]
    status: &'a ProbeStatus,
    events: Option<u64>,
    dropped: Option<u64>,
}

/// JSON report: `{"probes": [...], "stats": {...}}`.
pub fn to_json(probes: &[ProbeStatus], stats: &StatsSnapshot) -> String {
    let report = Report {
        probes: probes
            .iter()
            .map(|status| ProbeJson {
                status,
                events: events_for(&status.name, stats),
                dropped: dropped_for(&status.name, stats),
            })
            .collect(),
        stats,
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
