//! Per-cgroup totals: the cumulative counts of every process that was in a
//! cgroup (exited ones from the kernel's pinned per-memcg exit totals, or
//! folded in as they go; live ones added on demand), so a cgroup's
//! counters never go backwards when its processes exit or memmon restarts.

use memmon_common::{MemcgExits, ProcCounters};
use serde::Serialize;

use super::process::{Process, TaskFaults, fault_counts};
use super::{Model, ProcessKey};
use crate::fast_hash::FastMap;

/// Sums over a cgroup's processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Kernel counters summed.
    #[serde(skip)]
    pub counters: ProcCounters,
    /// Minor faults (from the fault probes or the task counters).
    pub minor_faults: u64,
    /// Major faults.
    pub major_faults: u64,
    /// Processes that exited and were folded in.
    pub exited_processes: u64,
    /// Live processes now.
    pub live_processes: u64,
    /// Resident bytes of the live processes now.
    pub rss_bytes: u64,
}

impl Totals {
    fn add_counts(&mut self, p: &Process, fault_probes: bool) {
        for (t, v) in self
            .counters
            .as_mut_slice()
            .iter_mut()
            .zip(p.counters.as_slice())
        {
            *t += v;
        }
        let (minor, major) = fault_counts(&p.counters, p.task, fault_probes);
        self.minor_faults += minor;
        self.major_faults += major;
    }

    /// What the kernel's `MEMCG_EXITS` entry of a cgroup says its exited
    /// processes left (minor/major faults from the same source
    /// [`fault_counts`] uses for live processes).
    pub fn from_kernel_exits(e: &MemcgExits, fault_probes: bool) -> Totals {
        let task = TaskFaults {
            minor: e.min_flt,
            major: e.maj_flt,
        };
        let (minor_faults, major_faults) = fault_counts(&e.counters, Some(task), fault_probes);
        Totals {
            counters: e.counters,
            minor_faults,
            major_faults,
            exited_processes: e.exited,
            ..Totals::default()
        }
    }

    /// Raises every cumulative count to at least `floor`'s (a cgroup's
    /// counters never go down, whatever order the kernel's maps were read
    /// in; the live gauges are left as they are).
    pub fn at_least(&mut self, floor: &Totals) {
        for (t, f) in self
            .counters
            .as_mut_slice()
            .iter_mut()
            .zip(floor.counters.as_slice())
        {
            *t = (*t).max(*f);
        }
        self.minor_faults = self.minor_faults.max(floor.minor_faults);
        self.major_faults = self.major_faults.max(floor.major_faults);
        self.exited_processes = self.exited_processes.max(floor.exited_processes);
    }

    /// Adds another set of exited processes' counts (the gauges stay).
    pub fn add_totals(&mut self, other: &Totals) {
        for (t, v) in self
            .counters
            .as_mut_slice()
            .iter_mut()
            .zip(other.counters.as_slice())
        {
            *t += v;
        }
        self.minor_faults += other.minor_faults;
        self.major_faults += other.major_faults;
        self.exited_processes += other.exited_processes;
    }

    /// Adds an exited process's final counts.
    pub fn add_exited(&mut self, p: &Process, fault_probes: bool) {
        self.add_counts(p, fault_probes);
        self.exited_processes += 1;
    }

    /// Adds a live process's counts so far and its resident size.
    pub fn add_live(&mut self, p: &Process, fault_probes: bool) {
        self.add_counts(p, fault_probes);
        self.live_processes += 1;
        self.rss_bytes += p.rss_bytes.unwrap_or(0);
    }
}

impl Model {
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
            // A process whose cgroup was never read is in no cgroup's
            // totals (never `cgroup=""`): where the exit probe runs, the
            // kernel charges its exit to its memory cgroup by id.
            let Some(cg) = p.cgroup.as_deref() else {
                continue;
            };
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

    /// The kernel's per-memory-cgroup totals of exited processes, when
    /// read.
    pub(super) fn apply_kernel_exits(&mut self, exits: Option<Vec<(String, MemcgExits)>>) {
        if let Some(exits) = exits {
            self.kernel_exits = Some(exits.into_iter().collect());
        }
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
            if let Some(p) = self.processes.remove(&key)
                && let Some(cg) = p.cgroup.clone()
            {
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
}
