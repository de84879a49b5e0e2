//! Per-cgroup totals: the cumulative counts of every process that was in a
//! cgroup (exited ones from the kernel's pinned per-memcg exit totals, or
//! folded in as they go; live ones added on demand), so a cgroup's
//! counters never go backwards when its processes exit or memmon restarts.

use memmon_common::{MemcgExits, ProcCounters};
use serde::Serialize;

use super::process::{Process, TaskFaults, fault_counts};

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
