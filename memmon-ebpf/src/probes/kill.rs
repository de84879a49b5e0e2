//! `signal:signal_generate`, filtered in the kernel to SIGKILL: every
//! `kill -9` (systemd-oomd, earlyoom, the kubelet, a shell) becomes one
//! record through the `EVENTS` ring buffer with the sender (the running
//! task: pid, comm, memory cgroup) and the target (pid, comm and, from the
//! raw tracepoint, its memory cgroup). Other signals return before any
//! work; a failed reservation is counted in `Stat::KillEventsLost`.
//!
//! Two programs fill the same record: `signal_generate_kill_raw`, a raw
//! tracepoint used where the kernel's BTF gives the offsets it reads (it
//! gets the target `task_struct` itself, so the target's memory cgroup is
//! read while the target is alive: a target that dies at once still has
//! one), and `signal_generate_kill`, the classic tracepoint (the target's
//! pid and comm from the record, at offsets read from this kernel's
//! format at load), everywhere else.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use memmon_common::{
    KernelConfig, KillEvent, Stat,
    events::{
        EVENT_KILL, KILL_SENDER_LEADER_COMM, KILL_SENDER_MEMCG_ID, KILL_TARGET_MEMCG_ID, SIGKILL,
    },
};

use crate::{
    maps::{EVENTS, bump_stat, config},
    task::Task,
};

/// TP_PROTO(int sig, struct kernel_siginfo *info, struct task_struct
/// *task, int group, int result) on every kernel memmon supports
/// (userspace checks the count in BTF before choosing this program).
const ARG_SIG: usize = 0;
const ARG_INFO: usize = 1;
const ARG_TASK: usize = 2;
const ARG_GROUP: usize = 3;
const ARG_RESULT: usize = 4;
/// `SEND_SIG_NOINFO` and `SEND_SIG_PRIV`: `info` values that are not
/// pointers (the tracepoint reads them as SI_USER and SI_KERNEL).
const SEND_SIG_NOINFO: u64 = 0;
const SEND_SIG_PRIV: u64 = 1;
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
/// Offset of `si_code` in `struct kernel_siginfo` (after si_signo and
/// si_errno, two ints: the same on every 64-bit architecture but MIPS).
const SIGINFO_CODE: usize = 8;

/// The target as each program finds it. Plain fields, every one written:
/// an `Option`'s payload left undefined is a read of uninitialised stack,
/// which 5.10's verifier refuses.
struct Target {
    pid: u32,
    /// 1 when `memcg_id` was read.
    has_memcg: u32,
    memcg_id: u64,
    comm: [u8; 16],
}

#[tracepoint]
pub fn signal_generate_kill(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let tp = &cfg.tp;
    // SAFETY: offset from this kernel's signal_generate format.
    let sig: i32 = unsafe { ctx.read_at(tp.signal_sig as usize) }.unwrap_or(0);
    if sig != SIGKILL {
        return 0;
    }
    // SAFETY: record offsets from this kernel's signal_generate format.
    let (code, group, result, target) = unsafe {
        (
            ctx.read_at(tp.signal_code as usize).unwrap_or(0),
            ctx.read_at(tp.signal_group as usize).unwrap_or(0),
            ctx.read_at(tp.signal_result as usize).unwrap_or(0),
            Target {
                pid: ctx.read_at::<i32>(tp.signal_pid as usize).unwrap_or(0) as u32,
                comm: ctx
                    .read_at::<[u8; 16]>(tp.signal_comm as usize)
                    .unwrap_or([0; 16]),
                has_memcg: 0,
                memcg_id: 0,
            },
        )
    };
    record(&cfg, sig, code, group, result, &target);
    0
}

#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate_kill_raw(ctx: RawTracePointContext) -> u32 {
    let sig = ctx.arg::<u64>(ARG_SIG) as i32;
    if sig != SIGKILL {
        return 0;
    }
    let cfg = config();
    let info = ctx.arg::<u64>(ARG_INFO);
    let code = match info {
        SEND_SIG_NOINFO => SI_USER,
        SEND_SIG_PRIV => SI_KERNEL,
        // SAFETY: probe_read checks the address.
        p => {
            unsafe { bpf_probe_read_kernel((p as usize + SIGINFO_CODE) as *const i32) }.unwrap_or(0)
        }
    };
    let task = Task::from_ptr(ctx.arg::<u64>(ARG_TASK) as *const u8);
    let (has_memcg, memcg_id) = match task.memory_cgroup_id(&cfg.cgroup) {
        Some(id) => (1, id),
        None => (0, 0),
    };
    let target = Target {
        pid: task.pid(&cfg.task).unwrap_or(0),
        has_memcg,
        memcg_id,
        comm: task.comm(&cfg.task).unwrap_or([0; 16]),
    };
    record(
        &cfg,
        sig,
        code,
        ctx.arg::<u64>(ARG_GROUP) as i32,
        ctx.arg::<u64>(ARG_RESULT) as i32,
        &target,
    );
    0
}

/// One record: the sender is the running task.
#[inline(always)]
fn record(cfg: &KernelConfig, sig: i32, code: i32, group: i32, result: i32, target: &Target) {
    bump_stat(Stat::KillEvents);
    let Some(mut slot) = EVENTS.reserve::<KillEvent>(0) else {
        bump_stat(Stat::KillEventsLost);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let e = slot.as_mut_ptr();
    let task = Task::current();
    // SAFETY: `e` is reserved ring-buffer memory, filled completely before
    // submit.
    unsafe {
        (*e).kind = EVENT_KILL;
        (*e).flags = 0;
        (*e).sender_tid = pid_tgid as u32;
        (*e).sender_tgid = (pid_tgid >> 32) as u32;
        (*e).target_pid = target.pid;
        (*e).sig = sig;
        (*e).code = code;
        (*e).group = group;
        (*e).result = result;
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
        (*e).target_comm = target.comm;
        (*e).target_cgroup_id = target.memcg_id;
        if target.has_memcg != 0 {
            (*e).flags |= KILL_TARGET_MEMCG_ID;
        }
    }
    slot.submit(0);
}
