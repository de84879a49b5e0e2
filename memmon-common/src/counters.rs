//! Per-process counters aggregated in the kernel, one entry per tgid in the
//! `PROC_COUNTERS` hash map. The entry is removed when the process exits and
//! its final value travels to userspace inside an [`crate::ExitEvent`].

/// Counters for one process (thread group), summed over its threads.
///
/// Adding a field here adds it to the exit event and to the userspace
/// reader at once; keep every field a `u64` so the struct has no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcCounters {
    /// User-space page faults (`exceptions:page_fault_user`) plus kernel-mode
    /// faults on user addresses (`exceptions:page_fault_kernel`), i.e. every
    /// fault the kernel charges to the task's min_flt/maj_flt.
    pub faults: u64,
    /// Faults whose error code has the WRITE bit.
    pub write_faults: u64,
    /// Write faults on a present page (error code PROT|WRITE): copy-on-write
    /// after fork, first write to the shared zero page, write-protect for
    /// dirty tracking.
    pub cow_faults: u64,
    /// Major faults (perf software event PAGE_FAULTS_MAJ, period 1).
    pub major_faults: u64,
    /// Pages moved to swap (`kmem:rss_stat` MM_SWAPENTS grew for its mm).
    pub swap_out_pages: u64,
    /// Swap entries released (MM_SWAPENTS shrank): pages swapped back in,
    /// or swapped-out memory unmapped by the process.
    pub swap_in_pages: u64,
    /// Direct or memcg reclaim episodes the process waited in.
    pub reclaim_stalls: u64,
    /// Total time spent in those episodes, ns.
    pub reclaim_stall_ns: u64,
    /// Pages migrated by migrations this process ran (`migrate:mm_migrate_pages`,
    /// any reason: compaction, NUMA balancing, move_pages, ...).
    pub pages_migrated: u64,
    /// Pages such migrations failed to move.
    pub pages_migrate_failed: u64,
    /// Of `pages_migrated`, those moved for NUMA placement (reasons
    /// syscall_or_cpuset, mempolicy_mbind, numa_misplaced, demotion).
    pub numa_pages_migrated: u64,
    /// Times the scheduler moved or swapped one of its threads to another
    /// NUMA node (`sched:sched_move_numa`, `sched:sched_swap_numa`).
    pub numa_task_moves: u64,
    /// Successful mmap calls (`syscalls:sys_enter/exit_mmap`).
    pub mmap_calls: u64,
    /// Bytes they mapped.
    pub mmap_bytes: u64,
    /// Of those, anonymous (MAP_ANONYMOUS).
    pub mmap_anon_bytes: u64,
    /// Of those, file-backed.
    pub mmap_file_bytes: u64,
    /// mmap calls that failed.
    pub mmap_failed: u64,
    /// munmap calls.
    pub munmap_calls: u64,
    /// Bytes they asked to unmap.
    pub munmap_bytes: u64,
    /// mremap calls.
    pub mremap_calls: u64,
    /// brk calls (including queries).
    pub brk_calls: u64,
    /// Bytes the program break grew.
    pub brk_grow_bytes: u64,
    /// Bytes it shrank.
    pub brk_shrink_bytes: u64,
    /// Slab objects allocated in its context (`kmem:kmem_cache_alloc`).
    pub slab_allocs: u64,
    /// Their bytes (object sizes).
    pub slab_alloc_bytes: u64,
    /// kmalloc calls in its context (`kmem:kmalloc`).
    pub kmalloc_allocs: u64,
    /// Bytes those kmalloc calls requested.
    pub kmalloc_req_bytes: u64,
    /// Bytes they got (the size class): the difference is internal waste.
    pub kmalloc_alloc_bytes: u64,
    /// Pages the buddy allocator gave in its context (`kmem:mm_page_alloc`,
    /// 2^order each).
    pub page_allocs: u64,
}

impl ProcCounters {
    /// Number of `u64` fields.
    pub const LEN: usize = core::mem::size_of::<ProcCounters>() / 8;

