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
/// The load-time configuration global (BTF offsets, layouts).
pub const CONFIG: &str = "CONFIG";
/// The task iterator's offsets (`TaskIterOffsets`).
pub const TASK_ITER_CONFIG: &str = "TASK_ITER_CONFIG";
/// The OOM programs' offsets (`OomOffsets`).
pub const OOM_CONFIG: &str = "OOM_CONFIG";
/// Processes that ran since userspace last took their bit (bitmap by
/// tgid, mapped by userspace).
pub const RAN: &str = "RAN";
/// Processes with swap entries → the count the task iterator last read.
pub const SWAP_SEEN: &str = "SWAP_SEEN";
/// The task iterator's state slots (`task_iter::STATE_*`).
pub const TASK_ITER_STATE: &str = "TASK_ITER_STATE";
/// Thread ids the `cgroup_attach` probe saw moved to another cgroup, not
/// yet taken by userspace.
pub const MOVED_TASKS: &str = "MOVED_TASKS";

/// Every map userspace looks up.
pub const MAPS: &[&str] = &[
    PROC_COUNTERS,
    EVENTS,
    STATS,
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
    MOVED_TASKS,
    RAN,
    SWAP_SEEN,
    TASK_ITER_STATE,
];
