//! A SIGKILL as the `kill_signal` probe saw it (`signal:signal_generate`
//! filtered in the kernel to signal 9): who sent it and to whom.

use serde::Serialize;

/// What the kernel did with the signal (tracepoint `result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalResult {
    /// Queued for delivery.
    Delivered,
    /// Ignored (the target ignores it or is exiting).
    Ignored,
    /// Already pending.
    AlreadyPending,
    /// Queue overflow.
    OverflowFail,
    /// Delivered without its siginfo.
    LoseInfo,
    /// A value this memmon does not know.
    Other(i32),
}

impl SignalResult {
    /// From the tracepoint's `result` value.
    pub fn from_raw(v: i32) -> Self {
        match v {
            0 => SignalResult::Delivered,
            1 => SignalResult::Ignored,
            2 => SignalResult::AlreadyPending,
            3 => SignalResult::OverflowFail,
            4 => SignalResult::LoseInfo,
            v => SignalResult::Other(v),
        }
    }
}

/// One SIGKILL sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KillSignal {
    /// Kernel time, ns since boot (CLOCK_BOOTTIME).
    pub boot_ns: u64,
    /// Sending process (tgid).
    pub sender_pid: u32,
    /// Sending thread.
    pub sender_tid: u32,
    /// Sending process's command name.
    pub sender_comm: String,
    /// Sender's memory cgroup id (directory inode in the memory hierarchy;
    /// resolve with [`crate::procfs::cgroup::CgroupIds`]); `None` when the
    /// kernel's BTF offsets are unknown.
    pub sender_memcg_id: Option<u64>,
    /// Sender's cgroup v2 id, when the memory cgroup id is unknown.
    pub sender_cgroup_v2_id: Option<u64>,
    /// Target thread id (the process id when `group`).
    pub target_pid: u32,
    /// Target's command name.
    pub target_comm: String,
    /// Target's memory cgroup id (directory inode in the memory
    /// hierarchy), read from the target task when the signal was
    /// generated; `None` where the probe runs as a classic tracepoint.
    pub target_memcg_id: Option<u64>,
    /// Sent to the whole process (kill(2)) rather than one thread.
    pub group: bool,
    /// `si_code`: 0 from kill(2) (SI_USER), 0x80 from the kernel.
    pub code: i32,
    /// What the kernel did with it.
    pub result: SignalResult,
}
