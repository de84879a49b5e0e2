//! `signal:signal_generate`, filtered in the kernel to SIGKILL: every
//! `kill -9` (systemd-oomd, earlyoom, the kubelet, a shell) becomes one
//! record through the `EVENTS` ring buffer with the sender (the running
//! task: pid, comm, memory cgroup) and the target (pid and comm from the
//! tracepoint record, at offsets read from this kernel's format at load).
//! Other signals return before any work; a failed reservation is counted
//! in `Stat::KillEventsLost`.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_boot_ns,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use memmon_common::{
    KillEvent, Stat,
    events::{EVENT_KILL, KILL_SENDER_LEADER_COMM, KILL_SENDER_MEMCG_ID, SIGKILL},
};

use crate::{
    maps::{EVENTS, bump_stat, config},
    task::Task,
};

#[tracepoint]
pub fn signal_generate_kill(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let tp = &cfg.tp;
    // SAFETY: offset from this kernel's signal_generate format.
    let sig: i32 = unsafe { ctx.read_at(tp.signal_sig as usize) }.unwrap_or(0);
    if sig != SIGKILL {
        return 0;
    }
    bump_stat(Stat::KillEvents);
    let Some(mut slot) = EVENTS.reserve::<KillEvent>(0) else {
        bump_stat(Stat::KillEventsLost);
        return 0;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let e = slot.as_mut_ptr();
    let task = Task::current();
    // SAFETY: `e` is reserved ring-buffer memory, filled completely before
    // submit; record offsets from this kernel's signal_generate format.
    unsafe {
        (*e).kind = EVENT_KILL;
        (*e).flags = 0;
        (*e).sender_tid = pid_tgid as u32;
        (*e).sender_tgid = (pid_tgid >> 32) as u32;
        (*e).target_pid = ctx.read_at::<i32>(tp.signal_pid as usize).unwrap_or(0) as u32;
        (*e).sig = sig;
        (*e).code = ctx.read_at(tp.signal_code as usize).unwrap_or(0);
        (*e).group = ctx.read_at(tp.signal_group as usize).unwrap_or(0);
        (*e).result = ctx.read_at(tp.signal_result as usize).unwrap_or(0);
        (*e)._pad = 0;
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        match task.memory_cgroup_id(&cfg.cgroup) {
            Some(id) => {
                (*e).sender_cgroup_id = id;
                (*e).flags |= KILL_SENDER_MEMCG_ID;
            }
            None => (*e).sender_cgroup_id = bpf_get_current_cgroup_id(),
        }
        // The process's name (its group leader's), not a worker thread's.
        match task.group_leader(&cfg.task).and_then(|l| l.comm(&cfg.task)) {
            Some(comm) if cfg.task.valid != 0 => {
                (*e).sender_comm = comm;
                (*e).flags |= KILL_SENDER_LEADER_COMM;
            }
            _ => (*e).sender_comm = bpf_get_current_comm().unwrap_or([0; 16]),
        }
        (*e).target_comm = ctx
            .read_at::<[u8; 16]>(tp.signal_comm as usize)
            .unwrap_or([0; 16]);
    }
    slot.submit(0);
    0
}
