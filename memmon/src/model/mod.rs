//! The one model every sink reads: processes keyed by pid + start time (so a
//! reused pid is a new process), their cumulative counters, probe states
//! and statistics. Fed by [`crate::sample::Sample`]s; no sink reads the
//! kernel or /proc itself.

pub mod budget;
pub mod cgroup_ids;
pub mod cgroups;
pub mod explain;
pub mod fault_sampling;
pub mod fields;
pub mod forecast;
pub mod history;
pub mod oom;
pub mod oom_limit;
pub mod process;
pub mod profile;
pub mod profile_window;
pub mod published;
pub mod resident;
pub mod rollup;
pub mod system;
pub mod system_fields;
#[cfg(test)]
mod totals_tests;
pub mod view;

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Instant,
};

use memmon_common::{ExitEvent, MmState, ProcCounters, events::EXIT_HAS_TASK};

use crate::fast_hash::FastMap;
use crate::sample::{
    Host, Identity, Now, ProcMeta, Sample, alloc::AllocSample, cost::CycleCost,
    key::boottime_ns_to_ticks, memory::ProcessMemory, numa::NumaUsage, probe_status::ProbeStatus,
    stats::StatsSnapshot, system::SystemSample,
};
use crate::sources::ProcFile;
pub use oom::{OomKill, SignalKill};
pub use process::{Process, ProcessKey, TaskFaults};
pub use rollup::Totals;
pub use view::ProcessView;

/// OOM kills the model remembers (newest last).
const RECENT_OOMS: usize = 256;
/// Scans a process may be missing from /proc before it counts as exited
/// without its exit event.
const MISSING_SCANS_BEFORE_EXIT: u8 = 2;

/// A process the model holds, with its last published row.
#[derive(Debug)]
struct Tracked {
    process: Process,
    /// Its last published row, shared with every publication since (an
    /// idle process costs no copy per pass).
    view: Option<Arc<ProcessView>>,
    /// Rated counters at the previous publication (for per-second rates).
    rate_base: Option<(Instant, [Option<f64>; fields::N_RATED])>,
}

impl Tracked {
    fn new(key: ProcessKey, comm: String) -> Box<Self> {
        Box::new(Tracked {
            process: Process::new(key, comm),
            view: None,
            rate_base: None,
        })
    }
}

impl std::ops::Deref for Tracked {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Tracked {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// Processes and probe state as of the last applied sample.
#[derive(Debug, Default)]
pub struct Model {
    /// Boxed: a table slot holds a pointer, not 1.2 KB (a map sized for
    /// 10,000 processes has ~16,000 slots).
    processes: FastMap<ProcessKey, Box<Tracked>>,
    /// Live pid → its current key.
    live: FastMap<u32, ProcessKey>,
    /// Scans applied so far (a process seen in the last one carries its
    /// number in `Process::seen_scan`).
    scans: u64,
    /// /proc sources found missing so far, each with what goes unreported.
    pub missing_sources: std::collections::BTreeSet<String>,
    /// The per-process /proc files this kernel lacks.
    pub missing_files: std::collections::BTreeSet<crate::sources::ProcFile>,
    /// Probe states as loaded.
    pub probes: Vec<ProbeStatus>,
    /// Latest kernel statistics.
    pub stats: StatsSnapshot,
    /// Recent OOM kills, oldest first (at most RECENT_OOMS).
    pub recent_ooms: VecDeque<OomKill>,
    /// OOM kills seen since start.
    pub oom_kills_total: u64,
    /// Recent SIGKILLs, oldest first (at most RECENT_OOMS).
    pub recent_sigkills: VecDeque<SignalKill>,
    /// Kills since start by cause (`oom`, `sigkill`, `kernel`).
    pub kills_total: std::collections::BTreeMap<&'static str, u64>,
    /// Final counts of processes folded out of the model, per cgroup
    /// ("" when unknown): with the live processes, every cgroup's totals.
    pub exited_totals: HashMap<String, Totals>,
    /// Of those, the processes found vanished (they exited while no exit
    /// probe ran, so the kernel's per-memcg exit totals lack them).
    vanished_totals: HashMap<String, Totals>,
    /// The kernel's per-memory-cgroup totals of exited processes (pinned:
    /// they span restarts), by cgroup path; `None` while the exit probe is
    /// not attached.
    pub kernel_exits: Option<HashMap<String, memmon_common::MemcgExits>>,
    /// The cgroup totals last published: none goes below them.
    totals_floor: FastMap<String, Totals>,
    /// Each loaded program's cost this pass (empty without the kernel's
    /// run-time statistics).
    pub program_costs: Vec<budget::ProgramCost>,
    program_runs_prev: Option<(Instant, Vec<crate::sample::stats::ProgramRuns>)>,
    /// Recent samples of the largest processes (OOM flight recorder).
    pub recorder: history::FlightRecorder,
    /// The system view: latest sample, and rates from the one before.
    pub system: Option<system::SystemView>,
    /// Allocator maps (slab caches, kmalloc classes, buddy), latest.
    pub alloc: Option<AllocSample>,
    /// The same at the start of the current window.
    pub alloc_baseline: Option<AllocSample>,
    /// What the last per-process memory pass cost.
    pub memory_cost: CycleCost,
    /// Memory cgroups as read from their own files, with forecasts.
    pub cgroups: cgroups::Cgroups,
    /// The memory cgroup files can be read here (a memory controller was
    /// found).
    pub cgroupfs_live: bool,
    /// The scan reads the kernel's task iterator (not /proc/PID/stat).
    pub task_iter: bool,
    /// What the cached rows were built with (live fields, fault source).
    view_inputs: Option<(fields::LiveFields, bool)>,
    host: Option<Host>,
}

impl Model {
    /// An empty model on a host with these constants.
    pub fn new(probes: Vec<ProbeStatus>, host: Host) -> Self {
        Model {
            probes,
            host: Some(host),
            ..Default::default()
        }
    }

