//! The flat per-process record every sink shows: `memmon snapshot --json`,
//! the JSON API and the TUI use these exact keys.

use memmon_common::{
    MmState, ProcCounters,
    rss::{RSS_ANON, RSS_FILE, RSS_SHMEM, RSS_SWAPENTS},
};
use serde::Serialize;

use super::process::{Process, TaskFaults};

/// (minor, major) faults: from the per-fault probes when they are
/// attached, else from the kernel's per-task counters.
pub fn fault_counts(
    counters: &ProcCounters,
    task: Option<TaskFaults>,
    fault_probes: bool,
) -> (u64, u64) {
    if fault_probes {
        (
            counters.faults.saturating_sub(counters.major_faults),
            counters.major_faults,
        )
    } else {
        let t = task.unwrap_or_default();
        (t.minor, t.major)
    }
}

/// One process's row.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ProcessView {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Start time in clock ticks since boot (0 when unknown).
    pub start_time_ticks: u64,
    /// Parent pid, when known.
    pub ppid: Option<u32>,
    /// The process exited during the window.
    pub exited: bool,
    /// All page faults charged to it.
    pub faults: u64,
    /// Faults that did not need I/O (`faults - major_faults`).
    pub minor_faults: u64,
    /// Faults that waited for I/O.
    pub major_faults: u64,
    /// Read (or instruction-fetch) faults.
    pub read_faults: u64,
    /// Write faults.
    pub write_faults: u64,
    /// Write faults on present pages (copy-on-write and friends).
    pub cow_faults: u64,
    /// Pages swapped out of its memory.
    pub swap_out_pages: u64,
    /// Swap entries it released (swapped back in, or unmapped while out).
    pub swap_in_pages: u64,
    /// Direct/memcg reclaim stalls it waited in.
    pub reclaim_stalls: u64,
    /// Time spent in those stalls, seconds.
    pub reclaim_stall_seconds: f64,
    /// Pages migrated by migrations it ran (any reason, compaction included).
    pub pages_migrated: u64,
    /// Pages those migrations failed to move.
    pub pages_migrate_failed: u64,
    /// Pages migrated for NUMA placement.
    pub numa_pages_migrated: u64,
    /// Times NUMA balancing moved or swapped one of its threads.
    pub numa_task_moves: u64,
    /// Successful mmap calls.
    pub mmap_calls: u64,
    /// Bytes they mapped.
    pub mmap_bytes: u64,
    /// Of those, anonymous.
    pub mmap_anon_bytes: u64,
    /// Of those, file-backed.
    pub mmap_file_bytes: u64,
    /// Failed mmap calls.
    pub mmap_failed: u64,
    /// munmap calls.
    pub munmap_calls: u64,
    /// Bytes they unmapped.
    pub munmap_bytes: u64,
    /// mremap calls.
    pub mremap_calls: u64,
    /// brk calls.
    pub brk_calls: u64,
    /// Program-break growth, bytes.
    pub brk_grow_bytes: u64,
    /// Program-break shrinkage, bytes.
    pub brk_shrink_bytes: u64,
    /// Slab objects allocated in its context.
    pub slab_allocs: u64,
    /// Their bytes.
    pub slab_alloc_bytes: u64,
    /// kmalloc calls in its context.
    pub kmalloc_allocs: u64,
    /// kmalloc bytes requested.
    pub kmalloc_req_bytes: u64,
    /// kmalloc bytes allocated (size classes).
    pub kmalloc_alloc_bytes: u64,
    /// Pages the buddy allocator gave in its context.
    pub page_allocs: u64,
    /// Resident anonymous memory now, bytes (rss_stat; absent until the
    /// counter changes after the probe attached, or once exited).
    pub rss_anon_bytes: Option<u64>,
    /// Resident file-backed memory now, bytes.
    pub rss_file_bytes: Option<u64>,
    /// Resident shared memory now, bytes.
    pub rss_shmem_bytes: Option<u64>,
    /// Memory in swap now, bytes.
    pub swap_bytes: Option<u64>,
    /// Resident set now (/proc/PID/stat), bytes.
    pub rss_bytes: Option<u64>,
    /// Virtual size now (/proc/PID/stat), bytes.
    pub vm_bytes: Option<u64>,
    /// Memory cgroup path, when known.
    pub cgroup: Option<String>,
    /// Owner uid, when known.
    pub uid: Option<u32>,
    /// Faults per second over the last two /proc scans (daemon, top).
    pub fault_rate: f64,
    /// Proportional set size (smaps_rollup), bytes.
    pub pss_bytes: Option<u64>,
    /// PSS of anonymous memory, bytes (kernel 5.8+).
    pub pss_anon_bytes: Option<u64>,
    /// PSS of file-backed memory, bytes.
    pub pss_file_bytes: Option<u64>,
    /// PSS of shared memory, bytes.
    pub pss_shmem_bytes: Option<u64>,
    /// Unique set size (private clean + dirty), bytes.
    pub uss_bytes: Option<u64>,
    /// Proportional swap, bytes.
    pub swap_pss_bytes: Option<u64>,
    /// Anonymous transparent huge pages, bytes.
    pub anon_huge_bytes: Option<u64>,
    /// hugetlbfs pages, bytes.
    pub hugetlb_bytes: Option<u64>,
    /// Peak resident set (VmHWM), bytes.
    pub rss_peak_bytes: Option<u64>,
    /// /proc/PID/oom_score.
    pub oom_score: Option<i64>,
    /// /proc/PID/oom_score_adj.
    pub oom_score_adj: Option<i64>,
    /// systemd unit (from the cgroup path), when any.
    pub unit: Option<String>,
    /// Container id (from the cgroup path), when any.
    pub container_id: Option<String>,
    /// Share of its pages on the NUMA nodes its threads run on (0..1).
    pub numa_local_ratio: Option<f64>,
    /// Resident pages per NUMA node (4 KiB units).
    pub numa_pages: Option<std::collections::BTreeMap<u32, u64>>,
}

