//! Every name userspace uses for a kernel object, declared once: the maps
//! it reads, resizes or pins, the globals it sets at load, the programs it
//! attaches, and memmon's own name for each probe (reports, flags, metrics,
//! field sources).
//!
//! Each kind is a type of its own ([`Map`], [`Global`], [`Program`],
//! [`Probe`]) that only this file can make, so a name is spelled once: code
//! elsewhere takes the constant (a `&'static Map` derefs to the `&str` aya
//! wants). The eBPF side declares its statics and functions under these
//! names (`memmon-ebpf/src/maps.rs`, `src/probes/`); memmon's object test
//! opens the embedded object and checks every map and program listed here
//! is in it, and every catalog probe is listed.

use core::{fmt, ops::Deref};

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(str);

        impl $ty {
            /// Only this file names kernel objects.
            const fn new(name: &'static str) -> &'static $ty {
                // SAFETY: the type is a `repr(transparent)` wrapper of
                // `str`, so the two references have the same layout.
                unsafe { &*(name as *const str as *const $ty) }
            }

            /// The name as the object spells it.
            pub const fn name(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$ty> for str {
            fn eq(&self, other: &$ty) -> bool {
                self == &other.0
            }
        }
    };
}

/// Declares named constants of one kind and the list of all of them (the
/// list cannot miss one).
macro_rules! names {
    ($ty:ident, $(#[$all_doc:meta])* $all:ident: $( $(#[$doc:meta])* $c:ident = $s:expr ),* $(,)?) => {
        $( $(#[$doc])* pub const $c: &$ty = $ty::new($s); )*
        $(#[$all_doc])*
        pub const $all: &[&$ty] = &[$($c),*];
    };
}

name_type!(
    /// A map of the eBPF object (the name of its static in memmon-ebpf).
    Map
);
name_type!(
    /// A global of the eBPF object that userspace sets at load.
    Global
);
name_type!(
    /// A program of the eBPF object (the name of its function in
    /// memmon-ebpf).
    Program
);
name_type!(
    /// memmon's stable name for a probe of its catalog: what
    /// `--disable-probe`, `--probes`, the probe metrics and the fields'
    /// sources say. A probe runs one program (or another on some kernels).
    Probe
);

names!(Map,
    /// Every map userspace looks up.
    MAPS:
    /// Per-process counters (hash, tgid → ProcCounters).
    PROC_COUNTERS = "PROC_COUNTERS",
    /// Memory cgroup id → what its exited processes left (`MemcgExits`),
    /// pinned by the daemon.
    MEMCG_EXITS = "MEMCG_EXITS",
    /// The ring buffer of exits and OOM kills.
    EVENTS = "EVENTS",
    /// Per-CPU statistics (`Stat` slots).
    STATS = "STATS",
    /// Reclaim stall histogram.
    RECLAIM_HIST = "RECLAIM_HIST",
    /// Fault latency histogram.
    FAULT_LATENCY_HIST = "FAULT_LATENCY_HIST",
    /// Pages migrated per reason.
    MIGRATE_REASONS = "MIGRATE_REASONS",
    /// Slab allocations per cache.
    SLAB_CACHES = "SLAB_CACHES",
    /// kmalloc per size class.
    KMALLOC_CLASSES = "KMALLOC_CLASSES",
    /// Buddy allocations by order and migrate type.
    PAGE_ALLOCS = "PAGE_ALLOCS",
    /// Stacks of the sampling probes (stack hash → frames).
    STACK_TRACES = "STACK_TRACES",
    /// Weight per sampled stack (`StackKey` → i64).
    STACK_COUNTS = "STACK_COUNTS",
    /// Processes `memmon profile` samples (tgid → 1).
    PROFILE_PIDS = "PROFILE_PIDS",
    /// Settings of the sampling probes (`stacks::setting` slots).
    PROFILE_SETTINGS = "PROFILE_SETTINGS",
    /// Processes the fault sampler walks more often than
    /// `setting::WALK_EVERY` says (tgid → N: 1 walk in N runs).
    PROFILE_WALK_EVERY = "PROFILE_WALK_EVERY",
    /// Live allocations of the traced allocator (address → `LiveAlloc`).
    LIVE_ALLOCS = "LIVE_ALLOCS",
    /// Allocations between entry and return (pid_tgid → `PendingAlloc`).
    PENDING_ALLOCS = "PENDING_ALLOCS",
    /// Mappings charged to a stack (`MmapKey` → `MmapCharge`), for munmap.
    MMAP_CHARGES = "MMAP_CHARGES",
    /// Process → last program break (`memmon profile --event brk`).
    STACK_BRK_LAST = "STACK_BRK_LAST",
    /// Ring buffer of the fault sampler's addresses (resident mode).
    RESIDENT_SAMPLES = "RESIDENT_SAMPLES",
    /// Thread ids the `cgroup_attach` probe saw moved to another cgroup,
    /// not yet taken by userspace.
    MOVED_TASKS = "MOVED_TASKS",
    /// Processes that ran since userspace last took their bit (bitmap by
    /// tgid, mapped by userspace).
    RAN = "RAN",
    /// Processes with swap entries → the count the task iterator last
    /// read.
    SWAP_SEEN = "SWAP_SEEN",
    /// The task iterator's state slots (`task_iter::STATE_*`).
    TASK_ITER_STATE = "TASK_ITER_STATE",
);

names!(Global,
    /// Every global userspace sets at load.
    GLOBALS:
    /// The load-time configuration (BTF offsets, layouts).
    CONFIG = "CONFIG",
    /// The task iterator's offsets (`TaskIterOffsets`).
    TASK_ITER_CONFIG = "TASK_ITER_CONFIG",
    /// The OOM programs' offsets (`OomOffsets`).
    OOM_CONFIG = "OOM_CONFIG",
);

/// Program names (`program::PAGE_FAULT_USER`, ...).
pub mod program {
    use super::Program;

    names!(Program,
        /// Every program userspace loads.
        ALL:
        /// `exceptions:page_fault_user` (raw).
        PAGE_FAULT_USER = "page_fault_user",
        /// `exceptions:page_fault_kernel` (raw).
        PAGE_FAULT_KERNEL = "page_fault_kernel",
        /// perf PAGE_FAULTS_MAJ.
        MAJOR_FAULT = "major_fault",
        /// `sched:sched_switch` (raw): marks the process switched out.
        SCHED_SWITCH_RAN = "sched_switch_ran",
        /// perf CPU_CLOCK at 10 Hz: marks the process on the CPU.
        CPU_CLOCK_RAN = "cpu_clock_ran",
        /// Direct and memcg reclaim begin.
        RECLAIM_BEGIN = "reclaim_begin",
        /// Direct and memcg reclaim end.
        RECLAIM_END = "reclaim_end",
        /// kprobe on out_of_memory().
        OOM_OUT_OF_MEMORY = "oom_out_of_memory",
        /// `oom:mark_victim`.
        OOM_MARK_VICTIM = "oom_mark_victim",
        /// `migrate:mm_migrate_pages`.
        MM_MIGRATE_PAGES = "mm_migrate_pages",
        /// `sched:sched_move_numa`.
        SCHED_MOVE_NUMA = "sched_move_numa",
        /// `sched:sched_swap_numa`.
        SCHED_SWAP_NUMA = "sched_swap_numa",
        /// fentry handle_mm_fault.
        HANDLE_MM_FAULT_ENTRY = "handle_mm_fault_entry",
        /// fexit handle_mm_fault.
        HANDLE_MM_FAULT_EXIT = "handle_mm_fault_exit",
        /// `syscalls:sys_enter_mmap`.
        SYS_ENTER_MMAP = "sys_enter_mmap",
        /// `syscalls:sys_exit_mmap`.
        SYS_EXIT_MMAP = "sys_exit_mmap",
        /// `syscalls:sys_enter_munmap`.
        SYS_ENTER_MUNMAP = "sys_enter_munmap",
        /// `syscalls:sys_enter_mremap`.
        SYS_ENTER_MREMAP = "sys_enter_mremap",
        /// `syscalls:sys_enter_brk`.
        SYS_ENTER_BRK = "sys_enter_brk",
        /// `syscalls:sys_exit_brk`.
        SYS_EXIT_BRK = "sys_exit_brk",
        /// `kmem:kmem_cache_alloc`.
        KMEM_CACHE_ALLOC = "kmem_cache_alloc",
        /// `kmem:kmem_cache_free`.
        KMEM_CACHE_FREE = "kmem_cache_free",
        /// `kmem:kmalloc`.
        KMALLOC = "kmalloc",
        /// `kmem:mm_page_alloc` (raw).
        MM_PAGE_ALLOC = "mm_page_alloc",
        /// `kmem:mm_page_alloc_extfrag`.
        MM_PAGE_ALLOC_EXTFRAG = "mm_page_alloc_extfrag",
        /// `cgroup:cgroup_attach_task`.
        CGROUP_ATTACH_TASK = "cgroup_attach_task",
        /// `signal:signal_generate`.
        SIGNAL_GENERATE_KILL = "signal_generate_kill",
        /// `signal:signal_generate` as a raw tracepoint.
        SIGNAL_GENERATE_KILL_RAW = "signal_generate_kill_raw",
        /// `sched:sched_process_exit`.
        SCHED_PROCESS_EXIT = "sched_process_exit",
        /// The task iterator (`iter/task`, per-process records).
        TASK_ITER = "task_iter",
        /// The task iterator's probe (can this kernel run it?).
        TASK_ITER_PROBE = "task_iter_probe",
        /// perf PAGE_FAULTS with a period: sampled fault stacks.
        STACK_FAULTS = "stack_faults",
        /// Allocator uprobe: malloc.
        LEAK_MALLOC = "leak_malloc",
        /// Allocator uprobe: calloc.
        LEAK_CALLOC = "leak_calloc",
        /// Allocator uprobe: realloc.
        LEAK_REALLOC = "leak_realloc",
        /// Allocator uprobe: aligned_alloc.
        LEAK_ALIGNED_ALLOC = "leak_aligned_alloc",
        /// Allocator uprobe: posix_memalign.
        LEAK_POSIX_MEMALIGN = "leak_posix_memalign",
        /// Allocator uprobe: free.
        LEAK_FREE = "leak_free",
        /// Allocator uretprobe: the returned block.
        LEAK_ALLOC_RETURN = "leak_alloc_return",
        /// Allocator uretprobe of posix_memalign.
        LEAK_MEMALIGN_RETURN = "leak_memalign_return",
        /// Stacks growing the break (`sys_exit_brk`).
        STACK_BRK_EXIT = "stack_brk_exit",
        /// Stacks of mmap (entry).
        STACK_MMAP_ENTER = "stack_mmap_enter",
        /// Stacks of mmap (return).
        STACK_MMAP_EXIT = "stack_mmap_exit",
        /// Stacks of munmap.
        STACK_MUNMAP_ENTER = "stack_munmap_enter",
    );
}

/// Probe names (`probe::OOM_KILL`, ...), in the catalog's attach order.
pub mod probe {
    use super::Probe;

    names!(Probe,
        /// Every probe of the catalog.
        ALL:
        /// User-mode page faults.
        PAGE_FAULT_USER = "page_fault_user",
        /// Kernel-mode faults on user addresses.
        PAGE_FAULT_KERNEL = "page_fault_kernel",
        /// Major faults.
        MAJOR_FAULTS = "major_faults",
        /// Processes switched out: they ran since the last pass.
        RAN_SWITCH = "ran_switch",
        /// Processes on a CPU, 10 times a second.
        RAN_TICK = "ran_tick",
        /// Start of a direct-reclaim stall.
        DIRECT_RECLAIM_BEGIN = "direct_reclaim_begin",
        /// End of a direct-reclaim stall.
        DIRECT_RECLAIM_END = "direct_reclaim_end",
        /// Start of a memcg-limit reclaim stall.
        MEMCG_RECLAIM_BEGIN = "memcg_reclaim_begin",
        /// End of a memcg-limit reclaim stall.
        MEMCG_RECLAIM_END = "memcg_reclaim_end",
        /// Which limit an OOM kill hit.
        OOM_CONSTRAINT = "oom_constraint",
        /// OOM kills.
        OOM_KILL = "oom_kill",
        /// Page migrations.
        MIGRATE_PAGES = "migrate_pages",
        /// NUMA balancing moved a task.
        NUMA_MOVE_TASK = "numa_move_task",
        /// NUMA balancing swapped two tasks.
        NUMA_SWAP_TASKS = "numa_swap_tasks",
        /// Fault start time.
        FAULT_LATENCY_ENTRY = "fault_latency_entry",
        /// Fault latency.
        FAULT_LATENCY = "fault_latency",
        /// mmap arguments.
        MMAP_ENTER = "mmap_enter",
        /// mmap results.
        MMAP_EXIT = "mmap_exit",
        /// munmap.
        MUNMAP = "munmap",
        /// mremap.
        MREMAP = "mremap",
        /// brk calls.
        BRK_ENTER = "brk_enter",
        /// Program break growth and shrinkage.
        BRK_EXIT = "brk_exit",
        /// Slab allocations.
        SLAB_ALLOC = "slab_alloc",
        /// Slab frees.
        SLAB_FREE = "slab_free",
        /// kmalloc per size class.
        KMALLOC = "kmalloc",
        /// Buddy allocations.
        PAGE_ALLOC = "page_alloc",
        /// Migrate-type fallbacks.
        PAGE_ALLOC_EXTFRAG = "page_alloc_extfrag",
        /// Tasks moved to another cgroup.
        CGROUP_ATTACH = "cgroup_attach",
        /// SIGKILLs sent.
        KILL_SIGNAL = "kill_signal",
        /// Exiting processes.
        PROCESS_EXIT = "process_exit",
    );

    /// The probe named `name`, if any (for names that come from outside:
    /// flags, recordings).
    pub fn find(name: &str) -> Option<&'static Probe> {
        ALL.iter().copied().find(|p| p.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique<T: ?Sized + Ord>(all: &[&T]) -> bool {
        all.iter()
            .enumerate()
            .all(|(i, a)| all[i + 1..].iter().all(|b| a != b))
    }

    #[test]
    fn names_are_unique_within_their_kind() {
        assert!(unique(MAPS));
        assert!(unique(GLOBALS));
        assert!(unique(program::ALL));
        assert!(unique(probe::ALL));
        assert_eq!(&**MEMCG_EXITS, "MEMCG_EXITS");
        assert_eq!(probe::find("oom_kill"), Some(probe::OOM_KILL));
        assert_eq!(probe::find("oom-kill"), None);
    }
}