    fn page_size(&self) -> u64 {
        self.host.map_or(4096, |h| h.page_size)
    }

    /// True when the collector must read `tgid`'s identity for the next
    /// sample: the model holds no live process for it, or its counters went
    /// back (the pid was reused and the old exit was missed).
    pub fn needs_identity(&self, tgid: u32, counters: &ProcCounters) -> bool {
        match self.live.get(&tgid).and_then(|k| self.processes.get(k)) {
            Some(p) => !counters.dominates(&p.counters),
            None => true,
        }
    }

    /// The process each of `pids` names: the live one, else the latest one
    /// that exited and is still held (a killed process's exit event usually
    /// arrives in the same sample as the kill). One pass over the model,
    /// however many kills.
    fn last_known(&self, pids: impl IntoIterator<Item = u32>) -> HashMap<u32, ProcessKey> {
        let mut out: HashMap<u32, ProcessKey> = HashMap::new();
        let mut dead = crate::fast_hash::FastSet::default();
        for pid in pids {
            match self.live.get(&pid) {
                Some(k) => {
                    out.insert(pid, *k);
                }
                None => {
                    dead.insert(pid);
                }
            }
        }
        if !dead.is_empty() {
            for p in self.processes.values() {
                if p.exited
                    && dead.contains(&p.key.pid)
                    && out
                        .get(&p.key.pid)
                        .is_none_or(|k| k.start_time_ticks < p.key.start_time_ticks)
                {
                    out.insert(p.key.pid, p.key);
                }
            }
        }
        out
    }

    /// True when the model holds a live process with this pid.
    pub fn is_live(&self, pid: u32) -> bool {
        self.live.contains_key(&pid)
    }

    /// Live processes that moved to another memory cgroup take it (and the
    /// names its path carries) from now on: their rollups and the cgroups
    /// read follow them. A process's counts so far go with it, as the
    /// kernel's exit totals charge a process's whole life to the cgroup it
    /// exits in; the cgroup it left keeps what it published (its counters
    /// never go back).
    pub fn apply_moves(&mut self, moved: HashMap<u32, ProcMeta>) {
        for (pid, meta) in moved {
            let Some(p) = self.live.get(&pid).and_then(|k| self.processes.get_mut(k)) else {
                continue;
            };
            if p.exited || meta.cgroup.is_none() || meta.cgroup == p.cgroup {
                continue;
            }
            tracing::debug!(
                pid,
                from = p.cgroup.as_deref().unwrap_or("?"),
                to = meta.cgroup.as_deref().unwrap_or("?"),
                "moved to another memory cgroup"
            );
            p.set_meta(meta);
        }
    }

    /// Probe states changed (a probe suspended or attached again).
    pub fn set_probes(&mut self, probes: Vec<ProbeStatus>) {
        self.probes = probes;
    }

    /// True when a scanned pid is new to the model (its placement must be
    /// read).
    pub fn knows_pid(&self, pid: u32, start_time_ticks: u64) -> bool {
        self.live
            .get(&pid)
            .is_some_and(|k| k.start_time_ticks == start_time_ticks)
    }

