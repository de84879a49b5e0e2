//! Perf software event PERF_COUNT_SW_PAGE_FAULTS_MAJ (period 1, one event
//! per CPU): raised where the kernel increments the task's maj_flt, so the
//! count matches /proc/PID/stat exactly. Major faults wait for I/O, so the
//! program's cost is negligible next to the fault.

use aya_ebpf::{macros::perf_event, programs::PerfEventContext};
use memmon_common::Stat;

use crate::maps::{add, bump_stat, current_tgid, proc_counters};

#[perf_event]
pub fn major_fault(_ctx: PerfEventContext) -> u32 {
    bump_stat(Stat::MajorFaultEvents);
    let tgid = current_tgid();
    if tgid != 0
        && let Some(c) = proc_counters(tgid)
    {
        // SAFETY: `c` points at this process's live map value.
        add(unsafe { &raw mut (*c).major_faults }, 1);
    }
    // 0: no sample is written to the perf buffer.
    0
}
