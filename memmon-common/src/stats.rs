//! Slots of the per-CPU `STATS` array: what each probe saw and what it could
//! not record. Userspace sums the slots over CPUs.

/// Index into the `STATS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Page-fault tracepoint hits (user and kernel mode).
    FaultEvents = 0,
    /// Major-fault perf events.
    MajorFaultEvents = 1,
    /// Process exits seen (group_dead).
    ExitEvents = 2,
    /// A per-process counter update found `PROC_COUNTERS` full.
    ProcMapFull = 3,
    /// An exit event could not be reserved in the ring buffer.
    EventsLost = 4,
    // Slots 16..32: address-space, slab and page-allocator probes.
    /// mmap/munmap/mremap/brk tracepoint hits.
    MmapEvents = 16,
    /// An mmap start dropped: the in-flight map was full.
    MmapMapFull = 17,
    /// kmem_cache_alloc/free and kmalloc hits.
    SlabEvents = 18,
    /// A slab cache or size class dropped: its map was full.
    SlabMapFull = 19,
    /// mm_page_alloc hits.
    PageAllocEvents = 20,
    /// mm_page_alloc_extfrag hits (allocations that fell back to another
    /// migrate type: fragmentation).
    ExtfragEvents = 21,
    // Slots 32.. belong to the rss/reclaim/OOM/NUMA probes (kept apart from
    // the low slots other probes take).
    /// `kmem:rss_stat` hits.
    RssEvents = 32,
    /// An rss_stat update dropped: the mm maps were full.
    RssMapFull = 33,
    /// Reclaim begin/end tracepoint hits (direct and memcg).
    ReclaimEvents = 34,
    /// A reclaim start dropped: the in-flight map was full.
    ReclaimMapFull = 35,
    /// `oom:mark_victim` hits.
    OomEvents = 36,
    /// An OOM event could not be reserved in the ring buffer.
    OomEventsLost = 37,
    /// `migrate:mm_migrate_pages` hits.
    MigrateEvents = 38,
    /// `sched:sched_move_numa` / `sched_swap_numa` hits.
    NumaMoveEvents = 39,
    /// fentry/fexit `handle_mm_fault` hits.
    FaultLatencyEvents = 40,
    /// SIGKILLs seen by `signal:signal_generate` (other signals are
    /// filtered out before this count).
    KillEvents = 41,
    /// A kill event could not be reserved in the ring buffer.
    KillEventsLost = 42,
    /// An exit could not be added to `MEMCG_EXITS`: the map was full.
    MemcgExitsFull = 43,
    /// Stack samples taken (`memmon profile` faults, `memmon leaks` allocations).
    StackSamples = 44,
    /// A sampled stack dropped: STACK_COUNTS was full.
    StackMapFull = 45,
    /// A stack could not be walked or stored (bpf_get_stackid failed).
    StackLost = 46,
    /// A live allocation dropped: LIVE_ALLOCS or PENDING_ALLOCS was full.
    LeakMapFull = 47,
    /// `cgroup:cgroup_attach_task` hits (a task moved to another cgroup).
    CgroupMoveEvents = 48,
    /// A moved task dropped: MOVED_TASKS was full.
    MovedTasksMapFull = 49,
    /// A resident-mode sample dropped: RESIDENT_SAMPLES was full.
    ResidentLost = 50,
}

/// Number of slots in `STATS` (room for later probes).
pub const STATS_LEN: u32 = 64;

/// Buckets of the kernel's log2 histograms (bucket i: values in
/// [2^i, 2^(i+1)) ns; bucket 0 also holds 0).
pub const HIST_BUCKETS: u32 = 64;

impl Stat {
    /// Every slot, in index order.
    pub const ALL: [Stat; 30] = [
        Stat::FaultEvents,
        Stat::MajorFaultEvents,
        Stat::ExitEvents,
        Stat::ProcMapFull,
        Stat::EventsLost,
        Stat::MmapEvents,
        Stat::MmapMapFull,
        Stat::SlabEvents,
        Stat::SlabMapFull,
        Stat::PageAllocEvents,
        Stat::ExtfragEvents,
        Stat::RssEvents,
        Stat::RssMapFull,
        Stat::ReclaimEvents,
        Stat::ReclaimMapFull,
        Stat::OomEvents,
        Stat::OomEventsLost,
        Stat::MigrateEvents,
        Stat::NumaMoveEvents,
        Stat::FaultLatencyEvents,
        Stat::KillEvents,
        Stat::KillEventsLost,
        Stat::MemcgExitsFull,
        Stat::StackSamples,
        Stat::StackMapFull,
        Stat::StackLost,
        Stat::LeakMapFull,
        Stat::CgroupMoveEvents,
        Stat::MovedTasksMapFull,
        Stat::ResidentLost,
    ];

    /// Stable snake_case name used in reports and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::FaultEvents => "fault_events",
            Stat::MajorFaultEvents => "major_fault_events",
            Stat::ExitEvents => "exit_events",
            Stat::ProcMapFull => "proc_map_full",
            Stat::EventsLost => "events_lost",
            Stat::MmapEvents => "mmap_events",
            Stat::MmapMapFull => "mmap_map_full",
            Stat::SlabEvents => "slab_events",
            Stat::SlabMapFull => "slab_map_full",
            Stat::PageAllocEvents => "page_alloc_events",
            Stat::ExtfragEvents => "extfrag_events",
            Stat::RssEvents => "rss_events",
            Stat::RssMapFull => "rss_map_full",
            Stat::ReclaimEvents => "reclaim_events",
            Stat::ReclaimMapFull => "reclaim_map_full",
            Stat::OomEvents => "oom_events",
            Stat::OomEventsLost => "oom_events_lost",
            Stat::MigrateEvents => "migrate_events",
            Stat::NumaMoveEvents => "numa_move_events",
            Stat::FaultLatencyEvents => "fault_latency_events",
            Stat::KillEvents => "kill_events",
            Stat::KillEventsLost => "kill_events_lost",
            Stat::MemcgExitsFull => "memcg_exits_full",
            Stat::StackSamples => "stack_samples",
            Stat::StackMapFull => "stack_map_full",
            Stat::StackLost => "stack_lost",
            Stat::LeakMapFull => "leak_map_full",
            Stat::CgroupMoveEvents => "cgroup_move_events",
            Stat::MovedTasksMapFull => "moved_tasks_map_full",
            Stat::ResidentLost => "resident_lost",
        }
    }
}
