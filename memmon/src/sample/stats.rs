//! The kernel programs' statistics, summed over CPUs, plus map fill.

use serde::Serialize;

/// Statistics summed over CPUs, plus map fill.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Fault tracepoint hits.
    pub fault_events: u64,
    /// Major-fault perf events.
    pub major_fault_events: u64,
    /// Process exits seen.
    pub exit_events: u64,
    /// Updates dropped because the per-process map was full.
    pub proc_map_full: u64,
    /// Exit events lost because the ring buffer was full.
    pub events_lost: u64,
    /// mmap/munmap/mremap/brk tracepoint hits.
    pub mmap_events: u64,
    /// mmap starts dropped (in-flight map full).
    pub mmap_map_full: u64,
    /// Slab and kmalloc tracepoint hits.
    pub slab_events: u64,
    /// Slab caches or size classes dropped (map full).
    pub slab_map_full: u64,
    /// Page allocator tracepoint hits.
    pub page_alloc_events: u64,
    /// Allocations that fell back to another migrate type.
    pub extfrag_events: u64,
    /// Reclaim begin/end hits.
    pub reclaim_events: u64,
    /// Reclaim starts dropped: in-flight map full.
    pub reclaim_map_full: u64,
    /// `oom:mark_victim` hits.
    pub oom_events: u64,
    /// OOM events lost because the ring buffer was full.
    pub oom_events_lost: u64,
    /// `migrate:mm_migrate_pages` hits.
    pub migrate_events: u64,
    /// NUMA task move/swap hits.
    pub numa_move_events: u64,
    /// handle_mm_fault fexit hits.
    pub fault_latency_events: u64,
    /// SIGKILLs seen by `signal:signal_generate`.
    pub kill_events: u64,
    /// Kill records lost because the ring buffer was full.
    pub kill_events_lost: u64,
    /// Exits not added to MEMCG_EXITS because it was full.
    pub memcg_exits_map_full: u64,
    /// Tasks moved to another cgroup (`cgroup:cgroup_attach_task` hits).
    pub cgroup_move_events: u64,
    /// Moves dropped because MOVED_TASKS was full (found later under the
    /// cost guard).
    pub moved_tasks_map_full: u64,
    /// Processes whose swap count could not be followed: SWAP_SEEN full.
    pub swap_map_full: u64,
    /// Processes that ran but could not be marked: their pid is past the
    /// RAN bitmap (pid_max raised after load); a full walk follows.
    pub ran_map_full: u64,
    /// Processes marked as having run (once per pass each).
    pub ran_mark_events: u64,
    /// Reclaim stall durations: (bucket lower bound ns, count), non-empty
    /// log2 buckets only.
    pub reclaim_stall_hist: Vec<(u64, u64)>,
    /// Page-fault durations (fentry/fexit on handle_mm_fault, where the
    /// kernel allows it): (bucket lower bound ns, faults), non-empty only.
    pub fault_latency_hist: Vec<(u64, u64)>,
    /// Pages migrated system-wide per migrate reason (non-zero only).
    pub migrate_pages_by_reason: Vec<(String, u64)>,
    /// Entries in the per-process map now.
    pub proc_map_entries: u64,
    /// Its capacity.
    pub proc_map_capacity: u64,
    /// Entries found in the last pass whose process no longer existed and
    /// whose exit was not seen (0 in steady state: the exit probe removes
    /// entries; after a restart on pinned maps, the processes that exited
    /// while memmon was down). The collector removes them.
    pub proc_map_stale: u64,
}

/// One loaded program's totals as the kernel accounts them (run-time
/// statistics on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramRuns {
    /// Program name in the eBPF object.
    pub program: &'static str,
    /// Serves a detail probe (per fault or per allocation): the budget
    /// may suspend it.
    pub detail: bool,
    /// Total time in the program since it was loaded, ns.
    pub run_ns: u64,
    /// Times it ran.
    pub runs: u64,
}
