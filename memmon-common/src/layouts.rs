//! Where the kernel programs find fields in tracepoint records. Layouts that
//! differ between kernels (mm_migrate_pages gained `large_folio_split`;
//! kmem_cache_alloc gained `name`) are read from tracefs at load time into
//! [`TracepointOffsets`]; the others are fixed here and checked against
//! this kernel's format files before their probe attaches (a mismatch makes
//! the probe unavailable, never a misread).

/// One tracepoint's fixed fields: `(category, event, [(field, offset)])`.
pub type FixedLayout = (&'static str, &'static str, &'static [(&'static str, u32)]);

/// Fixed offsets, by tracepoint.
pub const FIXED: &[FixedLayout] = &[
    (
        "oom",
        "mark_victim",
        &[
            ("pid", oom::PID),
            ("comm", oom::COMM_LOC),
            ("total_vm", oom::TOTAL_VM),
            ("anon_rss", oom::ANON_RSS),
            ("file_rss", oom::FILE_RSS),
            ("shmem_rss", oom::SHMEM_RSS),
            ("uid", oom::UID),
            ("pgtables", oom::PGTABLES),
            ("oom_score_adj", oom::OOM_SCORE_ADJ),
        ],
    ),
    (
        "kmem",
        "kmalloc",
        &[("bytes_req", kmalloc::REQ), ("bytes_alloc", kmalloc::ALLOC)],
    ),
    ("sched", "sched_move_numa", &[("tgid", numa::MOVE_TGID)]),
    (
        "sched",
        "sched_swap_numa",
        &[
            ("src_tgid", numa::SWAP_SRC_TGID),
            ("dst_tgid", numa::SWAP_DST_TGID),
        ],
    ),
    ("sched", "sched_process_exit", &[("comm", exit::COMM)]),
    ("syscalls", "sys_exit_mmap", &[("ret", syscalls::RET)]),
    ("syscalls", "sys_exit_brk", &[("ret", syscalls::RET)]),
    (
        "cgroup",
        "cgroup_attach_task",
        &[("pid", cgroup::ATTACH_PID)],
    ),
];

/// oom:mark_victim.
pub mod oom {
    /// `pid`.
    pub const PID: u32 = 8;
    /// `comm` (`__data_loc`).
    pub const COMM_LOC: u32 = 12;
    /// `total_vm` (kB).
    pub const TOTAL_VM: u32 = 16;
    /// `anon_rss` (kB).
    pub const ANON_RSS: u32 = 24;
    /// `file_rss` (kB).
    pub const FILE_RSS: u32 = 32;
    /// `shmem_rss` (kB).
    pub const SHMEM_RSS: u32 = 40;
    /// `uid`.
    pub const UID: u32 = 48;
    /// `pgtables` (kB).
    pub const PGTABLES: u32 = 56;
    /// `oom_score_adj` (short).
    pub const OOM_SCORE_ADJ: u32 = 64;
}

/// kmem:kmalloc.
pub mod kmalloc {
    /// `bytes_req`.
    pub const REQ: u32 = 24;
    /// `bytes_alloc`.
    pub const ALLOC: u32 = 32;
}

/// sched:sched_move_numa and sched:sched_swap_numa.
pub mod numa {
    /// sched_move_numa `tgid`.
    pub const MOVE_TGID: u32 = 12;
    /// sched_swap_numa `src_tgid`.
    pub const SWAP_SRC_TGID: u32 = 12;
    /// sched_swap_numa `dst_tgid`.
    pub const SWAP_DST_TGID: u32 = 32;
}

/// sched:sched_process_exit.
pub mod exit {
    /// `comm`.
    pub const COMM: u32 = 8;
}

/// cgroup:cgroup_attach_task.
pub mod cgroup {
    /// `pid` (the moved task's thread id).
    pub const ATTACH_PID: u32 = 24;
}

/// syscalls:sys_exit_*.
pub mod syscalls {
    /// `ret`.
    pub const RET: u32 = 16;
}

/// Offsets read from this kernel's tracefs formats at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointOffsets {
    /// mm_migrate_pages `succeeded`.
    pub migrate_succeeded: u32,
    /// mm_migrate_pages `failed`.
    pub migrate_failed: u32,
    /// mm_migrate_pages `reason`.
    pub migrate_reason: u32,
    /// kmem_cache_alloc `name` (`__data_loc`), 0 when the kernel's record
    /// has none (before 6.2).
    pub slab_name: u32,
    /// kmem_cache_alloc `bytes_req`.
    pub slab_req: u32,
    /// kmem_cache_alloc `bytes_alloc`.
    pub slab_alloc: u32,
    /// signal_generate `sig`.
    pub signal_sig: u32,
    /// signal_generate `code`.
    pub signal_code: u32,
    /// signal_generate `comm` (char[16], the target's).
    pub signal_comm: u32,
    /// signal_generate `pid` (the target's).
    pub signal_pid: u32,
    /// signal_generate `group`.
    pub signal_group: u32,
    /// signal_generate `result`.
    pub signal_result: u32,
}

/// Tracepoints whose fields are read at the offsets of
/// [`TracepointOffsets`] (found in this kernel's format at load): a field
/// missing from the format makes the probe unavailable, never a misread.
pub const READ_AT_LOAD: &[(&str, &str, &[&str])] = &[(
    "signal",
    "signal_generate",
    &["sig", "code", "comm", "pid", "group", "result"],
)];

impl TracepointOffsets {
    /// The layout of the kernels memmon was written on (6.18), used until
    /// userspace reads this kernel's.
    pub const fn default_layout() -> Self {
        TracepointOffsets {
            migrate_succeeded: 8,
            migrate_failed: 16,
            migrate_reason: 60,
            slab_name: 24,
            slab_req: 32,
            slab_alloc: 40,
            signal_sig: 8,
            signal_code: 16,
            signal_comm: 20,
            signal_pid: 36,
            signal_group: 40,
            signal_result: 44,
        }
    }
}
