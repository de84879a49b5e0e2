//! What the kernel side reports: each probe's state, each program's run
//! time (and the budget), kernel statistics and map fill, histograms,
//! kills by cause, post-mortems by kind, and where fault counts come
//! from.

use memmon_common::names::probe;
use prometheus::proto::{MetricFamily, MetricType};

use super::encode::{family, log2_histogram, sample, scalar};
use crate::model::published::Published;

/// The probe, program, statistics and kill families.
pub(super) fn families(p: &Published, out: &mut Vec<MetricFamily>) {
    let mut up = family(
        "memmon_probe_attached",
        "1 when the probe is attached, 0 when unavailable or disabled.",
        MetricType::GAUGE,
    );
    for probe in &p.probes {
        up.mut_metric().push(sample(
            &[("probe", &probe.name)],
            MetricType::GAUGE,
            if probe.is_attached() { 1.0 } else { 0.0 },
        ));
    }
    out.push(up);
    out.extend(program_families(p));
    out.extend(kernel_stats(p));
    let mut kills = family(
        "memmon_kills_total",
        "Processes killed since memmon started, by cause: oom (the kernel's OOM killer), sigkill (a SIGKILL from userspace: kill -9, systemd-oomd, earlyoom, the kubelet), kernel (another SIGKILL from the kernel).",
        MetricType::COUNTER,
    );
    for cause in ["oom", "sigkill", "kernel"] {
        let live = match cause {
            "oom" => p.live.has_probe(probe::OOM_KILL),
            _ => p.live.has_probe(probe::KILL_SIGNAL),
        };
        if live {
            let n = p.kills_total.get(cause).copied().unwrap_or(0);
            kills
                .mut_metric()
                .push(sample(&[("cause", cause)], MetricType::COUNTER, n as f64));
        }
    }
    out.push(kills);
    let mut incidents = family(
        "memmon_incidents_total",
        "Post-mortems recorded since memmon started, by kind: oom_kill (one per OOM kill), sigkill (one per userspace SIGKILL, at most 30 a minute); read them with `memmon incidents`.",
        MetricType::COUNTER,
    );
    for (kind, live) in [
        ("oom_kill", p.live.has_probe(probe::OOM_KILL)),
        ("sigkill", p.live.has_probe(probe::KILL_SIGNAL)),
    ] {
        if live {
            let n = p.incidents_total.get(kind).copied().unwrap_or(0);
            incidents
                .mut_metric()
                .push(sample(&[("kind", kind)], MetricType::COUNTER, n as f64));
        }
    }
    out.push(incidents);
    // Without the oom_kill probe nothing counts OOM kills: no series (a
    // constant 0 would say "none" where memmon cannot see them).
    if p.live.has_probe(probe::OOM_KILL) {
        scalar(
            out,
            "memmon_oom_kills_total",
            "OOM kills seen since memmon started.",
            MetricType::COUNTER,
            p.oom_kills_total as f64,
        );
    }
    scalar(
        out,
        "memmon_fault_detail",
        "1 when fault counts come from the per-fault probes, 0 from the kernel's task counters.",
        MetricType::GAUGE,
        if p.fault_probes { 1.0 } else { 0.0 },
    );
}

/// The kernel's accounting of each loaded program (run-time statistics
/// on), and the budget they are held to.
fn program_families(p: &Published) -> Vec<MetricFamily> {
    let mut time = family(
        "memmon_probe_run_seconds_total",
        "Time the kernel spent in the program since it was loaded (BPF run-time statistics).",
        MetricType::COUNTER,
    );
    let mut runs = family(
        "memmon_probe_runs_total",
        "Times the program ran since it was loaded.",
        MetricType::COUNTER,
    );
    for c in &p.program_costs {
        time.mut_metric().push(sample(
            &[("program", c.program)],
            MetricType::COUNTER,
            c.run_seconds_total,
        ));
        runs.mut_metric().push(sample(
            &[("program", c.program)],
            MetricType::COUNTER,
            c.runs_total as f64,
        ));
    }
    let mut out = vec![time, runs];
    if let Some(b) = p.probe_cpu_budget {
        let mut f = family(
            "memmon_probe_cpu_budget",
            "Share of one core the probes may take before the detail probes are suspended.",
            MetricType::GAUGE,
        );
        f.mut_metric().push(sample(&[], MetricType::GAUGE, b));
        out.push(f);
    }
    out
}

/// Kernel statistics, grouped by what they count.
fn kernel_stats(p: &Published) -> Vec<MetricFamily> {
    let mut events = family(
        "memmon_kernel_events_total",
        "Events the kernel programs handled, by source.",
        MetricType::COUNTER,
    );
    let mut lost = family(
        "memmon_kernel_events_lost_total",
        "Ring-buffer records lost, by kind.",
        MetricType::COUNTER,
    );
    let mut full = family(
        "memmon_kernel_map_full_total",
        "Updates dropped because a kernel map was full, by map.",
        MetricType::COUNTER,
    );
    let mut entries = family(
        "memmon_kernel_map_entries",
        "Entries in a kernel map.",
        MetricType::GAUGE,
    );
    let mut capacity = family(
        "memmon_kernel_map_capacity",
        "Capacity of a kernel map.",
        MetricType::GAUGE,
    );
    let mut stale = family(
        "memmon_kernel_map_stale_entries",
        "Entries of processes that exited unseen, found in the last pass (and removed).",
        MetricType::GAUGE,
    );
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&p.stats) {
        for (k, v) in map {
            let Some(v) = v.as_f64() else { continue };
            if let Some(src) = k.strip_suffix("_events_lost") {
                lost.mut_metric()
                    .push(sample(&[("kind", src)], MetricType::COUNTER, v));
            } else if k == "events_lost" {
                lost.mut_metric()
                    .push(sample(&[("kind", "exit")], MetricType::COUNTER, v));
            } else if let Some(src) = k.strip_suffix("_events") {
                events
                    .mut_metric()
                    .push(sample(&[("source", src)], MetricType::COUNTER, v));
            } else if let Some(m) = k.strip_suffix("_map_full") {
                full.mut_metric()
                    .push(sample(&[("map", m)], MetricType::COUNTER, v));
            } else if let Some(m) = k.strip_suffix("_map_entries") {
                entries
                    .mut_metric()
                    .push(sample(&[("map", m)], MetricType::GAUGE, v));
            } else if let Some(m) = k.strip_suffix("_map_capacity") {
                capacity
                    .mut_metric()
                    .push(sample(&[("map", m)], MetricType::GAUGE, v));
            } else if let Some(m) = k.strip_suffix("_map_stale") {
                stale
                    .mut_metric()
                    .push(sample(&[("map", m)], MetricType::GAUGE, v));
            }
        }
    }
    let hists = [
        (
            "memmon_page_fault_duration_seconds",
            "Time the kernel spent resolving each page fault (fentry/fexit on handle_mm_fault; only where the kernel allows BPF tracing programs).",
            &p.stats.fault_latency_hist,
        ),
        (
            "memmon_reclaim_stall_duration_seconds",
            "Direct and memcg reclaim stalls by duration.",
            &p.stats.reclaim_stall_hist,
        ),
    ];
    [events, lost, full, entries, capacity, stale]
        .into_iter()
        .chain(
            hists
                .into_iter()
                .filter_map(|(name, help, h)| log2_histogram(name, help, h)),
        )
        .filter(|f| !f.get_metric().is_empty())
        .collect()
}