    /// Folds one pass's sample in, taken at `now`: the kernel's part
    /// ([`Model::apply_kernel`]), the process scan, the memory cgroups,
    /// then the per-process memory and the system view, as far as the
    /// sample holds them.
    pub fn apply(&mut self, mut sample: Sample, now: Now) {
        let scan = sample.scan.take();
        let cgroups = sample.cgroups.take();
        let memory = sample.memory.take();
        self.apply_kernel(sample, now.instant);
        if let Some(scan) = scan {
            self.task_iter = scan.task_iter;
            self.apply_scan(scan.identities, scan.metas);
        }
        if let Some(c) = cgroups {
            self.cgroupfs_live = c.live;
            self.missing_sources.extend(c.missing);
            if c.live {
                self.apply_cgroups(c.readings, &c.gone, now.instant);
            }
        }
        if let Some(m) = memory {
            for (key, memory, numa) in m.processes {
                self.apply_memory(key, memory, numa);
            }
            self.apply_moves(m.moved);
            self.memory_cost = m.cost;
            match m.smaps_rollup {
                Some(true) => {
                    self.missing_files.remove(&ProcFile::SmapsRollup);
                }
                Some(false) => {
                    self.missing_files.insert(ProcFile::SmapsRollup);
                }
                None => {}
            }
            self.missing_sources.extend(m.missing);
            self.apply_system(m.system, now.instant);
        }
    }

    /// Folds the kernel's part of a sample in: live counters (with the
    /// identities the collector read for pids the model did not know),
    /// exit events, vanished entries, OOM kills, statistics.
    fn apply_kernel(&mut self, mut sample: Sample, now: Instant) {
        for (tgid, counters) in sample.live {
            let info = sample.infos.remove(&tgid);
            self.apply_live(tgid, counters, info);
        }
        for mm in sample.rss {
            if let Some(key) = self.live.get(&mm.tgid)
                && let Some(p) = self.processes.get_mut(key)
                && p.rss != Some(mm)
            {
                p.rss = Some(mm);
                p.dirty = true;
            }
        }
        self.apply_moves(std::mem::take(&mut sample.moved));
        for exit in &sample.exits {
            self.apply_exit(exit, &sample.exit_cgroups);
        }
        for (tgid, counters) in sample.vanished {
            self.apply_vanished(tgid, counters);
        }
        let known = self.last_known(
            sample
                .ooms
                .iter()
                .map(|r| r.event.victim_pid)
                .chain(sample.kill_signals.iter().map(|r| r.signal.target_pid)),
        );
        let mut oom_victims = Vec::new();
        for record in sample.ooms {
            self.oom_kills_total += 1;
            *self.kills_total.entry("oom").or_default() += 1;
            if self.recent_ooms.len() == RECENT_OOMS {
                self.recent_ooms.pop_front();
            }
            let mut kill = OomKill::from_record(record, self.page_size());
            // A dead victim's /proc no longer names its cgroup: the last
            // scan does.
            if kill.cgroup.is_none() {
                kill.cgroup = known
                    .get(&kill.pid)
                    .and_then(|k| self.processes.get(k))
                    .and_then(|p| p.cgroup.clone());
            }
            self.explain_oom(&mut kill);
            kill.history = self.recorder.history_of(kill.pid);
            oom_victims.push(kill.pid);
            self.recent_ooms.push_back(kill);
        }
        for r in sample.kill_signals {
            // The OOM killer's own SIGKILL is the OOM kill above.
            if oom::is_oom_killers_sigkill(r.signal.code, r.signal.target_pid, |pid| {
                oom_victims.contains(&pid) || self.recent_ooms.iter().any(|k| k.pid == pid)
            }) {
                continue;
            }
            let cause = oom::sigkill_cause(r.signal.code);
            *self.kills_total.entry(cause).or_default() += 1;
            let target = known
                .get(&r.signal.target_pid)
                .and_then(|k| self.processes.get(k));
            let mem = target.and_then(|p| p.memory.as_ref());
            let target_cgroup = r
                .target_cgroup
                .clone()
                .or_else(|| target.and_then(|p| p.cgroup.clone()));
            let mut kill = SignalKill::from_record(r, cause, target.and_then(|p| p.rss_bytes));
            kill.target_cgroup = target_cgroup;
            kill.target_swap_bytes = mem.and_then(|m| m.swap);
            kill.target_oom_score = mem.and_then(|m| m.oom_score);
            kill.history = self.recorder.history_of(kill.target_pid);
            if self.recent_sigkills.len() == RECENT_OOMS {
                self.recent_sigkills.pop_front();
            }
            self.recent_sigkills.push_back(kill);
        }
        if let Some(stats) = sample.stats {
            self.stats = stats;
        }
        if let Some(exits) = sample.memcg_exits {
            self.kernel_exits = Some(exits.into_iter().collect());
        }
        self.missing_sources.extend(sample.missing);
        if let Some(runs) = sample.program_runs {
            let (prev, dt) = match &self.program_runs_prev {
                Some((at, prev)) => (prev.as_slice(), Some(now.duration_since(*at))),
                None => (&[][..], None),
            };
            self.program_costs = budget::costs(prev, &runs, dt);
            self.program_runs_prev = Some((now, runs));
        }
        if sample.alloc.is_some() {
            self.alloc = sample.alloc;
        }
    }

