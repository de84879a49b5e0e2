//! The engine's input: a time series of one target's points (the process,
//! its memory cgroup, the system) and what is known "now" (the cgroup's
//! processes with their oom_score, NUMA pages per node, which sources were
//! live). A point keeps catalog fields by their catalog index (no field is
//! declared twice), so every finding can name its value's source from the
//! catalog. Built the same way from the three places evidence comes from:
//! a live [`Published`], a recording's frame and a daemon's history (both
//! the `/api/v1/snapshot` JSON shape).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{
    fields::{CGROUP_FIELDS, PROCESS_FIELDS},
    published::{CgroupView, FieldInfo, Published},
    system::SystemView,
    view::{ProcessView, Slots, field_index, str_eq},
};

/// The per-process catalog fields a [`ProcPoint`] keeps.
pub const PROCESS_KEYS: [&str; 19] = [
    "rss_bytes",
    "pss_bytes",
    "uss_bytes",
    "swap_bytes",
    "rss_anon_bytes",
    "rss_file_bytes",
    "rss_shmem_bytes",
    "anon_huge_bytes",
    "major_faults",
    "cow_faults",
    "swap_in_pages",
    "swap_out_pages",
    "reclaim_stall_seconds",
    "brk_grow_bytes",
    "brk_shrink_bytes",
    "mmap_anon_bytes",
    "oom_score",
    "oom_score_adj",
    "numa_local_ratio",
];
/// Values in a [`ProcPoint`].
pub const NP: usize = PROCESS_KEYS.len();

/// Each [`PROCESS_KEYS`] entry's index in the field catalog.
pub const PROCESS_INDEX: [usize; NP] = {
    let mut out = [0; NP];
    let mut i = 0;
    while i < NP {
        out[i] = field_index(PROCESS_KEYS[i]);
        i += 1;
    }
    out
};

/// The per-cgroup catalog fields (key, label value) a [`CgroupPoint`] keeps.
pub const CGROUP_KEYS: [(&str, Option<&str>); 32] = [
    ("memory_usage_bytes", None),
    ("memory_working_set_bytes", None),
    ("memory_unreclaimable_bytes", None),
    ("memory_swap_bytes", None),
    ("memory_limit_bytes", Some("max")),
    ("memory_limit_bytes", Some("effective_max")),
    ("memory_limit_bytes", Some("high")),
    ("memory_stat_bytes", Some("anon")),
    ("memory_stat_bytes", Some("file")),
    ("memory_stat_bytes", Some("shmem")),
    ("memory_stat_bytes", Some("kernel")),
    ("memory_stat_bytes", Some("slab_unreclaimable")),
    ("memory_stat_bytes", Some("anon_thp")),
    ("memory_stat_bytes", Some("inactive_file")),
    ("memory_stat_events", Some("workingset_refault_anon")),
    ("memory_stat_events", Some("workingset_refault_file")),
    ("memory_stat_events", Some("pgmajfault")),
    ("memory_events", Some("high")),
    ("memory_events", Some("max")),
    ("memory_events", Some("oom_kill")),
    ("memory_events", Some("failcnt")),
    ("memory_pressure_seconds", Some("some")),
    ("memory_pressure_seconds", Some("full")),
    ("oom_forecast_seconds", None),
    ("unreclaimable_growth_bytes_per_second", None),
    ("rss_bytes", None),
    ("processes", None),
    ("major_faults", None),
    ("swap_in_pages", None),
    ("swap_out_pages", None),
    ("reclaim_stall_seconds", None),
    ("memory_detail_age_seconds", None),
];
/// Values in a [`CgroupPoint`].
pub const NC: usize = CGROUP_KEYS.len();

/// The index of cgroup field `key` (with `label` value) in the catalog, at
/// compile time.
pub const fn cgroup_field_index(key: &str, label: Option<&str>) -> usize {
    crate::model::cgroup_ids::CgroupId::of(key, label).index()
}

/// Each [`CGROUP_KEYS`] entry's index in the field catalog.
pub const CGROUP_INDEX: [usize; NC] = {
    let mut out = [0; NC];
    let mut i = 0;
    while i < NC {
        out[i] = cgroup_field_index(CGROUP_KEYS[i].0, CGROUP_KEYS[i].1);
        i += 1;
    }
    out
};

