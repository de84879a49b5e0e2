//! SIGKILL records from the `kill_signal` probe (`signal:signal_generate`
//! filtered in the kernel to signal 9), decoded for the model: who sent it
//! (pid, comm, memory cgroup id) and to whom (pid, comm). The records ride
//! the shared `EVENTS` ring buffer, so they are drained with the exits
//! ([`ProbeSet::drain_exits`]) and taken here, independently of the
//! collector.

use memmon_common::{
    KillEvent,
    events::{KILL_SENDER_LEADER_COMM, KILL_SENDER_MEMCG_ID},
};
use serde::Serialize;

use super::ProbeSet;

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
    fn from_raw(v: i32) -> Self {
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
    /// Sent to the whole process (kill(2)) rather than one thread.
    pub group: bool,
    /// `si_code`: 0 from kill(2) (SI_USER), 0x80 from the kernel.
    pub code: i32,
    /// What the kernel did with it.
    pub result: SignalResult,
}

impl KillSignal {
    /// Decodes a ring-buffer record.
    pub fn from_event(e: &KillEvent) -> Self {
        let memcg = e.flags & KILL_SENDER_MEMCG_ID != 0;
        let _leader = e.flags & KILL_SENDER_LEADER_COMM != 0;
        KillSignal {
            boot_ns: e.boot_ns,
            sender_pid: e.sender_tgid,
            sender_tid: e.sender_tid,
            sender_comm: comm(&e.sender_comm),
            sender_memcg_id: memcg.then_some(e.sender_cgroup_id),
            sender_cgroup_v2_id: (!memcg).then_some(e.sender_cgroup_id),
            target_pid: e.target_pid,
            target_comm: comm(&e.target_comm),
            group: e.group != 0,
            code: e.code,
            result: SignalResult::from_raw(e.result),
        }
    }
}

/// A NUL-padded comm as text (invalid UTF-8 replaced).
fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

impl ProbeSet {
    /// SIGKILLs drained so far (by [`ProbeSet::drain_exits`]), oldest
    /// first, decoded.
    pub fn take_kill_signals(&mut self) -> Vec<KillSignal> {
        std::mem::take(&mut self.pending_kill)
            .iter()
            .map(KillSignal::from_event)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmon_common::events::EVENT_KILL;

    fn event() -> KillEvent {
        let mut sender_comm = [0u8; 16];
        sender_comm[..11].copy_from_slice(b"reaper-test");
        let mut target_comm = [0u8; 16];
        target_comm[..5].copy_from_slice(b"sleep");
        KillEvent {
            kind: EVENT_KILL,
            flags: KILL_SENDER_MEMCG_ID | KILL_SENDER_LEADER_COMM,
            sender_tid: 11,
            sender_tgid: 10,
            target_pid: 20,
            sig: 9,
            code: 0,
            group: 1,
            result: 0,
            _pad: 0,
            sender_cgroup_id: 4242,
            boot_ns: 5,
            sender_comm,
            target_comm,
        }
    }

    #[test]
    fn decodes_a_record() {
        let k = KillSignal::from_event(&event());
        assert_eq!(k.sender_comm, "reaper-test");
        assert_eq!(k.target_comm, "sleep");
        assert_eq!((k.sender_pid, k.sender_tid, k.target_pid), (10, 11, 20));
        assert_eq!(k.sender_memcg_id, Some(4242));
        assert_eq!(k.sender_cgroup_v2_id, None);
        assert!(k.group);
        assert_eq!(k.result, SignalResult::Delivered);
        let mut e = event();
        e.flags = 0;
        e.result = 7;
        e.sender_comm = [0xff; 16];
        let k = KillSignal::from_event(&e);
        assert_eq!(
            (k.sender_memcg_id, k.sender_cgroup_v2_id),
            (None, Some(4242))
        );
        assert_eq!(k.result, SignalResult::Other(7));
        assert_eq!(k.sender_comm.chars().count(), 16, "lossy, never a panic");
    }
}