    /// Allocator activity in the current window (since start_window).
    pub fn alloc_window(&self) -> Option<AllocSample> {
        let now = self.alloc.as_ref()?;
        Some(match &self.alloc_baseline {
            Some(base) => now.since(base),
            None => now.clone(),
        })
    }

    /// True when fault counts come from the per-fault probes; otherwise
    /// from the kernel's per-task counters (/proc/PID/stat, exit events).
    pub fn fault_probes(&self) -> bool {
        self.probes.iter().any(|p| {
            p.name == memmon_common::names::probe::PAGE_FAULT_USER.name() && p.is_attached()
        })
    }

    /// Folds a /proc scan in: every live process's identity, resident and
    /// virtual size, and the kernel's fault totals; `metas` holds the
    /// placement of the pids new to the model ([`Model::knows_pid`]). Live
    /// processes missing from the scan have exited (their exit event, if
    /// any, brings the final counts).
    pub fn apply_scan(&mut self, scan: Vec<Identity>, mut metas: HashMap<u32, ProcMeta>) {
        let page = self.page_size();
        self.scans += 1;
        let this_scan = self.scans;
        for id in scan {
            let key = ProcessKey {
                pid: id.pid,
                start_time_ticks: id.start_time_ticks,
            };
            // A repeated reading never brings back a process the model no
            // longer holds as live.
            if !id.fresh && self.processes.get(&key).is_none_or(|p| p.exited) {
                continue;
            }
            if let Some(old) = self.live.get(&id.pid)
                && *old != key
                && let Some(p) = self.processes.get_mut(old)
            {
                // The pid was reused and the old exit was missed.
                p.exited = true;
                p.dirty = true;
            }
            self.live.insert(id.pid, key);
            let meta = metas.remove(&id.pid);
            let p = self.processes.entry(key).or_insert_with(|| {
                let mut p = Tracked::new(key, id.comm.clone());
                p.set_meta(meta.unwrap_or_default());
                p
            });
            if id.fresh {
                let task = Some(TaskFaults {
                    minor: id.minflt,
                    major: id.majflt,
                });
                let (rss, vm) = (Some(id.rss_pages * page), Some(id.vsize_bytes));
                let members = id.rss_members.map(|m| MmState {
                    tgid: id.pid,
                    _pad: 0,
                    bytes: m.map(|pages| (pages * page) as i64),
                });
                if p.task != task
                    || p.rss_bytes != rss
                    || p.vm_bytes != vm
                    || p.ppid != Some(id.ppid)
                    || (!id.comm.is_empty() && p.comm != id.comm)
                    || (members.is_some() && p.rss != members)
                {
                    p.dirty = true;
                }
                if members.is_some() {
                    p.rss = members;
                }
                p.task = task;
                if !id.comm.is_empty() {
                    p.comm = id.comm;
                }
                p.ppid = Some(id.ppid);
                p.rss_bytes = rss;
                p.vm_bytes = vm;
            }
            if p.exited {
                p.exited = false;
                p.dirty = true;
            }
            p.missing_scans = 0;
            p.seen_scan = this_scan;
        }
        // Missing from /proc: exiting. Its exit event normally arrives in
        // the next pass with the final counts; after two scans without one,
        // take the last counts as final.
        self.live.retain(|_, key| {
            let Some(p) = self.processes.get_mut(key) else {
                return false;
            };
            if p.seen_scan == this_scan {
                return true;
            }
            p.missing_scans = p.missing_scans.saturating_add(1);
            if p.missing_scans >= MISSING_SCANS_BEFORE_EXIT {
                p.exited = true;
                p.dirty = true;
                return false;
            }
            true
        });
    }

