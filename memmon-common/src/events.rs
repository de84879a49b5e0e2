//! Events sent through the `EVENTS` ring buffer: only what must never be
//! lost or aggregated (a process exit carrying its final counters).

use crate::{COMM_LEN, ProcCounters};

/// `ExitEvent::flags`: `counters` holds the process's kernel-map entry.
pub const EXIT_HAS_COUNTERS: u32 = 1 << 0;
/// `ExitEvent::flags`: the task fields read through BTF offsets are valid
/// (`start_boottime_ns`, `task_min_flt`, `task_maj_flt`, `ppid`).
pub const EXIT_HAS_TASK: u32 = 1 << 1;

/// Kind tag at the start of every ring-buffer record.
pub const EVENT_EXIT: u32 = 1;

/// A thread group ended (`sched:sched_process_exit` with `group_dead`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    /// Always [`EVENT_EXIT`].
    pub kind: u32,
    /// Bit set of `EXIT_HAS_*`.
    pub flags: u32,
    /// Process id (tgid) in the initial pid namespace.
    pub tgid: u32,
    /// Parent's tgid (0 when unknown).
    pub ppid: u32,
    /// `task_struct.start_boottime` of the group leader, ns since boot
    /// (what /proc/PID/stat field 22 reports in clock ticks).
    pub start_boottime_ns: u64,
    /// The kernel's own fault totals for the whole thread group
    /// (`signal->min_flt + task->min_flt`), when `EXIT_HAS_TASK`.
    pub task_min_flt: u64,
    /// Same for major faults.
    pub task_maj_flt: u64,
    /// cgroup v2 id of the exiting task (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    /// Group leader's comm (NUL padded).
    pub comm: [u8; COMM_LEN],
    /// The process's counters, when `EXIT_HAS_COUNTERS`.
    pub counters: ProcCounters,
}

#[cfg(feature = "user")]
// SAFETY: repr(C); u32 pairs and u64 fields, a 16-byte array at an 8-byte
// boundary, then u64 fields: no padding.
unsafe impl aya::Pod for ExitEvent {}
