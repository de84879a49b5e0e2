//! fentry/fexit on `handle_mm_fault`: time spent resolving each page fault,
//! as a system-wide log2 histogram (`FAULT_LATENCY_HIST`, ns). Needs BPF
//! tracing programs (ftrace trampolines); where the kernel refuses them
//! (EPERM) the loader reports the probe unavailable and the rest run.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{fentry, fexit, map},
    maps::{HashMap, PerCpuArray},
    programs::{FEntryContext, FExitContext},
};
use memmon_common::{Stat, stats::HIST_BUCKETS};

use crate::maps::{bump_stat, log2_bucket};

/// Thread id → ktime at fault entry.
#[map]
pub static FAULT_START: HashMap<u32, u64> = HashMap::with_max_entries(10240, 0);

/// Fault durations, log2 buckets of ns, per CPU.
#[map]
pub static FAULT_LATENCY_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(HIST_BUCKETS, 0);

#[fentry(function = "handle_mm_fault")]
pub fn handle_mm_fault_entry(_ctx: FEntryContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: helper without inputs.
    let now = unsafe { bpf_ktime_get_ns() };
    let _ = FAULT_START.insert(tid, now, BPF_ANY as u64);
    0
}

#[fexit(function = "handle_mm_fault")]
pub fn handle_mm_fault_exit(_ctx: FExitContext) -> u32 {
    bump_stat(Stat::FaultLatencyEvents);
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(start) = FAULT_START.get_ptr(tid) else {
        return 0;
    };
    // SAFETY: live map value; helper without inputs.
    let ns = unsafe { bpf_ktime_get_ns().saturating_sub(*start) };
    let _ = FAULT_START.remove(tid);
    if let Some(slot) = FAULT_LATENCY_HIST.get_ptr_mut(log2_bucket(ns)) {
        // SAFETY: per-CPU slot.
        unsafe { *slot += 1 };
    }
    0
}
