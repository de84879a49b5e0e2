//! Load-time configuration written into the kernel programs' read-only
//! globals by userspace before the programs are verified.
//!
//! aya-ebpf has no CO-RE field relocation, so the userspace side reads the
//! offsets of the few `task_struct` fields memmon needs from the kernel's BTF
//! (/sys/kernel/btf/vmlinux) and passes them in here.

/// Byte offsets of kernel struct fields; `valid == 0` means unknown and the
/// programs skip every read that needs them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
    /// 1 when every offset below was resolved.
    pub valid: u32,
    /// `task_struct.start_boottime` (u64 ns).
    pub start_boottime: u32,
    /// `task_struct.min_flt` (unsigned long).
    pub min_flt: u32,
    /// `task_struct.maj_flt` (unsigned long).
    pub maj_flt: u32,
    /// `task_struct.signal` (pointer to signal_struct).
    pub signal: u32,
    /// `signal_struct.min_flt`: faults of threads already reaped.
    pub signal_min_flt: u32,
    /// `signal_struct.maj_flt`.
    pub signal_maj_flt: u32,
    /// `task_struct.group_leader` (pointer).
    pub group_leader: u32,
    /// `task_struct.real_parent` (pointer).
    pub real_parent: u32,
    /// `task_struct.tgid` (pid_t).
    pub tgid: u32,
    /// `task_struct.comm` (char[16]).
    pub comm: u32,
    /// `signal_struct.live` (atomic_t): 0 once the last thread is exiting,
    /// used when the exit tracepoint has no `group_dead` field (< 6.16).
    pub signal_live: u32,
    /// `task_struct.mm` (pointer to mm_struct).
    pub mm: u32,
    /// `mm_struct.brk`: the current program break.
    pub mm_brk: u32,
    /// `task_struct.flags` (PF_EXITING: the task is past exit's start).
    pub flags: u32,
    /// `task_struct.pid` (pid_t: the thread id).
    pub pid: u32,
}

/// Offsets to a task's memory cgroup (v1 memory controller, or the v2
/// cgroup the memory controller charges):
/// `task->cgroups->subsys[memory_subsys_id]->cgroup->kn->{name,id}`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupOffsets {
    /// 1 when every offset below was resolved.
    pub valid: u32,
    /// `task_struct.cgroups` (pointer to css_set).
    pub task_cgroups: u32,
    /// `css_set.subsys` (array of css pointers).
    pub css_set_subsys: u32,
    /// Value of `memory_cgrp_id` in `enum cgroup_subsys_id`.
    pub memory_subsys_id: u32,
    /// `cgroup_subsys_state.cgroup` (pointer).
    pub css_cgroup: u32,
    /// `cgroup.kn` (pointer to kernfs_node).
    pub cgroup_kn: u32,
    /// `kernfs_node.name` (char pointer).
    pub kn_name: u32,
    /// `kernfs_node.id` (u64; the cgroup directory's inode number on
    /// 64-bit kernels, and what `bpf_get_current_cgroup_id` returns).
    pub kn_id: u32,
}

impl CgroupOffsets {
    /// All zero: nothing known.
    pub const fn unknown() -> Self {
        CgroupOffsets {
            valid: 0,
            task_cgroups: 0,
            css_set_subsys: 0,
            memory_subsys_id: 0,
            css_cgroup: 0,
            cgroup_kn: 0,
            kn_name: 0,
            kn_id: 0,
        }
    }
}

/// Everything the kernel programs read from `.rodata` at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// Offsets into task_struct / signal_struct.
    pub task: TaskOffsets,
    /// Offset of `group_dead` in the `sched_process_exit` record, 0 when this
    /// kernel's tracepoint lacks it (then `signal_live` decides).
    pub exit_group_dead_offset: u32,
    /// Padding to a multiple of 8 bytes.
    pub _pad: u32,
    /// Offsets to a task's memory cgroup (OOM and exit events).
    pub cgroup: CgroupOffsets,
    /// Tracepoint fields whose place differs between kernels.
    pub tp: crate::layouts::TracepointOffsets,
}

impl TaskOffsets {
    /// All zero: nothing known.
    pub const fn unknown() -> Self {
        TaskOffsets {
            valid: 0,
            start_boottime: 0,
            min_flt: 0,
            maj_flt: 0,
            signal: 0,
            signal_min_flt: 0,
            signal_maj_flt: 0,
            group_leader: 0,
            real_parent: 0,
            tgid: 0,
            comm: 0,
            signal_live: 0,
            mm: 0,
            mm_brk: 0,
            flags: 0,
            pid: 0,
        }
    }
}

impl KernelConfig {
    /// The value compiled into the object before userspace fills it in.
    pub const fn unknown() -> Self {
        KernelConfig {
            task: TaskOffsets::unknown(),
            exit_group_dead_offset: 0,
            _pad: 0,
            cgroup: CgroupOffsets::unknown(),
            tp: crate::layouts::TracepointOffsets::default_layout(),
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only u32 fields, no padding.
unsafe impl aya::Pod for TaskOffsets {}
#[cfg(feature = "user")]
// SAFETY: repr(C), only u32 fields, no padding.
unsafe impl aya::Pod for CgroupOffsets {}
#[cfg(feature = "user")]
// SAFETY: repr(C), Pod structs of u32 fields and two u32: no padding.
unsafe impl aya::Pod for KernelConfig {}

/// What the OOM programs read of the kernel's own account of an OOM kill:
/// `struct oom_control` (saved by the `oom_constraint` kprobe on
/// `out_of_memory()`, read at `oom:mark_victim`) and, for a memcg OOM, the
/// page counters of `oom_control.memcg`. Its own global (`OOM_CONFIG`),
/// so the other programs' copy of [`KernelConfig`] does not grow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomOffsets {
    /// 1 when the memcg offsets below (all but `oc_*` and the memsw one)
    /// were resolved.
    pub valid: u32,
    /// `oom_control.memcg` (pointer to mem_cgroup).
    pub oc_memcg: u32,
    /// `oom_control.constraint` (enum oom_constraint).
    pub oc_constraint: u32,
    /// `mem_cgroup.css` (struct cgroup_subsys_state, embedded).
    pub memcg_css: u32,
    /// `mem_cgroup.memory` (struct page_counter, embedded).
    pub memcg_memory: u32,
    /// 1 when `memcg_memsw` was resolved (cgroup v1's memory+swap counter).
    pub memsw_valid: u32,
    /// `mem_cgroup.memsw` (struct page_counter, embedded).
    pub memcg_memsw: u32,
    /// `page_counter.usage` (atomic_long_t, pages).
    pub counter_usage: u32,
    /// `page_counter.max` (unsigned long, pages).
    pub counter_max: u32,
    /// `cgroup_subsys_state.parent` (pointer).
    pub css_parent: u32,
    /// 1 when the kprobe's `oom_control` offsets (`oc_*`) were resolved.
    pub oc_valid: u32,
    /// Padding to a multiple of 8 bytes.
    pub _pad: u32,
}

impl OomOffsets {
    /// All zero: nothing known.
    pub const fn unknown() -> Self {
        OomOffsets {
            valid: 0,
            oc_memcg: 0,
            oc_constraint: 0,
            memcg_css: 0,
            memcg_memory: 0,
            memsw_valid: 0,
            memcg_memsw: 0,
            counter_usage: 0,
            counter_max: 0,
            css_parent: 0,
            oc_valid: 0,
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), plain u32 fields, no padding.
unsafe impl aya::Pod for OomOffsets {}
