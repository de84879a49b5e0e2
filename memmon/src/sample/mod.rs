//! What crosses from the collector (all I/O) to the model (pure): one
//! pass's [`Sample`] and the reading types inside it. The readers
//! (`procfs`, `probes`) produce these, the model applies them, and the
//! sinks show what the model made of them; none of those layers needs to
//! import another for these types.

pub mod alloc;
pub mod cgroup;
pub mod cost;
pub mod identity;
pub mod key;
pub mod kill;
pub mod memory;
pub mod numa;
pub mod probe_status;
pub mod stacks;
pub mod stats;
pub mod system;

use std::collections::HashMap;

use memmon_common::{ExitEvent, MmState, OomEvent, ProcCounters};

pub use identity::Identity;
pub use key::ProcessKey;

/// Where a process belongs: read when it is first seen, and again when it
/// moves to another cgroup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcMeta {
    /// Memory cgroup path (v1 memory controller, else unified).
    pub cgroup: Option<String>,
    /// Owner uid (of /proc/PID).
    pub uid: Option<u32>,
    /// systemd unit named by the cgroup path.
    pub unit: Option<String>,
    /// Container id named by the cgroup path.
    pub container_id: Option<String>,
}

/// An OOM kill as the kernel recorded it, with the names the collector
/// resolved for it.
#[derive(Clone, Debug)]
pub struct OomRecord {
    /// The `oom:mark_victim` record.
    pub event: OomEvent,
    /// The victim's memory cgroup path, when found.
    pub cgroup: Option<String>,
    /// The killing task's memory cgroup (path, else name), when known.
    pub killer_memcg: Option<String>,
    /// The paths of the memory cgroup ids the record names (its
    /// `oom_control`'s memcg, the page counters' levels), where resolved.
    pub memcg_paths: Vec<(u64, String)>,
    /// The memory controller is cgroup v1's, whose memory+swap counter is
    /// a limit of its own (on v2 that slot counts swap alone).
    pub memsw_limit: bool,
    /// The limit cgroup v2's `memory.events` tells after the kill, read
    /// only where the kernel's own record of the kill tells nothing.
    pub events_limit: Option<OomLimit>,
}

/// Which limit an OOM kill hit, and who says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomLimit {
    /// `memcg` (a memory cgroup's limit), `global` (the machine),
    /// `cpuset` or `mempolicy` (the allowed NUMA nodes).
    pub constraint: &'static str,
    /// Who decided: `oom_control` (the kernel's own `struct oom_control`
    /// of the kill, read by the oom probes), `page_counter` (the page
    /// counters of the killer's memcg and its ancestors at the kill: one
    /// at its limit) or `memory.events` (cgroup v2, after the kill: the
    /// `oom` count of the killer's memcg or an ancestor grew).
    pub source: &'static str,
    /// The memory cgroup whose limit was hit (path, when resolved).
    pub cgroup: Option<String>,
    /// Which of its limits: `max` (v2 memory.max, v1 limit_in_bytes) or
    /// `memsw_max` (v1 memory + swap), as `memmon_cgroup_memory_limit_bytes`
    /// labels them.
    pub limit: Option<&'static str>,
    /// That limit, bytes.
    pub limit_bytes: Option<u64>,
    /// The cgroup's usage (of what the limit counts), bytes: at the kill
    /// from the kernel's sources, read after it with `memory.events`.
    pub usage_bytes: Option<u64>,
}

/// A SIGKILL with the names the collector resolved for it.
#[derive(Clone, Debug)]
pub struct KillSignalRecord {
    /// The probe's record.
    pub signal: kill::KillSignal,
    /// The sender's memory cgroup path, when resolved.
    pub sender_cgroup: Option<String>,
    /// The target's memory cgroup path (read as the signal was seen).
    pub target_cgroup: Option<String>,
}

/// What one collection pass read.
#[derive(Debug, Default)]
pub struct Sample {
    /// (tgid, cumulative counters) of every live process in the kernel map.
    pub live: Vec<(u32, ProcCounters)>,
    /// Identity and placement of the live tgids the model did not know
    /// (read by the collector when the model asked).
    pub infos: HashMap<u32, (Identity, ProcMeta)>,
    /// Exit events drained since the last pass, in kernel order.
    pub exits: Vec<ExitEvent>,
    /// Placement (memory cgroup path and the names it carries) of the exit
    /// events' cgroup ids.
    pub exit_cgroups: HashMap<u64, ProcMeta>,
    /// Map entries that outlived their process without an exit event
    /// (memmon was not running when it exited, or the event was lost):
    /// their last counters. The collector deletes them from the kernel map.
    pub vanished: Vec<(u32, ProcCounters)>,
    /// OOM kills drained since the last pass, in kernel order.
    pub ooms: Vec<OomRecord>,
    /// SIGKILLs drained since the last pass, with their cgroups resolved.
    pub kill_signals: Vec<KillSignalRecord>,
    /// Live processes that moved to another cgroup since the last pass
    /// (pid → its placement read again).
    pub moved: HashMap<u32, ProcMeta>,
    /// Resident-set counters per mm (rss_stat probe), with their owners.
    pub rss: Vec<MmState>,
    /// Kernel statistics, when they could be read.
    pub stats: Option<stats::StatsSnapshot>,
    /// Allocator maps, when those probes are attached.
    pub alloc: Option<alloc::AllocSample>,
    /// The kernel's per-memory-cgroup totals of exited processes (the
    /// pinned `MEMCG_EXITS` map), by cgroup path; `None` when not read
    /// (exit probe not attached, or the read failed).
    pub memcg_exits: Option<Vec<(String, memmon_common::MemcgExits)>>,
    /// Each loaded program's run time and count (None: the kernel's
    /// run-time statistics are off).
    pub program_runs: Option<Vec<stats::ProgramRuns>>,
    /// Sources found missing this pass, each with what goes unreported.
    pub missing: Vec<String>,
    /// Every process, as the scan (task iterator or /proc) found it.
    pub scan: Option<Scan>,
    /// The memory cgroups' own files (None: not read in this pass).
    pub cgroups: Option<CgroupsRead>,
    /// Per-process memory and the system view (None: not read in this
    /// pass).
    pub memory: Option<MemoryRead>,
}

