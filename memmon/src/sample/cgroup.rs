//! One memory cgroup as read now (cgroup v1 or v2, v1 names mapped onto
//! v2's): usage, peak, swap, limits, memory.stat, events, PSI, and the
//! derived working set and unreclaimable memory. Every value an Option:
//! a file the kernel lacks leaves it unknown, never 0.

use serde::Serialize;

/// Which cgroup interface holds the memory controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// cgroup v1: a hierarchy mounted with `-o memory`.
    V1,
    /// cgroup v2: the unified hierarchy with `memory` in cgroup.controllers.
    V2,
}

/// How much of a cgroup to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// Usage and swap: two page counters, cheap.
    Usage,
    /// Also peak, limits, events, PSI and memory.stat (which flushes the
    /// kernel's per-cpu stats).
    #[default]
    Full,
}

/// A control file that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// File name, e.g. `memory.peak`.
    pub file: &'static str,
    /// Why: absent from this kernel, permission denied, unparsable text.
    pub why: String,
}

/// Limits, bytes; `None` is no limit (`max`, or v1's "no limit" number).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Hard limit: v2 memory.max, v1 memory.limit_in_bytes.
    pub max: Option<u64>,
    /// Throttling limit: v2 memory.high.
    pub high: Option<u64>,
    /// Best-effort protection: v2 memory.low.
    pub low: Option<u64>,
    /// Hard protection: v2 memory.min.
    pub min: Option<u64>,
    /// Swap limit: v2 memory.swap.max.
    pub swap_max: Option<u64>,
    /// v1 memory.soft_limit_in_bytes.
    pub soft: Option<u64>,
    /// v1 memory.memsw.limit_in_bytes (memory + swap).
    pub memsw_max: Option<u64>,
    /// The smallest hard limit on the path to the root (v1
    /// `hierarchical_memory_limit`; v2: filled by [`crate::cgroupfs::CgroupReader`] from
    /// the ancestors it read).
    pub effective_max: Option<u64>,
}

/// One cgroup's memory, as read now. Every value is `None` when not read.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CgroupSample {
    /// Path as /proc/PID/cgroup shows it (`/` for the root).
    pub path: String,
    /// Which interface it was read through.
    pub version: Option<Version>,
    /// What this read covered (a [`crate::cgroupfs::CgroupReader`] carries the full
    /// detail of an earlier read forward: see `detail_age_ms`).
    pub detail: Detail,
    /// Memory charged, bytes (v2 memory.current, v1 usage_in_bytes).
    pub usage: Option<u64>,
    /// Largest usage seen (v2 memory.peak, 5.19+; v1 max_usage_in_bytes;
    /// read at [`Detail::Full`]).
    pub peak: Option<u64>,
    /// Swap used, bytes (v2 memory.swap.current; v1 memsw.usage − usage).
    pub swap: Option<u64>,
    /// Limits (read at [`Detail::Full`]).
    pub limits: Option<Limits>,
    /// memory.stat (read at [`Detail::Full`]).
    pub stat: Option<MemoryStat>,
    /// memory.events (hierarchical); v1: failcnt and memory.oom_control
    /// (read at [`Detail::Full`], as are `events_local` and `pressure`).
    pub events: Option<MemoryEvents>,
    /// memory.events.local (v2): this cgroup's own events.
    pub events_local: Option<MemoryEvents>,
    /// memory.pressure (v2 with PSI).
    pub pressure: Option<Pressure>,
    /// usage − inactive_file, saturating (cAdvisor's working set).
    pub working_set: Option<u64>,
    /// What reclaim cannot give back without swap: anon + shmem +
    /// slab_unreclaimable + kernel_stack + pagetables + sec_pagetables +
    /// percpu, each kernel part where memory.stat has it (v1 has none of
    /// them: there it is anon + shmem, a lower bound).
    pub unreclaimable: Option<u64>,
    /// Age of the full detail (everything but usage and swap) in this
    /// sample, milliseconds (0: read now; more: carried from an earlier
    /// full read by a [`crate::cgroupfs::CgroupReader`]).
    pub detail_age_ms: Option<u64>,
    /// Files that could not be used, each named once.
    pub missing: Vec<Missing>,
}

impl CgroupSample {
    /// Computes the derived values from what was read.
    pub fn derive(&mut self) {
        let stat = self.stat.as_ref();
        self.working_set = self
            .usage
            .zip(stat.and_then(|s| s.inactive_file))
            .map(|(u, i)| u.saturating_sub(i));
        self.unreclaimable = stat.and_then(|s| {
            let base = s.anon?.saturating_add(s.shmem?);
            Some(
                [
                    s.slab_unreclaimable,
                    s.kernel_stack,
                    s.pagetables,
                    s.sec_pagetables,
                    s.percpu,
                ]
                .into_iter()
                .flatten()
                .fold(base, u64::saturating_add),
            )
        });
    }
}

