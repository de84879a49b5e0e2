//! `exceptions:page_fault_user` and `exceptions:page_fault_kernel`: every
//! page fault charged to a process, split into write and copy-on-write by the
//! x86 error code. Per-fault cost, so userspace attaches it only when fault
//! detail is asked for, and as raw tracepoints: the program gets the
//! tracepoint's arguments directly instead of a record the kernel first
//! builds for perf (measurably cheaper in a fault storm).

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use memmon_common::{
    Stat,
    counters::{USER_ADDR_MAX, fault_error_code},
};

use crate::maps::{add, bump_stat, current_tgid, proc_counters};

/// TP_PROTO(unsigned long address, struct pt_regs *regs, unsigned long
/// error_code), the same for both events.
const ARG_ADDRESS: usize = 0;
const ARG_ERROR_CODE: usize = 2;

#[raw_tracepoint(tracepoint = "page_fault_user")]
pub fn page_fault_user(ctx: RawTracePointContext) -> u32 {
    record(ctx.arg::<u64>(ARG_ERROR_CODE));
    0
}

#[raw_tracepoint(tracepoint = "page_fault_kernel")]
pub fn page_fault_kernel(ctx: RawTracePointContext) -> u32 {
    if ctx.arg::<u64>(ARG_ADDRESS) >= USER_ADDR_MAX {
        return 0;
    }
    record(ctx.arg::<u64>(ARG_ERROR_CODE));
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
