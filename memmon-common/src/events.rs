//! Events sent through the `EVENTS` ring buffer: only what must never be
//! lost or aggregated (a process exit with its final counters, an OOM kill,
//! a SIGKILL sent).

use crate::{COMM_LEN, ProcCounters};

/// `ExitEvent::flags`: `counters` holds the process's kernel-map entry.
pub const EXIT_HAS_COUNTERS: u32 = 1 << 0;
/// `ExitEvent::flags`: the task fields read through BTF offsets are valid
/// (`start_boottime_ns`, `task_min_flt`, `task_maj_flt`, `ppid`).
pub const EXIT_HAS_TASK: u32 = 1 << 1;
/// `ExitEvent::flags`: `cgroup_id` is the memory cgroup's id.
pub const EXIT_MEMCG_ID: u32 = 1 << 2;

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
    /// Id of the exiting task's memory cgroup (its directory's inode number
    /// in the memory hierarchy) with [`EXIT_MEMCG_ID`], else its cgroup v2 id
    /// (`bpf_get_current_cgroup_id`).
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

/// Kind tag of an [`OomEvent`].
pub const EVENT_OOM: u32 = 2;

/// `OomEvent::flags`: `victim_cgroup_id` is known (the victim was the
/// current task when it was marked).
pub const OOM_VICTIM_IS_CURRENT: u32 = 1 << 0;
/// `OomEvent::flags`: the kernel's own `struct oom_control` of this OOM
/// kill was read (the `oom_constraint` probe saw `out_of_memory()` start):
/// `constraint` holds its `constraint`, and [`OOM_MEMCG`] says whether its
/// `memcg` was set.
pub const OOM_CONTROL_READ: u32 = 1 << 1;
/// `OomEvent::flags`: `oom_control.memcg` was set: a memory cgroup hit its
/// limit (a memcg OOM). `memory_*_pages` are that memcg's page counter at
/// the kill.
pub const OOM_MEMCG: u32 = 1 << 2;
/// `OomEvent::flags`: `oom_memcg_id` is the OOM memcg's id (its
/// directory's inode number).
pub const OOM_MEMCG_ID: u32 = 1 << 3;
/// `OomEvent::flags`: `memsw_*_pages` hold the OOM memcg's memory+swap
/// counter (cgroup v1's `memsw`).
pub const OOM_MEMSW: u32 = 1 << 4;
/// `OomEvent::flags`: `path` holds `path_levels` levels: the killing
/// task's memory cgroup and its ancestors, with their page counters at the
/// kill.
pub const OOM_PATH_READ: u32 = 1 << 5;
/// `OomEvent::flags`: the `memsw_*` of `path` levels were read.
pub const OOM_PATH_MEMSW: u32 = 1 << 6;

/// Levels of the killing task's memory cgroup path an OOM event carries
/// (the memcg and up to this many minus one ancestors).
pub const MEMCG_LEVELS: usize = 8;

/// One memory cgroup's page counters at an OOM kill.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemcgLevel {
    /// Its id (directory inode number; 0 when not read).
    pub id: u64,
    /// `memory` counter usage, pages.
    pub usage_pages: u64,
    /// `memory` counter limit, pages.
    pub max_pages: u64,
    /// `memsw` (v1 memory + swap) usage, pages.
    pub memsw_usage_pages: u64,
    /// `memsw` limit, pages.
    pub memsw_max_pages: u64,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), five u64: no padding.
unsafe impl aya::Pod for MemcgLevel {}

/// `oom_control.constraint` values (`enum oom_constraint`, unchanged since
/// 2.6.35; userspace checks them against the kernel's BTF at load).
pub mod constraint {
    /// `CONSTRAINT_NONE`: the whole machine.
    pub const NONE: u32 = 0;
    /// `CONSTRAINT_CPUSET`: the cpuset's memory nodes.
    pub const CPUSET: u32 = 1;
    /// `CONSTRAINT_MEMORY_POLICY`: an mbind/set_mempolicy node mask.
    pub const MEMORY_POLICY: u32 = 2;
    /// `CONSTRAINT_MEMCG`: a memory cgroup's limit.
    pub const MEMCG: u32 = 3;
}

