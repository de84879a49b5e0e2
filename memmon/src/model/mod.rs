//! The one model every sink reads: processes keyed by pid + start time (so a
//! reused pid is a new process), their cumulative counters, probe states
//! and statistics. Fed by [`crate::collector::Sample`]s; no sink reads the
//! kernel or /proc itself.

pub mod forecast;
pub mod history;
pub mod oom;
pub mod process;
pub mod rollup;
pub mod system;
pub mod view;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Instant,
};

use memmon_common::{ExitEvent, ProcCounters, events::EXIT_HAS_TASK};

use crate::{
    collector::Sample,
    probes::{ProbeStatus, StatsSnapshot},
    procfs::{
        ProcRoot, ReadFailure,
        identity::{self, boottime_ns_to_ticks},
    },
};
pub use oom::OomKill;
pub use process::{Process, ProcessKey, TaskFaults};
pub use rollup::Totals;
pub use view::ProcessView;

/// OOM kills the model remembers (newest last).
const RECENT_OOMS: usize = 256;
/// Scans a process may be missing from /proc before it counts as exited
/// without its exit event.
const MISSING_SCANS_BEFORE_EXIT: u8 = 2;

/// Processes and probe state as of the last applied sample.
#[derive(Debug, Default)]
pub struct Model {
    processes: HashMap<ProcessKey, Process>,
    /// Live pid → its current key.
    live: HashMap<u32, ProcessKey>,
    /// Memory cgroup ids of exit events → paths.
    cgroup_ids: crate::procfs::cgroup::CgroupIds,
    /// /proc sources found missing so far, each with what goes unreported.
    pub missing_sources: std::collections::BTreeSet<String>,
    /// Probe states as loaded.
    pub probes: Vec<ProbeStatus>,
    /// Latest kernel statistics.
    pub stats: StatsSnapshot,
    /// Recent OOM kills, oldest first (at most RECENT_OOMS).
    pub recent_ooms: VecDeque<OomKill>,
    /// OOM kills seen since start.
    pub oom_kills_total: u64,
    /// Final counts of processes folded out of the model, per cgroup
    /// ("" when unknown): with the live processes, every cgroup's totals.
    pub exited_totals: HashMap<String, Totals>,
    /// Recent samples of the largest processes (OOM flight recorder).
    pub recorder: history::FlightRecorder,
    /// The system view: latest sample, and rates from the one before.
    pub system: Option<system::SystemView>,
    /// Allocator maps (slab caches, kmalloc classes, buddy), latest.
    pub alloc: Option<crate::probes::alloc_reader::AllocSample>,
    /// The same at the start of the current window.
    pub alloc_baseline: Option<crate::probes::alloc_reader::AllocSample>,
    /// What the last per-process memory pass cost.
    pub memory_cost: crate::procfs::cost_guard::CycleCost,
    ticks_per_second: u64,
}

impl Model {
    /// An empty model.
    pub fn new(probes: Vec<ProbeStatus>) -> Self {
        Model {
            probes,
            ticks_per_second: identity::ticks_per_second(),
            cgroup_ids: crate::procfs::cgroup::CgroupIds::new(Some(
                crate::procfs::cgroup::memory_hierarchy(),
            )),
            ..Default::default()
        }
    }

    /// Folds one sample in: live counters (identity read from `root` the
    /// first time a pid is seen) and exit events.
    pub fn apply(&mut self, sample: Sample, root: &ProcRoot) {
        for (tgid, counters) in sample.live {
            self.apply_live(tgid, counters, root);
        }
        for mm in sample.rss {
            if let Some(key) = self.live.get(&mm.tgid)
                && let Some(p) = self.processes.get_mut(key)
            {
                p.rss = Some(mm);
            }
        }
        for exit in &sample.exits {
            self.apply_exit(exit);
        }
        for (tgid, counters) in sample.vanished {
            self.apply_vanished(tgid, counters);
        }
        for event in &sample.oom_events {
            self.oom_kills_total += 1;
            if self.recent_ooms.len() == RECENT_OOMS {
                self.recent_ooms.pop_front();
            }
            let mut kill = OomKill::from_event(event, root);
            kill.history = self.recorder.history_of(kill.pid);
            self.recent_ooms.push_back(kill);
        }
        if let Some(stats) = sample.stats {
            self.stats = stats;
        }
        if sample.alloc.is_some() {
            self.alloc = sample.alloc;
        }
    }

    /// Allocator activity in the current window (since start_window).
    pub fn alloc_window(&self) -> Option<crate::probes::alloc_reader::AllocSample> {
        let now = self.alloc.as_ref()?;
        Some(match &self.alloc_baseline {
            Some(base) => now.since(base),
            None => now.clone(),
        })
    }

