//! What the model publishes after each pass: an immutable copy of its
//! views that every sink reads (the daemon's HTTP requests without locking
//! the model, so scrapes never wait for a sample, and vice versa).

use std::sync::{Arc, RwLock};

use serde::Serialize;

pub use super::oom::OomCandidate;
use super::{
    Model, OomKill, ProcessView, Which,
    fields::{self, CGROUP_FIELDS, Field, N_CGROUP, PROCESS_FIELDS},
    view::json_number,
};
use crate::{
    sample::{probe_status::ProbeStatus, stats::StatsSnapshot},
    sources::Live,
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

/// One cgroup's values, as published.
#[derive(Clone, Debug, PartialEq)]
pub struct CgroupView {
    /// Memory cgroup path ("" when unknown).
    pub cgroup: String,
    /// Names its path carries (unit, pod uid, container id, QoS class).
    pub names: crate::sample::cgroup::CgroupNames,
    /// Removed from the hierarchy: its values are the final ones.
    pub gone: bool,
    /// The process the kernel would kill first here now.
    pub oom_candidate: Option<OomCandidate>,
    /// One value per [`CGROUP_FIELDS`] entry (None: not measured).
    pub values: [Option<f64>; N_CGROUP],
}

impl CgroupView {
    /// Reads a cgroup back from its JSON form (a recording's frame, a
    /// daemon's answer); None when it has no `cgroup` path. Fields missing
    /// from the object stay unmeasured.
    pub fn from_json(v: &serde_json::Value) -> Option<CgroupView> {
        use crate::sample::cgroup::QosClass;
        let text = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        let mut values = [None; N_CGROUP];
        for (slot, f) in values.iter_mut().zip(CGROUP_FIELDS) {
            let raw = v.get(f.key);
            *slot = match f.label {
                Some((_, label)) => raw.and_then(|o| o.get(label)),
                None => raw,
            }
            .and_then(serde_json::Value::as_f64);
        }
        Some(CgroupView {
            cgroup: text("cgroup")?,
            names: crate::sample::cgroup::CgroupNames {
                unit: text("unit"),
                pod_uid: text("pod_uid"),
                container_id: text("container_id"),
                qos: match text("qos").as_deref() {
                    Some("guaranteed") => Some(QosClass::Guaranteed),
                    Some("burstable") => Some(QosClass::Burstable),
                    Some("besteffort") => Some(QosClass::BestEffort),
                    _ => None,
                },
            },
            gone: v
                .get("gone")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            oom_candidate: v.get("oom_candidate").and_then(|c| {
                Some(OomCandidate {
                    pid: u32::try_from(c.get("pid")?.as_u64()?).ok()?,
                    comm: c.get("comm")?.as_str()?.to_string(),
                    oom_score: c.get("oom_score")?.as_i64()?,
                })
            }),
            values,
        })
    }
}

impl Serialize for CgroupView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("cgroup", &self.cgroup)?;
        m.serialize_entry("unit", &self.names.unit)?;
        m.serialize_entry("pod_uid", &self.names.pod_uid)?;
        m.serialize_entry("container_id", &self.names.container_id)?;
        m.serialize_entry("qos", &self.names.qos.map(|q| q.as_str()))?;
        m.serialize_entry("gone", &self.gone)?;
        m.serialize_entry("oom_candidate", &self.oom_candidate)?;
        // Labeled fields share their key: one object {label value: number}.
        let mut i = 0;
        while i < CGROUP_FIELDS.len() {
            let f = &CGROUP_FIELDS[i];
            if f.label.is_some() {
                let mut obj = serde_json::Map::new();
                while i < CGROUP_FIELDS.len() && CGROUP_FIELDS[i].key == f.key {
                    let g = &CGROUP_FIELDS[i];
                    if let Some((_, value)) = g.label {
                        obj.insert(value.into(), json_number(self.values[i], g.unit.integral()));
                    }
                    i += 1;
                }
                m.serialize_entry(f.key, &obj)?;
            } else {
                m.serialize_entry(f.key, &json_number(self.values[i], f.unit.integral()))?;
                i += 1;
            }
        }
        m.end()
    }
}