    /// The live processes once `sample` is applied, with their resident
    /// size and a fingerprint of their activity, for the memory cost
    /// guard: each process its scan lists (a repeated reading only of one
    /// the model holds live and that did not exit in `sample`), those
    /// without an address space (kernel threads, zombies) left out.
    pub fn memory_candidates(&self, sample: &Sample) -> Vec<crate::sample::cost::Candidate> {
        let Some(scan) = &sample.scan else {
            return Vec::new();
        };
        let page = self.page_size();
        let exited: crate::fast_hash::FastSet<u32> = sample.exits.iter().map(|e| e.tgid).collect();
        scan.identities
            .iter()
            .filter(|id| id.vsize_bytes != 0)
            .map(|id| {
                let key = ProcessKey {
                    pid: id.pid,
                    start_time_ticks: id.start_time_ticks,
                };
                (id, key)
            })
            .filter(|(id, key)| {
                id.fresh
                    || (!exited.contains(&id.pid)
                        && self.processes.get(key).is_some_and(|p| !p.exited))
            })
            .map(|(id, key)| crate::sample::cost::Candidate {
                key,
                rss: id.rss_pages * page,
                activity: Some(
                    id.minflt ^ id.majflt.rotate_left(21) ^ id.vsize_bytes.rotate_left(42),
                ),
            })
            .collect()
    }

    /// The `oom` count of `path`'s memory.events as last read (0 when
    /// never read).
    pub fn cgroup_oom_count(&self, path: &str) -> u64 {
        self.cgroups
            .get(path)
            .and_then(|c| c.sample.events.as_ref())
            .and_then(|e| e.oom)
            .unwrap_or(0)
    }

    /// Stores a process's memory and NUMA readings.
    pub fn apply_memory(
        &mut self,
        key: ProcessKey,
        memory: ProcessMemory,
        numa: Option<NumaUsage>,
    ) {
        if let Some(p) = self.processes.get_mut(&key) {
            if p.memory.as_ref() != Some(&memory) || (numa.is_some() && p.numa != numa) {
                p.dirty = true;
            }
            p.memory = Some(memory);
            if numa.is_some() {
                p.numa = numa;
            }
        }
    }

    /// Folds a cgroup scan in (readings of the cgroups holding processes
    /// and their ancestors, with their names; paths found removed). A
    /// cgroup gone for [`cgroups::GONE_KEPT`] is released: it leaves the
    /// model with what its exited processes left (its series end, and
    /// `max_cgroups` has room for a new cgroup).
    pub fn apply_cgroups(
        &mut self,
        samples: Vec<(
            crate::sample::cgroup::CgroupSample,
            crate::sample::cgroup::CgroupNames,
        )>,
        gone: &[String],
        now: Instant,
    ) {
        for path in self.cgroups.apply(samples, gone, now) {
            self.exited_totals.remove(&path);
            self.vanished_totals.remove(&path);
            self.totals_floor.remove(&path);
            if let Some(k) = self.kernel_exits.as_mut() {
                k.remove(&path);
            }
        }
    }

    /// Adds to an OOM kill what the model knew before it: the runner-up
    /// candidates by oom_score in the scope of the limit that was hit (the
    /// memcg for a memcg OOM, else the machine).
    fn explain_oom(&self, kill: &mut OomKill) {
        let scope = match kill.constraint {
            // The killer's memcg lies inside the one whose limit was hit.
            Some("memcg") => kill
                .constraint_cgroup
                .clone()
                .or_else(|| kill.killer_memcg.clone()),
            _ => None,
        };
        let prefix = scope.as_deref().map(|s| s.trim_end_matches('/'));
        let mut candidates: Vec<oom::OomCandidate> = self
            .processes
            .values()
            .filter(|p| !p.exited && p.key.pid != kill.pid)
            .filter(|p| {
                prefix.is_none_or(|pre| {
                    p.cgroup
                        .as_deref()
                        .is_some_and(|c| c == pre || c.starts_with(&format!("{pre}/")))
                })
            })
            .filter_map(|p| {
                Some(oom::OomCandidate {
                    pid: p.key.pid,
                    comm: p.comm.clone(),
                    oom_score: p.memory.as_ref()?.oom_score?,
                })
            })
            .collect();
        candidates.sort_by(|a, b| b.oom_score.cmp(&a.oom_score).then(a.pid.cmp(&b.pid)));
        candidates.truncate(3);
        kill.runner_ups = candidates;
    }

    /// Per cgroup, the live process with the highest oom_score.
    pub fn oom_candidates(&self) -> FastMap<String, oom::OomCandidate> {
        let mut out: FastMap<String, oom::OomCandidate> = FastMap::default();
        for p in self.processes.values().filter(|p| !p.exited) {
            let (Some(cg), Some(score)) = (
                p.cgroup.as_ref(),
                p.memory.as_ref().and_then(|m| m.oom_score),
            ) else {
                continue;
            };
            let better = out.get(cg).is_none_or(|c| score > c.oom_score);
            if better {
                out.insert(
                    cg.clone(),
                    oom::OomCandidate {
                        pid: p.key.pid,
                        comm: p.comm.clone(),
                        oom_score: score,
                    },
                );
            }
        }
        out
    }

