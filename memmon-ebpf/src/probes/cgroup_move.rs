//! `cgroup:cgroup_attach_task`: a task was moved to another cgroup (systemd
//! and container runtimes move processes after they start). The moved
//! thread's id goes into `MOVED_TASKS`; userspace takes the ids each pass
//! and reads those processes' memory cgroup again, so rollups and
//! per-cgroup reads follow the move. The tracepoint fires once per task
//! and hierarchy (a v1 move touches several): the map keeps each id once.
//! A full map is counted in `Stat::MovedTasksMapFull` (userspace then
//! still finds the move under its cost guard, later).

use aya_ebpf::{
    bindings::BPF_ANY, macros::map, macros::tracepoint, maps::HashMap, programs::TracePointContext,
};
use memmon_common::Stat;

use crate::maps::bump_stat;

/// Offset of `pid` in the cgroup_attach_task record (checked against this
/// kernel's format before the probe attaches).
const PID: usize = memmon_common::layouts::cgroup::ATTACH_PID as usize;

/// Thread ids moved since userspace last took them.
#[map]
pub static MOVED_TASKS: HashMap<u32, u32> = HashMap::with_max_entries(8192, 0);

#[tracepoint]
pub fn cgroup_attach_task(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::CgroupMoveEvents);
    // SAFETY: offset checked against this kernel's format at load.
    let Ok(pid) = (unsafe { ctx.read_at::<i32>(PID) }) else {
        return 0;
    };
    if pid <= 0 {
        return 0;
    }
    if MOVED_TASKS
        .insert(pid as u32, 1u32, BPF_ANY as u64)
        .is_err()
    {
        bump_stat(Stat::MovedTasksMapFull);
    }
    0
}
