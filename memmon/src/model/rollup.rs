//! Per-cgroup totals: the cumulative counts of every process that was in a
//! cgroup (exited ones folded in as they go, live ones added on demand), so
//! a cgroup's counters never go backwards when its processes exit.

use memmon_common::ProcCounters;
use serde::Serialize;

use super::{process::Process, view::fault_counts};

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
