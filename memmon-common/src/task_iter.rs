//! What the `iter/task` program writes for every task in one read of a
//! BPF task iterator (instead of one pread of /proc/PID/stat per
//! process), and the offsets it reads them at.
//!
//! The values are the ones `/proc/PID/stat` prints: the thread group's
//! fault totals are the leader's record (its own plus the reaped threads'
//! in `signal_struct`) plus every other thread's own; the resident set is
//! `mm->rss_stat` as `get_mm_counter` reads it (no per-CPU sum); the start
//! time is `start_boottime`.

/// The record is the thread group's leader (the process itself).
pub const TASK_LEADER: u32 = 1;
/// The task has an mm (not a kernel thread, not past exit_mm).
pub const TASK_HAS_MM: u32 = 2;

/// One task as the iterator saw it. Threads other than the leader carry
/// only `tgid`, `pid`, `flags` and their own fault counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskRecord {
    /// Thread group id (the process's pid).
    pub tgid: u32,
    /// Thread id.
    pub pid: u32,
    /// Parent's tgid (leaders).
    pub ppid: u32,
    /// [`TASK_LEADER`], [`TASK_HAS_MM`].
    pub flags: u32,
    /// `task->start_boottime`, ns (leaders).
    pub start_boottime_ns: u64,
    /// Minor faults: the leader's own plus `signal->min_flt`; a thread's
    /// own.
    pub min_flt: u64,
    /// Major faults, as `min_flt`.
    pub maj_flt: u64,
    /// `mm->total_vm`, pages (leaders with an mm).
    pub total_vm_pages: u64,
    /// `mm->rss_stat` counters in pages: file, anon, swap entries, shmem
    /// (`memmon_common::rss` indexes), as read (may be briefly negative).
    pub rss_pages: [i64; crate::rss::RSS_MEMBERS],
    /// `task->comm` (leaders).
    pub comm: [u8; crate::COMM_LEN],
}

/// Byte offsets the iterator reads at, resolved from the kernel's BTF by
/// userspace (`valid == 0`: unknown, the program writes nothing).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskIterOffsets {
    /// 1 when every offset below was resolved.
    pub valid: u32,
    /// `task_struct.pid`.
    pub pid: u32,
    /// `task_struct.tgid` (of the parent, for the parent's pid).
    pub tgid: u32,
    /// `task_struct.comm`.
    pub comm: u32,
    /// `task_struct.start_boottime`.
    pub start_boottime: u32,
    /// `task_struct.min_flt`.
    pub min_flt: u32,
    /// `task_struct.maj_flt`.
    pub maj_flt: u32,
    /// `task_struct.signal`.
    pub signal: u32,
    /// `signal_struct.min_flt`.
    pub signal_min_flt: u32,
    /// `signal_struct.maj_flt`.
    pub signal_maj_flt: u32,
    /// `task_struct.real_parent`.
    pub real_parent: u32,
    /// Padding (was `task_struct.flags`).
    pub _pad: u32,
    /// `task_struct.mm`.
    pub mm: u32,
    /// `mm_struct.total_vm`.
    pub mm_total_vm: u32,
    /// Start of the first rss counter's value in `mm_struct`
    /// (`rss_stat[0].count` from 6.2, `rss_stat.count[0]` before).
    pub mm_rss_first: u32,
    /// Bytes from one rss counter to the next.
    pub rss_stride: u32,
}

/// Slot of `TASK_ITER_STATE`: 0 until userspace's first full walk is
/// done (swap entries read then are each process's baseline), 1 after
/// (a process first seen with swap entries swapped them out since).
pub const STATE_COUNTING: u32 = 0;

impl TaskIterOffsets {
    /// All zero: nothing known.
    pub const fn unknown() -> Self {
        TaskIterOffsets {
            valid: 0,
            pid: 0,
            tgid: 0,
            comm: 0,
            start_boottime: 0,
            min_flt: 0,
            maj_flt: 0,
            signal: 0,
            signal_min_flt: 0,
            signal_maj_flt: 0,
            real_parent: 0,
            _pad: 0,
            mm: 0,
            mm_total_vm: 0,
            mm_rss_first: 0,
            rss_stride: 0,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), u32/u64/i64 fields and a 16-byte array; 96 bytes, no
// padding.
unsafe impl aya::Pod for TaskRecord {}
#[cfg(feature = "user")]
// SAFETY: repr(C), only u32 fields.
unsafe impl aya::Pod for TaskIterOffsets {}
