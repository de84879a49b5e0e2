//! The list of memmon's kernel probes: name, program in the eBPF object,
//! attach point, and whether it runs on every page fault (costly: only on
//! when fault detail is asked for).

use aya::programs::perf_event::SoftwareEvent;
use memmon_common::names::{Probe, Program, probe, program};

/// Where a program attaches.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    /// A classic tracepoint `category:name` under tracefs `events/`.
    Tracepoint {
        /// Tracepoint category (directory under events/).
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
    },
    /// A raw tracepoint (`category` only names where tracefs lists it).
    RawTracepoint {
        /// Tracepoint category (directory under events/).
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
    },
    /// A perf software event on every online CPU, sample period 1.
    PerfSoftware(SoftwareEvent),
    /// A kprobe on the entry of a kernel function.
    Kprobe {
        /// Kernel function.
        function: &'static str,
    },
    /// A BPF tracing program (ftrace trampoline) on a kernel function,
    /// typed by the kernel's BTF: fentry, or fexit when `exit`.
    Tracing {
        /// Kernel function.
        function: &'static str,
        /// fexit instead of fentry.
        exit: bool,
    },
}

/// One probe memmon can attach.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSpec {
    /// Stable name used in status reports, flags and metrics.
    pub name: &'static Probe,
    /// Program name in the eBPF object.
    pub program: &'static Program,
    /// Attach point.
    pub attach: Attach,
    /// Runs on every page fault: attached only with fault detail on.
    pub per_fault: bool,
    /// Runs on every kernel allocation (slab, kmalloc, page allocator):
    /// attached only with allocation detail on.
    pub per_alloc: bool,
    /// What it counts, for `--probes` and docs.
    pub what: &'static str,
}

