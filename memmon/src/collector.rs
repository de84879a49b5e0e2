//! Turns the kernel's maps and ring buffer into [`Sample`]s for the model.
//! The only place userspace reads the probes.

use memmon_common::{ExitEvent, MmState, OomEvent, ProcCounters};

use crate::{
    probes::{ProbeSet, StatsSnapshot},
    procfs::ProcRoot,
};

/// What one collection pass read.
#[derive(Debug, Default)]
pub struct Sample {
    /// (tgid, cumulative counters) of every live process in the kernel map.
    pub live: Vec<(u32, ProcCounters)>,
    /// Exit events drained since the last pass, in kernel order.
    pub exits: Vec<ExitEvent>,
    /// Map entries that outlived their process without an exit event
    /// (memmon was not running when it exited, or the event was lost):
    /// their last counters. The collector deletes them from the kernel map.
    pub vanished: Vec<(u32, ProcCounters)>,
    /// OOM kills drained since the last pass, in kernel order.
    pub oom_events: Vec<OomEvent>,
    /// Resident-set counters per mm (rss_stat probe), with their owners.
    pub rss: Vec<MmState>,
    /// Kernel statistics, when they could be read.
    pub stats: Option<StatsSnapshot>,
    /// Allocator maps, when those probes are attached.
    pub alloc: Option<crate::probes::alloc_reader::AllocSample>,
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
    /// entries whose process is gone without an exit event, then
    /// statistics.
    pub fn collect(&mut self, pending_exits: Vec<ExitEvent>, root: &ProcRoot) -> Sample {
        let mut live = match self.probes.read_counters() {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        };
        let rss = self.probes.read_mm_states();
        let mut exits = pending_exits;
        self.probes.drain_exits(&mut exits);
        let gone = |tgid: u32, exits: &[ExitEvent]| {
            !root.pid_dir(tgid).exists() && !exits.iter().any(|e| e.tgid == tgid)
        };
        if live.iter().any(|(tgid, _)| gone(*tgid, &exits)) {
            // An exit may have landed after the first drain: drain again
            // before calling an entry vanished.
            self.probes.drain_exits(&mut exits);
        }
        let (vanished, still): (Vec<_>, Vec<_>) =
            live.drain(..).partition(|(tgid, _)| gone(*tgid, &exits));
        for (tgid, _) in &vanished {
            self.probes.remove_counters(*tgid);
        }
        let stats = match self.probes.read_stats() {
            Ok(mut s) => {
                s.proc_map_stale = vanished.len() as u64;
                Some(s)
            }
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        let oom_events = self.probes.take_oom_events();
        Sample {
            live: still,
            exits,
            vanished,
            oom_events,
            rss,
            stats,
            alloc: self.probes.read_alloc(),
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

/// One cost-guarded pass over the live processes' memory (smaps_rollup,
/// status, OOM score, numa_maps), folded into the model, then the system
/// view. `cycle` is the sampling interval the guard's budget is a share of;
/// `only` limits the reads to these pids (what a command will show).
pub fn collect_memory(
    model: &mut crate::model::Model,
    guard: &mut crate::procfs::cost_guard::CostGuard,
    root: &ProcRoot,
    cpu_node: &std::collections::BTreeMap<u32, u32>,
    cycle: std::time::Duration,
    only: Option<&std::collections::HashSet<u32>>,
) {
    use crate::{
        procfs::{ReadFailure, memory, numa, system},
        sources::ProcFile,
    };
    let mut candidates = model.memory_candidates();
    if let Some(only) = only {
        candidates.retain(|(k, _)| only.contains(&k.pid));
    }
    let mut system = system::read(root, &numa::SysNodeRoot::default());
    // One node: every page is local and numa_maps (one of the costliest
    // /proc files: it prints every mapping's path) says nothing new.
    let multi_node = system.nodes.len() > 1;
    // A file counts as missing from the kernel when no process read in
    // this pass had it (a trimmed /proc may lack it for some only).
    let (mut had_rollup, mut lacked_rollup) = (false, false);
    let cost = guard.cycle(&candidates, cycle, |key| {
        match memory::read(root, key.pid) {
            Ok(mut m) => {
                match m.missing.take() {
                    Some((_, what)) => {
                        lacked_rollup = true;
                        model.missing_sources.insert(what);
                    }
                    None => had_rollup = true,
                }
                let numa = multi_node
                    .then(|| numa::read(root, key.pid, cpu_node).ok())
                    .flatten();
                model.apply_memory(key, m, numa);
                true
            }
            Err(ReadFailure::Gone(_)) => false,
            Err(e) => {
                tracing::debug!("{e}");
                true
            }
        }
    });
    model.memory_cost = cost;
    if had_rollup {
        model.missing_files.remove(&ProcFile::SmapsRollup);
    } else if lacked_rollup {
        model.missing_files.insert(ProcFile::SmapsRollup);
    }
    model
        .missing_sources
        .extend(std::mem::take(&mut system.missing));
    model.apply_system(system);
}
