//! Page migration and NUMA task placement:
//! `migrate:mm_migrate_pages` (one record per migrate_pages() run: pages
//! moved, failed, reason) charged to the task that ran the migration
//! (compaction is charged to the compacting task, kcompactd included), and
//! `sched:sched_move_numa` / `sched:sched_swap_numa` (NUMA balancing moved
//! a thread to another node) charged to the moved thread's process.
//! `MIGRATE_REASONS` keeps pages moved per reason for the whole system.

use aya_ebpf::{
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use memmon_common::Stat;

use crate::maps::{add, bump_stat, current_tgid, proc_counters};

/// enum migrate_reason values that are NUMA placement.
const MR_SYSCALL: i32 = 3;
const MR_MEMPOLICY_MBIND: i32 = 4;
const MR_NUMA_MISPLACED: i32 = 5;
const MR_DEMOTION: i32 = 8;
/// Slots in MIGRATE_REASONS (reasons beyond land in the last).
pub const REASON_SLOTS: u32 = 16;

/// Pages migrated per `enum migrate_reason`, per CPU.
#[map]
pub static MIGRATE_REASONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(REASON_SLOTS, 0);

#[tracepoint]
pub fn mm_migrate_pages(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::MigrateEvents);
    let tp = crate::maps::config().tp;
    // SAFETY: offsets from this kernel's migrate/mm_migrate_pages format.
    let succeeded: u64 = unsafe { ctx.read_at(tp.migrate_succeeded as usize) }.unwrap_or(0);
    let failed: u64 = unsafe { ctx.read_at(tp.migrate_failed as usize) }.unwrap_or(0);
    let reason: i32 = unsafe { ctx.read_at(tp.migrate_reason as usize) }.unwrap_or(0);
    let slot = if reason >= 0 && (reason as u32) < REASON_SLOTS {
        reason as u32
    } else {
        REASON_SLOTS - 1
    };
    if let Some(s) = MIGRATE_REASONS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        unsafe { *s += succeeded };
    }
    let tgid = current_tgid();
    if tgid == 0 {
        return 0;
    }
    let numa = matches!(
        reason,
        MR_SYSCALL | MR_MEMPOLICY_MBIND | MR_NUMA_MISPLACED | MR_DEMOTION
    );
    if let Some(c) = proc_counters(tgid) {
        // SAFETY: live map value.
        unsafe {
            add(&raw mut (*c).pages_migrated, succeeded);
            add(&raw mut (*c).pages_migrate_failed, failed);
            if numa {
                add(&raw mut (*c).numa_pages_migrated, succeeded);
            }
        }
    }
    0
}

/// Offsets of `tgid` in sched_move_numa, and of src/dst tgid in
/// sched_swap_numa.
const MOVE_TGID: usize = memmon_common::layouts::numa::MOVE_TGID as usize;
const SWAP_SRC_TGID: usize = memmon_common::layouts::numa::SWAP_SRC_TGID as usize;
const SWAP_DST_TGID: usize = memmon_common::layouts::numa::SWAP_DST_TGID as usize;

#[tracepoint]
pub fn sched_move_numa(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::NumaMoveEvents);
    // SAFETY: offset from the format file.
    let tgid: i32 = unsafe { ctx.read_at(MOVE_TGID) }.unwrap_or(0);
    count_move(tgid);
    0
}

#[tracepoint]
pub fn sched_swap_numa(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::NumaMoveEvents);
    // SAFETY: offsets from the format file.
    let src: i32 = unsafe { ctx.read_at(SWAP_SRC_TGID) }.unwrap_or(0);
    let dst: i32 = unsafe { ctx.read_at(SWAP_DST_TGID) }.unwrap_or(0);
    count_move(src);
    count_move(dst);
    0
}

#[inline(always)]
fn count_move(tgid: i32) {
    if tgid <= 0 {
        return;
    }
    if let Some(c) = proc_counters(tgid as u32) {
        // SAFETY: live map value.
        add(unsafe { &raw mut (*c).numa_task_moves }, 1);
    }
}