/// The position of `key` in [`PROCESS_KEYS`], at compile time.
pub const fn p(key: &str) -> usize {
    let mut i = 0;
    while i < NP {
        if str_eq(PROCESS_KEYS[i], key) {
            return i;
        }
        i += 1;
    }
    panic!("not a ProcPoint key")
}

/// The position of `key` (`label`) in [`CGROUP_KEYS`], at compile time.
pub const fn c(key: &str, label: Option<&str>) -> usize {
    let mut i = 0;
    while i < NC {
        let (k, l) = CGROUP_KEYS[i];
        let same_label = match (l, label) {
            (None, None) => true,
            (Some(a), Some(b)) => str_eq(a, b),
            _ => false,
        };
        if str_eq(k, key) && same_label {
            return i;
        }
        i += 1;
    }
    panic!("not a CgroupPoint key")
}

/// One process's values at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcPoint(Slots<NP>);

impl ProcPoint {
    /// The [`PROCESS_KEYS`] values of a row.
    pub fn from_view(v: &ProcessView) -> Self {
        let mut s = Slots::NONE;
        for (i, &f) in PROCESS_INDEX.iter().enumerate() {
            s.set(i, v.value(f));
        }
        ProcPoint(s)
    }

    /// The value at position `i` (see [`p`]).
    pub fn get(&self, i: usize) -> Option<f64> {
        self.0.get(i)
    }

    /// Writes the values into a row's catalog slots (the history's
    /// snapshot-shaped answer).
    pub fn fill(&self, v: &mut ProcessView) {
        for (i, &f) in PROCESS_INDEX.iter().enumerate() {
            v.values.set(f, self.get(i));
        }
    }
}

/// One cgroup's values at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CgroupPoint(Slots<NC>);

impl CgroupPoint {
    /// The [`CGROUP_KEYS`] values of a cgroup.
    pub fn from_view(v: &CgroupView) -> Self {
        let mut s = Slots::NONE;
        for (i, &f) in CGROUP_INDEX.iter().enumerate() {
            s.set(i, v.values.get(f).copied().flatten());
        }
        CgroupPoint(s)
    }

    /// The value at position `i` (see [`c`]).
    pub fn get(&self, i: usize) -> Option<f64> {
        self.0.get(i)
    }

    /// Writes the values into a cgroup's catalog slots.
    pub fn fill(&self, v: &mut CgroupView) {
        for (i, &f) in CGROUP_INDEX.iter().enumerate() {
            if let Some(slot) = v.values.get_mut(f) {
                *slot = self.get(i);
            }
        }
    }
}

/// The system's values at one moment (`/proc/pressure/memory`,
/// `/proc/vmstat`, `/proc/meminfo`, the system forecast).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SystemPoint {
    /// PSI memory `some` total, µs.
    pub psi_some_us: Option<u64>,
    /// PSI memory `full` total, µs.
    pub psi_full_us: Option<u64>,
    /// vmstat pswpin, pages.
    pub pswpin: Option<u64>,
    /// vmstat pswpout, pages.
    pub pswpout: Option<u64>,
    /// vmstat pgmajfault.
    pub pgmajfault: Option<u64>,
    /// vmstat workingset_refault_anon + workingset_refault_file.
    pub refaults: Option<u64>,
    /// meminfo MemTotal, bytes.
    pub mem_total: Option<u64>,
    /// meminfo MemAvailable, bytes.
    pub mem_available: Option<u64>,
    /// meminfo SwapTotal, bytes.
    pub swap_total: Option<u64>,
    /// meminfo SwapFree, bytes.
    pub swap_free: Option<u64>,
    /// The system's time-to-OOM forecast, seconds.
    pub oom_forecast_seconds: Option<f64>,
}

const VMSTAT_KEYS: [&str; 5] = [
    "pswpin",
    "pswpout",
    "pgmajfault",
    "workingset_refault_anon",
    "workingset_refault_file",
];
const MEMINFO_KEYS: [&str; 4] = ["MemTotal", "MemAvailable", "SwapTotal", "SwapFree"];

