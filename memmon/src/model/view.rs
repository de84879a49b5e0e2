//! The flat per-process record every sink shows: `memmon snapshot --json`,
//! the JSON API and the TUI use these exact keys.

use serde::Serialize;

use super::process::Process;

/// One process's row.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProcessView {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Start time in clock ticks since boot (0 when unknown).
    pub start_time_ticks: u64,
    /// Parent pid, when known.
    pub ppid: Option<u32>,
    /// The process exited during the window.
    pub exited: bool,
    /// All page faults charged to it.
    pub faults: u64,
    /// Faults that did not need I/O (`faults - major_faults`).
    pub minor_faults: u64,
    /// Faults that waited for I/O.
    pub major_faults: u64,
    /// Read (or instruction-fetch) faults.
    pub read_faults: u64,
    /// Write faults.
    pub write_faults: u64,
    /// Write faults on present pages (copy-on-write and friends).
    pub cow_faults: u64,
}

impl ProcessView {
    /// The window's view of `p`.
    pub fn from_process(p: &Process) -> Self {
        let w = p.window();
        ProcessView {
            pid: p.key.pid,
            comm: p.comm.clone(),
            start_time_ticks: p.key.start_time_ticks,
            ppid: p.ppid,
            exited: p.exited,
            faults: w.faults,
            minor_faults: w.faults.saturating_sub(w.major_faults),
            major_faults: w.major_faults,
            read_faults: w.faults.saturating_sub(w.write_faults),
            write_faults: w.write_faults,
            cow_faults: w.cow_faults,
        }
    }
}
