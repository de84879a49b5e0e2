//! What the daemon's sampler publishes after each pass: an immutable copy
//! of the model's views that every HTTP request reads without locking the
//! model (scrapes never wait for a sample, and vice versa).

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::{
    model::{Model, OomKill, ProcessView, Totals},
    probes::{ProbeStatus, StatsSnapshot},
};

/// A daemon event for /api/v1/events besides OOM kills.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    /// Event type, e.g. `probe_status`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Unix time, milliseconds.
    pub unix_ms: u64,
    /// What happened.
    pub message: String,
}

/// One cgroup's totals, as published.
#[derive(Clone, Debug, Serialize)]
pub struct CgroupView {
    /// Memory cgroup path ("" when unknown).
    pub cgroup: String,
    /// Sums over its processes (live and exited).
    #[serde(flatten)]
    pub totals: Totals,
}

/// Everything the sinks read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Published {
    /// Unix time of this pass, milliseconds.
    pub unix_ms: u64,
    /// Live processes.
    pub processes: Vec<ProcessView>,
    /// Per-cgroup totals (live + exited processes).
    pub cgroups: Vec<CgroupView>,
    /// Probe states.
    pub probes: Vec<ProbeStatus>,
    /// Kernel statistics.
    pub stats: StatsSnapshot,
    /// Fault counts come from the per-fault probes (else task counters).
    pub fault_probes: bool,
    /// OOM kills since the daemon started.
    pub oom_kills_total: u64,
    /// Recent OOM kills, oldest first.
    pub recent_oom_kills: Vec<OomKill>,
    /// Recent notices (probe status changes), oldest first.
    pub notices: Vec<Notice>,
    /// Duration of the last sampling pass, seconds.
    pub sample_seconds: f64,
    /// Sampling passes so far.
    pub samples_total: u64,
    /// memmon's own resident set, bytes.
    pub self_rss_bytes: u64,
    /// memmon's own CPU time so far, seconds.
    pub self_cpu_seconds: f64,
    /// The system view (meminfo, vmstat rates, swap, buddy, slab, PSI,
    /// per-node NUMA).
    pub system: Option<crate::model::system::SystemView>,
    /// Cost of the last per-process memory pass (the cost guard).
    pub memory_cost: crate::procfs::cost_guard::CycleCost,
}

impl Published {
    /// Copies what the sinks need out of `model`.
    pub fn from_model(model: &Model) -> Self {
        let mut cgroups: Vec<CgroupView> = model
            .cgroup_totals()
            .into_iter()
            .map(|(cgroup, totals)| CgroupView { cgroup, totals })
            .collect();
        cgroups.sort_by(|a, b| a.cgroup.cmp(&b.cgroup));
        Published {
            unix_ms: unix_ms(),
            processes: model.live_views(),
            cgroups,
            probes: model.probes.clone(),
            stats: model.stats.clone(),
            fault_probes: model.fault_probes(),
            oom_kills_total: model.oom_kills_total,
            recent_oom_kills: model.recent_ooms.iter().cloned().collect(),
            system: model.system.clone(),
            memory_cost: model.memory_cost.clone(),
            ..Default::default()
        }
    }
}

/// The latest publication, swapped whole by the sampler.
pub type Shared = Arc<RwLock<Arc<Published>>>;

/// Reads the latest publication (a cheap Arc clone).
pub fn latest(shared: &Shared) -> Arc<Published> {
    match shared.read() {
        Ok(g) => Arc::clone(&g),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