    /// Every field zero.
    // SAFETY: repr(C) struct of only u64 fields: all-zero bytes are valid.
    pub const ZERO: ProcCounters = unsafe { core::mem::zeroed() };

    /// The fields as a slice, in declaration order.
    pub fn as_slice(&self) -> &[u64] {
        // SAFETY: repr(C) struct of only u64 fields: same layout as [u64; LEN].
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u64>(), Self::LEN) }
    }

    /// The fields as a mutable slice, in declaration order.
    pub fn as_mut_slice(&mut self) -> &mut [u64] {
        // SAFETY: as above.
        unsafe { core::slice::from_raw_parts_mut((self as *mut Self).cast::<u64>(), Self::LEN) }
    }

    /// `self - earlier`, field by field, saturating at zero.
    pub fn saturating_sub(&self, earlier: &ProcCounters) -> ProcCounters {
        let mut out = *self;
        for (o, e) in out.as_mut_slice().iter_mut().zip(earlier.as_slice()) {
            *o = o.saturating_sub(*e);
        }
        out
    }

    /// True when no field moved below `earlier` (a counter never shrinks
    /// for one process; a shrink means the pid now names another process).
    pub fn dominates(&self, earlier: &ProcCounters) -> bool {
        self.as_slice()
            .iter()
            .zip(earlier.as_slice())
            .all(|(a, b)| a >= b)
    }

    /// True when every field is zero.
    pub fn is_zero(&self) -> bool {
        self.as_slice().iter().all(|v| *v == 0)
    }
}

/// Bits of the x86 page-fault error code (arch/x86/include/asm/trap_pf.h).
pub mod fault_error_code {
    /// The page was present: a protection fault, not a not-present fault.
    pub const PROT: u64 = 1 << 0;
    /// The access was a write.
    pub const WRITE: u64 = 1 << 1;
    /// The access came from user mode.
    pub const USER: u64 = 1 << 2;
}

/// Highest user-space address on x86-64 with 4-level or 5-level paging
/// (`TASK_SIZE_MAX` with LA57); kernel-mode faults above it are not charged to
/// a process.
pub const USER_ADDR_MAX: u64 = 0x00ff_ffff_ffff_f000;

#[cfg(feature = "user")]
// SAFETY: repr(C), only u64 fields, no padding.
unsafe impl aya::Pod for ProcCounters {}

/// What the processes that exited from one memory cgroup left behind,
/// summed in the kernel by the exit probe into the pinned `MEMCG_EXITS`
/// hash map (key: the memory cgroup id, as [`crate::ExitEvent::cgroup_id`]
/// with `EXIT_MEMCG_ID`), so a restart of memmon loses none of it: the
/// per-cgroup totals of exited processes never go backwards.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemcgExits {
    /// Processes (thread groups) that exited.
    pub exited: u64,
    /// Their minor faults, the kernel's own totals for the whole group
    /// (`signal->min_flt + task->min_flt`), where the BTF offsets are known.
    pub min_flt: u64,
    /// Their major faults, likewise.
    pub maj_flt: u64,
    /// How many of `exited` had their fault totals read (the rest: BTF
    /// offsets unknown).
    pub with_faults: u64,
    /// Their probe counters summed (what [`ProcCounters`] held for each at
    /// its exit), so the cgroup's probe-counted totals survive a restart
    /// too.
    pub counters: ProcCounters,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only u64 fields (ProcCounters is all u64): no padding.
unsafe impl aya::Pod for MemcgExits {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_view_covers_every_field() {
        let c = ProcCounters {
            faults: 1,
            write_faults: 2,
            cow_faults: 3,
            major_faults: 4,
            ..Default::default()
        };
        assert_eq!(&c.as_slice()[..4], &[1, 2, 3, 4]);
        assert_eq!(c.as_slice().len(), ProcCounters::LEN);
        let earlier = ProcCounters { faults: 2, ..c };
        assert!(
            c.saturating_sub(&earlier)
                .as_slice()
                .iter()
                .all(|v| *v == 0)
        );
        assert!(!c.dominates(&earlier));
        assert!(c.saturating_sub(&earlier).is_zero());
    }
}
