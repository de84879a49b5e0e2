//! `kmem:mm_page_alloc` and `kmem:mm_page_alloc_extfrag` (seed: buddy
//! allocator): page allocations by order and migrate type, per process in
//! whose context they happened, and fallbacks to another migrate type
//! (fragmentation). Allocation-detail probes (off in the daemon's defaults).
//! mm_page_alloc fires for every page the buddy allocator gives, so it is a
//! raw tracepoint: no record is formatted, the arguments are read as passed.

use aya_ebpf::{
    macros::{map, raw_tracepoint, tracepoint},
    maps::PerCpuArray,
    programs::{RawTracePointContext, TracePointContext},
};
use memmon_common::{
    Stat,
    alloc::{PAGE_ALLOC_SLOTS, page_alloc_slot},
};

use crate::maps::{add, bump_stat, current_tgid, proc_counters};

/// Allocations per (order, migrate type), per CPU.
#[map]
pub static PAGE_ALLOCS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PAGE_ALLOC_SLOTS, 0);

/// TP_PROTO(struct page *page, unsigned int order, gfp_t gfp_flags, int
/// migratetype), unchanged from 4.x to 6.18.
const ARG_ORDER: usize = 1;
const ARG_MIGRATETYPE: usize = 3;

#[raw_tracepoint(tracepoint = "mm_page_alloc")]
pub fn mm_page_alloc(ctx: RawTracePointContext) -> u32 {
    bump_stat(Stat::PageAllocEvents);
    let order = ctx.arg::<u64>(ARG_ORDER) as u32;
    let mt = ctx.arg::<u64>(ARG_MIGRATETYPE) as i32;
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
