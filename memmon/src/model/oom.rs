//! An OOM kill as every sink shows it: the `oom:mark_victim` record (units
//! as the kernel gives them, kB), the victim's memory cgroup, and the task
//! that was running when the kernel chose the victim.

use serde::Serialize;

use super::comm_string;
use crate::sample::OomRecord;

/// The process the kernel would OOM-kill first in a cgroup now: the
/// highest `oom_score` among its live processes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OomCandidate {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// /proc/PID/oom_score.
    pub oom_score: i64,
}

/// One OOM kill.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OomKill {
    /// Always `"oom_kill"` (JSON lines of `memmon events` carry a type).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Kernel time of the kill, ns since boot (CLOCK_BOOTTIME).
    pub boot_ns: u64,
    /// Victim pid.
    pub pid: u32,
    /// Victim command name.
    pub comm: String,
    /// Victim uid.
    pub uid: u32,
    /// Victim oom_score_adj.
    pub oom_score_adj: i32,
    /// Victim total virtual memory, kB.
    pub total_vm_kb: u64,
    /// Victim anonymous resident memory, kB.
    pub anon_rss_kb: u64,
    /// Victim file-backed resident memory, kB.
    pub file_rss_kb: u64,
    /// Victim shared-memory resident memory, kB.
    pub shmem_rss_kb: u64,
    /// Victim page tables, kB.
    pub pgtables_kb: u64,
    /// Victim's memory cgroup path (v1 memory controller, else unified),
    /// from /proc, or from the kernel's record when the victim was the
    /// running task and is already gone; `None` when neither worked.
    pub cgroup: Option<String>,
    /// Memory cgroup (v1) of the killing task, as a path when found under
    /// the memory hierarchy, else its name; `None` when unknown.
    pub killer_memcg: Option<String>,
    /// pid (tgid) of the task running when the victim was chosen.
    pub killer_pid: u32,
    /// Its thread id.
    pub killer_tid: u32,
    /// Its command name.
    pub killer_comm: String,
    /// Its cgroup v2 id.
    pub killer_cgroup_id: u64,
    /// What limit was hit: `memcg` (a memory cgroup's limit), `global`
    /// (the whole machine), `cpuset` or `mempolicy` (the NUMA nodes the
    /// allocation may use); `None` when no source could tell.
    pub constraint: Option<&'static str>,
    /// Who decided `constraint`: `oom_control` (the kernel's own `struct
    /// oom_control` of this kill, read by the oom probes at the kill),
    /// `page_counter` (the page counters of the killer's memcg and its
    /// ancestors at the kill: the deepest at its limit, none: global) or
    /// `memory.events` (cgroup v2, after the kill: the `oom` count of the
    /// killer's memcg or an ancestor grew, or none did).
    pub constraint_source: Option<&'static str>,
    /// The memory cgroup whose limit was hit.
    pub constraint_cgroup: Option<String>,
    /// Which of its limits: `max` or `memsw_max` (v1 memory + swap), the
    /// `limit` label values of `memmon_cgroup_memory_limit_bytes`.
    pub constraint_limit: Option<&'static str>,
    /// That limit at the kill, bytes.
    pub limit_bytes: Option<u64>,
    /// The memcg's usage (of what the limit counts) at the kill, bytes
    /// (from the kernel's page counter; read after the kill when the
    /// source is `memory.events`).
    pub usage_bytes: Option<u64>,
    /// The next candidates by oom_score in the same scope (the memcg, or
    /// the machine), from the last sample, highest first.
    pub runner_ups: Vec<OomCandidate>,
    /// The victim's recent samples from the flight recorder (daemon only),
    /// oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<super::history::HistorySample>,
}