impl SystemPoint {
    fn from_maps(
        vm: impl Fn(&str) -> Option<u64>,
        mem: impl Fn(&str) -> Option<u64>,
        psi: Option<(u64, u64)>,
        forecast: Option<f64>,
    ) -> Self {
        let refaults = match (vm("workingset_refault_anon"), vm("workingset_refault_file")) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        SystemPoint {
            psi_some_us: psi.map(|p| p.0),
            psi_full_us: psi.map(|p| p.1),
            pswpin: vm("pswpin"),
            pswpout: vm("pswpout"),
            pgmajfault: vm("pgmajfault"),
            refaults,
            mem_total: mem("MemTotal"),
            mem_available: mem("MemAvailable"),
            swap_total: mem("SwapTotal"),
            swap_free: mem("SwapFree"),
            oom_forecast_seconds: forecast,
        }
    }

    /// From the model's system view.
    pub fn from_view(v: &SystemView) -> Self {
        let s = &v.sample;
        Self::from_maps(
            |k| s.vmstat.get(k).copied(),
            |k| s.meminfo.get(k).copied(),
            s.psi.as_ref().map(|p| (p.some_total_us, p.full_total_us)),
            v.oom_forecast_seconds,
        )
    }

    /// From a publication's `system` object (JSON).
    pub fn from_json(v: &Value) -> Self {
        let num = |o: &str, k: &str| v.get(o).and_then(|m| m.get(k)).and_then(Value::as_u64);
        let psi = v.get("psi").and_then(|p| {
            Some((
                p.get("some_total_us")?.as_u64()?,
                p.get("full_total_us")?.as_u64()?,
            ))
        });
        Self::from_maps(
            |k| num("vmstat", k),
            |k| num("meminfo", k),
            psi,
            v.get("oom_forecast_seconds").and_then(Value::as_f64),
        )
    }

    /// The `system` object of a snapshot-shaped frame holding only these
    /// values (what [`SystemPoint::from_json`] reads).
    pub fn to_json(&self) -> Value {
        let mut vm = serde_json::Map::new();
        for (k, v) in VMSTAT_KEYS[..3]
            .iter()
            .zip([self.pswpin, self.pswpout, self.pgmajfault])
        {
            if let Some(v) = v {
                vm.insert((*k).into(), v.into());
            }
        }
        if let Some(r) = self.refaults {
            // The sum, under one of its two names: it reads back the same.
            vm.insert("workingset_refault_anon".into(), r.into());
        }
        let mut mem = serde_json::Map::new();
        for (k, v) in MEMINFO_KEYS.iter().zip([
            self.mem_total,
            self.mem_available,
            self.swap_total,
            self.swap_free,
        ]) {
            if let Some(v) = v {
                mem.insert((*k).into(), v.into());
            }
        }
        let psi = match (self.psi_some_us, self.psi_full_us) {
            (Some(s), Some(f)) => serde_json::json!({"some_total_us": s, "full_total_us": f}),
            _ => Value::Null,
        };
        serde_json::json!({
            "vmstat": vm,
            "meminfo": mem,
            "psi": psi,
            "oom_forecast_seconds": self.oom_forecast_seconds,
        })
    }
}

/// The target's points at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    /// Unix time, ms.
    pub unix_ms: u64,
    /// The process (process targets).
    pub process: Option<ProcPoint>,
    /// The memory cgroup (the process's, or the target).
    pub cgroup: Option<CgroupPoint>,
    /// The system.
    pub system: Option<SystemPoint>,
}

/// A process of the target's cgroup, as last seen.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// /proc/PID/oom_score, when read.
    pub oom_score: Option<f64>,
    /// Resident bytes.
    pub rss: Option<f64>,
    /// Its memory cgroup.
    pub cgroup: Option<String>,
}

/// A sampled stack that made the target grow (from a profile).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrowthStack {
    /// Frames, innermost first.
    pub frames: Vec<String>,
    /// Its weight (faults or bytes, as `what` says).
    pub weight: f64,
    /// What the weight counts, e.g. `page faults`.
    pub what: String,
}

/// What to explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A process.
    Pid(u32),
    /// A memory cgroup, by path.
    Cgroup(String),
    /// The memory cgroup a systemd unit names.
    Unit(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Pid(p) => write!(f, "pid {p}"),
            Target::Cgroup(c) => write!(f, "cgroup {c}"),
            Target::Unit(u) => write!(f, "unit {u}"),
        }
    }
}

/// Which sources each catalog field had (by `scope.key`): the live ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sources(BTreeMap<String, (bool, Vec<String>)>);

