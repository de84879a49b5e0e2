//! Which processes ran since the last pass: the scheduler switching a task
//! out (`sched:sched_switch`, as a raw tracepoint: the task switched out is
//! the current one) and a 10 Hz CPU clock (a task that keeps its CPU is
//! never switched out) set the process's bit in `RAN`, a bitmap by tgid
//! that userspace maps and takes each pass. Only a process that ran can
//! have faulted, mapped or unmapped memory itself, so the pass reads those
//! with a task iterator scoped to each (Linux 6.1+) instead of walking
//! every task; a full walk every few passes catches what others did to a
//! sleeping process (reclaim swapping its pages out).

use aya_ebpf::{
    macros::{map, perf_event, raw_tracepoint},
    maps::Array,
    programs::{PerfEventContext, RawTracePointContext},
};
use memmon_common::Stat;

use crate::maps::{bump_stat, current_tgid};

/// `BPF_F_MMAPABLE`: userspace maps the bitmap and takes its words with
/// atomic swaps (no syscall per pass).
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Bit `tgid % 64` of word `tgid / 64`: the process ran since userspace
/// last took the word. Sized at load for the kernel's pid_max.
#[map]
pub static RAN: Array<u64> = Array::with_max_entries(512, BPF_F_MMAPABLE);

#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn sched_switch_ran(_ctx: RawTracePointContext) -> u32 {
    mark(current_tgid());
    0
}

#[perf_event]
pub fn cpu_clock_ran(_ctx: PerfEventContext) -> u32 {
    mark(current_tgid());
    0
}

/// Sets `tgid`'s bit unless it is set already (the word's cache line is
/// then only read).
#[inline(always)]
fn mark(tgid: u32) {
    if tgid == 0 {
        return;
    }
    let Some(word) = RAN.get_ptr_mut(tgid / 64) else {
        bump_stat(Stat::RanOverflow);
        return;
    };
    let bit = 1u64 << (tgid % 64);
    // SAFETY: a live array value; userspace swaps words atomically, the
    // kernel sets bits with an atomic or.
    unsafe {
        if core::ptr::read_volatile(word) & bit != 0 {
            return;
        }
        core::intrinsics::atomic_or::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            word, bit,
        );
    }
    bump_stat(Stat::RanMarks);
}