    /// True when fault counts come from the per-fault probes; otherwise
    /// from the kernel's per-task counters (/proc/PID/stat, exit events).
    pub fn fault_probes(&self) -> bool {
        self.probes
            .iter()
            .any(|p| p.name == "page_fault_user" && p.is_attached())
    }

    /// Folds a /proc scan in: every live process's identity, resident and
    /// virtual size, and the kernel's fault totals; new processes get their
    /// cgroup read once. Live processes missing from the scan have exited
    /// (their exit event, if any, brings the final counts).
    pub fn apply_scan(&mut self, scan: Vec<identity::Identity>, root: &ProcRoot) {
        let now = Instant::now();
        let page = identity::page_size();
        let mut seen = HashSet::with_capacity(scan.len());
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
            seen.insert(id.pid);
            if let Some(old) = self.live.get(&id.pid)
                && *old != key
                && let Some(p) = self.processes.get_mut(old)
            {
                // The pid was reused and the old exit was missed.
                p.exited = true;
            }
            self.live.insert(id.pid, key);
            let p = self.processes.entry(key).or_insert_with(|| {
                let mut p = Process::new(key, id.comm.clone());
                p.cgroup = crate::procfs::cgroup::memory_cgroup(root, id.pid).ok();
                p.uid = owner_uid(root, id.pid);
                p
            });
            if id.fresh {
                let task = TaskFaults {
                    minor: id.minflt,
                    major: id.majflt,
                };
                p.fault_rate = match (p.task, p.task_read_at) {
                    (Some(prev), Some(at)) if now > at => {
                        let d = task.since(prev);
                        (d.minor + d.major) as f64 / now.duration_since(at).as_secs_f64()
                    }
                    _ => 0.0,
                };
                p.task = Some(task);
                p.task_read_at = Some(now);
                p.comm = id.comm;
                p.ppid = Some(id.ppid);
                p.rss_bytes = Some(id.rss_pages * page);
                p.vm_bytes = Some(id.vsize_bytes);
            }
            p.exited = false;
            p.missing_scans = 0;
        }
        // Missing from /proc: exiting. Its exit event normally arrives in
        // the next pass with the final counts; after two scans without one,
        // take the last counts as final.
        self.live.retain(|pid, key| {
            if seen.contains(pid) {
                return true;
            }
            let Some(p) = self.processes.get_mut(key) else {
                return false;
            };
            p.missing_scans = p.missing_scans.saturating_add(1);
            if p.missing_scans >= MISSING_SCANS_BEFORE_EXIT {
                p.exited = true;
                return false;
            }
            true
        });
    }

    /// Live processes and their resident size, for the memory cost guard.
    pub fn memory_candidates(&self) -> Vec<(ProcessKey, u64)> {
        self.processes
            .values()
            .filter(|p| !p.exited && p.vm_bytes != Some(0))
            .map(|p| (p.key, p.rss_bytes.unwrap_or(0)))
            .collect()
    }

    /// Stores a process's memory and NUMA readings.
    pub fn apply_memory(
        &mut self,
        key: ProcessKey,
        memory: crate::procfs::memory::ProcessMemory,
        numa: Option<crate::procfs::numa::NumaUsage>,
    ) {
        if let Some(p) = self.processes.get_mut(&key) {
            p.memory = Some(memory);
            if numa.is_some() {
                p.numa = numa;
            }
        }
    }

    /// Folds a system sample in, computing rates from the previous one.
    pub fn apply_system(&mut self, sample: crate::procfs::system::SystemSample) {
        self.system = Some(system::SystemView::next(self.system.take(), sample));
    }

    /// Records the `n` largest live processes (by resident size) in the
    /// flight recorder and expires old samples.
    pub fn record_history(&mut self, n: usize, unix_ms: u64) {
        if !self.recorder.enabled() {
            return;
        }
        let fault_probes = self.fault_probes();
        let mut live: Vec<&Process> = self.processes.values().filter(|p| !p.exited).collect();
        live.sort_by_key(|p| std::cmp::Reverse(p.rss_bytes.unwrap_or(0)));
        for p in live.into_iter().take(n) {
            let v = ProcessView::from_process(p, fault_probes);
            self.recorder.record(
                p.key,
                history::HistorySample {
                    unix_ms,
                    rss_bytes: v.rss_bytes,
                    minor_faults: v.minor_faults,
                    major_faults: v.major_faults,
                    swap_out_pages: v.swap_out_pages,
                    swap_bytes: v.swap_bytes,
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
            .or_insert_with(|| Process::new(key, String::new()));
        p.counters = counters;
        p.exited = true;
        p.vanished = true;
    }

    fn apply_live(&mut self, tgid: u32, counters: ProcCounters, root: &ProcRoot) {
        if let Some(key) = self.live.get(&tgid)
            && let Some(p) = self.processes.get_mut(key)
        {
            // Counters only grow for one process; a drop means the pid was
            // reused and the old exit event was lost.
            if counters.dominates(&p.counters) {
                p.counters = counters;
                return;
            }
            p.exited = true;
            self.live.remove(&tgid);
        }
        match identity::read(root, tgid) {
            Ok(id) => {
                let key = ProcessKey {
                    pid: tgid,
                    start_time_ticks: id.start_time_ticks,
                };
                let p = self
                    .processes
                    .entry(key)
                    .or_insert_with(|| Process::new(key, id.comm.clone()));
                p.ppid = Some(id.ppid);
                p.counters = counters;
                p.exited = false;
                if p.cgroup.is_none() {
                    p.cgroup = crate::procfs::cgroup::memory_cgroup(root, tgid).ok();
                    p.uid = owner_uid(root, tgid);
                }
                p.rss_bytes = Some(id.rss_pages * identity::page_size());
                p.vm_bytes = Some(id.vsize_bytes);
                if p.task.is_none() {
                    p.task = Some(TaskFaults {
                        minor: id.minflt,
                        major: id.majflt,
                    });
                }
                self.live.insert(tgid, key);
            }
            // Exited between the map read and now: its exit event follows.
            Err(ReadFailure::Gone(_)) => {}
            Err(e) => tracing::debug!("identity of pid {tgid}: {e}"),
        }
    }

    fn apply_exit(&mut self, exit: &ExitEvent) {
        let tgid = exit.tgid;
        let has_task = exit.flags & EXIT_HAS_TASK != 0;
        let key = match self.live.remove(&tgid) {
            Some(key) => key,
            None => ProcessKey {
                pid: tgid,
                start_time_ticks: if has_task {
                    boottime_ns_to_ticks(exit.start_boottime_ns, self.ticks_per_second)
                } else {
                    0
                },
            },
        };
        let comm = comm_string(&exit.comm);
        let p = self
            .processes
            .entry(key)
            .or_insert_with(|| Process::new(key, comm.clone()));
        p.record_exit(exit);
        // Born and gone between two scans: its cgroup from the exit event.
        if p.cgroup.is_none()
            && let Some(id) = p.exit_cgroup_id
        {
            p.cgroup = self.cgroup_ids.resolve(id);
        }
    }

    /// Marks the start of a counting window: processes that already exited
    /// are dropped, and every live one's current counters become its
    /// baseline. Processes found vanished stay, with a zero baseline: their
    /// final counts were never reported.
    pub fn start_window(&mut self) {
        self.alloc_baseline = self.alloc.clone();
        self.processes.retain(|_, p| !p.exited || p.vanished);
        for p in self.processes.values_mut() {
            p.baseline = if p.vanished {
                Default::default()
            } else {
                p.counters
            };
            p.task_baseline = if p.vanished {
                Default::default()
            } else {
                p.task.unwrap_or_default()
            };
        }
    }

    /// Every process the model holds, live or exited.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.values()
    }

    /// Views of the processes with activity since the window started.
    pub fn window_views(&self) -> Vec<ProcessView> {
        let fault_probes = self.fault_probes();
        self.processes
            .values()
            .filter(|p| p.exited || !p.window().is_zero())
            .map(|p| ProcessView::from_process(p, fault_probes))
            .collect()
    }

    /// Views of every live process (cumulative counts: no window started).
    pub fn live_views(&self) -> Vec<ProcessView> {
        let fault_probes = self.fault_probes();
        self.processes
            .values()
            .filter(|p| !p.exited)
            .map(|p| ProcessView::from_process(p, fault_probes))
            .collect()
    }

    /// Totals per cgroup: folded exited processes plus the live ones.
    pub fn cgroup_totals(&self) -> HashMap<String, Totals> {
        let fault_probes = self.fault_probes();
        let mut out = self.exited_totals.clone();
        for p in self.processes.values() {
            let t = out.entry(p.cgroup.clone().unwrap_or_default()).or_default();
            if p.exited {
                t.add_exited(p, fault_probes);
            } else {
                t.add_live(p, fault_probes);
            }
        }
        out
    }
}

/// The uid owning /proc/PID (the process's real uid).
fn owner_uid(root: &ProcRoot, pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(root.pid_dir(pid)).ok().map(|m| m.uid())
}

/// A NUL-padded kernel comm as text (invalid UTF-8 replaced).
pub fn comm_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}
