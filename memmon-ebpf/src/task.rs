//! Reads of `task_struct` / `signal_struct` fields at the offsets userspace
//! resolved from BTF (`CONFIG.task`). Every read is a
//! `bpf_probe_read_kernel`, so a wrong offset yields garbage, never a crash.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use memmon_common::{CgroupOffsets, TaskOffsets};

/// A kernel pointer to a task_struct.
#[derive(Clone, Copy)]
pub struct Task(*const u8);

impl Task {
    /// The task running this program.
    #[inline(always)]
    pub fn current() -> Self {
        Task(unsafe { bpf_get_current_task() } as *const u8)
    }

    #[inline(always)]
    fn read<T>(base: *const u8, offset: u32) -> Option<T> {
        // SAFETY: probe_read checks the address; offset came from BTF.
        unsafe { bpf_probe_read_kernel(base.add(offset as usize) as *const T) }.ok()
    }

    /// The task at `ptr` (a tracepoint's `struct task_struct *`
    /// argument).
    #[inline(always)]
    pub fn from_ptr(ptr: *const u8) -> Self {
        Task(ptr)
    }

    /// `pid` (the thread id).
    #[inline(always)]
    pub fn pid(self, off: &TaskOffsets) -> Option<u32> {
        if off.valid == 0 {
            return None;
        }
        Self::read::<i32>(self.0, off.pid).map(|p| p as u32)
    }

    /// The thread group leader.
    #[inline(always)]
    pub fn group_leader(self, off: &TaskOffsets) -> Option<Task> {
        Self::read::<*const u8>(self.0, off.group_leader).map(Task)
    }

    /// The parent's tgid.
    #[inline(always)]
    pub fn parent_tgid(self, off: &TaskOffsets) -> Option<u32> {
        let parent = Self::read::<*const u8>(self.0, off.real_parent)?;
        Self::read::<i32>(parent, off.tgid).map(|t| t as u32)
    }

    /// `start_boottime` in ns.
    #[inline(always)]
    pub fn start_boottime(self, off: &TaskOffsets) -> Option<u64> {
        Self::read::<u64>(self.0, off.start_boottime)
    }

    /// `comm` of this task.
    #[inline(always)]
    pub fn comm(self, off: &TaskOffsets) -> Option<[u8; 16]> {
        Self::read::<[u8; 16]>(self.0, off.comm)
    }

    /// The whole thread group's (minor, major) fault totals as the kernel
    /// counts them: this thread's plus those of threads already reaped.
    #[inline(always)]
    pub fn group_faults(self, off: &TaskOffsets) -> Option<(u64, u64)> {
        let min = Self::read::<u64>(self.0, off.min_flt)?;
        let maj = Self::read::<u64>(self.0, off.maj_flt)?;
        let signal = Self::read::<*const u8>(self.0, off.signal)?;
        let smin = Self::read::<u64>(signal, off.signal_min_flt)?;
        let smaj = Self::read::<u64>(signal, off.signal_maj_flt)?;
        Some((min + smin, maj + smaj))
    }

    /// `mm->brk`: the current program break (None for kernel threads).
    #[inline(always)]
    pub fn brk(self, off: &TaskOffsets) -> Option<u64> {
        let mm = Self::read::<*const u8>(self.0, off.mm)?;
        if mm.is_null() {
            return None;
        }
        Self::read::<u64>(mm, off.mm_brk)
    }

    /// True once the task has started exiting (PF_EXITING).
    #[inline(always)]
    pub fn exiting(self, off: &TaskOffsets) -> bool {
        const PF_EXITING: u32 = 0x0000_0004;
        Self::read::<u32>(self.0, off.flags).is_some_and(|f| f & PF_EXITING != 0)
    }

    /// `signal->live`: threads not yet exiting.
    #[inline(always)]
    pub fn live_threads(self, off: &TaskOffsets) -> Option<i32> {
        let signal = Self::read::<*const u8>(self.0, off.signal)?;
        Self::read::<i32>(signal, off.signal_live)
    }

    /// This task's memory controller css (`struct cgroup_subsys_state *`).
    #[inline(always)]
    pub fn memory_css(self, off: &CgroupOffsets) -> Option<*const u8> {
        if off.valid == 0 {
            return None;
        }
        let css_set = Self::read::<*const u8>(self.0, off.task_cgroups)?;
        let slot = off.css_set_subsys + 8 * off.memory_subsys_id;
        Self::read::<*const u8>(css_set, slot)
    }

    /// The kernfs node of this task's memory cgroup.
    #[inline(always)]
    fn memory_cgroup_kn(self, off: &CgroupOffsets) -> Option<*const u8> {
        let css = self.memory_css(off)?;
        let cgroup = Self::read::<*const u8>(css, off.css_cgroup)?;
        Self::read::<*const u8>(cgroup, off.cgroup_kn)
    }

    /// Id (directory inode number) of this task's memory cgroup.
    #[inline(always)]
    pub fn memory_cgroup_id(self, off: &CgroupOffsets) -> Option<u64> {
        let kn = self.memory_cgroup_kn(off)?;
        Self::read::<u64>(kn, off.kn_id)
    }

    /// Id (directory inode number) of the cgroup of css `css` (a
    /// `struct cgroup_subsys_state *`).
    #[inline(always)]
    pub fn css_cgroup_id(css: *const u8, off: &CgroupOffsets) -> Option<u64> {
        if off.valid == 0 {
            return None;
        }
        let cgroup = Self::read::<*const u8>(css, off.css_cgroup)?;
        let kn = Self::read::<*const u8>(cgroup, off.cgroup_kn)?;
        Self::read::<u64>(kn, off.kn_id)
    }

    /// A u64 at `base + offset` in kernel memory.
    #[inline(always)]
    pub fn read_u64_at(base: *const u8, offset: u32) -> Option<u64> {
        Self::read::<u64>(base, offset)
    }

    /// A u32 at `base + offset` in kernel memory.
    #[inline(always)]
    pub fn read_u32_at(base: *const u8, offset: u32) -> Option<u32> {
        Self::read::<u32>(base, offset)
    }

    /// Name of this task's memory cgroup into `out` (NUL terminated);
    /// false when it cannot be read.
    #[inline(always)]
    pub fn memory_cgroup_name(self, off: &CgroupOffsets, out: &mut [u8]) -> bool {
        let Some(kn) = self.memory_cgroup_kn(off) else {
            return false;
        };
        let Some(name) = Self::read::<*const u8>(kn, off.kn_name) else {
            return false;
        };
        // SAFETY: probe_read_str checks the address.
        unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(name, out) }.is_ok()
    }
}
