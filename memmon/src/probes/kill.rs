//! SIGKILL records from the `kill_signal` probe (`signal:signal_generate`
//! filtered in the kernel to signal 9), decoded for the model: who sent it
//! (pid, comm, memory cgroup id) and to whom (pid, comm). The records ride
//! the shared `EVENTS` ring buffer, so they are drained with the exits
//! ([`ProbeSet::drain_exits`]) and taken here, independently of the
//! collector.

use super::ProbeSet;
pub use crate::sample::kill::{KillSignal, SignalResult};
use memmon_common::{
    KillEvent,
    events::{KILL_SENDER_LEADER_COMM, KILL_SENDER_MEMCG_ID, KILL_TARGET_MEMCG_ID},
};

impl KillSignal {
    /// Decodes a ring-buffer record.
    pub fn from_event(e: &KillEvent) -> Self {
        let memcg = e.flags & KILL_SENDER_MEMCG_ID != 0;
        let _leader = e.flags & KILL_SENDER_LEADER_COMM != 0;
        KillSignal {
            boot_ns: e.boot_ns,
            sender_pid: e.sender_tgid,
            sender_tid: e.sender_tid,
            sender_comm: crate::sample::comm_string(&e.sender_comm),
            sender_memcg_id: memcg.then_some(e.sender_cgroup_id),
            sender_cgroup_v2_id: (!memcg).then_some(e.sender_cgroup_id),
            target_pid: e.target_pid,
            target_comm: crate::sample::comm_string(&e.target_comm),
            target_memcg_id: (e.flags & KILL_TARGET_MEMCG_ID != 0).then_some(e.target_cgroup_id),
            group: e.group != 0,
            code: e.code,
            result: SignalResult::from_raw(e.result),
        }
    }
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
            flags: KILL_SENDER_MEMCG_ID | KILL_SENDER_LEADER_COMM | KILL_TARGET_MEMCG_ID,
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
            target_cgroup_id: 4343,
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
        assert_eq!(k.target_memcg_id, Some(4343));
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
        assert_eq!(k.target_memcg_id, None, "no flag: the id is not a memcg's");
        assert_eq!(k.result, SignalResult::Other(7));
        assert_eq!(k.sender_comm.chars().count(), 16, "lossy, never a panic");
    }
}