/// The process scan of one pass.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every live process (those unchanged since the last scan marked not
    /// fresh).
    pub identities: Vec<Identity>,
    /// Placement of the scanned pids the model did not know.
    pub metas: HashMap<u32, ProcMeta>,
    /// The kernel's task iterator read them (not /proc/PID/stat).
    pub task_iter: bool,
    /// Why the task iterator failed in this pass (/proc was read instead,
    /// and is from now on).
    pub failed: Option<String>,
}

/// The memory cgroups read in one pass.
#[derive(Debug, Default)]
pub struct CgroupsRead {
    /// A memory controller was found: its files can be read here.
    pub live: bool,
    /// The cgroups holding processes and their ancestors, each with the
    /// names its path carries.
    pub readings: Vec<(cgroup::CgroupSample, cgroup::CgroupNames)>,
    /// Cgroups found removed.
    pub gone: Vec<String>,
    /// Problems found (said once each), with what goes unreported.
    pub missing: Vec<String>,
}

/// The cost-guarded per-process memory reads of one pass, and the system
/// view.
#[derive(Debug, Default)]
pub struct MemoryRead {
    /// The processes read (those due, within the time budget).
    pub processes: Vec<(ProcessKey, memory::ProcessMemory, Option<numa::NumaUsage>)>,
    /// Processes whose memory cgroup was read again with their memory
    /// (without the cgroup_attach probe): pid → placement.
    pub moved: HashMap<u32, ProcMeta>,
    /// What the reads cost.
    pub cost: cost::CycleCost,
    /// Whether smaps_rollup was there: `Some(true)` when a process read
    /// had it, `Some(false)` when none did and some lacked it.
    pub smaps_rollup: Option<bool>,
    /// The system-wide files.
    pub system: system::SystemSample,
    /// Files found missing, each with what goes unreported.
    pub missing: Vec<String>,
}

/// The moment a sample was taken, as the model is handed it (the model
/// reads no clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for rates.
    pub instant: std::time::Instant,
    /// Wall-clock time, Unix milliseconds.
    pub unix_ms: u64,
    /// CLOCK_BOOTTIME, ns: the clock of the kernel's event timestamps (0
    /// when it could not be read).
    pub boot_ns: u64,
}

/// Host constants the model computes with (read once by the collector).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// Bytes per page.
    pub page_size: u64,
    /// Clock ticks per second (/proc/PID/stat times).
    pub ticks_per_second: u64,
}

/// A NUL-padded kernel comm as text (invalid UTF-8 replaced).
pub fn comm_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// An OOM record as the probe fills it for a victim that ran into the
/// limit itself in memory cgroup `killer_memcg`, nothing else read: for
/// tests.
#[cfg(test)]
pub fn test_oom_event(killer_memcg: &str) -> OomEvent {
    let mut name = [0u8; memmon_common::events::MEMCG_NAME_LEN];
    name[..killer_memcg.len()].copy_from_slice(killer_memcg.as_bytes());
    OomEvent {
        kind: memmon_common::events::EVENT_OOM,
        flags: memmon_common::events::OOM_VICTIM_IS_CURRENT,
        victim_pid: 4_194_305,
        uid: 0,
        oom_score_adj: 0,
        killer_tid: 4_194_305,
        killer_tgid: 4_194_305,
        constraint: 0,
        total_vm_kb: 0,
        anon_rss_kb: 0,
        file_rss_kb: 0,
        shmem_rss_kb: 0,
        pgtables_kb: 0,
        killer_cgroup_id: 0,
        boot_ns: 0,
        victim_comm: [0; 16],
        killer_comm: [0; 16],
        killer_memcg: name,
        oom_memcg_id: 0,
        memory_usage_pages: 0,
        memory_max_pages: 0,
        memsw_usage_pages: 0,
        memsw_max_pages: 0,
        path_levels: 0,
        _pad: 0,
        path: Default::default(),
    }
}