/// One source of a field and whether it is live, for `/api/v1/snapshot`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SourceInfo {
    /// Probe name or /proc path.
    pub name: &'static str,
    /// Producing values now.
    pub live: bool,
}

/// A catalog field as `/api/v1/snapshot` describes it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FieldInfo {
    /// `process` or `cgroup`.
    pub scope: &'static str,
    /// JSON key.
    pub key: &'static str,
    /// Prometheus name, when exported.
    pub metric: Option<String>,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// Unit name.
    pub unit: &'static str,
    /// What it is.
    pub help: &'static str,
    /// Any one of these live makes the field measured.
    pub sources: Vec<SourceInfo>,
    /// Measured now (one of its sources is live).
    pub live: bool,
}

fn field_info<R>(scope: &'static str, f: &Field<R>, live: &Live) -> FieldInfo {
    FieldInfo {
        scope,
        key: f.key,
        metric: f.metric.then(|| f.metric_name(scope)),
        kind: match f.kind {
            fields::Kind::Counter => "counter",
            fields::Kind::Gauge => "gauge",
        },
        unit: f.unit.name(),
        help: f.help,
        sources: f
            .sources
            .iter()
            .map(|s| SourceInfo {
                name: s.name(),
                live: live.has(*s),
            })
            .collect(),
        live: live.any(f.sources),
    }
}

/// Every catalog field with its sources' state.
pub fn field_infos(live: &Live) -> Vec<FieldInfo> {
    PROCESS_FIELDS
        .iter()
        .map(|f| field_info("process", f, live))
        .chain(CGROUP_FIELDS.iter().map(|f| field_info("cgroup", f, live)))
        .collect()
}

/// Everything the sinks read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Published {
    /// Unix time of this pass, milliseconds.
    pub unix_ms: u64,
    /// Live processes (rows shared with the model and earlier
    /// publications while they do not change).
    pub processes: Vec<Arc<ProcessView>>,
    /// The rows of `processes` the flight recorders keep (the largest, and
    /// each cgroup's likeliest OOM victims: `Model::recorded_rows`).
    #[serde(skip)]
    pub recorded: Vec<Arc<ProcessView>>,
    /// The rows of `processes` with the largest resident set, largest
    /// first, ties by pid (at most `pipeline::RANKED_ROWS`; every live
    /// process with a resident set when fewer): `/metrics`' top K by RSS.
    #[serde(skip)]
    pub by_rss: Vec<Arc<ProcessView>>,
    /// Per-cgroup totals (live + exited processes).
    pub cgroups: Vec<CgroupView>,
    /// Probe states.
    pub probes: Vec<ProbeStatus>,
    /// The live sources.
    #[serde(skip)]
    pub live: Live,
    /// Every field, its sources, and whether it is measured now.
    pub fields: Vec<FieldInfo>,
    /// Kernel statistics.
    pub stats: StatsSnapshot,
    /// Fault counts come from the per-fault probes (else task counters).
    pub fault_probes: bool,
    /// OOM kills since the daemon started.
    pub oom_kills_total: u64,
    /// Recent OOM kills, oldest first.
    pub recent_oom_kills: Vec<OomKill>,
    /// Recent SIGKILLs (userspace killers, the kernel), oldest first.
    pub recent_sigkills: Vec<super::SignalKill>,
    /// Kills since start by cause (`oom`, `sigkill`, `kernel`).
    pub kills_total: std::collections::BTreeMap<&'static str, u64>,
    /// Recent notices (probe status changes), oldest first.
    pub notices: Vec<Notice>,
    /// Recent post-mortems (OOM kills, userspace SIGKILLs), short form,
    /// oldest first.
    pub incidents: Vec<super::incident::Summary>,
    /// The same, whole (served by id, written to the store as their own
    /// records).
    #[serde(skip)]
    pub incident_records: Vec<Arc<super::incident::Incident>>,
    /// Post-mortems made since start, by kind.
    pub incidents_total: std::collections::BTreeMap<&'static str, u64>,
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
    pub memory_cost: crate::sample::cost::CycleCost,
    /// What the process scans read (full walks, passes of what ran).
    pub scan_cost: crate::sample::cost::ScanCost,
    /// Each loaded program's run time, runs and share of a core (empty
    /// without the kernel's run-time statistics).
    pub program_costs: Vec<crate::model::budget::ProgramCost>,
    /// The probe CPU budget (share of one core; None: no budget).
    pub probe_cpu_budget: Option<f64>,
}

