//! `memmon profile --event brk|mmap`: the syscall tracepoints with the
//! caller's user stack, weighted by bytes. brk: the change of the break the
//! kernel returns, per process (userspace seeds the current break of the
//! pids it targets; otherwise the first call seen only sets the base).
//! mmap: the length of each successful mapping, charged to its stack and
//! remembered by start address; a munmap from that start address takes
//! what it unmaps off the same stack, so a stack's weight is what it still
//! has mapped. Attached only by `memmon profile`.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_USER_STACK},
    helpers::bpf_get_current_pid_tgid,
    macros::tracepoint,
    programs::TracePointContext,
};
use memmon_common::{
    Stat,
    stacks::{MmapCharge, MmapKey, NO_STACK, PendingAlloc, StackKey, stack_event},
};

use crate::maps::{
    MMAP_CHARGES, PENDING_ALLOCS, STACK_BRK_LAST, add_stack_weight, bump_stat, profile_target,
    store_stack,
};

/// Syscall tracepoint record: arguments start at 16, 8 bytes each.
const ARG0: usize = 16;
const ARG1: usize = 24;
/// `ret` of sys_exit_* records.
const RET: usize = memmon_common::layouts::syscalls::RET as usize;
/// Returns above this (as unsigned) are -errno.
const MAX_ERRNO: u64 = 4095;

#[inline(always)]
fn field(ctx: &TracePointContext, off: usize) -> u64 {
    // SAFETY: syscall records have 8-byte fields at these offsets.
    unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0)
}

#[inline(always)]
fn user_stack(ctx: &TracePointContext) -> u64 {
    store_stack(ctx, BPF_F_USER_STACK as u64).unwrap_or_else(|()| {
        bump_stat(Stat::StackLost);
        NO_STACK
    })
}

#[tracepoint]
pub fn stack_brk_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == 0 || !profile_target(tgid) {
        return 0;
    }
    let new = field(&ctx, RET);
    // SAFETY: plain read of a map value, copied out.
    let old = unsafe { STACK_BRK_LAST.get(&tgid) }.copied();
    let _ = STACK_BRK_LAST.insert(&tgid, &new, BPF_ANY as u64);
    let Some(old) = old else {
        return 0;
    };
    if new == old {
        return 0;
    }
    bump_stat(Stat::StackSamples);
    let key = StackKey {
        tgid,
        event: stack_event::BRK,
        user_stack: user_stack(&ctx),
        kernel_stack: NO_STACK,
    };
    add_stack_weight(&key, new.wrapping_sub(old) as i64);
    0
}

#[tracepoint]
pub fn stack_mmap_enter(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if !profile_target((id >> 32) as u32) {
        return 0;
    }
    let call = PendingAlloc {
        size: field(&ctx, ARG1),
        memptr: 0,
    };
    if PENDING_ALLOCS.insert(&id, &call, BPF_ANY as u64).is_err() {
        bump_stat(Stat::LeakMapFull);
    }
    0
}

#[tracepoint]
pub fn stack_mmap_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: plain read of a map value, copied out.
    let Some(call) = (unsafe { PENDING_ALLOCS.get(&id) }).copied() else {
        return 0;
    };
    let _ = PENDING_ALLOCS.remove(&id);
    let addr = field(&ctx, RET);
    if addr > u64::MAX - MAX_ERRNO || call.size == 0 {
        return 0;
    }
    let tgid = (id >> 32) as u32;
    bump_stat(Stat::StackSamples);
    let stack = user_stack(&ctx);
    let key = StackKey {
        tgid,
        event: stack_event::MMAP,
        user_stack: stack,
        kernel_stack: NO_STACK,
    };
    add_stack_weight(&key, call.size as i64);
    let charge = MmapCharge {
        len: call.size,
        stack,
    };
    if MMAP_CHARGES
        .insert(
            &MmapKey {
                addr,
                tgid,
                _pad: 0,
            },
            &charge,
            BPF_ANY as u64,
        )
        .is_err()
    {
        bump_stat(Stat::StackMapFull);
    }
    0
}

#[tracepoint]
pub fn stack_munmap_enter(ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let addr = field(&ctx, ARG0);
    let len = field(&ctx, ARG1);
    let key = MmapKey {
        addr,
        tgid,
        _pad: 0,
    };
    // SAFETY: plain read of a map value, copied out.
    let Some(charge) = (unsafe { MMAP_CHARGES.get(&key) }).copied() else {
        return 0;
    };
    let _ = MMAP_CHARGES.remove(&key);
    let taken = if len < charge.len { len } else { charge.len };
    let stack = StackKey {
        tgid,
        event: stack_event::MMAP,
        user_stack: charge.stack,
        kernel_stack: NO_STACK,
    };
    add_stack_weight(&stack, -(taken as i64));
    if taken < charge.len {
        // The head went; the rest stays charged from its new start.
        let rest = MmapCharge {
            len: charge.len - taken,
            ..charge
        };
        let _ = MMAP_CHARGES.insert(
            &MmapKey {
                addr: addr.wrapping_add(taken),
                tgid,
                _pad: 0,
            },
            &rest,
            BPF_ANY as u64,
        );
    }
    0
}
