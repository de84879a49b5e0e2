//! `kmem:mm_page_alloc` and `kmem:mm_page_alloc_extfrag` (seed: buddy
//! allocator): page allocations by order and migrate type, per process in
//! whose context they happened, and fallbacks to another migrate type
//! (fragmentation). Allocation-detail probes (off in the daemon's defaults).

use aya_ebpf::{
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use memmon_common::{
    Stat,
    alloc::{PAGE_ALLOC_SLOTS, page_alloc_slot},
};

use crate::maps::{add, bump_stat, current_tgid, proc_counters};

/// Allocations per (order, migrate type), per CPU.
#[map]
pub static PAGE_ALLOCS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PAGE_ALLOC_SLOTS, 0);

/// mm_page_alloc: order (u32) at 16, migratetype (i32) at 32.
const ORDER: usize = memmon_common::layouts::page_alloc::ORDER as usize;
const MIGRATETYPE: usize = memmon_common::layouts::page_alloc::MIGRATETYPE as usize;

#[tracepoint]
pub fn mm_page_alloc(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::PageAllocEvents);
    // SAFETY: offsets from this kernel's format.
    let order: u32 = unsafe { ctx.read_at::<u32>(ORDER) }.unwrap_or(0);
    let mt: i32 = unsafe { ctx.read_at::<i32>(MIGRATETYPE) }.unwrap_or(0);
    if let Some(slot) = page_alloc_slot(order, mt as u32)
        && let Some(v) = PAGE_ALLOCS.get_ptr_mut(slot)
    {
        // SAFETY: per-CPU slot.
        unsafe { *v += 1 };
    }
    let tgid = current_tgid();
    if tgid != 0
        && order < 32
        && let Some(c) = proc_counters(tgid)
    {
        // SAFETY: live map value.
        unsafe { add(&raw mut (*c).page_allocs, 1u64 << order) };
    }
    0
}

#[tracepoint]
pub fn mm_page_alloc_extfrag(_ctx: TracePointContext) -> u32 {
    bump_stat(Stat::ExtfragEvents);
    0
}