/// The OOM killer chose a victim (`oom:mark_victim`). Every field of the
/// tracepoint, plus who was running when it fired (the task whose
/// allocation triggered the kill).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomEvent {
    /// Always [`EVENT_OOM`].
    pub kind: u32,
    /// Bit set of `OOM_*`.
    pub flags: u32,
    /// Victim's pid (tracepoint `pid`).
    pub victim_pid: u32,
    /// Victim's uid (tracepoint `uid`).
    pub uid: u32,
    /// Victim's `oom_score_adj` (tracepoint, a short widened to i32).
    pub oom_score_adj: i32,
    /// Killing task's thread id (the current task at the tracepoint).
    pub killer_tid: u32,
    /// Killing task's tgid.
    pub killer_tgid: u32,
    /// `oom_control.constraint` (see [`constraint`]) with
    /// [`OOM_CONTROL_READ`].
    pub constraint: u32,
    /// Victim's total virtual memory, kB (tracepoint `total_vm`).
    pub total_vm_kb: u64,
    /// Victim's anonymous resident memory, kB.
    pub anon_rss_kb: u64,
    /// Victim's file-backed resident memory, kB.
    pub file_rss_kb: u64,
    /// Victim's shared-memory resident memory, kB.
    pub shmem_rss_kb: u64,
    /// Victim's page tables, kB.
    pub pgtables_kb: u64,
    /// cgroup v2 id of the killing task.
    pub killer_cgroup_id: u64,
    /// Kernel time of the event, ns since boot (`bpf_ktime_get_boot_ns`).
    pub boot_ns: u64,
    /// Victim's comm (tracepoint `comm`, NUL padded).
    pub victim_comm: [u8; COMM_LEN],
    /// Killing task's comm.
    pub killer_comm: [u8; COMM_LEN],
    /// Name (last path component) of the killing task's cgroup-v1 memory
    /// cgroup, NUL padded; empty when the offsets are unknown.
    pub killer_memcg: [u8; MEMCG_NAME_LEN],
    /// Id of the memory cgroup whose limit was hit (`oom_control.memcg`),
    /// with [`OOM_MEMCG_ID`].
    pub oom_memcg_id: u64,
    /// Its memory counter at the kill, pages (`page_counter.usage`), with
    /// [`OOM_MEMCG`].
    pub memory_usage_pages: u64,
    /// Its memory limit at the kill, pages (`page_counter.max`).
    pub memory_max_pages: u64,
    /// Its memory+swap counter (v1 `memsw`), pages, with [`OOM_MEMSW`].
    pub memsw_usage_pages: u64,
    /// Its memory+swap limit, pages.
    pub memsw_max_pages: u64,
    /// Levels of `path` read, with [`OOM_PATH_READ`].
    pub path_levels: u32,
    /// Padding to 8 bytes.
    pub _pad: u32,
    /// The killing task's memory cgroup, then its ancestors, with their
    /// page counters at the kill.
    pub path: [MemcgLevel; MEMCG_LEVELS],
}

/// Bytes kept of a memory cgroup's name.
pub const MEMCG_NAME_LEN: usize = 64;

#[cfg(feature = "user")]
// SAFETY: repr(C); eight u32/i32 (32 bytes), seven u64, two 16-byte
// arrays and a 64-byte one (184 bytes), five u64, two u32, then an array
// of 40-byte u64 structs: no padding.
unsafe impl aya::Pod for OomEvent {}

/// Kind tag of a [`KillEvent`].
pub const EVENT_KILL: u32 = 3;

/// `KillEvent::flags`: `sender_cgroup_id` is the sender's memory cgroup id
/// (its directory's inode number, as in [`ExitEvent::cgroup_id`]); else
/// its cgroup v2 id (`bpf_get_current_cgroup_id`).
pub const KILL_SENDER_MEMCG_ID: u32 = 1 << 0;
/// `KillEvent::flags`: `sender_tgid`'s group leader comm was read (else
/// `sender_comm` is the sending thread's).
pub const KILL_SENDER_LEADER_COMM: u32 = 1 << 1;
/// `KillEvent::flags`: `target_cgroup_id` is the target's memory cgroup id,
/// read from the target task when the signal was generated (it is alive
/// then, whatever happens to it before userspace reads the record).
pub const KILL_TARGET_MEMCG_ID: u32 = 1 << 2;

/// SIGKILL, the only signal the kill probe reports.
pub const SIGKILL: i32 = 9;

/// A SIGKILL was generated (`signal:signal_generate` with `sig == 9`,
/// filtered in the kernel): by userspace (`kill -9`, systemd-oomd,
/// earlyoom, the kubelet) or the kernel itself. The sender is the task
/// running when it fired; the target comes from the tracepoint record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KillEvent {
    /// Always [`EVENT_KILL`].
    pub kind: u32,
    /// Bit set of `KILL_*`.
    pub flags: u32,
    /// Sending thread's id.
    pub sender_tid: u32,
    /// Sending process (tgid).
    pub sender_tgid: u32,
    /// Target thread's id (tracepoint `pid`; the process id for a signal
    /// to a whole process, see `group`).
    pub target_pid: u32,
    /// Signal number (tracepoint `sig`, always [`SIGKILL`]).
    pub sig: i32,
    /// `si_code` (tracepoint `code`): 0 SI_USER (kill(2)), 0x80 SI_KERNEL,
    /// negative for queued/tkill signals.
    pub code: i32,
    /// 1 when sent to the whole thread group (tracepoint `group`).
    pub group: i32,
    /// Tracepoint `result`: 0 delivered, 1 ignored, 2 already pending,
    /// 3 overflow, 4 info lost.
    pub result: i32,
    /// Padding to 8 bytes.
    pub _pad: u32,
    /// The sender's memory cgroup id (see [`KILL_SENDER_MEMCG_ID`]).
    pub sender_cgroup_id: u64,
    /// Kernel time, ns since boot (`bpf_ktime_get_boot_ns`).
    pub boot_ns: u64,
    /// Sender's comm (NUL padded).
    pub sender_comm: [u8; COMM_LEN],
    /// Target's comm (tracepoint `comm`, NUL padded).
    pub target_comm: [u8; COMM_LEN],
    /// The target's memory cgroup id (see [`KILL_TARGET_MEMCG_ID`]; 0 when
    /// not read).
    pub target_cgroup_id: u64,
}

#[cfg(feature = "user")]
// SAFETY: repr(C); ten u32/i32 (40 bytes), two u64, two 16-byte arrays,
// one u64: no padding.
unsafe impl aya::Pod for KillEvent {}