/// `memory.stat` on the v2 field set, bytes unless the name says it counts
/// events. Every field is hierarchical (this cgroup and its descendants),
/// as v2's memory.stat is; on v1 the `total_*` lines give the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStat {
    /// Anonymous memory (v1 `rss`).
    pub anon: Option<u64>,
    /// Page cache including shmem (v1 `cache`).
    pub file: Option<u64>,
    /// All kernel memory charged (v2 `kernel`; v1 from
    /// `memory.kmem.usage_in_bytes`).
    pub kernel: Option<u64>,
    /// Kernel stacks.
    pub kernel_stack: Option<u64>,
    /// Page tables.
    pub pagetables: Option<u64>,
    /// Secondary page tables (KVM and IOMMU, 6.1+).
    pub sec_pagetables: Option<u64>,
    /// Per-cpu allocations.
    pub percpu: Option<u64>,
    /// Reclaimable slab.
    pub slab_reclaimable: Option<u64>,
    /// Unreclaimable slab.
    pub slab_unreclaimable: Option<u64>,
    /// Shared memory (tmpfs, shared anonymous).
    pub shmem: Option<u64>,
    /// Network socket buffers.
    pub sock: Option<u64>,
    /// Page cache mapped into processes (v1 `mapped_file`).
    pub file_mapped: Option<u64>,
    /// Dirty page cache (v1 `dirty`).
    pub file_dirty: Option<u64>,
    /// Page cache under writeback (v1 `writeback`).
    pub file_writeback: Option<u64>,
    /// Anonymous transparent huge pages (v1 `rss_huge`).
    pub anon_thp: Option<u64>,
    /// Active anonymous LRU.
    pub active_anon: Option<u64>,
    /// Inactive anonymous LRU.
    pub inactive_anon: Option<u64>,
    /// Active file LRU.
    pub active_file: Option<u64>,
    /// Inactive file LRU.
    pub inactive_file: Option<u64>,
    /// Unevictable LRU (mlocked, ramfs).
    pub unevictable: Option<u64>,
    /// Swap cache: pages in memory that also have a copy in swap (read
    /// back in, or written out and not yet freed; v1, and v2 from Linux
    /// 6.6).
    pub swapcached: Option<u64>,
    /// Refaults of evicted anonymous pages, count.
    pub workingset_refault_anon: Option<u64>,
    /// Refaults of evicted file pages, count.
    pub workingset_refault_file: Option<u64>,
    /// Pages scanned by reclaim, count (v2 only).
    pub pgscan: Option<u64>,
    /// Pages reclaimed, count (v2 only).
    pub pgsteal: Option<u64>,
    /// Page faults, count.
    pub pgfault: Option<u64>,
    /// Major page faults, count.
    pub pgmajfault: Option<u64>,
}

/// Memory events, counts since the cgroup was made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEvents {
    /// Reclaimed under memory.low protection (v2).
    pub low: Option<u64>,
    /// Throttled over memory.high (v2).
    pub high: Option<u64>,
    /// Hit memory.max (v2).
    pub max: Option<u64>,
    /// OOM situations (v2).
    pub oom: Option<u64>,
    /// Processes killed by the OOM killer (v2 memory.events, v1
    /// memory.oom_control `oom_kill`).
    pub oom_kill: Option<u64>,
    /// Group OOM kills (v2, 5.17+).
    pub oom_group_kill: Option<u64>,
    /// v1 `memory.failcnt`: charges that hit this cgroup's limit.
    pub failcnt: Option<u64>,
    /// v1 `under_oom` (memory.oom_control): 1 while the cgroup is in OOM.
    pub under_oom: Option<u64>,
}

/// `memory.pressure` totals (PSI), microseconds stalled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pressure {
    /// Some task stalled on memory.
    pub some_total_us: u64,
    /// All non-idle tasks stalled on memory (`None` on kernels that print
    /// only the `some` line).
    pub full_total_us: Option<u64>,
}

/// Kubernetes pod QoS class, from the kubepods hierarchy level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QosClass {
    /// Pods directly under kubepods.
    Guaranteed,
    /// Under `burstable`.
    Burstable,
    /// Under `besteffort`.
    BestEffort,
}

impl QosClass {
    /// `guaranteed`, `burstable`, `besteffort` (the label value).
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "guaranteed",
            QosClass::Burstable => "burstable",
            QosClass::BestEffort => "besteffort",
        }
    }
}

/// Everything a cgroup path names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CgroupNames {
    /// Innermost systemd unit (see [`unit`]).
    pub unit: Option<String>,
    /// Kubernetes pod uid, dashed form.
    pub pod_uid: Option<String>,
    /// Container id (64 hex).
    pub container_id: Option<String>,
    /// Pod QoS class (only under kubepods).
    pub qos: Option<QosClass>,
}
