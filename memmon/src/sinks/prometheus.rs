//! /metrics: the published model as Prometheus metric families, encoded by
//! the prometheus crate's text encoder.
//!
//! Cardinality is bounded: per-process series only for the top K processes
//! (by a configurable key); every process, top or not, live or exited, is
//! summed into its cgroup's series, so those never go backwards; cgroups
//! past `max_cgroups` (admitted in order of appearance, and held until the
//! model releases them, some minutes after their removal) are summed into
//! `cgroup="other"`.

use std::collections::{HashMap, HashSet};

use memmon_common::names::probe;
use prometheus::{
    Encoder as _, TextEncoder,
    proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType},
};

use crate::{
    model::{
        ProcessView,
        fields::{CGROUP_FIELDS, Kind, N_CGROUP, PROCESS_FIELDS},
        published::Published,
        view::idx,
    },
    sources::{ProcFile, Source},
};

/// What the renderer needs besides the publication.
#[derive(Clone, Debug)]
pub struct RenderSettings {
    /// Per-process series for this many processes.
    pub top_k: usize,
    /// Ranking key (see config::TOP_BY_KEYS).
    pub top_by: String,
    /// Cgroups with their own series.
    pub max_cgroups: usize,
    /// Duration of the previous scrape, seconds.
    pub last_scrape_seconds: f64,
}

/// Cgroups admitted to their own series (grows up to the cap; a cgroup
/// keeps its series as long as the publication holds it, so no cgroup
/// series ever moves into `other`; one the model released, gone for some
/// minutes, leaves room for a new one).
#[derive(Debug, Default)]
pub struct CgroupAdmission {
    admitted: HashSet<String>,
}

impl CgroupAdmission {
    /// Frees the places of cgroups `p` no longer holds (released).
    fn release_absent(&mut self, p: &Published) {
        if self.admitted.len() <= p.cgroups.len()
            && p.cgroups.iter().all(|c| self.admitted.contains(&c.cgroup))
        {
            return;
        }
        let present: HashSet<&str> = p.cgroups.iter().map(|c| c.cgroup.as_str()).collect();
        self.admitted.retain(|c| present.contains(c.as_str()));
    }

    fn label<'a>(&mut self, cgroup: &'a str, cap: usize) -> &'a str {
        if self.admitted.contains(cgroup) {
            return cgroup;
        }
        if self.admitted.len() < cap {
            self.admitted.insert(cgroup.to_string());
            return cgroup;
        }
        "other"
    }
}

fn family(name: &str, help: &str, ty: MetricType) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_string());
    mf.set_help(help.to_string());
    mf.set_field_type(ty);
    mf
}

fn sample(labels: &[(&str, &str)], ty: MetricType, value: f64) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect(),
    );
    if ty == MetricType::COUNTER {
        let mut c = Counter::default();
        c.set_value(value);
        m.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    }
    m
}

fn scalar(out: &mut Vec<MetricFamily>, name: &str, help: &str, ty: MetricType, value: f64) {
    let mut mf = family(name, help, ty);
    mf.mut_metric().push(sample(&[], ty, value));
    out.push(mf);
}

/// The ranking value of a process for `top_by` (unknown ranks last).
fn rank(v: &ProcessView, top_by: &str) -> f64 {
    let value = match top_by {
        "fault_rate" => v.rate(idx::FAULTS),
        "swap" => v.value(idx::SWAP),
        "pss" => v.value(idx::PSS),
        "major_faults" => v.value(idx::MAJOR),
        _ => v.value(idx::RSS),
    };
    value.unwrap_or(-1.0)
}

/// The top `k` processes by `top_by`, largest first (ties by pid). Kernel
/// threads (no address space) never take a slot. Each rank is read once
/// and only the top `k` are sorted (a scrape of 10,000 processes sorts
/// `k` rows, not all of them).
pub fn top_processes<'a, V: std::ops::Deref<Target = ProcessView>>(
    procs: &'a [V],
    top_by: &str,
    k: usize,
) -> Vec<&'a ProcessView> {
    let mut v: Vec<(f64, &ProcessView)> = procs
        .iter()
        .map(|p| &**p)
        .filter(|p| !p.is_kernel_thread())
        .map(|p| (rank(p, top_by), p))
        .collect();
    let order = |a: &(f64, &ProcessView), b: &(f64, &ProcessView)| {
        b.0.total_cmp(&a.0).then(a.1.pid.cmp(&b.1.pid))
    };
    if k < v.len() {
        if k > 0 {
            v.select_nth_unstable_by(k - 1, order);
        }
        v.truncate(k);
    }
    v.sort_by(order);
    v.into_iter().map(|(_, p)| p).collect()
}

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
    }
}