    /// Memory cgroups to read: those of the live processes, those read
    /// before that still exist (an emptied cgroup's final events, such as
    /// the OOM kill that emptied it, still count), and those only exited
    /// processes name (so a removed one is found gone, and released).
    pub fn cgroups_in_use(&self) -> crate::fast_hash::FastSet<&str> {
        let gone = |path: &str| self.cgroups.get(path).is_some_and(|c| c.gone);
        self.processes
            .values()
            .filter(|p| !p.exited)
            .filter_map(|p| p.cgroup.as_deref())
            .chain(
                self.cgroups
                    .iter()
                    .filter(|(_, c)| !c.gone)
                    .map(|(path, _)| path.as_str()),
            )
            .chain(
                self.exited_totals
                    .keys()
                    .chain(self.kernel_exits.iter().flat_map(|k| k.keys()))
                    .map(String::as_str)
                    .filter(|path| path.starts_with('/') && !gone(path)),
            )
            .collect()
    }

    /// Folds a system sample in, computing rates from the previous one.
    pub fn apply_system(&mut self, sample: SystemSample, now: Instant) {
        self.system = Some(system::SystemView::next(self.system.take(), sample, now));
    }

    /// Records the `n` largest live processes (by resident size) in the
    /// flight recorder and expires old samples. Reads each one's current
    /// row (call after [`Model::views`]; a process without one is read
    /// afresh).
    pub fn record_history(&mut self, n: usize, unix_ms: u64) {
        if !self.recorder.enabled() {
            return;
        }
        let fault_probes = self.fault_probes();
        let sources = fields::LiveFields::new(&self.live());
        let mut live: Vec<&Tracked> = self
            .processes
            .values()
            .map(|p| &**p)
            .filter(|p| !p.exited)
            .collect();
        let by_rss = |p: &&Tracked| std::cmp::Reverse(p.rss_bytes.unwrap_or(0));
        if n > 0 && n < live.len() {
            live.select_nth_unstable_by_key(n - 1, by_rss);
            live.truncate(n);
        }
        for p in live {
            let built;
            let v = match &p.view {
                Some(v) if !p.dirty => v.as_ref(),
                _ => {
                    built = ProcessView::from_process(p, fault_probes, &sources);
                    &built
                }
            };
            self.recorder.record(
                p.key,
                history::HistorySample {
                    unix_ms,
                    rss_bytes: v.whole(view::idx::RSS),
                    minor_faults: v.whole(view::idx::MINOR),
                    major_faults: v.whole(view::idx::MAJOR),
                    swap_out_pages: v.whole(view::idx::SWAP_OUT),
                    swap_bytes: v.whole(view::idx::SWAP),
                },
            );
        }
        self.recorder.expire(unix_ms);
    }

    /// Gives back the room a burst of processes left (after a pid storm the
    /// maps keep their peak capacity); true when something shrank.
    pub fn shrink(&mut self) -> bool {
        let roomy = |len: usize, cap: usize| cap > 2 * len + 1024;
        let shrink = roomy(self.processes.len(), self.processes.capacity())
            || roomy(self.live.len(), self.live.capacity());
        if shrink {
            self.processes.shrink_to_fit();
            self.live.shrink_to_fit();
        }
        shrink
    }

    /// Moves exited processes out of the model into the per-cgroup totals
    /// (the daemon does this each cycle so memory stays bounded by the live
    /// processes).
    pub fn fold_exited(&mut self) {
        let fault_probes = self.fault_probes();
        let exited: Vec<ProcessKey> = self
            .processes
            .iter()
            .filter(|(_, p)| p.exited)
            .map(|(k, _)| *k)
            .collect();
        for key in exited {
            if let Some(p) = self.processes.remove(&key) {
                let cg = p.cgroup.clone().unwrap_or_default();
                if p.vanished {
                    self.vanished_totals
                        .entry(cg.clone())
                        .or_default()
                        .add_exited(&p, fault_probes);
                }
                self.exited_totals
                    .entry(cg)
                    .or_default()
                    .add_exited(&p, fault_probes);
            }
        }
    }

