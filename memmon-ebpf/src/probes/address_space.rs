//! `syscalls:sys_enter/exit_{mmap,munmap,mremap,brk}`: how each process
//! grows and shrinks its address space (seed: brk vs mmap). mmap is counted
//! at exit, when its result is known (failed calls apart); its arguments
//! wait in an LRU map keyed by thread, so a thread that dies mid-call
//! cannot leak an entry for long. brk growth is the change of the break
//! the kernel returns, tracked per process (removed at exit).

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::bpf_get_current_pid_tgid,
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap},
    programs::TracePointContext,
};
use memmon_common::{Stat, alloc::MmapInflight};

use crate::maps::{add, bump_stat, current_tgid, proc_counters};

/// MAP_ANONYMOUS.
const MAP_ANONYMOUS: u64 = 0x20;
/// Syscall tracepoint record: arguments start at 16, 8 bytes each.
const ARG1: usize = 24;
const ARG3: usize = 40;
/// `ret` of sys_exit_* records.
const RET: usize = memmon_common::layouts::syscalls::RET as usize;

/// Thread → mmap arguments between entry and exit.
#[map]
pub static MMAP_INFLIGHT: LruHashMap<u64, MmapInflight> = LruHashMap::with_max_entries(8192, 0);

/// Process → last program break the kernel returned.
#[map]
pub static BRK_LAST: HashMap<u32, u64> = HashMap::with_max_entries(32768, 1);

#[inline(always)]
fn arg(ctx: &TracePointContext, off: usize) -> u64 {
    // SAFETY: syscall records have 8-byte arguments at these offsets.
    unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0)
}

#[tracepoint]
pub fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::MmapEvents);
    let entry = MmapInflight {
        len: arg(&ctx, ARG1),
        anon: u32::from(arg(&ctx, ARG3) & MAP_ANONYMOUS != 0),
        _pad: 0,
    };
    if MMAP_INFLIGHT
        .insert(bpf_get_current_pid_tgid(), entry, BPF_ANY as u64)
        .is_err()
    {
        bump_stat(Stat::MmapMapFull);
    }
    0
}

#[tracepoint]
pub fn sys_exit_mmap(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::MmapEvents);
    let key = bpf_get_current_pid_tgid();
    let Some(entry) = MMAP_INFLIGHT.get_ptr(key) else {
        return 0;
    };
    // SAFETY: live map value.
    let entry = unsafe { *entry };
    let _ = MMAP_INFLIGHT.remove(key);
    let ret = arg(&ctx, RET) as i64;
    let Some(c) = proc_counters(current_tgid()) else {
        return 0;
    };
    // SAFETY: `c` points at this process's live map value.
    unsafe {
        if (-4095..0).contains(&ret) {
            add(&raw mut (*c).mmap_failed, 1);
            return 0;
        }
        add(&raw mut (*c).mmap_calls, 1);
        add(&raw mut (*c).mmap_bytes, entry.len);
        if entry.anon != 0 {
            add(&raw mut (*c).mmap_anon_bytes, entry.len);
        } else {
            add(&raw mut (*c).mmap_file_bytes, entry.len);
        }
    }
    0
}

#[tracepoint]
pub fn sys_enter_munmap(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::MmapEvents);
    if let Some(c) = proc_counters(current_tgid()) {
        // SAFETY: live map value.
        unsafe {
            add(&raw mut (*c).munmap_calls, 1);
            add(&raw mut (*c).munmap_bytes, arg(&ctx, ARG1));
        }
    }
    0
}

#[tracepoint]
pub fn sys_enter_mremap(_ctx: TracePointContext) -> u32 {
    bump_stat(Stat::MmapEvents);
    if let Some(c) = proc_counters(current_tgid()) {
        // SAFETY: live map value.
        unsafe { add(&raw mut (*c).mremap_calls, 1) };
    }
    0
}

#[tracepoint]
pub fn sys_enter_brk(_ctx: TracePointContext) -> u32 {
    bump_stat(Stat::MmapEvents);
    let tgid = current_tgid();
    if let Some(c) = proc_counters(tgid) {
        // SAFETY: live map value.
        unsafe { add(&raw mut (*c).brk_calls, 1) };
    }
    // First brk seen for this process: start from the kernel's own break
    // (mm->brk, through BTF offsets), so its first growth counts too.
    if BRK_LAST.get_ptr(tgid).is_none() {
        let cfg = crate::maps::config();
        if cfg.task.valid != 0
            && let Some(brk) = crate::task::Task::current().brk(&cfg.task)
        {
            let _ = BRK_LAST.insert(tgid, brk, BPF_ANY as u64);
        }
    }
    0
}

#[tracepoint]
pub fn sys_exit_brk(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::MmapEvents);
    let tgid = current_tgid();
    let new = arg(&ctx, RET);
    let last = BRK_LAST.get_ptr(tgid).map(|p| {
        // SAFETY: live map value.
        unsafe { *p }
    });
    let _ = BRK_LAST.insert(tgid, new, BPF_ANY as u64);
    // Without BTF offsets the first brk seen only sets the starting point.
    let Some(last) = last else {
        return 0;
    };
    if let Some(c) = proc_counters(tgid) {
        // SAFETY: live map value.
        unsafe {
            if new > last {
                add(&raw mut (*c).brk_grow_bytes, new - last);
            } else if new < last {
                add(&raw mut (*c).brk_shrink_bytes, last - new);
            }
        }
    }
    0
}

/// Forgets a process's break (called from the exit probe).
#[inline(always)]
pub fn forget(tgid: u32) {
    let _ = BRK_LAST.remove(tgid);
}
