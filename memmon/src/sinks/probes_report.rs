//! `snapshot --probes`: each probe's state, events seen, and map fill.

use std::fmt::Write as _;

use serde::Serialize;

use crate::probes::{ProbeState, ProbeStatus, StatsSnapshot};

/// Events counted for probe `name` (probes sharing a counter share it).
fn events_for(name: &str, stats: &StatsSnapshot) -> Option<u64> {
    match name {
        "page_fault_user" | "page_fault_kernel" => Some(stats.fault_events),
        "major_faults" => Some(stats.major_fault_events),
        "process_exit" => Some(stats.exit_events),
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
        "{:<w$}  {:<11}  {:<a$}  {:>10}  REASON",
        "PROBE", "STATE", "ATTACH POINT", "EVENTS"
    );
    for p in probes {
        let (word, reason) = state_word(&p.state);
        let events = events_for(&p.name, stats).map_or("-".to_string(), |e| e.to_string());
        let _ = writeln!(
            out,
            "{:<w$}  {:<11}  {:<a$}  {:>10}  {reason}",
            p.name, word, p.attach_point, events
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
}

/// JSON report: `{"probes": [...], "stats": {...}}`.
pub fn to_json(probes: &[ProbeStatus], stats: &StatsSnapshot) -> String {
    let report = Report {
        probes: probes
            .iter()
            .map(|status| ProbeJson {
                status,
                events: events_for(&status.name, stats),
            })
            .collect(),
        stats,
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