impl OomKill {
    /// From the kernel record and the names the collector resolved.
    pub fn from_record(r: OomRecord, page_size: u64) -> Self {
        let limit = super::oom_limit::limit_of(&r, page_size);
        let limit = limit.as_ref();
        let e = &r.event;
        OomKill {
            constraint: limit.map(|l| l.constraint),
            constraint_source: limit.map(|l| l.source),
            constraint_cgroup: limit.and_then(|l| l.cgroup.clone()),
            constraint_limit: limit.and_then(|l| l.limit),
            limit_bytes: limit.and_then(|l| l.limit_bytes),
            usage_bytes: limit.and_then(|l| l.usage_bytes),
            runner_ups: Vec::new(),
            history: Vec::new(),
            kind: "oom_kill",
            boot_ns: e.boot_ns,
            pid: e.victim_pid,
            comm: comm_string(&e.victim_comm),
            uid: e.uid,
            oom_score_adj: e.oom_score_adj,
            total_vm_kb: e.total_vm_kb,
            anon_rss_kb: e.anon_rss_kb,
            file_rss_kb: e.file_rss_kb,
            shmem_rss_kb: e.shmem_rss_kb,
            pgtables_kb: e.pgtables_kb,
            cgroup: r.cgroup,
            killer_memcg: r.killer_memcg,
            killer_pid: e.killer_tgid,
            killer_tid: e.killer_tid,
            killer_comm: comm_string(&e.killer_comm),
            killer_cgroup_id: e.killer_cgroup_id,
        }
    }
}

/// A SIGKILL sent to a process: by whom, to whom, and what the target
/// held at its last sample.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SignalKill {
    /// Always `"sigkill"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `sigkill` (from userspace: kill(2), systemd-oomd, earlyoom, the
    /// kubelet) or `kernel` (sent by the kernel, not an OOM kill).
    pub cause: &'static str,
    /// Kernel time, ns since boot.
    pub boot_ns: u64,
    /// Sending process.
    pub sender_pid: u32,
    /// Its command name.
    pub sender_comm: String,
    /// Its memory cgroup.
    pub sender_cgroup: Option<String>,
    /// Target process (or thread).
    pub target_pid: u32,
    /// Its command name.
    pub target_comm: String,
    /// Its memory cgroup.
    pub target_cgroup: Option<String>,
    /// The target's resident set at its last sample, bytes.
    pub target_rss_bytes: Option<u64>,
    /// Its swap at its last sample, bytes.
    pub target_swap_bytes: Option<u64>,
    /// Its oom_score at its last sample.
    pub target_oom_score: Option<i64>,
    /// Its recent samples from the flight recorder, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<super::history::HistorySample>,
}

impl SignalKill {
    /// A SIGKILL record with the target's last known sizes.
    pub fn from_record(
        r: crate::sample::KillSignalRecord,
        cause: &'static str,
        target_rss_bytes: Option<u64>,
    ) -> Self {
        SignalKill {
            kind: "sigkill",
            cause,
            boot_ns: r.signal.boot_ns,
            sender_pid: r.signal.sender_pid,
            sender_comm: r.signal.sender_comm,
            sender_cgroup: r.sender_cgroup,
            target_pid: r.signal.target_pid,
            target_comm: r.signal.target_comm,
            target_cgroup: r.target_cgroup,
            target_rss_bytes,
            target_swap_bytes: None,
            target_oom_score: None,
            history: Vec::new(),
        }
    }
}

/// The cause of a SIGKILL: `kernel` when the kernel sent it (`si_code`
/// SI_KERNEL), else `sigkill` (userspace).
pub fn sigkill_cause(code: i32) -> &'static str {
    if code == SI_KERNEL {
        "kernel"
    } else {
        "sigkill"
    }
}

/// True when a SIGKILL is the OOM killer's own (sent by the kernel to a
/// process it just chose): that kill is already one OOM-kill record.
pub fn is_oom_killers_sigkill(
    code: i32,
    target_pid: u32,
    mut oom_victim: impl FnMut(u32) -> bool,
) -> bool {
    code == SI_KERNEL && oom_victim(target_pid)
}

/// `si_code` of a signal the kernel sent (SI_KERNEL).
pub const SI_KERNEL: i32 = 0x80;
