//! uprobes and uretprobes on a process's allocator (`memmon leaks`):
//! malloc, calloc, realloc, aligned_alloc and posix_memalign record the size
//! at entry; their return adds the block to LIVE_ALLOCS with its user stack
//! (taken at the return, where the frame-pointer walk starts in the caller);
//! free and realloc remove the block they release. With a sample rate N,
//! one allocation in N is tracked (userspace multiplies by N). Attached
//! only by `memmon leaks`, to one process.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_USER_STACK},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_probe_read_user,
    },
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use memmon_common::{
    Stat,
    stacks::{LiveAlloc, NO_STACK, PendingAlloc, setting},
};

use crate::maps::{LIVE_ALLOCS, PENDING_ALLOCS, bump_stat, profile_setting, store_stack};

#[uprobe]
pub fn leak_malloc(ctx: ProbeContext) -> u32 {
    let size: u64 = ctx.arg(0).unwrap_or(0);
    pending(size, 0);
    0
}

#[uprobe]
pub fn leak_calloc(ctx: ProbeContext) -> u32 {
    let n: u64 = ctx.arg(0).unwrap_or(0);
    let size: u64 = ctx.arg(1).unwrap_or(0);
    // An overflowing product makes calloc fail (NULL: not recorded).
    pending(n.wrapping_mul(size), 0);
    0
}

#[uprobe]
pub fn leak_realloc(ctx: ProbeContext) -> u32 {
    let old: u64 = ctx.arg(0).unwrap_or(0);
    forget(old);
    let size: u64 = ctx.arg(1).unwrap_or(0);
    pending(size, 0);
    0
}

#[uprobe]
pub fn leak_aligned_alloc(ctx: ProbeContext) -> u32 {
    let size: u64 = ctx.arg(1).unwrap_or(0);
    pending(size, 0);
    0
}

#[uprobe]
pub fn leak_posix_memalign(ctx: ProbeContext) -> u32 {
    let memptr: u64 = ctx.arg(0).unwrap_or(0);
    let size: u64 = ctx.arg(2).unwrap_or(0);
    pending(size, memptr);
    0
}

#[uprobe]
pub fn leak_free(ctx: ProbeContext) -> u32 {
    let p: u64 = ctx.arg(0).unwrap_or(0);
    forget(p);
    0
}

/// Return of malloc, calloc, realloc and aligned_alloc: the block is the
/// return value.
#[uretprobe]
pub fn leak_alloc_return(ctx: RetProbeContext) -> u32 {
    let p: u64 = ctx.ret();
    returned(&ctx, Some(p));
    0
}

/// Return of posix_memalign: the block is in `*memptr` when it returned 0.
#[uretprobe]
pub fn leak_memalign_return(ctx: RetProbeContext) -> u32 {
    let rc: i32 = ctx.ret();
    returned(&ctx, if rc == 0 { None } else { Some(0) });
    0
}

/// Records an allocation call at entry, unless sampling skips it.
#[inline(always)]
fn pending(size: u64, memptr: u64) {
    let rate = profile_setting(setting::SAMPLE_RATE);
    // SAFETY: helper with no arguments.
    if rate > 1 && u64::from(unsafe { bpf_get_prandom_u32() }) % rate != 0 {
        return;
    }
    let id = bpf_get_current_pid_tgid();
    if PENDING_ALLOCS
        .insert(&id, &PendingAlloc { size, memptr }, BPF_ANY as u64)
        .is_err()
    {
        bump_stat(Stat::LeakMapFull);
    }
}

/// Adds the returned block (`Some(0)`: failed; `None`: read it from the
/// pending call's memptr) to the live allocations.
#[inline(always)]
fn returned(ctx: &RetProbeContext, block: Option<u64>) {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: plain read of a map value, copied out.
    let Some(call) = (unsafe { PENDING_ALLOCS.get(&id) }).copied() else {
        return;
    };
    let _ = PENDING_ALLOCS.remove(&id);
    let addr = match block {
        Some(p) => p,
        // SAFETY: reads the caller's `void *` the call wrote; a bad
        // pointer makes the helper fail, not fault.
        None => unsafe { bpf_probe_read_user(call.memptr as *const u64) }.unwrap_or(0),
    };
    if addr == 0 {
        return;
    }
    bump_stat(Stat::StackSamples);
    let stack = store_stack(ctx, BPF_F_USER_STACK as u64).unwrap_or_else(|()| {
        bump_stat(Stat::StackLost);
        NO_STACK
    });
    let live = LiveAlloc {
        size: call.size,
        // SAFETY: helper with no arguments.
        time_ns: unsafe { bpf_ktime_get_ns() },
        stack,
        tgid: (id >> 32) as u32,
        _pad: 0,
    };
    if LIVE_ALLOCS.insert(&addr, &live, BPF_ANY as u64).is_err() {
        bump_stat(Stat::LeakMapFull);
    }
}

/// Drops a freed block.
#[inline(always)]
fn forget(p: u64) {
    if p != 0 {
        let _ = LIVE_ALLOCS.remove(&p);
    }
}