/// Every probe, in attach order. The exit probe comes last so that a
/// process's counters exist before its exit can remove them.
pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        name: probe::PAGE_FAULT_USER,
        program: program::PAGE_FAULT_USER,
        attach: Attach::RawTracepoint {
            category: "exceptions",
            name: "page_fault_user",
        },
        per_fault: true,
        per_alloc: false,
        what: "user-mode page faults per process: read/write/copy-on-write",
    },
    ProbeSpec {
        name: probe::PAGE_FAULT_KERNEL,
        program: program::PAGE_FAULT_KERNEL,
        attach: Attach::RawTracepoint {
            category: "exceptions",
            name: "page_fault_kernel",
        },
        per_fault: true,
        per_alloc: false,
        what: "kernel-mode faults on user addresses (copy_to/from_user)",
    },
    ProbeSpec {
        name: probe::MAJOR_FAULTS,
        program: program::MAJOR_FAULT,
        attach: Attach::PerfSoftware(SoftwareEvent::PageFaultsMaj),
        per_fault: false,
        per_alloc: false,
        what: "major page faults per process (perf PAGE_FAULTS_MAJ)",
    },
    ProbeSpec {
        name: probe::RSS_STAT,
        program: program::RSS_STAT,
        attach: Attach::Tracepoint {
            category: "kmem",
            name: "rss_stat",
        },
        per_fault: true,
        per_alloc: false,
        what: "resident-set counter updates (every fault that maps a page): swap out/in pages and real-time rss per process",
    },
    ProbeSpec {
        name: probe::DIRECT_RECLAIM_BEGIN,
        program: program::RECLAIM_BEGIN,
        attach: Attach::Tracepoint {
            category: "vmscan",
            name: "mm_vmscan_direct_reclaim_begin",
        },
        per_fault: false,
        per_alloc: false,
        what: "start of a direct-reclaim stall",
    },
    ProbeSpec {
        name: probe::DIRECT_RECLAIM_END,
        program: program::RECLAIM_END,
        attach: Attach::Tracepoint {
            category: "vmscan",
            name: "mm_vmscan_direct_reclaim_end",
        },
        per_fault: false,
        per_alloc: false,
        what: "end of a direct-reclaim stall: count, time, histogram",
    },
    ProbeSpec {
        name: probe::MEMCG_RECLAIM_BEGIN,
        program: program::RECLAIM_BEGIN,
        attach: Attach::Tracepoint {
            category: "vmscan",
            name: "mm_vmscan_memcg_reclaim_begin",
        },
        per_fault: false,
        per_alloc: false,
        what: "start of a memcg-limit reclaim stall",
    },
    ProbeSpec {
        name: probe::MEMCG_RECLAIM_END,
        program: program::RECLAIM_END,
        attach: Attach::Tracepoint {
            category: "vmscan",
            name: "mm_vmscan_memcg_reclaim_end",
        },
        per_fault: false,
        per_alloc: false,
        what: "end of a memcg-limit reclaim stall: count, time, histogram",
    },
    ProbeSpec {
        name: probe::OOM_CONSTRAINT,
        program: program::OOM_OUT_OF_MEMORY,
        attach: Attach::Kprobe {
            function: "out_of_memory",
        },
        per_fault: false,
        per_alloc: false,
        what: "out_of_memory() starting: which limit an OOM kill hit (the kernel's oom_control: a memcg and its usage at the kill, or global), read by oom_kill",
    },
    ProbeSpec {
        name: probe::OOM_KILL,
        program: program::OOM_MARK_VICTIM,
        attach: Attach::Tracepoint {
            category: "oom",
            name: "mark_victim",
        },
        per_fault: false,
        per_alloc: false,
        what: "OOM kills: victim, its rss, the killing task (ring buffer)",
    },
    ProbeSpec {
        name: probe::MIGRATE_PAGES,
        program: program::MM_MIGRATE_PAGES,
        attach: Attach::Tracepoint {
            category: "migrate",
            name: "mm_migrate_pages",
        },
        per_fault: false,
        per_alloc: false,
        what: "page migrations: pages moved/failed per process and reason",
    },
    ProbeSpec {
        name: probe::NUMA_MOVE_TASK,
        program: program::SCHED_MOVE_NUMA,
        attach: Attach::Tracepoint {
            category: "sched",
            name: "sched_move_numa",
        },
        per_fault: false,
        per_alloc: false,
        what: "NUMA balancing moved a task to another node",
    },
    ProbeSpec {
        name: probe::NUMA_SWAP_TASKS,
        program: program::SCHED_SWAP_NUMA,
        attach: Attach::Tracepoint {
            category: "sched",
            name: "sched_swap_numa",
        },
        per_fault: false,
        per_alloc: false,
        what: "NUMA balancing swapped two tasks between nodes",
    },
    ProbeSpec {
        name: probe::FAULT_LATENCY_ENTRY,
        program: program::HANDLE_MM_FAULT_ENTRY,
        attach: Attach::Tracing {
            function: "handle_mm_fault",
            exit: false,
        },
        per_fault: true,
        per_alloc: false,
        what: "fentry handle_mm_fault: fault start time (needs BPF trampolines)",
    },
    ProbeSpec {
        name: probe::FAULT_LATENCY,
        program: program::HANDLE_MM_FAULT_EXIT,
        attach: Attach::Tracing {
            function: "handle_mm_fault",
            exit: true,
        },
        per_fault: true,
        per_alloc: false,
        what: "fexit handle_mm_fault: fault latency histogram (needs BPF trampolines)",
    },
    ProbeSpec {
        name: probe::MMAP_ENTER,
        program: program::SYS_ENTER_MMAP,
        attach: Attach::Tracepoint {
            category: "syscalls",
            name: "sys_enter_mmap",
        },
        per_fault: false,
        per_alloc: true,
        what: "mmap arguments (length, anonymous or file) until the call returns",
    },
    ProbeSpec {
        name: probe::MMAP_EXIT,
        program: program::SYS_EXIT_MMAP,
        attach: Attach::Tracepoint {
            category: "syscalls",
            name: "sys_exit_mmap",
        },
        per_fault: false,
        per_alloc: true,
        what: "mmap results: calls, bytes anonymous/file-backed, failures",
    },
    ProbeSpec {
        name: probe::MUNMAP,
        program: program::SYS_ENTER_MUNMAP,
        attach: Attach::Tracepoint {
            category: "syscalls",
            name: "sys_enter_munmap",
        },
        per_fault: false,
        per_alloc: true,
        what: "munmap calls and bytes",
    },
    ProbeSpec {
        name: probe::MREMAP,
        program: program::SYS_ENTER_MREMAP,
        attach: Attach::Tracepoint {
            category: "syscalls",
            name: "sys_enter_mremap",
        },
        per_fault: false,
        per_alloc: true,
        what: "mremap calls",
    },
    ProbeSpec {
        name: probe::BRK_ENTER,
        program: program::SYS_ENTER_BRK,
        attach: Attach::Tracepoint {
            category: "syscalls",
            name: "sys_enter_brk",
        },
        per_fault: false,
        per_alloc: true,
        what: "brk calls",
    },
    ProbeSpec {
        name: probe::BRK_EXIT,
        program: program::SYS_EXIT_BRK,
        attach: Attach::Tracepoint {
            category: "syscalls",
            name: "sys_exit_brk",
        },
        per_fault: false,
        per_alloc: true,
        what: "program break growth and shrinkage",
    },
    ProbeSpec {
        name: probe::SLAB_ALLOC,
        program: program::KMEM_CACHE_ALLOC,
        attach: Attach::Tracepoint {
            category: "kmem",
            name: "kmem_cache_alloc",
        },
        per_fault: false,
        per_alloc: true,
        what: "slab allocations per cache and per process",
    },
    ProbeSpec {
        name: probe::SLAB_FREE,
        program: program::KMEM_CACHE_FREE,
        attach: Attach::Tracepoint {
            category: "kmem",
            name: "kmem_cache_free",
        },
        per_fault: false,
        per_alloc: true,
        what: "slab frees per cache",
    },
    ProbeSpec {
        name: probe::KMALLOC,
        program: program::KMALLOC,
        attach: Attach::Tracepoint {
            category: "kmem",
            name: "kmalloc",
        },
        per_fault: false,
        per_alloc: true,
        what: "kmalloc per size class: bytes requested vs allocated",
    },
    ProbeSpec {
        name: probe::PAGE_ALLOC,
        program: program::MM_PAGE_ALLOC,
        attach: Attach::RawTracepoint {
            category: "kmem",
            name: "mm_page_alloc",
        },
        per_fault: false,
        per_alloc: true,
        what: "buddy allocations by order and migrate type, per process",
    },
    ProbeSpec {
        name: probe::PAGE_ALLOC_EXTFRAG,
        program: program::MM_PAGE_ALLOC_EXTFRAG,
        attach: Attach::Tracepoint {
            category: "kmem",
            name: "mm_page_alloc_extfrag",
        },
        per_fault: false,
        per_alloc: true,
        what: "allocations that fell back to another migrate type",
    },
    ProbeSpec {
        name: probe::CGROUP_ATTACH,
        program: program::CGROUP_ATTACH_TASK,
        attach: Attach::Tracepoint {
            category: "cgroup",
            name: "cgroup_attach_task",
        },
        per_fault: false,
        per_alloc: false,
        what: "tasks moved to another cgroup (systemd, container runtimes): their memory cgroup is read again",
    },
    ProbeSpec {
        name: probe::KILL_SIGNAL,
        program: program::SIGNAL_GENERATE_KILL,
        attach: Attach::Tracepoint {
            category: "signal",
            name: "signal_generate",
        },
        per_fault: false,
        per_alloc: false,
        what: "SIGKILLs sent (filtered in the kernel): sender pid, comm, memory cgroup; target pid, comm (and memory cgroup as a raw tracepoint)",
    },
    ProbeSpec {
        name: probe::PROCESS_EXIT,
        program: program::SCHED_PROCESS_EXIT,
        attach: Attach::Tracepoint {
            category: "sched",
            name: "sched_process_exit",
        },
        per_fault: false,
        per_alloc: false,
        what: "final counters of exiting processes; frees their map entries",
    },
];