/// Builds every metric family. A field none of whose sources is live has
/// no value, so its family is absent (never a constant 0).
pub fn families(
    p: &Published,
    s: &RenderSettings,
    admission: &mut CgroupAdmission,
) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    let top = top_processes(&p.processes, &s.top_by, s.top_k);
    for (i, f) in PROCESS_FIELDS.iter().enumerate().filter(|(_, f)| f.metric) {
        let ty = metric_type(f.kind);
        let mut mf = family(&f.metric_name("process"), f.help, ty);
        for v in &top {
            if let Some(value) = v.value(i) {
                let pid = v.pid.to_string();
                let cgroup = v.cgroup.as_deref().unwrap_or("");
                mf.mut_metric().push(sample(
                    &[("pid", &pid), ("comm", &v.comm), ("cgroup", cgroup)],
                    ty,
                    value,
                ));
            }
        }
        out.push(mf);
    }

    // Cgroups: admitted ones by name, the rest summed as "other" (their
    // process rollups only: a sum of other cgroups' limits means nothing).
    let own_files = |f: &crate::model::fields::Field<_>| {
        f.sources.contains(&Source::Proc(ProcFile::CgroupMemory))
    };
    admission.release_absent(p);
    let mut by_label: HashMap<String, [Option<f64>; N_CGROUP]> = HashMap::new();
    for cg in &p.cgroups {
        let label = admission.label(&cg.cgroup, s.max_cgroups).to_string();
        let other = label == "other";
        let t = by_label.entry(label).or_insert([None; N_CGROUP]);
        for ((a, b), f) in t.iter_mut().zip(cg.values).zip(CGROUP_FIELDS) {
            if other && own_files(f) {
                continue;
            }
            *a = match (*a, b) {
                (Some(x), Some(y)) => Some(x + y),
                (x, y) => x.or(y),
            };
        }
    }
    let mut labels: Vec<&String> = by_label.keys().collect();
    labels.sort();
    // Fields that share a key (labeled ones) make one family.
    let mut cgroup_families: Vec<MetricFamily> = Vec::new();
    for (i, f) in CGROUP_FIELDS.iter().enumerate().filter(|(_, f)| f.metric) {
        let ty = metric_type(f.kind);
        let name = f.metric_name("cgroup");
        let pos = match cgroup_families.iter().position(|m| m.name() == name) {
            Some(pos) => pos,
            None => {
                cgroup_families.push(family(&name, f.help, ty));
                cgroup_families.len() - 1
            }
        };
        for l in &labels {
            if let Some(value) = by_label[*l][i] {
                let mut pairs = vec![("cgroup", l.as_str())];
                if let Some(extra) = f.label {
                    pairs.push(extra);
                }
                cgroup_families[pos]
                    .mut_metric()
                    .push(sample(&pairs, ty, value));
            }
        }
    }
    out.extend(cgroup_families);
    // What each admitted cgroup's path names (systemd unit, pod, container,
    // QoS class), to join on `cgroup`; one series per cgroup, so bounded by
    // max_cgroups as the others are.
    let mut info = family(
        "memmon_cgroup_info",
        "Names a cgroup path carries (systemd unit; under kubepods pod_uid, container_id, qos), always 1; absent when it names none.",
        MetricType::GAUGE,
    );
    for cg in &p.cgroups {
        let n = &cg.names;
        if admission.label(&cg.cgroup, s.max_cgroups) == "other"
            || (n.unit.is_none() && n.pod_uid.is_none() && n.container_id.is_none())
        {
            continue;
        }
        let mut pairs = vec![("cgroup", cg.cgroup.as_str())];
        for (k, v) in [
            ("unit", n.unit.as_deref()),
            ("pod_uid", n.pod_uid.as_deref()),
            ("container_id", n.container_id.as_deref()),
            ("qos", n.qos.map(|q| q.as_str())),
        ] {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        info.mut_metric()
            .push(sample(&pairs, MetricType::GAUGE, 1.0));
    }
    out.push(info);

    // Probes and kernel statistics.
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

    out.extend(system_families(p));
    scalar(
        &mut out,
        "memmon_procfs_read_seconds",
        "Time the last per-process memory pass spent reading /proc (the cost guard caps it).",
        MetricType::GAUGE,
        p.memory_cost.seconds,
    );
    scalar(
        &mut out,
        "memmon_procfs_read_budget_seconds",
        "The cost guard's budget per pass.",
        MetricType::GAUGE,
        p.memory_cost.budget_seconds,
    );
    scalar(
        &mut out,
        "memmon_procfs_processes_read",
        "Processes whose memory the last pass read.",
        MetricType::GAUGE,
        p.memory_cost.read as f64,
    );
    scalar(
        &mut out,
        "memmon_procfs_processes_deferred",
        "Processes due but left for a later pass (budget spent).",
        MetricType::GAUGE,
        p.memory_cost.deferred as f64,
    );
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
    for (kind, probe) in [("oom_kill", "oom_kill"), ("sigkill", "kill_signal")] {
        if p.live.probes.contains(probe) {
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
            &mut out,
            "memmon_oom_kills_total",
            "OOM kills seen since memmon started.",
            MetricType::COUNTER,
            p.oom_kills_total as f64,
        );
    }
    scalar(
        &mut out,
        "memmon_processes",
        "Live processes.",
        MetricType::GAUGE,
        p.processes.len() as f64,
    );
    scalar(
        &mut out,
        "memmon_fault_detail",
        "1 when fault counts come from the per-fault probes, 0 from the kernel's task counters.",
        MetricType::GAUGE,
        if p.fault_probes { 1.0 } else { 0.0 },
    );
    scalar(
        &mut out,
        "memmon_sample_duration_seconds",
        "Duration of the last sampling pass.",
        MetricType::GAUGE,
        p.sample_seconds,
    );
    scalar(
        &mut out,
        "memmon_samples_total",
        "Sampling passes.",
        MetricType::COUNTER,
        p.samples_total as f64,
    );
    scalar(
        &mut out,
        "memmon_scrape_duration_seconds",
        "Duration of the previous /metrics render.",
        MetricType::GAUGE,
        s.last_scrape_seconds,
    );
    scalar(
        &mut out,
        "memmon_resident_bytes",
        "memmon's own resident set.",
        MetricType::GAUGE,
        p.self_rss_bytes as f64,
    );
    scalar(
        &mut out,
        "memmon_cpu_seconds_total",
        "memmon's own CPU time.",
        MetricType::COUNTER,
        p.self_cpu_seconds,
    );
    let mut info = family("memmon_build_info", "memmon version.", MetricType::GAUGE);
    info.mut_metric().push(sample(
        &[("version", env!("CARGO_PKG_VERSION"))],
        MetricType::GAUGE,
        1.0,
    ));
    out.push(info);
    // The text encoder rejects empty families (e.g. no cgroups yet).
    out.retain(|f| !f.get_metric().is_empty());
    out
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

/// meminfo fields exported as memmon_system_memory_bytes{field}.
const MEMINFO_FIELDS: &[&str] = &[
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "SwapTotal",
    "SwapFree",
    "AnonPages",
    "Shmem",
    "Slab",
    "SReclaimable",
    "SUnreclaim",
    "PageTables",
    "AnonHugePages",
    "Hugetlb",
    "Dirty",
    "Writeback",
];

/// The system view: meminfo, PSI, per-node NUMA counters.
fn system_families(p: &Published) -> Vec<MetricFamily> {
    let Some(v) = &p.system else {
        return Vec::new();
    };
    let s = &v.sample;
    let mut mem = family(
        "memmon_system_memory_bytes",
        "System memory by /proc/meminfo field.",
        MetricType::GAUGE,
    );
    for f in MEMINFO_FIELDS {
        if let Some(b) = s.meminfo.get(*f) {
            mem.mut_metric()
                .push(sample(&[("field", f)], MetricType::GAUGE, *b as f64));
        }
    }
    let mut psi = family(
        "memmon_system_memory_pressure_seconds_total",
        "Time tasks stalled on memory (PSI), some or full.",
        MetricType::COUNTER,
    );
    if let Some(x) = &s.psi {
        psi.mut_metric().push(sample(
            &[("kind", "some")],
            MetricType::COUNTER,
            x.some_total_us as f64 / 1e6,
        ));
        psi.mut_metric().push(sample(
            &[("kind", "full")],
            MetricType::COUNTER,
            x.full_total_us as f64 / 1e6,
        ));
    }
    let mut vmstat = family(
        "memmon_system_vmstat_total",
        "System memory counters from /proc/vmstat (faults, swap, OOM kills, migration, THP, reclaim), by counter.",
        MetricType::COUNTER,
    );
    for k in crate::model::system::RATE_KEYS {
        if let Some(v) = s.vmstat.get(*k) {
            vmstat
                .mut_metric()
                .push(sample(&[("counter", k)], MetricType::COUNTER, *v as f64));
        }
    }
    let mut numa = family(
        "memmon_node_numa_events_total",
        "Per-node numastat counters.",
        MetricType::COUNTER,
    );
    let mut free = family(
        "memmon_node_memory_free_bytes",
        "Free memory per NUMA node.",
        MetricType::GAUGE,
    );
    for (node, m) in &s.nodes {
        let n = node.to_string();
        for k in [
            "numa_hit",
            "numa_miss",
            "numa_foreign",
            "interleave_hit",
            "local_node",
            "other_node",
        ] {
            if let Some(val) = m.get(k) {
                numa.mut_metric().push(sample(
                    &[("node", &n), ("counter", k)],
                    MetricType::COUNTER,
                    *val as f64,
                ));
            }
        }
        if let Some(f) = m.get("MemFree") {
            free.mut_metric()
                .push(sample(&[("node", &n)], MetricType::GAUGE, *f as f64));
        }
    }
    let mut buddy = family(
        "memmon_buddy_free_blocks",
        "Free blocks per order in the buddy allocator (/proc/buddyinfo).",
        MetricType::GAUGE,
    );
    for z in &s.buddyinfo {
        let n = z.node.to_string();
        for (order, count) in z.free_blocks.iter().enumerate() {
            let o = order.to_string();
            buddy.mut_metric().push(sample(
                &[("node", &n), ("zone", &z.zone), ("order", &o)],
                MetricType::GAUGE,
                *count as f64,
            ));
        }
    }
    let mut slab = family(
        "memmon_slab_cache_bytes",
        "Memory held by the largest slab caches (/proc/slabinfo).",
        MetricType::GAUGE,
    );
    for c in &s.top_slabs {
        slab.mut_metric().push(sample(
            &[("cache", &c.name)],
            MetricType::GAUGE,
            c.bytes as f64,
        ));
    }
    let mut out = vec![mem, vmstat, psi, numa, free, buddy, slab];
    let values = [
        v.oom_forecast_seconds,
        v.memory_growth_bytes_per_second,
        v.forecast_window_seconds,
    ];
    for ((key, help), value) in SYSTEM_FORECAST.iter().zip(values) {
        if let Some(value) = value {
            let mut f = family(&format!("memmon_system_{key}"), help, MetricType::GAUGE);
            f.mut_metric().push(sample(&[], MetricType::GAUGE, value));
            out.push(f);
        }
    }
    out
}

/// The system forecast's gauges, `memmon_system_<key>`: each is absent
/// while its value is (memory flat or shrinking, too few samples), so a
/// scrape alone does not list them all.
pub const SYSTEM_FORECAST: [(&str, &str); 3] = [
    (
        "oom_forecast_seconds",
        "Seconds until MemAvailable plus free swap reaches 0 at the current growth (Theil-Sen over the window); absent when flat or shrinking.",
    ),
    (
        "memory_growth_bytes_per_second",
        "Growth of RAM plus swap in use (MemTotal + SwapTotal - MemAvailable - SwapFree), the slope the system forecast uses.",
    ),
    (
        "forecast_window_seconds",
        "Time the system forecast's samples span.",
    ),
];

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

/// A Prometheus histogram from log2 ns buckets ((lower bound ns, count),
/// slot i holding [2^i, 2^(i+1)) ns); None when empty.
fn log2_histogram(name: &str, help: &str, slots: &[(u64, u64)]) -> Option<MetricFamily> {
    // Slot index from its lower bound: 0 → 0, 2^i → i.
    let index = |lo: u64| {
        if lo == 0 {
            0
        } else {
            lo.trailing_zeros() as usize
        }
    };
    let top = index(slots.last()?.0);
    let mut counts = vec![0u64; top + 1];
    let mut sum = 0f64;
    for (lo, n) in slots {
        counts[index(*lo)] += n;
        // Bucket midpoints: the sum is an estimate.
        sum += (*lo as f64 * 1.5).max(1.0) * *n as f64 / 1e9;
    }
    let mut cumulative = 0u64;
    let buckets = counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            cumulative += n;
            let mut b = prometheus::proto::Bucket::default();
            b.set_upper_bound((1u64 << (i + 1)) as f64 / 1e9);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    let mut h = prometheus::proto::Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(cumulative);
    h.set_sample_sum(sum);
    let mut mf = family(name, help, MetricType::HISTOGRAM);
    let mut m = Metric::default();
    m.set_histogram(h);
    mf.mut_metric().push(m);
    Some(mf)
}

#[cfg(test)]
mod log2_histogram_tests {
    use super::*;

    #[test]
    fn log2_slots_become_cumulative_buckets() {
        let mf = log2_histogram("x_seconds", "h", &[(0, 1), (1024, 3), (4096, 2)]).expect("some");
        let h = mf.get_metric()[0].get_histogram();
        let b = h.get_bucket();
        // Slots 0..=12: upper bounds 2 ns .. 8192 ns.
        assert_eq!(b.len(), 13);
        assert_eq!(b[0].cumulative_count(), 1);
        assert_eq!(b[9].cumulative_count(), 1);
        assert_eq!(b[10].cumulative_count(), 4);
        assert!((b[10].upper_bound() - 2048e-9).abs() < 1e-15);
        assert_eq!(b[12].cumulative_count(), 6);
        assert_eq!(h.get_sample_count(), 6);
        assert!(log2_histogram("x", "h", &[]).is_none());
        assert!(encode(&[mf]).is_ok());
    }
}

/// The text exposition of `families`.
pub fn encode(families: &[MetricFamily]) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(64 * 1024);
    TextEncoder::new()
        .encode(families, &mut buf)
        .map_err(|e| format!("encoding metrics: {e}"))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Render settings of these tests: top 5 by RSS, `max_cgroups` cgroups.
    fn settings(max_cgroups: usize) -> RenderSettings {
        RenderSettings {
            top_k: 5,
            top_by: "rss".into(),
            max_cgroups,
            last_scrape_seconds: 0.0,
        }
    }

    /// The exposition text of `fams`.
    fn text_of(fams: &[MetricFamily]) -> String {
        String::from_utf8(encode(fams).expect("encodes")).expect("utf-8")
    }

    fn view(pid: u32, comm: &str, rss: u64) -> ProcessView {
        let mut v = ProcessView {
            pid,
            comm: comm.into(),
            cgroup: Some("/a\"b\\c\nd".into()),
            ..Default::default()
        };
        v.values.set(idx::RSS, Some(rss as f64));
        v.values.set(idx::VM, Some((rss + 1) as f64));
        v
    }

    #[test]
    fn top_k_bounds_process_series_and_escapes_labels() {
        let p = Published {
            processes: (0..100)
                .map(|i| std::sync::Arc::new(view(i, "we\"ird\n\\name", u64::from(i) * 4096)))
                .collect(),
            ..Default::default()
        };
        let s = settings(10);
        let fams = families(&p, &s, &mut CgroupAdmission::default());
        let rss = fams
            .iter()
            .find(|f| f.name() == "memmon_process_rss_bytes")
            .expect("rss family");
        assert_eq!(rss.get_metric().len(), 5);
        let text = text_of(&fams);
        assert!(text.contains(r#"comm="we\"ird\n\\name""#), "{text}");
        assert!(text.contains(r#"pid="99""#));
        assert!(!text.contains(r#"pid="94""#));
    }

    /// OOM kill counters exist only while the probes that count them are
    /// attached: never a 0 that means "not seen".
    #[test]
    fn kill_counters_are_absent_without_their_probes() {
        let s = settings(10);
        let text = |probes: &[&str]| {
            let mut p = Published::default();
            p.live.probes = probes.iter().map(|n| n.to_string()).collect();
            p.oom_kills_total = 2;
            p.kills_total.insert("oom", 2);
            p.incidents_total.insert("oom_kill", 2);
            let fams = families(&p, &s, &mut CgroupAdmission::default());
            text_of(&fams)
        };
        let none = text(&[]);
        assert!(!none.contains("memmon_oom_kills_total"), "{none}");
        assert!(!none.contains("memmon_kills_total{"), "{none}");
        let oom = text(&["oom_kill"]);
        assert!(oom.contains("memmon_oom_kills_total 2"), "{oom}");
        assert!(
            oom.contains(r#"memmon_kills_total{cause="oom"} 2"#),
            "{oom}"
        );
        assert!(!oom.contains(r#"cause="sigkill""#), "{oom}");
        assert!(!none.contains("memmon_incidents_total{"), "{none}");
        assert!(
            oom.contains(r#"memmon_incidents_total{kind="oom_kill"} 2"#)
                && !oom.contains(r#"kind="sigkill""#),
            "{oom}"
        );
        let both = text(&["oom_kill", "kill_signal"]);
        assert!(
            both.contains(r#"memmon_incidents_total{kind="sigkill"} 0"#),
            "{both}"
        );
    }

    /// The names a cgroup path carries are one info series per admitted
    /// cgroup, to join on `cgroup`; none for paths that name nothing or
    /// for cgroups past the cap.
    #[test]
    fn cgroup_names_are_an_info_series() {
        use crate::{cgroupfs::names::names, model::published::CgroupView};
        let view = |path: &str| CgroupView {
            cgroup: path.into(),
            names: names(path),
            gone: false,
            oom_candidate: None,
            values: [None; N_CGROUP],
        };
        let pod = "/kubepods.slice/kubepods-burstable.slice/\
                   kubepods-burstable-pod0d3c4f7e_1a2b_4c5d_8e9f_0a1b2c3d4e5f.slice/\
                   cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
        let p = Published {
            cgroups: vec![
                view("/plain"),
                view(pod),
                view("/system.slice/nginx.service"),
            ],
            ..Default::default()
        };
        let s = settings(2);
        let fams = families(&p, &s, &mut CgroupAdmission::default());
        let text = text_of(&fams);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("memmon_cgroup_info{"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        for want in [
            "pod_uid=\"0d3c4f7e-1a2b-4c5d-8e9f-0a1b2c3d4e5f\"",
            "container_id=\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"",
            "qos=\"burstable\"",
            "unit=\"cri-containerd-",
        ] {
            assert!(lines[0].contains(want), "{want} missing: {}", lines[0]);
        }
        assert!(lines[0].ends_with(" 1"), "{}", lines[0]);
    }

    /// Pod churn: a cgroup the model released (absent from the
    /// publication) gives its place to a new one, which gets its own
    /// series instead of `other`; held ones keep theirs.
    #[test]
    fn released_cgroups_give_their_series_to_new_ones() {
        use crate::model::published::CgroupView;
        let publication = |paths: &[&str]| Published {
            cgroups: paths
                .iter()
                .map(|p| CgroupView {
                    cgroup: (*p).into(),
                    names: Default::default(),
                    gone: false,
                    oom_candidate: None,
                    values: [Some(1.0); N_CGROUP],
                })
                .collect(),
            ..Default::default()
        };
        let s = settings(2);
        let mut adm = CgroupAdmission::default();
        let labels = |p: &Published, adm: &mut CgroupAdmission| {
            let fams = families(p, &s, adm);
            let text = text_of(&fams);
            let mut l: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("memmon_cgroup_") && !l.starts_with("memmon_cgroup_info"))
                .filter_map(|l| Some(l.split("cgroup=\"").nth(1)?.split('"').next()?.to_string()))
                .collect();
            l.sort();
            l.dedup();
            l
        };
        assert_eq!(
            labels(&publication(&["/pod-0", "/pod-1"]), &mut adm),
            ["/pod-0", "/pod-1"]
        );
        // Full: a third cgroup is summed as other while both are held.
        assert_eq!(
            labels(&publication(&["/pod-0", "/pod-1", "/pod-2"]), &mut adm),
            ["/pod-0", "/pod-1", "other"]
        );
        // Churn: each pod released in turn, the next one takes its place.
        for i in 2..50 {
            let (old, new) = (format!("/pod-{}", i - 1), format!("/pod-{i}"));
            let got = labels(&publication(&["/pod-0", &old, &new]), &mut adm);
            assert!(got.contains(&old) && !got.contains(&new), "{got:?}");
            let got = labels(&publication(&["/pod-0", &new]), &mut adm);
            assert_eq!(got, ["/pod-0".to_string(), new.clone()], "pod {i}");
        }
    }

    #[test]
    fn cgroups_past_the_cap_fold_into_other_and_stay() {
        let mut adm = CgroupAdmission::default();
        assert_eq!(adm.label("/a", 2), "/a");
        assert_eq!(adm.label("/b", 2), "/b");
        assert_eq!(adm.label("/c", 2), "other");
        assert_eq!(adm.label("/a", 2), "/a");
    }
}
