//! An OOM kill as every sink shows it: the `oom:mark_victim` record (units
//! as the kernel gives them, kB), the victim's memory cgroup, and the task
//! that was running when the kernel chose the victim.

use serde::Serialize;

use super::comm_string;
use crate::sample::OomRecord;

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
    /// The victim's recent samples from the flight recorder (daemon only),
    /// oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<super::history::HistorySample>,
}

impl OomKill {
    /// From the kernel record and the names the collector resolved.
    pub fn from_record(r: OomRecord) -> Self {
        let e = &r.event;
        OomKill {
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
