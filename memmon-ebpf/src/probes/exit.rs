//! `sched:sched_process_exit`: when the last thread of a process exits, its
//! counters go to userspace in one ring-buffer record (with the kernel's own
//! fault totals and start time) and its map entry is deleted, so the maps
//! hold live processes only (the rss_stat mm entries included). Its count
//! and fault totals are also added to its memory cgroup's entry in the
//! pinned `MEMCG_EXITS` map (even when the ring buffer is full), so the
//! per-cgroup totals of exited processes survive a restart of memmon. The
//! order matters to the reader: the event is submitted, then the cgroup's
//! totals grow, then the process leaves `PROC_COUNTERS`.

use aya_ebpf::{
    helpers::bpf_get_current_cgroup_id, macros::tracepoint, programs::TracePointContext,
};
use memmon_common::{
    ExitEvent, ProcCounters, Stat,
    events::{EVENT_EXIT, EXIT_HAS_COUNTERS, EXIT_HAS_TASK, EXIT_MEMCG_ID},
};

use crate::{
    maps::{EVENTS, PROC_COUNTERS, add, bump_stat, config, current_tgid, memcg_exits},
    task::Task,
};

/// Offset of `comm` in the sched_process_exit record.
const COMM_OFFSET: usize = memmon_common::layouts::exit::COMM as usize;

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let task = Task::current();
    let group_dead = if cfg.exit_group_dead_offset != 0 {
        // SAFETY: userspace read the offset from this kernel's format file.
        let v: u8 = unsafe { ctx.read_at(cfg.exit_group_dead_offset as usize) }.unwrap_or(0);
        v != 0
    } else if cfg.task.valid != 0 {
        task.live_threads(&cfg.task) == Some(0)
    } else {
        // Neither source: treat the leader's exit as the group's.
        let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
        (pid_tgid >> 32) as u32 == pid_tgid as u32
    };
    if !group_dead {
        return 0;
    }
    bump_stat(Stat::ExitEvents);
    let tgid = current_tgid();
    // The swap change since the task iterator last read it, before the
    // counters are copied out.
    // SAFETY: helper without inputs.
    super::task_iter::final_swap(
        unsafe { aya_ebpf::helpers::bpf_get_current_task() } as *const u8,
        tgid,
    );
    match EVENTS.reserve::<ExitEvent>(0) {
        Some(mut slot) => {
            let event = slot.as_mut_ptr();
            // SAFETY: `event` points at reserved ring-buffer memory that we
            // fill completely before submitting.
            unsafe {
                (*event).kind = EVENT_EXIT;
                (*event).flags = 0;
                (*event).tgid = tgid;
                (*event).ppid = 0;
                (*event).start_boottime_ns = 0;
                (*event).task_min_flt = 0;
                (*event).task_maj_flt = 0;
                (*event).cgroup_id = match task.memory_cgroup_id(&cfg.cgroup) {
                    Some(id) => {
                        (*event).flags |= EXIT_MEMCG_ID;
                        id
                    }
                    None => bpf_get_current_cgroup_id(),
                };
                (*event).comm = ctx.read_at::<[u8; 16]>(COMM_OFFSET).unwrap_or([0; 16]);
                (*event).counters = Default::default();
                if let Some(c) = PROC_COUNTERS.get_ptr(tgid) {
                    (*event).counters = *c;
                    (*event).flags |= EXIT_HAS_COUNTERS;
                }
                if cfg.task.valid != 0 {
                    fill_task_fields(&mut *event, task, &cfg.task);
                }
            }
            slot.submit(0);
        }
        None => bump_stat(Stat::EventsLost),
    }
    if let Some(id) = task.memory_cgroup_id(&cfg.cgroup)
        && let Some(totals) = memcg_exits(id)
    {
        // SAFETY: `totals` points into a live MEMCG_EXITS value.
        unsafe {
            add(&raw mut (*totals).exited, 1);
            if cfg.task.valid != 0
                && let Some((min, maj)) = task.group_faults(&cfg.task)
            {
                add(&raw mut (*totals).min_flt, min);
                add(&raw mut (*totals).maj_flt, maj);
                add(&raw mut (*totals).with_faults, 1);
            }
            if let Some(c) = PROC_COUNTERS.get_ptr(tgid) {
                let src = c.cast::<u64>();
                let dst = (&raw mut (*totals).counters).cast::<u64>();
                for i in 0..ProcCounters::LEN {
                    let v = *src.add(i);
                    if v != 0 {
                        add(dst.add(i), v);
                    }
                }
            }
        }
    }
    let _ = PROC_COUNTERS.remove(tgid);
    super::address_space::forget(tgid);
    0
}

#[inline(always)]
fn fill_task_fields(event: &mut ExitEvent, task: Task, off: &memmon_common::TaskOffsets) {
    let Some(leader) = task.group_leader(off) else {
        return;
    };
    let Some(start) = leader.start_boottime(off) else {
        return;
    };
    let Some((min, maj)) = task.group_faults(off) else {
        return;
    };
    event.start_boottime_ns = start;
    event.task_min_flt = min;
    event.task_maj_flt = maj;
    if let Some(comm) = leader.comm(off) {
        event.comm = comm;
    }
    event.ppid = task.parent_tgid(off).unwrap_or(0);
    event.flags |= EXIT_HAS_TASK;
}
