//! The key of a process: pid + start time (a reused pid is a different
//! process).

use serde::Serialize;

/// pid + start time: a reused pid is a different process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ProcessKey {
    /// Process id (tgid) in the initial pid namespace.
    pub pid: u32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22);
    /// 0 when unknown.
    pub start_time_ticks: u64,
}

/// Converts a kernel `start_boottime` in ns to /proc's clock ticks.
pub fn boottime_ns_to_ticks(ns: u64, ticks_per_second: u64) -> u64 {
    let ns_per_tick = 1_000_000_000 / ticks_per_second.max(1);
    ns / ns_per_tick.max(1)
}
