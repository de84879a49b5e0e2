//! `vmscan:mm_vmscan_direct_reclaim_begin/end` and
//! `vmscan:mm_vmscan_memcg_reclaim_begin/end`: how often and how long a
//! process stalled reclaiming memory before its allocation could go on.
//! Per thread the begin time is kept; at the end the stall is added to the
//! process's counters and to the log2 histogram `RECLAIM_HIST` (ns).

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::TracePointContext,
};
use memmon_common::{Stat, stats::HIST_BUCKETS};

use crate::maps::{add, bump_stat, log2_bucket, proc_counters};

/// Thread id → ktime at reclaim begin.
#[map]
pub static RECLAIM_START: HashMap<u32, u64> = HashMap::with_max_entries(10240, 0);

/// Stall durations, log2 buckets of ns, per CPU.
#[map]
pub static RECLAIM_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(HIST_BUCKETS, 0);

#[tracepoint]
pub fn reclaim_begin(_ctx: TracePointContext) -> u32 {
    bump_stat(Stat::ReclaimEvents);
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: helper without inputs.
    let now = unsafe { bpf_ktime_get_ns() };
    if RECLAIM_START.insert(tid, now, BPF_ANY as u64).is_err() {
        bump_stat(Stat::ReclaimMapFull);
    }
    0
}

#[tracepoint]
pub fn reclaim_end(_ctx: TracePointContext) -> u32 {
    bump_stat(Stat::ReclaimEvents);
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let tgid = (pid_tgid >> 32) as u32;
    let Some(start) = RECLAIM_START.get_ptr(tid) else {
        // Began before the probe attached.
        return 0;
    };
    // SAFETY: live map value; helper without inputs.
    let ns = unsafe { bpf_ktime_get_ns().saturating_sub(*start) };
    let _ = RECLAIM_START.remove(tid);
    if let Some(slot) = RECLAIM_HIST.get_ptr_mut(log2_bucket(ns)) {
        // SAFETY: per-CPU slot.
        unsafe { *slot += 1 };
    }
    if tgid == 0 {
        return 0;
    }
    if let Some(c) = proc_counters(tgid) {
        // SAFETY: live map value.
        unsafe {
            add(&raw mut (*c).reclaim_stalls, 1);
            add(&raw mut (*c).reclaim_stall_ns, ns);
        }
    }
    0
}