impl Sources {
    /// From a publication's field list.
    pub fn from_infos(infos: &[FieldInfo]) -> Self {
        Sources(
            infos
                .iter()
                .map(|f| {
                    (
                        format!("{}.{}", f.scope, f.key),
                        (
                            f.live,
                            f.sources
                                .iter()
                                .filter(|s| s.live || !f.live)
                                .map(|s| s.name.to_string())
                                .collect(),
                        ),
                    )
                })
                .collect(),
        )
    }

    /// From a publication's `fields` array (JSON).
    pub fn from_json(v: &Value) -> Self {
        let mut out = BTreeMap::new();
        for f in v.as_array().into_iter().flatten() {
            let (Some(scope), Some(key)) = (
                f.get("scope").and_then(Value::as_str),
                f.get("key").and_then(Value::as_str),
            ) else {
                continue;
            };
            let live = f.get("live").and_then(Value::as_bool).unwrap_or(false);
            let names = f
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|s| !live || s.get("live").and_then(Value::as_bool) == Some(true))
                .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            out.insert(format!("{scope}.{key}"), (live, names));
        }
        Sources(out)
    }

    /// Whether the field was measured (None: not known).
    pub fn live(&self, scope: &str, key: &str) -> Option<bool> {
        self.0.get(&format!("{scope}.{key}")).map(|(l, _)| *l)
    }

    /// Its live sources (or, when none was live, the ones it needs).
    pub fn names(&self, scope: &str, key: &str) -> Option<&[String]> {
        self.0
            .get(&format!("{scope}.{key}"))
            .map(|(_, n)| n.as_slice())
    }
}

/// Everything the engine judges one target by.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence {
    /// Where it came from: `live`, `store`, `daemon`.
    pub source: String,
    /// The process, for a process target.
    pub pid: Option<u32>,
    /// Its command name.
    pub comm: Option<String>,
    /// The memory cgroup (the process's, or the target).
    pub cgroup: Option<String>,
    /// The systemd unit that cgroup names.
    pub unit: Option<String>,
    /// The process exited (the cgroup was removed) before the last frame.
    pub gone: bool,
    /// Points, oldest first.
    pub frames: Vec<Frame>,
    /// The cgroup's processes (and its descendants'), as last seen.
    pub members: Vec<Member>,
    /// The process's resident pages per NUMA node, as last read.
    pub numa_pages: Option<BTreeMap<u32, u64>>,
    /// Which sources fed each field.
    pub sources: Sources,
    /// The heaviest growth stacks, when a profile was available.
    pub stacks: Vec<GrowthStack>,
    /// Growth stacks were asked for and could not be had: why.
    pub stacks_missing: Option<String>,
    /// What the source could not give (said with the report's unmeasured
    /// values).
    pub notes: Vec<String>,
}

impl Evidence {
    /// True for a process target.
    pub fn is_process(&self) -> bool {
        self.pid.is_some()
    }

    /// The newest frame.
    pub fn last(&self) -> Option<&Frame> {
        self.frames.last()
    }
}

/// Why no evidence could be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotFound {
    /// No frame held the target.
    #[error("{target} was not seen in {frames} sample(s){hint}")]
    Target {
        /// The target.
        target: String,
        /// Frames searched.
        frames: usize,
        /// A hint (e.g. the cgroups that exist).
        hint: String,
    },
    /// There was nothing to read.
    #[error("no samples to explain")]
    Empty,
}

