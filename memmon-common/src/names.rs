//! Names of the kernel objects userspace looks up in the eBPF object: the
//! maps it reads or pins and the global it sets at load. The eBPF side
//! declares them as statics of these names (`memmon-ebpf/src/maps.rs`); a
//! unit test in memmon opens the embedded object and checks each one, and
//! each probe's program, is there.

/// Per-process counters (hash, tgid → ProcCounters).
pub const PROC_COUNTERS: &str = "PROC_COUNTERS";
/// The ring buffer of exits and OOM kills.
pub const EVENTS: &str = "EVENTS";
/// Per-CPU statistics (`Stat` slots).
pub const STATS: &str = "STATS";
/// Resident-set counters per mm (rss_stat).
pub const MM_STATE: &str = "MM_STATE";
/// Reclaim stall histogram.
pub const RECLAIM_HIST: &str = "RECLAIM_HIST";
/// Fault latency histogram.
pub const FAULT_LATENCY_HIST: &str = "FAULT_LATENCY_HIST";
/// Pages migrated per reason.
pub const MIGRATE_REASONS: &str = "MIGRATE_REASONS";
/// Slab allocations per cache.
pub const SLAB_CACHES: &str = "SLAB_CACHES";
/// kmalloc per size class.
pub const KMALLOC_CLASSES: &str = "KMALLOC_CLASSES";
/// Buddy allocations by order and migrate type.
pub const PAGE_ALLOCS: &str = "PAGE_ALLOCS";
/// Stacks of the sampling probes (stack id → frames).
pub const STACK_TRACES: &str = "STACK_TRACES";
/// Weight per sampled stack (`StackKey` → i64).
pub const STACK_COUNTS: &str = "STACK_COUNTS";
/// Processes `memmon profile` samples (tgid → 1).
pub const PROFILE_PIDS: &str = "PROFILE_PIDS";
/// Settings of the sampling probes (`stacks::setting` slots).
pub const PROFILE_SETTINGS: &str = "PROFILE_SETTINGS";
/// Live allocations of the traced allocator (address → `LiveAlloc`).
pub const LIVE_ALLOCS: &str = "LIVE_ALLOCS";
/// Allocations between entry and return (pid_tgid → `PendingAlloc`).
pub const PENDING_ALLOCS: &str = "PENDING_ALLOCS";
/// Mappings charged to a stack (`MmapKey` → `MmapCharge`), for munmap.
pub const MMAP_CHARGES: &str = "MMAP_CHARGES";
/// Process → last program break (`memmon profile --event brk`).
pub const STACK_BRK_LAST: &str = "STACK_BRK_LAST";
/// Ring buffer of the fault sampler's addresses (resident mode).
pub const RESIDENT_SAMPLES: &str = "RESIDENT_SAMPLES";
/// The load-time configuration global (BTF offsets, layouts).
pub const CONFIG: &str = "CONFIG";
/// The raw rss_stat program's offsets (`RssOffsets`).
pub const RSS_CONFIG: &str = "RSS_CONFIG";
/// The task iterator's offsets (`TaskIterOffsets`).
pub const TASK_ITER_CONFIG: &str = "TASK_ITER_CONFIG";
/// The OOM programs' offsets (`OomOffsets`).
pub const OOM_CONFIG: &str = "OOM_CONFIG";
/// Thread ids the `cgroup_attach` probe saw moved to another cgroup, not
/// yet taken by userspace.
pub const MOVED_TASKS: &str = "MOVED_TASKS";

/// Every map userspace looks up.
pub const MAPS: &[&str] = &[
    PROC_COUNTERS,
    EVENTS,
    STATS,
    MM_STATE,
    RECLAIM_HIST,
    FAULT_LATENCY_HIST,
    MIGRATE_REASONS,
    SLAB_CACHES,
    KMALLOC_CLASSES,
    PAGE_ALLOCS,
    STACK_TRACES,
    STACK_COUNTS,
    PROFILE_PIDS,
    PROFILE_SETTINGS,
    LIVE_ALLOCS,
    PENDING_ALLOCS,
    MMAP_CHARGES,
    STACK_BRK_LAST,
    RESIDENT_SAMPLES,
    MOVED_TASKS,
];