impl Published {
    /// A copy with no process rows (the recorder stores those apart; a
    /// thousand rows are megabytes to copy every pass). Every field is
    /// named, so a new one cannot be left out of recordings unnoticed.
    pub fn clone_without_processes(&self) -> Self {
        let Published {
            unix_ms,
            processes: _,
            recorded: _,
            by_rss: _,
            cgroups,
            probes,
            live,
            fields,
            stats,
            fault_probes,
            oom_kills_total,
            recent_oom_kills,
            recent_sigkills,
            kills_total,
            notices,
            incidents,
            incident_records,
            incidents_total,
            sample_seconds,
            samples_total,
            self_rss_bytes,
            self_cpu_seconds,
            system,
            memory_cost,
            scan_cost,
            program_costs,
            probe_cpu_budget,
        } = self;
        Published {
            unix_ms: *unix_ms,
            processes: Vec::new(),
            recorded: Vec::new(),
            by_rss: Vec::new(),
            cgroups: cgroups.clone(),
            probes: probes.clone(),
            live: live.clone(),
            fields: fields.clone(),
            stats: stats.clone(),
            fault_probes: *fault_probes,
            oom_kills_total: *oom_kills_total,
            recent_oom_kills: recent_oom_kills.clone(),
            recent_sigkills: recent_sigkills.clone(),
            kills_total: kills_total.clone(),
            notices: notices.clone(),
            incidents: incidents.clone(),
            incident_records: incident_records.clone(),
            incidents_total: incidents_total.clone(),
            sample_seconds: *sample_seconds,
            samples_total: *samples_total,
            self_rss_bytes: *self_rss_bytes,
            self_cpu_seconds: *self_cpu_seconds,
            system: system.clone(),
            memory_cost: memory_cost.clone(),
            scan_cost: scan_cost.clone(),
            program_costs: program_costs.clone(),
            probe_cpu_budget: *probe_cpu_budget,
        }
    }

    /// Copies what the sinks need out of `model` as of `now` (taking the
    /// base of the next pass's rates).
    pub fn from_model(model: &mut Model, now: crate::sample::Now) -> Self {
        let live = model.live();
        let mut totals = model.cgroup_totals();
        for (path, _) in model.cgroups.iter() {
            totals.entry(path.clone()).or_default();
        }
        let candidates = model.oom_candidates();
        let live_fields = fields::LiveFields::new(&live);
        let mut cgroups: Vec<CgroupView> = totals
            .into_iter()
            .map(|(cgroup, totals)| {
                let cg = model.cgroups.get(&cgroup);
                CgroupView {
                    names: cg.map(|c| c.names.clone()).unwrap_or_default(),
                    gone: cg.is_some_and(|c| c.gone),
                    oom_candidate: candidates.get(&cgroup).cloned(),
                    values: fields::read_cgroup(
                        &fields::CgroupCtx {
                            totals: &totals,
                            cg,
                        },
                        &live_fields,
                    ),
                    cgroup,
                }
            })
            .collect();
        cgroups.sort_by(|a, b| a.cgroup.cmp(&b.cgroup));
        Published {
            unix_ms: now.unix_ms,
            processes: model.views(Which::Live, now.instant),
            recorded: Vec::new(),
            by_rss: Vec::new(),
            cgroups,
            fields: field_infos(&live),
            live,
            probes: model.probes.clone(),
            stats: model.stats.clone(),
            fault_probes: model.fault_probes(),
            oom_kills_total: model.oom_kills_total,
            recent_oom_kills: model.recent_ooms.iter().cloned().collect(),
            recent_sigkills: model.recent_sigkills.iter().cloned().collect(),
            kills_total: model.kills_total.clone(),
            incidents: model.incidents.iter().map(|i| i.summary()).collect(),
            incident_records: model.incidents.iter().cloned().collect(),
            incidents_total: model.incidents_total.clone(),
            system: model.system.clone(),
            memory_cost: model.memory_cost.clone(),
            scan_cost: model.scan_cost.clone(),
            program_costs: model.program_costs.clone(),
            probe_cpu_budget: None,
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