/// The spec named `name`, if any.
pub fn find(name: &str) -> Option<&'static ProbeSpec> {
    PROBES.iter().find(|p| p.name == name)
}

/// `rss_stat` as a raw tracepoint: used instead of the catalog's classic
/// one where the kernel's BTF gives what it reads (6.2+), see
/// [`for_kernel`].
pub const RSS_STAT_RAW: ProbeSpec = ProbeSpec {
    name: probe::RSS_STAT,
    program: program::RSS_STAT_RAW,
    attach: Attach::RawTracepoint {
        category: "kmem",
        name: "rss_stat",
    },
    per_fault: true,
    per_alloc: false,
    what: "resident-set counter updates (every fault that maps a page): swap out/in pages and real-time rss per process",
};

/// `kill_signal` as a raw tracepoint: used instead of the catalog's
/// classic one where the kernel's BTF gives what it reads (the target
/// task's pid, comm and memory cgroup), see [`for_kernel`].
pub const KILL_SIGNAL_RAW: ProbeSpec = ProbeSpec {
    name: probe::KILL_SIGNAL,
    program: program::SIGNAL_GENERATE_KILL_RAW,
    attach: Attach::RawTracepoint {
        category: "signal",
        name: "signal_generate",
    },
    per_fault: false,
    per_alloc: false,
    what: "SIGKILLs sent (filtered in the kernel): sender pid, comm, memory cgroup; target pid, comm, memory cgroup",
};

/// Which probes run in their raw-tracepoint form on this kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Variants {
    /// `rss_stat` (its offsets resolved: 6.2+).
    pub raw_rss: bool,
    /// `kill_signal` (task and cgroup offsets resolved, and
    /// `trace_signal_generate` takes the task).
    pub raw_kill: bool,
}

/// The spec this kernel runs for `spec`: a raw variant where `variants`
/// says so, else `spec` itself.
pub fn for_kernel(spec: &'static ProbeSpec, variants: Variants) -> &'static ProbeSpec {
    if variants.raw_rss && spec.name == RSS_STAT_RAW.name {
        &RSS_STAT_RAW
    } else if variants.raw_kill && spec.name == KILL_SIGNAL_RAW.name {
        &KILL_SIGNAL_RAW
    } else {
        spec
    }
}

/// True for probes that are extras where the kernel allows them (BPF
/// tracing programs): their absence is reported in `--probes` and the
/// probe metrics, not warned about at every start.
pub fn is_optional(name: &str) -> bool {
    find(name).is_some_and(|p| matches!(p.attach, Attach::Tracing { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_holds_each_named_probe_once_in_order() {
        let names: Vec<&str> = PROBES.iter().map(|p| p.name.name()).collect();
        let declared: Vec<&str> = probe::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, declared, "memmon_common::names::probe::ALL");
        for raw in [&RSS_STAT_RAW, &KILL_SIGNAL_RAW] {
            assert!(find(raw.name).is_some(), "{} has no classic form", raw.name);
        }
    }
}
