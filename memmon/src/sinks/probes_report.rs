//! `snapshot --probes`: each probe's state, events seen, and map fill.

use std::fmt::Write as _;

use memmon_common::names::{
    Probe,
    probe::{self, *},
};
use serde::Serialize;

use crate::sample::{
    probe_status::{ProbeState, ProbeStatus},
    stats::StatsSnapshot,
};

/// A statistics slot and the probes whose events it counts.
type Counted = (&'static [&'static Probe], fn(&StatsSnapshot) -> u64);

/// Events counted per probe (probes sharing a counter share it).
const EVENTS: &[Counted] = &[
    (&[PAGE_FAULT_USER, PAGE_FAULT_KERNEL], |s| s.fault_events),
    (&[MAJOR_FAULTS], |s| s.major_fault_events),
    (&[PROCESS_EXIT], |s| s.exit_events),
    (&[RSS_STAT], |s| s.rss_events),
    (
        &[
            DIRECT_RECLAIM_BEGIN,
            DIRECT_RECLAIM_END,
            MEMCG_RECLAIM_BEGIN,
            MEMCG_RECLAIM_END,
        ],
        |s| s.reclaim_events,
    ),
    (&[OOM_KILL], |s| s.oom_events),
    (&[MIGRATE_PAGES], |s| s.migrate_events),
    (&[NUMA_MOVE_TASK, NUMA_SWAP_TASKS], |s| s.numa_move_events),
    (&[FAULT_LATENCY], |s| s.fault_latency_events),
    (
        &[MMAP_ENTER, MMAP_EXIT, MUNMAP, MREMAP, BRK_ENTER, BRK_EXIT],
        |s| s.mmap_events,
    ),
    (&[SLAB_ALLOC, SLAB_FREE, KMALLOC], |s| s.slab_events),
    (&[PAGE_ALLOC], |s| s.page_alloc_events),
    (&[PAGE_ALLOC_EXTFRAG], |s| s.extfrag_events),
];

/// Events a probe could not record (full map, full ring buffer).
const DROPPED: &[Counted] = &[
    (&[RSS_STAT], |s| s.rss_map_full),
    (&[DIRECT_RECLAIM_BEGIN, MEMCG_RECLAIM_BEGIN], |s| {
        s.reclaim_map_full
    }),
    (&[OOM_KILL], |s| s.oom_events_lost),
    (&[PROCESS_EXIT], |s| s.events_lost),
    (&[MMAP_ENTER], |s| s.mmap_map_full),
    (&[SLAB_ALLOC, KMALLOC], |s| s.slab_map_full),
];

/// The slot of `table` that counts probe `name`, read from `stats`.
fn counted(table: &[Counted], name: &str, stats: &StatsSnapshot) -> Option<u64> {
    let p = probe::find(name)?;
    table
        .iter()
        .find(|(probes, _)| probes.contains(&p))
        .map(|(_, read)| read(stats))
}

/// Events counted for probe `name`.
fn events_for(name: &str, stats: &StatsSnapshot) -> Option<u64> {
    counted(EVENTS, name, stats)
}

/// Events probe `name` could not record.
fn dropped_for(name: &str, stats: &StatsSnapshot) -> Option<u64> {
    counted(DROPPED, name, stats)
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
        "rss_stat mm map: {} entries; OOM events lost (ring buffer full): {}",
        stats.mm_map_entries, stats.oom_events_lost
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
