//! `exceptions:page_fault_user` and `exceptions:page_fault_kernel`: every
//! page fault charged to a process, split into write and copy-on-write by the
//! x86 error code. Per-fault cost, so userspace attaches it only when fault
//! detail is asked for.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use memmon_common::{
    Stat,
    counters::{USER_ADDR_MAX, fault_error_code},
};

use crate::maps::{add, bump_stat, current_tgid, proc_counters};

/// Offsets in the tracepoint record (same for both events).
const ADDRESS_OFFSET: usize = 8;
const ERROR_CODE_OFFSET: usize = 24;

#[tracepoint]
pub fn page_fault_user(ctx: TracePointContext) -> u32 {
    // SAFETY: the format of exceptions:page_fault_user puts error_code at 24.
    let error_code: u64 = unsafe { ctx.read_at(ERROR_CODE_OFFSET) }.unwrap_or(0);
    record(error_code);
    0
}

#[tracepoint]
pub fn page_fault_kernel(ctx: TracePointContext) -> u32 {
    // SAFETY: same record layout as page_fault_user.
    let address: u64 = unsafe { ctx.read_at(ADDRESS_OFFSET) }.unwrap_or(u64::MAX);
    if address >= USER_ADDR_MAX {
        return 0;
    }
    let error_code: u64 = unsafe { ctx.read_at(ERROR_CODE_OFFSET) }.unwrap_or(0);
    record(error_code);
    0
}

#[inline(always)]
fn record(error_code: u64) {
    bump_stat(Stat::FaultEvents);
    let tgid = current_tgid();
    if tgid == 0 {
        return;
    }
    let Some(c) = proc_counters(tgid) else {
        return;
    };
    // SAFETY: `c` points at this process's live map value.
    unsafe {
        add(&raw mut (*c).faults, 1);
        if error_code & fault_error_code::WRITE != 0 {
            add(&raw mut (*c).write_faults, 1);
            if error_code & fault_error_code::PROT != 0 {
                add(&raw mut (*c).cow_faults, 1);
            }
        }
    }
}