/// True when `path` is `root` or below it.
pub fn under(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.is_empty() || path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

/// Builds [`Evidence`] from publications, oldest first.
#[derive(Debug)]
pub struct Builder {
    target: Target,
    source: String,
    /// (unix_ms, start time of the process row, point set).
    frames: Vec<(u64, Option<u64>, Frame)>,
    pid_start: Option<u64>,
    comm: Option<String>,
    cgroup: Option<String>,
    unit: Option<String>,
    members: Vec<Member>,
    numa_pages: Option<BTreeMap<u32, u64>>,
    sources: Sources,
    seen: usize,
    cgroups_seen: Vec<String>,
    last_ms: u64,
}

impl Builder {
    /// Evidence about `target`, from `source` (`live`, `store`, `daemon`).
    pub fn new(target: Target, source: &str) -> Self {
        Builder {
            target,
            source: source.into(),
            frames: Vec::new(),
            pid_start: None,
            comm: None,
            cgroup: None,
            unit: None,
            members: Vec::new(),
            numa_pages: None,
            sources: Sources::default(),
            seen: 0,
            cgroups_seen: Vec::new(),
            last_ms: 0,
        }
    }

    /// The cgroup path the target names in a frame with these cgroups.
    fn target_cgroup<'a>(&self, cgroups: impl Iterator<Item = &'a CgroupView>) -> Option<String> {
        match &self.target {
            Target::Pid(_) => None,
            Target::Cgroup(path) => {
                let want = normalize(path);
                cgroups
                    .map(|c| &c.cgroup)
                    .find(|c| **c == want)
                    .cloned()
                    .or(Some(want))
            }
            Target::Unit(name) => cgroups
                .filter(|c| {
                    c.names.unit.as_deref() == Some(name.as_str())
                        || c.cgroup.rsplit('/').next() == Some(name.as_str())
                })
                // The innermost cgroup that names it.
                .max_by_key(|c| c.cgroup.len())
                .map(|c| c.cgroup.clone()),
        }
    }

    /// Adds one publication's rows: `rows` the process rows (all, or at
    /// least the target and its cgroup's), `cgroups` every cgroup.
    pub fn push<'a>(
        &mut self,
        unix_ms: u64,
        rows: impl Iterator<Item = &'a ProcessView> + Clone,
        cgroups: &[CgroupView],
        system: Option<SystemPoint>,
        sources: Option<Sources>,
    ) {
        self.seen += 1;
        if unix_ms < self.last_ms {
            // Out of order: not what a series holds.
            return;
        }
        self.last_ms = unix_ms;
        if let Some(s) = sources {
            self.sources = s;
        }
        if self.cgroups_seen.len() < 2000 {
            self.cgroups_seen = cgroups.iter().map(|c| c.cgroup.clone()).collect();
        }
        let (process, start, cgroup_path) = match self.target {
            Target::Pid(pid) => {
                let Some(row) = rows.clone().find(|r| r.pid == pid) else {
                    return;
                };
                if row.exited {
                    return;
                }
                self.comm = Some(row.comm.clone());
                self.numa_pages = row.numa_pages.clone().or(self.numa_pages.take());
                (
                    Some(ProcPoint::from_view(row)),
                    Some(row.start_time_ticks),
                    row.cgroup.clone().filter(|c| !c.is_empty()),
                )
            }
            _ => {
                let Some(path) = self.target_cgroup(cgroups.iter()) else {
                    return;
                };
                (None, None, Some(path))
            }
        };
        let cg = cgroup_path
            .as_deref()
            .and_then(|path| cgroups.iter().find(|c| c.cgroup == path));
        if process.is_none() && cg.is_none() {
            return;
        }
        if let Some(path) = &cgroup_path {
            self.members = rows
                .filter(|r| !r.exited && r.cgroup.as_deref().is_some_and(|c| under(c, path)))
                .map(|r| Member {
                    pid: r.pid,
                    comm: r.comm.clone(),
                    oom_score: r.value(crate::model::view::idx::OOM_SCORE),
                    rss: r.value(crate::model::view::idx::RSS),
                    cgroup: r.cgroup.clone(),
                })
                .collect();
        }
        if let Some(c) = cg {
            self.unit = c.names.unit.clone();
        }
        self.cgroup = cgroup_path.or(self.cgroup.take());
        if start.is_some() {
            if self.pid_start.is_some() && self.pid_start != start {
                // The pid was reused: the newer process is the target.
                self.frames.clear();
            }
            self.pid_start = start;
        }
        self.frames.push((
            unix_ms,
            start,
            Frame {
                unix_ms,
                process,
                cgroup: cg.map(CgroupPoint::from_view),
                system,
            },
        ));
    }

    /// The pids whose memory the target's judgement reads: the process,
    /// and the processes of its cgroup (as last seen).
    pub fn focus(&self) -> std::collections::HashSet<u32> {
        let mut out: std::collections::HashSet<u32> = self.members.iter().map(|m| m.pid).collect();
        if let Target::Pid(pid) = self.target {
            out.insert(pid);
        }
        out
    }

    /// Adds a live publication.
    pub fn push_published(&mut self, p: &Published) {
        self.push(
            p.unix_ms,
            p.processes.iter().map(|r| &**r),
            &p.cgroups,
            p.system.as_ref().map(SystemPoint::from_view),
            Some(Sources::from_infos(&p.fields)),
        );
    }

    /// Adds a publication in its JSON form (a recording's frame, a
    /// daemon's history frame).
    pub fn push_json(&mut self, v: &Value) {
        let unix_ms = v.get("unix_ms").and_then(Value::as_u64).unwrap_or(0);
        let cgroups: Vec<CgroupView> = v
            .get("cgroups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(CgroupView::from_json)
            .collect();
        // Only the rows that can matter are parsed: the target, and the
        // processes of its cgroup.
        let procs = v.get("processes").and_then(Value::as_array);
        let pid_of = |r: &Value| r.get("pid").and_then(Value::as_u64);
        let cgroup_path = match &self.target {
            Target::Pid(pid) => procs
                .into_iter()
                .flatten()
                .find(|r| pid_of(r) == Some(u64::from(*pid)))
                .and_then(|r| r.get("cgroup").and_then(Value::as_str))
                .map(str::to_string),
            _ => self.target_cgroup(cgroups.iter()),
        };
        let rows: Vec<ProcessView> = procs
            .into_iter()
            .flatten()
            .filter(|r| {
                matches!(self.target, Target::Pid(pid) if pid_of(r) == Some(u64::from(pid)))
                    || cgroup_path.as_deref().is_some_and(|path| {
                        r.get("cgroup")
                            .and_then(Value::as_str)
                            .is_some_and(|c| under(c, path))
                    })
            })
            .filter_map(ProcessView::from_json)
            .collect();
        let sources = v.get("fields").map(Sources::from_json);
        self.push(
            unix_ms,
            rows.iter(),
            &cgroups,
            v.get("system")
                .filter(|s| !s.is_null())
                .map(SystemPoint::from_json),
            sources,
        );
    }

    /// The evidence, or why there is none.
    pub fn finish(self) -> Result<Evidence, NotFound> {
        if self.seen == 0 {
            return Err(NotFound::Empty);
        }
        let last_ms = self.last_ms;
        let frames: Vec<Frame> = self
            .frames
            .into_iter()
            .filter(|(_, start, _)| start.is_none() || *start == self.pid_start)
            .map(|(_, _, f)| f)
            .collect();
        if frames.is_empty() {
            let hint = match &self.target {
                Target::Pid(_) => String::new(),
                _ => {
                    let mut near: Vec<&String> =
                        self.cgroups_seen.iter().filter(|c| !c.is_empty()).collect();
                    near.sort();
                    near.truncate(12);
                    if near.is_empty() {
                        " (no memory cgroups were read)".into()
                    } else {
                        format!(
                            "; memory cgroups seen: {}",
                            near.iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                }
            };
            return Err(NotFound::Target {
                target: self.target.to_string(),
                frames: self.seen,
                hint,
            });
        }
        let gone = frames.last().is_some_and(|f| f.unix_ms < last_ms);
        let pid = match self.target {
            Target::Pid(p) => Some(p),
            _ => None,
        };
        Ok(Evidence {
            source: self.source,
            pid,
            comm: self.comm,
            cgroup: self.cgroup,
            unit: self.unit,
            gone,
            frames,
            members: self.members,
            numa_pages: self.numa_pages,
            sources: self.sources,
            stacks: Vec::new(),
            stacks_missing: None,
            notes: Vec::new(),
        })
    }
}

/// A cgroup path as the model writes it: leading `/`, no trailing one
/// (also accepts a path under the v1 memory mount or /sys/fs/cgroup).
pub fn normalize(path: &str) -> String {
    let p = path.trim();
    let p = [
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .find_map(|m| {
        p.strip_prefix(m)
            .filter(|r| r.is_empty() || r.starts_with('/'))
    })
    .unwrap_or(p);
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        "/".into()
    } else if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// The catalog's per-process field at `ProcPoint` position `i`.
pub fn process_key(i: usize) -> &'static str {
    PROCESS_FIELDS[PROCESS_INDEX[i]].key
}

/// The catalog's per-cgroup key at `CgroupPoint` position `i`.
pub fn cgroup_key(i: usize) -> &'static str {
    CGROUP_FIELDS[CGROUP_INDEX[i]].key
}
