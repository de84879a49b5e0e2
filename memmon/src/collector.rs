//! Turns the kernel's maps and ring buffer into [`Sample`]s for the model.
//! The only place userspace reads the probes.

use memmon_common::{ExitEvent, MmState, OomEvent, ProcCounters};

use crate::probes::{ProbeSet, StatsSnapshot};

/// What one collection pass read.
#[derive(Debug, Default)]
pub struct Sample {
    /// (tgid, cumulative counters) of every live process in the kernel map.
    pub live: Vec<(u32, ProcCounters)>,
    /// Exit events drained since the last pass, in kernel order.
    pub exits: Vec<ExitEvent>,
    /// OOM kills drained since the last pass, in kernel order.
    pub oom_events: Vec<OomEvent>,
    /// Resident-set counters per mm (rss_stat probe), with their owners.
    pub rss: Vec<MmState>,
    /// Kernel statistics, when they could be read.
    pub stats: Option<StatsSnapshot>,
}

/// Reads the probes.
pub struct Collector {
    probes: ProbeSet,
}

impl Collector {
    /// Wraps a loaded probe set.
    pub fn new(probes: ProbeSet) -> Self {
        Collector { probes }
    }

    /// The probe set (statuses, map fill).
    pub fn probes(&self) -> &ProbeSet {
        &self.probes
    }

    /// Drains exit events only (cheap; call often so the ring buffer
    /// never fills).
    pub fn drain_exits(&mut self, into: &mut Vec<ExitEvent>) -> usize {
        self.probes.drain_exits(into)
    }

    /// A full pass: live counters, then exits (so a process that exits in
    /// between is seen live first and exited after, never lost), then
    /// statistics.
    pub fn collect(&mut self, pending_exits: Vec<ExitEvent>) -> Sample {
        let live = match self.probes.read_counters() {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        };
        let rss = self.probes.read_mm_states();
        let mut exits = pending_exits;
        self.probes.drain_exits(&mut exits);
        let stats = match self.probes.read_stats() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        let oom_events = self.probes.take_oom_events();
        Sample {
            live,
            exits,
            oom_events,
            rss,
            stats,
        }
    }

    /// Drains the ring buffer and returns the OOM kills in it (exits go
    /// to `exits`).
    pub fn drain_oom_events(&mut self, exits: &mut Vec<ExitEvent>) -> Vec<OomEvent> {
        self.probes.drain_exits(exits);
        self.probes.take_oom_events()
    }

    /// Kernel statistics now.
    pub fn stats(&self) -> Option<StatsSnapshot> {
        match self.probes.read_stats() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }
}