impl ProcessView {
    /// The window's view of `p`; `fault_probes`: fault counts come from the
    /// per-fault probes (else from the task counters).
    pub fn from_process(p: &Process, fault_probes: bool) -> Self {
        let w = p.window();
        let (minor_faults, major_faults) =
            fault_counts(&w, p.task.map(|t| t.since(p.task_baseline)), fault_probes);
        // Memory readings describe a live process only.
        let mem = p.memory.as_ref().filter(|_| !p.exited);
        let numa = p.numa.as_ref().filter(|_| !p.exited);
        let rss = |member| {
            p.rss
                .filter(|_| !p.exited)
                .and_then(|m: MmState| m.get(member))
        };
        ProcessView {
            pid: p.key.pid,
            comm: p.comm.clone(),
            start_time_ticks: p.key.start_time_ticks,
            ppid: p.ppid,
            exited: p.exited,
            faults: minor_faults + major_faults,
            minor_faults,
            major_faults,
            read_faults: w.faults.saturating_sub(w.write_faults),
            write_faults: w.write_faults,
            cow_faults: w.cow_faults,
            swap_out_pages: w.swap_out_pages,
            swap_in_pages: w.swap_in_pages,
            reclaim_stalls: w.reclaim_stalls,
            reclaim_stall_seconds: w.reclaim_stall_ns as f64 / 1e9,
            pages_migrated: w.pages_migrated,
            pages_migrate_failed: w.pages_migrate_failed,
            numa_pages_migrated: w.numa_pages_migrated,
            numa_task_moves: w.numa_task_moves,
            mmap_calls: w.mmap_calls,
            mmap_bytes: w.mmap_bytes,
            mmap_anon_bytes: w.mmap_anon_bytes,
            mmap_file_bytes: w.mmap_file_bytes,
            mmap_failed: w.mmap_failed,
            munmap_calls: w.munmap_calls,
            munmap_bytes: w.munmap_bytes,
            mremap_calls: w.mremap_calls,
            brk_calls: w.brk_calls,
            brk_grow_bytes: w.brk_grow_bytes,
            brk_shrink_bytes: w.brk_shrink_bytes,
            slab_allocs: w.slab_allocs,
            slab_alloc_bytes: w.slab_alloc_bytes,
            kmalloc_allocs: w.kmalloc_allocs,
            kmalloc_req_bytes: w.kmalloc_req_bytes,
            kmalloc_alloc_bytes: w.kmalloc_alloc_bytes,
            page_allocs: w.page_allocs,
            rss_anon_bytes: rss(RSS_ANON),
            rss_file_bytes: rss(RSS_FILE),
            rss_shmem_bytes: rss(RSS_SHMEM),
            swap_bytes: rss(RSS_SWAPENTS).or(mem.and_then(|m| m.swap)),
            rss_bytes: p.rss_bytes.filter(|_| !p.exited),
            vm_bytes: p.vm_bytes.filter(|_| !p.exited),
            cgroup: p.cgroup.clone(),
            uid: p.uid,
            fault_rate: p.fault_rate,
            pss_bytes: mem.and_then(|m| m.pss),
            pss_anon_bytes: mem.and_then(|m| m.pss_anon),
            pss_file_bytes: mem.and_then(|m| m.pss_file),
            pss_shmem_bytes: mem.and_then(|m| m.pss_shmem),
            uss_bytes: mem.and_then(|m| m.uss),
            swap_pss_bytes: mem.and_then(|m| m.swap_pss),
            anon_huge_bytes: mem.and_then(|m| m.anon_huge),
            hugetlb_bytes: mem.and_then(|m| m.hugetlb),
            rss_peak_bytes: mem.and_then(|m| m.rss_peak),
            oom_score: mem.and_then(|m| m.oom_score),
            oom_score_adj: mem.and_then(|m| m.oom_score_adj),
            unit: p
                .cgroup
                .as_deref()
                .and_then(crate::procfs::unit::systemd_unit),
            container_id: p
                .cgroup
                .as_deref()
                .and_then(crate::procfs::unit::container_id),
            numa_local_ratio: numa.and_then(|n| n.local_ratio),
            numa_pages: numa.map(|n| n.pages.clone()),
        }
    }
}