    /// A process gone without an exit event: keep its last counters as
    /// its final ones (identity known only if it was seen alive).
    fn apply_vanished(&mut self, tgid: u32, counters: ProcCounters) {
        let key = self.live.remove(&tgid).unwrap_or(ProcessKey {
            pid: tgid,
            start_time_ticks: 0,
        });
        let p = self
            .processes
            .entry(key)
            .or_insert_with(|| Tracked::new(key, String::new()));
        p.counters = counters;
        p.exited = true;
        p.vanished = true;
        p.dirty = true;
    }

    fn apply_live(
        &mut self,
        tgid: u32,
        counters: ProcCounters,
        info: Option<(Identity, ProcMeta)>,
    ) {
        if let Some(key) = self.live.get(&tgid)
            && let Some(p) = self.processes.get_mut(key)
        {
            // Counters only grow for one process; a drop means the pid was
            // reused and the old exit event was lost.
            if counters.dominates(&p.counters) {
                if counters != p.counters {
                    p.counters = counters;
                    p.dirty = true;
                }
                return;
            }
            p.exited = true;
            p.dirty = true;
            self.live.remove(&tgid);
        }
        // No identity: it exited between the map read and the collector's
        // read of /proc (its exit event follows).
        let Some((id, meta)) = info else {
            return;
        };
        let page = self.page_size();
        let key = ProcessKey {
            pid: tgid,
            start_time_ticks: id.start_time_ticks,
        };
        let p = self
            .processes
            .entry(key)
            .or_insert_with(|| Tracked::new(key, id.comm.clone()));
        p.ppid = Some(id.ppid);
        p.counters = counters;
        p.exited = false;
        p.dirty = true;
        if p.cgroup.is_none() {
            p.set_meta(meta);
        }
        p.rss_bytes = Some(id.rss_pages * page);
        p.vm_bytes = Some(id.vsize_bytes);
        if p.task.is_none() {
            p.task = Some(TaskFaults {
                minor: id.minflt,
                major: id.majflt,
            });
        }
        self.live.insert(tgid, key);
    }

    fn apply_exit(&mut self, exit: &ExitEvent, cgroups: &HashMap<u64, ProcMeta>) {
        let tgid = exit.tgid;
        let has_task = exit.flags & EXIT_HAS_TASK != 0;
        let key = match self.live.remove(&tgid) {
            Some(key) => key,
            None => ProcessKey {
                pid: tgid,
                start_time_ticks: if has_task {
                    boottime_ns_to_ticks(
                        exit.start_boottime_ns,
                        self.host.map_or(100, |h| h.ticks_per_second),
                    )
                } else {
                    0
                },
            },
        };
        let comm = comm_string(&exit.comm);
        let p = self
            .processes
            .entry(key)
            .or_insert_with(|| Tracked::new(key, comm.clone()));
        p.record_exit(exit);
        // Born and gone between two scans: its cgroup from the exit event.
        if p.cgroup.is_none()
            && let Some(id) = p.exit_cgroup_id
            && let Some(meta) = cgroups.get(&id)
        {
            p.set_meta(meta.clone());
        }
    }

    /// Marks the start of a counting window: processes that already exited
    /// are dropped, and every live one's current counters become its
    /// baseline. Processes found vanished stay, with a zero baseline: their
    /// final counts were never reported.
    pub fn start_window(&mut self, now: Instant) {
        self.alloc_baseline = self.alloc.clone();
        self.processes.retain(|_, p| !p.exited || p.vanished);
        for p in self.processes.values_mut() {
            p.dirty = true;
            // Rates over the window start from its zero.
            p.rate_base = Some((now, [Some(0.0); fields::N_RATED]));
            p.baseline = (!p.vanished).then(|| Box::new(p.counters));
            p.task_baseline = if p.vanished {
                Default::default()
            } else {
                p.task.unwrap_or_default()
            };
        }
    }

    /// Every process the model holds, live or exited.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.values().map(|p| &p.process)
    }

    /// Which sources are live: attached probes, and the /proc files this
    /// kernel has (numa_maps only where there are two or more nodes).
    pub fn live(&self) -> crate::sources::Live {
        let mut missing_files = self.missing_files.clone();
        if self
            .system
            .as_ref()
            .is_none_or(|s| s.sample.nodes.len() < 2)
        {
            missing_files.insert(crate::sources::ProcFile::NumaMaps);
        }
        if !self.cgroupfs_live {
            missing_files.insert(crate::sources::ProcFile::CgroupMemory);
        }
        if self.task_iter {
            // Not read: the iterator gives the same values.
            missing_files.insert(crate::sources::ProcFile::Stat);
        }
        crate::sources::Live {
            probes: self
                .probes
                .iter()
                .filter(|p| p.is_attached())
                .map(|p| p.name.clone())
                .collect(),
            missing_files,
            task_iter: self.task_iter,
        }
    }

    /// Views of the processes `which` selects, with each rated counter's
    /// per-second rate since the previous call (the base for the next one
    /// is taken now). A process unchanged since its last row, whose rates
    /// were already 0, shares that row (nothing is built or copied).
    pub fn views(&mut self, which: Which, now: Instant) -> Vec<Arc<ProcessView>> {
        let fault_probes = self.fault_probes();
        let live = fields::LiveFields::new(&self.live());
        // What every row reads changed (a probe attached or suspended, a
        // file found missing): every row is built again.
        let inputs = (live.clone(), fault_probes);
        let rebuild_all = self.view_inputs.as_ref() != Some(&inputs);
        self.view_inputs = Some(inputs);
        let mut out = Vec::with_capacity(self.live.len());
        for p in self.processes.values_mut() {
            let keep = match which {
                Which::Live => !p.exited,
                Which::Window => p.exited || !p.window().is_zero(),
                Which::All => true,
            };
            if !keep {
                continue;
            }
            if !rebuild_all
                && !p.dirty
                && let Some(v) = &p.view
                && view::rates_settled(v)
                && let Some((at, _)) = &mut p.rate_base
            {
                *at = now;
                out.push(Arc::clone(v));
                continue;
            }
            let mut v = ProcessView::from_process(p, fault_probes, &live);
            let now_values = fields::RATED.map(|i| v.value(i));
            if let Some((at, base)) = &p.rate_base {
                let dt = now.saturating_duration_since(*at).as_secs_f64();
                for k in 0..fields::N_RATED {
                    v.rates.set(
                        k,
                        match (now_values[k], base[k]) {
                            (Some(a), Some(b)) if dt > 0.0 && a >= b => Some((a - b) / dt),
                            _ => None,
                        },
                    );
                }
            }
            p.rate_base = Some((now, now_values));
            let v = Arc::new(v);
            p.view = Some(Arc::clone(&v));
            p.dirty = false;
            out.push(v);
        }
        out
    }

    /// Totals per cgroup: the exited processes (from the kernel's pinned
    /// per-memcg totals when the exit probe runs, so they span restarts;
    /// else as this model folded them) plus the live ones. No count goes
    /// below what the previous call returned: the kernel's maps are read
    /// one after the other, and a process exiting between two reads would
    /// otherwise be missing from both for one pass.
    pub fn cgroup_totals(&mut self) -> FastMap<String, Totals> {
        let fault_probes = self.fault_probes();
        let mut out = match &self.kernel_exits {
            Some(kernel) => {
                let mut out: FastMap<String, Totals> = kernel
                    .iter()
                    .map(|(path, e)| (path.clone(), Totals::from_kernel_exits(e, fault_probes)))
                    .collect();
                for (path, v) in &self.vanished_totals {
                    let t = out.entry(path.clone()).or_default();
                    t.add_totals(v);
                }
                out
            }
            None => self
                .exited_totals
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let kernel = self.kernel_exits.is_some();
        for p in self.processes.values() {
            if p.exited && kernel && !p.vanished {
                // In the kernel's exit totals already.
                continue;
            }
            let cg = p.cgroup.as_deref().unwrap_or_default();
            // Looked up by &str: no String is made per process per pass.
            let t = match out.get_mut(cg) {
                Some(t) => t,
                None => out.entry(cg.to_string()).or_default(),
            };
            if p.exited {
                t.add_exited(p, fault_probes);
            } else {
                t.add_live(p, fault_probes);
            }
        }
        for (path, t) in out.iter_mut() {
            if let Some(floor) = self.totals_floor.get(path) {
                t.at_least(floor);
            }
        }
        // A cgroup whose counts left it (its processes moved away, or it
        // was removed and the kernel's exit entry went with it) keeps what
        // it published while the model still holds the cgroup (until it
        // is released, some minutes after its removal).
        for (path, floor) in &self.totals_floor {
            if !out.contains_key(path) && self.cgroups.get(path).is_some() {
                out.insert(
                    path.clone(),
                    Totals {
                        live_processes: 0,
                        rss_bytes: 0,
                        ..floor.clone()
                    },
                );
            }
        }
        self.totals_floor = out.clone();
        out
    }
}

/// Which processes [`Model::views`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Every live process.
    Live,
    /// Those with activity since the window started, and those that
    /// exited in it.
    Window,
    /// Every process the model holds.
    All,
}

pub use crate::sample::comm_string;
